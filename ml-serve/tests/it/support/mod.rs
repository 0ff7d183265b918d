//! Shared by the ml-serve tests: models, a server on a free port stopped by a guard, slow and
//! failing model wrappers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ml_core::datasets::credit::{CreditDefaultConfig, credit_default};
use ml_core::{
    CsvTable, Estimator, Frame, InferOptions, Model, OutputSpec, Predictions, ReadOptions, Schema, TypeHint,
};
use ml_serve::{AppState, ServeConfig, ServedModel};
use tokio::sync::oneshot;

/// Credit data as CSV text (header + rows).
pub fn credit_csv(rows: usize, seed: u64) -> String {
    let data = credit_default(&CreditDefaultConfig {
        rows,
        seed,
        drift: 0.0,
    })
    .expect("generate");
    let mut out = Vec::new();
    data.write_csv(&mut out).expect("csv");
    String::from_utf8(out).expect("utf8")
}

/// A random forest (20 trees, depth 6) on 3000 generated credit rows, with SEX, EDUCATION and
/// MARRIAGE categorical.
pub fn credit_forest() -> Arc<dyn Model> {
    let table = CsvTable::read(credit_csv(3000, 7).as_bytes(), "credit.csv").expect("read");
    let options = InferOptions::default()
        .with_override("SEX", TypeHint::Categorical)
        .with_override("EDUCATION", TypeHint::Categorical)
        .with_override("MARRIAGE", TypeHint::Categorical);
    let schema = table.infer_schema(&options).expect("schema");
    let data = table.to_frame(schema, &ReadOptions::default()).expect("frame");
    let params = [("n_estimators", "20"), ("max_depth", "6")].map(|(k, v)| (k.to_string(), v.to_string()));
    let model = Estimator::from_name("random_forest_classifier", &params)
        .expect("estimator")
        .fit(&data, "default")
        .expect("fit");
    Arc::new(model)
}

/// A linear regression of y on two floats and a category.
pub fn regression() -> Arc<dyn Model> {
    let mut csv = String::from("a,b,c,y\n");
    for i in 0..60 {
        let a = i as f64 * 0.5;
        let b = (i % 7) as f64 - 3.0;
        let c = ["red", "green", "blue"][i % 3];
        let y = 2.0 * a - b + if c == "red" { 1.5 } else { 0.0 };
        csv.push_str(&format!("{a},{b},{c},{y}\n"));
    }
    fit(&csv, "linear_regression", "y")
}

/// A three-class classifier.
pub fn multiclass() -> Arc<dyn Model> {
    let mut csv = String::from("x,z,k\n");
    for i in 0..90 {
        let x = (i % 30) as f64;
        let z = (i % 4) as f64;
        let k = ["lo", "mid", "hi"][(i % 30) / 10];
        csv.push_str(&format!("{x},{z},{k}\n"));
    }
    fit(&csv, "decision_tree_classifier", "k")
}

fn fit(csv: &str, estimator: &str, target: &str) -> Arc<dyn Model> {
    let table = CsvTable::read(csv.as_bytes(), "train.csv").expect("read");
    let data = table
        .to_frame(
            table.infer_schema(&InferOptions::default()).expect("schema"),
            &ReadOptions::default(),
        )
        .expect("frame");
    Arc::new(
        Estimator::from_name(estimator, &[])
            .expect("estimator")
            .fit(&data, target)
            .expect("fit"),
    )
}

/// The model's predictions for CSV rows.
pub fn local(model: &dyn Model, csv: &str) -> Predictions {
    let frame =
        Frame::from_csv(csv.as_bytes(), model.schema().clone(), &ReadOptions::default()).expect("frame");
    model.predict(&frame).expect("predict")
}

/// CSV rows as JSON records (ints as numbers, as Stream Analytics sends them), without `default`.
pub fn records(csv: &str) -> Vec<serde_json::Value> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
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
            serde_json::Value::Object(m)
        })
        .collect()
}

/// Holds every call in `predict` while closed (the test decides when scoring may go on);
/// counts its calls.
#[derive(Debug)]
pub struct Gated {
    model: Arc<dyn Model>,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    pub entered: AtomicUsize,
}

impl Gated {
    /// An open gate around `model`.
    pub fn wrap(model: Arc<dyn Model>) -> Arc<Gated> {
        Arc::new(Gated {
            model,
            open: std::sync::Mutex::new(true),
            opened: std::sync::Condvar::new(),
            entered: AtomicUsize::new(0),
        })
    }

    pub fn set_open(&self, open: bool) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = open;
        self.opened.notify_all();
    }
}

impl Model for Gated {
    fn schema(&self) -> &Schema {
        self.model.schema()
    }
    fn output(&self) -> &OutputSpec {
        self.model.output()
    }
    fn predict(&self, frame: &Frame) -> ml_core::Result<Predictions> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|e| e.into_inner());
        }
        drop(open);
        self.model.predict(frame)
    }
}

/// Sleeps before predicting (a model slower than the scoring timeout); counts its calls.
#[derive(Debug)]
pub struct Slow(pub Arc<dyn Model>, pub Duration, pub Arc<AtomicUsize>);

impl Slow {
    pub fn wrap(model: Arc<dyn Model>, delay: Duration) -> (Arc<dyn Model>, Arc<AtomicUsize>) {
        let entered = Arc::new(AtomicUsize::new(0));
        (Arc::new(Slow(model, delay, entered.clone())), entered)
    }
}

impl Model for Slow {
    fn schema(&self) -> &Schema {
        self.0.schema()
    }
    fn output(&self) -> &OutputSpec {
        self.0.output()
    }
    fn predict(&self, frame: &Frame) -> ml_core::Result<Predictions> {
        self.2.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.1);
        self.0.predict(frame)
    }
}

/// Fails with an internal error (a bug), to check the 500 answer.
#[derive(Debug)]
pub struct Broken(pub Arc<dyn Model>);

impl Model for Broken {
    fn schema(&self) -> &Schema {
        self.0.schema()
    }
    fn output(&self) -> &OutputSpec {
        self.0.output()
    }
    fn predict(&self, _: &Frame) -> ml_core::Result<Predictions> {
        Err(ml_core::Error::Internal(
            "secret detail that must not reach the client".into(),
        ))
    }
}

/// A server on 127.0.0.1:0, stopped (gracefully) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<ml_serve::Result<()>>>,
}

impl TestServer {
    pub async fn start(state: AppState) -> TestServer {
        Self::start_router(state.clone(), ml_serve::app(state)).await
    }

    /// Serves `state` with [`ml_serve::serve`], the server's own connection loop (header
    /// timeout, payload log closed at the end), as `streamscore serve` does.
    pub async fn start_served(state: AppState) -> TestServer {
        Self::start_served_tls(state, None).await
    }

    /// Like [`TestServer::start_served`], over TLS when `tls` is given.
    pub async fn start_served_tls(state: AppState, tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let served = state.clone();
        let task = tokio::spawn(async move {
            match tls {
                Some(tls) => ml_serve::serve_tls(listener, tls, served, shutdown).await,
                None => ml_serve::serve(listener, served, shutdown).await,
            }
        });
        TestServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves `router` (e.g. the app wrapped in a fault-injecting layer).
    pub async fn start_router(state: AppState, router: axum::Router) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await?;
            Ok(())
        });
        TestServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn with_model(config: ServeConfig, name: &str, model: Arc<dyn Model>) -> TestServer {
        let state =
            AppState::with_model(config, ServedModel::new(name, "3", model).expect("served")).expect("state");
        TestServer::start(state).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, waits for requests in flight.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}
