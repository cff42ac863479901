//! Durable outbox: decisions waiting to reach their targets, and what became of them.
//!
//! A decision is enqueued once per target before anything is sent, in one durable
//! commit, so a crash between detection and delivery loses nothing. Entries are keyed
//! by (decision id, target), which makes enqueueing idempotent, and are never deleted:
//! after the last attempt they stay as the record of what happened
//! ([`Outbox::status`]): delivered (when, HTTP status), failed (rejected by the
//! receiver), skipped (nothing to send, and why) or dead (undeliverable past the
//! target's `dead_after_secs`; [`Outbox::requeue`] gives it another go).
//!
//! Raw tokens that travel with a decision ([`DecisionContext::token`]) are kept in a
//! table of their own, one copy per decision, and removed as soon as no entry of that
//! decision is pending any more.
//!
//! The methods block on disk I/O; async callers run them on the blocking pool (the
//! worker does).

use std::path::Path;

use chrono::{DateTime, Utc};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::deliver::{now_ms, truncate};
use crate::model::{Decision, DecisionContext, TokenValue};
use crate::store::embedded::open_database;
use crate::{Error, Result};

/// (decision id, target) -> entry JSON.
const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
/// Pending entries by due time: (next_attempt_at ms, decision id, target) -> ().
const DUE: TableDefinition<(i64, &str, &str), ()> = TableDefinition::new("due");
/// Decision id -> raw token, while some entry of the decision is pending.
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");

pub const FILE_NAME: &str = "outbox.redb";
/// Longest error text kept per entry; receivers can answer with large bodies.
const MAX_ERROR_LEN: usize = 512;

/// Where an entry stands. Only `Pending` entries are ever sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Not delivered yet: never tried, or retrying.
    Pending,
    Delivered,
    /// The receiver refused it for good (e.g. an RFC 8935 400).
    Failed,
    /// The target had nothing to send for it (e.g. revocation without the token).
    Skipped,
    /// Still undelivered when the target's `dead_after_secs` ran out.
    Dead,
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
    /// The last failure, or why the entry was skipped.
    pub last_error: Option<String>,
    pub enqueued_at: i64,
    pub delivered_at: Option<i64>,
    /// HTTP status of the last answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_http_status: Option<u16>,
    /// When the entry reached its final state (delivered, failed, skipped, dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// When an operator last requeued it; the dead-after age counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_at: Option<i64>,
    /// What travels with the decision. The raw token is not stored here (see the
    /// module docs); [`Outbox::due`] puts it back while the entry is pending.
    #[serde(default, skip_serializing_if = "DecisionContext::is_empty")]
    pub context: DecisionContext,
}

impl OutboxEntry {
    /// The time the dead-after age counts from.
    pub fn age_origin(&self) -> i64 {
        self.requeued_at.unwrap_or(self.enqueued_at)
    }
}

/// The delivery status of one decision at one target, for people and APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub decision_id: String,
    pub target: String,
    pub enqueued_at: DateTime<Utc>,
    #[serde(flatten)]
    pub state: DeliveryState,
}

/// The state part of [`TargetStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not tried yet.
    Pending { next_attempt_at: DateTime<Utc> },
    /// Tried and failed; will be tried again.
    Retrying {
        attempts: u32,
        last_error: String,
        last_http_status: Option<u16>,
        next_attempt_at: DateTime<Utc>,
    },
    Delivered {
        at: DateTime<Utc>,
        http_status: Option<u16>,
        attempts: u32,
    },
    /// Rejected by the receiver for good; not retried.
    Failed {
        at: DateTime<Utc>,
        http_status: Option<u16>,
        error: String,
        attempts: u32,
    },
    /// Nothing to send for this target; not retried.
    Skipped { at: DateTime<Utc>, reason: String },
    /// Given up after the target's dead-after age; kept, and can be requeued.
    Dead {
        at: DateTime<Utc>,
        attempts: u32,
        last_error: Option<String>,
        last_http_status: Option<u16>,
    },
}

/// The kinds of [`DeliveryState`], to list entries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Pending,
    Retrying,
    Delivered,
    Failed,
    Skipped,
    Dead,
}

/// How many entries are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub pending: u64,
    pub retrying: u64,
    pub delivered: u64,
    pub failed: u64,
    pub skipped: u64,
    pub dead: u64,
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl From<&OutboxEntry> for TargetStatus {
    fn from(e: &OutboxEntry) -> Self {
        let finished = utc(e
            .finished_at
            .or(e.delivered_at)
            .unwrap_or(e.next_attempt_at));
        let state = match e.status {
            OutboxStatus::Pending if e.attempts == 0 => DeliveryState::Pending {
                next_attempt_at: utc(e.next_attempt_at),
            },
            OutboxStatus::Pending => DeliveryState::Retrying {
                attempts: e.attempts,
                last_error: e.last_error.clone().unwrap_or_default(),
                last_http_status: e.last_http_status,
                next_attempt_at: utc(e.next_attempt_at),
            },
            OutboxStatus::Delivered => DeliveryState::Delivered {
                at: finished,
                http_status: e.last_http_status,
                attempts: e.attempts,
            },
            OutboxStatus::Failed => DeliveryState::Failed {
                at: finished,
                http_status: e.last_http_status,
                error: e.last_error.clone().unwrap_or_default(),
                attempts: e.attempts,
            },
            OutboxStatus::Skipped => DeliveryState::Skipped {
                at: finished,
                reason: e.last_error.clone().unwrap_or_default(),
            },
            OutboxStatus::Dead => DeliveryState::Dead {
                at: finished,
                attempts: e.attempts,
                last_error: e.last_error.clone(),
                last_http_status: e.last_http_status,
            },
        };
        TargetStatus {
            decision_id: e.decision.id.clone(),
            target: e.target.clone(),
            enqueued_at: utc(e.enqueued_at),
            state,
        }
    }
}

impl DeliveryState {
    pub fn kind(&self) -> StateKind {
        match self {
            DeliveryState::Pending { .. } => StateKind::Pending,
            DeliveryState::Retrying { .. } => StateKind::Retrying,
            DeliveryState::Delivered { .. } => StateKind::Delivered,
            DeliveryState::Failed { .. } => StateKind::Failed,
            DeliveryState::Skipped { .. } => StateKind::Skipped,
            DeliveryState::Dead { .. } => StateKind::Dead,
        }
    }
}

/// What an attempt (or a decision not to attempt) did to an entry.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    Delivered {
        http_status: Option<u16>,
    },
    /// A failed attempt; try again at `next_at`.
    Retry {
        error: String,
        http_status: Option<u16>,
        next_at: i64,
    },
    /// A failed attempt the receiver says is final.
    Failed {
        error: String,
        http_status: Option<u16>,
    },
    Skipped {
        reason: String,
    },
    /// Past its age; `attempted` when this follows a failed attempt.
    Dead {
        error: Option<String>,
        http_status: Option<u16>,
        attempted: bool,
    },
    /// Not sent now (circuit open): due again at `until`, no attempt counted.
    Defer {
        until: i64,
    },
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
            txn.open_table(TOKENS).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        Ok(Outbox { db })
    }

    /// Adds one pending entry per (decision, target), due now. Existing entries are
    /// left as they are (whatever their status), so re-enqueueing is harmless.
    pub fn enqueue(&self, decisions: &[Decision], targets: &[String]) -> Result<()> {
        let items: Vec<(Decision, DecisionContext)> = decisions
            .iter()
            .map(|d| (d.clone(), DecisionContext::default()))
            .collect();
        self.enqueue_with_context(&items, targets)
    }

    /// [`Self::enqueue`] for decisions with context (a subject for SETs, the raw token
    /// for revocation). The token is stored once per decision, apart from the entries,
    /// and only if some entry for it was added.
    pub fn enqueue_with_context(
        &self,
        items: &[(Decision, DecisionContext)],
        targets: &[String],
    ) -> Result<()> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let mut added = 0usize;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
            let mut due = txn.open_table(DUE).map_err(Error::storage)?;
            let mut tokens = txn.open_table(TOKENS).map_err(Error::storage)?;
            for (d, context) in items {
                let mut added_here = false;
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
                        last_http_status: None,
                        finished_at: None,
                        requeued_at: None,
                        context: DecisionContext {
                            token: None,
                            ..context.clone()
                        },
                    };
                    let json = serde_json::to_vec(&entry)?;
                    entries
                        .insert(key, json.as_slice())
                        .map_err(Error::storage)?;
                    due.insert((now, key.0, key.1), ())
                        .map_err(Error::storage)?;
                    added += 1;
                    added_here = true;
                }
                if let (true, Some(token)) = (added_here, &context.token) {
                    tokens
                        .insert(d.id.as_str(), token.expose())
                        .map_err(Error::storage)?;
                }
            }
        }
        txn.commit().map_err(Error::storage)?;
        tracing::debug!(added, "enqueued outbox entries");
        Ok(())
    }

    /// Pending entries due at `now_ms`, earliest first, at most `limit`, each with
    /// its raw token (if the decision carried one).
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
        let due = txn.open_table(DUE).map_err(Error::storage)?;
        let tokens = txn.open_table(TOKENS).map_err(Error::storage)?;
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
                let mut entry: OutboxEntry = serde_json::from_slice(json.value())?;
                entry.context.token = tokens
                    .get(id)
                    .map_err(Error::storage)?
                    .map(|t| TokenValue::new(t.value()));
                out.push(entry);
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
        self.record(
            decision_id,
            target,
            Update::Delivered { http_status: None },
            now_ms(),
        )
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
        self.record(
            decision_id,
            target,
            Update::Retry {
                error: error.to_owned(),
                http_status: None,
                next_at: next_attempt_ms,
            },
            now_ms(),
        )
    }

    /// Number of entries not yet in a final state.
    pub fn pending_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let due = txn.open_table(DUE).map_err(Error::storage)?;
        due.len().map_err(Error::storage)
    }

    /// All entries, in every state, ordered by (decision id, target).
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

    /// The delivery status of one decision at each of its targets, by target name.
    /// Empty if the decision was never enqueued.
    pub fn status(&self, decision_id: &str) -> Result<Vec<TargetStatus>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
        let mut out = Vec::new();
        for item in entries.range((decision_id, "")..).map_err(Error::storage)? {
            let (key, json) = item.map_err(Error::storage)?;
            if key.value().0 != decision_id {
                break;
            }
            let entry: OutboxEntry = serde_json::from_slice(json.value())?;
            out.push(TargetStatus::from(&entry));
        }
        Ok(out)
    }

    /// Entries in one state, ordered by (decision id, target), at most `limit`. Scans
    /// the whole outbox: for operators, not for hot paths.
    pub fn list(&self, kind: StateKind, limit: usize) -> Result<Vec<TargetStatus>> {
        let mut out = Vec::new();
        self.scan(|status| {
            if status.state.kind() == kind && out.len() < limit {
                out.push(status);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// How many entries are in each state (a full scan).
    pub fn counts(&self) -> Result<StatusCounts> {
        let mut c = StatusCounts::default();
        self.scan(|status| {
            let n = match status.state.kind() {
                StateKind::Pending => &mut c.pending,
                StateKind::Retrying => &mut c.retrying,
                StateKind::Delivered => &mut c.delivered,
                StateKind::Failed => &mut c.failed,
                StateKind::Skipped => &mut c.skipped,
                StateKind::Dead => &mut c.dead,
            };
            *n += 1;
            true
        })?;
        Ok(c)
    }

    /// Puts a dead, failed or skipped entry back in the queue, due now, with a fresh
    /// dead-after age. `Ok(false)` if it is pending or delivered already. A token the
    /// decision carried is gone by then, so a revocation will be skipped again.
    pub fn requeue(&self, decision_id: &str, target: &str) -> Result<bool> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let requeued = {
            let mut entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
            let mut due = txn.open_table(DUE).map_err(Error::storage)?;
            let mut entry = read_entry(&entries, decision_id, target)?;
            if matches!(
                entry.status,
                OutboxStatus::Pending | OutboxStatus::Delivered
            ) {
                false
            } else {
                entry.status = OutboxStatus::Pending;
                entry.next_attempt_at = now;
                entry.requeued_at = Some(now);
                entry.finished_at = None;
                let json = serde_json::to_vec(&entry)?;
                entries
                    .insert((decision_id, target), json.as_slice())
                    .map_err(Error::storage)?;
                due.insert((now, decision_id, target), ())
                    .map_err(Error::storage)?;
                true
            }
        };
        txn.commit().map_err(Error::storage)?;
        if requeued {
            tracing::info!(decision_id, target_name = target, "outbox entry requeued");
        }
        Ok(requeued)
    }

    fn scan(&self, mut visit: impl FnMut(TargetStatus) -> bool) -> Result<()> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
        for item in entries.iter().map_err(Error::storage)? {
            let (_, json) = item.map_err(Error::storage)?;
            let entry: OutboxEntry = serde_json::from_slice(json.value())?;
            if !visit(TargetStatus::from(&entry)) {
                break;
            }
        }
        Ok(())
    }

    /// Applies `update` to a pending entry in one commit, keeping the due index in
    /// step and dropping the decision's raw token once nothing pending needs it.
    /// Entries in a final state are left untouched (a late report must not resurrect
    /// them).
    pub(crate) fn record(
        &self,
        decision_id: &str,
        target: &str,
        update: Update,
        now: i64,
    ) -> Result<()> {
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let changed = {
            let mut entries = txn.open_table(ENTRIES).map_err(Error::storage)?;
            let mut due = txn.open_table(DUE).map_err(Error::storage)?;
            let mut entry = read_entry(&entries, decision_id, target)?;
            if entry.status == OutboxStatus::Pending {
                due.remove((entry.next_attempt_at, decision_id, target))
                    .map_err(Error::storage)?;
                apply(&mut entry, update, now);
                if entry.status == OutboxStatus::Pending {
                    due.insert((entry.next_attempt_at, decision_id, target), ())
                        .map_err(Error::storage)?;
                }
                let json = serde_json::to_vec(&entry)?;
                entries
                    .insert((decision_id, target), json.as_slice())
                    .map_err(Error::storage)?;
                if entry.status != OutboxStatus::Pending && !any_pending(&entries, decision_id)? {
                    let mut tokens = txn.open_table(TOKENS).map_err(Error::storage)?;
                    tokens.remove(decision_id).map_err(Error::storage)?;
                }
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

    /// Whether the outbox holds a raw token for this decision (tests and audits).
    pub fn holds_token(&self, decision_id: &str) -> Result<bool> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let tokens = txn.open_table(TOKENS).map_err(Error::storage)?;
        Ok(tokens.get(decision_id).map_err(Error::storage)?.is_some())
    }
}

fn read_entry(
    entries: &Table<'_, (&'static str, &'static str), &'static [u8]>,
    decision_id: &str,
    target: &str,
) -> Result<OutboxEntry> {
    entries
        .get((decision_id, target))
        .map_err(Error::storage)?
        .map(|json| serde_json::from_slice::<OutboxEntry>(json.value()))
        .transpose()?
        .ok_or_else(|| Error::NotFound {
            decision_id: decision_id.to_owned(),
            target: target.to_owned(),
        })
}

fn any_pending(
    entries: &Table<'_, (&'static str, &'static str), &'static [u8]>,
    decision_id: &str,
) -> Result<bool> {
    for item in entries.range((decision_id, "")..).map_err(Error::storage)? {
        let (key, json) = item.map_err(Error::storage)?;
        if key.value().0 != decision_id {
            break;
        }
        let entry: OutboxEntry = serde_json::from_slice(json.value())?;
        if entry.status == OutboxStatus::Pending {
            return Ok(true);
        }
    }
    Ok(false)
}

fn apply(entry: &mut OutboxEntry, update: Update, now: i64) {
    let attempt = |entry: &mut OutboxEntry| entry.attempts = entry.attempts.saturating_add(1);
    let error = |s: String| Some(truncate(&s, MAX_ERROR_LEN));
    match update {
        Update::Delivered { http_status } => {
            attempt(entry);
            entry.status = OutboxStatus::Delivered;
            entry.delivered_at = Some(now);
            entry.finished_at = Some(now);
            entry.last_http_status = http_status;
            entry.last_error = None;
        }
        Update::Retry {
            error: e,
            http_status,
            next_at,
        } => {
            attempt(entry);
            entry.next_attempt_at = next_at;
            entry.last_error = error(e);
            entry.last_http_status = http_status;
        }
        Update::Failed {
            error: e,
            http_status,
        } => {
            attempt(entry);
            entry.status = OutboxStatus::Failed;
            entry.finished_at = Some(now);
            entry.last_error = error(e);
            entry.last_http_status = http_status;
        }
        Update::Skipped { reason } => {
            entry.status = OutboxStatus::Skipped;
            entry.finished_at = Some(now);
            entry.last_error = error(reason);
        }
        Update::Dead {
            error: e,
            http_status,
            attempted,
        } => {
            if attempted {
                attempt(entry);
                entry.last_http_status = http_status;
            }
            match e {
                Some(e) => entry.last_error = error(e),
                // Keep the last failure if there was one: it says why.
                None if entry.last_error.is_none() => {
                    entry.last_error = Some("expired before delivery".to_owned());
                }
                None => {}
            }
            entry.status = OutboxStatus::Dead;
            entry.finished_at = Some(now);
        }
        Update::Defer { until } => {
            entry.next_attempt_at = until;
        }
    }
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
