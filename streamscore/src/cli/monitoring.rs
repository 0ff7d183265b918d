//! Monitoring of the long-running commands: Prometheus `/metrics` on a port of its own
//! (`stream --metrics-port`) and, with the `azure` feature and
//! `APPLICATIONINSIGHTS_CONNECTION_STRING` set, Application Insights (requests, the `metrics`
//! signals as custom metrics, custom events).

#[cfg(feature = "azure")]
use std::time::Duration;

/// How long the end of a command waits for the last telemetry to be sent.
#[cfg(feature = "azure")]
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Monitoring {
    server: Option<ml_serve::telemetry::MetricsServer>,
    #[cfg(feature = "azure")]
    appinsights: Option<ml_stream::appinsights::AppInsights>,
}

impl Monitoring {
    /// Starts what the environment and `metrics_at` (host, port) ask for; inside a runtime.
    pub async fn start(metrics_at: Option<(String, u16)>) -> anyhow::Result<Monitoring> {
        #[cfg(feature = "azure")]
        let appinsights = match ml_stream::appinsights::AppInsights::from_env()? {
            Some(client) => {
                client.install_global();
                ml_serve::telemetry::install_prometheus_with(&client);
                eprintln!(
                    "Application Insights: sending to {}",
                    client.options().track_url()
                );
                Some(client)
            }
            None => None,
        };
        let server = match metrics_at {
            Some((host, port)) => {
                let server = ml_serve::telemetry::MetricsServer::start(&host, port)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot serve metrics on {host}:{port}: {e}"))?;
                eprintln!("metrics on http://{}/metrics", server.addr());
                Some(server)
            }
            None => None,
        };
        Ok(Monitoring {
            server,
            #[cfg(feature = "azure")]
            appinsights,
        })
    }

    /// Stops the metrics server and sends the last telemetry (bounded in time).
    pub async fn stop(self) {
        if let Some(server) = self.server
            && let Err(e) = server.stop().await
        {
            eprintln!("warning: the metrics server stopped with an error: {e}");
        }
        #[cfg(feature = "azure")]
        if let Some(client) = self.appinsights {
            let stats = client.shutdown(FLUSH_TIMEOUT).await;
            if stats.failed + stats.dropped > 0 {
                eprintln!(
                    "warning: Application Insights: {} items sent, {} failed, {} dropped",
                    stats.accepted, stats.failed, stats.dropped
                );
            }
        }
    }
}
