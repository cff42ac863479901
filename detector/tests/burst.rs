#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Burst detection in a file replay: stuffing and token-replay bursts raise alerts with their
//! burst reason within seconds of event time; benign traffic raises no burst hit.

mod common;

use std::net::IpAddr;

use common::{replay_config, stored, write_traffic};
use outrider_alerts::Alert;
use outrider_datasets::{generate, AttackKind, AttackMix, Dataset, GeneratorConfig, LabelledEvent};
use outrider_detector::service;
use outrider_ingest::{Event, EventTime};

const START_MS: i64 = 1_793_606_400_000 + 4 * 3_600_000;

fn traffic(seed: u64, attacks: AttackMix) -> Dataset {
    generate(&GeneratorConfig {
        seed,
        users: 100,
        duration_secs: 20 * 60,
        start_ms: START_MS,
        attacks,
        ..GeneratorConfig::default()
    })
}

/// A stolen token replayed by a bot: 60 calls in 6 s from another IP, with the victim's
/// token, starting 10 minutes in. Returns the victim's identity key and the first call's time.
fn inject_token_replay(set: &mut Dataset) -> (String, i64) {
    let at = START_MS + 10 * 60_000;
    let stolen = set
        .events
        .iter()
        .find_map(|e| match &e.event {
            Event::Api(a) if a.ts.millis() >= at && a.identity.token_id.is_some() => {
                a.identity.subject.as_ref().map(|_| a.clone())
            }
            _ => None,
        })
        .unwrap();
    let attacker: IpAddr = "203.0.113.66".parse().unwrap();
    for i in 0..60 {
        let mut e = stolen.clone();
        e.ts = EventTime::from_millis(at + i * 100);
        e.request_id = format!("replay-{i}");
        e.client_ip = attacker;
        e.user_agent = "curl/8.5.0".into();
        set.events.push(LabelledEvent {
            event: Event::Api(e),
            campaign: Some(99),
        });
    }
    set.events.sort_by_key(|e| e.event.ts().millis());
    (stolen.identity_key(), at)
}

fn burst_hits(alerts: &[Alert]) -> Vec<(&Alert, &outrider_alerts::RuleHit)> {
    alerts
        .iter()
        .flat_map(|a| a.rule_hits.iter().map(move |h| (a, h)))
        .filter(|(_, h)| h.rule.starts_with("burst_"))
        .collect()
}

/// The first alert on `identity` with a burst hit of `rule`, ending at most 20 s (a hop and
/// a tick) after `start_ms`.
fn assert_burst_alert_within_seconds(alerts: &[Alert], identity: &str, rule: &str, start_ms: i64) {
    let hits = burst_hits(alerts);
    let (alert, hit) = hits
        .iter()
        .filter(|(a, h)| a.identity == identity && h.rule == rule)
        .min_by_key(|(a, _)| a.window_end)
        .unwrap_or_else(|| panic!("no {rule} alert on {identity}: {hits:?}"));
    let delay_ms = alert.window_end.timestamp_millis() - start_ms;
    assert!(
        (0..=20_000).contains(&delay_ms),
        "{rule} on {identity} only {delay_ms} ms after the start"
    );
    assert!(hit.reason.contains("burst"), "{}", hit.reason);
    let risk = alert.risk.unwrap();
    assert!(
        risk >= 0.999,
        "a burst at its threshold reads as risk 0.999: {risk}"
    );
}

#[tokio::test]
async fn stuffing_and_token_replay_bursts_alert_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = traffic(
        21,
        AttackMix {
            token_replay: 0,
            bola: 0,
            credential_stuffing: 1,
        },
    );
    let stuffing = set
        .campaigns
        .iter()
        .find(|c| c.kind == AttackKind::CredentialStuffing)
        .cloned()
        .unwrap();
    let (victim, replay_start) = inject_token_replay(&mut set);
    let config = replay_config(dir.path(), write_traffic(dir.path(), &set));
    service::run(&config, std::future::pending()).await.unwrap();
    let (alerts, _) = stored(&config).await;

    assert_burst_alert_within_seconds(
        &alerts,
        &stuffing.identity_key,
        "burst_ip_identity",
        stuffing.start_ms,
    );
    assert_burst_alert_within_seconds(&alerts, &victim, "burst_client_token", replay_start);
    // Only the attacks burst.
    for (alert, hit) in burst_hits(&alerts) {
        assert!(
            alert.identity == stuffing.identity_key || alert.identity == victim,
            "burst on a benign identity: {alert:?} {hit:?}"
        );
    }
}

#[tokio::test]
async fn benign_traffic_raises_no_burst_alert() {
    let dir = tempfile::tempdir().unwrap();
    let set = traffic(22, AttackMix::none());
    let config = replay_config(dir.path(), write_traffic(dir.path(), &set));
    let summary = service::run(&config, std::future::pending()).await.unwrap();
    assert!(summary.stats.rows_scored > 1000, "{:?}", summary.stats);
    let (alerts, _) = stored(&config).await;
    let hits = burst_hits(&alerts);
    assert!(hits.is_empty(), "{hits:?}");

    // The same traffic with bursts off raises the same model and rule alerts.
    let dir_off = tempfile::tempdir().unwrap();
    let mut off = replay_config(dir_off.path(), write_traffic(dir_off.path(), &set));
    off.burst.enabled = false;
    service::run(&off, std::future::pending()).await.unwrap();
    let (alerts_off, _) = stored(&off).await;
    let ids = |a: &[Alert]| {
        let mut ids: Vec<String> = a.iter().map(|a| a.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&alerts), ids(&alerts_off));
}
