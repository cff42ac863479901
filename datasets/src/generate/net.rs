//! The networks traffic comes from: address blocks with an autonomous system, a country and
//! a kind (home broadband, mobile carrier, office, cloud, hosting, Tor ...).
//!
//! Gateway logs carry only the address; the generator knows the rest, and exports it
//! (the raw-event Parquet table has `asn` and `country` columns; [`networks`] lists the
//! table) so that enrichment can be tested. The AS numbers are from the private-use range
//! (64512-65534) and the organisation names are invented: no real operator is implied.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::Rng;
use serde::Serialize;

use super::rng::pick;

/// What kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetKind {
    Broadband,
    Mobile,
    Office,
    /// Hotel, café and airport Wi-Fi: travellers.
    PublicWifi,
    Cloud,
    Hosting,
    Tor,
}

/// The block a network's addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefix {
    /// An IPv4 /16.
    V4([u8; 2]),
    /// An IPv6 /32.
    V6([u16; 2]),
}

impl Prefix {
    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (Prefix::V4(p), IpAddr::V4(v4)) => v4.octets()[..2] == p,
            (Prefix::V6(p), IpAddr::V6(v6)) => v6.segments()[..2] == p,
            _ => false,
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prefix::V4([a, b]) => write!(f, "{a}.{b}.0.0/16"),
            Prefix::V6([a, b]) => write!(f, "{a:x}:{b:x}::/32"),
        }
    }
}

/// One network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Network {
    pub prefix: Prefix,
    pub asn: u32,
    pub org: &'static str,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    pub kind: NetKind,
}

const fn v4(
    a: u8,
    b: u8,
    asn: u32,
    org: &'static str,
    country: &'static str,
    kind: NetKind,
) -> Network {
    Network {
        prefix: Prefix::V4([a, b]),
        asn,
        org,
        country,
        kind,
    }
}

use NetKind::*;

/// Home broadband (the first six are the compressed model's, kept for continuity).
pub(crate) const BROADBAND: [Network; 9] = [
    v4(81, 2, 64601, "Northwire Broadband", "GB", Broadband),
    v4(81, 130, 64602, "Albion Fibre", "GB", Broadband),
    v4(86, 150, 64603, "Thames Cable", "GB", Broadband),
    v4(92, 233, 64611, "Hexagone Telecom", "FR", Broadband),
    v4(94, 174, 64621, "Rheinnetz", "DE", Broadband),
    v4(82, 132, 64631, "Polder Glasvezel", "NL", Broadband),
    v4(77, 109, 64641, "Meseta Fibra", "ES", Broadband),
    v4(93, 48, 64651, "Appennino Rete", "IT", Broadband),
    v4(178, 82, 64661, "Wisla Net", "PL", Broadband),
];
/// Mobile carriers: addresses change between sessions and sit behind carrier-grade NAT.
pub(crate) const CARRIERS: [Network; 6] = [
    v4(92, 40, 64701, "Lionmobile", "GB", Mobile),
    v4(176, 24, 64702, "Funkturm Mobil", "DE", Mobile),
    v4(109, 144, 64703, "Azur Mobile", "FR", Mobile),
    v4(31, 94, 64704, "Tulp Mobiel", "NL", Mobile),
    v4(88, 26, 64705, "Sierra Movil", "ES", Mobile),
    Network {
        prefix: Prefix::V6([0x2a02, 0x8108]),
        asn: 64702,
        org: "Funkturm Mobil",
        country: "DE",
        kind: Mobile,
    },
];
/// Company offices: many employees behind one NAT address.
pub(crate) const OFFICES: [Network; 4] = [
    v4(62, 252, 64801, "Cityline Business", "GB", Office),
    v4(195, 99, 64802, "Kontor Carrier", "DE", Office),
    v4(80, 229, 64803, "Bureau Transit", "FR", Office),
    v4(145, 53, 64804, "Grachten Zakelijk", "NL", Office),
];
/// Where travellers connect from.
pub(crate) const TRAVEL: [Network; 5] = [
    v4(151, 20, 64901, "Lagoon Hotels Wi-Fi", "IT", PublicWifi),
    v4(73, 90, 64902, "Prairie Cable", "US", Broadband),
    v4(121, 44, 64903, "Sakura Mobile", "JP", Mobile),
    v4(188, 64, 64904, "Gate Airport Wi-Fi", "PT", PublicWifi),
    v4(41, 66, 64905, "Cape Roaming", "ZA", Mobile),
];
/// Cloud networks of service clients, partners and batch jobs.
pub(crate) const CLOUDS: [Network; 3] = [
    v4(52, 17, 65001, "Nimbus Cloud us-east", "US", Cloud),
    v4(34, 240, 65002, "Stratus Cloud eu-west", "IE", Cloud),
    v4(20, 61, 65003, "Cirrus Cloud eu-central", "DE", Cloud),
];
/// Networks loud attackers come from; disjoint from every benign network above.
pub(crate) const ATTACKERS: [Network; 4] = [
    v4(185, 220, 65101, "Onion Relay Association", "DE", Tor),
    v4(45, 134, 65102, "Bulletproof VPS", "NL", Hosting),
    v4(193, 32, 65103, "Cheap Servers", "SE", Hosting),
    v4(194, 165, 65104, "Colo Anywhere", "RO", Hosting),
];
/// Residential networks elsewhere that proxy services rent out (with the benign
/// broadband and mobile networks, where subtle attackers come from).
pub(crate) const PROXY_EXTRA: [Network; 3] = [
    v4(177, 36, 65201, "Planalto Banda Larga", "BR", Broadband),
    v4(103, 77, 65202, "Deccan Broadband", "IN", Broadband),
    v4(113, 160, 65203, "Mekong Home", "VN", Broadband),
];

/// Every network the generator uses.
pub fn networks() -> impl Iterator<Item = &'static Network> {
    BROADBAND
        .iter()
        .chain(&CARRIERS)
        .chain(&OFFICES)
        .chain(&TRAVEL)
        .chain(&CLOUDS)
        .chain(&ATTACKERS)
        .chain(&PROXY_EXTRA)
}

impl Network {
    /// Where a GeoIP database would place the network: its country's centre (no finer,
    /// as for most mobile and many broadband ranges), in degrees.
    pub fn location(&self) -> (f32, f32) {
        centroid(self.country)
    }

    /// The event-model view of the network: what an edge GeoIP lookup adds to a log.
    pub fn origin(&self) -> outrider_ingest::ClientOrigin {
        let (lat, lon) = self.location();
        outrider_ingest::ClientOrigin {
            asn: Some(self.asn),
            country: Some(self.country.to_owned()),
            latitude: Some(lat),
            longitude: Some(lon),
        }
    }
}

/// Approximate centres of the countries the networks are in.
fn centroid(country: &str) -> (f32, f32) {
    match country {
        "GB" => (54.0, -2.0),
        "FR" => (46.6, 2.2),
        "DE" => (51.2, 10.4),
        "NL" => (52.1, 5.3),
        "ES" => (40.4, -3.7),
        "IT" => (42.8, 12.5),
        "PL" => (52.0, 19.4),
        "US" => (39.8, -98.6),
        "JP" => (36.2, 138.3),
        "PT" => (39.4, -8.2),
        "ZA" => (-30.6, 22.9),
        "IE" => (53.4, -8.2),
        "SE" => (60.1, 18.6),
        "RO" => (45.9, 25.0),
        "BR" => (-14.2, -51.9),
        "IN" => (20.6, 79.0),
        "VN" => (14.1, 108.3),
        _ => (0.0, 0.0),
    }
}

/// The network of a generated address (`None` for addresses the generator never uses).
/// IPv4 goes through a table by /16, built once: a lookup per generated event.
pub fn network_of(ip: IpAddr) -> Option<&'static Network> {
    static BY_SLASH16: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let table = BY_SLASH16.get_or_init(|| {
                let mut t = vec![0u8; 1 << 16];
                for (i, n) in networks().enumerate() {
                    if let Prefix::V4([a, b]) = n.prefix {
                        t[usize::from(a) << 8 | usize::from(b)] = u8::try_from(i + 1).unwrap_or(0);
                    }
                }
                t
            });
            let [a, b, _, _] = v4.octets();
            let i = table[usize::from(a) << 8 | usize::from(b)];
            networks().nth(usize::from(i).checked_sub(1)?)
        }
        v6 => networks().find(|n| n.prefix.contains(v6)),
    }
}

/// A random host address in `net`.
pub(crate) fn addr_in(rng: &mut impl Rng, net: &Network) -> IpAddr {
    match net.prefix {
        Prefix::V4([a, b]) => IpAddr::V4(Ipv4Addr::new(
            a,
            b,
            rng.random_range(0..=255),
            rng.random_range(1..=254),
        )),
        Prefix::V6([a, b]) => IpAddr::V6(Ipv6Addr::new(
            a,
            b,
            rng.random(),
            rng.random(),
            0,
            0,
            0,
            rng.random_range(1..=0xffff),
        )),
    }
}

/// One of a carrier's few NAT addresses: busy mobile networks put thousands of phones
/// behind each public address, so unrelated users share them.
pub(crate) fn cgnat_addr(rng: &mut impl Rng, net: &Network, pool: u8) -> IpAddr {
    match net.prefix {
        Prefix::V4([a, b]) => IpAddr::V4(Ipv4Addr::new(
            a,
            b,
            rng.random_range(0..pool.max(1)),
            rng.random_range(1..=254),
        )),
        Prefix::V6(_) => addr_in(rng, net),
    }
}

/// A random network of `nets`, then an address in it.
pub(crate) fn addr_among(rng: &mut impl Rng, nets: &[Network]) -> IpAddr {
    let net = pick(rng, nets);
    addr_in(rng, net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::rng::stream;

    #[test]
    fn every_address_maps_back_to_its_network() {
        let mut rng = stream(5, 99, 0);
        for net in networks() {
            for _ in 0..20 {
                let ip = addr_in(&mut rng, net);
                assert_eq!(network_of(ip).map(|n| n.prefix), Some(net.prefix), "{ip}");
            }
        }
        assert!(network_of("10.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn attacker_networks_are_disjoint_from_benign_ones() {
        let benign: Vec<Prefix> = BROADBAND
            .iter()
            .chain(&CARRIERS)
            .chain(&OFFICES)
            .chain(&TRAVEL)
            .chain(&CLOUDS)
            .map(|n| n.prefix)
            .collect();
        for a in &ATTACKERS {
            assert!(!benign.contains(&a.prefix), "{}", a.prefix);
        }
        let all: Vec<Prefix> = networks().map(|n| n.prefix).collect();
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert!(networks().all(|n| (64512..=65534).contains(&n.asn)));
        assert!(
            networks().all(|n| n.location() != (0.0, 0.0)),
            "every country has a centre"
        );
    }

    #[test]
    fn cgnat_pools_are_small() {
        let mut rng = stream(6, 99, 0);
        let net = &CARRIERS[0];
        let addrs: std::collections::BTreeSet<IpAddr> =
            (0..5_000).map(|_| cgnat_addr(&mut rng, net, 2)).collect();
        assert!(addrs.len() <= 2 * 254, "{}", addrs.len());
        assert_eq!(Prefix::V4([1, 2]).to_string(), "1.2.0.0/16");
    }
}
