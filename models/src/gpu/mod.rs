//! Isolation forests as tensor operations with candle, for GPUs (feature `cuda`) or as a
//! reference on the CPU (feature `candle`).
//!
//! The forest is the batch scorer's padded layout (every tree a perfect binary tree of
//! the same depth, `2^D` slots; see `isolation_forest::compiled`), held as flat tensors.
//! All rows walk all trees at once, one level per step: for the `[rows, trees]` matrix of
//! current slots, `index_select` fetches each slot's feature and threshold, `gather`
//! fetches the rows' values, a comparison moves every slot to a child (`2i + 1` or
//! `2i + 2`), and after `D` steps the leaves' path lengths are gathered and summed over
//! trees. Extended forests gather `width` values per slot and sum the weighted terms. The
//! range check is computed for every slot (in f64, as the CPU scorer does), masked to the
//! rows outside the node's range.
//!
//! This pays off on a GPU for large batches (tens of thousands of rows); on the CPU the
//! native scorer is much faster and this path serves as the executable specification the
//! GPU runs. Scores agree with the native scorer to within 1e-5 (sums over trees are
//! taken in a different order).

use candle_core::{DType, Device, Tensor};
use ndarray::{Array1, ArrayView2};

use crate::error::{Error, Result};
use crate::isolation_forest::compiled::Splits;
use crate::isolation_forest::IsolationForest;
use crate::model_file::TrainedModel;
use crate::preprocess::Preprocessor;

/// Upper bound on the elements of one per-level intermediate (rows x trees x width); larger
/// batches are scored in chunks.
const MAX_CHUNK_ELEMENTS: usize = 1 << 24;

fn backend(e: candle_core::Error) -> Error {
    Error::Backend(e.to_string())
}

/// The CUDA device `ordinal`, or an error saying why there is none (built without the
/// `cuda` feature, no driver, no such device).
pub fn cuda_device(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(backend)
}

/// How a padded slot splits, as tensors.
#[derive(Debug)]
enum TensorSplits {
    /// Feature (u32) and threshold (f32) per slot.
    Axis {
        features: Tensor,
        thresholds: Tensor,
    },
    /// `[slots, width]` features (u32), weights and intercept points (f32).
    Plane {
        width: usize,
        features: Tensor,
        weights: Tensor,
        points: Tensor,
    },
}

/// An [`IsolationForest`] on a candle device.
#[derive(Debug)]
pub struct TensorForest {
    device: Device,
    n_features: usize,
    n_trees: usize,
    depth: usize,
    splits: TensorSplits,
    /// `[min, max]` per slot as two f64 tensors, with the range check.
    ranges: Option<(Tensor, Tensor)>,
    /// Leaf path lengths; tree `t`'s leaf `k` at `t * slots + slots - 1 + k`, so that the
    /// final slot indexes it directly.
    leaves: Tensor,
    /// `[1, trees]`: first slot of each tree.
    tree_base: Tensor,
    /// `-ln(2) / (trees * c(psi))`: the score is `exp(total * this)`.
    score_factor: f64,
}

impl TensorForest {
    /// Copies `forest` to `device`. Fails for forests too deep or too wide for the padded
    /// layout (which the CPU scorer then walks row by row).
    pub fn new(forest: &IsolationForest, device: &Device) -> Result<Self> {
        let compiled = forest.compiled.as_ref().ok_or_else(|| {
            Error::InvalidParams(
                "the forest is too deep or too wide to pad, so it has no tensor form".into(),
            )
        })?;
        let (n_trees, slots) = (compiled.n_trees(), compiled.slots());
        let tensor_u32 =
            |v: Vec<u32>, shape: &[usize]| Tensor::from_vec(v, shape, device).map_err(backend);
        let tensor_f32 =
            |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, device).map_err(backend);
        let splits = match &compiled.splits {
            Splits::Axis(splits) => TensorSplits::Axis {
                features: tensor_u32(
                    splits
                        .iter()
                        .map(|s| compiled.feature_of(s.column))
                        .collect(),
                    &[n_trees * slots],
                )?,
                thresholds: tensor_f32(
                    splits.iter().map(|s| s.threshold).collect(),
                    &[n_trees * slots],
                )?,
            },
            Splits::Plane {
                width,
                columns,
                weights,
                points,
            } => TensorSplits::Plane {
                width: *width,
                features: tensor_u32(
                    columns.iter().map(|&c| compiled.feature_of(c)).collect(),
                    &[n_trees * slots, *width],
                )?,
                weights: tensor_f32(weights.clone(), &[n_trees * slots, *width])?,
                points: tensor_f32(points.clone(), &[n_trees * slots, *width])?,
            },
            Splits::Dense {
                stride,
                weights,
                points,
            } => {
                // Every feature per slot; padding columns past the last feature read the
                // last one with weight 0.
                let last = forest.n_features() as u32 - 1;
                let features = (0..n_trees * slots)
                    .flat_map(|_| (0..*stride as u32).map(|f| f.min(last)))
                    .collect();
                TensorSplits::Plane {
                    width: *stride,
                    features: tensor_u32(features, &[n_trees * slots, *stride])?,
                    weights: tensor_f32(weights.clone(), &[n_trees * slots, *stride])?,
                    points: tensor_f32(points.clone(), &[n_trees * slots, *stride])?,
                }
            }
        };
        let ranges = match &compiled.ranges {
            Some(r) => {
                let min: Vec<f64> = r.iter().map(|&[lo, _]| f64::from(lo)).collect();
                let max: Vec<f64> = r.iter().map(|&[_, hi]| f64::from(hi)).collect();
                let shape = [n_trees * slots];
                Some((
                    Tensor::from_vec(min, &shape, device).map_err(backend)?,
                    Tensor::from_vec(max, &shape, device).map_err(backend)?,
                ))
            }
            None => None,
        };
        let mut leaves = vec![0.0_f32; n_trees * slots + slots];
        for (t, tree) in compiled.leaves.chunks(slots).enumerate() {
            let start = t * slots + slots - 1;
            leaves[start..start + slots].copy_from_slice(tree);
        }
        let leaves = tensor_f32(leaves, &[n_trees * slots + slots])?;
        let base: Vec<u32> = (0..n_trees)
            .map(|t| u32::try_from(t * slots))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::InvalidParams("forest too large for u32 slot indices".into()))?;
        let tree_base = tensor_u32(base, &[1, n_trees])?;
        let normaliser = f64::from(forest.normaliser);
        Ok(Self {
            device: device.clone(),
            n_features: forest.n_features(),
            n_trees,
            depth: compiled.depth(),
            splits,
            ranges,
            leaves,
            tree_base,
            score_factor: -std::f64::consts::LN_2 / (n_trees as f64 * normaliser),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Anomaly scores of rows that are already preprocessed (what
    /// [`IsolationForest::score`] takes).
    pub fn score(&self, x: ArrayView2<f32>) -> Result<Array1<f32>> {
        if x.ncols() != self.n_features {
            return Err(Error::DimensionMismatch {
                expected: self.n_features,
                found: x.ncols(),
            });
        }
        let width = match &self.splits {
            TensorSplits::Axis { .. } => 1,
            TensorSplits::Plane { width, .. } => *width,
        };
        let chunk = (MAX_CHUNK_ELEMENTS / (self.n_trees * width)).max(1);
        let mut out = Vec::with_capacity(x.nrows());
        let x = x.as_standard_layout();
        let flat = x.as_slice().ok_or_else(|| {
            Error::InvalidParams("cannot view the rows as one contiguous array".into())
        })?;
        for rows in flat.chunks(chunk * self.n_features.max(1)) {
            out.extend(self.score_chunk(rows).map_err(backend)?);
        }
        Ok(Array1::from(out))
    }

    fn score_chunk(&self, rows: &[f32]) -> candle_core::Result<Vec<f32>> {
        let b = rows.len() / self.n_features.max(1);
        let t = self.n_trees;
        let x = Tensor::from_slice(rows, (b, self.n_features), &self.device)?;
        let mut slot = Tensor::zeros((b, t), DType::U32, &self.device)?;
        let mut reach = Tensor::ones((b, t), DType::F32, &self.device)?;
        let mut expected = Tensor::zeros((b, t), DType::F32, &self.device)?;
        for level in 0..self.depth {
            let node = slot.broadcast_add(&self.tree_base)?.flatten_all()?;
            let (v, goes_left) = self.split_values(&x, &node, b)?;
            if let Some((min, max)) = &self.ranges {
                let p = isolation_chance(
                    &v,
                    &min.index_select(&node, 0)?.reshape((b, t))?,
                    &max.index_select(&node, 0)?.reshape((b, t))?,
                )?;
                let depth_weight = (level + 1) as f64;
                expected = (expected + (&reach * &p)?.affine(depth_weight, 0.0)?)?;
                reach = (&reach * p.affine(-1.0, 1.0)?)?;
            }
            // Right child 2i + 2 unless the row goes left (2i + 1); NaN goes right.
            slot = (slot.affine(2.0, 2.0)? - goes_left.to_dtype(DType::U32)?)?;
        }
        let node = slot.broadcast_add(&self.tree_base)?.flatten_all()?;
        let mut h = self.leaves.index_select(&node, 0)?.reshape((b, t))?;
        if self.ranges.is_some() {
            h = (expected + (reach * h)?)?;
        }
        h.sum(1)?
            .affine(self.score_factor, 0.0)?
            .exp()?
            .to_vec1::<f32>()
    }

    /// The value each (row, tree) slot tests and whether the row goes left.
    fn split_values(
        &self,
        x: &Tensor,
        node: &Tensor,
        b: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let t = self.n_trees;
        match &self.splits {
            TensorSplits::Axis {
                features,
                thresholds,
            } => {
                let f = features.index_select(node, 0)?.reshape((b, t))?;
                let v = x.gather(&f, 1)?;
                let threshold = thresholds.index_select(node, 0)?.reshape((b, t))?;
                let left = v.lt(&threshold)?;
                Ok((v, left))
            }
            TensorSplits::Plane {
                width,
                features,
                weights,
                points,
            } => {
                let w = *width;
                let f = features.index_select(node, 0)?.reshape((b, t * w))?;
                let xv = x.gather(&f, 1)?.reshape((b, t, w))?;
                let weight = weights.index_select(node, 0)?.reshape((b, t, w))?;
                let point = points.index_select(node, 0)?.reshape((b, t, w))?;
                let term = (&weight * (xv - point)?)?;
                // Zero weights pad narrow planes and add exactly 0, even for infinite values.
                let term = weight.eq(0.0)?.where_cond(&term.zeros_like()?, &term)?;
                let v = term.sum(2)?;
                let left = v.lt(0.0)?;
                Ok((v, left))
            }
        }
    }
}

/// `isolation_chance` of the CPU scorer, element-wise: the share of the widened range
/// `[min, max]` that lies between the value and the range, 0 inside it (and for NaN), 1
/// for an infinite gap. Computed in f64, returned as f32.
fn isolation_chance(v: &Tensor, min: &Tensor, max: &Tensor) -> candle_core::Result<Tensor> {
    let v = v.to_dtype(DType::F64)?;
    let below = v.lt(min)?;
    let above = v.gt(max)?;
    let outside = (below + above)?;
    let gap = (min - &v)?.maximum(&(&v - max)?)?;
    let p = (&gap / ((max - min)? + &gap)?)?;
    let p = gap.ge(f64::MAX)?.where_cond(&p.ones_like()?, &p)?;
    outside
        .where_cond(&p, &p.zeros_like()?)?
        .to_dtype(DType::F32)
}

/// A [`TrainedModel`]'s forest on a candle device, preprocessing raw rows on the CPU.
#[derive(Debug)]
pub struct TensorModel {
    preprocess: Preprocessor,
    forest: TensorForest,
}

impl TensorModel {
    pub fn new(model: &TrainedModel, device: &Device) -> Result<Self> {
        Ok(Self {
            preprocess: model.preprocessor().clone(),
            forest: TensorForest::new(model.forest(), device)?,
        })
    }

    /// Anomaly scores of raw feature rows, as [`TrainedModel::score`] gives them.
    pub fn score(&self, raw: ArrayView2<f32>) -> Result<Array1<f32>> {
        if raw.ncols() != self.forest.n_features {
            return Err(Error::DimensionMismatch {
                expected: self.forest.n_features,
                found: raw.ncols(),
            });
        }
        self.forest.score(self.preprocess.apply(raw).view())
    }

    pub fn forest(&self) -> &TensorForest {
        &self.forest
    }
}

#[cfg(test)]
mod tests;
