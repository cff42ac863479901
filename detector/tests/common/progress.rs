//! Waiting on the counters a pipeline publishes after every batch, instead of sleeping.

use std::time::Duration;

use outrider_detector::pipeline::PipelineStats;
use tokio::sync::watch;

/// Waits until the published counters satisfy `done` (tokio's `watch::Receiver::wait_for`:
/// the current counters first, then each change), at most `deadline`; panics naming
/// `what`, with the last counters, when they do not get there.
pub async fn until(
    progress: &mut watch::Receiver<PipelineStats>,
    deadline: Duration,
    what: &str,
    done: impl FnMut(&PipelineStats) -> bool,
) -> PipelineStats {
    let outcome = tokio::time::timeout(deadline, progress.wait_for(done))
        .await
        .map(|waited| waited.map(|stats| stats.clone()));
    match outcome {
        Ok(Ok(stats)) => stats,
        Ok(Err(_)) => panic!("pipeline ended early, waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}: {:?}", *progress.borrow()),
    }
}

/// Waits until the pipeline has read `records` and then emitted its windows on going idle.
pub async fn caught_up(
    progress: &mut watch::Receiver<PipelineStats>,
    deadline: Duration,
    records: u64,
) -> PipelineStats {
    let mut idle_after_all: Option<u64> = None;
    let what = format!("{records} records and an idle flush");
    until(progress, deadline, &what, |s| {
        if s.records < records {
            return false;
        }
        match idle_after_all {
            None => {
                idle_after_all = Some(s.idle_flushes);
                false
            }
            Some(k) => s.idle_flushes > k,
        }
    })
    .await
}

/// Waits until the pipeline reports that its source ended (a replay read everything and
/// emitted its windows).
pub async fn source_ended(progress: &mut watch::Receiver<PipelineStats>) -> PipelineStats {
    until(
        progress,
        Duration::from_secs(180),
        "the replay to end",
        |s| s.source_ended,
    )
    .await
}
