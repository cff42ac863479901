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
    fn median_and_mad() {
        let v = sorted([1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]);
        // Deviations from 2: 1 1 0 0 2 4 7 -> median 1.
        assert_eq!(median_mad(&v), (2.0, 1.0));
    }
}
