//! Writing events in the formats Outrider ingests: its canonical JSON lines, the gateways'
//! access logs (Envoy, NGINX JSON and combined, Kong, AWS API Gateway) and Keycloak's
//! token-server events. Every line reads back with the matching `outrider-ingest`
//! parser (the round-trip tests check what survives each format).
//!
//! What each format keeps of an event (what the parsers read back):
//!
//! | format | client address | identity | lost |
//! |---|---|---|---|
//! | `canonical` | `client_ip` | subject, client, token, API-key hash | nothing |
//! | `envoy` | `downstream_remote_address` (the edge proxy's peer) | bearer JWT (`sub`, `azp`, `jti`, `aud`), `x-api-key` | latency below 1 ms |
//! | `nginx_json` | `remote_addr` | `http_authorization`, `http_x_api_key` | latency below 1 ms |
//! | `nginx_combined` | `$remote_addr` | `$remote_user` as the subject | client, token, request id, request size, sub-second time |
//! | `kong` | `client_ip` | `request.headers.authorization` (unredacted), `apikey` | latency below 1 ms |
//! | `aws_apigw` | `ip` | `authorizer.jwt.claims.{sub,client_id,jti}`, `apiKeyId` | request size, latency below 1 ms |
//! | `keycloak` (token events) | `ipAddress` | `userId` / `details.username`, `clientId`, `details.token_id` | user agent; the token of a logout |
//!
//! Choices that keep formats comparable: the gateway's token id is the token server's
//! (`jti`), so gateway and Keycloak records join on it; the user id in Keycloak records
//! and the JWT `sub` are the canonical subject; an API key is written as its canonical
//! hash (the generator never had a real key), which the parsers hash again.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{TimeZone, Utc};
use outrider_ingest::{ApiEvent, Event, TokenEvent, TokenEventKind};
use serde::{Deserialize, Serialize};

/// A format events can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Outrider's canonical JSON lines: gateway and token-server records in one file.
    Canonical,
    Envoy,
    NginxJson,
    NginxCombined,
    Kong,
    AwsApigw,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 6] = [
        OutputFormat::Canonical,
        OutputFormat::Envoy,
        OutputFormat::NginxJson,
        OutputFormat::NginxCombined,
        OutputFormat::Kong,
        OutputFormat::AwsApigw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Canonical => "canonical",
            OutputFormat::Envoy => "envoy",
            OutputFormat::NginxJson => "nginx_json",
            OutputFormat::NginxCombined => "nginx_combined",
            OutputFormat::Kong => "kong",
            OutputFormat::AwsApigw => "aws_apigw",
        }
    }

    /// The ingest format that reads this one's gateway lines.
    pub fn ingest_format(self) -> outrider_ingest::Format {
        use outrider_ingest::Format as F;
        match self {
            OutputFormat::Canonical => F::Canonical,
            OutputFormat::Envoy => F::Envoy,
            OutputFormat::NginxJson => F::NginxJson,
            OutputFormat::NginxCombined => F::NginxCombined,
            OutputFormat::Kong => F::Kong,
            OutputFormat::AwsApigw => F::AwsApigw,
        }
    }

    /// Token-server records go to a separate Keycloak file, except in the canonical
    /// format, which holds both.
    pub fn splits_token_events(self) -> bool {
        self != OutputFormat::Canonical
    }

    /// The file name used when all formats are written into one folder.
    pub fn file_name(self) -> &'static str {
        match self {
            OutputFormat::Canonical => "canonical.jsonl",
            OutputFormat::Envoy => "envoy.log",
            OutputFormat::NginxJson => "nginx_json.log",
            OutputFormat::NginxCombined => "nginx_combined.log",
            OutputFormat::Kong => "kong.log",
            OutputFormat::AwsApigw => "aws_apigw.log",
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = OutputFormat::ALL.iter().map(|f| f.as_str()).collect();
                format!(
                    "unknown output format {s:?}; one of {}, all",
                    known.join(", ")
                )
            })
    }
}

/// The file name of the Keycloak token-server records beside gateway logs.
pub const KEYCLOAK_FILE: &str = "keycloak.jsonl";

/// Appends `line` (no newline) for an event in `format`: the gateway line of an API
/// event; for a token event, the canonical line (canonical format) or the Keycloak line.
pub fn write_line(format: OutputFormat, event: &Event, out: &mut Vec<u8>) {
    match (format, event) {
        (OutputFormat::Canonical, e) => canonical(e, out),
        (_, Event::Token(t)) => keycloak(t, out),
        (OutputFormat::Envoy, Event::Api(a)) => envoy(a, out),
        (OutputFormat::NginxJson, Event::Api(a)) => nginx_json(a, out),
        (OutputFormat::NginxCombined, Event::Api(a)) => nginx_combined(a, out),
        (OutputFormat::Kong, Event::Api(a)) => kong(a, out),
        (OutputFormat::AwsApigw, Event::Api(a)) => aws_apigw(a, out),
    }
}

fn canonical(e: &Event, out: &mut Vec<u8>) {
    // Plain structs with string keys: serialising cannot fail.
    let _ = serde_json::to_writer(&mut *out, e);
}

// ---- small writers: JSON strings, times, tokens ----

/// A JSON string literal, escaped.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `"key":` (keys are plain ASCII).
fn key(out: &mut Vec<u8>, k: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn field_str(out: &mut Vec<u8>, k: &str, v: &str) {
    key(out, k, false);
    json_str(out, v);
}

fn field_num(out: &mut Vec<u8>, k: &str, v: impl std::fmt::Display) {
    key(out, k, false);
    let _ = write!(Buf(out), "{v}");
}

/// `fmt::Write` into a byte buffer.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn rfc3339(ms: i64) -> String {
    outrider_ingest::EventTime(ms).to_string()
}

/// The common log format's time: `02/Nov/2026:08:00:00 +0000`.
fn clf_time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(String::new, |t| {
            t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
        })
}

/// `ip:port` as proxies log a peer; IPv6 in brackets.
fn peer(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// A stable ephemeral port for a request, so lines are deterministic.
fn port_of(request_id: &str) -> u16 {
    let h = request_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    32_768 + (h % 28_000) as u16
}

/// The audience a gateway's JWTs carry: the API the route belongs to.
fn audience(path: &str) -> &'static str {
    if path.starts_with("/shop") {
        "shop-api"
    } else if path.starts_with("/api/") {
        "saas-api"
    } else {
        "bank-api"
    }
}

/// A bearer JWT carrying the identity (unsigned: the signature is a placeholder; the
/// parsers decode JWTs for identification only).
fn bearer(a: &ApiEvent) -> Option<String> {
    let id = &a.identity;
    let token = id.token_id.as_deref()?;
    let mut claims = Vec::with_capacity(160);
    claims.push(b'{');
    key(&mut claims, "iss", true);
    json_str(&mut claims, "https://id.example.com/realms/outrider");
    if let Some(sub) = id.subject.as_deref() {
        field_str(&mut claims, "sub", sub);
    }
    if let Some(client) = id.client_id.as_deref() {
        field_str(&mut claims, "azp", client);
    }
    field_str(&mut claims, "jti", token);
    field_str(&mut claims, "aud", audience(&a.path));
    claims.push(b'}');
    let mut s = String::with_capacity(300);
    s.push_str("Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.");
    base64url(&claims, &mut s);
    s.push_str(".c2lnbmF0dXJl");
    Some(s)
}

/// Base64url without padding.
fn base64url(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
}

fn millis(latency: f32) -> u64 {
    latency.max(0.0).round() as u64
}

// ---- gateways ----

fn envoy(a: &ApiEvent, out: &mut Vec<u8>) {
    out.push(b'{');
    key(out, "start_time", true);
    json_str(out, &rfc3339(a.ts.millis()));
    field_str(out, "method", &a.method);
    field_str(out, "path", &a.path);
    field_str(out, "protocol", "HTTP/1.1");
    field_num(out, "response_code", a.status);
    field_str(out, "response_flags", "-");
    field_num(out, "bytes_received", a.bytes_in);
    field_num(out, "bytes_sent", a.bytes_out);
    field_num(out, "duration", millis(a.latency_ms));
    field_str(
        out,
        "upstream_service_time",
        &millis(a.latency_ms * 0.9).to_string(),
    );
    field_str(out, "user_agent", &a.user_agent);
    field_str(out, "request_id", &a.request_id);
    field_str(out, "authority", "api.example.com");
    field_str(out, "upstream_host", "10.244.1.12:8080");
    field_str(
        out,
        "downstream_remote_address",
        &peer(a.client_ip, port_of(&a.request_id)),
    );
    if let Some(jwt) = bearer(a) {
        field_str(out, "authorization", &jwt);
    }
    if let Some(k) = a.identity.api_key_hash.as_deref() {
        field_str(out, "x_api_key", k);
    }
    out.push(b'}');
}

fn nginx_json(a: &ApiEvent, out: &mut Vec<u8>) {
    let ms = a.ts.millis();
    out.push(b'{');
    key(out, "msec", true);
    json_str(
        out,
        &format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)),
    );
    field_str(out, "remote_addr", &a.client_ip.to_string());
    field_str(out, "request_method", &a.method);
    field_str(out, "request_uri", &a.path);
    field_str(out, "status", &a.status.to_string());
    field_str(out, "body_bytes_sent", &a.bytes_out.to_string());
    field_str(out, "request_length", &a.bytes_in.to_string());
    field_str(
        out,
        "request_time",
        &format!("{:.3}", f64::from(millis(a.latency_ms) as u32) / 1000.0),
    );
    field_str(out, "http_user_agent", &a.user_agent);
    field_str(out, "http_x_forwarded_for", "");
    if let Some(jwt) = bearer(a) {
        field_str(out, "http_authorization", &jwt);
    }
    if let Some(k) = a.identity.api_key_hash.as_deref() {
        field_str(out, "http_x_api_key", k);
    }
    field_str(out, "request_id", &a.request_id);
    out.push(b'}');
}

/// A quoted field of the combined format: `"` and `\` escaped as NGINX does.
fn clf_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => {
                let _ = write!(Buf(out), "\\x{b:02X}");
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn nginx_combined(a: &ApiEvent, out: &mut Vec<u8>) {
    let user = a
        .identity
        .subject
        .as_deref()
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .unwrap_or("-");
    let _ = write!(
        Buf(out),
        "{} - {user} [{}] \"{} {} HTTP/1.1\" {} {} \"-\" ",
        a.client_ip,
        clf_time(a.ts.millis()),
        a.method,
        a.path,
        a.status,
        a.bytes_out
    );
    clf_quoted(out, &a.user_agent);
    let _ = write!(
        Buf(out),
        " \"-\" {:.3}",
        f64::from(millis(a.latency_ms) as u32) / 1000.0
    );
}

fn kong(a: &ApiEvent, out: &mut Vec<u8>) {
    let ms = a.ts.millis();
    let latency = millis(a.latency_ms);
    out.push(b'{');
    key(out, "started_at", true);
    let _ = write!(Buf(out), "{ms}");
    field_str(out, "client_ip", &a.client_ip.to_string());
    key(out, "request", false);
    out.push(b'{');
    key(out, "id", true);
    json_str(out, &a.request_id);
    field_str(out, "method", &a.method);
    field_str(out, "uri", &a.path);
    field_num(out, "size", a.bytes_in);
    key(out, "headers", false);
    out.push(b'{');
    key(out, "host", true);
    json_str(out, "api.example.com");
    field_str(out, "user-agent", &a.user_agent);
    if let Some(jwt) = bearer(a) {
        field_str(out, "authorization", &jwt);
    }
    if let Some(k) = a.identity.api_key_hash.as_deref() {
        field_str(out, "apikey", k);
    }
    out.extend_from_slice(b"}}");
    key(out, "response", false);
    out.push(b'{');
    key(out, "status", true);
    let _ = write!(Buf(out), "{}", a.status);
    field_num(out, "size", a.bytes_out);
    out.push(b'}');
    key(out, "latencies", false);
    let _ = write!(
        Buf(out),
        "{{\"request\":{latency},\"kong\":1,\"proxy\":{}}}",
        latency.saturating_sub(1)
    );
    key(out, "service", false);
    let _ = write!(
        Buf(out),
        "{{\"name\":\"{}\",\"protocol\":\"http\"}}",
        audience(&a.path)
    );
    out.push(b'}');
}

fn aws_apigw(a: &ApiEvent, out: &mut Vec<u8>) {
    let ms = a.ts.millis();
    out.push(b'{');
    key(out, "requestId", true);
    json_str(out, &a.request_id);
    field_str(out, "extendedRequestId", &a.request_id);
    field_str(out, "ip", &a.client_ip.to_string());
    field_str(out, "requestTime", &clf_time(ms));
    field_str(out, "requestTimeEpoch", &ms.to_string());
    field_str(out, "httpMethod", &a.method);
    field_str(out, "routeKey", &format!("{} {}", a.method, a.route));
    field_str(out, "path", &a.path);
    field_str(out, "status", &a.status.to_string());
    field_str(out, "protocol", "HTTP/1.1");
    field_str(out, "responseLength", &a.bytes_out.to_string());
    field_str(out, "responseLatency", &millis(a.latency_ms).to_string());
    field_str(out, "userAgent", &a.user_agent);
    let id = &a.identity;
    if let Some(sub) = id.subject.as_deref() {
        field_str(out, "authorizer.jwt.claims.sub", sub);
    }
    if let (Some(client), Some(_)) = (id.client_id.as_deref(), id.token_id.as_deref()) {
        field_str(out, "authorizer.jwt.claims.client_id", client);
    }
    if let Some(jti) = id.token_id.as_deref() {
        field_str(out, "authorizer.jwt.claims.jti", jti);
    }
    if let Some(k) = id.api_key_hash.as_deref() {
        field_str(out, "apiKeyId", k);
    }
    out.push(b'}');
}

// ---- token server ----

/// A Keycloak user event (`EventRepresentation`).
fn keycloak(t: &TokenEvent, out: &mut Vec<u8>) {
    use TokenEventKind as K;
    let grant = t.grant_type.as_deref();
    let kind = match (t.event, grant) {
        (K::LoginSuccess, _) => "LOGIN",
        (K::LoginFailure, Some("client_credentials")) => "CLIENT_LOGIN_ERROR",
        (K::LoginFailure, _) => "LOGIN_ERROR",
        (K::TokenIssued, Some("client_credentials")) => "CLIENT_LOGIN",
        (K::TokenIssued, _) => "CODE_TO_TOKEN",
        (K::TokenRefreshed, _) => "REFRESH_TOKEN",
        (K::TokenRevoked, _) => "REVOKE_GRANT",
        (K::Logout, _) => "LOGOUT",
    };
    out.push(b'{');
    key(out, "time", true);
    let _ = write!(Buf(out), "{}", t.ts.millis());
    field_str(out, "type", kind);
    field_str(out, "realmId", "outrider");
    if let Some(client) = t.client_id.as_deref() {
        field_str(out, "clientId", client);
    }
    // A failed login names the user tried in `details.username` only.
    if t.event != K::LoginFailure {
        if let Some(sub) = t.subject.as_deref() {
            field_str(out, "userId", sub);
        }
    }
    field_str(out, "ipAddress", &t.client_ip.to_string());
    if t.event == K::LoginFailure {
        let error = if grant == Some("client_credentials") {
            "invalid_client_credentials"
        } else {
            "invalid_user_credentials"
        };
        field_str(out, "error", error);
    }
    key(out, "details", false);
    out.push(b'{');
    key(out, "auth_method", true);
    json_str(out, "openid-connect");
    if let Some(g) = grant {
        field_str(out, "grant_type", g);
    }
    if let Some(sub) = t.subject.as_deref() {
        field_str(out, "username", sub);
    }
    if t.event != K::Logout {
        if let Some(token) = t.token_id.as_deref() {
            field_str(out, "token_id", token);
        }
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\nd\u{1}é");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a\"b\\c\nd\u{1}é"
        );
    }

    #[test]
    fn base64url_matches_the_standard_alphabet() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"\xfb\xff", "-_8"),
        ] {
            let mut s = String::new();
            base64url(input, &mut s);
            assert_eq!(s, expected);
        }
        assert_eq!(clf_time(1_793_606_400_123), "02/Nov/2026:08:00:00 +0000");
        assert_eq!(peer("2001:db8::1".parse().unwrap(), 80), "[2001:db8::1]:80");
        assert_eq!("kong".parse::<OutputFormat>(), Ok(OutputFormat::Kong));
        assert!("mapping".parse::<OutputFormat>().is_err());
    }
}
