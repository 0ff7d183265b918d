//! The Azure ML inference-server contract: `GET /`, `POST /score`, `GET /swagger.json`.

use std::collections::HashMap;
use std::time::Instant;

use axum::Extension;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorStyle};
use crate::ops::{self, RequestId};
use crate::state::AppState;
use crate::swagger::Version;
use crate::{input, output};

const STYLE: ErrorStyle = ErrorStyle::AzureMl;

/// `GET /`: `Healthy` once the model is loaded (the inference server's only health route).
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "Healthy").into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model is still loading").into_response()
    }
}

/// `POST /score`.
pub(crate) async fn score(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    request: Request,
) -> Result<Response, ApiError> {
    score_request(&state, &request_id, request).await
}

/// `POST /score` without the router: the server's direct path (see [`crate::server`]), the
/// same steps as the router's middleware and handler.
pub(crate) async fn score_direct(state: &AppState, request: Request) -> Response {
    crate::ops::around(state, "/score", request, |request, request_id| async move {
        score_request(state, &request_id, request).await.into_response()
    })
    .await
}

async fn score_request(
    state: &AppState,
    request_id: &HeaderValue,
    request: Request,
) -> Result<Response, ApiError> {
    // The headers taken apart from the body, not copied (the `HeaderMap` extractor clones them).
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    ops::require_json(&headers, STYLE)?;
    let model = ops::model(state, STYLE)?;
    let bytes = ops::read_body(state, &headers, body, STYLE).await?;
    let started = Instant::now();
    let frame = match input::azure_rows(&bytes, &model.schema) {
        Some(frame) => frame,
        None => {
            let json = input::parse_json(&bytes)?;
            let Some(frame) = input::azure(&json, &model.schema)? else {
                return Ok(ops::scored_response(&serde_json::json!([]), &model, 0.0));
            };
            frame
        }
    };
    let scored = ops::score(state, &model, frame, request_id, started, STYLE).await?;
    Ok(ops::scored_bytes(
        output::azure_bytes(&scored.predictions),
        &model,
        scored.exec_ms,
    ))
}

/// `GET /swagger.json?version=2|3|3.1`.
pub(crate) async fn swagger(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let model = ops::model(&state, STYLE)?;
    let Some(v) = Version::parse(query.get("version").map(String::as_str)) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "swagger version must be 2, 3 or 3.1 (e.g. /swagger.json?version=3)",
        ));
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        model.swagger[v.index()].clone(),
    )
        .into_response())
}
