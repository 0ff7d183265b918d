//! Random-search sweeps: sample estimator parameters from a space, fit each trial on the
//! training rows, score it on the validation rows, keep the best.
//!
//! The space is written as `name=a..b` (a uniform range; integers when both ends are
//! integers), `name=log:a..b` (log-uniform: every decade equally likely) or `name=v1,v2,...` (a
//! choice), on the command line (`--space`) or one per line in a text file (`#` starts a
//! comment), or as a TOML file ([`SweepFile`], `--sweep-space space.toml`) that can also carry
//! the sweep's options:
//!
//! ```toml
//! trials = 20          # number of trials (--sweep N overrides)
//! metric = "f1"        # validation metric to optimize
//! seed = 7             # seed of the sampling
//! cv = 5               # optional: score each trial by its mean 5-fold CV metric
//!
//! [space]
//! max_depth = { int = [2, 12] }                 # integers, uniform, both ends included
//! min_samples_leaf = { int = [1, 100], log = true } # integers, log-uniform
//! max_features = { uniform = [0.2, 0.9] }       # reals, uniform in [lo, hi)
//! c = { log_uniform = [0.001, 10.0] }           # reals, log-uniform (logistic regression's C)
//! criterion = ["gini", "entropy"]               # a choice (same as { choice = [...] })
//! bootstrap = { choice = [true, false] }
//! n_estimators = 200                            # a fixed value
//! impute = ["mean", "median"]                   # preprocessing is a parameter too
//! ```
//!
//! Besides the estimator's own parameters, a space may sample `impute` (mean, median,
//! most_frequent) and `encode` (onehot, ordinal), the preprocessing choices. Trials are drawn
//! from [`ml_core::rng::Rng`] seeded with the sweep seed, so the same seed gives the same
//! trials. Every trial's parameters and metrics end up in the artifact's `metrics.json` under
//! `sweep`.

use std::time::Instant;

use ml_core::preprocess::Preprocessing;
use ml_core::rng::Rng;
use ml_core::{Error, Estimator, NativeModel, Result};
use serde::Serialize;

use crate::train::{
    CvRecord, TrainMetrics, TrainOutcome, TrainRequest, ValidationMetrics, cross_validate, evaluate_any,
    prepare, report, scalar_metrics,
};

/// Where one parameter's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// Integers uniform in `lo..=hi`.
    IntRange(i64, i64),
    /// Reals uniform in `[lo, hi)`.
    FloatRange(f64, f64),
    /// Reals log-uniform in `[lo, hi)` (`0 < lo < hi`).
    LogUniform(f64, f64),
    /// Integers in `lo..=hi` (`1 <= lo <= hi`) whose logarithm is uniform: `floor(exp(u))` for
    /// `u` uniform in `[ln lo, ln(hi + 1))`.
    IntLogRange(i64, i64),
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
        let domain = if let Some(range) = spec.strip_prefix("log:") {
            let (a, b) = range
                .split_once("..")
                .ok_or_else(|| bad("expected NAME=log:A..B".into()))?;
            let (a, b) = (a.trim(), b.trim());
            match (a.parse::<i64>(), b.parse::<i64>()) {
                (Ok(lo), Ok(hi)) => Domain::int_log(lo, hi).map_err(|e| bad(e.to_string()))?,
                _ => match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(lo), Ok(hi)) => Domain::log_uniform(lo, hi).map_err(|e| bad(e.to_string()))?,
                    _ => return Err(bad("range ends must be numbers".into())),
                },
            }
        } else if let Some((a, b)) = spec.split_once("..") {
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

    /// Parses the `[space]` table of a TOML sweep file (see the module docs for the form).
    pub fn from_toml(table: &toml::Table) -> Result<ParamSpace> {
        let mut space = ParamSpace::default();
        for (name, value) in table {
            let bad = |why: &str| Error::invalid_parameter("space", format!("`{name}`: {why}"));
            let domain = match value {
                toml::Value::Array(values) => Domain::choice(values).map_err(|e| bad(&e))?,
                toml::Value::Table(spec) => {
                    let keys: Vec<&str> = spec.keys().map(String::as_str).collect();
                    let log = match spec.get("log") {
                        None => false,
                        Some(toml::Value::Boolean(b)) => *b,
                        Some(_) => return Err(bad("`log` must be true or false")),
                    };
                    let kinds: Vec<&str> = keys.iter().copied().filter(|k| *k != "log").collect();
                    let [kind] = kinds.as_slice() else {
                        return Err(bad(
                            "give exactly one of int = [A, B], uniform = [A, B], log_uniform = [A, B], choice = [...]",
                        ));
                    };
                    let pair = || -> Result<(f64, f64)> {
                        match spec.get(*kind).and_then(toml::Value::as_array).map(Vec::as_slice) {
                            Some([a, b]) => match (number(a), number(b)) {
                                (Some(a), Some(b)) => Ok((a, b)),
                                _ => Err(bad(&format!("`{kind}` ends must be numbers"))),
                            },
                            _ => Err(bad(&format!("`{kind}` must be a pair [A, B]"))),
                        }
                    };
                    match (*kind, log) {
                        ("int", _) => {
                            let ints =
                                match spec.get("int").and_then(toml::Value::as_array).map(Vec::as_slice) {
                                    Some([toml::Value::Integer(a), toml::Value::Integer(b)]) => (*a, *b),
                                    _ => return Err(bad("`int` must be a pair of integers [A, B]")),
                                };
                            if log {
                                Domain::int_log(ints.0, ints.1)?
                            } else if ints.0 <= ints.1 {
                                Domain::IntRange(ints.0, ints.1)
                            } else {
                                return Err(bad("the range is empty (A > B)"));
                            }
                        }
                        ("uniform", false) => {
                            let (lo, hi) = pair()?;
                            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                                return Err(bad("the range must have A < B, both finite"));
                            }
                            Domain::FloatRange(lo, hi)
                        }
                        ("uniform", true) | ("log_uniform", _) => {
                            let (lo, hi) = pair()?;
                            Domain::log_uniform(lo, hi)?
                        }
                        ("choice", false) => match spec.get("choice") {
                            Some(toml::Value::Array(values)) => {
                                Domain::choice(values).map_err(|e| bad(&e))?
                            }
                            _ => return Err(bad("`choice` must be an array")),
                        },
                        (other, _) => {
                            return Err(bad(&format!(
                                "unknown domain `{other}`{}; use int, uniform, log_uniform or choice",
                                if log { " with log" } else { "" }
                            )));
                        }
                    }
                }
                fixed => Domain::choice(std::slice::from_ref(fixed)).map_err(|e| bad(&e))?,
            };
            space.params.retain(|(n, _)| n != name);
            space.params.push((name.clone(), domain));
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
                    Domain::LogUniform(lo, hi) => {
                        serde_json::Value::from(rng.uniform_range(lo.ln(), hi.ln()).exp().clamp(*lo, *hi))
                    }
                    Domain::IntLogRange(lo, hi) => {
                        let u = rng.uniform_range((*lo as f64).ln(), ((hi + 1) as f64).ln());
                        // exp/ln round-off can land a hair outside; clamp to the range.
                        serde_json::Value::from((u.exp().floor() as i64).clamp(*lo, *hi))
                    }
                    Domain::Choice(values) => values[rng.below(values.len() as u64) as usize].clone(),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

impl Domain {
    fn log_uniform(lo: f64, hi: f64) -> Result<Domain> {
        if lo > 0.0 && hi.is_finite() && lo < hi {
            Ok(Domain::LogUniform(lo, hi))
        } else {
            Err(Error::invalid_parameter(
                "space",
                format!("a log-uniform range needs 0 < A < B, both finite; got {lo}..{hi}"),
            ))
        }
    }

    fn int_log(lo: i64, hi: i64) -> Result<Domain> {
        if 1 <= lo && lo <= hi && hi < i64::MAX {
            Ok(Domain::IntLogRange(lo, hi))
        } else {
            Err(Error::invalid_parameter(
                "space",
                format!("a log-uniform integer range needs 1 <= A <= B; got {lo}..{hi}"),
            ))
        }
    }

    fn choice(values: &[toml::Value]) -> std::result::Result<Domain, String> {
        if values.is_empty() {
            return Err("no values to choose from".into());
        }
        values
            .iter()
            .map(|v| serde_json::to_value(v).map_err(|e| format!("value {v:?} cannot be a parameter: {e}")))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Domain::Choice)
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(x) => Some(*x),
        _ => None,
    }
}

/// A TOML sweep file: the sweep's options and its space (see the module docs for an example).
/// Every option is optional; command-line flags override the file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepFile {
    /// `trials`: number of trials.
    pub trials: Option<usize>,
    /// `metric`: the metric to optimize.
    pub metric: Option<String>,
    /// `seed`: seed of the sampling.
    pub seed: Option<u64>,
    /// `cv`: folds of cross-validation scoring each trial.
    pub cv: Option<usize>,
    /// `[space]`: the parameters to sample.
    pub space: ParamSpace,
}

impl SweepFile {
    /// Parses a TOML sweep file. Unknown keys are errors that list the known ones.
    pub fn parse(text: &str) -> Result<SweepFile> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::invalid_parameter("sweep_space", e.to_string().trim_end().to_string())
        })?;
        SweepFile::from_table(&table)
    }

    /// Reads a sweep file from a table (a whole file, or a `[train.sweep]` section).
    pub fn from_table(table: &toml::Table) -> Result<SweepFile> {
        let bad = |key: &str, why: &str| Error::invalid_parameter("sweep_space", format!("`{key}`: {why}"));
        let count = |key: &str| -> Result<Option<u64>> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
                Some(_) => Err(bad(key, "must be a non-negative integer")),
            }
        };
        let mut file = SweepFile {
            trials: count("trials")?.map(|n| n as usize),
            seed: count("seed")?,
            cv: count("cv")?.map(|n| n as usize),
            ..SweepFile::default()
        };
        for (key, value) in table {
            match (key.as_str(), value) {
                ("trials" | "seed" | "cv", _) => {}
                ("metric", toml::Value::String(m)) => file.metric = Some(m.clone()),
                ("metric", _) => return Err(bad(key, "must be a string such as \"f1\"")),
                ("space", toml::Value::Table(t)) => file.space = ParamSpace::from_toml(t)?,
                ("space", _) => return Err(bad(key, "must be a table ([space])")),
                (other, _) => {
                    return Err(bad(
                        other,
                        "unknown key; known keys are trials, metric, seed, cv and [space]",
                    ));
                }
            }
        }
        Ok(file)
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
    /// Validation metrics of the trial's model fitted on all training rows.
    pub metrics: ValidationMetrics,
    /// The value the trial is ranked by: the validation metric, or its mean over the CV folds
    /// when the sweep cross-validates.
    pub score: f64,
    /// Cross-validation of the trial on the training rows, when the sweep cross-validates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv: Option<CvRecord>,
    /// Seconds spent fitting the trial's model on all training rows.
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
    /// Folds of cross-validation each trial was scored by; absent when trials were scored on
    /// the validation rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv: Option<usize>,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

fn minimized(metric: &str) -> bool {
    matches!(metric, "log_loss" | "rmse" | "mae")
}

/// Runs the sweep: `request.estimator` gives the estimator and its fixed parameters, each trial
/// overrides them with a sample from the space (`impute` and `encode` override the request's
/// preprocessing). Each trial is fitted on the training rows and scored on the validation rows
/// — or, when `request.cv` is `Some(k)`, ranked by its mean k-fold CV metric on the training
/// rows. Returns the best trial's model and metrics with every trial recorded. `step` is called
/// after each trial.
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
        let mut preprocessing = serde_json::to_value(request.preprocessing)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for (k, v) in &sampled {
            if k == "impute" || k == "encode" {
                preprocessing.insert(k.clone(), v.clone());
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
        let preprocessing: Preprocessing = serde_json::from_value(serde_json::Value::Object(preprocessing))
            .map_err(|e| {
            Error::invalid_parameter("space", format!("trial {t}: {e} (parameters {sampled:?})"))
        })?;
        let estimator: Estimator = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            Error::invalid_parameter("space", format!("trial {t}: {e} (parameters {sampled:?})"))
        })?;
        estimator
            .check()
            .map_err(|e| Error::invalid_parameter("space", format!("trial {t}: {e}")))?;
        candidates.push((
            estimator,
            preprocessing,
            sampled.into_iter().collect::<serde_json::Map<_, _>>(),
        ));
    }
    let prepared = prepare(request)?;
    let direction = if minimized(&spec.metric) { "min" } else { "max" };
    let mut trials = Vec::with_capacity(spec.trials);
    let mut best: Option<(usize, f64, NativeModel, std::time::Duration, Preprocessing)> = None;
    for (t, (estimator, preprocessing, params)) in candidates.into_iter().enumerate() {
        // An interrupted sweep stops between trials (a forest also between its trees).
        ml_core::cancel::check()?;
        let trial_request = TrainRequest {
            preprocessing,
            ..request.clone()
        };
        let cv = match request.cv {
            Some(k) => Some(cross_validate(
                &trial_request,
                &estimator,
                &prepared.train,
                k,
                &|| {},
            )?),
            None => None,
        };
        let started = Instant::now();
        let model =
            estimator.fit_with_preprocessing(&prepared.train, &request.target, preprocessing, &|| {})?;
        let fit_time = started.elapsed();
        let metrics = evaluate_any(&model, &prepared.validation, &request.target)?;
        let unknown = |names: Vec<String>| {
            Error::invalid_parameter(
                "metric",
                format!(
                    "`{}` is not a validation metric of {}; choose one of: {}",
                    spec.metric,
                    estimator.name(),
                    names.join(", ")
                ),
            )
        };
        let value = match &cv {
            Some(cv) => *cv
                .mean
                .get(&spec.metric)
                .ok_or_else(|| unknown(cv.mean.keys().cloned().collect()))?,
            None => match metrics.get(&spec.metric) {
                Some(v) => v,
                // Precision, recall and PR AUC live in the classifier's report.
                None => {
                    let extra = report(&model, &prepared.validation, &request.target)?
                        .map(|r| scalar_metrics(&r))
                        .unwrap_or_default();
                    match extra.get(&spec.metric) {
                        Some(v) => *v,
                        None => {
                            let mut names = metric_names(&metrics);
                            names.extend(extra.into_keys());
                            return Err(unknown(names));
                        }
                    }
                }
            },
        };
        let better = match &best {
            None => true,
            // NaN never wins; ties keep the earlier trial.
            Some((_, v, ..)) if direction == "min" => value < *v,
            Some((_, v, ..)) => value > *v,
        };
        trials.push(Trial {
            trial: t,
            params,
            metrics,
            score: value,
            cv,
            fit_seconds: fit_time.as_secs_f64(),
        });
        if better && !value.is_nan() || best.is_none() {
            best = Some((t, value, model, fit_time, preprocessing));
        }
        step();
    }
    let (best_trial, _, model, fit_time, preprocessing) =
        best.ok_or_else(|| Error::Internal("sweep finished without a trial".into()))?;
    let report = report(&model, &prepared.validation, &request.target)?;
    Ok(TrainOutcome {
        metrics: TrainMetrics {
            validation: trials[best_trial].metrics.clone(),
            report,
            n_train: prepared.train.n_rows(),
            n_validation: prepared.validation.n_rows(),
            cv: trials[best_trial].cv.clone(),
            sweep: Some(SweepRecord {
                metric: spec.metric.clone(),
                direction,
                seed: spec.seed,
                best_trial,
                cv: request.cv,
                trials,
            }),
            split: prepared.split,
            preprocessing,
            feature_importances: crate::train::feature_importances(&model),
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

    #[test]
    fn toml_sweep_files_give_every_kind_of_domain() {
        let file = SweepFile::parse(
            r#"
trials = 12
metric = "roc_auc"
seed = 7
cv = 3

[space]
max_depth = { int = [2, 12] }
min_samples_leaf = { int = [1, 100], log = true }
max_features = { uniform = [0.2, 0.9] }
c = { log_uniform = [0.001, 10.0] }
criterion = ["gini", "entropy"]
bootstrap = { choice = [true, false] }
n_estimators = 200
"#,
        )
        .unwrap();
        assert_eq!(
            (file.trials, file.metric.as_deref(), file.seed, file.cv),
            (Some(12), Some("roc_auc"), Some(7), Some(3))
        );
        let domain = |name: &str| {
            file.space
                .params
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(domain("max_depth"), Domain::IntRange(2, 12));
        assert_eq!(domain("min_samples_leaf"), Domain::IntLogRange(1, 100));
        assert_eq!(domain("max_features"), Domain::FloatRange(0.2, 0.9));
        assert_eq!(domain("c"), Domain::LogUniform(0.001, 10.0));
        assert_eq!(
            domain("criterion"),
            Domain::Choice(vec!["gini".into(), "entropy".into()])
        );
        assert_eq!(
            domain("bootstrap"),
            Domain::Choice(vec![true.into(), false.into()])
        );
        assert_eq!(domain("n_estimators"), Domain::Choice(vec![200.into()]));
        // The options are optional.
        assert_eq!(SweepFile::parse("[space]\nx = [1]\n").unwrap().trials, None);
    }

    #[test]
    fn bad_toml_sweep_files_say_what_is_wrong() {
        for (text, needle) in [
            ("trials = 3\nmetrc = \"f1\"\n", "unknown key"),
            ("[space]\nx = { int = [5, 1] }\n", "empty"),
            ("[space]\nx = { int = [1.5, 3] }\n", "pair of integers"),
            ("[space]\nx = { log_uniform = [0.0, 1.0] }\n", "0 < A < B"),
            ("[space]\nx = { int = [0, 10], log = true }\n", "1 <= A <= B"),
            (
                "[space]\nx = { uniform = [1, 2], int = [1, 2] }\n",
                "exactly one of",
            ),
            ("[space]\nx = { normal = [0, 1] }\n", "unknown domain"),
            ("[space]\nx = []\n", "no values"),
            ("trials = -1\n", "non-negative"),
            ("trials = \n", "sweep_space"),
        ] {
            let err = SweepFile::parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn log_uniform_draws_cover_every_decade_evenly() {
        let mut s = ParamSpace::default();
        s.add("c=log:0.001..1000").unwrap();
        s.add("n=log:1..1000").unwrap();
        assert_eq!(s.params[0].1, Domain::LogUniform(0.001, 1000.0));
        assert_eq!(s.params[1].1, Domain::IntLogRange(1, 1000));
        let mut rng = Rng::new(3);
        let draws: Vec<_> = (0..6000).map(|_| s.sample(&mut rng)).collect();
        // Six decades for c, three for n: each holds about 1/6 (1/3) of the draws (binomial sd
        // ~0.005 / 0.006); a uniform draw would put almost all of them in the top decade.
        let mut c_decades = [0usize; 6];
        let mut n_decades = [0usize; 3];
        for d in &draws {
            let c = d[0].1.as_f64().unwrap();
            let n = d[1].1.as_i64().unwrap();
            assert!((0.001..=1000.0).contains(&c) && (1..=1000).contains(&n));
            c_decades[((c.log10() + 3.0).floor() as usize).min(5)] += 1;
            n_decades[((n as f64).log10().floor() as usize).min(2)] += 1;
        }
        for count in c_decades {
            assert!((count as f64 / 6000.0 - 1.0 / 6.0).abs() < 0.03, "{c_decades:?}");
        }
        for count in n_decades {
            assert!((count as f64 / 6000.0 - 1.0 / 3.0).abs() < 0.04, "{n_decades:?}");
        }
        for bad in ["c=log:0..1", "c=log:5..1", "n=log:0..10", "c=log:a..b", "c=log:1"] {
            assert!(ParamSpace::default().add(bad).is_err(), "{bad}");
        }
    }
}
