//! The streaming pipeline: source → decode → micro-batch → score → sinks → ordered commit.
//!
//! Three stages run concurrently, joined by bounded channels:
//! 1. the **reader** owns the source: it reads up to `batch_size` events or until `max_wait` and
//!    sends the batch on — waiting when the queue is full, so a slow sink slows the source and
//!    memory stays bounded (at most `queue_capacity + in_flight + 2` batches are read ahead of
//!    the sinks, however long a sink is down: [`PipelineConfig::max_pending_events`], counted
//!    live in [`PipelineCounters::pending_events`]). It also applies the checkpoints that the writer sends back, between reads.
//! 2. the **workers**: up to `in_flight` batches are processed at once, on the runtime's worker
//!    threads — decoded against the schema (bad events become dead letters), scored, and their
//!    outputs serialized — so every core works on the costly part; results are taken in order.
//! 3. the **writer** hands each scored batch to every sink (retrying with backoff, then failing
//!    loudly), sends dead letters to the dead-letter sink, and every `commit_interval` (or
//!    `commit_every` records) flushes every sink and only then asks the reader to commit the
//!    positions written: at-least-once delivery. The interval also runs while no batch comes:
//!    an idle stream's last batch is flushed and committed `commit_interval` after the previous
//!    commit, not held until the next event (its consumer-group lag would stay up, and a
//!    buffering sink would keep its records in memory). When the source asks for a commit now
//!    ([`StreamSource::commit_wanted`]: a Kafka consumer giving partitions back), the writer
//!    flushes and commits after every batch, and at once when no batch is coming.
//!
//! Shutdown ([`ShutdownHandle::shutdown`], or a finite source running dry) stops reading,
//! finishes the batches in flight, flushes, and commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ml_core::{Schema, Scorer};
use tokio::sync::mpsc;

use crate::batch::{BatchInfo, ScoredBatch};
use crate::decode::{Decoded, decode};
use crate::error::{Error, Result};
use crate::traits::{Checkpoint, DeadLetter, Event, InferenceSink, StreamSource};

/// Named crash points of the pipeline (see [`ml_core::failpoint`]).
pub mod failpoints {
    /// After a batch was written to the first sink, before the others.
    pub const MID_BATCH: &str = "stream.mid_batch";
    /// After every sink wrote a batch, before the flush.
    pub const AFTER_WRITE: &str = "stream.after_write_before_flush";
    /// After every sink flushed, before the commit.
    pub const AFTER_FLUSH: &str = "stream.after_flush_before_commit";
}

/// How sink failures are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 5.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled each time. Default 100 ms.
    pub initial_backoff: Duration,
    /// Longest wait. Default 5 s.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Settings of a [`Pipeline`].
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Most events per batch. Default 512.
    pub batch_size: usize,
    /// Longest wait to fill a batch. Default 20 ms.
    pub max_wait: Duration,
    /// Batches queued between the reader and the workers. Default 4.
    pub queue_capacity: usize,
    /// Batches decoded and scored at once. Default 2 (the cores of the reference machine).
    pub in_flight: usize,
    /// Longest time between commits. Default 5 s (DESIGN: commit_interval).
    pub commit_interval: Duration,
    /// Commit after this many events even before `commit_interval`. Default none.
    pub commit_every: Option<u64>,
    /// Sink retries.
    pub retry: RetryPolicy,
    /// Model name recorded in every record.
    pub model_name: String,
    /// Model version recorded in every record.
    pub model_version: String,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: 512,
            max_wait: Duration::from_millis(20),
            queue_capacity: 4,
            in_flight: 2,
            commit_interval: Duration::from_secs(5),
            commit_every: None,
            retry: RetryPolicy::default(),
            model_name: "model".into(),
            model_version: "1".into(),
        }
    }
}

impl PipelineConfig {
    /// Checks the ranges.
    pub fn check(&self) -> Result<()> {
        let positive = |name: &'static str, v: usize| {
            if v == 0 {
                Err(Error::InvalidSetting {
                    name,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("batch_size", self.batch_size)?;
        positive("queue_capacity", self.queue_capacity)?;
        positive("in_flight", self.in_flight)?;
        positive("retry.max_attempts", self.retry.max_attempts as usize)?;
        Ok(())
    }

    /// The most events the pipeline holds at once, however long a sink is down: the batches
    /// in the queue, those being scored, the one in the writer's hands (retried while a sink
    /// is down), and the one the reader holds while it waits for room in the queue — each at
    /// most `batch_size` events. ([`PipelineCounters::pending_events`] is the live count.)
    pub fn max_pending_events(&self) -> u64 {
        (self.queue_capacity as u64 + self.in_flight as u64 + 2) * self.batch_size as u64
    }
}

/// Counters of a running pipeline, readable from any thread (and mirrored to the `metrics`
/// facade as `streamscore_stream_*`).
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Events read from the source.
    pub events_in: AtomicU64,
    /// Records written to the sinks.
    pub records_out: AtomicU64,
    /// Events set aside as dead letters.
    pub dead_letters: AtomicU64,
    /// Batches scored.
    pub batches: AtomicU64,
    /// Commits made.
    pub commits: AtomicU64,
    /// Scoring time of the last batch, microseconds.
    pub last_score_us: AtomicU64,
    /// How far the source is behind its end, in the source's unit (bytes for files, events
    /// for partitioned logs), when the source can tell ([`StreamSource::lag`]).
    pub lag: AtomicU64,
    /// Events read from the source and not yet written to every sink (queued, being scored,
    /// or in the writer's hands — also while a sink is down and retried): the pipeline's
    /// memory. Never above [`PipelineConfig::max_pending_events`].
    pub pending_events: AtomicU64,
    /// The highest [`PipelineCounters::pending_events`] seen since the start.
    pub pending_events_max: AtomicU64,
}

impl PipelineCounters {
    fn add(&self, counter: &AtomicU64, name: &'static str, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(name).increment(n);
    }

    /// Counts `n` events read (`read`) or written (`!read`) in the pending gauge.
    fn pending(&self, n: u64, read: bool) {
        let now = if read {
            let now = self.pending_events.fetch_add(n, Ordering::SeqCst) + n;
            self.pending_events_max.fetch_max(now, Ordering::SeqCst);
            now
        } else {
            self.pending_events.fetch_sub(n, Ordering::SeqCst) - n
        };
        metrics::gauge!("streamscore_stream_pending_events").set(now as f64);
    }
}

/// What a finished pipeline did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// Events read.
    pub events_in: u64,
    /// Records written to every sink.
    pub records_out: u64,
    /// Events set aside.
    pub dead_letters: u64,
    /// Commits made.
    pub commits: u64,
    /// The last committed checkpoint.
    pub checkpoint: Checkpoint,
}

/// Stops a running pipeline gracefully.
#[derive(Debug, Clone, Default)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Asks the pipeline to stop reading, finish what is in flight, flush and commit.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A configured pipeline; [`Pipeline::run`] drives it to the end.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    schema: Arc<Schema>,
    scorer: Arc<dyn Scorer>,
    sinks: Vec<Box<dyn InferenceSink>>,
    dead_letter: Option<Box<dyn InferenceSink>>,
    counters: Arc<PipelineCounters>,
    shutdown: ShutdownHandle,
}

/// Events on their way from the reader to a worker.
struct RawBatch {
    events: Vec<Event>,
    read_at_ms: i64,
    read_at: Instant,
}

/// One group of a worker's result (a batch splits into groups only when it mixes formats).
struct Part {
    /// The scored rows, when there were any.
    batch: Option<ScoredBatch>,
    /// Events set aside: not decodable, invalid, or refused by the scorer.
    dead: Vec<DeadLetter>,
    /// When the events were read (for end-to-end latency).
    read_at_ms: i64,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Pipeline {
    /// A pipeline scoring with `scorer` (whose requests follow `schema`) into `sinks`.
    pub fn new(
        config: PipelineConfig,
        schema: Arc<Schema>,
        scorer: Arc<dyn Scorer>,
        sinks: Vec<Box<dyn InferenceSink>>,
    ) -> Result<Pipeline> {
        config.check()?;
        if sinks.is_empty() {
            return Err(Error::InvalidSetting {
                name: "sinks",
                reason: "a pipeline needs at least one sink".into(),
            });
        }
        Ok(Pipeline {
            config,
            schema,
            scorer,
            sinks,
            dead_letter: None,
            counters: Arc::default(),
            shutdown: ShutdownHandle::default(),
        })
    }

    /// Sends dead letters to `sink` (builder style). Without one, dead letters are printed to
    /// standard error as JSON lines, so none is lost silently.
    pub fn with_dead_letter(mut self, sink: Box<dyn InferenceSink>) -> Self {
        self.dead_letter = Some(sink);
        self
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<PipelineCounters> {
        self.counters.clone()
    }

    /// A handle that stops the pipeline gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs until the source is exhausted or shutdown is asked, then drains, flushes and
    /// commits. Must be called inside a Tokio runtime (multi-threaded for parallel scoring).
    pub async fn run(self, source: Box<dyn StreamSource>) -> Result<PipelineReport> {
        let Pipeline {
            config,
            schema,
            scorer,
            mut sinks,
            mut dead_letter,
            counters,
            shutdown,
        } = self;
        let (batch_tx, batch_rx) = mpsc::channel::<RawBatch>(config.queue_capacity);
        let (commit_tx, commit_rx) = mpsc::unbounded_channel::<Checkpoint>();
        let urgent = Arc::new(Urgent::default());
        let reader = tokio::spawn(read_loop(
            source,
            config.clone(),
            counters.clone(),
            shutdown.clone(),
            batch_tx,
            commit_rx,
            urgent.clone(),
        ));

        // Boxed so it can be dropped early: dropping it closes the batch queue, which releases a
        // reader blocked on a full queue when the writer stops on a sink failure.
        let mut scored = Box::pin(
            futures::stream::unfold(batch_rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
                .map(|raw| {
                    let scorer = scorer.clone();
                    let schema = schema.clone();
                    let names = (config.model_name.clone(), config.model_version.clone());
                    tokio::spawn(work(raw, schema, scorer, names))
                })
                .buffered(config.in_flight),
        );

        let mut writer = Writer {
            config: &config,
            counters: &counters,
            pending: Checkpoint::default(),
            committed: Checkpoint::default(),
            since_commit: 0,
            last_commit: Instant::now(),
            commit_tx,
            urgent: &urgent,
        };
        let mut failure = None;
        loop {
            // (An interval too long to add to a time means: no timed commit.)
            let commit_due = writer.last_commit.checked_add(config.commit_interval);
            let uncommitted = writer.pending != writer.committed && commit_due.is_some();
            let commit_due = commit_due.unwrap_or(writer.last_commit);
            let joined = tokio::select! {
                joined = scored.next() => match joined {
                    Some(j) => j,
                    None => break,
                },
                // The source wants a commit now (partitions being revoked) and no batch came.
                () = urgent.notify.notified() => {
                    if urgent.flag.swap(false, Ordering::SeqCst)
                        && let Err(e) = writer.commit(&mut sinks, dead_letter.as_mut(), false).await
                    {
                        failure = Some(e);
                        shutdown.shutdown();
                        break;
                    }
                    continue;
                }
                // Written but not committed, and `commit_interval` has passed since the last
                // commit with no batch to trigger one: flush and commit now. A sink that fails
                // here is retried by the policy like any flush; after a commit nothing is
                // pending, so the branch sleeps until the next batch is written.
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(commit_due)),
                    if uncommitted =>
                {
                    if let Err(e) = writer.commit(&mut sinks, dead_letter.as_mut(), false).await {
                        failure = Some(e);
                        shutdown.shutdown();
                        break;
                    }
                    continue;
                }
            };
            let result = match joined {
                Ok((events, parts)) => {
                    let mut result = Ok(());
                    for part in parts {
                        result = writer.write(part, &mut sinks, dead_letter.as_mut()).await;
                        if result.is_err() {
                            break;
                        }
                    }
                    if result.is_ok() {
                        counters.pending(events, false);
                    }
                    result
                }
                Err(e) => Err(Error::Internal(format!("scoring task failed: {e}"))),
            };
            if let Err(e) = result {
                failure = Some(e);
                shutdown.shutdown();
                break;
            }
        }
        if failure.is_none()
            && let Err(e) = writer.commit(&mut sinks, dead_letter.as_mut(), true).await
        {
            failure = Some(e);
        }
        let Writer {
            commit_tx, committed, ..
        } = writer;
        drop(commit_tx);
        // Let the reader finish: it drains remaining commits, then returns.
        drop(scored);
        let read_result = reader
            .await
            .map_err(|e| Error::Internal(format!("reader task failed: {e}")))?;
        if let Some(e) = failure {
            return Err(e);
        }
        read_result?;
        for sink in sinks.iter_mut() {
            sink.close().await?;
        }
        if let Some(d) = dead_letter.as_mut() {
            d.close().await?;
        }
        Ok(PipelineReport {
            events_in: counters.events_in.load(Ordering::Relaxed),
            records_out: counters.records_out.load(Ordering::Relaxed),
            dead_letters: counters.dead_letters.load(Ordering::Relaxed),
            commits: counters.commits.load(Ordering::Relaxed),
            checkpoint: committed,
        })
    }
}

/// Decodes, scores and serializes one batch: the work that runs on every core. Returns the
/// batch's event count (for the pending gauge) with its parts.
async fn work(
    raw: RawBatch,
    schema: Arc<Schema>,
    scorer: Arc<dyn Scorer>,
    (model_name, model_version): (String, String),
) -> (u64, Vec<Part>) {
    let RawBatch {
        events,
        read_at_ms,
        read_at,
    } = raw;
    let count = events.len() as u64;
    let groups = decode(&events, &schema, read_at_ms);
    drop(events);
    let mut parts = Vec::with_capacity(groups.len());
    for group in groups {
        let Decoded {
            frame,
            rows,
            inputs_json,
            input_ends,
            mut dead,
        } = group;
        let Some(frame) = frame else {
            parts.push(Part {
                batch: None,
                dead,
                read_at_ms,
            });
            continue;
        };
        let started = Instant::now();
        let scored = match scorer.score(&frame).await {
            Ok(p) if p.len() == rows.len() => Ok(p),
            Ok(p) => Err(format!(
                "the scorer returned {} predictions for {} rows",
                p.len(),
                rows.len()
            )),
            Err(e) => Err(e.to_string()),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let reason = match scored {
            Ok(predictions) => {
                let info = BatchInfo {
                    correlation_id: uuid::Uuid::new_v4().to_string(),
                    timestamp_ms: now_ms(),
                    model_name: model_name.clone(),
                    model_version: model_version.clone(),
                    latency_ms,
                    read_at,
                };
                let batch = ScoredBatch::assemble(info, rows, frame, predictions, inputs_json, input_ends);
                parts.push(Part {
                    batch: Some(batch),
                    dead,
                    read_at_ms,
                });
                continue;
            }
            Err(reason) => reason,
        };
        // The model refused the whole batch: every row is set aside with the reason.
        let now = now_ms();
        let mut start = 0;
        for ((position, _), &end) in rows.iter().zip(&input_ends) {
            dead.push(DeadLetter {
                position: position.clone(),
                payload: String::from_utf8_lossy(&inputs_json[start..end]).into_owned(),
                reason: format!("scoring failed: {reason}"),
                timestamp_ms: now,
            });
            start = end;
        }
        parts.push(Part {
            batch: None,
            dead,
            read_at_ms,
        });
    }
    (count, parts)
}

async fn read_loop(
    mut source: Box<dyn StreamSource>,
    config: PipelineConfig,
    counters: Arc<PipelineCounters>,
    shutdown: ShutdownHandle,
    batch_tx: mpsc::Sender<RawBatch>,
    mut commit_rx: mpsc::UnboundedReceiver<Checkpoint>,
    urgent: Arc<Urgent>,
) -> Result<()> {
    let mut read_error = None;
    while !shutdown.is_set() && !source.is_exhausted() {
        while let Ok(cp) = commit_rx.try_recv() {
            source.commit(&cp).await?;
        }
        let deadline = Instant::now() + config.max_wait;
        let events = match source.next_batch(config.batch_size, deadline).await {
            Ok(e) => e,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        if source.commit_wanted() {
            urgent.flag.store(true, Ordering::SeqCst);
            urgent.notify.notify_one();
        }
        if events.is_empty() {
            continue;
        }
        counters.add(
            &counters.events_in,
            "streamscore_stream_events_in_total",
            events.len() as u64,
        );
        counters.pending(events.len() as u64, true);
        if let Some(lag) = source.lag() {
            counters.lag.store(lag, Ordering::Relaxed);
            metrics::gauge!("streamscore_stream_lag").set(lag as f64);
        }
        let batch = RawBatch {
            events,
            read_at_ms: now_ms(),
            read_at: Instant::now(),
        };
        // Waits while the queue is full: backpressure.
        if batch_tx.send(batch).await.is_err() {
            // The writer stopped (a sink failed); it reports why.
            shutdown.shutdown();
            break;
        }
    }
    drop(batch_tx);
    // Apply the commits of everything still in flight, until the writer is done.
    while let Some(cp) = commit_rx.recv().await {
        source.commit(&cp).await?;
    }
    match read_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A source's request to commit now ([`StreamSource::commit_wanted`]), from the reader to the
/// writer.
#[derive(Default)]
struct Urgent {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

struct Writer<'a> {
    urgent: &'a Urgent,
    config: &'a PipelineConfig,
    counters: &'a PipelineCounters,
    pending: Checkpoint,
    committed: Checkpoint,
    since_commit: u64,
    last_commit: Instant,
    commit_tx: mpsc::UnboundedSender<Checkpoint>,
}

impl Writer<'_> {
    async fn write(
        &mut self,
        part: Part,
        sinks: &mut [Box<dyn InferenceSink>],
        mut dead_sink: Option<&mut Box<dyn InferenceSink>>,
    ) -> Result<()> {
        let Part {
            batch,
            dead,
            read_at_ms,
        } = part;
        if let Some(batch) = &batch {
            let latency_ms = batch.info().latency_ms;
            self.counters
                .add(&self.counters.batches, "streamscore_stream_batches_total", 1);
            self.counters
                .last_score_us
                .store((latency_ms * 1e3) as u64, Ordering::Relaxed);
            metrics::histogram!("streamscore_stream_score_seconds").record(latency_ms / 1e3);
            metrics::histogram!("streamscore_stream_batch_size").record(batch.len() as f64);
            for (i, sink) in sinks.iter_mut().enumerate() {
                retry(&self.config.retry, sink.as_mut(), SinkOp::Scored(batch)).await?;
                if i == 0 {
                    ml_core::failpoint::hit(failpoints::MID_BATCH);
                }
            }
            self.counters.add(
                &self.counters.records_out,
                "streamscore_stream_records_out_total",
                batch.len() as u64,
            );
            if let Some((_, event_ts)) = batch.rows().last() {
                let lag = now_ms() - event_ts.unwrap_or(read_at_ms);
                metrics::histogram!("streamscore_stream_end_to_end_seconds").record(lag as f64 / 1e3);
            }
        }
        if !dead.is_empty() {
            match dead_sink.as_mut() {
                Some(d) => retry(&self.config.retry, d.as_mut(), SinkOp::DeadLetters(&dead)).await?,
                None => {
                    for letter in &dead {
                        eprintln!(
                            "dead letter: {}",
                            serde_json::to_string(letter).unwrap_or_default()
                        );
                    }
                }
            }
            self.counters.add(
                &self.counters.dead_letters,
                "streamscore_stream_dead_letters_total",
                dead.len() as u64,
            );
        }
        ml_core::failpoint::hit(failpoints::AFTER_WRITE);
        let positions = batch
            .iter()
            .flat_map(|b| b.rows().iter().map(|(p, _)| p))
            .chain(dead.iter().map(|d| &d.position));
        let mut n = 0;
        for p in positions {
            self.pending.advance(p.partition, p.offset);
            n += 1;
        }
        self.since_commit += n;
        let due = self.urgent.flag.swap(false, Ordering::SeqCst)
            || self.last_commit.elapsed() >= self.config.commit_interval
            || self
                .config
                .commit_every
                .is_some_and(|every| self.since_commit >= every);
        if due {
            self.commit(sinks, dead_sink, false).await?;
        }
        Ok(())
    }

    /// Flushes every sink, then sends the pending checkpoint to the reader.
    async fn commit(
        &mut self,
        sinks: &mut [Box<dyn InferenceSink>],
        dead_sink: Option<&mut Box<dyn InferenceSink>>,
        last: bool,
    ) -> Result<()> {
        if self.pending == self.committed && !last {
            self.last_commit = Instant::now();
            return Ok(());
        }
        for sink in sinks.iter_mut() {
            retry(&self.config.retry, sink.as_mut(), SinkOp::Flush).await?;
        }
        if let Some(d) = dead_sink {
            retry(&self.config.retry, d.as_mut(), SinkOp::Flush).await?;
        }
        ml_core::failpoint::hit(failpoints::AFTER_FLUSH);
        if self.pending != self.committed {
            // The reader is gone only when it failed; its error is reported by `run`.
            let _ = self.commit_tx.send(self.pending.clone());
            self.committed = self.pending.clone();
            self.counters
                .add(&self.counters.commits, "streamscore_stream_commits_total", 1);
        }
        self.since_commit = 0;
        self.last_commit = Instant::now();
        Ok(())
    }
}

/// What to do to a sink, retried by [`retry`].
#[derive(Clone, Copy)]
enum SinkOp<'a> {
    Scored(&'a ScoredBatch),
    DeadLetters(&'a [DeadLetter]),
    Flush,
}

/// Runs `op` on `sink` until it succeeds or the policy's attempts are spent, doubling the wait
/// each time with ±25 % jitter (so many writers retrying one service do not retry in lockstep).
async fn retry(policy: &RetryPolicy, sink: &mut dyn InferenceSink, op: SinkOp<'_>) -> Result<()> {
    let mut wait = policy.initial_backoff;
    let mut attempt = 1;
    loop {
        let result = match op {
            SinkOp::Scored(batch) => sink.write_scored(batch).await,
            SinkOp::DeadLetters(letters) => sink.write_dead_letters(letters).await,
            SinkOp::Flush => sink.flush().await,
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= policy.max_attempts => {
                return Err(Error::SinkFailed {
                    sink: sink.describe(),
                    attempts: attempt,
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                eprintln!(
                    "warning: {} failed (attempt {attempt} of {}): {e}; retrying",
                    sink.describe(),
                    policy.max_attempts
                );
                let jitter = 0.75 + 0.5 * splitmix_unit(u64::from(attempt) ^ now_ms() as u64);
                tokio::time::sleep(wait.mul_f64(jitter)).await;
                wait = (wait * 2).min(policy.max_backoff);
                attempt += 1;
            }
        }
    }
}

fn splitmix_unit(seed: u64) -> f64 {
    (ml_core::rng::splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64
}
