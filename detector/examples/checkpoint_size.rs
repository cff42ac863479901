//! Partition checkpoint size and cost on generated traffic:
//! `cargo run --release -p outrider-detector --example checkpoint_size -- [users] [minutes]`.
//! Prints keys, bytes (with the burst detectors' share), bytes per key, encode time and
//! write (+fsync) time, each the best of five runs.
#![allow(clippy::unwrap_used)] // an example: a failure is a crash with its message

use std::time::{Duration, Instant};

use outrider_datasets::{generate, GeneratorConfig};
use outrider_detector::burst::{BurstConfig, BurstTracker};
use outrider_detector::checkpoint::{encode, CheckpointDir};
use outrider_features::{FeatureExtractor, WindowConfig};
use outrider_ingest::source::Partition;

fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map_or(2000, |a| a.parse().unwrap());
    let minutes: u64 = args.next().map_or(30, |a| a.parse().unwrap());
    let data = generate(&GeneratorConfig {
        users,
        duration_secs: minutes * 60,
        ..GeneratorConfig::default()
    });
    let window = WindowConfig::default();
    let mut x = FeatureExtractor::new(&window).unwrap();
    let mut bursts = BurstTracker::new(&BurstConfig::default(), &window)
        .unwrap()
        .unwrap();
    let mut events: Vec<_> = data.events.iter().map(|e| &e.event).collect();
    events.sort_by_key(|e| e.ts().millis());
    for e in &events {
        x.observe(e);
        bursts.observe(e);
    }
    // Mid-stream, as a running detector checkpoints: windows up to the last minute emitted.
    if let Some(t) = x.max_event_time() {
        x.advance(t - 60_000);
    }
    let partition = Partition {
        stream: "events".into(),
        partition: 0,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::open(tmp.path()).unwrap();
    let (mut encode_best, mut write_best) = (Duration::MAX, Duration::MAX);
    let (mut bytes, mut burst_bytes) = (Vec::new(), 0);
    for _ in 0..5 {
        let t = Instant::now();
        let burst_state = bursts.encode().unwrap();
        burst_bytes = burst_state.len();
        bytes = encode(&partition, 1, &x, &burst_state).unwrap();
        encode_best = encode_best.min(t.elapsed());
        let t = Instant::now();
        dir.write(&partition, &bytes).unwrap();
        write_best = write_best.min(t.elapsed());
    }
    let keys = x.tracked_keys();
    println!(
        "events {}  keys {keys}  checkpoint {} bytes (burst state {burst_bytes})  {:.0} feature bytes/key  encode {:.1} ms  write+fsync {:.1} ms",
        events.len(),
        bytes.len(),
        (bytes.len() - burst_bytes) as f64 / keys.max(1) as f64,
        encode_best.as_secs_f64() * 1e3,
        write_best.as_secs_f64() * 1e3,
    );
}
