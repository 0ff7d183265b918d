//! Random-search sweeps: sample estimator parameters from a space, fit each trial on the
//! training rows, score it on the validation rows, keep the best.
//!
//! The space is written as `name=a..b` (a uniform range; integers when both ends are
//! integers) or `name=v1,v2,...` (a choice), on the command line (`--space`) or one per line
//! in a text file (`#` starts a comment). Trials are drawn from [`ml_core::rng::Rng`] seeded with
//! the sweep seed, so the same seed gives the same trials. Every trial's parameters and metrics
//! end up in the artifact's `metrics.json` under `sweep`.

use std::time::Instant;

use ml_core::rng::Rng;
use ml_core::{Error, Estimator, NativeModel, Result};
use serde::Serialize;

use crate::train::{
    TrainMetrics, TrainOutcome, TrainRequest, ValidationMetrics, evaluate_any, prepare, report,
};

/// Where one parameter's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// Integers uniform in `lo..=hi`.
    IntRange(i64, i64),
    /// Reals uniform in `[lo, hi)`.
    FloatRange(f64, f64),
    /// One of these values (JSON where they parse, else strings).
    Choice(Vec<serde_json::Value>),
}

/// A parameter space: parameter names and their domains.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamSpace {
    /// `(name, domain)` in the order given.
    pub params: Vec<(String, Domain)>,
}

impl ParamSpace {
    /// Parses one `name=a..b` or `name=v1,v2` entry and adds it (a later entry for the same
    /// name replaces an earlier one).
    pub fn add(&mut self, entry: &str) -> Result<()> {
        let bad = |why: String| Error::invalid_parameter("space", format!("`{entry}`: {why}"));
        let (name, spec) = entry
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=A..B or NAME=V1,V2,...".into()))?;
        let (name, spec) = (name.trim(), spec.trim());
        if name.is_empty() || spec.is_empty() {
            return Err(bad("expected NAME=A..B or NAME=V1,V2,...".into()));
        }
        let domain = if let Some((a, b)) = spec.split_once("..") {
            let (a, b) = (a.trim(), b.trim());
            match (a.parse::<i64>(), b.parse::<i64>()) {
                (Ok(lo), Ok(hi)) if lo <= hi => Domain::IntRange(lo, hi),
                (Ok(_), Ok(_)) => return Err(bad("the range is empty (A > B)".into())),
                _ => match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(lo), Ok(hi)) if lo.is_finite() && hi.is_finite() && lo < hi => {
                        Domain::FloatRange(lo, hi)
                    }
                    (Ok(_), Ok(_)) => return Err(bad("the range must have A < B, both finite".into())),
                    _ => return Err(bad("range ends must be numbers".into())),
                },
            }
        } else {
            let values: Vec<serde_json::Value> = spec
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into())))
                .collect();
            if values.is_empty() {
                return Err(bad("no values".into()));
            }
            Domain::Choice(values)
        };
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.to_string(), domain));
        Ok(())
    }

    /// Parses a space file: one entry per line, blank lines and `#` comments ignored.
    pub fn parse_file(text: &str) -> Result<ParamSpace> {
        let mut space = ParamSpace::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                space.add(line)?;
            }
        }
        Ok(space)
    }

    /// Draws one set of parameters.
    fn sample(&self, rng: &mut Rng) -> Vec<(String, serde_json::Value)> {
        self.params
            .iter()
            .map(|(name, domain)| {
                let value = match domain {
                    Domain::IntRange(lo, hi) => {
                        let span = (hi - lo) as u64 + 1;
                        serde_json::Value::from(lo + rng.below(span) as i64)
                    }
                    Domain::FloatRange(lo, hi) => serde_json::Value::from(rng.uniform_range(*lo, *hi)),
                    Domain::Choice(values) => values[rng.below(values.len() as u64) as usize].clone(),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// How to sweep.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Number of trials.
    pub trials: usize,
    /// The validation metric to optimize (a key of `metrics.json`: `f1`, `roc_auc`, `rmse`...).
    /// Error metrics (`log_loss`, `rmse`, `mae`) are minimized, the others maximized.
    pub metric: String,
    /// The space to sample.
    pub space: ParamSpace,
    /// Seed of the sampling. Default 0.
    pub seed: u64,
}

/// One trial as recorded in `metrics.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trial {
    /// Trial number, from 0.
    pub trial: usize,
    /// The sampled parameters (on top of the request's fixed ones).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Validation metrics.
    pub metrics: ValidationMetrics,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
}

/// The sweep part of `metrics.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRecord {
    /// The metric optimized.
    pub metric: String,
    /// `"max"` or `"min"`.
    pub direction: &'static str,
    /// Seed of the sampling.
    pub seed: u64,
    /// Number of the chosen trial.
    pub best_trial: usize,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

fn minimized(metric: &str) -> bool {
    matches!(metric, "log_loss" | "rmse" | "mae")
}

/// Runs the sweep: `request.estimator` gives the estimator and its fixed parameters, each trial
/// overrides them with a sample from the space. Returns the best trial's model and metrics with
/// every trial recorded. `step` is called after each trial.
pub fn sweep(request: &TrainRequest, spec: &SweepSpec, step: &(dyn Fn() + Sync)) -> Result<TrainOutcome> {
    if spec.trials == 0 {
        return Err(Error::invalid_parameter("sweep", "needs at least one trial"));
    }
    if spec.space.params.is_empty() {
        return Err(Error::invalid_parameter(
            "space",
            "is empty; give parameters to sample, e.g. --space max_depth=2..12",
        ));
    }
    let base = match serde_json::to_value(&request.estimator) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            return Err(Error::Internal(
                "estimator does not serialize to an object".into(),
            ));
        }
    };
    // Draw and check every trial's parameters before any fitting.
    let mut rng = Rng::new(spec.seed);
    let mut candidates = Vec::with_capacity(spec.trials);
    for t in 0..spec.trials {
        let sampled = spec.space.sample(&mut rng);
        let mut map = base.clone();
        for (k, v) in &sampled {
            map.insert(k.clone(), v.clone());
        }
        let estimator: Estimator = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            Error::invalid_parameter("space", format!("trial {t}: {e} (parameters {sampled:?})"))
        })?;
        estimator
            .check()
            .map_err(|e| Error::invalid_parameter("space", format!("trial {t}: {e}")))?;
        candidates.push((estimator, sampled.into_iter().collect::<serde_json::Map<_, _>>()));
    }
    let prepared = prepare(request)?;
    let direction = if minimized(&spec.metric) { "min" } else { "max" };
    let mut trials = Vec::with_capacity(spec.trials);
    let mut best: Option<(usize, f64, NativeModel, std::time::Duration)> = None;
    for (t, (estimator, params)) in candidates.into_iter().enumerate() {
        let started = Instant::now();
        let model = estimator.fit(&prepared.train, &request.target)?;
        let fit_time = started.elapsed();
        let metrics = evaluate_any(&model, &prepared.validation, &request.target)?;
        let value = metrics.get(&spec.metric).ok_or_else(|| {
            Error::invalid_parameter(
                "metric",
                format!(
                    "`{}` is not a validation metric of {}; choose one of: {}",
                    spec.metric,
                    estimator.name(),
                    metric_names(&metrics).join(", ")
                ),
            )
        })?;
        let better = match &best {
            None => true,
            // NaN never wins; ties keep the earlier trial.
            Some((_, v, _, _)) if direction == "min" => value < *v,
            Some((_, v, _, _)) => value > *v,
        };
        trials.push(Trial {
            trial: t,
            params,
            metrics,
            fit_seconds: fit_time.as_secs_f64(),
        });
        if better && !value.is_nan() || best.is_none() {
            best = Some((t, value, model, fit_time));
        }
        step();
    }
    let (best_trial, _, model, fit_time) =
        best.ok_or_else(|| Error::Internal("sweep finished without a trial".into()))?;
    let report = report(&model, &prepared.validation, &request.target)?;
    Ok(TrainOutcome {
        metrics: TrainMetrics {
            validation: trials[best_trial].metrics.clone(),
            report,
            n_train: prepared.train.n_rows(),
            n_validation: prepared.validation.n_rows(),
            sweep: Some(SweepRecord {
                metric: spec.metric.clone(),
                direction,
                seed: spec.seed,
                best_trial,
                trials,
            }),
        },
        model,
        schema_source: prepared.schema_source,
        ignored_columns: prepared.ignored_columns,
        fit_time,
    })
}

fn metric_names(m: &ValidationMetrics) -> Vec<String> {
    match serde_json::to_value(m) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| v.is_f64() && k != "n_rows")
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_entries_parse() {
        let mut s = ParamSpace::default();
        s.add("max_depth=2..12").unwrap();
        s.add("c=0.01..10").unwrap();
        s.add("criterion=gini,entropy").unwrap();
        s.add("max_features=sqrt, 0.5, 3").unwrap();
        assert_eq!(s.params[0], ("max_depth".into(), Domain::IntRange(2, 12)));
        assert_eq!(s.params[1], ("c".into(), Domain::FloatRange(0.01, 10.0)));
        assert_eq!(
            s.params[2].1,
            Domain::Choice(vec!["gini".into(), "entropy".into()])
        );
        assert_eq!(
            s.params[3].1,
            Domain::Choice(vec!["sqrt".into(), 0.5.into(), 3.into()])
        );
        for bad in ["x", "=1..2", "x=5..1", "x=a..b", "x=1.0..1.0"] {
            assert!(ParamSpace::default().add(bad).is_err(), "{bad}");
        }
        let f =
            ParamSpace::parse_file("# forest\nmax_depth = 3..5\n\nbootstrap=true,false # both\n").unwrap();
        assert_eq!(f.params.len(), 2);
    }

    #[test]
    fn sampling_stays_in_the_domain_and_follows_the_seed() {
        let mut s = ParamSpace::default();
        s.add("a=2..4").unwrap();
        s.add("b=0.5..0.75").unwrap();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..200).map(|_| s.sample(&mut rng)).collect::<Vec<_>>()
        };
        let one = draw(1);
        assert_eq!(one, draw(1));
        assert_ne!(one, draw(2));
        let mut seen = [false; 3];
        for trial in &one {
            let a = trial[0].1.as_i64().unwrap();
            let b = trial[1].1.as_f64().unwrap();
            assert!((2..=4).contains(&a) && (0.5..0.75).contains(&b));
            seen[(a - 2) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "both ends of an integer range are drawn");
    }
}
