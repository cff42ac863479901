//! JSON lines from a file or standard input (`-`), replayed in event time: windows follow the
//! records' own timestamps, so a day of logs replays in seconds with the same results.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::{Batch, CommitOffset, Record, Source, SourcePosition};
use crate::error::{Error, Result};

pub struct FileSource {
    name: Arc<str>,
    path: PathBuf,
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    line: u64,
    offset: u64,
    last_commit: Option<i64>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("line", &self.line)
            .finish()
    }
}

impl FileSource {
    /// Opens `path`, or standard input for `-`.
    pub async fn open(path: &Path) -> Result<Self> {
        let reader: Box<dyn AsyncBufRead + Send + Unpin> = if path == Path::new("-") {
            Box::new(BufReader::new(tokio::io::stdin()))
        } else {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|source| Error::Io {
                    path: path.to_owned(),
                    source,
                })?;
            Box::new(BufReader::with_capacity(256 * 1024, file))
        };
        Ok(Self {
            name: path.display().to_string().into(),
            path: path.to_owned(),
            reader,
            line: 0,
            offset: 0,
            last_commit: None,
        })
    }

    /// The last line number reported done by the pipeline (for tests and progress logs).
    pub fn committed_line(&self) -> Option<i64> {
        self.last_commit
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self, max: usize) -> Result<Batch> {
        let mut records = Vec::with_capacity(max.min(4096));
        while records.len() < max {
            let mut buf = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|source| Error::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            self.line += 1;
            let position = SourcePosition::File {
                path: self.name.clone(),
                line: self.line,
                offset: self.offset,
            };
            self.offset += n as u64;
            records.push(Record {
                payload: Bytes::from(buf),
                position,
                key: None,
            });
        }
        Ok(if records.is_empty() {
            Batch::End
        } else {
            Batch::Records(records)
        })
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<()> {
        if let Some(c) = offsets.iter().map(|c| c.next_offset).max() {
            self.last_commit = Some(c);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_with_positions_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "a\nbb\n\nccc").unwrap();
        let mut src = FileSource::open(&path).await.unwrap();
        let Batch::Records(first) = src.next_batch(2).await.unwrap() else {
            panic!("expected records")
        };
        assert_eq!(first.len(), 2);
        assert_eq!(&first[1].payload[..], b"bb\n");
        let Batch::Records(rest) = src.next_batch(10).await.unwrap() else {
            panic!("expected records")
        };
        assert_eq!(rest.len(), 2);
        assert_eq!(
            rest[1].position,
            SourcePosition::file(&path.display().to_string(), 4, 6)
        );
        assert!(matches!(src.next_batch(10).await.unwrap(), Batch::End));
    }
}
