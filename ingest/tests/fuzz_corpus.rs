//! Replays the fuzzing corpus (`fuzz/corpus/<target>/`) and any crash files kept as
//! regressions (`fuzz/artifacts/<target>/`) through the parser each target fuzzes, with the
//! fuzz targets' check: no panic, and every event writable as a canonical line that reads
//! back. It runs with the ordinary `cargo test`; the fuzzers themselves need cargo-fuzz
//! (see `fuzz/README.md`). A missing or empty corpus folder fails the test, so a renamed
//! target or a lost corpus cannot pass silently.
#![allow(clippy::unwrap_used)] // test code

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use outrider_ingest::parse::{build_parser, Format, LineParser, MappingConfig};
use outrider_ingest::Parsed;
use serde::Deserialize;

/// The fuzz targets and the formats they parse (`fuzz/fuzz_targets/<target>.rs`).
const TARGETS: [(&str, Format); 8] = [
    ("parse_canonical", Format::Canonical),
    ("parse_envoy", Format::Envoy),
    ("parse_nginx_json", Format::NginxJson),
    ("parse_nginx_combined", Format::NginxCombined),
    ("parse_kong", Format::Kong),
    ("parse_aws_apigw", Format::AwsApigw),
    ("parse_keycloak", Format::Keycloak),
    ("parse_mapping", Format::Mapping),
];

/// The golden cases whose `[mapping]` tables the `parse_mapping` target uses.
const MAPPING_CASES: [&str; 2] = ["mapping_api", "mapping_token"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[derive(Deserialize)]
struct Case {
    mapping: Option<MappingConfig>,
}

fn parsers(format: Format) -> Vec<Box<dyn LineParser>> {
    if format != Format::Mapping {
        return vec![build_parser(format, &common::fixed_context(), None).unwrap()];
    }
    MAPPING_CASES
        .iter()
        .map(|case| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata")
                .join(case)
                .join("case.toml");
            let case: Case = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            build_parser(format, &common::fixed_context(), case.mapping.as_ref()).unwrap()
        })
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The fuzz targets' check (`fuzz/src/lib.rs`).
fn check(parser: &dyn LineParser, data: &[u8]) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| parser.parse(data)))
        .map_err(|_| format!("{} panicked", parser.format()))?;
    if let Ok(Parsed::Event(event)) = outcome {
        let line = event.to_json_line();
        outrider_ingest::parse_line(line.as_bytes(), usize::MAX).map_err(|e| {
            format!(
                "{} made an event that is not canonical ({e}): {line}",
                parser.format()
            )
        })?;
    }
    Ok(())
}

#[test]
fn every_corpus_input_parses_without_panicking() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, format) in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(target);
        let mut inputs = files(&corpus);
        assert!(
            !inputs.is_empty(),
            "{} is missing or empty: run fuzz/seed-corpus.sh",
            corpus.display()
        );
        inputs.extend(files(&fuzz_dir().join("artifacts").join(target)));
        let parsers = parsers(format);
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            for parser in &parsers {
                if let Err(e) = check(parser.as_ref(), &data) {
                    failures.push(format!("{}: {e}", input.display()));
                }
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
