//! The SET target at run time: build, sign, push or queue.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::event::build_claims;
use super::{SetConfig, SetDelivery, SetErr, SetPollQueue};
use crate::deliver::jose::{Jwks, SigningKey};
use crate::deliver::target::{Job, Sent, Target};
use crate::deliver::webhook::sink::is_retryable_status;
use crate::deliver::{read_body_prefix, secret_from, truncate, DeliveryPolicy};
use crate::model::{Decision, DecisionContext};
use crate::{Error, Result};

/// `typ` header of a SET (RFC 8417 2.3).
pub const SECEVENT_TYP: &str = "secevent+jwt";
/// Media type of a pushed SET (RFC 8935 2).
pub const SECEVENT_CONTENT_TYPE: &str = "application/secevent+jwt";
const MAX_ERROR_BODY: usize = 4096;

enum Mode {
    Push {
        client: reqwest::Client,
        endpoint: String,
        /// Complete `Authorization` header value.
        authorization: Option<String>,
    },
    Poll {
        queue: Arc<SetPollQueue>,
        receiver: String,
    },
}

/// What [`SetTarget::issue`] made of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issued {
    /// A signed SET (compact JWS) and its `jti`.
    Set { jti: String, token: String },
    /// The decision makes no SET (IP scope, `notify`, simulated), and why.
    Skipped { reason: String },
}

/// Signs decisions as SETs and pushes or queues them. `Debug` shows no secret.
pub struct SetTarget {
    cfg: SetConfig,
    key: SigningKey,
    mode: Mode,
    endpoint: String,
}

impl std::fmt::Debug for SetTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetTarget")
            .field("name", &self.cfg.name)
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SetTarget {
    /// Builds the target, reading the signing key (and the push bearer token) as
    /// configured. Poll mode needs the queue.
    pub fn new(cfg: SetConfig, poll_queue: Option<&Arc<SetPollQueue>>) -> Result<Self> {
        Self::with_env(cfg, poll_queue, &crate::deliver::process_env)
    }

    /// [`Self::new`] with an explicit environment lookup.
    pub fn with_env(
        cfg: SetConfig,
        poll_queue: Option<&Arc<SetPollQueue>>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let what = format!("set target {}", cfg.name);
        if cfg.issuer.is_empty() || cfg.audience.iter().all(|a| a.is_empty()) {
            return Err(Error::Config(format!(
                "{what}: issuer and audience are required"
            )));
        }
        let key = SigningKey::load(
            &what,
            cfg.key_path.as_deref(),
            cfg.key_env.as_deref(),
            cfg.alg,
            cfg.key_id.clone(),
            lookup,
        )?;
        let (mode, endpoint) = match &cfg.delivery {
            SetDelivery::Push {
                endpoint,
                authorization_env,
            } => {
                let authorization = authorization_env
                    .as_deref()
                    .map(|var| secret_from(var, lookup).map(|t| format!("Bearer {t}")))
                    .transpose()?;
                let client = crate::deliver::http_client(&cfg.name, cfg.timeout_ms)?;
                (
                    Mode::Push {
                        client,
                        endpoint: endpoint.clone(),
                        authorization,
                    },
                    endpoint.clone(),
                )
            }
            SetDelivery::Poll { receiver } => {
                let queue = poll_queue.ok_or_else(|| {
                    Error::Config(format!("{what}: poll delivery needs the set poll queue"))
                })?;
                (
                    Mode::Poll {
                        queue: Arc::clone(queue),
                        receiver: receiver.clone(),
                    },
                    format!("poll:{receiver}"),
                )
            }
        };
        Ok(SetTarget {
            cfg,
            key,
            mode,
            endpoint,
        })
    }

    /// The JWKS document receivers verify these SETs with; publish it (e.g. at the
    /// issuer's `jwks_uri`).
    pub fn jwks(&self) -> Jwks {
        self.key.jwks()
    }

    pub fn config(&self) -> &SetConfig {
        &self.cfg
    }

    /// The signed SET for a decision, or why there is none.
    pub fn issue(&self, decision: &Decision, context: &DecisionContext) -> Result<Issued> {
        let now = chrono::Utc::now().timestamp();
        let claims = match build_claims(&self.cfg, decision, context, now) {
            Ok(c) => c,
            Err(reason) => return Ok(Issued::Skipped { reason }),
        };
        let token = self.key.sign_jwt(SECEVENT_TYP, &claims)?;
        Ok(Issued::Set {
            jti: claims.jti,
            token,
        })
    }

    async fn push(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        authorization: Option<&str>,
        token: String,
    ) -> Result<Sent> {
        let mut request = client
            .post(endpoint)
            .header(CONTENT_TYPE, SECEVENT_CONTENT_TYPE)
            .header(ACCEPT, "application/json")
            .body(token);
        if let Some(auth) = authorization {
            request = request.header(AUTHORIZATION, auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| crate::deliver::transport_error(&self.cfg.name, e))?;
        let status = response.status();
        if status.is_success() {
            if status.as_u16() != 202 {
                tracing::debug!(target_name = %self.cfg.name, status = status.as_u16(), "set receiver answered a success other than 202");
            }
            return Ok(Sent::Delivered {
                http_status: Some(status.as_u16()),
            });
        }
        let body = read_body_prefix(response, MAX_ERROR_BODY).await;
        let code = status.as_u16();
        if code == 400 {
            #[derive(Deserialize)]
            struct Body {
                err: String,
                #[serde(default)]
                description: String,
            }
            let parsed = serde_json::from_slice::<Body>(&body).ok().map(|b| SetErr {
                err: b.err,
                description: b.description,
            });
            let message = match &parsed {
                Some(e) => format!(
                    "{}: {}",
                    truncate(&e.err, 64),
                    truncate(&e.description, 256)
                ),
                None => "receiver answered 400 without an rfc 8935 error body".to_owned(),
            };
            return Err(Error::Rejected {
                target: self.cfg.name.clone(),
                status: Some(code),
                code: parsed.map(|e| truncate(&e.err, 64)),
                message,
            });
        }
        if matches!(code, 401 | 403) {
            tracing::error!(target_name = %self.cfg.name, status = code, "set receiver refused outrider's authorization; events wait until it is fixed");
        }
        Err(Error::Delivery {
            target: self.cfg.name.clone(),
            status: Some(code),
            attempts: 1,
            retryable: is_retryable_status(status) || matches!(code, 401 | 403),
            message: format!("set receiver answered {status}"),
        })
    }
}

#[async_trait]
impl Target for SetTarget {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> &'static str {
        match self.mode {
            Mode::Push { .. } => "set_push",
            Mode::Poll { .. } => "set_poll",
        }
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn policy(&self) -> DeliveryPolicy {
        self.cfg.policy()
    }

    async fn send(&self, job: &Job<'_>) -> Result<Sent> {
        let (jti, token) = match self.issue(job.decision, job.context)? {
            Issued::Set { jti, token } => (jti, token),
            Issued::Skipped { reason } => return Ok(Sent::Skipped { reason }),
        };
        match &self.mode {
            Mode::Push {
                client,
                endpoint,
                authorization,
            } => {
                self.push(client, endpoint, authorization.as_deref(), token)
                    .await
            }
            Mode::Poll { queue, receiver } => {
                let queue = Arc::clone(queue);
                let receiver = receiver.clone();
                let added =
                    tokio::task::spawn_blocking(move || queue.push(&receiver, &jti, &token))
                        .await??;
                tracing::debug!(target_name = %self.cfg.name, decision_id = %job.decision.id, added, "set queued for polling");
                Ok(Sent::Delivered { http_status: None })
            }
        }
    }
}
