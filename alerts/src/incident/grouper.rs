//! The incident grouper: alerts in, verdicts and incidents out, in event time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{alert_reason, Incident, IncidentKind, MAX_LISTED};
use crate::model::{Alert, Severity};
use crate::{Error, Result};

/// Client IPs of one alert that campaign tracking looks at (an identity seen from many
/// addresses is not what makes a campaign).
const MAX_IPS_PER_ALERT: usize = 8;
/// Raised alert ids remembered per identity and IP until a campaign opens.
const MAX_TRACKED_IDS: usize = 50;
/// Longest `gap_secs` (a year): longer windows would only hold state forever.
const MAX_WINDOW_SECS: u64 = 365 * 86_400;

/// How alerts group into incidents and when repeats are suppressed.
///
/// ```toml
/// [incidents]
/// gap_secs = 3600               # an incident closes after an hour without alerts
/// suppress_secs = 900           # a repeat within 15 minutes is counted, not raised
/// suppress_by = "reason"        # or "identity": any repeat for the identity
/// campaign_min_identities = 3   # identities alerting from one IP that make a campaign
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// An alert more than this long (event time) after an incident's last alert opens
    /// a new incident.
    pub gap_secs: u64,
    /// A repeat (same identity and reason) less than this long after the last raised
    /// alert is suppressed; 0 turns suppression off. At most `gap_secs`.
    pub suppress_secs: u64,
    pub suppress_by: SuppressBy,
    /// Distinct identities alerting from one client IP within `gap_secs` that open a
    /// campaign incident; 0 turns campaigns off.
    pub campaign_min_identities: usize,
    /// Open incidents kept in memory; at the cap the least recently seen are closed.
    pub max_open: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            gap_secs: 3600,
            suppress_secs: 900,
            suppress_by: SuppressBy::Reason,
            campaign_min_identities: 3,
            max_open: 100_000,
        }
    }
}

impl IncidentConfig {
    /// Checks what serde cannot.
    pub fn check(&self) -> Result<()> {
        if self.gap_secs == 0 || self.gap_secs > MAX_WINDOW_SECS {
            return Err(Error::Config(format!(
                "incidents.gap_secs must be from 1 to {MAX_WINDOW_SECS} (a year)"
            )));
        }
        if self.suppress_secs > self.gap_secs {
            return Err(Error::Config(format!(
                "incidents.suppress_secs ({}) must not exceed incidents.gap_secs ({})",
                self.suppress_secs, self.gap_secs
            )));
        }
        if self.campaign_min_identities == 1 {
            return Err(Error::Config(
                "incidents.campaign_min_identities must be 0 (off) or at least 2".into(),
            ));
        }
        if self.max_open == 0 {
            return Err(Error::Config(
                "incidents.max_open must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// What makes an alert a repeat of an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressBy {
    /// The same identity and the same reason ([`super::alert_reason`]).
    #[default]
    Reason,
    /// The same identity, whatever the reason.
    Identity,
}

/// What became of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A new alert: store it and decide on it.
    Raised,
    /// A repeat of `repeats` (an alert id) within the suppression window: counted in
    /// the incident, not raised.
    Suppressed { repeats: String },
    /// The grouper has seen this alert id already (a replayed window): nothing changed.
    Duplicate,
}

/// One alert's verdict and the incidents it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupedAlert {
    pub alert_id: String,
    pub verdict: Verdict,
    /// Its identity's incident.
    pub incident_id: String,
    /// The campaign incidents it joined (one per client IP in a campaign).
    pub campaign_ids: Vec<String>,
}

/// The result of [`IncidentGrouper::group`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupedBatch {
    /// The alerts to store and decide on (verdict [`Verdict::Raised`]), in input order.
    pub raised: Vec<Alert>,
    /// One entry per input alert, in input order.
    pub outcomes: Vec<GroupedAlert>,
    /// Every incident that changed, to upsert ([`crate::AlertStore::upsert_incidents`]),
    /// sorted by id.
    pub incidents: Vec<Incident>,
}

#[derive(Debug, Clone)]
struct LastRaised {
    at: DateTime<Utc>,
    alert_id: String,
    severity: Severity,
}

/// One identity's alerts from one IP, remembered until a campaign opens.
#[derive(Debug, Clone)]
struct Sighting {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    raised: Vec<String>,
    raised_count: u64,
    max_severity: Severity,
    reasons: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Seen {
    at: DateTime<Utc>,
    incident_id: String,
    campaign_ids: Vec<String>,
}

type OpenKey = (IncidentKind, String);

/// Groups alerts into incidents and suppresses repeats (see the module docs).
///
/// Time is the alerts' `window_end`: the grouper's clock is the latest one it has seen
/// (or a later time given to [`Self::advance`]). State is bounded: closed incidents,
/// expired suppression entries and IP sightings older than `gap_secs` are dropped, and
/// at most `max_open` incidents stay open.
#[derive(Debug, Clone)]
pub struct IncidentGrouper {
    cfg: IncidentConfig,
    gap: Duration,
    suppress: Duration,
    open: HashMap<OpenKey, Incident>,
    last_raised: HashMap<(String, String), LastRaised>,
    /// IP -> identity -> sighting.
    sightings: HashMap<String, BTreeMap<String, Sighting>>,
    seen: HashMap<String, Seen>,
    dirty: BTreeSet<OpenKey>,
    /// Changed incidents that closed before [`Self::take_changed`] collected them.
    closed_changed: Vec<Incident>,
    clock: Option<DateTime<Utc>>,
    last_sweep: Option<DateTime<Utc>>,
}

impl IncidentGrouper {
    /// A grouper; the config must pass [`IncidentConfig::check`].
    pub fn new(cfg: IncidentConfig) -> Result<Self> {
        cfg.check()?;
        // Both are at most a year (checked above).
        let secs = |s: u64| Duration::seconds(i64::try_from(s.min(MAX_WINDOW_SECS)).unwrap_or(0));
        Ok(IncidentGrouper {
            gap: secs(cfg.gap_secs),
            suppress: secs(cfg.suppress_secs),
            cfg,
            open: HashMap::new(),
            last_raised: HashMap::new(),
            sightings: HashMap::new(),
            seen: HashMap::new(),
            dirty: BTreeSet::new(),
            closed_changed: Vec::new(),
            clock: None,
            last_sweep: None,
        })
    }

    /// Picks up incidents that were open before a restart (e.g. the store's open
    /// incidents of the last `gap_secs`), so later alerts join them, replayed alerts
    /// are recognised, and suppression goes on: each restored identity incident
    /// suppresses repeats of its reasons as if its last alert had been raised at its
    /// `last_seen` (the restored state does not know which were suppressed).
    pub fn restore(&mut self, incidents: impl IntoIterator<Item = Incident>) {
        for incident in incidents {
            let key = (incident.kind, incident.key.clone());
            for id in &incident.alert_ids {
                let seen = self.seen.entry(id.clone()).or_insert_with(|| Seen {
                    at: incident.last_seen,
                    incident_id: String::new(),
                    campaign_ids: Vec::new(),
                });
                match incident.kind {
                    IncidentKind::Identity => seen.incident_id = incident.id.clone(),
                    IncidentKind::Campaign => seen.campaign_ids.push(incident.id.clone()),
                }
            }
            if incident.kind == IncidentKind::Identity {
                let last_id = incident.alert_ids.last().cloned().unwrap_or_default();
                for reason in &incident.reasons {
                    let suppress_key = self.suppress_key(&incident.key, reason);
                    self.last_raised.insert(
                        suppress_key,
                        LastRaised {
                            at: incident.last_seen,
                            alert_id: last_id.clone(),
                            severity: incident.max_severity,
                        },
                    );
                }
            }
            self.clock = Some(
                self.clock
                    .map_or(incident.last_seen, |c| c.max(incident.last_seen)),
            );
            self.open.insert(key, incident);
        }
    }

    /// Groups a batch: verdicts per alert, the alerts to raise, and the incidents that
    /// changed.
    pub fn group(&mut self, alerts: &[Alert]) -> GroupedBatch {
        let mut batch = GroupedBatch::default();
        for alert in alerts {
            let grouped = self.observe(alert);
            if grouped.verdict == Verdict::Raised {
                batch.raised.push(alert.clone());
            }
            batch.outcomes.push(grouped);
        }
        batch.incidents = self.take_changed();
        batch
    }

    /// Groups one alert. Collect the incidents it changed with [`Self::take_changed`].
    pub fn observe(&mut self, alert: &Alert) -> GroupedAlert {
        let t = alert.window_end;
        self.advance(t);
        if let Some(seen) = self.seen.get(&alert.id) {
            return GroupedAlert {
                alert_id: alert.id.clone(),
                verdict: Verdict::Duplicate,
                incident_id: seen.incident_id.clone(),
                campaign_ids: seen.campaign_ids.clone(),
            };
        }
        let reason = alert_reason(alert);
        let verdict = self.suppression_verdict(alert, &reason);
        let incident_id = self.join_identity_incident(alert, &reason, &verdict);
        let campaign_ids = self.join_campaigns(alert, &reason, &verdict);
        self.seen.insert(
            alert.id.clone(),
            Seen {
                at: t,
                incident_id: incident_id.clone(),
                campaign_ids: campaign_ids.clone(),
            },
        );
        GroupedAlert {
            alert_id: alert.id.clone(),
            verdict,
            incident_id,
            campaign_ids,
        }
    }

    /// Every incident changed since the last call, sorted by id (closed ones included).
    pub fn take_changed(&mut self) -> Vec<Incident> {
        let mut out = std::mem::take(&mut self.closed_changed);
        for key in std::mem::take(&mut self.dirty) {
            if let Some(incident) = self.open.get(&key) {
                out.push(incident.clone());
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Moves the clock to `now` (event time, e.g. the detector's watermark) if that is
    /// later, closing incidents and forgetting state that no alert at or after `now`
    /// can use.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let clock = self.clock.map_or(now, |c| c.max(now));
        self.clock = Some(clock);
        // Sweeping on every alert would be quadratic; a sweep per quarter gap of event
        // time keeps state within 1.25 gaps (the open-incident cap holds at all times).
        let every = (self.gap / 4).max(Duration::seconds(1));
        if self.last_sweep.is_some_and(|s| clock - s < every) {
            return;
        }
        self.last_sweep = Some(clock);
        self.sweep(clock);
    }

    /// Open incidents (for metrics and tests).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn sweep(&mut self, clock: DateTime<Utc>) {
        let horizon = before(clock, self.gap);
        let stale: Vec<OpenKey> = self
            .open
            .iter()
            .filter(|(_, i)| i.last_seen < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.close(&key);
        }
        let suppress_horizon = before(clock, self.suppress);
        self.last_raised.retain(|_, r| r.at >= suppress_horizon);
        for per_identity in self.sightings.values_mut() {
            per_identity.retain(|_, s| s.last >= horizon);
        }
        self.sightings.retain(|_, m| !m.is_empty());
        self.seen.retain(|_, s| s.at >= horizon);
        self.close_least_recent(self.cfg.max_open);
    }

    /// Makes room for one more open incident. At the cap, 1 % is closed at once, so a
    /// grouper pinned at the cap does not scan every open incident for each new one.
    fn make_room(&mut self) {
        if self.open.len() >= self.cfg.max_open {
            let slack = (self.cfg.max_open / 100).max(1);
            self.close_least_recent(self.cfg.max_open.saturating_sub(slack));
        }
    }

    /// Closes the least recently seen incidents until at most `keep` are open (ties:
    /// by key).
    fn close_least_recent(&mut self, keep: usize) {
        let excess = self.open.len().saturating_sub(keep);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(DateTime<Utc>, OpenKey)> = self
            .open
            .iter()
            .map(|(k, i)| (i.last_seen, k.clone()))
            .collect();
        by_age.sort();
        for (_, key) in by_age.into_iter().take(excess) {
            self.close(&key);
        }
    }

    fn close(&mut self, key: &OpenKey) {
        if let Some(incident) = self.open.remove(key) {
            if self.dirty.remove(key) {
                self.closed_changed.push(incident);
            }
        }
    }

    fn suppress_key(&self, identity: &str, reason: &str) -> (String, String) {
        let reason = match self.cfg.suppress_by {
            SuppressBy::Reason => reason.to_owned(),
            SuppressBy::Identity => String::new(),
        };
        (identity.to_owned(), reason)
    }

    /// Raised, unless an alert for the same key was raised within the window (before
    /// or after this one in event time) with at least this severity.
    fn suppression_verdict(&mut self, alert: &Alert, reason: &str) -> Verdict {
        let key = self.suppress_key(&alert.identity, reason);
        if self.cfg.suppress_secs > 0 {
            if let Some(last) = self.last_raised.get(&key) {
                let apart = (alert.window_end - last.at).abs();
                if apart < self.suppress && alert.severity <= last.severity {
                    return Verdict::Suppressed {
                        repeats: last.alert_id.clone(),
                    };
                }
            }
        }
        let replace = self
            .last_raised
            .get(&key)
            .is_none_or(|last| alert.window_end >= last.at || alert.severity > last.severity);
        if replace {
            self.last_raised.insert(
                key,
                LastRaised {
                    at: alert.window_end,
                    alert_id: alert.id.clone(),
                    severity: alert.severity,
                },
            );
        }
        Verdict::Raised
    }

    /// Adds the alert to its identity's open incident, opening one if there is none or
    /// the open one went quiet for longer than the gap.
    fn join_identity_incident(&mut self, alert: &Alert, reason: &str, verdict: &Verdict) -> String {
        let key = (IncidentKind::Identity, alert.identity.clone());
        let incident = self.open_incident(key.clone(), alert.window_end);
        match verdict {
            Verdict::Raised => incident.add_raised(alert, reason),
            _ => incident.add_suppressed(alert),
        }
        let id = incident.id.clone();
        self.dirty.insert(key);
        id
    }

    /// The open incident for `key`, closing a stale one and opening a new one at `t`
    /// when needed.
    fn open_incident(&mut self, key: OpenKey, t: DateTime<Utc>) -> &mut Incident {
        let stale = self
            .open
            .get(&key)
            .is_some_and(|i| t - i.last_seen > self.gap);
        if stale {
            self.close(&key);
        }
        if !self.open.contains_key(&key) {
            self.make_room();
        }
        let (kind, name) = (key.0, key.1.clone());
        self.open
            .entry(key)
            .or_insert_with(|| Incident::open(kind, &name, t))
    }

    /// Tracks the alert per client IP, and adds it to (or opens) the campaign incident
    /// of every IP from which enough identities alerted within the gap.
    fn join_campaigns(&mut self, alert: &Alert, reason: &str, verdict: &Verdict) -> Vec<String> {
        if self.cfg.campaign_min_identities == 0 {
            return Vec::new();
        }
        let mut joined = Vec::new();
        let ips: BTreeSet<&str> = alert
            .client_ips
            .iter()
            .take(MAX_IPS_PER_ALERT)
            .map(String::as_str)
            .collect();
        for ip in ips {
            self.record_sighting(ip, alert, reason, verdict);
            if let Some(id) = self.join_campaign(ip, alert, reason, verdict) {
                joined.push(id);
            }
        }
        joined
    }

    fn record_sighting(&mut self, ip: &str, alert: &Alert, reason: &str, verdict: &Verdict) {
        let t = alert.window_end;
        let horizon = before(t, self.gap);
        let per_identity = self.sightings.entry(ip.to_owned()).or_default();
        per_identity.retain(|_, s| s.last >= horizon);
        let s = per_identity
            .entry(alert.identity.clone())
            .or_insert_with(|| Sighting {
                first: t,
                last: t,
                raised: Vec::new(),
                raised_count: 0,
                max_severity: alert.severity,
                reasons: BTreeSet::new(),
            });
        s.first = s.first.min(t);
        s.last = s.last.max(t);
        if *verdict == Verdict::Raised {
            s.raised_count += 1;
            s.max_severity = s.max_severity.max(alert.severity);
            if s.raised.len() < MAX_TRACKED_IDS {
                s.raised.push(alert.id.clone());
            }
            s.reasons.insert(reason.to_owned());
        }
    }

    fn join_campaign(
        &mut self,
        ip: &str,
        alert: &Alert,
        reason: &str,
        verdict: &Verdict,
    ) -> Option<String> {
        let key = (IncidentKind::Campaign, format!("ip:{ip}"));
        let t = alert.window_end;
        let is_open = self
            .open
            .get(&key)
            .is_some_and(|i| t - i.last_seen <= self.gap);
        if is_open {
            let incident = self.open.get_mut(&key)?;
            match verdict {
                Verdict::Raised => incident.add_raised(alert, reason),
                _ => incident.add_suppressed(alert),
            }
            let id = incident.id.clone();
            self.dirty.insert(key);
            return Some(id);
        }
        let sightings = self.sightings.get(ip)?;
        if sightings.len() < self.cfg.campaign_min_identities {
            return None;
        }
        let incident = campaign_from(&key.1, sightings, alert, verdict);
        let id = incident.id.clone();
        self.close(&key);
        self.make_room();
        self.open.insert(key.clone(), incident);
        self.dirty.insert(key);
        Some(id)
    }
}

/// `t - d`, or the earliest time there is (an alert with a nonsense time must not
/// panic the grouper).
fn before(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A campaign incident made of the sightings that crossed the threshold. The current
/// alert is among them when raised; when suppressed it is counted as such.
fn campaign_from(
    key: &str,
    sightings: &BTreeMap<String, Sighting>,
    alert: &Alert,
    verdict: &Verdict,
) -> Incident {
    let first = sightings
        .values()
        .map(|s| s.first)
        .min()
        .unwrap_or(alert.window_end);
    let mut incident = Incident::open(IncidentKind::Campaign, key, first);
    let mut reasons = BTreeSet::new();
    for (identity, s) in sightings {
        incident.touch(s.first);
        incident.touch(s.last);
        incident.alert_count += s.raised_count;
        incident.max_severity = incident.max_severity.max(s.max_severity);
        if incident.identities.len() < MAX_LISTED {
            incident.identities.push(identity.clone());
        }
        for id in &s.raised {
            if incident.alert_ids.len() < MAX_LISTED {
                incident.alert_ids.push(id.clone());
            }
        }
        reasons.extend(s.reasons.iter().cloned());
    }
    incident.reasons = reasons.into_iter().take(super::MAX_REASONS).collect();
    if *verdict != Verdict::Raised {
        incident.suppressed_count += 1;
    }
    incident
}
