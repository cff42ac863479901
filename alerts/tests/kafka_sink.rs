//! The SIEM topic against a real broker: what `KafkaSink::publish` produces is what a
//! consumer reads back (values, keys by identity, headers). Needs the `kafka` feature.

#![cfg(feature = "kafka")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use outrider_alerts::{
    alert_id, Alert, AlertStatus, Error, FeatureContribution, KafkaSink, KafkaSinkConfig,
    PolicySet, Severity, SiemRecord,
};

const PARTITIONS: i32 = 3;

fn alert(identity: &str, at: i64, tokens: &[&str]) -> Alert {
    let window_end = DateTime::from_timestamp(1_700_000_000 + at, 0).expect("valid time");
    Alert {
        id: alert_id(identity, window_end, "iforest"),
        created_at: window_end,
        window_start: window_end - chrono::Duration::seconds(60),
        window_end,
        identity: identity.into(),
        apis: vec!["/v1/accounts/{id}".into()],
        client_ips: vec!["198.51.100.7".into()],
        token_ids: tokens.iter().map(|t| (*t).to_owned()).collect(),
        score: 0.93,
        threshold: 0.7,
        severity: Severity::Critical,
        model_version: "iforest".into(),
        features: vec![FeatureContribution {
            name: "distinct_object_ids".into(),
            value: 120.0,
            baseline: 4.0,
            baseline_p99: 15.0,
            contribution: 0.6,
        }],
        evidence_request_ids: vec!["req-9".into()],
        event_count: 200,
        status: AlertStatus::Open,
        rule_hits: Vec::new(),
        risk: None,
    }
}

async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(&[new], &AdminOptions::new())
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// A consumed record: partition, key, headers, value.
struct Consumed {
    partition: i32,
    key: String,
    headers: HashMap<String, String>,
    payload: Vec<u8>,
}

/// Reads `want` records from every partition of `topic`, from the beginning.
fn consume(brokers: &str, topic: &str, want: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let key = String::from_utf8(msg.key().expect("key").to_vec()).expect("utf-8 key");
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        let value =
                            String::from_utf8(h.value.expect("value").to_vec()).expect("utf-8");
                        (h.key.to_owned(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Consumed {
            partition: msg.partition(),
            key,
            headers,
            payload: msg.payload().expect("payload").to_vec(),
        });
    }
    out
}

#[tokio::test]
#[ignore = "needs kafka and clickhouse: run scripts/test.sh"]
async fn alerts_and_decisions_reach_the_siem_topic() {
    let brokers = std::env::var("OUTRIDER_TEST_KAFKA_BROKERS").expect(
        "OUTRIDER_TEST_KAFKA_BROKERS must name a broker (e.g. 127.0.0.1:19092) to run this test",
    );
    let nanos = Utc::now().timestamp_subsec_nanos();
    let topic = format!("outrider-siem-{}-{nanos}", std::process::id());
    create_topic(&brokers, &topic).await;

    let alerts = vec![
        alert("sub:alice", 60, &["jti:a1@bank", "jti:a2@bank"]),
        alert("sub:bob", 120, &[]),
        alert("ip:203.0.113.9", 180, &[]),
        alert("sub:alice", 240, &["jti:a3@bank"]),
    ];
    let decisions = PolicySet::builtin(3600, false).decide_all(&alerts, Utc::now());
    assert_eq!(decisions.len(), 5);
    let sink = KafkaSink::new(KafkaSinkConfig::new(&brokers, &topic)).expect("sink");
    sink.publish(&alerts, &decisions).await.expect("publish");

    let records = consume(&brokers, &topic, alerts.len() + decisions.len());
    assert_eq!(
        records.len(),
        alerts.len() + decisions.len(),
        "every record arrived"
    );
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut got_alerts = Vec::new();
    let mut got_decisions = Vec::new();
    for Consumed {
        partition,
        key,
        headers,
        payload,
    } in &records
    {
        // One identity's records share a partition (keyed by identity).
        let first = *partition_of.entry(key.clone()).or_insert(*partition);
        assert_eq!(first, *partition, "{key} spread over partitions");
        let record: SiemRecord = serde_json::from_slice(payload).expect("record json");
        match record {
            SiemRecord::Alert { alert } => {
                assert_eq!(key, &alert.identity);
                assert_eq!(headers["outrider-kind"], "alert");
                assert_eq!(headers["outrider-id"], alert.id);
                got_alerts.push(alert);
            }
            SiemRecord::Decision { identity, decision } => {
                let owner = alerts
                    .iter()
                    .find(|a| a.id == decision.alert_id)
                    .expect("owner");
                assert_eq!(identity.as_deref(), Some(owner.identity.as_str()));
                assert_eq!(key, &owner.identity);
                assert_eq!(headers["outrider-kind"], "decision");
                assert_eq!(headers["outrider-id"], decision.id);
                got_decisions.push(decision);
            }
        }
    }
    let by_id = |mut v: Vec<Alert>| {
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    };
    assert_eq!(by_id(got_alerts), by_id(alerts.clone()));
    got_decisions.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = decisions.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got_decisions, want);
    // Alice's two alerts and three decisions kept their order within her partition.
    let alice: Vec<&str> = records
        .iter()
        .filter(|r| r.key == "sub:alice")
        .map(|r| r.headers["outrider-kind"].as_str())
        .collect();
    assert_eq!(
        alice,
        ["alert", "alert", "decision", "decision", "decision"]
    );
    sink.flush(Duration::from_secs(10)).expect("flush");
}

#[tokio::test]
async fn an_unreachable_broker_is_a_retryable_error() {
    let cfg = KafkaSinkConfig {
        timeout_ms: 500,
        ..KafkaSinkConfig::new("127.0.0.1:9", "outrider-siem")
    };
    let sink = KafkaSink::new(cfg).expect("sink");
    let err = sink
        .publish(&[alert("sub:alice", 0, &[])], &[])
        .await
        .expect_err("nothing listens on port 9");
    assert!(matches!(err, Error::Kafka(_)), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("1 of 1 records"), "{err}");
}
