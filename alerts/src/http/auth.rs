//! Bearer API keys: who is calling, and what they may do.
//!
//! Keys come from environment variables named in the config, never from the config
//! itself, and are never logged. The server keeps only an HMAC of each key under a
//! random per-process salt and compares HMACs in constant time, so neither the
//! comparison's timing nor a memory dump of the table gives a key away.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::error::ApiError;
use super::AppState;
use crate::deliver::secret_from;
use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Shorter keys are refused at start-up: they can be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read alerts, counts and incidents; change their status; add notes.
    Analyst,
    /// Pull decisions and poll Security Event Tokens (enforcement points, receivers).
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Gateway => "gateway",
        }
    }
}

/// One API key.
///
/// ```toml
/// [[http.api_keys]]
/// name = "soc"                       # shown in logs and as the author of notes
/// key_env = "OUTRIDER_API_KEY_SOC"   # the variable that holds the key
/// roles = ["analyst"]
///
/// [[http.api_keys]]
/// name = "edge-gateway"
/// key_env = "OUTRIDER_API_KEY_EDGE"
/// roles = ["gateway"]
/// set_receiver = "edge"              # the RFC 8936 stream this key polls
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub name: String,
    pub key_env: String,
    pub roles: Vec<Role>,
    /// The SET poll queue (a `set` target's `receiver`) this key polls and
    /// acknowledges; without it the key cannot poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_receiver: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub roles: Vec<Role>,
    pub set_receiver: Option<String>,
}

impl Caller {
    /// `403` unless the caller holds `role`.
    pub fn require(&self, role: Role) -> std::result::Result<(), ApiError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            tracing::info!(caller = %self.name, needs = role.as_str(), "forbidden");
            Err(ApiError::Forbidden(format!(
                "this key lacks the {} role",
                role.as_str()
            )))
        }
    }
}

#[derive(Debug)]
struct KeyEntry {
    tag: Vec<u8>,
    caller: Caller,
}

/// The key table: HMACs of the keys under a per-process salt.
pub(crate) struct Authenticator {
    salt: [u8; 32],
    keys: Vec<KeyEntry>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.keys.iter().map(|k| k.caller.name.as_str()).collect();
        f.debug_struct("Authenticator")
            .field("keys", &names)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Reads every key through `lookup` and checks the table: at least one key, unique
    /// names, at least one role each, keys long enough and distinct.
    pub(crate) fn new(
        configs: &[ApiKeyConfig],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        if configs.is_empty() {
            return Err(Error::Config(
                "http.api_keys is empty: every route needs an authenticated caller".into(),
            ));
        }
        let mut salt = [0u8; 32];
        rand::rng().fill(&mut salt);
        let mut auth = Authenticator {
            salt,
            keys: Vec::new(),
        };
        let mut names = HashSet::new();
        for cfg in configs {
            let what = format!("http.api_keys {:?}", cfg.name);
            if cfg.name.trim().is_empty() {
                return Err(Error::Config(
                    "http.api_keys: a key has an empty name".into(),
                ));
            }
            if !names.insert(cfg.name.as_str()) {
                return Err(Error::Config(format!("{what}: the name is used twice")));
            }
            if cfg.roles.is_empty() {
                return Err(Error::Config(format!("{what}: roles is empty")));
            }
            let key = secret_from(&cfg.key_env, lookup)
                .map_err(|e| Error::Config(format!("{what}: {e}")))?;
            if key.len() < MIN_KEY_LEN {
                return Err(Error::Config(format!(
                    "{what}: the key in {} is shorter than {MIN_KEY_LEN} characters",
                    cfg.key_env
                )));
            }
            if let Some(other) = auth.find(&key) {
                return Err(Error::Config(format!(
                    "{what}: its key is the same as the key of {:?}",
                    other.name
                )));
            }
            let tag = auth.tag(&key)?;
            auth.keys.push(KeyEntry {
                tag,
                caller: Caller {
                    name: cfg.name.clone(),
                    roles: cfg.roles.clone(),
                    set_receiver: cfg.set_receiver.clone(),
                },
            });
        }
        Ok(auth)
    }

    /// HMAC accepts keys of any length, so this is always `Some`.
    fn mac(&self, key: &str) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.salt).ok()?;
        mac.update(key.as_bytes());
        Some(mac)
    }

    fn tag(&self, key: &str) -> Result<Vec<u8>> {
        self.mac(key)
            .map(|mac| mac.finalize().into_bytes().to_vec())
            .ok_or_else(|| Error::Config("cannot key the api key table".into()))
    }

    /// The caller holding `presented`. Every entry is compared, in constant time, so
    /// the answer's timing does not depend on which key (if any) matched.
    pub(crate) fn find(&self, presented: &str) -> Option<&Caller> {
        let mac = self.mac(presented)?;
        let mut found = None;
        for entry in &self.keys {
            if mac.clone().verify_slice(&entry.tag).is_ok() {
                found = Some(&entry.caller);
            }
        }
        found
    }
}

/// The bearer token of an `Authorization` header (`Bearer <key>`, scheme
/// case-insensitive).
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let Some(presented) = bearer(parts) else {
            tracing::debug!(path = %parts.uri.path(), "request without bearer key");
            return Err(ApiError::Unauthorized);
        };
        match state.auth.find(presented) {
            Some(caller) => Ok(caller.clone()),
            None => {
                tracing::info!(path = %parts.uri.path(), "request with an unknown key");
                Err(ApiError::Unauthorized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, env: &str, roles: &[Role]) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            key_env: env.into(),
            roles: roles.to_vec(),
            set_receiver: None,
        }
    }

    fn env(var: &str) -> Option<String> {
        match var {
            "A" => Some("analyst-key-0123456789".into()),
            "G" => Some("gateway-key-0123456789".into()),
            "SHORT" => Some("short".into()),
            _ => None,
        }
    }

    #[test]
    fn finds_the_holder_of_a_key_and_nobody_else() {
        let auth = Authenticator::new(
            &[
                key("soc", "A", &[Role::Analyst]),
                key("gw", "G", &[Role::Gateway]),
            ],
            &env,
        )
        .unwrap();
        assert_eq!(auth.find("analyst-key-0123456789").unwrap().name, "soc");
        assert_eq!(auth.find("gateway-key-0123456789").unwrap().name, "gw");
        assert!(auth.find("analyst-key-012345678").is_none());
        assert!(auth.find("").is_none());
        let debug = format!("{auth:?}");
        assert!(!debug.contains("analyst-key"), "{debug}");
    }

    #[test]
    fn bad_key_tables_are_refused_naming_the_key_not_the_secret() {
        let err = Authenticator::new(&[], &env).unwrap_err();
        assert!(err.to_string().contains("api_keys is empty"), "{err}");
        let err = Authenticator::new(&[key("soc", "UNSET", &[Role::Analyst])], &env).unwrap_err();
        assert!(err.to_string().contains("UNSET"), "{err}");
        let err = Authenticator::new(&[key("soc", "SHORT", &[Role::Analyst])], &env).unwrap_err();
        assert!(err.to_string().contains("shorter than 16"), "{err}");
        assert!(!err.to_string().contains("short\""), "{err}");
        let err = Authenticator::new(
            &[
                key("a", "A", &[Role::Analyst]),
                key("b", "A", &[Role::Gateway]),
            ],
            &env,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("same as the key of \"a\""),
            "{err}"
        );
        assert!(!err.to_string().contains("analyst-key"), "{err}");
        let err = Authenticator::new(&[key("a", "A", &[])], &env).unwrap_err();
        assert!(err.to_string().contains("roles is empty"), "{err}");
        let err = Authenticator::new(
            &[
                key("a", "A", &[Role::Analyst]),
                key("a", "G", &[Role::Gateway]),
            ],
            &env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
    }
}
