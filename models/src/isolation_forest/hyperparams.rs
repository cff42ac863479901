//! Isolation forest hyperparameters: unchecked builder and checked form.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Unchecked isolation forest hyperparameters; call [`check`](Self::check) before fitting.
///
/// Deserializes with defaults for missing fields, so it can sit in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestParams {
    n_trees: usize,
    sample_size: usize,
    seed: u64,
    max_depth: Option<usize>,
    range_check: bool,
    algorithm: Algorithm,
    extension_level: Option<usize>,
}

/// How trees split: on one feature at a time, or on random hyperplanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Liu et al.: a random feature and a threshold uniform in its range.
    #[default]
    Standard,
    /// Hariri et al., Extended Isolation Forest: a random normal vector with
    /// `extension_level + 1` non-zero components and an intercept uniform in the node's
    /// bounding box. Removes the axis-parallel artefacts ("ghost" regions between
    /// clusters) at the cost of a dot product per split.
    Extended,
}

impl Default for IsolationForestParams {
    /// The paper's defaults: 100 trees of 256 samples; depth limit `ceil(log2(256))`.
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            seed: 42,
            max_depth: None,
            range_check: true,
            algorithm: Algorithm::Standard,
            extension_level: None,
        }
    }
}

impl IsolationForestParams {
    /// Number of trees; more trees reduce score variance.
    pub fn n_trees(mut self, n: usize) -> Self {
        self.n_trees = n;
        self
    }

    /// Rows subsampled (without replacement) per tree; capped at the dataset size.
    pub fn sample_size(mut self, n: usize) -> Self {
        self.sample_size = n;
        self
    }

    /// Seed for the random subsamples and splits: the same seed gives the same forest.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Tree height limit; by default `ceil(log2(sample size))`, the average tree height,
    /// because only the short paths of anomalies matter.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Whether scoring credits a row lying outside a node's training range with the chance
    /// that the node's split would have isolated it (default on). Without it, every row
    /// beyond the training data is routed like the most extreme training rows and scores
    /// no higher than they do, however far out it is. Rows inside all ranges (including
    /// every training row in its own trees) score exactly as in Liu et al.
    pub fn range_check(mut self, on: bool) -> Self {
        self.range_check = on;
        self
    }

    /// Split algorithm: [`Algorithm::Standard`] (default) or [`Algorithm::Extended`].
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Extended forests only: how many dimensions beyond one each hyperplane mixes (0 is
    /// axis-parallel in effect; by default `n_features - 1`, fully extended). Must be less
    /// than the number of features, which `fit` checks.
    pub fn extension_level(mut self, level: usize) -> Self {
        self.extension_level = Some(level);
        self
    }

    /// Shorthand for `.algorithm(Algorithm::Extended)` with an optional extension level.
    pub fn extended(self, extension_level: Option<usize>) -> Self {
        let p = self.algorithm(Algorithm::Extended);
        match extension_level {
            Some(level) => p.extension_level(level),
            None => Self {
                extension_level: None,
                ..p
            },
        }
    }

    /// Validates the parameters.
    pub fn check(self) -> Result<IsolationForestValidParams> {
        if self.n_trees == 0 {
            return Err(invalid("n_trees must be at least 1"));
        }
        if self.sample_size < 2 {
            return Err(invalid(format!(
                "sample_size must be at least 2, got {}",
                self.sample_size
            )));
        }
        if self.max_depth == Some(0) {
            return Err(invalid("max_depth must be at least 1"));
        }
        if self.extension_level.is_some() && self.algorithm != Algorithm::Extended {
            return Err(invalid(
                "extension_level applies only to algorithm = \"extended\"",
            ));
        }
        // A tree over `s` samples has at most 2s - 1 nodes; node indices are u32.
        let max_nodes = self
            .sample_size
            .checked_mul(2)
            .and_then(|n| n.checked_mul(self.n_trees));
        if max_nodes.is_none_or(|n| u32::try_from(n).is_err()) {
            return Err(invalid(format!(
                "forest too large: {} trees of {} samples",
                self.n_trees, self.sample_size
            )));
        }
        Ok(IsolationForestValidParams(self))
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidParams(msg.into())
}

/// Hyperparameters that passed [`IsolationForestParams::check`].
///
/// Serializes as the plain parameters; deserializing re-runs the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IsolationForestParams", into = "IsolationForestParams")]
pub struct IsolationForestValidParams(IsolationForestParams);

impl TryFrom<IsolationForestParams> for IsolationForestValidParams {
    type Error = Error;

    fn try_from(params: IsolationForestParams) -> Result<Self> {
        params.check()
    }
}

impl From<IsolationForestValidParams> for IsolationForestParams {
    fn from(valid: IsolationForestValidParams) -> Self {
        valid.0
    }
}

impl IsolationForestValidParams {
    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.0.n_trees
    }

    /// Requested rows per tree (before capping at the dataset size).
    pub fn sample_size(&self) -> usize {
        self.0.sample_size
    }

    /// Random seed.
    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    /// Explicit tree height limit, if one was set.
    pub fn max_depth(&self) -> Option<usize> {
        self.0.max_depth
    }

    /// Whether scoring uses the range check.
    pub fn range_check(&self) -> bool {
        self.0.range_check
    }

    /// Split algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }

    /// Requested extension level (extended forests; `None` means fully extended).
    pub fn extension_level(&self) -> Option<usize> {
        self.0.extension_level
    }

    /// Non-zero components per hyperplane for `n_features` columns, or an error naming
    /// the limit when the extension level is too high for them.
    pub(crate) fn plane_width(&self, n_features: usize) -> Result<usize> {
        let level = self
            .0
            .extension_level
            .unwrap_or_else(|| n_features.saturating_sub(1));
        if level >= n_features {
            return Err(invalid(format!(
                "extension_level {level} needs more than {n_features} feature(s): use at \
                 most {}",
                n_features.saturating_sub(1)
            )));
        }
        Ok(level + 1)
    }

    /// Height limit for trees grown on `psi` samples.
    pub(crate) fn depth_limit(&self, psi: usize) -> usize {
        self.0.max_depth.unwrap_or_else(|| ceil_log2(psi))
    }
}

/// `ceil(log2(n))` for `n >= 1`, exactly, without floats.
fn ceil_log2(n: usize) -> usize {
    match n {
        0 | 1 => 0,
        _ => (usize::BITS - (n - 1).leading_zeros()) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let p = IsolationForestParams::default().check().unwrap();
        assert_eq!((p.n_trees(), p.sample_size(), p.seed()), (100, 256, 42));
        assert_eq!(p.max_depth(), None);
        assert!(p.range_check());
        assert_eq!(p.depth_limit(256), 8);
        assert_eq!(p.depth_limit(257), 9);
        assert_eq!(p.depth_limit(2), 1);
    }

    #[test]
    fn builder_sets_fields() {
        let p = IsolationForestParams::default()
            .n_trees(7)
            .sample_size(64)
            .seed(9)
            .max_depth(3)
            .check()
            .unwrap();
        assert_eq!((p.n_trees(), p.sample_size(), p.seed()), (7, 64, 9));
        assert_eq!(p.depth_limit(64), 3);
    }

    #[test]
    fn rejects_bad_params() {
        let base = IsolationForestParams::default();
        for bad in [
            base.n_trees(0),
            base.sample_size(0),
            base.sample_size(1),
            base.max_depth(0),
            base.n_trees(usize::MAX),
            base.sample_size(usize::MAX),
            base.extension_level(1),
        ] {
            assert!(
                matches!(bad.check(), Err(Error::InvalidParams(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn deserializing_valid_params_rechecks() {
        let ok: IsolationForestValidParams = serde_json::from_str(
            r#"{"n_trees":5,"sample_size":8,"seed":1,"max_depth":null,"range_check":false}"#,
        )
        .unwrap();
        assert_eq!(ok.n_trees(), 5);
        assert!(!ok.range_check());
        let bad = serde_json::from_str::<IsolationForestValidParams>(r#"{"n_trees":0}"#);
        assert!(bad.is_err());
        // Plain params fill in defaults for missing fields.
        let partial: IsolationForestParams = serde_json::from_str(r#"{"n_trees":5}"#).unwrap();
        assert_eq!(partial, IsolationForestParams::default().n_trees(5));
        assert_eq!(partial.check().unwrap().algorithm(), Algorithm::Standard);
    }

    #[test]
    fn extended_params_and_plane_width() {
        let full = IsolationForestParams::default()
            .extended(None)
            .check()
            .unwrap();
        assert_eq!(full.algorithm(), Algorithm::Extended);
        assert_eq!(full.plane_width(5).unwrap(), 5);
        let level1 = IsolationForestParams::default()
            .extended(Some(1))
            .check()
            .unwrap();
        assert_eq!(level1.extension_level(), Some(1));
        assert_eq!(level1.plane_width(5).unwrap(), 2);
        let msg = level1.plane_width(1).unwrap_err().to_string();
        assert!(
            msg.contains("extension_level 1") && msg.contains("at most 0"),
            "{msg}"
        );
        let json = serde_json::to_string(&level1).unwrap();
        assert!(json.contains(r#""algorithm":"extended""#), "{json}");
        let back: IsolationForestValidParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, level1);
    }
}
