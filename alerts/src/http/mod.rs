//! The HTTP API Outrider serves: alerts and incidents for analysts, decisions and
//! Security Event Tokens for enforcement points. Every route authenticates its caller
//! with a bearer API key ([`ApiKeyConfig`], [`Role`]); the JWKS route too, unless `public_jwks` says
//! otherwise.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /v1/alerts` | analyst | alerts, newest first; filters `since`, `until`, `identity`, `api`, `min_severity`, `status`, `limit` |
//! | `GET /v1/alerts/counts` | analyst | counts per `bucket` (`1h`), optionally `by=severity`, same filters |
//! | `GET /v1/alerts/{id}` | analyst | one alert with its notes and decisions |
//! | `PATCH /v1/alerts/{id}` | analyst | `{"status": .., "note": ..}` |
//! | `GET /v1/incidents` | analyst | incidents, newest first; `since`, `until`, `identity`, `kind`, `min_severity`, `status`, `limit` |
//! | `GET /v1/incidents/{id}` | analyst | one incident |
//! | `PATCH /v1/incidents/{id}` | analyst | `{"status": ..}` |
//! | `GET /v1/decisions/stream` | gateway | decisions added and expired since `cursor` |
//! | `POST /v1/sets/poll` | gateway with `set_receiver` | RFC 8936 poll of the key's SET stream |
//! | `GET /v1/jwks` | any key (or public) | the keys SETs are signed with |
//!
//! Build an [`HttpApi`], then either mount [`HttpApi::router`] in a server of your own
//! or call [`HttpApi::run`] with a bound listener and a shutdown future.

mod auth;
mod error;
mod handlers;
mod params;

use std::future::Future;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

pub use auth::{ApiKeyConfig, Caller, Role, MIN_KEY_LEN};
pub use error::ApiError;
pub use handlers::{AlertDetail, AlertPatch, IncidentPatch};

use crate::deliver::jose::Jwks;
use crate::deliver::set::SetPollQueue;
use crate::feed::DecisionFeed;
use crate::store::AlertStore;
use crate::{Error, Result};
use auth::Authenticator;

/// The HTTP API's settings.
///
/// ```toml
/// [http]
/// listen = "127.0.0.1:8640"
/// public_jwks = false
/// [[http.api_keys]]
/// name = "soc"
/// key_env = "OUTRIDER_API_KEY_SOC"
/// roles = ["analyst"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where [`HttpApi::run`]'s caller binds.
    pub listen: String,
    pub api_keys: Vec<ApiKeyConfig>,
    /// Serve `GET /v1/jwks` without a key. It holds public keys only; turn this on when
    /// SET receivers fetch the JWKS from the issuer's `jwks_uri` without credentials.
    pub public_jwks: bool,
    /// Longest wait of an RFC 8936 poll with `returnImmediately: false` when nothing
    /// is queued.
    pub poll_wait_ms: u64,
    /// Largest `limit` a list route accepts (and the decision stream's page size).
    pub max_page: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8640".into(),
            api_keys: Vec::new(),
            public_jwks: false,
            poll_wait_ms: 30_000,
            max_page: 1000,
        }
    }
}

/// Shared by every handler.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: HttpConfig,
    pub(crate) auth: Authenticator,
    pub(crate) store: Arc<dyn AlertStore>,
    pub(crate) feed: Option<Arc<DecisionFeed>>,
    pub(crate) poll_queue: Option<Arc<SetPollQueue>>,
    pub(crate) jwks: Option<Jwks>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The HTTP API, ready to serve.
#[derive(Debug)]
pub struct HttpApi {
    cfg: HttpConfig,
    auth: Authenticator,
    store: Arc<dyn AlertStore>,
    feed: Option<Arc<DecisionFeed>>,
    poll_queue: Option<Arc<SetPollQueue>>,
    jwks: Option<Jwks>,
}

impl HttpApi {
    /// Reads the API keys from the process environment and checks the config.
    pub fn new(cfg: &HttpConfig, store: Arc<dyn AlertStore>) -> Result<Self> {
        Self::with_env(cfg, store, &crate::deliver::process_env)
    }

    /// [`Self::new`] with an explicit environment lookup.
    pub fn with_env(
        cfg: &HttpConfig,
        store: Arc<dyn AlertStore>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        if cfg.max_page == 0 {
            return Err(Error::Config("http.max_page must be at least 1".into()));
        }
        Ok(HttpApi {
            auth: Authenticator::new(&cfg.api_keys, lookup)?,
            cfg: cfg.clone(),
            store,
            feed: None,
            poll_queue: None,
            jwks: None,
        })
    }

    /// Serves `GET /v1/decisions/stream` from this feed (404 without one). Marking an
    /// alert a false positive also withdraws its decisions from the feed.
    pub fn with_decision_feed(mut self, feed: Arc<DecisionFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Serves `POST /v1/sets/poll` from this queue (404 without one).
    pub fn with_poll_queue(mut self, queue: Arc<SetPollQueue>) -> Self {
        self.poll_queue = Some(queue);
        self
    }

    /// Serves `GET /v1/jwks` (404 without one): e.g. [`crate::SetTarget::jwks`], merged
    /// with other signing keys' documents.
    pub fn with_jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// The routes, for a server of the caller's own (e.g. nested under a prefix).
    pub fn router(self) -> Router {
        let state = AppState(Arc::new(Inner {
            cfg: self.cfg,
            auth: self.auth,
            store: self.store,
            feed: self.feed,
            poll_queue: self.poll_queue,
            jwks: self.jwks,
        }));
        Router::new()
            .route("/v1/alerts", get(handlers::list_alerts))
            .route("/v1/alerts/counts", get(handlers::alert_counts))
            .route(
                "/v1/alerts/{id}",
                get(handlers::get_alert).patch(handlers::patch_alert),
            )
            .route("/v1/incidents", get(handlers::list_incidents))
            .route(
                "/v1/incidents/{id}",
                get(handlers::get_incident).patch(handlers::patch_incident),
            )
            .route("/v1/decisions/stream", get(handlers::decision_stream))
            .route("/v1/sets/poll", post(handlers::poll_sets))
            .route("/v1/jwks", get(handlers::jwks))
            .fallback(handlers::not_found)
            .with_state(state)
    }

    /// Serves on `listener` until `shutdown` resolves, then finishes the requests in
    /// flight (mini-redis style: tests bind `127.0.0.1:0`).
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(Error::Serve)?;
        tracing::info!(%addr, "http api listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)?;
        tracing::info!(%addr, "http api stopped");
        Ok(())
    }
}
