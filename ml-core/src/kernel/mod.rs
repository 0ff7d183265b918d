//! Batch prediction kernels: fitted models compiled into layouts that predict many rows fast,
//! with the same result for every row whatever the batch size or thread count.
//!
//! A [`NativeModel`](crate::NativeModel) compiles its fitted parameters into a [`Kernel`] when
//! it is fitted or loaded (the stored artifact is unchanged) and predicts a [`Frame`] block by
//! block: [`BLOCK_ROWS`] rows are preprocessed into a feature-major scratch buffer that each
//! thread reuses, and the kernel writes straight into the output arrays. No design matrix for
//! the whole batch is built and, past the first call on a thread, nothing that grows with the
//! batch is allocated but the returned predictions (the schema check returns one small
//! vector of column indices per call).
//!
//! - [`FlatForest`]: trees padded to perfect heap-ordered trees (or linked, when deep), walked
//!   several rows (or, for a single row, several trees) at a time over feature-major blocks
//!   (a design matrix is transposed block by block); exactly the fitted ensemble's
//!   predictions.
//! - [`LinearKernel`]: rows scored several at a time in structure-of-arrays form, the weights
//!   broadcast, then the link function over the same groups of rows.
//!
//! The linear kernels are compiled for the baseline instruction set and for AVX2 and pick one
//! at run time ([`Simd`], [`crate::PredictOptions::simd`]); both give the same bits.
//!
//! Determinism: each row's result is computed by the same operations in the same order
//! whichever block, lane or thread it falls in, so predictions are bit-identical across batch
//! sizes, thread counts and runs.

mod forest;
mod linear;
pub(crate) mod simd;

use std::cell::RefCell;
use std::ops::Range;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

pub use self::forest::{FlatForest, LANES, MAX_PERFECT_DEPTH, TREE_LANES};
pub use self::linear::LinearKernel;
pub(crate) use self::linear::{axpy_centered, axpy_centered_columns};
// The ONNX linear operators build kernels from score rows with a link of their own.
#[cfg(feature = "onnx-native")]
pub(crate) use self::linear::Link;
use self::simd::Level;
pub use self::simd::Simd;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::model::PredictOptions;
use crate::preprocess::Preprocessor;

/// Rows preprocessed and predicted together: 128 rows × 20 features (20 KiB) fit in L1 next
/// to a depth-8 tree (3 KiB of thresholds and feature offsets, 4 KiB of leaf values for two
/// classes), so a block reads each tree from L1 and the next tree's first lines are all it
/// misses.
pub const BLOCK_ROWS: usize = 128;

/// A batch is split over threads only from this many rows. Handing work to rayon costs a few
/// microseconds; 2048 rows take about 5 ms through the benchmark forest and 60 µs through
/// the benchmark logistic regression on one thread, so from here the split pays for itself.
pub const MIN_PARALLEL_ROWS: usize = 2048;

/// Read access to a block of rows × features.
pub(crate) trait Rows: Sync {
    /// Number of rows.
    fn n_rows(&self) -> usize;
    /// Distance in `data` between one feature of a row and the next.
    const FEATURE_STRIDE: usize;
    /// The values: feature `f` of row `r` at `data()[r * row_stride() + f * FEATURE_STRIDE]`.
    fn data(&self) -> &[f64];
    /// Distance in `data` between one row and the next.
    fn row_stride(&self) -> usize;
}

/// Feature-major values: feature `f` of row `r` at `data[f * BLOCK_ROWS + r]`, for
/// `r < n ≤ BLOCK_ROWS`. The stride is a constant so that finding a value costs a shift and an
/// add, not a multiplication. `f64` values, or `f32` for a forest compiled for them
/// ([`FlatForest::with_f32_inputs`]).
pub(crate) struct FeatureMajor<'a, T = f64> {
    data: &'a [T],
    n: usize,
}

#[cfg(feature = "onnx-native")]
impl<'a, T> FeatureMajor<'a, T> {
    /// The first `n` rows (at most [`BLOCK_ROWS`]) of the block `data`.
    pub(crate) fn new(data: &'a [T], n: usize) -> FeatureMajor<'a, T> {
        FeatureMajor { data, n }
    }
}

impl Rows for FeatureMajor<'_> {
    const FEATURE_STRIDE: usize = BLOCK_ROWS;

    #[inline(always)]
    fn n_rows(&self) -> usize {
        self.n
    }

    #[inline(always)]
    fn data(&self) -> &[f64] {
        self.data
    }

    #[inline(always)]
    fn row_stride(&self) -> usize {
        1
    }
}

/// Row-major values: feature `f` of row `r` at `data[r * d + f]`.
pub(crate) struct RowMajor<'a> {
    data: &'a [f64],
    d: usize,
    n: usize,
}

impl Rows for RowMajor<'_> {
    const FEATURE_STRIDE: usize = 1;

    #[inline(always)]
    fn n_rows(&self) -> usize {
        self.n
    }

    #[inline(always)]
    fn data(&self) -> &[f64] {
        self.data
    }

    #[inline(always)]
    fn row_stride(&self) -> usize {
        self.d
    }
}

/// A fitted model compiled for batch prediction.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Kernel {
    /// Trees and forests.
    Forest(FlatForest),
    /// Logistic regression and least squares.
    Linear(LinearKernel),
}

impl Kernel {
    /// Number of input features (columns of the design matrix).
    pub fn n_features(&self) -> usize {
        match self {
            Kernel::Forest(f) => f.n_features(),
            Kernel::Linear(l) => l.n_features(),
        }
    }

    /// Values per row: class probabilities, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        match self {
            Kernel::Forest(f) => f.n_outputs(),
            Kernel::Linear(l) => l.n_outputs(),
        }
    }

    /// Scratch values per block of [`BLOCK_ROWS`] rows, besides a preprocessed block.
    fn scratch_len(&self) -> usize {
        match self {
            Kernel::Forest(_) => 0,
            Kernel::Linear(l) => l.scratch_len(),
        }
    }

    /// Predicts the rows of a feature-major block into `out`.
    fn predict_block(&self, level: Level, x: &FeatureMajor<'_>, scratch: &mut [f64], out: &mut [f64]) {
        match self {
            Kernel::Forest(f) => {
                out.fill(0.0);
                f.predict_into(level, x, out)
            }
            Kernel::Linear(l) => l.predict_into(level, x, scratch, out),
        }
    }

    /// Predicts the rows of a design matrix `x` (`n × n_features`, already preprocessed) into
    /// `out` (`n × n_outputs`, row-major). This is the lean path for callers that hold feature
    /// vectors (no frame, no preprocessing); `threads` > 1 lets large batches use that many
    /// rayon tasks.
    pub fn predict_matrix_into(&self, x: ArrayView2<'_, f64>, out: &mut [f64], threads: usize) -> Result<()> {
        self.predict_matrix_into_with(x, out, &PredictOptions::with_threads(threads))
    }

    /// [`Kernel::predict_matrix_into`] with all the [`PredictOptions`] (threads and instruction
    /// set).
    pub fn predict_matrix_into_with(
        &self,
        x: ArrayView2<'_, f64>,
        out: &mut [f64],
        options: &PredictOptions,
    ) -> Result<()> {
        let (threads, level) = (options.threads, options.simd.level());
        let (n, d) = x.dim();
        let k = self.n_outputs();
        if d != self.n_features() || out.len() != n * k {
            return Err(Error::Internal(format!(
                "a {n} × {d} design matrix and {} output values for a model of {} features and {k} outputs",
                out.len(),
                self.n_features()
            )));
        }
        let owned;
        let data = match x.as_slice() {
            Some(s) => s,
            None => {
                owned = x.as_standard_layout().into_owned();
                owned.as_slice().unwrap_or(&[])
            }
        };
        if let Kernel::Forest(forest) = self {
            // The forest walks feature-major blocks: each block of rows is transposed into one
            // first (a pass over the rows, small next to the walks).
            return for_each_chunk(n, k, threads, out, |rows, out| {
                with_scratch(BLOCK_ROWS * d, |xb| {
                    for start in rows.clone().step_by(BLOCK_ROWS) {
                        let end = (start + BLOCK_ROWS).min(rows.end);
                        for (r, row) in data[start * d..end * d].chunks_exact(d).enumerate() {
                            for (col, &v) in xb.chunks_exact_mut(BLOCK_ROWS).zip(row) {
                                col[r] = v;
                            }
                        }
                        let o = &mut out[(start - rows.start) * k..(end - rows.start) * k];
                        o.fill(0.0);
                        forest.predict_into(
                            level,
                            &FeatureMajor {
                                data: xb,
                                n: end - start,
                            },
                            o,
                        );
                    }
                });
                Ok(())
            });
        }
        for_each_chunk(n, k, threads, out, |rows, out| {
            with_scratch(self.scratch_len(), |z| {
                // Blocks keep a block's scores and rows in L1 while every feature passes over
                // them.
                for start in rows.clone().step_by(BLOCK_ROWS) {
                    let end = (start + BLOCK_ROWS).min(rows.end);
                    let x = RowMajor {
                        data: &data[start * d..end * d],
                        d,
                        n: end - start,
                    };
                    let o = &mut out[(start - rows.start) * k..(end - rows.start) * k];
                    if let Kernel::Linear(l) = self {
                        l.predict_into(level, &x, z, o);
                    }
                }
            });
            Ok(())
        })
    }

    /// [`Kernel::predict_matrix_into`] into a new `n × n_outputs` array.
    pub fn predict_matrix(&self, x: ArrayView2<'_, f64>, threads: usize) -> Result<Array2<f64>> {
        self.predict_matrix_with(x, &PredictOptions::with_threads(threads))
    }

    /// [`Kernel::predict_matrix_into_with`] into a new `n × n_outputs` array.
    pub fn predict_matrix_with(
        &self,
        x: ArrayView2<'_, f64>,
        options: &PredictOptions,
    ) -> Result<Array2<f64>> {
        let mut out = Array2::zeros((x.nrows(), self.n_outputs()));
        let slice = out
            .as_slice_mut()
            .ok_or_else(|| Error::Internal("a new array is contiguous".into()))?;
        self.predict_matrix_into_with(x, slice, options)?;
        Ok(out)
    }

    /// Preprocesses and predicts the rows of `frame` into `out` (`n × n_outputs`, row-major),
    /// [`BLOCK_ROWS`] at a time. `index` maps the preprocessor's fields to frame columns
    /// ([`crate::model::check_frame_schema`]).
    pub(crate) fn predict_frame_into(
        &self,
        pre: &Preprocessor,
        frame: &Frame,
        index: &[usize],
        out: &mut [f64],
        options: &PredictOptions,
    ) -> Result<()> {
        let (threads, level) = (options.threads, options.simd.level());
        let n = frame.n_rows();
        let k = self.n_outputs();
        let d = self.n_features();
        if out.len() != n * k || pre.n_outputs() != d {
            return Err(Error::Internal(format!(
                "{} output values for {n} rows × {k} outputs; preprocessing gives {} features for a model of {d}",
                out.len(),
                pre.n_outputs()
            )));
        }
        if let Kernel::Linear(linear) = self {
            return for_each_chunk(n, k, threads, out, |rows, out| {
                with_scratch(linear.scratch_len(), |z| {
                    for start in rows.clone().step_by(BLOCK_ROWS) {
                        let end = (start + BLOCK_ROWS).min(rows.end);
                        let o = &mut out[(start - rows.start) * k..(end - rows.start) * k];
                        linear.predict_frame_rows(level, pre, frame, index, start..end, z, o)?;
                    }
                    Ok(())
                })
            });
        }
        for_each_chunk(n, k, threads, out, |rows, out| {
            let block_scratch = BLOCK_ROWS * d + self.scratch_len();
            with_scratch(block_scratch, |scratch| {
                let (xb, z) = scratch.split_at_mut(BLOCK_ROWS * d);
                for start in rows.clone().step_by(BLOCK_ROWS) {
                    let end = (start + BLOCK_ROWS).min(rows.end);
                    let m = end - start;
                    pre.transform_block(frame, index, start..end, xb, BLOCK_ROWS)?;
                    let o = &mut out[(start - rows.start) * k..(end - rows.start) * k];
                    self.predict_block(level, &FeatureMajor { data: xb, n: m }, z, o);
                }
                Ok(())
            })
        })
    }
}

/// Runs `f` over the rows `0..n` (and the matching part of `out`, `k` values per row): in one
/// call, or with `threads` > 1 and enough rows, in up to `threads` rayon tasks over contiguous
/// row ranges (whole blocks each, so the blocking is the same as on one thread).
fn for_each_chunk<F>(n: usize, k: usize, threads: usize, out: &mut [f64], f: F) -> Result<()>
where
    F: Fn(Range<usize>, &mut [f64]) -> Result<()> + Sync,
{
    if threads <= 1 || n < MIN_PARALLEL_ROWS || k == 0 {
        return f(0..n, out);
    }
    let blocks = n.div_ceil(BLOCK_ROWS);
    let rows_per_task = blocks.div_ceil(threads) * BLOCK_ROWS;
    out.par_chunks_mut(rows_per_task * k)
        .enumerate()
        .try_for_each(|(i, o)| {
            let start = i * rows_per_task;
            f(start..start + o.len() / k, o)
        })
}

thread_local! {
    /// Per-thread scratch for blocks of preprocessed rows and scores, grown on first use and
    /// reused by every later prediction on the thread.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// The same for blocks of `f32` values.
    #[cfg(feature = "onnx-native")]
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with `len` scratch values (contents unspecified).
pub(crate) fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [f64]) -> T) -> T {
    with_buffer(&SCRATCH, len, f)
}

/// [`with_scratch`] for `f32` values.
#[cfg(feature = "onnx-native")]
pub(crate) fn with_scratch_f32<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    with_buffer(&SCRATCH_F32, len, f)
}

fn with_buffer<E: Copy + Default, T>(
    key: &'static std::thread::LocalKey<RefCell<Vec<E>>>,
    len: usize,
    f: impl FnOnce(&mut [E]) -> T,
) -> T {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, E::default());
            }
            f(&mut buf[..len])
        }
        // Only a prediction nested inside another on the same thread gets here.
        Err(_) => f(&mut vec![E::default(); len]),
    })
}
