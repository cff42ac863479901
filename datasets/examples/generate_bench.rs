//! Generation throughput on one core: how many labelled events per second the streaming
//! generator produces, alone and written out in a log format, and how much it holds back.
//!
//! ```sh
//! cargo run --release -p outrider-datasets --example generate_bench -- \
//!     --users 100000 --hours 24 --realistic --apis bank,retail,saas
//! ```
//!
//! Flags: `--users N` (100000), `--hours H` (6), `--realistic` (daily cycles, a few
//! sessions a day) or dense compressed traffic by default, `--apis a,b`, `--partners N`,
//! `--batch-jobs N`, `--formats canonical,envoy` (formats to time writing, to a sink).

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use outrider_datasets::formats::{write_line, OutputFormat};
use outrider_datasets::{ApiKind, EventStream, GeneratorConfig, TrafficModel};

fn value<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process, from Linux's /proc (0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this thread has run, from Linux's /proc (wall-clock elsewhere): on a busy
/// machine it measures the generator, not the other processes.
struct Clock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu_ns: cpu_ns(),
        }
    }

    /// (CPU seconds, wall seconds).
    fn elapsed(&self) -> (f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = match (self.cpu_ns, cpu_ns()) {
            (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / 1e9,
            _ => wall,
        };
        (cpu, wall)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let users: usize = value(&args, "--users", 100_000);
    let hours: u64 = value(&args, "--hours", 6);
    let apis: String = value(&args, "--apis", "bank".to_owned());
    let formats: String = value(&args, "--formats", "canonical,envoy".to_owned());
    let cfg = GeneratorConfig {
        users,
        duration_secs: hours * 3600,
        service_clients: value(&args, "--service-clients", 10),
        partners: value(&args, "--partners", 0),
        batch_jobs: value(&args, "--batch-jobs", 0),
        apis: apis
            .split(',')
            .map(|a| a.parse::<ApiKind>().unwrap_or(ApiKind::Bank))
            .collect(),
        traffic: if args.iter().any(|a| a == "--realistic") {
            TrafficModel::Realistic
        } else {
            TrafficModel::Compressed
        },
        ..GeneratorConfig::default()
    };
    println!(
        "{users} users, {hours} h, {:?} traffic, apis {apis}, one core",
        cfg.traffic
    );

    let started = Instant::now();
    let mut stream = EventStream::new(&cfg);
    let setup = started.elapsed().as_secs_f64();
    let clock = Clock::start();
    let mut n = 0u64;
    for e in stream.by_ref() {
        black_box(&e);
        n += 1;
    }
    let (secs, wall) = clock.elapsed();
    println!(
        "generate: {n} events in {secs:.2} CPU s ({wall:.2} s wall) = {:.2} M events/s per core (population set-up {setup:.2} s; at most {} events held back; peak RSS {:.0} MiB)",
        n as f64 / secs / 1e6,
        stream.peak_buffered(),
        peak_rss_mib()
    );

    for name in formats.split(',').filter(|f| !f.is_empty()) {
        let Ok(format) = name.parse::<OutputFormat>() else {
            eprintln!("unknown format {name}");
            continue;
        };
        let mut sink = std::io::BufWriter::with_capacity(1 << 20, std::io::sink());
        let mut line = Vec::with_capacity(1024);
        let mut bytes = 0u64;
        let clock = Clock::start();
        let mut n = 0u64;
        for e in EventStream::new(&cfg) {
            line.clear();
            write_line(format, &e.event, &mut line);
            line.push(b'\n');
            bytes += line.len() as u64;
            let _ = sink.write_all(&line);
            n += 1;
        }
        let (secs, wall) = clock.elapsed();
        println!(
            "generate + write {format}: {n} events in {secs:.2} CPU s ({wall:.2} s wall) = {:.2} M events/s per core ({:.0} MB/s of log lines)",
            n as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6
        );
    }
}
