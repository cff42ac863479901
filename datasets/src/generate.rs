//! The labelled synthetic traffic generator.
//!
//! [`generate`] turns a [`GeneratorConfig`] into a [`Dataset`]: gateway access-log records and
//! token-server records of an open-banking style API, sorted by event time, each labelled with
//! the attack campaign it belongs to (or none for benign traffic).
//!
//! Benign traffic:
//! - users (mobile, web and a few heavier "power users") run sessions: a login (token-server
//!   `LoginSuccess` + `TokenIssued`, gateway `POST /oauth/token` keyed by IP), then screens
//!   chosen by a small Markov chain with think times of seconds to minutes, each screen one to
//!   three calls carrying the user's subject, client and per-session token id; tokens are
//!   refreshed after 15 minutes, some sessions end with a logout, ~3% of logins follow one
//!   failed attempt, ~1% of calls get a 404 and a few a 403 or 5xx. Every user owns 1-3
//!   accounts (random 6-8 digit ids) and only ever touches those. Users are active during
//!   their own part of the duration, at their own rate, from one IP per session.
//! - service clients (client-credentials grant, no subject) poll `GET /accounts` and
//!   `GET /payments/{id}` at steady rates from fixed cloud addresses.
//!
//! Attacks (each a [`Campaign`] placed at a random time in the middle of the duration):
//! - token replay: a victim's token used from another network, alongside the victim;
//! - BOLA walk: an authenticated account walking other people's account ids;
//! - credential stuffing: one IP trying hundreds of user names.
//!
//! Randomness comes from ChaCha8 streams derived from the seed and a fixed stream id per
//! user, service client and attack, so the output depends on the configuration alone.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use outrider_ingest::{ApiEvent, Event, EventTime, Identity, TokenEvent, TokenEventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// 2026-11-02T08:00:00Z in milliseconds since the Unix epoch.
pub const DEFAULT_START_MS: i64 = 1_793_606_400_000;

/// How much traffic to generate and which attacks to inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GeneratorConfig {
    /// The seed of every random choice; the same configuration gives the same dataset.
    pub seed: u64,
    /// Event time of the start of the dataset, in epoch milliseconds (clamped to ±2^50).
    pub start_ms: i64,
    /// Length of the dataset in seconds; no event lies at or after `start + duration`.
    pub duration_secs: u64,
    /// Benign end users.
    pub users: usize,
    /// Benign service clients (client-credentials grant).
    pub service_clients: usize,
    /// How many attacks of each kind to inject.
    pub attacks: AttackMix,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            start_ms: DEFAULT_START_MS,
            duration_secs: 3600,
            users: 300,
            service_clients: 5,
            attacks: AttackMix::default(),
        }
    }
}

/// How many campaigns of each kind to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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

/// The kinds of attack the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    TokenReplay,
    Bola,
    CredentialStuffing,
}

impl AttackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::TokenReplay => "token_replay",
            AttackKind::Bola => "bola",
            AttackKind::CredentialStuffing => "credential_stuffing",
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One injected attack.
///
/// Its events are the attacker's requests (and, for stuffing, the token server's reports of
/// them); what the attacker does that looks ordinary beforehand (the BOLA attacker's login and
/// a look at their own account) is not labelled, so `start_ms` is the first attack request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: u32,
    pub kind: AttackKind,
    /// The identity key the detector sees the attack's gateway traffic under
    /// (`ApiEvent::identity_key`): `sub:<victim>` for a token replay, `sub:<attacker>` for a
    /// BOLA walk, `ip:<attacker ip>` for credential stuffing.
    pub identity_key: String,
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
}

impl Campaign {
    /// True when a window `[start_ms, end_ms)` overlaps the campaign's span widened by
    /// `slack_ms` on both sides.
    pub fn overlaps(&self, start_ms: i64, end_ms: i64, slack_ms: i64) -> bool {
        start_ms <= self.end_ms.saturating_add(slack_ms)
            && end_ms > self.start_ms.saturating_sub(slack_ms)
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

/// Generates the dataset that `cfg` describes. Deterministic: no clock, no global state.
pub fn generate(cfg: &GeneratorConfig) -> Dataset {
    Generator::new(cfg).run()
}

// ---------------------------------------------------------------------------------------------
// Randomness helpers.

const STREAM_PROFILES: u64 = 1;
const STREAM_PLAN: u64 = 2;
const STREAM_USER: u64 = 3;
const STREAM_SERVICE: u64 = 4;
const STREAM_REPLAY: u64 = 5;
const STREAM_BOLA: u64 = 6;
const STREAM_STUFFING: u64 = 7;

/// An independent random stream for one part of the dataset.
/// Chance, per screen of a mobile session, that the phone moves between Wi-Fi and cellular,
/// so one token is used from two addresses one after the other (benign).
const MOBILE_HANDOVER_PER_SCREEN: f64 = 0.03;

fn stream(seed: u64, domain: u64, index: u64) -> ChaCha8Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&domain.to_le_bytes());
    s[16..24].copy_from_slice(&index.to_le_bytes());
    s[24..].copy_from_slice(b"outrider");
    ChaCha8Rng::from_seed(s)
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// An exponential sample with the given mean.
fn exponential(rng: &mut impl Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Milliseconds from a non-negative float, saturating.
fn ms(x: f64) -> i64 {
    if x.is_finite() && x > 0.0 {
        x.min(i64::MAX as f64 / 2.0) as i64
    } else {
        0
    }
}

/// A uniformly chosen element of a non-empty constant table.
fn pick<'a, T>(rng: &mut impl Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

fn hex_id(rng: &mut impl Rng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

fn uuid_v4(rng: &mut impl Rng) -> String {
    let x: u128 = rng.random();
    let a = (x >> 96) as u32;
    let b = (x >> 80) as u16;
    let c = ((x >> 64) as u16 & 0x0fff) | 0x4000;
    let d = ((x >> 48) as u16 & 0x3fff) | 0x8000;
    let e = (x as u64) & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
}

/// A random host address in one of `nets` (a list of /16 prefixes).
fn ip_in(rng: &mut impl Rng, nets: &[[u8; 2]]) -> Ipv4Addr {
    let net = *pick(rng, nets);
    Ipv4Addr::new(
        net[0],
        net[1],
        rng.random_range(0..=255),
        rng.random_range(1..=254),
    )
}

// ---------------------------------------------------------------------------------------------
// Static tables.

/// Home broadband networks of users.
const BROADBAND_NETS: [[u8; 2]; 6] = [
    [81, 2],
    [81, 130],
    [86, 150],
    [92, 233],
    [94, 174],
    [82, 132],
];
/// Mobile carrier networks (addresses change between sessions).
const CARRIER_NETS: [[u8; 2]; 4] = [[92, 40], [176, 24], [109, 144], [31, 94]];
/// Office networks some web users log in from.
const OFFICE_NETS: [[u8; 2]; 3] = [[62, 252], [195, 99], [80, 229]];
/// Cloud networks of service clients.
const SERVICE_NETS: [[u8; 2]; 2] = [[52, 17], [34, 240]];
/// Networks attackers come from; disjoint from every benign network above.
const ATTACKER_NETS: [[u8; 2]; 4] = [[185, 220], [45, 134], [193, 32], [194, 165]];

const IOS_UA: [&str; 4] = [
    "OutriderBank/5.12.1 (iPhone15,2; iOS 18.1; Scale/3.00)",
    "OutriderBank/5.12.1 (iPhone14,5; iOS 17.6.1; Scale/3.00)",
    "OutriderBank/5.11.4 (iPhone13,2; iOS 17.5; Scale/3.00)",
    "OutriderBank/5.12.0 (iPhone16,1; iOS 18.0.1; Scale/3.00)",
];
const ANDROID_UA: [&str; 4] = [
    "OutriderBank/5.12.1 (Android 14; Pixel 8) okhttp/4.12.0",
    "OutriderBank/5.12.1 (Android 13; SM-A536B) okhttp/4.12.0",
    "OutriderBank/5.11.4 (Android 14; SM-S911B) okhttp/4.11.0",
    "OutriderBank/5.12.0 (Android 12; Redmi Note 11) okhttp/4.12.0",
];
const WEB_UA: [&str; 5] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
];
const SERVICE_NAMES: [&str; 5] = [
    "aggregator",
    "ledger-sync",
    "fraud-screen",
    "statement-export",
    "notifications",
];
const SERVICE_UA: [&str; 5] = [
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "axios/1.7.7",
    "okhttp/4.12.0",
];
const REPLAY_UA: [&str; 3] = [
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
];
const STUFFING_UA: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36",
];

const FIRST_NAMES: [&str; 40] = [
    "emma", "olivia", "amelia", "isla", "ava", "mia", "sophia", "grace", "lily", "freya", "noah",
    "oliver", "george", "leo", "arthur", "harry", "oscar", "jack", "henry", "theo", "lucas",
    "mateo", "hugo", "louis", "elias", "anna", "marie", "lena", "sara", "nina", "james", "daniel",
    "samuel", "thomas", "adam", "ruby", "chloe", "zara", "maya", "ella",
];
const LAST_NAMES: [&str; 40] = [
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "wright", "walker", "evans", "thomas", "roberts", "green", "hall", "wood", "harris", "clarke",
    "king", "baker", "turner", "hill", "moore", "martin", "cooper", "ward", "morris", "khan",
    "murphy", "bauer", "fischer", "weber", "meyer", "novak", "rossi", "garcia", "lopez", "dubois",
    "muller",
];
const MAIL_DOMAINS: [&str; 3] = ["example.com", "example.net", "example.org"];
const LEAK_DOMAINS: [&str; 4] = ["mail.test", "inbox.test", "post.invalid", "webmail.test"];

/// Token lifetime of user sessions; the app refreshes a little before.
const USER_TOKEN_TTL_MS: i64 = 15 * 60 * 1000;
/// Token lifetime of service clients.
const SERVICE_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// The API catalogue.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Token,
    Accounts,
    Account,
    Transactions,
    Transaction,
    CreatePayment,
    Payment,
    Profile,
    Cards,
    Logout,
}

impl Endpoint {
    fn method(self) -> &'static str {
        match self {
            Endpoint::Token | Endpoint::CreatePayment | Endpoint::Logout => "POST",
            _ => "GET",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Endpoint::Token => "/oauth/token",
            Endpoint::Accounts => "/accounts",
            Endpoint::Account => "/accounts/{id}",
            Endpoint::Transactions => "/accounts/{id}/transactions",
            Endpoint::Transaction => "/accounts/{id}/transactions/{id}",
            Endpoint::CreatePayment => "/payments",
            Endpoint::Payment => "/payments/{id}",
            Endpoint::Profile => "/profile",
            Endpoint::Cards => "/cards",
            Endpoint::Logout => "/logout",
        }
    }

    fn ok_status(self) -> u16 {
        match self {
            Endpoint::CreatePayment => 201,
            Endpoint::Logout => 204,
            _ => 200,
        }
    }

    /// (median, sigma) of the successful response body in bytes.
    fn body(self) -> (f64, f64) {
        match self {
            Endpoint::Token => (1350.0, 0.08),
            Endpoint::Accounts => (1900.0, 0.35),
            Endpoint::Account => (950.0, 0.2),
            Endpoint::Transactions => (16_000.0, 0.45),
            Endpoint::Transaction => (1150.0, 0.25),
            Endpoint::CreatePayment => (720.0, 0.12),
            Endpoint::Payment => (830.0, 0.15),
            Endpoint::Profile => (1450.0, 0.1),
            Endpoint::Cards => (2300.0, 0.35),
            Endpoint::Logout => (0.0, 0.0),
        }
    }

    /// (median, sigma) of the latency in milliseconds.
    fn latency(self) -> (f64, f64) {
        match self {
            Endpoint::Token => (140.0, 0.3),
            Endpoint::Accounts => (45.0, 0.35),
            Endpoint::Account => (35.0, 0.3),
            Endpoint::Transactions => (160.0, 0.4),
            Endpoint::Transaction => (30.0, 0.3),
            Endpoint::CreatePayment => (380.0, 0.35),
            Endpoint::Payment => (40.0, 0.3),
            Endpoint::Profile => (30.0, 0.25),
            Endpoint::Cards => (55.0, 0.3),
            Endpoint::Logout => (25.0, 0.3),
        }
    }

    /// (median, sigma) of the request body in bytes.
    fn request_body(self) -> (f64, f64) {
        match self {
            Endpoint::Token => (190.0, 0.15),
            Endpoint::CreatePayment => (430.0, 0.2),
            _ => (0.0, 0.0),
        }
    }
}

/// One gateway call to emit.
#[derive(Debug)]
struct Call {
    endpoint: Endpoint,
    path: String,
    status: u16,
    /// Multiplies the successful response size (bigger pages).
    size_factor: f64,
}

impl Call {
    fn new(endpoint: Endpoint, path: String, status: u16) -> Self {
        Self {
            endpoint,
            path,
            status,
            size_factor: 1.0,
        }
    }
}

fn error_body(status: u16) -> (f64, f64) {
    match status {
        401 => (160.0, 0.05),
        403 => (140.0, 0.05),
        404 => (120.0, 0.05),
        422 => (260.0, 0.15),
        _ => (90.0, 0.1),
    }
}

/// The status of an ordinary user's call: mostly success, ~1% 404, rare 403/422/5xx.
fn benign_status(rng: &mut impl Rng, endpoint: Endpoint) -> u16 {
    let r: f64 = rng.random();
    match endpoint {
        Endpoint::CreatePayment if r < 0.03 => 422,
        Endpoint::Logout | Endpoint::Token => endpoint.ok_status(),
        _ if r < 0.01 => 404,
        _ if r < 0.0125 => 403,
        _ if r < 0.0135 => 503,
        _ => endpoint.ok_status(),
    }
}

// ---------------------------------------------------------------------------------------------
// Users.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persona {
    Mobile,
    Web,
    Power,
}

#[derive(Debug, Clone)]
struct Account {
    id: u64,
    /// Transaction ids, most recent first.
    transactions: Vec<u64>,
}

#[derive(Debug, Clone)]
struct UserProfile {
    subject: String,
    persona: Persona,
    mobile_client: bool,
    user_agent: &'static str,
    accounts: Vec<Account>,
    payments: Vec<String>,
    home_ip: Ipv4Addr,
    office_ip: Ipv4Addr,
    carrier: [u8; 2],
    /// Mean sessions per hour while active.
    sessions_per_hour: f64,
    /// Part of the duration the user is active in, as offsets from the start.
    active_from_ms: i64,
    active_to_ms: i64,
    think_median_s: f64,
    /// Scales the chance of ending the session after a screen.
    end_scale: f64,
}

impl UserProfile {
    fn random(
        rng: &mut impl Rng,
        duration_ms: i64,
        names: &mut BTreeSet<String>,
        account_ids: &mut BTreeSet<u64>,
    ) -> Self {
        let r: f64 = rng.random();
        let persona = if r < 0.08 {
            Persona::Power
        } else if r < 0.6 {
            Persona::Mobile
        } else {
            Persona::Web
        };
        let mobile_client = match persona {
            Persona::Mobile => true,
            Persona::Web => false,
            Persona::Power => rng.random_bool(0.35),
        };
        let user_agent = if mobile_client {
            if rng.random_bool(0.55) {
                *pick(rng, &IOS_UA)
            } else {
                *pick(rng, &ANDROID_UA)
            }
        } else {
            *pick(rng, &WEB_UA)
        };
        let subject = unique_user_name(rng, names);
        let n_accounts = match rng.random_range(0..10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let accounts = (0..n_accounts)
            .map(|_| {
                let id = unique_account_id(rng, account_ids);
                let transactions = (0..150)
                    .map(|_| rng.random_range(1_000_000_000u64..10_000_000_000))
                    .collect();
                Account { id, transactions }
            })
            .collect();
        let payments = (0..rng.random_range(2..6)).map(|_| uuid_v4(rng)).collect();
        let home_ip = ip_in(rng, &BROADBAND_NETS);
        let office_ip = ip_in(rng, &OFFICE_NETS);
        let carrier = *pick(rng, &CARRIER_NETS);
        let (rate_median, think, end_scale) = match persona {
            Persona::Mobile => (5.0, 6.0, 0.7),
            Persona::Web => (3.0, 9.0, 0.6),
            Persona::Power => (8.0, 4.0, 0.3),
        };
        let sessions_per_hour = lognormal(rng, rate_median, 0.5).clamp(0.5, 15.0);
        let duration = duration_ms.max(1);
        let span = ms(duration as f64 * rng.random_range(0.6..=1.0)).clamp(1, duration);
        let active_from_ms = rng.random_range(0..=duration - span);
        Self {
            subject,
            persona,
            mobile_client,
            user_agent,
            accounts,
            payments,
            home_ip,
            office_ip,
            carrier,
            sessions_per_hour,
            active_from_ms,
            active_to_ms: active_from_ms + span,
            think_median_s: lognormal(rng, think, 0.25),
            end_scale,
        }
    }

    fn client_id(&self) -> &'static str {
        if self.mobile_client {
            "mobile-app"
        } else {
            "web-app"
        }
    }

    fn grant_type(&self) -> &'static str {
        if self.mobile_client {
            "password"
        } else {
            "authorization_code"
        }
    }

    /// The address of a new session: mobile users are on home Wi-Fi or a carrier address
    /// that changes between sessions; web users at home or, sometimes, the office.
    fn session_ip(&self, rng: &mut impl Rng) -> Ipv4Addr {
        if self.mobile_client {
            if rng.random_bool(0.5) {
                self.home_ip
            } else {
                ip_in(rng, &[self.carrier])
            }
        } else if rng.random_bool(0.12) {
            self.office_ip
        } else {
            self.home_ip
        }
    }

    fn account_index(&self, rng: &mut impl Rng) -> usize {
        if self.accounts.len() <= 1 || rng.random_bool(0.7) {
            0
        } else {
            rng.random_range(0..self.accounts.len())
        }
    }

    fn logout_probability(&self) -> f64 {
        match self.persona {
            Persona::Mobile => 0.15,
            Persona::Web => 0.45,
            Persona::Power => 0.3,
        }
    }
}

fn unique_user_name(rng: &mut impl Rng, names: &mut BTreeSet<String>) -> String {
    loop {
        let first = *pick(rng, &FIRST_NAMES);
        let last = *pick(rng, &LAST_NAMES);
        let domain = *pick(rng, &MAIL_DOMAINS);
        let local = match rng.random_range(0..4) {
            0 => format!("{first}.{last}"),
            1 => format!("{first}{last}{}", rng.random_range(1..100)),
            2 => format!("{}.{last}", &first[..1]),
            _ => format!("{first}.{last}{}", rng.random_range(1960..2006)),
        };
        let name = format!("{local}@{domain}");
        if names.insert(name.clone()) {
            return name;
        }
    }
}

fn unique_account_id(rng: &mut impl Rng, ids: &mut BTreeSet<u64>) -> u64 {
    loop {
        let digits = rng.random_range(6..=8u32);
        let id = rng.random_range(10u64.pow(digits - 1)..10u64.pow(digits));
        if ids.insert(id) {
            return id;
        }
    }
}

/// An index into a transaction list biased to the most recent.
fn recent_index(rng: &mut impl Rng, len: usize) -> usize {
    (exponential(rng, 10.0) as usize).min(len.saturating_sub(1))
}

/// The screens of the banking apps; each is one to three calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Screen {
    Home,
    AccountDetail,
    TransactionList,
    TransactionDetail,
    NewPayment,
    PaymentStatus,
    Profile,
    Cards,
    End,
}

impl Screen {
    fn transitions(self) -> &'static [(Screen, f64)] {
        use Screen::*;
        match self {
            Home => &[
                (AccountDetail, 0.45),
                (TransactionList, 0.15),
                (Cards, 0.08),
                (Profile, 0.05),
                (NewPayment, 0.07),
                (PaymentStatus, 0.04),
                (End, 0.16),
            ],
            AccountDetail => &[
                (TransactionList, 0.25),
                (TransactionDetail, 0.3),
                (Home, 0.12),
                (NewPayment, 0.06),
                (AccountDetail, 0.07),
                (End, 0.2),
            ],
            TransactionList => &[
                (TransactionDetail, 0.4),
                (TransactionList, 0.15),
                (AccountDetail, 0.08),
                (Home, 0.1),
                (End, 0.27),
            ],
            TransactionDetail => &[
                (TransactionDetail, 0.3),
                (TransactionList, 0.25),
                (Home, 0.1),
                (AccountDetail, 0.05),
                (End, 0.3),
            ],
            NewPayment => &[
                (Home, 0.35),
                (PaymentStatus, 0.15),
                (AccountDetail, 0.2),
                (End, 0.3),
            ],
            PaymentStatus => &[(Home, 0.35), (AccountDetail, 0.2), (End, 0.45)],
            Profile => &[(Home, 0.4), (Cards, 0.2), (End, 0.4)],
            Cards => &[(Home, 0.4), (AccountDetail, 0.2), (End, 0.4)],
            End => &[(End, 1.0)],
        }
    }

    /// The next screen; `End` is weighted by `end_scale`, and impossible while `keep_going`.
    fn next(self, rng: &mut impl Rng, end_scale: f64, keep_going: bool) -> Screen {
        let weight = |s: Screen, w: f64| {
            if s == Screen::End {
                if keep_going {
                    0.0
                } else {
                    w * end_scale
                }
            } else {
                w
            }
        };
        let table = self.transitions();
        let total: f64 = table.iter().map(|&(s, w)| weight(s, w)).sum();
        if total <= 0.0 {
            return Screen::Home;
        }
        let mut x = rng.random::<f64>() * total;
        for &(s, w) in table {
            let w = weight(s, w);
            if x < w {
                return s;
            }
            x -= w;
        }
        Screen::Home
    }
}

/// The benign users of a configuration, and the names and account ids taken.
#[derive(Debug)]
struct Population {
    users: Vec<UserProfile>,
    names: BTreeSet<String>,
    account_ids: BTreeSet<u64>,
}

impl Population {
    fn new(cfg: &GeneratorConfig) -> Self {
        let duration = i64::try_from(cfg.duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut rng = stream(cfg.seed, STREAM_PROFILES, 0);
        let mut names = BTreeSet::new();
        let mut account_ids = BTreeSet::new();
        let users = (0..cfg.users)
            .map(|_| UserProfile::random(&mut rng, duration, &mut names, &mut account_ids))
            .collect();
        Self {
            users,
            names,
            account_ids,
        }
    }
}

/// What a finished session looked like (the replay attack needs the victim's).
#[derive(Debug, Clone)]
struct SessionOut {
    end_ms: i64,
    ip: Ipv4Addr,
    first_token: String,
}

/// A token replay to inject: the victim gets a session covering the attack.
#[derive(Debug, Clone)]
struct ReplayPlan {
    campaign: u32,
    victim: usize,
    attack_start: i64,
    attack_end: i64,
    session_start: i64,
    session_min_end: i64,
}

/// A labelled campaign before its bounds are known.
#[derive(Debug)]
struct CampaignDraft {
    id: u32,
    kind: AttackKind,
    identity_key: String,
    related_keys: Vec<String>,
    description: String,
}

// ---------------------------------------------------------------------------------------------
// The generator.

#[derive(Debug)]
struct Generator<'a> {
    cfg: &'a GeneratorConfig,
    start_ms: i64,
    /// Exclusive.
    end_ms: i64,
    out: Vec<LabelledEvent>,
    attacker_ips: BTreeSet<Ipv4Addr>,
}

impl<'a> Generator<'a> {
    fn new(cfg: &'a GeneratorConfig) -> Self {
        let duration_ms = i64::try_from(cfg.duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        // Keeps event-time arithmetic far from overflow (±35,000 years around 1970).
        let start_ms = cfg.start_ms.clamp(-(1 << 50), 1 << 50);
        Self {
            cfg,
            start_ms,
            end_ms: start_ms.saturating_add(duration_ms),
            out: Vec::new(),
            attacker_ips: BTreeSet::new(),
        }
    }

    fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    fn run(mut self) -> Dataset {
        let seed = self.cfg.seed;

        let Population {
            users,
            mut names,
            mut account_ids,
        } = Population::new(self.cfg);

        // Plan the attacks: campaign ids in the order token replay, BOLA, stuffing.
        let mut plan_rng = stream(seed, STREAM_PLAN, 0);
        let mut next_id = 1u32;
        let mut replays = Vec::new();
        let mut victims = BTreeSet::new();
        for _ in 0..self.cfg.attacks.token_replay {
            if victims.len() >= users.len() {
                break;
            }
            let victim = loop {
                let v = plan_rng.random_range(0..users.len());
                if victims.insert(v) {
                    break v;
                }
            };
            let len = plan_rng.random_range(180_000..=300_000);
            let Some((attack_start, attack_end)) = self.place(&mut plan_rng, len) else {
                break;
            };
            let lead = plan_rng.random_range(60_000..=240_000);
            let tail = plan_rng.random_range(60_000..=180_000);
            replays.push(ReplayPlan {
                campaign: next_id,
                victim,
                attack_start,
                attack_end,
                session_start: (attack_start - lead).max(self.start_ms),
                session_min_end: attack_end + tail,
            });
            next_id += 1;
        }
        let mut bolas = Vec::new();
        for _ in 0..self.cfg.attacks.bola {
            let len = plan_rng.random_range(270_000..=330_000);
            let Some(window) = self.place(&mut plan_rng, len) else {
                break;
            };
            bolas.push((next_id, window));
            next_id += 1;
        }
        let mut stuffings = Vec::new();
        for _ in 0..self.cfg.attacks.credential_stuffing {
            let len = plan_rng.random_range(220_000..=260_000);
            let Some(window) = self.place(&mut plan_rng, len) else {
                break;
            };
            stuffings.push((next_id, window));
            next_id += 1;
        }

        // Benign traffic.
        let mut victim_sessions: Vec<Option<SessionOut>> = vec![None; replays.len()];
        for (i, user) in users.iter().enumerate() {
            let mut rng = stream(seed, STREAM_USER, i as u64);
            let forced = replays.iter().position(|p| p.victim == i);
            let out = self.user_traffic(&mut rng, user, forced.map(|k| &replays[k]));
            if let (Some(k), Some(out)) = (forced, out) {
                victim_sessions[k] = Some(out);
            }
        }
        for i in 0..self.cfg.service_clients {
            let mut rng = stream(seed, STREAM_SERVICE, i as u64);
            self.service_client(&mut rng, i);
        }

        // Attacks.
        let mut drafts = Vec::new();
        for (k, plan) in replays.iter().enumerate() {
            let Some(session) = &victim_sessions[k] else {
                continue;
            };
            let mut rng = stream(seed, STREAM_REPLAY, k as u64);
            drafts.push(self.token_replay(&mut rng, plan, &users[plan.victim], session));
        }
        for (k, &(id, window)) in bolas.iter().enumerate() {
            let mut rng = stream(seed, STREAM_BOLA, k as u64);
            drafts.push(self.bola(&mut rng, id, window, &mut names, &mut account_ids));
        }
        for (k, &(id, window)) in stuffings.iter().enumerate() {
            let mut rng = stream(seed, STREAM_STUFFING, k as u64);
            drafts.push(self.credential_stuffing(&mut rng, id, window, &users));
        }

        self.finish(seed, drafts)
    }

    /// A random window of `len_ms` in the middle of the duration (clamped to half of it).
    fn place(&self, rng: &mut impl Rng, len_ms: i64) -> Option<(i64, i64)> {
        let d = self.duration_ms();
        if d < 10 {
            return None;
        }
        let len = len_ms.min(d / 2).max(1);
        let lo = d / 5;
        let hi = (d / 5 * 4 - len).max(lo);
        let offset = rng.random_range(lo..=hi);
        Some((self.start_ms + offset, self.start_ms + offset + len))
    }

    fn attacker_ip(&mut self, rng: &mut impl Rng) -> Ipv4Addr {
        loop {
            let ip = ip_in(rng, &ATTACKER_NETS);
            if self.attacker_ips.insert(ip) {
                return ip;
            }
        }
    }

    /// Sorts, numbers the requests and summarises the campaigns.
    fn finish(mut self, seed: u64, drafts: Vec<CampaignDraft>) -> Dataset {
        self.out.sort_by_key(|e| e.event.ts());
        let mut counter = 0u64;
        for e in &mut self.out {
            if let Event::Api(a) = &mut e.event {
                a.request_id = format!("r-{seed}-{counter}");
                counter += 1;
            }
        }
        let mut campaigns = Vec::new();
        for d in drafts {
            let mut bounds: Option<(i64, i64)> = None;
            let mut events = 0u64;
            for e in self.out.iter().filter(|e| e.campaign == Some(d.id)) {
                let t = e.event.ts().millis();
                bounds = Some(bounds.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
                events += 1;
            }
            if let Some((start_ms, end_ms)) = bounds {
                campaigns.push(Campaign {
                    id: d.id,
                    kind: d.kind,
                    identity_key: d.identity_key,
                    related_keys: d.related_keys,
                    start_ms,
                    end_ms,
                    description: d.description,
                    events,
                });
            }
        }
        campaigns.sort_by_key(|c| c.id);
        Dataset {
            events: self.out,
            campaigns,
        }
    }

    // -- emitting ---------------------------------------------------------------------------

    /// Emits one gateway record; returns the time the response completed. Records outside
    /// the dataset's duration are dropped.
    #[allow(clippy::too_many_arguments)]
    fn api(
        &mut self,
        rng: &mut impl Rng,
        ts: i64,
        call: Call,
        ip: Ipv4Addr,
        user_agent: &str,
        identity: &Identity,
        campaign: Option<u32>,
    ) -> i64 {
        let (lat_median, lat_sigma) = call.endpoint.latency();
        let ok = (200..300).contains(&call.status);
        let latency = if ok {
            lognormal(rng, lat_median, lat_sigma)
        } else {
            lognormal(rng, lat_median * 0.6, lat_sigma)
        }
        .clamp(2.0, 30_000.0);
        let (body_median, body_sigma) = if ok {
            call.endpoint.body()
        } else {
            error_body(call.status)
        };
        let factor = if ok { call.size_factor } else { 1.0 };
        let bytes_out = lognormal(rng, body_median * factor, body_sigma).round() as u64;
        let (in_median, in_sigma) = call.endpoint.request_body();
        let bytes_in = lognormal(rng, in_median, in_sigma).round() as u64;
        if ts >= self.start_ms && ts < self.end_ms {
            self.out.push(LabelledEvent {
                event: Event::Api(ApiEvent {
                    ts: EventTime(ts),
                    request_id: String::new(),
                    route: call.endpoint.route().to_owned(),
                    method: call.endpoint.method().to_owned(),
                    path: call.path,
                    status: call.status,
                    latency_ms: (latency * 10.0).round() as f32 / 10.0,
                    bytes_in,
                    bytes_out,
                    client_ip: IpAddr::V4(ip),
                    user_agent: user_agent.to_owned(),
                    identity: identity.clone(),
                }),
                campaign,
            });
        }
        ts + latency.round() as i64
    }

    #[allow(clippy::too_many_arguments)]
    fn token(
        &mut self,
        ts: i64,
        event: TokenEventKind,
        subject: Option<&str>,
        client_id: Option<&str>,
        grant_type: Option<&str>,
        token_id: Option<&str>,
        ip: Ipv4Addr,
        user_agent: &str,
        campaign: Option<u32>,
    ) {
        if ts >= self.start_ms && ts < self.end_ms {
            self.out.push(LabelledEvent {
                event: Event::Token(TokenEvent {
                    ts: EventTime(ts),
                    event,
                    subject: subject.map(str::to_owned),
                    client_id: client_id.map(str::to_owned),
                    grant_type: grant_type.map(str::to_owned),
                    token_id: token_id.map(str::to_owned),
                    client_ip: IpAddr::V4(ip),
                    user_agent: user_agent.to_owned(),
                }),
                campaign,
            });
        }
    }

    /// A user's password login through the gateway (anonymous, so keyed by IP) and the token
    /// server. Returns the new token id and the time the response arrived.
    #[allow(clippy::too_many_arguments)]
    fn user_login(
        &mut self,
        rng: &mut impl Rng,
        ts: i64,
        subject: &str,
        client_id: &str,
        grant_type: &str,
        ip: Ipv4Addr,
        user_agent: &str,
        success: bool,
        campaign: Option<u32>,
    ) -> (Option<String>, i64) {
        let status = if success { 200 } else { 401 };
        let done = self.api(
            rng,
            ts,
            Call::new(Endpoint::Token, "/oauth/token".into(), status),
            ip,
            user_agent,
            &Identity::default(),
            campaign,
        );
        let at = ts + (done - ts) * 7 / 10;
        if !success {
            self.token(
                at,
                TokenEventKind::LoginFailure,
                Some(subject),
                Some(client_id),
                Some(grant_type),
                None,
                ip,
                user_agent,
                campaign,
            );
            return (None, done);
        }
        let token_id = hex_id(rng);
        self.token(
            at,
            TokenEventKind::LoginSuccess,
            Some(subject),
            Some(client_id),
            Some(grant_type),
            None,
            ip,
            user_agent,
            campaign,
        );
        self.token(
            at + 1,
            TokenEventKind::TokenIssued,
            Some(subject),
            Some(client_id),
            Some(grant_type),
            Some(&token_id),
            ip,
            user_agent,
            campaign,
        );
        (Some(token_id), done)
    }

    // -- benign users -----------------------------------------------------------------------

    /// All of one user's sessions; returns the forced session when `forced` is given.
    fn user_traffic(
        &mut self,
        rng: &mut impl Rng,
        user: &UserProfile,
        forced: Option<&ReplayPlan>,
    ) -> Option<SessionOut> {
        let mean_gap_ms = 3_600_000.0 / user.sessions_per_hour;
        let active_to = self.start_ms + user.active_to_ms;
        let mut t = self.start_ms + user.active_from_ms + ms(exponential(rng, mean_gap_ms * 0.5));
        let mut pending = forced;
        let mut forced_out = None;
        loop {
            if let Some(plan) = pending {
                if t >= active_to || t + 60_000 >= plan.session_start {
                    let out = self.session(
                        rng,
                        user,
                        plan.session_start,
                        Some(plan.session_min_end),
                        self.end_ms,
                    );
                    t = out.end_ms + 60_000 + ms(exponential(rng, mean_gap_ms));
                    forced_out = Some(out);
                    pending = None;
                    continue;
                }
            }
            if t >= active_to || t >= self.end_ms {
                break;
            }
            let hard_end = pending.map_or(self.end_ms, |p| p.session_start - 30_000);
            let out = self.session(rng, user, t, None, hard_end);
            t = out.end_ms + 60_000 + ms(exponential(rng, mean_gap_ms));
        }
        forced_out
    }

    /// One session from `start`; it does not end before `min_end` and emits nothing at or
    /// after `hard_end`.
    fn session(
        &mut self,
        rng: &mut impl Rng,
        user: &UserProfile,
        start: i64,
        min_end: Option<i64>,
        hard_end: i64,
    ) -> SessionOut {
        let mut ip = user.session_ip(rng);
        let ua = user.user_agent;
        let client_id = user.client_id();
        let grant = user.grant_type();
        let mut t = start;
        if rng.random_bool(0.03) {
            let (_, done) =
                self.user_login(rng, t, &user.subject, client_id, grant, ip, ua, false, None);
            t = done + rng.random_range(3_000..15_000);
        }
        let (token, done) =
            self.user_login(rng, t, &user.subject, client_id, grant, ip, ua, true, None);
        let first_token = token.unwrap_or_default();
        let mut identity = Identity {
            subject: Some(user.subject.clone()),
            client_id: Some(client_id.to_owned()),
            token_id: Some(first_token.clone()),
            ..Identity::default()
        };
        let mut issued_at = done;
        let mut payments = user.payments.clone();
        let mut t = done + rng.random_range(150..900);
        let mut last;
        let mut screen = Screen::Home;
        let mut account = user.account_index(rng);
        let mut natural_end = true;
        loop {
            if t - issued_at >= USER_TOKEN_TTL_MS - 30_000 {
                let done = self.api(
                    rng,
                    t,
                    Call::new(Endpoint::Token, "/oauth/token".into(), 200),
                    ip,
                    ua,
                    &Identity::default(),
                    None,
                );
                let new_token = hex_id(rng);
                self.token(
                    t + (done - t) * 7 / 10,
                    TokenEventKind::TokenRefreshed,
                    Some(&user.subject),
                    Some(client_id),
                    Some("refresh_token"),
                    Some(&new_token),
                    ip,
                    ua,
                    None,
                );
                identity.token_id = Some(new_token);
                issued_at = done;
                t = done + rng.random_range(50..300);
            }
            if user.mobile_client && rng.random_bool(MOBILE_HANDOVER_PER_SCREEN) {
                // Wi-Fi <-> cellular handover: same token and device, a new address.
                ip = if ip == user.home_ip {
                    ip_in(rng, &[user.carrier])
                } else {
                    user.home_ip
                };
            }
            last = self.screen(
                rng,
                user,
                screen,
                &mut account,
                &mut payments,
                t,
                ip,
                &identity,
            );
            let keep_going = min_end.is_some_and(|m| last < m);
            let next = screen.next(rng, user.end_scale, keep_going);
            if next == Screen::End {
                break;
            }
            let mut think = lognormal(rng, user.think_median_s, 0.9);
            if next == Screen::TransactionDetail {
                think *= 0.6;
            }
            if next == Screen::NewPayment {
                think += rng.random_range(10.0..60.0);
            }
            let next_t = last + ms(think.clamp(1.0, 240.0) * 1000.0);
            if next_t >= hard_end || next_t >= self.end_ms {
                natural_end = false;
                break;
            }
            t = next_t;
            screen = next;
        }
        if natural_end && rng.random_bool(user.logout_probability()) {
            let at = last + rng.random_range(1_000..6_000);
            if at < hard_end {
                let done = self.api(
                    rng,
                    at,
                    Call::new(Endpoint::Logout, "/logout".into(), 204),
                    ip,
                    ua,
                    &identity,
                    None,
                );
                let token_id = identity.token_id.as_deref();
                self.token(
                    done,
                    TokenEventKind::Logout,
                    Some(&user.subject),
                    Some(client_id),
                    None,
                    token_id,
                    ip,
                    ua,
                    None,
                );
                if !user.mobile_client {
                    self.token(
                        done + 1,
                        TokenEventKind::TokenRevoked,
                        Some(&user.subject),
                        Some(client_id),
                        None,
                        token_id,
                        ip,
                        ua,
                        None,
                    );
                }
                last = done;
            }
        }
        SessionOut {
            end_ms: last,
            ip,
            first_token,
        }
    }

    /// The calls of one screen; returns when the last response arrived.
    #[allow(clippy::too_many_arguments)]
    fn screen(
        &mut self,
        rng: &mut impl Rng,
        user: &UserProfile,
        screen: Screen,
        account: &mut usize,
        payments: &mut Vec<String>,
        t: i64,
        ip: Ipv4Addr,
        identity: &Identity,
    ) -> i64 {
        let mut wanted: Vec<(Endpoint, String)> = Vec::with_capacity(3);
        let acc = |i: usize| user.accounts.get(i).or(user.accounts.first());
        match screen {
            Screen::Home | Screen::End => {
                wanted.push((Endpoint::Accounts, "/accounts".into()));
                let (p_profile, p_cards) = if user.mobile_client {
                    (0.5, 0.4)
                } else {
                    (0.25, 0.15)
                };
                if rng.random_bool(p_profile) {
                    wanted.push((Endpoint::Profile, "/profile".into()));
                }
                if rng.random_bool(p_cards) {
                    wanted.push((Endpoint::Cards, "/cards".into()));
                }
            }
            Screen::AccountDetail => {
                *account = user.account_index(rng);
                if let Some(a) = acc(*account) {
                    wanted.push((Endpoint::Account, format!("/accounts/{}", a.id)));
                    if rng.random_bool(0.75) {
                        wanted.push((
                            Endpoint::Transactions,
                            format!("/accounts/{}/transactions", a.id),
                        ));
                    }
                }
            }
            Screen::TransactionList => {
                if let Some(a) = acc(*account) {
                    wanted.push((
                        Endpoint::Transactions,
                        format!("/accounts/{}/transactions", a.id),
                    ));
                }
            }
            Screen::TransactionDetail => {
                if let Some(a) = acc(*account) {
                    let i = recent_index(rng, a.transactions.len());
                    if let Some(tx) = a.transactions.get(i) {
                        wanted.push((
                            Endpoint::Transaction,
                            format!("/accounts/{}/transactions/{tx}", a.id),
                        ));
                    }
                }
            }
            Screen::NewPayment => {
                wanted.push((Endpoint::CreatePayment, "/payments".into()));
                if rng.random_bool(0.8) {
                    let id = uuid_v4(rng);
                    wanted.push((Endpoint::Payment, format!("/payments/{id}")));
                    payments.push(id);
                }
            }
            Screen::PaymentStatus => {
                if !payments.is_empty() {
                    let i = rng.random_range(0..payments.len());
                    wanted.push((Endpoint::Payment, format!("/payments/{}", payments[i])));
                }
            }
            Screen::Profile => wanted.push((Endpoint::Profile, "/profile".into())),
            Screen::Cards => wanted.push((Endpoint::Cards, "/cards".into())),
        }
        let calls: Vec<Call> = wanted
            .into_iter()
            .map(|(endpoint, path)| {
                let status = benign_status(rng, endpoint);
                Call::new(endpoint, path, status)
            })
            .collect();
        let mut at = t;
        let mut last = t;
        let parallel = user.mobile_client;
        for c in calls {
            let done = self.api(rng, at, c, ip, user.user_agent, identity, None);
            last = last.max(done);
            // Apps fire a screen's calls together; browsers one after another.
            at = if parallel {
                at + rng.random_range(5..120)
            } else {
                done + rng.random_range(10..200)
            };
        }
        last
    }

    // -- service clients --------------------------------------------------------------------

    fn service_client(&mut self, rng: &mut impl Rng, index: usize) {
        let name = SERVICE_NAMES
            .get(index)
            .map_or_else(|| format!("svc-partner-{index}"), |n| format!("svc-{n}"));
        let ua = SERVICE_UA[index % SERVICE_UA.len()];
        let ip = ip_in(rng, &SERVICE_NETS);
        let period_ms = rng.random_range(2_000.0..6_000.0);
        let payments: Vec<String> = (0..rng.random_range(15..50))
            .map(|_| uuid_v4(rng))
            .collect();
        let identity_base = Identity {
            client_id: Some(name.clone()),
            ..Identity::default()
        };
        let mut t = self.start_ms + rng.random_range(0..30_000);
        let mut token_expires = i64::MIN;
        let mut identity = identity_base.clone();
        let mut cursor = rng.random_range(0..payments.len());
        while t < self.end_ms {
            if t >= token_expires.saturating_sub(60_000) {
                let done = self.api(
                    rng,
                    t,
                    Call::new(Endpoint::Token, "/oauth/token".into(), 200),
                    ip,
                    ua,
                    &identity_base,
                    None,
                );
                let token_id = hex_id(rng);
                self.token(
                    t + (done - t) * 7 / 10,
                    TokenEventKind::TokenIssued,
                    None,
                    Some(&name),
                    Some("client_credentials"),
                    Some(&token_id),
                    ip,
                    ua,
                    None,
                );
                identity.token_id = Some(token_id);
                token_expires = done + SERVICE_TOKEN_TTL_MS;
                t = done + rng.random_range(20..200);
            }
            let status = if rng.random_bool(0.001) { 503 } else { 200 };
            let mut at = self.api(
                rng,
                t,
                Call::new(Endpoint::Accounts, "/accounts".into(), status),
                ip,
                ua,
                &identity,
                None,
            );
            for _ in 0..rng.random_range(0..=2) {
                cursor = (cursor + 1) % payments.len();
                let status = if rng.random_bool(0.003) { 404 } else { 200 };
                let next = at + rng.random_range(20..200);
                at = self.api(
                    rng,
                    next,
                    Call::new(
                        Endpoint::Payment,
                        format!("/payments/{}", payments[cursor]),
                        status,
                    ),
                    ip,
                    ua,
                    &identity,
                    None,
                );
            }
            t += ms(period_ms * rng.random_range(0.9..1.1));
        }
    }

    // -- attacks ----------------------------------------------------------------------------

    /// The victim's token used from an attacker's network, alongside the victim.
    fn token_replay<R: Rng>(
        &mut self,
        rng: &mut R,
        plan: &ReplayPlan,
        victim: &UserProfile,
        session: &SessionOut,
    ) -> CampaignDraft {
        let id = Some(plan.campaign);
        let ip = self.attacker_ip(rng);
        let ua = *pick(rng, &REPLAY_UA);
        let identity = Identity {
            subject: Some(victim.subject.clone()),
            client_id: Some(victim.client_id().to_owned()),
            token_id: Some(session.first_token.clone()),
            ..Identity::default()
        };
        let mut t = plan.attack_start;
        let step = |rng: &mut R, t: &mut i64, done: i64| {
            *t = done + rng.random_range(1_500..5_000);
        };
        for (endpoint, path) in [
            (Endpoint::Accounts, "/accounts"),
            (Endpoint::Profile, "/profile"),
        ] {
            let done = self.api(
                rng,
                t,
                Call::new(endpoint, path.into(), 200),
                ip,
                ua,
                &identity,
                id,
            );
            step(rng, &mut t, done);
        }
        let mut round = 0usize;
        'outer: while t <= plan.attack_end {
            for account in &victim.accounts {
                if t > plan.attack_end {
                    break 'outer;
                }
                let done = self.api(
                    rng,
                    t,
                    Call::new(Endpoint::Account, format!("/accounts/{}", account.id), 200),
                    ip,
                    ua,
                    &identity,
                    id,
                );
                step(rng, &mut t, done);
                // Page through the history, then open many transactions, deeper each round.
                for _ in 0..rng.random_range(2..5) {
                    if t > plan.attack_end {
                        break 'outer;
                    }
                    let mut call = Call::new(
                        Endpoint::Transactions,
                        format!("/accounts/{}/transactions", account.id),
                        200,
                    );
                    call.size_factor = 1.6;
                    let done = self.api(rng, t, call, ip, ua, &identity, id);
                    step(rng, &mut t, done);
                }
                let n = rng.random_range(6..14);
                let len = account.transactions.len();
                for k in 0..n {
                    if t > plan.attack_end || len == 0 {
                        break;
                    }
                    let tx = account.transactions[(round * 13 + k) % len];
                    let done = self.api(
                        rng,
                        t,
                        Call::new(
                            Endpoint::Transaction,
                            format!("/accounts/{}/transactions/{tx}", account.id),
                            200,
                        ),
                        ip,
                        ua,
                        &identity,
                        id,
                    );
                    t = done + rng.random_range(800..3_000);
                }
            }
            round += 1;
        }
        CampaignDraft {
            id: plan.campaign,
            kind: AttackKind::TokenReplay,
            identity_key: format!("sub:{}", victim.subject),
            related_keys: Vec::new(),
            description: format!(
                "token replay: token {} of {} (session from {}) reused from {ip} ({ua}) \
                 while the victim is active",
                short(&session.first_token),
                victim.subject,
                session.ip,
            ),
        }
    }

    /// An authenticated account walking other account ids.
    fn bola(
        &mut self,
        rng: &mut impl Rng,
        id: u32,
        (start, end): (i64, i64),
        names: &mut BTreeSet<String>,
        account_ids: &mut BTreeSet<u64>,
    ) -> CampaignDraft {
        let mut attacker = UserProfile::random(rng, self.duration_ms(), names, account_ids);
        attacker.mobile_client = false;
        attacker.user_agent = *pick(rng, &WEB_UA);
        let ip = self.attacker_ip(rng);
        let ua = attacker.user_agent;
        let client_id = attacker.client_id();
        // An ordinary-looking login and a look at the own account before the walk (unlabelled:
        // the detector sees nothing unusual yet, and the login is keyed by IP).
        let login_at = (start - rng.random_range(30_000..120_000)).max(self.start_ms);
        let (token, done) = self.user_login(
            rng,
            login_at,
            &attacker.subject,
            client_id,
            attacker.grant_type(),
            ip,
            ua,
            true,
            None,
        );
        let identity = Identity {
            subject: Some(attacker.subject.clone()),
            client_id: Some(client_id.to_owned()),
            token_id: token,
            ..Identity::default()
        };
        let mut t = done + rng.random_range(500..3_000);
        let own = attacker.accounts.first().map_or(0, |a| a.id);
        for (endpoint, path) in [
            (Endpoint::Accounts, "/accounts".to_owned()),
            (Endpoint::Account, format!("/accounts/{own}")),
        ] {
            if t >= start {
                break;
            }
            let done = self.api(
                rng,
                t,
                Call::new(endpoint, path, 200),
                ip,
                ua,
                &identity,
                None,
            );
            t = done + rng.random_range(2_000..8_000);
        }

        let base: u64 = rng.random_range(1_000_000..9_000_000);
        let mut n = base;
        let mut t = start;
        let mut walked = 0u64;
        // A few ids the API wrongly lets it read: at random, and surely two early in the walk.
        let sure_reads = [rng.random_range(3..30u64), rng.random_range(30..60u64)];
        while t <= end {
            let r: f64 = rng.random();
            let status = if r < 0.05 || sure_reads.contains(&walked) {
                200
            } else if r < 0.5 {
                403
            } else {
                404
            };
            let done = self.api(
                rng,
                t,
                Call::new(Endpoint::Account, format!("/accounts/{n}"), status),
                ip,
                ua,
                &identity,
                Some(id),
            );
            walked += 1;
            t = done + rng.random_range(1_000..3_000);
            if (status == 200 || rng.random_bool(0.25)) && t <= end {
                let done = self.api(
                    rng,
                    t,
                    Call::new(
                        Endpoint::Transactions,
                        format!("/accounts/{n}/transactions"),
                        status,
                    ),
                    ip,
                    ua,
                    &identity,
                    Some(id),
                );
                t = done + rng.random_range(1_000..3_000);
            }
            n += if rng.random_bool(0.08) {
                rng.random_range(10..500)
            } else if rng.random_bool(0.15) {
                2
            } else {
                1
            };
        }
        CampaignDraft {
            id,
            kind: AttackKind::Bola,
            identity_key: format!("sub:{}", attacker.subject),
            related_keys: Vec::new(),
            description: format!(
                "BOLA walk: {} (own account {own}) from {ip} walks {walked} account ids \
                 from {base} upwards",
                attacker.subject
            ),
        }
    }

    /// One IP trying many user names against the token endpoint.
    fn credential_stuffing(
        &mut self,
        rng: &mut impl Rng,
        id: u32,
        (start, end): (i64, i64),
        users: &[UserProfile],
    ) -> CampaignDraft {
        let ip = self.attacker_ip(rng);
        let mut attempts = Vec::new();
        let mut t = start;
        while t <= end {
            attempts.push(t);
            t += rng.random_range(330..1_000);
        }
        // A couple of real users whose leaked passwords still work.
        let mut successes = BTreeSet::new();
        if !users.is_empty() && !attempts.is_empty() {
            for _ in 0..rng.random_range(2..=3) {
                successes.insert(rng.random_range(0..attempts.len()));
            }
        }
        let mut tried = BTreeSet::new();
        let mut hits = 0u64;
        for (k, &at) in attempts.iter().enumerate() {
            let ua = STUFFING_UA[(k / 37) % STUFFING_UA.len()];
            let success = successes.contains(&k);
            let name = if success || (!users.is_empty() && rng.random_bool(0.04)) {
                users[rng.random_range(0..users.len())].subject.clone()
            } else {
                leaked_name(rng)
            };
            tried.insert(name.clone());
            if success {
                hits += 1;
            }
            self.user_login(
                rng,
                at,
                &name,
                "web-app",
                "password",
                ip,
                ua,
                success,
                Some(id),
            );
        }
        CampaignDraft {
            id,
            kind: AttackKind::CredentialStuffing,
            identity_key: format!("ip:{ip}"),
            related_keys: tried.iter().map(|name| format!("sub:{name}")).collect(),
            description: format!(
                "credential stuffing: {ip} tries {} user names in {} attempts, {hits} succeed",
                tried.len(),
                attempts.len()
            ),
        }
    }
}

/// A user name from a leaked combo list.
fn leaked_name(rng: &mut impl Rng) -> String {
    let first = *pick(rng, &FIRST_NAMES);
    let last = *pick(rng, &LAST_NAMES);
    let domain = *pick(rng, &LEAK_DOMAINS);
    match rng.random_range(0..4) {
        0 => format!("{first}{last}{}@{domain}", rng.random_range(1..1000)),
        1 => format!("{first}_{last}{}@{domain}", rng.random_range(60..100)),
        2 => format!(
            "{}{last}{}@{domain}",
            &first[..1],
            rng.random_range(1..10_000)
        ),
        _ => format!("{last}.{first}{}@{domain}", rng.random_range(1..100)),
    }
}

fn short(token: &str) -> &str {
    token.get(..8).unwrap_or(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn benign_users_touch_only_their_own_accounts() {
        let cfg = GeneratorConfig::default();
        let population = Population::new(&cfg);
        let owned: BTreeMap<&str, BTreeSet<u64>> = population
            .users
            .iter()
            .map(|u| {
                (
                    u.subject.as_str(),
                    u.accounts.iter().map(|a| a.id).collect(),
                )
            })
            .collect();
        let ds = generate(&cfg);
        let mut checked = 0usize;
        let mut users_seen = BTreeSet::new();
        for (a, campaign) in ds.api_events() {
            if campaign.is_some() {
                continue;
            }
            let Some(subject) = a.identity.subject.as_deref() else {
                continue;
            };
            let Some(rest) = a.path.strip_prefix("/accounts/") else {
                continue;
            };
            let Some(own) = owned.get(subject) else {
                // Only the BOLA attacker's warm-up is outside the population.
                continue;
            };
            let id: u64 = rest.split('/').next().unwrap().parse().unwrap();
            assert!(
                own.contains(&id),
                "{subject} touched account {id}: {}",
                a.path
            );
            checked += 1;
            users_seen.insert(subject);
        }
        assert!(checked > 1_000, "only {checked} account calls checked");
        assert!(users_seen.len() > 200, "only {} users", users_seen.len());
    }

    #[test]
    fn account_ids_are_six_to_eight_digits_and_not_sequential() {
        let population = Population::new(&GeneratorConfig::default());
        let ids: Vec<u64> = population
            .users
            .iter()
            .flat_map(|u| u.accounts.iter().map(|a| a.id))
            .collect();
        assert!(ids.iter().all(|&id| (100_000..100_000_000).contains(&id)));
        let unique: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
        let adjacent = ids.windows(2).filter(|w| w[0].abs_diff(w[1]) < 10).count();
        assert!(adjacent < 3, "{adjacent} near-sequential neighbours");
    }

    #[test]
    fn personas_are_mixed() {
        let population = Population::new(&GeneratorConfig::default());
        let count = |p: Persona| population.users.iter().filter(|u| u.persona == p).count();
        assert!(count(Persona::Mobile) > 100);
        assert!(count(Persona::Web) > 80);
        assert!(count(Persona::Power) > 5);
        let mobile = population.users.iter().filter(|u| u.mobile_client).count();
        assert!(mobile > 100 && mobile < 250, "{mobile}");
    }

    #[test]
    fn samplers_are_sane() {
        let mut rng = stream(1, 99, 0);
        let xs: Vec<f64> = (0..20_000)
            .map(|_| lognormal(&mut rng, 100.0, 0.5))
            .collect();
        let mut sorted = xs.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = sorted[sorted.len() / 2];
        assert!((90.0..110.0).contains(&median), "{median}");
        let mean: f64 = (0..20_000)
            .map(|_| exponential(&mut rng, 10.0))
            .sum::<f64>()
            / 20_000.0;
        assert!((9.5..10.5).contains(&mean), "{mean}");
        let u = uuid_v4(&mut rng);
        assert!(outrider_ingest::route::is_object_id(&u), "{u}");
        assert_eq!(hex_id(&mut rng).len(), 32);
    }
}
