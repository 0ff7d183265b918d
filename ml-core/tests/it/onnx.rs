//! ONNX models through ONNX Runtime, against the fixtures recorded by
//! scripts/reference/onnx_fixtures.py (see tests/fixtures/onnx/README.md): our predictions must
//! match Python onnxruntime within 1e-5 and the original estimator within 1e-4.
//!
//! These tests need the ONNX Runtime library (found as `ml_core::onnx::locate_runtime_library`
//! describes). Without it they fail when `CI` or `STREAMSCORE_REQUIRE_ONNX_RUNTIME` is set (as
//! scripts/test.sh does), and are skipped with a message otherwise.
#![cfg(feature = "onnx")]

use crate::onnx_fixtures;
use crate::onnx_graphs;

use std::path::PathBuf;
use std::sync::Arc;

use ml_core::onnx::{Engine, OnnxModel, OnnxOptions, locate_runtime_library};
use ml_core::{DataType, Error, Field, Frame, Model, OutputSpec, Schema, Value};
use onnx_fixtures::{ALL, Fixture, fixture, fixtures, pipeline_lr_schema};

/// True when the runtime is there; false (skip) only outside CI.
fn runtime_present() -> bool {
    match locate_runtime_library() {
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

/// These tests are about ONNX Runtime: they ask for it (the default engine would evaluate the
/// fixtures natively; tests/onnx_native.rs covers that).
fn runtime_options() -> OnnxOptions {
    OnnxOptions {
        engine: Engine::Runtime,
        ..OnnxOptions::default()
    }
}

fn load(name: &str, schema: Option<Schema>) -> ml_core::Result<OnnxModel> {
    OnnxModel::load(
        fixtures().join(format!("{name}.onnx")),
        schema,
        &runtime_options(),
    )
}

fn check_parity(model: &dyn Model, fx: &Fixture) {
    let frame = Frame::from_rows(model.schema().clone(), &fx.rows).unwrap();
    let p = model.predict(&frame).unwrap();
    assert_eq!(p.len(), fx.rows.len(), "{}", fx.name);
    if fx.task == "regression" {
        assert_eq!(model.output(), &OutputSpec::Regression);
        let values = p.values().unwrap();
        for (r, &v) in values.iter().enumerate() {
            let ort = fx.onnxruntime.values[r];
            let est = fx.estimator.values[r];
            assert!(
                (v - ort).abs() <= 1e-5 * ort.abs().max(1.0),
                "{} row {r}: {v} vs onnxruntime {ort}",
                fx.name
            );
            assert!(
                (v - est).abs() <= 1e-4 * est.abs().max(1.0),
                "{} row {r}: {v} vs estimator {est}",
                fx.name
            );
        }
        return;
    }
    assert_eq!(model.output().labels(), fx.labels.as_slice(), "{}", fx.name);
    let probs = p.probabilities().unwrap();
    let mut worst_ort = 0f64;
    let mut worst_est = 0f64;
    for r in 0..fx.rows.len() {
        for c in 0..fx.labels.len() {
            worst_ort = worst_ort.max((probs[[r, c]] - fx.onnxruntime.probabilities[r][c]).abs());
            worst_est = worst_est.max((probs[[r, c]] - fx.estimator.probabilities[r][c]).abs());
        }
        // The label: the most probable class, as onnxruntime says (rows with a near tie aside).
        let mut sorted: Vec<f64> = fx.onnxruntime.probabilities[r].clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 1e-5 {
            assert_eq!(
                p.label(r),
                Some(fx.onnxruntime.label[r].as_str()),
                "{} row {r}",
                fx.name
            );
        }
    }
    eprintln!(
        "{}: max |ours - onnxruntime| {worst_ort:.2e}, max |ours - estimator| {worst_est:.2e}",
        fx.name
    );
    assert!(
        worst_ort <= 1e-5,
        "{}: max |ours - onnxruntime| = {worst_ort:e}",
        fx.name
    );
    assert!(
        worst_est <= 1e-4,
        "{}: max |ours - estimator| = {worst_est:e}",
        fx.name
    );
}

#[test]
fn every_fixture_matches_onnxruntime_and_the_estimator() {
    if !runtime_present() {
        return;
    }
    for name in ALL {
        let fx = fixture(name);
        let model = load(name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.kind(), "onnx");
        assert_eq!(model.engine(), Engine::Runtime);
        check_parity(&model, &fx);
    }
}

#[test]
fn a_derived_schema_names_features_f0_and_pipeline_inputs_by_column() {
    if !runtime_present() {
        return;
    }
    let model = load("logistic_regression", None).unwrap();
    let names: Vec<&str> = model.schema().names().collect();
    assert_eq!(names, ["f0", "f1", "f2", "f3", "f4", "f5"]);
    assert!(model.schema().fields().iter().all(|f| f.dtype == DataType::Float));

    let fx = fixture("pipeline_lr");
    assert_eq!(fx.input_layout, "columns");
    let model = load("pipeline_lr", None).unwrap();
    let names: Vec<&str> = model.schema().names().collect();
    let want: Vec<&str> = fx.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, want);
    assert_eq!(model.schema().field("plan").unwrap().dtype, DataType::String);
    assert_eq!(model.output().labels(), ["no", "yes"]);

    let columns: Vec<String> = ["a", "b", "c", "d", "e", "f"].map(String::from).to_vec();
    let bytes = std::fs::read(fixtures().join("logistic_regression.onnx")).unwrap();
    let named = OnnxModel::from_bytes(bytes, "lr", None, Some(&columns), &runtime_options()).unwrap();
    assert_eq!(
        named.schema().names().collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e", "f"]
    );
}

#[test]
fn categorical_fields_feed_string_inputs_and_frames_map_columns_by_name() {
    if !runtime_present() {
        return;
    }
    let fx = fixture("pipeline_lr");
    let schema = pipeline_lr_schema();
    let model = load("pipeline_lr", Some(schema)).unwrap();
    check_parity(&model, &fx);

    // The same rows as CSV with the columns reordered and an extra id column.
    let mut csv = String::from("region,id,plan,balance,age,income\n");
    for (i, r) in fx.rows.iter().enumerate() {
        let text = |v: &Value| match v {
            Value::Float(x) => format!("{x}"),
            Value::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        csv.push_str(&format!(
            "{},{i},{},{},{},{}\n",
            text(&r[4]),
            text(&r[3]),
            text(&r[2]),
            text(&r[1]),
            text(&r[0])
        ));
    }
    let frame = Frame::from_csv(csv.as_bytes(), model.schema().clone(), &Default::default()).unwrap();
    let p = model.predict(&frame).unwrap();
    for r in 0..fx.rows.len() {
        let got = p.probabilities().unwrap()[[r, 1]];
        assert!(
            (got - fx.onnxruntime.probabilities[r][1]).abs() <= 1e-5,
            "row {r}"
        );
    }
}

#[test]
fn corrupt_and_truncated_files_are_specific_errors() {
    if !runtime_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixtures().join("random_forest_classifier.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let e = OnnxModel::load(&truncated, None, &runtime_options()).unwrap_err();
    assert!(matches!(e, Error::InvalidOnnxModel { .. }), "{e:?}");
    assert!(
        e.to_string().contains("truncated.onnx") && e.to_string().contains("truncated"),
        "{e}"
    );

    let corrupt = dir.path().join("corrupt.onnx");
    let mut bytes = good.clone();
    for b in bytes.iter_mut().skip(16).step_by(7) {
        *b ^= 0xa5;
    }
    std::fs::write(&corrupt, &bytes).unwrap();
    let e = OnnxModel::load(&corrupt, None, &runtime_options()).unwrap_err();
    assert!(matches!(e, Error::InvalidOnnxModel { .. }), "{e:?}");

    let text = dir.path().join("model.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    let e = OnnxModel::load(&text, None, &runtime_options()).unwrap_err();
    assert!(matches!(e, Error::InvalidOnnxModel { .. }), "{e:?}");

    let e = OnnxModel::load(dir.path().join("absent.onnx"), None, &runtime_options()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[test]
fn a_schema_that_does_not_fit_the_inputs_is_a_schema_mismatch() {
    if !runtime_present() {
        return;
    }
    // Five fields for a six-feature input.
    let five = Schema::new(
        (0..5)
            .map(|i| Field::new(format!("x{i}"), DataType::Float))
            .collect(),
    )
    .unwrap();
    let e = load("logistic_regression", Some(five)).unwrap_err();
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("takes 6 features per row but the schema has 5 fields"),
        "{e}"
    );

    // A categorical field cannot go into a float matrix.
    let mut fields: Vec<Field> = (0..5)
        .map(|i| Field::new(format!("x{i}"), DataType::Float))
        .collect();
    fields.push(Field::new("plan", DataType::categorical(["a", "b"]).unwrap()));
    let e = load("logistic_regression", Some(Schema::new(fields).unwrap())).unwrap_err();
    assert!(e.to_string().contains("field `plan` is categorical"), "{e}");

    // Per-column inputs: a missing column and a wrongly typed one.
    let e = load(
        "pipeline_lr",
        Some(Schema::new(vec![Field::new("income", DataType::Float)]).unwrap()),
    )
    .unwrap_err();
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    let wrong = Schema::new(vec![
        Field::new("income", DataType::Float),
        Field::new("age", DataType::Float),
        Field::new("balance", DataType::Float),
        Field::new("plan", DataType::Float),
        Field::new("region", DataType::String),
    ])
    .unwrap();
    let e = load("pipeline_lr", Some(wrong)).unwrap_err();
    assert!(
        e.to_string()
            .contains("input `plan` is a string tensor but field `plan` is float"),
        "{e}"
    );

    // A frame without the model's fields.
    let model = load("logistic_regression", None).unwrap();
    let other = Schema::new(vec![Field::new("f0", DataType::Float)]).unwrap();
    let frame = Frame::from_rows(other, &[vec![Value::Float(1.0)]]).unwrap();
    let e = model.predict(&frame).unwrap_err();
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
}

#[test]
fn a_missing_runtime_library_is_a_clear_error() {
    let options = OnnxOptions {
        library: Some(PathBuf::from("no-such-dir/libonnxruntime.so.1.31.1")),
        engine: Engine::Runtime,
        ..OnnxOptions::default()
    };
    let e = OnnxModel::load(fixtures().join("logistic_regression.onnx"), None, &options).unwrap_err();
    assert!(matches!(e, Error::OnnxRuntimeUnavailable { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("no-such-dir/libonnxruntime.so.1.31.1") && text.contains("pip install"),
        "{text}"
    );
}

#[test]
fn an_artifact_round_trip_keeps_schema_labels_and_predictions() {
    if !runtime_present() {
        return;
    }
    let fx = fixture("pipeline_lr");
    let schema = pipeline_lr_schema();
    let model = load("pipeline_lr", Some(schema.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("artifact");
    model.to_artifact().unwrap().save(&path).unwrap();
    assert!(path.join("model.onnx").is_file());
    let loaded: Arc<dyn Model> = ml_core::load_model(&path).unwrap();
    assert_eq!(loaded.kind(), "onnx");
    assert_eq!(loaded.schema(), &schema);
    check_parity(loaded.as_ref(), &fx);

    // Labels given at import time are kept by the artifact.
    let options = OnnxOptions {
        labels: Some(vec!["neg".into(), "pos".into()]),
        engine: Engine::Runtime,
        ..OnnxOptions::default()
    };
    let relabeled = OnnxModel::load(
        fixtures().join("gradient_boosting_classifier.onnx"),
        None,
        &options,
    )
    .unwrap();
    let path2 = dir.path().join("relabeled");
    relabeled.to_artifact().unwrap().save(&path2).unwrap();
    let again = ml_core::load_model(&path2).unwrap();
    assert_eq!(again.output().labels(), ["neg", "pos"]);
}

#[test]
fn auto_falls_back_to_onnx_runtime_for_an_unsupported_operator() {
    if !runtime_present() {
        return;
    }
    let bytes = onnx_graphs::model_bytes(onnx_graphs::graph_with_unsupported_operator());
    let model =
        OnnxModel::from_bytes(bytes.clone(), "mul.onnx", None, None, &OnnxOptions::default()).unwrap();
    assert_eq!(model.engine(), Engine::Runtime);
    let frame = Frame::from_rows(
        model.schema().clone(),
        &[vec![Value::Float(0.25)], vec![Value::Float(0.75)]],
    )
    .unwrap();
    // Leaves 10 and 20, squared by Mul.
    assert_eq!(
        model.predict(&frame).unwrap().values().unwrap().to_vec(),
        [100.0, 400.0]
    );
    // Asking for the native engine is refused, naming the operator and its node.
    let native = OnnxOptions {
        engine: Engine::Native,
        ..OnnxOptions::default()
    };
    let e = OnnxModel::from_bytes(bytes, "mul.onnx", None, None, &native).unwrap_err();
    assert!(
        matches!(&e, Error::UnsupportedOnnxOperators { operators, .. } if operators == &["`Mul` (node `Mul_0`)"]),
        "{e:?}"
    );
}

#[test]
fn auto_without_a_runtime_fails_naming_the_unsupported_operators_and_the_fix() {
    let bytes = onnx_graphs::model_bytes(onnx_graphs::graph_with_unsupported_operator());
    let options = OnnxOptions {
        library: Some(PathBuf::from("no-such-dir/libonnxruntime.so.1.31.1")),
        ..OnnxOptions::default()
    };
    let e = OnnxModel::from_bytes(bytes, "mul.onnx", None, None, &options).unwrap_err();
    assert!(matches!(e, Error::OnnxRuntimeUnavailable { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("mul.onnx needs it")
            && text.contains("`Mul` (node `Mul_0`)")
            && text.contains("pip install"),
        "{text}"
    );
    // A graph that runs natively needs no runtime at all, even with a wrong library named.
    let model = OnnxModel::load(fixtures().join("random_forest_regressor.onnx"), None, &options).unwrap();
    assert_eq!(model.engine(), Engine::Native);
    assert!(model.runtime_library().is_none());
}
