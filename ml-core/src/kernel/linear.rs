//! Linear models (logistic regression, least squares) compiled for batch prediction.
//!
//! Rows are scored [`LANES`] at a time with the features in structure-of-arrays form: a block
//! of up to [`BLOCK_ROWS`] rows is laid out feature-major (one contiguous run of values per
//! feature; a design matrix is transposed into that form block by block, a frame's columns
//! already are), and each group of [`LANES`] rows keeps its scores in registers while the
//! features stream past, each feature's weight broadcast over the group. Every row's score is
//! `Σ_j x_j w_j` accumulated in feature order from `0.0` (a multiply, then an add: no fused
//! multiply-add), then `+ b`, whatever the batch size or the row's place in it; the last group
//! of a block is padded rather than finished by different code. The link (logistic or softmax)
//! runs over the same groups with a branch-free exp. The kernels are compiled for the baseline
//! and for AVX2 ([`super::simd`]) and give the same bits on both.
//!
//! From a frame, the preprocessing is fused into the score pass: each feature's scaling is
//! folded into its weight and a one-hot field adds the weight of its category, reading the
//! frame's columns directly (the division per value of standard scaling was the largest cost of
//! the unfused block path).

use std::ops::Range;

use super::simd::{LANES, Level, dispatch};
use super::{BLOCK_ROWS, Rows};
use crate::error::Result;
use crate::estimator::{LinearClassifier, LinearRegressor};
use crate::frame::Frame;
use crate::preprocess::Preprocessor;

/// What the scores become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// The score is the prediction (least squares).
    Identity,
    /// One score; probabilities `(1 - σ(z), σ(z))`.
    Logistic,
    /// One score per class; probabilities by softmax.
    Softmax,
}

/// A linear model laid out for batch prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearKernel {
    n_features: usize,
    /// Score rows, feature-major: `weights[j * n_scores + c]` is the weight of feature `j` in
    /// score `c`.
    weights: Vec<f64>,
    intercept: Vec<f64>,
    n_scores: usize,
    link: Link,
}

impl LinearKernel {
    /// Compiles a fitted logistic regression (binary or multinomial).
    pub fn classifier(m: &LinearClassifier) -> LinearKernel {
        let (k, d) = m.coefficients.dim();
        let mut weights = vec![0.0; k * d];
        for ((c, j), w) in m.coefficients.indexed_iter() {
            weights[j * k + c] = *w;
        }
        LinearKernel {
            n_features: d,
            weights,
            intercept: m.intercept.to_vec(),
            n_scores: k,
            link: if k == 1 { Link::Logistic } else { Link::Softmax },
        }
    }

    /// Compiles a fitted linear regressor.
    pub fn regressor(m: &LinearRegressor) -> LinearKernel {
        LinearKernel {
            n_features: m.coefficients.len(),
            weights: m.coefficients.to_vec(),
            intercept: vec![m.intercept],
            n_scores: 1,
            link: Link::Identity,
        }
    }

    /// A kernel from score rows given row-major (`coefficients[c * n_features + j]`), as ONNX
    /// linear operators store them. `None` when the sizes disagree or `link` is the identity
    /// with more than one score.
    #[cfg_attr(not(feature = "onnx-native"), allow(dead_code))]
    pub(crate) fn from_score_rows(
        coefficients: &[f64],
        intercept: &[f64],
        link: Link,
    ) -> Option<LinearKernel> {
        let k = intercept.len();
        if k == 0 || coefficients.is_empty() || !coefficients.len().is_multiple_of(k) {
            return None;
        }
        if (link == Link::Identity || link == Link::Logistic) && k != 1 {
            return None;
        }
        let d = coefficients.len() / k;
        let mut weights = vec![0.0; k * d];
        for (i, w) in coefficients.iter().enumerate() {
            weights[(i % d) * k + i / d] = *w;
        }
        Some(LinearKernel {
            n_features: d,
            weights,
            intercept: intercept.to_vec(),
            n_scores: k,
            link,
        })
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of scores per row (1 for binary and regression, else the number of classes).
    #[cfg_attr(not(feature = "onnx-native"), allow(dead_code))]
    pub(crate) fn n_scores(&self) -> usize {
        self.n_scores
    }

    /// Values per row: 2 for binary, the number of classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        match self.link {
            Link::Identity => 1,
            Link::Logistic => 2,
            Link::Softmax => self.n_scores,
        }
    }

    /// Scratch values the block methods need: the scores of a block (`n_scores ×
    /// BLOCK_ROWS`), then room for a feature-major block (`n_features × BLOCK_ROWS`).
    pub(crate) fn scratch_len(&self) -> usize {
        (self.n_scores + self.n_features) * BLOCK_ROWS
    }

    /// Writes the predictions for the rows of `x` (at most [`BLOCK_ROWS`]) into `out`
    /// (`n × n_outputs`, row-major), using `scratch` ([`LinearKernel::scratch_len`] values).
    pub(crate) fn predict_into<X: Rows>(&self, level: Level, x: &X, scratch: &mut [f64], out: &mut [f64]) {
        let n = x.n_rows();
        let d = self.n_features;
        let (z, rest) = scratch.split_at_mut(self.n_scores * BLOCK_ROWS);
        let xb: &[f64] = if X::FEATURE_STRIDE == BLOCK_ROWS && x.row_stride() == 1 {
            x.data()
        } else {
            // Transposed into structure-of-arrays form (rows past `n` keep whatever they held:
            // the padding lanes' scores are never read).
            let xb = &mut rest[..d * BLOCK_ROWS];
            let data = x.data();
            let (rs, fs) = (x.row_stride(), X::FEATURE_STRIDE);
            if fs == 1 && rs == d && d > 0 {
                let rows = &data[..n.min(BLOCK_ROWS) * d];
                #[cfg(target_arch = "x86_64")]
                if level.avx2() {
                    // SAFETY: a `Level` allowing AVX2 is only made by `Simd::level` after
                    // `is_x86_feature_detected!("avx2")` returned true.
                    unsafe { scores_rows_avx2(rows, d, &self.weights, self.n_scores, z, xb) };
                    self.finish(level, z, n, out);
                    return;
                }
                transpose_rows(rows, d, 0, xb);
            } else {
                for (j, col) in xb.chunks_exact_mut(BLOCK_ROWS).enumerate() {
                    for (r, v) in col.iter_mut().enumerate().take(n) {
                        *v = data[r * rs + j * fs];
                    }
                }
            }
            xb
        };
        self.predict_block(level, xb, n, z, out);
    }

    /// Predicts the `m` rows of a feature-major block `xb` (`n_features × BLOCK_ROWS`, rows
    /// past `m` any initialised values) into `out`, with `z` (`n_scores × BLOCK_ROWS`) for the
    /// scores.
    pub(crate) fn predict_block(&self, level: Level, xb: &[f64], m: usize, z: &mut [f64], out: &mut [f64]) {
        scores(level, xb, m, &self.weights, self.n_scores, z);
        self.finish(level, z, m, out);
    }

    /// Preprocesses and predicts the rows `rows` of `frame` in one pass over its columns
    /// ([`Preprocessor::linear_scores`]): no design matrix, no division per value.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn predict_frame_rows(
        &self,
        level: Level,
        pre: &Preprocessor,
        frame: &Frame,
        index: &[usize],
        rows: Range<usize>,
        z: &mut [f64],
        out: &mut [f64],
    ) -> Result<()> {
        let m = rows.len();
        let z = &mut z[..self.n_scores * BLOCK_ROWS];
        for zc in z.chunks_exact_mut(BLOCK_ROWS) {
            zc[..m].fill(0.0);
        }
        pre.linear_scores(
            level,
            frame,
            index,
            rows,
            &self.weights,
            self.n_scores,
            z,
            BLOCK_ROWS,
        )?;
        self.finish(level, z, m, out);
        Ok(())
    }

    /// Adds the intercepts to the scores `z` of `m` rows (score-major, [`BLOCK_ROWS`] apart) and
    /// applies the link into `out`.
    fn finish(&self, level: Level, z: &mut [f64], m: usize, out: &mut [f64]) {
        link(level, z, m, &self.intercept, self.link, out);
    }
}

dispatch! {
    /// The scores of `m` rows of a feature-major block into `z` (score `c` of row `r` at
    /// `z[c * BLOCK_ROWS + r]`), whole groups of [`LANES`] rows.
    fn scores => scores_body(xb: &[f64], m: usize, weights: &[f64], k: usize, z: &mut [f64]);
}

dispatch! {
    /// Intercepts and link over whole groups of [`LANES`] rows; only the `m` real rows are
    /// written to `out`.
    fn link => link_body(z: &mut [f64], m: usize, intercept: &[f64], link: Link, out: &mut [f64]);
}

dispatch! {
    /// `z[r] = z[r] + w * (x[r] - center)` for every row (`z` and `x` of one length), by groups
    /// of [`LANES`], the last one padded.
    fn axpy_centered => axpy_centered_body(z: &mut [f64], x: &[f64], w: f64, center: f64);
}

dispatch! {
    /// `z[r] = z[r] + w * (x[r] - center)` for every row `r` of `z` and every `(x, w, center)` of
    /// `columns` in order: the same operations in the same order per row as calling
    /// [`axpy_centered`] once per column, but with a group of rows' scores held in registers
    /// through all the columns instead of stored and loaded again per column.
    fn axpy_centered_columns => axpy_centered_columns_body(z: &mut [f64], columns: &[(&[f64], f64, f64)]);
}

#[inline(always)]
fn axpy_centered_columns_body(z: &mut [f64], columns: &[(&[f64], f64, f64)]) {
    /// Rows whose scores stay in registers: eight AVX2 registers.
    const GROUP: usize = 32;
    let n = columns.iter().fold(z.len(), |n, (x, _, _)| n.min(x.len()));
    let whole = n - n % GROUP;
    for r0 in (0..whole).step_by(GROUP) {
        let mut acc = [0.0; GROUP];
        acc.copy_from_slice(&z[r0..r0 + GROUP]);
        for &(x, w, center) in columns {
            let x = &x[r0..r0 + GROUP];
            for i in 0..GROUP {
                acc[i] += w * (x[i] - center);
            }
        }
        z[r0..r0 + GROUP].copy_from_slice(&acc);
    }
    for (r, zr) in z.iter_mut().enumerate().take(n).skip(whole) {
        for &(x, w, center) in columns {
            *zr += w * (x[r] - center);
        }
    }
}

/// Copies the rows of a row-major matrix (`data`, `d` values per row, at most [`BLOCK_ROWS`]
/// rows) from row `first` on down the columns of the feature-major block `xb`
/// (`d × BLOCK_ROWS`).
fn transpose_rows(data: &[f64], d: usize, first: usize, xb: &mut [f64]) {
    for (r, row) in data.chunks_exact(d).enumerate().skip(first) {
        for (col, &v) in xb.chunks_exact_mut(BLOCK_ROWS).zip(row) {
            col[r] = v;
        }
    }
}

/// [`scores`] of the rows of a row-major matrix (`data`, `d` values per row, at most
/// [`BLOCK_ROWS`] rows) without a transposed copy: 4 rows at a time, each 4 × 4 tile of values
/// transposed in registers and multiplied by its features' broadcast weights, then added in
/// feature order, the same operations as [`scores_body`] on the transposed block (so the same
/// bits). The last rows (fewer than 4) go through the same code from `pad` (at least `4 × d`
/// values), zero-filled. Scores land in `z` as [`scores`] writes them, for the rows rounded up
/// to a multiple of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scores_rows_avx2(data: &[f64], d: usize, weights: &[f64], k: usize, z: &mut [f64], pad: &mut [f64]) {
    use std::arch::x86_64::{
        _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_permute2f128_pd, _mm256_set_pd, _mm256_set1_pd,
        _mm256_setzero_pd, _mm256_storeu_pd, _mm256_unpackhi_pd, _mm256_unpacklo_pd,
    };
    let n = (data.len() / d).min(BLOCK_ROWS);
    let d4 = d - d % 4;
    for r in (0..n).step_by(4) {
        let rows: &[f64] = if r + 4 <= n {
            &data[r * d..(r + 4) * d]
        } else {
            let pad = &mut pad[..4 * d];
            pad.fill(0.0);
            pad[..(n - r) * d].copy_from_slice(&data[r * d..n * d]);
            pad
        };
        let (row0, row1, row2, row3) = (&rows[..d], &rows[d..2 * d], &rows[2 * d..3 * d], &rows[3 * d..]);
        for c in 0..k {
            let w = |j: usize| _mm256_set1_pd(weights[j * k + c]);
            let mut acc = _mm256_setzero_pd();
            for j in (0..d4).step_by(4) {
                let (a, b, e, f) = (&row0[j..j + 4], &row1[j..j + 4], &row2[j..j + 4], &row3[j..j + 4]);
                // SAFETY: each slice holds the 4 values `_mm256_loadu_pd` reads.
                let (a, b, e, f) = unsafe {
                    (
                        _mm256_loadu_pd(a.as_ptr()),
                        _mm256_loadu_pd(b.as_ptr()),
                        _mm256_loadu_pd(e.as_ptr()),
                        _mm256_loadu_pd(f.as_ptr()),
                    )
                };
                let (ab_even, ab_odd) = (_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b));
                let (ef_even, ef_odd) = (_mm256_unpacklo_pd(e, f), _mm256_unpackhi_pd(e, f));
                let x0 = _mm256_permute2f128_pd::<0x20>(ab_even, ef_even);
                let x1 = _mm256_permute2f128_pd::<0x20>(ab_odd, ef_odd);
                let x2 = _mm256_permute2f128_pd::<0x31>(ab_even, ef_even);
                let x3 = _mm256_permute2f128_pd::<0x31>(ab_odd, ef_odd);
                acc = _mm256_add_pd(acc, _mm256_mul_pd(x0, w(j)));
                acc = _mm256_add_pd(acc, _mm256_mul_pd(x1, w(j + 1)));
                acc = _mm256_add_pd(acc, _mm256_mul_pd(x2, w(j + 2)));
                acc = _mm256_add_pd(acc, _mm256_mul_pd(x3, w(j + 3)));
            }
            for j in d4..d {
                let x = _mm256_set_pd(row3[j], row2[j], row1[j], row0[j]);
                acc = _mm256_add_pd(acc, _mm256_mul_pd(x, w(j)));
            }
            let dst = &mut z[c * BLOCK_ROWS + r..c * BLOCK_ROWS + r + 4];
            // SAFETY: `dst` holds the 4 values `_mm256_storeu_pd` writes.
            unsafe { _mm256_storeu_pd(dst.as_mut_ptr(), acc) };
        }
    }
}

#[inline(always)]
fn scores_body(xb: &[f64], m: usize, weights: &[f64], k: usize, z: &mut [f64]) {
    let d = weights.len() / k.max(1);
    for r0 in (0..m.min(BLOCK_ROWS)).step_by(LANES) {
        for c in 0..k {
            let mut acc = [0.0f64; LANES];
            for (col, w) in xb
                .chunks_exact(BLOCK_ROWS)
                .take(d)
                .zip(weights.iter().skip(c).step_by(k))
            {
                // r0 + LANES ≤ BLOCK_ROWS (a multiple of LANES).
                let x = &col[r0..r0 + LANES];
                for i in 0..LANES {
                    acc[i] += x[i] * w;
                }
            }
            z[c * BLOCK_ROWS + r0..c * BLOCK_ROWS + r0 + LANES].copy_from_slice(&acc);
        }
    }
}

#[inline(always)]
fn link_body(z: &mut [f64], m: usize, intercept: &[f64], link: Link, out: &mut [f64]) {
    let k = intercept.len();
    for r0 in (0..m.min(BLOCK_ROWS)).step_by(LANES) {
        let real = (m - r0).min(LANES);
        match link {
            Link::Identity => {
                let b = intercept[0];
                let mut v = [0.0; LANES];
                for (vi, zi) in v.iter_mut().zip(&z[r0..r0 + LANES]) {
                    *vi = zi + b;
                }
                out[r0..r0 + real].copy_from_slice(&v[..real]);
            }
            Link::Logistic => {
                let b = intercept[0];
                let mut s = [0.0; LANES];
                for (si, zi) in s.iter_mut().zip(&z[r0..r0 + LANES]) {
                    *si = zi + b;
                }
                let p = sigmoid(s);
                let mut pairs = [0.0; 2 * LANES];
                for i in 0..LANES {
                    pairs[2 * i] = 1.0 - p[i];
                    pairs[2 * i + 1] = p[i];
                }
                out[2 * r0..2 * (r0 + real)].copy_from_slice(&pairs[..2 * real]);
            }
            Link::Softmax => {
                // As LinearClassifier::predict_proba: subtract the max, exponentiate, divide by
                // the sum (summed in class order).
                let mut max = [f64::NEG_INFINITY; LANES];
                for (c, &b) in intercept.iter().enumerate() {
                    let zc = &mut z[c * BLOCK_ROWS + r0..c * BLOCK_ROWS + r0 + LANES];
                    for i in 0..LANES {
                        zc[i] += b;
                        max[i] = max[i].max(zc[i]);
                    }
                }
                let mut sum = [0.0; LANES];
                for c in 0..k {
                    let zc = &mut z[c * BLOCK_ROWS + r0..c * BLOCK_ROWS + r0 + LANES];
                    let mut shifted = [0.0; LANES];
                    for i in 0..LANES {
                        shifted[i] = zc[i] - max[i];
                    }
                    let e = exp_nonpositive(shifted);
                    zc.copy_from_slice(&e);
                    for i in 0..LANES {
                        sum[i] += e[i];
                    }
                }
                for c in 0..k {
                    let zc = &z[c * BLOCK_ROWS + r0..c * BLOCK_ROWS + r0 + LANES];
                    for i in 0..real {
                        out[(r0 + i) * k + c] = zc[i] / sum[i];
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn axpy_centered_body(z: &mut [f64], x: &[f64], w: f64, center: f64) {
    #[inline(always)]
    fn group(z: &mut [f64], x: &[f64], w: f64, center: f64) {
        for i in 0..LANES {
            z[i] += w * (x[i] - center);
        }
    }
    let n = z.len().min(x.len());
    let whole = n - n % LANES;
    // Whole groups as one flat loop, which the compiler vectorizes with contiguous loads (a
    // loop over `LANES`-sized chunks came out as scalar loads and shuffles).
    for (zr, xr) in z[..whole].iter_mut().zip(&x[..whole]) {
        *zr += w * (*xr - center);
    }
    if whole < n {
        let (mut zp, mut xp) = ([0.0; LANES], [0.0; LANES]);
        zp[..n - whole].copy_from_slice(&z[whole..n]);
        xp[..n - whole].copy_from_slice(&x[whole..n]);
        group(&mut zp, &xp, w, center);
        z[whole..n].copy_from_slice(&zp[..n - whole]);
    }
}

/// The logistic function, as [`LinearClassifier::predict_proba`] defines it (`1 / (1 + e^-z)`
/// for `z ≥ 0`, `e^z / (1 + e^z)` below, so that nothing overflows), for a group of rows: one
/// exp of `-|z|` and one division, the numerator picked by the sign without a branch (half of
/// a batch's rows would mispredict it).
#[inline(always)]
fn sigmoid(z: [f64; LANES]) -> [f64; LANES] {
    let mut neg = [0.0; LANES];
    for i in 0..LANES {
        neg[i] = -z[i].abs();
    }
    let e = exp_nonpositive(neg);
    let mut p = [0.0; LANES];
    for i in 0..LANES {
        let num = if z[i] >= 0.0 { 1.0 } else { e[i] };
        p[i] = num / (1.0 + e[i]);
    }
    p
}

/// `e^x` for `x ≤ 0` (NaN gives NaN) to within a few units in the last place, for a group of
/// rows, with no branch and no call so that it vectorizes. The range reduction is the classic
/// one (Cody and Waite): `x = n ln 2 + r` with `|r| ≤ ln 2 / 2`, `e^r` by its Taylor series to
/// degree 13 (truncation error below 1e-17 relative, evaluated by Estrin's scheme), times `2^n`
/// built in the exponent bits.
/// Results below `e^-708` (under 1e-307, where `2^n` would be subnormal) are flushed to zero.
#[inline(always)]
fn exp_nonpositive(x: [f64; LANES]) -> [f64; LANES] {
    let mut y = [0.0; LANES];
    for i in 0..LANES {
        y[i] = exp_nonpositive_1(x[i]);
    }
    y
}

#[inline(always)]
fn exp_nonpositive_1(x: f64) -> f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HI` is exact for |n| < 2^11.
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Adding 1.5 · 2^52 rounds to an integer held in the low bits of the mantissa.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // Not `x.max(-708.0)`: that turns NaN into -708.
    let clamped = if x < -708.0 { -708.0 } else { x };
    let t = clamped * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Taylor coefficients 1/k!, by Estrin's scheme: pairs, then pairs of pairs, ... (depth 4
    // instead of Horner's 13 dependent steps, so that a group's latency does not bound the
    // loop).
    const C: [f64; 14] = [
        1.0,
        1.0,
        0.5,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = C[0] + C[1] * r;
    let q1 = C[2] + C[3] * r;
    let q2 = C[4] + C[5] * r;
    let q3 = C[6] + C[7] * r;
    let q4 = C[8] + C[9] * r;
    let q5 = C[10] + C[11] * r;
    let q6 = C[12] + C[13] * r;
    let s0 = q0 + q1 * r2;
    let s1 = q2 + q3 * r2;
    let s2 = q4 + q5 * r2;
    let t0 = s0 + s1 * r4;
    let t1 = s2 + q6 * r4;
    let p = t0 + t1 * r8;
    // n is in [-1022, 0]: its two's complement sits in the low bits of t.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i64;
    let scale = f64::from_bits(((n_bits + 1023) as u64) << 52);
    let y = p * scale;
    if x < -708.0 { 0.0 } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::simd::Simd;

    #[test]
    fn the_vectorizable_exp_agrees_with_the_library_exp() {
        let mut worst = 0.0f64;
        let mut x = 0.0;
        while x > -720.0 {
            let (got, want) = (exp_nonpositive_1(x), x.exp());
            if x >= -708.0 {
                worst = worst.max(((got - want) / want).abs());
            } else {
                assert!(got == 0.0 && want < 1e-307, "{x}");
            }
            x -= 0.013_7;
        }
        assert!(worst < 4.0 * f64::EPSILON, "largest relative error {worst:e}");
        assert_eq!(exp_nonpositive_1(0.0), 1.0);
        assert_eq!(exp_nonpositive_1(-0.0), 1.0);
        assert!(exp_nonpositive_1(f64::NAN).is_nan());
        assert_eq!(exp_nonpositive_1(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn sigmoid_matches_the_textbook_formula() {
        // z = 1.5 → 1/(1+e^-1.5) = 0.8175744761936437 (as the logistic module's test).
        let p = sigmoid([1.5, -1.5, 0.0, -800.0, 800.0, f64::NAN, -0.0, 1e-300]);
        assert!((p[0] - 0.817_574_476_193_643_7).abs() < 1e-15);
        assert!((p[1] - (1.0 - 0.817_574_476_193_643_7)).abs() < 1e-15);
        assert_eq!(p[2], 0.5);
        assert_eq!(p[3], 0.0);
        assert_eq!(p[4], 1.0);
        assert!(p[5].is_nan());
        assert_eq!(p[6], 0.5);
        assert_eq!(p[7], 0.5);
    }

    /// Every level, every block length 1..=BLOCK_ROWS and every link: the same bits for the
    /// same row, and the padding lanes never leak into the rows written.
    #[test]
    fn every_level_and_block_length_gives_the_same_bits_per_row() {
        let d = 5;
        let rows: Vec<f64> = (0..BLOCK_ROWS * d)
            .map(|i| ((i * 7919 % 1013) as f64 - 500.0) / 37.0)
            .collect();
        let weights: Vec<f64> = (0..3 * d).map(|i| (i as f64 - 7.0) / 3.0).collect();
        for (coef, intercept, link) in [
            (&weights[..d], &[0.25][..], Link::Logistic),
            (&weights[..d], &[-1.5][..], Link::Identity),
            (&weights[..], &[0.1, -0.2, 0.3][..], Link::Softmax),
        ] {
            let kernel = LinearKernel::from_score_rows(coef, intercept, link).unwrap();
            let k_out = kernel.n_outputs();
            let mut want: Option<Vec<u64>> = None;
            for simd in Simd::available() {
                let level = simd.level();
                let mut scratch = vec![f64::NAN; kernel.scratch_len()];
                let mut all = Vec::new();
                // Rows 0..BLOCK_ROWS in blocks of every length from 1 to BLOCK_ROWS.
                for len in [1, 3, 7, 8, 9, 63, BLOCK_ROWS] {
                    let mut got = Vec::new();
                    for start in (0..BLOCK_ROWS).step_by(len) {
                        let end = (start + len).min(BLOCK_ROWS);
                        let x = super::super::RowMajor {
                            data: &rows[start * d..end * d],
                            d,
                            n: end - start,
                        };
                        let mut out = vec![0.0; (end - start) * k_out];
                        kernel.predict_into(level, &x, &mut scratch, &mut out);
                        got.extend(out.iter().map(|v| v.to_bits()));
                    }
                    all.push(got);
                }
                for got in &all[1..] {
                    assert_eq!(got, &all[0], "{link:?} {simd:?}");
                }
                match &want {
                    None => want = Some(all[0].clone()),
                    Some(w) => assert_eq!(w, &all[0], "{link:?}: {simd:?} differs from the baseline"),
                }
            }
        }
    }
}
