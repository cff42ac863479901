//! A Kafka consumer-group source. Auto-commit is off: offsets move only when the pipeline
//! says the records before them are done, so a crash re-reads rather than loses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, Statistics, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{Batch, CommitOffset, Partition, Record, Source, SourcePosition};
use crate::error::{Error, Result};
use crate::parse::Format;

const CONSUME_ERROR_BACKOFF: Duration = Duration::from_millis(250);
/// How long reading the group's committed offsets may take.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);

/// `[source.kafka]`: where to consume from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `host:port[,host:port]` of the bootstrap brokers.
    pub brokers: String,
    /// The main topic; its records are in `source.format`.
    pub topic: String,
    /// More topics to consume, each in its own format (one gateway's logs per topic).
    pub topics: Vec<KafkaTopic>,
    /// The consumer group; detector instances of one deployment share it.
    pub group_id: String,
    /// How long one poll waits for the first record before reporting the source idle.
    pub poll_timeout_ms: u64,
    /// After the first record of a batch, how long more records are gathered into it
    /// (up to the batch size): larger batches cost less per record, but the first record
    /// waits this long before it is processed.
    #[serde(default = "default_max_batch_wait_ms")]
    pub max_batch_wait_ms: u64,
    /// Extra librdkafka properties (e.g. `security.protocol`), passed through as they are.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            topic: "outrider.events".into(),
            topics: Vec::new(),
            group_id: "outrider-detector".into(),
            poll_timeout_ms: 500,
            max_batch_wait_ms: default_max_batch_wait_ms(),
            properties: BTreeMap::new(),
        }
    }
}

fn default_max_batch_wait_ms() -> u64 {
    5
}

/// `[[source.kafka.topics]]`: a topic and the format of its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTopic {
    pub topic: String,
    pub format: Format,
}

/// Learns about rebalances and consumer lag from librdkafka's callbacks.
#[derive(Debug, Default)]
pub struct SourceContext {
    /// Total consumer lag over assigned partitions, from the last statistics report.
    lag: std::sync::atomic::AtomicI64,
    /// Partitions revoked since the source last looked, as (topic, partition).
    revoked: std::sync::Mutex<Vec<(String, i32)>>,
}

impl SourceContext {
    fn take_revoked(&self) -> Vec<(String, i32)> {
        match self.revoked.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            // A panic while holding the lock cannot leave the list half-written.
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, stats: Statistics) {
        let lag: i64 = stats
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.lag.store(lag, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = tpl.count(), "kafka partitions revoked");
                let revoked = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect::<Vec<_>>();
                match self.revoked.lock() {
                    Ok(mut r) => r.extend(revoked),
                    Err(poisoned) => poisoned.into_inner().extend(revoked),
                }
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "kafka partitions assigned")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance error"),
        }
    }
}

pub struct KafkaSource {
    consumer: StreamConsumer<SourceContext>,
    config: KafkaSourceConfig,
    topic: Arc<str>,
    /// Revoked partitions not yet handed to the pipeline ([`Source::take_revoked`]).
    revoked: Vec<Partition>,
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
            .set("session.timeout.ms", "10000")
            .set("statistics.interval.ms", "5000");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let consumer: StreamConsumer<SourceContext> = client
            .create_with_context(SourceContext::default())
            .map_err(kafka_err("cannot create consumer"))?;
        let mut topics = vec![config.topic.as_str()];
        topics.extend(config.topics.iter().map(|t| t.topic.as_str()));
        consumer
            .subscribe(&topics)
            .map_err(kafka_err("cannot subscribe"))?;
        Ok(Self {
            topic: config.topic.as_str().into(),
            consumer,
            config,
            revoked: Vec::new(),
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
            key: msg.key().map(Bytes::copy_from_slice),
        }
    }

    fn partition(&self, topic: &str, partition: i32) -> Partition {
        Partition {
            stream: if topic == &*self.topic {
                self.topic.clone()
            } else {
                topic.into()
            },
            partition,
        }
    }

    /// Notes the partitions revoked by a rebalance that ran inside the last poll, and
    /// drops the records of this batch read from them before it: their new owner reads
    /// them again from the last commit (librdkafka already discarded what it had fetched
    /// for them, so every record polled after the rebalance belongs to the new assignment).
    fn note_revocations(&mut self, records: &mut Vec<Record>) {
        let revoked = self.consumer.context().take_revoked();
        if revoked.is_empty() {
            return;
        }
        let revoked: Vec<Partition> = revoked
            .iter()
            .map(|(topic, p)| self.partition(topic, *p))
            .collect();
        records.retain(|r| !revoked.contains(&r.position.partition()));
        for p in revoked {
            if !self.revoked.contains(&p) {
                self.revoked.push(p);
            }
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
        let record = self.record(&first);
        drop(first);
        self.note_revocations(&mut records);
        records.push(record);
        // Take what arrives within the batch wait, to amortise per-batch costs; a deadline
        // for the whole batch, so a steady stream cannot hold its first record back until
        // the batch is full.
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.max_batch_wait_ms);
        while records.len() < max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(msg)) => {
                    let record = self.record(&msg);
                    drop(msg);
                    self.note_revocations(&mut records);
                    records.push(record);
                }
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
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => Ok(()),
            // The partitions moved to another member: it re-reads from the last commit.
            // That may duplicate (ids collapse), never lose, so it is not worth stopping for.
            Err(e) if is_rebalance_error(&e) => {
                tracing::warn!(error = %e, "commit refused during a rebalance; the new owner re-reads");
                Ok(())
            }
            Err(e) => Err(kafka_err("cannot commit offsets")(e)),
        }
    }

    fn lag(&self) -> Option<i64> {
        Some(
            self.consumer
                .context()
                .lag
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    fn assignment(&self) -> Option<Vec<Partition>> {
        let tpl = self.consumer.assignment().ok()?;
        Some(
            tpl.elements()
                .iter()
                .map(|e| self.partition(e.topic(), e.partition()))
                .collect(),
        )
    }

    fn committed(&mut self, partitions: &[Partition]) -> Vec<Option<i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&p.stream, p.partition);
        }
        // A round trip to the group coordinator, only when partitions are assigned.
        let committed = match self.consumer.committed_offsets(tpl, COMMITTED_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets");
                return vec![None; partitions.len()];
            }
        };
        partitions
            .iter()
            .map(
                |p| match committed.find_partition(&p.stream, p.partition)?.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                },
            )
            .collect()
    }

    fn take_revoked(&mut self) -> Vec<Partition> {
        let mut none = Vec::new();
        // A rebalance can also run inside a poll that returned nothing.
        self.note_revocations(&mut none);
        std::mem::take(&mut self.revoked)
    }

    fn describe(&self) -> String {
        format!(
            "kafka {} topic {} group {}",
            self.config.brokers, self.config.topic, self.config.group_id
        )
    }
}

fn is_rebalance_error(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::State
        )
    )
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
    let mut producer = LineProducer::new(brokers)?;
    for (key, line) in lines {
        producer.send(topic, Some(key), line.as_bytes()).await?;
    }
    producer.finish().await
}

/// Most records awaiting acknowledgement before `send` waits for the oldest.
const MAX_IN_FLIGHT: usize = 50_000;

/// Streams records to Kafka with an idempotent producer, keeping a bounded number in
/// flight, and reports every delivery failure.
pub struct LineProducer {
    producer: FutureProducer,
    in_flight: std::collections::VecDeque<rdkafka::producer::DeliveryFuture>,
    delivered: u64,
}

impl std::fmt::Debug for LineProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineProducer")
            .field("in_flight", &self.in_flight.len())
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl LineProducer {
    pub fn new(brokers: &str) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            // Small produce requests otherwise wait on Nagle's algorithm and the broker's
            // delayed ACK (tens of milliseconds).
            .set("socket.nagle.disable", "true")
            .create()
            .map_err(kafka_err("cannot create producer"))?;
        Ok(Self {
            producer,
            in_flight: std::collections::VecDeque::new(),
            delivered: 0,
        })
    }

    /// Queues one record, waiting for room when the local queue or the in-flight bound
    /// is full.
    pub async fn send(&mut self, topic: &str, key: Option<&str>, payload: &[u8]) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.await_oldest().await?;
        }
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push_back(delivery);
                    return Ok(());
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    if !self.in_flight.is_empty() {
                        self.await_oldest().await?;
                    } else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((e, _)) => return Err(Error::Kafka(format!("cannot produce: {e}"))),
            }
        }
    }

    /// Waits for every record sent so far; returns how many were delivered in all.
    pub async fn finish(mut self) -> Result<u64> {
        while !self.in_flight.is_empty() {
            self.await_oldest().await?;
        }
        Ok(self.delivered)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    async fn await_oldest(&mut self) -> Result<()> {
        let Some(delivery) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match delivery.await {
            Ok(Ok(_)) => {
                self.delivered += 1;
                Ok(())
            }
            Ok(Err((e, _))) => Err(Error::Kafka(format!("delivery failed: {e}"))),
            Err(_cancelled) => Err(Error::Kafka("producer dropped a delivery".into())),
        }
    }
}
