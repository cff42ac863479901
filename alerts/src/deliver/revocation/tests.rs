//! Revocation target tests against a real HTTP receiver: the form body, both client
//! authentication methods (the assertion verified against the published key), the
//! answer classification, the skips, and a run through the outbox and worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::*;
use crate::deliver::jose::tests::{EC_PKCS8, RSA_PKCS8};
use crate::deliver::jose::{verify_jwt, JwsAlg};
use crate::deliver::outbox::{DeliveryState, Outbox};
use crate::deliver::target::{is_endpoint_failure, Job, Sent, Target};
use crate::deliver::test_receiver::{sample_decision, Receiver};
use crate::deliver::worker::OutboxWorker;
use crate::deliver::RetryConfig;
use crate::model::{Action, Decision, DecisionContext, Scope, TokenTypeHint, TokenValue};
use crate::Error;

const CLIENT_ID: &str = "outrider client";
const SECRET: &str = "s3cr:et/é";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.raw-token.sig";
const TOKEN_ENDPOINT: &str = "https://idp.test/realms/main/protocol/openid-connect/token";

fn env(var: &str) -> Option<String> {
    match var {
        "IDP_SECRET" => Some(SECRET.to_owned()),
        "IDP_EC_KEY" => Some(EC_PKCS8.to_owned()),
        "IDP_RSA_KEY" => Some(RSA_PKCS8.to_owned()),
        _ => None,
    }
}

fn basic_config(url: String) -> RevocationConfig {
    RevocationConfig {
        timeout_ms: 2000,
        retry: RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..RetryConfig::default()
        },
        ..RevocationConfig::new(
            "idp",
            url,
            CLIENT_ID,
            ClientAuth::ClientSecretBasic {
                secret_env: "IDP_SECRET".into(),
            },
        )
    }
}

fn jwt_config(url: String, alg: JwsAlg) -> RevocationConfig {
    let key_env = match alg {
        JwsAlg::ES256 => "IDP_EC_KEY",
        JwsAlg::RS256 => "IDP_RSA_KEY",
    };
    RevocationConfig {
        auth: ClientAuth::PrivateKeyJwt {
            token_endpoint: TOKEN_ENDPOINT.into(),
            key_path: None,
            key_env: Some(key_env.into()),
            alg,
            key_id: None,
            assertion_lifetime_secs: 60,
        },
        ..basic_config(url)
    }
}

fn with_token(hint: Option<TokenTypeHint>) -> DecisionContext {
    DecisionContext {
        subject: None,
        token_type_hint: hint,
        token: Some(TokenValue::new(TOKEN)),
    }
}

async fn send(t: &RevocationTarget, d: &Decision, ctx: &DecisionContext) -> crate::Result<Sent> {
    t.send(&Job {
        decision: d,
        context: ctx,
        attempt: 1,
    })
    .await
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn client_secret_basic_sends_the_token_form_and_the_basic_header() {
    let receiver = Receiver::start(0, 503).await;
    let target = RevocationTarget::with_env(basic_config(receiver.url()), &env).unwrap();
    let d = sample_decision("alert-r", "tok-1");
    let sent = send(&target, &d, &with_token(Some(TokenTypeHint::RefreshToken)))
        .await
        .unwrap();
    assert_eq!(
        sent,
        Sent::Delivered {
            http_status: Some(200)
        }
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.content_type, "application/x-www-form-urlencoded");
    let fields = form(&r.body);
    assert_eq!(fields.get("token").map(String::as_str), Some(TOKEN));
    assert_eq!(
        fields.get("token_type_hint").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(fields.len(), 2, "{fields:?}");

    // RFC 6749 2.3.1: base64 of urlencoded id ":" urlencoded secret.
    let b64 = r.authorization.strip_prefix("Basic ").expect("basic auth");
    let decoded = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
    let (id, secret) = decoded.split_once(':').expect("id:secret");
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    assert_eq!(unescape(id), CLIENT_ID);
    assert_eq!(unescape(secret), SECRET);
    assert!(!secret.contains(':'), "the secret's colon is escaped");

    // The configured default hint applies when the decision gives none.
    send(&target, &d, &with_token(None)).await.unwrap();
    let fields = form(&receiver.requests()[1].body);
    assert_eq!(fields["token_type_hint"], "access_token");
}

#[tokio::test]
async fn private_key_jwt_assertion_verifies_with_the_published_key() {
    for alg in [JwsAlg::ES256, JwsAlg::RS256] {
        let receiver = Receiver::start(0, 503).await;
        let target = RevocationTarget::with_env(jwt_config(receiver.url(), alg), &env).unwrap();
        let d = sample_decision("alert-j", "tok-j");
        send(&target, &d, &with_token(None)).await.unwrap();
        send(&target, &d, &with_token(None)).await.unwrap();

        let requests = receiver.requests();
        assert_eq!(requests.len(), 2);
        let jwks = target.jwks().expect("private_key_jwt publishes a key");
        // Round-trip the JWKS through JSON, as a token server would fetch it.
        let jwks = serde_json::from_str(&serde_json::to_string(&jwks).unwrap()).unwrap();
        let mut jtis = Vec::new();
        for r in &requests {
            assert!(r.authorization.is_empty(), "no basic header with a jwt");
            let fields = form(&r.body);
            assert_eq!(fields["token"], TOKEN);
            assert_eq!(fields["client_id"], CLIENT_ID);
            assert_eq!(fields["client_assertion_type"], CLIENT_ASSERTION_TYPE);
            let v = verify_jwt(&fields["client_assertion"], &jwks, None).unwrap();
            assert_eq!(v.header["alg"], alg.as_str());
            let c = &v.claims;
            assert_eq!(c["iss"], CLIENT_ID);
            assert_eq!(c["sub"], CLIENT_ID);
            assert_eq!(c["aud"], TOKEN_ENDPOINT);
            let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
            assert_eq!(exp - iat, 60);
            assert!((chrono::Utc::now().timestamp() - iat).abs() < 30);
            let jti = c["jti"].as_str().unwrap().to_owned();
            assert_eq!(jti.len(), 32);
            jtis.push(jti);
        }
        assert_ne!(jtis[0], jtis[1], "a fresh jti per assertion");
    }
}

#[tokio::test]
async fn answers_are_classified() {
    let d = sample_decision("alert-c", "tok-c");
    let ctx = with_token(None);

    // 503 then 200: retryable, then done.
    let receiver = Receiver::start(1, 503).await;
    let t = RevocationTarget::with_env(basic_config(receiver.url()), &env).unwrap();
    let err = send(&t, &d, &ctx).await.unwrap_err();
    assert!(err.is_retryable() && is_endpoint_failure(&err), "{err:?}");
    assert!(matches!(
        send(&t, &d, &ctx).await,
        Ok(Sent::Delivered { .. })
    ));

    let cases = [
        // (status, body, retryable, rejected, counts against the endpoint)
        (
            400,
            r#"{"error":"unsupported_token_type"}"#,
            false,
            true,
            false,
        ),
        (
            400,
            r#"{"error":"invalid_request","error_description":"bad"}"#,
            false,
            true,
            false,
        ),
        (400, r#"{"error":"invalid_client"}"#, true, false, false),
        (401, r#"{"error":"invalid_client"}"#, true, false, true),
        (403, "", true, false, true),
        (404, "", false, true, false),
        (429, "", true, false, true),
    ];
    for (status, body, retryable, rejected, endpoint) in cases {
        let receiver = Receiver::builder()
            .fail_first(usize::MAX, status)
            .fail_body(body)
            .start()
            .await;
        let t = RevocationTarget::with_env(basic_config(receiver.url()), &env).unwrap();
        let err = send(&t, &d, &ctx).await.unwrap_err();
        let case = format!("{status} {body}: {err:?}");
        assert_eq!(err.is_retryable(), retryable, "{case}");
        assert_eq!(matches!(err, Error::Rejected { .. }), rejected, "{case}");
        assert_eq!(is_endpoint_failure(&err), endpoint, "{case}");
        assert_eq!(err.http_status(), Some(status), "{case}");
        assert!(!err.to_string().contains(TOKEN), "{case}");
        assert!(!err.to_string().contains(SECRET), "{case}");
    }
    let receiver = Receiver::builder()
        .fail_first(usize::MAX, 400)
        .fail_body(r#"{"error":"unsupported_token_type"}"#)
        .start()
        .await;
    let t = RevocationTarget::with_env(basic_config(receiver.url()), &env).unwrap();
    let err = send(&t, &d, &ctx).await.unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { code: Some(c), .. } if c == "unsupported_token_type"),
        "{err:?}"
    );
}

#[tokio::test]
async fn decisions_without_a_revocable_token_are_skipped_without_a_request() {
    let receiver = Receiver::start(0, 503).await;
    let url = receiver.url();
    let skip_target = RevocationTarget::with_env(basic_config(url.clone()), &env).unwrap();
    let carried = RevocationTarget::with_env(
        RevocationConfig {
            identity_mode: IdentityMode::CarriedToken,
            ..basic_config(url)
        },
        &env,
    )
    .unwrap();
    let decision = |action: Action, scope: Scope, simulated: bool| Decision {
        action,
        scope,
        simulated,
        ..sample_decision("alert-s", "v")
    };
    let none = DecisionContext::default();
    let cases: Vec<(&RevocationTarget, Decision, &DecisionContext, &str)> = vec![
        (
            &skip_target,
            decision(Action::RevokeToken, Scope::Token, false),
            &none,
            "does not carry the token",
        ),
        (
            &skip_target,
            decision(Action::Block, Scope::Identity, false),
            &none,
            "identity_mode = skip",
        ),
        (
            &carried,
            decision(Action::Block, Scope::Identity, false),
            &none,
            "does not carry the token",
        ),
        (
            &skip_target,
            decision(Action::Block, Scope::Ip, false),
            &none,
            "ip decisions",
        ),
        (
            &skip_target,
            decision(Action::StepUp, Scope::Token, false),
            &none,
            "step_up decisions",
        ),
    ];
    for (t, d, ctx, want) in cases {
        match send(t, &d, ctx).await.unwrap() {
            Sent::Skipped { reason } => assert!(reason.contains(want), "{reason} / {want}"),
            other => panic!("expected a skip for {:?}: {other:?}", d.action),
        }
    }
    let tok = with_token(None);
    let simulated = decision(Action::RevokeToken, Scope::Token, true);
    assert!(matches!(
        send(&skip_target, &simulated, &tok).await.unwrap(),
        Sent::Skipped { reason } if reason.contains("simulated")
    ));
    assert!(receiver.requests().is_empty(), "skips send nothing");

    // identity_mode = carried_token revokes the token an identity decision carries.
    let identity = decision(Action::RevokeSessions, Scope::Identity, false);
    assert!(matches!(
        send(&carried, &identity, &tok).await.unwrap(),
        Sent::Delivered { .. }
    ));
    assert_eq!(form(&receiver.requests()[0].body)["token"], TOKEN);
}

#[test]
fn config_contract_and_secrets() {
    let toml_like = serde_json::json!({
        "name": "idp",
        "endpoint": "https://idp.test/revoke",
        "client_id": "outrider",
        "auth": {"method": "private_key_jwt", "token_endpoint": TOKEN_ENDPOINT, "key_env": "K"},
        "identity_mode": "carried_token",
    });
    let cfg: RevocationConfig = serde_json::from_value(toml_like.clone()).unwrap();
    assert_eq!(cfg.identity_mode, IdentityMode::CarriedToken);
    assert_eq!(cfg.token_type_hint, TokenTypeHint::AccessToken);
    assert!(matches!(
        cfg.auth,
        ClientAuth::PrivateKeyJwt {
            alg: JwsAlg::ES256,
            assertion_lifetime_secs: 60,
            ..
        }
    ));
    let mut bad = toml_like.clone();
    bad["auth"]["secret"] = "inline".into();
    assert!(
        serde_json::from_value::<RevocationConfig>(bad).is_err(),
        "nested unknown field"
    );
    let mut bad = toml_like;
    bad["client_secret"] = "inline".into();
    assert!(serde_json::from_value::<RevocationConfig>(bad).is_err());

    let err = RevocationTarget::with_env(
        RevocationConfig {
            auth: ClientAuth::ClientSecretBasic {
                secret_env: "NOT_SET_ANYWHERE".into(),
            },
            ..basic_config("http://127.0.0.1:1".into())
        },
        &env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("NOT_SET_ANYWHERE"), "{err}");
    let t = RevocationTarget::with_env(basic_config("http://127.0.0.1:1".into()), &env).unwrap();
    let dbg = format!("{t:?}");
    assert!(!dbg.contains(SECRET) && !dbg.contains("Basic"), "{dbg}");
    assert!(t.jwks().is_none());
    let dbg = format!("{:?}", with_token(None));
    assert!(!dbg.contains(TOKEN), "{dbg}");
}

/// Through the outbox and worker: the raw token rides in the outbox only until the
/// decision is done; 503 is retried; the status records the 200.
#[tokio::test]
async fn revocation_through_the_outbox_keeps_the_token_only_while_pending() {
    let receiver = Receiver::start(2, 503).await;
    let target = Arc::new(RevocationTarget::with_env(basic_config(receiver.url()), &env).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
    let d = sample_decision("alert-o", "tok-o");
    outbox
        .enqueue_with_context(&[(d.clone(), with_token(None))], &["idp".to_owned()])
        .unwrap();
    assert!(outbox.holds_token(&d.id).unwrap());
    let stored = serde_json::to_string(&outbox.entries().unwrap()).unwrap();
    assert!(
        !stored.contains(TOKEN),
        "the token is not in the entry record"
    );

    let worker = OutboxWorker::new(
        Arc::clone(&outbox),
        HashMap::from([("idp".to_owned(), target)]),
    );
    assert_eq!(worker.drain(Duration::from_secs(20)).await.unwrap(), 1);
    assert_eq!(receiver.requests().len(), 3);
    assert!(receiver
        .requests()
        .iter()
        .all(|r| form(&r.body)["token"] == TOKEN));
    assert!(
        !outbox.holds_token(&d.id).unwrap(),
        "token dropped once delivered"
    );
    let status = outbox.status(&d.id).unwrap();
    assert!(
        matches!(
            status[0].state,
            DeliveryState::Delivered {
                http_status: Some(200),
                attempts: 3,
                ..
            }
        ),
        "{status:?}"
    );
}
