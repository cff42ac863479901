//! Just enough JOSE for Outrider's signed outputs: compact JWS signing with ES256 or
//! RS256 (Security Event Tokens, RFC 7523 client assertions), the public key as a JWK /
//! JWKS document for receivers, and verification against a JWKS (for receivers written
//! in Rust, and for the tests).
//!
//! Keys are PEM files or PEM text in an environment variable: PKCS#8 (`BEGIN PRIVATE
//! KEY`) for both algorithms, SEC1 (`BEGIN EC PRIVATE KEY`, what `openssl ecparam
//! -genkey` writes) for ES256 and PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RS256. Crypto is
//! `ring`'s; key material never appears in errors, logs or `Debug` output.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The JWS algorithms Outrider signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum JwsAlg {
    /// ECDSA P-256 with SHA-256 (preferred: short keys and signatures).
    #[default]
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, for servers that accept nothing else.
    RS256,
}

impl JwsAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::ES256 => "ES256",
            JwsAlg::RS256 => "RS256",
        }
    }
}

/// A public JSON Web Key (RFC 7517), EC P-256 or RSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// A JWK Set document (`{"keys":[...]}`), what a receiver fetches to verify signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key with this `kid`; without a `kid`, the only key if there is just one.
    pub fn find(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its public JWK. `Debug` shows the algorithm and key id
/// only.
pub struct SigningKey {
    alg: JwsAlg,
    kid: String,
    pair: Pair,
    jwk: Jwk,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PEM private key for `alg`. `kid` defaults to the RFC 7638 thumbprint of
    /// the public key, so it changes exactly when the key does.
    pub fn from_pem(pem_text: &[u8], alg: JwsAlg, kid: Option<String>) -> Result<Self> {
        let der = PrivateKeyDer::from_pem_slice(pem_text).map_err(|e| {
            Error::Config(match e {
                pem::Error::NoItemsFound => "no private key found in the PEM text".to_owned(),
                // Other variants can quote lines of the input: say only what went wrong.
                _ => "the PEM private key is malformed".to_owned(),
            })
        })?;
        let rng = SystemRandom::new();
        let rejected = |what: &str, e: ring::error::KeyRejected| {
            Error::Config(format!(
                "{what} private key rejected for {}: {e}",
                alg.as_str()
            ))
        };
        let (pair, mut jwk) = match (alg, &der) {
            (JwsAlg::ES256, PrivateKeyDer::Pkcs8(k)) => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    k.secret_pkcs8_der(),
                    &rng,
                )
                .map_err(|e| rejected("pkcs8", e))?;
                let jwk = ec_jwk(pair.public_key().as_ref())?;
                (Pair::Ec(pair), jwk)
            }
            (JwsAlg::ES256, PrivateKeyDer::Sec1(k)) => {
                let (private, public) = parse_sec1_p256(k.secret_sec1_der()).ok_or_else(|| {
                    Error::Config(
                        "the SEC1 key is not a P-256 key with its public part; \
                         convert it with `openssl pkcs8 -topk8 -nocrypt`"
                            .to_owned(),
                    )
                })?;
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &private,
                    &public,
                    &rng,
                )
                .map_err(|e| rejected("sec1", e))?;
                let jwk = ec_jwk(pair.public_key().as_ref())?;
                (Pair::Ec(pair), jwk)
            }
            (JwsAlg::RS256, PrivateKeyDer::Pkcs8(k)) => {
                let pair = RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
                    .map_err(|e| rejected("pkcs8", e))?;
                let jwk = rsa_jwk(&pair);
                (Pair::Rsa(pair), jwk)
            }
            (JwsAlg::RS256, PrivateKeyDer::Pkcs1(k)) => {
                let pair =
                    RsaKeyPair::from_der(k.secret_pkcs1_der()).map_err(|e| rejected("pkcs1", e))?;
                let jwk = rsa_jwk(&pair);
                (Pair::Rsa(pair), jwk)
            }
            (alg, _) => {
                return Err(Error::Config(format!(
                    "the PEM key does not match {} (ES256 needs a P-256 key, RS256 an RSA key)",
                    alg.as_str()
                )))
            }
        };
        let kid = kid.unwrap_or_else(|| thumbprint(&jwk));
        jwk.use_ = Some("sig".to_owned());
        jwk.alg = Some(alg.as_str().to_owned());
        jwk.kid = Some(kid.clone());
        Ok(SigningKey {
            alg,
            kid,
            pair,
            jwk,
            rng,
        })
    }

    /// Loads the key from exactly one of a PEM file or an environment variable holding
    /// the PEM text; `what` names the config section in errors.
    pub fn load(
        what: &str,
        key_path: Option<&Path>,
        key_env: Option<&str>,
        alg: JwsAlg,
        kid: Option<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let pem_text = match (key_path, key_env) {
            (Some(path), None) => std::fs::read(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?,
            (None, Some(var)) => crate::deliver::secret_from(var, lookup)?.into_bytes(),
            _ => {
                return Err(Error::Config(format!(
                    "{what}: set exactly one of key_path and key_env"
                )))
            }
        };
        Self::from_pem(&pem_text, alg, kid).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{what}: {m}")),
            other => other,
        })
    }

    pub fn alg(&self) -> JwsAlg {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, with `use`, `alg` and `kid` set.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A JWKS document holding this key: what receivers verify against.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![self.jwk.clone()],
        }
    }

    /// Signs `claims` as a compact JWS with header `{"alg","typ","kid"}`.
    pub fn sign_jwt(&self, typ: &str, claims: &impl Serialize) -> Result<String> {
        let header = serde_json::json!({
            "alg": self.alg.as_str(),
            "typ": typ,
            "kid": self.kid,
        });
        let mut out = b64_json(&header)?;
        out.push('.');
        out.push_str(&b64_json(claims)?);
        let signature = match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&self.rng, out.as_bytes())
                .map_err(|_| Error::Signing("ecdsa signing failed".to_owned()))?
                .as_ref()
                .to_vec(),
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    out.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| Error::Signing("rsa signing failed".to_owned()))?;
                sig
            }
        };
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(out)
    }
}

/// A JWS whose signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
}

/// Verifies a compact JWS against a JWKS: the header's `alg` must be ES256 or RS256
/// and match the key found by `kid`; `expected_typ`, when given, must equal the `typ`
/// header. Claims (`exp`, `aud`, ...) are the caller's to check.
pub fn verify_jwt(token: &str, jwks: &Jwks, expected_typ: Option<&str>) -> Result<VerifiedJwt> {
    let bad = |m: &str| Error::InvalidData(format!("jwt: {m}"));
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a compact jws"));
    };
    let header: serde_json::Value = serde_json::from_slice(&b64_decode(h64)?)?;
    let claims: serde_json::Value = serde_json::from_slice(&b64_decode(c64)?)?;
    let signature = b64_decode(s64)?;
    if let Some(typ) = expected_typ {
        if header.get("typ").and_then(|t| t.as_str()) != Some(typ) {
            return Err(bad("unexpected typ header"));
        }
    }
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    let kid = header.get("kid").and_then(|k| k.as_str());
    let key = jwks.find(kid).ok_or_else(|| bad("no key for this kid"))?;
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return Err(bad("alg does not match the key"));
    }
    let message = &token.as_bytes()[..h64.len() + 1 + c64.len()];
    let field = |v: &Option<String>| -> Result<Vec<u8>> {
        b64_decode(v.as_deref().ok_or_else(|| bad("incomplete jwk"))?)
    };
    let ok = match (alg, key.kty.as_str()) {
        ("ES256", "EC") => {
            if key.crv.as_deref() != Some("P-256") {
                return Err(bad("unsupported curve"));
            }
            let mut point = vec![0x04];
            point.extend(field(&key.x)?);
            point.extend(field(&key.y)?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, &signature)
                .is_ok()
        }
        ("RS256", "RSA") => signature::RsaPublicKeyComponents {
            n: field(&key.n)?,
            e: field(&key.e)?,
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &signature)
        .is_ok(),
        _ => return Err(bad("unsupported alg or key type")),
    };
    if !ok {
        return Err(bad("signature does not verify"));
    }
    Ok(VerifiedJwt { header, claims })
}

fn b64_json(value: &impl Serialize) -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(value)?))
}

fn b64_decode(s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Error::InvalidData("jwt: bad base64url".to_owned()))
}

/// JWK of an uncompressed P-256 point (`04 || x || y`).
fn ec_jwk(point: &[u8]) -> Result<Jwk> {
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err(Error::Config(
            "unexpected P-256 public key encoding".to_owned(),
        ));
    }
    Ok(Jwk {
        kty: "EC".to_owned(),
        crv: Some("P-256".to_owned()),
        x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
        y: Some(URL_SAFE_NO_PAD.encode(&point[33..])),
        n: None,
        e: None,
        use_: None,
        alg: None,
        kid: None,
    })
}

fn rsa_jwk(pair: &RsaKeyPair) -> Jwk {
    let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    Jwk {
        kty: "RSA".to_owned(),
        crv: None,
        x: None,
        y: None,
        n: Some(URL_SAFE_NO_PAD.encode(components.n)),
        e: Some(URL_SAFE_NO_PAD.encode(components.e)),
        use_: None,
        alg: None,
        kid: None,
    }
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
pub fn thumbprint(jwk: &Jwk) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let canonical = if jwk.kty == "EC" {
        serde_json::json!({"crv": s(&jwk.crv), "kty": "EC", "x": s(&jwk.x), "y": s(&jwk.y)})
    } else {
        serde_json::json!({"e": s(&jwk.e), "kty": jwk.kty, "n": s(&jwk.n)})
    };
    // serde_json's map is ordered by key, so this is the canonical form.
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// One DER element: (tag, contents, rest). Definite lengths up to four bytes.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// DER of OID 1.2.840.10045.3.1.7 (prime256v1 / P-256).
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Reads an RFC 5915 `ECPrivateKey` for P-256: (32-byte private scalar, uncompressed
/// public point). `None` for other curves or a key without its public part.
fn parse_sec1_p256(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (0x30, seq, _) = der_element(der)? else {
        return None;
    };
    let (0x02, [1], rest) = der_element(seq)? else {
        return None;
    };
    let (0x04, private, mut rest) = der_element(rest)? else {
        return None;
    };
    if private.len() > 32 {
        return None;
    }
    let mut scalar = vec![0u8; 32 - private.len()];
    scalar.extend_from_slice(private);
    let mut public = None;
    while !rest.is_empty() {
        let (tag, contents, after) = der_element(rest)?;
        rest = after;
        match tag {
            // [0] parameters: must name P-256.
            0xa0 => {
                let (0x06, oid, _) = der_element(contents)? else {
                    return None;
                };
                if oid != P256_OID {
                    return None;
                }
            }
            // [1] public key: a BIT STRING with no unused bits.
            0xa1 => {
                let (0x03, bits, _) = der_element(contents)? else {
                    return None;
                };
                let (&0, point) = bits.split_first()? else {
                    return None;
                };
                public = Some(point.to_vec());
            }
            _ => {}
        }
    }
    Some((scalar, public?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const EC_SEC1: &str = include_str!("../../testdata/keys/ec-sec1.pem");
    pub(crate) const EC_PKCS8: &str = include_str!("../../testdata/keys/ec-pkcs8.pem");
    pub(crate) const RSA_PKCS8: &str = include_str!("../../testdata/keys/rsa-pkcs8.pem");
    pub(crate) const RSA_PKCS1: &str = include_str!("../../testdata/keys/rsa-pkcs1.pem");

    fn key(pem: &str, alg: JwsAlg) -> SigningKey {
        SigningKey::from_pem(pem.as_bytes(), alg, None).expect("test key loads")
    }

    #[test]
    fn es256_sign_and_verify_against_the_published_jwks() {
        let k = key(EC_PKCS8, JwsAlg::ES256);
        let claims = serde_json::json!({"iss": "https://outrider.test", "n": 1});
        let jwt = k.sign_jwt("secevent+jwt", &claims).unwrap();
        let jwks: Jwks = serde_json::from_str(&serde_json::to_string(&k.jwks()).unwrap()).unwrap();
        let v = verify_jwt(&jwt, &jwks, Some("secevent+jwt")).unwrap();
        assert_eq!(v.claims, claims);
        assert_eq!(v.header["alg"], "ES256");
        assert_eq!(v.header["kid"], k.kid());
        // ES256 signatures are the fixed 64-byte r||s form (RFC 7518 3.4), not DER.
        let sig = jwt.rsplit('.').next().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(sig).unwrap().len(), 64);

        let jwk = &jwks.keys[0];
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.use_.as_deref()),
            ("EC", Some("P-256"), Some("sig"))
        );
        assert!(jwk.n.is_none() && jwk.e.is_none());
    }

    #[test]
    fn tampering_and_wrong_keys_fail_verification() {
        let k = key(EC_PKCS8, JwsAlg::ES256);
        let jwt = k.sign_jwt("JWT", &serde_json::json!({"sub": "a"})).unwrap();
        let jwks = k.jwks();
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"b"}"#);
        parts[1] = &forged;
        assert!(verify_jwt(&parts.join("."), &jwks, None).is_err());
        assert!(
            verify_jwt(&jwt, &jwks, Some("secevent+jwt")).is_err(),
            "typ"
        );
        let other = key(RSA_PKCS8, JwsAlg::RS256);
        let mut wrong = other.jwks();
        wrong.keys[0].kid = Some(k.kid().to_owned());
        assert!(verify_jwt(&jwt, &wrong, None).is_err(), "rsa key for es256");
        assert!(verify_jwt("a.b", &jwks, None).is_err());
        assert!(verify_jwt("a.b.c.d", &jwks, None).is_err());
    }

    #[test]
    fn rs256_sign_and_verify_pkcs8_and_pkcs1() {
        let a = key(RSA_PKCS8, JwsAlg::RS256);
        let b = key(RSA_PKCS1, JwsAlg::RS256);
        assert_eq!(a.jwk(), b.jwk(), "same key in two encodings");
        assert_eq!(a.jwk().e.as_deref(), Some("AQAB"));
        let jwt = b.sign_jwt("JWT", &serde_json::json!({"x": true})).unwrap();
        let v = verify_jwt(&jwt, &a.jwks(), None).unwrap();
        assert_eq!(v.header["alg"], "RS256");
        assert_eq!(v.claims["x"], true);
    }

    #[test]
    fn sec1_and_pkcs8_give_the_same_key() {
        let a = key(EC_SEC1, JwsAlg::ES256);
        let b = key(EC_PKCS8, JwsAlg::ES256);
        assert_eq!(a.jwk(), b.jwk());
        let jwt = a.sign_jwt("JWT", &serde_json::json!({})).unwrap();
        verify_jwt(&jwt, &b.jwks(), None).unwrap();
    }

    #[test]
    fn mismatched_or_broken_keys_are_config_errors_without_key_material() {
        for (pem, alg) in [(EC_PKCS8, JwsAlg::RS256), (RSA_PKCS1, JwsAlg::ES256)] {
            let err = SigningKey::from_pem(pem.as_bytes(), alg, None).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
        }
        let broken = EC_PKCS8.replace('M', "!");
        let err = SigningKey::from_pem(broken.as_bytes(), JwsAlg::ES256, None).unwrap_err();
        let body_line = EC_PKCS8.lines().nth(1).unwrap();
        assert!(!err.to_string().contains(&body_line[..20]), "{err}");
        assert!(SigningKey::from_pem(b"nothing here", JwsAlg::ES256, None).is_err());
        let dbg = format!("{:?}", key(EC_PKCS8, JwsAlg::ES256));
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
    }

    #[test]
    fn load_takes_exactly_one_source() {
        let env = |v: &str| (v == "KEY_PEM").then(|| EC_PKCS8.to_owned());
        let k = SigningKey::load("set", None, Some("KEY_PEM"), JwsAlg::ES256, None, &env).unwrap();
        assert_eq!(k.alg(), JwsAlg::ES256);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keys/ec-sec1.pem");
        let from_file =
            SigningKey::load("set", Some(&path), None, JwsAlg::ES256, None, &env).unwrap();
        assert_eq!(from_file.jwk(), k.jwk());
        let err = SigningKey::load(
            "set",
            Some(&path),
            Some("KEY_PEM"),
            JwsAlg::ES256,
            None,
            &env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        let err =
            SigningKey::load("set", None, Some("MISSING"), JwsAlg::ES256, None, &env).unwrap_err();
        assert!(err.to_string().contains("MISSING"), "{err}");
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // The RSA key from RFC 7638 section 3.1 and its published thumbprint.
        let jwk = Jwk {
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            use_: None,
            alg: None,
            kid: None,
        };
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn der_reader_rejects_truncated_input() {
        assert!(der_element(&[0x30]).is_none());
        assert!(der_element(&[0x30, 0x05, 0x01]).is_none());
        assert!(der_element(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_none());
        assert_eq!(
            der_element(&[0x04, 0x81, 0x01, 0xaa, 0xbb]),
            Some((0x04, &[0xaa][..], &[0xbb][..]))
        );
        assert!(
            parse_sec1_p256(&[0x30, 0x03, 0x02, 0x01, 0x02]).is_none(),
            "version 2"
        );
    }
}
