//! The standard shapes of exported linear models and tree ensembles, fused into one pass.
//!
//! skl2onnx (and onnxmltools) export a logistic regression as `LinearClassifier` (scores, then
//! its post-transform) followed by pass-through nodes on the probabilities: `Normalizer` (L1),
//! `Identity`, `Cast` to float, `ZipMap`; a linear regression as `LinearRegressor`. Evaluated
//! node by node, each of those copies the batch once more. When the path from the graph's one
//! input to the probabilities (or values) is exactly such a chain, the model is compiled into a
//! [`LinearKernel`] instead, and a batch goes from the frame's columns to the predictions in one
//! pass of blocks: the inputs rounded to `float` as the input tensor would hold them, scores,
//! link and L1 normalisation computed as the operators specify, the outputs rounded to `float`
//! as the operators return them.
//!
//! Tree ensembles likewise: skl2onnx, onnxmltools and the boosting libraries' converters export
//! them as one `TreeEnsembleClassifier` (or `TreeEnsembleRegressor`) on the input, optionally
//! followed by pass-through nodes and `ZipMap`. Such a graph runs as [`FusedTrees`]: the frame's
//! columns go into a feature-major block (rounded to `float` as the input tensor holds them),
//! the block straight through the compiled forest, and each row's scores through the operator's
//! base values and post-transform into the predictions, with no input tensor, no operator
//! outputs and no per-row allocation.
//!
//! Any other graph keeps the operator-by-operator path.

use std::sync::Arc;

use ndarray::{Array1, Array2};

use super::ops::Trees;
use crate::error::{Error, Result};
use crate::frame::{Column, Frame};
use crate::kernel::simd::Level;
use crate::kernel::{BLOCK_ROWS, FeatureMajor, LinearKernel, with_scratch, with_scratch_f32};
use crate::model::Predictions;

/// A graph compiled into one pass.
#[derive(Clone, Debug)]
pub(crate) enum Fused {
    /// A linear model.
    Linear(FusedLinear),
    /// A tree ensemble (boxed: its forest's description is larger than a linear kernel's).
    Trees(Box<FusedTrees>),
}

impl Fused {
    /// Number of input features the pass reads (the model's input columns).
    pub(crate) fn n_features(&self) -> usize {
        match self {
            Fused::Linear(l) => l.n_features(),
            Fused::Trees(t) => t.n_inputs,
        }
    }

    /// Values per row.
    pub(crate) fn n_outputs(&self) -> usize {
        match self {
            Fused::Linear(l) => l.n_outputs(),
            Fused::Trees(t) => t.trees.n_scores(),
        }
    }

    /// Predicts `frame`, whose field `j` is column `idx[j]`; `labels` for classifiers.
    pub(crate) fn predict(
        &self,
        frame: &Frame,
        idx: &[usize],
        labels: Option<&Arc<[String]>>,
        level: Level,
    ) -> Result<Predictions> {
        match self {
            Fused::Linear(l) => l.predict(frame, idx, labels, level),
            Fused::Trees(t) => t.predict(frame, idx, labels, level),
        }
    }
}

/// A tree-ensemble graph compiled into one pass (see the [module docs](self)).
#[derive(Clone, Debug)]
pub(crate) struct FusedTrees {
    trees: Trees,
    /// Columns of the graph's input (the nodes may read fewer).
    n_inputs: usize,
    /// The input tensor is float: each value is rounded to `f32` first.
    round_inputs: bool,
    /// Classifiers: output column `j` of the predictions is the operator's column `columns[j]`.
    columns: Option<Vec<usize>>,
}

impl FusedTrees {
    /// `None` unless `trees` has a compiled forest that reads at most `n_inputs` columns.
    /// A float input tensor (`round_inputs`) makes every value the forest reads an `f32`, so
    /// the forest is also compiled for `f32` blocks ([`crate::kernel::FlatForest::with_f32_inputs`]).
    pub(crate) fn new(
        trees: Trees,
        n_inputs: usize,
        round_inputs: bool,
        columns: Option<Vec<usize>>,
    ) -> Option<FusedTrees> {
        if trees.forest().is_none() || trees.n_features() > n_inputs {
            return None;
        }
        let trees = if round_inputs {
            trees.with_f32_inputs()
        } else {
            trees
        };
        Some(FusedTrees {
            trees,
            n_inputs,
            round_inputs,
            columns,
        })
    }

    /// Predicts `frame`, whose field `j` is column `idx[j]`; `labels` for classifiers.
    pub(crate) fn predict(
        &self,
        frame: &Frame,
        idx: &[usize],
        labels: Option<&Arc<[String]>>,
        level: Level,
    ) -> Result<Predictions> {
        let n = frame.n_rows();
        let trees = &self.trees;
        let (nf, nan_left, k) = (trees.n_features(), trees.nan_left(), trees.n_scores());
        let d = nf + nan_left.len();
        let forest = trees
            .forest()
            .ok_or_else(|| Error::Internal("fused trees without a forest".into()))?;
        if idx.len() != self.n_inputs || forest.n_features() != d || forest.n_outputs() != k {
            return Err(Error::Internal(format!(
                "{} input columns for a tree ensemble of {} inputs, {d} features and {k} scores",
                idx.len(),
                self.n_inputs
            )));
        }
        let classifier = labels.is_some();
        let mut z = trees.class_scratch();
        let mut out = Array2::<f64>::zeros((n, k));
        let slice = out
            .as_slice_mut()
            .ok_or_else(|| Error::Internal("a new array is contiguous".into()))?;
        // Each row's raw scores through the base values and post-transform into `o`.
        let mut finish = |raw: &[f64], o: &mut [f64]| {
            if classifier {
                for (raw, o) in raw.chunks_exact(k).zip(o.chunks_exact_mut(k)) {
                    trees.finish_class_row(raw, &mut z, o);
                }
            } else {
                o.copy_from_slice(raw);
                o.chunks_exact_mut(k).for_each(|row| trees.finish_targets(row));
            }
            // The operators return float.
            o.iter_mut().for_each(|v| *v = f64::from(*v as f32));
        };
        if self.round_inputs && forest.has_f32_inputs() {
            // Every value is an f32: the block holds them as such, for the forest's f32 walk
            // (the same leaves, so the same bits, as the f64 walk below).
            with_scratch((k + 1) * BLOCK_ROWS, |scratch| {
                let (raw, tmp) = scratch.split_at_mut(k * BLOCK_ROWS);
                with_scratch_f32(d * BLOCK_ROWS, |xb| {
                    for start in (0..n).step_by(BLOCK_ROWS) {
                        let end = (start + BLOCK_ROWS).min(n);
                        let m = end - start;
                        for (col, &c) in xb.chunks_exact_mut(BLOCK_ROWS).zip(&idx[..nf]) {
                            fill_block_f32(frame, c, start, &mut col[..m], tmp);
                        }
                        copy_nan_left(xb, nf, nan_left, m, f32::NEG_INFINITY, f32::is_nan);
                        let raw = &mut raw[..m * k];
                        raw.fill(0.0);
                        forest.predict_f32_into(level, &FeatureMajor::new(xb, m), raw)?;
                        finish(raw, &mut slice[start * k..end * k]);
                    }
                    Ok::<(), Error>(())
                })
            })?;
        } else {
            with_scratch((d + k) * BLOCK_ROWS, |scratch| {
                let (xb, raw) = scratch.split_at_mut(d * BLOCK_ROWS);
                for start in (0..n).step_by(BLOCK_ROWS) {
                    let end = (start + BLOCK_ROWS).min(n);
                    let m = end - start;
                    for (col, &c) in xb.chunks_exact_mut(BLOCK_ROWS).zip(&idx[..nf]) {
                        fill_block(frame, c, start, &mut col[..m], self.round_inputs);
                    }
                    copy_nan_left(xb, nf, nan_left, m, f64::NEG_INFINITY, f64::is_nan);
                    let raw = &mut raw[..m * k];
                    raw.fill(0.0);
                    forest.predict_into(level, &FeatureMajor::new(xb, m), raw);
                    finish(raw, &mut slice[start * k..end * k]);
                }
            });
        }
        let Some(labels) = labels else {
            return Ok(Predictions::Regression {
                values: Array1::from(out.into_raw_vec_and_offset().0),
            });
        };
        if let Some(columns) = &self.columns {
            reorder_columns(slice, k, columns);
        }
        Predictions::from_probabilities(labels.clone(), out)
    }
}

/// Fills the copies of the features whose NaN goes left (block features `nf..`, one per entry
/// of `nan_left`, the feature it copies) for the block's first `m` rows, NaN (`is_nan`) as
/// `neg_inf`.
fn copy_nan_left<T: Copy>(
    xb: &mut [T],
    nf: usize,
    nan_left: &[usize],
    m: usize,
    neg_inf: T,
    is_nan: fn(T) -> bool,
) {
    for (s, &f) in nan_left.iter().enumerate() {
        let (src, dst) = xb.split_at_mut((nf + s) * BLOCK_ROWS);
        for (o, &v) in dst[..m].iter_mut().zip(&src[f * BLOCK_ROWS..f * BLOCK_ROWS + m]) {
            *o = if is_nan(v) { neg_inf } else { v };
        }
    }
}

/// Puts each row's column `columns[j]` at `j`.
fn reorder_columns(slice: &mut [f64], k: usize, columns: &[usize]) {
    let mut row_copy = vec![0.0; k];
    for row in slice.chunks_exact_mut(k) {
        row_copy.copy_from_slice(row);
        for (v, &c) in row.iter_mut().zip(columns) {
            *v = row_copy[c];
        }
    }
}

/// A linear graph compiled into one pass (see the [module docs](self)).
#[derive(Clone, Debug)]
pub(crate) struct FusedLinear {
    kernel: LinearKernel,
    /// The input tensor is float: each value is rounded to `f32` first.
    round_inputs: bool,
    /// The probabilities go through `Normalizer` with the L1 norm.
    normalize_l1: bool,
    /// Classifiers: output column `j` of the predictions is the kernel's column `columns[j]`.
    columns: Option<Vec<usize>>,
}

impl FusedLinear {
    pub(crate) fn new(
        kernel: LinearKernel,
        round_inputs: bool,
        normalize_l1: bool,
        columns: Option<Vec<usize>>,
    ) -> FusedLinear {
        FusedLinear {
            kernel,
            round_inputs,
            normalize_l1,
            columns,
        }
    }

    /// Number of input features.
    pub(crate) fn n_features(&self) -> usize {
        self.kernel.n_features()
    }

    /// Values per row.
    pub(crate) fn n_outputs(&self) -> usize {
        self.kernel.n_outputs()
    }

    /// Predicts `frame`, whose field `j` is column `idx[j]`; `labels` for classifiers.
    pub(crate) fn predict(
        &self,
        frame: &Frame,
        idx: &[usize],
        labels: Option<&Arc<[String]>>,
        level: Level,
    ) -> Result<Predictions> {
        let n = frame.n_rows();
        let d = self.kernel.n_features();
        let k = self.kernel.n_outputs();
        if idx.len() != d {
            return Err(Error::Internal(format!(
                "{} input columns for a linear model of {d} features",
                idx.len()
            )));
        }
        let mut out = Array2::<f64>::zeros((n, k));
        let slice = out
            .as_slice_mut()
            .ok_or_else(|| Error::Internal("a new array is contiguous".into()))?;
        let k_scores = self.kernel.n_scores();
        with_scratch(self.kernel.scratch_len(), |scratch| {
            let (z, xb) = scratch.split_at_mut(k_scores * BLOCK_ROWS);
            for start in (0..n).step_by(BLOCK_ROWS) {
                let end = (start + BLOCK_ROWS).min(n);
                for (col, &c) in xb.chunks_exact_mut(BLOCK_ROWS).zip(idx) {
                    fill_block(frame, c, start, &mut col[..end - start], self.round_inputs);
                }
                self.kernel
                    .predict_block(level, xb, end - start, z, &mut slice[start * k..end * k]);
            }
        });
        // The operators return float.
        slice.iter_mut().for_each(|v| *v = f64::from(*v as f32));
        if self.normalize_l1 {
            // As `Normalizer`: divide by the sum of absolute values unless it is zero.
            for row in slice.chunks_exact_mut(k) {
                let sum: f64 = row.iter().map(|v| v.abs()).sum();
                if sum != 0.0 {
                    row.iter_mut().for_each(|v| *v = f64::from((*v / sum) as f32));
                }
            }
        }
        let Some(labels) = labels else {
            return Ok(Predictions::Regression {
                values: Array1::from(out.into_raw_vec_and_offset().0),
            });
        };
        if let Some(columns) = &self.columns {
            reorder_columns(slice, k, columns);
        }
        let predicted = crate::model::argmax_rows(slice, k);
        if labels.len() != k {
            return Err(Error::Internal(format!(
                "{} labels for {k} probability columns",
                labels.len()
            )));
        }
        Ok(Predictions::Classification {
            labels: labels.clone(),
            predicted,
            probabilities: out,
        })
    }
}

/// Rows `start..start + dst.len()` of numeric column `c` into `dst`, as the input tensor holds
/// them ([`super::numeric_column`]: missing values as NaN, float values as stored), rounded to
/// `f32` when `round`.
fn fill_block(frame: &Frame, c: usize, start: usize, dst: &mut [f64], round: bool) {
    if let [d] = dst {
        // One row (a single-row request): the value alone, without a copy's or loop's set-up
        // per column. The same value as below.
        let col = &frame.columns()[c];
        let x = if !matches!(col, Column::Float(_)) && frame.is_null(start, c) {
            f64::NAN
        } else {
            crate::preprocess::numeric_value(col, start)
        };
        *d = if round { f64::from(x as f32) } else { x };
        return;
    }
    let rows = start..start + dst.len();
    let nulls = frame.null_mask(c).map(|m| &m[rows.clone()]);
    let missing = |i: usize| nulls.is_some_and(|m| m[i]);
    match &frame.columns()[c] {
        Column::Float(v) => match v.as_slice() {
            // Copied and rounded in one pass (the common case: a float column, no nulls).
            Some(s) if round => dst
                .iter_mut()
                .zip(&s[rows])
                .for_each(|(d, x)| *d = f64::from(*x as f32)),
            Some(s) => dst.copy_from_slice(&s[rows]),
            None => dst.iter_mut().zip(rows).for_each(|(d, r)| *d = v[r]),
        },
        Column::Int(v) => dst
            .iter_mut()
            .enumerate()
            .for_each(|(i, d)| *d = if missing(i) { f64::NAN } else { v[start + i] as f64 }),
        Column::Bool(v) => dst.iter_mut().enumerate().for_each(|(i, d)| {
            *d = if missing(i) {
                f64::NAN
            } else {
                f64::from(u8::from(v[start + i]))
            }
        }),
        // Refused when the input layout was built.
        Column::Categorical(_) | Column::String(_) => dst.fill(f64::NAN),
    }
    if round && !matches!(&frame.columns()[c], Column::Float(v) if v.as_slice().is_some()) {
        dst.iter_mut().for_each(|v| *v = f64::from(*v as f32));
    }
}

/// [`fill_block`] rounding to `f32`, into `f32` values: the same values, narrowed (exactly, as
/// they are `f32` values or NaN). `tmp` holds at least `dst.len()` values of scratch.
fn fill_block_f32(frame: &Frame, c: usize, start: usize, dst: &mut [f32], tmp: &mut [f64]) {
    if let [d] = dst {
        // One row: fill_block's own shortcut.
        let mut x = [0.0];
        fill_block(frame, c, start, &mut x, true);
        *d = x[0] as f32;
        return;
    }
    if let Column::Float(v) = &frame.columns()[c]
        && let Some(s) = v.as_slice()
    {
        // The common case (a float column, no nulls) in one pass.
        let rows = start..start + dst.len();
        dst.iter_mut().zip(&s[rows]).for_each(|(d, x)| *d = *x as f32);
        return;
    }
    let tmp = &mut tmp[..dst.len()];
    fill_block(frame, c, start, tmp, true);
    dst.iter_mut().zip(tmp.iter()).for_each(|(d, x)| *d = *x as f32);
}
