//! A log-binned histogram of non-negative values (DDSketch-style bins, relative accuracy
//! about 5 %), for medians and quartiles of peer groups. Counts halve when the total passes
//! a bound, so old history fades and memory stays fixed; halving is deterministic.

use serde::{Deserialize, Serialize};

/// Bin growth factor: a value is reported within about 5 % of its true size.
const GAMMA_LN: f64 = 0.095_310_179_804_324_87; // ln(1.1)
/// Values below this fall into the zero bin.
const MIN_POSITIVE: f64 = 1e-3;
const HALVE_ABOVE: u64 = 1 << 20;
const MAX_BINS: usize = 512;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogHistogram {
    zeros: u64,
    /// (bin index, count), sorted by index.
    bins: Vec<(i16, u64)>,
    total: u64,
    /// The quartiles, computed once after the last insert: baselines are read by every
    /// row of a window end and change only between window ends.
    #[serde(skip)]
    quartiles: Option<[f64; 3]>,
}

/// The counts are the histogram; the quartile cache is derived from them.
impl PartialEq for LogHistogram {
    fn eq(&self, other: &Self) -> bool {
        (self.zeros, &self.bins, self.total) == (other.zeros, &other.bins, other.total)
    }
}

impl Eq for LogHistogram {}

impl LogHistogram {
    pub fn insert(&mut self, v: f64) {
        self.quartiles = None;
        if !v.is_finite() || v < MIN_POSITIVE {
            self.zeros += 1;
        } else {
            let index = (v.ln() / GAMMA_LN).ceil().clamp(-2000.0, 2000.0) as i16;
            match self.bins.binary_search_by_key(&index, |b| b.0) {
                Ok(i) => self.bins[i].1 += 1,
                Err(i) if self.bins.len() < MAX_BINS => self.bins.insert(i, (index, 1)),
                // A full sketch folds the outlier into the nearest existing bin.
                Err(i) => {
                    let j = i.min(self.bins.len() - 1);
                    self.bins[j].1 += 1;
                }
            }
        }
        self.total += 1;
        if self.total > HALVE_ABOVE {
            self.halve();
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0..=1), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.total - 1) as f64).round() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for &(index, count) in &self.bins {
            seen += count;
            if rank < seen {
                // The bin's centre (geometric mid-point of its bounds).
                return Some((f64::from(index) * GAMMA_LN - GAMMA_LN / 2.0).exp());
            }
        }
        self.bins
            .last()
            .map(|&(i, _)| (f64::from(i) * GAMMA_LN).exp())
    }

    /// How far `x` lies from the median in robust units: (x - median) / scale, where the
    /// scale is the interquartile range / 1.349 (the standard deviation for normal data),
    /// never below `floor` so that a peer group of identical values does not divide by 0.
    pub fn robust_z(&self, x: f64, floor: f64) -> Option<f64> {
        let [q1, median, q3] = match self.quartiles {
            Some(q) => q,
            None => self.compute_quartiles()?,
        };
        let iqr = q3 - q1;
        let scale = (iqr / 1.349).max(floor).max(median * 0.1);
        Some((x - median) / scale)
    }

    fn compute_quartiles(&self) -> Option<[f64; 3]> {
        Some([
            self.quantile(0.25)?,
            self.quantile(0.5)?,
            self.quantile(0.75)?,
        ])
    }

    /// Computes the quartiles that [`Self::robust_z`] reads, if an insert invalidated them.
    pub fn refresh(&mut self) {
        if self.quartiles.is_none() {
            self.quartiles = self.compute_quartiles();
        }
    }

    fn halve(&mut self) {
        self.zeros /= 2;
        for b in &mut self.bins {
            b.1 /= 2;
        }
        self.bins.retain(|b| b.1 > 0);
        self.total = self.zeros + self.bins.iter().map(|b| b.1).sum::<u64>();
    }

    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<(i16, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_accuracy() {
        let mut h = LogHistogram::default();
        for v in 1..=1000 {
            h.insert(f64::from(v));
        }
        for (q, want) in [(0.5, 500.0), (0.25, 250.0), (0.99, 990.0)] {
            let got = h.quantile(q).unwrap_or_default();
            assert!((got - want).abs() / want < 0.06, "q{q}: {got}");
        }
        assert_eq!(LogHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn robust_z_flags_outliers_and_respects_the_floor() {
        let mut h = LogHistogram::default();
        for i in 0..200 {
            h.insert(f64::from(4 + i % 3));
        }
        let normal = h.robust_z(5.0, 1.0).unwrap_or_default();
        let outlier = h.robust_z(120.0, 1.0).unwrap_or_default();
        assert!(normal.abs() < 1.5, "{normal}");
        assert!(outlier > 50.0, "{outlier}");
        let mut flat = LogHistogram::default();
        (0..50).for_each(|_| flat.insert(0.0));
        assert_eq!(flat.robust_z(3.0, 1.0), Some(3.0));
    }

    #[test]
    fn cached_quartiles_give_the_same_scores_and_follow_inserts() {
        let mut h = LogHistogram::default();
        (1..=100).for_each(|v| h.insert(f64::from(v)));
        let fresh = h.robust_z(170.0, 1.0);
        h.refresh();
        assert!(h.quartiles.is_some());
        assert_eq!(h.robust_z(170.0, 1.0), fresh);
        (0..500).for_each(|_| h.insert(1000.0));
        assert!(h.quartiles.is_none(), "an insert invalidates the cache");
        let moved = h.robust_z(170.0, 1.0).unwrap_or_default();
        assert!(moved < 0.0, "the median moved past 170: {moved}");
    }

    #[test]
    fn halving_keeps_the_shape() {
        let mut h = LogHistogram::default();
        for i in 0..(HALVE_ABOVE + 10) {
            h.insert((i % 10 + 1) as f64);
        }
        assert!(h.count() <= HALVE_ABOVE);
        let median = h.quantile(0.5).unwrap_or_default();
        assert!((4.5..=6.5).contains(&median), "{median}");
    }
}
