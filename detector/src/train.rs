//! Training input: the same extractor the live pipeline runs, over a file or events, so a
//! model is trained on exactly the features it will score.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;
use outrider_features::{FeatureExtractor, FeatureRow, WindowConfig, FEATURE_COUNT, SCHEMA_ID};
use outrider_ingest::{Event, Parsed};
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
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.values).collect();
    let x = Array2::from_shape_vec((rows.len(), FEATURE_COUNT), flat)
        .map_err(|e| Error::Config(format!("feature matrix: {e}")))?;
    Ok(TrainedModel::train(feature_schema(), x.view(), options)?)
}

/// Loads a model file and checks it was trained on this build's feature schema.
pub fn load_model(path: &Path) -> Result<TrainedModel> {
    let model = TrainedModel::load(path)?;
    model.ensure_schema(&feature_schema())?;
    Ok(model)
}
