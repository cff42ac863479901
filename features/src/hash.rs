//! Stable hashing. Checkpoints store hashes, so the function must not change between builds
//! or Rust versions (std's `DefaultHasher` promises neither): eight bytes a step through a
//! multiply-rotate, then the murmur3 64-bit finaliser so that every output bit depends on
//! every input bit (HyperLogLog reads the top bits). Not for secrets: keyed lookups that
//! an attacker could flood use randomly seeded maps instead.

const SEED_MIX: u64 = 0x9e37_79b9_7f4a_7c15;
const STEP: u64 = 0xbf58_476d_1ce4_e5b9;

/// 64-bit hash of `bytes`, seeded so that the same value hashes differently per use.
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    Hasher::new(seed).bytes(bytes).finish64()
}

/// A hash built from words and byte strings; the same inputs give the same hash in every
/// build.
#[derive(Debug, Clone, Copy)]
pub struct Hasher(u64);

impl Hasher {
    pub fn new(seed: u64) -> Self {
        Hasher(seed.wrapping_mul(SEED_MIX) ^ STEP)
    }

    pub fn word(self, w: u64) -> Self {
        Hasher((self.0 ^ w).wrapping_mul(STEP).rotate_left(29))
    }

    /// Eight bytes a step; the tail and the length go into one last word, so that strings
    /// that differ only by trailing zero bytes still differ.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self = self.word(u64::from_le_bytes(w));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(tail)).word(bytes.len() as u64)
    }

    pub fn finish64(self) -> u64 {
        mix64(self.0)
    }

    /// As [`hash32`]: never 0.
    pub fn finish32(self) -> u32 {
        nonzero((self.finish64() >> 32) as u32)
    }
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
        assert_eq!(hash64(0, b""), 0x166d_037b_f415_c700);
        assert_eq!(hash64(1, b"/accounts/{id}"), 0x7ef3_86f3_23df_91b0);
        assert_ne!(hash64(1, b"a"), hash64(2, b"a"));
        assert_ne!(hash64(1, b"a"), hash64(1, b"a\0"));
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
