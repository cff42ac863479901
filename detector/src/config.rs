//! The service configuration: one serde tree. The CLI layers it as built-in defaults, then a
//! TOML file, then `OUTRIDER__SECTION__KEY` environment variables. Every struct denies
//! unknown fields, so a misspelt key is an error that names it, not a silent default.

use std::collections::HashSet;
use std::path::PathBuf;

use outrider_alerts::{
    ClickHouseConfig, HttpConfig, IncidentConfig, KafkaSinkConfig, PolicySet, SetDelivery,
    TargetConfig, WatchConfig,
};
use outrider_features::WindowConfig;
use outrider_ingest::dead_letter::DeadLetterConfig;
use outrider_ingest::identity::IdentityConfig;
use outrider_ingest::parse::{Format, MappingConfig};
use outrider_ingest::route::resolver::RouteConfig;
use outrider_ingest::source::KafkaSourceConfig;
use outrider_models::RulesConfig;
use serde::{Deserialize, Serialize};

use crate::burst::BurstConfig;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub features: WindowConfig,
    pub model: ModelConfig,
    pub alerts: AlertsConfig,
    /// How alerts group into incidents and when repeats are suppressed.
    pub incidents: IncidentConfig,
    pub decisions: DecisionsConfig,
    /// The HTTP API for analysts and enforcement points; off unless `[http]` is set.
    pub http: Option<HttpConfig>,
    /// Where alerts and decisions are published for SIEMs.
    pub siem: SiemConfig,
    /// Checks later traffic against revoke and block decisions; off unless
    /// `[revocation_watch]` is set.
    pub revocation_watch: Option<WatchConfig>,
    /// Deterministic rules beside the model (limits and severities per rule).
    pub rules: RulesConfig,
    /// Burst detection on the event stream (on by default).
    pub burst: BurstConfig,
    pub pipeline: PipelineConfig,
    /// Prometheus metrics and the liveness and readiness probes; off unless `[ops]` is set.
    pub ops: Option<crate::ops::OpsConfig>,
    /// Where each Kafka partition's feature state is saved, so that a partition that
    /// moves to another instance (or a restarted one) keeps its history.
    pub checkpoints: CheckpointConfig,
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
    /// How often (seconds) the model file's modification time and size are checked; a
    /// changed file is loaded, validated and swapped in between batches. 0: only on SIGHUP.
    pub reload_check_secs: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(".outrider/model.json"),
            reload_check_secs: 0,
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
    /// Shadow mode for every decision, whatever the policy file says: decisions are
    /// stored, marked `simulated`, and never sent to an enforcement point.
    pub simulated: bool,
    /// How long an enforcement point should keep a decision of the built-in policy (a
    /// policy file sets its own TTLs).
    pub ttl_secs: u64,
    /// A policy file (see `examples/policies/`); without one the built-in policy decides
    /// (block an anonymous IP, revoke an identity's seen tokens, else block the identity).
    pub policy_file: Option<PathBuf>,
    /// Enforcement points that receive every decision that is not simulated: signed
    /// webhooks, RFC 7009 revocation endpoints, Security Event Token receivers.
    pub targets: Vec<TargetConfig>,
    /// At the end of a replay, how long to wait for the outbox to drain.
    pub drain_timeout_secs: u64,
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        Self {
            simulated: false,
            ttl_secs: 3600,
            policy_file: None,
            targets: Vec::new(),
            drain_timeout_secs: 30,
        }
    }
}

impl DecisionsConfig {
    /// The policies that turn alerts into decisions: the policy file's, else the built-in
    /// ones. The global `simulated` flag is applied by the pipeline on top of either.
    pub fn policies(&self) -> crate::Result<PolicySet> {
        match &self.policy_file {
            Some(path) => PolicySet::load(path).map_err(|e| match e {
                outrider_alerts::Error::Io { path, source } => crate::Error::Config(format!(
                    "`decisions.policy_file`: cannot read {}: {source}",
                    path.display()
                )),
                other => alerts_config_error("`decisions.policy_file`: ", other),
            }),
            None => Ok(PolicySet::builtin(self.ttl_secs, self.simulated)),
        }
    }

    /// The receivers of the `set` targets that queue for polling (RFC 8936).
    pub fn poll_receivers(&self) -> Vec<&str> {
        self.targets
            .iter()
            .filter_map(|t| match t {
                TargetConfig::Set(set) => match &set.delivery {
                    SetDelivery::Poll { receiver } => Some(receiver.as_str()),
                    SetDelivery::Push { .. } => None,
                },
                _ => None,
            })
            .collect()
    }
}

/// Destinations for SIEMs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiemConfig {
    /// A Kafka topic that receives every stored alert and decision as JSON, before the
    /// source offsets behind them are committed.
    pub kafka: Option<KafkaSinkConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Records taken from the source per batch.
    pub batch_size: usize,
    /// After this long without records (wall clock), windows up to the newest event time
    /// are emitted without waiting for the allowed lateness, so a quiet stream still alerts.
    pub idle_flush_ms: u64,
    /// While the alert store is unavailable, the batch in hand is retried, first after
    /// this delay, doubling (with full jitter) up to `store_retry_max_ms`. Nothing more is
    /// read and nothing committed meanwhile.
    pub store_retry_initial_ms: u64,
    pub store_retry_max_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 4096,
            idle_flush_ms: 2000,
            store_retry_initial_ms: 200,
            store_retry_max_ms: 30_000,
        }
    }
}

/// `[checkpoints]`: the feature state of each Kafka partition, saved to
/// `<dir>/<topic>-<partition>.ckpt` and restored by whichever instance of the consumer
/// group is assigned the partition next. File replays start from the beginning every
/// time, so they neither write nor restore checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Shared by every instance of one consumer group (a mounted volume); one directory
    /// per group. Default: `<alerts.data_dir>/checkpoints`.
    pub dir: Option<PathBuf>,
    /// Most seconds between two checkpoints of a partition (0: after every batch). The
    /// committed offset never passes the newest checkpoint, so a longer interval means
    /// more re-reading after a crash, never a loss.
    pub interval_secs: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval_secs: 30,
        }
    }
}

impl Config {
    /// The dead-letter file for records that could not be parsed.
    pub fn dead_letter_path(&self) -> PathBuf {
        self.alerts.data_dir.join("dead-letter.jsonl")
    }

    /// Where partition checkpoints live: `checkpoints.dir`, else under `alerts.data_dir`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoints
            .dir
            .clone()
            .unwrap_or_else(|| self.alerts.data_dir.join("checkpoints"))
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
        if self.pipeline.store_retry_initial_ms == 0 {
            return Err(crate::Error::Config(
                "`pipeline.store_retry_initial_ms` must be at least 1".into(),
            ));
        }
        let empty_dir = self.checkpoints.dir.as_ref();
        if empty_dir.is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(crate::Error::Config(
                "`checkpoints.dir` is empty; leave it out for the default".into(),
            ));
        }
        self.incidents
            .check()
            .map_err(|e| alerts_config_error("", e))?;
        self.validate_decisions()?;
        self.burst.validate()?;
        if let Some(http) = &self.http {
            self.validate_http(http)?;
        }
        if let Some(kafka) = &self.siem.kafka {
            if kafka.brokers.trim().is_empty() || kafka.topic.trim().is_empty() {
                return Err(crate::Error::Config(
                    "`siem.kafka`: `brokers` and `topic` must not be empty".into(),
                ));
            }
        }
        if let Some(ops) = &self.ops {
            ops.check()?;
        }
        if let Some(watch) = &self.revocation_watch {
            if watch.watch_secs == 0 || watch.max_watched == 0 {
                return Err(crate::Error::Config(
                    "`revocation_watch.watch_secs` and `revocation_watch.max_watched` must be at least 1"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_decisions(&self) -> crate::Result<()> {
        let mut names = HashSet::new();
        for t in &self.decisions.targets {
            if t.name().trim().is_empty() {
                return Err(crate::Error::Config(
                    "`decisions.targets`: a target has an empty `name`".into(),
                ));
            }
            if !names.insert(t.name()) {
                return Err(crate::Error::Config(format!(
                    "`decisions.targets`: two targets are named {:?}",
                    t.name()
                )));
            }
        }
        // Reads and checks the policy file, so a broken one fails `check-config`.
        self.decisions.policies()?;
        Ok(())
    }

    /// What can be checked without the API keys (they are read from the environment when
    /// the service starts).
    fn validate_http(&self, http: &HttpConfig) -> crate::Result<()> {
        let invalid = |msg: String| Err(crate::Error::Config(msg));
        if http.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!(
                "`http.listen`: {:?} is not an address and port such as \"127.0.0.1:8640\"",
                http.listen
            ));
        }
        if http.max_page == 0 {
            return invalid("`http.max_page` must be at least 1".into());
        }
        if http.api_keys.is_empty() {
            return invalid(
                "`http.api_keys` is empty: every route needs an authenticated caller".into(),
            );
        }
        let receivers = self.decisions.poll_receivers();
        let mut names = HashSet::new();
        for key in &http.api_keys {
            let what = format!("`http.api_keys` {:?}", key.name);
            if !names.insert(key.name.as_str()) {
                return invalid(format!("{what}: the name is used twice"));
            }
            if key.roles.is_empty() {
                return invalid(format!("{what}: `roles` is empty"));
            }
            if key.key_env.trim().is_empty() {
                return invalid(format!("{what}: `key_env` is empty"));
            }
            if let Some(r) = &key.set_receiver {
                if !receivers.contains(&r.as_str()) {
                    return invalid(format!(
                        "{what}: `set_receiver` {r:?} is not the receiver of a `set` target with poll delivery"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An alerts-crate error as a detector configuration error, without a second
/// "invalid configuration" prefix.
pub(crate) fn alerts_config_error(prefix: &str, e: outrider_alerts::Error) -> crate::Error {
    match e {
        outrider_alerts::Error::Config(msg) => crate::Error::Config(format!("{prefix}{msg}")),
        other => crate::Error::Config(format!("{prefix}{other}")),
    }
}
