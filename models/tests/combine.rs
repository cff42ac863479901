//! Combining calibrated risks, burst risks and rule hits into one verdict.

#![allow(clippy::unwrap_used)]

use ndarray::Array1;
use outrider_models::burst::EdgeKind;
use outrider_models::calibration::CalibrationParams;
use outrider_models::combine::{
    CombineConfig, Combiner, ReasonSource, Signal, SignalSource, Verdict,
};
use outrider_models::rules::{RuleHit, RuleId, RuleSet, RulesConfig, Severity};
use outrider_models::Error;
use proptest::prelude::*;

fn combiner() -> Combiner {
    CombineConfig::default().check().unwrap()
}

fn signal(source: SignalSource, risk: f32, alert: bool) -> Signal {
    Signal {
        source,
        risk,
        alert,
        reason: format!("{source:?} at {risk}"),
    }
}

fn hit(rule: RuleId, severity: Severity) -> RuleHit {
    RuleHit {
        rule,
        severity,
        value: 7.0,
        limit: 3.0,
        reason: format!("{rule} fired"),
    }
}

#[test]
fn the_final_risk_is_the_largest_signal() {
    let v = combiner()
        .combine(
            &[
                signal(SignalSource::Model, 0.42, false),
                signal(SignalSource::Burst(EdgeKind::IpIdentity), 0.97, false),
                signal(SignalSource::Online, 0.6, false),
            ],
            &[],
        )
        .unwrap();
    assert_eq!(v.risk, 0.97);
    assert!(!v.alert, "no signal crossed its threshold");
    // Only the burst is at or above reason_min_risk (0.9).
    assert_eq!(v.reasons.len(), 1);
    assert_eq!(
        v.reasons[0].source,
        ReasonSource::Signal(SignalSource::Burst(EdgeKind::IpIdentity))
    );
}

#[test]
fn a_signal_over_its_threshold_alerts_and_is_listed() {
    let v = combiner()
        .combine(&[signal(SignalSource::Model, 0.8, true)], &[])
        .unwrap();
    assert!(v.alert);
    assert_eq!(v.reasons.len(), 1, "listed although below reason_min_risk");
}

#[test]
fn rules_force_a_minimum_risk_by_severity() {
    let quiet_model = [signal(SignalSource::Model, 0.1, false)];
    let high = combiner()
        .combine(&quiet_model, &[hit(RuleId::TokenIps, Severity::High)])
        .unwrap();
    assert_eq!(high.risk, 0.99);
    assert!(high.alert);
    assert_eq!(high.reasons[0].source, ReasonSource::Rule(RuleId::TokenIps));
    assert_eq!(high.reasons[0].detail, "token_ips fired");

    // A low-severity hit raises the risk but does not alert on its own.
    let low = combiner()
        .combine(&quiet_model, &[hit(RuleId::RequestRate, Severity::Low)])
        .unwrap();
    assert_eq!(low.risk, 0.5);
    assert!(!low.alert);

    // A model more certain than the floor keeps its risk.
    let both = combiner()
        .combine(
            &[signal(SignalSource::Model, 0.999, true)],
            &[hit(RuleId::SequentialIds, Severity::Medium)],
        )
        .unwrap();
    assert_eq!(both.risk, 0.999);
    let order: Vec<ReasonSource> = both.reasons.iter().map(|r| r.source).collect();
    assert_eq!(
        order,
        [
            ReasonSource::Signal(SignalSource::Model),
            ReasonSource::Rule(RuleId::SequentialIds)
        ],
        "highest risk first"
    );
}

#[test]
fn configured_floors_and_alert_severity_apply() {
    let config: CombineConfig = serde_json::from_str(
        r#"{"rule_floors": {"low": 0.7}, "alert_severity": "low", "reason_min_risk": 0.0}"#,
    )
    .unwrap();
    let v = config
        .check()
        .unwrap()
        .combine(
            &[signal(SignalSource::Online, 0.2, false)],
            &[hit(RuleId::RequestRate, Severity::Low)],
        )
        .unwrap();
    assert_eq!(v.risk, 0.7);
    assert!(v.alert);
    assert_eq!(v.reasons.len(), 2, "reason_min_risk 0 lists every signal");
}

#[test]
fn nothing_to_say_is_risk_zero() {
    let v = combiner().combine(&[], &[]).unwrap();
    assert_eq!(
        v,
        Verdict {
            risk: 0.0,
            alert: false,
            reasons: vec![]
        }
    );
}

#[test]
fn uncalibrated_scores_are_refused() {
    for bad in [1.7, -0.1, f32::NAN] {
        let err = combiner()
            .combine(
                &[
                    signal(SignalSource::Model, 0.5, false),
                    signal(SignalSource::Online, bad, false),
                ],
                &[],
            )
            .unwrap_err();
        assert!(matches!(err, Error::InvalidScore { index: 1, .. }), "{err}");
    }
}

/// The pieces together: a calibrated model score, a calibrated burst score and the rules
/// on a feature row become one verdict whose reasons an analyst can read.
#[test]
fn calibration_rules_and_combining_work_together() {
    let benign_model: Vec<f32> = (0..2_000)
        .map(|i| 0.35 + 0.1 * (i as f32 / 2_000.0))
        .collect();
    let benign_burst: Vec<f32> = (0..2_000).map(|i| (i % 7) as f32 * 0.5).collect();
    let params = CalibrationParams::default().check().unwrap();
    let model_cal = params
        .fit(benign_model.iter().map(|&s| (s, ["api:orders"])))
        .unwrap();
    let burst_cal = params
        .fit(benign_burst.iter().map(|&s| (s, [] as [&str; 0])))
        .unwrap();
    let columns = ["requests_per_min", "max_ips_per_token"];
    let rules = RuleSet::new(&RulesConfig::default(), &columns, 60).unwrap();

    let model = model_cal.assess(0.47, &["api:orders"]).unwrap();
    let burst = burst_cal.assess(250.0, &[]).unwrap();
    let signals = [
        Signal::from_assessment(SignalSource::Model, &model, "model score 0.47"),
        Signal::from_assessment(
            SignalSource::Burst(EdgeKind::ClientToken),
            &burst,
            "client -> token burst",
        ),
    ];
    let hits = rules
        .evaluate(Array1::from(vec![40.0, 7.0]).view())
        .unwrap();
    let v = combiner().combine(&signals, &hits).unwrap();
    assert!(model.alert && burst.alert);
    assert!(v.alert);
    assert!(v.risk > 0.999, "{}", v.risk);
    let details: Vec<&str> = v.reasons.iter().map(|r| r.detail.as_str()).collect();
    assert!(details.contains(&"token used from 7 distinct IPs in 60 s (limit 3)"));
    assert!(details.contains(&"client -> token burst"));
    assert_eq!(v.reasons.len(), 3);
}

proptest! {
    /// The final risk is the largest of the signals' risks and the hits' floors.
    #[test]
    fn the_risk_is_the_maximum(
        risks in proptest::collection::vec(0f32..=1.0, 0..5),
        severities in proptest::collection::vec(0usize..4, 0..3),
    ) {
        let all = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
        let signals: Vec<Signal> =
            risks.iter().map(|&r| signal(SignalSource::Online, r, false)).collect();
        let hits: Vec<RuleHit> =
            severities.iter().map(|&s| hit(RuleId::RequestRate, all[s])).collect();
        let c = combiner();
        let v = c.combine(&signals, &hits).unwrap();
        let floors = c.config().rule_floors;
        let want = risks
            .iter()
            .copied()
            .chain(hits.iter().map(|h| floors.floor(h.severity)))
            .fold(0.0f32, f32::max);
        prop_assert_eq!(v.risk, want);
        prop_assert!((0.0..=1.0).contains(&v.risk));
        prop_assert!(v.reasons.windows(2).all(|w| w[0].risk >= w[1].risk));
    }
}
