//! The integration tests of this crate, one module per area, built as one test binary: one
//! link of the crate and its dependencies instead of one per file keeps the test build short.

mod common;

mod appinsights;
mod azure_blob;
mod kafka;
mod logs_ingestion;
mod otlp;
mod parquet;
mod pipeline;
