//! The loop end to end on generated data: drift in the second half, an alert, one retrain off
//! the scoring path, the gate, the promotion and the hot swap of the endpoint, under HTTP load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ml_core::Estimator;
use ml_core::datasets::{CreditDefaultConfig, credit_default};
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions};
use ml_serve::{AppState, ServeConfig};
use streamscore::datagen::{LoopStreamConfig, loop_stream};
use streamscore::run::{Alert, LoopSettings, Orchestrator, http, simulate};

/// Trains credit@prod (v1, logistic regression on undrifted data) into a new registry.
pub(crate) fn registry_with_prod(dir: &std::path::Path) -> Arc<dyn ModelRegistry> {
    let data = dir.join("train.csv");
    let generated = credit_default(&CreditDefaultConfig {
        rows: 3_000,
        seed: 3,
        drift: 0.0,
    })
    .unwrap();
    generated
        .write_csv(std::fs::File::create(&data).unwrap())
        .unwrap();
    std::fs::write(
        dir.join("train.schema.json"),
        streamscore::datagen::credit_schema().unwrap().to_json(),
    )
    .unwrap();
    let request = streamscore::train::TrainRequest::new(
        &data,
        "default",
        Estimator::from_name("logistic_regression", &[]).unwrap(),
    );
    let outcome = streamscore::train::train(&request).unwrap();
    let registry = LocalRegistry::open(dir.join("registry")).unwrap();
    let artifact = outcome.artifact(&request).unwrap();
    let v = futures::executor::block_on(registry.register("credit", &artifact, &RegisterOptions::default()))
        .unwrap();
    futures::executor::block_on(registry.set_alias("credit", "prod", v.version)).unwrap();
    Arc::new(registry)
}

fn settings() -> LoopSettings {
    let mut s = LoopSettings {
        window: 1_000,
        min_labelled: 3_000,
        ..LoopSettings::default()
    };
    s.rules[0].cooldown = 10_000;
    s
}

fn stream() -> LoopStreamConfig {
    LoopStreamConfig {
        events: 20_000,
        drift_from: 10_000,
        rate_per_s: 1_000.0,
        label_delay_ms: (1_000, 5_000),
        ..LoopStreamConfig::default()
    }
}

/// Posts to /score until told to stop; counts answers by status and the versions seen.
async fn load(url: String, stop: Arc<AtomicBool>, ok: Arc<AtomicU64>, failed: Arc<AtomicU64>) -> Vec<String> {
    let client = reqwest::Client::new();
    let body = r#"{"data": [{"LIMIT_BAL": 50000, "SEX": 2, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 35, "PAY_0": 0, "PAY_2": 0, "PAY_3": 0, "PAY_4": 0, "PAY_5": 0, "PAY_6": 0, "BILL_AMT1": 1000, "BILL_AMT2": 1000, "BILL_AMT3": 1000, "BILL_AMT4": 1000, "BILL_AMT5": 1000, "BILL_AMT6": 1000, "PAY_AMT1": 100, "PAY_AMT2": 100, "PAY_AMT3": 100, "PAY_AMT4": 100, "PAY_AMT5": 100, "PAY_AMT6": 100}]}"#;
    let mut versions: Vec<String> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match client
            .post(format!("{url}/score"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                ok.fetch_add(1, Ordering::SeqCst);
                if let Some(v) = r
                    .headers()
                    .get("x-streamscore-model-version")
                    .and_then(|v| v.to_str().ok())
                    && !versions.iter().any(|s| s == v)
                {
                    versions.push(v.to_string());
                }
            }
            _ => {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    versions
}

#[test]
fn drift_alert_retrain_gate_promote_and_swap_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_prod(dir.path());
    let state = AppState::new(ServeConfig::default()).unwrap();
    let mut orchestrator = Orchestrator::start(settings(), registry.clone(), state.clone()).unwrap();
    let (events, labels) = loop_stream(&stream()).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(ml_serve::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let client = runtime.spawn(load(url, stop.clone(), ok.clone(), failed.clone()));

    // The retrain starts once 3000 labelled events from the alert's window on have arrived
    // (event time decides that, so it is the same every run) and trains while scoring goes
    // on; at event 18000 the test waits for it (`finish`), so that the swap lands at the same
    // place on a slow machine too, then streams the rest with the new model.
    let split = labels.partition_point(|l| l.time_ms <= events[18_000].time_ms);
    let mut refused = simulate(&mut orchestrator, &events[..18_000], &labels[..split], 250).unwrap();
    orchestrator.finish();
    refused += simulate(&mut orchestrator, &events[18_000..], &labels[split..], 250).unwrap();
    let counters = orchestrator.finish();
    stop.store(true, Ordering::SeqCst);
    let versions = runtime.block_on(client).unwrap();
    let _ = stop_server.send(());
    runtime.block_on(server).unwrap().unwrap();

    let timeline = orchestrator.timeline();
    let kinds: Vec<(&str, u64)> = timeline.iter().map(|e| (e.kind.as_str(), e.at_event)).collect();
    if std::env::var("LOOP_DEBUG").is_ok() {
        for e in timeline.iter().filter(|e| e.kind == "drift_report") {
            eprintln!("{} {}", e.at_event, serde_json::Value::Object(e.fields.clone()));
        }
        for e in timeline.iter().filter(|e| e.kind == "gate") {
            eprintln!("{} {}", e.at_event, serde_json::Value::Object(e.fields.clone()));
        }
    }
    // Zero lost events, zero failed requests.
    assert_eq!(
        (refused, counters.failed, counters.scored),
        (0, 0, 20_000),
        "{kinds:?}"
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) > 0);
    // Drift detected within the drifted half, not before.
    let alerts: Vec<_> = timeline.iter().filter(|e| e.kind == "alert").collect();
    assert_eq!(alerts.len(), 1, "{kinds:?}");
    assert!(
        alerts[0].at_event > 10_000 && alerts[0].at_event <= 12_000,
        "{kinds:?}"
    );
    // One retrain for the one alert; the windows still drifting before the swap were held
    // back by the cooldown.
    assert_eq!(
        (counters.alerts, counters.retrains, counters.promotions),
        (1, 1, 1),
        "{counters:?}"
    );
    assert!(counters.suppressed >= 1, "{kinds:?}");
    let gate = timeline.iter().find(|e| e.kind == "gate").unwrap();
    assert!(
        gate.number("candidate").unwrap() >= gate.number("serving").unwrap() + 0.005,
        "{gate:?}"
    );
    let swapped = timeline.iter().find(|e| e.kind == "swapped").unwrap();
    let started = timeline.iter().find(|e| e.kind == "retrain_started").unwrap();
    assert!(
        started.at_event < swapped.at_event && swapped.at_event <= 18_000,
        "scored while retraining, swapped mid-stream: {kinds:?}"
    );
    assert_eq!(
        (swapped.number("from"), swapped.number("to")),
        (Some(1.0), Some(2.0))
    );
    // The endpoint answered with both versions, and the stream after the swap is back to normal.
    assert_eq!(versions, ["credit:1", "credit:2"]);
    let after: Vec<_> = timeline
        .iter()
        .filter(|e| e.kind == "drift_report" && e.at_event > swapped.at_event)
        .collect();
    assert!(!after.is_empty(), "{kinds:?}");
    assert!(
        after
            .iter()
            .all(|e| e.number("share_drifted_features").unwrap() <= 0.25),
        "{after:?}"
    );
    // Lineage: parent, data window, reason; the alias moved.
    let v2 = futures::executor::block_on(registry.resolve(&"credit@prod".parse().unwrap())).unwrap();
    assert_eq!((v2.version, v2.parent_version), (2, Some(1)));
    assert!(
        v2.training_data
            .as_deref()
            .unwrap()
            .contains("labelled inference records")
    );
    assert!(
        v2.tags["reason"].contains("share_drifted_features"),
        "{:?}",
        v2.tags
    );
    assert_eq!(orchestrator.state().model().unwrap().version, "2");
}

#[test]
fn a_worse_model_is_registered_but_not_promoted_and_an_azure_alert_triggers_one_retrain() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_prod(dir.path());
    let state = AppState::new(ServeConfig::default()).unwrap();
    let mut s = settings();
    // One nearest neighbour: probabilities of 0 or 1 only, a much worse ranking than the
    // serving logistic regression.
    s.retrain.estimator = "k_neighbors_classifier".into();
    s.retrain.params = vec![("n_neighbors".into(), "1".into())];
    s.rules.clear();
    s.min_labelled = 500;
    let mut orchestrator = Orchestrator::start(s, registry.clone(), state.clone()).unwrap();
    let (events, labels) = loop_stream(&LoopStreamConfig {
        events: 4_000,
        drift_from: 4_000,
        ..stream()
    })
    .unwrap();

    // The /alerts route: refused without the key, one retrain with it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let route = http::AlertRoute {
        key: "s3cret".into(),
        trigger: orchestrator.trigger_handle(),
        action: "retrain".into(),
    };
    let app = http::router(state.clone(), Some(route));
    let server = runtime.spawn(async move { axum::serve(listener, app).await });
    let payload = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/azure_monitor_common_alert.json"
    ))
    .unwrap();
    let post = |key: Option<&str>| {
        let mut r = reqwest::Client::new().post(&url).body(payload.clone());
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        runtime.block_on(async { r.send().await.unwrap().status().as_u16() })
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some("wrong")), 401);

    simulate(&mut orchestrator, &events[..3_000], &labels, 250).unwrap();
    assert_eq!(orchestrator.counters().alerts, 0);
    assert_eq!(post(Some("s3cret")), 202);
    simulate(
        &mut orchestrator,
        &events[3_000..],
        &labels[labels.partition_point(|l| l.time_ms <= events[3_000].time_ms)..],
        250,
    )
    .unwrap();
    let counters = orchestrator.finish();
    server.abort();
    assert_eq!(
        (counters.alerts, counters.retrains, counters.promotions),
        (1, 1, 0),
        "{counters:?}"
    );
    let gate = orchestrator.timeline().iter().find(|e| e.kind == "gate").unwrap();
    assert!(
        gate.number("candidate").unwrap() < gate.number("serving").unwrap(),
        "{gate:?}"
    );
    let alert = orchestrator
        .timeline()
        .iter()
        .find(|e| e.kind == "alert")
        .unwrap();
    assert_eq!(alert.text("rule"), Some("azure_monitor:WCUS-R2-Gen2"));
    // Registered with the reason, the alias left on v1, the endpoint still serving v1.
    let versions = futures::executor::block_on(registry.versions("credit")).unwrap();
    assert_eq!(versions.len(), 2);
    assert!(
        versions[1].tags["gate"].starts_with("not promoted"),
        "{:?}",
        versions[1].tags
    );
    assert_eq!(versions[1].parent_version, Some(1));
    let prod = futures::executor::block_on(registry.resolve(&"credit@prod".parse().unwrap())).unwrap();
    assert_eq!(prod.version, 1);
    assert_eq!(state.model().unwrap().version, "1");
    let _ = Alert::clone;
}

/// The examples cargo built for this test run (`cargo test` builds every example) run to
/// success: each checks its own outcome and exits non-zero otherwise.
#[test]
fn the_examples_run() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_streamscore"));
    let examples = bin.parent().unwrap().join("examples");
    for name in ["loop_local", "custom_sink", "custom_source", "custom_detector"] {
        let exe = examples.join(name);
        assert!(
            exe.is_file(),
            "{} is missing: run the examples through `cargo test` (which builds them)",
            exe.display()
        );
        let out = std::process::Command::new(&exe).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
