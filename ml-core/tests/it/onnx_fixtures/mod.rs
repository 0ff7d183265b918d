//! The ONNX fixtures (`tests/fixtures/onnx`, written by scripts/reference/onnx_fixtures.py):
//! each model's rows and onnxruntime's and the estimator's recorded outputs, shared by the ONNX
//! Runtime and the native tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ml_core::{DataType, Field, Schema, Value};
use serde::Deserialize;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

#[derive(Deserialize)]
pub struct Fixture {
    pub name: String,
    pub task: String,
    pub input_layout: String,
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub onnxruntime: Expected,
    pub estimator: Expected,
}

#[derive(Deserialize)]
pub struct ColumnSpec {
    pub name: String,
}

#[derive(Deserialize)]
pub struct Expected {
    #[serde(default)]
    pub label: Vec<String>,
    #[serde(default)]
    pub probabilities: Vec<Vec<f64>>,
    #[serde(default)]
    pub values: Vec<f64>,
}

pub fn fixture(name: &str) -> Fixture {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every fixture.
pub const ALL: [&str; 10] = [
    "logistic_regression",
    "random_forest_classifier",
    "gradient_boosting_classifier",
    "hist_gradient_boosting_classifier",
    "pipeline_lr",
    "random_forest_regressor",
    "xgb_classifier",
    "lgbm_classifier",
    "bench_rf100_d8_f20",
    "bench_lr_f20",
];

/// The fields of the `pipeline_lr` fixture: three floats and two categoricals.
pub fn pipeline_lr_schema() -> Schema {
    Schema::new(vec![
        Field::new("income", DataType::Float),
        Field::new("age", DataType::Float),
        Field::new("balance", DataType::Float),
        Field::new("plan", DataType::categorical(["basic", "plus", "pro"]).unwrap()),
        Field::new(
            "region",
            DataType::categorical(["east", "north", "south", "west"]).unwrap(),
        ),
    ])
    .unwrap()
}
