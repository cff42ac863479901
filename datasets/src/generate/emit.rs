//! Emitting events in time order with bounded memory.
//!
//! Actors (users, clients, attackers) run in the order of their next wake-up time. A step
//! started at `now` only emits events at or after `now`, so once every actor's next
//! wake-up lies past a second, no event of that second can still come: the second is
//! sorted (stably, so equal times keep their emission order) and released. Events wait in
//! a ring of one-second buckets (a far-future event waits in an overflow map), so memory
//! holds only what is still in flight: the sessions under way, never the whole dataset.
//! Events wait in a slab; the buckets hold their times and slots, so sorting and growing
//! a bucket moves 16-byte entries, not 400-byte records, and no event costs an extra
//! allocation.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use outrider_ingest::{ApiEvent, Event, EventTime, Identity, TokenEvent, TokenEventKind};
use rand::Rng;

use super::catalog::{error_body, Call};
use super::net::{network_of, Network};
use super::rng::lognormal;
use super::LabelledEvent;

/// Seconds held in the ring before events go to the overflow map.
const RING_SECS: i64 = 4096;

/// An event waiting in a bucket: its time, its emission order and its slot in the slab.
/// Sorting on (time, order) needs no stable sort, hence no scratch allocation.
type Entry = (i64, u64, u32);

/// Events not yet released, bucketed by second.
#[derive(Debug)]
pub(crate) struct Reorder {
    /// The first second not yet released.
    base: i64,
    ring: Vec<Vec<Entry>>,
    overflow: BTreeMap<i64, Vec<Entry>>,
    /// Events in the ring (not the overflow).
    in_ring: usize,
    /// Events in the overflow.
    in_overflow: usize,
    slab: Vec<Option<LabelledEvent>>,
    free: Vec<u32>,
    /// Emission order.
    seq: u64,
}

impl Reorder {
    pub fn new(start_ms: i64) -> Self {
        Self {
            base: start_ms.div_euclid(1000),
            ring: (0..RING_SECS).map(|_| Vec::new()).collect(),
            overflow: BTreeMap::new(),
            in_ring: 0,
            in_overflow: 0,
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }

    fn slot(sec: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..RING_SECS.
        usize::try_from(sec.rem_euclid(RING_SECS)).unwrap_or(0)
    }

    pub fn push(&mut self, event: LabelledEvent) {
        let ts = event.event.ts().millis();
        let index = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(event);
                i
            }
            None => {
                self.slab.push(Some(event));
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let entry = (ts, self.seq, index);
        self.seq += 1;
        // Never before what was released: the actors' contract makes this a no-op.
        let sec = ts.div_euclid(1000).max(self.base);
        if sec - self.base < RING_SECS {
            self.ring[Self::slot(sec)].push(entry);
            self.in_ring += 1;
        } else {
            self.overflow.entry(sec).or_default().push(entry);
            self.in_overflow += 1;
        }
    }

    /// Events still held.
    pub fn len(&self) -> usize {
        self.in_ring + self.in_overflow
    }

    /// The event in a released slot (each is taken once).
    pub fn take(&mut self, index: u32) -> Option<LabelledEvent> {
        let e = self.slab.get_mut(index as usize)?.take();
        if e.is_some() {
            self.free.push(index);
        }
        e
    }

    /// Releases, in time order, the slots of every event of the seconds that end at or
    /// before `safe_ms`.
    pub fn release_before(&mut self, safe_ms: i64, out: &mut VecDeque<u32>) {
        let last = safe_ms.div_euclid(1000);
        while self.base < last {
            if self.in_ring == 0 {
                // Nothing in the ring: jump to the next overflow second (or the bound).
                let next = self.overflow.keys().next().copied().unwrap_or(last);
                self.base = self.base.max(next.min(last));
                self.refill();
                if self.in_ring == 0 {
                    break;
                }
                continue;
            }
            let bucket = &mut self.ring[Self::slot(self.base)];
            if !bucket.is_empty() {
                // Taken, not drained: a busy second's capacity is not kept for a lap of
                // the ring in every slot. Equal times keep their emission order.
                let mut entries = std::mem::take(bucket);
                entries.sort_unstable_by_key(|&(ts, seq, _)| (ts, seq));
                self.in_ring -= entries.len();
                out.extend(entries.iter().map(|&(_, _, i)| i));
            }
            self.base += 1;
            self.refill();
        }
    }

    /// Moves overflow seconds that now fit into the ring.
    fn refill(&mut self) {
        while let Some(entry) = self.overflow.first_entry() {
            let sec = *entry.key();
            if sec - self.base >= RING_SECS {
                break;
            }
            let entries = entry.remove();
            let sec = sec.max(self.base);
            self.in_ring += entries.len();
            self.in_overflow -= entries.len();
            self.ring[Self::slot(sec)].extend(entries);
        }
    }
}

/// What a step writes to: gateway and token-server records, labelled, within the dataset's
/// duration.
#[derive(Debug)]
pub(crate) struct Emitter {
    /// When the running step started; nothing is emitted before it.
    pub now: i64,
    start_ms: i64,
    end_ms: i64,
    pub buffer: Reorder,
}

/// One token-server record to emit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRecord<'a> {
    pub kind: TokenEventKind,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub grant_type: Option<&'a str>,
    pub token_id: Option<&'a str>,
}

impl Emitter {
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        Self {
            now: start_ms,
            start_ms,
            end_ms,
            buffer: Reorder::new(start_ms),
        }
    }

    /// Whether `ts` lies in the dataset.
    pub fn in_range(&self, ts: i64) -> bool {
        ts >= self.start_ms && ts < self.end_ms
    }

    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    fn push(&mut self, ts: i64, event: Event, campaign: Option<u32>) {
        debug_assert!(
            ts >= self.now,
            "event at {ts} before its step at {}",
            self.now
        );
        if self.in_range(ts) {
            self.buffer.push(LabelledEvent { event, campaign });
        }
    }

    /// Emits one gateway record; returns the time the response completed. Records outside
    /// the dataset's duration are dropped (the caller's timeline goes on).
    #[allow(clippy::too_many_arguments)]
    pub fn api(
        &mut self,
        rng: &mut impl Rng,
        ts: i64,
        call: Call,
        ip: IpAddr,
        user_agent: &str,
        identity: &Identity,
        campaign: Option<u32>,
    ) -> i64 {
        let ts = ts.max(self.now);
        let e = call.endpoint;
        let ok = (200..300).contains(&call.status);
        let (lat_median, lat_sigma) = e.latency;
        let latency = if ok {
            lognormal(rng, lat_median, lat_sigma)
        } else if call.status >= 500 {
            lognormal(rng, lat_median * 3.0, lat_sigma)
        } else {
            lognormal(rng, lat_median * 0.6, lat_sigma)
        }
        .clamp(2.0, 60_000.0);
        let (body_median, body_sigma) = if ok { e.body } else { error_body(call.status) };
        let factor = if ok { call.size_factor } else { 1.0 };
        let bytes_out = lognormal(rng, body_median * factor, body_sigma).round() as u64;
        let (in_median, in_sigma) = e.request;
        let bytes_in = lognormal(rng, in_median, in_sigma).round() as u64;
        // Big responses take longer to send.
        let latency = latency + bytes_out as f64 / 50_000.0;
        if self.in_range(ts) {
            let route = if call.raw_route {
                outrider_ingest::route::template(&call.path)
            } else {
                e.route.to_owned()
            };
            self.push(
                ts,
                Event::Api(ApiEvent {
                    ts: EventTime(ts),
                    request_id: String::new(),
                    route,
                    method: e.method.to_owned(),
                    path: call.path,
                    status: call.status,
                    latency_ms: (latency * 10.0).round() as f32 / 10.0,
                    bytes_in,
                    bytes_out,
                    client_ip: ip,
                    user_agent: user_agent.to_owned(),
                    identity: identity.clone(),
                    origin: network_of(ip).map(Network::origin).unwrap_or_default(),
                }),
                campaign,
            );
        }
        ts + latency.round() as i64
    }

    pub fn token(
        &mut self,
        ts: i64,
        record: TokenRecord<'_>,
        ip: IpAddr,
        user_agent: &str,
        campaign: Option<u32>,
    ) {
        let ts = ts.max(self.now);
        if !self.in_range(ts) {
            return;
        }
        self.push(
            ts,
            Event::Token(TokenEvent {
                ts: EventTime(ts),
                event: record.kind,
                subject: record.subject.map(str::to_owned),
                client_id: record.client_id.map(str::to_owned),
                grant_type: record.grant_type.map(str::to_owned),
                token_id: record.token_id.map(str::to_owned),
                client_ip: ip,
                user_agent: user_agent.to_owned(),
            }),
            campaign,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::catalog::{Call, ACCOUNTS};
    use crate::generate::rng::stream;

    fn ev(ts: i64, tag: u32) -> LabelledEvent {
        LabelledEvent {
            event: Event::Token(TokenEvent {
                ts: EventTime(ts),
                event: TokenEventKind::Logout,
                subject: None,
                client_id: None,
                grant_type: None,
                token_id: None,
                client_ip: "192.0.2.1".parse().unwrap(),
                user_agent: String::new(),
            }),
            campaign: Some(tag),
        }
    }

    fn tags(r: &mut Reorder, out: &VecDeque<u32>) -> Vec<u32> {
        out.iter()
            .filter_map(|&i| r.slab[i as usize].as_ref()?.campaign)
            .collect()
    }

    #[test]
    fn releases_whole_seconds_in_time_order_keeping_ties_in_emission_order() {
        let mut r = Reorder::new(0);
        let mut out = VecDeque::new();
        for (ts, tag) in [(1500, 1), (200, 2), (1500, 3), (999, 4), (2000, 5)] {
            r.push(ev(ts, tag));
        }
        r.release_before(1_999, &mut out);
        assert_eq!(
            tags(&mut r, &out),
            [2, 4],
            "only the first second is complete"
        );
        r.release_before(3_000, &mut out);
        assert_eq!(tags(&mut r, &out), [2, 4, 1, 3, 5]);
        assert_eq!(r.len(), 0);
        // Slots are reused once taken.
        let first = out[0];
        assert_eq!(r.take(first).map(|e| e.campaign), Some(Some(2)));
        assert!(r.take(first).is_none(), "a slot is taken once");
        r.push(ev(4_000, 6));
        assert_eq!(r.slab.len(), 5);
    }

    #[test]
    fn far_future_events_wait_in_the_overflow_and_come_out_in_order() {
        let mut r = Reorder::new(0);
        let far = (RING_SECS * 3) * 1000 + 17;
        r.push(ev(far, 1));
        r.push(ev(far - 1, 2));
        r.push(ev(5_000, 3));
        r.push(ev(RING_SECS * 1000 + 5, 4));
        assert_eq!(r.len(), 4);
        let mut out = VecDeque::new();
        r.release_before(far + 1_000, &mut out);
        assert_eq!(tags(&mut r, &out), [3, 4, 2, 1]);
        // Late pushes are clamped to what is not yet released, never lost.
        r.push(ev(10, 5));
        r.release_before(i64::MAX / 2, &mut out);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn events_outside_the_duration_are_dropped_but_time_goes_on() {
        let mut e = Emitter::new(1_000, 2_000);
        let mut rng = stream(1, 99, 0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let id = Identity::default();
        let done = e.api(
            &mut rng,
            2_500,
            Call::fixed(&ACCOUNTS, 200),
            ip,
            "ua",
            &id,
            None,
        );
        assert!(done > 2_500);
        assert_eq!(e.buffer.len(), 0);
        e.api(
            &mut rng,
            1_500,
            Call::fixed(&ACCOUNTS, 404),
            ip,
            "ua",
            &id,
            Some(1),
        );
        assert_eq!(e.buffer.len(), 1);
    }
}
