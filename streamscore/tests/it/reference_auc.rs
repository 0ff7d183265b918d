//! Acceptance: on `generate --rows 50000 --seed 1`, logistic regression trained by `streamscore
//! train` reaches a validation ROC AUC within ±0.01 of scikit-learn's LogisticRegression on the
//! same CSV and the same split, as recorded by `scripts/reference/sklearn_lr_auc.py`.

use std::process::Command;

use sha2::{Digest, Sha256};

const RECORDED: &str = include_str!("../reference/sklearn_lr_auc.json");

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_streamscore"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "streamscore {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn logistic_regression_matches_scikit_learn_on_the_generated_data() {
    let recorded: serde_json::Value = serde_json::from_str(RECORDED).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    let model = tmp.path().join("model");
    let data_s = data.to_str().unwrap();
    run(&["generate", "--rows", "50000", "--seed", "1", "--out", data_s]);

    // The recorded value belongs to this exact file: a changed generator must re-record it.
    let digest = hex::encode(Sha256::digest(std::fs::read(&data).unwrap()));
    assert_eq!(
        digest,
        recorded["csv_sha256"].as_str().unwrap(),
        "the generated CSV changed; re-run scripts/reference/sklearn_lr_auc.py (see its header)"
    );
    assert_eq!(recorded["split_seed"], 42);
    assert_eq!(recorded["validation_fraction"], 0.2);

    let stdout = run(&[
        "train",
        // The script reproduces the per-row hash split, not the stratified default.
        "--split",
        "hash",
        "--data",
        data_s,
        "--target",
        "default",
        "--estimator",
        "logistic_regression",
        "--out",
        model.to_str().unwrap(),
    ]);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("metrics.json")).unwrap()).unwrap();
    let ours = metrics["roc_auc"].as_f64().unwrap();
    let sklearn = recorded["roc_auc"].as_f64().unwrap();
    assert_eq!(
        metrics["n_validation"], recorded["validation_rows"],
        "same split as the script"
    );
    assert!(
        (0.70..=0.85).contains(&ours),
        "ROC AUC {ours} outside 0.70–0.85:\n{stdout}"
    );
    assert!(
        (ours - sklearn).abs() <= 0.01,
        "ours {ours} vs scikit-learn {sklearn}"
    );
    let ours_ll = metrics["log_loss"].as_f64().unwrap();
    let sklearn_ll = recorded["log_loss"].as_f64().unwrap();
    assert!(
        (ours_ll - sklearn_ll).abs() <= 0.01,
        "log loss ours {ours_ll} vs scikit-learn {sklearn_ll}"
    );
}

const RECORDED_RF: &str = include_str!("../reference/sklearn_rf_auc.json");

/// Acceptance: a random forest with scikit-learn's parameters (100 trees, depth 8, seed 0)
/// reaches a validation ROC AUC within ±0.02 of scikit-learn's `RandomForestClassifier` on the
/// same CSV and split (recorded by `scripts/reference/sklearn_lr_auc.py --estimator
/// random_forest`), and beats our logistic regression on the same data.
#[test]
fn random_forest_matches_scikit_learn_and_beats_logistic_regression() {
    let recorded: serde_json::Value = serde_json::from_str(RECORDED_RF).unwrap();
    assert_eq!(recorded["estimator"], "random_forest");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    let data_s = data.to_str().unwrap();
    run(&["generate", "--rows", "50000", "--seed", "1", "--out", data_s]);
    let digest = hex::encode(Sha256::digest(std::fs::read(&data).unwrap()));
    assert_eq!(
        digest,
        recorded["csv_sha256"].as_str().unwrap(),
        "the generated CSV changed; re-run scripts/reference/sklearn_lr_auc.py (see its header)"
    );
    let auc = |estimator: &str, params: &[&str]| -> f64 {
        let model = tmp.path().join(estimator);
        let mut args = vec![
            "train",
            "--split",
            "hash",
            "--data",
            data_s,
            "--target",
            "default",
            "--estimator",
            estimator,
            "--out",
            model.to_str().unwrap(),
        ];
        for p in params {
            args.extend(["--param", p]);
        }
        run(&args);
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(model.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(metrics["n_validation"], recorded["validation_rows"]);
        metrics["roc_auc"].as_f64().unwrap()
    };
    let forest = auc(
        "random_forest_classifier",
        &["n_estimators=100", "max_depth=8", "seed=0"],
    );
    let sklearn = recorded["roc_auc"].as_f64().unwrap();
    assert!(
        (forest - sklearn).abs() <= 0.02,
        "random forest ROC AUC: ours {forest} vs scikit-learn {sklearn}"
    );
    let logistic = auc("logistic_regression", &[]);
    assert!(
        forest > logistic,
        "random forest {forest} should beat logistic regression {logistic}"
    );
}
