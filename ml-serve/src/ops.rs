//! What every route shares: request ids, key authentication, the concurrency limit, metrics
//! (one middleware), and the body and scoring steps of the scoring routes (size limit → 413,
//! slow body → 408, scoring timeout → 503).

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ml_core::{Frame, Predictions};

use crate::deployment::{CHOSEN, Chosen, DEPLOYMENT_HEADER};
use crate::error::{ApiError, ErrorStyle};
use crate::payload::Pending;
use crate::state::{AppState, ServedModel};

/// `x-request-id`: echoed, or generated when absent.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-ms-client-request-id`: echoed.
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
/// `x-ms-run-fn-exec-ms`: time spent decoding and scoring, milliseconds.
pub const RUN_FN_EXEC_MS: HeaderName = HeaderName::from_static("x-ms-run-fn-exec-ms");
/// `x-streamscore-model-version`: `name:version` of the model that answered.
pub const MODEL_VERSION: HeaderName = HeaderName::from_static("x-streamscore-model-version");

/// The longest `x-request-id` accepted (the Azure ML inference server's limit).
const MAX_REQUEST_ID: usize = 100;

/// Batches up to this many rows are scored on the request's own task: a native model scores
/// them in microseconds, less than a hop to the blocking pool costs. Larger batches go to the
/// blocking pool so the scoring timeout can answer while they run.
const INLINE_ROWS: usize = 64;

/// A new request id: a random (version 4) UUID, drawn from a per-thread generator seeded
/// from the operating system's randomness once per thread rather than asking the operating
/// system for 16 bytes on every request (a system call each). Ids need to be unique, not
/// secret.
fn new_request_id() -> HeaderValue {
    thread_local! {
        static IDS: std::cell::RefCell<ml_core::rng::Rng> = std::cell::RefCell::new({
            let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            ml_core::rng::Rng::new(a ^ b.rotate_left(32))
        });
    }
    let mut bytes = [0u8; 16];
    IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        bytes[..8].copy_from_slice(&ids.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&ids.next_u64().to_le_bytes());
    });
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)).unwrap_or(HeaderValue::from_static("-"))
}

/// The request id, for handlers (payload logs).
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) HeaderValue);

/// Routes that answer without a key: health, readiness, version, metrics, the API description.
fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/" | "/ping"
            | "/health"
            | "/version"
            | "/metrics"
            | "/swagger.json"
            | "/v2"
            | "/v2/health/live"
            | "/v2/health/ready"
    )
}

/// Routes that score, bound by the concurrency limit.
fn is_scoring(method: &Method, path: &str) -> bool {
    method == Method::POST && (path == "/score" || path == "/invocations" || path.ends_with("/infer"))
}

/// True when `headers` carry one of the keys as `Authorization: Bearer <key>` (compared in
/// constant time, see [`crate::keys`]).
fn authorized(keys: &crate::keys::KeyRing, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
    else {
        return false;
    };
    keys.accepts(given)
}

/// The middleware around every route.
pub(crate) async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The route pattern is shared (an `Arc<str>` inside); no copy per request.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    around(&state, route, req, |mut req, id| {
        req.extensions_mut().insert(RequestId(id));
        next.run(req)
    })
    .await
}

/// What the middleware does around `next` (the route's handler, given the request and its
/// request id), for the route pattern `route`: shared by the router and the server's direct
/// path for `POST /score` (see [`crate::server`]).
pub(crate) async fn around<F, Fut>(state: &AppState, route: &str, req: Request, next: F) -> Response
where
    F: FnOnce(Request, HeaderValue) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    let path = req.uri().path();
    let style = ErrorStyle::for_path(path);
    let scoring = is_scoring(req.method(), path);
    let open = is_open(path);
    let client_id = req.headers().get(&CLIENT_REQUEST_ID).cloned();
    let given_id = req.headers().get(&REQUEST_ID).cloned();

    let (mut response, request_id) = 'answer: {
        let request_id = match given_id {
            Some(v) if v.len() > MAX_REQUEST_ID => {
                let e = ApiError::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!(
                        "x-request-id is {} characters long; the limit is {MAX_REQUEST_ID}",
                        v.len()
                    ),
                );
                break 'answer (e.style(style).into_response(), None);
            }
            Some(v) => v,
            None => new_request_id(),
        };
        if !open && state.inner.keys.enabled() && !authorized(&state.inner.keys, req.headers()) {
            let e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong key: send the header `Authorization: Bearer <key>` with the endpoint's primary or secondary key",
            );
            break 'answer (e.style(style).into_response(), Some(request_id));
        }
        let _permit = if scoring {
            match state.inner.permits.try_acquire() {
                Ok(p) => Some(p),
                Err(_) => {
                    let mut e = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "the endpoint is scoring {} requests, its limit; retry after {} s",
                            state.config().max_concurrent_requests,
                            state.config().retry_after_s
                        ),
                    )
                    .style(style);
                    e.retry_after = Some(state.config().retry_after_s);
                    break 'answer (e.into_response(), Some(request_id));
                }
            }
        } else {
            None
        };
        // A scoring request is routed to its deployment and takes that deployment's model now,
        // on arrival: a swap during the request does not change what answers it.
        let chosen = if scoring {
            match state
                .inner
                .deployments
                .choose(req.headers().get(&DEPLOYMENT_HEADER))
            {
                Ok(deployment) => Some(Chosen {
                    model: deployment.model(),
                    deployment,
                }),
                Err(e) => break 'answer (e.style(style).into_response(), Some(request_id)),
            }
        } else {
            None
        };
        let in_flight = state.inner.metrics.in_flight();
        in_flight.increment(1.0);
        let response = match chosen {
            Some(chosen) => {
                let name = crate::deployment::header(&chosen.deployment);
                let mut response = CHOSEN.scope(chosen, next(req, request_id.clone())).await;
                response.headers_mut().insert(DEPLOYMENT_HEADER, name);
                response
            }
            None => next(req, request_id.clone()).await,
        };
        in_flight.decrement(1.0);
        (response, Some(request_id))
    };

    let headers = response.headers_mut();
    if let Some(id) = request_id {
        headers.insert(REQUEST_ID, id);
    }
    if let Some(id) = client_id {
        headers.insert(CLIENT_REQUEST_ID, id);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    state.inner.metrics.request(route, status, elapsed);
    tracing::debug!(route = %route, status = %status, ms = elapsed * 1e3, "request");
    response
}

/// The model of the request's deployment (taken on arrival), or 503 while it is loading.
pub(crate) fn model(state: &AppState, style: ErrorStyle) -> Result<Arc<ServedModel>, ApiError> {
    let model = CHOSEN
        .try_with(|c| c.model.clone())
        .unwrap_or_else(|_| state.model());
    model.ok_or_else(|| {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading; retry shortly",
        )
        .style(style);
        e.retry_after = Some(state.config().retry_after_s);
        e
    })
}

/// The media type of a request, lower-case without parameters (`None` when absent).
pub(crate) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// JSON bodies only (an absent content type is taken as JSON); 415 otherwise.
pub(crate) fn require_json(headers: &HeaderMap, style: ErrorStyle) -> Result<(), ApiError> {
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().is_err())
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the Content-Type header is not ASCII text; send JSON with `Content-Type: application/json`",
        )
        .style(style));
    }
    // The usual `application/json` (any case, any parameters) is accepted without copying it.
    if headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b';')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"application/json"))
    }) {
        return Ok(());
    }
    match content_type(headers) {
        None => Ok(()),
        Some(t) if t == "application/json" || t.ends_with("+json") => Ok(()),
        Some(t) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type `{t}` is not supported; send JSON with `Content-Type: application/json`"),
        )
        .style(style)),
    }
}

/// Reads the whole body within the size limit (413) and the body timeout (408).
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    style: ErrorStyle,
) -> Result<Bytes, ApiError> {
    let limit = state.config().max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the limit of {limit} bytes; send fewer rows per request"
            ),
        )
        .style(style)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let timeout = state.config().body_timeout;
    // A small body has usually arrived with the headers: read it without a timer, and arm the
    // timer only when it has not (a timer costs about 2 % of a one-row request). hyper hands
    // the body over only once the handler has asked for it, so the first poll is pending even
    // then: the second poll, right after hyper has passed the bytes on, decides.
    let mut read = std::pin::pin!(axum::body::to_bytes(body, limit));
    let mut asked = false;
    let ready = std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending if !asked => {
            // Polled again at once (the body's waker usually has the task queued already).
            asked = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    let result = match ready {
        Some(r) => Ok(r),
        None => tokio::time::timeout(timeout, read).await,
    };
    match result {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )
        .style(style)),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = s.source();
            }
            Err(ApiError::bad_request(format!("the request body could not be read: {e}")).style(style))
        }
        Ok(Ok(b)) => Ok(b),
    }
}

/// A scored request.
pub(crate) struct Scored {
    pub(crate) predictions: Predictions,
    pub(crate) exec_ms: f64,
}

/// Scores `frame` within the request timeout (503 `Scoring timeout after N ms` beyond it) and
/// hands it to the payload logger when one is sampled.
pub(crate) async fn score(
    state: &AppState,
    model: &Arc<ServedModel>,
    frame: Frame,
    request_id: &HeaderValue,
    decode_started: Instant,
    style: ErrorStyle,
) -> Result<Scored, ApiError> {
    let timeout = state.config().request_timeout;
    let timeout_error = || {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Scoring timeout after {} ms", timeout.as_millis()),
        )
        .style(style);
        e.retry_after = Some(state.config().retry_after_s);
        e
    };
    let rows = frame.n_rows();
    let batcher = state.inner.batcher.as_ref().filter(|_| rows == 1);
    let (frame, result) = if let Some(batcher) = batcher {
        let (frame, p) = batcher
            .predict(model.model.clone(), frame)
            .await
            .map_err(|e| ApiError::internal(&e).style(style))?;
        if decode_started.elapsed() > timeout {
            return Err(timeout_error());
        }
        (frame, p)
    } else if rows <= INLINE_ROWS {
        let p = model.model.predict(&frame);
        if decode_started.elapsed() > timeout {
            return Err(timeout_error());
        }
        (frame, p)
    } else {
        let m = model.model.clone();
        let remaining = timeout.saturating_sub(decode_started.elapsed());
        let task = tokio::task::spawn_blocking(move || {
            let p = m.predict(&frame);
            (frame, p)
        });
        match tokio::time::timeout(remaining, task).await {
            Err(_) => return Err(timeout_error()),
            Ok(Err(join)) => return Err(ApiError::internal(&join).style(style)),
            Ok(Ok(done)) => done,
        }
    };
    let predictions = result.map_err(|e| ApiError::from_core(&e).style(style))?;
    let exec_ms = decode_started.elapsed().as_secs_f64() * 1e3;
    state.inner.metrics.rows().increment(rows as u64);
    let deployment = CHOSEN.try_with(|c| c.deployment.clone()).ok();
    if let Some(d) = &deployment {
        d.count_request();
    }
    let request_id = request_id.to_str().unwrap_or("-");
    if let Some(shadow) = &state.inner.deployments.shadow
        && deployment.as_ref().is_some_and(|d| !Arc::ptr_eq(d, shadow))
    {
        crate::deployment::mirror(
            state,
            shadow,
            frame.clone(),
            predictions.clone(),
            request_id.to_string(),
        );
    }
    let logger = deployment
        .as_ref()
        .and_then(|d| d.payload_logger())
        .or(state.payload_logger());
    if let Some(logger) = logger
        && logger.sample()
    {
        logger.offer(Pending {
            frame,
            predictions: predictions.clone(),
            request_id: request_id.to_string(),
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            latency_ms: exec_ms,
            timestamp_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        });
    }
    Ok(Scored { predictions, exec_ms })
}

/// A JSON answer with the scoring headers.
pub(crate) fn scored_response(body: &serde_json::Value, model: &ServedModel, exec_ms: f64) -> Response {
    scored_bytes(serde_json::to_vec(body).unwrap_or_default(), model, exec_ms)
}

/// A JSON answer already serialised, with the scoring headers.
pub(crate) fn scored_bytes(bytes: Vec<u8>, model: &ServedModel, exec_ms: f64) -> Response {
    // Built directly: the `(status, headers, body)` tuple first sets a content type of its own
    // and then replaces it.
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(MODEL_VERSION, model.version_header.clone());
    h.insert(RUN_FN_EXEC_MS, milliseconds(exec_ms));
    response
}

/// `ms` with three decimals (`0.052`), as `format!("{ms:.3}")` writes it but for a tie at the
/// fourth decimal, written on the stack without the formatting machinery.
fn milliseconds(ms: f64) -> HeaderValue {
    // Up to 2^53 µs (285 years) exactly; beyond, or not a number, the general formatter.
    let micros = (ms * 1e3).round();
    if !(0.0..9.0e15).contains(&micros) {
        return HeaderValue::from_str(&format!("{ms:.3}")).unwrap_or(HeaderValue::from_static("0.000"));
    }
    let micros = micros as u64;
    let mut text = [0u8; 24];
    let mut at = text.len();
    let mut rest = micros;
    for i in 0.. {
        at -= 1;
        if i == 3 {
            text[at] = b'.';
            at -= 1;
        }
        text[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if i >= 3 && rest == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[at..]).unwrap_or(HeaderValue::from_static("0.000"))
}

#[cfg(test)]
mod tests {
    use super::milliseconds;

    #[test]
    fn milliseconds_are_written_as_the_formatter_writes_them() {
        for ms in [
            0.0,
            0.0004,
            0.052,
            0.9996,
            1.0,
            2.5,
            12.345,
            999.9999,
            5000.0,
            86_400_000.0,
            1e12,
        ] {
            assert_eq!(milliseconds(ms), format!("{ms:.3}").as_str(), "{ms}");
        }
        let mut x = 0.000_123_f64;
        while x < 1e7 {
            assert_eq!(milliseconds(x), format!("{x:.3}").as_str(), "{x}");
            x *= 1.37;
        }
        assert_eq!(milliseconds(f64::NAN), "NaN");
    }
}
