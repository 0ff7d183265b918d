//! The integration tests of this crate, one module per area, built as one test binary: one
//! link of the crate and its dependencies instead of one per file keeps the test build short.

mod common;

mod cli;
mod drift_cli;
mod kafka_cli;
mod loop_azure;
mod loop_e2e;
mod loop_sources;
mod onnx_cli;
mod otlp_cli;
mod reference_auc;
mod registry_cli;
mod serve_security;
mod soak;
mod stream;
mod training_options;
