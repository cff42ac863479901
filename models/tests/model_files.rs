//! Model files written by earlier builds stay loadable and score exactly as they did.
//!
//! `fixtures/model-v1.json` was written by the format-1 build (axis-parallel forest, log1p,
//! no scaler), `fixtures/model-v2.json` by the first format-2 build (extended forest,
//! robust scaling, peer-group baselines, hold-out summary, metrics). Each `.expected.json`
//! holds the scores and explanations that build computed for a few probe rows.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use outrider_models::{
    Algorithm, CalibrationParams, Error, FeatureSchema, IsolationForest, IsolationForestParams,
    TrainOptions, TrainedModel, MODEL_FORMAT_VERSION,
};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn fixture_schema() -> FeatureSchema {
    FeatureSchema::new("fixture-v1", ["a", "b", "c"])
}

/// The training rows both fixtures were fitted on.
fn fixture_rows() -> Array2<f32> {
    Array2::from_shape_fn((200, 3), |(i, j)| match j {
        0 => (i * 7 % 23) as f32,
        1 => (i * 13 % 31) as f32 * 10.0,
        _ => (i % 5) as f32,
    })
}

/// Scores and explanations of the probe rows equal, bit for bit, what the writing build
/// computed (f32 values were stored through f64, which is exact).
fn assert_scores_as_recorded(model: &TrainedModel, expected: &Value) {
    let f32_of = |v: &Value| v.as_f64().unwrap() as f32;
    assert_eq!(
        model.model_version(),
        expected["model_version"].as_str().unwrap()
    );
    assert_eq!(
        model.threshold().to_bits(),
        f32_of(&expected["threshold"]).to_bits()
    );
    let rows = expected["rows"].as_array().unwrap();
    for (i, row) in rows.iter().enumerate() {
        let row: Vec<f32> = row.as_array().unwrap().iter().map(f32_of).collect();
        let want = f32_of(&expected["scores"][i]);
        assert_eq!(model.score_row(&row).to_bits(), want.to_bits(), "row {i}");
        let batch = model.score(Array2::from_shape_vec((1, 3), row.clone()).unwrap().view());
        assert_eq!(batch.unwrap()[0].to_bits(), want.to_bits(), "batch row {i}");
        let got: Vec<(String, u32)> = model
            .explain(&row)
            .into_iter()
            .map(|e| (e.name, e.contribution.to_bits()))
            .collect();
        let want: Vec<(String, u32)> = expected["explanations"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), f32_of(&p[1]).to_bits()))
            .collect();
        assert_eq!(got, want, "explanation of row {i}");
    }
}

#[test]
fn format_1_file_loads_and_scores_as_written() {
    let model = TrainedModel::load(&fixture("model-v1.json")).unwrap();
    assert_eq!(model.file_format_version(), 1);
    assert_eq!(model.format_version(), MODEL_FORMAT_VERSION);
    assert_eq!(model.algorithm(), Algorithm::Standard);
    assert!(model.preprocessor().scaler.is_none());
    assert!(model.groups().is_empty() && model.metrics().is_none());
    assert!(model.training().holdout.is_none());
    assert_scores_as_recorded(&model, &expected("model-v1.expected.json"));
}

#[test]
fn format_2_file_loads_and_scores_as_written() {
    let model = TrainedModel::load(&fixture("model-v2.json")).unwrap();
    assert_eq!(model.file_format_version(), 2);
    assert_eq!(model.algorithm(), Algorithm::Extended);
    assert_eq!(model.forest().plane_width(), Some(2));
    assert!(model.preprocessor().scaler.is_some());
    assert_eq!(model.groups().len(), 2);
    assert_eq!(model.training().holdout.as_ref().unwrap().rows, 40);
    assert_eq!(model.metrics().unwrap().anomalies, 4);
    // Written before calibration existed: none, and the global threshold decides.
    assert!(model.calibration().is_none());
    assert!(model.assess(0.99, &["api:/a"], &["peer:sub"]).is_none());
    assert_scores_as_recorded(&model, &expected("model-v2.expected.json"));
}

#[test]
fn calibration_survives_a_save_and_load() {
    let x = fixture_rows();
    let opts = TrainOptions {
        params: IsolationForestParams::default().n_trees(20).sample_size(64),
        ..TrainOptions::new("2025-01-01T00:00:00Z")
    };
    let mut model = TrainedModel::train(fixture_schema(), x.view(), &opts).unwrap();
    let version = model.model_version().to_owned();
    // Rows with an even first column called API "/even", the others "/odd"; all are users.
    let groups: Vec<Vec<String>> = (0..x.nrows())
        .map(|i| {
            let api = if x[[i, 0]] as u32 % 2 == 0 {
                "api:/even"
            } else {
                "api:/odd"
            };
            vec![api.to_owned(), "peer:sub".to_owned()]
        })
        .collect();
    let params = CalibrationParams::default()
        .target_false_alert_rate(0.05)
        .min_group_samples(40)
        .check()
        .unwrap();
    let cal = model.calibrate(x.view(), &groups, &params).unwrap().clone();
    assert_eq!(cal.groups().len(), 3, "{:?}", cal.groups().keys());
    assert_eq!(model.model_version(), version, "scores did not change");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calibrated.json");
    model.save(&path).unwrap();
    let loaded = TrainedModel::load(&path).unwrap();
    assert_eq!(loaded.calibration(), Some(&cal));
    assert_eq!(loaded, model);
    let probe = model.score_row(&[22.0, 300.0, 4.0]);
    let (a, b) = (
        model.assess(probe, &["api:/even"], &["peer:sub"]).unwrap(),
        loaded.assess(probe, &["api:/even"], &["peer:sub"]).unwrap(),
    );
    assert_eq!(
        (a.risk.to_bits(), a.threshold.to_bits()),
        (b.risk.to_bits(), b.threshold.to_bits())
    );
    assert_eq!(b.group, Some("api:/even"));
    // A corrupt calibration is refused on load, naming the file.
    let mut json: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    json["calibration"]["global"]["threshold"] = Value::String("high".into());
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(
        TrainedModel::load(&path),
        Err(Error::Format { .. })
    ));
    // Mismatched group lists are refused.
    assert!(model.calibrate(x.view(), &groups[..3], &params).is_err());
}

#[test]
fn this_build_grows_the_format_1_forest_unchanged() {
    // Same data, same parameters: the same trees as the format-1 build grew.
    let file: Value =
        serde_json::from_str(&fs::read_to_string(fixture("model-v1.json")).unwrap()).unwrap();
    let opts = TrainOptions {
        params: IsolationForestParams::default()
            .n_trees(4)
            .sample_size(32)
            .seed(11),
        ..TrainOptions::new("2025-01-01T00:00:00Z")
    };
    let model = TrainedModel::train(fixture_schema(), fixture_rows().view(), &opts).unwrap();
    let stored: IsolationForest = serde_json::from_value(file["forest"].clone()).unwrap();
    assert_eq!(model.forest(), &stored);
}

#[test]
fn resaving_an_old_file_writes_the_current_format() {
    let old = TrainedModel::load(&fixture("model-v1.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgraded.json");
    old.save(&path).unwrap();
    let json: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["format_version"], MODEL_FORMAT_VERSION);
    let new = TrainedModel::load(&path).unwrap();
    assert_eq!(new.file_format_version(), MODEL_FORMAT_VERSION);
    assert_scores_as_recorded(&new, &expected("model-v1.expected.json"));
}

#[test]
fn newer_format_and_other_schema_are_refused_naming_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.json");
    let mut json: Value =
        serde_json::from_str(&fs::read_to_string(fixture("model-v2.json")).unwrap()).unwrap();
    json["format_version"] = (MODEL_FORMAT_VERSION + 1).into();
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = TrainedModel::load(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedFormatVersion {
                found: 3,
                max: 2,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    for needle in [
        "future.json",
        "format version 3",
        "versions 1 to 2",
        "upgrade",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }

    let detector = FeatureSchema::new("identity-v2", ["a", "b", "d"]);
    let err = TrainedModel::load_for_schema(&fixture("model-v1.json"), &detector).unwrap_err();
    let msg = err.to_string();
    for needle in [
        "`fixture-v1`",
        "`identity-v2`",
        "only in the model: c",
        "only in the detector: d",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
}
