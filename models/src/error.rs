//! The crate's one error type.

use std::fmt::Write as _;
use std::path::PathBuf;

/// Everything that can go wrong while training, scoring, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyperparameter or training option is out of range.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// Training data has no rows (or no feature columns).
    #[error("the training dataset is empty: collect some traffic first")]
    EmptyDataset,
    /// Training data has too few rows for an isolation forest to mean anything.
    #[error("the training dataset has {found} row(s) but at least {min} are needed")]
    TooFewRows { min: usize, found: usize },
    /// The data has a different number of feature columns than the model.
    #[error("expected {expected} feature columns, found {found}")]
    DimensionMismatch { expected: usize, found: usize },
    /// The model was trained on a different feature schema than the caller computes.
    #[error(
        "{}",
        schema_mismatch_message(expected_id, expected_features, found_id, found_features)
    )]
    SchemaMismatch {
        /// The schema the caller (the detector) computes.
        expected_id: String,
        expected_features: Vec<String>,
        /// The schema recorded in the model file.
        found_id: String,
        found_features: Vec<String>,
    },
    /// Reading or writing a model file failed.
    #[error("I/O error on model file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file is unreadable or corrupt.
    #[error("{} is not a usable model file: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    /// The tensor backend (candle) failed: device, memory or an unsupported operation.
    #[error("tensor backend: {0}")]
    Backend(String),
    /// A model file's layout version is not one this build reads.
    #[error(
        "{} has model format version {found}, but this build reads versions {min} to {max}: {}",
        path.display(),
        version_advice(*found, *max)
    )]
    UnsupportedFormatVersion {
        path: PathBuf,
        found: u32,
        min: u32,
        max: u32,
    },
    /// Training data contains NaN or an infinity, which would poison the split ranges.
    #[error(
        "non-finite value (NaN or infinity) in the training data at row {row}, column {column}"
    )]
    NonFinite { row: usize, column: usize },
    /// A score or risk handed to calibration or combining is NaN, infinite or out of range.
    #[error("score {index} is not usable: {detail}")]
    InvalidScore { index: usize, detail: String },
    /// A restored detector state (a checkpoint) is internally inconsistent.
    #[error("inconsistent detector state: {0}")]
    InvalidState(String),
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to do about a model file of another format version.
fn version_advice(found: u32, max: u32) -> &'static str {
    if found > max {
        "it was written by a newer outrider; upgrade to load it"
    } else {
        "retrain it with `outrider train`"
    }
}

/// Says which schemas differ, how, and what to do about it.
fn schema_mismatch_message(
    expected_id: &str,
    expected: &[String],
    found_id: &str,
    found: &[String],
) -> String {
    let mut msg = format!(
        "model was trained on feature schema `{found_id}` ({}) but the detector computes \
         `{expected_id}` ({})",
        describe_features(found),
        describe_features(expected),
    );
    let only_model: Vec<&str> = difference(found, expected);
    let only_detector: Vec<&str> = difference(expected, found);
    if !only_model.is_empty() {
        let _ = write!(msg, "; only in the model: {}", only_model.join(", "));
    }
    if !only_detector.is_empty() {
        let _ = write!(msg, "; only in the detector: {}", only_detector.join(", "));
    }
    if only_model.is_empty() && only_detector.is_empty() && expected != found {
        msg.push_str("; same features in a different order");
    }
    msg.push_str(": retrain the model with `outrider train`");
    msg
}

fn describe_features(features: &[String]) -> String {
    format!("{} features: {}", features.len(), features.join(", "))
}

/// Names in `a` that are not in `b`, in `a`'s order.
fn difference<'a>(a: &'a [String], b: &[String]) -> Vec<&'a str> {
    a.iter()
        .filter(|name| !b.contains(name))
        .map(String::as_str)
        .collect()
}
