//! SET claims: which CAEP event a decision becomes, and about whom.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SetConfig;
use crate::model::{Action, Decision, DecisionContext, Scope, SubjectId};

/// CAEP 1.0 session revoked.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP 1.0 token claims change.
pub const TOKEN_CLAIMS_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";

/// The payload of a Security Event Token (RFC 8417 2.2, SSF 1.0 `sub_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetClaims {
    pub iss: String,
    pub iat: i64,
    pub jti: String,
    /// A string for one audience, an array for several (RFC 7519 4.1.3).
    pub aud: serde_json::Value,
    /// The decision id, to correlate the SET with Outrider's records.
    pub txn: String,
    pub sub_id: SubjectId,
    /// Event type URI -> event payload; exactly one event per SET.
    pub events: BTreeMap<String, serde_json::Value>,
}

/// The SET id for a decision at a target: stable across redeliveries, distinct across
/// decisions and targets.
pub(crate) fn set_jti(decision_id: &str, target: &str) -> String {
    let digest = Sha256::digest(format!("{decision_id}\u{1f}{target}").as_bytes());
    hex::encode(&digest[..16])
}

/// The claims for `decision`, or why it makes no SET.
pub(crate) fn build_claims(
    cfg: &SetConfig,
    decision: &Decision,
    context: &DecisionContext,
    iat: i64,
) -> Result<SetClaims, String> {
    if decision.simulated {
        return Err("simulated decision (shadow mode): no event is signalled".to_owned());
    }
    let sub_id = match &context.subject {
        Some(s) => s.clone(),
        None => subject_for(cfg, decision)?,
    };
    let mut event = serde_json::json!({
        "event_timestamp": decision.created_at.timestamp(),
        "initiating_entity": "policy",
        "reason_admin": { "en": decision.reason },
    });
    let event_type = match decision.action {
        Action::RevokeToken | Action::RevokeSessions | Action::Block => SESSION_REVOKED,
        Action::StepUp | Action::Throttle => {
            event["claims"] = serde_json::json!({
                "outrider_action": decision.action.as_str(),
                "outrider_ttl_secs": decision.ttl_secs,
            });
            TOKEN_CLAIMS_CHANGE
        }
        Action::Notify => return Err("notify decisions carry no caep event".to_owned()),
    };
    let aud = match cfg.audience.as_slice() {
        [one] => serde_json::Value::String(one.clone()),
        many => serde_json::json!(many),
    };
    Ok(SetClaims {
        iss: cfg.issuer.clone(),
        iat,
        jti: set_jti(&decision.id, &cfg.name),
        aud,
        txn: decision.id.clone(),
        sub_id,
        events: BTreeMap::from([(event_type.to_owned(), event)]),
    })
}

/// An RFC 9493 subject from the decision's scope and value.
fn subject_for(cfg: &SetConfig, d: &Decision) -> Result<SubjectId, String> {
    match d.scope {
        Scope::Ip => Err("ip decisions have no rfc 9493 subject".to_owned()),
        Scope::Token => Ok(SubjectId::Opaque {
            id: d.value.clone(),
        }),
        Scope::Identity => Ok(
            if let (Some(sub), Some(iss)) = (d.value.strip_prefix("sub:"), &cfg.subject_issuer) {
                SubjectId::IssSub {
                    iss: iss.clone(),
                    sub: sub.to_owned(),
                }
            } else if let Some(email) = d.value.strip_prefix("email:") {
                SubjectId::Email {
                    email: email.to_owned(),
                }
            } else {
                SubjectId::Opaque {
                    id: d.value.clone(),
                }
            },
        ),
    }
}
