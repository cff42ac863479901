use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[features]`: the event-time window every feature is computed over and the bounds on the
/// state kept between windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Window length (60 = 1 min, 600 = 10 min, 3600 = 1 h, 86400 = 24 h). A vector is
    /// emitted for each window that holds events of the key.
    pub window_secs: u64,
    /// How far consecutive windows are apart (sliding by hops); must divide `window_secs`.
    /// Equal to `window_secs` gives tumbling windows.
    pub hop_secs: u64,
    /// How far behind the newest event time an event may arrive and still count.
    pub allowed_lateness_secs: u64,
    /// Emit a key's row for every window that holds its events. Off (the default), a row
    /// is emitted only for windows whose newest hop holds events of the key: a window that
    /// only lost events since the previous one tells a detector nothing new, and sparse
    /// keys would otherwise cost `window / hop` rows per event.
    pub emit_every_hop: bool,
    /// The most keys (identities, IPs and tokens together) kept at once. Beyond it, new
    /// identities share one `overflow:untracked` key and new IPs and tokens are not
    /// tracked, so a flood of random IPs degrades features instead of exhausting memory.
    pub max_tracked_keys: usize,
    /// A key with nothing in its window is forgotten (history included) after this long
    /// without events, in event time.
    pub idle_evict_secs: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            hop_secs: 10,
            allowed_lateness_secs: 5,
            emit_every_hop: false,
            max_tracked_keys: 2_000_000,
            idle_evict_secs: 7 * 86_400,
        }
    }
}

impl WindowConfig {
    pub fn check(&self) -> Result<()> {
        let invalid = |key, reason: &str| {
            Err(Error::InvalidConfig {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.hop_secs == 0 {
            return invalid("features.hop_secs", "must be at least 1");
        }
        if self.window_secs == 0 || self.window_secs % self.hop_secs != 0 {
            return invalid(
                "features.window_secs",
                "must be a positive multiple of features.hop_secs",
            );
        }
        if self.window_secs / self.hop_secs > 1440 {
            return invalid("features.hop_secs", "at most 1440 hops per window");
        }
        // Sample offsets within a hop are stored in 32 bits of milliseconds.
        if self.hop_secs > 86_400 {
            return invalid("features.hop_secs", "at most 86400 (one day)");
        }
        if self.max_tracked_keys < 16 {
            return invalid("features.max_tracked_keys", "must be at least 16");
        }
        Ok(())
    }

    pub(crate) fn window_ms(&self) -> i64 {
        secs_to_ms(self.window_secs)
    }
    pub(crate) fn hop_ms(&self) -> i64 {
        secs_to_ms(self.hop_secs)
    }
    pub(crate) fn lateness_ms(&self) -> i64 {
        secs_to_ms(self.allowed_lateness_secs)
    }
    pub(crate) fn idle_ms(&self) -> i64 {
        secs_to_ms(self.idle_evict_secs)
    }
}

fn secs_to_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_key_at_fault() {
        let bad = WindowConfig {
            window_secs: 65,
            ..WindowConfig::default()
        };
        let err = bad.check().unwrap_err().to_string();
        assert!(err.contains("features.window_secs"), "{err}");
        let bad = WindowConfig {
            max_tracked_keys: 1,
            ..WindowConfig::default()
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("max_tracked_keys"));
        assert!(WindowConfig::default().check().is_ok());
    }
}
