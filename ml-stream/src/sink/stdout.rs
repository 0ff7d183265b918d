//! Records as JSON lines on standard output.

use async_trait::async_trait;
use tokio::io::{AsyncWriteExt, BufWriter, Stdout};

use crate::error::{Error, Result};
use crate::traits::{DeadLetter, InferenceRecord, InferenceSink};

/// Writes each record (and dead letter) as one JSON line on standard output. Delivery: `flush`
/// flushes the process's stdout; what a reader does with it is outside our control.
#[derive(Debug)]
pub struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl StdoutSink {
    /// A sink on this process's standard output.
    pub fn new() -> Self {
        StdoutSink {
            out: BufWriter::new(tokio::io::stdout()),
        }
    }

    async fn line(&mut self, value: &impl serde::Serialize) -> Result<()> {
        let mut bytes = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
        bytes.push(b'\n');
        self.out
            .write_all(&bytes)
            .await
            .map_err(|e| Error::io("write", "standard output", e))
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl InferenceSink for StdoutSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        for r in records {
            self.line(r).await?;
        }
        Ok(())
    }

    async fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        for l in letters {
            self.line(l).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .await
            .map_err(|e| Error::io("flush", "standard output", e))
    }

    fn describe(&self) -> String {
        "stdout:".into()
    }
}
