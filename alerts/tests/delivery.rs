//! End-to-end delivery through the public API: outbox file, worker, real HTTP
//! receivers on 127.0.0.1:0. Crashes are simulated by aborting the worker task and
//! dropping every handle on the redb file, then reopening it as a restart would.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use common::{decision, Receiver};
use outrider_alerts::{
    build_targets_with, verify, verify_jwt, DeliveryEvent, DeliveryState, Job, Jwks, Outbox,
    OutboxWorker, RetryConfig, Sent, SetPollQueue, SetTarget, Target, TargetConfig, WebhookConfig,
    WebhookSink,
};

const SECRET: &str = "integration-test-secret";

fn webhook_config(url: String) -> WebhookConfig {
    WebhookConfig {
        timeout_ms: 2000,
        retry: RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 10,
            ..RetryConfig::default()
        },
        ..WebhookConfig::new("gateway", url, "UNUSED")
    }
}

fn webhook(url: String) -> Arc<WebhookSink> {
    Arc::new(WebhookSink::with_secret(webhook_config(url), SECRET).expect("sink"))
}

fn worker(outbox: &Arc<Outbox>, sink: Arc<WebhookSink>) -> OutboxWorker {
    OutboxWorker::new(
        Arc::clone(outbox),
        HashMap::from([("gateway".to_owned(), sink)]),
    )
}

#[tokio::test]
async fn failing_receiver_gets_each_decision_once_in_effect() {
    let receiver = Receiver::start(3, 503).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let decisions: Vec<_> = (0..6).map(|i| decision(&format!("tok-{i}"))).collect();
    outbox.enqueue(&decisions, &["gateway".to_owned()]).unwrap();
    let delivered = worker(&outbox, webhook(receiver.url()))
        .drain(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(delivered, 6);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 9, "3 failures + 6 deliveries");
    let ok = receiver.ok_counts();
    assert_eq!(ok.len(), 6);
    for d in &decisions {
        assert_eq!(ok.get(&d.id), Some(&1), "{} delivered once", d.id);
    }
    let now = chrono::Utc::now().timestamp();
    for r in &requests {
        assert!(verify(
            SECRET.as_bytes(),
            &r.timestamp,
            &r.body,
            &r.signature,
            now,
            300
        ));
        assert!(!verify(
            b"other-secret",
            &r.timestamp,
            &r.body,
            &r.signature,
            now,
            300
        ));
    }
    for d in &decisions {
        let status = outbox.status(&d.id).unwrap();
        assert!(matches!(
            status[0].state,
            DeliveryState::Delivered {
                http_status: Some(200),
                ..
            }
        ));
    }
}

#[tokio::test]
async fn crash_after_the_outbox_write_redelivers_after_restart() {
    let receiver = Receiver::start(0, 503).await;
    let dir = tempfile::tempdir().unwrap();
    let decisions = [decision("tok-a"), decision("tok-b")];
    {
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.enqueue(&decisions, &["gateway".to_owned()]).unwrap();
        // "Crash": the process dies before any send.
    }
    assert!(receiver.requests().is_empty());

    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    assert_eq!(outbox.pending_count().unwrap(), 2);
    let delivered = worker(&outbox, webhook(receiver.url()))
        .drain(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(delivered, 2);
    assert_eq!(receiver.ok_counts().len(), 2);
}

/// Sends for real, then hangs before the worker can record the outcome, so the test
/// can kill the worker exactly between the send and the record.
#[derive(Debug)]
struct HangAfterSend {
    inner: Arc<WebhookSink>,
    sent: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl Target for HangAfterSend {
    fn name(&self) -> &str {
        Target::name(&*self.inner)
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
    fn policy(&self) -> outrider_alerts::DeliveryPolicy {
        self.inner.policy()
    }
    async fn send(&self, job: &Job<'_>) -> outrider_alerts::Result<Sent> {
        Target::send(&*self.inner, job).await?;
        let _ = self.sent.send(job.decision.id.clone());
        std::future::pending().await
    }
}

#[tokio::test]
async fn crash_between_send_and_record_redelivers_the_same_idempotency_key() {
    let receiver = Receiver::start(0, 503).await;
    let dir = tempfile::tempdir().unwrap();
    let d = decision("tok-crash");
    let (tx, mut sent) = mpsc::unbounded_channel();
    {
        let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
        outbox
            .enqueue(std::slice::from_ref(&d), &["gateway".to_owned()])
            .unwrap();
        let hang: Arc<dyn Target> = Arc::new(HangAfterSend {
            inner: webhook(receiver.url()),
            sent: tx,
        });
        let worker = OutboxWorker::with_targets(
            Arc::clone(&outbox),
            HashMap::from([("gateway".to_owned(), hang)]),
        );
        let task = tokio::spawn(async move { worker.drain(Duration::from_secs(60)).await });
        let id = tokio::time::timeout(Duration::from_secs(20), sent.recv())
            .await
            .expect("sent")
            .expect("channel open");
        assert_eq!(id, d.id);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // The outcome never reached the outbox.
        assert_eq!(outbox.pending_count().unwrap(), 1);
    }

    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let delivered = worker(&outbox, webhook(receiver.url()))
        .drain(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(delivered, 1);
    // At least once: the receiver saw it twice, under the same idempotency key, so it
    // applies it once.
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.idempotency_key == d.id));
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same decision both times"
    );
    assert_eq!(receiver.ok_counts().get(&d.id), Some(&2));
    assert!(matches!(
        outbox.status(&d.id).unwrap()[0].state,
        DeliveryState::Delivered { attempts: 1, .. }
    ));
}

/// Targets built from config (the way the service would), a webhook and a SET poll
/// queue side by side, with per-target status and the published JWKS.
#[tokio::test]
async fn configured_targets_deliver_side_by_side() {
    let receiver = Receiver::start(0, 503).await;
    let dir = tempfile::tempdir().unwrap();
    let key_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys/ec-sec1.pem");
    let configs: Vec<TargetConfig> = serde_json::from_value(serde_json::json!([
        {"type": "webhook", "name": "gateway", "url": receiver.url(), "secret_env": "OUTRIDER_IT_WEBHOOK_SECRET",
         "retry": {"initial_backoff_ms": 1, "max_backoff_ms": 10}},
        {"type": "set", "name": "caep", "issuer": "https://outrider.test", "audience": "https://rp.test",
         "key_path": key_path, "delivery": {"method": "poll", "receiver": "rp"}},
    ]))
    .unwrap();
    let env = |var: &str| (var == "OUTRIDER_IT_WEBHOOK_SECRET").then(|| SECRET.to_owned());
    let queue = Arc::new(SetPollQueue::open(dir.path()).unwrap());
    let targets = build_targets_with(&configs, Some(&queue), &env).unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let d = decision("tok-side");
    let names: Vec<String> = configs.iter().map(|c| c.name().to_owned()).collect();
    outbox.enqueue(std::slice::from_ref(&d), &names).unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    let worker = OutboxWorker::with_targets(Arc::clone(&outbox), targets).with_events(tx);
    assert_eq!(worker.drain(Duration::from_secs(30)).await.unwrap(), 2);

    let status = outbox.status(&d.id).unwrap();
    let by_target: HashMap<_, _> = status
        .iter()
        .map(|s| (s.target.as_str(), &s.state))
        .collect();
    assert!(matches!(
        by_target["gateway"],
        DeliveryState::Delivered {
            http_status: Some(200),
            ..
        }
    ));
    assert!(matches!(
        by_target["caep"],
        DeliveryState::Delivered {
            http_status: None,
            ..
        }
    ));
    let mut delivered = 0;
    while let Ok(e) = events.try_recv() {
        delivered += usize::from(matches!(e, DeliveryEvent::Delivered { .. }));
    }
    assert_eq!(delivered, 2);

    let polled = queue.poll("rp", 10, &[]).unwrap();
    let set = polled.sets.values().next().expect("one set");
    let TargetConfig::Set(set_config) = &configs[1] else {
        panic!("second target is the set target");
    };
    let jwks = SetTarget::new(set_config.clone(), Some(&queue))
        .unwrap()
        .jwks();
    let jwks: Jwks = serde_json::from_str(&serde_json::to_string(&jwks).unwrap()).unwrap();
    let v = verify_jwt(set, &jwks, Some("secevent+jwt")).unwrap();
    assert_eq!(v.claims["txn"], d.id);
}
