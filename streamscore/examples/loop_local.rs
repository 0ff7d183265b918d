//! The loop assembled in Rust from the crates: train and register a model, serve it, stream
//! drifting events with delayed labels through the loop, and watch it retrain and swap.
//!
//! `cargo run --example loop_local`

use std::sync::Arc;

use ml_core::Estimator;
use ml_core::datasets::{CreditDefaultConfig, credit_default};
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions};
use ml_serve::{AppState, ServeConfig};
use streamscore::datagen::{LoopStreamConfig, credit_schema, loop_stream};
use streamscore::run::{LoopSettings, Orchestrator, simulate};
use streamscore::train::{TrainRequest, train};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // 1. Training data and a first model, registered and promoted to @prod.
    let data = dir.path().join("train.csv");
    credit_default(&CreditDefaultConfig {
        rows: 3_000,
        seed: 1,
        drift: 0.0,
    })?
    .write_csv(std::fs::File::create(&data)?)?;
    std::fs::write(dir.path().join("train.schema.json"), credit_schema()?.to_json())?;
    let request = TrainRequest::new(
        &data,
        "default",
        Estimator::from_name("logistic_regression", &[])?,
    );
    let artifact = train(&request)?.artifact(&request)?;
    let registry = LocalRegistry::open(dir.path().join("registry"))?;
    let v1 =
        futures::executor::block_on(registry.register("credit", &artifact, &RegisterOptions::default()))?;
    futures::executor::block_on(registry.set_alias("credit", "prod", v1.version))?;

    // 2. The endpoint state and the loop around it: drift windows of 1000 events, one rule
    //    (dataset drift → retrain), retrain once 3000 labelled events since the alert came in.
    let state = AppState::new(ServeConfig::default())?;
    let mut settings = LoopSettings {
        window: 1_000,
        min_labelled: 1_500,
        ..LoopSettings::default()
    };
    settings.rules[0].cooldown = 10_000;
    let mut orchestrator = Orchestrator::start(settings, Arc::new(registry), state.clone())?;

    // 3. 16 000 events, drifted from event 8 000 on, labels 1–5 s after each prediction.
    let (events, labels) = loop_stream(&LoopStreamConfig {
        events: 16_000,
        drift_from: 8_000,
        rate_per_s: 1_000.0,
        ..LoopStreamConfig::default()
    })?;
    simulate(&mut orchestrator, &events, &labels, 250)?;
    let counters = orchestrator.finish();

    // 4. What happened.
    for e in orchestrator
        .timeline()
        .iter()
        .filter(|e| e.kind != "drift_report" && e.kind != "performance")
    {
        println!(
            "event {:>6} {:<16} {}",
            e.at_event,
            e.kind,
            serde_json::Value::Object(e.fields.clone())
        );
    }
    println!("{}", serde_json::to_string(&counters)?);
    anyhow::ensure!(counters.promotions == 1, "expected one promotion: {counters:?}");
    anyhow::ensure!(
        state.model().map(|m| m.version.clone()).as_deref() == Some("2"),
        "v2 is served"
    );
    Ok(())
}
