//! Burst detection on the event stream, before any window closes (`[burst]`).
//!
//! Every accepted event adds edges to MIDAS-R detectors (`outrider_models::burst`):
//! identity -> API route, OAuth client -> token, and IP -> identity (for a failed login, the
//! user name that was tried, so one IP trying many users is one source reaching many
//! destinations). An edge whose burst score reaches its relation's threshold is kept, as a
//! hit, under the identity key of the event's row. When that row is scored, the hits of its
//! newest hop become burst signals: combined with the model's and the rules' through
//! [`outrider_models::Combiner`], and listed on the alert with their reason, like rule hits
//! (`burst_ip_identity`, `burst_client_token`, `burst_identity_api`).
//!
//! Scores are per event and unbounded; a threshold reads as risk [`THRESHOLD_RISK`], and
//! higher scores approach 1 (`1 - (1 - THRESHOLD_RISK) x threshold / score`). These risks
//! are anchored on the configured thresholds, not fitted on benign traffic like the
//! model's: the defaults were chosen so that the benign demo traffic raises no burst hit.
//!
//! A hit goes to the caller's row only when the burst is the caller's: not for a route
//! flooded by many identities, nor for an OAuth client whose users all got busier (those
//! would mark every benign caller of the moment; the model and the per-route features see
//! floods). MIDAS-R reports the strongest of an edge's three components, so a caller's own
//! burst hidden behind a stronger flood of its route goes unreported here.
//!
//! Time is event time (ticks of `tick_ms`), so a replay scores as live traffic did.

use std::collections::HashMap;

use outrider_alerts::Severity;
use outrider_features::{hash64, FeatureRow, WindowConfig};
use outrider_ingest::Event;
use outrider_models::burst::{
    tick_of, BurstComponent, BurstDetectors, BurstScore, EdgeKind, MidasRParams,
};
use outrider_models::{Signal, SignalSource};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The risk a burst score equal to its threshold maps to.
pub const THRESHOLD_RISK: f32 = 0.999;

/// Hits kept per identity between two emits; beyond it, only the strongest.
const MAX_HITS_PER_KEY: usize = 16;

/// Seeds of the hashes of each end of an edge, so that an IP and an identity with the same
/// text do not collide.
mod seed {
    pub const IDENTITY: u64 = 0x6275_7273_7469_6431;
    pub const ROUTE: u64 = 0x6275_7273_7472_7432;
    pub const CLIENT: u64 = 0x6275_7273_636c_6933;
    pub const TOKEN: u64 = 0x6275_7273_746f_6b34;
    pub const IP: u64 = 0x6275_7273_6970_6135;
}

/// `[burst]`: burst detection on identity -> API, client -> token and IP -> identity edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BurstConfig {
    pub enabled: bool,
    /// Event-time tick, in milliseconds: rates are edges per tick. 5 s: long enough that a
    /// stuffing run of a few attempts a second stands out against the floor of one edge per
    /// tick, short enough to see it within seconds.
    pub tick_ms: u64,
    /// The relations watched.
    pub edges: Vec<EdgeKind>,
    /// Burst scores at or above which an edge of each relation is a hit.
    pub thresholds: BurstThresholds,
    /// Severity of an alert raised by a burst hit (at least; the model can raise it).
    pub severity: Severity,
    /// The count-min sketches and decay (`rows`, `width`, `decay`, `history_ticks`,
    /// `min_expected`, `seed`).
    pub sketch: MidasRParams,
}

impl Default for BurstConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tick_ms: 5000,
            edges: EdgeKind::ALL.to_vec(),
            thresholds: BurstThresholds::default(),
            severity: Severity::High,
            sketch: MidasRParams::default(),
        }
    }
}

/// Score thresholds per relation (chi-squared-like: `(rate - expected)^2 / expected`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BurstThresholds {
    pub identity_api: f32,
    pub client_token: f32,
    pub ip_identity: f32,
}

impl Default for BurstThresholds {
    /// On the generator's benign traffic (3 seeds x 1 h x 300 users, 5 s ticks) the highest
    /// scores were about 46 (identity -> API), 38 (client -> token) and 46 (IP -> identity);
    /// its credential-stuffing runs scored 214 to 277 on IP -> identity.
    fn default() -> Self {
        Self {
            identity_api: 150.0,
            client_token: 150.0,
            ip_identity: 100.0,
        }
    }
}

impl BurstThresholds {
    pub fn get(&self, kind: EdgeKind) -> f32 {
        match kind {
            EdgeKind::IdentityApi => self.identity_api,
            EdgeKind::ClientToken => self.client_token,
            EdgeKind::IpIdentity => self.ip_identity,
        }
    }
}

impl BurstConfig {
    /// Checks what serde cannot, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.tick_ms == 0 {
            return Err(Error::Config("burst.tick_ms must be at least 1".into()));
        }
        for kind in EdgeKind::ALL {
            let t = self.thresholds.get(kind);
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::Config(format!(
                    "burst.thresholds.{kind} must be a finite number > 0, got {t}"
                )));
            }
        }
        self.sketch
            .check()
            .map_err(|e| Error::Config(format!("burst.sketch: {e}")))?;
        Ok(())
    }
}

/// An edge whose burst score reached its threshold, under the identity of its event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurstHit {
    pub at_ms: i64,
    pub kind: EdgeKind,
    pub score: BurstScore,
    pub threshold: f32,
}

impl BurstHit {
    /// The hit's risk: [`THRESHOLD_RISK`] at the threshold, closer to 1 above.
    pub fn risk(&self) -> f32 {
        let ratio = (self.threshold / self.score.score).clamp(0.0, 1.0);
        1.0 - (1.0 - THRESHOLD_RISK) * ratio
    }

    pub fn reason(&self) -> String {
        self.score.reason(self.kind)
    }

    /// The id it is listed under among an alert's rule hits.
    pub fn rule_id(&self) -> String {
        format!("burst_{}", self.kind)
    }

    /// As a signal for the [`outrider_models::Combiner`].
    pub fn signal(&self) -> Signal {
        Signal {
            source: SignalSource::Burst(self.kind),
            risk: self.risk(),
            alert: true,
            reason: self.reason(),
        }
    }
}

/// The three detectors and the hits not yet attached to a scored row, for one partition:
/// like the feature state, it depends only on the partition's records, and it is
/// checkpointed with it ([`BurstTracker::encode`]), so that alerts do not depend on which
/// instance read the partition, on restarts, or on how the records were batched.
#[derive(Debug)]
pub struct BurstTracker {
    detectors: BurstDetectors,
    kinds: [bool; 3],
    thresholds: BurstThresholds,
    tick_ms: u64,
    hop_ms: i64,
    severity: Severity,
    hits: HashMap<String, Vec<BurstHit>>,
    /// Reused for identity keys.
    key: String,
    /// Reused for the identity key of a token event's subject.
    sub_key: String,
    /// The current event's highest score per relation.
    scores: [f32; 3],
    edges_observed: u64,
}

impl BurstTracker {
    /// `None` when `[burst]` is disabled.
    pub fn new(config: &BurstConfig, window: &WindowConfig) -> Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        config.validate()?;
        let params = config
            .sketch
            .check()
            .map_err(|e| Error::Config(format!("burst.sketch: {e}")))?;
        let mut kinds = [false; 3];
        for kind in &config.edges {
            kinds[kind_index(*kind)] = true;
        }
        Ok(Some(Self {
            detectors: BurstDetectors::new(&params),
            kinds,
            thresholds: config.thresholds,
            tick_ms: config.tick_ms,
            hop_ms: i64::try_from(window.hop_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            severity: config.severity,
            hits: HashMap::new(),
            key: String::new(),
            sub_key: String::new(),
            scores: [0.0; 3],
            edges_observed: 0,
        }))
    }

    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// Edges counted so far.
    pub fn edges_observed(&self) -> u64 {
        self.edges_observed
    }

    /// Adds the event's edges and keeps those that burst. Returns the event's highest score
    /// per relation, in [`EdgeKind::ALL`] order (0 for relations not watched).
    pub fn observe(&mut self, event: &Event) -> [f32; 3] {
        self.scores = [0.0; 3];
        let at_ms = event.ts().millis();
        let Ok(tick) = tick_of(at_ms, self.tick_ms) else {
            return self.scores; // tick_ms >= 1 was validated
        };
        let mut key = std::mem::take(&mut self.key);
        match event {
            Event::Api(e) => {
                key.clear();
                e.write_identity_key(&mut key);
                let identity = hash64(seed::IDENTITY, key.as_bytes());
                let ip = ip_hash(e.client_ip);
                let route = hash64(seed::ROUTE, e.route.as_bytes());
                self.edge(EdgeKind::IdentityApi, identity, route, tick, at_ms, &key);
                if let Some(token) = &e.identity.token_id {
                    let client = e.identity.client_id.as_deref().unwrap_or("");
                    self.client_token(client, token, tick, at_ms, &key);
                }
                self.edge(EdgeKind::IpIdentity, ip, identity, tick, at_ms, &key);
            }
            Event::Token(e) => {
                e.write_identity_key(&mut key);
                if let Some(token) = &e.token_id {
                    let client = e.client_id.as_deref().unwrap_or("");
                    self.client_token(client, token, tick, at_ms, &key);
                }
                // The identity reached: the subject, even the one a failed login tried.
                let reached = match &e.subject {
                    Some(s) => {
                        // The subject's identity key, `sub:<subject>`, in the reused buffer.
                        let mut sub = std::mem::take(&mut self.sub_key);
                        sub.clear();
                        sub.push_str("sub:");
                        sub.push_str(s);
                        let h = hash64(seed::IDENTITY, sub.as_bytes());
                        self.sub_key = sub;
                        h
                    }
                    None => hash64(seed::IDENTITY, key.as_bytes()),
                };
                let ip = ip_hash(e.client_ip);
                self.edge(EdgeKind::IpIdentity, ip, reached, tick, at_ms, &key);
            }
        }
        self.key = key;
        self.scores
    }

    fn client_token(&mut self, client: &str, token: &str, tick: u64, at_ms: i64, key: &str) {
        let client = hash64(seed::CLIENT, client.as_bytes());
        let token = hash64(seed::TOKEN, token_jti(token).as_bytes());
        self.edge(EdgeKind::ClientToken, client, token, tick, at_ms, key);
    }

    fn edge(&mut self, kind: EdgeKind, src: u64, dst: u64, tick: u64, at_ms: i64, key: &str) {
        if !self.kinds[kind_index(kind)] {
            return;
        }
        self.edges_observed += 1;
        let score = self.detectors.observe(kind, src, dst, tick);
        if !concerns_the_caller(kind, score.component) {
            return;
        }
        let top = &mut self.scores[kind_index(kind)];
        *top = top.max(score.score);
        let threshold = self.thresholds.get(kind);
        if score.score < threshold {
            return;
        }
        let hit = BurstHit {
            at_ms,
            kind,
            score,
            threshold,
        };
        let hits = match self.hits.get_mut(key) {
            Some(hits) => hits,
            None => self.hits.entry(key.to_owned()).or_default(),
        };
        keep_hit(hits, hit, self.hop_ms);
    }

    /// The hits of `row`'s newest hop (`[end - hop, end)`): each event, hence each hit,
    /// falls in exactly one row's newest hop, so a burst is reported once per window.
    pub fn hits_for(&self, row: &FeatureRow) -> Vec<BurstHit> {
        let Some(hits) = self.hits.get(&*row.key) else {
            return Vec::new();
        };
        let from = row.window_end_ms.saturating_sub(self.hop_ms);
        hits.iter()
            .filter(|h| (from..row.window_end_ms).contains(&h.at_ms))
            .copied()
            .collect()
    }

    /// Forgets the hits before `end_ms`: every window ending there has been scored.
    pub fn prune_before(&mut self, end_ms: i64) {
        self.hits.retain(|_, hits| {
            hits.retain(|h| h.at_ms >= end_ms);
            !hits.is_empty()
        });
    }

    /// The hits of rows just emitted, one list per row; then those no later row can take
    /// are forgotten (the extractor emits windows in time order).
    pub fn take_hits(&mut self, rows: &[FeatureRow]) -> Vec<Vec<BurstHit>> {
        let hits = rows.iter().map(|r| self.hits_for(r)).collect();
        if let Some(end) = rows.iter().map(|r| r.window_end_ms).max() {
            self.prune_before(end);
        }
        hits
    }

    /// The detectors and pending hits as bytes (postcard, keys sorted so that equal states
    /// encode equally), for the partition checkpoint.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut hits: Vec<(&str, &[BurstHit])> = self
            .hits
            .iter()
            .map(|(k, h)| (k.as_str(), h.as_slice()))
            .collect();
        hits.sort_unstable_by_key(|(k, _)| *k);
        postcard::to_allocvec(&(&self.detectors, hits))
            .map_err(|e| Error::Checkpoint(format!("cannot encode the burst state: {e}")))
    }

    /// Takes over the state of [`BurstTracker::encode`] bytes. A state of other sketch
    /// parameters is refused (its counts would not mean the same), leaving this tracker
    /// as it was.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let (detectors, hits): (BurstDetectors, Vec<(String, Vec<BurstHit>)>) =
            postcard::from_bytes(bytes)
                .map_err(|e| Error::Checkpoint(format!("burst state does not decode: {e}")))?;
        for kind in EdgeKind::ALL {
            if detectors.get(kind).params() != self.detectors.get(kind).params() {
                return Err(Error::Checkpoint(
                    "burst state of other `burst.sketch` parameters".into(),
                ));
            }
        }
        self.detectors = detectors;
        self.hits = hits.into_iter().collect();
        Ok(())
    }
}

/// Keeps the strongest hit per relation and hop, and at most [`MAX_HITS_PER_KEY`].
fn keep_hit(hits: &mut Vec<BurstHit>, hit: BurstHit, hop_ms: i64) {
    let hop = |t: i64| t.div_euclid(hop_ms.max(1));
    if let Some(same) = hits
        .iter_mut()
        .find(|h| h.kind == hit.kind && hop(h.at_ms) == hop(hit.at_ms))
    {
        if hit.score.score > same.score.score {
            *same = hit;
        }
        return;
    }
    if hits.len() < MAX_HITS_PER_KEY {
        hits.push(hit);
    } else if let Some(weakest) = hits
        .iter_mut()
        .min_by(|a, b| a.score.score.total_cmp(&b.score.score))
    {
        if hit.score.score > weakest.score.score {
            *weakest = hit;
        }
    }
}

/// Whether a burst of `component` is the doing of the event's caller, whose row gets the
/// hit. A route flooded by many identities (identity -> API destination) or an OAuth client
/// whose many users all got busier (client -> token source) is not one caller's burst: it
/// would put a hit on every benign caller at that moment.
fn concerns_the_caller(kind: EdgeKind, component: BurstComponent) -> bool {
    !matches!(
        (kind, component),
        (EdgeKind::IdentityApi, BurstComponent::Destination)
            | (EdgeKind::ClientToken, BurstComponent::Source)
    )
}

/// An IP address's hash, from its bytes (no text formatting per event).
fn ip_hash(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(a) => hash64(seed::IP, &a.octets()),
        std::net::IpAddr::V6(a) => hash64(seed::IP, &a.octets()),
    }
}

fn kind_index(kind: EdgeKind) -> usize {
    match kind {
        EdgeKind::IdentityApi => 0,
        EdgeKind::ClientToken => 1,
        EdgeKind::IpIdentity => 2,
    }
}

/// Gateways name a token `jti:<id>@<aud>`, token servers `jti:<id>`: one token, one key.
fn token_jti(token_id: &str) -> &str {
    match token_id.strip_prefix("jti:") {
        Some(rest) => rest.rsplit_once('@').map_or(rest, |(jti, _)| jti),
        None => token_id,
    }
}
