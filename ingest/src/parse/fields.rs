//! Small readers shared by the format parsers: timestamps in the notations gateways use,
//! statuses, paths, and the `-` that access logs write for "absent".

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use super::ParseError;
use crate::event::EventTime;

/// The event times Outrider accepts: 1970-01-01 up to the end of year 9999 (what RFC 3339
/// can write back), in epoch milliseconds.
pub const EVENT_TIME_RANGE_MS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// The longest request Outrider believes, in milliseconds (a day).
const MAX_LATENCY_MS: f64 = 86_400_000.0;

/// An event time, refused when outside [`EVENT_TIME_RANGE_MS`].
pub fn checked_time(field: &str, t: EventTime) -> Result<EventTime, ParseError> {
    if EVENT_TIME_RANGE_MS.contains(&t.0) {
        Ok(t)
    } else {
        Err(ParseError::invalid(
            field,
            format_args!("time out of range: {} ms", t.0),
        ))
    }
}

/// A latency in milliseconds: finite, non-negative and at most a day.
pub fn latency_ms(field: &str, ms: f64) -> Result<f32, ParseError> {
    if ms.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&ms) {
        Ok(ms as f32)
    } else {
        Err(ParseError::invalid(
            field,
            format_args!("latency out of range: {ms} ms"),
        ))
    }
}

/// A stable request id for a record that logged none: the format and a 64-bit FNV-1a hash
/// of the line (stable across runs and platforms, unlike `DefaultHasher`). Identical lines
/// get identical ids, which is right: they are indistinguishable.
pub fn derived_request_id(format: super::Format, line: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in line {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{format}-{h:016x}")
}

/// `None` for absent values as logs write them: empty or `-`.
pub fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty() && *s != "-")
}

/// A timestamp in any of: RFC 3339 (`2026-11-22T10:00:00.123Z`), the common log format
/// (`22/Nov/2026:10:00:00 +0000`), epoch seconds (`1795341600.123`) or epoch milliseconds
/// (13 digits or more).
pub fn parse_time(field: &str, v: &str) -> Result<EventTime, ParseError> {
    parse_time_unchecked(field, v).and_then(|t| checked_time(field, t))
}

fn parse_time_unchecked(field: &str, v: &str) -> Result<EventTime, ParseError> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(EventTime(t.timestamp_millis()));
    }
    if let Ok(t) = DateTime::parse_from_str(v, "%d/%b/%Y:%H:%M:%S %z") {
        return Ok(EventTime(t.timestamp_millis()));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(EventTime(Utc.from_utc_datetime(&t).timestamp_millis()));
    }
    if let Ok(n) = v.parse::<f64>() {
        if n.is_finite() && n >= 0.0 {
            return Ok(epoch_number(n));
        }
    }
    Err(ParseError::invalid(
        field,
        format_args!("unrecognised timestamp {v:?}"),
    ))
}

/// Epoch seconds, milliseconds or microseconds, told apart by magnitude.
pub fn epoch_number(n: f64) -> EventTime {
    let ms = if n >= 1e14 {
        n / 1000.0 // microseconds
    } else if n >= 1e11 {
        n // milliseconds
    } else {
        n * 1000.0 // seconds
    };
    EventTime(ms.round() as i64)
}

/// An HTTP status from text (`"200"`).
pub fn parse_status(field: &str, v: &str) -> Result<u16, ParseError> {
    match v.trim().parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(ParseError::invalid(
            field,
            format_args!("not an HTTP status: {v:?}"),
        )),
    }
}

/// The path of a request target, without query string or fragment; an absolute URI's
/// scheme and authority are dropped.
pub fn path_of(target: &str) -> &str {
    let mut t = target;
    if let Some(i) = t.find("://") {
        t = &t[i + 3..];
        t = t.find('/').map_or("/", |j| &t[j..]);
    }
    t.split(['?', '#']).next().unwrap_or(t)
}

/// A non-negative number of bytes from text, `-` meaning 0.
pub fn parse_bytes(field: &str, v: &str) -> Result<u64, ParseError> {
    let v = v.trim();
    if v.is_empty() || v == "-" {
        return Ok(0);
    }
    v.parse::<u64>()
        .map_err(|_| ParseError::invalid(field, format_args!("not a byte count: {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_notation_agree() {
        let want = EventTime(1_795_341_600_250);
        for v in [
            "2026-11-22T10:00:00.250Z",
            "2026-11-22T11:00:00.250+01:00",
            "1795341600.25",
            "1795341600250",
            "1795341600250000",
            "2026-11-22T10:00:00.250",
        ] {
            assert_eq!(parse_time("t", v).unwrap(), want, "{v}");
        }
        assert_eq!(
            parse_time("t", "22/Nov/2026:10:00:00 +0000").unwrap(),
            EventTime(1_795_341_600_000)
        );
        assert!(parse_time("t", "yesterday").is_err());
        assert!(
            parse_time("t", "9999999999999999999").is_err(),
            "past year 9999"
        );
        assert!(
            parse_time("t", "22/Nov/-026:10:00:08 +0000").is_err(),
            "before 1970"
        );
        assert!(latency_ms("l", f64::INFINITY).is_err());
        assert!(latency_ms("l", -1.0).is_err());
        assert_eq!(latency_ms("l", 12.5).unwrap(), 12.5);
    }

    #[test]
    fn paths_statuses_and_bytes() {
        assert_eq!(path_of("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_of("https://api.example.com/v1/x?y"), "/v1/x");
        assert_eq!(path_of("https://api.example.com"), "/");
        assert_eq!(parse_status("s", "404").unwrap(), 404);
        assert!(parse_status("s", "42").is_err());
        assert_eq!(parse_bytes("b", "-").unwrap(), 0);
        assert!(parse_bytes("b", "-5").is_err());
    }
}
