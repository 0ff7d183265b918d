//! Telemetry beside `/metrics`: request telemetry for the calls the server answers —
//! `RequestData` to Application Insights (feature `azure`, through the process-wide exporter of
//! `ml_stream::appinsights`) and server spans to an OTLP collector (`ml_stream::otlp`) — the
//! Prometheus recorder (optionally forwarding every signal to those exporters) for programs that are not the server
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

/// Middleware: sends each call as `RequestData` to the process-wide Application Insights
/// exporter (feature `azure`; name `METHOD /route`, status, duration, the `x-request-id` as id
/// and operation id, the model version as a property) and as a server span to the process-wide
/// OTLP exporter (the same fields as attributes), when they are installed; otherwise only
/// passes the call on.
pub async fn track_requests(req: Request, next: Next) -> Response {
    track(req, None, |req| next.run(req)).await
}

/// What [`track_requests`] does around `next`, for the route pattern `route` (the router's
/// matched path when `None`): shared by the router and the server's direct path.
pub(crate) async fn track<F, Fut>(req: Request, route: Option<&str>, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    #[cfg(feature = "azure")]
    let appinsights = ml_stream::appinsights::global();
    #[cfg(not(feature = "azure"))]
    let appinsights: Option<()> = None;
    let otlp = ml_stream::otlp::global();
    if appinsights.is_none() && otlp.is_none() {
        return next(req).await;
    }
    let started = std::time::Instant::now();
    let start_ns = ml_stream::exporter::now_ns();
    let route = match route {
        Some(r) => r.to_string(),
        None => req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string()),
    };
    let method = req.method().to_string();
    let url = req.uri().to_string();
    let response = next(req).await;
    let status = response.status().as_u16();
    if status < 400 && QUIET_ROUTES.contains(&route.as_str()) {
        return response;
    }
    let header = |h: &axum::http::HeaderName| {
        response
            .headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let id = header(&crate::ops::REQUEST_ID).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let version = header(&crate::ops::MODEL_VERSION);
    #[cfg(feature = "azure")]
    if let Some(client) = appinsights {
        let mut properties = std::collections::BTreeMap::new();
        if let Some(v) = &version {
            properties.insert("model_version".to_string(), v.clone());
        }
        client.track_request(ml_stream::appinsights::RequestData {
            ver: 2,
            id: id.clone(),
            name: format!("{method} {route}"),
            duration: ml_stream::appinsights::timespan(started.elapsed()),
            response_code: status.to_string(),
            success: status < 400,
            url: url.clone(),
            properties,
        });
    }
    if let Some(otlp) = otlp {
        let mut attributes = vec![("request_id".to_string(), id)];
        if let Some(v) = version {
            attributes.push(("model_version".to_string(), v));
        }
        otlp.track_request(&ml_stream::otlp::RequestSpan {
            name: format!("{method} {route}"),
            method,
            route,
            target: url,
            status,
            start_ns,
            end_ns: start_ns + started.elapsed().as_nanos() as u64,
            attributes,
        });
    }
    response
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
    install_prometheus_forwarding(vec![client.forward()])
}

/// Installs the Prometheus recorder with every signal also forwarded to each exporter of
/// `targets` (Application Insights, OTLP; from their `forward()`). False when a recorder was
/// installed before (then nothing is forwarded).
pub fn install_prometheus_forwarding(targets: Vec<ml_stream::exporter::MetricsForward>) -> bool {
    crate::metrics::init_wrapped(|prometheus| {
        ml_stream::exporter::ForwardingRecorder::new(prometheus, targets)
    })
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
