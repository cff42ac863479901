//! Who calls the APIs: end users with personas (mobile, web, power users), their devices,
//! networks, accounts and objects, and the machine clients (service clients, partner
//! integrations, batch jobs). Built once per dataset; per-object data (a transaction list,
//! a workspace's documents) is derived from ids on demand instead of stored, so 100,000
//! identities fit in a few tens of megabytes.

use std::collections::HashSet;
use std::net::IpAddr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::ApiKind;
use super::net::{self, Network};
use super::rng::{
    lognormal, mix, ms, normal, pick, stream, uuid_v4, STREAM_CLIENTS, STREAM_PROFILES,
};
use super::{GeneratorConfig, TrafficModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persona {
    Mobile,
    Web,
    Power,
}

/// Travel: sessions between `from` and `to` come from `network` (a foreign one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trip {
    pub from_ms: i64,
    pub to_ms: i64,
    pub network: &'static Network,
    /// The hotel's address, when the traveller uses its Wi-Fi rather than roaming.
    pub hotel_ip: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserProfile {
    pub api: ApiKind,
    pub subject: String,
    pub persona: Persona,
    pub mobile_client: bool,
    pub user_agent: &'static str,
    /// A new phone or browser from this time on.
    pub new_agent: Option<(i64, &'static str)>,
    pub home_ip: IpAddr,
    /// The office's NAT address, shared with colleagues.
    pub office_ip: IpAddr,
    pub carrier: &'static Network,
    /// Hours ahead of UTC at home.
    pub tz_hours: i64,
    /// Bank accounts, retail orders; for SaaS the organisation index.
    pub objects: Vec<u64>,
    /// Bank payment ids; retail gift cards.
    pub payments: Vec<String>,
    pub org: usize,
    /// Compressed model: sessions per hour while active, and the active span (offsets from
    /// the start). Realistic model: sessions per day.
    pub rate: f64,
    pub active_from_ms: i64,
    pub active_to_ms: i64,
    /// Realistic model: the user's habits run this many hours early (negative) or late.
    pub hour_shift: f64,
    pub think_median_s: f64,
    /// Scales the chance of ending the session after a screen.
    pub end_scale: f64,
    pub trip: Option<Trip>,
}

impl UserProfile {
    pub fn client_id(&self) -> &'static str {
        let (web, mobile) = self.api.clients();
        if self.mobile_client {
            mobile
        } else {
            web
        }
    }

    /// The user agent at time `t` (a new device replaces the old one).
    pub fn agent_at(&self, t: i64) -> &'static str {
        match self.new_agent {
            Some((from, ua)) if t >= from => ua,
            _ => self.user_agent,
        }
    }

    pub fn account_index(&self, rng: &mut impl Rng) -> usize {
        if self.objects.len() <= 1 || rng.random_bool(0.7) {
            0
        } else {
            rng.random_range(0..self.objects.len())
        }
    }

    pub fn logout_probability(&self) -> f64 {
        match self.persona {
            Persona::Mobile => 0.15,
            Persona::Web => 0.45,
            Persona::Power => 0.3,
        }
    }

    /// The trip under way at `t`, if any.
    pub fn trip_at(&self, t: i64) -> Option<&Trip> {
        self.trip
            .as_ref()
            .filter(|trip| (trip.from_ms..trip.to_ms).contains(&t))
    }
}

/// A SaaS customer: a workspace, its projects, and how many documents each holds.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub workspace: u64,
    pub projects: Vec<u64>,
    pub documents_per_project: u64,
}

impl Org {
    /// The `k`-th document of `project` (7-digit ids, derived, not stored).
    pub fn document(&self, project: u64, k: u64) -> u64 {
        document_id(project, k % self.documents_per_project.max(1))
    }
}

pub(crate) fn document_id(project: u64, k: u64) -> u64 {
    1_000_000 + mix(project, k) % 9_000_000
}

/// The `k`-th most recent transaction of a bank account (10-digit ids, derived).
pub(crate) fn transaction_id(account: u64, k: u64) -> u64 {
    1_000_000_000 + mix(account, k) % 9_000_000_000
}

/// The product at popularity rank `rank` (6-digit ids).
pub(crate) fn product_id(rank: u64) -> u64 {
    100_000 + mix(0x5eed_0001, rank) % 900_000
}

/// Products in the retail catalogue.
pub(crate) const PRODUCT_COUNT: u64 = 40_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// Internal services on client credentials: steady polling, around the clock.
    Service,
    /// Partner integrations (open-banking aggregators, affiliates, SaaS connectors):
    /// bursts of syncs in business hours, reading many customers' objects with consent.
    Partner,
    /// Nightly batch jobs: one heavy export a day.
    Batch,
}

/// A machine client.
#[derive(Debug, Clone)]
pub(crate) struct ClientProfile {
    pub api: ApiKind,
    pub kind: ClientKind,
    /// The OAuth client id (or, for API-key partners, the key's name).
    pub name: String,
    /// Partners on API keys: the raw key the gateway sees.
    pub api_key: Option<String>,
    pub ip: IpAddr,
    pub user_agent: &'static str,
    /// Service: mean seconds between polls. Partner: mean minutes between syncs.
    pub period: f64,
    /// Objects the client reads: payments it watches, accounts with consent, projects.
    pub objects: Vec<u64>,
    pub payments: Vec<String>,
}

/// What the canonical format records for an API key: a hash, never the key.
pub(crate) fn api_key_hash(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:016x}{:016x}", mix(h, 1), mix(h, 2))
}

/// Everyone who calls the APIs.
#[derive(Debug)]
pub(crate) struct Population {
    pub users: Vec<UserProfile>,
    pub clients: Vec<ClientProfile>,
    pub orgs: Vec<Org>,
    pub names: HashSet<String>,
    pub account_ids: HashSet<u64>,
}

// ---- user agents ----
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
const SHOP_APP_UA: [&str; 4] = [
    "Shopwise/3.4.1 (iPhone15,2; iOS 18.1)",
    "Shopwise/3.4.1 (iPhone12,1; iOS 17.6)",
    "Shopwise/3.4.0 (Android 14; Pixel 7) okhttp/4.12.0",
    "Shopwise/3.3.9 (Android 13; SM-G991B) okhttp/4.11.0",
];
const DESKTOP_UA: [&str; 3] = [
    "Docspace/2.18.0 (Windows 10.0.22631) Electron/31.2.0",
    "Docspace/2.18.0 (Macintosh; macOS 14.6) Electron/31.2.0",
    "Docspace/2.17.3 (Windows 10.0.19045) Electron/30.1.2",
];
pub(crate) const WEB_UA: [&str; 5] = [
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
pub(crate) const SERVICE_UA: [&str; 5] = [
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "axios/1.7.7",
    "okhttp/4.12.0",
];
const PARTNER_NAMES: [&str; 6] = [
    "moneyview",
    "budgetly",
    "pricepilot",
    "dealhound",
    "syncbridge",
    "teamflow",
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

fn mobile_agents(api: ApiKind) -> (&'static [&'static str], &'static [&'static str]) {
    match api {
        ApiKind::Bank => (&IOS_UA, &ANDROID_UA),
        ApiKind::Retail => (&SHOP_APP_UA[..2], &SHOP_APP_UA[2..]),
        ApiKind::Saas => (&DESKTOP_UA[1..2], &DESKTOP_UA[..1]),
    }
}

/// Hours ahead of UTC in a user's home country.
fn tz_of(country: &str) -> i64 {
    match country {
        "GB" | "PT" | "IE" => 0,
        _ => 1,
    }
}

impl Population {
    pub fn new(cfg: &GeneratorConfig) -> Self {
        let duration = i64::try_from(cfg.duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let start = cfg.start_ms;
        let mut rng = stream(cfg.seed, STREAM_PROFILES, u64::from(cfg.population));
        let domain_suffix = if cfg.population == 0 {
            String::new()
        } else {
            format!("p{}.", cfg.population)
        };
        let apis = cfg.api_list();
        let mut names = HashSet::with_capacity(cfg.users);
        let mut account_ids = HashSet::new();
        // Offices and SaaS organisations: colleagues share a NAT address and a workspace.
        let companies = (cfg.users / 25).max(1);
        let offices: Vec<(&'static str, IpAddr)> = (0..companies)
            .map(|_| {
                let office = pick(&mut rng, &net::OFFICES);
                (office.country, net::addr_in(&mut rng, office))
            })
            .collect();
        let saas_users = if apis.contains(&ApiKind::Saas) {
            cfg.users
        } else {
            0
        };
        let orgs: Vec<Org> = (0..(saas_users / 12).max(1))
            .map(|_| {
                let workspace = rng.random_range(10_000..100_000);
                let projects = (0..rng.random_range(3..20))
                    .map(|_| rng.random_range(100_000..1_000_000))
                    .collect();
                Org {
                    workspace,
                    projects,
                    documents_per_project: rng.random_range(20..300),
                }
            })
            .collect();
        let users = (0..cfg.users)
            .map(|i| {
                let api = apis[i % apis.len()];
                let ctx = UserContext {
                    cfg,
                    start,
                    duration,
                    offices: &offices,
                    orgs: orgs.len(),
                    domain_suffix: &domain_suffix,
                };
                random_user(&mut rng, api, &ctx, &mut names, &mut account_ids)
            })
            .collect();
        let clients = clients(cfg, &apis);
        Self {
            users,
            clients,
            orgs,
            names,
            account_ids,
        }
    }
}

struct UserContext<'a> {
    cfg: &'a GeneratorConfig,
    start: i64,
    duration: i64,
    offices: &'a [(&'static str, IpAddr)],
    orgs: usize,
    domain_suffix: &'a str,
}

fn random_user(
    rng: &mut ChaCha8Rng,
    api: ApiKind,
    ctx: &UserContext<'_>,
    names: &mut HashSet<String>,
    account_ids: &mut HashSet<u64>,
) -> UserProfile {
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
    let (ios, android) = mobile_agents(api);
    let pick_agent = |rng: &mut ChaCha8Rng| {
        if !mobile_client {
            *pick(rng, &WEB_UA)
        } else if rng.random_bool(0.55) {
            *pick(rng, ios)
        } else {
            *pick(rng, android)
        }
    };
    let user_agent = pick_agent(rng);
    let subject = unique_user_name(rng, names, ctx.domain_suffix);
    let (objects, payments, org) = match api {
        ApiKind::Bank => {
            let n = match rng.random_range(0..10) {
                0..=5 => 1,
                6..=8 => 2,
                _ => 3,
            };
            let accounts = (0..n)
                .map(|_| unique_account_id(rng, account_ids))
                .collect();
            let payments = (0..rng.random_range(2..6)).map(|_| uuid_v4(rng)).collect();
            (accounts, payments, 0)
        }
        ApiKind::Retail => {
            let orders = (0..rng.random_range(0..12))
                .map(|_| rng.random_range(10_000_000..100_000_000))
                .collect();
            let cards = (0..rng.random_range(0..2))
                .map(|_| {
                    format!(
                        "{}",
                        rng.random_range(6_000_000_000_000_000u64..7_000_000_000_000_000)
                    )
                })
                .collect();
            (orders, cards, 0)
        }
        ApiKind::Saas => (Vec::new(), Vec::new(), rng.random_range(0..ctx.orgs.max(1))),
    };
    // Home, carrier and office in one country: people commute, they do not hop borders
    // between two screens (trips are modelled on their own).
    let home = pick(rng, &net::BROADBAND[..6]);
    let home_ip = net::addr_in(rng, home);
    let local_offices: Vec<IpAddr> = ctx
        .offices
        .iter()
        .filter(|(country, _)| *country == home.country)
        .map(|(_, ip)| *ip)
        .collect();
    let office_ip = if local_offices.is_empty() {
        let office = pick(rng, &net::OFFICES);
        net::addr_in(rng, office)
    } else {
        *pick(rng, &local_offices)
    };
    let carriers: Vec<&'static Network> = net::CARRIERS
        .iter()
        .filter(|c| c.country == home.country)
        .collect();
    let carrier = if carriers.is_empty() {
        pick(rng, &net::CARRIERS[..4])
    } else {
        *pick(rng, &carriers)
    };
    let (rate_median, think, end_scale) = match persona {
        Persona::Mobile => (5.0, 6.0, 0.7),
        Persona::Web => (3.0, 9.0, 0.6),
        Persona::Power => (8.0, 4.0, 0.3),
    };
    let duration = ctx.duration.max(1);
    let mut profile = UserProfile {
        api,
        subject,
        persona,
        mobile_client,
        user_agent,
        new_agent: None,
        home_ip,
        office_ip,
        carrier,
        tz_hours: tz_of(home.country),
        objects,
        payments,
        org,
        rate: 0.0,
        active_from_ms: 0,
        active_to_ms: duration,
        hour_shift: 0.0,
        think_median_s: lognormal(rng, think, 0.25),
        end_scale,
        trip: None,
    };
    match ctx.cfg.traffic {
        TrafficModel::Compressed => {
            profile.rate = lognormal(rng, rate_median, 0.5).clamp(0.5, 15.0);
            let span = ms(duration as f64 * rng.random_range(0.6..=1.0)).clamp(1, duration);
            profile.active_from_ms = rng.random_range(0..=duration - span);
            profile.active_to_ms = profile.active_from_ms + span;
        }
        TrafficModel::Realistic => {
            let per_day = match persona {
                Persona::Mobile => 2.2,
                Persona::Web => 0.9,
                Persona::Power => 5.0,
            };
            profile.rate = lognormal(rng, per_day, 0.6).clamp(0.1, 20.0);
            profile.hour_shift = (normal(rng) * 1.5).clamp(-4.0, 4.0);
            let days = duration as f64 / 86_400_000.0;
            // About one user in a hundred starts a trip on any given day, and one mobile
            // user in three hundred gets a new phone.
            if rng.random_bool((0.01 * days).min(0.5)) {
                let from = ctx.start + rng.random_range(0..duration);
                let len = ms(rng.random_range(1.0..5.0) * 86_400_000.0);
                let network = pick(rng, &net::TRAVEL);
                let hotel_ip = (network.kind == super::net::NetKind::PublicWifi
                    || rng.random_bool(0.4))
                .then(|| net::addr_in(rng, network));
                profile.trip = Some(Trip {
                    from_ms: from,
                    to_ms: from.saturating_add(len),
                    network,
                    hotel_ip,
                });
            }
            if mobile_client && rng.random_bool((0.003 * days).min(0.5)) {
                let at = ctx.start + rng.random_range(0..duration);
                let mut ua = pick_agent(rng);
                if ua == user_agent {
                    ua = pick_agent(rng);
                }
                profile.new_agent = Some((at, ua));
            }
        }
    }
    profile
}

fn unique_user_name(rng: &mut impl Rng, names: &mut HashSet<String>, suffix: &str) -> String {
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
        // Large populations run out of plain combinations: add digits until unique.
        let local = if names.len() > 8_000 {
            format!("{local}{}", rng.random_range(1..100_000))
        } else {
            local
        };
        let name = format!("{local}@{suffix}{domain}");
        if names.insert(name.clone()) {
            return name;
        }
    }
}

pub(crate) fn unique_account_id(rng: &mut impl Rng, ids: &mut HashSet<u64>) -> u64 {
    loop {
        let digits = rng.random_range(6..=8u32);
        let id = rng.random_range(10u64.pow(digits - 1)..10u64.pow(digits));
        if ids.insert(id) {
            return id;
        }
    }
}

/// A user name from a leaked combo list.
pub(crate) fn leaked_name(rng: &mut impl Rng) -> String {
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

/// The machine clients: service clients on the first API, partners and batch jobs spread
/// over the APIs.
fn clients(cfg: &GeneratorConfig, apis: &[ApiKind]) -> Vec<ClientProfile> {
    let mut out = Vec::new();
    for i in 0..cfg.service_clients {
        let mut rng = stream(cfg.seed, STREAM_CLIENTS, i as u64);
        let api = apis[i % apis.len()];
        let name = SERVICE_NAMES
            .get(i)
            .map_or_else(|| format!("svc-partner-{i}"), |n| format!("svc-{n}"));
        let ip = net::addr_among(&mut rng, &net::CLOUDS[..2]);
        let payments = (0..rng.random_range(15..50))
            .map(|_| uuid_v4(&mut rng))
            .collect();
        out.push(ClientProfile {
            api,
            kind: ClientKind::Service,
            name,
            api_key: None,
            ip,
            user_agent: SERVICE_UA[i % SERVICE_UA.len()],
            period: rng.random_range(2.0..6.0),
            objects: Vec::new(),
            payments,
        });
    }
    for i in 0..cfg.partners {
        let mut rng = stream(cfg.seed, STREAM_CLIENTS, 1_000_000 + i as u64);
        let api = apis[i % apis.len()];
        let base = PARTNER_NAMES[i % PARTNER_NAMES.len()];
        let name = if i < PARTNER_NAMES.len() {
            format!("tpp-{base}")
        } else {
            format!("tpp-{base}-{i}")
        };
        // Affiliates of the shop use API keys; the others client credentials.
        let api_key = (api == ApiKind::Retail)
            .then(|| format!("pk_live_{:024x}", rng.random::<u128>() >> 32));
        let consents = match api {
            ApiKind::Bank => (0..rng.random_range(40..400))
                .map(|_| rng.random_range(1_000_000..100_000_000))
                .collect(),
            ApiKind::Retail => Vec::new(),
            ApiKind::Saas => (0..rng.random_range(3..20))
                .map(|_| rng.random_range(100_000..1_000_000))
                .collect(),
        };
        out.push(ClientProfile {
            api,
            kind: ClientKind::Partner,
            name,
            api_key,
            ip: net::addr_among(&mut rng, &net::CLOUDS),
            user_agent: SERVICE_UA[rng.random_range(0..SERVICE_UA.len())],
            period: rng.random_range(10.0..30.0),
            objects: consents,
            payments: Vec::new(),
        });
    }
    for i in 0..cfg.batch_jobs {
        let mut rng = stream(cfg.seed, STREAM_CLIENTS, 2_000_000 + i as u64);
        let api = apis[i % apis.len()];
        let objects = (0..rng.random_range(200..2_000))
            .map(|_| rng.random_range(1_000_000..100_000_000))
            .collect();
        out.push(ClientProfile {
            api,
            kind: ClientKind::Batch,
            name: format!("batch-{}-export-{i}", api.as_str()),
            api_key: None,
            ip: net::addr_among(&mut rng, &net::CLOUDS),
            user_agent: "batch-runner/1.4 (cron)",
            period: rng.random_range(0.0..3.0),
            objects,
            payments: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_six_to_eight_digits_and_not_sequential() {
        let population = Population::new(&GeneratorConfig::default());
        let ids: Vec<u64> = population
            .users
            .iter()
            .flat_map(|u| u.objects.iter().copied())
            .collect();
        assert!(ids.iter().all(|&id| (100_000..100_000_000).contains(&id)));
        let unique: HashSet<u64> = ids.iter().copied().collect();
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
    fn large_populations_have_unique_names_and_realistic_changes() {
        let cfg = GeneratorConfig {
            users: 30_000,
            duration_secs: 7 * 86_400,
            traffic: TrafficModel::Realistic,
            apis: vec![ApiKind::Bank, ApiKind::Retail, ApiKind::Saas],
            partners: 3,
            batch_jobs: 3,
            ..GeneratorConfig::default()
        };
        let p = Population::new(&cfg);
        assert_eq!(p.names.len(), 30_000);
        let travellers = p.users.iter().filter(|u| u.trip.is_some()).count();
        assert!((1_000..3_500).contains(&travellers), "{travellers}");
        let new_phones = p.users.iter().filter(|u| u.new_agent.is_some()).count();
        assert!((100..800).contains(&new_phones), "{new_phones}");
        for api in [ApiKind::Bank, ApiKind::Retail, ApiKind::Saas] {
            assert!(p.users.iter().filter(|u| u.api == api).count() > 9_000);
        }
        // Colleagues share office addresses; home, carrier and office are in one country.
        let offices: HashSet<IpAddr> = p.users.iter().map(|u| u.office_ip).collect();
        assert!(offices.len() < 1_300, "{}", offices.len());
        for u in &p.users {
            let home = net::network_of(u.home_ip).map(|n| n.country);
            assert_eq!(home, Some(u.carrier.country));
            assert_eq!(home, net::network_of(u.office_ip).map(|n| n.country));
        }
        assert_eq!(p.clients.len(), 5 + 3 + 3);
        let keyed = p.clients.iter().filter(|c| c.api_key.is_some()).count();
        assert_eq!(keyed, 1, "the retail partner uses an API key");
    }

    #[test]
    fn another_population_never_reuses_names() {
        let a = Population::new(&GeneratorConfig::default());
        let b = Population::new(&GeneratorConfig {
            population: 2,
            ..GeneratorConfig::default()
        });
        assert!(a.names.is_disjoint(&b.names));
        assert!(b.users.iter().all(|u| u.subject.contains("@p2.")));
    }
}
