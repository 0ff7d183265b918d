//! What the telemetry exporters (Application Insights with feature `azure`, and OTLP) share: a
//! bounded queue that never blocks the caller, a background task that sends batches, retries
//! what the receiver asks to retry (with backoff and `Retry-After`), logs and counts what it
//! refuses, a flush and a shutdown bounded in time ([`BatchSettings`], [`ExportStats`]); and a
//! `metrics`-facade recorder that records into another recorder and aggregates every signal for
//! the exporters ([`ForwardingRecorder`]).
//!
//! Each exporter supplies its wire format as a `Protocol`: how aggregated metrics become its
//! items, and how a batch of items is posted and the answer read.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::pipeline::RetryPolicy;

/// Queueing, batching, retry and timeout settings of an exporter.
#[derive(Clone, Debug)]
pub struct BatchSettings {
    /// Items waiting to be sent; more are dropped and counted. Default 10,000.
    pub max_queue: usize,
    /// Most items per call. Default 500.
    pub max_batch: usize,
    /// Longest time an item waits before it is sent. Default 5 s.
    pub send_interval: Duration,
    /// How often the forwarded `metrics` are aggregated and sent. Default 60 s.
    pub metrics_interval: Duration,
    /// Retries of a call the receiver asks to retry, or lost on the network. Default 5
    /// attempts, 500 ms doubling to 8 s.
    pub retry: RetryPolicy,
    /// Timeout of one call. Default 10 s.
    pub timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_queue: 10_000,
            max_batch: 500,
            send_interval: Duration::from_secs(5),
            metrics_interval: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 5,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(8),
            },
            timeout: Duration::from_secs(10),
        }
    }
}

/// What an exporter has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Items queued.
    pub enqueued: u64,
    /// Items the receiver accepted.
    pub accepted: u64,
    /// Items the receiver refused, or that failed after every retry.
    pub failed: u64,
    /// Items dropped because the queue was full or the exporter had stopped.
    pub dropped: u64,
    /// Calls retried.
    pub retries: u64,
    /// The last export error, as logged.
    pub last_error: Option<String>,
}

/// One aggregated signal of the `metrics` facade since the previous drain.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    /// Name and labels.
    pub key: Key,
    /// The aggregate.
    pub value: PointValue,
    /// Start of the interval, Unix nanoseconds.
    pub start_ns: u64,
    /// End of the interval (when it was drained), Unix nanoseconds.
    pub time_ns: u64,
}

/// The aggregate of one signal over an interval.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A counter's increase (or its latest absolute value).
    Counter(u64),
    /// A gauge's last value.
    Gauge(f64),
    /// A histogram's values.
    Histogram(HistogramStats),
}

/// Count, sum, extremes and sum of squares of the values a histogram recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramStats {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_sq: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl HistogramStats {
    /// The population standard deviation.
    pub fn std_dev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        (self.sum_sq / n - mean * mean).max(0.0).sqrt()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The `Retry-After` of an answer, in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends a call; its status, `Retry-After` and text, or the network error (reqwest's messages
/// hold the URL, never the headers or the body).
pub(crate) async fn post(
    call: reqwest::RequestBuilder,
) -> std::result::Result<(u16, Option<Duration>, String), String> {
    let r = call.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let retry_after = retry_after(r.headers());
    Ok((status, retry_after, r.text().await.unwrap_or_default()))
}

/// The first 300 characters of an answer, for a log line.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

/// How a receiver answered one batch.
pub(crate) struct Answer<I> {
    /// Items accepted.
    pub accepted: u64,
    /// Items refused for good, and why.
    pub refused: Option<(u64, String)>,
    /// Items to send again, why, and the wait the receiver asked for.
    pub again: Vec<I>,
    pub again_reason: String,
    pub retry_after: Option<Duration>,
}

impl<I> Answer<I> {
    /// Every item accepted.
    pub fn accepted(n: usize) -> Self {
        Answer {
            accepted: n as u64,
            refused: None,
            again: Vec::new(),
            again_reason: String::new(),
            retry_after: None,
        }
    }

    /// Every item refused for good.
    pub fn refused(n: usize, reason: String) -> Self {
        Answer {
            refused: Some((n as u64, reason)),
            ..Answer::accepted(0)
        }
    }

    /// The whole batch to be sent again.
    pub fn retry(batch: Vec<I>, reason: String, retry_after: Option<Duration>) -> Self {
        Answer {
            again: batch,
            again_reason: reason,
            retry_after,
            ..Answer::accepted(0)
        }
    }
}

/// The wire format of an exporter.
#[async_trait]
pub(crate) trait Protocol: Send + Sync + 'static {
    /// One queued item.
    type Item: Send + Sync + 'static;
    /// The receiver's name in log lines.
    const NAME: &'static str;
    /// Counter of items by outcome (`accepted`, `failed`, `dropped`).
    const ITEMS_METRIC: &'static str;
    /// Counter of calls retried.
    const RETRIES_METRIC: &'static str;
    /// Items that must go in separate calls (different URLs) get different groups.
    fn group(&self, _item: &Self::Item) -> u8 {
        0
    }
    /// The items of the forwarded metrics drained at the end of an interval.
    fn metric_items(&self, points: Vec<MetricPoint>) -> Vec<Self::Item>;
    /// Posts one batch (all of one group) and reads the answer.
    async fn send(&self, http: &reqwest::Client, batch: Vec<Self::Item>) -> Answer<Self::Item>;
}

#[derive(Default)]
struct Counts {
    enqueued: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
}

enum Control {
    Flush(oneshot::Sender<()>),
    Shutdown(Instant, oneshot::Sender<()>),
}

struct Shared<P> {
    protocol: P,
    settings: BatchSettings,
    counts: Arc<Counts>,
    aggregator: Arc<Aggregator>,
}

/// What every exporter handle offers beyond queueing items: flush, bounded shutdown, counts,
/// and the forwarding of `metrics` signals. `AppInsights` and `Otlp` dereference to it; clones
/// share one queue and background task.
#[derive(Clone)]
pub struct ExportHandle {
    counts: Arc<Counts>,
    aggregator: Arc<Aggregator>,
    control: mpsc::UnboundedSender<Control>,
    timeout: Duration,
}

impl fmt::Debug for ExportHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportHandle").finish_non_exhaustive()
    }
}

impl ExportHandle {
    /// Sends everything queued so far and the forwarded metrics aggregated so far; returns when
    /// the receiver has answered for all of it (accepted, refused, or given up on after the
    /// retries).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes within `timeout`, then stops the background task. Items still unsent at the
    /// deadline are counted as failed and logged.
    pub async fn shutdown(&self, timeout: Duration) -> ExportStats {
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        if self.control.send(Control::Shutdown(deadline, tx)).is_ok() {
            // The worker keeps to the deadline itself; the margin covers one call in flight.
            let _ = tokio::time::timeout(timeout + self.timeout, rx).await;
        }
        self.stats()
    }

    /// Counts so far.
    pub fn stats(&self) -> ExportStats {
        let c = &self.counts;
        ExportStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            last_error: c.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }

    /// Where this exporter aggregates forwarded `metrics` signals: give it to a
    /// [`ForwardingRecorder`] (with other exporters' ones).
    pub fn forward(&self) -> MetricsForward {
        MetricsForward(self.aggregator.clone())
    }

    /// A `metrics` recorder that records into `inner` (the Prometheus recorder, say) and
    /// forwards every signal to this exporter alone.
    pub fn recorder<R: Recorder>(&self, inner: R) -> ForwardingRecorder<R> {
        ForwardingRecorder::new(inner, vec![self.forward()])
    }
}

/// The queue and background task of one exporter; clones share them.
pub(crate) struct Exporter<P: Protocol> {
    shared: Arc<Shared<P>>,
    data: mpsc::Sender<P::Item>,
    handle: ExportHandle,
}

impl<P: Protocol> Clone for Exporter<P> {
    fn clone(&self) -> Self {
        Exporter {
            shared: self.shared.clone(),
            data: self.data.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<P: Protocol> Exporter<P> {
    /// Starts the background task on the current Tokio runtime.
    pub fn start(protocol: P, settings: BatchSettings, name: &'static str) -> Result<Self> {
        if settings.max_queue == 0 || settings.max_batch == 0 {
            return Err(Error::InvalidSetting {
                name,
                reason: "max_queue and max_batch must be at least 1".into(),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::InvalidSetting {
            name,
            reason: "the exporter must be started inside a Tokio runtime".into(),
        })?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (data_tx, data_rx) = mpsc::channel(settings.max_queue);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let handle = ExportHandle {
            counts: Arc::default(),
            aggregator: Arc::new(Aggregator::new()),
            control: control_tx,
            timeout: settings.timeout,
        };
        let shared = Arc::new(Shared {
            protocol,
            settings,
            counts: handle.counts.clone(),
            aggregator: handle.aggregator.clone(),
        });
        let worker = Worker {
            shared: shared.clone(),
            http,
            buffer: Vec::new(),
        };
        runtime.spawn(worker.run(data_rx, control_rx));
        Ok(Exporter {
            shared,
            data: data_tx,
            handle,
        })
    }

    /// The wire format.
    pub fn protocol(&self) -> &P {
        &self.shared.protocol
    }

    /// Flush, shutdown, counts, forwarding.
    pub fn handle(&self) -> &ExportHandle {
        &self.handle
    }

    /// Queues one item; never waits. A full queue drops it and counts it.
    pub fn enqueue(&self, item: P::Item) {
        let counts = &self.shared.counts;
        match self.data.try_send(item) {
            Ok(()) => {
                counts.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(P::ITEMS_METRIC, "outcome" => "dropped").increment(1);
            }
        }
    }
}

struct Worker<P: Protocol> {
    shared: Arc<Shared<P>>,
    http: reqwest::Client,
    buffer: Vec<P::Item>,
}

impl<P: Protocol> Worker<P> {
    async fn run(mut self, mut data: mpsc::Receiver<P::Item>, mut control: mpsc::UnboundedReceiver<Control>) {
        let settings = self.shared.settings.clone();
        let mut send_tick = tokio::time::interval(settings.send_interval.max(Duration::from_millis(1)));
        let mut metrics_tick = tokio::time::interval(settings.metrics_interval.max(Duration::from_millis(1)));
        send_tick.tick().await;
        metrics_tick.tick().await;
        loop {
            tokio::select! {
                biased;
                Some(c) = control.recv() => {
                    let (deadline, reply, stop) = match c {
                        Control::Flush(reply) => (None, reply, false),
                        Control::Shutdown(deadline, reply) => (Some(deadline), reply, true),
                    };
                    while let Ok(e) = data.try_recv() {
                        self.buffer.push(e);
                    }
                    self.collect_metrics();
                    self.send_all(deadline).await;
                    let _ = reply.send(());
                    if stop {
                        return;
                    }
                }
                item = data.recv() => match item {
                    Some(e) => {
                        self.buffer.push(e);
                        if self.buffer.len() >= settings.max_batch {
                            self.send_all(None).await;
                        }
                    }
                    None => {
                        self.collect_metrics();
                        self.send_all(Some(Instant::now() + settings.timeout)).await;
                        return;
                    }
                },
                _ = send_tick.tick() => self.send_all(None).await,
                _ = metrics_tick.tick() => self.collect_metrics(),
            }
        }
    }

    fn collect_metrics(&mut self) {
        let points = self.shared.aggregator.drain();
        if points.is_empty() {
            return;
        }
        let items = self.shared.protocol.metric_items(points);
        self.shared
            .counts
            .enqueued
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        self.buffer.extend(items);
    }

    /// Sends the buffer in batches of one group each, in the order queued within a group.
    async fn send_all(&mut self, deadline: Option<Instant>) {
        while !self.buffer.is_empty() {
            let group = self.shared.protocol.group(&self.buffer[0]);
            let max = self.shared.settings.max_batch;
            let mut batch = Vec::new();
            let mut rest = Vec::new();
            for item in self.buffer.drain(..) {
                if batch.len() < max && self.shared.protocol.group(&item) == group {
                    batch.push(item);
                } else {
                    rest.push(item);
                }
            }
            self.buffer = rest;
            self.send(batch, deadline).await;
        }
    }

    fn fail(&self, n: u64, reason: String) {
        let counts = &self.shared.counts;
        counts.failed.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(P::ITEMS_METRIC, "outcome" => "failed").increment(n);
        eprintln!("warning: {} export: {n} items lost: {reason}", P::NAME);
        if let Ok(mut last) = counts.last_error.lock() {
            *last = Some(reason);
        }
    }

    /// Sends one batch, resending what the receiver asks to resend, until it is accepted,
    /// refused, out of attempts, or past `deadline`.
    async fn send(&self, mut batch: Vec<P::Item>, deadline: Option<Instant>) {
        let retry = &self.shared.settings.retry;
        let counts = &self.shared.counts;
        let mut wait = retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let answer = self.shared.protocol.send(&self.http, batch).await;
            if answer.accepted > 0 {
                counts.accepted.fetch_add(answer.accepted, Ordering::Relaxed);
                metrics::counter!(P::ITEMS_METRIC, "outcome" => "accepted").increment(answer.accepted);
            }
            if let Some((n, reason)) = answer.refused {
                self.fail(n, reason);
            }
            if answer.again.is_empty() {
                return;
            }
            batch = answer.again;
            let reason = answer.again_reason;
            let delay = answer.retry_after.map_or(wait, |r| r.max(wait));
            let past_deadline = deadline.is_some_and(|d| Instant::now() + delay > d);
            if attempt >= retry.max_attempts || past_deadline {
                return self.fail(batch.len() as u64, format!("{reason} (after {attempt} attempts)"));
            }
            eprintln!(
                "warning: {} answered {reason} (attempt {attempt} of {}); retrying in {} ms",
                P::NAME,
                retry.max_attempts,
                delay.as_millis()
            );
            counts.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(P::RETRIES_METRIC).increment(1);
            tokio::time::sleep(delay).await;
            wait = (wait * 2).min(retry.max_backoff);
            attempt += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The `metrics` facade → the exporters

enum Cell {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<Mutex<Option<f64>>>),
    Histogram(Arc<Mutex<HistogramStats>>),
}

/// Every signal recorded since the last drain, per key.
struct Aggregator {
    cells: Mutex<HashMap<(u8, Key), Cell>>,
    since_ns: AtomicU64,
}

impl Aggregator {
    fn new() -> Self {
        Aggregator {
            cells: Mutex::default(),
            since_ns: AtomicU64::new(now_ns()),
        }
    }

    fn cell<T: Default>(
        &self,
        kind: u8,
        key: &Key,
        make: fn(Arc<T>) -> Cell,
        get: fn(&Cell) -> Option<&Arc<T>>,
    ) -> Arc<T> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let cell = cells
            .entry((kind, key.clone()))
            .or_insert_with(|| make(Arc::default()));
        get(cell).cloned().unwrap_or_default()
    }

    fn counter(&self, key: &Key) -> Arc<AtomicU64> {
        self.cell(0, key, Cell::Counter, |c| match c {
            Cell::Counter(c) => Some(c),
            _ => None,
        })
    }

    fn gauge(&self, key: &Key) -> Arc<Mutex<Option<f64>>> {
        self.cell(1, key, Cell::Gauge, |c| match c {
            Cell::Gauge(g) => Some(g),
            _ => None,
        })
    }

    fn histogram(&self, key: &Key) -> Arc<Mutex<HistogramStats>> {
        self.cell(2, key, Cell::Histogram, |c| match c {
            Cell::Histogram(h) => Some(h),
            _ => None,
        })
    }

    /// The points since the last drain, sorted by key: counters with an increase, every gauge
    /// ever set, histograms with values.
    fn drain(&self) -> Vec<MetricPoint> {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let time_ns = now_ns();
        let start_ns = self.since_ns.swap(time_ns, Ordering::Relaxed);
        let mut out = Vec::new();
        for ((_, key), cell) in cells.iter() {
            let value = match cell {
                Cell::Counter(c) => match c.swap(0, Ordering::Relaxed) {
                    0 => continue,
                    n => PointValue::Counter(n),
                },
                Cell::Gauge(g) => match *g.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(v) => PointValue::Gauge(v),
                    None => continue,
                },
                Cell::Histogram(h) => {
                    let s = std::mem::take(&mut *h.lock().unwrap_or_else(|e| e.into_inner()));
                    if s.count == 0 {
                        continue;
                    }
                    PointValue::Histogram(s)
                }
            };
            out.push(MetricPoint {
                key: key.clone(),
                value,
                start_ns,
                time_ns,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// Where one exporter aggregates the forwarded `metrics` signals (see
/// [`ForwardingRecorder::new`]); from `AppInsights::forward` or `Otlp::forward`.
#[derive(Clone)]
pub struct MetricsForward(Arc<Aggregator>);

impl fmt::Debug for MetricsForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsForward").finish_non_exhaustive()
    }
}

struct FanCounter(Counter, Vec<Arc<AtomicU64>>);

impl metrics::CounterFn for FanCounter {
    fn increment(&self, value: u64) {
        self.0.increment(value);
        for c in &self.1 {
            c.fetch_add(value, Ordering::Relaxed);
        }
    }

    fn absolute(&self, value: u64) {
        self.0.absolute(value);
        // An absolute counter (a total kept elsewhere) is forwarded as its latest value.
        for c in &self.1 {
            c.store(value, Ordering::Relaxed);
        }
    }
}

struct FanGauge(Gauge, Vec<Arc<Mutex<Option<f64>>>>);

impl FanGauge {
    fn update(&self, f: impl Fn(Option<f64>) -> f64) {
        for g in &self.1 {
            let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
            *g = Some(f(*g));
        }
    }
}

impl metrics::GaugeFn for FanGauge {
    fn increment(&self, value: f64) {
        self.0.increment(value);
        self.update(|g| g.unwrap_or(0.0) + value);
    }

    fn decrement(&self, value: f64) {
        self.0.decrement(value);
        self.update(|g| g.unwrap_or(0.0) - value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
        self.update(|_| value);
    }
}

struct FanHistogram(Histogram, Vec<Arc<Mutex<HistogramStats>>>);

impl metrics::HistogramFn for FanHistogram {
    fn record(&self, value: f64) {
        self.0.record(value);
        for h in &self.1 {
            let mut s = h.lock().unwrap_or_else(|e| e.into_inner());
            if s.count == 0 {
                s.min = value;
                s.max = value;
            } else {
                s.min = s.min.min(value);
                s.max = s.max.max(value);
            }
            s.count += 1;
            s.sum += value;
            s.sum_sq += value * value;
        }
    }
}

/// A `metrics` recorder that records into an inner recorder (the Prometheus one, say) and
/// forwards every signal to exporters: counters as their increase, gauges as their last value,
/// histograms as count/sum/min/max, every `metrics_interval` and at each flush; labels become
/// dimensions (attributes).
pub struct ForwardingRecorder<R> {
    inner: R,
    targets: Vec<Arc<Aggregator>>,
}

impl<R> ForwardingRecorder<R> {
    /// Records into `inner` and forwards to each of `targets`.
    pub fn new(inner: R, targets: Vec<MetricsForward>) -> Self {
        ForwardingRecorder {
            inner,
            targets: targets.into_iter().map(|t| t.0).collect(),
        }
    }
}

impl<R> fmt::Debug for ForwardingRecorder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardingRecorder")
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl<R: Recorder> Recorder for ForwardingRecorder<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let inner = self.inner.register_counter(key, metadata);
        let cells = self.targets.iter().map(|t| t.counter(key)).collect();
        Counter::from_arc(Arc::new(FanCounter(inner, cells)))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let inner = self.inner.register_gauge(key, metadata);
        let cells = self.targets.iter().map(|t| t.gauge(key)).collect();
        Gauge::from_arc(Arc::new(FanGauge(inner, cells)))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let inner = self.inner.register_histogram(key, metadata);
        let cells = self.targets.iter().map(|t| t.histogram(key)).collect();
        Histogram::from_arc(Arc::new(FanHistogram(inner, cells)))
    }
}

// ---------------------------------------------------------------------------------------------
// Drift metrics and custom events, whatever the exporter

/// An exporter of named metric values and events: Application Insights (`MetricData`,
/// `EventData`) or OTLP (gauges, log records).
pub trait SignalExporter: Send + Sync {
    /// One metric value with its dimensions (attributes).
    fn metric(&self, name: &str, value: f64, dimensions: &[(String, String)]);
    /// One event with its fields.
    fn event(&self, name: &str, fields: &[(String, String)]);
}

type Installed = Mutex<Vec<Arc<dyn SignalExporter>>>;

static INSTALLED: std::sync::OnceLock<Installed> = std::sync::OnceLock::new();

/// Adds an exporter to the process-wide ones that [`track_event`] and [`installed`] give.
pub fn install(exporter: Arc<dyn SignalExporter>) {
    INSTALLED
        .get_or_init(Installed::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(exporter);
}

/// The process-wide exporters, in the order installed.
pub fn installed() -> Vec<Arc<dyn SignalExporter>> {
    INSTALLED
        .get()
        .map(|i| i.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .unwrap_or_default()
}

/// An event through every process-wide exporter; does nothing when none is installed.
pub fn track_event(name: &str, fields: &[(&str, String)]) {
    let exporters = installed();
    if exporters.is_empty() {
        return;
    }
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    for e in exporters {
        e.event(name, &fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_metrics_aggregate_per_key_for_every_target() {
        let a = Arc::new(Aggregator::new());
        let b = Arc::new(Aggregator::new());
        let recorder = ForwardingRecorder::new(
            metrics::NoopRecorder,
            vec![MetricsForward(a.clone()), MetricsForward(b.clone())],
        );
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("c", "route" => "/score").increment(2);
            metrics::counter!("c", "route" => "/score").increment(3);
            metrics::gauge!("g").set(4.0);
            metrics::gauge!("g").increment(1.0);
            for v in [1.0, 2.0, 3.0, 4.0] {
                metrics::histogram!("h").record(v);
            }
        });
        for agg in [&a, &b] {
            let points = agg.drain();
            let by_name: HashMap<&str, &MetricPoint> = points.iter().map(|p| (p.key.name(), p)).collect();
            assert_eq!(by_name["c"].value, PointValue::Counter(5));
            assert_eq!(
                by_name["c"].key.labels().next().map(|l| (l.key(), l.value())),
                Some(("route", "/score"))
            );
            assert_eq!(by_name["g"].value, PointValue::Gauge(5.0));
            let PointValue::Histogram(h) = &by_name["h"].value else {
                panic!("h is a histogram")
            };
            // 1..4: sum 10, population standard deviation sqrt(1.25).
            assert_eq!((h.count, h.sum, h.min, h.max), (4, 10.0, 1.0, 4.0));
            assert!((h.std_dev() - 1.25f64.sqrt()).abs() < 1e-12);
            assert!(by_name["h"].start_ns <= by_name["h"].time_ns);
            // Drained: the counter and histogram start again, the gauge keeps its value.
            let again: Vec<String> = agg
                .drain()
                .into_iter()
                .map(|p| p.key.name().to_string())
                .collect();
            assert_eq!(again, vec!["g".to_string()]);
        }
    }
}
