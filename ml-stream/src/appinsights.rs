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
//! retry, logs and counts what it refuses. The exporter's common handle (reached through
//! `Deref`) has [`flush`](crate::exporter::ExportHandle::flush), which sends everything queued
//! so far, and [`shutdown`](crate::exporter::ExportHandle::shutdown), which does the same
//! within a bounded time.
//!
//! The built-in code was written against the documented track API rather than the
//! `opentelemetry-application-insights` crate: the `metrics` facade is what streamscore records
//! with, and the OpenTelemetry SDK would add its own metrics pipeline, aggregation and runtime
//! beside it for the same envelopes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
#[cfg(test)]
use metrics::Key;
use serde::{Deserialize, Serialize};

use crate::datacollection::rfc3339;
use crate::error::{Error, Result};
use crate::exporter::{
    Answer, ExportHandle, Exporter, MetricPoint, PointValue, Protocol, SignalExporter, post, short,
};
pub use crate::exporter::{BatchSettings, ExportStats, ForwardingRecorder, MetricsForward};
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

impl DataPoint {
    /// One value.
    pub fn measurement(name: &str, value: f64) -> DataPoint {
        DataPoint {
            name: name.to_string(),
            kind: DataPointKind::Measurement,
            value,
            count: Some(1),
            min: None,
            max: None,
            std_dev: None,
        }
    }
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
    (crate::exporter::now_ns() / 1_000_000) as i64
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
    /// Queue, batches, retries (408/429/439/5xx and network errors) and timeouts.
    pub batch: BatchSettings,
}

impl AppInsightsOptions {
    /// Defaults for a connection string.
    pub fn new(connection: ConnectionString) -> Self {
        AppInsightsOptions {
            connection,
            endpoint: None,
            role: "streamscore".into(),
            role_instance: std::env::var("HOSTNAME").unwrap_or_default(),
            batch: BatchSettings::default(),
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

/// The track API as an exporter protocol: envelopes posted as a JSON array.
struct Track {
    options: AppInsightsOptions,
    url: String,
    seq: AtomicU64,
}

impl Track {
    fn envelope(&self, data: Telemetry, tags: BTreeMap<String, String>, sample_rate: f64) -> Envelope {
        let options = &self.options;
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
        Envelope {
            ver: 1,
            name: data.envelope_name().to_string(),
            time: rfc3339(now_ms()),
            sample_rate,
            seq: Some(self.seq.fetch_add(1, Ordering::Relaxed).to_string()),
            ikey: options.connection.instrumentation_key.clone(),
            tags: all_tags,
            data,
        }
    }
}

/// A forwarded `metrics` point as the `DataPoint` of a `MetricData`: counters and gauges as
/// measurements, histograms as aggregations (sum, count, min, max, standard deviation).
fn data_point(point: &MetricPoint) -> DataPoint {
    let measurement = |value| DataPoint::measurement(point.key.name(), value);
    match &point.value {
        PointValue::Counter(n) => measurement(*n as f64),
        PointValue::Gauge(v) => measurement(*v),
        PointValue::Histogram(h) => DataPoint {
            kind: DataPointKind::Aggregation,
            count: Some(h.count),
            min: Some(h.min),
            max: Some(h.max),
            std_dev: Some(h.std_dev()),
            ..measurement(h.sum)
        },
    }
}

#[async_trait]
impl Protocol for Track {
    type Item = Envelope;
    const NAME: &'static str = "Application Insights";
    const ITEMS_METRIC: &'static str = ITEMS_METRIC;
    const RETRIES_METRIC: &'static str = RETRIES_METRIC;

    fn metric_items(&self, points: Vec<MetricPoint>) -> Vec<Envelope> {
        points
            .iter()
            .map(|point| {
                let properties = point
                    .key
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                let data = Telemetry::MetricData(MetricData {
                    ver: 2,
                    metrics: vec![data_point(point)],
                    properties,
                });
                self.envelope(data, BTreeMap::new(), 100.0)
            })
            .collect()
    }

    async fn send(&self, http: &reqwest::Client, batch: Vec<Envelope>) -> Answer<Envelope> {
        let body = match serde_json::to_vec(&batch) {
            Ok(b) => b,
            Err(e) => return Answer::refused(batch.len(), format!("cannot serialize: {e}")),
        };
        let call = http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        let (status, retry_after, text) = match post(call).await {
            Ok(answer) => answer,
            Err(e) => return Answer::retry(batch, e, None),
        };
        match status {
            200 => Answer::accepted(batch.len()),
            206 => {
                let answer: TrackResponse = serde_json::from_str(&text).unwrap_or_default();
                let (again, refused) = answer.split(batch);
                let reason = format!("HTTP 206: {}", answer.first_message());
                Answer {
                    accepted: answer.items_received.saturating_sub(answer.errors.len() as u64),
                    refused: (!refused.is_empty()).then(|| (refused.len() as u64, reason.clone())),
                    again,
                    again_reason: reason,
                    retry_after,
                }
            }
            408 | 429 | 439 | 500..=599 => {
                Answer::retry(batch, format!("HTTP {status}: {}", short(&text)), retry_after)
            }
            _ => Answer::refused(
                batch.len(),
                format!("HTTP {status} from {}: {}", self.url, short(&text)),
            ),
        }
    }
}

/// A handle on an Application Insights exporter; clones share one queue and one background
/// task. Made with [`AppInsights::start`] inside a Tokio runtime.
#[derive(Clone)]
pub struct AppInsights {
    exporter: Exporter<Track>,
}

impl fmt::Debug for AppInsights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppInsights")
            .field("url", &self.options().track_url())
            .field("role", &self.options().role)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<AppInsights> = OnceLock::new();

impl AppInsights {
    /// Starts the exporter's background task on the current Tokio runtime.
    pub fn start(options: AppInsightsOptions) -> Result<AppInsights> {
        let batch = options.batch.clone();
        let track = Track {
            url: options.track_url(),
            options,
            seq: AtomicU64::new(0),
        };
        Ok(AppInsights {
            exporter: Exporter::start(track, batch, "appinsights")?,
        })
    }

    /// An exporter from [`CONNECTION_STRING_ENV`], `None` when it is unset.
    pub fn from_env() -> Result<Option<AppInsights>> {
        ConnectionString::from_env()?
            .map(|c| AppInsights::start(AppInsightsOptions::new(c)))
            .transpose()
    }

    /// Makes this exporter the process-wide one that request telemetry uses, and one of those
    /// [`crate::track_event`] sends to; false when one was set already (that one stays).
    pub fn install_global(&self) -> bool {
        let first = GLOBAL.set(self.clone()).is_ok();
        if first {
            crate::exporter::install(Arc::new(self.clone()));
        }
        first
    }

    /// The settings.
    pub fn options(&self) -> &AppInsightsOptions {
        &self.exporter.protocol().options
    }

    /// Queues one item; never waits. A full queue drops it and counts it.
    pub fn track(&self, data: Telemetry, tags: BTreeMap<String, String>, sample_rate: f64) {
        self.exporter
            .enqueue(self.exporter.protocol().envelope(data, tags, sample_rate));
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
                metrics: vec![DataPoint::measurement(name, value)],
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
}

/// Flush, bounded shutdown, counts ([`ExportHandle::stats`]) and the forwarding of `metrics`
/// signals ([`ExportHandle::recorder`], [`ExportHandle::forward`]).
impl std::ops::Deref for AppInsights {
    type Target = ExportHandle;

    fn deref(&self) -> &ExportHandle {
        self.exporter.handle()
    }
}

impl SignalExporter for AppInsights {
    fn metric(&self, name: &str, value: f64, dimensions: &[(String, String)]) {
        self.track_metric(name, value, dimensions.iter().cloned().collect());
    }

    /// A custom event; fields that parse as finite numbers are also sent as measurements.
    fn event(&self, name: &str, fields: &[(String, String)]) {
        let mut measurements = BTreeMap::new();
        for (k, v) in fields {
            if let Ok(x) = v.parse::<f64>()
                && x.is_finite()
            {
                measurements.insert(k.clone(), x);
            }
        }
        self.track_event(name, fields.iter().cloned().collect(), measurements);
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
        let fields: Vec<(String, String)> = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        SignalExporter::event(client, name, &fields);
    }
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

/// The recorder of [`ExportHandle::recorder`] on an [`AppInsights`].
pub type AppInsightsRecorder<R> = ForwardingRecorder<R>;

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
/// written, and failures are logged and counted
/// ([`ExportHandle::stats`](crate::exporter::ExportHandle::stats)) without stopping the stream.
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
    fn forwarded_points_become_measurements_and_aggregations() {
        let key = Key::from_name("h");
        let point = |value| MetricPoint {
            key: key.clone(),
            value,
            start_ns: 0,
            time_ns: 1,
        };
        let c = data_point(&point(PointValue::Counter(5)));
        assert_eq!(
            (c.kind, c.value, c.count),
            (DataPointKind::Measurement, 5.0, Some(1))
        );
        let h = data_point(&point(PointValue::Histogram(crate::exporter::HistogramStats {
            count: 4,
            sum: 10.0,
            sum_sq: 30.0,
            min: 1.0,
            max: 4.0,
        })));
        // 1..4: sum 10, population standard deviation sqrt(1.25).
        assert_eq!(
            (h.kind, h.value, h.count, h.min, h.max),
            (DataPointKind::Aggregation, 10.0, Some(4), Some(1.0), Some(4.0))
        );
        assert!((h.std_dev.unwrap() - 1.25f64.sqrt()).abs() < 1e-12);
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
