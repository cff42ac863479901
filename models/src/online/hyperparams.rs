//! Half-Space Trees hyperparameters (unchecked builder and checked form) and feature ranges.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest tree height: a tree has `2^(h+1) - 1` mass counters, so 20 is already 2 M.
pub const MAX_HEIGHT: usize = 20;
/// Cap on all nodes of all trees, which bounds the state (8 bytes of mass per node).
const MAX_TOTAL_NODES: usize = 1 << 26;

/// Unchecked Half-Space Trees hyperparameters; call [`check`](Self::check) before use.
///
/// Deserializes with defaults for missing fields, so it can sit in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HalfSpaceTreesParams {
    n_trees: usize,
    height: usize,
    window_size: usize,
    size_limit: Option<usize>,
    seed: u64,
    log_scale: bool,
    range_margin: f32,
}

impl Default for HalfSpaceTreesParams {
    /// 25 trees of height 8 and windows of 256 rows; size limit `0.1 x window` (the paper's).
    fn default() -> Self {
        Self {
            n_trees: 25,
            height: 8,
            window_size: 256,
            size_limit: None,
            seed: 42,
            log_scale: true,
            range_margin: 0.1,
        }
    }
}

impl HalfSpaceTreesParams {
    /// Number of trees; more trees reduce score variance (cost is linear).
    pub fn n_trees(mut self, n: usize) -> Self {
        self.n_trees = n;
        self
    }

    /// Height of every (perfect) tree: `2^height` leaves. Higher trees resolve finer
    /// regions but need larger windows to fill them.
    pub fn height(mut self, h: usize) -> Self {
        self.height = h;
        self
    }

    /// Rows per window: how much of the stream is the reference, and how fast the
    /// detector forgets (one window after the normal moves).
    pub fn window_size(mut self, n: usize) -> Self {
        self.window_size = n;
        self
    }

    /// Reference mass below which a node is too thin to descend into (the row is scored
    /// there). Defaults to a tenth of the window, as in the paper.
    pub fn size_limit(mut self, n: usize) -> Self {
        self.size_limit = Some(n);
        self
    }

    /// Seed of the random work spaces and split features: the same seed and ranges give
    /// the same trees and the same scores.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether splits are placed on a signed log scale, `sign(v) ln(1 + |v|)` (default
    /// on): counts, bytes and z-scores are heavy-tailed, and halving a linear range would
    /// spend every split on the rare huge values. Scoring compares raw values against
    /// thresholds mapped back to raw units, so rows are never transformed.
    pub fn log_scale(mut self, on: bool) -> Self {
        self.log_scale = on;
        self
    }

    /// Share of a fitted feature range added on each side (default 0.1) when ranges come
    /// from a sample (`fit`), so a normal that drifts a little stays inside the work space.
    pub fn range_margin(mut self, margin: f32) -> Self {
        self.range_margin = margin;
        self
    }

    /// Validates the parameters.
    pub fn check(self) -> Result<HalfSpaceTreesValidParams> {
        if self.n_trees == 0 {
            return Err(invalid("n_trees must be at least 1"));
        }
        if self.height == 0 || self.height > MAX_HEIGHT {
            return Err(invalid(format!(
                "height must be in 1..={MAX_HEIGHT}, got {}",
                self.height
            )));
        }
        if self.window_size < 2 || u32::try_from(self.window_size).is_err() {
            return Err(invalid(format!(
                "window_size must be in 2..=4294967295, got {}",
                self.window_size
            )));
        }
        if self.size_limit.is_some_and(|s| s > self.window_size) {
            return Err(invalid(format!(
                "size_limit ({}) cannot exceed window_size ({})",
                self.size_limit.unwrap_or_default(),
                self.window_size
            )));
        }
        if !(self.range_margin.is_finite() && self.range_margin >= 0.0) {
            return Err(invalid(format!(
                "range_margin must be a finite number >= 0, got {}",
                self.range_margin
            )));
        }
        let nodes_per_tree = (1usize << (self.height + 1)) - 1;
        if self
            .n_trees
            .checked_mul(nodes_per_tree)
            .is_none_or(|n| n > MAX_TOTAL_NODES)
        {
            return Err(invalid(format!(
                "{} trees of height {} exceed {MAX_TOTAL_NODES} nodes",
                self.n_trees, self.height
            )));
        }
        Ok(HalfSpaceTreesValidParams(self))
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidParams(msg.into())
}

/// Hyperparameters that passed [`HalfSpaceTreesParams::check`].
///
/// Serializes as the plain parameters; deserializing re-runs the check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HalfSpaceTreesParams", into = "HalfSpaceTreesParams")]
pub struct HalfSpaceTreesValidParams(HalfSpaceTreesParams);

impl TryFrom<HalfSpaceTreesParams> for HalfSpaceTreesValidParams {
    type Error = Error;

    fn try_from(params: HalfSpaceTreesParams) -> Result<Self> {
        params.check()
    }
}

impl From<HalfSpaceTreesValidParams> for HalfSpaceTreesParams {
    fn from(valid: HalfSpaceTreesValidParams) -> Self {
        valid.0
    }
}

impl HalfSpaceTreesValidParams {
    pub fn n_trees(&self) -> usize {
        self.0.n_trees
    }

    pub fn height(&self) -> usize {
        self.0.height
    }

    pub fn window_size(&self) -> usize {
        self.0.window_size
    }

    /// The effective size limit: as set, or `max(1, window / 10)`.
    pub fn size_limit(&self) -> usize {
        self.0
            .size_limit
            .unwrap_or_else(|| (self.0.window_size / 10).max(1))
    }

    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    pub fn log_scale(&self) -> bool {
        self.0.log_scale
    }

    pub fn range_margin(&self) -> f32 {
        self.0.range_margin
    }

    /// Internal (split) nodes per tree.
    pub(crate) fn splits_per_tree(&self) -> usize {
        (1 << self.0.height) - 1
    }

    /// All nodes (mass counters) per tree.
    pub(crate) fn nodes_per_tree(&self) -> usize {
        (1 << (self.0.height + 1)) - 1
    }
}

/// The range of one raw feature value that the trees' work space is built around. Values
/// outside it are still scored (they fall into the outermost regions).
///
/// Deserializing checks the range like [`FeatureRange::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFeatureRange")]
pub struct FeatureRange {
    min: f32,
    max: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeatureRange {
    min: f32,
    max: f32,
}

impl TryFrom<RawFeatureRange> for FeatureRange {
    type Error = Error;

    fn try_from(raw: RawFeatureRange) -> Result<Self> {
        Self::new(raw.min, raw.max)
    }
}

impl FeatureRange {
    /// A range `min..=max` of finite values with `min <= max`.
    pub fn new(min: f32, max: f32) -> Result<Self> {
        if !(min.is_finite() && max.is_finite() && min <= max) {
            return Err(invalid(format!(
                "a feature range needs finite min <= max, got {min}..={max}"
            )));
        }
        Ok(Self { min, max })
    }

    pub fn min(&self) -> f32 {
        self.min
    }

    pub fn max(&self) -> f32 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let p = HalfSpaceTreesParams::default().check().unwrap();
        assert_eq!((p.n_trees(), p.height(), p.window_size()), (25, 8, 256));
        assert_eq!(p.size_limit(), 25);
        assert_eq!(p.splits_per_tree(), 255);
        assert_eq!(p.nodes_per_tree(), 511);
        assert!(p.log_scale());
    }

    #[test]
    fn rejects_bad_params() {
        let base = HalfSpaceTreesParams::default();
        for bad in [
            base.n_trees(0),
            base.height(0),
            base.height(MAX_HEIGHT + 1),
            base.window_size(1),
            base.window_size(10).size_limit(11),
            base.range_margin(-0.1),
            base.range_margin(f32::NAN),
            base.n_trees(1 << 20).height(MAX_HEIGHT),
        ] {
            assert!(
                matches!(bad.check(), Err(Error::InvalidParams(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn small_windows_keep_a_positive_size_limit() {
        let p = HalfSpaceTreesParams::default()
            .window_size(5)
            .check()
            .unwrap();
        assert_eq!(p.size_limit(), 1);
    }

    #[test]
    fn deserializing_rechecks_and_fills_defaults() {
        let partial: HalfSpaceTreesParams = serde_json::from_str(r#"{"n_trees":3}"#).unwrap();
        assert_eq!(partial, HalfSpaceTreesParams::default().n_trees(3));
        assert!(serde_json::from_str::<HalfSpaceTreesValidParams>(r#"{"height":0}"#).is_err());
        assert!(serde_json::from_str::<HalfSpaceTreesParams>(r#"{"trees":3}"#).is_err());
    }

    #[test]
    fn feature_ranges_must_be_ordered_and_finite() {
        assert!(FeatureRange::new(0.0, 0.0).is_ok());
        assert!(FeatureRange::new(1.0, 0.0).is_err());
        assert!(FeatureRange::new(f32::NEG_INFINITY, 0.0).is_err());
        assert!(FeatureRange::new(0.0, f32::NAN).is_err());
        let ok: FeatureRange = serde_json::from_str(r#"{"min":-1,"max":2}"#).unwrap();
        assert_eq!((ok.min(), ok.max()), (-1.0, 2.0));
        assert!(serde_json::from_str::<FeatureRange>(r#"{"min":3,"max":2}"#).is_err());
    }
}
