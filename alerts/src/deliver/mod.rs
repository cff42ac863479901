//! Getting decisions to enforcement points, at least once.
//!
//! The detector enqueues decisions into the durable [`outbox::Outbox`] (one entry per
//! decision and target); the [`worker::OutboxWorker`] sends them through signed
//! [`webhook::WebhookSink`]s and records the outcome. Entries are never dropped: a
//! receiver that is down gets the decision when it comes back, and the
//! `Idempotency-Key` header (the decision id) lets it ignore repeats.

use std::time::Duration;

use rand::Rng;

pub mod outbox;
#[cfg(test)]
pub(crate) mod test_receiver;
pub mod webhook;
pub mod worker;

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
}
