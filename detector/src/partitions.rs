//! Feature state per source partition, and its hand-over between instances.
//!
//! Producers key records by identity, so an identity's records share one partition and
//! each partition's state depends only on that partition's records: whichever instance
//! of the consumer group reads a partition computes the same rows. Each partition has
//! its own [`FeatureExtractor`]; with a [`CheckpointDir`], its state is saved now and
//! then with the offset it covers (`state_offset`) and restored when the partition is
//! assigned again, here or elsewhere. Re-read records at or before `state_offset` are
//! already inside the restored state, so they are not fed again; the committed offset
//! never passes the newest checkpoint, so nothing between the checkpoint and the commit
//! is ever missing from the state.
//!
//! The burst detectors ([`BurstTracker`]) are partition state too, checkpointed with the
//! features: their counts and pending hits would otherwise depend on when this process
//! started reading and on how partitions interleaved in its batches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outrider_features::{ExtractorStats, FeatureExtractor, FeatureRow, Observed, WindowConfig};
use outrider_ingest::source::{CommitOffset, Partition};
use outrider_ingest::Event;

use crate::burst::{BurstConfig, BurstHit, BurstTracker};
use crate::checkpoint::{self, CheckpointDir, Loaded};
use crate::error::Result;
use crate::pipeline::PipelineStats;

/// One partition's state.
#[derive(Debug)]
struct PartitionState {
    extractor: FeatureExtractor,
    /// `None` when `[burst]` is off.
    bursts: Option<BurstTracker>,
    /// Every record up to this offset has been taken into the state (fed, or refused).
    state_offset: Option<i64>,
    /// Records up to this offset were inside the restored checkpoint: not fed again.
    restored_through: Option<i64>,
    /// The `state_offset` of the newest checkpoint on disk; commits never pass it.
    durable_offset: Option<i64>,
    /// Changed since the last checkpoint.
    dirty: bool,
    /// The offset of the last record this process read from the partition.
    last_seen: Option<i64>,
    /// The first record this process read from the partition (since a log reset).
    first_seen: Option<i64>,
    /// A commit of this partition went through since it was assigned.
    committed: bool,
}

impl PartitionState {
    fn empty(window: &WindowConfig, burst: &BurstConfig) -> Result<Self> {
        Ok(Self {
            extractor: FeatureExtractor::new(window)?,
            bursts: BurstTracker::new(burst, window)?,
            state_offset: None,
            restored_through: None,
            durable_offset: None,
            dirty: false,
            last_seen: None,
            first_seen: None,
            committed: false,
        })
    }

    /// Emits `rows` of this partition with their burst hits.
    fn emit(&mut self, rows: Vec<FeatureRow>, out: &mut Emitted) {
        self.dirty |= !rows.is_empty();
        match &mut self.bursts {
            Some(b) => out.bursts.extend(b.take_hits(&rows)),
            None => out.bursts.extend(rows.iter().map(|_| Vec::new())),
        }
        out.rows.extend(rows);
    }
}

/// Feature rows emitted by the partitions, with each row's burst hits (one list per row,
/// in the same order).
#[derive(Debug, Default)]
pub struct Emitted {
    pub rows: Vec<FeatureRow>,
    pub bursts: Vec<Vec<BurstHit>>,
}

/// What happened to one record's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    Observed(Observed),
    /// Already inside the restored state: not fed again, but its windows may still be
    /// open, so it is tracked for the commit like an accepted event.
    AlreadyInState,
}

/// A partition's state, as tests and metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSummary {
    pub partition: Partition,
    pub tracked_keys: usize,
    pub extractor: ExtractorStats,
    pub state_offset: Option<i64>,
    /// The offset the state was restored at, if it came from a checkpoint.
    pub restored_through: Option<i64>,
}

/// The extractors of the partitions this instance reads, and their checkpoints.
#[derive(Debug)]
pub struct PartitionStates {
    window: WindowConfig,
    burst: BurstConfig,
    checkpoints: Option<CheckpointDir>,
    interval: Duration,
    last_checkpoint: Option<Instant>,
    states: BTreeMap<Partition, PartitionState>,
}

impl PartitionStates {
    /// Without `checkpoints`, states live and die with this process (file replays).
    pub fn new(
        window: WindowConfig,
        burst: BurstConfig,
        checkpoints: Option<CheckpointDir>,
        interval: Duration,
    ) -> Self {
        Self {
            window,
            burst,
            checkpoints,
            interval,
            last_checkpoint: None,
            states: BTreeMap::new(),
        }
    }

    /// Follows the source's assignment: revoked partitions drop their state (even when
    /// assigned again: another instance may have read them meanwhile), partitions no
    /// longer assigned too, and newly assigned ones restore their checkpoint when the
    /// group's committed offset (from `committed`, asked only about those) lies inside it.
    pub fn follow_assignment(
        &mut self,
        assigned: Option<&[Partition]>,
        revoked: &[Partition],
        committed: impl FnOnce(&[Partition]) -> Vec<Option<i64>>,
        stats: &mut PipelineStats,
    ) -> Result<()> {
        for p in revoked {
            if self.states.remove(p).is_some() {
                tracing::info!(topic = %p.stream, partition = p.partition, "partition revoked; its state is dropped");
            }
        }
        let Some(assigned) = assigned else {
            return Ok(());
        };
        self.states.retain(|p, _| assigned.contains(p));
        let new: Vec<Partition> = assigned
            .iter()
            .filter(|p| !self.states.contains_key(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let offsets = match self.checkpoints {
            Some(_) => committed(&new),
            None => Vec::new(),
        };
        for (i, p) in new.into_iter().enumerate() {
            let state = self.restore(&p, offsets.get(i).copied().flatten(), stats)?;
            self.states.insert(p, state);
        }
        Ok(())
    }

    /// The partition's state; a partition not seen in an assignment (a file) starts
    /// empty.
    fn state(&mut self, p: &Partition, _stats: &mut PipelineStats) -> Result<&mut PartitionState> {
        if !self.states.contains_key(p) {
            if self.checkpoints.is_some() {
                tracing::info!(topic = %p.stream, partition = p.partition, "records of a partition outside the assignment; it starts empty");
            }
            self.states
                .insert(p.clone(), PartitionState::empty(&self.window, &self.burst)?);
        }
        // Inserted just above when missing.
        self.states
            .get_mut(p)
            .ok_or_else(|| crate::Error::Config("partition state vanished".into()))
    }

    /// `committed`: the group's committed offset for `p`. A checkpoint is used only when
    /// the consumer resumes inside it (`committed <= state_offset + 1`): without a commit
    /// the group's offsets were lost (a broker that lost its data, a recreated topic, a
    /// new group), so the offsets in the checkpoint may name other records; a commit past
    /// it means a newer state existed elsewhere (a stale writer). Either way the
    /// partition starts empty, as it would without checkpoints.
    fn restore(
        &self,
        p: &Partition,
        committed: Option<i64>,
        stats: &mut PipelineStats,
    ) -> Result<PartitionState> {
        let mut state = PartitionState::empty(&self.window, &self.burst)?;
        let Some(dir) = &self.checkpoints else {
            return Ok(state);
        };
        let started = Instant::now();
        match dir.load(p, &self.window) {
            Loaded::Missing => {
                tracing::info!(topic = %p.stream, partition = p.partition, "no checkpoint; partition starts empty");
            }
            Loaded::Restored(c) if committed.is_none_or(|n| n > c.state_offset + 1) => {
                tracing::warn!(
                    topic = %p.stream, partition = p.partition, state_offset = c.state_offset,
                    committed = ?committed,
                    "checkpoint does not line up with the committed offset (offsets lost, topic recreated or a stale writer); partition starts empty"
                );
                dir.set_aside(p);
                stats.checkpoints_refused += 1;
            }
            Loaded::Restored(c) => {
                tracing::info!(
                    topic = %p.stream, partition = p.partition, state_offset = c.state_offset,
                    keys = c.extractor.tracked_keys(), ms = started.elapsed().as_millis() as u64,
                    "partition state restored from checkpoint"
                );
                stats.checkpoints_restored += 1;
                let c = *c;
                restore_bursts(p, &mut state.bursts, &c.bursts);
                state.extractor = c.extractor;
                state.state_offset = Some(c.state_offset);
                state.restored_through = Some(c.state_offset);
                state.durable_offset = Some(c.state_offset);
            }
            Loaded::Refused(e) => {
                tracing::warn!(
                    topic = %p.stream, partition = p.partition, error = %e,
                    "checkpoint refused (moved aside as .bad); partition starts empty"
                );
                stats.checkpoints_refused += 1;
            }
        }
        Ok(state)
    }

    /// Notes that a record of `partition` at `offset` arrived; true when offsets went
    /// backwards without a rebalance: the log was truncated or recreated (a broker that
    /// lost its data). The state keeps its history but no longer claims any offset, so
    /// neither a checkpoint nor the skipping of restored records refers to the old log.
    pub fn offset_went_back(
        &mut self,
        partition: &Partition,
        offset: i64,
        stats: &mut PipelineStats,
    ) -> Result<bool> {
        let state = self.state(partition, stats)?;
        let back = state.last_seen.is_some_and(|last| offset <= last);
        state.last_seen = Some(offset);
        if state.first_seen.is_none() || back {
            state.first_seen = Some(offset);
            state.committed = false;
        }
        if back {
            tracing::warn!(
                topic = %partition.stream, partition = partition.partition, offset,
                "offsets went back without a rebalance (log truncated or recreated); offsets start over"
            );
            stats.offset_resets += 1;
            state.restored_through = None;
            state.state_offset = None;
            state.durable_offset = None;
            state.dirty = true;
        }
        Ok(back)
    }

    /// Feeds one event of `partition` at `offset` to its state.
    pub fn observe(
        &mut self,
        partition: &Partition,
        offset: i64,
        event: &Event,
        stats: &mut PipelineStats,
    ) -> Result<Fed> {
        let state = self.state(partition, stats)?;
        if state.restored_through.is_some_and(|s| offset <= s) {
            stats.records_already_in_state += 1;
            return Ok(Fed::AlreadyInState);
        }
        state.dirty = true;
        let observed = state.extractor.observe(event);
        if let (Observed::Accepted, Some(b)) = (observed, &mut state.bursts) {
            b.observe(event);
        }
        Ok(Fed::Observed(observed))
    }

    /// Every record of `partition` up to `offset` has been taken in (refused ones too).
    /// Re-reading records a restored checkpoint already holds does not move the state's
    /// offset back: a checkpoint written then would claim less than the state holds, so a
    /// successor would feed those records twice, and commits, which never pass the
    /// durable checkpoint, would stall short of the records read.
    pub fn ingested(
        &mut self,
        partition: &Partition,
        offset: i64,
        stats: &mut PipelineStats,
    ) -> Result<()> {
        let state = self.state(partition, stats)?;
        state.state_offset = Some(state.state_offset.map_or(offset, |s| s.max(offset)));
        Ok(())
    }

    /// Emits, in every partition, the windows that ended before its own watermark.
    pub fn advance(&mut self, watermark: impl Fn(&Partition) -> Option<i64>) -> Emitted {
        let mut out = Emitted::default();
        for (p, state) in &mut self.states {
            let Some(w) = watermark(p) else {
                continue;
            };
            let rows = state.extractor.advance(w);
            state.emit(rows, &mut out);
        }
        out
    }

    /// A quiet source: each partition emits its windows up to its own newest event time.
    pub fn flush_idle(&mut self) -> Emitted {
        self.emit_each(|x| match x.max_event_time() {
            Some(t) => x.advance(t),
            None => Vec::new(),
        })
    }

    /// The source ended: every window is emitted.
    pub fn finish(&mut self) -> Emitted {
        self.emit_each(FeatureExtractor::finish)
    }

    fn emit_each(
        &mut self,
        mut f: impl FnMut(&mut FeatureExtractor) -> Vec<FeatureRow>,
    ) -> Emitted {
        let mut out = Emitted::default();
        for state in self.states.values_mut() {
            let rows = f(&mut state.extractor);
            state.emit(rows, &mut out);
        }
        out
    }

    /// The newest event time over every partition.
    pub fn max_event_time(&self) -> Option<i64> {
        self.states
            .values()
            .filter_map(|s| s.extractor.max_event_time())
            .max()
    }

    /// Events of `partition` before this time have had every window emitted.
    pub fn completed_before(&self, partition: &Partition) -> Option<i64> {
        self.states.get(partition)?.extractor.completed_before()
    }

    /// The highest offset of `partition` that may be committed: with checkpoints, the
    /// newest checkpoint's `state_offset` (a successor restores it and re-reads from the
    /// commit, so nothing in between may be missing from the state); else unbounded.
    pub fn commit_limit(&self, partition: &Partition) -> Option<i64> {
        self.checkpoints.as_ref()?;
        let durable = self.states.get(partition).and_then(|s| s.durable_offset);
        Some(durable.unwrap_or(-1))
    }

    /// Writes the checkpoint of every changed partition when the interval has passed
    /// (or with `force`). Call only when every row emitted so far has been stored: a
    /// checkpoint marks its windows done. A failed write is logged and counted; commits
    /// then stay behind the previous checkpoint, so it delays, never loses.
    pub async fn checkpoint(&mut self, force: bool, stats: &mut PipelineStats) {
        let Some(dir) = &self.checkpoints else {
            return;
        };
        let due = self
            .last_checkpoint
            .is_none_or(|t| t.elapsed() >= self.interval);
        if !(due || force) {
            return;
        }
        self.last_checkpoint = Some(Instant::now());
        for (p, state) in &mut self.states {
            let Some(offset) = state.state_offset else {
                continue;
            };
            if !state.dirty && state.durable_offset == Some(offset) {
                continue;
            }
            let started = Instant::now();
            let bursts = match &state.bursts {
                Some(b) => b.encode(),
                None => Ok(Vec::new()),
            };
            let encoded = bursts.map_err(|e| checkpoint::CheckpointError::Bursts(e.to_string()));
            let encoded = encoded.and_then(|b| checkpoint::encode(p, offset, &state.extractor, &b));
            let written = match encoded {
                Ok(bytes) => {
                    let size = bytes.len();
                    let dir_path = |p: &Partition| dir.path(p);
                    let (dir, p2) = (dir.clone(), p.clone());
                    // File writes and fsync off the async workers.
                    match tokio::task::spawn_blocking(move || dir.write(&p2, &bytes)).await {
                        Ok(r) => r.map(|()| size),
                        Err(join) => Err(checkpoint::CheckpointError::Io {
                            path: dir_path(p),
                            source: std::io::Error::other(join),
                        }),
                    }
                }
                Err(e) => Err(e),
            };
            match written {
                Ok(bytes) => {
                    state.durable_offset = Some(offset);
                    state.dirty = false;
                    stats.checkpoints_written += 1;
                    tracing::debug!(
                        topic = %p.stream, partition = p.partition, state_offset = offset, bytes,
                        keys = state.extractor.tracked_keys(), ms = started.elapsed().as_millis() as u64,
                        "checkpoint written"
                    );
                }
                Err(e) => {
                    stats.checkpoint_failures += 1;
                    tracing::error!(
                        topic = %p.stream, partition = p.partition, error = %e,
                        "cannot write checkpoint; commits wait for the next one"
                    );
                }
            }
        }
    }

    /// Partitions with a state.
    pub fn count(&self) -> usize {
        self.states.len()
    }

    /// Commits of the first offset read, for checkpointed partitions that have none yet:
    /// "everything before the first record read is done" always holds, and it gives the
    /// group a committed offset as soon as a checkpoint exists. A successor that then finds
    /// no commit knows the group's offsets were lost (broker data loss, recreated topic),
    /// and does not trust the checkpoint's offsets.
    pub fn first_commits(&self, offsets: &[CommitOffset]) -> Vec<CommitOffset> {
        self.states
            .iter()
            .filter(|(p, s)| {
                !s.committed
                    && s.durable_offset.is_some()
                    && !offsets.iter().any(|o| &o.partition == *p)
            })
            .filter_map(|(p, s)| {
                Some(CommitOffset {
                    partition: p.clone(),
                    next_offset: s.first_seen?,
                })
            })
            .collect()
    }

    /// `offsets` were committed.
    pub fn committed(&mut self, offsets: &[CommitOffset]) {
        for o in offsets {
            if let Some(s) = self.states.get_mut(&o.partition) {
                s.committed = true;
            }
        }
    }

    /// Every partition's extractor (for the metrics' totals).
    pub fn extractors(&self) -> Vec<&FeatureExtractor> {
        self.states.values().map(|s| &s.extractor).collect()
    }

    /// Each partition's state, for tests and metrics.
    pub fn summaries(&self) -> Vec<PartitionSummary> {
        self.states
            .iter()
            .map(|(p, s)| PartitionSummary {
                partition: p.clone(),
                tracked_keys: s.extractor.tracked_keys(),
                extractor: s.extractor.stats(),
                state_offset: s.state_offset,
                restored_through: s.restored_through,
            })
            .collect()
    }
}

/// Takes a checkpoint's burst state into the partition's tracker. Without one (written
/// with `[burst]` off) or with other sketch parameters, burst detection starts over for
/// the partition: the features are still restored.
fn restore_bursts(p: &Partition, tracker: &mut Option<BurstTracker>, bytes: &[u8]) {
    let Some(tracker) = tracker else {
        return;
    };
    let restored = match bytes {
        [] => Err(crate::Error::Checkpoint("no burst state in it".into())),
        bytes => tracker.restore(bytes),
    };
    if let Err(e) = restored {
        tracing::warn!(
            topic = %p.stream, partition = p.partition, error = %e,
            "burst state not restored from the checkpoint; burst detection starts over for the partition"
        );
    }
}

/// Whether a Kafka record's key is its event's identity key (written into `buf`), as
/// producers are asked to key records.
pub fn key_is_identity(key: &[u8], event: &Event, buf: &mut String) -> bool {
    match event {
        Event::Api(e) => e.write_identity_key(buf),
        Event::Token(e) => e.write_identity_key(buf),
    }
    key == buf.as_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outrider_ingest::parse::{parse_line, DEFAULT_MAX_LINE_BYTES};

    fn p(n: i32) -> Partition {
        Partition {
            stream: "events".into(),
            partition: n,
        }
    }

    fn request(second: u32, who: &str) -> Event {
        let line = format!(
            r#"{{"type":"api","ts":"2026-11-02T10:00:{second:02}Z","request_id":"r{second}","method":"GET","path":"/accounts","status":200,"client_ip":"192.0.2.7","subject":"{who}"}}"#
        );
        parse_line(line.as_bytes(), DEFAULT_MAX_LINE_BYTES).unwrap()
    }

    fn states(dir: &std::path::Path) -> PartitionStates {
        let dir = CheckpointDir::open(dir).unwrap();
        PartitionStates::new(
            WindowConfig::default(),
            BurstConfig::default(),
            Some(dir),
            Duration::from_secs(3600),
        )
    }

    /// A request of `who` at `ms` milliseconds after 10:00.
    fn request_at(ms: u32, who: &str) -> Event {
        let (m, s, milli) = (ms / 60_000, ms / 1000 % 60, ms % 1000);
        let line = format!(
            r#"{{"type":"api","ts":"2026-11-02T10:{m:02}:{s:02}.{milli:03}Z","request_id":"r{ms}","method":"GET","path":"/accounts","status":200,"client_ip":"192.0.2.7","subject":"{who}"}}"#
        );
        parse_line(line.as_bytes(), DEFAULT_MAX_LINE_BYTES).unwrap()
    }

    /// Each emitted row's key and window end with the burst hits it carries.
    fn hits_by_row(e: &Emitted) -> Vec<(String, i64, Vec<BurstHit>)> {
        assert_eq!(e.rows.len(), e.bursts.len(), "one hit list per row");
        e.rows
            .iter()
            .zip(&e.bursts)
            .filter(|(_, h)| !h.is_empty())
            .map(|(r, h)| (r.key.to_string(), r.window_end_ms, h.clone()))
            .collect()
    }

    #[tokio::test]
    async fn burst_state_moves_with_the_partition_checkpoint() {
        // Two minutes of one request per 5 s tick, then a burst of 300 in one tick.
        let mut events: Vec<Event> = (0..24).map(|t| request_at(t * 5000, "alice")).collect();
        events.extend((0..300).map(|i| request_at(120_000 + i * 10, "alice")));
        let feed = |s: &mut PartitionStates, from: usize, to: usize, stats: &mut PipelineStats| {
            for (offset, e) in events.iter().enumerate().take(to).skip(from) {
                s.observe(&p(0), offset as i64, e, stats).unwrap();
            }
            s.ingested(&p(0), to as i64 - 1, stats).unwrap();
        };
        let none = |new: &[Partition]| vec![None; new.len()];
        let mut stats = PipelineStats::default();

        let whole_dir = tempfile::tempdir().unwrap();
        let mut whole = states(whole_dir.path());
        whole
            .follow_assignment(Some(&[p(0)]), &[], none, &mut stats)
            .unwrap();
        feed(&mut whole, 0, events.len(), &mut stats);
        let expected = hits_by_row(&whole.finish());
        assert!(!expected.is_empty(), "the burst is a hit");

        // Checkpointed in the middle of the burst, then read on by another instance.
        let tmp = tempfile::tempdir().unwrap();
        let mut first = states(tmp.path());
        first
            .follow_assignment(Some(&[p(0)]), &[], none, &mut stats)
            .unwrap();
        feed(&mut first, 0, 150, &mut stats);
        first.checkpoint(true, &mut stats).await;
        let mut second = states(tmp.path());
        let at_100 = |new: &[Partition]| vec![Some(100); new.len()];
        second
            .follow_assignment(Some(&[p(0)]), &[], at_100, &mut stats)
            .unwrap();
        feed(&mut second, 100, events.len(), &mut stats);
        assert_eq!(hits_by_row(&second.finish()), expected);

        // Without the burst state, the new owner would have no history to compare with.
        let mut fresh = states(tempfile::tempdir().unwrap().path());
        fresh
            .follow_assignment(Some(&[p(0)]), &[], none, &mut stats)
            .unwrap();
        feed(&mut fresh, 150, events.len(), &mut stats);
        assert_ne!(hits_by_row(&fresh.finish()), expected);
    }

    #[tokio::test]
    async fn a_restored_partition_skips_what_its_checkpoint_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let mut stats = PipelineStats::default();
        let mut first = states(tmp.path());
        let none = |new: &[Partition]| vec![None; new.len()];
        first
            .follow_assignment(Some(&[p(0)]), &[], none, &mut stats)
            .unwrap();
        assert_eq!(first.commit_limit(&p(0)), Some(-1), "nothing durable yet");
        for offset in 0..5 {
            let fed = first.observe(&p(0), offset, &request(offset as u32, "alice"), &mut stats);
            assert_eq!(fed.unwrap(), Fed::Observed(Observed::Accepted));
        }
        first.ingested(&p(0), 4, &mut stats).unwrap();
        first.checkpoint(false, &mut stats).await;
        assert_eq!(stats.checkpoints_written, 1);
        assert_eq!(first.commit_limit(&p(0)), Some(4));

        // Another instance is assigned the partition and re-reads from an older commit.
        let mut second = states(tmp.path());
        let at_2 = |new: &[Partition]| vec![Some(2); new.len()];
        second
            .follow_assignment(Some(&[p(0), p(1)]), &[], at_2, &mut stats)
            .unwrap();
        assert_eq!(stats.checkpoints_restored, 1, "p1 has no checkpoint");
        for offset in 2..4 {
            let fed = second.observe(&p(0), offset, &request(offset as u32, "alice"), &mut stats);
            assert_eq!(fed.unwrap(), Fed::AlreadyInState);
        }
        // A batch that ends inside the restored state leaves its offset where it was.
        second.ingested(&p(0), 3, &mut stats).unwrap();
        second.checkpoint(true, &mut stats).await;
        assert_eq!(
            second.commit_limit(&p(0)),
            Some(4),
            "the checkpoint holds 0..=4"
        );
        let fed = second.observe(&p(0), 4, &request(4, "alice"), &mut stats);
        assert_eq!(fed.unwrap(), Fed::AlreadyInState);
        let fed = second.observe(&p(0), 5, &request(5, "bob"), &mut stats);
        assert_eq!(fed.unwrap(), Fed::Observed(Observed::Accepted));
        assert_eq!(stats.records_already_in_state, 3);
        let summary = &second.summaries()[0];
        assert_eq!(summary.restored_through, Some(4));
        assert_eq!(
            summary.extractor.accepted, 6,
            "five restored and one new, none twice"
        );
        assert!(summary.tracked_keys >= 2);

        // A revoked partition drops its state; assigned again, it restores the checkpoint.
        second
            .follow_assignment(Some(&[p(0)]), &[p(0)], at_2, &mut stats)
            .unwrap();
        assert_eq!(second.summaries()[0].extractor.accepted, 5);
        assert_eq!(stats.checkpoints_restored, 2);

        // Offsets lost (no commit) or a commit past the checkpoint: start empty.
        for committed in [None, Some(6)] {
            let mut third = states(tmp.path());
            let at = |new: &[Partition]| vec![committed; new.len()];
            third
                .follow_assignment(Some(&[p(0)]), &[], at, &mut stats)
                .unwrap();
            assert_eq!(third.summaries()[0].tracked_keys, 0, "{committed:?}");
            // Refused files are moved aside, so they are never restored later.
            let ckpt = CheckpointDir::open(tmp.path()).unwrap().path(&p(0));
            assert!(!ckpt.exists());
            std::fs::rename(ckpt.with_extension("ckpt.bad"), &ckpt).unwrap();
        }
        assert_eq!(stats.checkpoints_refused, 2);
    }

    #[tokio::test]
    async fn a_corrupt_checkpoint_is_counted_and_the_partition_starts_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CheckpointDir::open(tmp.path()).unwrap();
        std::fs::write(dir.path(&p(0)), b"OR-PCKP\0garbage").unwrap();
        let mut stats = PipelineStats::default();
        let mut s = states(tmp.path());
        let at_0 = |new: &[Partition]| vec![Some(0); new.len()];
        s.follow_assignment(Some(&[p(0)]), &[], at_0, &mut stats)
            .unwrap();
        assert_eq!(
            (stats.checkpoints_refused, stats.checkpoints_restored),
            (1, 0)
        );
        assert_eq!(s.summaries()[0].tracked_keys, 0);
        let fed = s
            .observe(&p(0), 0, &request(1, "alice"), &mut stats)
            .unwrap();
        assert_eq!(fed, Fed::Observed(Observed::Accepted));
    }

    #[test]
    fn record_keys_are_compared_with_the_identity_key() {
        let mut buf = String::new();
        assert!(key_is_identity(
            b"sub:alice",
            &request(1, "alice"),
            &mut buf
        ));
        assert!(!key_is_identity(b"alice", &request(1, "alice"), &mut buf));
        assert_eq!(buf, "sub:alice");
    }
}
