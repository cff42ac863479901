//! Outrider features: per-API, per-identity, per-token and per-IP access patterns in
//! event-time sliding windows, with bounded memory.
//!
//! The crate is pure: no I/O, no wall clock, no randomness. Time only moves when the caller
//! hands it events and watermarks, so replaying a file and consuming Kafka compute identical
//! vectors for identical events.
//!
//! Layout:
//! - [`schema`]: every feature, documented, and the schema id that model files record.
//! - [`window`]: the window configuration and the state bounds.
//! - [`extractor`]: `observe(&event)` and `advance(watermark) -> rows`.
//! - `state`, `row`, `tables`: per-key buckets and profiles, row computation, shared
//!   learned tables (Markov model, per-route and peer baselines).
//! - [`sketch`]: HyperLogLog and a log-binned quantile histogram.
//! - [`checkpoint`]: versioned snapshots of the whole state.
//! - [`context`]: the inline lists of a row's context.
//! - [`arrow`] (feature `arrow`): rows as an Arrow `RecordBatch`.

#[cfg(feature = "arrow")]
pub mod arrow;
pub mod checkpoint;
pub mod context;
pub mod error;
pub mod extractor;
mod hash;
mod row;
pub mod schema;
pub mod sketch;
mod state;
mod tables;
pub mod window;

pub use context::{ContextList, CONTEXT_CAP};
pub use error::{Error, Result};
pub use extractor::{
    peer_group, ExtractorStats, FeatureExtractor, FeatureRow, Observed, WindowContext, OVERFLOW_KEY,
};
/// The stable 64-bit hash the features key their state with (same value on every build).
pub use hash::hash64;
pub use schema::{FeatureId, FEATURE_COUNT, FEATURE_NAMES, SCHEMA_ID};
pub use window::WindowConfig;
