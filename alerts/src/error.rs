/// Errors of the alerts crate.
///
/// Every variant says whether trying again later can help ([`Error::is_retryable`]): the
/// outbox worker and the CLI use that to choose between backing off and giving up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded database (redb) failed: a local disk or corruption problem.
    #[error("embedded database: {0}")]
    Storage(#[from] redb::Error),
    /// A file-system operation around the embedded database failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored record or a payload could not be (de)serialized.
    #[error("serialization: {0}")]
    Serde(#[from] serde_json::Error),
    /// A ClickHouse request failed; `retryable` is set for network errors and timeouts
    /// that survived the store's own retries.
    #[error("clickhouse {op}: {source}")]
    ClickHouse {
        op: &'static str,
        retryable: bool,
        #[source]
        source: clickhouse::error::Error,
    },
    /// A delivery to a target failed (transport error, 5xx, ...). `status` is the HTTP
    /// status when there was a response; `retryable` says whether backing off can help.
    #[error("delivery to {target} failed after {attempts} attempt(s): {message}")]
    Delivery {
        target: String,
        status: Option<u16>,
        attempts: u32,
        retryable: bool,
        message: String,
    },
    /// A receiver answered that it will never accept this delivery (an RFC 8935 `400`
    /// with an `err` code, an RFC 7009 `unsupported_token_type`, ...). The outbox records
    /// it as a permanent failure instead of retrying forever. `code` is the receiver's
    /// error code when it sent one.
    #[error("{target} rejected the delivery ({}): {message}", status.map_or_else(|| "no status".to_owned(), |s| s.to_string()))]
    Rejected {
        target: String,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    /// Signing a JWT failed (a key that loaded but cannot sign: should not happen).
    #[error("signing failed: {0}")]
    Signing(String),
    /// Bad configuration (missing secret variable, invalid name, ...): fix and restart.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A value cannot be represented by the store (e.g. a timestamp outside ClickHouse
    /// `DateTime`'s 1970..2106 range, an unknown enum code read back).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// An outbox entry that was expected to exist does not.
    #[error("no outbox entry for decision {decision_id} and target {target}")]
    NotFound { decision_id: String, target: String },
    /// [`crate::OutboxWorker::drain`] ran out of time with entries still pending.
    #[error("outbox drain timed out: {delivered} delivered, {pending} still pending")]
    DrainTimeout { delivered: usize, pending: u64 },
    /// A query or request that cannot be answered as asked (a zero-length count bucket,
    /// a malformed cursor, a bad filter value): the caller must change it.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// An alert, incident or other record that the caller named does not exist.
    #[error("no {what} {id}")]
    UnknownId { what: &'static str, id: String },
    /// The store does not implement this operation (a custom [`crate::AlertStore`] that
    /// only implements the required methods).
    #[error("{0} is not supported by this store")]
    Unsupported(String),
    /// Producing to Kafka failed or timed out (the brokers may come back: retryable).
    #[error("kafka: {0}")]
    Kafka(String),
    /// The HTTP server could not accept or serve connections.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Whether the same operation may succeed if tried again later (transient network
    /// trouble, a receiver that is down, a drain that needs more time).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ClickHouse { retryable, .. } | Error::Delivery { retryable, .. } => *retryable,
            Error::DrainTimeout { .. } | Error::Kafka(_) => true,
            Error::Storage(_)
            | Error::Io { .. }
            | Error::Serde(_)
            | Error::Rejected { .. }
            | Error::Signing(_)
            | Error::Config(_)
            | Error::InvalidData(_)
            | Error::NotFound { .. }
            | Error::InvalidQuery(_)
            | Error::UnknownId { .. }
            | Error::Unsupported(_)
            | Error::Serve(_)
            | Error::Join(_) => false,
        }
    }

    /// The HTTP status of a failed delivery, when there was an answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Delivery { status, .. } | Error::Rejected { status, .. } => *status,
            _ => None,
        }
    }

    /// Wraps any redb error type (they all convert into [`redb::Error`]).
    pub(crate) fn storage(e: impl Into<redb::Error>) -> Self {
        Error::Storage(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
