//! A multi-step campaign over hours: reconnaissance of the API from one address, then
//! credential stuffing from a few others that takes over two accounts, then data access
//! with those accounts from a third address (reading their data and probing others').
//! One campaign, several keys: a detector that links the phases, or catches any one of
//! them, detects it.

use outrider_ingest::Identity;
use rand::Rng;
use std::collections::BTreeSet;

use super::super::catalog::{self as cat, ApiKind, Call};
use super::super::net;
use super::super::population::{leaked_name, WEB_UA};
use super::super::rng::{lerp, pick};
use super::super::users::{login, Grant};
use super::{
    draft, own_data_call, residential, script, Built, Common, Planner, STUFFING_UA, TOOL_UA,
};

/// Paths a scanner tries, with what the API answers.
const PROBES: [(&str, &str, u16); 16] = [
    ("GET", "/admin", 404),
    ("GET", "/.env", 404),
    ("GET", "/swagger.json", 404),
    ("GET", "/openapi.json", 200),
    ("GET", "/api/v2/accounts", 404),
    ("GET", "/actuator/health", 404),
    ("POST", "/graphql", 404),
    ("GET", "/api/v1/users", 401),
    ("GET", "/accounts", 401),
    ("GET", "/payments", 401),
    ("OPTIONS", "/oauth/token", 204),
    ("GET", "/.git/config", 404),
    ("GET", "/internal/metrics", 403),
    ("GET", "/wp-login.php", 404),
    ("GET", "/server-status", 403),
    ("GET", "/debug/pprof", 404),
];

pub(super) fn campaign(p: &mut Planner<'_>, mut c: Common) -> Built {
    let recon_ip = p.attacker_ip(&mut c.rng, &net::ATTACKERS);
    let pool = lerp(8.0, 3.0, c.x).round() as usize;
    let auth_ips = p.attacker_ips(&mut c.rng, pool.max(1), lerp(1.0, 0.3, c.x));
    let data_ip = if c.x >= 0.5 {
        p.attacker_ip(&mut c.rng, &net::ATTACKERS)
    } else {
        let nets = residential(&mut c.rng);
        p.attacker_ip(&mut c.rng, std::slice::from_ref(nets))
    };
    let victims: Vec<usize> = (0..2)
        .filter_map(|_| p.pick_user(&mut c.rng, c.api))
        .collect();
    if victims.is_empty() {
        return None;
    }
    let world = p.world;
    let victim_keys: Vec<String> = victims
        .iter()
        .map(|&v| format!("sub:{}", world.population.users[v].subject))
        .collect();
    let key = format!("ip:{recon_ip}");
    let mut keys: Vec<String> = auth_ips.iter().map(|ip| format!("ip:{ip}")).collect();
    keys.push(format!("ip:{data_ip}"));
    keys.extend(victim_keys.iter().cloned());
    keys.dedup();
    let description = format!(
        "multi-step campaign: recon from {recon_ip}, stuffing from {} addresses, then data access \
         as {} from {data_ip}",
        auth_ips.len(),
        victim_keys.join(", ")
    );
    let start = c.start;
    let actor = script("multi_step", move |world, shared, out| {
        let label = c.label();
        let span = (c.end - c.start) as f64;
        let c_start = c.start;
        let at = move |f: f64| c_start + (span * f) as i64;
        // 1. Reconnaissance: anonymous probes.
        let scanner = if c.x >= 0.5 { TOOL_UA[1] } else { WEB_UA[0] };
        let mut t = c.start;
        let anonymous = Identity::default();
        while t <= at(0.15) {
            let (method, path, status) = *pick(&mut c.rng, &PROBES);
            let call = match method {
                "POST" => Call::raw(&cat::TOKEN, path.to_owned(), status),
                "OPTIONS" => Call::raw(&PROBE_OPTIONS, path.to_owned(), status),
                _ => Call::raw(&PROBE_GET, path.to_owned(), status),
            };
            t = out.api(&mut c.rng, t, call, recon_ip, scanner, &anonymous, label)
                + c.gap((5_000.0, 30_000.0), 2.0, 5.0);
        }
        // 2. Credential abuse: slow stuffing that takes over the victims.
        let client_id = c.api.clients().0;
        let mut t = at(0.35).max(t);
        let stop = at(0.6);
        let names: Vec<String> = victims
            .iter()
            .filter_map(|&v| world.population.users.get(v).map(|u| u.subject.clone()))
            .collect();
        let mut tried = BTreeSet::new();
        let mut tokens: Vec<(usize, String)> = Vec::new();
        let mut k = 0usize;
        while t <= stop {
            // The victims fall in the second half of the phase.
            let victim = (t > at(0.47))
                .then_some(tokens.len())
                .filter(|&i| i < names.len());
            let name = victim.map_or_else(|| leaked_name(&mut c.rng), |i| names[i].clone());
            let ip = auth_ips[k % auth_ips.len()];
            let (token, done) = login(
                &mut c.rng,
                out,
                t,
                &name,
                client_id,
                Grant::Password,
                ip,
                STUFFING_UA[k % 4],
                victim.is_some(),
                label,
            );
            if let (Some(i), Some(token)) = (victim, token) {
                tokens.push((i, token));
            }
            tried.insert(name);
            k += 1;
            t = done + c.gap((5_000.0, 20_000.0), 3.0, 5.0);
        }
        // 3. Data access with the stolen accounts, and some probing of others' objects.
        let mut t = at(0.7).max(t);
        let mut n = 0u64;
        while t <= c.end && !tokens.is_empty() {
            let (i, token) = &tokens[usize::try_from(n).unwrap_or(0) % tokens.len()];
            let Some(user) = victims.get(*i).and_then(|&v| world.population.users.get(v)) else {
                break;
            };
            let identity = Identity {
                subject: Some(user.subject.clone()),
                client_id: Some(client_id.to_owned()),
                token_id: Some(token.clone()),
                ..Identity::default()
            };
            let call = if c.api == ApiKind::Bank && c.rng.random_bool(0.2) {
                let other = c.rng.random_range(1_000_000..10_000_000u64);
                Call::with_ids(
                    &cat::ACCOUNT,
                    &[&other],
                    if c.rng.random_bool(0.5) { 403 } else { 404 },
                )
            } else {
                own_data_call(world, &mut c.rng, user, n)
            };
            let ua = if c.x >= 0.5 {
                TOOL_UA[0]
            } else {
                user.agent_at(t)
            };
            t = out.api(&mut c.rng, t, call, data_ip, ua, &identity, label)
                + c.gap((1_000.0, 5_000.0), 4.0, 4.0);
            n += 1;
        }
        if let Some(d) = shared.draft(c.id) {
            let victims: BTreeSet<&String> = names.iter().collect();
            d.related_keys = tried
                .iter()
                .filter(|n| !victims.contains(n))
                .map(|n| format!("sub:{n}"))
                .collect();
        }
    });
    Some((start, actor, draft(key, keys, Vec::new(), description)))
}

/// Scanner probes: the route is derived from whatever path was tried.
static PROBE_GET: cat::Endpoint = cat::Endpoint {
    method: "GET",
    route: "/",
    ok: 200,
    body: (2_000.0, 0.5),
    latency: (20.0, 0.4),
    request: (0.0, 0.0),
    invalid: 0.0,
};
static PROBE_OPTIONS: cat::Endpoint = cat::Endpoint {
    method: "OPTIONS",
    route: "/",
    ok: 204,
    body: (0.0, 0.0),
    latency: (5.0, 0.3),
    request: (0.0, 0.0),
    invalid: 0.0,
};
