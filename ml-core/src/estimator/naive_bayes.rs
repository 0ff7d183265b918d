//! Gaussian naive Bayes, as scikit-learn's `GaussianNB`.

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn default_var_smoothing() -> f64 {
    1e-9
}

/// Parameters of Gaussian naive Bayes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianNbParams {
    /// Added to every variance, as a share of the largest feature variance, for stability.
    /// Default 1e-9 (scikit-learn's).
    #[serde(default = "default_var_smoothing")]
    pub var_smoothing: f64,
}

impl Default for GaussianNbParams {
    fn default() -> Self {
        GaussianNbParams {
            var_smoothing: default_var_smoothing(),
        }
    }
}

/// A fitted Gaussian naive Bayes classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaussianNb {
    /// Class priors (training frequencies).
    pub priors: Array1<f64>,
    /// Per-class feature means, `k × d`.
    pub means: Array2<f64>,
    /// Per-class feature variances (smoothed), `k × d`.
    pub variances: Array2<f64>,
}

impl GaussianNbParams {
    /// Checks that `var_smoothing` is finite and ≥ 0.
    pub fn check(&self) -> Result<()> {
        if !(self.var_smoothing.is_finite() && self.var_smoothing >= 0.0) {
            return Err(Error::invalid_parameter(
                "var_smoothing",
                format!("must be a finite number ≥ 0, got {}", self.var_smoothing),
            ));
        }
        Ok(())
    }

    /// Fits class priors, means and variances (population variance, as scikit-learn).
    pub fn fit(&self, x: &Array2<f64>, y: &[usize], n_classes: usize) -> Result<GaussianNb> {
        self.check()?;
        let (n, d) = x.dim();
        let mut counts = vec![0.0; n_classes];
        let mut means = Array2::<f64>::zeros((n_classes, d));
        for (r, &c) in y.iter().enumerate() {
            counts[c] += 1.0;
            means.row_mut(c).scaled_add(1.0, &x.row(r));
        }
        if let Some(c) = counts.iter().position(|&k| k == 0.0) {
            return Err(Error::Training {
                reason: format!("class {c} has no training rows; every class needs examples"),
            });
        }
        for (c, mut row) in means.rows_mut().into_iter().enumerate() {
            row.mapv_inplace(|v| v / counts[c]);
        }
        let mut variances = Array2::<f64>::zeros((n_classes, d));
        for (r, &c) in y.iter().enumerate() {
            for j in 0..d {
                let dv = x[[r, j]] - means[[c, j]];
                variances[[c, j]] += dv * dv;
            }
        }
        for (c, mut row) in variances.rows_mut().into_iter().enumerate() {
            row.mapv_inplace(|v| v / counts[c]);
        }
        // scikit-learn: epsilon = var_smoothing × the largest variance of any feature overall.
        let mut max_var = 0.0f64;
        for j in 0..d {
            let col = x.column(j);
            let mean = col.sum() / n as f64;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            max_var = max_var.max(var);
        }
        let epsilon = self.var_smoothing * max_var;
        variances.mapv_inplace(|v| v + epsilon);
        if variances.iter().any(|&v| v <= 0.0) {
            return Err(Error::Training {
                reason: "a feature is constant within a class and var_smoothing is 0; set var_smoothing > 0"
                    .into(),
            });
        }
        Ok(GaussianNb {
            priors: counts.iter().map(|c| c / n as f64).collect(),
            means,
            variances,
        })
    }
}

impl GaussianNb {
    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.means.ncols()
    }

    /// Class probabilities: the normalized product of prior and per-feature normal densities
    /// (computed in log space).
    pub fn predict_proba(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        if x.ncols() != self.n_features() {
            return Err(Error::Internal(format!(
                "design matrix has {} columns, model has {} features",
                x.ncols(),
                self.n_features()
            )));
        }
        let k = self.priors.len();
        let log_norm: Vec<f64> = (0..k)
            .map(|c| {
                self.priors[c].ln()
                    - 0.5
                        * self
                            .variances
                            .row(c)
                            .iter()
                            .map(|v| (2.0 * std::f64::consts::PI * v).ln())
                            .sum::<f64>()
            })
            .collect();
        let mut out = Array2::<f64>::zeros((x.nrows(), k));
        for (r, row) in x.rows().into_iter().enumerate() {
            for c in 0..k {
                let mut s = log_norm[c];
                for ((v, m), var) in row.iter().zip(self.means.row(c)).zip(self.variances.row(c)) {
                    s -= 0.5 * (v - m) * (v - m) / var;
                }
                out[[r, c]] = s;
            }
            let mut o = out.row_mut(r);
            let max = o.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            o.mapv_inplace(|v| (v - max).exp());
            let sum = o.sum();
            o.mapv_inplace(|v| v / sum);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn probabilities_follow_the_gaussian_densities() {
        // Class 0: x ∈ {0, 2} → mean 1, var 1; class 1: x ∈ {4, 6} → mean 5, var 1.
        let x = array![[0.0], [2.0], [4.0], [6.0]];
        let m = GaussianNbParams { var_smoothing: 0.0 }
            .fit(&x, &[0, 0, 1, 1], 2)
            .unwrap();
        assert_eq!(m.means, array![[1.0], [5.0]]);
        assert_eq!(m.variances, array![[1.0], [1.0]]);
        // At x = 2: log-odds = -(2-1)²/2 + (2-5)²/2 = 4 → p(0) = 1 / (1 + e^-4).
        let p = m.predict_proba(array![[2.0], [3.0]].view()).unwrap();
        assert!((p[[0, 0]] - 1.0 / (1.0 + (-4.0f64).exp())).abs() < 1e-12, "{p}");
        // Midway the classes tie.
        assert!((p[[1, 0]] - 0.5).abs() < 1e-12);
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12);
        }
    }
}
