//! Linear models (logistic regression, least squares) compiled for batch prediction.
//!
//! A block of rows arrives feature-major (one contiguous run of values per feature), so the
//! scores are built with one multiply-add pass per feature over the whole block: contiguous
//! loads and stores that the compiler vectorizes, with no per-row dot product to reduce. Each
//! row's score is still `Σ_j x_j w_j` summed in feature order, then `+ b`, whatever the batch
//! size, so the result does not depend on how rows are blocked.
//!
//! From a frame, the preprocessing is fused into that pass: each feature's scaling is folded
//! into its weight and a one-hot field adds the weight of its category, reading the frame's
//! columns directly (the division per value of standard scaling was the largest cost of the
//! unfused block path).

use std::ops::Range;

use super::Rows;
use crate::error::Result;
use crate::estimator::{LinearClassifier, LinearRegressor};
use crate::frame::Frame;
use crate::preprocess::Preprocessor;

/// What the scores become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
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

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Values per row: 2 for binary, the number of classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        match self.link {
            Link::Identity => 1,
            Link::Logistic => 2,
            Link::Softmax => self.n_scores,
        }
    }

    /// Scratch values [`LinearKernel::predict_into`] needs for `n` rows.
    pub(crate) fn scratch_len(&self, n: usize) -> usize {
        n * self.n_scores
    }

    /// Writes the predictions for the rows of `x` into `out` (`n × n_outputs`, row-major),
    /// using `z` (at least [`LinearKernel::scratch_len`] values) for the scores.
    pub(crate) fn predict_into<X: Rows>(&self, x: &X, z: &mut [f64], out: &mut [f64]) {
        let n = x.n_rows();
        let k = self.n_scores;
        let z = &mut z[..n * k];
        // Score-major: z[c * n + r].
        z.fill(0.0);
        for j in 0..self.n_features {
            let w = &self.weights[j * k..(j + 1) * k];
            for (c, &wc) in w.iter().enumerate() {
                x.axpy(j, wc, &mut z[c * n..(c + 1) * n]);
            }
        }
        self.finish(z, out);
    }

    /// Preprocesses and predicts the rows `rows` of `frame` in one pass over its columns
    /// ([`Preprocessor::linear_scores`]): no design matrix, no division per value.
    pub(crate) fn predict_frame_rows(
        &self,
        pre: &Preprocessor,
        frame: &Frame,
        index: &[usize],
        rows: Range<usize>,
        z: &mut [f64],
        out: &mut [f64],
    ) -> Result<()> {
        let z = &mut z[..rows.len() * self.n_scores];
        z.fill(0.0);
        pre.linear_scores(frame, index, rows, &self.weights, self.n_scores, z)?;
        self.finish(z, out);
        Ok(())
    }

    /// Adds the intercepts to the scores `z` (score-major) and applies the link into `out`.
    fn finish(&self, z: &mut [f64], out: &mut [f64]) {
        let k = self.n_scores;
        let n = z.len() / k;
        for (c, &b) in self.intercept.iter().enumerate() {
            z[c * n..(c + 1) * n].iter_mut().for_each(|v| *v += b);
        }
        match self.link {
            Link::Identity => out[..n].copy_from_slice(&z[..n]),
            Link::Logistic => {
                for (o, &zr) in out.chunks_exact_mut(2).zip(z.iter()) {
                    let p = sigmoid(zr);
                    o[0] = 1.0 - p;
                    o[1] = p;
                }
            }
            Link::Softmax => {
                for (r, o) in out.chunks_exact_mut(k).take(n).enumerate() {
                    for (c, v) in o.iter_mut().enumerate() {
                        *v = z[c * n + r];
                    }
                    // As LinearClassifier::predict_proba: subtract the max, exponentiate,
                    // divide by the sum (summed in class order).
                    let max = o.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    o.iter_mut().for_each(|v| *v = (*v - max).exp());
                    let sum: f64 = o.iter().sum();
                    o.iter_mut().for_each(|v| *v /= sum);
                }
            }
        }
    }
}

/// The logistic function, as [`LinearClassifier::predict_proba`] defines it (`1 / (1 + e^-z)`
/// for `z ≥ 0`, `e^z / (1 + e^z)` below, so that nothing overflows), computed without a branch
/// on the sign of `z` (half of a batch's rows would mispredict it) and with [`exp_nonpositive`]
/// in place of `f64::exp`, which the compiler cannot vectorize.
#[inline(always)]
fn sigmoid(z: f64) -> f64 {
    let e = exp_nonpositive(-z.abs());
    let positive = 1.0 / (1.0 + e);
    let negative = e / (1.0 + e);
    if z >= 0.0 { positive } else { negative }
}

/// `e^x` for `x ≤ 0` (NaN gives NaN) to within a few units in the last place, with no branch
/// and no call, so that a loop over rows vectorizes. The range reduction is the classic one
/// (Cody and Waite): `x = n ln 2 + r` with `|r| ≤ ln 2 / 2`, `e^r` by its Taylor series to
/// degree 13 (truncation error below 1e-17 relative), times `2^n` built in the exponent bits.
/// Results below `e^-708` (under 1e-307, where `2^n` would be subnormal) are flushed to zero.
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
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
    // Taylor coefficients 1/k!, Horner from degree 13 down.
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // n is in [-1022, 0]: its two's complement sits in the low bits of t.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i64;
    let scale = f64::from_bits(((n_bits + 1023) as u64) << 52);
    let y = p * scale;
    if x < -708.0 { 0.0 } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectorizable_exp_agrees_with_the_library_exp() {
        let mut worst = 0.0f64;
        let mut x = 0.0;
        while x > -720.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            if x >= -708.0 {
                worst = worst.max(((got - want) / want).abs());
            } else {
                assert!(got == 0.0 && want < 1e-307, "{x}");
            }
            x -= 0.013_7;
        }
        assert!(worst < 4.0 * f64::EPSILON, "largest relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn sigmoid_matches_the_textbook_formula() {
        // z = 1.5 → 1/(1+e^-1.5) = 0.8175744761936437 (as the logistic module's test).
        assert!((sigmoid(1.5) - 0.817_574_476_193_643_7).abs() < 1e-15);
        assert!((sigmoid(-1.5) - (1.0 - 0.817_574_476_193_643_7)).abs() < 1e-15);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
    }
}
