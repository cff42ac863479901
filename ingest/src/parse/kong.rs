//! Kong Gateway's log-plugin JSON (`file-log`, `http-log`, `tcp-log`, `udp-log`, `syslog`):
//! the output of `kong.log.serialize()`, one object per line.
//!
//! | Kong field | event field |
//! | --- | --- |
//! | `started_at` (epoch ms) | `ts` |
//! | `request.id` (3.5+), else `correlation_id`, else the `x-kong-request-id` response header, else the `kong-request-id` / `x-request-id` request header, else a hash of the line | `request_id` |
//! | `request.method` | `method` |
//! | `request.uri` (else `request.url`), query string dropped | `path`; `route` = [`crate::route::template`] of it |
//! | `response.status` | `status` |
//! | `latencies.request` (ms, client to last byte) | `latency_ms` |
//! | `request.size`, `response.size` | `bytes_in`, `bytes_out` |
//! | `client_ip` | the peer address handed to the identity extractor |
//! | `request.headers.user-agent` | `user_agent` |
//! | `consumer.username`, else `custom_id`, else `id`, else `authenticated_entity.consumer_id` | `subject` |
//! | `request.headers.authorization`, `apikey` / `x-api-key`, `cookie`, `x-forwarded-for` | the identity extractor's credentials |
//!
//! Why these choices:
//! - `client_ip` is nginx's `$remote_addr`, which Kong has already rewritten from its
//!   `trusted_ips` / `real_ip_header` settings. It is treated as the peer, and
//!   `X-Forwarded-For` is only believed through Outrider's own trusted proxies.
//! - Kong 3.x replaces `authorization` and `proxy-authorization` with `REDACTED` by default;
//!   that value is ignored. Older versions (and setups that undo the redaction) log the real
//!   header, and the extractor identifies a bearer JWT by its claims, never keeping it.
//! - A route's `paths` are prefixes or regexes, not templates (`/pets` matches
//!   `/pets/42/photos`), so the route template comes from the concrete path.
//! - A consumer with no `authenticated_entity` and an `x-anonymous-consumer: true` request
//!   header is the `anonymous` fallback consumer of an auth plugin: it is not a subject,
//!   otherwise every unauthenticated caller would share one identity.
//! - Kong writes a repeated request header as a JSON array; `X-Forwarded-For` hops are
//!   joined with `, ` and cookies with `; `, other headers use their first value.
//! - lua-cjson escapes `/` as `\/`, so strings are borrowed when they have no escapes and
//!   copied when they do.
//! - Stream (TCP/TLS/UDP) records carry `session` instead of `request`: skipped.
//!
//! [`Text`], [`Scalar`] and [`derived_request_id`] are shared with the AWS API Gateway and
//! Keycloak parsers.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::fields::{
    checked_time, derived_request_id, epoch_number, latency_ms, parse_bytes, parse_status,
    parse_time, path_of, present,
};
use super::{check_line, classify, Format, LineParser, ParseError, Parsed, ParserContext};
use crate::event::{ApiEvent, Event, EventTime};
use crate::identity::Credentials;

#[derive(Debug)]
pub struct KongParser {
    ctx: ParserContext,
}

impl KongParser {
    pub fn new(ctx: ParserContext) -> Self {
        Self { ctx }
    }
}

impl LineParser for KongParser {
    fn format(&self) -> Format {
        Format::Kong
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let text = check_line(line, self.ctx.max_line_bytes)?;
        refuse_non_object(text)?;
        let rec: KongLine<'_> = serde_json::from_str(text).map_err(classify)?;
        let Some(request) = &rec.request else {
            if rec.session.is_some() {
                return Ok(Parsed::Skipped("stream_session"));
            }
            return Err(ParseError::missing("request"));
        };
        self.event(text, &rec, request)
            .map(|e| Parsed::Event(Event::Api(e)))
    }
}

impl KongParser {
    fn event(
        &self,
        line: &str,
        rec: &KongLine<'_>,
        request: &Request<'_>,
    ) -> Result<ApiEvent, ParseError> {
        let ts = time("started_at", rec.started_at.as_ref())?;
        let method = present(request.method.as_ref().map(Text::as_str))
            .ok_or_else(|| ParseError::missing("request.method"))?;
        let target = present(request.uri.as_ref().map(Text::as_str))
            .or_else(|| present(request.url.as_ref().map(Text::as_str)))
            .ok_or_else(|| ParseError::missing("request.uri"))?;
        let path = path_of(target);
        let response = rec.response.as_ref();
        let status = status("response.status", response.and_then(|r| r.status.as_ref()))?;
        let peer = ip("client_ip", rec.client_ip.as_ref())?;
        let headers = request.headers.as_ref();
        let forwarded_for = headers
            .and_then(|h| h.x_forwarded_for.as_ref())
            .map(|v| v.joined(", "));
        let cookie = headers
            .and_then(|h| h.cookie.as_ref())
            .map(|v| v.joined("; "));
        let authorization = headers
            .and_then(|h| h.authorization.as_ref())
            .and_then(Header::first)
            .filter(|a| !a.eq_ignore_ascii_case("REDACTED"));
        let api_key = headers
            .and_then(|h| h.apikey.as_ref().or(h.x_api_key.as_ref()))
            .and_then(Header::first);
        let anonymous = rec.authenticated_entity.is_none()
            && headers
                .and_then(|h| h.x_anonymous_consumer.as_ref())
                .and_then(Header::first)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let identified = self.ctx.identity.identify(&Credentials {
            authorization,
            api_key,
            cookie: cookie.as_deref(),
            peer_ip: Some(peer),
            forwarded_for: forwarded_for.as_deref(),
            subject: if anonymous { None } else { rec.subject() },
            ..Credentials::default()
        });
        Ok(ApiEvent {
            ts,
            request_id: rec.request_id(request, line),
            route: crate::route::template(path),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            latency_ms: number(
                "latencies.request",
                rec.latencies.as_ref().and_then(|l| l.request.as_ref()),
            )?,
            bytes_in: bytes("request.size", request.size.as_ref())?,
            bytes_out: bytes("response.size", response.and_then(|r| r.size.as_ref()))?,
            client_ip: identified.client_ip.unwrap_or(peer),
            user_agent: headers
                .and_then(|h| h.user_agent.as_ref())
                .and_then(Header::first)
                .unwrap_or_default()
                .to_owned(),
            identity: identified.identity,
            origin: Default::default(),
        })
    }
}

/// The parts of a `kong.log.serialize()` record Outrider reads; the rest (route, service,
/// tries, querystring, ...) is skipped without being materialised.
#[derive(Debug, Deserialize)]
struct KongLine<'a> {
    #[serde(borrow)]
    started_at: Option<Scalar<'a>>,
    #[serde(borrow)]
    client_ip: Option<Text<'a>>,
    #[serde(borrow)]
    request: Option<Request<'a>>,
    #[serde(borrow)]
    response: Option<Response<'a>>,
    #[serde(borrow)]
    latencies: Option<Latencies<'a>>,
    #[serde(borrow)]
    consumer: Option<Consumer<'a>>,
    #[serde(borrow)]
    authenticated_entity: Option<AuthenticatedEntity<'a>>,
    /// Set by the correlation-id plugin.
    #[serde(borrow)]
    correlation_id: Option<Text<'a>>,
    /// Present on stream-subsystem records.
    session: Option<IgnoredAny>,
}

impl KongLine<'_> {
    fn subject(&self) -> Option<&str> {
        let consumer = self.consumer.as_ref();
        text(consumer.and_then(|c| c.username.as_ref()))
            .or_else(|| text(consumer.and_then(|c| c.custom_id.as_ref())))
            .or_else(|| text(consumer.and_then(|c| c.id.as_ref())))
            .or_else(|| {
                let entity = self.authenticated_entity.as_ref();
                text(entity.and_then(|e| e.consumer_id.as_ref()))
            })
    }

    fn request_id(&self, request: &Request<'_>, line: &str) -> String {
        let headers = request.headers.as_ref();
        let response_headers = self.response.as_ref().and_then(|r| r.headers.as_ref());
        present(request.id.as_ref().map(Text::as_str))
            .or_else(|| present(self.correlation_id.as_ref().map(Text::as_str)))
            .or_else(|| first(response_headers.and_then(|h| h.x_kong_request_id.as_ref())))
            .or_else(|| first(headers.and_then(|h| h.kong_request_id.as_ref())))
            .or_else(|| first(headers.and_then(|h| h.x_request_id.as_ref())))
            .map_or_else(
                || derived_request_id(Format::Kong, line.as_bytes()),
                str::to_owned,
            )
    }
}

/// A present string field.
fn text<'s>(t: Option<&'s Text<'_>>) -> Option<&'s str> {
    present(t.map(Text::as_str))
}

/// A present header's first value.
fn first<'s>(h: Option<&'s Header<'_>>) -> Option<&'s str> {
    present(h.and_then(Header::first))
}

#[derive(Debug, Deserialize)]
struct Request<'a> {
    /// Kong 3.5+.
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    method: Option<Text<'a>>,
    /// `$request_uri`: path and query string as the client sent them.
    #[serde(borrow)]
    uri: Option<Text<'a>>,
    #[serde(borrow)]
    url: Option<Text<'a>>,
    #[serde(borrow)]
    size: Option<Scalar<'a>>,
    #[serde(borrow)]
    headers: Option<RequestHeaders<'a>>,
}

/// Kong lowercases header names.
#[derive(Debug, Deserialize)]
struct RequestHeaders<'a> {
    #[serde(borrow, rename = "user-agent")]
    user_agent: Option<Header<'a>>,
    #[serde(borrow)]
    authorization: Option<Header<'a>>,
    #[serde(borrow, rename = "x-forwarded-for")]
    x_forwarded_for: Option<Header<'a>>,
    /// key-auth's default key name.
    #[serde(borrow)]
    apikey: Option<Header<'a>>,
    #[serde(borrow, rename = "x-api-key")]
    x_api_key: Option<Header<'a>>,
    #[serde(borrow)]
    cookie: Option<Header<'a>>,
    #[serde(borrow, rename = "x-request-id")]
    x_request_id: Option<Header<'a>>,
    /// The correlation-id plugin's default header.
    #[serde(borrow, rename = "kong-request-id")]
    kong_request_id: Option<Header<'a>>,
    /// Set by auth plugins when they fall back to the `anonymous` consumer.
    #[serde(borrow, rename = "x-anonymous-consumer")]
    x_anonymous_consumer: Option<Header<'a>>,
}

#[derive(Debug, Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    status: Option<Scalar<'a>>,
    #[serde(borrow)]
    size: Option<Scalar<'a>>,
    #[serde(borrow)]
    headers: Option<ResponseHeaders<'a>>,
}

#[derive(Debug, Deserialize)]
struct ResponseHeaders<'a> {
    #[serde(borrow, rename = "x-kong-request-id")]
    x_kong_request_id: Option<Header<'a>>,
}

#[derive(Debug, Deserialize)]
struct Latencies<'a> {
    /// Milliseconds from the first byte read from the client to the last byte sent.
    #[serde(borrow)]
    request: Option<Scalar<'a>>,
}

#[derive(Debug, Deserialize)]
struct Consumer<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    username: Option<Text<'a>>,
    #[serde(borrow)]
    custom_id: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
struct AuthenticatedEntity<'a> {
    #[serde(borrow)]
    consumer_id: Option<Text<'a>>,
}

// ---------------------------------------------------------------------------------------
// Helpers shared with the AWS API Gateway and Keycloak parsers.
// ---------------------------------------------------------------------------------------

/// A JSON string, borrowed from the line when it has no escape sequences.
///
/// `Option<Cow<str>>` would always allocate (serde only borrows a bare `Cow<str>` field),
/// so optional string fields use this instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

/// A value logged either as a JSON number or as a string (`"200"`, `"-"`): gateways that
/// interpolate variables into a JSON template quote numbers, others do not.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Text(Cow<'a, str>),
    Number(f64),
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Number(v))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl Scalar<'_> {
    /// The value as a finite number; `None` for the absent markers `""` and `-`.
    pub(crate) fn number(&self, field: &str) -> Result<Option<f64>, ParseError> {
        let n = match self {
            Scalar::Number(n) => *n,
            Scalar::Text(t) => match present(Some(t.trim())) {
                None => return Ok(None),
                Some(t) => t
                    .parse::<f64>()
                    .map_err(|_| ParseError::invalid(field, format_args!("not a number: {t:?}")))?,
            },
        };
        if n.is_finite() {
            Ok(Some(n))
        } else {
            Err(ParseError::invalid(field, "not a finite number"))
        }
    }
}

/// A header value: one string, or an array of them when the header was repeated.
#[derive(Debug, Clone, PartialEq)]
enum Header<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Header<'_> {
    fn first(&self) -> Option<&str> {
        match self {
            Header::One(v) => Some(v),
            Header::Many(v) => v.first().map(|s| &**s),
        }
    }

    fn joined(&self, sep: &str) -> Cow<'_, str> {
        match self {
            Header::One(v) => Cow::Borrowed(&**v),
            Header::Many(v) => Cow::Owned(v.join(sep)),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Header<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Header<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value or an array of them")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Header<'a>, E> {
                Ok(Header::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Header<'a>, E> {
                Ok(Header::One(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Header<'a>, E> {
                Ok(Header::One(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Header<'a>, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(2).min(16));
                while let Some(Text(v)) = seq.next_element::<Text<'a>>()? {
                    values.push(v);
                }
                Ok(Header::Many(values))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A log line must be a JSON object: serde would read an array into a struct field by
/// field, and would call plain text (`81.2.69.160 - - ...`) a number of the wrong type.
/// Valid JSON that is not an object is the wrong type; anything else is malformed.
pub(crate) fn refuse_non_object(text: &str) -> Result<(), ParseError> {
    if text.trim_start().starts_with('{') {
        return Ok(());
    }
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => Err(ParseError::wrong_type("line", "a JSON object")),
        Err(e) => Err(classify(e)),
    }
}

/// A required event time: a number (epoch s/ms/us, told apart by magnitude) or any
/// timestamp notation [`parse_time`] reads.
pub(crate) fn time(field: &str, v: Option<&Scalar<'_>>) -> Result<EventTime, ParseError> {
    match v {
        Some(Scalar::Number(n)) if n.is_finite() && *n >= 0.0 => {
            checked_time(field, epoch_number(*n))
        }
        Some(Scalar::Number(_)) => Err(ParseError::invalid(field, "not a timestamp")),
        Some(Scalar::Text(t)) if present(Some(t)).is_some() => parse_time(field, t),
        _ => Err(ParseError::missing(field)),
    }
}

/// A required HTTP status, number or text.
pub(crate) fn status(field: &str, v: Option<&Scalar<'_>>) -> Result<u16, ParseError> {
    match v {
        Some(Scalar::Number(n)) if n.fract() == 0.0 && (100.0..=599.0).contains(n) => Ok(*n as u16),
        Some(Scalar::Number(n)) => Err(ParseError::invalid(
            field,
            format_args!("not an HTTP status: {n}"),
        )),
        Some(Scalar::Text(t)) if present(Some(t)).is_some() => parse_status(field, t),
        _ => Err(ParseError::missing(field)),
    }
}

/// An optional non-negative duration or count; absent is 0.
pub(crate) fn number(field: &str, v: Option<&Scalar<'_>>) -> Result<f32, ParseError> {
    match v.map(|s| s.number(field)).transpose()?.flatten() {
        None => Ok(0.0),
        Some(n) => latency_ms(field, n),
    }
}

/// An optional byte count; absent is 0.
pub(crate) fn bytes(field: &str, v: Option<&Scalar<'_>>) -> Result<u64, ParseError> {
    match v {
        None => Ok(0),
        Some(Scalar::Text(t)) => parse_bytes(field, t),
        Some(Scalar::Number(n)) if n.fract() == 0.0 && (0.0..9.0e15).contains(n) => Ok(*n as u64),
        Some(Scalar::Number(n)) => Err(ParseError::invalid(
            field,
            format_args!("not a byte count: {n}"),
        )),
    }
}

/// A required IP address.
pub(crate) fn ip(field: &str, v: Option<&Text<'_>>) -> Result<IpAddr, ParseError> {
    let v = present(v.map(|t| t.as_str().trim())).ok_or_else(|| ParseError::missing(field))?;
    v.parse()
        .map_err(|_| ParseError::invalid(field, format_args!("not an IP address: {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityConfig, IdentityExtractor};
    use crate::parse::{ParseErrorReason, DEFAULT_MAX_LINE_BYTES};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;
    use std::sync::Arc;

    const LINE: &str = r#"{"response":{"size":9982,"headers":{"content-length":"9593","x-kong-request-id":"2f6946328ffc4946b8c9120704a4a155"},"status":200},"route":{"name":"orders","paths":["/orders"],"id":"0f1a4101-3327-4274-b1e4-484a4ab0c030"},"tries":[{"ip":"34.237.204.224","port":80}],"client_ip":"192.168.65.1","request":{"id":"2f6946328ffc4946b8c9120704a4a155","headers":{"accept":"*/*","user-agent":"HTTPie/3.2.3","host":"localhost:8000","authorization":"REDACTED","apikey":"k-live-123"},"uri":"/orders/8812?expand=items","size":139,"method":"GET","querystring":{"expand":"items"},"url":"http://localhost:8000/orders/8812?expand=items"},"upstream_uri":"/orders/8812?expand=items","started_at":1795341600123,"source":"upstream","upstream_status":"200","latencies":{"kong":1,"proxy":171,"request":173.5,"receive":1},"consumer":{"id":"6f1e","username":"partner-acme","custom_id":"acme-7"},"authenticated_entity":{"id":"c1","consumer_id":"6f1e"},"service":{"name":"orders","host":"orders.internal","port":80}}"#;

    fn parser() -> KongParser {
        let config = IdentityConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..IdentityConfig::default()
        };
        KongParser::new(ParserContext {
            identity: Arc::new(IdentityExtractor::with_key(&config, b"k")),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        })
    }

    fn api(line: &str) -> ApiEvent {
        match parser().parse(line.as_bytes()) {
            Ok(Parsed::Event(Event::Api(e))) => e,
            other => panic!("expected an api event, got {other:?}"),
        }
    }

    fn reason(line: &str) -> ParseErrorReason {
        parser().parse(line.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn reads_the_documented_record() {
        let e = api(LINE);
        assert_eq!(e.ts, EventTime(1_795_341_600_123));
        assert_eq!(e.request_id, "2f6946328ffc4946b8c9120704a4a155");
        assert_eq!(
            (e.method.as_str(), e.path.as_str()),
            ("GET", "/orders/8812")
        );
        assert_eq!(e.route, "/orders/{id}");
        assert_eq!(e.status, 200);
        assert_eq!(e.latency_ms, 173.5);
        assert_eq!((e.bytes_in, e.bytes_out), (139, 9982));
        assert_eq!(e.client_ip.to_string(), "192.168.65.1");
        assert_eq!(e.user_agent, "HTTPie/3.2.3");
        assert_eq!(e.identity.subject.as_deref(), Some("partner-acme"));
        assert_eq!(e.identity.token_id, None, "REDACTED is not a credential");
        let key_hash = e.identity.api_key_hash.unwrap();
        assert!(key_hash.len() == 32 && !key_hash.contains("k-live"));
    }

    #[test]
    fn a_bearer_jwt_from_older_kong_identifies_the_token_without_keeping_it() {
        let claims = r#"{"sub":"u-1","azp":"web","jti":"j-9","aud":"orders"}"#;
        let jwt = format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims));
        let line = LINE.replace("REDACTED", &format!("Bearer {jwt}")).replace(
            r#""consumer":{"id":"6f1e","username":"partner-acme","custom_id":"acme-7"},"#,
            "",
        );
        let e = api(&line);
        assert_eq!(
            e.identity.subject.as_deref(),
            Some("6f1e"),
            "authenticated_entity"
        );
        assert_eq!(e.identity.client_id.as_deref(), Some("web"));
        assert_eq!(e.identity.token_id.as_deref(), Some("jti:j-9@orders"));
        assert!(!format!("{e:?}").contains(&jwt));
    }

    #[test]
    fn forwarded_for_counts_only_through_trusted_proxies_and_repeated_headers_join() {
        let via_proxy = LINE.replace(r#""client_ip":"192.168.65.1""#, r#""client_ip":"10.0.0.5""#);
        let via_proxy = via_proxy.replace(
            r#""accept":"*/*""#,
            r#""x-forwarded-for":["203.0.113.9","10.0.0.7"]"#,
        );
        assert_eq!(api(&via_proxy).client_ip.to_string(), "203.0.113.9");
        let direct = LINE.replace(r#""accept":"*/*""#, r#""x-forwarded-for":"203.0.113.9""#);
        assert_eq!(api(&direct).client_ip.to_string(), "192.168.65.1");
    }

    #[test]
    fn the_anonymous_consumer_is_not_a_subject() {
        let line = LINE
            .replace(
                r#""authenticated_entity":{"id":"c1","consumer_id":"6f1e"},"#,
                "",
            )
            .replace(r#""accept":"*/*""#, r#""x-anonymous-consumer":"true""#);
        assert_eq!(api(&line).identity.subject, None);
    }

    #[test]
    fn escaped_strings_and_fallback_request_ids() {
        let line = LINE
            .replace(
                r#""uri":"/orders/8812?expand=items""#,
                r#""uri":"\/orders\/8812?x=\u00e9""#,
            )
            .replace(r#""id":"2f6946328ffc4946b8c9120704a4a155","#, "")
            .replace(
                r#","x-kong-request-id":"2f6946328ffc4946b8c9120704a4a155""#,
                "",
            );
        let e = api(&line);
        assert_eq!(e.path, "/orders/8812");
        assert!(e.request_id.starts_with("kong-") && e.request_id.len() == 21);
        assert_eq!(
            api(&line).request_id,
            e.request_id,
            "derived ids are stable"
        );
    }

    #[test]
    fn stream_records_are_skipped_and_bad_lines_named() {
        let stream = r#"{"session":{"status":200,"received":10,"sent":20},"latencies":{"kong":0,"session":12},"client_ip":"192.0.2.1","started_at":1795341600000}"#;
        assert_eq!(
            parser().parse(stream.as_bytes()),
            Ok(Parsed::Skipped("stream_session"))
        );
        assert_eq!(reason("{}"), ParseErrorReason::MissingField);
        assert_eq!(reason(&LINE[..LINE.len() - 3]), ParseErrorReason::Truncated);
        assert_eq!(reason("[1,2]"), ParseErrorReason::WrongType);
        assert_eq!(reason("42"), ParseErrorReason::WrongType);
        assert_eq!(
            reason(r#"81.2.69.160 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200"#),
            ParseErrorReason::MalformedJson
        );
        assert_eq!(
            reason(&LINE.replace(r#""status":200"#, r#""status":true"#)),
            ParseErrorReason::WrongType
        );
        assert_eq!(
            reason(&LINE.replace("192.168.65.1", "unix:")),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(&LINE.replace(r#""started_at":1795341600123,"#, "")),
            ParseErrorReason::MissingField
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parser().parse(&bytes);
        }

        #[test]
        fn a_strict_prefix_is_refused(cut in 0usize..LINE.len()) {
            prop_assert!(parser().parse(&LINE.as_bytes()[..cut]).is_err());
        }

        #[test]
        fn fields_round_trip(
            status in 100u16..600,
            size in 0u64..1 << 40,
            seg in "[a-z]{1,8}",
            id in 0u32..1_000_000,
            query in "[a-z=&]{0,12}",
            v6 in any::<bool>(),
        ) {
            let ip = if v6 { "2001:db8::7" } else { "198.51.100.23" };
            let line = LINE
                .replace(r#""status":200"#, &format!(r#""status":{status}"#))
                .replace(r#""size":9982"#, &format!(r#""size":"{size}""#))
                .replace("/orders/8812?expand=items", &format!("/{seg}/{id}?{query}"))
                .replace("192.168.65.1", ip);
            let e = api(&line);
            prop_assert_eq!(e.status, status);
            prop_assert_eq!(e.bytes_out, size);
            prop_assert_eq!(e.path, format!("/{seg}/{id}"));
            prop_assert_eq!(e.route, format!("/{seg}/{{id}}"));
            prop_assert_eq!(e.client_ip.to_string(), ip);
        }
    }
}
