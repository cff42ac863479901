//! `outrider demo`: the whole pipeline on a laptop with nothing configured.
//!
//! 1. generate benign traffic and train a model on it;
//! 2. generate fresh traffic (other users' behaviour, another seed) with injected attacks;
//! 3. replay it through the detector service (the code path that serves Kafka), storing
//!    alerts in the embedded store;
//! 4. print the alerts with their explanations and an honest scorecard.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use outrider_alerts::{Alert, AlertQuery, EmbeddedStore};
use outrider_datasets::{evaluate, generate, AttackMix, Detection, GeneratorConfig};
use outrider_detector::config::SourceKind;
use outrider_detector::{service, train as training, Config};
use outrider_features::WindowConfig;

use crate::commands::{describe_calibration, render_alert, train_rows, CalibrationArgs};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder; emptied first.
    #[arg(long, default_value = ".outrider/demo")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Benign users in each traffic set.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Minutes of benign traffic to train on.
    #[arg(long, default_value_t = 120)]
    pub train_minutes: u64,
    /// Minutes of traffic (with attacks) to detect on.
    #[arg(long, default_value_t = 60)]
    pub test_minutes: u64,
    /// Alerts printed in full.
    #[arg(long, default_value_t = 6)]
    pub show: usize,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("cannot empty {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let window = WindowConfig::default();

    let train_set = generate(&GeneratorConfig {
        seed: args.seed,
        users: args.users,
        duration_secs: args.train_minutes * 60,
        attacks: AttackMix {
            token_replay: 0,
            bola: 0,
            credential_stuffing: 0,
        },
        ..GeneratorConfig::default()
    });
    let train_events: Vec<_> = train_set.events.iter().map(|e| &e.event).collect();
    let rows = training::feature_rows(train_events.iter().copied(), &window)?;
    let (model, calibration) = train_rows(&rows, args.seed, &CalibrationArgs::default())?;
    let model_path = args.dir.join("model.json");
    model.save(&model_path)?;
    println!(
        "trained {} on {} benign events ({} windows): threshold {:.3}; {}",
        model.model_version(),
        train_set.events.len(),
        rows.len(),
        model.threshold(),
        describe_calibration(&calibration)
    );

    let test_set = generate(&GeneratorConfig {
        seed: args.seed.wrapping_mul(7919).wrapping_add(13),
        users: args.users,
        duration_secs: args.test_minutes * 60,
        start_ms: GeneratorConfig::default().start_ms + (args.train_minutes as i64) * 60_000,
        ..GeneratorConfig::default()
    });
    let events_path = args.dir.join("traffic.jsonl");
    outrider_datasets::write_events_jsonl(&events_path, &test_set)?;
    outrider_datasets::write_labels_jsonl(args.dir.join("labels.jsonl"), &test_set)?;
    println!(
        "replaying {} events ({} attack campaigns injected) from {}",
        test_set.events.len(),
        test_set.campaigns.len(),
        events_path.display()
    );

    let mut config = Config::default();
    config.source.kind = SourceKind::File;
    config.source.path = events_path;
    config.model.path = model_path;
    config.alerts.data_dir = args.dir.clone();
    config.features = window;
    let summary = service::run(&config, std::future::pending()).await?;

    let store = EmbeddedStore::open(&args.dir)?;
    let alerts = outrider_alerts::AlertStore::alerts(
        &store,
        &AlertQuery {
            limit: usize::MAX,
            ..AlertQuery::default()
        },
    )
    .await?;
    print_alerts(&alerts, args.show);
    let detections: Vec<Detection> = alerts
        .iter()
        .map(|a| Detection {
            identity_key: a.identity.clone(),
            window_start_ms: a.window_start.timestamp_millis(),
            window_end_ms: a.window_end.timestamp_millis(),
        })
        .collect();
    let slack = i64::try_from(config.features.window_secs * 1000).unwrap_or(60_000);
    let report = evaluate(&test_set.campaigns, &detections, slack);
    println!("\n{report}");
    println!(
        "records {}  refused {}  windows scored {}  alerts {}  decisions {}  ({:.1} s)",
        summary.stats.records,
        summary.stats.parse_error_total(),
        summary.stats.rows_scored,
        summary.stats.alerts,
        summary.stats.decisions,
        started.elapsed().as_secs_f64()
    );
    println!(
        "alerts are in {}: try `outrider alerts` with OUTRIDER__ALERTS__DATA_DIR={}",
        args.dir.display(),
        args.dir.display()
    );
    Ok(())
}

/// One block per identity: its strongest alert in full, and how many windows it spans.
fn print_alerts(alerts: &[Alert], show: usize) {
    let mut by_identity: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        by_identity.entry(&a.identity).or_default().push(a);
    }
    let mut groups: Vec<_> = by_identity.into_iter().collect();
    groups.sort_by(|a, b| max_score(&b.1).total_cmp(&max_score(&a.1)));
    println!(
        "\n{} alerts on {} identities; the strongest per identity:",
        alerts.len(),
        groups.len()
    );
    for (identity, group) in groups.iter().take(show) {
        let Some(top) = group.iter().max_by(|a, b| a.score.total_cmp(&b.score)) else {
            continue;
        };
        println!("\n{identity}: {} alerting window(s)", group.len());
        print!("{}", render_alert(top));
    }
    if groups.len() > show {
        println!("\n... and {} more identities", groups.len() - show);
    }
}

fn max_score(alerts: &[&Alert]) -> f64 {
    alerts.iter().map(|a| a.score).fold(0.0, f64::max)
}
