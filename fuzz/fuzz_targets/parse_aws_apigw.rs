#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use outrider_ingest::parse::{Format, LineParser};

static PARSER: LazyLock<Box<dyn LineParser>> =
    LazyLock::new(|| outrider_ingest_fuzz::parser(Format::AwsApigw));

fuzz_target!(|data: &[u8]| outrider_ingest_fuzz::check(PARSER.as_ref(), data));
