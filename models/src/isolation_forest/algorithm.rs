//! The fitted forest: its stored form (all trees in one node array), validation on load,
//! the reference walk that scores and explains one row, and the batch entry points (which
//! use the padded layout of [`super::compiled`]).

use std::fmt;

use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::compiled::Compiled;
use super::hyperparams::Algorithm;
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
pub(crate) enum Node {
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
    /// Extended forests: rows whose projection on hyperplane `plane` (see [`Planes`]) is
    /// below 0 go left, the rest right. `min..=max` is the range of the projections of the
    /// node's training rows, for the range check.
    Plane {
        plane: u32,
        min: f32,
        max: f32,
        left: u32,
        right: u32,
    },
    /// Training rows that reached this leaf; a path ending here adds `c(size)`.
    Leaf { size: u32 },
}

/// The hyperplanes of an extended forest, `width` components each, flattened: plane `i`
/// is `features`, `weights` and `points` at `i * width..(i + 1) * width`. A row's
/// projection is `sum_j weights_j * (x[features_j] - points_j)`; `points` is the random
/// intercept (a point of the node's bounding box). A zero weight pads planes of nodes that
/// had fewer non-constant features than `width`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Planes {
    pub(crate) width: usize,
    pub(crate) features: Vec<u32>,
    pub(crate) weights: Vec<f32>,
    pub(crate) points: Vec<f32>,
}

impl Planes {
    pub(crate) fn with_width(width: usize) -> Self {
        Self {
            width,
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.features.len().checked_div(self.width).unwrap_or(0)
    }

    fn range(&self, plane: usize) -> std::ops::Range<usize> {
        plane * self.width..(plane + 1) * self.width
    }

    /// Projection of `row` (all features) on plane `plane` (which must exist).
    pub(crate) fn projection(&self, plane: usize, row: &[f32]) -> f32 {
        let r = self.range(plane);
        projection(
            &self.features[r.clone()],
            &self.weights[r.clone()],
            &self.points[r],
            row,
            dense_planes(self.width, row.len()),
        )
    }

    /// Appends `other`'s planes (tree-local planes into the forest).
    pub(crate) fn append(&mut self, other: &Self) {
        self.features.extend_from_slice(&other.features);
        self.weights.extend_from_slice(&other.weights);
        self.points.extend_from_slice(&other.points);
    }
}

/// Whether planes `width` wide over `n_features` features sum their projection densely:
/// wide planes are scored as a vectorised dot product over every feature, narrow ones
/// term by term.
pub(crate) fn dense_planes(width: usize, n_features: usize) -> bool {
    2 * width > n_features
}

/// `sum_j w_j (x_j - p_j)` over a plane's (sorted) features, in a fixed order that every
/// scorer follows, so all get the same bits. Narrow planes sum term by term. Dense ones
/// ([`dense_planes`]) sum into eight accumulators by feature index modulo 8, in
/// increasing feature order, then pairwise: the order of a vectorised dot product over
/// all features, in which the unused ones add exact zeros.
#[inline]
pub(crate) fn projection(
    features: &[u32],
    weights: &[f32],
    points: &[f32],
    row: &[f32],
    dense: bool,
) -> f32 {
    let terms = features
        .iter()
        .zip(weights)
        .zip(points)
        .map(|((&f, &w), &p)| (f as usize, plane_term(w, row[f as usize], p)));
    if dense {
        let mut acc = [0.0_f32; 8];
        terms.for_each(|(f, t)| acc[f & 7] += t);
        combine_lanes(acc)
    } else {
        terms.fold(0.0, |acc, (_, t)| acc + t)
    }
}

/// The pairwise sum of [`projection`]'s accumulators.
#[inline(always)]
pub(crate) fn combine_lanes(acc: [f32; 8]) -> f32 {
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// One component of a projection; a zero weight (padding) adds exactly 0, even for an
/// infinite or NaN value.
#[inline]
pub(crate) fn plane_term(w: f32, x: f32, p: f32) -> f32 {
    // Computed before the select, so the compiler can vectorise it (a blend, no branch).
    let term = w * (x - p);
    if w == 0.0 {
        0.0
    } else {
        term
    }
}

/// A fitted isolation forest. All trees live in one node array, tree `t` starting at
/// `roots[t]`, so the model serializes flat; scoring uses a padded copy ([`Compiled`])
/// built on fit and on load.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "ForestData")]
pub struct IsolationForest {
    pub(crate) n_features: usize,
    pub(crate) range_check: bool,
    /// Effective subsample size `psi` (capped at the training row count).
    pub(crate) sample_size: usize,
    pub(crate) roots: Vec<u32>,
    pub(crate) nodes: Vec<Node>,
    /// Extended forests only; absent for axis-parallel ones, whose files stay as in v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) planes: Option<Planes>,
    /// `c(psi)`, cached; derived from `sample_size`, so not stored.
    #[serde(skip)]
    pub(crate) normaliser: f32,
    /// The scoring layout; `None` when trees are too deep to pad (then rows are walked one
    /// at a time).
    #[serde(skip)]
    pub(crate) compiled: Option<Compiled>,
}

impl PartialEq for IsolationForest {
    /// Equal when the stored forests are; the derived fields follow from them.
    fn eq(&self, other: &Self) -> bool {
        self.n_features == other.n_features
            && self.range_check == other.range_check
            && self.sample_size == other.sample_size
            && self.roots == other.roots
            && self.nodes == other.nodes
            && self.planes == other.planes
    }
}

impl fmt::Debug for IsolationForest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsolationForest")
            .field("algorithm", &self.algorithm())
            .field("n_features", &self.n_features)
            .field("n_trees", &self.roots.len())
            .field("n_nodes", &self.nodes.len())
            .field("sample_size", &self.sample_size)
            .field("range_check", &self.range_check)
            .field("padded_depth", &self.compiled.as_ref().map(Compiled::depth))
            .finish()
    }
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
    #[serde(default)]
    planes: Option<Planes>,
}

impl TryFrom<ForestData> for IsolationForest {
    type Error = String;

    fn try_from(data: ForestData) -> Result<Self, String> {
        if data.sample_size < 2 {
            return Err(format!("forest sample_size {} < 2", data.sample_size));
        }
        if data.n_features == 0 {
            return Err("forest has no features".into());
        }
        if data.roots.is_empty() || data.roots[0] != 0 {
            return Err("forest has no trees or the first root is not node 0".into());
        }
        if let Some(planes) = &data.planes {
            validate_planes(planes, data.n_features)?;
        }
        for (t, &start) in data.roots.iter().enumerate() {
            let end = data
                .roots
                .get(t + 1)
                .map_or(data.nodes.len(), |&r| r as usize);
            validate_tree(&data, start as usize, end).map_err(|e| format!("tree {t}: {e}"))?;
        }
        Ok(Self::assemble(
            data.n_features,
            data.range_check,
            data.sample_size,
            data.roots,
            data.nodes,
            data.planes,
        ))
    }
}

/// Checks that the plane arrays agree in length and hold usable numbers.
fn validate_planes(planes: &Planes, n_features: usize) -> Result<(), String> {
    let n = planes.features.len();
    if planes.width == 0 || planes.width > n_features {
        return Err(format!(
            "plane width {} is not in 1..={n_features}",
            planes.width
        ));
    }
    if n % planes.width != 0 || planes.weights.len() != n || planes.points.len() != n {
        return Err("plane arrays have inconsistent lengths".into());
    }
    if let Some(f) = planes.features.iter().find(|&&f| f as usize >= n_features) {
        return Err(format!("a plane uses feature {f} of {n_features}"));
    }
    if planes
        .weights
        .iter()
        .chain(&planes.points)
        .any(|v| !v.is_finite())
    {
        return Err("a plane has a non-finite weight or point".into());
    }
    // Projections sum in feature order; padding (zero weights) comes last.
    for plane in 0..planes.len() {
        let r = planes.range(plane);
        let used: Vec<u32> = planes.features[r.clone()]
            .iter()
            .zip(&planes.weights[r])
            .filter(|(_, &w)| w != 0.0)
            .map(|(&f, _)| f)
            .collect();
        if used.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "plane {plane} does not list its features in increasing order"
            ));
        }
    }
    Ok(())
}

/// Checks that nodes `start..end` form a tree whose walks stay inside it.
fn validate_tree(data: &ForestData, start: usize, end: usize) -> Result<(), String> {
    let nodes = &data.nodes;
    if start >= end || end > nodes.len() {
        return Err(format!("bad node range {start}..{end}"));
    }
    let n_planes = data.planes.as_ref().map(Planes::len);
    for (i, node) in nodes.iter().enumerate().take(end).skip(start) {
        let (left, right) = match *node {
            Node::Leaf { .. } => continue,
            Node::Split {
                feature,
                threshold,
                min,
                max,
                left,
                right,
            } => {
                if n_planes.is_some() {
                    return Err(format!("node {i}: an extended forest has an axis split"));
                }
                if feature as usize >= data.n_features {
                    return Err(format!(
                        "node {i} splits on feature {feature} of {}",
                        data.n_features
                    ));
                }
                if !(min < max && min <= threshold && threshold <= max) {
                    return Err(format!(
                        "node {i} has threshold {threshold} outside {min}..{max}"
                    ));
                }
                (left, right)
            }
            Node::Plane {
                plane,
                min,
                max,
                left,
                right,
            } => {
                let Some(n_planes) = n_planes else {
                    return Err(format!("node {i} uses plane {plane} but there are none"));
                };
                if plane as usize >= n_planes {
                    return Err(format!("node {i} uses plane {plane} of {n_planes}"));
                }
                if !(min.is_finite() && max.is_finite() && min <= max) {
                    return Err(format!("node {i} has projection range {min}..{max}"));
                }
                (left, right)
            }
        };
        let in_tree = |c: u32| (c as usize) > i && (c as usize) < end;
        if !in_tree(left) || !in_tree(right) {
            return Err(format!("node {i} has children outside {}..{end}", i + 1));
        }
    }
    Ok(())
}

impl IsolationForest {
    /// Builds the forest from validated parts and pads it for scoring.
    pub(crate) fn assemble(
        n_features: usize,
        range_check: bool,
        sample_size: usize,
        roots: Vec<u32>,
        nodes: Vec<Node>,
        planes: Option<Planes>,
    ) -> Self {
        let mut forest = Self {
            n_features,
            range_check,
            sample_size,
            roots,
            nodes,
            planes,
            normaliser: average_path_length(sample_size),
            compiled: None,
        };
        forest.compiled = Compiled::build(&forest);
        forest
    }

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

    /// Whether scoring applies the range check (see
    /// [`IsolationForestParams::range_check`](super::IsolationForestParams::range_check)).
    pub fn range_check(&self) -> bool {
        self.range_check
    }

    /// Axis-parallel ([`Algorithm::Standard`]) or hyperplane ([`Algorithm::Extended`]).
    pub fn algorithm(&self) -> Algorithm {
        if self.planes.is_some() {
            Algorithm::Extended
        } else {
            Algorithm::Standard
        }
    }

    /// Non-zero components per hyperplane (extended forests), else `None`.
    pub fn plane_width(&self) -> Option<usize> {
        self.planes.as_ref().map(|p| p.width)
    }

    /// Levels every tree is padded to for batch scoring; `None` when the trees are too deep
    /// to pad and batch scoring walks rows one at a time.
    pub fn padded_depth(&self) -> Option<usize> {
        self.compiled.as_ref().map(Compiled::depth)
    }

    /// Anomaly scores in (0, 1] for each row of `x`; higher is more anomalous. Batches of
    /// [`PARALLEL_MIN_ROWS`](super::PARALLEL_MIN_ROWS) rows or more are split over rayon's
    /// thread pool; smaller ones stay on the caller's thread. Results do not depend on the
    /// number of threads.
    pub fn score(&self, x: ArrayView2<f32>) -> Result<Array1<f32>> {
        self.score_batch(x, true)
    }

    /// [`score`](Self::score) on the caller's thread only, whatever the batch size.
    pub fn score_serial(&self, x: ArrayView2<f32>) -> Result<Array1<f32>> {
        self.score_batch(x, false)
    }

    fn score_batch(&self, x: ArrayView2<f32>, parallel: bool) -> Result<Array1<f32>> {
        self.check_columns(x.ncols())?;
        let x = x.as_standard_layout();
        let flat = x.as_slice().ok_or_else(|| {
            Error::InvalidParams("cannot view the rows as one contiguous array".into())
        })?;
        let mut out = vec![0.0_f32; x.nrows()];
        super::compiled::score_rows(self, flat, &mut out, parallel);
        Ok(Array1::from(out))
    }

    /// Anomaly score `2^(-E[h(x)] / c(psi))` of one row, in (0, 1]. About 0.5 or below is
    /// normal; close to 1 is isolated quickly. NaN values go right at every split.
    /// Returns NaN if `row` does not have [`n_features`](Self::n_features) values.
    pub fn score_row(&self, row: &[f32]) -> f32 {
        if row.len() != self.n_features {
            return f32::NAN;
        }
        self.finish(self.path_total(row))
    }

    /// Sum over trees, in tree order, of the row's path lengths (the reference walk).
    pub(crate) fn path_total(&self, row: &[f32]) -> f32 {
        (0..self.roots.len())
            .map(|t| self.path_length(t, row))
            .sum()
    }

    /// Turns a sum of path lengths over all trees into the anomaly score.
    pub(crate) fn finish(&self, total: f32) -> f32 {
        let mean = total / self.roots.len() as f32;
        (-mean / self.normaliser).exp2()
    }

    /// Per-feature contributions to the row's isolation, non-negative and summing to 1 (all
    /// zero if no tree split on its path). In each tree, every split on the row's path
    /// credits its feature with `1 / h`, `h` being that tree's path length, so features that
    /// isolate the row quickly earn the most. With the range check, each possible end of
    /// the path is credited this way, weighted by its probability. In extended forests a
    /// split's credit is shared among its hyperplane's features in proportion to
    /// `|w_j (x_j - p_j)|`, each one's part in the row's distance from the plane.
    pub fn explain_row(&self, row: &[f32]) -> Vec<f32> {
        let mut credit = vec![0.0_f32; self.n_features];
        if row.len() != self.n_features {
            return credit;
        }
        let mut path: Vec<(usize, f32)> = Vec::new();
        for t in 0..self.roots.len() {
            path.clear();
            let leaf_h = self.walk(t, row, |node, p| path.push((node, p)));
            let mut reach = 1.0_f32;
            for (k, &(_, p)) in path.iter().enumerate() {
                // The path ends right after split k (length k + 1) with chance reach * p.
                let share = reach * p / (k + 1) as f32;
                if share > 0.0 {
                    for &(node, _) in &path[..=k] {
                        self.credit_split(node, row, share, &mut credit);
                    }
                }
                reach *= 1.0 - p;
            }
            if reach > 0.0 && leaf_h > 0.0 {
                for &(node, _) in &path {
                    self.credit_split(node, row, reach / leaf_h, &mut credit);
                }
            }
        }
        let total: f32 = credit.iter().sum();
        if total > 0.0 {
            credit.iter_mut().for_each(|c| *c /= total);
        }
        credit
    }

    /// Adds `share` to the feature(s) node `node` split `row` on.
    fn credit_split(&self, node: usize, row: &[f32], share: f32, credit: &mut [f32]) {
        match self.nodes[node] {
            Node::Split { feature, .. } => credit[feature as usize] += share,
            Node::Plane { plane, .. } => {
                let Some(planes) = &self.planes else { return };
                let r = planes.range(plane as usize);
                let terms = || {
                    planes.features[r.clone()]
                        .iter()
                        .zip(&planes.weights[r.clone()])
                        .zip(&planes.points[r.clone()])
                        .filter(|(_, &w)| w != 0.0)
                        .map(|((&f, &w), &p)| (f as usize, plane_term(w, row[f as usize], p).abs()))
                };
                let total: f32 = terms().map(|(_, m)| m).sum();
                if total > 0.0 && total.is_finite() {
                    terms().for_each(|(f, m)| credit[f] += share * m / total);
                } else {
                    // On the plane itself (or beyond f32): no term dominates.
                    let n = terms().count().max(1) as f32;
                    terms().for_each(|(f, _)| credit[f] += share / n);
                }
            }
            Node::Leaf { .. } => {}
        }
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

    /// Walks tree `t`, calling `visit(node, p)` at each split on the path, `p` being the
    /// chance that split would have isolated the row (see [`isolation_chance`]; 0 without the
    /// range check). Returns the plain path length at the leaf: depth + `c(leaf size)`.
    /// `row` must have `n_features` values.
    fn walk(&self, t: usize, row: &[f32], mut visit: impl FnMut(usize, f32)) -> f32 {
        let mut i = self.roots[t] as usize;
        let mut depth = 0.0_f32;
        loop {
            let (v, threshold, min, max, left, right) = match self.nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    min,
                    max,
                    left,
                    right,
                } => (row[feature as usize], threshold, min, max, left, right),
                Node::Plane {
                    plane,
                    min,
                    max,
                    left,
                    right,
                } => {
                    let v = self
                        .planes
                        .as_ref()
                        .map_or(f32::NAN, |p| p.projection(plane as usize, row));
                    (v, 0.0, min, max, left, right)
                }
                Node::Leaf { size } => return depth + average_path_length(size as usize),
            };
            let p = if self.range_check {
                isolation_chance(v, min, max)
            } else {
                0.0
            };
            visit(i, p);
            depth += 1.0;
            i = if v < threshold { left } else { right } as usize;
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
pub(crate) fn isolation_chance(v: f32, min: f32, max: f32) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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
                    Node::Plane { .. } => unreachable!("axis-parallel forest"),
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
                Node::Split { .. } | Node::Plane { .. } => 0,
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

#[cfg(test)]
mod batch_and_extended_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::isolation_forest::IsolationForestParams;
    use ndarray::{Array2, Axis};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn normal(rng: &mut ChaCha8Rng) -> f32 {
        let u1: f32 = 1.0 - rng.random::<f32>();
        let u2: f32 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    /// Points around `centres` (one row per point, round-robin over the centres).
    fn blobs(n: usize, centres: &[[f32; 2]], spread: f32, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, 2), |(r, c)| {
            centres[r % centres.len()][c] + spread * normal(&mut rng)
        })
    }

    /// Share of (anomaly, normal) pairs ranked correctly, ties counting half.
    fn auc(anomalies: &[f32], normals: &[f32]) -> f64 {
        let mut wins = 0.0;
        for &a in anomalies {
            for &n in normals {
                wins += if a > n {
                    1.0
                } else if a == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (anomalies.len() * normals.len()) as f64
    }

    fn bits(scores: &Array1<f32>) -> Vec<u32> {
        scores.iter().map(|s| s.to_bits()).collect()
    }

    fn forests(x: &Array2<f32>) -> Vec<IsolationForest> {
        let base = IsolationForestParams::default().n_trees(30).seed(5);
        [
            base,
            base.range_check(false),
            base.extended(None),
            base.extended(None).range_check(false),
            base.extended(Some(0)),
        ]
        .into_iter()
        .map(|p| p.check().unwrap().fit(x.view()).unwrap())
        .collect()
    }

    #[test]
    fn batch_scores_equal_the_reference_walk_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let train = Array2::from_shape_simple_fn((600, 5), || normal(&mut rng));
        // Rows inside and far outside the training ranges, NaN and infinities included.
        let mut test = Array2::from_shape_simple_fn((203, 5), || 3.0 * normal(&mut rng));
        test[[0, 1]] = f32::NAN;
        test[[1, 2]] = f32::INFINITY;
        test[[2, 0]] = f32::NEG_INFINITY;
        test[[3, 4]] = 1e30;
        for forest in forests(&train) {
            assert!(forest.padded_depth().is_some(), "{forest:?}");
            for n in [1, 7, 8, 9, 65, 203] {
                let view = test.view().split_at(Axis(0), n).0;
                let reference: Vec<u32> = view
                    .rows()
                    .into_iter()
                    .map(|r| forest.score_row(r.as_slice().unwrap()).to_bits())
                    .collect();
                assert_eq!(
                    bits(&forest.score(view).unwrap()),
                    reference,
                    "{forest:?}, {n} rows"
                );
            }
        }
    }

    #[test]
    fn wide_planes_score_alike_sparse_and_dense() {
        // 20 features: full planes take the dense (vectorised) path, 4-wide ones the sparse
        // path; both must match the reference walk, across several accumulator chunks.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let train = Array2::from_shape_simple_fn((500, 20), || normal(&mut rng));
        let mut test = Array2::from_shape_simple_fn((77, 20), || 2.0 * normal(&mut rng));
        test[[5, 19]] = f32::INFINITY;
        test[[6, 11]] = f32::NAN;
        for level in [None, Some(3), Some(12)] {
            for range_check in [true, false] {
                let forest = IsolationForestParams::default()
                    .n_trees(20)
                    .extended(level)
                    .range_check(range_check)
                    .check()
                    .unwrap()
                    .fit(train.view())
                    .unwrap();
                let reference: Vec<u32> = test
                    .rows()
                    .into_iter()
                    .map(|r| forest.score_row(r.as_slice().unwrap()).to_bits())
                    .collect();
                assert_eq!(
                    bits(&forest.score(test.view()).unwrap()),
                    reference,
                    "{level:?}"
                );
            }
        }
    }

    #[test]
    fn unpadded_forests_score_like_padded_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = Array2::from_shape_simple_fn((300, 3), || normal(&mut rng));
        for forest in forests(&x) {
            let mut plain = forest.clone();
            plain.compiled = None;
            assert_eq!(
                bits(&plain.score(x.view()).unwrap()),
                bits(&forest.score(x.view()).unwrap())
            );
        }
        // Rows too wide for the tile buffer are walked one at a time, with the same result.
        let wide = Array2::from_shape_fn((40, 1100), |(r, c)| ((r * 31 + c * 7) % 97) as f32);
        let forest = IsolationForest::params()
            .n_trees(5)
            .check()
            .unwrap()
            .fit(wide.view())
            .unwrap();
        assert_eq!(forest.padded_depth(), None);
        let reference: Vec<u32> = wide
            .rows()
            .into_iter()
            .map(|r| forest.score_row(r.as_slice().unwrap()).to_bits())
            .collect();
        assert_eq!(bits(&forest.score(wide.view()).unwrap()), reference);
    }

    #[test]
    fn parallel_scoring_and_training_do_not_depend_on_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_simple_fn(
            (crate::isolation_forest::PARALLEL_MIN_ROWS + 123, 4),
            || normal(&mut rng),
        );
        let params = IsolationForestParams::default()
            .n_trees(20)
            .extended(Some(1))
            .check()
            .unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = pool.install(|| params.fit(x.view()).unwrap());
        let b = single.install(|| params.fit(x.view()).unwrap());
        assert_eq!(a, b);
        let parallel = pool.install(|| a.score(x.view()).unwrap());
        assert_eq!(bits(&parallel), bits(&a.score_serial(x.view()).unwrap()));
    }

    #[test]
    fn extended_forest_removes_the_ghost_regions_between_diagonal_blobs() {
        // Two blobs on the diagonal. Axis-parallel cuts that separate them leave the
        // off-diagonal corners (0, 4) and (4, 0) looking like part of a blob ("ghost"
        // clusters, Hariri et al. fig. 3); random hyperplanes do not. Anomalies sit there.
        let centres = [[0.0, 0.0], [4.0, 4.0]];
        let train = blobs(1000, &centres, 1.0, 1);
        let normals = blobs(400, &centres, 1.0, 2);
        let ghosts = blobs(100, &[[0.0, 4.0], [4.0, 0.0]], 0.5, 3);
        // Mean AUC over three forest seeds, so one lucky forest cannot decide.
        let mean_auc = |p: IsolationForestParams| {
            let aucs = (0..3).map(|seed| {
                let forest = p
                    .n_trees(200)
                    .seed(seed)
                    .check()
                    .unwrap()
                    .fit(train.view())
                    .unwrap();
                let a = forest.score(ghosts.view()).unwrap();
                let n = forest.score(normals.view()).unwrap();
                auc(a.as_slice().unwrap(), n.as_slice().unwrap())
            });
            aucs.sum::<f64>() / 3.0
        };
        let plain = IsolationForestParams::default().range_check(false);
        let (axis, extended) = (mean_auc(plain), mean_auc(plain.extended(None)));
        // Measured on four data seeds: axis 0.92-0.96, extended 0.98-0.99, margin >= 0.035.
        assert!(extended > 0.97, "extended {extended}");
        assert!(extended > axis + 0.02, "axis {axis}, extended {extended}");
        // The range check helps axis-parallel trees here (ghost points fall outside the
        // ranges of deep nodes), but the extended forest still ranks better.
        let checked = IsolationForestParams::default();
        let (axis_rc, extended_rc) = (mean_auc(checked), mean_auc(checked.extended(None)));
        assert!(axis_rc > axis, "range check: {axis_rc} vs {axis}");
        assert!(
            extended_rc > axis_rc,
            "axis {axis_rc}, extended {extended_rc}"
        );
    }

    #[test]
    fn extended_planes_have_the_requested_width() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let x = Array2::from_shape_simple_fn((500, 6), || normal(&mut rng));
        for (level, width) in [(None, 6), (Some(0), 1), (Some(2), 3)] {
            let forest = IsolationForestParams::default()
                .n_trees(10)
                .extended(level)
                .check()
                .unwrap()
                .fit(x.view())
                .unwrap();
            assert_eq!(forest.algorithm(), Algorithm::Extended);
            assert_eq!(forest.plane_width(), Some(width));
            let planes = forest.planes.as_ref().unwrap();
            assert!(planes.len() > 10);
            for p in 0..planes.len() {
                let r = p * width..(p + 1) * width;
                let used = planes.weights[r.clone()]
                    .iter()
                    .filter(|&&w| w != 0.0)
                    .count();
                assert_eq!(used, width, "plane {p}");
                let fs = &planes.features[r];
                assert!(
                    fs.windows(2).all(|w| w[0] < w[1]),
                    "features sorted, distinct: {fs:?}"
                );
            }
        }
        let err = IsolationForestParams::default()
            .extended(Some(6))
            .check()
            .unwrap()
            .fit(x.view())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidParams(_)), "{err}");
    }

    #[test]
    fn extended_explanations_credit_the_anomalous_feature() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let x = Array2::from_shape_simple_fn((1000, 3), || normal(&mut rng));
        for level in [None, Some(1)] {
            let forest = IsolationForestParams::default()
                .extended(level)
                .check()
                .unwrap()
                .fit(x.view())
                .unwrap();
            let contrib = forest.explain_row(&[0.0, 0.0, 8.0]);
            assert!(
                (contrib.iter().sum::<f32>() - 1.0).abs() < 1e-4,
                "{contrib:?}"
            );
            assert!(contrib.iter().all(|&c| c >= 0.0));
            assert!(
                contrib[2] > contrib[0].max(contrib[1]) + 0.2,
                "{level:?}: {contrib:?}"
            );
            assert!(forest.score_row(&[0.0, 0.0, 8.0]) > forest.score_row(&[0.0, 0.0, 0.0]) + 0.15);
        }
    }

    #[test]
    fn extended_forest_serde_round_trip_and_validation() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = Array2::from_shape_simple_fn((200, 3), || normal(&mut rng));
        let forest = IsolationForestParams::default()
            .n_trees(5)
            .extended(Some(1))
            .check()
            .unwrap()
            .fit(x.view())
            .unwrap();
        let json = serde_json::to_value(&forest).unwrap();
        let back: IsolationForest = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, forest);
        assert_eq!(
            bits(&back.score(x.view()).unwrap()),
            bits(&forest.score(x.view()).unwrap())
        );

        let corrupt = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut bad = json.clone();
            edit(&mut bad);
            serde_json::from_value::<IsolationForest>(bad)
                .unwrap_err()
                .to_string()
        };
        let msg = corrupt(&|j| j["planes"]["features"][0] = 7.into());
        assert!(msg.contains("feature 7"), "{msg}");
        let msg = corrupt(&|j| {
            j["planes"]["weights"].as_array_mut().unwrap().pop();
        });
        assert!(msg.contains("inconsistent lengths"), "{msg}");
        let msg = corrupt(&|j| j["planes"] = serde_json::Value::Null);
        assert!(msg.contains("there are none"), "{msg}");
        let msg = corrupt(&|j| {
            let node = &mut j["nodes"][0]["plane"];
            node["plane"] = 100_000.into();
        });
        assert!(msg.contains("plane 100000"), "{msg}");
    }
}
