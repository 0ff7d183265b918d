//! A recording HTTP receiver for the telemetry exporters' tests (OTLP collectors, Application
//! Insights ingestion), shared by every crate: include it with
//! `#[path = "../../../test-support/receiver.rs"] mod receiver;`.
//!
//! It listens on a free 127.0.0.1 port on a thread and runtime of its own (so both async tests
//! and tests of a child process can use it), answers each call with the next status of its
//! script (200 once the script is done) and a `{}` body, and keeps every call: path, headers,
//! body and the status answered. It is ready when [`Receiver::start`] returns (the port is
//! bound before) and stops when dropped.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

/// One call received.
#[derive(Clone, Debug)]
pub struct Call {
    /// The request path.
    pub path: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body as sent (compressed if it was).
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

impl Call {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Statuses to answer first, each for any path (`None`) or one path.
type Script = VecDeque<(Option<String>, u16)>;

#[derive(Clone, Default)]
struct Record {
    script: Arc<Mutex<Script>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

async fn keep(
    State(r): State<Record>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let status = {
        let mut script = r.script.lock().unwrap();
        let next = script
            .iter()
            .position(|(p, _)| p.as_deref().is_none_or(|p| p == uri.path()));
        next.and_then(|i| script.remove(i)).map_or(200, |(_, s)| s)
    };
    r.calls.lock().unwrap().push(Call {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: body.to_vec(),
        status,
    });
    (StatusCode::from_u16(status).unwrap(), "{}")
}

/// A running receiver; stopped when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    record: Record,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts a receiver answering `script` first, then 200.
    pub fn start(script: &[u16]) -> Receiver {
        let script: Vec<(Option<&str>, u16)> = script.iter().map(|s| (None, *s)).collect();
        Receiver::start_scripted(&script)
    }

    /// Starts a receiver answering the calls on a path (or any path, `None`) with the statuses
    /// of `script` in order, then 200.
    pub fn start_scripted(script: &[(Option<&str>, u16)]) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let record = Record::default();
        record
            .script
            .lock()
            .unwrap()
            .extend(script.iter().map(|(p, s)| (p.map(str::to_string), *s)));
        let app = axum::Router::new().fallback(keep).with_state(record.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Receiver {
            url,
            record,
            stop: Some(stop),
        }
    }

    /// Waits (up to 60 s) until `done` holds for the calls so far; false when it never did.
    pub fn wait_for(&self, done: impl Fn(&[Call]) -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if done(&self.calls()) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.record.calls.lock().unwrap().clone()
    }

    /// The statuses answered to the calls on `path`, in order.
    pub fn statuses(&self, path: &str) -> Vec<u16> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .map(|c| c.status)
            .collect()
    }

    /// The JSON bodies of the calls on `path` answered 200.
    pub fn accepted_json(&self, path: &str) -> Vec<serde_json::Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path && c.status == 200)
            .map(|c| serde_json::from_slice(&c.body).expect("a JSON body"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The server finishes the calls in flight and its thread ends; not joined, so a client
        // holding a connection open cannot hang the test.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
