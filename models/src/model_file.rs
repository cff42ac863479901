//! The model file: a trained forest plus everything a detector needs to use and explain it
//! (schema, preprocessing, threshold, baselines overall and per peer group, training and
//! validation figures), as versioned JSON.
//!
//! Format versions: 1 had no scaler, group baselines, hold-out summary or metrics, and
//! axis-parallel forests only; version 2 added them, all optional, so a version 1 file
//! reads as a version 2 model with none of them and scores exactly as before.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array1, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::calibration::{Assessment, CalibrationValidParams, ScoreCalibration};
use crate::error::{Error, Result};
use crate::isolation_forest::{
    check_finite, Algorithm, IsolationForest, IsolationForestParams, IsolationForestValidParams,
    PARALLEL_MIN_ROWS,
};
use crate::preprocess::{Preprocessor, Scaling};
use crate::schema::FeatureSchema;
use crate::stats;

/// Version of the model file layout this build writes.
pub const MODEL_FORMAT_VERSION: u32 = 2;
/// Oldest layout this build still reads.
pub const MIN_MODEL_FORMAT_VERSION: u32 = 1;

/// Element-wise transform applied to raw feature values before scaling and the forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `v -> ln(1 + max(v, 0))`: counts and byte totals are heavy-tailed, and the log keeps
    /// one huge value from stretching every split range. NaN maps to 0.
    #[default]
    Log1p,
    /// Values as they are (NaN stays NaN and goes right at every split).
    #[serde(rename = "none")]
    Identity,
}

impl Transform {
    /// Transforms one raw feature value.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Self::Log1p => v.max(0.0).ln_1p(),
            Self::Identity => v,
        }
    }
}

/// Robust statistics of one feature's raw training values, shown next to explanations so
/// an analyst sees what "normal" looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    pub name: String,
    pub median: f32,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f32,
    pub p99: f32,
}

/// Baselines of the training rows of one peer group (e.g. the identity kind: `sub`,
/// `client`, `apikey`, `ip`), so a service account is compared with service accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupBaselines {
    pub group: String,
    pub rows: u64,
    pub features: Vec<FeatureBaseline>,
}

/// Distribution of the anomaly scores of the training rows, for sanity-checking a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Rows the forest and the threshold were fitted on.
    pub rows: u64,
    pub score_p50: f32,
    pub score_p90: f32,
    pub score_p99: f32,
    pub score_p999: f32,
    pub score_max: f32,
    /// Scores of the rows held out of training ([`TrainOptions::validation_fraction`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutSummary>,
}

/// How the threshold generalises: scores of training-like rows the model never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutSummary {
    pub rows: u64,
    /// Share of held-out rows at or above the threshold; close to `1 - threshold_quantile`
    /// when the threshold generalises.
    pub alert_rate: f64,
    pub score_p50: f32,
    pub score_p99: f32,
    pub score_max: f32,
}

/// Quality on labelled rows (see [`TrainedModel::evaluate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    pub rows: u64,
    pub anomalies: u64,
    /// `None` when the rows hold one class only.
    pub roc_auc: Option<f64>,
    /// Average precision; `None` without anomalies.
    pub pr_auc: Option<f64>,
    /// Rows at or above the model's threshold.
    pub alerts: u64,
    /// Share of alerts that are anomalies (`None` without alerts).
    pub precision: Option<f64>,
    /// Share of anomalies alerted on (`None` without anomalies).
    pub recall: Option<f64>,
    /// Share of normal rows alerted on (`None` without normal rows).
    pub false_alert_rate: Option<f64>,
    /// Free text naming the data, e.g. `"generate --seed 7, 60 min"`.
    #[serde(default)]
    pub dataset: String,
}

/// One feature's part in a score: its raw value against a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureExplanation {
    pub name: String,
    pub value: f32,
    pub baseline_median: f32,
    pub baseline_p99: f32,
    #[serde(default)]
    pub baseline_mad: f32,
    /// The peer group whose baseline this is; `None` for all training rows.
    #[serde(default)]
    pub baseline_group: Option<String>,
    /// Share of the isolation credited to this feature; all contributions sum to 1 (or 0).
    pub contribution: f32,
}

/// How to train a [`TrainedModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub params: IsolationForestParams,
    /// Element-wise transform of raw values.
    pub transform: Transform,
    /// Per-feature scaling after the transform (matters for extended forests).
    pub scaling: Scaling,
    /// Quantile of the training scores used as the alert threshold.
    pub threshold_quantile: f32,
    /// Lowest allowed threshold: on very clean data the quantile can fall among normal
    /// scores (about 0.5), which would alert constantly.
    pub threshold_floor: f32,
    /// Share of rows (seeded by the forest's seed) held out of training and scored to see
    /// how the threshold generalises; 0 trains on every row.
    pub validation_fraction: f32,
    /// Peer groups with fewer training rows get no baselines of their own.
    pub min_group_rows: usize,
    /// Creation timestamp recorded in the file; passed in so training stays deterministic.
    pub created_at: String,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            params: IsolationForestParams::default(),
            transform: Transform::Log1p,
            scaling: Scaling::None,
            threshold_quantile: 0.999,
            threshold_floor: 0.5,
            validation_fraction: 0.0,
            min_group_rows: 30,
            created_at: String::new(),
        }
    }
}

impl TrainOptions {
    /// Default options stamped with `created_at`.
    pub fn new(created_at: impl Into<String>) -> Self {
        Self {
            created_at: created_at.into(),
            ..Self::default()
        }
    }

    fn check(&self) -> Result<IsolationForestValidParams> {
        let in_unit = |v: f32| (0.0..=1.0).contains(&v);
        for (name, value) in [
            ("threshold_quantile", self.threshold_quantile),
            ("threshold_floor", self.threshold_floor),
        ] {
            if !in_unit(value) {
                return Err(Error::InvalidParams(format!(
                    "{name} must be in [0, 1], got {value}"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::InvalidParams(format!(
                "validation_fraction must be in [0, 1), got {}",
                self.validation_fraction
            )));
        }
        self.params.check()
    }
}

/// A trained model as stored in a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// Always [`MODEL_FORMAT_VERSION`] in memory: older files are upgraded on load.
    format_version: u32,
    /// The version the file was written with (this build's for a trained model).
    #[serde(skip)]
    file_format_version: u32,
    model_version: String,
    created_at: String,
    schema: FeatureSchema,
    /// `transform` and, from version 2, `scaler`.
    #[serde(flatten)]
    preprocess: Preprocessor,
    params: IsolationForestValidParams,
    forest: IsolationForest,
    threshold: f32,
    baselines: Vec<FeatureBaseline>,
    /// Sorted by group name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    group_baselines: Vec<GroupBaselines>,
    training: TrainingSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics: Option<ValidationMetrics>,
    /// Thresholds per API and peer group at a target false-alert rate, fitted on benign
    /// validation rows (see [`calibrate`](Self::calibrate)). Files without it (all
    /// version 2 files before it existed) use the global `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<ScoreCalibration>,
}

impl TrainedModel {
    /// Trains on raw feature rows `x` (columns in `schema` order): transforms and scales,
    /// fits the forest, and sets the threshold to `max(floor, quantile of the training
    /// scores)`. Baselines are of all training rows.
    pub fn train(schema: FeatureSchema, x: ArrayView2<f32>, opts: &TrainOptions) -> Result<Self> {
        Self::fit(schema, x, None, opts)
    }

    /// [`train`](Self::train), also keeping baselines per peer group: `groups[i]` names
    /// row `i`'s group (the detector uses the identity kind). Groups with fewer than
    /// [`TrainOptions::min_group_rows`] training rows fall back to the overall baselines.
    pub fn train_grouped<S: AsRef<str>>(
        schema: FeatureSchema,
        x: ArrayView2<f32>,
        groups: &[S],
        opts: &TrainOptions,
    ) -> Result<Self> {
        if groups.len() != x.nrows() {
            return Err(Error::InvalidParams(format!(
                "{} group labels for {} rows",
                groups.len(),
                x.nrows()
            )));
        }
        let groups: Vec<&str> = groups.iter().map(AsRef::as_ref).collect();
        Self::fit(schema, x, Some(&groups), opts)
    }

    fn fit(
        schema: FeatureSchema,
        x: ArrayView2<f32>,
        groups: Option<&[&str]>,
        opts: &TrainOptions,
    ) -> Result<Self> {
        let params = opts.check()?;
        if x.ncols() != schema.len() {
            return Err(Error::DimensionMismatch {
                expected: schema.len(),
                found: x.ncols(),
            });
        }
        if x.is_empty() {
            return Err(Error::EmptyDataset);
        }
        // Check raw values: the transform would hide NaN and -inf.
        check_finite(x)?;
        let (train_rows, holdout_rows) =
            split_holdout(x.nrows(), opts.validation_fraction, params.seed())?;
        let x_train = x.select(Axis(0), &train_rows);
        let preprocess = Preprocessor::fit(opts.transform, opts.scaling, x_train.view())?;
        let xt = preprocess.apply(x_train.view());
        let forest = params.fit(xt.view())?;
        let scores = stats::sorted(forest.score(xt.view())?);
        let threshold = stats::quantile(&scores, opts.threshold_quantile).max(opts.threshold_floor);
        let baselines = baselines(&schema, x_train.view());
        let group_baselines = match groups {
            Some(groups) => {
                let train_groups: Vec<&str> = train_rows.iter().map(|&r| groups[r]).collect();
                group_baselines(&schema, x_train.view(), &train_groups, opts.min_group_rows)
            }
            None => Vec::new(),
        };
        let model_version = model_version(&schema, &preprocess, &forest);
        let mut model = Self {
            format_version: MODEL_FORMAT_VERSION,
            file_format_version: MODEL_FORMAT_VERSION,
            model_version,
            created_at: opts.created_at.clone(),
            schema,
            preprocess,
            params,
            forest,
            threshold,
            baselines,
            group_baselines,
            training: summarise(&scores),
            metrics: None,
            calibration: None,
        };
        if !holdout_rows.is_empty() {
            let held = model.score(x.select(Axis(0), &holdout_rows).view())?;
            model.training.holdout = Some(model.holdout_summary(held.as_slice().unwrap_or(&[])));
        }
        Ok(model)
    }

    fn holdout_summary(&self, scores: &[f32]) -> HoldoutSummary {
        let alerts = scores.iter().filter(|&&s| self.is_anomalous(s)).count();
        let sorted = stats::sorted(scores.iter().copied());
        HoldoutSummary {
            rows: scores.len() as u64,
            alert_rate: alerts as f64 / scores.len().max(1) as f64,
            score_p50: stats::quantile(&sorted, 0.5),
            score_p99: stats::quantile(&sorted, 0.99),
            score_max: stats::quantile(&sorted, 1.0),
        }
    }

    /// Scores labelled raw rows (`labels[i]`: row `i` is an anomaly) and measures the
    /// model on them: ROC-AUC, average precision, and precision, recall and false-alert
    /// rate at the model's threshold. See [`record_metrics`](Self::record_metrics) to
    /// keep the result in the model file.
    pub fn evaluate(
        &self,
        x: ArrayView2<f32>,
        labels: &[bool],
        dataset: impl Into<String>,
    ) -> Result<ValidationMetrics> {
        if labels.len() != x.nrows() {
            return Err(Error::InvalidParams(format!(
                "{} labels for {} rows",
                labels.len(),
                x.nrows()
            )));
        }
        let scores = self.score(x)?;
        let scores = scores.as_slice().unwrap_or(&[]);
        let anomalies = labels.iter().filter(|&&l| l).count();
        let normals = labels.len() - anomalies;
        let alerted = |want: bool| {
            scores
                .iter()
                .zip(labels)
                .filter(|(&s, &l)| l == want && self.is_anomalous(s))
                .count()
        };
        let (true_alerts, false_alerts) = (alerted(true), alerted(false));
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        Ok(ValidationMetrics {
            rows: labels.len() as u64,
            anomalies: anomalies as u64,
            roc_auc: stats::roc_auc(scores, labels),
            pr_auc: stats::average_precision(scores, labels),
            alerts: (true_alerts + false_alerts) as u64,
            precision: ratio(true_alerts, true_alerts + false_alerts),
            recall: ratio(true_alerts, anomalies),
            false_alert_rate: ratio(false_alerts, normals),
            dataset: dataset.into(),
        })
    }

    /// Stores validation metrics in the model (saved with it; they do not change the
    /// model version, which names the scoring function only).
    pub fn record_metrics(&mut self, metrics: ValidationMetrics) {
        self.metrics = Some(metrics);
    }

    /// Fits thresholds and risks per group on the scores of benign raw rows the model was
    /// not trained on: `groups[i]` lists the groups of row `i` (e.g. `api:<route>` for each
    /// API the window called, `peer:<kind>`). Replaces any earlier calibration; it does not
    /// change the model version (scores stay the same, only what alerts changes).
    pub fn calibrate<G, S>(
        &mut self,
        x: ArrayView2<f32>,
        groups: &[G],
        params: &CalibrationValidParams,
    ) -> Result<&ScoreCalibration>
    where
        G: AsRef<[S]>,
        S: AsRef<str>,
    {
        if groups.len() != x.nrows() {
            return Err(Error::InvalidParams(format!(
                "{} group lists for {} rows",
                groups.len(),
                x.nrows()
            )));
        }
        let scores = self.score(x)?;
        let samples = scores
            .iter()
            .zip(groups)
            .map(|(&s, g)| (s, g.as_ref().iter().map(AsRef::as_ref)));
        Ok(self.calibration.insert(params.fit(samples)?))
    }

    /// The per-group calibration, if the model has one.
    pub fn calibration(&self) -> Option<&ScoreCalibration> {
        self.calibration.as_ref()
    }

    /// Threshold and 0-1 risk of `score` for a row that called every API in `apis` and
    /// belongs to the peer groups `peers` (see
    /// [`ScoreCalibration::assess_all_of`]); `None` without a calibration (or for a NaN
    /// score), when [`is_anomalous`](Self::is_anomalous) and the global threshold apply.
    pub fn assess(&self, score: f32, apis: &[&str], peers: &[&str]) -> Option<Assessment<'_>> {
        self.calibration
            .as_ref()
            .and_then(|c| c.assess_all_of(score, apis, peers).ok())
    }

    /// Writes the model as JSON via a temporary file in the same directory and a rename,
    /// so readers (and crashes) never see a half-written model.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Format {
            path: path.to_owned(),
            detail: format!("cannot serialize the model: {e}"),
        })?;
        write_atomically(path, &json).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a model file, refusing corrupt files and format versions this build cannot
    /// read ([`Error::UnsupportedFormatVersion`]). Older versions are upgraded in memory;
    /// [`format_version`](Self::format_version) still says which version the file was.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let format = |detail: String| Error::Format {
            path: path.to_owned(),
            detail,
        };
        #[derive(Deserialize)]
        struct VersionProbe {
            format_version: u32,
        }
        let probe: VersionProbe =
            serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
        let found = probe.format_version;
        if !(MIN_MODEL_FORMAT_VERSION..=MODEL_FORMAT_VERSION).contains(&found) {
            return Err(Error::UnsupportedFormatVersion {
                path: path.to_owned(),
                found,
                min: MIN_MODEL_FORMAT_VERSION,
                max: MODEL_FORMAT_VERSION,
            });
        }
        let mut model: Self = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
        model.check_consistent().map_err(format)?;
        model.file_format_version = found;
        model.format_version = MODEL_FORMAT_VERSION;
        Ok(model)
    }

    /// [`load`](Self::load), then [`ensure_schema`](Self::ensure_schema): the one call a
    /// detector needs.
    pub fn load_for_schema(path: &Path, expected: &FeatureSchema) -> Result<Self> {
        let model = Self::load(path)?;
        model.ensure_schema(expected)?;
        Ok(model)
    }

    /// Cross-field checks serde cannot express.
    fn check_consistent(&self) -> Result<(), String> {
        let n = self.schema.len();
        if self.forest.n_features() != n || self.baselines.len() != n {
            return Err(format!(
                "schema has {n} features but the forest has {} and the baselines {}",
                self.forest.n_features(),
                self.baselines.len()
            ));
        }
        if let Some(scaler) = &self.preprocess.scaler {
            scaler.check(n)?;
        }
        if let Some(g) = self.group_baselines.iter().find(|g| g.features.len() != n) {
            return Err(format!(
                "group {} has {} baselines for {n} features",
                g.group,
                g.features.len()
            ));
        }
        if self
            .group_baselines
            .windows(2)
            .any(|w| w[0].group >= w[1].group)
        {
            return Err("group baselines are not sorted by distinct group names".into());
        }
        if !self.threshold.is_finite() {
            return Err("threshold is not a finite number".into());
        }
        Ok(())
    }

    /// Fails with [`Error::SchemaMismatch`] unless the model was trained on `expected`.
    pub fn ensure_schema(&self, expected: &FeatureSchema) -> Result<()> {
        if self.schema == *expected {
            return Ok(());
        }
        Err(Error::SchemaMismatch {
            expected_id: expected.id.clone(),
            expected_features: expected.features.clone(),
            found_id: self.schema.id.clone(),
            found_features: self.schema.features.clone(),
        })
    }

    /// Anomaly scores of raw feature rows (preprocessing is applied here). Batches of
    /// [`PARALLEL_MIN_ROWS`] rows or more are preprocessed and scored in parallel.
    pub fn score(&self, x: ArrayView2<f32>) -> Result<Array1<f32>> {
        self.forest.check_columns(x.ncols())?;
        let score_chunk = |chunk: ArrayView2<f32>| -> Result<Array1<f32>> {
            self.forest
                .score_serial(self.preprocess.apply(chunk).view())
        };
        if x.nrows() < PARALLEL_MIN_ROWS || rayon::current_num_threads() < 2 {
            return score_chunk(x);
        }
        let chunks: Vec<ArrayView2<f32>> = x.axis_chunks_iter(Axis(0), 1024).collect();
        let parts = chunks
            .into_par_iter()
            .map(score_chunk)
            .collect::<Result<Vec<_>>>()?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Anomaly score of one raw row; NaN if it has the wrong number of values.
    pub fn score_row(&self, raw: &[f32]) -> f32 {
        self.forest.score_row(&self.preprocess.apply_row(raw))
    }

    /// Per-feature explanation of one raw row against the overall baselines, largest
    /// contribution first.
    pub fn explain(&self, raw: &[f32]) -> Vec<FeatureExplanation> {
        self.explain_in_group(raw, None)
    }

    /// [`explain`](Self::explain) against the baselines of the row's peer group, where
    /// the model has them (see [`train_grouped`](Self::train_grouped)); otherwise against
    /// the overall ones. Each explanation says which baseline it used.
    pub fn explain_in_group(&self, raw: &[f32], group: Option<&str>) -> Vec<FeatureExplanation> {
        let contributions = self.forest.explain_row(&self.preprocess.apply_row(raw));
        let group = group.and_then(|g| self.group_baselines(g));
        let baselines = group.map_or(&self.baselines[..], |g| &g.features);
        let mut out: Vec<FeatureExplanation> = baselines
            .iter()
            .zip(contributions)
            .enumerate()
            .map(|(i, (b, contribution))| FeatureExplanation {
                name: b.name.clone(),
                value: raw.get(i).copied().unwrap_or(f32::NAN),
                baseline_median: b.median,
                baseline_p99: b.p99,
                baseline_mad: b.mad,
                baseline_group: group.map(|g| g.group.clone()),
                contribution,
            })
            .collect();
        out.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        out
    }

    /// Baselines of peer group `group`, if the model kept any.
    pub fn group_baselines(&self, group: &str) -> Option<&GroupBaselines> {
        self.group_baselines
            .binary_search_by(|g| g.group.as_str().cmp(group))
            .ok()
            .map(|i| &self.group_baselines[i])
    }

    /// Every peer group with baselines of its own, sorted by name.
    pub fn groups(&self) -> &[GroupBaselines] {
        &self.group_baselines
    }

    /// Whether a score reaches the alert threshold.
    pub fn is_anomalous(&self, score: f32) -> bool {
        score >= self.threshold
    }

    /// Layout version this model saves as: [`MODEL_FORMAT_VERSION`].
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// Layout version of the file this model was loaded from (older files are upgraded in
    /// memory and saved in the current layout).
    pub fn file_format_version(&self) -> u32 {
        self.file_format_version
    }

    /// `iforest-` (extended forests: `eiforest-`) plus 12 hex digits of a hash of the
    /// schema, preprocessing and forest: names the model in alerts, and changes whenever
    /// the scores could.
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    pub fn schema(&self) -> &FeatureSchema {
        &self.schema
    }

    pub fn transform(&self) -> Transform {
        self.preprocess.transform
    }

    /// Transform and scaler, as applied before the forest.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocess
    }

    pub fn params(&self) -> &IsolationForestValidParams {
        &self.params
    }

    /// Axis-parallel or extended.
    pub fn algorithm(&self) -> Algorithm {
        self.forest.algorithm()
    }

    pub fn forest(&self) -> &IsolationForest {
        &self.forest
    }

    /// Scores at or above this are anomalous.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn baselines(&self) -> &[FeatureBaseline] {
        &self.baselines
    }

    pub fn training(&self) -> &TrainingSummary {
        &self.training
    }

    /// Labelled validation results, if recorded.
    pub fn metrics(&self) -> Option<&ValidationMetrics> {
        self.metrics.as_ref()
    }
}

/// Training and held-out row indices (both ascending). The hold-out is a seeded random
/// subset, so the same data and seed hold out the same rows.
fn split_holdout(rows: usize, fraction: f32, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let held = (rows as f64 * f64::from(fraction)).floor() as usize;
    if held == 0 {
        return Ok(((0..rows).collect(), Vec::new()));
    }
    if rows - held < 2 {
        return Err(Error::TooFewRows {
            min: 2 + held,
            found: rows,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::MAX); // not a tree's stream
    let mut holdout = rand::seq::index::sample(&mut rng, rows, held).into_vec();
    holdout.sort_unstable();
    let mut is_held = vec![false; rows];
    holdout.iter().for_each(|&r| is_held[r] = true);
    let train = (0..rows).filter(|&r| !is_held[r]).collect();
    Ok((train, holdout))
}

fn baselines(schema: &FeatureSchema, raw: ArrayView2<f32>) -> Vec<FeatureBaseline> {
    schema
        .features
        .iter()
        .zip(raw.columns())
        .map(|(name, column)| {
            let sorted = stats::sorted(column.iter().copied());
            let (median, mad) = stats::median_mad(&sorted);
            FeatureBaseline {
                name: name.clone(),
                median,
                mad,
                p99: stats::quantile(&sorted, 0.99),
            }
        })
        .collect()
}

/// Baselines per group with at least `min_rows` rows, sorted by group name.
fn group_baselines(
    schema: &FeatureSchema,
    raw: ArrayView2<f32>,
    groups: &[&str],
    min_rows: usize,
) -> Vec<GroupBaselines> {
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (row, group) in groups.iter().enumerate() {
        members.entry(group).or_default().push(row);
    }
    members
        .into_iter()
        .filter(|(_, rows)| rows.len() >= min_rows.max(1))
        .map(|(group, rows)| GroupBaselines {
            group: group.to_owned(),
            rows: rows.len() as u64,
            features: baselines(schema, raw.select(Axis(0), &rows).view()),
        })
        .collect()
}

fn summarise(sorted_scores: &[f32]) -> TrainingSummary {
    let q = |p| stats::quantile(sorted_scores, p);
    TrainingSummary {
        rows: sorted_scores.len() as u64,
        score_p50: q(0.5),
        score_p90: q(0.9),
        score_p99: q(0.99),
        score_p999: q(0.999),
        score_max: q(1.0),
        holdout: None,
    }
}

fn model_version(
    schema: &FeatureSchema,
    preprocess: &Preprocessor,
    forest: &IsolationForest,
) -> String {
    let mut hasher = Fnv1a64::default();
    // Cannot fail: the writer never errors and these types have no non-string map keys.
    let _ = serde_json::to_writer(&mut hasher, &(schema, preprocess, forest));
    let hex = format!("{:016x}", hasher.0);
    let prefix = match forest.algorithm() {
        Algorithm::Standard => "iforest",
        Algorithm::Extended => "eiforest",
    };
    format!("{prefix}-{}", &hex[..12])
}
/// FNV-1a, 64 bit: tiny and stable across builds, unlike std's randomly seeded hasher.
#[derive(Debug)]
struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl io::Write for Fnv1a64 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `bytes` to a sibling temp file, syncs it, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn schema(id: &str, features: &[&str]) -> FeatureSchema {
        FeatureSchema::new(id, features.iter().copied())
    }

    /// Count-like traffic: three non-negative integer features around 20.
    fn traffic(rows: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((rows, 3), || {
            // Box-Muller normal, scaled and rounded to a count.
            let u1: f32 = rng.random::<f32>().max(1e-6);
            let u2: f32 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            (20.0 + 5.0 * z).round().max(0.0)
        })
    }

    fn options() -> TrainOptions {
        TrainOptions {
            params: IsolationForestParams::default().n_trees(50),
            ..TrainOptions::new("2024-01-02T03:04:05Z")
        }
    }

    fn trained(seed: u64) -> (TrainedModel, Array2<f32>) {
        let x = traffic(2000, seed);
        let model = TrainedModel::train(schema("s-v1", &["a", "b", "c"]), x.view(), &options());
        (model.unwrap(), x)
    }

    #[test]
    fn train_fills_in_the_file_fields() {
        let (m, x) = trained(1);
        assert_eq!(m.format_version(), MODEL_FORMAT_VERSION);
        assert_eq!(m.created_at(), "2024-01-02T03:04:05Z");
        assert_eq!(m.transform(), Transform::Log1p);
        assert_eq!(m.params().n_trees(), 50);
        assert_eq!(m.training().rows, 2000);
        let v = m.model_version();
        assert!(v.starts_with("iforest-") && v.len() == 20, "{v}");
        assert!(v[8..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(trained(1).0.model_version(), v);
        let other = TrainOptions {
            params: options().params.seed(7),
            ..options()
        };
        let m2 = TrainedModel::train(m.schema().clone(), x.view(), &other).unwrap();
        assert_ne!(m2.model_version(), v);
        let t = m.training();
        assert!(t.score_p50 <= t.score_p90 && t.score_p99 <= t.score_p999);
        assert!(t.score_p999 <= t.score_max && t.score_max <= 1.0);
    }

    #[test]
    fn baselines_use_raw_values() {
        let x = Array2::from_shape_fn(
            (101, 2),
            |(r, c)| if c == 0 { r as f32 * 10.0 } else { 5.0 },
        );
        let m = TrainedModel::train(schema("s", &["a", "b"]), x.view(), &options()).unwrap();
        let b = &m.baselines()[0];
        assert_eq!((b.name.as_str(), b.median, b.mad), ("a", 500.0, 250.0));
        assert!((b.p99 - 990.0).abs() < 1e-3);
        assert_eq!((m.baselines()[1].median, m.baselines()[1].mad), (5.0, 0.0));
    }

    #[test]
    fn transform_is_log1p_of_the_positive_part() {
        let t = Transform::Log1p;
        assert_eq!(t.apply(0.0), 0.0);
        assert_eq!(t.apply(-5.0), 0.0);
        assert_eq!(t.apply(f32::NAN), 0.0);
        assert_eq!(Transform::Identity.apply(-5.0), -5.0);
        assert_eq!(
            serde_json::to_string(&Transform::Identity).unwrap(),
            "\"none\""
        );
        assert!((t.apply(std::f32::consts::E - 1.0) - 1.0).abs() < 1e-6);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"log1p\"");
    }

    #[test]
    fn threshold_respects_quantile_and_floor() {
        let x = traffic(3000, 2);
        for q in [0.99_f32, 0.999] {
            let opts = TrainOptions {
                threshold_quantile: q,
                threshold_floor: 0.0,
                ..options()
            };
            let m = TrainedModel::train(schema("s", &["a", "b", "c"]), x.view(), &opts).unwrap();
            let scores = m.score(x.view()).unwrap();
            let above = scores.iter().filter(|&&s| m.is_anomalous(s)).count() as f32;
            let tolerance = 1.0 / 3000.0 + 1e-6;
            assert!(
                above / 3000.0 <= (1.0 - q) + tolerance,
                "q={q}: {above} rows above"
            );
            assert!(above >= 1.0, "the top score must reach the threshold");
        }
        let opts = TrainOptions {
            threshold_floor: 0.95,
            ..options()
        };
        let m = TrainedModel::train(schema("s", &["a", "b", "c"]), x.view(), &opts).unwrap();
        assert_eq!(m.threshold(), 0.95);
        assert!(
            TrainedModel::train(schema("s", &["a", "b", "c"]), x.view(), &options())
                .unwrap()
                .threshold()
                >= 0.5
        );
    }

    #[test]
    fn train_rejects_bad_input() {
        let s = schema("s", &["a", "b", "c"]);
        let err = TrainedModel::train(s.clone(), Array2::zeros((10, 2)).view(), &options());
        assert!(matches!(
            err,
            Err(Error::DimensionMismatch {
                expected: 3,
                found: 2
            })
        ));
        let err = TrainedModel::train(s.clone(), Array2::zeros((0, 3)).view(), &options());
        assert!(matches!(err, Err(Error::EmptyDataset)));
        let mut x = traffic(10, 1);
        x[[4, 1]] = f32::NEG_INFINITY;
        let err = TrainedModel::train(s.clone(), x.view(), &options());
        assert!(matches!(err, Err(Error::NonFinite { row: 4, column: 1 })));
        let bad = TrainOptions {
            threshold_quantile: 1.5,
            ..options()
        };
        let err = TrainedModel::train(s.clone(), traffic(10, 1).view(), &bad);
        assert!(matches!(err, Err(Error::InvalidParams(_))));
        let bad = TrainOptions {
            params: options().params.n_trees(0),
            ..options()
        };
        let err = TrainedModel::train(s, traffic(10, 1).view(), &bad);
        assert!(matches!(err, Err(Error::InvalidParams(_))));
    }

    #[test]
    fn save_load_round_trip_scores_identically() {
        let (m, x) = trained(3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        m.save(&path).unwrap();
        m.save(&path).unwrap(); // overwriting works too
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![OsString::from("model.json")],
            "temp file left behind"
        );
        let loaded = TrainedModel::load(&path).unwrap();
        assert_eq!(loaded, m);
        let bits = |m: &TrainedModel| -> Vec<u32> {
            m.score(x.view())
                .unwrap()
                .iter()
                .map(|s| s.to_bits())
                .collect()
        };
        assert_eq!(bits(&loaded), bits(&m));
        let row = [3.0, 900.0, 1.0];
        assert_eq!(
            loaded.score_row(&row).to_bits(),
            m.score_row(&row).to_bits()
        );
        assert_eq!(loaded.explain(&row), m.explain(&row));
    }

    #[test]
    fn load_reports_io_and_format_errors_with_the_path() {
        let (m, _) = trained(4);
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        assert!(matches!(
            TrainedModel::load(&missing),
            Err(Error::Io { .. })
        ));

        let path = dir.path().join("model.json");
        let mut json = serde_json::to_value(&m).unwrap();
        json["format_version"] = 99.into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let err = TrainedModel::load(&path).unwrap_err();
        assert!(matches!(
            &err,
            Error::UnsupportedFormatVersion { path: p, found: 99, min: 1, max: MODEL_FORMAT_VERSION }
                if *p == path
        ));
        let msg = err.to_string();
        // Names the file, both versions and what to do.
        for needle in [
            "model.json",
            "version 99",
            "versions 1 to 2",
            "newer outrider",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
        }
        json["format_version"] = 0.into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let msg = TrainedModel::load(&path).unwrap_err().to_string();
        assert!(
            msg.contains("version 0") && msg.contains("retrain"),
            "{msg}"
        );

        let full = serde_json::to_vec(&m).unwrap();
        fs::write(&path, &full[..full.len() / 2]).unwrap();
        let err = TrainedModel::load(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Format { path: p, .. } if *p == path),
            "{err}"
        );

        // Well-formed JSON whose parts disagree is refused too.
        let mut json = serde_json::to_value(&m).unwrap();
        json["baselines"].as_array_mut().unwrap().pop();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(matches!(
            TrainedModel::load(&path),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn schema_mismatch_names_both_ids_and_the_differing_feature() {
        let (m, _) = trained(5);
        m.ensure_schema(&schema("s-v1", &["a", "b", "c"])).unwrap();
        let err = m
            .ensure_schema(&schema("s-v2", &["a", "b", "d"]))
            .unwrap_err();
        assert!(matches!(&err, Error::SchemaMismatch { found_id, .. } if found_id == "s-v1"));
        let msg = err.to_string();
        for needle in [
            "`s-v1`",
            "`s-v2`",
            "only in the model: c",
            "only in the detector: d",
            "outrider train",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
        }
        let msg = m
            .ensure_schema(&schema("s-v1", &["b", "a", "c"]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("different order"), "{msg}");
    }

    #[test]
    fn explain_is_sorted_and_flags_the_odd_feature() {
        let (m, _) = trained(6);
        let ex = m.explain(&[20.0, 5000.0, 20.0]);
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[0].name, "b");
        assert_eq!(ex[0].value, 5000.0);
        assert_eq!(ex[0].baseline_median, m.baselines()[1].median);
        assert!(ex
            .windows(2)
            .all(|w| w[0].contribution >= w[1].contribution));
        assert!((ex.iter().map(|e| e.contribution).sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(m.is_anomalous(m.score_row(&[20.0, 5000.0, 20.0])));
        assert!(!m.is_anomalous(m.score_row(&[20.0, 20.0, 20.0])));
    }

    #[test]
    fn score_checks_columns() {
        let (m, _) = trained(7);
        let err = m.score(Array2::zeros((2, 4)).view()).unwrap_err();
        assert!(matches!(
            err,
            Error::DimensionMismatch {
                expected: 3,
                found: 4
            }
        ));
        assert!(m.score_row(&[1.0]).is_nan());
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        let hash = |s: &[u8]| {
            let mut h = Fnv1a64::default();
            h.write_all(s).unwrap();
            h.0
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn options_choose_transform_scaling_and_algorithm() {
        let x = traffic(1500, 9);
        let opts = TrainOptions {
            params: options().params.extended(None),
            transform: Transform::Identity,
            scaling: Scaling::Standard,
            ..options()
        };
        let m = TrainedModel::train(schema("s", &["a", "b", "c"]), x.view(), &opts).unwrap();
        assert_eq!(m.algorithm(), Algorithm::Extended);
        assert!(
            m.model_version().starts_with("eiforest-"),
            "{}",
            m.model_version()
        );
        assert_eq!(m.transform(), Transform::Identity);
        let scaler = m.preprocessor().scaler.as_ref().unwrap();
        assert_eq!(scaler.method, Scaling::Standard);
        // Raw counts around 20 with spread 5: the scaler centres on about 20.
        assert!((scaler.offsets[1] - 20.0).abs() < 1.0, "{scaler:?}");
        // Scores go through the same preprocessing as training.
        let row = [20.0, 60.0, 20.0];
        let manual = m.forest().score_row(&m.preprocessor().apply_row(&row));
        assert_eq!(m.score_row(&row).to_bits(), manual.to_bits());
        // A different scaling is a different model.
        let robust = TrainOptions {
            scaling: Scaling::Robust,
            ..opts.clone()
        };
        let m2 = TrainedModel::train(m.schema().clone(), x.view(), &robust).unwrap();
        assert_ne!(m2.model_version(), m.model_version());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["transform"], "none");
        assert_eq!(json["scaler"]["method"], "standard");
        assert_eq!(json["params"]["algorithm"], "extended");
    }

    #[test]
    fn batch_scores_equal_row_scores_for_large_batches() {
        let (m, _) = trained(10);
        let x = traffic(PARALLEL_MIN_ROWS + 77, 11);
        let batch = m.score(x.view()).unwrap();
        for (i, row) in x.rows().into_iter().enumerate().step_by(97) {
            assert_eq!(
                batch[i].to_bits(),
                m.score_row(row.as_slice().unwrap()).to_bits()
            );
        }
        assert_eq!(batch.len(), x.nrows());
    }

    #[test]
    fn holdout_shows_how_the_threshold_generalises() {
        let x = traffic(4000, 12);
        let opts = TrainOptions {
            validation_fraction: 0.25,
            threshold_quantile: 0.99,
            threshold_floor: 0.0,
            ..options()
        };
        let m = TrainedModel::train(schema("s", &["a", "b", "c"]), x.view(), &opts).unwrap();
        assert_eq!(m.training().rows, 3000);
        let h = m.training().holdout.as_ref().unwrap();
        assert_eq!(h.rows, 1000);
        // Same distribution: about 1 % of held-out rows alert, as on the training rows.
        assert!((0.002..0.03).contains(&h.alert_rate), "{h:?}");
        assert!(h.score_p50 <= h.score_p99 && h.score_p99 <= h.score_max);
        // Deterministic for a seed.
        let again = TrainedModel::train(m.schema().clone(), x.view(), &opts).unwrap();
        assert_eq!(again, m);
        let bad = TrainOptions {
            validation_fraction: 1.0,
            ..opts
        };
        let err = TrainedModel::train(m.schema().clone(), x.view(), &bad).unwrap_err();
        assert!(matches!(err, Error::InvalidParams(_)), "{err}");
    }

    #[test]
    fn evaluate_measures_labelled_rows_and_is_stored() {
        let (mut m, _) = trained(13);
        let mut x = traffic(500, 14);
        let mut labels = vec![false; 500];
        for (i, label) in labels.iter_mut().enumerate().take(10) {
            x[[i, i % 3]] = 4000.0;
            *label = true;
        }
        let metrics = m.evaluate(x.view(), &labels, "synthetic").unwrap();
        assert_eq!((metrics.rows, metrics.anomalies), (500, 10));
        assert!(metrics.roc_auc.unwrap() > 0.99, "{metrics:?}");
        assert!(metrics.pr_auc.unwrap() > 0.9, "{metrics:?}");
        assert_eq!(metrics.recall, Some(1.0));
        assert!(metrics.false_alert_rate.unwrap() < 0.02, "{metrics:?}");
        assert!(m.evaluate(x.view(), &labels[..3], "").is_err());
        let version = m.model_version().to_owned();
        m.record_metrics(metrics.clone());
        assert_eq!(m.model_version(), version);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        m.save(&path).unwrap();
        // serde_json reads f64 to within an ulp, not always exactly.
        let loaded = TrainedModel::load(&path).unwrap();
        let back = loaded.metrics().unwrap();
        assert_eq!(
            (back.rows, back.alerts, &back.dataset),
            (500, metrics.alerts, &metrics.dataset)
        );
        assert!((back.pr_auc.unwrap() - metrics.pr_auc.unwrap()).abs() < 1e-12);
    }

    #[test]
    fn group_baselines_explain_against_the_peer_group() {
        // Service clients make ten times the calls of users.
        let mut x = traffic(2000, 15);
        let groups: Vec<&str> = (0..2000)
            .map(|i| if i % 4 == 0 { "client" } else { "sub" })
            .collect();
        for (mut row, g) in x.rows_mut().into_iter().zip(&groups) {
            if *g == "client" {
                row[0] *= 10.0;
            }
        }
        groups.iter().take(3).for_each(|g| assert!(!g.is_empty()));
        let mut tiny: Vec<&str> = groups.clone();
        tiny[1] = "session"; // one row: below min_group_rows
        let s = schema("s", &["a", "b", "c"]);
        let m = TrainedModel::train_grouped(s.clone(), x.view(), &tiny, &options()).unwrap();
        let names: Vec<&str> = m.groups().iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["client", "sub"]);
        let client = m.group_baselines("client").unwrap();
        assert_eq!(client.rows, 500);
        assert!(
            (client.features[0].median - 200.0).abs() < 15.0,
            "{client:?}"
        );
        let sub = m.group_baselines("sub").unwrap();
        assert!((sub.features[0].median - 20.0).abs() < 2.0, "{sub:?}");
        let row = [200.0, 20.0, 20.0];
        let by_group = m.explain_in_group(&row, Some("client"));
        let a = by_group.iter().find(|e| e.name == "a").unwrap();
        assert_eq!(a.baseline_group.as_deref(), Some("client"));
        assert_eq!(a.baseline_median, client.features[0].median);
        // Unknown and too-small groups use the overall baselines, and say so.
        for group in [Some("session"), Some("nobody"), None] {
            let e = m.explain_in_group(&row, group);
            let a = e.iter().find(|e| e.name == "a").unwrap();
            assert_eq!(a.baseline_group, None);
            assert_eq!(a.baseline_median, m.baselines()[0].median);
        }
        // Contributions do not depend on the baseline shown.
        let plain = m.explain(&row);
        let contributions = |e: &[FeatureExplanation]| -> Vec<(String, u32)> {
            e.iter()
                .map(|e| (e.name.clone(), e.contribution.to_bits()))
                .collect()
        };
        assert_eq!(contributions(&plain), contributions(&by_group));
        // Round trip, and a corrupt group is refused on load.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        m.save(&path).unwrap();
        assert_eq!(TrainedModel::load(&path).unwrap(), m);
        let mut json = serde_json::to_value(&m).unwrap();
        json["group_baselines"][0]["features"]
            .as_array_mut()
            .unwrap()
            .pop();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let msg = TrainedModel::load(&path).unwrap_err().to_string();
        assert!(msg.contains("group client"), "{msg}");
        let err = TrainedModel::train_grouped(s, x.view(), &groups[..5], &options()).unwrap_err();
        assert!(matches!(err, Error::InvalidParams(_)));
    }

    #[test]
    fn load_for_schema_checks_both() {
        let (m, _) = trained(16);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        m.save(&path).unwrap();
        assert!(TrainedModel::load_for_schema(&path, m.schema()).is_ok());
        let err = TrainedModel::load_for_schema(&path, &schema("s-v9", &["a"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`s-v1`") && msg.contains("`s-v9`"), "{msg}");
    }
}
