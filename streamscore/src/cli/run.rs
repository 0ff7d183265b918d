//! `streamscore run`: the loop on a config — score the events, monitor, alert, retrain, gate,
//! promote, hot-swap the endpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use streamscore::config::Config;
use streamscore::run::{
    AppInsightsEventSink, FeedOptions, FeedReport, JsonlEventSink, LoopEvent, LoopIo, LoopSettings,
    Orchestrator, feed, http,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, default_value = "streamscore.toml")]
    pub config: PathBuf,
    /// The overlay to apply: [env.NAME].
    #[arg(long)]
    pub env: Option<String>,
    /// Events per scoring batch (default: `[stream] batch_size`, else 500).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Stop after this many events (default: when the source ends; Kafka and Event Hubs
    /// sources do not end by themselves).
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Stop when the event source gave nothing for this many milliseconds.
    #[arg(long)]
    pub idle_ms: Option<u64>,
}

/// The feed's options from the flags and `[stream]`.
pub(super) fn feed_options(
    config: &Config,
    settings: &LoopSettings,
    batch: Option<usize>,
    max_events: Option<u64>,
    idle_ms: Option<u64>,
) -> FeedOptions {
    let stream = config.stream.clone().unwrap_or_default();
    FeedOptions {
        batch: batch.or(stream.batch_size).unwrap_or(500),
        max_wait: Duration::from_millis(stream.max_wait_ms.unwrap_or(200)),
        max_events,
        idle: idle_ms.map(Duration::from_millis),
        model_name: settings.retrain.model_name.clone(),
    }
}

/// The events and labels sources of the config, with the sinks and the dead letter.
pub(super) fn loop_io(config: &Config, file: &Path) -> anyhow::Result<LoopIo> {
    stream_source(config, file)?;
    LoopIo::from_config(config, &ml_stream::SpecRegistry::default())
}

/// The `endpoint` of an `appinsights:` spec among the `[monitor] sinks`, if any.
fn appinsights_endpoint(config: &Config) -> anyhow::Result<Option<String>> {
    monitor_sink_endpoint(config, "appinsights:")
}

/// The `endpoint` of the first `[monitor] sinks` spec with `scheme`, if any.
fn monitor_sink_endpoint(config: &Config, scheme: &str) -> anyhow::Result<Option<String>> {
    for spec in config.monitor.iter().flat_map(|m| &m.sinks) {
        if spec.starts_with(scheme) {
            let spec = ml_stream::Spec::parse(spec)?;
            spec.only_params(&["endpoint"])?;
            return Ok(spec.params.get("endpoint").cloned());
        }
    }
    Ok(None)
}

/// The OTLP base endpoint of an `otlp:?endpoint=URL` spec among the `[monitor] sinks`. A bare
/// `otlp:` asks for the OTEL_* variables, and is refused when they name no endpoint.
fn otlp_endpoint(config: &Config) -> anyhow::Result<Option<String>> {
    let endpoint = monitor_sink_endpoint(config, "otlp:")?;
    let named = config
        .monitor
        .iter()
        .flat_map(|m| &m.sinks)
        .any(|s| s.starts_with("otlp:"));
    if named && endpoint.is_none() && ml_stream::otlp::OtlpOptions::from_env()?.is_none() {
        anyhow::bail!(
            "[monitor] sinks names `otlp:` but no collector is set: give `otlp:?endpoint=http://HOST:4318` or set {}",
            ml_stream::otlp::ENDPOINT_ENV
        );
    }
    Ok(endpoint)
}

/// One line of what the feed did.
pub(super) fn describe_feed(r: &FeedReport) -> String {
    format!(
        "read {} events ({} to the dead letter), wrote {} records to the sinks, read {} labels ({} not valid)",
        r.events_read, r.dead_letters, r.records_written, r.labels_read, r.bad_labels
    )
}

/// One timeline line for an event, or `None` for the routine ones.
pub fn describe(e: &LoopEvent) -> Option<String> {
    let f = &e.fields;
    let s = |k: &str| {
        f.get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let text = match e.kind.as_str() {
        "serving" => format!("serving version {} (@{})", s("version"), s("alias")),
        "alert" => format!("ALERT {} → {}", s("reason"), s("action")),
        "alert_suppressed" => return None,
        "retrain_started" => format!(
            "retrain started off the scoring path: {} (parent v{})",
            s("data"),
            s("parent")
        ),
        "registered" => format!(
            "registered v{} (parent v{}) reason: {}",
            s("version"),
            s("parent"),
            s("reason")
        ),
        "gate" => format!("gate: {}", s("decision")),
        "promoted" => format!("promoted v{} to @{}", s("version"), s("alias")),
        "not_promoted" => format!("v{} not promoted", s("version")),
        "swapped" => format!("endpoint hot-swapped v{} → v{}", s("from"), s("to")),
        "retrain_failed" => format!("retrain failed: {}", s("error")),
        "action" | "action_failed" => format!("{}: {}", s("action"), s("message") + &s("error")),
        _ => return None,
    };
    Some(format!("  event {:>7}  {text}", e.at_event))
}

/// The registry of the config's `[registry] path` (the local default when unset).
pub(super) fn open_registry(config: &Config) -> anyhow::Result<Arc<dyn ml_registry::ModelRegistry>> {
    let location = config
        .registry
        .as_ref()
        .and_then(|r| r.path.clone())
        .unwrap_or_else(|| ml_registry::local::DEFAULT_PATH.to_string());
    Ok(Arc::from(super::registry::open(&location)?))
}

/// The config's `[stream] source`, required by the loop's commands.
pub(super) fn stream_source(config: &Config, file: &Path) -> anyhow::Result<String> {
    config
        .stream
        .as_ref()
        .and_then(|s| s.source.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: [stream] source is required", file.display()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load_env(&args.config, args.env.as_deref())?;
    let settings = LoopSettings::from_config(&config)?;
    let options = feed_options(&config, &settings, args.batch, args.max_events, args.idle_ms);
    let serve = config.serve.clone().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The Blob registry's HTTP client runs on this runtime, also when the loop calls it.
    let _entered = runtime.enter();
    let registry = open_registry(&config)?;
    // Before the endpoint's state: the recorder that also forwards the `metrics` signals to
    // Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING) goes in first.
    // `appinsights:?endpoint=URL` among the [monitor] sinks: the loop's telemetry goes there.
    // `otlp:` (`?endpoint=URL`) among them: the same telemetry to an OpenTelemetry collector.
    let endpoint = appinsights_endpoint(&config)?;
    let otlp = otlp_endpoint(&config)?;
    let monitoring = runtime.block_on(super::monitoring::Monitoring::start_with(None, endpoint, otlp))?;
    let state = ml_serve::AppState::new(ml_serve::ServeConfig {
        keys: serve.keys.clone(),
        ..Default::default()
    })?;
    let mut orchestrator = Orchestrator::start(settings, registry, state.clone())?;
    for spec in config
        .monitor
        .as_ref()
        .map(|m| m.sinks.clone())
        .unwrap_or_default()
    {
        // Application Insights and OTLP get the loop's events below in any case.
        if !spec.starts_with("appinsights:") && !spec.starts_with("otlp:") {
            orchestrator.add_sink(Box::new(JsonlEventSink::from_spec(&spec)?));
        }
    }
    // AlertFired / ModelPromoted / ModelRefused events; sends nothing without an exporter.
    orchestrator.add_sink(Box::new(AppInsightsEventSink));
    let host = serve.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let listener = runtime.block_on(tokio::net::TcpListener::bind((
        host.as_str(),
        serve.port.unwrap_or(0),
    )))?;
    println!("endpoint listening on http://{}", listener.local_addr()?);
    let route = serve.alert_key.clone().map(|key| http::AlertRoute {
        key,
        trigger: orchestrator.trigger_handle(),
        action: "retrain".into(),
    });
    let app = http::router(state, route);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    // Built inside the runtime: Kafka and Blob sources start their clients on it.
    let mut io = runtime.block_on(async { loop_io(&config, &args.config) })?;
    println!("reading events from {}", io.events.describe());
    let fed = runtime.block_on(feed(&mut orchestrator, &mut io, &options));
    let counters = orchestrator.finish();
    for line in orchestrator.timeline().iter().filter_map(describe) {
        println!("{line}");
    }
    let _ = stop.send(());
    runtime.block_on(server)??;
    runtime.block_on(monitoring.stop());
    let fed = fed?;
    println!("{}", describe_feed(&fed));
    println!(
        "scored {} events ({} refused), {} labels joined, {} drift reports, {} alerts, {} retrains, {} promotions",
        counters.scored,
        counters.failed,
        counters.labels.matched,
        counters.drift_reports,
        counters.alerts,
        counters.retrains,
        counters.promotions
    );
    Ok(())
}
