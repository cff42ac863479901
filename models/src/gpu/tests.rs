#![allow(clippy::unwrap_used)]

use super::*;
use crate::isolation_forest::IsolationForestParams;
use crate::model_file::TrainOptions;
use crate::schema::FeatureSchema;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = 1.0 - rng.random::<f32>();
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn data(rows: usize, cols: usize, spread: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || spread * normal(&mut rng))
}

/// Test rows inside and far outside the training data, with NaN and infinities.
fn probes() -> Array2<f32> {
    let mut x = data(300, 5, 3.0, 2);
    x[[0, 1]] = f32::NAN;
    x[[1, 2]] = f32::INFINITY;
    x[[2, 0]] = f32::NEG_INFINITY;
    x[[3, 4]] = 1e30;
    x
}

fn all_kinds() -> Vec<IsolationForestParams> {
    let base = IsolationForestParams::default().n_trees(40).seed(3);
    vec![
        base,
        base.range_check(false),
        base.extended(None),
        base.extended(Some(1)).range_check(false),
        base.sample_size(64),
    ]
}

fn assert_close(native: &Array1<f32>, tensor: &Array1<f32>, what: &str) {
    assert_eq!(native.len(), tensor.len());
    for (i, (a, b)) in native.iter().zip(tensor).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5,
            "{what}: row {i}: native {a}, tensor {b}"
        );
    }
}

fn check_parity(device: &Device) {
    let train = data(800, 5, 1.0, 1);
    let x = probes();
    for params in all_kinds() {
        let forest = params.check().unwrap().fit(train.view()).unwrap();
        let tensor = TensorForest::new(&forest, device).unwrap();
        let what = format!("{forest:?}");
        assert_close(
            &forest.score(x.view()).unwrap(),
            &tensor.score(x.view()).unwrap(),
            &what,
        );
    }
}

#[test]
fn candle_cpu_scores_equal_the_native_scorer() {
    check_parity(&Device::Cpu);
}

#[test]
fn tensor_model_applies_the_preprocessing() {
    let train = data(1000, 3, 10.0, 4).mapv(f32::abs);
    let schema = FeatureSchema::new("s", ["a", "b", "c"]);
    let opts = TrainOptions {
        params: IsolationForestParams::default().n_trees(30).extended(None),
        scaling: crate::Scaling::Robust,
        ..TrainOptions::new("t")
    };
    let model = TrainedModel::train(schema, train.view(), &opts).unwrap();
    let tensor = TensorModel::new(&model, &Device::Cpu).unwrap();
    let x = data(200, 3, 30.0, 5);
    assert_close(
        &model.score(x.view()).unwrap(),
        &tensor.score(x.view()).unwrap(),
        "model",
    );
    let err = tensor.score(Array2::zeros((2, 4)).view()).unwrap_err();
    assert!(matches!(
        err,
        Error::DimensionMismatch {
            expected: 3,
            found: 4
        }
    ));
}

#[test]
fn large_batches_are_chunked_without_changing_scores() {
    let train = data(500, 5, 1.0, 6);
    let forest = IsolationForestParams::default()
        .n_trees(300)
        .extended(None)
        .check()
        .unwrap()
        .fit(train.view())
        .unwrap();
    let tensor = TensorForest::new(&forest, &Device::Cpu).unwrap();
    // 300 trees x 8 values per slot (dense planes over 5 features, padded to 8): 6,990 rows
    // per chunk, so 12,000 rows take two.
    let x = data(12_000, 5, 2.0, 7);
    const { assert!(12_000 > MAX_CHUNK_ELEMENTS / (300 * 8)) };
    assert_close(
        &forest.score(x.view()).unwrap(),
        &tensor.score(x.view()).unwrap(),
        "chunked",
    );
}

#[test]
fn forests_without_a_padded_layout_are_refused() {
    let wide = Array2::from_shape_fn((40, 1100), |(r, c)| ((r * 31 + c * 7) % 97) as f32);
    let forest = IsolationForestParams::default()
        .n_trees(3)
        .check()
        .unwrap()
        .fit(wide.view())
        .unwrap();
    let err = TensorForest::new(&forest, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("too deep or too wide"), "{err}");
}

/// Runs on a machine with an NVIDIA GPU when built with `--features cuda` (ignored
/// otherwise); with the feature but no usable device it prints why it did not run.
#[test]
#[cfg_attr(
    not(feature = "cuda"),
    ignore = "needs --features cuda and an NVIDIA GPU"
)]
fn cuda_scores_equal_the_native_scorer() {
    if !cfg!(feature = "cuda") {
        eprintln!("skipped: built without the `cuda` feature");
        return;
    }
    match cuda_device(0) {
        Ok(device) => check_parity(&device),
        Err(e) => eprintln!("skipped: no CUDA device: {e}"),
    }
}
