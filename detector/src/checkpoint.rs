//! Partition checkpoints: the feature state of one Kafka partition with the offset it
//! covers, so that whichever instance is assigned the partition next (or this one after a
//! restart) resumes with the same history instead of an empty state.
//!
//! File layout (`<dir>/<topic>-<partition>.ckpt`, all integers little-endian):
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `OR-PCKP\0` |
//! | 2 | format version ([`PARTITION_CHECKPOINT_VERSION`]) |
//! | 4 | CRC-32 of everything after it |
//! | 8 | `state_offset`: every record of the partition up to it is inside the state |
//! | 4 | partition number |
//! | 2 + n | topic length and UTF-8 name |
//! | 4 + n | length and bytes of the features crate's own versioned checkpoint ([`FeatureExtractor::checkpoint`]) |
//! | rest | the burst detectors' state ([`crate::burst::BurstTracker::encode`]); empty when `[burst]` is off |
//!
//! The topic and partition are checked on restore, so a renamed or misplaced file is
//! refused; the CRC catches truncation and bit rot that a decoder might still accept.
//! Files are written to a temporary name, synced, then renamed: a reader sees the old
//! checkpoint or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use outrider_features::{FeatureExtractor, WindowConfig};
use outrider_ingest::source::Partition;

const MAGIC: &[u8; 8] = b"OR-PCKP\0";
/// Bump when the header changes shape or meaning (2: the burst state follows the
/// features').
pub const PARTITION_CHECKPOINT_VERSION: u16 = 2;
const HEADER_BYTES: usize = MAGIC.len() + 2 + 4;

/// Why a checkpoint file could not be used. The pipeline logs it, counts it and starts the
/// partition with an empty state: a bad checkpoint costs history, never the run.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a checkpoint, truncated, or damaged (bad magic, bad CRC, bad header).
    #[error("corrupt checkpoint: {0}")]
    Corrupt(String),
    /// Written by another build or for another partition.
    #[error("checkpoint does not match: {0}")]
    Mismatch(String),
    /// The feature state inside refused to restore (another schema or window shape).
    #[error(transparent)]
    Features(#[from] outrider_features::Error),
    /// The burst detectors' state could not be encoded.
    #[error("burst state: {0}")]
    Bursts(String),
}

/// A restored partition state.
#[derive(Debug)]
pub struct PartitionCheckpoint {
    /// Every record of the partition up to this offset is inside `extractor`.
    pub state_offset: i64,
    pub extractor: FeatureExtractor,
    /// The burst detectors' encoded state, as the partition's tracker reads it back;
    /// empty when it was written with `[burst]` off.
    pub bursts: Vec<u8>,
}

/// Encodes `extractor` and the encoded burst state `bursts` (empty for none), which hold
/// `partition`'s records up to `state_offset`.
pub fn encode(
    partition: &Partition,
    state_offset: i64,
    extractor: &FeatureExtractor,
    bursts: &[u8],
) -> Result<Vec<u8>, CheckpointError> {
    let state = extractor.checkpoint()?;
    let topic = partition.stream.as_bytes();
    let topic_len = u16::try_from(topic.len())
        .map_err(|_| CheckpointError::Mismatch("topic name longer than 65535 bytes".into()))?;
    let state_len = u32::try_from(state.len())
        .map_err(|_| CheckpointError::Mismatch("feature state larger than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + 18 + topic.len() + state.len() + bursts.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&PARTITION_CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the CRC, filled in below
    out.extend_from_slice(&state_offset.to_le_bytes());
    out.extend_from_slice(&partition.partition.to_le_bytes());
    out.extend_from_slice(&topic_len.to_le_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&state_len.to_le_bytes());
    out.extend_from_slice(&state);
    out.extend_from_slice(bursts);
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a checkpoint of `partition` for the feature configuration `window`.
pub fn decode(
    bytes: &[u8],
    partition: &Partition,
    window: &WindowConfig,
) -> Result<PartitionCheckpoint, CheckpointError> {
    let corrupt = |m: &str| CheckpointError::Corrupt(m.to_owned());
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("not a partition checkpoint (bad magic)"))?;
    let (version, rest) = take::<2>(rest).ok_or_else(|| corrupt("truncated header"))?;
    let version = u16::from_le_bytes(version);
    if version != PARTITION_CHECKPOINT_VERSION {
        return Err(CheckpointError::Mismatch(format!(
            "format version {version}, this build reads {PARTITION_CHECKPOINT_VERSION}"
        )));
    }
    let (crc, body) = take::<4>(rest).ok_or_else(|| corrupt("truncated header"))?;
    if u32::from_le_bytes(crc) != crc32fast::hash(body) {
        return Err(corrupt("checksum mismatch (truncated or damaged file)"));
    }
    let (offset, rest) = take::<8>(body).ok_or_else(|| corrupt("truncated header"))?;
    let (number, rest) = take::<4>(rest).ok_or_else(|| corrupt("truncated header"))?;
    let (topic_len, rest) = take::<2>(rest).ok_or_else(|| corrupt("truncated header"))?;
    let topic_len = usize::from(u16::from_le_bytes(topic_len));
    if rest.len() < topic_len {
        return Err(corrupt("truncated topic name"));
    }
    let (topic, rest) = rest.split_at(topic_len);
    let number = i32::from_le_bytes(number);
    if topic != partition.stream.as_bytes() || number != partition.partition {
        return Err(CheckpointError::Mismatch(format!(
            "written for {}-{number}, not {}-{}",
            String::from_utf8_lossy(topic),
            partition.stream,
            partition.partition
        )));
    }
    let (state_len, rest) = take::<4>(rest).ok_or_else(|| corrupt("truncated header"))?;
    let state_len = u32::from_le_bytes(state_len) as usize;
    if rest.len() < state_len {
        return Err(corrupt("truncated feature state"));
    }
    let (state, bursts) = rest.split_at(state_len);
    Ok(PartitionCheckpoint {
        state_offset: i64::from_le_bytes(offset),
        extractor: FeatureExtractor::restore(state, window)?,
        bursts: bursts.to_vec(),
    })
}

fn take<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    Some((*head, rest))
}

/// What [`CheckpointDir::load`] found.
#[derive(Debug)]
pub enum Loaded {
    /// No checkpoint for this partition yet.
    Missing,
    Restored(Box<PartitionCheckpoint>),
    /// A file that cannot be used; it was moved aside to `<name>.bad` so that nobody
    /// restores it later, after this instance has committed past it.
    Refused(CheckpointError),
}

/// The directory shared by the instances of one consumer group.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    /// Creates the directory if needed.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<topic>-<partition>.ckpt`; characters outside `[A-Za-z0-9._-]` (never in a
    /// Kafka topic name) become `_`. The header names the partition, so two names that
    /// collide are told apart on restore.
    pub fn path(&self, partition: &Partition) -> PathBuf {
        let topic: String = partition
            .stream
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '_',
            })
            .collect();
        self.dir
            .join(format!("{topic}-{}.ckpt", partition.partition))
    }

    /// Reads `partition`'s checkpoint, if there is one, for `window`.
    pub fn load(&self, partition: &Partition, window: &WindowConfig) -> Loaded {
        let path = self.path(partition);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(source) => return Loaded::Refused(CheckpointError::Io { path, source }),
        };
        match decode(&bytes, partition, window) {
            Ok(c) => Loaded::Restored(Box::new(c)),
            Err(e) => {
                self.set_aside(partition);
                Loaded::Refused(e)
            }
        }
    }

    /// Moves `partition`'s checkpoint to `<name>.bad`, so that it is kept for a look but
    /// never restored.
    pub fn set_aside(&self, partition: &Partition) {
        let path = self.path(partition);
        let aside = path.with_extension("ckpt.bad");
        if let Err(e) = std::fs::rename(&path, &aside) {
            tracing::warn!(path = %path.display(), error = %e, "cannot move a refused checkpoint aside");
        }
    }

    /// Writes `bytes` as `partition`'s checkpoint, atomically and durably: a temporary
    /// file, synced, renamed over the old one, and the directory synced.
    pub fn write(&self, partition: &Partition, bytes: &[u8]) -> Result<(), CheckpointError> {
        let path = self.path(partition);
        let tmp = path.with_extension(format!("ckpt.tmp{}", std::process::id()));
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outrider_ingest::parse::{parse_line, DEFAULT_MAX_LINE_BYTES};

    fn partition(topic: &str, n: i32) -> Partition {
        Partition {
            stream: topic.into(),
            partition: n,
        }
    }

    /// An extractor that has seen a few requests of two identities.
    fn extractor(window: &WindowConfig) -> FeatureExtractor {
        let mut x = FeatureExtractor::new(window).unwrap();
        for (i, who) in ["alice", "bob", "alice", "alice"].iter().enumerate() {
            let line = format!(
                r#"{{"type":"api","ts":"2026-11-02T10:00:{i:02}Z","request_id":"r{i}","method":"GET","path":"/accounts/1","route":"/accounts/{{id}}","status":200,"latency_ms":5,"bytes_in":0,"bytes_out":100,"client_ip":"192.0.2.{i}","user_agent":"ua","subject":"{who}"}}"#
            );
            let event = parse_line(line.as_bytes(), DEFAULT_MAX_LINE_BYTES).unwrap();
            x.observe(&event);
        }
        x
    }

    #[test]
    fn a_checkpoint_round_trips_with_its_offset() {
        let window = WindowConfig::default();
        let p = partition("events", 3);
        let x = extractor(&window);
        assert!(x.tracked_keys() > 0);
        let bytes = encode(&p, 41, &x, b"burst state").unwrap();
        let back = decode(&bytes, &p, &window).unwrap();
        assert_eq!(back.state_offset, 41);
        assert_eq!(back.bursts, b"burst state");
        assert_eq!(back.extractor.tracked_keys(), x.tracked_keys());
        assert_eq!(back.extractor.stats(), x.stats());
        assert_eq!(back.extractor.max_event_time(), x.max_event_time());
    }

    #[test]
    fn damage_anywhere_is_refused_as_corrupt() {
        let window = WindowConfig::default();
        let p = partition("events", 0);
        let bytes = encode(&p, 7, &extractor(&window), &[]).unwrap();
        for at in [HEADER_BYTES + 3, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let err = decode(&bad, &p, &window).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Corrupt(_)),
                "byte {at}: {err}"
            );
        }
        let err = decode(&bytes[..bytes.len() - 10], &p, &window).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt(_)), "{err}");
        let err = decode(b"{\"not\":\"a checkpoint\"}", &p, &window).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
    }

    #[test]
    fn another_version_partition_or_window_is_a_mismatch() {
        let window = WindowConfig::default();
        let p = partition("events", 0);
        let bytes = encode(&p, 7, &extractor(&window), &[]).unwrap();
        let mut newer = bytes.clone();
        newer[MAGIC.len()..MAGIC.len() + 2]
            .copy_from_slice(&(PARTITION_CHECKPOINT_VERSION + 1).to_le_bytes());
        let err = decode(&newer, &p, &window).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Mismatch(m) if m.contains("format version")),
            "{err}"
        );
        let err = decode(&bytes, &partition("events", 1), &window).unwrap_err();
        assert!(matches!(err, CheckpointError::Mismatch(_)), "{err}");
        let err = decode(&bytes, &partition("other", 0), &window).unwrap_err();
        assert!(matches!(err, CheckpointError::Mismatch(_)), "{err}");
        let longer = WindowConfig {
            window_secs: 120,
            ..WindowConfig::default()
        };
        let err = decode(&bytes, &p, &longer).unwrap_err();
        assert!(err.to_string().contains("window_secs"), "{err}");
    }

    #[test]
    fn the_directory_writes_atomically_and_moves_bad_files_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CheckpointDir::open(&tmp.path().join("ckpt")).unwrap();
        let window = WindowConfig::default();
        let p = partition("events/odd name", 2);
        assert!(matches!(dir.load(&p, &window), Loaded::Missing));
        let bytes = encode(&p, 99, &extractor(&window), &[]).unwrap();
        dir.write(&p, &bytes).unwrap();
        let path = dir.path(&p);
        assert_eq!(path.file_name().unwrap(), "events_odd_name-2.ckpt");
        let names: Vec<_> = std::fs::read_dir(dir.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        match dir.load(&p, &window) {
            Loaded::Restored(c) => assert_eq!(c.state_offset, 99),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, &bytes[..20]).unwrap();
        assert!(matches!(
            dir.load(&p, &window),
            Loaded::Refused(CheckpointError::Corrupt(_))
        ));
        assert!(!path.exists(), "the refused file is moved aside");
        assert!(path.with_extension("ckpt.bad").exists());
        assert!(matches!(dir.load(&p, &window), Loaded::Missing));
    }
}
