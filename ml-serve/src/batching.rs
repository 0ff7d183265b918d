//! Adaptive batching: concurrent single-row requests coalesced into one model call.
//!
//! A request of one row hands its frame to a queue and waits for its answer. A worker takes
//! the first request from the queue and then, **only while more scoring requests are in flight
//! than the workers hold** (others are being decoded and will arrive in a moment), keeps
//! collecting until the batch has `max_batch` rows or `max_wait` has passed. With one client the
//! batch closes at once and no latency is added; under load the model is called once for many
//! rows. Requests for different models (a swap in between, several deployments) are scored in
//! separate calls. Workers collect one at a time and score in parallel.
//!
//! Waits of a few hundred microseconds are below the 1 ms resolution of tokio's timers, so a
//! collecting worker yields to the scheduler in a loop until the deadline: it spends at most
//! `max_wait` of one core, and only while requests are arriving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ml_core::{Frame, Model, Predictions, Value};
use ndarray::{Array1, Axis};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Error, Result};
use crate::metrics::BATCH_ROWS;
use crate::state::Permits;

/// Settings of adaptive batching.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Most rows in one model call. Default 32; at most 64 (larger batches leave the request
    /// task for the blocking pool anyway).
    pub max_batch: usize,
    /// Longest time the first request of a batch waits for others. Default 300 µs, well below
    /// the 1–2 ms latency target.
    pub max_wait: Duration,
    /// Workers collecting and scoring batches. Default: one per core.
    pub workers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 32,
            max_wait: Duration::from_micros(300),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl BatchConfig {
    /// Checks the ranges.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(Error::InvalidSetting {
                name,
                reason: reason.into(),
            })
        };
        if !(1..=64).contains(&self.max_batch) {
            return bad("batch_max_size", "must be from 1 to 64");
        }
        if self.max_wait > Duration::from_millis(10) {
            return bad(
                "batch_max_wait",
                "must be at most 10 ms (a few hundred µs is typical)",
            );
        }
        if self.workers == 0 {
            return bad("batch_workers", "must be at least 1");
        }
        Ok(())
    }
}

type Answer = (Frame, ml_core::Result<Predictions>);

#[derive(Debug)]
struct Job {
    model: Arc<dyn Model>,
    frame: Frame,
    reply: oneshot::Sender<Answer>,
}

/// The queue and its workers (started with the first request, on its runtime).
#[derive(Debug)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
    started: AtomicBool,
}

#[derive(Debug)]
struct Shared {
    config: BatchConfig,
    rx: Mutex<mpsc::UnboundedReceiver<Job>>,
    /// The server's scoring permits: what is in flight.
    permits: Arc<Permits>,
    /// Requests the workers hold (collected or being scored).
    held: AtomicUsize,
}

impl Batcher {
    pub(crate) fn start(config: BatchConfig, permits: Arc<Permits>) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        Batcher {
            tx,
            shared: Arc::new(Shared {
                config,
                rx: Mutex::new(rx),
                permits,
                held: AtomicUsize::new(0),
            }),
            started: AtomicBool::new(false),
        }
    }

    /// Scores a one-row `frame` with `model` in a batch; gives the frame back with the
    /// answer, or an error when the workers are gone (a bug).
    pub(crate) async fn predict(&self, model: Arc<dyn Model>, frame: Frame) -> ml_core::Result<Answer> {
        if !self.started.swap(true, Ordering::AcqRel) {
            for _ in 0..self.shared.config.workers {
                tokio::spawn(worker(self.shared.clone()));
            }
        }
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { model, frame, reply }) {
            let p = job.model.predict(&job.frame);
            return Ok((job.frame, p));
        }
        answer
            .await
            .map_err(|_| ml_core::Error::Internal("the batching worker stopped".into()))
    }
}

async fn worker(shared: Arc<Shared>) {
    loop {
        let jobs = {
            let mut rx = shared.rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            shared.held.fetch_add(1, Ordering::AcqRel);
            let mut jobs = vec![first];
            let deadline = Instant::now() + shared.config.max_wait;
            while jobs.len() < shared.config.max_batch {
                match rx.try_recv() {
                    Ok(j) => {
                        shared.held.fetch_add(1, Ordering::AcqRel);
                        jobs.push(j);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                let in_flight = shared.permits.in_flight();
                if in_flight <= shared.held.load(Ordering::Acquire) || Instant::now() >= deadline {
                    break;
                }
                tokio::task::yield_now().await;
            }
            jobs
        };
        let n = jobs.len();
        run(jobs);
        shared.held.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Scores `jobs`: one call per model, and each job answered with its own row.
fn run(mut jobs: Vec<Job>) {
    while !jobs.is_empty() {
        let model = jobs[0].model.clone();
        let (group, rest): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| Arc::ptr_eq(&j.model, &model));
        jobs = rest;
        metrics::histogram!(BATCH_ROWS).record(group.len() as f64);
        if group.len() == 1 {
            for j in group {
                let p = j.model.predict(&j.frame);
                let _ = j.reply.send((j.frame, p));
            }
            continue;
        }
        match predict_together(model.as_ref(), &group) {
            Some(p) => {
                for (r, j) in group.into_iter().enumerate() {
                    let _ = j.reply.send((j.frame, Ok(row(&p, r))));
                }
            }
            // One call failed: each request gets its own answer (and its own error).
            None => {
                for j in group {
                    let p = j.model.predict(&j.frame);
                    let _ = j.reply.send((j.frame, p));
                }
            }
        }
    }
}

/// The rows of `jobs` (one each) as one frame, scored in one call.
fn predict_together(model: &dyn Model, jobs: &[Job]) -> Option<Predictions> {
    let schema = jobs[0].frame.schema().clone();
    let width = schema.len();
    let rows: Vec<Vec<Value>> = jobs
        .iter()
        .map(|j| {
            (0..width)
                .map(|i| j.frame.value(0, i).unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    let frame = Frame::from_rows(schema, &rows).ok()?;
    let p = model.predict(&frame).ok()?;
    (p.len() == jobs.len()).then_some(p)
}

/// Row `r` of `p`.
fn row(p: &Predictions, r: usize) -> Predictions {
    match p {
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => Predictions::Classification {
            labels: labels.clone(),
            predicted: vec![predicted[r]],
            probabilities: probabilities.select(Axis(0), &[r]),
        },
        Predictions::Regression { values } => Predictions::Regression {
            values: Array1::from(vec![values[r]]),
        },
    }
}
