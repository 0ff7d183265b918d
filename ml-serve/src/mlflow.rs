//! The MLflow scoring server: `POST /invocations`, `GET /ping`, `/health`, `/version`.

use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorStyle};
use crate::ops::{self, RequestId};
use crate::state::AppState;
use crate::{input, output};

const STYLE: ErrorStyle = ErrorStyle::Mlflow;

/// `GET /ping` and `/health`: 200 once the model is loaded, 503 before.
pub(crate) async fn ping(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the model is still loading\n").into_response()
    }
}

/// `GET /version`.
pub(crate) async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `POST /invocations`.
pub(crate) async fn invocations(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = ops::content_type(&headers);
    let csv = match content_type.as_deref() {
        None | Some("application/json") => false,
        Some("text/csv") => true,
        Some(other) => {
            // MLflow's wording.
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("This predictor only supports the following content types: Types: ['text/csv', 'application/json']. Got '{other}'."),
            )
            .style(STYLE));
        }
    };
    let model = ops::model(&state, STYLE)?;
    let bytes = ops::read_body(&state, &headers, body, STYLE).await?;
    let started = Instant::now();
    let frame = if csv {
        input::csv(&bytes, &model.schema)
    } else {
        input::parse_json(&bytes).and_then(|json| input::mlflow(&json, &model.schema))
    }
    .map_err(|e| e.style(STYLE))?;
    let Some(frame) = frame else {
        return Ok(ops::scored_response(
            &serde_json::json!({"predictions": []}),
            &model,
            0.0,
        ));
    };
    let scored = ops::score(&state, &model, frame, &request_id, started, STYLE).await?;
    Ok(ops::scored_response(
        &output::mlflow(&scored.predictions),
        &model,
        scored.exec_ms,
    ))
}
