//! Computing one key's row for one window from its buckets and the state it joins with.

use std::collections::HashMap;
use std::sync::Arc;

use crate::extractor::{peer_group, FeatureExtractor, FeatureRow, WindowContext};
use crate::hash::spread32;
use crate::schema::{FeatureId as F, FEATURE_COUNT};
use crate::sketch::Hll;
use crate::state::{Bucket, Counters, KeyState, Sample, SLOTS};

/// How many routes, IPs, tokens and request ids a row keeps for the analyst.
const CONTEXT_CAP: usize = 8;
/// IPs of a row whose identities-per-IP are looked up.
const IP_LOOKUPS: usize = 16;

/// A row and what baselines learn from it once all rows of its window end exist.
#[derive(Debug)]
pub(crate) struct Computed {
    pub row: FeatureRow,
    /// (route, calls by this identity in the window).
    pub route_calls: Vec<(u32, f64)>,
}

/// Buffers reused from row to row: most rows are small, and allocating for each dominated
/// the cost of emitting them.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    samples: Vec<(i64, Sample)>,
    values: Vec<u32>,
}

/// One window of one key, gathered from its buckets.
struct Window<'a> {
    buckets: std::collections::vec_deque::Iter<'a, Bucket>,
    counters: Counters,
    /// Samples with absolute times, sorted by (time, priority).
    samples: Vec<(i64, Sample)>,
    overflowed: bool,
}

impl<'a> Window<'a> {
    fn gather(state: &'a KeyState, start: i64, end: i64, mut samples: Vec<(i64, Sample)>) -> Self {
        let first = state.buckets.partition_point(|b| b.start_ms < start);
        let last = state.buckets.partition_point(|b| b.start_ms < end);
        let buckets = state.buckets.range(first..last);
        let mut counters = Counters::default();
        samples.clear();
        let mut overflowed = false;
        for b in buckets.clone() {
            counters.add(&b.counters);
            overflowed |= b.overflow.is_some();
            samples.extend(
                b.samples
                    .iter()
                    .map(|s| (b.start_ms + i64::from(s.offset_ms), *s)),
            );
        }
        samples.sort_unstable();
        Self {
            buckets,
            counters,
            samples,
            overflowed,
        }
    }

    fn is_empty(&self) -> bool {
        self.buckets.len() == 0
    }

    fn api(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().map(|(_, s)| s).filter(|s| s.is_api())
    }

    /// Distinct values of `field` (0 excluded): exact from samples, or HyperLogLog over the
    /// overflow sketches and the samples of the buckets that did not overflow.
    fn distinct(
        &self,
        field: impl Fn(&Sample) -> u32,
        sketch: impl Fn(&crate::state::Overflow) -> &Hll,
    ) -> f64 {
        if !self.overflowed {
            let mut v: Vec<u32> = self
                .samples
                .iter()
                .map(|(_, s)| field(s))
                .filter(|v| *v != 0)
                .collect();
            return count_distinct(&mut v) as f64;
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

/// The `q`-quantile of `values` (sorted in place), 0 when empty.
fn quantile(values: &mut [u32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    f64::from(values[i.min(values.len() - 1)])
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

/// Per token in the window: (distinct IPs, IP switches in time order, distinct agents,
/// last use).
#[derive(Default)]
struct TokenUse {
    ips: Vec<u32>,
    agents: Vec<u32>,
    last_ip: u32,
    switches: u32,
    last_use: i64,
}

fn token_uses(w: &Window) -> HashMap<u32, TokenUse> {
    let mut uses: HashMap<u32, TokenUse> = HashMap::new();
    for (ts, s) in w.samples.iter().filter(|(_, s)| s.is_api() && s.token != 0) {
        let u = uses.entry(s.token).or_default();
        if u.last_ip != 0 && u.last_ip != s.ip {
            u.switches += 1;
        }
        u.last_ip = s.ip;
        u.last_use = *ts;
        if !u.ips.contains(&s.ip) {
            u.ips.push(s.ip);
        }
        if !u.agents.contains(&s.user_agent) {
            u.agents.push(s.user_agent);
        }
    }
    uses
}

/// Share of `values` (distinct, non-zero) not in `known`.
fn novelty(values: &mut Vec<u32>, known: &[u32]) -> f64 {
    values.retain(|v| *v != 0);
    count_distinct(values);
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|v| !known.contains(v)).count() as f64 / values.len() as f64
}

impl FeatureExtractor {
    /// The row of `key` for the window ending at `end`, or `None` if it holds no events.
    pub(crate) fn row(
        &self,
        key: &str,
        state: &KeyState,
        end: i64,
        scratch: &mut Scratch,
    ) -> Option<Computed> {
        let start = end - self.window_ms;
        let w = Window::gather(state, start, end, std::mem::take(&mut scratch.samples));
        let computed =
            (!w.is_empty()).then(|| self.compute(key, state, &w, start, end, &mut scratch.values));
        scratch.samples = w.samples;
        computed
    }

    fn compute(
        &self,
        key: &str,
        state: &KeyState,
        w: &Window,
        start: i64,
        end: i64,
        tmp: &mut Vec<u32>,
    ) -> Computed {
        let mut v = [0f64; FEATURE_COUNT];
        let c = &w.counters;
        let minutes = self.window_ms as f64 / 60_000.0;
        v[F::RequestsPerMin as usize] = f64::from(c.api) / minutes;
        self.volume_features(w, &mut v, tmp);
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
        self.history_features(state, w, end, &mut v, tmp);
        let route_calls = self.route_calls(w, tmp);
        self.baseline_features(key, &route_calls, &mut v);
        v[F::TransitionSurprise as usize] = self.transition_surprise(w);
        self.token_features(state, w, &mut v);
        v[F::MaxIdentitiesPerIp as usize] = self.max_identities_per_ip(w, start, end, tmp);
        v[F::TokenRefreshes as usize] = f64::from(c.refreshes);
        v[F::LoginFailures as usize] = f64::from(c.login_failures);
        let mut values = [0f32; FEATURE_COUNT];
        for (out, x) in values.iter_mut().zip(v) {
            *out = if x.is_finite() { x as f32 } else { 0.0 };
        }
        Computed {
            row: FeatureRow {
                key: key.to_owned(),
                window_start_ms: start,
                window_end_ms: end,
                values,
                context: self.context(w),
            },
            route_calls,
        }
    }

    fn volume_features(&self, w: &Window, v: &mut [f64; FEATURE_COUNT], tmp: &mut Vec<u32>) {
        v[F::DistinctEndpoints as usize] = w.distinct(|s| s.route, |o| &o.endpoints);
        v[F::DistinctObjectIds as usize] = w.distinct(|s| s.object, |o| &o.objects);
        v[F::DistinctIps as usize] = w.distinct(|s| s.ip, |o| &o.ips);
        v[F::DistinctUserAgents as usize] = w.distinct(|s| s.user_agent, |o| &o.user_agents);
        let objects = refill(tmp, w.api().map(|s| s.object).filter(|o| *o != 0));
        count_distinct(objects);
        let per_type = objects
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

    fn history_features(
        &self,
        state: &KeyState,
        w: &Window,
        end: i64,
        v: &mut [f64; FEATURE_COUNT],
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
            let hour = ((end - 1).div_euclid(3_600_000)).rem_euclid(24) as usize;
            let share = (f64::from(p.hours[hour]) + 0.5) / (f64::from(total) + 12.0);
            v[F::HourSurprise as usize] = (1.0 / (24.0 * share)).log2().max(0.0);
        }
        if p.has_history() {
            let all = || w.samples.iter().map(|(_, s)| s);
            v[F::NewIpRatio as usize] = novelty(refill(tmp, all().map(|s| s.ip)), &p.known_ips);
            v[F::NewNetworkRatio as usize] =
                novelty(refill(tmp, all().map(|s| s.net)), &p.known_nets);
            v[F::NewUserAgentRatio as usize] =
                novelty(refill(tmp, all().map(|s| s.user_agent)), &p.known_agents);
        }
    }

    /// Calls per route in the window; sampled counts are scaled up for overflowed windows.
    fn route_calls(&self, w: &Window, tmp: &mut Vec<u32>) -> Vec<(u32, f64)> {
        let routes = refill(tmp, w.api().map(|s| s.route));
        routes.sort_unstable();
        let scale = if routes.is_empty() {
            1.0
        } else {
            f64::from(w.counters.api) / routes.len() as f64
        };
        routes
            .chunk_by(|a, b| a == b)
            .map(|run| (run[0], run.len() as f64 * scale))
            .collect()
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
        let group = peer_group(key);
        let z = |which, x, floor| self.baselines.peer_z(group, which, x, floor).unwrap_or(0.0);
        v[F::RequestsPeerZ as usize] = z(0, v[F::RequestsPerMin as usize], 1.0);
        v[F::ObjectsPeerZ as usize] = z(1, v[F::DistinctObjectIds as usize], 1.0);
        v[F::BytesPeerZ as usize] = z(2, v[F::BytesOut as usize], 1024.0);
    }

    fn transition_surprise(&self, w: &Window) -> f64 {
        let mut routes = w.api().map(|s| s.route);
        let Some(mut previous) = routes.next() else {
            return 0.0;
        };
        let (mut bits, mut n) = (0.0, 0u32);
        for route in routes {
            if let Some(b) = self.markov.surprise(previous, route) {
                bits += b;
                n += 1;
            }
            previous = route;
        }
        if n == 0 {
            0.0
        } else {
            bits / f64::from(n)
        }
    }

    fn token_features(&self, state: &KeyState, w: &Window, v: &mut [f64; FEATURE_COUNT]) {
        let uses = token_uses(w);
        let mut tokens: Vec<(&u32, &TokenUse)> = uses.iter().collect();
        tokens.sort_unstable_by_key(|(t, _)| **t);
        for (token, u) in tokens {
            let max =
                |f: F, x: f64, v: &mut [f64; FEATURE_COUNT]| v[f as usize] = v[f as usize].max(x);
            max(F::MaxIpsPerToken, u.ips.len() as f64, v);
            max(F::MaxIpSwitchesPerToken, f64::from(u.switches), v);
            max(F::MaxUserAgentsPerToken, u.agents.len() as f64, v);
            let Some(t) = self.tokens.get(token) else {
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

    fn max_identities_per_ip(&self, w: &Window, start: i64, end: i64, tmp: &mut Vec<u32>) -> f64 {
        let ips = refill(tmp, w.samples.iter().map(|(_, s)| s.ip));
        count_distinct(ips);
        ips.iter()
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
                    let mut ids: Vec<u32> =
                        buckets.flat_map(|b| b.identities.iter().copied()).collect();
                    count_distinct(&mut ids) as f64
                }
            })
            .fold(0.0, f64::max)
    }

    fn context(&self, w: &Window) -> WindowContext {
        let mut ctx = WindowContext {
            api_events: u64::from(w.counters.api),
            token_events: u64::from(w.counters.token_events),
            ..WindowContext::default()
        };
        for (_, s) in &w.samples {
            if let Some(route) = self.routes.name(s.route) {
                push_capped(&mut ctx.routes, route);
            }
            if let Some(ip) = self.ips.get(&s.ip) {
                push_capped(&mut ctx.client_ips, &ip.addr);
            }
            if let Some(t) = self.tokens.get(&s.token) {
                push_capped(&mut ctx.token_ids, &t.id);
            }
        }
        let mut evidence: Vec<&(u32, Arc<str>)> =
            w.buckets.clone().flat_map(|b| &b.evidence).collect();
        evidence.sort_unstable();
        for (_, id) in evidence {
            push_capped(&mut ctx.request_ids, id);
        }
        ctx
    }
}

fn push_capped<T: PartialEq + Clone>(list: &mut Vec<T>, v: &T) {
    if list.len() < CONTEXT_CAP && !list.contains(v) {
        list.push(v.clone());
    }
}
