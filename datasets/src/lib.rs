//! Outrider datasets: labelled synthetic API traffic, exports for data scientists, and the
//! evaluation harness and benchmark suite that score detectors against it.
//!
//! Layout:
//! - [`mod@generate`]: [`EventStream`] turns a [`GeneratorConfig`] into gateway and
//!   token-server events in time order, each labelled with its attack [`Campaign`] (or
//!   benign); [`generate()`] collects a small one into a [`Dataset`].
//! - [`formats`]: the events as each gateway and token server logs them.
//! - [`io`]: writes a dataset (or a stream) in one or more formats, with labels and
//!   campaigns.
//! - [`export`]: Parquet tables of raw events and of labelled feature rows.
//! - [`mod@evaluate`]: matches [`Detection`]s against campaigns ([`evaluate()`]): detection,
//!   time to detect, false alerts (the demo's scorecard).
//! - [`metrics`]: precision, recall, F1, ROC-AUC and PR-AUC.
//! - [`harness`]: scored feature rows against labels, per attack kind, at event,
//!   window, identity and campaign level; a Markdown table, JSON and SVG plots.
//! - [`suite`]: benchmark scenarios (`datasets/suite/*.toml`) run end to end.
//! - [`table`]: loads any CSV or Parquet feature table with a label column.
//! - [`error`]: the crate's [`Error`] and [`Result`].

pub mod error;
pub mod evaluate;
pub mod export;
pub mod formats;
pub mod generate;
pub mod harness;
pub mod io;
pub mod metrics;
pub mod plot;
#[cfg(feature = "sql")]
pub mod sql;
pub mod suite;
pub mod table;

pub use error::{Error, Result};
pub use evaluate::{evaluate, CampaignResult, Detection, EvaluationSummary};
pub use export::{label_rows, raw_event_schema, write_features_parquet, RawEventWriter};
pub use formats::OutputFormat;
pub use generate::{
    generate, ApiKind, AttackKind, AttackMix, AttackSpec, Campaign, Dataset, EventStream,
    GeneratorConfig, LabelledEvent, TrafficModel, DEFAULT_START_MS,
};
pub use harness::{table_report, Evaluation, Level, Report, ReportOptions};
pub use io::{
    read_campaigns_json, write_campaigns_json, write_dataset, write_events_jsonl,
    write_labels_jsonl, write_stream, DatasetFiles, OutputTarget, WriteSummary,
};
/// The array types of [`Detector`] and [`FeatureTable`].
pub use ndarray;
pub use suite::{
    run_suite, write_results, Detector, ForestDetector, ModelConfig, SuiteConfig, TrainOn,
};
pub use table::{load_table, FeatureTable, TableOptions};
