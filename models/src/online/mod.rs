//! Half-Space Trees (Tan, Ting & Liu, 2011): an online anomaly detector for streams of
//! feature rows that follows drift.
//!
//! Each tree halves a random work space around the known feature ranges, level by level,
//! on a random feature each time; a perfect tree of height `h` has `2^h` leaves. Every node
//! counts how many rows of the stream passed through it in two windows of `window_size`
//! rows: the *reference* mass (the last complete window) and the *latest* mass (the window
//! being filled). A row is scored against the reference masses: rows that fall where the
//! last window put little mass are anomalous. When the latest window is full it becomes the
//! reference and a new one starts, so the detector forgets old normals after one window and
//! a moved normal scores low again once a window of it has been seen.
//!
//! Until the first window is complete there is no reference: scores are `None` (warming
//! up). The structure never depends on the data (only on the seed and the feature ranges),
//! so learning a row is O(trees x height) and the state has a fixed size.
//!
//! Use it beside a batch model, not instead of one: a window absorbs a burst as the new
//! normal (on ADBench http in stream order HST reaches AUC 0.14), so pair it with the
//! [`burst`](crate::burst) detector and a batch-trained model.
//!
//! ```
//! use ndarray::array;
//! use outrider_models::online::{FeatureRange, HalfSpaceTreesParams};
//!
//! let params = HalfSpaceTreesParams::default().window_size(4).n_trees(5).height(4).check()?;
//! let mut hst = params.with_ranges(&[FeatureRange::new(0.0, 10.0)?; 2])?;
//! let rows = array![[1.0, 2.0], [1.5, 2.5], [1.2, 2.1], [0.9, 1.8], [9.0, 9.0]];
//! let scores = hst.score_and_update(rows.view())?;
//! assert!(scores[..4].iter().all(Option::is_none)); // the first window warms up
//! assert!(scores[4].is_some());
//! # Ok::<(), outrider_models::Error>(())
//! ```

mod algorithm;
mod hyperparams;

pub use algorithm::HalfSpaceTrees;
pub use hyperparams::{FeatureRange, HalfSpaceTreesParams, HalfSpaceTreesValidParams};
