//! The integration tests of this crate, one module per area, built as one test binary: one
//! link of the crate and its dependencies instead of one per file keeps the test build short.

// Shared by the ONNX modules, which need the ONNX features.
#[cfg(feature = "onnx-native")]
mod onnx_fixtures;
#[cfg(feature = "onnx-native")]
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
