//! `streamscore profile`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ml_drift::ProfileOptions;
use streamscore::drift::{profile_frame, read_csv};

use super::{ensure_parent, parse_list, thousands};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training data: CSV with a header row (Parquet input comes with the stream crate).
    #[arg(long)]
    data: PathBuf,
    /// Output profile (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Schema file (JSON). Default: <data>.schema.json beside the data if present, else inferred.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Columns to leave out, e.g. the target (comma-separated).
    #[arg(long, value_name = "COLS")]
    drop: Option<String>,
    /// Quantile bins per numeric feature.
    #[arg(long, default_value_t = 10)]
    bins: usize,
    /// Rows kept in each numeric feature's exact sample.
    #[arg(long, default_value_t = 10_000)]
    sample_size: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let drop = args.drop.as_deref().map(parse_list).unwrap_or_default();
    let frame = read_csv(&args.data, args.schema.as_deref(), &drop)?;
    let options = ProfileOptions {
        bins: args.bins,
        sample_size: args.sample_size,
        ..ProfileOptions::default()
    };
    let profile = profile_frame(&frame, None, &options)?;
    ensure_parent(&args.out)?;
    let json = profile.to_json()?;
    std::fs::write(&args.out, json).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "profiled {} rows × {} features in {:.2} s → {}",
        thousands(frame.n_rows()),
        profile.features.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
