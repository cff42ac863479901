//! The batch scoring layout. Every tree is padded to a perfect binary tree of the forest's
//! depth `D` (node `i`'s children are `2i + 1` and `2i + 2`): a leaf above the bottom is
//! replaced by padding splits whose `2^(D - d)` bottom leaves all carry its path length
//! (depth + `c(size)`, precomputed), so whichever way padding routes a row it ends with the
//! same value. A row then walks exactly `D` levels with no branch on the node kind, and
//! [`LANES`] rows walk one tree in lockstep: independent load chains the CPU overlaps.
//!
//! Rows are copied, a tile at a time, column-major into a fixed-size buffer, and every
//! tile row walks one tree before the next tree is taken, so the tree and the tile stay in
//! L1. Trees are power-of-two blocks (`2^D` slots, the last unused) viewed as fixed-size
//! arrays: indices are masked instead of bounds-checked, which `unsafe` would otherwise be
//! needed for.
//!
//! Arrays are struct-of-arrays by role: split nodes (the feature's column offset in the
//! tile buffer and the threshold, 8 bytes), their training ranges (read only with the
//! range check), and leaf path lengths. Scores are bit-identical to the reference walk in
//! `algorithm.rs`: the same operations in the same order, padding adding exact zeros.

use std::fmt;

use rayon::prelude::*;

use super::algorithm::{
    average_path_length, combine_lanes, dense_planes, isolation_chance, plane_term,
    IsolationForest, Node,
};

/// Rows walked through one tree in lockstep (8 keeps their slots in registers).
pub(crate) const LANES: usize = 8;
/// Floats in the tile buffer (32 KiB): rows of up to 1024 features fit 8 at a time.
const TILE_BUFFER: usize = 8192;
/// Rows scored against one tree before moving to the next (fewer for wide rows).
const MAX_TILE_ROWS: usize = 64;
/// Batches at least this long are split over rayon's pool; smaller ones stay on the
/// caller's thread, where a thread hand-off would cost more than it saves.
pub const PARALLEL_MIN_ROWS: usize = 4096;
/// Rows per parallel task.
const PARALLEL_CHUNK_ROWS: usize = 1024;
/// Trees deeper than this (an explicit, large `max_depth`) are not padded.
const MAX_PADDED_DEPTH: usize = 16;
/// Nor are forests whose padded leaves would exceed this many cells (64 MiB of f32).
const MAX_PADDED_CELLS: usize = 1 << 24;

/// One padded axis-parallel split: rows with `x[feature] < threshold` go left; `column`
/// is `feature << shift`, the feature's column in the tile buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AxisSplit {
    pub(crate) column: u32,
    pub(crate) threshold: f32,
}

const PADDING: AxisSplit = AxisSplit {
    column: 0,
    threshold: 0.0,
};

/// Split rules of the padded trees, `2^D` slots per tree.
#[derive(Clone, PartialEq)]
pub(crate) enum Splits {
    Axis(Vec<AxisSplit>),
    /// `width` entries per slot, as in [`super::algorithm::Planes`] but with column
    /// offsets for features; padding has zero weights. A projection below 0 goes left.
    Plane {
        width: usize,
        columns: Vec<u32>,
        weights: Vec<f32>,
        points: Vec<f32>,
    },
    /// Wide planes (more than half the features): weights and points for every feature,
    /// `stride` (the feature count rounded up to 8) per slot, zero where a plane does not
    /// use a feature, so the projection is a dot product the compiler vectorises.
    Dense {
        stride: usize,
        weights: Vec<f32>,
        points: Vec<f32>,
    },
}

/// How a tile of rows sits in the tile buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// Column-major: feature `f` of tile row `r` at `(f << shift) + r`, `1 << shift` rows.
    Columns { shift: u32 },
    /// Row-major, `stride` values per row (zero-padded), for dense planes.
    Rows { stride: usize },
}

impl Layout {
    fn tile_rows(self) -> usize {
        match self {
            Self::Columns { shift } => 1 << shift,
            Self::Rows { stride } => (TILE_BUFFER / stride).min(MAX_TILE_ROWS),
        }
    }
}

/// A forest padded for batch scoring; see the module documentation.
#[derive(Clone, PartialEq)]
pub(crate) struct Compiled {
    depth: usize,
    n_trees: usize,
    /// Column offsets are `feature << shift` (column layouts).
    shift: u32,
    layout: Layout,
    pub(crate) splits: Splits,
    /// `[min, max]` per slot when the forest uses the range check; padding gets
    /// `[-inf, inf]`, which no value lies outside.
    pub(crate) ranges: Option<Vec<[f32; 2]>>,
    /// `2^D` path lengths per tree.
    pub(crate) leaves: Vec<f32>,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("depth", &self.depth)
            .field("n_trees", &self.n_trees)
            .field("range_check", &self.ranges.is_some())
            .finish_non_exhaustive()
    }
}

/// Tile shift for rows of `n_features`: feature `f` of tile row `r` sits at
/// `(f << shift) + r`. `None` when fewer than [`LANES`] rows would fit the buffer.
fn tile_shift(n_features: usize) -> Option<u32> {
    let columns = n_features.checked_next_power_of_two()?;
    let rows = (TILE_BUFFER / columns).min(MAX_TILE_ROWS);
    (rows >= LANES).then(|| rows.trailing_zeros())
}

impl Compiled {
    /// Pads `forest`, or `None` if it is too deep, too large or too wide to pad.
    pub(crate) fn build(forest: &IsolationForest) -> Option<Self> {
        let shift = tile_shift(forest.n_features)?;
        let stride = forest.n_features.div_ceil(8) * 8; // whole chunks of the 8 accumulators
        let dense = forest
            .planes
            .as_ref()
            .is_some_and(|p| dense_planes(p.width, forest.n_features));
        if dense && stride * LANES > TILE_BUFFER {
            return None;
        }
        let layout = if dense {
            Layout::Rows { stride }
        } else {
            Layout::Columns { shift }
        };
        let depth = forest
            .roots
            .iter()
            .map(|&r| tree_depth(&forest.nodes, r as usize))
            .max()?;
        let n_trees = forest.roots.len();
        let slots = n_trees.checked_mul(1usize.checked_shl(depth as u32)?)?;
        if depth > MAX_PADDED_DEPTH || slots > MAX_PADDED_CELLS {
            return None;
        }
        let mut compiled = Self {
            depth,
            n_trees,
            shift,
            layout,
            splits: match &forest.planes {
                None => Splits::Axis(vec![PADDING; slots]),
                Some(_) if dense => Splits::Dense {
                    stride,
                    weights: vec![0.0; slots * stride],
                    points: vec![0.0; slots * stride],
                },
                Some(p) => Splits::Plane {
                    width: p.width,
                    columns: vec![0; slots * p.width],
                    weights: vec![0.0; slots * p.width],
                    points: vec![0.0; slots * p.width],
                },
            },
            ranges: forest
                .range_check
                .then(|| vec![[f32::NEG_INFINITY, f32::INFINITY]; slots]),
            leaves: vec![0.0; slots],
        };
        for (t, &root) in forest.roots.iter().enumerate() {
            compiled.pad_tree(forest, t, root as usize);
        }
        Some(compiled)
    }

    /// Copies tree `t` into its padded slots.
    fn pad_tree(&mut self, forest: &IsolationForest, t: usize, root: usize) {
        let (base, inner, shift) = (t << self.depth, self.slots() - 1, self.shift);
        // (node in the forest, slot in the padded tree, depth)
        let mut stack = vec![(root, 0usize, 0usize)];
        while let Some((node, slot, depth)) = stack.pop() {
            let at = base + slot;
            let (left, right, range) = match forest.nodes[node] {
                Node::Split {
                    feature,
                    threshold,
                    min,
                    max,
                    left,
                    right,
                } => {
                    if let Splits::Axis(splits) = &mut self.splits {
                        let column = feature << shift;
                        splits[at] = AxisSplit { column, threshold };
                    }
                    (left, right, [min, max])
                }
                Node::Plane {
                    plane,
                    min,
                    max,
                    left,
                    right,
                } => {
                    if let Some(planes) = &forest.planes {
                        let n = planes.width;
                        let src = plane as usize * n..(plane as usize + 1) * n;
                        let entries = planes.features[src.clone()]
                            .iter()
                            .zip(&planes.weights[src.clone()])
                            .zip(&planes.points[src]);
                        match &mut self.splits {
                            Splits::Plane {
                                columns,
                                weights,
                                points,
                                ..
                            } => {
                                for (k, ((&f, &w), &p)) in entries.enumerate() {
                                    columns[at * n + k] = f << shift;
                                    weights[at * n + k] = w;
                                    points[at * n + k] = p;
                                }
                            }
                            Splits::Dense {
                                stride,
                                weights,
                                points,
                            } => {
                                for ((&f, &w), &p) in entries.filter(|((_, &w), _)| w != 0.0) {
                                    weights[at * *stride + f as usize] = w;
                                    points[at * *stride + f as usize] = p;
                                }
                            }
                            Splits::Axis(_) => {}
                        }
                    }
                    (left, right, [min, max])
                }
                Node::Leaf { size } => {
                    // The same f32 operation as the reference walk's `depth + c(size)`.
                    let h = depth as f32 + average_path_length(size as usize);
                    let below = self.depth - depth;
                    let first = base + ((slot + 1) << below) - 1 - inner;
                    self.leaves[first..first + (1 << below)].fill(h);
                    continue;
                }
            };
            if let Some(ranges) = &mut self.ranges {
                ranges[at] = range;
            }
            stack.push((left as usize, 2 * slot + 1, depth + 1));
            stack.push((right as usize, 2 * slot + 2, depth + 1));
        }
    }

    /// Levels every padded tree has.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    #[cfg_attr(not(feature = "candle"), allow(dead_code))]
    pub(crate) fn n_trees(&self) -> usize {
        self.n_trees
    }

    /// Slots per padded tree (`2^D`; the last is unused).
    pub(crate) fn slots(&self) -> usize {
        1 << self.depth
    }

    /// The feature of a column offset.
    #[cfg_attr(not(feature = "candle"), allow(dead_code))]
    pub(crate) fn feature_of(&self, column: u32) -> u32 {
        column >> self.shift
    }

    /// Adds each row's path length in every tree, tree by tree, to `totals`. `x` holds
    /// `totals.len()` rows of `n_features` values.
    fn add_path_lengths(&self, x: &[f32], n_features: usize, totals: &mut [f32]) {
        let tile_rows = self.layout.tile_rows();
        let mut buf = Box::new([0.0_f32; TILE_BUFFER]);
        for (tile, tile_totals) in x
            .chunks(tile_rows * n_features)
            .zip(totals.chunks_mut(tile_rows))
        {
            for (r, row) in tile.chunks_exact(n_features).enumerate() {
                match self.layout {
                    // Column-major, so a lane's value is at a fixed offset from its column.
                    Layout::Columns { shift } => {
                        for (f, &v) in row.iter().enumerate() {
                            buf[((f << shift) + r) & (TILE_BUFFER - 1)] = v;
                        }
                    }
                    // Row-major; the padding after each row stays 0.
                    Layout::Rows { stride } => {
                        buf[r * stride..r * stride + n_features].copy_from_slice(row);
                    }
                }
            }
            self.add_tile(&buf, tile_totals);
        }
    }

    /// Dispatches on the padded tree size, so the walk indexes fixed-size arrays.
    fn add_tile(&self, buf: &[f32; TILE_BUFFER], totals: &mut [f32]) {
        macro_rules! by_depth {
            ($($d:literal)*) => {
                match self.depth {
                    $($d => self.add_tile_sized::<{ 1 << $d }>(buf, totals),)*
                    _ => {}
                }
            };
        }
        by_depth!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }

    fn add_tile_sized<const N: usize>(&self, buf: &[f32; TILE_BUFFER], totals: &mut [f32]) {
        for t in 0..self.n_trees {
            let Some(tree) = self.tree::<N>(t) else {
                return;
            };
            for (g, group) in totals.chunks_mut(LANES).enumerate() {
                let lane0 = g * LANES;
                let h = match (&tree.splits, tree.ranges) {
                    (TreeSplits::Axis(splits), None) => {
                        walk::<N, false>(&AxisRule(splits), None, tree.leaves, buf, lane0)
                    }
                    (TreeSplits::Axis(splits), ranges) => {
                        walk::<N, true>(&AxisRule(splits), ranges, tree.leaves, buf, lane0)
                    }
                    (TreeSplits::Plane(rule), None) => {
                        walk::<N, false>(rule, None, tree.leaves, buf, lane0)
                    }
                    (TreeSplits::Plane(rule), ranges) => {
                        walk::<N, true>(rule, ranges, tree.leaves, buf, lane0)
                    }
                    (TreeSplits::Dense(rule), None) => {
                        walk::<N, false>(rule, None, tree.leaves, buf, lane0)
                    }
                    (TreeSplits::Dense(rule), ranges) => {
                        walk::<N, true>(rule, ranges, tree.leaves, buf, lane0)
                    }
                };
                for (total, h) in group.iter_mut().zip(h) {
                    *total += h;
                }
            }
        }
    }

    /// Padded tree `t` as fixed-size views of `N` slots.
    fn tree<const N: usize>(&self, t: usize) -> Option<TreeView<'_, N>> {
        let slots = t * N..(t + 1) * N;
        let splits = match &self.splits {
            Splits::Axis(splits) => TreeSplits::Axis(splits[slots.clone()].try_into().ok()?),
            Splits::Plane {
                width,
                columns,
                weights,
                points,
            } => {
                let wide = t * N * width..(t + 1) * N * width;
                TreeSplits::Plane(PlaneRule {
                    width: *width,
                    columns: &columns[wide.clone()],
                    weights: &weights[wide.clone()],
                    points: &points[wide],
                })
            }
            Splits::Dense {
                stride,
                weights,
                points,
            } => {
                let wide = t * N * stride..(t + 1) * N * stride;
                TreeSplits::Dense(DenseRule {
                    stride: *stride,
                    weights: &weights[wide.clone()],
                    points: &points[wide],
                })
            }
        };
        let ranges = match &self.ranges {
            Some(r) => Some(r[slots.clone()].try_into().ok()?),
            None => None,
        };
        Some(TreeView {
            splits,
            ranges,
            leaves: self.leaves[slots].try_into().ok()?,
        })
    }
}

/// One padded tree of `N` slots: `N - 1` split nodes (slot `N - 1` unused) and `N` leaves.
struct TreeView<'a, const N: usize> {
    splits: TreeSplits<'a, N>,
    ranges: Option<&'a [[f32; 2]; N]>,
    leaves: &'a [f32; N],
}

enum TreeSplits<'a, const N: usize> {
    Axis(&'a [AxisSplit; N]),
    Plane(PlaneRule<'a>),
    Dense(DenseRule<'a>),
}

/// The lockstep walk of [`LANES`] tile rows from `lane0` through one padded tree of `N`
/// slots. With `RANGE`, the walk only notes at which levels a row lies outside its node's
/// range (a branch there would stall the walk on unpredictable outcomes); those levels are
/// then replayed in order, giving the row the chance that each such node would have
/// isolated it, with the same operations as `IsolationForest::path_length`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes are indices into several arrays at once
fn walk<const N: usize, const RANGE: bool>(
    rule: &impl SplitRule,
    ranges: Option<&[[f32; 2]; N]>,
    leaves: &[f32; N],
    buf: &[f32; TILE_BUFFER],
    lane0: usize,
) -> [f32; LANES] {
    let mask = N - 1;
    let depth = N.trailing_zeros() as usize;
    let mut slot = [0usize; LANES];
    // Bit `l` of `outside[level]`: lane `l` lies outside its node's range at `level`. A
    // byte per level rather than a word per lane keeps the slots in registers.
    let mut outside = [0u8; MAX_PADDED_DEPTH];
    for level in 0..depth {
        let mut out_here = 0u8;
        for l in 0..LANES {
            let node = slot[l] & mask;
            let (v, threshold) = rule.value(node, buf, lane0 + l);
            if let (true, Some(ranges)) = (RANGE, ranges) {
                let [min, max] = ranges[node];
                out_here |= u8::from((v < min) | (v > max)) << l;
            }
            // Right child 2i + 2 unless the row goes left (2i + 1); NaN goes right.
            slot[l] = 2 * slot[l] + 2 - usize::from(v < threshold);
        }
        if RANGE {
            outside[level % MAX_PADDED_DEPTH] = out_here;
        }
    }
    let mut h = [0.0_f32; LANES];
    for l in 0..LANES {
        // Slots after the last level are N - 1 ..= 2N - 2: leaf `slot - (N - 1)`.
        h[l] = leaves[(slot[l] + 1) & mask];
    }
    let Some(ranges) = ranges.filter(|_| RANGE) else {
        return h;
    };
    let levels = &outside[..depth.min(MAX_PADDED_DEPTH)];
    let mut lanes = levels.iter().fold(0u8, |acc, &b| acc | b);
    while lanes != 0 {
        let l = lanes.trailing_zeros() as usize;
        lanes &= lanes - 1;
        let (mut reach, mut expected) = (1.0_f32, 0.0_f32);
        for (level, _) in levels.iter().enumerate().filter(|(_, &b)| b >> l & 1 == 1) {
            // The node at `level` on the path to the lane's leaf.
            let node = (((slot[l] + 1) >> (depth - level)) - 1) & mask;
            let (v, _) = rule.value(node, buf, lane0 + l);
            let [min, max] = ranges[node];
            let p = isolation_chance(v, min, max);
            expected += reach * p * (level + 1) as f32;
            reach *= 1.0 - p;
        }
        h[l] = expected + reach * h[l];
    }
    h
}

/// Depth of the deepest leaf of the tree rooted at `root`.
fn tree_depth(nodes: &[Node], root: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 0usize)];
    while let Some((i, d)) = stack.pop() {
        match nodes[i] {
            Node::Split { left, right, .. } | Node::Plane { left, right, .. } => {
                stack.push((left as usize, d + 1));
                stack.push((right as usize, d + 1));
            }
            Node::Leaf { .. } => deepest = deepest.max(d),
        }
    }
    deepest
}

/// How a padded node compares a tile row: the value it tests and the threshold.
trait SplitRule {
    fn value(&self, node: usize, buf: &[f32; TILE_BUFFER], row: usize) -> (f32, f32);
}

struct AxisRule<'a, const N: usize>(&'a [AxisSplit; N]);

impl<const N: usize> SplitRule for AxisRule<'_, N> {
    #[inline(always)]
    fn value(&self, node: usize, buf: &[f32; TILE_BUFFER], row: usize) -> (f32, f32) {
        let s = self.0[node];
        // In range by construction (feature < n_features); the mask proves it.
        (
            buf[(s.column as usize + row) & (TILE_BUFFER - 1)],
            s.threshold,
        )
    }
}

struct PlaneRule<'a> {
    width: usize,
    columns: &'a [u32],
    weights: &'a [f32],
    points: &'a [f32],
}

impl SplitRule for PlaneRule<'_> {
    #[inline(always)]
    fn value(&self, node: usize, buf: &[f32; TILE_BUFFER], row: usize) -> (f32, f32) {
        let r = node * self.width..(node + 1) * self.width;
        // Term by term, as `algorithm::projection` sums narrow planes.
        let v = self.columns[r.clone()]
            .iter()
            .zip(&self.weights[r.clone()])
            .zip(&self.points[r])
            .fold(0.0, |acc, ((&c, &w), &p)| {
                acc + plane_term(w, buf[(c as usize + row) & (TILE_BUFFER - 1)], p)
            });
        (v, 0.0)
    }
}

struct DenseRule<'a> {
    stride: usize,
    weights: &'a [f32],
    points: &'a [f32],
}

impl SplitRule for DenseRule<'_> {
    #[inline(always)]
    fn value(&self, node: usize, buf: &[f32; TILE_BUFFER], row: usize) -> (f32, f32) {
        let n = self.stride;
        let (w, p) = (
            &self.weights[node * n..][..n],
            &self.points[node * n..][..n],
        );
        let x = &buf[row * n..][..n];
        // Accumulator k takes features k, k + 8, ... in order: `algorithm::projection`'s
        // order, with the unused features adding exact zeros.
        let mut acc = [0.0_f32; 8];
        for ((w, p), x) in w
            .chunks_exact(8)
            .zip(p.chunks_exact(8))
            .zip(x.chunks_exact(8))
        {
            for k in 0..8 {
                acc[k] += plane_term(w[k], x[k], p[k]);
            }
        }
        (combine_lanes(acc), 0.0)
    }
}

/// Scores the rows of `x` (row-major, `forest.n_features` values each) into `out`.
pub(crate) fn score_rows(forest: &IsolationForest, x: &[f32], out: &mut [f32], parallel: bool) {
    let nf = forest.n_features;
    let score_block = |x: &[f32], out: &mut [f32]| match &forest.compiled {
        Some(compiled) => {
            out.fill(0.0);
            compiled.add_path_lengths(x, nf, out);
            out.iter_mut().for_each(|s| *s = forest.finish(*s));
        }
        None => {
            for (s, row) in out.iter_mut().zip(x.chunks_exact(nf)) {
                *s = forest.finish(forest.path_total(row));
            }
        }
    };
    if parallel && out.len() >= PARALLEL_MIN_ROWS && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(PARALLEL_CHUNK_ROWS)
            .zip(x.par_chunks(PARALLEL_CHUNK_ROWS * nf))
            .for_each(|(out, x)| score_block(x, out));
    } else {
        score_block(x, out);
    }
}
