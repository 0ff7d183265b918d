//! The Open Inference Protocol v2 (KServe, Triton, MLServer clients): server and model
//! metadata, liveness, readiness, and `infer` with one tensor `[N, F]` in schema order or one
//! tensor per column, in any of the protocol's datatypes. Errors are `{"error": ".."}`.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Json as JsonBody;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ml_core::{DataType, Frame, OutputSpec, ReadOptions, Schema};
use serde_json::{Value as Json, json};

use crate::error::{ApiError, ErrorStyle};
use crate::ops::{self, RequestId};
use crate::output;
use crate::state::{AppState, ServedModel};

const STYLE: ErrorStyle = ErrorStyle::Oip;

fn err(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, message).style(STYLE)
}

fn bad(message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, message)
}

/// `GET /v2`.
pub(crate) async fn server_metadata() -> JsonBody<Json> {
    JsonBody(json!({"name": "streamscore", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
}

/// `GET /v2/health/live`.
pub(crate) async fn live() -> JsonBody<Json> {
    JsonBody(json!({"live": true}))
}

/// `GET /v2/health/ready`: 200 once the model is loaded, 503 before.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, JsonBody(json!({"ready": ready}))).into_response()
}

/// The served model when `name` (and `version`, if given) name it; 404 otherwise.
fn find(state: &AppState, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
    let model = ops::model(state, STYLE)?;
    if model.name != name {
        return Err(err(
            StatusCode::NOT_FOUND,
            format!("Model '{name}' is not found; this server serves '{}'", model.name),
        ));
    }
    if let Some(v) = version
        && v != model.version
    {
        return Err(err(
            StatusCode::NOT_FOUND,
            format!(
                "Model '{name}' version '{v}' is not found; this server serves version '{}'",
                model.version
            ),
        ));
    }
    Ok(model)
}

fn datatype(t: &DataType) -> &'static str {
    match t {
        DataType::Float => "FP64",
        DataType::Int => "INT64",
        DataType::Bool => "BOOL",
        DataType::Categorical { .. } | DataType::String => "BYTES",
    }
}

fn metadata(model: &ServedModel) -> Json {
    let inputs: Vec<Json> = model
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name, "datatype": datatype(&f.dtype), "shape": [-1]}))
        .collect();
    let outputs = match model.model.output() {
        OutputSpec::Regression => json!([{"name": "prediction", "datatype": "FP64", "shape": [-1]}]),
        o => json!([
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, o.labels().len()]},
        ]),
    };
    json!({
        "name": model.name,
        "versions": [model.version],
        "platform": "streamscore",
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// `GET /v2/models/{m}`.
pub(crate) async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(JsonBody(metadata(&*find(&state, &name, None)?)).into_response())
}

/// `GET /v2/models/{m}/versions/{v}`.
pub(crate) async fn version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(JsonBody(metadata(&*find(&state, &name, Some(&version))?)).into_response())
}

/// `GET /v2/models/{m}/ready`.
pub(crate) async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let m = find(&state, &name, None)?;
    Ok(JsonBody(json!({"name": m.name, "ready": true})).into_response())
}

/// `GET /v2/models/{m}/versions/{v}/ready`.
pub(crate) async fn version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let m = find(&state, &name, Some(&version))?;
    Ok(JsonBody(json!({"name": m.name, "ready": true})).into_response())
}

/// `POST /v2/models/{m}/infer`.
pub(crate) async fn infer(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = find(&state, &name, None)?;
    run_infer(state, rid, model, headers, body).await
}

/// `POST /v2/models/{m}/versions/{v}/infer`.
pub(crate) async fn infer_version(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = find(&state, &name, Some(&version))?;
    run_infer(state, rid, model, headers, body).await
}

async fn run_infer(
    state: AppState,
    RequestId(request_id): RequestId,
    model: Arc<ServedModel>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if headers.contains_key("inference-header-content-length") {
        return Err(bad(
            "the binary tensor data extension is not supported; send tensors as JSON (tritonclient: binary_data=False)",
        ));
    }
    ops::require_json(&headers, STYLE)?;
    let bytes = ops::read_body(&state, &headers, body, STYLE).await?;
    let started = Instant::now();
    let request: Json = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("the request body is not valid JSON: {e}")))?;
    let frame = decode(&request, &model.schema)?;
    let wanted = requested_outputs(&request)?;
    let scored = ops::score(&state, &model, frame, &request_id, started, STYLE).await?;
    let mut outputs = Vec::new();
    let tensors = output::oip_tensors(&scored.predictions);
    for w in &wanted {
        if !tensors.iter().any(|(n, _)| n == w) {
            let names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
            return Err(bad(format!(
                "unknown output '{w}'; this model has outputs {}",
                names.join(", ")
            )));
        }
    }
    for (n, t) in tensors {
        if wanted.is_empty() || wanted.iter().any(|w| w == n) {
            outputs.push(t);
        }
    }
    let mut answer = json!({
        "model_name": model.name,
        "model_version": model.version,
        "outputs": outputs,
    });
    if let Some(id) = request.get("id") {
        answer["id"] = id.clone();
    }
    Ok(ops::scored_response(&answer, &model, scored.exec_ms))
}

fn requested_outputs(request: &Json) -> Result<Vec<String>, ApiError> {
    match request.get("outputs") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(list)) => list
            .iter()
            .map(|o| {
                o.get("name")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| bad("each requested output must be an object with a `name`"))
            })
            .collect(),
        Some(_) => Err(bad("`outputs` must be a list of {\"name\": ..}")),
    }
}

/// One input tensor, flattened and checked against its shape and datatype.
struct Tensor<'a> {
    name: &'a str,
    shape: Vec<usize>,
    data: Vec<&'a Json>,
}

fn flatten<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    match v {
        Json::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn tensor(input: &Json) -> Result<Tensor<'_>, ApiError> {
    let name = input
        .get("name")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("each input needs a `name`"))?;
    let shape: Vec<usize> = input
        .get("shape")
        .and_then(Json::as_array)
        .ok_or_else(|| bad(format!("input '{name}' needs a `shape` (a list of sizes)")))?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| bad(format!("input '{name}': `shape` must hold non-negative integers")))?;
    let dt = input
        .get("datatype")
        .and_then(Json::as_str)
        .ok_or_else(|| bad(format!("input '{name}' needs a `datatype`")))?;
    let data = input.get("data").ok_or_else(|| {
        bad(format!(
            "input '{name}' needs `data` (binary tensor data is not supported)"
        ))
    })?;
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    // Checked: a shape such as [2^32, 2^32] overflows the element count.
    let expected = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            bad(format!(
                "input '{name}': shape {shape:?} has more elements than any request can hold"
            ))
        })?;
    if flat.len() != expected {
        return Err(bad(format!(
            "input '{name}' has {} values but its shape {shape:?} needs {expected}",
            flat.len()
        )));
    }
    let ok: fn(&Json) -> bool = match dt {
        "BOOL" => |v| v.is_boolean(),
        "UINT8" | "UINT16" | "UINT32" | "UINT64" => |v| v.is_u64(),
        "INT8" | "INT16" | "INT32" | "INT64" => |v| v.is_i64() || v.is_u64(),
        "FP16" | "FP32" | "FP64" => |v| v.is_number(),
        "BYTES" => |v| v.is_string(),
        other => {
            return Err(bad(format!(
                "input '{name}': unknown datatype '{other}'; use BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES"
            )));
        }
    };
    if let Some((i, v)) = flat.iter().enumerate().find(|(_, v)| !ok(v)) {
        return Err(bad(format!(
            "input '{name}': element {i} ({v}) is not of datatype {dt}"
        )));
    }
    Ok(Tensor {
        name,
        shape,
        data: flat,
    })
}

/// The inputs as a frame: one tensor `[N, F]` (F = the schema's fields, in order) or one
/// tensor `[N]` / `[N, 1]` per field, by field name.
fn decode(request: &Json, schema: &Arc<Schema>) -> Result<Frame, ApiError> {
    let inputs = request
        .get("inputs")
        .and_then(Json::as_array)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("the request needs `inputs`: a list of tensors {name, shape, datatype, data}"))?;
    let tensors: Vec<Tensor<'_>> = inputs.iter().map(tensor).collect::<Result<_, _>>()?;
    let f = schema.len();
    let one_tensor = tensors.len() == 1
        && (schema.index_of(tensors[0].name).is_none()
            || (f > 1 && tensors[0].shape.len() == 2 && tensors[0].shape[1] == f));
    let rows: Vec<Json> = if one_tensor {
        let t = &tensors[0];
        if t.shape.len() != 2 || t.shape[1] != f {
            return Err(bad(format!(
                "input '{}' has shape {:?}; one tensor must have shape [N, {f}] with the fields in order ({}), or send one input per field",
                t.name,
                t.shape,
                crate::input::names(schema)
            )));
        }
        t.data
            .chunks(f)
            .map(|row| Json::Array(row.iter().map(|v| (*v).clone()).collect()))
            .collect()
    } else {
        let n = tensors[0].shape.first().copied().unwrap_or(0);
        for t in &tensors {
            if schema.index_of(t.name).is_none() {
                return Err(bad(format!(
                    "input '{}' is not a field of the model; its inputs are {}",
                    t.name,
                    crate::input::names(schema)
                )));
            }
            // Checked: with a zero first dimension the rest of the shape may overflow.
            let per_row = t.shape.iter().skip(1).try_fold(1usize, |p, &d| p.checked_mul(d));
            if t.shape.is_empty() || per_row != Some(1) || t.shape[0] != n {
                return Err(bad(format!(
                    "input '{}' has shape {:?}; per-field inputs must all have shape [{n}] or [{n}, 1]",
                    t.name, t.shape
                )));
            }
        }
        let by_field: Vec<Option<&Tensor<'_>>> = schema
            .fields()
            .iter()
            .map(|fl| tensors.iter().find(|t| t.name == fl.name))
            .collect();
        if let Some(missing) = schema
            .fields()
            .iter()
            .zip(&by_field)
            .find(|(fl, t)| t.is_none() && !fl.nullable)
        {
            return Err(bad(format!(
                "input '{}' is missing; the model reads it",
                missing.0.name
            )));
        }
        (0..n)
            .map(|r| {
                Json::Array(
                    by_field
                        .iter()
                        .map(|t| t.map_or(Json::Null, |t| t.data[r].clone()))
                        .collect(),
                )
            })
            .collect()
    };
    if rows.is_empty() {
        return Err(bad("the inputs hold no rows"));
    }
    Frame::from_json_arrays(&rows, schema.clone(), &ReadOptions::named("inputs"))
        .map_err(|e| ApiError::from_core(&e).style(STYLE))
}
