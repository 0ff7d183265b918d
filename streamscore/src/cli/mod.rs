//! Command-line interface: argument definitions and dispatch.

mod config;
mod demo;
mod drift;
mod export;
mod generate;
#[cfg(feature = "onnx")]
mod import_onnx;
mod monitoring;
mod predict;
mod profile;
mod registry;
mod retrain;
mod run;
mod serve;
mod soak;
mod stream;
mod train;

use clap::{Parser, Subcommand};

/// Online scoring of classical ML models on event streams, and the loop around it.
#[derive(Debug, Parser)]
#[command(name = "streamscore", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a synthetic credit-default data set (CSV plus a schema file beside it).
    Generate(generate::Args),
    /// Train a model on a CSV file and save it as a model artifact.
    Train(train::Args),
    /// Score a CSV file with a saved model.
    Predict(predict::Args),
    /// Score a stream of events with a saved model into one or more sinks (at-least-once).
    Stream(stream::Args),
    /// Profile training data for drift detection (writes profile.json).
    Profile(profile::Args),
    /// Compare current data with a reference profile and report drift.
    Drift(drift::Args),
    /// Run the whole loop on generated data: train with a sweep, register, promote, serve, stream
    /// with drift half way, alert, retrain, gate, promote, hot-swap.
    Demo(demo::Args),
    /// Register a model artifact directory as the next version of a model.
    Register(registry::RegisterArgs),
    /// List the models of a registry, or the versions of one model.
    Models(registry::ModelsArgs),
    /// Point an alias at a version, or copy a version to another registry (--from/--to).
    Promote(registry::PromoteArgs),
    /// Show one version's metadata and lineage (checksums verified).
    Show(registry::ShowArgs),
    /// Export inference logs (--from DIR|blob://.. --to DIR|blob://..) as a time-partitioned
    /// Parquet data set, or a registry version (REF --out DIR) as an MLflow model directory.
    Export(export::Args),
    /// Import an MLflow model directory (onnx or streamscore flavor) as the next version.
    Import(registry::ImportArgs),
    /// Import an ONNX model (.onnx file) as a model artifact or a registered version.
    #[cfg(feature = "onnx")]
    ImportOnnx(import_onnx::Args),
    /// Serve a model over HTTP: Azure ML /score, Open Inference Protocol v2, MLflow /invocations.
    Serve(serve::Args),
    /// Run the loop on a config: score, monitor drift and performance, alert, retrain, gate,
    /// promote and hot-swap the endpoint.
    Run(run::Args),
    /// Run one retrain-gate-promote cycle by hand on the config's labelled events.
    Retrain(retrain::Args),
    /// Check a streamscore.toml (every overlay) and print the effective config.
    Config(config::Args),
    /// Soak test of serve and stream (scripts/soak.sh runs it).
    #[command(hide = true)]
    Soak(soak::Args),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Train(a) => train::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Stream(a) => stream::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Drift(a) => drift::run(a),
        Command::Register(a) => registry::register(a),
        Command::Models(a) => registry::models(a),
        Command::Promote(a) => registry::promote_cmd(a),
        Command::Show(a) => registry::show(a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => registry::import(a),
        #[cfg(feature = "onnx")]
        Command::ImportOnnx(a) => import_onnx::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Run(a) => run::run(a),
        Command::Retrain(a) => retrain::run(a),
        Command::Config(a) => config::run(a),
        Command::Soak(a) => soak::run(a),
    }
}

/// Parses `key=value`.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// Parses a comma-separated list of column names.
fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// `1234567` → `1,234,567`, for counts in progress output.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The parent directory of `path` must exist (or be created) before writing to it.
fn ensure_parent(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("cannot create directory {}: {e}", parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(parse_key_value("c = 0.5"), Ok(("c".into(), "0.5".into())));
        assert!(parse_key_value("c").is_err());
        assert_eq!(parse_list("a, b,,c"), ["a", "b", "c"]);
    }
}
