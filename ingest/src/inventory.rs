//! The API inventory: which endpoints are really called, by how many identities, with what
//! outcome, and how that compares with the specs: shadow endpoints (used, not declared),
//! deprecated operations still in use, and declared operations nobody calls.
//!
//! Memory is bounded: at most `max_endpoints` (method, route) entries (events for further
//! endpoints are only counted as dropped), each with a distinct-identity sketch of at most
//! [`IDENTITY_SKETCH_SIZE`] hashes (1 KiB).

use std::collections::HashMap;
use std::fmt;
use std::hash::Hasher;
use std::net::IpAddr;

use serde::Serialize;

use crate::event::{ApiEvent, EventTime, Identity};
use crate::route::{Operation, Resolved, RouteSource};

/// Default cap on (method, route) entries.
pub const DEFAULT_MAX_ENDPOINTS: usize = 10_000;
/// Distinct identities are counted exactly up to this many per endpoint, then estimated
/// (k-minimum-values sketch: about 9% relative error).
pub const IDENTITY_SKETCH_SIZE: usize = 128;

/// Requests by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    /// 1xx and anything outside 100..=599 (a gateway's 0 for a dropped connection).
    pub other: u64,
}

impl StatusCounts {
    fn record(&mut self, status: u16) {
        let slot = match status {
            200..=299 => &mut self.s2xx,
            300..=399 => &mut self.s3xx,
            400..=499 => &mut self.s4xx,
            500..=599 => &mut self.s5xx,
            _ => &mut self.other,
        };
        *slot += 1;
    }

    fn add(&mut self, other: &Self) {
        self.s2xx += other.s2xx;
        self.s3xx += other.s3xx;
        self.s4xx += other.s4xx;
        self.s5xx += other.s5xx;
        self.other += other.other;
    }
}

/// What the inventory knows about one (method, route).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    /// Upper case.
    pub method: String,
    pub route: String,
    pub source: RouteSource,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub requests: u64,
    pub status: StatusCounts,
    /// Distinct identities (see [`Self::identities_exact`]).
    pub identities: u64,
    /// False once the count is an estimate.
    pub identities_exact: bool,
    pub declared: bool,
    pub deprecated: bool,
}

/// The inventory's findings.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryReport {
    /// Whether specs were given; without them nothing is shadow or unused.
    pub specs: bool,
    /// Every endpoint seen, by route then method.
    pub endpoints: Vec<EndpointStats>,
    /// Used but not declared in the specs.
    pub shadow: Vec<EndpointStats>,
    /// Declared deprecated and still used.
    pub deprecated_in_use: Vec<EndpointStats>,
    /// Declared in the specs, never seen.
    pub declared_unused: Vec<Operation>,
    /// Events not counted because `max_endpoints` was reached.
    pub dropped_events: u64,
}

/// Per-endpoint statistics over the events observed.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Route -> indices into `entries`, one per method (few: a linear scan beats a second
    /// map). Indices rather than the entries themselves: one hash lookup per event.
    index: HashMap<Box<str>, Vec<u32>>,
    entries: Vec<Entry>,
    max_endpoints: usize,
    dropped: u64,
    specs: bool,
    declared: Vec<Operation>,
}

#[derive(Debug, Clone)]
struct Entry {
    stats: EndpointStats,
    identities: DistinctSketch,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::new()
    }
}

impl Inventory {
    /// An inventory without specs.
    pub fn new() -> Self {
        Self {
            index: HashMap::new(),
            entries: Vec::new(),
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            dropped: 0,
            specs: false,
            declared: Vec::new(),
        }
    }

    /// An inventory that compares traffic with these declared operations
    /// (`RouteResolver::operations`).
    pub fn with_declared(operations: &[Operation]) -> Self {
        Self {
            specs: true,
            declared: operations.to_vec(),
            ..Self::new()
        }
    }

    /// Caps the number of (method, route) entries (at least 1).
    pub fn with_max_endpoints(mut self, max_endpoints: usize) -> Self {
        self.max_endpoints = max_endpoints.max(1);
        self
    }

    /// Counts one request under its resolved route.
    pub fn observe(&mut self, event: &ApiEvent, resolved: &Resolved) {
        let Some(entry) = self.entry(&event.method, resolved, event.ts) else {
            self.dropped += 1;
            return;
        };
        let stats = &mut entry.stats;
        stats.first_seen = stats.first_seen.min(event.ts);
        stats.last_seen = stats.last_seen.max(event.ts);
        stats.requests += 1;
        stats.status.record(event.status);
        stats.declared |= resolved.declared;
        stats.deprecated |= resolved.deprecated;
        entry
            .identities
            .insert(identity_hash(&event.identity, event.client_ip));
    }

    /// The entry for (method, route), created while under the cap.
    fn entry(&mut self, method: &str, resolved: &Resolved, ts: EventTime) -> Option<&mut Entry> {
        let ids = self.index.get(resolved.route.as_str());
        let found = ids.and_then(|ids| {
            ids.iter().copied().find(|&i| {
                self.entries[i as usize]
                    .stats
                    .method
                    .eq_ignore_ascii_case(method)
            })
        });
        if let Some(i) = found {
            return self.entries.get_mut(i as usize);
        }
        if self.entries.len() >= self.max_endpoints {
            return None;
        }
        let id = u32::try_from(self.entries.len()).ok()?;
        self.index
            .entry(resolved.route.as_str().into())
            .or_default()
            .push(id);
        self.entries.push(Entry {
            stats: EndpointStats {
                method: method.to_ascii_uppercase(),
                route: resolved.route.clone(),
                source: resolved.source,
                first_seen: ts,
                last_seen: ts,
                requests: 0,
                status: StatusCounts::default(),
                identities: 0,
                identities_exact: true,
                declared: false,
                deprecated: false,
            },
            identities: DistinctSketch::default(),
        });
        self.entries.last_mut()
    }

    /// Adds another inventory's counts (e.g. from another partition); the cap still holds.
    pub fn merge(&mut self, other: Inventory) {
        self.dropped += other.dropped;
        for op in other.declared {
            if !self.declared.contains(&op) {
                self.declared.push(op);
            }
        }
        self.specs |= other.specs;
        for theirs in other.entries {
            let resolved = Resolved {
                route: theirs.stats.route.clone(),
                source: theirs.stats.source,
                deprecated: theirs.stats.deprecated,
                declared: theirs.stats.declared,
            };
            let Some(ours) = self.entry(&theirs.stats.method, &resolved, theirs.stats.first_seen)
            else {
                self.dropped += theirs.stats.requests;
                continue;
            };
            let (s, t) = (&mut ours.stats, &theirs.stats);
            s.first_seen = s.first_seen.min(t.first_seen);
            s.last_seen = s.last_seen.max(t.last_seen);
            s.requests += t.requests;
            s.status.add(&t.status);
            s.declared |= t.declared;
            s.deprecated |= t.deprecated;
            ours.identities.merge(&theirs.identities);
        }
    }

    /// The endpoints seen and the findings against the specs.
    pub fn report(&self) -> InventoryReport {
        let mut endpoints: Vec<EndpointStats> = self
            .entries
            .iter()
            .map(|e| {
                let (identities, exact) = e.identities.estimate();
                EndpointStats {
                    identities,
                    identities_exact: exact,
                    ..e.stats.clone()
                }
            })
            .collect();
        endpoints.sort_by(|a, b| (&a.route, &a.method).cmp(&(&b.route, &b.method)));
        let pick = |keep: &dyn Fn(&EndpointStats) -> bool| -> Vec<EndpointStats> {
            endpoints.iter().filter(|e| keep(e)).cloned().collect()
        };
        let shadow = if self.specs {
            pick(&|e| !e.declared)
        } else {
            Vec::new()
        };
        let deprecated_in_use = pick(&|e| e.deprecated);
        let mut declared_unused: Vec<Operation> = self
            .declared
            .iter()
            .filter(|op| !self.seen(op.method.as_str(), &op.route))
            .cloned()
            .collect();
        declared_unused.sort_by(|a, b| (&a.route, a.method).cmp(&(&b.route, b.method)));
        InventoryReport {
            specs: self.specs,
            endpoints,
            shadow,
            deprecated_in_use,
            declared_unused,
            dropped_events: self.dropped,
        }
    }

    fn seen(&self, method: &str, route: &str) -> bool {
        self.index.get(route).is_some_and(|ids| {
            ids.iter()
                .any(|&i| self.entries[i as usize].stats.method == method)
        })
    }
}

/// Hashes the same identifier that `Identity::key` picks (most specific first), or the
/// client IP for an anonymous call, without building the key string.
fn identity_hash(identity: &Identity, client_ip: IpAddr) -> u64 {
    let mut h = Fnv1a::default();
    let fields = [
        (b's', &identity.subject),
        (b'c', &identity.client_id),
        (b'a', &identity.api_key_hash),
        (b't', &identity.cert_thumbprint),
        (b'h', &identity.session_hash),
        (b'j', &identity.token_id),
    ];
    match fields
        .iter()
        .find_map(|(tag, v)| v.as_deref().filter(|s| !s.is_empty()).map(|s| (*tag, s)))
    {
        Some((tag, value)) => {
            h.write_u8(tag);
            h.write(value.as_bytes());
        }
        None => {
            h.write_u8(b'i');
            match client_ip {
                IpAddr::V4(ip) => h.write(&ip.octets()),
                IpAddr::V6(ip) => h.write(&ip.octets()),
            }
        }
    }
    h.finish()
}

/// FNV-1a with a final avalanche (the splitmix64 finaliser), so the sketch sees uniform
/// hashes. Stable across processes and releases, which merging inventories needs.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The smallest [`IDENTITY_SKETCH_SIZE`] distinct hashes seen (k minimum values): an exact
/// count until it fills, then an estimate; mergeable by keeping the smallest of both.
#[derive(Debug, Clone, Default)]
struct DistinctSketch {
    /// Sorted ascending, distinct.
    mins: Vec<u64>,
}

impl DistinctSketch {
    fn insert(&mut self, hash: u64) {
        let Err(i) = self.mins.binary_search(&hash) else {
            return;
        };
        if self.mins.len() >= IDENTITY_SKETCH_SIZE {
            if i >= IDENTITY_SKETCH_SIZE {
                return;
            }
            // Make room first, so the vector never grows past the sketch size.
            self.mins.pop();
        }
        self.mins.insert(i, hash);
    }

    fn merge(&mut self, other: &Self) {
        for &hash in &other.mins {
            self.insert(hash);
        }
    }

    /// (count, exact).
    fn estimate(&self) -> (u64, bool) {
        let n = self.mins.len();
        match self.mins.last() {
            Some(&kth) if n >= IDENTITY_SKETCH_SIZE => {
                // (k - 1) / (fraction of the hash space below the k-th smallest hash).
                let fraction = (kth as f64 + 1.0) / 18_446_744_073_709_551_616.0;
                let estimate = ((n - 1) as f64 / fraction).round();
                (estimate.max(n as f64) as u64, false)
            }
            _ => (n as u64, true),
        }
    }
}

impl fmt::Display for InventoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "API inventory: {} endpoints", self.endpoints.len())?;
        if self.specs {
            write!(
                f,
                ", {} shadow, {} deprecated in use, {} declared but unused",
                self.shadow.len(),
                self.deprecated_in_use.len(),
                self.declared_unused.len()
            )?;
        }
        if self.dropped_events > 0 {
            write!(
                f,
                " ({} events past the endpoint cap not counted)",
                self.dropped_events
            )?;
        }
        writeln!(f)?;
        write_endpoints(f, &self.endpoints, self.specs)?;
        if !self.shadow.is_empty() {
            writeln!(f, "\nShadow endpoints (used, not in the specs):")?;
            write_endpoints(f, &self.shadow, self.specs)?;
        }
        if !self.deprecated_in_use.is_empty() {
            writeln!(f, "\nDeprecated operations still in use:")?;
            write_endpoints(f, &self.deprecated_in_use, self.specs)?;
        }
        if !self.declared_unused.is_empty() {
            writeln!(f, "\nDeclared but never called:")?;
            let width = column_width(self.declared_unused.iter().map(|op| op.route.len()));
            for op in &self.declared_unused {
                let id = op.operation_id.as_deref().unwrap_or("-");
                let note = if op.deprecated { "  deprecated" } else { "" };
                writeln!(
                    f,
                    "  {:<7} {:<width$}  {id}{note}",
                    op.method.as_str(),
                    op.route
                )?;
            }
        }
        Ok(())
    }
}

fn column_width(lengths: impl Iterator<Item = usize>) -> usize {
    lengths.max().unwrap_or(0).max(5)
}

fn write_endpoints(f: &mut fmt::Formatter<'_>, rows: &[EndpointStats], specs: bool) -> fmt::Result {
    let width = column_width(rows.iter().map(|e| e.route.len()));
    writeln!(
        f,
        "  {:<7} {:<width$} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}  {:<24}  {:<24}  FLAGS",
        "METHOD",
        "ROUTE",
        "REQUESTS",
        "2XX",
        "3XX",
        "4XX",
        "5XX",
        "IDENTITIES",
        "FIRST SEEN",
        "LAST SEEN"
    )?;
    for e in rows {
        let identities = if e.identities_exact {
            e.identities.to_string()
        } else {
            format!("~{}", e.identities)
        };
        let mut flags = Vec::new();
        if specs && !e.declared {
            flags.push("shadow");
        }
        if e.deprecated {
            flags.push("deprecated");
        }
        let source = match e.source {
            RouteSource::OpenApi => "openapi",
            RouteSource::Learned => "learned",
            RouteSource::Heuristic => "heuristic",
        };
        flags.push(source);
        writeln!(
            f,
            "  {:<7} {:<width$} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}  {:<24}  {:<24}  {}",
            e.method,
            e.route,
            e.requests,
            e.status.s2xx,
            e.status.s3xx,
            e.status.s4xx,
            e.status.s5xx,
            identities,
            e.first_seen.to_string(),
            e.last_seen.to_string(),
            flags.join(",")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{RouteConfig, RouteResolver};
    use std::path::PathBuf;

    fn event(ts: i64, method: &str, path: &str, status: u16, subject: &str) -> ApiEvent {
        ApiEvent {
            ts: EventTime(ts),
            request_id: format!("r{ts}"),
            route: String::new(),
            method: method.into(),
            path: path.into(),
            status,
            latency_ms: 1.0,
            bytes_in: 0,
            bytes_out: 0,
            client_ip: "192.0.2.1".parse().unwrap(),
            user_agent: String::new(),
            identity: Identity {
                subject: (!subject.is_empty()).then(|| subject.to_owned()),
                ..Identity::default()
            },
            origin: Default::default(),
        }
    }

    fn bank() -> (RouteResolver, Inventory) {
        let config = RouteConfig {
            openapi: vec![
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/openapi/bank.yaml")
            ],
            ..RouteConfig::default()
        };
        let resolver = RouteResolver::new(&config).unwrap();
        let inventory = Inventory::with_declared(resolver.operations());
        (resolver, inventory)
    }

    fn feed(r: &mut RouteResolver, inv: &mut Inventory, events: &[ApiEvent]) {
        for e in events {
            let resolved = r.resolve(&e.method, &e.path);
            inv.observe(e, &resolved);
        }
    }

    fn find<'a>(rows: &'a [EndpointStats], method: &str, route: &str) -> Option<&'a EndpointStats> {
        rows.iter().find(|e| e.method == method && e.route == route)
    }

    #[test]
    fn classifies_shadow_deprecated_and_unused_endpoints() {
        let (mut r, mut inv) = bank();
        feed(
            &mut r,
            &mut inv,
            &[
                event(3_000, "GET", "/v1/accounts/a1", 200, "alice"),
                event(1_000, "GET", "/v1/accounts/a2", 404, "bob"),
                event(2_000, "get", "/v1/accounts/a1", 200, "alice"),
                event(4_000, "GET", "/v0/balance", 200, "carol"),
                event(5_000, "DELETE", "/v1/accounts/a1", 405, "mallory"),
                event(6_000, "GET", "/v1/internal/debug/7", 500, ""),
                event(7_000, "POST", "/oauth/token", 200, ""),
            ],
        );
        let report = inv.report();
        assert!(report.specs);
        let acct = find(&report.endpoints, "GET", "/v1/accounts/{accountId}").unwrap();
        assert_eq!(
            (acct.requests, acct.identities, acct.identities_exact),
            (3, 2, true)
        );
        assert_eq!(
            (acct.first_seen, acct.last_seen),
            (EventTime(1_000), EventTime(3_000))
        );
        assert_eq!((acct.status.s2xx, acct.status.s4xx), (2, 1));
        assert!(acct.declared && !acct.deprecated);

        let shadow: Vec<_> = report
            .shadow
            .iter()
            .map(|e| (e.method.as_str(), e.route.as_str()))
            .collect();
        assert_eq!(
            shadow,
            [
                ("DELETE", "/v1/accounts/{accountId}"),
                ("GET", "/v1/internal/debug/{param}")
            ]
        );
        assert_eq!(report.deprecated_in_use.len(), 1);
        assert_eq!(report.deprecated_in_use[0].route, "/v0/balance");
        let unused: Vec<_> = report
            .declared_unused
            .iter()
            .map(|op| format!("{} {}", op.method, op.route))
            .collect();
        assert!(
            unused.contains(&"POST /v1/payments".to_owned()),
            "{unused:?}"
        );
        assert!(!unused.contains(&"GET /v1/accounts/{accountId}".to_owned()));
        assert!(!unused.contains(&"POST /oauth/token".to_owned()));
        assert!(!unused.contains(&"GET /v0/balance".to_owned()));
        assert_eq!(unused.len(), r.operations().len() - 3);

        let text = report.to_string();
        assert!(
            text.starts_with("API inventory: 5 endpoints, 2 shadow, 1 deprecated in use"),
            "{text}"
        );
        assert!(
            text.contains("/v1/internal/debug/{param}") && text.contains("shadow,learned"),
            "{text}"
        );
        assert!(
            text.contains("Declared but never called:") && text.contains("createPayment"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["endpoints"][0]["status"]["2xx"], 1);
        assert_eq!(json["declared_unused"][0]["method"], "GET");
    }

    #[test]
    fn without_specs_nothing_is_shadow_or_unused() {
        let mut r = RouteResolver::new(&RouteConfig::default()).unwrap();
        let mut inv = Inventory::new();
        feed(
            &mut r,
            &mut inv,
            &[
                event(1, "GET", "/a/1", 200, "x"),
                event(2, "GET", "/a/2", 0, ""),
            ],
        );
        let report = inv.report();
        assert_eq!(report.endpoints.len(), 1);
        assert_eq!(report.endpoints[0].status.other, 1);
        assert_eq!(
            report.endpoints[0].identities, 2,
            "subject x and the anonymous IP"
        );
        assert!(report.shadow.is_empty() && report.declared_unused.is_empty());
        assert!(report
            .to_string()
            .starts_with("API inventory: 1 endpoints\n"));
    }

    #[test]
    fn distinct_identities_are_exact_then_estimated() {
        let mut sketch = DistinctSketch::default();
        for i in 0..IDENTITY_SKETCH_SIZE as u64 - 1 {
            sketch.insert(identity_hash(
                &Identity {
                    subject: Some(format!("u{i}")),
                    ..Identity::default()
                },
                [0, 0, 0, 0].into(),
            ));
        }
        assert_eq!(sketch.estimate(), (IDENTITY_SKETCH_SIZE as u64 - 1, true));
        for i in 0..20_000u64 {
            sketch.insert(identity_hash(
                &Identity {
                    subject: Some(format!("u{}", i % 10_000)),
                    ..Identity::default()
                },
                [0, 0, 0, 0].into(),
            ));
        }
        let (n, exact) = sketch.estimate();
        assert!(!exact);
        assert!((7_500..12_500).contains(&n), "{n}");
        assert!(sketch.mins.len() <= IDENTITY_SKETCH_SIZE);
        assert!(sketch.mins.capacity() <= IDENTITY_SKETCH_SIZE);
    }

    #[test]
    fn the_endpoint_cap_bounds_memory_and_counts_what_it_drops() {
        let mut r = RouteResolver::new(&RouteConfig {
            learn: false,
            ..RouteConfig::default()
        })
        .unwrap();
        let mut inv = Inventory::new().with_max_endpoints(2);
        feed(
            &mut r,
            &mut inv,
            &[
                event(1, "GET", "/a", 200, "x"),
                event(2, "POST", "/a", 200, "x"),
                event(3, "GET", "/b", 200, "x"),
                event(4, "GET", "/a", 200, "x"),
            ],
        );
        let report = inv.report();
        assert_eq!(report.endpoints.len(), 2);
        assert_eq!(report.dropped_events, 1);
        assert!(report
            .to_string()
            .contains("1 events past the endpoint cap"));
    }

    #[test]
    fn merging_two_inventories_adds_counts_and_unions_identities() {
        let (mut r, mut a) = bank();
        let mut b = Inventory::with_declared(r.operations());
        feed(
            &mut r,
            &mut a,
            &[
                event(5, "GET", "/v1/cards", 200, "alice"),
                event(9, "GET", "/v1/profile", 200, "alice"),
            ],
        );
        feed(
            &mut r,
            &mut b,
            &[
                event(2, "GET", "/v1/cards", 503, "bob"),
                event(3, "GET", "/v1/cards", 200, "alice"),
            ],
        );
        a.merge(b);
        let report = a.report();
        let cards = find(&report.endpoints, "GET", "/v1/cards").unwrap();
        assert_eq!((cards.requests, cards.identities), (3, 2));
        assert_eq!(
            (cards.first_seen, cards.last_seen),
            (EventTime(2), EventTime(5))
        );
        assert_eq!((cards.status.s2xx, cards.status.s5xx), (2, 1));
        assert_eq!(report.endpoints.len(), 2);
        assert_eq!(report.declared_unused.len(), r.operations().len() - 2);
    }
}
