//! The labelled synthetic traffic generator.
//!
//! [`EventStream`] turns a [`GeneratorConfig`] into gateway access-log and token-server
//! records in event-time order, each labelled with the attack [`Campaign`] it belongs to
//! (or none for benign traffic). It streams: memory holds the population and the sessions
//! under way, never the whole dataset, so days of traffic for 100,000 identities can be
//! written to disk. [`generate`] collects a stream into a [`Dataset`] for small sets.
//!
//! Benign traffic (the population and the actors in `users` and `clients`):
//! - APIs ([`ApiKind`]): open banking (accounts, transactions, payments, cards), a retail
//!   shop (products, cart, coupons, gift cards, checkout; guests browse before logging
//!   in) and a B2B SaaS API (workspaces, projects, documents, exports). Each endpoint has
//!   its own response size, latency and error mix; sessions are Markov chains over the
//!   apps' screens, each screen one to three calls, with think times between.
//! - Identities: users (mobile, web and power users) with a device, a home network and
//!   country, a mobile carrier (addresses behind carrier-grade NAT in the realistic model)
//!   and an office NAT shared with colleagues; internal service clients polling steadily
//!   on client credentials; partner integrations syncing many customers' objects in
//!   bursts; nightly batch jobs exporting in bulk.
//! - Tokens: the token server's view agrees with the gateway's: a login (authorization
//!   code: `login_success` then `token_issued`), refreshes before the 15-minute expiry,
//!   logouts (browsers also revoke), sessions that just stop (the token expires), and in
//!   the realistic model mobile apps that resume with a refresh token.
//! - [`TrafficModel::Compressed`] (the default) packs many sessions per user into a short
//!   run: each user is active for part of the duration at several sessions an hour.
//!   [`TrafficModel::Realistic`] spreads a few sessions a day over daily and weekly cycles
//!   in each user's time zone, with benign changes: trips abroad, new phones, mobile
//!   network changes, shared NAT.
//!
//! Attacks ([`AttackKind`], placed by [`AttackMix`] and [`AttackSpec`]) are parameterised
//! from loud (intensity 1) to subtle (0) and labelled per event and per campaign.
//!
//! Randomness comes from ChaCha8 streams derived from the seed and a fixed stream id per
//! identity and attack, so the output depends on the configuration alone.

mod attacks;
pub(crate) mod catalog;
mod clients;
pub(crate) mod emit;
pub mod net;
pub(crate) mod population;
pub(crate) mod rng;
mod users;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::IpAddr;

use outrider_ingest::{ApiEvent, Event, EventTime};
use serde::{Deserialize, Deserializer, Serialize};

pub use catalog::ApiKind;
pub use net::{network_of, networks, NetKind, Network, Prefix};

use crate::error::{Error, Result};
use emit::Emitter;
use population::Population;

/// 2026-11-02T08:00:00Z in milliseconds since the Unix epoch.
pub const DEFAULT_START_MS: i64 = 1_793_606_400_000;

/// How user activity is spread over time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficModel {
    /// Short, dense runs for demos and tests: each user is active for part of the
    /// duration, at several sessions an hour, from home, a carrier or the office.
    #[default]
    Compressed,
    /// Days of traffic: a few sessions a day per user following daily and weekly cycles
    /// in their time zone, with trips, new phones and carrier-grade NAT.
    Realistic,
}

/// How much traffic to generate and which attacks to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The seed of every random choice; the same configuration gives the same dataset.
    pub seed: u64,
    /// Event time of the start, in epoch milliseconds or an RFC 3339 string (clamped to
    /// ±2^50 ms).
    #[serde(deserialize_with = "de_time")]
    pub start_ms: i64,
    /// Length in seconds; no event lies at or after `start + duration`.
    pub duration_secs: u64,
    /// Benign end users, spread over `apis`.
    pub users: usize,
    /// Internal service clients (client credentials, steady polling).
    pub service_clients: usize,
    /// Partner integrations (bursty syncs of many customers' objects).
    pub partners: usize,
    /// Nightly batch jobs (bulk exports).
    pub batch_jobs: usize,
    /// The APIs served (default: the bank alone).
    pub apis: Vec<ApiKind>,
    pub traffic: TrafficModel,
    /// Another number gives another set of identities (names never collide across
    /// populations): train and test sets of a benchmark use different ones.
    pub population: u32,
    /// The classic attacks at their default intensity.
    pub attacks: AttackMix,
    /// Further attacks, each a parameterised scenario.
    pub scenarios: Vec<AttackSpec>,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            start_ms: DEFAULT_START_MS,
            duration_secs: 3600,
            users: 300,
            service_clients: 5,
            partners: 0,
            batch_jobs: 0,
            apis: vec![ApiKind::Bank],
            traffic: TrafficModel::Compressed,
            population: 0,
            attacks: AttackMix::default(),
            scenarios: Vec::new(),
        }
    }
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    EventTime::deserialize(d).map(EventTime::millis)
}

impl GeneratorConfig {
    /// Refuses configurations that would generate nonsense, naming the setting.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        for (i, s) in self.scenarios.iter().enumerate() {
            if !(0.0..=1.0).contains(&s.intensity) || s.intensity.is_nan() {
                return bad(format!(
                    "scenarios[{i}].intensity must be in [0, 1] (0 subtle, 1 loud), got {}",
                    s.intensity
                ));
            }
            if let Some(start) = s.start_secs {
                if start >= self.duration_secs {
                    return bad(format!(
                        "scenarios[{i}].start_secs {start} is not inside the {} s duration",
                        self.duration_secs
                    ));
                }
            }
            if s.duration_secs == Some(0) {
                return bad(format!("scenarios[{i}].duration_secs must be positive"));
            }
            if let Some(api) = s.api {
                if !self.api_list().contains(&api) {
                    return bad(format!(
                        "scenarios[{i}].api {api} is not among the configured apis"
                    ));
                }
            }
        }
        if self.duration_secs > 366 * 86_400 {
            return bad("duration_secs is longer than a year".into());
        }
        Ok(())
    }

    /// The APIs, deduplicated, never empty.
    pub(crate) fn api_list(&self) -> Vec<ApiKind> {
        let mut apis: Vec<ApiKind> = Vec::new();
        for a in &self.apis {
            if !apis.contains(a) {
                apis.push(*a);
            }
        }
        if apis.is_empty() {
            apis.push(ApiKind::Bank);
        }
        apis
    }

    /// Reads a configuration file: TOML (`.toml`) or JSON, every field optional, unknown
    /// fields refused; then checks it.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let cfg: Self = if is_toml {
            toml::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        }
        .map_err(|reason| Error::Format {
            path: path.to_owned(),
            reason,
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Exclusive end of the dataset, in epoch milliseconds.
    pub fn end_ms(&self) -> i64 {
        let start = self.start_ms.clamp(-(1 << 50), 1 << 50);
        let d = i64::try_from(self.duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        start.saturating_add(d)
    }

    /// Every attack kind this configuration injects.
    pub fn attack_kinds(&self) -> Vec<AttackKind> {
        let mut kinds = Vec::new();
        let mix = [
            (AttackKind::TokenReplay, self.attacks.token_replay),
            (AttackKind::Bola, self.attacks.bola),
            (
                AttackKind::CredentialStuffing,
                self.attacks.credential_stuffing,
            ),
        ];
        for (kind, n) in mix {
            if n > 0 && !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        for s in &self.scenarios {
            if s.count > 0 && !kinds.contains(&s.kind) {
                kinds.push(s.kind);
            }
        }
        kinds
    }
}

/// How many campaigns of each classic kind to inject, at the default intensity (0.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttackMix {
    pub token_replay: usize,
    pub bola: usize,
    pub credential_stuffing: usize,
}

impl Default for AttackMix {
    fn default() -> Self {
        Self {
            token_replay: 1,
            bola: 1,
            credential_stuffing: 1,
        }
    }
}

impl AttackMix {
    /// No attacks: benign traffic only (for training).
    pub fn none() -> Self {
        Self {
            token_replay: 0,
            bola: 0,
            credential_stuffing: 0,
        }
    }
}

/// One attack scenario to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    pub kind: AttackKind,
    /// How many campaigns of it.
    #[serde(default = "one")]
    pub count: usize,
    /// From 0 (subtle: slow, spread out, blending in) to 1 (loud: fast, from obvious
    /// networks and tools).
    #[serde(default = "half")]
    pub intensity: f64,
    /// Offset of the start from the dataset's start; by default a random time in the
    /// middle three fifths.
    #[serde(default)]
    pub start_secs: Option<u64>,
    /// How long it lasts; by default what suits the kind and intensity (minutes when
    /// loud, hours when subtle).
    #[serde(default)]
    pub duration_secs: Option<u64>,
    /// The API it targets; by default the first configured one that suits the kind.
    #[serde(default)]
    pub api: Option<ApiKind>,
}

fn one() -> usize {
    1
}
fn half() -> f64 {
    0.5
}

impl AttackSpec {
    pub fn new(kind: AttackKind, intensity: f64) -> Self {
        Self {
            kind,
            count: 1,
            intensity,
            start_secs: None,
            duration_secs: None,
            api: None,
        }
    }
}

/// The kinds of attack the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// A victim's token used from another network, alongside the victim.
    TokenReplay,
    /// Broken object-level authorisation: walking other people's object ids.
    Bola,
    /// Many user names tried against the token endpoint (from one IP, or low and slow
    /// from many).
    CredentialStuffing,
    /// Many passwords tried against one account.
    BruteForce,
    /// Crawling list and detail endpoints.
    Scraping,
    /// Oversized responses: bulk exports and huge pages.
    Exfiltration,
    /// Hammering coupons, gift cards, purchases or payments at rates each call finds
    /// plausible.
    BusinessLogic,
    /// A botnet flooding an expensive endpoint.
    Ddos,
    /// Tampered ids and parameters: negative, huge, injected, traversal.
    ParameterTampering,
    /// Recon, then credential abuse, then data access, over hours.
    MultiStep,
    /// A user reading far more objects than their peers, with their own access.
    Insider,
    /// A service client's credentials used by someone else.
    CompromisedClient,
}

impl AttackKind {
    pub const ALL: [AttackKind; 12] = [
        AttackKind::TokenReplay,
        AttackKind::Bola,
        AttackKind::CredentialStuffing,
        AttackKind::BruteForce,
        AttackKind::Scraping,
        AttackKind::Exfiltration,
        AttackKind::BusinessLogic,
        AttackKind::Ddos,
        AttackKind::ParameterTampering,
        AttackKind::MultiStep,
        AttackKind::Insider,
        AttackKind::CompromisedClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::TokenReplay => "token_replay",
            AttackKind::Bola => "bola",
            AttackKind::CredentialStuffing => "credential_stuffing",
            AttackKind::BruteForce => "brute_force",
            AttackKind::Scraping => "scraping",
            AttackKind::Exfiltration => "exfiltration",
            AttackKind::BusinessLogic => "business_logic",
            AttackKind::Ddos => "ddos",
            AttackKind::ParameterTampering => "parameter_tampering",
            AttackKind::MultiStep => "multi_step",
            AttackKind::Insider => "insider",
            AttackKind::CompromisedClient => "compromised_client",
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttackKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        AttackKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = AttackKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown attack kind {s:?}; one of {}", known.join(", "))
            })
    }
}

/// One injected attack.
///
/// Its events are the attacker's requests (and the token server's reports of them); what
/// the attacker does that looks ordinary beforehand (a login, a look at their own
/// account) is not labelled, so `start_ms` is the first attack request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u32,
    pub kind: AttackKind,
    /// The main identity key the detector sees the attack under
    /// (`ApiEvent::identity_key`): `sub:<victim>` for a token replay, `sub:<attacker>`
    /// for a BOLA walk, `ip:<attacker ip>` for credential stuffing from one address ...
    pub identity_key: String,
    /// Further keys the attacker's own traffic shows under (every bot of a botnet, every
    /// address of a low-and-slow run, the accounts a multi-step campaign took over): an
    /// alert on any of them during the campaign detects it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Other keys the attack shows under: alerts on them during the campaign are its
    /// consequences, not false alerts (the accounts a stuffing run tried, `sub:<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_keys: Vec<String>,
    /// Event time of the campaign's first labelled event.
    pub start_ms: i64,
    /// Event time of the campaign's last labelled event.
    pub end_ms: i64,
    pub description: String,
    /// Number of events labelled with this campaign.
    pub events: u64,
    /// 0 (subtle) to 1 (loud).
    #[serde(default = "half")]
    pub intensity: f64,
}

impl Campaign {
    /// True when a window `[start_ms, end_ms)` overlaps the campaign's span widened by
    /// `slack_ms` on both sides.
    pub fn overlaps(&self, start_ms: i64, end_ms: i64, slack_ms: i64) -> bool {
        start_ms <= self.end_ms.saturating_add(slack_ms)
            && end_ms > self.start_ms.saturating_sub(slack_ms)
    }

    /// Whether the attacker's own traffic shows under `key`.
    pub fn is_attacker_key(&self, key: &str) -> bool {
        self.identity_key == key || self.keys.iter().any(|k| k == key)
    }

    /// Whether alerts on `key` belong to the campaign: an attacker key or a related one.
    pub fn involves_key(&self, key: &str) -> bool {
        self.is_attacker_key(key) || self.related_keys.iter().any(|k| k == key)
    }

    /// The main key, then the others.
    pub fn attacker_keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.identity_key.as_str()).chain(self.keys.iter().map(String::as_str))
    }
}

/// An event and the campaign it belongs to (`None`: benign).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledEvent {
    pub event: Event,
    pub campaign: Option<u32>,
}

/// A generated dataset: events sorted by event time, and the injected campaigns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub events: Vec<LabelledEvent>,
    pub campaigns: Vec<Campaign>,
}

impl Dataset {
    /// The events labelled with campaign `id`.
    pub fn campaign_events(&self, id: u32) -> impl Iterator<Item = &LabelledEvent> {
        self.events.iter().filter(move |e| e.campaign == Some(id))
    }

    /// The gateway events, with their labels.
    pub fn api_events(&self) -> impl Iterator<Item = (&ApiEvent, Option<u32>)> {
        self.events.iter().filter_map(|e| match &e.event {
            Event::Api(a) => Some((a, e.campaign)),
            Event::Token(_) => None,
        })
    }

    /// The events without their labels, in order (what a detector is fed).
    pub fn plain_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|e| &e.event)
    }
}

/// Generates the dataset that `cfg` describes, in memory. Deterministic: no clock, no
/// global state. For large sets iterate an [`EventStream`] instead.
pub fn generate(cfg: &GeneratorConfig) -> Dataset {
    let mut stream = EventStream::new(cfg);
    let events: Vec<LabelledEvent> = stream.by_ref().collect();
    Dataset {
        events,
        campaigns: stream.campaigns(),
    }
}

// ---------------------------------------------------------------------------------------------
// Actors and the stream.

/// What every actor may read.
#[derive(Debug)]
pub(crate) struct World {
    pub seed: u64,
    pub start_ms: i64,
    /// Exclusive.
    pub end_ms: i64,
    pub traffic: TrafficModel,
    pub population: Population,
}

impl World {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// A labelled campaign before its bounds are known.
#[derive(Debug, Clone)]
pub(crate) struct CampaignDraft {
    pub id: u32,
    pub kind: AttackKind,
    pub intensity: f64,
    pub identity_key: String,
    pub keys: Vec<String>,
    pub related_keys: Vec<String>,
    pub description: String,
}

/// What actors share while the stream runs.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Tokens of victims' sessions, published for the replay attacks (by user index).
    pub stolen_tokens: HashMap<usize, String>,
    /// By campaign id - 1.
    pub drafts: Vec<CampaignDraft>,
    pub attacker_ips: HashSet<IpAddr>,
}

impl Shared {
    pub fn draft(&mut self, id: u32) -> Option<&mut CampaignDraft> {
        self.drafts
            .get_mut(usize::try_from(id).ok()?.checked_sub(1)?)
    }
}

/// Anything that emits traffic: a user, a client, an attacker.
pub(crate) trait Actor: fmt::Debug {
    /// Emits the events of its next step, all at or after `now`; returns when it next
    /// wants to run (after `now`), or `None` when it is done.
    fn step(
        &mut self,
        now: i64,
        world: &World,
        shared: &mut Shared,
        out: &mut Emitter,
    ) -> Option<i64>;
}

/// The generated traffic as an iterator of labelled events in event-time order.
///
/// ```
/// use outrider_datasets::{EventStream, GeneratorConfig};
/// let cfg = GeneratorConfig { users: 20, duration_secs: 600, ..GeneratorConfig::default() };
/// let mut stream = EventStream::new(&cfg);
/// let n = stream.by_ref().count();
/// assert!(n > 100);
/// // Campaigns are complete once the stream is exhausted.
/// assert_eq!(stream.campaigns().len(), 3);
/// ```
#[derive(Debug)]
pub struct EventStream {
    world: World,
    shared: Shared,
    actors: Vec<Box<dyn Actor>>,
    wake: BinaryHeap<Reverse<(i64, usize)>>,
    out: Emitter,
    /// Released slots of the reorder buffer, in order.
    ready: VecDeque<u32>,
    request_prefix: String,
    counter: u64,
    /// Per campaign (id - 1): first and last event time, events.
    stats: Vec<Option<(i64, i64, u64)>>,
    peak_buffered: usize,
}

impl EventStream {
    pub fn new(cfg: &GeneratorConfig) -> Self {
        // Keeps event-time arithmetic far from overflow (±35,000 years around 1970).
        let start_ms = cfg.start_ms.clamp(-(1 << 50), 1 << 50);
        let mut cfg = cfg.clone();
        cfg.start_ms = start_ms;
        let end_ms = cfg.end_ms();
        let world = World {
            seed: cfg.seed,
            start_ms,
            end_ms,
            traffic: cfg.traffic,
            population: Population::new(&cfg),
        };
        let mut shared = Shared::default();
        let planned = attacks::plan(&cfg, &world, &mut shared);
        let mut actors: Vec<Box<dyn Actor>> = Vec::new();
        let mut wake = BinaryHeap::new();
        let mut add = |first: Option<i64>, actor: Box<dyn Actor>| {
            if let Some(t) = first.filter(|&t| t < end_ms) {
                wake.push(Reverse((t.max(start_ms), actors.len())));
                actors.push(actor);
            }
        };
        for (first, actor) in users::actors(&world, &planned.forced_sessions) {
            add(first, actor);
        }
        for (first, actor) in clients::actors(&world) {
            add(first, actor);
        }
        for (first, actor) in planned.actors {
            add(first, actor);
        }
        let campaigns = shared.drafts.len();
        Self {
            request_prefix: format!("r-{}-", cfg.seed),
            world,
            shared,
            actors,
            wake,
            out: Emitter::new(start_ms, end_ms),
            ready: VecDeque::new(),
            counter: 0,
            stats: vec![None; campaigns],
            peak_buffered: 0,
        }
    }

    /// The campaigns with at least one event so far (all of them once the stream is
    /// exhausted), by id.
    pub fn campaigns(&self) -> Vec<Campaign> {
        self.shared
            .drafts
            .iter()
            .zip(&self.stats)
            .filter_map(|(d, s)| {
                let (start_ms, end_ms, events) = (*s)?;
                Some(Campaign {
                    id: d.id,
                    kind: d.kind,
                    identity_key: d.identity_key.clone(),
                    keys: d.keys.clone(),
                    related_keys: d.related_keys.clone(),
                    start_ms,
                    end_ms,
                    description: d.description.clone(),
                    events,
                    intensity: d.intensity,
                })
            })
            .collect()
    }

    /// Every campaign the stream will label, by id, with its kind (known from the start;
    /// one whose events all fall outside the duration never appears in [`Self::campaigns`]).
    pub fn planned_campaigns(&self) -> Vec<(u32, AttackKind)> {
        self.shared.drafts.iter().map(|d| (d.id, d.kind)).collect()
    }

    /// The most events held back at once so far (the reorder buffer's high-water mark):
    /// what bounds memory, whatever the length of the dataset.
    pub fn peak_buffered(&self) -> usize {
        self.peak_buffered
    }

    /// Runs actors until some events are ready; false when everything has been emitted.
    fn fill(&mut self) -> bool {
        while self.ready.is_empty() {
            let Some(Reverse((now, idx))) = self.wake.pop() else {
                self.out
                    .buffer
                    .release_before(i64::MAX / 4, &mut self.ready);
                return !self.ready.is_empty();
            };
            self.out.now = now;
            if let Some(actor) = self.actors.get_mut(idx) {
                if let Some(next) = actor.step(now, &self.world, &mut self.shared, &mut self.out) {
                    // Time must move on, or an actor could hold the stream forever.
                    let next = next.max(now + 1);
                    if next < self.world.end_ms {
                        self.wake.push(Reverse((next, idx)));
                    }
                }
            }
            self.peak_buffered = self.peak_buffered.max(self.out.buffer.len());
            let safe = self.wake.peek().map_or(i64::MAX / 4, |Reverse((t, _))| *t);
            self.out.buffer.release_before(safe, &mut self.ready);
        }
        true
    }

    fn label(&mut self, mut e: LabelledEvent) -> LabelledEvent {
        if let Event::Api(a) = &mut e.event {
            let mut id = String::with_capacity(self.request_prefix.len() + 12);
            id.push_str(&self.request_prefix);
            push_decimal(&mut id, self.counter);
            a.request_id = id;
            self.counter += 1;
        }
        if let Some(c) = e.campaign {
            let t = e.event.ts().millis();
            if let Some(slot) = usize::try_from(c)
                .ok()
                .and_then(|c| c.checked_sub(1))
                .and_then(|i| self.stats.get_mut(i))
            {
                *slot = Some(match *slot {
                    None => (t, t, 1),
                    Some((a, b, n)) => (a.min(t), b.max(t), n + 1),
                });
            }
        }
        e
    }
}

/// Appends `n` in decimal (request ids are made for every gateway event).
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

impl Iterator for EventStream {
    type Item = LabelledEvent;

    fn next(&mut self) -> Option<LabelledEvent> {
        if self.ready.is_empty() && !self.fill() {
            return None;
        }
        let slot = self.ready.pop_front()?;
        let e = self.out.buffer.take(slot)?;
        Some(self.label(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_sorted_and_bounded() {
        let cfg = GeneratorConfig {
            users: 400,
            duration_secs: 3 * 3600,
            ..GeneratorConfig::default()
        };
        let mut stream = EventStream::new(&cfg);
        let mut last = i64::MIN;
        let mut n = 0usize;
        for e in stream.by_ref() {
            let t = e.event.ts().millis();
            assert!(t >= last);
            last = t;
            n += 1;
        }
        assert!(n > 50_000, "{n}");
        // Only the sessions under way are held: a small share of the dataset.
        assert!(
            stream.peak_buffered() * 20 < n,
            "{} of {n}",
            stream.peak_buffered()
        );
    }

    #[test]
    fn decimals_are_written_like_display() {
        for n in [0u64, 7, 10, 1_234_567_890, u64::MAX] {
            let mut s = String::from("r-");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("r-{n}"));
        }
    }

    #[test]
    fn config_checks_name_the_bad_setting() {
        let mut cfg = GeneratorConfig::default();
        cfg.scenarios.push(AttackSpec::new(AttackKind::Ddos, 1.5));
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("scenarios[0].intensity"), "{err}");
        cfg.scenarios[0].intensity = 1.0;
        cfg.scenarios[0].api = Some(ApiKind::Retail);
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("retail"), "{err}");
        cfg.apis.push(ApiKind::Retail);
        assert!(cfg.check().is_ok());
        assert_eq!(
            cfg.attack_kinds(),
            [
                AttackKind::TokenReplay,
                AttackKind::Bola,
                AttackKind::CredentialStuffing,
                AttackKind::Ddos
            ]
        );
        let parsed: std::result::Result<GeneratorConfig, _> =
            serde_json::from_str(r#"{"users": 3, "userz": 4}"#);
        assert!(parsed.unwrap_err().to_string().contains("userz"));
        let cfg: GeneratorConfig =
            serde_json::from_str(r#"{"start_ms": "2026-11-03T00:00:00Z"}"#).unwrap();
        assert_eq!(cfg.start_ms, DEFAULT_START_MS + 16 * 3_600_000);
        assert_eq!("ddos".parse::<AttackKind>(), Ok(AttackKind::Ddos));
        assert!("dos".parse::<AttackKind>().unwrap_err().contains("one of"));
    }
}
