//! Detection metrics over scores and binary labels (true: attack).
//!
//! - ROC-AUC by the rank statistic (Mann-Whitney U with average ranks for ties): the
//!   chance that a random attack scores above a random benign item, ties counting half.
//! - PR-AUC as average precision, `sum_k (R_k - R_{k-1}) P_k` over the distinct score
//!   thresholds in decreasing order (tied scores enter together), as scikit-learn's
//!   `average_precision_score` computes it: no interpolation between points.
//! - Precision, recall and F1 at a threshold: an item is predicted an attack when its
//!   score is at or above the threshold, as the detector alerts.
//!
//! NaN scores are treated as the lowest possible score.

use serde::{Deserialize, Serialize};

/// Counts at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Confusion {
    /// `None` when nothing was predicted positive.
    pub fn precision(&self) -> Option<f64> {
        let p = self.tp + self.fp;
        (p > 0).then(|| self.tp as f64 / p as f64)
    }

    /// `None` when there are no positives.
    pub fn recall(&self) -> Option<f64> {
        let p = self.tp + self.fn_;
        (p > 0).then(|| self.tp as f64 / p as f64)
    }

    /// The harmonic mean of precision and recall; 0 when either is 0, `None` when either
    /// is undefined.
    pub fn f1(&self) -> Option<f64> {
        let (p, r) = (self.precision()?, self.recall()?);
        Some(if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        })
    }

    /// Share of negatives predicted positive.
    pub fn false_positive_rate(&self) -> Option<f64> {
        let n = self.fp + self.tn;
        (n > 0).then(|| self.fp as f64 / n as f64)
    }
}

fn key(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

/// Counts with `score >= threshold` predicted positive.
pub fn confusion(scores: &[f32], labels: &[bool], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for (&s, &attack) in scores.iter().zip(labels) {
        match (key(s) >= threshold, attack) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// ROC-AUC by the rank statistic; `None` unless both classes are present.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let n = scores.len().min(labels.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key(scores[a]).total_cmp(&key(scores[b])));
    let (mut rank_sum, mut positives) = (0.0f64, 0u64);
    let mut i = 0;
    while i < n {
        // A run of tied scores shares the average of the ranks it spans (1-based).
        let mut j = i;
        while j + 1 < n && key(scores[order[j + 1]]) == key(scores[order[i]]) {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += average_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = n as u64 - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// One point of a precision-recall curve: at `threshold`, what was recalled and how
/// precisely.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    pub threshold: f32,
    pub recall: f64,
    pub precision: f64,
}

/// The precision-recall curve, one point per distinct score from the highest down;
/// empty without positives.
pub fn pr_curve(scores: &[f32], labels: &[bool]) -> Vec<PrPoint> {
    let n = scores.len().min(labels.len());
    let positives = labels[..n].iter().filter(|&&l| l).count() as f64;
    if positives == 0.0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key(scores[b]).total_cmp(&key(scores[a])));
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut i = 0;
    while i < n {
        let s = key(scores[order[i]]);
        while i < n && key(scores[order[i]]) == s {
            if labels[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.push(PrPoint {
            threshold: s,
            recall: tp / positives,
            precision: tp / (tp + fp),
        });
    }
    out
}

/// Average precision (PR-AUC); `None` without positives.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let curve = pr_curve(scores, labels);
    if curve.is_empty() {
        return None;
    }
    let mut previous_recall = 0.0;
    let mut ap = 0.0;
    for p in &curve {
        ap += (p.recall - previous_recall) * p.precision;
        previous_recall = p.recall;
    }
    Some(ap)
}

/// Everything at once for one set of scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub positives: u64,
    pub negatives: u64,
    #[serde(flatten)]
    pub confusion: Confusion,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
}

impl BinaryMetrics {
    pub fn compute(scores: &[f32], labels: &[bool], threshold: f32) -> Self {
        let confusion = confusion(scores, labels, threshold);
        Self {
            positives: confusion.tp + confusion.fn_,
            negatives: confusion.fp + confusion.tn,
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            roc_auc: roc_auc(scores, labels),
            pr_auc: average_precision(scores, labels),
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn the_textbook_case() {
        // scikit-learn's documentation example: roc_auc 0.75, average precision 0.8333.
        let scores = [0.1, 0.4, 0.35, 0.8];
        let labels = [false, false, true, true];
        assert!(close(roc_auc(&scores, &labels), 0.75));
        // Descending: 0.8 (+) P=1 R=.5; 0.4 (-); 0.35 (+) P=2/3 R=1; 0.1 (-).
        assert!(close(
            average_precision(&scores, &labels),
            0.5 + 0.5 * 2.0 / 3.0
        ));
        let c = confusion(&scores, &labels, 0.35);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 1,
                fn_: 0
            }
        );
        assert!(close(c.precision(), 2.0 / 3.0));
        assert!(close(c.recall(), 1.0));
        assert!(close(c.f1(), 0.8));
        assert!(close(c.false_positive_rate(), 0.5));
    }

    #[test]
    fn ties_count_half_and_enter_the_pr_curve_together() {
        // Pairs (pos, neg): (2,1)=1 (2,2)=0.5 (3,1)=1 (3,2)=1 -> 3.5 / 4.
        let scores = [1.0, 2.0, 2.0, 3.0];
        let labels = [false, true, false, true];
        assert!(close(roc_auc(&scores, &labels), 0.875));
        // 3 (+): P=1 R=.5; the tied 2s together: P=2/3 R=1.
        let curve = pr_curve(&scores, &labels);
        assert_eq!(curve.len(), 3);
        assert_eq!(curve[1].threshold, 2.0);
        assert!((curve[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!(close(
            average_precision(&scores, &labels),
            0.5 + 0.5 * 2.0 / 3.0
        ));

        let flat = [0.5; 4];
        let labels = [true, false, true, false];
        assert!(close(roc_auc(&flat, &labels), 0.5));
        assert!(close(average_precision(&flat, &labels), 0.5));
    }

    #[test]
    fn perfect_inverted_and_degenerate_rankings() {
        let scores = [0.9, 0.8, 0.2, 0.1];
        assert!(close(roc_auc(&scores, &[true, true, false, false]), 1.0));
        assert!(close(
            average_precision(&scores, &[true, true, false, false]),
            1.0
        ));
        assert!(close(roc_auc(&scores, &[false, false, true, true]), 0.0));
        // Positives ranked last: P at R=.5 is 1/3, at R=1 is 2/4.
        assert!(close(
            average_precision(&scores, &[false, false, true, true]),
            0.5 / 3.0 + 0.5 * 0.5
        ));
        assert_eq!(roc_auc(&scores, &[true; 4]), None);
        assert_eq!(roc_auc(&scores, &[false; 4]), None);
        assert_eq!(average_precision(&scores, &[false; 4]), None);
        assert_eq!(roc_auc(&[], &[]), None);
        let none = confusion(&scores, &[false; 4], 1.0);
        assert_eq!(none.precision(), None);
        assert_eq!(none.recall(), None);
        assert_eq!(none.f1(), None);
        let zero = confusion(&scores, &[false, false, true, true], 0.85);
        assert_eq!(zero.f1(), Some(0.0));
    }

    #[test]
    fn nan_scores_rank_lowest() {
        let scores = [f32::NAN, 0.3, 0.6];
        let labels = [true, false, true];
        // Pairs: (NaN, .3) = 0, (.6, .3) = 1.
        assert!(close(roc_auc(&scores, &labels), 0.5));
        assert_eq!(confusion(&scores, &labels, 0.0).fn_, 1);
    }

    #[test]
    fn the_rank_statistic_agrees_with_counting_pairs() {
        // A pseudo-random case with many ties, against the O(n^2) definition.
        let mut x = 12345u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let scores: Vec<f32> = (0..400).map(|_| (next() % 20) as f32 / 4.0).collect();
        let labels: Vec<bool> = scores
            .iter()
            .map(|&s| (next() % 10) as f32 / 2.0 < s)
            .collect();
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for (i, &si) in scores.iter().enumerate() {
            for (j, &sj) in scores.iter().enumerate() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    wins += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!(
            (auc - wins / pairs).abs() < 1e-9,
            "{auc} vs {}",
            wins / pairs
        );
        let m = BinaryMetrics::compute(&scores, &labels, 2.5);
        assert_eq!(m.positives + m.negatives, 400);
        assert_eq!(m.roc_auc, Some(auc));
    }
}
