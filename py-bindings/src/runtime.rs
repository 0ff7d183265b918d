//! `_native.Server` and `_native.Stream`: the endpoint of `streamscore serve` and the pipeline of
//! `streamscore stream`, each on its own thread with its own multi-threaded tokio runtime, so
//! Python keeps running; the handles stop them and read their counters.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ml_core::LocalScorer;
use ml_serve::payload::PayloadCounters;
use ml_serve::{AppState, PayloadLogger, ServeConfig, ServedModel};
use ml_stream::{
    Pipeline, PipelineConfig, PipelineCounters, PipelineReport, RetryPolicy, ShutdownHandle, SpecRegistry,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::model::PyModel;
use crate::sink::{SinkSpec, build_sinks, sink_of, sinks_of};
use crate::{Error, Result, StreamscoreError};

fn runtime(name: &str, workers: Option<usize>) -> std::result::Result<tokio::runtime::Runtime, String> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = workers {
        b.worker_threads(w.max(1));
    }
    b.thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Waits for `rx` without the GIL, waking every 100 ms for Ctrl-C; `None` at `timeout`. (The
/// receiver sits in a mutex: it is `Send` but not `Sync`.)
fn wait_for<T: Send>(
    py: Python<'_>,
    rx: &Mutex<Receiver<T>>,
    timeout: Option<Duration>,
) -> PyResult<Option<T>> {
    let started = Instant::now();
    loop {
        let step = match timeout {
            Some(t) => match t.checked_sub(started.elapsed()) {
                Some(left) => left.min(Duration::from_millis(100)),
                None => return Ok(None),
            },
            None => Duration::from_millis(100),
        };
        match py.detach(|| lock(rx).recv_timeout(step)) {
            Ok(v) => return Ok(Some(v)),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(StreamscoreError::new_err(
                    "the background thread ended without a result",
                ));
            }
        }
    }
}

/// A running endpoint.
#[pyclass(name = "Server", module = "streamscore._native", frozen)]
pub struct PyServer {
    addr: SocketAddr,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    done: Mutex<Receiver<std::result::Result<(), String>>>,
    stopped: Mutex<Option<std::result::Result<(), String>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    payload: Option<Arc<PayloadCounters>>,
}

type Ready = std::result::Result<(SocketAddr, Option<Arc<PayloadCounters>>), String>;

/// Starts the endpoint of `model` (as `name:version`) on `host:port` (0: a free port) in a
/// background thread; returns once it is listening and ready.
#[pyfunction]
#[pyo3(signature = (model, name, version, host = "127.0.0.1".to_string(), port = 0, log_sinks = None, keys = None, workers = None, log_sampling_rate = 1.0, request_timeout_ms = 5000, max_concurrent_requests = 512))]
#[allow(clippy::too_many_arguments)]
pub fn start_server(
    py: Python<'_>,
    model: &PyModel,
    name: String,
    version: String,
    host: String,
    port: u16,
    log_sinks: Option<&Bound<'_, PyList>>,
    keys: Option<Vec<String>>,
    workers: Option<usize>,
    log_sampling_rate: f64,
    request_timeout_ms: u64,
    max_concurrent_requests: usize,
) -> PyResult<PyServer> {
    let config = ServeConfig {
        keys: keys.unwrap_or_default(),
        payload_sampling_rate: log_sampling_rate,
        request_timeout: Duration::from_millis(request_timeout_ms),
        max_concurrent_requests,
        ..ServeConfig::default()
    };
    config.check().map_err(Error::from)?;
    let served = ServedModel::new(name, version, model.inner.clone()).map_err(Error::from)?;
    let sinks: Vec<SinkSpec> = match log_sinks {
        Some(list) => sinks_of(list)?,
        None => Vec::new(),
    };
    let (ready_tx, ready_rx) = channel::<Ready>();
    let (done_tx, done_rx) = channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("streamscore-serve".into())
        .spawn(move || {
            let rt = match runtime("streamscore-serve", workers) {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let result = rt.block_on(async move {
                let setup = async {
                    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                        .await
                        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
                    let addr = listener.local_addr().map_err(|e| e.to_string())?;
                    let logger = if sinks.is_empty() {
                        None
                    } else {
                        let sinks =
                            build_sinks(&SpecRegistry::default(), sinks).map_err(|e| e.to_string())?;
                        Some(
                            PayloadLogger::start(
                                sinks,
                                config.payload_queue_capacity,
                                config.payload_sampling_rate,
                                Duration::from_secs(1),
                            )
                            .map_err(|e| e.to_string())?,
                        )
                    };
                    let counters = logger.as_ref().map(|l| l.counters().clone());
                    let state = AppState::with_payload_logger(config, logger).map_err(|e| e.to_string())?;
                    state.set_model(served);
                    Ok::<_, String>((listener, state, addr, counters))
                };
                let (listener, state, addr, counters) = match setup.await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                let _ = ready_tx.send(Ok((addr, counters)));
                ml_serve::serve(listener, state, async move {
                    // A dropped sender (the handle collected) stops the server too.
                    let _ = stop_rx.await;
                })
                .await
                .map_err(|e| e.to_string())
            });
            let _ = done_tx.send(result);
        })
        .map_err(|e| StreamscoreError::new_err(format!("cannot start the server thread: {e}")))?;
    let ready = wait_for(py, &Mutex::new(ready_rx), None)?
        .ok_or_else(|| StreamscoreError::new_err("the server did not start"))?;
    let (addr, payload) = ready.map_err(StreamscoreError::new_err)?;
    Ok(PyServer {
        addr,
        stop: Mutex::new(Some(stop_tx)),
        done: Mutex::new(done_rx),
        stopped: Mutex::new(None),
        thread: Mutex::new(Some(thread)),
        payload,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[pymethods]
impl PyServer {
    /// The base URL, `http://127.0.0.1:PORT`.
    #[getter]
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound port.
    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Whether the server thread is still running.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.thread).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Payload log counters: records `written` to the log sinks and `dropped` (queue full or
    /// sink error); zeros without log sinks.
    fn payload_counters(&self) -> (u64, u64) {
        self.payload.as_ref().map_or((0, 0), |c| {
            (
                c.written.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed),
            )
        })
    }

    /// Stops accepting, finishes the requests in flight, closes the log sinks and joins the
    /// thread. Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(tx) = lock(&self.stop).take() {
            let _ = tx.send(());
        }
        let known = lock(&self.stopped).clone();
        let result = match known {
            Some(r) => r,
            None => {
                let r = wait_for(py, &self.done, None)?.unwrap_or(Ok(()));
                if let Some(t) = lock(&self.thread).take() {
                    let _ = py.detach(|| t.join());
                }
                *lock(&self.stopped) = Some(r.clone());
                r
            }
        };
        result.map_err(|e| StreamscoreError::new_err(format!("the server failed: {e}")))
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        // Not joined here: the thread may need the GIL (Python log sinks) to finish.
        if let Some(tx) = lock(&self.stop).take() {
            let _ = tx.send(());
        }
    }
}

/// A pipeline running in the background.
#[pyclass(name = "Stream", module = "streamscore._native", frozen)]
pub struct PyStream {
    counters: Arc<PipelineCounters>,
    shutdown: ShutdownHandle,
    done: Mutex<Receiver<std::result::Result<PipelineReport, String>>>,
    report: Mutex<Option<std::result::Result<PipelineReport, String>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    started: Instant,
}

type StreamReady = std::result::Result<(Arc<PipelineCounters>, ShutdownHandle), String>;

/// Starts a pipeline scoring `source` with `model` into `sinks` (specs or Python objects) in a
/// background thread; returns once the source and sinks are open.
#[pyfunction]
#[pyo3(signature = (model, name, version, source, sinks, dead_letter = None, batch_size = 512, max_wait_ms = 20, commit_interval_ms = 5000, commit_every = None, in_flight = 2, queue_capacity = 4, max_attempts = 5, initial_backoff_ms = 100, workers = None))]
#[allow(clippy::too_many_arguments)]
pub fn start_stream(
    py: Python<'_>,
    model: &PyModel,
    name: String,
    version: String,
    source: String,
    sinks: &Bound<'_, PyList>,
    dead_letter: Option<&Bound<'_, PyAny>>,
    batch_size: usize,
    max_wait_ms: u64,
    commit_interval_ms: u64,
    commit_every: Option<u64>,
    in_flight: usize,
    queue_capacity: usize,
    max_attempts: u32,
    initial_backoff_ms: u64,
    workers: Option<usize>,
) -> PyResult<PyStream> {
    let config = PipelineConfig {
        batch_size,
        max_wait: Duration::from_millis(max_wait_ms),
        commit_interval: Duration::from_millis(commit_interval_ms),
        commit_every,
        in_flight,
        queue_capacity,
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(initial_backoff_ms),
            ..RetryPolicy::default()
        },
        model_name: name,
        model_version: version,
    };
    config.check().map_err(Error::from)?;
    let sinks = sinks_of(sinks)?;
    if sinks.is_empty() {
        return Err(Error::from(ml_stream::Error::InvalidSetting {
            name: "sinks",
            reason: "give at least one sink: a spec such as \"jsonl:logs/\" or an object with write_batch"
                .into(),
        })
        .into());
    }
    let dead_letter = dead_letter.map(sink_of).transpose()?;
    let model = model.inner.clone();
    let (ready_tx, ready_rx) = channel::<StreamReady>();
    let (done_tx, done_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("streamscore-stream".into())
        .spawn(move || {
            let rt = match runtime("streamscore-stream", workers) {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let result = rt.block_on(async move {
                let setup = || -> ml_stream::Result<_> {
                    let specs = SpecRegistry::default();
                    let schema = Arc::new(model.schema().clone());
                    let sinks = build_sinks(&specs, sinks)?;
                    let source = specs.source(&source)?;
                    let scorer: Arc<dyn ml_core::Scorer> = Arc::new(LocalScorer::new(model));
                    let mut pipeline = Pipeline::new(config, schema, scorer, sinks)?;
                    if let Some(d) = dead_letter {
                        let mut d = build_sinks(&specs, vec![d])?;
                        if let Some(d) = d.pop() {
                            pipeline = pipeline.with_dead_letter(d);
                        }
                    }
                    Ok((pipeline, source))
                };
                let (pipeline, source) = match setup() {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Err(e.to_string());
                    }
                };
                let _ = ready_tx.send(Ok((pipeline.counters(), pipeline.shutdown_handle())));
                pipeline.run(source).await.map_err(|e| e.to_string())
            });
            let _ = done_tx.send(result);
        })
        .map_err(|e| StreamscoreError::new_err(format!("cannot start the stream thread: {e}")))?;
    let ready = wait_for(py, &Mutex::new(ready_rx), None)?
        .ok_or_else(|| StreamscoreError::new_err("the stream did not start"))?;
    let (counters, shutdown) = ready.map_err(StreamscoreError::new_err)?;
    Ok(PyStream {
        counters,
        shutdown,
        done: Mutex::new(done_rx),
        report: Mutex::new(None),
        thread: Mutex::new(Some(thread)),
        started: Instant::now(),
    })
}

fn report_dict<'py>(py: Python<'py>, r: &PipelineReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("events_in", r.events_in)?;
    d.set_item("records_out", r.records_out)?;
    d.set_item("dead_letters", r.dead_letters)?;
    d.set_item("commits", r.commits)?;
    d.set_item("checkpoint", r.checkpoint.next_offsets.clone())?;
    Ok(d)
}

impl PyStream {
    /// The pipeline's result once finished (waiting up to `timeout`; `None` for ever).
    fn finish(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<Result<PipelineReport, String>>> {
        if let Some(r) = lock(&self.report).clone() {
            return Ok(Some(r));
        }
        let Some(result) = wait_for(py, &self.done, timeout)? else {
            return Ok(None);
        };
        if let Some(t) = lock(&self.thread).take() {
            let _ = py.detach(|| t.join());
        }
        *lock(&self.report) = Some(result.clone());
        Ok(Some(result))
    }
}

#[pymethods]
impl PyStream {
    /// Live counters: `events_in`, `records_out`, `dead_letters`, `batches`, `commits`, `lag`,
    /// and `elapsed_s`.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.counters;
        let d = PyDict::new(py);
        d.set_item("events_in", c.events_in.load(Ordering::Relaxed))?;
        d.set_item("records_out", c.records_out.load(Ordering::Relaxed))?;
        d.set_item("dead_letters", c.dead_letters.load(Ordering::Relaxed))?;
        d.set_item("batches", c.batches.load(Ordering::Relaxed))?;
        d.set_item("commits", c.commits.load(Ordering::Relaxed))?;
        d.set_item("lag", c.lag.load(Ordering::Relaxed))?;
        d.set_item("elapsed_s", self.started.elapsed().as_secs_f64())?;
        Ok(d)
    }

    /// Whether the pipeline is still running.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.thread).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Waits for the end (a finite source running dry, or `stop`); the report, or `None` when
    /// `timeout` seconds passed first. Raises the pipeline's error if it failed.
    #[pyo3(signature = (timeout = None))]
    fn wait<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let timeout = match timeout {
            Some(t) if !(t >= 0.0 && t.is_finite()) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "timeout must be a non-negative number of seconds",
                ));
            }
            Some(t) => Some(Duration::from_secs_f64(t)),
            None => None,
        };
        match self.finish(py, timeout)? {
            None => Ok(None),
            Some(Ok(r)) => Ok(Some(report_dict(py, &r)?)),
            Some(Err(e)) => Err(StreamscoreError::new_err(format!("the stream failed: {e}"))),
        }
    }

    /// Asks the pipeline to stop reading, finish the batches in flight, flush and commit, and
    /// waits for that; returns the report.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.shutdown.shutdown();
        self.wait(py, None)
    }
}

impl Drop for PyStream {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}
