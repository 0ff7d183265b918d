//! Ridge, lasso and elastic net against their closed forms and optimality conditions, computed
//! here by hand rather than by the solvers under test (Cholesky, coordinate descent).

use ml_core::native::Fitted;
use ml_core::{CsvTable, Estimator, InferOptions, NativeModel, ReadOptions};

fn fit(name: &str, csv: &str, params: &[(&str, &str)]) -> (Vec<f64>, f64) {
    let table = CsvTable::read(csv.as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let frame = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let model: NativeModel = Estimator::from_name(name, &params)
        .unwrap()
        .fit(&frame, "y")
        .unwrap();
    let Fitted::LinearRegression(m) = model.fitted() else {
        panic!("{name} is not a linear regressor")
    };
    (m.coefficients.to_vec(), m.intercept)
}

/// Rows (a, b, y): y = 2a − 3b + 1 plus a small disturbance, on a non-orthogonal design.
const ROWS: [(f64, f64, f64); 7] = [
    (0.0, 0.0, 1.1),
    (1.0, 0.0, 2.8),
    (0.0, 1.0, -2.1),
    (2.0, 1.0, 2.3),
    (3.0, 5.0, -8.2),
    (1.0, 4.0, -8.7),
    (4.0, 2.0, 3.2),
];

fn csv() -> String {
    let mut s = String::from("a,b,y\n");
    for (a, b, y) in ROWS {
        s.push_str(&format!("{a},{b},{y}\n"));
    }
    s
}

/// Centered columns and means: (a, b, y) − mean.
fn centered() -> ([Vec<f64>; 3], [f64; 3]) {
    let n = ROWS.len() as f64;
    let mean = [
        ROWS.iter().map(|r| r.0).sum::<f64>() / n,
        ROWS.iter().map(|r| r.1).sum::<f64>() / n,
        ROWS.iter().map(|r| r.2).sum::<f64>() / n,
    ];
    let cols = [
        ROWS.iter().map(|r| r.0 - mean[0]).collect(),
        ROWS.iter().map(|r| r.1 - mean[1]).collect(),
        ROWS.iter().map(|r| r.2 - mean[2]).collect(),
    ];
    (cols, mean)
}

fn dot(u: &[f64], v: &[f64]) -> f64 {
    u.iter().zip(v).map(|(a, b)| a * b).sum()
}

#[test]
fn ridge_matches_its_closed_form() {
    // Unpenalized intercept: w = (XcᵀXc + αI)⁻¹ Xcᵀyc, b = ȳ − x̄ᵀw, the 2×2 inverse by hand.
    let ([a, b, y], mean) = centered();
    for alpha in [0.0, 0.5, 3.0, 40.0] {
        let (p, q, r) = (dot(&a, &a) + alpha, dot(&a, &b), dot(&b, &b) + alpha);
        let (u, v) = (dot(&a, &y), dot(&b, &y));
        let det = p * r - q * q;
        let w = [(r * u - q * v) / det, (p * v - q * u) / det];
        let intercept = mean[2] - mean[0] * w[0] - mean[1] * w[1];
        let (coef, b0) = fit("ridge", &csv(), &[("alpha", &alpha.to_string())]);
        for j in 0..2 {
            assert!((coef[j] - w[j]).abs() < 1e-9, "alpha {alpha}: {coef:?} vs {w:?}");
        }
        assert!(
            (b0 - intercept).abs() < 1e-9,
            "alpha {alpha}: {b0} vs {intercept}"
        );
    }
}

#[test]
fn one_feature_elastic_net_is_soft_thresholding() {
    // With one feature the minimizer of ‖yc − w·xc‖²/(2n) + α·ρ·|w| + α(1−ρ)/2·w² is
    // S(xcᵀyc/n, αρ) / (xcᵀxc/n + α(1−ρ)), S the soft-threshold.
    let ([a, _, y], mean) = centered();
    let n = ROWS.len() as f64;
    let mut text = String::from("a,y\n");
    for (x, _, t) in ROWS {
        text.push_str(&format!("{x},{t}\n"));
    }
    let soft = |z: f64, g: f64| z.signum() * (z.abs() - g).max(0.0);
    for (name, alpha, rho) in [
        ("elastic_net", 0.5, 0.5),
        ("elastic_net", 2.0, 0.2),
        ("lasso", 0.7, 1.0),
        ("lasso", 50.0, 1.0),
    ] {
        let w = soft(dot(&a, &y) / n, alpha * rho) / (dot(&a, &a) / n + alpha * (1.0 - rho));
        let mut params = vec![("alpha", alpha.to_string()), ("tol", "1e-12".to_string())];
        if name == "elastic_net" {
            params.push(("l1_ratio", rho.to_string()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (coef, b0) = fit(name, &text, &params);
        assert!(
            (coef[0] - w).abs() < 1e-9,
            "{name} {alpha} {rho}: {} vs {w}",
            coef[0]
        );
        assert!(
            (b0 - (mean[2] - mean[0] * w)).abs() < 1e-9,
            "{name}: intercept {b0}"
        );
    }
}

#[test]
fn two_feature_elastic_net_meets_its_optimality_conditions() {
    // KKT: for wⱼ ≠ 0, xcⱼᵀ(yc − Xc w)/n = αρ·sign(wⱼ) + α(1−ρ)wⱼ; for wⱼ = 0, |xcⱼᵀyc…/n| ≤ αρ.
    let ([a, b, y], _) = centered();
    let n = ROWS.len() as f64;
    for (alpha, rho) in [(0.1, 0.7), (1.0, 0.5), (3.0, 0.9)] {
        let (w, _) = fit(
            "elastic_net",
            &csv(),
            &[
                ("alpha", &alpha.to_string()),
                ("l1_ratio", &rho.to_string()),
                ("tol", "1e-13"),
                ("max_iter", "100000"),
            ],
        );
        let residual: Vec<f64> = (0..ROWS.len())
            .map(|i| y[i] - w[0] * a[i] - w[1] * b[i])
            .collect();
        for (j, x) in [&a, &b].into_iter().enumerate() {
            let g = dot(x, &residual) / n;
            if w[j] != 0.0 {
                let want = alpha * rho * w[j].signum() + alpha * (1.0 - rho) * w[j];
                assert!(
                    (g - want).abs() < 1e-7,
                    "alpha {alpha} rho {rho} w{j}: {g} vs {want}"
                );
            } else {
                assert!(
                    g.abs() <= alpha * rho + 1e-9,
                    "alpha {alpha} rho {rho} w{j} = 0: {g}"
                );
            }
        }
    }
}
