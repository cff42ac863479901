//! The loop that moves outbox entries to their webhook targets.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::deliver::now_ms;
use crate::deliver::outbox::{Outbox, OutboxEntry};
use crate::deliver::webhook::WebhookSink;
use crate::{Error, Result};

/// Entries taken from the outbox per pass.
const DEFAULT_BATCH: usize = 64;
/// Longest sleep with nothing due: a safety net should a wake-up be missed.
const DEFAULT_IDLE_POLL: Duration = Duration::from_secs(30);
/// Pause after the outbox itself failed (disk trouble), before trying again.
const STORAGE_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Retry delay for entries whose target has no configured sink (a config change may
/// bring it back; the entry is kept either way).
const UNKNOWN_TARGET_RETRY_MS: i64 = 60_000;

/// Delivers due outbox entries, one attempt per entry per pass, and reschedules failures
/// with exponential backoff. Entries are never dropped, not even after permanent
/// failures (those wait `max_backoff_ms` and are retried, so an operator can fix the
/// receiver and see them go through); `last_error` says what went wrong.
#[derive(Debug)]
pub struct OutboxWorker {
    outbox: Arc<Outbox>,
    sinks: HashMap<String, Arc<WebhookSink>>,
    notify: Arc<Notify>,
    batch: usize,
    idle_poll: Duration,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
struct Pass {
    delivered: usize,
    failed: usize,
}

impl OutboxWorker {
    /// `sinks` maps outbox target names to the sinks that serve them.
    pub fn new(outbox: Arc<Outbox>, sinks: HashMap<String, Arc<WebhookSink>>) -> Self {
        OutboxWorker {
            outbox,
            sinks,
            notify: Arc::new(Notify::new()),
            batch: DEFAULT_BATCH,
            idle_poll: DEFAULT_IDLE_POLL,
        }
    }

    /// Entries per pass (at least 1).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Producers call `notify_one()` on this after enqueueing so the worker does not
    /// wait for its next scheduled wake-up. A notification sent while the worker is
    /// busy is remembered, so none is lost.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Runs until `shutdown` completes. A pass in progress is finished first, so an
    /// answered request is always recorded.
    pub async fn run(&self, shutdown: impl Future) {
        tokio::pin!(shutdown);
        tracing::info!(targets = self.sinks.len(), "outbox worker started");
        loop {
            let wait = match self.pass().await {
                Ok(_) => self.wait_for_next_due().await,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox pass failed");
                    STORAGE_ERROR_PAUSE
                }
            };
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }

    /// Delivers until nothing is pending, returning how many entries were delivered; a
    /// [`Error::DrainTimeout`] if `timeout` passes first. For one-shot replays and tests.
    pub async fn drain(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut delivered = 0;
        loop {
            delivered += self.pass().await?.delivered;
            let pending = self.outbox_call(|o| o.pending_count()).await?;
            if pending == 0 {
                return Ok(delivered);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::DrainTimeout { delivered, pending });
            }
            let wait = self.wait_for_next_due().await.min(deadline - now);
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt for each due entry (up to the batch size).
    async fn pass(&self) -> Result<Pass> {
        let batch = self.batch;
        let due = self.outbox_call(move |o| o.due(now_ms(), batch)).await?;
        let mut pass = Pass::default();
        for entry in due {
            if self.attempt(&entry).await? {
                pass.delivered += 1;
            } else {
                pass.failed += 1;
            }
        }
        if pass.delivered + pass.failed > 0 {
            tracing::debug!(
                delivered = pass.delivered,
                failed = pass.failed,
                "outbox pass done"
            );
        }
        Ok(pass)
    }

    /// Sends one entry and records the outcome; `Ok(true)` when delivered.
    async fn attempt(&self, entry: &OutboxEntry) -> Result<bool> {
        let id = entry.decision.id.clone();
        let target = entry.target.clone();
        let Some(sink) = self.sinks.get(&entry.target) else {
            tracing::warn!(target_name = %target, decision_id = %id, "no sink configured for outbox target");
            let next = now_ms() + UNKNOWN_TARGET_RETRY_MS;
            self.outbox_call(move |o| {
                o.mark_failed(&id, &target, "no sink configured for this target", next)
            })
            .await?;
            return Ok(false);
        };
        match sink.send(&entry.decision).await {
            Ok(()) => {
                self.outbox_call(move |o| o.mark_delivered(&id, &target))
                    .await?;
                Ok(true)
            }
            Err(e) => {
                let failures = entry.attempts.saturating_add(1);
                let delay = if e.is_retryable() {
                    sink.backoff(failures)
                } else {
                    Duration::from_millis(sink.config().max_backoff_ms)
                };
                tracing::warn!(target_name = %target, decision_id = %id, attempts = failures, retry_in_ms = delay.as_millis() as u64, retryable = e.is_retryable(), error = %e, "outbox delivery failed");
                let next =
                    now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                let message = e.to_string();
                self.outbox_call(move |o| o.mark_failed(&id, &target, &message, next))
                    .await?;
                Ok(false)
            }
        }
    }

    /// Time until the earliest pending entry is due, capped by the idle poll.
    async fn wait_for_next_due(&self) -> Duration {
        match self.outbox_call(|o| o.next_due_at()).await {
            Ok(Some(at)) => {
                let ms = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                Duration::from_millis(ms).min(self.idle_poll)
            }
            Ok(None) => self.idle_poll,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read outbox schedule");
                STORAGE_ERROR_PAUSE
            }
        }
    }

    /// Runs a blocking outbox call on the blocking pool.
    async fn outbox_call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Outbox) -> Result<T> + Send + 'static,
    {
        let outbox = Arc::clone(&self.outbox);
        tokio::task::spawn_blocking(move || f(&outbox)).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::test_receiver::{sample_decision, Receiver};
    use crate::deliver::webhook::{verify, WebhookConfig};
    use crate::model::Decision;

    const SECRET: &[u8] = b"worker-test-secret";

    fn sink(url: String) -> Arc<WebhookSink> {
        let cfg = WebhookConfig {
            timeout_ms: 2000,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
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
        assert!(requests.iter().all(|r| verify(
            SECRET,
            &r.timestamp,
            &r.body,
            &r.signature,
            now,
            60
        )));
        let failed: Vec<_> = outbox
            .entries()
            .unwrap()
            .into_iter()
            .filter(|e| e.attempts > 1)
            .collect();
        assert!(!failed.is_empty(), "some entries needed a retry");
        assert!(failed.iter().all(|e| e.last_error.is_none()));
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
        let worker = OutboxWorker::new(Arc::clone(&outbox), HashMap::new());
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
            .contains("no sink"));
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
    }
}
