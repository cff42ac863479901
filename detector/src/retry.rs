//! Retrying alert-store writes while the store is unavailable.
//!
//! The pipeline holds the batch in hand and retries the write that failed, with
//! exponential backoff and full jitter: nothing more is read from the source (the bounded
//! buffer is that one batch, plus the source's own bounded prefetch) and nothing is
//! committed until the write succeeds. Only retryable errors (network trouble, timeouts)
//! are retried; any other error stops the run as before. Shutdown interrupts the wait
//! (the pipeline selects on it around the whole batch).

use std::future::Future;

use outrider_alerts::RetryConfig;
use tokio::sync::watch;

use crate::config::PipelineConfig;
use crate::error::Result;
use crate::pipeline::PipelineStats;

/// Runs `op` until it succeeds or fails with an error that retrying cannot help. Each
/// retry is logged, counted in `stats.store_retries` and published on `progress`.
pub(crate) async fn retry_store<T, F, Fut>(
    what: &'static str,
    config: &PipelineConfig,
    stats: &mut PipelineStats,
    progress: Option<&watch::Sender<PipelineStats>>,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = outrider_alerts::Result<T>>,
{
    let policy = RetryConfig {
        initial_backoff_ms: config.store_retry_initial_ms,
        max_backoff_ms: config.store_retry_max_ms,
        ..RetryConfig::default()
    }
    .policy();
    let mut failures = 0u32;
    loop {
        match op().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(op = what, failures, "alert store available again");
                }
                return Ok(value);
            }
            Err(e) if e.is_retryable() => {
                failures = failures.saturating_add(1);
                let delay = policy.backoff(failures);
                stats.store_retries += 1;
                tracing::warn!(
                    op = what, attempt = failures, delay_ms = delay.as_millis() as u64,
                    error = %e, "alert store unavailable; the batch waits and is retried"
                );
                if let Some(tx) = progress {
                    tx.send_replace(stats.clone());
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::Cell;

    fn fast() -> PipelineConfig {
        PipelineConfig {
            store_retry_initial_ms: 1,
            store_retry_max_ms: 2,
            ..PipelineConfig::default()
        }
    }

    fn down() -> outrider_alerts::Error {
        outrider_alerts::Error::Kafka("store down (test)".into())
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_until_the_write_succeeds() {
        let calls = Cell::new(0);
        let mut stats = PipelineStats::default();
        let (tx, rx) = watch::channel(PipelineStats::default());
        let out = retry_store("insert alerts", &fast(), &mut stats, Some(&tx), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err(down())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 4);
        assert_eq!(stats.store_retries, 3);
        assert_eq!(rx.borrow().store_retries, 3, "each retry is published");
    }

    #[tokio::test]
    async fn other_errors_stop_at_once() {
        let calls = Cell::new(0);
        let mut stats = PipelineStats::default();
        let err = retry_store("insert alerts", &fast(), &mut stats, None, || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(outrider_alerts::Error::InvalidData("bad row".into())) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, crate::Error::Alerts(_)), "{err}");
        assert_eq!((calls.get(), stats.store_retries), (1, 0));
    }
}
