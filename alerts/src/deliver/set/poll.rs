//! The RFC 8936 poll side: a durable queue of SETs per receiver, acknowledged by `jti`.
//!
//! A SET stays queued, and is returned by every poll, until the receiver acknowledges
//! it (`ack`) or reports an error for it (`setErrs`); then it leaves the queue and its
//! outcome is kept (queryable with [`SetPollQueue::state`]). Queued SETs are returned
//! oldest first. This is the storage and the semantics: the queue always answers at
//! once. The HTTP route (`POST /v1/sets/poll`, [`crate::http`]) adds long polling for
//! `returnImmediately: false`, waking on [`SetPollQueue::subscribe`].

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::deliver::now_ms;
use crate::store::embedded::open_database;
use crate::{Error, Result};

/// (receiver, seq) -> jti: the queue order.
const QUEUE: TableDefinition<(&str, u64), &str> = TableDefinition::new("set_queue");
/// (receiver, jti) -> queued SET JSON.
const QUEUED: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("set_queued");
/// (receiver, jti) -> outcome JSON, once acknowledged or reported as an error.
const DONE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("set_done");
/// receiver -> next sequence number.
const NEXT_SEQ: TableDefinition<&str, u64> = TableDefinition::new("set_next_seq");

pub const FILE_NAME: &str = "set-poll.redb";
/// `maxEvents` when the request gives none.
pub const DEFAULT_MAX_EVENTS: usize = 100;

/// An RFC 8936 poll request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollRequest {
    /// At most this many SETs in the answer; 0 only acknowledges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<usize>,
    /// For the HTTP layer (long polling); the queue always answers at once.
    #[serde(default)]
    pub return_immediately: bool,
    /// `jti`s the receiver has processed.
    #[serde(default)]
    pub ack: Vec<String>,
    /// `jti`s the receiver could not process, with why.
    #[serde(default)]
    pub set_errs: BTreeMap<String, SetErr>,
}

/// An RFC 8936 / 8935 error for one SET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetErr {
    pub err: String,
    #[serde(default)]
    pub description: String,
}

/// An RFC 8936 poll answer: `{"sets": {jti: set}, "moreAvailable": bool}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResponse {
    pub sets: BTreeMap<String, String>,
    /// Omitted when false, as in the RFC's examples.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more_available: bool,
}

/// Where one SET stands for its receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PolledSetState {
    Queued {
        queued_at: i64,
    },
    Acknowledged {
        queued_at: i64,
        at: i64,
    },
    Failed {
        queued_at: i64,
        at: i64,
        err: SetErr,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Queued {
    seq: u64,
    set: String,
    queued_at: i64,
}

/// The poll queues of all receivers (`<dir>/set-poll.redb`).
#[derive(Debug)]
pub struct SetPollQueue {
    db: Database,
    /// Bumped whenever a SET is queued, for long polls.
    queued: tokio::sync::watch::Sender<u64>,
}

impl SetPollQueue {
    /// Opens (or creates) `dir/set-poll.redb`, creating `dir` if missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = open_database(dir, FILE_NAME)?;
        let txn = db.begin_write().map_err(Error::storage)?;
        {
            txn.open_table(QUEUE).map_err(Error::storage)?;
            txn.open_table(QUEUED).map_err(Error::storage)?;
            txn.open_table(DONE).map_err(Error::storage)?;
            txn.open_table(NEXT_SEQ).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        Ok(SetPollQueue {
            db,
            queued: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A receiver that sees a change each time a SET is queued (for any receiver):
    /// subscribe, poll, and wait on it when the poll found nothing.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.queued.subscribe()
    }

    /// Queues a SET for `receiver`. Idempotent on `jti`: a SET already queued or
    /// already acknowledged is not queued again (returns `false`).
    pub fn push(&self, receiver: &str, jti: &str, set: &str) -> Result<bool> {
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let added = {
            let mut queue = txn.open_table(QUEUE).map_err(Error::storage)?;
            let mut queued = txn.open_table(QUEUED).map_err(Error::storage)?;
            let done = txn.open_table(DONE).map_err(Error::storage)?;
            let mut next_seq = txn.open_table(NEXT_SEQ).map_err(Error::storage)?;
            let key = (receiver, jti);
            if queued.get(key).map_err(Error::storage)?.is_some()
                || done.get(key).map_err(Error::storage)?.is_some()
            {
                false
            } else {
                let seq = next_seq
                    .get(receiver)
                    .map_err(Error::storage)?
                    .map_or(0, |v| v.value());
                next_seq
                    .insert(receiver, seq.saturating_add(1))
                    .map_err(Error::storage)?;
                let record = serde_json::to_vec(&Queued {
                    seq,
                    set: set.to_owned(),
                    queued_at: now_ms(),
                })?;
                queued
                    .insert(key, record.as_slice())
                    .map_err(Error::storage)?;
                queue.insert((receiver, seq), jti).map_err(Error::storage)?;
                true
            }
        };
        txn.commit().map_err(Error::storage)?;
        if added {
            self.queued.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(added)
    }

    /// Acknowledges `ack`, then returns up to `max_events` queued SETs, oldest first.
    pub fn poll(&self, receiver: &str, max_events: usize, ack: &[&str]) -> Result<PollResponse> {
        let request = PollRequest {
            max_events: Some(max_events),
            ack: ack.iter().map(|s| (*s).to_owned()).collect(),
            ..PollRequest::default()
        };
        self.poll_request(receiver, &request)
    }

    /// Applies a full RFC 8936 request in one durable commit: acknowledgements and
    /// error reports first (unknown `jti`s are ignored), then up to `maxEvents`
    /// (default 100) queued SETs; `moreAvailable` when more remain.
    pub fn poll_request(&self, receiver: &str, request: &PollRequest) -> Result<PollResponse> {
        let now = now_ms();
        let max = request.max_events.unwrap_or(DEFAULT_MAX_EVENTS);
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let response = {
            let mut queue = txn.open_table(QUEUE).map_err(Error::storage)?;
            let mut queued = txn.open_table(QUEUED).map_err(Error::storage)?;
            let mut done = txn.open_table(DONE).map_err(Error::storage)?;
            let outcomes = request
                .ack
                .iter()
                .map(|jti| (jti.as_str(), None))
                .chain(request.set_errs.iter().map(|(j, e)| (j.as_str(), Some(e))));
            let (mut acked, mut failed) = (0usize, 0usize);
            for (jti, err) in outcomes {
                let Some(record) = queued
                    .remove((receiver, jti))
                    .map_err(Error::storage)?
                    .map(|v| serde_json::from_slice::<Queued>(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                queue
                    .remove((receiver, record.seq))
                    .map_err(Error::storage)?;
                let state = match err {
                    None => {
                        acked += 1;
                        PolledSetState::Acknowledged {
                            queued_at: record.queued_at,
                            at: now,
                        }
                    }
                    Some(e) => {
                        failed += 1;
                        tracing::warn!(receiver, jti, err = %e.err, "set receiver reported an error");
                        PolledSetState::Failed {
                            queued_at: record.queued_at,
                            at: now,
                            err: e.clone(),
                        }
                    }
                };
                let json = serde_json::to_vec(&state)?;
                done.insert((receiver, jti), json.as_slice())
                    .map_err(Error::storage)?;
            }
            let mut response = PollResponse::default();
            for item in queue
                .range((receiver, 0)..=(receiver, u64::MAX))
                .map_err(Error::storage)?
            {
                let (_, jti) = item.map_err(Error::storage)?;
                let jti = jti.value().to_owned();
                if response.sets.len() >= max {
                    response.more_available = true;
                    break;
                }
                if let Some(v) = queued
                    .get((receiver, jti.as_str()))
                    .map_err(Error::storage)?
                {
                    let record: Queued = serde_json::from_slice(v.value())?;
                    response.sets.insert(jti, record.set);
                }
            }
            if acked + failed > 0 {
                tracing::debug!(
                    receiver,
                    acked,
                    failed,
                    returned = response.sets.len(),
                    "set poll"
                );
            }
            response
        };
        txn.commit().map_err(Error::storage)?;
        Ok(response)
    }

    /// Where a SET stands, if the queue has seen it.
    pub fn state(&self, receiver: &str, jti: &str) -> Result<Option<PolledSetState>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let done = txn.open_table(DONE).map_err(Error::storage)?;
        if let Some(v) = done.get((receiver, jti)).map_err(Error::storage)? {
            return Ok(Some(serde_json::from_slice(v.value())?));
        }
        let queued = txn.open_table(QUEUED).map_err(Error::storage)?;
        let state = queued
            .get((receiver, jti))
            .map_err(Error::storage)?
            .map(|v| serde_json::from_slice::<Queued>(v.value()))
            .transpose()?
            .map(|q| PolledSetState::Queued {
                queued_at: q.queued_at,
            });
        Ok(state)
    }

    /// SETs waiting for `receiver`.
    pub fn pending_count(&self, receiver: &str) -> Result<u64> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let queue = txn.open_table(QUEUE).map_err(Error::storage)?;
        let mut n = 0u64;
        for item in queue
            .range((receiver, 0)..=(receiver, u64::MAX))
            .map_err(Error::storage)?
        {
            item.map_err(Error::storage)?;
            n += 1;
        }
        Ok(n)
    }
}
