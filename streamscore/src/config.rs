//! `streamscore.toml`: one file that describes what the commands run, section by section.
//!
//! ```toml
//! [stream]
//! model = "models/credit"            # a model artifact directory
//! source = "file:events.jsonl"
//! sinks = ["jsonl:logs/"]
//! dead_letter = "jsonl:dead/"
//! batch_size = 512
//! max_wait_ms = 20
//! commit_interval_ms = 5000
//! ```
//!
//! ```toml
//! [train]
//! data = "credit.csv"
//! target = "default"
//! estimator = "random_forest_classifier"
//! params = { n_estimators = 100, max_depth = 8 }
//! split = "stratified"                # auto (default) | stratified | hash
//! cv = 5
//! impute = "median"                   # mean (default) | median | most_frequent
//! encode = "onehot"                   # onehot (default) | ordinal
//! out = "models/credit"
//!
//! [train.sweep]                       # the same keys as a --sweep-space file
//! trials = 20
//! metric = "f1"
//! [train.sweep.space]
//! max_depth = { int = [2, 12] }
//! ```
//!
//! The loop (`streamscore run`, `retrain`, `config check`) reads these sections:
//!
//! ```toml
//! [data]
//! train = "credit.csv"               # training data (CSV, schema beside it)
//! target = "default"
//!
//! [model]
//! name = "credit"                    # the registered model name
//! estimator = "logistic_regression"
//! params = { c = 1.0 }
//!
//! [registry]
//! path = "registry"                  # a directory or blob://CONTAINER/PREFIX
//! alias = "prod"                     # the alias that is served and promoted
//!
//! [serve]
//! port = 0                           # 0: any free port
//! keys = ["${SCORE_KEY}"]            # scoring keys; empty: no authentication
//! alert_key = "${ALERT_KEY}"         # key of POST /alerts (Azure Monitor webhooks)
//!
//! [stream]                            # as for `streamscore stream`
//! source = "file:events.jsonl"
//! sinks = ["jsonl:logs/"]
//!
//! [monitor]
//! window = 5000                      # rows per drift report
//! window_s = 300                     # or seconds of event time per report (first reached wins)
//! drift_share = 0.5                  # share of drifted features that makes dataset drift
//! prediction_drift = true
//! sinks = ["jsonl:monitor/"]          # where loop events (reports, alerts, retrains) go
//! [monitor.features.AGE]
//! test = "psi"
//! threshold = 0.2
//!
//! [[alert]]
//! name = "drift"
//! when = "share_drifted_features > 0.3"   # or dataset_drift, feature:AGE.drift_score > 0.2,
//!                                         # performance.roc_auc < 0.7
//! cooldown = 20000                   # events before the rule may fire again
//! action = "retrain"                 # retrain | log | command:PROGRAM ARGS | webhook:URL
//!
//! [labels]
//! source = "file:labels.jsonl"       # records {correlationid, label, time}
//! delay_window_s = 60                # a label later than this after its prediction is unmatched
//!
//! [retrain]
//! on = "alert"                       # alert | schedule
//! every = 50000                      # with on = "schedule": events between retrains
//! min_labelled = 2000
//! include_training_data = false
//!
//! [promote]
//! metric = "roc_auc"                 # roc_auc (classification) | rmse (regression)
//! margin = 0.005
//! holdout_fraction = 0.3             # of the most recent labelled window
//!
//! [env.prod]                         # overlays, chosen with --env prod
//! registry = { path = "blob://models/credit" }
//! ```
//!
//! An overlay `[env.NAME]` is merged into the file when `--env NAME` is given: tables merge key
//! by key, any other value (arrays included) replaces the file's value.
//!
//! Values may use `${VAR}`, replaced by the environment variable `VAR` (an unset variable is
//! an error naming it). Command-line flags override the file. Unknown keys are errors that name
//! the nearest valid key.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[stream]`: what `streamscore stream` runs.
    #[serde(default)]
    pub stream: Option<StreamSection>,
    /// `[train]`: what `streamscore train` runs.
    #[serde(default)]
    pub train: Option<TrainSection>,
    /// `[data]`: the loop's training data.
    #[serde(default)]
    pub data: Option<DataSection>,
    /// `[model]`: the loop's model name and estimator.
    #[serde(default)]
    pub model: Option<ModelSection>,
    /// `[registry]`: where versions are registered and which alias is served.
    #[serde(default)]
    pub registry: Option<RegistrySection>,
    /// `[serve]`: the loop's endpoint.
    #[serde(default)]
    pub serve: Option<ServeSection>,
    /// `[monitor]`: drift windows and where loop events go.
    #[serde(default)]
    pub monitor: Option<MonitorSection>,
    /// `[[alert]]`: alert rules.
    #[serde(default)]
    pub alert: Vec<AlertSection>,
    /// `[labels]`: ground truth arriving after the predictions.
    #[serde(default)]
    pub labels: Option<LabelsSection>,
    /// `[retrain]`: when and on what to retrain.
    #[serde(default)]
    pub retrain: Option<RetrainSection>,
    /// `[promote]`: the gate a retrained model must pass to be promoted.
    #[serde(default)]
    pub promote: Option<PromoteSection>,
}

/// The `[data]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training data (CSV; its schema beside it as `x.schema.json`).
    pub train: Option<String>,
    /// Schema file, when not beside the data.
    pub schema: Option<String>,
    /// The column to predict.
    pub target: Option<String>,
}

/// The `[model]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Registered model name.
    pub name: Option<String>,
    /// Estimator name.
    pub estimator: Option<String>,
    /// Estimator parameters.
    #[serde(default)]
    pub params: toml::Table,
    /// A sweep (the keys of a `--sweep-space` file).
    pub sweep: Option<toml::Table>,
}

/// The `[registry]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// A directory or `blob://CONTAINER/PREFIX`.
    pub path: Option<String>,
    /// The alias that is served and that promotion moves (default `prod`).
    pub alias: Option<String>,
}

/// The `[serve]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address to bind (default 127.0.0.1).
    pub host: Option<String>,
    /// Port (0: any free port).
    pub port: Option<u16>,
    /// Scoring keys (at most two).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Key of `POST /alerts`; without one the route is off.
    pub alert_key: Option<String>,
}

/// The `[monitor]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    /// Rows per drift report.
    pub window: Option<usize>,
    /// Seconds of event time per drift report (with `window` too: whichever comes first).
    pub window_s: Option<f64>,
    /// Share of drifted features that makes dataset drift (default 0.5).
    pub drift_share: Option<f64>,
    /// Compare the predictions with the training predictions too (default true).
    pub prediction_drift: Option<bool>,
    /// Event sinks: `jsonl:DIR` or `file:PATH.jsonl` (one JSON line per loop event);
    /// `appinsights:` and `otlp:` (`?endpoint=URL`) send the loop's telemetry there.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Per-feature test and threshold.
    #[serde(default)]
    pub features: std::collections::BTreeMap<String, FeatureRule>,
    /// Rows of labelled predictions kept per model version for the rolling metrics.
    pub performance_window: Option<usize>,
}

/// A per-feature drift test.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureRule {
    /// Test name (`ks`, `psi`, `chisquare`, `wasserstein`, `jensenshannon`, ...).
    pub test: Option<String>,
    /// Threshold of that test.
    pub threshold: Option<f64>,
}

/// One `[[alert]]` rule.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    /// Name (default: the condition).
    pub name: Option<String>,
    /// The condition (see the module docs).
    pub when: String,
    /// Events scored before the rule may fire again.
    pub cooldown: Option<u64>,
    /// `retrain` (default), `log`, `command:PROGRAM ARGS`, `webhook:URL`.
    pub action: Option<String>,
}

/// The `[labels]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelsSection {
    /// Source spec of label records `{correlationid, label, time}`.
    pub source: Option<String>,
    /// Longest delay from prediction to label, seconds (default 3600).
    pub delay_window_s: Option<f64>,
}

/// The `[retrain]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrainSection {
    /// `alert` (default) or `schedule`.
    pub on: Option<String>,
    /// With `on = "schedule"`: events between retrains.
    pub every: Option<u64>,
    /// Fewest labelled rows to retrain on (default 1000).
    pub min_labelled: Option<usize>,
    /// Add the `[data]` training data to the recent labelled rows (default false).
    pub include_training_data: Option<bool>,
    /// Most recent labelled rows used (default 20000).
    pub max_rows: Option<usize>,
}

/// The `[promote]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromoteSection {
    /// `roc_auc` (classification, default) or `rmse` (regression).
    pub metric: Option<String>,
    /// How much better the new model must be (default 0.005).
    pub margin: Option<f64>,
    /// Share of the most recent labelled window held out for the gate (default 0.3).
    pub holdout_fraction: Option<f64>,
}

/// The `[train]` section: defaults for the flags of `streamscore train`.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Training data (CSV).
    pub data: Option<String>,
    /// The column to predict.
    pub target: Option<String>,
    /// Estimator name.
    pub estimator: Option<String>,
    /// Estimator parameters (`name = value`); `--param` flags override single entries.
    #[serde(default)]
    pub params: toml::Table,
    /// Schema file.
    pub schema: Option<String>,
    /// Columns to leave out of the features.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Share of rows held out for validation.
    pub validation_fraction: Option<f64>,
    /// Seed of the split and the CV folds.
    pub split_seed: Option<u64>,
    /// `auto`, `stratified` or `hash`.
    pub split: Option<String>,
    /// Folds of cross-validation.
    pub cv: Option<usize>,
    /// `mean`, `median` or `most_frequent`.
    pub impute: Option<String>,
    /// `onehot` or `ordinal`.
    pub encode: Option<String>,
    /// Output directory of the artifact.
    pub out: Option<String>,
    /// A sweep: the keys of a `--sweep-space` TOML file (`trials`, `metric`, `seed`, `cv`,
    /// `[space]`), read by [`crate::sweep::SweepFile::from_table`].
    pub sweep: Option<toml::Table>,
}

/// The `[stream]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    /// Model artifact directory.
    pub model: Option<String>,
    /// Source spec.
    pub source: Option<String>,
    /// Sink specs.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Dead-letter sink spec.
    pub dead_letter: Option<String>,
    /// Most events per batch.
    pub batch_size: Option<usize>,
    /// Longest wait to fill a batch, milliseconds.
    pub max_wait_ms: Option<u64>,
    /// Longest time between commits, milliseconds.
    pub commit_interval_ms: Option<u64>,
    /// Commit after this many events.
    pub commit_every: Option<u64>,
    /// Batches queued between reading and scoring.
    pub queue_capacity: Option<usize>,
    /// Batches scored at once.
    pub in_flight: Option<usize>,
}

impl Config {
    /// Reads and parses a config file, expanding `${VAR}`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses config text, expanding `${VAR}`; `[env.*]` overlays are checked and dropped.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse_env(text, None)
    }

    /// Reads a config file with the overlay `[env.NAME]` merged in (`None`: none).
    pub fn load_env(path: &Path, env: Option<&str>) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Config::parse_env(&text, env).with_context(|| format!("in {}", path.display()))
    }

    /// Parses config text with the overlay `[env.NAME]` merged in (`None`: none). Every overlay
    /// is checked, also those not chosen, so a typo in `[env.prod]` shows up in dev.
    pub fn parse_env(text: &str, env: Option<&str>) -> anyhow::Result<Config> {
        let expanded = expand_env(text)?;
        let mut root: toml::Table =
            toml::from_str(&expanded).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        let overlays = match root.remove("env") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => anyhow::bail!("`env` must be a table of overlays: [env.dev], [env.prod], ..."),
        };
        for (name, overlay) in &overlays {
            let toml::Value::Table(overlay) = overlay else {
                anyhow::bail!("`env.{name}` must be a table");
            };
            let mut merged = root.clone();
            merge(&mut merged, overlay.clone());
            from_table(merged).with_context(|| format!("in the overlay [env.{name}]"))?;
        }
        if let Some(name) = env {
            let Some(toml::Value::Table(overlay)) = overlays.get(name) else {
                let known: Vec<&str> = overlays.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "no overlay [env.{name}] in the config{}",
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!("; overlays: {}", known.join(", "))
                    }
                );
            };
            merge(&mut root, overlay.clone());
        }
        from_table(root)
    }

    /// The effective config as JSON (what `streamscore config check` prints).
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

fn from_table(table: toml::Table) -> anyhow::Result<Config> {
    Config::deserialize(table)
        .map_err(|e| anyhow::anyhow!("{}", suggest(e.to_string().trim_end()).replace('\n', " ")))
}

/// Merges `overlay` into `base`: tables key by key, other values replaced.
pub fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Adds "did you mean `x`?" to serde's "unknown field `y`, expected one of `a`, `b`".
fn suggest(message: &str) -> String {
    // The candidates are on the first line; toml adds "in `section`" on the next.
    let first = message.lines().next().unwrap_or_default();
    let Some(rest) = first.split("unknown field `").nth(1) else {
        return message.to_string();
    };
    let Some((unknown, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (edit_distance(unknown, c), *c))
        .min()
        .filter(|(d, c)| *d <= c.len().max(unknown.len()) / 2 + 1);
    match best {
        Some((_, c)) => format!("{message}; did you mean `{c}`?"),
        None => message.to_string(),
    }
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Replaces every `${VAR}` with the value of the environment variable `VAR`.
pub fn expand_env(text: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow::anyhow!("`${{` without a closing `}}`"))?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            anyhow::bail!("`${{{name}}}` is not a valid environment variable reference");
        }
        let value =
            std::env::var(name).map_err(|_| anyhow::anyhow!("environment variable `{name}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_stream_section_and_expands_variables() {
        // SAFETY: tests in this module do not read the environment concurrently.
        unsafe { std::env::set_var("SS_TEST_OUT", "logs") };
        let c = Config::parse(
            "[stream]\nmodel = \"m\"\nsource = \"file:e.jsonl\"\nsinks = [\"jsonl:${SS_TEST_OUT}/\"]\nbatch_size = 64\n",
        )
        .unwrap();
        let s = c.stream.unwrap();
        assert_eq!(s.sinks, ["jsonl:logs/"]);
        assert_eq!(s.batch_size, Some(64));
        let e = Config::parse("[stream]\nsinks = [\"${SS_TEST_UNSET_VAR}\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`SS_TEST_UNSET_VAR` is not set"), "{e}");
        let e = Config::parse("[stream]\nbatchsize = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("batchsize"), "{e}");
    }

    const LOOP: &str = r#"
[model]
name = "credit"
estimator = "logistic_regression"
[registry]
path = "reg-dev"
[monitor]
window = 500
sinks = ["jsonl:ev/"]
[[alert]]
when = "dataset_drift"
cooldown = 1000
[promote]
margin = 0.01
[env.prod.registry]
path = "blob://models/credit"
[env.prod.monitor]
sinks = ["jsonl:prod-ev/"]
"#;

    #[test]
    fn overlays_merge_tables_key_by_key_and_replace_other_values() {
        let dev = Config::parse_env(LOOP, None).unwrap();
        assert_eq!(dev.registry.as_ref().unwrap().path.as_deref(), Some("reg-dev"));
        let prod = Config::parse_env(LOOP, Some("prod")).unwrap();
        assert_eq!(
            prod.registry.as_ref().unwrap().path.as_deref(),
            Some("blob://models/credit")
        );
        let monitor = prod.monitor.unwrap();
        // Merged: the window stays from the base file, the sinks array is replaced.
        assert_eq!(monitor.window, Some(500));
        assert_eq!(monitor.sinks, ["jsonl:prod-ev/"]);
        assert_eq!(prod.alert.len(), 1);
        assert_eq!(prod.promote.unwrap().margin, Some(0.01));
        let e = Config::parse_env(LOOP, Some("staging")).unwrap_err().to_string();
        assert!(e.contains("[env.staging]") && e.contains("prod"), "{e}");
        // The effective config prints and reads back the same.
        let effective = Config::parse_env(LOOP, Some("prod")).unwrap();
        let again: Config = serde_json::from_str(&effective.to_json().unwrap()).unwrap();
        assert_eq!(again, effective);
    }

    #[test]
    fn bad_config_names_the_key_the_type_and_the_secret() {
        let e = Config::parse("[monitor]\nwindw = 3\n").unwrap_err().to_string();
        assert!(e.contains("windw") && e.contains("did you mean `window`?"), "{e}");
        let e = Config::parse("[promote]\nmargn = 0.1\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `margin`?"), "{e}");
        // In an overlay too, whether or not it is chosen.
        let e = format!(
            "{:#}",
            Config::parse("[env.prod.registry]\nalais = \"prod\"\n").unwrap_err()
        );
        assert!(
            e.contains("[env.prod]") && e.contains("did you mean `alias`?"),
            "{e}"
        );
        let e = Config::parse("[monitor]\nwindow = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid type"), "{e}");
        let e = Config::parse("[serve]\nalert_key = \"${SS_TEST_MISSING_SECRET}\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`SS_TEST_MISSING_SECRET` is not set"), "{e}");
    }

    #[test]
    fn the_azure_loop_example_is_valid_in_every_environment() {
        // SAFETY: no test reads these variables concurrently.
        unsafe {
            std::env::set_var("STREAMSCORE_SCORE_KEY", "k1");
            std::env::set_var("STREAMSCORE_ALERT_KEY", "k2");
        }
        let text = include_str!("../examples/azure_loop.toml");
        for env in [None, Some("staging"), Some("prod"), Some("emulators")] {
            let c = Config::parse_env(text, env).unwrap();
            crate::run::LoopSettings::from_config(&c).unwrap();
        }
        let prod = Config::parse_env(text, Some("prod")).unwrap();
        assert_eq!(prod.serve.unwrap().alert_key.as_deref(), Some("k2"));
        assert!(prod.stream.unwrap().source.unwrap().starts_with("eventhubs://"));
    }

    #[test]
    fn parses_the_train_section_with_a_sweep() {
        let c = Config::parse(
            "[train]\ndata = \"d.csv\"\ntarget = \"y\"\nparams = { max_depth = 4, criterion = \"gini\" }\ncv = 3\n\
             [train.sweep]\ntrials = 5\n[train.sweep.space]\nmax_depth = { int = [2, 6] }\n",
        )
        .unwrap();
        let t = c.train.unwrap();
        assert_eq!(
            (t.data.as_deref(), t.target.as_deref(), t.cv),
            (Some("d.csv"), Some("y"), Some(3))
        );
        assert_eq!(t.params.get("max_depth"), Some(&toml::Value::Integer(4)));
        let sweep = crate::sweep::SweepFile::from_table(&t.sweep.unwrap()).unwrap();
        assert_eq!(sweep.trials, Some(5));
        assert_eq!(sweep.space.params.len(), 1);
        let e = Config::parse("[train]\nimpute_strategy = \"mean\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("impute_strategy"), "{e}");
    }
}
