//! Deployments: several models served at once behind one endpoint, as on an Azure ML managed
//! online endpoint.
//!
//! - **Traffic split**: each scoring request goes to one deployment, drawn with the traffic
//!   weights (a seeded, lock-free generator per server, so a run is reproducible). The request
//!   header `azureml-model-deployment: <name>` pins a deployment; every scoring answer names the
//!   deployment that answered in the same header, and its version in
//!   `x-streamscore-model-version`.
//! - **Shadow** (Azure ML's mirror traffic): a copy of each live request also goes to the shadow
//!   deployment, off the request path. Its answers go to the shadow deployment's own payload
//!   logger, are compared with the live answer (agreement rate, latency in `/metrics`) and are
//!   never returned.
//! - **Hot swap** ([`Deployment::try_swap`], [`follow`]): a new version is loaded, checked
//!   (schema compatible with the version being served, a warm-up prediction on the artifact's
//!   input example) and swapped in one pointer store. A request takes the model it will use when
//!   it arrives, so it never sees a half-loaded model, and a refused version leaves the old one
//!   serving (logged, counted in `streamscore_serve_swap_refused_total`).
//! - **Admin**: `GET /admin/traffic` lists the deployments, their versions and weights;
//!   `PUT /admin/traffic` with `{"blue": 80, "green": 20}` changes the weights at run time. Both
//!   need a key: without configured keys the admin routes are disabled (403).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Json as JsonBody;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use ml_core::{DataType, Frame, ModelArtifact, Predictions, Schema, Value};
use ml_registry::{ModelRegistry, Reference};
use serde_json::{Value as Json, json};
use tokio::sync::{Notify, watch};

use crate::error::{ApiError, Error, Result};
use crate::metrics::{
    DEPLOYMENT_REQUESTS, SHADOW_AGREEING_ROWS, SHADOW_AGREEMENT, SHADOW_DURATION, SHADOW_ERRORS, SHADOW_ROWS,
    SWAP_REFUSED, SWAPS, TRAFFIC_WEIGHT,
};
use crate::payload::{PayloadLogger, Pending};
use crate::state::{AppState, ServedModel};

/// `azureml-model-deployment`: pins a deployment on a request; names the deployment that
/// answered on a response.
pub const DEPLOYMENT_HEADER: HeaderName = HeaderName::from_static("azureml-model-deployment");

/// The artifact attachment read for the warm-up prediction of a hot swap (MLflow's name and
/// its `split` layout: `{"columns": [..], "data": [[..]]}`, or a list of records).
pub const INPUT_EXAMPLE: &str = "input_example.json";

/// The name of the one deployment of a server started with a single model.
pub const DEFAULT_DEPLOYMENT: &str = "default";

/// When a version became the one a deployment serves.
#[derive(Clone, Debug)]
pub struct Live {
    /// `name:version`.
    pub version: String,
    /// When it started answering.
    pub since: Instant,
}

/// One deployment: a name, the model it serves now, and optionally its own payload logger.
#[derive(Debug)]
pub struct Deployment {
    name: String,
    header: HeaderValue,
    model: RwLock<Option<Arc<ServedModel>>>,
    history: Mutex<Vec<Live>>,
    current: watch::Sender<Option<String>>,
    payload: Option<PayloadLogger>,
    refused: AtomicU64,
    shadow_rows: AtomicU64,
    shadow_agreeing: AtomicU64,
    /// The `deployment_requests_total` counter of this deployment, registered on first use
    /// (see `metrics::RequestMetrics`).
    requests: std::sync::OnceLock<metrics::Counter>,
}

impl Deployment {
    /// A deployment with no model yet. Names are what Azure ML accepts: 1 to 32 ASCII letters,
    /// digits and `-`, starting with a letter.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok = (1..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(Error::InvalidSetting {
                name: "deployment",
                reason: format!(
                    "deployment name `{name}` must be 1 to 32 letters, digits or `-`, starting with a letter (e.g. blue)"
                ),
            });
        }
        let header = HeaderValue::from_str(&name).map_err(|_| Error::InvalidSetting {
            name: "deployment",
            reason: format!("deployment name `{name}` is not a valid header value"),
        })?;
        Ok(Deployment {
            name,
            header,
            model: RwLock::new(None),
            history: Mutex::new(Vec::new()),
            current: watch::channel(None).0,
            payload: None,
            refused: AtomicU64::new(0),
            shadow_rows: AtomicU64::new(0),
            shadow_agreeing: AtomicU64::new(0),
            requests: std::sync::OnceLock::new(),
        })
    }

    /// Sends this deployment's scored requests to `logger` instead of the server's: the
    /// separate collection of a shadow deployment.
    pub fn with_payload_logger(mut self, logger: PayloadLogger) -> Self {
        self.payload = Some(logger);
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model served now, if loaded.
    pub fn model(&self) -> Option<Arc<ServedModel>> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts one scoring request answered by this deployment.
    pub(crate) fn count_request(&self) {
        self.requests
            .get_or_init(|| metrics::counter!(DEPLOYMENT_REQUESTS, "deployment" => self.name.clone()))
            .increment(1);
    }

    /// This deployment's own payload logger, if any.
    pub fn payload_logger(&self) -> Option<&PayloadLogger> {
        self.payload.as_ref()
    }

    /// Serves `model` from now on, unchecked (the first load, or an in-process swap by a
    /// program that checked the model itself). Requests in flight finish with the model they
    /// took when they arrived.
    pub fn set_model(&self, model: ServedModel) {
        crate::metrics::model_loaded(&model.name, &model.version);
        let label = format!("{}:{}", model.name, model.version);
        let model = Arc::new(model);
        {
            // The time is taken while the pointer's write lock is held: every request that took
            // the old model took it before that instant, and none can take the new one before
            // it, so the history's `since` is exactly the change as requests see it.
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let mut current = self.model.write().unwrap_or_else(|e| e.into_inner());
            let since = Instant::now();
            *current = Some(model);
            drop(current);
            history.push(Live {
                version: label.clone(),
                since,
            });
        }
        metrics::counter!(SWAPS, "deployment" => self.name.clone()).increment(1);
        tracing::info!(deployment = %self.name, version = %label, "serving");
        self.current.send_replace(Some(label));
    }

    /// Checks `candidate` and swaps it in, or refuses it and keeps serving the current model.
    ///
    /// Checks: every field the candidate reads exists in the current model's schema with the
    /// same type (or is nullable, so clients that do not send it still get answers), and a
    /// warm-up prediction on `example` (one row or more) returns one answer per row.
    pub fn try_swap(&self, candidate: ServedModel, example: &Frame) -> Result<()> {
        let label = format!("{}:{}", candidate.name, candidate.version);
        let check = || -> std::result::Result<(), String> {
            if let Some(current) = self.model() {
                compatible(&current.schema, &candidate.schema)?;
            }
            let p = candidate
                .model
                .predict(example)
                .map_err(|e| format!("the warm-up prediction failed: {e}"))?;
            if p.len() != example.n_rows() {
                return Err(format!(
                    "the warm-up prediction returned {} answers for {} rows",
                    p.len(),
                    example.n_rows()
                ));
            }
            Ok(())
        };
        match check() {
            Ok(()) => {
                self.set_model(candidate);
                Ok(())
            }
            Err(reason) => Err(self.refuse(&label, reason)),
        }
    }

    /// Records that `version` was refused for `reason` (log, metric) and returns the error.
    pub fn refuse(&self, version: &str, reason: String) -> Error {
        self.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(SWAP_REFUSED, "deployment" => self.name.clone()).increment(1);
        let error = Error::SwapRefused {
            deployment: self.name.clone(),
            version: version.to_string(),
            reason,
        };
        tracing::error!(deployment = %self.name, error = %error, "new version refused");
        error
    }

    /// Versions refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Every version served so far and since when, oldest first.
    pub fn history(&self) -> Vec<Live> {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follows the version served (`name:version`): changes at every swap.
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.current.subscribe()
    }

    /// Rows this deployment scored as the shadow, and how many agreed with the live answer.
    pub fn shadow_counts(&self) -> (u64, u64) {
        (
            self.shadow_rows.load(Ordering::Relaxed),
            self.shadow_agreeing.load(Ordering::Relaxed),
        )
    }
}

/// Why `new` cannot replace `old`, if it cannot.
fn compatible(old: &Schema, new: &Schema) -> std::result::Result<(), String> {
    let kind = |t: &DataType| match t {
        DataType::Float => "float",
        DataType::Int => "int",
        DataType::Bool => "bool",
        DataType::Categorical { .. } => "categorical",
        DataType::String => "string",
    };
    for f in new.fields() {
        match old.index_of(&f.name).map(|i| &old.fields()[i]) {
            Some(o) if kind(&o.dtype) != kind(&f.dtype) => {
                return Err(format!(
                    "the schema is not compatible: field `{}` was {} and is {} in the new version",
                    f.name,
                    kind(&o.dtype),
                    kind(&f.dtype)
                ));
            }
            None if !f.nullable => {
                return Err(format!(
                    "the schema is not compatible: the new version needs field `{}`, which clients of the current version do not send",
                    f.name
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The rows of the warm-up prediction for `artifact`: its [`INPUT_EXAMPLE`] attachment, or
/// when it has none one row built from the schema (0, false, the first category, "").
pub fn warm_up_frame(artifact: &ModelArtifact, schema: &Arc<Schema>) -> Result<Frame> {
    if let Some(bytes) = artifact.attachment(INPUT_EXAMPLE) {
        let bad = |reason: String| Error::InvalidSetting {
            name: "input_example",
            reason: format!("{INPUT_EXAMPLE} of the artifact: {reason}"),
        };
        let json: Json = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let body = match &json {
            Json::Object(m) if m.contains_key("columns") => json!({"dataframe_split": json}),
            Json::Array(_) => json!({"dataframe_records": json}),
            _ => json.clone(),
        };
        return match crate::input::mlflow(&body, schema) {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(bad("it holds no rows".into())),
            Err(e) => Err(bad(e.message)),
        };
    }
    let row: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| match &f.dtype {
            DataType::Float => Value::Float(0.0),
            DataType::Int => Value::Int(0),
            DataType::Bool => Value::Bool(false),
            DataType::Categorical { vocabulary, .. } => vocabulary
                .values()
                .first()
                .map_or(Value::Null, |v| Value::Str(v.clone())),
            DataType::String => Value::Str(String::new()),
        })
        .collect();
    Ok(Frame::from_rows(schema.clone(), &[row])?)
}

/// Loads version `reference` from `registry`, checks it and swaps it into `deployment`.
pub async fn load_and_swap(
    deployment: &Arc<Deployment>,
    registry: &dyn ModelRegistry,
    reference: &Reference,
) -> Result<()> {
    // Resolve first, so a refusal names the version (`credit:4`), not the alias.
    let reference = match registry.resolve(reference).await {
        Ok(v) => v.reference(),
        Err(e) => return Err(deployment.refuse(&reference.to_string(), format!("cannot resolve it: {e}"))),
    };
    let label = reference.to_string();
    let loaded = match registry.get(&reference).await {
        Ok(l) => l,
        Err(e) => return Err(deployment.refuse(&label, format!("cannot load it: {e}"))),
    };
    let deployment = deployment.clone();
    let task = tokio::task::spawn_blocking(move || {
        let name = loaded.version.name.clone();
        let version = loaded.version.version.to_string();
        let label = format!("{name}:{version}");
        let prepared = loaded
            .artifact
            .load_model()
            .map_err(|e| format!("cannot load its model: {e}"))
            .and_then(|m| ServedModel::new(name, version, m).map_err(|e| e.to_string()))
            .and_then(|m| {
                warm_up_frame(&loaded.artifact, &m.schema)
                    .map(|f| (m, f))
                    .map_err(|e| e.to_string())
            });
        match prepared {
            Ok((model, example)) => deployment.try_swap(model, &example),
            Err(reason) => Err(deployment.refuse(&label, reason)),
        }
    });
    task.await
        .map_err(|e| Error::Registry(format!("the loading task failed: {e}")))?
}

/// Makes `deployment` follow `reference` (an alias such as `credit@prod`) in `registry`: each
/// time it resolves to another version, that version is loaded, checked and swapped in
/// ([`load_and_swap`]); a refused version is logged and counted and the old one keeps serving.
/// The registry is checked every `interval`. Runs until the returned task is aborted.
pub fn follow(
    deployment: Arc<Deployment>,
    registry: Arc<dyn ModelRegistry>,
    reference: Reference,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut moves = registry.watch(&reference, interval);
        while let Some(next) = moves.next().await {
            match next {
                Ok(v) => {
                    let label = format!("{}:{}", v.name, v.version);
                    if deployment
                        .model()
                        .is_some_and(|m| format!("{}:{}", m.name, m.version) == label)
                    {
                        continue;
                    }
                    tracing::info!(deployment = %deployment.name(), reference = %reference, version = %label, "the reference moved; loading");
                    // A refusal is logged and counted by the deployment; watching goes on.
                    let _ = load_and_swap(&deployment, registry.as_ref(), &v.reference()).await;
                }
                Err(e) => {
                    tracing::warn!(deployment = %deployment.name(), reference = %reference, error = %e, "cannot check the registry; retrying");
                }
            }
        }
    })
}

/// The deployments of a server, their traffic weights and the shadow.
#[derive(Debug)]
pub(crate) struct Deployments {
    pub(crate) list: Vec<Arc<Deployment>>,
    weights: RwLock<Vec<u32>>,
    pub(crate) shadow: Option<Arc<Deployment>>,
    draws: AtomicU64,
    seed: u64,
    shadow_pending: AtomicUsize,
    shadow_settled: Notify,
}

/// SplitMix64: a full-period, well-mixed sequence from a counter, so concurrent requests draw
/// without a lock.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Deployments {
    pub(crate) fn new(list: Vec<(Deployment, u32)>, shadow: Option<&str>, seed: u64) -> Result<Self> {
        if list.is_empty() {
            return Err(Error::InvalidSetting {
                name: "deployment",
                reason: "give at least one deployment".into(),
            });
        }
        let mut names: Vec<String> = list.iter().map(|(d, _)| d.name().to_string()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::InvalidSetting {
                name: "deployment",
                reason: format!("deployment `{}` is given twice", w[0]),
            });
        }
        let (list, weights): (Vec<Arc<Deployment>>, Vec<u32>) =
            list.into_iter().map(|(d, w)| (Arc::new(d), w)).unzip();
        let shadow =
            match shadow {
                None => None,
                Some(s) => Some(list.iter().find(|d| d.name() == s).cloned().ok_or_else(|| {
                    Error::InvalidSetting {
                        name: "shadow",
                        reason: format!("no deployment `{s}`; the deployments are {}", names.join(", ")),
                    }
                })?),
            };
        let this = Deployments {
            list,
            weights: RwLock::new(Vec::new()),
            shadow,
            draws: AtomicU64::new(0),
            seed,
            shadow_pending: AtomicUsize::new(0),
            shadow_settled: Notify::new(),
        };
        this.set_weights(weights)?;
        Ok(this)
    }

    pub(crate) fn weights(&self) -> Vec<u32> {
        self.weights.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the weights, one per deployment in order: they must sum to 100 (Azure ML's rule),
    /// except for one deployment alone, which takes everything whatever its weight.
    pub(crate) fn set_weights(&self, weights: Vec<u32>) -> Result<()> {
        let sum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        if weights.len() != self.list.len() || (self.list.len() > 1 && sum != 100) {
            return Err(Error::InvalidSetting {
                name: "traffic",
                reason: format!(
                    "the traffic weights must sum to 100 (they sum to {sum}), e.g. blue=90,green=10"
                ),
            });
        }
        for (d, w) in self.list.iter().zip(&weights) {
            metrics::gauge!(TRAFFIC_WEIGHT, "deployment" => d.name.clone()).set(f64::from(*w));
        }
        *self.weights.write().unwrap_or_else(|e| e.into_inner()) = weights;
        Ok(())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Deployment>> {
        self.list.iter().find(|d| d.name == name)
    }

    fn names(&self) -> String {
        self.list
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The deployment for a request: the pinned one, or a weighted draw.
    pub(crate) fn choose(&self, pin: Option<&HeaderValue>) -> std::result::Result<Arc<Deployment>, ApiError> {
        if let Some(pin) = pin {
            let name = pin.to_str().unwrap_or("");
            return self.get(name).cloned().ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no deployment `{name}` (azureml-model-deployment header); the deployments are {}",
                        self.names()
                    ),
                )
            });
        }
        if self.list.len() == 1 {
            return Ok(self.list[0].clone());
        }
        let weights = self.weights();
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut r = splitmix(self.seed ^ splitmix(n)) % total.max(1);
        for (d, w) in self.list.iter().zip(&weights) {
            if r < u64::from(*w) {
                return Ok(d.clone());
            }
            r -= u64::from(*w);
        }
        Ok(self.list[0].clone())
    }

    /// Waits until every shadow request started so far has finished.
    pub(crate) async fn shadow_settled(&self) {
        loop {
            let notified = self.shadow_settled.notified();
            if self.shadow_pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The deployment a request was routed to and the model it took when it arrived.
#[derive(Clone, Debug)]
pub(crate) struct Chosen {
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) model: Option<Arc<ServedModel>>,
}

tokio::task_local! {
    /// Set by the middleware around a scoring request, read by the handlers through
    /// `ops::model`, so the protocol handlers stay as they are.
    pub(crate) static CHOSEN: Chosen;
}

/// The header of the deployment that answered.
pub(crate) fn header(d: &Deployment) -> HeaderValue {
    d.header.clone()
}

/// Mirrors a live request to the shadow deployment, off the request path: scores `frame` with
/// the shadow's current model, logs its answer to the shadow's payload logger, and counts
/// agreement with `live` and the latency.
pub(crate) fn mirror(
    state: &AppState,
    shadow: &Arc<Deployment>,
    frame: Frame,
    live: Predictions,
    request_id: String,
) {
    let Some(model) = shadow.model() else {
        return;
    };
    let shadow = shadow.clone();
    state
        .inner
        .deployments
        .shadow_pending
        .fetch_add(1, Ordering::AcqRel);
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = model.model.predict(&frame);
        let seconds = started.elapsed().as_secs_f64();
        let name = shadow.name.clone();
        match result {
            Ok(p) => {
                let rows = p.len() as u64;
                let agreeing = agreeing_rows(&live, &p);
                shadow.shadow_rows.fetch_add(rows, Ordering::Relaxed);
                let total_agreeing = shadow.shadow_agreeing.fetch_add(agreeing, Ordering::Relaxed) + agreeing;
                let total_rows = shadow.shadow_rows.load(Ordering::Relaxed);
                metrics::counter!(SHADOW_ROWS, "deployment" => name.clone()).increment(rows);
                metrics::counter!(SHADOW_AGREEING_ROWS, "deployment" => name.clone()).increment(agreeing);
                metrics::histogram!(SHADOW_DURATION, "deployment" => name.clone()).record(seconds);
                if total_rows > 0 {
                    metrics::gauge!(SHADOW_AGREEMENT, "deployment" => name.clone())
                        .set(total_agreeing as f64 / total_rows as f64);
                }
                if let Some(logger) = shadow.payload.as_ref()
                    && logger.sample()
                {
                    logger.offer(Pending {
                        frame,
                        predictions: p,
                        request_id,
                        model_name: model.name.clone(),
                        model_version: model.version.clone(),
                        latency_ms: seconds * 1e3,
                        timestamp_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                            as i64,
                    });
                }
            }
            Err(e) => {
                metrics::counter!(SHADOW_ERRORS, "deployment" => name.clone()).increment(1);
                tracing::warn!(deployment = %name, error = %e, "the shadow deployment failed to score a mirrored request");
            }
        }
        let set = &state.inner.deployments;
        if set.shadow_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            set.shadow_settled.notify_waiters();
        }
    });
}

/// Rows where two answers agree: the same label for classifiers; for regressions values within
/// 1 % of the live value (or 1e-9 near zero).
fn agreeing_rows(live: &Predictions, shadow: &Predictions) -> u64 {
    match (live, shadow) {
        (Predictions::Regression { values: a }, Predictions::Regression { values: b }) => {
            a.iter()
                .zip(b.iter())
                .filter(|(a, b)| (*a - *b).abs() <= 1e-9_f64.max(0.01 * a.abs()))
                .count() as u64
        }
        _ => (0..live.len().min(shadow.len()))
            .filter(|&r| live.label(r).is_some() && live.label(r) == shadow.label(r))
            .count() as u64,
    }
}

/// `GET /admin/traffic`: the deployments, the version each serves, the weights and the shadow.
pub(crate) async fn get_traffic(State(state): State<AppState>) -> std::result::Result<Response, ApiError> {
    admin_enabled(&state)?;
    Ok(JsonBody(traffic_json(&state)).into_response())
}

fn traffic_json(state: &AppState) -> Json {
    let set = &state.inner.deployments;
    let weights = set.weights();
    let deployments: Vec<Json> = set
        .list
        .iter()
        .zip(&weights)
        .map(|(d, w)| {
            json!({
                "name": d.name,
                "weight": w,
                "model": d.model().map(|m| format!("{}:{}", m.name, m.version)),
                "refused_versions": d.refused(),
            })
        })
        .collect();
    json!({
        "traffic": set.list.iter().zip(&weights).map(|(d, w)| (d.name.clone(), json!(w))).collect::<serde_json::Map<_, _>>(),
        "shadow": set.shadow.as_ref().map(|d| d.name.clone()),
        "deployments": deployments,
    })
}

/// `PUT /admin/traffic` with `{"blue": 80, "green": 20}`: deployments left out get 0.
pub(crate) async fn set_traffic(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> std::result::Result<Response, ApiError> {
    admin_enabled(&state)?;
    crate::ops::require_json(&headers, crate::ErrorStyle::AzureMl)?;
    let bytes = crate::ops::read_body(&state, &headers, body, crate::ErrorStyle::AzureMl).await?;
    let json = crate::input::parse_json(&bytes)?;
    let set = &state.inner.deployments;
    let Json::Object(map) = json else {
        return Err(ApiError::bad_request(
            "send the weights as a JSON object, e.g. {\"blue\": 80, \"green\": 20}",
        ));
    };
    for (name, w) in &map {
        if set.get(name).is_none() {
            return Err(ApiError::bad_request(format!(
                "no deployment `{name}`; the deployments are {}",
                set.names()
            )));
        }
        if w.as_u64().is_none_or(|w| w > 100) {
            return Err(ApiError::bad_request(format!(
                "the weight of `{name}` must be an integer from 0 to 100, got {w}"
            )));
        }
    }
    let weights = set
        .list
        .iter()
        .map(|d| map.get(&d.name).and_then(Json::as_u64).unwrap_or(0) as u32)
        .collect();
    set.set_weights(weights)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(traffic = %serde_json::Value::Object(map), "traffic weights changed");
    Ok(JsonBody(traffic_json(&state)).into_response())
}

/// The admin routes need keys: the middleware already answered 401 to a request without one.
fn admin_enabled(state: &AppState) -> std::result::Result<(), ApiError> {
    if state.config().keys.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin routes are disabled on a server without keys; start it with keys (serve --key-file)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ml_core::Field;

    #[test]
    fn a_new_required_field_or_a_changed_type_is_incompatible() {
        let old = Schema::new(vec![
            Field::new("a", DataType::Float),
            Field::new("b", DataType::Int),
        ])
        .unwrap();
        let same = old.clone();
        assert!(compatible(&old, &same).is_ok());
        let fewer = Schema::new(vec![Field::new("a", DataType::Float)]).unwrap();
        assert!(compatible(&old, &fewer).is_ok());
        let retyped = Schema::new(vec![Field::new("a", DataType::String)]).unwrap();
        assert!(
            compatible(&old, &retyped)
                .unwrap_err()
                .contains("field `a` was float")
        );
        let extra = Schema::new(vec![
            Field::new("a", DataType::Float),
            Field::new("c", DataType::Int),
        ])
        .unwrap();
        assert!(compatible(&old, &extra).unwrap_err().contains("needs field `c`"));
    }

    #[test]
    fn weighted_draws_follow_the_weights_and_names_are_checked() {
        let set = Deployments::new(
            vec![
                (Deployment::new("blue").unwrap(), 70),
                (Deployment::new("green").unwrap(), 30),
            ],
            None,
            7,
        )
        .unwrap();
        let green = (0..20_000)
            .filter(|_| set.choose(None).unwrap().name() == "green")
            .count();
        // Binomial(20000, 0.3): sd ≈ 65; ±400 is more than 6 sd.
        assert!((5600..=6400).contains(&green), "{green}");
        assert!(Deployment::new("9lives").is_err());
        assert!(set.set_weights(vec![50, 40]).is_err());
    }
}
