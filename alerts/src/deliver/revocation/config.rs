//! The revocation target's contract.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deliver::jose::JwsAlg;
use crate::deliver::{defaults, DeliveryPolicy, RetryConfig};
use crate::model::TokenTypeHint;

/// An RFC 7009 revocation endpoint and how to authenticate to it.
///
/// ```toml
/// [[decisions.targets]]
/// type = "revocation"
/// name = "idp"
/// endpoint = "https://idp.example/realms/main/protocol/openid-connect/revoke"
/// client_id = "outrider"
/// auth = { method = "client_secret_basic", secret_env = "OUTRIDER_IDP_SECRET" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Target name, used in the outbox and in logs.
    pub name: String,
    /// The revocation endpoint URL.
    pub endpoint: String,
    /// Outrider's OAuth client id at the token server.
    pub client_id: String,
    /// Client authentication.
    pub auth: ClientAuth,
    /// `token_type_hint` when the decision does not say what its token is.
    #[serde(default = "default_hint")]
    pub token_type_hint: TokenTypeHint,
    /// What to do with identity-scoped decisions.
    #[serde(default)]
    pub identity_mode: IdentityMode,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Retries, circuit breaker, giving up.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_hint() -> TokenTypeHint {
    TokenTypeHint::AccessToken
}

/// How Outrider authenticates as an OAuth client (RFC 6749 2.3, RFC 7523 2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (both form-urlencoded first, as RFC 6749
    /// 2.3.1 requires).
    ClientSecretBasic {
        /// Environment variable holding the client secret.
        secret_env: String,
    },
    /// A JWT client assertion (`iss` = `sub` = client id, `aud` = token endpoint, a
    /// fresh `jti`, short `exp`) signed with Outrider's private key; the server knows
    /// the public key (register [`crate::RevocationTarget::jwks`]).
    PrivateKeyJwt {
        /// The token server's token endpoint URL: the assertion's `aud`.
        token_endpoint: String,
        /// PEM private key file (exactly one of `key_path` and `key_env`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_path: Option<PathBuf>,
        /// Environment variable holding the PEM private key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_env: Option<String>,
        #[serde(default)]
        alg: JwsAlg,
        /// `kid` header; defaults to the key's RFC 7638 thumbprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        /// Assertion lifetime (`exp` - `iat`).
        #[serde(default = "default_assertion_lifetime")]
        assertion_lifetime_secs: u64,
    },
}

fn default_assertion_lifetime() -> u64 {
    60
}

/// Identity-scoped decisions (`block` / `revoke_sessions` on `sub:alice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Record them as skipped: RFC 7009 revokes tokens, not identities.
    #[default]
    Skip,
    /// Revoke the token the decision carries (skipped when it carries none).
    CarriedToken,
}

impl RevocationConfig {
    /// A config with defaults, authenticating with `client_secret_basic`.
    pub fn new(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        RevocationConfig {
            name: name.into(),
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            auth,
            token_type_hint: default_hint(),
            identity_mode: IdentityMode::default(),
            timeout_ms: defaults::timeout_ms(),
            retry: RetryConfig::default(),
        }
    }

    pub fn policy(&self) -> DeliveryPolicy {
        self.retry.policy()
    }
}
