//! `outrider bench`: throughput figures measured in-process on this machine (run it with
//! `cargo run --release -- bench ...`; debug builds are not representative).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, Subcommand};
use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::{build_parser, Format, ParserContext, DEFAULT_MAX_LINE_BYTES};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Parse generated log lines on one core, next to a plain serde_json baseline.
    Parse {
        #[arg(long, default_value = "envoy")]
        format: Format,
        #[arg(long, default_value_t = 1_000_000)]
        lines: u64,
        /// Timed passes; the best is reported.
        #[arg(long, default_value_t = 3)]
        passes: u32,
    },
    /// Feed generated benchmark traffic through the feature extractor on one core, advancing
    /// the watermark as a live stream would; report event updates/s and bytes per key.
    Features {
        /// Benign users in the generated traffic.
        #[arg(long, default_value_t = 5_000)]
        users: usize,
        /// Minutes of traffic.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Timed passes; the best is reported.
        #[arg(long, default_value_t = 3)]
        passes: u32,
    },
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Parse {
            format,
            lines,
            passes,
        } => bench_parse(format, lines, passes),
        BenchWhat::Features {
            users,
            minutes,
            passes,
        } => bench_features(users, minutes, passes),
    }
}

fn sample_lines(format: Format, n: u64) -> Result<Vec<String>> {
    Ok(match format {
        Format::Envoy => (0..n)
            .map(outrider_ingest::parse::envoy::sample_line)
            .collect(),
        other => anyhow::bail!("no line generator for {other} yet; use --format envoy"),
    })
}

fn bench_parse(format: Format, n: u64, passes: u32) -> Result<()> {
    let lines = sample_lines(format, n)?;
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let ctx = ParserContext {
        identity: Arc::new(IdentityExtractor::with_key(
            &IdentityConfig::default(),
            b"bench",
        )),
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    };
    let parser = build_parser(format, &ctx, None)?;
    let ours = best_of(passes, || {
        lines
            .iter()
            .filter(|l| black_box(parser.parse(l.as_bytes())).is_ok())
            .count()
    });
    let baseline = best_of(passes, || {
        lines
            .iter()
            .filter(|l| black_box(serde_json::from_str::<serde_json::Value>(l)).is_ok())
            .count()
    });
    anyhow::ensure!(
        ours.1 == lines.len(),
        "{} of {} lines failed to parse",
        lines.len() - ours.1,
        lines.len()
    );
    println!(
        "{} lines of {format}, {:.0} bytes on average, one thread, best of {passes}",
        lines.len(),
        bytes as f64 / lines.len() as f64
    );
    report(
        &format!("outrider {format} -> ApiEvent"),
        ours.0,
        lines.len(),
        bytes,
    );
    report(
        "serde_json::Value (baseline)",
        baseline.0,
        lines.len(),
        bytes,
    );
    Ok(())
}

fn best_of(passes: u32, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = (Duration::MAX, 0);
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        let n = f();
        let d = t.elapsed();
        if d < best.0 {
            best = (d, n);
        }
    }
    best
}

fn report(name: &str, d: Duration, lines: usize, bytes: usize) {
    let secs = d.as_secs_f64().max(1e-9);
    println!(
        "  {name:<34} {:>12.0} lines/s  {:>8.1} MB/s  {:>7.0} ns/line",
        lines as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs * 1e9 / lines as f64
    );
}

/// Events handed to the extractor between watermark advances, like a consumer batch.
const FEATURE_BATCH: usize = 4096;

fn bench_features(users: usize, minutes: u64, passes: u32) -> Result<()> {
    use outrider_datasets::{generate, AttackMix, GeneratorConfig};
    use outrider_features::{FeatureExtractor, WindowConfig};
    use outrider_ingest::Event;

    let dataset = generate(&GeneratorConfig {
        users,
        service_clients: (users / 60).max(5),
        duration_secs: minutes * 60,
        attacks: AttackMix::default(),
        ..GeneratorConfig::default()
    });
    let events: Vec<Event> = dataset.plain_events().cloned().collect();
    anyhow::ensure!(!events.is_empty(), "the generator produced no events");
    // Key updates per event: its identity, its IP, and its token when it names one.
    let updates: u64 = events
        .iter()
        .map(|e| match e {
            Event::Api(a) => 2 + u64::from(a.identity.token_id.is_some()),
            Event::Token(t) => {
                2 + u64::from(t.token_id.is_some())
                    + u64::from(t.event == outrider_ingest::TokenEventKind::LoginFailure)
            }
        })
        .sum();
    let config = WindowConfig::default();
    let mut peak = (0usize, 0usize);
    let mut rows = 0usize;
    let best = best_of(passes, || {
        let mut fx = match FeatureExtractor::new(&config) {
            Ok(fx) => fx,
            Err(_) => return 0,
        };
        rows = 0;
        for batch in events.chunks(FEATURE_BATCH) {
            for e in batch {
                fx.observe(black_box(e));
            }
            if let Some(w) = fx.watermark() {
                rows += black_box(fx.advance(w)).len();
            }
        }
        peak = (fx.tracked_keys(), fx.state_bytes());
        rows += fx.finish().len();
        events.len()
    });
    let secs = best.0.as_secs_f64().max(1e-9);
    println!(
        "{} events ({} users, {minutes} min of benchmark traffic), {} windows of {}s sliding by {}s, one thread, best of {passes}",
        events.len(),
        users,
        rows,
        config.window_secs,
        config.hop_secs
    );
    println!(
        "  events              {:>12.0} events/s  {:>7.0} ns/event",
        events.len() as f64 / secs,
        secs * 1e9 / events.len() as f64
    );
    println!(
        "  key updates         {:>12.0} updates/s ({:.2} per event: identity, IP, token)",
        updates as f64 / secs,
        updates as f64 / events.len() as f64
    );
    println!(
        "  state before finish {:>12} keys  {:>7.0} bytes/key  {:.1} MB",
        peak.0,
        peak.1 as f64 / peak.0.max(1) as f64,
        peak.1 as f64 / 1e6
    );
    Ok(())
}
