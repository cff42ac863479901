//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong writing a dataset out. Generating one cannot fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Serialising a record failed.
    #[error("cannot serialise {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Building or writing an Arrow/Parquet table failed.
    #[error("cannot write the Parquet table {}: {reason}", path.display())]
    Parquet { path: PathBuf, reason: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
