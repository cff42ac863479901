//! Rules beside the model: defaults that match the real feature schema, limits, reasons,
//! and rules that report themselves inactive when their features are missing.

#![allow(clippy::unwrap_used)]

use ndarray::{Array1, ArrayView1};
use outrider_models::rules::{RuleId, RuleSet, RuleState, RulesConfig, Severity};
use proptest::prelude::*;

/// The feature names of the features crate's current schema, read from its source so this
/// test follows the schema without the models crate depending on the features crate.
fn identity_schema() -> Vec<String> {
    include_str!("../../features/src/schema.rs")
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let (variant, rest) = line.split_once(" = \"")?;
            let name = rest.strip_suffix("\",")?;
            variant
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
                .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn defaults_read_features_of_the_real_schema() {
    let schema = identity_schema();
    assert!(schema.len() >= 30, "parsed {} names", schema.len());
    assert!(schema.iter().any(|n| n == "max_ips_per_token"));
    let rules = RuleSet::new(&RulesConfig::default(), &schema, 60).unwrap();
    for rule in [
        RuleId::TokenIps,
        RuleId::SequentialIds,
        RuleId::LoginFailures,
        RuleId::RequestRate,
    ] {
        assert!(rules.is_active(rule), "{rule} inactive on the real schema");
    }
    let has_geo = schema.iter().any(|n| n == "geo_velocity_kmh");
    assert_eq!(rules.is_active(RuleId::ImpossibleTravel), has_geo);
    let travel = rules
        .statuses()
        .iter()
        .find(|s| s.rule == RuleId::ImpossibleTravel)
        .unwrap();
    if !has_geo {
        assert_eq!(
            travel.state,
            RuleState::Inactive {
                missing: vec!["geo_velocity_kmh".into()]
            }
        );
    }
    let ids: Vec<RuleId> = rules.statuses().iter().map(|s| s.rule).collect();
    assert_eq!(ids, RuleId::ALL);
}

const COLUMNS: [&str; 8] = [
    "requests_per_min",
    "distinct_object_ids",
    "sequential_id_walk",
    "max_identities_per_ip",
    "max_ips_per_token",
    "login_failures",
    "geo_velocity_kmh",
    "bytes_out",
];

fn row(values: [f32; 8]) -> Array1<f32> {
    Array1::from(values.to_vec())
}

fn rules() -> RuleSet {
    RuleSet::new(&RulesConfig::default(), &COLUMNS, 60).unwrap()
}

fn quiet() -> [f32; 8] {
    [30.0, 4.0, 0.0, 1.0, 1.0, 0.0, 12.0, 5_000.0]
}

#[test]
fn quiet_rows_fire_nothing() {
    assert!(rules().evaluate(row(quiet()).view()).unwrap().is_empty());
}

#[test]
fn each_rule_fires_above_its_limit_with_the_numbers() {
    let cases: [(usize, f32, f32, RuleId, &str); 3] = [
        (
            4,
            3.0,
            7.0,
            RuleId::TokenIps,
            "token used from 7 distinct IPs in 60 s (limit 3)",
        ),
        (
            6,
            1000.0,
            4200.5,
            RuleId::ImpossibleTravel,
            "travelled at 4200.5 km/h between consecutive requests (limit 1000 km/h)",
        ),
        (
            0,
            600.0,
            1500.0,
            RuleId::RequestRate,
            "1500 requests per minute (limit 600)",
        ),
    ];
    for (column, limit, value, rule, reason) in cases {
        let mut at = quiet();
        at[column] = limit;
        assert!(
            rules().evaluate(row(at).view()).unwrap().is_empty(),
            "{rule} fired at its limit"
        );
        let mut above = quiet();
        above[column] = value;
        let hits = rules().evaluate(row(above).view()).unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].rule, rule);
        assert_eq!(hits[0].reason, reason);
        assert_eq!((hits[0].value, hits[0].limit), (value, limit));
    }
}

#[test]
fn two_feature_rules_need_both() {
    // A walk over 120 ids fires; the same share over 10 ids does not.
    let mut walk = quiet();
    walk[1] = 120.0;
    walk[2] = 0.92;
    let hits = rules().evaluate(row(walk).view()).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].rule, RuleId::SequentialIds);
    assert_eq!(hits[0].severity, Severity::Medium);
    assert_eq!(
        hits[0].reason,
        "sequential object-id walk: 92% of 120 distinct ids in 60 s are adjacent (limits 80% \
         of at least 20 ids)"
    );
    walk[1] = 10.0;
    assert!(rules().evaluate(row(walk).view()).unwrap().is_empty());

    // 14 failures across 9 identities fire; 14 failures of one user behind the IP do not.
    let mut stuffing = quiet();
    stuffing[5] = 14.0;
    stuffing[3] = 9.0;
    let hits = rules().evaluate(row(stuffing).view()).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].rule, RuleId::LoginFailures);
    assert_eq!(
        hits[0].reason,
        "14 failed logins with 9 identities from one IP in 60 s (limits 10 failures and 5 \
         identities)"
    );
    stuffing[3] = 1.0;
    assert!(rules().evaluate(row(stuffing).view()).unwrap().is_empty());
}

#[test]
fn columns_are_found_by_name_in_any_order() {
    let mut reversed = COLUMNS;
    reversed.reverse();
    let rules_rev = RuleSet::new(&RulesConfig::default(), &reversed, 60).unwrap();
    let mut values = quiet();
    values[4] = 9.0; // max_ips_per_token
    values[0] = 2_000.0; // requests_per_min
    let mut rev_values = values;
    rev_values.reverse();
    let a = rules().evaluate(row(values).view()).unwrap();
    let b = rules_rev.evaluate(row(rev_values).view()).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
}

#[test]
fn configured_limits_severities_and_switches_apply() {
    let config: RulesConfig = serde_json::from_str(
        r#"{
            "token_ips": {"max_ips": 10, "severity": "critical"},
            "request_rate": {"enabled": false},
            "impossible_travel": {"feature": "speed_kmh"}
        }"#,
    )
    .unwrap();
    let rules = RuleSet::new(&config, &COLUMNS, 300).unwrap();
    let state = |id| {
        rules
            .statuses()
            .iter()
            .find(|s| s.rule == id)
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(state(RuleId::RequestRate), RuleState::Disabled);
    assert_eq!(
        state(RuleId::ImpossibleTravel),
        RuleState::Inactive {
            missing: vec!["speed_kmh".into()]
        }
    );
    let mut values = quiet();
    values[0] = 1e6;
    values[6] = 1e5;
    values[4] = 7.0;
    assert!(rules.evaluate(row(values).view()).unwrap().is_empty());
    values[4] = 11.0;
    let hits = rules.evaluate(row(values).view()).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].severity, Severity::Critical);
    assert!(
        hits[0].reason.contains("in 300 s (limit 10)"),
        "{}",
        hits[0].reason
    );
}

#[test]
fn invalid_configs_are_refused() {
    let mut config = RulesConfig::default();
    config.login_failures.min_failures = -1.0;
    let err = RuleSet::new(&config, &COLUMNS, 60).unwrap_err().to_string();
    assert!(err.contains("rules.login_failures.min_failures"), "{err}");
}

#[test]
fn statuses_serialize_for_the_detector_log() {
    let json = serde_json::to_string(rules().statuses()).unwrap();
    assert!(
        json.contains(r#"{"rule":"token_ips","state":"active"}"#),
        "{json}"
    );
}

proptest! {
    /// Values at or below every limit (and NaN) never fire; evaluation never panics.
    #[test]
    fn nothing_fires_within_limits(
        requests in 0f32..=600.0,
        ips in 0f32..=3.0,
        kmh in 0f32..=1000.0,
        walk in 0f32..0.8,
        failures in 0f32..10.0,
        nan_column in 0usize..8,
    ) {
        let mut values = [requests, 500.0, walk, 500.0, ips, failures, kmh, 1e9];
        let rules = rules();
        prop_assert!(rules.evaluate(row(values).view()).unwrap().is_empty());
        values[nan_column] = f32::NAN;
        prop_assert!(rules.evaluate(ArrayView1::from(&values[..])).unwrap().is_empty());
    }
}
