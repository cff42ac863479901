//! Trains and scores an isolation forest on CSV files and prints the timings as JSON; the
//! scores go to a file so `bench/sklearn_compare.py` can compute AUCs. Also runs on
//! synthetic data for quick layout experiments.
//!
//! ```text
//! cargo run --release -p outrider-models --example iforest_bench -- \
//!     --train train.csv --test test.csv --scores scores.txt [--trees 100] [--samples 256] \
//!     [--algorithm standard|extended] [--extension-level N] [--no-range-check] \
//!     [--transform none|log1p] [--scaling none|standard|robust] [--seed 42] [--min-seconds 2]
//! cargo run --release -p outrider-models --example iforest_bench -- --synthetic 100000x36
//! ```
//!
//! CSV: one header line, then comma-separated numbers, one row per line.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ndarray::Array2;
use outrider_models::isolation_forest::{Algorithm, IsolationForest};
use outrider_models::{IsolationForestParams, Preprocessor, Scaling, Transform};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug)]
struct Args {
    train: Option<PathBuf>,
    test: Option<PathBuf>,
    scores: Option<PathBuf>,
    synthetic: Option<(usize, usize)>,
    trees: usize,
    samples: usize,
    seed: u64,
    algorithm: Algorithm,
    extension_level: Option<usize>,
    range_check: bool,
    transform: Transform,
    scaling: Scaling,
    min_seconds: f64,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        train: None,
        test: None,
        scores: None,
        synthetic: None,
        trees: 100,
        samples: 256,
        seed: 42,
        algorithm: Algorithm::Standard,
        extension_level: None,
        range_check: true,
        transform: Transform::Identity,
        scaling: Scaling::None,
        min_seconds: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--train" => args.train = Some(value()?.into()),
            "--test" => args.test = Some(value()?.into()),
            "--scores" => args.scores = Some(value()?.into()),
            "--synthetic" => {
                let v = value()?;
                let (r, c) = v.split_once('x').ok_or("--synthetic ROWSxCOLS")?;
                args.synthetic = Some((r.parse()?, c.parse()?));
            }
            "--trees" => args.trees = value()?.parse()?,
            "--samples" => args.samples = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--algorithm" => {
                args.algorithm = match value()?.as_str() {
                    "standard" => Algorithm::Standard,
                    "extended" => Algorithm::Extended,
                    other => return Err(format!("unknown algorithm {other}").into()),
                }
            }
            "--extension-level" => args.extension_level = Some(value()?.parse()?),
            "--no-range-check" => args.range_check = false,
            "--transform" => {
                args.transform = match value()?.as_str() {
                    "none" => Transform::Identity,
                    "log1p" => Transform::Log1p,
                    other => return Err(format!("unknown transform {other}").into()),
                }
            }
            "--scaling" => {
                args.scaling = match value()?.as_str() {
                    "none" => Scaling::None,
                    "standard" => Scaling::Standard,
                    "robust" => Scaling::Robust,
                    other => return Err(format!("unknown scaling {other}").into()),
                }
            }
            "--min-seconds" => args.min_seconds = value()?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

fn read_csv(path: &PathBuf) -> Result<Array2<f32>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty CSV")?;
    let cols = header.split(',').count();
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        let before = values.len();
        for field in line.split(',') {
            values.push(
                field
                    .trim()
                    .parse::<f32>()
                    .map_err(|e| format!("{} line {}: {field:?}: {e}", path.display(), i + 2))?,
            );
        }
        if values.len() - before != cols {
            return Err(
                format!("{} line {}: expected {cols} fields", path.display(), i + 2).into(),
            );
        }
        rows += 1;
    }
    Ok(Array2::from_shape_vec((rows, cols), values)?)
}

/// Gaussian rows with a few shifted ones, for layout experiments without files.
fn synthetic(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |(r, _)| {
        let u1 = 1.0 - rng.random::<f32>();
        let u2: f32 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        if r % 100 == 0 {
            z + 4.0
        } else {
            z
        }
    })
}

/// Timings of repeated calls: the best wall time of one call (the least disturbed by
/// other work on the machine) and the mean CPU time of the calling thread per call (what
/// one core spends, even when the machine is shared).
#[derive(Debug, Clone, Copy)]
struct Timing {
    best_wall_s: f64,
    cpu_s: Option<f64>,
}

/// CPU time (user + system) of the calling thread, from /proc (Linux, 100 ticks/s).
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Calls `f` until `min_seconds` have passed (at least twice).
fn time_calls(min_seconds: f64, mut f: impl FnMut()) -> Timing {
    let start = Instant::now();
    let cpu_start = thread_cpu_s();
    let mut best = Duration::MAX;
    let mut calls = 0u32;
    while calls < 2 || start.elapsed().as_secs_f64() < min_seconds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        calls += 1;
    }
    let cpu_s = match (cpu_start, thread_cpu_s()) {
        (Some(a), Some(b)) if b > a => Some((b - a) / f64::from(calls)),
        _ => None,
    };
    Timing {
        best_wall_s: best.as_secs_f64(),
        cpu_s,
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let (train_x, test) = match (&args.synthetic, &args.train, &args.test) {
        (Some((rows, cols)), _, _) => (synthetic(*rows, *cols, 1), synthetic(*rows, *cols, 2)),
        (None, Some(train), Some(test)) => (read_csv(train)?, read_csv(test)?),
        _ => return Err("give --train and --test, or --synthetic ROWSxCOLS".into()),
    };
    let mut params = IsolationForestParams::default()
        .n_trees(args.trees)
        .sample_size(args.samples)
        .seed(args.seed)
        .range_check(args.range_check)
        .algorithm(args.algorithm);
    if let Some(level) = args.extension_level {
        params = params.extension_level(level);
    }
    let params = params.check()?;

    // Training: fit the preprocessing, then the forest. Scoring: preprocess, then score.
    let fit = || -> Result<(Preprocessor, IsolationForest), Box<dyn Error>> {
        let pre = Preprocessor::fit(args.transform, args.scaling, train_x.view())?;
        let forest = params.fit(pre.apply(train_x.view()).view())?;
        Ok((pre, forest))
    };
    let mut fitted = None;
    let train = time_calls(args.min_seconds.min(0.5), || fitted = fit().ok());
    let (pre, forest) = fitted.ok_or("training failed")?;
    let threads = rayon::current_num_threads();
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let train_serial = single.install(|| time_calls(args.min_seconds.min(0.5), || drop(fit())));
    let plain = args.transform == Transform::Identity && args.scaling == Scaling::None;
    let score = |parallel: bool| {
        let run = |x: ndarray::ArrayView2<f32>| {
            if parallel {
                forest.score(x)
            } else {
                forest.score_serial(x)
            }
        };
        if plain {
            run(test.view())
        } else {
            run(pre.apply(test.view()).view())
        }
    };

    let mut scores = score(false)?;
    let serial = time_calls(args.min_seconds, || {
        scores = score(false).unwrap_or_default()
    });
    let parallel = time_calls(args.min_seconds, || drop(score(true)));
    let rows = test.nrows().max(1) as f64;
    if let Some(path) = &args.scores {
        let mut out = String::with_capacity(scores.len() * 12);
        for s in &scores {
            let _ = writeln!(out, "{s}");
        }
        std::fs::write(path, out)?;
    }
    // Per core: rows per CPU-second of the scoring thread (wall time where /proc is missing).
    let serial_s = serial.cpu_s.unwrap_or(serial.best_wall_s);
    let report = serde_json::json!({
        "transform": format!("{:?}", args.transform).to_lowercase(),
        "scaling": format!("{:?}", args.scaling).to_lowercase(),
        "algorithm": format!("{:?}", forest.algorithm()).to_lowercase(),
        "plane_width": forest.plane_width(),
        "range_check": forest.range_check(),
        "trees": forest.n_trees(),
        "sample_size": forest.sample_size(),
        "padded_depth": forest.padded_depth(),
        "train_rows": train_x.nrows(),
        "test_rows": test.nrows(),
        "features": train_x.ncols(),
        "threads": threads,
        "train_s": train.best_wall_s,
        "train_single_thread_s": train_serial.best_wall_s,
        "train_single_thread_cpu_s": train_serial.cpu_s,
        "score_single_thread_wall_s": serial.best_wall_s,
        "score_single_thread_cpu_s": serial.cpu_s,
        "score_multi_thread_wall_s": parallel.best_wall_s,
        "score_rows_per_s_per_core": rows / serial_s,
        "score_rows_per_s_single_thread_wall": rows / serial.best_wall_s,
        "score_rows_per_s_multi_thread_wall": rows / parallel.best_wall_s,
        "score_ns_per_row_per_core": serial_s * 1e9 / rows,
    });
    println!("{report}");
    Ok(())
}
