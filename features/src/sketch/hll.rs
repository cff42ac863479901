//! HyperLogLog distinct counters.
//!
//! - [`Hll`]: 2^8 one-byte registers (256 bytes, standard error about 6.5 %). Only heavy
//!   keys pay for one: a bucket keeps exact samples until it overflows (see `state.rs`).
//! - [`SmallHll`]: 32 inline registers (32 bytes, standard error about 18 %, and close to
//!   exact below about 80 through linear counting), for long-horizon counts kept per key.
//!
//! Inserting is commutative, so a sketch does not depend on arrival order.

use serde::{Deserialize, Serialize};

const M: usize = 1 << 8;
const SMALL_M: usize = 1 << 5;

/// A HyperLogLog over registers `R` (a power-of-two count of bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registers<R> {
    registers: R,
}

/// 256 registers on the heap.
pub type Hll = Registers<Vec<u8>>;
/// 32 inline registers: no allocation of its own.
pub type SmallHll = Registers<[u8; SMALL_M]>;

impl Default for Hll {
    fn default() -> Self {
        Self {
            registers: vec![0; M],
        }
    }
}

impl Default for SmallHll {
    fn default() -> Self {
        Self {
            registers: [0; SMALL_M],
        }
    }
}

impl<R: AsRef<[u8]> + AsMut<[u8]>> Registers<R> {
    /// Adds a well-mixed 64-bit hash.
    pub fn insert_hash(&mut self, h: u64) {
        let registers = self.registers.as_mut();
        let p = registers.len().trailing_zeros();
        insert(registers, p, h);
    }

    pub fn merge(&mut self, other: &Self) {
        merge(self.registers.as_mut(), other.registers.as_ref());
    }

    pub fn is_empty(&self) -> bool {
        self.registers.as_ref().iter().all(|r| *r == 0)
    }

    /// The cardinality estimate, with linear counting for small sets.
    pub fn estimate(&self) -> f64 {
        estimate(self.registers.as_ref())
    }
}

impl Hll {
    pub fn heap_bytes(&self) -> usize {
        self.registers.capacity()
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

/// 2^-r, exactly: the float with that exponent and an empty mantissa (ranks stay far
/// below 1023). `powi` costs more than the rest of an estimate together, and rows estimate
/// a sketch each.
fn inverse_power_of_two(r: u8) -> f64 {
    f64::from_bits((1023 - u64::from(r)) << 52)
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
        sum += inverse_power_of_two(r);
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
    fn inverse_powers_of_two_are_exact() {
        for r in 0..=64u8 {
            assert_eq!(inverse_power_of_two(r), 2f64.powi(-i32::from(r)), "r={r}");
        }
    }

    /// Splits `n` hashes between two sketches: merged, they equal one that saw them all.
    fn check_merge_equals_inserting_everything<R>(n: u32)
    where
        R: AsRef<[u8]> + AsMut<[u8]>,
        Registers<R>: Default + PartialEq + std::fmt::Debug,
    {
        let mut a = Registers::<R>::default();
        let mut b = Registers::<R>::default();
        let mut all = Registers::<R>::default();
        for i in 0..n {
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
    fn merge_equals_inserting_everything() {
        check_merge_equals_inserting_everything::<Vec<u8>>(5_000);
        check_merge_equals_inserting_everything::<[u8; SMALL_M]>(500);
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
}
