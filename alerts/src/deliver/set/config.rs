//! The SET target's contract.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::deliver::jose::JwsAlg;
use crate::deliver::{defaults, DeliveryPolicy, RetryConfig};

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
    /// Retries, circuit breaker, giving up.
    #[serde(default)]
    pub retry: RetryConfig,
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
            retry: RetryConfig::default(),
        }
    }

    pub fn policy(&self) -> DeliveryPolicy {
        self.retry.policy()
    }
}
