//! Throughput of Half-Space Trees on one core: rows scored and learned per second.
//!
//! ```text
//! cargo run --release -p outrider-models --example hst_bench -- \
//!     [--rows 1000000] [--features 36] [--trees 25] [--height 8] [--window 256]
//! ```
//!
//! Rows are generated up front; the timed loop is `score_and_update` over batches of 1024
//! rows (the detector's path), then `score` alone on the same rows. Rates come from the
//! thread's CPU time (wall time shown too), so other load on the machine does not count.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::{Array2, Axis};
use outrider_models::online::HalfSpaceTreesParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug)]
struct Args {
    rows: usize,
    features: usize,
    trees: usize,
    height: usize,
    window: usize,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        rows: 1_000_000,
        features: 36,
        trees: 25,
        height: 8,
        window: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => args.rows = value.parse()?,
            "--features" => args.features = value.parse()?,
            "--trees" => args.trees = value.parse()?,
            "--height" => args.height = value.parse()?,
            "--window" => args.window = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if args.rows == 0 || args.features == 0 {
        return Err("--rows and --features must be at least 1".into());
    }
    Ok(args)
}

/// CPU time of this thread so far, from `/proc/thread-self/stat` (Linux, 10 ms ticks):
/// with other builds on the machine, wall time overstates the per-core cost.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Times `f` in wall-clock and thread CPU seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, Option<f64>) {
    let cpu0 = thread_cpu_time();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_time()) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64()),
        _ => None,
    };
    (out, wall, cpu)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Count-like features: exponential with a per-feature scale.
    let x = Array2::from_shape_fn((args.rows, args.features), |(_, j)| {
        let u: f32 = rng.random::<f32>().max(1e-7);
        -u.ln() * (1 + j % 7) as f32 * 10.0
    });
    let params = HalfSpaceTreesParams::default()
        .n_trees(args.trees)
        .height(args.height)
        .window_size(args.window)
        .check()?;
    let fit_rows = (4 * args.window).min(args.rows);
    let mut hst = params.fit(x.view().split_at(Axis(0), fit_rows).0)?;

    let (scored, learn_wall, learn_cpu) = timed(|| {
        let mut scored = 0usize;
        for chunk in x.axis_chunks_iter(Axis(0), 1024) {
            let out = hst.score_and_update(chunk)?;
            scored += out.iter().flatten().count();
            black_box(out);
        }
        Ok::<_, outrider_models::Error>(scored)
    });
    let scored = scored?;
    let (scores, score_wall, score_cpu) = timed(|| hst.score(x.view()));
    black_box(scores?);
    let learn_secs = learn_cpu.unwrap_or(learn_wall);
    let score_secs = score_cpu.unwrap_or(score_wall);

    println!(
        "rows {}  features {}  trees {}  height {}  window {}  (one thread)",
        args.rows, args.features, args.trees, args.height, args.window
    );
    println!(
        "score_and_update: {:>8.0} rows/s per core  {:>7.2} us/row  (wall {learn_wall:.2} s, \
         {scored} scored)",
        args.rows as f64 / learn_secs,
        learn_secs * 1e6 / args.rows as f64
    );
    println!(
        "score only:       {:>8.0} rows/s per core  {:>7.2} us/row  (wall {score_wall:.2} s)",
        args.rows as f64 / score_secs,
        score_secs * 1e6 / args.rows as f64
    );
    Ok(())
}
