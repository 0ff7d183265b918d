//! The loop's endpoint: the scoring routes of [`ml_serve::app`] plus a key-protected
//! `POST /alerts` that accepts an Azure Monitor common alert schema webhook and triggers the
//! configured action (the "alerts trigger a pipeline job" path).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ml_serve::AppState;
use serde_json::json;

use super::actions::Alert;
use super::orchestrator::TriggerHandle;

/// The `schemaId` of Azure Monitor's common alert schema.
pub const COMMON_ALERT_SCHEMA: &str = "azureMonitorCommonAlertSchema";

/// What `POST /alerts` does.
#[derive(Clone, Debug)]
pub struct AlertRoute {
    /// The key a caller must present: `x-api-key: KEY`, `Authorization: Bearer KEY`, or
    /// `?code=KEY` in the URL (Azure Monitor action groups can only set the URL).
    pub key: String,
    /// Where fired alerts go.
    pub trigger: TriggerHandle,
    /// The action to run (default `retrain`).
    pub action: String,
}

/// The router: [`ml_serve::app`] plus `/alerts` when `alerts` is given.
pub fn router(state: AppState, alerts: Option<AlertRoute>) -> Router {
    let app = ml_serve::app(state);
    match alerts {
        Some(route) => app.merge(
            Router::new()
                .route("/alerts", post(alerts_handler))
                .with_state(route),
        ),
        None => app,
    }
}

fn presented_key<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k);
    }
    if let Some(k) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(k);
    }
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix("code="))
}

/// Compares without stopping at the first difference, so timing does not reveal the key.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

async fn alerts_handler(
    State(route): State<AlertRoute>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    match presented_key(&headers, &uri) {
        Some(k) if same_key(k, &route.key) => {}
        Some(_) => return answer(StatusCode::UNAUTHORIZED, "wrong key for /alerts"),
        None => {
            return answer(
                StatusCode::UNAUTHORIZED,
                "missing key: send x-api-key, Authorization: Bearer, or ?code= in the URL",
            );
        }
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return answer(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")),
    };
    if payload.get("schemaId").and_then(|v| v.as_str()) != Some(COMMON_ALERT_SCHEMA) {
        return answer(
            StatusCode::BAD_REQUEST,
            "field `schemaId`: expected \"azureMonitorCommonAlertSchema\" (enable the common alert schema on the action group)",
        );
    }
    let Some(essentials) = payload.pointer("/data/essentials") else {
        return answer(StatusCode::BAD_REQUEST, "field `data.essentials` is missing");
    };
    let rule = essentials
        .get("alertRule")
        .and_then(|v| v.as_str())
        .unwrap_or("azure_monitor");
    let condition = essentials
        .get("monitorCondition")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if condition != "Fired" {
        return (
            StatusCode::OK,
            axum::Json(json!({"status": "ignored", "monitorCondition": condition})),
        )
            .into_response();
    }
    let alert = Alert {
        rule: format!("azure_monitor:{rule}"),
        value: 1.0,
        at_event: 0,
        reason: format!(
            "Azure Monitor alert `{rule}` fired ({})",
            essentials
                .get("alertId")
                .and_then(|v| v.as_str())
                .unwrap_or("no alertId")
        ),
    };
    if !route.trigger.trigger(alert, &route.action) {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "the loop has stopped");
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "accepted", "action": route.action})),
    )
        .into_response()
}
