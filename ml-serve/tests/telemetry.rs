//! Request telemetry: every `/score` call reaches a recording Application Insights receiver as
//! `RequestData`; a receiver that refuses (400) costs a counted, logged export and nothing
//! else — the scoring answers are the same.
#![cfg(feature = "azure")]

#[path = "it/support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ml_serve::ServeConfig;
use ml_stream::appinsights::{AppInsights, AppInsightsOptions, ConnectionString};
use serde_json::{Value, json};
use support::{TestServer, client, regression};

type Calls = Arc<Mutex<(VecDeque<u16>, Vec<(u16, Vec<Value>)>)>>;

async fn track(State(calls): State<Calls>, body: Bytes) -> StatusCode {
    let envelopes: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array of envelopes");
    let mut calls = calls.lock().unwrap();
    let status = calls.0.pop_front().unwrap_or(200);
    calls.1.push((status, envelopes));
    StatusCode::from_u16(status).unwrap()
}

#[tokio::test]
async fn score_calls_arrive_as_request_data_and_a_refusing_receiver_changes_no_answer() {
    // The receiver refuses the first call.
    let calls: Calls = Arc::new(Mutex::new((VecDeque::from([400]), Vec::new())));
    let app = axum::Router::new()
        .route("/v2.1/track", post(track))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut options =
        AppInsightsOptions::new(ConnectionString::parse("InstrumentationKey=serve-key").unwrap());
    options.endpoint = Some(receiver);
    options.batch.send_interval = Duration::from_secs(3600);
    let ai = AppInsights::start(options).unwrap();
    assert!(ai.install_global());

    let server = TestServer::with_model(ServeConfig::default(), "reg", regression()).await;
    let c = client();
    let score = |body: Value| {
        let c = c.clone();
        let url = server.url("/score");
        async move { c.post(url).json(&body).send().await.unwrap() }
    };
    let good = json!({"data": [{"a": 1.0, "b": 0.0, "c": "red"}]});
    // a = 1, b = 0, red: 2·1 − 0 + 1.5 = 3.5 (the training data's exact relation).
    let first = score(good.clone()).await;
    assert_eq!(first.status(), 200);
    let first_id = first.headers()["x-request-id"].to_str().unwrap().to_string();
    let first_answer: Value = first.json().await.unwrap();
    ai.flush().await; // refused: counted, logged
    assert_eq!((ai.stats().failed, ai.stats().accepted), (1, 0));
    assert!(ai.stats().last_error.unwrap().contains("HTTP 400"));

    let second = score(good).await;
    assert_eq!(second.status(), 200);
    let second_answer: Value = second.json().await.unwrap();
    assert_eq!(first_answer, second_answer);
    assert!(
        (second_answer[0].as_f64().unwrap() - 3.5).abs() < 1e-6,
        "{second_answer}"
    );
    let bad = score(json!({"data": [{"a": "x"}]})).await;
    assert_eq!(bad.status(), 400);
    let bad_id = bad.headers()["x-request-id"].to_str().unwrap().to_string();
    // Probes that succeed are not requests worth sending.
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 200);
    ai.flush().await;
    server.stop().await;

    let calls = calls.lock().unwrap();
    assert_eq!(
        calls.1.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![400, 200]
    );
    assert_eq!(calls.1[0].1[0]["data"]["baseData"]["id"], first_id.as_str());
    let requests: Vec<&Value> = calls.1[1].1.iter().collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (r, (code, success)) in requests.iter().zip([("200", true), ("400", false)]) {
        assert_eq!(r["name"], "Microsoft.ApplicationInsights.Request");
        assert_eq!(r["iKey"], "serve-key");
        let d = &r["data"];
        assert_eq!(d["baseType"], "RequestData");
        assert_eq!(d["baseData"]["name"], "POST /score");
        assert_eq!(d["baseData"]["url"], "/score");
        assert_eq!(d["baseData"]["responseCode"], code);
        assert_eq!(d["baseData"]["success"], success);
        assert_eq!(r["tags"]["ai.operation.id"], d["baseData"]["id"]);
        let duration = d["baseData"]["duration"].as_str().unwrap();
        assert!(
            duration.starts_with("0.00:00:") && duration.len() == 18,
            "{duration}"
        );
    }
    assert_eq!(requests[1]["data"]["baseData"]["id"], bad_id.as_str());
    assert_eq!(
        requests[0]["data"]["baseData"]["properties"]["model_version"],
        "reg:3"
    );
}
