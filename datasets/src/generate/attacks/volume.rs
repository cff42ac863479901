//! Attacks by volume: scraping, business-logic abuse at per-call-plausible rates, and a
//! botnet's DDoS.

use std::net::IpAddr;

use outrider_ingest::Identity;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::super::catalog::{self as cat, ApiKind, Call, Endpoint};
use super::super::emit::Emitter;
use super::super::net;
use super::super::population::{product_id, transaction_id, WEB_UA};
use super::super::rng::{exponential, lerp_log, ms, pick};
use super::super::users::user_login;
use super::super::{Actor, Shared, World};
use super::{
    draft, residential, script, used_addresses_as_keys, Built, Common, Planner, CHUNK_MS,
    SCRAPER_UA, STUFFING_UA, TOOL_UA,
};

/// Crawling list and detail endpoints.
///
/// On the shop: an anonymous crawler walks the whole product catalogue (loud: a few
/// hosting addresses, ten or more requests a second; subtle: a rotating residential pool
/// with browser user agents, one request every few seconds). On the bank and the SaaS
/// API: a signed-up account pages through everything its session can list.
pub(super) fn scraping(p: &mut Planner<'_>, mut c: Common) -> Built {
    let loud = c.x >= 0.5;
    if c.api != ApiKind::Retail {
        return account_crawl(p, c);
    }
    let ips: Vec<IpAddr> = if loud {
        let n = c.rng.random_range(1..=3);
        (0..n)
            .map(|_| p.attacker_ip(&mut c.rng, &net::ATTACKERS))
            .collect()
    } else {
        let n = lerp_log(200.0, 20.0, c.x * 2.0).round() as usize;
        p.attacker_ips(&mut c.rng, n.max(2), 1.0)
    };
    let key = format!("ip:{}", ips[0]);
    let keys: Vec<String> = ips[1..].iter().map(|ip| format!("ip:{ip}")).collect();
    let description = format!(
        "scraping: the product catalogue crawled from {} address(es)",
        ips.len()
    );
    let start = c.start;
    let actor = script("scraping", move |_world, shared, out| {
        let label = c.label();
        let mut rank = c.rng.random_range(0..1_000u64);
        let mut t = c.start;
        let mut n = 0u64;
        let anonymous = Identity::default();
        let mut used = Vec::new();
        while t <= c.end {
            let ip = *pick(&mut c.rng, &ips);
            if out.in_range(t) {
                used.push(ip);
            }
            let ua = if loud {
                *pick(&mut c.rng, &SCRAPER_UA)
            } else {
                *pick(&mut c.rng, &WEB_UA)
            };
            let call = if n % 20 == 0 {
                Call::fixed(&cat::PRODUCTS, 200)
            } else {
                rank += 1;
                let status = if c.rng.random_bool(0.02) { 404 } else { 200 };
                if c.rng.random_bool(0.25) {
                    Call::with_ids(&cat::REVIEWS, &[&product_id(rank)], status)
                } else {
                    Call::with_ids(&cat::PRODUCT, &[&product_id(rank)], status)
                }
            };
            let done = out.api(&mut c.rng, t, call, ip, ua, &anonymous, label);
            n += 1;
            t = if loud {
                t + c.gap((200.0, 700.0), 1.0, 5.0)
            } else {
                done + c.gap((1_500.0, 5_000.0), 3.0, 1.0)
            };
        }
        if let Some(d) = shared.draft(c.id) {
            d.description = format!("{}: {n} requests", d.description);
        }
        used_addresses_as_keys(shared, c.id, &used);
    });
    Some((start, actor, draft(key, keys, Vec::new(), description)))
}

/// A signed-up account paging through everything it can list, fast.
fn account_crawl(p: &mut Planner<'_>, mut c: Common) -> Built {
    let attacker = p.fresh_account(&mut c.rng);
    let loud = c.x >= 0.5;
    let ip = if loud {
        p.attacker_ip(&mut c.rng, &net::ATTACKERS)
    } else {
        let nets = residential(&mut c.rng);
        p.attacker_ip(&mut c.rng, std::slice::from_ref(nets))
    };
    let ua = if loud {
        *pick(&mut c.rng, &SCRAPER_UA)
    } else {
        *pick(&mut c.rng, &WEB_UA)
    };
    let own: u64 = c.rng.random_range(1_000_000..10_000_000);
    let org = c.rng.random_range(0..p.world.population.orgs.len().max(1));
    let login_at = (c.start - c.rng.random_range(20_000..60_000)).max(p.world.start_ms);
    let key = format!("sub:{attacker}");
    let description =
        format!("scraping: {attacker} from {ip} pages through everything it can list");
    let client_id = c.api.clients().0;
    let actor = script("scraping", move |world, _shared, out| {
        let (identity, done) = user_login(
            &mut c.rng, out, login_at, &attacker, client_id, ip, ua, None,
        );
        let mut t = c.start.max(done);
        let mut k = 0u64;
        while t <= c.end {
            let call = match (c.api, world.population.orgs.get(org)) {
                (ApiKind::Saas, Some(o)) => {
                    let project =
                        o.projects[usize::try_from(k / 30).unwrap_or(0) % o.projects.len().max(1)];
                    match k % 30 {
                        0 => Call::fixed(&cat::SEARCH, 200),
                        1 => Call::with_ids(&cat::DOCUMENTS, &[&project], 200),
                        _ => Call::with_ids(&cat::DOCUMENT, &[&o.document(project, k)], 200),
                    }
                }
                _ => {
                    if k % 10 == 0 {
                        Call::with_ids(&cat::TRANSACTIONS, &[&own], 200)
                    } else {
                        Call::with_ids(&cat::TRANSACTION, &[&own, &transaction_id(own, k)], 200)
                    }
                }
            };
            let label = c.label();
            let done = out.api(&mut c.rng, t, call, ip, ua, &identity, label);
            t = done + c.gap((200.0, 900.0), 6.0, 4.0);
            k += 1;
        }
    });
    Some((
        login_at,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// Abuse of the business logic at a pace each call finds plausible, sustained: coupon
/// codes, gift-card numbers or limited stock on the shop, small payments on the bank,
/// invitations on the SaaS API.
pub(super) fn business_logic(p: &mut Planner<'_>, mut c: Common) -> Built {
    let attacker = p.fresh_account(&mut c.rng);
    let loud = c.x >= 0.5;
    let ip = if loud {
        p.attacker_ip(&mut c.rng, &net::ATTACKERS)
    } else {
        let nets = residential(&mut c.rng);
        p.attacker_ip(&mut c.rng, std::slice::from_ref(nets))
    };
    let ua = *pick(&mut c.rng, &WEB_UA);
    let variant = c.rng.random_range(0..3u8);
    let workspace = p
        .world
        .population
        .orgs
        .first()
        .map_or(10_000, |o| o.workspace);
    let login_at = (c.start - c.rng.random_range(20_000..120_000)).max(p.world.start_ms);
    let what = match (c.api, variant) {
        (ApiKind::Retail, 0) => "coupon codes",
        (ApiKind::Retail, 1) => "gift-card numbers",
        (ApiKind::Retail, _) => "limited-stock purchases",
        (ApiKind::Bank, _) => "small payments",
        (ApiKind::Saas, _) => "workspace invitations",
    };
    let key = format!("sub:{attacker}");
    let description = format!("business-logic abuse: {attacker} from {ip} hammers {what}");
    let client_id = c.api.clients().0;
    let actor = script("business_logic", move |_world, _shared, out| {
        let label = c.label();
        let (identity, done) = user_login(
            &mut c.rng, out, login_at, &attacker, client_id, ip, ua, None,
        );
        let mut t = c.start.max(done);
        let mut k = 0u64;
        while t <= c.end {
            let r: f64 = c.rng.random();
            let calls: Vec<Call> = match (c.api, variant) {
                (ApiKind::Retail, 0) => {
                    vec![Call::fixed(&cat::COUPON, if r < 0.88 { 422 } else { 200 })]
                }
                (ApiKind::Retail, 1) => {
                    let card = c
                        .rng
                        .random_range(6_000_000_000_000_000u64..7_000_000_000_000_000);
                    vec![Call::with_ids(
                        &cat::GIFT_CARD,
                        &[&card],
                        if r < 0.97 { 404 } else { 200 },
                    )]
                }
                (ApiKind::Retail, _) => vec![
                    Call::fixed(&cat::CART_ADD, 201),
                    Call::fixed(&cat::CHECKOUT, if r < 0.03 { 422 } else { 201 }),
                ],
                (ApiKind::Bank, _) => {
                    let mut v = vec![Call::fixed(
                        &cat::CREATE_PAYMENT,
                        if r < 0.05 { 422 } else { 201 },
                    )];
                    if k % 3 == 0 {
                        v.push(Call::with_ids(
                            &cat::PAYMENT,
                            &[&super::super::rng::uuid_v4(&mut c.rng)],
                            200,
                        ));
                    }
                    v
                }
                (ApiKind::Saas, _) => vec![Call::with_ids(
                    &cat::INVITE,
                    &[&workspace],
                    if r < 0.05 { 422 } else { 201 },
                )],
            };
            for call in calls {
                t = out.api(&mut c.rng, t, call, ip, ua, &identity, label)
                    + c.rng.random_range(200..1_500);
            }
            t += c.gap((4_000.0, 15_000.0), 3.0, 6.0);
            k += 1;
        }
    });
    Some((
        login_at,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// A botnet flooding an expensive endpoint: from 30 bots each calling every 20 s
/// (subtle) to 1,500 bots several times a second (loud). Emitted a few seconds at a time.
pub(super) fn ddos(p: &mut Planner<'_>, mut c: Common) -> Built {
    let bots = lerp_log(30.0, 1_500.0, c.x).round() as usize;
    let ips = p.attacker_ips(&mut c.rng, bots.max(2), 0.7);
    let mean_gap_ms = lerp_log(20_000.0, 400.0, c.x);
    let next: Vec<i64> = ips
        .iter()
        .map(|_| c.start + ms(c.rng.random::<f64>() * mean_gap_ms))
        .collect();
    let agents: Vec<&'static str> = ips
        .iter()
        .map(|_| {
            if c.rng.random_bool(0.8) {
                *pick(&mut c.rng, &STUFFING_UA)
            } else {
                TOOL_UA[3]
            }
        })
        .collect();
    let (endpoint, status): (&'static Endpoint, u16) = match c.api {
        ApiKind::Retail => (&cat::PRODUCTS, 200),
        ApiKind::Bank => (&cat::TOKEN, 400),
        ApiKind::Saas => (&cat::SEARCH, 401),
    };
    let key = format!("ip:{}", ips[0]);
    let keys: Vec<String> = ips[1..].iter().map(|ip| format!("ip:{ip}")).collect();
    let description = format!(
        "DDoS: {} bots flood {} {} about every {:.1} s each",
        ips.len(),
        endpoint.method,
        endpoint.route,
        mean_gap_ms / 1000.0
    );
    let start = c.start;
    let actor = Box::new(Ddos {
        c,
        ips,
        agents,
        next,
        mean_gap_ms,
        endpoint,
        status,
    });
    Some((start, actor, draft(key, keys, Vec::new(), description)))
}

#[derive(Debug)]
struct Ddos {
    c: Common,
    ips: Vec<IpAddr>,
    agents: Vec<&'static str>,
    /// Each bot's next request.
    next: Vec<i64>,
    mean_gap_ms: f64,
    endpoint: &'static Endpoint,
    status: u16,
}

impl Actor for Ddos {
    fn step(
        &mut self,
        now: i64,
        _world: &World,
        _shared: &mut Shared,
        out: &mut Emitter,
    ) -> Option<i64> {
        let horizon = (now + CHUNK_MS).min(self.c.end + 1);
        let anonymous = Identity::default();
        let label = self.c.label();
        let loud = self.c.x > 0.6;
        let overload_from = self.c.start + (self.c.end - self.c.start) / 5;
        let rng: &mut ChaCha8Rng = &mut self.c.rng;
        for (i, t) in self.next.iter_mut().enumerate() {
            while *t < horizon {
                // Under a loud flood the service starts shedding load.
                let status = if loud && *t > overload_from && rng.random_bool(0.3) {
                    if rng.random_bool(0.5) {
                        503
                    } else {
                        429
                    }
                } else {
                    self.status
                };
                out.api(
                    rng,
                    *t,
                    Call::fixed(self.endpoint, status),
                    self.ips[i],
                    self.agents[i],
                    &anonymous,
                    label,
                );
                *t += ms(exponential(rng, self.mean_gap_ms)).max(50);
            }
        }
        (horizon <= self.c.end).then_some(horizon)
    }
}
