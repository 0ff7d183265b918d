//! Custom plug-ins for the loop: an event sink that forwards loop events elsewhere (here: it
//! keeps counts per kind and prints alerts), and an alert action of one's own.
//!
//! `cargo run --example custom_sink`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use streamscore::run::{ActionOutcome, Alert, AlertAction, EventSink, LoopEvent};

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

/// An action that pages someone (here: prints) and also asks for a retrain.
#[derive(Debug)]
struct PageAndRetrain;

impl AlertAction for PageAndRetrain {
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome> {
        println!("paging on-call: {}", alert.reason);
        Ok(ActionOutcome {
            message: "paged".into(),
            retrain: true,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let sink = CountingSink::default();
    let event = LoopEvent {
        kind: "alert".into(),
        at_event: 42,
        time_ms: 0,
        fields: serde_json::json!({"reason": "dataset_drift (value 1)"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    sink.emit(&event)?;
    let outcome = PageAndRetrain.run(&Alert {
        rule: "r".into(),
        value: 1.0,
        at_event: 42,
        reason: "drift".into(),
    })?;
    anyhow::ensure!(outcome.retrain);
    let counts = sink.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    anyhow::ensure!(counts.get("alert") == Some(&1), "{counts:?}");
    // In a loop: orchestrator.add_sink(Box::new(sink)); orchestrator.add_action("page", Box::new(PageAndRetrain));
    // and `action = "page"` in an [[alert]] rule.
    println!("{counts:?}");
    Ok(())
}
