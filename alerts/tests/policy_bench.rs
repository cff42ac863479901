//! Policy engine and incident grouping figures, not a pass/fail test (ignored by default):
//!
//! ```text
//! cargo test -p outrider-alerts --test policy_bench -- --ignored --nocapture
//! ```
//!
//! One thread, so the figures are per core: alerts decided by `examples/policies/strict.toml`
//! per second, alerts grouped into incidents (with suppression and campaigns) per second,
//! and both in a row, as the detector would run them.

use std::time::Instant;

use chrono::{DateTime, Utc};

use outrider_alerts::{
    alert_id, Alert, AlertStatus, FeatureContribution, IncidentConfig, IncidentGrouper, PolicySet,
    Severity, Verdict,
};

const ALERTS: usize = 200_000;

/// A day of alerts from 20,000 identities and 2,000 IPs, a few features each.
fn alerts() -> Vec<Alert> {
    let features = [
        "distinct_object_ids",
        "ratio_403",
        "bytes_out",
        "new_ip_ratio",
    ];
    let severities = [
        Severity::Medium,
        Severity::High,
        Severity::Critical,
        Severity::Low,
    ];
    (0..ALERTS)
        .map(|i| {
            let identity = if i % 10 == 0 {
                format!("ip:198.51.{}.{}", (i / 7) % 8, i % 250)
            } else {
                format!("sub:user-{}", (i * 7919) % 20_000)
            };
            let window_end =
                DateTime::from_timestamp(1_700_000_000 + (i as i64 * 86_400 / ALERTS as i64), 0)
                    .expect("valid time");
            Alert {
                id: alert_id(&identity, window_end, "iforest"),
                created_at: window_end,
                window_start: window_end - chrono::Duration::seconds(60),
                window_end,
                identity,
                apis: vec!["/v1/accounts/{id}".into(), "/v1/export".into()],
                client_ips: vec![format!("203.0.{}.{}", (i / 250) % 8, i % 250)],
                token_ids: vec![format!("jti:t{i}@bank")],
                score: 0.7 + (i % 30) as f64 / 100.0,
                threshold: 0.7,
                severity: severities[i % 4],
                model_version: "iforest".into(),
                features: (0..3)
                    .map(|k| FeatureContribution {
                        name: features[(i + k) % 4].into(),
                        value: 10.0 * k as f64,
                        baseline: 1.0,
                        baseline_p99: 2.0,
                        contribution: 0.5 - 0.1 * k as f64,
                    })
                    .collect(),
                evidence_request_ids: vec![format!("req-{i}")],
                event_count: 50 + (i % 200) as u64,
                status: AlertStatus::Open,
                rule_hits: Vec::new(),
                risk: None,
            }
        })
        .collect()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn policy_and_incident_throughput() {
    let alerts = alerts();
    let policies = PolicySet::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/strict.toml"),
    )
    .expect("strict.toml");
    let now = Utc::now();

    let start = Instant::now();
    let mut decisions = 0usize;
    for a in &alerts {
        decisions += policies.decide(a, now).len();
    }
    let decide_secs = start.elapsed().as_secs_f64();

    let mut grouper = IncidentGrouper::new(IncidentConfig::default()).expect("grouper");
    let start = Instant::now();
    let mut suppressed = 0usize;
    for chunk in alerts.chunks(1000) {
        let batch = grouper.group(chunk);
        suppressed += batch
            .outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Suppressed { .. }))
            .count();
    }
    let group_secs = start.elapsed().as_secs_f64();

    let mut grouper = IncidentGrouper::new(IncidentConfig::default()).expect("grouper");
    let start = Instant::now();
    let mut both = 0usize;
    for chunk in alerts.chunks(1000) {
        let batch = grouper.group(chunk);
        both += policies.decide_all(&batch.raised, now).len() + batch.incidents.len();
    }
    let both_secs = start.elapsed().as_secs_f64();

    let rate = |secs: f64| ALERTS as f64 / secs;
    println!(
        "policy bench (one core, {ALERTS} alerts): decide {:.0} alerts/s ({decisions} decisions); \
         group {:.0} alerts/s ({suppressed} suppressed, {} incidents open at the end); \
         group + decide raised {:.0} alerts/s",
        rate(decide_secs),
        rate(group_secs),
        grouper.open_count(),
        rate(both_secs),
    );
    assert!(decisions > 0 && suppressed > 0 && both > 0);
}
