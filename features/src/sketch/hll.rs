//! HyperLogLog with 2^8 one-byte registers (256 bytes, standard error about 6.5 %).
//!
//! Only heavy keys pay for one: a bucket keeps exact samples until it overflows (see
//! `state.rs`). Inserting is commutative, so a sketch does not depend on arrival order.

use serde::{Deserialize, Serialize};

const P: u32 = 8;
const M: usize = 1 << P;

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
        let index = (h >> (64 - P)) as usize;
        let rest = h << P;
        // Position of the first 1-bit in the remaining 56 bits, 1-based; all zero gives 57.
        let rank = (rest.leading_zeros() + 1).min(64 - P + 1) as u8;
        if let Some(r) = self.registers.get_mut(index) {
            *r = (*r).max(rank);
        }
    }

    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    /// The cardinality estimate, with linear counting for small sets.
    pub fn estimate(&self) -> f64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in &self.registers {
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

    pub fn heap_bytes(&self) -> usize {
        self.registers.capacity()
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
}
