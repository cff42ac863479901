//! The rules' configuration: the contract of the rules component. Every field has a default
//! taken from the `identity-v2` feature schema, so an empty section enables every rule
//! whose features the schema computes.

use serde::{Deserialize, Serialize};

use super::Severity;
use crate::error::{Error, Result};

/// All rules. Unknown fields are refused so a typo does not silently disable a rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    pub token_ips: TokenIpsRule,
    pub impossible_travel: ImpossibleTravelRule,
    pub sequential_ids: SequentialIdsRule,
    pub login_failures: LoginFailuresRule,
    pub request_rate: RequestRateRule,
}

/// A token used from more distinct client IPs in one window than a device plausibly moves
/// through (replay beside the owner, a leaked token shared around).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenIpsRule {
    pub enabled: bool,
    pub severity: Severity,
    /// Feature with the most distinct IPs seen with one token.
    pub feature: String,
    /// Hit when the count is above this (a phone switching Wi-Fi, cellular and a VPN
    /// shows 3).
    pub max_ips: f32,
}

impl Default for TokenIpsRule {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::High,
            feature: "max_ips_per_token".into(),
            max_ips: 3.0,
        }
    }
}

/// Consecutive requests of one identity from places too far apart for the time between
/// them. Needs a geo-velocity feature; the `identity-v2` schema has none yet, so with the
/// default feature name the rule reports itself inactive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImpossibleTravelRule {
    pub enabled: bool,
    pub severity: Severity,
    /// Feature with the largest speed, in km/h, implied by consecutive requests' locations.
    pub feature: String,
    /// Hit above this speed (an airliner cruises at about 900 km/h).
    pub max_kmh: f32,
}

impl Default for ImpossibleTravelRule {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::High,
            feature: "geo_velocity_kmh".into(),
            max_kmh: 1000.0,
        }
    }
}

/// Walking object ids in order (BOLA enumeration: `/accounts/1001`, `/1002`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequentialIdsRule {
    pub enabled: bool,
    pub severity: Severity,
    /// Feature with the share of adjacent sorted ids that differ by 1 or 2 (0 to 1).
    pub walk_feature: String,
    /// Feature with the distinct object ids touched.
    pub objects_feature: String,
    /// Hit when the walk share is at least this ...
    pub min_walk: f32,
    /// ... over at least this many distinct ids (three adjacent ids are not a walk).
    pub min_objects: f32,
}

impl Default for SequentialIdsRule {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Medium,
            walk_feature: "sequential_id_walk".into(),
            objects_feature: "distinct_object_ids".into(),
            min_walk: 0.8,
            min_objects: 20.0,
        }
    }
}

/// Failed logins from one IP across many users (credential stuffing, password spraying).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginFailuresRule {
    pub enabled: bool,
    pub severity: Severity,
    /// Feature with the failed logins attributed to the row's key (from the IP, for `ip:`
    /// rows).
    pub failures_feature: String,
    /// Feature with the most distinct identities seen from one of the key's IPs.
    pub identities_feature: String,
    /// Hit when failures are at least this ...
    pub min_failures: f32,
    /// ... and the IP served at least this many identities.
    pub min_identities: f32,
}

impl Default for LoginFailuresRule {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::High,
            failures_feature: "login_failures".into(),
            identities_feature: "max_identities_per_ip".into(),
            min_failures: 10.0,
            min_identities: 5.0,
        }
    }
}

/// A plain rate limit, as an alert rather than a block: far more requests than any person
/// or well-behaved client makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestRateRule {
    pub enabled: bool,
    pub severity: Severity,
    /// Feature with requests per minute.
    pub feature: String,
    /// Hit above this many requests per minute.
    pub max_per_min: f32,
}

impl Default for RequestRateRule {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Low,
            feature: "requests_per_min".into(),
            max_per_min: 600.0,
        }
    }
}

impl RulesConfig {
    /// Checks limits and feature names; says which field is wrong.
    pub fn check(&self) -> Result<()> {
        let t = &self.token_ips;
        non_negative("rules.token_ips.max_ips", t.max_ips)?;
        named("rules.token_ips.feature", &t.feature)?;
        let i = &self.impossible_travel;
        non_negative("rules.impossible_travel.max_kmh", i.max_kmh)?;
        named("rules.impossible_travel.feature", &i.feature)?;
        let s = &self.sequential_ids;
        if !(0.0..=1.0).contains(&s.min_walk) {
            return Err(field(
                "rules.sequential_ids.min_walk",
                format!("must be in [0, 1], got {}", s.min_walk),
            ));
        }
        non_negative("rules.sequential_ids.min_objects", s.min_objects)?;
        named("rules.sequential_ids.walk_feature", &s.walk_feature)?;
        named("rules.sequential_ids.objects_feature", &s.objects_feature)?;
        let l = &self.login_failures;
        non_negative("rules.login_failures.min_failures", l.min_failures)?;
        non_negative("rules.login_failures.min_identities", l.min_identities)?;
        named("rules.login_failures.failures_feature", &l.failures_feature)?;
        named(
            "rules.login_failures.identities_feature",
            &l.identities_feature,
        )?;
        let r = &self.request_rate;
        non_negative("rules.request_rate.max_per_min", r.max_per_min)?;
        named("rules.request_rate.feature", &r.feature)
    }
}

fn non_negative(name: &str, v: f32) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(field(
            name,
            format!("must be a finite number >= 0, got {v}"),
        ))
    }
}

fn named(name: &str, feature: &str) -> Result<()> {
    if feature.trim().is_empty() {
        Err(field(name, "must name a feature".into()))
    } else {
        Ok(())
    }
}

fn field(name: &str, msg: String) -> Error {
    Error::InvalidParams(format!("{name} {msg}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_config_is_the_default_and_valid() {
        let c: RulesConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, RulesConfig::default());
        c.check().unwrap();
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c: RulesConfig =
            serde_json::from_str(r#"{"token_ips":{"max_ips":5,"severity":"critical"}}"#).unwrap();
        assert_eq!(c.token_ips.max_ips, 5.0);
        assert_eq!(c.token_ips.severity, Severity::Critical);
        assert_eq!(c.token_ips.feature, "max_ips_per_token");
        assert!(c.token_ips.enabled);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<RulesConfig>(r#"{"token_ip":{}}"#).is_err());
        assert!(serde_json::from_str::<RulesConfig>(r#"{"token_ips":{"max":5}}"#).is_err());
    }

    #[test]
    fn bad_limits_name_the_field() {
        let mut c = RulesConfig::default();
        c.sequential_ids.min_walk = 1.5;
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("rules.sequential_ids.min_walk"), "{err}");
        let mut c = RulesConfig::default();
        c.request_rate.max_per_min = f32::NAN;
        assert!(c.check().unwrap_err().to_string().contains("max_per_min"));
        let mut c = RulesConfig::default();
        c.token_ips.feature = " ".into();
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .contains("token_ips.feature"));
    }
}
