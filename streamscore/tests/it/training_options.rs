//! `streamscore train` options beyond the estimator: stratified and hash splits, k-fold
//! cross-validation, imputation and categorical encoding, and sweeps described by a TOML file.

use crate::common;
use common::{fails, ok, p};

use std::fs;
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(1.0)
}

/// Number of rows per value of column `name` of a CSV file.
fn class_counts(csv: &Path, name: &str) -> std::collections::BTreeMap<String, usize> {
    let text = fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == name).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in lines {
        *counts
            .entry(line.split(',').nth(col).unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn classifier_splits_are_stratified_unless_hash_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    ok(&["generate", "--rows", "3000", "--seed", "8", "--out", p(&data)]);
    let counts = class_counts(&data, "default");
    assert_eq!(counts.len(), 2, "{counts:?}");

    let model = tmp.path().join("stratified");
    let (_, stderr) = ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "gaussian_nb",
        "--out",
        p(&model),
    ]);
    assert!(stderr.contains("(stratified split)"), "{stderr}");
    let metrics = json(&model.join("metrics.json"));
    assert_eq!(metrics["split"], "stratified");
    // The confusion matrix's rows count the validation rows of each true class: exactly
    // round(20 % of the class) each, in label order "0", "1".
    let cm: Vec<Vec<u64>> = serde_json::from_value(metrics["confusion_matrix"].clone()).unwrap();
    for (row, (label, &n)) in cm.iter().zip(&counts) {
        let held: u64 = row.iter().sum();
        assert_eq!(
            held,
            (n as f64 * 0.2).round() as u64,
            "class {label}: {cm:?} of {counts:?}"
        );
    }

    let model = tmp.path().join("hash");
    ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "gaussian_nb",
        "--split",
        "hash",
        "--out",
        p(&model),
    ]);
    let metrics = json(&model.join("metrics.json"));
    assert_eq!(metrics["split"], "hash");
    let artifact_tags = fs::read_to_string(model.join("MLmodel")).unwrap();
    assert!(artifact_tags.contains("split: hash"), "{artifact_tags}");
}

#[test]
fn cross_validation_reports_every_fold_with_mean_and_std() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    let model = tmp.path().join("model");
    ok(&["generate", "--rows", "4000", "--seed", "5", "--out", p(&data)]);
    let (_, stderr) = ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "logistic_regression",
        "--cv",
        "4",
        "--out",
        p(&model),
    ]);
    assert!(
        stderr.contains("4-fold cross-validation (stratified)"),
        "{stderr}"
    );
    assert!(stderr.contains("roc_auc"), "{stderr}");
    let metrics = json(&model.join("metrics.json"));
    let cv = &metrics["cv"];
    assert_eq!(cv["k"], 4);
    assert_eq!(cv["stratified"], true);
    // The folds partition the training rows into near-equal parts.
    let sizes: Vec<u64> = serde_json::from_value(cv["fold_rows"].clone()).unwrap();
    assert_eq!(sizes.iter().sum::<u64>(), metrics["n_train"].as_u64().unwrap());
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{sizes:?}"
    );
    let folds = cv["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 4);
    for name in [
        "accuracy",
        "f1",
        "roc_auc",
        "log_loss",
        "precision",
        "recall",
        "pr_auc",
    ] {
        let values: Vec<f64> = folds.iter().map(|f| f[name].as_f64().unwrap()).collect();
        let mean = values.iter().sum::<f64>() / 4.0;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!(close(cv["mean"][name].as_f64().unwrap(), mean), "{name}: {cv}");
        assert!(close(cv["std"][name].as_f64().unwrap(), std), "{name}: {cv}");
        assert!(values.iter().any(|&v| v != values[0]), "{name}: folds differ");
    }
    // CV and the held-out validation rows estimate the same AUC (sd of either ~0.02 here).
    let cv_auc = cv["mean"]["roc_auc"].as_f64().unwrap();
    let val_auc = metrics["roc_auc"].as_f64().unwrap();
    assert!(
        (cv_auc - val_auc).abs() < 0.06,
        "cv {cv_auc} vs validation {val_auc}"
    );
    assert!((0.65..0.9).contains(&cv_auc), "{cv_auc}");

    // A regressor's folds are plain (hash-ordered) folds with regression metrics.
    let model = tmp.path().join("ridge");
    ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "LIMIT_BAL",
        "--estimator",
        "ridge",
        "--cv",
        "3",
        "--out",
        p(&model),
    ]);
    let metrics = json(&model.join("metrics.json"));
    assert_eq!(metrics["cv"]["stratified"], false);
    assert_eq!(metrics["split"], "hash");
    assert!(metrics["cv"]["mean"]["r2"].as_f64().unwrap() > 0.0);

    let err = fails(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--cv",
        "1",
        "--out",
        p(&tmp.path().join("bad")),
    ]);
    assert!(err.contains("at least 2 folds"), "{err}");
}

/// 60 rows: `x` = row number with every fifth value missing, `c` cycling a, b, b, c with every
/// seventh value missing, `y` alternating 0/1.
fn write_gappy_csv(path: &Path) -> (f64, Vec<f64>) {
    let mut text = String::from("x,c,y\n");
    let mut present = Vec::new();
    for i in 0..60 {
        let x = if i % 5 == 4 {
            String::new()
        } else {
            present.push(i as f64);
            i.to_string()
        };
        let c = if i % 7 == 3 {
            ""
        } else {
            ["a", "b", "b", "c"][i % 4]
        };
        text.push_str(&format!("{x},{c},{}\n", i % 2));
    }
    fs::write(path, text).unwrap();
    let mut sorted = present.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, present)
}

#[test]
fn imputation_and_ordinal_encoding_are_stored_and_applied_at_predict_time() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gappy.csv");
    write_gappy_csv(&data);
    let model = tmp.path().join("model");
    ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "y",
        "--categorical",
        "c",
        "--estimator",
        "decision_tree_classifier",
        "--split",
        "hash",
        "--impute",
        "most_frequent",
        "--encode",
        "ordinal",
        "--out",
        p(&model),
    ]);
    let saved = json(&model.join("model.json"));
    let steps = saved["preprocessor"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["kind"], "numeric");
    assert_eq!(steps[1]["kind"], "ordinal");
    let vocabulary: Vec<String> = serde_json::from_value(steps[1]["categories"].clone()).unwrap();
    let b = vocabulary.iter().position(|v| v == "b").unwrap() as f64;
    // Training rows only: recompute the most frequent x and category from them.
    let metrics = json(&model.join("metrics.json"));
    assert_eq!(metrics["preprocessing"]["impute"], "most_frequent");
    assert_eq!(metrics["preprocessing"]["encode"], "ordinal");
    // Every present x is distinct, so the most frequent is the smallest present training x
    // (0 or 1, whichever row stayed in training); b is the most frequent category by far.
    let fill_x = steps[0]["fill"].as_f64().unwrap();
    assert!(fill_x == 0.0 || fill_x == 1.0, "{fill_x}");
    assert_eq!(steps[1]["fill"].as_f64().unwrap(), b);
    let mlmodel = fs::read_to_string(model.join("MLmodel")).unwrap();
    assert!(
        mlmodel.contains("encode: ordinal") && mlmodel.contains("impute: most_frequent"),
        "{mlmodel}"
    );

    // At predict time a missing value is the stored fill: a row with both missing scores as
    // the row holding the fill values.
    let rows = tmp.path().join("rows.csv");
    fs::write(&rows, format!("x,c\n,\n{fill_x},b\n3,\n3,b\n")).unwrap();
    let (stdout, _) = ok(&["predict", "--model", p(&model), "--data", p(&rows)]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(lines[1], lines[2], "{stdout}");
    assert_eq!(lines[3], lines[4], "{stdout}");

    // Median imputation of x, on the same split: the median of the present training values.
    let model = tmp.path().join("median");
    ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "y",
        "--categorical",
        "c",
        "--estimator",
        "gaussian_nb",
        "--split",
        "hash",
        "--impute",
        "median",
        "--out",
        p(&model),
    ]);
    let saved = json(&model.join("model.json"));
    let steps = saved["preprocessor"]["steps"].as_array().unwrap();
    assert_eq!(steps[1]["kind"], "one_hot");
    let fill = steps[0]["fill"].as_f64().unwrap();
    // The hash split keeps about 48 of the 60 rows; the median of any such subset of 0..60
    // lies well inside, and it is a half-integer or an integer.
    assert!(
        (20.0..=40.0).contains(&fill) && (fill * 2.0).fract() == 0.0,
        "{fill}"
    );
    let n_train = json(&model.join("metrics.json"))["n_train"].as_u64().unwrap();
    assert!(n_train < 60);
}

#[test]
fn a_toml_sweep_with_cv_ranks_trials_by_their_mean_cv_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    let model = tmp.path().join("model");
    let space = tmp.path().join("space.toml");
    ok(&["generate", "--rows", "3000", "--seed", "4", "--out", p(&data)]);
    fs::write(
        &space,
        r#"
trials = 9
metric = "roc_auc"
seed = 5
cv = 3

[space]
max_depth = { int = [2, 8] }
min_samples_leaf = { int = [1, 200], log = true }
criterion = ["gini", "entropy"]
impute = { choice = ["mean", "median"] }
"#,
    )
    .unwrap();
    let (_, stderr) = ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "decision_tree_classifier",
        "--sweep-space",
        p(&space),
        "--sweep",
        "4",
        "--out",
        p(&model),
    ]);
    // --sweep overrides the file's trials; the rest comes from the file.
    assert!(stderr.contains("sweep: 4 trials"), "{stderr}");
    let metrics = json(&model.join("metrics.json"));
    let sweep = &metrics["sweep"];
    assert_eq!(sweep["metric"], "roc_auc");
    assert_eq!(sweep["seed"], 5);
    assert_eq!(sweep["cv"], 3);
    let trials = sweep["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    let scores: Vec<f64> = trials
        .iter()
        .map(|t| {
            let score = t["score"].as_f64().unwrap();
            assert_eq!(t["cv"]["k"], 3);
            assert_eq!(score, t["cv"]["mean"]["roc_auc"].as_f64().unwrap(), "{t}");
            let leaf = t["params"]["min_samples_leaf"].as_i64().unwrap();
            assert!((1..=200).contains(&leaf), "{t}");
            score
        })
        .collect();
    let best = sweep["best_trial"].as_u64().unwrap() as usize;
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(best, scores.iter().position(|&s| s == max).unwrap(), "{scores:?}");
    // The artifact is the chosen trial's: its CV record, parameters and preprocessing.
    assert_eq!(metrics["cv"], trials[best]["cv"]);
    assert_eq!(metrics["roc_auc"], trials[best]["metrics"]["roc_auc"]);
    let saved = json(&model.join("model.json"));
    for k in ["max_depth", "min_samples_leaf", "criterion"] {
        assert_eq!(saved["estimator"][k], trials[best]["params"][k], "{k}");
    }
    assert_eq!(
        metrics["preprocessing"]["impute"],
        trials[best]["params"]["impute"]
    );

    // Without CV a sweep may rank by a metric of the classifier report too.
    let pr_model = tmp.path().join("pr_auc");
    ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "decision_tree_classifier",
        "--sweep",
        "3",
        "--metric",
        "pr_auc",
        "--space",
        "max_depth=2..6",
        "--out",
        p(&pr_model),
    ]);
    let metrics = json(&pr_model.join("metrics.json"));
    let sweep = &metrics["sweep"];
    let best = sweep["best_trial"].as_u64().unwrap() as usize;
    let scores: Vec<f64> = sweep["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["score"].as_f64().unwrap())
        .collect();
    assert_eq!(
        scores[best],
        scores.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );
    assert_eq!(scores[best], metrics["pr_auc"].as_f64().unwrap());

    let no_trials = tmp.path().join("no_trials.toml");
    fs::write(&no_trials, "[space]\nmax_depth = { int = [2, 4] }\n").unwrap();
    let out = tmp.path().join("bad");
    let err = fails(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--sweep-space",
        p(&no_trials),
        "--out",
        p(&out),
    ]);
    assert!(err.contains("trials"), "{err}");
    let err = fails(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--metric",
        "roc_auc",
        "--out",
        p(&out),
    ]);
    assert!(err.contains("need --sweep"), "{err}");
}

#[test]
fn the_train_section_of_streamscore_toml_gives_defaults_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    ok(&["generate", "--rows", "2000", "--seed", "9", "--out", p(&data)]);
    let config = tmp.path().join("streamscore.toml");
    let model = tmp.path().join("model");
    fs::write(
        &config,
        format!(
            r#"
[train]
data = "{}"
target = "default"
estimator = "decision_tree_classifier"
params = {{ max_depth = 3, criterion = "entropy" }}
split = "hash"
impute = "median"
encode = "ordinal"
cv = 2
out = "{}"

[train.sweep]
trials = 3
metric = "roc_auc"
[train.sweep.space]
min_samples_leaf = {{ int = [1, 50], log = true }}
"#,
            data.display().to_string().replace('\\', "/"),
            model.display().to_string().replace('\\', "/"),
        ),
    )
    .unwrap();
    // --param overrides one parameter of the section; the rest comes from the file.
    let (_, stderr) = ok(&["train", "--config", p(&config), "--param", "max_depth=5"]);
    assert!(stderr.contains("sweep: 3 trials"), "{stderr}");
    let metrics = json(&model.join("metrics.json"));
    assert_eq!(metrics["split"], "hash");
    assert_eq!(metrics["preprocessing"]["impute"], "median");
    assert_eq!(metrics["preprocessing"]["encode"], "ordinal");
    assert_eq!(metrics["sweep"]["metric"], "roc_auc");
    assert_eq!(metrics["sweep"]["cv"], 2);
    assert_eq!(metrics["cv"]["k"], 2);
    let saved = json(&model.join("model.json"));
    assert_eq!(saved["estimator"]["estimator"], "decision_tree_classifier");
    assert_eq!(saved["estimator"]["max_depth"], 5);
    assert_eq!(saved["estimator"]["criterion"], "entropy");

    fs::write(&config, "[train]\ntarget = \"default\"\n").unwrap();
    let err = fails(&["train", "--config", p(&config), "--out", p(&tmp.path().join("x"))]);
    assert!(err.contains("no training data"), "{err}");
}

#[test]
fn trees_and_forests_record_feature_importances_by_column() {
    // y depends on `signal` only; `noise` is a scrambled copy of the row number.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("signal.csv");
    let mut text = String::from("signal,noise,y\n");
    for i in 0..200 {
        text.push_str(&format!("{i},{},{}\n", (i * 7919) % 101, u8::from(i >= 120)));
    }
    fs::write(&data, text).unwrap();
    for (estimator, params) in [
        ("decision_tree_classifier", "max_depth=3"),
        ("random_forest_classifier", "n_estimators=20"),
    ] {
        let model = tmp.path().join(estimator);
        ok(&[
            "train",
            "--data",
            p(&data),
            "--target",
            "y",
            "--estimator",
            estimator,
            "--param",
            params,
            "--out",
            p(&model),
        ]);
        let metrics = json(&model.join("metrics.json"));
        let imp = metrics["feature_importances"].as_object().unwrap();
        assert_eq!(imp.len(), 2, "{imp:?}");
        let signal = imp["signal"].as_f64().unwrap();
        let noise = imp["noise"].as_f64().unwrap();
        assert!((signal + noise - 1.0).abs() < 1e-12, "{imp:?}");
        // One threshold on `signal` separates the classes: a single tree uses nothing else;
        // forest trees that were offered only `noise` at the root still split on it a little.
        if estimator == "decision_tree_classifier" {
            assert_eq!(signal, 1.0, "{imp:?}");
        } else {
            assert!(signal > 0.8, "{imp:?}");
        }
    }
    let model = tmp.path().join("lr");
    ok(&["train", "--data", p(&data), "--target", "y", "--out", p(&model)]);
    assert!(
        json(&model.join("metrics.json"))
            .get("feature_importances")
            .is_none()
    );
}
