//! `outrider bench pipeline` runs the whole service on generated traffic and reports what it
//! measured: throughput per core, and event-to-alert latency in-process and through Kafka.
#![allow(clippy::unwrap_used)] // test code

use std::process::Command;

/// Runs `outrider bench pipeline` with small traffic and `extra` arguments; its stdout.
fn bench(extra: &[&str]) -> String {
    let mut args = vec![
        "bench",
        "pipeline",
        "--users",
        "150",
        "--minutes",
        "15",
        "--campaigns",
        "2",
        "--partitions",
        "3",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "outrider {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number just before `label` in `text` (`"12 alerts timed"` -> 12).
fn number_before(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    text[..at]
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{label:?} in {text}: {e}"))
}

/// The number just after `label` (`"p99 12.5 ms"` -> 12.5).
fn number_after(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len();
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{label:?} in {text}: {e}"))
}

#[test]
fn throughput_counts_every_event_and_reports_a_rate_per_core() {
    let out = bench(&["--passes", "1"]);
    let events = number_before(&out, "events of 150 users");
    assert!(events > 1000.0, "{out}");
    assert!(number_before(&out, "events per CPU-second") > 0.0, "{out}");
    assert!(number_before(&out, "windows scored") > 0.0, "{out}");
    assert!(
        number_before(&out, "alerts,") > 0.0,
        "the injected campaigns alert: {out}"
    );
}

/// Percentiles in order, and at least one alert timed.
fn assert_latency_report(out: &str) {
    assert!(number_before(out, "alerts timed") > 0.0, "{out}");
    let (p50, p99, max) = (
        number_after(out, "p50"),
        number_after(out, "p99"),
        number_after(out, "max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{out}");
}

#[test]
fn latency_at_a_fixed_rate_times_every_stored_alert() {
    let out = bench(&["--rate", "20000"]);
    assert!(
        out.contains("latency in-process at 20000 records/s"),
        "{out}"
    );
    assert_latency_report(&out);
}

#[test]
#[ignore = "needs kafka: run scripts/test.sh"]
fn latency_through_kafka_times_every_stored_alert() {
    let brokers = std::env::var("OUTRIDER_TEST_KAFKA_BROKERS")
        .expect("OUTRIDER_TEST_KAFKA_BROKERS is not set: run scripts/test.sh");
    let out = bench(&["--rate", "5000", "--kafka", &brokers]);
    assert!(
        out.contains("latency through kafka at 5000 records/s"),
        "{out}"
    );
    assert_latency_report(&out);
    assert_eq!(
        number_after(&out, "produce-to-read latency of"),
        number_before(&out, "events of 150 users"),
        "every produced record is read and timed: {out}"
    );
}
