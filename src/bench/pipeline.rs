//! `outrider bench pipeline`: the whole detector service (parse, features, bursts, scoring,
//! incidents, store, decisions, outbox, commits) on generated traffic, measured from the
//! outside.
//!
//! - Throughput (`--rate 0`): every record is available at once; events per wall second
//!   and per CPU-second of the process (all its threads), best of `--passes`.
//! - Latency (`--rate N`): records are released at N per second, in event-time order, and
//!   each stored alert is timed against the release of the record that closed its window
//!   (the first record at or past `window end + allowed lateness`, the watermark that lets
//!   the window be emitted). With `--kafka`, records go through the broker: produced at N
//!   per second, keyed by identity, and consumed by the detector's consumer group; the
//!   latency then runs from the produce call.
//!
//! Event time runs faster than the wall clock when the traffic is replayed faster than it
//! was generated (the speed-up is printed): windows then close more often, each with fewer
//! rows, than in a live deployment of the same event rate with more identities.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use clap::Args;
use outrider_alerts::{
    Alert, AlertNote, AlertQuery, AlertStatus, AlertStore, CountBucket, CountQuery, Decision,
    EmbeddedStore, Incident, IncidentQuery,
};
use outrider_datasets::{generate, AttackMix, GeneratorConfig};
use outrider_detector::config::SourceKind;
use outrider_detector::pipeline::PipelineStats;
use outrider_detector::service::{self, RunOptions};
use outrider_detector::{train as training, Config};
use outrider_features::{hash64, WindowConfig};
use outrider_ingest::source::kafka::{ensure_topic, KafkaSource, LineProducer};
use outrider_ingest::source::{CommitOffset, SourcePosition};
use outrider_ingest::{Batch, Record, Source};
use tokio::sync::watch;

use crate::commands::{train_rows, CalibrationArgs};

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Benign users in the replayed traffic (attack campaigns are injected too).
    #[arg(long, default_value_t = 5_000)]
    pub users: usize,
    /// Minutes of replayed traffic.
    #[arg(long, default_value_t = 60)]
    pub minutes: u64,
    /// Campaigns of each attack kind injected (token replay, BOLA, credential stuffing):
    /// more alerts to time.
    #[arg(long, default_value_t = 1)]
    pub campaigns: usize,
    /// Partitions the records are spread over, by identity (as producers key them).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Records released per second; 0 measures throughput (everything available at once).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Replay through this Kafka broker (needs `--rate`): produce, then consume with a
    /// consumer group, into a new topic.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Timed throughput passes; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub passes: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub async fn run(args: PipelineArgs) -> Result<()> {
    anyhow::ensure!(args.partitions >= 1, "--partitions must be at least 1");
    anyhow::ensure!(
        args.kafka.is_none() || args.rate > 0,
        "--kafka measures latency at a fixed rate: give --rate"
    );
    let work = tempfile::tempdir()?;
    let window = WindowConfig::default();
    let model = train_model(&args, &window, work.path())?;
    let traffic = Traffic::generate(&args)?;
    println!(
        "{} events of {} users over {} min ({} attack campaigns), {} partitions; model {}",
        traffic.records.len(),
        args.users,
        args.minutes,
        traffic.campaigns,
        args.partitions,
        model.display()
    );
    let mut config = Config::default();
    config.model.path = model;
    config.features = window;
    match (&args.kafka, args.rate) {
        (None, 0) => throughput(&args, &config, &traffic, work.path()).await,
        (None, rate) => {
            let schedule = traffic.schedule(rate);
            let run = in_process(&config, &traffic, &schedule, work.path()).await?;
            report_latency(&config, &traffic, &schedule, &run, "in-process")
        }
        (Some(brokers), rate) => {
            let schedule = traffic.schedule(rate);
            let run =
                through_kafka(&config, &traffic, &schedule, brokers, &args, work.path()).await?;
            report_latency(&config, &traffic, &schedule, &run, "through kafka")
        }
    }
}

/// Trains on benign traffic of other users and earlier hours, as the demo does.
fn train_model(
    args: &PipelineArgs,
    window: &WindowConfig,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf> {
    let benign = generate(&GeneratorConfig {
        seed: args.seed,
        users: args.users.min(2000),
        duration_secs: 30 * 60,
        attacks: AttackMix {
            token_replay: 0,
            bola: 0,
            credential_stuffing: 0,
        },
        ..GeneratorConfig::default()
    });
    let rows = training::feature_rows(benign.events.iter().map(|e| &e.event), window)?;
    let (model, _) = train_rows(&rows, args.seed, &CalibrationArgs::default())?;
    let path = dir.join("model.json");
    model.save(&path)?;
    Ok(path)
}

/// The replayed records, in event-time order.
struct Traffic {
    /// Each keyed by its identity, as producers key them.
    records: Vec<Record>,
    /// Event times (ms).
    times: Vec<i64>,
    campaigns: usize,
}

impl Traffic {
    fn generate(args: &PipelineArgs) -> Result<Self> {
        let set = generate(&GeneratorConfig {
            seed: args.seed.wrapping_mul(7919).wrapping_add(13),
            users: args.users,
            service_clients: (args.users / 60).max(5),
            duration_secs: args.minutes * 60,
            start_ms: GeneratorConfig::default().start_ms + 30 * 60_000,
            attacks: AttackMix {
                token_replay: args.campaigns,
                bola: args.campaigns,
                credential_stuffing: args.campaigns,
            },
            ..GeneratorConfig::default()
        });
        let mut events: Vec<_> = set.plain_events().collect();
        events.sort_by_key(|e| e.ts().millis());
        let topic: Arc<str> = "bench".into();
        let mut offsets = vec![0i64; args.partitions as usize];
        let (mut records, mut times) = (Vec::new(), Vec::new());
        for e in events {
            let key = e.identity_key();
            // As Kafka's partitioner would: one identity, one partition.
            let partition = (hash64(0, key.as_bytes()) % args.partitions as u64) as usize;
            let offset = offsets[partition];
            offsets[partition] += 1;
            records.push(Record {
                payload: Bytes::from(e.to_json_line()),
                position: SourcePosition::Kafka {
                    topic: topic.clone(),
                    partition: partition as i32,
                    offset,
                },
                key: Some(Bytes::from(key)),
            });
            times.push(e.ts().millis());
        }
        anyhow::ensure!(!records.is_empty(), "the generated traffic is empty");
        Ok(Self {
            records,
            times,
            campaigns: set.campaigns.len(),
        })
    }

    /// Record `i` is due `due[i]` after the start, `rate` records per second.
    fn schedule(&self, rate: u64) -> Schedule {
        let due = (0..self.records.len())
            .map(|i| Duration::from_secs_f64(i as f64 / rate as f64))
            .collect();
        Schedule {
            rate,
            due,
            released: Arc::new(Mutex::new(Vec::with_capacity(self.records.len()))),
        }
    }

    fn span_secs(&self) -> f64 {
        let (first, last) = (self.times[0], self.times[self.times.len() - 1]);
        (last - first) as f64 / 1000.0
    }
}

/// When each record is due, and when each was actually handed over (in order).
#[derive(Debug, Clone)]
struct Schedule {
    rate: u64,
    due: Vec<Duration>,
    released: Arc<Mutex<Vec<Instant>>>,
}

impl Schedule {
    /// When each record released so far was handed over, in order.
    fn released(&self) -> Vec<Instant> {
        self.released.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Records from memory: all at once, or on a schedule.
struct ReplaySource {
    records: Vec<Record>,
    next: usize,
    /// The start of the replay and the schedule, when paced.
    paced: Option<(Instant, Schedule)>,
}

/// How long a paced source waits for its next record before reporting a quiet poll.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

#[async_trait]
impl Source for ReplaySource {
    async fn next_batch(&mut self, max: usize) -> outrider_ingest::Result<Batch> {
        if self.next >= self.records.len() {
            return Ok(Batch::End);
        }
        let mut end = (self.next + max.max(1)).min(self.records.len());
        if let Some((start, Schedule { due, released, .. })) = &self.paced {
            let first_due = *start + due[self.next];
            let now = Instant::now();
            if first_due > now {
                let wait = (first_due - now).min(POLL_TIMEOUT);
                tokio::time::sleep(wait).await;
                if Instant::now() < first_due {
                    return Ok(Batch::Idle);
                }
            }
            let now = Instant::now();
            end = self.next + due[self.next..end].partition_point(|d| *start + *d <= now);
            if let Ok(mut r) = released.lock() {
                r.extend(std::iter::repeat_n(now, end - self.next));
            }
        }
        let batch = self.records[self.next..end].to_vec();
        self.next = end;
        Ok(Batch::Records(batch))
    }

    async fn commit(&mut self, _offsets: &[CommitOffset]) -> outrider_ingest::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} records in memory", self.records.len())
    }
}

/// The embedded store, noting when each alert was stored and the end of its window.
#[derive(Debug)]
struct TimingStore {
    inner: EmbeddedStore,
    stored: Mutex<Vec<(Instant, i64)>>,
}

impl TimingStore {
    fn open(dir: &std::path::Path) -> Result<Self> {
        Ok(Self {
            inner: EmbeddedStore::open(dir)?,
            stored: Mutex::new(Vec::new()),
        })
    }

    fn stored(&self) -> Vec<(Instant, i64)> {
        self.stored.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl AlertStore for TimingStore {
    async fn insert_alerts(&self, alerts: &[Alert]) -> outrider_alerts::Result<()> {
        self.inner.insert_alerts(alerts).await?;
        let now = Instant::now();
        if let Ok(mut s) = self.stored.lock() {
            s.extend(
                alerts
                    .iter()
                    .map(|a| (now, a.window_end.timestamp_millis())),
            );
        }
        Ok(())
    }
    async fn insert_decisions(&self, decisions: &[Decision]) -> outrider_alerts::Result<()> {
        self.inner.insert_decisions(decisions).await
    }
    async fn alerts(&self, q: &AlertQuery) -> outrider_alerts::Result<Vec<Alert>> {
        self.inner.alerts(q).await
    }
    async fn decisions(
        &self,
        alert_id: Option<&str>,
        limit: usize,
    ) -> outrider_alerts::Result<Vec<Decision>> {
        self.inner.decisions(alert_id, limit).await
    }
    async fn count_alerts(&self) -> outrider_alerts::Result<u64> {
        self.inner.count_alerts().await
    }
    fn name(&self) -> &'static str {
        "timed embedded"
    }
    async fn alert(&self, id: &str) -> outrider_alerts::Result<Option<Alert>> {
        self.inner.alert(id).await
    }
    async fn alert_counts(&self, q: &CountQuery) -> outrider_alerts::Result<Vec<CountBucket>> {
        self.inner.alert_counts(q).await
    }
    async fn set_alert_status(&self, id: &str, s: AlertStatus) -> outrider_alerts::Result<bool> {
        self.inner.set_alert_status(id, s).await
    }
    async fn add_note(&self, note: &AlertNote) -> outrider_alerts::Result<()> {
        self.inner.add_note(note).await
    }
    async fn notes(&self, alert_id: &str) -> outrider_alerts::Result<Vec<AlertNote>> {
        self.inner.notes(alert_id).await
    }
    async fn upsert_incidents(&self, incidents: &[Incident]) -> outrider_alerts::Result<()> {
        self.inner.upsert_incidents(incidents).await
    }
    async fn incidents(&self, q: &IncidentQuery) -> outrider_alerts::Result<Vec<Incident>> {
        self.inner.incidents(q).await
    }
    async fn incident(&self, id: &str) -> outrider_alerts::Result<Option<Incident>> {
        self.inner.incident(id).await
    }
}

/// What one run stored, and its counters.
struct Run {
    store: Arc<TimingStore>,
    stats: PipelineStats,
}

/// Runs the service over `source` with a timing store in `dir`.
async fn run_service(
    config: &Config,
    source: Option<Box<dyn Source>>,
    dir: &std::path::Path,
    progress: Option<watch::Sender<PipelineStats>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Run> {
    let mut config = config.clone();
    config.alerts.data_dir = dir.to_owned();
    let store = Arc::new(TimingStore::open(dir)?);
    let options = RunOptions {
        source,
        store: Some(store.clone()),
        progress,
        ..RunOptions::default()
    };
    let summary = service::run_with(&config, options, shutdown).await?;
    Ok(Run {
        store,
        stats: summary.stats,
    })
}

async fn throughput(
    args: &PipelineArgs,
    config: &Config,
    traffic: &Traffic,
    work: &std::path::Path,
) -> Result<()> {
    let mut best: Option<(Duration, Duration, PipelineStats)> = None;
    for pass in 0..args.passes.max(1) {
        let source = ReplaySource {
            records: traffic.records.clone(),
            next: 0,
            paced: None,
        };
        let dir = work.join(format!("pass-{pass}"));
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        let run = run_service(
            config,
            Some(Box::new(source)),
            &dir,
            None,
            std::future::pending(),
        )
        .await?;
        let (wall, cpu) = (wall0.elapsed(), cpu_time().saturating_sub(cpu0));
        anyhow::ensure!(
            run.stats.events as usize == traffic.records.len(),
            "{} of {} records became events",
            run.stats.events,
            traffic.records.len()
        );
        if best.as_ref().is_none_or(|(c, _, _)| cpu < *c) {
            best = Some((cpu, wall, run.stats));
        }
    }
    let Some((cpu, wall, stats)) = best else {
        anyhow::bail!("no pass ran");
    };
    let n = traffic.records.len() as f64;
    println!(
        "throughput, best of {} passes (by CPU time): {:.2} s wall, {:.2} s CPU over {} threads",
        args.passes.max(1),
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "  {:.0} events/s wall, {:.0} events per CPU-second (per core); {} windows scored, {} alerts, {} decisions",
        n / wall.as_secs_f64(),
        n / cpu.as_secs_f64().max(1e-9),
        stats.rows_scored,
        stats.alerts,
        stats.decisions,
    );
    Ok(())
}

async fn in_process(
    config: &Config,
    traffic: &Traffic,
    schedule: &Schedule,
    work: &std::path::Path,
) -> Result<Run> {
    let source = ReplaySource {
        records: traffic.records.clone(),
        next: 0,
        paced: Some((Instant::now(), schedule.clone())),
    };
    run_service(
        config,
        Some(Box::new(source)),
        &work.join("paced"),
        None,
        std::future::pending(),
    )
    .await
}

async fn through_kafka(
    config: &Config,
    traffic: &Traffic,
    schedule: &Schedule,
    brokers: &str,
    args: &PipelineArgs,
    work: &std::path::Path,
) -> Result<Run> {
    let run_id = std::process::id();
    let topic = format!("outrider-bench-{run_id}-{}", chrono::Utc::now().timestamp());
    ensure_topic(brokers, &topic, args.partitions).await?;
    let mut config = config.clone();
    config.source.kind = SourceKind::Kafka;
    config.source.kafka.brokers = brokers.to_owned();
    config.source.kafka.topic = topic.clone();
    config.source.kafka.group_id = format!("{topic}-detector");
    config.source.kafka.poll_timeout_ms = 100;
    // Fetches return as soon as a record is there; the default waits up to 500 ms for more.
    config
        .source
        .kafka
        .properties
        .insert("fetch.wait.max.ms".into(), "5".into());
    config
        .source
        .kafka
        .properties
        .insert("socket.nagle.disable".into(), "true".into());
    let (tx, mut progress) = watch::channel(PipelineStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dir = work.join("kafka");
    let reads = Arc::new(Mutex::new(Vec::new()));
    let source = ReadTimes {
        inner: KafkaSource::new(config.source.kafka.clone())?,
        reads: reads.clone(),
    };
    let detector = tokio::spawn(async move {
        run_service(&config, Some(Box::new(source)), &dir, Some(tx), async {
            let _ = stopped.await;
        })
        .await
    });
    if progress.wait_for(|s| s.partitions > 0).await.is_err() {
        return Err(stopped_early(detector).await);
    }
    let produced = produce(traffic, schedule, brokers, &topic).await?;
    let n = traffic.records.len() as u64;
    if progress.wait_for(|s| s.records >= n).await.is_err() {
        return Err(stopped_early(detector).await);
    }
    let _ = stop.send(());
    let run = detector.await.context("the detector task failed")??;
    println!("produced {produced} records to {topic}");
    report_broker_path(
        traffic,
        schedule,
        &reads.lock().map(|r| r.clone()).unwrap_or_default(),
    );
    Ok(run)
}

/// The Kafka source, noting when each record was handed to the pipeline (by a hash of its
/// payload, which the generated traffic keeps unique).
struct ReadTimes {
    inner: KafkaSource,
    reads: Arc<Mutex<Vec<(u64, Instant)>>>,
}

#[async_trait]
impl Source for ReadTimes {
    async fn next_batch(&mut self, max: usize) -> outrider_ingest::Result<Batch> {
        let batch = self.inner.next_batch(max).await?;
        if let (Batch::Records(records), Ok(mut reads)) = (&batch, self.reads.lock()) {
            let now = Instant::now();
            reads.extend(records.iter().map(|r| (hash64(0, &r.payload), now)));
        }
        Ok(batch)
    }
    async fn commit(&mut self, offsets: &[CommitOffset]) -> outrider_ingest::Result<()> {
        self.inner.commit(offsets).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn assignment(&self) -> Option<Vec<outrider_ingest::source::Partition>> {
        self.inner.assignment()
    }
    fn lag(&self) -> Option<i64> {
        self.inner.lag()
    }
    fn take_revoked(&mut self) -> Vec<outrider_ingest::source::Partition> {
        self.inner.take_revoked()
    }
    fn committed(&mut self, partitions: &[outrider_ingest::source::Partition]) -> Vec<Option<i64>> {
        self.inner.committed(partitions)
    }
}

/// Produce-to-read latency of every record: the broker's share of the event-to-alert time.
fn report_broker_path(traffic: &Traffic, schedule: &Schedule, reads: &[(u64, Instant)]) {
    let released = schedule.released();
    let index: std::collections::HashMap<u64, usize> = traffic
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (hash64(0, &r.payload), i))
        .collect();
    let mut latencies: Vec<Duration> = reads
        .iter()
        .filter_map(|(h, at)| Some(at.saturating_duration_since(*released.get(*index.get(h)?)?)))
        .collect();
    if latencies.is_empty() {
        return;
    }
    latencies.sort_unstable();
    println!(
        "produce-to-read latency of {} records: {}",
        latencies.len(),
        percentiles(&latencies)
    );
}

/// `p50 .. p90 .. p99 .. max ..` of sorted latencies, in milliseconds.
fn percentiles(sorted: &[Duration]) -> String {
    let q = |p: f64| {
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[i].as_secs_f64() * 1e3
    };
    format!(
        "p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    )
}

/// Why the detector stopped before it was told to.
async fn stopped_early(detector: tokio::task::JoinHandle<Result<Run>>) -> anyhow::Error {
    match detector.await {
        Ok(Err(e)) => e.context("the detector stopped early"),
        Ok(Ok(_)) => anyhow::anyhow!("the detector stopped before it read every record"),
        Err(e) => anyhow::anyhow!("the detector task failed: {e}"),
    }
}

/// Produces every record at its due time, noting when each was handed to the producer.
async fn produce(
    traffic: &Traffic,
    schedule: &Schedule,
    brokers: &str,
    topic: &str,
) -> Result<u64> {
    let mut producer = LineProducer::new(brokers)?;
    let start = Instant::now();
    for (i, record) in traffic.records.iter().enumerate() {
        let due = start + schedule.due[i];
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        if let Ok(mut r) = schedule.released.lock() {
            r.push(Instant::now());
        }
        let key = record
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok());
        producer.send(topic, key, &record.payload).await?;
    }
    Ok(producer.finish().await?)
}

fn report_latency(
    config: &Config,
    traffic: &Traffic,
    schedule: &Schedule,
    run: &Run,
    how: &str,
) -> Result<()> {
    let released = schedule.released();
    let lateness_ms = (config.features.allowed_lateness_secs * 1000) as i64;
    let (mut latencies, mut at_end) = (Vec::new(), 0usize);
    for (stored_at, window_end) in run.store.stored() {
        let closing = traffic
            .times
            .partition_point(|t| *t < window_end + lateness_ms);
        match released.get(closing) {
            Some(r) => latencies.push(stored_at.saturating_duration_since(*r)),
            None => at_end += 1,
        }
    }
    anyhow::ensure!(
        !latencies.is_empty(),
        "no alert was stored while records flowed"
    );
    latencies.sort_unstable();
    let speedup = schedule.rate as f64 * traffic.span_secs() / traffic.records.len() as f64;
    let window_ends = traffic.span_secs() / config.features.hop_secs as f64;
    println!(
        "event-to-alert latency {how} at {} records/s (event time x{speedup:.0}; {:.0} rows scored per window close):",
        schedule.rate,
        run.stats.rows_scored as f64 / window_ends.max(1.0),
    );
    println!(
        "  {} alerts timed ({at_end} more closed by the end of the stream): {}",
        latencies.len(),
        percentiles(&latencies)
    );
    Ok(())
}

/// CPU time of this process, all threads (user + system), from `/proc/self/stat` (Linux;
/// clock ticks of 10 ms); zero where it cannot be read.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may hold spaces:
    // state is field 3, utime field 14, stime field 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on every Linux architecture the detector targets.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
