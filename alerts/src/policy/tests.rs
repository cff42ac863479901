//! Policy files: parsing, checking, matching and deciding.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::*;
use crate::model::{FeatureContribution, Severity};
use crate::store::tests::sample_alert;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_500, 0).expect("valid time")
}

fn alert(identity: &str, severity: Severity) -> Alert {
    let window_end = DateTime::from_timestamp(1_700_000_060, 0).expect("valid time");
    sample_alert(identity, window_end, severity)
}

fn set(text: &str) -> PolicySet {
    PolicySet::from_toml(text, "test.toml").expect("valid policy")
}

fn err(text: &str) -> String {
    PolicySet::from_toml(text, "test.toml")
        .expect_err("policy must be refused")
        .to_string()
}

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

fn summary(decisions: &[Decision]) -> Vec<(Action, Scope, String, bool)> {
    decisions
        .iter()
        .map(|d| (d.action, d.scope, d.value.clone(), d.simulated))
        .collect()
}

#[test]
fn example_policies_load_and_validate() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/policies exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let set = PolicySet::load(&path)
                .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
            assert!(!set.names().is_empty(), "{} has no policy", path.display());
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["default.toml", "shadow.toml", "strict.toml"]);
}

#[test]
fn default_file_decides_like_the_builtin_policy() {
    let file = PolicySet::load(&examples_dir().join("default.toml")).unwrap();
    let builtin = PolicySet::builtin(3600, false);
    let mut no_tokens = alert("sub:bob", Severity::Medium);
    no_tokens.token_ids.clear();
    for a in [
        alert("sub:alice", Severity::High),
        alert("ip:203.0.113.9", Severity::Critical),
        no_tokens,
    ] {
        assert_eq!(
            file.decide(&a, now()),
            builtin.decide(&a, now()),
            "{}",
            a.identity
        );
    }
    let a = alert("sub:alice", Severity::High);
    assert_eq!(
        summary(&builtin.decide(&a, now())),
        vec![
            (Action::RevokeToken, Scope::Token, "tok-1".into(), false),
            (Action::RevokeToken, Scope::Token, "tok-2".into(), false),
        ]
    );
    let ip = alert("ip:203.0.113.9", Severity::Low);
    assert_eq!(
        summary(&builtin.decide(&ip, now())),
        vec![(Action::Block, Scope::Ip, "203.0.113.9".into(), false)]
    );
}

#[test]
fn decisions_carry_ids_scope_ttl_origin_and_reason() {
    let policies = set(r#"
[defaults]
ttl_secs = 600
[[policy]]
name = "revoke"
[[policy.actions]]
action = "revoke_token"
ttl_secs = 86400
origin = "soc-runbook-7"
[[policy.actions]]
action = "revoke_sessions"
"#);
    let a = alert("sub:alice", Severity::High);
    let decisions = policies.decide(&a, now());
    assert_eq!(decisions.len(), 3);
    for d in &decisions {
        assert_eq!(d.id, decision_id(&a.id, d.action, d.scope, &d.value));
        assert_eq!(d.alert_id, a.id);
        assert_eq!(d.created_at, now());
        assert!(
            d.reason
                .starts_with("policy revoke: score 0.875 >= 0.750 (high) on sub:alice"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("distinct_object_ids=120 (baseline 4)"),
            "{}",
            d.reason
        );
    }
    assert_eq!(
        (decisions[0].ttl_secs, decisions[0].origin.as_str()),
        (86400, "soc-runbook-7")
    );
    let sessions = &decisions[2];
    assert_eq!(
        (sessions.action, sessions.scope),
        (Action::RevokeSessions, Scope::Identity)
    );
    assert_eq!(sessions.value, "sub:alice");
    assert_eq!(
        (sessions.ttl_secs, sessions.origin.as_str()),
        (600, "policy:revoke")
    );
    // Deciding again (a replay) gives the same decisions.
    assert_eq!(policies.decide(&a, now()), decisions);
}

#[test]
fn every_action_maps_to_its_decision() {
    let policies = set(r#"
[[policy]]
name = "all"
[[policy.actions]]
action = "block_ip"
[[policy.actions]]
action = "block_identity"
[[policy.actions]]
action = "throttle"
scope = "ip"
[[policy.actions]]
action = "require_step_up"
scope = "token"
max_values = 1
[[policy.actions]]
action = "notify_user"
"#);
    let got = summary(&policies.decide(&alert("sub:alice", Severity::High), now()));
    assert_eq!(
        got,
        vec![
            (Action::Block, Scope::Ip, "10.0.0.7".into(), false),
            (Action::Block, Scope::Identity, "sub:alice".into(), false),
            (Action::Throttle, Scope::Ip, "10.0.0.7".into(), false),
            (Action::StepUp, Scope::Token, "tok-1".into(), false),
            (Action::Notify, Scope::Identity, "sub:alice".into(), false),
        ]
    );
    // Identity actions do not apply to an IP identity; IP actions use its own IP.
    let got = summary(&policies.decide(&alert("ip:203.0.113.9", Severity::High), now()));
    assert_eq!(
        got,
        vec![
            (Action::Block, Scope::Ip, "203.0.113.9".into(), false),
            (Action::Throttle, Scope::Ip, "203.0.113.9".into(), false),
            (Action::StepUp, Scope::Token, "tok-1".into(), false),
        ]
    );
}

#[test]
fn conditions_select_alerts() {
    let policies = set(r#"
[[policy]]
name = "severe-export"
[policy.match]
min_severity = "high"
min_score = 0.8
identity_kinds = ["sub", "client"]
identities = ["sub:*"]
except_identities = ["sub:svc-*"]
apis = ["POST /v1/exp*"]
features = ["error_ratio"]
top_features = 2
has_tokens = true
min_events = 100
[[policy.actions]]
action = "block_identity"
"#);
    let base = alert("sub:alice", Severity::High);
    assert_eq!(policies.matching(&base), ["severe-export"]);
    let mut cases: Vec<(&str, Alert)> = Vec::new();
    cases.push(("severity", alert("sub:alice", Severity::Medium)));
    let mut a = base.clone();
    a.score = 0.79;
    cases.push(("score", a));
    cases.push(("kind", alert("ip:1.2.3.4", Severity::High)));
    cases.push(("identities", alert("client:app", Severity::High)));
    cases.push(("except", alert("sub:svc-batch", Severity::High)));
    let mut a = base.clone();
    a.apis = vec!["GET /v1/users/{id}".into()];
    cases.push(("apis", a));
    let mut a = base.clone();
    a.features.push(FeatureContribution {
        name: "bytes_out".into(),
        value: 1.0,
        baseline: 0.0,
        baseline_p99: 0.0,
        contribution: 0.9,
    });
    cases.push(("features beyond the top 2", a));
    let mut a = base.clone();
    a.token_ids.clear();
    cases.push(("tokens", a));
    let mut a = base.clone();
    a.event_count = 99;
    cases.push(("events", a));
    for (what, a) in cases {
        assert!(policies.matching(&a).is_empty(), "{what} should not match");
        assert!(policies.decide(&a, now()).is_empty(), "{what}");
    }
}

#[test]
fn first_match_stops_unless_it_continues() {
    let text = |on_match: &str| {
        format!(
            r#"
[[policy]]
name = "first"
on_match = "{on_match}"
[[policy.actions]]
action = "revoke_sessions"
[[policy]]
name = "second"
[[policy.actions]]
action = "notify_user"
[[policy.actions]]
action = "revoke_sessions"
[[policy]]
name = "third"
[[policy.actions]]
action = "block_identity"
"#
        )
    };
    let a = alert("sub:alice", Severity::High);
    let stop = set(&text("stop"));
    assert_eq!(stop.matching(&a), ["first"]);
    assert_eq!(stop.decide(&a, now()).len(), 1);
    let go_on = set(&text("continue"));
    assert_eq!(go_on.matching(&a), ["first", "second"]);
    let got = summary(&go_on.decide(&a, now()));
    assert_eq!(
        got,
        vec![
            (
                Action::RevokeSessions,
                Scope::Identity,
                "sub:alice".into(),
                false
            ),
            (Action::Notify, Scope::Identity, "sub:alice".into(), false),
        ],
        "the second revoke_sessions is the same decision (same id) and is kept once"
    );
}

#[test]
fn shadow_mode_globally_per_policy_and_per_action() {
    let shadow_file = PolicySet::load(&examples_dir().join("shadow.toml")).unwrap();
    assert!(shadow_file.is_shadow());
    let decisions = shadow_file.decide(&alert("sub:alice", Severity::High), now());
    assert!(!decisions.is_empty());
    assert!(decisions.iter().all(|d| d.simulated));

    let mixed = set(r#"
[[policy]]
name = "trial"
shadow = true
on_match = "continue"
[[policy.actions]]
action = "throttle"
[[policy]]
name = "live"
[[policy.actions]]
action = "revoke_sessions"
[[policy.actions]]
action = "notify_user"
simulated = true
"#);
    let got = summary(&mixed.decide(&alert("sub:alice", Severity::High), now()));
    assert_eq!(
        got,
        vec![
            (Action::Throttle, Scope::Identity, "sub:alice".into(), true),
            (
                Action::RevokeSessions,
                Scope::Identity,
                "sub:alice".into(),
                false
            ),
            (Action::Notify, Scope::Identity, "sub:alice".into(), true),
        ]
    );
}

#[test]
fn strict_example_grades_its_answers() {
    let strict = PolicySet::load(&examples_dir().join("strict.toml")).unwrap();
    let critical = alert("sub:alice", Severity::Critical);
    assert_eq!(strict.matching(&critical), ["critical-takeover"]);
    let got = summary(&strict.decide(&critical, now()));
    assert!(got.contains(&(
        Action::RevokeSessions,
        Scope::Identity,
        "sub:alice".into(),
        false
    )));
    assert!(got.contains(&(Action::Block, Scope::Ip, "10.0.0.7".into(), false)));
    let service = alert("sub:svc-batch", Severity::Critical);
    assert_eq!(
        summary(&strict.decide(&service, now())),
        vec![(
            Action::Notify,
            Scope::Identity,
            "sub:svc-batch".into(),
            true
        )]
    );
    let medium = alert("sub:carol", Severity::Medium);
    assert!(strict.decide(&medium, now()).iter().all(|d| d.simulated));
}

#[test]
fn an_unknown_key_names_the_policy_the_key_and_the_line() {
    let msg = err(r#"
[[policy]]
name = "fine"
[[policy.actions]]
action = "notify_user"

[[policy]]
name = "typo"
[policy.match]
min_sevrity = "high"
[[policy.actions]]
action = "notify_user"
"#);
    assert!(msg.contains("test.toml: policy \"typo\""), "{msg}");
    assert!(msg.contains("min_sevrity"), "{msg}");
    assert!(msg.contains("line 10"), "{msg}");
}

#[test]
fn broken_files_are_refused_with_what_is_wrong() {
    let cases = [
        ("shadows = true", "shadows"),
        ("[defaults]\nttl = 5", "ttl"),
        (
            "[[policy]]\nname = \"p\"\n[[policy.actions]]\naction = \"nuke\"",
            "policy \"p\"",
        ),
        ("[[policy]]\nname = \"p\"\nactions = []", "policy \"p\": `actions` is empty"),
        (
            "[[policy]]\nname = \"p\"\n[[policy.actions]]\naction = \"revoke_token\"\nscope = \"ip\"",
            "policy \"p\": actions[0] (revoke_token): scope \"ip\" is not allowed",
        ),
        (
            "[[policy]]\nname = \"p\"\n[[policy.actions]]\naction = \"throttle\"\nttl_secs = 0",
            "policy \"p\": actions[0] (throttle): ttl_secs must be at least 1",
        ),
        (
            "[[policy]]\nname = \"p\"\n[policy.match]\nmin_score = 1.5\n[[policy.actions]]\naction = \"notify_user\"",
            "min_score 1.5 is outside [0, 1]",
        ),
        (
            "[[policy]]\nname = \"p\"\n[policy.match]\nidentity_kinds = [\"sub:alice\"]\n[[policy.actions]]\naction = \"notify_user\"",
            "is an identity, not a kind",
        ),
        (
            "[[policy]]\nname = \"p\"\n[[policy.actions]]\naction = \"notify_user\"\n[[policy]]\nname = \"p\"\n[[policy.actions]]\naction = \"notify_user\"",
            "used by an earlier policy",
        ),
        (
            "[[policy]]\n[[policy.actions]]\naction = \"notify_user\"",
            "policy #1",
        ),
        ("[defaults]\nttl_secs = 0", "defaults.ttl_secs"),
        ("this is not toml", "test.toml"),
    ];
    for (text, want) in cases {
        let msg = err(text);
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
}

#[test]
fn identity_kinds_are_the_part_before_the_colon() {
    assert_eq!(identity_kind("sub:alice"), "sub");
    assert_eq!(identity_kind("ip:2001:db8::1"), "ip");
    assert_eq!(identity_kind("anonymous"), "anonymous");
}
