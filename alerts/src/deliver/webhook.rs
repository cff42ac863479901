//! Signed webhook delivery of decisions.
//!
//! Each request carries `X-Outrider-Timestamp` (unix seconds) and
//! `X-Outrider-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, so a
//! receiver can check both origin and freshness with [`verify`], and `Idempotency-Key`
//! (the decision id) so it can ignore redeliveries.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::deliver::backoff_delay;
use crate::model::Decision;
use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

pub const TIMESTAMP_HEADER: &str = "X-Outrider-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Outrider-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
const SIGNATURE_PREFIX: &str = "v1=";

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
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
}

mod defaults {
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
        }
    }
}

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
        let secret = secret_from(&cfg.secret_env, |var| std::env::var(var).ok())?;
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
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            // A redirected POST may turn into a GET elsewhere: treat 3xx as a failure.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("webhook {}: http client: {e}", cfg.name)))?;
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
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(self.status_error(r.status())),
            Err(e) => Err(self.transport_error(e)),
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
            self.cfg.initial_backoff_ms,
            self.cfg.max_backoff_ms,
        )
    }

    fn status_error(&self, status: StatusCode) -> Error {
        let retryable = status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS;
        Error::Delivery {
            target: self.cfg.name.clone(),
            status: Some(status.as_u16()),
            attempts: 1,
            retryable,
            message: format!("receiver answered {status}"),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        // Builder errors (bad URL) will not fix themselves; everything else is the
        // network or the receiver being slow or down.
        let retryable = !e.is_builder();
        Error::Delivery {
            target: self.cfg.name.clone(),
            status: None,
            attempts: 1,
            retryable,
            // The URL may carry credentials: keep it out of messages and logs.
            message: e.without_url().to_string(),
        }
    }
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

/// Reads a secret through `lookup` (the environment in production), failing with the
/// variable's name, never its value.
fn secret_from(var: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<u8>> {
    match lookup(var) {
        Some(s) if !s.is_empty() => Ok(s.into_bytes()),
        Some(_) => Err(Error::Config(format!(
            "webhook secret variable {var} is empty"
        ))),
        None => Err(Error::Config(format!(
            "webhook secret variable {var} is not set"
        ))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::test_receiver::{sample_decision, Receiver};

    const SECRET: &[u8] = b"test-secret-do-not-use";

    fn test_config(url: String, max_attempts: u32) -> WebhookConfig {
        WebhookConfig {
            timeout_ms: 2000,
            max_attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..WebhookConfig::new("hook", url, "UNUSED")
        }
    }

    #[test]
    fn sign_verify_round_trip_and_rejections() {
        let body = br#"{"id":"x"}"#;
        let sig = sign(SECRET, 1_700_000_000, body);
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert!(verify(SECRET, "1700000000", body, &sig, 1_700_000_010, 300));
        assert!(!verify(
            SECRET,
            "1700000000",
            br#"{"id":"y"}"#,
            &sig,
            1_700_000_010,
            300
        ));
        assert!(!verify(
            b"wrong-secret",
            "1700000000",
            body,
            &sig,
            1_700_000_010,
            300
        ));
        assert!(
            !verify(SECRET, "1700000000", body, &sig, 1_700_000_301, 300),
            "stale"
        );
        assert!(
            !verify(SECRET, "1700000000", body, &sig, 1_699_999_699, 300),
            "future"
        );
        assert!(
            !verify(SECRET, "1700000001", body, &sig, 1_700_000_010, 300),
            "other ts"
        );
        assert!(!verify(SECRET, "abc", body, &sig, 1_700_000_010, 300));
        assert!(!verify(
            SECRET,
            "1700000000",
            body,
            &sig[3..],
            1_700_000_010,
            300
        ));
        assert!(!verify(
            SECRET,
            "1700000000",
            body,
            "v1=zz",
            1_700_000_010,
            300
        ));
    }

    #[test]
    fn secret_errors_name_the_variable_not_the_value() {
        let err = secret_from("HOOK_SECRET", |_| None).unwrap_err();
        assert!(err.to_string().contains("HOOK_SECRET") && !err.is_retryable());
        let err = secret_from("HOOK_SECRET", |_| Some(String::new())).unwrap_err();
        assert!(err.to_string().contains("empty"));
        assert_eq!(secret_from("X", |_| Some("s3".into())).unwrap(), b"s3");
        let err = WebhookSink::new(WebhookConfig::new(
            "hook",
            "http://127.0.0.1:1",
            "OUTRIDER_TEST_SURELY_UNSET_SECRET_VAR",
        ))
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("OUTRIDER_TEST_SURELY_UNSET_SECRET_VAR"));
        let sink = WebhookSink::with_secret(test_config("http://x".into(), 1), "hunter2").unwrap();
        assert!(!format!("{sink:?}").contains("hunter2"));
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let cfg: WebhookConfig =
            serde_json::from_str(r#"{"name":"a","url":"http://x","secret_env":"S"}"#).unwrap();
        assert_eq!(cfg, WebhookConfig::new("a", "http://x", "S"));
        assert_eq!((cfg.timeout_ms, cfg.max_attempts), (5000, 8));
        let bad = r#"{"name":"a","url":"http://x","secret_env":"S","secret":"x"}"#;
        assert!(serde_json::from_str::<WebhookConfig>(bad).is_err());
    }

    #[tokio::test]
    async fn retries_server_errors_until_success() {
        let receiver = Receiver::start(3, 500).await;
        let sink = WebhookSink::with_secret(test_config(receiver.url(), 8), SECRET).unwrap();
        let decision = sample_decision("alert-1", "tok-1");
        sink.deliver(&decision).await.unwrap();

        let requests = receiver.requests();
        assert_eq!(requests.len(), 4, "3 failures + 1 success");
        let now = chrono::Utc::now().timestamp();
        for r in &requests {
            assert!(verify(SECRET, &r.timestamp, &r.body, &r.signature, now, 60));
            assert_eq!(r.idempotency_key, decision.id);
            assert_eq!(r.content_type, "application/json");
            let sent: Decision = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(sent, decision);
        }
        assert_eq!(receiver.delivered_counts().get(&decision.id), Some(&1));
    }

    #[tokio::test]
    async fn client_error_is_permanent_after_one_attempt() {
        let receiver = Receiver::start(usize::MAX, 400).await;
        let sink = WebhookSink::with_secret(test_config(receiver.url(), 8), SECRET).unwrap();
        let err = sink.deliver(&sample_decision("a", "t")).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(
            matches!(
                err,
                Error::Delivery {
                    status: Some(400),
                    attempts: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(receiver.requests().len(), 1);
    }

    #[tokio::test]
    async fn too_many_requests_is_retryable() {
        let receiver = Receiver::start(usize::MAX, 429).await;
        let sink = WebhookSink::with_secret(test_config(receiver.url(), 3), SECRET).unwrap();
        let err = sink.deliver(&sample_decision("a", "t")).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(
            matches!(
                err,
                Error::Delivery {
                    status: Some(429),
                    attempts: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(receiver.requests().len(), 3);
    }

    #[tokio::test]
    async fn unreachable_receiver_is_retryable_after_max_attempts() {
        // Bind then drop a listener: the port is free, so connections are refused.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let sink = WebhookSink::with_secret(test_config(format!("http://{addr}/hook"), 4), SECRET)
            .unwrap();
        let err = sink.deliver(&sample_decision("a", "t")).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(
            matches!(
                err,
                Error::Delivery {
                    status: None,
                    attempts: 4,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
