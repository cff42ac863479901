//! The service configuration: one serde tree. The CLI layers it as built-in defaults, then a
//! TOML file, then `OUTRIDER__SECTION__KEY` environment variables. Every struct denies
//! unknown fields, so a misspelt key is an error that names it, not a silent default.

use std::path::PathBuf;

use outrider_alerts::{ClickHouseConfig, WebhookConfig};
use outrider_features::WindowConfig;
use outrider_ingest::dead_letter::DeadLetterConfig;
use outrider_ingest::identity::IdentityConfig;
use outrider_ingest::parse::{Format, MappingConfig};
use outrider_ingest::route::resolver::RouteConfig;
use outrider_ingest::source::KafkaSourceConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub features: WindowConfig,
    pub model: ModelConfig,
    pub alerts: AlertsConfig,
    pub decisions: DecisionsConfig,
    pub pipeline: PipelineConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Canonical JSON lines from `source.path` (`-` for stdin), replayed in event time.
    #[default]
    File,
    /// A Kafka consumer group, see `source.kafka`.
    Kafka,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub path: PathBuf,
    /// The records' format; `auto` detects it from a file's first lines.
    pub format: Format,
    pub kafka: KafkaSourceConfig,
    /// Lines longer than this are dead-lettered as `oversized`.
    pub max_line_bytes: usize,
    /// How identities and client addresses are derived (trusted proxies, hash key).
    pub identity: IdentityConfig,
    /// Field paths for `format = "mapping"`.
    pub mapping: Option<MappingConfig>,
    /// Route templates: OpenAPI specs, learning from traffic.
    pub routes: RouteConfig,
    /// Where refused records go (a file under `alerts.data_dir` by default, or a topic).
    pub dead_letter: DeadLetterConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::File,
            path: PathBuf::from("-"),
            format: Format::Canonical,
            kafka: KafkaSourceConfig::default(),
            max_line_bytes: outrider_ingest::parse::DEFAULT_MAX_LINE_BYTES,
            identity: IdentityConfig::default(),
            mapping: None,
            routes: RouteConfig::default(),
            dead_letter: DeadLetterConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A model file written by `outrider train`.
    pub path: PathBuf,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(".outrider/model.json"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// A durable file under `alerts.data_dir`; no server needed.
    #[default]
    Embedded,
    Clickhouse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub store: StoreKind,
    /// Where the embedded store, the decision outbox and the dead letters live.
    pub data_dir: PathBuf,
    pub clickhouse: ClickHouseConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Embedded,
            data_dir: PathBuf::from(".outrider"),
            clickhouse: ClickHouseConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionsConfig {
    /// Shadow mode: decisions are recorded but not sent to any enforcement point.
    pub simulated: bool,
    /// How long an enforcement point should keep a decision.
    pub ttl_secs: u64,
    /// Signed webhooks that receive every decision that is not simulated.
    pub webhooks: Vec<WebhookConfig>,
    /// At the end of a replay, how long to wait for the outbox to drain.
    pub drain_timeout_secs: u64,
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        Self {
            simulated: false,
            ttl_secs: 3600,
            webhooks: Vec::new(),
            drain_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Records taken from the source per batch.
    pub batch_size: usize,
    /// After this long without records (wall clock), windows up to the newest event time
    /// are emitted without waiting for the allowed lateness, so a quiet stream still alerts.
    pub idle_flush_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 4096,
            idle_flush_ms: 2000,
        }
    }
}

impl Config {
    /// The dead-letter file for records that could not be parsed.
    pub fn dead_letter_path(&self) -> PathBuf {
        self.alerts.data_dir.join("dead-letter.jsonl")
    }

    /// Checks what serde cannot: values in range, settings that belong together.
    pub fn validate(&self) -> crate::Result<()> {
        self.features
            .check()
            .map_err(|e| crate::Error::Config(e.to_string()))?;
        if self.pipeline.batch_size == 0 {
            return Err(crate::Error::Config(
                "`pipeline.batch_size` must be at least 1".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for w in &self.decisions.webhooks {
            if !names.insert(w.name.as_str()) {
                return Err(crate::Error::Config(format!(
                    "`decisions.webhooks`: two webhooks are named {:?}",
                    w.name
                )));
            }
        }
        Ok(())
    }
}
