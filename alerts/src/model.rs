//! Alert and decision types, the severity mapping and deterministic ids.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Separator between hashed id fields: a control character that cannot appear in an
/// identity or API name, so `("a|b", "c")` and `("a", "b|c")` never hash alike.
const ID_FIELD_SEPARATOR: &str = "\u{1f}";

/// How much one feature contributed to a score, with the peer-group baseline an analyst
/// needs to judge it ("120 requests, usually 4, p99 15").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    pub name: String,
    pub value: f64,
    /// Median of the feature for the peer group.
    pub baseline: f64,
    pub baseline_p99: f64,
    pub contribution: f64,
}

/// Alert severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Maps a risk score in `[0, 1]` to a severity.
    ///
    /// Below `threshold` is `Low` (worth keeping, not worth paging). At or above it, the
    /// distance between threshold and 1 is split in thirds: `Medium`, `High`, `Critical`,
    /// so severity grows as the score approaches certainty. Non-finite input is `Low`: a
    /// broken score must not page anyone.
    pub fn from_risk(score: f64, threshold: f64) -> Severity {
        if !score.is_finite() || !threshold.is_finite() || score < threshold {
            return Severity::Low;
        }
        let headroom = 1.0 - threshold;
        if headroom <= f64::EPSILON {
            return Severity::Critical;
        }
        let position = ((score - threshold) / headroom).clamp(0.0, 1.0);
        if position < 1.0 / 3.0 {
            Severity::Medium
        } else if position < 2.0 / 3.0 {
            Severity::High
        } else {
            Severity::Critical
        }
    }

    /// The snake_case name used in JSON and in ClickHouse enums.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Where an alert is in the analyst workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[default]
    Open,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl AlertStatus {
    /// The snake_case name used in JSON, query strings and ClickHouse enums.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::FalsePositive => "false_positive",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<AlertStatus> {
        [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Resolved,
            AlertStatus::FalsePositive,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One anomalous window for one identity, with the evidence an analyst needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic, see [`alert_id`].
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Who: `"sub:alice"`, `"ip:1.2.3.4"`, ...
    pub identity: String,
    pub apis: Vec<String>,
    pub client_ips: Vec<String>,
    pub token_ids: Vec<String>,
    pub score: f64,
    pub threshold: f64,
    pub severity: Severity,
    pub model_version: String,
    /// Sorted by contribution, largest first (see [`Alert::sort_features`]).
    pub features: Vec<FeatureContribution>,
    pub evidence_request_ids: Vec<String>,
    pub event_count: u64,
    #[serde(default)]
    pub status: AlertStatus,
    /// Deterministic rules and burst detectors (`burst_<relation>`) that fired beside the
    /// model, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_hits: Vec<RuleHit>,
    /// Combined risk in `[0, 1]`: how much riskier than normal traffic the window is (a
    /// risk of 0.999 is exceeded by about 0.1 % of benign windows). `None` for alerts of
    /// uncalibrated models without rule or burst hits, and alerts stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<f64>,
}

/// A deterministic rule that fired on the alert's window ("token used from 7 distinct IPs
/// in 60 s (limit 3)").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    /// The rule's id (`token_ips`, `impossible_travel`, ...).
    pub rule: String,
    pub severity: Severity,
    pub reason: String,
}

impl Alert {
    /// Orders `features` by contribution, largest first, so the explanation reads
    /// top-down. NaN contributions sort last.
    pub fn sort_features(&mut self) {
        self.features.sort_by(
            |a, b| match (a.contribution.is_nan(), b.contribution.is_nan()) {
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => b.contribution.total_cmp(&a.contribution),
            },
        );
    }
}

/// What an enforcement point should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    RevokeToken,
    RevokeSessions,
    Block,
    Throttle,
    StepUp,
    Notify,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RevokeToken => "revoke_token",
            Action::RevokeSessions => "revoke_sessions",
            Action::Block => "block",
            Action::Throttle => "throttle",
            Action::StepUp => "step_up",
            Action::Notify => "notify",
        }
    }
}

/// What a decision's `value` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Token,
    Identity,
    Ip,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Token => "token",
            Scope::Identity => "identity",
            Scope::Ip => "ip",
        }
    }
}

/// An instruction for enforcement points, derived from an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Deterministic idempotency key, see [`decision_id`].
    pub id: String,
    pub alert_id: String,
    pub created_at: DateTime<Utc>,
    pub action: Action,
    pub scope: Scope,
    /// The token id, identity or IP the action applies to.
    pub value: String,
    pub ttl_secs: u64,
    /// Which policy or component produced the decision.
    pub origin: String,
    /// Shadow mode: receivers should log, not enforce.
    pub simulated: bool,
    pub reason: String,
}

/// Facts that travel with a decision to the targets that need them, beside the decision
/// rather than in it (they are not part of its id, its stored record or its webhook body).
///
/// Outrider itself never sees raw tokens (it keys tokens by `jti` + `aud`, else a keyed
/// hash), but RFC 7009 revocation needs the token string. When the gateway passes it
/// along, the caller puts it in [`DecisionContext::token`]; the outbox keeps it in a
/// separate table only until the decision has reached a final state for every target,
/// and it never appears in logs, `Debug` output or delivery records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionContext {
    /// The subject as the identity provider knows it, for Security Event Tokens. When
    /// absent, SET targets derive one from the decision's scope and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    /// What kind of token [`DecisionContext::token`] is (RFC 7009 `token_type_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<TokenTypeHint>,
    /// The raw token, only when the gateway passed it. Never serialized with the context.
    #[serde(skip)]
    pub token: Option<TokenValue>,
}

impl DecisionContext {
    /// Whether the context carries nothing.
    pub fn is_empty(&self) -> bool {
        self.subject.is_none() && self.token_type_hint.is_none() && self.token.is_none()
    }
}

/// A raw token string. Its `Debug` output is redacted and it does not implement
/// `Display` or `Serialize`, so it cannot end up in a log line or a record by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenValue(String);

impl TokenValue {
    pub fn new(token: impl Into<String>) -> Self {
        TokenValue(token.into())
    }

    /// The token itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenValue(<redacted>)")
    }
}

/// RFC 7009 `token_type_hint` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

impl TokenTypeHint {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

/// An RFC 9493 subject identifier, as carried in a Security Event Token's `sub_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectId {
    /// `{"format":"opaque","id":...}`: an identifier only the issuer can interpret.
    Opaque { id: String },
    /// `{"format":"email","email":...}`
    Email { email: String },
    /// `{"format":"iss_sub","iss":...,"sub":...}`: the OpenID Connect issuer and subject.
    IssSub { iss: String, sub: String },
    /// `{"format":"phone_number","phone_number":...}` (E.164)
    PhoneNumber { phone_number: String },
    /// `{"format":"account","uri":"acct:..."}`
    Account { uri: String },
    /// `{"format":"uri","uri":...}`
    Uri { uri: String },
}

/// Filter for [`crate::AlertStore::alerts`] (and, without `limit`, for
/// [`crate::AlertStore::alert_counts`]). Results are newest `window_end` first.
///
/// `since` is inclusive and `until` exclusive, both on `window_end`. Every filter that is
/// set must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub identity: Option<String>,
    /// One of the alert's `apis` (route templates such as `GET /v1/users/{id}`), exactly.
    pub api: Option<String>,
    pub min_severity: Option<Severity>,
    pub status: Option<AlertStatus>,
    pub limit: usize,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            since: None,
            until: None,
            identity: None,
            api: None,
            min_severity: None,
            status: None,
            limit: 100,
        }
    }
}

impl AlertQuery {
    /// Whether an alert passes every filter (shared by store implementations that
    /// filter client-side).
    pub(crate) fn matches(&self, alert: &Alert) -> bool {
        let identity_ok = self.identity.as_deref().is_none_or(|i| i == alert.identity);
        let api_ok = self
            .api
            .as_deref()
            .is_none_or(|api| alert.apis.iter().any(|a| a == api));
        let severity_ok = self.min_severity.is_none_or(|s| alert.severity >= s);
        let status_ok = self.status.is_none_or(|s| alert.status == s);
        let since_ok = self.since.is_none_or(|s| alert.window_end >= s);
        let until_ok = self.until.is_none_or(|u| alert.window_end < u);
        identity_ok && api_ok && severity_ok && status_ok && since_ok && until_ok
    }
}

/// Alert counts over time: [`crate::AlertStore::alert_counts`] counts the alerts that
/// match `filter` (its `limit` is ignored) per `bucket_secs`-long bucket of `window_end`,
/// buckets aligned on multiples of `bucket_secs` since the unix epoch (so hours start on
/// the hour, in UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountQuery {
    pub filter: AlertQuery,
    pub bucket_secs: u64,
    /// One count per bucket and severity instead of one per bucket.
    pub by_severity: bool,
}

impl CountQuery {
    /// Hourly counts of every alert.
    pub fn hourly() -> Self {
        CountQuery {
            filter: AlertQuery::default(),
            bucket_secs: 3600,
            by_severity: false,
        }
    }

    /// Refuses a zero-length bucket (stores divide by it).
    pub(crate) fn check(&self) -> crate::Result<()> {
        if self.bucket_secs == 0 {
            return Err(crate::Error::InvalidQuery(
                "bucket must be at least one second".into(),
            ));
        }
        Ok(())
    }

    /// The start of the bucket `t` falls in, in unix seconds.
    pub(crate) fn bucket_of(&self, t: DateTime<Utc>) -> i64 {
        let size = i64::try_from(self.bucket_secs).unwrap_or(i64::MAX);
        t.timestamp().div_euclid(size) * size
    }
}

/// One bucket of [`CountQuery`]: buckets without alerts are left out. Sorted by `start`,
/// then severity (least severe first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountBucket {
    pub start: DateTime<Utc>,
    /// Set when the query asked for counts by severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub count: u64,
}

/// Adds `n` alerts to the bucket (`start_secs`, `severity`) and returns the sorted list:
/// shared by the stores so both aggregate the same way.
pub(crate) fn collect_buckets(
    counts: impl IntoIterator<Item = (i64, Severity, u64)>,
    by_severity: bool,
) -> crate::Result<Vec<CountBucket>> {
    let mut map = std::collections::BTreeMap::<(i64, Option<Severity>), u64>::new();
    for (start, severity, n) in counts {
        let key = (start, by_severity.then_some(severity));
        *map.entry(key).or_default() += n;
    }
    map.into_iter()
        .map(|((start, severity), count)| {
            let start = DateTime::from_timestamp(start, 0)
                .ok_or_else(|| crate::Error::InvalidData(format!("bad bucket start {start}")))?;
            Ok(CountBucket {
                start,
                severity,
                count,
            })
        })
        .collect()
}

/// An analyst's note on an alert. Notes are append-only; the same note (alert, time,
/// author, text) added twice is kept once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertNote {
    pub alert_id: String,
    pub at: DateTime<Utc>,
    /// Who wrote it: the API key's name for notes added over HTTP.
    pub author: String,
    pub text: String,
}

impl AlertNote {
    /// Deterministic id, the stores' idempotency key.
    pub fn id(&self) -> String {
        let millis = self.at.timestamp_millis().to_string();
        hash_id(&[&self.alert_id, &millis, &self.author, &self.text])
    }
}

/// Deterministic alert id: the same identity, window and detector always give the same
/// id, so reprocessing a window never creates a second alert.
pub fn alert_id(identity: &str, window_end: DateTime<Utc>, detector: &str) -> String {
    let millis = window_end.timestamp_millis().to_string();
    hash_id(&[identity, &millis, detector])
}

/// Deterministic decision id, used as the idempotency key end to end (outbox entries,
/// webhook `Idempotency-Key`, store rows).
pub fn decision_id(alert_id: &str, action: Action, scope: Scope, value: &str) -> String {
    hash_id(&[alert_id, action.as_str(), scope.as_str(), value])
}

/// Hex of the first 16 bytes of SHA-256 over the separator-joined fields.
pub(crate) fn hash_id(fields: &[&str]) -> String {
    let joined = fields.join(ID_FIELD_SEPARATOR);
    let digest = Sha256::digest(joined.as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0)
            .single()
            .expect("valid timestamp")
    }

    #[test]
    fn alert_id_is_deterministic_and_distinct() {
        let a = alert_id("sub:alice", t(1_700_000_000), "iforest");
        assert_eq!(a, alert_id("sub:alice", t(1_700_000_000), "iforest"));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, alert_id("sub:bob", t(1_700_000_000), "iforest"));
        assert_ne!(a, alert_id("sub:alice", t(1_700_000_060), "iforest"));
        assert_ne!(a, alert_id("sub:alice", t(1_700_000_000), "rules"));
        // The separator keeps field boundaries meaningful.
        assert_ne!(alert_id("a", t(0), "bc"), alert_id("a", t(0), "b\u{1f}c"));
    }

    #[test]
    fn decision_id_is_deterministic_and_distinct() {
        let d = decision_id("abc", Action::RevokeToken, Scope::Token, "tok-1");
        assert_eq!(
            d,
            decision_id("abc", Action::RevokeToken, Scope::Token, "tok-1")
        );
        assert_eq!(d.len(), 32);
        assert_ne!(
            d,
            decision_id("abd", Action::RevokeToken, Scope::Token, "tok-1")
        );
        assert_ne!(d, decision_id("abc", Action::Block, Scope::Token, "tok-1"));
        assert_ne!(
            d,
            decision_id("abc", Action::RevokeToken, Scope::Identity, "tok-1")
        );
        assert_ne!(
            d,
            decision_id("abc", Action::RevokeToken, Scope::Token, "tok-2")
        );
    }

    #[test]
    fn severity_scales_with_score() {
        assert_eq!(Severity::from_risk(0.5, 0.7), Severity::Low);
        assert_eq!(Severity::from_risk(0.7, 0.7), Severity::Medium);
        assert_eq!(Severity::from_risk(0.82, 0.7), Severity::High);
        assert_eq!(Severity::from_risk(0.95, 0.7), Severity::Critical);
        assert_eq!(Severity::from_risk(1.0, 0.7), Severity::Critical);
        assert_eq!(Severity::from_risk(f64::NAN, 0.7), Severity::Low);
        assert_eq!(Severity::from_risk(1.0, 1.0), Severity::Critical);
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
    }

    #[test]
    fn enums_serialize_snake_case() {
        let json = serde_json::to_string(&(
            Severity::Critical,
            AlertStatus::FalsePositive,
            Action::RevokeSessions,
            Scope::Ip,
        ))
        .expect("serialize");
        assert_eq!(
            json,
            r#"["critical","false_positive","revoke_sessions","ip"]"#
        );
        assert_eq!(Action::StepUp.as_str(), "step_up");
    }

    #[test]
    fn sort_features_orders_by_contribution_desc() {
        let f = |name: &str, contribution: f64| FeatureContribution {
            name: name.into(),
            value: 1.0,
            baseline: 0.0,
            baseline_p99: 0.0,
            contribution,
        };
        let mut alert = crate::store::tests::sample_alert("sub:x", t(60), Severity::High);
        alert.features = vec![f("a", 0.1), f("n", f64::NAN), f("b", 0.5), f("c", 0.3)];
        alert.sort_features();
        let names: Vec<_> = alert.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a", "n"]);
    }
}
