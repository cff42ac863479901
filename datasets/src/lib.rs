//! Outrider datasets: labelled synthetic API traffic for the demo and the tests, and the
//! evaluation of detections against the injected attacks.
//!
//! Layout:
//! - [`generate`]: [`generate()`] turns a [`GeneratorConfig`] into a [`Dataset`] of gateway
//!   and token-server events, each labelled with its attack [`Campaign`] (or benign).
//! - [`io`]: writes a dataset as canonical JSON lines, its labels, and a campaign summary.
//! - [`export`]: labelled feature tables as Parquet for data scientists.
//! - [`evaluate`]: matches [`Detection`]s against campaigns ([`evaluate()`]): detection,
//!   time to detect, false alerts.
//! - [`error`]: the crate's [`Error`] and [`Result`].

pub mod error;
pub mod evaluate;
pub mod export;
pub mod generate;
pub mod io;

pub use error::{Error, Result};
pub use evaluate::{evaluate, CampaignResult, Detection, EvaluationSummary};
pub use export::{label_rows, write_features_parquet};
pub use generate::{
    generate, AttackKind, AttackMix, Campaign, Dataset, GeneratorConfig, LabelledEvent,
    DEFAULT_START_MS,
};
pub use io::{
    write_campaigns_json, write_dataset, write_events_jsonl, write_labels_jsonl, DatasetFiles,
};
