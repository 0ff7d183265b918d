//! Deployments: the weighted traffic split and the header pin, hot swaps while the registry
//! alias moves under load, refused versions, shadow traffic, the admin route, adaptive batching.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ml_core::{
    CsvTable, Estimator, Frame, InferOptions, Model, ModelArtifact, NativeModel, OutputSpec, Predictions,
    ReadOptions, Schema,
};
use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions};
use ml_serve::deployment::{follow, load_and_swap};
use ml_serve::{AppState, BatchConfig, Deployment, PayloadLogger, ServeConfig, ServedModel};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

/// A logistic regression of y on x (y = 1 for x > 5), or on `field` when asked.
fn tiny(field: &str) -> NativeModel {
    let mut csv = format!("{field},y\n");
    for i in 0..40 {
        let x = (i % 10) as f64 + 0.5;
        csv.push_str(&format!("{x},{}\n", u8::from(x > 5.0)));
    }
    let table = CsvTable::read(csv.as_bytes(), "train.csv").expect("read");
    let data = table
        .to_frame(
            table.infer_schema(&InferOptions::default()).expect("schema"),
            &ReadOptions::default(),
        )
        .expect("frame");
    Estimator::from_name("logistic_regression", &[])
        .expect("estimator")
        .fit(&data, "y")
        .expect("fit")
}

/// The model with its probabilities reversed: another model of the same schema whose every
/// label differs from the original's (away from p = 0.5).
#[derive(Debug)]
struct Flipped(Arc<dyn Model>);

impl Model for Flipped {
    fn schema(&self) -> &Schema {
        self.0.schema()
    }
    fn output(&self) -> &OutputSpec {
        self.0.output()
    }
    fn predict(&self, frame: &Frame) -> ml_core::Result<Predictions> {
        match self.0.predict(frame)? {
            Predictions::Classification {
                labels,
                probabilities,
                ..
            } => {
                let mut p = probabilities.clone();
                p.invert_axis(ndarray_axis());
                Predictions::from_probabilities(labels, p)
            }
            other => Ok(other),
        }
    }
}

fn ndarray_axis() -> ndarray::Axis {
    ndarray::Axis(1)
}

fn served(name: &str, version: &str, model: Arc<dyn Model>) -> ServedModel {
    ServedModel::new(name, version, model).expect("served")
}

fn score_request(x: f64, pin: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut r = axum::http::Request::post("/score").header("content-type", "application/json");
    if let Some(p) = pin {
        r = r.header("azureml-model-deployment", p);
    }
    r.body(axum::body::Body::from(json!({"data": [{"x": x}]}).to_string()))
        .expect("request")
}

fn header(r: &axum::response::Response, name: &str) -> String {
    r.headers()[name].to_str().expect("ascii").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_split_lands_within_two_percent_and_the_header_pin_overrides_it() {
    let model: Arc<dyn Model> = Arc::new(tiny("x"));
    let blue = Deployment::new("blue").expect("blue");
    blue.set_model(served("credit", "3", model.clone()));
    let green = Deployment::new("green").expect("green");
    green.set_model(served("credit", "4", model));
    let state = AppState::with_deployments(
        ServeConfig::default(),
        None,
        vec![(blue, 90), (green, 10)],
        None,
        42,
    )
    .expect("state");
    let app = ml_serve::app(state);
    let (mut n_blue, mut n_green) = (0u32, 0u32);
    for i in 0..10_000 {
        let r = app
            .clone()
            .oneshot(score_request(f64::from(i % 10), None))
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
        // The answer names its deployment, and the version header matches it.
        match (
            header(&r, "azureml-model-deployment").as_str(),
            header(&r, "x-streamscore-model-version").as_str(),
        ) {
            ("blue", "credit:3") => n_blue += 1,
            ("green", "credit:4") => n_green += 1,
            other => panic!("unexpected deployment and version {other:?}"),
        }
    }
    eprintln!("blue answered {n_blue}, green {n_green} of 10000");
    // 90/10 of 10,000 within ±2 % of the total: green in 800..=1200.
    assert_eq!(n_blue + n_green, 10_000);
    assert!(
        (800..=1200).contains(&n_green),
        "green answered {n_green} of 10000"
    );
    // The pin overrides the weights, both ways.
    for _ in 0..200 {
        let r = app
            .clone()
            .oneshot(score_request(3.0, Some("green")))
            .await
            .expect("answer");
        assert_eq!(header(&r, "azureml-model-deployment"), "green");
        assert_eq!(header(&r, "x-streamscore-model-version"), "credit:4");
    }
    let r = app
        .clone()
        .oneshot(score_request(3.0, Some("purple")))
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("no deployment `purple`") && text.contains("blue, green"),
        "{text}"
    );
}

/// Registers the same model `n` times as `name` (versions 1..=n).
async fn register(registry: &LocalRegistry, name: &str, model: &NativeModel, n: u32) {
    let artifact = ModelArtifact::from_native(model).expect("artifact");
    for _ in 0..n {
        registry
            .register(name, &artifact, &RegisterOptions::default())
            .await
            .expect("register");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_swap_under_load_while_the_alias_moves_20_times_fails_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Arc::new(LocalRegistry::open(dir.path()).expect("registry"));
    register(&registry, "churn", &tiny("x"), 21).await;
    registry.set_alias("churn", "prod", 1).await.expect("alias");
    let state = AppState::with_deployments(
        ServeConfig::default(),
        None,
        vec![(Deployment::new("swapping").expect("d"), 100)],
        None,
        1,
    )
    .expect("state");
    let d = state.deployment("swapping").expect("deployment");
    load_and_swap(&d, registry.as_ref(), &"churn@prod".parse().expect("ref"))
        .await
        .expect("first load");
    let follower = follow(
        d.clone(),
        registry.clone(),
        "churn@prod".parse().expect("ref"),
        Duration::from_millis(5),
    );
    let server = TestServer::start(state.clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for k in 0..4 {
        let (url, stop) = (server.url("/score"), stop.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            let mut seen = Vec::new();
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = c
                    .post(&url)
                    .json(&json!({"data": [{"x": f64::from(i % 10)}]}))
                    .send()
                    .await;
                let t1 = Instant::now();
                let (status, version) = match r {
                    Ok(r) => (
                        r.status().as_u16(),
                        r.headers()["x-streamscore-model-version"]
                            .to_str()
                            .unwrap_or("")
                            .to_string(),
                    ),
                    Err(e) => (0, format!("transport error {e}")),
                };
                seen.push((t0, t1, status, version));
                i += 1;
            }
            seen
        }));
    }
    let mut current = d.subscribe();
    for v in 2..=21u32 {
        registry.set_alias("churn", "prod", v).await.expect("move alias");
        let want = format!("churn:{v}");
        current
            .wait_for(|c| c.as_deref() == Some(want.as_str()))
            .await
            .expect("swapped");
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for l in load {
        answers.extend(l.await.expect("load task"));
    }
    follower.abort();
    let history = d.history();
    assert_eq!(d.refused(), 0);
    // Every version 1..=21 was live, in order.
    let served_versions: Vec<&str> = history.iter().map(|l| l.version.as_str()).collect();
    let expected: Vec<String> = (1..=21).map(|v| format!("churn:{v}")).collect();
    assert_eq!(served_versions, expected);
    assert!(
        answers.len() > 40,
        "the load generator sent {} requests",
        answers.len()
    );
    let mut distinct = std::collections::BTreeSet::new();
    for (t0, t1, status, version) in &answers {
        assert_eq!(*status, 200, "a request failed during the swaps: {version}");
        // The version answering was live at some moment between the request's send and answer:
        // it became live before the answer, and was not replaced before the request was sent.
        let i = history
            .iter()
            .rposition(|l| &l.version == version && l.since <= *t1)
            .unwrap_or_else(|| panic!("{version} was never live before the answer"));
        if let Some(next) = history.get(i + 1) {
            assert!(
                next.since >= *t0,
                "{version} had been replaced before the request was sent"
            );
        }
        distinct.insert(version.clone());
    }
    assert!(distinct.len() > 2, "the load saw only {distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_incompatible_version_is_refused_and_the_old_one_keeps_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = LocalRegistry::open(dir.path()).expect("registry");
    let good = tiny("x");
    register(&registry, "scorer", &good, 2).await;
    register(&registry, "scorer", &tiny("z"), 1).await; // v3 reads `z`, not `x`
    // Version 2's files are damaged after registration: its checksums no longer match.
    corrupt(&dir.path().join("scorer").join("versions").join("2"));
    registry.set_alias("scorer", "prod", 1).await.expect("alias");
    let state = AppState::with_deployments(
        ServeConfig::default(),
        None,
        vec![(Deployment::new("refusing").expect("d"), 100)],
        None,
        1,
    )
    .expect("state");
    let d = state.deployment("refusing").expect("deployment");
    let prod = "scorer@prod".parse().expect("ref");
    load_and_swap(&d, &registry, &prod).await.expect("v1 loads");
    let server = TestServer::start(state).await;
    let c = client();
    for (version, why) in [(2, "cannot load"), (3, "needs field `z`")] {
        registry
            .set_alias("scorer", "prod", version)
            .await
            .expect("alias");
        let e = load_and_swap(&d, &registry, &prod).await.expect_err("refused");
        assert!(e.to_string().contains(why), "{e}");
        assert!(e.to_string().contains(&format!("scorer:{version}")), "{e}");
        let r = c
            .post(server.url("/score"))
            .json(&json!({"data": [{"x": 8.0}, {"x": 1.0}]}))
            .send()
            .await
            .expect("score");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-streamscore-model-version"], "scorer:1");
        let p: Vec<f64> = r.json().await.expect("json");
        assert!(p[0] > 0.5 && p[1] < 0.5, "{p:?}");
    }
    assert_eq!(d.refused(), 2);
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("streamscore_serve_swap_refused_total{deployment=\"refusing\"} 2"),
        "{metrics}"
    );
}

/// Appends a byte to every file of `dir` (recursively) except the version metadata.
fn corrupt(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            corrupt(&path);
        } else if path.file_name().is_some_and(|n| n != "version.json") {
            let mut bytes = std::fs::read(&path).expect("read");
            bytes.push(b'\n');
            std::fs::write(&path, bytes).expect("write");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_answers_go_to_its_own_collection_and_never_to_clients() {
    let logs = tempfile::tempdir().expect("tempdir");
    let champion: Arc<dyn Model> = Arc::new(tiny("x"));
    let challenger: Arc<dyn Model> = Arc::new(Flipped(champion.clone()));
    let sink = ml_stream::sink::JsonlSink::new({
        let mut o = ml_stream::sink::JsonlSinkOptions::new(logs.path());
        o.deployment = "shadow-green".into();
        o
    })
    .expect("sink");
    let logger =
        PayloadLogger::start(vec![Box::new(sink)], 64, 1.0, Duration::from_secs(60)).expect("logger");
    let blue = Deployment::new("live-blue").expect("blue");
    blue.set_model(served("champion", "1", champion.clone()));
    let green = Deployment::new("shadow-green")
        .expect("green")
        .with_payload_logger(logger);
    green.set_model(served("challenger", "2", challenger.clone()));
    let state = AppState::with_deployments(
        ServeConfig::default(),
        None,
        vec![(blue, 100), (green, 0)],
        Some("shadow-green"),
        1,
    )
    .expect("state");
    let server = TestServer::start(state.clone()).await;
    let c = client();
    let xs: Vec<f64> = (0..20).map(|i| f64::from(i % 10) + 0.25).collect();
    for x in &xs {
        let r = c
            .post(server.url("/score"))
            .json(&json!({"data": [{"x": x}]}))
            .send()
            .await
            .expect("score");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["azureml-model-deployment"], "live-blue");
        assert_eq!(r.headers()["x-streamscore-model-version"], "champion:1");
        let got: Vec<f64> = r.json().await.expect("json");
        let want = local(champion.as_ref(), &format!("x\n{x}\n"));
        assert_eq!(
            got[0],
            want.positive_probabilities().expect("binary")[0],
            "x = {x}"
        );
    }
    state.shadow_settled().await;
    let green = state.deployment("shadow-green").expect("green");
    // Every label of the flipped model differs from the champion's: agreement 0 of 20.
    assert_eq!(green.shadow_counts(), (20, 0));
    green.payload_logger().expect("logger").close().await;
    // The shadow's collection holds its 20 answers, in its deployment-named path.
    let mut outputs = Vec::new();
    collect_lines(
        &logs
            .path()
            .join("local")
            .join("shadow-green")
            .join("model_outputs"),
        &mut outputs,
    );
    let rows: usize = outputs
        .iter()
        .map(|l| l["data"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(rows, 20);
    assert!(outputs.iter().all(|l| l["modelversion"] == "challenger:2"));
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("streamscore_serve_shadow_rows_total{deployment=\"shadow-green\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("streamscore_serve_shadow_agreement_ratio{deployment=\"shadow-green\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("streamscore_serve_shadow_duration_seconds_count{deployment=\"shadow-green\"} 20"),
        "{metrics}"
    );
}

fn collect_lines(dir: &Path, out: &mut Vec<Value>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let path = e.expect("entry").path();
        if path.is_dir() {
            collect_lines(&path, out);
        } else if path.extension().is_some_and(|x| x == "jsonl") {
            for line in std::fs::read_to_string(&path).expect("read").lines() {
                out.push(serde_json::from_str(line).expect("json line"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_route_changes_the_weights_and_needs_a_key() {
    let model: Arc<dyn Model> = Arc::new(tiny("x"));
    let make = |name: &str, version: &str| {
        let d = Deployment::new(name).expect("deployment");
        d.set_model(served("m", version, model.clone()));
        d
    };
    let config = ServeConfig {
        keys: vec!["admin-key".into()],
        ..ServeConfig::default()
    };
    let state = AppState::with_deployments(
        config,
        None,
        vec![(make("adm-a", "1"), 100), (make("adm-b", "2"), 0)],
        None,
        3,
    )
    .expect("state");
    let server = TestServer::start(state.clone()).await;
    let c = client();
    let url = server.url("/admin/traffic");
    let r = c
        .put(&url)
        .json(&json!({"adm-a": 0, "adm-b": 100}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 401);
    let r = c.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(state.traffic(), vec![100, 0]);
    let r = c
        .put(&url)
        .bearer_auth("admin-key")
        .json(&json!({"adm-a": 30, "adm-b": 30}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("sum to 100"));
    let r = c
        .put(&url)
        .bearer_auth("admin-key")
        .json(&json!({"adm-b": 100}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["traffic"], json!({"adm-a": 0, "adm-b": 100}));
    for _ in 0..50 {
        let r = c
            .post(server.url("/score"))
            .bearer_auth("admin-key")
            .json(&json!({"data": [{"x": 2}]}))
            .send()
            .await
            .expect("score");
        assert_eq!(r.headers()["azureml-model-deployment"], "adm-b");
    }
    // Without keys the admin routes are off.
    let open = TestServer::with_model(ServeConfig::default(), "m", model.clone()).await;
    let r = c.get(open.url("/admin/traffic")).send().await.expect("get");
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adaptive_batching_coalesces_concurrent_rows_and_answers_each_its_own() {
    let model = credit_forest();
    let csv = credit_csv(64, 5);
    let rows = records(&csv);
    let want = local(model.as_ref(), &csv);
    let want = want.positive_probabilities().expect("binary").to_vec();
    let config = ServeConfig {
        batching: Some(BatchConfig {
            max_batch: 16,
            max_wait: Duration::from_millis(5),
            workers: 1,
        }),
        ..ServeConfig::default()
    };
    // The model holds its first call until all 64 requests are in the server, so the rows
    // queue behind it whatever the machine's speed: coalescing them is then the batcher's
    // doing, not the luck of their arrival times.
    let gated = Gated::wrap(model);
    let server = TestServer::with_model(config, "credit", gated.clone()).await;
    gated.set_open(false);
    let loaded_calls = gated.entered.load(Ordering::SeqCst);
    let c = client();
    let mut tasks = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let (c, url) = (c.clone(), server.url("/score"));
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .json(&json!({"data": [row]}))
                .send()
                .await
                .expect("score");
            assert_eq!(r.status(), 200);
            let p: Vec<f64> = r.json().await.expect("json");
            (i, p[0])
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while gated.entered.load(Ordering::SeqCst) == loaded_calls || server.state.scoring_in_flight() < 64 {
        assert!(
            Instant::now() < deadline,
            "the 64 requests did not reach the server: {} in flight",
            server.state.scoring_in_flight()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gated.set_open(true);
    for t in tasks {
        let (i, p) = t.await.expect("task");
        assert_eq!(p, want[i], "row {i}: the batched answer equals the model's own");
    }
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(value("streamscore_serve_batch_rows_sum"), 64.0);
    let calls = value("streamscore_serve_batch_rows_count");
    // Batches of at most `max_batch` (16): at least 4 calls; the queued rows coalesced.
    assert!(
        (4.0..64.0).contains(&calls),
        "64 concurrent rows took {calls} model calls"
    );
}
