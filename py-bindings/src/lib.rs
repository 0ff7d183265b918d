//! The native half of the `streamscore` Python package (`streamscore._native`).
//!
//! Every class here wraps one Rust value of the streamscore crates and delegates to it; the
//! Python package (`py-bindings/python/streamscore`) adds the Pythonic surface: pandas and
//! numpy input handling, docstrings with examples, the ONNX Runtime and scikit-learn glue.
//!
//! - `PyModel` (`_native.Model`) holds an `Arc<dyn Model>` and, when it has one, the
//!   [`ModelArtifact`](ml_core::ModelArtifact) it was trained or loaded as (for `save` and `metrics`).
//! - `PyRegistry` (`_native.Registry`) holds a `Box<dyn ModelRegistry>`.
//! - `train` runs [`streamscore::train::train`] (or [`streamscore::sweep::sweep`]) on the
//!   given columns, exactly as `streamscore train` does on a CSV file.
//!
//! - `ReferenceProfile`, `DriftReport`, `detect_drift`: the drift workflow of `streamscore drift`;
//!   `ADWIN`, `PageHinkley`, `KSWIN`, `DDM`: ml-drift's streaming detectors.
//! - `Server` and `Stream`: the endpoint and the stream pipeline on background threads;
//!   Python objects with `write_batch` are sinks of both.
//!
//! Errors become the exception hierarchy `StreamscoreError` → `SchemaError`, `ModelError`,
//! `RegistryError` with the Rust message; a panic inside Rust is caught and raised as
//! `StreamscoreError`, never as pyo3's `PanicException`. The GIL is released around training,
//! frame building and scoring.
//!
//! # Example
//! The module is used from Python:
//! ```text
//! >>> import streamscore
//! >>> df = streamscore.generate(2000, seed=1)
//! >>> model = streamscore.train(df, target="default", estimator="logistic_regression")
//! >>> model.predict_proba(df.drop(columns="default")).shape
//! (2000, 2)
//! ```

#![deny(missing_docs)]

mod convert;
mod detectors;
mod drift;
mod model;
mod registry;
mod runtime;
mod sink;

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    StreamscoreError,
    PyException,
    "Base class of every error raised by streamscore."
);
create_exception!(
    _native,
    SchemaError,
    StreamscoreError,
    "The input does not fit the schema: a missing column, a value of the wrong type, an unknown category."
);
create_exception!(
    _native,
    ModelError,
    StreamscoreError,
    "A model cannot be trained, loaded, saved or run (bad parameters, a corrupt artifact, no ONNX Runtime)."
);
create_exception!(
    _native,
    RegistryError,
    StreamscoreError,
    "A registry operation failed: unknown model, version or alias, an invalid name, a storage error."
);

/// Either crate's error, converted to the Python exception of its kind.
#[derive(Debug)]
pub(crate) enum Error {
    Core(ml_core::Error),
    Registry(ml_registry::Error),
    /// A Python exception already raised (input conversion, interruption).
    Py(PyErr),
    /// A stream or endpoint error (sources, sinks, settings).
    Other(String),
}

impl From<ml_stream::Error> for Error {
    fn from(e: ml_stream::Error) -> Self {
        match e {
            ml_stream::Error::Core(core) => Error::Core(core),
            other => Error::Other(other.to_string()),
        }
    }
}

impl From<ml_serve::Error> for Error {
    fn from(e: ml_serve::Error) -> Self {
        match e {
            ml_serve::Error::Core(core) => Error::Core(core),
            ml_serve::Error::Stream(s) => s.into(),
            other => Error::Other(other.to_string()),
        }
    }
}

impl From<ml_core::Error> for Error {
    fn from(e: ml_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<ml_registry::Error> for Error {
    fn from(e: ml_registry::Error) -> Self {
        match e {
            ml_registry::Error::Core(core) => Error::Core(core),
            other => Error::Registry(other),
        }
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        use ml_core::Error as C;
        match e {
            Error::Py(e) => e,
            Error::Other(e) => StreamscoreError::new_err(e),
            Error::Registry(e) => RegistryError::new_err(e.to_string()),
            Error::Core(
                e @ (C::Validation(_)
                | C::EmptyInput { .. }
                | C::RaggedRow { .. }
                | C::Parse { .. }
                | C::InvalidSchema { .. }
                | C::SchemaMismatch { .. }),
            ) => SchemaError::new_err(e.to_string()),
            Error::Core(e) => ModelError::new_err(e.to_string()),
        }
    }
}

/// Result alias of the bindings.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `f`, turning a panic into `StreamscoreError` (a panic is a bug of ours; the message
/// says so rather than letting pyo3's `PanicException`, a `BaseException`, escape).
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Py(StreamscoreError::new_err(format!(
                "internal error while {what} (a bug in streamscore, please report it): {msg}"
            ))))
        }
    }
}

/// The native module `streamscore._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("StreamscoreError", py.get_type::<StreamscoreError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("RegistryError", py.get_type::<RegistryError>())?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<model::PySchema>()?;
    m.add_class::<registry::PyRegistry>()?;
    m.add_class::<drift::PyProfile>()?;
    m.add_class::<drift::PyDriftReport>()?;
    m.add_class::<detectors::PyAdwin>()?;
    m.add_class::<detectors::PyPageHinkley>()?;
    m.add_class::<detectors::PyKswin>()?;
    m.add_class::<detectors::PyDdm>()?;
    m.add_class::<runtime::PyServer>()?;
    m.add_class::<runtime::PyStream>()?;
    m.add_function(wrap_pyfunction!(drift::detect_drift, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::start_server, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::start_stream, m)?)?;
    m.add_function(wrap_pyfunction!(model::train, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_model, m)?)?;
    m.add_function(wrap_pyfunction!(model::generate, m)?)?;
    m.add_function(wrap_pyfunction!(model::credit_schema, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
