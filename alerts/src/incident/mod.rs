//! Incidents: alerts grouped by what they are about, so an analyst reads one story
//! instead of a storm.
//!
//! An [`Incident`] collects the alerts of one identity (kind `identity`, key
//! `sub:alice`) or of one campaign: several identities alerting from one client IP
//! (kind `campaign`, key `ip:203.0.113.9`), e.g. the victims of credential stuffing.
//! The [`IncidentGrouper`] builds them, in event time, and suppresses repeats: an alert
//! for the same identity and reason as one raised less than `suppress_secs` earlier is
//! folded into the incident (counted in `suppressed_count`) instead of being raised
//! again. The grouper is pure: the same alerts in the same order give the same
//! incidents, ids and verdicts, whatever the wall clock says.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{hash_id, Alert, AlertStatus, Severity};

mod grouper;
#[cfg(test)]
mod tests;

pub use grouper::{
    GroupedAlert, GroupedBatch, IncidentConfig, IncidentGrouper, SuppressBy, Verdict,
};

/// How many alert ids and identities an incident lists (its counters go on counting).
pub const MAX_LISTED: usize = 500;
/// How many distinct reasons an incident lists.
pub const MAX_REASONS: usize = 32;

/// What an incident groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// The alerts of one identity.
    Identity,
    /// The alerts of several identities related by one key (a shared client IP).
    Campaign,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Identity => "identity",
            IncidentKind::Campaign => "campaign",
        }
    }
}

/// A group of related alerts, with the analyst's status for the whole group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Deterministic, see [`incident_id`].
    pub id: String,
    pub kind: IncidentKind,
    /// The identity (`sub:alice`), or for a campaign the shared key (`ip:203.0.113.9`).
    pub key: String,
    /// Event time (`window_end`) of the earliest and latest alert, raised or suppressed.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Raised alerts in the order they joined, at most [`MAX_LISTED`].
    pub alert_ids: Vec<String>,
    /// Identities involved (one for an identity incident), at most [`MAX_LISTED`].
    pub identities: Vec<String>,
    /// Distinct alert reasons ([`alert_reason`]), at most [`MAX_REASONS`].
    pub reasons: Vec<String>,
    pub max_severity: Severity,
    pub status: AlertStatus,
    /// Raised alerts, all of them (`alert_ids` stops listing at [`MAX_LISTED`]).
    pub alert_count: u64,
    /// Repeats folded in instead of being raised.
    pub suppressed_count: u64,
}

impl Incident {
    /// An incident opened by its first alert.
    pub(crate) fn open(kind: IncidentKind, key: &str, first_seen: DateTime<Utc>) -> Self {
        Incident {
            id: incident_id(kind, key, first_seen),
            kind,
            key: key.to_owned(),
            first_seen,
            last_seen: first_seen,
            alert_ids: Vec::new(),
            identities: Vec::new(),
            reasons: Vec::new(),
            max_severity: Severity::Low,
            status: AlertStatus::Open,
            alert_count: 0,
            suppressed_count: 0,
        }
    }

    /// Widens the time span to include `t`.
    pub(crate) fn touch(&mut self, t: DateTime<Utc>) {
        self.first_seen = self.first_seen.min(t);
        self.last_seen = self.last_seen.max(t);
    }

    /// Adds a raised alert.
    pub(crate) fn add_raised(&mut self, alert: &Alert, reason: &str) {
        self.touch(alert.window_end);
        if self.alert_count == 0 || alert.severity > self.max_severity {
            self.max_severity = alert.severity;
        }
        self.alert_count += 1;
        // The grouper sees each alert id once (duplicates stop earlier), so the list
        // needs no membership check here.
        if self.alert_ids.len() < MAX_LISTED {
            self.alert_ids.push(alert.id.clone());
        }
        push_capped(&mut self.identities, &alert.identity, MAX_LISTED);
        push_capped(&mut self.reasons, reason, MAX_REASONS);
    }

    /// Counts a suppressed repeat.
    pub(crate) fn add_suppressed(&mut self, alert: &Alert) {
        self.touch(alert.window_end);
        self.suppressed_count += 1;
        push_capped(&mut self.identities, &alert.identity, MAX_LISTED);
    }

    /// Folds `newer` (the same incident, as the grouper sees it now) into this stored
    /// copy: the widest time span, the union of ids, identities and reasons, the larger
    /// counters and severity. The stored status wins unless `newer` carries a status of
    /// its own (not `open`): an analyst's verdict is not reset by more alerts.
    pub fn merge(&mut self, newer: &Incident) {
        self.first_seen = self.first_seen.min(newer.first_seen);
        self.last_seen = self.last_seen.max(newer.last_seen);
        for id in &newer.alert_ids {
            push_capped(&mut self.alert_ids, id, MAX_LISTED);
        }
        for identity in &newer.identities {
            push_capped(&mut self.identities, identity, MAX_LISTED);
        }
        for reason in &newer.reasons {
            push_capped(&mut self.reasons, reason, MAX_REASONS);
        }
        self.max_severity = self.max_severity.max(newer.max_severity);
        self.alert_count = self.alert_count.max(newer.alert_count);
        self.suppressed_count = self.suppressed_count.max(newer.suppressed_count);
        if newer.status != AlertStatus::Open {
            self.status = newer.status;
        }
    }
}

/// Appends `value` unless present or the list is full.
fn push_capped(list: &mut Vec<String>, value: &str, cap: usize) {
    if list.len() < cap && !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

/// Deterministic incident id: kind, key and the event time of the first alert.
pub fn incident_id(kind: IncidentKind, key: &str, first_seen: DateTime<Utc>) -> String {
    let millis = first_seen.timestamp_millis().to_string();
    hash_id(&["incident", kind.as_str(), key, &millis])
}

/// Why an alert fired, for suppression and for incident summaries: the feature that
/// contributed most (`distinct_object_ids`), or `model:<version>` for an alert without
/// features.
pub fn alert_reason(alert: &Alert) -> String {
    alert
        .features
        .iter()
        .filter(|f| !f.contribution.is_nan())
        .max_by(|a, b| {
            a.contribution
                .total_cmp(&b.contribution)
                .then(b.name.cmp(&a.name))
        })
        .map_or_else(
            || format!("model:{}", alert.model_version),
            |f| f.name.clone(),
        )
}

/// Filter for [`crate::AlertStore::incidents`]: newest `last_seen` first.
///
/// An incident is in `[since, until)` when its span overlaps it (`last_seen >= since`
/// and `first_seen < until`); `identity` matches the key or any listed identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub identity: Option<String>,
    pub kind: Option<IncidentKind>,
    pub min_severity: Option<Severity>,
    pub status: Option<AlertStatus>,
    pub limit: usize,
}

impl Default for IncidentQuery {
    fn default() -> Self {
        IncidentQuery {
            since: None,
            until: None,
            identity: None,
            kind: None,
            min_severity: None,
            status: None,
            limit: 100,
        }
    }
}

impl IncidentQuery {
    pub(crate) fn matches(&self, incident: &Incident) -> bool {
        let since_ok = self.since.is_none_or(|s| incident.last_seen >= s);
        let until_ok = self.until.is_none_or(|u| incident.first_seen < u);
        let identity_ok = self
            .identity
            .as_deref()
            .is_none_or(|i| incident.key == i || incident.identities.iter().any(|x| x == i));
        let kind_ok = self.kind.is_none_or(|k| incident.kind == k);
        let severity_ok = self.min_severity.is_none_or(|s| incident.max_severity >= s);
        let status_ok = self.status.is_none_or(|s| incident.status == s);
        since_ok && until_ok && identity_ok && kind_ok && severity_ok && status_ok
    }
}
