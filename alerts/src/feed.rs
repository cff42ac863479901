//! The decision feed gateways pull: decisions added and expired since a cursor.
//!
//! Gateways that cannot receive webhooks pull instead (CrowdSec's bouncer model):
//! `GET /v1/decisions/stream?cursor=...` answers the decisions added since the cursor
//! that are still in force, the decisions that expired (or were withdrawn) since the
//! cursor, and the next cursor. The first pull, without a cursor, returns every
//! decision in force. Cursors are opaque and only move forward.
//!
//! The feed is a redb file (`<data_dir>/decision-feed.redb`): each appended decision gets
//! the next sequence number (appends are idempotent by decision id), and so does each
//! withdrawal; an index by expiry time (`created_at + ttl_secs`) gives the expirations.
//! Time is an argument, so tests need no clock.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::model::{Action, Decision, Scope};
use crate::store::embedded::open_database;
use crate::{Error, Result};

/// seq -> record JSON (an added decision, or a withdrawal).
const BY_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("feed_by_seq");
/// decision id -> seq.
const BY_ID: TableDefinition<&str, u64> = TableDefinition::new("feed_by_id");
/// (expires unix ms, seq) -> ().
const BY_EXPIRY: TableDefinition<(i64, u64), ()> = TableDefinition::new("feed_by_expiry");
/// (alert id, seq) -> (), for withdrawing an alert's decisions.
const BY_ALERT: TableDefinition<(&str, u64), ()> = TableDefinition::new("feed_by_alert");
/// "next" -> next sequence number.
const META: TableDefinition<&str, u64> = TableDefinition::new("feed_meta");

pub const FILE_NAME: &str = "decision-feed.redb";
const CURSOR_VERSION: u8 = 1;

/// One step of the feed's sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Added(Entry),
    /// The decision added at sequence number `of` was withdrawn.
    Withdrawn {
        of: u64,
    },
}

fn read_record(
    by_seq: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<Option<Record>> {
    by_seq
        .get(seq)
        .map_err(Error::storage)?
        .map(|json| serde_json::from_slice(json.value()).map_err(Error::from))
        .transpose()
}

fn write_record(
    by_seq: &mut redb::Table<u64, &'static [u8]>,
    seq: u64,
    record: &Record,
) -> Result<()> {
    let json = serde_json::to_vec(record)?;
    by_seq
        .insert(seq, json.as_slice())
        .map_err(Error::storage)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    decision: Decision,
    expires_ms: i64,
    #[serde(default)]
    withdrawn: bool,
}

/// Where a puller is: the last sequence number it was given, and how far it has seen
/// expirations (expiry time and sequence number of the last one). Serialized as an
/// opaque string ([`FeedCursor::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCursor {
    pub added_seq: u64,
    pub expired_ms: i64,
    pub expired_seq: u64,
}

impl FeedCursor {
    /// Base64url of a version byte and the three positions.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(25);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&self.added_seq.to_be_bytes());
        bytes.extend_from_slice(&self.expired_ms.to_be_bytes());
        bytes.extend_from_slice(&self.expired_seq.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(s: &str) -> Result<FeedCursor> {
        let bad = || Error::InvalidQuery(format!("cursor {s:?} is not one this server issued"));
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let [CURSOR_VERSION, rest @ ..] = bytes.as_slice() else {
            return Err(bad());
        };
        if rest.len() != 24 {
            return Err(bad());
        }
        let word = |i: usize| -> [u8; 8] {
            let mut w = [0u8; 8];
            w.copy_from_slice(&rest[i * 8..i * 8 + 8]);
            w
        };
        Ok(FeedCursor {
            added_seq: u64::from_be_bytes(word(0)),
            expired_ms: i64::from_be_bytes(word(1)),
            expired_seq: u64::from_be_bytes(word(2)),
        })
    }
}

/// A decision in force, as a gateway needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedDecision {
    #[serde(flatten)]
    pub decision: Decision,
    pub expires_at: DateTime<Utc>,
    /// For token decisions: the token's `jti` and, when known, `aud` (Outrider keys
    /// tokens by `jti` + `aud`, never by the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// A decision no longer in force: what to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredDecision {
    pub id: String,
    pub action: Action,
    pub scope: Scope,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub expired_at: DateTime<Utc>,
    /// Withdrawn before its TTL ran out (its alert was marked a false positive).
    pub withdrawn: bool,
}

/// One pull's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    pub added: Vec<FeedDecision>,
    /// May name decisions this puller never saw (added and expired between two pulls
    /// are left out of both lists, but not always): ignore unknown ids.
    pub expired: Vec<ExpiredDecision>,
    /// Pass it to the next pull.
    pub cursor: String,
    /// More is waiting: pull again at once.
    pub more: bool,
}

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRequest {
    /// `None`: the first pull (every decision in force, no expirations).
    pub cursor: Option<FeedCursor>,
    /// At most this many added and this many expired decisions.
    pub limit: usize,
    /// Include shadow-mode decisions (left out by default: nothing enforces them).
    pub include_simulated: bool,
}

/// A token id `jti:<id>@<aud>` or `jti:<id>` as (`jti`, `aud`); `None` for other
/// values (keyed hashes of opaque tokens).
pub fn split_token_id(value: &str) -> Option<(String, Option<String>)> {
    let rest = value.strip_prefix("jti:")?;
    Some(match rest.rsplit_once('@') {
        Some((jti, aud)) => (jti.to_owned(), Some(aud.to_owned())),
        None => (rest.to_owned(), None),
    })
}

fn token_parts(d: &Decision) -> (Option<String>, Option<String>) {
    if d.scope != Scope::Token {
        return (None, None);
    }
    match split_token_id(&d.value) {
        Some((jti, aud)) => (Some(jti), aud),
        None => (None, None),
    }
}

fn expiry_ms(d: &Decision) -> i64 {
    let ttl_ms = i64::try_from(d.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    d.created_at.timestamp_millis().saturating_add(ttl_ms)
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The decision feed (see the module docs).
#[derive(Debug)]
pub struct DecisionFeed {
    db: Database,
}

impl DecisionFeed {
    /// Opens (or creates) `dir/decision-feed.redb`, creating `dir` if missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = open_database(dir, FILE_NAME)?;
        let txn = db.begin_write().map_err(Error::storage)?;
        {
            txn.open_table(BY_SEQ).map_err(Error::storage)?;
            txn.open_table(BY_ID).map_err(Error::storage)?;
            txn.open_table(BY_EXPIRY).map_err(Error::storage)?;
            txn.open_table(BY_ALERT).map_err(Error::storage)?;
            txn.open_table(META).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        Ok(DecisionFeed { db })
    }

    /// Appends decisions in one durable commit; ones already in the feed (same id) are
    /// left as they are. Returns how many were new.
    pub fn append(&self, decisions: &[Decision]) -> Result<usize> {
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let mut added = 0;
        {
            let mut by_seq = txn.open_table(BY_SEQ).map_err(Error::storage)?;
            let mut by_id = txn.open_table(BY_ID).map_err(Error::storage)?;
            let mut by_expiry = txn.open_table(BY_EXPIRY).map_err(Error::storage)?;
            let mut by_alert = txn.open_table(BY_ALERT).map_err(Error::storage)?;
            let mut meta = txn.open_table(META).map_err(Error::storage)?;
            let mut next = meta
                .get("next")
                .map_err(Error::storage)?
                .map_or(1, |v| v.value());
            for d in decisions {
                if by_id.get(d.id.as_str()).map_err(Error::storage)?.is_some() {
                    continue;
                }
                let seq = next;
                next += 1;
                let entry = Entry {
                    decision: d.clone(),
                    expires_ms: expiry_ms(d),
                    withdrawn: false,
                };
                let expires_ms = entry.expires_ms;
                write_record(&mut by_seq, seq, &Record::Added(entry))?;
                by_id.insert(d.id.as_str(), seq).map_err(Error::storage)?;
                by_expiry
                    .insert((expires_ms, seq), ())
                    .map_err(Error::storage)?;
                by_alert
                    .insert((d.alert_id.as_str(), seq), ())
                    .map_err(Error::storage)?;
                added += 1;
            }
            meta.insert("next", next).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        Ok(added)
    }

    /// Ends the decisions of `alert_id` that are still in force at `now` (an analyst
    /// found the alert a false positive): pullers see them expire. Returns how many.
    ///
    /// A withdrawal is a record of its own in the sequence, so a puller sees it on its
    /// next pull whatever the clocks say (time-based expiry could miss one made in the
    /// same millisecond as a pull).
    pub fn withdraw_alert(&self, alert_id: &str, now: DateTime<Utc>) -> Result<usize> {
        let now_ms = now.timestamp_millis();
        let txn = self.db.begin_write().map_err(Error::storage)?;
        let mut withdrawn = 0;
        {
            let mut by_seq = txn.open_table(BY_SEQ).map_err(Error::storage)?;
            let mut by_expiry = txn.open_table(BY_EXPIRY).map_err(Error::storage)?;
            let by_alert = txn.open_table(BY_ALERT).map_err(Error::storage)?;
            let mut meta = txn.open_table(META).map_err(Error::storage)?;
            let mut next = meta
                .get("next")
                .map_err(Error::storage)?
                .map_or(1, |v| v.value());
            let mut seqs = Vec::new();
            for item in by_alert
                .range((alert_id, 0)..=(alert_id, u64::MAX))
                .map_err(Error::storage)?
            {
                let (key, _) = item.map_err(Error::storage)?;
                seqs.push(key.value().1);
            }
            for seq in seqs {
                let Some(Record::Added(mut entry)) = read_record(&by_seq, seq)? else {
                    continue;
                };
                if entry.withdrawn || entry.expires_ms <= now_ms {
                    continue;
                }
                by_expiry
                    .remove((entry.expires_ms, seq))
                    .map_err(Error::storage)?;
                entry.expires_ms = now_ms;
                entry.withdrawn = true;
                write_record(&mut by_seq, seq, &Record::Added(entry))?;
                write_record(&mut by_seq, next, &Record::Withdrawn { of: seq })?;
                next += 1;
                withdrawn += 1;
            }
            meta.insert("next", next).map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        Ok(withdrawn)
    }

    /// One pull at time `now` (see the module docs for what the lists hold).
    pub fn pull(&self, req: &FeedRequest, now: DateTime<Utc>) -> Result<FeedPage> {
        let now_ms = now.timestamp_millis();
        let start = req.cursor.unwrap_or(FeedCursor {
            added_seq: 0,
            expired_ms: now_ms,
            expired_seq: u64::MAX,
        });
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let by_seq = txn.open_table(BY_SEQ).map_err(Error::storage)?;
        let by_expiry = txn.open_table(BY_EXPIRY).map_err(Error::storage)?;
        let mut cursor = start;
        let mut more = false;
        let wanted = |d: &Decision| req.include_simulated || !d.simulated;

        // The sequence: additions, and withdrawals of what this puller was given.
        let mut added = Vec::new();
        let mut expired = Vec::new();
        for item in by_seq
            .range(start.added_seq.saturating_add(1)..)
            .map_err(Error::storage)?
        {
            if added.len() + expired.len() >= req.limit {
                more = true;
                break;
            }
            let (seq, json) = item.map_err(Error::storage)?;
            cursor.added_seq = seq.value();
            match serde_json::from_slice::<Record>(json.value())? {
                Record::Added(entry) => {
                    let in_force = !entry.withdrawn && entry.expires_ms > now_ms;
                    if in_force && wanted(&entry.decision) {
                        added.push(feed_decision(entry));
                    }
                }
                Record::Withdrawn { of } if of <= start.added_seq => {
                    if let Some(Record::Added(entry)) = read_record(&by_seq, of)? {
                        if wanted(&entry.decision) {
                            expired.push(expired_decision(entry));
                        }
                    }
                }
                Record::Withdrawn { .. } => {} // never handed out
            }
        }

        // Expiry by TTL, in time order, of what this puller was given.
        let mut natural = 0;
        if (start.expired_ms, start.expired_seq) < (now_ms, u64::MAX) {
            let from = (start.expired_ms, start.expired_seq);
            for item in by_expiry
                .range(from..=(now_ms, u64::MAX))
                .map_err(Error::storage)?
            {
                let (key, _) = item.map_err(Error::storage)?;
                let (ms, seq) = key.value();
                if (ms, seq) == from {
                    continue; // the cursor's own position was handed out already
                }
                if natural >= req.limit {
                    more = true;
                    break;
                }
                cursor.expired_ms = ms;
                cursor.expired_seq = seq;
                if seq > start.added_seq {
                    continue; // never handed out: nothing to remove
                }
                let Some(Record::Added(entry)) = read_record(&by_seq, seq)? else {
                    continue;
                };
                if wanted(&entry.decision) {
                    expired.push(expired_decision(entry));
                    natural += 1;
                }
            }
            if natural < req.limit {
                cursor.expired_ms = now_ms;
                cursor.expired_seq = u64::MAX;
            }
        }
        // A cursor never moves back, whatever the clock did.
        if (cursor.expired_ms, cursor.expired_seq) < (start.expired_ms, start.expired_seq) {
            cursor.expired_ms = start.expired_ms;
            cursor.expired_seq = start.expired_seq;
        }
        Ok(FeedPage {
            added,
            expired,
            cursor: cursor.encode(),
            more,
        })
    }

    /// Decisions in the feed, in force or not.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read().map_err(Error::storage)?;
        let by_id = txn.open_table(BY_ID).map_err(Error::storage)?;
        by_id.len().map_err(Error::storage)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

fn feed_decision(entry: Entry) -> FeedDecision {
    let (jti, aud) = token_parts(&entry.decision);
    FeedDecision {
        expires_at: ms_to_utc(entry.expires_ms),
        decision: entry.decision,
        jti,
        aud,
    }
}

fn expired_decision(entry: Entry) -> ExpiredDecision {
    let (jti, aud) = token_parts(&entry.decision);
    let d = entry.decision;
    ExpiredDecision {
        id: d.id,
        action: d.action,
        scope: d.scope,
        value: d.value,
        jti,
        aud,
        expired_at: ms_to_utc(entry.expires_ms),
        withdrawn: entry.withdrawn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decision_id;

    const T0: i64 = 1_700_000_000;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(T0 + secs, 0).expect("valid time")
    }

    fn decision(alert: &str, scope: Scope, value: &str, at: i64, ttl: u64) -> Decision {
        let action = match scope {
            Scope::Token => Action::RevokeToken,
            _ => Action::Block,
        };
        Decision {
            id: decision_id(alert, action, scope, value),
            alert_id: alert.into(),
            created_at: t(at),
            action,
            scope,
            value: value.into(),
            ttl_secs: ttl,
            origin: "policy:test".into(),
            simulated: false,
            reason: "test".into(),
        }
    }

    fn pull(feed: &DecisionFeed, cursor: &str, at: i64) -> FeedPage {
        let req = FeedRequest {
            cursor: Some(FeedCursor::decode(cursor).expect("cursor")),
            limit: 100,
            include_simulated: false,
        };
        feed.pull(&req, t(at)).expect("pull")
    }

    fn first_pull(feed: &DecisionFeed, at: i64) -> FeedPage {
        let req = FeedRequest {
            cursor: None,
            limit: 100,
            include_simulated: false,
        };
        feed.pull(&req, t(at)).expect("pull")
    }

    fn added_values(page: &FeedPage) -> Vec<&str> {
        page.added
            .iter()
            .map(|d| d.decision.value.as_str())
            .collect()
    }

    fn expired_values(page: &FeedPage) -> Vec<&str> {
        page.expired.iter().map(|d| d.value.as_str()).collect()
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = FeedCursor {
            added_seq: 42,
            expired_ms: -5,
            expired_seq: u64::MAX,
        };
        assert_eq!(FeedCursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([2u8; 25])] {
            let err = FeedCursor::decode(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidQuery(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn pulls_return_what_was_added_and_what_expired_since_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let feed = DecisionFeed::open(dir.path()).unwrap();
        let long = decision("a1", Scope::Token, "jti:abc@bank", 0, 3600);
        let short = decision("a1", Scope::Ip, "203.0.113.9", 0, 60);
        let old = decision("a0", Scope::Identity, "sub:gone", -7200, 60);
        assert_eq!(feed.append(&[long.clone(), short.clone(), old]).unwrap(), 3);
        assert_eq!(
            feed.append(std::slice::from_ref(&long)).unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(feed.len().unwrap(), 3);

        let first = first_pull(&feed, 10);
        assert_eq!(
            added_values(&first),
            ["jti:abc@bank", "203.0.113.9"],
            "in force only"
        );
        assert!(
            first.expired.is_empty(),
            "a first pull has nothing to remove"
        );
        assert!(!first.more);
        let token = &first.added[0];
        assert_eq!(token.jti.as_deref(), Some("abc"));
        assert_eq!(token.aud.as_deref(), Some("bank"));
        assert_eq!(token.expires_at, t(3600));
        assert_eq!(token.decision, long);

        let quiet = pull(&feed, &first.cursor, 20);
        assert!(quiet.added.is_empty() && quiet.expired.is_empty());

        let newer = decision("a2", Scope::Identity, "sub:mallory", 30, 600);
        let fleeting = decision("a2", Scope::Ip, "198.51.100.1", 30, 5);
        feed.append(&[newer, fleeting]).unwrap();
        let later = pull(&feed, &quiet.cursor, 61);
        assert_eq!(
            added_values(&later),
            ["sub:mallory"],
            "fleeting expired before it was seen"
        );
        assert_eq!(expired_values(&later), ["203.0.113.9"]);
        assert!(!later.expired[0].withdrawn);
        assert_eq!(later.expired[0].expired_at, t(60));

        let end = pull(&feed, &later.cursor, 4000);
        assert!(end.added.is_empty());
        assert_eq!(
            expired_values(&end),
            ["sub:mallory", "jti:abc@bank"],
            "by expiry time"
        );
        assert!(
            pull(&feed, &end.cursor, 5000).expired.is_empty(),
            "each expiry once"
        );
    }

    #[test]
    fn pages_continue_where_the_last_one_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let feed = DecisionFeed::open(dir.path()).unwrap();
        let all: Vec<Decision> = (0..7)
            .map(|i| decision("a", Scope::Ip, &format!("192.0.2.{i}"), 0, 100 + i))
            .collect();
        feed.append(&all).unwrap();
        let mut req = FeedRequest {
            cursor: None,
            limit: 3,
            include_simulated: false,
        };
        let mut seen = Vec::new();
        loop {
            let page = feed.pull(&req, t(1)).unwrap();
            seen.extend(page.added.iter().map(|d| d.decision.value.clone()));
            req.cursor = Some(FeedCursor::decode(&page.cursor).unwrap());
            if !page.more {
                break;
            }
        }
        let want: Vec<String> = all.iter().map(|d| d.value.clone()).collect();
        assert_eq!(seen, want, "every decision once, in order");
        let mut expired = Vec::new();
        loop {
            let page = feed.pull(&req, t(1000)).unwrap();
            expired.extend(page.expired.iter().map(|d| d.value.clone()));
            req.cursor = Some(FeedCursor::decode(&page.cursor).unwrap());
            if !page.more {
                break;
            }
        }
        assert_eq!(expired, want, "every expiry once, by time");
    }

    #[test]
    fn simulated_decisions_are_left_out_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let feed = DecisionFeed::open(dir.path()).unwrap();
        let mut shadow = decision("a", Scope::Ip, "192.0.2.1", 0, 60);
        shadow.simulated = true;
        feed.append(&[shadow, decision("a", Scope::Ip, "192.0.2.2", 0, 60)])
            .unwrap();
        assert_eq!(added_values(&first_pull(&feed, 1)), ["192.0.2.2"]);
        let req = FeedRequest {
            cursor: None,
            limit: 10,
            include_simulated: true,
        };
        let page = feed.pull(&req, t(1)).unwrap();
        assert_eq!(page.added.len(), 2);
        assert!(page.added[0].decision.simulated);
    }

    #[test]
    fn withdrawn_decisions_expire_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let feed = DecisionFeed::open(dir.path()).unwrap();
        feed.append(&[
            decision("fp", Scope::Token, "jti:x", 0, 3600),
            decision("fp", Scope::Ip, "192.0.2.9", 0, 3600),
            decision("real", Scope::Ip, "192.0.2.10", 0, 3600),
        ])
        .unwrap();
        let first = first_pull(&feed, 10);
        assert_eq!(first.added.len(), 3);
        assert_eq!(feed.withdraw_alert("fp", t(10)).unwrap(), 2);
        assert_eq!(
            feed.withdraw_alert("fp", t(20)).unwrap(),
            0,
            "already withdrawn"
        );
        // Never handed out, then withdrawn: the puller hears of it in neither list.
        feed.append(&[decision("fp2", Scope::Ip, "192.0.2.11", 10, 3600)])
            .unwrap();
        assert_eq!(feed.withdraw_alert("fp2", t(10)).unwrap(), 1);
        // Pulled in the same second as the withdrawal: it is there all the same.
        let page = pull(&feed, &first.cursor, 10);
        assert_eq!(expired_values(&page), ["jti:x", "192.0.2.9"]);
        assert!(page.added.is_empty());
        assert!(page.expired.iter().all(|e| e.withdrawn));
        assert_eq!(page.expired[0].expired_at, t(10));
        assert_eq!(page.expired[0].jti.as_deref(), Some("x"));
        assert_eq!(page.expired[0].aud, None);
        let later = pull(&feed, &page.cursor, 4000);
        assert_eq!(
            expired_values(&later),
            ["192.0.2.10"],
            "withdrawn ones do not expire again"
        );
        assert!(!later.expired[0].withdrawn);
    }

    #[test]
    fn cursors_never_move_back_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cursor = {
            let feed = DecisionFeed::open(dir.path()).unwrap();
            feed.append(&[decision("a", Scope::Ip, "192.0.2.1", 0, 60)])
                .unwrap();
            first_pull(&feed, 100).cursor
        };
        let feed = DecisionFeed::open(dir.path()).unwrap();
        // The server's clock stepped back: the cursor must not, or expiries repeat.
        let page = pull(&feed, &cursor, 50);
        let before = FeedCursor::decode(&cursor).unwrap();
        let after = FeedCursor::decode(&page.cursor).unwrap();
        assert!(after.expired_ms >= before.expired_ms);
        assert!(after.added_seq >= before.added_seq);
        feed.append(&[decision("b", Scope::Ip, "192.0.2.2", 90, 600)])
            .unwrap();
        assert_eq!(added_values(&pull(&feed, &page.cursor, 120)), ["192.0.2.2"]);
    }
}
