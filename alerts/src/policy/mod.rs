//! Policies: which alerts lead to which decisions.
//!
//! A policy file ([`PolicyFile`], TOML) lists policies in order. Each has conditions
//! on the alert (`[policy.match]`: severity, score, identity kind and patterns, APIs,
//! leading features, tokens) and actions (`[[policy.actions]]`: revoke a token, end an
//! identity's sessions, block an IP or identity, throttle, require step-up, notify the
//! user), each with its scope, TTL, origin and `simulated` flag. Shadow mode (every
//! decision `simulated`: stored, never sent) can be set for the file, a policy or an
//! action. [`PolicySet::decide`] turns an alert into decisions; it is pure (the time is
//! an argument) and decision ids are deterministic ([`crate::decision_id`]), so
//! re-deciding a replayed alert gives the same decisions.
//!
//! A broken file is refused with an error that names the file, the policy and the key.

mod config;
mod pattern;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

pub use config::{
    ActionConfig, ActionKind, MatchConfig, OnMatch, PolicyConfig, PolicyDefaults, PolicyFile,
};
use pattern::matches_pattern;

use crate::model::{decision_id, Action, Alert, Decision, Scope};
use crate::{Error, Result};

/// A checked, ready-to-use policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySet {
    shadow: bool,
    policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq)]
struct Policy {
    name: String,
    shadow: bool,
    on_match: OnMatch,
    when: MatchConfig,
    top_features: usize,
    actions: Vec<PolicyAction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PolicyAction {
    action: Action,
    scope: Scope,
    ttl_secs: u64,
    origin: String,
    simulated: bool,
    max_values: usize,
}

/// How many leading features `features` conditions look at by default.
const DEFAULT_TOP_FEATURES: usize = 3;

impl PolicySet {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<PolicySet> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks policy TOML; `source` names it in errors (a path).
    pub fn from_toml(text: &str, source: &str) -> Result<PolicySet> {
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{source}: {}", describe_toml_error(text, &e))))?;
        Self::new(file).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{source}: {msg}")),
            other => other,
        })
    }

    /// Checks a parsed policy file.
    pub fn new(file: PolicyFile) -> Result<PolicySet> {
        check_defaults(&file.defaults)?;
        let mut names = HashSet::new();
        let mut policies = Vec::with_capacity(file.policies.len());
        for (index, p) in file.policies.iter().enumerate() {
            let policy = compile(p, &file.defaults)
                .map_err(|msg| Error::Config(format!("{}: {msg}", label(p, index))))?;
            if !names.insert(p.name.clone()) {
                return Err(Error::Config(format!(
                    "{}: the name is used by an earlier policy",
                    label(p, index)
                )));
            }
            policies.push(policy);
        }
        Ok(PolicySet {
            shadow: file.shadow,
            policies,
        })
    }

    /// The policy the detector applied before policy files existed: an `ip:` identity
    /// has its IP blocked; an identity whose tokens were seen has them revoked; any other
    /// identity is blocked. `examples/policies/default.toml` is the same as a file.
    pub fn builtin(ttl_secs: u64, shadow: bool) -> PolicySet {
        let policy = |name: &str, when: MatchConfig, action: ActionKind| PolicyConfig {
            name: name.into(),
            description: String::new(),
            shadow: false,
            on_match: OnMatch::Stop,
            when,
            actions: vec![ActionConfig {
                action,
                scope: None,
                ttl_secs: None,
                origin: None,
                simulated: false,
                max_values: None,
            }],
        };
        let file = PolicyFile {
            shadow,
            defaults: PolicyDefaults {
                ttl_secs: ttl_secs.max(1),
                ..PolicyDefaults::default()
            },
            policies: vec![
                policy(
                    "block-anonymous-ips",
                    MatchConfig {
                        identity_kinds: vec!["ip".into()],
                        ..MatchConfig::default()
                    },
                    ActionKind::BlockIp,
                ),
                policy(
                    "revoke-seen-tokens",
                    MatchConfig {
                        has_tokens: Some(true),
                        ..MatchConfig::default()
                    },
                    ActionKind::RevokeToken,
                ),
                policy(
                    "block-identity",
                    MatchConfig::default(),
                    ActionKind::BlockIdentity,
                ),
            ],
        };
        // The built-in file is valid by construction; fall back to no policy rather
        // than panic should that ever change.
        PolicySet::new(file).unwrap_or(PolicySet {
            shadow,
            policies: Vec::new(),
        })
    }

    /// Whether the whole set runs in shadow mode.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Policy names, in evaluation order.
    pub fn names(&self) -> Vec<&str> {
        self.policies.iter().map(|p| p.name.as_str()).collect()
    }

    /// The policies an alert matches, in order, stopping where evaluation stops.
    pub fn matching(&self, alert: &Alert) -> Vec<&str> {
        let mut out = Vec::new();
        for p in &self.policies {
            if p.matches(alert) {
                out.push(p.name.as_str());
                if p.on_match == OnMatch::Stop {
                    break;
                }
            }
        }
        out
    }

    /// The decisions for one alert, created at `now`: one per action and value of the
    /// matching policies, in policy and action order, each id once.
    pub fn decide(&self, alert: &Alert, now: DateTime<Utc>) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut ids = HashSet::new();
        for p in &self.policies {
            if !p.matches(alert) {
                continue;
            }
            let summary = summarize(alert);
            for a in &p.actions {
                for value in values_for(a, alert) {
                    let id = decision_id(&alert.id, a.action, a.scope, &value);
                    if !ids.insert(id.clone()) {
                        continue;
                    }
                    out.push(Decision {
                        id,
                        alert_id: alert.id.clone(),
                        created_at: now,
                        action: a.action,
                        scope: a.scope,
                        value,
                        ttl_secs: a.ttl_secs,
                        origin: a.origin.clone(),
                        simulated: self.shadow || p.shadow || a.simulated,
                        reason: format!("policy {}: {summary}", p.name),
                    });
                }
            }
            if p.on_match == OnMatch::Stop {
                break;
            }
        }
        out
    }

    /// [`Self::decide`] for many alerts.
    pub fn decide_all(&self, alerts: &[Alert], now: DateTime<Utc>) -> Vec<Decision> {
        alerts.iter().flat_map(|a| self.decide(a, now)).collect()
    }
}

impl Policy {
    fn matches(&self, alert: &Alert) -> bool {
        let w = &self.when;
        let kind = identity_kind(&alert.identity);
        let any =
            |patterns: &[String], value: &str| patterns.iter().any(|p| matches_pattern(p, value));
        w.min_severity.is_none_or(|s| alert.severity >= s)
            && w.min_score.is_none_or(|s| alert.score >= s)
            && (w.identity_kinds.is_empty() || w.identity_kinds.iter().any(|k| k == kind))
            && (w.identities.is_empty() || any(&w.identities, &alert.identity))
            && !any(&w.except_identities, &alert.identity)
            && (w.apis.is_empty() || alert.apis.iter().any(|api| any(&w.apis, api)))
            && (w.features.is_empty() || self.has_leading_feature(alert))
            && w.has_tokens
                .is_none_or(|wants_tokens| wants_tokens != alert.token_ids.is_empty())
            && w.min_events.is_none_or(|n| alert.event_count >= n)
    }

    fn has_leading_feature(&self, alert: &Alert) -> bool {
        let mut leading: Vec<_> = alert
            .features
            .iter()
            .filter(|f| !f.contribution.is_nan())
            .collect();
        leading.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        leading
            .iter()
            .take(self.top_features)
            .any(|f| self.when.features.contains(&f.name))
    }
}

/// `sub` for `sub:alice`, `ip` for `ip:1.2.3.4`; the whole identity when it has no `:`.
pub fn identity_kind(identity: &str) -> &str {
    identity.split_once(':').map_or(identity, |(kind, _)| kind)
}

/// The values one action applies to: the alert's tokens, its identity (none for an
/// `ip:` identity: use `block_ip`), or its IPs.
fn values_for(a: &PolicyAction, alert: &Alert) -> Vec<String> {
    let mut values: Vec<String> = match a.scope {
        Scope::Token => alert.token_ids.clone(),
        Scope::Identity if identity_kind(&alert.identity) == "ip" => Vec::new(),
        Scope::Identity => vec![alert.identity.clone()],
        Scope::Ip => match alert.identity.strip_prefix("ip:") {
            Some(ip) => vec![ip.to_owned()],
            None => alert.client_ips.clone(),
        },
    };
    let mut seen = HashSet::new();
    values.retain(|v| !v.is_empty() && seen.insert(v.clone()));
    values.truncate(a.max_values);
    values
}

/// One line for a decision's `reason`: score, severity and the leading features
/// against their baselines.
pub fn summarize(alert: &Alert) -> String {
    let mut leading: Vec<_> = alert.features.iter().collect();
    leading.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
    let drivers: Vec<String> = leading
        .iter()
        .take(3)
        .map(|f| format!("{}={} (baseline {})", f.name, num(f.value), num(f.baseline)))
        .collect();
    format!(
        "score {:.3} >= {:.3} ({}) on {}: {}",
        alert.score,
        alert.threshold,
        alert.severity.as_str(),
        alert.identity,
        drivers.join(", ")
    )
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `policy "name"` or, for a policy without a usable name, `policy #3`.
fn label(p: &PolicyConfig, index: usize) -> String {
    if p.name.trim().is_empty() {
        format!("policy #{}", index + 1)
    } else {
        format!("policy {:?}", p.name)
    }
}

fn check_defaults(d: &PolicyDefaults) -> Result<()> {
    if d.ttl_secs == 0 {
        return Err(Error::Config("defaults.ttl_secs must be at least 1".into()));
    }
    if d.max_values == 0 {
        return Err(Error::Config(
            "defaults.max_values must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Checks one policy and resolves its defaults; the error says what is wrong (the
/// caller adds which policy).
fn compile(p: &PolicyConfig, defaults: &PolicyDefaults) -> std::result::Result<Policy, String> {
    if p.name.trim().is_empty() || p.name.chars().any(char::is_control) {
        return Err("`name` must be non-empty printable text".into());
    }
    check_match(&p.when)?;
    if p.actions.is_empty() {
        return Err("`actions` is empty: a policy must decide something".into());
    }
    let actions = p
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            compile_action(p, a, defaults)
                .map_err(|msg| format!("actions[{i}] ({}): {msg}", a.action.as_str()))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Policy {
        name: p.name.clone(),
        shadow: p.shadow,
        on_match: p.on_match,
        when: p.when.clone(),
        top_features: p.when.top_features.unwrap_or(DEFAULT_TOP_FEATURES),
        actions,
    })
}

fn check_match(m: &MatchConfig) -> std::result::Result<(), String> {
    if let Some(s) = m.min_score {
        if !(0.0..=1.0).contains(&s) {
            return Err(format!("match.min_score {s} is outside [0, 1]"));
        }
    }
    if m.top_features == Some(0) {
        return Err("match.top_features must be at least 1".into());
    }
    if m.top_features.is_some() && m.features.is_empty() {
        return Err("match.top_features is set but match.features is empty".into());
    }
    for (key, list) in [
        ("identity_kinds", &m.identity_kinds),
        ("identities", &m.identities),
        ("except_identities", &m.except_identities),
        ("apis", &m.apis),
        ("features", &m.features),
    ] {
        if list.iter().any(|v| v.trim().is_empty()) {
            return Err(format!("match.{key} has an empty entry"));
        }
    }
    if let Some(kind) = m.identity_kinds.iter().find(|k| k.contains(':')) {
        return Err(format!(
            "match.identity_kinds: {kind:?} is an identity, not a kind (write the part before ':')"
        ));
    }
    Ok(())
}

fn compile_action(
    p: &PolicyConfig,
    a: &ActionConfig,
    defaults: &PolicyDefaults,
) -> std::result::Result<PolicyAction, String> {
    let allowed = a.action.scopes();
    let scope = a.scope.unwrap_or(allowed[0]);
    if !allowed.contains(&scope) {
        let names: Vec<_> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(format!(
            "scope {:?} is not allowed (allowed: {})",
            scope.as_str(),
            names.join(", ")
        ));
    }
    let ttl_secs = a.ttl_secs.unwrap_or(defaults.ttl_secs);
    if ttl_secs == 0 {
        return Err("ttl_secs must be at least 1".into());
    }
    let max_values = a.max_values.unwrap_or(defaults.max_values);
    if max_values == 0 {
        return Err("max_values must be at least 1".into());
    }
    let origin = a
        .origin
        .clone()
        .unwrap_or_else(|| format!("policy:{}", p.name));
    if origin.trim().is_empty() {
        return Err("origin must not be empty".into());
    }
    Ok(PolicyAction {
        action: a.action.decision_action(),
        scope,
        ttl_secs,
        origin,
        simulated: a.simulated,
        max_values,
    })
}

/// Says where a TOML error is: in which policy (by name, else position) and on which
/// line, with the parser's message (which names the unknown or bad key).
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let at = line.map_or_else(String::new, |l| format!(" (line {l})"));
    let message = e.message().trim();
    match failing_policy(text) {
        Some(policy) => format!("{policy}: {message}{at}"),
        None => format!("{message}{at}"),
    }
}

/// The first `[[policy]]` table that does not deserialize on its own, if the text is
/// valid TOML at all.
fn failing_policy(text: &str) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    let policies = table.get("policy")?.as_array()?;
    policies.iter().enumerate().find_map(|(index, value)| {
        value.clone().try_into::<PolicyConfig>().err()?;
        let name = value
            .get("name")
            .and_then(toml::Value::as_str)
            .filter(|n| !n.trim().is_empty());
        Some(match name {
            Some(n) => format!("policy {n:?}"),
            None => format!("policy #{}", index + 1),
        })
    })
}
