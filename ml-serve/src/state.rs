//! What the server holds: its settings, the model it serves, the keys, the limits.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ml_core::Model;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::payload::PayloadLogger;
use crate::swagger;

/// Settings of the server. Defaults follow Azure ML managed online deployments where one
/// exists (`request_timeout_ms` 5000) and otherwise say where they come from.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Largest request body, in bytes; larger bodies get 413. Default 100 MiB: a Stream
    /// Analytics batch of 10,000 rows of 200 wide fields stays far below it.
    pub max_body_bytes: usize,
    /// Requests scored at once; more get 429 with `Retry-After`. Default 512, far above what a
    /// core can score in one request time, so the limit bites only when requests queue up.
    pub max_concurrent_requests: usize,
    /// Longest time to decode and score one request; longer gets 503 `Scoring timeout after N
    /// ms` (retryable). Default 5000 ms, Azure ML's `request_timeout_ms` default.
    pub request_timeout: Duration,
    /// Longest time a client may take to send its body; slower gets 408. Default 10 s.
    pub body_timeout: Duration,
    /// Seconds told to a client in `Retry-After` on 429 and 503. Default 1.
    pub retry_after_s: u64,
    /// Accepted keys (`Authorization: Bearer <key>`): a primary and a secondary, so keys can
    /// be rotated without downtime. Empty: no authentication.
    pub keys: Vec<String>,
    /// Scoring requests logged to the payload sinks, 0..=1. Default 1.
    pub payload_sampling_rate: f64,
    /// Requests waiting to be written to the payload sinks; more are dropped and counted.
    /// Default 1024.
    pub payload_queue_capacity: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_body_bytes: 100 * 1024 * 1024,
            max_concurrent_requests: 512,
            request_timeout: Duration::from_millis(5000),
            body_timeout: Duration::from_secs(10),
            retry_after_s: 1,
            keys: Vec::new(),
            payload_sampling_rate: 1.0,
            payload_queue_capacity: 1024,
        }
    }
}

impl ServeConfig {
    /// Checks the ranges.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(Error::InvalidSetting {
                name,
                reason: reason.into(),
            })
        };
        if self.max_body_bytes == 0 {
            return bad("max_body_bytes", "must be at least 1");
        }
        if self.max_concurrent_requests == 0 {
            return bad("max_concurrent_requests", "must be at least 1");
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "must be longer than 0 ms");
        }
        if !(0.0..=1.0).contains(&self.payload_sampling_rate) {
            return bad("payload_sampling_rate", "must be between 0 and 1");
        }
        if self.payload_queue_capacity == 0 {
            return bad("payload_queue_capacity", "must be at least 1");
        }
        if self.keys.len() > 2 {
            return bad("keys", "at most two keys (primary and secondary)");
        }
        if self.keys.iter().any(|k| k.trim().is_empty()) {
            return bad("keys", "a key must not be empty");
        }
        Ok(())
    }
}

/// A model ready to serve, with what is derived from it once (swagger documents).
#[derive(Debug)]
pub struct ServedModel {
    /// Model name (`credit`).
    pub name: String,
    /// Version (`3`).
    pub version: String,
    /// The model.
    pub model: Arc<dyn Model>,
    /// The model's schema, shared with every frame built for it.
    pub schema: Arc<ml_core::Schema>,
    /// `x-streamscore-model-version` value, `name:version`.
    pub(crate) version_header: axum::http::HeaderValue,
    /// Swagger 2.0, OpenAPI 3.0 and 3.1 documents.
    pub(crate) swagger: [axum::body::Bytes; 3],
}

impl ServedModel {
    /// Prepares `model` to be served as `name:version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>, model: Arc<dyn Model>) -> Result<Self> {
        let name = name.into();
        let version = version.into();
        let version_header =
            axum::http::HeaderValue::from_str(&format!("{name}:{version}")).map_err(|_| {
                Error::InvalidSetting {
                    name: "model",
                    reason: format!("model name `{name}` and version `{version}` must be printable ASCII"),
                }
            })?;
        let swagger = swagger::documents(&name, &version, model.as_ref());
        Ok(ServedModel {
            name,
            version,
            schema: Arc::new(model.schema().clone()),
            model,
            version_header,
            swagger,
        })
    }
}

/// The shared state of the server; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ServeConfig,
    model: RwLock<Option<Arc<ServedModel>>>,
    pub(crate) permits: Semaphore,
    pub(crate) payload: Option<PayloadLogger>,
    pub(crate) started: Instant,
}

impl AppState {
    /// A server with no model yet: health routes answer, readiness is false and scoring
    /// routes answer 503 until [`AppState::set_model`].
    pub fn new(config: ServeConfig) -> Result<Self> {
        Self::with_payload_logger(config, None)
    }

    /// Like [`AppState::new`], handing scoring requests and responses to `payload`.
    pub fn with_payload_logger(config: ServeConfig, payload: Option<PayloadLogger>) -> Result<Self> {
        config.check()?;
        crate::metrics::init();
        Ok(AppState {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.max_concurrent_requests),
                config,
                model: RwLock::new(None),
                payload,
                started: Instant::now(),
            }),
        })
    }

    /// A ready server for `model`.
    pub fn with_model(config: ServeConfig, model: ServedModel) -> Result<Self> {
        let state = AppState::new(config)?;
        state.set_model(model);
        Ok(state)
    }

    /// Starts serving `model` (requests in flight finish with the model they started with).
    pub fn set_model(&self, model: ServedModel) {
        crate::metrics::model_loaded(&model.name, &model.version);
        tracing::info!(
            model = %model.name,
            version = %model.version,
            after_ms = self.inner.started.elapsed().as_millis() as u64,
            "model loaded; ready"
        );
        let mut slot = self.inner.model.write().unwrap_or_else(|e| e.into_inner());
        *slot = Some(Arc::new(model));
    }

    /// The model being served, if loaded.
    pub fn model(&self) -> Option<Arc<ServedModel>> {
        self.inner.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True once a model is loaded.
    pub fn is_ready(&self) -> bool {
        self.model().is_some()
    }

    /// The settings.
    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    /// The payload logger, if any.
    pub fn payload_logger(&self) -> Option<&PayloadLogger> {
        self.inner.payload.as_ref()
    }
}
