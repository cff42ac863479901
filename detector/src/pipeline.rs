//! The detector loop. It is generic over the [`Source`], so a file replay and a Kafka
//! consumer group run exactly the same code.
//!
//! Order per batch: parse (bad records -> dead letters, synced) -> features -> rows of the
//! windows the watermark passed -> scores -> alerts stored -> decisions stored and put in the
//! outbox -> only then the offsets of fully processed records are committed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use outrider_alerts::{AlertStore, Outbox};
use outrider_features::{FeatureExtractor, FeatureRow, Observed, WindowConfig};
use outrider_ingest::dead_letter::{DeadLetter, DeadLetters};
use outrider_ingest::source::Partition;
use outrider_ingest::{Batch, Parsed, Record, Source};
use outrider_models::TrainedModel;
use serde::Serialize;
use tokio::sync::Notify;

use crate::commit::CommitTracker;
use crate::config::{DecisionsConfig, PipelineConfig};
use crate::error::Result;
use crate::normalize::Normalizer;
use crate::score;
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
    pub alerts: u64,
    pub decisions: u64,
    pub commits: u64,
    /// Times a quiet source let windows be emitted without waiting for lateness.
    pub idle_flushes: u64,
    /// Records behind the end of the assigned partitions, as the source last reported.
    pub consumer_lag: Option<i64>,
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
    pub store: Arc<dyn AlertStore>,
    /// Non-simulated decisions are enqueued here for each of `targets`.
    pub outbox: Option<Arc<Outbox>>,
    pub targets: Vec<String>,
    /// Woken when the outbox has new entries.
    pub outbox_notify: Option<Arc<Notify>>,
    pub decisions: DecisionsConfig,
    pub pipeline: PipelineConfig,
    pub normalizer: Normalizer,
    pub dead_letters: DeadLetters,
    /// Where the API inventory is saved, now and then and at the end of the run.
    pub inventory_path: Option<std::path::PathBuf>,
}

#[derive(Debug)]
pub struct Pipeline {
    parts: PipelineParts,
    extractor: FeatureExtractor,
    watermarks: Watermarks,
    commits: CommitTracker,
    stats: PipelineStats,
    progress: Option<tokio::sync::watch::Sender<PipelineStats>>,
}

impl Pipeline {
    pub fn new(parts: PipelineParts) -> Result<Self> {
        let lateness_ms = i64::try_from(parts.window.allowed_lateness_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let idle = Duration::from_millis(parts.pipeline.idle_flush_ms);
        Ok(Self {
            extractor: FeatureExtractor::new(&parts.window)?,
            watermarks: Watermarks::new(lateness_ms, idle),
            parts,
            commits: CommitTracker::default(),
            stats: PipelineStats::default(),
            progress: None,
        })
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

    /// Runs until the source ends (replay) or `shutdown` resolves (live). On shutdown,
    /// windows still open are not emitted and their records not committed: a restart
    /// re-reads them, and deterministic alert ids collapse any duplicates.
    pub async fn run<S>(&mut self, source: &mut S, shutdown: impl Future<Output = ()>) -> Result<()>
    where
        S: Source + ?Sized,
    {
        tokio::pin!(shutdown);
        let idle_flush = Duration::from_millis(self.parts.pipeline.idle_flush_ms);
        let mut last_records = Instant::now();
        let mut idle_flushed = true;
        let mut last_inventory_save = Instant::now();
        tracing::info!(source = %source.describe(), "pipeline started");
        loop {
            let batch = tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("shutdown requested");
                    break;
                }
                batch = source.next_batch(self.parts.pipeline.batch_size) => batch?,
            };
            let end = matches!(batch, Batch::End);
            let rows = match batch {
                Batch::Records(records) => {
                    last_records = Instant::now();
                    if let Some(assigned) = source.assignment() {
                        self.watermarks.assign(&assigned, last_records);
                        // Revoked partitions are re-read by their new owner from its last
                        // commit; what we tracked for them can no longer be committed.
                        self.commits.retain(&assigned);
                    }
                    self.stats.consumer_lag = source.lag();
                    self.ingest(&records, last_records)?;
                    idle_flushed = false;
                    self.watermarks
                        .watermark(last_records)
                        .map(|w| self.extractor.advance(w))
                        .unwrap_or_default()
                }
                Batch::Idle if !idle_flushed && last_records.elapsed() >= idle_flush => {
                    idle_flushed = true;
                    self.flush_idle()
                }
                Batch::Idle => Vec::new(),
                Batch::End => self.extractor.finish(),
            };
            self.emit(&rows).await?;
            self.commit(source, end).await?;
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
        self.save_inventory();
        tracing::info!(stats = ?self.stats, "pipeline stopped");
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
    fn flush_idle(&mut self) -> Vec<FeatureRow> {
        match self.extractor.max_event_time() {
            Some(t) => {
                tracing::debug!(event_time = t, "source idle; emitting windows");
                self.stats.idle_flushes += 1;
                self.extractor.advance(t)
            }
            None => Vec::new(),
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
                    match self.extractor.observe(&event) {
                        Observed::Accepted => {
                            let ts = event.ts().millis();
                            chunk.1 = Some(chunk.1.map_or(ts, |t: i64| t.max(ts)));
                        }
                        Observed::Late => self.stats.late_events += 1,
                        Observed::Ignored => self.stats.ignored_events += 1,
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
            self.commits.record(partition, last_offset, pending);
        }
        Ok(())
    }

    async fn emit(&mut self, rows: &[FeatureRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.stats.rows_scored += rows.len() as u64;
        let now = Utc::now();
        let alerts = score::alerts_for(&self.parts.model, rows, now);
        if alerts.is_empty() {
            return Ok(());
        }
        self.parts.store.insert_alerts(&alerts).await?;
        let decisions: Vec<_> = alerts
            .iter()
            .flat_map(|a| score::decisions_for(a, &self.parts.decisions, now))
            .collect();
        self.parts.store.insert_decisions(&decisions).await?;
        self.enqueue(&decisions)?;
        for a in &alerts {
            tracing::info!(
                alert = %a.id, identity = %a.identity, score = a.score,
                why = %score::explain_briefly(a), "alert"
            );
        }
        self.stats.alerts += alerts.len() as u64;
        self.stats.decisions += decisions.len() as u64;
        Ok(())
    }

    fn enqueue(&self, decisions: &[outrider_alerts::Decision]) -> Result<()> {
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
        let offsets = self
            .commits
            .committable(self.extractor.completed_before(), all_done);
        if offsets.is_empty() {
            return Ok(());
        }
        source.commit(&offsets).await?;
        self.stats.commits += 1;
        tracing::debug!(partitions = offsets.len(), "offsets committed");
        Ok(())
    }
}

fn trim_newline(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}
