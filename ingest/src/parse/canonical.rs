//! Outrider's canonical JSON lines (see `docs/canonical-format.md`).

use crate::event::Event;

use super::{check_line, classify, ParseError};

/// Parses one canonical JSON line (a trailing `\r` or `\n` is ignored).
pub fn parse_line(line: &[u8], max_bytes: usize) -> Result<Event, ParseError> {
    let text = check_line(line, max_bytes)?;
    let mut event: Event = serde_json::from_str(text).map_err(classify)?;
    if let Event::Api(api) = &mut event {
        if api.route.is_empty() {
            api.route = crate::route::template(&api.path);
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TokenEventKind;
    use crate::parse::{ParseErrorReason, DEFAULT_MAX_LINE_BYTES};
    use proptest::prelude::*;

    const API: &str = r#"{"type":"api","ts":"2026-11-22T10:00:00Z","request_id":"r1","method":"GET","path":"/accounts/8812/tx/77","status":200,"latency_ms":12.5,"bytes_out":512,"client_ip":"203.0.113.9","user_agent":"curl/8","subject":"alice","token_id":"jti-1"}"#;

    fn reason(line: &str) -> ParseErrorReason {
        parse_line(line.as_bytes(), DEFAULT_MAX_LINE_BYTES)
            .expect_err("line should be refused")
            .reason
    }

    #[test]
    fn parses_an_api_event_and_derives_its_route() {
        let Event::Api(e) = parse_line(API.as_bytes(), DEFAULT_MAX_LINE_BYTES).unwrap() else {
            panic!("expected an api event")
        };
        assert_eq!(e.route, "/accounts/{id}/tx/{id}");
        assert_eq!(e.identity.subject.as_deref(), Some("alice"));
        assert_eq!(e.identity_key(), "sub:alice");
        assert_eq!(e.bytes_out, 512);
    }

    #[test]
    fn parses_a_token_event() {
        let line = r#"{"type":"token","ts":1795341600000,"event":"login_failure","subject":"bob","client_ip":"198.51.100.7"}"#;
        let Event::Token(e) = parse_line(line.as_bytes(), 1024).unwrap() else {
            panic!("expected a token event")
        };
        assert_eq!(e.event, TokenEventKind::LoginFailure);
        assert_eq!(e.identity_key(), "ip:198.51.100.7");
    }

    #[test]
    fn canonical_lines_round_trip() {
        let event = parse_line(API.as_bytes(), DEFAULT_MAX_LINE_BYTES).unwrap();
        let again = parse_line(event.to_json_line().as_bytes(), DEFAULT_MAX_LINE_BYTES).unwrap();
        assert_eq!(event, again);
    }

    #[test]
    fn each_kind_of_bad_line_gets_its_reason() {
        assert_eq!(reason("   "), ParseErrorReason::Empty);
        assert_eq!(reason("{not json"), ParseErrorReason::MalformedJson);
        assert_eq!(reason(&API[..API.len() - 10]), ParseErrorReason::Truncated);
        assert_eq!(
            reason(&API.replace(r#""status":200"#, r#""status":"ok""#)),
            ParseErrorReason::WrongType
        );
        assert_eq!(
            reason(&API.replace(r#","status":200"#, "")),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(&API.replace("203.0.113.9", "not-an-ip")),
            ParseErrorReason::InvalidValue
        );
        let err = parse_line(b"{\"type\":\"api\xff\"}", 1024).unwrap_err();
        assert_eq!(err.reason, ParseErrorReason::InvalidUtf8);
        let err = parse_line(API.as_bytes(), 16).unwrap_err();
        assert_eq!(err.reason, ParseErrorReason::Oversized);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_line(&bytes, 256);
        }

        #[test]
        fn any_prefix_of_a_valid_line_is_refused_not_panicked(cut in 0usize..300) {
            let cut = cut.min(API.len() - 1);
            prop_assert!(parse_line(&API.as_bytes()[..cut], DEFAULT_MAX_LINE_BYTES).is_err());
        }
    }
}
