//! Isolation forest (Liu, Ting & Zhou, 2008): anomalies are few and different, so random
//! axis-parallel splits isolate them in fewer steps than normal points.
//!
//! [`IsolationForestParams`] is checked into [`IsolationForestValidParams`], whose `fit`
//! returns an [`IsolationForest`] with all trees flattened into one node array.

mod algorithm;
mod hyperparams;

pub(crate) use algorithm::check_finite;
pub use algorithm::IsolationForest;
pub use hyperparams::{IsolationForestParams, IsolationForestValidParams};
