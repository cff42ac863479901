//! Burst detector hyperparameters: unchecked builder and checked form.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAX_ROWS: usize = 8;
const MIN_WIDTH: usize = 16;
const MAX_WIDTH: usize = 1 << 24;

/// Unchecked MIDAS-R hyperparameters; call [`check`](Self::check) before use.
///
/// Deserializes with defaults for missing fields, so it can sit in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MidasRParams {
    rows: usize,
    width: usize,
    decay: f64,
    history_ticks: Option<u64>,
    min_expected: f64,
    seed: u64,
}

impl Default for MidasRParams {
    /// 2 x 16384 counters per sketch (MIDAS uses 2 rows), decay 0.5 (the paper's factor),
    /// all history kept (as in MIDAS), and at least 1 event per tick expected.
    fn default() -> Self {
        Self {
            rows: 2,
            width: 1 << 14,
            decay: 0.5,
            history_ticks: None,
            min_expected: 1.0,
            seed: 0x6d69_6461_7372,
        }
    }
}

impl MidasRParams {
    /// Hash rows per count-min sketch: each extra row lowers the chance that a collision
    /// inflates a count, at one more memory access per edge and sketch.
    pub fn rows(mut self, rows: usize) -> Self {
        self.rows = rows;
        self
    }

    /// Counters per row, a power of two. Colliding keys add up, so keep it well above the
    /// number of distinct edges (and nodes) active within a few ticks; memory is
    /// `3 sketches x rows x width x 16 bytes`.
    pub fn width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Factor in `[0, 1)` the current counts are multiplied by at each new tick (MIDAS-R's
    /// temporal decay): a burst split across tick boundaries still adds up. 0 gives plain
    /// MIDAS (counts of the current tick only).
    pub fn decay(mut self, decay: f64) -> Self {
        self.decay = decay;
        self
    }

    /// Forget history with a horizon of about this many ticks (total counts decay by
    /// `1 - 1/ticks` per tick), so the expected rate follows slow changes: without it (the
    /// default, as in MIDAS) the expected rate is the average over the whole stream.
    pub fn history_ticks(mut self, ticks: u64) -> Self {
        self.history_ticks = Some(ticks);
        self
    }

    /// Smallest expected events per tick (default 1): a key first seen, or seen rarely,
    /// is compared with this rate instead of its near-zero average, so a new user's first
    /// call is not a burst but a new IP reaching 50 identities a tick is.
    pub fn min_expected(mut self, rate: f64) -> Self {
        self.min_expected = rate;
        self
    }

    /// Seed of the sketches' hash functions.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the parameters.
    pub fn check(self) -> Result<MidasRValidParams> {
        if !(1..=MAX_ROWS).contains(&self.rows) {
            return Err(invalid(format!(
                "rows must be in 1..={MAX_ROWS}, got {}",
                self.rows
            )));
        }
        if !self.width.is_power_of_two() || !(MIN_WIDTH..=MAX_WIDTH).contains(&self.width) {
            return Err(invalid(format!(
                "width must be a power of two in {MIN_WIDTH}..={MAX_WIDTH}, got {}",
                self.width
            )));
        }
        if !(0.0..1.0).contains(&self.decay) {
            return Err(invalid(format!(
                "decay must be in [0, 1), got {}",
                self.decay
            )));
        }
        if self.history_ticks.is_some_and(|t| t < 2) {
            return Err(invalid("history_ticks must be at least 2"));
        }
        if !(self.min_expected.is_finite() && self.min_expected > 0.0) {
            return Err(invalid(format!(
                "min_expected must be a finite number > 0, got {}",
                self.min_expected
            )));
        }
        Ok(MidasRValidParams(self))
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidParams(msg.into())
}

/// Hyperparameters that passed [`MidasRParams::check`].
///
/// Serializes as the plain parameters; deserializing re-runs the check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MidasRParams", into = "MidasRParams")]
pub struct MidasRValidParams(MidasRParams);

impl TryFrom<MidasRParams> for MidasRValidParams {
    type Error = Error;

    fn try_from(params: MidasRParams) -> Result<Self> {
        params.check()
    }
}

impl From<MidasRValidParams> for MidasRParams {
    fn from(valid: MidasRValidParams) -> Self {
        valid.0
    }
}

impl MidasRValidParams {
    pub fn rows(&self) -> usize {
        self.0.rows
    }

    pub fn width(&self) -> usize {
        self.0.width
    }

    pub fn decay(&self) -> f64 {
        self.0.decay
    }

    pub fn history_ticks(&self) -> Option<u64> {
        self.0.history_ticks
    }

    pub fn min_expected(&self) -> f64 {
        self.0.min_expected
    }

    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    /// The same parameters with another seed (one per edge kind).
    pub(crate) fn with_seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Per-tick factor of the total counts: `1 - 1/history_ticks`, or 1 (no forgetting).
    pub(crate) fn history_factor(&self) -> f64 {
        self.0.history_ticks.map_or(1.0, |t| 1.0 - 1.0 / t as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let p = MidasRParams::default().check().unwrap();
        assert_eq!((p.rows(), p.width(), p.decay()), (2, 16384, 0.5));
        assert_eq!(p.history_factor(), 1.0);
        let h = MidasRParams::default().history_ticks(10).check().unwrap();
        assert!((h.history_factor() - 0.9).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_params() {
        let base = MidasRParams::default();
        for bad in [
            base.rows(0),
            base.rows(MAX_ROWS + 1),
            base.width(1000),
            base.width(8),
            base.width(MAX_WIDTH * 2),
            base.decay(1.0),
            base.decay(-0.1),
            base.decay(f64::NAN),
            base.history_ticks(1),
            base.min_expected(0.0),
            base.min_expected(f64::INFINITY),
        ] {
            assert!(
                matches!(bad.check(), Err(Error::InvalidParams(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn deserializing_rechecks_and_fills_defaults() {
        let p: MidasRParams = serde_json::from_str(r#"{"width":1024}"#).unwrap();
        assert_eq!(p, MidasRParams::default().width(1024));
        assert!(serde_json::from_str::<MidasRValidParams>(r#"{"width":1000}"#).is_err());
        assert!(serde_json::from_str::<MidasRParams>(r#"{"depth":2}"#).is_err());
    }
}
