//! Logistic regression end to end: raw records in, probabilities out, checked against
//! closed-form answers.

use ml_core::{CsvTable, Estimator, Frame, InferOptions, Model, ReadOptions};

fn fit(csv: &str, params: &[(&str, &str)]) -> ml_core::NativeModel {
    let table = CsvTable::read(csv.as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let frame = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Estimator::from_name("logistic_regression", &params)
        .unwrap()
        .fit(&frame, "y")
        .unwrap()
}

#[test]
fn one_categorical_feature_recovers_group_frequencies() {
    // With one one-hot feature and (almost) no penalty, the maximum-likelihood probability of
    // each group is its share of positives: a → 3/4, b → 1/5, c → 1/2.
    let mut csv = String::from("g,y\n");
    for (g, pos, n) in [("a", 3, 4), ("b", 1, 5), ("c", 2, 4)] {
        for i in 0..n {
            csv.push_str(&format!("{g},{}\n", u8::from(i < pos)));
        }
    }
    let model = fit(&csv, &[("c", "1e7")]);
    let new = Frame::from_csv(
        "g\na\nb\nc\n".as_bytes(),
        model.schema().clone(),
        &ReadOptions::default(),
    )
    .unwrap();
    let p = model.predict(&new).unwrap();
    let pos = p.positive_probabilities().unwrap();
    for (got, want) in pos.iter().zip([0.75, 0.2, 0.5]) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
    assert_eq!(p.label(0), Some("1"));
    assert_eq!(p.label(1), Some("0"));
}

#[test]
fn multinomial_recovers_class_shares_per_group() {
    // Three classes, one two-level feature: softmax MLE gives the class shares in each group.
    // Group a: 2 × A, 1 × B, 1 × C; group b: 1 × A, 1 × B, 2 × C.
    let csv = "g,y\na,A\na,A\na,B\na,C\nb,A\nb,B\nb,C\nb,C\n";
    let model = fit(csv, &[("c", "1e7")]);
    assert_eq!(model.output().labels(), ["A", "B", "C"]);
    let new = Frame::from_csv(
        "g\na\nb\n".as_bytes(),
        model.schema().clone(),
        &ReadOptions::default(),
    )
    .unwrap();
    let p = model.predict(&new).unwrap();
    let probs = p.probabilities().unwrap();
    let want = [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]];
    for r in 0..2 {
        for k in 0..3 {
            assert!(
                (probs[[r, k]] - want[r][k]).abs() < 1e-3,
                "row {r} class {k}: {}",
                probs[[r, k]]
            );
        }
        assert!((probs.row(r).sum() - 1.0).abs() < 1e-12);
    }
    assert_eq!(p.label(0), Some("A"));
    assert_eq!(p.label(1), Some("C"));
}

#[test]
fn raw_records_with_missing_values_score_deterministically() {
    let csv = "x,g,y\n1,a,0\n2,b,0\n,a,1\n4,b,1\n5,a,1\n0.5,b,0\n";
    let model = fit(csv, &[]);
    let new = Frame::from_csv(
        "x,g\n,a\n3,b\n".as_bytes(),
        model.schema().clone(),
        &ReadOptions::default(),
    )
    .unwrap();
    let a = model.predict(&new).unwrap();
    let b = model.predict(&new).unwrap();
    assert_eq!(a, b);
    // The missing x is imputed with the training mean (2.5), so row 0 equals an explicit 2.5.
    let explicit = Frame::from_csv(
        "x,g\n2.5,a\n".as_bytes(),
        model.schema().clone(),
        &ReadOptions::default(),
    )
    .unwrap();
    let c = model.predict(&explicit).unwrap();
    assert_eq!(
        a.probabilities().unwrap().row(0),
        c.probabilities().unwrap().row(0)
    );
}

#[test]
fn parameter_errors_list_what_is_accepted() {
    let err = Estimator::from_name("logistic_regression", &[("C".into(), "1".into())]).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `C`, expected `c`"),
        "{err}"
    );
    let err = Estimator::from_name("logistic_regression", &[("c".into(), "-1".into())]).unwrap_err();
    assert!(err.to_string().contains("positive"), "{err}");
    let err = Estimator::from_name("svm", &[]).unwrap_err();
    assert!(
        err.to_string().contains("available: logistic_regression"),
        "{err}"
    );
}

#[test]
fn training_errors_are_specific() {
    let table = CsvTable::read("x,y\n1,0\n2,0\n".as_bytes(), "t.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let frame = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let est = Estimator::from_name("logistic_regression", &[]).unwrap();
    let err = est.fit(&frame, "y").unwrap_err();
    assert!(err.to_string().contains("at least two classes"), "{err}");
    let err = est.fit(&frame, "label").unwrap_err();
    assert!(err.to_string().contains("no column `label`"), "{err}");
    let table = CsvTable::read("x,y\n1,0\n2,\n3,1\n".as_bytes(), "t.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let frame = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let err = est.fit(&frame, "y").unwrap_err();
    assert!(
        err.to_string().contains("1 missing value(s) (first in row 1)"),
        "{err}"
    );
}
