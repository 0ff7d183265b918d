//! The online endpoint of streamscore: one model behind the HTTP contracts that real clients
//! already speak, so they work unchanged.
//!
//! - **Azure ML inference server**: `GET /` → `Healthy`; `POST /score` with `{"data": rows}`
//!   (Stream Analytics, inference-schema scripts), `{"input_data": ...}` (MLflow deployments)
//!   or `{"Inputs": {"<name>": rows}}`, answered with a JSON array of one element per row (see
//!   [`output`](crate#answers)); `GET /swagger.json?version=2|3|3.1` generated from the schema.
//! - **Open Inference Protocol v2** (KServe, Triton, MLServer clients): `/v2`,
//!   `/v2/health/{live,ready}`, `/v2/models/{m}[/versions/{v}][/ready|/infer]`.
//! - **MLflow scoring server**: `POST /invocations` (`dataframe_split`, `dataframe_records`,
//!   `instances`, `inputs`, `text/csv`), `GET /ping`, `/health`, `/version`.
//! - **Operations**: `/metrics` (Prometheus), readiness, `Authorization: Bearer <key>` with a
//!   primary and a secondary key, limits with clear status codes, payload logging to
//!   ml-stream sinks off the request path ([`PayloadLogger`]), graceful shutdown ([`serve`]).
//!
//! [`app`] builds the router from an [`AppState`], so tests drive it in process with
//! `tower::ServiceExt::oneshot` or over a socket with any HTTP client.
//!
//! One decision shapes the hot path: **a request is decoded by ml-core's frame readers and
//! scored on its own task** when it is small (a native model scores a row in microseconds, less
//! than a hop to a thread pool costs); batches over 64 rows go to the blocking pool so the
//! scoring timeout can answer 503 while they run.
//!
//! # Answers
//! `/score` answers one element per row: the positive-class probability for a binary
//! classifier, the value for a regression, `{"label", "probabilities": {label: p}}` for a
//! multiclass classifier. `/invocations` answers `{"predictions": [...]}` with one record per
//! row (`label`, `probability_<label>`...) for classifiers and the values for regressions.
//! `infer` answers the tensors `label` and `probabilities`, or `prediction`.
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed JSON, a missing or mistyped field (named), a wrong body shape |
//! | 401 | a missing or wrong key |
//! | 404 | an unknown route, model or version |
//! | 408 | the body did not arrive within `body_timeout` |
//! | 413 | the body is larger than `max_body_bytes` |
//! | 415 | a content type other than JSON (and CSV for `/invocations`) |
//! | 429 | more than `max_concurrent_requests` scoring at once (`Retry-After`) |
//! | 431 | `x-request-id` longer than 100 characters |
//! | 503 | `Scoring timeout after N ms` (retryable), or the model is still loading |
//! | 500 | a bug: a generic message, the detail in the log |
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use ml_core::{CsvTable, Estimator, InferOptions, ReadOptions};
//! use ml_serve::{AppState, ServeConfig, ServedModel};
//! use tower::ServiceExt;
//!
//! let table = CsvTable::read("x,y\n1,0\n2,0\n3,1\n4,1\n".as_bytes(), "train.csv")?;
//! let data = table.to_frame(table.infer_schema(&InferOptions::default())?, &ReadOptions::default())?;
//! let model = Estimator::from_name("logistic_regression", &[])?.fit(&data, "y")?;
//! let state = AppState::with_model(ServeConfig::default(), ServedModel::new("demo", "1", Arc::new(model))?)?;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let request = axum::http::Request::post("/score")
//!     .header("content-type", "application/json")
//!     .body(axum::body::Body::from(r#"{"data": [{"x": 4}, {"x": 1}]}"#))?;
//! let response = ml_serve::app(state).oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.headers()["x-streamscore-model-version"], "demo:1");
//! let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
//! let p: Vec<f64> = serde_json::from_slice(&body)?; // one probability per row
//! assert!(p[0] > 0.5 && p[1] < 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod azureml;
pub mod batching;
pub mod deployment;
pub mod error;
mod input;
pub mod keys;
pub mod metrics;
mod mlflow;
mod oip;
mod ops;
mod output;
pub mod payload;
pub mod server;
pub mod state;
mod swagger;
pub mod telemetry;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use batching::BatchConfig;
pub use deployment::{DEPLOYMENT_HEADER, Deployment};
pub use error::{ApiError, Error, ErrorStyle, Result};
pub use ops::{CLIENT_REQUEST_ID, MODEL_VERSION, REQUEST_ID, RUN_FN_EXEC_MS};
pub use payload::PayloadLogger;
pub use server::{serve, serve_tls, shutdown_signal, tls_config};
pub use state::{AppState, ServeConfig, ServedModel};

/// The router of every route, around `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(azureml::health))
        .route("/score", post(azureml::score))
        .route("/swagger.json", get(azureml::swagger))
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{model}", get(oip::model_metadata))
        .route("/v2/models/{model}/ready", get(oip::model_ready))
        .route("/v2/models/{model}/infer", post(oip::infer))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(oip::version_metadata),
        )
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(oip::version_ready),
        )
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(oip::infer_version),
        )
        .route("/invocations", post(mlflow::invocations))
        .route("/ping", get(mlflow::ping))
        .route("/health", get(mlflow::ping))
        .route("/version", get(mlflow::version))
        .route("/metrics", get(prometheus))
        .route(
            "/admin/traffic",
            get(deployment::get_traffic).put(deployment::set_traffic),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::middleware,
        ))
        .layer(axum::middleware::from_fn(telemetry::track_requests))
        .with_state(state)
}

async fn prometheus() -> Response {
    match metrics::render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            text,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics go to another recorder installed by the embedding program",
        )
        .into_response(),
    }
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {path}; routes: GET /, POST /score, GET /swagger.json, /v2/..., POST /invocations, GET /ping, /metrics",
            req.method()
        ),
    )
    .style(ErrorStyle::for_path(path))
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {path}", req.method()),
    )
    .style(ErrorStyle::for_path(path))
    .into_response()
}
