//! A drift test of one's own: registered by name with `ml_drift::register_test`, then chosen
//! per feature in the config's `[monitor.features.NAME]` like a built-in test, and reported
//! (and alerted on) by the loop.
//!
//! `cargo run --example custom_detector`

mod common;

use std::sync::Arc;

use ml_drift::detect::{FeatureInput, ScoreKind, TestScore};
use ml_drift::{DriftDetector, register_test};
use ml_serve::{AppState, ServeConfig};
use streamscore::config::Config;
use streamscore::datagen::{LoopStreamConfig, loop_stream};
use streamscore::run::{LoopSettings, Orchestrator, simulate};

/// Standardized mean shift: |mean(current) − mean(reference)| / sd(reference). A distance: drift
/// when it reaches the threshold.
#[derive(Debug)]
struct MeanShift;

impl DriftDetector for MeanShift {
    fn name(&self) -> &'static str {
        "mean_shift"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::Distance
    }
    fn applies_to(&self, t: ml_drift::FeatureType) -> bool {
        t == ml_drift::FeatureType::Numerical
    }
    fn test(&self, reference: &FeatureInput<'_>, current: &FeatureInput<'_>) -> TestScore {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        // A constant reference is not scaled (as normed Wasserstein).
        let sd = if reference.std > 0.0 { reference.std } else { 1.0 };
        let score = (mean(current.sorted) - mean(reference.sorted)).abs() / sd;
        TestScore {
            score: if score.is_finite() { score } else { 0.0 },
            p_value: None,
        }
    }
}

// AGE is 4 years higher in the drifted half (about 0.4 reference sd); 0.2 sd is well above what
// a 1000-row window of the reference population shows by chance (about 0.03).
const CONFIG: &str = r#"
[monitor]
window = 1000
prediction_drift = false
[monitor.features.AGE]
test = "mean_shift"
threshold = 0.2
[[alert]]
when = "feature:AGE.drift_score > 0.2"
action = "log"
cooldown = 1000
"#;

fn main() -> anyhow::Result<()> {
    // Before the config is read: the config check refuses test names it does not know.
    register_test("mean_shift", || Box::new(MeanShift))?;
    let dir = tempfile::tempdir()?;
    let registry = common::prod_registry(dir.path(), 3_000)?;
    let settings = LoopSettings::from_config(&Config::parse(CONFIG)?)?;
    let mut orchestrator = Orchestrator::start(
        settings,
        Arc::new(registry),
        AppState::new(ServeConfig::default())?,
    )?;
    let (events, labels) = loop_stream(&LoopStreamConfig {
        events: 6_000,
        drift_from: 3_000,
        rate_per_s: 1_000.0,
        ..LoopStreamConfig::default()
    })?;
    simulate(&mut orchestrator, &events, &labels, 500)?;
    let counters = orchestrator.finish();
    let reports: Vec<(u64, f64, String)> = orchestrator
        .timeline()
        .iter()
        .filter(|e| e.kind == "drift_report")
        .map(|e| {
            let age = &e.fields["features"]["AGE"];
            (
                e.at_event,
                age["score"].as_f64().unwrap_or(f64::NAN),
                age["test"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (at, score, test) in &reports {
        println!("event {at:>5}: AGE {test} = {score:.3}");
    }
    anyhow::ensure!(reports.len() == 6, "{reports:?}");
    anyhow::ensure!(reports.iter().all(|(_, _, t)| t == "mean_shift"), "{reports:?}");
    // Below the threshold before the drift, above it after.
    anyhow::ensure!(
        reports.iter().all(|(at, s, _)| (*at > 3_000) == (*s > 0.2)),
        "{reports:?}"
    );
    // The rule on our test fired in each drifted window (cooldown 1000) and logged.
    anyhow::ensure!(counters.alerts == 3 && counters.retrains == 0, "{counters:?}");
    Ok(())
}
