//! Durable outbox: decisions waiting to reach their targets.
//!
//! A decision is enqueued once per target before anything is sent, in one durable
//! commit, so a crash between detection and delivery loses nothing. Entries are keyed
//! by (decision id, target), which makes enqueueing idempotent, and stay in the file
//! after delivery as a record of what was sent and when.
//!
//! The methods block on disk I/O; async callers run them on the blocking pool (the
//! worker does).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::deliver::now_ms;
use crate::model::Decision;
use crate::store::embedded::open_database;
use crate::{Error, Result};

/// (decision id, target) -> entry JSON.
const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
/// Pending entries by due time: (next_attempt_at ms, decision id, target) -> ().
const DUE: TableDefinition<(i64, &str, &str), ()> = TableDefinition::new("due");

pub const FILE_NAME: &str = "outbox.redb";
/// Longest error text kept per entry; receivers can answer with large bodies.
const MAX_ERROR_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    Delivered,
}

/// One decision for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub decision: Decision,
    pub target: String,
    pub status: OutboxStatus,
    /// Send attempts so far (failed ones plus the successful one).
    pub attempts: u32,
    /// Unix millis; meaningful while pending.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub enqueued_at: i64,
    pub delivered_at: Option<i64>,
}

/// The outbox file (`<dir>/outbox.redb`).
#[derive(Debug)]
pub struct Outbox {
    db: Database,
}

impl Outbox {
    /// Opens (or creates) `dir/outbox.redb`, creating `dir` if missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = open_database(dir, FILE_NAME)?;
        let txn = db.begin_write().map_err(Error::storage)?;
        {
            txn.open_table(ENTRIES).map_err(Error::storage)?;
            txn.open_table(DUE).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        Ok(Outbox { db })
    }

    /// Adds one pending entry per (decision, target), due now. Existing entries are
    /// left as they are (whatever their status), so re-enqueueing is harmless.
    pub fn enqueue(&self, decisions: &[Decision], targets: &[String]) -> Result<()> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let mut added = 0usize;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
            let mut due = txn.open_table(DUE).map_err(Error::storage)?;
            for d in decisions {
                for target in targets {
                    let key = (d.id.as_str(), target.as_str());
                    if entries.get(key).map_err(Error::storage)?.is_some() {
                        continue;
                    }
                    let entry = OutboxEntry {
                        decision: d.clone(),
                        target: target.clone(),
                        status: OutboxStatus::Pending,
                        attempts: 0,
                        next_attempt_at: now,
                        last_error: None,
                        enqueued_at: now,
                        delivered_at: None,
                    };
                    let json = serde_json::to_vec(&entry)?;
                    entries
                        .insert(key, json.as_slice())
                        .map_err(Error::storage)?;
                    due.insert((now, key.0, key.1), ())
                        .map_err(Error::storage)?;
                    added += 1;
                }
            }
        }
        txn.commit().map_err(Error::storage)?;
        tracing::debug!(added, "enqueued outbox entries");
        Ok(())
    }

    /// Pending entries due at `now_ms`, earliest first, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
        let due = txn.open_table(DUE).map_err(Error::storage)?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let upper = now_ms.saturating_add(1);
        for item in due
            .range((i64::MIN, "", "")..(upper, "", ""))
            .map_err(Error::storage)?
        {
            let (key, _) = item.map_err(Error::storage)?;
            let (_, id, target) = key.value();
            if let Some(json) = entries.get((id, target)).map_err(Error::storage)? {
                out.push(serde_json::from_slice(json.value())?);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Earliest `next_attempt_at` among pending entries, if any.
    pub fn next_due_at(&self) -> Result<Option<i64>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let due = txn.open_table(DUE).map_err(Error::storage)?;
        let first = due.first().map_err(Error::storage)?;
        Ok(first.map(|(key, _)| key.value().0))
    }

    /// Records a successful delivery; the entry leaves the pending set.
    pub fn mark_delivered(&self, decision_id: &str, target: &str) -> Result<()> {
        self.update(decision_id, target, |entry| {
            entry.attempts = entry.attempts.saturating_add(1);
            entry.status = OutboxStatus::Delivered;
            entry.delivered_at = Some(now_ms());
            entry.last_error = None;
        })
    }

    /// Records a failed attempt and when to try again. A delivered entry stays
    /// delivered (a late failure report must not resurrect it).
    pub fn mark_failed(
        &self,
        decision_id: &str,
        target: &str,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<()> {
        self.update(decision_id, target, |entry| {
            entry.attempts = entry.attempts.saturating_add(1);
            entry.next_attempt_at = next_attempt_ms;
            entry.last_error = Some(truncate(error, MAX_ERROR_LEN));
        })
    }

    /// Number of entries not yet delivered.
    pub fn pending_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let due = txn.open_table(DUE).map_err(Error::storage)?;
        due.len().map_err(Error::storage)
    }

    /// All entries, pending and delivered, ordered by (decision id, target).
    pub fn entries(&self) -> Result<Vec<OutboxEntry>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
        let mut out = Vec::new();
        for item in entries.iter().map_err(Error::storage)? {
            let (_, json) = item.map_err(Error::storage)?;
            out.push(serde_json::from_slice(json.value())?);
        }
        Ok(out)
    }

    /// Applies `change` to a pending entry in one commit, keeping the due index in step.
    /// Delivered entries are left untouched.
    fn update(
        &self,
        decision_id: &str,
        target: &str,
        change: impl FnOnce(&mut OutboxEntry),
    ) -> Result<()> {
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let changed = {
            let mut entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
            let mut due = txn.open_table(DUE).map_err(Error::storage)?;
            let key = (decision_id, target);
            let Some(mut entry) = entries
                .get(key)
                .map_err(Error::storage)?
                .map(|json| serde_json::from_slice::<OutboxEntry>(json.value()))
                .transpose()?
            else {
                return Err(Error::NotFound {
                    decision_id: decision_id.to_owned(),
                    target: target.to_owned(),
                });
            };
            if entry.status == OutboxStatus::Pending {
                due.remove((entry.next_attempt_at, decision_id, target))
                    .map_err(Error::storage)?;
                change(&mut entry);
                if entry.status == OutboxStatus::Pending {
                    due.insert((entry.next_attempt_at, decision_id, target), ())
                        .map_err(Error::storage)?;
                }
                let json = serde_json::to_vec(&entry)?;
                entries
                    .insert(key, json.as_slice())
                    .map_err(Error::storage)?;
                true
            } else {
                false
            }
        };
        if changed {
            txn.commit().map_err(Error::storage)?;
        } else {
            txn.abort().map_err(Error::storage)?;
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::test_receiver::sample_decision;

    fn targets() -> Vec<String> {
        vec!["edge".to_owned(), "idp".to_owned()]
    }

    #[test]
    fn enqueue_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let decisions = [sample_decision("a1", "t1"), sample_decision("a1", "t2")];
        outbox.enqueue(&decisions, &targets()).unwrap();
        assert_eq!(outbox.pending_count().unwrap(), 4);
        let before = outbox.entries().unwrap();

        outbox
            .mark_failed(&decisions[0].id, "edge", "boom", now_ms() + 60_000)
            .unwrap();
        outbox.enqueue(&decisions, &targets()).unwrap();
        let after = outbox.entries().unwrap();
        assert_eq!(after.len(), 4);
        assert_eq!(outbox.pending_count().unwrap(), 4);
        let failed = after
            .iter()
            .find(|e| e.decision.id == decisions[0].id && e.target == "edge")
            .unwrap();
        assert_eq!(failed.attempts, 1, "re-enqueue must not reset an entry");
        assert_eq!(failed.last_error.as_deref(), Some("boom"));
        let untouched: Vec<_> = after.iter().filter(|e| e.attempts == 0).collect();
        assert_eq!(untouched.len(), 3);
        assert!(untouched.iter().all(|e| before.contains(e)));
    }

    #[test]
    fn due_failed_delivered_transitions() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let d = sample_decision("a1", "t1");
        outbox
            .enqueue(std::slice::from_ref(&d), &targets())
            .unwrap();
        let now = now_ms();

        let due = outbox.due(now, 10).unwrap();
        assert_eq!(due.len(), 2);
        assert!(due
            .iter()
            .all(|e| e.status == OutboxStatus::Pending && e.decision == d));
        assert_eq!(outbox.due(now, 1).unwrap().len(), 1, "limit");

        let retry_at = now + 60_000;
        outbox.mark_failed(&d.id, "edge", "503", retry_at).unwrap();
        let due = outbox.due(now, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].target, "idp");
        assert_eq!(
            outbox.due(retry_at, 10).unwrap().len(),
            2,
            "due again later"
        );
        assert_eq!(outbox.next_due_at().unwrap(), Some(due[0].next_attempt_at));

        outbox.mark_delivered(&d.id, "idp").unwrap();
        assert_eq!(outbox.pending_count().unwrap(), 1);
        assert!(outbox.due(now, 10).unwrap().is_empty());
        assert_eq!(outbox.next_due_at().unwrap(), Some(retry_at));

        // A late failure report does not resurrect a delivered entry.
        outbox.mark_failed(&d.id, "idp", "late", now).unwrap();
        assert_eq!(outbox.pending_count().unwrap(), 1);
        let idp = outbox
            .entries()
            .unwrap()
            .into_iter()
            .find(|e| e.target == "idp")
            .unwrap();
        assert_eq!(idp.status, OutboxStatus::Delivered);
        assert_eq!(idp.attempts, 1);
        assert!(idp.delivered_at.is_some());

        let err = outbox.mark_delivered("nope", "edge").unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
    }

    #[test]
    fn pending_entries_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d = sample_decision("a1", "t1");
        let retry_at = now_ms() + 5_000;
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            outbox
                .enqueue(std::slice::from_ref(&d), &targets())
                .unwrap();
            outbox
                .mark_failed(&d.id, "edge", "timeout", retry_at)
                .unwrap();
            outbox.mark_delivered(&d.id, "idp").unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.pending_count().unwrap(), 1);
        let due = outbox.due(retry_at, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].target, "edge");
        assert_eq!(due[0].attempts, 1);
        assert_eq!(due[0].last_error.as_deref(), Some("timeout"));
        assert_eq!(due[0].decision, d);
        assert_eq!(outbox.entries().unwrap().len(), 2);
    }

    #[test]
    fn long_errors_are_truncated_on_char_boundaries() {
        let s = "é".repeat(600);
        let t = truncate(&s, 511);
        assert!(t.len() <= 514 && t.ends_with("..."));
        assert_eq!(truncate("short", 10), "short");
    }
}
