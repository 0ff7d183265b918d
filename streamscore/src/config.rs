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
}
