//! Growing, scoring and explaining the flattened isolation forest.

use ndarray::{Array1, ArrayView1, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::hyperparams::IsolationForestValidParams;
use crate::error::{Error, Result};

/// Euler-Mascheroni constant, for the harmonic number approximation.
const EULER_GAMMA: f64 = 0.577_215_664_9;

/// Average path length of an unsuccessful BST search over `n` points, `c(n)` in the paper:
/// the expected extra depth below a leaf holding `n` points, and the score normaliser.
pub(crate) fn average_path_length(n: usize) -> f32 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            let harmonic = (n - 1.0).ln() + EULER_GAMMA;
            (2.0 * harmonic - 2.0 * (n - 1.0) / n) as f32
        }
    }
}

/// One node of the flattened forest. Children always have larger indices than their parent
/// (checked on load), so walks terminate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Node {
    /// Rows with `x[feature] < threshold` go left, the rest (NaN included) go right.
    /// `min..=max` is the node's training range on `feature`, for the range check.
    Split {
        feature: u32,
        threshold: f32,
        min: f32,
        max: f32,
        left: u32,
        right: u32,
    },
    /// Training rows that reached this leaf; a path ending here adds `c(size)`.
    Leaf { size: u32 },
}

/// A fitted isolation forest. All trees live in one node array, tree `t` starting at
/// `roots[t]`, so scoring touches contiguous memory and the model serializes flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ForestData")]
pub struct IsolationForest {
    n_features: usize,
    range_check: bool,
    /// Effective subsample size `psi` (capped at the training row count).
    sample_size: usize,
    roots: Vec<u32>,
    nodes: Vec<Node>,
    /// `c(psi)`, cached; derived from `sample_size`, so not stored.
    #[serde(skip)]
    normaliser: f32,
}

/// The serialized form, validated before it becomes an [`IsolationForest`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForestData {
    n_features: usize,
    range_check: bool,
    sample_size: usize,
    roots: Vec<u32>,
    nodes: Vec<Node>,
}

impl TryFrom<ForestData> for IsolationForest {
    type Error = String;

    fn try_from(data: ForestData) -> Result<Self, String> {
        if data.sample_size < 2 {
            return Err(format!("forest sample_size {} < 2", data.sample_size));
        }
        if data.roots.is_empty() || data.roots[0] != 0 {
            return Err("forest has no trees or the first root is not node 0".into());
        }
        for (t, &start) in data.roots.iter().enumerate() {
            let end = data
                .roots
                .get(t + 1)
                .map_or(data.nodes.len(), |&r| r as usize);
            validate_tree(&data.nodes, start as usize, end, data.n_features)
                .map_err(|e| format!("tree {t}: {e}"))?;
        }
        Ok(Self {
            normaliser: average_path_length(data.sample_size),
            n_features: data.n_features,
            range_check: data.range_check,
            sample_size: data.sample_size,
            roots: data.roots,
            nodes: data.nodes,
        })
    }
}

/// Checks that nodes `start..end` form a tree whose walks stay inside it.
fn validate_tree(
    nodes: &[Node],
    start: usize,
    end: usize,
    n_features: usize,
) -> Result<(), String> {
    if start >= end || end > nodes.len() {
        return Err(format!("bad node range {start}..{end}"));
    }
    for (i, node) in nodes.iter().enumerate().take(end).skip(start) {
        if let Node::Split {
            feature,
            threshold,
            min,
            max,
            left,
            right,
        } = *node
        {
            if feature as usize >= n_features {
                return Err(format!(
                    "node {i} splits on feature {feature} of {n_features}"
                ));
            }
            if !(min < max && min <= threshold && threshold <= max) {
                return Err(format!(
                    "node {i} has threshold {threshold} outside {min}..{max}"
                ));
            }
            let in_tree = |c: u32| (c as usize) > i && (c as usize) < end;
            if !in_tree(left) || !in_tree(right) {
                return Err(format!("node {i} has children outside {}..{end}", i + 1));
            }
        }
    }
    Ok(())
}

impl IsolationForestValidParams {
    /// Fits a forest on `x` (rows = samples). Rejects empty data and NaN/infinite values.
    pub fn fit(&self, x: ArrayView2<f32>) -> Result<IsolationForest> {
        let (n_rows, n_features) = x.dim();
        if n_rows == 0 || n_features == 0 {
            return Err(Error::EmptyDataset);
        }
        if n_rows < 2 {
            return Err(Error::TooFewRows {
                min: 2,
                found: n_rows,
            });
        }
        if u32::try_from(n_features).is_err() {
            return Err(Error::InvalidParams(format!(
                "{n_features} features is too many"
            )));
        }
        check_finite(x)?;
        let psi = self.sample_size().min(n_rows);
        let depth_limit = self.depth_limit(psi);
        let mut forest = IsolationForest {
            n_features,
            range_check: self.range_check(),
            sample_size: psi,
            roots: Vec::with_capacity(self.n_trees()),
            nodes: Vec::new(),
            normaliser: average_path_length(psi),
        };
        for tree in 0..self.n_trees() {
            // One ChaCha stream per tree: deterministic for a seed, independent across trees
            // (seeding with `seed + tree` would make seeds 1 and 2 share all but one tree).
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed());
            rng.set_stream(tree as u64);
            let root = to_u32(forest.nodes.len())?;
            forest.roots.push(root);
            grow_tree(&mut forest.nodes, x, psi, depth_limit, &mut rng)?;
        }
        Ok(forest)
    }
}

/// Finds the first NaN or infinity, reporting where it is.
pub(crate) fn check_finite(x: ArrayView2<f32>) -> Result<()> {
    for ((row, column), v) in x.indexed_iter() {
        if !v.is_finite() {
            return Err(Error::NonFinite { row, column });
        }
    }
    Ok(())
}

fn to_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::InvalidParams("forest has too many nodes".into()))
}

/// A node still to be built: its slot, its rows (a range of the index buffer) and depth.
struct Pending {
    slot: usize,
    rows: std::ops::Range<usize>,
    depth: usize,
}

/// Grows one isolation tree on a subsample, appending its nodes in place. Iterative (an
/// explicit stack), so a large `max_depth` cannot overflow the call stack.
fn grow_tree(
    nodes: &mut Vec<Node>,
    x: ArrayView2<f32>,
    psi: usize,
    depth_limit: usize,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let mut rows = rand::seq::index::sample(rng, x.nrows(), psi).into_vec();
    let mut features: Vec<usize> = (0..x.ncols()).collect();
    nodes.push(Node::Leaf { size: 0 });
    let mut stack = vec![Pending {
        slot: nodes.len() - 1,
        rows: 0..psi,
        depth: 0,
    }];
    while let Some(task) = stack.pop() {
        let idx = &mut rows[task.rows.clone()];
        let split = if task.depth < depth_limit && idx.len() > 1 {
            choose_split(x, idx, &mut features, rng)
        } else {
            None
        };
        let Some(Cut {
            feature,
            threshold,
            min,
            max,
        }) = split
        else {
            nodes[task.slot] = Node::Leaf {
                size: to_u32(idx.len())?,
            };
            continue;
        };
        let n_left = partition(idx, |r| x[[r, feature]] < threshold);
        let mid = task.rows.start + n_left;
        let (left, right) = (nodes.len(), nodes.len() + 1);
        nodes.extend([Node::Leaf { size: 0 }, Node::Leaf { size: 0 }]);
        nodes[task.slot] = Node::Split {
            feature: to_u32(feature)?,
            threshold,
            min,
            max,
            left: to_u32(left)?,
            right: to_u32(right)?,
        };
        let depth = task.depth + 1;
        stack.push(Pending {
            slot: right,
            rows: mid..task.rows.end,
            depth,
        });
        stack.push(Pending {
            slot: left,
            rows: task.rows.start..mid,
            depth,
        });
    }
    Ok(())
}

/// A chosen split: feature, threshold, and the node's range on that feature.
struct Cut {
    feature: usize,
    threshold: f32,
    min: f32,
    max: f32,
}

/// Picks a uniformly random non-constant feature (a lazy Fisher-Yates shuffle, so constant
/// features are skipped without bias) and a threshold uniform in its `[min, max)` range.
/// `None` when every feature is constant on these rows.
fn choose_split(
    x: ArrayView2<f32>,
    idx: &[usize],
    features: &mut [usize],
    rng: &mut ChaCha8Rng,
) -> Option<Cut> {
    for k in 0..features.len() {
        let j = rng.random_range(k..features.len());
        features.swap(k, j);
        let f = features[k];
        let (min, max) = idx
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &r| {
                let v = x[[r, f]];
                (lo.min(v), hi.max(v))
            });
        if min < max {
            let u: f32 = rng.random();
            // A convex combination cannot overflow; if rounding leaves it outside
            // (min, max], use max so both children are non-empty.
            let t = min * (1.0 - u) + max * u;
            let threshold = if t > min && t <= max { t } else { max };
            return Some(Cut {
                feature: f,
                threshold,
                min,
                max,
            });
        }
    }
    None
}

/// Moves elements satisfying `goes_left` to the front; returns how many there are.
fn partition(idx: &mut [usize], goes_left: impl Fn(usize) -> bool) -> usize {
    let mut n_left = 0;
    for i in 0..idx.len() {
        if goes_left(idx[i]) {
            idx.swap(i, n_left);
            n_left += 1;
        }
    }
    n_left
}

impl IsolationForest {
    /// Default hyperparameters, linfa-style: `IsolationForest::params().n_trees(200)...`.
    pub fn params() -> super::IsolationForestParams {
        super::IsolationForestParams::default()
    }

    /// Number of feature columns the forest was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Effective subsample size `psi` each tree was grown on.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// Anomaly scores in (0, 1] for each row of `x`; higher is more anomalous.
    pub fn score(&self, x: ArrayView2<f32>) -> Result<Array1<f32>> {
        self.check_columns(x.ncols())?;
        let mut buf = Vec::with_capacity(self.n_features);
        Ok(x.rows()
            .into_iter()
            .map(|row| self.score_row(as_slice(&row, &mut buf)))
            .collect())
    }

    /// Anomaly score `2^(-E[h(x)] / c(psi))` of one row, in (0, 1]. About 0.5 or below is
    /// normal; close to 1 is isolated quickly. NaN values go right at every split.
    /// Returns NaN if `row` does not have [`n_features`](Self::n_features) values.
    pub fn score_row(&self, row: &[f32]) -> f32 {
        if row.len() != self.n_features {
            return f32::NAN;
        }
        let total: f32 = (0..self.roots.len())
            .map(|t| self.path_length(t, row))
            .sum();
        let mean = total / self.roots.len() as f32;
        (-mean / self.normaliser).exp2()
    }

    /// Per-feature contributions to the row's isolation, non-negative and summing to 1 (all
    /// zero if no tree split on its path). In each tree, every split on the row's path
    /// credits its feature with `1 / h`, `h` being that tree's path length, so features that
    /// isolate the row quickly earn the most. With the range check, each possible end of
    /// the path is credited this way, weighted by its probability.
    pub fn explain_row(&self, row: &[f32]) -> Vec<f32> {
        let mut credit = vec![0.0_f32; self.n_features];
        if row.len() != self.n_features {
            return credit;
        }
        let mut path: Vec<(usize, f32)> = Vec::new();
        for t in 0..self.roots.len() {
            path.clear();
            let leaf_h = self.walk(t, row, |f, p| path.push((f, p)));
            let mut reach = 1.0_f32;
            for (k, &(_, p)) in path.iter().enumerate() {
                // The path ends right after split k (length k + 1) with chance reach * p.
                let share = reach * p / (k + 1) as f32;
                if share > 0.0 {
                    path[..=k].iter().for_each(|&(f, _)| credit[f] += share);
                }
                reach *= 1.0 - p;
            }
            if reach > 0.0 && leaf_h > 0.0 {
                path.iter().for_each(|&(f, _)| credit[f] += reach / leaf_h);
            }
        }
        let total: f32 = credit.iter().sum();
        if total > 0.0 {
            credit.iter_mut().for_each(|c| *c /= total);
        }
        credit
    }

    /// Expected path length `h(x)` of `row` in tree `t`: splits walked plus `c(leaf size)`,
    /// ending early where the range check says the row would have been isolated.
    fn path_length(&self, t: usize, row: &[f32]) -> f32 {
        let (mut reach, mut expected, mut depth) = (1.0_f32, 0.0_f32, 0.0_f32);
        let leaf_h = self.walk(t, row, |_, p| {
            depth += 1.0;
            expected += reach * p * depth;
            reach *= 1.0 - p;
        });
        expected + reach * leaf_h
    }

    /// Walks tree `t`, calling `visit(feature, p)` at each split on the path, `p` being the
    /// chance that split would have isolated the row (see [`isolation_chance`]; 0 without the
    /// range check). Returns the plain path length at the leaf: depth + `c(leaf size)`.
    /// `row` must have `n_features` values.
    fn walk(&self, t: usize, row: &[f32], mut visit: impl FnMut(usize, f32)) -> f32 {
        let mut i = self.roots[t] as usize;
        let mut depth = 0.0_f32;
        loop {
            match self.nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    min,
                    max,
                    left,
                    right,
                } => {
                    let v = row[feature as usize];
                    let p = if self.range_check {
                        isolation_chance(v, min, max)
                    } else {
                        0.0
                    };
                    visit(feature as usize, p);
                    depth += 1.0;
                    i = if v < threshold { left } else { right } as usize;
                }
                Node::Leaf { size } => return depth + average_path_length(size as usize),
            }
        }
    }

    pub(crate) fn check_columns(&self, found: usize) -> Result<()> {
        if found == self.n_features {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                expected: self.n_features,
                found,
            })
        }
    }
}

/// Chance that a split on a node with training range `min..=max` would have isolated `v`
/// had `v` been among the node's rows: the threshold, uniform over the widened range, must
/// fall in the gap between `v` and the range. 0 inside the range (and for NaN).
fn isolation_chance(v: f32, min: f32, max: f32) -> f32 {
    let (v, min, max) = (f64::from(v), f64::from(min), f64::from(max));
    let gap = (min - v).max(v - max);
    if gap.is_nan() || gap <= 0.0 {
        0.0
    } else if gap.is_infinite() {
        1.0
    } else {
        (gap / (max - min + gap)) as f32
    }
}

/// The row as a slice, copying into `buf` only when it is not contiguous.
fn as_slice<'b>(row: &'b ArrayView1<'_, f32>, buf: &'b mut Vec<f32>) -> &'b [f32] {
    match row.as_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(row.iter());
            buf
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    /// Standard normal samples (Box-Muller), so tests need no distribution crate.
    fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
        let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    fn gaussian_data(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((rows, cols), || gaussian(&mut rng))
    }

    fn fit(x: &Array2<f32>, seed: u64) -> IsolationForest {
        IsolationForest::params()
            .seed(seed)
            .check()
            .unwrap()
            .fit(x.view())
            .unwrap()
    }

    #[test]
    fn average_path_length_matches_known_values() {
        assert_eq!(average_path_length(0), 0.0);
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // 2 (ln 9 + gamma) - 2 * 9 / 10 and 2 (ln 255 + gamma) - 2 * 255 / 256.
        assert!((average_path_length(10) - 3.748_880_6).abs() < 1e-5);
        assert!((average_path_length(256) - 10.244_771).abs() < 1e-5);
    }

    #[test]
    fn same_seed_is_bit_identical_and_other_seeds_differ() {
        let x = gaussian_data(500, 3, 1);
        let (a, b, c) = (fit(&x, 7), fit(&x, 7), fit(&x, 8));
        let bits = |f: &IsolationForest| -> Vec<u32> {
            f.score(x.view())
                .unwrap()
                .iter()
                .map(|s| s.to_bits())
                .collect()
        };
        assert_eq!(a, b);
        assert_eq!(bits(&a), bits(&b));
        assert_ne!(a.nodes, c.nodes);
        assert_ne!(bits(&a), bits(&c));
    }

    #[test]
    fn far_outliers_score_above_every_inlier() {
        // Over 30 data seeds the worst margin to the top inlier was 0.044 (without the range
        // check, points far out in one coordinate only tied the most extreme inliers).
        let mut x = gaussian_data(1000, 2, 3);
        let outliers = [[8.0, 8.0], [-9.0, 0.0], [0.0, 10.0], [7.0, -7.5]];
        for (i, o) in outliers.iter().enumerate() {
            x.row_mut(i).assign(&ndarray::aview1(o));
        }
        let scores = fit(&x, 42).score(x.view()).unwrap();
        let (out, inl) = scores.as_slice().unwrap().split_at(outliers.len());
        let max_inlier = inl.iter().copied().fold(f32::MIN, f32::max);
        for &s in out {
            assert!(s > 0.6, "outlier score {s}");
            assert!(s > max_inlier, "outlier {s} <= inlier {max_inlier}");
        }
        let low = inl.iter().filter(|&&s| s < 0.55).count() as f32 / inl.len() as f32;
        assert!(low > 0.9, "only {low} of inliers below 0.55");
        // AUC: the share of (outlier, inlier) pairs ranked correctly.
        let correct = out.iter().flat_map(|o| inl.iter().map(move |i| o > i));
        let auc = correct.filter(|&ok| ok).count() as f32 / (out.len() * inl.len()) as f32;
        assert_eq!(auc, 1.0);
        assert!(scores.iter().all(|&s| s > 0.0 && s <= 1.0));
    }

    #[test]
    fn range_check_lifts_rows_beyond_the_training_data() {
        let x = gaussian_data(1000, 3, 10);
        let params = IsolationForest::params().seed(4);
        let plain = params
            .range_check(false)
            .check()
            .unwrap()
            .fit(x.view())
            .unwrap();
        let checked = params.check().unwrap().fit(x.view()).unwrap();
        assert_eq!(
            plain.nodes, checked.nodes,
            "the check must not change training"
        );
        let (near, far) = ([0.0, 5.0, 0.0], [0.0, 50.0, 0.0]);
        // Beyond every threshold, near and far take the same paths: the plain score saturates.
        assert_eq!(plain.score_row(&near), plain.score_row(&far));
        assert!(checked.score_row(&far) > checked.score_row(&near) + 0.1);
        assert!(checked.score_row(&far) > plain.score_row(&far) + 0.1);
        // Inside every node's range both agree exactly.
        let centre = [0.0, 0.0, 0.0];
        let pick = |f: &IsolationForest| f.score_row(&centre).to_bits();
        let inside = checked.roots.iter().all(|&r| {
            let mut i = r as usize;
            loop {
                match checked.nodes[i] {
                    Node::Split {
                        feature,
                        threshold,
                        min,
                        max,
                        left,
                        right,
                    } => {
                        let v = centre[feature as usize];
                        if v < min || v > max {
                            return false;
                        }
                        i = if v < threshold { left } else { right } as usize;
                    }
                    Node::Leaf { .. } => return true,
                }
            }
        });
        assert_eq!(inside, pick(&plain) == pick(&checked));
    }

    #[test]
    fn isolation_chance_is_the_gap_share_of_the_widened_range() {
        assert_eq!(isolation_chance(0.5, 0.0, 1.0), 0.0);
        assert_eq!(isolation_chance(1.0, 0.0, 1.0), 0.0);
        assert_eq!(isolation_chance(f32::NAN, 0.0, 1.0), 0.0);
        assert!((isolation_chance(3.0, 0.0, 1.0) - 2.0 / 3.0).abs() < 1e-6);
        assert!((isolation_chance(-1.0, 0.0, 1.0) - 0.5).abs() < 1e-6);
        assert_eq!(isolation_chance(f32::INFINITY, 0.0, 1.0), 1.0);
        assert_eq!(isolation_chance(f32::MAX, -f32::MAX, 0.0), 0.5);
    }

    #[test]
    fn explain_credits_the_anomalous_feature() {
        let x = gaussian_data(1000, 3, 5);
        let forest = fit(&x, 42);
        let contrib = forest.explain_row(&[0.0, 9.0, 0.0]);
        assert_eq!(contrib.len(), 3);
        assert!(contrib.iter().all(|&c| c >= 0.0));
        assert!((contrib.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let best = (0..3)
            .max_by(|&a, &b| contrib[a].total_cmp(&contrib[b]))
            .unwrap();
        assert_eq!(best, 1, "{contrib:?}");
        // The point lies beyond every training value, so its paths follow the top of
        // feature 1 and still split on the others on the way: a clear lead, not a sweep.
        assert!(
            contrib[1] > contrib[0].max(contrib[2]) + 0.05,
            "{contrib:?}"
        );
    }

    #[test]
    fn constant_data_gives_leaf_only_trees() {
        let x = Array2::from_elem((50, 2), 3.0_f32);
        let forest = fit(&x, 1);
        assert!(forest
            .nodes
            .iter()
            .all(|n| matches!(n, Node::Leaf { size: 50 })));
        assert_eq!(forest.explain_row(&[3.0, 3.0]), vec![0.0, 0.0]);
        // Every path is c(50) = c(psi) long, so the score is exactly 0.5.
        assert!((forest.score_row(&[100.0, -5.0]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn constant_feature_is_never_split_on() {
        let mut x = gaussian_data(300, 2, 9);
        x.column_mut(0).fill(1.0);
        let forest = fit(&x, 1);
        for node in &forest.nodes {
            if let Node::Split { feature, .. } = node {
                assert_eq!(*feature, 1);
            }
        }
        assert_eq!(forest.explain_row(&[50.0, 0.0])[0], 0.0);
    }

    #[test]
    fn sample_size_is_capped_and_depth_limited() {
        let x = gaussian_data(20, 2, 2);
        let p = IsolationForest::params()
            .n_trees(3)
            .max_depth(2)
            .check()
            .unwrap();
        let forest = p.fit(x.view()).unwrap();
        assert_eq!(forest.sample_size(), 20);
        assert_eq!(forest.n_trees(), 3);
        // Depth 2 allows at most 7 nodes per tree, with the 20 rows spread over leaves.
        assert!(forest.nodes.len() <= 21);
        let leaf_rows: u32 = forest
            .nodes
            .iter()
            .map(|n| match n {
                Node::Leaf { size } => *size,
                Node::Split { .. } => 0,
            })
            .sum();
        assert_eq!(leaf_rows, 60);
    }

    #[test]
    fn rejects_empty_tiny_and_non_finite_data() {
        let p = IsolationForest::params().check().unwrap();
        assert!(matches!(
            p.fit(Array2::zeros((0, 3)).view()),
            Err(Error::EmptyDataset)
        ));
        assert!(matches!(
            p.fit(Array2::zeros((5, 0)).view()),
            Err(Error::EmptyDataset)
        ));
        assert!(matches!(
            p.fit(Array2::zeros((1, 3)).view()),
            Err(Error::TooFewRows { min: 2, found: 1 })
        ));
        let x = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, f32::NAN]];
        assert!(matches!(
            p.fit(x.view()),
            Err(Error::NonFinite { row: 2, column: 2 })
        ));
        let x = array![[1.0, f32::INFINITY], [4.0, 5.0]];
        assert!(matches!(
            p.fit(x.view()),
            Err(Error::NonFinite { row: 0, column: 1 })
        ));
    }

    #[test]
    fn wrong_column_count_is_a_dimension_mismatch() {
        let forest = fit(&gaussian_data(100, 3, 4), 1);
        let err = forest.score(Array2::zeros((4, 2)).view()).unwrap_err();
        assert!(matches!(
            err,
            Error::DimensionMismatch {
                expected: 3,
                found: 2
            }
        ));
        assert!(forest.score_row(&[0.0; 2]).is_nan());
        assert_eq!(forest.explain_row(&[0.0; 4]), vec![0.0; 3]);
    }

    #[test]
    fn column_major_input_scores_like_row_major() {
        let x = gaussian_data(200, 3, 6);
        let forest = fit(&x, 1);
        let t = x.t().to_owned();
        assert_eq!(
            forest.score(x.view()).unwrap(),
            forest.score(t.t()).unwrap()
        );
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let forest = fit(&gaussian_data(100, 2, 8), 3);
        let json = serde_json::to_string(&forest).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, forest);
        let row = [0.3, -1.2];
        assert_eq!(
            back.score_row(&row).to_bits(),
            forest.score_row(&row).to_bits()
        );

        // A child pointing backwards would loop forever; loading must refuse it.
        let mut bad = forest.clone();
        bad.nodes[0] = Node::Split {
            feature: 0,
            threshold: 0.0,
            min: -1.0,
            max: 1.0,
            left: 0,
            right: 1,
        };
        let bad_json = serde_json::to_string(&bad).unwrap();
        assert!(serde_json::from_str::<IsolationForest>(&bad_json).is_err());
        // So must a split on a feature the forest does not have.
        let mut bad = forest.clone();
        bad.n_features = 1;
        let bad_json = serde_json::to_string(&bad).unwrap();
        assert!(serde_json::from_str::<IsolationForest>(&bad_json).is_err());
    }
}
