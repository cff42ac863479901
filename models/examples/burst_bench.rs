//! Throughput of the MIDAS-R style burst detector on one core, in edges per second.
//!
//! ```text
//! cargo run --release -p outrider-models --example burst_bench -- \
//!     [--edges 20000000] [--edges-per-tick 100000] [--keys 1000000] [--rows 2] [--width 16384]
//! ```
//!
//! Edges are generated up front (skewed like real traffic: a few heavy sources and
//! destinations, a long tail) so only `observe` is timed; ticks advance every
//! `--edges-per-tick` edges, each advance decaying every counter of the three sketches.
//! Prints one line per configuration: edges/s and ns per edge from the thread's CPU time
//! (wall time too), and the sketch memory.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use outrider_models::burst::{BurstDetectors, EdgeKind, MidasRParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug)]
struct Args {
    edges: usize,
    edges_per_tick: usize,
    keys: u64,
    rows: usize,
    width: Option<usize>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        edges: 20_000_000,
        edges_per_tick: 100_000,
        keys: 1_000_000,
        rows: 2,
        width: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--edges" => args.edges = value.parse()?,
            "--edges-per-tick" => args.edges_per_tick = value.parse()?,
            "--keys" => args.keys = value.parse()?,
            "--rows" => args.rows = value.parse()?,
            "--width" => args.width = Some(value.parse()?),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if args.edges_per_tick == 0 || args.keys == 0 || args.edges == 0 {
        return Err("--edges, --edges-per-tick and --keys must be at least 1".into());
    }
    Ok(args)
}

/// A key from `0..keys` with a power-law skew (u^3 favours small ids), as a stable hash.
fn skewed_key(rng: &mut ChaCha8Rng, keys: u64, salt: u64) -> u64 {
    let u: f64 = rng.random();
    let id = ((u * u * u) * keys as f64) as u64;
    (id ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15)
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
    let edges: Vec<(u64, u64, u64)> = (0..args.edges)
        .map(|i| {
            let src = skewed_key(&mut rng, args.keys, 1);
            let dst = skewed_key(&mut rng, args.keys, 2);
            (src, dst, (i / args.edges_per_tick) as u64)
        })
        .collect();
    let widths = match args.width {
        Some(w) => vec![w],
        None => vec![1 << 14, 1 << 20],
    };
    println!(
        "edges {}  edges/tick {}  keys {}  rows {}  (one thread)",
        args.edges, args.edges_per_tick, args.keys, args.rows
    );
    for width in widths {
        let params = MidasRParams::default()
            .rows(args.rows)
            .width(width)
            .check()?;
        // A clone copies every counter, so the pages are mapped before timing starts.
        let mut detectors = BurstDetectors::new(&params).clone();
        let memory = detectors.get(EdgeKind::IpIdentity).memory_bytes();
        let (checksum, wall, cpu) = timed(|| {
            let mut checksum = 0.0f64;
            for &(src, dst, tick) in &edges {
                let s = detectors.observe(EdgeKind::IpIdentity, src, dst, tick);
                checksum += f64::from(s.score);
            }
            checksum
        });
        black_box(checksum);
        let secs = cpu.unwrap_or(wall);
        println!(
            "width {width:>8}: {:>6.2} M edges/s per core  {:>6.1} ns/edge  (cpu {}, wall \
             {wall:.2} s)  sketches {:.1} MiB",
            args.edges as f64 / secs / 1e6,
            secs * 1e9 / args.edges as f64,
            cpu.map_or("n/a".into(), |c| format!("{c:.2} s")),
            memory as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
