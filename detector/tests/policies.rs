#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Policy files drive the detector's decisions: each decision names the policy that made
//! it, and shadow-mode decisions are stored but never enqueued or sent.

mod common;

use std::collections::{BTreeSet, HashMap};

use outrider_alerts::{Alert, Decision, Outbox, PolicySet};
use outrider_detector::service;

/// The policy a decision's origin names (`policy:<name>`).
fn policy_of(d: &Decision) -> &str {
    d.origin
        .strip_prefix("policy:")
        .unwrap_or_else(|| panic!("origin {:?} names no policy", d.origin))
}

/// Ids of the decisions in the outbox at `dir`.
fn enqueued(dir: &std::path::Path) -> BTreeSet<String> {
    let outbox = Outbox::open(dir).unwrap();
    outbox
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.decision.id)
        .collect()
}

#[tokio::test]
async fn a_policy_file_makes_the_decisions_and_each_names_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(60, 30));
    let (hook_url, mut deliveries) = common::start_receiver().await;
    std::env::set_var(common::WEBHOOK_SECRET_ENV, common::WEBHOOK_SECRET);
    let mut config = common::replay_config(dir.path(), input);
    let policy_file = common::example_policy("strict.toml");
    config.decisions.policy_file = Some(policy_file.clone());
    config.decisions.targets = vec![common::webhook_target(&hook_url)];

    let summary = service::run(&config, std::future::pending()).await.unwrap();
    let (alerts, decisions) = common::stored(&config).await;
    assert!(!decisions.is_empty(), "no decisions: {:?}", summary.stats);
    assert_eq!(decisions.len() as u64, summary.stats.decisions);
    let policies = PolicySet::load(&policy_file).unwrap();
    let by_id: HashMap<&str, &Alert> = alerts.iter().map(|a| (a.id.as_str(), a)).collect();
    // strict.toml: these two make only shadow decisions, every other policy enforces.
    let shadow_policies = ["medium-throttle-trial", "service-accounts-review-only"];
    for d in &decisions {
        let name = policy_of(d);
        let alert = by_id[d.alert_id.as_str()];
        assert!(
            policies.matching(alert).contains(&name),
            "{name} does not match the alert of {d:?}"
        );
        assert!(d.reason.starts_with(&format!("policy {name}:")), "{d:?}");
        assert_eq!(d.simulated, shadow_policies.contains(&name), "{d:?}");
    }

    // Exactly the enforcing decisions went into the outbox, and reached the receiver.
    let live: BTreeSet<String> = decisions
        .iter()
        .filter(|d| !d.simulated)
        .map(|d| d.id.clone())
        .collect();
    assert!(!live.is_empty());
    assert_eq!(enqueued(&config.alerts.data_dir), live);
    let mut received = BTreeSet::new();
    while let Ok(d) = deliveries.try_recv() {
        assert!(common::signature_is_valid(&d));
        received.insert(d.idempotency_key);
    }
    assert_eq!(received, live, "the run drains the outbox before returning");
    assert_eq!(summary.outbox_pending, 0);
}

#[tokio::test]
async fn shadow_mode_stores_decisions_but_never_enqueues_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(60, 30));
    let (hook_url, mut deliveries) = common::start_receiver().await;
    std::env::set_var(common::WEBHOOK_SECRET_ENV, common::WEBHOOK_SECRET);
    // The shadow policy file, and the global switch on the built-in policy.
    let shadow_file = (Some(common::example_policy("shadow.toml")), false);
    let global_switch = (None, true);
    for (run, (policy_file, simulated)) in [shadow_file, global_switch].into_iter().enumerate() {
        let mut config = common::replay_config(&dir.path().join(run.to_string()), input.clone());
        config.decisions.policy_file = policy_file;
        config.decisions.simulated = simulated;
        config.decisions.targets = vec![common::webhook_target(&hook_url)];

        let summary = service::run(&config, std::future::pending()).await.unwrap();
        let (_, decisions) = common::stored(&config).await;
        assert!(!decisions.is_empty(), "run {run}: no decisions");
        assert_eq!(summary.stats.simulated_decisions, decisions.len() as u64);
        let names = [
            "block-anonymous-ips",
            "revoke-seen-tokens",
            "block-identity",
        ];
        for d in &decisions {
            assert!(d.simulated, "run {run}: {d:?}");
            assert!(names.contains(&policy_of(d)), "run {run}: {d:?}");
        }
        assert!(enqueued(&config.alerts.data_dir).is_empty(), "run {run}");
        assert_eq!(summary.outbox_pending, 0);
    }
    assert!(
        deliveries.try_recv().is_err(),
        "a shadow decision reached the receiver"
    );
}
