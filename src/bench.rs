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
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        BenchWhat::Parse {
            format,
            lines,
            passes,
        } => bench_parse(format, lines, passes),
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
