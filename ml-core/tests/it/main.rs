//! The integration tests of this crate, one module per area, built as one test binary: one
//! link of the crate and its dependencies instead of one per file keeps the test build short.

mod onnx_fixtures;
mod onnx_graphs;

mod artifact;
mod estimators;
mod fuzz_regressions;
mod kernels;
mod linear_closed_form;
mod logistic;
mod onnx;
mod onnx_native;
mod preprocess_compat;
mod trees;
