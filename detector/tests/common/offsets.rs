//! A consumer group's committed offsets, read back from the broker. Shared by the
//! detector's Kafka tests and, through `#[path]`, the CLI's kill -9 test.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

/// The group's committed offsets per partition (0 where nothing is committed).
pub fn committed(brokers: &str, topic: &str, group: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(15))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(n) => n,
            _ => 0,
        })
        .collect()
}

/// The sum over the topic's partitions of the group's committed offsets.
pub fn committed_total(brokers: &str, topic: &str, group: &str, partitions: i32) -> i64 {
    committed(brokers, topic, group, partitions).iter().sum()
}
