//! What happens to raw feature rows before the forest: the element-wise
//! [`Transform`] (log1p by default), then an optional per-feature scaling fitted on the
//! training rows. [`Preprocessor`] holds both and is stored in the model file.
//!
//! Axis-parallel trees do not need it: a split draws its threshold uniformly in the node's
//! range, and an affine map per feature moves range and threshold together (up to
//! rounding). Extended forests do: a hyperplane mixes features, and without scaling the
//! widest feature decides every split. Standard scaling is linfa-preprocessing's
//! `LinearScaler`; robust scaling (median and interquartile range, which a few extreme
//! rows cannot stretch) is computed here, linfa having none.

use linfa::traits::{Fit, Transformer as _};
use linfa::DatasetBase;
use linfa_preprocessing::linear_scaling::LinearScaler;
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model_file::Transform;
use crate::stats;

/// The fitted preprocessing of a model: transform, then scaler.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Preprocessor {
    pub transform: Transform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaler: Option<Scaler>,
}

impl Preprocessor {
    /// Fits the scaling on the transformed training rows `raw` (finite, non-empty).
    pub fn fit(transform: Transform, scaling: Scaling, raw: ArrayView2<f32>) -> Result<Self> {
        let transformed = raw.mapv(|v| transform.apply(v));
        Ok(Self {
            transform,
            scaler: Scaler::fit(scaling, transformed.view())?,
        })
    }

    /// Preprocessed copy of raw rows.
    pub fn apply(&self, raw: ArrayView2<f32>) -> Array2<f32> {
        let transform = self.transform;
        let x = raw.mapv(|v| transform.apply(v));
        match &self.scaler {
            Some(s) => s.apply(x),
            None => x,
        }
    }

    /// Preprocessed copy of one raw row.
    pub fn apply_row(&self, raw: &[f32]) -> Vec<f32> {
        let mut row: Vec<f32> = raw.iter().map(|&v| self.transform.apply(v)).collect();
        if let Some(s) = &self.scaler {
            s.apply_row(&mut row);
        }
        row
    }
}

/// Which scaling to fit on the training rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// No scaling (the default).
    #[default]
    None,
    /// `(x - mean) / std` (linfa-preprocessing); a constant feature is only centred.
    Standard,
    /// `(x - median) / IQR`; a feature whose quartiles coincide is only centred.
    Robust,
}

/// A fitted scaling: `x' = (x - offsets[j]) * scales[j]` for feature `j`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaler {
    pub method: Scaling,
    pub offsets: Vec<f32>,
    pub scales: Vec<f32>,
}

impl Scaler {
    /// Fits `method` on the (already transformed) training rows; `None` for
    /// [`Scaling::None`]. `x` must be finite and non-empty.
    pub fn fit(method: Scaling, x: ArrayView2<f32>) -> Result<Option<Self>> {
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(Error::EmptyDataset);
        }
        let (offsets, scales) = match method {
            Scaling::None => return Ok(None),
            Scaling::Standard => standard(x)?,
            Scaling::Robust => robust(x),
        };
        let scaler = Self {
            method,
            offsets,
            scales,
        };
        scaler.check(x.ncols()).map_err(Error::InvalidParams)?;
        Ok(Some(scaler))
    }

    /// Scales rows in place.
    pub fn apply(&self, mut x: Array2<f32>) -> Array2<f32> {
        for mut row in x.axis_iter_mut(Axis(0)) {
            for ((v, &o), &s) in row.iter_mut().zip(&self.offsets).zip(&self.scales) {
                *v = (*v - o) * s;
            }
        }
        x
    }

    /// Scales one row in place.
    pub fn apply_row(&self, row: &mut [f32]) {
        for ((v, &o), &s) in row.iter_mut().zip(&self.offsets).zip(&self.scales) {
            *v = (*v - o) * s;
        }
    }

    /// Checks a loaded or fitted scaler against the feature count.
    pub(crate) fn check(&self, n_features: usize) -> Result<(), String> {
        if self.offsets.len() != n_features || self.scales.len() != n_features {
            return Err(format!(
                "scaler has {} offsets and {} scales for {n_features} features",
                self.offsets.len(),
                self.scales.len()
            ));
        }
        if self.method == Scaling::None {
            return Err("a stored scaler cannot have method \"none\"".into());
        }
        let finite = self.offsets.iter().all(|v| v.is_finite());
        let positive = self.scales.iter().all(|s| s.is_finite() && *s > 0.0);
        if !finite || !positive {
            return Err("scaler offsets must be finite and scales finite and positive".into());
        }
        Ok(())
    }
}

/// Mean and inverse standard deviation per feature, by linfa-preprocessing, in f64.
fn standard(x: ArrayView2<f32>) -> Result<(Vec<f32>, Vec<f32>)> {
    let records = x.mapv(f64::from);
    let dataset = DatasetBase::from(records);
    let scaler: LinearScaler<f64> = LinearScaler::standard()
        .fit(&dataset)
        .map_err(|e| Error::InvalidParams(format!("standard scaling: {e}")))?;
    // Sanity-check linfa's convention (x - offset) * scale on the first row.
    debug_assert!({
        let probe = scaler.transform(x.row(0).insert_axis(Axis(0)).mapv(f64::from));
        probe.iter().all(|v| v.is_finite())
    });
    let offsets = scaler.offsets().iter().map(|&m| m as f32).collect();
    let scales = scaler
        .scales()
        .iter()
        .map(|&s| {
            let s = s as f32;
            if s.is_finite() && s > 0.0 {
                s
            } else {
                1.0
            }
        })
        .collect();
    Ok((offsets, scales))
}

/// Median and inverse interquartile range per feature.
fn robust(x: ArrayView2<f32>) -> (Vec<f32>, Vec<f32>) {
    x.columns()
        .into_iter()
        .map(|column| {
            let sorted = stats::sorted(column.iter().copied());
            let median = stats::quantile(&sorted, 0.5);
            let iqr = stats::quantile(&sorted, 0.75) - stats::quantile(&sorted, 0.25);
            let scale = if iqr.is_finite() && iqr > 0.0 {
                1.0 / iqr
            } else {
                1.0
            };
            (median, scale)
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ndarray::array;

    #[test]
    fn standard_scaling_centres_and_normalises() {
        let x = array![[1.0_f32, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]];
        let s = Scaler::fit(Scaling::Standard, x.view()).unwrap().unwrap();
        assert_eq!(s.method, Scaling::Standard);
        assert_eq!(s.offsets, vec![3.0, 5.0, 5.0]);
        // Population std of 1, 3, 5 is sqrt(8/3); a constant column keeps scale 1.
        assert!(
            (s.scales[0] - (3.0_f32 / 8.0).sqrt()).abs() < 1e-6,
            "{:?}",
            s.scales
        );
        assert_eq!(s.scales[1], 1.0);
        let y = s.apply(x.clone());
        for column in y.columns() {
            assert!(column.sum().abs() < 1e-5);
        }
        let var0 = y.column(0).iter().map(|v| v * v).sum::<f32>() / 3.0;
        assert!((var0 - 1.0).abs() < 1e-5);
        let mut row = [1.0_f32, 5.0, 2.0];
        s.apply_row(&mut row);
        assert_eq!(row.to_vec(), y.row(0).to_vec());
    }

    #[test]
    fn robust_scaling_ignores_extreme_rows() {
        let mut x = Array2::from_shape_fn((101, 2), |(r, c)| if c == 0 { r as f32 } else { 7.0 });
        x[[100, 0]] = 1e9; // one huge value moves neither the median nor the quartiles much
        let s = Scaler::fit(Scaling::Robust, x.view()).unwrap().unwrap();
        assert_eq!(s.offsets, vec![50.0, 7.0]);
        assert!((s.scales[0] - 1.0 / 50.0).abs() < 1e-6, "{:?}", s.scales);
        assert_eq!(s.scales[1], 1.0);
        let standard = Scaler::fit(Scaling::Standard, x.view()).unwrap().unwrap();
        assert!(
            standard.scales[0] < 1e-6,
            "the std is dominated by the outlier"
        );
    }

    #[test]
    fn preprocessor_transforms_then_scales() {
        let raw = array![
            [0.0_f32, -3.0],
            [(1.0_f32).exp() - 1.0, 10.0],
            [(2.0_f32).exp() - 1.0, 20.0]
        ];
        let p = Preprocessor::fit(Transform::Log1p, Scaling::Robust, raw.view()).unwrap();
        let scaler = p.scaler.as_ref().unwrap();
        // log1p gives 0, 1, 2 in column 0: median 1, IQR 1.
        assert!((scaler.offsets[0] - 1.0).abs() < 1e-6 && (scaler.scales[0] - 1.0).abs() < 1e-6);
        let x = p.apply(raw.view());
        assert!((x[[2, 0]] - 1.0).abs() < 1e-6, "{x}");
        assert_eq!(
            x.row(1).to_vec(),
            p.apply_row(&[(1.0_f32).exp() - 1.0, 10.0])
        );
        let plain = Preprocessor::fit(Transform::Identity, Scaling::None, raw.view()).unwrap();
        assert_eq!(plain.apply(raw.view()), raw);
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"transform":"none"}"#);
    }

    #[test]
    fn none_fits_nothing_and_bad_scalers_are_refused() {
        let x = array![[1.0_f32], [2.0]];
        assert_eq!(Scaler::fit(Scaling::None, x.view()).unwrap(), None);
        assert!(matches!(
            Scaler::fit(Scaling::Standard, Array2::<f32>::zeros((0, 2)).view()),
            Err(Error::EmptyDataset)
        ));
        let s = Scaler::fit(Scaling::Robust, x.view()).unwrap().unwrap();
        assert!(s.check(2).unwrap_err().contains("for 2 features"));
        let bad = Scaler {
            scales: vec![0.0],
            ..s.clone()
        };
        assert!(bad.check(1).is_err());
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""method":"robust""#), "{json}");
    }
}
