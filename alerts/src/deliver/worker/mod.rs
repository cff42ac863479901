//! The loop that moves outbox entries to their targets.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::deliver::breaker::{BreakerState, CircuitBreaker, Permit, Transition};
use crate::deliver::outbox::{Outbox, OutboxEntry, Update};
use crate::deliver::target::{is_endpoint_failure, Job, Sent, Target};
use crate::deliver::{ms_i64, Clock, DeliveryPolicy};
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

/// What the worker did, for whoever listens ([`OutboxWorker::with_events`]): tests,
/// metrics, benchmarks. The outbox holds the same facts durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeliveryEvent {
    Delivered {
        decision_id: String,
        target: String,
        http_status: Option<u16>,
        attempts: u32,
    },
    Skipped {
        decision_id: String,
        target: String,
        reason: String,
    },
    /// A failed attempt; the entry is due again at `next_attempt_at` (unix ms).
    Retrying {
        decision_id: String,
        target: String,
        attempts: u32,
        error: String,
        next_attempt_at: i64,
    },
    /// Rejected for good by the receiver.
    Failed {
        decision_id: String,
        target: String,
        http_status: Option<u16>,
        error: String,
    },
    Dead {
        decision_id: String,
        target: String,
        attempts: u32,
    },
    /// Not sent because the endpoint's circuit is open; due again at `until_ms`.
    Deferred {
        decision_id: String,
        target: String,
        until_ms: i64,
    },
    BreakerOpened {
        endpoint: String,
        until_ms: i64,
    },
    BreakerHalfOpen {
        endpoint: String,
    },
    BreakerClosed {
        endpoint: String,
    },
}

/// Delivers due outbox entries, one attempt per entry per pass, and records each
/// outcome. Failures are retried with exponential backoff and full jitter; an endpoint
/// that keeps failing has its circuit opened (see [`crate::deliver::breaker`]), and its
/// entries wait in the outbox meanwhile. Nothing is dropped: final outcomes (delivered,
/// failed, skipped, dead) stay in the outbox, queryable with [`Outbox::status`].
#[derive(Debug)]
pub struct OutboxWorker {
    outbox: Arc<Outbox>,
    targets: HashMap<String, Arc<dyn Target>>,
    /// By endpoint. Held only between awaits, never across one.
    breakers: Mutex<HashMap<String, CircuitBreaker>>,
    notify: Arc<Notify>,
    batch: usize,
    idle_poll: Duration,
    events: Option<mpsc::UnboundedSender<DeliveryEvent>>,
    clock: Clock,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
struct Pass {
    delivered: usize,
    other: usize,
}

/// How an attempt went, for the pass's counts.
enum Outcome {
    Delivered,
    Other,
}

impl OutboxWorker {
    /// `sinks` maps outbox target names to the targets that serve them (all of one
    /// type, e.g. `Arc<WebhookSink>`; see [`Self::with_targets`] for a mix).
    pub fn new<T: Target + 'static>(outbox: Arc<Outbox>, sinks: HashMap<String, Arc<T>>) -> Self {
        let targets = sinks
            .into_iter()
            .map(|(name, t)| (name, t as Arc<dyn Target>))
            .collect();
        Self::with_targets(outbox, targets)
    }

    /// A worker over targets of any kind, keyed by outbox target name (see
    /// [`crate::deliver::target::build_targets`]).
    pub fn with_targets(outbox: Arc<Outbox>, targets: HashMap<String, Arc<dyn Target>>) -> Self {
        OutboxWorker {
            outbox,
            targets,
            breakers: Mutex::new(HashMap::new()),
            notify: Arc::new(Notify::new()),
            batch: DEFAULT_BATCH,
            idle_poll: DEFAULT_IDLE_POLL,
            events: None,
            clock: Clock::new(),
        }
    }

    /// Entries per pass (at least 1).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Reports every outcome and breaker transition on `events`.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<DeliveryEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Producers call `notify_one()` on this after enqueueing so the worker does not
    /// wait for its next scheduled wake-up. A notification sent while the worker is
    /// busy is remembered, so none is lost.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// The circuit state of the endpoint behind `target`, once it has been used.
    pub fn breaker_state(&self, target: &str) -> Option<BreakerState> {
        let endpoint = self.targets.get(target)?.endpoint().to_owned();
        self.lock_breakers().get(&endpoint).map(|b| b.state())
    }

    /// Runs until `shutdown` completes. A pass in progress is finished first, so an
    /// answered request is always recorded.
    pub async fn run(&self, shutdown: impl Future) {
        tokio::pin!(shutdown);
        tracing::info!(targets = self.targets.len(), "outbox worker started");
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

    /// Works until nothing is pending, returning how many entries were delivered; a
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

    /// One attempt for each due entry (up to the batch size). Entries for different
    /// endpoints go out concurrently; those for one endpoint one after the other, in
    /// due order, so its circuit breaker sees each outcome before the next send.
    async fn pass(&self) -> Result<Pass> {
        let batch = self.batch;
        let now = self.clock.now_ms();
        let due = self.outbox_call(move |o| o.due(now, batch)).await?;
        let mut groups: Vec<(Option<&str>, Vec<OutboxEntry>)> = Vec::new();
        for entry in due {
            let endpoint = self.targets.get(&entry.target).map(|t| t.endpoint());
            match groups.iter_mut().find(|(e, _)| *e == endpoint) {
                Some((_, entries)) => entries.push(entry),
                None => groups.push((endpoint, vec![entry])),
            }
        }
        let results = futures::future::join_all(groups.iter().map(|(_, entries)| async move {
            let mut pass = Pass::default();
            for entry in entries {
                match self.attempt(entry).await? {
                    Outcome::Delivered => pass.delivered += 1,
                    Outcome::Other => pass.other += 1,
                }
            }
            Ok::<Pass, Error>(pass)
        }))
        .await;
        let mut pass = Pass::default();
        for result in results {
            let p = result?;
            pass.delivered += p.delivered;
            pass.other += p.other;
        }
        if pass.delivered + pass.other > 0 {
            tracing::debug!(
                delivered = pass.delivered,
                other = pass.other,
                "outbox pass done"
            );
        }
        Ok(pass)
    }

    /// Deals with one due entry: dead check, circuit check, one send, the record.
    async fn attempt(&self, entry: &OutboxEntry) -> Result<Outcome> {
        let id = entry.decision.id.as_str();
        let target_name = entry.target.as_str();
        let now = self.clock.now_ms();
        let Some(target) = self.targets.get(target_name) else {
            tracing::warn!(target_name, decision_id = %id, "no target configured for outbox entry");
            let update = Update::Retry {
                error: "no target configured with this name".to_owned(),
                http_status: None,
                next_at: now.saturating_add(UNKNOWN_TARGET_RETRY_MS),
            };
            self.record(entry, update, now).await?;
            return Ok(Outcome::Other);
        };
        let policy = target.policy();
        if is_expired(&policy, entry, now) {
            self.give_up(entry, None, None, false, now).await?;
            return Ok(Outcome::Other);
        }

        let endpoint = target.endpoint();
        let (permit, transition) = self.with_breaker(endpoint, &policy, |b| b.acquire(now));
        self.report(endpoint, transition);
        if let Permit::Wait { until_ms } = permit {
            self.record(entry, Update::Defer { until: until_ms }, now)
                .await?;
            self.emit(DeliveryEvent::Deferred {
                decision_id: id.to_owned(),
                target: target_name.to_owned(),
                until_ms,
            });
            return Ok(Outcome::Other);
        }

        let job = Job {
            decision: &entry.decision,
            context: &entry.context,
            attempt: entry.attempts.saturating_add(1),
        };
        let result = target.send(&job).await;
        let now = self.clock.now_ms();
        match result {
            Ok(Sent::Delivered { http_status }) => {
                let transition = self.with_breaker(endpoint, &policy, |b| b.on_success());
                self.record(entry, Update::Delivered { http_status }, now)
                    .await?;
                tracing::debug!(target_name, decision_id = %id, attempts = job.attempt, "decision delivered");
                self.emit(DeliveryEvent::Delivered {
                    decision_id: id.to_owned(),
                    target: target_name.to_owned(),
                    http_status,
                    attempts: job.attempt,
                });
                self.report(endpoint, transition);
                Ok(Outcome::Delivered)
            }
            Ok(Sent::Skipped { reason }) => {
                self.with_breaker(endpoint, &policy, |b| b.on_unused());
                self.record(
                    entry,
                    Update::Skipped {
                        reason: reason.clone(),
                    },
                    now,
                )
                .await?;
                tracing::info!(target_name, decision_id = %id, reason = %reason, "decision skipped by target");
                self.emit(DeliveryEvent::Skipped {
                    decision_id: id.to_owned(),
                    target: target_name.to_owned(),
                    reason,
                });
                Ok(Outcome::Other)
            }
            Err(e @ Error::Rejected { .. }) => {
                // The endpoint answered: it works, it just refuses this message.
                let transition = self.with_breaker(endpoint, &policy, |b| b.on_success());
                let message = e.to_string();
                let http_status = e.http_status();
                self.record(
                    entry,
                    Update::Failed {
                        error: message.clone(),
                        http_status,
                    },
                    now,
                )
                .await?;
                tracing::warn!(target_name, decision_id = %id, error = %message, "decision rejected by receiver; recorded as failed");
                self.emit(DeliveryEvent::Failed {
                    decision_id: id.to_owned(),
                    target: target_name.to_owned(),
                    http_status,
                    error: message,
                });
                self.report(endpoint, transition);
                Ok(Outcome::Other)
            }
            Err(e) => {
                let transition = self.with_breaker(endpoint, &policy, |b| {
                    if is_endpoint_failure(&e) {
                        b.on_failure(now)
                    } else if e.http_status().is_some() {
                        // An answer, just not a usable one (e.g. a webhook's 400).
                        b.on_success()
                    } else {
                        // A local problem (signing, serialization): not the endpoint's.
                        b.on_unused();
                        None
                    }
                });
                self.retry_later(entry, &policy, &e, now).await?;
                self.report(endpoint, transition);
                Ok(Outcome::Other)
            }
        }
    }

    /// Reschedules a failed attempt, or gives the entry up if it is past its age.
    async fn retry_later(
        &self,
        entry: &OutboxEntry,
        policy: &DeliveryPolicy,
        e: &Error,
        now: i64,
    ) -> Result<()> {
        let attempts = entry.attempts.saturating_add(1);
        let message = e.to_string();
        if is_expired(policy, entry, now) {
            return self
                .give_up(entry, Some(&message), e.http_status(), true, now)
                .await;
        }
        // Permanent-looking failures wait the longest: an operator may fix the
        // receiver or the config, and the entry goes through then.
        let delay = if e.is_retryable() {
            policy.backoff(attempts)
        } else {
            Duration::from_millis(policy.max_backoff_ms)
        };
        let next_at = now.saturating_add(ms_i64(delay));
        tracing::warn!(
            target_name = %entry.target,
            decision_id = %entry.decision.id,
            attempts,
            retry_in_ms = delay.as_millis() as u64,
            retryable = e.is_retryable(),
            error = %message,
            "outbox delivery failed"
        );
        let update = Update::Retry {
            error: message.clone(),
            http_status: e.http_status(),
            next_at,
        };
        self.record(entry, update, now).await?;
        self.emit(DeliveryEvent::Retrying {
            decision_id: entry.decision.id.clone(),
            target: entry.target.clone(),
            attempts,
            error: message,
            next_attempt_at: next_at,
        });
        Ok(())
    }

    async fn give_up(
        &self,
        entry: &OutboxEntry,
        error: Option<&str>,
        http_status: Option<u16>,
        attempted: bool,
        now: i64,
    ) -> Result<()> {
        let update = Update::Dead {
            error: error.map(str::to_owned),
            http_status,
            attempted,
        };
        self.record(entry, update, now).await?;
        let attempts = entry.attempts.saturating_add(u32::from(attempted));
        tracing::error!(target_name = %entry.target, decision_id = %entry.decision.id, attempts, "outbox entry dead: undelivered past its target's dead_after_secs");
        self.emit(DeliveryEvent::Dead {
            decision_id: entry.decision.id.clone(),
            target: entry.target.clone(),
            attempts,
        });
        Ok(())
    }

    /// Runs `f` on the endpoint's breaker (created on first use).
    fn with_breaker<T>(
        &self,
        endpoint: &str,
        policy: &DeliveryPolicy,
        f: impl FnOnce(&mut CircuitBreaker) -> T,
    ) -> T {
        let mut breakers = self.lock_breakers();
        let breaker = breakers
            .entry(endpoint.to_owned())
            .or_insert_with(|| CircuitBreaker::new(policy.breaker));
        f(breaker)
    }

    /// Logs and reports a breaker transition (after the outcome that caused it is
    /// recorded, so events read in order).
    fn report(&self, endpoint: &str, transition: Option<Transition>) {
        if let Some(t) = transition {
            let endpoint = endpoint.to_owned();
            match t {
                Transition::Opened { until_ms } => {
                    tracing::warn!(endpoint = %endpoint, until_ms, "circuit opened: endpoint keeps failing, sends paused");
                    self.emit(DeliveryEvent::BreakerOpened { endpoint, until_ms });
                }
                Transition::HalfOpened => {
                    tracing::info!(endpoint = %endpoint, "circuit half-open: sending one probe");
                    self.emit(DeliveryEvent::BreakerHalfOpen { endpoint });
                }
                Transition::Closed => {
                    tracing::info!(endpoint = %endpoint, "circuit closed: endpoint recovered");
                    self.emit(DeliveryEvent::BreakerClosed { endpoint });
                }
            }
        }
    }

    fn lock_breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, CircuitBreaker>> {
        // The map holds plain state; a panic elsewhere cannot leave it half-updated.
        self.breakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: DeliveryEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    async fn record(&self, entry: &OutboxEntry, update: Update, now: i64) -> Result<()> {
        let id = entry.decision.id.clone();
        let target = entry.target.clone();
        self.outbox_call(move |o| o.record(&id, &target, update, now))
            .await
    }

    /// Time until the earliest pending entry is due, capped by the idle poll.
    async fn wait_for_next_due(&self) -> Duration {
        match self.outbox_call(|o| o.next_due_at()).await {
            Ok(Some(at)) => {
                let ms = u64::try_from(at.saturating_sub(self.clock.now_ms())).unwrap_or(0);
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

/// Whether the entry is past its target's dead-after age.
fn is_expired(policy: &DeliveryPolicy, entry: &OutboxEntry, now: i64) -> bool {
    policy.dead_after_ms.is_some_and(|max| {
        now.saturating_sub(entry.age_origin()) >= i64::try_from(max).unwrap_or(i64::MAX)
    })
}

#[cfg(test)]
mod tests;
