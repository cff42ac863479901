//! Computing one key's row for one window from its buckets and the state it joins with.
//!
//! Rows are the hot path: every bucket is read by each of the windows that cover it. So a
//! window reads its buckets in place (their samples are kept in time order, see
//! [`Bucket::add_sample`]) and every temporary lives in a [`Scratch`] reused from row to
//! row: little is allocated per row but the row itself.

use std::sync::Arc;

use hashbrown::HashMap;
use smallvec::SmallVec;

use crate::context::ContextList;
use crate::extractor::{peer_group, FeatureExtractor, FeatureRow, WindowContext};
use crate::hash::spread32;
use crate::schema::{FeatureId as F, FEATURE_COUNT};
use crate::sketch::Hll;
use crate::state::{
    distance_km, unpack_location, Bucket, Counters, KeyState, Sample, HOUR_MS, SLOTS,
};
use crate::tables::{warm_z, Markov};

/// IPs of a row whose identities-per-IP are looked up.
const IP_LOOKUPS: usize = 16;

/// (token, position in the window, IP, user agent, time) of one token-bearing API call.
type TokenCall = (u32, u32, u32, u32, i64);

/// Buffers reused from row to row: most rows are small, and allocating for each dominated
/// the cost of emitting them.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    values: Vec<u32>,
    ids: Vec<u32>,
    sets: Sets,
    token_calls: Vec<TokenCall>,
    /// The context's routes, IPs and tokens.
    firsts: [FirstKnown; 3],
    /// (route, calls by this identity in the window) of every row of one window end, in
    /// row order: what per-route baselines learn from once all rows exist.
    route_calls: Vec<(u32, f64)>,
    /// The surprise of each route transition met during one window end: the Markov model
    /// changes only between window ends, and the rows of one end share most transitions.
    surprises: HashMap<u64, f64>,
}

impl Scratch {
    /// Forgets what belongs to the previous window end.
    pub fn start_window_end(&mut self) {
        self.route_calls.clear();
        self.surprises.clear();
    }

    pub fn route_calls(&self) -> &[(u32, f64)] {
        &self.route_calls
    }
}

/// What several features of a row share, sorted once: the distinct IPs, user agents and
/// objects of the window, and its API calls' routes (with repeats).
#[derive(Debug, Default)]
struct Sets {
    ips: Vec<u32>,
    agents: Vec<u32>,
    objects: Vec<u32>,
    routes: Vec<u32>,
}

impl Sets {
    /// One pass over the window's samples fills the four sets.
    fn fill(&mut self, w: &Window) {
        self.ips.clear();
        self.agents.clear();
        self.objects.clear();
        self.routes.clear();
        for s in w.samples() {
            push_unless_repeat(&mut self.ips, s.ip);
            push_unless_repeat(&mut self.agents, s.user_agent);
            push_unless_repeat(&mut self.objects, s.object);
            if s.is_api() {
                self.routes.push(s.route);
            }
        }
        count_distinct(&mut self.ips);
        count_distinct(&mut self.agents);
        count_distinct(&mut self.objects);
        self.routes.sort_unstable();
    }

    fn distinct_routes(&self) -> usize {
        self.routes.chunk_by(|a, b| a == b).count()
    }
}

/// Sorted distinct non-zero `values` into `buf`.
fn distinct_into(buf: &mut Vec<u32>, values: impl Iterator<Item = u32>) {
    buf.clear();
    values.for_each(|v| push_unless_repeat(buf, v));
    count_distinct(buf);
}

/// Pushes a non-zero `v` unless it repeats the last value pushed: consecutive samples
/// mostly share their IP, agent and network, so what is left to sort for distinct
/// values is short.
fn push_unless_repeat(buf: &mut Vec<u32>, v: u32) {
    if v != 0 && buf.last() != Some(&v) {
        buf.push(v);
    }
}

/// One window of one key: its buckets, read in place.
struct Window<'a> {
    buckets: std::collections::vec_deque::Iter<'a, Bucket>,
    counters: Counters,
    overflowed: bool,
}

impl<'a> Window<'a> {
    fn gather(state: &'a KeyState, start: i64, end: i64) -> Self {
        let first = state.buckets.partition_point(|b| b.start_ms < start);
        let last = state.buckets.partition_point(|b| b.start_ms < end);
        let buckets = state.buckets.range(first..last);
        let mut counters = Counters::default();
        let mut overflowed = false;
        for b in buckets.clone() {
            counters.add(&b.counters);
            overflowed |= b.overflow.is_some();
        }
        Self {
            buckets,
            counters,
            overflowed,
        }
    }

    fn is_empty(&self) -> bool {
        self.buckets.len() == 0
    }

    /// The samples in time order (buckets are in order, and samples within each).
    fn samples(&self) -> impl Iterator<Item = &'a Sample> + Clone + 'a {
        self.buckets.clone().flat_map(|b| b.samples.iter())
    }

    /// The samples with their absolute times, in time order.
    fn timed(&self) -> impl Iterator<Item = (i64, &'a Sample)> + 'a {
        self.buckets.clone().flat_map(|b| {
            b.samples
                .iter()
                .map(move |s| (b.start_ms + i64::from(s.offset_ms), s))
        })
    }

    fn api(&self) -> impl Iterator<Item = &'a Sample> + Clone + 'a {
        self.samples().filter(|s| s.is_api())
    }

    /// Distinct values of `field` (0 excluded): `exact`, counted from the samples, or
    /// HyperLogLog over the overflow sketches and the samples of the buckets that did not
    /// overflow.
    fn distinct(
        &self,
        exact: usize,
        field: impl Fn(&Sample) -> u32,
        sketch: impl Fn(&crate::state::Overflow) -> &Hll,
    ) -> f64 {
        if !self.overflowed {
            return exact as f64;
        }
        let mut hll = Hll::default();
        for b in self.buckets.clone() {
            match &b.overflow {
                Some(o) => hll.merge(sketch(o)),
                None => b
                    .samples
                    .iter()
                    .map(&field)
                    .filter(|v| *v != 0)
                    .for_each(|v| hll.insert_hash(spread32(v))),
            }
        }
        hll.estimate().round()
    }

    /// The index of dispersion of requests over the window's slots.
    fn dispersion(&self, slots_in_window: usize) -> f64 {
        let n = self.counters.api;
        if n < 5 || slots_in_window == 0 {
            return 1.0;
        }
        let squares: f64 = self
            .buckets
            .clone()
            .flat_map(|b| b.slots.iter())
            .map(|&c| f64::from(c) * f64::from(c))
            .sum();
        let mean = f64::from(n) / slots_in_window as f64;
        let variance = squares / slots_in_window as f64 - mean * mean;
        (variance / mean).max(0.0)
    }
}

/// Clears `buf` and fills it from `values`: one allocation reused for every row.
fn refill(buf: &mut Vec<u32>, values: impl Iterator<Item = u32>) -> &mut Vec<u32> {
    buf.clear();
    buf.extend(values);
    buf
}

fn count_distinct<T: Ord>(v: &mut Vec<T>) -> usize {
    v.sort_unstable();
    v.dedup();
    v.len()
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// The `q`-quantile of `values` (reordered in place), 0 when empty.
fn quantile(values: &mut [u32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    // The value a sort would put at `i`, without sorting the rest.
    let (_, at, _) = values.select_nth_unstable(i.min(values.len() - 1));
    f64::from(*at)
}

/// Share of adjacent pairs of sorted distinct ids that are 1 or 2 apart.
fn sequential_walk(ids: &mut Vec<u32>) -> f64 {
    count_distinct(ids);
    if ids.len() < 3 {
        return 0.0;
    }
    let close = ids
        .windows(2)
        .filter(|w| (1..=2).contains(&w[1].wrapping_sub(w[0])))
        .count();
    close as f64 / (ids.len() - 1) as f64
}

/// Share of `values` (distinct, non-zero) not in `known`.
fn novelty(values: &[u32], known: &[u32]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|v| !known.contains(v)).count() as f64 / values.len() as f64
}

/// One token's calls in a window.
struct TokenUse {
    token: u32,
    distinct_ips: usize,
    /// IP changes between consecutive calls, in time order.
    switches: u32,
    distinct_agents: usize,
    last_use: i64,
}

/// Folds a run of one token's calls (in time order) into its [`TokenUse`].
fn token_use(calls: &[TokenCall], tmp: &mut Vec<u32>) -> Option<TokenUse> {
    let &(token, ..) = calls.first()?;
    let switches = calls.windows(2).filter(|w| w[0].2 != w[1].2).count() as u32;
    distinct_into(tmp, calls.iter().map(|c| c.2));
    let distinct_ips = tmp.len();
    distinct_into(tmp, calls.iter().map(|c| c.3));
    let distinct_agents = tmp.len();
    Some(TokenUse {
        token,
        distinct_ips,
        switches,
        distinct_agents,
        last_use: calls.last().map_or(0, |c| c.4),
    })
}

/// The first [`CONTEXT_CAP`](crate::CONTEXT_CAP) distinct hashes of one kind that a lookup knows, in time
/// order, each hash looked up once.
#[derive(Debug, Default)]
struct FirstKnown {
    /// Hashes already looked up.
    seen: Vec<u32>,
    /// The hash offered last: consecutive samples mostly repeat it, and comparing with it
    /// first spares the search through `seen`.
    last: u32,
}

impl FirstKnown {
    fn clear(&mut self) {
        self.seen.clear();
        self.last = 0;
    }

    /// Appends `lookup(h)` to `out` if `h` is non-zero, seen for the first time, known, and
    /// `out` has room.
    fn offer<T>(
        &mut self,
        h: u32,
        out: &mut ContextList<T>,
        lookup: impl FnOnce(u32) -> Option<T>,
    ) {
        if h == self.last || out.is_full() {
            return;
        }
        self.last = h;
        if h == 0 || self.seen.contains(&h) {
            return;
        }
        self.seen.push(h);
        if let Some(v) = lookup(h) {
            out.push(v);
        }
    }
}

/// Moves shorter than this are GeoIP noise, not travel.
const MIN_TRAVEL_KM: f64 = 100.0;

/// The fastest move between consecutive located requests, in km/h: from the profile's
/// last location (if it is older than the window) through the window's, in time order.
fn geo_velocity(state: &KeyState, w: &Window) -> f64 {
    let (last, last_ms) = state.profile.last_location;
    let mut previous = (last != 0).then_some((last, last_ms));
    let mut fastest: f64 = 0.0;
    for (ts, s) in w.timed().filter(|(_, s)| s.location != 0) {
        if let Some((at, when)) = previous.filter(|p| p.0 != s.location && p.1 <= ts) {
            let km = distance_km(unpack_location(at), unpack_location(s.location));
            if km >= MIN_TRAVEL_KM {
                let hours = ((ts - when) as f64 / HOUR_MS as f64).max(1.0 / 60.0);
                fastest = fastest.max(km / hours);
            }
        }
        previous = Some((s.location, ts));
    }
    fastest
}

/// Appends the calls per route in the window to `out` from its sorted `routes`; sampled
/// counts are scaled up for overflowed windows.
fn route_calls(w: &Window, routes: &[u32], out: &mut Vec<(u32, f64)>) {
    let scale = if routes.is_empty() {
        1.0
    } else {
        f64::from(w.counters.api) / routes.len() as f64
    };
    out.extend(
        routes
            .chunk_by(|a, b| a == b)
            .map(|run| (run[0], run.len() as f64 * scale)),
    );
}

impl FeatureExtractor {
    /// The row of `key` for the window ending at `end`, or `None` if it holds no events;
    /// its per-route call counts are appended to `scratch.route_calls`.
    pub(crate) fn row(
        &self,
        key: &Arc<str>,
        state: &KeyState,
        end: i64,
        scratch: &mut Scratch,
    ) -> Option<FeatureRow> {
        let start = end - self.window_ms;
        let w = Window::gather(state, start, end);
        (!w.is_empty()).then(|| self.compute(key, state, &w, start, end, scratch))
    }

    fn compute(
        &self,
        key: &Arc<str>,
        state: &KeyState,
        w: &Window,
        start: i64,
        end: i64,
        scratch: &mut Scratch,
    ) -> FeatureRow {
        let mut v = [0f64; FEATURE_COUNT];
        let c = &w.counters;
        let minutes = self.window_ms as f64 / 60_000.0;
        scratch.sets.fill(w);
        let tmp = &mut scratch.values;
        v[F::RequestsPerMin as usize] = f64::from(c.api) / minutes;
        self.volume_features(w, &scratch.sets, &mut v, tmp);
        v[F::Ratio4xx as usize] = ratio(c.status_4xx, c.api);
        v[F::Ratio401 as usize] = ratio(c.status_401, c.api);
        v[F::Ratio403 as usize] = ratio(c.status_403, c.api);
        v[F::Ratio404 as usize] = ratio(c.status_404, c.api);
        v[F::Ratio5xx as usize] = ratio(c.status_5xx, c.api);
        v[F::Count401403 as usize] = f64::from(c.status_401 + c.status_403);
        v[F::BytesOut as usize] = c.bytes_out as f64;
        v[F::BytesOutP95 as usize] = quantile(refill(tmp, w.api().map(|s| s.bytes_out)), 0.95);
        v[F::LatencyMeanMs as usize] = if c.api == 0 {
            0.0
        } else {
            c.latency_us as f64 / f64::from(c.api) / 1000.0
        };
        v[F::LatencyP95Ms as usize] =
            quantile(refill(tmp, w.api().map(|s| s.latency_us)), 0.95) / 1000.0;
        let slots = (self.window_ms / self.hop_ms) as usize * SLOTS;
        v[F::RateDispersion as usize] = w.dispersion(slots);
        self.history_features(state, w, end, &mut v, &scratch.sets, tmp);
        v[F::DistinctObjectIds1h as usize] =
            Self::hourly_objects(state, end, &scratch.sets, v[F::DistinctObjectIds as usize]);
        let first_call = scratch.route_calls.len();
        route_calls(w, &scratch.sets.routes, &mut scratch.route_calls);
        self.baseline_features(key, &scratch.route_calls[first_call..], &mut v);
        v[F::TransitionSurprise as usize] = self.transition_surprise(w, &mut scratch.surprises);
        self.token_features(state, w, &mut v, scratch);
        v[F::MaxIdentitiesPerIp as usize] = self.max_identities_per_ip(start, end, scratch);
        v[F::TokenRefreshes as usize] = f64::from(c.refreshes);
        v[F::LoginFailures as usize] = f64::from(c.login_failures);
        v[F::GeoVelocityKmh as usize] = geo_velocity(state, w);
        let mut values = [0f32; FEATURE_COUNT];
        for (out, x) in values.iter_mut().zip(v) {
            *out = if x.is_finite() { x as f32 } else { 0.0 };
        }
        FeatureRow {
            key: Arc::clone(key),
            window_start_ms: start,
            window_end_ms: end,
            values,
            context: self.context(w, scratch),
        }
    }

    fn volume_features(
        &self,
        w: &Window,
        sets: &Sets,
        v: &mut [f64; FEATURE_COUNT],
        tmp: &mut Vec<u32>,
    ) {
        v[F::DistinctEndpoints as usize] =
            w.distinct(sets.distinct_routes(), |s| s.route, |o| &o.endpoints);
        v[F::DistinctObjectIds as usize] =
            w.distinct(sets.objects.len(), |s| s.object, |o| &o.objects);
        v[F::DistinctIps as usize] = w.distinct(sets.ips.len(), |s| s.ip, |o| &o.ips);
        v[F::DistinctUserAgents as usize] =
            w.distinct(sets.agents.len(), |s| s.user_agent, |o| &o.user_agents);
        // Token-server samples carry no object: the window's objects are its API calls'.
        let per_type = sets
            .objects
            .chunk_by(|a, b| a >> 24 == b >> 24)
            .map(<[u32]>::len)
            .max()
            .unwrap_or(0) as f64;
        // An overflowed window's samples undercount; the total is an upper bound per type.
        v[F::MaxObjectsPerType as usize] = if w.overflowed {
            v[F::DistinctObjectIds as usize]
        } else {
            per_type
        };
        let walk = refill(tmp, w.api().map(|s| s.walk_id).filter(|i| *i != 0));
        v[F::SequentialIdWalk as usize] = sequential_walk(walk);
    }

    /// The window's objects joined with the ones its identity read in the hour before.
    fn hourly_objects(state: &KeyState, end: i64, sets: &Sets, in_window: f64) -> f64 {
        let Some(history) = state.profile.hourly_objects.as_deref() else {
            return in_window;
        };
        let mut sketch = history.since_previous_hour(end);
        if sketch.is_empty() {
            return in_window;
        }
        sets.objects
            .iter()
            .for_each(|o| sketch.insert_hash(spread32(*o)));
        // An overflowed window's samples undercount it: never report less than the window.
        sketch.estimate().max(in_window).round()
    }

    fn history_features(
        &self,
        state: &KeyState,
        w: &Window,
        end: i64,
        v: &mut [f64; FEATURE_COUNT],
        sets: &Sets,
        tmp: &mut Vec<u32>,
    ) {
        let p = &state.profile;
        if p.active_windows >= 3 {
            let requests = f64::from(w.counters.api);
            v[F::RequestsVsHistory as usize] =
                ((requests + 1.0) / (p.typical_requests + 1.0)).log2();
        }
        let total: u32 = p.hours.iter().map(|h| u32::from(*h)).sum();
        if total >= 50 {
            let hour = ((end - 1).div_euclid(HOUR_MS)).rem_euclid(24) as usize;
            let share = (f64::from(p.hours[hour]) + 0.5) / (f64::from(total) + 12.0);
            v[F::HourSurprise as usize] = (1.0 / (24.0 * share)).log2().max(0.0);
        }
        if p.has_history() {
            v[F::NewIpRatio as usize] = novelty(&sets.ips, &p.known_ips);
            distinct_into(tmp, w.samples().map(|s| s.net));
            v[F::NewNetworkRatio as usize] = novelty(tmp, &p.known_nets);
            v[F::NewUserAgentRatio as usize] = novelty(&sets.agents, &p.known_agents);
        }
    }

    fn baseline_features(
        &self,
        key: &str,
        route_calls: &[(u32, f64)],
        v: &mut [f64; FEATURE_COUNT],
    ) {
        v[F::RouteRateZ as usize] = route_calls
            .iter()
            .filter_map(|&(r, calls)| self.baselines.route_z(r, calls))
            .fold(0.0, f64::max);
        let Some([requests, objects, bytes, objects_1h]) = self.baselines.peer(peer_group(key))
        else {
            return;
        };
        let z = |h, x, floor| warm_z(h, x, floor).unwrap_or(0.0);
        v[F::RequestsPeerZ as usize] = z(requests, v[F::RequestsPerMin as usize], 1.0);
        v[F::ObjectsPeerZ as usize] = z(objects, v[F::DistinctObjectIds as usize], 1.0);
        v[F::BytesPeerZ as usize] = z(bytes, v[F::BytesOut as usize], 1024.0);
        v[F::ObjectsHourPeerZ as usize] = z(objects_1h, v[F::DistinctObjectIds1h as usize], 1.0);
    }

    fn transition_surprise(&self, w: &Window, cache: &mut HashMap<u64, f64>) -> f64 {
        if !self.markov.is_warm() {
            return 0.0;
        }
        let mut routes = w.api().map(|s| s.route);
        let Some(mut previous) = routes.next() else {
            return 0.0;
        };
        let (mut bits, mut n) = (0.0, 0u32);
        for route in routes {
            bits += *cache
                .entry(Markov::transition(previous, route))
                .or_insert_with(|| self.markov.surprise_bits(previous, route));
            n += 1;
            previous = route;
        }
        if n == 0 {
            0.0
        } else {
            bits / f64::from(n)
        }
    }

    fn token_features(
        &self,
        state: &KeyState,
        w: &Window,
        v: &mut [f64; FEATURE_COUNT],
        scratch: &mut Scratch,
    ) {
        let calls = &mut scratch.token_calls;
        calls.clear();
        calls.extend(
            w.timed()
                .filter(|(_, s)| s.is_api() && s.token != 0)
                .enumerate()
                .map(|(i, (ts, s))| (s.token, i as u32, s.ip, s.user_agent, ts)),
        );
        // By token, each token's calls staying in time order.
        calls.sort_unstable_by_key(|c| (c.0, c.1));
        let max = |f: F, x: f64, v: &mut [f64; FEATURE_COUNT]| v[f as usize] = v[f as usize].max(x);
        for run in calls.chunk_by(|a, b| a.0 == b.0) {
            let Some(u) = token_use(run, &mut scratch.values) else {
                continue;
            };
            max(F::MaxIpsPerToken, u.distinct_ips as f64, v);
            max(F::MaxIpSwitchesPerToken, f64::from(u.switches), v);
            max(F::MaxUserAgentsPerToken, u.distinct_agents as f64, v);
            let Some(t) = self.tokens.get(&u.token) else {
                continue;
            };
            if let Some(issued) = t.issued_ms.filter(|i| *i <= u.last_use) {
                max(F::TokenAgeMaxS, (u.last_use - issued) as f64 / 1000.0, v);
            }
            let since = t.issued_ms.unwrap_or(t.first_seen_ms).min(t.first_seen_ms);
            let revoked = t.revoked_ms.is_some_and(|r| r <= u.last_use);
            let logged_out = state
                .profile
                .logouts
                .iter()
                .any(|&l| since <= l && l <= u.last_use);
            if revoked || logged_out {
                v[F::TokenUseAfterLogout as usize] += 1.0;
            }
        }
    }

    fn max_identities_per_ip(&self, start: i64, end: i64, scratch: &mut Scratch) -> f64 {
        let ids = &mut scratch.ids;
        scratch
            .sets
            .ips
            .iter()
            .take(IP_LOOKUPS)
            .filter_map(|ip| self.ips.get(ip))
            .map(|state| {
                let buckets = state
                    .buckets
                    .iter()
                    .filter(|b| b.start_ms >= start && b.start_ms < end);
                if buckets.clone().any(|b| b.overflow.is_some()) {
                    let mut hll = Hll::default();
                    for b in buckets {
                        match &b.overflow {
                            Some(h) => hll.merge(h),
                            None => b
                                .identities
                                .iter()
                                .for_each(|i| hll.insert_hash(spread32(*i))),
                        }
                    }
                    hll.estimate().round()
                } else {
                    let ids = refill(ids, buckets.flat_map(|b| b.identities.iter().copied()));
                    count_distinct(ids) as f64
                }
            })
            .fold(0.0, f64::max)
    }

    /// What the analyst sees: the first routes, IPs and tokens of the window in time order
    /// and its evidence request ids.
    fn context(&self, w: &Window, scratch: &mut Scratch) -> WindowContext {
        let [first_routes, first_ips, first_tokens] = &mut scratch.firsts;
        first_routes.clear();
        first_ips.clear();
        first_tokens.clear();
        let mut routes = ContextList::new();
        let mut client_ips = ContextList::new();
        let mut token_ids = ContextList::new();
        // One pass for the three lists: the window's samples are read once.
        for s in w.samples() {
            if s.is_api() {
                first_routes.offer(s.route, &mut routes, |r| self.routes.name(r).cloned());
            }
            first_ips.offer(s.ip, &mut client_ips, |ip| {
                self.ips.get(&ip).map(|s| s.addr)
            });
            first_tokens.offer(s.token, &mut token_ids, |t| {
                self.tokens.get(&t).map(|s| Arc::clone(&s.id))
            });
        }
        WindowContext {
            api_events: u64::from(w.counters.api),
            token_events: u64::from(w.counters.token_events),
            routes,
            client_ips,
            token_ids,
            request_ids: evidence(w),
        }
    }
}

/// The window's evidence request ids, lowest priority first, at most
/// [`CONTEXT_CAP`](crate::CONTEXT_CAP).
fn evidence(w: &Window) -> ContextList<Arc<str>> {
    // A window holds a few buckets of at most EVIDENCE_PER_BUCKET ids each: sorted on
    // the stack, by priority then id (so ties do not depend on bucket order).
    let mut order: SmallVec<[(u32, &Arc<str>); 16]> = w
        .buckets
        .clone()
        .flat_map(|b| b.evidence.iter().map(|(priority, id)| (*priority, id)))
        .collect();
    order.sort_unstable();
    let mut out = ContextList::<Arc<str>>::new();
    for (_, id) in order {
        if out.is_full() {
            break;
        }
        if !out.iter().any(|kept| same_id(kept, id)) {
            out.push(Arc::clone(id));
        }
    }
    out
}

/// `a == b`, checking first what tells most ids apart (length, first and last bytes)
/// before a full comparison: most checks are between different ids.
fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.first() == b.first() && a.last() == b.last() && a == b
}
