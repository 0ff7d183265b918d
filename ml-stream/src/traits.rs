//! The extension points of streams: [`StreamSource`], [`InferenceSink`], and the values that
//! flow between them ([`Event`], [`Checkpoint`], [`InferenceRecord`]).
//!
//! This module pulls in no runtime: an integrator implementing a source or a sink depends on
//! `async-trait`, `serde` and `serde_json` only.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::batch::ScoredBatch;
use crate::error::Result;

/// One message read from a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The message body (a JSON object, a JSON array, or a CSV line).
    pub payload: Vec<u8>,
    /// The message key, when the transport has one.
    pub key: Option<Vec<u8>>,
    /// Partition (0 for unpartitioned sources).
    pub partition: u32,
    /// Position within the partition; commits name the next position to read.
    pub offset: u64,
    /// When the event was produced (Unix milliseconds), when the transport says.
    pub timestamp_ms: Option<i64>,
    /// Transport headers (`content-type: text/csv` marks CSV lines).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Event {
    /// An event with a payload at (`partition`, `offset`) and nothing else.
    pub fn new(payload: impl Into<Vec<u8>>, partition: u32, offset: u64) -> Self {
        Event {
            payload: payload.into(),
            key: None,
            partition,
            offset,
            timestamp_ms: None,
            headers: Vec::new(),
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Where a source stands: per partition, the offset of the next event to read.
///
/// A source that resumes from a checkpoint re-reads nothing before these offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Partition → next offset.
    pub next_offsets: BTreeMap<u32, u64>,
}

impl Checkpoint {
    /// Records that everything up to and including `offset` in `partition` is done.
    pub fn advance(&mut self, partition: u32, offset: u64) {
        let next = offset.saturating_add(1);
        let slot = self.next_offsets.entry(partition).or_insert(next);
        if next > *slot {
            *slot = next;
        }
    }
}

/// A source of events: a file, stdin, a channel, a Kafka consumer group, ...
///
/// # Runtime contract
/// - `next_batch` returns up to `max` events, waiting at most until `deadline` for the first
///   one; it returns an empty batch when nothing arrived in time. It must not block the executor
///   thread (use async I/O or `spawn_blocking`). It is **not** required to be cancel-safe: the
///   pipeline always awaits it to completion.
/// - Events come in offset order within a partition.
/// - `commit` is called by the pipeline only with positions whose events every sink has
///   flushed (at-least-once); a source persists it (a state file, a consumer-group commit) so
///   that a restart resumes there. Positions are never committed out of order.
/// - After a restart, events after the last commit are delivered again: sinks see duplicates,
///   recognisable by (partition, offset).
#[async_trait]
pub trait StreamSource: Send + Debug {
    /// Reads the next events.
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>>;

    /// Persists a position. The default does nothing (a source that cannot resume).
    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let _ = checkpoint;
        Ok(())
    }

    /// True once a finite source (a file without follow, a closed channel) has delivered its
    /// last event. The default is `false`: the stream runs until shutdown.
    fn is_exhausted(&self) -> bool {
        false
    }

    /// A short description for logs and metrics (`file:events.jsonl`).
    fn describe(&self) -> String {
        "source".into()
    }

    /// True while the source needs the positions it has handed out committed now rather than
    /// at the next `commit_interval`: a Kafka consumer whose partitions are being revoked waits
    /// for that commit before it lets them go, so a graceful rebalance repeats nothing. The
    /// pipeline checks it after every read and then flushes and commits after every batch
    /// written. The default is `false`.
    fn commit_wanted(&self) -> bool {
        false
    }

    /// How far the source is behind its end, when it can tell cheaply: bytes not yet read of a
    /// file, events not yet read of a partitioned log. The pipeline reads it after every batch
    /// (the `lag` counter, gauge `streamscore_stream_lag`). The default is `None`.
    fn lag(&self) -> Option<u64> {
        None
    }
}

/// Where an event came from, carried by every record so a sink can be idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// One scored event: what a sink receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceRecord {
    /// Id shared by the input and output lines of one batch (Azure ML's `correlationid`).
    pub correlation_id: String,
    /// The request id (`xrequestid`) when the record came from an HTTP request; the batch id
    /// otherwise.
    pub request_id: String,
    /// When the record was scored (Unix milliseconds).
    pub timestamp_ms: i64,
    /// The event's own timestamp, when the source had one (Unix milliseconds).
    pub event_timestamp_ms: Option<i64>,
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// Where the event came from.
    pub position: SourcePosition,
    /// The input row, as a JSON object of field → value.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The outputs, as a JSON object (`label` and `probability_<label>`, or `prediction`).
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Scoring time of the batch the record was in, in milliseconds.
    pub latency_ms: f64,
}

/// An event that could not be decoded or scored, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where it came from.
    pub position: SourcePosition,
    /// The raw payload, as text when it is UTF-8 (lossy otherwise).
    pub payload: String,
    /// Why it was set aside (the validation or parse error).
    pub reason: String,
    /// When (Unix milliseconds).
    pub timestamp_ms: i64,
}

/// A destination of scored records: a JSONL inference log, Parquet files, Kafka, Blob storage,
/// Application Insights, stdout, memory, ...
///
/// # Runtime contract
/// - `write_batch` receives records in source order; it may buffer.
/// - `flush` returns only when everything written before it is durable and readable by others
///   (a JSONL sink fsyncs and closes its part file; a Blob sink commits its block list). The
///   pipeline calls it before every commit of source positions, so a record is never committed
///   before it is durable: delivery is at-least-once.
/// - An error from either is retried by the pipeline with backoff, then stops the pipeline: a
///   sink never drops records silently. Neither is required to be cancel-safe.
/// - `close` is called once at the end; the default flushes.
#[async_trait]
pub trait InferenceSink: Send + Debug {
    /// Writes (or buffers) a batch of records.
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()>;

    /// Writes (or buffers) a scored batch; the pipeline calls this, not `write_batch`. The
    /// default hands [`ScoredBatch::records`] to `write_batch`. Sinks that can write the
    /// batch's serialized JSON or its frame directly override it and skip building a record per
    /// row (the JSONL and Parquet sinks do). Same contract as `write_batch`.
    async fn write_scored(&mut self, batch: &ScoredBatch) -> Result<()> {
        self.write_batch(batch.records()).await
    }

    /// Makes everything written so far durable.
    async fn flush(&mut self) -> Result<()>;

    /// Writes dead letters. The default refuses them: only sinks used as dead-letter
    /// destinations implement it.
    async fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        let _ = letters;
        Err(crate::error::Error::Unsupported {
            what: format!("{} cannot store dead letters", self.describe()),
        })
    }

    /// Flushes and releases resources. The default calls `flush`.
    async fn close(&mut self) -> Result<()> {
        self.flush().await
    }

    /// A short description for logs (`jsonl:out/`).
    fn describe(&self) -> String {
        "sink".into()
    }
}
