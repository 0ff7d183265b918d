//! What the examples share: a registry with a first model, `credit@prod`, trained on
//! undrifted generated data.

use std::path::Path;

use ml_core::Estimator;
use ml_core::datasets::{CreditDefaultConfig, credit_default};
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions};
use streamscore::datagen::credit_schema;
use streamscore::train::{TrainRequest, train};

/// Trains a logistic regression on `rows` undrifted rows and registers it as `credit@prod`
/// (version 1) in a local registry under `dir`.
pub fn prod_registry(dir: &Path, rows: usize) -> anyhow::Result<LocalRegistry> {
    let data = dir.join("train.csv");
    credit_default(&CreditDefaultConfig {
        rows,
        seed: 1,
        drift: 0.0,
    })?
    .write_csv(std::fs::File::create(&data)?)?;
    std::fs::write(dir.join("train.schema.json"), credit_schema()?.to_json())?;
    let request = TrainRequest::new(
        &data,
        "default",
        Estimator::from_name("logistic_regression", &[])?,
    );
    let artifact = train(&request)?.artifact(&request)?;
    let registry = LocalRegistry::open(dir.join("registry"))?;
    let v1 =
        futures::executor::block_on(registry.register("credit", &artifact, &RegisterOptions::default()))?;
    futures::executor::block_on(registry.set_alias("credit", "prod", v1.version))?;
    Ok(registry)
}
