//! Decision trees and random forests end to end: frames in, probabilities and values out.

use ml_core::native::Fitted;
use ml_core::rng::Rng;
use ml_core::{Column, DataType, Estimator, Field, Frame, Model, ModelArtifact, Schema};

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `n` rows of two uniform features in [0, 1) and a third pure-noise one; the target is given
/// by `label(x0, x1)`.
fn frame(n: usize, seed: u64, mut label: impl FnMut(f64, f64) -> String) -> Frame {
    let mut rng = Rng::new(seed);
    let (mut a, mut b, mut c, mut y) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let (x0, x1) = (rng.uniform(), rng.uniform());
        a.push(x0);
        b.push(x1);
        c.push(rng.uniform());
        y.push(label(x0, x1));
    }
    let mut labels: Vec<String> = y.clone();
    labels.sort();
    labels.dedup();
    let vocab = DataType::categorical(labels.iter().map(String::as_str)).unwrap();
    let codes = y
        .iter()
        .map(|l| labels.iter().position(|v| v == l).unwrap() as u32)
        .collect();
    let schema = Schema::new(vec![
        Field::new("x0", DataType::Float),
        Field::new("x1", DataType::Float),
        Field::new("noise", DataType::Float),
        Field::new("y", vocab),
    ])
    .unwrap();
    Frame::from_columns(
        schema,
        vec![
            Column::Float(a.into()),
            Column::Float(b.into()),
            Column::Float(c.into()),
            Column::Categorical(codes),
        ],
        None,
    )
    .unwrap()
}

fn quadrant(x0: f64, x1: f64) -> String {
    // XOR of two thresholds: no single split helps, two levels separate it exactly.
    if (x0 < 0.5) ^ (x1 < 0.3) { "a" } else { "b" }.to_string()
}

fn accuracy(model: &dyn Model, data: &Frame) -> f64 {
    let (features, _, col, _) = data.split_off("y").unwrap();
    let Column::Categorical(truth) = col else { panic!() };
    let p = model.predict(&features).unwrap();
    let labels = model.output().labels();
    let hits = (0..data.n_rows())
        .filter(|&r| {
            let vocab = data.schema().field("y").unwrap().vocabulary().unwrap();
            p.label(r) == vocab.value(truth[r])
        })
        .count();
    assert_eq!(labels.len(), 2);
    hits as f64 / data.n_rows() as f64
}

fn rows_sum_to_one(model: &dyn Model, data: &Frame) {
    let p = model.predict(data).unwrap();
    for row in p.probabilities().unwrap().rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12, "{row}");
        assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}

#[test]
fn decision_tree_separates_an_xor_problem_exactly() {
    let train = frame(2_000, 1, quadrant);
    let test = frame(2_000, 2, quadrant);
    let model = Estimator::from_name("decision_tree_classifier", &[])
        .unwrap()
        .fit(&train, "y")
        .unwrap();
    assert_eq!(accuracy(&model, &train), 1.0);
    // Thresholds sit at midpoints between training values, so only test points that fall
    // between the two training values nearest a boundary can be misclassified.
    assert!(accuracy(&model, &test) > 0.99, "{}", accuracy(&model, &test));
    rows_sum_to_one(&model, &test);
    let Fitted::TreeEnsemble(t) = model.fitted() else {
        panic!()
    };
    // The noise feature is never needed.
    assert!(t.feature_importances[2] < 0.01, "{:?}", t.feature_importances);
    assert!((t.feature_importances.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn depth_limited_tree_stops_at_max_depth() {
    let train = frame(1_000, 3, quadrant);
    let model = Estimator::from_name("decision_tree_classifier", &params(&[("max_depth", "1")]))
        .unwrap()
        .fit(&train, "y")
        .unwrap();
    let Fitted::TreeEnsemble(t) = model.fitted() else {
        panic!()
    };
    assert_eq!(t.max_depth(), 1);
    assert_eq!(t.n_nodes(), 3);
}

#[test]
fn forest_probabilities_are_mean_leaf_distributions_and_sum_to_one() {
    // A noisy problem: P(a) = x0. The forest's probability should track it.
    let mut rng = Rng::new(9);
    let train = frame(4_000, 4, move |x0, _| {
        if rng.uniform() < x0 { "a" } else { "b" }.to_string()
    });
    let model = Estimator::from_name(
        "random_forest_classifier",
        &params(&[("n_estimators", "50"), ("min_samples_leaf", "50")]),
    )
    .unwrap()
    .fit(&train, "y")
    .unwrap();
    let test = frame(500, 5, |_, _| "a".into());
    let (features, _, _, _) = test.split_off("y").unwrap();
    rows_sum_to_one(&model, &features);
    let p = model.predict(&features).unwrap();
    let pa = p.probabilities().unwrap();
    let x0 = match &features.columns()[0] {
        Column::Float(v) => v.clone(),
        _ => panic!(),
    };
    let mae: f64 = (0..500).map(|r| (pa[[r, 0]] - x0[r]).abs()).sum::<f64>() / 500.0;
    assert!(mae < 0.08, "mean |p(a) - x0| = {mae}");
}

#[test]
fn forest_is_deterministic_under_a_seed_for_any_number_of_threads() {
    let train = frame(1_500, 6, quadrant);
    let fit = |extra: &[(&str, &str)]| {
        let mut p = vec![("n_estimators", "20"), ("max_depth", "6")];
        p.extend_from_slice(extra);
        let model = Estimator::from_name("random_forest_classifier", &params(&p))
            .unwrap()
            .fit(&train, "y")
            .unwrap();
        match model.fitted() {
            Fitted::TreeEnsemble(t) => t.clone(),
            _ => panic!(),
        }
    };
    let one = fit(&[("seed", "3"), ("n_jobs", "1")]);
    let two = fit(&[("seed", "3"), ("n_jobs", "2")]);
    let all = fit(&[("seed", "3")]);
    assert_eq!(one, two);
    assert_eq!(one, all);
    assert_eq!(one.n_trees(), 20);
    assert!(one.max_depth() <= 6);
    let other = fit(&[("seed", "4")]);
    assert_ne!(one, other);
}

#[test]
fn forest_regressor_learns_a_step_and_a_slope() {
    // y = 10·[x0 > 0.5] + 4·x1: a forest gets R² near 1 on fresh data.
    let make = |seed: u64, n: usize| {
        let f = frame(n, seed, |_, _| "a".into());
        let (features, _, _, _) = f.split_off("y").unwrap();
        let (Column::Float(x0), Column::Float(x1)) = (&features.columns()[0], &features.columns()[1]) else {
            panic!()
        };
        let y: Vec<f64> = x0
            .iter()
            .zip(x1.iter())
            .map(|(a, b)| 10.0 * f64::from(u8::from(*a > 0.5)) + 4.0 * b)
            .collect();
        let mut fields = features.schema().fields().to_vec();
        fields.push(Field::new("y", DataType::Float));
        let mut cols = features.columns().to_vec();
        cols.push(Column::Float(y.clone().into()));
        (
            Frame::from_columns(Schema::new(fields).unwrap(), cols, None).unwrap(),
            features,
            y,
        )
    };
    let (train, _, _) = make(7, 3_000);
    let (_, test_x, test_y) = make(8, 1_000);
    let model = Estimator::from_name("random_forest_regressor", &params(&[("n_estimators", "30")]))
        .unwrap()
        .fit(&train, "y")
        .unwrap();
    assert!(model.output().labels().is_empty());
    let p = model.predict(&test_x).unwrap();
    let v = p.values().unwrap().to_vec();
    let m = ml_core::metrics::regression(&test_y, &v).unwrap();
    assert!(m.r2 > 0.98, "{m:?}");
    let Fitted::TreeEnsemble(t) = model.fitted() else {
        panic!()
    };
    // Importances follow the variance each feature explains: the step (var 25) over the slope
    // (var 16/12), noise last.
    let imp = &t.feature_importances;
    assert!(imp[0] > imp[1] && imp[1] > imp[2], "{imp:?}");
}

#[test]
fn forest_survives_a_round_trip_through_an_artifact() {
    let train = frame(800, 10, quadrant);
    let model = Estimator::from_name("random_forest_classifier", &params(&[("n_estimators", "10")]))
        .unwrap()
        .fit(&train, "y")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    ModelArtifact::from_native(&model)
        .unwrap()
        .save(dir.path().join("m"))
        .unwrap();
    let loaded = ml_core::load_model(dir.path().join("m")).unwrap();
    let (features, _, _, _) = train.split_off("y").unwrap();
    assert_eq!(
        model.predict(&features).unwrap(),
        loaded.predict(&features).unwrap()
    );
    assert_eq!(loaded.kind(), "random_forest_classifier");
}

#[test]
fn invalid_parameters_are_refused_before_fitting() {
    for (name, p, needle) in [
        ("random_forest_classifier", ("max_depth", "0"), "max_depth"),
        ("random_forest_classifier", ("n_estimators", "0"), "n_estimators"),
        (
            "random_forest_classifier",
            ("max_features", "1.5"),
            "max_features",
        ),
        (
            "random_forest_classifier",
            ("criterion", "squared_error"),
            "criterion",
        ),
        ("random_forest_regressor", ("criterion", "gini"), "criterion"),
        (
            "decision_tree_classifier",
            ("min_samples_split", "1"),
            "min_samples_split",
        ),
        ("decision_tree_classifier", ("max_bins", "1000"), "max_bins"),
        (
            "decision_tree_classifier",
            ("depth", "3"),
            "unknown field `depth`",
        ),
        ("random_forest_classifier", ("n_jobs", "0"), "n_jobs"),
    ] {
        let err = Estimator::from_name(name, &params(&[p])).unwrap_err();
        assert!(err.to_string().contains(needle), "{name} {p:?}: {err}");
    }
}

#[test]
fn a_regressor_refuses_a_categorical_target() {
    let train = frame(100, 11, quadrant);
    let err = Estimator::from_name("random_forest_regressor", &[])
        .unwrap()
        .fit(&train, "y")
        .unwrap_err();
    assert!(err.to_string().contains("needs a numeric target"), "{err}");
}
