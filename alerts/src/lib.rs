//! Outrider alerts: what the detector hands to people and to enforcement points.
//!
//! The detector turns a scored window into an [`Alert`] (for analysts) and, through a
//! [`PolicySet`], zero or more [`Decision`]s (for enforcement points: revoke a token,
//! block an IP, ...). Both carry deterministic ids ([`alert_id`], [`decision_id`]) so
//! that reprocessing the same window never duplicates anything downstream: stores and
//! receivers dedupe on those ids.
//!
//! # Layout
//!
//! - [`model`]: the alert and decision types, analyst notes, queries and counts, severity
//!   mapping and id derivation.
//! - [`incident`]: the [`IncidentGrouper`] groups alerts into [`Incident`]s (per identity,
//!   and per campaign: several identities alerting from one IP) and suppresses repeats
//!   within a window, in event time.
//! - [`policy`]: policy files ([`PolicyFile`], TOML) and the checked [`PolicySet`] whose
//!   [`PolicySet::decide`] maps an alert to decisions, with shadow mode.
//! - [`store`]: the [`AlertStore`] trait with an embedded ([`EmbeddedStore`], redb) and a
//!   [`ClickHouseStore`] implementation: alerts, decisions, notes, status, counts over
//!   time, incidents; inserts are idempotent by id.
//! - [`deliver`]: the durable [`Outbox`] (redb) with a delivery status per decision and
//!   target ([`Outbox::status`]), the [`Target`]s (signed [`WebhookSink`], RFC 7009
//!   [`RevocationTarget`], RFC 8417 [`SetTarget`] pushing per RFC 8935 or queueing in
//!   the RFC 8936 [`SetPollQueue`]) and the [`OutboxWorker`] that moves decisions from
//!   the one to the others with backoff and a circuit breaker per endpoint, never
//!   dropping an entry.
//! - [`feed`]: the [`DecisionFeed`] gateways pull (decisions added and expired since an
//!   opaque cursor).
//! - [`http`]: the authenticated HTTP API ([`HttpApi`]): alerts, counts, notes,
//!   incidents, the decision feed, the RFC 8936 poll route, the JWKS.
//! - [`watch`]: the [`RevocationWatcher`], which raises an alert when traffic shows a
//!   revocation did not take effect.
//! - `kafka` (feature `kafka`): the `KafkaSink` that puts alerts and decisions on a
//!   topic for SIEMs.
//! - [`Error`] / [`Result`]: one error type; [`Error::is_retryable`] tells callers whether
//!   trying again later can help.

pub mod deliver;
mod error;
pub mod feed;
pub mod http;
pub mod incident;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod model;
pub mod policy;
pub mod store;
pub mod watch;

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
pub use deliver::{DeliveryPolicy, RetryConfig};
pub use error::{Error, Result};
pub use feed::{DecisionFeed, ExpiredDecision, FeedCursor, FeedDecision, FeedPage, FeedRequest};
pub use http::{ApiKeyConfig, HttpApi, HttpConfig, Role};
pub use incident::{
    alert_reason, incident_id, GroupedAlert, GroupedBatch, Incident, IncidentConfig,
    IncidentGrouper, IncidentKind, IncidentQuery, SuppressBy, Verdict,
};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaSink, KafkaSinkConfig, SiemRecord};
pub use model::{
    alert_id, decision_id, Action, Alert, AlertNote, AlertQuery, AlertStatus, CountBucket,
    CountQuery, Decision, DecisionContext, FeatureContribution, RuleHit, Scope, Severity,
    SubjectId, TokenTypeHint, TokenValue,
};
pub use policy::{ActionKind, PolicyFile, PolicySet};
pub use store::clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use store::embedded::EmbeddedStore;
pub use store::AlertStore;
pub use watch::{Finding, Observation, RevocationWatcher, WatchConfig};
