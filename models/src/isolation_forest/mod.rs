//! Isolation forest (Liu, Ting & Zhou, 2008): anomalies are few and different, so random
//! axis-parallel splits isolate them in fewer steps than normal points. The extended
//! variant (Hariri, Carrasco Kind & Brunner, 2021) splits on random hyperplanes instead.
//!
//! [`IsolationForestParams`] is checked into [`IsolationForestValidParams`], whose `fit`
//! returns an [`IsolationForest`] with all trees flattened into one node array; batch
//! scoring pads them into perfect trees walked several rows at a time.

mod algorithm;
pub(crate) mod compiled;
mod grow;
mod hyperparams;

pub use algorithm::IsolationForest;
pub use compiled::PARALLEL_MIN_ROWS;
pub(crate) use grow::check_finite;
pub use hyperparams::{Algorithm, IsolationForestParams, IsolationForestValidParams};
