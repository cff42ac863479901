//! The contract every [`AlertStore`] must meet, run against each implementation.
//!
//! Timestamps are whole seconds so that stores with second precision (ClickHouse
//! `DateTime`) must round-trip every field exactly.

use chrono::{DateTime, TimeZone, Utc};

use crate::model::{
    alert_id, decision_id, Action, Alert, AlertQuery, AlertStatus, Decision, FeatureContribution,
    Scope, Severity,
};
use crate::store::AlertStore;

const T0: i64 = 1_700_000_000;

pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .expect("valid test timestamp")
}

pub(crate) fn sample_alert(identity: &str, window_end: DateTime<Utc>, severity: Severity) -> Alert {
    Alert {
        id: alert_id(identity, window_end, "iforest"),
        created_at: window_end + chrono::Duration::seconds(5),
        window_start: window_end - chrono::Duration::seconds(60),
        window_end,
        identity: identity.to_owned(),
        apis: vec!["GET /v1/users/{id}".into(), "POST /v1/export".into()],
        client_ips: vec!["10.0.0.7".into()],
        token_ids: vec!["tok-1".into(), "tok-2".into()],
        score: 0.875,
        threshold: 0.75,
        severity,
        model_version: "iforest-2024-01".into(),
        features: vec![
            FeatureContribution {
                name: "distinct_object_ids".into(),
                value: 120.0,
                baseline: 4.0,
                baseline_p99: 15.5,
                contribution: 0.5,
            },
            FeatureContribution {
                name: "error_ratio".into(),
                value: 0.25,
                baseline: 0.0,
                baseline_p99: 0.125,
                contribution: 0.25,
            },
        ],
        evidence_request_ids: vec!["req-1".into(), "req-2".into()],
        event_count: 321,
        status: AlertStatus::Open,
    }
}

pub(crate) fn sample_decision(
    alert: &Alert,
    action: Action,
    scope: Scope,
    value: &str,
    created_at: DateTime<Utc>,
) -> Decision {
    Decision {
        id: decision_id(&alert.id, action, scope, value),
        alert_id: alert.id.clone(),
        created_at,
        action,
        scope,
        value: value.to_owned(),
        ttl_secs: 3600,
        origin: "policy:default".into(),
        simulated: action == Action::Notify,
        reason: format!("{} on {}", action.as_str(), alert.identity),
    }
}

/// Newest window_end first, ties by larger id first: the order every store promises.
fn newest_first(mut alerts: Vec<Alert>) -> Vec<Alert> {
    alerts.sort_by(|a, b| b.window_end.cmp(&a.window_end).then(b.id.cmp(&a.id)));
    alerts
}

fn ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.id.as_str()).collect()
}

/// Runs the whole contract against an empty store.
pub(crate) async fn run_suite(store: &dyn AlertStore) {
    assert_eq!(
        store.count_alerts().await.expect("count"),
        0,
        "store must start empty"
    );
    let alerts = check_alert_inserts(store).await;
    check_alert_queries(store, &alerts).await;
    check_decisions(store, &alerts).await;
}

async fn check_alert_inserts(store: &dyn AlertStore) -> Vec<Alert> {
    let mut low = sample_alert("sub:alice", t(T0 + 60), Severity::Low);
    low.status = AlertStatus::Acknowledged;
    let alerts = vec![
        low,
        sample_alert("sub:alice", t(T0 + 120), Severity::High),
        sample_alert("sub:alice", t(T0 + 180), Severity::Critical),
        sample_alert("ip:1.2.3.4", t(T0 + 120), Severity::Medium),
        sample_alert("ip:1.2.3.4", t(T0 + 240), Severity::Low),
    ];
    store.insert_alerts(&alerts).await.expect("insert alerts");
    store.insert_alerts(&[]).await.expect("empty insert");
    assert_eq!(store.count_alerts().await.expect("count"), 5);

    // Re-inserting (even a changed copy under the same id) changes nothing visible.
    let mut changed = alerts[1].clone();
    changed.score = 0.99;
    changed.severity = Severity::Critical;
    store.insert_alerts(&alerts).await.expect("re-insert");
    store
        .insert_alerts(std::slice::from_ref(&changed))
        .await
        .expect("re-insert changed");
    assert_eq!(
        store.count_alerts().await.expect("count"),
        5,
        "re-insert duplicated"
    );
    alerts
}

async fn check_alert_queries(store: &dyn AlertStore, alerts: &[Alert]) {
    let all = newest_first(alerts.to_vec());
    let got = store
        .alerts(&AlertQuery::default())
        .await
        .expect("query all");
    assert_eq!(
        got, all,
        "full round trip, newest first, first version kept"
    );

    let alice = AlertQuery {
        identity: Some("sub:alice".into()),
        ..AlertQuery::default()
    };
    let got = store.alerts(&alice).await.expect("query identity");
    let want: Vec<_> = all
        .iter()
        .filter(|a| a.identity == "sub:alice")
        .cloned()
        .collect();
    assert_eq!(ids(&got), ids(&want));

    let window = AlertQuery {
        since: Some(t(T0 + 120)),
        until: Some(t(T0 + 240)),
        ..AlertQuery::default()
    };
    let got = store.alerts(&window).await.expect("query window");
    let want: Vec<_> = all
        .iter()
        .filter(|a| a.window_end >= t(T0 + 120) && a.window_end < t(T0 + 240))
        .cloned()
        .collect();
    assert_eq!(want.len(), 3);
    assert_eq!(ids(&got), ids(&want), "since inclusive, until exclusive");

    let severe = AlertQuery {
        min_severity: Some(Severity::High),
        ..AlertQuery::default()
    };
    let got = store.alerts(&severe).await.expect("query severity");
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|a| a.severity >= Severity::High));
    assert_eq!(got[0].severity, Severity::Critical);

    // The re-inserted copy of alerts[1] claimed Critical; only the kept first version
    // (High) may count, so this must find exactly the one real Critical alert.
    let critical = AlertQuery {
        min_severity: Some(Severity::Critical),
        ..AlertQuery::default()
    };
    let got = store.alerts(&critical).await.expect("query critical");
    assert_eq!(
        ids(&got),
        vec![alerts[2].id.as_str()],
        "stale duplicate leaked"
    );

    let limited = AlertQuery {
        limit: 2,
        ..AlertQuery::default()
    };
    let got = store.alerts(&limited).await.expect("query limit");
    assert_eq!(ids(&got), ids(&all[..2]));

    let combined = AlertQuery {
        identity: Some("ip:1.2.3.4".into()),
        min_severity: Some(Severity::Medium),
        since: Some(t(T0)),
        until: None,
        limit: 10,
    };
    let got = store.alerts(&combined).await.expect("query combined");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].severity, Severity::Medium);
}

async fn check_decisions(store: &dyn AlertStore, alerts: &[Alert]) {
    let critical = &alerts[2];
    let other = &alerts[3];
    let decisions = vec![
        sample_decision(
            critical,
            Action::RevokeToken,
            Scope::Token,
            "tok-1",
            t(T0 + 200),
        ),
        sample_decision(critical, Action::Block, Scope::Ip, "10.0.0.7", t(T0 + 201)),
        sample_decision(
            critical,
            Action::Notify,
            Scope::Identity,
            "sub:alice",
            t(T0 + 202),
        ),
        sample_decision(other, Action::Throttle, Scope::Ip, "1.2.3.4", t(T0 + 150)),
    ];
    store
        .insert_decisions(&decisions)
        .await
        .expect("insert decisions");
    store
        .insert_decisions(&decisions)
        .await
        .expect("re-insert decisions");

    let all = store.decisions(None, 10).await.expect("decisions");
    let want: Vec<_> = [2, 1, 0, 3].iter().map(|&i| decisions[i].clone()).collect();
    assert_eq!(
        all, want,
        "decisions round trip, newest first, no duplicates"
    );

    let for_critical = store
        .decisions(Some(&critical.id), 10)
        .await
        .expect("decisions by alert");
    assert_eq!(for_critical, want[..3].to_vec());

    let newest = store.decisions(None, 1).await.expect("decisions limit");
    assert_eq!(newest, want[..1].to_vec());

    let none = store
        .decisions(Some("no-such-alert"), 10)
        .await
        .expect("decisions for unknown alert");
    assert!(none.is_empty());
}
