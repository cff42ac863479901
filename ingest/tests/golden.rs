//! Golden files: every case under `testdata/<case>/` is parsed and compared line by line.
//!
//! A case holds `case.toml` (`format = "envoy"`, and a `[mapping]` table for the mapping
//! format), `input.log` and `expected.jsonl`, one JSON object per input line:
//! `{"event": <canonical event>}`, `{"skipped": "<reason>"}` or `{"error": "<reason>"}`.
//! Run with `UPDATE_GOLDEN=<case>` to rewrite the expected files of the cases whose folder
//! name contains `<case>` (`UPDATE_GOLDEN=all` for every case), then review the diff.
#![allow(clippy::unwrap_used)] // test code

mod common;

use std::path::{Path, PathBuf};

use outrider_ingest::parse::{build_parser, Format, MappingConfig};
use outrider_ingest::Parsed;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    format: Format,
    mapping: Option<MappingConfig>,
}

fn outcome(result: Result<Parsed, outrider_ingest::ParseError>) -> Value {
    match result {
        Ok(Parsed::Event(e)) => json!({ "event": serde_json::to_value(e).unwrap() }),
        Ok(Parsed::Skipped(reason)) => json!({ "skipped": reason }),
        Err(e) => json!({ "error": e.reason.as_str() }),
    }
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_format_parses_its_fixtures_to_the_golden_outputs() {
    let update = std::env::var("UPDATE_GOLDEN").ok();
    let mut failures = Vec::new();
    let cases = cases();
    for dir in &cases {
        let case: Case =
            toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap()).unwrap();
        let parser =
            build_parser(case.format, &common::fixed_context(), case.mapping.as_ref()).unwrap();
        let input = std::fs::read(dir.join("input.log")).unwrap();
        let got: Vec<String> = input
            .split_inclusive(|b| *b == b'\n')
            .map(|line| outcome(parser.parse(line)).to_string())
            .collect();
        let expected_path = dir.join("expected.jsonl");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(which) = &update {
            if which == "all" || which == "1" || name.contains(which.as_str()) {
                std::fs::write(&expected_path, got.join("\n") + "\n").unwrap();
                continue;
            }
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let expected: Vec<&str> = expected.lines().collect();
        if expected.len() != got.len() {
            failures.push(format!(
                "{}: {} outputs, expected {}",
                dir.display(),
                got.len(),
                expected.len()
            ));
            continue;
        }
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let (gv, ev): (Value, Value) = (
                serde_json::from_str(g).unwrap(),
                serde_json::from_str(e).unwrap(),
            );
            if gv != ev {
                failures.push(format!(
                    "{} line {}:\n  got      {g}\n  expected {e}",
                    dir.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(!cases.is_empty(), "no golden cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
