//! Rules compiled against a schema: column indices resolved once, then compared per row.

use std::collections::HashMap;

use ndarray::ArrayView1;

use super::config::RulesConfig;
use super::{RuleHit, RuleId, RuleState, RuleStatus, Severity};
use crate::error::{Error, Result};
use crate::schema::FeatureSchema;

/// The active rules of a [`RulesConfig`] over one feature schema.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    rules: Vec<Compiled>,
    statuses: Vec<RuleStatus>,
    n_columns: usize,
    window_secs: u64,
}

/// One active rule with its columns resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Compiled {
    rule: RuleId,
    severity: Severity,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    TokenIps {
        ips: usize,
        max: f32,
    },
    ImpossibleTravel {
        kmh: usize,
        max: f32,
    },
    SequentialIds {
        walk: usize,
        objects: usize,
        min_walk: f32,
        min_objects: f32,
    },
    LoginFailures {
        failures: usize,
        identities: usize,
        min_failures: f32,
        min_identities: f32,
    },
    RequestRate {
        rate: usize,
        max: f32,
    },
}

impl RuleSet {
    /// Compiles `config` against feature `columns` (a schema's names, in order) for rows
    /// of windows `window_secs` long (quoted in reasons). Rules whose features are missing
    /// become inactive; see [`statuses`](Self::statuses). Fails on an invalid config.
    pub fn new<S: AsRef<str>>(
        config: &RulesConfig,
        columns: &[S],
        window_secs: u64,
    ) -> Result<Self> {
        config.check()?;
        if window_secs == 0 {
            return Err(Error::InvalidParams(
                "rules need the window length: window_secs must be at least 1".into(),
            ));
        }
        let index: HashMap<&str, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_ref(), i))
            .collect();
        let mut set = Self {
            rules: Vec::new(),
            statuses: Vec::new(),
            n_columns: columns.len(),
            window_secs,
        };
        let c = config;
        set.add(
            RuleId::TokenIps,
            c.token_ips.enabled,
            c.token_ips.severity,
            &index,
            &[&c.token_ips.feature],
            |f| Kind::TokenIps {
                ips: f[0],
                max: c.token_ips.max_ips,
            },
        );
        let t = &c.impossible_travel;
        set.add(
            RuleId::ImpossibleTravel,
            t.enabled,
            t.severity,
            &index,
            &[&t.feature],
            |f| Kind::ImpossibleTravel {
                kmh: f[0],
                max: t.max_kmh,
            },
        );
        let s = &c.sequential_ids;
        set.add(
            RuleId::SequentialIds,
            s.enabled,
            s.severity,
            &index,
            &[&s.walk_feature, &s.objects_feature],
            |f| Kind::SequentialIds {
                walk: f[0],
                objects: f[1],
                min_walk: s.min_walk,
                min_objects: s.min_objects,
            },
        );
        let l = &c.login_failures;
        set.add(
            RuleId::LoginFailures,
            l.enabled,
            l.severity,
            &index,
            &[&l.failures_feature, &l.identities_feature],
            |f| Kind::LoginFailures {
                failures: f[0],
                identities: f[1],
                min_failures: l.min_failures,
                min_identities: l.min_identities,
            },
        );
        let r = &c.request_rate;
        set.add(
            RuleId::RequestRate,
            r.enabled,
            r.severity,
            &index,
            &[&r.feature],
            |f| Kind::RequestRate {
                rate: f[0],
                max: r.max_per_min,
            },
        );
        Ok(set)
    }

    /// [`new`](Self::new) over the columns of a model's feature schema.
    pub fn for_schema(
        config: &RulesConfig,
        schema: &FeatureSchema,
        window_secs: u64,
    ) -> Result<Self> {
        Self::new(config, &schema.features, window_secs)
    }

    /// Records the rule's status and, when it can run, its compiled form.
    fn add(
        &mut self,
        rule: RuleId,
        enabled: bool,
        severity: Severity,
        index: &HashMap<&str, usize>,
        features: &[&String],
        kind: impl FnOnce(&[usize]) -> Kind,
    ) {
        let state = if !enabled {
            RuleState::Disabled
        } else {
            let missing: Vec<String> = features
                .iter()
                .filter(|f| !index.contains_key(f.as_str()))
                .map(|f| (*f).clone())
                .collect();
            if missing.is_empty() {
                let columns: Vec<usize> = features.iter().map(|f| index[f.as_str()]).collect();
                self.rules.push(Compiled {
                    rule,
                    severity,
                    kind: kind(&columns),
                });
                RuleState::Active
            } else {
                RuleState::Inactive { missing }
            }
        };
        self.statuses.push(RuleStatus { rule, state });
    }

    /// Every configured rule and whether it runs, in [`RuleId::ALL`] order.
    pub fn statuses(&self) -> &[RuleStatus] {
        &self.statuses
    }

    /// Whether `rule` runs.
    pub fn is_active(&self, rule: RuleId) -> bool {
        self.rules.iter().any(|c| c.rule == rule)
    }

    /// The rules that fire on `row` (columns in schema order).
    pub fn evaluate(&self, row: ArrayView1<f32>) -> Result<Vec<RuleHit>> {
        let mut hits = Vec::new();
        self.evaluate_into(row, &mut hits)?;
        Ok(hits)
    }

    /// Appends the rules that fire on `row` to `hits` (no allocation when none fire).
    /// NaN values never fire a rule.
    pub fn evaluate_into(&self, row: ArrayView1<f32>, hits: &mut Vec<RuleHit>) -> Result<()> {
        if row.len() != self.n_columns {
            return Err(Error::DimensionMismatch {
                expected: self.n_columns,
                found: row.len(),
            });
        }
        for c in &self.rules {
            if let Some((value, limit, reason)) = self.fire(c.kind, row) {
                hits.push(RuleHit {
                    rule: c.rule,
                    severity: c.severity,
                    value,
                    limit,
                    reason,
                });
            }
        }
        Ok(())
    }

    /// `(value, limit, reason)` when the rule fires on `row`.
    fn fire(&self, kind: Kind, row: ArrayView1<f32>) -> Option<(f32, f32, String)> {
        let w = self.window_secs;
        match kind {
            Kind::TokenIps { ips, max } => {
                let v = row[ips];
                (v > max).then(|| {
                    let reason = format!(
                        "token used from {} distinct IPs in {w} s (limit {})",
                        num(v),
                        num(max)
                    );
                    (v, max, reason)
                })
            }
            Kind::ImpossibleTravel { kmh, max } => {
                let v = row[kmh];
                (v > max).then(|| {
                    let reason = format!(
                        "travelled at {} km/h between consecutive requests (limit {} km/h)",
                        num(v),
                        num(max)
                    );
                    (v, max, reason)
                })
            }
            Kind::SequentialIds {
                walk,
                objects,
                min_walk,
                min_objects,
            } => {
                let (v, n) = (row[walk], row[objects]);
                (v >= min_walk && n >= min_objects).then(|| {
                    let reason = format!(
                        "sequential object-id walk: {:.0}% of {} distinct ids in {w} s are \
                         adjacent (limits {:.0}% of at least {} ids)",
                        v * 100.0,
                        num(n),
                        min_walk * 100.0,
                        num(min_objects)
                    );
                    (v, min_walk, reason)
                })
            }
            Kind::LoginFailures {
                failures,
                identities,
                min_failures,
                min_identities,
            } => {
                let (v, n) = (row[failures], row[identities]);
                (v >= min_failures && n >= min_identities).then(|| {
                    let reason = format!(
                        "{} failed logins with {} identities from one IP in {w} s (limits {} \
                         failures and {} identities)",
                        num(v),
                        num(n),
                        num(min_failures),
                        num(min_identities)
                    );
                    (v, min_failures, reason)
                })
            }
            Kind::RequestRate { rate, max } => {
                let v = row[rate];
                (v > max).then(|| {
                    let reason = format!("{} requests per minute (limit {})", num(v), num(max));
                    (v, max, reason)
                })
            }
        }
    }
}

/// Counts as integers, anything else with one decimal.
fn num(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ndarray::Array1;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(num(7.0), "7");
        assert_eq!(num(4200.25), "4200.2");
        assert_eq!(num(0.5), "0.5");
    }

    #[test]
    fn rows_of_the_wrong_width_are_refused() {
        let rules = RuleSet::new(&RulesConfig::default(), &["requests_per_min"], 60).unwrap();
        let err = rules
            .evaluate(Array1::from(vec![1.0, 2.0]).view())
            .unwrap_err();
        assert!(matches!(
            err,
            Error::DimensionMismatch {
                expected: 1,
                found: 2
            }
        ));
    }

    #[test]
    fn a_feature_schema_gives_the_columns() {
        let schema = FeatureSchema::new("test-v1", ["max_ips_per_token", "requests_per_min"]);
        let rules = RuleSet::for_schema(&RulesConfig::default(), &schema, 60).unwrap();
        assert!(rules.is_active(RuleId::TokenIps) && rules.is_active(RuleId::RequestRate));
        assert!(!rules.is_active(RuleId::LoginFailures));
        let hits = rules.evaluate(Array1::from(vec![5.0, 1.0]).view()).unwrap();
        assert_eq!(hits[0].rule, RuleId::TokenIps);
    }

    #[test]
    fn zero_window_is_refused() {
        assert!(RuleSet::new(&RulesConfig::default(), &["requests_per_min"], 0).is_err());
    }
}
