//! The dead-letter sink: every refused record is kept, one JSON line each, with its reason,
//! the parser's detail and where it came from, so nothing bad is silently lost.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::parse::ParseErrorReason;
use crate::source::SourcePosition;

#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub reason: ParseErrorReason,
    pub detail: &'a str,
    pub position: &'a SourcePosition,
    /// The record as text (invalid UTF-8 replaced); see `raw_hex` for the exact bytes.
    pub raw: String,
    /// The exact bytes, only when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
}

impl<'a> DeadLetter<'a> {
    pub fn new(
        reason: ParseErrorReason,
        detail: &'a str,
        position: &'a SourcePosition,
        raw: &[u8],
    ) -> Self {
        let (raw_text, raw_hex) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(raw).into_owned(),
                Some(hex::encode(raw)),
            ),
        };
        Self {
            reason,
            detail,
            position,
            raw: raw_text,
            raw_hex,
        }
    }
}

/// An append-only JSONL file of dead letters. Writes are flushed per batch by the caller
/// ([`DeadLetterFile::flush`]) before the batch's offsets are committed.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
}

impl DeadLetterFile {
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            out: std::io::BufWriter::new(file),
            written: 0,
        })
    }

    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<()> {
        let line = serde_json::to_string(letter).unwrap_or_default();
        writeln!(self.out, "{line}").map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.written += 1;
        Ok(())
    }

    /// Flushes to the OS and syncs to disk.
    pub fn flush(&mut self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_reason_position_and_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl/dead.jsonl");
        let mut dl = DeadLetterFile::open(&path).unwrap();
        let pos = SourcePosition::file("in.jsonl", 3, 120);
        dl.write(&DeadLetter::new(
            ParseErrorReason::InvalidUtf8,
            "at byte 1",
            &pos,
            b"a\xffb",
        ))
        .unwrap();
        dl.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["reason"], "invalid_utf8");
        assert_eq!(v["position"]["line"], 3);
        assert_eq!(v["position"]["offset"], 120);
        assert_eq!(v["raw_hex"], "61ff62");
        assert_eq!(dl.written(), 1);
    }
}
