//! The streaming extractor: `observe(&event)` updates the state of every key the event
//! touches (its identity, client IP, token and, through them, routes and object types);
//! `advance(watermark)` emits the rows of every window that ended.
//!
//! Window ends are processed in order, and before the rows of an end `E` are computed,
//! every bucket that no window from `E` on needs is folded into its key's profile and the
//! shared tables. Baselines learn from the rows of `E` only after all of them exist. So a
//! row depends on the events, never on how they were split into batches or ordered within
//! the allowed lateness: replay and live detection compute identical vectors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::hash_map::RawEntryMut;
use hashbrown::HashMap;
use outrider_ingest::route::is_object_id;
use outrider_ingest::{ApiEvent, Event, TokenEvent, TokenEventKind};
use serde::{Deserialize, Serialize};

use crate::context::ContextList;
use crate::error::Result;
use crate::hash::{hash32, seed, Hasher};
use crate::row::Scratch;
use crate::schema::{FeatureId, FEATURE_COUNT};
use crate::state::{pack_location, Bucket, IpState, KeyState, Sample, TokenState};
use crate::tables::{Baselines, Markov, RouteNames};
use crate::window::WindowConfig;

/// Event time between two sweeps for idle keys.
const EVICTION_SWEEP_MS: i64 = 60_000;

/// The key that identities share once `max_tracked_keys` is reached.
pub const OVERFLOW_KEY: &str = "overflow:untracked";

/// The feature vector of one key for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// The identity key, shared with the extractor's state: no copy per row.
    pub key: Arc<str>,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub values: [f32; FEATURE_COUNT],
    pub context: WindowContext,
}

impl FeatureRow {
    pub fn get(&self, f: FeatureId) -> f32 {
        self.values[f as usize]
    }
}

/// What an analyst needs to see behind a row: samples, not features. Shared strings in
/// inline lists, so that the rows which never alert cost no copies and no allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowContext {
    pub api_events: u64,
    pub token_events: u64,
    pub routes: ContextList<Arc<str>>,
    pub client_ips: ContextList<IpAddr>,
    pub token_ids: ContextList<Arc<str>>,
    pub request_ids: ContextList<Arc<str>>,
}

/// What [`FeatureExtractor::observe`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Accepted,
    /// Older than a window already emitted: counted in [`ExtractorStats::late`], not used.
    Late,
    /// A record kind no feature of this schema uses.
    Ignored,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractorStats {
    pub accepted: u64,
    pub late: u64,
    pub ignored: u64,
    pub rows_emitted: u64,
    /// Events of identities that arrived while the key cap was reached (they share
    /// [`OVERFLOW_KEY`]).
    pub overflowed_events: u64,
    /// IPs and tokens not tracked because the key cap was reached.
    pub untracked_keys: u64,
    /// Keys forgotten after `idle_evict_secs` without events.
    pub evicted_keys: u64,
}

/// Computes per-identity feature rows from events in event time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureExtractor {
    pub(crate) config: WindowConfig,
    pub(crate) window_ms: i64,
    pub(crate) hop_ms: i64,
    /// Shared keys: the pending index below holds them too, without copies.
    pub(crate) identities: HashMap<Arc<str>, KeyState>,
    pub(crate) ips: HashMap<u32, IpState>,
    pub(crate) tokens: HashMap<u32, TokenState>,
    pub(crate) routes: RouteNames,
    pub(crate) markov: Markov,
    pub(crate) baselines: Baselines,
    pub(crate) max_ts: Option<i64>,
    /// Unfolded buckets by start: the identities, and the IPs, that have one. Emitting and
    /// folding visit only these, never every tracked key.
    pub(crate) pending: BTreeMap<i64, Vec<Arc<str>>>,
    pub(crate) ip_pending: BTreeMap<i64, Vec<u32>>,
    /// When idle keys were last swept (see [`Self::evict_idle`]).
    pub(crate) swept_at: Option<i64>,
    /// The end of the newest window emitted; nothing at or before it is emitted again.
    pub(crate) emitted_until: Option<i64>,
    pub(crate) stats: ExtractorStats,
    /// The identity key of the event being observed: one buffer, not a string per event.
    #[serde(skip)]
    key_buf: String,
    /// The user named by a failed login, as a key.
    #[serde(skip)]
    subject_buf: String,
}

impl FeatureExtractor {
    pub fn new(config: &WindowConfig) -> Result<Self> {
        config.check()?;
        Ok(Self {
            config: config.clone(),
            window_ms: config.window_ms(),
            hop_ms: config.hop_ms(),
            identities: HashMap::new(),
            ips: HashMap::new(),
            tokens: HashMap::new(),
            routes: RouteNames::default(),
            markov: Markov::default(),
            baselines: Baselines::default(),
            max_ts: None,
            pending: BTreeMap::new(),
            ip_pending: BTreeMap::new(),
            emitted_until: None,
            swept_at: None,
            stats: ExtractorStats::default(),
            key_buf: String::new(),
            subject_buf: String::new(),
        })
    }

    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Adds one event to the state of every key it touches.
    pub fn observe(&mut self, event: &Event) -> Observed {
        let ts = event.ts().millis();
        if self.emitted_until.is_some_and(|e| ts < e) {
            self.stats.late += 1;
            return Observed::Late;
        }
        let start = ts.div_euclid(self.hop_ms) * self.hop_ms;
        let used = match event {
            Event::Api(e) => {
                self.observe_api(e, ts, start);
                true
            }
            Event::Token(e) => self.observe_token(e, ts, start),
        };
        if !used {
            self.stats.ignored += 1;
            return Observed::Ignored;
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.stats.accepted += 1;
        Observed::Accepted
    }

    fn observe_api(&mut self, e: &ApiEvent, ts: i64, start: i64) {
        let mut key = std::mem::take(&mut self.key_buf);
        e.write_identity_key(&mut key);
        let route = hash32(seed::ROUTE, e.route.as_bytes());
        self.routes.intern(route, &e.route);
        let (object, walk_id) = innermost_object(&e.path);
        let identity = hash32(seed::IDENTITY, key.as_bytes());
        let ip = self.track_ip(e.client_ip, ts, start, identity);
        let token = e
            .identity
            .token_id
            .as_deref()
            .filter(|t| !t.is_empty())
            .map_or(0, |t| self.track_token(t, ts));
        let sample = Sample {
            offset_ms: offset(ts, start),
            priority: priority(ts, e.request_id.as_bytes(), route, ip),
            route,
            object,
            walk_id,
            ip,
            net: e.origin.asn.map_or_else(|| net_hash(e.client_ip), asn_hash),
            user_agent: hash32(seed::USER_AGENT, e.user_agent.as_bytes()),
            token,
            bytes_out: u32::try_from(e.bytes_out).unwrap_or(u32::MAX),
            latency_us: latency_us(e.latency_ms),
            location: e.origin.location().map_or(0, pack_location),
        };
        let hop_ms = self.hop_ms;
        let bucket = self.bucket_for(&key, ts, start);
        bucket.counters.api += 1;
        bucket.counters.count_status(e.status);
        bucket.counters.bytes_out = bucket.counters.bytes_out.saturating_add(e.bytes_out);
        bucket.counters.latency_us = bucket
            .counters
            .latency_us
            .saturating_add(u64::from(sample.latency_us));
        bucket.add_evidence(sample.priority, &e.request_id);
        bucket.add_sample(sample, hop_ms);
        self.key_buf = key;
    }

    /// Token-server events update the keys they name; returns whether any feature uses it.
    fn observe_token(&mut self, e: &TokenEvent, ts: i64, start: i64) -> bool {
        let token = e
            .token_id
            .as_deref()
            .filter(|t| !t.is_empty())
            .map_or(0, |t| self.track_token(t, ts));
        if let Some(t) = self.tokens.get_mut(&token) {
            match e.event {
                TokenEventKind::TokenIssued | TokenEventKind::TokenRefreshed => {
                    t.issued_ms = Some(t.issued_ms.map_or(ts, |i| i.min(ts)));
                }
                TokenEventKind::TokenRevoked => {
                    t.revoked_ms = Some(t.revoked_ms.map_or(ts, |r| r.min(ts)));
                }
                _ => {}
            }
        }
        let mut key = std::mem::take(&mut self.key_buf);
        e.write_identity_key(&mut key);
        if matches!(e.event, TokenEventKind::Logout)
            || (e.event == TokenEventKind::TokenRevoked && token == 0)
        {
            self.key_state(&key, ts).profile.note_logout(ts);
        }
        let named = match e.subject.as_deref() {
            Some(subject) if e.event == TokenEventKind::LoginFailure => {
                let mut named = std::mem::take(&mut self.subject_buf);
                named.clear();
                named.push_str("sub:");
                named.push_str(subject);
                Some(named)
            }
            _ => None,
        };
        // The identities an IP serves: for a failed login, the user it tried.
        let identity = hash32(seed::IDENTITY, named.as_ref().unwrap_or(&key).as_bytes());
        self.add_token_sample(e, (&key, identity), ts, start, token);
        // A failed login also counts against the user it named (brute force of one
        // account from many IPs), beside the IP it came from.
        if let Some(named) = named {
            if named.len() > "sub:".len() {
                self.add_token_sample(e, (&named, identity), ts, start, token);
            }
            self.subject_buf = named;
        }
        self.key_buf = key;
        true
    }

    /// `identity` is the hash of the identity the event names (for identities per IP).
    fn add_token_sample(
        &mut self,
        e: &TokenEvent,
        (key, identity): (&str, u32),
        ts: i64,
        start: i64,
        token: u32,
    ) {
        let ip = self.track_ip(e.client_ip, ts, start, identity);
        let sample = Sample {
            offset_ms: offset(ts, start),
            priority: priority(ts, key.as_bytes(), e.event as u32, ip),
            route: 0,
            object: 0,
            walk_id: 0,
            ip,
            net: net_hash(e.client_ip),
            user_agent: hash32(seed::USER_AGENT, e.user_agent.as_bytes()),
            token,
            bytes_out: 0,
            latency_us: 0,
            location: 0,
        };
        let hop_ms = self.hop_ms;
        let bucket = self.bucket_for(key, ts, start);
        bucket.counters.token_events += 1;
        match e.event {
            TokenEventKind::LoginFailure => bucket.counters.login_failures += 1,
            TokenEventKind::TokenRefreshed => bucket.counters.refreshes += 1,
            _ => {}
        }
        bucket.add_sample(sample, hop_ms);
    }

    fn tracked(&self) -> usize {
        self.identities.len() + self.ips.len() + self.tokens.len()
    }

    /// One slot stays free for [`OVERFLOW_KEY`].
    fn at_capacity(&self) -> bool {
        self.tracked() + 1 >= self.config.max_tracked_keys
    }

    /// `key`, or [`OVERFLOW_KEY`] when it is new and the cap is reached.
    fn admit<'k>(&mut self, key: &'k str) -> &'k str {
        if !self.at_capacity() || self.identities.contains_key(key) {
            key
        } else {
            self.stats.overflowed_events += 1;
            OVERFLOW_KEY
        }
    }

    /// The state of `key` (see [`Self::admit`]).
    fn key_state(&mut self, key: &str, ts: i64) -> &mut KeyState {
        let key = self.admit(key);
        seen_identity(&mut self.identities, key, ts).1
    }

    /// The bucket of `key` starting at `start`, noted in `pending` when new.
    fn bucket_for(&mut self, key: &str, ts: i64, start: i64) -> &mut Bucket {
        let key = self.admit(key);
        let (key, state) = seen_identity(&mut self.identities, key, ts);
        if !state.has_bucket(start) {
            self.pending.entry(start).or_default().push(Arc::clone(key));
        }
        state.bucket_mut(start)
    }

    /// The IP's hash; its state is created unless the cap is reached, and notes
    /// `identity` (a hash) in the IP's bucket at `start`. One lookup for both.
    fn track_ip(&mut self, addr: IpAddr, ts: i64, start: i64, identity: u32) -> u32 {
        let h = ip_hash(addr);
        let state = if let Some(s) = self.ips.get_mut(&h) {
            s.last_seen_ms = s.last_seen_ms.max(ts);
            s
        } else if self.at_capacity() {
            self.stats.untracked_keys += 1;
            return h;
        } else {
            let mut state = IpState::new(addr);
            state.last_seen_ms = ts;
            self.ips.entry(h).insert(state).into_mut()
        };
        if state.add_identity(start, identity) {
            self.ip_pending.entry(start).or_default().push(h);
        }
        h
    }

    /// The token's hash, joined on the `jti` whatever audience suffix the gateway added.
    fn track_token(&mut self, token_id: &str, ts: i64) -> u32 {
        let jti = token_id
            .bytes()
            .position(|b| b == b'@')
            .map_or(token_id, |at| token_id.get(..at).unwrap_or(token_id));
        let h = hash32(seed::TOKEN, jti.as_bytes());
        if let Some(t) = self.tokens.get_mut(&h) {
            t.touch(ts);
        } else if self.at_capacity() {
            self.stats.untracked_keys += 1;
        } else {
            self.tokens.insert(h, TokenState::new(jti, ts));
        }
        h
    }

    /// The event-time watermark: the newest event time less the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.max_ts
            .map(|t| t.saturating_sub(self.config.lateness_ms()))
    }

    /// The newest event time seen.
    pub fn max_event_time(&self) -> Option<i64> {
        self.max_ts
    }

    /// Every event with a time before this has been in all the windows it belongs to: what
    /// the caller may commit past.
    pub fn completed_before(&self) -> Option<i64> {
        self.emitted_until
            .map(|e| e.saturating_sub(self.window_ms) + self.hop_ms)
    }

    /// Emits the rows of every window that ends at or before `watermark`, ordered by window
    /// end then key.
    pub fn advance(&mut self, watermark: i64) -> Vec<FeatureRow> {
        let until = watermark.div_euclid(self.hop_ms) * self.hop_ms;
        let after = self.emitted_until.unwrap_or(i64::MIN);
        if until <= after {
            return Vec::new();
        }
        let ends = self.window_ends(after, until);
        // Rows are large: reserve for every end at once rather than copying them each time
        // the vector grows. Each end has a row per key with events in its newest hop (the
        // exact count unless `emit_every_hop` adds more).
        let mut rows = Vec::with_capacity(
            ends.iter()
                .filter_map(|end| self.pending.get(&(end - self.hop_ms)))
                .map(Vec::len)
                .sum(),
        );
        let mut scratch = Scratch::default();
        for end in ends {
            self.fold_before(end - self.window_ms);
            let first = rows.len();
            scratch.start_window_end();
            self.rows_ending_at(end, &mut scratch, &mut rows);
            self.learn_from(&rows[first..], scratch.route_calls());
            self.baselines.refresh();
        }
        self.emitted_until = Some(until);
        // Buckets no window after `until` needs: fold them now to free memory.
        self.fold_before(until - self.window_ms + self.hop_ms);
        self.evict_idle(until);
        self.stats.rows_emitted += rows.len() as u64;
        rows
    }

    /// Emits every remaining window (end of a replay).
    pub fn finish(&mut self) -> Vec<FeatureRow> {
        match self.max_ts {
            Some(t) => self.advance(t.div_euclid(self.hop_ms) * self.hop_ms + self.window_ms),
            None => Vec::new(),
        }
    }

    /// Identities, IPs and tokens currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.tracked()
    }

    pub fn stats(&self) -> ExtractorStats {
        self.stats
    }

    /// An estimate of the bytes of state held, from the sizes and capacities of everything
    /// kept (hash-table slack included): what `bytes per key` figures are computed from.
    pub fn state_bytes(&self) -> usize {
        let entry = |k: usize, v: usize| k + v + 8;
        let ids: usize = self
            .identities
            .iter()
            // An `Arc<str>` key: two counters and the bytes.
            .map(|(k, s)| 16 + k.len() + s.heap_bytes())
            .sum::<usize>()
            + self.identities.capacity()
                * entry(
                    std::mem::size_of::<Arc<str>>(),
                    std::mem::size_of::<KeyState>(),
                );
        let ips: usize = self.ips.values().map(IpState::heap_bytes).sum::<usize>()
            + self.ips.capacity() * entry(4, std::mem::size_of::<IpState>());
        let tokens: usize = self
            .tokens
            .values()
            .map(TokenState::heap_bytes)
            .sum::<usize>()
            + self.tokens.capacity() * entry(4, std::mem::size_of::<TokenState>());
        let pending: usize = self
            .pending
            .values()
            .map(|keys| 48 + keys.capacity() * std::mem::size_of::<Arc<str>>())
            .sum::<usize>()
            + self
                .ip_pending
                .values()
                .map(|ips| 48 + ips.capacity() * 4)
                .sum::<usize>();
        ids + ips
            + tokens
            + pending
            + self.routes.heap_bytes()
            + self.markov.heap_bytes()
            + self.baselines.heap_bytes()
    }

    /// Window ends in `(after, until]` that emit rows (see `emit_every_hop`).
    fn window_ends(&self, after: i64, until: i64) -> BTreeSet<i64> {
        let reach = if self.config.emit_every_hop {
            self.window_ms
        } else {
            self.hop_ms
        };
        let mut ends = BTreeSet::new();
        for &start in self.pending.keys() {
            // Starts and `after` are hop multiples, so `end` steps through window ends.
            let mut end = (start + self.hop_ms).max(after.saturating_add(self.hop_ms));
            while end <= (start + reach).min(until) {
                ends.insert(end);
                end += self.hop_ms;
            }
        }
        ends
    }

    /// Folds every bucket that starts before `cutoff` into its key's profile and the
    /// shared tables, and drops IP buckets as old.
    fn fold_before(&mut self, cutoff: i64) {
        let newer = self.pending.split_off(&cutoff);
        for key in std::mem::replace(&mut self.pending, newer)
            .into_values()
            .flatten()
        {
            let Some(state) = self.identities.get_mut(&key) else {
                continue;
            };
            state.profile.prune_logouts(cutoff);
            while state.buckets.front().is_some_and(|b| b.start_ms < cutoff) {
                if let Some(bucket) = state.buckets.pop_front() {
                    fold_bucket(state, bucket, &mut self.markov);
                }
            }
            release_if_empty(&mut state.buckets);
        }
        let newer = self.ip_pending.split_off(&cutoff);
        for ip in std::mem::replace(&mut self.ip_pending, newer)
            .into_values()
            .flatten()
        {
            if let Some(state) = self.ips.get_mut(&ip) {
                while state.buckets.front().is_some_and(|b| b.start_ms < cutoff) {
                    state.buckets.pop_front();
                }
                release_if_empty(&mut state.buckets);
            }
        }
    }

    /// Appends the rows of the windows ending at `end` to `rows`, ordered by key.
    fn rows_ending_at(&self, end: i64, scratch: &mut Scratch, rows: &mut Vec<FeatureRow>) {
        let first = if self.config.emit_every_hop {
            end - self.window_ms
        } else {
            end - self.hop_ms
        };
        let mut keys: Vec<&Arc<str>> = self
            .pending
            .range(first..end)
            .flat_map(|(_, k)| k)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // Rows are large: one reservation rather than copies as the vector doubles.
        rows.reserve(keys.len());
        rows.extend(keys.into_iter().filter_map(|k| {
            let state = self.identities.get(k)?;
            self.row(k, state, end, scratch)
        }));
    }

    /// Baselines and each key's own typical volume learn from the rows of one window end.
    fn learn_from(&mut self, rows: &[FeatureRow], route_calls: &[(u32, f64)]) {
        for row in rows {
            let requests =
                f64::from(row.get(FeatureId::RequestsPerMin)) * self.window_ms as f64 / 60_000.0;
            self.baselines.learn_peer(
                peer_group(&row.key),
                [
                    f64::from(row.get(FeatureId::RequestsPerMin)),
                    f64::from(row.get(FeatureId::DistinctObjectIds)),
                    f64::from(row.get(FeatureId::BytesOut)),
                    f64::from(row.get(FeatureId::DistinctObjectIds1h)),
                ],
            );
            if let Some(state) = self.identities.get_mut(&*row.key) {
                let p = &mut state.profile;
                p.typical_requests = if p.active_windows == 0 {
                    requests
                } else {
                    0.9 * p.typical_requests + 0.1 * requests
                };
                p.active_windows = p.active_windows.saturating_add(1);
            }
        }
        for &(route, calls) in route_calls {
            self.baselines.learn_route(route, calls);
        }
    }

    /// Forgets keys idle for `idle_evict_secs`. A sweep visits every key, so it runs at
    /// most once per [`EVICTION_SWEEP_MS`] of event time (idleness is measured in days),
    /// not at every advance.
    fn evict_idle(&mut self, until: i64) {
        if self
            .swept_at
            .is_some_and(|at| until - at < EVICTION_SWEEP_MS)
        {
            return;
        }
        self.swept_at = Some(until);
        let idle = self.config.idle_ms();
        let stale = |last: i64| last.saturating_add(idle) < until;
        let before = self.tracked();
        self.identities
            .retain(|_, s| !s.buckets.is_empty() || !stale(s.last_seen_ms));
        self.ips
            .retain(|_, s| !s.buckets.is_empty() || !stale(s.last_seen_ms));
        self.tokens.retain(|_, t| !stale(t.last_seen_ms));
        self.stats.evicted_keys += (before - self.tracked()) as u64;
    }
}

/// The shared key and state of an admitted identity (created if new), seen at `ts`.
fn seen_identity<'m>(
    identities: &'m mut HashMap<Arc<str>, KeyState>,
    key: &str,
    ts: i64,
) -> (&'m Arc<str>, &'m mut KeyState) {
    let (key, state) = match identities.raw_entry_mut().from_key(key) {
        RawEntryMut::Occupied(o) => o.into_key_value(),
        RawEntryMut::Vacant(v) => v.insert(Arc::from(key), KeyState::default()),
    };
    state.last_seen_ms = state.last_seen_ms.max(ts);
    (key, state)
}

/// Most keys go quiet between bursts: their empty bucket queues should not keep the
/// capacity of their busiest minute.
fn release_if_empty<T>(buckets: &mut std::collections::VecDeque<T>) {
    if buckets.is_empty() && buckets.capacity() > 0 {
        *buckets = std::collections::VecDeque::new();
    }
}

/// A bucket leaving the window teaches its key's profile and the Markov model.
fn fold_bucket(state: &mut KeyState, bucket: Bucket, markov: &mut Markov) {
    for s in &bucket.samples {
        let ts = bucket.start_ms + i64::from(s.offset_ms);
        state.profile.learn(s, ts);
        if s.is_api() {
            if state.profile.last_route != 0 {
                markov.learn(state.profile.last_route, s.route);
            }
            state.profile.last_route = s.route;
        }
    }
    state.profile.folded_buckets = state.profile.folded_buckets.saturating_add(1);
}

/// The identity's peer group: its kind (`sub`, `client`, `apikey`, `ip`, ...), as the
/// peer baselines use it (the models calibrate thresholds per peer group with it too).
pub fn peer_group(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// The innermost object id of a path, the last id segment before any query or fragment:
/// (its type's and its own hash, numeric id + 1 or 0). Its type is the closest segment
/// before it that is not an id.
fn innermost_object(path: &str) -> (u32, u32) {
    let (mut kind, mut found) = ("", None);
    // One pass over the bytes finds both the segments and the query cut ('/', '?' and
    // '#' are ASCII, so every cut is a char boundary).
    let mut rest = path;
    loop {
        let cut = rest
            .bytes()
            .position(|b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(rest.len());
        let (segment, tail) = rest.split_at(cut);
        if is_object_id(segment) {
            found = Some((kind, segment));
        } else {
            kind = segment;
        }
        match tail.strip_prefix('/') {
            Some(next) => rest = next,
            None => break,
        }
    }
    let Some((kind, object)) = found else {
        return (0, 0);
    };
    let kind = hash32(seed::OBJECT_TYPE, kind.as_bytes()) & 0xff00_0000;
    let id = hash32(seed::OBJECT, object.as_bytes()) & 0x00ff_ffff;
    let walk = object
        .parse::<u64>()
        .map_or(0, |n| (n as u32).wrapping_add(1));
    ((kind | id).max(1), walk)
}

fn ip_hash(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => hash32(seed::IP, &a.octets()),
        IpAddr::V6(a) => hash32(seed::IP, &a.octets()),
    }
}

/// The client's network when the log names its autonomous system: an ASN follows who
/// runs the network, which a prefix only approximates. (Four bytes hashed, where prefixes
/// hash three or six, so the two never share an input.)
fn asn_hash(asn: u32) -> u32 {
    hash32(seed::NET, &asn.to_be_bytes())
}

/// The /24 of an IPv4 address or the /48 of an IPv6 one.
fn net_hash(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => hash32(seed::NET, &a.octets()[..3]),
        IpAddr::V6(a) => hash32(seed::NET, &a.octets()[..6]),
    }
}

fn offset(ts: i64, start: i64) -> u32 {
    u32::try_from(ts - start).unwrap_or(u32::MAX)
}

fn priority(ts: i64, id: &[u8], a: u32, b: u32) -> u32 {
    Hasher::new(seed::PRIORITY)
        .word(ts as u64)
        .word((u64::from(a) << 32) | u64::from(b))
        .bytes(id)
        .finish32()
}

fn latency_us(ms: f32) -> u32 {
    if ms.is_finite() && ms > 0.0 {
        (f64::from(ms) * 1000.0).min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests;
