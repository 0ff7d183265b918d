//! Request bodies from the fuzz targets (fuzz/) that once crashed the endpoint, each a test
//! named after what it was: the answer is the documented 4xx and the server keeps serving.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ml_core::{CsvTable, Estimator, InferOptions, ReadOptions};
use ml_serve::{AppState, ServeConfig, ServedModel};
use tower::ServiceExt;

fn app() -> axum::Router {
    let table = CsvTable::read("x,y\n1,0\n2,0\n3,1\n4,1\n".as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let data = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let model = Estimator::from_name("logistic_regression", &[])
        .unwrap()
        .fit(&data, "y")
        .unwrap();
    let served = ServedModel::new("m", "1", Arc::new(model)).unwrap();
    ml_serve::app(AppState::with_model(ServeConfig::default(), served).unwrap())
}

async fn infer(app: &axum::Router, body: &str) -> (StatusCode, String) {
    let request = Request::post("/v2/models/m/infer")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn oip_huge_shape_is_a_400_not_an_overflow_panic() {
    let app = app();
    // 2^32 · 2^32 elements: the element count overflowed (a panic in builds with overflow checks).
    let body = r#"{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP64","data":[1]}]}"#;
    let (status, text) = infer(&app, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("is too large (more elements than can be addressed)"),
        "{text}"
    );
    // The server keeps serving.
    let ok = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[3]}]}"#;
    assert_eq!(infer(&app, ok).await.0, StatusCode::OK);
}

#[tokio::test]
async fn oip_zero_rows_with_an_overflowing_rest_of_shape_is_a_400_not_an_overflow_panic() {
    let app = app();
    // Zero elements in all (the first dimension is 0), but the per-row size 2^32 · 2^32 overflowed.
    let body = r#"{"inputs":[{"name":"x","shape":[0,4294967296,4294967296],"datatype":"FP64","data":[]}]}"#;
    let (status, text) = infer(&app, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains("per-field inputs must all have shape [0] or [0, 1]"),
        "{text}"
    );
}
