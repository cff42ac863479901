//! Webhook target tests against a real HTTP receiver.

use super::*;
use crate::deliver::target::{Job, Sent, Target};
use crate::deliver::test_receiver::{sample_decision, Receiver};
use crate::deliver::{secret_from, RetryConfig};
use crate::model::{Decision, DecisionContext};
use crate::Error;

const SECRET: &[u8] = b"test-secret-do-not-use";

fn test_config(url: String, max_attempts: u32) -> WebhookConfig {
    WebhookConfig {
        timeout_ms: 2000,
        max_attempts,
        retry: RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..RetryConfig::default()
        },
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
    let err = secret_from("HOOK_SECRET", &|_| None).unwrap_err();
    assert!(err.to_string().contains("HOOK_SECRET") && !err.is_retryable());
    let err = secret_from("HOOK_SECRET", &|_| Some(String::new())).unwrap_err();
    assert!(err.to_string().contains("empty"));
    assert_eq!(secret_from("X", &|_| Some("s3".into())).unwrap(), "s3");
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
    let sink =
        WebhookSink::with_secret(test_config(format!("http://{addr}/hook"), 4), SECRET).unwrap();
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

#[tokio::test]
async fn as_a_target_reports_the_status_and_keeps_the_signature_scheme() {
    let receiver = Receiver::builder().success_status(204).start().await;
    let sink = WebhookSink::with_secret(test_config(receiver.url(), 1), SECRET).unwrap();
    let decision = sample_decision("alert-t", "tok-t");
    let job = Job {
        decision: &decision,
        context: &DecisionContext::default(),
        attempt: 1,
    };
    let sent = Target::send(&sink, &job).await.unwrap();
    assert_eq!(
        sent,
        Sent::Delivered {
            http_status: Some(204)
        }
    );
    assert_eq!(sink.kind(), "webhook");
    assert_eq!(sink.policy(), sink.config().policy());
    let r = &receiver.requests()[0];
    let now = chrono::Utc::now().timestamp();
    assert!(verify(SECRET, &r.timestamp, &r.body, &r.signature, now, 60));
    assert!(r.signature.starts_with("v1="));
    assert_eq!(r.idempotency_key, decision.id);
}

#[test]
fn new_config_fields_have_defaults() {
    let cfg: WebhookConfig = serde_json::from_str(
        r#"{"name":"a","url":"http://x","secret_env":"S","retry":{"breaker_failures":2,"dead_after_secs":0}}"#,
    )
    .unwrap();
    assert_eq!(cfg.retry.breaker_failures, 2);
    assert_eq!(cfg.retry.breaker_cooldown_ms, 30_000);
    // The old flat fields are refused, not silently ignored.
    let flat = r#"{"name":"a","url":"http://x","secret_env":"S","breaker_failures":2}"#;
    let err = serde_json::from_str::<WebhookConfig>(flat).unwrap_err();
    assert!(err.to_string().contains("breaker_failures"), "{err}");
    let policy = cfg.policy();
    assert_eq!(policy.dead_after_ms, None);
    assert_eq!(policy.breaker.failure_threshold, 2);
}
