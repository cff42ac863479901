//! Small sketches sized for per-key state: a HyperLogLog for distinct counts of heavy keys
//! and a log-binned histogram for the quantiles behind peer baselines.

mod hll;
mod loghist;

pub use hll::{Hll, Registers, SmallHll};
pub use loghist::LogHistogram;
