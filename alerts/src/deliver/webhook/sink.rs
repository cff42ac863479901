//! The webhook target at run time: signing, one POST per attempt, outcome mapping.

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use sha2::Sha256;

use super::WebhookConfig;
use crate::deliver::target::{Job, Sent, Target};
use crate::deliver::{backoff_delay, secret_from, DeliveryPolicy};
use crate::model::Decision;
use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

pub const TIMESTAMP_HEADER: &str = "X-Outrider-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Outrider-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
const SIGNATURE_PREFIX: &str = "v1=";

/// Sends decisions to one webhook target. Holds the secret; its `Debug` output does not.
pub struct WebhookSink {
    cfg: WebhookConfig,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.cfg.name)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Builds a sink, reading the secret from the variable named by `cfg.secret_env`.
    pub fn new(cfg: WebhookConfig) -> Result<Self> {
        Self::with_env(cfg, &crate::deliver::process_env)
    }

    /// [`Self::new`] with an explicit environment lookup.
    pub fn with_env(cfg: WebhookConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let secret = secret_from(&cfg.secret_env, lookup)?;
        Self::with_secret(cfg, secret)
    }

    /// Builds a sink with an explicit secret (for embedding and tests).
    pub fn with_secret(cfg: WebhookConfig, secret: impl Into<Vec<u8>>) -> Result<Self> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(Error::Config(format!(
                "webhook {}: secret is empty",
                cfg.name
            )));
        }
        let client = crate::deliver::http_client(&cfg.name, cfg.timeout_ms)?;
        Ok(WebhookSink {
            cfg,
            secret,
            client,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.cfg
    }

    /// One signed POST of the decision. 2xx is success; 408, 429, 5xx and transport
    /// errors are retryable; any other status is permanent.
    pub async fn send(&self, d: &Decision) -> Result<()> {
        self.post(d).await.map(|_| ())
    }

    /// [`Self::send`], returning the HTTP status of the successful answer.
    async fn post(&self, d: &Decision) -> Result<u16> {
        let body = serde_json::to_vec(d)?;
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(&self.secret, timestamp, &body);
        let response = self
            .client
            .post(&self.cfg.url)
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, d.id.as_str())
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err(status_error(&self.cfg.name, r.status())),
            Err(e) => Err(crate::deliver::transport_error(&self.cfg.name, e)),
        }
    }

    /// [`Self::send`] with retries of retryable failures: exponential backoff with full
    /// jitter, at most `max_attempts` requests in all.
    pub async fn deliver(&self, d: &Decision) -> Result<()> {
        let max_attempts = self.cfg.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let err = match self.send(d).await {
                Ok(()) => {
                    tracing::debug!(target_name = %self.cfg.name, decision_id = %d.id, attempt, "decision delivered");
                    return Ok(());
                }
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= max_attempts {
                return Err(with_attempts(err, attempt));
            }
            let delay = self.backoff(attempt);
            tracing::warn!(target_name = %self.cfg.name, decision_id = %d.id, attempt, delay_ms = delay.as_millis() as u64, error = %err, "delivery failed, retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Delay before the next try after `failures` failed attempts.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        backoff_delay(
            failures,
            self.cfg.retry.initial_backoff_ms,
            self.cfg.retry.max_backoff_ms,
        )
    }
}

#[async_trait]
impl Target for WebhookSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn endpoint(&self) -> &str {
        &self.cfg.url
    }

    fn policy(&self) -> DeliveryPolicy {
        self.cfg.policy()
    }

    /// Webhooks get every decision, simulated ones included (the body says so): the
    /// receiver decides what to enforce.
    async fn send(&self, job: &Job<'_>) -> Result<Sent> {
        let status = self.post(job.decision).await?;
        Ok(Sent::Delivered {
            http_status: Some(status),
        })
    }
}

/// 408, 429 and 5xx are retryable; other non-2xx statuses are not (the worker still
/// retries them slowly: a webhook receiver's 4xx is usually a misconfiguration).
pub(crate) fn status_error(target: &str, status: StatusCode) -> Error {
    Error::Delivery {
        target: target.to_owned(),
        status: Some(status.as_u16()),
        attempts: 1,
        retryable: is_retryable_status(status),
        message: format!("receiver answered {status}"),
    }
}

pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

fn with_attempts(err: Error, n: u32) -> Error {
    match err {
        Error::Delivery {
            target,
            status,
            retryable,
            message,
            ..
        } => Error::Delivery {
            target,
            status,
            attempts: n,
            retryable,
            message,
        },
        other => other,
    }
}

fn mac_over(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `X-Outrider-Signature` value for a body sent at `timestamp` (unix seconds):
/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac_over(secret, &timestamp.to_string(), body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{SIGNATURE_PREFIX}{tag}")
}

/// Checks a received request: the timestamp must be within `tolerance_secs` of
/// `now_unix` (replay protection) and the signature must match, compared in constant
/// time.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance_secs: u64,
) -> bool {
    let Ok(timestamp) = timestamp_header.trim().parse::<i64>() else {
        return false;
    };
    if now_unix.abs_diff(timestamp) > tolerance_secs {
        return false;
    }
    let Some(tag) = signature_header.trim().strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    mac_over(secret, timestamp_header.trim(), body)
        .is_some_and(|mac| mac.verify_slice(&tag).is_ok())
}
