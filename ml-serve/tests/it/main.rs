//! The integration tests of this crate, one module per area, built as one test binary: one
//! link of the crate and its dependencies instead of one per file keeps the test build short.

mod support;

mod azureml_package;
mod contract;
mod deployments;
mod fuzz_regressions;
mod malformed;
mod remote;
mod security;
