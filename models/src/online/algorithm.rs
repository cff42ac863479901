//! Building, scoring and updating Half-Space Trees, all trees flattened into arrays.

use ndarray::{Array1, ArrayView1, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::hyperparams::{FeatureRange, HalfSpaceTreesValidParams};
use crate::error::{Error, Result};

/// An internal node: rows with `x[feature] >= threshold` go right, the others left. The
/// threshold is in raw feature units (mapped back from the log scale when it is on).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Split {
    feature: u32,
    threshold: f32,
}

/// A Half-Space Trees detector: the trees, their reference and latest masses, and where the
/// stream is in the current window. Serialize it to checkpoint the detector; deserializing
/// checks that every array has the size the parameters imply.
///
/// Node `i` of a tree has children `2i + 1` and `2i + 2` (heap order); splits are stored
/// for the `2^h - 1` internal nodes, masses for all `2^(h+1) - 1` nodes, tree after tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HstState")]
pub struct HalfSpaceTrees {
    params: HalfSpaceTreesValidParams,
    ranges: Vec<FeatureRange>,
    splits: Vec<Split>,
    /// Mass of every node in the last complete window.
    reference: Vec<u32>,
    /// Mass of every node in the window being filled.
    latest: Vec<u32>,
    /// Rows learned in the current window (always `< window_size`).
    filled: u32,
    /// Windows completed since the detector was built.
    windows: u64,
}

impl HalfSpaceTreesValidParams {
    /// A detector over features with the given raw ranges. It has seen nothing, so it is
    /// warming up until `window_size` rows have been learned.
    pub fn with_ranges(&self, ranges: &[FeatureRange]) -> Result<HalfSpaceTrees> {
        if ranges.is_empty() {
            return Err(Error::EmptyDataset);
        }
        if u32::try_from(ranges.len()).is_err() {
            return Err(Error::InvalidParams(format!(
                "{} features are too many",
                ranges.len()
            )));
        }
        let nodes = self.n_trees() * self.nodes_per_tree();
        Ok(HalfSpaceTrees {
            params: *self,
            ranges: ranges.to_vec(),
            splits: build_splits(self, ranges),
            reference: vec![0; nodes],
            latest: vec![0; nodes],
            filled: 0,
            windows: 0,
        })
    }

    /// Takes the feature ranges from a sample `x` (widened by `range_margin` of their width
    /// on each side), builds the trees, and learns the sample's rows in order: with at
    /// least `window_size` rows the detector is ready to score.
    pub fn fit(&self, x: ArrayView2<f32>) -> Result<HalfSpaceTrees> {
        if x.is_empty() {
            return Err(Error::EmptyDataset);
        }
        check_rows_finite(x)?;
        let margin = self.range_margin();
        let ranges = x
            .columns()
            .into_iter()
            .map(|col| {
                let (lo, hi) = col
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                let pad = (hi - lo) * margin;
                let (lo, hi) = (lo - pad, hi + pad);
                // A huge range times the margin can overflow: fall back to the sample's.
                if lo.is_finite() && hi.is_finite() {
                    FeatureRange::new(lo, hi)
                } else {
                    FeatureRange::new(lo.max(f32::MIN), hi.min(f32::MAX))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let mut hst = self.with_ranges(&ranges)?;
        hst.update(x)?;
        Ok(hst)
    }
}

/// Grows the splits of every tree: each tree gets a random work space around the ranges
/// (the paper's `s ~ U(0,1)`, `[s - 2 max(s, 1-s), s + 2 max(s, 1-s)]` in units of the
/// range), then halves it on a random feature at every node.
fn build_splits(params: &HalfSpaceTreesValidParams, ranges: &[FeatureRange]) -> Vec<Split> {
    let scale = Scale {
        log: params.log_scale(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed());
    let per_tree = params.splits_per_tree();
    let mut splits = vec![
        Split {
            feature: 0,
            threshold: 0.0
        };
        params.n_trees() * per_tree
    ];
    let mut lo = vec![0.0f64; ranges.len()];
    let mut hi = vec![0.0f64; ranges.len()];
    for tree in splits.chunks_mut(per_tree) {
        for (q, range) in ranges.iter().enumerate() {
            let a = scale.to_work(range.min());
            let b = scale.to_work(range.max());
            // A constant feature still needs a non-empty space to halve.
            let width = if b > a { b - a } else { 1.0 };
            let s: f64 = rng.random();
            let sd = 2.0 * s.max(1.0 - s);
            lo[q] = a + (s - sd) * width;
            hi[q] = a + (s + sd) * width;
        }
        let mut grower = Grower {
            rng: &mut rng,
            scale,
            height: params.height(),
            lo: &mut lo,
            hi: &mut hi,
            out: tree,
        };
        grower.grow(0, 0);
    }
    splits
}

/// The space splits are placed in: raw values, or the signed log `sign(v) ln(1 + |v|)`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    log: bool,
}

impl Scale {
    fn to_work(self, v: f32) -> f64 {
        let v = f64::from(v);
        if self.log {
            v.signum() * v.abs().ln_1p()
        } else {
            v
        }
    }

    fn to_raw(self, w: f64) -> f32 {
        let raw = if self.log {
            w.signum() * w.abs().exp_m1()
        } else {
            w
        };
        raw as f32
    }
}

struct Grower<'a> {
    rng: &'a mut ChaCha8Rng,
    scale: Scale,
    height: usize,
    lo: &'a mut [f64],
    hi: &'a mut [f64],
    out: &'a mut [Split],
}

impl Grower<'_> {
    /// Splits `node` (at `depth`) at the middle of its space on a random feature, then its
    /// children on their halves; pre-order, so the random draws are in a fixed order.
    fn grow(&mut self, node: usize, depth: usize) {
        if depth == self.height {
            return;
        }
        let q = self.rng.random_range(0..self.lo.len());
        let mid = 0.5 * (self.lo[q] + self.hi[q]);
        self.out[node] = Split {
            // Cannot truncate: `with_ranges` refuses more than u32::MAX features.
            feature: q as u32,
            threshold: self.scale.to_raw(mid),
        };
        let saved = self.hi[q];
        self.hi[q] = mid;
        self.grow(2 * node + 1, depth + 1);
        self.hi[q] = saved;
        let saved = self.lo[q];
        self.lo[q] = mid;
        self.grow(2 * node + 2, depth + 1);
        self.lo[q] = saved;
    }
}

impl HalfSpaceTrees {
    /// Number of feature columns the detector expects.
    pub fn n_features(&self) -> usize {
        self.ranges.len()
    }

    pub fn params(&self) -> &HalfSpaceTreesValidParams {
        &self.params
    }

    /// The raw feature ranges the work spaces were built around.
    pub fn ranges(&self) -> &[FeatureRange] {
        &self.ranges
    }

    /// True once a first window is complete, so scores mean something.
    pub fn is_warm(&self) -> bool {
        self.windows > 0
    }

    /// Windows completed so far (each one replaced the reference).
    pub fn windows_completed(&self) -> u64 {
        self.windows
    }

    /// Rows learned in the window being filled.
    pub fn rows_in_window(&self) -> usize {
        self.filled as usize
    }

    /// Anomaly score in `[0, 1]` of one row against the reference window, higher is more
    /// anomalous; `None` while warming up. Does not learn the row.
    pub fn score_row(&self, row: ArrayView1<f32>) -> Result<Option<f32>> {
        self.check_row(row, 0)?;
        if !self.is_warm() {
            return Ok(None);
        }
        Ok(Some(with_slice(row, |r| self.score_slice(r))))
    }

    /// Scores of many rows (see [`score_row`](Self::score_row)); `None` while warming up.
    pub fn score(&self, x: ArrayView2<f32>) -> Result<Option<Array1<f32>>> {
        self.check_batch(x)?;
        if !self.is_warm() {
            return Ok(None);
        }
        let scores = x
            .rows()
            .into_iter()
            .map(|row| with_slice(row, |r| self.score_slice(r)))
            .collect();
        Ok(Some(scores))
    }

    /// Learns one row into the latest window; completing a window makes it the reference.
    pub fn update_row(&mut self, row: ArrayView1<f32>) -> Result<()> {
        self.check_row(row, 0)?;
        with_slice(row, |r| self.learn_slice(r, false));
        Ok(())
    }

    /// Learns rows in order. The batch is checked first: on error nothing is learned.
    pub fn update(&mut self, x: ArrayView2<f32>) -> Result<()> {
        self.check_batch(x)?;
        for row in x.rows() {
            with_slice(row, |r| self.learn_slice(r, false));
        }
        Ok(())
    }

    /// Scores one row, then learns it (the paper's protocol, in one walk per tree).
    pub fn score_and_update_row(&mut self, row: ArrayView1<f32>) -> Result<Option<f32>> {
        self.check_row(row, 0)?;
        Ok(with_slice(row, |r| self.learn_slice(r, true)))
    }

    /// Scores then learns each row in order, so a window completed inside the batch is the
    /// reference for the rows after it. `None` for rows scored while warming up. The batch
    /// is checked first: on error nothing is learned.
    pub fn score_and_update(&mut self, x: ArrayView2<f32>) -> Result<Vec<Option<f32>>> {
        self.check_batch(x)?;
        Ok(x.rows()
            .into_iter()
            .map(|row| with_slice(row, |r| self.learn_slice(r, true)))
            .collect())
    }

    fn score_slice(&self, row: &[f32]) -> f32 {
        let limit = self.size_limit();
        let (splits, nodes) = (self.params.splits_per_tree(), self.params.nodes_per_tree());
        let mut mass = 0.0f64;
        for (tree, reference) in self.reference.chunks_exact(nodes).enumerate() {
            let splits = &self.splits[tree * splits..(tree + 1) * splits];
            let mut node = 0;
            let mut depth = 0;
            while depth < self.params.height() && reference[node] >= limit {
                node = child(splits[node], node, row);
                depth += 1;
            }
            mass += terminal_mass(reference[node], depth);
        }
        self.anomaly(mass)
    }

    /// Adds `row` to the latest masses along its path in every tree; with `score`, also
    /// scores it against the reference on the way down. Swaps windows when one is full.
    fn learn_slice(&mut self, row: &[f32], score: bool) -> Option<f32> {
        let limit = self.size_limit();
        let height = self.params.height();
        let (per_tree, nodes) = (self.params.splits_per_tree(), self.params.nodes_per_tree());
        let mut mass = 0.0f64;
        let trees = self
            .reference
            .chunks_exact(nodes)
            .zip(self.latest.chunks_exact_mut(nodes))
            .zip(self.splits.chunks_exact(per_tree));
        for ((reference, latest), splits) in trees {
            let mut node = 0;
            let mut terminal = None;
            latest[0] += 1;
            for depth in 0..height {
                if terminal.is_none() && reference[node] < limit {
                    terminal = Some((node, depth));
                }
                node = child(splits[node], node, row);
                latest[node] += 1;
            }
            let (t_node, t_depth) = terminal.unwrap_or((node, height));
            mass += terminal_mass(reference[t_node], t_depth);
        }
        let result = (score && self.is_warm()).then(|| self.anomaly(mass));
        self.filled += 1;
        if self.filled as usize == self.params.window_size() {
            std::mem::swap(&mut self.reference, &mut self.latest);
            self.latest.fill(0);
            self.filled = 0;
            self.windows += 1;
        }
        result
    }

    fn size_limit(&self) -> u32 {
        // Cannot truncate: check() bounds it by window_size, which fits a u32.
        self.params.size_limit() as u32
    }

    /// Maps the mean terminal mass over trees (`r x 2^depth`, at most `window x 2^height`)
    /// to an anomaly score: `1 - ln(1 + mass) / ln(1 + window x 2^height)`. Monotone in
    /// the paper's mass score (so rankings and AUC are the paper's), 1 for a row in an
    /// empty region, 0 for one where all the reference mass sits in its leaf.
    fn anomaly(&self, total_mass: f64) -> f32 {
        let mean = total_mass / self.params.n_trees() as f64;
        let max = self.params.window_size() as f64 * (1u64 << self.params.height()) as f64;
        (1.0 - mean.ln_1p() / max.ln_1p()).clamp(0.0, 1.0) as f32
    }

    fn check_row(&self, row: ArrayView1<f32>, index: usize) -> Result<()> {
        if row.len() != self.n_features() {
            return Err(Error::DimensionMismatch {
                expected: self.n_features(),
                found: row.len(),
            });
        }
        match row.iter().position(|v| !v.is_finite()) {
            Some(column) => Err(Error::NonFinite { row: index, column }),
            None => Ok(()),
        }
    }

    fn check_batch(&self, x: ArrayView2<f32>) -> Result<()> {
        if x.ncols() != self.n_features() {
            return Err(Error::DimensionMismatch {
                expected: self.n_features(),
                found: x.ncols(),
            });
        }
        check_rows_finite(x)
    }
}

/// The child of internal `node` that `row` goes to.
#[inline]
fn child(split: Split, node: usize, row: &[f32]) -> usize {
    2 * node + 1 + usize::from(row[split.feature as usize] >= split.threshold)
}

/// The paper's score of one tree: the terminal node's reference mass times `2^depth`.
#[inline]
fn terminal_mass(mass: u32, depth: usize) -> f64 {
    f64::from(mass) * (1u64 << depth) as f64
}

/// Runs `f` on the row as a slice, copying only when the view is not contiguous.
fn with_slice<T>(row: ArrayView1<f32>, f: impl FnOnce(&[f32]) -> T) -> T {
    match row.as_slice() {
        Some(s) => f(s),
        None => f(&row.to_vec()),
    }
}

fn check_rows_finite(x: ArrayView2<f32>) -> Result<()> {
    for (r, row) in x.rows().into_iter().enumerate() {
        if let Some(column) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { row: r, column });
        }
    }
    Ok(())
}

/// The serialized form, checked before it becomes a detector.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HstState {
    params: HalfSpaceTreesValidParams,
    ranges: Vec<FeatureRange>,
    splits: Vec<Split>,
    reference: Vec<u32>,
    latest: Vec<u32>,
    filled: u32,
    windows: u64,
}

impl TryFrom<HstState> for HalfSpaceTrees {
    type Error = Error;

    fn try_from(s: HstState) -> Result<Self> {
        let p = s.params;
        let nodes = p.n_trees() * p.nodes_per_tree();
        let bad = |msg: String| Err(Error::InvalidState(format!("half-space trees: {msg}")));
        if s.ranges.is_empty() {
            return bad("no feature ranges".into());
        }
        if s.splits.len() != p.n_trees() * p.splits_per_tree() {
            return bad(format!(
                "{} splits for {} trees of height {}",
                s.splits.len(),
                p.n_trees(),
                p.height()
            ));
        }
        if let Some(split) = s
            .splits
            .iter()
            .find(|sp| sp.feature as usize >= s.ranges.len() || sp.threshold.is_nan())
        {
            return bad(format!(
                "split on feature {} (of {}) at {}",
                split.feature,
                s.ranges.len(),
                split.threshold
            ));
        }
        if s.reference.len() != nodes || s.latest.len() != nodes {
            return bad(format!(
                "{} reference and {} latest masses, expected {nodes}",
                s.reference.len(),
                s.latest.len()
            ));
        }
        if s.filled as usize >= p.window_size() {
            return bad(format!(
                "{} rows in a window of {}",
                s.filled,
                p.window_size()
            ));
        }
        Ok(Self {
            params: p,
            ranges: s.ranges,
            splits: s.splits,
            reference: s.reference,
            latest: s.latest,
            filled: s.filled,
            windows: s.windows,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::online::HalfSpaceTreesParams;
    use ndarray::{array, Array2};

    fn small() -> HalfSpaceTreesValidParams {
        HalfSpaceTreesParams::default()
            .n_trees(4)
            .height(3)
            .window_size(8)
            .check()
            .unwrap()
    }

    fn ranges(n: usize) -> Vec<FeatureRange> {
        vec![FeatureRange::new(0.0, 100.0).unwrap(); n]
    }

    #[test]
    fn masses_count_every_row_at_every_level() {
        let mut hst = small().with_ranges(&ranges(2)).unwrap();
        let rows = Array2::from_shape_fn((5, 2), |(i, j)| (i * 7 + j * 3) as f32);
        hst.update(rows.view()).unwrap();
        let nodes = small().nodes_per_tree();
        for latest in hst.latest.chunks(nodes) {
            assert_eq!(latest[0], 5, "the root sees every row");
            // Level d holds nodes 2^d - 1 .. 2^(d+1) - 1; each row passes one per level.
            for d in 1..=3 {
                let level: u32 = latest[(1 << d) - 1..(1 << (d + 1)) - 1].iter().sum();
                assert_eq!(level, 5, "level {d}");
            }
        }
        assert_eq!(hst.rows_in_window(), 5);
        assert!(!hst.is_warm());
    }

    #[test]
    fn a_full_window_becomes_the_reference() {
        let mut hst = small().with_ranges(&ranges(2)).unwrap();
        let rows = Array2::from_elem((8, 2), 10.0f32);
        hst.update(rows.view()).unwrap();
        assert!(hst.is_warm());
        assert_eq!(hst.windows_completed(), 1);
        assert_eq!(hst.rows_in_window(), 0);
        assert!(hst.latest.iter().all(|&m| m == 0));
        assert_eq!(hst.reference[0], 8);
    }

    #[test]
    fn scores_are_none_until_warm_then_in_unit_range() {
        let mut hst = small().with_ranges(&ranges(2)).unwrap();
        let x = array![[10.0f32, 10.0]];
        assert_eq!(hst.score_row(x.row(0)).unwrap(), None);
        assert!(hst.score(x.view()).unwrap().is_none());
        let out = hst
            .score_and_update(Array2::from_elem((9, 2), 10.0f32).view())
            .unwrap();
        assert!(out[..8].iter().all(Option::is_none));
        let s = out[8].unwrap();
        assert!((0.0..=1.0).contains(&s));
        // A row where all the reference mass is scores lower than one in an empty corner.
        let far = hst.score_row(array![99.0f32, 0.5].view()).unwrap().unwrap();
        assert!(far > s, "far {far} vs dense {s}");
        assert_eq!(far, 1.0, "an empty region has zero mass");
    }

    #[test]
    fn score_and_update_matches_score_then_update() {
        let params = HalfSpaceTreesParams::default()
            .n_trees(6)
            .height(5)
            .window_size(16)
            .check()
            .unwrap();
        let x = Array2::from_shape_fn((100, 3), |(i, j)| ((i * 31 + j * 17) % 50) as f32);
        let mut a = params.with_ranges(&ranges(3)).unwrap();
        let mut b = a.clone();
        let combined = a.score_and_update(x.view()).unwrap();
        let separate: Vec<Option<f32>> = x
            .rows()
            .into_iter()
            .map(|row| {
                let s = b.score_row(row).unwrap();
                b.update_row(row).unwrap();
                s
            })
            .collect();
        assert_eq!(combined, separate);
        assert_eq!(a, b);
    }

    #[test]
    fn bad_rows_are_refused_without_learning() {
        let mut hst = small().with_ranges(&ranges(2)).unwrap();
        let before = hst.clone();
        assert!(matches!(
            hst.update(array![[1.0f32, 2.0, 3.0]].view()),
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 3
            })
        ));
        assert!(matches!(
            hst.update(array![[1.0f32, 2.0], [f32::NAN, 1.0]].view()),
            Err(Error::NonFinite { row: 1, column: 0 })
        ));
        assert!(matches!(
            hst.score_row(array![1.0f32, f32::INFINITY].view()),
            Err(Error::NonFinite { row: 0, column: 1 })
        ));
        assert_eq!(hst, before);
        assert!(matches!(small().with_ranges(&[]), Err(Error::EmptyDataset)));
    }

    #[test]
    fn log_scale_thresholds_map_back_to_raw_units() {
        let scale = Scale { log: true };
        for v in [0.0f32, 1.0, -3.5, 1e6, -1e-3] {
            let back = scale.to_raw(scale.to_work(v));
            assert!((back - v).abs() <= v.abs() * 1e-6, "{v} -> {back}");
        }
    }

    #[test]
    fn non_contiguous_rows_score_like_contiguous_ones() {
        let mut hst = small()
            .fit(Array2::from_shape_fn((20, 2), |(i, j)| (i + j) as f32).view())
            .unwrap();
        let x = Array2::from_shape_fn((2, 4), |(i, j)| (i * 4 + j) as f32);
        let t = x.t(); // columns of x are rows of t, not contiguous
        let a = hst.score(t).unwrap().unwrap();
        let b = hst.score(t.to_owned().view()).unwrap().unwrap();
        assert_eq!(a, b);
        hst.update(t).unwrap();
    }

    #[test]
    fn restoring_checks_sizes() {
        let hst = small().with_ranges(&ranges(2)).unwrap();
        let mut json: serde_json::Value = serde_json::to_value(&hst).unwrap();
        let back: HalfSpaceTrees = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, hst);
        json["latest"].as_array_mut().unwrap().pop();
        let err = serde_json::from_value::<HalfSpaceTrees>(json).unwrap_err();
        assert!(err.to_string().contains("latest masses"), "{err}");
    }
}
