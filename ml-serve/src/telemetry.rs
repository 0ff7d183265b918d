//! Telemetry beside `/metrics`: request telemetry (`RequestData`) to Application Insights for
//! the calls the server answers (feature `azure`, through the process-wide exporter of
//! `ml_stream::appinsights`), the Prometheus recorder for programs that are not the server
//! (`streamscore stream --metrics-port`), and a server of `/metrics` alone.
//!
//! Health probes and `/metrics` scrapes that succeed are not sent as requests: they would be
//! most of the requests and tell nothing about scoring.

use std::future::Future;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::error::Result;

/// Routes whose successful calls are not sent as requests.
const QUIET_ROUTES: &[&str] = &[
    "/",
    "/metrics",
    "/ping",
    "/health",
    "/v2/health/live",
    "/v2/health/ready",
];

/// Middleware: sends each call as `RequestData` (name `METHOD /route`, status, duration, the
/// `x-request-id` as id and operation id, the model version as a property) when a process-wide
/// Application Insights exporter is installed; otherwise only passes the call on.
pub async fn track_requests(req: Request, next: Next) -> Response {
    #[cfg(feature = "azure")]
    if let Some(client) = ml_stream::appinsights::global() {
        let started = std::time::Instant::now();
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
        let name = format!("{} {route}", req.method());
        let url = req.uri().to_string();
        let response = next.run(req).await;
        let status = response.status();
        if status.as_u16() < 400 && QUIET_ROUTES.contains(&route.as_str()) {
            return response;
        }
        let header = |h: &axum::http::HeaderName| {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut properties = std::collections::BTreeMap::new();
        if let Some(v) = header(&crate::ops::MODEL_VERSION) {
            properties.insert("model_version".to_string(), v);
        }
        client.track_request(ml_stream::appinsights::RequestData {
            ver: 2,
            id: header(&crate::ops::REQUEST_ID).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name,
            duration: ml_stream::appinsights::timespan(started.elapsed()),
            response_code: status.as_u16().to_string(),
            success: status.as_u16() < 400,
            url,
            properties,
        });
        return response;
    }
    let _ = QUIET_ROUTES;
    next.run(req).await
}

/// Installs the Prometheus recorder of [`render_prometheus`] (once per process; the server
/// does it too). False when another recorder was installed first.
pub fn install_prometheus() -> bool {
    crate::metrics::init();
    crate::metrics::render().is_some()
}

/// Installs the Prometheus recorder with every signal also forwarded to `client` as
/// `MetricData`. False when a recorder was installed before (then nothing is forwarded).
#[cfg(feature = "azure")]
pub fn install_prometheus_with(client: &ml_stream::appinsights::AppInsights) -> bool {
    crate::metrics::init_wrapped(|prometheus| client.recorder(prometheus))
}

/// The Prometheus text of every metric, `None` when another recorder took the signals.
pub fn render_prometheus() -> Option<String> {
    crate::metrics::render()
}

/// Serves `GET /metrics` (Prometheus text) on `listener` until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    install_prometheus();
    let app = Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                render_prometheus().unwrap_or_default(),
            )
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// A running `/metrics` server (see [`MetricsServer::start`]).
#[derive(Debug)]
pub struct MetricsServer {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl MetricsServer {
    /// Binds `host:port` (port 0: a free port) and serves `/metrics` there.
    pub async fn start(host: &str, port: u16) -> Result<MetricsServer> {
        let listener = TcpListener::bind((host, port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_metrics(listener, async move {
            let _ = stopped.await;
        }));
        Ok(MetricsServer { addr, stop, task })
    }

    /// The address bound.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops serving, letting a scrape in flight finish.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| crate::error::Error::Stream(ml_stream::Error::Internal(e.to_string())))?
    }
}
