#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use outrider_ingest::parse::LineParser;

/// Every input goes through both fixed mappings (an access log and an IdP's events).
static PARSERS: LazyLock<Vec<Box<dyn LineParser>>> =
    LazyLock::new(outrider_ingest_fuzz::mapping_parsers);

fuzz_target!(|data: &[u8]| {
    for parser in PARSERS.iter() {
        outrider_ingest_fuzz::check(parser.as_ref(), data);
    }
});
