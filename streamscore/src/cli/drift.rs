//! `streamscore drift`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ml_drift::{Correction, DriftOptions, DriftReport};
use streamscore::drift::{artifact_profile, drift, load_reference_with_model, read_current};

use super::{ensure_parent, parse_key_value, thousands};

/// Exit status when dataset drift is found and `--fail-on-drift` is set.
pub const EXIT_DRIFT: i32 = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reference: a profile.json file, a model artifact directory (its profile.json
    /// attachment), or a registry reference such as credit@prod or credit:3 (read from
    /// --registry).
    #[arg(long)]
    reference: String,
    #[command(flatten)]
    registry: super::registry::RegistryArg,
    /// Current data: a CSV file, a Parquet file or directory (a `--sink parquet:DIR` export), or
    /// an inference-log directory (its model_inputs collection).
    #[arg(long)]
    current: PathBuf,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the report as one self-contained HTML file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Exit with status 3 when dataset drift is detected.
    #[arg(long)]
    fail_on_drift: bool,
    /// Share of drifted features that makes dataset drift.
    #[arg(long, default_value_t = 0.5)]
    drift_share: f64,
    /// Multiple-testing correction of p-values: none, bonferroni, bh.
    #[arg(long, default_value = "none", value_parser = ["none", "bonferroni", "bh"])]
    correction: String,
    /// Test for a feature as FEATURE=TEST (ks, wasserstein, psi, jensenshannon, hellinger,
    /// chisquare, z); repeatable.
    #[arg(long = "test", value_name = "FEATURE=TEST", value_parser = parse_key_value)]
    tests: Vec<(String, String)>,
    /// Threshold for a feature as FEATURE=VALUE; repeatable.
    #[arg(long = "threshold", value_name = "FEATURE=VALUE", value_parser = parse_key_value)]
    thresholds: Vec<(String, String)>,
    /// Send the report's metrics and `DriftDetected` to this OpenTelemetry collector over
    /// OTLP/HTTP, e.g. http://localhost:4318; instead of OTEL_EXPORTER_OTLP_ENDPOINT. Application
    /// Insights gets them when APPLICATIONINSIGHTS_CONNECTION_STRING is set (feature azure).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

// Builders for running the command from Rust; the loop demo no longer calls them.
#[allow(dead_code)]
impl Args {
    /// Arguments for `demo`.
    pub fn new(reference: String, current: PathBuf, html: PathBuf) -> Self {
        Args {
            reference,
            registry: super::registry::RegistryArg::new(ml_registry::local::DEFAULT_PATH),
            current,
            json: None,
            html: Some(html),
            fail_on_drift: false,
            drift_share: 0.5,
            correction: "none".into(),
            tests: Vec::new(),
            thresholds: Vec::new(),
            otlp_endpoint: None,
        }
    }
}

// Builders for running the command from Rust; the loop demo no longer calls them.
#[allow(dead_code)]
impl Args {
    /// Reads `--reference` from `registry` (for `demo`).
    pub fn with_registry(mut self, registry: super::registry::RegistryArg) -> Self {
        self.registry = registry;
        self
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let fail = args.fail_on_drift;
    let (reference, otlp_endpoint) = (args.reference.clone(), args.otlp_endpoint.clone());
    let report = run_with_report(args)?;
    send_report(&report, &reference, otlp_endpoint)?;
    if fail && report.dataset.dataset_drift {
        eprintln!("dataset drift detected: exiting with status {EXIT_DRIFT} (--fail-on-drift)");
        std::process::exit(EXIT_DRIFT);
    }
    Ok(())
}

/// Sends the report's metrics (and `DriftDetected` when the dataset drifted) to Application
/// Insights and OTLP when the environment (or `otlp_endpoint`) configures them; each metric
/// carries the `reference` it was compared with. The send is bounded in time.
fn send_report(report: &DriftReport, reference: &str, otlp_endpoint: Option<String>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let monitoring = super::monitoring::Monitoring::start_with(None, None, otlp_endpoint).await?;
        streamscore::monitor::track_drift_everywhere(report, &[("reference", reference.to_string())]);
        monitoring.stop().await;
        Ok::<(), anyhow::Error>(())
    })
}

/// Computes, prints and writes the report; returns it for `demo`.
pub fn run_with_report(args: Args) -> anyhow::Result<DriftReport> {
    let started = Instant::now();
    // A registry reference gives both the profile and the model (for prediction drift).
    let (reference, model) = match super::predict::registry_reference(std::path::Path::new(&args.reference))?
    {
        Some(r) => {
            let (_, artifact) = super::registry::load(&args.registry, &r)?;
            (
                artifact_profile(&artifact, &args.reference)?,
                Some(artifact.load_model()?),
            )
        }
        None => load_reference_with_model(&args.reference)?,
    };
    let current = read_current(&args.current, &reference)?;
    let mut thresholds = BTreeMap::new();
    for (k, v) in &args.thresholds {
        let t: f64 = v
            .parse()
            .map_err(|_| anyhow::anyhow!("threshold for `{k}` must be a number, got `{v}`"))?;
        thresholds.insert(k.clone(), t);
    }
    let options = DriftOptions {
        tests: args.tests.iter().cloned().collect(),
        thresholds,
        correction: match args.correction.as_str() {
            "bonferroni" => Correction::Bonferroni,
            "bh" => Correction::BenjaminiHochberg,
            _ => Correction::None,
        },
        drift_share: args.drift_share,
        ..DriftOptions::default()
    };
    let report = drift(&reference, &current, model.as_deref(), &options)?;
    let d = &report.dataset;
    println!(
        "drift: {} of {} features drifted (share {:.2}) — dataset drift: {}  [{} reference rows, {} current rows, {:.2} s]",
        d.n_drifted_features,
        d.n_features,
        d.share_drifted_features,
        if d.dataset_drift { "YES" } else { "no" },
        thousands(report.n_reference_rows as usize),
        thousands(report.n_current_rows as usize),
        started.elapsed().as_secs_f64()
    );
    for f in report
        .sorted_by_severity()
        .iter()
        .filter(|f| f.drift_detected)
        .take(10)
    {
        println!(
            "  {:<12} {:<4} {:<13} score {:.4} (threshold {})",
            f.feature_name, f.feature_type, f.stattest_name, f.drift_score, f.threshold
        );
    }
    if let Some(path) = &args.json {
        ensure_parent(path)?;
        std::fs::write(path, report.to_json()?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("  JSON report: {}", path.display());
    }
    if let Some(path) = &args.html {
        ensure_parent(path)?;
        std::fs::write(path, report.to_html()).with_context(|| format!("cannot write {}", path.display()))?;
        println!("  HTML report: {}", path.display());
    }
    Ok(report)
}
