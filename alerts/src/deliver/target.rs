//! The one trait every delivery target implements, and the config that builds them.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::deliver::revocation::{RevocationConfig, RevocationTarget};
use crate::deliver::set::{SetConfig, SetPollQueue, SetTarget};
use crate::deliver::webhook::{WebhookConfig, WebhookSink};
use crate::deliver::DeliveryPolicy;
use crate::model::{Decision, DecisionContext};
use crate::{Error, Result};

/// One decision for one target, as the worker hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub decision: &'a Decision,
    pub context: &'a DecisionContext,
    /// This attempt's number (1 = first).
    pub attempt: u32,
}

/// What a target did with a job that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The receiver took it. `http_status` when there was an HTTP answer.
    Delivered { http_status: Option<u16> },
    /// Nothing to send for this target (a token decision without the token, a
    /// simulated decision for an enforcing target, ...): recorded, never retried.
    Skipped { reason: String },
}

/// A place decisions go. `send` makes one attempt and classifies its outcome:
///
/// - `Ok(Sent::Delivered)` / `Ok(Sent::Skipped)`: final.
/// - `Err(Error::Rejected)`: the receiver refused this message for good; final, recorded
///   as failed.
/// - `Err(e)` with `e.is_retryable()`: backed off and retried.
/// - any other `Err`: retried at the slowest pace (`max_backoff_ms`), so a fixed
///   receiver or config picks it up; the entry dies after `dead_after_secs`.
#[async_trait]
pub trait Target: Send + Sync + std::fmt::Debug {
    /// The target's name, as used in the outbox and in logs.
    fn name(&self) -> &str;
    /// `"webhook"`, `"revocation"`, `"set_push"`, `"set_poll"`.
    fn kind(&self) -> &'static str;
    /// What the circuit breaker is keyed by (targets sharing an endpoint share it).
    fn endpoint(&self) -> &str;
    fn policy(&self) -> DeliveryPolicy;
    async fn send(&self, job: &Job<'_>) -> Result<Sent>;
}

/// Whether a failure says the endpoint itself is unusable (transport error, 5xx, 408,
/// 429, 401, 403): these count towards opening its circuit. A rejection of one message
/// or a local problem does not.
pub(crate) fn is_endpoint_failure(e: &Error) -> bool {
    match e {
        Error::Delivery { status: None, .. } => true,
        Error::Delivery {
            status: Some(s), ..
        } => *s >= 500 || matches!(*s, 401 | 403 | 408 | 429),
        _ => false,
    }
}

/// Any target's config, tagged by `type`:
///
/// ```toml
/// [[decisions.targets]]
/// type = "revocation"
/// name = "idp"
/// ...
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TargetConfig {
    Webhook(WebhookConfig),
    Revocation(RevocationConfig),
    Set(SetConfig),
}

impl TargetConfig {
    pub fn name(&self) -> &str {
        match self {
            TargetConfig::Webhook(c) => &c.name,
            TargetConfig::Revocation(c) => &c.name,
            TargetConfig::Set(c) => &c.name,
        }
    }

    /// Builds the target, reading secrets and keys from the process environment and
    /// the file system. A SET target in poll mode needs `poll_queue`.
    pub fn build(&self, poll_queue: Option<&Arc<SetPollQueue>>) -> Result<Arc<dyn Target>> {
        self.build_with(poll_queue, &crate::deliver::process_env)
    }

    /// [`Self::build`] with an explicit environment lookup (for tests and embedding).
    pub fn build_with(
        &self,
        poll_queue: Option<&Arc<SetPollQueue>>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Target>> {
        Ok(match self {
            TargetConfig::Webhook(c) => Arc::new(WebhookSink::with_env(c.clone(), lookup)?),
            TargetConfig::Revocation(c) => Arc::new(RevocationTarget::with_env(c.clone(), lookup)?),
            TargetConfig::Set(c) => Arc::new(SetTarget::with_env(c.clone(), poll_queue, lookup)?),
        })
    }
}

/// Builds every configured target, keyed by name; names must be unique.
pub fn build_targets(
    configs: &[TargetConfig],
    poll_queue: Option<&Arc<SetPollQueue>>,
) -> Result<HashMap<String, Arc<dyn Target>>> {
    build_targets_with(configs, poll_queue, &crate::deliver::process_env)
}

/// [`build_targets`] with an explicit environment lookup.
pub fn build_targets_with(
    configs: &[TargetConfig],
    poll_queue: Option<&Arc<SetPollQueue>>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, Arc<dyn Target>>> {
    let mut names = std::collections::HashSet::new();
    if let Some(dup) = configs.iter().find(|c| !names.insert(c.name())) {
        return Err(Error::Config(format!(
            "duplicate target name {}",
            dup.name()
        )));
    }
    configs
        .iter()
        .map(|c| Ok((c.name().to_owned(), c.build_with(poll_queue, lookup)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_failures_are_the_ones_that_say_the_endpoint_is_down() {
        let d = |status: Option<u16>| Error::Delivery {
            target: "t".into(),
            status,
            attempts: 1,
            retryable: true,
            message: String::new(),
        };
        for s in [
            None,
            Some(500),
            Some(503),
            Some(429),
            Some(408),
            Some(401),
            Some(403),
        ] {
            assert!(is_endpoint_failure(&d(s)), "{s:?}");
        }
        for s in [Some(400), Some(404), Some(422)] {
            assert!(!is_endpoint_failure(&d(s)), "{s:?}");
        }
        let rejected = Error::Rejected {
            target: "t".into(),
            status: Some(400),
            code: None,
            message: String::new(),
        };
        assert!(!is_endpoint_failure(&rejected));
        assert!(!is_endpoint_failure(&Error::Config("x".into())));
    }

    #[test]
    fn tagged_config_denies_unknown_fields() {
        let ok = r#"{"type":"webhook","name":"a","url":"http://x","secret_env":"S"}"#;
        let cfg: TargetConfig = serde_json::from_str(ok).unwrap();
        assert_eq!(cfg.name(), "a");
        assert!(matches!(cfg, TargetConfig::Webhook(_)));
        let bad = r#"{"type":"webhook","name":"a","url":"http://x","secret_env":"S","oops":1}"#;
        assert!(serde_json::from_str::<TargetConfig>(bad).is_err());
        let unknown = r#"{"type":"carrier_pigeon","name":"a"}"#;
        assert!(serde_json::from_str::<TargetConfig>(unknown).is_err());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let w = |name: &str| {
            TargetConfig::Webhook(WebhookConfig::new(name, "http://127.0.0.1:1/h", "X"))
        };
        let env = |_: &str| Some("secret".to_owned());
        let built = build_targets_with(&[w("a"), w("b")], None, &env).unwrap();
        assert_eq!(built.len(), 2);
        assert_eq!(built["b"].name(), "b");
        assert_eq!(built["a"].kind(), "webhook");
        let err = build_targets_with(&[w("a"), w("b"), w("a")], None, &env).unwrap_err();
        assert!(err.to_string().contains("duplicate target name a"), "{err}");
    }
}
