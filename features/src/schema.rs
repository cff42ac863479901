//! The feature schema. A model records [`SCHEMA_ID`] and [`FEATURE_NAMES`]; the detector
//! refuses a model whose schema differs. Change either and bump the id.

/// Version of the feature set below.
pub const SCHEMA_ID: &str = "identity-v1";

/// One feature of an identity's window (the window is `WindowConfig::window_secs` long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum FeatureId {
    /// Gateway requests per minute.
    RequestsPerMin,
    /// Distinct route templates called.
    DistinctEndpoints,
    /// Distinct object ids in concrete paths (BOLA walks touch many).
    DistinctObjectIds,
    /// Share of responses with a 4xx status.
    Ratio4xx,
    /// Responses with status 401 or 403.
    Count401403,
    /// Response bytes sent to the identity.
    BytesOut,
    /// The largest number of distinct client IPs seen with any one token (replay shows >1).
    MaxIpsPerToken,
    /// The most client-IP changes between consecutive uses of one token. A phone moving
    /// between Wi-Fi and cellular changes once; a stolen token used beside its owner
    /// flips back and forth.
    MaxIpSwitchesPerToken,
    /// Failed logins reported by the token server (attributed to the source IP).
    LoginFailures,
}

pub const FEATURE_COUNT: usize = 9;

pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "requests_per_min",
    "distinct_endpoints",
    "distinct_object_ids",
    "ratio_4xx",
    "count_401_403",
    "bytes_out",
    "max_ips_per_token",
    "max_ip_switches_per_token",
    "login_failures",
];

/// The feature names as owned strings, for model files.
pub fn feature_names() -> Vec<String> {
    FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect()
}
