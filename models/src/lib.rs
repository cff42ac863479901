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
//!   over a flattened forest.
//! - `model_file`: [`TrainedModel`] (transform, threshold, baselines, JSON save/load).
//! - `stats`: quantiles and median/MAD for thresholds and baselines.

pub mod error;
pub mod isolation_forest;
mod model_file;
pub mod schema;
mod stats;

pub use error::{Error, Result};
pub use isolation_forest::{IsolationForest, IsolationForestParams, IsolationForestValidParams};
pub use model_file::{
    FeatureBaseline, FeatureExplanation, TrainOptions, TrainedModel, TrainingSummary, Transform,
    MODEL_FORMAT_VERSION,
};
pub use schema::FeatureSchema;
