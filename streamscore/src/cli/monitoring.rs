//! Monitoring of the long-running commands: Prometheus `/metrics` on a port of its own
//! (`stream --metrics-port`) and, with the `azure` feature and
//! `APPLICATIONINSIGHTS_CONNECTION_STRING` set, Application Insights (requests, the `metrics`
//! signals as custom metrics, custom events), sent to `STREAMSCORE_APPINSIGHTS_ENDPOINT` instead
//! of the connection string's ingestion endpoint when that is set.

#[cfg(feature = "azure")]
use std::time::Duration;

/// How long the end of a command waits for the last telemetry to be sent.
#[cfg(feature = "azure")]
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// An explicit Application Insights ingestion endpoint (a proxy or a local receiver), used
/// instead of the connection string's.
const ENDPOINT_ENV: &str = "STREAMSCORE_APPINSIGHTS_ENDPOINT";

pub struct Monitoring {
    server: Option<ml_serve::telemetry::MetricsServer>,
    #[cfg(feature = "azure")]
    appinsights: Option<ml_stream::appinsights::AppInsights>,
}

impl Monitoring {
    /// Starts what the environment and `metrics_at` (host, port) ask for; inside a runtime.
    pub async fn start(metrics_at: Option<(String, u16)>) -> anyhow::Result<Monitoring> {
        Monitoring::start_to(metrics_at, None).await
    }

    /// [`Monitoring::start`], with Application Insights sent to `endpoint` instead of the
    /// connection string's ingestion endpoint (a proxy or a local receiver; not forced to https).
    pub async fn start_to(
        metrics_at: Option<(String, u16)>,
        endpoint: Option<String>,
    ) -> anyhow::Result<Monitoring> {
        let endpoint = endpoint.or_else(|| std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.trim().is_empty()));
        #[cfg(feature = "azure")]
        let client = match (ml_stream::appinsights::ConnectionString::from_env()?, endpoint) {
            (Some(connection), endpoint) => {
                let mut options = ml_stream::appinsights::AppInsightsOptions::new(connection);
                options.endpoint = endpoint;
                Some(ml_stream::appinsights::AppInsights::start(options)?)
            }
            (None, Some(_)) => anyhow::bail!(
                "an Application Insights endpoint is given but APPLICATIONINSIGHTS_CONNECTION_STRING is not set"
            ),
            (None, None) => None,
        };
        #[cfg(not(feature = "azure"))]
        if endpoint.is_some() {
            anyhow::bail!(
                "this streamscore was built without Application Insights; rebuild with `--features azure`"
            );
        }
        #[cfg(feature = "azure")]
        let appinsights = match client {
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
