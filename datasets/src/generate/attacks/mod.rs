//! Attack scenarios. Each is an actor with an intensity from 0 (subtle: slow, spread over
//! many addresses, the victim's own device and country) to 1 (loud: fast, from hosting
//! and Tor networks, with scripting tools' user agents); 0.5 is the classic setting the
//! demo uses. Planning happens up front, in a fixed order, so campaign ids, victims and
//! attacker addresses depend on the configuration alone.

mod access;
mod auth;
mod multistep;
mod volume;

use std::collections::HashSet;
use std::net::IpAddr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::ApiKind;
use super::net::{self, Network};
use super::population::ClientKind;
use super::rng::{lerp_log, pick, stream, STREAM_ATTACK, STREAM_PLAN};
use super::users::ForcedSession;
use super::{Actor, AttackKind, AttackSpec, CampaignDraft, GeneratorConfig, Shared, World};

/// How far ahead of `now` an attack step emits before yielding, so that a botnet's
/// minutes of traffic never sit in memory at once.
pub(super) const CHUNK_MS: i64 = 5_000;

/// What planning produced: the attack actors with their first wake-up, and the sessions
/// victims must have.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    pub actors: Vec<(Option<i64>, Box<dyn Actor>)>,
    pub forced_sessions: Vec<ForcedSession>,
}

/// What every attack knows about itself.
#[derive(Debug)]
pub(super) struct Common {
    pub id: u32,
    /// Intensity, 0 (subtle) to 1 (loud).
    pub x: f64,
    pub start: i64,
    /// Planned end; the labelled events may stop a little earlier or later.
    pub end: i64,
    pub api: ApiKind,
    pub rng: ChaCha8Rng,
}

impl Common {
    pub fn label(&self) -> Option<u32> {
        Some(self.id)
    }

    /// A gap between requests: `base_ms` (a range) at the classic intensity, `quiet`
    /// times longer when subtle and `loud` times shorter when loud.
    pub fn gap(&mut self, base_ms: (f64, f64), quiet: f64, loud: f64) -> i64 {
        let scale = if self.x <= 0.5 {
            lerp_log(quiet, 1.0, self.x * 2.0)
        } else {
            lerp_log(1.0, 1.0 / loud, (self.x - 0.5) * 2.0)
        };
        let (lo, hi) = base_ms;
        super::rng::ms(self.rng.random_range(lo..hi) * scale).max(1)
    }
}

/// Planning state.
struct Planner<'a> {
    world: &'a World,
    shared: &'a mut Shared,
    rng: ChaCha8Rng,
    next_id: u32,
    /// Users already cast as victims or insiders.
    cast: HashSet<usize>,
    names: HashSet<String>,
    out: Planned,
}

/// Plans every attack of `cfg`: the classic mix first (replays, BOLA walks, stuffing runs,
/// in that order), then the scenarios.
pub(crate) fn plan(cfg: &GeneratorConfig, world: &World, shared: &mut Shared) -> Planned {
    let mut specs: Vec<AttackSpec> = Vec::new();
    let mix = [
        (AttackKind::TokenReplay, cfg.attacks.token_replay),
        (AttackKind::Bola, cfg.attacks.bola),
        (
            AttackKind::CredentialStuffing,
            cfg.attacks.credential_stuffing,
        ),
    ];
    for (kind, n) in mix {
        for _ in 0..n {
            specs.push(AttackSpec::new(kind, 0.5));
        }
    }
    for s in &cfg.scenarios {
        for _ in 0..s.count {
            specs.push(s.clone());
        }
    }
    let mut p = Planner {
        world,
        shared,
        rng: stream(cfg.seed, STREAM_PLAN, 0),
        next_id: 1,
        cast: HashSet::new(),
        names: HashSet::new(),
        out: Planned::default(),
    };
    let apis = cfg.api_list();
    for spec in specs {
        let x = spec.intensity.clamp(0.0, 1.0);
        let api = spec.api.unwrap_or_else(|| preferred_api(spec.kind, &apis));
        let len = spec.duration_secs.map_or_else(
            || default_duration(spec.kind, x, &mut p.rng),
            |s| s.saturating_mul(1000) as i64,
        );
        let window = match spec.start_secs {
            Some(s) => {
                let start = world.start_ms.saturating_add(s.saturating_mul(1000) as i64);
                Some((start, start.saturating_add(len).min(world.end_ms - 1)))
            }
            None => place(&mut p.rng, world, len),
        };
        let Some((start, end)) = window else {
            continue;
        };
        if start >= world.end_ms {
            continue;
        }
        p.add(spec.kind, x, api, start, end);
    }
    p.out
}

/// The API a kind suits best among the configured ones.
fn preferred_api(kind: AttackKind, apis: &[ApiKind]) -> ApiKind {
    let order: &[ApiKind] = match kind {
        AttackKind::Scraping | AttackKind::BusinessLogic | AttackKind::Ddos => {
            &[ApiKind::Retail, ApiKind::Bank, ApiKind::Saas]
        }
        AttackKind::Insider | AttackKind::Exfiltration => {
            &[ApiKind::Saas, ApiKind::Bank, ApiKind::Retail]
        }
        _ => &[ApiKind::Bank, ApiKind::Saas, ApiKind::Retail],
    };
    order
        .iter()
        .copied()
        .find(|a| apis.contains(a))
        .unwrap_or(ApiKind::Bank)
}

/// How long a kind lasts by default at intensity `x`: minutes when loud, hours when
/// subtle. At 0.5 the classic kinds keep the lengths the demo was tuned with.
fn default_duration(kind: AttackKind, x: f64, rng: &mut impl Rng) -> i64 {
    let (lo, hi, quiet): (i64, i64, f64) = match kind {
        AttackKind::TokenReplay => (180, 300, 2.5),
        AttackKind::Bola => (270, 330, 8.0),
        AttackKind::CredentialStuffing => (220, 260, 40.0),
        AttackKind::BruteForce => (200, 300, 16.0),
        AttackKind::Scraping => (480, 720, 6.0),
        AttackKind::Exfiltration => (480, 720, 6.0),
        AttackKind::BusinessLogic => (1_200, 1_800, 4.0),
        AttackKind::Ddos => (200, 300, 4.0),
        AttackKind::ParameterTampering => (240, 360, 8.0),
        AttackKind::MultiStep => (7_200, 10_800, 2.0),
        AttackKind::Insider => (1_800, 2_700, 4.0),
        AttackKind::CompromisedClient => (480, 720, 4.0),
    };
    let base = rng.random_range(lo..=hi) as f64 * 1000.0;
    let scale = if x <= 0.5 {
        lerp_log(quiet, 1.0, x * 2.0)
    } else {
        lerp_log(1.0, 0.6, (x - 0.5) * 2.0)
    };
    let len = super::rng::ms(base * scale);
    if kind == AttackKind::TokenReplay {
        // Within one access token's life: the stolen token is not refreshed.
        len.min(13 * 60_000)
    } else {
        len
    }
}

/// A random window of `len_ms` in the middle three fifths of the duration (clamped to
/// half of it).
fn place(rng: &mut impl Rng, world: &World, len_ms: i64) -> Option<(i64, i64)> {
    let d = world.duration_ms();
    if d < 10 {
        return None;
    }
    let len = len_ms.min(d / 2).max(1);
    let lo = d / 5;
    let hi = (d / 5 * 4 - len).max(lo);
    let offset = rng.random_range(lo..=hi);
    Some((world.start_ms + offset, world.start_ms + offset + len))
}

impl Planner<'_> {
    fn add(&mut self, kind: AttackKind, x: f64, api: ApiKind, start: i64, end: i64) {
        let id = self.next_id;
        let common = Common {
            id,
            x,
            start,
            end,
            api,
            rng: stream(self.world.seed, STREAM_ATTACK, u64::from(id)),
        };
        let planned = match kind {
            AttackKind::TokenReplay => access::replay(self, common),
            AttackKind::Bola => access::bola(self, common),
            AttackKind::CredentialStuffing => auth::stuffing(self, common),
            AttackKind::BruteForce => auth::brute_force(self, common),
            AttackKind::Scraping => volume::scraping(self, common),
            AttackKind::Exfiltration => access::exfiltration(self, common),
            AttackKind::BusinessLogic => volume::business_logic(self, common),
            AttackKind::Ddos => volume::ddos(self, common),
            AttackKind::ParameterTampering => access::tampering(self, common),
            AttackKind::MultiStep => multistep::campaign(self, common),
            AttackKind::Insider => access::insider(self, common),
            AttackKind::CompromisedClient => access::compromised_client(self, common),
        };
        let Some((first, actor, draft)) = planned else {
            return;
        };
        self.shared.drafts.push(CampaignDraft {
            id,
            kind,
            intensity: x,
            ..draft
        });
        self.out.actors.push((Some(first), actor));
        self.next_id += 1;
    }

    /// A user index not yet cast, preferably of `api`.
    fn pick_user(&mut self, rng: &mut impl Rng, api: ApiKind) -> Option<usize> {
        let users = &self.world.population.users;
        if users.len() <= self.cast.len() {
            return None;
        }
        for attempt in 0..10_000 {
            let i = rng.random_range(0..users.len());
            if self.cast.contains(&i) {
                continue;
            }
            if users[i].api == api || attempt > 200 {
                self.cast.insert(i);
                return Some(i);
            }
        }
        None
    }

    /// A service client's index, if there is one.
    fn pick_service_client(&mut self, rng: &mut impl Rng) -> Option<usize> {
        let services: Vec<usize> = self
            .world
            .population
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == ClientKind::Service)
            .map(|(i, _)| i)
            .collect();
        (!services.is_empty()).then(|| *pick(rng, &services))
    }

    /// An address no other campaign uses, in one of `nets`.
    fn attacker_ip(&mut self, rng: &mut impl Rng, nets: &[Network]) -> IpAddr {
        for _ in 0..1_000 {
            let ip = net::addr_among(rng, nets);
            if self.shared.attacker_ips.insert(ip) {
                return ip;
            }
        }
        net::addr_among(rng, nets)
    }

    /// `n` distinct addresses for a campaign: loud ones from hosting and Tor, subtle ones
    /// (a residential proxy service) from home and mobile networks in many countries.
    fn attacker_ips(
        &mut self,
        rng: &mut impl Rng,
        n: usize,
        residential_share: f64,
    ) -> Vec<IpAddr> {
        (0..n)
            .map(|_| {
                if rng.random_bool(residential_share.clamp(0.0, 1.0)) {
                    let nets = residential(rng);
                    self.attacker_ip(rng, std::slice::from_ref(nets))
                } else {
                    self.attacker_ip(rng, &net::ATTACKERS)
                }
            })
            .collect()
    }

    /// A new account name for an attacker who signs up.
    fn fresh_account(&mut self, rng: &mut impl Rng) -> String {
        loop {
            let name = super::population::leaked_name(rng)
                .replace(".test", ".net")
                .replace(".invalid", ".org");
            if !self.world.population.names.contains(&name) && self.names.insert(name.clone()) {
                return name;
            }
        }
    }
}

/// A network a residential proxy exit sits in.
fn residential(rng: &mut impl Rng) -> &'static Network {
    let v4_carriers = &net::CARRIERS[..5];
    let n = net::BROADBAND.len() + v4_carriers.len() + net::PROXY_EXTRA.len();
    let i = rng.random_range(0..n);
    net::BROADBAND
        .iter()
        .chain(v4_carriers)
        .chain(&net::PROXY_EXTRA)
        .nth(i)
        .unwrap_or(&net::PROXY_EXTRA[0])
}

/// User agents of attack tools and of what they pretend to be.
pub(super) const TOOL_UA: [&str; 4] = [
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Go-http-client/1.1",
];
pub(super) const STUFFING_UA: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36",
];
pub(super) const SCRAPER_UA: [&str; 3] = [
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "python-httpx/0.27.0",
    "Mozilla/5.0 (compatible; HeadlessChrome/124.0.0.0)",
];

/// Records the addresses a campaign actually used (in order of first use) as its keys,
/// once it is over: a proxy pool is drawn from, not exhausted.
pub(super) fn used_addresses_as_keys(shared: &mut Shared, id: u32, used: &[IpAddr]) {
    let Some(d) = shared.draft(id) else {
        return;
    };
    let mut keys: Vec<String> = Vec::with_capacity(used.len());
    let mut seen = HashSet::new();
    for ip in used {
        if seen.insert(*ip) {
            keys.push(format!("ip:{ip}"));
        }
    }
    if keys.is_empty() {
        return;
    }
    if d.identity_key.starts_with("ip:") {
        d.identity_key = keys.remove(0);
        d.keys = keys;
    } else {
        d.keys = keys;
    }
}

/// What an attack constructor returns: its first wake-up, the actor and its draft
/// (id, kind and intensity are filled in by the planner).
pub(super) type Built = Option<(i64, Box<dyn Actor>, CampaignDraft)>;

/// A draft with the fields every kind sets.
pub(super) fn draft(
    identity_key: String,
    keys: Vec<String>,
    related: Vec<String>,
    description: String,
) -> CampaignDraft {
    CampaignDraft {
        id: 0,
        kind: AttackKind::Bola,
        intensity: 0.0,
        identity_key,
        keys,
        related_keys: related,
        description,
    }
}

/// An attack that emits all its events in one step (a few hundred to a few thousand):
/// simpler than a state machine, and memory stays bounded by the campaign's size.
pub(super) struct Script {
    pub name: &'static str,
    pub run: Option<ScriptFn>,
}

/// The body of a [`Script`].
pub(super) type ScriptFn = Box<dyn FnOnce(&World, &mut Shared, &mut super::emit::Emitter)>;

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("done", &self.run.is_none())
            .finish()
    }
}

impl Actor for Script {
    fn step(
        &mut self,
        _now: i64,
        world: &World,
        shared: &mut Shared,
        out: &mut super::emit::Emitter,
    ) -> Option<i64> {
        if let Some(run) = self.run.take() {
            run(world, shared, out);
        }
        None
    }
}

/// A [`Script`] actor.
pub(super) fn script(
    name: &'static str,
    run: impl FnOnce(&World, &mut Shared, &mut super::emit::Emitter) + 'static,
) -> Box<dyn Actor> {
    Box::new(Script {
        name,
        run: Some(Box::new(run)),
    })
}

/// The `k`-th call of a tour through a user's own data (what someone holding their
/// session reads).
pub(super) fn own_data_call(
    world: &World,
    rng: &mut impl Rng,
    user: &super::population::UserProfile,
    k: u64,
) -> super::catalog::Call {
    use super::catalog::{self as c, Call};
    use super::population::transaction_id;
    match user.api {
        ApiKind::Bank => {
            let accounts = &user.objects;
            let a = accounts
                .get(usize::try_from(k / 12).unwrap_or(0) % accounts.len().max(1))
                .copied()
                .unwrap_or(1_000_000);
            match k % 12 {
                0 => Call::fixed(&c::ACCOUNTS, 200),
                1 => Call::with_ids(&c::ACCOUNT, &[&a], 200),
                2 | 3 => {
                    let mut call = Call::with_ids(&c::TRANSACTIONS, &[&a], 200);
                    call.size_factor = 1.6;
                    call
                }
                _ => Call::with_ids(
                    &c::TRANSACTION,
                    &[&a, &transaction_id(a, rng.random_range(0..150))],
                    200,
                ),
            }
        }
        ApiKind::Retail => match (k % 6, user.objects.is_empty()) {
            (0, _) => Call::fixed(&c::SHOP_ACCOUNT, 200),
            (1, _) | (_, true) => Call::fixed(&c::ORDERS, 200),
            (5, false) if !user.payments.is_empty() => {
                Call::with_ids(&c::GIFT_CARD, &[&user.payments[0]], 200)
            }
            _ => {
                let o = user.objects[rng.random_range(0..user.objects.len())];
                Call::with_ids(&c::ORDER, &[&o], 200)
            }
        },
        ApiKind::Saas => {
            let Some(org) = world.population.orgs.get(user.org) else {
                return Call::fixed(&c::ME, 200);
            };
            let p = org.projects[usize::try_from(k / 8).unwrap_or(0) % org.projects.len().max(1)];
            match k % 8 {
                0 => Call::fixed(&c::ME, 200),
                1 => Call::with_ids(&c::PROJECTS, &[&org.workspace], 200),
                2 => Call::with_ids(&c::DOCUMENTS, &[&p], 200),
                _ => Call::with_ids(&c::DOCUMENT, &[&org.document(p, k)], 200),
            }
        }
    }
}

/// A read of someone else's object that the API allows (an insider's or a privileged
/// client's access): another customer's account, order or document.
pub(super) fn foreign_object_call(
    world: &World,
    rng: &mut impl Rng,
    api: ApiKind,
    k: u64,
) -> super::catalog::Call {
    use super::catalog::{self as c, Call};
    let users = &world.population.users;
    match api {
        ApiKind::Bank => {
            let owner = (!users.is_empty()).then(|| &users[rng.random_range(0..users.len())]);
            let account = owner
                .filter(|u| u.api == ApiKind::Bank)
                .and_then(|u| u.objects.first().copied())
                .unwrap_or_else(|| rng.random_range(1_000_000..10_000_000));
            if k % 3 == 2 {
                Call::with_ids(&c::TRANSACTIONS, &[&account], 200)
            } else {
                Call::with_ids(&c::ACCOUNT, &[&account], 200)
            }
        }
        ApiKind::Retail => Call::with_ids(
            &c::ORDER,
            &[&rng.random_range(10_000_000..100_000_000u64)],
            200,
        ),
        ApiKind::Saas => {
            let orgs = &world.population.orgs;
            match (!orgs.is_empty()).then(|| &orgs[usize::try_from(k).unwrap_or(0) % orgs.len()]) {
                Some(org) => {
                    let p = org.projects
                        [usize::try_from(k / 7).unwrap_or(0) % org.projects.len().max(1)];
                    Call::with_ids(&c::DOCUMENT, &[&org.document(p, k)], 200)
                }
                None => Call::with_ids(
                    &c::DOCUMENT,
                    &[&rng.random_range(1_000_000..10_000_000u64)],
                    200,
                ),
            }
        }
    }
}
