//! Inference records to an Azure Monitor Log Analytics table through the Logs Ingestion API
//! (feature `azure`): [`LogsIngestionSink`].
//!
//! Wire contract (Azure Monitor Logs Ingestion, api-version 2023-01-01):
//! ```text
//! POST {DCE}/dataCollectionRules/{dcr-immutable-id}/streams/{stream}?api-version=2023-01-01
//! Authorization: Bearer <token for https://monitor.azure.com>
//! Content-Type: application/json
//! Content-Encoding: gzip
//! body: gzip of a JSON array of records, at most 1 MB per call (compressed or not)
//! → 204 No Content
//! ```
//! Records are buffered by `write_batch` and sent by `flush` in calls of at most
//! [`LogsIngestionOptions::max_body_bytes`] of uncompressed JSON (so the compressed body is
//! under the limit too). A call answered 429 or 5xx, or that fails on the network, is retried
//! with backoff, waiting at least what `Retry-After` says; other answers (400 bad records,
//! 401/403 credentials, 404 unknown rule or stream, 413) fail at once with the service's
//! message. Calls already accepted are not sent again when a later one fails.
//!
//! One record per scored row, with the columns a custom table `<Table>_CL` of the data
//! collection rule declares: `TimeGenerated` (RFC 3339), `CorrelationId`, `RequestId`, `Model`,
//! `ModelVersion`, `Partition`, `Offset`, `EventTime` (or null), `LatencyMs`, `Inputs` and
//! `Outputs` (dynamic: the row's JSON objects).
//!
//! Tokens: `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` (a service principal,
//! the variables `azure_identity`'s environment credential reads; the token is requested from
//! `AZURE_AUTHORITY_HOST`, default `https://login.microsoftonline.com`, and cached until five
//! minutes before it expires), or a ready token in `AZURE_MONITOR_ACCESS_TOKEN`. Tokens and
//! secrets are never printed.

use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::datacollection::rfc3339;
use crate::error::{Error, Result};
use crate::pipeline::RetryPolicy;
use crate::spec::SpecRegistry;
use crate::traits::{InferenceRecord, InferenceSink};

/// The API version of the Logs Ingestion API spoken here.
pub const API_VERSION: &str = "2023-01-01";
/// The most bytes one call may carry (the service's limit, compressed or not).
pub const MAX_BODY_BYTES: usize = 1_000_000;
/// The token audience of the Logs Ingestion API.
pub const SCOPE: &str = "https://monitor.azure.com/.default";

/// Gives the Bearer token of each call.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A valid token (without the `Bearer ` prefix).
    async fn token(&self) -> Result<String>;
}

/// A fixed token (`AZURE_MONITOR_ACCESS_TOKEN`); `Debug` does not show it.
pub struct StaticToken(String);

impl StaticToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<String> {
        Ok(self.0.clone())
    }
}

/// The OAuth 2.0 client-credentials flow of Microsoft Entra ID for a service principal, with
/// the token cached until five minutes before it expires.
pub struct ClientSecretToken {
    authority: String,
    tenant: String,
    client_id: String,
    secret: String,
    http: reqwest::Client,
    cached: Mutex<Option<(String, Instant)>>,
}

impl fmt::Debug for ClientSecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretToken")
            .field("authority", &self.authority)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientSecretToken {
    /// Tokens for `client_id` in `tenant` from `authority` (`https://login.microsoftonline.com`).
    pub fn new(authority: &str, tenant: &str, client_id: &str, secret: &str) -> Self {
        ClientSecretToken {
            authority: authority.trim_end_matches('/').to_string(),
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            secret: secret.to_string(),
            http: reqwest::Client::new(),
            cached: Mutex::new(None),
        }
    }
}

#[async_trait]
impl TokenProvider for ClientSecretToken {
    async fn token(&self) -> Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant);
        let failed = |reason: String| Error::SinkFailed {
            sink: "logsingestion".into(),
            attempts: 1,
            reason: format!("getting a token from {url}: {reason}"),
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.as_str()),
            ("scope", SCOPE),
        ];
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| failed(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if !status.is_success() {
            let why = json["error_description"]
                .as_str()
                .or(json["error"].as_str())
                .unwrap_or("");
            return Err(failed(format!("HTTP {status} {why}")));
        }
        let token = json["access_token"]
            .as_str()
            .ok_or_else(|| failed("the answer has no access_token".into()))?
            .to_string();
        let lifetime = json["expires_in"].as_u64().unwrap_or(3600).saturating_sub(300);
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(lifetime)));
        Ok(token)
    }
}

/// `application/x-www-form-urlencoded` of one value.
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The token provider the environment describes (see the module documentation).
pub fn token_from_env() -> Result<Arc<dyn TokenProvider>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(tenant), Some(client), Some(secret)) = (
        var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID"),
        var("AZURE_CLIENT_SECRET"),
    ) {
        let authority =
            var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com".into());
        return Ok(Arc::new(ClientSecretToken::new(
            &authority, &tenant, &client, &secret,
        )));
    }
    if let Some(token) = var("AZURE_MONITOR_ACCESS_TOKEN") {
        return Ok(Arc::new(StaticToken::new(token)));
    }
    Err(Error::InvalidSetting {
        name: "logs ingestion credentials",
        reason: "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal with the Monitoring Metrics Publisher role on the rule), or AZURE_MONITOR_ACCESS_TOKEN".into(),
    })
}

/// Options of [`LogsIngestionSink`].
#[derive(Clone, Debug)]
pub struct LogsIngestionOptions {
    /// The data collection endpoint (`https://<dce>.<region>-1.ingest.monitor.azure.com`).
    pub endpoint: String,
    /// The data collection rule's immutable id (`dcr-…`).
    pub rule_id: String,
    /// The stream of the rule (`Custom-<Table>_CL`).
    pub stream: String,
    /// Most uncompressed bytes per call. Default and maximum [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Retries of a call answered 429/5xx or lost on the network. Default 8 attempts, 500 ms
    /// doubling to 30 s.
    pub retry: RetryPolicy,
    /// Timeout of one call. Default 30 s.
    pub timeout: Duration,
}

impl LogsIngestionOptions {
    /// Defaults for an endpoint, rule and stream.
    pub fn new(endpoint: &str, rule_id: &str, stream: &str) -> Self {
        LogsIngestionOptions {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            rule_id: rule_id.to_string(),
            stream: stream.to_string(),
            max_body_bytes: MAX_BODY_BYTES,
            retry: RetryPolicy {
                max_attempts: 8,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(30),
            },
            timeout: Duration::from_secs(30),
        }
    }

    /// The URL calls go to.
    pub fn url(&self) -> String {
        format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
            self.endpoint, self.rule_id, self.stream
        )
    }
}

/// Sends inference records to a Log Analytics table through a data collection rule.
#[derive(Debug)]
pub struct LogsIngestionSink {
    options: LogsIngestionOptions,
    token: Arc<dyn TokenProvider>,
    http: reqwest::Client,
    /// Serialized records not sent yet.
    pending: Vec<Vec<u8>>,
    calls: u64,
}

impl LogsIngestionSink {
    /// A sink with `options`, authenticating with `token`.
    pub fn new(options: LogsIngestionOptions, token: Arc<dyn TokenProvider>) -> Result<Self> {
        if !(2..=MAX_BODY_BYTES).contains(&options.max_body_bytes) {
            return Err(Error::InvalidSetting {
                name: "max_body_bytes",
                reason: format!("must be 2 to {MAX_BODY_BYTES} (the service's limit per call)"),
            });
        }
        for (name, value) in [
            ("endpoint", &options.endpoint),
            ("rule", &options.rule_id),
            ("stream", &options.stream),
        ] {
            if value.is_empty() {
                return Err(Error::InvalidSetting {
                    name: "logs ingestion",
                    reason: format!("the {name} is empty"),
                });
            }
        }
        if !options.stream.starts_with("Custom-") && !options.stream.starts_with("Microsoft-") {
            return Err(Error::InvalidSetting {
                name: "stream",
                reason: format!(
                    "`{}` is not a stream of a data collection rule; streams are named Custom-<Table>_CL",
                    options.stream
                ),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(LogsIngestionSink {
            options,
            token,
            http,
            pending: Vec::new(),
            calls: 0,
        })
    }

    /// Calls accepted by the service so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The record sent for one inference record.
    pub fn record_json(r: &InferenceRecord) -> serde_json::Value {
        serde_json::json!({
            "TimeGenerated": rfc3339(r.timestamp_ms),
            "CorrelationId": r.correlation_id,
            "RequestId": r.request_id,
            "Model": r.model_name,
            "ModelVersion": r.model_version,
            "Partition": r.position.partition,
            "Offset": r.position.offset,
            "EventTime": r.event_timestamp_ms.map(rfc3339),
            "LatencyMs": r.latency_ms,
            "Inputs": r.inputs,
            "Outputs": r.outputs,
        })
    }

    /// How many pending records (from the front) fit in one call.
    fn next_call_len(&self) -> Result<usize> {
        let mut size = 2; // [ ]
        for (i, record) in self.pending.iter().enumerate() {
            let add = record.len() + usize::from(i > 0);
            if size + add > self.options.max_body_bytes {
                if i == 0 {
                    return Err(Error::SinkFailed {
                        sink: self.describe(),
                        attempts: 0,
                        reason: format!(
                            "one record is {} bytes, over the {} bytes a call may carry; log fewer input fields",
                            record.len(),
                            self.options.max_body_bytes
                        ),
                    });
                }
                return Ok(i);
            }
            size += add;
        }
        Ok(self.pending.len())
    }

    async fn send(&self, body: &[u8]) -> Result<()> {
        let url = self.options.url();
        let mut wait = self.options.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let token = self.token.token().await?;
            let sent = self
                .http
                .post(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(body.to_vec())
                .send()
                .await;
            let (retryable, reason, retry_after) = match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let retry_after = retry_after(r.headers());
                    let text = r.text().await.unwrap_or_default();
                    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    let message = json["error"]["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| text.chars().take(300).collect());
                    let code = json["error"]["code"].as_str().unwrap_or("");
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    let mut reason = format!("HTTP {status}");
                    if !code.is_empty() {
                        reason.push_str(&format!(" {code}"));
                    }
                    if !message.is_empty() {
                        reason.push_str(&format!(": {message}"));
                    }
                    (retryable, reason, retry_after)
                }
                // Network errors and timeouts; reqwest's messages hold the URL, never headers.
                Err(e) => (true, e.to_string(), None),
            };
            if !retryable || attempt >= self.options.retry.max_attempts {
                return Err(Error::SinkFailed {
                    sink: self.describe(),
                    attempts: attempt,
                    reason,
                });
            }
            let delay = retry_after.map_or(wait, |r| r.max(wait));
            eprintln!(
                "warning: {} answered {reason} (attempt {attempt} of {}); retrying in {} ms",
                self.describe(),
                self.options.retry.max_attempts,
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
            wait = (wait * 2).min(self.options.retry.max_backoff);
            attempt += 1;
        }
    }
}

#[async_trait]
impl InferenceSink for LogsIngestionSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        for r in records {
            let bytes = serde_json::to_vec(&LogsIngestionSink::record_json(r))
                .map_err(|e| Error::Internal(e.to_string()))?;
            self.pending.push(bytes);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            let n = self.next_call_len()?;
            let mut json = Vec::with_capacity(self.options.max_body_bytes.min(1 << 20));
            json.push(b'[');
            for (i, record) in self.pending[..n].iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                json.extend_from_slice(record);
            }
            json.push(b']');
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&json).map_err(|e| Error::Internal(e.to_string()))?;
            let body = gz.finish().map_err(|e| Error::Internal(e.to_string()))?;
            self.send(&body).await?;
            // Accepted: never sent again, even if a later call fails.
            self.pending.drain(..n);
            self.calls += 1;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "logsingestion:{} (rule {}, stream {})",
            self.options.endpoint, self.options.rule_id, self.options.stream
        )
    }
}

use crate::exporter::retry_after;

pub(crate) fn register(registry: &mut SpecRegistry) {
    registry.register_sink("logsingestion", |spec| {
        spec.only_params(&["rule", "stream", "max_body_bytes"])?;
        let bad = |reason: &str| Error::InvalidSpec {
            spec: spec.raw.clone(),
            reason: reason.to_string(),
        };
        let endpoint = spec.raw["logsingestion:".len()..]
            .split('?')
            .next()
            .unwrap_or_default();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(bad(
                "expected logsingestion:https://DCE?rule=DCR_IMMUTABLE_ID&stream=Custom-TABLE_CL",
            ));
        }
        let rule = spec
            .params
            .get("rule")
            .ok_or_else(|| bad("missing rule=DCR_IMMUTABLE_ID (dcr-…)"))?;
        let stream = spec
            .params
            .get("stream")
            .ok_or_else(|| bad("missing stream=Custom-TABLE_CL"))?;
        let mut options = LogsIngestionOptions::new(endpoint, rule, stream);
        options.max_body_bytes = spec.u64_param("max_body_bytes", options.max_body_bytes as u64)? as usize;
        Ok(Box::new(LogsIngestionSink::new(options, token_from_env()?)?))
    });
}
