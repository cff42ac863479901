//! Training input: the same extractor the live pipeline runs, over a file or events, so a
//! model is trained on exactly the features it will score.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;
use outrider_features::{
    hash64, FeatureExtractor, FeatureRow, WindowConfig, FEATURE_COUNT, SCHEMA_ID,
};
use outrider_ingest::{Event, Parsed};
use outrider_models::calibration::CalibrationParams;
use outrider_models::{FeatureSchema, TrainOptions, TrainedModel};

use crate::config::SourceConfig;
use crate::error::{Error, Result};
use crate::normalize::normalize_file;

/// The schema of the features this build computes.
pub fn feature_schema() -> FeatureSchema {
    FeatureSchema {
        id: SCHEMA_ID.to_owned(),
        features: outrider_features::schema::feature_names(),
    }
}

/// Feature rows of `events` (in roughly time order, as a log is).
pub fn feature_rows<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    window: &WindowConfig,
) -> Result<Vec<FeatureRow>> {
    let mut fx = FeatureExtractor::new(window)?;
    let mut rows = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        fx.observe(event);
        // Advance now and then so finished buckets are evicted along the way.
        if i % 4096 == 4095 {
            if let Some(w) = fx.watermark() {
                rows.extend(fx.advance(w));
            }
        }
    }
    rows.extend(fx.finish());
    Ok(rows)
}

/// Feature rows of a canonical JSONL file, with what was refused.
#[derive(Debug, Default)]
pub struct FeatureTable {
    pub rows: Vec<FeatureRow>,
    pub records: u64,
    pub parse_errors: BTreeMap<String, u64>,
    /// Well-formed records without a detection signal.
    pub skipped: u64,
}

pub fn feature_table_from_file(
    path: &Path,
    source: &SourceConfig,
    window: &WindowConfig,
) -> Result<FeatureTable> {
    let mut table = FeatureTable::default();
    let mut events = Vec::new();
    normalize_file(path, source, |outcome| {
        table.records += 1;
        match outcome {
            Ok(Parsed::Event(e)) => events.push(e),
            Ok(Parsed::Skipped(_)) => table.skipped += 1,
            Err(e) => *table.parse_errors.entry(e.reason.to_string()).or_default() += 1,
        }
    })?;
    table.rows = feature_rows(&events, window)?;
    Ok(table)
}

/// Outrider's training defaults for per-identity windows.
///
/// Many benign behaviours are rare (a mistyped password, a phone changing networks), so a
/// large subsample (4096 rather than the paper's 256) keeps them in most trees and they are
/// not mistaken for attacks; the threshold sits above all but 1 in 10,000 training windows.
pub fn default_train_options(seed: u64, created_at: String) -> TrainOptions {
    let mut options = TrainOptions::new(created_at);
    options.params = options.params.seed(seed).sample_size(4096).n_trees(100);
    options.threshold_quantile = 0.9999;
    options
}

/// Fits a model on feature rows.
pub fn train(rows: &[FeatureRow], options: &TrainOptions) -> Result<TrainedModel> {
    Ok(TrainedModel::train(
        feature_schema(),
        matrix(rows.iter())?.view(),
        options,
    )?)
}

fn matrix<'a>(rows: impl ExactSizeIterator<Item = &'a FeatureRow>) -> Result<Array2<f32>> {
    let n = rows.len();
    let flat: Vec<f32> = rows.flat_map(|r| r.values).collect();
    Array2::from_shape_vec((n, FEATURE_COUNT), flat)
        .map_err(|e| Error::Config(format!("feature matrix: {e}")))
}

/// How `outrider train` calibrates per-API and per-peer thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationOptions {
    /// Share of benign validation windows allowed to alert, per API and peer group.
    pub target_false_alert_rate: f64,
    /// Share of identities held out of training; their windows are the validation rows.
    pub validation_fraction: f64,
    /// Validation windows an API or peer group needs for a threshold of its own.
    pub min_group_samples: usize,
    /// Picks the held-out identities.
    pub seed: u64,
}

impl Default for CalibrationOptions {
    /// One benign window in 10,000 alerts, as the uncalibrated threshold
    /// ([`default_train_options`]'s 0.9999 quantile); so a group needs 10,000 held-out
    /// windows (a day of a busy API) for a threshold of its own.
    fn default() -> Self {
        Self {
            target_false_alert_rate: 1e-4,
            validation_fraction: 0.2,
            min_group_samples: 10_000,
            seed: 42,
        }
    }
}

/// What calibration did.
#[derive(Debug, Clone, PartialEq)]
pub enum CalibrationOutcome {
    /// Thresholds for `groups` APIs and peer groups (besides the global one), fitted on
    /// `validation_rows` windows of held-out identities.
    Calibrated {
        validation_rows: usize,
        groups: usize,
    },
    /// Too few validation windows: the model was trained on every row, uncalibrated.
    Skipped { reason: String },
}

/// [`train`] with calibration: the windows of a seeded share of identities are held out
/// (whole identities, since overlapping windows of one identity are near copies and would
/// make the validation look like training), the model is fitted on the others, and
/// thresholds per API and per peer group are fitted on the held-out windows at the target
/// false-alert rate. With too few held-out windows the model is trained on every row and
/// left uncalibrated, and the outcome says why.
pub fn train_calibrated(
    rows: &[FeatureRow],
    options: &TrainOptions,
    calibration: &CalibrationOptions,
) -> Result<(TrainedModel, CalibrationOutcome)> {
    if !(0.0..1.0).contains(&calibration.validation_fraction) {
        return Err(Error::Config(format!(
            "validation fraction must be in [0, 1), got {}",
            calibration.validation_fraction
        )));
    }
    let params = CalibrationParams::default()
        .target_false_alert_rate(calibration.target_false_alert_rate)
        .min_group_samples(calibration.min_group_samples)
        .check()?;
    let (fit, validation): (Vec<&FeatureRow>, Vec<&FeatureRow>) =
        rows.iter().partition(|r| !held_out(&r.key, calibration));
    let needed = (1.0 / calibration.target_false_alert_rate).ceil() as usize;
    if validation.len() < needed || fit.is_empty() {
        let reason = format!(
            "{} validation windows, {needed} needed for a false-alert rate of {}",
            validation.len(),
            calibration.target_false_alert_rate
        );
        return Ok((
            train(rows, options)?,
            CalibrationOutcome::Skipped { reason },
        ));
    }
    let mut model = TrainedModel::train(
        feature_schema(),
        matrix(fit.iter().copied())?.view(),
        options,
    )?;
    let groups: Vec<Vec<String>> = validation
        .iter()
        .map(|r| {
            let mut g = crate::score::api_groups(r);
            g.push(crate::score::peer_group_name(&r.key));
            g
        })
        .collect();
    let x = matrix(validation.iter().copied())?;
    let fitted = model.calibrate(x.view(), &groups, &params)?;
    let outcome = CalibrationOutcome::Calibrated {
        validation_rows: validation.len(),
        groups: fitted.groups().len(),
    };
    Ok((model, outcome))
}

/// Whether an identity's windows are held out for validation (stable for a seed).
fn held_out(key: &str, calibration: &CalibrationOptions) -> bool {
    const BUCKETS: u64 = 1 << 20;
    let bucket = hash64(calibration.seed, key.as_bytes()) % BUCKETS;
    (bucket as f64) < calibration.validation_fraction * BUCKETS as f64
}

/// Loads a model file and checks it was trained on this build's feature schema.
pub fn load_model(path: &Path) -> Result<TrainedModel> {
    let model = TrainedModel::load(path)?;
    model.ensure_schema(&feature_schema())?;
    Ok(model)
}
