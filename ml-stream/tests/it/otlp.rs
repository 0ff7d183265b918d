//! The OTLP exporter against a recording collector on 127.0.0.1: metrics, log records and
//! spans in the OTLP/HTTP JSON encoding on their three paths, the configured headers on every
//! call, nothing lost at shutdown, 503 retried, 400 counted and logged, gzip bodies.

#[path = "../../../test-support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use ml_stream::otlp::{Otlp, OtlpOptions, RequestSpan};
use receiver::Receiver;
use serde_json::{Value, json};

const SECRET: &str = "otlp-api-key-5f4e3d2c";

fn client(url: &str, gzip: bool) -> Otlp {
    let mut o = OtlpOptions::new(url).unwrap();
    o.headers = vec![("api-key".into(), SECRET.into())];
    o.resource.push(("deployment.environment".into(), "test".into()));
    o.gzip = gzip;
    o.batch.retry.initial_backoff = Duration::from_millis(10);
    o.batch.send_interval = Duration::from_secs(3600);
    o.batch.metrics_interval = Duration::from_secs(3600);
    Otlp::start(o).unwrap()
}

/// An attribute list as key → value object.
fn attrs(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
        .collect()
}

fn nanos(v: &Value) -> u64 {
    v.as_str().expect("64-bit integers are strings").parse().unwrap()
}

#[tokio::test]
async fn metrics_logs_and_spans_follow_otlp_json_and_nothing_is_lost_at_shutdown() {
    let r = Receiver::start(&[]);
    let otlp = client(&r.url, false);
    let recorder = otlp.recorder(metrics::NoopRecorder);
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("streamscore_stream_records_out_total").increment(40);
        metrics::counter!("streamscore_stream_records_out_total").increment(2);
        for v in [0.001, 0.003] {
            metrics::histogram!("streamscore_serve_request_duration_seconds", "route" => "/score").record(v);
        }
    });
    let feature = |name: &str| vec![("feature_name".to_string(), name.to_string())];
    otlp.gauge("n_features", 2.0, &[]);
    otlp.gauge("drift_score", 0.25, &feature("LIMIT_BAL"));
    otlp.gauge("drift_score", 0.75, &feature("AGE"));
    let fields: Vec<(String, String)> = [
        ("n_features", "2"),
        ("share_drifted_features", "0.5"),
        ("dataset_drift", "true"),
        ("drifted_features", "AGE"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    otlp.event("DriftDetected", &fields);
    otlp.track_request(&RequestSpan {
        name: "POST /score".into(),
        method: "POST".into(),
        route: "/score".into(),
        target: "/score".into(),
        status: 200,
        start_ns: 1_700_000_000_000_000_000,
        end_ns: 1_700_000_000_001_500_000,
        attributes: vec![("request_id".into(), "req-1".into())],
    });
    // No flush before: shutdown alone must deliver everything queued and aggregated.
    let stats = otlp.shutdown(Duration::from_secs(5)).await;
    // 3 gauges, the counter, the histogram, 1 log record, 1 span.
    assert_eq!(
        (stats.accepted, stats.failed, stats.dropped),
        (7, 0, 0),
        "{stats:?}"
    );
    let calls = r.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for c in &calls {
        assert_eq!(c.header("api-key"), Some(SECRET));
        assert_eq!(c.header("content-type"), Some("application/json"));
    }

    let body = &r.accepted_json("/v1/metrics")[0];
    let resource = attrs(&body["resourceMetrics"][0]["resource"]["attributes"]);
    assert_eq!(resource["service.name"], json!({"stringValue": "streamscore"}));
    assert_eq!(resource["deployment.environment"], json!({"stringValue": "test"}));
    let scope = &body["resourceMetrics"][0]["scopeMetrics"][0];
    assert_eq!(scope["scope"]["name"], "streamscore");
    let metrics = scope["metrics"].as_array().unwrap();
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no metric {name} in {metrics:#?}"))
    };
    assert_eq!(metrics.len(), 4, "drift_score's points go in one metric");
    assert_eq!(metric("n_features")["gauge"]["dataPoints"][0]["asDouble"], 2.0);
    let drift: Vec<(String, f64)> = metric("drift_score")["gauge"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(nanos(&p["timeUnixNano"]) > 1_600_000_000_000_000_000);
            (
                attrs(&p["attributes"])["feature_name"]["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                p["asDouble"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(drift, vec![("LIMIT_BAL".into(), 0.25), ("AGE".into(), 0.75)]);
    let sum = &metric("streamscore_stream_records_out_total")["sum"];
    assert_eq!(
        (
            &sum["aggregationTemporality"],
            &sum["isMonotonic"],
            &sum["dataPoints"][0]["asInt"]
        ),
        (&json!(1), &json!(true), &json!("42"))
    );
    let point = &sum["dataPoints"][0];
    assert!(nanos(&point["startTimeUnixNano"]) <= nanos(&point["timeUnixNano"]));
    let histogram = &metric("streamscore_serve_request_duration_seconds")["histogram"];
    assert_eq!(histogram["aggregationTemporality"], 1);
    let h = &histogram["dataPoints"][0];
    assert_eq!(attrs(&h["attributes"])["route"], json!({"stringValue": "/score"}));
    assert_eq!(
        (
            &h["count"],
            &h["min"],
            &h["max"],
            &h["bucketCounts"],
            &h["explicitBounds"]
        ),
        (
            &json!("2"),
            &json!(0.001),
            &json!(0.003),
            &json!(["2"]),
            &json!([])
        )
    );
    assert!((h["sum"].as_f64().unwrap() - 0.004).abs() < 1e-12);

    let body = &r.accepted_json("/v1/logs")[0];
    let logs = &body["resourceLogs"][0];
    assert_eq!(
        attrs(&logs["resource"]["attributes"])["service.name"]["stringValue"],
        "streamscore"
    );
    let record = &logs["scopeLogs"][0]["logRecords"][0];
    assert_eq!(
        (&record["eventName"], &record["severityNumber"], &record["body"]),
        (
            &json!("DriftDetected"),
            &json!(9),
            &json!({"stringValue": "DriftDetected"})
        )
    );
    assert!(nanos(&record["timeUnixNano"]) > 1_600_000_000_000_000_000);
    let a = attrs(&record["attributes"]);
    assert_eq!(a["event.name"], json!({"stringValue": "DriftDetected"}));
    assert_eq!(a["n_features"], json!({"intValue": "2"}));
    assert_eq!(a["share_drifted_features"], json!({"doubleValue": 0.5}));
    assert_eq!(a["dataset_drift"], json!({"boolValue": true}));
    assert_eq!(a["drifted_features"], json!({"stringValue": "AGE"}));

    let body = &r.accepted_json("/v1/traces")[0];
    let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let hex = |v: &Value, n: usize| {
        let s = v.as_str().unwrap();
        s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    assert!(hex(&span["traceId"], 32) && hex(&span["spanId"], 16), "{span}");
    assert_eq!((&span["name"], &span["kind"]), (&json!("POST /score"), &json!(2)));
    assert_eq!(
        (&span["startTimeUnixNano"], &span["endTimeUnixNano"]),
        (&json!("1700000000000000000"), &json!("1700000000001500000"))
    );
    let a = attrs(&span["attributes"]);
    assert_eq!(a["http.response.status_code"], json!({"intValue": "200"}));
    assert_eq!(a["http.route"], json!({"stringValue": "/score"}));
    assert_eq!(a["request_id"], json!({"stringValue": "req-1"}));
}

#[tokio::test]
async fn a_503_is_retried_and_delivered() {
    let r = Receiver::start(&[503]);
    let otlp = client(&r.url, false);
    otlp.event("AlertFired", &[("reason".into(), "drift".into())]);
    otlp.flush().await;
    assert_eq!(r.statuses("/v1/logs"), vec![503, 200]);
    let body = &r.accepted_json("/v1/logs")[0];
    assert_eq!(
        body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["eventName"],
        "AlertFired"
    );
    let stats = otlp.stats();
    assert_eq!((stats.accepted, stats.failed, stats.retries), (1, 0, 1));
}

#[tokio::test]
async fn a_400_is_counted_and_logged_and_the_next_items_go_through() {
    let r = Receiver::start(&[400]);
    let otlp = client(&r.url, false);
    otlp.gauge("n_features", 2.0, &[]);
    otlp.gauge("dataset_drift", 1.0, &[]);
    otlp.flush().await;
    // Refused: no retry, both points counted, the error (never the headers) kept and logged.
    assert_eq!(r.statuses("/v1/metrics"), vec![400]);
    let stats = otlp.stats();
    assert_eq!((stats.accepted, stats.failed, stats.retries), (0, 2, 0));
    let error = stats.last_error.unwrap();
    assert!(
        error.contains("HTTP 400") && error.contains("/v1/metrics"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    otlp.gauge("n_features", 2.0, &[]);
    otlp.flush().await;
    assert_eq!(otlp.stats().accepted, 1);
}

#[tokio::test]
async fn gzip_bodies_say_so_and_decode_to_the_request() {
    let r = Receiver::start(&[]);
    let otlp = client(&r.url, true);
    otlp.event("ModelPromoted", &[("version".into(), "3".into())]);
    otlp.flush().await;
    let call = &r.calls()[0];
    assert_eq!(call.header("content-encoding"), Some("gzip"));
    let mut json = String::new();
    flate2::read::GzDecoder::new(&call.body[..])
        .read_to_string(&mut json)
        .unwrap();
    let body: Value = serde_json::from_str(&json).unwrap();
    let record = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["eventName"], "ModelPromoted");
    assert_eq!(attrs(&record["attributes"])["version"], json!({"intValue": "3"}));
}
