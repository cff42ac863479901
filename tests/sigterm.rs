//! `outrider detect` stops gracefully on SIGTERM: it reports not ready, finishes and stores
//! what it read, drains the outbox and exits 0.
#![allow(clippy::unwrap_used)] // test code
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(180);

fn outrider(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "outrider {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The status code and body of `GET path`, or `None` while nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn status_of(addr: &str, path: &str) -> Option<u16> {
    get(addr, path).map(|(status, _)| status)
}

fn free_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn write_config(dir: &Path, model: &Path, ops: &str) -> std::path::PathBuf {
    let config = dir.join("outrider.toml");
    let text = format!(
        "[model]\npath = {model:?}\n[alerts]\ndata_dir = {data:?}\n[ops]\nlisten = {ops:?}\n",
        data = dir.join("state"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn sigterm_finishes_the_batch_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    outrider(&[
        "generate",
        "-o",
        &path("train.jsonl"),
        "--minutes",
        "20",
        "--users",
        "40",
        "--seed",
        "1",
    ]);
    outrider(&[
        "train",
        "-i",
        &path("train.jsonl"),
        "-o",
        &path("model.json"),
    ]);
    outrider(&[
        "generate",
        "-o",
        &path("traffic.jsonl"),
        "--minutes",
        "10",
        "--users",
        "40",
        "--seed",
        "2",
    ]);
    let events = std::fs::read_to_string(path("traffic.jsonl"))
        .unwrap()
        .lines()
        .count();
    let ops = free_port();
    let config = write_config(dir.path(), Path::new(&path("model.json")), &ops);

    let mut child = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args(["detect", "--config", config.to_str().unwrap()])
        .args(["--input", &path("traffic.jsonl")])
        .env("OUTRIDER_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness is what an orchestrator polls before sending traffic or signals.
    let started = Instant::now();
    while status_of(&ops, "/ready") != Some(200) {
        assert!(started.elapsed() < DEADLINE, "never ready");
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_of(&ops, "/health"), Some(200));
    // The replay has read everything once the metrics say so; the service then serves
    // until it is told to stop.
    while !get(&ops, "/metrics").is_some_and(|(_, m)| m.contains("\noutrider_source_ended 1\n")) {
        assert!(started.elapsed() < DEADLINE, "the replay did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shutdown signal received"), "{stderr}");
    assert!(stderr.contains("sigterm"), "{stderr}");
    assert!(
        stderr.contains("detector stopped: last batch stored, offsets committed, outbox drained"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stats = &summary["stats"];
    assert_eq!(stats["records"], events as u64, "{summary}");
    assert_eq!(stats["source_ended"], true);
    assert_eq!(summary["outbox_pending"], 0);
    // What the run raised is in the store, for `outrider alerts` to read.
    let listed = outrider(&[
        "alerts",
        "--config",
        config.to_str().unwrap(),
        "--json",
        "--limit",
        "100000",
    ]);
    let alerts = String::from_utf8_lossy(&listed.stdout).lines().count();
    assert_eq!(alerts as u64, stats["alerts"].as_u64().unwrap());
}
