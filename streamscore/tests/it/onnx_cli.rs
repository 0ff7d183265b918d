//! `streamscore import-onnx` and `predict` on ONNX models, as a user runs them, against the
//! fixtures of ml-core/tests/fixtures/onnx (recorded by scripts/reference/onnx_fixtures.py).
//!
//! Needs the ONNX Runtime library; without it these tests fail when `CI` or
//! `STREAMSCORE_REQUIRE_ONNX_RUNTIME` is set (scripts/test.sh) and are skipped otherwise.
#![cfg(feature = "onnx")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ml-core/tests/fixtures/onnx")
}

fn runtime_present() -> bool {
    match ml_core::onnx::locate_runtime_library() {
        Ok(_) => true,
        Err(e) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var_os("STREAMSCORE_REQUIRE_ONNX_RUNTIME").is_some_and(|v| v != "0");
            assert!(!required, "the ONNX Runtime library is required here: {e}");
            eprintln!("skipped: {e}");
            false
        }
    }
}

fn streamscore(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamscore"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the streamscore binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = streamscore(args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "streamscore {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = streamscore(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "streamscore {args:?} should fail:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{stderr}");
    lines[0].to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn fixture(name: &str) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(fixtures().join(format!("{name}.json"))).unwrap()).unwrap()
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks predictions CSV `text` (label then one probability column per class) against the
/// recorded onnxruntime outputs of `fx`.
fn check_csv(text: &str, fx: &serde_json::Value, labels: &[&str]) {
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut want = vec!["id".to_string(), "prediction".to_string()];
    want.extend(labels.iter().map(|l| format!("probability_{l}")));
    assert_eq!(header, want.join(","));
    let expected = fx["onnxruntime"]["probabilities"].as_array().unwrap();
    let mut n = 0;
    for (r, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], r.to_string());
        for (c, e) in expected[r].as_array().unwrap().iter().enumerate() {
            let got: f64 = cells[2 + c].parse().unwrap();
            assert!(
                (got - e.as_f64().unwrap()).abs() <= 1e-5,
                "row {r} class {c}: {got} vs {e}"
            );
        }
        n += 1;
    }
    assert_eq!(n, expected.len());
}

#[test]
fn import_onnx_pipeline_to_a_directory_then_predict_csv_by_column_name() {
    if !runtime_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture("pipeline_lr");
    // Columns in another order than the model's inputs, plus an id the model does not read.
    let mut csv = String::from("region,id,plan,balance,age,income\n");
    for (i, row) in fx["rows"].as_array().unwrap().iter().enumerate() {
        let r: Vec<String> = row.as_array().unwrap().iter().map(cell).collect();
        csv.push_str(&format!("{},{i},{},{},{},{}\n", r[4], r[3], r[2], r[1], r[0]));
    }
    let data = tmp.path().join("data.csv");
    fs::write(&data, csv).unwrap();
    let schema = tmp.path().join("schema.json");
    fs::write(
        &schema,
        r#"{"fields": [{"name": "income", "type": "float"}, {"name": "age", "type": "float"},
            {"name": "balance", "type": "float"},
            {"name": "plan", "type": "categorical", "vocabulary": ["basic", "plus", "pro"]},
            {"name": "region", "type": "categorical", "vocabulary": ["east", "north", "south", "west"]}]}"#,
    )
    .unwrap();
    let model = tmp.path().join("models/pipeline");
    let src = fixtures().join("pipeline_lr.onnx");
    ok(&["import-onnx", p(&src), "--schema", p(&schema), "--out", p(&model)]);
    assert!(model.join("model.onnx").is_file() && model.join("checksums").is_file());
    let mlmodel = fs::read_to_string(model.join("MLmodel")).unwrap();
    assert!(
        mlmodel.contains("model_kind: onnx") && mlmodel.contains("loader_module: mlflow.onnx"),
        "{mlmodel}"
    );

    let out = ok(&[
        "predict",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--keep",
        "id",
    ]);
    check_csv(&out, &fx, &["no", "yes"]);

    // Without a schema: string fields named after the inputs work the same.
    let derived = tmp.path().join("models/derived");
    ok(&["import-onnx", p(&src), "--out", p(&derived)]);
    let out = ok(&[
        "predict",
        "--model",
        p(&derived),
        "--data",
        p(&data),
        "--keep",
        "id",
    ]);
    check_csv(&out, &fx, &["no", "yes"]);
}

#[test]
fn import_onnx_registers_a_version_with_named_columns() {
    if !runtime_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry");
    let fx = fixture("xgb_classifier");
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut csv = format!("id,{}\n", names.join(","));
    for (i, row) in fx["rows"].as_array().unwrap().iter().enumerate() {
        let r: Vec<String> = row.as_array().unwrap().iter().map(cell).collect();
        csv.push_str(&format!("{i},{}\n", r.join(",")));
    }
    let data = tmp.path().join("data.csv");
    fs::write(&data, csv).unwrap();
    let src = fixtures().join("xgb_classifier.onnx");
    let stdout = ok(&[
        "import-onnx",
        p(&src),
        "--columns",
        &names.join(","),
        "--name",
        "xgb",
        "--registry",
        p(&registry),
    ]);
    assert_eq!(stdout.trim(), "xgb:1");
    let out = ok(&[
        "predict",
        "--model",
        "xgb@latest",
        "--registry",
        p(&registry),
        "--data",
        p(&data),
        "--keep",
        "id",
    ]);
    check_csv(&out, &fx, &["0", "1", "2"]);
}

#[test]
fn import_onnx_errors_are_one_line() {
    if !runtime_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("logistic_regression.onnx");
    let out = tmp.path().join("m");

    let e = fails(
        &["import-onnx", p(&src), "--columns", "a,b", "--out", p(&out)],
        &[],
    );
    assert!(
        e.contains("2 column names were given but the model's input `input` takes 6 features"),
        "{e}"
    );

    let truncated = tmp.path().join("truncated.onnx");
    let bytes = fs::read(fixtures().join("random_forest_classifier.onnx")).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let e = fails(&["import-onnx", p(&truncated), "--out", p(&out)], &[]);
    assert!(
        e.contains("invalid ONNX model") && e.contains("truncated.onnx"),
        "{e}"
    );

    let wrong = tmp.path().join("schema.json");
    fs::write(&wrong, r#"{"fields": [{"name": "x", "type": "float"}]}"#).unwrap();
    let e = fails(
        &["import-onnx", p(&src), "--schema", p(&wrong), "--out", p(&out)],
        &[],
    );
    assert!(
        e.contains("frame does not match the model") && e.contains("takes 6 features per row"),
        "{e}"
    );
}

#[test]
fn a_missing_runtime_library_is_a_one_line_error_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("logistic_regression.onnx");
    let out = tmp.path().join("m");
    let missing = tmp.path().join("nowhere/libonnxruntime.so");
    let e = fails(
        &["import-onnx", p(&src), "--engine", "runtime", "--out", p(&out)],
        &[("ORT_DYLIB_PATH", p(&missing))],
    );
    assert!(e.starts_with("error: ONNX Runtime is not available"), "{e}");
    assert!(e.contains("ORT_DYLIB_PATH") && e.contains("pip install"), "{e}");
    assert!(!out.exists());
}

#[test]
fn the_native_engine_needs_no_runtime_and_is_recorded_with_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = tmp.path().join("registry");
    let src = fixtures().join("random_forest_classifier.onnx");
    let missing = tmp.path().join("nowhere/libonnxruntime.so");
    let out = streamscore(
        &["import-onnx", p(&src), "--name", "rf", "--registry", p(&registry)],
        &[("ORT_DYLIB_PATH", p(&missing))],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("engine native (TreeEnsembleClassifier)"),
        "{stderr}"
    );
    let show = ok(&["show", "rf:1", "--registry", p(&registry)]);
    let json: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(json["onnx_engine"], "native", "{show}");
}

#[test]
fn an_mlflow_onnx_model_directory_imports_and_predicts() {
    if !runtime_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("mlflow-model");
    fs::create_dir_all(&src).unwrap();
    fs::copy(
        fixtures().join("gradient_boosting_classifier.onnx"),
        src.join("model.onnx"),
    )
    .unwrap();
    // What mlflow.onnx.save_model writes (trimmed), with a column signature.
    let cols: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"type": "double", "name": "f{i}", "required": true}}"#))
        .collect();
    fs::write(
        src.join("MLmodel"),
        format!(
            "artifact_path: model\nflavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.23.2\n    providers:\n    - CPUExecutionProvider\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\nmodel_uuid: 0123456789abcdef0123456789abcdef\nsignature:\n  inputs: '[{}]'\n  outputs: null\nutc_time_created: '2026-01-01 00:00:00.000000'\n",
            cols.join(", ")
        ),
    )
    .unwrap();
    let registry = tmp.path().join("registry");
    let stdout = ok(&["import", p(&src), "--name", "gb", "--registry", p(&registry)]);
    assert_eq!(stdout.trim(), "gb:1");

    let fx = fixture("gradient_boosting_classifier");
    let mut csv = String::from("id,f0,f1,f2,f3,f4,f5\n");
    for (i, row) in fx["rows"].as_array().unwrap().iter().enumerate() {
        let r: Vec<String> = row.as_array().unwrap().iter().map(cell).collect();
        csv.push_str(&format!("{i},{}\n", r.join(",")));
    }
    let data = tmp.path().join("data.csv");
    fs::write(&data, csv).unwrap();
    let out = ok(&[
        "predict",
        "--model",
        "gb@latest",
        "--registry",
        p(&registry),
        "--data",
        p(&data),
        "--keep",
        "id",
    ]);
    check_csv(&out, &fx, &["0", "1"]);
}
