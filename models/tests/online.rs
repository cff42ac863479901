//! Half-Space Trees on synthetic streams: anomalies rank above normal rows, the detector
//! follows a moved normal, and its state is deterministic and checkpointable.

#![allow(clippy::unwrap_used)]

use ndarray::{Array2, ArrayView1, Axis};
use outrider_models::online::{FeatureRange, HalfSpaceTrees, HalfSpaceTreesParams};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIMS: usize = 5;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Count-like rows around `center` (10 % noise), never negative.
fn rows_around(center: &[f32; DIMS], n: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((n, DIMS), |(_, j)| {
        (center[j] * (1.0 + 0.1 * normal(rng))).max(0.0)
    })
}

/// A normal row with one or two features inflated 4-20x, as an attack inflates counts.
fn anomaly(center: &[f32; DIMS], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut row: Vec<f32> = center
        .iter()
        .map(|c| (c * (1.0 + 0.1 * normal(rng))).max(0.0))
        .collect();
    for _ in 0..rng.random_range(1..=2) {
        let j = rng.random_range(0..DIMS);
        row[j] *= rng.random_range(4.0..20.0);
    }
    row
}

/// Area under the ROC curve: the chance that a random anomaly outscores a random normal
/// row (ties count half).
fn auc(normal: &[f32], anomalous: &[f32]) -> f64 {
    let mut wins = 0.0;
    for &a in anomalous {
        for &n in normal {
            wins += if a > n {
                1.0
            } else if a == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (normal.len() * anomalous.len()) as f64
}

const CENTER: [f32; DIMS] = [20.0, 50.0, 5.0, 120.0, 2.0];

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

#[test]
fn anomalies_outscore_normal_rows() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let params = HalfSpaceTreesParams::default().check().unwrap();
    let mut hst = params
        .fit(rows_around(&CENTER, 2_000, &mut rng).view())
        .unwrap();
    assert!(hst.is_warm());
    // A stream with 2 % scattered anomalies, scored then learned row by row.
    let (mut normal_scores, mut anomaly_scores) = (Vec::new(), Vec::new());
    for _ in 0..5_000 {
        let is_anomaly = rng.random::<f32>() < 0.02;
        let row = if is_anomaly {
            anomaly(&CENTER, &mut rng)
        } else {
            rows_around(&CENTER, 1, &mut rng).row(0).to_vec()
        };
        let score = hst
            .score_and_update_row(ArrayView1::from(&row[..]))
            .unwrap()
            .expect("warm after fitting on 2000 rows");
        assert!((0.0..=1.0).contains(&score));
        if is_anomaly {
            anomaly_scores.push(score);
        } else {
            normal_scores.push(score);
        }
    }
    let auc = auc(&normal_scores, &anomaly_scores);
    assert!(anomaly_scores.len() > 50, "{}", anomaly_scores.len());
    assert!(auc > 0.95, "AUC {auc:.3}");
}

#[test]
fn scores_return_to_low_after_the_normal_moves() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let window = 256;
    let params = HalfSpaceTreesParams::default()
        .window_size(window)
        .check()
        .unwrap();
    let ranges = vec![FeatureRange::new(0.0, 2_000.0).unwrap(); DIMS];
    let mut hst = params.with_ranges(&ranges).unwrap();
    let old = [10.0, 40.0, 5.0, 100.0, 3.0];
    let new = [300.0, 8.0, 60.0, 900.0, 40.0];
    // Three windows of the old normal.
    let warm = hst
        .score_and_update(rows_around(&old, 3 * window, &mut rng).view())
        .unwrap();
    assert!(
        warm[..window].iter().all(Option::is_none),
        "first window warms up"
    );
    assert!(warm[window..].iter().all(Option::is_some));
    let baseline = mean(
        &hst.score(rows_around(&old, 500, &mut rng).view())
            .unwrap()
            .unwrap()
            .to_vec(),
    );

    // The normal moves: the new rows are anomalous at first ...
    let probe = rows_around(&new, 500, &mut rng);
    let at_drift = mean(&hst.score(probe.view()).unwrap().unwrap().to_vec());
    assert!(
        at_drift > baseline + 0.2,
        "new normal at drift {at_drift:.3} vs baseline {baseline:.3}"
    );
    // ... and after two windows of it the detector has adapted.
    hst.update(rows_around(&new, 2 * window, &mut rng).view())
        .unwrap();
    let adapted = mean(&hst.score(probe.view()).unwrap().unwrap().to_vec());
    assert!(
        adapted < baseline + 0.05,
        "new normal after two windows {adapted:.3} vs baseline {baseline:.3}"
    );
    // The old normal is forgotten.
    let old_now = mean(
        &hst.score(rows_around(&old, 500, &mut rng).view())
            .unwrap()
            .unwrap()
            .to_vec(),
    );
    assert!(
        old_now > adapted + 0.2,
        "old {old_now:.3} vs new {adapted:.3}"
    );
}

fn stream(seed: u64, n: usize) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rows_around(&CENTER, n, &mut rng)
}

fn detector(seed: u64) -> HalfSpaceTrees {
    HalfSpaceTreesParams::default()
        .n_trees(10)
        .window_size(64)
        .seed(seed)
        .check()
        .unwrap()
        .with_ranges(&[FeatureRange::new(0.0, 500.0).unwrap(); DIMS])
        .unwrap()
}

#[test]
fn same_seed_same_scores_other_seed_other_trees() {
    let x = stream(3, 400);
    let (mut a, mut b, mut c) = (detector(7), detector(7), detector(8));
    let sa = a.score_and_update(x.view()).unwrap();
    let sb = b.score_and_update(x.view()).unwrap();
    let sc = c.score_and_update(x.view()).unwrap();
    assert_eq!(sa, sb);
    assert_eq!(a, b);
    assert_ne!(sa, sc, "another seed builds other trees");
}

#[test]
fn a_checkpoint_restored_mid_window_continues_identically() {
    let x = stream(4, 300);
    let (first, rest) = x.view().split_at(Axis(0), 100);
    let mut straight = detector(1);
    straight.update(first).unwrap();
    assert!(
        straight.rows_in_window() > 0,
        "checkpoint falls inside a window"
    );
    let json = serde_json::to_string(&straight).unwrap();
    let mut restored: HalfSpaceTrees = serde_json::from_str(&json).unwrap();
    assert_eq!(
        straight.score_and_update(rest).unwrap(),
        restored.score_and_update(rest).unwrap()
    );
    assert_eq!(straight, restored);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any finite row scores in [0, 1], and scoring never changes the detector.
    #[test]
    fn scores_lie_in_the_unit_interval(
        rows in proptest::collection::vec(
            proptest::collection::vec(-1e6f32..1e6, DIMS), 65..200)
    ) {
        let mut hst = detector(5);
        for row in &rows {
            let before = hst.clone();
            let s = hst.score_row(ArrayView1::from(&row[..])).unwrap();
            prop_assert_eq!(&hst, &before);
            if let Some(s) = s {
                prop_assert!((0.0..=1.0).contains(&s), "{}", s);
            }
            hst.update_row(ArrayView1::from(&row[..])).unwrap();
        }
        prop_assert!(hst.is_warm());
    }
}
