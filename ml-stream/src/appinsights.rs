//! Application Insights (feature `azure`): an exporter of requests, custom metrics, custom
//! events and traces ([`AppInsights`]), a `metrics`-facade recorder that forwards every counter,
//! gauge and histogram to it as well as to another recorder ([`AppInsightsRecorder`]), and the
//! `appinsights:` sink of inference records ([`AppInsightsSink`]).
//!
//! Wire contract (Application Insights ingestion, `Monitor.Exporters` v2.1):
//! ```text
//! POST {IngestionEndpoint}v2.1/track
//! Content-Type: application/json
//! body: a JSON array of envelopes
//!   {"ver": 1, "name": "Microsoft.ApplicationInsights.Metric", "time": "…Z", "sampleRate": 100,
//!    "iKey": "<instrumentation key>", "tags": {"ai.cloud.role": …},
//!    "data": {"baseType": "MetricData", "baseData": {"ver": 2, "metrics": [{…}], "properties": {…}}}}
//! → 200 (all accepted) | 206 (partial: {"errors": [{"index", "statusCode", "message"}]})
//!   | 400, 402, … (refused) | 408, 429, 439, 500, 503 (retry with backoff)
//! ```
//! One metric per `MetricData` envelope: the service stores only the first element of
//! `metrics`.
//!
//! Nothing here blocks the caller: `track_*` puts an envelope on a bounded queue (a full queue
//! drops it and counts it); a background task sends batches, retries what the service asks to
//! retry, logs and counts what it refuses. [`AppInsights::flush`] sends everything queued so far;
//! [`AppInsights::shutdown`] does the same within a bounded time.
//!
//! The built-in code was written against the documented track API rather than the
//! `opentelemetry-application-insights` crate: the `metrics` facade is what streamscore records
//! with, and the OpenTelemetry SDK would add its own metrics pipeline, aggregation and runtime
//! beside it for the same envelopes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::datacollection::rfc3339;
use crate::error::{Error, Result};
use crate::pipeline::RetryPolicy;
use crate::spec::SpecRegistry;
use crate::traits::{InferenceRecord, InferenceSink};

/// The environment variable the connection string is read from.
pub const CONNECTION_STRING_ENV: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/// The ingestion endpoint when a connection string names none.
pub const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com/";
/// Longest connection string the service accepts.
pub const MAX_CONNECTION_STRING: usize = 4096;

/// Counter of envelopes by outcome (`accepted`, `failed`, `dropped`).
pub const ITEMS_METRIC: &str = "streamscore_appinsights_items_total";
/// Counter of calls retried.
pub const RETRIES_METRIC: &str = "streamscore_appinsights_retries_total";

/// A parsed Application Insights connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionString {
    /// `InstrumentationKey`: the `iKey` of every envelope.
    pub instrumentation_key: String,
    /// `IngestionEndpoint`, https, ending with `/`.
    pub ingestion_endpoint: String,
}

impl ConnectionString {
    /// Parses `InstrumentationKey=<guid>;IngestionEndpoint=https://…/;…`. Keys are matched
    /// without regard to case; `EndpointSuffix` gives `https://dc.<suffix>/` when there is no
    /// `IngestionEndpoint`. An `http://` endpoint is sent to over https (as the Azure SDKs do):
    /// a plain-http receiver needs [`AppInsightsOptions::endpoint`].
    pub fn parse(text: &str) -> Result<ConnectionString> {
        let bad = |reason: String| Error::InvalidSetting {
            name: "Application Insights connection string",
            reason,
        };
        let text = text.trim();
        if text.len() > MAX_CONNECTION_STRING {
            return Err(bad(format!(
                "{} characters, over the limit of {MAX_CONNECTION_STRING}",
                text.len()
            )));
        }
        let mut fields = HashMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                bad(format!(
                    "`{}` is not KEY=VALUE; expected InstrumentationKey=<guid>;IngestionEndpoint=https://…/",
                    part.chars().take(40).collect::<String>()
                ))
            })?;
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let key = fields
            .get("instrumentationkey")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                bad(
                    "no InstrumentationKey; copy the connection string from the resource's Overview page"
                        .into(),
                )
            })?
            .clone();
        let endpoint = match (fields.get("ingestionendpoint"), fields.get("endpointsuffix")) {
            (Some(e), _) if !e.is_empty() => e.clone(),
            (_, Some(s)) if !s.is_empty() => format!("https://dc.{}/", s.trim_matches('.')),
            _ => DEFAULT_INGESTION_ENDPOINT.to_string(),
        };
        let rest = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .ok_or_else(|| bad(format!("IngestionEndpoint `{endpoint}` is not an https:// URL")))?;
        let mut endpoint = format!("https://{rest}");
        if !endpoint.ends_with('/') {
            endpoint.push('/');
        }
        Ok(ConnectionString {
            instrumentation_key: key,
            ingestion_endpoint: endpoint,
        })
    }

    /// The connection string of [`CONNECTION_STRING_ENV`], `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<ConnectionString>> {
        match std::env::var(CONNECTION_STRING_ENV) {
            Ok(v) if !v.trim().is_empty() => ConnectionString::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// One telemetry item as sent to the track API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope version, 1.
    pub ver: u32,
    /// `Microsoft.ApplicationInsights.<Metric|Event|Request|Message>`.
    pub name: String,
    /// When, RFC 3339 UTC with `Z`.
    pub time: String,
    /// Percentage of items kept by sampling (100: none dropped).
    #[serde(rename = "sampleRate")]
    pub sample_rate: f64,
    /// Sequence number within this process.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<String>,
    /// The instrumentation key.
    #[serde(rename = "iKey")]
    pub ikey: String,
    /// Context tags (`ai.cloud.role`, `ai.operation.id`, ...).
    pub tags: BTreeMap<String, String>,
    /// The typed payload.
    pub data: Telemetry,
}

/// The payload of an envelope: `{"baseType": …, "baseData": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "baseType", content = "baseData")]
#[non_exhaustive]
pub enum Telemetry {
    /// A custom metric.
    MetricData(MetricData),
    /// A custom event.
    EventData(EventData),
    /// An incoming request.
    RequestData(RequestData),
    /// A trace line.
    MessageData(MessageData),
}

impl Telemetry {
    fn envelope_name(&self) -> &'static str {
        match self {
            Telemetry::MetricData(_) => "Microsoft.ApplicationInsights.Metric",
            Telemetry::EventData(_) => "Microsoft.ApplicationInsights.Event",
            Telemetry::RequestData(_) => "Microsoft.ApplicationInsights.Request",
            Telemetry::MessageData(_) => "Microsoft.ApplicationInsights.Message",
        }
    }
}

/// `MetricData`: one metric (the service keeps only the first of `metrics`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricData {
    /// 2.
    pub ver: u32,
    /// The data point.
    pub metrics: Vec<DataPoint>,
    /// Dimensions (`feature_name`, labels of a `metrics` key).
    pub properties: BTreeMap<String, String>,
}

/// Whether a data point is one value or an aggregate of several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataPointKind {
    /// One value.
    Measurement,
    /// `value` is the sum of `count` values.
    Aggregation,
}

/// One metric value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataPoint {
    /// Metric name.
    pub name: String,
    /// Measurement or aggregation.
    pub kind: DataPointKind,
    /// The value (the sum, for an aggregation).
    pub value: f64,
    /// Values aggregated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
    /// Smallest value aggregated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<f64>,
    /// Largest value aggregated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<f64>,
    /// Standard deviation of the values aggregated.
    #[serde(rename = "stdDev", skip_serializing_if = "Option::is_none", default)]
    pub std_dev: Option<f64>,
}

/// `EventData`: a custom event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    /// 2.
    pub ver: u32,
    /// Event name (`DriftDetected`, `AlertFired`, ...).
    pub name: String,
    /// String properties.
    pub properties: BTreeMap<String, String>,
    /// Numeric measurements.
    pub measurements: BTreeMap<String, f64>,
}

/// `RequestData`: one incoming request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestData {
    /// 2.
    pub ver: u32,
    /// Request id.
    pub id: String,
    /// `POST /score`.
    pub name: String,
    /// `d.hh:mm:ss.fffffff`.
    pub duration: String,
    /// HTTP status, as text.
    #[serde(rename = "responseCode")]
    pub response_code: String,
    /// Whether the request succeeded (status below 400).
    pub success: bool,
    /// Request URL (path and query).
    pub url: String,
    /// Properties (model, version, ...).
    pub properties: BTreeMap<String, String>,
}

/// `MessageData`: a trace line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageData {
    /// 2.
    pub ver: u32,
    /// The message.
    pub message: String,
    /// 0 verbose, 1 information, 2 warning, 3 error, 4 critical.
    #[serde(rename = "severityLevel")]
    pub severity_level: u8,
    /// Properties.
    pub properties: BTreeMap<String, String>,
}

/// A duration as the track API writes time spans: `d.hh:mm:ss.fffffff`.
pub fn timespan(d: Duration) -> String {
    let secs = d.as_secs();
    let ticks = d.subsec_nanos() / 100;
    format!(
        "{}.{:02}:{:02}:{:02}.{ticks:07}",
        secs / 86_400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Settings of an [`AppInsights`] exporter.
#[derive(Clone, Debug)]
pub struct AppInsightsOptions {
    /// The connection string (instrumentation key and ingestion endpoint).
    pub connection: ConnectionString,
    /// Explicit ingestion endpoint, used instead of the connection string's (and not forced to
    /// https): a local receiver or a proxy.
    pub endpoint: Option<String>,
    /// `ai.cloud.role` of every envelope. Default `streamscore`.
    pub role: String,
    /// `ai.cloud.roleInstance`. Default the host name (`HOSTNAME`), else empty.
    pub role_instance: String,
    /// Envelopes waiting to be sent; more are dropped and counted. Default 10,000.
    pub max_queue: usize,
    /// Most envelopes per call. Default 500.
    pub max_batch: usize,
    /// Longest time an envelope waits before it is sent. Default 5 s.
    pub send_interval: Duration,
    /// How often the forwarded `metrics` are aggregated and sent. Default 60 s.
    pub metrics_interval: Duration,
    /// Retries of a call answered 408/429/439/5xx or lost on the network. Default 5 attempts,
    /// 500 ms doubling to 8 s.
    pub retry: RetryPolicy,
    /// Timeout of one call. Default 10 s.
    pub timeout: Duration,
}

impl AppInsightsOptions {
    /// Defaults for a connection string.
    pub fn new(connection: ConnectionString) -> Self {
        AppInsightsOptions {
            connection,
            endpoint: None,
            role: "streamscore".into(),
            role_instance: std::env::var("HOSTNAME").unwrap_or_default(),
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

    /// The URL envelopes are posted to.
    pub fn track_url(&self) -> String {
        let base = self
            .endpoint
            .clone()
            .unwrap_or_else(|| self.connection.ingestion_endpoint.clone());
        format!("{}/v2.1/track", base.trim_end_matches('/'))
    }
}

/// What an exporter has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Envelopes queued.
    pub enqueued: u64,
    /// Envelopes the service accepted.
    pub accepted: u64,
    /// Envelopes the service refused, or that failed after every retry.
    pub failed: u64,
    /// Envelopes dropped because the queue was full or the exporter had stopped.
    pub dropped: u64,
    /// Calls retried.
    pub retries: u64,
    /// The last export error, as logged.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counts {
    enqueued: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    seq: AtomicU64,
    last_error: Mutex<Option<String>>,
}

enum Control {
    Flush(oneshot::Sender<()>),
    Shutdown(Instant, oneshot::Sender<()>),
}

struct Shared {
    options: AppInsightsOptions,
    counts: Counts,
    aggregator: Arc<Aggregator>,
}

/// A handle on an Application Insights exporter; clones share one queue and one background
/// task. Made with [`AppInsights::start`] inside a Tokio runtime.
#[derive(Clone)]
pub struct AppInsights {
    shared: Arc<Shared>,
    data: mpsc::Sender<Envelope>,
    control: mpsc::UnboundedSender<Control>,
}

impl fmt::Debug for AppInsights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppInsights")
            .field("url", &self.shared.options.track_url())
            .field("role", &self.shared.options.role)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<AppInsights> = OnceLock::new();

impl AppInsights {
    /// Starts the exporter's background task on the current Tokio runtime.
    pub fn start(options: AppInsightsOptions) -> Result<AppInsights> {
        if options.max_queue == 0 || options.max_batch == 0 {
            return Err(Error::InvalidSetting {
                name: "appinsights",
                reason: "max_queue and max_batch must be at least 1".into(),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::InvalidSetting {
            name: "appinsights",
            reason: "the exporter must be started inside a Tokio runtime".into(),
        })?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (data_tx, data_rx) = mpsc::channel(options.max_queue);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            options,
            counts: Counts::default(),
            aggregator: Arc::new(Aggregator::default()),
        });
        let worker = Worker {
            shared: shared.clone(),
            http,
            buffer: Vec::new(),
        };
        runtime.spawn(worker.run(data_rx, control_rx));
        Ok(AppInsights {
            shared,
            data: data_tx,
            control: control_tx,
        })
    }

    /// An exporter from [`CONNECTION_STRING_ENV`], `None` when it is unset.
    pub fn from_env() -> Result<Option<AppInsights>> {
        ConnectionString::from_env()?
            .map(|c| AppInsights::start(AppInsightsOptions::new(c)))
            .transpose()
    }

    /// Makes this exporter the process-wide one that [`track_event`] and request telemetry
    /// use; false when one was set already (that one stays).
    pub fn install_global(&self) -> bool {
        GLOBAL.set(self.clone()).is_ok()
    }

    /// The settings.
    pub fn options(&self) -> &AppInsightsOptions {
        &self.shared.options
    }

    /// Queues one item; never waits. A full queue drops it and counts it.
    pub fn track(&self, data: Telemetry, tags: BTreeMap<String, String>, sample_rate: f64) {
        let options = &self.shared.options;
        let mut all_tags = BTreeMap::new();
        all_tags.insert("ai.cloud.role".to_string(), options.role.clone());
        if !options.role_instance.is_empty() {
            all_tags.insert("ai.cloud.roleInstance".to_string(), options.role_instance.clone());
        }
        all_tags.insert(
            "ai.internal.sdkVersion".to_string(),
            concat!("streamscore-rs:", env!("CARGO_PKG_VERSION")).to_string(),
        );
        all_tags.extend(tags);
        let counts = &self.shared.counts;
        let envelope = Envelope {
            ver: 1,
            name: data.envelope_name().to_string(),
            time: rfc3339(now_ms()),
            sample_rate,
            seq: Some(counts.seq.fetch_add(1, Ordering::Relaxed).to_string()),
            ikey: options.connection.instrumentation_key.clone(),
            tags: all_tags,
            data,
        };
        match self.data.try_send(envelope) {
            Ok(()) => {
                counts.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(ITEMS_METRIC, "outcome" => "dropped").increment(1);
            }
        }
    }

    /// A custom event (`EventData`).
    pub fn track_event(
        &self,
        name: &str,
        properties: BTreeMap<String, String>,
        measurements: BTreeMap<String, f64>,
    ) {
        self.track(
            Telemetry::EventData(EventData {
                ver: 2,
                name: name.to_string(),
                properties,
                measurements,
            }),
            BTreeMap::new(),
            100.0,
        );
    }

    /// One custom metric value (`MetricData`, a measurement) with its dimensions.
    pub fn track_metric(&self, name: &str, value: f64, properties: BTreeMap<String, String>) {
        self.track(
            Telemetry::MetricData(MetricData {
                ver: 2,
                metrics: vec![DataPoint {
                    name: name.to_string(),
                    kind: DataPointKind::Measurement,
                    value,
                    count: Some(1),
                    min: None,
                    max: None,
                    std_dev: None,
                }],
                properties,
            }),
            BTreeMap::new(),
            100.0,
        );
    }

    /// One incoming request (`RequestData`); its id is also the operation id.
    pub fn track_request(&self, request: RequestData) {
        let mut tags = BTreeMap::new();
        tags.insert("ai.operation.id".to_string(), request.id.clone());
        tags.insert("ai.operation.name".to_string(), request.name.clone());
        self.track(Telemetry::RequestData(request), tags, 100.0);
    }

    /// Sends everything queued so far (and the forwarded metrics aggregated so far); returns
    /// when the service has answered for all of it (accepted, refused, or given up on after the
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
            let _ = tokio::time::timeout(timeout + self.shared.options.timeout, rx).await;
        }
        self.stats()
    }

    /// Counts so far.
    pub fn stats(&self) -> ExportStats {
        let c = &self.shared.counts;
        ExportStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            last_error: c.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }

    /// A `metrics` recorder that records into `inner` (the Prometheus recorder, say) and
    /// forwards every signal to this exporter: counters as their increase, gauges as their
    /// last value, histograms as count/sum/min/max/stdDev, every `metrics_interval` and at
    /// each flush; labels become dimensions.
    pub fn recorder<R: Recorder>(&self, inner: R) -> AppInsightsRecorder<R> {
        AppInsightsRecorder {
            inner,
            aggregator: self.shared.aggregator.clone(),
        }
    }
}

/// The process-wide exporter set by [`AppInsights::install_global`].
pub fn global() -> Option<&'static AppInsights> {
    GLOBAL.get()
}

/// A custom event through the process-wide exporter (`AlertFired`, `ModelPromoted`,
/// `ModelRefused`, ...); does nothing when none is installed. Property values that parse as
/// numbers are also sent as measurements.
pub fn track_event(name: &str, properties: &[(&str, String)]) {
    if let Some(client) = global() {
        let mut props = BTreeMap::new();
        let mut measurements = BTreeMap::new();
        for (k, v) in properties {
            if let Ok(x) = v.parse::<f64>()
                && x.is_finite()
            {
                measurements.insert(k.to_string(), x);
            }
            props.insert(k.to_string(), v.clone());
        }
        client.track_event(name, props, measurements);
    }
}

struct Worker {
    shared: Arc<Shared>,
    http: reqwest::Client,
    buffer: Vec<Envelope>,
}

impl Worker {
    async fn run(
        mut self,
        mut data: mpsc::Receiver<Envelope>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let options = self.shared.options.clone();
        let mut send_tick = tokio::time::interval(options.send_interval.max(Duration::from_millis(1)));
        let mut metrics_tick = tokio::time::interval(options.metrics_interval.max(Duration::from_millis(1)));
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
                        if self.buffer.len() >= options.max_batch {
                            self.send_all(None).await;
                        }
                    }
                    None => {
                        self.collect_metrics();
                        self.send_all(Some(Instant::now() + options.timeout)).await;
                        return;
                    }
                },
                _ = send_tick.tick() => self.send_all(None).await,
                _ = metrics_tick.tick() => self.collect_metrics(),
            }
        }
    }

    fn collect_metrics(&mut self) {
        let options = &self.shared.options;
        for (key, point) in self.shared.aggregator.drain() {
            let properties = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            let mut tags = BTreeMap::new();
            tags.insert("ai.cloud.role".to_string(), options.role.clone());
            let counts = &self.shared.counts;
            counts.enqueued.fetch_add(1, Ordering::Relaxed);
            self.buffer.push(Envelope {
                ver: 1,
                name: "Microsoft.ApplicationInsights.Metric".into(),
                time: rfc3339(now_ms()),
                sample_rate: 100.0,
                seq: Some(counts.seq.fetch_add(1, Ordering::Relaxed).to_string()),
                ikey: options.connection.instrumentation_key.clone(),
                tags,
                data: Telemetry::MetricData(MetricData {
                    ver: 2,
                    metrics: vec![point],
                    properties,
                }),
            });
        }
    }

    async fn send_all(&mut self, deadline: Option<Instant>) {
        while !self.buffer.is_empty() {
            let n = self.buffer.len().min(self.shared.options.max_batch);
            let batch: Vec<Envelope> = self.buffer.drain(..n).collect();
            self.send(batch, deadline).await;
        }
    }

    fn fail(&self, n: usize, reason: String) {
        let counts = &self.shared.counts;
        counts.failed.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!(ITEMS_METRIC, "outcome" => "failed").increment(n as u64);
        eprintln!("warning: Application Insights export: {n} items lost: {reason}");
        if let Ok(mut last) = counts.last_error.lock() {
            *last = Some(reason);
        }
    }

    /// Sends one batch, resending what the service asks to resend, until it is accepted,
    /// refused, out of attempts, or past `deadline`.
    async fn send(&self, mut batch: Vec<Envelope>, deadline: Option<Instant>) {
        let options = &self.shared.options;
        let counts = &self.shared.counts;
        let url = options.track_url();
        let mut wait = options.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let body = match serde_json::to_vec(&batch) {
                Ok(b) => b,
                Err(e) => return self.fail(batch.len(), format!("cannot serialize: {e}")),
            };
            let sent = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let (reason, retry_after) = match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry_after = crate::logs_ingestion::retry_after(r.headers());
                    let text = r.text().await.unwrap_or_default();
                    match status {
                        200 => {
                            counts.accepted.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            metrics::counter!(ITEMS_METRIC, "outcome" => "accepted")
                                .increment(batch.len() as u64);
                            return;
                        }
                        206 => {
                            let answer: TrackResponse = serde_json::from_str(&text).unwrap_or_default();
                            let (again, refused) = answer.split(batch);
                            let accepted = answer.items_received.saturating_sub(answer.errors.len() as u64);
                            counts.accepted.fetch_add(accepted, Ordering::Relaxed);
                            metrics::counter!(ITEMS_METRIC, "outcome" => "accepted").increment(accepted);
                            if !refused.is_empty() {
                                self.fail(refused.len(), format!("HTTP 206: {}", answer.first_message()));
                            }
                            if again.is_empty() {
                                return;
                            }
                            batch = again;
                            (format!("HTTP 206: {}", answer.first_message()), retry_after)
                        }
                        408 | 429 | 439 | 500..=599 => {
                            (format!("HTTP {status}: {}", short(&text)), retry_after)
                        }
                        _ => {
                            return self
                                .fail(batch.len(), format!("HTTP {status} from {url}: {}", short(&text)));
                        }
                    }
                }
                // Network errors and timeouts; reqwest's messages hold the URL, never the body.
                Err(e) => (e.to_string(), None),
            };
            let delay = retry_after.map_or(wait, |r| r.max(wait));
            let past_deadline = deadline.is_some_and(|d| Instant::now() + delay > d);
            if attempt >= options.retry.max_attempts || past_deadline {
                return self.fail(batch.len(), format!("{reason} (after {attempt} attempts)"));
            }
            eprintln!(
                "warning: Application Insights answered {reason} (attempt {attempt} of {}); retrying in {} ms",
                options.retry.max_attempts,
                delay.as_millis()
            );
            counts.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(RETRIES_METRIC).increment(1);
            tokio::time::sleep(delay).await;
            wait = (wait * 2).min(options.retry.max_backoff);
            attempt += 1;
        }
    }
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

/// The answer of the track API.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackResponse {
    #[serde(default)]
    items_received: u64,
    #[serde(default)]
    errors: Vec<TrackError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackError {
    index: usize,
    status_code: u16,
    #[serde(default)]
    message: String,
}

impl TrackResponse {
    /// The items of `batch` to send again (retryable errors) and the refused ones.
    fn split(&self, batch: Vec<Envelope>) -> (Vec<Envelope>, Vec<Envelope>) {
        let mut again = Vec::new();
        let mut refused = Vec::new();
        let status: HashMap<usize, u16> = self.errors.iter().map(|e| (e.index, e.status_code)).collect();
        for (i, e) in batch.into_iter().enumerate() {
            match status.get(&i) {
                None => {}
                Some(408 | 429 | 439 | 500 | 503) => again.push(e),
                Some(_) => refused.push(e),
            }
        }
        (again, refused)
    }

    fn first_message(&self) -> String {
        self.errors.first().map(|e| e.message.clone()).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// The `metrics` facade → MetricData

#[derive(Default)]
struct HistogramStats {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

enum Cell {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<Mutex<Option<f64>>>),
    Histogram(Arc<Mutex<HistogramStats>>),
}

/// Every signal recorded since the last drain, per key.
#[derive(Default)]
struct Aggregator {
    cells: Mutex<HashMap<(u8, Key), Cell>>,
}

impl Aggregator {
    fn counter(&self, key: &Key) -> Arc<AtomicU64> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        match cells
            .entry((0, key.clone()))
            .or_insert_with(|| Cell::Counter(Arc::default()))
        {
            Cell::Counter(c) => c.clone(),
            _ => Arc::default(),
        }
    }

    fn gauge(&self, key: &Key) -> Arc<Mutex<Option<f64>>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        match cells
            .entry((1, key.clone()))
            .or_insert_with(|| Cell::Gauge(Arc::default()))
        {
            Cell::Gauge(g) => g.clone(),
            _ => Arc::default(),
        }
    }

    fn histogram(&self, key: &Key) -> Arc<Mutex<HistogramStats>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        match cells
            .entry((2, key.clone()))
            .or_insert_with(|| Cell::Histogram(Arc::default()))
        {
            Cell::Histogram(h) => h.clone(),
            _ => Arc::default(),
        }
    }

    /// The data points since the last drain: counters with an increase, every gauge ever set,
    /// histograms with values.
    fn drain(&self) -> Vec<(Key, DataPoint)> {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for ((_, key), cell) in cells.iter() {
            let point = |kind, value, count, min, max, std_dev| DataPoint {
                name: key.name().to_string(),
                kind,
                value,
                count,
                min,
                max,
                std_dev,
            };
            match cell {
                Cell::Counter(c) => {
                    let n = c.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        out.push((
                            key.clone(),
                            point(DataPointKind::Measurement, n as f64, Some(1), None, None, None),
                        ));
                    }
                }
                Cell::Gauge(g) => {
                    if let Some(v) = *g.lock().unwrap_or_else(|e| e.into_inner()) {
                        out.push((
                            key.clone(),
                            point(DataPointKind::Measurement, v, Some(1), None, None, None),
                        ));
                    }
                }
                Cell::Histogram(h) => {
                    let s = std::mem::take(&mut *h.lock().unwrap_or_else(|e| e.into_inner()));
                    if s.count > 0 {
                        let n = s.count as f64;
                        let mean = s.sum / n;
                        let var = (s.sum_sq / n - mean * mean).max(0.0);
                        out.push((
                            key.clone(),
                            point(
                                DataPointKind::Aggregation,
                                s.sum,
                                Some(s.count),
                                Some(s.min),
                                Some(s.max),
                                Some(var.sqrt()),
                            ),
                        ));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

struct FanCounter(Counter, Arc<AtomicU64>);

impl metrics::CounterFn for FanCounter {
    fn increment(&self, value: u64) {
        self.0.increment(value);
        self.1.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.absolute(value);
        // An absolute counter (a total kept elsewhere) is forwarded as its latest value.
        self.1.store(value, Ordering::Relaxed);
    }
}

struct FanGauge(Gauge, Arc<Mutex<Option<f64>>>);

impl metrics::GaugeFn for FanGauge {
    fn increment(&self, value: f64) {
        self.0.increment(value);
        let mut g = self.1.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(g.unwrap_or(0.0) + value);
    }

    fn decrement(&self, value: f64) {
        self.0.decrement(value);
        let mut g = self.1.lock().unwrap_or_else(|e| e.into_inner());
        *g = Some(g.unwrap_or(0.0) - value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
        *self.1.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }
}

struct FanHistogram(Histogram, Arc<Mutex<HistogramStats>>);

impl metrics::HistogramFn for FanHistogram {
    fn record(&self, value: f64) {
        self.0.record(value);
        let mut s = self.1.lock().unwrap_or_else(|e| e.into_inner());
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

/// A `metrics` recorder that records into an inner recorder and forwards every signal to an
/// [`AppInsights`] exporter (see [`AppInsights::recorder`]).
pub struct AppInsightsRecorder<R> {
    inner: R,
    aggregator: Arc<Aggregator>,
}

impl<R> fmt::Debug for AppInsightsRecorder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppInsightsRecorder").finish_non_exhaustive()
    }
}

impl<R: Recorder> Recorder for AppInsightsRecorder<R> {
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
        Counter::from_arc(Arc::new(FanCounter(inner, self.aggregator.counter(key))))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let inner = self.inner.register_gauge(key, metadata);
        Gauge::from_arc(Arc::new(FanGauge(inner, self.aggregator.gauge(key))))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let inner = self.inner.register_histogram(key, metadata);
        Histogram::from_arc(Arc::new(FanHistogram(inner, self.aggregator.histogram(key))))
    }
}

// ---------------------------------------------------------------------------------------------
// The `appinsights:` sink

/// How the sink writes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A trace (`MessageData`) whose message is the record's JSON, as the Azure ML inference
    /// server logs payloads.
    Trace,
    /// A custom event `InferenceRecord` with the inputs and outputs as properties.
    Event,
}

/// Inference records to Application Insights, sampled: a record is kept when
/// [`sampled`]`(correlation id, partition, offset, rate)`, so every replica keeps the same
/// records; `sampleRate` of each envelope says the rate, so the portal scales counts back up.
///
/// Telemetry, not a durable log: `flush` waits until the service has answered for every record
/// written, and failures are logged and counted ([`AppInsights::stats`]) without stopping the
/// stream.
#[derive(Debug)]
pub struct AppInsightsSink {
    client: AppInsights,
    kind: RecordKind,
    sampling_rate: f64,
    owned: bool,
}

/// Whether a record is kept at `rate` (0..=1): a hash of where it came from, compared with the
/// rate, the same in every process.
pub fn sampled(correlation_id: &str, partition: u32, offset: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    // FNV-1a: stable across processes and Rust versions (the std hasher is not).
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    correlation_id.hash(&mut h);
    partition.hash(&mut h);
    offset.hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64 <= rate
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl AppInsightsSink {
    /// A sink sending through `client`, keeping records at `sampling_rate` (0..=1).
    pub fn new(client: AppInsights, kind: RecordKind, sampling_rate: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&sampling_rate) {
            return Err(Error::InvalidSetting {
                name: "sampling_rate",
                reason: format!("must be between 0 and 1, got {sampling_rate}"),
            });
        }
        Ok(AppInsightsSink {
            client,
            kind,
            sampling_rate,
            owned: false,
        })
    }

    fn properties(r: &InferenceRecord) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        p.insert("correlation_id".into(), r.correlation_id.clone());
        p.insert("request_id".into(), r.request_id.clone());
        p.insert("model_name".into(), r.model_name.clone());
        p.insert("model_version".into(), r.model_version.clone());
        p.insert("partition".into(), r.position.partition.to_string());
        p.insert("offset".into(), r.position.offset.to_string());
        p.insert("latency_ms".into(), r.latency_ms.to_string());
        p
    }
}

#[async_trait]
impl InferenceSink for AppInsightsSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        for r in records {
            if !sampled(
                &r.correlation_id,
                r.position.partition,
                r.position.offset,
                self.sampling_rate,
            ) {
                continue;
            }
            let mut properties = AppInsightsSink::properties(r);
            let data = match self.kind {
                RecordKind::Trace => {
                    let message = serde_json::json!({"inputs": r.inputs, "outputs": r.outputs}).to_string();
                    Telemetry::MessageData(MessageData {
                        ver: 2,
                        message,
                        severity_level: 1,
                        properties,
                    })
                }
                RecordKind::Event => {
                    properties.insert(
                        "inputs".into(),
                        serde_json::Value::Object(r.inputs.clone()).to_string(),
                    );
                    properties.insert(
                        "outputs".into(),
                        serde_json::Value::Object(r.outputs.clone()).to_string(),
                    );
                    let mut measurements = BTreeMap::new();
                    measurements.insert("latency_ms".to_string(), r.latency_ms);
                    Telemetry::EventData(EventData {
                        ver: 2,
                        name: "InferenceRecord".into(),
                        properties,
                        measurements,
                    })
                }
            };
            let mut tags = BTreeMap::new();
            tags.insert("ai.operation.id".to_string(), r.request_id.clone());
            self.client.track(data, tags, self.sampling_rate * 100.0);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.client.flush().await;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if self.owned {
            // Bounded: a stream that ends never waits on an unreachable service for long.
            self.client.shutdown(Duration::from_secs(10)).await;
        } else {
            self.client.flush().await;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("appinsights:{}", self.client.options().track_url())
    }
}

pub(crate) fn register(registry: &mut SpecRegistry) {
    registry.register_sink("appinsights", |spec| {
        spec.only_params(&["sampling_rate", "kind", "endpoint", "role"])?;
        let bad = |reason: String| Error::InvalidSpec {
            spec: spec.raw.clone(),
            reason,
        };
        let rate = match spec.params.get("sampling_rate") {
            None => 1.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| bad(format!("`sampling_rate` must be a number from 0 to 1, got `{v}`")))?,
        };
        let kind = match spec.params.get("kind").map(String::as_str) {
            None | Some("trace") => RecordKind::Trace,
            Some("event") => RecordKind::Event,
            Some(other) => return Err(bad(format!("`kind` must be trace or event, got `{other}`"))),
        };
        let connection = ConnectionString::from_env()?.ok_or_else(|| {
            bad(format!(
                "set {CONNECTION_STRING_ENV} to the resource's connection string (InstrumentationKey=…;IngestionEndpoint=…)"
            ))
        })?;
        let mut options = AppInsightsOptions::new(connection);
        if let Some(e) = spec.params.get("endpoint") {
            options.endpoint = Some(e.clone());
        }
        if let Some(r) = spec.params.get("role") {
            options.role = r.clone();
        }
        let mut sink = AppInsightsSink::new(AppInsights::start(options)?, kind, rate)?;
        sink.owned = true;
        Ok(Box::new(sink))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let c = ConnectionString::parse(
            "InstrumentationKey=00000000-1111-2222-3333-444444444444;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/",
        )
        .unwrap();
        assert_eq!(c.instrumentation_key, "00000000-1111-2222-3333-444444444444");
        assert_eq!(
            c.ingestion_endpoint,
            "https://westeurope-5.in.applicationinsights.azure.com/"
        );
        let c = ConnectionString::parse("instrumentationkey=k;EndpointSuffix=applicationinsights.azure.cn")
            .unwrap();
        assert_eq!(c.ingestion_endpoint, "https://dc.applicationinsights.azure.cn/");
        let c = ConnectionString::parse("InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:9").unwrap();
        assert_eq!(c.ingestion_endpoint, "https://127.0.0.1:9/");
        assert_eq!(
            ConnectionString::parse("InstrumentationKey=k")
                .unwrap()
                .ingestion_endpoint,
            DEFAULT_INGESTION_ENDPOINT
        );
        let e = ConnectionString::parse("IngestionEndpoint=https://x/")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no InstrumentationKey"), "{e}");
        let e = ConnectionString::parse("InstrumentationKey")
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
        let long = format!("InstrumentationKey={}", "k".repeat(5000));
        assert!(
            ConnectionString::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("4096")
        );
    }

    #[test]
    fn timespans() {
        assert_eq!(timespan(Duration::from_micros(1_234_567)), "0.00:00:01.2345670");
        assert_eq!(timespan(Duration::from_secs(90_061)), "1.01:01:01.0000000");
    }

    #[test]
    fn envelopes_serialize_as_the_track_api_expects() {
        let e = Envelope {
            ver: 1,
            name: "Microsoft.ApplicationInsights.Event".into(),
            time: "2026-11-27T00:00:00.000Z".into(),
            sample_rate: 100.0,
            seq: None,
            ikey: "k".into(),
            tags: BTreeMap::new(),
            data: Telemetry::EventData(EventData {
                ver: 2,
                name: "DriftDetected".into(),
                properties: BTreeMap::new(),
                measurements: BTreeMap::new(),
            }),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["iKey"], "k");
        assert_eq!(json["sampleRate"], 100.0);
        assert_eq!(json["data"]["baseType"], "EventData");
        assert_eq!(json["data"]["baseData"]["name"], "DriftDetected");
        assert_eq!(json["data"]["baseData"]["ver"], 2);
    }

    #[test]
    fn forwarded_metrics_aggregate_per_key() {
        let agg = Arc::new(Aggregator::default());
        let recorder = AppInsightsRecorder {
            inner: metrics::NoopRecorder,
            aggregator: agg.clone(),
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("c", "route" => "/score").increment(2);
            metrics::counter!("c", "route" => "/score").increment(3);
            metrics::gauge!("g").set(4.0);
            metrics::gauge!("g").increment(1.0);
            for v in [1.0, 2.0, 3.0, 4.0] {
                metrics::histogram!("h").record(v);
            }
        });
        let points = agg.drain();
        let by_name: HashMap<&str, (&Key, &DataPoint)> =
            points.iter().map(|(k, p)| (p.name.as_str(), (k, p))).collect();
        let (key, c) = by_name["c"];
        assert_eq!(c.value, 5.0);
        assert_eq!(
            key.labels().next().map(|l| (l.key(), l.value())),
            Some(("route", "/score"))
        );
        assert_eq!(by_name["g"].1.value, 5.0);
        let h = by_name["h"].1;
        // 1..4: sum 10, population standard deviation sqrt(1.25).
        assert_eq!(
            (h.value, h.count, h.min, h.max),
            (10.0, Some(4), Some(1.0), Some(4.0))
        );
        assert!((h.std_dev.unwrap() - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(h.kind, DataPointKind::Aggregation);
        // Drained: the counter and histogram start again, the gauge keeps its value.
        let again: Vec<String> = agg.drain().into_iter().map(|(_, p)| p.name).collect();
        assert_eq!(again, vec!["g".to_string()]);
    }

    #[test]
    fn sampling_is_deterministic_and_near_the_rate() {
        let kept = (0..10_000u64).filter(|o| sampled("c", 0, *o, 0.25)).count();
        assert!((2_250..=2_750).contains(&kept), "{kept}");
        assert_eq!(kept, (0..10_000u64).filter(|o| sampled("c", 0, *o, 0.25)).count());
        assert!((0..100u64).all(|o| sampled("c", 0, o, 1.0)));
        assert!(!(0..100u64).any(|o| sampled("c", 0, o, 0.0)));
    }
}
