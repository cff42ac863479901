//! Outrider alerts: what the detector hands to people and to enforcement points.
//!
//! The detector turns a scored window into an [`Alert`] (for analysts) and zero or more
//! [`Decision`]s (for enforcement points: revoke a token, block an IP, ...). Both carry
//! deterministic ids ([`alert_id`], [`decision_id`]) so that reprocessing the same window
//! never duplicates anything downstream: stores and receivers dedupe on those ids.
//!
//! # Layout
//!
//! - [`model`]: the alert and decision types, severity mapping and id derivation.
//! - [`store`]: the [`AlertStore`] trait with an embedded ([`EmbeddedStore`], redb) and a
//!   [`ClickHouseStore`] implementation; inserts are idempotent by id.
//! - [`deliver`]: the durable [`Outbox`] (redb) with a delivery status per decision and
//!   target ([`Outbox::status`]), the [`Target`]s (signed [`WebhookSink`], RFC 7009
//!   [`RevocationTarget`], RFC 8417 [`SetTarget`] pushing per RFC 8935 or queueing in
//!   the RFC 8936 [`SetPollQueue`]) and the [`OutboxWorker`] that moves decisions from
//!   the one to the others with backoff and a circuit breaker per endpoint, never
//!   dropping an entry.
//! - [`Error`] / [`Result`]: one error type; [`Error::is_retryable`] tells callers whether
//!   trying again later can help.

pub mod deliver;
mod error;
pub mod model;
pub mod store;

pub use deliver::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use deliver::jose::{verify_jwt, Jwk, Jwks, JwsAlg, SigningKey};
pub use deliver::outbox::{
    DeliveryState, Outbox, OutboxEntry, OutboxStatus, StateKind, StatusCounts, TargetStatus,
};
pub use deliver::revocation::{ClientAuth, IdentityMode, RevocationConfig, RevocationTarget};
pub use deliver::set::{
    Issued, PollRequest, PollResponse, SetConfig, SetDelivery, SetPollQueue, SetTarget,
};
pub use deliver::target::{build_targets, build_targets_with, Job, Sent, Target, TargetConfig};
pub use deliver::webhook::{sign, verify, WebhookConfig, WebhookSink};
pub use deliver::worker::{DeliveryEvent, OutboxWorker};
pub use deliver::DeliveryPolicy;
pub use error::{Error, Result};
pub use model::{
    alert_id, decision_id, Action, Alert, AlertQuery, AlertStatus, Decision, DecisionContext,
    FeatureContribution, Scope, Severity, SubjectId, TokenTypeHint, TokenValue,
};
pub use store::clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use store::embedded::EmbeddedStore;
pub use store::AlertStore;
