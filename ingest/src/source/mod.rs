//! Sources of raw records. A source yields records with their position and commits positions
//! it is told are done; it never decides itself that a record is done (at-least-once).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use crate::error::Result;

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;

pub use file::FileSource;
#[cfg(feature = "kafka")]
pub use kafka::{KafkaSource, KafkaSourceConfig, KafkaTopic};

/// Where a record came from: enough to commit past it and to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SourcePosition {
    File {
        path: Arc<str>,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line's start.
        offset: u64,
    },
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
}

impl SourcePosition {
    pub fn file(path: &str, line: u64, offset: u64) -> Self {
        Self::File {
            path: path.into(),
            line,
            offset,
        }
    }

    /// The ordered stream this position belongs to: a Kafka partition, or the file.
    pub fn partition(&self) -> Partition {
        match self {
            Self::File { path, .. } => Partition {
                stream: path.clone(),
                partition: 0,
            },
            Self::Kafka {
                topic, partition, ..
            } => Partition {
                stream: topic.clone(),
                partition: *partition,
            },
        }
    }

    /// The position's order within its partition.
    pub fn offset(&self) -> i64 {
        match self {
            Self::File { line, .. } => i64::try_from(*line).unwrap_or(i64::MAX),
            Self::Kafka { offset, .. } => *offset,
        }
    }
}

/// One ordered stream of records: a Kafka topic partition, or a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub stream: Arc<str>,
    pub partition: i32,
}

/// "Everything in `partition` before `next_offset` is done": what a source commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub partition: Partition,
    pub next_offset: i64,
}

/// A raw record, not yet parsed.
#[derive(Debug, Clone)]
pub struct Record {
    pub payload: Bytes,
    pub position: SourcePosition,
    /// The Kafka record key (producers key by identity, so that one identity's records
    /// share a partition); `None` for files and unkeyed records.
    pub key: Option<Bytes>,
}

/// What one poll of a source returned.
#[derive(Debug)]
pub enum Batch {
    Records(Vec<Record>),
    /// Nothing arrived within the source's poll timeout; the stream may go on.
    Idle,
    /// The source is exhausted (end of a file); a live source never ends by itself.
    End,
}

#[async_trait]
pub trait Source: Send {
    /// Up to `max` records, waiting at most the source's poll timeout for the first.
    async fn next_batch(&mut self, max: usize) -> Result<Batch>;

    /// Records that everything before each offset is done (stored downstream).
    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<()>;

    /// Where this source reads from, for logs.
    fn describe(&self) -> String;

    /// The partitions currently assigned to this reader, when the source knows them
    /// (a consumer group); `None` for a single stream such as a file.
    fn assignment(&self) -> Option<Vec<Partition>> {
        None
    }

    /// Records behind the end of the assigned partitions, when the source can tell.
    fn lag(&self) -> Option<i64> {
        None
    }

    /// Partitions taken away from this reader since the last call (a rebalance), even if
    /// they were assigned again since: state kept for them may be stale, as another reader
    /// may have consumed them in between.
    fn take_revoked(&mut self) -> Vec<Partition> {
        Vec::new()
    }

    /// The group's committed offset for each of `partitions` (`None`: nothing committed,
    /// or the source cannot tell). A restored state is trusted only when the commit lies
    /// inside it.
    fn committed(&mut self, partitions: &[Partition]) -> Vec<Option<i64>> {
        vec![None; partitions.len()]
    }
}
