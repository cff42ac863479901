//! A Kafka consumer-group source. Auto-commit is off: offsets move only when the pipeline
//! says the records before them are done, so a crash re-reads rather than loses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{Batch, CommitOffset, Record, Source, SourcePosition};
use crate::error::{Error, Result};

const CONSUME_ERROR_BACKOFF: Duration = Duration::from_millis(250);

/// `[source.kafka]`: where to consume from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `host:port[,host:port]` of the bootstrap brokers.
    pub brokers: String,
    /// The topic of canonical JSON lines.
    pub topic: String,
    /// The consumer group; detector instances of one deployment share it.
    pub group_id: String,
    /// How long one poll waits for the first record before reporting the source idle.
    pub poll_timeout_ms: u64,
    /// Extra librdkafka properties (e.g. `security.protocol`), passed through as they are.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            topic: "outrider.events".into(),
            group_id: "outrider-detector".into(),
            poll_timeout_ms: 500,
            properties: BTreeMap::new(),
        }
    }
}

pub struct KafkaSource {
    consumer: StreamConsumer,
    config: KafkaSourceConfig,
    topic: Arc<str>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("config", &self.config)
            .finish()
    }
}

fn kafka_err(context: &str) -> impl Fn(rdkafka::error::KafkaError) -> Error + '_ {
    move |e| Error::Kafka(format!("{context}: {e}"))
}

impl KafkaSource {
    pub fn new(config: KafkaSourceConfig) -> Result<Self> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let consumer: StreamConsumer = client
            .create()
            .map_err(kafka_err("cannot create consumer"))?;
        consumer
            .subscribe(&[&config.topic])
            .map_err(kafka_err("cannot subscribe"))?;
        Ok(Self {
            topic: config.topic.as_str().into(),
            consumer,
            config,
        })
    }

    fn record(&self, msg: &rdkafka::message::BorrowedMessage<'_>) -> Record {
        let topic = if msg.topic() == &*self.topic {
            self.topic.clone()
        } else {
            msg.topic().into()
        };
        Record {
            payload: Bytes::copy_from_slice(msg.payload().unwrap_or_default()),
            position: SourcePosition::Kafka {
                topic,
                partition: msg.partition(),
                offset: msg.offset(),
            },
        }
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn next_batch(&mut self, max: usize) -> Result<Batch> {
        let first_wait = Duration::from_millis(self.config.poll_timeout_ms);
        let mut records = Vec::new();
        let first = match tokio::time::timeout(first_wait, self.consumer.recv()).await {
            Err(_elapsed) => return Ok(Batch::Idle),
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => {
                transient_or_fatal(e)?;
                // Back off a little so a broker that keeps failing is not polled in a spin.
                tokio::time::sleep(CONSUME_ERROR_BACKOFF).await;
                return Ok(Batch::Idle);
            }
        };
        records.push(self.record(&first));
        drop(first);
        // Take what is already buffered without waiting long, to amortise per-batch costs.
        while records.len() < max {
            match tokio::time::timeout(Duration::from_millis(2), self.consumer.recv()).await {
                Ok(Ok(msg)) => records.push(self.record(&msg)),
                Ok(Err(e)) => {
                    transient_or_fatal(e)?;
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        Ok(Batch::Records(records))
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for c in offsets {
            tpl.add_partition_offset(
                &c.partition.stream,
                c.partition.partition,
                Offset::Offset(c.next_offset),
            )
            .map_err(kafka_err("bad commit offset"))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(kafka_err("cannot commit offsets"))
    }

    fn assignment(&self) -> Option<Vec<super::Partition>> {
        let tpl = self.consumer.assignment().ok()?;
        Some(
            tpl.elements()
                .iter()
                .map(|e| super::Partition {
                    stream: if e.topic() == &*self.topic {
                        self.topic.clone()
                    } else {
                        e.topic().into()
                    },
                    partition: e.partition(),
                })
                .collect(),
        )
    }

    fn describe(&self) -> String {
        format!(
            "kafka {} topic {} group {}",
            self.config.brokers, self.config.topic, self.config.group_id
        )
    }
}

/// librdkafka reconnects to brokers by itself (with backoff); a consume error is only worth
/// stopping for when the client says it is fatal. Others are logged and the poll goes on.
fn transient_or_fatal(e: rdkafka::error::KafkaError) -> Result<()> {
    let fatal = matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal));
    if fatal {
        return Err(Error::Kafka(format!("fatal consumer error: {e}")));
    }
    tracing::warn!(error = %e, "kafka consumer error; retrying");
    Ok(())
}

/// Creates `topic` with `partitions` partitions unless it exists already.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(kafka_err("cannot create admin client"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(&[new], &AdminOptions::new())
        .await
        .map_err(kafka_err("cannot create topic"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(Error::Kafka(format!("cannot create topic {t}: {code}"))),
        }
    }
    Ok(())
}

/// Produces `(key, line)` pairs to `topic` and waits until every one is acknowledged.
pub async fn produce_lines<'a>(
    brokers: &str,
    topic: &str,
    lines: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<u64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .map_err(kafka_err("cannot create producer"))?;
    let mut pending = Vec::new();
    for (key, line) in lines {
        let mut record = FutureRecord::to(topic).key(key).payload(line);
        // Queue without waiting for each delivery; back off only while the local queue is full.
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(Error::Kafka(format!("cannot produce: {e}"))),
            }
        }
    }
    let mut sent = 0;
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => sent += 1,
            Ok(Err((e, _))) => return Err(Error::Kafka(format!("delivery failed: {e}"))),
            Err(_cancelled) => return Err(Error::Kafka("producer dropped a delivery".into())),
        }
    }
    Ok(sent)
}
