//! Which source offsets may be committed.
//!
//! An event is done only when every window it belongs to has been emitted, scored, and the
//! resulting alerts stored. Until then its offset must not be committed, or a crash would
//! lose its contribution. Batches are tracked per partition as chunks (last offset, newest
//! pending event time), so memory follows batches in flight, not events.

use std::collections::{BTreeMap, VecDeque};

use outrider_ingest::source::{CommitOffset, Partition};

#[derive(Debug, Clone, Copy)]
struct Chunk {
    last_offset: i64,
    /// The newest event time in the chunk still waiting for windows; `None` if nothing is.
    pending_until: Option<i64>,
}

#[derive(Debug, Default)]
pub struct CommitTracker {
    partitions: BTreeMap<Partition, VecDeque<Chunk>>,
}

impl CommitTracker {
    /// Records that a batch read `partition` up to `last_offset`, and the newest event time
    /// among its events that still wait for windows.
    pub fn record(&mut self, partition: Partition, last_offset: i64, pending_until: Option<i64>) {
        self.partitions
            .entry(partition)
            .or_default()
            .push_back(Chunk {
                last_offset,
                pending_until,
            });
    }

    /// The offsets that may be committed now, given that every event before
    /// `completed_before` is done (or, with `all_done`, every event is).
    pub fn committable(
        &mut self,
        completed_before: Option<i64>,
        all_done: bool,
    ) -> Vec<CommitOffset> {
        let is_done = |c: &Chunk| match c.pending_until {
            None => true,
            Some(_) if all_done => true,
            Some(t) => completed_before.is_some_and(|before| t < before),
        };
        let mut out = Vec::new();
        for (partition, chunks) in &mut self.partitions {
            let mut last = None;
            while chunks.front().is_some_and(is_done) {
                last = chunks.pop_front().map(|c| c.last_offset);
            }
            if let Some(offset) = last {
                out.push(CommitOffset {
                    partition: partition.clone(),
                    next_offset: offset + 1,
                });
            }
        }
        out
    }

    /// Forgets partitions no longer assigned to this reader.
    pub fn retain(&mut self, assigned: &[Partition]) {
        self.partitions.retain(|p, _| assigned.contains(p));
    }

    /// Batches not yet committable.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(VecDeque::len).sum()
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
    fn a_pending_chunk_holds_back_everything_after_it() {
        let mut t = CommitTracker::default();
        t.record(p(0), 9, Some(1_000));
        t.record(p(0), 19, Some(500)); // older events behind newer ones: still waits in order
        t.record(p(1), 4, None);
        let c = t.committable(Some(600), false);
        assert_eq!(c.len(), 1, "only the partition with nothing pending");
        assert_eq!((c[0].partition.partition, c[0].next_offset), (1, 5));
        let c = t.committable(Some(1_001), false);
        assert_eq!((c[0].partition.partition, c[0].next_offset), (0, 20));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn nothing_is_committed_before_the_windows_complete() {
        let mut t = CommitTracker::default();
        t.record(p(0), 3, Some(1_000));
        assert!(t.committable(None, false).is_empty());
        assert!(t.committable(Some(1_000), false).is_empty());
        assert_eq!(t.committable(None, true)[0].next_offset, 4);
    }
}
