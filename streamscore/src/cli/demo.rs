//! `streamscore demo`: the whole loop on generated data — train with a sweep, register,
//! promote, serve, stream events with drift half way and delayed labels, detect the drift,
//! alert, retrain off the scoring path, gate, promote, hot-swap, and back to normal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use ml_stream::{InferenceRecord, SourcePosition, SpecRegistry};
use serde_json::json;
use streamscore::datagen::{LoopStreamConfig, loop_stream};
use streamscore::run::{JsonlEventSink, LoopSettings, Orchestrator, http};

use super::{generate, registry, thousands, train};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Working directory for the files the demo writes (kept). Default: a temporary directory,
    /// removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rows of training data to generate.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Events streamed (the second half drifted).
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Seed for the generated data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// How many steps the demo prints.
const STEPS: u32 = 6;

fn step(n: u32, title: &str) {
    println!("\n[{n}/{STEPS}] {title}");
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
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
    let model_dir = dir.join("model");
    let registry_dir = dir.join("registry");
    for d in [&model_dir, &registry_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
    }

    step(
        1,
        &format!(
            "generate {} rows of synthetic credit-default training data",
            thousands(args.rows)
        ),
    );
    generate::run(generate::Args::new(args.rows, args.seed, 0.0, train_csv.clone()))?;

    step(
        2,
        "train a logistic regression with a 4-trial sweep over C (roc_auc), register it",
    );
    let registry_arg = registry::RegistryArg::new(registry_dir.display().to_string());
    train::run_with_outcome(
        train::Args::new(train_csv, "default", model_dir)
            .with_estimator("logistic_regression", &[])
            .with_sweep(4, "roc_auc", &["c=log:0.01..10"])
            .with_register("credit", registry_arg.clone()),
    )?;

    step(3, "promote credit:1 to credit@prod");
    let store: Arc<dyn ml_registry::ModelRegistry> = Arc::from(registry_arg.open()?);
    registry::block_on(store.set_alias("credit", "prod", 1))?;
    println!("  credit@prod → version 1");

    step(
        4,
        "start the endpoint (POST /score, POST /alerts with a key) on 127.0.0.1",
    );
    let state = ml_serve::AppState::new(ml_serve::ServeConfig::default())?;
    let mut settings = LoopSettings {
        window: 5_000,
        min_labelled: 4_000,
        ..LoopSettings::default()
    };
    settings.rules[0].cooldown = 30_000;
    let mut orchestrator = Orchestrator::start(settings, store.clone(), state.clone())?;
    let events_file = dir.join("loop-events.jsonl");
    orchestrator.add_sink(Box::new(JsonlEventSink::create(&events_file)?));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let route = http::AlertRoute {
        key: uuid_like(args.seed),
        trigger: orchestrator.trigger_handle(),
        action: "retrain".into(),
    };
    let app = http::router(state, Some(route));
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("  {url} serving credit:1");
    // A client scoring over HTTP all along, to show the swap drops no request.
    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let client = runtime.spawn(probe(url.clone(), stop.clone(), ok.clone(), failed.clone()));

    let half = args.events / 2;
    step(
        5,
        &format!(
            "stream {} events (events {}.. drifted), labels 1–5 s late; inference log (JSONL) and Parquet",
            thousands(args.events),
            thousands(half)
        ),
    );
    let (events, labels) = loop_stream(&LoopStreamConfig {
        events: args.events,
        drift_from: half,
        drift: 1.0,
        seed: args.seed,
        rate_per_s: 2_000.0,
        label_delay_ms: (1_000, 5_000),
        ..LoopStreamConfig::default()
    })?;
    let specs = SpecRegistry::default();
    let logs = dir.join("inference-logs");
    let export = dir.join("parquet-export");
    let mut sinks = [
        specs.sink(&format!("jsonl:{}", logs.display()))?,
        specs.sink(&format!("parquet:{}", export.display()))?,
    ];
    let stream_started = Instant::now();
    let mut next_label = 0;
    let mut written = 0u64;
    for chunk in events.chunks(500) {
        let now = chunk[0].time_ms;
        let until = labels[next_label..].partition_point(|l| l.time_ms <= now) + next_label;
        orchestrator.labels(&labels[next_label..until]);
        next_label = until;
        let scored = orchestrator.score_batch(chunk)?;
        let records = records(chunk, &scored);
        runtime.block_on(async {
            for sink in sinks.iter_mut() {
                sink.write_batch(&records).await?;
            }
            Ok::<(), ml_stream::Error>(())
        })?;
        written += records.len() as u64;
    }
    let counters = orchestrator.finish();
    runtime.block_on(async {
        for sink in sinks.iter_mut() {
            sink.close().await?;
        }
        Ok::<(), ml_stream::Error>(())
    })?;
    let stream_secs = stream_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    runtime.block_on(client)?;
    let _ = stop_server.send(());
    runtime.block_on(server)??;

    println!("  timeline:");
    let timeline = orchestrator.timeline();
    let mut last_drift: Option<bool> = None;
    for e in timeline {
        if e.kind == "drift_report" {
            // The default alert rule's threshold.
            let drift = e.number("share_drifted_features").unwrap_or(0.0) > 0.25;
            if last_drift != Some(drift) {
                println!(
                    "  event {:>7}  drift report (v{}): drift {} — {:.0} % of features drifted{}",
                    e.at_event,
                    e.fields["version"],
                    if drift { "DETECTED" } else { "no" },
                    e.number("share_drifted_features").unwrap_or(0.0) * 100.0,
                    if drift { "" } else { " (normal)" }
                );
                last_drift = Some(drift);
            }
        } else if let Some(line) = super::run::describe(e) {
            println!("{line}");
        }
    }
    println!(
        "  {} events scored in {:.1} s ({:.0} events/s), {} written to {} and {}; {} refused",
        thousands(counters.scored as usize),
        stream_secs,
        counters.scored as f64 / stream_secs.max(1e-9),
        thousands(written as usize),
        logs.display(),
        export.display(),
        counters.failed
    );
    println!(
        "  labels: {} joined, {} unmatched; {} drift reports, {} alerts ({} held back by the cooldown), {} retrain, {} promotion",
        thousands(counters.labels.matched as usize),
        counters.labels.unmatched_labels + counters.labels.unmatched_predictions,
        counters.drift_reports,
        counters.alerts,
        counters.suppressed,
        counters.retrains,
        counters.promotions
    );
    println!(
        "  HTTP /score during the stream: {} answered, {} failed",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );

    step(6, "write the drift report and the summary");
    let html = dir.join("drift_report.html");
    if let Some(report) = drifted_report(&orchestrator) {
        std::fs::write(&html, report)?;
        println!("  {} (the first window with drift detected)", html.display());
    }
    let summary = dir.join("summary.json");
    let serving = orchestrator.serving().version;
    std::fs::write(
        &summary,
        serde_json::to_string_pretty(&json!({
            "events": args.events,
            "drift_from": half,
            "training_rows": args.rows,
            "counters": counters,
            "serving_version": serving,
            "http": {"ok": ok.load(Ordering::SeqCst), "failed": failed.load(Ordering::SeqCst)},
            "seconds": started.elapsed().as_secs_f64(),
            "timeline": timeline,
        }))?,
    )?;
    println!(
        "  {}; loop events in {}",
        summary.display(),
        events_file.display()
    );
    let success = counters.promotions == 1 && failed.load(Ordering::SeqCst) == 0 && counters.failed == 0;
    println!(
        "\ndemo finished in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        if success {
            "drift detected, retrained, promoted, swapped with no failed request"
        } else {
            "the loop did not complete a promotion (see the timeline)"
        }
    );
    if !success {
        anyhow::bail!("the demo's loop did not end with one promotion and no failed request");
    }
    Ok(())
}

/// The report that fired the alert, rendered as HTML; else the latest one.
fn drifted_report(o: &Orchestrator) -> Option<String> {
    o.alert_report().or(o.last_report()).map(|r| r.to_html())
}

/// Inference records of a scored batch (one correlation id per event, as the labels name it).
fn records(
    chunk: &[streamscore::run::ScoringEvent],
    scored: &streamscore::run::ScoredBatch,
) -> Vec<InferenceRecord> {
    let now = chunk.last().map_or(0, |e| e.time_ms);
    chunk
        .iter()
        .zip(&scored.scores)
        .enumerate()
        .map(|(i, (e, &p))| {
            let mut outputs = serde_json::Map::new();
            outputs.insert("label".into(), json!(if p >= 0.5 { "1" } else { "0" }));
            outputs.insert("probability_1".into(), json!(p));
            InferenceRecord {
                correlation_id: e.correlation_id.clone(),
                request_id: e.correlation_id.clone(),
                timestamp_ms: now,
                event_timestamp_ms: Some(e.time_ms),
                model_name: "credit".into(),
                model_version: scored.version.to_string(),
                position: SourcePosition {
                    partition: 0,
                    offset: e
                        .correlation_id
                        .trim_start_matches("ev-")
                        .parse()
                        .unwrap_or(i as u64),
                },
                inputs: e.features.clone(),
                outputs,
                latency_ms: 0.0,
            }
        })
        .collect()
}

/// A demo key for /alerts (printed nowhere: nothing posts alerts in the demo).
fn uuid_like(seed: u64) -> String {
    format!("demo-{:016x}", ml_core::rng::splitmix64(seed ^ 0xa1e7))
}

async fn probe(url: String, stop: Arc<AtomicBool>, ok: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    let client = reqwest::Client::new();
    let body = r#"{"data": [{"LIMIT_BAL": 50000, "SEX": 2, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 35, "PAY_0": 0, "PAY_2": 0, "PAY_3": 0, "PAY_4": 0, "PAY_5": 0, "PAY_6": 0, "BILL_AMT1": 1000, "BILL_AMT2": 1000, "BILL_AMT3": 1000, "BILL_AMT4": 1000, "BILL_AMT5": 1000, "BILL_AMT6": 1000, "PAY_AMT1": 100, "PAY_AMT2": 100, "PAY_AMT3": 100, "PAY_AMT4": 100, "PAY_AMT5": 100, "PAY_AMT6": 100}]}"#;
    while !stop.load(Ordering::SeqCst) {
        let r = client
            .post(format!("{url}/score"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::SeqCst),
            _ => failed.fetch_add(1, Ordering::SeqCst),
        };
        // Paced so the probe does not take a core from the loop.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
