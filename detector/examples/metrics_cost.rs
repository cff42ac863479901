//! What the ops metrics cost the pipeline: the per-batch update, the throttled state-size
//! walk, and a scrape, next to the feature work of one batch. Run with
//! `cargo run --release -p outrider-detector --example metrics_cost`.

use std::time::{Duration, Instant};

use outrider_datasets::{generate, GeneratorConfig};
use outrider_detector::metrics::Metrics;
use outrider_detector::PipelineStats;
use outrider_features::{FeatureExtractor, WindowConfig};

const BATCH: usize = 4096;

fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let traffic = generate(&GeneratorConfig {
        users: 3000,
        duration_secs: 1800,
        ..GeneratorConfig::default()
    });
    let events: Vec<_> = traffic.events.iter().map(|e| &e.event).collect();
    let mut fx = FeatureExtractor::new(&WindowConfig::default())?;
    let start = Instant::now();
    for e in &events {
        fx.observe(e);
    }
    let per_batch_features = start.elapsed() * BATCH as u32 / events.len() as u32;

    let metrics = Metrics::new();
    let mut stats = PipelineStats::default();
    for reason in ["malformed_json", "truncated", "invalid_value"] {
        stats.parse_errors.insert(reason.into(), 3);
    }
    stats.skipped.insert("health_check".into(), 10);
    metrics.record_batch(&stats, &[&fx], true);
    let update = per_call(200_000, || {
        stats.records += BATCH as u64;
        metrics.record_batch(&stats, &[&fx], false);
        metrics.observe_scoring(120, Duration::from_micros(800));
    });
    let walk = per_call(20, || {
        std::hint::black_box(fx.state_bytes());
    });
    let scrape = per_call(2_000, || {
        std::hint::black_box(metrics.encode().map(|s| s.len()).unwrap_or(0));
    });
    println!(
        "events {}  tracked keys {}  state {} bytes",
        events.len(),
        fx.tracked_keys(),
        fx.state_bytes()
    );
    println!("features for one batch of {BATCH} events (observe only): {per_batch_features:?}");
    println!(
        "metrics update per batch: {update:?} ({:.4}% of the batch's feature work)",
        100.0 * update.as_secs_f64() / per_batch_features.as_secs_f64()
    );
    println!("state-size walk (at most every 10 s): {walk:?}");
    println!("one /metrics scrape (encode): {scrape:?}");
    Ok(())
}
