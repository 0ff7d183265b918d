//! Monitoring of the commands: Prometheus `/metrics` on a port of its own
//! (`stream --metrics-port`); with the `azure` feature and `APPLICATIONINSIGHTS_CONNECTION_STRING`
//! set, Application Insights (requests, the `metrics` signals as custom metrics, custom events),
//! sent to `STREAMSCORE_APPINSIGHTS_ENDPOINT` instead of the connection string's ingestion
//! endpoint when that is set; and with `OTEL_EXPORTER_OTLP_ENDPOINT` (or a per-signal endpoint,
//! or `--otlp-endpoint`) set, the same signals to an OpenTelemetry collector over OTLP/HTTP.

use std::time::Duration;

use ml_stream::exporter::ExportStats;

/// How long the end of a command waits for the last telemetry to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// An explicit Application Insights ingestion endpoint (a proxy or a local receiver), used
/// instead of the connection string's.
const ENDPOINT_ENV: &str = "STREAMSCORE_APPINSIGHTS_ENDPOINT";

pub struct Monitoring {
    server: Option<ml_serve::telemetry::MetricsServer>,
    #[cfg(feature = "azure")]
    appinsights: Option<ml_stream::appinsights::AppInsights>,
    otlp: Option<ml_stream::otlp::Otlp>,
}

impl Monitoring {
    /// Starts what the environment and `metrics_at` (host, port) ask for, inside a runtime;
    /// Application Insights goes to `endpoint` instead of the connection string's ingestion
    /// endpoint when given (a proxy or a local receiver; not forced to https), and OTLP to
    /// `otlp_endpoint` (a command-line option) instead of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub async fn start_with(
        metrics_at: Option<(String, u16)>,
        endpoint: Option<String>,
        otlp_endpoint: Option<String>,
    ) -> anyhow::Result<Monitoring> {
        let endpoint = endpoint.or_else(|| std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.trim().is_empty()));
        // Every exporter aggregates the `metrics` signals forwarded by the Prometheus recorder.
        let mut forward = Vec::new();
        #[cfg(feature = "azure")]
        let appinsights = match (ml_stream::appinsights::ConnectionString::from_env()?, endpoint) {
            (Some(connection), endpoint) => {
                let mut options = ml_stream::appinsights::AppInsightsOptions::new(connection);
                options.endpoint = endpoint;
                let client = ml_stream::appinsights::AppInsights::start(options)?;
                client.install_global();
                forward.push(client.forward());
                eprintln!(
                    "Application Insights: sending to {}",
                    client.options().track_url()
                );
                Some(client)
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
        let otlp = match ml_stream::otlp::OtlpOptions::from_vars(otlp_endpoint.as_deref(), |k| {
            std::env::var(k).ok()
        })? {
            Some(options) => {
                let client = ml_stream::otlp::Otlp::start(options)?;
                client.install_global();
                forward.push(client.forward());
                // The URLs only: the headers (an API key) are never printed.
                let o = client.options();
                eprintln!(
                    "OTLP: sending to {}, {}, {}",
                    o.metrics_url, o.logs_url, o.traces_url
                );
                Some(client)
            }
            None => None,
        };
        if !forward.is_empty() {
            ml_serve::telemetry::install_prometheus_forwarding(forward);
        }
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
            otlp,
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
            warn_lost("Application Insights", &client.shutdown(FLUSH_TIMEOUT).await);
        }
        if let Some(client) = self.otlp {
            warn_lost("OTLP", &client.shutdown(FLUSH_TIMEOUT).await);
        }
    }
}

fn warn_lost(name: &str, stats: &ExportStats) {
    if stats.failed + stats.dropped > 0 {
        eprintln!(
            "warning: {name}: {} items sent, {} failed, {} dropped",
            stats.accepted, stats.failed, stats.dropped
        );
    }
}
