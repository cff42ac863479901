//! Shared by the ingest integration tests.
#![allow(clippy::unwrap_used, dead_code)] // test code

use std::sync::Arc;

use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::{ParserContext, DEFAULT_MAX_LINE_BYTES};

/// The identity settings golden cases and fuzz corpora are parsed with (the same as
/// `fuzz/src/lib.rs`): trusted proxies 10.0.0.0/8 and fd00::/8, hash key "golden-key".
pub fn fixed_context() -> ParserContext {
    let config = IdentityConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..IdentityConfig::default()
    };
    ParserContext {
        identity: Arc::new(IdentityExtractor::with_key(&config, b"golden-key")),
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    }
}
