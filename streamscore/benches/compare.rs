//! The streamscore side of `./bench/compare` (see `bench/README.md`): one measurement per
//! process, so that the driver can alternate it with the Python peer's (A B A B) and read the
//! peak memory of each process with `/usr/bin/time -v`.
//!
//! The inputs are written by the driver: raw little-endian `f64` matrices (row-major,
//! `rows × cols`, the same bytes numpy's `tofile` writes), models as ONNX files converted
//! from the scikit-learn models the peers score. Every command prints one JSON object on
//! stdout, and writes the values the driver compares with the peer's to `--out` when given.
//!
//! ```text
//! compare score  MODEL.onnx native|runtime DATA.f64 COLS BATCHES SECONDS [OUT.f64 SAMPLE]
//! compare train  DATA.f64 LABELS.u8 ROWS COLS THREADS TRAIN_ROWS
//! compare drift  REF.f64 CUR.f64 COLS exact|exact-prepared|profile|profile-prepared TEST [OUT.json]
//! compare adwin  VALUES.f64 [OUT.json]
//! ```
//!
//! Built by the driver with `cargo build --release -p streamscore --features bench-compare
//! --bench compare`; neither `cargo test` nor the workspace clippy run builds it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use ml_core::estimator::tree::{
    Criterion, EnsembleParams, GrowthParams, MaxFeatures, MaxFeaturesRule, TreeEnsemble, TreeTarget,
};
use ml_core::onnx::{Engine, OnnxModel, OnnxOptions};
use ml_core::{Column, DataType, Field, Frame, Model, Predictions, Schema};
use ml_drift::stream::Adwin;
use ml_drift::{ChangeDetector, DriftOptions, PreparedReference, ProfileOptions, ReferenceProfile};
use ndarray::Array2;
use serde_json::json;

fn main() {
    // `cargo bench` passes `--bench`; the driver calls the binary directly.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Err(e) = run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("missing argument {i}; see the usage at the top of benches/compare.rs"))
    };
    let num = |i: usize| -> Result<usize> {
        arg(i)?
            .parse()
            .with_context(|| format!("argument {i} must be a whole number"))
    };
    match args.first().map(String::as_str) {
        None => {
            // `cargo bench` without arguments: nothing to measure, the driver owns the runs.
            println!("compare: run ./bench/compare (see bench/README.md)");
            Ok(())
        }
        Some("score") => score(
            Path::new(arg(1)?),
            arg(2)?,
            Path::new(arg(3)?),
            num(4)?,
            &arg(5)?
                .split(',')
                .map(|b| b.parse().context("BATCHES: comma-separated whole numbers"))
                .collect::<Result<Vec<usize>>>()?,
            arg(6)?.parse().context("SECONDS must be a number")?,
            args.get(7)
                .map(Path::new)
                .zip(args.get(8).and_then(|s| s.parse().ok())),
        ),
        Some("train") => train(
            Path::new(arg(1)?),
            Path::new(arg(2)?),
            num(3)?,
            num(4)?,
            num(5)?,
            num(6)?,
        ),
        Some("drift") => drift(
            Path::new(arg(1)?),
            Path::new(arg(2)?),
            num(3)?,
            arg(4)?,
            arg(5)?,
            args.get(6).map(Path::new),
        ),
        Some("adwin") => adwin(Path::new(arg(1)?), args.get(2).map(Path::new)),
        Some(other) => bail!("unknown command {other:?}: score, train, drift or adwin"),
    }
}

/// Reads a raw little-endian `f64` file as `cols` columns.
fn read_columns(path: &Path, cols: usize) -> Result<Vec<Vec<f64>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if cols == 0 || !bytes.len().is_multiple_of(8 * cols) {
        bail!(
            "{}: {} bytes is not a whole number of {cols}-column f64 rows",
            path.display(),
            bytes.len()
        );
    }
    let rows = bytes.len() / (8 * cols);
    let mut out: Vec<Vec<f64>> = (0..cols).map(|_| Vec::with_capacity(rows)).collect();
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        out[i % cols].push(f64::from_le_bytes(b));
    }
    Ok(out)
}

fn float_frame(schema: Schema, columns: &[Vec<f64>], first: usize, n: usize) -> Result<Frame> {
    let rows = columns.first().map_or(0, Vec::len);
    let cols = columns
        .iter()
        .map(|c| Column::Float((0..n).map(|i| c[(first + i) % rows]).collect()))
        .collect();
    Ok(Frame::from_columns(schema, cols, None)?)
}

fn numeric_schema(cols: usize) -> Result<Schema> {
    Ok(Schema::new(
        (0..cols)
            .map(|c| Field::new(format!("f{c}"), DataType::Float))
            .collect(),
    )?)
}

/// Rows per second of `model.predict` on frames of each batch size, for about `seconds` each.
fn score(
    model_path: &Path,
    engine: &str,
    data: &Path,
    cols: usize,
    batches: &[usize],
    seconds: f64,
    out: Option<(&Path, usize)>,
) -> Result<()> {
    let engine = match engine {
        "native" => Engine::Native,
        "runtime" => Engine::Runtime,
        other => bail!("engine {other:?}: native or runtime"),
    };
    let options = OnnxOptions {
        engine,
        ..OnnxOptions::default()
    };
    let model = OnnxModel::load(model_path, None, &options)?;
    let columns = read_columns(data, cols)?;
    let schema = model.schema().clone();
    if schema.len() != cols {
        bail!(
            "the model reads {} fields, the data has {cols} columns",
            schema.len()
        );
    }
    if let Some((path, sample)) = out {
        let frame = float_frame(schema.clone(), &columns, 0, sample)?;
        let p = positive_probability(&model.predict(&frame)?)?;
        let bytes: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut results = serde_json::Map::new();
    for &batch in batches {
        results.insert(
            batch.to_string(),
            time_batches(&model, &schema, &columns, batch, seconds)?,
        );
    }
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

fn time_batches(
    model: &OnnxModel,
    schema: &Schema,
    columns: &[Vec<f64>],
    batch: usize,
    seconds: f64,
) -> Result<serde_json::Value> {
    // Distinct frames cycling through the data, built before timing (the peers get arrays).
    let n_frames = (columns[0].len() / batch.max(1)).clamp(1, 64);
    let frames = (0..n_frames)
        .map(|k| float_frame(schema.clone(), columns, k * batch, batch))
        .collect::<Result<Vec<_>>>()?;
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 4.0 {
        black_box(model.predict(&frames[0])?);
    }
    let (mut calls, start) = (0usize, Instant::now());
    loop {
        black_box(model.predict(black_box(&frames[calls % n_frames]))?);
        calls += 1;
        // At least 3 calls, so that a slow batch is not one sample.
        if calls >= 3 && start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rows = (calls * batch) as f64;
    Ok(json!({"rows_per_s": rows / elapsed, "seconds_per_row": elapsed / rows, "calls": calls}))
}

fn positive_probability(p: &Predictions) -> Result<Vec<f64>> {
    match p {
        Predictions::Classification { probabilities, .. } if probabilities.ncols() == 2 => {
            Ok(probabilities.column(1).to_vec())
        }
        _ => bail!("expected two-class probabilities"),
    }
}

/// Seconds to fit a forest of 100 trees of depth 8 (scikit-learn's defaults otherwise: Gini,
/// sqrt features, bootstrap) on the first `train_rows` rows; accuracy on the rest.
fn train(
    data: &Path,
    labels: &Path,
    rows: usize,
    cols: usize,
    threads: usize,
    train_rows: usize,
) -> Result<()> {
    let columns = read_columns(data, cols)?;
    let y: Vec<usize> = std::fs::read(labels)
        .with_context(|| format!("reading {}", labels.display()))?
        .into_iter()
        .map(usize::from)
        .collect();
    if columns[0].len() != rows || y.len() != rows || train_rows >= rows {
        bail!("expected {rows} rows and labels with fewer than {rows} training rows");
    }
    let x = Array2::from_shape_fn((rows, cols), |(r, c)| columns[c][r]);
    let params = EnsembleParams {
        growth: GrowthParams {
            criterion: Criterion::Gini,
            max_depth: Some(8),
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Rule(MaxFeaturesRule::Sqrt),
            max_bins: 255,
        },
        n_trees: 100,
        bootstrap: true,
        seed: 0,
        n_jobs: Some(threads),
    };
    let train_x = x.slice(ndarray::s![..train_rows, ..]);
    let start = Instant::now();
    let forest = TreeEnsemble::fit(
        train_x,
        TreeTarget::Classes {
            codes: &y[..train_rows],
            n_classes: 2,
        },
        &params,
        &|| {},
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let p = forest.predict(x.slice(ndarray::s![train_rows.., ..]))?;
    let correct = p
        .rows()
        .into_iter()
        .zip(&y[train_rows..])
        .filter(|(row, label)| usize::from(row[1] > row[0]) == **label)
        .count();
    println!(
        "{}",
        json!({"seconds": seconds, "holdout_accuracy": correct as f64 / (rows - train_rows) as f64})
    );
    Ok(())
}

/// Seconds of the drift comparison of every column with each of `tests` (comma-separated test
/// names, or `default` for the default test per column). `-prepared` modes time only the
/// comparisons, the others also the preparation of the reference (sorting it, or building its
/// profile).
fn drift(
    reference: &Path,
    current: &Path,
    cols: usize,
    mode: &str,
    tests: &str,
    out: Option<&Path>,
) -> Result<()> {
    let schema = numeric_schema(cols)?;
    let reference = read_columns(reference, cols)?;
    let current = read_columns(current, cols)?;
    let reference = float_frame(schema.clone(), &reference, 0, reference[0].len())?;
    let current = float_frame(schema.clone(), &current, 0, current[0].len())?;
    let options: Vec<(&str, DriftOptions)> = tests
        .split(',')
        .map(|test| {
            let mut o = DriftOptions::default();
            if test != "default" {
                o.tests = schema
                    .fields()
                    .iter()
                    .map(|f| (f.name.clone(), test.to_string()))
                    .collect();
            }
            (test, o)
        })
        .collect();
    let prepare = |mode: &str| -> Result<PreparedReference> {
        Ok(match mode {
            "exact" => PreparedReference::exact(&reference, None, DriftOptions::default().bins)?,
            "profile" => PreparedReference::from_profile(&ReferenceProfile::from_frame(
                &reference,
                None,
                &ProfileOptions::default(),
            )?),
            other => bail!("mode {other:?}: exact, exact-prepared, profile or profile-prepared"),
        })
    };
    let (prepared, start) = match mode.strip_suffix("-prepared") {
        Some(base) => {
            let p = prepare(base)?;
            (p, Instant::now())
        }
        None => {
            let start = Instant::now();
            (prepare(mode)?, start)
        }
    };
    let reports = options
        .iter()
        .map(|(test, o)| Ok((*test, ml_drift::compare(&prepared, &current, None, o)?)))
        .collect::<Result<Vec<_>>>()?;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(out) = out {
        let mut scores: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
        for (test, report) in &reports {
            for f in &report.features {
                let entry = scores.entry(f.feature_name.clone()).or_default();
                entry.insert(test.to_string(), json!(f.drift_score));
                if *test == "default" {
                    entry.insert("method".into(), json!(f.stattest_name));
                }
            }
        }
        std::fs::write(out, serde_json::to_string(&scores)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let drifted: Vec<usize> = reports
        .iter()
        .map(|(_, r)| r.dataset.n_drifted_features)
        .collect();
    println!("{}", json!({"seconds": seconds, "drifted": drifted}));
    Ok(())
}

/// Updates per second of ADWIN (river's defaults) over the values, and the change points.
fn adwin(values: &Path, out: Option<&Path>) -> Result<()> {
    let values = read_columns(values, 1)?.remove(0);
    let mut detector = Adwin::default();
    let start = Instant::now();
    let changes = detector.update_many(black_box(&values));
    let seconds = start.elapsed().as_secs_f64();
    if let Some(out) = out {
        let idx: Vec<u64> = changes.iter().map(|c| c.index).collect();
        std::fs::write(out, serde_json::to_string(&idx)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    println!(
        "{}",
        json!({"seconds": seconds, "updates_per_s": values.len() as f64 / seconds, "changes": changes.len()})
    );
    Ok(())
}
