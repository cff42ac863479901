//! The benchmark suite: named scenarios with fixed seeds (`datasets/suite/*.toml`), run
//! end to end: generate the training days, compute features with the detector's own
//! extractor, train, generate the test days (other days, other identities, attack kinds
//! training never saw), score every window, and evaluate with [`crate::harness`].
//!
//! A scenario file:
//!
//! ```toml
//! name = "smoke"
//! description = "small and fast, for CI"
//! slack_secs = 60                      # campaigns widened by this when matching alerts
//!
//! [features]                           # the detector's [features] (window, hop ...)
//! window_secs = 60
//!
//! [model]                              # on top of the detector's training defaults
//! seed = 42
//! threshold_quantile = 0.9999
//! train_on = "benign"                  # or "all": also the windows of training attacks
//!
//! [train]                              # a generator configuration
//! seed = 101
//! population = 1
//! start_ms = "2026-11-02T08:00:00Z"
//! duration_secs = 3600
//! attacks = { token_replay = 0, bola = 0, credential_stuffing = 0 }
//!
//! [test]
//! seed = 202
//! population = 2
//! start_ms = "2026-11-03T08:00:00Z"
//! [[test.scenarios]]
//! kind = "ddos"
//! intensity = 0.9
//! ```
//!
//! Models plug in through [`Detector`]: [`ForestDetector`] trains Outrider's isolation
//! forest from `outrider-models`; the CLI passes the detector's own training.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use outrider_features::{FeatureExtractor, FeatureRow, WindowConfig, FEATURE_COUNT};
use outrider_models::{FeatureSchema, TrainOptions, TrainedModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generate::{AttackKind, Campaign, EventStream, GeneratorConfig, LabelledEvent};
use crate::harness::{Evaluation, PlotData, Report, ReportOptions};

/// One benchmark scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// Names the result files: letters, digits, `-` and `_`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Widens each campaign on both sides when matching alerts to it.
    #[serde(default = "default_slack_secs")]
    pub slack_secs: u64,
    #[serde(default)]
    pub features: WindowConfig,
    #[serde(default)]
    pub model: ModelConfig,
    pub train: GeneratorConfig,
    pub test: GeneratorConfig,
}

fn default_slack_secs() -> u64 {
    60
}

/// Which training windows a model learns from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainOn {
    /// Only windows no training attack touches (the detector's assumption).
    #[default]
    Benign,
    /// Every window, attacks included (unsupervised training on raw traffic).
    All,
}

/// How to train; unset values keep the detector's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub seed: u64,
    pub n_trees: Option<usize>,
    pub sample_size: Option<usize>,
    /// Quantile of the training scores used as the alert threshold.
    pub threshold_quantile: Option<f32>,
    pub train_on: TrainOn,
    /// Training windows kept (a uniform sample beyond), bounding memory on long runs.
    pub max_train_rows: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            n_trees: None,
            sample_size: None,
            threshold_quantile: None,
            train_on: TrainOn::Benign,
            max_train_rows: 400_000,
        }
    }
}

impl ModelConfig {
    /// Applies the set values to training options.
    pub fn apply(&self, mut options: TrainOptions) -> TrainOptions {
        let mut params = options.params.seed(self.seed);
        if let Some(n) = self.n_trees {
            params = params.n_trees(n);
        }
        if let Some(n) = self.sample_size {
            params = params.sample_size(n);
        }
        options.params = params;
        if let Some(q) = self.threshold_quantile {
            options.threshold_quantile = q;
        }
        options
    }
}

impl SuiteConfig {
    /// Reads and checks a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: SuiteConfig = toml::from_str(&text).map_err(|e| Error::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        cfg.check().map_err(|e| Error::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// Refuses scenarios that would not measure what a benchmark claims.
    pub fn check(&self) -> Result<()> {
        let bad = |s: String| Err(Error::Config(s));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!(
                "name {:?}: use letters, digits, - and _",
                self.name
            ));
        }
        self.train
            .check()
            .map_err(|e| Error::Config(format!("train: {e}")))?;
        self.test
            .check()
            .map_err(|e| Error::Config(format!("test: {e}")))?;
        self.features
            .check()
            .map_err(|e| Error::Config(format!("features: {e}")))?;
        if self.test.start_ms < self.train.end_ms() {
            return bad(
                "test traffic must start after the training traffic ends (separate days)".into(),
            );
        }
        if self.train.population == self.test.population {
            return bad(format!(
                "train and test use population {}: give them different ones (separate identities)",
                self.train.population
            ));
        }
        if let Some(q) = self.model.threshold_quantile {
            if !(q > 0.0 && q <= 1.0) {
                return bad(format!(
                    "model.threshold_quantile must be in (0, 1], got {q}"
                ));
            }
        }
        if self.model.max_train_rows == 0 {
            return bad("model.max_train_rows must be positive".into());
        }
        Ok(())
    }

    /// Attack kinds in the test traffic that the model never learned from.
    pub fn unseen_kinds(&self) -> Vec<AttackKind> {
        let seen = match self.model.train_on {
            TrainOn::Benign => Vec::new(),
            TrainOn::All => self.train.attack_kinds(),
        };
        self.test
            .attack_kinds()
            .into_iter()
            .filter(|k| !seen.contains(k))
            .collect()
    }
}

/// A model under evaluation.
pub trait Detector {
    /// Names the model and its settings in reports.
    fn describe(&self) -> String;
    /// Learns from training windows (rows in the feature schema's column order).
    fn fit(&mut self, x: ArrayView2<'_, f32>) -> Result<()>;
    /// One score per row; higher is more anomalous.
    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f32>>;
    /// Scores at or above this alert.
    fn threshold(&self) -> f32;
}

/// Outrider's isolation forest, trained with `outrider-models` directly.
#[derive(Debug)]
pub struct ForestDetector {
    config: ModelConfig,
    model: Option<TrainedModel>,
}

/// The feature schema the extractor computes, as model files record it.
pub fn feature_schema() -> FeatureSchema {
    FeatureSchema {
        id: outrider_features::SCHEMA_ID.to_owned(),
        features: outrider_features::schema::feature_names(),
    }
}

impl ForestDetector {
    pub fn new(config: &ModelConfig) -> Self {
        Self {
            config: config.clone(),
            model: None,
        }
    }

    /// The detector's training defaults (100 trees of 4096 rows, threshold at the
    /// 99.99th percentile of training scores), then the configured values.
    pub fn options(&self) -> TrainOptions {
        let mut options = TrainOptions::new("benchmark");
        options.params = options.params.sample_size(4096).n_trees(100);
        options.threshold_quantile = 0.9999;
        self.config.apply(options)
    }

    pub fn model(&self) -> Option<&TrainedModel> {
        self.model.as_ref()
    }
}

impl Detector for ForestDetector {
    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "isolation forest ({} trees of {} rows, seed {}), threshold at the {} quantile of training scores",
            c.n_trees.unwrap_or(100),
            c.sample_size.unwrap_or(4096),
            c.seed,
            c.threshold_quantile.unwrap_or(0.9999)
        )
    }

    fn fit(&mut self, x: ArrayView2<'_, f32>) -> Result<()> {
        let model = TrainedModel::train(feature_schema(), x, &self.options())
            .map_err(|e| Error::Model(e.to_string()))?;
        self.model = Some(model);
        Ok(())
    }

    fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f32>> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| Error::Model("score before fit".into()))?;
        model
            .score(x)
            .map(|s| s.to_vec())
            .map_err(|e| Error::Model(e.to_string()))
    }

    fn threshold(&self) -> f32 {
        self.model
            .as_ref()
            .map_or(f32::INFINITY, TrainedModel::threshold)
    }
}

/// How a phase (training or test) went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseStats {
    pub events: u64,
    pub windows: u64,
    pub campaigns: usize,
    pub seconds: f64,
}

/// What [`run_suite`] produced.
#[derive(Debug, Clone)]
pub struct SuiteRun {
    pub report: Report,
    pub plots: PlotData,
    pub train: PhaseStats,
    pub test: PhaseStats,
    /// Training windows the model learned from.
    pub train_rows: usize,
    pub campaigns: Vec<Campaign>,
}

/// What [`extract_features`] hands events and rows to.
pub trait FeatureSink {
    /// Each event, as it is observed.
    fn event(&mut self, _event: &LabelledEvent) {}
    /// Rows of windows that closed.
    fn rows(&mut self, rows: Vec<FeatureRow>) -> Result<()>;
}

/// Feeds events through the extractor (the detector's, with its batching), handing out
/// feature rows as windows close. Returns the number of events.
pub fn extract_features(
    events: impl Iterator<Item = LabelledEvent>,
    window: &WindowConfig,
    sink: &mut dyn FeatureSink,
) -> Result<u64> {
    let mut fx =
        FeatureExtractor::new(window).map_err(|e| Error::Config(format!("features: {e}")))?;
    let mut n = 0u64;
    for e in events {
        fx.observe(&e.event);
        sink.event(&e);
        n += 1;
        // Advance now and then, as the detector does per batch, so state stays bounded.
        if n % 4096 == 0 {
            if let Some(w) = fx.watermark() {
                let rows = fx.advance(w);
                if !rows.is_empty() {
                    sink.rows(rows)?;
                }
            }
        }
    }
    let rows = fx.finish();
    if !rows.is_empty() {
        sink.rows(rows)?;
    }
    Ok(n)
}

/// Keeps a uniform sample of at most `cap` training windows (reservoir sampling).
struct TrainSink {
    cap: usize,
    seen: u64,
    rng: ChaCha8Rng,
    reservoir: Vec<TrainRow>,
}

impl FeatureSink for TrainSink {
    fn rows(&mut self, rows: Vec<FeatureRow>) -> Result<()> {
        for r in rows {
            self.seen += 1;
            let row = TrainRow {
                key: r.key,
                start: r.window_start_ms,
                end: r.window_end_ms,
                values: r.values,
            };
            if self.reservoir.len() < self.cap {
                self.reservoir.push(row);
            } else {
                let j = self.rng.random_range(0..self.seen);
                if let Some(slot) = usize::try_from(j)
                    .ok()
                    .and_then(|j| self.reservoir.get_mut(j))
                {
                    *slot = row;
                }
            }
        }
        Ok(())
    }
}

/// Scores windows as they close and records them, and every event, for the harness.
struct TestSink<'a> {
    detector: &'a dyn Detector,
    evaluation: Evaluation,
}

impl FeatureSink for TestSink<'_> {
    fn event(&mut self, e: &LabelledEvent) {
        self.evaluation
            .add_event(&e.event.identity_key(), e.event.ts().millis(), e.campaign);
    }

    fn rows(&mut self, rows: Vec<FeatureRow>) -> Result<()> {
        let x = matrix(rows.iter().map(|r| &r.values))?;
        let scores = self.detector.score(x.view())?;
        for (r, s) in rows.iter().zip(scores) {
            self.evaluation
                .add_row(&r.key, r.window_start_ms, r.window_end_ms, s);
        }
        Ok(())
    }
}

/// A training window kept for fitting.
#[derive(Debug, Clone)]
struct TrainRow {
    key: Arc<str>,
    start: i64,
    end: i64,
    values: [f32; FEATURE_COUNT],
}

fn matrix<'a>(
    rows: impl ExactSizeIterator<Item = &'a [f32; FEATURE_COUNT]>,
) -> Result<Array2<f32>> {
    let n = rows.len();
    let flat: Vec<f32> = rows.flat_map(|v| v.iter().copied()).collect();
    Array2::from_shape_vec((n, FEATURE_COUNT), flat)
        .map_err(|e| Error::Model(format!("feature matrix: {e}")))
}

/// Runs a scenario end to end with `detector`; `progress` hears each step.
pub fn run_suite(
    cfg: &SuiteConfig,
    detector: &mut dyn Detector,
    progress: &mut dyn FnMut(&str),
) -> Result<SuiteRun> {
    cfg.check()?;
    // 1. Training traffic to features, sampled down to `max_train_rows` (reservoir).
    progress(&format!(
        "{}: generating {} s of training traffic for {} users and computing features",
        cfg.name, cfg.train.duration_secs, cfg.train.users
    ));
    let started = Instant::now();
    let mut sink = TrainSink {
        cap: cfg.model.max_train_rows,
        seen: 0,
        rng: ChaCha8Rng::seed_from_u64(cfg.model.seed),
        reservoir: Vec::new(),
    };
    let mut stream = EventStream::new(&cfg.train);
    let train_events = extract_features(stream.by_ref(), &cfg.features, &mut sink)?;
    let TrainSink {
        seen, reservoir, ..
    } = sink;
    let train_campaigns = stream.campaigns();
    let kept: Vec<&TrainRow> = reservoir
        .iter()
        .filter(|r| {
            cfg.model.train_on == TrainOn::All
                || !train_campaigns
                    .iter()
                    .any(|c| c.involves_key(&r.key) && c.overlaps(r.start, r.end, 0))
        })
        .collect();
    if kept.is_empty() {
        return Err(Error::Config(format!(
            "{}: the training traffic gave no windows to learn from",
            cfg.name
        )));
    }
    let train = PhaseStats {
        events: train_events,
        windows: seen,
        campaigns: train_campaigns.len(),
        seconds: started.elapsed().as_secs_f64(),
    };

    // 2. Fit.
    progress(&format!(
        "{}: training on {} of {} windows ({})",
        cfg.name,
        kept.len(),
        seen,
        detector.describe()
    ));
    let x = matrix(kept.iter().map(|r| &r.values))?;
    detector.fit(x.view())?;
    let train_rows = kept.len();
    drop(reservoir);

    // 3. Test traffic, scored window by window as they close.
    progress(&format!(
        "{}: generating {} s of test traffic for {} users and scoring every window",
        cfg.name, cfg.test.duration_secs, cfg.test.users
    ));
    let started = Instant::now();
    let mut sink = TestSink {
        detector,
        evaluation: Evaluation::new(),
    };
    let mut stream = EventStream::new(&cfg.test);
    let test_events = extract_features(stream.by_ref(), &cfg.features, &mut sink)?;
    let TestSink {
        evaluation,
        detector,
    } = sink;
    let campaigns = stream.campaigns();
    let test = PhaseStats {
        events: test_events,
        windows: evaluation.row_count() as u64,
        campaigns: campaigns.len(),
        seconds: started.elapsed().as_secs_f64(),
    };

    // 4. Evaluate.
    let slack_ms = i64::try_from(cfg.slack_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut report = evaluation.report(
        &campaigns,
        &ReportOptions {
            name: cfg.name.clone(),
            detector: detector.describe(),
            threshold: detector.threshold(),
            slack_ms,
            duration_ms: cfg.test.end_ms() - cfg.test.start_ms,
        },
    );
    report.unseen_kinds = cfg.unseen_kinds();
    let plots = evaluation.plot_data(&campaigns, slack_ms);
    Ok(SuiteRun {
        report,
        plots,
        train,
        test,
        train_rows,
        campaigns,
    })
}

/// Writes `<name>.json` (the report), `<name>.md` (its tables) and the plots
/// `<name>-scores.svg` and `<name>-pr.svg` into `dir`; returns the paths.
pub fn write_results(dir: &Path, report: &Report, plots: &PlotData) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let name = &report.name;
    let json = serde_json::to_string_pretty(report).map_err(|source| Error::Json {
        what: "report",
        source,
    })?;
    let files = [
        (dir.join(format!("{name}.json")), json + "\n"),
        (dir.join(format!("{name}.md")), report.to_markdown()),
        (
            dir.join(format!("{name}-scores.svg")),
            crate::plot::score_histogram(
                &format!("{name}: window scores"),
                &plots.benign_scores,
                &plots.attack_scores,
                report.threshold,
            ),
        ),
        (
            dir.join(format!("{name}-pr.svg")),
            crate::plot::pr_curves(
                &format!("{name}: precision-recall per attack (windows)"),
                &plots.pr_curves,
            ),
        ),
    ];
    let mut paths = Vec::new();
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "tiny"
[train]
seed = 1
population = 1
users = 40
duration_secs = 1200
attacks = { token_replay = 0, bola = 0, credential_stuffing = 0 }
[test]
seed = 2
population = 2
users = 40
duration_secs = 1200
start_ms = "2026-11-03T08:00:00Z"
"#;

    #[test]
    fn scenarios_parse_and_are_checked() {
        let cfg: SuiteConfig = toml::from_str(MINIMAL).unwrap();
        cfg.check().unwrap();
        assert_eq!(cfg.slack_secs, 60);
        assert_eq!(cfg.features, WindowConfig::default());
        assert_eq!(
            cfg.unseen_kinds(),
            [
                AttackKind::TokenReplay,
                AttackKind::Bola,
                AttackKind::CredentialStuffing
            ]
        );
        let same_day = MINIMAL.replace("2026-11-03T08:00:00Z", "2026-11-02T08:10:00Z");
        let err = toml::from_str::<SuiteConfig>(&same_day)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("separate days"), "{err}");
        let same_people = MINIMAL.replace("population = 2", "population = 1");
        let err = toml::from_str::<SuiteConfig>(&same_people)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("separate identities"), "{err}");
        let typo = MINIMAL.replace("[train]", "[train]\nuserz = 3");
        let err = toml::from_str::<SuiteConfig>(&typo).unwrap_err();
        assert!(err.to_string().contains("userz"), "{err}");
        let bad_name = MINIMAL.replace("tiny", "a/b");
        assert!(toml::from_str::<SuiteConfig>(&bad_name)
            .unwrap()
            .check()
            .is_err());
    }

    /// A detector that scores by one feature, to test the runner without a forest.
    #[derive(Debug, Default)]
    struct LoginFailures {
        fitted_rows: usize,
    }

    impl Detector for LoginFailures {
        fn describe(&self) -> String {
            "login failures".into()
        }
        fn fit(&mut self, x: ArrayView2<'_, f32>) -> Result<()> {
            self.fitted_rows = x.nrows();
            Ok(())
        }
        fn score(&self, x: ArrayView2<'_, f32>) -> Result<Vec<f32>> {
            let col = outrider_features::FeatureId::LoginFailures as usize;
            Ok(x.column(col).to_vec())
        }
        fn threshold(&self) -> f32 {
            20.0
        }
    }

    #[test]
    fn the_runner_trains_on_benign_windows_and_scores_every_test_window() {
        let cfg: SuiteConfig = toml::from_str(MINIMAL).unwrap();
        let mut detector = LoginFailures::default();
        let mut steps = Vec::new();
        let run = run_suite(&cfg, &mut detector, &mut |s| steps.push(s.to_owned())).unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(detector.fitted_rows, run.train_rows);
        assert_eq!(run.train.campaigns, 0);
        assert_eq!(run.campaigns.len(), 3);
        assert_eq!(run.report.counts.windows, run.test.windows);
        assert_eq!(run.report.counts.events, run.test.events);
        // Scoring login failures finds stuffing and nothing else.
        let found: Vec<(AttackKind, bool)> = run
            .report
            .campaigns
            .iter()
            .map(|c| (c.kind, c.detected))
            .collect();
        assert_eq!(
            found,
            [
                (AttackKind::TokenReplay, false),
                (AttackKind::Bola, false),
                (AttackKind::CredentialStuffing, true)
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let files = write_results(dir.path(), &run.report, &run.plots).unwrap();
        assert_eq!(files.len(), 4);
        let back: Report =
            serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        // Floats may differ in their last digit after a JSON round trip; the rest may not.
        assert_eq!(back.counts, run.report.counts);
        assert_eq!(back.campaigns, run.report.campaigns);
        assert_eq!(back.unseen_kinds, run.report.unseen_kinds);
        let md = std::fs::read_to_string(&files[1]).unwrap();
        assert!(
            md.contains("| credential_stuffing (unseen) | 0.5 | 1/1 |"),
            "{md}"
        );
    }
}
