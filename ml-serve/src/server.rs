//! Running the server: bind, serve until a shutdown signal, finish the requests in flight,
//! flush the payload log.

use std::future::Future;

use tokio::net::TcpListener;

use crate::error::Result;
use crate::state::AppState;

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish, and closes the payload sinks.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = crate::app(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
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
