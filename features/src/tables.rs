//! State shared by all keys and learned from the traffic: the route-transition Markov model,
//! per-route baselines of per-identity call counts, and peer-group baselines. All are bounded
//! and updated in a fixed order (window end, then key) so replays reproduce them exactly.

use hashbrown::hash_map::RawEntryMut;
use hashbrown::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::sketch::LogHistogram;

const MAX_ROUTES: usize = 65_536;
const MAX_TRANSITIONS: usize = 262_144;
const MAX_GROUPS: usize = 64;
/// Observations a baseline needs before its z-scores are used.
pub(crate) const BASELINE_WARMUP: u64 = 30;
/// Transitions the Markov model needs before its surprise is used.
const MARKOV_WARMUP: u64 = 200;

/// First-order Markov model of route-to-route transitions across all identities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Markov {
    pairs: HashMap<u64, u32>,
    from: HashMap<u32, u32>,
    total: u64,
}

impl Markov {
    /// The key of the transition `a -> b`.
    pub fn transition(a: u32, b: u32) -> u64 {
        (u64::from(a) << 32) | u64::from(b)
    }

    pub fn learn(&mut self, a: u32, b: u32) {
        let key = Self::transition(a, b);
        if let Some(c) = self.pairs.get_mut(&key) {
            *c = c.saturating_add(1);
        } else if self.pairs.len() < MAX_TRANSITIONS {
            self.pairs.insert(key, 1);
        } else {
            return;
        }
        *self.from.entry(a).or_default() += 1;
        self.total += 1;
    }

    /// Whether the model has learnt enough for its surprise to be used.
    pub fn is_warm(&self) -> bool {
        self.total >= MARKOV_WARMUP
    }

    /// Surprise of `a -> b` in bits, with add-one smoothing over the known routes (used
    /// only once [`Self::is_warm`]).
    pub fn surprise_bits(&self, a: u32, b: u32) -> f64 {
        let pair = self
            .pairs
            .get(&Self::transition(a, b))
            .copied()
            .unwrap_or(0);
        let from = self.from.get(&a).copied().unwrap_or(0);
        let routes = self.from.len().max(2) as f64;
        -((f64::from(pair) + 1.0) / (f64::from(from) + routes)).log2()
    }

    pub fn heap_bytes(&self) -> usize {
        self.pairs.capacity() * 13 + self.from.capacity() * 9
    }
}

/// What peer groups keep a baseline of (see [`Baselines::peers`]).
pub(crate) const PEER_BASELINES: usize = 4;

/// Baselines that rows are compared against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baselines {
    /// Per route: calls per identity per window.
    pub routes: HashMap<u32, LogHistogram>,
    /// Per peer group: requests, distinct objects, bytes out and distinct objects over
    /// the hour, per window.
    pub peers: HashMap<String, [LogHistogram; PEER_BASELINES]>,
}

impl Baselines {
    pub fn learn_route(&mut self, route: u32, calls: f64) {
        if let Some(h) = self.routes.get_mut(&route) {
            h.insert(calls);
        } else if self.routes.len() < MAX_ROUTES {
            let mut h = LogHistogram::default();
            h.insert(calls);
            self.routes.insert(route, h);
        }
    }

    pub fn learn_peer(&mut self, group: &str, values: [f64; PEER_BASELINES]) {
        let full = self.peers.len() >= MAX_GROUPS;
        let histograms = match self.peers.raw_entry_mut().from_key(group) {
            RawEntryMut::Occupied(o) => o.into_mut(),
            RawEntryMut::Vacant(_) if full => return,
            RawEntryMut::Vacant(v) => v.insert(group.to_owned(), Default::default()).1,
        };
        for (h, v) in histograms.iter_mut().zip(values) {
            h.insert(v);
        }
    }

    /// Recomputes the statistics that learning invalidated (once per window end, rather
    /// than once per row that reads them).
    pub fn refresh(&mut self) {
        self.routes.values_mut().for_each(LogHistogram::refresh);
        self.peers
            .values_mut()
            .flat_map(|h| h.iter_mut())
            .for_each(LogHistogram::refresh);
    }

    pub fn route_z(&self, route: u32, calls: f64) -> Option<f64> {
        warm_z(self.routes.get(&route)?, calls, 1.0)
    }

    /// The baselines of one peer group (requests, distinct objects, bytes out, distinct
    /// objects over the hour).
    pub fn peer(&self, group: &str) -> Option<&[LogHistogram; PEER_BASELINES]> {
        self.peers.get(group)
    }

    pub fn heap_bytes(&self) -> usize {
        self.routes
            .values()
            .map(LogHistogram::heap_bytes)
            .sum::<usize>()
            + self.routes.capacity() * (4 + std::mem::size_of::<LogHistogram>())
            + self
                .peers
                .values()
                .flat_map(|h| h.iter().map(LogHistogram::heap_bytes))
                .sum::<usize>()
    }
}

/// How far `x` lies from `h`'s median in robust units, once `h` has warmed up.
pub(crate) fn warm_z(h: &LogHistogram, x: f64, floor: f64) -> Option<f64> {
    (h.count() >= BASELINE_WARMUP).then(|| h.robust_z(x, floor))?
}

/// Route templates by hash, so samples hold 4 bytes instead of a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteNames {
    names: HashMap<u32, Arc<str>>,
}

impl RouteNames {
    pub fn intern(&mut self, hash: u32, route: &str) {
        if self.names.len() < MAX_ROUTES && !self.names.contains_key(&hash) {
            self.names.insert(hash, route.into());
        }
    }

    pub fn name(&self, hash: u32) -> Option<&Arc<str>> {
        self.names.get(&hash)
    }

    pub fn heap_bytes(&self) -> usize {
        self.names.capacity() * 20 + self.names.values().map(|s| s.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_transitions_surprise_less_than_rare_ones() {
        let mut m = Markov::default();
        assert!(!m.is_warm());
        for _ in 0..300 {
            m.learn(1, 2);
            m.learn(2, 1);
        }
        m.learn(1, 3);
        assert!(m.is_warm());
        let common = m.surprise_bits(1, 2);
        let rare = m.surprise_bits(1, 3);
        let unseen = m.surprise_bits(2, 3);
        assert!(common < 0.1, "{common}");
        assert!(rare > 5.0 && unseen > 5.0, "{rare} {unseen}");
    }

    #[test]
    fn route_baselines_warm_up_then_score() {
        let mut b = Baselines::default();
        for i in 0..(BASELINE_WARMUP - 1) {
            b.learn_route(7, (i % 3) as f64 + 1.0);
        }
        assert_eq!(b.route_z(7, 50.0), None);
        b.learn_route(7, 2.0);
        assert!(b.route_z(7, 50.0).unwrap_or_default() > 10.0);
        assert_eq!(b.route_z(8, 50.0), None);
    }
}
