//! `streamscore generate`

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use ml_core::datasets::{CREDIT_TARGET_COLUMN, CreditDefaultConfig, credit_default};
use streamscore::datagen::credit_schema;
use streamscore::train::sidecar_schema_path;

use super::{ensure_parent, thousands};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of rows.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Random seed: the same seed gives the same file, byte for byte.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Drift strength in 0..1: shifts several feature distributions and the target relation.
    #[arg(long, default_value_t = 0.0)]
    drift: f64,
    /// Output file: CSV, or JSON lines (one event per row) when it ends in .jsonl; its schema is
    /// written beside it as <name>.schema.json.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let data = generated(&args)?;
    let positives = data
        .column(CREDIT_TARGET_COLUMN)
        .map_or(0, |c| c.iter().filter(|&&v| v == 1).count());
    eprintln!(
        "wrote {} rows to {} (default rate {:.1}%, drift {})",
        thousands(data.n_rows()),
        args.out.display(),
        100.0 * positives as f64 / data.n_rows().max(1) as f64,
        args.drift
    );
    eprintln!("wrote schema to {}", sidecar_schema_path(&args.out).display());
    Ok(())
}

/// Generates and writes the CSV and its schema; shared with `demo`.
pub fn generated(args: &Args) -> anyhow::Result<ml_core::datasets::CreditDefaultData> {
    let config = CreditDefaultConfig {
        rows: args.rows,
        seed: args.seed,
        drift: args.drift,
    };
    let data = credit_default(&config)?;
    ensure_parent(&args.out)?;
    let file = File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let jsonl = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if jsonl {
        streamscore::datagen::write_jsonl(&data, file)
    } else {
        data.write_csv(BufWriter::new(file))
    }
    .with_context(|| format!("cannot write {}", args.out.display()))?;
    let schema_path = sidecar_schema_path(&args.out);
    std::fs::write(&schema_path, credit_schema()?.to_json())
        .with_context(|| format!("cannot write {}", schema_path.display()))?;
    Ok(data)
}

impl Args {
    /// Arguments for a generated file (used by `demo`).
    pub fn new(rows: usize, seed: u64, drift: f64, out: PathBuf) -> Self {
        Args {
            rows,
            seed,
            drift,
            out,
        }
    }
}
