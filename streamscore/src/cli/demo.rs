//! `streamscore demo`: the local flow end to end on generated data.

use std::path::PathBuf;

use ml_core::{CsvTable, Model, ModelArtifact, ReadOptions};
use streamscore::train::evaluate;

use super::{drift, generate, predict, registry, thousands, train};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Working directory for the files the demo writes (kept). Default: a temporary directory,
    /// removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rows of training data to generate.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Seed for the generated data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// How many steps the demo prints.
const STEPS: u32 = 7;

fn step(n: u32, title: &str) {
    println!("\n[{n}/{STEPS}] {title}");
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("streamscore-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let note = if args.dir.is_some() {
        ""
    } else {
        " (temporary: removed at the end; pass --dir to keep the files)"
    };
    println!("streamscore demo — working in {}{note}", dir.display());
    let train_csv = dir.join("credit.csv");
    let fresh_csv = dir.join("fresh.csv");
    let drifted_csv = dir.join("drifted.csv");
    let model_dir = dir.join("model");
    let predictions_csv = dir.join("predictions.csv");
    if model_dir.exists() {
        std::fs::remove_dir_all(&model_dir)?;
    }

    step(1, "generate synthetic credit-default data");
    generate::run(generate::Args::new(args.rows, args.seed, 0.0, train_csv.clone()))?;
    let fresh_rows = (args.rows / 4).max(1_000);
    generate::run(generate::Args::new(
        fresh_rows,
        args.seed + 1,
        0.0,
        fresh_csv.clone(),
    ))?;
    generate::run(generate::Args::new(
        fresh_rows,
        args.seed + 2,
        0.6,
        drifted_csv.clone(),
    ))?;

    step(
        2,
        "train a random forest (100 trees, depth 8; 80/20 validation split) and register it",
    );
    let registry_dir = dir.join("registry");
    let registry_arg = registry::RegistryArg::new(registry_dir.display().to_string());
    let outcome = train::run_with_outcome(
        train::Args::new(train_csv, "default", model_dir.clone())
            .with_estimator(
                "random_forest_classifier",
                &[("n_estimators", "100"), ("max_depth", "8")],
            )
            .with_register("credit", registry_arg.clone()),
    )?;

    step(3, "evaluate on fresh data and on drifted data");
    for (name, path) in [("fresh", &fresh_csv), ("drifted (0.6)", &drifted_csv)] {
        let table = CsvTable::read_path(path)?;
        let schema = streamscore::datagen::credit_schema()?;
        let frame = table.to_frame(schema, &ReadOptions::named(path.display().to_string()))?;
        let m = evaluate(&outcome.model, &frame, "default")?;
        println!(
            "  {name:<14} {} rows: roc_auc {:.4}  accuracy {:.4}  log_loss {:.4}",
            thousands(m.n_rows),
            m.roc_auc,
            m.accuracy,
            m.log_loss
        );
    }

    step(
        4,
        "load the saved artifact, verify its checksums, register and promote it",
    );
    let artifact = ModelArtifact::load(&model_dir)?;
    let meta = artifact.mlmodel();
    println!(
        "  {}: model_uuid {} run_id {} created {} UTC",
        model_dir.display(),
        meta.model_uuid,
        meta.run_id,
        meta.utc_time_created
    );
    println!(
        "  checksums verified for every file; signature has {} input columns",
        outcome.model.schema().len()
    );

    let registry = registry_arg.open()?;
    let latest = registry::block_on(registry.resolve(&"credit@latest".parse()?))?;
    let promoted = registry::block_on(ml_registry::promote(
        registry.as_ref(),
        &latest.reference(),
        registry.as_ref(),
        Some("prod"),
    ))?;
    println!(
        "  registered credit:{} in {} and promoted it to credit@prod (sha256 {})",
        promoted.target.version,
        registry_dir.display(),
        &promoted.target.sha256[..12]
    );

    step(5, "predict on fresh data with credit@prod from the registry");
    let scored = predict::run_with_output(
        predict::Args::new(PathBuf::from("credit@prod"), fresh_csv, predictions_csv.clone())
            .with_registry(registry_arg.clone()),
    )?;
    let text = std::fs::read_to_string(&predictions_csv)?;
    for line in text.lines().take(4) {
        println!("  {line}");
    }
    println!(
        "  ... {} rows in {}",
        thousands(scored.predictions.len()),
        predictions_csv.display()
    );

    step(
        6,
        "stream 100,000 generated events from a file into the JSONL inference log and Parquet",
    );
    stream_step(&dir, &model_dir, args.seed + 3)?;

    step(
        7,
        "detect drift: drifted data against the training profile of credit@prod",
    );
    let html = dir.join("drift_report.html");
    drift::run_with_report(
        drift::Args::new("credit@prod".into(), drifted_csv, html).with_registry(registry_arg),
    )?;
    println!("\ndemo finished: every step succeeded");
    Ok(())
}

/// Scores a file of generated events with the saved model through the streaming pipeline.
fn stream_step(dir: &std::path::Path, model_dir: &std::path::Path, seed: u64) -> anyhow::Result<()> {
    use std::time::Instant;

    use ml_stream::{PipelineConfig, SpecRegistry};
    use streamscore::stream::{StreamRequest, build};

    let events = dir.join("events.jsonl");
    let logs = dir.join("inference-logs");
    let dead = dir.join("dead-letters");
    let export = dir.join("parquet-export");
    generate::run(generate::Args::new(100_000, seed, 0.0, events.clone()))?;
    let request = StreamRequest {
        model: model_dir.to_path_buf(),
        source: format!("file:{}", events.display()),
        sinks: vec![
            format!("jsonl:{}", logs.display()),
            format!("parquet:{}", export.display()),
        ],
        dead_letter: Some(format!("jsonl:{}", dead.display())),
        config: PipelineConfig::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let report = runtime.block_on(async {
        let (pipeline, source) = build(&request, &SpecRegistry::default())?;
        pipeline.run(source).await
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  {} events scored into {} and {} ({} dead letters, {} commits) in {:.2} s: {:.0} events/s",
        thousands(report.records_out as usize),
        logs.display(),
        export.display(),
        report.dead_letters,
        report.commits,
        secs,
        report.records_out as f64 / secs.max(1e-9)
    );
    println!(
        "  layout: {{endpoint}}/{{deployment}}/model_inputs|model_outputs/yyyy/MM/dd/HH/*.jsonl (Azure ML data collection)"
    );
    let exported = ml_stream::parquet::parquet_files(&export)?;
    println!(
        "  Parquet: {} part files (features, label, probability_*, _partition/_offset per row)",
        exported.len()
    );
    Ok(())
}
