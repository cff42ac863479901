//! Parses `sample_line`s with the Envoy parser, for profilers (`perf record`, `valgrind
//! --tool=callgrind`): `cargo run --release -p outrider-ingest --no-default-features
//! --example envoy_parse_bench -- [lines] [passes]`. Set up as `outrider bench parse` is.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::envoy::{sample_line, EnvoyParser};
use outrider_ingest::parse::{LineParser, ParserContext, DEFAULT_MAX_LINE_BYTES};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().unwrap_or(0));
    let n = args.next().unwrap_or(200_000).max(1);
    let passes = args.next().unwrap_or(3).max(1);
    let lines: Vec<String> = (0..n).map(sample_line).collect();
    let parser = EnvoyParser::new(ParserContext {
        identity: Arc::new(IdentityExtractor::with_key(
            &IdentityConfig::default(),
            b"bench",
        )),
        max_line_bytes: DEFAULT_MAX_LINE_BYTES,
    });
    let mut best = f64::MAX;
    for _ in 0..passes {
        let start = Instant::now();
        let ok = lines
            .iter()
            .filter(|l| black_box(parser.parse(l.as_bytes())).is_ok())
            .count();
        assert_eq!(ok, lines.len(), "every sample line parses");
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{n} lines: {:.0} ns/line, {:.0} lines/s",
        best * 1e9 / n as f64,
        n as f64 / best
    );
}
