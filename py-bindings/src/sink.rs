//! Python objects as ml-stream sinks: any object with `write_batch(records: list[dict])`, and
//! optionally `flush()` and `close()`, is an [`InferenceSink`].
//!
//! The records are serialized to JSON without the GIL and turned into Python dicts by
//! `json.loads` inside the call, the only place the GIL is held. An exception raised by the
//! object is a sink error: the pipeline retries the batch with backoff (its retry policy),
//! then stops, so nothing is dropped silently.

use std::fmt;

use async_trait::async_trait;
use ml_stream::{InferenceRecord, InferenceSink, SpecRegistry};
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::{Map, Value as Json};

/// A Python sink object.
pub struct PySink {
    obj: Py<PyAny>,
    name: String,
    has_flush: bool,
    has_close: bool,
}

impl fmt::Debug for PySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PySink({})", self.name)
    }
}

/// A sink as given from Python: a spec or an object.
#[derive(Debug)]
pub(crate) enum SinkSpec {
    /// `jsonl:DIR`, `stdout:`, ... (ml-stream's spec grammar).
    Spec(String),
    /// A Python object with `write_batch`.
    Python(PySink),
}

/// Builds the sinks (specs through `specs`).
pub(crate) fn build_sinks(
    specs: &SpecRegistry,
    sinks: Vec<SinkSpec>,
) -> ml_stream::Result<Vec<Box<dyn InferenceSink>>> {
    sinks
        .into_iter()
        .map(|s| match s {
            SinkSpec::Spec(text) => specs.sink(&text),
            SinkSpec::Python(p) => Ok(Box::new(p) as Box<dyn InferenceSink>),
        })
        .collect()
}

/// Reads each item of a Python list of sinks.
pub(crate) fn sinks_of(list: &Bound<'_, pyo3::types::PyList>) -> PyResult<Vec<SinkSpec>> {
    list.iter().map(|o| sink_of(&o)).collect()
}

/// A sink spec (`jsonl:DIR`, `stdout:`, ...) or a Python sink object.
pub(crate) fn sink_of(obj: &Bound<'_, PyAny>) -> PyResult<SinkSpec> {
    if obj.is_instance_of::<PyString>() {
        return Ok(SinkSpec::Spec(obj.extract::<String>()?));
    }
    if !obj.hasattr("write_batch")? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a sink is a spec string (\"jsonl:DIR\", \"stdout:\", ...) or an object with a write_batch(records) method, got {}",
            obj.get_type().name()?
        )));
    }
    let name = match obj.get_type().qualname() {
        Ok(n) => format!("python:{n}"),
        Err(_) => "python".into(),
    };
    Ok(SinkSpec::Python(PySink {
        obj: obj.clone().unbind(),
        name,
        has_flush: obj.hasattr("flush")?,
        has_close: obj.hasattr("close")?,
    }))
}

/// The JSON form of a record handed to Python: the record's fields, its position as
/// `partition` and `offset`.
fn record_json(r: &InferenceRecord) -> Json {
    let mut m = Map::new();
    m.insert("correlation_id".into(), r.correlation_id.clone().into());
    m.insert("request_id".into(), r.request_id.clone().into());
    m.insert("timestamp_ms".into(), r.timestamp_ms.into());
    m.insert(
        "event_timestamp_ms".into(),
        r.event_timestamp_ms.map_or(Json::Null, Json::from),
    );
    m.insert("model_name".into(), r.model_name.clone().into());
    m.insert("model_version".into(), r.model_version.clone().into());
    m.insert("partition".into(), r.position.partition.into());
    m.insert("offset".into(), r.position.offset.into());
    m.insert("inputs".into(), Json::Object(r.inputs.clone()));
    m.insert("outputs".into(), Json::Object(r.outputs.clone()));
    m.insert("latency_ms".into(), r.latency_ms.into());
    Json::Object(m)
}

impl PySink {
    /// Calls `method` with `args` under the GIL, off the async executor's own work; a Python
    /// exception becomes a sink error naming the method and the exception.
    fn call(&self, method: &str, json: Option<String>) -> ml_stream::Result<()> {
        let run = || {
            Python::attach(|py| -> PyResult<()> {
                let obj = self.obj.bind(py);
                match json {
                    Some(text) => {
                        let records = py.import("json")?.call_method1("loads", (text,))?;
                        obj.call_method1(method, (records,))?;
                    }
                    None => {
                        obj.call_method0(method)?;
                    }
                }
                Ok(())
            })
        };
        // The runtimes of `serve` and `stream` are multi-threaded: other tasks move to other
        // workers while this one waits for the GIL and runs Python.
        let result = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        };
        result.map_err(|e| ml_stream::Error::SinkFailed {
            sink: self.name.clone(),
            attempts: 1,
            reason: format!("{method} raised {e}"),
        })
    }
}

#[async_trait]
impl InferenceSink for PySink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> ml_stream::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let list = Json::Array(records.iter().map(record_json).collect());
        let text = serde_json::to_string(&list).map_err(|e| ml_stream::Error::Internal(e.to_string()))?;
        self.call("write_batch", Some(text))
    }

    async fn flush(&mut self) -> ml_stream::Result<()> {
        if self.has_flush {
            self.call("flush", None)
        } else {
            Ok(())
        }
    }

    async fn close(&mut self) -> ml_stream::Result<()> {
        self.flush().await?;
        if self.has_close {
            self.call("close", None)
        } else {
            Ok(())
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
