//! The webhook target's contract.

use serde::{Deserialize, Serialize};

use crate::deliver::{defaults, DeliveryPolicy};

/// One webhook target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Target name, used in the outbox and in logs.
    pub name: String,
    pub url: String,
    /// Name of the environment variable holding the HMAC secret (config files never
    /// hold the secret itself).
    pub secret_env: String,
    /// Per-request timeout.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Requests per [`super::WebhookSink::deliver`] call (the in-line retry helper; the
    /// outbox worker retries without limit).
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubles per failure, with full jitter, up to `max_backoff_ms`.
    #[serde(default = "defaults::initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Consecutive failures that open the endpoint's circuit (0: never).
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open circuit sends nothing before one probe.
    #[serde(default = "defaults::breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// Age after which an undelivered entry is marked dead (kept, queryable); 0: never.
    #[serde(default = "defaults::dead_after_secs")]
    pub dead_after_secs: u64,
}

impl WebhookConfig {
    /// A config with the documented defaults for everything but name, url and secret.
    pub fn new(
        name: impl Into<String>,
        url: impl Into<String>,
        secret_env: impl Into<String>,
    ) -> Self {
        WebhookConfig {
            name: name.into(),
            url: url.into(),
            secret_env: secret_env.into(),
            timeout_ms: defaults::timeout_ms(),
            max_attempts: defaults::max_attempts(),
            initial_backoff_ms: defaults::initial_backoff_ms(),
            max_backoff_ms: defaults::max_backoff_ms(),
            breaker_failures: defaults::breaker_failures(),
            breaker_cooldown_ms: defaults::breaker_cooldown_ms(),
            dead_after_secs: defaults::dead_after_secs(),
        }
    }

    /// Retry, circuit-breaker and dead-letter settings for the worker.
    pub fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy::from_fields(
            self.initial_backoff_ms,
            self.max_backoff_ms,
            self.breaker_failures,
            self.breaker_cooldown_ms,
            self.dead_after_secs,
        )
    }
}
