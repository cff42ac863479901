//! What every fuzz target shares: the parsers, built as the golden tests build them, and the
//! check each input goes through.

use std::sync::Arc;

use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::{
    build_parser, Format, LineParser, MappingConfig, ParserContext, DEFAULT_MAX_LINE_BYTES,
};
use outrider_ingest::Parsed;
use serde::Deserialize;

/// The golden tests' identity settings: trusted proxies 10.0.0.0/8 and fd00::/8, a fixed key.
pub fn context() -> ParserContext {
    let mut config = IdentityConfig::default();
    for net in ["10.0.0.0/8", "fd00::/8"] {
        if let Ok(net) = net.parse() {
            config.trusted_proxies.push(net);
        }
    }
    ParserContext {
        identity: Arc::new(IdentityExtractor::with_key(&config, b"golden-key")),
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    }
}

/// The parser of a built-in format.
pub fn parser(format: Format) -> Box<dyn LineParser> {
    match build_parser(format, &context(), None) {
        Ok(p) => p,
        Err(e) => panic!("cannot build the {format} parser: {e}"),
    }
}

#[derive(Deserialize)]
struct Case {
    mapping: Option<MappingConfig>,
}

/// The fixed mappings the `parse_mapping` target uses: those of the golden cases
/// `mapping_api` and `mapping_token`, so that their lines (the seed corpus) mean something.
pub const MAPPINGS: [&str; 2] = [
    include_str!("../../ingest/testdata/mapping_api/case.toml"),
    include_str!("../../ingest/testdata/mapping_token/case.toml"),
];

/// One mapping parser per entry of [`MAPPINGS`].
pub fn mapping_parsers() -> Vec<Box<dyn LineParser>> {
    MAPPINGS
        .iter()
        .map(|text| {
            let case: Case = toml::from_str(text).unwrap_or_else(|e| panic!("bad case.toml: {e}"));
            let mapping = case
                .mapping
                .unwrap_or_else(|| panic!("case.toml has no [mapping]"));
            build_parser(Format::Mapping, &context(), Some(&mapping))
                .unwrap_or_else(|e| panic!("cannot build the mapping parser: {e}"))
        })
        .collect()
}

/// Parses `data`; whatever the outcome, it must come back without a panic, and an event must
/// be writable as a canonical line that reads back (no NaN, no invalid address, ...).
pub fn check(parser: &dyn LineParser, data: &[u8]) {
    if let Ok(Parsed::Event(event)) = parser.parse(data) {
        let line = event.to_json_line();
        if let Err(e) = outrider_ingest::parse_line(line.as_bytes(), usize::MAX) {
            panic!(
                "{} made an event that is not canonical: {e}\n{line}",
                parser.format()
            );
        }
    }
}
