//! One retrain-gate-promote cycle: train on recent labelled rows, compare with the serving
//! model on a holdout of the most recent rows, register with lineage, promote if better.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ml_core::{DataType, Estimator, Field, Frame, Model, ReadOptions, Schema};
use ml_drift::ReferenceProfile;
use ml_registry::{ModelRegistry, ModelVersion, RegisterOptions};

/// What a cycle needs besides the data.
#[derive(Clone, Debug)]
pub struct RetrainSpec {
    /// Registered model name.
    pub model_name: String,
    /// The alias served and moved on promotion.
    pub alias: String,
    /// Target column name used in the training file.
    pub target: String,
    /// Estimator name.
    pub estimator: String,
    /// Estimator parameters.
    pub params: Vec<(String, String)>,
    /// Gate margin: the new model must beat the serving one by this much.
    pub margin: f64,
    /// Share of the rows (the most recent) held out for the gate.
    pub holdout_fraction: f64,
    /// Training data added to the recent rows (CSV with its schema beside it), if any.
    pub base_data: Option<std::path::PathBuf>,
    /// A random-search sweep (`[model] sweep`): each retrain keeps the best of its trials
    /// (default 10 trials ranked by the gate's metric, `roc_auc` or `rmse`).
    pub sweep: Option<crate::sweep::SweepFile>,
}

/// One labelled row: the features as scored and the label.
#[derive(Clone, Debug)]
pub struct LabelledRow {
    /// Features.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Label.
    pub label: f64,
}

/// What a cycle did.
#[derive(Clone, Debug)]
pub struct RetrainOutcome {
    /// The registered version (always registered, promoted or not).
    pub version: ModelVersion,
    /// Whether the alias was moved to it.
    pub promoted: bool,
    /// The gate metric's name (`roc_auc` or `rmse`).
    pub metric: String,
    /// The new model's value on the holdout.
    pub candidate: f64,
    /// The serving model's value on the holdout.
    pub serving: f64,
    /// Rows trained on and held out.
    pub n_train: usize,
    /// Rows held out.
    pub n_holdout: usize,
    /// The decision in words.
    pub decision: String,
    /// The new model (to swap in when promoted).
    pub model: Arc<dyn Model>,
    /// Its training profile (the drift reference after a swap).
    pub profile: ReferenceProfile,
}

/// Runs one cycle. `serving` is the version serving now (the parent in the lineage), `reason`
/// the alert that asked for it, `window` a description of the data window.
pub fn retrain_cycle(
    spec: &RetrainSpec,
    registry: &dyn ModelRegistry,
    serving: &ModelVersion,
    serving_model: &dyn Model,
    rows: &[LabelledRow],
    reason: &str,
    window: &str,
) -> anyhow::Result<RetrainOutcome> {
    if rows.len() < 20 {
        anyhow::bail!("retrain: only {} labelled rows; need at least 20", rows.len());
    }
    let n_holdout = ((rows.len() as f64) * spec.holdout_fraction).round() as usize;
    let n_holdout = n_holdout.clamp(10, rows.len() - 10);
    let (train_rows, holdout) = rows.split_at(rows.len() - n_holdout);
    let regression = serving_model.output().labels().is_empty();
    let features = serving_model.schema().clone();
    let target_type = if rows.iter().all(|r| r.label.fract() == 0.0) {
        DataType::Int
    } else {
        DataType::Float
    };
    let mut fields: Vec<Field> = features.fields().to_vec();
    fields.push(Field::new(spec.target.clone(), target_type));
    let schema = Schema::new(fields)?;

    let dir = tempfile::Builder::new()
        .prefix("streamscore-retrain-")
        .tempdir()?;
    let csv = dir.path().join("recent.csv");
    write_csv(&csv, &schema, &spec.target, train_rows, spec.base_data.as_deref())?;
    std::fs::write(crate::train::sidecar_schema_path(&csv), schema.to_json())?;
    let params: Vec<(String, String)> = spec.params.clone();
    let request = crate::train::TrainRequest::new(
        &csv,
        &spec.target,
        Estimator::from_name(&spec.estimator, &params)?,
    );
    let outcome = match &spec.sweep {
        None => crate::train::train(&request)?,
        Some(file) => {
            let mut request = request.clone();
            request.cv = file.cv;
            let sweep = crate::sweep::SweepSpec {
                trials: file.trials.unwrap_or(10),
                metric: file
                    .metric
                    .clone()
                    .unwrap_or_else(|| if regression { "rmse" } else { "roc_auc" }.into()),
                space: file.space.clone(),
                seed: file.seed.unwrap_or(0),
            };
            crate::sweep::sweep(&request, &sweep, &|| {})?
        }
    };
    let artifact = outcome.artifact(&request)?;
    let model = artifact.load_model()?;
    let profile = crate::drift::artifact_profile(&artifact, "retrained model")?;

    // The gate, on the most recent rows, which neither model saw.
    let holdout_frame = Frame::from_json_records(
        &holdout
            .iter()
            .map(|r| serde_json::Value::Object(r.features.clone()))
            .collect::<Vec<_>>(),
        features.clone(),
        &ReadOptions::named("holdout"),
    )?;
    let y: Vec<f64> = holdout.iter().map(|r| r.label).collect();
    let (metric, candidate, current, better) = if regression {
        let c = rmse(model.as_ref(), &holdout_frame, &y)?;
        let s = rmse(serving_model, &holdout_frame, &y)?;
        ("rmse", c, s, c <= s - spec.margin)
    } else {
        let c = auc(model.as_ref(), &holdout_frame, &y)?;
        let s = auc(serving_model, &holdout_frame, &y)?;
        ("roc_auc", c, s, c >= s + spec.margin)
    };
    let decision = if better {
        format!(
            "promoted: {metric} {candidate:.4} beats the serving {current:.4} by at least {}",
            spec.margin
        )
    } else {
        format!(
            "not promoted: {metric} {candidate:.4} does not beat the serving {current:.4} by {}",
            spec.margin
        )
    };
    let mut tags = BTreeMap::new();
    tags.insert("reason".to_string(), reason.to_string());
    tags.insert("gate".to_string(), decision.clone());
    tags.insert(format!("holdout_{metric}"), format!("{candidate:.6}"));
    tags.insert(format!("serving_holdout_{metric}"), format!("{current:.6}"));
    let options = RegisterOptions {
        tags,
        description: Some(format!("retrained: {reason}")),
        parent_version: Some(serving.version),
        training_data: Some(window.to_string()),
        copied_from: Vec::new(),
    };
    let version = futures::executor::block_on(registry.register(&spec.model_name, &artifact, &options))?;
    if better {
        futures::executor::block_on(registry.set_alias(&spec.model_name, &spec.alias, version.version))?;
    }
    Ok(RetrainOutcome {
        version,
        promoted: better,
        metric: metric.to_string(),
        candidate,
        serving: current,
        n_train: train_rows.len(),
        n_holdout,
        decision,
        model,
        profile,
    })
}

fn auc(model: &dyn Model, frame: &Frame, y: &[f64]) -> anyhow::Result<f64> {
    let p = model.predict(frame)?;
    let scores = p
        .positive_probabilities()
        .ok_or_else(|| anyhow::anyhow!("the gate needs a binary classifier's probabilities"))?;
    let truth: Vec<bool> = y.iter().map(|&v| v >= 0.5).collect();
    Ok(ml_core::metrics::roc_auc(&truth, &scores.to_vec())?)
}

fn rmse(model: &dyn Model, frame: &Frame, y: &[f64]) -> anyhow::Result<f64> {
    let p = model.predict(frame)?;
    let values = p
        .values()
        .ok_or_else(|| anyhow::anyhow!("the gate needs a regressor's values"))?;
    Ok(ml_core::metrics::root_mean_squared_error(y, &values.to_vec())?)
}

/// Writes the rows (and the base data's rows, first) as CSV in `schema`'s column order.
fn write_csv(
    path: &Path,
    schema: &Schema,
    target: &str,
    rows: &[LabelledRow],
    base: Option<&Path>,
) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let names: Vec<&str> = schema.names().collect();
    writeln!(w, "{}", names.join(","))?;
    if let Some(base) = base {
        let mut reader = csv::Reader::from_path(base)?;
        let header = reader.headers()?.clone();
        let index: Vec<usize> = names
            .iter()
            .map(|n| {
                header
                    .iter()
                    .position(|h| h == *n)
                    .ok_or_else(|| anyhow::anyhow!("{}: no column `{n}`", base.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        for record in reader.records() {
            let record = record?;
            let line: Vec<&str> = index.iter().map(|&i| record.get(i).unwrap_or("")).collect();
            writeln!(w, "{}", line.join(","))?;
        }
    }
    let mut line = String::new();
    for row in rows {
        line.clear();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            if *name == target {
                line.push_str(&format_number(row.label));
            } else {
                match row.features.get(*name) {
                    Some(serde_json::Value::String(s)) => line.push_str(s),
                    Some(serde_json::Value::Null) | None => {}
                    Some(v) => line.push_str(&v.to_string()),
                }
            }
        }
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    Ok(())
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}
