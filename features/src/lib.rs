//! Outrider features: per-identity access patterns in event-time sliding windows.
//!
//! The crate is pure: no I/O, no wall clock, no randomness. Time only moves when the caller
//! hands it events and watermarks, so replaying a file and consuming Kafka compute identical
//! vectors for identical events.
//!
//! Layout:
//! - [`schema`]: the feature names and schema id that model files record.
//! - [`window`]: the window configuration (length, hop, allowed lateness).
//! - [`extractor`]: `observe(&event)` and `advance(watermark) -> rows`.

pub mod error;
pub mod extractor;
pub mod schema;
pub mod window;

pub use error::{Error, Result};
pub use extractor::{ExtractorStats, FeatureExtractor, FeatureRow, Observed, WindowContext};
pub use schema::{FeatureId, FEATURE_COUNT, FEATURE_NAMES, SCHEMA_ID};
pub use window::WindowConfig;
