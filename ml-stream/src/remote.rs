//! [`RemoteScorer`]: a [`Scorer`] that calls an online endpoint, the way Azure Stream Analytics
//! calls an Azure ML function.
//!
//! - **Azure ML contract** (default): `POST {url}/score` with `{"data": [{row}, ...]}` in
//!   batches of `batch_size` rows (1..10000, default 1000, Stream Analytics' range and
//!   default), `parallel_requests` at once (default 1); the answer is a JSON array of one
//!   element per row (a number: the positive-class probability or the regression value; an
//!   object `{label, probabilities}` for multiclass).
//! - **Open Inference Protocol v2**: `POST {url}/v2/models/{m}[/versions/{v}]/infer` with one
//!   tensor per field; the answer's `probabilities` (or `prediction`) tensor.
//! - `Authorization: Bearer <key or token>` when a key is given.
//! - 429, 503, 502, 504, 408, timeouts and connection failures are retried with exponential
//!   backoff and jitter (at least the server's `Retry-After`); any other answer — 400, 401,
//!   404, 409, 500 — fails the batch at once with the server's message, as Stream Analytics
//!   fails the job.
//!
//! [`RemoteScorer::connect`] reads the endpoint's `/swagger.json` to learn the input schema
//! and the output kind (streamscore endpoints publish them as `x-streamscore-schema` and
//! `x-streamscore-output`); for another endpoint, give them with [`RemoteScorer::new`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use ml_core::{Column, Frame, OutputSpec, Predictions, Schema, Scorer};
use ndarray::Array2;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// Which contract the endpoint speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteProtocol {
    /// Azure ML online endpoint: `POST /score` with `{"data": rows}`.
    AzureMl,
    /// Open Inference Protocol v2: `POST /v2/models/{model}[/versions/{version}]/infer`.
    Oip {
        /// Model name.
        model: String,
        /// Version, if one is pinned.
        version: Option<String>,
    },
}

/// Settings of a [`RemoteScorer`].
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// The endpoint's base URL (`http://host:5001`); with the Azure ML protocol a URL that
    /// already ends in `/score` is used as is.
    pub url: String,
    /// The contract.
    pub protocol: RemoteProtocol,
    /// Rows per request, 1..=10000. Default 1000 (Stream Analytics' default).
    pub batch_size: usize,
    /// Requests in flight at once. Default 1 (Stream Analytics' default per partition).
    pub parallel_requests: usize,
    /// Key or token sent as `Authorization: Bearer <key>`.
    pub key: Option<String>,
    /// Longest wait for one answer. Default 30 s.
    pub timeout: Duration,
    /// Attempts per batch, the first included, for retryable failures. Default 8.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time. Default 100 ms.
    pub initial_backoff: Duration,
    /// Longest wait between attempts. Default 10 s.
    pub max_backoff: Duration,
}

impl RemoteConfig {
    /// Defaults for `url` with the Azure ML contract.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            protocol: RemoteProtocol::AzureMl,
            batch_size: 1000,
            parallel_requests: 1,
            key: None,
            timeout: Duration::from_secs(30),
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }

    /// Checks the ranges.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Err(Error::InvalidSetting { name, reason });
        if !(1..=10_000).contains(&self.batch_size) {
            return bad(
                "batch_size",
                format!(
                    "must be 1..=10000 rows (Stream Analytics' range), got {}",
                    self.batch_size
                ),
            );
        }
        if self.parallel_requests == 0 {
            return bad("parallel_requests", "must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "must be at least 1".into());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad(
                "url",
                format!("`{}` must start with http:// or https://", self.url),
            );
        }
        Ok(())
    }

    fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        match &self.protocol {
            RemoteProtocol::AzureMl if base.ends_with("/score") => base.to_string(),
            RemoteProtocol::AzureMl => format!("{base}/score"),
            RemoteProtocol::Oip { model, version: None } => format!("{base}/v2/models/{model}/infer"),
            RemoteProtocol::Oip {
                model,
                version: Some(v),
            } => format!("{base}/v2/models/{model}/versions/{v}/infer"),
        }
    }
}

/// A [`Scorer`] calling a remote endpoint; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RemoteScorer {
    config: Arc<RemoteConfig>,
    endpoint: String,
    client: reqwest::Client,
    schema: Schema,
    output: Option<OutputSpec>,
}

impl RemoteScorer {
    /// A scorer for an endpoint whose input schema is `schema` and whose output is `output`
    /// (`None`: numbers are read as regression values).
    pub fn new(config: RemoteConfig, schema: Schema, output: Option<OutputSpec>) -> Result<Self> {
        config.check()?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::InvalidSetting {
                name: "url",
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(RemoteScorer {
            endpoint: config.endpoint(),
            config: Arc::new(config),
            client,
            schema,
            output,
        })
    }

    /// A scorer for a streamscore endpoint: schema and output kind are read from its
    /// `/swagger.json` (with the key, if any).
    pub async fn connect(config: RemoteConfig) -> Result<Self> {
        config.check()?;
        let base = config.url.trim_end_matches('/').trim_end_matches("/score");
        let url = format!("{base}/swagger.json?version=3");
        let fail = |message: String| Error::Core(remote_error(&url, None, message));
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        // A server that is still loading its model answers 503: the swagger is fetched with the
        // same retries as a batch.
        let body = send_retrying(&config, &url, 0, || {
            let req = client.get(&url);
            match &config.key {
                Some(k) => req.bearer_auth(k),
                None => req,
            }
        })
        .await
        .map_err(Error::Core)?;
        let doc: Json =
            serde_json::from_slice(&body).map_err(|e| fail(format!("the swagger is not JSON: {e}")))?;
        let schema = doc
            .get("x-streamscore-schema")
            .ok_or_else(|| {
                fail("the swagger has no `x-streamscore-schema`; this is not a streamscore endpoint: give the schema with RemoteScorer::new".into())
            })
            .and_then(|s| Schema::from_json(&s.to_string()).map_err(Error::Core))?;
        let output = doc
            .get("x-streamscore-output")
            .and_then(|o| serde_json::from_value::<OutputSpec>(o.clone()).ok());
        RemoteScorer::new(config, schema, output)
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The output kind, when known.
    pub fn output(&self) -> Option<&OutputSpec> {
        self.output.as_ref()
    }

    fn body(&self, frame: &Frame, rows: std::ops::Range<usize>) -> Json {
        match &self.config.protocol {
            RemoteProtocol::AzureMl => {
                let data: Vec<Json> = rows.map(|r| Json::Object(row_object(frame, r))).collect();
                serde_json::json!({ "data": data })
            }
            RemoteProtocol::Oip { .. } => {
                let n = rows.len();
                let inputs: Vec<Json> = frame
                    .schema()
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let dt = match (&frame.columns()[i], f.dtype.is_numeric()) {
                            (Column::Float(_), _) => "FP64",
                            (Column::Int(_), _) => "INT64",
                            (Column::Bool(_), _) => "BOOL",
                            _ => "BYTES",
                        };
                        let data: Vec<Json> = rows.clone().map(|r| cell(frame, r, i)).collect();
                        serde_json::json!({"name": f.name, "datatype": dt, "shape": [n], "data": data})
                    })
                    .collect();
                serde_json::json!({ "inputs": inputs })
            }
        }
    }

    /// One batch, with retries.
    async fn call(&self, body: Json, rows: usize) -> ml_core::Result<Predictions> {
        let bytes = serde_json::to_vec(&body).map_err(|e| ml_core::Error::Internal(e.to_string()))?;
        let answer = send_retrying(&self.config, &self.endpoint, rows as u64, || {
            let req = self
                .client
                .post(&self.endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            match &self.config.key {
                Some(k) => req.bearer_auth(k),
                None => req,
            }
        })
        .await?;
        self.parse(&answer, rows)
    }

    fn parse(&self, body: &[u8], rows: usize) -> ml_core::Result<Predictions> {
        let bad = |m: String| remote_error(&self.endpoint, Some(200), m);
        let json: Json =
            serde_json::from_slice(body).map_err(|e| bad(format!("the answer is not JSON: {e}")))?;
        match &self.config.protocol {
            RemoteProtocol::AzureMl => {
                let Json::Array(items) = json else {
                    return Err(bad("the answer is not a JSON array of one element per row".into()));
                };
                if items.len() != rows {
                    return Err(bad(format!("{} answers for {rows} rows", items.len())));
                }
                self.read_elements(&items).map_err(bad)
            }
            RemoteProtocol::Oip { .. } => self.read_tensors(&json).map_err(bad),
        }
    }

    fn read_elements(&self, items: &[Json]) -> std::result::Result<Predictions, String> {
        let number = |v: &Json| {
            v.as_f64()
                .ok_or_else(|| format!("expected a number per row, got {v}"))
        };
        match &self.output {
            Some(OutputSpec::Binary { labels }) => {
                let mut probs = Array2::zeros((items.len(), 2));
                for (r, v) in items.iter().enumerate() {
                    let p = number(v)?;
                    probs[[r, 0]] = 1.0 - p;
                    probs[[r, 1]] = p;
                }
                Predictions::from_probabilities(labels.to_vec().into(), probs).map_err(|e| e.to_string())
            }
            Some(OutputSpec::Multiclass { labels }) => {
                let mut probs = Array2::zeros((items.len(), labels.len()));
                for (r, v) in items.iter().enumerate() {
                    let p = v
                        .get("probabilities")
                        .and_then(Json::as_object)
                        .ok_or_else(|| format!("expected {{label, probabilities}} per row, got {v}"))?;
                    for (k, l) in labels.iter().enumerate() {
                        probs[[r, k]] = p
                            .get(l)
                            .and_then(Json::as_f64)
                            .ok_or_else(|| format!("row {r} has no probability for class {l}"))?;
                    }
                }
                Predictions::from_probabilities(labels.to_vec().into(), probs).map_err(|e| e.to_string())
            }
            Some(OutputSpec::Regression) | None => {
                let values = items
                    .iter()
                    .map(number)
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Predictions::Regression {
                    values: values.into(),
                })
            }
        }
    }

    fn read_tensors(&self, json: &Json) -> std::result::Result<Predictions, String> {
        let outputs = json
            .get("outputs")
            .and_then(Json::as_array)
            .ok_or("the answer has no `outputs`")?;
        let find = |name: &str| {
            outputs
                .iter()
                .find(|o| o.get("name").and_then(Json::as_str) == Some(name))
        };
        let floats = |t: &Json| -> std::result::Result<Vec<f64>, String> {
            t.get("data")
                .and_then(Json::as_array)
                .ok_or("a tensor without data")?
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| format!("expected a number, got {v}")))
                .collect()
        };
        if let Some(t) = find("probabilities") {
            let shape: Vec<usize> = t
                .get("shape")
                .and_then(Json::as_array)
                .map(|s| s.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect())
                .unwrap_or_default();
            let [n, k] = shape[..] else {
                return Err(format!("`probabilities` has shape {shape:?}, expected [N, K]"));
            };
            let probs = Array2::from_shape_vec((n, k), floats(t)?).map_err(|e| e.to_string())?;
            let labels: Vec<String> = match &self.output {
                Some(o) if o.labels().len() == k => o.labels().to_vec(),
                _ => (0..k).map(|i| i.to_string()).collect(),
            };
            return Predictions::from_probabilities(labels.into(), probs).map_err(|e| e.to_string());
        }
        if let Some(t) = find("prediction") {
            return Ok(Predictions::Regression {
                values: floats(t)?.into(),
            });
        }
        Err("the answer has neither a `probabilities` nor a `prediction` output".into())
    }
}

#[async_trait]
impl Scorer for RemoteScorer {
    async fn score(&self, frame: &Frame) -> ml_core::Result<Predictions> {
        let n = frame.n_rows();
        let size = self.config.batch_size;
        let batches: Vec<(Json, usize)> = (0..n)
            .step_by(size)
            .map(|start| {
                let end = (start + size).min(n);
                (self.body(frame, start..end), end - start)
            })
            .collect();
        let results: Vec<ml_core::Result<Predictions>> = futures::stream::iter(batches)
            .map(|(body, rows)| self.call(body, rows))
            .buffered(self.config.parallel_requests)
            .collect()
            .await;
        let mut parts = Vec::with_capacity(results.len());
        for r in results {
            parts.push(r?);
        }
        concat(parts)
    }

    fn schema(&self) -> Option<&Schema> {
        Some(&self.schema)
    }
}

/// Joins the predictions of consecutive batches.
fn concat(parts: Vec<Predictions>) -> ml_core::Result<Predictions> {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Ok(Predictions::Regression {
            values: ndarray::Array1::zeros(0),
        });
    };
    parts.try_fold(first, |acc, p| match (acc, p) {
        (Predictions::Regression { values: a }, Predictions::Regression { values: b }) => {
            Ok(Predictions::Regression {
                values: a.iter().chain(b.iter()).copied().collect(),
            })
        }
        (
            Predictions::Classification {
                labels,
                probabilities: a,
                ..
            },
            Predictions::Classification { probabilities: b, .. },
        ) => {
            let all = ndarray::concatenate(ndarray::Axis(0), &[a.view(), b.view()])
                .map_err(|e| ml_core::Error::Internal(e.to_string()))?;
            Predictions::from_probabilities(labels, all)
        }
        _ => Err(ml_core::Error::Internal(
            "batches answered with different output kinds".into(),
        )),
    })
}

fn remote_error(endpoint: &str, status: Option<u16>, message: String) -> ml_core::Error {
    ml_core::Error::Remote {
        endpoint: endpoint.to_string(),
        status,
        message,
    }
}

/// Sends the request `make` builds until it is answered 200, retrying timeouts, connection
/// failures and 408/429/502/503/504 up to `config.max_attempts` attempts with doubling backoff and
/// jitter (at least the server's `Retry-After`); returns the 200 answer's body, or the error that
/// names the endpoint, the status and the server's message. `seed` varies the jitter.
async fn send_retrying(
    config: &RemoteConfig,
    url: &str,
    seed: u64,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> ml_core::Result<Vec<u8>> {
    let mut wait = config.initial_backoff;
    let mut attempt = 1;
    loop {
        let (retryable, status, message, retry_after) = match make().send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                match resp.bytes().await {
                    Ok(body) if status == 200 => return Ok(body.to_vec()),
                    Ok(body) => (
                        matches!(status, 408 | 429 | 502 | 503 | 504),
                        Some(status),
                        server_message(&body),
                        retry_after,
                    ),
                    Err(e) => (true, Some(status), format!("the answer was cut off: {e}"), None),
                }
            }
            Err(e) if e.is_timeout() => (
                true,
                None,
                format!("no answer within {} ms", config.timeout.as_millis()),
                None,
            ),
            Err(e) => (true, None, format!("cannot reach the endpoint: {e}"), None),
        };
        if !retryable || attempt >= config.max_attempts {
            let message = if retryable {
                format!("{message} (gave up after {attempt} attempts)")
            } else {
                message
            };
            return Err(remote_error(url, status, message));
        }
        // Jitter in [0.5, 1) so parallel callers do not retry in lockstep.
        let jitter = 0.5 + 0.5 * unit(attempt as u64 ^ seed);
        let delay = wait
            .mul_f64(jitter)
            .max(retry_after.unwrap_or_default())
            .min(config.max_backoff);
        tokio::time::sleep(delay).await;
        wait = (wait * 2).min(config.max_backoff);
        attempt += 1;
    }
}

/// The server's message: the `message` or `error` field of a JSON body, else the text.
fn server_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Json>(body)
        && let Some(m) = json
            .get("message")
            .or_else(|| json.get("error"))
            .and_then(Json::as_str)
    {
        return m.to_string();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty answer)".into()
    } else {
        text.chars().take(500).collect()
    }
}

fn cell(frame: &Frame, row: usize, col: usize) -> Json {
    match frame.value(row, col) {
        Some(ml_core::Value::Float(x)) => serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number),
        Some(ml_core::Value::Int(x)) => x.into(),
        Some(ml_core::Value::Bool(x)) => x.into(),
        Some(ml_core::Value::Str(x)) => x.into(),
        Some(ml_core::Value::Null) | None => Json::Null,
    }
}

fn row_object(frame: &Frame, row: usize) -> Map<String, Json> {
    frame
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), cell(frame, row, i)))
        .collect()
}

fn unit(seed: u64) -> f64 {
    (ml_core::rng::splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64
}
