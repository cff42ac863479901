//! Prometheus metrics of a detector run, served by [`crate::ops`] at `/metrics`.
//!
//! Two kinds. What the pipeline already counts in [`PipelineStats`] is copied into a
//! snapshot once per batch and encoded when scraped, so `/metrics` says exactly what the
//! run's stats say and the per-record path pays nothing. What only exists here (scoring
//! latency, model reloads, the outbox depth, readiness) is kept in atomics updated where
//! it happens, or read when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use outrider_alerts::Outbox;
use outrider_features::{ExtractorStats, FeatureExtractor};
use outrider_models::TrainedModel;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::ops::Readiness;
use crate::pipeline::PipelineStats;

/// Every metric name starts with `outrider_`.
pub const PREFIX: &str = "outrider";

/// The feature state's size is recomputed at most this often: it walks every tracked key.
const STATE_BYTES_REFRESH: Duration = Duration::from_secs(10);
/// ... and never more often than this many times its last walk's duration, so the walk
/// costs at most 1% of the pipeline's time however many keys are tracked.
const STATE_BYTES_COST_FACTOR: u32 = 100;

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics of one detector, shared (behind an `Arc`) by the pipeline, the model
/// reloader and the ops endpoint.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    shared: Arc<Shared>,
    score_batch_seconds: Histogram,
    score_row_seconds: Histogram,
    score_batch_rows: Histogram,
}

/// What the scrape-time collector reads.
#[derive(Debug, Default)]
struct Shared {
    snapshot: Mutex<Snapshot>,
    readiness: Readiness,
    model_reloads: AtomicU64,
    model_reload_failures: AtomicU64,
    outbox: OnceLock<Arc<Outbox>>,
}

#[derive(Debug, Default)]
struct Snapshot {
    stats: PipelineStats,
    features: FeatureGauges,
    state_bytes_at: Option<Instant>,
    state_bytes_took: Duration,
    model: Option<ModelInfo>,
}

/// The feature extractor's size and what its key cap refused, as last published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureGauges {
    pub tracked_keys: u64,
    pub max_tracked_keys: u64,
    pub state_bytes: u64,
    /// Partitions with a feature state (each has its own key cap).
    pub partitions: u64,
    /// Summed over the partitions.
    pub extractor: ExtractorStats,
}

fn add_stats(a: ExtractorStats, b: ExtractorStats) -> ExtractorStats {
    ExtractorStats {
        accepted: a.accepted + b.accepted,
        late: a.late + b.late,
        ignored: a.ignored + b.ignored,
        rows_emitted: a.rows_emitted + b.rows_emitted,
        overflowed_events: a.overflowed_events + b.overflowed_events,
        untracked_keys: a.untracked_keys + b.untracked_keys,
        evicted_keys: a.evicted_keys + b.evicted_keys,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ModelInfo {
    version: String,
    schema: String,
    threshold: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        let mut registry = Registry::with_prefix(PREFIX);
        let score_batch_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 16));
        let score_row_seconds = Histogram::new(exponential_buckets(1e-7, 2.0, 16));
        let score_batch_rows = Histogram::new(exponential_buckets(1.0, 2.0, 17));
        registry.register(
            "score_batch_seconds",
            "Time to score one batch of feature rows (model and rules), in seconds",
            score_batch_seconds.clone(),
        );
        registry.register(
            "score_row_seconds",
            "Scoring time per row of a batch (the batch's time over its rows), in seconds",
            score_row_seconds.clone(),
        );
        registry.register(
            "score_batch_rows",
            "Feature rows per scored batch",
            score_batch_rows.clone(),
        );
        registry.register_collector(Box::new(StatsCollector(Arc::clone(&shared))));
        Self {
            registry,
            shared,
            score_batch_seconds,
            score_row_seconds,
            score_batch_rows,
        }
    }

    /// The readiness the `/ready` probe reports (also exported as `outrider_ready`).
    pub fn readiness(&self) -> &Readiness {
        &self.shared.readiness
    }

    /// The outbox whose depth is read at every scrape.
    pub fn set_outbox(&self, outbox: Arc<Outbox>) {
        let _ = self.shared.outbox.set(outbox);
    }

    /// After each batch: the run's counters and the feature state. The state's size walks
    /// every key, so it is refreshed at most every 10 s (less often when the walk is slow)
    /// unless `final_batch`.
    pub fn record_batch(
        &self,
        stats: &PipelineStats,
        extractors: &[&FeatureExtractor],
        final_batch: bool,
    ) {
        let mut snap = lock(&self.shared.snapshot);
        snap.stats.clone_from(stats);
        let f = &mut snap.features;
        f.tracked_keys = extractors.iter().map(|x| x.tracked_keys() as u64).sum();
        // The cap is per partition (each partition has its own extractor).
        f.max_tracked_keys = extractors
            .first()
            .map_or(0, |x| x.config().max_tracked_keys as u64);
        f.partitions = extractors.len() as u64;
        f.extractor = extractors
            .iter()
            .map(|x| x.stats())
            .fold(ExtractorStats::default(), add_stats);
        let every = STATE_BYTES_REFRESH.max(snap.state_bytes_took * STATE_BYTES_COST_FACTOR);
        let stale = snap.state_bytes_at.is_none_or(|at| at.elapsed() >= every);
        if final_batch || stale {
            let started = Instant::now();
            snap.features.state_bytes = extractors.iter().map(|x| x.state_bytes() as u64).sum();
            snap.state_bytes_took = started.elapsed();
            snap.state_bytes_at = Some(Instant::now());
        }
    }

    /// One scored batch: its duration, per row, and its size.
    pub fn observe_scoring(&self, rows: usize, took: Duration) {
        if rows == 0 {
            return;
        }
        let secs = took.as_secs_f64();
        self.score_batch_seconds.observe(secs);
        self.score_row_seconds.observe(secs / rows as f64);
        self.score_batch_rows.observe(rows as f64);
    }

    /// The model now scoring (at start-up, and after a reload).
    pub fn set_model(&self, model: &TrainedModel) {
        lock(&self.shared.snapshot).model = Some(ModelInfo {
            version: model.model_version().to_owned(),
            schema: model.schema().id.clone(),
            threshold: f64::from(model.threshold()),
        });
    }

    /// A reloaded model was swapped in.
    pub fn model_reloaded(&self, model: &TrainedModel) {
        self.set_model(model);
        self.shared.model_reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// A changed model file was refused (unreadable, another schema); the old model scores.
    pub fn model_reload_failed(&self) {
        self.shared
            .model_reload_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Models swapped in, and model files refused, since start.
    pub fn model_reload_counts(&self) -> (u64, u64) {
        (
            self.shared.model_reloads.load(Ordering::Relaxed),
            self.shared.model_reload_failures.load(Ordering::Relaxed),
        )
    }

    /// The feature gauges as last published.
    pub fn feature_gauges(&self) -> FeatureGauges {
        lock(&self.shared.snapshot).features
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters behind: still worth reporting.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Encodes the snapshot at scrape time.
#[derive(Debug)]
struct StatsCollector(Arc<Shared>);

impl Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (stats, features, model) = {
            let snap = lock(&self.0.snapshot);
            (snap.stats.clone(), snap.features, snap.model.clone())
        };
        encode_stats(&mut enc, &stats)?;
        encode_features(&mut enc, &features)?;
        if let Some(model) = model {
            let info = Info::new([("version", model.version), ("schema", model.schema)]);
            info.encode(enc.encode_descriptor(
                "model",
                "The model scoring now",
                None,
                info.metric_type(),
            )?)?;
            gauge_f64(
                &mut enc,
                "model_threshold",
                "The model's alert threshold",
                model.threshold,
            )?;
        }
        counter_by(
            &mut enc,
            "model_reloads",
            "Model files reloaded (swapped in) and refused (the old model kept scoring)",
            "outcome",
            [
                ("loaded", self.0.model_reloads.load(Ordering::Relaxed)),
                (
                    "refused",
                    self.0.model_reload_failures.load(Ordering::Relaxed),
                ),
            ],
        )?;
        if let Some(outbox) = self.0.outbox.get() {
            match outbox.pending_count() {
                Ok(depth) => gauge(
                    &mut enc,
                    "outbox_depth",
                    "Decision deliveries waiting in the outbox",
                    depth,
                )?,
                Err(e) => tracing::warn!(error = %e, "cannot read the outbox depth"),
            }
        }
        gauge(
            &mut enc,
            "ready",
            "1 when the detector is ready (model loaded, store open, source started, not stopping)",
            u64::from(self.0.readiness.status().ready),
        )
    }
}

fn encode_stats(enc: &mut DescriptorEncoder, s: &PipelineStats) -> Result<(), std::fmt::Error> {
    let counters = [
        ("records", "Records read from the source", s.records),
        ("events", "Events parsed from the records", s.events),
        (
            "dead_letters",
            "Refused records written to the dead-letter sink",
            s.parse_error_total(),
        ),
        (
            "late_events",
            "Events older than a window already emitted (counted, not used)",
            s.late_events,
        ),
        ("ignored_events", "Events no feature uses", s.ignored_events),
        ("rows_scored", "Feature rows scored", s.rows_scored),
        ("alerts", "Alerts raised and stored", s.alerts),
        (
            "alerts_suppressed",
            "Repeats of a recent alert, counted in their incident instead of raised",
            s.suppressed_alerts,
        ),
        (
            "revocation_findings",
            "Requests served after a revoke or block decision took effect",
            s.revocation_findings,
        ),
        ("commits", "Source offset commits", s.commits),
        (
            "idle_flushes",
            "Windows emitted early because the source was quiet",
            s.idle_flushes,
        ),
    ];
    for (name, help, v) in counters {
        counter(enc, name, help, v)?;
    }
    counter_by(
        enc,
        "parse_errors",
        "Refused records by reason (each is in the dead-letter sink)",
        "reason",
        s.parse_errors.iter().map(|(k, v)| (k.as_str(), *v)),
    )?;
    counter_by(
        enc,
        "skipped_records",
        "Well-formed records without a detection signal, by reason",
        "reason",
        s.skipped.iter().map(|(k, v)| (k.as_str(), *v)),
    )?;
    let sent = s.decisions.saturating_sub(s.simulated_decisions);
    counter_by(
        enc,
        "decisions",
        "Decisions stored: sent to enforcement points, or simulated (shadow mode, never sent)",
        "mode",
        [("sent", sent), ("simulated", s.simulated_decisions)],
    )?;
    if let Some(lag) = s.consumer_lag {
        let g = ConstGauge::new(lag);
        g.encode(enc.encode_descriptor(
            "consumer_lag",
            "Records behind the end of the assigned partitions",
            None,
            g.metric_type(),
        )?)?;
    }
    gauge(
        enc,
        "source_ended",
        "1 once a replay has read its whole input and emitted every window",
        u64::from(s.source_ended),
    )
}

fn encode_features(enc: &mut DescriptorEncoder, f: &FeatureGauges) -> Result<(), std::fmt::Error> {
    gauge(
        enc,
        "feature_tracked_keys",
        "Identities, IPs and tokens with feature state",
        f.tracked_keys,
    )?;
    gauge(
        enc,
        "feature_max_tracked_keys",
        "The key cap of each partition's feature state (features.max_tracked_keys)",
        f.max_tracked_keys,
    )?;
    gauge(
        enc,
        "feature_partitions",
        "Partitions with a feature state (each has its own key cap)",
        f.partitions,
    )?;
    gauge(
        enc,
        "feature_state_bytes",
        "Estimated bytes of feature state (refreshed every 10 s or less often)",
        f.state_bytes,
    )?;
    let x = &f.extractor;
    counter(
        enc,
        "feature_overflowed_events",
        "Events of identities refused by the key cap (they share the overflow key)",
        x.overflowed_events,
    )?;
    counter(
        enc,
        "feature_untracked_keys",
        "IPs and tokens not tracked because the key cap was reached",
        x.untracked_keys,
    )?;
    counter(
        enc,
        "feature_evicted_keys",
        "Keys forgotten after features.idle_evict_secs without events",
        x.evicted_keys,
    )
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn counter_by<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn gauge_f64(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Reads one sample from OpenMetrics text: `name{labels} value`, labels as written (for
/// tests and tools; `labels` empty for an unlabelled metric).
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == series).then(|| value.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outrider_features::WindowConfig;

    #[test]
    fn the_snapshot_is_encoded_as_counters_equal_to_the_stats() {
        let m = Metrics::new();
        let mut stats = PipelineStats {
            records: 12,
            events: 9,
            alerts: 4,
            suppressed_alerts: 2,
            decisions: 5,
            simulated_decisions: 1,
            consumer_lag: Some(7),
            ..PipelineStats::default()
        };
        stats.parse_errors.insert("truncated".into(), 2);
        stats.parse_errors.insert("malformed_json".into(), 1);
        let fx = FeatureExtractor::new(&WindowConfig::default()).unwrap();
        m.record_batch(&stats, &[&fx], true);
        m.observe_scoring(10, Duration::from_millis(2));
        let text = m.encode().unwrap();
        let get = |name, labels| sample(&text, name, labels);
        assert_eq!(get("outrider_records_total", ""), Some(12.0));
        assert_eq!(get("outrider_events_total", ""), Some(9.0));
        assert_eq!(
            get("outrider_parse_errors_total", "reason=\"truncated\""),
            Some(2.0)
        );
        assert_eq!(get("outrider_dead_letters_total", ""), Some(3.0));
        assert_eq!(get("outrider_alerts_suppressed_total", ""), Some(2.0));
        assert_eq!(get("outrider_decisions_total", "mode=\"sent\""), Some(4.0));
        assert_eq!(
            get("outrider_decisions_total", "mode=\"simulated\""),
            Some(1.0)
        );
        assert_eq!(get("outrider_consumer_lag", ""), Some(7.0));
        assert_eq!(
            get("outrider_feature_max_tracked_keys", ""),
            Some(WindowConfig::default().max_tracked_keys as f64)
        );
        assert_eq!(get("outrider_score_batch_rows_count", ""), Some(1.0));
        assert_eq!(get("outrider_score_batch_seconds_sum", ""), Some(0.002));
        assert_eq!(get("outrider_ready", ""), Some(0.0), "nothing started");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn an_empty_scoring_batch_is_not_observed() {
        let m = Metrics::new();
        m.observe_scoring(0, Duration::from_millis(1));
        let text = m.encode().unwrap();
        assert_eq!(
            sample(&text, "outrider_score_batch_rows_count", ""),
            Some(0.0)
        );
    }
}
