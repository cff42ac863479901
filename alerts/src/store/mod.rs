//! Where alerts, decisions, notes and incidents are kept for analysts and for the audit
//! trail.
//!
//! Two implementations share one contract (and one test suite, `store::tests`):
//! [`embedded::EmbeddedStore`] for single-node deployments and tests, and
//! [`clickhouse::ClickHouseStore`] for fleets that already run ClickHouse.

use async_trait::async_trait;

use crate::incident::{Incident, IncidentQuery};
use crate::model::{Alert, AlertNote, AlertQuery, AlertStatus, CountBucket, CountQuery, Decision};
use crate::{Error, Result};

pub mod clickhouse;
pub mod embedded;
#[cfg(test)]
pub(crate) mod tests;

/// Storage for alerts, decisions, analyst notes and incidents.
///
/// Inserts are idempotent by id: inserting an alert or decision whose id is already
/// stored changes nothing visible, so replaying a window is harmless. The methods past
/// `count_alerts` have default implementations that answer [`Error::Unsupported`], so
/// a minimal store (a test double) implements only the first six; both real stores
/// implement all of them, with the same results.
#[async_trait]
pub trait AlertStore: Send + Sync + std::fmt::Debug {
    async fn insert_alerts(&self, alerts: &[Alert]) -> Result<()>;
    async fn insert_decisions(&self, decisions: &[Decision]) -> Result<()>;
    /// Alerts matching `q`, newest `window_end` first (ties: larger id first), at most
    /// `q.limit`.
    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>>;
    /// Decisions, newest `created_at` first (ties: larger id first), optionally only
    /// those of one alert.
    async fn decisions(&self, alert_id: Option<&str>, limit: usize) -> Result<Vec<Decision>>;
    async fn count_alerts(&self) -> Result<u64>;
    /// Short name for logs ("embedded", "clickhouse").
    fn name(&self) -> &'static str;

    /// One alert by id.
    async fn alert(&self, id: &str) -> Result<Option<Alert>> {
        let _ = id;
        Err(Error::Unsupported("looking up one alert".into()))
    }

    /// Alert counts per time bucket (see [`CountQuery`]); empty buckets are left out.
    async fn alert_counts(&self, q: &CountQuery) -> Result<Vec<CountBucket>> {
        let _ = q;
        Err(Error::Unsupported("counting alerts over time".into()))
    }

    /// Sets an alert's status; `false` when no alert has this id. Later re-inserts of
    /// the alert (replays) do not reset it.
    async fn set_alert_status(&self, id: &str, status: AlertStatus) -> Result<bool> {
        let _ = (id, status);
        Err(Error::Unsupported("changing an alert's status".into()))
    }

    /// Appends a note to an existing alert ([`Error::UnknownId`] otherwise);
    /// idempotent by [`AlertNote::id`].
    async fn add_note(&self, note: &AlertNote) -> Result<()> {
        let _ = note;
        Err(Error::Unsupported("alert notes".into()))
    }

    /// An alert's notes, oldest first (ties: by id).
    async fn notes(&self, alert_id: &str) -> Result<Vec<AlertNote>> {
        let _ = alert_id;
        Err(Error::Unsupported("alert notes".into()))
    }

    /// Stores incidents, merging each into the stored copy with [`Incident::merge`]
    /// (so an analyst's status survives later updates from the grouper).
    async fn upsert_incidents(&self, incidents: &[Incident]) -> Result<()> {
        let _ = incidents;
        Err(Error::Unsupported("incidents".into()))
    }

    /// Incidents matching `q`, newest `last_seen` first (ties: larger id first).
    async fn incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>> {
        let _ = q;
        Err(Error::Unsupported("incidents".into()))
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>> {
        let _ = id;
        Err(Error::Unsupported("incidents".into()))
    }

    /// Sets an incident's status; `false` when no incident has this id.
    async fn set_incident_status(&self, id: &str, status: AlertStatus) -> Result<bool> {
        let _ = (id, status);
        Err(Error::Unsupported("incidents".into()))
    }
}
