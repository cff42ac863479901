//! Properties of generated datasets, checked through the public API only.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use outrider_datasets::{
    generate, AttackKind, AttackMix, Campaign, Dataset, GeneratorConfig, LabelledEvent,
};
use outrider_ingest::{ApiEvent, Event, TokenEventKind};

fn default_dataset() -> Dataset {
    generate(&GeneratorConfig::default())
}

/// Runs `check` on the default dataset and on a few smaller ones with other seeds.
fn for_some_seeds(check: fn(&Dataset)) {
    check(&default_dataset());
    for seed in [1, 2, 3, 42, 2026] {
        check(&generate(&GeneratorConfig {
            seed,
            users: 120,
            ..GeneratorConfig::default()
        }));
    }
}

fn lines(ds: &Dataset) -> Vec<String> {
    ds.events.iter().map(|e| e.event.to_json_line()).collect()
}

fn campaign(ds: &Dataset, kind: AttackKind) -> &Campaign {
    ds.campaigns
        .iter()
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} campaign"))
}

fn api_of<'a>(events: impl Iterator<Item = &'a LabelledEvent>) -> Vec<&'a ApiEvent> {
    events
        .filter_map(|e| match &e.event {
            Event::Api(a) => Some(a),
            Event::Token(_) => None,
        })
        .collect()
}

fn slash16(ip: IpAddr) -> [u8; 2] {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [o[0], o[1]]
        }
        IpAddr::V6(_) => panic!("unexpected IPv6 {ip}"),
    }
}

#[test]
fn the_same_config_gives_the_same_dataset_and_another_seed_another() {
    let cfg = GeneratorConfig {
        users: 60,
        duration_secs: 1200,
        ..GeneratorConfig::default()
    };
    let a = generate(&cfg);
    let b = generate(&cfg);
    assert_eq!(lines(&a), lines(&b));
    assert_eq!(a, b);
    let c = generate(&GeneratorConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    });
    assert_ne!(lines(&a), lines(&c));
    assert_ne!(a.campaigns, c.campaigns);
}

#[test]
fn the_default_config_has_a_sane_size_and_all_three_campaigns() {
    let ds = default_dataset();
    let n = ds.events.len();
    assert!((20_000..500_000).contains(&n), "{n} events");
    let kinds: Vec<AttackKind> = ds.campaigns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            AttackKind::TokenReplay,
            AttackKind::Bola,
            AttackKind::CredentialStuffing
        ]
    );
    let labelled = ds.events.iter().filter(|e| e.campaign.is_some()).count();
    // Attacks are a small part of the traffic.
    assert!(labelled * 10 < n, "{labelled} of {n} labelled");
}

#[test]
fn events_are_sorted_within_the_duration_with_unique_request_ids() {
    let cfg = GeneratorConfig::default();
    let ds = generate(&cfg);
    let end = cfg.start_ms + cfg.duration_secs as i64 * 1000;
    assert!(ds
        .events
        .windows(2)
        .all(|w| w[0].event.ts() <= w[1].event.ts()));
    assert!(ds.events.iter().all(|e| {
        let t = e.event.ts().millis();
        t >= cfg.start_ms && t < end
    }));
    let ids: Vec<&str> = ds
        .api_events()
        .map(|(a, _)| a.request_id.as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.iter().all(|id| id.starts_with("r-7-")));
    // Route templates agree with the concrete paths.
    for (a, _) in ds.api_events() {
        assert_eq!(
            outrider_ingest::route::template(&a.path),
            a.route,
            "{}",
            a.path
        );
    }
}

#[test]
fn labels_match_the_campaigns() {
    let cfg = GeneratorConfig::default();
    let ds = generate(&cfg);
    let d = cfg.duration_secs as i64 * 1000;
    let ids: BTreeSet<u32> = ds.campaigns.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), ds.campaigns.len());
    for e in &ds.events {
        if let Some(id) = e.campaign {
            assert!(ids.contains(&id), "unknown campaign {id}");
        }
    }
    for c in &ds.campaigns {
        let events: Vec<&LabelledEvent> = ds.campaign_events(c.id).collect();
        assert_eq!(events.len() as u64, c.events);
        assert!(c.events > 50, "{c:?}");
        assert!(events
            .iter()
            .all(|e| (c.start_ms..=c.end_ms).contains(&e.event.ts().millis())));
        assert_eq!(events.first().unwrap().event.ts().millis(), c.start_ms);
        assert_eq!(events.last().unwrap().event.ts().millis(), c.end_ms);
        // Placed in the middle of the duration, lasting minutes.
        assert!(c.start_ms >= cfg.start_ms + d / 5, "{c:?}");
        assert!(c.end_ms <= cfg.start_ms + d * 4 / 5 + 10_000, "{c:?}");
        let secs = (c.end_ms - c.start_ms) / 1000;
        assert!((150..=340).contains(&secs), "{} lasts {secs} s", c.kind);
        assert!(!c.description.is_empty());
    }
}

#[test]
fn benign_traffic_is_unlabelled() {
    let ds = default_dataset();
    // Every event from a replay or stuffing attacker's address is labelled, and nothing
    // under the BOLA attacker's key inside the walk is left unlabelled.
    let mut attacker_ips = BTreeSet::new();
    for c in &ds.campaigns {
        if c.kind != AttackKind::Bola {
            for a in api_of(ds.campaign_events(c.id)) {
                attacker_ips.insert(a.client_ip);
            }
        }
    }
    assert_eq!(attacker_ips.len(), 2);
    for e in &ds.events {
        let ip = match &e.event {
            Event::Api(a) => a.client_ip,
            Event::Token(t) => t.client_ip,
        };
        if attacker_ips.contains(&ip) {
            assert!(
                e.campaign.is_some(),
                "unlabelled attack event {:?}",
                e.event
            );
        }
    }
    let bola = campaign(&ds, AttackKind::Bola);
    for (a, label) in ds.api_events() {
        let t = a.ts.millis();
        if a.identity_key() == bola.identity_key && t >= bola.start_ms && t <= bola.end_ms {
            assert_eq!(label, Some(bola.id));
        }
    }
    // Benign traffic is mostly successful.
    let benign: Vec<&ApiEvent> = ds
        .api_events()
        .filter(|(_, c)| c.is_none())
        .map(|(a, _)| a)
        .collect();
    let errors = benign.iter().filter(|a| a.status >= 400).count();
    let share = errors as f64 / benign.len() as f64;
    assert!((0.003..0.04).contains(&share), "benign error share {share}");
}

#[test]
fn each_campaign_is_seen_under_its_identity_key() {
    for_some_seeds(check_identity_keys);
}

fn check_identity_keys(ds: &Dataset) {
    for c in &ds.campaigns {
        let mut api = 0;
        for e in ds.campaign_events(c.id) {
            match &e.event {
                Event::Api(a) => {
                    assert_eq!(a.identity_key(), c.identity_key, "{c:?}");
                    api += 1;
                }
                Event::Token(t) if t.event == TokenEventKind::LoginFailure => {
                    assert_eq!(t.identity_key(), c.identity_key);
                }
                Event::Token(_) => {}
            }
        }
        assert!(api > 50);
    }
    let replay = campaign(ds, AttackKind::TokenReplay);
    assert!(replay.identity_key.starts_with("sub:"));
    let stuffing = campaign(ds, AttackKind::CredentialStuffing);
    assert!(stuffing.identity_key.starts_with("ip:"));
}

#[test]
fn token_replay_reuses_the_victims_token_from_a_new_network() {
    for_some_seeds(check_token_replay);
}

fn check_token_replay(ds: &Dataset) {
    let c = campaign(ds, AttackKind::TokenReplay);
    let victim = c.identity_key.strip_prefix("sub:").unwrap();
    let attack = api_of(ds.campaign_events(c.id));
    let tokens: BTreeSet<&str> = attack
        .iter()
        .map(|a| a.identity.token_id.as_deref().unwrap())
        .collect();
    assert_eq!(tokens.len(), 1);
    let token = *tokens.first().unwrap();
    assert!(attack
        .iter()
        .all(|a| a.identity.subject.as_deref() == Some(victim)));

    // The token was issued to the victim, who uses it too, during the attack.
    let issued_to_victim = ds.events.iter().any(|e| match &e.event {
        Event::Token(t) => {
            t.event == TokenEventKind::TokenIssued
                && t.subject.as_deref() == Some(victim)
                && t.token_id.as_deref() == Some(token)
        }
        Event::Api(_) => false,
    });
    assert!(issued_to_victim);
    let victim_calls: Vec<&ApiEvent> = ds
        .api_events()
        .filter(|(a, l)| l.is_none() && a.identity.subject.as_deref() == Some(victim))
        .map(|(a, _)| a)
        .collect();
    let concurrent = victim_calls
        .iter()
        .filter(|a| {
            a.identity.token_id.as_deref() == Some(token)
                && (c.start_ms..=c.end_ms).contains(&a.ts.millis())
        })
        .count();
    assert!(
        concurrent >= 5,
        "victim made {concurrent} calls during the attack"
    );

    // From an address and network the victim never used, with another user agent.
    let victim_ips: BTreeSet<IpAddr> = ds
        .events
        .iter()
        .filter(|e| e.campaign.is_none())
        .filter_map(|e| match &e.event {
            Event::Api(a) if a.identity.subject.as_deref() == Some(victim) => Some(a.client_ip),
            Event::Token(t) if t.subject.as_deref() == Some(victim) => Some(t.client_ip),
            _ => None,
        })
        .collect();
    let victim_nets: BTreeSet<[u8; 2]> = victim_ips.iter().map(|&ip| slash16(ip)).collect();
    let victim_uas: BTreeSet<&str> = victim_calls.iter().map(|a| a.user_agent.as_str()).collect();
    for a in &attack {
        assert!(!victim_ips.contains(&a.client_ip));
        assert!(!victim_nets.contains(&slash16(a.client_ip)));
        assert!(!victim_uas.contains(a.user_agent.as_str()));
    }
    // Reading accounts and many transactions: more bytes than the victim's own calls.
    let attack_bytes: u64 = attack.iter().map(|a| a.bytes_out).sum();
    let victim_bytes: u64 = victim_calls
        .iter()
        .filter(|a| (c.start_ms..=c.end_ms).contains(&a.ts.millis()))
        .map(|a| a.bytes_out)
        .sum();
    assert!(
        attack_bytes > victim_bytes,
        "{attack_bytes} vs {victim_bytes}"
    );
    let routes: BTreeSet<&str> = attack.iter().map(|a| a.route.as_str()).collect();
    assert!(routes.contains("/accounts/{id}/transactions/{id}"));
    assert!(routes.contains("/accounts/{id}/transactions"));
    assert!(attack.iter().all(|a| a.status == 200));
}

#[test]
fn bola_walks_many_object_ids_and_is_mostly_refused() {
    for_some_seeds(check_bola);
}

fn check_bola(ds: &Dataset) {
    let c = campaign(ds, AttackKind::Bola);
    let attack = api_of(ds.campaign_events(c.id));
    let ids: BTreeSet<&str> = attack.iter().flat_map(|a| a.object_ids()).collect();
    assert!(ids.len() >= 50, "{} distinct ids", ids.len());
    let refused = attack
        .iter()
        .filter(|a| a.status == 403 || a.status == 404)
        .count();
    assert!(
        refused * 10 >= attack.len() * 8,
        "{refused} of {}",
        attack.len()
    );
    assert!(attack.iter().any(|a| a.status == 200));
    assert!(attack.iter().all(|a| a.route.starts_with("/accounts/{id}")));
    // About one request every 1-3 seconds, from one token.
    let secs = (c.end_ms - c.start_ms) as f64 / 1000.0;
    let rate = attack.len() as f64 / secs;
    assert!((0.3..=1.1).contains(&rate), "{rate} requests/s");
    let tokens: BTreeSet<_> = attack.iter().map(|a| &a.identity.token_id).collect();
    assert_eq!(tokens.len(), 1);
}

#[test]
fn credential_stuffing_tries_many_names_from_one_ip() {
    for_some_seeds(check_stuffing);
}

fn check_stuffing(ds: &Dataset) {
    let c = campaign(ds, AttackKind::CredentialStuffing);
    let attack = api_of(ds.campaign_events(c.id));
    assert!(attack
        .iter()
        .all(|a| a.route == "/oauth/token" && a.method == "POST"));
    let ips: BTreeSet<IpAddr> = attack.iter().map(|a| a.client_ip).collect();
    assert_eq!(ips.len(), 1);
    let rejected = attack.iter().filter(|a| a.status == 401).count();
    let accepted = attack.iter().filter(|a| a.status == 200).count();
    assert!(rejected * 100 >= attack.len() * 95);
    assert!((1..=3).contains(&accepted), "{accepted} successes");
    let mut failures = 0;
    let mut names = BTreeSet::new();
    for e in ds.campaign_events(c.id) {
        if let Event::Token(t) = &e.event {
            if t.event == TokenEventKind::LoginFailure {
                failures += 1;
                names.insert(t.subject.clone().unwrap());
                assert!(ips.contains(&t.client_ip));
            }
        }
    }
    assert_eq!(failures, rejected);
    assert!(names.len() >= 100, "{} names", names.len());
    let rate = attack.len() as f64 / ((c.end_ms - c.start_ms) as f64 / 1000.0);
    assert!((1.0..=3.0).contains(&rate), "{rate} attempts/s");
}

#[test]
fn benign_users_keep_to_a_few_accounts_of_their_own() {
    let ds = default_dataset();
    let mut accounts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, label) in ds.api_events() {
        if label.is_some() {
            continue;
        }
        if let (Some(sub), Some(rest)) = (
            a.identity.subject.as_deref(),
            a.path.strip_prefix("/accounts/"),
        ) {
            let id = rest.split('/').next().unwrap();
            accounts.entry(sub).or_default().insert(id);
        }
    }
    assert!(accounts.len() > 200);
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (sub, ids) in &accounts {
        assert!((1..=3).contains(&ids.len()), "{sub}: {ids:?}");
        for id in ids {
            assert!((6..=8).contains(&id.len()), "{id}");
            if let Some(other) = owner.insert(id, sub) {
                panic!("account {id} used by {sub} and {other}");
            }
        }
    }
}

#[test]
fn sessions_start_with_a_login_and_carry_the_users_identity() {
    let ds = default_dataset();
    let mut logins = 0;
    let mut anonymous_token_calls = 0;
    for (a, _) in ds.api_events() {
        if a.route == "/oauth/token" && a.identity.client_id.is_none() {
            anonymous_token_calls += 1;
            assert!(a.identity_key().starts_with("ip:"));
        }
        if a.identity.subject.is_some() {
            let client = a.identity.client_id.as_deref().unwrap();
            assert!(client == "mobile-app" || client == "web-app", "{client}");
            assert!(a.identity.token_id.is_some());
        }
    }
    let mut typos = 0;
    for e in &ds.events {
        if let (Event::Token(t), None) = (&e.event, e.campaign) {
            match t.event {
                TokenEventKind::LoginSuccess => logins += 1,
                TokenEventKind::LoginFailure => typos += 1,
                _ => {}
            }
        }
    }
    assert!(logins > 500, "{logins} logins");
    assert!(anonymous_token_calls >= logins);
    let typo_share = typos as f64 / logins as f64;
    assert!((0.01..0.06).contains(&typo_share), "{typo_share}");
    // Service clients: client id, no subject, steady polling.
    let services: BTreeSet<&str> = ds
        .api_events()
        .filter(|(a, _)| a.identity.subject.is_none())
        .filter_map(|(a, _)| a.identity.client_id.as_deref())
        .collect();
    assert_eq!(services.len(), 5, "{services:?}");
}

#[test]
fn users_are_active_at_different_times() {
    let cfg = GeneratorConfig::default();
    let ds = generate(&cfg);
    let mut first_last: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (a, _) in ds.api_events() {
        if let Some(s) = a.identity.subject.as_deref() {
            let t = a.ts.millis();
            let e = first_last.entry(s).or_insert((t, t));
            e.0 = e.0.min(t);
            e.1 = e.1.max(t);
        }
    }
    let half = cfg.start_ms + cfg.duration_secs as i64 * 500;
    let early_only = first_last.values().filter(|(_, l)| *l < half).count();
    let late_only = first_last.values().filter(|(f, _)| *f >= half).count();
    assert!(
        early_only > 5 && late_only > 5,
        "{early_only} / {late_only}"
    );
}

#[test]
fn no_attacks_means_no_labels_and_tiny_configs_do_not_panic() {
    let ds = generate(&GeneratorConfig {
        users: 30,
        duration_secs: 600,
        attacks: AttackMix::none(),
        ..GeneratorConfig::default()
    });
    assert!(ds.campaigns.is_empty());
    assert!(ds.events.iter().all(|e| e.campaign.is_none()));
    assert!(!ds.events.is_empty());

    let empty = generate(&GeneratorConfig {
        duration_secs: 0,
        ..GeneratorConfig::default()
    });
    assert!(empty.events.is_empty() && empty.campaigns.is_empty());

    // No users: nobody to replay a token of, but the other attacks still happen.
    let ds = generate(&GeneratorConfig {
        users: 0,
        service_clients: 1,
        duration_secs: 900,
        ..GeneratorConfig::default()
    });
    let kinds: Vec<AttackKind> = ds.campaigns.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [AttackKind::Bola, AttackKind::CredentialStuffing]);

    let ds = generate(&GeneratorConfig {
        users: 3,
        duration_secs: 30,
        attacks: AttackMix {
            token_replay: 5,
            bola: 2,
            credential_stuffing: 2,
        },
        ..GeneratorConfig::default()
    });
    assert!(ds.campaigns.len() <= 9);
}

#[test]
fn several_attacks_of_a_kind_get_their_own_campaigns() {
    let ds = generate(&GeneratorConfig {
        users: 100,
        attacks: AttackMix {
            token_replay: 2,
            bola: 2,
            credential_stuffing: 2,
        },
        ..GeneratorConfig::default()
    });
    assert_eq!(ds.campaigns.len(), 6);
    let keys: BTreeSet<&str> = ds
        .campaigns
        .iter()
        .map(|c| c.identity_key.as_str())
        .collect();
    assert_eq!(keys.len(), 6);
}

#[test]
fn the_config_reads_from_partial_json() {
    let cfg: GeneratorConfig =
        serde_json::from_str(r#"{"seed": 3, "attacks": {"bola": 2}}"#).unwrap();
    assert_eq!(cfg.seed, 3);
    assert_eq!(cfg.users, 300);
    assert_eq!(cfg.attacks.bola, 2);
    assert_eq!(cfg.attacks.token_replay, 1);
    let kind = serde_json::to_string(&AttackKind::CredentialStuffing).unwrap();
    assert_eq!(kind, "\"credential_stuffing\"");
    assert_eq!(
        outrider_ingest::EventTime(cfg.start_ms).to_string(),
        "2026-11-02T08:00:00.000Z"
    );
}
