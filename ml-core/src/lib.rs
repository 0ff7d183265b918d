//! The core data model of streamscore: what a model reads, what it predicts, how it is trained
//! and how it is stored.
//!
//! - [`Schema`] — typed, ordered fields (float, int, bool, categorical with vocabulary,
//!   string; nullable), with a JSON form and MLflow's signature form.
//! - [`Frame`] — a batch of rows with its schema, built from CSV, JSON records, JSON arrays or
//!   Rust values; validated once per batch with errors that name field, row and problem.
//! - [`Model`] (synchronous, CPU-bound) and [`Scorer`] (async), with [`OutputSpec`] and
//!   [`Predictions`]; [`LocalScorer`] runs a model as a scorer.
//! - [`Estimator`] — training configuration; fitting returns a [`NativeModel`] that carries its
//!   own preprocessing (imputation, scaling, one-hot encoding), so raw records go in.
//! - [`ModelArtifact`] — the checksummed directory a model is saved to and loaded from.
//!
//! One design decision shapes the rest: **validation happens when a frame is built**, not when a
//! model predicts. A `Frame` that exists is well-typed against its schema, so models, scorers and
//! pipelines never re-check values on the hot path, and bad input is reported once, with every
//! problem in the batch, before any work is done.
//!
//! # Example
//! ```
//! use ml_core::{Estimator, Frame, InferOptions, CsvTable, Model, ReadOptions};
//!
//! let csv = "income,plan,churn\n20,basic,1\n80,pro,0\n25,basic,1\n70,pro,0\n30,pro,1\n90,basic,0\n";
//! let table = CsvTable::read(csv.as_bytes(), "customers.csv")?;
//! let schema = table.infer_schema(&InferOptions::default())?; // plan → categorical
//! let data = table.to_frame(schema, &ReadOptions::default())?;
//!
//! let model = Estimator::from_name("logistic_regression", &[])?.fit(&data, "churn")?;
//! let new = Frame::from_csv("income,plan\n22,basic\n".as_bytes(), model.schema().clone(), &ReadOptions::default())?;
//! let p = model.predict(&new)?;
//! assert_eq!(p.label(0), Some("1"));
//! assert!(p.positive_probabilities().unwrap()[0] > 0.5);
//! # Ok::<(), ml_core::Error>(())
//! ```

#![deny(missing_docs)]

pub mod artifact;
pub mod cancel;
pub mod datasets;
pub mod error;
pub mod estimator;
pub mod failpoint;
pub mod frame;
pub mod kernel;
pub mod metrics;
pub mod model;
pub mod native;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "onnx-native")]
pub mod onnx_ml;
pub mod preprocess;
pub mod rng;
pub mod schema;
pub mod split;
pub mod validation;

pub use artifact::{ModelArtifact, load_model};
pub use error::{Error, Result};
pub use estimator::{DecisionTreeParams, Estimator, LogisticRegressionParams, RandomForestParams};
pub use frame::infer_schema_json_records;
pub use frame::{Column, CsvTable, ExtraColumns, Frame, InferOptions, ReadOptions, TypeHint, Value};
pub use metrics::{ClassificationMetrics, RegressionMetrics};
pub use model::PredictOptions;
pub use model::{LocalScorer, Model, OutputSpec, Predictions, Scorer};
pub use native::NativeModel;
#[cfg(feature = "onnx")]
pub use onnx::{OnnxModel, OnnxOptions};
#[cfg(feature = "onnx-native")]
pub use onnx_ml::NativeOnnxModel;
pub use schema::{DataType, Field, Schema, UnseenPolicy, Vocabulary};
