//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong: a configuration that makes no sense, files that cannot be read or
/// written, tables without the columns asked for. Generating traffic itself cannot fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent; the message names it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// Training or scoring a model failed.
    #[error("model: {0}")]
    Model(String),
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
    /// A SQL statement failed to plan or run (`outrider sql`); DataFusion's message says why.
    #[error("sql: {0}")]
    Sql(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
