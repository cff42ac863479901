//! Randomness: independent ChaCha8 streams per part of the dataset, and the samplers the
//! generator draws from. Nothing here reads a clock or global state, so a configuration
//! always gives the same dataset.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream domains: one per kind of actor, so adding a user never changes an attack.
pub(crate) const STREAM_PROFILES: u64 = 1;
pub(crate) const STREAM_PLAN: u64 = 2;
pub(crate) const STREAM_USER: u64 = 3;
pub(crate) const STREAM_SERVICE: u64 = 4;
pub(crate) const STREAM_ATTACK: u64 = 5;
pub(crate) const STREAM_CLIENTS: u64 = 6;
pub(crate) const STREAM_PARTNER: u64 = 8;
pub(crate) const STREAM_BATCH: u64 = 9;

/// An independent random stream for one part of the dataset.
pub(crate) fn stream(seed: u64, domain: u64, index: u64) -> ChaCha8Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&domain.to_le_bytes());
    s[16..24].copy_from_slice(&index.to_le_bytes());
    s[24..].copy_from_slice(b"outrider");
    ChaCha8Rng::from_seed(s)
}

/// A standard normal sample (Box-Muller).
pub(crate) fn normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    if sigma <= 0.0 {
        return median;
    }
    median * (sigma * normal(rng)).exp()
}

/// An exponential sample with the given mean.
pub(crate) fn exponential(rng: &mut impl Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Milliseconds from a non-negative float, saturating.
pub(crate) fn ms(x: f64) -> i64 {
    if x.is_finite() && x > 0.0 {
        x.min(i64::MAX as f64 / 4.0) as i64
    } else {
        0
    }
}

/// A uniformly chosen element of a non-empty constant table.
pub(crate) fn pick<'a, T>(rng: &mut impl Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// A Zipf-like rank in `0..n` (popular items first): a few products or documents get most
/// of the views.
pub(crate) fn zipf_rank(rng: &mut impl Rng, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    // Inverse of a continuous 1/x density over [1, n + 1): cheap and close enough.
    let u: f64 = rng.random();
    let r = ((n as f64 + 1.0).powf(u) - 1.0) as u64;
    r.min(n - 1)
}

/// 32 lowercase hex digits (token ids).
pub(crate) fn hex_id(rng: &mut impl Rng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

pub(crate) fn uuid_v4(rng: &mut impl Rng) -> String {
    uuid_from(rng.random())
}

/// A version-4 UUID from 128 random bits.
pub(crate) fn uuid_from(x: u128) -> String {
    let a = (x >> 96) as u32;
    let b = (x >> 80) as u16;
    let c = ((x >> 64) as u16 & 0x0fff) | 0x4000;
    let d = ((x >> 48) as u16 & 0x3fff) | 0x8000;
    let e = (x as u64) & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
}

/// A stable 64-bit mix (splitmix64) for ids derived from other ids, so per-object data
/// (a transaction list, a workspace's documents) need not be stored.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A linear interpolation between `loud` (intensity 1) and `quiet` (intensity 0).
pub(crate) fn lerp(quiet: f64, loud: f64, intensity: f64) -> f64 {
    quiet + (loud - quiet) * intensity.clamp(0.0, 1.0)
}

/// The same on a log scale, for rates and counts spanning orders of magnitude.
pub(crate) fn lerp_log(quiet: f64, loud: f64, intensity: f64) -> f64 {
    let (q, l) = (quiet.max(1e-9).ln(), loud.max(1e-9).ln());
    (q + (l - q) * intensity.clamp(0.0, 1.0)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_are_sane() {
        let mut rng = stream(1, 99, 0);
        let mut xs: Vec<f64> = (0..20_000)
            .map(|_| lognormal(&mut rng, 100.0, 0.5))
            .collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[xs.len() / 2];
        assert!((90.0..110.0).contains(&median), "{median}");
        let mean: f64 = (0..20_000)
            .map(|_| exponential(&mut rng, 10.0))
            .sum::<f64>()
            / 20_000.0;
        assert!((9.5..10.5).contains(&mean), "{mean}");
        let u = uuid_v4(&mut rng);
        assert!(outrider_ingest::route::is_object_id(&u), "{u}");
        assert_eq!(hex_id(&mut rng).len(), 32);
    }

    #[test]
    fn zipf_favours_the_first_ranks() {
        let mut rng = stream(2, 99, 0);
        let mut top = 0usize;
        for _ in 0..10_000 {
            let r = zipf_rank(&mut rng, 1000);
            assert!(r < 1000);
            if r < 10 {
                top += 1;
            }
        }
        // The top 1% of a 1/x law over 1000 items gets about a third of the draws.
        assert!((2_500..4_500).contains(&top), "{top}");
    }

    #[test]
    fn intensity_interpolates_between_quiet_and_loud() {
        assert_eq!(lerp(2.0, 10.0, 0.0), 2.0);
        assert_eq!(lerp(2.0, 10.0, 1.0), 10.0);
        assert_eq!(lerp(2.0, 10.0, 7.0), 10.0);
        assert!((lerp_log(1.0, 100.0, 0.5) - 10.0).abs() < 1e-9);
        assert_ne!(mix(1, 2), mix(2, 1));
    }
}
