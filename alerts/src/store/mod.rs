//! Where alerts and decisions are kept for analysts and for the audit trail.
//!
//! Two implementations share one contract (and one test suite, `store::tests`):
//! [`embedded::EmbeddedStore`] for single-node deployments and tests, and
//! [`clickhouse::ClickHouseStore`] for fleets that already run ClickHouse.

use async_trait::async_trait;

use crate::model::{Alert, AlertQuery, Decision};
use crate::Result;

pub mod clickhouse;
pub mod embedded;
#[cfg(test)]
pub(crate) mod tests;

/// Storage for alerts and decisions.
///
/// Inserts are idempotent by id: inserting an alert or decision whose id is already
/// stored changes nothing visible, so replaying a window is harmless.
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
}
