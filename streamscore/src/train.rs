//! Training from a CSV file: schema resolution, a reproducible validation split, fitting,
//! evaluation and the artifact — what `streamscore train` does, callable from Rust.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ml_core::estimator::ClassTarget;
use ml_core::estimator::regression_target;
use ml_core::metrics::{self, ClassificationMetrics, ClassificationReport, RegressionMetrics};
use ml_core::preprocess::Preprocessing;
use ml_core::split::{
    SplitStrategy, fold_complement, k_fold, stratified_k_fold, stratified_split, train_validation_split,
};
use ml_core::{
    CsvTable, Error, Estimator, Frame, InferOptions, Model, ModelArtifact, NativeModel, ReadOptions, Result,
    Schema, TypeHint,
};
use serde::Serialize;

/// Where a training run's schema came from.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaSource {
    /// Given explicitly.
    File(PathBuf),
    /// The `<data>.schema.json` file found next to the data.
    Sidecar(PathBuf),
    /// Inferred from the data (with any type overrides).
    Inferred,
}

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    /// The CSV file (with header).
    pub data: PathBuf,
    /// The column to predict.
    pub target: String,
    /// The estimator and its parameters.
    pub estimator: Estimator,
    /// An explicit schema file (JSON form of [`Schema`]); when `None`, a `<data>.schema.json`
    /// beside the data is used if present, else the schema is inferred.
    pub schema: Option<PathBuf>,
    /// Type overrides for inference (`column → type`); refused together with a schema file.
    pub types: BTreeMap<String, TypeHint>,
    /// Columns to leave out of the features.
    pub drop: Vec<String>,
    /// Share of rows held out for validation. Default 0.2.
    pub validation_fraction: f64,
    /// Seed of the hash-based split ([`ml_core::split`]). Default 42.
    pub split_seed: u64,
    /// How rows are split: [`SplitStrategy::Auto`] (the default) stratifies classifiers'
    /// splits by class and uses the per-row hash rule for regressors; [`SplitStrategy::Hash`]
    /// keeps the hash rule for every estimator (stable under appended rows, reproducible by
    /// the Python reference scripts).
    pub split: SplitStrategy,
    /// Imputation and categorical encoding, learned from the training rows and stored with
    /// the model. Default: mean imputation, one-hot.
    pub preprocessing: Preprocessing,
    /// `Some(k)`: also run k-fold cross-validation on the training rows (stratified for
    /// classifiers, with the split seed) and record each fold's metrics with their mean and
    /// standard deviation. A sweep then scores each trial by its mean CV metric. Default `None`.
    pub cv: Option<usize>,
}

impl TrainRequest {
    /// A request with the defaults: 20 % validation, split seed 42, schema found or inferred.
    pub fn new(data: impl Into<PathBuf>, target: impl Into<String>, estimator: Estimator) -> Self {
        TrainRequest {
            data: data.into(),
            target: target.into(),
            estimator,
            schema: None,
            types: BTreeMap::new(),
            drop: Vec::new(),
            validation_fraction: 0.2,
            split_seed: 42,
            split: SplitStrategy::Auto,
            preprocessing: Preprocessing::default(),
            cv: None,
        }
    }

    /// Whether this request's split (and CV folds) are stratified by class.
    pub fn stratified(&self) -> bool {
        self.split.is_stratified(!self.estimator.is_regressor())
    }

    /// Progress steps of a plain training run: the estimator's steps for the final fit and for
    /// each CV fold.
    pub fn n_steps(&self) -> usize {
        self.estimator.n_steps() * (1 + self.cv.unwrap_or(0))
    }
}

/// Validation metrics of a classifier or a regressor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ValidationMetrics {
    /// A classifier's metrics.
    Classification(ClassificationMetrics),
    /// A regressor's metrics.
    Regression(RegressionMetrics),
}

impl ValidationMetrics {
    /// The classification metrics, for a classifier.
    pub fn classification(&self) -> Option<&ClassificationMetrics> {
        match self {
            ValidationMetrics::Classification(m) => Some(m),
            ValidationMetrics::Regression(_) => None,
        }
    }

    /// The regression metrics, for a regressor.
    pub fn regression(&self) -> Option<&RegressionMetrics> {
        match self {
            ValidationMetrics::Regression(m) => Some(m),
            ValidationMetrics::Classification(_) => None,
        }
    }

    /// A metric by its name in `metrics.json` (`roc_auc`, `f1`, `rmse`, ...), when present.
    pub fn get(&self, name: &str) -> Option<f64> {
        let value = serde_json::to_value(self).ok()?;
        value.get(name)?.as_f64()
    }
}

/// Validation metrics with the sizes of both sides of the split (what `metrics.json` holds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainMetrics {
    /// Metrics on the validation rows.
    #[serde(flatten)]
    pub validation: ValidationMetrics,
    /// Rows used for fitting.
    pub n_train: usize,
    /// Rows held out.
    pub n_validation: usize,
    /// Precision, recall, PR AUC and the confusion matrix, for classifiers.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<ClassificationReport>,
    /// Every trial of a random-search sweep, when the model came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepRecord>,
    /// How the rows were split (`hash` or `stratified`).
    pub split: &'static str,
    /// Imputation and categorical encoding used.
    pub preprocessing: Preprocessing,
    /// k-fold cross-validation on the training rows, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv: Option<CvRecord>,
    /// Impurity-based feature importances of trees and forests (scikit-learn's
    /// `feature_importances_`: each tree's normalized to sum 1, averaged over trees), by model
    /// input column (`field`, or `field=category` for one-hot columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_importances: Option<BTreeMap<String, f64>>,
}

/// The feature importances of a tree or forest by input column name; `None` for other models.
pub fn feature_importances(model: &NativeModel) -> Option<BTreeMap<String, f64>> {
    match model.fitted() {
        ml_core::native::Fitted::TreeEnsemble(t) => Some(
            model
                .preprocessor()
                .output_names()
                .into_iter()
                .zip(t.feature_importances.iter().copied())
                .collect(),
        ),
        _ => None,
    }
}

/// k-fold cross-validation results (what `metrics.json` holds under `cv`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CvRecord {
    /// Number of folds.
    pub k: usize,
    /// Whether folds were stratified by class.
    pub stratified: bool,
    /// Seed of the fold assignment (the split seed).
    pub seed: u64,
    /// Rows held out in each fold.
    pub fold_rows: Vec<usize>,
    /// Each fold's metrics (every scalar validation metric, plus precision, recall and PR AUC
    /// for classifiers), fold by fold.
    pub folds: Vec<BTreeMap<String, f64>>,
    /// Mean of each metric over the folds.
    pub mean: BTreeMap<String, f64>,
    /// Population standard deviation (ddof 0, as numpy's `std`) of each metric over the folds.
    pub std: BTreeMap<String, f64>,
}

impl CvRecord {
    /// Summarizes per-fold metrics.
    fn new(
        k: usize,
        stratified: bool,
        seed: u64,
        fold_rows: Vec<usize>,
        folds: Vec<BTreeMap<String, f64>>,
    ) -> CvRecord {
        let mut mean = BTreeMap::new();
        let mut std = BTreeMap::new();
        if let Some(first) = folds.first() {
            for name in first.keys() {
                let values: Vec<f64> = folds.iter().filter_map(|f| f.get(name).copied()).collect();
                let n = values.len() as f64;
                let m = values.iter().sum::<f64>() / n;
                let var = values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
                mean.insert(name.clone(), m);
                std.insert(name.clone(), var.sqrt());
            }
        }
        CvRecord {
            k,
            stratified,
            seed,
            fold_rows,
            folds,
            mean,
            std,
        }
    }
}

/// The result of [`train`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// The fitted model.
    pub model: NativeModel,
    /// Validation metrics.
    pub metrics: TrainMetrics,
    /// Where the schema came from.
    pub schema_source: SchemaSource,
    /// Input columns not used (dropped or not in the schema).
    pub ignored_columns: Vec<String>,
    /// Time spent fitting.
    pub fit_time: Duration,
}

impl TrainOutcome {
    /// The artifact for this model, with metrics and provenance tags.
    pub fn artifact(&self, request: &TrainRequest) -> Result<ModelArtifact> {
        let data_name = request
            .data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let artifact = ModelArtifact::from_native(&self.model)?
            .with_metrics(&self.metrics)?
            .with_tag("target", &request.target)
            .with_tag("training_data", data_name)
            .with_tag("validation_fraction", request.validation_fraction.to_string())
            .with_tag("split_seed", request.split_seed.to_string())
            .with_tag("split", self.metrics.split)
            .with_tag("impute", self.metrics.preprocessing.impute.name())
            .with_tag("encode", self.metrics.preprocessing.encode.name());
        let artifact = crate::drift::attach_training_profile(artifact, &self.model, &request.data)?;
        Ok(artifact)
    }
}

/// The sidecar schema path for a data file: `x.csv` → `x.schema.json`.
pub fn sidecar_schema_path(data: &Path) -> PathBuf {
    data.with_extension("schema.json")
}

/// Reads the schema for `table` as [`TrainRequest::schema`] describes.
pub fn resolve_schema(request: &TrainRequest, table: &CsvTable) -> Result<(Schema, SchemaSource)> {
    let from_file = |path: &Path| -> Result<Schema> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read schema", path, e))?;
        Schema::from_json(&text).map_err(|e| Error::InvalidSchema {
            reason: format!("{}: {e}", path.display()),
        })
    };
    if let Some(path) = &request.schema {
        if !request.types.is_empty() {
            return Err(Error::invalid_parameter(
                "types",
                "type overrides apply to schema inference; edit the schema file instead",
            ));
        }
        return Ok((from_file(path)?, SchemaSource::File(path.clone())));
    }
    let sidecar = sidecar_schema_path(&request.data);
    if request.types.is_empty() && sidecar.is_file() {
        return Ok((from_file(&sidecar)?, SchemaSource::Sidecar(sidecar)));
    }
    let options = InferOptions {
        overrides: request.types.clone(),
        ..InferOptions::default()
    };
    Ok((table.infer_schema(&options)?, SchemaSource::Inferred))
}

/// Trains as `request` says: read, split, fit on the training rows, evaluate on the rest.
pub fn train(request: &TrainRequest) -> Result<TrainOutcome> {
    train_with_progress(request, &|| {})
}

/// [`train`], calling `step` after each of the estimator's [`Estimator::n_steps`] fitting
/// steps (from any thread), for a progress bar.
pub fn train_with_progress(request: &TrainRequest, step: &(dyn Fn() + Sync)) -> Result<TrainOutcome> {
    let prepared = prepare(request)?;
    let cv = match request.cv {
        Some(k) => Some(cross_validate(
            request,
            &request.estimator,
            &prepared.train,
            k,
            step,
        )?),
        None => None,
    };
    let started = Instant::now();
    let model = request.estimator.fit_with_preprocessing(
        &prepared.train,
        &request.target,
        request.preprocessing,
        step,
    )?;
    let fit_time = started.elapsed();

    let validation = evaluate_any(&model, &prepared.validation, &request.target)?;
    let report = report(&model, &prepared.validation, &request.target)?;
    Ok(TrainOutcome {
        metrics: TrainMetrics {
            validation,
            report,
            n_train: prepared.train.n_rows(),
            n_validation: prepared.validation.n_rows(),
            sweep: None,
            split: prepared.split,
            preprocessing: request.preprocessing,
            cv,
            feature_importances: feature_importances(&model),
        },
        model,
        schema_source: prepared.schema_source,
        ignored_columns: prepared.ignored_columns,
        fit_time,
    })
}

/// The data of a training run, read and split as a [`TrainRequest`] says.
#[derive(Debug)]
pub struct PreparedData {
    /// Rows to fit on.
    pub train: Frame,
    /// Rows held out.
    pub validation: Frame,
    /// Where the schema came from.
    pub schema_source: SchemaSource,
    /// Input columns not used.
    pub ignored_columns: Vec<String>,
    /// The split used: `hash` or `stratified`.
    pub split: &'static str,
}

/// k-fold cross-validation of `estimator` (with `request`'s preprocessing, target, split seed
/// and stratification) on `data`: fits on k−1 folds, scores the held-out fold, for each fold.
/// `step` is called for every fitting step of every fold.
pub fn cross_validate(
    request: &TrainRequest,
    estimator: &Estimator,
    data: &Frame,
    k: usize,
    step: &(dyn Fn() + Sync),
) -> Result<CvRecord> {
    let stratified = request.split.is_stratified(!estimator.is_regressor());
    let folds = if stratified {
        stratified_k_fold(&class_codes(data, &request.target)?, k, request.split_seed)?
    } else {
        k_fold(data.n_rows(), k, request.split_seed)?
    };
    let mut per_fold = Vec::with_capacity(k);
    for (i, held_out) in folds.iter().enumerate() {
        ml_core::cancel::check()?;
        let fit_rows = data.select_rows(&fold_complement(&folds, i))?;
        let score_rows = data.select_rows(held_out)?;
        let model = estimator
            .fit_with_preprocessing(&fit_rows, &request.target, request.preprocessing, step)
            .map_err(|e| Error::Training {
                reason: format!("cross-validation fold {}/{k}: {e}", i + 1),
            })?;
        let metrics = evaluate_any(&model, &score_rows, &request.target)?;
        let mut values = scalar_metrics(&metrics);
        if let Some(r) = report(&model, &score_rows, &request.target)? {
            values.extend(scalar_metrics(&r));
        }
        per_fold.push(values);
    }
    let fold_rows = folds.iter().map(Vec::len).collect();
    Ok(CvRecord::new(
        k,
        stratified,
        request.split_seed,
        fold_rows,
        per_fold,
    ))
}

/// The numeric fields of a metrics value, by name (`n_rows` left out: it is a count).
pub(crate) fn scalar_metrics(value: &impl Serialize) -> BTreeMap<String, f64> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| v.is_f64() && k != "n_rows")
            .filter_map(|(k, v)| v.as_f64().map(|x| (k, x)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The class code of every row's target (the target's missing values are refused).
fn class_codes(data: &Frame, target: &str) -> Result<Vec<usize>> {
    let (_, field, col, nulls) = data.split_off(target)?;
    Ok(ClassTarget::encode(&field, &col, nulls.as_deref())?.codes)
}

/// Reads the data, resolves the schema and splits the rows, as `request` says.
pub fn prepare(request: &TrainRequest) -> Result<PreparedData> {
    let table = CsvTable::read_path(&request.data)?;
    let (schema, schema_source) = resolve_schema(request, &table)?;
    if schema.index_of(&request.target).is_none() {
        return Err(Error::invalid_parameter(
            "target",
            format!(
                "no column `{}` in the schema; columns are: {}",
                request.target,
                schema.names().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if request.drop.iter().any(|d| d == &request.target) {
        return Err(Error::invalid_parameter(
            "drop",
            "the target column cannot be dropped",
        ));
    }
    let drop: Vec<&str> = request.drop.iter().map(String::as_str).collect();
    let schema = schema.without(&drop)?;
    let frame = table.to_frame(schema, &ReadOptions::named(request.data.display().to_string()))?;
    let stratified = request.stratified();
    let (train_rows, validation_rows) = if stratified {
        stratified_split(
            &class_codes(&frame, &request.target)?,
            request.validation_fraction,
            request.split_seed,
        )?
    } else {
        train_validation_split(frame.n_rows(), request.validation_fraction, request.split_seed)?
    };
    Ok(PreparedData {
        train: frame.select_rows(&train_rows)?,
        validation: frame.select_rows(&validation_rows)?,
        schema_source,
        ignored_columns: frame.ignored_columns().to_vec(),
        split: if stratified { "stratified" } else { "hash" },
    })
}

/// Scores `data` (which holds the target column) with a classifier or a regressor and computes
/// the matching metrics.
pub fn evaluate_any(model: &NativeModel, data: &Frame, target: &str) -> Result<ValidationMetrics> {
    if matches!(model.output(), ml_core::OutputSpec::Regression) {
        Ok(ValidationMetrics::Regression(evaluate_regression(
            model, data, target,
        )?))
    } else {
        Ok(ValidationMetrics::Classification(evaluate(model, data, target)?))
    }
}

/// Precision, recall, PR AUC and the confusion matrix of a classifier on `data` (which holds
/// the target column); `None` for regressors.
pub fn report(model: &NativeModel, data: &Frame, target: &str) -> Result<Option<ClassificationReport>> {
    if matches!(model.output(), ml_core::OutputSpec::Regression) {
        return Ok(None);
    }
    let (codes, proba) = classified(model, data, target)?;
    Ok(Some(metrics::classification_report(&codes, proba.view())?))
}

/// Scores `data` (which holds the target column) with a regressor and computes RMSE, MAE, R².
pub fn evaluate_regression(model: &NativeModel, data: &Frame, target: &str) -> Result<RegressionMetrics> {
    let (features, field, col, nulls) = data.split_off(target)?;
    let truth = regression_target(&field, &col, nulls.as_deref())?;
    let predictions = model.predict(&features)?;
    let values = predictions
        .values()
        .ok_or_else(|| Error::Internal("regressor returned no values".into()))?;
    metrics::regression(&truth, &values.to_vec())
}

/// Scores `data` (which holds the target column) and computes classification metrics.
pub fn evaluate(model: &NativeModel, data: &Frame, target: &str) -> Result<ClassificationMetrics> {
    let (codes, proba) = classified(model, data, target)?;
    metrics::classification(&codes, proba.view())
}

/// The true class codes (in the model's label order) and predicted probabilities on `data`.
fn classified(model: &NativeModel, data: &Frame, target: &str) -> Result<(Vec<usize>, ndarray::Array2<f64>)> {
    let (features, field, col, nulls) = data.split_off(target)?;
    let truth = ClassTarget::encode(&field, &col, nulls.as_deref())?;
    let labels = model.output().labels();
    let codes = truth
        .codes
        .iter()
        .map(|&c| {
            let label = &truth.labels[c];
            labels
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| Error::Training {
                    reason: format!("class {label:?} of `{target}` does not occur in the training rows"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let predictions = model.predict(&features)?;
    let proba = predictions
        .probabilities()
        .ok_or_else(|| Error::Internal("classifier returned no probabilities".into()))?
        .to_owned();
    Ok((codes, proba))
}
