//! Outrider detector: the pipeline that turns raw records into stored alerts and decisions.
//!
//! One code path serves replay (files) and live traffic (Kafka):
//! source -> parse -> features -> score -> incidents -> alerts stored -> policies ->
//! decisions stored, fed, enqueued, published -> commit. Requests are also checked against
//! the revocations already decided (`[revocation_watch]`).
//!
//! Layout:
//! - [`config`]: the service configuration tree.
//! - [`normalize`]: raw record -> event (parser per topic, route templates, inventory).
//! - [`pipeline`]: the loop over batches, generic over the source.
//! - [`score`]: feature rows -> alerts with explanations; alerts -> decisions.
//! - [`burst`]: burst detectors fed per event, their hits judged with the rows.
//! - [`commit`]: which offsets are safe to commit (at-least-once).
//! - [`partitions`]: one feature state per partition, restored from [`checkpoint`]s when
//!   a partition moves between instances.
//! - `retry`: store writes retried with backoff while the store is down.
//! - [`watermark`]: event-time progress per partition.
//! - [`service`]: builds a pipeline from a [`Config`] and runs it with its outbox worker
//!   and, with `[http]`, the HTTP API (`outrider_alerts::HttpApi`).
//! - [`metrics`]: Prometheus metrics of the pipeline, the outbox, the features and the model.
//! - [`ops`]: the ops endpoint: `/metrics`, `/health`, `/ready` (`[ops]`).
//! - [`reload`]: hot model reload (file polling, SIGHUP), swapped in between batches.
//! - [`train`]: the same features, computed over a file, fed to model training.

pub mod burst;
pub mod checkpoint;
pub mod commit;
pub mod config;
pub mod error;
pub mod metrics;
pub mod normalize;
pub mod ops;
pub mod partitions;
pub mod pipeline;
pub mod reload;
mod retry;
pub mod score;
pub mod service;
pub mod train;
pub mod watermark;

pub use config::Config;
pub use error::{Error, Result};
pub use pipeline::{Pipeline, PipelineStats};
pub use service::{run, run_with, RunOptions, RunSummary};
