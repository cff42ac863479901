//! Getting decisions to enforcement points, at least once.
//!
//! The detector enqueues decisions into the durable [`outbox::Outbox`] (one entry per
//! decision and target); the [`worker::OutboxWorker`] hands them to [`target::Target`]s
//! and records the outcome per decision and target ([`outbox::TargetStatus`]). Entries
//! are never dropped: a receiver that is down gets the decision when it comes back (a
//! per-endpoint [`breaker::CircuitBreaker`] stops hammering it meanwhile), and receivers
//! dedupe on the decision id. An entry that stays undeliverable past its target's
//! `dead_after_secs` is marked dead, and kept.
//!
//! Targets, one folder each (`config.rs` is the contract, `sink.rs` the runtime):
//!
//! - [`webhook`]: HMAC-signed JSON POSTs.
//! - [`revocation`]: RFC 7009 token revocation at the token server, with
//!   `client_secret_basic` or `private_key_jwt` (RFC 7523) client authentication.
//! - [`set`]: Security Event Tokens (RFC 8417, CAEP events, RFC 9493 subjects), pushed
//!   (RFC 8935) or queued for polling (RFC 8936, [`set::SetPollQueue`]), signed with a key
//!   whose public half is published as a JWKS ([`jose`]).

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub mod breaker;
pub mod jose;
pub mod outbox;
pub mod revocation;
pub mod set;
pub mod target;
#[cfg(test)]
pub(crate) mod test_receiver;
pub mod webhook;
pub mod worker;

use crate::deliver::breaker::BreakerConfig;
use crate::{Error, Result};

/// Exponential backoff with full jitter: a uniform delay in `[0, min(max, initial *
/// 2^(attempt-1))]`. Jitter spreads retries of many senders so a recovering receiver
/// is not hit by all of them at once. `attempt` counts failures so far (1 = first).
pub(crate) fn backoff_delay(attempt: u32, initial_ms: u64, max_ms: u64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let cap = initial_ms.saturating_mul(1u64 << exponent).min(max_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

/// Current time in unix milliseconds, the outbox's clock.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Milliseconds as an `i64` offset, saturating.
pub(crate) fn ms_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How the worker treats one target: retry backoff, circuit breaker and when an
/// undeliverable entry is given up as dead. Built from each target's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub breaker: BreakerConfig,
    /// Age (since enqueue, or since an operator's requeue) after which an entry that is
    /// still not delivered is marked dead. `None`: never.
    pub dead_after_ms: Option<u64>,
}

impl DeliveryPolicy {
    /// Delay before the next try after `failures` failed attempts.
    pub fn backoff(&self, failures: u32) -> Duration {
        backoff_delay(failures, self.initial_backoff_ms, self.max_backoff_ms)
    }
}

/// Retry, circuit-breaker and give-up settings, the `retry` sub-section every target
/// config shares:
///
/// ```toml
/// [[decisions.targets]]
/// type = "webhook"
/// name = "gateway"
/// url = "https://gateway.internal/outrider/decisions"
/// secret_env = "OUTRIDER_WEBHOOK_SECRET"
/// retry = { initial_backoff_ms = 100, breaker_failures = 3 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// First retry delay; doubles per failure, with full jitter, up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Consecutive failures that open the endpoint's circuit (0: never).
    pub breaker_failures: u32,
    /// How long an open circuit sends nothing before one probe.
    pub breaker_cooldown_ms: u64,
    /// Age after which an undelivered entry is marked dead (kept, queryable); 0: never.
    pub dead_after_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: defaults::initial_backoff_ms(),
            max_backoff_ms: defaults::max_backoff_ms(),
            breaker_failures: defaults::breaker_failures(),
            breaker_cooldown_ms: defaults::breaker_cooldown_ms(),
            dead_after_secs: defaults::dead_after_secs(),
        }
    }
}

impl RetryConfig {
    /// The worker's policy; `max_backoff_ms` is raised to `initial_backoff_ms` if lower,
    /// and `dead_after_secs` 0 means never.
    pub fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            initial_backoff_ms: self.initial_backoff_ms,
            max_backoff_ms: self.max_backoff_ms.max(self.initial_backoff_ms),
            breaker: BreakerConfig {
                failure_threshold: self.breaker_failures,
                cool_down_ms: self.breaker_cooldown_ms,
            },
            dead_after_ms: (self.dead_after_secs > 0)
                .then(|| self.dead_after_secs.saturating_mul(1000)),
        }
    }
}

/// Defaults shared by the target configs (serde `default = ...` functions).
pub(crate) mod defaults {
    pub fn timeout_ms() -> u64 {
        5000
    }
    pub fn max_attempts() -> u32 {
        8
    }
    pub fn initial_backoff_ms() -> u64 {
        200
    }
    pub fn max_backoff_ms() -> u64 {
        30_000
    }
    /// Consecutive failures that open an endpoint's circuit.
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cooldown_ms() -> u64 {
        30_000
    }
    /// A week: receivers down for less than that catch up on their own.
    pub fn dead_after_secs() -> u64 {
        7 * 24 * 3600
    }
}

/// Reads a secret through `lookup` (the process environment in production), failing
/// with the variable's name, never its value.
pub(crate) fn secret_from(var: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    match lookup(var) {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(Error::Config(format!("secret variable {var} is empty"))),
        None => Err(Error::Config(format!("secret variable {var} is not set"))),
    }
}

/// An HTTP client for one target: a per-request timeout and no redirects (a redirected
/// POST may turn into a GET elsewhere, and may carry credentials there).
pub(crate) fn http_client(target: &str, timeout_ms: u64) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Config(format!("target {target}: http client: {e}")))
}

/// A request that got no answer. Builder errors (a bad URL) will not fix themselves;
/// everything else is the network or the receiver being slow or down.
pub(crate) fn transport_error(target: &str, e: reqwest::Error) -> Error {
    Error::Delivery {
        target: target.to_owned(),
        status: None,
        attempts: 1,
        retryable: !e.is_builder(),
        // The URL may carry credentials: keep it out of messages and logs.
        message: e.without_url().to_string(),
    }
}

/// The start of an error answer's body (at most `max` bytes): enough for an OAuth or
/// RFC 8935 error object, without reading whatever a broken receiver streams back.
pub(crate) async fn read_body_prefix(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(max - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// Cuts `s` to at most `max` bytes on a char boundary, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The process environment as a secret lookup.
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// The worker's clock in unix milliseconds: the wall clock, or the start time plus the
/// elapsed (tokio) monotonic time if that is later. The monotonic part keeps retry and
/// circuit-breaker deadlines moving forward when the wall clock steps back, and lets
/// tests drive the worker with `tokio::time::pause`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall_base_ms: i64,
    base: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            wall_base_ms: now_ms(),
            base: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        let monotonic = self
            .wall_base_ms
            .saturating_add(ms_i64(self.base.elapsed()));
        now_ms().max(monotonic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_grows() {
        for _ in 0..200 {
            assert!(backoff_delay(1, 100, 1000) <= Duration::from_millis(100));
            assert!(backoff_delay(3, 100, 1000) <= Duration::from_millis(400));
            assert!(backoff_delay(60, 100, 1000) <= Duration::from_millis(1000));
        }
        assert_eq!(backoff_delay(5, 0, 1000), Duration::ZERO);
        // Full jitter: over many draws the delay must sometimes exceed the previous cap.
        assert!((0..200).any(|_| backoff_delay(4, 100, 10_000) > Duration::from_millis(400)));
    }

    #[test]
    fn policy_from_retry_config() {
        let retry = |max_backoff_ms, dead_after_secs| RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms,
            breaker_failures: 3,
            breaker_cooldown_ms: 1000,
            dead_after_secs,
        };
        let p = retry(50, 0).policy();
        assert_eq!(p.max_backoff_ms, 100, "max is at least initial");
        assert_eq!(p.dead_after_ms, None, "0 means never dead");
        assert_eq!(p.breaker.failure_threshold, 3);
        let p = retry(500, 60).policy();
        assert_eq!(p.dead_after_ms, Some(60_000));
        let parsed: RetryConfig = toml::from_str("breaker_failures = 2").unwrap();
        assert_eq!(parsed.breaker_failures, 2);
        assert_eq!(
            parsed.initial_backoff_ms, 200,
            "unset fields keep their defaults"
        );
        let err = toml::from_str::<RetryConfig>("initial_backof_ms = 2").unwrap_err();
        assert!(err.to_string().contains("initial_backof_ms"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn clock_follows_tokio_time_when_paused() {
        let clock = Clock::new();
        let before = clock.now_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let after = clock.now_ms();
        assert!(after - before >= 3_600_000, "{before} -> {after}");
    }
}
