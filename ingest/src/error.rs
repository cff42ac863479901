use std::path::PathBuf;

/// Errors of the ingest crate. Bad input lines are not errors of this kind: they are
/// [`crate::ParseError`]s, counted and dead-lettered by the caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("invalid source configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
