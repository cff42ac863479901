//! The feature schema: every feature Outrider computes, documented in this one place.
//!
//! A model records [`SCHEMA_ID`] and [`FEATURE_NAMES`]; the detector refuses a model whose
//! schema differs. Change a feature's meaning or the list and bump the id.
//!
//! Every row belongs to one identity key (`sub:`, `client:`, `apikey:`, `cert:`, `session:`,
//! `token:`, or `ip:` for anonymous calls and failed logins) and one window. Features join
//! in the state of other keys: the identity's tokens (`jti`), its client IPs and their
//! network prefixes, the routes it called (per-API baselines), its object types, and the
//! identity's own long-term history (profile). "Window" below means the row's window
//! (`features.window_secs`, sliding by `features.hop_secs`).

/// Version of the feature set below.
pub const SCHEMA_ID: &str = "identity-v4";

macro_rules! features {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// One feature of an identity's window.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum FeatureId {
            $( $(#[doc = $doc])* $variant, )*
        }

        /// The names, in column order.
        pub const FEATURE_NAMES: &[&str] = &[$($name),*];

        impl FeatureId {
            pub const ALL: &'static [FeatureId] = &[$(FeatureId::$variant),*];
            pub fn name(self) -> &'static str {
                FEATURE_NAMES[self as usize]
            }
        }
    };
}

features! {
    // ---- Volume and reach (per identity; heavy keys switch to HyperLogLog) ----
    /// Gateway requests per minute.
    RequestsPerMin = "requests_per_min",
    /// Distinct route templates called.
    DistinctEndpoints = "distinct_endpoints",
    /// Distinct object ids in concrete paths (BOLA walks touch many).
    DistinctObjectIds = "distinct_object_ids",
    /// The most distinct ids of one object type (the path segment before the id), i.e. the
    /// (identity, object type) key: one user reading 300 `accounts` is not one reading 3
    /// accounts, 100 orders and 200 products.
    MaxObjectsPerType = "max_objects_per_type",
    /// Share of adjacent pairs among the sorted distinct numeric ids that differ by 1 or 2:
    /// near 1 for a sequential-id walk, near 0 for normal use (0 with fewer than 3 ids).
    SequentialIdWalk = "sequential_id_walk",
    /// Distinct object ids over the window and the identity's history since the start of
    /// the clock hour (UTC) before the window's end: one to two hours of reach. An insider
    /// or a slow scraper reading a few objects a minute looks ordinary in one window and
    /// adds up here. A 32-register HyperLogLog carries the history (close to exact below
    /// about 80, about 18 % error above).
    DistinctObjectIds1h = "distinct_object_ids_1h",
    // ---- Errors ----
    /// Share of responses with a 4xx status.
    Ratio4xx = "ratio_4xx",
    Ratio401 = "ratio_401",
    Ratio403 = "ratio_403",
    /// Share of 404s (enumeration of ids that do not exist).
    Ratio404 = "ratio_404",
    Ratio5xx = "ratio_5xx",
    /// Responses with status 401 or 403 (a count: stuffing through the API shows here).
    Count401403 = "count_401_403",
    // ---- Data volume and latency ----
    /// Response bytes sent to the identity (exfiltration, scraping).
    BytesOut = "bytes_out",
    /// 95th percentile of response size (oversized responses).
    BytesOutP95 = "bytes_out_p95",
    LatencyMeanMs = "latency_mean_ms",
    LatencyP95Ms = "latency_p95_ms",
    // ---- Timing ----
    /// Index of dispersion (variance / mean) of requests per tenth of a hop: about 1 for
    /// human, Poisson-like use, near 0 for a metronomic bot, far above 1 for bursts.
    /// 1 when the window holds fewer than 5 requests.
    RateDispersion = "rate_dispersion",
    /// The identity's requests in this window relative to its own typical active window:
    /// log2((requests + 1) / (typical + 1)); 0 until it has history.
    RequestsVsHistory = "requests_vs_history",
    /// How unusual the hour of day is for this identity: log2(1 / (24 p(hour))), floored at
    /// 0, from its hour-of-day profile (0 until 50 events of history).
    HourSurprise = "hour_surprise",
    // ---- Per-API and peer baselines ----
    /// The largest robust z-score over the routes called: this identity's calls to a route
    /// against the per-identity calls to that route in past windows (median and IQR).
    /// Five searches a minute are normal, five purchases are not.
    RouteRateZ = "route_rate_z",
    /// Robust z-score of requests against the identity's peer group (its kind: users,
    /// clients, API keys, anonymous IPs ...).
    RequestsPeerZ = "requests_peer_z",
    /// Robust z-score of distinct object ids against the peer group.
    ObjectsPeerZ = "objects_peer_z",
    /// Robust z-score of `distinct_object_ids_1h` against the peer group: the same count
    /// is ordinary for a service client and extreme for a user.
    ObjectsHourPeerZ = "objects_1h_peer_z",
    /// Robust z-score of response bytes against the peer group.
    BytesPeerZ = "bytes_peer_z",
    /// Mean surprise, in bits, of the identity's route-to-route transitions under the
    /// learned Markov model of all traffic (0 with fewer than 2 calls or before warm-up).
    TransitionSurprise = "transition_surprise",
    // ---- Network and device ----
    DistinctIps = "distinct_ips",
    DistinctUserAgents = "distinct_user_agents",
    /// Share of the window's client IPs never seen in the identity's history (0 without
    /// history).
    NewIpRatio = "new_ip_ratio",
    /// The same for network prefixes (/24 for IPv4, /48 for IPv6): a new network, not just
    /// a new address in the usual one.
    NewNetworkRatio = "new_network_ratio",
    /// The same for user agents (a new device or client).
    NewUserAgentRatio = "new_user_agent_ratio",
    /// The most distinct identities seen from any of the identity's IPs in the window
    /// (credential stuffing: one IP, many users; shared NAT shows here too, which the
    /// model learns).
    MaxIdentitiesPerIp = "max_identities_per_ip",
    // ---- Tokens (joined with the token server) ----
    /// The largest number of distinct client IPs seen with any one token (replay shows >1).
    MaxIpsPerToken = "max_ips_per_token",
    /// The most client-IP changes between consecutive uses of one token, in event-time
    /// order. A phone moving between Wi-Fi and cellular changes once; a stolen token used
    /// beside its owner flips back and forth.
    MaxIpSwitchesPerToken = "max_ip_switches_per_token",
    /// The largest number of distinct user agents seen with any one token.
    MaxUserAgentsPerToken = "max_user_agents_per_token",
    /// The oldest token age at use, in seconds since the token server issued it (0 when
    /// the issuance was not seen). Replayed tokens are often old.
    TokenAgeMaxS = "token_age_max_s",
    /// Tokens used after the token server revoked them or after their subject logged out.
    TokenUseAfterLogout = "token_use_after_logout",
    /// Token refreshes by the identity.
    TokenRefreshes = "token_refreshes",
    /// Failed logins attributed to this key: from this IP for `ip:` rows, naming this user
    /// for `sub:` rows (brute force of one account from many IPs).
    LoginFailures = "login_failures",

    // ---- Where the client is (when the log carries GeoIP fields) ----
    /// The fastest travel between consecutive located requests of the identity, in km/h:
    /// from the last location in its history to the window's, and within the window.
    /// Moves under 100 km (GeoIP noise, mobile networks) count as 0; time gaps under a
    /// minute count as a minute. Impossible travel shows as thousands of km/h.
    GeoVelocityKmh = "geo_velocity_kmh",
}

pub const FEATURE_COUNT: usize = FEATURE_NAMES.len();

/// The feature names as owned strings, for model files.
pub fn feature_names() -> Vec<String> {
    FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_their_names() {
        assert_eq!(FeatureId::ALL.len(), FEATURE_COUNT);
        for (i, f) in FeatureId::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        assert_eq!(FeatureId::LoginFailures.name(), "login_failures");
        let mut names = FEATURE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEATURE_COUNT, "duplicate feature names");
    }
}
