#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Faults against real servers (started by `scripts/test.sh`): the alert store (the shared
//! ClickHouse behind a proxy the test cuts), the broker (a private Tansu the test pauses,
//! kills and restarts), and a partition moving between two detector instances. Each
//! checks that the pipeline survives, holds back its commits while it cannot store, and
//! loses no alert.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use outrider_alerts::{AlertQuery, AlertStore, ClickHouseConfig, ClickHouseStore, EmbeddedStore};
use outrider_datasets::Dataset;
use outrider_detector::checkpoint::CheckpointDir;
use outrider_detector::config::{SourceKind, StoreKind};
use outrider_detector::normalize::Normalizer;
use outrider_detector::partitions::PartitionSummary;
use outrider_detector::pipeline::{Pipeline, PipelineParts, PipelineStats};
use outrider_detector::{service, train, Config};
use outrider_ingest::dead_letter::{DeadLetterFile, DeadLetters};
use outrider_ingest::source::kafka::{ensure_topic, produce_lines};
use outrider_ingest::source::{KafkaSource, KafkaSourceConfig};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use common::offsets::{committed, committed_total};
use common::progress;

const DEADLINE: Duration = Duration::from_secs(240);
const BATCH: usize = 200;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Produces `events` keyed by identity into a topic of `partitions` partitions.
async fn produce(brokers: &str, topic: &str, partitions: i32, events: &[String]) -> u64 {
    ensure_topic(brokers, topic, partitions).await.unwrap();
    let lines: Vec<(String, &str)> = events
        .iter()
        .map(|line| (identity_of(line), line.as_str()))
        .collect();
    produce_lines(brokers, topic, lines.iter().map(|(k, l)| (k.as_str(), *l)))
        .await
        .unwrap()
}

fn identity_of(line: &str) -> String {
    outrider_ingest::parse::parse_line(line.as_bytes(), 1 << 20)
        .unwrap()
        .identity_key()
}

/// The traffic as canonical lines in event-time order, so that a part produced after an
/// idle flush holds no event older than the windows already emitted (those would be late).
fn lines(traffic: &Dataset) -> Vec<String> {
    let mut events: Vec<_> = traffic.events.iter().map(|e| &e.event).collect();
    events.sort_by_key(|e| e.ts().millis());
    events.iter().map(|e| e.to_json_line()).collect()
}

fn kafka_source(brokers: &str, topic: &str, group: &str) -> KafkaSourceConfig {
    KafkaSourceConfig {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        group_id: group.to_owned(),
        poll_timeout_ms: 300,
        ..KafkaSourceConfig::default()
    }
}

/// Waits for `n` more turns of the pipeline's loop (every poll publishes, even an empty
/// one): proof that it is still running.
async fn iterations(progress: &mut watch::Receiver<PipelineStats>, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(DEADLINE, progress.changed())
            .await
            .expect("the pipeline stopped turning")
            .expect("pipeline ended early");
    }
}

/// Waits until the pipeline has read `records` and then emitted its windows on going idle.
async fn caught_up(progress: &mut watch::Receiver<PipelineStats>, records: u64) -> PipelineStats {
    progress::caught_up(progress, DEADLINE, records).await
}

/// Waits until `done` holds for the published counters; `what` names it on timeout.
async fn until(
    progress: &mut watch::Receiver<PipelineStats>,
    what: &str,
    done: impl FnMut(&PipelineStats) -> bool,
) -> PipelineStats {
    progress::until(progress, DEADLINE, what, done).await
}

/// A pipeline over `store` with the shared model, checkpointing into `checkpoints`
/// after every batch.
fn pipeline(
    dir: &std::path::Path,
    store: Arc<dyn AlertStore>,
    checkpoints: &std::path::Path,
) -> Pipeline {
    let config = Config::default();
    let model = train::load_model(&common::model_file(dir)).unwrap();
    let dead = dir.join(format!("{}.dead.jsonl", unique("p")));
    let mut parts = PipelineParts::new(
        config.features.clone(),
        Arc::new(model),
        store,
        Normalizer::new(&config.source).unwrap(),
        DeadLetters::File(DeadLetterFile::open(&dead).unwrap()),
    )
    .unwrap();
    parts.checkpoints = Some(CheckpointDir::open(checkpoints).unwrap());
    parts.checkpoint_interval = Duration::ZERO;
    // Small batches, so that commits follow the stream instead of one window behind it all.
    parts.pipeline.batch_size = BATCH;
    Pipeline::new(parts).unwrap()
}

/// A pipeline running on its own task until told to stop; it hands itself back.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Pipeline>,
    progress: watch::Receiver<PipelineStats>,
}

fn spawn(pipeline: Pipeline, source: KafkaSourceConfig) -> Running {
    let (tx, progress) = watch::channel(PipelineStats::default());
    let mut pipeline = pipeline.with_progress(tx);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut source = KafkaSource::new(source).unwrap();
        let shutdown = async {
            let _ = stopped.await;
        };
        pipeline.run(&mut source, shutdown).await.unwrap();
        pipeline
    });
    Running {
        stop,
        task,
        progress,
    }
}

impl Running {
    async fn stop(self) -> Pipeline {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

async fn alert_ids(store: &dyn AlertStore) -> BTreeSet<String> {
    let query = AlertQuery {
        limit: 1_000_000,
        ..AlertQuery::default()
    };
    store
        .alerts(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

/// The alerts of one uninterrupted run over the whole topic (its own group), and its
/// partitions' states.
async fn reference(
    dir: &std::path::Path,
    brokers: &str,
    topic: &str,
    records: u64,
) -> (BTreeSet<String>, Vec<PartitionSummary>) {
    let store = Arc::new(EmbeddedStore::open(&dir.join(unique("reference"))).unwrap());
    let ckpt = dir.join(unique("reference-ckpt"));
    let mut run = spawn(
        pipeline(dir, store.clone(), &ckpt),
        kafka_source(brokers, topic, &unique("reference")),
    );
    caught_up(&mut run.progress, records).await;
    let pipeline = run.stop().await;
    (alert_ids(store.as_ref()).await, pipeline.partitions())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka and clickhouse: run scripts/test.sh"]
async fn clickhouse_down_holds_the_batch_and_nothing_is_lost() {
    let brokers = env("OUTRIDER_TEST_KAFKA_BROKERS");
    let clickhouse = env("OUTRIDER_TEST_CLICKHOUSE_URL");
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("faults_ch");
    let group = unique("group");
    let traffic = parts(lines(&common::attack_traffic(25, 15)), 2);
    let first_part = produce(&brokers, &topic, 2, &traffic[0]).await;

    let proxy = common::proxy::Proxy::start(common::proxy::socket_addr(&clickhouse)).await;
    let mut config = Config::default();
    config.source.kind = SourceKind::Kafka;
    config.source.kafka = kafka_source(&brokers, &topic, &group);
    config.model.path = common::model_file(dir.path());
    config.alerts.data_dir = dir.path().join("state");
    config.alerts.store = StoreKind::Clickhouse;
    config.alerts.clickhouse = ClickHouseConfig {
        url: format!("http://{}", proxy.addr()),
        database: unique("outrider_faults"),
        ..ClickHouseConfig::default()
    };
    config.pipeline.batch_size = BATCH;
    config.pipeline.store_retry_initial_ms = 50;
    config.pipeline.store_retry_max_ms = 400;
    config.checkpoints.interval_secs = 0;
    let (tx, mut progress) = watch::channel(PipelineStats::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let detector = tokio::spawn({
        let config = config.clone();
        async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            service::run_with_progress(&config, shutdown, Some(tx)).await
        }
    });

    // Cut the store once the first part is in, then send the second.
    let before = caught_up(&mut progress, first_part).await;
    assert!(before.alerts > 0 && before.commits > 0, "{before:?}");
    proxy.cut();
    let produced = first_part + produce(&brokers, &topic, 2, &traffic[1]).await;
    let first = until(&mut progress, "store retries", |s| s.store_retries >= 3).await;
    let committed_then = committed_total(&brokers, &topic, &group, 2);
    let later = until(&mut progress, "more store retries", |s| {
        s.store_retries >= 8
    })
    .await;
    assert_eq!(
        (later.records, later.commits),
        (first.records, first.commits),
        "while the store is down nothing more is read or committed"
    );
    assert_eq!(committed_total(&brokers, &topic, &group, 2), committed_then);
    assert!(committed_then < produced as i64);
    assert!(
        !detector.is_finished(),
        "a store outage must not stop the run"
    );

    proxy.restore();
    let stats = caught_up(&mut progress, produced).await;
    stop.send(()).unwrap();
    detector.await.unwrap().unwrap();
    assert!(stats.commits > later.commits, "commits resume");
    assert!(committed_total(&brokers, &topic, &group, 2) > committed_then);

    let store = ClickHouseStore::connect(&ClickHouseConfig {
        url: clickhouse,
        ..config.alerts.clickhouse.clone()
    })
    .await
    .unwrap();
    let stored = alert_ids(&store).await;
    assert_eq!(
        store.count_alerts().await.unwrap(),
        stored.len() as u64,
        "no alert twice"
    );
    let (expected, _) = reference(dir.path(), &brokers, &topic, produced).await;
    assert!(!expected.is_empty());
    assert_eq!(
        stored, expected,
        "the same alerts as a run without the outage"
    );
}

/// Splits traffic in `n` consecutive parts.
fn parts(lines: Vec<String>, n: usize) -> Vec<Vec<String>> {
    let size = lines.len().div_ceil(n);
    lines.chunks(size).map(<[String]>::to_vec).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the tansu binary: run scripts/test.sh"]
async fn a_paused_or_restarted_broker_does_not_stop_the_pipeline() {
    let mut broker = common::tansu::Broker::start();
    let brokers = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = "events";
    let traffic = parts(lines(&common::attack_traffic(20, 15)), 3);
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());
    let ckpt = dir.path().join("ckpt");

    // Part one, then an outage that keeps the broker's state (SIGSTOP), then part two.
    let mut produced = produce(&brokers, topic, 1, &traffic[0]).await;
    let mut run = spawn(
        pipeline(dir.path(), store.clone(), &ckpt),
        kafka_source(&brokers, topic, "detector"),
    );
    caught_up(&mut run.progress, produced).await;
    broker.pause();
    // The pipeline keeps polling through the outage (each poll publishes its counters).
    iterations(&mut run.progress, 10).await;
    assert!(
        !run.task.is_finished(),
        "a paused broker must not stop the run"
    );
    broker.resume();
    produced += produce(&brokers, topic, 1, &traffic[1]).await;
    let after_pause = caught_up(&mut run.progress, produced).await;
    let offsets = committed(&brokers, topic, "detector", 1);
    assert!(offsets[0] > 0, "commits go on after the pause");

    // The broker dies and comes back empty (memory storage): the topic is recreated and
    // the records produced to it are read from its first offset and committed.
    broker.stop();
    let down_at = run.progress.borrow().clone();
    iterations(&mut run.progress, 10).await;
    assert!(
        !run.task.is_finished(),
        "a dead broker must not stop the run"
    );
    broker.restart();
    let third = produce(&brokers, topic, 1, &traffic[2]).await;
    let stats = until(&mut run.progress, "the third part", |s| {
        s.records >= down_at.records + third
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while committed(&brokers, topic, "detector", 1)[0] == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing committed after the restart: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pipeline = run.stop().await;
    let final_stats = pipeline.stats().clone();
    assert!(final_stats.records >= after_pause.records + third);
    eprintln!(
        "broker faults: {} records, {} restored, {} refused checkpoints",
        final_stats.records, final_stats.checkpoints_restored, final_stats.checkpoints_refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka: run scripts/test.sh"]
async fn a_partition_moving_between_instances_keeps_its_state_and_its_alerts() {
    let brokers = env("OUTRIDER_TEST_KAFKA_BROKERS");
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("faults_move");
    let group = unique("group");
    let traffic = parts(lines(&common::attack_traffic(16, 12)), 2);
    let first_part = produce(&brokers, &topic, 2, &traffic[0]).await;
    let ckpt = dir.path().join("shared-ckpt");
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());

    // Two instances of one group share the partitions, the checkpoint dir and the store.
    let mut a = spawn(
        pipeline(dir.path(), store.clone(), &ckpt),
        kafka_source(&brokers, &topic, &group),
    );
    until(&mut a.progress, "a first assignment", |s| s.partitions > 0).await;
    let mut b = spawn(
        pipeline(dir.path(), store.clone(), &ckpt),
        kafka_source(&brokers, &topic, &group),
    );
    until(&mut b.progress, "b's partition", |s| s.partitions == 1).await;
    until(&mut a.progress, "a's partition", |s| s.partitions == 1).await;
    let a_then = caught_up(&mut a.progress, 1).await;
    let b_then = caught_up(&mut b.progress, 1).await;
    assert!(a_then.records + b_then.records >= first_part);

    // B stops (its partition is checkpointed); A is assigned both and restores B's.
    let b = b.stop().await;
    let moved = b.partitions()[0].partition.clone();
    until(&mut a.progress, "a taking over", |s| s.partitions == 2).await;
    let before = caught_up(&mut a.progress, 1).await;
    assert!(before.checkpoints_restored >= 1, "{before:?}");
    let second_part = produce(&brokers, &topic, 2, &traffic[1]).await;
    caught_up(&mut a.progress, before.records + second_part).await;
    let a = a.stop().await;

    let (expected, reference) =
        reference(dir.path(), &brokers, &topic, first_part + second_part).await;
    let summaries = a.partitions();
    let taken = summaries.iter().find(|s| s.partition == moved).unwrap();
    assert!(
        taken.restored_through.is_some(),
        "restored from B's checkpoint: {taken:?}"
    );
    assert!(taken.tracked_keys > 0);
    for s in &summaries {
        let r = reference
            .iter()
            .find(|r| r.partition == s.partition)
            .unwrap();
        // The same events, each counted once, the same windows emitted, the same keys:
        // the state is that of one uninterrupted run.
        assert_eq!(
            (s.extractor, s.tracked_keys),
            (r.extractor, r.tracked_keys),
            "partition {}",
            s.partition.partition
        );
    }
    let stored = alert_ids(store.as_ref()).await;
    let lost: Vec<_> = expected.difference(&stored).collect();
    assert!(lost.is_empty(), "alerts lost across the move: {lost:?}");
    let extra = stored.difference(&expected).count();
    eprintln!(
        "moved partition {}: {} alerts ({} beyond the reference: repeats another instance's grouper had suppressed)",
        moved.partition,
        stored.len(),
        extra
    );
    let per_partition: BTreeMap<i32, u64> = summaries
        .iter()
        .map(|s| (s.partition.partition, s.extractor.accepted))
        .collect();
    eprintln!("accepted per partition: {per_partition:?}");
}
