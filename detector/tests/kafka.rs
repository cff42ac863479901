#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Against a real Kafka-protocol broker and a real ClickHouse server (started by
//! `scripts/test.sh`): events produced to Kafka come out as alerts in ClickHouse and as
//! signed webhooks; a detector that stops after consuming but before storing loses nothing;
//! alerts and decisions reach the SIEM topic, and a SIEM topic that is down holds the
//! commit back.

mod common;

use common::offsets::committed_total;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use outrider_alerts::{
    Alert, AlertQuery, AlertStore, ClickHouseConfig, ClickHouseStore, Decision, EmbeddedStore,
    KafkaSinkConfig, RetryConfig, TargetConfig, WebhookConfig,
};
use outrider_datasets::Dataset;
use outrider_detector::config::{SourceKind, StoreKind};
use outrider_detector::normalize::Normalizer;
use outrider_detector::pipeline::{Pipeline, PipelineParts, PipelineStats};
use outrider_detector::{service, train, Config, Error};
use outrider_ingest::dead_letter::{DeadLetterFile, DeadLetters};
use outrider_ingest::source::kafka::{ensure_topic, produce_lines};
use outrider_ingest::source::{KafkaSource, KafkaSourceConfig};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(180);
const PARTITIONS: i32 = 2;

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

/// Produces the traffic keyed by identity, as the docs ask producers to.
async fn produce(brokers: &str, topic: &str, traffic: &Dataset) -> u64 {
    ensure_topic(brokers, topic, PARTITIONS).await.unwrap();
    let lines: Vec<(String, String)> = traffic
        .events
        .iter()
        .map(|e| (e.event.identity_key(), e.event.to_json_line()))
        .collect();
    produce_lines(
        brokers,
        topic,
        lines.iter().map(|(k, l)| (k.as_str(), l.as_str())),
    )
    .await
    .unwrap()
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

/// Waits until the pipeline has read `records` and then emitted its windows on going idle.
async fn caught_up(progress: &mut watch::Receiver<PipelineStats>, records: u64) -> PipelineStats {
    common::progress::caught_up(progress, DEADLINE, records).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka and clickhouse: run scripts/test.sh"]
async fn kafka_events_become_clickhouse_alerts_and_signed_webhooks() {
    let brokers = env("OUTRIDER_TEST_KAFKA_BROKERS");
    let clickhouse_url = env("OUTRIDER_TEST_CLICKHOUSE_URL");
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(25, 15);
    let topic = unique("events");
    let mut produced = produce(&brokers, &topic, &traffic).await;
    // A poison message: it must land in the dead letters and the stream must go on.
    produced += produce_lines(&brokers, &topic, [("poison", "{\"type\":\"api\",")])
        .await
        .unwrap();
    let (hook_url, mut deliveries) = common::start_receiver().await;
    std::env::set_var(common::WEBHOOK_SECRET_ENV, common::WEBHOOK_SECRET);

    let mut config = Config::default();
    config.source.kind = SourceKind::Kafka;
    config.source.kafka = kafka_source(&brokers, &topic, &unique("group"));
    config.model.path = common::model_file(dir.path());
    config.alerts.data_dir = dir.path().join("state");
    config.alerts.store = StoreKind::Clickhouse;
    config.alerts.clickhouse = ClickHouseConfig {
        url: clickhouse_url,
        database: unique("outrider_it"),
        ..ClickHouseConfig::default()
    };
    config.decisions.targets = vec![TargetConfig::Webhook(WebhookConfig {
        retry: RetryConfig {
            initial_backoff_ms: 50,
            ..RetryConfig::default()
        },
        ..WebhookConfig::new("gateway", hook_url, common::WEBHOOK_SECRET_ENV)
    })];

    let (progress_tx, mut progress) = watch::channel(PipelineStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let detector = tokio::spawn({
        let config = config.clone();
        async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            service::run_with_progress(&config, shutdown, Some(progress_tx)).await
        }
    });

    let stats = caught_up(&mut progress, produced).await;
    assert!(stats.decisions > 0, "no decisions: {stats:?}");
    assert_eq!(stats.parse_error_total(), 1);
    let dead = std::fs::read_to_string(config.dead_letter_path()).unwrap();
    let letter: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
    assert_eq!(letter["reason"], "truncated");
    assert_eq!(letter["position"]["source"], "kafka");
    assert_eq!(letter["position"]["topic"], topic.as_str());
    assert!(letter["position"]["offset"].as_i64().is_some());
    // Every decision reaches the receiver, signed; retries may repeat one, never lose it.
    let mut keys = HashSet::new();
    tokio::time::timeout(DEADLINE, async {
        while (keys.len() as u64) < stats.decisions {
            let d = deliveries.recv().await.expect("receiver closed");
            assert!(common::signature_is_valid(&d), "bad signature on {d:?}");
            let decision: Decision = serde_json::from_slice(&d.body).unwrap();
            assert_eq!(decision.id, d.idempotency_key);
            keys.insert(d.idempotency_key);
        }
    })
    .await
    .expect("not every decision was delivered");
    stop.send(()).unwrap();
    detector.await.unwrap().unwrap();

    let store = ClickHouseStore::connect(&config.alerts.clickhouse)
        .await
        .unwrap();
    let alerts = store
        .alerts(&AlertQuery {
            limit: 100_000,
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        alerts.len() as u64,
        stats.alerts,
        "every alert is in ClickHouse once"
    );
    for c in &traffic.campaigns {
        assert!(
            alerts.iter().any(|a| a.identity == c.identity_key),
            "no ClickHouse alert for {c:?}"
        );
    }
    assert!(alerts.iter().all(|a| !a.features.is_empty()));
}

/// A store that refuses every write, counting what it was offered.
#[derive(Debug, Default)]
struct FailingStore {
    offered: AtomicU64,
}

#[async_trait]
impl AlertStore for FailingStore {
    async fn insert_alerts(&self, alerts: &[Alert]) -> outrider_alerts::Result<()> {
        self.offered
            .fetch_add(alerts.len() as u64, Ordering::SeqCst);
        Err(outrider_alerts::Error::InvalidData(
            "store is down (test)".into(),
        ))
    }
    async fn insert_decisions(&self, _: &[Decision]) -> outrider_alerts::Result<()> {
        Err(outrider_alerts::Error::InvalidData(
            "store is down (test)".into(),
        ))
    }
    async fn alerts(&self, _: &AlertQuery) -> outrider_alerts::Result<Vec<Alert>> {
        Ok(Vec::new())
    }
    async fn decisions(&self, _: Option<&str>, _: usize) -> outrider_alerts::Result<Vec<Decision>> {
        Ok(Vec::new())
    }
    async fn count_alerts(&self) -> outrider_alerts::Result<u64> {
        Ok(0)
    }
    fn name(&self) -> &'static str {
        "failing"
    }
}

fn pipeline(dir: &std::path::Path, store: Arc<dyn AlertStore>) -> Pipeline {
    let config = Config::default();
    let model = train::load_model(&common::model_file(dir)).unwrap();
    let parts = PipelineParts::new(
        config.features.clone(),
        Arc::new(model),
        store,
        Normalizer::new(&config.source).unwrap(),
        DeadLetters::File(DeadLetterFile::open(&dir.join("dead.jsonl")).unwrap()),
    )
    .unwrap();
    Pipeline::new(parts).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka: run scripts/test.sh"]
async fn a_detector_stopped_before_storing_rereads_its_events_on_restart() {
    let brokers = env("OUTRIDER_TEST_KAFKA_BROKERS");
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(25, 15);
    let topic = unique("events");
    let group = unique("group");
    produce(&brokers, &topic, &traffic).await;

    // First run: consumes and scores, but the store is down, so the run stops with an error
    // before anything is stored, and nothing may be committed.
    let failing = Arc::new(FailingStore::default());
    let mut first = pipeline(dir.path(), failing.clone());
    let mut source = KafkaSource::new(kafka_source(&brokers, &topic, &group)).unwrap();
    let outcome = tokio::time::timeout(DEADLINE, first.run(&mut source, std::future::pending()))
        .await
        .expect("first run neither stored nor failed");
    assert!(outcome.is_err(), "the store failure must stop the run");
    assert!(
        failing.offered.load(Ordering::SeqCst) > 0,
        "alerts were computed"
    );
    assert!(first.stats().records > 0);
    drop(source);
    let total = traffic.events.len() as i64;
    let committed = committed_total(&brokers, &topic, &group, PARTITIONS);
    assert!(
        committed < total,
        "the events behind the unstored alerts stay uncommitted"
    );

    // Restart in the same consumer group with a working store: the events come back.
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());
    let (tx, mut progress) = watch::channel(PipelineStats::default());
    let mut second = pipeline(dir.path(), store.clone()).with_progress(tx);
    let mut source = KafkaSource::new(kafka_source(&brokers, &topic, &group)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        let r = second
            .run(&mut source, async {
                let _ = stopped.await;
            })
            .await;
        (r, second.stats().clone())
    });
    let uncommitted = u64::try_from(total - committed).unwrap();
    let stats = caught_up(&mut progress, uncommitted).await;
    stop.send(()).unwrap();
    let (outcome, _) = run.await.unwrap();
    outcome.unwrap();
    assert_eq!(
        stats.records, uncommitted,
        "everything not committed is read again"
    );
    let alerts = store
        .alerts(&AlertQuery {
            limit: usize::MAX,
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    for c in &traffic.campaigns {
        assert!(
            alerts.iter().any(|a| a.identity == c.identity_key),
            "campaign lost after restart: {c:?}"
        );
    }
}

/// A SIEM topic on a port where no broker listens: every publish times out.
fn unreachable_siem() -> KafkaSinkConfig {
    KafkaSinkConfig {
        timeout_ms: 1500,
        ..KafkaSinkConfig::new("127.0.0.1:1", "outrider.siem")
    }
}

/// Needs no broker: nothing listens where the SIEM topic is said to be.
#[tokio::test]
async fn a_siem_topic_that_is_down_stops_the_run_with_a_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(60, 30));
    let mut config = common::replay_config(dir.path(), input);
    config.siem.kafka = Some(unreachable_siem());
    let err = service::run(&config, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Alerts(e) if e.is_retryable()),
        "{err:?}"
    );
    assert!(err.to_string().contains("outrider.siem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka: run scripts/test.sh"]
async fn every_stored_alert_and_decision_reaches_the_siem_topic() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let brokers = env("OUTRIDER_TEST_KAFKA_BROKERS");
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(25, 15));
    let topic = unique("siem");
    ensure_topic(&brokers, &topic, PARTITIONS).await.unwrap();
    let mut config = common::replay_config(dir.path(), input);
    config.siem.kafka = Some(KafkaSinkConfig::new(brokers.clone(), topic.clone()));
    let summary = service::run(&config, std::future::pending()).await.unwrap();
    let (alerts, decisions) = common::stored(&config).await;
    assert!(!alerts.is_empty() && !decisions.is_empty());
    assert_eq!(alerts.len() as u64, summary.stats.alerts);

    let expected: HashSet<(String, String)> = alerts
        .iter()
        .map(|a| ("alert".to_owned(), a.id.clone()))
        .chain(
            decisions
                .iter()
                .map(|d| ("decision".to_owned(), d.id.clone())),
        )
        .collect();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("siem-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while seen.len() < expected.len() && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap();
        let headers = message.headers().unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
                .unwrap()
        };
        let record: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let kind = header("outrider-kind");
        assert_eq!(record["kind"], kind.as_str());
        seen.insert((kind, header("outrider-id")));
    }
    assert_eq!(
        seen, expected,
        "the topic holds exactly the stored alerts and decisions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka: run scripts/test.sh"]
async fn a_siem_topic_that_is_down_holds_back_the_commit() {
    let brokers = env("OUTRIDER_TEST_KAFKA_BROKERS");
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(25, 15);
    let topic = unique("events");
    let group = unique("group");
    produce(&brokers, &topic, &traffic).await;
    let mut config = Config::default();
    config.source.kind = SourceKind::Kafka;
    config.source.kafka = kafka_source(&brokers, &topic, &group);
    config.model.path = common::model_file(dir.path());
    config.alerts.data_dir = dir.path().join("state");
    config.siem.kafka = Some(unreachable_siem());

    let outcome = tokio::time::timeout(DEADLINE, service::run(&config, std::future::pending()))
        .await
        .expect("the run neither published nor failed");
    let err = outcome.unwrap_err();
    assert!(
        matches!(&err, Error::Alerts(e) if e.is_retryable()),
        "{err:?}"
    );
    let committed = committed_total(&brokers, &topic, &group, PARTITIONS);
    assert!(
        committed < traffic.events.len() as i64,
        "the events behind the unpublished alerts stay uncommitted ({committed} committed)"
    );
}
