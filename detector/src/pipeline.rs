//! The detector loop. It is generic over the [`Source`], so a file replay and a Kafka
//! consumer group run exactly the same code.
//!
//! Order per batch: parse (bad records -> dead letters, synced; requests checked against
//! watched revocations) -> features -> rows of the windows the watermark passed -> scores ->
//! alerts grouped into incidents (repeats suppressed) -> raised alerts stored -> policies
//! decide -> decisions stored, appended to the decision feed, put in the outbox, published
//! with their alerts to the SIEM topic -> incidents stored -> only then the offsets of fully
//! processed records are committed.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use outrider_alerts::{
    Alert, AlertStore, Decision, DecisionFeed, Finding, IncidentConfig, IncidentGrouper, KafkaSink,
    Observation, Outbox, PolicySet, RevocationWatcher, Scope, Verdict,
};
use outrider_features::{Observed, WindowConfig};
use outrider_ingest::dead_letter::{DeadLetter, DeadLetters};
use outrider_ingest::source::{Partition, SourcePosition};
use outrider_ingest::{ApiEvent, Batch, Event, Parsed, Record, Source};
use outrider_models::{RulesConfig, TrainedModel};
use serde::Serialize;
use tokio::sync::Notify;

use crate::burst::BurstConfig;
use crate::checkpoint::CheckpointDir;
use crate::commit::CommitTracker;
use crate::config::{DecisionsConfig, PipelineConfig};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::partitions::{Emitted, Fed, PartitionStates, PartitionSummary};
use crate::score;
use crate::score::Scorer;
use crate::watermark::Watermarks;

/// How often a long-running pipeline saves the API inventory.
const INVENTORY_SAVE_INTERVAL: Duration = Duration::from_secs(60);

/// Counters of one run, also logged at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineStats {
    pub records: u64,
    pub events: u64,
    /// Refused records by reason; each is in the dead-letter sink.
    pub parse_errors: BTreeMap<String, u64>,
    /// Well-formed records without a detection signal (health checks, admin events), by reason.
    pub skipped: BTreeMap<String, u64>,
    pub late_events: u64,
    pub ignored_events: u64,
    pub rows_scored: u64,
    /// Alerts raised and stored (suppressed repeats are not).
    pub alerts: u64,
    /// Repeats of a recent alert, counted in their incident instead of being raised.
    pub suppressed_alerts: u64,
    /// Decisions stored, simulated ones included.
    pub decisions: u64,
    /// Of those, shadow-mode decisions: stored, never sent.
    pub simulated_decisions: u64,
    /// Requests that showed a revoke or block decision had not taken effect.
    pub revocation_findings: u64,
    pub commits: u64,
    /// Times a quiet source let windows be emitted without waiting for lateness.
    pub idle_flushes: u64,
    /// Records behind the end of the assigned partitions, as the source last reported.
    pub consumer_lag: Option<i64>,
    /// The source has ended (a replay read its whole input) and everything was emitted.
    pub source_ended: bool,
    /// Retries of alert-store writes that failed with a retryable error (store down).
    pub store_retries: u64,
    /// Partition checkpoints written, restored, refused (corrupt or mismatched: the
    /// partition started empty) and failed to write.
    pub checkpoints_written: u64,
    pub checkpoints_restored: u64,
    pub checkpoints_refused: u64,
    pub checkpoint_failures: u64,
    /// Re-read records that were already inside a restored checkpoint (not fed again).
    pub records_already_in_state: u64,
    /// Kafka records whose key is not their event's identity key, and records without a
    /// key: processed all the same, but their identity's state may be split across
    /// partitions (see the README on keying).
    pub key_mismatches: u64,
    pub unkeyed_records: u64,
    /// Partitions whose feature state this instance holds.
    pub partitions: u64,
    /// Times a partition's offsets went back without a rebalance (log recreated).
    pub offset_resets: u64,
}

impl PipelineStats {
    pub fn parse_error_total(&self) -> u64 {
        self.parse_errors.values().sum()
    }
}

/// Everything a pipeline needs, built by [`crate::service`] or by a test.
#[derive(Debug)]
pub struct PipelineParts {
    pub window: WindowConfig,
    pub model: Arc<TrainedModel>,
    /// Deterministic rules judged beside the model.
    pub rules: RulesConfig,
    /// Burst detectors fed per event, judged with the rows.
    pub burst: BurstConfig,
    pub store: Arc<dyn AlertStore>,
    /// Turns raised alerts into decisions.
    pub policies: PolicySet,
    /// Groups alerts into incidents and suppresses repeats (restored from the store by
    /// the service).
    pub incidents: IncidentGrouper,
    /// Non-simulated decisions are enqueued here for each of `targets`.
    pub outbox: Option<Arc<Outbox>>,
    pub targets: Vec<String>,
    /// Woken when the outbox has new entries.
    pub outbox_notify: Option<Arc<Notify>>,
    /// Every stored decision is appended here, for gateways that pull.
    pub feed: Option<Arc<DecisionFeed>>,
    /// The SIEM topic: stored alerts and decisions are published before the offsets
    /// behind them are committed.
    pub siem: Option<Arc<KafkaSink>>,
    /// Checks requests against revoke and block decisions.
    pub watcher: Option<RevocationWatcher>,
    /// `simulated` forces shadow mode on every decision.
    pub decisions: DecisionsConfig,
    pub pipeline: PipelineConfig,
    pub normalizer: Normalizer,
    pub dead_letters: DeadLetters,
    /// Where the API inventory is saved, now and then and at the end of the run.
    pub inventory_path: Option<std::path::PathBuf>,
    /// Where partition states are checkpointed (Kafka); `None`: never (file replays).
    pub checkpoints: Option<CheckpointDir>,
    /// Most time between two checkpoints of a partition.
    pub checkpoint_interval: Duration,
}

impl PipelineParts {
    /// Parts with the defaults for everything but the essentials: the built-in policy,
    /// default incident grouping, no outbox, feed, SIEM topic or revocation watch, no
    /// inventory file. Callers set the fields they need.
    pub fn new(
        window: WindowConfig,
        model: Arc<TrainedModel>,
        store: Arc<dyn AlertStore>,
        normalizer: Normalizer,
        dead_letters: DeadLetters,
    ) -> Result<Self> {
        let decisions = DecisionsConfig::default();
        Ok(Self {
            window,
            model,
            rules: RulesConfig::default(),
            burst: BurstConfig::default(),
            store,
            policies: decisions.policies()?,
            incidents: IncidentGrouper::new(IncidentConfig::default())?,
            outbox: None,
            targets: Vec::new(),
            outbox_notify: None,
            feed: None,
            siem: None,
            watcher: None,
            decisions,
            pipeline: PipelineConfig::default(),
            normalizer,
            dead_letters,
            inventory_path: None,
            checkpoints: None,
            checkpoint_interval: Duration::from_secs(30),
        })
    }
}

#[derive(Debug)]
pub struct Pipeline {
    parts: PipelineParts,
    /// Shared with the scoring task on the blocking pool; replaced on a model reload.
    scorer: Arc<Scorer>,
    /// One feature extractor and burst tracker per partition, checkpointed for hand-over.
    /// Kept across model reloads (their state is about the traffic, not the model).
    states: PartitionStates,
    watermarks: Watermarks,
    commits: CommitTracker,
    stats: PipelineStats,
    progress: Option<tokio::sync::watch::Sender<PipelineStats>>,
    /// Revocation findings of the records ingested since the last emit.
    findings: Vec<Finding>,
    watched: WatchedSubjects,
    metrics: Option<Arc<Metrics>>,
    /// Reloaded models, swapped in between batches.
    model_updates: Option<tokio::sync::watch::Receiver<Arc<TrainedModel>>>,
    /// Reused to compare record keys with identity keys.
    key_buf: String,
}

impl Pipeline {
    pub fn new(parts: PipelineParts) -> Result<Self> {
        let lateness_ms = i64::try_from(parts.window.allowed_lateness_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let idle = Duration::from_millis(parts.pipeline.idle_flush_ms);
        let scorer = Scorer::new(
            Arc::clone(&parts.model),
            &parts.rules,
            parts.window.window_secs,
        )?
        .with_burst_severity(parts.burst.severity);
        // Checked here, so that a bad `[burst]` fails the start, not the first partition.
        if parts.burst.enabled {
            parts.burst.validate()?;
        }
        for status in scorer.rule_statuses() {
            tracing::info!(rule = status.rule.as_str(), state = ?status.state, "rule");
        }
        parts.window.check()?;
        let states = PartitionStates::new(
            parts.window.clone(),
            parts.burst.clone(),
            parts.checkpoints.clone(),
            parts.checkpoint_interval,
        );
        Ok(Self {
            scorer: Arc::new(scorer),
            states,
            watermarks: Watermarks::new(lateness_ms, idle),
            parts,
            commits: CommitTracker::default(),
            stats: PipelineStats::default(),
            progress: None,
            findings: Vec::new(),
            watched: WatchedSubjects::default(),
            metrics: None,
            model_updates: None,
            key_buf: String::new(),
        })
    }

    /// Publishes the counters, the feature state's size and the scoring latency to
    /// `metrics` (see [`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.set_model(self.scorer.model());
        self.metrics = Some(metrics);
        self
    }

    /// Swaps in the models sent on `updates` (by [`crate::reload`]) between batches.
    pub fn with_model_updates(
        mut self,
        updates: tokio::sync::watch::Receiver<Arc<TrainedModel>>,
    ) -> Self {
        self.model_updates = Some(updates);
        self
    }

    /// Scores with `model` from the next batch on. A model of another feature schema is
    /// refused and the current one kept.
    pub fn replace_model(&mut self, model: Arc<TrainedModel>) -> Result<()> {
        let scorer = Scorer::new(
            Arc::clone(&model),
            &self.parts.rules,
            self.parts.window.window_secs,
        )?
        .with_burst_severity(self.parts.burst.severity);
        tracing::info!(
            from = %self.scorer.model().model_version(), to = %model.model_version(),
            threshold = model.threshold(), "model swapped"
        );
        if let Some(m) = &self.metrics {
            m.model_reloaded(&model);
        }
        self.scorer = Arc::new(scorer);
        self.parts.model = model;
        Ok(())
    }

    /// Between batches: takes a reloaded model if one is waiting.
    fn apply_model_update(&mut self) {
        let Some(updates) = &mut self.model_updates else {
            return;
        };
        if !updates.has_changed().unwrap_or(false) {
            return;
        }
        let model = Arc::clone(&updates.borrow_and_update());
        if let Err(e) = self.replace_model(model) {
            tracing::error!(error = %e, "reloaded model refused; the current model keeps scoring");
            if let Some(m) = &self.metrics {
                m.model_reload_failed();
            }
        }
    }

    /// After a batch: the counters and feature state, for `/metrics`.
    fn publish_metrics(&self, final_batch: bool) {
        if let Some(m) = &self.metrics {
            m.record_batch(&self.stats, &self.states.extractors(), final_batch);
        }
    }

    /// Scores on the blocking pool (small batches inline), so a large batch never holds
    /// a runtime worker that the HTTP API, the ops endpoint, the outbox worker and Kafka
    /// polling need.
    async fn score(&mut self, emitted: Emitted, now: DateTime<Utc>) -> Result<Vec<Alert>> {
        let started = Instant::now();
        let n = emitted.rows.len();
        let Emitted { rows, bursts } = emitted;
        let alerts = score::alerts_off_runtime(Arc::clone(&self.scorer), rows, bursts, now).await?;
        if let Some(m) = &self.metrics {
            m.observe_scoring(n, started.elapsed());
        }
        Ok(alerts)
    }

    /// Publishes the counters after every batch (for health checks and tests that wait
    /// for the pipeline to catch up instead of sleeping).
    pub fn with_progress(mut self, tx: tokio::sync::watch::Sender<PipelineStats>) -> Self {
        self.progress = Some(tx);
        self
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// The feature state of each partition this pipeline reads.
    pub fn partitions(&self) -> Vec<PartitionSummary> {
        self.states.summaries()
    }

    /// Runs until the source ends (replay) or `shutdown` resolves (live). On shutdown,
    /// windows still open are not emitted and their records not committed: a restart
    /// re-reads them, and deterministic alert ids collapse any duplicates. A shutdown
    /// between batches checkpoints every partition; one that interrupts a batch (a store
    /// retry) does not, since the state is then ahead of what was stored.
    pub async fn run<S>(&mut self, source: &mut S, shutdown: impl Future<Output = ()>) -> Result<()>
    where
        S: Source + ?Sized,
    {
        tokio::pin!(shutdown);
        let idle_flush = Duration::from_millis(self.parts.pipeline.idle_flush_ms);
        let mut last_records = Instant::now();
        let mut idle_flushed = true;
        let mut last_inventory_save = Instant::now();
        let mut interrupted = false;
        tracing::info!(source = %source.describe(), "pipeline started");
        if let Some(m) = &self.metrics {
            m.readiness().source_started();
        }
        loop {
            let batch = tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("shutdown requested");
                    break;
                }
                batch = source.next_batch(self.parts.pipeline.batch_size) => batch?,
            };
            self.apply_model_update();
            let end = matches!(batch, Batch::End);
            self.follow_assignment(source)?;
            let mut flushing = false;
            let rows = match batch {
                Batch::Records(records) => {
                    last_records = Instant::now();
                    self.stats.consumer_lag = source.lag();
                    self.ingest(&records, last_records)?;
                    idle_flushed = false;
                    let watermarks = &self.watermarks;
                    self.states.advance(|p| watermarks.of(p, last_records))
                }
                Batch::Idle if !idle_flushed && last_records.elapsed() >= idle_flush => {
                    idle_flushed = true;
                    flushing = true;
                    self.flush_idle()
                }
                Batch::Idle => Emitted::default(),
                Batch::End => self.states.finish(),
            };
            // The batch in hand is stored (retrying while the store is down), checkpointed,
            // then committed; shutdown may interrupt the store retries.
            let step = async {
                self.emit(rows).await?;
                self.states.checkpoint(false, &mut self.stats).await;
                self.commit(source, end).await
            };
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("shutdown requested while a batch was in hand; it is not committed");
                    interrupted = true;
                    break;
                }
                done = step => done?,
            }
            if flushing {
                tracing::debug!("source idle; windows stored and committed");
            }
            self.stats.source_ended = end;
            self.publish_metrics(end);
            if let Some(tx) = &self.progress {
                tx.send_replace(self.stats.clone());
            }
            if end {
                break;
            }
            if last_inventory_save.elapsed() >= INVENTORY_SAVE_INTERVAL {
                self.save_inventory();
                last_inventory_save = Instant::now();
            }
        }
        if !interrupted {
            self.states.checkpoint(true, &mut self.stats).await;
            self.commit(source, false).await?;
        }
        self.save_inventory();
        tracing::info!(stats = ?self.stats, "pipeline stopped");
        Ok(())
    }

    /// Drops the state of revoked partitions and restores that of newly assigned ones.
    fn follow_assignment<S: Source + ?Sized>(&mut self, source: &mut S) -> Result<()> {
        let revoked = source.take_revoked();
        let assigned = source.assignment();
        for p in &revoked {
            // Their new owner re-reads them from the last commit: what was tracked for
            // them can no longer be committed, and their clocks start over.
            self.commits.forget(p);
            self.watermarks.forget(p);
        }
        if let Some(assigned) = &assigned {
            self.watermarks.assign(assigned, Instant::now());
            self.commits.retain(assigned);
        }
        let committed = |new: &[Partition]| source.committed(new);
        self.states
            .follow_assignment(assigned.as_deref(), &revoked, committed, &mut self.stats)?;
        self.stats.partitions = self.states.count() as u64;
        Ok(())
    }

    /// Best effort: the inventory is a report, so a failed write is logged, not fatal.
    fn save_inventory(&self) {
        let Some(path) = &self.parts.inventory_path else {
            return;
        };
        let report = self.parts.normalizer.inventory().report();
        let write = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, json)?;
                std::fs::rename(&tmp, path)
            });
        if let Err(e) = write {
            tracing::warn!(error = %e, path = %path.display(), "cannot save the api inventory");
        }
    }

    pub fn normalizer(&self) -> &Normalizer {
        &self.parts.normalizer
    }

    /// A quiet stream: emit windows up to the newest event time, waiving the lateness wait.
    fn flush_idle(&mut self) -> Emitted {
        match self.states.max_event_time() {
            Some(t) => {
                tracing::debug!(event_time = t, "source idle; emitting windows");
                self.stats.idle_flushes += 1;
                self.states.flush_idle()
            }
            None => Emitted::default(),
        }
    }

    fn ingest(&mut self, records: &[Record], now: Instant) -> Result<()> {
        // Per partition in this batch: the last offset and the newest pending event time.
        let mut chunks: BTreeMap<Partition, (i64, Option<i64>)> = BTreeMap::new();
        let mut dead = 0;
        for record in records {
            self.stats.records += 1;
            let offset = record.position.offset();
            let partition = record.position.partition();
            if self
                .states
                .offset_went_back(&partition, offset, &mut self.stats)?
            {
                // What was tracked refers to the old log: it can never be committed.
                self.commits.forget(&partition);
                if let Some(chunk) = chunks.get_mut(&partition) {
                    chunk.0 = offset;
                }
            }
            let chunk = chunks.entry(partition.clone()).or_insert((offset, None));
            chunk.0 = chunk.0.max(offset);
            match self
                .parts
                .normalizer
                .normalize(&record.payload, &partition.stream)
            {
                Ok(Parsed::Skipped(reason)) => {
                    *self.stats.skipped.entry(reason.to_owned()).or_default() += 1;
                }
                Ok(Parsed::Event(event)) => {
                    self.stats.events += 1;
                    if let SourcePosition::Kafka { .. } = record.position {
                        self.check_key(record.key.as_deref(), &event);
                    }
                    if let Event::Api(api) = &event {
                        self.check_revocations(api);
                    }
                    match self
                        .states
                        .observe(&partition, offset, &event, &mut self.stats)?
                    {
                        Fed::Observed(Observed::Accepted) | Fed::AlreadyInState => {
                            let ts = event.ts().millis();
                            chunk.1 = Some(chunk.1.map_or(ts, |t: i64| t.max(ts)));
                        }
                        Fed::Observed(Observed::Late) => self.stats.late_events += 1,
                        Fed::Observed(Observed::Ignored) => self.stats.ignored_events += 1,
                    }
                }
                Err(e) => {
                    *self
                        .stats
                        .parse_errors
                        .entry(e.reason.as_str().to_owned())
                        .or_default() += 1;
                    let raw = trim_newline(&record.payload);
                    let letter = DeadLetter::new(e.reason, &e.detail, &record.position, raw);
                    self.parts.dead_letters.write(&letter)?;
                    dead += 1;
                }
            }
        }
        if dead > 0 {
            // Dead letters are on disk before the offsets that skip them can be committed.
            self.parts.dead_letters.flush()?;
            tracing::warn!(count = dead, "records refused; see the dead-letter file");
        }
        for (partition, (last_offset, pending)) in chunks {
            // The chunk's newest pending time is the partition's newest event time in this
            // batch: the watermark needs no per-record update.
            self.watermarks.observe(&partition, pending, now);
            self.states
                .ingested(&partition, last_offset, &mut self.stats)?;
            self.commits.record(partition, last_offset, pending);
        }
        Ok(())
    }

    /// Counts (and now and then logs) Kafka records not keyed by their identity: they are
    /// processed, but their identity's state may be split across partitions.
    fn check_key(&mut self, key: Option<&[u8]>, event: &Event) {
        let Some(key) = key else {
            self.stats.unkeyed_records += 1;
            if self.stats.unkeyed_records.is_power_of_two() {
                tracing::warn!(
                    count = self.stats.unkeyed_records,
                    "kafka records without a key; producers should key records by identity"
                );
            }
            return;
        };
        if !crate::partitions::key_is_identity(key, event, &mut self.key_buf) {
            self.stats.key_mismatches += 1;
            if self.stats.key_mismatches.is_power_of_two() {
                tracing::warn!(
                    count = self.stats.key_mismatches, key = %String::from_utf8_lossy(key),
                    identity = %self.key_buf, "kafka record key is not its identity key"
                );
            }
        }
    }

    /// Feeds a request to the revocation watcher; findings are stored with the next emit,
    /// before the record's offset can be committed.
    fn check_revocations(&mut self, e: &ApiEvent) {
        let Some(watcher) = &mut self.parts.watcher else {
            return;
        };
        // An observation costs a few allocations: skip refused requests (the revocation
        // working) and requests that concern no watched subject (nearly all of them).
        if !(200..400).contains(&e.status) {
            return;
        }
        let time = e.ts.to_datetime();
        if watcher.is_empty() {
            self.watched.clear();
            return;
        }
        self.watched.prune(time);
        if !self.watched.concerns(e) {
            return;
        }
        let observation = Observation {
            time,
            identity: e.identity_key(),
            jti: None,
            aud: None,
            status: e.status,
            ip: Some(e.client_ip.to_string()),
            route: e.route.clone(),
            request_id: e.request_id.clone(),
        };
        let observation = match &e.identity.token_id {
            Some(token) => observation.with_token_id(token),
            None => observation,
        };
        for f in watcher.observe(&observation) {
            tracing::warn!(
                decision = %f.decision_id, alert = %f.alert.id, identity = %f.alert.identity,
                request = %e.request_id, status = e.status, "revocation not effective"
            );
            self.findings.push(f);
        }
    }

    /// Scores rows and handles the alerts they raise, with the revocation findings since
    /// the last call: grouped, stored, decided on, delivered, published.
    async fn emit(&mut self, emitted: Emitted) -> Result<()> {
        let findings = std::mem::take(&mut self.findings);
        if emitted.rows.is_empty() && findings.is_empty() {
            return Ok(());
        }
        self.stats.rows_scored += emitted.rows.len() as u64;
        let now = Utc::now();
        let alerts = self.score(emitted, now).await?;
        let alerts = with_findings(alerts, &findings);
        if alerts.is_empty() {
            return Ok(());
        }
        let grouped = self.parts.incidents.group(&alerts);
        // A finding is evidence that an enforcement point failed: it is stored even when
        // the grouper folds it into an incident as a repeat.
        let stored = with_findings(grouped.raised.clone(), &findings);
        let store = Arc::clone(&self.parts.store);
        self.retry_store("insert alerts", || store.insert_alerts(&stored))
            .await?;
        for f in &findings {
            self.retry_store("add note", || store.add_note(&f.note))
                .await?;
        }
        let mut decisions = self.parts.policies.decide_all(&grouped.raised, now);
        if self.parts.decisions.simulated {
            decisions.iter_mut().for_each(|d| d.simulated = true);
        }
        self.retry_store("insert decisions", || store.insert_decisions(&decisions))
            .await?;
        if let Some(feed) = &self.parts.feed {
            feed.append(&decisions)?;
        }
        self.enqueue(&decisions)?;
        if let Some(siem) = &self.parts.siem {
            siem.publish(&stored, &decisions).await?;
        }
        self.watch(&decisions);
        // Last: a restarted grouper treats the alerts its stored incidents list as seen and
        // decides nothing on them again, so everything they lead to is stored first.
        self.retry_store("upsert incidents", || {
            store.upsert_incidents(&grouped.incidents)
        })
        .await?;
        for a in &stored {
            tracing::info!(
                alert = %a.id, identity = %a.identity, score = a.score,
                why = %score::explain_briefly(a), "alert"
            );
        }
        self.stats.alerts += stored.len() as u64;
        self.stats.suppressed_alerts += grouped
            .outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Suppressed { .. }))
            .count() as u64;
        self.stats.decisions += decisions.len() as u64;
        self.stats.simulated_decisions += decisions.iter().filter(|d| d.simulated).count() as u64;
        self.stats.revocation_findings += findings.len() as u64;
        Ok(())
    }

    /// A store write, retried while the store is unavailable (see [`crate::retry`]).
    async fn retry_store<T, F, Fut>(&mut self, what: &'static str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = outrider_alerts::Result<T>>,
    {
        let config = &self.parts.pipeline;
        crate::retry::retry_store(what, config, &mut self.stats, self.progress.as_ref(), op).await
    }

    /// Starts watching the enforcing decisions, from the event time at which they were
    /// made: requests are judged in event time, so a replay judges them as live traffic.
    fn watch(&mut self, decisions: &[Decision]) {
        let effective_at = self.event_clock();
        let Some(watcher) = &mut self.parts.watcher else {
            return;
        };
        for d in decisions {
            let effective_at = effective_at.unwrap_or(d.created_at);
            if watcher.watch_from(d, effective_at) {
                self.watched.add(d, effective_at);
            }
        }
    }

    /// The newest event time seen: "now" for event-time decisions.
    fn event_clock(&self) -> Option<DateTime<Utc>> {
        self.states.max_event_time().map(score::millis_to_utc)
    }

    fn enqueue(&self, decisions: &[Decision]) -> Result<()> {
        let Some(outbox) = &self.parts.outbox else {
            return Ok(());
        };
        if self.parts.targets.is_empty() {
            return Ok(());
        }
        let live: Vec<_> = decisions.iter().filter(|d| !d.simulated).cloned().collect();
        if live.is_empty() {
            return Ok(());
        }
        outbox.enqueue(&live, &self.parts.targets)?;
        if let Some(n) = &self.parts.outbox_notify {
            n.notify_one();
        }
        Ok(())
    }

    async fn commit<S: Source + ?Sized>(&mut self, source: &mut S, all_done: bool) -> Result<()> {
        let states = &self.states;
        let offsets = self
            .commits
            .committable_if(|partition, last_offset, pending_until| {
                let windows_done = match pending_until {
                    None => true,
                    Some(_) if all_done => true,
                    Some(t) => states.completed_before(partition).is_some_and(|b| t < b),
                };
                let in_checkpoint = states
                    .commit_limit(partition)
                    .is_none_or(|limit| last_offset <= limit);
                windows_done && in_checkpoint
            });
        let mut offsets = offsets;
        offsets.extend(self.states.first_commits(&offsets));
        if offsets.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        source.commit(&offsets).await?;
        self.states.committed(&offsets);
        self.stats.commits += 1;
        tracing::debug!(
            partitions = offsets.len(),
            us = started.elapsed().as_micros() as u64,
            "offsets committed"
        );
        Ok(())
    }
}

/// The subjects of the decisions the revocation watcher watches, so that only requests
/// that concern one of them become observations. It may keep a subject a little longer
/// than the watcher (until the decision's TTL ends), never drop one earlier: a stale entry
/// costs an observation, a missing one would hide a finding.
#[derive(Debug, Default)]
struct WatchedSubjects {
    identities: HashMap<String, DateTime<Utc>>,
    /// By `jti` (or the keyed hash of an opaque token), as the watcher matches tokens.
    tokens: HashMap<String, DateTime<Utc>>,
    ips: HashMap<IpAddr, DateTime<Utc>>,
    /// Reused for identity keys.
    key: String,
    next_prune: Option<DateTime<Utc>>,
}

impl WatchedSubjects {
    /// How often (in event time) entries past their end are dropped.
    const PRUNE_EVERY_SECS: i64 = 60;

    fn add(&mut self, d: &Decision, effective_at: DateTime<Utc>) {
        let ttl = i64::try_from(d.ttl_secs)
            .unwrap_or(i64::MAX)
            .min(i64::MAX / 1000);
        let until = effective_at
            .checked_add_signed(chrono::Duration::seconds(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let keep_latest = |old: &mut DateTime<Utc>| *old = (*old).max(until);
        match d.scope {
            Scope::Token => {
                let jti = token_jti(&d.value).to_owned();
                self.tokens
                    .entry(jti)
                    .and_modify(keep_latest)
                    .or_insert(until);
            }
            Scope::Identity => {
                let id = d.value.clone();
                self.identities
                    .entry(id)
                    .and_modify(keep_latest)
                    .or_insert(until);
            }
            Scope::Ip => {
                if let Ok(ip) = d.value.parse::<IpAddr>() {
                    self.ips.entry(ip).and_modify(keep_latest).or_insert(until);
                }
            }
        }
    }

    /// Whether the request's IP, token or identity is watched.
    fn concerns(&mut self, e: &ApiEvent) -> bool {
        if self.ips.contains_key(&e.client_ip) {
            return true;
        }
        let token = e.identity.token_id.as_deref();
        if token.is_some_and(|t| self.tokens.contains_key(token_jti(t))) {
            return true;
        }
        if self.identities.is_empty() {
            return false;
        }
        e.write_identity_key(&mut self.key);
        self.identities.contains_key(self.key.as_str())
    }

    /// Drops the entries that ended before `now`, once a minute of event time.
    fn prune(&mut self, now: DateTime<Utc>) {
        if self.next_prune.is_some_and(|t| now < t) {
            return;
        }
        self.next_prune = now.checked_add_signed(chrono::Duration::seconds(Self::PRUNE_EVERY_SECS));
        self.identities.retain(|_, until| *until >= now);
        self.tokens.retain(|_, until| *until >= now);
        self.ips.retain(|_, until| *until >= now);
    }

    fn clear(&mut self) {
        self.identities.clear();
        self.tokens.clear();
        self.ips.clear();
    }
}

/// The `jti` of a token id (`jti:<id>@<aud>`, `jti:<id>`), or the id itself (a bare id, a
/// keyed hash): what the revocation watcher matches tokens on.
fn token_jti(token_id: &str) -> &str {
    match token_id.strip_prefix("jti:") {
        Some(rest) => rest.rsplit_once('@').map_or(rest, |(jti, _)| jti),
        None => token_id,
    }
}

/// `alerts` and the findings' alerts not among them, in that order.
fn with_findings(mut alerts: Vec<Alert>, findings: &[Finding]) -> Vec<Alert> {
    for f in findings {
        if !alerts.iter().any(|a| a.id == f.alert.id) {
            alerts.push(f.alert.clone());
        }
    }
    alerts
}

fn trim_newline(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_alerts::{decision_id, Action};
    use outrider_ingest::{EventTime, Identity};

    fn t(secs: i64) -> DateTime<Utc> {
        score::millis_to_utc(1_790_000_000_000 + secs * 1000)
    }

    fn decision(action: Action, scope: Scope, value: &str, ttl_secs: u64) -> Decision {
        Decision {
            id: decision_id("a", action, scope, value),
            alert_id: "a".into(),
            created_at: t(0),
            action,
            scope,
            value: value.into(),
            ttl_secs,
            origin: "policy:test".into(),
            simulated: false,
            reason: String::new(),
        }
    }

    fn request(subject: Option<&str>, token: Option<&str>, ip: [u8; 4]) -> ApiEvent {
        ApiEvent {
            ts: EventTime::from_millis(0),
            request_id: "r".into(),
            route: "/".into(),
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            latency_ms: 0.0,
            bytes_in: 0,
            bytes_out: 0,
            client_ip: IpAddr::from(ip),
            user_agent: String::new(),
            identity: Identity {
                subject: subject.map(str::to_owned),
                token_id: token.map(str::to_owned),
                ..Identity::default()
            },
            origin: Default::default(),
        }
    }

    #[test]
    fn watched_subjects_match_tokens_by_jti_identities_by_key_and_ips() {
        let mut w = WatchedSubjects::default();
        let bob = request(Some("bob"), Some("jti:zzz@bank"), [192, 0, 2, 9]);
        assert!(!w.concerns(&bob), "nothing watched");
        let watch = [
            (Action::RevokeToken, Scope::Token, "jti:abc@bank"),
            (Action::RevokeSessions, Scope::Identity, "sub:alice"),
            (Action::Block, Scope::Ip, "203.0.113.7"),
        ];
        for (action, scope, value) in watch {
            w.add(&decision(action, scope, value, 60), t(0));
        }
        // The watcher matches a token on its jti, whatever the audience says.
        let other = [192, 0, 2, 1];
        assert!(w.concerns(&request(None, Some("jti:abc@shop"), other)));
        assert!(w.concerns(&request(None, Some("jti:abc"), other)));
        assert!(w.concerns(&request(Some("alice"), None, other)));
        assert!(w.concerns(&request(None, None, [203, 0, 113, 7])));
        assert!(!w.concerns(&bob));
        assert!(!w.concerns(&request(Some("alicia"), Some("jti:abcd@bank"), other)));
    }

    #[test]
    fn watched_subjects_end_with_the_decision_ttl() {
        let mut w = WatchedSubjects::default();
        w.add(
            &decision(Action::RevokeToken, Scope::Token, "tok-1", 60),
            t(0),
        );
        w.add(
            &decision(Action::RevokeToken, Scope::Token, "tok-2", 600),
            t(0),
        );
        let tok1 = request(None, Some("tok-1"), [192, 0, 2, 1]);
        let tok2 = request(None, Some("tok-2"), [192, 0, 2, 1]);
        w.prune(t(30));
        assert!(w.concerns(&tok1));
        w.prune(t(120));
        assert!(!w.concerns(&tok1), "past its TTL");
        assert!(w.concerns(&tok2));
    }

    #[test]
    fn token_jti_reads_every_token_id_form() {
        assert_eq!(token_jti("jti:abc@bank"), "abc");
        assert_eq!(token_jti("jti:abc"), "abc");
        assert_eq!(token_jti("jti:a@b@c"), "a@b");
        assert_eq!(token_jti("h:0123"), "h:0123");
        assert_eq!(token_jti("7a20fe85"), "7a20fe85");
    }
}
