use std::net::IpAddr;

use outrider_ingest::{ApiEvent, Event, EventTime, Identity, TokenEvent, TokenEventKind};
use proptest::prelude::*;

use super::*;
use crate::schema::{FeatureId as F, FEATURE_NAMES};

const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z, on a minute boundary

fn api(ts: i64, subject: &str, path: &str, status: u16) -> Event {
    api_from(ts, subject, "jti-1", "10.0.0.1", path, status)
}

fn api_from(ts: i64, subject: &str, token: &str, ip: &str, path: &str, status: u16) -> Event {
    Event::Api(ApiEvent {
        ts: EventTime(ts),
        request_id: format!("r{ts}-{subject}-{path}"),
        route: outrider_ingest::route::template(path),
        method: "GET".into(),
        path: path.into(),
        status,
        latency_ms: 5.0,
        bytes_in: 0,
        bytes_out: 100,
        client_ip: ip.parse::<IpAddr>().unwrap(),
        user_agent: "ua".into(),
        identity: Identity {
            subject: Some(subject.into()),
            token_id: Some(token.into()),
            ..Identity::default()
        },
        origin: Default::default(),
    })
}

fn with_agent(mut e: Event, agent: &str) -> Event {
    if let Event::Api(a) = &mut e {
        a.user_agent = agent.into();
    }
    e
}

fn token_event(
    ts: i64,
    kind: TokenEventKind,
    subject: &str,
    token: Option<&str>,
    ip: &str,
) -> Event {
    Event::Token(TokenEvent {
        ts: EventTime(ts),
        event: kind,
        subject: Some(subject.into()),
        client_id: None,
        grant_type: Some("password".into()),
        token_id: token.map(str::to_owned),
        client_ip: ip.parse().unwrap(),
        user_agent: String::new(),
    })
}

fn login_failure(ts: i64, ip: &str) -> Event {
    token_event(ts, TokenEventKind::LoginFailure, "victim", None, ip)
}

/// Rows for every window holding a key's events, so tests can read any window.
fn every_hop() -> WindowConfig {
    WindowConfig {
        emit_every_hop: true,
        ..WindowConfig::default()
    }
}

fn extractor() -> FeatureExtractor {
    FeatureExtractor::new(&every_hop()).unwrap()
}

fn last_row<'a>(rows: &'a [FeatureRow], key: &str) -> &'a FeatureRow {
    rows.iter()
        .rfind(|r| &*r.key == key)
        .unwrap_or_else(|| panic!("no row for {key}"))
}

#[test]
fn one_event_appears_in_every_sliding_window_that_covers_it() {
    let mut fx = extractor();
    fx.observe(&api(T0 + 15_000, "alice", "/profile", 200));
    let rows = fx.finish();
    // Bucket [T0+10s, T0+20s) lies in the windows ending T0+20s ..= T0+70s.
    let ends: Vec<_> = rows.iter().map(|r| r.window_end_ms - T0).collect();
    assert_eq!(ends, [20_000, 30_000, 40_000, 50_000, 60_000, 70_000]);
    assert!(rows.iter().all(|r| r.get(F::RequestsPerMin) == 1.0));
    assert!(
        fx.identities.values().all(|s| s.buckets.is_empty()),
        "finished buckets are folded"
    );
    assert_eq!(fx.identities["sub:alice"].profile.folded_buckets, 1);
}

#[test]
fn by_default_only_windows_with_new_events_emit() {
    let mut fx = FeatureExtractor::new(&WindowConfig::default()).unwrap();
    fx.observe(&api(T0 + 15_000, "alice", "/profile", 200));
    fx.observe(&api(T0 + 42_000, "alice", "/profile", 200));
    fx.observe(&api(T0 + 44_000, "alice", "/profile", 200));
    let rows = fx.finish();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.window_end_ms - T0, r.get(F::RequestsPerMin)))
        .collect();
    assert_eq!(got, [(20_000, 1.0), (50_000, 3.0)]);
}

#[test]
fn windows_aggregate_counts_ratios_and_distincts() {
    let mut fx = extractor();
    for i in 0..10 {
        let status = if i < 4 { 403 } else { 200 };
        fx.observe(&api(
            T0 + i * 1000,
            "mallory",
            &format!("/accounts/{}", 100 + i),
            status,
        ));
    }
    fx.observe(&api(T0 + 11_000, "mallory", "/accounts/100/tx/7", 404));
    fx.observe(&api(T0 + 12_000, "mallory", "/accounts/100", 500));
    let rows = fx.advance(T0 + 60_000);
    let last = rows.last().unwrap();
    assert_eq!(last.window_end_ms, T0 + 60_000);
    assert_eq!(last.get(F::RequestsPerMin), 12.0);
    assert_eq!(last.get(F::DistinctEndpoints), 2.0);
    assert_eq!(
        last.get(F::DistinctObjectIds),
        11.0,
        "accounts 100..=109 and tx 7"
    );
    assert_eq!(last.get(F::MaxObjectsPerType), 10.0, "10 accounts, 1 tx");
    assert!((last.get(F::Ratio4xx) - 5.0 / 12.0).abs() < 1e-6);
    assert!((last.get(F::Ratio403) - 4.0 / 12.0).abs() < 1e-6);
    assert!((last.get(F::Ratio404) - 1.0 / 12.0).abs() < 1e-6);
    assert!((last.get(F::Ratio5xx) - 1.0 / 12.0).abs() < 1e-6);
    assert_eq!(last.get(F::Ratio401), 0.0);
    assert_eq!(last.get(F::Count401403), 4.0);
    assert_eq!(last.get(F::BytesOut), 1200.0);
    assert_eq!(last.get(F::BytesOutP95), 100.0);
    assert!((last.get(F::LatencyMeanMs) - 5.0).abs() < 1e-3);
    // 7, 100, 101, ... 109: 9 of 10 adjacent pairs are one apart.
    assert!((last.get(F::SequentialIdWalk) - 0.9).abs() < 1e-6, "a walk");
    assert_eq!(
        last.context.request_ids.len(),
        4,
        "2 evidence ids per bucket, 2 buckets"
    );
    assert_eq!(last.context.routes.len(), 2);
}

#[test]
fn random_ids_are_not_a_walk_and_bursts_are_dispersed() {
    let mut fx = extractor();
    for (i, id) in [9_113, 52, 77_001, 4_410, 31_337, 600].iter().enumerate() {
        fx.observe(&api(
            T0 + i as i64 * 9_000,
            "reader",
            &format!("/orders/{id}"),
            200,
        ));
    }
    // A burst: 30 calls within one second.
    for i in 0..30 {
        fx.observe(&api(T0 + 40_000 + i * 20, "burst", "/search", 200));
    }
    // A metronome: one call a second.
    for i in 0..60 {
        fx.observe(&api(T0 + i * 1_000, "bot", "/search", 200));
    }
    let rows = fx.advance(T0 + 60_000);
    assert_eq!(last_row(&rows, "sub:reader").get(F::SequentialIdWalk), 0.0);
    assert!(last_row(&rows, "sub:burst").get(F::RateDispersion) > 10.0);
    assert!(last_row(&rows, "sub:bot").get(F::RateDispersion) < 0.2);
}

#[test]
fn a_token_used_from_two_ips_is_counted_per_token() {
    let mut fx = extractor();
    fx.observe(&api_from(T0, "alice", "t1", "10.0.0.1", "/a", 200));
    fx.observe(&api_from(T0 + 1, "alice", "t1", "10.0.0.1", "/a", 200));
    fx.observe(&api_from(T0 + 2, "alice", "t2", "10.0.0.2", "/a", 200));
    let rows = fx.advance(T0 + 10_000);
    assert_eq!(rows[0].get(F::MaxIpsPerToken), 1.0);
    fx.observe(&with_agent(
        api_from(T0 + 10_001, "alice", "t1@api", "192.0.2.9", "/a", 200),
        "curl",
    ));
    let rows = fx.advance(T0 + 20_000);
    assert_eq!(
        rows[0].get(F::MaxIpsPerToken),
        2.0,
        "t1 and t1@api are one jti"
    );
    assert_eq!(rows[0].get(F::MaxIpSwitchesPerToken), 1.0);
    assert_eq!(rows[0].get(F::MaxUserAgentsPerToken), 2.0);
    assert_eq!(rows[0].get(F::DistinctIps), 3.0);
    assert_eq!(rows[0].context.client_ips.len(), 3);
}

#[test]
fn a_token_flipping_between_ips_counts_every_switch_across_buckets() {
    let mut fx = extractor();
    // Owner and thief alternate: 10.0.0.1, 192.0.2.9, 10.0.0.1, ... over three buckets.
    for i in 0..6 {
        let ip = if i % 2 == 0 { "10.0.0.1" } else { "192.0.2.9" };
        fx.observe(&api_from(T0 + i * 5_000, "alice", "t1", ip, "/a", 200));
    }
    // A phone that moved once, for comparison.
    fx.observe(&api_from(T0, "bob", "t2", "10.0.0.7", "/a", 200));
    fx.observe(&api_from(T0 + 25_000, "bob", "t2", "10.0.0.8", "/a", 200));
    let rows = fx.advance(T0 + 60_000);
    assert_eq!(
        last_row(&rows, "sub:alice").get(F::MaxIpSwitchesPerToken),
        5.0
    );
    assert_eq!(
        last_row(&rows, "sub:bob").get(F::MaxIpSwitchesPerToken),
        1.0
    );
}

#[test]
fn failed_logins_count_against_the_ip_and_the_user_named() {
    let mut fx = extractor();
    for i in 0..5 {
        assert_eq!(
            fx.observe(&login_failure(T0 + i, "198.51.100.7")),
            Observed::Accepted
        );
    }
    // Stuffing: the same IP tries other users.
    for i in 0..7 {
        let e = token_event(
            T0 + 100 + i,
            TokenEventKind::LoginFailure,
            &format!("user{i}"),
            None,
            "198.51.100.7",
        );
        fx.observe(&e);
    }
    let rows = fx.advance(T0 + 10_000);
    let ip = last_row(&rows, "ip:198.51.100.7");
    assert_eq!(ip.get(F::LoginFailures), 12.0);
    assert_eq!(ip.get(F::RequestsPerMin), 0.0);
    assert_eq!(ip.get(F::MaxIdentitiesPerIp), 8.0, "victim and user0..6");
    assert_eq!(last_row(&rows, "sub:victim").get(F::LoginFailures), 5.0);
}

#[test]
fn tokens_join_the_token_server_age_and_revocation() {
    let mut fx = extractor();
    fx.observe(&token_event(
        T0,
        TokenEventKind::TokenIssued,
        "carol",
        Some("jti:c1"),
        "10.0.0.3",
    ));
    fx.observe(&token_event(
        T0 + 1_000,
        TokenEventKind::TokenRefreshed,
        "carol",
        Some("jti:c2"),
        "10.0.0.3",
    ));
    fx.observe(&token_event(
        T0 + 2_000,
        TokenEventKind::Logout,
        "carol",
        None,
        "10.0.0.3",
    ));
    // c1 used 30 s after issuance and after the logout; c2 after revocation.
    fx.observe(&api_from(
        T0 + 30_000,
        "carol",
        "jti:c1@bank",
        "192.0.2.50",
        "/accounts",
        200,
    ));
    fx.observe(&token_event(
        T0 + 31_000,
        TokenEventKind::TokenRevoked,
        "carol",
        Some("jti:c2"),
        "10.0.0.3",
    ));
    fx.observe(&api_from(
        T0 + 32_000,
        "carol",
        "jti:c2@bank",
        "192.0.2.50",
        "/accounts",
        200,
    ));
    let rows = fx.advance(T0 + 40_000);
    let row = last_row(&rows, "sub:carol");
    assert_eq!(
        row.get(F::TokenAgeMaxS),
        31.0,
        "c2 issued at +1 s, used at +32 s"
    );
    assert_eq!(row.get(F::TokenUseAfterLogout), 2.0);
    assert_eq!(row.get(F::TokenRefreshes), 1.0);
    assert!(row.context.token_ids.iter().any(|t| &**t == "jti:c1"));
}

#[test]
fn history_makes_new_ips_networks_and_agents_stand_out() {
    let mut fx = extractor();
    // Ten minutes of dave from home, then a call from a new network and device.
    for i in 0..60 {
        fx.observe(&api_from(
            T0 + i * 10_000,
            "dave",
            "jti:d",
            "10.1.1.5",
            "/home",
            200,
        ));
    }
    fx.observe(&with_agent(
        api_from(T0 + 600_500, "dave", "jti:d", "203.0.113.9", "/home", 200),
        "curl/8",
    ));
    let rows = fx.advance(T0 + 610_000);
    let row = last_row(&rows, "sub:dave");
    assert_eq!(row.window_end_ms, T0 + 610_000);
    assert!(
        (row.get(F::NewIpRatio) - 0.5).abs() < 1e-6,
        "{}",
        row.get(F::NewIpRatio)
    );
    assert!((row.get(F::NewNetworkRatio) - 0.5).abs() < 1e-6);
    assert!((row.get(F::NewUserAgentRatio) - 0.5).abs() < 1e-6);
    let early = rows.iter().find(|r| &*r.key == "sub:dave").unwrap();
    assert_eq!(
        early.get(F::NewIpRatio),
        0.0,
        "no history yet: nothing is new"
    );
}

#[test]
fn objects_read_slowly_add_up_over_the_hour_and_then_expire() {
    let mut fx = extractor();
    // Eve reads another account every 30 s for 50 minutes; Frank rereads his two.
    for i in 0..100 {
        let ts = T0 + i * 30_000;
        fx.observe(&api(
            ts,
            "eve",
            &format!("/accounts/{}", 5_000 + i * 7),
            200,
        ));
        fx.observe(&api(ts, "frank", &format!("/accounts/{}", 1 + i % 2), 200));
    }
    let rows = fx.advance(T0 + 3_000_000);
    let eve = last_row(&rows, "sub:eve");
    assert_eq!(eve.get(F::DistinctObjectIds), 2.0, "two reads per window");
    let hourly = eve.get(F::DistinctObjectIds1h);
    assert!(
        (hourly - 100.0).abs() <= 30.0,
        "100 accounts in 50 minutes, estimated {hourly}"
    );
    let frank = last_row(&rows, "sub:frank");
    assert_eq!(frank.get(F::DistinctObjectIds1h), 2.0);
    // Three hours later the history no longer reaches the window.
    let later = T0 + 3 * 3_600_000;
    fx.observe(&api(later, "eve", "/accounts/1", 200));
    let rows = fx.finish();
    let eve = last_row(&rows, "sub:eve");
    assert!(eve.window_end_ms > later);
    assert_eq!(eve.get(F::DistinctObjectIds1h), 1.0);
}

fn located(e: Event, asn: u32, lat: f32, lon: f32) -> Event {
    let Event::Api(mut a) = e else { return e };
    a.origin = outrider_ingest::ClientOrigin {
        asn: Some(asn),
        country: None,
        latitude: Some(lat),
        longitude: Some(lon),
    };
    Event::Api(a)
}

#[test]
fn impossible_travel_shows_as_geo_velocity_and_asns_name_networks() {
    let mut fx = extractor();
    let paris = (48.86, 2.35);
    // Ten minutes in Paris on one ISP (ASN 3215) across two /24s: nothing new.
    for i in 0..60 {
        let ip = if i % 2 == 0 { "10.1.1.5" } else { "10.1.2.5" };
        let e = api_from(T0 + i * 10_000, "erin", "jti:e", ip, "/home", 200);
        fx.observe(&located(e, 3215, paris.0, paris.1));
    }
    // A new /24 of the same ISP, then Sydney on another ASN twenty minutes later.
    let same_isp = api_from(T0 + 600_500, "erin", "jti:e", "10.1.3.5", "/home", 200);
    fx.observe(&located(same_isp, 3215, paris.0, paris.1));
    let rows = fx.advance(T0 + 610_000);
    let row = last_row(&rows, "sub:erin");
    assert_eq!(
        row.get(F::NewNetworkRatio),
        0.0,
        "same ASN: a known network"
    );
    assert_eq!(row.get(F::GeoVelocityKmh), 0.0, "staying put");
    let sydney = api_from(T0 + 1_800_000, "erin", "jti:e", "203.0.113.9", "/home", 200);
    fx.observe(&located(sydney, 1221, -33.87, 151.21));
    let rows = fx.advance(T0 + 1_810_000);
    let row = last_row(&rows, "sub:erin");
    assert_eq!(row.get(F::NewNetworkRatio), 1.0, "a new ASN");
    // About 16 950 km in about 20 minutes.
    let kmh = row.get(F::GeoVelocityKmh);
    assert!((45_000.0..55_000.0).contains(&kmh), "{kmh}");
    // A key whose log has no locations has no velocity.
    fx.observe(&api_from(
        T0 + 1_812_000,
        "finn",
        "jti:f",
        "10.9.9.9",
        "/home",
        200,
    ));
    let rows = fx.advance(T0 + 1_820_000);
    assert_eq!(last_row(&rows, "sub:finn").get(F::GeoVelocityKmh), 0.0);
}

#[test]
fn per_api_baselines_flag_unusual_volume_on_one_route() {
    let mut fx = extractor();
    // 40 users each search 5 times and buy once per minute; then one buys 5 times.
    for u in 0..40 {
        for i in 0..5 {
            fx.observe(&api(T0 + i * 7_000 + u, &format!("u{u}"), "/search", 200));
        }
        fx.observe(&api(T0 + 36_000 + u, &format!("u{u}"), "/purchase", 200));
    }
    fx.advance(T0 + 120_000);
    for i in 0..5 {
        fx.observe(&api(T0 + 200_000 + i * 1_000, "buyer", "/purchase", 200));
        fx.observe(&api(T0 + 200_000 + i * 1_000, "searcher", "/search", 200));
    }
    let rows = fx.advance(T0 + 260_000);
    let buyer = last_row(&rows, "sub:buyer").get(F::RouteRateZ);
    let searcher = last_row(&rows, "sub:searcher").get(F::RouteRateZ);
    assert!(buyer > 3.0, "five purchases: z={buyer}");
    assert!(searcher < 1.0, "five searches: z={searcher}");
}

#[test]
fn a_random_ip_flood_stays_under_the_key_cap() {
    let config = WindowConfig {
        max_tracked_keys: 1_000,
        ..every_hop()
    };
    let mut fx = FeatureExtractor::new(&config).unwrap();
    for i in 0..50_000u32 {
        let ip =
            std::net::Ipv4Addr::from(0x0a00_0000 + i.wrapping_mul(2_654_435_761) % 0x00ff_ffff);
        let e = Event::Api(ApiEvent {
            identity: Identity::default(),
            ..match api_from(
                T0 + i64::from(i % 50_000),
                "x",
                "t",
                &ip.to_string(),
                "/login",
                401,
            ) {
                Event::Api(a) => a,
                Event::Token(_) => unreachable!(),
            }
        });
        fx.observe(&e);
        assert!(fx.tracked_keys() <= 1_000);
    }
    let stats = fx.stats();
    assert!(stats.overflowed_events > 40_000, "{stats:?}");
    assert!(stats.untracked_keys > 40_000, "{stats:?}");
    let bytes_before = fx.state_bytes();
    let rows = fx.advance(T0 + 60_000);
    let flood = last_row(&rows, OVERFLOW_KEY);
    assert!(
        flood.get(F::DistinctIps) > 30_000.0,
        "the flood is one loud row: {}",
        flood.get(F::DistinctIps)
    );
    assert!(bytes_before < 1_000 * 4096, "{bytes_before} bytes");
}

#[test]
fn quiet_keys_release_their_bucket_memory() {
    let mut fx = FeatureExtractor::new(&WindowConfig::default()).unwrap();
    for i in 0..200 {
        fx.observe(&api(T0 + i * 400, "busy", &format!("/items/{i}"), 200));
    }
    let busy = fx.state_bytes();
    assert!(fx.identities["sub:busy"].buckets.len() >= 8);
    // The burst has left every window: its buckets are folded into the profile.
    fx.advance(T0 + 10 * 60_000);
    let state = &fx.identities["sub:busy"];
    assert!(state.buckets.is_empty());
    assert_eq!(
        state.buckets.capacity(),
        0,
        "the queue's allocation is released"
    );
    assert!(state.profile.has_history());
    assert!(
        fx.state_bytes() * 4 < busy,
        "quiet state {} vs busy {busy}",
        fx.state_bytes()
    );
}

#[test]
fn idle_keys_are_forgotten() {
    let config = WindowConfig {
        idle_evict_secs: 600,
        ..WindowConfig::default()
    };
    let mut fx = FeatureExtractor::new(&config).unwrap();
    fx.observe(&api(T0, "gone", "/x", 200));
    fx.advance(T0 + 300_000);
    assert!(fx.identities.contains_key("sub:gone"));
    fx.observe(&api_from(
        T0 + 900_000,
        "other",
        "jti-2",
        "10.0.0.2",
        "/x",
        200,
    ));
    fx.advance(T0 + 900_000);
    assert!(!fx.identities.contains_key("sub:gone"));
    assert!(
        fx.stats().evicted_keys >= 3,
        "identity, IP and token: {:?}",
        fx.stats()
    );
}

#[test]
fn late_events_are_counted_not_used_and_lateness_is_allowed() {
    let mut fx = extractor();
    fx.observe(&api(T0 + 30_000, "a", "/x", 200));
    // Within the allowed lateness of 5 s: accepted, even after the watermark moved.
    assert_eq!(fx.watermark(), Some(T0 + 25_000));
    fx.advance(fx.watermark().unwrap());
    assert_eq!(
        fx.observe(&api(T0 + 21_000, "a", "/x", 200)),
        Observed::Accepted
    );
    // Older than an emitted window end: late.
    assert_eq!(
        fx.observe(&api(T0 + 19_999, "a", "/x", 200)),
        Observed::Late
    );
    assert_eq!(fx.stats().late, 1);
    let total: f32 = fx
        .finish()
        .iter()
        .filter(|r| r.window_end_ms == T0 + 80_000)
        .map(|r| r.get(F::RequestsPerMin))
        .sum();
    assert_eq!(total, 2.0);
}

#[test]
fn completed_before_covers_only_fully_emitted_events() {
    let mut fx = extractor();
    fx.observe(&api(T0, "a", "/x", 200));
    fx.advance(T0 + 30_000);
    // The event's bucket [T0, T0+10s) still belongs to windows ending up to T0+60s.
    assert!(fx.completed_before().unwrap() <= T0);
    fx.advance(T0 + 60_000);
    assert!(fx.completed_before().unwrap() > T0);
}

#[test]
fn a_checkpoint_round_trip_continues_exactly() {
    let events = traffic(400);
    let (first, second) = events.split_at(250);
    let mut straight = extractor();
    for e in first {
        straight.observe(e);
    }
    let emitted = straight.advance(straight.watermark().unwrap());
    assert!(!emitted.is_empty());
    let bytes = straight.checkpoint().unwrap();
    let mut restored = FeatureExtractor::restore(&bytes, &every_hop()).unwrap();
    for e in second {
        straight.observe(e);
        restored.observe(e);
    }
    let expected = straight.finish();
    assert!(expected.len() > 20);
    assert_eq!(restored.finish(), expected);
    assert_eq!(restored.stats(), straight.stats());

    // What cannot be restored says why.
    let other = WindowConfig {
        window_secs: 120,
        ..WindowConfig::default()
    };
    let err = FeatureExtractor::restore(&bytes, &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("features.window_secs"), "{err}");
    let err = FeatureExtractor::restore(&bytes[..40], &WindowConfig::default()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    let mut bumped = bytes.clone();
    bumped[12] = 99;
    let err = FeatureExtractor::restore(&bumped, &WindowConfig::default()).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
    assert!(FeatureExtractor::restore(b"garbage", &WindowConfig::default()).is_err());
}

/// Mixed traffic over a few minutes: users, a token server, anonymous callers.
fn traffic(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let i64_i = i as i64;
            let ts = T0 + i64_i * 700;
            match i % 9 {
                0 => token_event(
                    ts,
                    TokenEventKind::TokenIssued,
                    &format!("u{}", i % 5),
                    Some(&format!("jti:{}", i % 7)),
                    "10.0.0.1",
                ),
                1 => login_failure(ts, &format!("10.9.0.{}", i % 3)),
                _ => api_from(
                    ts,
                    &format!("u{}", i % 5),
                    &format!("jti:{}", i % 7),
                    &format!("10.0.{}.{}", i % 2, i % 4),
                    &format!("/accounts/{}", i % 13),
                    [200, 200, 403, 404][i % 4],
                ),
            }
        })
        .collect()
}

fn arb_events() -> impl Strategy<Value = (Vec<Event>, Vec<i64>)> {
    let one = (
        0i64..4_000,
        0usize..3,
        0usize..6,
        0usize..8,
        prop_oneof![Just(200u16), Just(401), Just(403), Just(404), Just(503)],
    );
    proptest::collection::vec(one, 1..150).prop_map(|steps| {
        let mut t = T0;
        let mut events = Vec::new();
        let mut arrival = Vec::new();
        for (dt, who, obj, kind, status) in steps {
            t += dt;
            let e = match kind {
                0 => login_failure(t, &format!("10.0.0.{obj}")),
                1 => token_event(
                    t,
                    TokenEventKind::TokenIssued,
                    &format!("u{who}"),
                    Some(&format!("tk{obj}")),
                    "10.0.0.1",
                ),
                2 => token_event(
                    t,
                    TokenEventKind::Logout,
                    &format!("u{who}"),
                    None,
                    "10.0.0.1",
                ),
                _ => api_from(
                    t,
                    &format!("u{who}"),
                    &format!("tk{}", obj % 2),
                    &format!("10.0.0.{obj}"),
                    &format!("/accounts/{obj}"),
                    status,
                ),
            };
            events.push(e);
            // Arrival: up to 4 s after the event time, below the 5 s allowed lateness.
            arrival.push(t + (dt * 7919) % 4_000);
        }
        (events, arrival)
    })
}

proptest! {
    /// Batch/stream parity: however events are split into batches, with the watermark
    /// advanced between batches, and in whatever order they arrive within the allowed
    /// lateness, the rows are identical to one pass over the events in time order.
    #[test]
    fn rows_do_not_depend_on_batch_split_or_arrival_order(
        (events, arrival) in arb_events(),
        cuts in proptest::collection::vec(1usize..20, 0..10),
        emit_every_hop in any::<bool>(),
    ) {
        let config = WindowConfig { emit_every_hop, ..WindowConfig::default() };
        let extractor = || FeatureExtractor::new(&config).unwrap();
        let mut whole = extractor();
        for e in &events {
            whole.observe(e);
        }
        let expected = whole.finish();

        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| (arrival[i], i));
        let shuffled: Vec<&Event> = order.iter().map(|&i| &events[i]).collect();
        let mut streamed = extractor();
        let mut rows = Vec::new();
        let mut rest = &shuffled[..];
        for c in cuts {
            let (batch, tail) = rest.split_at(c.min(rest.len()));
            for e in batch {
                prop_assert_eq!(streamed.observe(e), Observed::Accepted);
            }
            if let Some(w) = streamed.watermark() {
                rows.extend(streamed.advance(w));
            }
            rest = tail;
        }
        for e in rest {
            streamed.observe(e);
        }
        rows.extend(streamed.finish());
        prop_assert_eq!(rows.len(), expected.len());
        for (a, b) in rows.iter().zip(&expected) {
            prop_assert_eq!((&a.key, a.window_end_ms), (&b.key, b.window_end_ms));
            for (i, (x, y)) in a.values.iter().zip(&b.values).enumerate() {
                prop_assert!(x.to_bits() == y.to_bits(), "{} differs: {} vs {} ({} @ {})", FEATURE_NAMES[i], x, y, a.key, a.window_end_ms);
            }
            prop_assert_eq!(&a.context, &b.context);
        }
    }
}

/// The definition `innermost_object` implements, read forwards: every id segment
/// replaces the one before, and its type is the last non-id segment seen before it.
fn innermost_object_reference(path: &str) -> (u32, u32) {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let mut previous = "";
    let mut found = (0, 0);
    for segment in path.split('/') {
        if is_object_id(segment) {
            let kind = hash32(seed::OBJECT_TYPE, previous.as_bytes()) & 0xff00_0000;
            let id = hash32(seed::OBJECT, segment.as_bytes()) & 0x00ff_ffff;
            let walk = segment
                .parse::<u64>()
                .map_or(0, |n| (n as u32).wrapping_add(1));
            found = ((kind | id).max(1), walk);
        } else {
            previous = segment;
        }
    }
    found
}

#[test]
fn the_innermost_object_is_the_last_id_before_the_query() {
    let uuid = "56a2ea63-c7e1-4134-b675-f897e90cfb63";
    let paths = [
        String::new(),
        "/".into(),
        "//".into(),
        "/accounts".into(),
        "/accounts/8812".into(),
        "/accounts/8812/transactions".into(),
        "/accounts/8812/tx/77".into(),
        "/accounts/8812/77".into(),
        "8812".into(),
        "/8812/".into(),
        format!("/payments/{uuid}"),
        format!("/payments/{uuid}?next=/accounts/1"),
        "/accounts/1#/cards/2".into(),
        "/accounts/1?a#b/3".into(),
        "/accounts?id=5".into(),
        "/blobs/0123456789abcdef0123".into(),
    ];
    for p in &paths {
        assert_eq!(innermost_object(p), innermost_object_reference(p), "{p:?}");
    }
    let (object, walk) = innermost_object("/accounts/8812/tx/77");
    assert_eq!(walk, 78, "the innermost id, plus one");
    assert_eq!(
        object & 0xff00_0000,
        hash32(seed::OBJECT_TYPE, b"tx") & 0xff00_0000,
        "typed by the segment before it"
    );
    assert_eq!(innermost_object("/accounts/8812/77").1, 78);
    assert_eq!(innermost_object("/accounts?id=5"), (0, 0));
}

proptest! {
    #[test]
    fn the_innermost_object_matches_its_definition(
        segments in proptest::collection::vec(
            prop_oneof![
                Just(String::new()),
                "[a-z]{1,8}",
                "[0-9]{1,12}",
                "[0-9a-f]{14,20}",
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "[?#=a-z0-9]{1,6}",
            ],
            0..8,
        ),
        leading_slash in any::<bool>(),
    ) {
        let path = format!("{}{}", if leading_slash { "/" } else { "" }, segments.join("/"));
        prop_assert_eq!(innermost_object(&path), innermost_object_reference(&path), "{:?}", path);
    }
}
