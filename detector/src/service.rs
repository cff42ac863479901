//! Builds a pipeline from a [`Config`] and runs it beside its outbox worker and, when
//! `[http]` is configured, the HTTP API, all stopped by one shutdown signal.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use outrider_alerts::{
    AlertStatus, AlertStore, ClickHouseStore, DecisionFeed, EmbeddedStore, HttpApi, HttpConfig,
    IncidentConfig, IncidentGrouper, IncidentQuery, Jwks, KafkaSink, Outbox, OutboxWorker,
    RevocationWatcher, SetPollQueue, SetTarget, Target, TargetConfig,
};
use outrider_ingest::dead_letter::DeadLetters;
use outrider_ingest::source::{FileSource, KafkaSource, Source};
use outrider_models::TrainedModel;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::CheckpointDir;
use crate::config::{alerts_config_error, Config, SourceKind, StoreKind};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::ops::OpsServer;
use crate::pipeline::{Pipeline, PipelineParts, PipelineStats};
use crate::reload::{ModelReloader, ReloadRequests};
use crate::train::load_model;

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub stats: PipelineStats,
    /// Decisions still waiting in the outbox (delivered later; never dropped).
    pub outbox_pending: u64,
    /// Where refused records went: a file path or a Kafka topic.
    pub dead_letters: String,
}

/// What a caller can add to a run besides the configuration.
#[derive(Default)]
pub struct RunOptions {
    /// Receives the pipeline's counters after every batch (health checks, and tests that
    /// wait for the pipeline instead of sleeping).
    pub progress: Option<watch::Sender<PipelineStats>>,
    /// Serve the HTTP API on this listener instead of binding `http.listen` (tests bind
    /// 127.0.0.1:0). Needs `[http]` in the configuration.
    pub http_listener: Option<TcpListener>,
    /// Serve `/metrics`, `/health` and `/ready` on this listener instead of binding
    /// `ops.listen`. Needs `[ops]` in the configuration.
    pub ops_listener: Option<TcpListener>,
    /// Model reload requests (SIGHUP in the CLI, tests): each checks the model file now.
    pub reload: Option<ReloadRequests>,
    /// Read this source instead of the configured one (tests, embedding).
    pub source: Option<Box<dyn Source>>,
    /// Store alerts here instead of the configured store (benchmarks that time each
    /// insert, embedding).
    pub store: Option<Arc<dyn AlertStore>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("progress", &self.progress.is_some())
            .field("http_listener", &self.http_listener)
            .field("ops_listener", &self.ops_listener)
            .field("reload", &self.reload.is_some())
            .field("source", &self.source.as_ref().map(|s| s.describe()))
            .field("store", &self.store.as_ref().map(|s| s.name()))
            .finish()
    }
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

/// Runs the detector until the source ends or `shutdown` resolves. With `[http]`, the API
/// keeps serving after a replay ends, until `shutdown`.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<RunSummary> {
    run_with(config, RunOptions::default(), shutdown).await
}

/// [`run`], publishing the pipeline's counters after every batch.
pub async fn run_with_progress(
    config: &Config,
    shutdown: impl Future<Output = ()>,
    progress: Option<watch::Sender<PipelineStats>>,
) -> Result<RunSummary> {
    let options = RunOptions {
        progress,
        ..RunOptions::default()
    };
    run_with(config, options, shutdown).await
}

/// [`run`] with [`RunOptions`].
pub async fn run_with(
    config: &Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary> {
    config.validate()?;
    let Service {
        mut pipeline,
        worker,
        outbox,
        http,
        dead_letters_at,
        mut ops,
        reloader,
        source,
    } = Service::build(config, options).await?;
    // Everything that can fail at start-up has; the background tasks start now.
    let tasks = Background::start(worker, http);
    let serves_after_replay = tasks.serves_http() || ops.serves();
    ops.start(reloader);
    let readiness = ops.metrics.clone();
    let shutdown = async move {
        shutdown.await;
        if let Some(m) = &readiness {
            m.readiness().shutdown_started();
        }
        tracing::info!("shutdown started: not ready; finishing the batch in hand");
    };
    tokio::pin!(shutdown);
    let (outcome, shutdown_seen) =
        run_pipeline(&mut pipeline, config, source, shutdown.as_mut()).await;
    if outcome.is_ok() && !shutdown_seen && serves_after_replay {
        tracing::info!("source ended; the http api and ops endpoint serve until shutdown");
        shutdown.await;
    }
    let drain = (outcome.is_ok() && !config.decisions.targets.is_empty())
        .then(|| Duration::from_secs(config.decisions.drain_timeout_secs));
    let stopped = tasks.stop(drain).await;
    let outbox_pending = outbox.pending_count();
    if outcome.is_ok() {
        tracing::info!(
            stats = ?pipeline.stats(), outbox_pending = outbox_pending.as_ref().ok(),
            "detector stopped: last batch stored, offsets committed, outbox drained"
        );
    }
    ops.stop().await;
    outcome?;
    stopped?;
    Ok(RunSummary {
        stats: pipeline.stats().clone(),
        outbox_pending: outbox_pending?,
        dead_letters: dead_letters_at,
    })
}

/// A pipeline and what runs beside it, built but not started.
struct Service {
    pipeline: Pipeline,
    worker: Arc<OutboxWorker>,
    outbox: Arc<Outbox>,
    http: Option<(HttpApi, TcpListener)>,
    dead_letters_at: String,
    ops: Ops,
    reloader: Option<PendingReloader>,
    source: Option<Box<dyn Source>>,
}

impl Service {
    async fn build(config: &Config, mut options: RunOptions) -> Result<Service> {
        let data_dir = &config.alerts.data_dir;
        let metrics = ops_metrics(config, &options)?;
        let model = Arc::new(load_model(&config.model.path)?);
        tracing::info!(model = %model.model_version(), threshold = model.threshold(), "model loaded");
        let store = match options.store.take() {
            Some(store) => store,
            None => open_store(config).await?,
        };
        if let Some(m) = &metrics {
            m.readiness().model_loaded();
            m.readiness().store_opened();
        }
        let policies = config.decisions.policies()?;
        let shadow = policies.is_shadow() || config.decisions.simulated;
        tracing::info!(policies = ?policies.names(), shadow, "decision policies loaded");
        let poll_queue = match config.decisions.poll_receivers().is_empty() {
            true => None,
            false => Some(Arc::new(SetPollQueue::open(data_dir)?)),
        };
        let delivery = build_targets(&config.decisions.targets, poll_queue.as_ref())?;
        let feed = Arc::new(DecisionFeed::open(data_dir)?);
        let http = http_api(
            config,
            &store,
            &feed,
            poll_queue.as_ref(),
            &delivery.jwks,
            options.http_listener,
        )
        .await?;
        let outbox = Arc::new(Outbox::open(data_dir)?);
        if let Some(m) = &metrics {
            m.set_outbox(outbox.clone());
        }
        let ops = Ops::build(config, metrics, options.ops_listener.take()).await?;
        let (reloader, model_updates) = model_reloader(config, &model, &ops, options.reload.take());
        let worker = Arc::new(OutboxWorker::with_targets(outbox.clone(), delivery.targets));
        let dead_letters =
            DeadLetters::open(&config.source.dead_letter, &config.dead_letter_path())?;
        let dead_letters_at = dead_letters.describe();
        let mut parts = PipelineParts::new(
            config.features.clone(),
            model,
            store.clone(),
            Normalizer::new(&config.source)?,
            dead_letters,
        )?;
        parts.policies = policies;
        parts.incidents = restore_incidents(&config.incidents, store.as_ref()).await?;
        parts.outbox = Some(outbox.clone());
        parts.targets = config
            .decisions
            .targets
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        parts.outbox_notify = Some(worker.notifier());
        parts.feed = Some(feed);
        parts.siem = siem_sink(config)?;
        parts.watcher = config.revocation_watch.clone().map(RevocationWatcher::new);
        parts.decisions = config.decisions.clone();
        parts.rules = config.rules.clone();
        parts.burst = config.burst.clone();
        parts.pipeline = config.pipeline.clone();
        parts.inventory_path = Some(data_dir.join("inventory.json"));
        parts.checkpoints = checkpoint_dir(config)?;
        parts.checkpoint_interval = Duration::from_secs(config.checkpoints.interval_secs);
        let mut pipeline = Pipeline::new(parts)?;
        if let Some(tx) = options.progress {
            pipeline = pipeline.with_progress(tx);
        }
        if let Some(m) = &ops.metrics {
            pipeline = pipeline.with_metrics(m.clone());
        }
        if let Some(updates) = model_updates {
            pipeline = pipeline.with_model_updates(updates);
        }
        Ok(Service {
            pipeline,
            worker,
            outbox,
            http,
            dead_letters_at,
            ops,
            reloader,
            source: options.source,
        })
    }
}

/// The HTTP API, with the listener it will serve on, when `[http]` is configured. It is
/// built (its keys read) before anything starts, so a missing key fails fast.
async fn http_api(
    config: &Config,
    store: &Arc<dyn AlertStore>,
    feed: &Arc<DecisionFeed>,
    poll_queue: Option<&Arc<SetPollQueue>>,
    jwks: &Jwks,
    listener: Option<TcpListener>,
) -> Result<Option<(HttpApi, TcpListener)>> {
    let cfg = match (&config.http, &listener) {
        (Some(cfg), _) => cfg,
        (None, Some(_)) => {
            return Err(Error::Config(
                "an http listener was given but `[http]` is not configured".into(),
            ))
        }
        (None, None) => return Ok(None),
    };
    let mut api = HttpApi::new(cfg, store.clone())
        .map_err(|e| alerts_config_error("", e))?
        .with_decision_feed(feed.clone());
    if let Some(queue) = poll_queue {
        api = api.with_poll_queue(queue.clone());
    }
    if !jwks.keys.is_empty() {
        api = api.with_jwks(jwks.clone());
    }
    Ok(Some((api, bind(cfg, listener).await?)))
}

/// Where partition states are checkpointed: for Kafka only (a file replay starts from
/// its first line every time, so a checkpoint would skip records it has not seen).
fn checkpoint_dir(config: &Config) -> Result<Option<CheckpointDir>> {
    if config.source.kind != SourceKind::Kafka {
        return Ok(None);
    }
    let dir = config.checkpoint_dir();
    let opened =
        CheckpointDir::open(&dir).map_err(|e| Error::Config(format!("`checkpoints.dir`: {e}")))?;
    tracing::info!(dir = %dir.display(), interval_secs = config.checkpoints.interval_secs, "partition checkpoints");
    Ok(Some(opened))
}

/// The SIEM topic's producer, when `[siem.kafka]` is configured.
fn siem_sink(config: &Config) -> Result<Option<Arc<KafkaSink>>> {
    let Some(cfg) = &config.siem.kafka else {
        return Ok(None);
    };
    let sink = KafkaSink::new(cfg.clone()).map_err(|e| alerts_config_error("`siem.kafka`: ", e))?;
    Ok(Some(Arc::new(sink)))
}

/// The given listener, or one bound to `http.listen`.
async fn bind(cfg: &HttpConfig, listener: Option<TcpListener>) -> Result<TcpListener> {
    match listener {
        Some(l) => Ok(l),
        None => TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| Error::Config(format!("`http.listen`: cannot bind {}: {e}", cfg.listen))),
    }
}

/// Runs the pipeline over the configured source; also says whether `shutdown` fired.
async fn run_pipeline(
    pipeline: &mut Pipeline,
    config: &Config,
    source: Option<Box<dyn Source>>,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> (Result<()>, bool) {
    let mut shutdown_seen = false;
    let signal = async {
        shutdown.await;
        shutdown_seen = true;
    };
    let outcome = match (source, config.source.kind) {
        (Some(mut source), _) => pipeline.run(source.as_mut(), signal).await,
        (None, kind) => run_configured_source(pipeline, config, kind, signal).await,
    };
    (outcome, shutdown_seen)
}

async fn run_configured_source(
    pipeline: &mut Pipeline,
    config: &Config,
    kind: SourceKind,
    signal: impl Future<Output = ()>,
) -> Result<()> {
    match kind {
        SourceKind::File => match FileSource::open(&config.source.path).await {
            Ok(mut source) => pipeline.run(&mut source, signal).await,
            Err(e) => Err(e.into()),
        },
        SourceKind::Kafka => match KafkaSource::new(config.source.kafka.clone()) {
            Ok(mut source) => pipeline.run(&mut source, signal).await,
            Err(e) => Err(e.into()),
        },
    }
}

/// The outbox worker and the HTTP API, running beside the pipeline.
struct Background {
    worker: Arc<OutboxWorker>,
    stop_worker: oneshot::Sender<()>,
    worker_task: JoinHandle<()>,
    stop_http: Option<watch::Sender<bool>>,
    http_task: Option<JoinHandle<outrider_alerts::Result<()>>>,
}

impl Background {
    fn start(worker: Arc<OutboxWorker>, http: Option<(HttpApi, TcpListener)>) -> Self {
        let (stop_worker, worker_stopped) = oneshot::channel::<()>();
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
        let (stop_http, http_task) = match http {
            Some((api, listener)) => {
                let (stop_tx, mut stop_rx) = watch::channel(false);
                let task = tokio::spawn(api.run(listener, async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                }));
                (Some(stop_tx), Some(task))
            }
            None => (None, None),
        };
        Background {
            worker,
            stop_worker,
            worker_task,
            stop_http,
            http_task,
        }
    }

    fn serves_http(&self) -> bool {
        self.http_task.is_some()
    }

    /// Stops the HTTP API (requests in flight finish) and the live worker, then, with
    /// `drain`, delivers what is due; what cannot be delivered now stays in the outbox
    /// for the next run.
    async fn stop(self, drain: Option<Duration>) -> Result<()> {
        if let Some(stop) = &self.stop_http {
            let _ = stop.send(true);
        }
        let _ = self.stop_worker.send(());
        if let Err(e) = self.worker_task.await {
            tracing::error!(error = %e, "outbox worker ended abnormally");
        }
        if let Some(timeout) = drain {
            match self.worker.drain(timeout).await {
                Ok(n) => tracing::info!(delivered = n, "outbox drained"),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "outbox not drained; kept")
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(task) = self.http_task else {
            return Ok(());
        };
        match task.await {
            Ok(served) => Ok(served?),
            Err(e) => {
                tracing::error!(error = %e, "http api ended abnormally");
                Ok(())
            }
        }
    }
}

/// A grouper that picks up the incidents still open from before a restart, so replayed
/// alerts are recognised and repeats stay suppressed.
async fn restore_incidents(
    cfg: &IncidentConfig,
    store: &dyn AlertStore,
) -> Result<IncidentGrouper> {
    let mut grouper = IncidentGrouper::new(cfg.clone()).map_err(|e| alerts_config_error("", e))?;
    let gap = chrono::Duration::seconds(i64::try_from(cfg.gap_secs).unwrap_or(i64::MAX));
    let query = IncidentQuery {
        since: Utc::now().checked_sub_signed(gap),
        status: Some(AlertStatus::Open),
        limit: cfg.max_open,
        ..IncidentQuery::default()
    };
    let open = store.incidents(&query).await?;
    tracing::info!(incidents = open.len(), "open incidents restored");
    grouper.restore(open);
    Ok(grouper)
}

/// The built targets, and the public keys of the SET targets for the JWKS route.
struct Delivery {
    targets: HashMap<String, Arc<dyn Target>>,
    jwks: Jwks,
}

/// Builds every target, reading its secrets and keys; an error names the target.
fn build_targets(
    configs: &[TargetConfig],
    poll_queue: Option<&Arc<SetPollQueue>>,
) -> Result<Delivery> {
    let mut delivery = Delivery {
        targets: HashMap::new(),
        jwks: Jwks::default(),
    };
    for cfg in configs {
        let what = format!("`decisions.targets` {:?}: ", cfg.name());
        let named = |e| alerts_config_error(&what, e);
        let target: Arc<dyn Target> = match cfg {
            TargetConfig::Set(set) => {
                let t = SetTarget::new(set.clone(), poll_queue).map_err(named)?;
                delivery.jwks.keys.extend(t.jwks().keys);
                Arc::new(t)
            }
            other => other.build(poll_queue).map_err(named)?,
        };
        delivery.targets.insert(cfg.name().to_owned(), target);
    }
    Ok(delivery)
}

/// The metrics, when `[ops]` is configured.
fn ops_metrics(config: &Config, options: &RunOptions) -> Result<Option<Arc<Metrics>>> {
    match (&config.ops, &options.ops_listener) {
        (Some(_), _) => Ok(Some(Arc::new(Metrics::new()))),
        (None, Some(_)) => Err(Error::Config(
            "an ops listener was given but `[ops]` is not configured".into(),
        )),
        (None, None) => Ok(None),
    }
}

/// A model reloader when the file is polled (`model.reload_check_secs`) or a caller asks
/// for checks (SIGHUP), and the channel the pipeline reads reloaded models from.
fn model_reloader(
    config: &Config,
    model: &Arc<TrainedModel>,
    ops: &Ops,
    requests: Option<ReloadRequests>,
) -> (
    Option<PendingReloader>,
    Option<watch::Receiver<Arc<TrainedModel>>>,
) {
    let every = config.model.reload_check_secs;
    if every == 0 && requests.is_none() {
        return (None, None);
    }
    let (mut reloader, updates) = ModelReloader::new(
        config.model.path.clone(),
        model.clone(),
        config.rules.clone(),
        config.features.window_secs,
        (every > 0).then(|| Duration::from_secs(every)),
    );
    if let Some(m) = &ops.metrics {
        reloader = reloader.with_metrics(m.clone());
    }
    (Some((reloader, requests)), Some(updates))
}

/// A model reloader not started yet, with the requests it will answer.
type PendingReloader = (ModelReloader, Option<ReloadRequests>);

/// The ops endpoint and the model reloader: they run from start to the very end, so
/// `/ready` reports the shutdown and `/metrics` the final counters.
struct Ops {
    metrics: Option<Arc<Metrics>>,
    server: Option<(OpsServer, TcpListener)>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Ops {
    async fn build(
        config: &Config,
        metrics: Option<Arc<Metrics>>,
        listener: Option<TcpListener>,
    ) -> Result<Self> {
        let server = match (&config.ops, &metrics) {
            (Some(cfg), Some(m)) => {
                let server = OpsServer::new(cfg, m.clone())?;
                let listener = match listener {
                    Some(l) => l,
                    None => TcpListener::bind(&cfg.listen).await.map_err(|e| {
                        Error::Config(format!("`ops.listen`: cannot bind {}: {e}", cfg.listen))
                    })?,
                };
                Some((server, listener))
            }
            _ => None,
        };
        Ok(Self {
            metrics,
            server,
            stop: None,
            tasks: Vec::new(),
        })
    }

    /// Whether the ops endpoint will serve (it keeps serving after a replay, until shutdown).
    fn serves(&self) -> bool {
        self.server.is_some()
    }

    /// Starts the endpoint and the reloader.
    fn start(&mut self, reloader: Option<PendingReloader>) {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        if let Some((server, listener)) = self.server.take() {
            let serve = server.run(listener, until_stopped());
            self.tasks.push(tokio::spawn(async move {
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "ops endpoint failed");
                }
            }));
        }
        if let Some((reloader, requests)) = reloader {
            self.tasks
                .push(tokio::spawn(reloader.run(requests, until_stopped())));
        }
        self.stop = Some(stop);
    }

    async fn stop(self) {
        if let Some(stop) = &self.stop {
            let _ = stop.send(true);
        }
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "ops task ended abnormally");
            }
        }
    }
}
