//! Loop events: every step of the loop emits one, as a JSON log line and to the event sinks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One step of the loop: a drift report, an alert, a retrain, a gate decision, a promotion, a
/// swap.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopEvent {
    /// What happened: `drift_report`, `performance`, `alert`, `alert_suppressed`,
    /// `retrain_started`, `registered`, `gate`, `promoted`, `not_promoted`, `swapped`,
    /// `action`, `action_failed`.
    pub kind: String,
    /// Events scored when it happened (the loop's clock).
    pub at_event: u64,
    /// Event time of the last scored event, milliseconds since the epoch.
    pub time_ms: i64,
    /// The details, by kind.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl LoopEvent {
    /// A field as `f64`, if present and numeric.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.fields.get(name).and_then(serde_json::Value::as_f64)
    }

    /// A field as a string, if present and a string.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(serde_json::Value::as_str)
    }
}

/// Where loop events go. Implement it to forward them elsewhere (Application Insights custom
/// events, a queue); [`JsonlEventSink`] writes them to a local file.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Records one event. An error is logged by the loop and does not stop it.
    fn emit(&self, event: &LoopEvent) -> anyhow::Result<()>;
}

/// Sends the loop's decisions as events through the process-wide exporters
/// ([`ml_stream::track_event`]): `alert` as `AlertFired`, `promoted` as `ModelPromoted`,
/// `not_promoted` as `ModelRefused`, with the event's fields as properties — Application
/// Insights custom events (numbers also as measurements) and OTLP log records (fields as typed
/// attributes). Drift reports go out as metrics and `DriftDetected` from the orchestrator
/// itself. Without an installed exporter (`APPLICATIONINSIGHTS_CONNECTION_STRING` with feature
/// `azure`, `OTEL_EXPORTER_OTLP_ENDPOINT`) it sends nothing.
#[derive(Debug, Default)]
pub struct AppInsightsEventSink;

impl AppInsightsEventSink {
    /// The custom event name for a loop event kind, if it is one that is sent.
    pub fn event_name(kind: &str) -> Option<&'static str> {
        match kind {
            "alert" => Some("AlertFired"),
            "promoted" => Some("ModelPromoted"),
            "not_promoted" => Some("ModelRefused"),
            _ => None,
        }
    }
}

impl EventSink for AppInsightsEventSink {
    fn emit(&self, event: &LoopEvent) -> anyhow::Result<()> {
        let Some(name) = AppInsightsEventSink::event_name(&event.kind) else {
            return Ok(());
        };
        let text: Vec<(String, String)> = event
            .fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .chain([("at_event".to_string(), event.at_event.to_string())])
            .collect();
        let properties: Vec<(&str, String)> = text.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        ml_stream::track_event(name, &properties);
        Ok(())
    }
}

/// Writes each event as one JSON line to a file, flushed per event.
#[derive(Debug)]
pub struct JsonlEventSink {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl JsonlEventSink {
    /// Appends to `path` (created with its parent directories).
    pub fn create(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        Ok(JsonlEventSink {
            path,
            file: Mutex::new(file),
        })
    }

    /// A sink from a spec: `jsonl:DIR` (writes `DIR/loop-events.jsonl`) or `file:PATH`.
    pub fn from_spec(spec: &str) -> anyhow::Result<Self> {
        if let Some(dir) = spec.strip_prefix("jsonl:") {
            return JsonlEventSink::create(Path::new(dir).join("loop-events.jsonl"));
        }
        if let Some(path) = spec.strip_prefix("file:") {
            return JsonlEventSink::create(path);
        }
        anyhow::bail!("event sink `{spec}`: expected jsonl:DIR or file:PATH")
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl EventSink for JsonlEventSink {
    fn emit(&self, event: &LoopEvent) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&line)?;
        file.flush()?;
        Ok(())
    }
}
