#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range; names the key.
    #[error("invalid feature configuration `{key}`: {reason}")]
    InvalidConfig { key: &'static str, reason: String },
    /// A checkpoint that this build cannot restore.
    #[error("cannot restore feature checkpoint: {0}")]
    Checkpoint(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
