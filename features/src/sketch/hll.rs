//! HyperLogLog distinct counters.
//!
//! - [`Hll`]: 2^8 one-byte registers (256 bytes, standard error about 6.5 %). Only heavy
//!   keys pay for one: a bucket keeps exact samples until it overflows (see `state.rs`).
//! - [`SmallHll`]: 32 inline registers (32 bytes, standard error about 18 %, and close to
//!   exact below about 80 through linear counting), for long-horizon counts kept per key.
//!
//! Inserting is commutative, so a sketch does not depend on arrival order.

use serde::{Deserialize, Serialize};

const P: u32 = 8;
const M: usize = 1 << P;
const SMALL_P: u32 = 5;
const SMALL_M: usize = 1 << SMALL_P;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hll {
    registers: Vec<u8>,
}

impl Default for Hll {
    fn default() -> Self {
        Self {
            registers: vec![0; M],
        }
    }
}

impl Hll {
    /// Adds a well-mixed 64-bit hash.
    pub fn insert_hash(&mut self, h: u64) {
        insert(&mut self.registers, P, h);
    }

    pub fn merge(&mut self, other: &Hll) {
        merge(&mut self.registers, &other.registers);
    }

    /// The cardinality estimate, with linear counting for small sets.
    pub fn estimate(&self) -> f64 {
        estimate(&self.registers)
    }

    pub fn heap_bytes(&self) -> usize {
        self.registers.capacity()
    }
}

/// A HyperLogLog of 32 inline one-byte registers: no allocation of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmallHll {
    registers: [u8; SMALL_M],
}

impl SmallHll {
    /// Adds a well-mixed 64-bit hash.
    pub fn insert_hash(&mut self, h: u64) {
        insert(&mut self.registers, SMALL_P, h);
    }

    pub fn merge(&mut self, other: &SmallHll) {
        merge(&mut self.registers, &other.registers);
    }

    pub fn is_empty(&self) -> bool {
        self.registers.iter().all(|r| *r == 0)
    }

    /// The cardinality estimate, with linear counting for small sets.
    pub fn estimate(&self) -> f64 {
        estimate(&self.registers)
    }
}

/// Adds hash `h` to `2^p` registers: the top `p` bits pick the register, which keeps the
/// largest rank (position of the first 1-bit) of the remaining bits.
fn insert(registers: &mut [u8], p: u32, h: u64) {
    let index = (h >> (64 - p)) as usize;
    let rest = h << p;
    // 1-based; all zero gives 64 - p + 1.
    let rank = (rest.leading_zeros() + 1).min(64 - p + 1) as u8;
    if let Some(r) = registers.get_mut(index) {
        *r = (*r).max(rank);
    }
}

fn merge(registers: &mut [u8], other: &[u8]) {
    for (a, b) in registers.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

fn estimate(registers: &[u8]) -> f64 {
    let m = registers.len() as f64;
    // The bias constant for m >= 128, and its tabled values below.
    let alpha = match registers.len() {
        16 => 0.673,
        32 => 0.697,
        64 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / m),
    };
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in registers {
        sum += 2f64.powi(-i32::from(r));
        if r == 0 {
            zeros += 1;
        }
    }
    let raw = alpha * m * m / sum;
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::spread32;

    #[test]
    fn estimates_within_a_few_standard_errors() {
        for n in [1u32, 10, 100, 1_000, 10_000, 100_000] {
            let mut h = Hll::default();
            for i in 0..n {
                h.insert_hash(spread32(i));
            }
            let e = h.estimate();
            let err = (e - f64::from(n)).abs() / f64::from(n);
            assert!(err < 0.2, "n={n} estimate={e}");
        }
    }

    #[test]
    fn merge_equals_inserting_everything() {
        let (mut a, mut b, mut all) = (Hll::default(), Hll::default(), Hll::default());
        for i in 0..5_000u32 {
            let h = spread32(i);
            if i % 3 == 0 {
                a.insert_hash(h)
            } else {
                b.insert_hash(h)
            }
            all.insert_hash(h);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn small_sketch_estimates_within_its_error() {
        for n in [1u32, 10, 50, 200, 1_000, 10_000] {
            let mut h = SmallHll::default();
            for i in 0..n {
                h.insert_hash(spread32(i));
            }
            let e = h.estimate();
            let err = (e - f64::from(n)).abs() / f64::from(n);
            // About three standard errors (18 % each), tighter where linear counting rules.
            let bound = if n <= 50 { 0.2 } else { 0.55 };
            assert!(err < bound, "n={n} estimate={e}");
        }
        assert!(SmallHll::default().is_empty());
        assert_eq!(SmallHll::default().estimate(), 0.0);
    }

    #[test]
    fn small_merge_equals_inserting_everything() {
        let (mut a, mut b, mut all) = (
            SmallHll::default(),
            SmallHll::default(),
            SmallHll::default(),
        );
        for i in 0..500u32 {
            let h = spread32(i);
            if i % 2 == 0 {
                a.insert_hash(h)
            } else {
                b.insert_hash(h)
            }
            all.insert_hash(h);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }
}
