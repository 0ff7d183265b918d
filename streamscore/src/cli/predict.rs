//! `streamscore predict`

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ml_core::ModelArtifact;
use streamscore::predict::{ScoredCsv, predict_csv, write_predictions_csv};

use super::{ensure_parent, parse_list, thousands};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model artifact directory (as written by `train`), or a registry reference such as
    /// credit@prod, credit:3 or credit@latest (read from --registry).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    registry: super::registry::RegistryArg,
    /// Data to score: CSV with a header row; columns are matched by name, others are ignored.
    #[arg(long)]
    data: PathBuf,
    /// Output CSV (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Input columns to copy into the output before the predictions (comma-separated), e.g. an id.
    #[arg(long, value_name = "COLS")]
    keep: Option<String>,
}

// Builders for running the command from Rust; the loop demo no longer calls them.
#[allow(dead_code)]
impl Args {
    /// Arguments for `demo`.
    pub fn new(model: PathBuf, data: PathBuf, out: PathBuf) -> Self {
        Args {
            model,
            data,
            out: Some(out),
            keep: None,
            registry: super::registry::RegistryArg::new(ml_registry::local::DEFAULT_PATH),
        }
    }

    /// Reads `--model` from `registry` (for `demo`).
    pub fn with_registry(mut self, registry: super::registry::RegistryArg) -> Self {
        self.registry = registry;
        self
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    run_with_output(args).map(|_| ())
}

pub fn run_with_output(args: Args) -> anyhow::Result<ScoredCsv> {
    let artifact = match registry_reference(&args.model)? {
        Some(reference) => super::registry::load(&args.registry, &reference)?.1,
        None => ModelArtifact::load(&args.model)?,
    };
    let model = artifact.load_model()?;
    let started = Instant::now();
    let scored = predict_csv(model.as_ref(), &args.data)?;
    let elapsed = started.elapsed();
    if !scored.frame.ignored_columns().is_empty() {
        eprintln!(
            "ignoring columns the model does not read: {}",
            scored.frame.ignored_columns().join(", ")
        );
    }
    let keep = args.keep.as_deref().map(parse_list).unwrap_or_default();
    match &args.out {
        Some(path) => {
            ensure_parent(path)?;
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            write_predictions_csv(BufWriter::new(file), &scored, &keep)?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_predictions_csv(&mut lock, &scored, &keep)?;
            lock.flush().ok();
        }
    }
    let n = scored.predictions.len();
    eprintln!(
        "scored {} rows in {:.1} ms ({:.0} rows/s, read + score){}",
        thousands(n),
        elapsed.as_secs_f64() * 1e3,
        n as f64 / elapsed.as_secs_f64().max(1e-9),
        args.out
            .as_ref()
            .map(|p| format!("; wrote {}", p.display()))
            .unwrap_or_default()
    );
    Ok(scored)
}

/// `--model` names a registry version when it is not a directory and has the form of a
/// reference (`NAME:VERSION`, `NAME@ALIAS`).
pub(crate) fn registry_reference(model: &std::path::Path) -> anyhow::Result<Option<ml_registry::Reference>> {
    if model.is_dir() {
        return Ok(None);
    }
    match model.to_str() {
        Some(s) if s.contains('@') || s.contains(':') => Ok(Some(s.parse()?)),
        _ => Ok(None),
    }
}
