//! Was a revocation effective? Traffic after a revoke or block decision says.
//!
//! After a decision revokes a token, ends an identity's sessions or blocks an identity
//! or IP, requests with that token (`jti` + `aud`), from that identity or from that IP
//! should fail. The [`RevocationWatcher`] watches the decision's subject from its
//! effective time; a request that still succeeds (2xx or 3xx) more than `grace_secs`
//! after it raises one "revocation not effective" alert (severity high) per decision,
//! with a note that names the decision and the offending request. A 401 or 403 is the
//! revocation working and raises nothing.
//!
//! The watcher is pure: the detector feeds it decisions and minimal [`Observation`]s
//! (it does not depend on the ingest crate), and time is each observation's event time.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::feed::split_token_id;
use crate::model::{
    alert_id, Action, Alert, AlertNote, AlertStatus, Decision, FeatureContribution, Scope, Severity,
};

/// The `model_version` of the alerts the watcher raises.
pub const WATCHER: &str = "revocation-watch";

/// How the watcher judges requests after a decision.
///
/// ```toml
/// [revocation_watch]
/// grace_secs = 30        # enforcement points get this long to apply a decision
/// watch_secs = 86400     # how long after the decision requests are checked (capped by its TTL)
/// max_watched = 100000
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    pub grace_secs: u64,
    pub watch_secs: u64,
    /// Decisions watched at once; beyond it the ones that stop soonest are dropped.
    pub max_watched: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            grace_secs: 30,
            watch_secs: 86_400,
            max_watched: 100_000,
        }
    }
}

/// One request as the watcher needs it: when, who, with which token, from where, to
/// which route, and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Event time of the request.
    pub time: DateTime<Utc>,
    /// The identity key (`sub:alice`, `ip:1.2.3.4`).
    pub identity: String,
    /// The token's `jti`, or for opaque tokens the keyed hash Outrider uses as token id.
    pub jti: Option<String>,
    pub aud: Option<String>,
    /// HTTP status the gateway answered.
    pub status: u16,
    pub ip: Option<String>,
    /// Route template (`/v1/accounts/{id}`).
    pub route: String,
    pub request_id: String,
}

impl Observation {
    /// Sets `jti` and `aud` from an Outrider token id (`jti:<id>@<aud>`, `jti:<id>`, or
    /// a keyed hash such as `h:...`, kept whole as the `jti`).
    pub fn with_token_id(mut self, token_id: &str) -> Self {
        let (jti, aud) = token_key(token_id);
        self.jti = Some(jti);
        self.aud = aud;
        self
    }

    fn succeeded(&self) -> bool {
        (200..400).contains(&self.status)
    }

    fn token_id(&self) -> Option<String> {
        let jti = self.jti.as_deref()?;
        Some(match (&self.aud, jti.starts_with("h:")) {
            (_, true) => jti.to_owned(),
            (Some(aud), false) => format!("jti:{jti}@{aud}"),
            (None, false) => format!("jti:{jti}"),
        })
    }
}

/// (`jti`, `aud`) of a token id; a non-`jti:` id is its own `jti`.
fn token_key(token_id: &str) -> (String, Option<String>) {
    split_token_id(token_id).unwrap_or_else(|| (token_id.to_owned(), None))
}

/// What a decision forbids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Subject {
    Token { jti: String },
    Identity(String),
    Ip(String),
}

#[derive(Debug, Clone)]
struct Watch {
    decision: Decision,
    /// `aud` a token decision is limited to.
    aud: Option<String>,
    effective_at: DateTime<Utc>,
    /// Requests after this are violations.
    enforce_from: DateTime<Utc>,
    /// Requests after this are not checked.
    until: DateTime<Utc>,
}

/// A revocation that did not take effect: the alert to store (and group, and decide
/// on) and the note that explains it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub alert: Alert,
    pub note: AlertNote,
    pub decision_id: String,
}

/// Watches revoke and block decisions (see the module docs).
#[derive(Debug, Clone)]
pub struct RevocationWatcher {
    cfg: WatchConfig,
    watches: HashMap<Subject, Vec<Watch>>,
    /// (until, decision id) for expiry in order.
    by_end: BTreeMap<(DateTime<Utc>, String), Subject>,
    /// Decisions that raised their finding already.
    reported: HashMap<String, DateTime<Utc>>,
}

impl RevocationWatcher {
    pub fn new(cfg: WatchConfig) -> Self {
        RevocationWatcher {
            cfg,
            watches: HashMap::new(),
            by_end: BTreeMap::new(),
            reported: HashMap::new(),
        }
    }

    /// Starts watching a decision from its `created_at`. See [`Self::watch_from`].
    pub fn watch(&mut self, decision: &Decision) -> bool {
        self.watch_from(decision, decision.created_at)
    }

    /// Starts watching a decision from `effective_at` (when it was created, or when
    /// its enforcement point confirmed delivery). Only enforcing decisions are watched:
    /// `revoke_token` (the token), `revoke_sessions` (the identity) and `block`
    /// (token, identity or IP), not simulated ones. Returns whether it is watched.
    pub fn watch_from(&mut self, decision: &Decision, effective_at: DateTime<Utc>) -> bool {
        let Some((subject, aud)) = subject_of(decision) else {
            return false;
        };
        if self.reported.contains_key(&decision.id) {
            return false;
        }
        let watch_secs = self.cfg.watch_secs.min(decision.ttl_secs.max(1));
        let watch = Watch {
            decision: decision.clone(),
            aud,
            effective_at,
            enforce_from: after(effective_at, self.cfg.grace_secs),
            until: after(effective_at, watch_secs),
        };
        let list = self.watches.entry(subject.clone()).or_default();
        if list.iter().any(|w| w.decision.id == decision.id) {
            return true;
        }
        self.by_end
            .insert((watch.until, decision.id.clone()), subject);
        list.push(watch);
        self.enforce_cap();
        true
    }

    /// Checks one request. Returns a finding for each watched decision it violates
    /// (at most one finding per decision, ever).
    pub fn observe(&mut self, obs: &Observation) -> Vec<Finding> {
        self.expire(obs.time);
        if !obs.succeeded() {
            return Vec::new();
        }
        let mut subjects = vec![Subject::Identity(obs.identity.clone())];
        if let Some(jti) = &obs.jti {
            subjects.push(Subject::Token { jti: jti.clone() });
        }
        if let Some(ip) = &obs.ip {
            subjects.push(Subject::Ip(ip.clone()));
        }
        let mut findings = Vec::new();
        for subject in subjects {
            let Some(list) = self.watches.get(&subject) else {
                continue;
            };
            let violated: Vec<Watch> = list.iter().filter(|w| violates(w, obs)).cloned().collect();
            for w in violated {
                self.reported.insert(w.decision.id.clone(), w.until);
                self.unwatch(&subject, &w.decision.id, w.until);
                findings.push(finding(&w, obs));
            }
        }
        findings.sort_by(|a, b| a.decision_id.cmp(&b.decision_id));
        findings
    }

    /// Stops watching decisions whose watch ended before `now`.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        while let Some(entry) = self.by_end.first_entry() {
            if entry.key().0 >= now {
                break;
            }
            let ((until, id), subject) = entry.remove_entry();
            self.remove_watch(&subject, &id, until);
        }
        self.reported.retain(|_, until| *until >= now);
    }

    /// Decisions being watched.
    pub fn len(&self) -> usize {
        self.by_end.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_end.is_empty()
    }

    fn unwatch(&mut self, subject: &Subject, id: &str, until: DateTime<Utc>) {
        self.by_end.remove(&(until, id.to_owned()));
        self.remove_watch(subject, id, until);
    }

    fn remove_watch(&mut self, subject: &Subject, id: &str, until: DateTime<Utc>) {
        if let Some(list) = self.watches.get_mut(subject) {
            list.retain(|w| !(w.decision.id == id && w.until == until));
            if list.is_empty() {
                self.watches.remove(subject);
            }
        }
    }

    fn enforce_cap(&mut self) {
        while self.by_end.len() > self.cfg.max_watched {
            let Some(((until, id), subject)) = self.by_end.pop_first() else {
                break;
            };
            self.remove_watch(&subject, &id, until);
        }
    }
}

/// `t + secs`, saturating at the latest time there is.
fn after(t: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX).min(i64::MAX / 1000);
    t.checked_add_signed(Duration::seconds(secs))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What an enforcing decision forbids; `None` for decisions that forbid nothing.
fn subject_of(d: &Decision) -> Option<(Subject, Option<String>)> {
    if d.simulated {
        return None;
    }
    match (d.action, d.scope) {
        (Action::RevokeToken | Action::Block, Scope::Token) => {
            let (jti, aud) = token_key(&d.value);
            Some((Subject::Token { jti }, aud))
        }
        (Action::RevokeSessions | Action::Block, Scope::Identity) => {
            Some((Subject::Identity(d.value.clone()), None))
        }
        (Action::Block, Scope::Ip) => Some((Subject::Ip(d.value.clone()), None)),
        _ => None,
    }
}

/// A request violates a watch when it succeeded after the grace period, within the
/// watch, and (for a token with a known audience) for that audience.
fn violates(w: &Watch, obs: &Observation) -> bool {
    let in_time = obs.time > w.enforce_from && obs.time <= w.until;
    let aud_ok = match (&w.aud, &obs.aud) {
        (Some(want), Some(got)) => want == got,
        _ => true,
    };
    in_time && aud_ok
}

fn finding(w: &Watch, obs: &Observation) -> Finding {
    let d = &w.decision;
    let late = (obs.time - w.effective_at).num_milliseconds() as f64 / 1000.0;
    let grace = (w.enforce_from - w.effective_at).num_seconds() as f64;
    let explanation = format!(
        "decision {} ({} {} {}, effective {}) did not take effect: request {} to {} by {}{} \
         was answered {} at {}, {:.0} s after the decision (grace {:.0} s)",
        d.id,
        d.action.as_str(),
        d.scope.as_str(),
        d.value,
        w.effective_at.to_rfc3339(),
        obs.request_id,
        obs.route,
        obs.identity,
        obs.ip
            .as_deref()
            .map(|ip| format!(" from {ip}"))
            .unwrap_or_default(),
        obs.status,
        obs.time.to_rfc3339(),
        late,
        grace,
    );
    let id = alert_id(
        &obs.identity,
        w.effective_at,
        &format!("{WATCHER}/{}", d.id),
    );
    let alert = Alert {
        id: id.clone(),
        created_at: obs.time,
        window_start: w.effective_at,
        window_end: obs.time,
        identity: obs.identity.clone(),
        apis: vec![obs.route.clone()],
        client_ips: obs.ip.iter().cloned().collect(),
        token_ids: obs.token_id().into_iter().collect(),
        score: 1.0,
        threshold: 1.0,
        severity: Severity::High,
        model_version: WATCHER.to_owned(),
        features: vec![
            FeatureContribution {
                name: "seconds_after_decision".into(),
                value: late,
                baseline: grace,
                baseline_p99: grace,
                contribution: 1.0,
            },
            FeatureContribution {
                name: "http_status".into(),
                value: f64::from(obs.status),
                baseline: 401.0,
                baseline_p99: 403.0,
                contribution: 0.5,
            },
        ],
        evidence_request_ids: vec![obs.request_id.clone()],
        event_count: 1,
        status: AlertStatus::Open,
        rule_hits: Vec::new(),
        risk: None,
    };
    Finding {
        note: AlertNote {
            alert_id: id,
            at: obs.time,
            author: WATCHER.to_owned(),
            text: explanation,
        },
        alert,
        decision_id: d.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decision_id;

    const T0: i64 = 1_700_000_000;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(T0 + secs, 0).expect("valid time")
    }

    fn decision(action: Action, scope: Scope, value: &str) -> Decision {
        Decision {
            id: decision_id("alert-1", action, scope, value),
            alert_id: "alert-1".into(),
            created_at: t(0),
            action,
            scope,
            value: value.into(),
            ttl_secs: 3600,
            origin: "policy:test".into(),
            simulated: false,
            reason: "test".into(),
        }
    }

    fn request(at: i64, status: u16) -> Observation {
        Observation {
            time: t(at),
            identity: "sub:alice".into(),
            jti: None,
            aud: None,
            status,
            ip: Some("198.51.100.7".into()),
            route: "/v1/accounts/{id}".into(),
            request_id: format!("req-{at}"),
        }
    }

    fn watcher() -> RevocationWatcher {
        RevocationWatcher::new(WatchConfig {
            grace_secs: 30,
            watch_secs: 600,
            max_watched: 100,
        })
    }

    #[test]
    fn success_after_grace_raises_one_alert_naming_decision_and_request() {
        let mut w = watcher();
        let d = decision(Action::RevokeToken, Scope::Token, "jti:abc@bank");
        assert!(w.watch(&d));
        let req = request(45, 200).with_token_id("jti:abc@bank");
        let findings = w.observe(&req);
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.decision_id, d.id);
        assert_eq!(f.alert.severity, Severity::High);
        assert_eq!(f.alert.model_version, WATCHER);
        assert_eq!(f.alert.evidence_request_ids, vec!["req-45".to_owned()]);
        assert_eq!(f.alert.token_ids, vec!["jti:abc@bank".to_owned()]);
        assert_eq!(f.note.alert_id, f.alert.id);
        assert!(f.note.text.contains(&d.id), "{}", f.note.text);
        assert!(f.note.text.contains("req-45"), "{}", f.note.text);
        assert!(f.note.text.contains("answered 200"), "{}", f.note.text);
        // Deterministic: the same decision and request give the same alert id.
        let mut again = watcher();
        again.watch(&d);
        assert_eq!(again.observe(&req)[0].alert.id, f.alert.id);
        // One finding per decision: later successes raise nothing more.
        assert!(w
            .observe(&request(50, 200).with_token_id("jti:abc@bank"))
            .is_empty());
    }

    #[test]
    fn requests_within_the_grace_period_are_not_violations() {
        let mut w = watcher();
        w.watch(&decision(Action::RevokeToken, Scope::Token, "jti:abc@bank"));
        for at in [0, 10, 30] {
            let req = request(at, 200).with_token_id("jti:abc@bank");
            assert!(w.observe(&req).is_empty(), "at {at}s");
        }
        let late = request(31, 204).with_token_id("jti:abc@bank");
        assert_eq!(w.observe(&late).len(), 1, "31 s is past the 30 s grace");
    }

    #[test]
    fn a_refused_request_after_revocation_is_the_revocation_working() {
        let mut w = watcher();
        w.watch(&decision(Action::RevokeToken, Scope::Token, "jti:abc@bank"));
        for status in [401, 403, 404, 500] {
            let req = request(120, status).with_token_id("jti:abc@bank");
            assert!(w.observe(&req).is_empty(), "status {status}");
        }
        let redirect = request(121, 302).with_token_id("jti:abc@bank");
        assert_eq!(w.observe(&redirect).len(), 1, "3xx still served the caller");
    }

    #[test]
    fn tokens_match_on_jti_and_audience() {
        let mut w = watcher();
        w.watch(&decision(Action::RevokeToken, Scope::Token, "jti:abc@bank"));
        let mut other_aud = request(100, 200).with_token_id("jti:abc@shop");
        other_aud.identity = "sub:bob".into();
        other_aud.ip = None;
        assert!(w.observe(&other_aud).is_empty(), "another audience's token");
        let mut other_jti = request(100, 200).with_token_id("jti:xyz@bank");
        other_jti.identity = "sub:bob".into();
        other_jti.ip = None;
        assert!(w.observe(&other_jti).is_empty());
        // A token server reports tokens without audience: the jti decides.
        let mut no_aud = request(101, 200).with_token_id("jti:abc");
        no_aud.identity = "sub:bob".into();
        assert_eq!(w.observe(&no_aud).len(), 1);
    }

    #[test]
    fn identity_and_ip_decisions_watch_their_subject() {
        let mut w = watcher();
        w.watch(&decision(
            Action::RevokeSessions,
            Scope::Identity,
            "sub:alice",
        ));
        w.watch(&decision(Action::Block, Scope::Ip, "203.0.113.9"));
        let mut stranger = request(100, 200);
        stranger.identity = "sub:carol".into();
        assert!(w.observe(&stranger).is_empty());
        let alice = request(100, 200);
        let found = w.observe(&alice);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].alert.identity, "sub:alice");
        let mut from_blocked_ip = request(101, 200);
        from_blocked_ip.identity = "sub:dave".into();
        from_blocked_ip.ip = Some("203.0.113.9".into());
        let found = w.observe(&from_blocked_ip);
        assert_eq!(found.len(), 1);
        assert!(found[0].note.text.contains("203.0.113.9"));
    }

    #[test]
    fn simulated_and_non_enforcing_decisions_are_not_watched() {
        let mut w = watcher();
        let mut shadow = decision(Action::RevokeToken, Scope::Token, "jti:abc@bank");
        shadow.simulated = true;
        assert!(!w.watch(&shadow));
        assert!(!w.watch(&decision(Action::Throttle, Scope::Identity, "sub:alice")));
        assert!(!w.watch(&decision(Action::Notify, Scope::Identity, "sub:alice")));
        assert!(w.is_empty());
        assert!(w
            .observe(&request(100, 200).with_token_id("jti:abc@bank"))
            .is_empty());
    }

    #[test]
    fn watches_end_with_the_watch_period_or_ttl() {
        let mut w = watcher();
        let mut short = decision(Action::RevokeSessions, Scope::Identity, "sub:alice");
        short.ttl_secs = 120;
        w.watch(&short);
        assert_eq!(w.len(), 1);
        assert!(
            w.observe(&request(121, 200)).is_empty(),
            "past the decision's TTL"
        );
        assert!(w.is_empty(), "expired watches are dropped");
        let mut w = watcher();
        w.watch(&decision(
            Action::RevokeSessions,
            Scope::Identity,
            "sub:alice",
        ));
        assert!(
            w.observe(&request(601, 200)).is_empty(),
            "past watch_secs (600)"
        );
    }

    #[test]
    fn extreme_times_and_settings_do_not_panic() {
        let mut w = RevocationWatcher::new(WatchConfig {
            grace_secs: u64::MAX,
            watch_secs: u64::MAX,
            max_watched: 10,
        });
        let mut d = decision(Action::RevokeSessions, Scope::Identity, "sub:alice");
        d.ttl_secs = u64::MAX;
        d.created_at = DateTime::<Utc>::MAX_UTC;
        assert!(w.watch(&d));
        let mut late = request(0, 200);
        late.time = DateTime::<Utc>::MAX_UTC;
        assert!(
            w.observe(&late).is_empty(),
            "never past an infinite grace period"
        );
    }

    #[test]
    fn the_cap_drops_the_watches_that_end_first() {
        let mut w = RevocationWatcher::new(WatchConfig {
            max_watched: 2,
            ..WatchConfig::default()
        });
        for (i, ttl) in [(1, 100), (2, 50), (3, 200)] {
            let mut d = decision(
                Action::RevokeSessions,
                Scope::Identity,
                &format!("sub:u{i}"),
            );
            d.ttl_secs = ttl;
            w.watch(&d);
        }
        assert_eq!(w.len(), 2);
        let mut u2 = request(40, 200);
        u2.identity = "sub:u2".into();
        assert!(
            w.observe(&u2).is_empty(),
            "u2's watch ended soonest and was dropped"
        );
        let mut u1 = request(41, 200);
        u1.identity = "sub:u1".into();
        assert_eq!(w.observe(&u1).len(), 1);
    }
}
