//! A sink that hands each batch to a function, for embedding.

use std::fmt;

use async_trait::async_trait;

use crate::error::Result;
use crate::traits::{InferenceRecord, InferenceSink};

/// Calls a function with each batch of records. Delivery is whatever the function does: an
/// error it returns is retried by the pipeline, then stops it.
pub struct CallbackSink<F> {
    callback: F,
}

impl<F> CallbackSink<F>
where
    F: FnMut(&[InferenceRecord]) -> Result<()> + Send,
{
    /// A sink calling `callback` for every batch.
    pub fn new(callback: F) -> Self {
        CallbackSink { callback }
    }
}

impl<F> fmt::Debug for CallbackSink<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackSink")
    }
}

#[async_trait]
impl<F> InferenceSink for CallbackSink<F>
where
    F: FnMut(&[InferenceRecord]) -> Result<()> + Send,
{
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        (self.callback)(records)
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "callback".into()
    }
}
