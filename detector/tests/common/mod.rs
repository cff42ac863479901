//! Shared by the detector's integration tests: a trained model, labelled traffic, a replay
//! configuration, and a webhook receiver on 127.0.0.1:0.
#![allow(dead_code, clippy::unwrap_used)]

pub mod offsets;
pub mod progress;
pub mod proxy;
pub mod tansu;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use outrider_alerts::{
    Alert, AlertQuery, AlertStore, Decision, EmbeddedStore, TargetConfig, WebhookConfig,
};
use outrider_datasets::{generate, AttackMix, Dataset, GeneratorConfig};
use outrider_detector::config::SourceKind;
use outrider_detector::{train, Config};
use outrider_features::WindowConfig;
use tokio::sync::mpsc;

pub const WEBHOOK_SECRET_ENV: &str = "OUTRIDER_TEST_WEBHOOK_SECRET";
pub const WEBHOOK_SECRET: &str = "test-secret-not-for-production";

const TRAIN_START_MS: i64 = 1_793_606_400_000; // 2026-11-02T08:00:00Z

/// A model trained once per test binary on benign traffic, as model-file JSON.
fn model_json() -> &'static str {
    static MODEL: OnceLock<String> = OnceLock::new();
    MODEL.get_or_init(|| {
        let benign = generate(&GeneratorConfig {
            seed: 11,
            users: 150,
            duration_secs: 3600,
            start_ms: TRAIN_START_MS,
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
        let model = train::train(&rows, &opts).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        model.save(&path).unwrap();
        std::fs::read_to_string(path).unwrap()
    })
}

/// Writes the shared model into `dir` and returns its path.
pub fn model_file(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("model.json");
    std::fs::write(&path, model_json()).unwrap();
    path
}

/// Fresh traffic (other users than training) with one campaign of each attack kind.
pub fn attack_traffic(users: usize, minutes: u64) -> Dataset {
    generate(&GeneratorConfig {
        seed: 12,
        users,
        duration_secs: minutes * 60,
        start_ms: TRAIN_START_MS + 2 * 3_600_000,
        attacks: AttackMix {
            token_replay: 1,
            bola: 1,
            credential_stuffing: 1,
        },
        ..GeneratorConfig::default()
    })
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub timestamp: String,
    pub signature: String,
    pub idempotency_key: String,
    pub body: Bytes,
}

/// Starts a webhook receiver on 127.0.0.1:0; every request it answers (200) is sent on the
/// returned channel.
pub async fn start_receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(delivery(&headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// A received webhook: its signature headers and body.
fn delivery(headers: &HeaderMap, body: Bytes) -> Delivery {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Delivery {
        timestamp: header("x-outrider-timestamp"),
        signature: header("x-outrider-signature"),
        idempotency_key: header("idempotency-key"),
        body,
    }
}

/// Checks a delivery's signature the way a receiver is told to in the README.
pub fn signature_is_valid(d: &Delivery) -> bool {
    let now = chrono::Utc::now().timestamp();
    outrider_alerts::verify(
        WEBHOOK_SECRET.as_bytes(),
        &d.timestamp,
        &d.body,
        &d.signature,
        now,
        300,
    )
}

/// A file replay of `input` with the shared model, keeping its state under `dir/store`.
pub fn replay_config(dir: &Path, input: PathBuf) -> Config {
    let mut config = Config::default();
    config.source.kind = SourceKind::File;
    config.source.path = input;
    config.model.path = model_file(dir);
    config.alerts.data_dir = dir.join("store");
    config
}

/// Writes `traffic` as canonical JSON lines into `dir` and returns the path.
pub fn write_traffic(dir: &Path, traffic: &Dataset) -> PathBuf {
    let input = dir.join("traffic.jsonl");
    outrider_datasets::write_events_jsonl(&input, traffic).unwrap();
    input
}

/// One of the policy files in `examples/policies/`.
pub fn example_policy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies")
        .join(name)
}

/// A webhook target for the receiver at `url`, retrying fast.
pub fn webhook_target(url: &str) -> TargetConfig {
    let mut hook = WebhookConfig::new("gateway", url, WEBHOOK_SECRET_ENV);
    hook.retry.initial_backoff_ms = 50;
    TargetConfig::Webhook(hook)
}

/// Every alert and decision in the embedded store of a finished run.
pub async fn stored(config: &Config) -> (Vec<Alert>, Vec<Decision>) {
    let store = EmbeddedStore::open(&config.alerts.data_dir).unwrap();
    let query = AlertQuery {
        limit: usize::MAX,
        ..AlertQuery::default()
    };
    let alerts = store.alerts(&query).await.unwrap();
    let decisions = store.decisions(None, usize::MAX).await.unwrap();
    (alerts, decisions)
}

/// A webhook receiver that answers 503 while down and 200 once switched up; each
/// decision it accepts is sent (once per request) on the returned channel.
pub struct SwitchableReceiver {
    pub url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests answered 503.
    pub refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SwitchableReceiver {
    pub async fn start_down() -> (Self, mpsc::UnboundedReceiver<Delivery>) {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let (tx, rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let app = Router::new().route(
            "/hook",
            post({
                let (up, refused) = (up.clone(), refused.clone());
                move |headers: HeaderMap, body: Bytes| {
                    let (tx, up, refused) = (tx.clone(), up.clone(), refused.clone());
                    async move {
                        if !up.load(Ordering::SeqCst) {
                            refused.fetch_add(1, Ordering::SeqCst);
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let _ = tx.send(delivery(&headers, body));
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let receiver = Self {
            url: format!("http://{addr}/hook"),
            up,
            refused,
        };
        (receiver, rx)
    }

    pub fn come_up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
