//! The attack scenarios from loud to subtle, the realistic traffic model, and the token
//! lifecycle, through the public API.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use outrider_datasets::generate::network_of;
use outrider_datasets::generate::NetKind;
use outrider_datasets::{
    generate, ApiKind, AttackKind, AttackMix, AttackSpec, Campaign, Dataset, EventStream,
    GeneratorConfig, TrafficModel,
};
use outrider_ingest::{ApiEvent, Event, TokenEventKind};

fn with_attack(kind: AttackKind, intensity: f64, apis: &[ApiKind], duration_secs: u64) -> Dataset {
    generate(&GeneratorConfig {
        seed: 9,
        users: 150,
        service_clients: 3,
        duration_secs,
        apis: apis.to_vec(),
        attacks: AttackMix::none(),
        scenarios: vec![AttackSpec::new(kind, intensity)],
        ..GeneratorConfig::default()
    })
}

fn only_campaign(ds: &Dataset) -> &Campaign {
    assert_eq!(ds.campaigns.len(), 1, "{:?}", ds.campaigns);
    &ds.campaigns[0]
}

fn attack_api(ds: &Dataset, c: &Campaign) -> Vec<ApiEvent> {
    ds.campaign_events(c.id)
        .filter_map(|e| match &e.event {
            Event::Api(a) => Some(a.clone()),
            Event::Token(_) => None,
        })
        .collect()
}

fn ips(events: &[ApiEvent]) -> BTreeSet<IpAddr> {
    events.iter().map(|a| a.client_ip).collect()
}

fn is_attacker_network(ip: IpAddr) -> bool {
    network_of(ip).is_some_and(|n| matches!(n.kind, NetKind::Hosting | NetKind::Tor))
}

#[test]
fn every_kind_is_labelled_under_its_attacker_keys_at_both_ends_of_intensity() {
    for kind in AttackKind::ALL {
        for intensity in [0.0, 1.0] {
            let ds = with_attack(
                kind,
                intensity,
                &[ApiKind::Bank, ApiKind::Retail, ApiKind::Saas],
                14_400,
            );
            let c = only_campaign(&ds);
            assert_eq!((c.kind, c.intensity), (kind, intensity));
            assert!(c.events >= 20, "{kind} at {intensity}: {} events", c.events);
            assert!(!c.description.is_empty());
            // The attacker's gateway traffic shows under its keys (failed logins under the
            // address, by design).
            let keys: HashSet<&str> = c.attacker_keys().collect();
            let api = attack_api(&ds, c);
            let mut under_keys = 0;
            for a in &api {
                let key = a.identity_key();
                if keys.contains(key.as_str()) {
                    under_keys += 1;
                } else {
                    // Anonymous token-endpoint calls of a login are keyed by address.
                    assert!(
                        key.starts_with("ip:"),
                        "{kind} at {intensity}: {key} {}",
                        a.path
                    );
                }
            }
            assert!(
                under_keys * 2 >= api.len(),
                "{kind} at {intensity}: {under_keys} of {}",
                api.len()
            );
        }
    }
}

#[test]
fn loud_and_subtle_differ_as_documented() {
    let apis = [ApiKind::Bank, ApiKind::Retail];
    let rate = |ds: &Dataset, c: &Campaign| {
        let api = attack_api(ds, c).len() as f64;
        api / ((c.end_ms - c.start_ms).max(1) as f64 / 1000.0)
    };
    // Stuffing: one hosting address, fast; or hundreds of residential ones, slow.
    let loud = with_attack(AttackKind::CredentialStuffing, 1.0, &apis, 14_400);
    let quiet = with_attack(AttackKind::CredentialStuffing, 0.0, &apis, 14_400);
    let (lc, qc) = (only_campaign(&loud), only_campaign(&quiet));
    assert_eq!(ips(&attack_api(&loud, lc)).len(), 1);
    assert!(ips(&attack_api(&loud, lc))
        .iter()
        .all(|&ip| is_attacker_network(ip)));
    let spread = ips(&attack_api(&quiet, qc));
    assert!(spread.len() >= 100, "{} addresses", spread.len());
    assert!(
        spread.iter().all(|&ip| !is_attacker_network(ip)),
        "residential proxies"
    );
    assert!(
        rate(&loud, lc) > 20.0 * rate(&quiet, qc),
        "{} vs {}",
        rate(&loud, lc),
        rate(&quiet, qc)
    );
    assert!(
        qc.end_ms - qc.start_ms > 3_600_000,
        "low and slow lasts hours"
    );
    assert_eq!(qc.keys.len() + 1, spread.len());

    // BOLA: sequential ids when loud, random ids when subtle.
    let sequential_share = |ds: &Dataset| {
        let c = only_campaign(ds);
        let ids: Vec<u64> = attack_api(ds, c)
            .iter()
            .filter(|a| a.route == "/accounts/{id}")
            .filter_map(|a| a.path.rsplit('/').next()?.parse().ok())
            .collect();
        let steps = ids
            .windows(2)
            .filter(|w| w[1] > w[0] && w[1] - w[0] <= 2)
            .count();
        steps as f64 / ids.len().max(2) as f64
    };
    assert!(sequential_share(&with_attack(AttackKind::Bola, 1.0, &apis, 7_200)) > 0.7);
    assert!(sequential_share(&with_attack(AttackKind::Bola, 0.0, &apis, 14_400)) < 0.05);

    // DDoS: many more bots when loud.
    let bots = |x| {
        only_campaign(&with_attack(AttackKind::Ddos, x, &apis, 3_600))
            .keys
            .len()
            + 1
    };
    let (loud_bots, quiet_bots) = (bots(1.0), bots(0.0));
    assert!(
        loud_bots >= 1_000 && quiet_bots <= 40,
        "{loud_bots} / {quiet_bots}"
    );

    // Exfiltration: responses far above the route's benign size.
    let ds = with_attack(AttackKind::Exfiltration, 1.0, &[ApiKind::Bank], 7_200);
    let c = only_campaign(&ds);
    let attack = attack_api(&ds, c);
    let benign_tx: Vec<u64> = ds
        .api_events()
        .filter(|(a, l)| l.is_none() && a.route == "/accounts/{id}/transactions")
        .map(|(a, _)| a.bytes_out)
        .collect();
    let median = {
        let mut v = benign_tx.clone();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let big = attack
        .iter()
        .filter(|a| a.route == "/accounts/{id}/transactions")
        .map(|a| a.bytes_out)
        .min()
        .unwrap();
    assert!(big > 20 * median, "{big} vs {median}");
}

#[test]
fn insiders_and_compromised_clients_use_legitimate_access() {
    let ds = with_attack(AttackKind::Insider, 0.5, &[ApiKind::Bank], 14_400);
    let c = only_campaign(&ds);
    let attack = attack_api(&ds, c);
    assert!(attack.iter().all(|a| a.status == 200));
    assert!(attack.iter().all(|a| !is_attacker_network(a.client_ip)));
    let objects: BTreeSet<&str> = attack.iter().flat_map(|a| a.object_ids()).collect();
    assert!(objects.len() >= 30, "{} objects", objects.len());
    // The insider's own benign sessions exist under the same key.
    let own = ds
        .api_events()
        .filter(|(a, l)| l.is_none() && a.identity_key() == c.identity_key)
        .count();
    assert!(own > 0);

    let ds = with_attack(AttackKind::CompromisedClient, 1.0, &[ApiKind::Bank], 7_200);
    let c = only_campaign(&ds);
    assert!(
        c.identity_key.starts_with("client:svc-"),
        "{}",
        c.identity_key
    );
    let attack = attack_api(&ds, c);
    let usual: BTreeSet<IpAddr> = ds
        .api_events()
        .filter(|(a, l)| l.is_none() && a.identity_key() == c.identity_key)
        .map(|(a, _)| a.client_ip)
        .collect();
    assert!(!usual.is_empty());
    assert!(ips(&attack).is_disjoint(&usual));
    let issued = ds.campaign_events(c.id).any(|e| {
        matches!(&e.event, Event::Token(t) if t.event == TokenEventKind::TokenIssued
            && t.grant_type.as_deref() == Some("client_credentials"))
    });
    assert!(issued, "the stolen credentials get a token first");
}

#[test]
fn a_multi_step_campaign_runs_its_phases_in_order_over_hours() {
    let ds = with_attack(AttackKind::MultiStep, 0.5, &[ApiKind::Bank], 6 * 3600);
    let c = only_campaign(&ds);
    assert!(
        c.end_ms - c.start_ms >= 90 * 60_000,
        "{} min",
        (c.end_ms - c.start_ms) / 60_000
    );
    let events: Vec<&Event> = ds.campaign_events(c.id).map(|e| &e.event).collect();
    let first_probe = events
        .iter()
        .position(|e| matches!(e, Event::Api(a) if a.status == 404))
        .unwrap();
    let first_failure = events
        .iter()
        .position(|e| matches!(e, Event::Token(t) if t.event == TokenEventKind::LoginFailure))
        .unwrap();
    let first_data = events
        .iter()
        .position(|e| matches!(e, Event::Api(a) if a.identity.subject.is_some()))
        .unwrap();
    assert!(first_probe < first_failure && first_failure < first_data);
    let taken: Vec<&String> = c.keys.iter().filter(|k| k.starts_with("sub:")).collect();
    assert!(!taken.is_empty());
    assert!(!c.related_keys.is_empty(), "the names tried");
}

#[test]
fn business_logic_abuse_goes_at_a_plausible_pace_for_long() {
    let ds = with_attack(AttackKind::BusinessLogic, 0.5, &[ApiKind::Retail], 14_400);
    let c = only_campaign(&ds);
    let attack = attack_api(&ds, c);
    assert!(attack.len() >= 50);
    let gaps: Vec<i64> = attack
        .windows(2)
        .map(|w| w[1].ts.millis() - w[0].ts.millis())
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    assert!(
        sorted[sorted.len() / 2] >= 1_000,
        "median gap {} ms",
        sorted[sorted.len() / 2]
    );
    assert!(c.end_ms - c.start_ms >= 15 * 60_000);
}

fn realistic(days: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed: 21,
        users: 3_000,
        service_clients: 3,
        partners: 3,
        batch_jobs: 2,
        duration_secs: days * 86_400,
        start_ms: 1_793_577_600_000, // Monday 2026-11-02T00:00:00Z
        apis: vec![ApiKind::Bank, ApiKind::Retail, ApiKind::Saas],
        traffic: TrafficModel::Realistic,
        attacks: AttackMix::none(),
        ..GeneratorConfig::default()
    }
}

#[test]
fn realistic_traffic_has_daily_and_weekly_cycles_and_benign_changes() {
    // A week, to see the weekend.
    let cfg = realistic(7);
    let mut by_hour = [0u64; 24];
    let mut saas_by_day = [0u64; 7];
    let mut countries: HashMap<String, BTreeSet<&'static str>> = HashMap::new();
    let mut users_per_carrier_ip: HashMap<IpAddr, BTreeSet<String>> = HashMap::new();
    let mut stream = EventStream::new(&cfg);
    for e in stream.by_ref() {
        let Event::Api(a) = &e.event else { continue };
        let Some(sub) = a.identity.subject.as_deref() else {
            continue;
        };
        let t = a.ts.millis() - cfg.start_ms;
        by_hour[usize::try_from(t / 3_600_000 % 24).unwrap()] += 1;
        if a.path.starts_with("/api/v1") {
            saas_by_day[usize::try_from(t / 86_400_000).unwrap()] += 1;
        }
        if let Some(n) = network_of(a.client_ip) {
            countries
                .entry(sub.to_owned())
                .or_default()
                .insert(n.country);
            if n.kind == NetKind::Mobile {
                users_per_carrier_ip
                    .entry(a.client_ip)
                    .or_default()
                    .insert(sub.to_owned());
            }
        }
    }
    // Evenings are busier than nights.
    assert!(by_hour[19] > 5 * by_hour[3], "{by_hour:?}");
    // SaaS users work on weekdays.
    assert!(saas_by_day[1] > 4 * saas_by_day[6], "{saas_by_day:?}");
    // Some users travel; some mobile addresses are shared (carrier NAT).
    let travellers = countries.values().filter(|c| c.len() > 1).count();
    assert!(travellers >= 20, "{travellers} travellers");
    let shared = users_per_carrier_ip
        .values()
        .filter(|u| u.len() > 1)
        .count();
    assert!(shared >= 50, "{shared} shared carrier addresses");
    assert!(
        stream.peak_buffered() < 20_000,
        "{}",
        stream.peak_buffered()
    );
}

#[test]
fn partners_and_batch_jobs_are_heavy_but_benign() {
    let ds = generate(&realistic(1));
    let mut objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for (a, label) in ds.api_events() {
        assert!(label.is_none());
        let key = a.identity_key();
        if key.starts_with("client:tpp-")
            || key.starts_with("client:batch-")
            || key.starts_with("apikey:")
        {
            objects
                .entry(key.clone())
                .or_default()
                .extend(a.object_ids().map(str::to_owned));
            *bytes.entry(key).or_default() += a.bytes_out;
        }
    }
    assert!(objects.keys().any(|k| k.starts_with("client:tpp-")));
    assert!(
        objects.keys().any(|k| k.starts_with("apikey:")),
        "an affiliate on an API key"
    );
    assert!(
        objects.values().any(|o| o.len() >= 200),
        "a partner reads hundreds of objects"
    );
    let batch_bytes = bytes
        .iter()
        .filter(|(k, _)| k.starts_with("client:batch-"))
        .map(|(_, b)| *b)
        .max()
        .unwrap();
    assert!(batch_bytes > 50_000_000, "{batch_bytes} bytes exported");
}

#[test]
fn gateway_tokens_come_from_the_token_server() {
    let ds = generate(&GeneratorConfig {
        traffic: TrafficModel::Realistic,
        users: 400,
        duration_secs: 2 * 86_400,
        apis: vec![ApiKind::Bank, ApiKind::Retail, ApiKind::Saas],
        attacks: AttackMix::none(),
        ..GeneratorConfig::default()
    });
    let mut issued: HashMap<String, (Option<String>, i64)> = HashMap::new();
    let mut ended: HashMap<String, i64> = HashMap::new();
    let mut checked = 0;
    for e in &ds.events {
        match &e.event {
            Event::Token(t) => {
                let Some(token) = t.token_id.clone() else {
                    continue;
                };
                match t.event {
                    TokenEventKind::TokenIssued
                    | TokenEventKind::TokenRefreshed
                    | TokenEventKind::LoginSuccess => {
                        issued.insert(token, (t.subject.clone(), t.ts.millis()));
                    }
                    TokenEventKind::Logout | TokenEventKind::TokenRevoked => {
                        ended.entry(token).or_insert(t.ts.millis());
                    }
                    TokenEventKind::LoginFailure => {}
                }
            }
            Event::Api(a) => {
                let Some(token) = &a.identity.token_id else {
                    continue;
                };
                let (subject, at) = issued
                    .get(token)
                    .unwrap_or_else(|| panic!("token never issued: {a:?}"));
                assert_eq!(subject, &a.identity.subject);
                assert!(a.ts.millis() >= *at);
                // Benign apps stop using a token once logged out (the logout call itself
                // precedes the event).
                if let Some(&end) = ended.get(token) {
                    assert!(a.ts.millis() <= end, "used after logout: {a:?}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn streams_are_deterministic_for_rich_configs() {
    let mut cfg = realistic(1);
    cfg.users = 500;
    cfg.scenarios = AttackKind::ALL
        .iter()
        .map(|&k| AttackSpec::new(k, 0.7))
        .collect();
    let a: Vec<String> = EventStream::new(&cfg).map(|e| format!("{:?}", e)).collect();
    let b: Vec<String> = EventStream::new(&cfg).map(|e| format!("{:?}", e)).collect();
    assert_eq!(a.len(), b.len());
    assert!(a == b);
    cfg.seed += 1;
    let c: Vec<String> = EventStream::new(&cfg).map(|e| format!("{:?}", e)).collect();
    assert!(a != c);
}
