//! ClickHouse alert store.
//!
//! Written for the oldest server we support, ClickHouse 18.16: rows travel as plain
//! `RowBinary` (validation off, since 18.16 lacks `RowBinaryWithNamesAndTypes`), columns
//! use only `DateTime`, `String`, `Float64`, `UInt*`, `Array(String)` and `Enum8`, and
//! all query values are bound client-side with `?`.
//!
//! Precision: `DateTime` holds whole seconds (UTC), so `created_at`, `window_start`,
//! `window_end` (alerts) and `created_at` (decisions) come back truncated to the second.
//!
//! Idempotency: tables are `ReplacingMergeTree(version)` and every read uses `FINAL`, so
//! rows with the same sorting key collapse. `version` decreases with insert time, which
//! keeps the *first* inserted copy, like the embedded store.
//!
//! Updates (18.16 has no synchronous mutations): changing an alert's status writes a
//! copy of its row with a `version` one above the stored one, so it wins over the
//! original and over any later re-insert (whose version is lower still). Incidents
//! are read, merged ([`crate::Incident::merge`]) and written back with a version
//! above the stored one. Notes are rows of their own (`alert_notes`), first copy kept.

use std::future::Future;
use std::time::Duration;

use ::clickhouse::Client;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::incident::{Incident, IncidentKind, IncidentQuery};
use crate::model::{
    collect_buckets, Action, Alert, AlertNote, AlertQuery, AlertStatus, CountBucket, CountQuery,
    Decision, FeatureContribution, RuleHit, Scope, Severity,
};
use crate::store::AlertStore;
use crate::{Error, Result};

/// Attempts per request for transient failures (network errors, timeouts).
const MAX_ATTEMPTS: u32 = 4;
/// First retry delay; doubles per attempt.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Filters must run after `FINAL` collapses duplicates. Some server versions move
/// `WHERE` on non-key columns to `PREWHERE`, which runs before it; turning the move off
/// is harmless where it is not needed.
const NO_PREWHERE: (&str, &str) = ("optimize_move_to_prewhere", "0");

const SEVERITY_ENUM: &str = "Enum8('low' = 1, 'medium' = 2, 'high' = 3, 'critical' = 4)";
const STATUS_ENUM: &str =
    "Enum8('open' = 1, 'acknowledged' = 2, 'resolved' = 3, 'false_positive' = 4)";
const ACTION_ENUM: &str = "Enum8('revoke_token' = 1, 'revoke_sessions' = 2, 'block' = 3, \
     'throttle' = 4, 'step_up' = 5, 'notify' = 6)";
const SCOPE_ENUM: &str = "Enum8('token' = 1, 'identity' = 2, 'ip' = 3)";
const KIND_ENUM: &str = "Enum8('identity' = 1, 'campaign' = 2)";

/// Connection settings for [`ClickHouseStore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Created if missing; letters, digits and `_` only.
    pub database: String,
    pub user: String,
    /// Name of the environment variable holding the password (never the password
    /// itself, so config files can be shared). `None`: no password.
    pub password_env: Option<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "outrider".into(),
            user: "default".into(),
            password_env: None,
        }
    }
}

/// Alert store on ClickHouse (see the module docs for types and precision).
#[derive(Debug, Clone)]
pub struct ClickHouseStore {
    client: Client,
    database: String,
}

#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
struct AlertRow {
    id: String,
    created_at: u32,
    window_start: u32,
    window_end: u32,
    identity: String,
    apis: Vec<String>,
    client_ips: Vec<String>,
    token_ids: Vec<String>,
    score: f64,
    threshold: f64,
    severity: i8,
    model_version: String,
    /// `Vec<FeatureContribution>` as JSON.
    features: String,
    /// [`AlertExtras`] as JSON: `Vec<RuleHit>` (the only form before the risk existed),
    /// or `{"hits": [...], "risk": r}` when the alert has a risk. Carried here so that the
    /// table needs no new column.
    rule_hits: String,
    evidence_request_ids: Vec<String>,
    event_count: u64,
    status: i8,
    version: u64,
}

#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
struct DecisionRow {
    id: String,
    alert_id: String,
    created_at: u32,
    action: i8,
    scope: i8,
    value: String,
    ttl_secs: u64,
    origin: String,
    simulated: u8,
    reason: String,
    version: u64,
}

#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
struct NoteRow {
    id: String,
    alert_id: String,
    at: u32,
    author: String,
    text: String,
    version: u64,
}

#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
struct IncidentRow {
    id: String,
    kind: i8,
    key: String,
    first_seen: u32,
    last_seen: u32,
    alert_ids: Vec<String>,
    identities: Vec<String>,
    reasons: Vec<String>,
    max_severity: i8,
    status: i8,
    alert_count: u64,
    suppressed_count: u64,
    version: u64,
}

#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
struct CountRow {
    bucket: u64,
    severity: i8,
    n: u64,
}

impl ClickHouseStore {
    /// Connects and creates the database and tables if missing.
    pub async fn connect(cfg: &ClickHouseConfig) -> Result<Self> {
        validate_identifier(&cfg.database)?;
        let mut client = Client::default()
            .with_url(cfg.url.as_str())
            .with_user(cfg.user.as_str())
            .with_validation(false);
        if let Some(var) = &cfg.password_env {
            client = client.with_password(read_password(var)?);
        }
        let create_db = format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database);
        retry("create database", || client.query(&create_db).execute()).await?;
        let store = ClickHouseStore {
            client: client.with_database(cfg.database.as_str()),
            database: cfg.database.clone(),
        };
        store.create_tables().await?;
        tracing::info!(url = %redact_url(&cfg.url), database = %cfg.database, "connected to clickhouse");
        Ok(store)
    }

    /// The database this store writes to.
    pub fn database(&self) -> &str {
        &self.database
    }

    async fn create_tables(&self) -> Result<()> {
        for ddl in [alerts_ddl(), decisions_ddl(), notes_ddl(), incidents_ddl()] {
            retry("create table", || self.client.query(&ddl).execute()).await?;
        }
        Ok(())
    }

    /// Drops the whole database: for tests that create one per run.
    #[cfg(test)]
    pub(crate) async fn drop_database(&self) -> Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.database);
        retry("drop database", || self.client.query(&sql).execute()).await
    }
}

/// `CREATE TABLE` for alerts: one row per alert id; identity first in the sorting key
/// because analysts filter by identity most.
pub fn alerts_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS alerts (\
         id String, created_at DateTime, window_start DateTime, window_end DateTime, \
         identity String, apis Array(String), client_ips Array(String), \
         token_ids Array(String), score Float64, threshold Float64, \
         severity {SEVERITY_ENUM}, model_version String, features String, rule_hits String, \
         evidence_request_ids Array(String), event_count UInt64, status {STATUS_ENUM}, \
         version UInt64) \
         ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_end) \
         ORDER BY (identity, window_end, id)"
    )
}

/// `CREATE TABLE` for decisions: sorted by id alone (a re-created decision may carry
/// another `created_at`, and must still collapse onto the first).
pub fn decisions_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS decisions (\
         id String, alert_id String, created_at DateTime, action {ACTION_ENUM}, \
         scope {SCOPE_ENUM}, value String, ttl_secs UInt64, origin String, \
         simulated UInt8, reason String, version UInt64) \
         ENGINE = ReplacingMergeTree(version) ORDER BY id"
    )
}

/// `CREATE TABLE` for analyst notes: one row per note, the first copy kept.
pub fn notes_ddl() -> String {
    "CREATE TABLE IF NOT EXISTS alert_notes (\
     id String, alert_id String, at DateTime, author String, text String, version UInt64) \
     ENGINE = ReplacingMergeTree(version) ORDER BY (alert_id, at, id)"
        .to_owned()
}

/// `CREATE TABLE` for incidents: one row per incident id, the highest version (the
/// latest merge) kept.
pub fn incidents_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS incidents (\
         id String, kind {KIND_ENUM}, key String, first_seen DateTime, last_seen DateTime, \
         alert_ids Array(String), identities Array(String), reasons Array(String), \
         max_severity {SEVERITY_ENUM}, status {STATUS_ENUM}, alert_count UInt64, \
         suppressed_count UInt64, version UInt64) \
         ENGINE = ReplacingMergeTree(version) ORDER BY id"
    )
}

/// `WHERE` clauses and their bound values for an alert filter (`limit` aside).
enum Bind {
    Secs(u32),
    Text(String),
    Code(i8),
}

fn alert_filter_sql(q: &AlertQuery) -> Result<(String, Vec<Bind>)> {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut binds = Vec::new();
    if let Some(since) = q.since {
        sql.push_str(" AND window_end >= toDateTime(?)");
        binds.push(Bind::Secs(to_secs(since)?));
    }
    if let Some(until) = q.until {
        sql.push_str(" AND window_end < toDateTime(?)");
        binds.push(Bind::Secs(to_secs(until)?));
    }
    if let Some(identity) = &q.identity {
        sql.push_str(" AND identity = ?");
        binds.push(Bind::Text(identity.clone()));
    }
    if let Some(api) = &q.api {
        sql.push_str(" AND has(apis, ?)");
        binds.push(Bind::Text(api.clone()));
    }
    if let Some(s) = q.min_severity {
        sql.push_str(" AND CAST(severity AS Int8) >= ?");
        binds.push(Bind::Code(severity_code(s)));
    }
    if let Some(s) = q.status {
        sql.push_str(" AND CAST(status AS Int8) = ?");
        binds.push(Bind::Code(status_code(s)));
    }
    Ok((sql, binds))
}

fn bind_all(mut query: ::clickhouse::query::Query, binds: &[Bind]) -> ::clickhouse::query::Query {
    for b in binds {
        query = match b {
            Bind::Secs(s) => query.bind(*s),
            Bind::Text(t) => query.bind(t.as_str()),
            Bind::Code(c) => query.bind(*c),
        };
    }
    query
}

impl ClickHouseStore {
    async fn alert_row(&self, id: &str) -> Result<Option<AlertRow>> {
        let rows = retry("query alert", || {
            self.client
                .query("SELECT ?fields FROM alerts FINAL WHERE id = ? LIMIT 1")
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1)
                .bind(id)
                .fetch_all::<AlertRow>()
        })
        .await?;
        Ok(rows.into_iter().next())
    }

    async fn incident_rows(&self, ids: &[&str]) -> Result<Vec<IncidentRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        retry("query incidents by id", || {
            self.client
                .query("SELECT ?fields FROM incidents FINAL WHERE has(?, id)")
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1)
                .bind(ids)
                .fetch_all::<IncidentRow>()
        })
        .await
    }

    async fn write_incident_rows(&self, rows: &[IncidentRow]) -> Result<()> {
        let client = &self.client;
        retry("insert incidents", move || async move {
            let mut insert = client.insert::<IncidentRow>("incidents").await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
    }
}

/// A version above `stored` that also grows with time, so the newest write wins.
fn update_version(stored: Option<u64>) -> u64 {
    let now = u64::try_from(Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    stored.map_or(now, |v| v.saturating_add(1).max(now))
}

#[async_trait]
impl AlertStore for ClickHouseStore {
    async fn insert_alerts(&self, alerts: &[Alert]) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let version = insert_version();
        let rows = alerts
            .iter()
            .map(|a| alert_to_row(a, version))
            .collect::<Result<Vec<_>>>()?;
        let rows = &rows;
        let client = &self.client;
        retry("insert alerts", move || async move {
            let mut insert = client.insert::<AlertRow>("alerts").await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await?;
        tracing::debug!(count = alerts.len(), "stored alerts in clickhouse");
        Ok(())
    }

    async fn insert_decisions(&self, decisions: &[Decision]) -> Result<()> {
        if decisions.is_empty() {
            return Ok(());
        }
        let version = insert_version();
        let rows = decisions
            .iter()
            .map(|d| decision_to_row(d, version))
            .collect::<Result<Vec<_>>>()?;
        let rows = &rows;
        let client = &self.client;
        retry("insert decisions", move || async move {
            let mut insert = client.insert::<DecisionRow>("decisions").await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await?;
        tracing::debug!(count = decisions.len(), "stored decisions in clickhouse");
        Ok(())
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, binds) = alert_filter_sql(q)?;
        let sql = format!(
            "SELECT ?fields FROM alerts FINAL{filter} ORDER BY window_end DESC, id DESC LIMIT ?"
        );
        let limit = q.limit as u64;
        let rows = retry("query alerts", || {
            let query = self
                .client
                .query(&sql)
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1);
            bind_all(query, &binds).bind(limit).fetch_all::<AlertRow>()
        })
        .await?;
        rows.into_iter().map(row_to_alert).collect()
    }

    async fn decisions(&self, alert_id: Option<&str>, limit: usize) -> Result<Vec<Decision>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = if alert_id.is_some() {
            " WHERE alert_id = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT ?fields FROM decisions FINAL{filter} ORDER BY created_at DESC, id DESC LIMIT ?"
        );
        let limit = limit as u64;
        let rows = retry("query decisions", || {
            let mut query = self
                .client
                .query(&sql)
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1);
            if let Some(id) = alert_id {
                query = query.bind(id);
            }
            query.bind(limit).fetch_all::<DecisionRow>()
        })
        .await?;
        rows.into_iter().map(row_to_decision).collect()
    }

    async fn count_alerts(&self) -> Result<u64> {
        retry("count alerts", || {
            self.client
                .query("SELECT count() FROM alerts FINAL")
                .fetch_one::<u64>()
        })
        .await
    }

    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn alert(&self, id: &str) -> Result<Option<Alert>> {
        self.alert_row(id).await?.map(row_to_alert).transpose()
    }

    async fn alert_counts(&self, q: &CountQuery) -> Result<Vec<CountBucket>> {
        q.check()?;
        let (filter, binds) = alert_filter_sql(&q.filter)?;
        // toStartOfInterval is missing on 18.16: integer division does the same.
        let sql = format!(
            "SELECT toUInt64(intDiv(toUInt64(window_end), ?) * ?) AS bucket, \
             CAST(severity AS Int8) AS severity, count() AS n \
             FROM alerts FINAL{filter} GROUP BY bucket, severity ORDER BY bucket, severity"
        );
        let size = q.bucket_secs;
        let rows = retry("count alerts over time", || {
            let query = self
                .client
                .query(&sql)
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1)
                .bind(size)
                .bind(size);
            bind_all(query, &binds).fetch_all::<CountRow>()
        })
        .await?;
        let counts = rows
            .into_iter()
            .map(|r| {
                let start = i64::try_from(r.bucket)
                    .map_err(|_| Error::InvalidData(format!("bad bucket {}", r.bucket)))?;
                Ok((start, severity_from_code(r.severity)?, r.n))
            })
            .collect::<Result<Vec<_>>>()?;
        collect_buckets(counts, q.by_severity)
    }

    async fn set_alert_status(&self, id: &str, status: AlertStatus) -> Result<bool> {
        let Some(mut row) = self.alert_row(id).await? else {
            return Ok(false);
        };
        row.status = status_code(status);
        row.version = row.version.saturating_add(1);
        let row = &row;
        let client = &self.client;
        retry("update alert status", move || async move {
            let mut insert = client.insert::<AlertRow>("alerts").await?;
            insert.write(row).await?;
            insert.end().await
        })
        .await?;
        Ok(true)
    }

    async fn add_note(&self, note: &AlertNote) -> Result<()> {
        if self.alert_row(&note.alert_id).await?.is_none() {
            return Err(Error::UnknownId {
                what: "alert",
                id: note.alert_id.clone(),
            });
        }
        let row = NoteRow {
            id: note.id(),
            alert_id: note.alert_id.clone(),
            at: to_secs(note.at)?,
            author: note.author.clone(),
            text: note.text.clone(),
            version: insert_version(),
        };
        let row = &row;
        let client = &self.client;
        retry("insert note", move || async move {
            let mut insert = client.insert::<NoteRow>("alert_notes").await?;
            insert.write(row).await?;
            insert.end().await
        })
        .await
    }

    async fn notes(&self, alert_id: &str) -> Result<Vec<AlertNote>> {
        let rows = retry("query notes", || {
            self.client
                .query("SELECT ?fields FROM alert_notes FINAL WHERE alert_id = ? ORDER BY at, id")
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1)
                .bind(alert_id)
                .fetch_all::<NoteRow>()
        })
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AlertNote {
                    alert_id: r.alert_id,
                    at: from_secs(r.at)?,
                    author: r.author,
                    text: r.text,
                })
            })
            .collect()
    }

    async fn upsert_incidents(&self, incidents: &[Incident]) -> Result<()> {
        if incidents.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = incidents.iter().map(|i| i.id.as_str()).collect();
        let mut stored: std::collections::HashMap<String, (Incident, u64)> = self
            .incident_rows(&ids)
            .await?
            .into_iter()
            .map(|r| {
                let version = r.version;
                row_to_incident(r).map(|i| (i.id.clone(), (i, version)))
            })
            .collect::<Result<_>>()?;
        let rows = incidents
            .iter()
            .map(|incident| match stored.remove(&incident.id) {
                Some((mut merged, version)) => {
                    merged.merge(incident);
                    incident_to_row(&merged, update_version(Some(version)))
                }
                None => incident_to_row(incident, update_version(None)),
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_incident_rows(&rows).await?;
        tracing::debug!(count = rows.len(), "stored incidents in clickhouse");
        Ok(())
    }

    async fn incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut sql = String::from("SELECT ?fields FROM incidents FINAL WHERE 1 = 1");
        let mut binds = Vec::new();
        if let Some(since) = q.since {
            sql.push_str(" AND last_seen >= toDateTime(?)");
            binds.push(Bind::Secs(to_secs(since)?));
        }
        if let Some(until) = q.until {
            sql.push_str(" AND first_seen < toDateTime(?)");
            binds.push(Bind::Secs(to_secs(until)?));
        }
        if let Some(identity) = &q.identity {
            sql.push_str(" AND (key = ? OR has(identities, ?))");
            binds.push(Bind::Text(identity.clone()));
            binds.push(Bind::Text(identity.clone()));
        }
        if let Some(kind) = q.kind {
            sql.push_str(" AND CAST(kind AS Int8) = ?");
            binds.push(Bind::Code(kind_code(kind)));
        }
        if let Some(s) = q.min_severity {
            sql.push_str(" AND CAST(max_severity AS Int8) >= ?");
            binds.push(Bind::Code(severity_code(s)));
        }
        if let Some(s) = q.status {
            sql.push_str(" AND CAST(status AS Int8) = ?");
            binds.push(Bind::Code(status_code(s)));
        }
        sql.push_str(" ORDER BY last_seen DESC, id DESC LIMIT ?");
        let limit = q.limit as u64;
        let rows = retry("query incidents", || {
            let query = self
                .client
                .query(&sql)
                .with_setting(NO_PREWHERE.0, NO_PREWHERE.1);
            bind_all(query, &binds)
                .bind(limit)
                .fetch_all::<IncidentRow>()
        })
        .await?;
        rows.into_iter().map(row_to_incident).collect()
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>> {
        self.incident_rows(&[id])
            .await?
            .into_iter()
            .next()
            .map(row_to_incident)
            .transpose()
    }

    async fn set_incident_status(&self, id: &str, status: AlertStatus) -> Result<bool> {
        let Some(mut row) = self.incident_rows(&[id]).await?.into_iter().next() else {
            return Ok(false);
        };
        row.status = status_code(status);
        row.version = update_version(Some(row.version));
        self.write_incident_rows(std::slice::from_ref(&row)).await?;
        Ok(true)
    }
}

/// Runs `op` up to [`MAX_ATTEMPTS`] times while it fails transiently, doubling the
/// delay; the final error says whether a later retry may help.
async fn retry<T, F, Fut>(what: &'static str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ::clickhouse::error::Result<T>>,
{
    let mut delay = INITIAL_BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if is_transient(&e) && attempt < MAX_ATTEMPTS => {
                tracing::warn!(op = what, attempt, error = %e, "clickhouse request failed, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(source) => {
                return Err(Error::ClickHouse {
                    op: what,
                    retryable: is_transient(&source),
                    source,
                })
            }
        }
    }
}

/// Network trouble and timeouts may pass; server-side errors (bad SQL, unknown table)
/// will not.
fn is_transient(e: &::clickhouse::error::Error) -> bool {
    matches!(
        e,
        ::clickhouse::error::Error::Network(_) | ::clickhouse::error::Error::TimedOut
    )
}

/// Decreases with time, so `ReplacingMergeTree(version)` keeps the earliest copy.
fn insert_version() -> u64 {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    u64::MAX - u64::try_from(nanos).unwrap_or(0)
}

/// Database names go into DDL unquoted, so allow only a safe alphabet.
fn validate_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "clickhouse database name {name:?} must be letters, digits and '_', not starting with a digit"
        )))
    }
}

fn read_password(var: &str) -> Result<String> {
    std::env::var(var).map_err(|_| {
        Error::Config(format!(
            "clickhouse password variable {var} is not set (password_env)"
        ))
    })
}

/// Drops any `user:password@` part before logging a URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn to_secs(ts: DateTime<Utc>) -> Result<u32> {
    u32::try_from(ts.timestamp()).map_err(|_| {
        Error::InvalidData(format!(
            "timestamp {ts} is outside clickhouse DateTime range (1970..2106)"
        ))
    })
}

fn from_secs(secs: u32) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(i64::from(secs), 0)
        .ok_or_else(|| Error::InvalidData(format!("bad timestamp {secs}")))
}

fn alert_to_row(a: &Alert, version: u64) -> Result<AlertRow> {
    Ok(AlertRow {
        id: a.id.clone(),
        created_at: to_secs(a.created_at)?,
        window_start: to_secs(a.window_start)?,
        window_end: to_secs(a.window_end)?,
        identity: a.identity.clone(),
        apis: a.apis.clone(),
        client_ips: a.client_ips.clone(),
        token_ids: a.token_ids.clone(),
        score: a.score,
        threshold: a.threshold,
        severity: severity_code(a.severity),
        model_version: a.model_version.clone(),
        features: serde_json::to_string(&a.features)?,
        rule_hits: AlertExtras::of(a).to_json()?,
        evidence_request_ids: a.evidence_request_ids.clone(),
        event_count: a.event_count,
        status: status_code(a.status),
        version,
    })
}

fn row_to_alert(r: AlertRow) -> Result<Alert> {
    let features: Vec<FeatureContribution> = serde_json::from_str(&r.features)?;
    let (rule_hits, risk) = AlertExtras::from_json(&r.rule_hits)?;
    Ok(Alert {
        id: r.id,
        created_at: from_secs(r.created_at)?,
        window_start: from_secs(r.window_start)?,
        window_end: from_secs(r.window_end)?,
        identity: r.identity,
        apis: r.apis,
        client_ips: r.client_ips,
        token_ids: r.token_ids,
        score: r.score,
        threshold: r.threshold,
        severity: severity_from_code(r.severity)?,
        model_version: r.model_version,
        features,
        evidence_request_ids: r.evidence_request_ids,
        event_count: r.event_count,
        status: status_from_code(r.status)?,
        rule_hits,
        risk,
    })
}

/// What the `rule_hits` column holds: the hits alone, or the hits and the risk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum AlertExtras {
    WithRisk { hits: Vec<RuleHit>, risk: f64 },
    Hits(Vec<RuleHit>),
}

impl AlertExtras {
    fn of(a: &Alert) -> Self {
        match a.risk {
            Some(risk) => Self::WithRisk {
                hits: a.rule_hits.clone(),
                risk,
            },
            None => Self::Hits(a.rule_hits.clone()),
        }
    }

    fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    fn from_json(json: &str) -> Result<(Vec<RuleHit>, Option<f64>)> {
        Ok(match serde_json::from_str(json)? {
            Self::WithRisk { hits, risk } => (hits, Some(risk)),
            Self::Hits(hits) => (hits, None),
        })
    }
}

fn decision_to_row(d: &Decision, version: u64) -> Result<DecisionRow> {
    Ok(DecisionRow {
        id: d.id.clone(),
        alert_id: d.alert_id.clone(),
        created_at: to_secs(d.created_at)?,
        action: action_code(d.action),
        scope: scope_code(d.scope),
        value: d.value.clone(),
        ttl_secs: d.ttl_secs,
        origin: d.origin.clone(),
        simulated: u8::from(d.simulated),
        reason: d.reason.clone(),
        version,
    })
}

fn row_to_decision(r: DecisionRow) -> Result<Decision> {
    Ok(Decision {
        id: r.id,
        alert_id: r.alert_id,
        created_at: from_secs(r.created_at)?,
        action: action_from_code(r.action)?,
        scope: scope_from_code(r.scope)?,
        value: r.value,
        ttl_secs: r.ttl_secs,
        origin: r.origin,
        simulated: r.simulated != 0,
        reason: r.reason,
    })
}

fn incident_to_row(i: &Incident, version: u64) -> Result<IncidentRow> {
    Ok(IncidentRow {
        id: i.id.clone(),
        kind: kind_code(i.kind),
        key: i.key.clone(),
        first_seen: to_secs(i.first_seen)?,
        last_seen: to_secs(i.last_seen)?,
        alert_ids: i.alert_ids.clone(),
        identities: i.identities.clone(),
        reasons: i.reasons.clone(),
        max_severity: severity_code(i.max_severity),
        status: status_code(i.status),
        alert_count: i.alert_count,
        suppressed_count: i.suppressed_count,
        version,
    })
}

fn row_to_incident(r: IncidentRow) -> Result<Incident> {
    Ok(Incident {
        id: r.id,
        kind: kind_from_code(r.kind)?,
        key: r.key,
        first_seen: from_secs(r.first_seen)?,
        last_seen: from_secs(r.last_seen)?,
        alert_ids: r.alert_ids,
        identities: r.identities,
        reasons: r.reasons,
        max_severity: severity_from_code(r.max_severity)?,
        status: status_from_code(r.status)?,
        alert_count: r.alert_count,
        suppressed_count: r.suppressed_count,
    })
}

// Enum8 codes: must match the DDL constants above.

const SEVERITIES: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];
const STATUSES: [AlertStatus; 4] = [
    AlertStatus::Open,
    AlertStatus::Acknowledged,
    AlertStatus::Resolved,
    AlertStatus::FalsePositive,
];
const ACTIONS: [Action; 6] = [
    Action::RevokeToken,
    Action::RevokeSessions,
    Action::Block,
    Action::Throttle,
    Action::StepUp,
    Action::Notify,
];
const SCOPES: [Scope; 3] = [Scope::Token, Scope::Identity, Scope::Ip];
const KINDS: [IncidentKind; 2] = [IncidentKind::Identity, IncidentKind::Campaign];

/// 1-based position in `all`, the Enum8 code.
fn code_of<T: PartialEq>(all: &[T], value: &T) -> i8 {
    let index = all.iter().position(|v| v == value).unwrap_or(0);
    i8::try_from(index + 1).unwrap_or(i8::MAX)
}

fn from_code<T: Copy>(all: &[T], code: i8, what: &str) -> Result<T> {
    usize::try_from(code)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .and_then(|i| all.get(i).copied())
        .ok_or_else(|| Error::InvalidData(format!("unknown {what} code {code}")))
}

fn severity_code(s: Severity) -> i8 {
    code_of(&SEVERITIES, &s)
}
fn severity_from_code(c: i8) -> Result<Severity> {
    from_code(&SEVERITIES, c, "severity")
}
fn status_code(s: AlertStatus) -> i8 {
    code_of(&STATUSES, &s)
}
fn status_from_code(c: i8) -> Result<AlertStatus> {
    from_code(&STATUSES, c, "status")
}
fn action_code(a: Action) -> i8 {
    code_of(&ACTIONS, &a)
}
fn action_from_code(c: i8) -> Result<Action> {
    from_code(&ACTIONS, c, "action")
}
fn scope_code(s: Scope) -> i8 {
    code_of(&SCOPES, &s)
}
fn scope_from_code(c: i8) -> Result<Scope> {
    from_code(&SCOPES, c, "scope")
}
fn kind_code(k: IncidentKind) -> i8 {
    code_of(&KINDS, &k)
}
fn kind_from_code(c: i8) -> Result<IncidentKind> {
    from_code(&KINDS, c, "incident kind")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::run_suite;

    #[test]
    fn rule_hits_column_reads_old_rows_and_carries_the_risk() {
        // Rows written before alerts had a risk hold the hits alone.
        let old = r#"[{"rule":"token_ips","severity":"high","reason":"7 IPs"}]"#;
        let (hits, risk) = AlertExtras::from_json(old).unwrap();
        assert_eq!((hits.len(), risk), (1, None));
        assert_eq!(hits[0].rule, "token_ips");
        let (hits, risk) = AlertExtras::from_json("[]").unwrap();
        assert!(hits.is_empty() && risk.is_none());
        let mut alert =
            crate::store::tests::sample_alert("sub:a", crate::store::tests::t(60), Severity::High);
        alert.risk = Some(0.9975);
        let json = AlertExtras::of(&alert).to_json().unwrap();
        let (hits, risk) = AlertExtras::from_json(&json).unwrap();
        assert_eq!((hits, risk), (alert.rule_hits.clone(), Some(0.9975)));
        alert.risk = None;
        let json = AlertExtras::of(&alert).to_json().unwrap();
        assert!(
            json.starts_with('['),
            "without a risk the old form is kept: {json}"
        );
        assert!(AlertExtras::from_json(r#"{"risk":1}"#).is_err());
    }

    #[test]
    fn enum_codes_round_trip_and_match_ddl() {
        for s in SEVERITIES {
            assert_eq!(severity_from_code(severity_code(s)).unwrap(), s);
            assert!(SEVERITY_ENUM.contains(&format!("'{}' = {}", s.as_str(), severity_code(s))));
        }
        for a in ACTIONS {
            assert_eq!(action_from_code(action_code(a)).unwrap(), a);
            assert!(ACTION_ENUM.contains(&format!("'{}' = {}", a.as_str(), action_code(a))));
        }
        for s in SCOPES {
            assert_eq!(scope_from_code(scope_code(s)).unwrap(), s);
            assert!(SCOPE_ENUM.contains(&format!("'{}' = {}", s.as_str(), scope_code(s))));
        }
        for k in KINDS {
            assert_eq!(kind_from_code(kind_code(k)).unwrap(), k);
            assert!(KIND_ENUM.contains(&format!("'{}' = {}", k.as_str(), kind_code(k))));
        }
        for s in STATUSES {
            assert_eq!(status_from_code(status_code(s)).unwrap(), s);
            let name = serde_json::to_string(&s).unwrap();
            let name = name.trim_matches('"');
            assert!(STATUS_ENUM.contains(&format!("'{name}' = {}", status_code(s))));
        }
        assert!(severity_from_code(0).is_err());
        assert!(scope_from_code(4).is_err());
    }

    #[test]
    fn rejects_unsafe_database_names_and_redacts_urls() {
        assert!(validate_identifier("outrider_test_1").is_ok());
        assert!(validate_identifier("x; DROP TABLE alerts").is_err());
        assert!(validate_identifier("").is_err());
        assert!(validate_identifier("1abc").is_err());
        assert_eq!(redact_url("http://u:secret@h:8123"), "http://***@h:8123");
        assert_eq!(redact_url("http://h:8123"), "http://h:8123");
    }

    #[test]
    fn config_rejects_unknown_fields_and_has_defaults() {
        let cfg: ClickHouseConfig = serde_json::from_str(r#"{"url":"http://x:1"}"#).unwrap();
        assert_eq!(cfg.database, "outrider");
        assert_eq!(cfg.user, "default");
        assert!(serde_json::from_str::<ClickHouseConfig>(r#"{"pasword":"x"}"#).is_err());
    }

    #[test]
    fn later_inserts_get_smaller_versions() {
        let first = insert_version();
        std::thread::sleep(Duration::from_millis(2));
        assert!(insert_version() < first);
    }

    #[tokio::test]
    async fn unreachable_server_is_a_retryable_error() {
        // Port 9 (discard) on loopback: nothing listens there in test environments.
        let cfg = ClickHouseConfig {
            url: "http://127.0.0.1:9".into(),
            ..ClickHouseConfig::default()
        };
        let err = ClickHouseStore::connect(&cfg).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }

    #[tokio::test]
    #[ignore = "needs clickhouse: run scripts/test.sh"]
    async fn clickhouse_store_passes_the_suite() {
        let url = std::env::var("OUTRIDER_TEST_CLICKHOUSE_URL").expect(
            "OUTRIDER_TEST_CLICKHOUSE_URL must point at a ClickHouse HTTP endpoint \
             (e.g. http://127.0.0.1:18123) to run this test",
        );
        let nanos = Utc::now().timestamp_subsec_nanos();
        let cfg = ClickHouseConfig {
            url,
            database: format!("outrider_test_{}_{nanos}", std::process::id()),
            ..ClickHouseConfig::default()
        };
        let store = ClickHouseStore::connect(&cfg).await.unwrap();
        // Connecting again must not fail on existing tables.
        ClickHouseStore::connect(&cfg).await.unwrap();
        let suite_store = store.clone();
        let outcome = tokio::spawn(async move { run_suite(&suite_store).await }).await;
        // Drop the database even when the suite failed, then report the failure.
        store.drop_database().await.unwrap();
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
