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
    if let Some(ms) = utc_rfc3339_millis(v) {
        return Ok(EventTime(ms));
    }
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

/// The one RFC 3339 shape most gateways write, `2026-11-22T10:00:00.123Z` (fraction of 1 to
/// 9 digits or none, UTC, from 1970), read without chrono; `None` for anything else, which
/// chrono then reads. For what it accepts it gives chrono's `timestamp_millis` exactly:
/// dates are checked the same way and the fraction is truncated to milliseconds.
fn utc_rfc3339_millis(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    let (head, fraction) = (b.get(..19)?, b.get(19..)?);
    let fraction = match fraction {
        [b'Z'] => &[][..],
        [b'.', digits @ .., b'Z'] if (1..=9).contains(&digits.len()) => digits,
        _ => return None,
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| head.get(i) != Some(&c)) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        head.get(range)?.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // A leap second (60) and dates before 1970 are left to chrono.
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let millis = fraction
        .iter()
        .chain(b"000")
        .take(3)
        .fold(0, |n, &d| n * 10 + i64::from(d - b'0'));
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12; // March is 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
    if let Some(i) = find_scheme_separator(t) {
        t = &t[i + 3..];
        t = t.find('/').map_or("/", |j| &t[j..]);
    }
    crate::route::strip_query(t)
}

/// `t.find("://")`, without setting up a substring searcher for every request: paths seldom
/// hold a `:` at all.
fn find_scheme_separator(t: &str) -> Option<usize> {
    let b = t.as_bytes();
    let mut from = 0;
    while let Some(i) = b.get(from..)?.iter().position(|&c| c == b':') {
        let at = from + i;
        if b.get(at + 1..at + 3) == Some(b"//") {
            return Some(at);
        }
        from = at + 1;
    }
    None
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
    use proptest::prelude::*;
    use proptest::sample::select;

    #[test]
    fn the_usual_utc_timestamps_skip_chrono() {
        assert_eq!(
            utc_rfc3339_millis("2026-11-22T10:00:00.123Z"),
            Some(1_795_341_600_123)
        );
        assert_eq!(utc_rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            utc_rfc3339_millis("2028-02-29T23:59:59.999999999Z"),
            Some(1_835_481_599_999)
        );
        for other in [
            "2026-02-29T10:00:00Z",
            "2026-11-22T10:00:60Z",
            "2026-11-22T10:00:00+01:00",
            "2026-11-22t10:00:00Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.1234567890Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(utc_rfc3339_millis(other), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn the_utc_fast_path_agrees_with_chrono(
            date in (1900i64..10_001, 0i64..14, 0i64..33),
            time in (0i64..26, 0i64..62, 0i64..62),
            fraction in prop::option::of("[0-9]{0,11}"),
            separator in select(&["T", "t", " "][..]),
            zone in select(&["Z", "z", "+00:00", "-01:30", ""][..]),
        ) {
            let ((year, month, day), (hour, minute, second)) = (date, time);
            let fraction = fraction.map_or_else(String::new, |f| format!(".{f}"));
            let v = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            let chrono = DateTime::parse_from_rfc3339(&v).map(|t| t.timestamp_millis());
            if let Some(ms) = utc_rfc3339_millis(&v) {
                prop_assert_eq!(Ok(ms), chrono);
            }
        }

        #[test]
        fn paths_match_the_reference(target in "(https?://[a-z.:0-9]{0,12})?[/a-z0-9:?#=]{0,24}") {
            prop_assert_eq!(path_of(&target), reference_path_of(&target));
        }
    }

    /// `path_of` as it was, with a substring search.
    fn reference_path_of(target: &str) -> &str {
        let mut t = target;
        if let Some(i) = t.find("://") {
            t = &t[i + 3..];
            t = t.find('/').map_or("/", |j| &t[j..]);
        }
        t.split(['?', '#']).next().unwrap_or(t)
    }

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
