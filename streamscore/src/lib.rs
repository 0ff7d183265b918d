//! streamscore: online scoring of classical ML models on event streams, and the loop around it —
//! train, register, serve, score streams, log inferences, detect drift, alert, retrain, promote.
//!
//! This facade crate re-exports the building blocks and holds the workflows that the
//! `streamscore` command runs, so that Rust programs can run them too:
//!
//! - [`ml_core`] (re-exported as [`core`]) — schemas, frames, models, scorers, estimators,
//!   metrics, model artifacts, the synthetic credit-default data set.
//! - [`ml_registry`] (re-exported as [`registry`]) — the model registry: versions, aliases,
//!   lineage, promotion between registries, MLflow import/export.
//! - [`train`] — train from a CSV file with a reproducible validation split and save an artifact.
//! - [`predict`] — score a CSV file with a saved model.
//! - [`drift`] — profile training data and detect drift in current data.
//! - [`sweep`] — random search over estimator parameters, keeping the best on validation.
//!
//! # Example
//! ```
//! use streamscore::core::datasets::{credit_default, CreditDefaultConfig};
//! use streamscore::core::{Estimator, Model, ModelArtifact};
//! use streamscore::train::{train, TrainRequest};
//!
//! let dir = tempfile::tempdir()?;
//! let data = dir.path().join("credit.csv");
//! let generated = credit_default(&CreditDefaultConfig { rows: 2_000, seed: 1, drift: 0.0 })?;
//! generated.write_csv(std::fs::File::create(&data)?)?;
//! std::fs::write(dir.path().join("credit.schema.json"), streamscore::datagen::credit_schema()?.to_json())?;
//!
//! let request = TrainRequest::new(&data, "default", Estimator::from_name("logistic_regression", &[])?);
//! let outcome = train(&request)?;
//! assert!(outcome.metrics.validation.get("roc_auc").unwrap() > 0.6);
//! outcome.artifact(&request)?.save(dir.path().join("model"))?;
//! let model = streamscore::core::load_model(dir.path().join("model"))?;
//! assert_eq!(model.output().labels(), ["0", "1"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub use ml_core;
pub use ml_core as core;
pub use ml_registry;
pub use ml_registry as registry;

pub mod config;
pub mod datagen;
pub mod drift;
pub mod monitor;
pub mod predict;
pub mod run;
pub mod stream;
pub mod sweep;
pub mod train;
