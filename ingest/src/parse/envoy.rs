//! Envoy access logs written with a `json_format` dictionary whose keys name the default
//! format's command operators, as Envoy, Istio, Contour and Envoy Gateway configure them:
//!
//! | key (aliases) | operator | event field |
//! |---|---|---|
//! | `start_time` (`@timestamp`) | `%START_TIME%` | `ts` |
//! | `method` | `%REQ(:METHOD)%` | `method` |
//! | `path` (`x-envoy-origin-path`) | `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` | `path`, `route` |
//! | `response_code` | `%RESPONSE_CODE%` | `status` (`0`: no response was sent) |
//! | `bytes_received` / `bytes_sent` | `%BYTES_RECEIVED%` / `%BYTES_SENT%` | `bytes_in` / `bytes_out` |
//! | `duration` | `%DURATION%` (ms) | `latency_ms` |
//! | `request_id` (`x-request-id`) | `%REQ(X-REQUEST-ID)%` | `request_id` |
//! | `user_agent` (`user-agent`) | `%REQ(USER-AGENT)%` | `user_agent` |
//! | `downstream_remote_address` (`downstream_direct_remote_address`) | TCP peer | `client_ip` |
//! | `x_forwarded_for` (`x-forwarded-for`) | `%REQ(X-FORWARDED-FOR)%` | `client_ip` via trusted proxies |
//! | `authorization`, `x_api_key` (`x-api-key`), `cookie` | `%REQ(...)%` | identity (hashed) |
//! | `downstream_peer_fingerprint_256` | mTLS client certificate | `cert_thumbprint` |
//!
//! Other keys (`protocol`, `response_flags`, `upstream_service_time`, `authority`,
//! `upstream_host`, ...) are read past without being interpreted.
//!
//! Values come as JSON strings (older Envoy, and every operator inside a larger string),
//! typed numbers (newer Envoy) or `null`; `"-"`, `""` and `null` all mean "not set".
//!
//! Choices:
//! - `response_code` `0` (Envoy never sent a response, e.g. the client reset the stream) keeps
//!   the event with status 0: the request still happened and counts towards its identity's
//!   volume; status-class features only look at 4xx, so 0 adds no error signal.
//! - A record whose `method` or `path` is logged as not set (a codec error before the request
//!   line was read, a TCP proxy entry, a CONNECT with no path) is
//!   `Skipped("unparsable_request")`: there is no API call to attribute. A key missing from
//!   the record altogether is a `MissingField` error (the log format is not what we expect).
//!
//! This module also holds the small JSON helpers the NGINX JSON parser shares: [`Scalar`],
//! [`Slots`] and [`derived_request_id`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::fields::{self, derived_request_id, present};
use super::flat_json;
use super::{
    check_line_bytes, utf8_or, Format, LineParser, ParseError, ParseErrorReason, Parsed,
    ParserContext,
};
use crate::event::{ApiEvent, Event, EventTime};
use crate::identity::{Credentials, Identified};

/// Parses Envoy JSON access-log lines (see the module documentation for the keys).
#[derive(Debug)]
pub struct EnvoyParser {
    ctx: ParserContext,
}

impl EnvoyParser {
    pub fn new(ctx: ParserContext) -> Self {
        Self { ctx }
    }
}

impl LineParser for EnvoyParser {
    fn format(&self) -> Format {
        Format::Envoy
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let bytes = check_line_bytes(line, self.ctx.max_line_bytes)?;
        let mut r = EnvoyRecord::default();
        parse_slots(bytes, &mut r)?;
        self.event(&r, bytes)
    }
}

impl EnvoyParser {
    fn event(&self, r: &EnvoyRecord<'_>, line: &[u8]) -> Result<Parsed, ParseError> {
        let ts = required_time("start_time", &r.start_time)?;
        let (Some(method), Some(target)) = (
            required_text("method", &r.method)?,
            required_text("path", &r.path)?,
        ) else {
            return Ok(Parsed::Skipped("unparsable_request"));
        };
        let status = envoy_status(&r.response_code)?;
        let identified = self.identify(r)?;
        let client_ip = identified
            .client_ip
            .ok_or_else(|| ParseError::missing("downstream_remote_address"))?;
        let path = fields::path_of(&target);
        Ok(Parsed::Event(Event::Api(ApiEvent {
            ts,
            request_id: text(r.request_id.as_ref())
                .map_or_else(|| derived_request_id(Format::Envoy, line), Cow::into_owned),
            route: crate::route::template(path),
            method: method.into_owned(),
            path: path.to_owned(),
            status,
            latency_ms: super::fields::latency_ms(
                "duration",
                float(&r.duration, "duration")?.unwrap_or(0.0),
            )?,
            bytes_in: uint(&r.bytes_received, "bytes_received")?.unwrap_or(0),
            bytes_out: uint(&r.bytes_sent, "bytes_sent")?.unwrap_or(0),
            client_ip,
            user_agent: text(r.user_agent.as_ref()).map_or_else(String::new, Cow::into_owned),
            identity: identified.identity,
            origin: Default::default(),
        })))
    }

    /// Identity and client address from the peer, `X-Forwarded-For` and credentials.
    fn identify(&self, r: &EnvoyRecord<'_>) -> Result<Identified, ParseError> {
        const PEER: &str = "downstream_remote_address";
        let peer = text(r.downstream_remote_address.as_ref())
            .or_else(|| text(r.downstream_direct_remote_address.as_ref()))
            .ok_or_else(|| ParseError::missing(PEER))?;
        let peer = peer_ip(PEER, &peer)?;
        let (authorization, api_key) = (text(r.authorization.as_ref()), text(r.x_api_key.as_ref()));
        let (cookie, forwarded_for) = (text(r.cookie.as_ref()), text(r.x_forwarded_for.as_ref()));
        let fingerprint = text(r.fingerprint.as_ref());
        Ok(self.ctx.identity.identify(&Credentials {
            authorization: authorization.as_deref(),
            api_key: api_key.as_deref(),
            cookie: cookie.as_deref(),
            cert_fingerprint: fingerprint.as_deref(),
            peer_ip: Some(peer),
            forwarded_for: forwarded_for.as_deref(),
            ..Credentials::default()
        }))
    }
}

/// `%RESPONSE_CODE%`: an HTTP status, or 0 when Envoy sent no response.
fn envoy_status(v: &Option<Scalar<'_>>) -> Result<u16, ParseError> {
    const FIELD: &str = "response_code";
    match uint(v, FIELD)? {
        None => Err(ParseError::missing(FIELD)),
        Some(n) => http_status(FIELD, n),
    }
}

/// A logged status: 100-599, or 0 when no response was sent (Envoy's `0`, NGINX's `000`).
pub(crate) fn http_status(field: &str, n: u64) -> Result<u16, ParseError> {
    match u16::try_from(n) {
        Ok(s) if s == 0 || (100..=599).contains(&s) => Ok(s),
        _ => Err(ParseError::invalid(
            field,
            format_args!("not an HTTP status: {n}"),
        )),
    }
}

/// The keys an Envoy record is read from; every other key is skipped unread.
#[derive(Debug, Default, PartialEq)]
struct EnvoyRecord<'a> {
    start_time: Option<Scalar<'a>>,
    method: Option<Scalar<'a>>,
    path: Option<Scalar<'a>>,
    response_code: Option<Scalar<'a>>,
    bytes_received: Option<Scalar<'a>>,
    bytes_sent: Option<Scalar<'a>>,
    duration: Option<Scalar<'a>>,
    x_forwarded_for: Option<Scalar<'a>>,
    user_agent: Option<Scalar<'a>>,
    request_id: Option<Scalar<'a>>,
    downstream_remote_address: Option<Scalar<'a>>,
    downstream_direct_remote_address: Option<Scalar<'a>>,
    authorization: Option<Scalar<'a>>,
    x_api_key: Option<Scalar<'a>>,
    cookie: Option<Scalar<'a>>,
    fingerprint: Option<Scalar<'a>>,
}

impl<'a> Slots<'a> for EnvoyRecord<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<Scalar<'a>>> {
        // Every key of every line comes through here. Switching on the length, then comparing
        // whole keys of that length (the compiler turns those into a word compare or two),
        // is several times cheaper than a `match` on strings, which compares byte by byte.
        let k = key.as_bytes();
        let is = |known: &[u8]| k == known;
        Some(match k.len() {
            4 if is(b"path") => &mut self.path,
            6 if is(b"method") => &mut self.method,
            6 if is(b"cookie") => &mut self.cookie,
            8 if is(b"duration") => &mut self.duration,
            9 if is(b"x_api_key") || is(b"x-api-key") => &mut self.x_api_key,
            10 if is(b"start_time") || is(b"@timestamp") => &mut self.start_time,
            10 if is(b"bytes_sent") => &mut self.bytes_sent,
            10 if is(b"user_agent") || is(b"user-agent") => &mut self.user_agent,
            10 if is(b"request_id") => &mut self.request_id,
            12 if is(b"x-request-id") || is(b"x_request_id") => &mut self.request_id,
            13 if is(b"response_code") => &mut self.response_code,
            13 if is(b"authorization") => &mut self.authorization,
            14 if is(b"bytes_received") => &mut self.bytes_received,
            15 if is(b"x_forwarded_for") || is(b"x-forwarded-for") => &mut self.x_forwarded_for,
            19 if is(b"x-envoy-origin-path") => &mut self.path,
            25 if is(b"downstream_remote_address") => &mut self.downstream_remote_address,
            31 if is(b"downstream_peer_fingerprint_256") => &mut self.fingerprint,
            32 if is(b"downstream_direct_remote_address") => {
                &mut self.downstream_direct_remote_address
            }
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// JSON helpers shared with the NGINX JSON parser.

/// One JSON scalar as access logs write it. Strings borrow from the line unless they contain
/// escapes, so a typical record is read without allocating.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    UInt(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or null")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
}

impl Scalar<'_> {
    /// The value as text; `None` when not set (`null`, `""` or `"-"`). Numbers are written out
    /// (a numeric request id is still an id).
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Str(s) => present(Some(s)).map(Cow::Borrowed),
            Scalar::UInt(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Int(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Float(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Scalar::Null => None,
        }
    }

    /// A non-negative finite number, from a JSON number or a numeric string.
    pub(crate) fn float(&self, field: &str) -> Result<Option<f64>, ParseError> {
        let n = match self {
            Scalar::UInt(n) => *n as f64,
            Scalar::Int(n) => *n as f64,
            Scalar::Float(n) => *n,
            Scalar::Null => return Ok(None),
            Scalar::Bool(_) => return Err(ParseError::wrong_type(field, "a number")),
            Scalar::Str(s) => match present(Some(s.trim())) {
                None => return Ok(None),
                Some(t) => t.parse::<f64>().map_err(|_| not_a_number(field, t))?,
            },
        };
        if n.is_finite() && n >= 0.0 {
            Ok(Some(n))
        } else {
            Err(ParseError::invalid(
                field,
                format_args!("not a non-negative number: {n}"),
            ))
        }
    }

    /// A non-negative integer, from a JSON number or a string of digits.
    pub(crate) fn uint(&self, field: &str) -> Result<Option<u64>, ParseError> {
        match self {
            Scalar::UInt(n) => Ok(Some(*n)),
            Scalar::Float(n) if n.is_finite() && *n >= 0.0 && n.fract() == 0.0 => {
                Ok(Some(*n as u64))
            }
            Scalar::Int(_) | Scalar::Float(_) => {
                Err(ParseError::invalid(field, "not a non-negative integer"))
            }
            Scalar::Null => Ok(None),
            Scalar::Bool(_) => Err(ParseError::wrong_type(field, "a number")),
            Scalar::Str(s) => match present(Some(s.trim())) {
                None => Ok(None),
                Some(t) => t
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| not_a_number(field, t)),
            },
        }
    }

    /// A timestamp: RFC 3339, the common log format or epoch seconds/ms as text, or an epoch
    /// number.
    pub(crate) fn time(&self, field: &str) -> Result<Option<EventTime>, ParseError> {
        match self {
            Scalar::Str(s) => present(Some(s))
                .map(|t| fields::parse_time(field, t))
                .transpose(),
            Scalar::Null => Ok(None),
            Scalar::Bool(_) => Err(ParseError::wrong_type(field, "a timestamp")),
            _ => self
                .float(field)?
                .map(|n| fields::checked_time(field, fields::epoch_number(n)))
                .transpose(),
        }
    }
}

fn not_a_number(field: &str, v: &str) -> ParseError {
    ParseError::invalid(field, format_args!("not a number: {v:?}"))
}

/// [`Scalar::text`] of an optional value.
pub(crate) fn text<'s>(v: Option<&'s Scalar<'_>>) -> Option<Cow<'s, str>> {
    v.and_then(Scalar::text)
}

/// [`Scalar::float`] of an optional value.
pub(crate) fn float(v: &Option<Scalar<'_>>, field: &str) -> Result<Option<f64>, ParseError> {
    v.as_ref().map_or(Ok(None), |s| s.float(field))
}

/// [`Scalar::uint`] of an optional value.
pub(crate) fn uint(v: &Option<Scalar<'_>>, field: &str) -> Result<Option<u64>, ParseError> {
    v.as_ref().map_or(Ok(None), |s| s.uint(field))
}

/// A timestamp that must be there.
pub(crate) fn required_time(field: &str, v: &Option<Scalar<'_>>) -> Result<EventTime, ParseError> {
    v.as_ref()
        .map_or(Ok(None), |s| s.time(field))?
        .ok_or_else(|| ParseError::missing(field))
}

/// A key the record must have; its value may still be "not set" (`Ok(None)`).
fn required_text<'s>(
    field: &str,
    v: &'s Option<Scalar<'_>>,
) -> Result<Option<Cow<'s, str>>, ParseError> {
    match v {
        None => Err(ParseError::missing(field)),
        Some(s) => Ok(s.text()),
    }
}

/// A peer address as gateways log it: `203.0.113.9`, `203.0.113.9:51234`, `2001:db8::1`,
/// `[2001:db8::1]:443`. IPv4-mapped IPv6 addresses are read as IPv4.
pub(crate) fn peer_ip(field: &str, v: &str) -> Result<IpAddr, ParseError> {
    let v = v.trim();
    // The usual `v4:port` first: the host before the last colon is an IPv4 address only when
    // that colon is the only one, and no whole address has a single colon, so the order of
    // the attempts changes no result; it saves two failed parses per line.
    let v4_port = v.rsplit_once(':').and_then(|(host, _)| host.parse().ok());
    let ip = v4_port
        .map(IpAddr::V4)
        .or_else(|| v.parse::<IpAddr>().ok())
        .or_else(|| v.strip_prefix('[')?.split_once(']')?.0.parse().ok());
    ip.map(|ip| ip.to_canonical())
        .ok_or_else(|| ParseError::invalid(field, format_args!("not an IP address: {v:?}")))
}

/// A record type whose known keys are kept as [`Scalar`]s. Unknown keys are skipped unread;
/// a key that appears twice (or under two aliases) keeps its last value.
pub(crate) trait Slots<'a>: Default {
    /// Where the value of `key` goes; `None` for keys the format does not use.
    fn slot(&mut self, key: &str) -> Option<&mut Option<Scalar<'a>>>;
}

/// Reads one JSON object into `record` (a fresh one), borrowing strings from `line`: the
/// common flat record with [`flat_json::scan`], anything else (and every error) with
/// serde_json. Filled in place: records are a few hundred bytes, worth not moving per line.
pub(crate) fn parse_slots<'a, T: Slots<'a>>(
    line: &'a [u8],
    record: &mut T,
) -> Result<(), ParseError> {
    if !flat_json::scan(line, record) {
        // The scan may have filled some slots before it gave up.
        *record = parse_slots_serde(line)?;
    }
    Ok(())
}

/// [`parse_slots`] by serde_json alone: the reference the fast path must agree with.
pub(crate) fn parse_slots_serde<'a, T: Slots<'a>>(line: &'a [u8]) -> Result<T, ParseError> {
    // A text log line often starts with `[` (Envoy's default format): call it malformed JSON,
    // not a JSON array of the wrong type.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ParseError::new(
            ParseErrorReason::MalformedJson,
            "not a JSON object",
        ));
    }
    // From bytes: serde_json checks UTF-8 inside strings as it reads them, which spares a
    // separate pass over the whole line.
    serde_json::from_slice::<SlotsOf<T>>(line)
        .map(|s| s.0)
        .map_err(|e| utf8_or(line, e))
}

struct SlotsOf<T>(T);

impl<'de, T: Slots<'de>> Deserialize<'de> for SlotsOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SlotsVisitor(PhantomData))
    }
}

struct SlotsVisitor<T>(PhantomData<T>);

impl<'de, T: Slots<'de>> Visitor<'de> for SlotsVisitor<T> {
    type Value = SlotsOf<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = T::default();
        while let Some(Key(key)) = map.next_key()? {
            match record.slot(&key) {
                Some(slot) => *slot = Some(map.next_value()?),
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(SlotsOf(record))
    }
}

/// A value the format does not use: scalars are read past directly (cheaper than
/// `IgnoredAny` with serde_json), nested objects and arrays are ignored whole.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Skip)
    }
}

/// An object key, borrowed from the line unless it contains escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// A realistic Envoy JSON access-log line, different for each `i` (method, path with object
/// ids, status, sizes, latency, client, user agent, credentials). It is a benchmark and test
/// fixture generator, deterministic in `i`; lines average about 420 bytes (one in 16 carries
/// a bearer JWT and is longer). `outrider bench parse` feeds these to [`EnvoyParser`].
pub fn sample_line(i: u64) -> String {
    const ROUTES: [(&str, &str); 6] = [
        ("GET", "/v1/accounts/{}/balance"),
        (
            "GET",
            "/v1/accounts/{}/transactions?limit=50&cursor=eyJwIjoxfQ",
        ),
        ("POST", "/v1/payments"),
        ("GET", "/v1/users/{}/profile"),
        ("PUT", "/v1/users/{}/settings"),
        ("DELETE", "/v1/sessions/{}"),
    ];
    const AGENTS: [&str; 4] = [
        "okhttp/4.12.0",
        "BankApp/7.3 (iPhone; iOS 17.4)",
        "python-requests/2.31.0",
        "Go-http-client/2.0",
    ];
    const STATUSES: [u16; 16] = [
        200, 200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 304, 401, 403, 404, 503,
    ];
    let h = mix(i);
    let (method, route) = ROUTES[(h % 6) as usize];
    let path = route.replace("{}", &(10_000 + (h >> 8) % 90_000).to_string());
    let status = STATUSES[((h >> 20) % 16) as usize];
    let ts = EventTime(1_795_341_600_000 + i as i64 * 3);
    let client = format!("203.0.{}.{}", (h >> 28) % 256, (h >> 36) % 254 + 1);
    // Mostly opaque tokens and API keys; a JWT now and then; some anonymous calls.
    let credential = match (h >> 44) % 16 {
        0 | 1 => String::new(),
        2 => format!(r#","authorization":"Bearer {}""#, sample_jwt(h)),
        3..=7 => format!(r#","x_api_key":"k_live_{:016x}""#, mix(h % 512)),
        _ => format!(r#","authorization":"Bearer at_{:024x}""#, mix(h % 4096)),
    };
    format!(
        concat!(
            r#"{{"start_time":"{ts}","method":"{method}","path":"{path}","protocol":"HTTP/2","#,
            r#""response_code":{status},"response_flags":"-","bytes_received":{bin},"#,
            r#""bytes_sent":{bout},"duration":{dur},"upstream_service_time":"{ust}","#,
            r#""x_forwarded_for":"{client}","user_agent":"{ua}","#,
            r#""request_id":"{rid:08x}-{r2:04x}-4{r3:03x}-a{r4:03x}-{r5:012x}","#,
            r#""downstream_remote_address":"10.0.0.{lb}:{port}"{credential}}}"#
        ),
        ts = ts,
        method = method,
        path = path,
        status = status,
        bin = if method == "GET" {
            0
        } else {
            64 + (h >> 12) % 2048
        },
        bout = 90 + (h >> 16) % 8192,
        dur = 1 + (h >> 24) % 250,
        ust = 1 + (h >> 26) % 200,
        client = client,
        ua = AGENTS[((h >> 48) % 4) as usize],
        rid = (h >> 32) as u32,
        r2 = (h >> 16) & 0xffff,
        r3 = (h >> 4) & 0xfff,
        r4 = (h >> 40) & 0xfff,
        r5 = mix(h) & 0xffff_ffff_ffff,
        lb = (h >> 60) + 2,
        port = 30_000 + (h >> 8) % 30_000,
        credential = credential,
    )
}

/// A compact unsigned JWT for `sample_line` (identification only ever reads the claims).
fn sample_jwt(h: u64) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = format!(
        r#"{{"sub":"user-{}","azp":"mobile-app","jti":"{:012x}","aud":"bank-api"}}"#,
        h % 1000,
        mix(h) & 0xffff_ffff_ffff
    );
    format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(&claims))
}

/// splitmix64: spreads consecutive integers over all 64 bits.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::{IdentityConfig, IdentityExtractor};
    use crate::parse::{ParseErrorReason, DEFAULT_MAX_LINE_BYTES};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// A typical ~400-byte Envoy line, as the default-format keys write it in JSON.
    pub(crate) const TYPICAL: &str = r#"{"start_time":"2026-11-22T10:00:00.123Z","method":"GET","path":"/v1/accounts/8812/transactions?limit=50","protocol":"HTTP/1.1","response_code":200,"response_flags":"-","bytes_received":0,"bytes_sent":1834,"duration":12,"upstream_service_time":"10","x_forwarded_for":"81.2.69.160","user_agent":"okhttp/4.12.0","request_id":"f21ebd42-6770-4aa5-88d4-e56118165a7d","authority":"api.example.com","upstream_host":"10.1.2.7:8080","downstream_remote_address":"10.0.0.5:51234"}"#;

    pub(crate) fn context() -> ParserContext {
        let config = IdentityConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..IdentityConfig::default()
        };
        ParserContext {
            identity: Arc::new(IdentityExtractor::with_key(&config, b"test-key")),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    fn parse(line: &str) -> Result<Parsed, ParseError> {
        EnvoyParser::new(context()).parse(line.as_bytes())
    }

    fn api(line: &str) -> ApiEvent {
        match parse(line) {
            Ok(Parsed::Event(Event::Api(e))) => e,
            other => panic!("expected an api event, got {other:?}"),
        }
    }

    fn reason(line: &str) -> ParseErrorReason {
        parse(line).expect_err("line should be refused").reason
    }

    #[test]
    fn a_typical_line_maps_every_field() {
        let e = api(TYPICAL);
        assert_eq!(e.ts, EventTime(1_795_341_600_123));
        assert_eq!(e.method, "GET");
        assert_eq!(e.path, "/v1/accounts/8812/transactions");
        assert_eq!(e.route, "/v1/accounts/{id}/transactions");
        assert_eq!((e.status, e.bytes_in, e.bytes_out), (200, 0, 1834));
        assert_eq!(e.latency_ms, 12.0);
        assert_eq!(e.request_id, "f21ebd42-6770-4aa5-88d4-e56118165a7d");
        assert_eq!(e.user_agent, "okhttp/4.12.0");
        assert_eq!(
            e.client_ip.to_string(),
            "81.2.69.160",
            "XFF through a trusted proxy"
        );
        assert_eq!(e.identity_key(), "ip:81.2.69.160");
        assert!(TYPICAL.len() > 350 && TYPICAL.len() < 500);
    }

    #[test]
    fn strings_numbers_dashes_and_nulls_read_alike() {
        let typed = api(TYPICAL);
        let strings = TYPICAL
            .replace(r#""response_code":200"#, r#""response_code":"200""#)
            .replace(r#""bytes_sent":1834"#, r#""bytes_sent":"1834""#)
            .replace(r#""duration":12"#, r#""duration":"12""#);
        assert_eq!(api(&strings), typed);
        let unset = TYPICAL
            .replace(r#""bytes_received":0"#, r#""bytes_received":"-""#)
            .replace(r#""user_agent":"okhttp/4.12.0""#, r#""user_agent":null"#);
        let e = api(&unset);
        assert_eq!((e.bytes_in, e.user_agent.as_str()), (0, ""));
    }

    #[test]
    fn header_style_keys_are_accepted() {
        let hyphens = TYPICAL
            .replace("\"x_forwarded_for\"", "\"x-forwarded-for\"")
            .replace("\"user_agent\"", "\"user-agent\"")
            .replace("\"request_id\"", "\"x-request-id\"")
            .replace("\"path\"", "\"x-envoy-origin-path\"")
            .replace("\"start_time\"", "\"@timestamp\"");
        assert_eq!(api(&hyphens), api(TYPICAL));
    }

    #[test]
    fn status_zero_is_kept_and_other_out_of_range_codes_are_refused() {
        let reset = TYPICAL.replace(r#""response_code":200"#, r#""response_code":0"#);
        assert_eq!(api(&reset).status, 0);
        let bad = TYPICAL.replace(r#""response_code":200"#, r#""response_code":600"#);
        assert_eq!(reason(&bad), ParseErrorReason::InvalidValue);
        let gone = TYPICAL.replace(r#""response_code":200,"#, "");
        assert_eq!(reason(&gone), ParseErrorReason::MissingField);
        let word = TYPICAL.replace(r#""response_code":200"#, r#""response_code":"OK""#);
        assert_eq!(reason(&word), ParseErrorReason::InvalidValue);
        let object = TYPICAL.replace(r#""response_code":200"#, r#""response_code":{}"#);
        assert_eq!(reason(&object), ParseErrorReason::WrongType);
    }

    #[test]
    fn an_unset_request_line_is_skipped_but_a_missing_key_is_an_error() {
        let codec_error = TYPICAL
            .replace(r#""method":"GET""#, r#""method":null"#)
            .replace(r#""response_code":200"#, r#""response_code":400"#);
        assert_eq!(
            parse(&codec_error),
            Ok(Parsed::Skipped("unparsable_request"))
        );
        let no_path = TYPICAL.replace(
            r#""path":"/v1/accounts/8812/transactions?limit=50""#,
            r#""path":"-""#,
        );
        assert_eq!(parse(&no_path), Ok(Parsed::Skipped("unparsable_request")));
        let no_key = TYPICAL.replace(r#""method":"GET","#, "");
        assert_eq!(reason(&no_key), ParseErrorReason::MissingField);
    }

    #[test]
    fn peers_in_every_notation() {
        let with_peer = |peer: &str| {
            TYPICAL
                .replace("10.0.0.5:51234", peer)
                .replace(r#""x_forwarded_for":"81.2.69.160","#, "")
        };
        let ip = |peer: &str| api(&with_peer(peer)).client_ip.to_string();
        assert_eq!(ip("[2001:db8::7]:443"), "2001:db8::7");
        assert_eq!(ip("2001:db8::7"), "2001:db8::7");
        assert_eq!(ip("192.0.2.1"), "192.0.2.1");
        assert_eq!(ip("[::ffff:192.0.2.1]:80"), "192.0.2.1");
        assert_eq!(
            reason(&with_peer("not-an-ip")),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(reason(&with_peer("-")), ParseErrorReason::MissingField);
        let direct = with_peer("-").replace(
            r#""downstream_remote_address":"-""#,
            r#""downstream_direct_remote_address":"198.51.100.3:4000""#,
        );
        assert_eq!(api(&direct).client_ip.to_string(), "198.51.100.3");
        let untrusted = TYPICAL.replace("10.0.0.5:51234", "192.0.2.9:1234");
        assert_eq!(
            api(&untrusted).client_ip.to_string(),
            "192.0.2.9",
            "XFF not believed"
        );
    }

    #[test]
    fn credentials_become_identities_and_never_appear_raw() {
        let line = sample_line(1);
        assert!(line.contains("authorization") || line.contains("x_api_key"));
        let jwt_line = (0..64)
            .map(sample_line)
            .find(|l| l.contains("Bearer ey"))
            .unwrap();
        let e = api(&jwt_line);
        assert!(e.identity.subject.as_deref().unwrap().starts_with("user-"));
        assert_eq!(e.identity.client_id.as_deref(), Some("mobile-app"));
        assert!(e
            .identity
            .token_id
            .as_deref()
            .unwrap()
            .ends_with("@bank-api"));
        let with = |extra: &str| TYPICAL.replace(r#""protocol""#, &format!("{extra},\"protocol\""));
        let key = api(&with(r#""x-api-key":"k_live_secret""#));
        assert!(key.identity.api_key_hash.is_some());
        let json = serde_json::to_string(&key).unwrap();
        assert!(!json.contains("k_live_secret"));
        let cookie = api(&with(r#""cookie":"theme=dark; session=s3cr3t""#));
        assert!(cookie.identity.session_hash.is_some());
        let fp = "a".repeat(64);
        let cert = api(&with(&format!(
            r#""downstream_peer_fingerprint_256":"{fp}""#
        )));
        assert_eq!(cert.identity.cert_thumbprint.as_deref(), Some(fp.as_str()));
    }

    #[test]
    fn a_missing_request_id_is_derived_stably() {
        let line = TYPICAL.replace(
            r#""request_id":"f21ebd42-6770-4aa5-88d4-e56118165a7d","#,
            "",
        );
        let (a, b) = (api(&line), api(&line));
        assert!(a.request_id.starts_with("envoy-") && a.request_id.len() == 22);
        assert_eq!(a.request_id, b.request_id);
        assert_ne!(a.request_id, api(&line.replace("8812", "8813")).request_id);
    }

    #[test]
    fn bad_lines_get_their_reasons() {
        assert_eq!(reason(""), ParseErrorReason::Empty);
        assert_eq!(reason("[1,2]"), ParseErrorReason::MalformedJson);
        assert_eq!(reason("\"a string\""), ParseErrorReason::MalformedJson);
        assert_eq!(reason(&TYPICAL[..200]), ParseErrorReason::Truncated);
        assert_eq!(
            reason(&format!("{TYPICAL}x")),
            ParseErrorReason::MalformedJson
        );
        let time = TYPICAL.replace("2026-11-22T10:00:00.123Z", "yesterday");
        assert_eq!(reason(&time), ParseErrorReason::InvalidValue);
        let bytes = TYPICAL.replace(r#""bytes_sent":1834"#, r#""bytes_sent":-1"#);
        assert_eq!(reason(&bytes), ParseErrorReason::InvalidValue);
    }

    #[test]
    fn sample_lines_parse_and_average_about_400_bytes() {
        let parser = EnvoyParser::new(context());
        let mut total = 0;
        for i in 0..1000 {
            let line = sample_line(i);
            total += line.len();
            match parser.parse(line.as_bytes()) {
                Ok(Parsed::Event(Event::Api(_))) => {}
                other => panic!("{line}: {other:?}"),
            }
        }
        let mean = total / 1000;
        assert!((400..460).contains(&mean), "mean line length {mean}");
    }

    /// `cargo test -p outrider-ingest --release envoy_parse_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn envoy_parse_speed() {
        let parser = EnvoyParser::new(context());
        let lines: Vec<String> = (0..10_000).map(sample_line).collect();
        let time = |lines: &[String], f: &dyn Fn(&[u8]) -> bool| {
            let start = std::time::Instant::now();
            for _ in 0..20 {
                for l in lines {
                    std::hint::black_box(f(l.as_bytes()));
                }
            }
            start.elapsed().as_nanos() as f64 / (20.0 * lines.len() as f64)
        };
        for (name, lines) in [
            ("typical", vec![TYPICAL.to_owned(); 10_000]),
            ("sample", lines),
        ] {
            let mean = lines.iter().map(String::len).sum::<usize>() / lines.len();
            let whole = time(&lines, &|l| parser.parse(l).is_ok());
            let scan = time(&lines, &|l| {
                flat_json::scan(l, &mut std::hint::black_box(EnvoyRecord::default()))
            });
            let serde = time(&lines, &|l| parse_slots_serde::<EnvoyRecord>(l).is_ok());
            println!(
                "{name}: {whole:.0} ns/line ({mean} bytes/line); reading the JSON alone: \
                 {scan:.0} ns with the flat scanner, {serde:.0} ns with serde_json"
            );
        }
    }

    /// `peer_ip` as it was before it tried `v4:port` first.
    fn reference_peer_ip(v: &str) -> Option<IpAddr> {
        let v = v.trim();
        let ip = v.parse::<IpAddr>().ok().or_else(|| {
            if let Some(rest) = v.strip_prefix('[') {
                return rest.split_once(']')?.0.parse().ok();
            }
            v.rsplit_once(':')?
                .0
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .map(IpAddr::V4)
        });
        ip.map(|ip| ip.to_canonical())
    }

    /// The parser as it was before the flat scanner: every line through serde_json.
    fn parse_by_serde(parser: &EnvoyParser, line: &[u8]) -> Result<Parsed, ParseError> {
        let bytes = check_line_bytes(line, parser.ctx.max_line_bytes)?;
        let r: EnvoyRecord<'_> = parse_slots_serde(bytes)?;
        parser.event(&r, bytes)
    }

    /// The fast path and serde_json agree on `line`: the same record when the scanner takes
    /// the line, and the same parse (event, skip or error with its detail) either way.
    fn assert_readers_agree(parser: &EnvoyParser, line: &[u8]) {
        let mut fast = EnvoyRecord::default();
        if flat_json::scan(line, &mut fast) {
            assert_eq!(
                Ok(fast),
                parse_slots_serde(line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            parser.parse(line),
            parse_by_serde(parser, line),
            "{}",
            String::from_utf8_lossy(line)
        );
    }

    fn scanned(line: &str) -> bool {
        flat_json::scan(line.as_bytes(), &mut EnvoyRecord::default())
    }

    #[test]
    fn the_fast_path_takes_ordinary_lines_and_leaves_the_rest() {
        assert!((0..2000).all(|i| scanned(&sample_line(i))));
        assert!(scanned(TYPICAL));
        let spaced = TYPICAL.replace("\":", "\" : ").replace(",\"", " , \"");
        assert!(scanned(&spaced), "spaces between tokens");
        // Tabs and line breaks are JSON whitespace too, but control characters for the
        // scanner's quote blocks: those (rare) lines go to serde_json.
        assert!(!scanned(&TYPICAL.replace(",\"", ",\t\"")));
        assert!(scanned(r#"{}"#) && scanned(r#" { } "#));
        assert!(scanned(r#"{"a":true,"b":false,"c":null,"d":0,"e":"é😀"}"#));
        for line in [
            r#"{"user_agent":"a\"b"}"#,
            "{\"user_agent\":\"tab\tinside\"}",
            r#"{"a":{"b":1}}"#,
            r#"{"a":[]}"#,
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":12345678901234567890}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "\u{c}{}",
            "{} x",
            r#"{"a":"b"#,
        ] {
            assert!(!scanned(line), "{line}");
        }
        assert!(!flat_json::scan(
            b"{\"a\":\"\xff\"}",
            &mut EnvoyRecord::default()
        ));
    }

    #[test]
    fn repeated_keys_and_aliases_keep_the_last_value_on_both_paths() {
        let parser = EnvoyParser::new(context());
        for extra in [
            r#""method":"POST","#,
            r#""path":"/v2/other/77","x-envoy-origin-path":"/v3/x","#,
            r#""@timestamp":"2026-11-22T11:00:00Z","#,
            r#""request_id":"a","x-request-id":"b","x_request_id":7,"#,
        ] {
            let first = TYPICAL.replacen('{', &format!("{{{extra}"), 1);
            let last = TYPICAL.replacen('}', &format!(",{}}}", extra.trim_end_matches(',')), 1);
            for line in [first, last] {
                assert!(scanned(&line));
                assert_readers_agree(&parser, line.as_bytes());
            }
        }
    }

    #[test]
    fn the_fuzz_corpora_read_alike_on_both_paths() {
        let parser = EnvoyParser::new(context());
        let corpora = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let mut lines = 0;
        for dir in std::fs::read_dir(corpora).expect("the fuzz corpora") {
            for file in std::fs::read_dir(dir.expect("a corpus").path()).expect("a corpus") {
                let bytes = std::fs::read(file.expect("a corpus file").path()).expect("readable");
                for line in bytes.split(|&b| b == b'\n') {
                    assert_readers_agree(&parser, line);
                    lines += 1;
                }
            }
        }
        assert!(lines > 100, "{lines} corpus lines");
    }

    /// Values that each reader must take (or refuse) alike: every JSON type, numbers at the
    /// edges of what the scanner reads itself, escapes, unicode and the texts fields parse.
    const VALUES: &[&str] = &[
        "{}",
        r#"{"a":[1,{"b":null}]}"#,
        "[1,2]",
        "[]",
        "-1",
        "-0",
        "0",
        "00",
        "01",
        "7",
        "1.5",
        "1e3",
        "1E-2",
        "18446744073709551615",
        "18446744073709551616",
        "12345678901234567890",
        "1234567890123456789",
        "true",
        "false",
        "null",
        "nul",
        "tru",
        r#""\u00e9t\u00e9""#,
        r#""a\"b""#,
        r#""\/v1\/accounts""#,
        r#""\ud83d\ude00""#,
        "\"é\"",
        r#""日本語""#,
        r#""😀""#,
        r#""""#,
        r#""-""#,
        r#"" 200 ""#,
        r#""2026-11-22T10:00:00.5Z""#,
        r#""2028-02-29T10:00:00Z""#,
        r#""2026-02-29T10:00:00Z""#,
        r#""2026-11-22T23:59:60Z""#,
        r#""1795341600""#,
        r#""10.0.0.1:80""#,
        r#""[::1]:443""#,
        r#""Bearer a.b.c""#,
    ];

    /// Fragments inserted anywhere: whitespace JSON allows and does not, escapes, quotes,
    /// structure, unicode, control characters and whole duplicate keys.
    const FRAGMENTS: &[&str] = &[
        " ",
        "\t",
        "\n",
        "\r",
        "\u{c}",
        "\\",
        "\\\"",
        "\\n",
        "\\u00e9",
        "é",
        "日本",
        "😀",
        "\"",
        ",",
        ":",
        "{",
        "}",
        "[]",
        "\u{7f}",
        "\u{0}",
        "\u{1f}",
        "0",
        "-",
        ".",
        r#","method":"POST""#,
        r#","path":"/dup/1""#,
        r#","@timestamp":"2026-11-22T10:00:01Z""#,
        r#","x-request-id":7"#,
        r#","duration":null"#,
    ];

    const BYTES: &[u8] = &[
        b'"', b'\\', b'{', b'}', b':', b',', b'-', b'0', b'9', b'.', b'e', b' ', 0x7f, 0x00, 0x1f,
        0xc3, 0xa9, 0xff, 0x80, b'\t', b'\n',
    ];

    /// One change to a line (positions are taken modulo the line's length).
    #[derive(Debug, Clone)]
    enum Edit {
        Insert(usize, &'static str),
        Replace(usize, u8),
        Delete(usize),
        Truncate(usize),
        /// The value after the n-th colon, up to the next `,` or `}`.
        Value(usize, &'static str),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), proptest::sample::select(FRAGMENTS))
                .prop_map(|(i, f)| Edit::Insert(i, f)),
            (any::<usize>(), proptest::sample::select(BYTES))
                .prop_map(|(i, b)| Edit::Replace(i, b)),
            any::<usize>().prop_map(Edit::Delete),
            any::<usize>().prop_map(Edit::Truncate),
            (any::<usize>(), proptest::sample::select(VALUES)).prop_map(|(i, v)| Edit::Value(i, v)),
        ]
    }

    fn apply(line: &mut Vec<u8>, edit: &Edit) {
        let at = |i: usize, len: usize| i % (len + 1);
        match *edit {
            Edit::Insert(i, text) => {
                let i = at(i, line.len());
                line.splice(i..i, text.bytes());
            }
            Edit::Replace(i, b) if !line.is_empty() => {
                let i = i % line.len();
                line[i] = b;
            }
            Edit::Delete(i) if !line.is_empty() => {
                line.remove(i % line.len());
            }
            Edit::Truncate(i) => line.truncate(at(i, line.len())),
            Edit::Value(n, text) => {
                let colons: Vec<usize> = (0..line.len()).filter(|&i| line[i] == b':').collect();
                if let Some(&colon) = colons.get(n % colons.len().max(1)) {
                    let end = (colon + 1..line.len())
                        .find(|&i| line[i] == b',' || line[i] == b'}')
                        .unwrap_or(line.len());
                    line.splice(colon + 1..end, text.bytes());
                }
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_fast_path_and_serde_json_agree_on_edited_lines(
            i in 0u64..4096,
            typical in any::<bool>(),
            edits in proptest::collection::vec(edit(), 0..4),
        ) {
            let mut line = if typical { TYPICAL.to_owned() } else { sample_line(i) }.into_bytes();
            for e in &edits {
                apply(&mut line, e);
            }
            assert_readers_agree(&EnvoyParser::new(context()), &line);
        }

        #[test]
        fn peers_read_as_before(v in "[ \\[]?([0-9]{1,3}[.:]){0,5}[0-9a-f:]{0,12}[\\]]?(:[0-9]{0,5})?[ ]?") {
            prop_assert_eq!(peer_ip("p", &v).ok(), reference_peer_ip(&v));
        }

        #[test]
        fn the_fast_path_and_serde_json_agree_on_arbitrary_flat_objects(
            pairs in proptest::collection::vec(
                (proptest::sample::select(&["method", "path", "start_time", "response_code",
                    "bytes_sent", "duration", "downstream_remote_address", "x-api-key", "cookie",
                    "authorization", "user_agent", "other", "é", ""][..]),
                 proptest::sample::select(VALUES)),
                0..12,
            ),
            ws in proptest::sample::select(&["", " ", "\t", "\n ", "\r\n"][..]),
        ) {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\"{ws}:{ws}{v}")).collect();
            let line = format!("{ws}{{{ws}{}{ws}}}{ws}", body.join(&format!("{ws},{ws}")));
            assert_readers_agree(&EnvoyParser::new(context()), line.as_bytes());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = EnvoyParser::new(context()).parse(&bytes);
        }

        #[test]
        fn strict_prefixes_are_refused(i in 0u64..1000, cut in 0usize..2000) {
            let line = sample_line(i);
            let cut = cut % line.len();
            prop_assert!(EnvoyParser::new(context()).parse(&line.as_bytes()[..cut]).is_err());
        }

        #[test]
        fn generated_lines_round_trip(
            status in prop_oneof![Just(0u16), 100u16..600],
            bytes_in in any::<u64>(),
            bytes_out in any::<u64>(),
            duration in 0u32..1_000_000,
            id in 0u64..1_000_000_000,
            quoted in any::<bool>(),
            v6 in any::<bool>(),
        ) {
            let q = |n: String| if quoted { format!("\"{n}\"") } else { n };
            let peer = if v6 { format!("[2001:db8::{:x}]:443", id % 0xffff) } else { format!("198.51.100.{}:80", id % 256) };
            let line = format!(
                r#"{{"start_time":"2026-11-22T10:00:00Z","method":"PATCH","path":"/o/{id}?x=1","response_code":{},"bytes_received":{},"bytes_sent":{},"duration":{},"downstream_remote_address":"{peer}"}}"#,
                q(status.to_string()), q(bytes_in.to_string()), q(bytes_out.to_string()), q(duration.to_string()),
            );
            let e = api(&line);
            prop_assert_eq!(e.status, status);
            prop_assert_eq!((e.bytes_in, e.bytes_out), (bytes_in, bytes_out));
            prop_assert_eq!(e.latency_ms, duration as f32);
            prop_assert_eq!(e.path, format!("/o/{id}"));
            prop_assert_eq!(e.route, "/o/{id}");
            prop_assert_eq!(e.client_ip, peer_ip("p", &peer).unwrap());
        }
    }
}
