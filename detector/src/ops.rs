//! The ops endpoint (`[ops]`): Prometheus metrics at `/metrics`, liveness at `/health`,
//! readiness at `/ready`. It runs beside the pipeline on its own listener (mini-redis
//! style: `run(listener, shutdown)`; tests bind 127.0.0.1:0) and stops last, so a scraper
//! sees the final counters and `/ready` stays false through a graceful shutdown.
//!
//! ```toml
//! [ops]
//! listen = "127.0.0.1:9464"
//! metrics_key_env = "OUTRIDER_METRICS_KEY"   # optional: /metrics then needs this bearer key
//! ```
//!
//! The probes never need a key: they reveal nothing but up/ready.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::metrics::{self, Metrics};

/// Shorter metrics keys are refused at start-up: they can be guessed.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Where `/metrics`, `/health` and `/ready` are served.
    pub listen: String,
    /// The environment variable holding a bearer key that `/metrics` requires; without
    /// it `/metrics` is open (bind it to a private address).
    pub metrics_key_env: Option<String>,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            metrics_key_env: None,
        }
    }
}

impl OpsConfig {
    /// What can be checked without the environment.
    pub fn check(&self) -> Result<()> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(Error::Config(format!(
                "`ops.listen`: {:?} is not an address and port such as \"127.0.0.1:9464\"",
                self.listen
            )));
        }
        if self
            .metrics_key_env
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(Error::Config("`ops.metrics_key_env` is empty".into()));
        }
        Ok(())
    }

    /// The metrics key, read from its variable; an error names the variable, never the key.
    fn metrics_key(&self) -> Result<Option<String>> {
        let Some(var) = &self.metrics_key_env else {
            return Ok(None);
        };
        let key = std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "`ops.metrics_key_env`: the variable {var} is not set"
            ))
        })?;
        if key.len() < MIN_KEY_LEN {
            return Err(Error::Config(format!(
                "`ops.metrics_key_env`: the key in {var} is shorter than {MIN_KEY_LEN} characters"
            )));
        }
        Ok(Some(key))
    }
}

/// What `/ready` checks. Each flag is set once by the part that achieved it; shutting
/// down turns readiness off for good.
#[derive(Debug, Default)]
pub struct Readiness {
    model_loaded: AtomicBool,
    store_opened: AtomicBool,
    source_started: AtomicBool,
    shutting_down: AtomicBool,
}

/// The `/ready` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadyStatus {
    pub ready: bool,
    pub model_loaded: bool,
    pub store_opened: bool,
    pub source_started: bool,
    pub shutting_down: bool,
}

impl Readiness {
    pub fn model_loaded(&self) {
        self.model_loaded.store(true, Ordering::Release);
    }

    pub fn store_opened(&self) {
        self.store_opened.store(true, Ordering::Release);
    }

    pub fn source_started(&self) {
        self.source_started.store(true, Ordering::Release);
    }

    /// From now on `/ready` answers 503, so a load balancer or Kubernetes stops routing
    /// here while the last batch is finished and the outbox drained.
    pub fn shutdown_started(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn status(&self) -> ReadyStatus {
        let model_loaded = self.model_loaded.load(Ordering::Acquire);
        let store_opened = self.store_opened.load(Ordering::Acquire);
        let source_started = self.source_started.load(Ordering::Acquire);
        let shutting_down = self.shutting_down.load(Ordering::Acquire);
        ReadyStatus {
            ready: model_loaded && store_opened && source_started && !shutting_down,
            model_loaded,
            store_opened,
            source_started,
            shutting_down,
        }
    }
}

/// The ops endpoint, built (its key read) before anything starts.
#[derive(Debug, Clone)]
pub struct OpsServer {
    metrics: Arc<Metrics>,
    key: Option<Arc<str>>,
}

impl OpsServer {
    pub fn new(cfg: &OpsConfig, metrics: Arc<Metrics>) -> Result<Self> {
        Ok(Self {
            metrics,
            key: cfg.metrics_key()?.map(Arc::from),
        })
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(metrics_route))
            .route("/health", get(|| async { "ok\n" }))
            .route("/ready", get(ready_route))
            .with_state(self)
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(Error::Ops)?;
        tracing::info!(%addr, "ops endpoint listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Ops)?;
        tracing::info!(%addr, "ops endpoint stopped");
        Ok(())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.key else {
            return true;
        };
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        constant_time_eq(given.as_bytes(), key.as_bytes())
    }
}

async fn metrics_route(State(ops): State<OpsServer>, headers: HeaderMap) -> Response {
    if !ops.authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Bearer realm=\"outrider-metrics\"")],
            "a valid bearer key is required\n",
        )
            .into_response();
    }
    match ops.metrics.encode() {
        Ok(body) => ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

async fn ready_route(State(ops): State<OpsServer>) -> Response {
    let status = ops.metrics.readiness().status();
    let code = match status.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = serde_json::to_string(&status).unwrap_or_default();
    (code, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn readiness_needs_every_part_and_ends_with_shutdown() {
        let r = Readiness::default();
        assert!(!r.status().ready);
        r.model_loaded();
        r.store_opened();
        assert!(!r.status().ready, "the source has not started");
        r.source_started();
        assert!(r.status().ready);
        r.shutdown_started();
        let s = r.status();
        assert!(!s.ready && s.shutting_down && s.model_loaded);
    }

    #[test]
    fn the_config_names_a_bad_listen_address_and_a_missing_key_variable() {
        let bad = OpsConfig {
            listen: "localhost".into(),
            ..OpsConfig::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("ops.listen"));
        let missing = OpsConfig {
            metrics_key_env: Some("OUTRIDER_TEST_OPS_KEY_NEVER_SET".into()),
            ..OpsConfig::default()
        };
        missing.check().unwrap();
        let err = OpsServer::new(&missing, Arc::new(Metrics::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("OUTRIDER_TEST_OPS_KEY_NEVER_SET"), "{err}");
        let toml_err = serde_json::from_str::<OpsConfig>(r#"{"listen":"127.0.0.1:1","port":2}"#)
            .unwrap_err()
            .to_string();
        assert!(toml_err.contains("port"), "{toml_err}");
    }

    #[test]
    fn keys_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeg"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
    }
}
