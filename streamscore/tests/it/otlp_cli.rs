//! OTLP from the commands, against a recording collector on 127.0.0.1: `serve` sends its
//! request metrics and spans with the headers of `OTEL_EXPORTER_OTLP_HEADERS` (never in its
//! logs) and answers the same while the collector refuses; `drift` sends its report's metrics
//! and `DriftDetected` (and, feature `azure`, the same to Application Insights).

#[path = "../../../test-support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use receiver::Receiver;
use serde_json::{Value, json};

use crate::common::{ok, p, streamscore_env};

const SECRET: &str = "otlp-cli-key-8c7b6a59";

/// A model trained once for the module's tests (its directory lives as long as the process).
fn model() -> &'static (PathBuf, PathBuf) {
    static MODEL: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let model = crate::serve_security::trained_model(&dir);
        (dir.join("train.csv"), model)
    })
}

/// A `streamscore serve` child; stopped (SIGTERM, then killed) when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The rows of the data set as `/score` records.
fn records(csv: &Path, n: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .take(n)
        .map(|line| {
            let record: serde_json::Map<String, Value> = header
                .iter()
                .zip(line.split(','))
                .filter(|(h, _)| **h != "default")
                .map(|(h, v)| (h.to_string(), serde_json::from_str(v).unwrap_or(json!(v))))
                .collect();
            Value::Object(record)
        })
        .collect()
}

/// An attribute list as key → value object.
fn attrs(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every data point of the metric `name` in the metrics bodies, with its metric.
fn points<'a>(bodies: &'a [Value], name: &str) -> Vec<(&'a Value, &'a Value)> {
    let mut out = Vec::new();
    for body in bodies {
        for rm in body["resourceMetrics"].as_array().unwrap() {
            for sm in rm["scopeMetrics"].as_array().unwrap() {
                for m in sm["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["name"] == name)
                {
                    let data = ["gauge", "sum", "histogram"]
                        .iter()
                        .find_map(|k| m.get(*k))
                        .unwrap();
                    for point in data["dataPoints"].as_array().unwrap() {
                        out.push((m, point));
                    }
                }
            }
        }
    }
    out
}

fn log_records(bodies: &[Value]) -> Vec<&Value> {
    bodies
        .iter()
        .flat_map(|b| {
            b["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                .as_array()
                .unwrap()
        })
        .collect()
}

#[test]
fn serve_sends_request_metrics_and_spans_with_the_headers_and_answers_the_same_while_refused() {
    let (train, model) = model();
    // The collector refuses the first spans it gets.
    let r = Receiver::start_scripted(&[(Some("/v1/traces"), 400)]);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamscore"))
        .args([
            "serve",
            "--port",
            "0",
            "--model",
            p(model),
            "--otlp-endpoint",
            &r.url,
        ])
        .env("OTEL_EXPORTER_OTLP_HEADERS", format!("api-key={SECRET}"))
        .env("OTEL_SERVICE_NAME", "credit-scorer")
        // Exports while it serves: spans every 50 ms, metrics every 100 ms.
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let mut served = Served {
        child,
        url: url.trim().to_string(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let score = |body: Value| {
        let (http, url) = (http.clone(), format!("{}/score", served.url));
        runtime.block_on(async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    // The model loads after the address is printed: wait until the server says it is ready.
    let ready = format!("{}/v2/health/ready", served.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while runtime
        .block_on(http.get(&ready).send())
        .ok()
        .map(|r| r.status().as_u16())
        != Some(200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rows = records(train, 3);
    let first = score(json!({"data": rows}));
    assert_eq!(first.0, 200, "{}", first.1);
    // A bad request counts as an error.
    let bad = score(json!({"data": [{"nope": 1}]})).0;
    assert!((400..500).contains(&bad), "{bad}");
    assert!(
        r.wait_for(|calls| calls.iter().any(|c| c.path == "/v1/traces" && c.status == 400)),
        "the collector never got spans"
    );
    // After the refusal: the same answer, and the next spans go through.
    assert_eq!(score(json!({"data": rows})), first);
    assert!(r.wait_for(|calls| calls.iter().any(|c| c.path == "/v1/traces" && c.status == 200)));
    assert!(served.stop().success());

    let calls = r.calls();
    assert!(calls.iter().all(|c| c.header("api-key") == Some(SECRET)));
    let metrics = r.accepted_json("/v1/metrics");
    let resource = attrs(&metrics[0]["resourceMetrics"][0]["resource"]["attributes"]);
    assert_eq!(resource["service.name"], json!({"stringValue": "credit-scorer"}));
    // Deltas: the requests add up over the exports.
    let requests = |status: &str| -> u64 {
        points(&metrics, "streamscore_serve_requests_total")
            .iter()
            .filter(|(_, pt)| {
                let a = attrs(&pt["attributes"]);
                a["route"]["stringValue"] == "/score" && a["status"]["stringValue"] == status
            })
            .map(|(_, pt)| pt["asInt"].as_str().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!((requests("200"), requests(&bad.to_string())), (2, 1));
    let latency: u64 = points(&metrics, "streamscore_serve_request_duration_seconds")
        .iter()
        .filter(|(_, pt)| attrs(&pt["attributes"])["route"]["stringValue"] == "/score")
        .map(|(_, pt)| pt["count"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(latency, 3);
    let spans: Vec<Value> = r
        .accepted_json("/v1/traces")
        .iter()
        .flat_map(|b| {
            b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    assert!(!spans.is_empty());
    assert!(spans.iter().all(|s| s["name"] == "POST /score"), "{spans:#?}");

    let output = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        output.contains("OTLP export:") && output.contains("HTTP 400"),
        "{output}"
    );
    assert!(!output.contains(SECRET), "the header value is in the logs");
}

#[test]
fn drift_sends_its_report_as_metrics_and_a_drift_detected_log_record() {
    let (_, model) = model();
    let dir = tempfile::tempdir().unwrap();
    let (drifted, json_out) = (dir.path().join("drifted.csv"), dir.path().join("report.json"));
    ok(&[
        "generate",
        "--rows",
        "300",
        "--seed",
        "3",
        "--drift",
        "1.0",
        "--out",
        p(&drifted),
    ]);
    let r = Receiver::start(&[]);
    let endpoint = format!("{}/", r.url);
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", r.url.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=otlp-cli-key-8c7b6a59"),
        #[cfg(feature = "azure")]
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "InstrumentationKey=drift-cli-key",
        ),
        #[cfg(feature = "azure")]
        ("STREAMSCORE_APPINSIGHTS_ENDPOINT", endpoint.as_str()),
    ];
    let out = streamscore_env(
        &[
            "drift",
            "--reference",
            p(model),
            "--current",
            p(&drifted),
            "--json",
            p(&json_out),
        ],
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(SECRET) && !String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    // The dataset metrics are top-level fields of the report.
    let d = &report;
    assert_eq!(d["dataset_drift"], true, "the generated drift is found");

    let metrics = r.accepted_json("/v1/metrics");
    let value = |name: &str| {
        let found = points(&metrics, name);
        assert_eq!(found.len(), 1, "{name}");
        assert_eq!(
            attrs(&found[0].1["attributes"])["reference"]["stringValue"],
            p(model)
        );
        found[0].1["asDouble"].as_f64().unwrap()
    };
    assert_eq!(value("n_features"), d["n_features"].as_f64().unwrap());
    assert_eq!(
        value("n_drifted_features"),
        d["n_drifted_features"].as_f64().unwrap()
    );
    assert_eq!(
        value("share_drifted_features"),
        d["share_drifted_features"].as_f64().unwrap()
    );
    assert_eq!(value("dataset_drift"), 1.0);
    let scores: BTreeMap<String, f64> = points(&metrics, "drift_score")
        .iter()
        .map(|(_, pt)| {
            (
                attrs(&pt["attributes"])["feature_name"]["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                pt["asDouble"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeMap<String, f64> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["prediction"].as_array().into_iter().flatten())
        .map(|f| {
            (
                f["feature_name"].as_str().unwrap().to_string(),
                f["drift_score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(scores, expected);

    let logs = r.accepted_json("/v1/logs");
    let records = log_records(&logs);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["eventName"], "DriftDetected");
    let a = attrs(&records[0]["attributes"]);
    assert_eq!(a["n_features"]["intValue"], d["n_features"].to_string());
    assert_eq!(
        a["n_drifted_features"]["intValue"],
        d["n_drifted_features"].to_string()
    );
    assert_eq!(a["dataset_drift"]["boolValue"], true);
    assert_eq!(a["n_current_rows"]["intValue"], "300");

    #[cfg(feature = "azure")]
    {
        let envelopes: Vec<Value> = r
            .accepted_json("/v2.1/track")
            .into_iter()
            .flat_map(|b| b.as_array().unwrap().clone())
            .collect();
        let names: Vec<&str> = envelopes
            .iter()
            .filter_map(|e| e["data"]["baseData"]["metrics"][0]["name"].as_str())
            .collect();
        for name in [
            "n_features",
            "n_drifted_features",
            "share_drifted_features",
            "dataset_drift",
        ] {
            assert!(names.contains(&name), "{name} not in {names:?}");
        }
        assert_eq!(
            names.iter().filter(|n| **n == "drift_score").count(),
            expected.len()
        );
        assert!(envelopes.iter().all(|e| e["iKey"] == "drift-cli-key"));
        assert!(
            envelopes
                .iter()
                .any(|e| e["data"]["baseData"]["name"] == "DriftDetected")
        );
    }
    #[cfg(not(feature = "azure"))]
    let _ = endpoint;
}
