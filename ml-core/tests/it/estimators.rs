//! Linear models, k-nearest neighbours and naive Bayes end to end: records in, answers out,
//! checked against closed-form values.

use ml_core::native::Fitted;
use ml_core::{CsvTable, Estimator, Frame, InferOptions, Model, NativeModel, ReadOptions};

fn fit(name: &str, csv: &str, params: &[(&str, &str)]) -> NativeModel {
    let table = CsvTable::read(csv.as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let frame = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Estimator::from_name(name, &params)
        .unwrap()
        .fit(&frame, "y")
        .unwrap()
}

fn frame(model: &NativeModel, csv: &str) -> Frame {
    Frame::from_csv(csv.as_bytes(), model.schema().clone(), &ReadOptions::default()).unwrap()
}

/// y = 2·a − 3·b + 1 exactly, on a design that is not orthogonal.
const LINEAR: &str = "a,b,y\n0,0,1\n1,0,3\n0,1,-2\n2,1,2\n3,5,-8\n1,4,-9\n";

#[test]
fn linear_regression_recovers_exact_coefficients() {
    let model = fit("linear_regression", LINEAR, &[]);
    let Fitted::LinearRegression(m) = model.fitted() else {
        panic!()
    };
    assert!((m.coefficients[0] - 2.0).abs() < 1e-10, "{m:?}");
    assert!((m.coefficients[1] + 3.0).abs() < 1e-10, "{m:?}");
    assert!((m.intercept - 1.0).abs() < 1e-10, "{m:?}");
    let p = model.predict(&frame(&model, "a,b\n10,10\n")).unwrap();
    assert!((p.values().unwrap()[0] + 9.0).abs() < 1e-9);
    assert!(model.output().labels().is_empty());
}

#[test]
fn ridge_and_lasso_shrink_toward_zero_as_alpha_grows() {
    let ols = fit("linear_regression", LINEAR, &[]);
    let ridge = fit("ridge", LINEAR, &[("alpha", "10")]);
    let lasso = fit("lasso", LINEAR, &[("alpha", "100")]);
    let norm = |m: &NativeModel| match m.fitted() {
        Fitted::LinearRegression(m) => m.coefficients.iter().map(|w| w * w).sum::<f64>(),
        _ => panic!(),
    };
    assert!(norm(&ridge) < norm(&ols));
    // alpha above max |xⱼᵀy|/n zeroes every coefficient: the model predicts the mean of y.
    assert_eq!(norm(&lasso), 0.0);
    let p = lasso.predict(&frame(&lasso, "a,b\n7,7\n")).unwrap();
    assert!((p.values().unwrap()[0] - (-13.0 / 6.0)).abs() < 1e-12);
    let enet = fit(
        "elastic_net",
        LINEAR,
        &[("alpha", "0.01"), ("l1_ratio", "0.5"), ("tol", "1e-12")],
    );
    let Fitted::LinearRegression(m) = enet.fitted() else {
        panic!()
    };
    // A tiny penalty stays close to the exact answer.
    assert!((m.coefficients[0] - 2.0).abs() < 0.05, "{m:?}");
}

#[test]
fn k_neighbors_votes_give_probabilities() {
    // Two well separated clusters; neighbours vote.
    let mut csv = String::from("x,y\n");
    for i in 0..10 {
        csv.push_str(&format!("{},a\n", i));
        csv.push_str(&format!("{},b\n", 100 + i));
    }
    let model = fit("k_neighbors_classifier", &csv, &[("n_neighbors", "4")]);
    let p = model.predict(&frame(&model, "x\n3\n104\n")).unwrap();
    assert_eq!(p.label(0), Some("a"));
    assert_eq!(p.label(1), Some("b"));
    for row in p.probabilities().unwrap().rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
    // Regressor: the mean of the 2 nearest targets.
    let reg = fit(
        "k_neighbors_regressor",
        "x,y\n0.5,1\n1.5,3\n10.5,100\n",
        &[("n_neighbors", "2")],
    );
    let v = reg.predict(&frame(&reg, "x\n0.9\n")).unwrap();
    assert!((v.values().unwrap()[0] - 2.0).abs() < 1e-12);
}

#[test]
fn gaussian_nb_probabilities_match_the_densities() {
    // Class a: x ∈ {0, 2} (mean 1, var 1); class b: x ∈ {4, 6} (mean 5, var 1).
    let model = fit(
        "gaussian_nb",
        "x,y\n0,a\n2,a\n4,b\n6,b\n",
        &[("var_smoothing", "0")],
    );
    let p = model.predict(&frame(&model, "x\n2\n")).unwrap();
    let pa = p.probabilities().unwrap()[[0, 0]];
    assert!((pa - 1.0 / (1.0 + (-4.0f64).exp())).abs() < 1e-12, "{pa}");
}

#[test]
fn every_estimator_is_deterministic() {
    let mut csv = String::from("a,b,y\n");
    for i in 0..60 {
        csv.push_str(&format!("{},{},{}\n", i % 7, (i * 13) % 11, i % 2));
    }
    for name in Estimator::NAMES {
        let a = fit(name, &csv, &[]);
        let b = fit(name, &csv, &[]);
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn classifiers_refuse_continuous_targets_and_regressors_take_them() {
    let csv = "x,y\n1,0.5\n2,1.5\n3,2.5\n";
    let table = CsvTable::read(csv.as_bytes(), "t.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let data = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let err = Estimator::from_name("gaussian_nb", &[])
        .unwrap()
        .fit(&data, "y")
        .unwrap_err();
    assert!(err.to_string().contains("looks continuous"), "{err}");
    assert!(
        Estimator::from_name("ridge", &[])
            .unwrap()
            .fit(&data, "y")
            .is_ok()
    );
}
