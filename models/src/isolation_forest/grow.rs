//! Growing trees: a seeded subsample per tree, axis-parallel or hyperplane splits, trees
//! grown in parallel and concatenated in tree order (so the forest does not depend on the
//! number of threads).

use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::algorithm::{dense_planes, projection, IsolationForest, Node, Planes};
use super::hyperparams::{Algorithm, IsolationForestValidParams};
use crate::error::{Error, Result};

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
        let width = match self.algorithm() {
            Algorithm::Standard => None,
            Algorithm::Extended => Some(self.plane_width(n_features)?),
        };
        let psi = self.sample_size().min(n_rows);
        let grower = Grower {
            x,
            psi,
            depth_limit: self.depth_limit(psi),
            width,
        };
        let trees: Vec<Tree> = (0..self.n_trees())
            .into_par_iter()
            .map(|tree| grower.grow(self.seed(), tree))
            .collect::<Result<_>>()?;
        concatenate(trees, n_features, self.range_check(), psi, width)
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

/// One tree with tree-local node and plane indices.
struct Tree {
    nodes: Vec<Node>,
    planes: Planes,
}

/// Appends the trees into one node array, shifting child and plane indices.
fn concatenate(
    trees: Vec<Tree>,
    n_features: usize,
    range_check: bool,
    psi: usize,
    width: Option<usize>,
) -> Result<IsolationForest> {
    let mut roots = Vec::with_capacity(trees.len());
    let mut nodes = Vec::with_capacity(trees.iter().map(|t| t.nodes.len()).sum());
    let mut planes = width.map(Planes::with_width);
    for tree in trees {
        let base = to_u32(nodes.len())?;
        let plane_base = to_u32(planes.as_ref().map_or(0, Planes::len))?;
        roots.push(base);
        nodes.extend(tree.nodes.into_iter().map(|node| match node {
            Node::Split {
                feature,
                threshold,
                min,
                max,
                left,
                right,
            } => Node::Split {
                feature,
                threshold,
                min,
                max,
                left: left + base,
                right: right + base,
            },
            Node::Plane {
                plane,
                min,
                max,
                left,
                right,
            } => Node::Plane {
                plane: plane + plane_base,
                min,
                max,
                left: left + base,
                right: right + base,
            },
            leaf @ Node::Leaf { .. } => leaf,
        }));
        if let Some(all) = &mut planes {
            all.append(&tree.planes);
        }
    }
    to_u32(nodes.len())?;
    Ok(IsolationForest::assemble(
        n_features,
        range_check,
        psi,
        roots,
        nodes,
        planes,
    ))
}

/// What every tree of one fit shares.
struct Grower<'a> {
    x: ArrayView2<'a, f32>,
    psi: usize,
    depth_limit: usize,
    /// Non-zero components per hyperplane; `None` for axis-parallel splits.
    width: Option<usize>,
}

/// A node still to be built: its slot, its rows (a range of the index buffer) and depth.
struct Pending {
    slot: usize,
    rows: std::ops::Range<usize>,
    depth: usize,
}

/// How a node splits, before its children exist.
enum Cut {
    Axis {
        feature: usize,
        threshold: f32,
        min: f32,
        max: f32,
    },
    Plane {
        features: Vec<u32>,
        weights: Vec<f32>,
        points: Vec<f32>,
    },
}

impl Grower<'_> {
    /// Grows tree `tree` on its own subsample. Iterative (an explicit stack), so a large
    /// `max_depth` cannot overflow the call stack.
    fn grow(&self, seed: u64, tree: usize) -> Result<Tree> {
        // One ChaCha stream per tree: deterministic for a seed, independent across trees
        // (seeding with `seed + tree` would make seeds 1 and 2 share all but one tree).
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(tree as u64);
        let x = self.x;
        let mut rows = rand::seq::index::sample(&mut rng, x.nrows(), self.psi).into_vec();
        let mut features: Vec<usize> = (0..x.ncols()).collect();
        let mut planes = Planes::with_width(self.width.unwrap_or(0));
        let mut projections: Vec<f32> = Vec::new();
        let dense = dense_planes(self.width.unwrap_or(0), x.ncols());
        let mut nodes = vec![Node::Leaf { size: 0 }];
        let mut stack = vec![Pending {
            slot: 0,
            rows: 0..self.psi,
            depth: 0,
        }];
        while let Some(task) = stack.pop() {
            let idx = &mut rows[task.rows.clone()];
            let cut = if task.depth < self.depth_limit && idx.len() > 1 {
                match self.width {
                    None => choose_axis_cut(x, idx, &mut features, &mut rng),
                    Some(width) => choose_plane(x, idx, width, &mut features, &mut rng),
                }
            } else {
                None
            };
            let Some(cut) = cut else {
                nodes[task.slot] = Node::Leaf {
                    size: to_u32(idx.len())?,
                };
                continue;
            };
            let (left, right) = (to_u32(nodes.len())?, to_u32(nodes.len() + 1)?);
            nodes.extend([Node::Leaf { size: 0 }, Node::Leaf { size: 0 }]);
            let n_left = match cut {
                Cut::Axis {
                    feature,
                    threshold,
                    min,
                    max,
                } => {
                    nodes[task.slot] = Node::Split {
                        feature: to_u32(feature)?,
                        threshold,
                        min,
                        max,
                        left,
                        right,
                    };
                    partition(idx, |r| x[[r, feature]] < threshold)
                }
                Cut::Plane {
                    features,
                    weights,
                    points,
                } => {
                    // Project each row once, in row order, with the scorer's own function.
                    projections.clear();
                    let mut row_buf = Vec::with_capacity(x.ncols());
                    for &r in idx.iter() {
                        row_buf.clear();
                        row_buf.extend(x.row(r).iter());
                        projections.push(projection(&features, &weights, &points, &row_buf, dense));
                    }
                    let (min, max) = projections
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                            (lo.min(v), hi.max(v))
                        });
                    nodes[task.slot] = Node::Plane {
                        plane: to_u32(planes.len())?,
                        min,
                        max,
                        left,
                        right,
                    };
                    planes.features.extend(features);
                    planes.weights.extend(weights);
                    planes.points.extend(points);
                    partition_by(idx, &projections, |v| v < 0.0)
                }
            };
            let mid = task.rows.start + n_left;
            let depth = task.depth + 1;
            stack.push(Pending {
                slot: right as usize,
                rows: mid..task.rows.end,
                depth,
            });
            stack.push(Pending {
                slot: left as usize,
                rows: task.rows.start..mid,
                depth,
            });
        }
        Ok(Tree { nodes, planes })
    }
}

/// Picks a uniformly random non-constant feature (a lazy Fisher-Yates shuffle, so constant
/// features are skipped without bias) and a threshold uniform in its `[min, max)` range.
/// `None` when every feature is constant on these rows.
fn choose_axis_cut(
    x: ArrayView2<f32>,
    idx: &[usize],
    features: &mut [usize],
    rng: &mut ChaCha8Rng,
) -> Option<Cut> {
    for k in 0..features.len() {
        let j = rng.random_range(k..features.len());
        features.swap(k, j);
        let f = features[k];
        let (min, max) = column_range(x, idx, f);
        if min < max {
            let u: f32 = rng.random();
            // A convex combination cannot overflow; if rounding leaves it outside
            // (min, max], use max so both children are non-empty.
            let t = min * (1.0 - u) + max * u;
            let threshold = if t > min && t <= max { t } else { max };
            return Some(Cut::Axis {
                feature: f,
                threshold,
                min,
                max,
            });
        }
    }
    None
}

fn column_range(x: ArrayView2<f32>, idx: &[usize], f: usize) -> (f32, f32) {
    idx.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &r| {
            let v = x[[r, f]];
            (lo.min(v), hi.max(v))
        })
}

/// Hariri et al.'s split: `width` features chosen at random among those not constant on
/// these rows (the reference picks among all, wasting splits on constant ones), standard
/// normal weights, and an intercept uniform in the rows' bounding box. Padded with zero
/// weights when fewer features vary. `None` when every feature is constant.
fn choose_plane(
    x: ArrayView2<f32>,
    idx: &[usize],
    width: usize,
    features: &mut Vec<usize>,
    rng: &mut ChaCha8Rng,
) -> Option<Cut> {
    let ranges: Vec<(f32, f32)> = (0..x.ncols()).map(|f| column_range(x, idx, f)).collect();
    features.clear();
    features.extend((0..x.ncols()).filter(|&f| ranges[f].0 < ranges[f].1));
    if features.is_empty() {
        return None;
    }
    let used = width.min(features.len());
    for k in 0..used {
        let j = rng.random_range(k..features.len());
        features.swap(k, j);
    }
    let mut chosen: Vec<usize> = features[..used].to_vec();
    chosen.sort_unstable();
    let (mut fs, mut ws, mut ps) = (
        Vec::with_capacity(width),
        Vec::with_capacity(width),
        Vec::with_capacity(width),
    );
    for f in chosen {
        let (min, max) = ranges[f];
        let u: f32 = rng.random();
        fs.push(f as u32);
        ws.push(standard_normal(rng));
        ps.push(min * (1.0 - u) + max * u);
    }
    fs.resize(width, 0);
    ws.resize(width, 0.0);
    ps.resize(width, 0.0);
    // Restore the identity order for the next node's shuffle-free bounding box pass.
    features.clear();
    features.extend(0..x.ncols());
    Some(Cut::Plane {
        features: fs,
        weights: ws,
        points: ps,
    })
}

/// A standard normal draw (Box-Muller), so no distribution crate is needed.
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
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

/// [`partition`] by a value per element, keeping values and indices paired.
fn partition_by(idx: &mut [usize], values: &[f32], goes_left: impl Fn(f32) -> bool) -> usize {
    let mut paired: Vec<(usize, f32)> = idx.iter().copied().zip(values.iter().copied()).collect();
    let mut n_left = 0;
    for i in 0..paired.len() {
        if goes_left(paired[i].1) {
            paired.swap(i, n_left);
            n_left += 1;
        }
    }
    for (slot, (r, _)) in idx.iter_mut().zip(paired) {
        *slot = r;
    }
    n_left
}
