//! Who made a request, from what the gateway logged.
//!
//! A bearer JWT is decoded for *identification only* (its signature is not checked and its
//! claims are never trusted for authorization). Raw credentials are never kept: a token is
//! identified by `jti` + `aud` when it has them, else by a keyed hash; API keys and session
//! cookies by keyed hashes. The client IP honours `X-Forwarded-For` only when the TCP peer
//! is a configured trusted proxy.

use std::net::IpAddr;

use base64::Engine;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::event::Identity;

/// `[source.identity]`: how identities and client addresses are derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The environment variable holding the key for credential hashes. Without one, hashes
    /// are plain SHA-256: fine for high-entropy tokens, weak for short API keys.
    pub hash_key_env: Option<String>,
    /// The cookie that carries the session id.
    pub session_cookie: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            hash_key_env: None,
            session_cookie: "session".into(),
        }
    }
}

/// The credentials of one request as a gateway logged them; every field is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header (`Bearer <token>`, `Basic ...`).
    pub authorization: Option<&'a str>,
    /// An API key header value.
    pub api_key: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The mTLS peer certificate's SHA-256 fingerprint, in any common notation.
    pub cert_fingerprint: Option<&'a str>,
    /// The TCP peer address.
    pub peer_ip: Option<IpAddr>,
    /// The `X-Forwarded-For` header.
    pub forwarded_for: Option<&'a str>,
    /// A subject the gateway itself authenticated (Kong consumer, AWS authorizer principal);
    /// preferred over an unverified JWT `sub`.
    pub subject: Option<&'a str>,
    /// A client id the gateway itself authenticated.
    pub client_id: Option<&'a str>,
    /// A token id the gateway logged (e.g. a `jti` claim it extracted).
    pub token_id: Option<&'a str>,
}

/// The result of [`IdentityExtractor::identify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identified {
    pub identity: Identity,
    /// The client address after trusted proxies; `None` if nothing usable was logged.
    pub client_ip: Option<IpAddr>,
}

#[derive(Clone)]
pub struct IdentityExtractor {
    config: IdentityConfig,
    /// The keyed HMAC state, computed once and cloned per hash (saves two SHA-256 blocks).
    mac: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for IdentityExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityExtractor")
            .field("config", &self.config)
            .field("keyed", &self.mac.is_some())
            .finish()
    }
}

impl IdentityExtractor {
    /// Reads the hash key from the environment variable the config names.
    pub fn new(config: &IdentityConfig) -> Result<Self> {
        let key = match &config.hash_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v.into_bytes()),
                _ => {
                    return Err(Error::Config(format!(
                        "`source.identity.hash_key_env` names {var}, which is not set"
                    )))
                }
            },
        };
        Ok(Self {
            config: config.clone(),
            mac: key.map(|k| keyed_mac(&k)),
        })
    }

    /// With an explicit key (tests, golden files).
    pub fn with_key(config: &IdentityConfig, key: &[u8]) -> Self {
        Self {
            config: config.clone(),
            mac: Some(keyed_mac(key)),
        }
    }

    pub fn identify(&self, c: &Credentials<'_>) -> Identified {
        let mut identity = Identity {
            subject: non_empty(c.subject).map(str::to_owned),
            client_id: non_empty(c.client_id).map(str::to_owned),
            token_id: non_empty(c.token_id).map(str::to_owned),
            ..Identity::default()
        };
        if let Some(auth) = non_empty(c.authorization) {
            self.apply_authorization(auth.trim(), &mut identity);
        }
        identity.api_key_hash = non_empty(c.api_key).map(|k| self.hash("apikey", k));
        identity.session_hash = c
            .cookie
            .and_then(|h| cookie_value(h, &self.config.session_cookie))
            .map(|v| self.hash("session", v));
        identity.cert_thumbprint = non_empty(c.cert_fingerprint).and_then(normalise_fingerprint);
        Identified {
            identity,
            client_ip: self.client_ip(c.peer_ip, c.forwarded_for),
        }
    }

    /// The client address: the peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address in `X-Forwarded-For` (read right to left).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let Some(xff) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in xff.rsplit(',') {
            match parse_ip(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                // A malformed hop ends what we can believe.
                None => break,
            }
        }
        Some(client)
    }

    /// A keyed hash of a credential: 32 hex characters, never reversible to the credential.
    pub fn hash(&self, domain: &str, value: &str) -> String {
        self.prefixed_hash("", domain, value)
    }

    /// `prefix` followed by [`Self::hash`], built in one allocation (a hash is made for most
    /// requests).
    fn prefixed_hash(&self, prefix: &str, domain: &str, value: &str) -> String {
        let digest: [u8; 32] = match &self.mac {
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(domain.as_bytes());
                mac.update(b"\x1f");
                mac.update(value.as_bytes());
                mac.finalize().into_bytes().into()
            }
            None => {
                use sha2::Digest;
                let mut h = Sha256::new();
                h.update(domain.as_bytes());
                h.update(b"\x1f");
                h.update(value.as_bytes());
                h.finalize().into()
            }
        };
        let mut out = String::with_capacity(prefix.len() + 32);
        out.push_str(prefix);
        push_hex(&mut out, &digest[..16]);
        out
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.config.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    fn apply_authorization(&self, auth: &str, identity: &mut Identity) {
        let (scheme, value) = auth.split_once(' ').unwrap_or(("", auth));
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            if identity.subject.is_none() {
                identity.subject = basic_user(value);
            }
            return;
        }
        if !scheme.eq_ignore_ascii_case("bearer") || value.is_empty() {
            return;
        }
        let claims = jwt_claims(value);
        if let Some(claims) = &claims {
            if identity.subject.is_none() {
                identity.subject = claims.sub.clone();
            }
            if identity.client_id.is_none() {
                identity.client_id = claims.client_id();
            }
        }
        if identity.token_id.is_none() {
            identity.token_id = Some(match claims.as_ref().and_then(Claims::token_key) {
                Some(key) => key,
                None => self.prefixed_hash("h:", "token", value),
            });
        }
    }
}

fn keyed_mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Lowercase hex, as `hex::encode` writes it.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty() && *s != "-")
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // "[v6]:port" or "v4:port"
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

fn normalise_fingerprint(fp: &str) -> Option<String> {
    let hex: String = fp
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

fn basic_user(value: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_owned())
}

/// The claims Outrider reads from a JWT, for identification only.
#[derive(Debug, Default, Deserialize)]
struct Claims {
    sub: Option<String>,
    client_id: Option<String>,
    azp: Option<String>,
    cid: Option<String>,
    jti: Option<String>,
    aud: Option<Audience>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    fn client_id(&self) -> Option<String> {
        self.client_id
            .clone()
            .or_else(|| self.azp.clone())
            .or_else(|| self.cid.clone())
    }

    /// `jti` + `aud`: how denylists key tokens (not a hash of the token, which a
    /// re-encoded signature would change).
    fn token_key(&self) -> Option<String> {
        let jti = self.jti.as_deref().filter(|j| !j.is_empty())?;
        let aud = match &self.aud {
            Some(Audience::One(a)) => a.as_str(),
            Some(Audience::Many(v)) => v.first().map_or("", String::as_str),
            None => "",
        };
        Some(if aud.is_empty() {
            format!("jti:{jti}")
        } else {
            format!("jti:{jti}@{aud}")
        })
    }
}

fn jwt_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn extractor() -> IdentityExtractor {
        let config = IdentityConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..IdentityConfig::default()
        };
        IdentityExtractor::with_key(&config, b"k")
    }

    #[test]
    fn a_bearer_jwt_gives_subject_client_and_jti_at_audience_never_the_token() {
        let token = jwt(r#"{"sub":"alice","azp":"web","jti":"j1","aud":["bank","x"]}"#);
        let auth = format!("Bearer {token}");
        let id = extractor().identify(&Credentials {
            authorization: Some(&auth),
            ..Credentials::default()
        });
        assert_eq!(id.identity.subject.as_deref(), Some("alice"));
        assert_eq!(id.identity.client_id.as_deref(), Some("web"));
        assert_eq!(id.identity.token_id.as_deref(), Some("jti:j1@bank"));
    }

    #[test]
    fn hashes_are_the_first_16_bytes_of_the_mac_in_lowercase_hex() {
        let expected = |mac: Option<&[u8]>, domain: &str, value: &str| {
            let input = [domain.as_bytes(), b"\x1f", value.as_bytes()].concat();
            let digest = match mac {
                Some(key) => {
                    let mut m = keyed_mac(key);
                    m.update(&input);
                    m.finalize().into_bytes().to_vec()
                }
                None => {
                    use sha2::Digest;
                    Sha256::digest(&input).to_vec()
                }
            };
            hex::encode(&digest[..16])
        };
        let keyed = IdentityExtractor::with_key(&IdentityConfig::default(), b"k");
        let plain = IdentityExtractor::new(&IdentityConfig::default()).unwrap();
        for value in ["", "k_live_0123", "é", &"x".repeat(200)] {
            assert_eq!(
                keyed.hash("apikey", value),
                expected(Some(b"k"), "apikey", value)
            );
            assert_eq!(plain.hash("token", value), expected(None, "token", value));
        }
        let token = keyed.identify(&Credentials {
            authorization: Some("Bearer opaque"),
            ..Credentials::default()
        });
        let want = format!("h:{}", expected(Some(b"k"), "token", "opaque"));
        assert_eq!(token.identity.token_id, Some(want));
    }

    #[test]
    fn an_opaque_token_is_identified_by_a_keyed_hash() {
        let x = extractor();
        let a = x.identify(&Credentials {
            authorization: Some("Bearer opaque-token-value"),
            ..Credentials::default()
        });
        let token_id = a.identity.token_id.unwrap();
        assert!(token_id.starts_with("h:") && !token_id.contains("opaque"));
        let other_key = IdentityExtractor::with_key(&IdentityConfig::default(), b"other");
        let b = other_key.identify(&Credentials {
            authorization: Some("Bearer opaque-token-value"),
            ..Credentials::default()
        });
        assert_ne!(Some(token_id), b.identity.token_id, "the hash is keyed");
    }

    #[test]
    fn the_gateway_authenticated_subject_wins_over_an_unverified_jwt() {
        let auth = format!("Bearer {}", jwt(r#"{"sub":"mallory"}"#));
        let id = extractor().identify(&Credentials {
            authorization: Some(&auth),
            subject: Some("alice"),
            ..Credentials::default()
        });
        assert_eq!(id.identity.subject.as_deref(), Some("alice"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let x = extractor();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = Some("203.0.113.9, 198.51.100.1, 10.1.1.1");
        assert_eq!(
            x.client_ip(Some(ip("10.0.0.2")), xff),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            x.client_ip(Some(ip("192.0.2.7")), xff),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(
            x.client_ip(Some(ip("10.0.0.2")), None),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            x.client_ip(Some(ip("10.0.0.2")), Some("garbage, 10.2.2.2")),
            Some(ip("10.2.2.2")),
            "a malformed hop stops the walk at the last good one"
        );
    }

    #[test]
    fn keys_cookies_certificates_and_basic_users() {
        let id = extractor().identify(&Credentials {
            api_key: Some("k-123"),
            cookie: Some("theme=dark; session=abc123; x=1"),
            cert_fingerprint: Some(&"AB:".repeat(31).replace(':', "")),
            authorization: Some("Basic Ym9iOnNlY3JldA=="),
            ..Credentials::default()
        });
        assert_eq!(id.identity.subject.as_deref(), Some("bob"));
        assert_eq!(id.identity.api_key_hash.as_ref().map(String::len), Some(32));
        assert!(id.identity.session_hash.is_some());
        assert_eq!(
            id.identity.cert_thumbprint, None,
            "62 hex digits is not a SHA-256"
        );
        let fp = format!("{}:CD", "AB:".repeat(31));
        let id = extractor().identify(&Credentials {
            cert_fingerprint: Some(&fp),
            ..Credentials::default()
        });
        assert_eq!(
            id.identity.cert_thumbprint.as_deref().map(str::len),
            Some(64)
        );
    }

    #[test]
    fn a_hash_key_variable_that_is_not_set_is_a_config_error_naming_it() {
        let config = IdentityConfig {
            hash_key_env: Some("OUTRIDER_TEST_SURELY_UNSET_VAR".into()),
            ..IdentityConfig::default()
        };
        let err = IdentityExtractor::new(&config).unwrap_err().to_string();
        assert!(err.contains("OUTRIDER_TEST_SURELY_UNSET_VAR"), "{err}");
    }
}
