//! Streaming scorer of streamscore: events in, scored records out, at least once.
//!
//! - [`traits`] — the extension points [`StreamSource`] and [`InferenceSink`], and the values
//!   between them ([`Event`], [`Checkpoint`], [`InferenceRecord`], [`DeadLetter`]); no runtime
//!   dependency for implementors.
//! - [`spec`] — the one grammar of `--source` / `--sink` strings (`file:events.jsonl`,
//!   `jsonl:out/`, `kafka://…`) with a scheme → factory registry for custom schemes.
//! - [`Pipeline`] — source → decode → micro-batch → [`ml_core::Scorer`] → sinks → ordered
//!   commit, with bounded queues, batches in flight, dead letters and graceful shutdown.
//! - `kafka` (feature `kafka`) — Kafka and Event Hubs: a consumer-group source and a producer
//!   sink; scale-out is the consumer group.
//! - `appinsights` (feature `azure`) — Application Insights: requests, custom metrics (the
//!   `metrics` facade forwarded), custom events, and the `appinsights:` sink.
//! - [`source`] and [`sink`] — the local implementations; [`datacollection`] — Azure ML's
//!   data-collection line format and path layout, which the JSONL sink writes.
//!
//! The key decision: a source position is committed only after every sink has flushed every
//! record before it. A crash can repeat records (each carries its source position, so readers
//! drop duplicates) but never lose one.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use ml_core::{CsvTable, Estimator, LocalScorer, Model, ReadOptions};
//! # use ml_core::InferOptions;
//! use ml_stream::{Pipeline, PipelineConfig, sink::MemorySink, source::channel};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let table = CsvTable::read("x,y\n1.5,0\n2.5,0\n3.5,1\n4.5,1\n".as_bytes(), "train.csv")?;
//! let data = table.to_frame(table.infer_schema(&InferOptions::default())?, &ReadOptions::default())?;
//! let model = Estimator::from_name("logistic_regression", &[])?.fit(&data, "y")?;
//! let schema = Arc::new(model.schema().clone());
//! let scorer = Arc::new(LocalScorer::new(Arc::new(model)));
//!
//! let (sink, records) = MemorySink::new();
//! let pipeline = Pipeline::new(PipelineConfig::default(), schema, scorer, vec![Box::new(sink)])?;
//! let (tx, source) = channel(16);
//! tx.send(r#"{"x": 4.0}"#).await?;
//! tx.send("not json").await?;                  // goes to the dead letters, the stream goes on
//! drop(tx);                                    // the source ends when its senders are gone
//! let report = pipeline.run(Box::new(source)).await?;
//! assert_eq!((report.records_out, report.dead_letters), (1, 1));
//! assert_eq!(records.records()[0].outputs["label"], "1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![deny(missing_docs)]

#[cfg(feature = "azure")]
pub mod appinsights;
#[cfg(feature = "azure")]
pub mod azure_blob;
pub mod batch;
pub mod datacollection;
pub mod decode;
pub mod error;
#[cfg(feature = "parquet")]
pub mod export;
pub mod exporter;
mod jsonwrite;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "azure")]
pub mod logs_ingestion;
pub mod otlp;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod pipeline;
pub mod remote;
pub mod sink;
pub mod source;
pub mod spec;
pub mod traits;

pub use batch::{BatchInfo, ScoredBatch};
pub use error::{Error, Result};
pub use pipeline::{Pipeline, PipelineConfig, PipelineCounters, PipelineReport, RetryPolicy, ShutdownHandle};
pub use remote::{RemoteConfig, RemoteProtocol, RemoteScorer};
pub use spec::{Spec, SpecRegistry};
pub use traits::{
    Checkpoint, DeadLetter, Event, InferenceRecord, InferenceSink, SourcePosition, StreamSource,
};

/// A custom event (`DriftDetected`, `AlertFired`, `ModelPromoted`, `ModelRefused`, ...) through
/// every process-wide exporter: Application Insights (feature `azure`, installed by
/// `appinsights::AppInsights::install_global`; property values that parse as numbers are also
/// sent as measurements) and OTLP (installed by [`otlp::Otlp::install_global`]; a log record
/// with the fields as attributes). Does nothing when none is installed.
pub fn track_event(name: &str, properties: &[(&str, String)]) {
    exporter::track_event(name, properties);
}
