//! The webhook target's contract.

use serde::{Deserialize, Serialize};

use crate::deliver::{defaults, DeliveryPolicy, RetryConfig};

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
    /// Retries, circuit breaker, giving up.
    #[serde(default)]
    pub retry: RetryConfig,
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
            retry: RetryConfig::default(),
        }
    }

    /// Retry, circuit-breaker and dead-letter settings for the worker.
    pub fn policy(&self) -> DeliveryPolicy {
        self.retry.policy()
    }
}
