//! Alert rules: a condition over the latest drift report and performance metrics, a cooldown.

use std::collections::BTreeMap;

use ml_drift::DriftReport;

/// What a condition looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// The report's dataset drift flag.
    DatasetDrift,
    /// Share of drifted features.
    ShareDriftedFeatures,
    /// One feature's drift score.
    FeatureDriftScore(String),
    /// A rolling performance metric of the serving version (`roc_auc`, `accuracy`,
    /// `log_loss`, `rmse`).
    Performance(String),
    /// Share of events that could not be scored in the window.
    ErrorRate,
    /// Mean scoring latency per batch in the window, milliseconds.
    LatencyMs,
}

/// A condition: a signal compared with a threshold (or the dataset drift flag).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// What is compared.
    pub signal: Signal,
    /// `>`, `>=`, `<`, `<=`.
    pub op: String,
    /// The threshold.
    pub threshold: f64,
}

/// What the rules see at one evaluation.
#[derive(Clone, Debug, Default)]
pub struct Observations<'a> {
    /// The latest drift report, if one was just computed.
    pub drift: Option<&'a DriftReport>,
    /// Rolling performance of the serving version.
    pub performance: BTreeMap<String, f64>,
    /// Share of events not scored in the window.
    pub error_rate: Option<f64>,
    /// Mean scoring latency per batch, milliseconds.
    pub latency_ms: Option<f64>,
}

impl Condition {
    /// Parses `dataset_drift`, `share_drifted_features > 0.3`, `feature:AGE.drift_score > 0.2`,
    /// `performance.roc_auc < 0.7`, `error_rate > 0.01`, `latency_ms > 50`.
    pub fn parse(text: &str) -> anyhow::Result<Condition> {
        let t = text.trim();
        if t == "dataset_drift" {
            return Ok(Condition {
                signal: Signal::DatasetDrift,
                op: ">=".into(),
                threshold: 1.0,
            });
        }
        let (lhs, op, rhs) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| t.split_once(op).map(|(l, r)| (l.trim(), *op, r.trim())))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "alert condition `{t}`: expected `dataset_drift` or `SIGNAL OP NUMBER` with OP one of > >= < <="
                )
            })?;
        let threshold: f64 = rhs
            .parse()
            .map_err(|_| anyhow::anyhow!("alert condition `{t}`: `{rhs}` is not a number"))?;
        let signal = if lhs == "share_drifted_features" {
            Signal::ShareDriftedFeatures
        } else if lhs == "error_rate" {
            Signal::ErrorRate
        } else if lhs == "latency_ms" {
            Signal::LatencyMs
        } else if let Some(f) = lhs
            .strip_prefix("feature:")
            .and_then(|f| f.strip_suffix(".drift_score"))
        {
            Signal::FeatureDriftScore(f.to_string())
        } else if let Some(m) = lhs.strip_prefix("performance.") {
            if !["roc_auc", "accuracy", "log_loss", "rmse"].contains(&m) {
                anyhow::bail!(
                    "alert condition `{t}`: performance metrics are roc_auc, accuracy, log_loss, rmse"
                );
            }
            Signal::Performance(m.to_string())
        } else {
            anyhow::bail!(
                "alert condition `{t}`: unknown signal `{lhs}`; signals: dataset_drift, share_drifted_features, feature:NAME.drift_score, performance.roc_auc|accuracy|log_loss|rmse, error_rate, latency_ms"
            );
        };
        Ok(Condition {
            signal,
            op: op.to_string(),
            threshold,
        })
    }

    /// The signal's value, if the observations have it.
    pub fn value(&self, obs: &Observations<'_>) -> Option<f64> {
        match &self.signal {
            Signal::DatasetDrift => obs.drift.map(|r| if r.dataset.dataset_drift { 1.0 } else { 0.0 }),
            Signal::ShareDriftedFeatures => obs.drift.map(|r| r.dataset.share_drifted_features),
            Signal::FeatureDriftScore(name) => obs.drift.and_then(|r| {
                r.features
                    .iter()
                    .find(|f| &f.feature_name == name)
                    .map(|f| f.drift_score)
            }),
            Signal::Performance(m) => obs.performance.get(m).copied(),
            Signal::ErrorRate => obs.error_rate,
            Signal::LatencyMs => obs.latency_ms,
        }
    }

    /// True when the signal is present and crosses the threshold.
    pub fn holds(&self, obs: &Observations<'_>) -> Option<f64> {
        let v = self.value(obs)?;
        let hit = match self.op.as_str() {
            ">" => v > self.threshold,
            ">=" => v >= self.threshold,
            "<" => v < self.threshold,
            _ => v <= self.threshold,
        };
        hit.then_some(v)
    }
}

/// A rule: a condition, an action, a cooldown in scored events.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    /// Name shown in events.
    pub name: String,
    /// When it fires.
    pub condition: Condition,
    /// Events scored after a firing before it may fire again.
    pub cooldown: u64,
    /// The action's name (`retrain`, `log`, `command:..`, `webhook:..`).
    pub action: String,
}

impl AlertRule {
    /// A rule from its config section.
    pub fn from_section(s: &crate::config::AlertSection) -> anyhow::Result<AlertRule> {
        Ok(AlertRule {
            name: s.name.clone().unwrap_or_else(|| s.when.trim().to_string()),
            condition: Condition::parse(&s.when)?,
            cooldown: s.cooldown.unwrap_or(DEFAULT_COOLDOWN),
            action: s.action.clone().unwrap_or_else(|| "retrain".into()),
        })
    }
}

/// Default cooldown: 20 000 scored events.
pub const DEFAULT_COOLDOWN: u64 = 20_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_condition_form() {
        let c = Condition::parse("feature:AGE.drift_score > 0.2").unwrap();
        assert_eq!(c.signal, Signal::FeatureDriftScore("AGE".into()));
        assert_eq!((c.op.as_str(), c.threshold), (">", 0.2));
        let c = Condition::parse("performance.roc_auc < 0.7").unwrap();
        let mut obs = Observations::default();
        assert_eq!(c.holds(&obs), None);
        obs.performance.insert("roc_auc".into(), 0.65);
        assert_eq!(c.holds(&obs), Some(0.65));
        obs.performance.insert("roc_auc".into(), 0.75);
        assert_eq!(c.holds(&obs), None);
        assert_eq!(
            Condition::parse("share_drifted_features >= 0.3").unwrap().signal,
            Signal::ShareDriftedFeatures
        );
        assert!(Condition::parse("dataset_drift").is_ok());
        let e = Condition::parse("drifty > 1").unwrap_err().to_string();
        assert!(e.contains("unknown signal `drifty`"), "{e}");
        let e = Condition::parse("error_rate > lots").unwrap_err().to_string();
        assert!(e.contains("not a number"), "{e}");
    }
}
