//! Burst detection on edge streams in the style of MIDAS-R (Bhatia et al., "MIDAS:
//! Microcluster-Based Detector of Anomalies in Edge Streams", AAAI 2020).
//!
//! Windowed detectors (the batch model's feature windows, [`online`](crate::online)) learn
//! a burst as normal while it happens; credential stuffing and token replay arrive as
//! bursts. This detector sees every event as an edge `(source hash, destination hash,
//! tick)` and asks, per edge, per source and per destination: is the recent rate far above
//! the long-run rate? Memory is fixed (count-min sketches) and each edge costs a few dozen
//! nanoseconds, so it runs on the raw event stream before any window closes.
//!
//! Three relations ([`EdgeKind`]) cover the attacks that come as bursts:
//! - IP -> identity: one IP reaching many identities (stuffing) or many IPs one identity;
//! - client -> token: a token used by a client it was not issued to, at a high rate;
//! - identity -> API: an identity hammering one route, or a route flooded by many.
//!
//! Feed it: for each event, `observe(kind, src, dst, tick_of(event_ms, tick_ms)?)` with
//! the keys' stable 64-bit hashes; checkpoint it by serializing [`BurstDetectors`]. Scores
//! are unbounded chi-squared values: map them to a risk with
//! [`ScoreCalibration`](crate::calibration::ScoreCalibration) fitted on benign traffic.
//!
//! ```
//! use outrider_models::burst::{BurstDetectors, EdgeKind, MidasRParams};
//!
//! let mut bursts = BurstDetectors::new(&MidasRParams::default().check()?);
//! for tick in 0..100 {
//!     bursts.observe(EdgeKind::IpIdentity, 7, 1, tick); // one user, one IP, steadily
//! }
//! let steady = bursts.observe(EdgeKind::IpIdentity, 7, 1, 100);
//! let mut stuffing = steady;
//! for user in 1_000..1_040 {
//!     stuffing = bursts.observe(EdgeKind::IpIdentity, 666, user, 100);
//! }
//! assert!(steady.score < 1.0 && stuffing.score > 100.0);
//! # Ok::<(), outrider_models::Error>(())
//! ```

mod edges;
mod midas;
mod params;
mod sketch;

pub use edges::{tick_of, BurstDetectors, EdgeKind};
pub use midas::{BurstComponent, BurstScore, MidasR};
pub use params::{MidasRParams, MidasRValidParams};
