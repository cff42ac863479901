#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Operating the detector: `/metrics` equals the run's counters, the probes, the metrics
//! key, hot model reload (accepted and refused), and faults: a receiver that is down, a
//! poison message on Kafka, a flood of random IPs against the key cap.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use outrider_detector::config::{SourceKind, StoreKind};
use outrider_detector::metrics::sample;
use outrider_detector::ops::OpsConfig;
use outrider_detector::pipeline::PipelineStats;
use outrider_detector::reload::{self, ReloadOutcome, ReloadRequests};
use outrider_detector::service::{self, RunOptions, RunSummary};
use outrider_detector::{Config, Error};
use outrider_ingest::source::{CommitOffset, Source, SourcePosition};
use outrider_ingest::{Batch, Record};
use reqwest::StatusCode;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(180);
const METRICS_KEY_ENV: &str = "OUTRIDER_TEST_METRICS_KEY";
const METRICS_KEY: &str = "metrics-test-key-0123456789";

/// Records pushed by the test; blocks (no idle flushes) until the next push, ends when
/// the sender is dropped. Lets a test hold the pipeline between two batches.
struct ChannelSource {
    rx: mpsc::Receiver<Vec<String>>,
    line: u64,
}

#[async_trait]
impl Source for ChannelSource {
    async fn next_batch(&mut self, _max: usize) -> outrider_ingest::Result<Batch> {
        let Some(lines) = self.rx.recv().await else {
            return Ok(Batch::End);
        };
        let records = lines
            .into_iter()
            .map(|l| {
                self.line += 1;
                Record {
                    payload: Bytes::from(l),
                    position: SourcePosition::file("channel", self.line, 0),
                    key: None,
                }
            })
            .collect();
        Ok(Batch::Records(records))
    }

    async fn commit(&mut self, _offsets: &[CommitOffset]) -> outrider_ingest::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "test channel".into()
    }
}

fn channel_source() -> (mpsc::Sender<Vec<String>>, Box<dyn Source>) {
    let (tx, rx) = mpsc::channel(4);
    (tx, Box::new(ChannelSource { rx, line: 0 }))
}

/// A running service with its ops endpoint on 127.0.0.1:0.
struct Running {
    ops: String,
    progress: watch::Receiver<PipelineStats>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<RunSummary, Error>>,
}

impl Running {
    async fn start(
        mut config: Config,
        source: Option<Box<dyn Source>>,
        reload: Option<ReloadRequests>,
    ) -> Self {
        if config.ops.is_none() {
            config.ops = Some(OpsConfig::default());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = format!("http://{}", listener.local_addr().unwrap());
        let (progress_tx, progress) = watch::channel(PipelineStats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let options = RunOptions {
            progress: Some(progress_tx),
            ops_listener: Some(listener),
            reload,
            source,
            ..RunOptions::default()
        };
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            service::run_with(&config, options, shutdown).await
        });
        Self {
            ops,
            progress,
            stop: Some(stop),
            task,
        }
    }

    /// Waits for the counters to satisfy `done`.
    async fn wait_for(&mut self, done: impl Fn(&PipelineStats) -> bool) -> PipelineStats {
        common::progress::until(&mut self.progress, DEADLINE, "the expected counters", done).await
    }

    async fn metrics(&self) -> String {
        let (status, body) = get(&format!("{}/metrics", self.ops), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    fn request_shutdown(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
    }

    async fn stop(mut self) -> RunSummary {
        if self.stop.is_some() {
            self.request_shutdown();
        }
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the service did not stop in time")
            .unwrap()
            .unwrap()
    }
}

async fn get(url: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
}

/// Traffic as canonical lines, in chunks of `chunk`.
fn lines(traffic: &outrider_datasets::Dataset) -> Vec<String> {
    traffic
        .events
        .iter()
        .map(|e| e.event.to_json_line())
        .collect()
}

async fn push(tx: &mpsc::Sender<Vec<String>>, lines: &[String]) {
    for chunk in lines.chunks(1000) {
        tx.send(chunk.to_vec()).await.unwrap();
    }
}

/// The shared model, edited and written over `path`.
fn write_model(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut model);
    std::fs::write(path, model.to_string()).unwrap();
}

fn model_version(path: &Path) -> String {
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    model["model_version"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_replay_equal_the_runs_counters() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(60, 30);
    let mut text = lines(&traffic).join("\n");
    text.push_str("\nnot json at all\n{\"type\":\"api\",\n{\"type\":\"api\",\n");
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(&input, text).unwrap();
    let config = common::replay_config(dir.path(), input);
    let mut run = Running::start(config.clone(), None, None).await;
    let stats = run.wait_for(|s| s.source_ended).await;
    assert!(stats.alerts > 0 && stats.decisions > 0, "{stats:?}");

    let m = run.metrics().await;
    let counters = [
        ("outrider_records_total", stats.records),
        ("outrider_events_total", stats.events),
        ("outrider_dead_letters_total", 3),
        ("outrider_late_events_total", stats.late_events),
        ("outrider_rows_scored_total", stats.rows_scored),
        ("outrider_alerts_total", stats.alerts),
        ("outrider_alerts_suppressed_total", stats.suppressed_alerts),
        ("outrider_commits_total", stats.commits),
    ];
    for (name, expected) in counters {
        assert_eq!(metric(&m, name, ""), expected as f64, "{name}");
    }
    assert_eq!(stats.records, traffic.events.len() as u64 + 3);
    assert_eq!(
        metric(
            &m,
            "outrider_parse_errors_total",
            "reason=\"malformed_json\""
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "outrider_parse_errors_total", "reason=\"truncated\""),
        2.0
    );
    let sent = metric(&m, "outrider_decisions_total", "mode=\"sent\"");
    let simulated = metric(&m, "outrider_decisions_total", "mode=\"simulated\"");
    assert_eq!(sent + simulated, stats.decisions as f64);
    assert_eq!(simulated, stats.simulated_decisions as f64);
    // Scoring latency: one observation per scored batch, every row counted.
    assert_eq!(
        metric(&m, "outrider_score_batch_rows_sum", ""),
        stats.rows_scored as f64
    );
    assert!(metric(&m, "outrider_score_batch_seconds_count", "") > 0.0);
    let tracked = metric(&m, "outrider_feature_tracked_keys", "");
    assert!(tracked > 0.0);
    assert!(metric(&m, "outrider_feature_state_bytes", "") > tracked * 16.0);
    let version = model_version(&config.model.path);
    let info = format!(
        "schema=\"{}\",version=\"{version}\"",
        outrider_features::SCHEMA_ID
    );
    let info_alt = format!(
        "version=\"{version}\",schema=\"{}\"",
        outrider_features::SCHEMA_ID
    );
    assert!(
        sample(&m, "outrider_model_info", &info).or(sample(&m, "outrider_model_info", &info_alt))
            == Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "outrider_model_reloads_total", "outcome=\"loaded\""),
        0.0
    );
    assert_eq!(metric(&m, "outrider_outbox_depth", ""), 0.0);

    // The probes: alive and ready once the source started.
    let (status, body) = get(&format!("{}/health", run.ops), None).await;
    assert_eq!((status, body.trim()), (StatusCode::OK, "ok"));
    let (status, body) = get(&format!("{}/ready", run.ops), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(metric(&m, "outrider_ready", ""), 1.0);

    let summary = run.stop().await;
    assert_eq!(
        summary.stats, stats,
        "nothing happened after the replay ended"
    );
}

#[tokio::test]
async fn metrics_need_the_key_when_one_is_configured_and_probes_never_do() {
    std::env::set_var(METRICS_KEY_ENV, METRICS_KEY);
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(5, 2));
    let mut config = common::replay_config(dir.path(), input);
    config.ops = Some(OpsConfig {
        metrics_key_env: Some(METRICS_KEY_ENV.into()),
        ..OpsConfig::default()
    });
    let mut run = Running::start(config, None, None).await;
    run.wait_for(|s| s.source_ended).await;
    let url = format!("{}/metrics", run.ops);
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (status, _) = get(&url, Some("wrong-key-0123456789abcdef")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(&url, Some(METRICS_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("outrider_events_total"));
    for probe in ["health", "ready"] {
        let (status, _) = get(&format!("{}/{probe}", run.ops), None).await;
        assert_eq!(status, StatusCode::OK, "/{probe}");
    }
    run.stop().await;
}

#[tokio::test]
async fn without_an_ops_section_no_ops_listener_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_traffic(dir.path(), &common::attack_traffic(5, 2));
    let config = common::replay_config(dir.path(), input);
    let options = RunOptions {
        ops_listener: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        ..RunOptions::default()
    };
    let err = service::run_with(&config, options, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("[ops]"), "{err}");
}

/// Half the traffic, a reload check with the model file as `edit` leaves it, the other
/// half: the alerts before and after the check, and the check's outcome.
/// The run's directory comes back too: the caller reads the store in it.
async fn replay_around_a_reload(
    edit: impl FnOnce(&Path),
) -> (
    tempfile::TempDir,
    Config,
    u64,
    PipelineStats,
    ReloadOutcome,
    String,
) {
    let dir = tempfile::tempdir().unwrap();
    let traffic = common::attack_traffic(60, 30);
    let all = lines(&traffic);
    let (first, second) = all.split_at(all.len() / 2);
    let config = common::replay_config(dir.path(), dir.path().join("unused.jsonl"));
    let (tx, source) = channel_source();
    let (handle, requests) = reload::channel();
    let mut run = Running::start(config.clone(), Some(source), Some(requests)).await;
    push(&tx, first).await;
    let half = run.wait_for(|s| s.records == first.len() as u64).await;

    edit(&config.model.path);
    let outcome = handle.check().await.unwrap();
    push(&tx, second).await;
    drop(tx);
    let stats = run.wait_for(|s| s.source_ended).await;
    let m = run.metrics().await;
    let summary = run.stop().await;
    assert_eq!(summary.stats, stats);
    (dir, config, half.alerts, stats, outcome, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_model_scores_every_batch_after_the_swap() {
    let mut old_version = String::new();
    let (_dir, config, alerts_before, stats, outcome, m) = replay_around_a_reload(|path| {
        old_version = model_version(path);
        write_model(path, |model| {
            model["model_version"] = "reloaded-v2".into();
            let t = model["threshold"].as_f64().unwrap();
            model["threshold"] = (t - 0.03).into();
        });
    })
    .await;
    assert_eq!(
        outcome,
        ReloadOutcome::Loaded {
            model_version: "reloaded-v2".into()
        }
    );
    assert_eq!(
        metric(&m, "outrider_model_reloads_total", "outcome=\"loaded\""),
        1.0
    );
    assert_eq!(
        metric(&m, "outrider_model_reloads_total", "outcome=\"refused\""),
        0.0
    );
    assert!(m.contains("version=\"reloaded-v2\""), "{m}");

    let (alerts, _) = common::stored(&config).await;
    assert_eq!(alerts.len() as u64, stats.alerts);
    let old = alerts
        .iter()
        .filter(|a| a.model_version == old_version)
        .count() as u64;
    let new = alerts
        .iter()
        .filter(|a| a.model_version == "reloaded-v2")
        .count() as u64;
    assert!(alerts_before > 0, "the first half raised alerts");
    assert_eq!(
        old, alerts_before,
        "the old model scored up to the swap only"
    );
    assert_eq!(old + new, stats.alerts);
    assert!(new > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_of_another_schema_is_refused_and_the_old_one_keeps_scoring() {
    let mut old_version = String::new();
    let (_dir, config, alerts_before, stats, outcome, m) = replay_around_a_reload(|path| {
        old_version = model_version(path);
        write_model(path, |model| {
            model["model_version"] = "other-schema".into();
            model["schema"]["id"] = "identity-v0".into();
        });
    })
    .await;
    match &outcome {
        ReloadOutcome::Refused { error } => assert!(error.contains("identity-v0"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        metric(&m, "outrider_model_reloads_total", "outcome=\"refused\""),
        1.0
    );
    assert_eq!(
        metric(&m, "outrider_model_reloads_total", "outcome=\"loaded\""),
        0.0
    );
    let (alerts, _) = common::stored(&config).await;
    assert!(
        stats.alerts > alerts_before,
        "the second half raised alerts too"
    );
    assert_eq!(alerts.len() as u64, stats.alerts);
    assert!(alerts.iter().all(|a| a.model_version == old_version));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_model_file_is_refused() {
    let (_dir, _, _, stats, outcome, m) = replay_around_a_reload(|path| {
        std::fs::write(path, "{\"format_version\": 2, \"trunc").unwrap();
    })
    .await;
    assert!(
        matches!(outcome, ReloadOutcome::Refused { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        metric(&m, "outrider_model_reloads_total", "outcome=\"refused\""),
        1.0
    );
    assert!(stats.source_ended);
}

/// A service with a webhook receiver that is down, fed the attack traffic through a
/// channel (kept open): it has stored decisions, all waiting in the outbox.
async fn decisions_waiting_for_a_receiver() -> (
    Running,
    common::SwitchableReceiver,
    mpsc::UnboundedReceiver<common::Delivery>,
    mpsc::Sender<Vec<String>>,
    Config,
    tempfile::TempDir,
) {
    std::env::set_var(common::WEBHOOK_SECRET_ENV, common::WEBHOOK_SECRET);
    let dir = tempfile::tempdir().unwrap();
    let (receiver, deliveries) = common::SwitchableReceiver::start_down().await;
    let mut config = common::replay_config(dir.path(), dir.path().join("unused.jsonl"));
    let mut hook = common::webhook_target(&receiver.url);
    if let outrider_alerts::TargetConfig::Webhook(w) = &mut hook {
        w.retry.max_backoff_ms = 200;
        w.retry.breaker_cooldown_ms = 200;
    }
    config.decisions.targets = vec![hook];
    let (tx, source) = channel_source();
    let mut run = Running::start(config.clone(), Some(source), None).await;
    let all = lines(&common::attack_traffic(60, 30));
    push(&tx, &all).await;
    let stats = run.wait_for(|s| s.records == all.len() as u64).await;
    let live = stats.decisions - stats.simulated_decisions;
    assert!(live > 0, "{stats:?}");
    let m = run.metrics().await;
    assert_eq!(
        metric(&m, "outrider_outbox_depth", ""),
        live as f64,
        "every live decision waits in the outbox"
    );
    // The worker has tried (and been refused) at least once: the entries stay.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while receiver.refused.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = run.metrics().await;
    assert_eq!(metric(&m, "outrider_outbox_depth", ""), live as f64);
    (run, receiver, deliveries, tx, config, dir)
}

/// The ids of the decisions that are not simulated, from the store.
async fn live_decisions(config: &Config) -> BTreeSet<String> {
    let (_, decisions) = common::stored(config).await;
    decisions
        .into_iter()
        .filter(|d| !d.simulated)
        .map(|d| d.id)
        .collect()
}

async fn receive_all(
    deliveries: &mut mpsc::UnboundedReceiver<common::Delivery>,
    expected: usize,
) -> BTreeSet<String> {
    let mut received = BTreeSet::new();
    let wait = async {
        while received.len() < expected {
            let d = deliveries.recv().await.unwrap();
            assert!(common::signature_is_valid(&d));
            received.insert(d.idempotency_key);
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.unwrap();
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_wait_in_the_outbox_while_the_receiver_is_down_and_leave_when_it_is_up() {
    let (run, receiver, mut deliveries, tx, config, _dir) =
        decisions_waiting_for_a_receiver().await;
    let stats = run.progress.borrow().clone();
    let expected = (stats.decisions - stats.simulated_decisions) as usize;
    receiver.come_up();
    let received = receive_all(&mut deliveries, expected).await;
    // The outbox marks an entry delivered once the receiver answered: poll the gauge.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metric(&run.metrics().await, "outrider_outbox_depth", "") > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox did not drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(tx);
    let summary = run.stop().await;
    assert_eq!(summary.outbox_pending, 0);
    assert_eq!(received, live_decisions(&config).await, "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_false_when_shutdown_starts_and_the_drain_waits_for_the_receiver() {
    let (mut run, receiver, mut deliveries, _tx, config, _dir) =
        decisions_waiting_for_a_receiver().await;
    let ready = format!("{}/ready", run.ops);
    assert_eq!(get(&ready, None).await.0, StatusCode::OK);
    run.request_shutdown();
    // The drain holds the service (the receiver is down): /ready says so meanwhile.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let body = loop {
        let (status, body) = get(&ready, None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "still ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["shutting_down"], true);
    assert_eq!(body["model_loaded"], true);
    let (status, _) = get(&format!("{}/health", run.ops), None).await;
    assert_eq!(status, StatusCode::OK, "alive while draining");
    receiver.come_up();
    let stats = run.progress.borrow().clone();
    let expected = (stats.decisions - stats.simulated_decisions) as usize;
    let summary = run.stop().await;
    assert_eq!(summary.outbox_pending, 0, "the drain delivered everything");
    let received = receive_all(&mut deliveries, expected).await;
    assert_eq!(received, live_decisions(&config).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_ip_flood_stays_under_the_key_cap() {
    const FLOOD: u32 = 6000;
    const CAP: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let start_ms = 1_793_613_600_000i64; // 2026-11-02T10:00:00Z
    let mut text = String::new();
    for i in 0..FLOOD {
        // Anonymous requests, each from another address: each is its own identity.
        let ts = chrono::DateTime::from_timestamp_millis(start_ms + i64::from(i) * 50)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let ip = format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
        text.push_str(&format!(
            "{{\"type\":\"api\",\"ts\":\"{ts}\",\"request_id\":\"f{i}\",\"method\":\"GET\",\"path\":\"/login\",\"status\":401,\"client_ip\":\"{ip}\"}}\n"
        ));
    }
    let input = dir.path().join("flood.jsonl");
    std::fs::write(&input, text).unwrap();
    let mut config = common::replay_config(dir.path(), input);
    config.features.max_tracked_keys = CAP;
    let mut run = Running::start(config, None, None).await;
    let stats = run.wait_for(|s| s.source_ended).await;
    assert_eq!(stats.events, u64::from(FLOOD), "every event was processed");
    let m = run.metrics().await;
    run.stop().await;
    let tracked = metric(&m, "outrider_feature_tracked_keys", "");
    assert!(tracked > 0.0 && tracked <= CAP as f64, "{tracked}");
    assert_eq!(
        metric(&m, "outrider_feature_max_tracked_keys", ""),
        CAP as f64
    );
    let refused = metric(&m, "outrider_feature_overflowed_events_total", "")
        + metric(&m, "outrider_feature_untracked_keys_total", "");
    assert!(refused >= f64::from(FLOOD) - CAP as f64, "{m}");
    // Bounded: a few KiB per tracked key at most, however many addresses came.
    let bytes = metric(&m, "outrider_feature_state_bytes", "");
    assert!(bytes > 0.0 && bytes < CAP as f64 * 8192.0, "{bytes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka: run scripts/test.sh"]
async fn a_poison_message_is_dead_lettered_and_the_stream_goes_on() {
    use outrider_ingest::source::kafka::{ensure_topic, produce_lines};
    use outrider_ingest::source::KafkaSourceConfig;
    let brokers = std::env::var("OUTRIDER_TEST_KAFKA_BROKERS")
        .expect("OUTRIDER_TEST_KAFKA_BROKERS is not set: run scripts/test.sh");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("ops_poison_{}_{nanos}", std::process::id());
    let group = format!("{topic}_group");
    ensure_topic(&brokers, &topic, 1).await.unwrap();
    let traffic = common::attack_traffic(25, 15);
    let keyed: Vec<(String, String)> = traffic
        .events
        .iter()
        .map(|e| (e.event.identity_key(), e.event.to_json_line()))
        .collect();
    let pairs = |records: &'static [(String, String)]| {
        records.iter().map(|(k, l)| (k.as_str(), l.as_str()))
    };
    let keyed: &'static [(String, String)] = keyed.leak();
    let (first, second) = keyed.split_at(keyed.len() / 2);
    let mut produced = produce_lines(&brokers, &topic, pairs(first)).await.unwrap();
    produced += produce_lines(&brokers, &topic, [("poison", "{\"type\":\"api\",")])
        .await
        .unwrap();
    produced += produce_lines(&brokers, &topic, pairs(second))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.source.kind = SourceKind::Kafka;
    config.source.kafka = KafkaSourceConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        group_id: group.clone(),
        poll_timeout_ms: 300,
        ..KafkaSourceConfig::default()
    };
    config.model.path = common::model_file(dir.path());
    config.alerts.data_dir = dir.path().join("state");
    config.alerts.store = StoreKind::Embedded;
    config.pipeline.idle_flush_ms = 500;
    // Small batches: offsets are committed per batch once its windows are complete, so the
    // batches before the last one (the poison's among them) get committed.
    config.pipeline.batch_size = 200;
    let mut run = Running::start(config.clone(), None, None).await;
    let stats = run
        .wait_for(|s| s.records >= produced && s.idle_flushes > 0 && s.commits > 0)
        .await;
    assert_eq!(stats.events, produced - 1, "every other record went on");
    let m = run.metrics().await;
    assert_eq!(
        metric(&m, "outrider_parse_errors_total", "reason=\"truncated\""),
        1.0
    );
    assert_eq!(metric(&m, "outrider_dead_letters_total", ""), 1.0);
    assert!(metric(&m, "outrider_consumer_lag", "") >= 0.0);
    run.stop().await;

    let letters = std::fs::read_to_string(config.dead_letter_path()).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.trim()).unwrap();
    assert_eq!(letter["reason"], "truncated");
    assert_eq!(letter["position"]["source"], "kafka");
    let poison_offset = letter["position"]["offset"].as_i64().unwrap();
    assert_eq!(poison_offset, first.len() as i64);

    // The group's commit went past the poison message.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(15))
        .unwrap();
    let offset = committed.elements()[0].offset().to_raw().unwrap();
    assert!(
        offset > poison_offset,
        "committed {offset}, poison at {poison_offset}"
    );
}
