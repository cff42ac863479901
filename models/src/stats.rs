//! Order statistics for baselines, thresholds and training summaries.

/// Sorts finite values ascending (NaN, if any, last).
pub(crate) fn sorted(values: impl IntoIterator<Item = f32>) -> Vec<f32> {
    let mut v: Vec<f32> = values.into_iter().collect();
    v.sort_by(f32::total_cmp);
    v
}

/// Quantile `q` in [0, 1] of ascending `sorted` with linear interpolation between the
/// closest ranks (numpy's default); 0 for an empty slice.
pub(crate) fn quantile(sorted: &[f32], q: f32) -> f32 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let pos = f64::from(q.clamp(0.0, 1.0)) * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi.min(last)]));
    (a + (b - a) * (pos - lo as f64)) as f32
}

/// Median and median absolute deviation (unscaled) of `sorted`.
pub(crate) fn median_mad(sorted: &[f32]) -> (f32, f32) {
    let median = quantile(sorted, 0.5);
    let deviations = self::sorted(sorted.iter().map(|v| (v - median).abs()));
    (median, quantile(&deviations, 0.5))
}

/// Area under the ROC curve of `scores` for `labels` (true = anomaly): the chance that a
/// random anomaly outscores a random normal row, ties counting half (average ranks).
/// `None` unless both classes occur.
pub(crate) fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives: Mann-Whitney U.
    let mut rank_sum = 0.0_f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]].total_cmp(&scores[order[i]]).is_eq() {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision (the area under the precision-recall curve as scikit-learn computes
/// it): `sum_k (R_k - R_{k-1}) P_k` over the distinct score thresholds, highest first.
/// `None` without anomalies.
pub(crate) fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut last_recall) = (0usize, 0usize, 0.0_f64, 0.0_f64);
    let mut i = 0;
    while i < order.len() {
        // All rows tied at this score are admitted together.
        let mut j = i;
        while j < order.len() && scores[order[j]].total_cmp(&scores[order[i]]).is_eq() {
            tp += usize::from(labels[order[j]]);
            j += 1;
        }
        seen = j;
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * (tp as f64 / seen as f64);
        last_recall = recall;
        i = j;
    }
    debug_assert_eq!(seen, order.len());
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = sorted([4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&v, 0.875), 4.5);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn roc_auc_counts_ranked_pairs_and_ties() {
        let labels = [false, true, false, true];
        assert_eq!(roc_auc(&[0.1, 0.9, 0.2, 0.8], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.1, 0.8, 0.2], &labels), Some(0.0));
        // Pairs: (0.5 vs 0.5) tie = 0.5, (0.5 > 0.1) = 1, (0.3 < 0.5) = 0, (0.3 > 0.1) = 1.
        assert_eq!(roc_auc(&[0.5, 0.5, 0.1, 0.3], &labels), Some(0.625));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn average_precision_matches_scikit_learn() {
        // sklearn.metrics.average_precision_score([0, 1, 1, 0, 1], [.1, .8, .4, .35, .9])
        // = 1.0; with [0, 1, 0, 1] and [.4, .3, .9, .1]: 0.5 * 1/3 + 0.5 * 2/4 = 5/12.
        let ap = average_precision(
            &[0.1, 0.8, 0.4, 0.35, 0.9],
            &[false, true, true, false, true],
        );
        assert_eq!(ap, Some(1.0));
        let ap = average_precision(&[0.4, 0.3, 0.9, 0.1], &[false, true, false, true]).unwrap();
        assert!((ap - 5.0 / 12.0).abs() < 1e-12, "{ap}");
        // Ties are admitted together: one anomaly and one normal row at the top score.
        let ap = average_precision(&[0.9, 0.9, 0.1], &[true, false, false]).unwrap();
        assert!((ap - 0.5).abs() < 1e-12, "{ap}");
        assert_eq!(average_precision(&[0.1], &[false]), None);
    }

    #[test]
    fn median_and_mad() {
        let v = sorted([1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]);
        // Deviations from 2: 1 1 0 0 2 4 7 -> median 1.
        assert_eq!(median_mad(&v), (2.0, 1.0));
    }
}
