//! Attacks on authentication: credential stuffing (one address, or low and slow from a
//! residential proxy pool) and brute force of one account.

use std::collections::BTreeSet;
use std::net::IpAddr;

use outrider_ingest::Identity;
use rand::Rng;

use super::super::net;
use super::super::population::{leaked_name, WEB_UA};
use super::super::rng::{lerp_log, pick};
use super::super::users::{login, Grant};
use super::{
    draft, own_data_call, script, used_addresses_as_keys, Built, Common, Planner, STUFFING_UA,
};

/// Many user names tried against the token endpoint with the password grant.
///
/// From intensity 0.35 up, one address (hosting or Tor) tries about 1.5 names a second at
/// 0.5 and up to ten at 1. Below, the run goes low and slow: each attempt from one of
/// hundreds of residential addresses, one every ten seconds to a minute, for hours.
pub(super) fn stuffing(p: &mut Planner<'_>, mut c: Common) -> Built {
    let distributed = c.x < 0.35;
    let ips: Vec<IpAddr> = if distributed {
        let n = lerp_log(400.0, 40.0, c.x / 0.35).round() as usize;
        p.attacker_ips(&mut c.rng, n.max(2), 1.0)
    } else {
        vec![p.attacker_ip(&mut c.rng, &net::ATTACKERS)]
    };
    let gap_range = if distributed {
        let scale = lerp_log(3.0, 1.0, c.x / 0.35);
        (5_000.0 * scale, 15_000.0 * scale)
    } else {
        (330.0, 1_000.0)
    };
    // A couple of real users whose leaked passwords still work, early in the run.
    let mean_gap = (gap_range.0 + gap_range.1) / 2.0;
    let expected = ((c.end - c.start) as f64 / mean_gap).max(1.0) as usize;
    let users: Vec<String> = p
        .world
        .population
        .users
        .iter()
        .filter(|u| u.api == c.api)
        .map(|u| u.subject.clone())
        .collect();
    let mut successes = BTreeSet::new();
    if !users.is_empty() {
        for _ in 0..c.rng.random_range(2..=3) {
            successes.insert(c.rng.random_range(0..(expected * 9 / 10).max(1)));
        }
    }
    let key = format!("ip:{}", ips[0]);
    let keys: Vec<String> = ips[1..].iter().map(|ip| format!("ip:{ip}")).collect();
    let description = if distributed {
        format!(
            "low-and-slow credential stuffing from {} residential addresses",
            ips.len()
        )
    } else {
        format!("credential stuffing from {}", ips[0])
    };
    let client_id = c.api.clients().0;
    let start = c.start;
    let actor = script("credential_stuffing", move |_world, shared, out| {
        let label = c.label();
        let mut tried = BTreeSet::new();
        let mut used = Vec::new();
        let mut hits = 0u64;
        let mut t = c.start;
        let mut k = 0usize;
        while t <= c.end {
            let success = successes.contains(&k);
            let name = if success || (!users.is_empty() && c.rng.random_bool(0.04)) {
                users[c.rng.random_range(0..users.len())].clone()
            } else {
                leaked_name(&mut c.rng)
            };
            let (ip, ua) = if distributed {
                (*pick(&mut c.rng, &ips), *pick(&mut c.rng, &WEB_UA))
            } else {
                (ips[0], STUFFING_UA[(k / 37) % STUFFING_UA.len()])
            };
            login(
                &mut c.rng,
                out,
                t,
                &name,
                client_id,
                Grant::Password,
                ip,
                ua,
                success,
                label,
            );
            if out.in_range(t) {
                used.push(ip);
            }
            hits += u64::from(success);
            tried.insert(name);
            k += 1;
            let gap = c.rng.random_range(gap_range.0..gap_range.1);
            // Above the classic intensity the tool runs faster.
            let speed = if c.x > 0.5 {
                lerp_log(1.0, 6.0, (c.x - 0.5) * 2.0)
            } else {
                1.0
            };
            t += super::super::rng::ms(gap / speed).max(1);
        }
        if let Some(d) = shared.draft(c.id) {
            d.description = format!(
                "{}: {} user names in {k} attempts, {hits} succeed",
                d.description,
                tried.len()
            );
            d.related_keys = tried.iter().map(|n| format!("sub:{n}")).collect();
        }
        used_addresses_as_keys(shared, c.id, &used);
    });
    Some((start, actor, draft(key, keys, Vec::new(), description)))
}

/// Many passwords tried against one real account: from one address (loud), or spread over
/// many residential addresses, minutes apart (subtle). Loud runs succeed at the end and
/// read the account.
pub(super) fn brute_force(p: &mut Planner<'_>, mut c: Common) -> Built {
    let victim = p.pick_user(&mut c.rng, c.api)?;
    let world = p.world;
    let user = &world.population.users[victim];
    let distributed = c.x < 0.5;
    let ips: Vec<IpAddr> = if distributed {
        let n = lerp_log(60.0, 10.0, c.x * 2.0).round() as usize;
        p.attacker_ips(&mut c.rng, n.max(2), 1.0)
    } else {
        vec![p.attacker_ip(&mut c.rng, &net::ATTACKERS)]
    };
    let subject = user.subject.clone();
    let client_id = user.client_id();
    let succeeds = c.x >= 0.6;
    let key = format!("sub:{subject}");
    let keys: Vec<String> = ips.iter().map(|ip| format!("ip:{ip}")).collect();
    let description = format!(
        "brute force of {subject}'s password from {} address(es)",
        ips.len()
    );
    let start = c.start;
    let actor = script("brute_force", move |world, shared, out| {
        let label = c.label();
        let mut t = c.start;
        let mut attempts = 0u64;
        let mut used = Vec::new();
        while t <= c.end {
            let ip = *pick(&mut c.rng, &ips);
            if out.in_range(t) {
                used.push(ip);
            }
            let ua = if distributed {
                *pick(&mut c.rng, &WEB_UA)
            } else {
                STUFFING_UA[0]
            };
            login(
                &mut c.rng,
                out,
                t,
                &subject,
                client_id,
                Grant::Password,
                ip,
                ua,
                false,
                label,
            );
            attempts += 1;
            t += if distributed {
                c.gap((20_000.0, 120_000.0), 3.0, 1.0)
            } else {
                c.gap((400.0, 1_500.0), 1.0, 4.0)
            };
        }
        used_addresses_as_keys(shared, c.id, &used);
        if succeeds && attempts > 0 {
            let ip = ips[0];
            let (token, done) = login(
                &mut c.rng,
                out,
                t,
                &subject,
                client_id,
                Grant::Password,
                ip,
                STUFFING_UA[0],
                true,
                label,
            );
            let Some(user) = world.population.users.get(victim) else {
                return;
            };
            let identity = Identity {
                subject: Some(subject.clone()),
                client_id: Some(client_id.to_owned()),
                token_id: token,
                ..Identity::default()
            };
            let mut t = done + 500;
            for k in 0..c.rng.random_range(5..15) {
                let call = own_data_call(world, &mut c.rng, user, k);
                t = out.api(&mut c.rng, t, call, ip, STUFFING_UA[0], &identity, label)
                    + c.rng.random_range(500..3_000);
            }
        }
    });
    Some((start, actor, draft(key, keys, Vec::new(), description)))
}
