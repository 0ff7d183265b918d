//! The loop: score a stream, monitor drift and performance, alert, retrain off the scoring
//! path, gate, register with lineage, promote and hot-swap the endpoint's model.
//!
//! [`Orchestrator`] holds the loop's state. Feed it batches of events
//! ([`Orchestrator::score_batch`]) and labels ([`Orchestrator::labels`]) in time order: it
//! scores each batch with the model the endpoint ([`ml_serve::AppState`]) serves now, closes a
//! drift window every `window` events, evaluates the [`AlertRule`]s (with a cooldown), runs their
//! [`AlertAction`]s, and for a retrain waits until enough labelled events from the alert's
//! window on have arrived, then trains on a thread of its own while scoring goes on. The
//! retrained version is registered with its parent version, data window and reason, compared
//! with the serving model on a holdout of the most recent labelled rows, and promoted (alias
//! moved, endpoint swapped with [`ml_serve::AppState::set_model`]) only when it beats it by the
//! margin. Every step is a [`LoopEvent`], logged and sent to the [`EventSink`]s.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use streamscore::run::{LoopSettings, Orchestrator, simulate};
//!
//! let config = streamscore::config::Config::load_env("streamscore.toml".as_ref(), Some("dev"))?;
//! let settings = LoopSettings::from_config(&config)?;
//! let registry: Arc<dyn streamscore::registry::ModelRegistry> =
//!     Arc::new(streamscore::registry::LocalRegistry::open("registry")?);
//! let state = ml_serve::AppState::new(ml_serve::ServeConfig::default())?;
//! let mut orchestrator = Orchestrator::start(settings, registry, state)?;
//! let (events, labels) = streamscore::datagen::loop_stream(&Default::default())?;
//! simulate(&mut orchestrator, &events, &labels, 500)?;
//! println!("{:?}", orchestrator.finish());
//! # Ok::<(), anyhow::Error>(())
//! ```

mod actions;
mod events;
mod feed;
pub mod http;
mod labels;
mod orchestrator;
mod retrain;
mod rules;

pub use actions::{
    ActionOutcome, Alert, AlertAction, CommandAction, LogAction, RetrainAction, WebhookAction, builtin,
};
pub use events::{AppInsightsEventSink, EventSink, JsonlEventSink, LoopEvent};
pub use feed::{FeedOptions, FeedReport, LoopIo, feed};
pub use labels::{JoinCounts, Joined, Label, LabelJoin, Pending, RollingPerformance};
pub use orchestrator::{LoopCounters, Orchestrator, ScoredBatch, ScoringEvent, TriggerHandle};
pub use retrain::{LabelledRow, RetrainOutcome, RetrainSpec, retrain_cycle};
pub use rules::{AlertRule, Condition, DEFAULT_COOLDOWN, Observations, Signal};

use ml_drift::DriftOptions;

use crate::config::Config;

/// Everything the loop needs to know, from `streamscore.toml` or built in Rust.
#[derive(Clone, Debug)]
pub struct LoopSettings {
    /// Model, alias, estimator, gate.
    pub retrain: RetrainSpec,
    /// Events per drift report.
    pub window: usize,
    /// Event time per drift report, ms: a window also closes at the first event this long
    /// after its first one (`[monitor] window_s`). `None`: by count only.
    pub window_ms: Option<i64>,
    /// Drift tests and thresholds.
    pub drift: DriftOptions,
    /// Compare predictions with the training predictions too.
    pub prediction_drift: bool,
    /// Alert rules.
    pub rules: Vec<AlertRule>,
    /// Longest wait for a label, ms.
    pub delay_window_ms: i64,
    /// Fewest labelled rows (from the alert's window on) to retrain on.
    pub min_labelled: usize,
    /// Most labelled rows kept.
    pub max_rows: usize,
    /// Joined records per version in the rolling performance metrics.
    pub performance_window: usize,
    /// Retrain every N events besides alerts (`[retrain] on = "schedule"`).
    pub retrain_every: Option<u64>,
}

impl Default for LoopSettings {
    fn default() -> Self {
        LoopSettings {
            retrain: RetrainSpec {
                model_name: "credit".into(),
                alias: "prod".into(),
                target: "default".into(),
                estimator: "logistic_regression".into(),
                params: Vec::new(),
                margin: 0.005,
                holdout_fraction: 0.3,
                base_data: None,
                sweep: None,
            },
            window: 5_000,
            window_ms: None,
            drift: DriftOptions::default(),
            prediction_drift: true,
            // Above what chance gives: with p-value tests at 0.05, an undrifted window flags
            // about 5 % of the features.
            rules: vec![AlertRule {
                name: "share_drifted_features > 0.25".into(),
                condition: Condition {
                    signal: Signal::ShareDriftedFeatures,
                    op: ">".into(),
                    threshold: 0.25,
                },
                cooldown: DEFAULT_COOLDOWN,
                action: "retrain".into(),
            }],
            delay_window_ms: 3_600_000,
            min_labelled: 1_000,
            max_rows: 20_000,
            performance_window: 5_000,
            retrain_every: None,
        }
    }
}

impl LoopSettings {
    /// Settings from a config: defaults where a key is absent.
    pub fn from_config(c: &Config) -> anyhow::Result<LoopSettings> {
        let mut s = LoopSettings::default();
        if let Some(m) = &c.model {
            if let Some(n) = &m.name {
                s.retrain.model_name = n.clone();
            }
            if let Some(e) = &m.estimator {
                s.retrain.estimator = e.clone();
            }
            s.retrain.params = m
                .params
                .iter()
                .map(|(k, v)| -> anyhow::Result<(String, String)> {
                    let text = match v {
                        toml::Value::String(t) => t.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        _ => anyhow::bail!("[model] params.{k}: expected a string, number or boolean"),
                    };
                    Ok((k.clone(), text))
                })
                .collect::<anyhow::Result<_>>()?;
            if let Some(table) = &m.sweep {
                s.retrain.sweep = Some(
                    crate::sweep::SweepFile::from_table(table)
                        .map_err(|e| anyhow::anyhow!("[model] sweep: {e}"))?,
                );
            }
        }
        if let Some(d) = &c.data
            && let Some(t) = &d.target
        {
            s.retrain.target = t.clone();
        }
        if let Some(r) = &c.registry
            && let Some(a) = &r.alias
        {
            s.retrain.alias = a.clone();
        }
        if let Some(m) = &c.monitor {
            if let Some(w) = m.window {
                anyhow::ensure!(w >= 10, "[monitor] window must be at least 10 rows, got {w}");
                s.window = w;
            }
            if let Some(t) = m.window_s {
                anyhow::ensure!(
                    t.is_finite() && t > 0.0,
                    "[monitor] window_s must be a positive number of seconds, got {t}"
                );
                s.window_ms = Some((t * 1e3).round().max(1.0) as i64);
                // By time only, unless a count was given too.
                if m.window.is_none() {
                    s.window = usize::MAX;
                }
            }
            if let Some(share) = m.drift_share {
                anyhow::ensure!(
                    (0.0..=1.0).contains(&share),
                    "[monitor] drift_share must be in 0..=1, got {share}"
                );
                s.drift.drift_share = share;
            }
            if let Some(p) = m.prediction_drift {
                s.prediction_drift = p;
            }
            for (feature, rule) in &m.features {
                if let Some(t) = &rule.test {
                    let known = ml_drift::test_names();
                    anyhow::ensure!(
                        known.contains(t),
                        "[monitor.features.{feature}] test = \"{t}\": unknown test; use one of {} \
                         (or register your own with ml_drift::register_test before loading the config)",
                        known.join(", ")
                    );
                    s.drift.tests.insert(feature.clone(), t.clone());
                }
                if let Some(t) = rule.threshold {
                    s.drift.thresholds.insert(feature.clone(), t);
                }
            }
            if let Some(w) = m.performance_window {
                s.performance_window = w;
            }
        }
        if !c.alert.is_empty() {
            s.rules = c
                .alert
                .iter()
                .map(AlertRule::from_section)
                .collect::<anyhow::Result<_>>()?;
            for rule in &s.rules {
                builtin(&rule.action).map_err(|e| anyhow::anyhow!("[[alert]] `{}`: {e}", rule.name))?;
            }
        }
        if let Some(l) = &c.labels
            && let Some(w) = l.delay_window_s
        {
            s.delay_window_ms = (w * 1e3) as i64;
        }
        if let Some(r) = &c.retrain {
            match r.on.as_deref() {
                None | Some("alert") => {}
                Some("schedule") => {
                    s.retrain_every = Some(r.every.ok_or_else(|| {
                        anyhow::anyhow!("[retrain] on = \"schedule\" needs `every` (events between retrains)")
                    })?)
                }
                Some(other) => anyhow::bail!("[retrain] on = \"{other}\": expected alert or schedule"),
            }
            if let Some(m) = r.min_labelled {
                s.min_labelled = m.max(20);
            }
            if let Some(m) = r.max_rows {
                s.max_rows = m.max(20);
            }
            if r.include_training_data == Some(true) {
                s.retrain.base_data = c.data.as_ref().and_then(|d| d.train.clone()).map(Into::into);
            }
        }
        if let Some(p) = &c.promote {
            match p.metric.as_deref() {
                None | Some("roc_auc") | Some("rmse") => {}
                Some(other) => anyhow::bail!("[promote] metric = \"{other}\": expected roc_auc or rmse"),
            }
            if let Some(m) = p.margin {
                s.retrain.margin = m;
            }
            if let Some(h) = p.holdout_fraction {
                anyhow::ensure!(
                    h > 0.0 && h < 1.0,
                    "[promote] holdout_fraction must be between 0 and 1, got {h}"
                );
                s.retrain.holdout_fraction = h;
            }
        }
        Ok(s)
    }
}

/// Drives the loop over events and labels in time order: before each batch of `batch`
/// events, the labels that arrived by then are joined. Returns the events refused.
pub fn simulate(
    orchestrator: &mut Orchestrator,
    events: &[ScoringEvent],
    labels: &[Label],
    batch: usize,
) -> anyhow::Result<u64> {
    let mut next_label = 0;
    let mut refused = 0;
    for chunk in events.chunks(batch.max(1)) {
        let now = chunk.first().map_or(0, |e| e.time_ms);
        let until = labels[next_label..].partition_point(|l| l.time_ms <= now) + next_label;
        orchestrator.labels(&labels[next_label..until]);
        next_label = until;
        if orchestrator.score_batch(chunk).is_err() {
            refused += chunk.len() as u64;
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_windows_by_time_per_feature_tests_and_the_model_sweep_come_from_the_config() {
        let c = Config::parse(
            "[monitor]\nwindow_s = 2.5\n[monitor.features.AGE]\ntest = \"psi\"\nthreshold = 0.2\n\
             [model.sweep]\ntrials = 4\n[model.sweep.space]\nc = { log_uniform = [0.01, 10.0] }\n",
        )
        .unwrap();
        let s = LoopSettings::from_config(&c).unwrap();
        // By time only: no count limit unless one is given.
        assert_eq!((s.window_ms, s.window), (Some(2_500), usize::MAX));
        assert_eq!(s.drift.tests["AGE"], "psi");
        assert_eq!(s.drift.thresholds["AGE"], 0.2);
        let sweep = s.retrain.sweep.unwrap();
        assert_eq!((sweep.trials, sweep.space.params.len()), (Some(4), 1));
        let both = Config::parse("[monitor]\nwindow = 800\nwindow_s = 60\n").unwrap();
        let s = LoopSettings::from_config(&both).unwrap();
        assert_eq!((s.window_ms, s.window), (Some(60_000), 800));

        let e = LoopSettings::from_config(&Config::parse("[monitor]\nwindow_s = 0\n").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("window_s must be a positive number"), "{e}");
        let e =
            LoopSettings::from_config(&Config::parse("[monitor.features.AGE]\ntest = \"psii\"\n").unwrap())
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("unknown test") && e.contains("psi, jensenshannon"),
            "{e}"
        );
        let e = LoopSettings::from_config(&Config::parse("[model.sweep]\ntrials = 2\nspace = 3\n").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("[model] sweep"), "{e}");
    }
}
