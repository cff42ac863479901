//! The per-identity window extractor.
//!
//! Events are summed into hop-sized buckets per key; a window of `window / hop` consecutive
//! buckets yields one [`FeatureRow`] when the watermark passes its end. Buckets no window
//! still needs are evicted, so memory follows the active keys, not the history.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use outrider_ingest::{ApiEvent, Event, TokenEvent, TokenEventKind};

use crate::error::Result;
use crate::schema::{FeatureId, FEATURE_COUNT};
use crate::window::WindowConfig;

/// How many routes, IPs, tokens and request ids a row keeps for the analyst.
const CONTEXT_CAP: usize = 8;
/// Request ids kept per bucket as evidence.
const EVIDENCE_PER_BUCKET: usize = 4;
/// Distinct values tracked exactly per bucket before counting saturates (HLL comes later).
const DISTINCT_CAP: usize = 4096;

/// The feature vector of one key for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub key: String,
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

/// What an analyst needs to see behind a row: samples, not features.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowContext {
    pub api_events: u64,
    pub token_events: u64,
    pub routes: Vec<String>,
    pub client_ips: Vec<String>,
    pub token_ids: Vec<String>,
    pub request_ids: Vec<String>,
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractorStats {
    pub accepted: u64,
    pub late: u64,
    pub ignored: u64,
    pub rows_emitted: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    start_ms: i64,
    api_events: u32,
    token_events: u32,
    status_4xx: u32,
    status_401_403: u32,
    bytes_out: u64,
    login_failures: u32,
    endpoints: Vec<u64>,
    objects: Vec<u64>,
    token_ips: Vec<(u64, u64)>,
    token_runs: Vec<TokenRun>,
    routes: Vec<String>,
    client_ips: Vec<String>,
    token_ids: Vec<String>,
    request_ids: Vec<String>,
}

impl Bucket {
    fn add_api(&mut self, e: &ApiEvent) {
        self.api_events += 1;
        if (400..500).contains(&e.status) {
            self.status_4xx += 1;
        }
        if matches!(e.status, 401 | 403) {
            self.status_401_403 += 1;
        }
        self.bytes_out = self.bytes_out.saturating_add(e.bytes_out);
        insert_distinct(&mut self.endpoints, hash_of(&e.route));
        for id in e.object_ids() {
            insert_distinct(&mut self.objects, hash_of(id));
        }
        let ip = e.client_ip.to_string();
        if let Some(token) = e.identity.token_id.as_deref().filter(|t| !t.is_empty()) {
            let (token_hash, ip_hash) = (hash_of(token), hash_of(&ip));
            insert_distinct(&mut self.token_ips, (token_hash, ip_hash));
            self.note_token_use(token_hash, ip_hash);
            insert_sample(&mut self.token_ids, token, CONTEXT_CAP);
        }
        insert_sample(&mut self.routes, &e.route, CONTEXT_CAP);
        insert_sample(&mut self.client_ips, &ip, CONTEXT_CAP);
        insert_sample(&mut self.request_ids, &e.request_id, EVIDENCE_PER_BUCKET);
    }

    fn note_token_use(&mut self, token: u64, ip: u64) {
        if let Some(run) = self.token_runs.iter_mut().find(|r| r.token == token) {
            if run.last_ip != ip {
                run.switches += 1;
                run.last_ip = ip;
            }
        } else if self.token_runs.len() < DISTINCT_CAP {
            self.token_runs.push(TokenRun {
                token,
                first_ip: ip,
                last_ip: ip,
                switches: 0,
            });
        }
    }

    fn add_token(&mut self, e: &TokenEvent) {
        self.token_events += 1;
        if e.event == TokenEventKind::LoginFailure {
            self.login_failures += 1;
        }
        insert_sample(&mut self.client_ips, &e.client_ip.to_string(), CONTEXT_CAP);
    }
}

/// One token's uses within a bucket, in arrival order: enough to count IP changes across
/// buckets without keeping every use.
#[derive(Debug, Clone, Copy)]
struct TokenRun {
    token: u64,
    first_ip: u64,
    last_ip: u64,
    switches: u32,
}

fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    // DefaultHasher::new() has fixed keys: stable within a build, which is all rows need.
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

fn insert_distinct<T: PartialEq>(set: &mut Vec<T>, v: T) {
    if set.len() < DISTINCT_CAP && !set.contains(&v) {
        set.push(v);
    }
}

fn insert_sample(samples: &mut Vec<String>, v: &str, cap: usize) {
    if samples.len() < cap && !samples.iter().any(|s| s == v) {
        samples.push(v.to_owned());
    }
}

#[derive(Debug, Default)]
struct KeyState {
    /// Ordered by `start_ms`, no duplicates.
    buckets: VecDeque<Bucket>,
}

impl KeyState {
    fn bucket_mut(&mut self, start_ms: i64) -> &mut Bucket {
        let idx = match self.buckets.back() {
            Some(b) if b.start_ms == start_ms => self.buckets.len() - 1,
            Some(b) if b.start_ms < start_ms => self.push_back(start_ms),
            None => self.push_back(start_ms),
            Some(_) => self.insert_sorted(start_ms),
        };
        &mut self.buckets[idx]
    }

    fn push_back(&mut self, start_ms: i64) -> usize {
        self.buckets.push_back(Bucket {
            start_ms,
            ..Bucket::default()
        });
        self.buckets.len() - 1
    }

    fn insert_sorted(&mut self, start_ms: i64) -> usize {
        match self.buckets.binary_search_by_key(&start_ms, |b| b.start_ms) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(
                    i,
                    Bucket {
                        start_ms,
                        ..Bucket::default()
                    },
                );
                i
            }
        }
    }
}

/// Computes per-identity feature rows from events in event time.
#[derive(Debug)]
pub struct FeatureExtractor {
    window_ms: i64,
    hop_ms: i64,
    lateness_ms: i64,
    keys: HashMap<String, KeyState>,
    max_ts: Option<i64>,
    /// The end of the newest window emitted; nothing at or before it is emitted again.
    emitted_until: Option<i64>,
    stats: ExtractorStats,
}

impl FeatureExtractor {
    pub fn new(config: &WindowConfig) -> Result<Self> {
        config.check()?;
        Ok(Self {
            window_ms: config.window_ms(),
            hop_ms: config.hop_ms(),
            lateness_ms: config.lateness_ms(),
            keys: HashMap::new(),
            max_ts: None,
            emitted_until: None,
            stats: ExtractorStats::default(),
        })
    }

    /// Adds one event to its key's current bucket.
    pub fn observe(&mut self, event: &Event) -> Observed {
        let ts = event.ts().millis();
        if matches!(event, Event::Token(t) if t.event != TokenEventKind::LoginFailure) {
            self.stats.ignored += 1;
            return Observed::Ignored;
        }
        if self.emitted_until.is_some_and(|e| ts < e) {
            self.stats.late += 1;
            return Observed::Late;
        }
        let start = ts.div_euclid(self.hop_ms) * self.hop_ms;
        let bucket = self
            .keys
            .entry(event.identity_key())
            .or_default()
            .bucket_mut(start);
        match event {
            Event::Api(e) => bucket.add_api(e),
            Event::Token(e) => bucket.add_token(e),
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.stats.accepted += 1;
        Observed::Accepted
    }

    /// The event-time watermark: the newest event time less the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.max_ts.map(|t| t.saturating_sub(self.lateness_ms))
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
    /// end then key, and drops buckets no later window needs.
    pub fn advance(&mut self, watermark: i64) -> Vec<FeatureRow> {
        let until = watermark.div_euclid(self.hop_ms) * self.hop_ms;
        let after = self.emitted_until.unwrap_or(i64::MIN);
        if until <= after {
            return Vec::new();
        }
        let mut rows = Vec::new();
        for (key, state) in &self.keys {
            for end in self.window_ends(state, after, until) {
                rows.push(self.row(key, state, end));
            }
        }
        rows.sort_by(|a, b| (a.window_end_ms, &a.key).cmp(&(b.window_end_ms, &b.key)));
        self.emitted_until = Some(until);
        self.evict(until);
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

    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    pub fn stats(&self) -> ExtractorStats {
        self.stats
    }

    /// Window ends in `(after, until]` whose window holds at least one bucket of `state`.
    fn window_ends(&self, state: &KeyState, after: i64, until: i64) -> Vec<i64> {
        let mut ends = Vec::new();
        for b in &state.buckets {
            let mut end = b.start_ms + self.hop_ms;
            while end <= b.start_ms + self.window_ms && end <= until {
                if end > after {
                    ends.push(end);
                }
                end += self.hop_ms;
            }
        }
        ends.sort_unstable();
        ends.dedup();
        ends
    }

    fn row(&self, key: &str, state: &KeyState, end: i64) -> FeatureRow {
        let start = end - self.window_ms;
        let in_window = || {
            state
                .buckets
                .iter()
                .filter(move |b| b.start_ms >= start && b.start_ms < end)
        };
        let mut acc = Bucket::default();
        let mut endpoints = Vec::new();
        let mut objects = Vec::new();
        let mut token_ips = Vec::new();
        let mut switches: HashMap<u64, (u64, u32)> = HashMap::new();
        let mut context = WindowContext::default();
        for b in in_window() {
            acc.api_events += b.api_events;
            acc.token_events += b.token_events;
            acc.status_4xx += b.status_4xx;
            acc.status_401_403 += b.status_401_403;
            acc.bytes_out = acc.bytes_out.saturating_add(b.bytes_out);
            acc.login_failures += b.login_failures;
            endpoints.extend_from_slice(&b.endpoints);
            objects.extend_from_slice(&b.objects);
            token_ips.extend_from_slice(&b.token_ips);
            chain_token_runs(&mut switches, &b.token_runs);
            merge_samples(&mut context.routes, &b.routes, CONTEXT_CAP);
            merge_samples(&mut context.client_ips, &b.client_ips, CONTEXT_CAP);
            merge_samples(&mut context.token_ids, &b.token_ids, CONTEXT_CAP);
            merge_samples(&mut context.request_ids, &b.request_ids, CONTEXT_CAP);
        }
        context.api_events = u64::from(acc.api_events);
        context.token_events = u64::from(acc.token_events);
        let minutes = self.window_ms as f32 / 60_000.0;
        let requests = acc.api_events as f32;
        let mut values = [0.0; FEATURE_COUNT];
        values[FeatureId::RequestsPerMin as usize] = requests / minutes;
        values[FeatureId::DistinctEndpoints as usize] = count_distinct(&mut endpoints) as f32;
        values[FeatureId::DistinctObjectIds as usize] = count_distinct(&mut objects) as f32;
        values[FeatureId::Ratio4xx as usize] = if acc.api_events > 0 {
            acc.status_4xx as f32 / requests
        } else {
            0.0
        };
        values[FeatureId::Count401403 as usize] = acc.status_401_403 as f32;
        values[FeatureId::BytesOut as usize] = acc.bytes_out as f32;
        values[FeatureId::MaxIpsPerToken as usize] = max_ips_per_token(&mut token_ips) as f32;
        values[FeatureId::MaxIpSwitchesPerToken as usize] =
            switches.values().map(|&(_, n)| n).max().unwrap_or(0) as f32;
        values[FeatureId::LoginFailures as usize] = acc.login_failures as f32;
        FeatureRow {
            key: key.to_owned(),
            window_start_ms: start,
            window_end_ms: end,
            values,
            context,
        }
    }

    fn evict(&mut self, until: i64) {
        let window_ms = self.window_ms;
        self.keys.retain(|_, state| {
            while state
                .buckets
                .front()
                .is_some_and(|b| b.start_ms + window_ms <= until)
            {
                state.buckets.pop_front();
            }
            !state.buckets.is_empty()
        });
    }
}

fn merge_samples(into: &mut Vec<String>, from: &[String], cap: usize) {
    for s in from {
        insert_sample(into, s, cap);
    }
}

/// Adds one bucket's token runs (buckets in time order) to the per-token (last IP, switches).
fn chain_token_runs(acc: &mut HashMap<u64, (u64, u32)>, runs: &[TokenRun]) {
    for run in runs {
        let entry = acc.entry(run.token).or_insert((run.first_ip, 0));
        let crossed = u32::from(entry.0 != run.first_ip);
        *entry = (run.last_ip, entry.1 + crossed + run.switches);
    }
}

fn count_distinct<T: Ord>(v: &mut Vec<T>) -> usize {
    v.sort_unstable();
    v.dedup();
    v.len()
}

fn max_ips_per_token(pairs: &mut Vec<(u64, u64)>) -> usize {
    count_distinct(pairs);
    // Sorted by token, so each token's distinct IPs are one run.
    pairs
        .chunk_by(|a, b| a.0 == b.0)
        .map(<[_]>::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
