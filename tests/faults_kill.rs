//! `outrider detect` killed with SIGKILL mid-stream and restarted against a real broker
//! (started by `scripts/test.sh`): every alert of an uninterrupted run is stored, once.
#![allow(clippy::unwrap_used)] // test code

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../detector/tests/common/offsets.rs"]
mod offsets;

use offsets::committed_total;
use outrider_alerts::{AlertQuery, AlertStore, EmbeddedStore};
use outrider_datasets::{generate, AttackMix, GeneratorConfig};
use outrider_detector::train;
use outrider_features::WindowConfig;
use outrider_ingest::source::kafka::{ensure_topic, produce_lines};

const PARTITIONS: i32 = 2;
const DEADLINE: Duration = Duration::from_secs(240);
const START_MS: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z

fn model(dir: &Path) -> PathBuf {
    let benign = generate(&GeneratorConfig {
        seed: 21,
        users: 120,
        duration_secs: 3600,
        start_ms: START_MS,
        attacks: AttackMix {
            token_replay: 0,
            bola: 0,
            credential_stuffing: 0,
        },
        ..GeneratorConfig::default()
    });
    let events: Vec<_> = benign.events.iter().map(|e| &e.event).collect();
    let rows = train::feature_rows(events.iter().copied(), &WindowConfig::default()).unwrap();
    let opts = train::default_train_options(42, "2026-11-22T00:00:00Z".into());
    let path = dir.join("model.json");
    train::train(&rows, &opts).unwrap().save(&path).unwrap();
    path
}

/// Attack traffic, in event-time order, keyed by identity.
fn traffic() -> Vec<(String, String)> {
    let data = generate(&GeneratorConfig {
        seed: 22,
        users: 120,
        duration_secs: 20 * 60,
        start_ms: START_MS + 2 * 3_600_000,
        ..GeneratorConfig::default()
    });
    let mut events: Vec<_> = data.events.iter().map(|e| &e.event).collect();
    events.sort_by_key(|e| e.ts().millis());
    events
        .iter()
        .map(|e| (e.identity_key(), e.to_json_line()))
        .collect()
}

fn config(dir: &Path, brokers: &str, topic: &str, group: &str, model: &Path) -> PathBuf {
    let data_dir = dir.join(group);
    let toml = format!(
        r#"[source]
kind = "kafka"
[source.kafka]
brokers = "{brokers}"
topic = "{topic}"
group_id = "{group}"
poll_timeout_ms = 300
[model]
path = "{model}"
[alerts]
data_dir = "{data}"
[pipeline]
batch_size = 100
[checkpoints]
interval_secs = 0
"#,
        model = model.display(),
        data = data_dir.display(),
    );
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

/// A running `outrider detect`, its log lines on a channel.
struct Detector {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Detector {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_outrider"))
            .args(["detect", "--config"])
            .arg(config)
            .env("OUTRIDER_LOG", "outrider_detector=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(strip_ansi(&line)).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `needle`; panics on timeout or exit, showing the
    /// last lines the detector logged.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        let mut recent = std::collections::VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(line) => {
                    if recent.len() == 40 {
                        recent.pop_front();
                    }
                    recent.push_back(line);
                }
                Err(e) => panic!(
                    "no log line with {needle:?}: {e}; last lines:\n{}",
                    Vec::from(recent).join("\n")
                ),
            }
        }
    }

    /// The last `n` lines logged and not yet read, for a failure message.
    fn last_lines(&self, n: usize) -> String {
        let lines: Vec<String> = self.lines.try_iter().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until the group has committed more than `past` records of the topic; panics on
    /// timeout, showing the last lines the detector logged.
    fn wait_for_commit_past(&self, brokers: &str, topic: &str, group: &str, past: i64) {
        let deadline = Instant::now() + DEADLINE;
        while committed_total(brokers, topic, group, PARTITIONS) <= past {
            assert!(
                Instant::now() < deadline,
                "the detector committed nothing past {past}; last lines:\n{}",
                self.last_lines(60)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT (Ctrl-C): the detector stops cleanly.
    fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "detect exited with {status}");
    }
}

/// A failed assertion must not leave the detector running: it would stay in the consumer
/// group and hold partitions from the next run.
impl Drop for Detector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The log line without terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn stored_ids(data_dir: &Path) -> (BTreeSet<String>, u64) {
    let store = EmbeddedStore::open(data_dir).unwrap();
    let query = AlertQuery {
        limit: usize::MAX,
        ..AlertQuery::default()
    };
    let ids = store
        .alerts(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    (ids, store.count_alerts().await.unwrap())
}

/// Runs one uninterrupted detector over the topic: the alerts it stores are the expected ones.
fn reference_run(dir: &Path, brokers: &str, topic: &str, model: &Path) -> PathBuf {
    let mut detector = Detector::start(&config(dir, brokers, topic, "reference", model));
    // Once the source is idle, every window that can close is stored and committed.
    detector.wait_for("source idle; windows stored and committed");
    detector.interrupt();
    dir.join("reference")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka: run scripts/test.sh"]
async fn a_detector_killed_mid_stream_stores_every_alert_once_after_restart() {
    let brokers = std::env::var("OUTRIDER_TEST_KAFKA_BROKERS")
        .expect("OUTRIDER_TEST_KAFKA_BROKERS is not set: run scripts/test.sh");
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let topic = format!("faults_kill_{}_{}", std::process::id(), START_MS);
    let group = "killed";
    let records = traffic();
    ensure_topic(&brokers, &topic, PARTITIONS).await.unwrap();
    let produced = produce_lines(
        &brokers,
        &topic,
        records.iter().map(|(k, l)| (k.as_str(), l.as_str())),
    )
    .await
    .unwrap() as i64;

    // Kill -9 once alerts are stored and offsets committed, before the end.
    let cfg = config(dir.path(), &brokers, &topic, group, &model);
    let mut detector = Detector::start(&cfg);
    detector.wait_for("alert alert=");
    detector.wait_for_commit_past(&brokers, &topic, group, 0);
    detector.child.kill().unwrap(); // SIGKILL
    detector.child.wait().unwrap();
    let at_kill = committed_total(&brokers, &topic, group, PARTITIONS);
    assert!(
        at_kill < produced,
        "killed after the end ({at_kill} of {produced} committed): not mid-stream"
    );

    // Restart: it resumes from the commit with the checkpointed state.
    let mut detector = Detector::start(&cfg);
    detector.wait_for("partition state restored from checkpoint");
    detector.wait_for("source idle; windows stored and committed");
    // Every window is stored by now. The commit may still be behind: the killed member
    // stays in the group until its session times out, and a commit refused in that
    // rebalance is made good once the partitions come back and are read again.
    detector.wait_for_commit_past(&brokers, &topic, group, at_kill);
    detector.interrupt();

    let (stored, count) = stored_ids(&dir.path().join(group)).await;
    assert_eq!(count, stored.len() as u64, "every alert once");
    let (expected, _) = stored_ids(&reference_run(dir.path(), &brokers, &topic, &model)).await;
    assert!(!expected.is_empty());
    let lost: Vec<_> = expected.difference(&stored).collect();
    assert!(lost.is_empty(), "alerts lost by the kill: {lost:?}");
    eprintln!(
        "kill -9 at {at_kill}/{produced} committed: {} alerts stored, {} expected, {} beyond",
        stored.len(),
        expected.len(),
        stored.difference(&expected).count()
    );
}
