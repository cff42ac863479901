//! Event-time watermarks per partition.
//!
//! Kafka hands out partitions in batches, so while catching up one partition can be minutes
//! of event time ahead of another. A single "newest event time" watermark would then declare
//! the lagging partition's events late. The watermark is instead the minimum over the
//! partitions still delivering, less the allowed lateness; a partition that has been quiet
//! for the idle timeout no longer holds it back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outrider_ingest::source::Partition;

#[derive(Debug, Clone, Copy)]
struct Clock {
    max_ts: Option<i64>,
    last_record: Instant,
}

#[derive(Debug)]
pub struct Watermarks {
    lateness_ms: i64,
    idle: Duration,
    partitions: BTreeMap<Partition, Clock>,
}

impl Watermarks {
    pub fn new(lateness_ms: i64, idle: Duration) -> Self {
        Self {
            lateness_ms,
            idle,
            partitions: BTreeMap::new(),
        }
    }

    /// A record arrived on `partition`, with its event time if it had one that counts.
    pub fn observe(&mut self, partition: &Partition, ts: Option<i64>, now: Instant) {
        let clock = self.partitions.entry(partition.clone()).or_insert(Clock {
            max_ts: None,
            last_record: now,
        });
        clock.last_record = now;
        if let Some(ts) = ts {
            clock.max_ts = Some(clock.max_ts.map_or(ts, |m| m.max(ts)));
        }
    }

    /// The partitions the source currently reads: new ones hold the watermark back until
    /// they deliver or go idle; revoked ones stop counting.
    pub fn assign(&mut self, assigned: &[Partition], now: Instant) {
        self.partitions.retain(|p, _| assigned.contains(p));
        for p in assigned {
            self.partitions.entry(p.clone()).or_insert(Clock {
                max_ts: None,
                last_record: now,
            });
        }
    }

    /// Forgets a revoked partition's clock: if it comes back, it is re-read from its last
    /// commit, and its old clock would declare those records late.
    pub fn forget(&mut self, partition: &Partition) {
        self.partitions.remove(partition);
    }

    /// The watermark of one partition's own state: its newest event time less the
    /// allowed lateness, or, once it has been quiet for the idle timeout, its newest event
    /// time (its open windows are emitted without waiting). With one feature state per
    /// partition, no partition's clock can make another's records late, even when one is
    /// read far ahead of another while catching up.
    pub fn of(&self, partition: &Partition, now: Instant) -> Option<i64> {
        let clock = self.partitions.get(partition)?;
        let ts = clock.max_ts?;
        if now.duration_since(clock.last_record) >= self.idle {
            return Some(ts);
        }
        Some(ts.saturating_sub(self.lateness_ms))
    }

    /// The minimum over partitions that delivered within the idle timeout, less the
    /// allowed lateness; `None` while a live partition has delivered no event time yet.
    pub fn watermark(&self, now: Instant) -> Option<i64> {
        let mut min: Option<i64> = None;
        for clock in self.partitions.values() {
            if now.duration_since(clock.last_record) >= self.idle {
                continue;
            }
            let ts = clock.max_ts?;
            min = Some(min.map_or(ts, |m| m.min(ts)));
        }
        min.map(|m| m.saturating_sub(self.lateness_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        Partition {
            stream: "t".into(),
            partition: n,
        }
    }

    #[test]
    fn the_slowest_live_partition_sets_the_watermark() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(5_000, Duration::from_secs(2));
        w.assign(&[p(0), p(1)], t0);
        w.observe(&p(0), Some(600_000), t0);
        assert_eq!(w.watermark(t0), None, "partition 1 has not delivered yet");
        w.observe(&p(1), Some(60_000), t0);
        assert_eq!(w.watermark(t0), Some(55_000));
    }

    #[test]
    fn each_partition_has_its_own_watermark() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(5_000, Duration::from_secs(2));
        w.assign(&[p(0), p(1)], t0);
        w.observe(&p(0), Some(600_000), t0);
        assert_eq!(w.of(&p(0), t0), Some(595_000));
        assert_eq!(w.of(&p(1), t0), None, "nothing delivered yet");
        w.observe(&p(1), Some(60_000), t0);
        assert_eq!(w.of(&p(1), t0), Some(55_000), "not pushed by partition 0");
        let later = t0 + Duration::from_secs(3);
        assert_eq!(w.of(&p(1), later), Some(60_000), "quiet: lateness waived");
    }

    #[test]
    fn a_quiet_partition_stops_holding_the_watermark_back() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, Duration::from_secs(2));
        w.observe(&p(0), Some(100), t0);
        w.observe(&p(1), Some(50), t0);
        let later = t0 + Duration::from_secs(3);
        w.observe(&p(0), Some(200), later);
        assert_eq!(w.watermark(later), Some(200));
        w.assign(&[p(0)], later);
        assert_eq!(w.partitions.len(), 1, "revoked partitions are forgotten");
    }
}
