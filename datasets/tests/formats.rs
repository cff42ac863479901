//! Every format the generator writes reads back with `outrider-ingest`'s parser for it,
//! and keeps what the format can carry.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use outrider_datasets::{
    write_stream, ApiKind, AttackKind, AttackSpec, EventStream, GeneratorConfig, LabelledEvent,
    OutputFormat, OutputTarget,
};
use outrider_ingest::identity::{IdentityConfig, IdentityExtractor};
use outrider_ingest::parse::{build_parser, ParserContext};
use outrider_ingest::{ApiEvent, Event, Format, Parsed, TokenEvent, TokenEventKind};

/// Every API, every kind of identity and every attack, in twenty minutes.
fn rich_config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 5,
        users: 90,
        service_clients: 3,
        partners: 3,
        batch_jobs: 3,
        duration_secs: 1_200,
        apis: vec![ApiKind::Bank, ApiKind::Retail, ApiKind::Saas],
        scenarios: AttackKind::ALL
            .iter()
            .map(|&k| AttackSpec {
                duration_secs: Some(240),
                ..AttackSpec::new(k, 0.8)
            })
            .collect(),
        ..GeneratorConfig::default()
    }
}

fn parse_all(format: Format, text: &str) -> Vec<Event> {
    let ctx = ParserContext {
        identity: Arc::new(IdentityExtractor::new(&IdentityConfig::default()).unwrap()),
        max_line_bytes: 64 * 1024,
    };
    let parser = build_parser(format, &ctx, None).unwrap();
    text.lines()
        .enumerate()
        .map(|(i, line)| match parser.parse(line.as_bytes()) {
            Ok(Parsed::Event(e)) => e,
            other => panic!("{format} line {i} {line}: {other:?}"),
        })
        .collect()
}

fn check_api(format: OutputFormat, want: &ApiEvent, got: &ApiEvent) {
    let ctx = format!("{format}: {want:?} vs {got:?}");
    let combined = format == OutputFormat::NginxCombined;
    let ts = if combined {
        want.ts.millis().div_euclid(1000) * 1000
    } else {
        want.ts.millis()
    };
    assert_eq!(got.ts.millis(), ts, "{ctx}");
    assert_eq!(got.method, want.method, "{ctx}");
    assert_eq!(got.path, want.path, "{ctx}");
    assert_eq!(got.route, want.route, "{ctx}");
    assert_eq!(got.status, want.status, "{ctx}");
    assert_eq!(got.bytes_out, want.bytes_out, "{ctx}");
    assert_eq!(got.client_ip, want.client_ip, "{ctx}");
    assert_eq!(got.user_agent, want.user_agent, "{ctx}");
    assert!(
        (got.latency_ms - want.latency_ms.round()).abs() <= 0.5,
        "{ctx}"
    );
    let keeps_request = !matches!(format, OutputFormat::NginxCombined | OutputFormat::AwsApigw);
    let bytes_in = if keeps_request { want.bytes_in } else { 0 };
    assert_eq!(got.bytes_in, bytes_in, "{ctx}");
    if !combined {
        assert_eq!(got.request_id, want.request_id, "{ctx}");
    }
    // Who: the subject always; client and token where the format carries a bearer token.
    let id = &want.identity;
    assert_eq!(got.identity.subject, id.subject, "{ctx}");
    let with_token = id.token_id.is_some() && !combined;
    let client = id.client_id.clone().filter(|_| with_token);
    assert_eq!(got.identity.client_id, client, "{ctx}");
    match (&id.token_id, with_token) {
        (Some(t), true) => {
            let token = got.identity.token_id.as_deref().unwrap();
            let jti = token.strip_prefix("jti:").unwrap();
            assert_eq!(jti.split('@').next(), Some(t.as_str()), "{ctx}");
        }
        _ => assert_eq!(got.identity.token_id, None, "{ctx}"),
    }
    let keyed = id.api_key_hash.is_some() && !combined;
    assert_eq!(got.identity.api_key_hash.is_some(), keyed, "{ctx}");
}

fn check_token(want: &TokenEvent, got: &TokenEvent) {
    let ctx = format!("{want:?} vs {got:?}");
    assert_eq!(got.ts, want.ts, "{ctx}");
    assert_eq!(got.event, want.event, "{ctx}");
    assert_eq!(got.subject, want.subject, "{ctx}");
    assert_eq!(got.client_id, want.client_id, "{ctx}");
    assert_eq!(got.client_ip, want.client_ip, "{ctx}");
    let grant = match (want.event, want.grant_type.as_deref()) {
        (TokenEventKind::TokenIssued, None) => Some("authorization_code"),
        (TokenEventKind::TokenRefreshed, None) => Some("refresh_token"),
        (_, g) => g,
    };
    assert_eq!(got.grant_type.as_deref(), grant, "{ctx}");
    // Keycloak's logout events do not name the token.
    let token = want
        .token_id
        .as_ref()
        .filter(|_| want.event != TokenEventKind::Logout)
        .map(|t| format!("jti:{t}"));
    assert_eq!(got.token_id, token, "{ctx}");
}

#[test]
fn every_format_reads_back_with_its_parser() {
    let cfg = rich_config();
    let dir = tempfile::tempdir().unwrap();
    let target = OutputTarget::Dir {
        dir: dir.path().to_owned(),
        formats: OutputFormat::ALL.to_vec(),
    };
    let summary = write_stream(&mut EventStream::new(&cfg), &target, None).unwrap();
    let events: Vec<LabelledEvent> = EventStream::new(&cfg).collect();
    assert_eq!(summary.events, events.len() as u64);
    // Every attack kind made it in.
    let kinds: std::collections::BTreeSet<AttackKind> =
        summary.campaigns.iter().map(|c| c.kind).collect();
    assert_eq!(kinds.len(), AttackKind::ALL.len(), "{kinds:?}");

    let api: Vec<&ApiEvent> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Api(a) => Some(a),
            Event::Token(_) => None,
        })
        .collect();
    let token: Vec<&TokenEvent> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Token(t) => Some(t),
            Event::Api(_) => None,
        })
        .collect();
    assert!(
        api.len() > 10_000 && token.len() > 500,
        "{} / {}",
        api.len(),
        token.len()
    );

    for format in OutputFormat::ALL {
        let text = std::fs::read_to_string(dir.path().join(format.file_name())).unwrap();
        let parsed = parse_all(format.ingest_format(), &text);
        if format == OutputFormat::Canonical {
            let want: Vec<Event> = events.iter().map(|e| e.event.clone()).collect();
            assert_eq!(parsed, want);
            continue;
        }
        assert_eq!(parsed.len(), api.len(), "{format}");
        for (want, got) in api.iter().zip(&parsed) {
            let Event::Api(got) = got else {
                panic!("{format}: not an API event: {got:?}");
            };
            check_api(format, want, got);
        }
    }
    let text = std::fs::read_to_string(dir.path().join("keycloak.jsonl")).unwrap();
    let parsed = parse_all(Format::Keycloak, &text);
    assert_eq!(parsed.len(), token.len());
    for (want, got) in token.iter().zip(&parsed) {
        let Event::Token(got) = got else {
            panic!("not a token event: {got:?}");
        };
        check_token(want, got);
    }

    // Labels: one per event, pointing at the line of its own file.
    let labels = std::fs::read_to_string(&summary.labels).unwrap();
    let mut api_line = 0;
    for (i, label) in labels.lines().enumerate() {
        let l: serde_json::Value = serde_json::from_str(label).unwrap();
        assert_eq!(l["index"], i as u64);
        if l["type"] == "api" {
            assert_eq!(l["line"], api_line);
            api_line += 1;
        }
        assert_eq!(l["campaign"].as_u64().map(|c| c as u32), events[i].campaign);
    }
    assert_eq!(api_line, api.len() as u64);
}

#[test]
fn auto_detection_recognises_each_written_format() {
    let cfg = GeneratorConfig {
        users: 20,
        duration_secs: 600,
        ..GeneratorConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let target = OutputTarget::Dir {
        dir: dir.path().to_owned(),
        formats: OutputFormat::ALL.to_vec(),
    };
    write_stream(&mut EventStream::new(&cfg), &target, None).unwrap();
    let ctx = ParserContext {
        identity: Arc::new(IdentityExtractor::new(&IdentityConfig::default()).unwrap()),
        max_line_bytes: 64 * 1024,
    };
    let mut files: Vec<(String, Format)> = OutputFormat::ALL
        .iter()
        .map(|f| (f.file_name().to_owned(), f.ingest_format()))
        .collect();
    files.push(("keycloak.jsonl".into(), Format::Keycloak));
    for (name, format) in files {
        let text = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let sample: Vec<&[u8]> = text.lines().take(50).map(str::as_bytes).collect();
        let detected = outrider_ingest::parse::detect::detect(&sample, &ctx);
        assert_eq!(detected.ok(), Some(format), "{name}");
    }
}
