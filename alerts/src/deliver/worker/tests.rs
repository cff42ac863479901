//! Worker tests: real webhook receivers for delivery, and a scripted in-process target
//! under paused tokio time for the circuit breaker and dead-letter timing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::deliver::breaker::BreakerConfig;
use crate::deliver::outbox::{DeliveryState, StateKind};
use crate::deliver::test_receiver::{sample_decision, Receiver};
use crate::deliver::webhook::{verify, WebhookConfig, WebhookSink};
use crate::deliver::RetryConfig;
use crate::model::Decision;

const SECRET: &[u8] = b"worker-test-secret";

fn sink(url: String) -> Arc<WebhookSink> {
    let cfg = WebhookConfig {
        timeout_ms: 2000,
        retry: RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..RetryConfig::default()
        },
        ..WebhookConfig::new("hook", url, "UNUSED")
    };
    Arc::new(WebhookSink::with_secret(cfg, SECRET).unwrap())
}

fn decisions(n: usize) -> Vec<Decision> {
    (0..n)
        .map(|i| sample_decision("alert-w", &format!("tok-{i}")))
        .collect()
}

fn worker(outbox: &Arc<Outbox>, url: String) -> OutboxWorker {
    let sinks = HashMap::from([("hook".to_owned(), sink(url))]);
    OutboxWorker::new(Arc::clone(outbox), sinks).with_batch_size(2)
}

fn drain_events(rx: &mut mpsc::UnboundedReceiver<DeliveryEvent>) -> Vec<DeliveryEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn drain_delivers_every_decision_exactly_once_despite_failures() {
    let receiver = Receiver::start(2, 503).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let decisions = decisions(5);
    outbox.enqueue(&decisions, &["hook".to_owned()]).unwrap();

    let worker = worker(&outbox, receiver.url());
    let delivered = worker.drain(Duration::from_secs(20)).await.unwrap();
    assert_eq!(delivered, 5);
    assert_eq!(outbox.pending_count().unwrap(), 0);

    let counts = receiver.delivered_counts();
    assert_eq!(counts.len(), 5);
    for d in &decisions {
        assert_eq!(
            counts.get(&d.id),
            Some(&1),
            "decision {} delivered once",
            d.id
        );
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 7, "2 failures + 5 deliveries");
    let now = chrono::Utc::now().timestamp();
    assert!(requests
        .iter()
        .all(|r| verify(SECRET, &r.timestamp, &r.body, &r.signature, now, 60)));
    let failed: Vec<_> = outbox
        .entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.attempts > 1)
        .collect();
    assert!(!failed.is_empty(), "some entries needed a retry");
    assert!(failed.iter().all(|e| e.last_error.is_none()));
    // The status API tells the same story.
    for d in &decisions {
        let status = outbox.status(&d.id).unwrap();
        assert_eq!(status.len(), 1);
        assert!(
            matches!(
                status[0].state,
                DeliveryState::Delivered {
                    http_status: Some(200),
                    ..
                }
            ),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn run_delivers_on_notify_and_stops_on_shutdown() {
    let mut receiver = Receiver::start(2, 500).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let worker = worker(&outbox, receiver.url());
    let notifier = worker.notifier();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });

    let decisions = decisions(3);
    outbox.enqueue(&decisions, &["hook".to_owned()]).unwrap();
    notifier.notify_one();

    let mut seen = Vec::new();
    for _ in 0..decisions.len() {
        let key = tokio::time::timeout(Duration::from_secs(20), receiver.next_first_delivery())
            .await
            .expect("delivery within timeout")
            .expect("receiver alive");
        seen.push(key);
    }
    seen.sort();
    let mut want: Vec<_> = decisions.iter().map(|d| d.id.clone()).collect();
    want.sort();
    assert_eq!(seen, want);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("worker stops")
        .unwrap();
    assert_eq!(outbox.pending_count().unwrap(), 0);
    assert!(receiver.delivered_counts().values().all(|&n| n == 1));
}

#[tokio::test]
async fn entries_for_unknown_targets_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    outbox
        .enqueue(&decisions(1), &["missing".to_owned()])
        .unwrap();
    let worker = OutboxWorker::with_targets(Arc::clone(&outbox), HashMap::new());
    let err = worker.drain(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::DrainTimeout {
                delivered: 0,
                pending: 1
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let entry = &outbox.entries().unwrap()[0];
    assert_eq!(entry.attempts, 1);
    assert!(entry
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("no target configured"));
}

#[tokio::test]
async fn permanent_failures_stay_pending() {
    let receiver = Receiver::start(usize::MAX, 400).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    outbox.enqueue(&decisions(1), &["hook".to_owned()]).unwrap();
    let worker = worker(&outbox, receiver.url());
    let err = worker.drain(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(err, Error::DrainTimeout { pending: 1, .. }),
        "{err:?}"
    );
    let entry = &outbox.entries().unwrap()[0];
    assert!(entry.attempts >= 1);
    assert!(entry.last_error.as_deref().unwrap_or("").contains("400"));
    assert_eq!(entry.last_http_status, Some(400));
    // A 400 is the receiver answering: it does not count against the endpoint.
    assert_eq!(
        worker.breaker_state("hook"),
        Some(BreakerState::Closed {
            consecutive_failures: 0
        })
    );
}

/// A receiver that is down, then up: the circuit opens after the configured failures,
/// nothing is sent while it is open, a probe closes it, and every decision arrives
/// exactly once. Real HTTP and real time; synchronised on the worker's events and the
/// receiver's deliveries, never on sleeps.
#[tokio::test]
async fn circuit_opens_while_receiver_is_down_and_closes_when_it_is_back() {
    let mut receiver = Receiver::start(0, 503).await;
    receiver.set_down(true);
    let cool_down_ms = 300;
    let cfg = WebhookConfig {
        timeout_ms: 2000,
        retry: RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            breaker_failures: 2,
            breaker_cooldown_ms: cool_down_ms,
            ..RetryConfig::default()
        },
        ..WebhookConfig::new("hook", receiver.url(), "UNUSED")
    };
    let sink = Arc::new(WebhookSink::with_secret(cfg, SECRET).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let (tx, mut events) = mpsc::unbounded_channel();
    let worker = Arc::new(
        OutboxWorker::new(
            Arc::clone(&outbox),
            HashMap::from([("hook".to_owned(), sink)]),
        )
        .with_events(tx),
    );
    let decisions = decisions(4);
    outbox.enqueue(&decisions, &["hook".to_owned()]).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn({
        let worker = Arc::clone(&worker);
        async move {
            worker
                .run(async move {
                    let _ = stopped.await;
                })
                .await
        }
    });

    let mut seen = Vec::new();
    let opened_until = loop {
        let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("circuit opens")
            .expect("worker alive");
        seen.push(e.clone());
        if let DeliveryEvent::BreakerOpened { until_ms, .. } = e {
            break until_ms;
        }
    };
    assert!(matches!(
        worker.breaker_state("hook"),
        Some(BreakerState::Open { .. })
    ));
    receiver.set_down(false);
    for _ in 0..decisions.len() {
        tokio::time::timeout(Duration::from_secs(20), receiver.next_first_delivery())
            .await
            .expect("delivered after recovery")
            .expect("receiver alive");
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("worker stops")
        .unwrap();
    seen.extend(drain_events(&mut events));

    // Exactly the configured number of failures opened it.
    let failures_before_open = seen
        .iter()
        .take_while(|e| !matches!(e, DeliveryEvent::BreakerOpened { .. }))
        .filter(|e| matches!(e, DeliveryEvent::Retrying { .. }))
        .count();
    assert_eq!(failures_before_open, 2, "{seen:?}");
    // While open, nothing reached the receiver: every request after an opening came
    // at or after the cool-down's end (a few ms of slack between the worker's clock
    // and the receiver's wall clock).
    let requests = receiver.requests();
    let opens: Vec<i64> = seen
        .iter()
        .filter_map(|e| match e {
            DeliveryEvent::BreakerOpened { until_ms, .. } => Some(*until_ms),
            _ => None,
        })
        .collect();
    assert_eq!(opens.first(), Some(&opened_until));
    for until in &opens {
        let opened_at = until - cool_down_ms as i64;
        for r in requests.iter().filter(|r| r.at_ms > opened_at + 5) {
            assert!(
                r.at_ms >= until - 5,
                "request at {} while open until {until}",
                r.at_ms
            );
        }
    }
    assert!(seen
        .iter()
        .any(|e| matches!(e, DeliveryEvent::Deferred { .. })));
    assert!(matches!(
        seen.iter().rfind(|e| matches!(
            e,
            DeliveryEvent::BreakerOpened { .. }
                | DeliveryEvent::BreakerHalfOpen { .. }
                | DeliveryEvent::BreakerClosed { .. }
        )),
        Some(DeliveryEvent::BreakerClosed { .. })
    ));
    assert_eq!(
        worker.breaker_state("hook"),
        Some(BreakerState::Closed {
            consecutive_failures: 0
        })
    );
    let counts = receiver.delivered_counts();
    assert_eq!(counts.len(), decisions.len());
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(outbox.pending_count().unwrap(), 0);
}

/// A target whose answers are scripted, recording when (tokio time) it was called.
#[derive(Debug)]
struct Scripted {
    policy: DeliveryPolicy,
    script: Mutex<VecDeque<Result<Sent>>>,
    /// Answer once the script is used up.
    then: fn() -> Result<Sent>,
    calls: Mutex<Vec<(Instant, String)>>,
    count: AtomicUsize,
}

impl Scripted {
    fn new(policy: DeliveryPolicy, script: Vec<Result<Sent>>, then: fn() -> Result<Sent>) -> Self {
        Scripted {
            policy,
            script: Mutex::new(script.into()),
            then,
            calls: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
        }
    }

    fn calls(&self) -> Vec<(Instant, String)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Target for Scripted {
    fn name(&self) -> &str {
        "mock"
    }
    fn kind(&self) -> &'static str {
        "mock"
    }
    fn endpoint(&self) -> &str {
        "mock://endpoint"
    }
    fn policy(&self) -> DeliveryPolicy {
        self.policy
    }
    async fn send(&self, job: &Job<'_>) -> Result<Sent> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now(), job.decision.id.clone()));
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| (self.then)())
    }
}

fn unavailable() -> Result<Sent> {
    Err(Error::Delivery {
        target: "mock".into(),
        status: Some(503),
        attempts: 1,
        retryable: true,
        message: "receiver answered 503".into(),
    })
}

fn delivered() -> Result<Sent> {
    Ok(Sent::Delivered {
        http_status: Some(200),
    })
}

fn mock_worker(
    outbox: &Arc<Outbox>,
    target: &Arc<Scripted>,
) -> (OutboxWorker, mpsc::UnboundedReceiver<DeliveryEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let targets: HashMap<String, Arc<dyn Target>> =
        HashMap::from([("mock".to_owned(), Arc::clone(target) as Arc<dyn Target>)]);
    let worker = OutboxWorker::with_targets(Arc::clone(outbox), targets)
        .with_batch_size(16)
        .with_events(tx);
    (worker, rx)
}

fn policy(failures: u32, cool_down_ms: u64, dead_after_ms: Option<u64>) -> DeliveryPolicy {
    DeliveryPolicy {
        initial_backoff_ms: 100,
        max_backoff_ms: 100,
        breaker: BreakerConfig {
            failure_threshold: failures,
            cool_down_ms,
        },
        dead_after_ms,
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_defers_during_cool_down_and_a_probe_decides() {
    let cool_down = Duration::from_secs(10);
    // Three failures open the circuit; the first probe fails, the second succeeds.
    let target = Arc::new(Scripted::new(
        policy(3, 10_000, None),
        vec![unavailable(), unavailable(), unavailable(), unavailable()],
        delivered,
    ));
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let decisions = decisions(4);
    outbox.enqueue(&decisions, &["mock".to_owned()]).unwrap();
    let (worker, mut events) = mock_worker(&outbox, &target);

    let delivered_n = worker.drain(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(delivered_n, 4);

    let calls = target.calls();
    assert_eq!(calls.len(), 8, "3 failures, 2 probes, 3 more deliveries");
    let (t_open, t_probe1, t_probe2) = (calls[2].0, calls[3].0, calls[4].0);
    assert!(
        t_probe1 - t_open >= cool_down,
        "first probe waited the cool-down"
    );
    assert!(t_probe2 - t_probe1 >= cool_down, "failed probe reopened");
    for (at, _) in &calls {
        let inside_first = *at > t_open && *at < t_open + cool_down;
        let inside_second = *at > t_probe1 && *at < t_probe1 + cool_down;
        assert!(
            !inside_first && !inside_second,
            "call while the circuit was open"
        );
    }
    // After the successful probe the rest go out at once.
    assert!(calls[5..]
        .iter()
        .all(|(at, _)| *at - t_probe2 < Duration::from_millis(1)));

    let breaker_events: Vec<&'static str> = drain_events(&mut events)
        .iter()
        .filter_map(|e| match e {
            DeliveryEvent::BreakerOpened { .. } => Some("opened"),
            DeliveryEvent::BreakerHalfOpen { .. } => Some("half_open"),
            DeliveryEvent::BreakerClosed { .. } => Some("closed"),
            _ => None,
        })
        .collect();
    assert_eq!(
        breaker_events,
        ["opened", "half_open", "opened", "half_open", "closed"]
    );
    // Deferrals are not attempts: the outbox counts only real sends.
    let attempts: u32 = outbox.entries().unwrap().iter().map(|e| e.attempts).sum();
    assert_eq!(attempts, 8);
    assert_eq!(outbox.counts().unwrap().delivered, 4);
}

#[tokio::test(start_paused = true)]
async fn entries_past_their_age_are_dead_kept_and_requeueable() {
    // Retries at most 5 s apart: at least 12 attempts in the minute.
    let slow = DeliveryPolicy {
        initial_backoff_ms: 1000,
        max_backoff_ms: 5000,
        ..policy(0, 0, Some(60_000))
    };
    let target = Arc::new(Scripted::new(slow, Vec::new(), unavailable));
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let d = sample_decision("alert-dead", "tok-dead");
    outbox
        .enqueue(std::slice::from_ref(&d), &["mock".to_owned()])
        .unwrap();
    let (worker, mut events) = mock_worker(&outbox, &target);
    let start = Instant::now();
    assert_eq!(worker.drain(Duration::from_secs(3600)).await.unwrap(), 0);
    assert!(
        start.elapsed() >= Duration::from_secs(60),
        "gave up only after the age"
    );
    assert!(
        start.elapsed() <= Duration::from_secs(65),
        "{:?}",
        start.elapsed()
    );

    let status = outbox.status(&d.id).unwrap();
    assert_eq!(status.len(), 1);
    let DeliveryState::Dead {
        attempts,
        last_error,
        last_http_status,
        ..
    } = &status[0].state
    else {
        panic!("expected dead: {status:?}");
    };
    assert!(*attempts > 10, "retried until the end: {attempts}");
    assert_eq!(*attempts as usize, target.count.load(Ordering::SeqCst));
    assert!(last_error.as_deref().unwrap_or("").contains("503"));
    assert_eq!(*last_http_status, Some(503));
    assert_eq!(outbox.list(StateKind::Dead, 10).unwrap(), status);
    assert_eq!(outbox.counts().unwrap().dead, 1);
    assert!(drain_events(&mut events)
        .iter()
        .any(|e| matches!(e, DeliveryEvent::Dead { .. })));

    // An operator requeues it: pending again, with a fresh age.
    assert!(outbox.requeue(&d.id, "mock").unwrap());
    assert!(!outbox.requeue(&d.id, "mock").unwrap(), "already pending");
    assert_eq!(outbox.pending_count().unwrap(), 1);
    assert!(matches!(
        outbox.status(&d.id).unwrap()[0].state,
        DeliveryState::Retrying { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn rejections_are_final_and_skips_are_recorded_without_tripping_the_breaker() {
    let rejected = || -> Result<Sent> {
        Err(Error::Rejected {
            target: "mock".into(),
            status: Some(400),
            code: Some("invalid_audience".into()),
            message: "invalid_audience: wrong aud".into(),
        })
    };
    let target = Arc::new(Scripted::new(
        policy(1, 10_000, None),
        vec![
            rejected(),
            Ok(Sent::Skipped {
                reason: "no token".into(),
            }),
        ],
        delivered,
    ));
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let ds = decisions(3);
    outbox.enqueue(&ds, &["mock".to_owned()]).unwrap();
    let (worker, _events) = mock_worker(&outbox, &target);
    assert_eq!(worker.drain(Duration::from_secs(60)).await.unwrap(), 1);
    assert_eq!(target.count.load(Ordering::SeqCst), 3, "nothing retried");
    assert_eq!(
        worker.breaker_state("mock"),
        Some(BreakerState::Closed {
            consecutive_failures: 0
        })
    );
    let counts = outbox.counts().unwrap();
    assert_eq!((counts.failed, counts.skipped, counts.delivered), (1, 1, 1));
    let failed = outbox.list(StateKind::Failed, 10).unwrap();
    let DeliveryState::Failed {
        http_status, error, ..
    } = &failed[0].state
    else {
        panic!("{failed:?}");
    };
    assert_eq!(*http_status, Some(400));
    assert!(error.contains("invalid_audience"), "{error}");
    let skipped = outbox.list(StateKind::Skipped, 10).unwrap();
    assert!(
        matches!(&skipped[0].state, DeliveryState::Skipped { reason, .. } if reason == "no token")
    );
}

/// A target that answers only when the test opens its gate.
#[derive(Debug)]
struct Gated {
    endpoint: String,
    gate: Arc<Notify>,
}

#[async_trait]
impl Target for Gated {
    fn name(&self) -> &str {
        &self.endpoint
    }
    fn kind(&self) -> &'static str {
        "gated"
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn policy(&self) -> DeliveryPolicy {
        policy(0, 0, None)
    }
    async fn send(&self, _job: &Job<'_>) -> Result<Sent> {
        self.gate.notified().await;
        delivered()
    }
}

#[tokio::test]
async fn a_stuck_endpoint_does_not_hold_up_the_others() {
    let slow_gate = Arc::new(Notify::new());
    let fast_gate = Arc::new(Notify::new());
    fast_gate.notify_one();
    let targets: HashMap<String, Arc<dyn Target>> = HashMap::from([
        (
            "a-slow".to_owned(),
            Arc::new(Gated {
                endpoint: "a-slow".into(),
                gate: Arc::clone(&slow_gate),
            }) as Arc<dyn Target>,
        ),
        (
            "b-fast".to_owned(),
            Arc::new(Gated {
                endpoint: "b-fast".into(),
                gate: fast_gate,
            }) as Arc<dyn Target>,
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    // One decision for both: "a-slow" comes first in due order.
    outbox
        .enqueue(&decisions(1), &["a-slow".to_owned(), "b-fast".to_owned()])
        .unwrap();
    let (tx, mut events) = mpsc::unbounded_channel();
    let worker = OutboxWorker::with_targets(Arc::clone(&outbox), targets).with_events(tx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    // "b-fast" is delivered while "a-slow" is still stuck in its send.
    assert_eq!(next_delivered(&mut events).await, "b-fast");
    slow_gate.notify_one();
    assert_eq!(next_delivered(&mut events).await, "a-slow");
    stop.send(()).unwrap();
    handle.await.unwrap();
    assert_eq!(outbox.counts().unwrap().delivered, 2);
}

async fn next_delivered(events: &mut mpsc::UnboundedReceiver<DeliveryEvent>) -> String {
    let next = async {
        loop {
            match events.recv().await {
                Some(DeliveryEvent::Delivered { target, .. }) => return target,
                Some(_) => {}
                None => panic!("worker gone"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .expect("a delivery within the timeout")
}
