//! `_native.ReferenceProfile`, `_native.DriftReport`, `detect_drift`: the drift workflow of
//! `streamscore profile` and `streamscore drift`, on Python data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ml_core::{Frame, Model, Schema};
use ml_drift::{Correction, DriftOptions, DriftReport, ProfileOptions, ReferenceProfile};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert::{self, Holder};
use crate::model::{PyModel, PySchema};
use crate::{Error, Result, SchemaError, guarded};

/// A drift error as the core error of its kind (bad parameters and unreadable profiles are
/// model errors, data problems schema errors), as `streamscore drift` reports them.
pub(crate) fn drift_error(e: ml_drift::Error) -> Error {
    match e {
        ml_drift::Error::Core(e) => Error::Core(e),
        other => Error::Core(ml_core::Error::invalid_parameter("drift", other.to_string())),
    }
}

/// What the training data looked like, for drift detection (`profile.json`).
#[pyclass(name = "ReferenceProfile", module = "streamscore._native", frozen)]
pub struct PyProfile {
    pub(crate) inner: Arc<ReferenceProfile>,
}

/// A frame of `schema` from `columns` (one per field, in order).
fn frame_of(py: Python<'_>, schema: &Arc<Schema>, columns: &Bound<'_, PyList>) -> Result<Frame> {
    if columns.len() != schema.len() {
        return Err(ml_core::Error::SchemaMismatch {
            reason: format!("got {} columns for {} fields", columns.len(), schema.len()),
        }
        .into());
    }
    let holders = schema
        .fields()
        .iter()
        .zip(columns.iter())
        .map(|(field, col)| convert::column(&field.name, &col))
        .collect::<PyResult<Vec<Holder<'_>>>>()?;
    convert::frame_from_columns(py, schema, &holders)
}

#[pymethods]
impl PyProfile {
    /// Profiles columns (one per field of `schema`, in order), with `bins` quantile bins per
    /// numeric feature and an exact sample of `sample_size` values, as `streamscore profile`.
    #[staticmethod]
    #[pyo3(signature = (columns, schema, bins = 10, sample_size = 10_000))]
    fn from_columns(
        py: Python<'_>,
        columns: &Bound<'_, PyList>,
        schema: &PySchema,
        bins: usize,
        sample_size: usize,
    ) -> PyResult<PyProfile> {
        let frame = frame_of(py, &schema.inner, columns)?;
        let options = ProfileOptions {
            bins,
            sample_size,
            ..ProfileOptions::default()
        };
        let profile = py.detach(move || {
            guarded("profiling", || {
                ReferenceProfile::from_frame(&frame, None, &options).map_err(drift_error)
            })
        })?;
        Ok(PyProfile {
            inner: Arc::new(profile),
        })
    }

    /// Loads a reference: a `profile.json` file or a model artifact directory (its profile).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<PyProfile> {
        let profile = py.detach(move || {
            guarded("loading the profile", || {
                Ok(streamscore::drift::load_reference(&path.display().to_string())?)
            })
        })?;
        Ok(PyProfile {
            inner: Arc::new(profile),
        })
    }

    /// A profile from its JSON text.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<PyProfile> {
        let profile = ReferenceProfile::from_json(text).map_err(drift_error)?;
        Ok(PyProfile {
            inner: Arc::new(profile),
        })
    }

    /// The JSON text (`profile.json`; the same profile gives the same bytes).
    fn to_json(&self) -> PyResult<String> {
        Ok(self.inner.to_json().map_err(drift_error)?)
    }

    /// Rows profiled.
    #[getter]
    fn n_rows(&self) -> u64 {
        self.inner.n_rows
    }

    /// The profiled features, in schema order.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.inner.features.iter().map(|f| f.name.clone()).collect()
    }

    /// The profiled model outputs (empty without a model).
    #[getter]
    fn output_names(&self) -> Vec<String> {
        self.inner.outputs.iter().map(|f| f.name.clone()).collect()
    }

    /// The schema of the profiled data (`None` for profiles written before it was stored).
    #[getter]
    fn schema(&self) -> Option<PySchema> {
        self.inner.schema.as_ref().map(|s| PySchema {
            inner: Arc::new(s.clone()),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "ReferenceProfile(rows={}, features={}, outputs={})",
            self.inner.n_rows,
            self.inner.features.len(),
            self.inner.outputs.len()
        )
    }
}

/// The profile stored with a model (its `profile.json` attachment).
pub(crate) fn model_profile(model: &PyModel) -> Result<ReferenceProfile> {
    Ok(streamscore::drift::artifact_profile(
        &model.artifact,
        "the model",
    )?)
}

/// The result of a drift check.
#[pyclass(name = "DriftReport", module = "streamscore._native", frozen)]
pub struct PyDriftReport {
    inner: DriftReport,
}

#[pymethods]
impl PyDriftReport {
    /// Pretty JSON, the text `streamscore drift --json` writes.
    fn to_json(&self) -> PyResult<String> {
        Ok(self.inner.to_json().map_err(drift_error)?)
    }

    /// One self-contained HTML page (`streamscore drift --html`).
    fn to_html(&self) -> String {
        self.inner.to_html()
    }

    /// Whether the share of drifted features reached the threshold.
    #[getter]
    fn dataset_drift(&self) -> bool {
        self.inner.dataset.dataset_drift
    }

    /// Features that drifted.
    #[getter]
    fn n_drifted_features(&self) -> usize {
        self.inner.dataset.n_drifted_features
    }

    /// Features tested.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.dataset.n_features
    }
}

/// Compares current data with a reference, as `streamscore drift` does: `names` are the
/// columns present in the current data and `columns` their values, in the reference schema's
/// order; with `model`, its predictions on the current data are compared too.
#[pyfunction]
#[pyo3(signature = (reference, names, columns, model = None, tests = None, thresholds = None, correction = "none", drift_share = 0.5))]
#[allow(clippy::too_many_arguments)]
pub fn detect_drift(
    py: Python<'_>,
    reference: &PyProfile,
    names: Vec<String>,
    columns: &Bound<'_, PyList>,
    model: Option<&PyModel>,
    tests: Option<BTreeMap<String, String>>,
    thresholds: Option<BTreeMap<String, f64>>,
    correction: &str,
    drift_share: f64,
) -> PyResult<PyDriftReport> {
    let profile = reference.inner.clone();
    let schema = profile.schema.clone().ok_or_else(|| {
        Error::Core(ml_core::Error::invalid_parameter(
            "reference",
            "the profile has no schema; recompute it with ReferenceProfile.from_frame",
        ))
    })?;
    // As the command reads a CSV: a field the current data lacks is left out when the
    // reference did not profile it (a target column), and is an error otherwise.
    let missing: Vec<&str> = schema.names().filter(|n| !names.iter().any(|m| m == n)).collect();
    if let Some(n) = missing.iter().find(|n| profile.feature(n).is_some()) {
        return Err(SchemaError::new_err(format!(
            "the current data has no column `{n}`, which the reference profiled; pass every feature of the reference"
        )));
    }
    let schema = Arc::new(schema.without(&missing).map_err(Error::from)?);
    let frame = frame_of(py, &schema, columns)?;
    let correction = match correction {
        "none" => Correction::None,
        "bonferroni" => Correction::Bonferroni,
        "bh" => Correction::BenjaminiHochberg,
        other => {
            return Err(Error::Core(ml_core::Error::invalid_parameter(
                "correction",
                format!("unknown correction `{other}`; use none, bonferroni or bh"),
            ))
            .into());
        }
    };
    let options = DriftOptions {
        tests: tests.unwrap_or_default(),
        thresholds: thresholds.unwrap_or_default(),
        correction,
        drift_share,
        ..DriftOptions::default()
    };
    let model: Option<Arc<dyn Model>> = model.map(|m| m.inner.clone());
    let report = py.detach(move || {
        guarded("detecting drift", || {
            Ok(streamscore::drift::drift(
                &profile,
                &frame,
                model.as_deref(),
                &options,
            )?)
        })
    })?;
    Ok(PyDriftReport { inner: report })
}
