//! Linear regression, ridge, lasso and elastic net, with scikit-learn's objectives and defaults.
//!
//! Features are used as the preprocessor gives them (numeric fields unscaled, categoricals
//! one-hot), as scikit-learn's estimators do, so the coefficients are comparable to theirs.
//! The intercept is fitted by centering `X` and `y` and is never penalized.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::logistic::cholesky_solve;
use crate::error::{Error, Result};

fn default_alpha() -> f64 {
    1.0
}
fn default_l1_ratio() -> f64 {
    0.5
}
fn default_max_iter() -> usize {
    1000
}
fn default_tol() -> f64 {
    1e-4
}

/// Parameters of ordinary least squares (none are needed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearRegressionParams {}

/// Parameters of ridge regression: minimizes `‖y − Xw − b‖² + alpha‖w‖²` (scikit-learn's
/// `Ridge`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RidgeParams {
    /// Penalty strength, ≥ 0. Default 1.0 (scikit-learn's).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

impl Default for RidgeParams {
    fn default() -> Self {
        RidgeParams {
            alpha: default_alpha(),
        }
    }
}

/// Parameters of the elastic net: minimizes
/// `‖y − Xw − b‖² / (2n) + alpha·l1_ratio·‖w‖₁ + alpha·(1 − l1_ratio)/2·‖w‖²` by coordinate
/// descent (scikit-learn's `ElasticNet`; `lasso` is the same with `l1_ratio = 1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticNetParams {
    /// Penalty strength, ≥ 0. Default 1.0 (scikit-learn's).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Share of the L1 penalty in `[0, 1]`. Default 0.5 (scikit-learn's `ElasticNet`); the
    /// `lasso` estimator fixes it at 1.
    #[serde(default = "default_l1_ratio")]
    pub l1_ratio: f64,
    /// Maximum passes over the coefficients. Default 1000 (scikit-learn's).
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Stop when the largest coefficient change in a pass is below `tol` times the largest
    /// coefficient. Default 1e-4 (scikit-learn's `tol`).
    #[serde(default = "default_tol")]
    pub tol: f64,
}

impl Default for ElasticNetParams {
    fn default() -> Self {
        ElasticNetParams {
            alpha: default_alpha(),
            l1_ratio: default_l1_ratio(),
            max_iter: default_max_iter(),
            tol: default_tol(),
        }
    }
}

/// A fitted linear regressor: `x · coefficients + intercept`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearRegressor {
    /// One weight per feature.
    pub coefficients: Array1<f64>,
    /// The intercept.
    pub intercept: f64,
}

impl LinearRegressor {
    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.coefficients.len()
    }

    /// Predictions for the rows of `x`, as an `n × 1` matrix.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        if x.ncols() != self.n_features() {
            return Err(Error::Internal(format!(
                "design matrix has {} columns, model has {} features",
                x.ncols(),
                self.n_features()
            )));
        }
        let y = x.dot(&self.coefficients) + self.intercept;
        Ok(y.insert_axis(Axis(1)))
    }
}

fn check_alpha(alpha: f64) -> Result<()> {
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(Error::invalid_parameter(
            "alpha",
            format!("must be a finite number ≥ 0, got {alpha}"),
        ));
    }
    Ok(())
}

/// `x` and `y` centered, with the means removed: `(xc, yc, x_mean, y_mean)`.
type Centered = (Array2<f64>, Array1<f64>, Array1<f64>, f64);

/// Centers the columns of `x` and `y`, returning the means.
fn center(x: &Array2<f64>, y: &[f64]) -> Result<Centered> {
    if x.nrows() != y.len() || y.is_empty() {
        return Err(Error::Training {
            reason: format!("cannot fit on {} rows with {} targets", x.nrows(), y.len()),
        });
    }
    if let Some(r) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::Training {
            reason: format!("target value in row {r} is not a finite number"),
        });
    }
    let x_mean = x
        .mean_axis(Axis(0))
        .ok_or_else(|| Error::Internal("empty design matrix".into()))?;
    let y_mean = y.iter().sum::<f64>() / y.len() as f64;
    let xc = x - &x_mean.view().insert_axis(Axis(0));
    let yc: Array1<f64> = y.iter().map(|v| v - y_mean).collect();
    Ok((xc, yc, x_mean, y_mean))
}

/// Solves `(XcᵀXc + alpha I) w = Xcᵀyc`. With `alpha = 0` and collinear columns (one-hot
/// categories always are, once centered) the system is singular; a vanishing ridge is then
/// added, which converges to the minimum-norm least-squares solution scikit-learn's `lstsq`
/// returns.
fn normal_equations(x: &Array2<f64>, y: &[f64], alpha: f64) -> Result<LinearRegressor> {
    let (xc, yc, x_mean, y_mean) = center(x, y)?;
    let gram = xc.t().dot(&xc);
    let rhs = xc.t().dot(&yc);
    let d = gram.nrows();
    let scale = (0..d).map(|i| gram[[i, i]]).fold(0.0, f64::max).max(1e-300);
    let mut w = None;
    for extra in [0.0, 1e-12, 1e-10, 1e-8] {
        let mut a = gram.clone();
        for i in 0..d {
            a[[i, i]] += alpha + extra * scale;
        }
        if let Ok(sol) = cholesky_solve(a, &rhs) {
            w = Some(sol);
            break;
        }
    }
    let w = w.ok_or_else(|| Error::Training {
        reason: "the least-squares system is singular even with a vanishing ridge; use ridge with a positive alpha".into(),
    })?;
    let intercept = y_mean - x_mean.dot(&w);
    Ok(LinearRegressor {
        coefficients: w,
        intercept,
    })
}

impl LinearRegressionParams {
    /// Nothing to check.
    pub fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Ordinary least squares through the normal equations (Cholesky).
    pub fn fit(&self, x: &Array2<f64>, y: &[f64]) -> Result<LinearRegressor> {
        normal_equations(x, y, 0.0)
    }
}

impl RidgeParams {
    /// Checks that `alpha` is finite and ≥ 0.
    pub fn check(&self) -> Result<()> {
        check_alpha(self.alpha)
    }

    /// Ridge regression in closed form.
    pub fn fit(&self, x: &Array2<f64>, y: &[f64]) -> Result<LinearRegressor> {
        self.check()?;
        normal_equations(x, y, self.alpha)
    }
}

impl ElasticNetParams {
    /// Checks every range.
    pub fn check(&self) -> Result<()> {
        check_alpha(self.alpha)?;
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return Err(Error::invalid_parameter(
                "l1_ratio",
                format!("must be in [0, 1], got {}", self.l1_ratio),
            ));
        }
        if self.max_iter == 0 {
            return Err(Error::invalid_parameter("max_iter", "must be at least 1"));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(Error::invalid_parameter(
                "tol",
                format!("must be a positive number, got {}", self.tol),
            ));
        }
        Ok(())
    }

    /// Cyclic coordinate descent with soft thresholding (Friedman, Hastie & Tibshirani 2010).
    pub fn fit(&self, x: &Array2<f64>, y: &[f64]) -> Result<LinearRegressor> {
        self.check()?;
        let (xc, yc, x_mean, y_mean) = center(x, y)?;
        let (n, d) = xc.dim();
        let nf = n as f64;
        // Columns contiguous: each coordinate step reads one column.
        let cols = xc.t().as_standard_layout().into_owned();
        let norms: Vec<f64> = cols.rows().into_iter().map(|c| c.dot(&c) / nf).collect();
        let l1 = self.alpha * self.l1_ratio;
        let l2 = self.alpha * (1.0 - self.l1_ratio);
        let mut w = Array1::<f64>::zeros(d);
        let mut resid = yc.clone();
        for _ in 0..self.max_iter {
            let (mut max_change, mut max_w) = (0.0f64, 0.0f64);
            for j in 0..d {
                if norms[j] == 0.0 {
                    continue;
                }
                let col = cols.row(j);
                let old = w[j];
                let rho = col.dot(&resid) / nf + norms[j] * old;
                let new = soft_threshold(rho, l1) / (norms[j] + l2);
                if new != old {
                    resid.scaled_add(old - new, &col);
                    w[j] = new;
                }
                max_change = max_change.max((new - old).abs());
                max_w = max_w.max(new.abs());
            }
            if max_w == 0.0 || max_change <= self.tol * max_w {
                break;
            }
        }
        let intercept = y_mean - x_mean.dot(&w);
        Ok(LinearRegressor {
            coefficients: w,
            intercept,
        })
    }
}

fn soft_threshold(z: f64, t: f64) -> f64 {
    if z > t {
        z - t
    } else if z < -t {
        z + t
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    // The Cholesky solver adds a 1e-12 relative ridge for stability, so closed forms are met
    // to ~1e-12 relative, checked at 1e-9.

    /// Two centered, orthogonal columns with `xᵀx / n = 1`, and y = 3·x1 + 0.5·x2 + 10.
    fn orthogonal() -> (Array2<f64>, Vec<f64>) {
        let x = array![[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]];
        let y = x
            .rows()
            .into_iter()
            .map(|r| 3.0 * r[0] + 0.5 * r[1] + 10.0)
            .collect();
        (x, y)
    }

    #[test]
    fn least_squares_recovers_exact_coefficients() {
        let (x, y) = orthogonal();
        let m = LinearRegressionParams {}.fit(&x, &y).unwrap();
        assert!((m.coefficients[0] - 3.0).abs() < 1e-9);
        assert!((m.coefficients[1] - 0.5).abs() < 1e-9);
        assert!((m.intercept - 10.0).abs() < 1e-9);
    }

    #[test]
    fn ridge_matches_its_closed_form() {
        // XᵀX = 4I, Xᵀy = (12, 2): w = Xᵀy / (4 + alpha) = (1.5, 0.25) at alpha 4.
        let (x, y) = orthogonal();
        let m = RidgeParams { alpha: 4.0 }.fit(&x, &y).unwrap();
        assert!((m.coefficients[0] - 1.5).abs() < 1e-9, "{m:?}");
        assert!((m.coefficients[1] - 0.25).abs() < 1e-9, "{m:?}");
        assert!((m.intercept - 10.0).abs() < 1e-9);
    }

    #[test]
    fn lasso_and_elastic_net_soft_threshold_orthogonal_designs() {
        // Orthonormal (xᵀx/n = 1) columns: w_j = S(xⱼᵀy/n, alpha·l1) / (1 + alpha·(1 − l1)).
        // xᵀy/n = (3, 0.5).
        let (x, y) = orthogonal();
        let lasso = ElasticNetParams {
            alpha: 1.0,
            l1_ratio: 1.0,
            tol: 1e-12,
            ..Default::default()
        }
        .fit(&x, &y)
        .unwrap();
        assert!((lasso.coefficients[0] - 2.0).abs() < 1e-12, "{lasso:?}");
        assert_eq!(lasso.coefficients[1], 0.0);
        let enet = ElasticNetParams {
            alpha: 1.0,
            l1_ratio: 0.5,
            tol: 1e-12,
            ..Default::default()
        }
        .fit(&x, &y)
        .unwrap();
        assert!((enet.coefficients[0] - 2.5 / 1.5).abs() < 1e-12, "{enet:?}");
        assert_eq!(enet.coefficients[1], 0.0);
        assert!((enet.intercept - 10.0).abs() < 1e-12);
    }

    #[test]
    fn collinear_one_hot_columns_still_fit() {
        // Two one-hot columns that sum to 1 are collinear with the intercept.
        let x = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]];
        let y = [1.0, 1.0, 5.0, 5.0];
        let m = LinearRegressionParams {}.fit(&x, &y).unwrap();
        let p = m.predict(x.view()).unwrap();
        for (got, want) in p.iter().zip(y) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        assert!(
            RidgeParams { alpha: -1.0 }
                .check()
                .unwrap_err()
                .to_string()
                .contains("alpha")
        );
        let p = ElasticNetParams {
            l1_ratio: 2.0,
            ..Default::default()
        };
        assert!(p.check().unwrap_err().to_string().contains("l1_ratio"));
    }
}

/// Parameters of the lasso: the elastic net with `l1_ratio = 1` (scikit-learn's `Lasso`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LassoParams {
    /// Penalty strength, ≥ 0. Default 1.0 (scikit-learn's).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Maximum passes over the coefficients. Default 1000.
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Relative coefficient-change tolerance. Default 1e-4.
    #[serde(default = "default_tol")]
    pub tol: f64,
}

impl Default for LassoParams {
    fn default() -> Self {
        LassoParams {
            alpha: default_alpha(),
            max_iter: default_max_iter(),
            tol: default_tol(),
        }
    }
}

impl LassoParams {
    /// The equivalent elastic net.
    pub fn elastic_net(&self) -> ElasticNetParams {
        ElasticNetParams {
            alpha: self.alpha,
            l1_ratio: 1.0,
            max_iter: self.max_iter,
            tol: self.tol,
        }
    }
}
