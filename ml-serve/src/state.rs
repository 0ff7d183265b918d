//! What the server holds: its settings, the model it serves, the keys, the limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ml_core::Model;
use tokio::sync::Semaphore;

use crate::deployment::{DEFAULT_DEPLOYMENT, Deployment, Deployments};
use crate::error::{Error, Result};
use crate::payload::PayloadLogger;
use crate::swagger;

/// Settings of the server. Defaults follow Azure ML managed online deployments where one
/// exists (`request_timeout_ms` 5000) and otherwise say where they come from.
#[derive(Clone)]
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
    /// Longest time a client may take to send its request line and headers (and, with TLS, to
    /// finish the handshake); slower connections are closed (slowloris). Default 10 s.
    pub header_timeout: Duration,
    /// Seconds told to a client in `Retry-After` on 429 and 503. Default 1.
    pub retry_after_s: u64,
    /// Accepted keys (`Authorization: Bearer <key>`): a primary and a secondary, so keys can
    /// be rotated without downtime. Empty (and no `key_file`): no authentication.
    pub keys: Vec<String>,
    /// A key file ([`crate::keys::read_key_file`]) used instead of `keys`, re-read when it
    /// changes: keys rotate without a restart.
    pub key_file: Option<std::path::PathBuf>,
    /// How often the key file is checked for a change, at most (on a request). Default 1 s.
    pub key_reload_interval: Duration,
    /// Scoring requests logged to the payload sinks, 0..=1. Default 1.
    pub payload_sampling_rate: f64,
    /// Requests waiting to be written to the payload sinks; more are dropped and counted.
    /// Default 1024.
    pub payload_queue_capacity: usize,
    /// Adaptive batching of concurrent single-row requests into one model call; `None`
    /// (the default) scores each request on its own.
    pub batching: Option<crate::batching::BatchConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_body_bytes: 100 * 1024 * 1024,
            max_concurrent_requests: 512,
            request_timeout: Duration::from_millis(5000),
            body_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            retry_after_s: 1,
            keys: Vec::new(),
            key_file: None,
            key_reload_interval: Duration::from_secs(1),
            payload_sampling_rate: 1.0,
            payload_queue_capacity: 1024,
            batching: None,
        }
    }
}

/// Keys are never shown: `Debug` counts them.
impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("request_timeout", &self.request_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("header_timeout", &self.header_timeout)
            .field("retry_after_s", &self.retry_after_s)
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("key_file", &self.key_file)
            .field("key_reload_interval", &self.key_reload_interval)
            .field("payload_sampling_rate", &self.payload_sampling_rate)
            .field("payload_queue_capacity", &self.payload_queue_capacity)
            .field("batching", &self.batching)
            .finish()
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
        if self.key_file.is_some() && !self.keys.is_empty() {
            return bad("key_file", "give either keys or a key file, not both");
        }
        if self.body_timeout.is_zero() {
            return bad("body_timeout", "must be longer than 0 ms");
        }
        if self.header_timeout.is_zero() {
            return bad("header_timeout", "must be longer than 0 ms");
        }
        if let Some(b) = &self.batching {
            b.check()?;
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

/// The `max_concurrent_requests` scoring permits: one held by each scoring request being
/// served (decoding, waiting for a batch or being scored).
#[derive(Debug)]
pub(crate) struct Permits {
    semaphore: Semaphore,
    max: usize,
}

impl Permits {
    fn new(max: usize) -> Self {
        Permits {
            semaphore: Semaphore::new(max),
            max,
        }
    }

    /// A permit, or an error when all are held.
    pub(crate) fn try_acquire(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::TryAcquireError> {
        self.semaphore.try_acquire()
    }

    /// Scoring requests holding a permit now.
    pub(crate) fn in_flight(&self) -> usize {
        self.max - self.semaphore.available_permits()
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
    pub(crate) deployments: Deployments,
    pub(crate) batcher: Option<crate::batching::Batcher>,
    pub(crate) permits: Arc<Permits>,
    pub(crate) keys: crate::keys::KeyRing,
    pub(crate) payload: Option<PayloadLogger>,
    pub(crate) started: Instant,
    pub(crate) metrics: crate::metrics::RequestMetrics,
}

impl AppState {
    /// A server with no model yet: health routes answer, readiness is false and scoring
    /// routes answer 503 until [`AppState::set_model`].
    pub fn new(config: ServeConfig) -> Result<Self> {
        Self::with_payload_logger(config, None)
    }

    /// Like [`AppState::new`], handing scoring requests and responses to `payload`.
    pub fn with_payload_logger(config: ServeConfig, payload: Option<PayloadLogger>) -> Result<Self> {
        Self::with_deployments(
            config,
            payload,
            vec![(Deployment::new(DEFAULT_DEPLOYMENT)?, 100)],
            None,
            0,
        )
    }

    /// A server of several deployments with their traffic weights (summing to 100), and
    /// optionally a shadow deployment (one of them) that gets a copy of the live traffic.
    /// `traffic_seed` seeds the draws of the traffic split. Live requests are logged to
    /// `payload`, unless their deployment has its own logger.
    pub fn with_deployments(
        config: ServeConfig,
        payload: Option<PayloadLogger>,
        deployments: Vec<(Deployment, u32)>,
        shadow: Option<&str>,
        traffic_seed: u64,
    ) -> Result<Self> {
        config.check()?;
        crate::metrics::init();
        let permits = Arc::new(Permits::new(config.max_concurrent_requests));
        let batcher = config
            .batching
            .clone()
            .map(|b| crate::batching::Batcher::start(b, permits.clone()));
        let keys = crate::keys::KeyRing::new(
            config.keys.clone(),
            config.key_file.as_deref(),
            config.key_reload_interval,
        )?;
        Ok(AppState {
            inner: Arc::new(Inner {
                permits,
                keys,
                deployments: Deployments::new(deployments, shadow, traffic_seed)?,
                batcher,
                config,
                payload,
                started: Instant::now(),
                metrics: crate::metrics::RequestMetrics::default(),
            }),
        })
    }

    /// A ready server for `model`.
    pub fn with_model(config: ServeConfig, model: ServedModel) -> Result<Self> {
        let state = AppState::new(config)?;
        state.set_model(model);
        Ok(state)
    }

    /// Starts serving `model` in the first deployment (requests in flight finish with the
    /// model they started with).
    pub fn set_model(&self, model: ServedModel) {
        tracing::info!(
            model = %model.name,
            version = %model.version,
            after_ms = self.inner.started.elapsed().as_millis() as u64,
            "model loaded; ready"
        );
        self.inner.deployments.list[0].set_model(model);
    }

    /// The model the first deployment serves, if loaded.
    pub fn model(&self) -> Option<Arc<ServedModel>> {
        self.inner.deployments.list[0].model()
    }

    /// Scoring requests being served now: those holding one of the
    /// `max_concurrent_requests` permits (decoding, waiting for a batch or being scored). What
    /// a drain waits on, and what the adaptive batcher compares its batch with.
    pub fn scoring_in_flight(&self) -> usize {
        self.inner.permits.in_flight()
    }

    /// True once every deployment has a model.
    pub fn is_ready(&self) -> bool {
        self.inner.deployments.list.iter().all(|d| d.model().is_some())
    }

    /// The deployment called `name`.
    pub fn deployment(&self, name: &str) -> Option<Arc<Deployment>> {
        self.inner.deployments.get(name).cloned()
    }

    /// Every deployment, in the order given.
    pub fn deployments(&self) -> Vec<Arc<Deployment>> {
        self.inner.deployments.list.clone()
    }

    /// The traffic weights, one per deployment in order.
    pub fn traffic(&self) -> Vec<u32> {
        self.inner.deployments.weights()
    }

    /// Sets the traffic weights, one per deployment in order, summing to 100.
    pub fn set_traffic(&self, weights: Vec<u32>) -> Result<()> {
        self.inner.deployments.set_weights(weights)
    }

    /// Waits until every request mirrored to the shadow deployment so far has been scored and
    /// handed to its payload logger.
    pub async fn shadow_settled(&self) {
        self.inner.deployments.shadow_settled().await;
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
