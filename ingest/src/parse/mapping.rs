//! Any JSON log, read through configured field paths (`[source.mapping]`).
//!
//! For an in-house gateway or identity provider that no built-in format covers, the user
//! names where each event field lives in the record:
//!
//! ```toml
//! [source.mapping]
//! kind = "api"                      # "api" (access log) or "token" (token-server events)
//! time = "ts"
//! time_format = "epoch_ms"          # rfc3339 | clf | epoch_s | epoch_ms | epoch_us | auto
//! method = "req.method"
//! path = "req.url"                  # the query string is stripped
//! status = "res.status"
//! client_ip = 'net["peer.ip"]'      # a key containing a dot, quoted in brackets
//! forwarded_for = "req.headers.x-forwarded-for"
//! user_agent = "req.headers.User-Agent[0]"
//! latency_ms = "duration"
//! latency_unit = "s"                # ms | s | us
//! ```
//!
//! A path is a dotted list of object keys (`req.headers.x-forwarded-for`; any character but
//! `.` and `[` may appear in a key), with `[N]` for an array element and `["key"]` for a key
//! that contains `.` or `[`. Paths are compiled once, at construction; a bad configuration
//! is a [`crate::Error::Config`] naming the key, so it fails at start-up, not per line.
//!
//! Records are read as `serde_json::Value`: generic by nature, and slower than the built-in
//! formats' borrowed structs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    check_line, classify, fields, Format, LineParser, ParseError, ParseErrorReason, Parsed,
    ParserContext,
};
use crate::event::{ApiEvent, Event, EventTime, TokenEvent, TokenEventKind};
use crate::identity::{Credentials, Identified, IdentityExtractor};

/// The prefix of every key named in configuration errors.
const SECTION: &str = "source.mapping";

/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
const MAX_EVENT_MS: i64 = 253_402_300_799_999;

/// The skip reason of a token record whose event value no `token_events` list names.
pub const UNMAPPED_TOKEN_EVENT: &str = "unmapped_token_event";

/// `[source.mapping]`: where each event field lives in a JSON record.
///
/// Every `Option<String>` key is a field path (see the module docs). A mapped field that is
/// absent, `null`, `""` or `"-"` in a record counts as missing: an error for a required
/// field, the default (0, `""`, none) for an optional one. Where a number is expected, a
/// string holding one (`"200"`) is accepted too; where text is expected, a number is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingConfig {
    /// What the records are: gateway access-log records (`api`, the default) or token-server
    /// events (`token`).
    pub kind: MappingKind,

    // ----- Both kinds -----
    /// Required. The event time.
    pub time: Option<String>,
    /// How `time` is written (default `auto`: RFC 3339, CLF or an epoch number, whose unit is
    /// told apart by magnitude).
    pub time_format: TimeFormat,
    /// Required. The TCP peer address (`ip`, `ip:port` or `[ipv6]:port`). When it is a
    /// trusted proxy, `forwarded_for` is consulted for the client behind it.
    pub client_ip: Option<String>,
    /// The `X-Forwarded-For` header.
    pub forwarded_for: Option<String>,
    /// The `User-Agent` header (default `""`).
    pub user_agent: Option<String>,
    /// A subject the gateway or IdP authenticated itself (preferred over a JWT's `sub`); for
    /// a failed login, the user name that was tried.
    pub subject: Option<String>,
    /// A client (application) id the gateway or IdP authenticated.
    pub client_id: Option<String>,
    /// A token id (`jti`) the gateway or IdP logged.
    pub token_id: Option<String>,
    /// The `Authorization` header: a Bearer JWT is decoded for identification only, other
    /// tokens are hashed; the raw value is never kept.
    pub authorization: Option<String>,

    // ----- `kind = "api"` only -----
    /// Required for `api`. The HTTP method (normalised to upper case).
    pub method: Option<String>,
    /// Required for `api`. The request target; query string, fragment and any scheme and
    /// authority are stripped.
    pub path: Option<String>,
    /// Required for `api`. The HTTP status.
    pub status: Option<String>,
    /// The request id (default: a stable id derived from the record's bytes).
    pub request_id: Option<String>,
    /// The route template the gateway logged (default: derived from the path).
    pub route: Option<String>,
    /// The request duration (default 0), in `latency_unit`s.
    pub latency_ms: Option<String>,
    /// The unit of `latency_ms` (default `ms`).
    pub latency_unit: Option<LatencyUnit>,
    /// Request bytes (default 0).
    pub bytes_in: Option<String>,
    /// Response bytes (default 0).
    pub bytes_out: Option<String>,
    /// An API key header value (hashed; never kept).
    pub api_key: Option<String>,
    /// The `Cookie` header (the session cookie's value is hashed; never kept).
    pub cookie: Option<String>,
    /// The mTLS client certificate's SHA-256 fingerprint.
    pub cert_fingerprint: Option<String>,

    // ----- `kind = "token"` only -----
    /// The OAuth grant type.
    pub grant_type: Option<String>,
    /// Required for `token`: which value of which field means which event.
    pub token_events: Option<TokenEventsConfig>,
}

/// The record kind a mapping produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingKind {
    #[default]
    Api,
    Token,
}

/// How the `time` field is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `2026-11-22T10:00:00.123Z` (an offset is required).
    Rfc3339,
    /// The common log format, `22/Nov/2026:10:00:00 +0000` (brackets allowed).
    Clf,
    /// Seconds since the epoch, fractions allowed; a number or a numeric string.
    EpochS,
    /// Milliseconds since the epoch.
    EpochMs,
    /// Microseconds since the epoch.
    EpochUs,
    /// Any of the above; epoch numbers are told apart by magnitude.
    #[default]
    Auto,
}

/// The unit of the mapped `latency_ms` field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyUnit {
    #[default]
    Ms,
    S,
    Us,
}

impl LatencyUnit {
    fn to_ms(self) -> f64 {
        match self {
            LatencyUnit::Ms => 1.0,
            LatencyUnit::S => 1000.0,
            LatencyUnit::Us => 0.001,
        }
    }
}

/// `[source.mapping.token_events]`: the values of `field` that mean each event. Values are
/// compared exactly (case-sensitive); a number in a record matches its decimal text, so
/// `login_failure = [4625]` and `["4625"]` both match `4625` and `"4625"`. A record whose
/// value no list names is skipped (`unmapped_token_event`): IdPs log many events that carry
/// no signal for detection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenEventsConfig {
    /// Required. The field path of the event type.
    pub field: Option<String>,
    pub login_success: Vec<EventValue>,
    pub login_failure: Vec<EventValue>,
    pub token_issued: Vec<EventValue>,
    pub token_refreshed: Vec<EventValue>,
    pub token_revoked: Vec<EventValue>,
    pub logout: Vec<EventValue>,
}

/// One event-type value: text or an integer code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventValue {
    Text(String),
    Code(i64),
}

impl EventValue {
    fn as_text(&self) -> Cow<'_, str> {
        match self {
            EventValue::Text(s) => Cow::Borrowed(s),
            EventValue::Code(n) => Cow::Owned(n.to_string()),
        }
    }
}

/// Reads records through a compiled [`MappingConfig`].
#[derive(Debug)]
pub struct MappingParser {
    ctx: ParserContext,
    m: Compiled,
}

impl MappingParser {
    /// Validates the mapping and compiles its paths; errors name the offending key.
    pub fn new(ctx: ParserContext, mapping: MappingConfig) -> crate::Result<Self> {
        Ok(Self {
            ctx,
            m: Compiled::new(&mapping)?,
        })
    }
}

impl LineParser for MappingParser {
    fn format(&self) -> Format {
        Format::Mapping
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let text = check_line(line, self.ctx.max_line_bytes)?;
        let root: Value = serde_json::from_str(text).map_err(classify)?;
        if !root.is_object() {
            return Err(ParseError::wrong_type("record", "a JSON object"));
        }
        match &self.m.kind {
            Kind::Api(api) => self.api(api, &root, text),
            Kind::Token(token) => self.token(token, &root),
        }
    }
}

impl MappingParser {
    fn api(&self, p: &ApiPaths, root: &Value, line: &str) -> Result<Parsed, ParseError> {
        let m = &self.m;
        let ts = m.time(root)?;
        let method = method(&p.method, required_text(root, &p.method)?)?;
        let target = required_text(root, &p.path)?;
        let path = fields::path_of(&target).to_owned();
        if path.is_empty() {
            return Err(ParseError::invalid(
                &p.path.text,
                format_args!("no path in {target:?}"),
            ));
        }
        let status = status(&p.status, root)?;
        let route = match optional_text(root, p.route.as_ref())? {
            Some(r) => r.into_owned(),
            None => crate::route::template(&path),
        };
        let request_id = match optional_text(root, p.request_id.as_ref())? {
            Some(id) => id.into_owned(),
            None => format!("mapping-{:016x}", fnv1a(line.as_bytes())),
        };
        let latency_ms = latency(p, root)?;
        let bytes_in = optional_u64(root, p.bytes_in.as_ref())?;
        let bytes_out = optional_u64(root, p.bytes_out.as_ref())?;
        let api_key = optional_text(root, p.api_key.as_ref())?;
        let cookie = optional_text(root, p.cookie.as_ref())?;
        let cert = optional_text(root, p.cert_fingerprint.as_ref())?;
        let extra = Extra {
            api_key: api_key.as_deref(),
            cookie: cookie.as_deref(),
            cert_fingerprint: cert.as_deref(),
        };
        let (who, user_agent) = m.identify(&self.ctx.identity, root, extra)?;
        Ok(Parsed::Event(Event::Api(ApiEvent {
            ts,
            request_id,
            route,
            method,
            path,
            status,
            latency_ms,
            bytes_in,
            bytes_out,
            client_ip: who.ip,
            user_agent,
            identity: who.identity,
            origin: Default::default(),
        })))
    }

    fn token(&self, p: &TokenPaths, root: &Value) -> Result<Parsed, ParseError> {
        let m = &self.m;
        // The event type first: a record that will be skipped need not be complete.
        let value = required_text(root, &p.field)?;
        let Some(&event) = p.values.get(value.as_ref()) else {
            return Ok(Parsed::Skipped(UNMAPPED_TOKEN_EVENT));
        };
        let ts = m.time(root)?;
        let grant_type = optional_text(root, p.grant_type.as_ref())?.map(Cow::into_owned);
        let (who, user_agent) = m.identify(&self.ctx.identity, root, Extra::default())?;
        Ok(Parsed::Event(Event::Token(TokenEvent {
            ts,
            event,
            subject: who.identity.subject,
            client_id: who.identity.client_id,
            grant_type,
            token_id: who.identity.token_id,
            client_ip: who.ip,
            user_agent,
        })))
    }
}

// ---------------------------------------------------------------------------------------
// Compiled configuration
// ---------------------------------------------------------------------------------------

/// A field path split into segments once, at construction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath {
    /// The path as configured, for error details.
    text: Box<str>,
    segments: Box<[Segment]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object key; `index` is its value as a number, so that `a.0` also reads an array.
    Key {
        name: Box<str>,
        index: Option<usize>,
    },
    /// `[N]`: an array element.
    Index(usize),
}

#[derive(Debug)]
struct Compiled {
    time: FieldPath,
    time_format: TimeFormat,
    client_ip: FieldPath,
    forwarded_for: Option<FieldPath>,
    user_agent: Option<FieldPath>,
    subject: Option<FieldPath>,
    client_id: Option<FieldPath>,
    token_id: Option<FieldPath>,
    authorization: Option<FieldPath>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Api(Box<ApiPaths>),
    Token(TokenPaths),
}

#[derive(Debug)]
struct ApiPaths {
    method: FieldPath,
    path: FieldPath,
    status: FieldPath,
    request_id: Option<FieldPath>,
    route: Option<FieldPath>,
    latency: Option<FieldPath>,
    latency_unit: LatencyUnit,
    bytes_in: Option<FieldPath>,
    bytes_out: Option<FieldPath>,
    api_key: Option<FieldPath>,
    cookie: Option<FieldPath>,
    cert_fingerprint: Option<FieldPath>,
}

#[derive(Debug)]
struct TokenPaths {
    field: FieldPath,
    values: HashMap<String, TokenEventKind>,
    grant_type: Option<FieldPath>,
}

fn config_error(key: &str, why: impl std::fmt::Display) -> crate::Error {
    crate::Error::Config(format!("`{SECTION}.{key}`: {why}"))
}

fn optional_path(key: &str, v: Option<&String>) -> crate::Result<Option<FieldPath>> {
    v.map(|text| FieldPath::compile(text).map_err(|why| config_error(key, why)))
        .transpose()
}

fn required_path(key: &str, v: Option<&String>, kind: &str) -> crate::Result<FieldPath> {
    optional_path(key, v)?
        .ok_or_else(|| config_error(key, format_args!("required for kind = \"{kind}\"")))
}

/// Refuses keys that the other kind uses: set for this kind, they would silently do nothing.
fn refuse_keys(kind: &str, keys: &[(&str, bool)]) -> crate::Result<()> {
    match keys.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(config_error(
            key,
            format_args!("not used by kind = \"{kind}\""),
        )),
        None => Ok(()),
    }
}

impl Compiled {
    fn new(c: &MappingConfig) -> crate::Result<Self> {
        let kind_name = match c.kind {
            MappingKind::Api => "api",
            MappingKind::Token => "token",
        };
        Ok(Self {
            time: required_path("time", c.time.as_ref(), kind_name)?,
            time_format: c.time_format,
            client_ip: required_path("client_ip", c.client_ip.as_ref(), kind_name)?,
            forwarded_for: optional_path("forwarded_for", c.forwarded_for.as_ref())?,
            user_agent: optional_path("user_agent", c.user_agent.as_ref())?,
            subject: optional_path("subject", c.subject.as_ref())?,
            client_id: optional_path("client_id", c.client_id.as_ref())?,
            token_id: optional_path("token_id", c.token_id.as_ref())?,
            authorization: optional_path("authorization", c.authorization.as_ref())?,
            // Checked after the common keys, so that errors come in the order keys are listed.
            kind: match c.kind {
                MappingKind::Api => Kind::Api(Box::new(ApiPaths::new(c)?)),
                MappingKind::Token => Kind::Token(TokenPaths::new(c)?),
            },
        })
    }
}

impl ApiPaths {
    fn new(c: &MappingConfig) -> crate::Result<Self> {
        refuse_keys(
            "api",
            &[
                ("grant_type", c.grant_type.is_some()),
                ("token_events", c.token_events.is_some()),
            ],
        )?;
        let req = |key, v| required_path(key, v, "api");
        Ok(Self {
            method: req("method", c.method.as_ref())?,
            path: req("path", c.path.as_ref())?,
            status: req("status", c.status.as_ref())?,
            request_id: optional_path("request_id", c.request_id.as_ref())?,
            route: optional_path("route", c.route.as_ref())?,
            latency: optional_path("latency_ms", c.latency_ms.as_ref())?,
            latency_unit: c.latency_unit.unwrap_or_default(),
            bytes_in: optional_path("bytes_in", c.bytes_in.as_ref())?,
            bytes_out: optional_path("bytes_out", c.bytes_out.as_ref())?,
            api_key: optional_path("api_key", c.api_key.as_ref())?,
            cookie: optional_path("cookie", c.cookie.as_ref())?,
            cert_fingerprint: optional_path("cert_fingerprint", c.cert_fingerprint.as_ref())?,
        })
    }
}

impl TokenPaths {
    fn new(c: &MappingConfig) -> crate::Result<Self> {
        refuse_keys(
            "token",
            &[
                ("method", c.method.is_some()),
                ("path", c.path.is_some()),
                ("status", c.status.is_some()),
                ("request_id", c.request_id.is_some()),
                ("route", c.route.is_some()),
                ("latency_ms", c.latency_ms.is_some()),
                ("latency_unit", c.latency_unit.is_some()),
                ("bytes_in", c.bytes_in.is_some()),
                ("bytes_out", c.bytes_out.is_some()),
                ("api_key", c.api_key.is_some()),
                ("cookie", c.cookie.is_some()),
                ("cert_fingerprint", c.cert_fingerprint.is_some()),
            ],
        )?;
        let events = c.token_events.as_ref().ok_or_else(|| {
            config_error(
                "token_events",
                "required for kind = \"token\" (a table naming the event-type field and its values)",
            )
        })?;
        Ok(Self {
            field: required_path("token_events.field", events.field.as_ref(), "token")?,
            values: event_values(events)?,
            grant_type: optional_path("grant_type", c.grant_type.as_ref())?,
        })
    }
}

fn event_values(t: &TokenEventsConfig) -> crate::Result<HashMap<String, TokenEventKind>> {
    let lists = [
        (
            "login_success",
            &t.login_success,
            TokenEventKind::LoginSuccess,
        ),
        (
            "login_failure",
            &t.login_failure,
            TokenEventKind::LoginFailure,
        ),
        ("token_issued", &t.token_issued, TokenEventKind::TokenIssued),
        (
            "token_refreshed",
            &t.token_refreshed,
            TokenEventKind::TokenRefreshed,
        ),
        (
            "token_revoked",
            &t.token_revoked,
            TokenEventKind::TokenRevoked,
        ),
        ("logout", &t.logout, TokenEventKind::Logout),
    ];
    let mut values = HashMap::new();
    for (key, list, kind) in lists {
        let key = format!("token_events.{key}");
        for v in list {
            let text = v.as_text();
            if text.is_empty() {
                return Err(config_error(&key, "an empty value"));
            }
            if let Some(other) = values.insert(text.clone().into_owned(), kind) {
                if other != kind {
                    return Err(config_error(
                        &key,
                        format_args!("{text:?} is also listed for another event ({other:?})"),
                    ));
                }
            }
        }
    }
    if values.is_empty() {
        return Err(config_error(
            "token_events",
            "lists no values (set e.g. login_success = [\"LOGIN\"])",
        ));
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

impl FieldPath {
    /// Compiles `a.b-c[0]["d.e"]`; the error says what is wrong with the path.
    fn compile(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("an empty field path".into());
        }
        let mut segments = Vec::new();
        let mut rest = text;
        let mut need_key = false; // right after a '.'
        while !rest.is_empty() {
            if let Some(inner) = rest.strip_prefix('[') {
                if need_key {
                    return Err(format!("an empty key before `[` in {text:?}"));
                }
                let (seg, after) = bracket(inner).map_err(|why| format!("{why} in {text:?}"))?;
                segments.push(seg);
                rest = after;
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let name = &rest[..end];
                if name.is_empty() {
                    return Err(format!("an empty key in {text:?}"));
                }
                if name.contains(']') {
                    return Err(format!("a stray `]` in {text:?}"));
                }
                segments.push(Segment::key(name));
                rest = &rest[end..];
            }
            need_key = false;
            if let Some(after) = rest.strip_prefix('.') {
                rest = after;
                need_key = true;
            } else if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("expected `.` or `[` after `]` in {text:?}"));
            }
        }
        if need_key {
            return Err(format!("a trailing `.` in {text:?}"));
        }
        Ok(Self {
            text: text.into(),
            segments: segments.into(),
        })
    }

    /// The value at this path; `None` when a key or element is absent or the value is null.
    /// Stepping into a scalar is a wrong type: the record's shape is not what was configured.
    fn get<'v>(&self, root: &'v Value) -> Result<Option<&'v Value>, ParseError> {
        let mut v = root;
        for (i, seg) in self.segments.iter().enumerate() {
            let next = match (seg, v) {
                (Segment::Key { name, .. }, Value::Object(map)) => map.get(&**name),
                (Segment::Key { index: Some(n), .. } | Segment::Index(n), Value::Array(a)) => {
                    a.get(*n)
                }
                (_, Value::Null) => None,
                (seg, _) => return Err(self.step_error(i, seg)),
            };
            match next {
                Some(n) => v = n,
                None => return Ok(None),
            }
        }
        Ok((!v.is_null()).then_some(v))
    }

    fn step_error(&self, at: usize, seg: &Segment) -> ParseError {
        let expected = match seg {
            Segment::Key { .. } => "an object",
            Segment::Index(_) => "an array",
        };
        ParseError::new(
            ParseErrorReason::WrongType,
            format!(
                "`{}`: expected {expected} at segment {} of the path",
                self.text,
                at + 1
            ),
        )
    }
}

impl Segment {
    fn key(name: &str) -> Self {
        Segment::Key {
            name: name.into(),
            index: name
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| name.parse().ok())
                .flatten(),
        }
    }
}

/// Reads the inside of `[...]` (the `[` already consumed): `N]` or `"key"]` / `'key']`.
fn bracket(inner: &str) -> Result<(Segment, &str), String> {
    if let Some(quote) = inner.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let body = &inner[1..];
        let mut name = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => name.push(escaped),
                    None => break,
                },
                c if c == quote => {
                    let after = &body[i + 1..];
                    let rest = after
                        .strip_prefix(']')
                        .ok_or_else(|| format!("expected `]` after the quoted key {name:?}"))?;
                    return Ok((Segment::key(&name), rest));
                }
                c => name.push(c),
            }
        }
        return Err("an unterminated quoted key".into());
    }
    let end = inner.find(']').ok_or("an unclosed `[`")?;
    let index = inner[..end]
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("`[{}]` is neither an index nor a quoted key", &inner[..end]))?;
    Ok((Segment::Index(index), &inner[end + 1..]))
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// A value as text: strings as they are, numbers and booleans in their JSON notation.
/// `""` and `"-"` count as absent, as access logs write them.
fn as_text<'v>(path: &FieldPath, v: &'v Value) -> Result<Option<Cow<'v, str>>, ParseError> {
    match v {
        Value::String(s) => Ok(fields::present(Some(s)).map(Cow::Borrowed)),
        Value::Number(n) => Ok(Some(Cow::Owned(n.to_string()))),
        Value::Bool(b) => Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" }))),
        _ => Err(ParseError::wrong_type(&path.text, "a string or a number")),
    }
}

fn optional_text<'v>(
    root: &'v Value,
    path: Option<&FieldPath>,
) -> Result<Option<Cow<'v, str>>, ParseError> {
    let Some(path) = path else { return Ok(None) };
    match path.get(root)? {
        Some(v) => as_text(path, v),
        None => Ok(None),
    }
}

fn required_text<'v>(root: &'v Value, path: &FieldPath) -> Result<Cow<'v, str>, ParseError> {
    optional_text(root, Some(path))?.ok_or_else(|| ParseError::missing(&path.text))
}

/// A number, or a string holding one; `None` when absent.
fn number(path: &FieldPath, v: &Value) -> Result<Option<f64>, ParseError> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match fields::present(Some(s.trim())) {
            None => return Ok(None),
            Some(s) => Some(s.parse::<f64>().map_err(|_| {
                ParseError::invalid(&path.text, format_args!("not a number: {s:?}"))
            })?),
        },
        _ => return Err(ParseError::wrong_type(&path.text, "a number")),
    };
    match n {
        Some(n) if n.is_finite() => Ok(Some(n)),
        _ => Err(ParseError::invalid(&path.text, "not a finite number")),
    }
}

/// A non-negative number (default 0).
fn optional_f64(root: &Value, path: Option<&FieldPath>) -> Result<f64, ParseError> {
    let Some(path) = path else { return Ok(0.0) };
    let Some(v) = path.get(root)? else {
        return Ok(0.0);
    };
    match number(path, v)? {
        None => Ok(0.0),
        Some(n) if n >= 0.0 => Ok(n),
        Some(n) => Err(ParseError::invalid(
            &path.text,
            format_args!("negative: {n}"),
        )),
    }
}

/// A non-negative integer (default 0); exact for JSON integers, whole floats accepted.
fn optional_u64(root: &Value, path: Option<&FieldPath>) -> Result<u64, ParseError> {
    let Some(path) = path else { return Ok(0) };
    let Some(v) = path.get(root)? else {
        return Ok(0);
    };
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    if let Some(n) = v.as_str().and_then(|s| s.trim().parse::<u64>().ok()) {
        return Ok(n);
    }
    match number(path, v)? {
        None => Ok(0),
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n < u64::MAX as f64 => Ok(n as u64),
        Some(n) => Err(ParseError::invalid(
            &path.text,
            format_args!("not a non-negative integer: {n}"),
        )),
    }
}

/// The latency in milliseconds; one that does not fit an `f32` is refused, not made infinite.
fn latency(p: &ApiPaths, root: &Value) -> Result<f32, ParseError> {
    let ms = optional_f64(root, p.latency.as_ref())? * p.latency_unit.to_ms();
    let ms32 = ms as f32;
    match &p.latency {
        Some(path) if !ms32.is_finite() => Err(ParseError::invalid(
            &path.text,
            format_args!("out of range: {ms} ms"),
        )),
        _ => Ok(ms32),
    }
}

fn status(path: &FieldPath, root: &Value) -> Result<u16, ParseError> {
    let v = path
        .get(root)?
        .ok_or_else(|| ParseError::missing(&path.text))?;
    let n = number(path, v)?.ok_or_else(|| ParseError::missing(&path.text))?;
    if n.fract() == 0.0 && (100.0..=599.0).contains(&n) {
        Ok(n as u16)
    } else {
        Err(ParseError::invalid(
            &path.text,
            format_args!("not an HTTP status: {n}"),
        ))
    }
}

/// The method in upper case; it must be an HTTP token (letters, digits, `-`, `_`).
fn method(path: &FieldPath, v: Cow<'_, str>) -> Result<String, ParseError> {
    let v = v.trim();
    let token = v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token {
        return Err(ParseError::invalid(
            &path.text,
            format_args!("not an HTTP method: {v:?}"),
        ));
    }
    Ok(v.to_ascii_uppercase())
}

/// `ip`, `ip:port` or `[ipv6]:port`.
fn peer_ip(path: &FieldPath, v: &str) -> Result<IpAddr, ParseError> {
    let v = v.trim();
    let parsed = v.parse().ok().or_else(|| {
        if let Some(rest) = v.strip_prefix('[') {
            rest.split(']').next()?.parse().ok()
        } else {
            let (host, port) = v.rsplit_once(':')?;
            port.parse::<u16>().ok()?;
            host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
        }
    });
    parsed.ok_or_else(|| ParseError::invalid(&path.text, format_args!("not an IP address: {v:?}")))
}

impl Compiled {
    /// The event time, refused outside 1970..=9999: such a time is a misconfigured unit or
    /// garbage, and RFC 3339 (the canonical format) cannot write years past 9999.
    fn time(&self, root: &Value) -> Result<EventTime, ParseError> {
        let t = self.raw_time(root)?;
        if (0..=MAX_EVENT_MS).contains(&t.0) {
            Ok(t)
        } else {
            Err(ParseError::invalid(
                &self.time.text,
                format_args!("out of range (1970 to 9999): {} ms since the epoch", t.0),
            ))
        }
    }

    fn raw_time(&self, root: &Value) -> Result<EventTime, ParseError> {
        let path = &self.time;
        let v = path
            .get(root)?
            .ok_or_else(|| ParseError::missing(&path.text))?;
        if matches!(v, Value::String(s) if fields::present(Some(s)).is_none()) {
            return Err(ParseError::missing(&path.text));
        }
        let bad = |s: &str| {
            ParseError::invalid(
                &path.text,
                format_args!("not a {:?} time: {s:?}", self.time_format),
            )
        };
        let text = || {
            v.as_str()
                .map(str::trim)
                .ok_or_else(|| ParseError::wrong_type(&path.text, "a timestamp string"))
        };
        let epoch = |scale: f64| -> Result<EventTime, ParseError> {
            let n = number(path, v)?.ok_or_else(|| ParseError::missing(&path.text))?;
            epoch_millis(n * scale).ok_or_else(|| bad(&n.to_string()))
        };
        match self.time_format {
            TimeFormat::Rfc3339 => {
                let s = text()?;
                DateTime::parse_from_rfc3339(s)
                    .map(|t| EventTime(t.timestamp_millis()))
                    .map_err(|_| bad(s))
            }
            TimeFormat::Clf => {
                let s = text()?;
                let inner = s.trim_start_matches('[').trim_end_matches(']');
                DateTime::parse_from_str(inner, "%d/%b/%Y:%H:%M:%S %z")
                    .map(|t| EventTime(t.timestamp_millis()))
                    .map_err(|_| bad(s))
            }
            TimeFormat::EpochS => epoch(1000.0),
            TimeFormat::EpochMs => epoch(1.0),
            TimeFormat::EpochUs => epoch(0.001),
            TimeFormat::Auto => match v {
                Value::Number(_) => {
                    let n = number(path, v)?.unwrap_or(-1.0);
                    if n < 0.0 {
                        return Err(bad(&n.to_string()));
                    }
                    Ok(fields::epoch_number(n))
                }
                _ => fields::parse_time(&path.text, text()?),
            },
        }
    }

    /// Identity and client address through the shared extractor, plus the user agent.
    fn identify(
        &self,
        ids: &IdentityExtractor,
        root: &Value,
        extra: Extra<'_>,
    ) -> Result<(Who, String), ParseError> {
        let peer = required_text(root, &self.client_ip)?;
        let peer = peer_ip(&self.client_ip, &peer)?;
        let text = |p: &Option<FieldPath>| optional_text(root, p.as_ref());
        let forwarded_for = text(&self.forwarded_for)?;
        let authorization = text(&self.authorization)?;
        let subject = text(&self.subject)?;
        let client_id = text(&self.client_id)?;
        let token_id = text(&self.token_id)?;
        let user_agent = text(&self.user_agent)?.map(Cow::into_owned);
        let Identified {
            identity,
            client_ip,
        } = ids.identify(&Credentials {
            authorization: authorization.as_deref(),
            api_key: extra.api_key,
            cookie: extra.cookie,
            cert_fingerprint: extra.cert_fingerprint,
            peer_ip: Some(peer),
            forwarded_for: forwarded_for.as_deref(),
            subject: subject.as_deref(),
            client_id: client_id.as_deref(),
            token_id: token_id.as_deref(),
        });
        let ip = client_ip.ok_or_else(|| ParseError::missing(&self.client_ip.text))?;
        Ok((Who { identity, ip }, user_agent.unwrap_or_default()))
    }
}

/// Credentials only access-log records carry.
#[derive(Debug, Default, Clone, Copy)]
struct Extra<'a> {
    api_key: Option<&'a str>,
    cookie: Option<&'a str>,
    cert_fingerprint: Option<&'a str>,
}

#[derive(Debug)]
struct Who {
    identity: crate::event::Identity,
    ip: IpAddr,
}

/// Milliseconds as an event time; `None` when negative, not finite or out of range.
fn epoch_millis(ms: f64) -> Option<EventTime> {
    (ms.is_finite() && ms >= 0.0 && ms < i64::MAX as f64).then(|| EventTime(ms.round() as i64))
}

/// FNV-1a: a stable (across builds and releases) hash for derived request ids.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::identity::{IdentityConfig, IdentityExtractor};
    use crate::parse::DEFAULT_MAX_LINE_BYTES;

    fn ctx() -> ParserContext {
        let config = IdentityConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..IdentityConfig::default()
        };
        ParserContext {
            identity: Arc::new(IdentityExtractor::with_key(&config, b"k")),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    fn api_config() -> MappingConfig {
        toml::from_str(
            r#"
            time = "ts"
            time_format = "epoch_ms"
            method = "req.method"
            path = "req.url"
            status = "res.status"
            client_ip = 'net["peer.ip"]'
            forwarded_for = "req.headers.x-forwarded-for"
            user_agent = "req.headers.User-Agent[0]"
            request_id = "id"
            bytes_out = "res.bytes"
            latency_ms = "duration"
            latency_unit = "s"
            subject = "user.id"
            "#,
        )
        .unwrap()
    }

    fn token_config() -> MappingConfig {
        toml::from_str(
            r#"
            kind = "token"
            time = "time"
            time_format = "rfc3339"
            client_ip = "ip"
            subject = "user"
            grant_type = "grant"
            [token_events]
            field = "type"
            login_success = ["LOGIN"]
            login_failure = ["LOGIN_ERROR", 4625]
            "#,
        )
        .unwrap()
    }

    fn parser(m: MappingConfig) -> MappingParser {
        MappingParser::new(ctx(), m).unwrap()
    }

    fn config_error(m: MappingConfig) -> String {
        match MappingParser::new(ctx(), m) {
            Err(crate::Error::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    fn api(p: &MappingParser, line: &str) -> ApiEvent {
        match p.parse(line.as_bytes()) {
            Ok(Parsed::Event(Event::Api(e))) => e,
            other => panic!("expected an api event, got {other:?}"),
        }
    }

    fn reason(p: &MappingParser, line: &str) -> ParseErrorReason {
        p.parse(line.as_bytes())
            .expect_err("should be refused")
            .reason
    }

    const API_LINE: &str = r#"{"id":"r-1","ts":1795341600123,"req":{"method":"get","url":"/v1/accounts/8812?x=1","headers":{"x-forwarded-for":"81.2.69.160, 10.0.0.9","User-Agent":["okhttp/4.12"]}},"res":{"status":"200","bytes":512},"net":{"peer.ip":"10.0.0.9:4431"},"duration":0.25,"user":{"id":"alice"}}"#;

    #[test]
    fn maps_nested_fields_into_an_api_event() {
        let e = api(&parser(api_config()), API_LINE);
        assert_eq!(e.ts, EventTime(1_795_341_600_123));
        assert_eq!(e.request_id, "r-1");
        assert_eq!(e.method, "GET");
        assert_eq!(e.path, "/v1/accounts/8812");
        assert_eq!(e.route, "/v1/accounts/{id}");
        assert_eq!(e.status, 200);
        assert_eq!(e.bytes_out, 512);
        assert_eq!(e.latency_ms, 250.0);
        assert_eq!(e.client_ip.to_string(), "81.2.69.160");
        assert_eq!(e.user_agent, "okhttp/4.12");
        assert_eq!(e.identity.subject.as_deref(), Some("alice"));
    }

    #[test]
    fn missing_and_mistyped_fields_name_the_configured_path() {
        let p = parser(api_config());
        let err = p
            .parse(
                br#"{"ts":1,"req":{"url":"/"},"res":{"status":200},"net":{"peer.ip":"1.2.3.4"}}"#,
            )
            .unwrap_err();
        assert_eq!(err.reason, ParseErrorReason::MissingField);
        assert!(err.detail.contains("req.method"), "{}", err.detail);
        let err = p
            .parse(br#"{"ts":1,"req":"GET /","res":{"status":200},"net":{"peer.ip":"1.2.3.4"}}"#)
            .unwrap_err();
        assert_eq!(err.reason, ParseErrorReason::WrongType);
        assert!(err.detail.contains("req.method"), "{}", err.detail);
        assert_eq!(
            reason(
                &p,
                r#"{"ts":1,"req":{"method":"GET","url":"/"},"res":{"status":{}},"net":{"peer.ip":"1.2.3.4"}}"#
            ),
            ParseErrorReason::WrongType
        );
        assert_eq!(
            reason(
                &p,
                r#"{"ts":1,"req":{"method":"GET","url":"/"},"res":{"status":"OK"},"net":{"peer.ip":"1.2.3.4"}}"#
            ),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(
                &p,
                r#"{"ts":1,"req":{"method":"GET","url":"/"},"res":{"status":200}}"#
            ),
            ParseErrorReason::MissingField
        );
        assert_eq!(reason(&p, "[1,2]"), ParseErrorReason::WrongType);
        assert_eq!(
            reason(&p, r#"{"ts":1,"req":{"#),
            ParseErrorReason::Truncated
        );
    }

    #[test]
    fn optional_fields_default_and_request_ids_are_derived_stably() {
        let p = parser(api_config());
        let line = r#"{"ts":"1795341600000","req":{"method":"POST","url":"https://api.example.com/pay"},"res":{"status":201},"net":{"peer.ip":"2001:db8::7"}}"#;
        let e = api(&p, line);
        assert!(e.request_id.starts_with("mapping-"), "{}", e.request_id);
        assert_eq!(e.request_id, api(&p, line).request_id);
        assert_eq!(
            (e.bytes_out, e.latency_ms, e.user_agent.as_str()),
            (0, 0.0, "")
        );
        assert_eq!(e.path, "/pay");
        assert_eq!(e.client_ip.to_string(), "2001:db8::7");
    }

    #[test]
    fn values_that_do_not_fit_an_event_are_refused() {
        let p = parser(api_config());
        let line = |url: &str, extra: &str| {
            format!(
                r#"{{"ts":1795341600000,"req":{{"method":"GET","url":"{url}"}},"res":{{"status":200}},"net":{{"peer.ip":"1.2.3.4"}}{extra}}}"#
            )
        };
        assert_eq!(api(&p, &line("/a", r#","duration":2"#)).latency_ms, 2000.0);
        let huge = line("/a", r#","duration":1e300"#);
        assert_eq!(reason(&p, &huge), ParseErrorReason::InvalidValue);
        assert_eq!(
            reason(&p, &line("?only=query", "")),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(&p, &line("/a", r#","res":{"status":200.5}"#)),
            ParseErrorReason::InvalidValue
        );
        let bytes = line("/a", r#","res":{"status":200,"bytes":1.5}"#);
        assert_eq!(reason(&p, &bytes), ParseErrorReason::InvalidValue);
        let method = r#"{"ts":1,"req":{"method":"GET /x","url":"/"},"res":{"status":200},"net":{"peer.ip":"1.2.3.4"}}"#;
        assert_eq!(reason(&p, method), ParseErrorReason::InvalidValue);
    }

    #[test]
    fn times_outside_1970_to_9999_are_refused() {
        let p = parser(api_config());
        let line = |ts: &str| {
            format!(
                r#"{{"ts":{ts},"req":{{"method":"GET","url":"/"}},"res":{{"status":200}},"net":{{"peer.ip":"1.2.3.4"}}}}"#
            )
        };
        // Found by the fuzzer: epoch microseconds read as milliseconds land in year 58855.
        assert_eq!(
            reason(&p, &line("1795134341602000")),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(reason(&p, &line("-1")), ParseErrorReason::InvalidValue);
        assert_eq!(
            api(&p, &line("253402300799999")).ts,
            EventTime(MAX_EVENT_MS)
        );
        let mut m = api_config();
        m.time_format = TimeFormat::Rfc3339;
        let p = parser(m);
        assert_eq!(
            reason(&p, &line(r#""0000-01-01T00:00:00+01:00""#)),
            ParseErrorReason::InvalidValue
        );
    }

    #[test]
    fn token_events_map_values_and_skip_unlisted_ones() {
        let p = parser(token_config());
        let line = r#"{"time":"2026-11-22T10:00:00Z","type":4625,"user":"bob","ip":"198.51.100.7","grant":"password"}"#;
        let Ok(Parsed::Event(Event::Token(e))) = p.parse(line.as_bytes()) else {
            panic!("expected a token event")
        };
        assert_eq!(e.event, TokenEventKind::LoginFailure);
        assert_eq!(e.subject.as_deref(), Some("bob"));
        assert_eq!(e.grant_type.as_deref(), Some("password"));
        let skipped = p.parse(br#"{"type":"UPDATE_PROFILE"}"#).unwrap();
        assert_eq!(skipped, Parsed::Skipped(UNMAPPED_TOKEN_EVENT));
        assert_eq!(
            reason(
                &p,
                r#"{"time":1795341600,"type":"LOGIN","ip":"198.51.100.7"}"#
            ),
            ParseErrorReason::WrongType
        );
    }

    #[test]
    fn paths_compile_dots_indices_dashes_and_quoted_keys() {
        let p = FieldPath::compile(r#"a.b-c[0]["d.e"].0['f]']"#).unwrap();
        let names: Vec<_> = p.segments.iter().collect();
        assert_eq!(names.len(), 6);
        assert_eq!(names[2], &Segment::Index(0));
        assert_eq!(names[3], &Segment::key("d.e"));
        assert_eq!(names[5], &Segment::key("f]"));
        let v: Value = serde_json::from_str(r#"{"a":{"b-c":[{"d.e":[{"f]":7}]}]}}"#).unwrap();
        assert_eq!(p.get(&v).unwrap(), Some(&Value::from(7)));
        for bad in [
            "", " ", "a.", ".a", "a..b", "a[", "a[x]", "a]", "a[0]b", "a.[0]", "a[\"b]",
        ] {
            assert!(
                FieldPath::compile(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let mut m = api_config();
        m.status = None;
        assert!(config_error(m).contains("`source.mapping.status`"));
        let mut m = api_config();
        m.path = Some("req..url".into());
        assert!(config_error(m).contains("`source.mapping.path`"));
        let mut m = api_config();
        m.time = Some(String::new());
        assert!(config_error(m).contains("`source.mapping.time`"));
        let mut m = api_config();
        m.grant_type = Some("grant".into());
        assert!(config_error(m).contains("`source.mapping.grant_type`"));
        let mut m = token_config();
        m.token_events = None;
        assert!(config_error(m).contains("`source.mapping.token_events`"));
        let mut m = token_config();
        if let Some(t) = &mut m.token_events {
            t.logout = vec![EventValue::Text("LOGIN".into())];
        }
        assert!(config_error(m).contains("`source.mapping.token_events.logout`"));
        let unknown = toml::from_str::<MappingConfig>("tme = \"ts\"");
        assert!(unknown.is_err());
        let bad_format = toml::from_str::<MappingConfig>("time_format = \"iso\"");
        assert!(bad_format.is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parser(api_config()).parse(&bytes);
            let _ = parser(token_config()).parse(&bytes);
        }

        #[test]
        fn strict_prefixes_of_a_record_are_refused(cut in 1usize..API_LINE.len()) {
            let p = parser(api_config());
            prop_assert!(p.parse(&API_LINE.as_bytes()[..cut]).is_err());
        }
    }
}
