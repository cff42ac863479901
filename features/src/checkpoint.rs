//! Versioned snapshots of the whole extractor state, so that a restart, or a Kafka
//! partition moving to another instance, keeps every key's windows and history.
//!
//! Layout: the magic `OUTRIDER-FX\0`, a little-endian `u16` format version, then the state
//! in postcard (a compact serde format) tagged with the feature schema id. A snapshot of
//! another version, schema or window shape is refused with the reason; the state bounds
//! (`max_tracked_keys`, `idle_evict_secs`) follow the configuration it is restored under.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::extractor::FeatureExtractor;
use crate::schema::SCHEMA_ID;
use crate::window::WindowConfig;

const MAGIC: &[u8; 12] = b"OUTRIDER-FX\0";
/// Bump when the serialized state changes shape or meaning (2: bucket samples are kept in
/// time order; 3: profiles carry hourly object sketches).
pub const CHECKPOINT_VERSION: u16 = 3;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    schema_id: &'a str,
    extractor: &'a FeatureExtractor,
}

#[derive(Deserialize)]
struct Snapshot {
    schema_id: String,
    extractor: FeatureExtractor,
}

impl FeatureExtractor {
    /// The state as bytes (see the module docs for the format).
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        let body = postcard::to_allocvec(&SnapshotRef {
            schema_id: SCHEMA_ID,
            extractor: self,
        })
        .map_err(|e| Error::Checkpoint(format!("cannot encode: {e}")))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Rebuilds an extractor from [`FeatureExtractor::checkpoint`] bytes, for `config`.
    pub fn restore(bytes: &[u8], config: &WindowConfig) -> Result<Self> {
        config.check()?;
        let fail = |m: String| Err(Error::Checkpoint(m));
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return fail("not an Outrider feature checkpoint (bad magic)".into());
        };
        let (version, body) = match rest {
            [a, b, body @ ..] => (u16::from_le_bytes([*a, *b]), body),
            _ => return fail("truncated header".into()),
        };
        if version != CHECKPOINT_VERSION {
            return fail(format!(
                "format version {version}, this build reads {CHECKPOINT_VERSION}"
            ));
        }
        let snapshot: Snapshot = postcard::from_bytes(body)
            .map_err(|e| Error::Checkpoint(format!("corrupt state: {e}")))?;
        if snapshot.schema_id != SCHEMA_ID {
            return fail(format!(
                "feature schema `{}`, this build computes `{SCHEMA_ID}`",
                snapshot.schema_id
            ));
        }
        let mut extractor = snapshot.extractor;
        let saved = &extractor.config;
        for (key, a, b) in [
            (
                "features.window_secs",
                saved.window_secs,
                config.window_secs,
            ),
            ("features.hop_secs", saved.hop_secs, config.hop_secs),
        ] {
            if a != b {
                return fail(format!(
                    "`{key}` is {b} but the checkpoint was taken with {a}"
                ));
            }
        }
        extractor.config = config.clone();
        Ok(extractor)
    }
}
