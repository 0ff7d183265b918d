//! Custom plug-ins for the loop: an event sink that forwards loop events elsewhere (here: it
//! keeps counts per kind and prints alerts), and an alert action of one's own, both plugged
//! into a running loop.
//!
//! `cargo run --example custom_sink`

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ml_serve::{AppState, ServeConfig};
use streamscore::datagen::{LoopStreamConfig, loop_stream};
use streamscore::run::{
    ActionOutcome, Alert, AlertAction, EventSink, LoopEvent, LoopSettings, Orchestrator, simulate,
};

/// Counts events by kind; a real one would post them to a monitoring service.
#[derive(Debug, Default, Clone)]
struct CountingSink {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl EventSink for CountingSink {
    fn emit(&self, event: &LoopEvent) -> anyhow::Result<()> {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(event.kind.clone())
            .or_default() += 1;
        if event.kind == "alert" {
            println!("alert at event {}: {:?}", event.at_event, event.text("reason"));
        }
        Ok(())
    }
}

/// An action that pages someone (here: prints and counts) and also asks for a retrain.
#[derive(Debug, Default)]
struct PageAndRetrain {
    pages: Arc<AtomicU64>,
}

impl AlertAction for PageAndRetrain {
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome> {
        self.pages.fetch_add(1, Ordering::SeqCst);
        println!("paging on-call: {}", alert.reason);
        Ok(ActionOutcome {
            message: "paged".into(),
            retrain: true,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = common::prod_registry(dir.path(), 3_000)?;
    // One rule whose action is ours: `action = "page"` (in Rust here; in a config file the
    // same name, with the action added before the loop starts).
    let mut settings = LoopSettings {
        window: 1_000,
        min_labelled: 1_500,
        ..LoopSettings::default()
    };
    settings.rules[0].cooldown = 10_000;
    settings.rules[0].action = "page".into();
    let mut orchestrator = Orchestrator::start(
        settings,
        Arc::new(registry),
        AppState::new(ServeConfig::default())?,
    )?;
    let sink = CountingSink::default();
    let page = PageAndRetrain::default();
    let pages = page.pages.clone();
    orchestrator.add_sink(Box::new(sink.clone()));
    orchestrator.add_action("page", Box::new(page));

    let (events, labels) = loop_stream(&LoopStreamConfig {
        events: 8_000,
        drift_from: 3_000,
        rate_per_s: 1_000.0,
        ..LoopStreamConfig::default()
    })?;
    simulate(&mut orchestrator, &events, &labels, 250)?;
    let counters = orchestrator.finish();
    let counts = sink.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!("{counts:?}");
    // The sink saw every event the loop emitted after it was added (all but the first,
    // `serving`), and our action paged once and got its retrain.
    anyhow::ensure!(
        counts.values().sum::<u64>() + 1 == orchestrator.timeline().len() as u64,
        "{counts:?}"
    );
    anyhow::ensure!(counts.get("alert") == Some(&1), "{counts:?}");
    anyhow::ensure!(pages.load(Ordering::SeqCst) == 1, "paged once");
    anyhow::ensure!(counters.retrains == 1, "{counters:?}");
    anyhow::ensure!(counts.get("registered") == Some(&1), "{counts:?}");
    Ok(())
}
