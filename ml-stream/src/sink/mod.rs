//! Built-in sinks: the JSONL inference log (Azure ML data-collection layout), Parquet files
//! (feature `parquet`), stdout, memory, and a callback for embedding.

mod callback;
mod jsonl;
mod memory;
mod stdout;

pub use self::callback::CallbackSink;
pub use self::jsonl::{JsonlSink, JsonlSinkOptions};
pub use self::memory::{MemoryHandle, MemorySink};
pub use self::stdout::StdoutSink;
#[cfg(feature = "parquet")]
pub use crate::parquet::{ParquetSink, ParquetSinkOptions};

use crate::spec::SpecRegistry;

pub(crate) fn register_builtin(registry: &mut SpecRegistry) {
    registry.register_sink("jsonl", |spec| {
        spec.only_params(&["endpoint", "deployment", "max_bytes", "instance"])?;
        let mut options = JsonlSinkOptions::new(spec.required_path("a directory")?);
        if let Some(e) = spec.params.get("endpoint") {
            options.endpoint = e.clone();
        }
        if let Some(d) = spec.params.get("deployment") {
            options.deployment = d.clone();
        }
        if let Some(i) = spec.params.get("instance") {
            options.instance = i.clone();
        }
        options.max_bytes = spec.u64_param("max_bytes", options.max_bytes)?;
        Ok(Box::new(JsonlSink::new(options)?))
    });
    #[cfg(feature = "parquet")]
    registry.register_sink("parquet", |spec| {
        spec.only_params(&["instance", "row_group_rows"])?;
        let mut options = ParquetSinkOptions::new(spec.required_path("a directory")?);
        if let Some(i) = spec.params.get("instance") {
            options.instance = i.clone();
        }
        options.row_group_rows = spec.u64_param("row_group_rows", options.row_group_rows as u64)? as usize;
        Ok(Box::new(ParquetSink::new(options)?))
    });
    #[cfg(feature = "azure")]
    crate::azure_blob::register(registry);
    #[cfg(feature = "azure")]
    crate::logs_ingestion::register(registry);
    #[cfg(feature = "azure")]
    crate::appinsights::register(registry);
    registry.register_sink("stdout", |spec| {
        spec.only_params(&[])?;
        Ok(Box::new(StdoutSink::new()))
    });
}
