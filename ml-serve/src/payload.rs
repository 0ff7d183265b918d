//! Payload logging: scoring requests and their answers handed to ml-stream
//! [`InferenceSink`]s (the JSONL inference log in Azure ML's data-collection layout, or any
//! sink spec) **off the request path**.
//!
//! A scored request is sampled (`sampling_rate`), then its frame and predictions are moved
//! into a bounded queue with `try_send`; a background task turns them into
//! [`InferenceRecord`]s, writes them to every sink and flushes every `flush_interval`. When
//! the queue is full the request is not slowed down: its records are counted as dropped
//! (`streamscore_serve_payload_dropped_total`) and the answer goes out. A sink error is
//! logged and counted the same way; the endpoint keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ml_core::{Frame, Predictions};
use ml_stream::{InferenceRecord, InferenceSink, SourcePosition};
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::metrics::{PAYLOAD_DROPPED, PAYLOAD_RECORDS};

/// One scored request waiting to be logged.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) frame: Frame,
    pub(crate) predictions: Predictions,
    pub(crate) request_id: String,
    pub(crate) model_name: String,
    pub(crate) model_version: String,
    pub(crate) latency_ms: f64,
    pub(crate) timestamp_ms: i64,
}

#[derive(Debug)]
enum Msg {
    Request(Box<Pending>),
    Close(oneshot::Sender<()>),
}

/// Counters of a [`PayloadLogger`].
#[derive(Debug, Default)]
pub struct PayloadCounters {
    /// Records written to the sinks.
    pub written: AtomicU64,
    /// Records dropped (queue full or sink error).
    pub dropped: AtomicU64,
}

/// The bounded queue between scoring requests and the payload sinks.
#[derive(Debug)]
pub struct PayloadLogger {
    tx: mpsc::Sender<Msg>,
    sampling_rate: f64,
    seq: AtomicU64,
    counters: Arc<PayloadCounters>,
}

impl PayloadLogger {
    /// Starts the writer task on the current tokio runtime. `capacity` requests may wait;
    /// `sampling_rate` (0..=1) of the scoring requests are logged.
    pub fn start(
        sinks: Vec<Box<dyn InferenceSink>>,
        capacity: usize,
        sampling_rate: f64,
        flush_interval: Duration,
    ) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::InvalidSetting {
                name: "payload_queue_capacity",
                reason: "must be at least 1".into(),
            });
        }
        if !(0.0..=1.0).contains(&sampling_rate) {
            return Err(Error::InvalidSetting {
                name: "payload_sampling_rate",
                reason: format!("must be between 0 and 1, got {sampling_rate}"),
            });
        }
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(PayloadCounters::default());
        tokio::spawn(writer(sinks, rx, flush_interval, counters.clone()));
        Ok(PayloadLogger {
            tx,
            sampling_rate,
            seq: AtomicU64::new(0),
            counters,
        })
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<PayloadCounters> {
        &self.counters
    }

    /// Whether the next request is logged: a deterministic low-discrepancy draw, so a rate
    /// of 0.25 logs exactly every fourth request on average without a random generator lock.
    pub(crate) fn sample(&self) -> bool {
        if self.sampling_rate >= 1.0 {
            return true;
        }
        if self.sampling_rate <= 0.0 {
            return false;
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        // Golden-ratio sequence: fractional parts of n·φ are evenly spread over [0, 1).
        let u = (n as f64 * 0.618_033_988_749_894_9).fract();
        u < self.sampling_rate
    }

    /// Hands a scored request to the writer without waiting; counts it as dropped when the
    /// queue is full.
    pub(crate) fn offer(&self, pending: Pending) {
        let rows = pending.frame.n_rows() as u64;
        if self.tx.try_send(Msg::Request(Box::new(pending))).is_err() {
            self.counters.dropped.fetch_add(rows, Ordering::Relaxed);
            metrics::counter!(PAYLOAD_DROPPED).increment(rows);
        }
    }

    /// Writes what is queued, flushes and closes the sinks. Requests offered afterwards are
    /// dropped.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(
    mut sinks: Vec<Box<dyn InferenceSink>>,
    mut rx: mpsc::Receiver<Msg>,
    flush_interval: Duration,
    counters: Arc<PayloadCounters>,
) {
    let mut offset = 0u64;
    let mut dirty = false;
    let mut next_flush = Instant::now() + flush_interval;
    loop {
        let msg = tokio::time::timeout_at(next_flush.into(), rx.recv()).await;
        match msg {
            Ok(Some(Msg::Request(p))) => {
                let records = records(*p, &mut offset);
                let n = records.len() as u64;
                let mut ok = true;
                for sink in sinks.iter_mut() {
                    if let Err(e) = sink.write_batch(&records).await {
                        tracing::warn!(sink = %sink.describe(), error = %e, "payload sink failed; records dropped");
                        ok = false;
                    }
                }
                if ok {
                    counters.written.fetch_add(n, Ordering::Relaxed);
                    metrics::counter!(PAYLOAD_RECORDS).increment(n);
                } else {
                    counters.dropped.fetch_add(n, Ordering::Relaxed);
                    metrics::counter!(PAYLOAD_DROPPED).increment(n);
                }
                dirty = true;
            }
            Ok(Some(Msg::Close(done))) => {
                // Everything sent before the close message is already written (the channel is FIFO).
                for sink in sinks.iter_mut() {
                    if let Err(e) = sink.close().await {
                        tracing::warn!(sink = %sink.describe(), error = %e, "payload sink failed to close");
                    }
                }
                let _ = done.send(());
                return;
            }
            Ok(None) => {
                for sink in sinks.iter_mut() {
                    let _ = sink.close().await;
                }
                return;
            }
            Err(_elapsed) => {
                if dirty {
                    for sink in sinks.iter_mut() {
                        if let Err(e) = sink.flush().await {
                            tracing::warn!(sink = %sink.describe(), error = %e, "payload sink failed to flush");
                        }
                    }
                    dirty = false;
                }
                next_flush = Instant::now() + flush_interval;
            }
        }
    }
}

fn records(p: Pending, offset: &mut u64) -> Vec<InferenceRecord> {
    let outputs = crate::output::outputs_per_row(&p.predictions);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    outputs
        .into_iter()
        .enumerate()
        .map(|(r, outputs)| {
            *offset += 1;
            InferenceRecord {
                correlation_id: correlation_id.clone(),
                request_id: p.request_id.clone(),
                timestamp_ms: p.timestamp_ms,
                event_timestamp_ms: None,
                model_name: p.model_name.clone(),
                model_version: p.model_version.clone(),
                position: SourcePosition {
                    partition: 0,
                    offset: *offset - 1,
                },
                inputs: row_inputs(&p.frame, r),
                outputs,
                latency_ms: p.latency_ms,
            }
        })
        .collect()
}

fn row_inputs(frame: &Frame, row: usize) -> Map<String, Json> {
    frame
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let v = match frame.value(row, i) {
                Some(ml_core::Value::Float(x)) => {
                    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
                }
                Some(ml_core::Value::Int(x)) => x.into(),
                Some(ml_core::Value::Bool(x)) => x.into(),
                Some(ml_core::Value::Str(x)) => x.into(),
                Some(ml_core::Value::Null) | None => Json::Null,
            };
            (field.name.clone(), v)
        })
        .collect()
}
