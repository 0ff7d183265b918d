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
//! Values may use `${VAR}`, replaced by the environment variable `VAR` (an unset variable is
//! an error naming it). Command-line flags override the file. Later sections (registry, serve,
//! drift, the loop) join this module as their commands arrive.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[stream]`: what `streamscore stream` runs.
    #[serde(default)]
    pub stream: Option<StreamSection>,
    /// `[train]`: what `streamscore train` runs.
    #[serde(default)]
    pub train: Option<TrainSection>,
}

/// The `[train]` section: defaults for the flags of `streamscore train`.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
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
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
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

    /// Parses config text, expanding `${VAR}`.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let expanded = expand_env(text)?;
        toml::from_str(&expanded).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }
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
