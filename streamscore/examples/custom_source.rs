//! A source of one's own in the loop: a `StreamSource` registered under its own spec scheme
//! (`gen:`), named in the config like any built-in one, and read by the loop for both the
//! events and the labels.
//!
//! `cargo run --example custom_source`

mod common;

use std::sync::Arc;
use std::time::Instant;

use ml_serve::{AppState, ServeConfig};
use ml_stream::{Event, SpecRegistry, StreamSource};
use streamscore::config::Config;
use streamscore::datagen::{LoopStreamConfig, loop_stream};
use streamscore::run::{FeedOptions, LoopIo, LoopSettings, Orchestrator, feed};

/// Generated credit events (`gen:events?n=N&drift_from=K`) or their delayed labels
/// (`gen:labels?n=N&drift_from=K`), as JSON lines at offsets 0, 1, 2, ... of partition 0. A real
/// source would read a queue or a database; the contract is the same (see `StreamSource`).
#[derive(Debug)]
struct GeneratedSource {
    lines: Vec<String>,
    next: usize,
}

impl GeneratedSource {
    fn from_spec(spec: &ml_stream::Spec) -> ml_stream::Result<Box<dyn StreamSource>> {
        spec.only_params(&["n", "drift_from"])?;
        let n = spec.u64_param("n", 4_000)? as usize;
        let drift_from = spec.u64_param("drift_from", n as u64 / 2)? as usize;
        let (events, labels) = loop_stream(&LoopStreamConfig {
            events: n,
            drift_from,
            rate_per_s: 1_000.0,
            ..LoopStreamConfig::default()
        })
        .map_err(|e| ml_stream::Error::InvalidSpec {
            spec: spec.raw.clone(),
            reason: e.to_string(),
        })?;
        let lines = match spec.path.as_str() {
            "events" => events
                .iter()
                .map(|e| {
                    let mut m = e.features.clone();
                    m.insert("correlationid".into(), e.correlation_id.clone().into());
                    m.insert("time".into(), e.time_ms.into());
                    serde_json::Value::Object(m).to_string()
                })
                .collect(),
            "labels" => labels
                .iter()
                .map(|l| {
                    serde_json::json!({"correlationid": l.correlation_id, "label": l.label, "time": l.time_ms})
                        .to_string()
                })
                .collect(),
            other => {
                return Err(ml_stream::Error::InvalidSpec {
                    spec: spec.raw.clone(),
                    reason: format!("`{other}`: expected gen:events or gen:labels"),
                });
            }
        };
        Ok(Box::new(GeneratedSource { lines, next: 0 }))
    }
}

#[async_trait::async_trait]
impl StreamSource for GeneratedSource {
    async fn next_batch(&mut self, max: usize, _deadline: Instant) -> ml_stream::Result<Vec<Event>> {
        let end = (self.next + max).min(self.lines.len());
        let batch = (self.next..end)
            .map(|i| Event::new(self.lines[i].as_bytes().to_vec(), 0, i as u64))
            .collect();
        self.next = end;
        Ok(batch)
    }

    fn is_exhausted(&self) -> bool {
        self.next >= self.lines.len()
    }

    fn describe(&self) -> String {
        format!("generated ({} lines)", self.lines.len())
    }
}

const CONFIG: &str = r#"
[stream]
source = "gen:events?n=8000&drift_from=4000"
batch_size = 250
[labels]
source = "gen:labels?n=8000&drift_from=4000"
[monitor]
window = 1000
[[alert]]
when = "share_drifted_features > 0.25"
cooldown = 10000
[retrain]
min_labelled = 1500
"#;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = common::prod_registry(dir.path(), 3_000)?;

    // The built-in schemes plus ours: from here on `gen:` is a source spec like `kafka://`.
    let mut specs = SpecRegistry::default();
    specs.register_source("gen", GeneratedSource::from_spec);

    let config = Config::parse(CONFIG)?;
    let settings = LoopSettings::from_config(&config)?;
    let state = AppState::new(ServeConfig::default())?;
    let mut orchestrator = Orchestrator::start(settings, Arc::new(registry), state.clone())?;
    let mut io = LoopIo::from_config(&config, &specs)?;
    let options = FeedOptions {
        batch: 250,
        ..FeedOptions::default()
    };
    let report = tokio::runtime::Runtime::new()?.block_on(feed(&mut orchestrator, &mut io, &options))?;
    let counters = orchestrator.finish();
    println!("{report:?}");
    println!("{}", serde_json::to_string(&counters)?);
    anyhow::ensure!(
        report.events_read == 8_000 && counters.scored == 8_000,
        "{report:?}"
    );
    anyhow::ensure!(report.labels_read == 8_000, "{report:?}");
    // Every label arrives within the delay window: all joined.
    anyhow::ensure!(counters.labels.matched == 8_000, "{counters:?}");
    // 8 windows of 1000, less the partial one dropped when the retrained model swaps in.
    anyhow::ensure!((7..=8).contains(&counters.drift_reports), "{counters:?}");
    anyhow::ensure!(
        counters.alerts == 1 && counters.retrains == 1,
        "one alert in the drifted half, one retrain: {counters:?}"
    );
    Ok(())
}
