//! The event model. Both record kinds carry their event time: windows, watermarks and replay
//! use it, never the time an event happened to arrive.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Event time in milliseconds since the Unix epoch (UTC).
///
/// In JSON it is written as an RFC 3339 string and read from either an RFC 3339 string or an
/// integer number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime(pub i64);

impl EventTime {
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            self.to_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Times from 1970 to the end of year 9999: what an RFC 3339 line can hold and give back.
fn in_range<E: serde::de::Error>(ms: i64) -> Result<EventTime, E> {
    if crate::parse::fields::EVENT_TIME_RANGE_MS.contains(&ms) {
        Ok(EventTime(ms))
    } else {
        Err(E::custom(format_args!("timestamp out of range: {ms} ms")))
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EventTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or epoch milliseconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EventTime, E> {
                DateTime::parse_from_rfc3339(v)
                    .map_err(|e| E::custom(format_args!("invalid timestamp {v:?}: {e}")))
                    .and_then(|t| in_range(t.timestamp_millis()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EventTime, E> {
                in_range(v)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EventTime, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom("timestamp out of range"))
                    .and_then(in_range)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Who made a call, as far as the gateway or token server can tell. Raw credentials are never
/// kept: tokens are identified by their `jti` (or a keyed hash), keys and cookies by hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The authenticated subject (user), e.g. the JWT `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The OAuth client (application) that made the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The access token's id (`jti`) or a keyed hash of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_hash: Option<String>,
    /// SHA-256 thumbprint of the client's mTLS certificate (lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_thumbprint: Option<String>,
}

impl Identity {
    /// The key that per-identity features are kept under: the most specific identifier
    /// present, prefixed by its kind; `None` for an anonymous call.
    pub fn key(&self) -> Option<String> {
        let mut key = String::new();
        self.write_key(&mut key).then_some(key)
    }

    /// [`Self::key`] written into `out` (cleared first), so that hot paths reuse one buffer;
    /// false, with `out` empty, for an anonymous call.
    pub fn write_key(&self, out: &mut String) -> bool {
        out.clear();
        let candidates = [
            ("sub", &self.subject),
            ("client", &self.client_id),
            ("apikey", &self.api_key_hash),
            ("cert", &self.cert_thumbprint),
            ("session", &self.session_hash),
            ("token", &self.token_id),
        ];
        let found = candidates
            .into_iter()
            .find_map(|(prefix, v)| Some(prefix).zip(v.as_deref().filter(|s| !s.is_empty())));
        if let Some((prefix, value)) = found {
            push_key(out, prefix, value);
        }
        found.is_some()
    }
}

/// One gateway access-log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiEvent {
    pub ts: EventTime,
    pub request_id: String,
    /// The API's route template (`/accounts/{id}`); derived from `path` when the log has none.
    #[serde(default)]
    pub route: String,
    pub method: String,
    /// The concrete path, without the query string.
    pub path: String,
    pub status: u16,
    #[serde(default)]
    pub latency_ms: f32,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    pub client_ip: IpAddr,
    #[serde(default)]
    pub user_agent: String,
    #[serde(flatten)]
    pub identity: Identity,
    /// Where the client is, when the log says so.
    #[serde(flatten)]
    pub origin: ClientOrigin,
}

/// Where a client is, as a GeoIP lookup at the edge reports it (Cloudflare's and
/// CloudFront's viewer headers, NGINX's geoip2 module, Envoy's geoip filter) or an
/// enrichment step before Outrider adds it. Every field is optional: features that need
/// one (new-ASN ratios, geo-velocity) fall back or stay 0 without it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientOrigin {
    /// The autonomous system the client IP belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Degrees, WGS 84.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f32>,
}

impl ClientOrigin {
    /// The location, when both coordinates are present and on the globe.
    pub fn location(&self) -> Option<(f32, f32)> {
        let (lat, lon) = (self.latitude?, self.longitude?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
    }
}

impl ApiEvent {
    /// The key that identity features are kept under; anonymous calls fall back to the IP.
    pub fn identity_key(&self) -> String {
        let mut key = String::new();
        self.write_identity_key(&mut key);
        key
    }

    /// [`Self::identity_key`] written into `out` (cleared first).
    pub fn write_identity_key(&self, out: &mut String) {
        if !self.identity.write_key(out) {
            push_ip_key(out, self.client_ip);
        }
    }

    /// The object ids in the concrete path (numeric, UUID and long hex segments).
    pub fn object_ids(&self) -> impl Iterator<Item = &str> {
        crate::route::object_ids(&self.path)
    }
}

/// What a token server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEventKind {
    LoginSuccess,
    LoginFailure,
    TokenIssued,
    TokenRefreshed,
    TokenRevoked,
    Logout,
}

/// One token-server (identity provider) record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEvent {
    pub ts: EventTime,
    pub event: TokenEventKind,
    /// The subject; for a failed login, the user name that was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    pub client_ip: IpAddr,
    #[serde(default)]
    pub user_agent: String,
}

impl TokenEvent {
    /// Failed logins are attributed to the IP they came from (the subject is only what was
    /// tried); everything else to the subject, else the client, else the IP.
    pub fn identity_key(&self) -> String {
        let mut key = String::new();
        self.write_identity_key(&mut key);
        key
    }

    /// [`Self::identity_key`] written into `out` (cleared first).
    pub fn write_identity_key(&self, out: &mut String) {
        out.clear();
        let named = [("sub", &self.subject), ("client", &self.client_id)]
            .into_iter()
            .find_map(|(prefix, v)| Some(prefix).zip(v.as_deref().filter(|s| !s.is_empty())));
        match named {
            Some((prefix, value)) if self.event != TokenEventKind::LoginFailure => {
                push_key(out, prefix, value);
            }
            _ => push_ip_key(out, self.client_ip),
        }
    }
}

fn push_key(out: &mut String, prefix: &str, value: &str) {
    out.reserve(prefix.len() + 1 + value.len());
    out.push_str(prefix);
    out.push(':');
    out.push_str(value);
}

fn push_ip_key(out: &mut String, ip: IpAddr) {
    use std::fmt::Write;
    out.clear();
    // Writing into a String cannot fail.
    let _ = write!(out, "ip:{ip}");
}

/// A record of either kind, as written in Outrider's canonical JSON lines
/// (`"type": "api"` or `"type": "token"`).
// Most records are API events: boxing them to shrink the rarer token events would cost
// an allocation per record on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Api(ApiEvent),
    Token(TokenEvent),
}

impl Event {
    pub fn ts(&self) -> EventTime {
        match self {
            Event::Api(e) => e.ts,
            Event::Token(e) => e.ts,
        }
    }

    pub fn identity_key(&self) -> String {
        match self {
            Event::Api(e) => e.identity_key(),
            Event::Token(e) => e.identity_key(),
        }
    }

    /// One canonical JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising these plain structs cannot fail: no maps with non-string keys.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geoip_fields_are_optional_and_read_from_canonical_json() {
        let line = r#"{"type":"api","ts":"2026-11-22T10:00:00Z","request_id":"r1","method":"GET","path":"/a","status":200,"client_ip":"192.0.2.1","asn":3215,"country":"FR","latitude":48.86,"longitude":2.35}"#;
        let Ok(Event::Api(e)) = serde_json::from_str::<Event>(line) else {
            panic!("not an API event");
        };
        assert_eq!(e.origin.asn, Some(3215));
        assert_eq!(e.origin.country.as_deref(), Some("FR"));
        assert_eq!(e.origin.location(), Some((48.86, 2.35)));
        let plain = line
            .split(r#","asn""#)
            .next()
            .unwrap_or_default()
            .to_owned()
            + "}";
        let Ok(Event::Api(e)) = serde_json::from_str::<Event>(&plain) else {
            panic!("not an API event: {plain}");
        };
        assert_eq!(e.origin, ClientOrigin::default());
        assert!(
            !Event::Api(e).to_json_line().contains("asn"),
            "absent fields are not written"
        );
        let off_globe = ClientOrigin {
            latitude: Some(95.0),
            longitude: Some(0.0),
            ..ClientOrigin::default()
        };
        assert_eq!(off_globe.location(), None);
    }

    #[test]
    fn identity_key_prefers_the_most_specific_identifier() {
        let mut id = Identity {
            token_id: Some("t1".into()),
            client_id: Some("app".into()),
            ..Identity::default()
        };
        assert_eq!(id.key().as_deref(), Some("client:app"));
        id.subject = Some("alice".into());
        assert_eq!(id.key().as_deref(), Some("sub:alice"));
        assert_eq!(Identity::default().key(), None);
    }

    #[test]
    fn event_time_reads_rfc3339_and_millis_and_writes_rfc3339() {
        let a: EventTime = serde_json::from_str("\"2026-11-22T10:00:00.250Z\"").unwrap();
        let b: EventTime = serde_json::from_str("1795341600250").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"2026-11-22T10:00:00.250Z\""
        );
    }
}
