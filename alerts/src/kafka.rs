//! Alerts and decisions as JSON on a Kafka topic, for SIEMs (feature `kafka`).
//!
//! One record per alert and per decision, keyed by the alert's identity so that one
//! identity's records stay in order in one partition. The value is
//! `{"kind":"alert","alert":{...}}` or `{"kind":"decision","identity":..,"decision":{...}}`;
//! headers `outrider-kind` and `outrider-id` (the deterministic id, for deduplication:
//! delivery is at least once). The producer is idempotent (`enable.idempotence`,
//! `acks=all`), so its own retries never duplicate a record.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::{Deserialize, Serialize};

use crate::model::{Alert, Decision};
use crate::{Error, Result};

/// Where the SIEM topic is.
///
/// ```toml
/// [siem.kafka]
/// brokers = "kafka-1:9092,kafka-2:9092"
/// topic = "outrider.alerts"
/// properties = { "security.protocol" = "ssl" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `host:port[,host:port]` of the bootstrap brokers.
    pub brokers: String,
    pub topic: String,
    /// How long a record may wait for the brokers' acknowledgement before
    /// [`KafkaSink::publish`] fails (librdkafka's `message.timeout.ms`).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra librdkafka producer properties (security settings and the like), as they
    /// are. Secrets belong in the environment: `properties_env` maps property names to
    /// the variables holding their values.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub properties_env: BTreeMap<String, String>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl KafkaSinkConfig {
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaSinkConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            timeout_ms: default_timeout_ms(),
            properties: BTreeMap::new(),
            properties_env: BTreeMap::new(),
        }
    }
}

/// A record's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SiemRecord {
    Alert {
        alert: Alert,
    },
    Decision {
        /// The identity of the decision's alert, when the batch held it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
        decision: Decision,
    },
}

/// Produces alerts and decisions to the SIEM topic.
pub struct KafkaSink {
    producer: FutureProducer,
    cfg: KafkaSinkConfig,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.cfg.brokers)
            .field("topic", &self.cfg.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Creates the producer, reading `properties_env` from the process environment.
    pub fn new(cfg: KafkaSinkConfig) -> Result<Self> {
        Self::with_env(cfg, &crate::deliver::process_env)
    }

    /// [`Self::new`] with an explicit environment lookup.
    pub fn with_env(cfg: KafkaSinkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        if cfg.brokers.trim().is_empty() || cfg.topic.trim().is_empty() {
            return Err(Error::Config(
                "siem kafka: brokers and topic are required".into(),
            ));
        }
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", cfg.timeout_ms.max(1).to_string());
        for (k, v) in &cfg.properties {
            client.set(k, v);
        }
        for (k, var) in &cfg.properties_env {
            let value = crate::deliver::secret_from(var, lookup)?;
            client.set(k, value);
        }
        let producer = client
            .create()
            .map_err(|e| Error::Config(format!("siem kafka: cannot create producer: {e}")))?;
        tracing::info!(brokers = %cfg.brokers, topic = %cfg.topic, "siem kafka producer ready");
        Ok(KafkaSink { producer, cfg })
    }

    pub fn topic(&self) -> &str {
        &self.cfg.topic
    }

    /// Produces every alert, then every decision, and waits until the brokers
    /// acknowledged all of them. A decision is keyed by its alert's identity when
    /// `alerts` holds that alert, otherwise by its value. Fails (retryable) if any
    /// record was not acknowledged within `timeout_ms`; records that did arrive stay,
    /// and consumers dedupe a retry on `outrider-id`.
    pub async fn publish(&self, alerts: &[Alert], decisions: &[Decision]) -> Result<()> {
        let identities: HashMap<&str, &str> = alerts
            .iter()
            .map(|a| (a.id.as_str(), a.identity.as_str()))
            .collect();
        let mut records = Vec::with_capacity(alerts.len() + decisions.len());
        for a in alerts {
            let value = serde_json::to_vec(&SiemRecord::Alert { alert: a.clone() })?;
            records.push(("alert", a.id.as_str(), a.identity.clone(), value));
        }
        for d in decisions {
            let identity = identities.get(d.alert_id.as_str()).map(|s| (*s).to_owned());
            let key = identity.clone().unwrap_or_else(|| d.value.clone());
            let value = serde_json::to_vec(&SiemRecord::Decision {
                identity,
                decision: d.clone(),
            })?;
            records.push(("decision", d.id.as_str(), key, value));
        }
        let sends = records.iter().map(|(kind, id, key, value)| {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "outrider-kind",
                    value: Some(*kind),
                })
                .insert(Header {
                    key: "outrider-id",
                    value: Some(*id),
                });
            let record = FutureRecord::to(&self.cfg.topic)
                .key(key.as_str())
                .payload(value.as_slice())
                .headers(headers);
            // The message timeout bounds the wait; the queue timeout only covers a full
            // local queue.
            self.producer
                .send(record, Duration::from_millis(self.cfg.timeout_ms))
        });
        let results = futures::future::join_all(sends).await;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|(e, _)| e.to_string()))
            .collect();
        if let Some(first) = failed.first() {
            return Err(Error::Kafka(format!(
                "{} of {} records to {} not acknowledged: {first}",
                failed.len(),
                records.len(),
                self.cfg.topic
            )));
        }
        tracing::debug!(alerts = alerts.len(), decisions = decisions.len(), topic = %self.cfg.topic, "published to siem topic");
        Ok(())
    }

    /// Waits for everything produced so far (before shutting down).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|e| Error::Kafka(format!("flush to {}: {e}", self.cfg.topic)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_denies_unknown_fields_and_has_defaults() {
        let cfg: KafkaSinkConfig = toml::from_str("brokers = \"b:9092\"\ntopic = \"t\"\n").unwrap();
        assert_eq!(cfg.timeout_ms, 30_000);
        let err = toml::from_str::<KafkaSinkConfig>("brokers = \"b\"\ntopic = \"t\"\ntopik = 1\n")
            .unwrap_err();
        assert!(err.to_string().contains("topik"), "{err}");
    }

    #[test]
    fn missing_secret_property_names_the_variable() {
        let mut cfg = KafkaSinkConfig::new("127.0.0.1:9", "t");
        cfg.properties_env
            .insert("sasl.password".into(), "OUTRIDER_TEST_NO_SUCH_VAR".into());
        let err = KafkaSink::with_env(cfg, &|_| None).unwrap_err();
        assert!(
            err.to_string().contains("OUTRIDER_TEST_NO_SUCH_VAR"),
            "{err}"
        );
        let err = KafkaSink::new(KafkaSinkConfig::new("", "t")).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
    }

    #[test]
    fn records_are_tagged_by_kind() {
        let alert = crate::store::tests::sample_alert(
            "sub:alice",
            crate::store::tests::t(1_700_000_060),
            crate::model::Severity::High,
        );
        let json = serde_json::to_value(SiemRecord::Alert {
            alert: alert.clone(),
        })
        .unwrap();
        assert_eq!(json["kind"], "alert");
        assert_eq!(json["alert"]["id"], alert.id.as_str());
        let back: SiemRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, SiemRecord::Alert { alert });
    }
}
