use std::net::IpAddr;

use outrider_ingest::{ApiEvent, Event, EventTime, Identity, TokenEvent, TokenEventKind};
use proptest::prelude::*;

use super::*;
use crate::schema::FeatureId as F;

const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z, on a minute boundary

fn api(ts: i64, subject: &str, path: &str, status: u16) -> Event {
    api_from(ts, subject, "jti-1", "10.0.0.1", path, status)
}

fn api_from(ts: i64, subject: &str, token: &str, ip: &str, path: &str, status: u16) -> Event {
    Event::Api(ApiEvent {
        ts: EventTime(ts),
        request_id: format!("r{ts}"),
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
    })
}

fn login_failure(ts: i64, ip: &str) -> Event {
    Event::Token(TokenEvent {
        ts: EventTime(ts),
        event: TokenEventKind::LoginFailure,
        subject: Some("victim".into()),
        client_id: None,
        grant_type: Some("password".into()),
        token_id: None,
        client_ip: ip.parse().unwrap(),
        user_agent: String::new(),
    })
}

fn extractor() -> FeatureExtractor {
    FeatureExtractor::new(&WindowConfig::default()).unwrap()
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
    assert_eq!(fx.tracked_keys(), 0, "finished windows are evicted");
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
    let rows = fx.advance(T0 + 60_000);
    let last = rows.last().unwrap();
    assert_eq!(last.window_end_ms, T0 + 60_000);
    assert_eq!(last.get(F::RequestsPerMin), 11.0);
    assert_eq!(last.get(F::DistinctEndpoints), 2.0);
    assert_eq!(last.get(F::DistinctObjectIds), 11.0, "100..=109 and 7");
    assert!((last.get(F::Ratio4xx) - 5.0 / 11.0).abs() < 1e-6);
    assert_eq!(last.get(F::Count401403), 4.0);
    assert_eq!(last.get(F::BytesOut), 1100.0);
    assert_eq!(
        last.context.request_ids.len(),
        5,
        "at most 4 per bucket: 4 + 1"
    );
}

#[test]
fn a_token_used_from_two_ips_is_counted_per_token() {
    let mut fx = extractor();
    fx.observe(&api_from(T0, "alice", "t1", "10.0.0.1", "/a", 200));
    fx.observe(&api_from(T0 + 1, "alice", "t1", "10.0.0.1", "/a", 200));
    fx.observe(&api_from(T0 + 2, "alice", "t2", "10.0.0.2", "/a", 200));
    let rows = fx.advance(T0 + 10_000);
    assert_eq!(rows[0].get(F::MaxIpsPerToken), 1.0);
    fx.observe(&api_from(
        T0 + 10_001,
        "alice",
        "t1",
        "192.0.2.9",
        "/a",
        200,
    ));
    let rows = fx.advance(T0 + 20_000);
    assert_eq!(rows[0].get(F::MaxIpsPerToken), 2.0);
    assert_eq!(rows[0].get(F::MaxIpSwitchesPerToken), 1.0);
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
    let last = |who: &str| {
        rows.iter()
            .rfind(|r| r.key == format!("sub:{who}"))
            .unwrap()
            .get(F::MaxIpSwitchesPerToken)
    };
    assert_eq!(last("alice"), 5.0);
    assert_eq!(last("bob"), 1.0);
}

#[test]
fn failed_logins_count_against_the_source_ip_and_other_token_events_are_ignored() {
    let mut fx = extractor();
    for i in 0..5 {
        assert_eq!(
            fx.observe(&login_failure(T0 + i, "198.51.100.7")),
            Observed::Accepted
        );
    }
    let mut ok = login_failure(T0, "198.51.100.7");
    if let Event::Token(t) = &mut ok {
        t.event = TokenEventKind::TokenIssued;
    }
    assert_eq!(fx.observe(&ok), Observed::Ignored);
    let rows = fx.advance(T0 + 10_000);
    assert_eq!(rows[0].key, "ip:198.51.100.7");
    assert_eq!(rows[0].get(F::LoginFailures), 5.0);
    assert_eq!(rows[0].get(F::RequestsPerMin), 0.0);
    assert_eq!(fx.stats().ignored, 1);
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

fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    // In time order with jitter below the allowed lateness, so no event may be late.
    let one = (
        0i64..4_000,
        0usize..3,
        0usize..6,
        prop_oneof![Just(200u16), Just(403), Just(404)],
    );
    proptest::collection::vec(one, 1..120).prop_map(|steps| {
        let mut t = T0;
        steps
            .into_iter()
            .map(|(dt, who, obj, status)| {
                t += dt;
                let jitter = (dt * 7) % 4_000;
                let path = format!("/accounts/{obj}");
                api_from(
                    t - jitter,
                    &format!("u{who}"),
                    "tk",
                    &format!("10.0.0.{obj}"),
                    &path,
                    status,
                )
            })
            .collect()
    })
}

proptest! {
    /// Batch/stream parity: however events are split into batches, with the watermark
    /// advanced between batches, the rows are identical to one pass over all of them.
    #[test]
    fn rows_do_not_depend_on_how_the_stream_is_split(
        events in arb_events(),
        cuts in proptest::collection::vec(1usize..20, 0..10),
    ) {
        let mut whole = extractor();
        for e in &events {
            whole.observe(e);
        }
        let expected = whole.finish();

        let mut streamed = extractor();
        let mut rows = Vec::new();
        let mut rest = &events[..];
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
        prop_assert_eq!(rows, expected);
    }
}
