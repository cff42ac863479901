//! The policy file's contract: what an operator writes.

use serde::{Deserialize, Serialize};

use crate::model::{Scope, Severity};

/// A whole policy file.
///
/// ```toml
/// shadow = false            # true: every decision is simulated (stored, never sent)
///
/// [defaults]
/// ttl_secs = 3600
///
/// [[policy]]
/// name = "revoke-tokens-on-high-risk"
/// [policy.match]
/// min_severity = "high"
/// has_tokens = true
/// [[policy.actions]]
/// action = "revoke_token"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Shadow mode for every policy: decisions are made and stored with
    /// `simulated = true`, and enforcement points never receive them.
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub defaults: PolicyDefaults,
    /// Evaluated in order.
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
}

/// Values actions fall back on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyDefaults {
    /// How long enforcement points keep a decision.
    pub ttl_secs: u64,
    /// At most this many decisions per action and alert (tokens, IPs).
    pub max_values: usize,
}

impl Default for PolicyDefaults {
    fn default() -> Self {
        PolicyDefaults {
            ttl_secs: 3600,
            max_values: 20,
        }
    }
}

/// One policy: when it applies and what it decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique; decisions carry `origin = "policy:<name>"` unless an action says otherwise.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Shadow mode for this policy only.
    #[serde(default)]
    pub shadow: bool,
    /// Whether later policies are still evaluated once this one matched.
    #[serde(default)]
    pub on_match: OnMatch,
    /// Every condition set must hold; an empty `match` matches every alert.
    #[serde(default, rename = "match")]
    pub when: MatchConfig,
    pub actions: Vec<ActionConfig>,
}

/// What happens after a policy matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMatch {
    /// Later policies are not evaluated (a firewall's first match).
    #[default]
    Stop,
    /// Later policies are evaluated too; their decisions add up (duplicates, same id,
    /// are kept once).
    Continue,
}

/// Conditions on an alert. Lists match when any entry does; patterns may use `*` for
/// any run of characters (`GET /v1/users/*`, `sub:svc-*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchConfig {
    pub min_severity: Option<Severity>,
    /// The model's risk score, in `[0, 1]`.
    pub min_score: Option<f64>,
    /// The kind of identity: the part before `:` (`sub`, `client`, `ip`, `h`, ...).
    pub identity_kinds: Vec<String>,
    /// Identity patterns the alert's identity must match.
    pub identities: Vec<String>,
    /// Identity patterns that never match (service accounts, allow-listed callers).
    pub except_identities: Vec<String>,
    /// Route patterns; one of the alert's APIs must match one.
    pub apis: Vec<String>,
    /// Rule hits: one of these features must be among the alert's `top_features`
    /// largest contributors.
    pub features: Vec<String>,
    /// How many leading contributors `features` looks at.
    pub top_features: Option<usize>,
    /// Whether the alert carries token ids (`true`) or none (`false`).
    pub has_tokens: Option<bool>,
    /// Requests and token events in the alert's window.
    pub min_events: Option<u64>,
}

/// What a policy decides, one decision per value the scope yields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    pub action: ActionKind,
    /// Only for `throttle` (identity, ip or token) and `step_up` (identity or token);
    /// every other action has one fixed scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Defaults to `defaults.ttl_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Defaults to `policy:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Shadow mode for this action only.
    #[serde(default)]
    pub simulated: bool,
    /// At most this many decisions (tokens, IPs); defaults to `defaults.max_values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_values: Option<usize>,
}

/// The remediations a policy can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Revoke each token the alert saw (`revoke_token`, scope token).
    RevokeToken,
    /// End every session of the identity (`revoke_sessions`, scope identity).
    RevokeSessions,
    /// Block the client IPs (`block`, scope ip): the identity's own IP for an `ip:`
    /// identity, otherwise the alert's client IPs.
    BlockIp,
    /// Block the identity (`block`, scope identity).
    BlockIdentity,
    /// Rate-limit (`throttle`; scope identity by default).
    Throttle,
    /// Ask for stronger authentication (`step_up`; scope identity by default).
    RequireStepUp,
    /// Tell the user (`notify`, scope identity).
    NotifyUser,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RevokeToken => "revoke_token",
            ActionKind::RevokeSessions => "revoke_sessions",
            ActionKind::BlockIp => "block_ip",
            ActionKind::BlockIdentity => "block_identity",
            ActionKind::Throttle => "throttle",
            ActionKind::RequireStepUp => "require_step_up",
            ActionKind::NotifyUser => "notify_user",
        }
    }

    /// The decision action it makes.
    pub fn decision_action(self) -> crate::model::Action {
        use crate::model::Action;
        match self {
            ActionKind::RevokeToken => Action::RevokeToken,
            ActionKind::RevokeSessions => Action::RevokeSessions,
            ActionKind::BlockIp | ActionKind::BlockIdentity => Action::Block,
            ActionKind::Throttle => Action::Throttle,
            ActionKind::RequireStepUp => Action::StepUp,
            ActionKind::NotifyUser => Action::Notify,
        }
    }

    /// The scopes the action accepts; the first is its default.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            ActionKind::RevokeToken => &[Scope::Token],
            ActionKind::RevokeSessions | ActionKind::BlockIdentity | ActionKind::NotifyUser => {
                &[Scope::Identity]
            }
            ActionKind::BlockIp => &[Scope::Ip],
            ActionKind::Throttle => &[Scope::Identity, Scope::Ip, Scope::Token],
            ActionKind::RequireStepUp => &[Scope::Identity, Scope::Token],
        }
    }
}
