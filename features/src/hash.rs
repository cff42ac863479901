//! Stable hashing. Checkpoints store hashes, so the function must not change between builds
//! or Rust versions (std's `DefaultHasher` promises neither): FNV-1a, then a 64-bit finaliser
//! so that every output bit depends on every input bit (HyperLogLog reads the top bits).

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit hash of `bytes`, seeded so that the same value hashes differently per use.
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET ^ seed.wrapping_mul(FNV_PRIME);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// 32-bit hash of `bytes`; 0 is reserved for "absent" and never returned.
pub fn hash32(seed: u64, bytes: &[u8]) -> u32 {
    nonzero((hash64(seed, bytes) >> 32) as u32)
}

/// Re-mixes a 32-bit value into 64 well-spread bits (for sketches fed with stored hashes).
pub fn spread32(v: u32) -> u64 {
    mix64(u64::from(v).wrapping_add(0x9e37_79b9_7f4a_7c15))
}

pub fn mix64(mut h: u64) -> u64 {
    // The murmur3 fmix64 finaliser.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn nonzero(v: u32) -> u32 {
    if v == 0 {
        1
    } else {
        v
    }
}

/// Seeds, one per kind of value, so equal strings of different kinds do not collide.
pub mod seed {
    pub const ROUTE: u64 = 1;
    pub const OBJECT: u64 = 2;
    pub const OBJECT_TYPE: u64 = 3;
    pub const IP: u64 = 4;
    pub const NET: u64 = 5;
    pub const USER_AGENT: u64 = 6;
    pub const TOKEN: u64 = 7;
    pub const IDENTITY: u64 = 8;
    pub const PRIORITY: u64 = 9;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_builds() {
        // Fixed expectations: a change here invalidates every stored checkpoint.
        assert_eq!(hash64(0, b""), mix64(FNV_OFFSET));
        assert_eq!(hash64(1, b"/accounts/{id}"), hash64(1, b"/accounts/{id}"));
        assert_ne!(hash64(1, b"a"), hash64(2, b"a"));
        assert_ne!(hash32(3, b"x"), 0);
    }

    #[test]
    fn top_bits_are_spread() {
        // Sequential inputs must fill all 16 top-nibble values (HLL register choice).
        let mut seen = [false; 16];
        for i in 0..256u32 {
            seen[(hash64(0, &i.to_le_bytes()) >> 60) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
