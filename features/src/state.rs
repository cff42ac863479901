//! Per-key state: hop-sized buckets of compact event samples plus exact counters, and the
//! long-term profile a key's evicted buckets are folded into.
//!
//! Memory is what decides how many keys one instance can follow, so a sample is 44 bytes of
//! hashes, a bucket keeps at most [`SAMPLES_PER_BUCKET`] of them (a bottom-k sample by a
//! hash of the event, so the kept set does not depend on arrival order) and switches its
//! distinct counts to HyperLogLog when it overflows.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::hash::spread32;
use crate::sketch::{Hll, SmallHll};

/// Exact samples a bucket keeps before distinct counts switch to HyperLogLog.
pub(crate) const SAMPLES_PER_BUCKET: usize = 48;
/// Request ids a bucket keeps as evidence for analysts.
pub(crate) const EVIDENCE_PER_BUCKET: usize = 2;
/// Sub-divisions of a hop for the dispersion (burstiness) feature.
pub(crate) const SLOTS: usize = 10;
const KNOWN_IPS: usize = 8;
const KNOWN_NETS: usize = 4;
const KNOWN_AGENTS: usize = 4;
/// A safety valve on logouts kept per subject; [`Profile::prune_logouts`] keeps far fewer.
const LOGOUTS_KEPT: usize = 64;

/// One event, as hashes. `route == 0` marks a token-server event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// Milliseconds since the bucket's start (the sort order within a bucket).
    pub offset_ms: u32,
    /// Bottom-k sampling key and tie-breaker: a hash of the whole event.
    pub priority: u32,
    pub route: u32,
    /// The innermost object id: its type's hash in the top 8 bits, the id's in the rest.
    pub object: u32,
    /// The innermost numeric id plus one (wrapping), 0 for none.
    pub walk_id: u32,
    pub ip: u32,
    pub net: u32,
    pub user_agent: u32,
    pub token: u32,
    pub bytes_out: u32,
    pub latency_us: u32,
    /// The client's location (see [`pack_location`]), 0 when the log has none.
    pub location: u32,
}

impl Sample {
    pub fn is_api(&self) -> bool {
        self.route != 0
    }
}

/// Degrees to a packed location: latitude and longitude in 1/150 degree steps (about
/// 740 m), 16 bits each; 0 is "unknown", so the exact point (0, 0) reads as unknown.
pub(crate) fn pack_location((lat, lon): (f32, f32)) -> u32 {
    let lat = (lat.clamp(-90.0, 90.0) * 150.0).round() as i16;
    let lon = (lon.clamp(-180.0, 180.0) * 150.0).round() as i16;
    (u32::from(lat as u16) << 16) | u32::from(lon as u16)
}

pub(crate) fn unpack_location(packed: u32) -> (f64, f64) {
    let lat = f64::from((packed >> 16) as u16 as i16) / 150.0;
    let lon = f64::from(packed as u16 as i16) / 150.0;
    (lat, lon)
}

/// Great-circle distance in km (haversine).
pub(crate) fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Exact counters of a bucket: every event counts here, sampled or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub api: u32,
    pub token_events: u32,
    pub status_4xx: u32,
    pub status_401: u32,
    pub status_403: u32,
    pub status_404: u32,
    pub status_5xx: u32,
    pub login_failures: u32,
    pub refreshes: u32,
    pub bytes_out: u64,
    pub latency_us: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.api += o.api;
        self.token_events += o.token_events;
        self.status_4xx += o.status_4xx;
        self.status_401 += o.status_401;
        self.status_403 += o.status_403;
        self.status_404 += o.status_404;
        self.status_5xx += o.status_5xx;
        self.login_failures += o.login_failures;
        self.refreshes += o.refreshes;
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.latency_us = self.latency_us.saturating_add(o.latency_us);
    }

    pub fn count_status(&mut self, status: u16) {
        match status {
            401 => self.status_401 += 1,
            403 => self.status_403 += 1,
            404 => self.status_404 += 1,
            _ => {}
        }
        if (400..500).contains(&status) {
            self.status_4xx += 1;
        } else if status >= 500 {
            self.status_5xx += 1;
        }
    }
}

/// Distinct counts of everything in an overflowed bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Overflow {
    pub endpoints: Hll,
    pub objects: Hll,
    pub ips: Hll,
    pub user_agents: Hll,
}

impl Overflow {
    fn insert(&mut self, s: &Sample) {
        if s.is_api() {
            self.endpoints.insert_hash(spread32(s.route));
        }
        if s.object != 0 {
            self.objects.insert_hash(spread32(s.object));
        }
        self.ips.insert_hash(spread32(s.ip));
        self.user_agents.insert_hash(spread32(s.user_agent));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub start_ms: i64,
    pub counters: Counters,
    /// API requests per tenth of the hop.
    pub slots: [u16; SLOTS],
    pub samples: Vec<Sample>,
    /// (priority, request id): the bottom-k by priority, so order does not matter. Inline:
    /// nearly every bucket keeps some, and a heap list per bucket cost an allocation.
    pub evidence: SmallVec<[(u32, Arc<str>); EVIDENCE_PER_BUCKET]>,
    pub overflow: Option<Box<Overflow>>,
}

impl Bucket {
    pub fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            counters: Counters::default(),
            slots: [0; SLOTS],
            samples: Vec::new(),
            evidence: SmallVec::new(),
            overflow: None,
        }
    }

    /// Adds `s`, keeping the samples in time order (the order rows read them in) and, once
    /// full, the [`SAMPLES_PER_BUCKET`] of lowest priority.
    pub fn add_sample(&mut self, s: Sample, hop_ms: i64) {
        if s.is_api() {
            let slot = (i64::from(s.offset_ms) * SLOTS as i64 / hop_ms.max(1)) as usize;
            if let Some(c) = self.slots.get_mut(slot.min(SLOTS - 1)) {
                *c = c.saturating_add(1);
            }
        }
        if self.samples.len() < SAMPLES_PER_BUCKET {
            insert_sorted(&mut self.samples, s);
            return;
        }
        let overflow = self.overflow.get_or_insert_with(|| {
            let mut o = Box::<Overflow>::default();
            self.samples.iter().for_each(|k| o.insert(k));
            o
        });
        overflow.insert(&s);
        // Bottom-k by priority (a hash of the event): a uniform sample of the bucket that
        // does not depend on arrival order.
        let by_priority = |x: &Sample| (x.priority, *x);
        let evict = self
            .samples
            .iter()
            .enumerate()
            .max_by_key(|(_, x)| by_priority(x))
            .filter(|(_, x)| by_priority(&s) < by_priority(x))
            .map(|(i, _)| i);
        if let Some(i) = evict {
            self.samples.remove(i);
            insert_sorted(&mut self.samples, s);
        }
    }

    pub fn add_evidence(&mut self, priority: u32, request_id: &str) {
        if request_id.is_empty() {
            return;
        }
        let worst = self.evidence.iter().map(|e| e.0).max();
        if self.evidence.len() < EVIDENCE_PER_BUCKET || worst.is_some_and(|w| priority < w) {
            keep_smallest(
                &mut self.evidence,
                (priority, request_id.into()),
                EVIDENCE_PER_BUCKET,
            );
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.samples.capacity() * std::mem::size_of::<Sample>()
            + self.evidence.iter().map(|e| e.1.len()).sum::<usize>()
            + self.overflow.as_ref().map_or(0, |o| {
                std::mem::size_of::<Overflow>()
                    + o.endpoints.heap_bytes()
                    + o.objects.heap_bytes()
                    + o.ips.heap_bytes()
                    + o.user_agents.heap_bytes()
            })
    }
}

/// The heap bytes of a list that outgrew its inline room.
fn spilled_bytes<A: smallvec::Array>(v: &SmallVec<A>) -> usize {
    if v.spilled() {
        v.capacity() * std::mem::size_of::<A::Item>()
    } else {
        0
    }
}

/// Inserts `s` at its place in sorted `samples` (most events arrive in order: at the end).
fn insert_sorted(samples: &mut Vec<Sample>, s: Sample) {
    if samples.len() == samples.capacity() {
        // Double, but never past the cap: a full bucket holds exactly its samples.
        let room = SAMPLES_PER_BUCKET.saturating_sub(samples.len()).max(1);
        samples.reserve_exact(samples.capacity().max(4).min(room));
    }
    if samples.last().is_none_or(|last| *last <= s) {
        samples.push(s);
    } else {
        let at = samples.partition_point(|x| *x <= s);
        samples.insert(at, s);
    }
}

/// Keeps the `cap` smallest values: pushes while there is room, else replaces the largest
/// if `v` is smaller. The result depends on the set of values offered, not their order.
fn keep_smallest<A: smallvec::Array>(v: &mut SmallVec<A>, x: A::Item, cap: usize)
where
    A::Item: Ord,
{
    if v.len() < cap {
        v.push(x);
        return;
    }
    let Some((i, largest)) = v.iter().enumerate().max_by(|a, b| a.1.cmp(b.1)) else {
        return;
    };
    if x < *largest {
        v[i] = x;
    }
}

/// What a key's past looks like, learned from buckets that left the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// Recently seen IPs, networks and user agents, most recent last, then zeros: inline
    /// arrays, as a few hundred bytes per key decide how many keys fit.
    pub known_ips: [u32; KNOWN_IPS],
    pub known_nets: [u32; KNOWN_NETS],
    pub known_agents: [u32; KNOWN_AGENTS],
    /// Events per hour of day (UTC).
    pub hours: [u16; 24],
    pub folded_buckets: u32,
    /// Exponentially weighted requests per active window, and how many windows fed it.
    pub typical_requests: f64,
    pub active_windows: u32,
    /// The last route called, to chain transitions across buckets.
    pub last_route: u32,
    /// The newest located request folded in: (packed location, time).
    pub last_location: (u32, i64),
    /// Logout times of the subject that windows still to come may need (sorted).
    pub logouts: Vec<i64>,
    /// Distinct objects read in the last two clock hours; boxed and only for keys that
    /// read objects at all.
    pub hourly_objects: Option<Box<HourlyObjects>>,
}

pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Distinct object ids read in the newest clock hour (UTC) folded in and in the hour
/// before it: a reach of one to two hours beyond the window, in 72 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HourlyObjects {
    /// The hour (event time / 1 h) `current` counts.
    pub hour: i64,
    pub current: SmallHll,
    pub previous: SmallHll,
}

impl HourlyObjects {
    /// Counts `object` read at `ts_ms`. Buckets fold in time order, so hours only move on.
    fn learn(&mut self, object: u32, ts_ms: i64) {
        let hour = ts_ms.div_euclid(HOUR_MS);
        if hour > self.hour {
            self.previous = if hour == self.hour + 1 {
                self.current
            } else {
                SmallHll::default()
            };
            self.current = SmallHll::default();
            self.hour = hour;
        }
        self.current.insert_hash(spread32(object));
    }

    /// What a row of a window ending at `end_ms` adds from history: the objects read since
    /// the start of the clock hour before the one `end_ms` falls in.
    pub fn since_previous_hour(&self, end_ms: i64) -> SmallHll {
        let from = (end_ms - 1).div_euclid(HOUR_MS) - 1;
        let mut sketch = SmallHll::default();
        if self.hour >= from {
            sketch.merge(&self.current);
        }
        // `previous` counts the hour before `self.hour`.
        if self.hour > from {
            sketch.merge(&self.previous);
        }
        sketch
    }
}

impl Profile {
    pub fn learn(&mut self, s: &Sample, ts_ms: i64) {
        touch(&mut self.known_ips, s.ip);
        touch(&mut self.known_nets, s.net);
        touch(&mut self.known_agents, s.user_agent);
        // Buckets fold in time order: the last located sample is the newest.
        if s.location != 0 {
            self.last_location = (s.location, ts_ms);
        }
        if s.object != 0 {
            self.hourly_objects
                .get_or_insert_with(Box::default)
                .learn(s.object, ts_ms);
        }
        let hour = (ts_ms.div_euclid(HOUR_MS)).rem_euclid(24) as usize;
        if self.hours[hour] == u16::MAX {
            self.hours.iter_mut().for_each(|h| *h /= 2);
        }
        self.hours[hour] += 1;
    }

    pub fn has_history(&self) -> bool {
        self.folded_buckets > 0
    }

    pub fn note_logout(&mut self, ts_ms: i64) {
        if let Err(i) = self.logouts.binary_search(&ts_ms) {
            self.logouts.insert(i, ts_ms);
        }
        if self.logouts.len() > LOGOUTS_KEPT {
            self.logouts.remove(0);
        }
    }

    /// Drops logouts no window from `cutoff` on needs: a token used at `q >= cutoff` was
    /// used after a logout iff the latest logout at or before `q` is at or after the
    /// token's first sighting, so all logouts from `cutoff` on and the last one before it
    /// suffice. The rule depends on `cutoff` only, so replays prune identically.
    pub fn prune_logouts(&mut self, cutoff: i64) {
        let before = self.logouts.partition_point(|&l| l < cutoff);
        if before > 1 {
            self.logouts.drain(..before - 1);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.logouts.capacity() * 8
            + self
                .hourly_objects
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<HourlyObjects>())
    }
}

/// Moves `v` to the back of a recency list, dropping the oldest beyond `cap`.
fn touch<const N: usize>(list: &mut [u32; N], v: u32) {
    if v == 0 {
        return;
    }
    let len = list.iter().position(|x| *x == 0).unwrap_or(N);
    let (Some(filled), Some(last)) = (list.get(..len), len.checked_sub(1)) else {
        list[0] = v;
        return;
    };
    match filled.iter().position(|x| *x == v) {
        // Not seen and room left: append.
        None if len < N => list[len] = v,
        // Seen (move it to the back) or full (drop the oldest).
        found => {
            let from = found.unwrap_or(0);
            list.copy_within(from + 1..len, from);
            list[last] = v;
        }
    }
}

/// The filled part of a recency list.
#[cfg(test)]
fn recent(list: &[u32]) -> &[u32] {
    let len = list.iter().position(|x| *x == 0).unwrap_or(list.len());
    &list[..len]
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyState {
    /// Ordered by `start_ms`, no duplicates.
    pub buckets: VecDeque<Bucket>,
    /// Boxed: it is read once per row, and keeping it out of line makes the identity
    /// table's slots (and their slack) small.
    pub profile: Box<Profile>,
    pub last_seen_ms: i64,
}

impl KeyState {
    pub fn has_bucket(&self, start_ms: i64) -> bool {
        self.buckets.back().is_some_and(|b| b.start_ms == start_ms)
            || self
                .buckets
                .binary_search_by_key(&start_ms, |b| b.start_ms)
                .is_ok()
    }

    pub fn bucket_mut(&mut self, start_ms: i64) -> &mut Bucket {
        let idx = match self.buckets.back() {
            Some(b) if b.start_ms == start_ms => self.buckets.len() - 1,
            Some(b) if b.start_ms > start_ms => {
                match self.buckets.binary_search_by_key(&start_ms, |b| b.start_ms) {
                    Ok(i) => i,
                    Err(i) => {
                        self.buckets.insert(i, Bucket::new(start_ms));
                        i
                    }
                }
            }
            _ => {
                self.buckets.push_back(Bucket::new(start_ms));
                self.buckets.len() - 1
            }
        };
        &mut self.buckets[idx]
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.buckets.iter().map(Bucket::heap_bytes).sum::<usize>()
            + std::mem::size_of::<Profile>()
            + self.profile.heap_bytes()
    }
}

/// Distinct identities seen from one IP in one hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IpBucket {
    pub start_ms: i64,
    /// Inline up to four (most IPs serve one identity): no allocation per IP and hop.
    pub identities: SmallVec<[u32; 4]>,
    pub overflow: Option<Box<Hll>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IpState {
    pub addr: IpAddr,
    pub buckets: VecDeque<IpBucket>,
    pub last_seen_ms: i64,
}

impl IpState {
    pub fn new(addr: IpAddr) -> Self {
        Self {
            addr,
            buckets: VecDeque::new(),
            last_seen_ms: i64::MIN,
        }
    }

    /// Notes `identity` in the bucket at `start_ms`; true when that bucket is new.
    pub fn add_identity(&mut self, start_ms: i64, identity: u32) -> bool {
        let (idx, created) = match self.buckets.binary_search_by_key(&start_ms, |b| b.start_ms) {
            Ok(i) => (i, false),
            Err(i) => {
                self.buckets.insert(
                    i,
                    IpBucket {
                        start_ms,
                        identities: SmallVec::new(),
                        overflow: None,
                    },
                );
                (i, true)
            }
        };
        let b = &mut self.buckets[idx];
        if b.identities.contains(&identity) {
            return created;
        }
        if b.identities.len() < SAMPLES_PER_BUCKET {
            b.identities.push(identity);
            return created;
        }
        let hll = b.overflow.get_or_insert_with(|| {
            let mut h = Box::<Hll>::default();
            for i in &b.identities {
                h.insert_hash(crate::hash::spread32(*i));
            }
            h
        });
        hll.insert_hash(crate::hash::spread32(identity));
        created
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<IpBucket>()
            + self
                .buckets
                .iter()
                .map(|b| {
                    spilled_bytes(&b.identities)
                        + b.overflow.as_ref().map_or(0, |h| h.heap_bytes() + 24)
                })
                .sum::<usize>()
    }
}

/// What the token server said about one token (joined on its `jti`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenState {
    pub id: Arc<str>,
    pub issued_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// The earliest use or issuance seen.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

impl TokenState {
    pub fn new(id: &str, ts_ms: i64) -> Self {
        Self {
            id: id.into(),
            issued_ms: None,
            revoked_ms: None,
            first_seen_ms: ts_ms,
            last_seen_ms: ts_ms,
        }
    }

    pub fn touch(&mut self, ts_ms: i64) {
        self.first_seen_ms = self.first_seen_ms.min(ts_ms);
        self.last_seen_ms = self.last_seen_ms.max(ts_ms);
    }

    pub fn heap_bytes(&self) -> usize {
        self.id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(priority: u32, ip: u32) -> Sample {
        Sample {
            offset_ms: 0,
            priority,
            route: 1,
            object: 0,
            walk_id: 0,
            ip,
            net: 1,
            user_agent: 1,
            token: 0,
            bytes_out: 0,
            latency_us: 0,
            location: 0,
        }
    }

    #[test]
    fn a_full_bucket_keeps_the_same_samples_whatever_the_order() {
        let events: Vec<Sample> = (0..200u32)
            .map(|i| Sample {
                offset_ms: i * 37 % 10_000,
                ..sample(i.wrapping_mul(2_654_435_761), i)
            })
            .collect();
        let mut forward = Bucket::new(0);
        let mut backward = Bucket::new(0);
        events.iter().for_each(|s| forward.add_sample(*s, 10_000));
        events
            .iter()
            .rev()
            .for_each(|s| backward.add_sample(*s, 10_000));
        assert!(forward.samples.is_sorted(), "kept in time order");
        assert_eq!(forward.samples, backward.samples);
        assert_eq!(forward.samples.len(), SAMPLES_PER_BUCKET);
        // The kept ones are the lowest priorities, whatever their times.
        let mut lowest = events.clone();
        lowest.sort_by_key(|s| s.priority);
        lowest.truncate(SAMPLES_PER_BUCKET);
        lowest.sort_unstable();
        assert_eq!(forward.samples, lowest);
        assert_eq!(
            forward.samples.capacity(),
            SAMPLES_PER_BUCKET,
            "no growth slack"
        );
        assert_eq!(forward.overflow, backward.overflow);
        let ips = forward
            .overflow
            .as_ref()
            .map(|o| o.ips.estimate())
            .unwrap_or_default();
        assert!((170.0..230.0).contains(&ips), "{ips}");
    }

    #[test]
    fn locations_pack_to_within_a_kilometre_and_distances_are_great_circle() {
        let paris = (48.8566, 2.3522);
        let sydney = (-33.8688, 151.2093);
        for p in [paris, sydney] {
            let (lat, lon) = unpack_location(pack_location((p.0 as f32, p.1 as f32)));
            assert!(distance_km((lat, lon), p) < 1.0, "{p:?} -> {lat},{lon}");
        }
        let d = distance_km(paris, sydney);
        assert!((16_900.0..17_000.0).contains(&d), "{d}");
        assert_eq!(distance_km(paris, paris), 0.0);
        assert_eq!(pack_location((0.0, 0.0)), 0, "null island reads as unknown");
    }

    #[test]
    fn recency_lists_are_capped() {
        let mut p = Profile::default();
        for ip in 1..=20 {
            p.learn(&sample(0, ip), 0);
        }
        assert_eq!(recent(&p.known_ips), (13..=20).collect::<Vec<_>>());
        p.learn(&sample(0, 13), 0);
        assert_eq!(recent(&p.known_ips), [14, 15, 16, 17, 18, 19, 20, 13]);
        p.learn(&sample(0, 17), 0);
        assert_eq!(recent(&p.known_ips), [14, 15, 16, 18, 19, 20, 13, 17]);
        let mut short = Profile::default();
        short.learn(&sample(0, 5), 0);
        short.learn(&sample(0, 6), 0);
        short.learn(&sample(0, 5), 0);
        assert_eq!(recent(&short.known_ips), [6, 5]);
        assert_eq!(p.hours[0], 22);
    }

    #[test]
    fn logouts_keep_what_later_windows_need() {
        let mut p = Profile::default();
        for t in (0..20).rev() {
            p.note_logout(t);
        }
        p.prune_logouts(15);
        assert_eq!(p.logouts, (14..20).collect::<Vec<_>>());
        p.prune_logouts(0);
        assert_eq!(p.logouts.len(), 6);
        for t in 100..200 {
            p.note_logout(t);
        }
        assert_eq!(p.logouts.len(), LOGOUTS_KEPT);
    }
}
