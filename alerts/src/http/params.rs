//! Query-string parameters, parsed strictly: an unknown parameter or a bad value is a
//! 400 that names it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::error::ApiError;
use crate::feed::{FeedCursor, FeedRequest};
use crate::incident::{IncidentKind, IncidentQuery};
use crate::model::{AlertQuery, AlertStatus, CountQuery, Severity};

type Params = BTreeMap<String, String>;

/// Splits a query string; a parameter given twice is refused (which one would win is
/// a guess).
pub(crate) fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
    let mut out = Params::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter {k:?} (known: {})",
                allowed.join(", ")
            )));
        }
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::BadRequest(format!(
                "parameter {k:?} is given twice"
            )));
        }
    }
    Ok(out)
}

fn bad(name: &str, value: &str, want: &str) -> ApiError {
    ApiError::BadRequest(format!("parameter {name}={value:?}: expected {want}"))
}

/// RFC 3339 (`2024-05-01T12:00:00Z`) or unix seconds.
fn time(p: &Params, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = p.get(name) else {
        return Ok(None);
    };
    if let Ok(secs) = v.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0)
            .map(Some)
            .ok_or_else(|| bad(name, v, "a time"));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| bad(name, v, "an RFC 3339 time or unix seconds"))
}

fn severity(p: &Params, name: &str) -> Result<Option<Severity>, ApiError> {
    p.get(name)
        .map(|v| Severity::parse(v).ok_or_else(|| bad(name, v, "low, medium, high or critical")))
        .transpose()
}

fn status(p: &Params) -> Result<Option<AlertStatus>, ApiError> {
    p.get("status")
        .map(|v| {
            AlertStatus::parse(v).ok_or_else(|| {
                bad(
                    "status",
                    v,
                    "open, acknowledged, resolved or false_positive",
                )
            })
        })
        .transpose()
}

fn limit(p: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(v) = p.get("limit") else {
        return Ok(default.min(max));
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(bad("limit", v, &format!("a number from 1 to {max}"))),
    }
}

fn flag(p: &Params, name: &str) -> Result<bool, ApiError> {
    match p.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(bad(name, v, "true or false")),
    }
}

const ALERT_FILTERS: [&str; 7] = [
    "since",
    "until",
    "identity",
    "api",
    "min_severity",
    "status",
    "limit",
];

/// `GET /v1/alerts` parameters.
pub(crate) fn alert_query(raw: Option<&str>, max: usize) -> Result<AlertQuery, ApiError> {
    let p = parse(raw, &ALERT_FILTERS)?;
    alert_filter(&p, max)
}

fn alert_filter(p: &Params, max: usize) -> Result<AlertQuery, ApiError> {
    Ok(AlertQuery {
        since: time(p, "since")?,
        until: time(p, "until")?,
        identity: p.get("identity").cloned(),
        api: p.get("api").cloned(),
        min_severity: severity(p, "min_severity")?,
        status: status(p)?,
        limit: limit(p, 100, max)?,
    })
}

/// `GET /v1/alerts/counts` parameters: the alert filters (without `limit`), `bucket`
/// (seconds, or with a unit: `15m`, `1h`, `1d`; default `1h`) and `by=severity`.
pub(crate) fn count_query(raw: Option<&str>) -> Result<CountQuery, ApiError> {
    let mut allowed: Vec<&str> = ALERT_FILTERS
        .iter()
        .copied()
        .filter(|k| *k != "limit")
        .collect();
    allowed.extend(["bucket", "by"]);
    let p = parse(raw, &allowed)?;
    let bucket_secs = match p.get("bucket") {
        None => 3600,
        Some(v) => duration_secs(v)
            .ok_or_else(|| bad("bucket", v, "a duration such as 300, 15m, 1h or 1d"))?,
    };
    let by_severity = match p.get("by").map(String::as_str) {
        None => false,
        Some("severity") => true,
        Some(v) => return Err(bad("by", v, "severity")),
    };
    Ok(CountQuery {
        filter: alert_filter(&p, usize::MAX)?,
        bucket_secs,
        by_severity,
    })
}

/// `90`, `90s`, `15m`, `1h`, `1d`; at least one second.
fn duration_secs(v: &str) -> Option<u64> {
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale).filter(|&s| s > 0)
}

/// `GET /v1/incidents` parameters.
pub(crate) fn incident_query(raw: Option<&str>, max: usize) -> Result<IncidentQuery, ApiError> {
    let p = parse(
        raw,
        &[
            "since",
            "until",
            "identity",
            "kind",
            "min_severity",
            "status",
            "limit",
        ],
    )?;
    let kind = p
        .get("kind")
        .map(|v| match v.as_str() {
            "identity" => Ok(IncidentKind::Identity),
            "campaign" => Ok(IncidentKind::Campaign),
            _ => Err(bad("kind", v, "identity or campaign")),
        })
        .transpose()?;
    Ok(IncidentQuery {
        since: time(&p, "since")?,
        until: time(&p, "until")?,
        identity: p.get("identity").cloned(),
        kind,
        min_severity: severity(&p, "min_severity")?,
        status: status(&p)?,
        limit: limit(&p, 100, max)?,
    })
}

/// `GET /v1/decisions/stream` parameters: `cursor`, `limit`, `include_simulated`.
pub(crate) fn feed_request(raw: Option<&str>, max: usize) -> Result<FeedRequest, ApiError> {
    let p = parse(raw, &["cursor", "limit", "include_simulated"])?;
    let cursor = p
        .get("cursor")
        .map(|c| FeedCursor::decode(c).map_err(ApiError::from))
        .transpose()?;
    Ok(FeedRequest {
        cursor,
        limit: limit(&p, max, max)?,
        include_simulated: flag(&p, "include_simulated")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_filters_parse_and_bad_ones_are_named() {
        let q = alert_query(
            Some("since=1700000000&until=2023-11-14T23:00:00Z&identity=sub%3Aalice&api=%2Fv1%2Fx&min_severity=high&status=false_positive&limit=5"),
            100,
        )
        .unwrap();
        assert_eq!(q.since.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(q.until.unwrap().timestamp(), 1_700_002_800);
        assert_eq!(q.identity.as_deref(), Some("sub:alice"));
        assert_eq!(q.api.as_deref(), Some("/v1/x"));
        assert_eq!(q.min_severity, Some(Severity::High));
        assert_eq!(q.status, Some(AlertStatus::FalsePositive));
        assert_eq!(q.limit, 5);
        for (query, names) in [
            ("severity=high", "\"severity\""),
            ("min_severity=urgent", "min_severity"),
            ("status=closed", "status"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("since=yesterday", "since"),
            ("identity=a&identity=b", "twice"),
        ] {
            let err = alert_query(Some(query), 100).unwrap_err();
            let ApiError::BadRequest(msg) = err else {
                panic!("{query}: not a bad request")
            };
            assert!(msg.contains(names), "{query}: {msg}");
        }
    }

    #[test]
    fn count_buckets_take_units() {
        assert_eq!(count_query(None).unwrap().bucket_secs, 3600);
        assert_eq!(count_query(Some("bucket=15m")).unwrap().bucket_secs, 900);
        assert_eq!(count_query(Some("bucket=2d")).unwrap().bucket_secs, 172_800);
        assert_eq!(count_query(Some("bucket=45")).unwrap().bucket_secs, 45);
        assert!(count_query(Some("by=severity")).unwrap().by_severity);
        assert!(count_query(Some("bucket=0")).is_err());
        assert!(count_query(Some("bucket=1w")).is_err());
        assert!(count_query(Some("by=identity")).is_err());
        assert!(
            count_query(Some("limit=3")).is_err(),
            "counts take no limit"
        );
    }

    #[test]
    fn feed_parameters() {
        let r = feed_request(None, 500).unwrap();
        assert_eq!((r.cursor, r.limit, r.include_simulated), (None, 500, false));
        let c = FeedCursor {
            added_seq: 3,
            expired_ms: 5,
            expired_seq: 7,
        };
        let r = feed_request(
            Some(&format!("cursor={}&include_simulated=true", c.encode())),
            500,
        )
        .unwrap();
        assert_eq!(r.cursor, Some(c));
        assert!(r.include_simulated);
        assert!(matches!(
            feed_request(Some("cursor=nonsense"), 500),
            Err(ApiError::BadRequest(_))
        ));
    }
}
