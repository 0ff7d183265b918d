//! The Logs Ingestion sink against a recording HTTP receiver that checks every request against
//! the Azure Monitor Logs Ingestion contract: URL (DCE, DCR immutable id, stream, api-version),
//! headers (Bearer token, JSON, gzip), a gzip body holding a JSON array of records of the
//! documented shape, at most 1 MB per call; 429 (with Retry-After) and 503 retried; 400
//! surfaced with the service's message; the Entra ID client-credentials token flow.

#![cfg(feature = "azure")]

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ml_stream::logs_ingestion::{
    API_VERSION, ClientSecretToken, LogsIngestionOptions, LogsIngestionSink, MAX_BODY_BYTES, StaticToken,
};
use ml_stream::{InferenceRecord, InferenceSink, RetryPolicy, SourcePosition};

const RULE: &str = "dcr-0123456789abcdef0123456789abcdef";
const STREAM: &str = "Custom-StreamscoreInference_CL";

#[derive(Debug, Clone)]
struct Recorded {
    at: Instant,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A scripted answer: status, Retry-After, body.
type Answer = (u16, Option<&'static str>, &'static str);

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Answers to give, in order (status, Retry-After, body); 204 once empty.
    script: Arc<Mutex<VecDeque<Answer>>>,
}

async fn handle(
    State(r): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.requests.lock().unwrap().push(Recorded {
        at: Instant::now(),
        method,
        uri: uri.clone(),
        headers,
        body: body.to_vec(),
    });
    if uri.path().ends_with("/oauth2/v2.0/token") {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"entra-token-1"}"#,
        )
            .into_response();
    }
    let next = r.script.lock().unwrap().pop_front();
    match next {
        None => StatusCode::NO_CONTENT.into_response(),
        Some((status, retry_after, body)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
            if let Some(s) = retry_after {
                response.headers_mut().insert("retry-after", s.parse().unwrap());
            }
            response
        }
    }
}

async fn start(receiver: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(handle).with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn record(i: u64, pad: usize) -> InferenceRecord {
    let inputs = serde_json::json!({"id": i, "note": "x".repeat(pad)});
    let outputs = serde_json::json!({"label": "1", "probability_1": 0.75});
    InferenceRecord {
        correlation_id: format!("c{}", i / 100),
        request_id: format!("r{i}"),
        timestamp_ms: 1_795_000_000_000 + i as i64,
        event_timestamp_ms: Some(1_795_000_000_000),
        model_name: "credit".into(),
        model_version: "3".into(),
        position: SourcePosition {
            partition: 1,
            offset: i,
        },
        inputs: inputs.as_object().unwrap().clone(),
        outputs: outputs.as_object().unwrap().clone(),
        latency_ms: 1.5,
    }
}

fn options(endpoint: &str) -> LogsIngestionOptions {
    let mut o = LogsIngestionOptions::new(endpoint, RULE, STREAM);
    o.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };
    o
}

/// Checks one ingestion request against the contract; returns its records.
fn check_call(r: &Recorded, token: &str) -> Vec<serde_json::Value> {
    assert_eq!(r.method, Method::POST);
    assert_eq!(
        r.uri.path(),
        format!("/dataCollectionRules/{RULE}/streams/{STREAM}")
    );
    assert_eq!(r.uri.query(), Some(format!("api-version={API_VERSION}").as_str()));
    assert_eq!(API_VERSION, "2023-01-01");
    assert_eq!(r.headers["authorization"], format!("Bearer {token}").as_str());
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert!(r.body.len() <= MAX_BODY_BYTES);
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut json)
        .unwrap();
    assert!(json.len() <= MAX_BODY_BYTES, "{} bytes uncompressed", json.len());
    let records: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    for rec in &records {
        let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "TimeGenerated",
                "CorrelationId",
                "RequestId",
                "Model",
                "ModelVersion",
                "Partition",
                "Offset",
                "EventTime",
                "LatencyMs",
                "Inputs",
                "Outputs"
            ]
        );
        // Record i was scored at 1_795_000_000_000 + i ms, i.e. 2026-11-18T11:06:40.000Z + i ms.
        let offset = rec["Offset"].as_u64().unwrap();
        let want = format!("2026-11-18T11:06:{:02}.{:03}Z", 40 + offset / 1000, offset % 1000);
        assert_eq!(rec["TimeGenerated"], want.as_str());
        assert_eq!(rec["Model"], "credit");
        assert_eq!(rec["ModelVersion"], "3");
        assert_eq!(rec["Outputs"]["probability_1"], 0.75);
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_by_the_contract_in_calls_of_at_most_one_megabyte() {
    let receiver = Receiver::default();
    let endpoint = start(receiver.clone()).await;
    let mut sink = LogsIngestionSink::new(options(&endpoint), Arc::new(StaticToken::new("tok-1"))).unwrap();
    // 2,500 records of ~1 kB: 2.5 MB of JSON, which must be split into at least 3 calls.
    let records: Vec<InferenceRecord> = (0..2500).map(|i| record(i, 1000)).collect();
    sink.write_batch(&records[..1200]).await.unwrap();
    sink.write_batch(&records[1200..]).await.unwrap();
    sink.flush().await.unwrap();
    let requests = receiver.requests.lock().unwrap().clone();
    assert!(requests.len() >= 3, "{} calls", requests.len());
    let got: Vec<u64> = requests
        .iter()
        .flat_map(|r| check_call(r, "tok-1"))
        .map(|rec| rec["Offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, (0..2500).collect::<Vec<_>>(), "every record once, in order");
    assert_eq!(sink.calls(), requests.len() as u64);
    assert!(
        !format!("{sink:?}").contains("tok-1"),
        "the token is not in Debug"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_unavailability_are_retried_and_a_bad_request_surfaces() {
    let receiver = Receiver::default();
    receiver.script.lock().unwrap().extend([
        (
            429,
            Some("1"),
            r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
        ),
        (503, None, "busy"),
    ]);
    let endpoint = start(receiver.clone()).await;
    let mut sink = LogsIngestionSink::new(options(&endpoint), Arc::new(StaticToken::new("tok-2"))).unwrap();
    sink.write_batch(&[record(7, 10)]).await.unwrap();
    sink.flush().await.unwrap();
    {
        let requests = receiver.requests.lock().unwrap();
        assert_eq!(requests.len(), 3, "429, 503, then accepted");
        assert!(
            requests[1].at - requests[0].at >= Duration::from_secs(1),
            "Retry-After: 1 is honoured"
        );
        for r in requests.iter() {
            assert_eq!(check_call(r, "tok-2")[0]["Offset"], 7);
        }
    }

    receiver.requests.lock().unwrap().clear();
    receiver.script.lock().unwrap().push_back((
        400,
        None,
        r#"{"error":{"code":"InvalidStream","message":"Stream Custom-StreamscoreInference_CL is not in the rule"}}"#,
    ));
    sink.write_batch(&[record(8, 10)]).await.unwrap();
    let e = sink.flush().await.unwrap_err().to_string();
    assert!(
        e.contains("400") && e.contains("InvalidStream") && e.contains("is not in the rule"),
        "{e}"
    );
    assert!(!e.contains("tok-2"), "{e}");
    assert_eq!(receiver.requests.lock().unwrap().len(), 1, "a 400 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_principal_token_is_requested_once_and_sent() {
    let receiver = Receiver::default();
    let endpoint = start(receiver.clone()).await;
    let token = ClientSecretToken::new(&endpoint, "tenant-1", "client-1", "s3cret&=");
    let mut sink = LogsIngestionSink::new(options(&endpoint), Arc::new(token)).unwrap();
    for i in 0..2 {
        sink.write_batch(&[record(i, 10)]).await.unwrap();
        sink.flush().await.unwrap();
    }
    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "one token request, two calls");
    assert_eq!(requests[0].uri.path(), "/tenant-1/oauth2/v2.0/token");
    let form = String::from_utf8(requests[0].body.clone()).unwrap();
    assert_eq!(
        form,
        "grant_type=client_credentials&client_id=client-1&client_secret=s3cret%26%3D&scope=https%3A%2F%2Fmonitor.azure.com%2F.default"
    );
    check_call(&requests[1], "entra-token-1");
    check_call(&requests[2], "entra-token-1");
    let e = LogsIngestionSink::new(
        LogsIngestionOptions::new(&endpoint, RULE, "StreamscoreInference"),
        Arc::new(StaticToken::new("t")),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Custom-<Table>_CL"), "{e}");
}
