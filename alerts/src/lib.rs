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
//! - [`deliver`]: the durable [`Outbox`] (redb), the signed [`WebhookSink`] and the
//!   [`OutboxWorker`] that moves decisions from the one to the other, retrying forever
//!   with backoff and never dropping an entry.
//! - [`Error`] / [`Result`]: one error type; [`Error::is_retryable`] tells callers whether
//!   trying again later can help.

pub mod deliver;
mod error;
pub mod model;
pub mod store;

pub use deliver::outbox::{Outbox, OutboxEntry, OutboxStatus};
pub use deliver::webhook::{sign, verify, WebhookConfig, WebhookSink};
pub use deliver::worker::OutboxWorker;
pub use error::{Error, Result};
pub use model::{
    alert_id, decision_id, Action, Alert, AlertQuery, AlertStatus, Decision, FeatureContribution,
    Scope, Severity,
};
pub use store::clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use store::embedded::EmbeddedStore;
pub use store::AlertStore;
