//! Deterministic rules beside the model: known-bad patterns with fixed limits, each hit
//! carrying its rule id and a reason with the numbers ("token used from 7 distinct IPs in
//! 60 s (limit 3)").
//!
//! A model learns what normal looks like and can drift, or be trained on traffic that
//! already contained an attack; a rule says what is never normal, needs no training, and
//! explains itself. Rules read the same feature rows as the model: [`RuleSet::new`] looks
//! up each rule's columns in the schema once, so evaluating a row is a few comparisons.
//! A rule whose features the schema lacks (impossible travel needs `geo_velocity_kmh`,
//! which `identity-v2` does not compute) is *inactive*, not an error:
//! [`RuleSet::statuses`] says which rules run and why the others do not.
//!
//! ```
//! use ndarray::Array1;
//! use outrider_models::rules::{RuleId, RuleSet, RulesConfig};
//!
//! let columns = ["requests_per_min", "max_ips_per_token"];
//! let rules = RuleSet::new(&RulesConfig::default(), &columns, 60)?;
//! assert!(rules.is_active(RuleId::TokenIps));
//! assert!(!rules.is_active(RuleId::ImpossibleTravel)); // no geo_velocity_kmh column
//! let hits = rules.evaluate(Array1::from(vec![12.0, 7.0]).view())?;
//! assert_eq!(hits[0].reason, "token used from 7 distinct IPs in 60 s (limit 3)");
//! # Ok::<(), outrider_models::Error>(())
//! ```

mod config;
mod engine;

use serde::{Deserialize, Serialize};

pub use config::{
    ImpossibleTravelRule, LoginFailuresRule, RequestRateRule, RulesConfig, SequentialIdsRule,
    TokenIpsRule,
};
pub use engine::RuleSet;

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    TokenIps,
    ImpossibleTravel,
    SequentialIds,
    LoginFailures,
    RequestRate,
}

impl RuleId {
    pub const ALL: [RuleId; 5] = [
        Self::TokenIps,
        Self::ImpossibleTravel,
        Self::SequentialIds,
        Self::LoginFailures,
        Self::RequestRate,
    ];

    /// Stable name, as serialized and as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenIps => "token_ips",
            Self::ImpossibleTravel => "impossible_travel",
            Self::SequentialIds => "sequential_ids",
            Self::LoginFailures => "login_failures",
            Self::RequestRate => "request_rate",
        }
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a rule hit is; [`combine`](crate::combine) turns it into a minimum risk.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// One rule that fired on one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    pub rule: RuleId,
    pub severity: Severity,
    /// The value that crossed the limit (the first one for two-feature rules).
    pub value: f32,
    /// The limit it crossed.
    pub limit: f32,
    /// For an analyst, with the numbers.
    pub reason: String,
}

/// Whether a configured rule runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RuleState {
    Active,
    /// Turned off in the config.
    Disabled,
    /// Enabled, but the schema lacks features it reads.
    Inactive {
        missing: Vec<String>,
    },
}

/// A rule and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub rule: RuleId,
    #[serde(flatten)]
    pub state: RuleState,
}
