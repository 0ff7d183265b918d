//! The HTTP contracts over a real socket with a real HTTP client: every body shape of the
//! Azure ML, Open Inference Protocol v2 and MLflow routes, the headers, and every error status
//! of DESIGN §Conventions with its message.

use crate::support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use ml_serve::{AppState, ServeConfig, ServedModel};
use serde_json::{Value, json};
use support::*;

fn positive(p: &ml_core::Predictions) -> Vec<f64> {
    p.positive_probabilities().expect("binary").to_vec()
}

async fn post_json(c: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    c.post(url).json(body).send().await.expect("send")
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_accepts_every_azure_body_shape_and_answers_one_value_per_row() {
    let model = credit_forest();
    let csv = credit_csv(25, 99);
    let want = positive(&local(model.as_ref(), &csv));
    let rows = records(&csv);
    let server = TestServer::with_model(ServeConfig::default(), "credit", model.clone()).await;
    let c = client();
    let names: Vec<&str> = model.schema().names().collect();
    let arrays: Vec<Value> = rows
        .iter()
        .map(|r| Value::Array(names.iter().map(|n| r[*n].clone()).collect()))
        .collect();
    // pandas split with the columns in another order than the schema's, and an index.
    let mut shuffled: Vec<&str> = names.clone();
    shuffled.reverse();
    let split_data: Vec<Value> = rows
        .iter()
        .map(|r| Value::Array(shuffled.iter().map(|n| r[*n].clone()).collect()))
        .collect();
    let columnar: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                Value::Array(rows.iter().map(|r| r[*n].clone()).collect()),
            )
        })
        .collect();
    let bodies = [
        ("data records (Stream Analytics)", json!({"data": rows})),
        ("data arrays in schema order", json!({"data": arrays})),
        (
            "input_data split",
            json!({"input_data": {"columns": shuffled, "index": (0..rows.len()).collect::<Vec<_>>(), "data": split_data}}),
        ),
        ("input_data list of lists", json!({"input_data": arrays})),
        ("input_data named tensors", json!({"input_data": columnar})),
        (
            "Inputs named input",
            json!({"Inputs": {"data": rows}, "GlobalParameters": {}}),
        ),
    ];
    for (what, body) in bodies {
        let r = post_json(&c, &server.url("/score"), &body).await;
        assert_eq!(r.status(), 200, "{what}");
        assert_eq!(r.headers()["x-streamscore-model-version"], "credit:3", "{what}");
        let got: Vec<f64> = r.json().await.expect(what);
        assert_eq!(got, want, "{what}: equal to the local model, bit for bit");
    }
    // An empty batch is answered with an empty array.
    let r = post_json(&c, &server.url("/score"), &json!({"data": []})).await;
    assert_eq!(json_of(r).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_answers_values_for_regression_and_objects_for_multiclass() {
    let reg = regression();
    let server = TestServer::with_model(ServeConfig::default(), "reg", reg.clone()).await;
    let csv = "a,b,c\n1.5,2,red\n10,-3,blue\n";
    let want = local(reg.as_ref(), csv).values().expect("values").to_vec();
    let r = post_json(
        &client(),
        &server.url("/score"),
        &json!({"data": [{"a": 1.5, "b": 2, "c": "red"}, {"a": 10, "b": -3, "c": "blue"}]}),
    )
    .await;
    let got: Vec<f64> = r.json().await.expect("numbers");
    assert_eq!(got, want);
    // The regression is exact on its training rule: y = 2a − b + 1.5·[c = red].
    assert!((got[0] - (3.0 - 2.0 + 1.5)).abs() < 1e-6, "{got:?}");

    let mc = multiclass();
    let server = TestServer::with_model(ServeConfig::default(), "mc", mc.clone()).await;
    let p = local(mc.as_ref(), "x,z\n3,1\n25,0\n");
    let r = post_json(
        &client(),
        &server.url("/score"),
        &json!({"data": [[3, 1], [25, 0]]}),
    )
    .await;
    let got = json_of(r).await;
    assert_eq!(got[0]["label"], p.label(0).expect("label"));
    assert_eq!(got[1]["label"], "hi");
    let labels = mc.output().labels().to_vec();
    for (k, l) in labels.iter().enumerate() {
        assert_eq!(
            got[1]["probabilities"][l].as_f64(),
            Some(p.probabilities().expect("probs")[[1, k]])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_request_headers() {
    let state = AppState::new(ServeConfig::default()).expect("state");
    let server = TestServer::start(state.clone()).await;
    let c = client();
    // Before the model is loaded: live, not ready, scoring answers 503.
    assert_eq!(
        c.get(server.url("/v2/health/live"))
            .send()
            .await
            .expect("live")
            .status(),
        200
    );
    let r = c.get(server.url("/v2/health/ready")).send().await.expect("ready");
    assert_eq!(r.status(), 503);
    assert_eq!(json_of(r).await, json!({"ready": false}));
    assert_eq!(c.get(server.url("/")).send().await.expect("/").status(), 503);
    assert_eq!(
        c.get(server.url("/ping")).send().await.expect("ping").status(),
        503
    );
    let r = post_json(&c, &server.url("/score"), &json!({"data": [{}]})).await;
    assert_eq!(r.status(), 503);
    assert!(
        json_of(r).await["message"]
            .as_str()
            .expect("message")
            .contains("loading")
    );

    state.set_model(ServedModel::new("credit", "7", credit_forest()).expect("served"));
    let r = c.get(server.url("/")).send().await.expect("/");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "Healthy");
    assert_eq!(
        json_of(c.get(server.url("/v2/health/ready")).send().await.expect("ready")).await,
        json!({"ready": true})
    );
    assert_eq!(
        c.get(server.url("/ping")).send().await.expect("ping").status(),
        200
    );
    assert_eq!(
        c.get(server.url("/health"))
            .send()
            .await
            .expect("health")
            .status(),
        200
    );
    assert_eq!(
        c.get(server.url("/version"))
            .send()
            .await
            .expect("version")
            .text()
            .await
            .expect("t"),
        env!("CARGO_PKG_VERSION")
    );

    let rows = records(&credit_csv(1, 3));
    // x-request-id echoed; x-ms-client-request-id echoed; exec time given.
    let r = c
        .post(server.url("/score"))
        .header("x-request-id", "req-42")
        .header("x-ms-client-request-id", "client-7")
        .json(&json!({"data": rows}))
        .send()
        .await
        .expect("score");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-42");
    assert_eq!(r.headers()["x-ms-client-request-id"], "client-7");
    assert_eq!(r.headers()["x-streamscore-model-version"], "credit:7");
    let ms: f64 = r.headers()["x-ms-run-fn-exec-ms"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number of ms");
    assert!(ms >= 0.0);
    // Without one, a fresh UUID per request.
    let a = post_json(&c, &server.url("/score"), &json!({"data": rows})).await;
    let b = post_json(&c, &server.url("/score"), &json!({"data": rows})).await;
    let (ida, idb) = (
        a.headers()["x-request-id"].clone(),
        b.headers()["x-request-id"].clone(),
    );
    assert_ne!(ida, idb);
    assert_eq!(ida.to_str().expect("ascii").len(), 36);
    // 100 characters pass, 101 get 431.
    let ok = c
        .post(server.url("/score"))
        .header("x-request-id", "r".repeat(100))
        .json(&json!({"data": rows}))
        .send()
        .await
        .expect("s");
    assert_eq!(ok.status(), 200);
    let r = c
        .post(server.url("/score"))
        .header("x-request-id", "r".repeat(101))
        .json(&json!({"data": rows}))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 431);
    assert_eq!(
        json_of(r).await["message"],
        "x-request-id is 101 characters long; the limit is 100"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_naming_the_problem() {
    let model = credit_forest();
    let server = TestServer::with_model(ServeConfig::default(), "credit", model).await;
    let c = client();
    let mut row = records(&credit_csv(1, 3)).remove(0);
    // The inference server's own wording for a body without `data`.
    let r = post_json(&c, &server.url("/score"), &json!({"rows": [row]})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        json_of(r).await,
        json!({"message": "A value is not provided for the 'data' parameter."})
    );
    // Malformed JSON.
    let r = c
        .post(server.url("/score"))
        .header("content-type", "application/json")
        .body("{\"data\": [")
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 400);
    assert!(
        json_of(r).await["message"]
            .as_str()
            .expect("m")
            .contains("not valid JSON")
    );
    // A mistyped field is named, with its row.
    row["LIMIT_BAL"] = json!("lots");
    let r = post_json(&c, &server.url("/score"), &json!({"data": [row.clone()]})).await;
    assert_eq!(r.status(), 400);
    let m = json_of(r).await["message"].as_str().expect("m").to_string();
    assert!(m.contains("LIMIT_BAL") && m.contains("lots"), "{m}");
    // A missing field is named.
    row.as_object_mut().expect("obj").remove("AGE");
    row["LIMIT_BAL"] = json!(5000);
    let r = post_json(&c, &server.url("/score"), &json!({"data": [row]})).await;
    assert_eq!(r.status(), 400);
    let m = json_of(r).await["message"].as_str().expect("m").to_string();
    assert!(m.contains("AGE"), "{m}");
    // An unseen category is named.
    let mut row = records(&credit_csv(1, 3)).remove(0);
    row["EDUCATION"] = json!(42);
    let r = post_json(&c, &server.url("/score"), &json!({"data": [row]})).await;
    assert_eq!(r.status(), 400);
    assert!(
        json_of(r).await["message"]
            .as_str()
            .expect("m")
            .contains("EDUCATION")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_on_scoring_routes_only() {
    let config = ServeConfig {
        keys: vec!["primary-key".into(), "secondary-key".into()],
        ..Default::default()
    };
    let server = TestServer::with_model(config, "credit", credit_forest()).await;
    let c = client();
    let body = json!({"data": records(&credit_csv(2, 3))});
    let r = post_json(&c, &server.url("/score"), &body).await;
    assert_eq!(r.status(), 401);
    assert!(
        json_of(r).await["message"]
            .as_str()
            .expect("m")
            .contains("Authorization: Bearer")
    );
    let r = c
        .post(server.url("/score"))
        .bearer_auth("primary-kex")
        .json(&body)
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 401);
    for key in ["primary-key", "secondary-key"] {
        let r = c
            .post(server.url("/score"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("s");
        assert_eq!(r.status(), 200, "{key}");
    }
    // Other protocols: their own error shapes.
    let r = c
        .post(server.url("/v2/models/credit/infer"))
        .json(&json!({"inputs": []}))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 401);
    assert!(json_of(r).await["error"].is_string());
    let r = c
        .post(server.url("/invocations"))
        .json(&json!({"instances": []}))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error_code"], "UNAUTHENTICATED");
    // Health, readiness, metrics and the swagger are open.
    for path in [
        "/",
        "/v2/health/live",
        "/v2/health/ready",
        "/ping",
        "/health",
        "/metrics",
        "/swagger.json",
    ] {
        assert_eq!(
            c.get(server.url(path)).send().await.expect("get").status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_404_413_415_and_500() {
    let config = ServeConfig {
        max_body_bytes: 2000,
        ..Default::default()
    };
    let model = credit_forest();
    let server = TestServer::with_model(config, "credit", model.clone()).await;
    let c = client();
    let r = c.get(server.url("/nope")).send().await.expect("s");
    assert_eq!(r.status(), 404);
    assert!(json_of(r).await["message"].as_str().expect("m").contains("/nope"));
    let r = c.get(server.url("/v2/models/other")).send().await.expect("s");
    assert_eq!(r.status(), 404);
    assert_eq!(
        json_of(r).await["error"],
        "Model 'other' is not found; this server serves 'credit'"
    );
    let r = c
        .get(server.url("/v2/models/credit/versions/9"))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 404);
    // 413: declared length over the limit, and a chunked body that grows over it.
    let big = json!({"data": records(&credit_csv(40, 3))});
    let r = post_json(&c, &server.url("/score"), &big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        json_of(r).await["message"],
        "the request body is larger than the limit of 2000 bytes; send fewer rows per request"
    );
    let bytes = serde_json::to_vec(&big).expect("json");
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(500).map(|c| Ok(c.to_vec())).collect();
    let stream = futures::stream::iter(parts);
    let r = c
        .post(server.url("/score"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 413);
    // 415
    let r = c
        .post(server.url("/score"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 415);
    assert!(
        json_of(r).await["message"]
            .as_str()
            .expect("m")
            .contains("application/json")
    );
    let r = c
        .post(server.url("/invocations"))
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 415);
    assert_eq!(json_of(r).await["error_code"], "BAD_REQUEST");
    // 500: a generic message; the detail stays in the log.
    let broken = TestServer::with_model(ServeConfig::default(), "credit", Arc::new(Broken(model))).await;
    let r = post_json(
        &c,
        &broken.url("/score"),
        &json!({"data": records(&credit_csv(1, 3))}),
    )
    .await;
    assert_eq!(r.status(), 500);
    let m = json_of(r).await["message"].as_str().expect("m").to_string();
    assert!(!m.contains("secret"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeouts_answer_503_and_408_and_the_concurrency_limit_429() {
    let config = ServeConfig {
        request_timeout: Duration::from_millis(100),
        body_timeout: Duration::from_millis(300),
        max_concurrent_requests: 1,
        retry_after_s: 2,
        ..Default::default()
    };
    let (slow, _) = Slow::wrap(credit_forest(), Duration::from_secs(2));
    let server = TestServer::with_model(config, "credit", slow).await;
    let c = client();
    let body = json!({"data": records(&credit_csv(1, 3))});
    // Scoring timeout: 503 with the inference server's message, retryable.
    let r = post_json(&c, &server.url("/score"), &body).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        json_of(r).await,
        json!({"message": "Scoring timeout after 100 ms"})
    );
    // A big batch goes to the blocking pool: the timeout answers while it runs.
    let big = json!({"data": records(&credit_csv(100, 3))});
    let started = std::time::Instant::now();
    let r = post_json(&c, &server.url("/score"), &big).await;
    assert_eq!(r.status(), 503);
    // The model takes 2 s; the answer comes after the 100 ms timeout, long before that (the
    // margin allows for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered before the model finished"
    );

    // 429: one request holds the only permit; the next is refused with Retry-After. A server
    // with a long timeout, and a batch big enough for the blocking pool, so the permit is held
    // for the whole (slow) scoring while the runtime stays free to answer the second request.
    let (slow2, entered2) = Slow::wrap(credit_forest(), Duration::from_secs(3));
    let config2 = ServeConfig {
        request_timeout: Duration::from_secs(30),
        max_concurrent_requests: 1,
        retry_after_s: 2,
        ..Default::default()
    };
    let server2 = TestServer::with_model(config2, "credit", slow2).await;
    // Loading scores a sample row (the swagger example): count calls from here.
    let base = entered2.load(std::sync::atomic::Ordering::SeqCst);
    let c2 = c.clone();
    let url = server2.url("/score");
    let big2 = big.clone();
    let first = tokio::spawn(async move { c2.post(url).json(&big2).send().await.expect("s").status() });
    // Wait until the first request is being scored (it holds the permit).
    wait_for(&entered2, base + 1).await;
    let r = post_json(&c, &server2.url("/score"), &body).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(json_of(r).await["message"].as_str().expect("m").contains("limit"));
    assert_eq!(first.await.expect("join"), 200);

    // 408: the client sends its headers and part of the body, then stalls.
    let addr = server.addr;
    let status = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(s, "POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"data\"").expect("write");
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .expect("join");
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(status.contains("did not arrive within 300 ms"), "{status}");
}

/// Polls until the model was entered `n` times (a condition, not a fixed sleep).
async fn wait_for(entered: &std::sync::atomic::AtomicUsize, n: usize) {
    for _ in 0..2000 {
        if entered.load(std::sync::atomic::Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the model was never entered {n} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_documents_describe_the_schema_with_the_models_own_sample_answer() {
    let model = credit_forest();
    let server = TestServer::with_model(ServeConfig::default(), "credit", model.clone()).await;
    let c = client();
    let v2 = json_of(c.get(server.url("/swagger.json")).send().await.expect("s")).await;
    assert_eq!(v2["swagger"], "2.0");
    assert_eq!(v2["paths"]["/score"]["post"]["operationId"], "RunMLService");
    assert_eq!(
        v2["paths"]["/score"]["post"]["parameters"][0]["name"],
        "serviceInputPayload"
    );
    assert_eq!(v2["securityDefinitions"]["Bearer"]["in"], "header");
    let input = &v2["definitions"]["ServiceInput"];
    assert_eq!(
        input["properties"]["data"]["items"]["properties"]["AGE"]["type"],
        "integer"
    );
    assert_eq!(
        input["properties"]["data"]["items"]["properties"]["SEX"]["type"],
        "string"
    );
    assert_eq!(
        v2["definitions"]["ErrorResponse"]["properties"]["message"]["type"],
        "string"
    );
    // The sample output is the model's answer to the sample input.
    let example = input["example"].clone();
    let answer = json_of(post_json(&c, &server.url("/score"), &example).await).await;
    assert_eq!(v2["definitions"]["ServiceOutput"]["example"], answer);
    let v3 = json_of(
        c.get(server.url("/swagger.json?version=3"))
            .send()
            .await
            .expect("s"),
    )
    .await;
    assert_eq!(v3["openapi"], "3.0.1");
    assert_eq!(v3["components"]["schemas"]["ServiceOutput"]["example"], answer);
    let v31 = json_of(
        c.get(server.url("/swagger.json?version=3.1"))
            .send()
            .await
            .expect("s"),
    )
    .await;
    assert_eq!(v31["openapi"], "3.1.0");
    assert_eq!(
        c.get(server.url("/swagger.json?version=4"))
            .send()
            .await
            .expect("s")
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_inference_protocol_v2() {
    let model = credit_forest();
    let csv = credit_csv(6, 11);
    let p = local(model.as_ref(), &csv);
    let rows = records(&csv);
    let server = TestServer::with_model(ServeConfig::default(), "credit", model.clone()).await;
    let c = client();
    assert_eq!(
        json_of(c.get(server.url("/v2")).send().await.expect("s")).await["name"],
        "streamscore"
    );
    let meta = json_of(c.get(server.url("/v2/models/credit")).send().await.expect("s")).await;
    assert_eq!(meta["versions"], json!(["3"]));
    assert_eq!(
        meta["inputs"].as_array().expect("inputs").len(),
        model.schema().len()
    );
    assert_eq!(
        meta["outputs"][1],
        json!({"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]})
    );
    let same = json_of(
        c.get(server.url("/v2/models/credit/versions/3"))
            .send()
            .await
            .expect("s"),
    )
    .await;
    assert_eq!(same, meta);
    assert_eq!(
        json_of(
            c.get(server.url("/v2/models/credit/ready"))
                .send()
                .await
                .expect("s")
        )
        .await,
        json!({"name": "credit", "ready": true})
    );

    // One input per column, each in its own datatype; categoricals as BYTES.
    let inputs: Vec<Value> = model
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let (dt, data): (&str, Vec<Value>) = match f.dtype.name() {
                "categorical" => (
                    "BYTES",
                    rows.iter().map(|r| json!(r[&f.name].to_string())).collect(),
                ),
                _ if f.name == "AGE" => ("INT32", rows.iter().map(|r| r[&f.name].clone()).collect()),
                _ if f.name == "LIMIT_BAL" => {
                    ("FP32", rows.iter().map(|r| json!(r[&f.name].as_f64())).collect())
                }
                _ => ("INT64", rows.iter().map(|r| r[&f.name].clone()).collect()),
            };
            json!({"name": f.name, "datatype": dt, "shape": [rows.len(), 1], "data": data})
        })
        .collect();
    let r = post_json(
        &c,
        &server.url("/v2/models/credit/infer"),
        &json!({"id": "r1", "inputs": inputs}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let out = json_of(r).await;
    assert_eq!(out["id"], "r1");
    assert_eq!(out["model_name"], "credit");
    assert_eq!(out["model_version"], "3");
    let probs: Vec<f64> = serde_json::from_value(out["outputs"][1]["data"].clone()).expect("probs");
    assert_eq!(out["outputs"][1]["shape"], json!([6, 2]));
    assert_eq!(
        probs,
        p.probabilities().expect("p").iter().copied().collect::<Vec<_>>()
    );
    let labels: Vec<String> = serde_json::from_value(out["outputs"][0]["data"].clone()).expect("labels");
    assert_eq!(
        labels,
        (0..6)
            .map(|r| p.label(r).expect("l").to_string())
            .collect::<Vec<_>>()
    );

    // One tensor [N, F] in schema order, nested, versioned route, one output asked for.
    let names: Vec<&str> = model.schema().names().collect();
    let matrix: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| names.iter().map(|n| r[*n].as_f64().expect("numeric")).collect())
        .collect();
    let body = json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [6, names.len()], "data": matrix}], "outputs": [{"name": "label"}]});
    let out = json_of(post_json(&c, &server.url("/v2/models/credit/versions/3/infer"), &body).await).await;
    assert_eq!(out["outputs"].as_array().expect("outputs").len(), 1);
    let labels2: Vec<String> = serde_json::from_value(out["outputs"][0]["data"].clone()).expect("labels");
    assert_eq!(labels2, labels);

    // Errors are {"error": ..}.
    let bad = [
        (
            json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0]}]}),
            "has 1 values but its shape [2] needs 2",
        ),
        (
            json!({"inputs": [{"name": "x", "datatype": "FP128", "shape": [1], "data": [1.0]}]}),
            "unknown datatype 'FP128'",
        ),
        (
            json!({"inputs": [{"name": "AGE", "datatype": "INT64", "shape": [1], "data": [1.5]}]}),
            "is not of datatype INT64",
        ),
        (
            json!({"inputs": [{"name": "AGE", "datatype": "INT64", "shape": [1], "data": [30]}]}),
            "input 'LIMIT_BAL' is missing",
        ),
        (json!({"inputs": []}), "needs `inputs`"),
    ];
    for (body, needle) in bad {
        let r = post_json(&c, &server.url("/v2/models/credit/infer"), &body).await;
        assert_eq!(r.status(), 400, "{needle}");
        let e = json_of(r).await["error"].as_str().expect("error").to_string();
        assert!(e.contains(needle), "{e} should contain {needle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_invocations_accept_the_four_json_forms_and_csv() {
    let model = credit_forest();
    let csv = credit_csv(5, 21);
    let p = local(model.as_ref(), &csv);
    let rows = records(&csv);
    let names: Vec<&str> = model.schema().names().collect();
    let arrays: Vec<Value> = rows
        .iter()
        .map(|r| Value::Array(names.iter().map(|n| r[*n].clone()).collect()))
        .collect();
    let server = TestServer::with_model(ServeConfig::default(), "credit", model.clone()).await;
    let c = client();
    let bodies = [
        json!({"dataframe_split": {"columns": names, "data": arrays}}),
        json!({"dataframe_records": rows}),
        json!({"instances": rows}),
        json!({"inputs": rows}),
        json!({"inputs": names.iter().map(|n| (n.to_string(), Value::Array(rows.iter().map(|r| r[*n].clone()).collect()))).collect::<serde_json::Map<_, _>>()}),
    ];
    let labels = model.output().labels().to_vec();
    let check = |v: &Value| {
        let preds = v["predictions"].as_array().expect("predictions");
        assert_eq!(preds.len(), 5);
        for (r, row) in preds.iter().enumerate() {
            assert_eq!(row["label"], p.label(r).expect("l"));
            assert_eq!(
                row[format!("probability_{}", labels[1])].as_f64(),
                Some(p.positive_probabilities().expect("p")[r])
            );
        }
    };
    for body in bodies {
        let r = post_json(&c, &server.url("/invocations"), &body).await;
        assert_eq!(r.status(), 200, "{body}");
        check(&json_of(r).await);
    }
    let r = c
        .post(server.url("/invocations"))
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 200);
    check(&json_of(r).await);
    let r = post_json(
        &c,
        &server.url("/invocations"),
        &json!({"instances": rows, "inputs": rows}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e = json_of(r).await;
    assert_eq!(e["error_code"], "BAD_REQUEST");
    assert!(
        e["message"]
            .as_str()
            .expect("m")
            .starts_with("The input must be a JSON dictionary with exactly one of the input fields")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_rows_and_the_model() {
    let server = TestServer::with_model(ServeConfig::default(), "metered", credit_forest()).await;
    let c = client();
    let body = json!({"data": records(&credit_csv(3, 3))});
    for _ in 0..3 {
        assert_eq!(post_json(&c, &server.url("/score"), &body).await.status(), 200);
    }
    let r = c.get(server.url("/metrics")).send().await.expect("metrics");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    let text = r.text().await.expect("text");
    let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(str::to_string);
    let count =
        line("streamscore_serve_requests_total{route=\"/score\",status=\"200\"}").expect("request counter");
    let n: f64 = count.rsplit(' ').next().expect("v").parse().expect("number");
    assert!(n >= 3.0, "{count}");
    assert!(
        line(
            "streamscore_serve_request_duration_seconds_bucket{route=\"/score\",status=\"200\",le=\"0.002\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(line("streamscore_serve_rows_scored_total").is_some());
    assert!(
        text.contains("streamscore_serve_model_info{model=\"metered\",version=\"3\"} 1"),
        "{text}"
    );
    assert!(line("streamscore_serve_in_flight_requests").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_logging_writes_requests_to_sinks_and_counts_drops() {
    let model = credit_forest();
    let (sink, handle) = ml_stream::sink::MemorySink::new();
    let logger = ml_serve::PayloadLogger::start(vec![Box::new(sink)], 64, 1.0, Duration::from_millis(50))
        .expect("logger");
    let state = AppState::with_payload_logger(ServeConfig::default(), Some(logger)).expect("state");
    state.set_model(ServedModel::new("credit", "3", model.clone()).expect("served"));
    let server = TestServer::start_served(state.clone()).await;
    let c = client();
    let csv = credit_csv(4, 5);
    let p = local(model.as_ref(), &csv);
    let r = c
        .post(server.url("/score"))
        .header("x-request-id", "logged-1")
        .json(&json!({"data": records(&csv)}))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status(), 200);
    // The server's own loop (`ml_serve::serve`) closes the payload log when it stops: every
    // record handed to it is written (or counted as dropped) before `stop` returns.
    server.stop().await;
    let logged = handle.records();
    assert_eq!(logged.len(), 4);
    assert!(
        logged
            .iter()
            .all(|r| r.request_id == "logged-1" && r.model_name == "credit" && r.model_version == "3")
    );
    assert_eq!(logged[2].outputs["label"], p.label(2).expect("l"));
    assert_eq!(logged[2].inputs["AGE"], records(&csv)[2]["AGE"]);

    // Sampling 0.5 logs half the requests; a queue of one with a slow sink drops, and counts.
    let (sink, handle) = ml_stream::sink::MemorySink::new();
    let logger = ml_serve::PayloadLogger::start(vec![Box::new(sink)], 8, 0.5, Duration::from_millis(50))
        .expect("logger");
    let counters = logger.counters().clone();
    let state = AppState::with_payload_logger(ServeConfig::default(), Some(logger)).expect("state");
    state.set_model(ServedModel::new("credit", "3", model.clone()).expect("served"));
    let server = TestServer::start_served(state).await;
    let one = json!({"data": records(&credit_csv(1, 5))});
    for _ in 0..20 {
        assert_eq!(post_json(&c, &server.url("/score"), &one).await.status(), 200);
    }
    server.stop().await;
    let logged = handle.len() as u64 + counters.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(logged, 10, "half of 20 requests sampled");

    // A sink that does not finish a write until the test lets it, and a queue of one: the
    // writer holds at most one request (blocked in the sink) and the queue one more, so of 10
    // requests answered while the sink is stuck at least 8 are dropped — and every request was
    // answered while the sink had not written anything, so none waited for it.
    let (sink, handle) = ml_stream::sink::MemorySink::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let stuck_sink = GatedSink {
        inner: Box::new(sink),
        gate: gate.clone(),
    };
    let logger =
        ml_serve::PayloadLogger::start(vec![Box::new(stuck_sink)], 1, 1.0, Duration::from_millis(50))
            .expect("logger");
    let counters = logger.counters().clone();
    let state = AppState::with_payload_logger(ServeConfig::default(), Some(logger)).expect("state");
    state.set_model(ServedModel::new("credit", "3", model).expect("served"));
    let server = TestServer::start_served(state).await;
    // (A deadline only so that a request waiting for the stuck sink fails instead of hanging.)
    tokio::time::timeout(Duration::from_secs(60), async {
        for _ in 0..10 {
            assert_eq!(post_json(&c, &server.url("/score"), &one).await.status(), 200);
        }
    })
    .await
    .expect("requests were held up by the stuck payload sink");
    assert_eq!(handle.len(), 0, "the sink has not written yet");
    let dropped = counters.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped >= 8, "dropped {dropped} of 10 with room for 2");
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let line = text
        .lines()
        .find(|l| l.starts_with("streamscore_serve_payload_dropped_total"))
        .unwrap_or_else(|| panic!("no dropped counter in {text}"));
    let exported: f64 = line.rsplit(' ').next().expect("v").parse().expect("number");
    assert!(exported >= dropped as f64, "{line} (dropped {dropped})");
    // Released, the sink writes what was accepted; nothing is lost without being counted.
    gate.add_permits(1_000);
    server.stop().await;
    let written = handle.len() as u64;
    assert!((1..=2).contains(&written), "written {written}");
    assert_eq!(written + dropped, 10);
}

/// A sink whose writes wait until the test adds permits to `gate`.
#[derive(Debug)]
struct GatedSink {
    inner: Box<dyn ml_stream::InferenceSink>,
    gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl ml_stream::InferenceSink for GatedSink {
    async fn write_batch(&mut self, records: &[ml_stream::InferenceRecord]) -> ml_stream::Result<()> {
        drop(self.gate.acquire().await);
        self.inner.write_batch(records).await
    }
    async fn flush(&mut self) -> ml_stream::Result<()> {
        self.inner.flush().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let (slow, entered) = Slow::wrap(credit_forest(), Duration::from_millis(300));
    let server = TestServer::with_model(ServeConfig::default(), "credit", slow).await;
    // Loading scores a sample row (the swagger example): count calls from here.
    let base = entered.load(std::sync::atomic::Ordering::SeqCst);
    let c = client();
    let url = server.url("/score");
    let body = json!({"data": records(&credit_csv(1, 3))});
    let c2 = c.clone();
    let in_flight = tokio::spawn(async move { c2.post(url).json(&body).send().await.map(|r| r.status()) });
    wait_for(&entered, base + 1).await;
    let addr = server.addr;
    server.stop().await;
    assert_eq!(in_flight.await.expect("join").expect("answered").as_u16(), 200);
    assert!(std::net::TcpStream::connect(addr).is_err(), "no longer listening");
}
