//! Delivery figures, not a pass/fail test (ignored by default):
//!
//! ```text
//! cargo test -p outrider-alerts --test delivery_bench -- --ignored --nocapture
//! ```
//!
//! - throughput: decisions enqueued in one batch, delivered to a local webhook receiver
//!   (signed, one durable outbox commit per outcome), per second;
//! - latency: one decision at a time, from just before the outbox write (the moment the
//!   detector hands it over) to its arrival at the receiver, p50 / p99.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{decision, Receiver};
use outrider_alerts::{Outbox, OutboxWorker, WebhookConfig, WebhookSink};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn delivery_throughput_and_latency() {
    let mut receiver = Receiver::start(0, 503).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let sink = Arc::new(
        WebhookSink::with_secret(
            WebhookConfig::new("gateway", receiver.url(), "UNUSED"),
            "bench-secret",
        )
        .unwrap(),
    );
    let worker = Arc::new(
        OutboxWorker::new(
            Arc::clone(&outbox),
            HashMap::from([("gateway".to_owned(), sink)]),
        )
        .with_batch_size(256),
    );
    let notifier = worker.notifier();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move {
            worker
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let targets = ["gateway".to_owned()];

    // Throughput.
    let n = 2000;
    let batch: Vec<_> = (0..n).map(|i| decision(&format!("bulk-{i}"))).collect();
    let start = Instant::now();
    outbox.enqueue(&batch, &targets).unwrap();
    notifier.notify_one();
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(120), receiver.next_applied())
            .await
            .expect("delivered")
            .expect("receiver alive");
    }
    let elapsed = start.elapsed();
    let per_sec = n as f64 / elapsed.as_secs_f64();

    // Latency, one decision at a time.
    let rounds = 300;
    let mut latencies = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let d = decision(&format!("single-{i}"));
        let t0 = Instant::now();
        outbox.enqueue(std::slice::from_ref(&d), &targets).unwrap();
        notifier.notify_one();
        let (key, arrived) = tokio::time::timeout(Duration::from_secs(20), receiver.next_applied())
            .await
            .expect("delivered")
            .expect("receiver alive");
        assert_eq!(key, d.id);
        latencies.push(arrived - t0);
    }
    latencies.sort();
    let _ = stop.send(());
    task.await.unwrap();

    println!(
        "delivery bench: {n} decisions in {:.2} s = {per_sec:.0} decisions/s; \
         detection-to-delivery over {rounds} single decisions: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    assert_eq!(receiver.ok_counts().len(), n + rounds);
    assert!(receiver.ok_counts().values().all(|&c| c == 1));
}
