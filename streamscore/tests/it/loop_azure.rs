//! `examples/azure_loop.toml` run as written (`--env emulators`: the prod services on local
//! stand-ins): events from Event Hubs (a connection string naming the Kafka test broker), the
//! served model and the inference log in Blob Storage (Azurite), drift metrics and loop events
//! to Application Insights (a recording receiver on 127.0.0.1).
#![cfg(all(feature = "azure", feature = "kafka"))]

#[path = "../../../test-support/azurite.rs"]
mod azurite;

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;

use crate::common::p;
use crate::kafka_cli::Broker;

const IKEY: &str = "11111111-2222-3333-4444-555555555555";

/// Every envelope posted to `/v2.1/track`.
type Envelopes = Arc<Mutex<Vec<Value>>>;

async fn track(State(seen): State<Envelopes>, body: Bytes) -> String {
    let envelopes: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array of envelopes");
    let n = envelopes.len();
    seen.lock().unwrap().extend(envelopes);
    format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#)
}

fn metric_names(envelopes: &[Value]) -> Vec<String> {
    envelopes
        .iter()
        .filter(|e| e["data"]["baseType"] == "MetricData")
        .map(|e| {
            e["data"]["baseData"]["metrics"][0]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn event_names(envelopes: &[Value]) -> Vec<String> {
    envelopes
        .iter()
        .filter(|e| e["data"]["baseType"] == "EventData")
        .map(|e| {
            e["data"]["baseData"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn the_azure_loop_example_runs_on_event_hubs_blob_and_application_insights_emulators() {
    let azurite = azurite::Azurite::start();
    let storage = azurite.connection_string();
    let broker = Broker::start(&["credit-events:1"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = Envelopes::default();
    let receiver = runtime.block_on(async {
        let app = Router::new()
            .route("/v2.1/track", post(track))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });

    // credit:1 trained here, copied into the Blob registry and promoted to @prod there.
    let dir = tempfile::tempdir().unwrap();
    crate::loop_e2e::registry_with_prod(dir.path());
    let streamscore = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_streamscore"))
            .args(args)
            .current_dir(dir.path())
            .env("AZURE_STORAGE_CONNECTION_STRING", &storage)
            .env(
                "EVENTHUBS_CONNECTION_STRING",
                format!(
                    "Endpoint=sb://{}/;SharedAccessKeyName=listen;SharedAccessKey=a2V5;EntityPath=credit-events",
                    broker.bootstrap
                ),
            )
            .env(
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                format!("InstrumentationKey={IKEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"),
            )
            .env("STREAMSCORE_APPINSIGHTS_ENDPOINT", &receiver)
            .env("STREAMSCORE_SCORE_KEY", "score-key")
            .env("STREAMSCORE_ALERT_KEY", "alert-key")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{args:?}:\n{stdout}\n{stderr}");
        stdout
    };
    let local = dir.path().join("registry");
    streamscore(&[
        "promote",
        "credit:1",
        "--from",
        p(&local),
        "--to",
        "blob://models/credit",
        "--alias",
        "prod",
    ]);

    // The inference-log container, as a deployment creates it beforehand.
    let sas = ml_registry::azure::sas_account_url(&storage).unwrap();
    let logs = ml_stream::azure_blob::BlobStore::new(&sas, "inference-logs", "credit").unwrap();
    runtime.block_on(logs.create_container_if_missing()).unwrap();

    // 3000 events to the event hub, drifted from the middle; the labels in the file the config
    // names (relative to the working directory).
    let (events, labels) = crate::loop_sources::stream_lines(3_000, 1_500);
    crate::loop_sources::produce(&broker.bootstrap, "credit-events", &events);
    std::fs::write(dir.path().join("labels.jsonl"), labels.join("\n")).unwrap();

    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/azure_loop.toml");
    let out = streamscore(&[
        "run",
        "--config",
        p(&config),
        "--env",
        "emulators",
        "--max-events",
        "3000",
        "--idle-ms",
        "10000",
    ]);
    assert!(
        out.contains("scored 3000 events (0 refused), 3000 labels joined, 3 drift reports"),
        "{out}"
    );

    // The inference log in Blob Storage: every scored event's outputs once.
    let outputs = runtime.block_on(async {
        let store = &logs;
        let mut lines = 0;
        for (name, _) in store.list("").await.unwrap() {
            if name.contains("model_outputs") {
                let bytes = store.download(&name).await.unwrap();
                // Data-collection lines; each one's `data` holds its rows.
                lines += String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["data"]
                            .as_array()
                            .unwrap()
                            .len()
                    })
                    .sum::<usize>();
            }
        }
        lines
    });
    assert_eq!(outputs, 3_000);

    // Application Insights: per drift window the dataset metrics and each feature's score; one
    // AlertFired per alert the loop logged.
    let envelopes = seen.lock().unwrap().clone();
    assert!(envelopes.iter().all(|e| e["iKey"] == IKEY));
    let metrics = metric_names(&envelopes);
    let count = |name: &str| metrics.iter().filter(|m| *m == name).count();
    assert_eq!(count("share_drifted_features"), 3, "{metrics:?}");
    // 23 features (and the prediction) in each of the 3 windows.
    assert!(count("drift_score") >= 3 * 23, "{metrics:?}");
    let loop_events = std::fs::read_to_string(dir.path().join("monitor/loop-events.jsonl")).unwrap();
    let alerts = loop_events
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["kind"] == "alert")
        .count();
    let events = event_names(&envelopes);
    assert_eq!(
        events.iter().filter(|e| *e == "AlertFired").count(),
        alerts,
        "{events:?}"
    );
    drop(broker);
}
