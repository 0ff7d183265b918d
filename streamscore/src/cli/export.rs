//! `streamscore export`: inference logs → a time-partitioned Parquet data set (local or Blob
//! Storage); with a model reference instead, a registry version as an MLflow model directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use ml_stream::datacollection::parse_time_bound;
use ml_stream::export::{in_range, join, read_local, write_partitioned};

use super::registry::ExportArgs as ModelExportArgs;
#[cfg(feature = "azure")]
use super::registry::block_on;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model export: NAME:VERSION, NAME@ALIAS or NAME@latest (with --out). Leave out for a log
    /// export (--from/--to).
    reference: Option<String>,
    /// Model export: output directory (an MLflow model directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Model export: the registry (default as for `models`).
    #[arg(long, value_name = "PATH|blob://..")]
    registry: Option<String>,
    /// Log export: an inference-log directory (the `jsonl:` sink's root) or
    /// blob://CONTAINER[/PREFIX] (default prefix modelDataCollector).
    #[arg(long, value_name = "DIR|blob://..")]
    from: Option<String>,
    /// Log export: the Parquet data set, a directory or blob://CONTAINER/PREFIX; files go to
    /// date=YYYY-MM-DD/hour=HH/part-<id>.parquet under it.
    #[arg(long, value_name = "DIR|blob://..")]
    to: Option<String>,
    /// Log export: rows scored at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Log export: rows scored before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

/// The registry's own `export` arguments, parsed from the values given here.
#[derive(Debug, Parser)]
struct ModelExport {
    #[command(flatten)]
    args: ModelExportArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(from) = args.from.clone() else {
        let (Some(reference), Some(out)) = (&args.reference, &args.out) else {
            bail!(
                "give either a model reference and --out DIR (a model export), or --from and --to (an inference-log export)"
            );
        };
        let mut argv = vec![
            "export".to_string(),
            reference.clone(),
            "--out".into(),
            out.display().to_string(),
        ];
        if let Some(r) = &args.registry {
            argv.extend(["--registry".to_string(), r.clone()]);
        }
        let parsed =
            ModelExport::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))?;
        return super::registry::export(parsed.args);
    };
    if args.reference.is_some() || args.out.is_some() || args.registry.is_some() {
        bail!("--from/--to export inference logs: leave out the model reference, --out and --registry");
    }
    let to = args
        .to
        .clone()
        .context("--to is required with --from (a directory or blob://CONTAINER/PREFIX)")?;
    let bound = |name: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        Ok(v.as_deref().map(|t| parse_time_bound(name, t)).transpose()?)
    };
    let (since, until) = (bound("since", &args.since)?, bound("until", &args.until)?);
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        bail!("--since must be before --until");
    }
    let started = Instant::now();

    let (inputs, outputs, sources) = if from.starts_with("blob://") {
        read_blob(&from, since, until)?
    } else {
        let dir = Path::new(&from);
        if !dir.is_dir() {
            bail!("--from {from}: not a directory (give the inference-log root, or blob://CONTAINER/PREFIX)");
        }
        let (i, o, files) = read_local(dir)?;
        (in_range(i, since, until)?, in_range(o, since, until)?, files)
    };
    eprintln!(
        "export: read {} input and {} output lines from {sources} {} in {:.1} s",
        inputs.len(),
        outputs.len(),
        if from.starts_with("blob://") {
            "blobs"
        } else {
            "files"
        },
        started.elapsed().as_secs_f64()
    );
    let rows = join(&inputs, &outputs)?;
    if rows.is_empty() {
        eprintln!("export: no rows in the time range; nothing written");
        return Ok(());
    }
    let instance = uuid_like();
    let progress = |rel: &str, n: usize| eprintln!("export: wrote {rel} ({n} rows)");
    let written = if to.starts_with("blob://") {
        write_blob(&to, &rows, &instance, progress)?
    } else {
        write_partitioned(&rows, Path::new(&to), &instance, progress)?
    };
    eprintln!(
        "export: {} rows in {} partitions to {to} in {:.1} s",
        rows.len(),
        written.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A short unique id for part-file names, so exports never overwrite each other.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", nanos, std::process::id())
}

type Lines = Vec<ml_stream::datacollection::CollectedLine>;

#[cfg(feature = "azure")]
fn read_blob(from: &str, since: Option<i64>, until: Option<i64>) -> anyhow::Result<(Lines, Lines, usize)> {
    use ml_stream::azure_blob::BlobStore;
    use ml_stream::datacollection::{MODEL_INPUTS, MODEL_OUTPUTS};
    let store = BlobStore::open(from)?;
    block_on(async {
        let i = store.read_lines(MODEL_INPUTS, since, until).await?;
        let o = store.read_lines(MODEL_OUTPUTS, since, until).await?;
        let mut blobs: Vec<&str> = i.iter().chain(&o).map(|(b, _)| b.as_str()).collect();
        blobs.dedup();
        let n = blobs.len();
        Ok((
            i.into_iter().map(|(_, l)| l).collect(),
            o.into_iter().map(|(_, l)| l).collect(),
            n,
        ))
    })
}

#[cfg(feature = "azure")]
fn write_blob(
    to: &str,
    rows: &[ml_stream::export::ExportRow],
    instance: &str,
    mut progress: impl FnMut(&str, usize),
) -> anyhow::Result<Vec<(String, usize)>> {
    use ml_stream::azure_blob::{BlobStore, default_retry};
    let spec = ml_stream::Spec::parse(to)?;
    if spec.path.trim_matches('/').is_empty() {
        bail!("--to {to}: give a prefix for the data set, blob://CONTAINER/PREFIX");
    }
    let store = BlobStore::from_spec(&spec)?;
    let staging = tempfile::tempdir().context("creating a staging directory")?;
    let written = write_partitioned(rows, staging.path(), instance, |_, _| {})?;
    block_on(async {
        store.create_container_if_missing().await?;
        for (rel, n) in &written {
            let bytes = std::fs::read(staging.path().join(rel)).with_context(|| format!("reading {rel}"))?;
            store.upload(rel, bytes, &default_retry()).await?;
            progress(rel, *n);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(written)
}

#[cfg(not(feature = "azure"))]
fn read_blob(from: &str, _: Option<i64>, _: Option<i64>) -> anyhow::Result<(Lines, Lines, usize)> {
    bail!("--from {from}: Blob Storage needs streamscore built with `--features azure`")
}

#[cfg(not(feature = "azure"))]
fn write_blob(
    to: &str,
    _: &[ml_stream::export::ExportRow],
    _: &str,
    _: impl FnMut(&str, usize),
) -> anyhow::Result<Vec<(String, usize)>> {
    bail!("--to {to}: Blob Storage needs streamscore built with `--features azure`")
}
