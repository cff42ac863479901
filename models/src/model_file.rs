//! The model file: a trained forest plus everything a detector needs to use and explain it
//! (schema, transform, threshold, baselines), as versioned JSON.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::isolation_forest::{
    check_finite, IsolationForest, IsolationForestParams, IsolationForestValidParams,
};
use crate::schema::FeatureSchema;
use crate::stats;

/// Version of the model file layout; `load` refuses any other.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// Per-feature transform applied before training and scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `v -> ln(1 + max(v, 0))`: counts and byte totals are heavy-tailed, and the log keeps
    /// one huge value from stretching every split range. NaN maps to 0.
    #[default]
    Log1p,
}

impl Transform {
    /// Transforms one raw feature value.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Self::Log1p => v.max(0.0).ln_1p(),
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

/// Distribution of the anomaly scores of the training rows, for sanity-checking a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub rows: u64,
    pub score_p50: f32,
    pub score_p90: f32,
    pub score_p99: f32,
    pub score_p999: f32,
    pub score_max: f32,
}

/// One feature's part in a score: its raw value against the training baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureExplanation {
    pub name: String,
    pub value: f32,
    pub baseline_median: f32,
    pub baseline_p99: f32,
    /// Share of the isolation credited to this feature; all contributions sum to 1 (or 0).
    pub contribution: f32,
}

/// How to train a [`TrainedModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub params: IsolationForestParams,
    /// Quantile of the training scores used as the alert threshold.
    pub threshold_quantile: f32,
    /// Lowest allowed threshold: on very clean data the quantile can fall among normal
    /// scores (about 0.5), which would alert constantly.
    pub threshold_floor: f32,
    /// Creation timestamp recorded in the file; passed in so training stays deterministic.
    pub created_at: String,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            params: IsolationForestParams::default(),
            threshold_quantile: 0.999,
            threshold_floor: 0.5,
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
        if !in_unit(self.threshold_quantile) {
            return Err(Error::InvalidParams(format!(
                "threshold_quantile must be in [0, 1], got {}",
                self.threshold_quantile
            )));
        }
        if !in_unit(self.threshold_floor) {
            return Err(Error::InvalidParams(format!(
                "threshold_floor must be in [0, 1], got {}",
                self.threshold_floor
            )));
        }
        self.params.check()
    }
}

/// A trained model as stored in a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    format_version: u32,
    model_version: String,
    created_at: String,
    schema: FeatureSchema,
    transform: Transform,
    params: IsolationForestValidParams,
    forest: IsolationForest,
    threshold: f32,
    baselines: Vec<FeatureBaseline>,
    training: TrainingSummary,
}

impl TrainedModel {
    /// Trains on raw feature rows `x` (columns in `schema` order): transforms, fits the
    /// forest, and sets the threshold to `max(floor, quantile of the training scores)`.
    pub fn train(schema: FeatureSchema, x: ArrayView2<f32>, opts: &TrainOptions) -> Result<Self> {
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
        let transform = Transform::Log1p;
        let xt = x.mapv(|v| transform.apply(v));
        let forest = params.fit(xt.view())?;
        let scores = stats::sorted(forest.score(xt.view())?);
        let threshold = stats::quantile(&scores, opts.threshold_quantile).max(opts.threshold_floor);
        let baselines = baselines(&schema, x);
        let model_version = model_version(&schema, &forest);
        Ok(Self {
            format_version: MODEL_FORMAT_VERSION,
            model_version,
            created_at: opts.created_at.clone(),
            schema,
            transform,
            params,
            forest,
            threshold,
            baselines,
            training: summarise(&scores),
        })
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

    /// Reads a model file, refusing corrupt files and unknown format versions.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&bytes).map_err(|detail| Error::Format {
            path: path.to_owned(),
            detail,
        })
    }

    fn from_json(bytes: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct VersionProbe {
            format_version: u32,
        }
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if probe.format_version != MODEL_FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (this build reads version \
                 {MODEL_FORMAT_VERSION}): retrain with `outrider train` or upgrade outrider",
                probe.format_version
            ));
        }
        let model: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        model.check_consistent()?;
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

    /// Anomaly scores of raw feature rows (the transform is applied here).
    pub fn score(&self, x: ArrayView2<f32>) -> Result<Array1<f32>> {
        self.forest.check_columns(x.ncols())?;
        let xt = x.mapv(|v| self.transform.apply(v));
        self.forest.score(xt.view())
    }

    /// Anomaly score of one raw row; NaN if it has the wrong number of values.
    pub fn score_row(&self, raw: &[f32]) -> f32 {
        self.forest.score_row(&self.transformed(raw))
    }

    /// Per-feature explanation of one raw row, largest contribution first.
    pub fn explain(&self, raw: &[f32]) -> Vec<FeatureExplanation> {
        let contributions = self.forest.explain_row(&self.transformed(raw));
        let mut out: Vec<FeatureExplanation> = self
            .baselines
            .iter()
            .zip(contributions)
            .enumerate()
            .map(|(i, (b, contribution))| FeatureExplanation {
                name: b.name.clone(),
                value: raw.get(i).copied().unwrap_or(f32::NAN),
                baseline_median: b.median,
                baseline_p99: b.p99,
                contribution,
            })
            .collect();
        out.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        out
    }

    /// Whether a score reaches the alert threshold.
    pub fn is_anomalous(&self, score: f32) -> bool {
        score >= self.threshold
    }

    fn transformed(&self, raw: &[f32]) -> Vec<f32> {
        raw.iter().map(|&v| self.transform.apply(v)).collect()
    }

    /// Layout version of the file this model came from (always [`MODEL_FORMAT_VERSION`]).
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// `iforest-` plus 12 hex digits of a hash of the forest and schema: names the model in
    /// alerts, and changes whenever either does.
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
        self.transform
    }

    pub fn params(&self) -> &IsolationForestValidParams {
        &self.params
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

fn summarise(sorted_scores: &[f32]) -> TrainingSummary {
    let q = |p| stats::quantile(sorted_scores, p);
    TrainingSummary {
        rows: sorted_scores.len() as u64,
        score_p50: q(0.5),
        score_p90: q(0.9),
        score_p99: q(0.99),
        score_p999: q(0.999),
        score_max: q(1.0),
    }
}

fn model_version(schema: &FeatureSchema, forest: &IsolationForest) -> String {
    let mut hasher = Fnv1a64::default();
    // Cannot fail: the writer never errors and these types have no non-string map keys.
    let _ = serde_json::to_writer(&mut hasher, &(schema, forest));
    let hex = format!("{:016x}", hasher.0);
    format!("iforest-{}", &hex[..12])
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
        assert!(matches!(&err, Error::Format { path: p, .. } if *p == path));
        let msg = err.to_string();
        assert!(msg.contains("model.json") && msg.contains("99"), "{msg}");

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
}
