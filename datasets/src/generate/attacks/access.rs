//! Attacks on data access: stolen-token replay, BOLA walks, exfiltration, parameter
//! tampering, an insider, a compromised service client.

use std::net::IpAddr;

use outrider_ingest::{Identity, TokenEventKind};
use rand::Rng;

use super::super::catalog::{self as cat, fill, ApiKind, Call, Endpoint};
use super::super::emit::TokenRecord;
use super::super::net;
use super::super::population::{transaction_id, WEB_UA};
use super::super::rng::{hex_id, lerp_log, pick};
use super::super::users::{refresh, user_login, ForcedSession, USER_TOKEN_TTL_MS};
use super::{
    draft, foreign_object_call, own_data_call, residential, script, Built, Common, Planner, TOOL_UA,
};

/// A victim's token used from another network, alongside the victim.
///
/// Loud (intensity >= 0.4): from hosting or Tor with a scripting tool's user agent.
/// Subtle: from a residential address in the victim's country, with the victim's own
/// user agent, reading less and slower.
pub(super) fn replay(p: &mut Planner<'_>, mut c: Common) -> Built {
    let victim = p.pick_user(&mut c.rng, c.api)?;
    let world = p.world;
    let user = &world.population.users[victim];
    let lead = c.rng.random_range(60_000..=240_000);
    let tail = c.rng.random_range(60_000..=180_000);
    p.out.forced_sessions.push(ForcedSession {
        user: victim,
        session_start: (c.start - lead).max(p.world.start_ms),
        min_end: c.end + tail,
    });
    let (ip, ua): (IpAddr, String) = if c.x >= 0.4 {
        let ip = p.attacker_ip(&mut c.rng, &net::ATTACKERS);
        (ip, (*pick(&mut c.rng, &TOOL_UA[..3])).to_owned())
    } else {
        let home = net::network_of(user.home_ip);
        let nets: Vec<net::Network> = net::BROADBAND
            .iter()
            .filter(|n| {
                Some(n.country) == home.map(|h| h.country)
                    && Some(n.prefix) != home.map(|h| h.prefix)
            })
            .copied()
            .collect();
        let ip = if nets.is_empty() {
            p.attacker_ip(&mut c.rng, &net::PROXY_EXTRA)
        } else {
            p.attacker_ip(&mut c.rng, &nets)
        };
        (ip, user.agent_at(c.start).to_owned())
    };
    let subject = user.subject.clone();
    let client_id = user.client_id();
    let description = format!(
        "token replay: a token of {subject} reused from {ip} ({ua}) while the victim is active"
    );
    let key = format!("sub:{subject}");
    let start = c.start;
    let actor = script("token_replay", move |world, shared, out| {
        let Some(token) = shared.stolen_tokens.get(&victim).cloned() else {
            return;
        };
        let Some(user) = world.population.users.get(victim) else {
            return;
        };
        let identity = Identity {
            subject: Some(user.subject.clone()),
            client_id: Some(client_id.to_owned()),
            token_id: Some(token),
            ..Identity::default()
        };
        let mut t = c.start;
        let label = c.label();
        let details = if c.x >= 0.4 { (6, 14) } else { (2, 5) };
        if user.api != ApiKind::Bank {
            let mut k = 0;
            while t <= c.end {
                let call = own_data_call(world, &mut c.rng, user, k);
                let done = out.api(&mut c.rng, t, call, ip, &ua, &identity, label);
                t = done + c.gap((1_500.0, 5_000.0), 4.0, 4.0);
                k += 1;
            }
            return;
        }
        for call in [
            Call::fixed(&cat::ACCOUNTS, 200),
            Call::fixed(&cat::PROFILE, 200),
        ] {
            let done = out.api(&mut c.rng, t, call, ip, &ua, &identity, label);
            t = done + c.gap((1_500.0, 5_000.0), 4.0, 4.0);
        }
        let mut round = 0u64;
        'outer: while t <= c.end {
            for &account in &user.objects {
                if t > c.end {
                    break 'outer;
                }
                let done = out.api(
                    &mut c.rng,
                    t,
                    Call::with_ids(&cat::ACCOUNT, &[&account], 200),
                    ip,
                    &ua,
                    &identity,
                    label,
                );
                t = done + c.gap((1_500.0, 5_000.0), 4.0, 4.0);
                // Page through the history, then open many transactions, deeper each round.
                for _ in 0..c.rng.random_range(2..5) {
                    if t > c.end {
                        break 'outer;
                    }
                    let mut call = Call::with_ids(&cat::TRANSACTIONS, &[&account], 200);
                    call.size_factor = 1.6;
                    let done = out.api(&mut c.rng, t, call, ip, &ua, &identity, label);
                    t = done + c.gap((1_500.0, 5_000.0), 4.0, 4.0);
                }
                for k in 0..c.rng.random_range(details.0..details.1) {
                    if t > c.end {
                        break;
                    }
                    let tx = transaction_id(account, (round * 13 + k) % 150);
                    let call = Call::with_ids(&cat::TRANSACTION, &[&account, &tx], 200);
                    let done = out.api(&mut c.rng, t, call, ip, &ua, &identity, label);
                    t = done + c.gap((800.0, 3_000.0), 4.0, 4.0);
                }
            }
            round += 1;
        }
    });
    Some((
        start,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// An id of the kind a BOLA walk enumerates, and the endpoint it reads.
fn bola_target(api: ApiKind) -> (&'static Endpoint, u64, u64) {
    match api {
        ApiKind::Bank => (&cat::ACCOUNT, 1_000_000, 9_000_000),
        ApiKind::Retail => (&cat::ORDER, 10_000_000, 99_000_000),
        ApiKind::Saas => (&cat::DOCUMENT, 1_000_000, 9_900_000),
    }
}

/// An authenticated account walking other people's object ids: sequential ids (loud and
/// classic) or random ones (subtle), mostly refused with a 403/404 mix.
pub(super) fn bola(p: &mut Planner<'_>, mut c: Common) -> Built {
    let attacker = p.fresh_account(&mut c.rng);
    let ip = if c.x >= 0.3 {
        p.attacker_ip(&mut c.rng, &net::ATTACKERS)
    } else {
        let nets = residential(&mut c.rng);
        p.attacker_ip(&mut c.rng, std::slice::from_ref(nets))
    };
    let ua = *pick(&mut c.rng, &WEB_UA);
    let own = loop {
        let id = c.rng.random_range(1_000_000..10_000_000);
        if !p.world.population.account_ids.contains(&id) {
            break id;
        }
    };
    let login_at = (c.start - c.rng.random_range(30_000..120_000)).max(p.world.start_ms);
    let key = format!("sub:{attacker}");
    let sequential = c.x >= 0.3;
    let description = format!(
        "BOLA walk: {attacker} (own object {own}) from {ip} walks {} ids",
        if sequential { "sequential" } else { "random" }
    );
    let client_id = c.api.clients().0;
    let actor = script("bola", move |_world, shared, out| {
        let label = c.label();
        // An ordinary-looking login and a look at the own account before the walk (not
        // labelled: nothing unusual yet, and the login is keyed by IP).
        let (identity, done) = user_login(
            &mut c.rng, out, login_at, &attacker, client_id, ip, ua, None,
        );
        let mut t = done + c.rng.random_range(500..3_000);
        if c.api == ApiKind::Bank {
            for call in [
                Call::fixed(&cat::ACCOUNTS, 200),
                Call::with_ids(&cat::ACCOUNT, &[&own], 200),
            ] {
                if t >= c.start {
                    break;
                }
                let done = out.api(&mut c.rng, t, call, ip, ua, &identity, None);
                t = done + c.rng.random_range(2_000..8_000);
            }
        }
        let (endpoint, lo, hi) = bola_target(c.api);
        let base: u64 = c.rng.random_range(lo..hi);
        let mut n = base;
        let mut t = c.start;
        let mut walked = 0u64;
        // A few ids the API wrongly lets it read: at random, and surely two early on.
        let sure_reads = [c.rng.random_range(3..30u64), c.rng.random_range(30..60u64)];
        while t <= c.end {
            let r: f64 = c.rng.random();
            let (p200, p403) = if sequential {
                (0.05, 0.5)
            } else {
                (0.03, 0.25)
            };
            let status = if r < p200 || sure_reads.contains(&walked) {
                200
            } else if r < p403 {
                403
            } else {
                404
            };
            let done = out.api(
                &mut c.rng,
                t,
                Call::with_ids(endpoint, &[&n], status),
                ip,
                ua,
                &identity,
                label,
            );
            walked += 1;
            t = done + c.gap((1_000.0, 3_000.0), 25.0, 8.0);
            if c.api == ApiKind::Bank && (status == 200 || c.rng.random_bool(0.25)) && t <= c.end {
                let call = Call::with_ids(&cat::TRANSACTIONS, &[&n], status);
                let done = out.api(&mut c.rng, t, call, ip, ua, &identity, label);
                t = done + c.gap((1_000.0, 3_000.0), 25.0, 8.0);
            }
            n = if !sequential {
                c.rng.random_range(lo..hi)
            } else if c.rng.random_bool(0.08) {
                n + c.rng.random_range(10..500)
            } else if c.rng.random_bool(0.15) {
                n + 2
            } else {
                n + 1
            };
        }
        if let Some(d) = shared.draft(c.id) {
            d.description = format!("{} ({walked} ids from {base})", d.description);
        }
    });
    Some((
        login_at,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// A compromised account pulling far more data than any app screen does: huge pages and
/// bulk exports. Loud: from a hosting network, hundreds of times the usual page.
/// Subtle: from the victim's own address and device, a few times the usual page.
pub(super) fn exfiltration(p: &mut Planner<'_>, mut c: Common) -> Built {
    let victim = p.pick_user(&mut c.rng, c.api)?;
    let world = p.world;
    let user = &world.population.users[victim];
    let loud = c.x >= 0.5;
    let (ip, ua) = if loud {
        (
            p.attacker_ip(&mut c.rng, &net::ATTACKERS),
            (*pick(&mut c.rng, &TOOL_UA)).to_owned(),
        )
    } else {
        (user.home_ip, user.agent_at(c.start).to_owned())
    };
    let factor = lerp_log(6.0, 150.0, c.x);
    let subject = user.subject.clone();
    let key = format!("sub:{subject}");
    let description = format!(
        "exfiltration: {subject}'s session from {ip} pulls pages {factor:.0}x the usual size"
    );
    let start = c.start;
    let actor = script("exfiltration", move |world, _shared, out| {
        let Some(user) = world.population.users.get(victim) else {
            return;
        };
        let label = c.label();
        let client_id = user.client_id();
        let (mut identity, done) = user_login(
            &mut c.rng, out, c.start, &subject, client_id, ip, &ua, label,
        );
        let mut issued = done;
        let mut t = done + 500;
        let mut k = 0u64;
        while t <= c.end {
            if t - issued >= USER_TOKEN_TTL_MS - 30_000 {
                let (token, done) = refresh(
                    &mut c.rng,
                    out,
                    t,
                    Some(&subject),
                    client_id,
                    ip,
                    &ua,
                    label,
                );
                identity.token_id = Some(token);
                issued = done;
                t = done + 200;
            }
            let mut call = bulk_call(world, &mut c.rng, user, k);
            call.size_factor *= if call.endpoint.body.0 > 100_000.0 {
                (factor / 20.0).max(1.0)
            } else {
                factor
            };
            let done = out.api(&mut c.rng, t, call, ip, &ua, &identity, label);
            t = done + c.gap((4_000.0, 12_000.0), 15.0, 4.0);
            k += 1;
        }
    });
    Some((
        start,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// The calls a bulk download makes: list endpoints and exports.
fn bulk_call(
    world: &crate::generate::World,
    rng: &mut impl Rng,
    user: &super::super::population::UserProfile,
    k: u64,
) -> Call {
    match user.api {
        ApiKind::Bank => {
            let a = user
                .objects
                .get(usize::try_from(k).unwrap_or(0) % user.objects.len().max(1))
                .copied()
                .unwrap_or(1_000_000);
            if k % 2 == 0 {
                Call::with_ids(&cat::TRANSACTIONS, &[&a], 200)
            } else {
                Call::with_ids(&cat::STATEMENT, &[&a, &transaction_id(a, k)], 200)
            }
        }
        ApiKind::Retail => Call::fixed(&cat::ORDERS, 200),
        ApiKind::Saas => match world.population.orgs.get(user.org) {
            Some(org) => {
                let p =
                    org.projects[usize::try_from(k / 2).unwrap_or(0) % org.projects.len().max(1)];
                if k % 2 == 0 {
                    Call::with_ids(&cat::DOCUMENTS, &[&p], 200)
                } else {
                    Call::with_ids(&cat::EXPORT, &[&p], 200)
                }
            }
            None => Call::fixed(&cat::SEARCH, if rng.random_bool(0.5) { 200 } else { 404 }),
        },
    }
}

/// Values a tamperer puts where an id belongs.
const TAMPERED: [&str; 12] = [
    "-1",
    "0",
    "99999999999999999999999",
    "1%20OR%201=1",
    "..%2F..%2Fadmin",
    "%27",
    "null",
    "undefined",
    "1e9",
    "0x41",
    "%24%7Bjndi:ldap%7D",
    "%3Cscript%3E",
];

/// An authenticated user sending tampered ids and parameters, between ordinary calls.
pub(super) fn tampering(p: &mut Planner<'_>, mut c: Common) -> Built {
    let attacker = p.fresh_account(&mut c.rng);
    let loud = c.x >= 0.5;
    let ip = if loud {
        p.attacker_ip(&mut c.rng, &net::ATTACKERS)
    } else {
        let nets = residential(&mut c.rng);
        p.attacker_ip(&mut c.rng, std::slice::from_ref(nets))
    };
    let ua = if loud {
        *pick(&mut c.rng, &TOOL_UA)
    } else {
        *pick(&mut c.rng, &WEB_UA)
    };
    let login_at = (c.start - c.rng.random_range(20_000..90_000)).max(p.world.start_ms);
    let key = format!("sub:{attacker}");
    let description = format!("parameter tampering: {attacker} from {ip} sends tampered ids");
    let share = super::super::rng::lerp(0.3, 0.9, c.x);
    let own: u64 = c.rng.random_range(1_000_000..10_000_000);
    let client_id = c.api.clients().0;
    let actor = script("parameter_tampering", move |_world, _shared, out| {
        let label = c.label();
        let (identity, done) = user_login(
            &mut c.rng, out, login_at, &attacker, client_id, ip, ua, None,
        );
        let targets: &[&'static Endpoint] = match c.api {
            ApiKind::Bank => &[
                &cat::ACCOUNT,
                &cat::TRANSACTIONS,
                &cat::PAYMENT,
                &cat::TRANSACTION,
            ],
            ApiKind::Retail => &[&cat::ORDER, &cat::PRODUCT, &cat::GIFT_CARD],
            ApiKind::Saas => &[&cat::DOCUMENT, &cat::PROJECT, &cat::DOCUMENTS],
        };
        let mut t = c.start.max(done);
        while t <= c.end {
            let endpoint = *pick(&mut c.rng, targets);
            let call = if c.rng.random_bool(share) {
                let value = *pick(&mut c.rng, &TAMPERED);
                let two: [&dyn crate::generate::catalog::IdPart; 2] = [&own, &value];
                let one: [&dyn crate::generate::catalog::IdPart; 1] = [&value];
                let ids: &[&dyn crate::generate::catalog::IdPart] =
                    if endpoint.route.matches("{id}").count() == 2 {
                        &two
                    } else {
                        &one
                    };
                let status = match c.rng.random_range(0..100) {
                    0..=54 => 400,
                    55..=69 => 422,
                    70..=84 => 404,
                    85..=94 => 500,
                    _ => 200,
                };
                Call::raw(endpoint, fill(endpoint.route, ids), status)
            } else {
                let ids: [&dyn crate::generate::catalog::IdPart; 2] = [&own, &own];
                Call::new(endpoint, fill(endpoint.route, &ids), 200)
            };
            let done = out.api(&mut c.rng, t, call, ip, ua, &identity, label);
            t = done + c.gap((1_000.0, 4_000.0), 20.0, 4.0);
        }
    });
    Some((
        login_at,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// A user reading far more of other people's objects than peers do, with access the API
/// grants (a support agent, a departing employee): all 200s, from their usual place.
pub(super) fn insider(p: &mut Planner<'_>, mut c: Common) -> Built {
    let idx = p.pick_user(&mut c.rng, c.api)?;
    let world = p.world;
    let user = &world.population.users[idx];
    let subject = user.subject.clone();
    let ip = if user.api == ApiKind::Saas {
        user.office_ip
    } else {
        user.home_ip
    };
    let ua = user.agent_at(c.start).to_owned();
    let key = format!("sub:{subject}");
    let description = format!("insider: {subject} reads many customers' objects from {ip}");
    let login_at = (c.start - c.rng.random_range(60_000..300_000)).max(p.world.start_ms);
    let api = user.api;
    let actor = script("insider", move |world, _shared, out| {
        let Some(user) = world.population.users.get(idx) else {
            return;
        };
        let client_id = user.client_id();
        let (mut identity, done) = user_login(
            &mut c.rng, out, login_at, &subject, client_id, ip, &ua, None,
        );
        let mut issued = done;
        let mut t = c.start.max(done);
        let mut k = 0u64;
        while t <= c.end {
            if t - issued >= USER_TOKEN_TTL_MS - 30_000 {
                let (token, done) =
                    refresh(&mut c.rng, out, t, Some(&subject), client_id, ip, &ua, None);
                identity.token_id = Some(token);
                issued = done;
                t = done + 300;
            }
            let call = foreign_object_call(world, &mut c.rng, api, k);
            let label = c.label();
            let done = out.api(&mut c.rng, t, call, ip, &ua, &identity, label);
            t = done + c.gap((20_000.0, 60_000.0), 3.0, 8.0);
            k += 1;
        }
    });
    Some((
        login_at,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}

/// A service client's credentials in someone else's hands: a token from a new network,
/// then reads (and payments) the client never makes. Subtle: from another region of a
/// cloud provider, with the client's own user agent, slowly.
pub(super) fn compromised_client(p: &mut Planner<'_>, mut c: Common) -> Built {
    let idx = p.pick_service_client(&mut c.rng)?;
    let world = p.world;
    let client = &world.population.clients[idx];
    let loud = c.x >= 0.5;
    let ip = if loud {
        p.attacker_ip(&mut c.rng, &net::ATTACKERS)
    } else {
        p.attacker_ip(&mut c.rng, &net::CLOUDS[2..])
    };
    let ua = if loud {
        "curl/8.5.0"
    } else {
        client.user_agent
    };
    let name = client.name.clone();
    let api = client.api;
    let key = format!("client:{name}");
    let description = format!("compromised service client: {name}'s credentials used from {ip}");
    let start = c.start;
    let actor = script("compromised_client", move |world, _shared, out| {
        let label = c.label();
        let base = Identity {
            client_id: Some(name.clone()),
            ..Identity::default()
        };
        let done = out.api(
            &mut c.rng,
            c.start,
            Call::fixed(&cat::TOKEN, 200),
            ip,
            ua,
            &base,
            label,
        );
        let token_id = hex_id(&mut c.rng);
        out.token(
            c.start + (done - c.start) * 7 / 10,
            TokenRecord {
                kind: TokenEventKind::TokenIssued,
                subject: None,
                client_id: Some(&name),
                grant_type: Some("client_credentials"),
                token_id: Some(&token_id),
            },
            ip,
            ua,
            label,
        );
        let identity = Identity {
            token_id: Some(token_id),
            ..base
        };
        let mut t = done + 300;
        let mut k = 0u64;
        while t <= c.end {
            let call = if api == ApiKind::Bank && k % 10 == 9 {
                Call::fixed(&cat::CREATE_PAYMENT, 201)
            } else {
                foreign_object_call(world, &mut c.rng, api, k)
            };
            let done = out.api(&mut c.rng, t, call, ip, ua, &identity, label);
            t = done + c.gap((2_000.0, 6_000.0), 6.0, 10.0);
            k += 1;
        }
    });
    Some((
        start,
        actor,
        draft(key, Vec::new(), Vec::new(), description),
    ))
}
