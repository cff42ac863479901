//! MIDAS-R over one relation: edge, source and destination counts, decayed per tick.

use serde::{Deserialize, Serialize};

use super::params::MidasRValidParams;
use super::sketch::{mix64, CountMinSketch, Counts, Decay};
use crate::error::{Error, Result};

/// Which count made an edge's burst score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurstComponent {
    /// The (source, destination) pair itself: e.g. one token from one client.
    Edge,
    /// All edges out of the source: e.g. one IP reaching many identities.
    Source,
    /// All edges into the destination: e.g. one token used by many clients.
    Destination,
}

/// The burst score of one edge: the largest of its edge, source and destination scores,
/// with the rates behind it, so a reason can quote them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurstScore {
    /// Chi-squared-like statistic `(rate - expected)^2 / expected` when `rate > expected`,
    /// else 0. Unbounded; calibrate it (`calibration`) before comparing with other scores.
    pub score: f32,
    pub component: BurstComponent,
    /// Recent events per tick of that component: the decayed current count x `(1 - decay)`.
    pub rate: f32,
    /// Events per tick expected from its history: `max(total / ticks, min_expected)`.
    pub expected: f32,
}

/// MIDAS-R (Bhatia et al., 2020) on one relation, e.g. IP -> identity.
///
/// Three count-min sketches (edges, sources, destinations) hold per cell a current count,
/// multiplied by `decay` at every new tick, and a total count. An edge adds one event to
/// its three keys; each key is scored by comparing its recent rate with its long-run rate,
/// and the edge gets the largest of the three. Ticks are event time (the caller's
/// `event time / tick length`), never the wall clock, so replays score identically.
///
/// Differences from the paper, all for streams that run for weeks: the current count is
/// turned into a per-tick rate (`x (1 - decay)`) so that steady keys score about 0 whatever
/// their volume (MIDAS-R's raw decayed count scores a steady key at about its rate); the
/// expected rate is floored at `min_expected`, so a never-seen edge does not score `t - 1`
/// (it would after `t` ticks in MIDAS, which makes every new user an alert after a day);
/// only rises score (a quiet key is not an attack); and totals can forget (`history_ticks`).
/// A gap of `g` ticks decays by `decay^g`. An edge older than the current tick is counted
/// in the current tick (and in `late_edges`): time never goes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MidasRState")]
pub struct MidasR {
    params: MidasRValidParams,
    edges: CountMinSketch,
    sources: CountMinSketch,
    destinations: CountMinSketch,
    /// The tick being counted; `None` before the first edge.
    tick: Option<u64>,
    /// Tick the sketches' cell stamps count from (they hold `tick - origin` as a u32).
    origin: u64,
    /// Ticks of history, MIDAS's `t` (an exponentially weighted count with a horizon).
    ticks: f64,
    late_edges: u64,
    /// Derived from the parameters; rebuilt on restore.
    #[serde(skip)]
    decay: Decay,
}

impl MidasRValidParams {
    /// A detector that has seen nothing.
    pub fn build(&self) -> MidasR {
        let sketch =
            |salt: u64| CountMinSketch::new(self.rows(), self.width(), mix64(self.seed() ^ salt));
        MidasR {
            params: *self,
            edges: sketch(1),
            sources: sketch(2),
            destinations: sketch(3),
            tick: None,
            origin: 0,
            ticks: 0.0,
            late_edges: 0,
            decay: self.decay_rule(),
        }
    }

    fn decay_rule(&self) -> Decay {
        Decay::new(self.decay(), self.history_factor())
    }
}

impl MidasR {
    /// Counts the edge `src -> dst` at event-time `tick` and scores it.
    #[inline]
    pub fn observe(&mut self, src: u64, dst: u64, tick: u64) -> BurstScore {
        let now = self.advance_to(tick);
        let edge = self.edges.add(edge_key(src, dst), now, &self.decay);
        let source = self.sources.add(src, now, &self.decay);
        let destination = self.destinations.add(dst, now, &self.decay);
        let mut best = self.component(edge, BurstComponent::Edge);
        for candidate in [
            self.component(source, BurstComponent::Source),
            self.component(destination, BurstComponent::Destination),
        ] {
            if candidate.score > best.score {
                best = candidate;
            }
        }
        best
    }

    /// Moves to `tick` if it is newer and returns the current tick relative to the origin.
    /// Cells decay lazily when next touched (see the sketch), so this is O(1) except when
    /// relative ticks would overflow a u32 and every cell is rebased.
    fn advance_to(&mut self, tick: u64) -> u32 {
        let Some(current) = self.tick else {
            self.tick = Some(tick);
            self.origin = tick;
            self.ticks = 1.0;
            return 0;
        };
        if tick < current {
            self.late_edges += 1;
        }
        if tick <= current {
            return self.relative(current);
        }
        let gap = tick - current;
        let beta = self.params.history_factor();
        self.ticks = if beta == 1.0 {
            self.ticks + gap as f64
        } else {
            // t' = beta^g t + (1 + beta + ... + beta^(g-1)).
            let factor = beta.powi(i32::try_from(gap).unwrap_or(i32::MAX));
            self.ticks * factor + (1.0 - factor) / (1.0 - beta)
        };
        self.tick = Some(tick);
        if tick - self.origin > u64::from(u32::MAX) {
            self.rebase(self.relative(current));
            self.origin = current;
            if tick - self.origin > u64::from(u32::MAX) {
                // Over 2^32 ticks of decay: as good as forever.
                self.rebase(u32::MAX);
                self.origin = tick;
            }
        }
        self.relative(tick)
    }

    /// Brings every cell up to relative tick `now` and restamps it 0; the caller moves the
    /// origin to match.
    fn rebase(&mut self, now: u32) {
        for sketch in [&mut self.edges, &mut self.sources, &mut self.destinations] {
            sketch.rebase(now, &self.decay);
        }
    }

    /// `tick - origin`; callers keep it within a u32.
    fn relative(&self, tick: u64) -> u32 {
        u32::try_from(tick - self.origin).unwrap_or(u32::MAX)
    }

    #[inline]
    fn component(&self, counts: Counts, component: BurstComponent) -> BurstScore {
        let rate = counts.current * (1.0 - self.params.decay());
        let expected = (counts.total / self.ticks).max(self.params.min_expected());
        let score = if rate > expected {
            (rate - expected) * (rate - expected) / expected
        } else {
            0.0
        };
        BurstScore {
            score: score as f32,
            component,
            rate: rate as f32,
            expected: expected as f32,
        }
    }

    pub fn params(&self) -> &MidasRValidParams {
        &self.params
    }

    /// The tick being counted; `None` before the first edge.
    pub fn current_tick(&self) -> Option<u64> {
        self.tick
    }

    /// Edges that arrived with a tick older than the current one (counted in it).
    pub fn late_edges(&self) -> u64 {
        self.late_edges
    }

    /// Bytes held by the three sketches.
    pub fn memory_bytes(&self) -> usize {
        self.edges.memory_bytes() + self.sources.memory_bytes() + self.destinations.memory_bytes()
    }
}

/// One key per ordered pair: `(a, b)` and `(b, a)` differ.
#[inline]
fn edge_key(src: u64, dst: u64) -> u64 {
    mix64(src) ^ dst
}

/// The serialized form, checked before it becomes a detector.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MidasRState {
    params: MidasRValidParams,
    edges: CountMinSketch,
    sources: CountMinSketch,
    destinations: CountMinSketch,
    tick: Option<u64>,
    origin: u64,
    ticks: f64,
    late_edges: u64,
}

impl TryFrom<MidasRState> for MidasR {
    type Error = Error;

    fn try_from(s: MidasRState) -> Result<Self> {
        let (rows, width) = (s.params.rows(), s.params.width());
        let ticks_ok = match s.tick {
            None => s.ticks == 0.0 && s.origin == 0,
            Some(t) => {
                s.ticks.is_finite()
                    && s.ticks >= 1.0
                    && t >= s.origin
                    && t - s.origin <= u64::from(u32::MAX)
            }
        };
        if !ticks_ok {
            return Err(Error::InvalidState(format!(
                "burst detector at tick {:?} (origin {}) with {} ticks of history",
                s.tick, s.origin, s.ticks
            )));
        }
        let now = u32::try_from(s.tick.map_or(0, |t| t - s.origin)).unwrap_or(u32::MAX);
        s.edges.check(rows, width, now, "edges")?;
        s.sources.check(rows, width, now, "sources")?;
        s.destinations.check(rows, width, now, "destinations")?;
        Ok(Self {
            params: s.params,
            edges: s.edges,
            sources: s.sources,
            destinations: s.destinations,
            tick: s.tick,
            origin: s.origin,
            ticks: s.ticks,
            late_edges: s.late_edges,
            decay: s.params.decay_rule(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::burst::MidasRParams;

    fn detector(decay: f64) -> MidasR {
        MidasRParams::default()
            .width(1024)
            .decay(decay)
            .check()
            .unwrap()
            .build()
    }

    #[test]
    fn the_first_tick_has_no_history_and_scores_zero() {
        let mut d = detector(0.5);
        for dst in 0..100 {
            assert_eq!(d.observe(1, dst, 10).score, 0.0);
        }
        assert_eq!(d.current_tick(), Some(10));
    }

    #[test]
    fn plain_midas_scores_the_current_tick_against_the_mean() {
        // decay 0: the rate is this tick's count. 10 ticks of one edge per tick, then 5.
        let mut d = detector(0.0);
        for t in 1..=10 {
            assert_eq!(d.observe(1, 2, t).score, 0.0, "steady at tick {t}");
        }
        let mut last = d.observe(1, 2, 11);
        for _ in 0..4 {
            last = d.observe(1, 2, 11);
        }
        // rate 5, expected total / ticks = 15 / 11.
        let expected = 15.0 / 11.0;
        let want = (5.0 - expected) * (5.0 - expected) / expected;
        assert!(
            (f64::from(last.score) - want).abs() < 1e-4,
            "{last:?} vs {want}"
        );
        assert!((f64::from(last.expected) - expected).abs() < 1e-6);
        assert_eq!(last.rate, 5.0);
    }

    #[test]
    fn decay_carries_a_burst_across_ticks_and_gaps_decay_more() {
        let mut d = detector(0.5);
        for _ in 0..8 {
            d.observe(1, 2, 1);
        }
        // One tick later the current count is 8 x 0.5 + 1; three ticks later 8 x 0.125 + 1.
        let mut e = d.clone();
        let next = d.observe(1, 2, 2);
        assert_eq!(next.rate, ((8.0 * 0.5 + 1.0) * 0.5) as f32);
        let later = e.observe(1, 2, 4);
        assert_eq!(later.rate, ((8.0 * 0.125 + 1.0) * 0.5) as f32);
    }

    #[test]
    fn late_edges_count_in_the_current_tick() {
        let mut d = detector(0.5);
        d.observe(1, 2, 5);
        d.observe(1, 2, 3);
        assert_eq!(d.current_tick(), Some(5));
        assert_eq!(d.late_edges(), 1);
    }

    #[test]
    fn history_horizon_bounds_the_ticks_of_history() {
        let mut d = MidasRParams::default()
            .width(64)
            .history_ticks(10)
            .check()
            .unwrap()
            .build();
        d.observe(1, 2, 0);
        d.observe(1, 2, 1_000);
        // 1 + 0.9 + 0.81 + ... -> 10.
        assert!((d.ticks - 10.0).abs() < 1e-6, "{}", d.ticks);
    }

    #[test]
    fn ticks_beyond_a_u32_of_the_origin_rebase() {
        let mut d = detector(0.5);
        d.observe(1, 2, 0);
        d.observe(1, 2, 10);
        let far = u64::from(u32::MAX) + 5;
        let before = d.observe(1, 2, far);
        assert_eq!(d.origin, 10, "rebased to the last tick before the jump");
        assert_eq!(before.rate, 0.5, "old current counts decayed away");
        let next = d.observe(1, 2, far + 1);
        assert_eq!(next.rate, 0.75);
        let huge = d.observe(1, 2, u64::MAX);
        assert_eq!(
            d.origin,
            u64::MAX,
            "a jump beyond a u32 restarts the stamps"
        );
        assert_eq!(huge.rate, 0.5);
    }

    #[test]
    fn edge_keys_are_ordered() {
        assert_ne!(edge_key(1, 2), edge_key(2, 1));
    }

    #[test]
    fn restoring_checks_the_sketches() {
        let mut d = detector(0.5);
        d.observe(3, 4, 1);
        let json = serde_json::to_value(&d).unwrap();
        let back: MidasR = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, d);
        let mut taller = json.clone();
        let rows = taller["sources"]["rows"].as_u64().unwrap();
        taller["sources"]["rows"] = serde_json::json!(rows + 1);
        let err = serde_json::from_value::<MidasR>(taller).unwrap_err();
        assert!(err.to_string().contains("sources"), "{err}");
        let mut negative_count = json.clone();
        negative_count["edges"]["touched"][0][1][0] = serde_json::json!(-1.0);
        let err = serde_json::from_value::<MidasR>(negative_count).unwrap_err();
        assert!(err.to_string().contains("edges"), "{err}");
        let mut negative = json;
        negative["ticks"] = serde_json::json!(0.0);
        assert!(serde_json::from_value::<MidasR>(negative).is_err());
    }
}
