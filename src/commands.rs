//! The subcommands other than `demo`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use outrider_alerts::{Alert, AlertQuery};
use outrider_datasets::{AttackMix, GeneratorConfig};
use outrider_detector::{service, train as training};

use crate::config;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where the events go: a file for one format (labels and campaigns are written
    /// beside it), a folder with `--format all`.
    #[arg(long, short)]
    pub output: PathBuf,
    /// canonical, envoy, nginx_json, nginx_combined, kong, aws_apigw, or all. Gateway
    /// formats put the token-server events in a Keycloak file beside the log.
    #[arg(long, default_value = "canonical")]
    pub format: String,
    /// A generator configuration (TOML or JSON, see `GeneratorConfig`); the flags below
    /// override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Length of the traffic (default 60 minutes).
    #[arg(long, conflicts_with_all = ["hours", "days"])]
    pub minutes: Option<u64>,
    #[arg(long, conflicts_with = "days")]
    pub hours: Option<u64>,
    #[arg(long)]
    pub days: Option<u64>,
    /// Benign users (default 300).
    #[arg(long)]
    pub users: Option<usize>,
    #[arg(long)]
    pub service_clients: Option<usize>,
    #[arg(long)]
    pub partners: Option<usize>,
    #[arg(long)]
    pub batch_jobs: Option<usize>,
    /// APIs to serve, comma-separated: bank, retail, saas.
    #[arg(long, value_delimiter = ',')]
    pub apis: Vec<outrider_datasets::ApiKind>,
    /// A few sessions a day per user with daily and weekly cycles, trips, new phones and
    /// carrier NAT, instead of dense traffic for short runs.
    #[arg(long)]
    pub realistic: bool,
    /// An attack to inject: KIND[:INTENSITY[:COUNT]], intensity from 0 (subtle) to 1
    /// (loud). Repeat for more. Kinds: token_replay, bola, credential_stuffing,
    /// brute_force, scraping, exfiltration, business_logic, ddos, parameter_tampering,
    /// multi_step, insider, compromised_client.
    #[arg(long = "attack", value_name = "KIND[:INTENSITY[:COUNT]]")]
    pub attacks: Vec<String>,
    /// Benign traffic only (for training): no classic attacks, no others.
    #[arg(long)]
    pub benign: bool,
    /// Also write the raw events, labelled, as a Parquet table.
    #[arg(long)]
    pub parquet: Option<PathBuf>,
}

/// `KIND[:INTENSITY[:COUNT]]`.
fn parse_attack(spec: &str) -> Result<outrider_datasets::AttackSpec> {
    let mut parts = spec.split(':');
    let kind = parts
        .next()
        .unwrap_or_default()
        .parse::<outrider_datasets::AttackKind>()
        .map_err(anyhow::Error::msg)?;
    let mut attack = outrider_datasets::AttackSpec::new(kind, 0.5);
    if let Some(i) = parts.next() {
        attack.intensity = i
            .parse()
            .with_context(|| format!("--attack {spec}: intensity {i:?} is not a number"))?;
    }
    if let Some(n) = parts.next() {
        attack.count = n
            .parse()
            .with_context(|| format!("--attack {spec}: count {n:?} is not a number"))?;
    }
    anyhow::ensure!(
        parts.next().is_none(),
        "--attack {spec}: expected KIND[:INTENSITY[:COUNT]]"
    );
    Ok(attack)
}

/// The generator configuration the flags describe.
fn generator_config(args: &GenerateArgs) -> Result<GeneratorConfig> {
    let mut cfg = match &args.config {
        Some(path) => GeneratorConfig::load(path)?,
        None => GeneratorConfig::default(),
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    let duration = args
        .minutes
        .map(|m| m * 60)
        .or(args.hours.map(|h| h * 3600))
        .or(args.days.map(|d| d * 86_400));
    if let Some(secs) = duration {
        cfg.duration_secs = secs;
    }
    if let Some(n) = args.users {
        cfg.users = n;
    }
    if let Some(n) = args.service_clients {
        cfg.service_clients = n;
    }
    if let Some(n) = args.partners {
        cfg.partners = n;
    }
    if let Some(n) = args.batch_jobs {
        cfg.batch_jobs = n;
    }
    if !args.apis.is_empty() {
        cfg.apis.clone_from(&args.apis);
    }
    if args.realistic {
        cfg.traffic = outrider_datasets::TrafficModel::Realistic;
    }
    for spec in &args.attacks {
        cfg.scenarios.push(parse_attack(spec)?);
    }
    if args.benign {
        anyhow::ensure!(
            args.attacks.is_empty(),
            "--benign and --attack exclude each other"
        );
        cfg.attacks = AttackMix::none();
        cfg.scenarios.clear();
    }
    cfg.check()?;
    Ok(cfg)
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    use outrider_datasets::{OutputFormat, OutputTarget};
    let cfg = generator_config(&args)?;
    let target = if args.format == "all" {
        OutputTarget::Dir {
            dir: args.output.clone(),
            formats: OutputFormat::ALL.to_vec(),
        }
    } else {
        OutputTarget::File {
            path: args.output.clone(),
            format: args.format.parse().map_err(anyhow::Error::msg)?,
        }
    };
    let started = std::time::Instant::now();
    let mut stream = outrider_datasets::EventStream::new(&cfg);
    let summary = outrider_datasets::write_stream(&mut stream, &target, args.parquet.as_deref())?;
    let secs = started.elapsed().as_secs_f64();
    let files: Vec<String> = summary
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "wrote {} events ({} gateway, {} token server) in {secs:.1} s ({:.0} events/s, at most {} held back) to {}",
        summary.events,
        summary.api_events,
        summary.token_events,
        summary.events as f64 / secs.max(1e-9),
        summary.peak_buffered,
        files.join(", ")
    );
    println!(
        "{} attack campaigns in {}; labels in {}",
        summary.campaigns.len(),
        summary.campaigns_file.display(),
        summary.labels.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Events in the configured source format (canonical JSON lines by default).
    #[arg(long, short)]
    pub input: PathBuf,
    /// The Parquet feature table to write.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Campaigns (as `outrider generate` writes them) to label the rows with.
    #[arg(long)]
    pub campaigns: Option<PathBuf>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Computes feature rows with the detector's own extractor and writes them as Parquet.
pub fn features(args: FeaturesArgs) -> Result<()> {
    let config = config::load(args.config.as_deref())?;
    let table = training::feature_table_from_file(&args.input, &config.source, &config.features)?;
    let campaigns: Vec<outrider_datasets::Campaign> = match &args.campaigns {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a campaigns file", path.display()))?
        }
        None => Vec::new(),
    };
    let n = outrider_datasets::write_features_parquet(&args.output, &table.rows, &campaigns)?;
    let labelled = outrider_datasets::label_rows(&table.rows, &campaigns)
        .iter()
        .filter(|l| l.is_some())
        .count();
    println!(
        "wrote {n} feature rows ({} features, schema {}; {labelled} rows labelled with an attack) from {} records to {} (refused: {:?})",
        outrider_features::FEATURE_COUNT,
        outrider_features::SCHEMA_ID,
        table.records,
        args.output.display(),
        table.parse_errors
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Benign traffic in the configured source format (canonical JSON lines by default).
    #[arg(
        long,
        short,
        required_unless_present = "table",
        conflicts_with = "table"
    )]
    pub input: Option<PathBuf>,
    /// Or a feature table (CSV or Parquet) with a label column: a model of its columns.
    #[arg(long, requires = "label_column")]
    pub table: Option<PathBuf>,
    /// The table's label column (0/false/benign/empty for benign rows).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Which table rows to learn from: the benign ones, or all of them.
    #[arg(long, default_value = "benign")]
    pub train_on: TrainOnArg,
    #[arg(long, short)]
    pub output: PathBuf,
    /// The detector configuration whose window settings the model is trained for.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub calibration: CalibrationArgs,
}

/// Per-API and per-peer-group thresholds, fitted on held-out identities.
#[derive(Debug, Clone, Args)]
pub struct CalibrationArgs {
    /// Share of benign windows allowed to alert, per API and per peer group.
    #[arg(long, default_value_t = 0.0001)]
    pub target_false_alert_rate: f64,
    /// Share of identities held out of training to calibrate the thresholds on.
    #[arg(long, default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Held-out windows an API or peer group needs for a threshold of its own.
    #[arg(long, default_value_t = 10_000)]
    pub min_group_windows: usize,
}

impl CalibrationArgs {
    pub fn options(&self, seed: u64) -> training::CalibrationOptions {
        training::CalibrationOptions {
            target_false_alert_rate: self.target_false_alert_rate,
            validation_fraction: self.validation_fraction,
            min_group_samples: self.min_group_windows,
            seed,
        }
    }
}

impl Default for CalibrationArgs {
    fn default() -> Self {
        let d = training::CalibrationOptions::default();
        Self {
            target_false_alert_rate: d.target_false_alert_rate,
            validation_fraction: d.validation_fraction,
            min_group_windows: d.min_group_samples,
        }
    }
}

/// One line on what calibration did.
pub fn describe_calibration(outcome: &training::CalibrationOutcome) -> String {
    match outcome {
        training::CalibrationOutcome::Calibrated {
            validation_rows,
            groups,
        } => format!(
            "calibrated on {validation_rows} windows of held-out identities: {groups} API \
             and peer-group thresholds"
        ),
        training::CalibrationOutcome::Skipped { reason } => {
            format!("not calibrated ({reason}): the global threshold applies")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainOnArg {
    Benign,
    All,
}

pub fn train(args: TrainArgs) -> Result<()> {
    if let Some(table) = &args.table {
        return train_table(table, &args);
    }
    let input = args.input.as_deref().context("give --input or --table")?;
    let config = config::load(args.config.as_deref())?;
    let table = training::feature_table_from_file(input, &config.source, &config.features)?;
    anyhow::ensure!(
        !table.rows.is_empty(),
        "{} holds no usable events ({} records, refused: {:?})",
        input.display(),
        table.records,
        table.parse_errors
    );
    let (model, calibration) = train_rows(&table.rows, args.seed, &args.calibration)?;
    model.save(&args.output)?;
    println!(
        "trained {} on {} windows from {} records (refused: {:?}); threshold {:.3}; {}; wrote {}",
        model.model_version(),
        table.rows.len(),
        table.records,
        table.parse_errors,
        model.threshold(),
        describe_calibration(&calibration),
        args.output.display()
    );
    Ok(())
}

/// A model of a feature table's columns. A table `outrider features` wrote keeps the
/// detector's schema, so the model also serves `outrider detect`.
fn train_table(path: &Path, args: &TrainArgs) -> Result<()> {
    let table = outrider_datasets::load_table(
        path,
        &outrider_datasets::TableOptions {
            label_column: args.label_column.clone(),
            ..outrider_datasets::TableOptions::default()
        },
    )?;
    let keep: Vec<usize> = match (&table.labels, args.train_on) {
        (Some(labels), TrainOnArg::Benign) => {
            (0..table.rows()).filter(|&i| labels[i].is_none()).collect()
        }
        _ => (0..table.rows()).collect(),
    };
    anyhow::ensure!(!keep.is_empty(), "{}: no rows to train on", path.display());
    let x = table.x.select(outrider_datasets::ndarray::Axis(0), &keep);
    let schema = table_schema(&table);
    let options = training::default_train_options(args.seed, chrono::Utc::now().to_rfc3339());
    let model = outrider_models::TrainedModel::train(schema, x.view(), &options)?;
    model.save(&args.output)?;
    println!(
        "trained {} on {} of {} rows ({} feature columns) of {}; threshold {:.3}; wrote {}",
        model.model_version(),
        keep.len(),
        table.rows(),
        table.columns.len(),
        path.display(),
        model.threshold(),
        args.output.display()
    );
    Ok(())
}

/// The detector's schema when the table has exactly its features, else one named after
/// the table's columns.
fn table_schema(table: &outrider_datasets::FeatureTable) -> outrider_models::FeatureSchema {
    let detector = training::feature_schema();
    if table.schema_id.as_deref() == Some(detector.id.as_str())
        && table.columns == detector.features
    {
        return detector;
    }
    outrider_models::FeatureSchema {
        id: "table".to_owned(),
        features: table.columns.clone(),
    }
}

/// Trains on feature rows and calibrates per-API thresholds on held-out identities.
pub fn train_rows(
    rows: &[outrider_features::FeatureRow],
    seed: u64,
    calibration: &CalibrationArgs,
) -> Result<(outrider_models::TrainedModel, training::CalibrationOutcome)> {
    let options = training::default_train_options(seed, chrono::Utc::now().to_rfc3339());
    Ok(training::train_calibrated(
        rows,
        &options,
        &calibration.options(seed),
    )?)
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Replay this file instead of the configured source.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
}

pub async fn detect(args: DetectArgs) -> Result<()> {
    let mut config = config::load(args.config.as_deref())?;
    if let Some(input) = args.input {
        config.source.kind = outrider_detector::config::SourceKind::File;
        config.source.path = input;
    }
    if let Some(http) = &config.http {
        eprintln!("http api on http://{} until Ctrl-C or SIGTERM", http.listen);
    }
    if let Some(ops) = &config.ops {
        eprintln!("metrics, health and readiness on http://{}", ops.listen);
    }
    let (reload, reload_requests) = outrider_detector::reload::channel();
    reload_on_sighup(reload)?;
    let options = service::RunOptions {
        reload: Some(reload_requests),
        ..service::RunOptions::default()
    };
    let summary = service::run_with(&config, options, shutdown_signal()?).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes and systemd send): the detector then
/// stops reading, finishes the batch in hand, stores and commits it, and drains the outbox.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    Ok(async move {
        #[cfg(unix)]
        let signal = tokio::select! {
            _ = tokio::signal::ctrl_c() => "ctrl-c",
            _ = term.recv() => "sigterm",
        };
        #[cfg(not(unix))]
        let signal = {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        };
        tracing::info!(signal, "shutdown signal received");
    })
}

/// SIGHUP asks the detector to reload its model file now (unix only).
fn reload_on_sighup(reload: outrider_detector::reload::ReloadHandle) -> Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("sighup: checking the model file");
                reload.request();
            }
        });
    }
    #[cfg(not(unix))]
    drop(reload);
    Ok(())
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub identity: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of a summary per alert.
    #[arg(long)]
    pub json: bool,
}

pub async fn alerts(args: AlertsArgs) -> Result<()> {
    let config = config::load(args.config.as_deref())?;
    let store = service::open_store(&config).await?;
    let query = AlertQuery {
        identity: args.identity,
        limit: args.limit,
        ..AlertQuery::default()
    };
    let alerts = store.alerts(&query).await?;
    for a in &alerts {
        if args.json {
            println!("{}", serde_json::to_string(a)?);
        } else {
            print!("{}", render_alert(a));
        }
    }
    if !args.json {
        println!(
            "{} alert(s) shown from the {} store",
            alerts.len(),
            store.name()
        );
    }
    Ok(())
}

pub fn check_config(path: Option<&Path>) -> Result<()> {
    let config = config::load(path)?;
    let resolved =
        serde_json::to_string_pretty(&config).context("cannot print the configuration")?;
    let policies = config.decisions.policies()?;
    let from = match &config.decisions.policy_file {
        Some(file) => file.display().to_string(),
        None => "built-in".to_owned(),
    };
    println!("{resolved}");
    println!(
        "decision policies ({from}): {}",
        policies.names().join(", ")
    );
    println!("configuration is valid");
    Ok(())
}

/// An alert as an analyst reads it: who, when, how sure, and why.
pub fn render_alert(a: &Alert) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[{:?}] {}  window {} .. {}  score {:.3} (threshold {:.3})  id {}",
        a.severity,
        a.identity,
        a.window_start.format("%H:%M:%S"),
        a.window_end.format("%H:%M:%S"),
        a.score,
        a.threshold,
        a.id
    );
    for f in a.features.iter().take(3) {
        let _ = writeln!(
            s,
            "    {:<26} {:>12.2}   baseline {:>10.2} (p99 {:>10.2})   weight {:.2}",
            f.name, f.value, f.baseline, f.baseline_p99, f.contribution
        );
    }
    for h in &a.rule_hits {
        let _ = writeln!(s, "    {} ({:?}): {}", h.rule, h.severity, h.reason);
    }
    if let Some(risk) = a.risk {
        let _ = writeln!(s, "    risk {risk:.4}");
    }
    let _ = writeln!(
        s,
        "    events {}  apis {:?}  ips {:?}  evidence {:?}",
        a.event_count,
        a.apis.iter().take(4).collect::<Vec<_>>(),
        a.client_ips.iter().take(4).collect::<Vec<_>>(),
        a.evidence_request_ids.iter().take(4).collect::<Vec<_>>()
    );
    s
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Benchmark scenarios to run end to end (generate, features, train, score,
    /// evaluate), e.g. `datasets/suite/standard.toml`. Repeat for more.
    #[arg(long, conflicts_with_all = ["model", "input", "table"])]
    pub suite: Vec<PathBuf>,
    /// Where reports go: `<name>.json`, `<name>.md` and two SVG plots per run.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// A model file to evaluate on `--input` or `--table`.
    #[arg(long, required_unless_present = "suite")]
    pub model: Option<PathBuf>,
    /// Labelled events in the configured source format (as `outrider generate` writes).
    #[arg(long, short, requires = "model", conflicts_with = "table")]
    pub input: Option<PathBuf>,
    /// The campaigns of `--input` (default: beside it, `<stem>.campaigns.json`).
    #[arg(long)]
    pub campaigns: Option<PathBuf>,
    /// The labels of `--input`, for event-level metrics (default: `<stem>.labels.jsonl`
    /// when it exists).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// A feature table (CSV or Parquet) with a label column, scored with `--model`.
    #[arg(long, requires_all = ["model", "label_column"])]
    pub table: Option<PathBuf>,
    #[arg(long)]
    pub label_column: Option<String>,
    /// Rows sharing this column's value are one identity (identity-level metrics).
    #[arg(long)]
    pub group_column: Option<String>,
    /// Length of the table's traffic in days, for false alerts per day (default: the span
    /// of its `window_start` and `window_end` columns, else 1).
    #[arg(long)]
    pub days: Option<f64>,
    /// Names the report (default: the input's file stem).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// The detector's own training, as the benchmark harness calls it.
#[derive(Debug)]
struct DetectorTraining {
    config: outrider_datasets::ModelConfig,
    model: Option<outrider_models::TrainedModel>,
}

impl outrider_datasets::Detector for DetectorTraining {
    fn describe(&self) -> String {
        let o = self.options();
        format!(
            "outrider isolation forest (detector defaults; seed {}, threshold quantile {})",
            self.config.seed, o.threshold_quantile
        )
    }

    fn fit(
        &mut self,
        x: outrider_datasets::ndarray::ArrayView2<'_, f32>,
    ) -> outrider_datasets::Result<()> {
        let model =
            outrider_models::TrainedModel::train(training::feature_schema(), x, &self.options())
                .map_err(|e| outrider_datasets::Error::Model(e.to_string()))?;
        self.model = Some(model);
        Ok(())
    }

    fn score(
        &self,
        x: outrider_datasets::ndarray::ArrayView2<'_, f32>,
    ) -> outrider_datasets::Result<Vec<f32>> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| outrider_datasets::Error::Model("score before fit".into()))?;
        model
            .score(x)
            .map(|s| s.to_vec())
            .map_err(|e| outrider_datasets::Error::Model(e.to_string()))
    }

    fn threshold(&self) -> f32 {
        self.model
            .as_ref()
            .map_or(f32::INFINITY, outrider_models::TrainedModel::threshold)
    }
}

impl DetectorTraining {
    fn options(&self) -> outrider_models::TrainOptions {
        // A fixed creation time keeps benchmark models reproducible.
        let base = training::default_train_options(self.config.seed, "benchmark".into());
        self.config.apply(base)
    }
}

pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    if !args.suite.is_empty() {
        for path in &args.suite {
            evaluate_suite(path, &args.out)?;
        }
        return Ok(());
    }
    let model_path = args
        .model
        .as_deref()
        .context("give --suite, or --model with --input or --table")?;
    if let Some(table) = &args.table {
        return evaluate_table(model_path, table, &args);
    }
    let input = args
        .input
        .as_deref()
        .context("give --input or --table with --model")?;
    evaluate_events(model_path, input, &args)
}

fn evaluate_suite(path: &Path, out: &Path) -> Result<()> {
    let suite = outrider_datasets::SuiteConfig::load(path)?;
    let mut detector = DetectorTraining {
        config: suite.model.clone(),
        model: None,
    };
    let started = std::time::Instant::now();
    let run = outrider_datasets::run_suite(&suite, &mut detector, &mut |step| eprintln!("{step}"))?;
    let files = outrider_datasets::write_results(out, &run.report, &run.plots)?;
    println!("{}", run.report.summary_markdown());
    println!(
        "train: {} events, {} windows ({} used) in {:.1} s; test: {} events, {} windows in {:.1} s; total {:.1} s",
        run.train.events,
        run.train.windows,
        run.train_rows,
        run.train.seconds,
        run.test.events,
        run.test.windows,
        run.test.seconds,
        started.elapsed().as_secs_f64()
    );
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", files.join(", "));
    Ok(())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("evaluation")
        .split('.')
        .next()
        .unwrap_or("evaluation")
        .to_owned()
}

/// A generated (or any labelled) traffic file scored with a model.
fn evaluate_events(model_path: &Path, input: &Path, args: &EvaluateArgs) -> Result<()> {
    use outrider_ingest::{Event, Parsed};
    let config = config::load(args.config.as_deref())?;
    let model = training::load_model(model_path)?;
    let campaigns_path = args
        .campaigns
        .clone()
        .unwrap_or_else(|| input.with_extension("campaigns.json"));
    let campaigns = outrider_datasets::read_campaigns_json(&campaigns_path)?;
    let mut events: Vec<Event> = Vec::new();
    outrider_detector::normalize::normalize_file(input, &config.source, |outcome| {
        if let Ok(Parsed::Event(e)) = outcome {
            events.push(e);
        }
    })?;
    anyhow::ensure!(
        !events.is_empty(),
        "{} holds no usable events",
        input.display()
    );
    let rows = training::feature_rows(&events, &config.features)?;
    let mut evaluation = outrider_datasets::Evaluation::new();
    for chunk in rows.chunks(65_536) {
        let flat: Vec<f32> = chunk.iter().flat_map(|r| r.values).collect();
        let x = outrider_datasets::ndarray::Array2::from_shape_vec(
            (chunk.len(), outrider_features::FEATURE_COUNT),
            flat,
        )?;
        let scores = model.score(x.view())?;
        for (r, s) in chunk.iter().zip(scores.iter()) {
            evaluation.add_row(&r.key, r.window_start_ms, r.window_end_ms, *s);
        }
    }
    let labels_path = args
        .labels
        .clone()
        .or_else(|| Some(input.with_extension("labels.jsonl")).filter(|p| p.exists()));
    if let Some(path) = labels_path {
        add_labelled_events(&mut evaluation, &events, &path)?;
    }
    let (first, last) = events.iter().fold((i64::MAX, i64::MIN), |(a, b), e| {
        let t = e.ts().millis();
        (a.min(t), b.max(t))
    });
    let name = args.name.clone().unwrap_or_else(|| stem(input));
    let slack_ms = i64::try_from(config.features.window_secs * 1000).unwrap_or(60_000);
    let report = evaluation.report(
        &campaigns,
        &outrider_datasets::ReportOptions {
            name,
            detector: format!("{} ({})", model.model_version(), model_path.display()),
            threshold: model.threshold(),
            slack_ms,
            duration_ms: (last - first).max(1),
        },
    );
    let plots = evaluation.plot_data(&campaigns, slack_ms);
    finish_report(&args.out, &report, &plots)
}

/// Pairs events with their label lines: one per event, or (a gateway log without its
/// token-server file) one per `"type":"api"` line.
fn add_labelled_events(
    evaluation: &mut outrider_datasets::Evaluation,
    events: &[outrider_ingest::Event],
    path: &Path,
) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut labels: Vec<(bool, Option<u32>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not a label line", path.display(), i + 1))?;
        let campaign = v["campaign"].as_u64().and_then(|c| u32::try_from(c).ok());
        labels.push((v["type"] == "api", campaign));
    }
    let aligned: Vec<Option<u32>> = if labels.len() == events.len() {
        labels.iter().map(|l| l.1).collect()
    } else {
        let api: Vec<Option<u32>> = labels.iter().filter(|l| l.0).map(|l| l.1).collect();
        anyhow::ensure!(
            api.len() == events.len(),
            "{}: {} label lines ({} for gateway events) do not line up with {} events",
            path.display(),
            labels.len(),
            api.len(),
            events.len()
        );
        api
    };
    for (e, campaign) in events.iter().zip(aligned) {
        evaluation.add_event(&e.identity_key(), e.ts().millis(), campaign);
    }
    Ok(())
}

/// A model's scores on a labelled feature table.
fn evaluate_table(model_path: &Path, path: &Path, args: &EvaluateArgs) -> Result<()> {
    let model = outrider_models::TrainedModel::load(model_path)?;
    let table = outrider_datasets::load_table(
        path,
        &outrider_datasets::TableOptions {
            label_column: args.label_column.clone(),
            group_column: args.group_column.clone(),
            features: model.schema().features.clone(),
            exclude: Vec::new(),
        },
    )?;
    let scores = model.score(table.x.view())?.to_vec();
    let labels = table
        .labels
        .clone()
        .unwrap_or_else(|| vec![None; table.rows()]);
    let duration_ms = match (args.days, table.span_ms) {
        (Some(d), _) => (d * 86_400_000.0) as i64,
        (None, Some((a, b))) => (b - a).max(1),
        (None, None) => 86_400_000,
    };
    let report = outrider_datasets::table_report(
        &scores,
        &labels,
        table.groups.as_deref(),
        &outrider_datasets::ReportOptions {
            name: args.name.clone().unwrap_or_else(|| stem(path)),
            detector: format!("{} ({})", model.model_version(), model_path.display()),
            threshold: model.threshold(),
            slack_ms: 0,
            duration_ms,
        },
    );
    let plots = outrider_datasets::harness::table_plot_data(&scores, &labels);
    finish_report(&args.out, &report, &plots)
}

fn finish_report(
    out: &Path,
    report: &outrider_datasets::Report,
    plots: &outrider_datasets::harness::PlotData,
) -> Result<()> {
    let files = outrider_datasets::write_results(out, report, plots)?;
    println!("{}", report.summary_markdown());
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", files.join(", "));
    Ok(())
}

#[cfg(test)]
mod datasets_cli_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn generate_args() -> GenerateArgs {
        GenerateArgs {
            output: PathBuf::from("unused"),
            format: "canonical".into(),
            config: None,
            seed: None,
            minutes: Some(10),
            hours: None,
            days: None,
            users: Some(20),
            service_clients: None,
            partners: None,
            batch_jobs: None,
            apis: Vec::new(),
            realistic: false,
            attacks: Vec::new(),
            benign: false,
            parquet: None,
        }
    }

    #[test]
    fn attack_flags_read_kind_intensity_and_count() {
        let a = parse_attack("bola:0.2:3").unwrap();
        assert_eq!(a.kind, outrider_datasets::AttackKind::Bola);
        assert_eq!((a.intensity, a.count), (0.2, 3));
        assert_eq!(parse_attack("ddos").unwrap().intensity, 0.5);
        assert!(parse_attack("dos")
            .unwrap_err()
            .to_string()
            .contains("one of"));
        assert!(parse_attack("bola:loud")
            .unwrap_err()
            .to_string()
            .contains("intensity"));
        assert!(parse_attack("bola:0.5:1:9").is_err());

        let mut args = generate_args();
        args.attacks = vec!["insider:0.9".into()];
        let cfg = generator_config(&args).unwrap();
        assert_eq!(cfg.duration_secs, 600);
        assert_eq!(cfg.users, 20);
        assert_eq!(cfg.scenarios.len(), 1);
        args.attacks = vec!["insider:1.5".into()];
        let err = generator_config(&args).unwrap_err().to_string();
        assert!(err.contains("intensity"), "{err}");
        args.attacks = vec!["insider".into()];
        args.benign = true;
        assert!(generator_config(&args).is_err());
        args.attacks.clear();
        let cfg = generator_config(&args).unwrap();
        assert!(cfg.attack_kinds().is_empty());
    }

    #[test]
    fn a_table_model_trains_on_benign_rows_and_evaluates_on_another_table() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, rows: &[(f32, f32, &str, &str)]| {
            let mut text = String::from("user,requests,errors,label\n");
            for (r, e, l, u) in rows {
                text.push_str(&format!("{u},{r},{e},{l}\n"));
            }
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let mut train_rows: Vec<(f32, f32, &str, &str)> = (0..300)
            .map(|i| (5.0 + (i % 7) as f32, (i % 3) as f32, "0", "u"))
            .collect();
        train_rows.push((900.0, 80.0, "stuffing", "x"));
        let test = vec![
            (6.0, 1.0, "benign", "alice"),
            (7.0, 0.0, "", "bob"),
            (800.0, 90.0, "stuffing", "mallory"),
            (950.0, 70.0, "stuffing", "mallory"),
        ];
        let train_path = write("train.csv", &train_rows);
        let test_path = write("test.csv", &test);
        let model = dir.path().join("model.json");
        train(TrainArgs {
            input: None,
            table: Some(train_path),
            label_column: Some("label".into()),
            train_on: TrainOnArg::Benign,
            output: model.clone(),
            config: None,
            seed: 7,
            calibration: CalibrationArgs::default(),
        })
        .unwrap();
        let loaded = outrider_models::TrainedModel::load(&model).unwrap();
        assert_eq!(loaded.schema().features, ["requests", "errors"]);
        assert_eq!(loaded.training().rows, 300, "the attack row was left out");
        let out = dir.path().join("out");
        evaluate(EvaluateArgs {
            suite: Vec::new(),
            out: out.clone(),
            model: Some(model),
            input: None,
            campaigns: None,
            labels: None,
            table: Some(test_path),
            label_column: Some("label".into()),
            group_column: Some("user".into()),
            days: Some(1.0),
            name: Some("tbl".into()),
            config: None,
        })
        .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("tbl.json")).unwrap()).unwrap();
        let rows = &report["levels"][0]["kinds"][0];
        assert_eq!(rows["kind"], "stuffing");
        assert_eq!(rows["positives"], 2);
        assert_eq!(rows["roc_auc"], 1.0);
        assert!(out.join("tbl-pr.svg").exists());
    }
}
