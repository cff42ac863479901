//! The three relations Outrider watches for bursts, one MIDAS-R detector each.

use serde::{Deserialize, Serialize};

use super::midas::{BurstComponent, BurstScore, MidasR};
use super::params::MidasRValidParams;
use super::sketch::mix64;
use crate::error::{Error, Result};

/// A relation between two kinds of keys. Sources and destinations are the caller's stable
/// 64-bit hashes of the keys (e.g. the features crate's hashes), never raw values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// identity -> API route: a scraper or a flood on one route.
    IdentityApi,
    /// OAuth client -> token: token replay (a token suddenly used by another client).
    ClientToken,
    /// client IP -> identity: credential stuffing (one IP, many identities) and brute
    /// force (one identity, many IPs).
    IpIdentity,
}

impl EdgeKind {
    pub const ALL: [EdgeKind; 3] = [Self::IdentityApi, Self::ClientToken, Self::IpIdentity];

    /// Stable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentityApi => "identity_api",
            Self::ClientToken => "client_token",
            Self::IpIdentity => "ip_identity",
        }
    }

    /// What the source and destination keys are, for reasons.
    fn ends(self) -> (&'static str, &'static str) {
        match self {
            Self::IdentityApi => ("identity", "API"),
            Self::ClientToken => ("client", "token"),
            Self::IpIdentity => ("IP", "identity"),
        }
    }
}

impl std::fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BurstScore {
    /// A sentence for an analyst, with the numbers, e.g. "IP -> identity burst: the IP
    /// made 48.0 edges per tick against 1.0 expected (score 2209)".
    pub fn reason(&self, kind: EdgeKind) -> String {
        let (src, dst) = kind.ends();
        let who = match self.component {
            BurstComponent::Edge => format!("this {src} -> {dst} pair"),
            BurstComponent::Source => format!("the {src}"),
            BurstComponent::Destination => format!("the {dst}"),
        };
        format!(
            "{src} -> {dst} burst: {who} made {:.1} edges per tick against {:.1} expected \
             (score {:.0})",
            self.rate, self.expected, self.score
        )
    }
}

/// One MIDAS-R detector per [`EdgeKind`], with the same parameters and distinct seeds.
/// Serialize it to checkpoint all three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BurstDetectorsState")]
pub struct BurstDetectors {
    identity_api: MidasR,
    client_token: MidasR,
    ip_identity: MidasR,
}

impl BurstDetectors {
    /// Three empty detectors.
    pub fn new(params: &MidasRValidParams) -> Self {
        let build = |kind: EdgeKind| params.with_seed(mix64(params.seed() ^ kind as u64)).build();
        Self {
            identity_api: build(EdgeKind::IdentityApi),
            client_token: build(EdgeKind::ClientToken),
            ip_identity: build(EdgeKind::IpIdentity),
        }
    }

    /// Counts and scores the edge `src -> dst` of `kind` at event-time `tick`.
    #[inline]
    pub fn observe(&mut self, kind: EdgeKind, src: u64, dst: u64, tick: u64) -> BurstScore {
        self.get_mut(kind).observe(src, dst, tick)
    }

    pub fn get(&self, kind: EdgeKind) -> &MidasR {
        match kind {
            EdgeKind::IdentityApi => &self.identity_api,
            EdgeKind::ClientToken => &self.client_token,
            EdgeKind::IpIdentity => &self.ip_identity,
        }
    }

    fn get_mut(&mut self, kind: EdgeKind) -> &mut MidasR {
        match kind {
            EdgeKind::IdentityApi => &mut self.identity_api,
            EdgeKind::ClientToken => &mut self.client_token,
            EdgeKind::IpIdentity => &mut self.ip_identity,
        }
    }
}

/// The tick of an event: `floor(event_time_ms / tick_ms)`, 0 for times before the epoch.
/// Fails on a zero tick length.
pub fn tick_of(event_time_ms: i64, tick_ms: u64) -> Result<u64> {
    if tick_ms == 0 {
        return Err(Error::InvalidParams(
            "tick length must be at least 1 ms".into(),
        ));
    }
    Ok(u64::try_from(event_time_ms).map_or(0, |ms| ms / tick_ms))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BurstDetectorsState {
    identity_api: MidasR,
    client_token: MidasR,
    ip_identity: MidasR,
}

impl TryFrom<BurstDetectorsState> for BurstDetectors {
    type Error = Error;

    fn try_from(s: BurstDetectorsState) -> Result<Self> {
        let p = s.identity_api.params();
        let same_shape = |m: &MidasR| {
            let q = m.params();
            (q.rows(), q.width(), q.decay()) == (p.rows(), p.width(), p.decay())
        };
        if !(same_shape(&s.client_token) && same_shape(&s.ip_identity)) {
            return Err(Error::InvalidState(
                "burst detectors of one checkpoint have different parameters".into(),
            ));
        }
        Ok(Self {
            identity_api: s.identity_api,
            client_token: s.client_token,
            ip_identity: s.ip_identity,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::burst::MidasRParams;

    #[test]
    fn kinds_are_independent() {
        let params = MidasRParams::default().width(256).check().unwrap();
        let mut d = BurstDetectors::new(&params);
        for t in 0..20 {
            d.observe(EdgeKind::IpIdentity, 1, 2, t);
        }
        assert_eq!(d.get(EdgeKind::IpIdentity).current_tick(), Some(19));
        assert_eq!(d.get(EdgeKind::ClientToken).current_tick(), None);
        assert_ne!(
            d.get(EdgeKind::IpIdentity).params().seed(),
            d.get(EdgeKind::ClientToken).params().seed()
        );
        let back: BurstDetectors =
            serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn reasons_quote_the_numbers() {
        let s = BurstScore {
            score: 2209.0,
            component: BurstComponent::Source,
            rate: 48.0,
            expected: 1.0,
        };
        assert_eq!(
            s.reason(EdgeKind::IpIdentity),
            "IP -> identity burst: the IP made 48.0 edges per tick against 1.0 expected \
             (score 2209)"
        );
    }

    #[test]
    fn ticks_are_event_time_buckets() {
        assert_eq!(tick_of(12_345, 1_000).unwrap(), 12);
        assert_eq!(tick_of(-5, 1_000).unwrap(), 0);
        assert!(tick_of(1, 0).is_err());
    }
}
