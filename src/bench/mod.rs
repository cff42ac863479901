//! `outrider bench`: throughput figures measured in-process on this machine (run it with
//! `cargo run --release -- bench ...`; debug builds are not representative).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use outrider_features::{FeatureExtractor, WindowConfig};
use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::{build_parser, Format, ParserContext, DEFAULT_MAX_LINE_BYTES};
use outrider_ingest::Event;

mod pipeline;

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
        /// Replay these canonical JSON lines instead of generating traffic (a fixed input
        /// for comparing builds).
        #[arg(long)]
        input: Option<std::path::PathBuf>,
    },
    /// The whole detector service in-process on generated traffic: events/s per core
    /// (`--rate 0`), or event-to-alert latency at a fixed rate (`--rate N`), optionally
    /// through a Kafka broker (`--kafka`).
    Pipeline(pipeline::PipelineArgs),
}

pub async fn run(args: BenchArgs) -> Result<()> {
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
            input,
        } => {
            let (events, what) = match input {
                Some(path) => read_events(&path)?,
                None => generated_events(users, minutes)?,
            };
            bench_features(&events, &what, passes)
        }
        BenchWhat::Pipeline(args) => pipeline::run(args).await,
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

fn generated_events(users: usize, minutes: u64) -> Result<(Vec<Event>, String)> {
    use outrider_datasets::{generate, AttackMix, GeneratorConfig};
    let dataset = generate(&GeneratorConfig {
        users,
        service_clients: (users / 60).max(5),
        duration_secs: minutes * 60,
        attacks: AttackMix::default(),
        ..GeneratorConfig::default()
    });
    let events: Vec<Event> = dataset.plain_events().cloned().collect();
    Ok((
        events,
        format!("{users} users, {minutes} min of benchmark traffic"),
    ))
}

fn read_events(path: &std::path::Path) -> Result<(Vec<Event>, String)> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let event = serde_json::from_str::<Event>(&line)
            .with_context(|| format!("{}:{}: not a canonical event", path.display(), n + 1))?;
        events.push(event);
    }
    Ok((events, path.display().to_string()))
}

/// Key updates an event makes: its identity, its IP, its token when it names one, and the
/// user a failed login names.
fn key_updates(e: &Event) -> u64 {
    match e {
        Event::Api(a) => 2 + u64::from(a.identity.token_id.is_some()),
        Event::Token(t) => {
            2 + u64::from(t.token_id.is_some())
                + u64::from(t.event == outrider_ingest::TokenEventKind::LoginFailure)
        }
    }
}

fn bench_features(events: &[Event], what: &str, passes: u32) -> Result<()> {
    anyhow::ensure!(!events.is_empty(), "no events to replay");
    let updates: u64 = events.iter().map(key_updates).sum();
    let config = WindowConfig::default();
    let mut rows = 0usize;
    let best = best_of(passes, || {
        let Ok(mut fx) = FeatureExtractor::new(&config) else {
            return 0;
        };
        rows = 0;
        replay_in_batches(&mut fx, events, |_, _, emitted| {
            rows += black_box(emitted).len()
        });
        rows += fx.finish().len();
        events.len()
    });
    let memory = features_memory(events, &config)?;
    let secs = best.0.as_secs_f64().max(1e-9);
    println!(
        "{} events ({what}), {rows} windows of {}s sliding by {}s, one thread, best of {passes}",
        events.len(),
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
        "  state per key       {:>12.0} bytes mean, {:.0} peak, {:.0} at the end ({} keys, {:.1} MB)",
        memory.mean,
        memory.peak,
        memory.end_bytes as f64 / memory.end_keys.max(1) as f64,
        memory.end_keys,
        memory.end_bytes as f64 / 1e6
    );
    Ok(())
}

/// Feeds `events` to `fx` a consumer batch at a time, advancing the watermark after each
/// batch as a live stream would; `after` sees the batch index and the rows it emitted.
fn replay_in_batches(
    fx: &mut FeatureExtractor,
    events: &[Event],
    mut after: impl FnMut(&FeatureExtractor, usize, Vec<outrider_features::FeatureRow>),
) {
    for (i, batch) in events.chunks(FEATURE_BATCH).enumerate() {
        for e in batch {
            fx.observe(black_box(e));
        }
        let emitted = fx.watermark().map(|w| fx.advance(w)).unwrap_or_default();
        after(fx, i, emitted);
    }
}

struct FeatureMemory {
    mean: f64,
    peak: f64,
    end_keys: usize,
    end_bytes: usize,
}

/// Bytes per tracked key after every batch of an untimed replay, once the first tenth of the
/// stream has formed the key population: a stream holds busy and quiet keys at once, so the
/// mean and the peak say more than one snapshot.
fn features_memory(events: &[Event], config: &WindowConfig) -> Result<FeatureMemory> {
    let mut fx = FeatureExtractor::new(config)?;
    let (mut sum, mut samples, mut peak) = (0.0, 0u32, 0f64);
    replay_in_batches(&mut fx, events, |fx, i, _| {
        if i * FEATURE_BATCH >= events.len() / 10 {
            let per_key = fx.state_bytes() as f64 / fx.tracked_keys().max(1) as f64;
            peak = peak.max(per_key);
            sum += per_key;
            samples += 1;
        }
    });
    Ok(FeatureMemory {
        mean: sum / f64::from(samples.max(1)),
        peak,
        end_keys: fx.tracked_keys(),
        end_bytes: fx.state_bytes(),
    })
}
