//! The contract every [`AlertStore`] must meet, run against each implementation.
//!
//! Timestamps are whole seconds so that stores with second precision (ClickHouse
//! `DateTime`) must round-trip every field exactly.

use chrono::{DateTime, TimeZone, Utc};

use crate::incident::{Incident, IncidentKind, IncidentQuery};
use crate::model::{
    alert_id, decision_id, Action, Alert, AlertNote, AlertQuery, AlertStatus, CountBucket,
    CountQuery, Decision, FeatureContribution, Scope, Severity,
};
use crate::store::AlertStore;
use crate::Error;

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
        // Every round trip below checks that rule hits survive the store.
        rule_hits: vec![crate::RuleHit {
            rule: "token_ips".into(),
            severity: Severity::High,
            reason: "token used from 7 distinct IPs in 60 s (limit 3)".into(),
        }],
        risk: Some(0.9975),
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
    check_counts(store).await;
    check_status_updates(store, &alerts).await;
    check_notes(store, &alerts).await;
    check_incidents(store, &alerts).await;
}

async fn check_alert_inserts(store: &dyn AlertStore) -> Vec<Alert> {
    let mut low = sample_alert("sub:alice", t(T0 + 60), Severity::Low);
    low.status = AlertStatus::Acknowledged;
    let alerts = vec![
        low,
        sample_alert("sub:alice", t(T0 + 120), Severity::High),
        sample_alert("sub:alice", t(T0 + 180), Severity::Critical),
        sample_alert("ip:1.2.3.4", t(T0 + 120), Severity::Medium),
        {
            let mut health = sample_alert("ip:1.2.3.4", t(T0 + 240), Severity::Low);
            health.apis = vec!["GET /v1/health".into()];
            health
        },
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
        api: None,
        status: None,
        limit: 10,
    };
    let got = store.alerts(&combined).await.expect("query combined");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].severity, Severity::Medium);

    let by_api = |api: &str| AlertQuery {
        api: Some(api.into()),
        ..AlertQuery::default()
    };
    let got = store
        .alerts(&by_api("GET /v1/health"))
        .await
        .expect("query api");
    assert_eq!(ids(&got), vec![alerts[4].id.as_str()]);
    let got = store
        .alerts(&by_api("POST /v1/export"))
        .await
        .expect("query api");
    assert_eq!(got.len(), 4, "every alert but the health one");
    let got = store.alerts(&by_api("POST /v1")).await.expect("query api");
    assert!(got.is_empty(), "api matches whole route templates only");

    let acknowledged = AlertQuery {
        status: Some(AlertStatus::Acknowledged),
        ..AlertQuery::default()
    };
    let got = store.alerts(&acknowledged).await.expect("query status");
    assert_eq!(ids(&got), vec![alerts[0].id.as_str()]);

    let found = store.alert(&alerts[3].id).await.expect("get alert");
    assert_eq!(found.as_ref(), Some(&alerts[3]));
    assert_eq!(
        store.alert("no-such-alert").await.expect("get unknown"),
        None
    );
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

async fn check_counts(store: &dyn AlertStore) {
    // Two-minute buckets: T0 + 60 and T0 + 120 fall in the bucket starting at
    // 1_700_000_040, T0 + 180 and T0 + 240 in the one starting at 1_700_000_160.
    let two_minutes = CountQuery {
        bucket_secs: 120,
        ..CountQuery::hourly()
    };
    let got = store.alert_counts(&two_minutes).await.expect("counts");
    let bucket = |start: i64, severity: Option<Severity>, count: u64| CountBucket {
        start: t(start),
        severity,
        count,
    };
    assert_eq!(
        got,
        vec![
            bucket(1_700_000_040, None, 3),
            bucket(1_700_000_160, None, 2)
        ]
    );

    let by_severity = CountQuery {
        by_severity: true,
        ..two_minutes.clone()
    };
    let got = store
        .alert_counts(&by_severity)
        .await
        .expect("counts by severity");
    assert_eq!(
        got,
        vec![
            bucket(1_700_000_040, Some(Severity::Low), 1),
            bucket(1_700_000_040, Some(Severity::Medium), 1),
            bucket(1_700_000_040, Some(Severity::High), 1),
            bucket(1_700_000_160, Some(Severity::Low), 1),
            bucket(1_700_000_160, Some(Severity::Critical), 1),
        ]
    );

    let alice = CountQuery {
        filter: AlertQuery {
            identity: Some("sub:alice".into()),
            since: Some(t(T0 + 100)),
            ..AlertQuery::default()
        },
        ..two_minutes.clone()
    };
    let got = store.alert_counts(&alice).await.expect("filtered counts");
    assert_eq!(
        got,
        vec![
            bucket(1_700_000_040, None, 1),
            bucket(1_700_000_160, None, 1)
        ]
    );

    let hourly = store
        .alert_counts(&CountQuery::hourly())
        .await
        .expect("hourly");
    assert_eq!(hourly, vec![bucket(1_699_999_200, None, 5)], "22:00 UTC");

    let zero = CountQuery {
        bucket_secs: 0,
        ..CountQuery::hourly()
    };
    let err = store.alert_counts(&zero).await.expect_err("zero bucket");
    assert!(matches!(err, Error::InvalidQuery(_)), "{err}");
}

async fn check_status_updates(store: &dyn AlertStore, alerts: &[Alert]) {
    let target = &alerts[1];
    assert!(store
        .set_alert_status(&target.id, AlertStatus::Resolved)
        .await
        .expect("set status"));
    let got = store.alert(&target.id).await.expect("get").expect("exists");
    assert_eq!(got.status, AlertStatus::Resolved);
    assert_eq!(got.score, target.score, "only the status changed");

    // A replay re-inserts the alert as it was first raised: the status must survive.
    store.insert_alerts(alerts).await.expect("replay");
    let got = store.alert(&target.id).await.expect("get").expect("exists");
    assert_eq!(got.status, AlertStatus::Resolved, "replay reset the status");
    assert_eq!(store.count_alerts().await.expect("count"), 5);

    let resolved = AlertQuery {
        status: Some(AlertStatus::Resolved),
        ..AlertQuery::default()
    };
    let got = store.alerts(&resolved).await.expect("query resolved");
    assert_eq!(ids(&got), vec![target.id.as_str()]);

    // A second change wins over the first.
    assert!(store
        .set_alert_status(&target.id, AlertStatus::FalsePositive)
        .await
        .expect("set again"));
    let got = store.alert(&target.id).await.expect("get").expect("exists");
    assert_eq!(got.status, AlertStatus::FalsePositive);
    assert!(!store
        .set_alert_status("no-such-alert", AlertStatus::Resolved)
        .await
        .expect("unknown id is not an error"));
}

async fn check_notes(store: &dyn AlertStore, alerts: &[Alert]) {
    let id = &alerts[2].id;
    let note = |at: i64, text: &str| AlertNote {
        alert_id: id.clone(),
        at: t(at),
        author: "soc".into(),
        text: text.into(),
    };
    let second = note(T0 + 900, "token revoked at the IdP as well");
    let first = note(T0 + 600, "looks like credential stuffing");
    store.add_note(&second).await.expect("add note");
    store.add_note(&first).await.expect("add note");
    store.add_note(&first).await.expect("re-add note");
    let got = store.notes(id).await.expect("notes");
    assert_eq!(got, vec![first, second], "oldest first, no duplicate");
    assert!(store.notes(&alerts[0].id).await.expect("notes").is_empty());

    let orphan = AlertNote {
        alert_id: "no-such-alert".into(),
        ..note(T0, "x")
    };
    let err = store
        .add_note(&orphan)
        .await
        .expect_err("note on unknown alert");
    assert!(matches!(err, Error::UnknownId { .. }), "{err}");
}

fn incident(kind: IncidentKind, key: &str, first: i64, last: i64, alerts: &[&Alert]) -> Incident {
    let mut identities: Vec<String> = Vec::new();
    for a in alerts {
        if !identities.contains(&a.identity) {
            identities.push(a.identity.clone());
        }
    }
    Incident {
        id: crate::incident::incident_id(kind, key, t(first)),
        kind,
        key: key.into(),
        first_seen: t(first),
        last_seen: t(last),
        alert_ids: alerts.iter().map(|a| a.id.clone()).collect(),
        identities,
        reasons: vec!["distinct_object_ids".into()],
        max_severity: alerts
            .iter()
            .map(|a| a.severity)
            .max()
            .unwrap_or(Severity::Low),
        status: AlertStatus::Open,
        alert_count: alerts.len() as u64,
        suppressed_count: 1,
    }
}

async fn check_incidents(store: &dyn AlertStore, alerts: &[Alert]) {
    let a = incident(
        IncidentKind::Identity,
        "sub:alice",
        T0 + 60,
        T0 + 180,
        &[&alerts[0], &alerts[1], &alerts[2]],
    );
    let b = incident(
        IncidentKind::Campaign,
        "ip:10.0.0.7",
        T0 + 120,
        T0 + 240,
        &[&alerts[1], &alerts[3], &alerts[4]],
    );
    store
        .upsert_incidents(&[a.clone(), b.clone()])
        .await
        .expect("upsert incidents");
    store.upsert_incidents(&[]).await.expect("empty upsert");

    let query = |q: IncidentQuery| async move {
        let got = store.incidents(&q).await.expect("query incidents");
        got.into_iter().map(|i| i.id).collect::<Vec<_>>()
    };
    let all = store
        .incidents(&IncidentQuery::default())
        .await
        .expect("all incidents");
    assert_eq!(all, vec![b.clone(), a.clone()], "round trip, newest first");
    assert_eq!(
        query(IncidentQuery {
            identity: Some("ip:1.2.3.4".into()),
            ..IncidentQuery::default()
        })
        .await,
        vec![b.id.clone()],
        "identity matches listed identities"
    );
    assert_eq!(
        query(IncidentQuery {
            identity: Some("ip:10.0.0.7".into()),
            ..IncidentQuery::default()
        })
        .await,
        vec![b.id.clone()],
        "identity matches the key"
    );
    assert_eq!(
        query(IncidentQuery {
            kind: Some(IncidentKind::Identity),
            ..IncidentQuery::default()
        })
        .await,
        vec![a.id.clone()]
    );
    assert_eq!(
        query(IncidentQuery {
            min_severity: Some(Severity::Critical),
            ..IncidentQuery::default()
        })
        .await,
        vec![a.id.clone()]
    );
    assert_eq!(
        query(IncidentQuery {
            since: Some(t(T0 + 200)),
            ..IncidentQuery::default()
        })
        .await,
        vec![b.id.clone()],
        "a ended before since"
    );
    assert_eq!(
        query(IncidentQuery {
            until: Some(t(T0 + 100)),
            ..IncidentQuery::default()
        })
        .await,
        vec![a.id.clone()],
        "b began after until"
    );
    assert_eq!(
        query(IncidentQuery {
            limit: 1,
            ..IncidentQuery::default()
        })
        .await,
        vec![b.id.clone()]
    );

    // The analyst's status survives the grouper's next update, which merges.
    assert!(store
        .set_incident_status(&a.id, AlertStatus::Acknowledged)
        .await
        .expect("set incident status"));
    let mut grown = a.clone();
    grown.last_seen = t(T0 + 300);
    grown.alert_ids = vec![alerts[2].id.clone(), "later-alert".into()];
    grown.alert_count = 4;
    grown.suppressed_count = 3;
    store
        .upsert_incidents(std::slice::from_ref(&grown))
        .await
        .expect("upsert grown");
    let stored = store.incident(&a.id).await.expect("get").expect("exists");
    let mut want_ids = a.alert_ids.clone();
    want_ids.push("later-alert".into());
    assert_eq!(stored.alert_ids, want_ids, "ids are merged");
    assert_eq!(stored.first_seen, t(T0 + 60));
    assert_eq!(stored.last_seen, t(T0 + 300));
    assert_eq!((stored.alert_count, stored.suppressed_count), (4, 3));
    assert_eq!(stored.status, AlertStatus::Acknowledged, "status kept");
    assert_eq!(
        query(IncidentQuery {
            status: Some(AlertStatus::Acknowledged),
            ..IncidentQuery::default()
        })
        .await,
        vec![a.id.clone()]
    );
    assert_eq!(
        query(IncidentQuery::default()).await,
        vec![a.id.clone(), b.id.clone()],
        "a is newest now"
    );
    assert_eq!(store.incident("no-such-incident").await.expect("get"), None);
    assert!(!store
        .set_incident_status("no-such-incident", AlertStatus::Resolved)
        .await
        .expect("unknown incident is not an error"));
}
