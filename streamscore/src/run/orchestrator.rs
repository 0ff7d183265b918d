//! The loop itself: score, monitor, alert, retrain off the scoring path, gate, promote, swap.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ml_core::{Frame, ReadOptions};
use ml_drift::{DriftReport, ReferenceProfile};
use ml_registry::{ModelRegistry, ModelVersion};
use ml_serve::{AppState, ServedModel};
use serde_json::{Value, json};

use super::LoopSettings;
use super::actions::{Alert, AlertAction, builtin};
use super::events::{EventSink, LoopEvent};
use super::labels::{JoinCounts, Label, LabelJoin, Pending, RollingPerformance};
use super::retrain::{LabelledRow, RetrainOutcome, retrain_cycle};
use super::rules::Observations;

/// One event to score: its correlation id, its time and its features.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoringEvent {
    /// Correlation id (labels name it).
    pub correlation_id: String,
    /// Event time, milliseconds since the epoch.
    pub time_ms: i64,
    /// The features.
    pub features: serde_json::Map<String, Value>,
}

/// What scoring a batch gave.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredBatch {
    /// The version that scored the whole batch.
    pub version: u32,
    /// One score per event: positive-class probability or regression value.
    pub scores: Vec<f64>,
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LoopCounters {
    /// Events scored.
    pub scored: u64,
    /// Events refused (bad input or a scoring failure).
    pub failed: u64,
    /// Drift reports computed.
    pub drift_reports: u64,
    /// Alerts fired.
    pub alerts: u64,
    /// Rule hits not fired because of the cooldown.
    pub suppressed: u64,
    /// Retrains finished (registered).
    pub retrains: u64,
    /// Retrains that failed.
    pub retrain_failures: u64,
    /// Versions promoted and swapped in.
    pub promotions: u64,
    /// The label join.
    pub labels: JoinCounts,
}

/// Fewest rows in a drift window closed by time.
const MIN_WINDOW: usize = 10;

type Running = (JoinHandle<anyhow::Result<RetrainOutcome>>, Alert);

/// A handle that queues alerts from other threads (the `/alerts` route, a CLI trigger); the
/// loop runs their action at its next batch.
#[derive(Clone, Debug)]
pub struct TriggerHandle {
    tx: mpsc::Sender<(Alert, String)>,
}

impl TriggerHandle {
    /// Queues `alert` for the action named `action`.
    pub fn trigger(&self, alert: Alert, action: &str) -> bool {
        self.tx.send((alert, action.to_string())).is_ok()
    }
}

/// The loop. Feed it batches of events ([`Orchestrator::score_batch`]) and labels
/// ([`Orchestrator::labels`]) in time order; it does the rest.
#[derive(Debug)]
pub struct Orchestrator {
    settings: LoopSettings,
    registry: Arc<dyn ModelRegistry>,
    state: AppState,
    serving: ModelVersion,
    serving_model: Arc<ServedModel>,
    reference: ReferenceProfile,
    sinks: Vec<Box<dyn EventSink>>,
    actions: BTreeMap<String, Box<dyn AlertAction>>,
    window: Vec<Value>,
    window_started_ms: Option<i64>,
    window_failed: u64,
    window_latency_ms: f64,
    window_batches: u64,
    join: LabelJoin,
    performance: RollingPerformance,
    labelled: VecDeque<(u64, LabelledRow)>,
    last_time_ms: i64,
    last_fired: Vec<Option<u64>>,
    last_scheduled: u64,
    queued: VecDeque<(Alert, u64)>,
    running: Option<Running>,
    triggers: mpsc::Receiver<(Alert, String)>,
    trigger_tx: mpsc::Sender<(Alert, String)>,
    timeline: Vec<LoopEvent>,
    last_report: Option<DriftReport>,
    alert_report: Option<DriftReport>,
    counters: LoopCounters,
}

impl Orchestrator {
    /// Starts the loop on `settings.retrain.model_name@alias` from `registry`, loading it into
    /// `state` (the endpoint).
    pub fn start(
        settings: LoopSettings,
        registry: Arc<dyn ModelRegistry>,
        state: AppState,
    ) -> anyhow::Result<Self> {
        let reference: ml_registry::Reference =
            format!("{}@{}", settings.retrain.model_name, settings.retrain.alias).parse()?;
        let loaded = futures::executor::block_on(registry.get(&reference))?;
        let profile = crate::drift::artifact_profile(&loaded.artifact, &reference.to_string())?;
        let model = loaded.artifact.load_model()?;
        let served = ServedModel::new(
            &settings.retrain.model_name,
            loaded.version.version.to_string(),
            model,
        )?;
        state.set_model(served);
        let serving_model = state
            .model()
            .ok_or_else(|| anyhow::anyhow!("the endpoint has no model right after loading one"))?;
        let (trigger_tx, triggers) = mpsc::channel();
        let n_rules = settings.rules.len();
        let mut actions: BTreeMap<String, Box<dyn AlertAction>> = BTreeMap::new();
        for rule in &settings.rules {
            // A name that is no built-in is one the caller adds with `add_action` (a rule
            // whose action is still missing when it fires emits `action_failed`).
            if !actions.contains_key(&rule.action)
                && let Ok(action) = builtin(&rule.action)
            {
                actions.insert(rule.action.clone(), action);
            }
        }
        for name in ["retrain", "log"] {
            if !actions.contains_key(name) {
                actions.insert(name.to_string(), builtin(name)?);
            }
        }
        let performance = RollingPerformance::new(
            settings.performance_window,
            serving_model.model.output().labels().is_empty(),
        );
        let mut me = Orchestrator {
            join: LabelJoin::new(settings.delay_window_ms),
            performance,
            settings,
            registry,
            state,
            serving: loaded.version,
            serving_model,
            reference: profile,
            sinks: Vec::new(),
            actions,
            window: Vec::new(),
            window_started_ms: None,
            window_failed: 0,
            window_latency_ms: 0.0,
            window_batches: 0,
            labelled: VecDeque::new(),
            last_time_ms: 0,
            last_fired: vec![None; n_rules],
            last_scheduled: 0,
            queued: VecDeque::new(),
            running: None,
            triggers,
            trigger_tx,
            timeline: Vec::new(),
            last_report: None,
            alert_report: None,
            counters: LoopCounters::default(),
        };
        let v = me.serving.version;
        me.emit(
            "serving",
            json!({"version": v, "alias": me.settings.retrain.alias}),
        );
        Ok(me)
    }

    /// Adds an event sink.
    pub fn add_sink(&mut self, sink: Box<dyn EventSink>) {
        self.sinks.push(sink);
    }

    /// Adds (or replaces) an action, usable by rules as `action = "NAME"`.
    pub fn add_action(&mut self, name: &str, action: Box<dyn AlertAction>) {
        self.actions.insert(name.to_string(), action);
    }

    /// A handle to queue alerts from other threads.
    pub fn trigger_handle(&self) -> TriggerHandle {
        TriggerHandle {
            tx: self.trigger_tx.clone(),
        }
    }

    /// The endpoint state the loop swaps models into.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The version serving now.
    pub fn serving(&self) -> &ModelVersion {
        &self.serving
    }

    /// Every event emitted so far.
    pub fn timeline(&self) -> &[LoopEvent] {
        &self.timeline
    }

    /// The latest drift report.
    pub fn last_report(&self) -> Option<&DriftReport> {
        self.last_report.as_ref()
    }

    /// The drift report of the first window that fired an alert.
    pub fn alert_report(&self) -> Option<&DriftReport> {
        self.alert_report.as_ref()
    }

    /// The counters.
    pub fn counters(&self) -> LoopCounters {
        let mut c = self.counters.clone();
        c.labels = self.join.counts();
        c
    }

    /// Predictions still waiting for their label (within the delay window).
    pub fn awaiting_labels(&self) -> usize {
        self.join.waiting()
    }

    /// Rolling performance of a version.
    pub fn performance(&self, version: u32) -> BTreeMap<String, f64> {
        self.performance.metrics(version)
    }

    fn emit(&mut self, kind: &str, fields: Value) {
        let fields = match fields {
            Value::Object(m) => m,
            other => {
                let mut m = serde_json::Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        let event = LoopEvent {
            kind: kind.to_string(),
            at_event: self.counters.scored,
            time_ms: self.last_time_ms,
            fields,
        };
        tracing::info!(target: "streamscore::loop", event = %serde_json::to_string(&event).unwrap_or_default());
        for sink in &self.sinks {
            if let Err(e) = sink.emit(&event) {
                tracing::error!("event sink: {e}");
            }
        }
        self.timeline.push(event);
    }

    /// Scores one batch with the model the endpoint serves now, then monitors. An event whose
    /// features do not fit the serving schema refuses the whole batch (see
    /// [`Orchestrator::score_checked`] to refuse only those events).
    pub fn score_batch(&mut self, events: &[ScoringEvent]) -> anyhow::Result<ScoredBatch> {
        self.poll();
        let served = self.state.model().unwrap_or_else(|| self.serving_model.clone());
        let rows: Vec<Value> = events.iter().map(|e| Value::Object(e.features.clone())).collect();
        match Frame::from_json_records(&rows, served.schema.clone(), &ReadOptions::named("events")) {
            Ok(frame) => self.score_frame(events, rows, frame, &served),
            Err(e) => {
                self.counters.failed += events.len() as u64;
                self.window_failed += events.len() as u64;
                Err(e.into())
            }
        }
    }

    /// Like [`Orchestrator::score_batch`], but an event whose features do not fit the serving
    /// schema is refused alone: returns the scores of the accepted events (in order) and the
    /// refused events' positions in `events` with the reason (for a dead letter).
    pub fn score_checked(
        &mut self,
        events: &[ScoringEvent],
    ) -> anyhow::Result<(ScoredBatch, Vec<(usize, String)>)> {
        self.poll();
        let served = self.state.model().unwrap_or_else(|| self.serving_model.clone());
        let rows: Vec<Value> = events.iter().map(|e| Value::Object(e.features.clone())).collect();
        let read = ReadOptions::named("events");
        if let Ok(frame) = Frame::from_json_records(&rows, served.schema.clone(), &read) {
            return Ok((self.score_frame(events, rows, frame, &served)?, Vec::new()));
        }
        // Only on a refused batch: find the events at fault one by one.
        let mut refused = Vec::new();
        let mut good_events = Vec::new();
        let mut good_rows = Vec::new();
        for (i, (e, row)) in events.iter().zip(rows).enumerate() {
            match Frame::from_json_records(std::slice::from_ref(&row), served.schema.clone(), &read) {
                Ok(_) => {
                    good_events.push(e.clone());
                    good_rows.push(row);
                }
                Err(err) => refused.push((i, err.to_string())),
            }
        }
        self.counters.failed += refused.len() as u64;
        self.window_failed += refused.len() as u64;
        let version: u32 = served.version.parse().unwrap_or(self.serving.version);
        if good_events.is_empty() {
            let empty = ScoredBatch {
                version,
                scores: Vec::new(),
            };
            return Ok((empty, refused));
        }
        let frame = Frame::from_json_records(&good_rows, served.schema.clone(), &read)?;
        Ok((
            self.score_frame(&good_events, good_rows, frame, &served)?,
            refused,
        ))
    }

    fn score_frame(
        &mut self,
        events: &[ScoringEvent],
        rows: Vec<Value>,
        frame: Frame,
        served: &ServedModel,
    ) -> anyhow::Result<ScoredBatch> {
        let version: u32 = served.version.parse().unwrap_or(self.serving.version);
        let started = std::time::Instant::now();
        let predictions = match served.model.predict(&frame) {
            Ok(p) => p,
            Err(e) => {
                self.counters.failed += events.len() as u64;
                self.window_failed += events.len() as u64;
                return Err(e.into());
            }
        };
        let scores: Vec<f64> = match (predictions.positive_probabilities(), predictions.values()) {
            (Some(p), _) => p.to_vec(),
            (None, Some(v)) => v.to_vec(),
            _ => anyhow::bail!("the loop needs a binary classifier or a regressor"),
        };
        self.window_latency_ms += started.elapsed().as_secs_f64() * 1e3;
        self.window_batches += 1;
        for (e, (&score, row)) in events.iter().zip(scores.iter().zip(rows)) {
            self.join.predicted(
                e.correlation_id.clone(),
                Pending {
                    version,
                    score,
                    time_ms: e.time_ms,
                    features: e.features.clone(),
                    index: self.counters.scored,
                },
            );
            self.counters.scored += 1;
            let started_at = *self.window_started_ms.get_or_insert(e.time_ms);
            self.window.push(row);
            self.last_time_ms = self.last_time_ms.max(e.time_ms);
            // By count, or by event time: the first event at least `window_ms` after the
            // window's first closes it (with at least MIN_WINDOW rows in it).
            let by_time = self.settings.window_ms.is_some_and(|w| {
                e.time_ms.saturating_sub(started_at) >= w && self.window.len() >= MIN_WINDOW
            });
            if self.window.len() >= self.settings.window || by_time {
                self.close_window()?;
            }
        }
        self.join.expire(self.last_time_ms);
        if let Some(every) = self.settings.retrain_every
            && self.counters.scored - self.last_scheduled >= every
        {
            self.last_scheduled = self.counters.scored;
            let alert = Alert {
                rule: "schedule".into(),
                value: self.counters.scored as f64,
                at_event: self.counters.scored,
                reason: format!("scheduled retrain every {every} events"),
            };
            self.queued
                .push_back((alert, self.counters.scored.saturating_sub(every)));
        }
        self.launch_retrain();
        Ok(ScoredBatch { version, scores })
    }

    /// Joins labels (in time order) with the predictions waiting for them.
    pub fn labels(&mut self, labels: &[Label]) {
        for l in labels {
            if let Some(j) = self.join.label(l) {
                self.performance
                    .add(j.prediction.version, j.label, j.prediction.score);
                if self.labelled.len() == self.settings.max_rows {
                    self.labelled.pop_front();
                }
                self.labelled.push_back((
                    j.prediction.index,
                    LabelledRow {
                        features: j.prediction.features,
                        label: j.label,
                    },
                ));
            }
        }
    }

    fn close_window(&mut self) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.window);
        self.window_started_ms = None;
        let n = rows.len() as u64;
        let frame = Frame::from_json_records(
            &rows,
            self.serving_model.schema.clone(),
            &ReadOptions::named("window"),
        )?;
        let model = self
            .settings
            .prediction_drift
            .then(|| self.serving_model.model.as_ref());
        let report = crate::drift::drift(&self.reference, &frame, model, &self.settings.drift)?;
        self.counters.drift_reports += 1;
        // The report's signals under the reference pipeline's names: gauges for `/metrics` (and
        // the forwarding recorder), and Application Insights / OTLP metrics plus `DriftDetected`
        // when an exporter is installed.
        crate::monitor::record_drift_gauges(&report);
        crate::monitor::track_drift_everywhere(
            &report,
            &[("model_version", self.serving.version.to_string())],
        );
        let top: Vec<Value> = report
            .sorted_by_severity()
            .iter()
            .take(3)
            .map(|f| json!({"feature": f.feature_name, "test": f.stattest_name, "score": f.drift_score, "drift": f.drift_detected}))
            .collect();
        // Every feature's test and score, for metrics sinks that chart them per feature.
        let features: serde_json::Map<String, Value> = report
            .features
            .iter()
            .map(|f| {
                (
                    f.feature_name.clone(),
                    json!({"test": f.stattest_name, "score": f.drift_score, "threshold": f.threshold, "drift": f.drift_detected}),
                )
            })
            .collect();
        self.emit(
            "drift_report",
            json!({
                "version": self.serving.version,
                "rows": n,
                "dataset_drift": report.dataset.dataset_drift,
                "share_drifted_features": report.dataset.share_drifted_features,
                "n_drifted_features": report.dataset.n_drifted_features,
                "top": top,
                "features": features,
            }),
        );
        let performance = self.performance.metrics(self.serving.version);
        if performance.contains_key("n") {
            let mut p = serde_json::Map::new();
            p.insert("version".into(), json!(self.serving.version));
            for (k, v) in &performance {
                p.insert(k.clone(), json!(v));
            }
            self.emit("performance", Value::Object(p));
        }
        let obs = Observations {
            drift: Some(&report),
            performance,
            error_rate: Some(self.window_failed as f64 / (n + self.window_failed).max(1) as f64),
            latency_ms: Some(self.window_latency_ms / self.window_batches.max(1) as f64),
        };
        let mut fired = Vec::new();
        for (i, rule) in self.settings.rules.iter().enumerate() {
            if let Some(value) = rule.condition.holds(&obs) {
                let cooling = self.last_fired[i].is_some_and(|at| self.counters.scored - at < rule.cooldown);
                fired.push((i, value, cooling));
            }
        }
        if self.alert_report.is_none() && fired.iter().any(|(_, _, cooling)| !cooling) {
            self.alert_report = Some(report.clone());
        }
        self.last_report = Some(report);
        self.window_failed = 0;
        self.window_latency_ms = 0.0;
        self.window_batches = 0;
        for (i, value, cooling) in fired {
            let rule = self.settings.rules[i].clone();
            if cooling {
                self.counters.suppressed += 1;
                self.emit(
                    "alert_suppressed",
                    json!({"rule": rule.name, "value": value, "cooldown": rule.cooldown}),
                );
                continue;
            }
            self.last_fired[i] = Some(self.counters.scored);
            let alert = Alert {
                rule: rule.name.clone(),
                value,
                at_event: self.counters.scored,
                reason: format!("{} (value {value:.4})", rule.name),
            };
            // The data of a retrain for this alert starts with the window that fired it.
            self.fire(alert, &rule.action, self.counters.scored - n);
        }
        Ok(())
    }

    fn fire(&mut self, alert: Alert, action: &str, data_since: u64) {
        self.counters.alerts += 1;
        self.emit(
            "alert",
            json!({"rule": alert.rule, "value": alert.value, "action": action, "reason": alert.reason}),
        );
        let Some(a) = self.actions.get(action) else {
            self.emit(
                "action_failed",
                json!({"action": action, "error": "no such action"}),
            );
            return;
        };
        match a.run(&alert) {
            Ok(outcome) => {
                if outcome.retrain {
                    self.queued.push_back((alert, data_since));
                }
                self.emit("action", json!({"action": action, "message": outcome.message}));
            }
            Err(e) => self.emit("action_failed", json!({"action": action, "error": e.to_string()})),
        }
    }

    fn launch_retrain(&mut self) {
        while let Ok((alert, action)) = self.triggers.try_recv() {
            self.fire(alert, &action, 0);
        }
        if self.running.is_some() {
            return;
        }
        let Some((_, since)) = self.queued.front() else {
            return;
        };
        let since = *since;
        let rows: Vec<LabelledRow> = self
            .labelled
            .iter()
            .filter(|(i, _)| *i >= since)
            .map(|(_, r)| r.clone())
            .collect();
        if rows.len() < self.settings.min_labelled {
            return;
        }
        let Some((alert, _)) = self.queued.pop_front() else {
            return;
        };
        let first = self
            .labelled
            .iter()
            .find(|(i, _)| *i >= since)
            .map_or(since, |(i, _)| *i);
        let last = self.labelled.back().map_or(since, |(i, _)| *i);
        let window = format!(
            "labelled inference records, events {first}..={last} ({} rows)",
            rows.len()
        );
        self.emit(
            "retrain_started",
            json!({"reason": alert.reason, "rows": rows.len(), "parent": self.serving.version, "data": window}),
        );
        let spec = self.settings.retrain.clone();
        let registry = self.registry.clone();
        let serving = self.serving.clone();
        let model = self.serving_model.model.clone();
        let reason = alert.reason.clone();
        // Registries that talk HTTP (Blob Storage) need the caller's tokio runtime, if any.
        let runtime = tokio::runtime::Handle::try_current().ok();
        // Off the scoring path: the loop keeps scoring while this thread trains.
        let handle = std::thread::spawn(move || {
            let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
            retrain_cycle(
                &spec,
                registry.as_ref(),
                &serving,
                model.as_ref(),
                &rows,
                &reason,
                &window,
            )
        });
        self.running = Some((handle, alert));
    }

    /// Applies a finished retrain, if one finished (called before every batch).
    pub fn poll(&mut self) {
        if self.running.as_ref().is_some_and(|(h, _)| h.is_finished()) {
            self.apply_finished();
        }
    }

    fn apply_finished(&mut self) {
        let Some((handle, alert)) = self.running.take() else {
            return;
        };
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the retrain thread panicked")));
        match result {
            Ok(outcome) => self.apply(outcome, &alert),
            Err(e) => {
                self.counters.retrain_failures += 1;
                self.emit(
                    "retrain_failed",
                    json!({"reason": alert.reason, "error": format!("{e:#}")}),
                );
            }
        }
    }

    fn apply(&mut self, o: RetrainOutcome, alert: &Alert) {
        self.counters.retrains += 1;
        self.emit(
            "registered",
            json!({"version": o.version.version, "parent": o.version.parent_version, "reason": alert.reason,
                   "training_data": o.version.training_data, "n_train": o.n_train}),
        );
        self.emit(
            "gate",
            json!({"metric": o.metric, "candidate": o.candidate, "serving": o.serving, "holdout_rows": o.n_holdout,
                   "margin": self.settings.retrain.margin, "promoted": o.promoted, "decision": o.decision}),
        );
        if !o.promoted {
            self.emit(
                "not_promoted",
                json!({"version": o.version.version, "decision": o.decision}),
            );
            return;
        }
        self.emit(
            "promoted",
            json!({"version": o.version.version, "alias": self.settings.retrain.alias}),
        );
        match ServedModel::new(
            &self.settings.retrain.model_name,
            o.version.version.to_string(),
            o.model,
        ) {
            Ok(served) => {
                // Atomic: requests in flight finish with the model they started with.
                self.state.set_model(served);
                if let Some(m) = self.state.model() {
                    self.serving_model = m;
                }
                let from = self.serving.version;
                self.serving = o.version;
                self.reference = o.profile;
                // The next drift window compares the new model's inputs with its own training data.
                self.window.clear();
                self.window_started_ms = None;
                self.counters.promotions += 1;
                let to = self.serving.version;
                self.emit("swapped", json!({"from": from, "to": to}));
            }
            Err(e) => self.emit("swap_failed", json!({"error": e.to_string()})),
        }
    }

    /// Waits for a running retrain and applies it; then starts and waits for queued ones
    /// that have enough labelled data. Returns the counters.
    pub fn finish(&mut self) -> LoopCounters {
        loop {
            self.launch_retrain();
            if self.running.is_none() {
                break;
            }
            self.apply_finished();
        }
        self.counters()
    }

    /// Runs one retrain-gate-promote cycle now on the labelled rows held (what
    /// `streamscore retrain` and inbound triggers do), waiting for it.
    pub fn retrain_now(&mut self, reason: &str) -> LoopCounters {
        let alert = Alert {
            rule: "manual".into(),
            value: 0.0,
            at_event: self.counters.scored,
            reason: reason.to_string(),
        };
        self.counters.alerts += 1;
        self.emit(
            "alert",
            json!({"rule": "manual", "action": "retrain", "reason": reason}),
        );
        self.queued.push_back((alert, 0));
        self.finish()
    }
}
