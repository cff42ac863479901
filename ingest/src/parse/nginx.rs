//! NGINX access logs, in a JSON `log_format` (`escape=json`) or the classic `combined` format.
//!
//! **JSON** keys are NGINX's variable names, as `log_format json escape=json '{...}'` configs
//! write them (values may be JSON strings or, when the config leaves them unquoted, numbers):
//!
//! | key (aliases) | event field |
//! |---|---|
//! | `msec`, else `time_iso8601`, else `time_local`, else `@timestamp` / `time` / `timestamp` | `ts` |
//! | `request_method` + `request_uri` (else `uri` / `request_path`), else split `request` | `method`, `path`, `route` |
//! | `status` | `status` |
//! | `body_bytes_sent`, else `bytes_sent` / `request_length` | `bytes_out` / `bytes_in` |
//! | `request_time` (seconds) | `latency_ms` |
//! | `remote_addr` (`remote_ip`) + `http_x_forwarded_for` | `client_ip` (XFF via trusted proxies) |
//! | `http_user_agent` (`user_agent`), `request_id` | `user_agent`, `request_id` |
//! | `remote_user`, `http_authorization`, `http_x_api_key`, `http_cookie` | identity |
//! | `ssl_client_fingerprint` | ignored unless 64 hex digits: NGINX logs a SHA-1 |
//!
//! `escape=default` writes `\x22`-style escapes, which are not JSON: such lines are refused as
//! `malformed_json`.
//!
//! **Combined**: `$remote_addr - $remote_user [$time_local] "$request" $status
//! $body_bytes_sent "$http_referer" "$http_user_agent"`, read strictly, then any extra fields:
//! the first extra quoted field is taken as `$http_x_forwarded_for` (NGINX's stock `main`
//! format) and the first extra bare number as `$request_time`; others are ignored. Quoted
//! fields may hold `\"` and NGINX's `\xHH` escapes, which are decoded. `$remote_user` (the
//! Basic-auth user) becomes the subject.
//!
//! Choices, in both formats:
//! - A request that is not `METHOD TARGET HTTP/x` (a TLS handshake sent to the plain-HTTP
//!   port, `\x16\x03\x01...`, or scanner junk) is `Skipped("unparsable_request")`, and an
//!   absent one (`"-"`: the client sent nothing before NGINX answered 400/408) is
//!   `Skipped("no_request")`. The rest of the line is still checked first, so a damaged line
//!   is an error, not a skip. These records are noise with no API call to attribute; they are
//!   counted, not dead-lettered.
//! - Status `0`/`000` (no response was sent) is kept, as in Envoy; other statuses must be
//!   100-599.

use std::borrow::Cow;
use std::net::IpAddr;

use super::envoy::{float, http_status, parse_slots, peer_ip, text, uint, Scalar, Slots};
use super::fields::{self, derived_request_id, present};
use super::{
    check_line, check_line_bytes, Format, LineParser, ParseError, ParseErrorReason, Parsed,
    ParserContext,
};
use crate::event::{ApiEvent, Event, EventTime};
use crate::identity::Credentials;

/// Parses NGINX JSON access-log lines (see the module documentation for the keys).
#[derive(Debug)]
pub struct NginxJsonParser {
    ctx: ParserContext,
}

impl NginxJsonParser {
    pub fn new(ctx: ParserContext) -> Self {
        Self { ctx }
    }
}

impl LineParser for NginxJsonParser {
    fn format(&self) -> Format {
        Format::NginxJson
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let bytes = check_line_bytes(line, self.ctx.max_line_bytes)?;
        let mut r = NginxRecord::default();
        parse_slots(bytes, &mut r)?;
        json_event(&self.ctx, &r, bytes)
    }
}

/// Parses NGINX `combined` lines, with optional trailing fields.
#[derive(Debug)]
pub struct NginxCombinedParser {
    ctx: ParserContext,
}

impl NginxCombinedParser {
    pub fn new(ctx: ParserContext) -> Self {
        Self { ctx }
    }
}

impl LineParser for NginxCombinedParser {
    fn format(&self) -> Format {
        Format::NginxCombined
    }

    fn parse(&self, line: &[u8]) -> Result<Parsed, ParseError> {
        let text = check_line(line, self.ctx.max_line_bytes)?;
        let c = Combined::scan(text)?;
        combined_event(&self.ctx, &c, text)
    }
}

// ---------------------------------------------------------------------------------------------
// What both formats produce.

/// One access record, read but before identity: the parts both NGINX formats share.
#[derive(Debug)]
struct Access<'a> {
    format: Format,
    ts: EventTime,
    method: &'a str,
    target: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    latency_ms: f32,
    user_agent: &'a str,
    request_id: Option<&'a str>,
    peer: IpAddr,
}

fn build(
    ctx: &ParserContext,
    a: Access<'_>,
    creds: Credentials<'_>,
    line: &[u8],
) -> Result<Parsed, ParseError> {
    let identified = ctx.identity.identify(&Credentials {
        peer_ip: Some(a.peer),
        ..creds
    });
    let client_ip = identified
        .client_ip
        .ok_or_else(|| ParseError::missing("remote_addr"))?;
    let path = fields::path_of(a.target);
    Ok(Parsed::Event(Event::Api(ApiEvent {
        ts: a.ts,
        request_id: a
            .request_id
            .map_or_else(|| derived_request_id(a.format, line), str::to_owned),
        route: crate::route::template(path),
        method: a.method.to_owned(),
        path: path.to_owned(),
        status: a.status,
        latency_ms: a.latency_ms,
        bytes_in: a.bytes_in,
        bytes_out: a.bytes_out,
        client_ip,
        user_agent: a.user_agent.to_owned(),
        identity: identified.identity,
        origin: Default::default(),
    })))
}

/// How a logged request line reads.
#[derive(Debug, PartialEq)]
enum RequestLine<'a> {
    Http {
        method: &'a str,
        target: &'a str,
    },
    /// `-` or empty: nothing was received.
    Absent,
    /// Not `METHOD TARGET HTTP/x`.
    Unparsable,
}

impl RequestLine<'_> {
    fn skip_reason(&self) -> &'static str {
        match self {
            RequestLine::Absent => "no_request",
            _ => "unparsable_request",
        }
    }
}

/// `GET /a?b HTTP/1.1` -> method and target. The target is whatever lies between the first
/// and the last space, so a target with raw spaces still reads.
fn request_line(line: &str) -> RequestLine<'_> {
    let Some(line) = present(Some(line.trim())) else {
        return RequestLine::Absent;
    };
    let split = line.split_once(' ').and_then(|(method, rest)| {
        let (target, protocol) = rest.rsplit_once(' ')?;
        let target = target.trim();
        let ok = is_method(method) && protocol.starts_with("HTTP/") && !target.is_empty();
        ok.then_some(RequestLine::Http { method, target })
    });
    split.unwrap_or(RequestLine::Unparsable)
}

/// An HTTP method as NGINX accepts one: upper-case letters, `-` and `_`.
fn is_method(m: &str) -> bool {
    (1..=32).contains(&m.len())
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

fn seconds_to_ms(s: f64) -> Result<f32, ParseError> {
    super::fields::latency_ms("request_time", s * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// JSON.

#[derive(Debug, Default)]
struct NginxRecord<'a> {
    msec: Option<Scalar<'a>>,
    time_iso8601: Option<Scalar<'a>>,
    time_local: Option<Scalar<'a>>,
    time: Option<Scalar<'a>>,
    remote_addr: Option<Scalar<'a>>,
    remote_user: Option<Scalar<'a>>,
    request: Option<Scalar<'a>>,
    request_method: Option<Scalar<'a>>,
    request_uri: Option<Scalar<'a>>,
    uri: Option<Scalar<'a>>,
    status: Option<Scalar<'a>>,
    body_bytes_sent: Option<Scalar<'a>>,
    bytes_sent: Option<Scalar<'a>>,
    request_length: Option<Scalar<'a>>,
    request_time: Option<Scalar<'a>>,
    user_agent: Option<Scalar<'a>>,
    forwarded_for: Option<Scalar<'a>>,
    authorization: Option<Scalar<'a>>,
    api_key: Option<Scalar<'a>>,
    cookie: Option<Scalar<'a>>,
    request_id: Option<Scalar<'a>>,
    fingerprint: Option<Scalar<'a>>,
}

impl<'a> Slots<'a> for NginxRecord<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<Scalar<'a>>> {
        Some(match key {
            "msec" => &mut self.msec,
            "time_iso8601" => &mut self.time_iso8601,
            "time_local" => &mut self.time_local,
            "@timestamp" | "time" | "timestamp" => &mut self.time,
            "remote_addr" | "remote_ip" => &mut self.remote_addr,
            "remote_user" => &mut self.remote_user,
            "request" => &mut self.request,
            "request_method" => &mut self.request_method,
            "request_uri" => &mut self.request_uri,
            "uri" | "request_path" => &mut self.uri,
            "status" => &mut self.status,
            "body_bytes_sent" => &mut self.body_bytes_sent,
            "bytes_sent" => &mut self.bytes_sent,
            "request_length" => &mut self.request_length,
            "request_time" => &mut self.request_time,
            "http_user_agent" | "user_agent" => &mut self.user_agent,
            "http_x_forwarded_for" => &mut self.forwarded_for,
            "http_authorization" => &mut self.authorization,
            "http_x_api_key" => &mut self.api_key,
            "http_cookie" => &mut self.cookie,
            "request_id" => &mut self.request_id,
            "ssl_client_fingerprint" => &mut self.fingerprint,
            _ => return None,
        })
    }
}

fn json_event(ctx: &ParserContext, r: &NginxRecord<'_>, line: &[u8]) -> Result<Parsed, ParseError> {
    let ts = json_time(r)?;
    let request = json_request(r)?;
    let status = match uint(&r.status, "status")? {
        Some(n) => http_status("status", n)?,
        None => return Err(ParseError::missing("status")),
    };
    let peer = match text(r.remote_addr.as_ref()) {
        Some(addr) => peer_ip("remote_addr", &addr)?,
        None => return Err(ParseError::missing("remote_addr")),
    };
    let bytes_out = match uint(&r.body_bytes_sent, "body_bytes_sent")? {
        Some(n) => n,
        None => uint(&r.bytes_sent, "bytes_sent")?.unwrap_or(0),
    };
    let RequestLine::Http { method, target } = request else {
        return Ok(Parsed::Skipped(request.skip_reason()));
    };
    let user_agent = text(r.user_agent.as_ref());
    let request_id = text(r.request_id.as_ref());
    let access = Access {
        format: Format::NginxJson,
        ts,
        method,
        target,
        status,
        bytes_in: uint(&r.request_length, "request_length")?.unwrap_or(0),
        bytes_out,
        latency_ms: float(&r.request_time, "request_time")?.map_or(Ok(0.0), seconds_to_ms)?,
        user_agent: user_agent.as_deref().unwrap_or(""),
        request_id: request_id.as_deref(),
        peer,
    };
    let (subject, authorization) = (text(r.remote_user.as_ref()), text(r.authorization.as_ref()));
    let (api_key, cookie) = (text(r.api_key.as_ref()), text(r.cookie.as_ref()));
    let (forwarded_for, fingerprint) =
        (text(r.forwarded_for.as_ref()), text(r.fingerprint.as_ref()));
    let creds = Credentials {
        authorization: authorization.as_deref(),
        api_key: api_key.as_deref(),
        cookie: cookie.as_deref(),
        cert_fingerprint: fingerprint.as_deref(),
        forwarded_for: forwarded_for.as_deref(),
        subject: subject.as_deref(),
        ..Credentials::default()
    };
    build(ctx, access, creds, line)
}

/// The request: `$request_method` + `$request_uri` (else `$uri`) when logged, else the raw
/// `$request` line. A record whose format logs no request at all is missing a field; one
/// whose request values are unset had no request.
fn json_request<'s>(r: &'s NginxRecord<'_>) -> Result<RequestLine<'s>, ParseError> {
    let method = str_field(&r.request_method, "request_method")?;
    let uri = match str_field(&r.request_uri, "request_uri")? {
        Some(u) => Some(u),
        None => str_field(&r.uri, "uri")?,
    };
    if let (Some(m), Some(t)) = (method, uri) {
        return Ok(if is_method(m) {
            RequestLine::Http {
                method: m,
                target: t,
            }
        } else {
            RequestLine::Unparsable
        });
    }
    if let Some(req) = str_field(&r.request, "request")? {
        return Ok(match request_line(req) {
            RequestLine::Http {
                method: m,
                target: t,
            } => RequestLine::Http {
                method: method.filter(|m| is_method(m)).unwrap_or(m),
                target: uri.unwrap_or(t),
            },
            other => other,
        });
    }
    let logs_split = r.request_method.is_some() && (r.request_uri.is_some() || r.uri.is_some());
    if r.request.is_none() && !logs_split {
        return Err(ParseError::missing("request"));
    }
    Ok(RequestLine::Absent)
}

/// A string value; `None` when unset. A number or boolean where text belongs is refused.
fn str_field<'s>(v: &'s Option<Scalar<'_>>, field: &str) -> Result<Option<&'s str>, ParseError> {
    match v {
        Some(Scalar::Str(s)) => Ok(present(Some(s))),
        None | Some(Scalar::Null) => Ok(None),
        Some(_) => Err(ParseError::wrong_type(field, "a string")),
    }
}

/// The most precise time the record has: `msec`, then ISO 8601, then the common log format.
fn json_time(r: &NginxRecord<'_>) -> Result<EventTime, ParseError> {
    let candidates = [
        ("msec", &r.msec),
        ("time_iso8601", &r.time_iso8601),
        ("time_local", &r.time_local),
        ("time", &r.time),
    ];
    for (field, v) in candidates {
        if let Some(ts) = v.as_ref().map_or(Ok(None), |s| s.time(field))? {
            return Ok(ts);
        }
    }
    Err(ParseError::missing("time_local"))
}

// ---------------------------------------------------------------------------------------------
// Combined.

/// The fields of one combined line, as written (quoted fields still escaped).
#[derive(Debug)]
struct Combined<'a> {
    /// `None` for `-`.
    peer: Option<IpAddr>,
    remote_user: &'a str,
    time_local: &'a str,
    request: &'a str,
    status: &'a str,
    body_bytes_sent: &'a str,
    user_agent: &'a str,
    forwarded_for: Option<&'a str>,
    request_time: Option<f64>,
}

impl<'a> Combined<'a> {
    fn scan(line: &'a str) -> Result<Self, ParseError> {
        let mut s = Scanner { line, pos: 0 };
        let remote_addr = s.token("remote_addr")?;
        // Checked first so a line of another format reads as "not an address", not as a
        // combined line cut short.
        let peer = present(Some(remote_addr))
            .map(|addr| peer_ip("remote_addr", addr))
            .transpose()?;
        s.token("ident")?;
        let remote_user = s.until(" [", "remote_user")?;
        let time_local = s.delimited("time_local", b'[', b']')?;
        let request = s.delimited("request", b'"', b'"')?;
        let status = s.token("status")?;
        let body_bytes_sent = s.token("body_bytes_sent")?;
        s.delimited("http_referer", b'"', b'"')?;
        let user_agent = s.delimited("http_user_agent", b'"', b'"')?;
        let mut c = Combined {
            peer,
            remote_user,
            time_local,
            request,
            status,
            body_bytes_sent,
            user_agent,
            forwarded_for: None,
            request_time: None,
        };
        c.scan_extras(&mut s)?;
        Ok(c)
    }

    /// Fields appended to `combined`: the first quoted one is `$http_x_forwarded_for`, the
    /// first bare number `$request_time`.
    fn scan_extras(&mut self, s: &mut Scanner<'a>) -> Result<(), ParseError> {
        while let Some(b) = s.next_field() {
            if b == b'"' {
                let v = s.delimited("extra field", b'"', b'"')?;
                self.forwarded_for.get_or_insert(v);
            } else {
                let t = s.token("extra field")?;
                if self.request_time.is_none() {
                    self.request_time =
                        t.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0);
                }
            }
        }
        Ok(())
    }
}

fn combined_event(ctx: &ParserContext, c: &Combined<'_>, line: &str) -> Result<Parsed, ParseError> {
    let peer = c.peer.ok_or_else(|| ParseError::missing("remote_addr"))?;
    let ts = fields::parse_time("time_local", c.time_local)?;
    let code = c.status.parse::<u64>().map_err(|_| {
        ParseError::invalid("status", format_args!("not an HTTP status: {:?}", c.status))
    })?;
    let status = http_status("status", code)?;
    let bytes_out = fields::parse_bytes("body_bytes_sent", c.body_bytes_sent)?;
    let request = request_line(c.request);
    let RequestLine::Http { method, target } = request else {
        return Ok(Parsed::Skipped(request.skip_reason()));
    };
    let target = unescape(target);
    let user_agent = present(Some(c.user_agent)).map(unescape);
    let subject = present(Some(c.remote_user)).map(unescape);
    let forwarded_for = present(c.forwarded_for).map(unescape);
    let access = Access {
        format: Format::NginxCombined,
        ts,
        method,
        target: &target,
        status,
        bytes_in: 0,
        bytes_out,
        latency_ms: c.request_time.map_or(Ok(0.0), seconds_to_ms)?,
        user_agent: user_agent.as_deref().unwrap_or(""),
        request_id: None,
        peer,
    };
    let creds = Credentials {
        subject: subject.as_deref(),
        forwarded_for: forwarded_for.as_deref(),
        ..Credentials::default()
    };
    build(ctx, access, creds, line.as_bytes())
}

/// Decodes what NGINX (`\xHH`, for `"`, `\`, control and non-ASCII bytes) and Apache (`\"`,
/// `\\`) write inside quoted fields. Borrows when there is nothing to decode.
fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'x')) => match b.get(i + 2..i + 4).and_then(hex_byte) {
                Some(v) => {
                    out.push(v);
                    i += 4;
                }
                None => {
                    out.push(b'\\');
                    i += 1;
                }
            },
            (b'\\', Some(&c @ (b'"' | b'\\'))) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_byte(h: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(h).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// Walks the space-separated fields of a line.
struct Scanner<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Skips spaces; the first byte of the next field, `None` at the end of the line.
    fn next_field(&mut self) -> Option<u8> {
        let b = self.line.as_bytes();
        while b.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
        b.get(self.pos).copied()
    }

    fn start(&mut self, field: &str) -> Result<u8, ParseError> {
        self.next_field().ok_or_else(|| truncated(field))
    }

    /// A bare field, up to the next space.
    fn token(&mut self, field: &str) -> Result<&'a str, ParseError> {
        self.start(field)?;
        let rest = &self.line[self.pos..];
        let end = rest.find(' ').unwrap_or(rest.len());
        self.pos += end;
        Ok(&rest[..end])
    }

    /// A field that may hold spaces, up to `stop` (which is left for the next field).
    fn until(&mut self, stop: &str, field: &str) -> Result<&'a str, ParseError> {
        self.start(field)?;
        let rest = &self.line[self.pos..];
        let end = rest.find(stop).ok_or_else(|| {
            if rest.contains(' ') {
                ParseError::invalid(field, format_args!("no {stop:?} after it"))
            } else {
                truncated(field)
            }
        })?;
        self.pos += end;
        Ok(&rest[..end])
    }

    /// A field between `open` and `close`, where a backslash escapes the next byte; the raw
    /// (still escaped) contents.
    fn delimited(&mut self, field: &str, open: u8, close: u8) -> Result<&'a str, ParseError> {
        if self.start(field)? != open {
            return Err(ParseError::invalid(
                field,
                format_args!("expected a field opening with `{}`", char::from(open)),
            ));
        }
        let b = self.line.as_bytes();
        let mut i = self.pos + 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                c if c == close => {
                    let v = &self.line[self.pos + 1..i];
                    self.pos = i + 1;
                    return match b.get(self.pos) {
                        None | Some(b' ') => Ok(v),
                        Some(_) => Err(ParseError::invalid(field, "no space after the field")),
                    };
                }
                _ => i += 1,
            }
        }
        Err(truncated(field))
    }
}

fn truncated(field: &str) -> ParseError {
    ParseError::new(
        ParseErrorReason::Truncated,
        format!("the line ends before `{field}` does"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::envoy::tests::context;
    use proptest::prelude::*;

    const JSON: &str = r#"{"time_local":"22/Nov/2026:10:00:00 +0000","msec":"1795341600.123","remote_addr":"10.0.0.7","remote_user":"","request":"GET /v1/accounts/8812?expand=tx HTTP/1.1","request_method":"GET","request_uri":"/v1/accounts/8812?expand=tx","status":"200","body_bytes_sent":"512","bytes_sent":"781","request_length":"420","request_time":"0.012","http_user_agent":"curl/8.5.0","http_x_forwarded_for":"198.51.100.23, 10.0.0.3","request_id":"7d3f2e9c1b4a5f60718293a4b5c6d7e8"}"#;

    const COMBINED: &str = r#"203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] "GET /v1/accounts/8812?expand=tx HTTP/1.1" 200 512 "https://app.example.com/" "Mozilla/5.0 (X11; Linux x86_64)""#;

    fn json(line: &str) -> Result<Parsed, ParseError> {
        NginxJsonParser::new(context()).parse(line.as_bytes())
    }

    fn combined(line: &str) -> Result<Parsed, ParseError> {
        NginxCombinedParser::new(context()).parse(line.as_bytes())
    }

    fn api(p: Result<Parsed, ParseError>) -> ApiEvent {
        match p {
            Ok(Parsed::Event(Event::Api(e))) => e,
            other => panic!("expected an api event, got {other:?}"),
        }
    }

    fn reason(p: Result<Parsed, ParseError>) -> ParseErrorReason {
        p.expect_err("line should be refused").reason
    }

    #[test]
    fn a_json_line_maps_every_field() {
        let e = api(json(JSON));
        assert_eq!(
            e.ts,
            EventTime(1_795_341_600_123),
            "msec wins over time_local"
        );
        assert_eq!(
            (e.method.as_str(), e.path.as_str()),
            ("GET", "/v1/accounts/8812")
        );
        assert_eq!(e.route, "/v1/accounts/{id}");
        assert_eq!((e.status, e.bytes_in, e.bytes_out), (200, 420, 512));
        assert_eq!(e.latency_ms, 12.0);
        assert_eq!(e.client_ip.to_string(), "198.51.100.23");
        assert_eq!(e.request_id, "7d3f2e9c1b4a5f60718293a4b5c6d7e8");
        assert_eq!(e.user_agent, "curl/8.5.0");
    }

    #[test]
    fn json_numbers_unquoted_and_the_request_line_alone() {
        let minimal = r#"{"@timestamp":"2026-11-22T10:00:00+00:00","remote_addr":"2001:db8::5","request":"POST /v1/payments HTTP/2.0","status":201,"bytes_sent":99,"request_time":0.25}"#;
        let e = api(json(minimal));
        assert_eq!(
            (e.method.as_str(), e.path.as_str(), e.status),
            ("POST", "/v1/payments", 201)
        );
        assert_eq!((e.bytes_out, e.latency_ms), (99, 250.0));
        assert_eq!(e.client_ip.to_string(), "2001:db8::5");
        assert!(e.request_id.starts_with("nginx_json-"));
    }

    #[test]
    fn json_refusals_and_skips() {
        let tls = JSON
            .replace(r#""request":"GET /v1/accounts/8812?expand=tx HTTP/1.1","request_method":"GET","request_uri":"/v1/accounts/8812?expand=tx""#, r#""request":"\u0016\u0003\u0001\u0002\u0000\u0001\u0000""#)
            .replace(r#""status":"200""#, r#""status":"400""#);
        assert_eq!(json(&tls), Ok(Parsed::Skipped("unparsable_request")));
        let nothing = JSON.replace(r#""request":"GET /v1/accounts/8812?expand=tx HTTP/1.1","request_method":"GET","request_uri":"/v1/accounts/8812?expand=tx""#, r#""request":"""#);
        assert_eq!(json(&nothing), Ok(Parsed::Skipped("no_request")));
        let escape_default = JSON.replace("curl/8.5.0", r"curl \x22x\x22");
        assert_eq!(
            reason(json(&escape_default)),
            ParseErrorReason::MalformedJson
        );
        assert_eq!(
            reason(json(&JSON.replace(r#""status":"200","#, ""))),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(json(
                &JSON.replace(r#""status":"200""#, r#""status":"2xx""#)
            )),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(json(&JSON.replace(r#""remote_addr":"10.0.0.7","#, ""))),
            ParseErrorReason::MissingField
        );
        assert_eq!(reason(json(&JSON[..150])), ParseErrorReason::Truncated);
        let sha1 = JSON.replace(
            r#""request_id""#,
            &format!(
                r#""ssl_client_fingerprint":"{}","request_id""#,
                "ab".repeat(20)
            ),
        );
        assert_eq!(
            api(json(&sha1)).identity.cert_thumbprint,
            None,
            "a SHA-1 is not a SHA-256 thumbprint"
        );
    }

    #[test]
    fn a_combined_line_maps_every_field() {
        let e = api(combined(COMBINED));
        assert_eq!(e.ts, EventTime(1_795_341_600_000));
        assert_eq!(
            (e.method.as_str(), e.path.as_str()),
            ("GET", "/v1/accounts/8812")
        );
        assert_eq!((e.status, e.bytes_out, e.bytes_in), (200, 512, 0));
        assert_eq!(e.client_ip.to_string(), "203.0.113.9");
        assert_eq!(e.user_agent, "Mozilla/5.0 (X11; Linux x86_64)");
        assert!(e.request_id.starts_with("nginx_combined-"));
        assert_eq!(e.identity_key(), "ip:203.0.113.9");
    }

    #[test]
    fn combined_extras_users_escapes_and_ipv6() {
        let proxied =
            COMBINED.replacen("203.0.113.9", "10.0.0.2", 1) + r#" "198.51.100.4, 10.0.0.9" 0.031"#;
        let e = api(combined(&proxied));
        assert_eq!(e.client_ip.to_string(), "198.51.100.4");
        assert_eq!(e.latency_ms, 31.0);
        let user = COMBINED.replacen("- - [", "- alice smith [", 1);
        assert_eq!(
            api(combined(&user)).identity.subject.as_deref(),
            Some("alice smith")
        );
        let quotes = COMBINED.replace("(X11; Linux x86_64)", r#"\"quoted\" \x5C \xC3\xA9"#);
        assert_eq!(
            api(combined(&quotes)).user_agent,
            "Mozilla/5.0 \"quoted\" \\ é"
        );
        let v6 = COMBINED.replacen("203.0.113.9", "2001:db8::1", 1);
        assert_eq!(api(combined(&v6)).client_ip.to_string(), "2001:db8::1");
    }

    #[test]
    fn combined_noise_is_skipped_and_damage_refused() {
        let tls = r#"192.0.2.44 - - [22/Nov/2026:10:00:00 +0000] "\x16\x03\x01\x00\xF1\x01\x00\x00\xED\x03\x03" 400 157 "-" "-""#;
        assert_eq!(combined(tls), Ok(Parsed::Skipped("unparsable_request")));
        let empty = r#"192.0.2.44 - - [22/Nov/2026:10:00:00 +0000] "-" 400 0 "-" "-""#;
        assert_eq!(combined(empty), Ok(Parsed::Skipped("no_request")));
        assert_eq!(
            reason(combined(&COMBINED[..COMBINED.len() - 1])),
            ParseErrorReason::Truncated
        );
        assert_eq!(
            reason(combined(&COMBINED.replace(" 200 ", " OK "))),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(combined(&COMBINED.replace(" 512 ", " -3 "))),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(combined(&COMBINED.replacen("203.0.113.9", "unix:", 1))),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(combined(&COMBINED.replacen("203.0.113.9", "-", 1))),
            ParseErrorReason::MissingField
        );
        assert_eq!(
            reason(combined(&COMBINED.replace("[22", "22"))),
            ParseErrorReason::InvalidValue
        );
        assert_eq!(
            reason(combined(&COMBINED.replace("Nov", "Nix"))),
            ParseErrorReason::InvalidValue
        );
        let common = r#"203.0.113.9 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 512"#;
        assert_eq!(reason(combined(common)), ParseErrorReason::Truncated);
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            request_line("GET /a b HTTP/1.1"),
            RequestLine::Http {
                method: "GET",
                target: "/a b"
            }
        );
        assert_eq!(request_line("-"), RequestLine::Absent);
        assert_eq!(request_line("get / HTTP/1.1"), RequestLine::Unparsable);
        assert_eq!(request_line("GET /"), RequestLine::Unparsable);
        assert_eq!(request_line("GET  HTTP/1.1"), RequestLine::Unparsable);
    }

    /// NGINX's `escape=default`: `"`, `\`, control and non-ASCII bytes as `\xHH`.
    fn nginx_escape(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | 0..=31 | 127..=255 => format!("\\x{b:02X}"),
                _ => char::from(b).to_string(),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = NginxJsonParser::new(context()).parse(&bytes);
            let _ = NginxCombinedParser::new(context()).parse(&bytes);
        }

        #[test]
        fn arbitrary_text_after_a_valid_start_never_panics(tail in "[ -~]{0,200}") {
            let _ = combined(&format!("{} {tail}", &COMBINED[..60]));
            let _ = combined(&format!("{COMBINED} {tail}"));
        }

        #[test]
        fn strict_prefixes_are_refused(cut in 0usize..1000) {
            prop_assert!(json(&JSON[..cut % JSON.len()]).is_err());
            // A combined line may legitimately end after the user agent; cut before it.
            prop_assert!(combined(&COMBINED[..cut % COMBINED.len()]).is_err());
        }

        #[test]
        fn generated_combined_lines_round_trip(
            status in prop_oneof![Just(0u16), 100u16..600],
            bytes in any::<u64>(),
            ua in "\\PC{0,40}",
            id in 0u64..1_000_000,
            xff in any::<bool>(),
        ) {
            let extra = if xff { " \"198.51.100.7\"" } else { "" };
            let line = format!(
                r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "DELETE /o/{id}?q=1 HTTP/1.1" {status:03} {bytes} "-" "{}"{extra}"#,
                nginx_escape(&ua),
            );
            let e = api(combined(&line));
            prop_assert_eq!(e.status, status);
            prop_assert_eq!(e.bytes_out, bytes);
            prop_assert_eq!(&e.user_agent, if ua.is_empty() || ua == "-" { "" } else { ua.as_str() });
            prop_assert_eq!(e.path, format!("/o/{id}"));
            prop_assert_eq!(e.client_ip.to_string(), if xff { "198.51.100.7" } else { "10.0.0.1" });
        }

        #[test]
        fn generated_json_lines_round_trip(
            status in 100u16..600,
            bytes in any::<u64>(),
            millis in 0u32..100_000,
            ua in "\\PC{0,40}",
            quoted in any::<bool>(),
        ) {
            let q = |n: String| if quoted { format!("\"{n}\"") } else { n };
            let line = format!(
                r#"{{"time_iso8601":"2026-11-22T10:00:00+00:00","remote_addr":"192.0.2.1","request":"GET /x HTTP/1.1","status":{},"body_bytes_sent":{},"request_time":{},"http_user_agent":{}}}"#,
                q(status.to_string()), q(bytes.to_string()), q(format!("{}.{:03}", millis / 1000, millis % 1000)),
                serde_json::to_string(&ua).unwrap(),
            );
            let e = api(json(&line));
            prop_assert_eq!(e.status, status);
            prop_assert_eq!(e.bytes_out, bytes);
            prop_assert!((e.latency_ms - millis as f32).abs() < 0.01);
            prop_assert_eq!(&e.user_agent, if ua.is_empty() || ua == "-" { "" } else { ua.as_str() });
        }
    }
}
