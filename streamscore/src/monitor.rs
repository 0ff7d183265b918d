//! Monitoring signals of drift results, in the reference pipeline's names: the dataset metrics
//! `n_features`, `n_drifted_features`, `share_drifted_features`, `dataset_drift` and the
//! per-feature `drift_score` (dimension `feature_name`), as gauges of the `metrics` facade
//! (Prometheus, and the exporters through the forwarding recorder) and, under exactly those
//! names, to Application Insights (`MetricData`, feature `azure`) and OTLP (gauges), with a
//! `DriftDetected` event (custom event, log record) when the dataset drifted.

use ml_drift::DriftReport;

/// Records a drift report as gauges: `streamscore_drift_<name>` for the dataset metrics and
/// `streamscore_drift_score{feature_name}` per feature (model outputs included).
pub fn record_drift_gauges(report: &DriftReport) {
    let d = &report.dataset;
    metrics::gauge!("streamscore_drift_n_features").set(d.n_features as f64);
    metrics::gauge!("streamscore_drift_n_drifted_features").set(d.n_drifted_features as f64);
    metrics::gauge!("streamscore_drift_share_drifted_features").set(d.share_drifted_features);
    metrics::gauge!("streamscore_drift_dataset_drift").set(if d.dataset_drift { 1.0 } else { 0.0 });
    for f in report.features.iter().chain(&report.prediction) {
        metrics::gauge!("streamscore_drift_score", "feature_name" => f.feature_name.clone())
            .set(f.drift_score);
    }
}

/// The properties of the `DriftDetected` event: every scalar field of the report, and the
/// drifted features by name.
pub fn drift_event_properties(report: &DriftReport) -> Vec<(&'static str, String)> {
    let d = &report.dataset;
    let drifted: Vec<&str> = report
        .features
        .iter()
        .chain(&report.prediction)
        .filter(|f| f.drift_detected)
        .map(|f| f.feature_name.as_str())
        .collect();
    let correction = serde_json::to_value(report.correction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", report.correction));
    vec![
        ("n_features", d.n_features.to_string()),
        ("n_drifted_features", d.n_drifted_features.to_string()),
        ("share_drifted_features", d.share_drifted_features.to_string()),
        ("dataset_drift", d.dataset_drift.to_string()),
        ("drift_share_threshold", report.drift_share_threshold.to_string()),
        ("correction", correction),
        ("reference_mode", report.reference_mode.clone()),
        ("n_reference_rows", report.n_reference_rows.to_string()),
        ("n_current_rows", report.n_current_rows.to_string()),
        ("drifted_features", drifted.join(",")),
    ]
}

/// Sends a drift report through an exporter (Application Insights `MetricData`/`EventData`,
/// or OTLP gauges and a log record): one value per dataset metric, one `drift_score` per
/// feature with its `feature_name` (and `feature_type`, `stattest_name`, `drift_detected`) as
/// dimensions, and the `DriftDetected` event with [`drift_event_properties`] when the dataset
/// drifted. `extra` dimensions (the model, its version) go on every item.
pub fn track_drift(
    client: &dyn ml_stream::exporter::SignalExporter,
    report: &DriftReport,
    extra: &[(&str, String)],
) {
    let base: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let d = &report.dataset;
    for (name, value) in [
        ("n_features", d.n_features as f64),
        ("n_drifted_features", d.n_drifted_features as f64),
        ("share_drifted_features", d.share_drifted_features),
        ("dataset_drift", if d.dataset_drift { 1.0 } else { 0.0 }),
    ] {
        client.metric(name, value, &base);
    }
    for f in report.features.iter().chain(&report.prediction) {
        let mut dims = base.clone();
        dims.extend([
            ("feature_name".to_string(), f.feature_name.clone()),
            ("feature_type".to_string(), f.feature_type.clone()),
            ("stattest_name".to_string(), f.stattest_name.clone()),
            ("drift_detected".to_string(), f.drift_detected.to_string()),
        ]);
        client.metric("drift_score", f.drift_score, &dims);
    }
    if d.dataset_drift {
        let mut fields = base;
        fields.extend(
            drift_event_properties(report)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        client.event("DriftDetected", &fields);
    }
}

/// [`track_drift`] through every process-wide exporter (`ml_stream::exporter::installed`);
/// nothing when none is installed.
pub fn track_drift_everywhere(report: &DriftReport, extra: &[(&str, String)]) {
    for client in ml_stream::exporter::installed() {
        track_drift(client.as_ref(), report, extra);
    }
}

#[cfg(all(test, feature = "azure"))]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use ml_core::{DataType, Field, Frame, Schema, Value};
    use ml_drift::{DriftOptions, ProfileOptions, ReferenceProfile, drift_from_profile};
    use ml_stream::appinsights::{AppInsights, AppInsightsOptions, ConnectionString};
    use serde_json::Value as Json;

    use super::*;

    /// A track endpoint on 127.0.0.1 answering 200 to every call and keeping the envelopes.
    /// Its thread ends with the test process.
    fn receiver() -> (String, Arc<Mutex<Vec<Json>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let keep = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    let mut length = 0;
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let envelopes: Vec<Json> = serde_json::from_slice(&body).unwrap();
                    keep.lock().unwrap().extend(envelopes);
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .unwrap();
                }
            }
        });
        (url, got)
    }

    /// A report where `shifted` drifted and `same` did not.
    fn report() -> DriftReport {
        let schema = Schema::new(vec![
            Field::new("shifted", DataType::Float),
            Field::new("same", DataType::Float),
        ])
        .unwrap();
        let rows = |shift: f64| {
            (0..500)
                .map(|i| {
                    vec![
                        Value::Float((i % 100) as f64 + shift),
                        Value::Float((i % 50) as f64),
                    ]
                })
                .collect::<Vec<_>>()
        };
        let train = Frame::from_rows(schema.clone(), &rows(0.0)).unwrap();
        let profile = ReferenceProfile::from_frame(&train, None, &ProfileOptions::default()).unwrap();
        let current = Frame::from_rows(schema, &rows(30.0)).unwrap();
        drift_from_profile(&profile, &current, None, &DriftOptions::default()).unwrap()
    }

    #[test]
    fn drift_results_arrive_as_metrics_and_a_drift_detected_event() {
        let report = report();
        assert_eq!(
            (
                report.dataset.n_features,
                report.dataset.n_drifted_features,
                report.dataset.dataset_drift
            ),
            (2, 1, true)
        );
        let (url, got) = receiver();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let connection = ConnectionString::parse("InstrumentationKey=drift-key").unwrap();
            let mut options = AppInsightsOptions::new(connection);
            options.endpoint = Some(url);
            let client = AppInsights::start(options).unwrap();
            track_drift(&client, &report, &[("model", "credit:3".to_string())]);
            let stats = client.shutdown(Duration::from_secs(10)).await;
            assert_eq!((stats.accepted, stats.failed), (7, 0));
        });
        let got = got.lock().unwrap();
        assert!(got.iter().all(|e| e["iKey"] == "drift-key"));
        let metric = |name: &str, feature: Option<&str>| -> &Json {
            got.iter()
                .map(|e| &e["data"]["baseData"])
                .find(|d| {
                    d["metrics"][0]["name"] == name
                        && feature.is_none_or(|f| d["properties"]["feature_name"] == f)
                })
                .unwrap_or_else(|| panic!("no metric {name} {feature:?}"))
        };
        assert_eq!(metric("n_features", None)["metrics"][0]["value"], 2.0);
        assert_eq!(metric("n_drifted_features", None)["metrics"][0]["value"], 1.0);
        assert_eq!(metric("share_drifted_features", None)["metrics"][0]["value"], 0.5);
        assert_eq!(metric("dataset_drift", None)["metrics"][0]["value"], 1.0);
        assert_eq!(metric("dataset_drift", None)["properties"]["model"], "credit:3");
        for f in &report.features {
            let m = metric("drift_score", Some(&f.feature_name));
            assert_eq!(m["metrics"][0]["value"].as_f64(), Some(f.drift_score));
            assert_eq!(m["properties"]["stattest_name"], f.stattest_name.as_str());
            assert_eq!(m["properties"]["drift_detected"], f.drift_detected.to_string());
        }
        let events: Vec<&Json> = got
            .iter()
            .filter(|e| e["data"]["baseType"] == "EventData")
            .collect();
        assert_eq!(events.len(), 1);
        let event = &events[0]["data"]["baseData"];
        assert_eq!(event["name"], "DriftDetected");
        let p = &event["properties"];
        assert_eq!(
            (
                &p["n_features"],
                &p["n_drifted_features"],
                &p["share_drifted_features"],
                &p["dataset_drift"]
            ),
            (
                &Json::from("2"),
                &Json::from("1"),
                &Json::from("0.5"),
                &Json::from("true")
            )
        );
        assert_eq!(p["drifted_features"], "shifted");
        assert_eq!(p["correction"], "none");
        assert_eq!(p["reference_mode"], report.reference_mode.as_str());
        assert_eq!(p["n_current_rows"], "500");
        assert_eq!(event["measurements"]["share_drifted_features"], 0.5);
    }
}
