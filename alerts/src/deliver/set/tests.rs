//! SET tests: the RFC 8417 structure verified against the published JWKS, subject
//! and event mapping, RFC 8935 push answers (through the worker too), and the RFC 8936
//! poll queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::event::set_jti;
use super::*;
use crate::deliver::jose::tests::{EC_PKCS8, RSA_PKCS1};
use crate::deliver::jose::{verify_jwt, Jwks, JwsAlg};
use crate::deliver::outbox::{DeliveryState, Outbox};
use crate::deliver::target::{Job, Sent, Target};
use crate::deliver::test_receiver::{sample_decision, Receiver};
use crate::deliver::worker::OutboxWorker;
use crate::deliver::RetryConfig;
use crate::model::{Action, Decision, DecisionContext, Scope, SubjectId};
use crate::Error;

const ISSUER: &str = "https://outrider.test";
const AUDIENCE: &str = "https://rp.test";

fn env(var: &str) -> Option<String> {
    match var {
        "SET_KEY" => Some(EC_PKCS8.to_owned()),
        "SET_RSA_KEY" => Some(RSA_PKCS1.to_owned()),
        "RP_TOKEN" => Some("rp-bearer".to_owned()),
        _ => None,
    }
}

fn push_config(endpoint: String) -> SetConfig {
    SetConfig {
        timeout_ms: 2000,
        retry: RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..RetryConfig::default()
        },
        ..SetConfig::new(
            "rp",
            ISSUER,
            AUDIENCE,
            SetDelivery::Push {
                endpoint,
                authorization_env: None,
            },
            "SET_KEY",
        )
    }
}

fn target(cfg: SetConfig) -> SetTarget {
    SetTarget::with_env(cfg, None, &env).unwrap()
}

fn issued(t: &SetTarget, d: &Decision, ctx: &DecisionContext) -> (String, String) {
    match t.issue(d, ctx).unwrap() {
        Issued::Set { jti, token } => (jti, token),
        Issued::Skipped { reason } => panic!("expected a set, skipped: {reason}"),
    }
}

/// Verifies against the JWKS as a receiver would get it: serialized and parsed back.
fn verify(t: &SetTarget, jwt: &str) -> crate::deliver::jose::VerifiedJwt {
    let published = serde_json::to_string(&t.jwks()).unwrap();
    let jwks: Jwks = serde_json::from_str(&published).unwrap();
    verify_jwt(jwt, &jwks, Some(SECEVENT_TYP)).expect("set verifies with the published key")
}

#[test]
fn sets_have_the_rfc_8417_structure_and_verify_with_the_jwks() {
    let t = target(push_config("http://127.0.0.1:1/events".into()));
    let d = sample_decision("alert-s", "tokid-1");
    let (jti, jwt) = issued(&t, &d, &DecisionContext::default());
    let v = verify(&t, &jwt);

    assert_eq!(v.header["typ"], "secevent+jwt");
    assert_eq!(v.header["alg"], "ES256");
    assert_eq!(v.header["kid"], t.jwks().keys[0].kid.clone().unwrap());
    let c = &v.claims;
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["jti"], jti);
    assert_eq!(jti, set_jti(&d.id, "rp"));
    assert_eq!(c["txn"], d.id);
    assert!((chrono::Utc::now().timestamp() - c["iat"].as_i64().unwrap()).abs() < 30);
    assert_eq!(
        c["sub_id"],
        serde_json::json!({"format": "opaque", "id": "tokid-1"})
    );
    let events = c["events"].as_object().unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[SESSION_REVOKED];
    assert_eq!(event["event_timestamp"], d.created_at.timestamp());
    assert_eq!(event["initiating_entity"], "policy");
    assert_eq!(event["reason_admin"]["en"], d.reason);
    assert!(c.get("sub").is_none() && c.get("exp").is_none());
    // Parses back into the typed claims.
    let typed: SetClaims = serde_json::from_value(c.clone()).unwrap();
    assert_eq!(
        typed.sub_id,
        SubjectId::Opaque {
            id: "tokid-1".into()
        }
    );

    // Same decision, same jti; another target or decision, another.
    assert_eq!(issued(&t, &d, &DecisionContext::default()).0, jti);
    assert_ne!(set_jti(&d.id, "other-rp"), jti);
    let d2 = sample_decision("alert-s", "tokid-2");
    assert_ne!(issued(&t, &d2, &DecisionContext::default()).0, jti);
}

#[test]
fn rs256_sets_verify_too() {
    let cfg = SetConfig {
        alg: JwsAlg::RS256,
        key_env: Some("SET_RSA_KEY".into()),
        audience: vec![AUDIENCE.into(), "https://rp2.test".into()],
        ..push_config("http://127.0.0.1:1/events".into())
    };
    let t = target(cfg);
    let (_, jwt) = issued(&t, &sample_decision("a", "t"), &DecisionContext::default());
    let v = verify(&t, &jwt);
    assert_eq!(v.header["alg"], "RS256");
    assert_eq!(
        v.claims["aud"],
        serde_json::json!([AUDIENCE, "https://rp2.test"])
    );
}

#[test]
fn subjects_and_events_follow_the_decision() {
    let t = target(SetConfig {
        subject_issuer: Some("https://idp.test".into()),
        ..push_config("http://127.0.0.1:1/events".into())
    });
    let decision = |action: Action, scope: Scope, value: &str| Decision {
        action,
        scope,
        value: value.to_owned(),
        ..sample_decision("alert-m", value)
    };
    let claims = |d: &Decision, ctx: &DecisionContext| -> serde_json::Value {
        verify(&t, &issued(&t, d, ctx).1).claims
    };
    let none = DecisionContext::default();

    let c = claims(
        &decision(Action::Block, Scope::Identity, "sub:alice"),
        &none,
    );
    assert_eq!(
        c["sub_id"],
        serde_json::json!({"format": "iss_sub", "iss": "https://idp.test", "sub": "alice"})
    );
    assert!(c["events"].get(SESSION_REVOKED).is_some());

    let c = claims(
        &decision(Action::RevokeSessions, Scope::Identity, "email:a@b.test"),
        &none,
    );
    assert_eq!(
        c["sub_id"],
        serde_json::json!({"format": "email", "email": "a@b.test"})
    );

    let c = claims(&decision(Action::StepUp, Scope::Identity, "sub:bob"), &none);
    let event = &c["events"][TOKEN_CLAIMS_CHANGE];
    assert_eq!(event["claims"]["outrider_action"], "step_up");
    assert!(c["events"].get(SESSION_REVOKED).is_none());

    // The caller's subject wins.
    let ctx = DecisionContext {
        subject: Some(SubjectId::Email {
            email: "carol@example.test".into(),
        }),
        ..DecisionContext::default()
    };
    let c = claims(&decision(Action::RevokeToken, Scope::Token, "tokid"), &ctx);
    assert_eq!(c["sub_id"]["email"], "carol@example.test");

    for (d, why) in [
        (
            decision(Action::Block, Scope::Ip, "10.0.0.1"),
            "ip decisions",
        ),
        (decision(Action::Notify, Scope::Identity, "sub:x"), "notify"),
        (
            Decision {
                simulated: true,
                ..decision(Action::Block, Scope::Identity, "sub:x")
            },
            "simulated",
        ),
    ] {
        let Issued::Skipped { reason } = t.issue(&d, &none).unwrap() else {
            panic!("expected a skip for {:?}", d.action);
        };
        assert!(reason.contains(why), "{reason}");
    }
}

#[tokio::test]
async fn push_202_is_delivered_with_the_secevent_media_type() {
    let receiver = Receiver::builder().success_status(202).start().await;
    let t = target(SetConfig {
        delivery: SetDelivery::Push {
            endpoint: receiver.url(),
            authorization_env: Some("RP_TOKEN".into()),
        },
        ..push_config(String::new())
    });
    let d = sample_decision("alert-p", "tok-p");
    let sent = t
        .send(&Job {
            decision: &d,
            context: &DecisionContext::default(),
            attempt: 1,
        })
        .await
        .unwrap();
    assert_eq!(
        sent,
        Sent::Delivered {
            http_status: Some(202)
        }
    );
    let r = &receiver.requests()[0];
    assert_eq!(r.content_type, SECEVENT_CONTENT_TYPE);
    assert_eq!(r.authorization, "Bearer rp-bearer");
    let jwt = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(verify(&t, &jwt).claims["txn"], d.id);
    assert!(!format!("{t:?}").contains("rp-bearer"));
}

#[tokio::test]
async fn push_400_is_a_recorded_permanent_failure_and_5xx_is_retried() {
    let body = r#"{"err":"invalid_audience","description":"aud does not match"}"#;
    let receiver = Receiver::builder()
        .fail_first(usize::MAX, 400)
        .fail_body(body)
        .start()
        .await;
    let t = Arc::new(target(push_config(receiver.url())));
    let d = sample_decision("alert-f", "tok-f");
    let err = t
        .send(&Job {
            decision: &d,
            context: &DecisionContext::default(),
            attempt: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { status: Some(400), code: Some(c), .. } if c == "invalid_audience"),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // Through the outbox: recorded as failed, with the receiver's code, sent once.
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    outbox
        .enqueue(std::slice::from_ref(&d), &["rp".to_owned()])
        .unwrap();
    let worker = OutboxWorker::new(Arc::clone(&outbox), HashMap::from([("rp".to_owned(), t)]));
    assert_eq!(worker.drain(Duration::from_secs(20)).await.unwrap(), 0);
    assert_eq!(
        receiver.requests().len(),
        2,
        "one direct send, one from the worker"
    );
    let status = outbox.status(&d.id).unwrap();
    let DeliveryState::Failed {
        http_status, error, ..
    } = &status[0].state
    else {
        panic!("{status:?}");
    };
    assert_eq!(*http_status, Some(400));
    assert!(error.contains("invalid_audience") && error.contains("aud does not match"));
    assert_eq!(outbox.pending_count().unwrap(), 0);

    // 503 and 401 are retried (401 also logged as an authorization problem).
    for status in [503, 401] {
        let receiver = Receiver::start(usize::MAX, status).await;
        let t = target(push_config(receiver.url()));
        let err = t
            .send(&Job {
                decision: &d,
                context: &DecisionContext::default(),
                attempt: 1,
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{status}: {err:?}");
        assert_eq!(err.http_status(), Some(status));
    }
}

#[test]
fn poll_queue_returns_oldest_first_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let q = SetPollQueue::open(dir.path()).unwrap();
    for i in 0..3 {
        assert!(q
            .push("rp", &format!("jti-{i}"), &format!("set-{i}"))
            .unwrap());
    }
    assert!(q.push("other", "jti-x", "set-x").unwrap());
    assert!(
        !q.push("rp", "jti-1", "set-1-again").unwrap(),
        "idempotent on jti"
    );

    let r = q.poll("rp", 2, &[]).unwrap();
    assert_eq!(r.sets.keys().collect::<Vec<_>>(), ["jti-0", "jti-1"]);
    assert_eq!(r.sets["jti-1"], "set-1", "the first push is kept");
    assert!(r.more_available);
    // Unacknowledged SETs come back.
    assert_eq!(q.poll("rp", 2, &[]).unwrap(), r);

    let r = q.poll("rp", 2, &["jti-0", "jti-1", "unknown"]).unwrap();
    assert_eq!(r.sets.keys().collect::<Vec<_>>(), ["jti-2"]);
    assert!(!r.more_available);
    assert!(matches!(
        q.state("rp", "jti-0").unwrap(),
        Some(PolledSetState::Acknowledged { .. })
    ));
    assert!(
        !q.push("rp", "jti-0", "set-0").unwrap(),
        "acknowledged sets stay gone"
    );
    assert!(matches!(
        q.state("rp", "jti-2").unwrap(),
        Some(PolledSetState::Queued { .. })
    ));
    assert_eq!(q.state("rp", "nope").unwrap(), None);
    assert_eq!(
        q.pending_count("other").unwrap(),
        1,
        "receivers are separate"
    );

    // maxEvents 0 only acknowledges; setErrs records the receiver's error.
    let req: PollRequest = serde_json::from_str(
        r#"{"maxEvents":0,"returnImmediately":true,"ack":[],
            "setErrs":{"jti-2":{"err":"invalid_key","description":"unknown kid"}}}"#,
    )
    .unwrap();
    let r = q.poll_request("rp", &req).unwrap();
    assert!(r.sets.is_empty() && !r.more_available);
    let Some(PolledSetState::Failed { err, .. }) = q.state("rp", "jti-2").unwrap() else {
        panic!("expected failed");
    };
    assert_eq!(err.err, "invalid_key");
    assert_eq!(q.pending_count("rp").unwrap(), 0);
    assert_eq!(
        serde_json::to_value(q.poll("other", 10, &[]).unwrap()).unwrap(),
        serde_json::json!({"sets": {"jti-x": "set-x"}})
    );
}

#[test]
fn poll_queue_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = SetPollQueue::open(dir.path()).unwrap();
        q.push("rp", "a", "set-a").unwrap();
        q.push("rp", "b", "set-b").unwrap();
        q.poll("rp", 0, &["a"]).unwrap();
    }
    let q = SetPollQueue::open(dir.path()).unwrap();
    let r = q.poll("rp", 10, &[]).unwrap();
    assert_eq!(r.sets.keys().collect::<Vec<_>>(), ["b"]);
    assert!(matches!(
        q.state("rp", "a").unwrap(),
        Some(PolledSetState::Acknowledged { .. })
    ));
    let wire = serde_json::to_value(PollResponse {
        more_available: true,
        ..r
    })
    .unwrap();
    assert_eq!(wire["moreAvailable"], true);
}

#[tokio::test]
async fn poll_mode_target_queues_signed_sets_through_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SetPollQueue::open(dir.path()).unwrap());
    let cfg = SetConfig {
        delivery: SetDelivery::Poll {
            receiver: "rp-poll".into(),
        },
        ..push_config(String::new())
    };
    assert!(
        SetTarget::with_env(cfg.clone(), None, &env).is_err(),
        "poll needs the queue"
    );
    let t = Arc::new(SetTarget::with_env(cfg, Some(&queue), &env).unwrap());
    assert_eq!(t.kind(), "set_poll");
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let ds = [
        sample_decision("alert-q", "t1"),
        sample_decision("alert-q", "t2"),
    ];
    outbox.enqueue(&ds, &["rp".to_owned()]).unwrap();
    let worker = OutboxWorker::new(
        Arc::clone(&outbox),
        HashMap::from([("rp".to_owned(), Arc::clone(&t))]),
    );
    assert_eq!(worker.drain(Duration::from_secs(20)).await.unwrap(), 2);

    let r = queue.poll("rp-poll", 10, &[]).unwrap();
    assert_eq!(r.sets.len(), 2);
    for d in &ds {
        let jti = set_jti(&d.id, "rp");
        let v = verify(&t, &r.sets[&jti]);
        assert_eq!(v.claims["txn"], d.id);
    }
    // A redelivery (e.g. after a crash before the outcome was recorded) queues
    // nothing new: the jti is the same.
    let again = t
        .send(&Job {
            decision: &ds[0],
            context: &DecisionContext::default(),
            attempt: 2,
        })
        .await
        .unwrap();
    assert_eq!(again, Sent::Delivered { http_status: None });
    assert_eq!(queue.pending_count("rp-poll").unwrap(), 2);
}

#[test]
fn config_contract() {
    let cfg: SetConfig = serde_json::from_value(serde_json::json!({
        "name": "rp",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "key_env": "SET_KEY",
        "delivery": {"method": "push", "endpoint": "https://rp.test/events"},
    }))
    .unwrap();
    assert_eq!(cfg.audience, [AUDIENCE]);
    assert_eq!(cfg.alg, JwsAlg::ES256);
    let bad = serde_json::json!({
        "name": "rp", "issuer": ISSUER, "audience": AUDIENCE, "key_env": "SET_KEY",
        "delivery": {"method": "push", "endpoint": "https://rp.test/events", "retries": 3},
    });
    assert!(serde_json::from_value::<SetConfig>(bad).is_err());
    let err = SetTarget::with_env(
        SetConfig {
            key_env: None,
            ..cfg
        },
        None,
        &env,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of key_path and key_env"),
        "{err}"
    );
}
