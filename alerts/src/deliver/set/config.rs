//! The SET target's contract.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::deliver::jose::JwsAlg;
use crate::deliver::{defaults, DeliveryPolicy};

/// A Security Event Token stream to one receiver.
///
/// ```toml
/// [[decisions.targets]]
/// type = "set"
/// name = "caep-rp"
/// issuer = "https://outrider.example"
/// audience = "https://rp.example"
/// key_path = "/etc/outrider/set-signing.pem"
/// delivery = { method = "push", endpoint = "https://rp.example/ssf/events" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Target name, used in the outbox and in logs.
    pub name: String,
    /// `iss`: Outrider's issuer identifier as the receiver knows it.
    pub issuer: String,
    /// `aud`: one receiver identifier or several.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Push or poll.
    pub delivery: SetDelivery,
    /// PEM private key file (exactly one of `key_path` and `key_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<PathBuf>,
    /// Environment variable holding the PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// Signing algorithm (ES256 unless the receiver needs RS256).
    #[serde(default)]
    pub alg: JwsAlg,
    /// `kid` header; defaults to the key's RFC 7638 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Issuer for `iss_sub` subject identifiers made from `sub:` identities (the token
    /// server's issuer); without it those become `opaque`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_issuer: Option<String>,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Consecutive failures that open the endpoint's circuit (0: never).
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    #[serde(default = "defaults::breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// Age after which an undelivered entry is marked dead (kept, queryable); 0: never.
    #[serde(default = "defaults::dead_after_secs")]
    pub dead_after_secs: u64,
}

/// How SETs reach the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum SetDelivery {
    /// RFC 8935: POST each SET to the receiver's endpoint.
    Push {
        endpoint: String,
        /// Environment variable with a bearer token for the receiver, if it wants one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization_env: Option<String>,
    },
    /// RFC 8936: queue SETs in [`super::SetPollQueue`] under `receiver`, for the
    /// receiver to poll and acknowledge.
    Poll { receiver: String },
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl SetConfig {
    /// A config with defaults, signing ES256 with the key in `key_env`.
    pub fn new(
        name: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        delivery: SetDelivery,
        key_env: impl Into<String>,
    ) -> Self {
        SetConfig {
            name: name.into(),
            issuer: issuer.into(),
            audience: vec![audience.into()],
            delivery,
            key_path: None,
            key_env: Some(key_env.into()),
            alg: JwsAlg::ES256,
            key_id: None,
            subject_issuer: None,
            timeout_ms: defaults::timeout_ms(),
            initial_backoff_ms: defaults::initial_backoff_ms(),
            max_backoff_ms: defaults::max_backoff_ms(),
            breaker_failures: defaults::breaker_failures(),
            breaker_cooldown_ms: defaults::breaker_cooldown_ms(),
            dead_after_secs: defaults::dead_after_secs(),
        }
    }

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
