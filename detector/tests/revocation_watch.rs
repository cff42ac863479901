#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The revocation watch: a token the detector revoked that is still served after the grace
//! period raises a "revocation not effective" alert, with a note naming the decision.

mod common;

use std::collections::BTreeSet;

use outrider_alerts::{Action, AlertStore, Decision, EmbeddedStore, PolicySet, WatchConfig};
use outrider_detector::service;
use outrider_ingest::{ApiEvent, Event, EventTime};

const MINUTE_MS: i64 = 60_000;

/// A copy of `template` at `ts_ms` with another request id and status.
fn reuse(template: &ApiEvent, ts_ms: i64, request_id: &str, status: u16) -> Event {
    let mut e = template.clone();
    e.ts = EventTime::from_millis(ts_ms);
    e.request_id = request_id.into();
    e.status = status;
    Event::Api(e)
}

fn write_events(path: &std::path::Path, events: &[Event]) {
    let lines: Vec<String> = events.iter().map(Event::to_json_line).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn a_revoked_token_still_served_after_the_grace_period_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(60, 30);
    let events: Vec<Event> = traffic.events.iter().map(|e| e.event.clone()).collect();
    let end_ms = events.iter().map(|e| e.ts().millis()).max().unwrap();
    let api_with_token = |token: &str| -> Vec<ApiEvent> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Api(a) if a.identity.token_id.as_deref() == Some(token) => Some(a.clone()),
                _ => None,
            })
            .collect()
    };

    // First run, without the watch: which tokens are revoked, for which alert.
    let first_dir = dir.path().join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let input = common::write_traffic(&first_dir, &traffic);
    let mut first = common::replay_config(&first_dir, input);
    first.pipeline.batch_size = 64;
    service::run(&first, std::future::pending()).await.unwrap();
    let (alerts, decisions) = common::stored(&first).await;
    assert!(alerts.iter().all(|a| a.model_version != "revocation-watch"));
    let (decision, alert) = decisions
        .iter()
        .filter(|d| d.action == Action::RevokeToken)
        .map(|d| (d, alerts.iter().find(|a| a.id == d.alert_id).unwrap()))
        .filter(|(d, a)| {
            a.window_end.timestamp_millis() <= end_ms - 12 * MINUTE_MS
                && !api_with_token(&d.value).is_empty()
        })
        .min_by_key(|(d, a)| (a.window_end, d.id.clone()))
        .expect("no token revoked early enough in the traffic");
    let revoked_at = alert.window_end.timestamp_millis();
    let token = decision.value.clone();
    let template = api_with_token(&token)
        .into_iter()
        .rfind(|e| e.ts.millis() <= revoked_at)
        .unwrap();

    // Second run, watching: the token's later requests are gone; two come back well after
    // the grace period, one refused (the revocation working) and one served.
    let mut second_events: Vec<Event> = events
        .iter()
        .filter(|e| {
            !matches!(e, Event::Api(a)
                if a.identity.token_id.as_deref() == Some(token.as_str())
                    && a.ts.millis() > revoked_at)
        })
        .cloned()
        .collect();
    second_events.push(reuse(
        &template,
        revoked_at + 6 * MINUTE_MS,
        "reuse-refused",
        401,
    ));
    second_events.push(reuse(
        &template,
        revoked_at + 8 * MINUTE_MS,
        "reuse-served",
        200,
    ));
    second_events.sort_by_key(|e| e.ts());
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let input = second_dir.join("traffic.jsonl");
    write_events(&input, &second_events);
    let mut second = common::replay_config(&second_dir, input);
    second.pipeline.batch_size = 64;
    second.revocation_watch = Some(WatchConfig {
        grace_secs: 30,
        ..WatchConfig::default()
    });
    let summary = service::run(&second, std::future::pending()).await.unwrap();

    let (alerts, decisions) = common::stored(&second).await;
    assert!(
        decisions.iter().any(|d| d.id == decision.id),
        "the same revocation is decided again"
    );
    let watch_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| a.model_version == "revocation-watch")
        .collect();
    assert_eq!(
        summary.stats.revocation_findings as usize,
        watch_alerts.len()
    );
    assert!(watch_alerts
        .iter()
        .all(|a| !a.evidence_request_ids.contains(&"reuse-refused".to_owned())));
    let store = EmbeddedStore::open(&second.alerts.data_dir).unwrap();
    let mut found = None;
    for a in &watch_alerts {
        let notes = store.notes(&a.id).await.unwrap();
        if notes.iter().any(|n| n.text.contains(&decision.id)) {
            found = Some((a, notes));
        }
    }
    let (finding, notes) = found.expect("no alert for the revoked token that still worked");
    assert_eq!(
        finding.evidence_request_ids,
        vec!["reuse-served".to_owned()]
    );
    assert_eq!(
        finding.identity,
        Event::Api(template.clone()).identity_key()
    );
    // The watcher spells a bare token id as `jti:<id>`: the same token.
    let same_token = |id: &str| id.strip_prefix("jti:").unwrap_or(id) == token;
    assert!(
        finding.token_ids.len() == 1 && same_token(&finding.token_ids[0]),
        "{:?}",
        finding.token_ids
    );
    assert_eq!(finding.severity, outrider_alerts::Severity::High);
    assert!(
        notes[0].text.contains("did not take effect"),
        "{}",
        notes[0].text
    );
    assert!(notes[0].text.contains("answered 200"), "{}", notes[0].text);
    // Findings are grouped and decided on like any other alert: the first for an identity
    // is raised and the built-in policy decides on it, repeats are suppressed.
    assert!(summary.stats.suppressed_alerts > 0);
    let decided = watch_alerts
        .iter()
        .find(|a| decisions.iter().any(|d| d.alert_id == a.id))
        .expect("no decision on a revocation finding");
    let ids = |ds: &mut dyn Iterator<Item = &Decision>| -> BTreeSet<String> {
        ds.map(|d| d.id.clone()).collect()
    };
    let builtin = PolicySet::builtin(second.decisions.ttl_secs, false);
    assert_eq!(
        ids(&mut decisions.iter().filter(|d| d.alert_id == decided.id)),
        ids(&mut builtin.decide(decided, chrono::Utc::now()).iter())
    );
}
