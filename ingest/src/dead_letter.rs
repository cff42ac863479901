//! The dead-letter sink: every refused record is kept, one JSON line each, with its reason,
//! the parser's detail and where it came from, so nothing bad is silently lost.
//!
//! Two sinks: an append-only JSONL file ([`DeadLetterFile`], the default) and a Kafka topic
//! ([`KafkaDeadLetters`], with the `kafka` feature). [`DeadLetters`] is either, chosen by
//! [`DeadLetterConfig`]. Both promise the same thing: after `flush()` returns `Ok`, every
//! letter written before it is durable (synced to disk / acknowledged by the brokers), so
//! the caller may then commit the source offsets of the batch.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::parse::ParseErrorReason;
use crate::source::SourcePosition;

#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub reason: ParseErrorReason,
    pub detail: &'a str,
    pub position: &'a SourcePosition,
    /// The record as text (invalid UTF-8 replaced); see `raw_hex` for the exact bytes.
    pub raw: String,
    /// The exact bytes, only when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
}

impl<'a> DeadLetter<'a> {
    pub fn new(
        reason: ParseErrorReason,
        detail: &'a str,
        position: &'a SourcePosition,
        raw: &[u8],
    ) -> Self {
        let (raw_text, raw_hex) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(raw).into_owned(),
                Some(hex::encode(raw)),
            ),
        };
        Self {
            reason,
            detail,
            position,
            raw: raw_text,
            raw_hex,
        }
    }
}

/// An append-only JSONL file of dead letters. Writes are flushed per batch by the caller
/// ([`DeadLetterFile::flush`]) before the batch's offsets are committed.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
}

impl DeadLetterFile {
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            out: std::io::BufWriter::new(file),
            written: 0,
        })
    }

    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<()> {
        let line = serde_json::to_string(letter).unwrap_or_default();
        writeln!(self.out, "{line}").map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.written += 1;
        Ok(())
    }

    /// Flushes to the OS and syncs to disk.
    pub fn flush(&mut self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `[dead_letter]`: where refused records go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// `file` (the default) or `kafka`.
    pub kind: DeadLetterKind,
    /// For `file`: the JSONL file (default: the caller's default path, under the state
    /// directory).
    pub path: Option<PathBuf>,
    /// For `kafka`: `host:port[,host:port]` of the bootstrap brokers.
    pub brokers: Option<String>,
    /// For `kafka`: the topic (create it beforehand, or let the brokers auto-create it).
    pub topic: Option<String>,
    /// For `kafka`: extra librdkafka properties (e.g. `security.protocol`), as they are.
    pub properties: std::collections::BTreeMap<String, String>,
}

/// The dead-letter sink kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    #[default]
    File,
    Kafka,
}

/// A dead-letter sink of either kind.
#[derive(Debug)]
pub enum DeadLetters {
    File(DeadLetterFile),
    #[cfg(feature = "kafka")]
    Kafka(KafkaDeadLetters),
}

fn config_error(key: &str, why: &str) -> Error {
    Error::Config(format!("`dead_letter.{key}`: {why}"))
}

impl DeadLetters {
    /// Opens the configured sink; `default_path` is the file used when `kind = "file"` names
    /// no `path`. Settings of the other kind are refused rather than silently ignored.
    pub fn open(config: &DeadLetterConfig, default_path: &Path) -> Result<Self> {
        match config.kind {
            DeadLetterKind::File => {
                for (key, set) in [
                    ("brokers", config.brokers.is_some()),
                    ("topic", config.topic.is_some()),
                    ("properties", !config.properties.is_empty()),
                ] {
                    if set {
                        return Err(config_error(key, "only used with kind = \"kafka\""));
                    }
                }
                let path = config.path.as_deref().unwrap_or(default_path);
                Ok(Self::File(DeadLetterFile::open(path)?))
            }
            DeadLetterKind::Kafka => Self::open_kafka(config),
        }
    }

    #[cfg(feature = "kafka")]
    fn open_kafka(config: &DeadLetterConfig) -> Result<Self> {
        if config.path.is_some() {
            return Err(config_error("path", "only used with kind = \"file\""));
        }
        let required = |key: &str, v: &Option<String>| -> Result<String> {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| config_error(key, "required with kind = \"kafka\""))
        };
        let brokers = required("brokers", &config.brokers)?;
        let topic = required("topic", &config.topic)?;
        Ok(Self::Kafka(KafkaDeadLetters::open_with(
            &brokers,
            &topic,
            &config.properties,
        )?))
    }

    #[cfg(not(feature = "kafka"))]
    fn open_kafka(_config: &DeadLetterConfig) -> Result<Self> {
        Err(config_error(
            "kind",
            "\"kafka\" needs a build with the `kafka` feature",
        ))
    }

    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<()> {
        match self {
            Self::File(f) => f.write(letter),
            #[cfg(feature = "kafka")]
            Self::Kafka(k) => k.write(letter),
        }
    }

    /// Returns once every letter written so far is durable; see the module docs.
    pub fn flush(&mut self) -> Result<()> {
        match self {
            Self::File(f) => f.flush(),
            #[cfg(feature = "kafka")]
            Self::Kafka(k) => k.flush(),
        }
    }

    /// Letters written since the sink was opened.
    pub fn written(&self) -> u64 {
        match self {
            Self::File(f) => f.written(),
            #[cfg(feature = "kafka")]
            Self::Kafka(k) => k.written(),
        }
    }

    /// The file, for a file sink.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::File(f) => Some(f.path()),
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => None,
        }
    }

    /// Where letters go, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::File(f) => format!("file {}", f.path().display()),
            #[cfg(feature = "kafka")]
            Self::Kafka(k) => k.describe(),
        }
    }
}

#[cfg(feature = "kafka")]
pub use kafka::KafkaDeadLetters;

#[cfg(feature = "kafka")]
mod kafka {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{
        BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
    };
    use rdkafka::ClientContext;

    use super::DeadLetter;
    use crate::error::{Error, Result};
    use crate::source::SourcePosition;

    /// How long `flush()` waits by default for the brokers to acknowledge everything produced.
    const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long `write()` waits, in total, for room in a full local queue.
    const QUEUE_FULL_WAIT: Duration = Duration::from_secs(10);

    /// Counts deliveries that failed, so that `flush()` can report them: a record that the
    /// brokers refused is "done" for librdkafka's flush but not delivered.
    #[derive(Debug, Default)]
    struct Deliveries {
        failed: AtomicU64,
        last_error: Mutex<Option<String>>,
    }

    #[derive(Debug, Default, Clone)]
    struct Context(Arc<Deliveries>);

    impl ClientContext for Context {}

    impl ProducerContext for Context {
        type DeliveryOpaque = ();

        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            if let Err((e, _)) = result {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.0.last_error.lock() {
                    *last = Some(e.to_string());
                }
            }
        }
    }

    /// Dead letters produced to a Kafka topic, one record each: the key is the source
    /// stream the letter came from (the file path, or `topic/partition`), so one stream's
    /// letters stay in order in one partition; the value is the same JSON as a file line.
    pub struct KafkaDeadLetters {
        producer: ThreadedProducer<Context>,
        deliveries: Arc<Deliveries>,
        brokers: String,
        topic: String,
        written: u64,
        flush_timeout: Duration,
    }

    impl std::fmt::Debug for KafkaDeadLetters {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("KafkaDeadLetters")
                .field("brokers", &self.brokers)
                .field("topic", &self.topic)
                .field("written", &self.written)
                .finish()
        }
    }

    impl KafkaDeadLetters {
        pub fn open(brokers: &str, topic: &str) -> Result<Self> {
            Self::open_with(brokers, topic, &BTreeMap::new())
        }

        /// With extra librdkafka properties (security settings and the like).
        pub fn open_with(
            brokers: &str,
            topic: &str,
            properties: &BTreeMap<String, String>,
        ) -> Result<Self> {
            let mut client = ClientConfig::new();
            client
                .set("bootstrap.servers", brokers)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5");
            for (k, v) in properties {
                client.set(k, v);
            }
            let deliveries = Arc::new(Deliveries::default());
            let producer = client
                .create_with_context(Context(deliveries.clone()))
                .map_err(|e| Error::Kafka(format!("cannot create dead-letter producer: {e}")))?;
            Ok(Self {
                producer,
                deliveries,
                brokers: brokers.to_owned(),
                topic: topic.to_owned(),
                written: 0,
                flush_timeout: FLUSH_TIMEOUT,
            })
        }

        /// How long `flush()` waits for acknowledgements before it fails (default 30 s).
        pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
            self.flush_timeout = timeout;
            self
        }

        /// Queues one letter; only `flush()` says it arrived.
        pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<()> {
            let value = serde_json::to_string(letter).unwrap_or_default();
            let key = key_of(letter.position);
            let mut record = BaseRecord::to(&self.topic).key(&key).payload(&value);
            let mut waited = Duration::ZERO;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                        if waited < QUEUE_FULL_WAIT =>
                    {
                        // The polling thread drains deliveries; wait for room.
                        std::thread::sleep(Duration::from_millis(10));
                        waited += Duration::from_millis(10);
                        record = r;
                    }
                    Err((e, _)) => {
                        return Err(Error::Kafka(format!(
                            "cannot produce a dead letter to {}: {e}",
                            self.topic
                        )))
                    }
                }
            }
            self.written += 1;
            Ok(())
        }

        /// Waits until the brokers acknowledged every letter written so far; an error if
        /// that takes longer than the flush timeout or if any delivery failed. After an
        /// error, unacknowledged letters stay queued: a later `flush()` may still succeed.
        pub fn flush(&mut self) -> Result<()> {
            let timeout = self.flush_timeout;
            self.producer.flush(timeout).map_err(|e| {
                Error::Kafka(format!(
                    "dead letters to {} not acknowledged within {timeout:?}: {e}",
                    self.topic
                ))
            })?;
            let failed = self.deliveries.failed.swap(0, Ordering::Relaxed);
            if failed > 0 {
                let last = self
                    .deliveries
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|mut l| l.take())
                    .unwrap_or_default();
                return Err(Error::Kafka(format!(
                    "{failed} dead letters to {} were not delivered: {last}",
                    self.topic
                )));
            }
            Ok(())
        }

        pub fn written(&self) -> u64 {
            self.written
        }

        pub fn topic(&self) -> &str {
            &self.topic
        }

        pub fn describe(&self) -> String {
            format!("kafka {} topic {}", self.brokers, self.topic)
        }
    }

    /// The record key: the stream the letter came from.
    fn key_of(position: &SourcePosition) -> String {
        match position {
            SourcePosition::File { path, .. } => path.to_string(),
            SourcePosition::Kafka {
                topic, partition, ..
            } => format!("{topic}/{partition}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_reason_position_and_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl/dead.jsonl");
        let mut dl = DeadLetterFile::open(&path).unwrap();
        let pos = SourcePosition::file("in.jsonl", 3, 120);
        dl.write(&DeadLetter::new(
            ParseErrorReason::InvalidUtf8,
            "at byte 1",
            &pos,
            b"a\xffb",
        ))
        .unwrap();
        dl.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["reason"], "invalid_utf8");
        assert_eq!(v["position"]["line"], 3);
        assert_eq!(v["position"]["offset"], 120);
        assert_eq!(v["raw_hex"], "61ff62");
        assert_eq!(dl.written(), 1);
    }

    #[test]
    fn the_config_defaults_to_a_file_at_the_default_path() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("dead.jsonl");
        let config: DeadLetterConfig = toml::from_str("").unwrap();
        assert_eq!(config, DeadLetterConfig::default());
        let mut dl = DeadLetters::open(&config, &default).unwrap();
        assert_eq!(dl.path(), Some(default.as_path()));
        assert_eq!(dl.describe(), format!("file {}", default.display()));
        let pos = SourcePosition::file("in.log", 1, 0);
        dl.write(&DeadLetter::new(
            ParseErrorReason::Truncated,
            "eof",
            &pos,
            b"{\"a\":",
        ))
        .unwrap();
        dl.flush().unwrap();
        assert_eq!(dl.written(), 1);
        let text = std::fs::read_to_string(&default).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["reason"], "truncated");
        assert_eq!(v["raw"], "{\"a\":");
    }

    #[test]
    fn a_configured_path_wins_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom/dl.jsonl");
        let config: DeadLetterConfig = toml::from_str(&format!(
            "kind = \"file\"\npath = {:?}",
            path.display().to_string()
        ))
        .unwrap();
        let pos = SourcePosition::file("in.log", 1, 0);
        for _ in 0..2 {
            let mut dl = DeadLetters::open(&config, &dir.path().join("unused")).unwrap();
            dl.write(&DeadLetter::new(ParseErrorReason::Empty, "", &pos, b""))
                .unwrap();
            dl.flush().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert!(!dir.path().join("unused").exists());
    }

    #[test]
    fn settings_of_the_other_kind_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = |toml_text: &str| {
            let config: DeadLetterConfig = toml::from_str(toml_text).unwrap();
            match DeadLetters::open(&config, &dir.path().join("d.jsonl")) {
                Err(Error::Config(msg)) => msg,
                other => panic!("expected a config error for {toml_text:?}, got {other:?}"),
            }
        };
        assert!(open("topic = \"dl\"").contains("`dead_letter.topic`"));
        #[cfg(feature = "kafka")]
        {
            let missing_brokers = open("kind = \"kafka\"\ntopic = \"dl\"");
            assert!(missing_brokers.contains("`dead_letter.brokers`"));
            let missing_topic = open("kind = \"kafka\"\nbrokers = \"b:9092\"");
            assert!(missing_topic.contains("`dead_letter.topic`"));
            let path = open("kind = \"kafka\"\nbrokers = \"b:9092\"\ntopic = \"dl\"\npath = \"x\"");
            assert!(path.contains("`dead_letter.path`"));
        }
        #[cfg(not(feature = "kafka"))]
        assert!(open("kind = \"kafka\"").contains("`dead_letter.kind`"));
        assert!(toml::from_str::<DeadLetterConfig>("kind = \"s3\"").is_err());
        assert!(toml::from_str::<DeadLetterConfig>("brokr = \"x\"").is_err());
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_flush_fails_when_nothing_is_acknowledged() {
        // Nothing listens on port 1: the letter cannot be delivered within the timeout.
        let mut dl = KafkaDeadLetters::open("127.0.0.1:1", "dead-letters")
            .unwrap()
            .with_flush_timeout(std::time::Duration::from_millis(500));
        let pos = SourcePosition::file("in.log", 1, 0);
        dl.write(&DeadLetter::new(ParseErrorReason::Empty, "", &pos, b""))
            .unwrap();
        assert_eq!(dl.written(), 1);
        let err = dl.flush().unwrap_err();
        assert!(matches!(err, Error::Kafka(_)), "{err}");
        assert!(err.to_string().contains("not acknowledged"), "{err}");
    }

    #[cfg(feature = "kafka")]
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs kafka: run scripts/test.sh"]
    async fn kafka_dead_letters_are_acknowledged_and_read_back() {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

        let brokers = std::env::var("OUTRIDER_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
            panic!(
                "OUTRIDER_TEST_KAFKA_BROKERS is not set: run scripts/test.sh (it starts a broker)"
            )
        });
        let topic = format!(
            "outrider.dead-letters.test.{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        crate::source::kafka::ensure_topic(&brokers, &topic, 1)
            .await
            .unwrap();

        let config = DeadLetterConfig {
            kind: DeadLetterKind::Kafka,
            brokers: Some(brokers.clone()),
            topic: Some(topic.clone()),
            ..DeadLetterConfig::default()
        };
        let mut dl = DeadLetters::open(&config, Path::new("unused")).unwrap();
        assert!(dl.describe().contains(&topic), "{}", dl.describe());
        let positions = [
            SourcePosition::Kafka {
                topic: "outrider.events".into(),
                partition: 2,
                offset: 41,
            },
            SourcePosition::file("gw.log", 7, 300),
        ];
        let raws: [&[u8]; 2] = [b"{\"ts\":", b"a\xffb"];
        let reasons = [ParseErrorReason::Truncated, ParseErrorReason::InvalidUtf8];
        for ((pos, raw), reason) in positions.iter().zip(raws).zip(reasons) {
            dl.write(&DeadLetter::new(reason, "detail", pos, raw))
                .unwrap();
        }
        tokio::task::block_in_place(|| dl.flush()).unwrap();
        assert_eq!(dl.written(), 2);

        // Read back by assignment: no consumer-group join needed.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "outrider-dead-letter-test")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got.len() < 2 && std::time::Instant::now() < deadline {
            let polled = tokio::task::block_in_place(|| {
                consumer.poll(std::time::Duration::from_millis(500))
            });
            if let Some(Ok(msg)) = polled {
                let key = String::from_utf8(msg.key().unwrap().to_vec()).unwrap();
                let value: serde_json::Value =
                    serde_json::from_slice(msg.payload().unwrap()).unwrap();
                got.push((key, value));
            }
        }
        assert_eq!(got.len(), 2, "read back {got:?}");
        assert_eq!(got[0].0, "outrider.events/2");
        assert_eq!(got[0].1["reason"], "truncated");
        assert_eq!(got[0].1["position"]["source"], "kafka");
        assert_eq!(got[0].1["position"]["partition"], 2);
        assert_eq!(got[0].1["position"]["offset"], 41);
        assert_eq!(got[0].1["raw"], "{\"ts\":");
        assert_eq!(got[1].0, "gw.log");
        assert_eq!(got[1].1["reason"], "invalid_utf8");
        assert_eq!(got[1].1["position"]["line"], 7);
        assert_eq!(got[1].1["raw_hex"], "61ff62");
    }
}
