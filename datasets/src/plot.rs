//! Hand-written SVG plots of an evaluation: the distribution of window scores, benign
//! against attack (log scale, with the threshold), and precision-recall curves per
//! attack kind. No plotting crate: a few hundred bytes of markup per series.

use std::fmt::Write as _;

use crate::metrics::PrPoint;

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 52.0;
const COLOURS: [&str; 13] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(title: &str, x_label: &str, y_label: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>
<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>
"##,
        W / 2.0,
        escape(title),
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 12.0,
        escape(x_label),
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        escape(y_label),
        W - LEFT - RIGHT,
        H - TOP - BOTTOM,
    );
    s
}

fn plot_x(f: f64) -> f64 {
    LEFT + f.clamp(0.0, 1.0) * (W - LEFT - RIGHT)
}

fn plot_y(f: f64) -> f64 {
    H - BOTTOM - f.clamp(0.0, 1.0) * (H - TOP - BOTTOM)
}

fn legend(s: &mut String, i: usize, colour: &str, label: &str) {
    let y = TOP + 10.0 + 18.0 * i as f64;
    let x = W - RIGHT + 12.0;
    let _ = writeln!(
        s,
        r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="2.5"/><text x="{}" y="{}">{}</text>"#,
        x + 20.0,
        x + 26.0,
        y + 4.0,
        escape(label)
    );
}

/// Histograms of benign and attack window scores: the share of each class per bin, on a
/// log scale from 1e-5, with the alert threshold.
pub fn score_histogram(title: &str, benign: &[f32], attack: &[f32], threshold: f32) -> String {
    const BINS: usize = 40;
    let finite = |xs: &[f32]| {
        xs.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<f32>>()
    };
    let (benign, attack) = (finite(benign), finite(attack));
    let all = benign.iter().chain(&attack).copied();
    let (mut lo, mut hi) = all.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    lo = lo.min(threshold);
    hi = hi.max(threshold);
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let bin = |x: f32| (((f64::from(x) - lo) / (hi - lo) * BINS as f64) as usize).min(BINS - 1);
    let shares = |xs: &[f32]| {
        let mut counts = [0u64; BINS];
        for &x in xs {
            counts[bin(x)] += 1;
        }
        let n = xs.len().max(1) as f64;
        counts.map(|c| c as f64 / n)
    };
    let log_y = |share: f64| {
        if share <= 0.0 {
            0.0
        } else {
            ((share.log10() + 5.0) / 5.0).clamp(0.0, 1.0)
        }
    };
    let mut s = header(title, "window score", "share of windows (log scale)");
    for (decade, label) in [
        (0.0, "1e-5"),
        (0.2, "1e-4"),
        (0.4, "1e-3"),
        (0.6, "1e-2"),
        (0.8, "0.1"),
        (1.0, "1"),
    ] {
        let y = plot_y(decade);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{:.2}</text>"#,
            plot_x(f),
            H - BOTTOM + 16.0,
            lo + f * (hi - lo)
        );
    }
    for (i, (label, xs, colour)) in [
        ("benign", &benign, "#1f77b4"),
        ("attack", &attack, "#d62728"),
    ]
    .into_iter()
    .enumerate()
    {
        let shares = shares(xs);
        let mut path = String::new();
        for (b, share) in shares.iter().enumerate() {
            let (x0, x1) = (
                plot_x(b as f64 / BINS as f64),
                plot_x((b + 1) as f64 / BINS as f64),
            );
            let y = plot_y(log_y(*share));
            let _ = write!(
                path,
                "{}{x0:.1},{y:.1} L{x1:.1},{y:.1} ",
                if b == 0 { "M" } else { "L" }
            );
        }
        let _ = writeln!(
            s,
            r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" opacity="0.85"/>"#
        );
        legend(&mut s, i, colour, &format!("{label} ({})", xs.len()));
    }
    let tx = plot_x((f64::from(threshold) - lo) / (hi - lo));
    let _ = writeln!(
        s,
        r##"<line x1="{tx}" y1="{TOP}" x2="{tx}" y2="{}" stroke="#000" stroke-dasharray="5,4"/><text x="{}" y="{}">threshold {threshold:.3}</text>"##,
        H - BOTTOM,
        tx + 4.0,
        TOP + 14.0
    );
    legend(&mut s, 2, "#000", "threshold");
    s.push_str("</svg>\n");
    s
}

/// Precision-recall curves, one per named series (at most 400 points each).
pub fn pr_curves(title: &str, curves: &[(String, Vec<PrPoint>)]) -> String {
    let mut s = header(title, "recall", "precision");
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{f:.2}</text><text x="{}" y="{}" text-anchor="middle">{f:.2}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            plot_y(f) + 4.0,
            plot_x(f),
            H - BOTTOM + 16.0,
            y = plot_y(f)
        );
    }
    for (i, (name, points)) in curves.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let colour = COLOURS[i % COLOURS.len()];
        let step = points.len().div_ceil(400).max(1);
        let mut path = format!("M{:.1},{:.1}", plot_x(0.0), plot_y(points[0].precision));
        for p in points.iter().step_by(step).chain(points.last()) {
            let _ = write!(path, " L{:.1},{:.1}", plot_x(p.recall), plot_y(p.precision));
        }
        let width = if name == "all" { 3.0 } else { 1.6 };
        let _ = writeln!(
            s,
            r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="{width}"/>"#
        );
        legend(&mut s, i, colour, name);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_well_formed_svg_with_their_series() {
        let svg = score_histogram("scores <t>", &[0.1, 0.2, 0.2, 0.5], &[0.7, 0.9], 0.6);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("benign (4)") && svg.contains("attack (2)"));
        assert!(svg.contains("threshold 0.600"));
        assert!(svg.contains("scores &lt;t&gt;"));
        assert_eq!(svg.matches("<path").count(), 2);

        let points = vec![
            PrPoint {
                threshold: 0.9,
                recall: 0.5,
                precision: 1.0,
            },
            PrPoint {
                threshold: 0.5,
                recall: 1.0,
                precision: 0.5,
            },
        ];
        let svg = pr_curves(
            "pr",
            &[("all".into(), points), ("empty".into(), Vec::new())],
        );
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.contains(">all</text>"));
        // Degenerate inputs still draw.
        let svg = score_histogram("none", &[], &[f32::NAN], 0.5);
        assert!(svg.contains("benign (0)"));
    }
}
