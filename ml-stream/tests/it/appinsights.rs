//! The Application Insights exporter against a recording receiver on 127.0.0.1: envelopes as
//! the track API defines them, retries of 503, refusals logged and counted, nothing lost at
//! shutdown, and the `appinsights:` sink in a pipeline.
#![cfg(feature = "azure")]

use crate::common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ml_stream::appinsights::{
    AppInsights, AppInsightsOptions, AppInsightsSink, ConnectionString, RecordKind, RequestData,
};
use ml_stream::{Pipeline, PipelineConfig, source::channel};
use serde_json::Value;

const IKEY: &str = "11111111-2222-3333-4444-555555555555";

/// Each call's status and envelopes.
type Calls = Arc<Mutex<Vec<(u16, Vec<Value>)>>>;

/// Answers each call with the next scripted status (200 once the script is done) and keeps
/// every call's envelopes with the status it got.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<u16>>>,
    calls: Calls,
}

impl Receiver {
    fn accepted(&self) -> Vec<Value> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(s, _)| *s == 200)
            .flat_map(|(_, e)| e.clone())
            .collect()
    }

    fn statuses(&self) -> Vec<u16> {
        self.calls.lock().unwrap().iter().map(|(s, _)| *s).collect()
    }
}

async fn track(State(r): State<Receiver>, body: Bytes) -> (StatusCode, String) {
    let envelopes: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array of envelopes");
    let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
    let n = envelopes.len();
    r.calls.lock().unwrap().push((status, envelopes));
    let answer = if status == 200 {
        format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#)
    } else {
        r#"{"itemsReceived":0,"itemsAccepted":0,"errors":[]}"#.to_string()
    };
    (StatusCode::from_u16(status).unwrap(), answer)
}

/// Starts a receiver answering `script` first; returns it and its base URL. The server task
/// ends with the test's runtime.
async fn receiver(script: &[u16]) -> (Receiver, String) {
    let r = Receiver::default();
    r.script.lock().unwrap().extend(script.iter().copied());
    let app = Router::new()
        .route("/v2.1/track", post(track))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/"))
}

fn client(endpoint: &str) -> AppInsights {
    let connection = ConnectionString::parse(&format!(
        "InstrumentationKey={IKEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
    ))
    .unwrap();
    let mut options = AppInsightsOptions::new(connection);
    options.endpoint = Some(endpoint.to_string());
    options.role = "credit-scorer".into();
    options.batch.retry.initial_backoff = Duration::from_millis(10);
    options.batch.send_interval = Duration::from_secs(3600);
    options.batch.metrics_interval = Duration::from_secs(3600);
    AppInsights::start(options).unwrap()
}

fn by_type<'a>(envelopes: &'a [Value], base_type: &str) -> Vec<&'a Value> {
    envelopes
        .iter()
        .filter(|e| e["data"]["baseType"] == base_type)
        .collect()
}

#[tokio::test]
async fn envelopes_follow_the_track_contract_and_nothing_is_lost_at_shutdown() {
    let (r, url) = receiver(&[]).await;
    let ai = client(&url);
    let recorder = ai.recorder(metrics::NoopRecorder);
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("streamscore_stream_records_out_total").increment(40);
        metrics::counter!("streamscore_stream_records_out_total").increment(2);
        for v in [0.001, 0.003] {
            metrics::histogram!("streamscore_serve_request_duration_seconds", "route" => "/score").record(v);
        }
    });
    let mut dims = BTreeMap::new();
    dims.insert("feature_name".to_string(), "LIMIT_BAL".to_string());
    ai.track_metric("drift_score", 0.25, dims);
    let mut props = BTreeMap::new();
    props.insert("model".to_string(), "credit:3".to_string());
    ai.track_event(
        "ModelPromoted",
        props,
        BTreeMap::from([("auc".to_string(), 0.78)]),
    );
    ai.track_request(RequestData {
        ver: 2,
        id: "req-1".into(),
        name: "POST /score".into(),
        duration: "0.00:00:00.0015000".into(),
        response_code: "200".into(),
        success: true,
        url: "/score".into(),
        properties: BTreeMap::new(),
    });
    // No flush before: shutdown alone must deliver everything queued and aggregated.
    let stats = ai.shutdown(Duration::from_secs(5)).await;
    let got = r.accepted();
    assert_eq!(got.len(), 5, "{got:#?}");
    assert_eq!((stats.accepted, stats.failed, stats.dropped), (5, 0, 0));
    for e in &got {
        assert_eq!(e["ver"], 1);
        assert_eq!(e["iKey"], IKEY);
        assert_eq!(e["sampleRate"], 100.0);
        assert_eq!(e["tags"]["ai.cloud.role"], "credit-scorer");
        let time = e["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
        assert_eq!(e["data"]["baseData"]["ver"], 2);
    }
    let metrics = by_type(&got, "MetricData");
    assert_eq!(metrics.len(), 3);
    for m in &metrics {
        assert_eq!(m["name"], "Microsoft.ApplicationInsights.Metric");
        assert_eq!(m["data"]["baseData"]["metrics"].as_array().unwrap().len(), 1);
    }
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|m| m["data"]["baseData"]["metrics"][0]["name"] == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
    };
    let drift = metric("drift_score");
    assert_eq!(drift["data"]["baseData"]["metrics"][0]["value"], 0.25);
    assert_eq!(drift["data"]["baseData"]["metrics"][0]["kind"], "Measurement");
    assert_eq!(
        drift["data"]["baseData"]["properties"]["feature_name"],
        "LIMIT_BAL"
    );
    let records = metric("streamscore_stream_records_out_total");
    assert_eq!(records["data"]["baseData"]["metrics"][0]["value"], 42.0);
    let latency = &metric("streamscore_serve_request_duration_seconds")["data"]["baseData"];
    assert_eq!(latency["properties"]["route"], "/score");
    let point = &latency["metrics"][0];
    assert_eq!(point["kind"], "Aggregation");
    assert_eq!(
        (
            point["count"].as_u64(),
            point["min"].as_f64(),
            point["max"].as_f64()
        ),
        (Some(2), Some(0.001), Some(0.003))
    );
    assert!((point["value"].as_f64().unwrap() - 0.004).abs() < 1e-12);
    assert!((point["stdDev"].as_f64().unwrap() - 0.001).abs() < 1e-12);

    let events = by_type(&got, "EventData");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["name"], "Microsoft.ApplicationInsights.Event");
    let event = &events[0]["data"]["baseData"];
    assert_eq!(
        (
            &event["name"],
            &event["properties"]["model"],
            &event["measurements"]["auc"]
        ),
        (
            &Value::from("ModelPromoted"),
            &Value::from("credit:3"),
            &Value::from(0.78)
        )
    );

    let requests = by_type(&got, "RequestData");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["name"], "Microsoft.ApplicationInsights.Request");
    assert_eq!(requests[0]["tags"]["ai.operation.id"], "req-1");
    let request = &requests[0]["data"]["baseData"];
    assert_eq!(
        (&request["name"], &request["responseCode"], &request["success"]),
        (
            &Value::from("POST /score"),
            &Value::from("200"),
            &Value::from(true)
        )
    );
}

#[tokio::test]
async fn a_503_is_retried_and_delivered() {
    let (r, url) = receiver(&[503]).await;
    let ai = client(&url);
    ai.track_event("AlertFired", BTreeMap::new(), BTreeMap::new());
    ai.flush().await;
    assert_eq!(r.statuses(), vec![503, 200]);
    let got = r.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["baseData"]["name"], "AlertFired");
    let stats = ai.stats();
    assert_eq!((stats.accepted, stats.failed, stats.retries), (1, 0, 1));
}

#[tokio::test]
async fn a_400_is_counted_and_logged_and_the_stream_goes_on() {
    let (r, url) = receiver(&[400]).await;
    let ai = client(&url);
    let (tx, source) = channel(16);
    let sink = AppInsightsSink::new(ai.clone(), RecordKind::Event, 1.0).unwrap();
    let pipeline = Pipeline::new(
        PipelineConfig::default(),
        common::schema(),
        Arc::new(common::Affine),
        vec![Box::new(sink)],
    )
    .unwrap();
    let run = tokio::spawn(pipeline.run(Box::new(source)));
    for i in 0..3 {
        tx.send(format!(r#"{{"id": {i}, "x": {i}.5}}"#)).await.unwrap();
    }
    drop(tx);
    let report = run
        .await
        .unwrap()
        .expect("a refused export does not stop the stream");
    assert_eq!(report.records_out, 3);
    ai.flush().await;
    let stats = ai.stats();
    // The one call carrying the three records was refused: no retry, all three counted.
    assert_eq!(r.statuses(), vec![400]);
    assert_eq!((stats.accepted, stats.failed, stats.retries), (0, 3, 0));
    let error = stats.last_error.unwrap();
    assert!(error.contains("HTTP 400"), "{error}");
    // The next items go through.
    ai.track_event("AlertFired", BTreeMap::new(), BTreeMap::new());
    ai.flush().await;
    assert_eq!(ai.stats().accepted, 1);
}

#[tokio::test]
async fn the_sink_sends_sampled_records_as_traces() {
    let (r, url) = receiver(&[]).await;
    let ai = client(&url);
    let (tx, source) = channel(64);
    let rate = 0.5;
    let sink = AppInsightsSink::new(ai.clone(), RecordKind::Trace, rate).unwrap();
    let pipeline = Pipeline::new(
        PipelineConfig::default(),
        common::schema(),
        Arc::new(common::Affine),
        vec![Box::new(sink)],
    )
    .unwrap();
    let run = tokio::spawn(pipeline.run(Box::new(source)));
    for i in 0..40 {
        tx.send(format!(r#"{{"id": {i}, "x": {i}.0}}"#)).await.unwrap();
    }
    drop(tx);
    run.await.unwrap().unwrap();
    ai.flush().await;
    let traces = r.accepted();
    assert!(
        !traces.is_empty() && traces.len() < 40,
        "{} of 40 kept at rate {rate}",
        traces.len()
    );
    for t in &traces {
        assert_eq!(t["name"], "Microsoft.ApplicationInsights.Message");
        assert_eq!(t["sampleRate"], 50.0);
        let data = &t["data"]["baseData"];
        let p = &data["properties"];
        let offset: u64 = p["offset"].as_str().unwrap().parse().unwrap();
        assert!(ml_stream::appinsights::sampled(
            p["correlation_id"].as_str().unwrap(),
            0,
            offset,
            rate
        ));
        let message: Value = serde_json::from_str(data["message"].as_str().unwrap()).unwrap();
        // Affine scores 2x + 1, and event i has x = i.
        let x = message["inputs"]["x"].as_f64().unwrap();
        assert_eq!(x, offset as f64);
        assert_eq!(message["outputs"]["prediction"].as_f64(), Some(2.0 * x + 1.0));
    }
}
