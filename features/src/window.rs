use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[features]`: the event-time window every feature is computed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Window length. A vector is emitted for each window that holds events of the key.
    pub window_secs: u64,
    /// How far consecutive windows are apart (sliding by hops); must divide `window_secs`.
    pub hop_secs: u64,
    /// How far behind the newest event time an event may arrive and still count.
    pub allowed_lateness_secs: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            hop_secs: 10,
            allowed_lateness_secs: 5,
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
        assert!(WindowConfig::default().check().is_ok());
    }
}
