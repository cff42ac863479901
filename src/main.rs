//! `outrider`: the command-line entry point.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod commands;
mod config;
mod demo;
mod inventory;
mod replay;
#[cfg(feature = "sql")]
mod sql;

#[derive(Debug, Parser)]
#[command(
    name = "outrider",
    version,
    about = "Out-of-band ML anomaly detection for API security"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate traffic with injected attacks, train, detect, and report: no setup needed.
    Demo(demo::DemoArgs),
    /// Write labelled synthetic traffic in any supported log format (streamed to disk).
    Generate(commands::GenerateArgs),
    /// Compute feature rows from events and write them as a labelled Parquet table.
    Features(commands::FeaturesArgs),
    /// Fit a model on benign traffic (or a labelled feature table) and write the model file.
    Train(commands::TrainArgs),
    /// Score detectors on labelled traffic: benchmark suites, generated sets, any table.
    Evaluate(commands::EvaluateArgs),
    /// Run the detector (file replay or Kafka, as configured).
    Detect(commands::DetectArgs),
    /// The APIs traffic uses: endpoints, first/last seen, counts, shadow and deprecated APIs.
    Inventory(inventory::InventoryArgs),
    /// Produce a log file's records to Kafka at a given rate (demos, load tests, backfills).
    Replay(replay::ReplayArgs),
    /// List stored alerts with their explanations.
    Alerts(commands::AlertsArgs),
    /// Run DataFusion SQL over Parquet, CSV and JSON-lines files (exports, labels, results).
    #[cfg(feature = "sql")]
    Sql(sql::SqlArgs),
    /// Measure throughput in-process (use a release build).
    Bench(bench::BenchArgs),
    /// Load and validate a configuration, then print it as resolved.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    init_tracing();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Generate(args) => commands::generate(args),
            Command::Features(args) => commands::features(args),
            Command::Train(args) => commands::train(args),
            Command::Evaluate(args) => commands::evaluate(args),
            Command::Detect(args) => commands::detect(args).await,
            Command::Alerts(args) => commands::alerts(args).await,
            Command::Replay(args) => replay::run(args).await,
            #[cfg(feature = "sql")]
            Command::Sql(args) => sql::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Inventory(args) => inventory::run(args),
            Command::CheckConfig { config } => commands::check_config(config.as_deref()),
        }
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OUTRIDER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
