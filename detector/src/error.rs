/// Errors of the detector. Each names the stage that failed, so an operator knows where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("source: {0}")]
    Source(#[from] outrider_ingest::Error),
    #[error("model: {0}")]
    Model(#[from] outrider_models::Error),
    #[error("alert store: {0}")]
    Alerts(#[from] outrider_alerts::Error),
    #[error("features: {0}")]
    Features(#[from] outrider_features::Error),
    /// The scoring task on the blocking pool failed (a bug: scoring does not panic on input).
    #[error("scoring task: {0}")]
    Scoring(String),
    /// Detector state that cannot be saved or taken back from a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("ops endpoint: {0}")]
    Ops(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
