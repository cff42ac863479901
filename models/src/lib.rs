//! Outrider models: train an isolation forest on per-identity feature windows, score and
//! explain new windows, and store the result as a versioned model file.
//!
//! The detector loads a [`TrainedModel`], checks it against the feature schema it computes
//! ([`TrainedModel::ensure_schema`]), then scores windows; anything at or above the
//! model's threshold is an anomaly, explained per feature against training baselines.
//!
//! # Layout
//!
//! - [`error`]: the crate's [`Error`] and [`Result`].
//! - [`schema`]: [`FeatureSchema`], the id and column names a model was trained on.
//! - [`isolation_forest`]: hyperparameters, fitting, scoring and path-based attribution
//!   over a flattened forest, axis-parallel or extended (hyperplane splits); batches are
//!   scored over padded trees, several rows in lockstep, in parallel when large.
//! - `model_file`: [`TrainedModel`] (preprocessing, threshold, baselines overall and per
//!   peer group, training and validation figures; versioned JSON save/load).
//! - [`preprocess`]: the log1p transform and standard (linfa) or robust scaling.
//! - `gpu` (features `candle`, `cuda`): the padded forest as candle tensor operations.
//! - `stats`: quantiles and median/MAD for thresholds and baselines.
//! - [`online`]: Half-Space Trees, an online detector over feature rows that follows drift.
//! - [`burst`]: MIDAS-R style burst detection on IP -> identity, client -> token and
//!   identity -> API edges, before any window closes.
//! - [`rules`]: deterministic rules beside the model, with reasons quoting the numbers.
//! - [`calibration`]: per-API / per-peer-group thresholds at a target false-alert rate,
//!   and scores mapped to a 0-1 risk.
//! - [`combine`]: calibrated risks, burst risks and rule hits into one verdict with reasons.

pub mod burst;
pub mod calibration;
pub mod combine;
pub mod error;
#[cfg(feature = "candle")]
pub mod gpu;
pub mod isolation_forest;
mod model_file;
pub mod online;
pub mod preprocess;
pub mod rules;
pub mod schema;
mod stats;

pub use burst::{BurstDetectors, BurstScore, EdgeKind, MidasRParams};
pub use calibration::{CalibrationParams, ScoreCalibration};
pub use combine::{CombineConfig, Combiner, Signal, SignalSource, Verdict};
pub use error::{Error, Result};
pub use isolation_forest::{
    Algorithm, IsolationForest, IsolationForestParams, IsolationForestValidParams,
};
pub use model_file::{
    FeatureBaseline, FeatureExplanation, GroupBaselines, HoldoutSummary, TrainOptions,
    TrainedModel, TrainingSummary, Transform, ValidationMetrics, MIN_MODEL_FORMAT_VERSION,
    MODEL_FORMAT_VERSION,
};
pub use online::{HalfSpaceTrees, HalfSpaceTreesParams};
pub use preprocess::{Preprocessor, Scaler, Scaling};
pub use rules::{RuleHit, RuleSet, RulesConfig};
pub use schema::FeatureSchema;
