//! Builds a pipeline from a [`Config`] and runs it beside its outbox worker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outrider_alerts::{
    AlertStore, ClickHouseStore, EmbeddedStore, Outbox, OutboxWorker, WebhookSink,
};
use outrider_ingest::dead_letter::DeadLetters;
use outrider_ingest::source::{FileSource, KafkaSource};
use serde::Serialize;

use crate::config::{Config, SourceKind, StoreKind};
use crate::error::Result;
use crate::normalize::Normalizer;
use crate::pipeline::{Pipeline, PipelineParts, PipelineStats};
use crate::train::load_model;

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub stats: PipelineStats,
    /// Decisions still waiting in the outbox (delivered later; never dropped).
    pub outbox_pending: u64,
    /// Where refused records went: a file path or a Kafka topic.
    pub dead_letters: String,
}

/// Opens the alert store the configuration names.
pub async fn open_store(config: &Config) -> Result<Arc<dyn AlertStore>> {
    Ok(match config.alerts.store {
        StoreKind::Embedded => Arc::new(EmbeddedStore::open(&config.alerts.data_dir)?),
        StoreKind::Clickhouse => {
            Arc::new(ClickHouseStore::connect(&config.alerts.clickhouse).await?)
        }
    })
}

/// Runs the detector until the source ends or `shutdown` resolves.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<RunSummary> {
    run_with_progress(config, shutdown, None).await
}

/// [`run`], publishing the pipeline's counters after every batch.
pub async fn run_with_progress(
    config: &Config,
    shutdown: impl Future<Output = ()>,
    progress: Option<tokio::sync::watch::Sender<PipelineStats>>,
) -> Result<RunSummary> {
    config.validate()?;
    let model = Arc::new(load_model(&config.model.path)?);
    tracing::info!(model = %model.model_version(), threshold = model.threshold(), "model loaded");
    let store = open_store(config).await?;
    let outbox = Arc::new(Outbox::open(&config.alerts.data_dir)?);
    let mut sinks = HashMap::new();
    for w in &config.decisions.webhooks {
        sinks.insert(w.name.clone(), Arc::new(WebhookSink::new(w.clone())?));
    }
    let targets: Vec<String> = config
        .decisions
        .webhooks
        .iter()
        .map(|w| w.name.clone())
        .collect();
    let worker = Arc::new(OutboxWorker::new(outbox.clone(), sinks));
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_task = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker
                .run(async {
                    let _ = worker_stopped.await;
                })
                .await
        }
    });

    let dead_letters = DeadLetters::open(&config.source.dead_letter, &config.dead_letter_path())?;
    let dead_letters_at = dead_letters.describe();
    let mut pipeline = Pipeline::new(PipelineParts {
        window: config.features.clone(),
        model,
        store,
        outbox: Some(outbox.clone()),
        targets,
        outbox_notify: Some(worker.notifier()),
        decisions: config.decisions.clone(),
        pipeline: config.pipeline.clone(),
        normalizer: Normalizer::new(&config.source)?,
        dead_letters,
        inventory_path: Some(config.alerts.data_dir.join("inventory.json")),
    })?;
    if let Some(tx) = progress {
        pipeline = pipeline.with_progress(tx);
    }
    let outcome = match config.source.kind {
        SourceKind::File => {
            let mut source = FileSource::open(&config.source.path).await?;
            pipeline.run(&mut source, shutdown).await
        }
        SourceKind::Kafka => {
            let mut source = KafkaSource::new(config.source.kafka.clone())?;
            pipeline.run(&mut source, shutdown).await
        }
    };
    // Stop the live worker, then deliver what is due before returning; what cannot be
    // delivered now stays in the outbox for the next run.
    let _ = stop_worker.send(());
    if let Err(e) = worker_task.await {
        tracing::error!(error = %e, "outbox worker ended abnormally");
    }
    if outcome.is_ok() && !config.decisions.webhooks.is_empty() {
        let drain = Duration::from_secs(config.decisions.drain_timeout_secs);
        match worker.drain(drain).await {
            Ok(n) => tracing::info!(delivered = n, "outbox drained"),
            Err(e) if e.is_retryable() => tracing::warn!(error = %e, "outbox not drained; kept"),
            Err(e) => return Err(e.into()),
        }
    }
    outcome?;
    Ok(RunSummary {
        stats: pipeline.stats().clone(),
        outbox_pending: outbox.pending_count()?,
        dead_letters: dead_letters_at,
    })
}
