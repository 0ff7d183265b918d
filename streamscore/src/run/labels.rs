//! Ground truth: labels joined to predictions by correlation id within a delay window, and the
//! rolling performance of each model version on the joined records.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

/// A label record: `{correlationid, label, time}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// The prediction's correlation id.
    pub correlation_id: String,
    /// The true value (0/1 for a binary classifier).
    pub label: f64,
    /// When it arrived, milliseconds since the epoch.
    pub time_ms: i64,
}

impl Label {
    /// Reads `{correlationid, label, time}` (time in milliseconds since the epoch).
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Label> {
        let id = value
            .get("correlationid")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow::anyhow!("label record without a string `correlationid`: {value}"))?;
        let label = value
            .get("label")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| anyhow::anyhow!("label record without a numeric `label`: {value}"))?;
        let time_ms = value
            .get("time")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| anyhow::anyhow!("label record without an integer `time` (ms): {value}"))?;
        Ok(Label {
            correlation_id: id.to_string(),
            label,
            time_ms,
        })
    }
}

/// A prediction waiting for its label.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The version that scored it.
    pub version: u32,
    /// The score (positive-class probability, or the regression value).
    pub score: f64,
    /// When it was scored (event time), ms.
    pub time_ms: i64,
    /// The features, kept for retraining.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Its index in the stream (events scored before it).
    pub index: u64,
}

/// A prediction joined with its label.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The prediction.
    pub prediction: Pending,
    /// Its label.
    pub label: f64,
}

/// Counts of the join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JoinCounts {
    /// Labels matched with a prediction.
    pub matched: u64,
    /// Labels with no prediction waiting (unknown id, or later than the window).
    pub unmatched_labels: u64,
    /// Predictions whose label did not come within the window.
    pub unmatched_predictions: u64,
}

/// Joins labels to predictions by correlation id within `delay_window_ms`.
#[derive(Debug)]
pub struct LabelJoin {
    delay_window_ms: i64,
    pending: HashMap<String, Pending>,
    order: VecDeque<(i64, String)>,
    counts: JoinCounts,
}

impl LabelJoin {
    /// A join that waits at most `delay_window_ms` for a label.
    pub fn new(delay_window_ms: i64) -> Self {
        LabelJoin {
            delay_window_ms,
            pending: HashMap::new(),
            order: VecDeque::new(),
            counts: JoinCounts::default(),
        }
    }

    /// Records a prediction.
    pub fn predicted(&mut self, id: String, p: Pending) {
        self.order.push_back((p.time_ms, id.clone()));
        self.pending.insert(id, p);
    }

    /// Joins a label; `None` if no prediction waits for it within the window.
    pub fn label(&mut self, label: &Label) -> Option<Joined> {
        self.expire(label.time_ms);
        match self.pending.remove(&label.correlation_id) {
            Some(p) if label.time_ms >= p.time_ms && label.time_ms - p.time_ms <= self.delay_window_ms => {
                self.counts.matched += 1;
                Some(Joined {
                    prediction: p,
                    label: label.label,
                })
            }
            Some(p) => {
                // A label from before its prediction: keep the prediction waiting.
                self.pending.insert(label.correlation_id.clone(), p);
                self.counts.unmatched_labels += 1;
                None
            }
            None => {
                self.counts.unmatched_labels += 1;
                None
            }
        }
    }

    /// Drops the predictions older than the window at `now_ms`, counting them unmatched.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some((t, _)) = self.order.front() {
            if now_ms - *t <= self.delay_window_ms {
                break;
            }
            let (_, id) = self.order.pop_front().unwrap_or_default();
            if self.pending.remove(&id).is_some() {
                self.counts.unmatched_predictions += 1;
            }
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> JoinCounts {
        self.counts
    }

    /// Predictions waiting.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

/// Rolling performance per model version over the last `window` joined records.
#[derive(Debug)]
pub struct RollingPerformance {
    window: usize,
    regression: bool,
    by_version: BTreeMap<u32, VecDeque<(f64, f64)>>,
}

impl RollingPerformance {
    /// Keeps the last `window` (label, score) pairs of each version.
    pub fn new(window: usize, regression: bool) -> Self {
        RollingPerformance {
            window: window.max(1),
            regression,
            by_version: BTreeMap::new(),
        }
    }

    /// Adds one joined record.
    pub fn add(&mut self, version: u32, label: f64, score: f64) {
        let q = self.by_version.entry(version).or_default();
        if q.len() == self.window {
            q.pop_front();
        }
        q.push_back((label, score));
    }

    /// Joined records held for `version`.
    pub fn len(&self, version: u32) -> usize {
        self.by_version.get(&version).map_or(0, VecDeque::len)
    }

    /// The metrics of `version`: `roc_auc`, `accuracy`, `log_loss` for a classifier (AUC only
    /// once both classes were seen), `rmse` for a regressor; `n` is the count.
    pub fn metrics(&self, version: u32) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let Some(q) = self.by_version.get(&version).filter(|q| !q.is_empty()) else {
            return out;
        };
        out.insert("n".into(), q.len() as f64);
        if self.regression {
            let (y, p): (Vec<f64>, Vec<f64>) = q.iter().copied().unzip();
            if let Ok(v) = ml_core::metrics::root_mean_squared_error(&y, &p) {
                out.insert("rmse".into(), v);
            }
            return out;
        }
        let y: Vec<bool> = q.iter().map(|(l, _)| *l >= 0.5).collect();
        let p: Vec<f64> = q.iter().map(|(_, s)| *s).collect();
        if let Ok(v) = ml_core::metrics::roc_auc(&y, &p) {
            out.insert("roc_auc".into(), v);
        }
        let yi: Vec<usize> = y.iter().map(|&b| usize::from(b)).collect();
        let pred: Vec<usize> = p.iter().map(|&s| usize::from(s >= 0.5)).collect();
        if let Ok(v) = ml_core::metrics::accuracy(&yi, &pred) {
            out.insert("accuracy".into(), v);
        }
        let proba =
            ndarray::Array2::from_shape_fn((p.len(), 2), |(i, j)| if j == 1 { p[i] } else { 1.0 - p[i] });
        if let Ok(v) = ml_core::metrics::log_loss(&yi, proba.view()) {
            out.insert("log_loss".into(), v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ml_core::rng::Rng;

    /// AUC by counting pairs: P(score of a positive > score of a negative), ties half.
    fn pair_auc(pairs: &[(f64, f64)]) -> f64 {
        let (mut wins, mut total) = (0.0, 0.0);
        for (lp, sp) in pairs.iter().filter(|(l, _)| *l == 1.0) {
            let _ = lp;
            for (_, sn) in pairs.iter().filter(|(l, _)| *l == 0.0) {
                total += 1.0;
                wins += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / total
    }

    #[test]
    fn labels_arriving_1_to_30_s_late_are_joined_and_the_rolling_auc_matches_a_batch_computation() {
        let mut rng = Rng::new(5);
        let mut join = LabelJoin::new(30_000);
        let mut perf = RollingPerformance::new(400, false);
        let mut labels = Vec::new();
        let mut joined_pairs = Vec::new();
        // 1000 predictions 100 ms apart; labels 1..=30 s later; every 10th label never comes,
        // and 5 labels name unknown ids.
        for i in 0..1000u64 {
            let t = 1_700_000_000_000 + 100 * i as i64;
            let y = f64::from(u8::from(rng.bernoulli(0.3)));
            let score = (0.3 * y + 0.7 * rng.uniform()).clamp(0.0, 1.0);
            join.predicted(
                format!("id-{i}"),
                Pending {
                    version: 1,
                    score,
                    time_ms: t,
                    features: Default::default(),
                    index: i,
                },
            );
            if i % 10 != 0 {
                let delay = 1_000 + rng.below(29_001) as i64;
                labels.push(Label {
                    correlation_id: format!("id-{i}"),
                    label: y,
                    time_ms: t + delay,
                });
            }
        }
        for k in 0..5 {
            labels.push(Label {
                correlation_id: format!("nobody-{k}"),
                label: 1.0,
                time_ms: 1_700_000_050_000,
            });
        }
        labels.sort_by_key(|l| l.time_ms);
        for l in &labels {
            if let Some(j) = join.label(l) {
                perf.add(j.prediction.version, j.label, j.prediction.score);
                joined_pairs.push((j.label, j.prediction.score));
            }
        }
        join.expire(i64::MAX / 2);
        let c = join.counts();
        assert_eq!(c.matched, 900);
        assert_eq!(c.unmatched_labels, 5);
        assert_eq!(c.unmatched_predictions, 100);
        // The rolling window holds the last 400 joined records.
        let last: Vec<(f64, f64)> = joined_pairs[joined_pairs.len() - 400..].to_vec();
        let m = perf.metrics(1);
        assert_eq!(m["n"], 400.0);
        assert!(
            (m["roc_auc"] - pair_auc(&last)).abs() < 1e-12,
            "{} vs {}",
            m["roc_auc"],
            pair_auc(&last)
        );
        let acc = last.iter().filter(|(l, s)| (*s >= 0.5) == (*l == 1.0)).count() as f64 / 400.0;
        assert!((m["accuracy"] - acc).abs() < 1e-12);
        let ll = -last
            .iter()
            .map(|(l, s)| {
                let p = s.clamp(1e-15, 1.0 - 1e-15);
                if *l == 1.0 { p.ln() } else { (1.0 - p).ln() }
            })
            .sum::<f64>()
            / 400.0;
        assert!((m["log_loss"] - ll).abs() < 1e-9, "{} vs {ll}", m["log_loss"]);
    }

    #[test]
    fn a_label_later_than_the_window_is_unmatched() {
        let mut join = LabelJoin::new(1_000);
        let p = Pending {
            version: 2,
            score: 0.4,
            time_ms: 0,
            features: Default::default(),
            index: 0,
        };
        join.predicted("a".into(), p);
        let late = Label {
            correlation_id: "a".into(),
            label: 1.0,
            time_ms: 1_001,
        };
        assert!(join.label(&late).is_none());
        assert_eq!(
            join.counts(),
            JoinCounts {
                matched: 0,
                unmatched_labels: 1,
                unmatched_predictions: 1
            }
        );
    }
}
