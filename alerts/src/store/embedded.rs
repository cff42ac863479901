//! Embedded alert store on redb: one file, durable commits, no server to run.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::incident::{Incident, IncidentQuery};
use crate::model::{
    collect_buckets, Alert, AlertNote, AlertQuery, AlertStatus, CountBucket, CountQuery, Decision,
};
use crate::store::AlertStore;
use crate::{Error, Result};

/// Alerts by id, value = JSON.
const ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
/// Time index: (window_end unix millis, alert id) -> (); scanned backwards for
/// newest-first queries.
const ALERTS_BY_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("alerts_by_time");
/// Decisions by id, value = JSON.
const DECISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("decisions");
/// Decision time index: (created_at unix millis, decision id) -> ().
const DECISIONS_BY_TIME: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("decisions_by_time");

/// Notes: (alert id, unix millis, note id) -> JSON.
const NOTES: TableDefinition<(&str, i64, &str), &[u8]> = TableDefinition::new("alert_notes");
/// Incidents by id, value = JSON.
const INCIDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");
/// Incident time index: (last_seen unix millis, incident id) -> ().
const INCIDENTS_BY_TIME: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("incidents_by_time");

/// File name inside the directory given to [`EmbeddedStore::open`].
pub const FILE_NAME: &str = "alerts.redb";

/// Alert store in a local redb file (`<dir>/alerts.redb`).
///
/// Every insert is one durable redb commit, so an acknowledged insert survives a crash.
/// redb calls block, so they run on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/alerts.redb`, creating `dir` if missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = open_database(dir, FILE_NAME)?;
        let txn = db.begin_write().map_err(Error::storage)?;
        {
            txn.open_table(ALERTS).map_err(Error::storage)?;
            txn.open_table(ALERTS_BY_TIME).map_err(Error::storage)?;
            txn.open_table(DECISIONS).map_err(Error::storage)?;
            txn.open_table(DECISIONS_BY_TIME).map_err(Error::storage)?;
            txn.open_table(NOTES).map_err(Error::storage)?;
            txn.open_table(INCIDENTS).map_err(Error::storage)?;
            txn.open_table(INCIDENTS_BY_TIME).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        tracing::debug!(path = %dir.join(FILE_NAME).display(), "opened embedded alert store");
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Runs a blocking closure against the database on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await?
    }
}

/// Creates `dir` if needed and opens or creates the redb file `name` in it.
pub(crate) fn open_database(dir: &Path, name: &str) -> Result<Database> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Database::create(dir.join(name)).map_err(Error::storage)
}

fn insert_alerts_sync(db: &Database, alerts: &[Alert]) -> Result<usize> {
    let txn = db.begin_write().map_err(Error::storage)?;
    let mut inserted = 0;
    {
        let mut by_id = txn.open_table(ALERTS).map_err(Error::storage)?;
        let mut by_time = txn.open_table(ALERTS_BY_TIME).map_err(Error::storage)?;
        for alert in alerts {
            if by_id
                .get(alert.id.as_str())
                .map_err(Error::storage)?
                .is_some()
            {
                continue; // keep the first version: inserts are idempotent by id
            }
            let json = serde_json::to_vec(alert)?;
            by_id
                .insert(alert.id.as_str(), json.as_slice())
                .map_err(Error::storage)?;
            let key = (alert.window_end.timestamp_millis(), alert.id.as_str());
            by_time.insert(key, ()).map_err(Error::storage)?;
            inserted += 1;
        }
    }
    txn.commit().map_err(Error::storage)?;
    Ok(inserted)
}

fn insert_decisions_sync(db: &Database, decisions: &[Decision]) -> Result<usize> {
    let txn = db.begin_write().map_err(Error::storage)?;
    let mut inserted = 0;
    {
        let mut by_id = txn.open_table(DECISIONS).map_err(Error::storage)?;
        let mut by_time = txn.open_table(DECISIONS_BY_TIME).map_err(Error::storage)?;
        for decision in decisions {
            if by_id
                .get(decision.id.as_str())
                .map_err(Error::storage)?
                .is_some()
            {
                continue;
            }
            let json = serde_json::to_vec(decision)?;
            by_id
                .insert(decision.id.as_str(), json.as_slice())
                .map_err(Error::storage)?;
            let key = (decision.created_at.timestamp_millis(), decision.id.as_str());
            by_time.insert(key, ()).map_err(Error::storage)?;
            inserted += 1;
        }
    }
    txn.commit().map_err(Error::storage)?;
    Ok(inserted)
}

/// Scans the time index backwards from `until`, loading and filtering alerts until
/// `limit` match or the scan passes `since`.
fn query_alerts_sync(db: &Database, q: &AlertQuery) -> Result<Vec<Alert>> {
    let mut out = Vec::new();
    if q.limit == 0 {
        return Ok(out);
    }
    scan_alerts(db, q, |alert| {
        out.push(alert);
        out.len() < q.limit
    })?;
    Ok(out)
}

fn query_decisions_sync(
    db: &Database,
    alert_id: Option<&str>,
    limit: usize,
) -> Result<Vec<Decision>> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let by_id = txn.open_table(DECISIONS).map_err(Error::storage)?;
    let by_time = txn.open_table(DECISIONS_BY_TIME).map_err(Error::storage)?;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for item in by_time.iter().map_err(Error::storage)?.rev() {
        let (key, _) = item.map_err(Error::storage)?;
        let (_, id) = key.value();
        let Some(json) = by_id.get(id).map_err(Error::storage)? else {
            continue;
        };
        let decision: Decision = serde_json::from_slice(json.value())?;
        if alert_id.is_none_or(|a| a == decision.alert_id) {
            out.push(decision);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Calls `visit` with each alert whose `window_end` lies in the query's time range,
/// newest first, until it returns `false`.
fn scan_alerts(db: &Database, q: &AlertQuery, mut visit: impl FnMut(Alert) -> bool) -> Result<()> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let by_id = txn.open_table(ALERTS).map_err(Error::storage)?;
    let by_time = txn.open_table(ALERTS_BY_TIME).map_err(Error::storage)?;
    let since = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
    let until = q.until.map_or(i64::MAX, |t| t.timestamp_millis());
    if since >= until {
        return Ok(());
    }
    let range = by_time
        .range((since, "")..(until, ""))
        .map_err(Error::storage)?;
    for item in range.rev() {
        let (key, _) = item.map_err(Error::storage)?;
        let (_, id) = key.value();
        let Some(json) = by_id.get(id).map_err(Error::storage)? else {
            continue;
        };
        let alert: Alert = serde_json::from_slice(json.value())?;
        if q.matches(&alert) && !visit(alert) {
            break;
        }
    }
    Ok(())
}

fn count_alerts_sync(db: &Database, q: &CountQuery) -> Result<Vec<CountBucket>> {
    q.check()?;
    let mut counts = Vec::new();
    scan_alerts(db, &q.filter, |a| {
        counts.push((q.bucket_of(a.window_end), a.severity, 1));
        true
    })?;
    collect_buckets(counts, q.by_severity)
}

fn get_alert_sync(db: &Database, id: &str) -> Result<Option<Alert>> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let by_id = txn.open_table(ALERTS).map_err(Error::storage)?;
    let alert = by_id.get(id).map_err(Error::storage)?;
    alert
        .map(|json| serde_json::from_slice(json.value()).map_err(Error::from))
        .transpose()
}

fn set_status_sync(db: &Database, id: &str, status: AlertStatus) -> Result<bool> {
    let txn = db.begin_write().map_err(Error::storage)?;
    let found = {
        let mut by_id = txn.open_table(ALERTS).map_err(Error::storage)?;
        let current = by_id
            .get(id)
            .map_err(Error::storage)?
            .map(|json| serde_json::from_slice::<Alert>(json.value()))
            .transpose()?;
        match current {
            Some(mut alert) => {
                alert.status = status;
                let json = serde_json::to_vec(&alert)?;
                by_id.insert(id, json.as_slice()).map_err(Error::storage)?;
                true
            }
            None => false,
        }
    };
    txn.commit().map_err(Error::storage)?;
    Ok(found)
}

fn add_note_sync(db: &Database, note: &AlertNote) -> Result<()> {
    let txn = db.begin_write().map_err(Error::storage)?;
    {
        let alerts = txn.open_table(ALERTS).map_err(Error::storage)?;
        if alerts
            .get(note.alert_id.as_str())
            .map_err(Error::storage)?
            .is_none()
        {
            return Err(Error::UnknownId {
                what: "alert",
                id: note.alert_id.clone(),
            });
        }
        let mut notes = txn.open_table(NOTES).map_err(Error::storage)?;
        let id = note.id();
        let key = (
            note.alert_id.as_str(),
            note.at.timestamp_millis(),
            id.as_str(),
        );
        let json = serde_json::to_vec(note)?;
        notes.insert(key, json.as_slice()).map_err(Error::storage)?;
    }
    txn.commit().map_err(Error::storage)?;
    Ok(())
}

fn notes_sync(db: &Database, alert_id: &str) -> Result<Vec<AlertNote>> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let notes = txn.open_table(NOTES).map_err(Error::storage)?;
    let mut out = Vec::new();
    for item in notes
        .range((alert_id, i64::MIN, "")..=(alert_id, i64::MAX, "\u{10ffff}"))
        .map_err(Error::storage)?
    {
        let (_, json) = item.map_err(Error::storage)?;
        out.push(serde_json::from_slice(json.value())?);
    }
    Ok(out)
}

fn upsert_incidents_sync(db: &Database, incidents: &[Incident]) -> Result<()> {
    let txn = db.begin_write().map_err(Error::storage)?;
    {
        let mut by_id = txn.open_table(INCIDENTS).map_err(Error::storage)?;
        let mut by_time = txn.open_table(INCIDENTS_BY_TIME).map_err(Error::storage)?;
        for incident in incidents {
            let stored = by_id
                .get(incident.id.as_str())
                .map_err(Error::storage)?
                .map(|json| serde_json::from_slice::<Incident>(json.value()))
                .transpose()?;
            let merged = match stored {
                Some(mut stored) => {
                    let old_key = (stored.last_seen.timestamp_millis(), incident.id.as_str());
                    by_time.remove(old_key).map_err(Error::storage)?;
                    stored.merge(incident);
                    stored
                }
                None => incident.clone(),
            };
            write_incident(&mut by_id, &mut by_time, &merged)?;
        }
    }
    txn.commit().map_err(Error::storage)?;
    Ok(())
}

fn write_incident(
    by_id: &mut redb::Table<&str, &[u8]>,
    by_time: &mut redb::Table<(i64, &str), ()>,
    incident: &Incident,
) -> Result<()> {
    let json = serde_json::to_vec(incident)?;
    by_id
        .insert(incident.id.as_str(), json.as_slice())
        .map_err(Error::storage)?;
    let key = (incident.last_seen.timestamp_millis(), incident.id.as_str());
    by_time.insert(key, ()).map_err(Error::storage)?;
    Ok(())
}

fn query_incidents_sync(db: &Database, q: &IncidentQuery) -> Result<Vec<Incident>> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let by_id = txn.open_table(INCIDENTS).map_err(Error::storage)?;
    let by_time = txn.open_table(INCIDENTS_BY_TIME).map_err(Error::storage)?;
    let mut out = Vec::new();
    if q.limit == 0 {
        return Ok(out);
    }
    let since = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
    for item in by_time.range((since, "")..).map_err(Error::storage)?.rev() {
        let (key, _) = item.map_err(Error::storage)?;
        let (_, id) = key.value();
        let Some(json) = by_id.get(id).map_err(Error::storage)? else {
            continue;
        };
        let incident: Incident = serde_json::from_slice(json.value())?;
        if q.matches(&incident) {
            out.push(incident);
            if out.len() >= q.limit {
                break;
            }
        }
    }
    Ok(out)
}

fn get_incident_sync(db: &Database, id: &str) -> Result<Option<Incident>> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let by_id = txn.open_table(INCIDENTS).map_err(Error::storage)?;
    let incident = by_id.get(id).map_err(Error::storage)?;
    incident
        .map(|json| serde_json::from_slice(json.value()).map_err(Error::from))
        .transpose()
}

fn set_incident_status_sync(db: &Database, id: &str, status: AlertStatus) -> Result<bool> {
    let txn = db.begin_write().map_err(Error::storage)?;
    let found = {
        let mut by_id = txn.open_table(INCIDENTS).map_err(Error::storage)?;
        let current = by_id
            .get(id)
            .map_err(Error::storage)?
            .map(|json| serde_json::from_slice::<Incident>(json.value()))
            .transpose()?;
        match current {
            Some(mut incident) => {
                incident.status = status;
                let json = serde_json::to_vec(&incident)?;
                by_id.insert(id, json.as_slice()).map_err(Error::storage)?;
                true
            }
            None => false,
        }
    };
    txn.commit().map_err(Error::storage)?;
    Ok(found)
}

#[async_trait]
impl AlertStore for EmbeddedStore {
    async fn insert_alerts(&self, alerts: &[Alert]) -> Result<()> {
        let alerts = alerts.to_vec();
        let total = alerts.len();
        let inserted = self
            .blocking(move |db| insert_alerts_sync(db, &alerts))
            .await?;
        tracing::debug!(total, inserted, "stored alerts");
        Ok(())
    }

    async fn insert_decisions(&self, decisions: &[Decision]) -> Result<()> {
        let decisions = decisions.to_vec();
        let total = decisions.len();
        let inserted = self
            .blocking(move |db| insert_decisions_sync(db, &decisions))
            .await?;
        tracing::debug!(total, inserted, "stored decisions");
        Ok(())
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        let q = q.clone();
        self.blocking(move |db| query_alerts_sync(db, &q)).await
    }

    async fn decisions(&self, alert_id: Option<&str>, limit: usize) -> Result<Vec<Decision>> {
        let alert_id = alert_id.map(str::to_owned);
        self.blocking(move |db| query_decisions_sync(db, alert_id.as_deref(), limit))
            .await
    }

    async fn count_alerts(&self) -> Result<u64> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(Error::storage)?;
            let table = txn.open_table(ALERTS).map_err(Error::storage)?;
            table.len().map_err(Error::storage)
        })
        .await
    }

    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn alert(&self, id: &str) -> Result<Option<Alert>> {
        let id = id.to_owned();
        self.blocking(move |db| get_alert_sync(db, &id)).await
    }

    async fn alert_counts(&self, q: &CountQuery) -> Result<Vec<CountBucket>> {
        let q = q.clone();
        self.blocking(move |db| count_alerts_sync(db, &q)).await
    }

    async fn set_alert_status(&self, id: &str, status: AlertStatus) -> Result<bool> {
        let id = id.to_owned();
        self.blocking(move |db| set_status_sync(db, &id, status))
            .await
    }

    async fn add_note(&self, note: &AlertNote) -> Result<()> {
        let note = note.clone();
        self.blocking(move |db| add_note_sync(db, &note)).await
    }

    async fn notes(&self, alert_id: &str) -> Result<Vec<AlertNote>> {
        let alert_id = alert_id.to_owned();
        self.blocking(move |db| notes_sync(db, &alert_id)).await
    }

    async fn upsert_incidents(&self, incidents: &[Incident]) -> Result<()> {
        if incidents.is_empty() {
            return Ok(());
        }
        let incidents = incidents.to_vec();
        self.blocking(move |db| upsert_incidents_sync(db, &incidents))
            .await
    }

    async fn incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>> {
        let q = q.clone();
        self.blocking(move |db| query_incidents_sync(db, &q)).await
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>> {
        let id = id.to_owned();
        self.blocking(move |db| get_incident_sync(db, &id)).await
    }

    async fn set_incident_status(&self, id: &str, status: AlertStatus) -> Result<bool> {
        let id = id.to_owned();
        self.blocking(move |db| set_incident_status_sync(db, &id, status))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use crate::store::tests::{run_suite, sample_alert, t};

    #[tokio::test]
    async fn embedded_store_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("nested/store")).unwrap();
        run_suite(&store).await;
    }

    #[tokio::test]
    async fn embedded_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let alert = sample_alert("sub:durable", t(1_700_000_060), Severity::High);
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store
                .insert_alerts(std::slice::from_ref(&alert))
                .await
                .unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.count_alerts().await.unwrap(), 1);
        let got = store.alerts(&AlertQuery::default()).await.unwrap();
        assert_eq!(got, vec![alert]);
    }

    #[tokio::test]
    async fn status_notes_and_incidents_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let alert = sample_alert("sub:durable", t(1_700_000_060), Severity::High);
        let note = AlertNote {
            alert_id: alert.id.clone(),
            at: t(1_700_000_100),
            author: "soc".into(),
            text: "checked with the customer".into(),
        };
        let mut grouper =
            crate::incident::IncidentGrouper::new(crate::incident::IncidentConfig::default())
                .unwrap();
        let incidents = grouper.group(std::slice::from_ref(&alert)).incidents;
        assert_eq!(incidents.len(), 1);
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store
                .insert_alerts(std::slice::from_ref(&alert))
                .await
                .unwrap();
            assert!(store
                .set_alert_status(&alert.id, AlertStatus::Acknowledged)
                .await
                .unwrap());
            store.add_note(&note).await.unwrap();
            store.upsert_incidents(&incidents).await.unwrap();
            assert!(store
                .set_incident_status(&incidents[0].id, AlertStatus::Resolved)
                .await
                .unwrap());
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let got = store.alert(&alert.id).await.unwrap().unwrap();
        assert_eq!(got.status, AlertStatus::Acknowledged);
        assert_eq!(store.notes(&alert.id).await.unwrap(), vec![note]);
        let stored = store.incident(&incidents[0].id).await.unwrap().unwrap();
        assert_eq!(stored.status, AlertStatus::Resolved);
        assert_eq!(stored.alert_ids, vec![alert.id.clone()]);
        let listed = store.incidents(&IncidentQuery::default()).await.unwrap();
        assert_eq!(listed, vec![stored]);
    }
}
