//! `_native.Model`, `_native.Schema`, `train`, `load_model`, `generate`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use ml_core::datasets::{CreditDefaultConfig, credit_default};
use ml_core::frame::ColumnSource;
use ml_core::onnx::{OnnxModel, OnnxOptions};
use ml_core::{Estimator, Frame, Model, ModelArtifact, PredictOptions, Predictions, Schema, Value};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyList;
use streamscore::sweep::{ParamSpace, SweepSpec};
use streamscore::train::TrainRequest;

use crate::convert::{self, Holder};
use crate::{Error, Result, SchemaError, guarded};

/// A fitted model (native or ONNX) with the artifact it is saved as.
#[pyclass(name = "Model", module = "streamscore._native", frozen)]
pub struct PyModel {
    pub(crate) inner: Arc<dyn Model>,
    pub(crate) artifact: ModelArtifact,
    schema: Arc<Schema>,
}

/// Bytes of input per chunk of a large single-thread batch (see [`PyModel::score`]): a chunk's
/// input and its frame stay in the core's second-level cache (1,638 rows of 20 float fields).
const CHUNK_BYTES: usize = 256 * 1024;

impl PyModel {
    pub(crate) fn from_artifact(artifact: ModelArtifact) -> Result<PyModel> {
        let inner = artifact.load_model()?;
        Ok(PyModel::new(inner, artifact))
    }

    fn new(inner: Arc<dyn Model>, artifact: ModelArtifact) -> PyModel {
        let schema = Arc::new(inner.schema().clone());
        PyModel {
            inner,
            artifact,
            schema,
        }
    }

    /// Reads `data` (a numeric matrix or one column per schema field) and scores it without
    /// the GIL.
    fn score(&self, py: Python<'_>, data: &Bound<'_, PyAny>, threads: usize) -> Result<Predictions> {
        if let Some(x) = convert::Matrix::extract(data) {
            return self.score_sources(py, &convert::matrix_sources(&self.schema, &x)?, threads);
        }
        let holders = input_columns(&self.schema, data)?;
        let cells = convert::cells(&holders);
        self.score_sources(py, &convert::column_sources(&holders, &cells), threads)
    }

    /// Scores the input columns `sources`. A large batch on one thread of a model whose rows are
    /// independent ([`Model::rows_independent`]) goes
    /// a chunk of rows at a time (frame, then predictions) while the chunk's input is in
    /// cache, instead of converting the whole input into a frame first and reading that back
    /// from memory; the predictions are the same, bit for bit. Any error in a chunk, and any
    /// other batch, takes the whole-batch path, whose results and errors are the reference.
    fn score_sources(
        &self,
        py: Python<'_>,
        sources: &[ColumnSource<'_>],
        threads: usize,
    ) -> Result<Predictions> {
        let n = sources.first().map_or(0, ColumnSource::len);
        let chunk = (CHUNK_BYTES / (8 * self.schema.len().max(1))).max(ml_core::kernel::BLOCK_ROWS);
        if self.inner.rows_independent() && threads == 1 && n > chunk {
            let (model, schema) = (self.inner.clone(), self.schema.clone());
            let chunked =
                py.detach(move || guarded("scoring", || Ok(by_chunks(&*model, &schema, sources, chunk))))?;
            if let Some(predictions) = chunked {
                return Ok(predictions);
            }
        }
        let frame = convert::build(py, &self.schema, sources)?;
        let model = self.inner.clone();
        py.detach(move || {
            guarded("scoring", || {
                Ok(model.predict_with(&frame, &PredictOptions::with_threads(threads))?)
            })
        })
    }
}

/// The predictions of `sources` scored `chunk` rows at a time on this thread, put together;
/// `None` when a chunk fails (the whole-batch path then reports the problems).
fn by_chunks(
    model: &dyn Model,
    schema: &Arc<Schema>,
    sources: &[ColumnSource<'_>],
    chunk: usize,
) -> Option<Predictions> {
    let n = sources.first()?.len();
    let (mut labels, mut predicted, mut values) = (None, Vec::new(), Vec::with_capacity(n));
    let mut width = 0;
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let part: Vec<ColumnSource<'_>> = sources
            .iter()
            .map(|s| convert::slice_rows(s, start..end))
            .collect();
        let frame = Frame::from_column_sources(schema.clone(), &part).ok()?;
        match model
            .predict_with(&frame, &PredictOptions::with_threads(1))
            .ok()?
        {
            Predictions::Classification {
                labels: l,
                predicted: p,
                probabilities,
            } => {
                if start == 0 {
                    width = probabilities.ncols();
                    predicted.reserve(n);
                    values.reserve(n * width);
                    labels = Some(l);
                }
                if labels.is_none() || probabilities.dim() != (end - start, width) {
                    return None;
                }
                values.extend_from_slice(probabilities.as_slice()?);
                predicted.extend(p);
            }
            Predictions::Regression { values: v } => {
                if labels.is_some() || v.len() != end - start {
                    return None;
                }
                values.extend_from_slice(v.as_slice()?);
            }
        }
    }
    Some(match labels {
        Some(labels) => Predictions::Classification {
            labels,
            predicted,
            probabilities: Array2::from_shape_vec((n, width), values).ok()?,
        },
        None => Predictions::Regression {
            values: values.into(),
        },
    })
}

/// The columns of a list with one column per schema field, in field order.
fn input_columns<'py>(schema: &Schema, data: &Bound<'py, PyAny>) -> Result<Vec<Holder<'py>>> {
    let list = data.cast::<PyList>().map_err(|_| {
        SchemaError::new_err(
            "expected a 2-D float64, float32, int64 or int32 numpy array or a list of columns in the schema's field order",
        )
    })?;
    let holders = schema
        .fields()
        .iter()
        .zip(list.iter())
        .map(|(field, col)| convert::column(&field.name, &col))
        .collect::<PyResult<Vec<Holder<'_>>>>()?;
    if list.len() != schema.len() {
        return Err(ml_core::Error::SchemaMismatch {
            reason: format!("got {} columns for {} fields", list.len(), schema.len()),
        }
        .into());
    }
    Ok(holders)
}

/// A frame of `schema` from a 2-D numeric array or a list of columns in field order.
fn input_frame(py: Python<'_>, schema: &Arc<Schema>, data: &Bound<'_, PyAny>) -> Result<Frame> {
    if let Some(x) = convert::Matrix::extract(data) {
        return convert::frame_from_matrix(py, schema, &x);
    }
    let holders = input_columns(schema, data)?;
    convert::frame_from_columns(py, schema, &holders)
}

#[pymethods]
impl PyModel {
    /// The fields the model reads.
    #[getter]
    fn schema(&self) -> PySchema {
        PySchema {
            inner: self.schema.clone(),
        }
    }

    /// Class labels in probability-column order; `None` for a regressor.
    #[getter]
    fn classes(&self) -> Option<Vec<String>> {
        match self.inner.output() {
            ml_core::OutputSpec::Regression => None,
            out => Some(out.labels().to_vec()),
        }
    }

    /// The model kind (`random_forest`, `logistic_regression`, `onnx`, ...).
    #[getter]
    fn kind(&self) -> String {
        self.inner.kind().to_string()
    }

    /// The metrics recorded with the model, as JSON text.
    #[getter]
    fn metrics_json(&self) -> String {
        serde_json::Value::Object(self.artifact.metrics().clone()).to_string()
    }

    /// The artifact's tags, as JSON text.
    #[getter]
    fn tags_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.artifact.mlmodel().metadata)
            .map_err(|e| crate::StreamscoreError::new_err(e.to_string()))
    }

    /// Class probabilities, `n × classes`.
    #[pyo3(signature = (data, threads = 1))]
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        threads: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        match self.score(py, data, threads)? {
            Predictions::Classification { probabilities, .. } => Ok(probabilities.into_pyarray(py)),
            Predictions::Regression { .. } => Err(crate::ModelError::new_err(
                "predict_proba needs a classifier; this model is a regressor: use predict",
            )),
        }
    }

    /// Class indices into `classes` (int64) for a classifier, values (float64) for a regressor.
    #[pyo3(signature = (data, threads = 1))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        threads: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.score(py, data, threads)? {
            Predictions::Classification { predicted, .. } => {
                let idx: Vec<i64> = predicted.into_iter().map(|i| i as i64).collect();
                PyArray1::from_vec(py, idx).into_any()
            }
            Predictions::Regression { values } => values.into_pyarray(py).into_any(),
        })
    }

    /// The profile of the training data stored with the model (for drift detection).
    #[getter]
    fn profile(&self) -> PyResult<crate::drift::PyProfile> {
        Ok(crate::drift::PyProfile {
            inner: Arc::new(crate::drift::model_profile(self)?),
        })
    }

    /// Saves the model as an artifact directory (created; must not hold another model).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut artifact = self.artifact.clone();
        py.detach(move || guarded("saving", || Ok(artifact.save(&path)?)))?;
        Ok(())
    }

    /// An ONNX model from the bytes of an `.onnx` file.
    #[staticmethod]
    #[pyo3(signature = (data, origin, schema = None, columns = None, library = None))]
    fn from_onnx_bytes(
        py: Python<'_>,
        data: Vec<u8>,
        origin: String,
        schema: Option<&PySchema>,
        columns: Option<Vec<String>>,
        library: Option<PathBuf>,
    ) -> PyResult<PyModel> {
        let schema = schema.map(|s| (*s.inner).clone());
        let options = OnnxOptions {
            library,
            ..OnnxOptions::default()
        };
        let model = py.detach(move || {
            guarded("loading the ONNX model", || {
                let m = OnnxModel::from_bytes(data, &origin, schema, columns.as_deref(), &options)?;
                let artifact = m.to_artifact()?;
                Ok(PyModel::new(Arc::new(m), artifact))
            })
        })?;
        Ok(model)
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(kind={:?}, fields={}, classes={:?})",
            self.inner.kind(),
            self.schema.len(),
            self.classes()
        )
    }
}

/// The fields a model reads: names, types, vocabularies.
#[pyclass(name = "Schema", module = "streamscore._native", frozen, eq)]
#[derive(PartialEq)]
pub struct PySchema {
    pub(crate) inner: Arc<Schema>,
}

#[pymethods]
impl PySchema {
    /// The schema from its JSON form.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<PySchema> {
        Ok(PySchema {
            inner: Arc::new(Schema::from_json(text).map_err(Error::from)?),
        })
    }

    /// The JSON form (`{"fields": [{"name", "type", "nullable", "vocabulary"?}]}`).
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Field names in order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.names().map(str::to_string).collect()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        let fields: Vec<String> = self
            .inner
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "{}: {}{}",
                    f.name,
                    f.dtype.name(),
                    if f.nullable { "?" } else { "" }
                )
            })
            .collect();
        format!("Schema({})", fields.join(", "))
    }
}

/// Trains a model on columns in `schema`'s field order, as `streamscore train` does on a CSV
/// file with that schema beside it.
#[pyfunction]
#[pyo3(signature = (columns, schema, target, estimator, params, validation_fraction, seed, cv = None, sweep = None))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    columns: &Bound<'_, PyList>,
    schema: &PySchema,
    target: String,
    estimator: &str,
    params: Vec<(String, String)>,
    validation_fraction: f64,
    seed: u64,
    cv: Option<usize>,
    sweep: Option<(usize, String, u64, Vec<String>)>,
) -> PyResult<PyModel> {
    let estimator = Estimator::from_name(estimator, &params).map_err(Error::from)?;
    let frame = input_frame(py, &schema.inner, columns.as_any())?;
    let sweep = sweep
        .map(|(trials, metric, seed, entries)| -> Result<SweepSpec> {
            let mut space = ParamSpace::default();
            for e in &entries {
                space.add(e)?;
            }
            Ok(SweepSpec {
                trials,
                metric,
                space,
                seed,
            })
        })
        .transpose()?;
    // Training runs on its own thread so that this one can wake up to check for Ctrl-C: an
    // interrupted call returns at once and cancels the fit, which stops at its next step (a
    // tree, a fold, a sweep trial) instead of running on in the background.
    let (tx, rx) = channel();
    let token = ml_core::cancel::CancelToken::new();
    let work_token = token.clone();
    std::thread::Builder::new()
        .name("streamscore-train".into())
        .spawn(move || {
            let result = work_token.scope(|| {
                guarded("training", || {
                    let dir = tempfile::tempdir()
                        .map_err(|e| ml_core::Error::io("create a temporary directory", "", e))?;
                    let data = dir.path().join("dataframe.csv");
                    write_csv(&frame, &data)?;
                    std::fs::write(data.with_extension("schema.json"), frame.schema().to_json())
                        .map_err(|e| ml_core::Error::io("write", &data, e))?;
                    let mut request = TrainRequest::new(&data, target, estimator);
                    request.validation_fraction = validation_fraction;
                    request.split_seed = seed;
                    request.cv = cv;
                    let outcome = match &sweep {
                        Some(spec) => streamscore::sweep::sweep(&request, spec, &|| {})?,
                        None => streamscore::train::train(&request)?,
                    };
                    let artifact = outcome.artifact(&request)?;
                    Ok((outcome.model, artifact))
                })
            });
            // The receiver is gone when the caller was interrupted: nothing to report to.
            let _ = tx.send(result);
        })
        .map_err(|e| crate::StreamscoreError::new_err(format!("cannot start the training thread: {e}")))?;
    let mut rx = rx;
    loop {
        // The receiver moves in and out: it is `Send` but not `Sync`.
        let (received, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
        rx = back;
        match received {
            Ok(result) => {
                let (model, artifact) = result?;
                return Ok(PyModel::new(Arc::new(model), artifact));
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    token.cancel();
                    return Err(interrupted);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(crate::StreamscoreError::new_err(
                    "the training thread ended without a result",
                ));
            }
        }
    }
}

/// Writes `frame` as CSV (header, then rows; floats in shortest round-trip form, missing
/// values empty), the form `streamscore train` reads.
fn write_csv(frame: &Frame, path: &std::path::Path) -> Result<()> {
    let io = |e: csv::Error| ml_core::Error::Io {
        op: "write",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(frame.schema().names()).map_err(io)?;
    let n_fields = frame.schema().len();
    let mut record: Vec<String> = Vec::with_capacity(n_fields);
    for row in 0..frame.n_rows() {
        record.clear();
        for i in 0..n_fields {
            record.push(match frame.value(row, i) {
                None | Some(Value::Null) => String::new(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Int(v)) => v.to_string(),
                Some(Value::Float(x)) => x.to_string(),
                Some(Value::Str(s)) => s,
            });
        }
        w.write_record(&record).map_err(io)?;
    }
    w.flush().map_err(|e| ml_core::Error::io("write", path, e))?;
    Ok(())
}

/// Loads a model artifact directory (native or ONNX), every checksum verified.
#[pyfunction]
pub fn load_model(py: Python<'_>, path: PathBuf) -> PyResult<PyModel> {
    Ok(py.detach(move || {
        guarded("loading the model", || {
            PyModel::from_artifact(ModelArtifact::load(&path)?)
        })
    })?)
}

/// Column names and their int64 columns, as numpy arrays.
type NamedColumns<'py> = (Vec<String>, Vec<Bound<'py, PyArray1<i64>>>);

/// The synthetic credit-default data (`streamscore generate`): column names and int64 columns.
#[pyfunction]
#[pyo3(signature = (rows, seed, drift = 0.0))]
pub fn generate<'py>(py: Python<'py>, rows: usize, seed: u64, drift: f64) -> PyResult<NamedColumns<'py>> {
    let data = py.detach(move || {
        guarded("generating", || {
            Ok(credit_default(&CreditDefaultConfig { rows, seed, drift })?)
        })
    })?;
    let mut names = Vec::new();
    let mut columns = Vec::new();
    for &name in data.column_names() {
        if let Some(values) = data.column(name) {
            names.push(name.to_string());
            columns.push(PyArray1::from_slice(py, values));
        }
    }
    Ok((names, columns))
}

/// The schema `streamscore generate` writes beside its CSV (code columns categorical).
#[pyfunction]
pub fn credit_schema() -> PyResult<PySchema> {
    Ok(PySchema {
        inner: Arc::new(streamscore::datagen::credit_schema().map_err(Error::from)?),
    })
}
