//! The `streamscore` command as a user runs it: files in, files and one-line errors out.

use crate::common;
use common::{fails, ok, p, streamscore};

use std::fs;

#[test]
fn generate_train_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    let model = tmp.path().join("model");
    let preds = tmp.path().join("out/preds.csv");
    ok(&["generate", "--rows", "3000", "--seed", "5", "--out", p(&data)]);
    let text = fs::read_to_string(&data).unwrap();
    assert!(
        text.starts_with("LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,"),
        "{}",
        &text[..80]
    );
    assert_eq!(text.lines().count(), 3001);
    assert!(tmp.path().join("credit.schema.json").is_file());

    // Same seed, same bytes.
    let again = tmp.path().join("again.csv");
    ok(&["generate", "--rows", "3000", "--seed", "5", "--out", p(&again)]);
    assert_eq!(fs::read(&data).unwrap(), fs::read(&again).unwrap());

    let (stdout, stderr) = ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "logistic_regression",
        "--out",
        p(&model),
    ]);
    assert!(stderr.contains("found beside the data"), "{stderr}");
    for metric in ["accuracy", "f1", "roc_auc", "log_loss"] {
        assert!(stdout.contains(metric), "{stdout}");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(model.join("metrics.json")).unwrap()).unwrap();
    let auc = metrics["roc_auc"].as_f64().unwrap();
    assert!(stdout.contains(&format!("roc_auc   {auc:.4}")), "{stdout}");
    assert_eq!(
        metrics["n_train"].as_u64().unwrap() + metrics["n_validation"].as_u64().unwrap(),
        3000
    );

    ok(&[
        "predict",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--out",
        p(&preds),
    ]);
    let out = fs::read_to_string(&preds).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("prediction,probability_0,probability_1"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3000);
    for row in &rows {
        let cells: Vec<&str> = row.split(',').collect();
        let (p0, p1): (f64, f64) = (cells[1].parse().unwrap(), cells[2].parse().unwrap());
        assert!((p0 + p1 - 1.0).abs() < 1e-12);
        assert_eq!(cells[0], if p1 > p0 { "1" } else { "0" });
    }

    // Standard output, with a kept column.
    let (stdout, stderr) = ok(&[
        "predict",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--keep",
        "AGE",
    ]);
    assert!(
        stdout.starts_with("AGE,prediction,probability_0,probability_1\n"),
        "{}",
        &stdout[..60]
    );
    assert!(
        stderr.contains("ignoring columns the model does not read: default"),
        "{stderr}"
    );
}

#[test]
fn bad_input_gives_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.csv");
    let model = tmp.path().join("m");
    ok(&["generate", "--rows", "1000", "--seed", "2", "--out", p(&data)]);
    ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--out",
        p(&model),
    ]);

    let e = fails(&[
        "train",
        "--data",
        p(&tmp.path().join("nope.csv")),
        "--target",
        "default",
        "--out",
        p(&tmp.path().join("x")),
    ]);
    assert!(e.contains("nope.csv") && e.contains("No such file"), "{e}");
    let e = fails(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "dflt",
        "--out",
        p(&tmp.path().join("x")),
    ]);
    assert!(e.contains("no column `dflt`"), "{e}");
    let e = fails(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--param",
        "c=-2",
        "--out",
        p(&tmp.path().join("x")),
    ]);
    assert!(e.contains("invalid parameter `c`"), "{e}");
    let e = fails(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--out",
        p(&model),
    ]);
    assert!(e.contains("already exists and is not empty"), "{e}");
    let e = fails(&[
        "generate",
        "--rows",
        "10",
        "--drift",
        "1.5",
        "--out",
        p(&tmp.path().join("g.csv")),
    ]);
    assert!(e.contains("drift"), "{e}");

    // Wrong type, unseen category, missing column, ragged row, empty file: each named.
    let header = fs::read_to_string(&data)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let good_row = fs::read_to_string(&data)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let write = |name: &str, body: &str| {
        let f = tmp.path().join(name);
        fs::write(&f, body).unwrap();
        f
    };
    let mut cells: Vec<String> = good_row.split(',').map(str::to_string).collect();
    cells[4] = "old".into(); // AGE
    let bad_type = write(
        "type.csv",
        &format!("{header}\n{good_row}\n{}\n", cells.join(",")),
    );
    let e = fails(&["predict", "--model", p(&model), "--data", p(&bad_type)]);
    assert!(
        e.contains("row 1 (line 3), field `AGE`: expected an int value, found \"old\""),
        "{e}"
    );

    let mut cells: Vec<String> = good_row.split(',').map(str::to_string).collect();
    cells[1] = "9".into(); // SEX
    let unseen = write("unseen.csv", &format!("{header}\n{}\n", cells.join(",")));
    let e = fails(&["predict", "--model", p(&model), "--data", p(&unseen)]);
    assert!(
        e.contains("field `SEX`: category \"9\" is not in the vocabulary"),
        "{e}"
    );

    let no_age_header = header.replace(",AGE,", ",AGX,");
    let missing = write("missing.csv", &format!("{no_age_header}\n{good_row}\n"));
    let e = fails(&["predict", "--model", p(&model), "--data", p(&missing)]);
    assert!(e.contains("field `AGE`: column is missing from the input"), "{e}");

    let ragged = write("ragged.csv", &format!("{header}\n{good_row}\n1,2,3\n"));
    let e = fails(&["predict", "--model", p(&model), "--data", p(&ragged)]);
    assert!(e.contains("row 1 has 3 fields but the header has 24"), "{e}");

    let empty = write("empty.csv", "");
    let e = fails(&["predict", "--model", p(&model), "--data", p(&empty)]);
    assert!(e.contains("is empty"), "{e}");

    // A tampered artifact is refused before anything is scored.
    let mlmodel = model.join("MLmodel");
    fs::write(
        &mlmodel,
        fs::read_to_string(&mlmodel).unwrap().replace("risk", "r1sk") + "\n# edited\n",
    )
    .unwrap();
    let e = fails(&["predict", "--model", p(&model), "--data", p(&data)]);
    assert!(e.contains("checksum mismatch for `MLmodel`"), "{e}");
}

#[test]
fn help_is_available_everywhere() {
    for cmd in [
        &["--help"][..],
        &["generate", "--help"],
        &["train", "--help"],
        &["predict", "--help"],
        &["demo", "--help"],
    ] {
        let (stdout, _) = ok(cmd);
        assert!(stdout.contains("Usage: streamscore"), "{stdout}");
    }
    // Usage errors exit with clap's code 2 and say what is wrong.
    let out = streamscore(&["train", "--data", "x.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
}

#[test]
fn regressors_train_through_the_whole_workflow() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    ok(&["generate", "--rows", "3000", "--seed", "6", "--out", p(&data)]);
    let mut r2 = Vec::new();
    for (estimator, params) in [
        ("ridge", vec!["alpha=1"]),
        ("random_forest_regressor", vec!["n_estimators=20", "max_depth=6"]),
    ] {
        let model = tmp.path().join(estimator);
        let mut args = vec![
            "train",
            "--data",
            p(&data),
            "--target",
            "LIMIT_BAL",
            "--estimator",
            estimator,
            "--out",
            p(&model),
        ];
        for param in &params {
            args.extend(["--param", param]);
        }
        let (stdout, _) = ok(&args);
        let metrics: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(model.join("metrics.json")).unwrap()).unwrap();
        for name in ["rmse", "mae", "r2"] {
            let v = metrics[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} in {metrics}"));
            assert!(stdout.contains(&format!("{name:<9} {v:.4}")), "{stdout}");
        }
        assert!(metrics.get("roc_auc").is_none());
        assert!(metrics["rmse"].as_f64().unwrap() >= metrics["mae"].as_f64().unwrap());
        r2.push(metrics["r2"].as_f64().unwrap());

        // The saved regressor predicts one value per row.
        let preds = tmp.path().join(format!("{estimator}.csv"));
        ok(&[
            "predict",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--out",
            p(&preds),
        ]);
        assert_eq!(fs::read_to_string(&preds).unwrap().lines().count(), 3001);
    }
    // The generator ties the credit limit to the other columns, so both explain some of it.
    assert!(r2.iter().all(|&v| v > 0.0 && v < 1.0), "{r2:?}");
}

#[test]
fn a_sweep_of_20_trials_records_every_trial_and_keeps_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("credit.csv");
    let model = tmp.path().join("model");
    ok(&["generate", "--rows", "20000", "--seed", "3", "--out", p(&data)]);
    let (_, stderr) = ok(&[
        "train",
        "--data",
        p(&data),
        "--target",
        "default",
        "--estimator",
        "random_forest_classifier",
        "--param",
        "n_estimators=10",
        "--sweep",
        "20",
        "--metric",
        "f1",
        "--space",
        "max_depth=2..10",
        "--space",
        "min_samples_leaf=1..50",
        "--space",
        "criterion=gini,entropy",
        "--out",
        p(&model),
    ]);
    assert!(stderr.contains("sweep: 20 trials"), "{stderr}");
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(model.join("metrics.json")).unwrap()).unwrap();
    let sweep = &metrics["sweep"];
    let trials = sweep["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 20);
    assert_eq!(sweep["metric"], "f1");
    let f1s: Vec<f64> = trials
        .iter()
        .map(|t| t["metrics"]["f1"].as_f64().unwrap())
        .collect();
    let best = sweep["best_trial"].as_u64().unwrap() as usize;
    // The chosen trial has the highest validation F1 (the first of any tie) ...
    let max = f1s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(f1s[best], max, "{f1s:?}");
    assert_eq!(best, f1s.iter().position(|&v| v == max).unwrap());
    // ... its metrics are the artifact's, and the saved model has its parameters.
    assert_eq!(metrics["f1"], trials[best]["metrics"]["f1"]);
    let saved: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    for (k, v) in trials[best]["params"].as_object().unwrap() {
        assert_eq!(&saved["estimator"][k], v, "{k}");
    }
    assert_eq!(saved["estimator"]["n_estimators"], 10);
    // Sampled values stay in their domains, and the trials differ.
    for t in trials {
        let depth = t["params"]["max_depth"].as_u64().unwrap();
        assert!((2..=10).contains(&depth));
    }
    assert!(f1s.iter().any(|&v| v != f1s[0]));
    // Classifier extras: the confusion matrix covers every validation row, and precision,
    // recall and F1 agree with it.
    let cm: Vec<Vec<f64>> = serde_json::from_value(metrics["confusion_matrix"].clone()).unwrap();
    let total: f64 = cm.iter().flatten().sum();
    assert_eq!(total, metrics["n_validation"].as_f64().unwrap());
    let (tp, fp, fn_) = (cm[1][1], cm[0][1], cm[1][0]);
    let close = |a: f64, b: &serde_json::Value| (a - b.as_f64().unwrap()).abs() < 1e-12;
    assert!(close(tp / (tp + fp), &metrics["precision"]), "{metrics}");
    assert!(close(tp / (tp + fn_), &metrics["recall"]), "{metrics}");
    assert!(
        close(2.0 * tp / (2.0 * tp + fp + fn_), &metrics["f1"]),
        "{metrics}"
    );
    let pr_auc = metrics["pr_auc"].as_f64().unwrap();
    assert!(pr_auc > 0.0 && pr_auc <= 1.0);
}
