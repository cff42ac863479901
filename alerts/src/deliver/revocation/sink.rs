//! The revocation target at run time.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ClientAuth, IdentityMode, RevocationConfig};
use crate::deliver::jose::{Jwks, SigningKey};
use crate::deliver::target::{Job, Sent, Target};
use crate::deliver::webhook::sink::is_retryable_status;
use crate::deliver::{read_body_prefix, secret_from, truncate, DeliveryPolicy};
use crate::model::{Action, Scope, TokenValue};
use crate::{Error, Result};

/// RFC 7523 2.2 `client_assertion_type` for JWT client authentication.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest error body read back from the server.
const MAX_ERROR_BODY: usize = 4096;

enum Auth {
    /// The complete `Authorization` header value.
    Basic(String),
    Jwt {
        key: Box<SigningKey>,
        token_endpoint: String,
        lifetime_secs: u64,
    },
}

/// Revokes tokens at one RFC 7009 endpoint. `Debug` shows no secret.
pub struct RevocationTarget {
    cfg: RevocationConfig,
    auth: Auth,
    client: reqwest::Client,
}

impl std::fmt::Debug for RevocationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match self.auth {
            Auth::Basic(_) => "client_secret_basic",
            Auth::Jwt { .. } => "private_key_jwt",
        };
        f.debug_struct("RevocationTarget")
            .field("name", &self.cfg.name)
            .field("client_id", &self.cfg.client_id)
            .field("auth", &method)
            .finish_non_exhaustive()
    }
}

/// The claims of an RFC 7523 client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// An OAuth error answer (RFC 6749 5.2).
#[derive(Debug, Default, Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl RevocationTarget {
    /// Builds the target, reading the client secret or private key as configured from
    /// the process environment or the file system.
    pub fn new(cfg: RevocationConfig) -> Result<Self> {
        Self::with_env(cfg, &crate::deliver::process_env)
    }

    /// [`Self::new`] with an explicit environment lookup.
    pub fn with_env(
        cfg: RevocationConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let what = format!("revocation target {}", cfg.name);
        if cfg.client_id.is_empty() {
            return Err(Error::Config(format!("{what}: client_id is empty")));
        }
        let auth = match &cfg.auth {
            ClientAuth::ClientSecretBasic { secret_env } => {
                let secret = secret_from(secret_env, lookup)?;
                Auth::Basic(basic_header(&cfg.client_id, &secret))
            }
            ClientAuth::PrivateKeyJwt {
                token_endpoint,
                key_path,
                key_env,
                alg,
                key_id,
                assertion_lifetime_secs,
            } => Auth::Jwt {
                key: Box::new(SigningKey::load(
                    &what,
                    key_path.as_deref(),
                    key_env.as_deref(),
                    *alg,
                    key_id.clone(),
                    lookup,
                )?),
                token_endpoint: token_endpoint.clone(),
                lifetime_secs: (*assertion_lifetime_secs).max(1),
            },
        };
        let client = crate::deliver::http_client(&cfg.name, cfg.timeout_ms)?;
        Ok(RevocationTarget { cfg, auth, client })
    }

    pub fn config(&self) -> &RevocationConfig {
        &self.cfg
    }

    /// For `private_key_jwt`: the public key to register at the token server.
    pub fn jwks(&self) -> Option<Jwks> {
        match &self.auth {
            Auth::Jwt { key, .. } => Some(key.jwks()),
            Auth::Basic(_) => None,
        }
    }

    /// The token to revoke, or why there is none.
    fn token_for<'a>(&self, job: &'a Job<'_>) -> std::result::Result<&'a TokenValue, String> {
        let d = job.decision;
        if d.simulated {
            return Err("simulated decision (shadow mode): nothing is revoked".to_owned());
        }
        if !matches!(
            d.action,
            Action::RevokeToken | Action::RevokeSessions | Action::Block
        ) {
            return Err(format!(
                "{} decisions do not revoke tokens",
                d.action.as_str()
            ));
        }
        match (d.scope, self.cfg.identity_mode) {
            (Scope::Token, _) | (Scope::Identity, IdentityMode::CarriedToken) => {}
            (Scope::Identity, IdentityMode::Skip) => {
                return Err("identity decisions are not revoked by rfc 7009 \
                            (identity_mode = skip); send them to a set target"
                    .to_owned())
            }
            (Scope::Ip, _) => return Err("ip decisions have no token to revoke".to_owned()),
        }
        job.context.token.as_ref().ok_or_else(|| {
            "the decision does not carry the token: rfc 7009 needs the token itself, \
             which outrider has only when the gateway passes it"
                .to_owned()
        })
    }

    /// The form fields: the token and hint, plus the client assertion for
    /// `private_key_jwt`.
    fn form(&self, job: &Job<'_>, token: &TokenValue) -> Result<Vec<(&'static str, String)>> {
        let hint = job
            .context
            .token_type_hint
            .unwrap_or(self.cfg.token_type_hint);
        let mut form = vec![
            ("token", token.expose().to_owned()),
            ("token_type_hint", hint.as_str().to_owned()),
        ];
        if let Auth::Jwt {
            key,
            token_endpoint,
            lifetime_secs,
        } = &self.auth
        {
            let iat = chrono::Utc::now().timestamp();
            let claims = AssertionClaims {
                iss: self.cfg.client_id.clone(),
                sub: self.cfg.client_id.clone(),
                aud: token_endpoint.clone(),
                iat,
                exp: iat.saturating_add(i64::try_from(*lifetime_secs).unwrap_or(60)),
                jti: random_jti(),
            };
            form.push(("client_id", self.cfg.client_id.clone()));
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
            form.push(("client_assertion", key.sign_jwt("JWT", &claims)?));
        }
        Ok(form)
    }

    fn classify(&self, status: StatusCode, body: &[u8]) -> Error {
        let oauth: OAuthError = serde_json::from_slice(body).unwrap_or_default();
        let code = (!oauth.error.is_empty()).then(|| truncate(&oauth.error, 64));
        let message = match (&code, &oauth.error_description) {
            (Some(c), Some(d)) => format!("{status}: {c}: {}", truncate(d, 256)),
            (Some(c), None) => format!("{status}: {c}"),
            _ => format!("token server answered {status}"),
        };
        let auth_refused = matches!(status.as_u16(), 401 | 403)
            || matches!(
                oauth.error.as_str(),
                "invalid_client" | "unauthorized_client"
            );
        if auth_refused {
            tracing::error!(
                target_name = %self.cfg.name,
                client_id = %self.cfg.client_id,
                status = status.as_u16(),
                error_code = code.as_deref().unwrap_or(""),
                "token server refused outrider's client authentication; revocations wait until it is fixed"
            );
        }
        if auth_refused || is_retryable_status(status) {
            return Error::Delivery {
                target: self.cfg.name.clone(),
                status: Some(status.as_u16()),
                attempts: 1,
                retryable: true,
                message,
            };
        }
        Error::Rejected {
            target: self.cfg.name.clone(),
            status: Some(status.as_u16()),
            code,
            message,
        }
    }
}

#[async_trait]
impl Target for RevocationTarget {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> &'static str {
        "revocation"
    }

    fn endpoint(&self) -> &str {
        &self.cfg.endpoint
    }

    fn policy(&self) -> DeliveryPolicy {
        self.cfg.policy()
    }

    async fn send(&self, job: &Job<'_>) -> Result<Sent> {
        let token = match self.token_for(job) {
            Ok(t) => t,
            Err(reason) => return Ok(Sent::Skipped { reason }),
        };
        let mut request = self
            .client
            .post(&self.cfg.endpoint)
            .header(ACCEPT, "application/json")
            .form(&self.form(job, token)?);
        if let Auth::Basic(header) = &self.auth {
            request = request.header(AUTHORIZATION, header.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| crate::deliver::transport_error(&self.cfg.name, e))?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(target_name = %self.cfg.name, decision_id = %job.decision.id, status = status.as_u16(), "token revoked");
            return Ok(Sent::Delivered {
                http_status: Some(status.as_u16()),
            });
        }
        let body = read_body_prefix(response, MAX_ERROR_BODY).await;
        Err(self.classify(status, &body))
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 2.3.1).
pub(crate) fn basic_header(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(client_id), enc(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// 128 random bits, hex: unique per assertion, as RFC 7523 3 asks.
fn random_jti() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
