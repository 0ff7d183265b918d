//! Running the server: bind, serve until a shutdown signal, finish the requests in flight,
//! flush the payload log; optionally over TLS.
//!
//! The connection loop is our own (hyper's HTTP/1 server under the axum router) rather than
//! `axum::serve`, for two limits that one does not set: a client must send its request line
//! and headers within [`ServeConfig::header_timeout`](crate::ServeConfig::header_timeout) (a
//! slowloris client sending a header byte now and then is disconnected instead of holding a
//! connection forever), and a TLS handshake must finish within the same time, each on its own
//! task so a slow one delays no other connection.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::response::Response;
use futures::future::Either;
use hyper::body::Incoming;
use hyper::service::Service as HyperService;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish, and closes the payload sinks.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run(listener, None, state, shutdown).await
}

/// Like [`serve`], over TLS with `tls` (see [`tls_config`]).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(tls)),
        state,
        shutdown,
    )
    .await
}

/// A TLS server configuration from PEM files: the certificate chain (leaf first) and its
/// private key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3 with rustls' safe defaults
/// (aws-lc-rs), HTTP/1.1 by ALPN.
pub fn tls_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| {
            Error::Tls(format!(
                "cannot read the certificate {}: {e}; give a PEM file with `-----BEGIN CERTIFICATE-----` blocks",
                cert_pem.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{} holds no certificate: give a PEM file with `-----BEGIN CERTIFICATE-----` blocks",
            cert_pem.display()
        )));
    }
    // The key's bytes never reach a message: only the file name and what kind of problem.
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| {
        let what = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key in it".to_string(),
            rustls::pki_types::pem::Error::Io(io) => io.to_string(),
            _ => "it is not a PEM private key".to_string(),
        };
        Error::Tls(format!(
            "cannot read the private key {}: {what}; give a PEM file with a `-----BEGIN PRIVATE KEY-----` block",
            key_pem.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Tls(format!(
                "the certificate {} and the key {} do not make a usable pair: {e}",
                cert_pem.display(),
                key_pem.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The service of a connection: `POST /score` (the route nearly every request takes) goes
/// straight to its steps — the telemetry, the middleware's checks, metrics and headers, the
/// handler, the same functions the router runs — without the router's per-request work
/// (route matching, a boxed and cloned service per layer, request extensions), which cost about
/// a tenth of a one-row request; every other request goes to the router. A layer added to the
/// router of [`crate::app`] must be added to this path too, or `POST /score` goes without it.
#[derive(Clone)]
struct Endpoint {
    router: TowerToHyperService<axum::Router>,
    state: AppState,
}

type BoxedResponse = Pin<Box<dyn Future<Output = std::result::Result<Response, Infallible>> + Send>>;

impl HyperService<Request<Incoming>> for Endpoint {
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<<TowerToHyperService<axum::Router> as HyperService<Request<Incoming>>>::Future, BoxedResponse>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if req.method() == Method::POST && req.uri().path() == "/score" {
            let state = self.state.clone();
            let req = req.map(Body::new);
            Either::Right(Box::pin(async move {
                Ok(crate::telemetry::track(req, Some("/score"), |req| async {
                    crate::azureml::score_direct(&state, req).await
                })
                .await)
            }))
        } else {
            Either::Left(self.router.call(req))
        }
    }
}

async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = Endpoint {
        router: TowerToHyperService::new(crate::app(state.clone())),
        state: state.clone(),
    };
    let header_timeout = state.config().header_timeout;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => connection(tcp, app, header_timeout, stop).await,
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => connection(stream, app, header_timeout, stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    state.shadow_settled().await;
    if let Some(logger) = state.payload_logger() {
        logger.close().await;
    }
    for d in state.deployments() {
        if let Some(logger) = d.payload_logger() {
            logger.close().await;
        }
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Serves one connection until the client closes it, it fails, or shutdown (then the request
/// in flight finishes and the connection closes).
async fn connection<I>(
    io: I,
    app: Endpoint,
    header_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // A client may close its sending side once its request is sent and still get the
        // answer (as from the Azure ML inference server). Also, hyper no longer reads the
        // socket while a request is in flight to detect a close: that read found the read
        // buffer still shared with the request's headers and body and allocated a new 8 KiB
        // buffer for every request.
        .half_close(true);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(Coalesced::new(io)), app));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.wait_for(|s| *s), if !stopping => {
                let _ = changed;
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A connection whose answers are written after the other connections ready at the same time
/// have had their turn: the first write of each answer yields once to the runtime, so the
/// answers of one wake-up leave in a burst instead of one between every two requests scored.
/// A client waiting for several answers is then woken once per burst rather than once per
/// answer, and waking a process on another core is a good share of a one-row request's cost in
/// the kernel. At most one yield per request (the read of the next request re-arms it).
/// Vectored writes are not passed on, so hyper copies an answer's body after its head and
/// writes both with one system call (the answers are small).
struct Coalesced<I> {
    io: I,
    /// True once this answer's first write has yielded.
    yielded: bool,
}

impl<I> Coalesced<I> {
    fn new(io: I) -> Self {
        Coalesced { io, yielded: false }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Coalesced<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let filled = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(read, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > filled {
            self.yielded = false;
        }
        read
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Coalesced<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Completes at SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    tracing::info!("shutdown signal received: finishing requests in flight");
}
