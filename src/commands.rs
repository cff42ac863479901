//! The subcommands other than `demo`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use outrider_alerts::{Alert, AlertQuery};
use outrider_datasets::{generate as generate_traffic, AttackMix, GeneratorConfig};
use outrider_detector::{service, train as training};

use crate::config;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where the canonical JSON lines go.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Labels (one line per attack event) and campaigns are written beside the output.
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value_t = 60)]
    pub minutes: u64,
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Benign traffic only (for training).
    #[arg(long)]
    pub benign: bool,
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    let mut cfg = GeneratorConfig {
        duration_secs: args.minutes * 60,
        users: args.users,
        ..GeneratorConfig::default()
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if args.benign {
        cfg.attacks = AttackMix {
            token_replay: 0,
            bola: 0,
            credential_stuffing: 0,
        };
    }
    let dataset = generate_traffic(&cfg);
    let n = outrider_datasets::write_events_jsonl(&args.output, &dataset)?;
    let labels = args.output.with_extension("labels.jsonl");
    outrider_datasets::write_labels_jsonl(&labels, &dataset)?;
    let campaigns = args.output.with_extension("campaigns.json");
    outrider_datasets::write_campaigns_json(&campaigns, &dataset)?;
    println!(
        "wrote {n} events to {} ({} attack campaigns in {}; labels in {})",
        args.output.display(),
        dataset.campaigns.len(),
        campaigns.display(),
        labels.display()
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
    /// Benign traffic as canonical JSON lines.
    #[arg(long, short)]
    pub input: PathBuf,
    #[arg(long, short)]
    pub output: PathBuf,
    /// The detector configuration whose window settings the model is trained for.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let config = config::load(args.config.as_deref())?;
    let table = training::feature_table_from_file(&args.input, &config.source, &config.features)?;
    anyhow::ensure!(
        !table.rows.is_empty(),
        "{} holds no usable events ({} records, refused: {:?})",
        args.input.display(),
        table.records,
        table.parse_errors
    );
    let model = train_rows(&table.rows, args.seed)?;
    model.save(&args.output)?;
    println!(
        "trained {} on {} windows from {} records (refused: {:?}); threshold {:.3}; wrote {}",
        model.model_version(),
        table.rows.len(),
        table.records,
        table.parse_errors,
        model.threshold(),
        args.output.display()
    );
    Ok(())
}

pub fn train_rows(
    rows: &[outrider_features::FeatureRow],
    seed: u64,
) -> Result<outrider_models::TrainedModel> {
    let options = training::default_train_options(seed, chrono::Utc::now().to_rfc3339());
    Ok(training::train(rows, &options)?)
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
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let summary = service::run(&config, shutdown).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
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
    println!("{resolved}\nconfiguration is valid");
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
