//! Calibration: alert thresholds set to a target false-alert rate, per group (an API, a peer
//! group), and a map from raw scores to a risk in `[0, 1]`.
//!
//! Raw scores of different detectors live on different scales (an isolation-forest score
//! near 0.5, a burst statistic in the thousands) and mean different things on different
//! APIs. Calibration fixes both with scores of *benign* validation traffic (windows the
//! model did not train on):
//!
//! - **Threshold**: the `1 - target_false_alert_rate` quantile of the group's benign scores
//!   (interpolated between ranks), so about that share of benign windows alert. When many
//!   benign scores tie at the quantile (a burst score is mostly 0) the threshold moves just
//!   above the tie, so the tie does not alert. A score alerts when `score >= threshold`.
//! - **Risk**: the share of the group's benign scores strictly below the score (the
//!   empirical CDF, `rank / (n + 1)`), interpolated linearly between stored knots; above the
//!   largest benign score it keeps rising towards 1 as `1 - exp(-(s - max) / scale) / (n + 1)`
//!   with `scale` the gap between the 99th percentile and the maximum. So the risk is
//!   monotone (non-decreasing) in the score, lies in `[0, 1]`, and reads as "riskier than
//!   this share of normal traffic": a risk of 0.999 is exceeded by about 0.1 % of benign
//!   windows, whatever the detector. That is what lets [`combine`](crate::combine) take the
//!   maximum of risks from different detectors.
//! - **Groups and fallback**: each sample names the groups it belongs to (e.g.
//!   `["api:GET /orders/{id}", "peer:user"]`); a group with at least `min_group_samples`
//!   benign scores gets its own threshold and CDF. When scoring, the first listed group that
//!   has one is used, else the global calibration over all samples.
//!
//! [`ScoreCalibration`] is serializable (at most 135 knots, about 5 kB of JSON, per group)
//! so it can sit in the model file next to the model whose scores it calibrates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::stats;

/// Unchecked calibration options; call [`check`](Self::check) before fitting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrationParams {
    target_false_alert_rate: f64,
    min_group_samples: usize,
}

impl Default for CalibrationParams {
    /// One benign window in a thousand alerts; a group needs 1000 samples of its own.
    fn default() -> Self {
        Self {
            target_false_alert_rate: 1e-3,
            min_group_samples: 1000,
        }
    }
}

impl CalibrationParams {
    /// Share of benign scores allowed at or above the threshold, in `(0, 0.5]`.
    pub fn target_false_alert_rate(mut self, rate: f64) -> Self {
        self.target_false_alert_rate = rate;
        self
    }

    /// Benign samples a group needs for its own threshold; at least `1 / target rate`, or
    /// the group's threshold would just be its maximum.
    pub fn min_group_samples(mut self, n: usize) -> Self {
        self.min_group_samples = n;
        self
    }

    /// Validates the options.
    pub fn check(self) -> Result<CalibrationValidParams> {
        let rate = self.target_false_alert_rate;
        if !(rate > 0.0 && rate <= 0.5) {
            return Err(Error::InvalidParams(format!(
                "target_false_alert_rate must be in (0, 0.5], got {rate}"
            )));
        }
        let needed = min_samples_for(rate);
        if self.min_group_samples < needed {
            return Err(Error::InvalidParams(format!(
                "min_group_samples ({}) is below 1 / target_false_alert_rate ({needed}): a \
                 group that small cannot estimate its threshold",
                self.min_group_samples
            )));
        }
        Ok(CalibrationValidParams(self))
    }
}

/// Samples needed to estimate the `1 - rate` quantile at all: `ceil(1 / rate)`.
fn min_samples_for(rate: f64) -> usize {
    // The epsilon keeps 1 / 0.01 = 100.00000000000001 at 100.
    (1.0 / rate - 1e-9).ceil() as usize
}

/// Calibration options that passed [`CalibrationParams::check`]. Deserializing re-checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CalibrationParams", into = "CalibrationParams")]
pub struct CalibrationValidParams(CalibrationParams);

impl TryFrom<CalibrationParams> for CalibrationValidParams {
    type Error = Error;

    fn try_from(params: CalibrationParams) -> Result<Self> {
        params.check()
    }
}

impl From<CalibrationValidParams> for CalibrationParams {
    fn from(valid: CalibrationValidParams) -> Self {
        valid.0
    }
}

impl CalibrationValidParams {
    pub fn target_false_alert_rate(&self) -> f64 {
        self.0.target_false_alert_rate
    }

    pub fn min_group_samples(&self) -> usize {
        self.0.min_group_samples
    }

    /// Fits thresholds and risk maps on benign validation scores, each with the groups it
    /// belongs to (most specific first, though order does not matter when fitting).
    ///
    /// Fails on a non-finite score, and when there are fewer than `1 / target rate` scores
    /// in all.
    pub fn fit<G, S>(&self, samples: impl IntoIterator<Item = (f32, G)>) -> Result<ScoreCalibration>
    where
        G: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = Vec::new();
        let mut by_group: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut seen: Vec<S> = Vec::new();
        for (index, (score, groups)) in samples.into_iter().enumerate() {
            if !score.is_finite() {
                return Err(Error::InvalidScore {
                    index,
                    detail: format!("{score} is not a finite number"),
                });
            }
            all.push(score);
            seen.clear();
            for g in groups {
                // A sample listing a group twice counts once.
                if seen.iter().all(|s| s.as_ref() != g.as_ref()) {
                    by_group
                        .entry(g.as_ref().to_owned())
                        .or_default()
                        .push(score);
                    seen.push(g);
                }
            }
        }
        let needed = min_samples_for(self.target_false_alert_rate());
        if all.len() < needed {
            return Err(Error::TooFewRows {
                min: needed,
                found: all.len(),
            });
        }
        let rate = self.target_false_alert_rate();
        let mut groups = BTreeMap::new();
        let mut small_groups = 0u64;
        for (name, scores) in by_group {
            if scores.len() >= self.min_group_samples() {
                groups.insert(name, GroupCalibration::fit(scores, rate));
            } else {
                small_groups += 1;
            }
        }
        Ok(ScoreCalibration {
            params: *self,
            global: GroupCalibration::fit(all, rate),
            groups,
            small_groups,
        })
    }
}

/// Thresholds and risk maps fitted on benign scores: one global, one per large group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreCalibration {
    params: CalibrationValidParams,
    global: GroupCalibration,
    groups: BTreeMap<String, GroupCalibration>,
    /// Groups seen in validation with fewer than `min_group_samples` scores.
    small_groups: u64,
}

/// What calibration says about one score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment<'a> {
    /// Risk in `[0, 1]`: the share of benign scores (of the group used) below this one.
    pub risk: f32,
    /// The threshold the score was compared with.
    pub threshold: f32,
    /// `score >= threshold`.
    pub alert: bool,
    /// The group whose calibration was used; `None` for the global one.
    pub group: Option<&'a str>,
}

impl ScoreCalibration {
    /// Threshold and risk of `score` for a sample in `groups` (most specific first): the
    /// first group with its own calibration is used, else the global one.
    pub fn assess<'a>(&'a self, score: f32, groups: &[&str]) -> Result<Assessment<'a>> {
        if score.is_nan() {
            return Err(Error::InvalidScore {
                index: 0,
                detail: "NaN cannot be calibrated".into(),
            });
        }
        let (group, cal) = self.calibration_for(groups);
        Ok(Assessment {
            risk: cal.cdf.risk(score),
            threshold: cal.threshold,
            alert: score >= cal.threshold,
            group,
        })
    }

    /// Threshold and risk of `score` for a sample that belongs to *every* group in `all_of`
    /// (e.g. each API a window called): of those with their own calibration, the one with
    /// the highest threshold is used, so the score alerts only when it clears every one of
    /// them. That keeps each group's false-alert rate at or below the target on the samples
    /// that belong to it; taking the first group would let a quiet API's low threshold judge
    /// windows that also called a noisy one. When none of `all_of` has its own calibration,
    /// this is [`assess`](Self::assess)`(score, fallback)`.
    pub fn assess_all_of<'a>(
        &'a self,
        score: f32,
        all_of: &[&str],
        fallback: &[&str],
    ) -> Result<Assessment<'a>> {
        let strictest = all_of
            .iter()
            .filter_map(|g| self.groups.get_key_value(*g))
            .max_by(|a, b| a.1.threshold.total_cmp(&b.1.threshold));
        let Some((name, cal)) = strictest else {
            return self.assess(score, fallback);
        };
        if score.is_nan() {
            return Err(Error::InvalidScore {
                index: 0,
                detail: "NaN cannot be calibrated".into(),
            });
        }
        Ok(Assessment {
            risk: cal.cdf.risk(score),
            threshold: cal.threshold,
            alert: score >= cal.threshold,
            group: Some(name.as_str()),
        })
    }

    /// The calibration used for a sample in `groups`, and its group name (`None`: global).
    pub fn calibration_for(&self, groups: &[&str]) -> (Option<&str>, &GroupCalibration) {
        groups
            .iter()
            .find_map(|g| self.groups.get_key_value(*g))
            .map_or((None, &self.global), |(name, cal)| {
                (Some(name.as_str()), cal)
            })
    }

    pub fn params(&self) -> &CalibrationValidParams {
        &self.params
    }

    /// The calibration over all samples.
    pub fn global(&self) -> &GroupCalibration {
        &self.global
    }

    /// Groups with their own calibration, by name.
    pub fn groups(&self) -> &BTreeMap<String, GroupCalibration> {
        &self.groups
    }

    /// Groups that fell back to the global calibration for lack of samples.
    pub fn small_groups(&self) -> u64 {
        self.small_groups
    }
}

/// The threshold and risk map of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GroupState")]
pub struct GroupCalibration {
    samples: u64,
    threshold: f32,
    cdf: EmpiricalCdf,
}

impl GroupCalibration {
    fn fit(scores: Vec<f32>, rate: f64) -> Self {
        let sorted = stats::sorted(scores);
        let q = stats::quantile(&sorted, (1.0 - rate) as f32);
        let at_or_above = sorted.len() - sorted.partition_point(|&s| s < q);
        // A tie at the quantile would alert on far more than the target: step above it.
        let allowed = rate * sorted.len() as f64 + 1.0;
        let threshold = if at_or_above as f64 > allowed {
            next_up(q)
        } else {
            q
        };
        Self {
            samples: sorted.len() as u64,
            threshold,
            cdf: EmpiricalCdf::fit(&sorted),
        }
    }

    /// Benign scores this group was fitted on.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Scores at or above this alert.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Risk in `[0, 1]` of a score under this group's benign distribution.
    pub fn risk(&self, score: f32) -> f32 {
        self.cdf.risk(score)
    }
}

/// The smallest `f32` greater than finite `x`.
fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

/// Knots of the empirical CDF of the benign scores of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EmpiricalCdf {
    /// Benign scores the CDF was fitted on.
    n: u64,
    /// Ascending, distinct scores.
    knots: Vec<Knot>,
    /// Score distance over which the risk above the largest benign score closes
    /// `1 - 1/e` of its remaining gap to 1.
    tail_scale: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Knot {
    score: f32,
    /// Benign scores strictly below `score`.
    below: u64,
    /// Benign scores at or below `score`.
    at_or_below: u64,
}

/// Quantiles kept as knots: every 1/128, plus the tail where thresholds live.
const GRID: usize = 128;
const TAIL: [f64; 6] = [0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999];

impl EmpiricalCdf {
    /// `sorted` must be ascending, finite and non-empty.
    fn fit(sorted: &[f32]) -> Self {
        let n = sorted.len();
        let last = n - 1;
        let at = |p: f64| sorted[((p * last as f64).round() as usize).min(last)];
        let mut scores: Vec<f32> = (0..=GRID)
            .map(|j| at(j as f64 / GRID as f64))
            .chain(TAIL.iter().map(|&p| at(p)))
            .collect();
        scores.sort_by(f32::total_cmp);
        scores.dedup();
        let knots = scores
            .into_iter()
            .map(|score| Knot {
                score,
                below: sorted.partition_point(|&s| s < score) as u64,
                at_or_below: sorted.partition_point(|&s| s <= score) as u64,
            })
            .collect();
        let (max, p99, min) = (sorted[last], at(0.99), sorted[0]);
        let tail_scale = [max - p99, (max - min) / 100.0, 1.0]
            .into_iter()
            .find(|&s| s > 0.0 && s.is_finite())
            .unwrap_or(1.0);
        Self {
            n: n as u64,
            knots,
            tail_scale,
        }
    }

    /// A count of benign scores as a share of `n + 1`.
    fn share(&self, count: u64) -> f64 {
        count as f64 / (self.n + 1) as f64
    }

    fn risk(&self, score: f32) -> f32 {
        let i = self.knots.partition_point(|k| k.score < score);
        let Some(upper) = self.knots.get(i) else {
            // Above every benign score: close the last gap to 1 exponentially.
            let Some(top) = self.knots.last() else {
                return 1.0;
            };
            let excess = f64::from((score - top.score) / self.tail_scale);
            let risk = 1.0 - (1.0 - self.share(top.at_or_below)) * (-excess).exp();
            return risk.clamp(0.0, 1.0) as f32;
        };
        if upper.score == score {
            return self.share(upper.below) as f32;
        }
        let Some(lower) = i.checked_sub(1).map(|j| self.knots[j]) else {
            return 0.0;
        };
        let frac = f64::from((score - lower.score) / (upper.score - lower.score));
        let (lo, hi) = (self.share(lower.at_or_below), self.share(upper.below));
        let risk = lo + (hi - lo) * frac;
        risk.clamp(0.0, 1.0) as f32
    }
}

/// The serialized form of a group, checked: a broken file must not give non-monotone risks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupState {
    samples: u64,
    threshold: f32,
    cdf: EmpiricalCdf,
}

impl TryFrom<GroupState> for GroupCalibration {
    type Error = Error;

    fn try_from(s: GroupState) -> Result<Self> {
        let (knots, n) = (&s.cdf.knots, s.cdf.n);
        let ok = !knots.is_empty()
            && n == s.samples
            && s.threshold.is_finite()
            && s.cdf.tail_scale.is_finite()
            && s.cdf.tail_scale > 0.0
            && knots
                .iter()
                .all(|k| k.score.is_finite() && k.below <= k.at_or_below && k.at_or_below <= n)
            && knots
                .windows(2)
                .all(|w| w[0].score < w[1].score && w[0].at_or_below <= w[1].below);
        if !ok {
            return Err(Error::InvalidState(
                "calibration knots are not an ascending CDF".into(),
            ));
        }
        Ok(Self {
            samples: s.samples,
            threshold: s.threshold,
            cdf: s.cdf,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn params(rate: f64, min: usize) -> CalibrationValidParams {
        CalibrationParams::default()
            .target_false_alert_rate(rate)
            .min_group_samples(min)
            .check()
            .unwrap()
    }

    fn global(scores: &[f32], rate: f64) -> ScoreCalibration {
        params(rate, min_samples_for(rate))
            .fit(scores.iter().map(|&s| (s, [] as [&str; 0])))
            .unwrap()
    }

    #[test]
    fn rejects_bad_params() {
        for (rate, min) in [(0.0, 10), (0.6, 10), (f64::NAN, 10), (0.01, 99)] {
            let p = CalibrationParams::default()
                .target_false_alert_rate(rate)
                .min_group_samples(min);
            assert!(p.check().is_err(), "{p:?}");
        }
        assert!(CalibrationParams::default().check().is_ok());
    }

    #[test]
    fn threshold_is_the_benign_quantile() {
        let scores: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let cal = global(&scores, 0.01);
        // 0.99 quantile of 0..=999 with interpolation: 989.01.
        assert!((cal.global().threshold() - 989.01).abs() < 1e-3);
        let alerts = scores
            .iter()
            .filter(|&&s| s >= cal.global().threshold())
            .count();
        assert_eq!(alerts, 10);
    }

    #[test]
    fn ties_at_the_quantile_do_not_alert() {
        // 99.9 % zeros: the 0.99 quantile is 0, which would alert on everything.
        let mut scores = vec![0.0f32; 999];
        scores.push(50.0);
        let cal = global(&scores, 0.01);
        let t = cal.global().threshold();
        assert!(t > 0.0 && t < 1e-30, "{t}");
        let a = cal.assess(0.0, &[]).unwrap();
        assert!(!a.alert);
        assert_eq!(a.risk, 0.0, "nothing benign is below 0");
        assert!(cal.assess(50.0, &[]).unwrap().alert);
    }

    #[test]
    fn risk_is_the_share_of_benign_scores_below() {
        let scores: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let cal = global(&scores, 0.01);
        let g = cal.global();
        assert_eq!(g.risk(-1.0), 0.0);
        assert_eq!(g.risk(0.0), 0.0);
        assert!((g.risk(50.0) - 50.0 / 101.0).abs() < 1e-6);
        assert!((g.risk(50.5) - 50.5 / 101.0).abs() < 1e-2);
        // Above the maximum the risk keeps rising but stays below 1.
        let (r99, r100, r200) = (g.risk(99.0), g.risk(100.0), g.risk(200.0));
        assert!(
            r99 < r100 && r100 < r200 && r200 <= 1.0,
            "{r99} {r100} {r200}"
        );
    }

    #[test]
    fn groups_fall_back_to_the_global_calibration() {
        let p = params(0.01, 200);
        // "api:a" has 300 low scores, "api:b" only 50 high ones.
        let samples = (0..300)
            .map(|i| (i as f32 / 300.0, vec!["api:a", "peer:user"]))
            .chain((0..50).map(|i| (10.0 + i as f32, vec!["api:b", "peer:user"])));
        let cal = p.fit(samples).unwrap();
        assert_eq!(cal.groups().len(), 2, "api:a and peer:user");
        assert_eq!(cal.small_groups(), 1);
        let a = cal.assess(0.5, &["api:a", "peer:user"]).unwrap();
        assert_eq!(a.group, Some("api:a"));
        let b = cal.assess(0.5, &["api:b", "peer:user"]).unwrap();
        assert_eq!(b.group, Some("peer:user"));
        let none = cal.assess(0.5, &["api:c"]).unwrap();
        assert_eq!(none.group, None);
        assert_eq!(none.threshold, cal.global().threshold());
        assert!(a.threshold < cal.global().threshold());
    }

    #[test]
    fn a_sample_in_several_groups_must_clear_the_highest_threshold() {
        let p = params(0.01, 200);
        // "api:quiet" scores low, "api:noisy" high; "peer:user" has both.
        let samples = (0..300)
            .map(|i| (i as f32 / 300.0, vec!["api:quiet", "peer:user"]))
            .chain((0..300).map(|i| (10.0 + i as f32 / 30.0, vec!["api:noisy", "peer:user"])));
        let cal = p.fit(samples).unwrap();
        let quiet = cal.groups()["api:quiet"].threshold();
        let noisy = cal.groups()["api:noisy"].threshold();
        assert!(quiet < 1.0 && noisy > 10.0, "{quiet} {noisy}");
        // A score of 5 alerts for the quiet API alone, not for a window that called both.
        let alone = cal.assess_all_of(5.0, &["api:quiet"], &[]).unwrap();
        assert!(alone.alert && alone.group == Some("api:quiet"));
        let both = cal
            .assess_all_of(5.0, &["api:quiet", "api:noisy", "api:unknown"], &[])
            .unwrap();
        assert!(!both.alert);
        assert_eq!((both.group, both.threshold), (Some("api:noisy"), noisy));
        // No calibrated API: the fallback groups, then the global calibration.
        let peer = cal
            .assess_all_of(5.0, &["api:unknown"], &["peer:user"])
            .unwrap();
        assert_eq!(peer.group, Some("peer:user"));
        let global = cal.assess_all_of(5.0, &[], &["peer:bot"]).unwrap();
        assert_eq!(global.group, None);
        assert!(cal.assess_all_of(f32::NAN, &["api:quiet"], &[]).is_err());
    }

    #[test]
    fn refuses_bad_samples() {
        let p = params(0.1, 10);
        let few = p.fit((0..5).map(|i| (i as f32, [] as [&str; 0])));
        assert!(matches!(few, Err(Error::TooFewRows { min: 10, found: 5 })));
        let nan = p.fit([1.0, f32::NAN].into_iter().map(|s| (s, [] as [&str; 0])));
        assert!(matches!(nan, Err(Error::InvalidScore { index: 1, .. })));
    }

    #[test]
    fn restoring_rejects_a_non_monotone_cdf() {
        let cal = global(&(0..100).map(|i| i as f32).collect::<Vec<_>>(), 0.01);
        let json = serde_json::to_value(&cal).unwrap();
        let back: ScoreCalibration = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, cal);
        let mut broken = json;
        broken["global"]["cdf"]["knots"][3]["score"] = serde_json::json!(1e9);
        assert!(serde_json::from_value::<ScoreCalibration>(broken).is_err());
    }

    #[test]
    fn next_up_steps_one_ulp() {
        assert!(next_up(1.0) > 1.0);
        assert!(next_up(-1.0) > -1.0);
        assert!(next_up(0.0) > 0.0);
        assert_eq!(next_up(1.0), 1.0 + f32::EPSILON);
    }
}
