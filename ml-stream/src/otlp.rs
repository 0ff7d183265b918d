//! OTLP export ([`Otlp`]): the signals the Application Insights exporter sends, to any
//! OpenTelemetry collector or backend over OTLP/HTTP with the JSON encoding — the forwarded
//! `metrics` signals (scoring requests, the stream's counters) and named metric values (the
//! drift metrics) as metrics, events (`DriftDetected`, `AlertFired`, `ModelPromoted`,
//! `ModelRefused`) as log records, and scoring requests as server spans.
//!
//! Wire contract (OTLP 1.x, `opentelemetry-proto` messages in the protobuf JSON mapping):
//! ```text
//! POST {endpoint}/v1/metrics   ExportMetricsServiceRequest  {"resourceMetrics": [{"resource", "scopeMetrics": [{"scope", "metrics": [...]}]}]}
//! POST {endpoint}/v1/logs      ExportLogsServiceRequest     {"resourceLogs": [{"resource", "scopeLogs": [{"scope", "logRecords": [...]}]}]}
//! POST {endpoint}/v1/traces    ExportTraceServiceRequest    {"resourceSpans": [{"resource", "scopeSpans": [{"scope", "spans": [...]}]}]}
//! Content-Type: application/json [Content-Encoding: gzip] + OTEL_EXPORTER_OTLP_HEADERS
//! → 200 (a `partialSuccess` counts its rejected items as failed) | 429, 502, 503, 504 (retried
//!   with backoff and Retry-After) | anything else (refused: logged and counted)
//! ```
//! Field names are lowerCamelCase, 64-bit integers (times, counts, `asInt`, `intValue`) are
//! decimal strings, enums are numbers, trace and span ids are hex. Counters and histograms are
//! sent as deltas since the previous export (`aggregationTemporality` 1), histograms with
//! count, sum, min and max and one bucket.
//!
//! Configured the OpenTelemetry way ([`OtlpOptions::from_env`]): `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (the base URL; `/v1/<signal>` is appended), `OTEL_EXPORTER_OTLP_{METRICS,LOGS,TRACES}_ENDPOINT`
//! (used as given), `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`, percent-encoded values; never
//! logged), `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_COMPRESSION`
//! (`gzip` or `none`), `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_METRIC_EXPORT_INTERVAL` and
//! `OTEL_BSP_SCHEDULE_DELAY` (milliseconds) and `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/json` is
//! the one spoken).
//!
//! Queueing, batching, retries and the bounded shutdown are those of the Application Insights
//! exporter ([`crate::exporter`]): nothing here blocks the caller.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::exporter::{
    Answer, ExportHandle, Exporter, MetricPoint, PointValue, Protocol, SignalExporter, now_ns, post, short,
};
pub use crate::exporter::{BatchSettings, ExportStats, ForwardingRecorder, MetricsForward};

/// Base URL of the collector; `/v1/metrics`, `/v1/logs`, `/v1/traces` are appended.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Full URL for metrics, used as given.
pub const METRICS_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// Full URL for logs (the events), used as given.
pub const LOGS_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
/// Full URL for traces (request spans), used as given.
pub const TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Headers of every call, `key=value,key2=value2`, values percent-encoded (an API key).
pub const HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `service.name` of the resource.
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
/// More resource attributes, `key=value,…`, values percent-encoded.
pub const RESOURCE_ATTRIBUTES_ENV: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `gzip` or `none`.
pub const COMPRESSION_ENV: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
/// Timeout of one call, milliseconds.
pub const TIMEOUT_ENV: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// How often the forwarded `metrics` are exported, milliseconds (default 60,000).
pub const METRIC_EXPORT_INTERVAL_ENV: &str = "OTEL_METRIC_EXPORT_INTERVAL";
/// Longest wait of a queued log record or span before it is sent, milliseconds (default
/// 5,000).
pub const SCHEDULE_DELAY_ENV: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// The transport; only `http/json` is spoken.
pub const PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// The base endpoint when only some per-signal endpoints are set (the OpenTelemetry default).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// Counter of items (data points, log records, spans) by outcome (`accepted`, `failed`,
/// `dropped`).
pub const ITEMS_METRIC: &str = "streamscore_otlp_items_total";
/// Counter of calls retried.
pub const RETRIES_METRIC: &str = "streamscore_otlp_retries_total";

const SCOPE: &str = "streamscore";

/// Settings of an [`Otlp`] exporter. `Debug` shows header names, never their values.
#[derive(Clone)]
pub struct OtlpOptions {
    /// Where metrics are posted.
    pub metrics_url: String,
    /// Where log records (the events) are posted.
    pub logs_url: String,
    /// Where spans (scoring requests) are posted.
    pub traces_url: String,
    /// Headers of every call (an API key: never logged).
    pub headers: Vec<(String, String)>,
    /// Resource attributes; `service.name` first.
    pub resource: Vec<(String, String)>,
    /// Gzip the bodies.
    pub gzip: bool,
    /// Queue, batches, retries (429/502/503/504 and network errors) and timeouts.
    pub batch: BatchSettings,
}

impl fmt::Debug for OtlpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpOptions")
            .field("metrics_url", &self.metrics_url)
            .field("logs_url", &self.logs_url)
            .field("traces_url", &self.traces_url)
            .field("headers", &names)
            .field("resource", &self.resource)
            .field("gzip", &self.gzip)
            .field("batch", &self.batch)
            .finish()
    }
}

fn invalid(name: &'static str, reason: String) -> Error {
    Error::InvalidSetting { name, reason }
}

/// Percent-decodes `text` (the W3C baggage encoding of the OTEL_* lists).
fn percent_decode(name: &'static str, text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(name, "a `%` is not followed by two hex digits".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(name, "a percent-encoded value is not UTF-8".into()))
}

/// Parses a `key=value,key2=value2` list of `name`. Errors say which entry is wrong, never what
/// it holds (a header value is a secret).
pub fn parse_pairs(name: &'static str, text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let (k, v) = entry.split_once('=').ok_or_else(|| {
            invalid(
                name,
                format!(
                    "entry {} is not key=value; expected key1=value1,key2=value2",
                    i + 1
                ),
            )
        })?;
        let k = percent_decode(name, k.trim())?;
        if k.is_empty() {
            return Err(invalid(name, format!("entry {} has an empty key", i + 1)));
        }
        out.push((k, percent_decode(name, v.trim())?));
    }
    Ok(out)
}

fn signal_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

fn check_url(name: &'static str, url: &str) -> Result<()> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(invalid(
            name,
            format!("`{url}` is not an http:// or https:// URL (OTLP/HTTP, the collector's port 4318)"),
        ))
    }
}

impl OtlpOptions {
    /// Defaults for a collector at `endpoint` (the base URL, `http://host:4318`).
    pub fn new(endpoint: &str) -> Result<Self> {
        check_url("OTLP endpoint", endpoint)?;
        Ok(OtlpOptions {
            metrics_url: signal_url(endpoint, "metrics"),
            logs_url: signal_url(endpoint, "logs"),
            traces_url: signal_url(endpoint, "traces"),
            headers: Vec::new(),
            resource: vec![("service.name".into(), "streamscore".into())],
            gzip: false,
            batch: BatchSettings::default(),
        })
    }

    /// The settings of the `OTEL_*` environment variables; `None` when no OTLP endpoint is set.
    pub fn from_env() -> Result<Option<Self>> {
        OtlpOptions::from_vars(None, |k| std::env::var(k).ok())
    }

    /// [`OtlpOptions::from_env`] with `endpoint` (a command-line option) as the base endpoint
    /// instead of `OTEL_EXPORTER_OTLP_ENDPOINT`; per-signal endpoints still take precedence, as
    /// the OpenTelemetry specification has it. `var` reads a variable.
    pub fn from_vars(endpoint: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let var = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let base = endpoint.map(str::to_string).or_else(|| var(ENDPOINT_ENV));
        let signals = [
            (METRICS_ENDPOINT_ENV, var(METRICS_ENDPOINT_ENV)),
            (LOGS_ENDPOINT_ENV, var(LOGS_ENDPOINT_ENV)),
            (TRACES_ENDPOINT_ENV, var(TRACES_ENDPOINT_ENV)),
        ];
        if base.is_none() && signals.iter().all(|(_, v)| v.is_none()) {
            return Ok(None);
        }
        let mut options = OtlpOptions::new(base.as_deref().unwrap_or(DEFAULT_ENDPOINT))?;
        for (name, url) in signals {
            if let Some(url) = url {
                check_url(name, &url)?;
                match name {
                    METRICS_ENDPOINT_ENV => options.metrics_url = url,
                    LOGS_ENDPOINT_ENV => options.logs_url = url,
                    _ => options.traces_url = url,
                }
            }
        }
        if let Some(h) = var(HEADERS_ENV) {
            options.headers = parse_pairs(HEADERS_ENV, &h)?;
            header_map(&options.headers)?;
        }
        if let Some(a) = var(RESOURCE_ATTRIBUTES_ENV) {
            for (k, v) in parse_pairs(RESOURCE_ATTRIBUTES_ENV, &a)? {
                options.set_resource(k, v);
            }
        }
        if let Some(s) = var(SERVICE_NAME_ENV) {
            options.set_resource("service.name".into(), s);
        }
        match var(COMPRESSION_ENV).as_deref() {
            None | Some("none") => {}
            Some("gzip") => options.gzip = true,
            Some(other) => {
                return Err(invalid(COMPRESSION_ENV, format!("`{other}` is not gzip or none")));
            }
        }
        let millis = |name: &'static str| -> Result<Option<Duration>> {
            var(name)
                .map(|t| {
                    t.parse::<u64>()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .map(Duration::from_millis)
                        .ok_or_else(|| {
                            invalid(name, format!("`{t}` is not a positive number of milliseconds"))
                        })
                })
                .transpose()
        };
        if let Some(t) = millis(TIMEOUT_ENV)? {
            options.batch.timeout = t;
        }
        if let Some(t) = millis(METRIC_EXPORT_INTERVAL_ENV)? {
            options.batch.metrics_interval = t;
        }
        if let Some(t) = millis(SCHEDULE_DELAY_ENV)? {
            options.batch.send_interval = t;
        }
        match var(PROTOCOL_ENV).as_deref() {
            None | Some("http/json") => {}
            Some(other) => {
                return Err(invalid(
                    PROTOCOL_ENV,
                    format!(
                        "`{other}` is not spoken: streamscore sends OTLP/HTTP with JSON bodies; set it to http/json (or unset it) and point the endpoint at the collector's HTTP port (4318)"
                    ),
                ));
            }
        }
        Ok(Some(options))
    }

    /// Sets a resource attribute, replacing one of the same key.
    fn set_resource(&mut self, key: String, value: String) {
        match self.resource.iter_mut().find(|(k, _)| *k == key) {
            Some(kv) => kv.1 = value,
            None => self.resource.push((key, value)),
        }
    }
}

/// An attribute list: `[{"key": …, "value": {"stringValue": …}}]`.
fn string_attributes<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
            .collect(),
    )
}

/// An attribute with the type its text reads as: an integer (`intValue`, a string in JSON), a
/// finite number (`doubleValue`), `true`/`false` (`boolValue`), else a string.
fn typed_attribute(key: &str, text: &str) -> Value {
    let value = if let Ok(i) = text.parse::<i64>() {
        json!({"intValue": i.to_string()})
    } else if let Some(x) = text.parse::<f64>().ok().filter(|x| x.is_finite()) {
        json!({"doubleValue": x})
    } else if let Ok(b) = text.parse::<bool>() {
        json!({"boolValue": b})
    } else {
        json!({"stringValue": text})
    };
    json!({"key": key, "value": value})
}

/// The headers as sent, their values marked sensitive. Errors say which entry is wrong, never
/// what it holds.
fn header_map(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap> {
    let mut map = reqwest::header::HeaderMap::new();
    for (i, (k, v)) in headers.iter().enumerate() {
        let bad = || {
            invalid(
                HEADERS_ENV,
                format!("entry {} is not a valid HTTP header name and value", i + 1),
            )
        };
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?;
        let mut value = reqwest::header::HeaderValue::from_str(v).map_err(|_| bad())?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

/// The kinds of metric data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricKind {
    Gauge,
    /// A monotonic sum, delta temporality.
    Sum,
    /// Delta temporality.
    Histogram,
}

/// One queued item: a data point of a metric, a log record or a span.
enum Item {
    Metric {
        name: String,
        kind: MetricKind,
        point: Value,
    },
    Log(Value),
    Span(Value),
}

/// OTLP/HTTP JSON as an exporter protocol.
struct Http {
    options: OtlpOptions,
    resource: Value,
    headers: reqwest::header::HeaderMap,
}

impl Http {
    fn new(options: OtlpOptions) -> Result<Self> {
        let mut resource = options.resource.clone();
        for (k, v) in [
            ("telemetry.sdk.name", "streamscore"),
            ("telemetry.sdk.language", "rust"),
            ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ] {
            if !resource.iter().any(|(key, _)| key == k) {
                resource.push((k.into(), v.into()));
            }
        }
        let resource = json!({
            "attributes": string_attributes(resource.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        });
        let headers = header_map(&options.headers)?;
        Ok(Http {
            options,
            resource,
            headers,
        })
    }

    /// An export request: `{outer: [{"resource", scope_key: [{"scope", list_key: items}]}]}`.
    fn body(&self, outer: &str, scope_key: &str, list_key: &str, items: Value) -> Value {
        let mut scoped = serde_json::Map::new();
        scoped.insert(
            "scope".into(),
            json!({"name": SCOPE, "version": env!("CARGO_PKG_VERSION")}),
        );
        scoped.insert(list_key.into(), items);
        let mut resource = serde_json::Map::new();
        resource.insert("resource".into(), self.resource.clone());
        resource.insert(scope_key.into(), json!([scoped]));
        let mut body = serde_json::Map::new();
        body.insert(outer.into(), json!([resource]));
        Value::Object(body)
    }

    /// The URL and request body for a batch of one group, and the name of the partial-success
    /// count of rejected items.
    fn request(&self, batch: &[Item]) -> (&str, Value, &'static str) {
        if let Some(Item::Metric { .. }) = batch.first() {
            // Points of the same metric go together, in the order queued.
            let mut metrics: Vec<(&str, MetricKind, Vec<&Value>)> = Vec::new();
            for item in batch {
                if let Item::Metric { name, kind, point } = item {
                    match metrics
                        .iter_mut()
                        .find(|(n, k, _)| *n == name.as_str() && *k == *kind)
                    {
                        Some((_, _, points)) => points.push(point),
                        None => metrics.push((name.as_str(), *kind, vec![point])),
                    }
                }
            }
            let metrics: Vec<Value> = metrics
                .into_iter()
                .map(|(name, kind, points)| match kind {
                    MetricKind::Gauge => json!({"name": name, "gauge": {"dataPoints": points}}),
                    MetricKind::Sum => json!({"name": name, "sum": {
                        "dataPoints": points, "aggregationTemporality": 1, "isMonotonic": true}}),
                    MetricKind::Histogram => json!({"name": name, "histogram": {
                        "dataPoints": points, "aggregationTemporality": 1}}),
                })
                .collect();
            let body = self.body("resourceMetrics", "scopeMetrics", "metrics", json!(metrics));
            return (self.options.metrics_url.as_str(), body, "rejectedDataPoints");
        }
        let items: Vec<&Value> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Log(v) | Item::Span(v) => Some(v),
                Item::Metric { .. } => None,
            })
            .collect();
        match batch.first() {
            Some(Item::Log(_)) => (
                self.options.logs_url.as_str(),
                self.body("resourceLogs", "scopeLogs", "logRecords", json!(items)),
                "rejectedLogRecords",
            ),
            _ => (
                self.options.traces_url.as_str(),
                self.body("resourceSpans", "scopeSpans", "spans", json!(items)),
                "rejectedSpans",
            ),
        }
    }

    fn encode(&self, body: &Value) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(body)?;
        if !self.options.gzip {
            return Ok(json);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&json)?;
        gz.finish()
    }
}

/// A forwarded `metrics` point as an OTLP data point.
fn forwarded_item(point: &MetricPoint) -> Item {
    let attributes = string_attributes(point.key.labels().map(|l| (l.key(), l.value())));
    let (start, time) = (point.start_ns.to_string(), point.time_ns.to_string());
    let (kind, point_json) = match &point.value {
        PointValue::Counter(n) => (
            MetricKind::Sum,
            json!({"attributes": attributes, "startTimeUnixNano": start, "timeUnixNano": time,
                   "asInt": n.to_string()}),
        ),
        PointValue::Gauge(v) => (
            MetricKind::Gauge,
            json!({"attributes": attributes, "timeUnixNano": time, "asDouble": v}),
        ),
        PointValue::Histogram(h) => (
            MetricKind::Histogram,
            json!({"attributes": attributes, "startTimeUnixNano": start, "timeUnixNano": time,
                   "count": h.count.to_string(), "sum": h.sum, "min": h.min, "max": h.max,
                   "bucketCounts": [h.count.to_string()], "explicitBounds": []}),
        ),
    };
    Item::Metric {
        name: point.key.name().to_string(),
        kind,
        point: point_json,
    }
}

#[async_trait]
impl Protocol for Http {
    type Item = Item;
    const NAME: &'static str = "OTLP";
    const ITEMS_METRIC: &'static str = ITEMS_METRIC;
    const RETRIES_METRIC: &'static str = RETRIES_METRIC;

    fn group(&self, item: &Item) -> u8 {
        match item {
            Item::Metric { .. } => 0,
            Item::Log(_) => 1,
            Item::Span(_) => 2,
        }
    }

    fn metric_items(&self, points: Vec<MetricPoint>) -> Vec<Item> {
        points.iter().map(forwarded_item).collect()
    }

    async fn send(&self, http: &reqwest::Client, batch: Vec<Item>) -> Answer<Item> {
        let (url, body, rejected_field) = self.request(&batch);
        let body = match self.encode(&body) {
            Ok(b) => b,
            Err(e) => return Answer::refused(batch.len(), format!("cannot encode: {e}")),
        };
        let mut call = http
            .post(url)
            .headers(self.headers.clone())
            .header("content-type", "application/json")
            .body(body);
        if self.options.gzip {
            call = call.header("content-encoding", "gzip");
        }
        let (status, retry_after, text) = match post(call).await {
            Ok(answer) => answer,
            Err(e) => return Answer::retry(batch, e, None),
        };
        match status {
            200..=299 => {
                let answer: Value = serde_json::from_str(&text).unwrap_or_default();
                let partial = &answer["partialSuccess"];
                let rejected = match &partial[rejected_field] {
                    Value::String(s) => s.parse::<u64>().unwrap_or(0),
                    v => v.as_u64().unwrap_or(0),
                }
                .min(batch.len() as u64);
                let mut a = Answer::accepted(batch.len() - rejected as usize);
                if rejected > 0 {
                    let message = partial["errorMessage"].as_str().unwrap_or_default();
                    a.refused = Some((
                        rejected,
                        format!(
                            "partial success from {url}: {rejected} rejected: {}",
                            short(message)
                        ),
                    ));
                }
                a
            }
            429 | 502 | 503 | 504 => {
                Answer::retry(batch, format!("HTTP {status}: {}", short(&text)), retry_after)
            }
            _ => Answer::refused(batch.len(), format!("HTTP {status} from {url}: {}", short(&text))),
        }
    }
}

/// A scoring request as a server span.
#[derive(Clone, Debug, Default)]
pub struct RequestSpan {
    /// `POST /score`.
    pub name: String,
    /// `POST`.
    pub method: String,
    /// The matched route, `/score`.
    pub route: String,
    /// Path and query.
    pub target: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// More attributes (`request_id`, `model_version`).
    pub attributes: Vec<(String, String)>,
}

/// A handle on an OTLP exporter; clones share one queue and one background task. Made with
/// [`Otlp::start`] inside a Tokio runtime.
#[derive(Clone)]
pub struct Otlp {
    exporter: Exporter<Http>,
}

impl fmt::Debug for Otlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otlp")
            .field("options", self.options())
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Otlp> = OnceLock::new();

impl Otlp {
    /// Starts the exporter's background task on the current Tokio runtime.
    pub fn start(options: OtlpOptions) -> Result<Otlp> {
        let batch = options.batch.clone();
        Ok(Otlp {
            exporter: Exporter::start(Http::new(options)?, batch, "otlp")?,
        })
    }

    /// An exporter from the `OTEL_*` variables, `None` when no endpoint is set.
    pub fn from_env() -> Result<Option<Otlp>> {
        OtlpOptions::from_env()?.map(Otlp::start).transpose()
    }

    /// Makes this exporter the process-wide one that request spans use, and one of those
    /// [`crate::track_event`] sends to; false when one was set already (that one stays).
    pub fn install_global(&self) -> bool {
        let first = GLOBAL.set(self.clone()).is_ok();
        if first {
            crate::exporter::install(Arc::new(self.clone()));
        }
        first
    }

    /// The settings.
    pub fn options(&self) -> &OtlpOptions {
        &self.exporter.protocol().options
    }

    /// One gauge value with string attributes (a drift metric).
    pub fn gauge(&self, name: &str, value: f64, attributes: &[(String, String)]) {
        let point = json!({
            "attributes": string_attributes(attributes.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            "timeUnixNano": now_ns().to_string(),
            "asDouble": value,
        });
        self.exporter.enqueue(Item::Metric {
            name: name.to_string(),
            kind: MetricKind::Gauge,
            point,
        });
    }

    /// An event as a log record: `eventName` and the `event.name` attribute are `name`, the
    /// body is `name`, and each field is an attribute typed as its text reads (integer,
    /// number, boolean, else string).
    pub fn event(&self, name: &str, fields: &[(String, String)]) {
        let now = now_ns().to_string();
        let mut attributes = vec![json!({"key": "event.name", "value": {"stringValue": name}})];
        attributes.extend(fields.iter().map(|(k, v)| typed_attribute(k, v)));
        self.exporter.enqueue(Item::Log(json!({
            "timeUnixNano": now,
            "observedTimeUnixNano": now,
            "severityNumber": 9,
            "severityText": "INFO",
            "eventName": name,
            "body": {"stringValue": name},
            "attributes": attributes,
        })));
    }

    /// A scoring request as a server span with a new trace id; status error for 5xx answers
    /// (the OpenTelemetry HTTP conventions for servers).
    pub fn track_request(&self, request: &RequestSpan) {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let mut attributes = vec![
            json!({"key": "http.request.method", "value": {"stringValue": request.method}}),
            json!({"key": "http.route", "value": {"stringValue": request.route}}),
            json!({"key": "url.path", "value": {"stringValue": request.target}}),
            json!({"key": "http.response.status_code", "value": {"intValue": request.status.to_string()}}),
        ];
        attributes.extend(
            request
                .attributes
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})),
        );
        let status = if request.status >= 500 { 2 } else { 0 };
        self.exporter.enqueue(Item::Span(json!({
            "traceId": trace_id,
            "spanId": span_id,
            "name": request.name,
            "kind": 2,
            "startTimeUnixNano": request.start_ns.to_string(),
            "endTimeUnixNano": request.end_ns.to_string(),
            "attributes": attributes,
            "status": {"code": status},
        })));
    }
}

/// Flush, bounded shutdown, counts ([`ExportHandle::stats`]) and the forwarding of `metrics`
/// signals ([`ExportHandle::recorder`], [`ExportHandle::forward`]): counters as monotonic delta
/// sums, gauges, histograms as delta histograms with count, sum, min and max.
impl std::ops::Deref for Otlp {
    type Target = ExportHandle;

    fn deref(&self) -> &ExportHandle {
        self.exporter.handle()
    }
}

impl SignalExporter for Otlp {
    fn metric(&self, name: &str, value: f64, dimensions: &[(String, String)]) {
        self.gauge(name, value, dimensions);
    }

    fn event(&self, name: &str, fields: &[(String, String)]) {
        Otlp::event(self, name, fields);
    }
}

/// The process-wide exporter set by [`Otlp::install_global`].
pub fn global() -> Option<&'static Otlp> {
    GLOBAL.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_follow_the_opentelemetry_variables() {
        assert!(OtlpOptions::from_vars(None, vars(&[])).unwrap().is_none());
        let o = OtlpOptions::from_vars(
            None,
            vars(&[
                (ENDPOINT_ENV, "http://collector:4318/"),
                (LOGS_ENDPOINT_ENV, "https://logs.example/custom/path"),
                (HEADERS_ENV, "api-key=s%3Dcr%2Cet , x-tenant = t1"),
                (
                    RESOURCE_ATTRIBUTES_ENV,
                    "service.name=ignored,deployment.environment=prod%20eu",
                ),
                (SERVICE_NAME_ENV, "credit-scorer"),
                (COMPRESSION_ENV, "gzip"),
                (TIMEOUT_ENV, "2500"),
                (METRIC_EXPORT_INTERVAL_ENV, "1000"),
                (SCHEDULE_DELAY_ENV, "200"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.metrics_url, "http://collector:4318/v1/metrics");
        assert_eq!(o.logs_url, "https://logs.example/custom/path");
        assert_eq!(o.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(
            o.headers,
            vec![
                ("api-key".to_string(), "s=cr,et".to_string()),
                ("x-tenant".to_string(), "t1".to_string())
            ]
        );
        assert_eq!(
            o.resource,
            vec![
                ("service.name".to_string(), "credit-scorer".to_string()),
                ("deployment.environment".to_string(), "prod eu".to_string())
            ]
        );
        assert!(o.gzip);
        assert_eq!(
            (o.batch.timeout, o.batch.metrics_interval, o.batch.send_interval),
            (
                Duration::from_millis(2500),
                Duration::from_secs(1),
                Duration::from_millis(200)
            )
        );
        let debug = format!("{o:?}");
        assert!(debug.contains("api-key") && !debug.contains("s=cr"), "{debug}");

        // A command-line endpoint replaces the variable; a per-signal one alone enables export.
        let o = OtlpOptions::from_vars(
            Some("http://cli:4318"),
            vars(&[(ENDPOINT_ENV, "http://env:4318")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.metrics_url, "http://cli:4318/v1/metrics");
        let o = OtlpOptions::from_vars(None, vars(&[(METRICS_ENDPOINT_ENV, "http://m:1/x")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.metrics_url.as_str(), o.logs_url.as_str()),
            ("http://m:1/x", "http://localhost:4318/v1/logs")
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong_and_never_show_a_header_value() {
        let err = |pairs: &[(&str, &str)]| OtlpOptions::from_vars(None, vars(pairs)).unwrap_err().to_string();
        let e = err(&[
            (ENDPOINT_ENV, "http://c:4318"),
            (HEADERS_ENV, "api-key=ok,secretvalue"),
        ]);
        assert!(
            e.contains(HEADERS_ENV) && e.contains("entry 2") && !e.contains("secretvalue"),
            "{e}"
        );
        let e = err(&[
            (ENDPOINT_ENV, "http://c:4318"),
            (HEADERS_ENV, "api-key=bad\nvalue"),
        ]);
        assert!(e.contains("entry 1") && !e.contains("bad"), "{e}");
        let e = err(&[(ENDPOINT_ENV, "http://c:4318"), (HEADERS_ENV, "k=%zz")]);
        assert!(e.contains("hex"), "{e}");
        let e = err(&[(ENDPOINT_ENV, "collector:4317")]);
        assert!(e.contains("not an http"), "{e}");
        let e = err(&[(ENDPOINT_ENV, "http://c:4318"), (PROTOCOL_ENV, "grpc")]);
        assert!(e.contains("http/json"), "{e}");
        let e = err(&[(ENDPOINT_ENV, "http://c:4318"), (COMPRESSION_ENV, "zstd")]);
        assert!(e.contains("gzip or none"), "{e}");
        let e = err(&[(ENDPOINT_ENV, "http://c:4318"), (TIMEOUT_ENV, "soon")]);
        assert!(e.contains("milliseconds"), "{e}");
    }

    #[test]
    fn attributes_are_typed_as_their_text_reads() {
        assert_eq!(typed_attribute("n", "2")["value"], json!({"intValue": "2"}));
        assert_eq!(typed_attribute("s", "0.5")["value"], json!({"doubleValue": 0.5}));
        assert_eq!(typed_attribute("d", "true")["value"], json!({"boolValue": true}));
        assert_eq!(
            typed_attribute("c", "none")["value"],
            json!({"stringValue": "none"})
        );
        assert_eq!(
            typed_attribute("nan", "NaN")["value"],
            json!({"stringValue": "NaN"})
        );
    }
}
