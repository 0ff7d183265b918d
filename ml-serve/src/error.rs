//! The error type of ml-serve, and the HTTP error answers of each protocol.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Result alias of ml-serve.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when configuring or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from ml-core (model, artifact, schema).
    #[error(transparent)]
    Core(#[from] ml_core::Error),

    /// An error from ml-stream (a payload-log sink).
    #[error(transparent)]
    Stream(#[from] ml_stream::Error),

    /// A setting is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is allowed.
        reason: String,
    },

    /// The listening socket failed.
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),

    /// A new version was refused by a deployment: the old one keeps serving.
    #[error("deployment `{deployment}` refused {version}: {reason}; the version it served keeps serving")]
    SwapRefused {
        /// The deployment.
        deployment: String,
        /// `name:version` of the refused version.
        version: String,
        /// Why (load failure, incompatible schema, failed warm-up prediction).
        reason: String,
    },

    /// The key file cannot be used (its content is never shown).
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The TLS certificate or private key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),

    /// A model registry failed (loading or watching a version).
    #[error("registry: {0}")]
    Registry(String),
}

/// Which protocol's error body a route answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorStyle {
    /// Azure ML inference server: `{"message": ".."}`.
    AzureMl,
    /// Open Inference Protocol v2: `{"error": ".."}`.
    Oip,
    /// MLflow scoring server: `{"error_code": "..", "message": ".."}`.
    Mlflow,
}

impl ErrorStyle {
    /// The style of the routes under `path`.
    pub fn for_path(path: &str) -> ErrorStyle {
        if path.starts_with("/v2") {
            ErrorStyle::Oip
        } else if path.starts_with("/invocations") {
            ErrorStyle::Mlflow
        } else {
            ErrorStyle::AzureMl
        }
    }
}

/// An HTTP error answer: a status, a message for the client, the protocol's body shape, and
/// for 429 the `Retry-After` seconds.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What the client is told (never internal details: those go to the log).
    pub message: String,
    /// The body shape.
    pub style: ErrorStyle,
    /// `Retry-After` seconds (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the Azure ML body shape.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            style: ErrorStyle::AzureMl,
            retry_after: None,
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The same error with another body shape.
    pub fn style(mut self, style: ErrorStyle) -> Self {
        self.style = style;
        self
    }

    /// A scoring or decoding error from ml-core: the caller's mistake is a 400 naming the
    /// field; anything else is our bug, a 500 with a generic message and the detail logged.
    pub fn from_core(e: &ml_core::Error) -> Self {
        use ml_core::Error as E;
        match e {
            E::Validation(_)
            | E::EmptyInput { .. }
            | E::RaggedRow { .. }
            | E::Parse { .. }
            | E::SchemaMismatch { .. }
            | E::InvalidParameter { .. } => ApiError::bad_request(e.to_string()),
            _ => ApiError::internal(e),
        }
    }

    /// 500 with a generic message; the detail is logged, never sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed with an internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred in the scoring server; the details are in its log.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.style {
            ErrorStyle::AzureMl => serde_json::json!({ "message": self.message }),
            ErrorStyle::Oip => serde_json::json!({ "error": self.message }),
            ErrorStyle::Mlflow => serde_json::json!({
                "error_code": mlflow_error_code(self.status),
                "message": self.message,
            }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// MLflow's error codes (mlflow.protos.databricks_pb2) for the statuses we answer with.
fn mlflow_error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 415 | 431 => "BAD_REQUEST",
        401 => "UNAUTHENTICATED",
        404 => "ENDPOINT_NOT_FOUND",
        408 | 503 => "TEMPORARILY_UNAVAILABLE",
        429 => "REQUEST_LIMIT_EXCEEDED",
        _ => "INTERNAL_ERROR",
    }
}
