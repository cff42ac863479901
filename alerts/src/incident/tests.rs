//! Incident grouping and suppression, in event time.

use chrono::{DateTime, Utc};

use super::*;
use crate::model::{alert_id, FeatureContribution};

const T0: i64 = 1_700_000_000;
const MIN: i64 = 60;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).expect("valid time")
}

fn alert(identity: &str, at: i64, severity: Severity, reason: &str, ips: &[&str]) -> Alert {
    let mut a = crate::store::tests::sample_alert(identity, t(at), severity);
    a.id = alert_id(identity, t(at), "iforest");
    a.client_ips = ips.iter().map(|s| (*s).to_owned()).collect();
    a.features = vec![
        FeatureContribution {
            name: "requests_per_min".into(),
            value: 1.0,
            baseline: 1.0,
            baseline_p99: 1.0,
            contribution: 0.1,
        },
        FeatureContribution {
            name: reason.into(),
            value: 100.0,
            baseline: 1.0,
            baseline_p99: 2.0,
            contribution: 0.9,
        },
    ];
    a
}

fn grouper(cfg: IncidentConfig) -> IncidentGrouper {
    IncidentGrouper::new(cfg).expect("valid config")
}

fn no_campaigns() -> IncidentConfig {
    IncidentConfig {
        campaign_min_identities: 0,
        ..IncidentConfig::default()
    }
}

#[test]
fn the_reason_is_the_largest_contribution() {
    let a = alert("sub:alice", 0, Severity::High, "distinct_object_ids", &[]);
    assert_eq!(alert_reason(&a), "distinct_object_ids");
    let mut bare = a.clone();
    bare.features.clear();
    assert_eq!(alert_reason(&bare), "model:iforest-2024-01");
}

#[test]
fn one_identitys_alerts_form_one_incident() {
    let mut g = grouper(no_campaigns());
    let alerts = [
        alert("sub:alice", 0, Severity::Medium, "distinct_object_ids", &[]),
        alert("sub:alice", 10 * MIN, Severity::Critical, "ratio_403", &[]),
        alert("sub:alice", 20 * MIN, Severity::High, "bytes_out", &[]),
        alert("sub:bob", 5 * MIN, Severity::Low, "bytes_out", &[]),
    ];
    let batch = g.group(&alerts);
    assert_eq!(batch.raised.len(), 4);
    assert_eq!(batch.incidents.len(), 2);
    let alice = batch
        .incidents
        .iter()
        .find(|i| i.key == "sub:alice")
        .expect("alice's incident");
    assert_eq!(alice.kind, IncidentKind::Identity);
    assert_eq!(
        alice.id,
        incident_id(IncidentKind::Identity, "sub:alice", t(0))
    );
    assert_eq!((alice.first_seen, alice.last_seen), (t(0), t(20 * MIN)));
    let ids: Vec<&str> = alerts[..3].iter().map(|a| a.id.as_str()).collect();
    assert_eq!(alice.alert_ids, ids);
    assert_eq!(alice.max_severity, Severity::Critical);
    assert_eq!(alice.alert_count, 3);
    assert_eq!(alice.status, AlertStatus::Open);
    assert_eq!(
        alice.reasons,
        ["distinct_object_ids", "ratio_403", "bytes_out"]
    );
    assert!(batch.outcomes[..3]
        .iter()
        .all(|o| o.incident_id == alice.id && o.verdict == Verdict::Raised));
    assert!(g.take_changed().is_empty(), "nothing changed since");
}

#[test]
fn a_quiet_gap_closes_the_incident_and_the_next_alert_opens_another() {
    let mut g = grouper(no_campaigns());
    let first = g.group(&[alert("sub:alice", 0, Severity::High, "a", &[])]);
    let later = g.group(&[alert("sub:alice", 2 * 3600, Severity::High, "a", &[])]);
    assert_eq!(later.outcomes[0].verdict, Verdict::Raised);
    assert_ne!(later.outcomes[0].incident_id, first.outcomes[0].incident_id);
    assert_eq!(
        later.outcomes[0].incident_id,
        incident_id(IncidentKind::Identity, "sub:alice", t(2 * 3600))
    );
    assert_eq!(g.open_count(), 1, "the first incident was closed");
    // Within the gap (one hour), an alert still joins.
    let joined = g.group(&[alert(
        "sub:alice",
        2 * 3600 + 3599,
        Severity::High,
        "b",
        &[],
    )]);
    assert_eq!(
        joined.outcomes[0].incident_id,
        later.outcomes[0].incident_id
    );
}

#[test]
fn repeats_within_the_window_are_folded_into_the_incident() {
    let mut g = grouper(no_campaigns());
    let first = alert("sub:alice", 0, Severity::High, "distinct_object_ids", &[]);
    let repeat = alert(
        "sub:alice",
        5 * MIN,
        Severity::High,
        "distinct_object_ids",
        &[],
    );
    let weaker = alert(
        "sub:alice",
        10 * MIN,
        Severity::Medium,
        "distinct_object_ids",
        &[],
    );
    let other_reason = alert("sub:alice", 11 * MIN, Severity::Medium, "ratio_403", &[]);
    let after_window = alert(
        "sub:alice",
        15 * MIN,
        Severity::High,
        "distinct_object_ids",
        &[],
    );
    let batch = g.group(&[
        first.clone(),
        repeat.clone(),
        weaker,
        other_reason.clone(),
        after_window.clone(),
    ]);
    let verdicts: Vec<_> = batch.outcomes.iter().map(|o| o.verdict.clone()).collect();
    let repeats_first = Verdict::Suppressed {
        repeats: first.id.clone(),
    };
    assert_eq!(
        verdicts,
        vec![
            Verdict::Raised,
            repeats_first.clone(),
            repeats_first,
            Verdict::Raised,
            Verdict::Raised, // exactly 15 minutes after the first: the window is over
        ]
    );
    let raised: Vec<_> = batch.raised.iter().map(|a| a.id.clone()).collect();
    assert_eq!(raised, vec![first.id, other_reason.id, after_window.id]);
    let incident = &batch.incidents[0];
    assert_eq!(incident.alert_count, 3);
    assert_eq!(incident.suppressed_count, 2);
    assert_eq!(incident.last_seen, t(15 * MIN));
    assert!(!incident.alert_ids.contains(&repeat.id));
}

#[test]
fn a_more_severe_repeat_is_raised() {
    let mut g = grouper(no_campaigns());
    let batch = g.group(&[
        alert("sub:alice", 0, Severity::Medium, "a", &[]),
        alert("sub:alice", MIN, Severity::Critical, "a", &[]),
        alert("sub:alice", 2 * MIN, Severity::High, "a", &[]),
    ]);
    assert_eq!(batch.outcomes[1].verdict, Verdict::Raised, "escalation");
    assert_eq!(
        batch.outcomes[2].verdict,
        Verdict::Suppressed {
            repeats: batch.outcomes[1].alert_id.clone()
        },
        "now measured against the critical one"
    );
    assert_eq!(batch.incidents[0].max_severity, Severity::Critical);
}

#[test]
fn suppression_by_identity_ignores_the_reason_and_zero_turns_it_off() {
    let alerts = [
        alert("sub:alice", 0, Severity::High, "a", &[]),
        alert("sub:alice", MIN, Severity::High, "b", &[]),
        alert("sub:alice", 2 * MIN, Severity::High, "a", &[]),
    ];
    let mut by_identity = grouper(IncidentConfig {
        suppress_by: SuppressBy::Identity,
        ..no_campaigns()
    });
    assert_eq!(by_identity.group(&alerts).raised.len(), 1);
    let mut off = grouper(IncidentConfig {
        suppress_secs: 0,
        ..no_campaigns()
    });
    assert_eq!(off.group(&alerts).raised.len(), 3);
}

#[test]
fn a_replayed_alert_is_a_duplicate_and_changes_nothing() {
    let mut g = grouper(no_campaigns());
    let a = alert("sub:alice", 0, Severity::High, "a", &[]);
    let first = g.group(std::slice::from_ref(&a));
    let again = g.group(std::slice::from_ref(&a));
    assert_eq!(again.outcomes[0].verdict, Verdict::Duplicate);
    assert_eq!(again.outcomes[0].incident_id, first.outcomes[0].incident_id);
    assert!(again.raised.is_empty());
    assert!(again.incidents.is_empty(), "nothing changed");
}

#[test]
fn identities_alerting_from_one_ip_form_a_campaign() {
    let mut g = grouper(IncidentConfig::default());
    let ip = "203.0.113.9";
    let first_two = g.group(&[
        alert("sub:v1", 0, Severity::Medium, "ratio_401", &[ip]),
        alert(
            "sub:v2",
            MIN,
            Severity::High,
            "ratio_401",
            &[ip, "10.0.0.1"],
        ),
    ]);
    assert!(first_two.outcomes.iter().all(|o| o.campaign_ids.is_empty()));
    assert_eq!(first_two.incidents.len(), 2, "two identity incidents only");

    let third = g.group(&[alert(
        "sub:v3",
        2 * MIN,
        Severity::Medium,
        "ratio_401",
        &[ip],
    )]);
    let campaign_id = incident_id(IncidentKind::Campaign, &format!("ip:{ip}"), t(0));
    assert_eq!(third.outcomes[0].campaign_ids, vec![campaign_id.clone()]);
    let campaign = third
        .incidents
        .iter()
        .find(|i| i.kind == IncidentKind::Campaign)
        .expect("campaign incident");
    assert_eq!(campaign.id, campaign_id);
    assert_eq!(campaign.key, format!("ip:{ip}"));
    assert_eq!(campaign.identities, ["sub:v1", "sub:v2", "sub:v3"]);
    assert_eq!(campaign.alert_count, 3);
    assert_eq!(campaign.max_severity, Severity::High);
    assert_eq!(
        (campaign.first_seen, campaign.last_seen),
        (t(0), t(2 * MIN))
    );

    let fourth = g.group(&[alert("sub:v4", 3 * MIN, Severity::Critical, "x", &[ip])]);
    assert_eq!(fourth.outcomes[0].campaign_ids, vec![campaign_id.clone()]);
    let campaign = fourth
        .incidents
        .iter()
        .find(|i| i.id == campaign_id)
        .expect("campaign updated");
    assert_eq!(campaign.alert_count, 4);
    assert_eq!(campaign.identities.len(), 4);
    assert_eq!(campaign.max_severity, Severity::Critical);

    // The other IP of sub:v2 never reached three identities.
    let other = g.group(&[alert("sub:v5", 4 * MIN, Severity::Low, "x", &["10.0.0.1"])]);
    assert!(other.outcomes[0].campaign_ids.is_empty());
}

#[test]
fn identities_apart_by_more_than_the_gap_make_no_campaign() {
    let mut g = grouper(IncidentConfig::default());
    let ip = "203.0.113.9";
    let batch = g.group(&[
        alert("sub:v1", 0, Severity::High, "a", &[ip]),
        alert("sub:v2", 2 * 3600, Severity::High, "a", &[ip]),
        alert("sub:v3", 4 * 3600, Severity::High, "a", &[ip]),
    ]);
    assert!(batch.outcomes.iter().all(|o| o.campaign_ids.is_empty()));
}

#[test]
fn grouping_is_deterministic() {
    let alerts: Vec<Alert> = (0..40)
        .map(|i| {
            let who = format!("sub:u{}", i % 7);
            let ip = format!("198.51.100.{}", i % 3);
            let severity = [Severity::Low, Severity::High, Severity::Critical][i % 3];
            alert(
                &who,
                i as i64 * 20,
                severity,
                &format!("f{}", i % 2),
                &[&ip],
            )
        })
        .collect();
    let run = || {
        let mut g = grouper(IncidentConfig::default());
        let batch = g.group(&alerts);
        (batch.outcomes, batch.incidents)
    };
    let (outcomes, incidents) = run();
    assert_eq!(run(), (outcomes.clone(), incidents.clone()));
    assert!(incidents.iter().any(|i| i.kind == IncidentKind::Campaign));
    assert!(outcomes
        .iter()
        .any(|o| matches!(o.verdict, Verdict::Suppressed { .. })));
}

#[test]
fn restored_incidents_continue_after_a_restart() {
    let mut before = grouper(no_campaigns());
    let a0 = alert("sub:alice", 0, Severity::High, "a", &[]);
    let stored = before.group(std::slice::from_ref(&a0)).incidents;

    let mut after = grouper(no_campaigns());
    after.restore(stored.clone());
    let batch = after.group(&[
        a0.clone(),                                            // replayed
        alert("sub:alice", 5 * MIN, Severity::High, "a", &[]), // a repeat
        alert("sub:alice", 6 * MIN, Severity::High, "b", &[]), // new
    ]);
    assert_eq!(batch.outcomes[0].verdict, Verdict::Duplicate);
    assert!(matches!(
        batch.outcomes[1].verdict,
        Verdict::Suppressed { .. }
    ));
    assert_eq!(batch.outcomes[2].verdict, Verdict::Raised);
    assert!(batch.outcomes.iter().all(|o| o.incident_id == stored[0].id));
    assert_eq!(batch.incidents[0].alert_count, 2);
}

#[test]
fn open_incidents_are_capped_least_recent_first() {
    let mut g = grouper(IncidentConfig {
        max_open: 2,
        ..no_campaigns()
    });
    let batch = g.group(&[
        alert("sub:a", 0, Severity::High, "x", &[]),
        alert("sub:b", 10, Severity::High, "x", &[]),
        alert("sub:c", 20, Severity::High, "x", &[]),
        alert("sub:c", 90, Severity::High, "y", &[]),
    ]);
    assert_eq!(g.open_count(), 2);
    assert_eq!(
        batch.incidents.len(),
        3,
        "closed incidents are still reported"
    );
    // sub:a's incident was closed: its next alert opens a new one.
    let next = g.group(&[alert("sub:a", 100, Severity::High, "z", &[])]);
    assert_eq!(
        next.outcomes[0].incident_id,
        incident_id(IncidentKind::Identity, "sub:a", t(100))
    );
}

#[test]
fn alerts_at_the_edges_of_time_do_not_panic() {
    let mut g = grouper(IncidentConfig::default());
    let mut early = alert("sub:alice", 0, Severity::High, "a", &["192.0.2.1"]);
    early.window_end = DateTime::<Utc>::MIN_UTC;
    let mut late = alert("sub:alice", 0, Severity::High, "a", &["192.0.2.1"]);
    late.id = "late".into();
    late.window_end = DateTime::<Utc>::MAX_UTC;
    let batch = g.group(&[early, late]);
    assert_eq!(batch.outcomes.len(), 2);
    assert_eq!(batch.raised.len(), 2, "far apart: no suppression");
}

#[test]
fn bad_configs_are_refused() {
    let check = |cfg: IncidentConfig| IncidentGrouper::new(cfg).unwrap_err().to_string();
    assert!(check(IncidentConfig {
        gap_secs: 0,
        ..IncidentConfig::default()
    })
    .contains("gap_secs"));
    assert!(check(IncidentConfig {
        gap_secs: u64::MAX,
        suppress_secs: 0,
        ..IncidentConfig::default()
    })
    .contains("a year"));
    assert!(check(IncidentConfig {
        suppress_secs: 7200,
        ..IncidentConfig::default()
    })
    .contains("suppress_secs"));
    assert!(check(IncidentConfig {
        campaign_min_identities: 1,
        ..IncidentConfig::default()
    })
    .contains("campaign_min_identities"));
    let err = toml::from_str::<IncidentConfig>("gap_sec = 5").unwrap_err();
    assert!(err.to_string().contains("gap_sec"), "{err}");
}

#[test]
fn merge_keeps_the_analysts_status_and_widens_the_rest() {
    let mut stored = Incident::open(IncidentKind::Identity, "sub:alice", t(100));
    stored.alert_ids = vec!["a1".into()];
    stored.alert_count = 1;
    stored.status = AlertStatus::FalsePositive;
    let mut newer = Incident::open(IncidentKind::Identity, "sub:alice", t(100));
    newer.first_seen = t(50);
    newer.last_seen = t(400);
    newer.alert_ids = vec!["a1".into(), "a2".into()];
    newer.alert_count = 2;
    newer.max_severity = Severity::High;
    stored.merge(&newer);
    assert_eq!(stored.status, AlertStatus::FalsePositive);
    assert_eq!((stored.first_seen, stored.last_seen), (t(50), t(400)));
    assert_eq!(stored.alert_ids, ["a1", "a2"]);
    assert_eq!(stored.alert_count, 2);
    assert_eq!(stored.max_severity, Severity::High);
    newer.status = AlertStatus::Resolved;
    stored.merge(&newer);
    assert_eq!(
        stored.status,
        AlertStatus::Resolved,
        "an explicit status wins"
    );
}
