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
        self.committable_if(|_, _, pending_until| match pending_until {
            None => true,
            Some(_) if all_done => true,
            Some(t) => completed_before.is_some_and(|before| t < before),
        })
    }

    /// The offsets that may be committed now: per partition, up to the end of the
    /// longest run of chunks, oldest first, for which `is_done(partition, last_offset,
    /// pending_until)` holds.
    pub fn committable_if(
        &mut self,
        mut is_done: impl FnMut(&Partition, i64, Option<i64>) -> bool,
    ) -> Vec<CommitOffset> {
        let mut out = Vec::new();
        for (partition, chunks) in &mut self.partitions {
            let mut last = None;
            while chunks
                .front()
                .is_some_and(|c| is_done(partition, c.last_offset, c.pending_until))
            {
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

    /// Forgets one partition (revoked: its new owner re-reads it from the last commit).
    pub fn forget(&mut self, partition: &Partition) {
        self.partitions.remove(partition);
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

    #[test]
    fn a_limit_holds_chunks_back_until_it_allows_them() {
        let mut t = CommitTracker::default();
        t.record(p(0), 9, None);
        t.record(p(0), 19, None);
        // A checkpoint covers offsets up to 12: only the first chunk may go.
        let c = t.committable_if(|_, last, _| last <= 12);
        assert_eq!(c[0].next_offset, 10);
        assert_eq!(t.in_flight(), 1, "the held chunk is kept, not dropped");
        let c = t.committable_if(|_, last, _| last <= 19);
        assert_eq!(c[0].next_offset, 20);
        t.record(p(1), 5, None);
        t.forget(&p(1));
        assert!(t.committable(None, true).is_empty());
    }
}
