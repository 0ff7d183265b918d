//! `streamscore run`: the loop on a config — score the events, monitor, alert, retrain, gate,
//! promote, hot-swap the endpoint.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamscore::config::Config;
use streamscore::run::{
    AppInsightsEventSink, JsonlEventSink, Label, LoopEvent, LoopSettings, Orchestrator, ScoringEvent, http,
    simulate,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, default_value = "streamscore.toml")]
    pub config: PathBuf,
    /// The overlay to apply: [env.NAME].
    #[arg(long)]
    pub env: Option<String>,
    /// Events per scoring batch.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
}

/// Reads events from a `file:PATH` JSONL source: one object per line with `correlationid`,
/// `time` (ms since the epoch; default: the line number) and the features.
pub fn read_events(spec: &str) -> anyhow::Result<Vec<ScoringEvent>> {
    let path = file_spec(spec, "[stream] source")?;
    let mut out = Vec::new();
    for (i, line) in lines(&path)?.into_iter().enumerate() {
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        let serde_json::Value::Object(mut features) = value else {
            anyhow::bail!("{}:{}: expected a JSON object", path.display(), i + 1);
        };
        let id = match features.remove("correlationid") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => format!("line-{}", i + 1),
        };
        let time_ms = features
            .remove("time")
            .and_then(|t| t.as_i64())
            .unwrap_or(i as i64);
        out.push(ScoringEvent {
            correlation_id: id,
            time_ms,
            features,
        });
    }
    out.sort_by_key(|e| e.time_ms);
    Ok(out)
}

/// Reads `{correlationid, label, time}` records from a `file:PATH` JSONL source.
pub fn read_labels(spec: &str) -> anyhow::Result<Vec<Label>> {
    let path = file_spec(spec, "[labels] source")?;
    let mut out = lines(&path)?
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
            Label::from_json(&v).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    out.sort_by_key(|l| l.time_ms);
    Ok(out)
}

fn file_spec(spec: &str, what: &str) -> anyhow::Result<PathBuf> {
    spec.strip_prefix("file:")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("{what} `{spec}`: `streamscore run` reads file:PATH.jsonl sources"))
}

fn lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .filter(|l| !l.as_ref().is_ok_and(|l| l.trim().is_empty()))
        .map(|l| l.map_err(Into::into))
        .collect()
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
    let registry = open_registry(&config)?;
    let events = read_events(&stream_source(&config, &args.config)?)?;
    let labels = match config.labels.as_ref().and_then(|l| l.source.clone()) {
        Some(spec) => read_labels(&spec)?,
        None => Vec::new(),
    };
    let serve = config.serve.clone().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Before the endpoint's state: the recorder that also forwards the `metrics` signals to
    // Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING) goes in first.
    let monitoring = runtime.block_on(super::monitoring::Monitoring::start(None))?;
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
        orchestrator.add_sink(Box::new(JsonlEventSink::from_spec(&spec)?));
    }
    // AlertFired / ModelPromoted / ModelRefused custom events; sends nothing without an exporter.
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
    println!("{} events, {} labels", events.len(), labels.len());
    let refused = simulate(&mut orchestrator, &events, &labels, args.batch)?;
    let counters = orchestrator.finish();
    for line in orchestrator.timeline().iter().filter_map(describe) {
        println!("{line}");
    }
    let _ = stop.send(());
    runtime.block_on(server)??;
    runtime.block_on(monitoring.stop());
    println!(
        "scored {} events ({} refused), {} drift reports, {} alerts, {} retrains, {} promotions",
        counters.scored,
        refused,
        counters.drift_reports,
        counters.alerts,
        counters.retrains,
        counters.promotions
    );
    Ok(())
}
