//! Adaptive batching on and off at 1, 8 and 64 concurrent clients: requests per second and
//! latency percentiles of one-row `/score` requests over HTTP on the loopback.
//!
//! ```text
//! cargo bench -p ml-serve --bench batching                    # 3 s per point
//! cargo bench -p ml-serve --bench batching -- --seconds 10 --trees 100
//! ```
//!
//! The model is a random forest on the synthetic credit data (`--trees`, depth 8). The clients
//! run in the same process as the server and share its cores, as a load generator on the same
//! machine would: read the figures as relative (on against off), not as the capacity of a
//! dedicated host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ml_core::datasets::credit::{CreditDefaultConfig, credit_default};
use ml_core::{CsvTable, Estimator, InferOptions, Model, ReadOptions, TypeHint};
use ml_serve::{AppState, BatchConfig, ServeConfig, ServedModel};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn forest(trees: u64) -> (Arc<dyn Model>, Vec<serde_json::Value>) {
    let data = credit_default(&CreditDefaultConfig {
        rows: 5000,
        seed: 3,
        drift: 0.0,
    })
    .expect("data");
    let mut csv = Vec::new();
    data.write_csv(&mut csv).expect("csv");
    let table = CsvTable::read(csv.as_slice(), "credit.csv").expect("read");
    let options = InferOptions::default()
        .with_override("SEX", TypeHint::Categorical)
        .with_override("EDUCATION", TypeHint::Categorical)
        .with_override("MARRIAGE", TypeHint::Categorical);
    let frame = table
        .to_frame(
            table.infer_schema(&options).expect("schema"),
            &ReadOptions::default(),
        )
        .expect("frame");
    let params = [
        ("n_estimators", trees.to_string()),
        ("max_depth", "8".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let model = Estimator::from_name("random_forest_classifier", &params)
        .expect("estimator")
        .fit(&frame, "default")
        .expect("fit");
    let text = String::from_utf8(csv).expect("utf8");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let rows = lines
        .take(256)
        .map(|l| {
            let m: serde_json::Map<String, serde_json::Value> = header
                .iter()
                .zip(l.split(','))
                .filter(|(h, _)| **h != "default")
                .map(|(h, v)| {
                    (
                        h.to_string(),
                        serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.into())),
                    )
                })
                .collect();
            serde_json::json!({"data": [m]})
        })
        .collect();
    (Arc::new(model), rows)
}

async fn point(
    model: Arc<dyn Model>,
    bodies: Arc<Vec<serde_json::Value>>,
    clients: usize,
    batching: bool,
    seconds: u64,
) {
    let config = ServeConfig {
        batching: batching.then(BatchConfig::default),
        ..ServeConfig::default()
    };
    let state =
        AppState::with_model(config, ServedModel::new("credit", "1", model).expect("served")).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/score", listener.local_addr().expect("addr"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ml_serve::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let warmup = Instant::now() + Duration::from_millis(300);
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = k;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = client
                    .post(&url)
                    .json(&bodies[i % bodies.len()])
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.expect("body");
                if t0 >= warmup {
                    latencies.push(t0.elapsed());
                }
                i += clients;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    all.sort_unstable();
    let pct = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    let measured = Duration::from_secs(seconds)
        .saturating_sub(Duration::from_millis(300))
        .as_secs_f64();
    println!(
        "{:>8} {:>8} {:>10.0} {:>9.3} {:>9.3} {:>9.3}",
        if batching { "on" } else { "off" },
        clients,
        all.len() as f64 / measured,
        pct(0.5),
        pct(0.99),
        pct(0.999),
    );
}

fn main() {
    let seconds = arg("--seconds", 3).max(1);
    let trees = arg("--trees", 100).max(1);
    let (model, bodies) = forest(trees);
    let bodies = Arc::new(bodies);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "one-row /score requests, random forest {trees} trees depth 8, {} cores, {seconds} s per point",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>8} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "batching", "clients", "req/s", "p50 ms", "p99 ms", "p99.9 ms"
    );
    runtime.block_on(async {
        for clients in [1, 8, 64] {
            for batching in [false, true] {
                point(model.clone(), bodies.clone(), clients, batching, seconds).await;
            }
        }
    });
}
