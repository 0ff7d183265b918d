//! The Azure ML packaging in `deploy/azureml/`: the deployment YAML's probe and scoring routes
//! answer on a running server, and the Dockerfile runs the server as a non-root user on the
//! port the YAML names. (No container engine runs in the tests; this checks what can be
//! checked without one.)

use crate::support;

use std::path::PathBuf;

use ml_serve::ServeConfig;
use serde_json::json;
use support::*;

fn package_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/azureml")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_yaml_routes_answer_on_a_running_server() {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&package_file("deployment.yml")).expect("valid YAML");
    let config = &yaml["environment"]["inference_config"];
    let route = |name: &str| -> (String, u64) {
        let r = &config[name];
        (
            r["path"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}.path"))
                .to_string(),
            r["port"].as_u64().unwrap_or_else(|| panic!("{name}.port")),
        )
    };
    let (live, live_port) = route("liveness_route");
    let (ready, ready_port) = route("readiness_route");
    let (score, score_port) = route("scoring_route");
    assert_eq!([live_port, ready_port, score_port], [5001; 3]);
    // The request timeout matches the server's default scoring timeout.
    assert_eq!(
        yaml["request_settings"]["request_timeout_ms"].as_u64(),
        Some(ServeConfig::default().request_timeout.as_millis() as u64)
    );
    assert!(
        yaml["request_settings"]["max_concurrent_requests_per_instance"]
            .as_u64()
            .is_some()
    );

    let model = credit_forest();
    let server = TestServer::with_model(ServeConfig::default(), "credit", model.clone()).await;
    let c = client();
    for path in [&live, &ready] {
        let r = c.get(server.url(path)).send().await.expect("probe");
        assert_eq!(r.status(), 200, "{path}");
    }
    let csv = credit_csv(3, 11);
    let r = c
        .post(server.url(&score))
        .json(&json!({"data": records(&csv)}))
        .send()
        .await
        .expect("score");
    assert_eq!(r.status(), 200);
    let got: Vec<f64> = r.json().await.expect("json");
    assert_eq!(
        got,
        local(model.as_ref(), &csv)
            .positive_probabilities()
            .expect("binary")
            .to_vec()
    );

    // The container listens where the YAML sends traffic, as a non-root user.
    let docker = package_file("Dockerfile");
    assert!(docker.lines().any(|l| l.trim() == "EXPOSE 5001"));
    assert!(docker.contains("\"--port\", \"5001\"") && docker.contains("\"0.0.0.0\""));
    let user = docker
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runs as {user}"
    );
    assert!(docker.matches("FROM ").count() >= 2, "multi-stage");
}
