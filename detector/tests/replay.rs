#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! File replay through the detector service: the code path Kafka uses, on the embedded store.

mod common;

use common::replay_config;
use outrider_alerts::{AlertQuery, AlertStore, EmbeddedStore};
use outrider_detector::service;

#[tokio::test]
async fn replay_alerts_on_every_injected_attack_with_explanations() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(60, 30);
    let input = dir.path().join("traffic.jsonl");
    outrider_datasets::write_events_jsonl(&input, &traffic).unwrap();
    let config = replay_config(dir.path(), input);

    let summary = service::run(&config, std::future::pending()).await.unwrap();
    assert_eq!(summary.stats.records, traffic.events.len() as u64);
    assert_eq!(summary.stats.parse_error_total(), 0);
    assert!(summary.stats.alerts > 0);

    let store = EmbeddedStore::open(&config.alerts.data_dir).unwrap();
    let query = AlertQuery {
        limit: usize::MAX,
        ..AlertQuery::default()
    };
    let alerts = store.alerts(&query).await.unwrap();
    assert_eq!(alerts.len() as u64, summary.stats.alerts);
    for c in &traffic.campaigns {
        let hit = alerts.iter().find(|a| {
            a.identity == c.identity_key
                && a.window_end.timestamp_millis() > c.start_ms
                && a.window_start.timestamp_millis() <= c.end_ms
        });
        let hit = hit.unwrap_or_else(|| panic!("no alert for campaign {c:?}"));
        // The explanation: every feature with its baseline, strongest first.
        assert_eq!(hit.features.len(), outrider_features::FEATURE_COUNT);
        assert!(hit.features[0].contribution >= hit.features[1].contribution);
        // Raised by the model, or by a rule that explains itself.
        assert!(
            hit.score >= hit.threshold || !hit.rule_hits.is_empty(),
            "{hit:?}"
        );
        assert!(!hit.evidence_request_ids.is_empty());
    }
    let decisions = store.decisions(None, usize::MAX).await.unwrap();
    assert_eq!(decisions.len() as u64, summary.stats.decisions);
}

#[tokio::test]
async fn every_class_of_bad_line_is_dead_lettered_with_reason_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(20, 10);
    let good = dir.path().join("good.jsonl");
    outrider_datasets::write_events_jsonl(&good, &traffic).unwrap();
    let valid = r#"{"type":"api","ts":"2026-11-02T10:00:00Z","request_id":"r","method":"GET","path":"/","status":200,"client_ip":"192.0.2.1"}"#;
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"type\":\"api\",\"ts\":".to_vec(), "truncated"),
        (b"not json at all".to_vec(), "malformed_json"),
        (b"\xff\xfe".to_vec(), "invalid_utf8"),
        (b"   ".to_vec(), "empty"),
        (valid.replace("200", "\"ok\"").into_bytes(), "wrong_type"),
        (
            valid.replace(r#""method":"GET","#, "").into_bytes(),
            "missing_field",
        ),
        (
            valid.replace("192.0.2.1", "not-an-ip").into_bytes(),
            "invalid_value",
        ),
        (
            format!("{{\"pad\":\"{}\"}}", "x".repeat(5000)).into_bytes(),
            "oversized",
        ),
    ];
    let mut bytes = std::fs::read(&good).unwrap();
    for (line, _) in &bad {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(&input, bytes).unwrap();
    let mut config = replay_config(dir.path(), input);
    config.source.max_line_bytes = 4096;

    let summary = service::run(&config, std::future::pending()).await.unwrap();
    let n = traffic.events.len() as u64;
    assert_eq!(summary.stats.records, n + bad.len() as u64);
    assert_eq!(summary.stats.events, n, "the good lines all went on");
    assert_eq!(summary.stats.parse_error_total(), bad.len() as u64);
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(config.dead_letter_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<_> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    let expected: Vec<_> = bad.iter().map(|(_, r)| *r).collect();
    assert_eq!(reasons, expected);
    for (i, letter) in letters.iter().enumerate() {
        assert_eq!(letter["position"]["source"], "file");
        assert_eq!(letter["position"]["line"], n + 1 + i as u64);
        assert_eq!(summary.stats.parse_errors[expected[i]], 1);
    }
    assert_eq!(
        letters[2]["raw_hex"], "fffe",
        "invalid UTF-8 is kept byte for byte"
    );
}

#[tokio::test]
async fn a_model_trained_on_another_feature_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.jsonl");
    std::fs::write(&input, "").unwrap();
    let config = replay_config(dir.path(), input);
    let mut model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config.model.path).unwrap()).unwrap();
    model["schema"]["id"] = "identity-v0".into();
    std::fs::write(&config.model.path, model.to_string()).unwrap();

    let err = service::run(&config, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("identity-v0") && err.contains(outrider_features::SCHEMA_ID),
        "{err}"
    );
}

#[tokio::test]
async fn a_restarted_detector_recognises_the_alerts_of_its_open_incidents() {
    // Recent traffic: open incidents of the last `incidents.gap_secs` are restored.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut traffic = common::attack_traffic(60, 30);
    let shift = now_ms - 35 * 60_000 - traffic.events[0].event.ts().millis();
    for e in &mut traffic.events {
        match &mut e.event {
            outrider_ingest::Event::Api(a) => a.ts.0 += shift,
            outrider_ingest::Event::Token(t) => t.ts.0 += shift,
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &traffic);
    let config = replay_config(dir.path(), input);

    let first = service::run(&config, std::future::pending()).await.unwrap();
    assert!(first.stats.alerts > 0);
    let second = service::run(&config, std::future::pending()).await.unwrap();
    let (alerts, decisions) = common::stored(&config).await;
    // Every alert the second run raised is new: those of the first were recognised.
    assert_eq!(
        alerts.len() as u64,
        first.stats.alerts + second.stats.alerts,
        "first {:?}\nsecond {:?}",
        first.stats,
        second.stats
    );
    assert!(second.stats.alerts < first.stats.alerts);
    assert_eq!(
        decisions.len() as u64,
        first.stats.decisions + second.stats.decisions
    );
}
