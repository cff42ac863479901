//! `outrider replay --to-kafka` against a real broker (started by `scripts/test.sh`).
#![allow(clippy::unwrap_used)] // test code

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use outrider_datasets::{generate, GeneratorConfig};
use outrider_ingest::parse::{parse_line, DEFAULT_MAX_LINE_BYTES};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

#[test]
#[ignore = "needs kafka: run scripts/test.sh"]
fn replay_produces_every_record_keyed_by_identity() {
    let brokers = std::env::var("OUTRIDER_TEST_KAFKA_BROKERS")
        .expect("OUTRIDER_TEST_KAFKA_BROKERS is not set: run scripts/test.sh");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("traffic.jsonl");
    let traffic = generate(&GeneratorConfig {
        users: 10,
        duration_secs: 300,
        ..GeneratorConfig::default()
    });
    outrider_datasets::write_events_jsonl(&input, &traffic).unwrap();
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("this line does not parse\n");
    std::fs::write(&input, &text).unwrap();
    let expected = text.lines().count();
    let topic = format!("replay_{}", std::process::id());

    let out = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args([
            "replay",
            "--to-kafka",
            "--rate",
            "20000",
            "--partitions",
            "3",
        ])
        .args(["--brokers", &brokers, "--topic", &topic])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("produced {expected} records")),
        "{stdout}"
    );

    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}_check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.unwrap();
        let payload = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
        let key = msg.key().map(|k| String::from_utf8(k.to_vec()).unwrap());
        seen.insert(payload, key);
    }
    assert_eq!(seen.len(), expected, "every line arrives once");
    for (payload, key) in &seen {
        match parse_line(payload.as_bytes(), DEFAULT_MAX_LINE_BYTES) {
            Ok(event) => assert_eq!(key.as_deref(), Some(event.identity_key().as_str())),
            Err(_) => assert_eq!(key, &None, "unparsable lines are sent unkeyed"),
        }
    }
}
