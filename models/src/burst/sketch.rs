//! A count-min sketch whose cells hold two counts: the (decayed) current one and the total.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The murmur3 fmix64 finaliser: keys may be low-entropy (sequential ids), so they are
/// re-mixed before their bits pick cells. Stable across builds, so checkpoints stay valid.
#[inline]
pub(crate) fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// How counts fade between ticks: current counts by `current^g`, totals by `total^g` after
/// `g` ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decay {
    current: Powers,
    total: Powers,
}

impl Decay {
    pub fn new(current: f64, total: f64) -> Self {
        Self {
            current: Powers::new(current),
            total: Powers::new(total),
        }
    }
}

/// `base^g` for gaps `g`, cheap for the common cases: most touched cells are a few ticks
/// behind (a table up to 63), and beyond that a base of 0.5 has long faded to nothing.
#[derive(Debug, Clone, PartialEq)]
struct Powers {
    base: f64,
    table: [f64; 64],
    /// `base^64` is below 1e-12: a count that old is gone (it would have to exceed 1e12
    /// events to still weigh one).
    vanishes: bool,
}

impl Powers {
    fn new(base: f64) -> Self {
        let mut table = [1.0f64; 64];
        for g in 1..64 {
            table[g] = table[g - 1] * base;
        }
        Self {
            base,
            table,
            vanishes: table[63] * base < 1e-12,
        }
    }

    #[inline]
    fn of(&self, gap: u32) -> f64 {
        match self.table.get(gap as usize) {
            Some(&f) => f,
            None if self.vanishes => 0.0,
            None => self.base.powi(i32::try_from(gap).unwrap_or(i32::MAX)),
        }
    }
}

/// One counter pair and the tick it was last brought up to date. The decay between ticks
/// is applied lazily, when the cell is next touched, so a new tick costs nothing however
/// wide the sketch is; the result is the same as decaying every cell at every tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "(f32, u32, f64)", into = "(f32, u32, f64)")]
struct Cell {
    /// Decayed count of recent events (f32: counts within a few ticks are small).
    current: f32,
    /// Tick (relative to the detector's origin) `current` and `total` are decayed to.
    stamp: u32,
    /// All events (decayed only with a history horizon); f64 stays exact to 2^53.
    total: f64,
}

impl From<(f32, u32, f64)> for Cell {
    fn from((current, stamp, total): (f32, u32, f64)) -> Self {
        Self {
            current,
            stamp,
            total,
        }
    }
}

impl From<Cell> for (f32, u32, f64) {
    fn from(c: Cell) -> Self {
        (c.current, c.stamp, c.total)
    }
}

impl Cell {
    #[inline]
    fn catch_up(&mut self, now: u32, decay: &Decay) {
        if self.stamp != now {
            let gap = now.wrapping_sub(self.stamp);
            self.current = (f64::from(self.current) * decay.current.of(gap)) as f32;
            if decay.total.base != 1.0 {
                self.total *= decay.total.of(gap);
            }
            self.stamp = now;
        }
    }
}

/// `rows x width` cells. A key maps to one cell per row (double hashing: `h1 + r h2`, `h2`
/// odd so rows differ); its counts are the minimum over its cells, an overestimate only
/// when every cell is shared with another key.
///
/// Serialized sparsely (the cells ever touched, by index): a sketch sized for a busy
/// stream is mostly untouched in a quiet partition's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "SparseSketch", try_from = "SparseSketch")]
pub(crate) struct CountMinSketch {
    rows: u32,
    width: u32,
    seed: u64,
    cells: Vec<Cell>,
}

/// A [`CountMinSketch`] as stored: its shape and its touched cells in index order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SparseSketch {
    rows: u32,
    width: u32,
    seed: u64,
    touched: Vec<(u32, Cell)>,
}

const UNTOUCHED: Cell = Cell {
    current: 0.0,
    stamp: 0,
    total: 0.0,
};

impl From<CountMinSketch> for SparseSketch {
    fn from(s: CountMinSketch) -> Self {
        let touched = s
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != UNTOUCHED)
            // A sketch has at most `rows x width` cells, which its parameters keep in u32.
            .map(|(i, c)| (i as u32, *c))
            .collect();
        Self {
            rows: s.rows,
            width: s.width,
            seed: s.seed,
            touched,
        }
    }
}

impl TryFrom<SparseSketch> for CountMinSketch {
    type Error = Error;

    fn try_from(s: SparseSketch) -> Result<Self> {
        let len = (s.rows as usize)
            .checked_mul(s.width as usize)
            .filter(|&n| n <= MAX_CELLS)
            .ok_or_else(|| {
                Error::InvalidState(format!("burst sketch of {} x {} cells", s.rows, s.width))
            })?;
        let mut cells = vec![UNTOUCHED; len];
        let mut previous: Option<u32> = None;
        for (i, cell) in s.touched {
            let slot = cells.get_mut(i as usize).filter(|_| previous < Some(i));
            let Some(slot) = slot else {
                return Err(Error::InvalidState(format!(
                    "burst sketch cell {i} out of order or outside {len} cells"
                )));
            };
            *slot = cell;
            previous = Some(i);
        }
        Ok(Self {
            rows: s.rows,
            width: s.width,
            seed: s.seed,
            cells,
        })
    }
}

/// Restored sketches larger than this are refused before they are allocated (the
/// parameters' own limit is far below).
const MAX_CELLS: usize = 1 << 28;

/// The counts of one key after an event was added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Counts {
    pub current: f64,
    pub total: f64,
}

impl CountMinSketch {
    /// `width` must be a power of two (the parameters check it).
    pub fn new(rows: usize, width: usize, seed: u64) -> Self {
        let empty = Cell {
            current: 0.0,
            stamp: 0,
            total: 0.0,
        };
        Self {
            rows: rows as u32,
            width: width as u32,
            seed,
            cells: vec![empty; rows * width],
        }
    }

    /// Adds one event of `key` at relative tick `now` (never earlier than any stamp) and
    /// returns its current and total counts.
    #[inline]
    pub fn add(&mut self, key: u64, now: u32, decay: &Decay) -> Counts {
        let h = mix64(key ^ self.seed);
        let mask = self.width as usize - 1;
        let (h1, h2) = (h as usize, ((h >> 32) as usize) | 1);
        let mut current = f32::INFINITY;
        let mut total = f64::INFINITY;
        for (r, row) in self.cells.chunks_exact_mut(self.width as usize).enumerate() {
            let cell = &mut row[h1.wrapping_add(r.wrapping_mul(h2)) & mask];
            cell.catch_up(now, decay);
            cell.current += 1.0;
            cell.total += 1.0;
            current = current.min(cell.current);
            total = total.min(cell.total);
        }
        Counts {
            current: f64::from(current),
            total,
        }
    }

    /// Brings every cell up to relative tick `now`, then restamps them as tick 0: used when
    /// relative ticks would overflow a u32 (the origin moves to `now`).
    pub fn rebase(&mut self, now: u32, decay: &Decay) {
        for cell in &mut self.cells {
            cell.catch_up(now, decay);
            cell.stamp = 0;
        }
    }

    /// Bytes held by the cells.
    pub fn memory_bytes(&self) -> usize {
        self.cells.len() * std::mem::size_of::<Cell>()
    }

    /// Checks a restored sketch against the sizes it should have and the current tick.
    pub fn check(&self, rows: usize, width: usize, now: u32, name: &str) -> Result<()> {
        let ok = self.rows as usize == rows
            && self.width as usize == width
            && self.cells.len() == rows * width
            && self.cells.iter().all(|c| {
                c.current.is_finite()
                    && c.total.is_finite()
                    && c.current >= 0.0
                    && c.total >= 0.0
                    && c.stamp <= now
            });
        if ok {
            return Ok(());
        }
        Err(Error::InvalidState(format!(
            "burst sketch `{name}` is not {rows} x {width} non-negative counts up to tick {now}"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn counts_one_key_exactly_and_decays_lazily() {
        let half = Decay::new(0.5, 1.0);
        let mut s = CountMinSketch::new(2, 64, 1);
        for i in 1..=5 {
            let c = s.add(42, 0, &half);
            assert_eq!((c.current, c.total), (f64::from(i), f64::from(i)));
        }
        let c = s.add(42, 1, &half);
        assert_eq!((c.current, c.total), (3.5, 6.0));
        // Three ticks later: 3.5 / 8 + 1.
        let c = s.add(42, 4, &half);
        assert_eq!((c.current, c.total), (3.5 / 8.0 + 1.0, 7.0));
        let forget = Decay::new(0.0, 0.5);
        let c = s.add(42, 5, &forget);
        assert_eq!((c.current, c.total), (1.0, 4.5));
        // Far gaps use powi beyond the table.
        let slow = Decay::new(0.99, 1.0);
        let mut t = CountMinSketch::new(1, 16, 2);
        t.add(7, 0, &slow);
        let c = t.add(7, 100, &slow);
        assert!(
            (c.current - (0.99f64.powi(100) + 1.0)).abs() < 1e-6,
            "{c:?}"
        );
    }

    #[test]
    fn serializes_only_touched_cells_and_restores_them_exactly() {
        let d = Decay::new(0.5, 1.0);
        let mut s = CountMinSketch::new(2, 1 << 12, 9);
        for k in 0..20u64 {
            s.add(k, (k / 5) as u32, &d);
        }
        let json = serde_json::to_value(&s).unwrap();
        let touched = json["touched"].as_array().unwrap().len();
        assert!(
            (20..=40).contains(&touched),
            "{touched} cells for 20 keys x 2 rows"
        );
        let back: CountMinSketch = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, s);

        let mut swapped = json.clone();
        swapped["touched"].as_array_mut().unwrap().swap(0, 1);
        assert!(serde_json::from_value::<CountMinSketch>(swapped).is_err());
        let mut outside = json;
        let last = touched - 1;
        outside["touched"][last][0] = serde_json::json!(2 << 12);
        assert!(serde_json::from_value::<CountMinSketch>(outside).is_err());
    }

    #[test]
    fn lazy_decay_equals_decaying_every_tick() {
        let d = Decay::new(0.5, 0.9);
        let mut s = CountMinSketch::new(2, 1024, 5);
        let mut eager: HashMap<u64, (f64, f64)> = HashMap::new();
        for tick in 0..40u32 {
            for v in eager.values_mut() {
                v.0 *= 0.5;
                v.1 *= 0.9;
            }
            // Keys on different schedules, so cells lag by different gaps.
            for k in 0..4u32 {
                if (tick + k) % (k + 2) == 0 {
                    let e = eager.entry(u64::from(k)).or_default();
                    e.0 += 1.0;
                    e.1 += 1.0;
                    let c = s.add(u64::from(k), tick, &d);
                    assert!((c.current - e.0).abs() < 1e-5, "{c:?} vs {e:?}");
                    assert!((c.total - e.1).abs() < 1e-9, "{c:?} vs {e:?}");
                }
            }
        }
    }

    #[test]
    fn rebasing_keeps_the_counts() {
        let d = Decay::new(0.5, 0.9);
        let mut s = CountMinSketch::new(2, 64, 5);
        for tick in 0..10 {
            s.add(3, tick, &d);
        }
        let mut rebased = s.clone();
        rebased.rebase(25, &d);
        assert_eq!(s.add(3, 25, &d), rebased.add(3, 0, &d));
    }

    #[test]
    fn rows_use_different_cells() {
        let s = CountMinSketch::new(4, 1024, 9);
        let h = mix64(7 ^ s.seed);
        let (h1, h2) = (h as usize, ((h >> 32) as usize) | 1);
        let cells: Vec<usize> = (0..4).map(|r| (h1 + r * h2) & 1023).collect();
        let mut distinct = cells.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{cells:?}");
    }

    proptest! {
        /// A count-min sketch never underestimates, whatever collides.
        #[test]
        fn never_underestimates(keys in proptest::collection::vec(0u64..50, 1..400)) {
            let mut s = CountMinSketch::new(2, 16, 3);
            let mut truth: HashMap<u64, f64> = HashMap::new();
            for k in keys {
                let t = truth.entry(k).or_default();
                *t += 1.0;
                let c = s.add(k, 0, &Decay::new(0.5, 1.0));
                prop_assert!(c.total >= *t);
                prop_assert!(c.current >= *t);
            }
        }
    }
}
