//! Combining detectors: calibrated risks from the models, burst risks and rule hits into
//! one final risk, an alert flag, and the reasons behind them.
//!
//! The rule, and why:
//! - **Risk** = the maximum of the signals' risks and of the rule hits' severity floors.
//!   Every risk passed in must be calibrated ([`calibration`](crate::calibration)): a risk
//!   `r` is exceeded by a share `1 - r` of benign traffic. Under the maximum, the share of
//!   benign rows whose final risk exceeds `r` is at most the sum of the detectors' shares
//!   (a union bound), whatever the correlation between detectors; averaging would let a
//!   quiet detector hide a loud one, and a noisy-OR would assume they are independent, which
//!   they are not (they read the same traffic).
//! - **Rules force a minimum risk** per severity (`rule_floors`): a rule encodes something
//!   never normal, so its hit ranks at least there even when the model finds the row
//!   ordinary (e.g. a model trained on traffic that already held the attack).
//! - **Alert** when any signal crossed its own calibrated threshold, or a rule of at least
//!   `alert_severity` fired.
//! - **Reasons**: every rule hit, and every signal that alerted or has a risk of at least
//!   `reason_min_risk`, highest risk first, each with its source.

use serde::{Deserialize, Serialize};

use crate::burst::EdgeKind;
use crate::calibration::Assessment;
use crate::error::{Error, Result};
use crate::rules::{RuleHit, RuleId, Severity};

/// How to combine; checked into a [`Combiner`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CombineConfig {
    /// Minimum final risk when a rule of each severity fires.
    pub rule_floors: SeverityFloors,
    /// Rule hits of this severity or above make the verdict an alert.
    pub alert_severity: Severity,
    /// Signals below this risk are left out of the reasons unless they alerted.
    pub reason_min_risk: f32,
}

impl Default for CombineConfig {
    fn default() -> Self {
        Self {
            rule_floors: SeverityFloors::default(),
            alert_severity: Severity::Medium,
            reason_min_risk: 0.9,
        }
    }
}

/// The minimum risk of a rule hit, per severity; must not decrease with severity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeverityFloors {
    pub low: f32,
    pub medium: f32,
    pub high: f32,
    pub critical: f32,
}

impl Default for SeverityFloors {
    /// Low hits rank with the riskier half of traffic; high ones with the top 1 %.
    fn default() -> Self {
        Self {
            low: 0.5,
            medium: 0.9,
            high: 0.99,
            critical: 1.0,
        }
    }
}

impl SeverityFloors {
    pub fn floor(&self, severity: Severity) -> f32 {
        match severity {
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => self.critical,
        }
    }
}

impl CombineConfig {
    /// Validates the config.
    pub fn check(self) -> Result<Combiner> {
        let f = self.rule_floors;
        let floors = [f.low, f.medium, f.high, f.critical];
        if floors.iter().any(|v| !(0.0..=1.0).contains(v)) || floors.windows(2).any(|w| w[0] > w[1])
        {
            return Err(Error::InvalidParams(format!(
                "combine.rule_floors must lie in [0, 1] and not decrease with severity, got \
                 low {}, medium {}, high {}, critical {}",
                f.low, f.medium, f.high, f.critical
            )));
        }
        if !(0.0..=1.0).contains(&self.reason_min_risk) {
            return Err(Error::InvalidParams(format!(
                "combine.reason_min_risk must be in [0, 1], got {}",
                self.reason_min_risk
            )));
        }
        Ok(Combiner { config: self })
    }
}

/// Where a signal comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalSource {
    /// The batch-trained model (isolation forest).
    Model,
    /// The online detector (Half-Space Trees).
    Online,
    /// A burst detector on one relation.
    Burst(EdgeKind),
}

/// One detector's calibrated opinion of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub source: SignalSource,
    /// Calibrated risk in `[0, 1]`.
    pub risk: f32,
    /// Whether the score crossed its calibrated threshold.
    pub alert: bool,
    /// For an analyst, e.g. the score, the threshold and the features that drove it.
    pub reason: String,
}

impl Signal {
    /// A signal from a calibration assessment of `source`'s score.
    pub fn from_assessment(
        source: SignalSource,
        a: &Assessment<'_>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            source,
            risk: a.risk,
            alert: a.alert,
            reason: reason.into(),
        }
    }
}

/// Where a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonSource {
    Signal(SignalSource),
    Rule(RuleId),
}

/// One reason behind a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub source: ReasonSource,
    /// The risk this reason gives on its own (a rule's severity floor).
    pub risk: f32,
    pub detail: String,
}

/// The combined result for one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Final risk in `[0, 1]`.
    pub risk: f32,
    pub alert: bool,
    /// Highest risk first.
    pub reasons: Vec<Reason>,
}

/// Combines signals and rule hits as the module documentation describes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Combiner {
    config: CombineConfig,
}

impl Combiner {
    pub fn config(&self) -> &CombineConfig {
        &self.config
    }

    /// The verdict for one row. Fails when a signal's risk is NaN or outside `[0, 1]`
    /// (an uncalibrated score passed by mistake).
    pub fn combine(&self, signals: &[Signal], hits: &[RuleHit]) -> Result<Verdict> {
        if let Some((index, s)) = signals
            .iter()
            .enumerate()
            .find(|(_, s)| !(0.0..=1.0).contains(&s.risk))
        {
            return Err(Error::InvalidScore {
                index,
                detail: format!(
                    "risk {} of {:?} is not in [0, 1]: calibrate scores before combining",
                    s.risk, s.source
                ),
            });
        }
        let floors = self.config.rule_floors;
        let mut risk = 0.0f32;
        let mut alert = false;
        let mut reasons = Vec::new();
        for hit in hits {
            let floor = floors.floor(hit.severity);
            risk = risk.max(floor);
            alert |= hit.severity >= self.config.alert_severity;
            reasons.push(Reason {
                source: ReasonSource::Rule(hit.rule),
                risk: floor,
                detail: hit.reason.clone(),
            });
        }
        for s in signals {
            risk = risk.max(s.risk);
            alert |= s.alert;
            if s.alert || s.risk >= self.config.reason_min_risk {
                reasons.push(Reason {
                    source: ReasonSource::Signal(s.source),
                    risk: s.risk,
                    detail: s.reason.clone(),
                });
            }
        }
        // Stable: among equal risks, rules (pushed first) come before signals.
        reasons.sort_by(|a, b| b.risk.total_cmp(&a.risk));
        Ok(Verdict {
            risk,
            alert,
            reasons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(CombineConfig::default().check().is_ok());
        let c: CombineConfig = serde_json::from_str(r#"{"rule_floors":{"low":0.2}}"#).unwrap();
        assert_eq!(c.rule_floors.low, 0.2);
        assert_eq!(c.rule_floors.high, 0.99);
        assert!(serde_json::from_str::<CombineConfig>(r#"{"floors":{}}"#).is_err());
    }

    #[test]
    fn rejects_decreasing_or_out_of_range_floors() {
        let mut c = CombineConfig::default();
        c.rule_floors.medium = 0.995;
        assert!(c.check().is_err(), "medium above high");
        let mut c = CombineConfig::default();
        c.rule_floors.low = -0.1;
        assert!(c.check().is_err());
        let c = CombineConfig {
            reason_min_risk: 1.5,
            ..CombineConfig::default()
        };
        assert!(c.check().is_err());
    }
}
