//! What the pipeline tests share: a scorer whose every answer can be checked, and its schema.
// Each test file uses the parts it needs.
#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use ml_core::{Column, DataType, Field, Frame, Predictions, Schema, Scorer};

/// Scores `2x + 1`: an answer the test can check for every record.
#[derive(Debug)]
pub struct Affine;

#[async_trait]
impl Scorer for Affine {
    async fn score(&self, frame: &Frame) -> ml_core::Result<Predictions> {
        let Some(Column::Float(x)) = frame.column("x") else {
            return Err(ml_core::Error::Internal("no x".into()));
        };
        Ok(Predictions::Regression {
            values: x.mapv(|v| 2.0 * v + 1.0),
        })
    }
}

/// The events' schema: an integer `id` and a float `x`.
pub fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Int),
            Field::new("x", DataType::Float),
        ])
        .unwrap(),
    )
}
