//! `streamscore serve`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ml_core::ModelArtifact;
use ml_serve::{AppState, PayloadLogger, ServeConfig, ServedModel};
use ml_stream::SpecRegistry;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a registry reference (credit@prod, credit:3, credit@latest, read from
    /// --registry) or a model artifact directory.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    registry: super::registry::RegistryArg,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (the Azure ML inference server's 5001 by default); 0 picks a free port. The first
    /// line printed on standard output is the bound address, http://HOST:PORT.
    #[arg(long, default_value_t = 5001)]
    port: u16,
    /// File holding the primary key on its first line and, optionally, the secondary key on its
    /// second; clients then send `Authorization: Bearer <key>`. Without it, no authentication.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Payload log sink spec (repeatable): jsonl:DIR, stdout:, any sink spec. Requests and
    /// answers are logged off the request path; when the queue is full they are dropped and
    /// counted in /metrics.
    #[arg(long = "log-sink", value_name = "SPEC")]
    log_sinks: Vec<String>,
    /// Share of scoring requests logged to --log-sink, 0..1.
    #[arg(long, default_value_t = 1.0)]
    log_sampling_rate: f64,
    /// Requests waiting for the payload sinks before new ones are dropped.
    #[arg(long, default_value_t = 1024)]
    log_queue: usize,
    /// Scoring timeout in milliseconds (503 `Scoring timeout after N ms` beyond it).
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Longest time a client may take to send its body, in milliseconds (408 beyond it).
    #[arg(long, default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// Requests scored at once; more get 429 with Retry-After.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Largest request body in bytes (413 beyond it).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Log format on standard error: text or json. The level comes from RUST_LOG (default info).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Reads one or two keys, one per line; blank lines are ignored.
fn read_keys(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    match keys.len() {
        1 | 2 => Ok(keys),
        0 => anyhow::bail!(
            "the key file {} is empty: put the primary key on its first line",
            path.display()
        ),
        n => anyhow::bail!(
            "the key file {} has {n} keys: give the primary key and, optionally, the secondary key, one per line",
            path.display()
        ),
    }
}

fn init_logs(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Loads the model named by `--model` (blocking: registry reads and checksums).
fn load(args_model: &Path, registry: &super::registry::RegistryArg) -> anyhow::Result<ServedModel> {
    let reference = if args_model.is_dir() {
        None
    } else {
        match args_model.to_str() {
            Some(s) if s.contains('@') || s.contains(':') => Some(s.parse::<ml_registry::Reference>()?),
            _ => anyhow::bail!(
                "--model {}: neither a model directory nor a registry reference such as credit@prod",
                args_model.display()
            ),
        }
    };
    let (name, version, artifact) = match reference {
        Some(r) => {
            let (v, artifact) = super::registry::load(registry, &r)?;
            (v.name, v.version.to_string(), artifact)
        }
        None => {
            let artifact = ModelArtifact::load(args_model)?;
            let name = args_model
                .canonicalize()
                .ok()
                .as_deref()
                .and_then(Path::file_name)
                .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
            let uuid: String = artifact.mlmodel().model_uuid.chars().take(8).collect();
            (name, uuid, artifact)
        }
    };
    Ok(ServedModel::new(name, version, artifact.load_model()?)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logs(&args.log_format);
    let keys = match &args.key_file {
        Some(p) => read_keys(p)?,
        None => Vec::new(),
    };
    let config = ServeConfig {
        max_body_bytes: args.max_body_bytes,
        max_concurrent_requests: args.max_concurrent_requests,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        keys,
        payload_sampling_rate: args.log_sampling_rate,
        payload_queue_capacity: args.log_queue,
        ..ServeConfig::default()
    };
    config.check()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = args.workers {
        runtime.worker_threads(w.max(1));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        // Before the server's state: the metrics recorder that also forwards to Application
        // Insights must be installed before the server installs the plain one.
        let monitoring = super::monitoring::Monitoring::start(None).await?;
        // The first line on standard output: tests and scripts read the port from it.
        println!("http://{addr}");
        std::io::stdout().flush().ok();
        let logger = if args.log_sinks.is_empty() {
            None
        } else {
            let specs = SpecRegistry::default();
            let sinks = args
                .log_sinks
                .iter()
                .map(|s| specs.sink(s))
                .collect::<ml_stream::Result<Vec<_>>>()?;
            Some(PayloadLogger::start(
                sinks,
                config.payload_queue_capacity,
                config.payload_sampling_rate,
                Duration::from_secs(1),
            )?)
        };
        let state = AppState::with_payload_logger(config, logger)?;
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        let loader = {
            let state = state.clone();
            let model = args.model.clone();
            let registry = args.registry.clone();
            tokio::task::spawn_blocking(move || match load(&model, &registry) {
                Ok(m) => {
                    let label = format!("{}:{}", m.name, m.version);
                    state.set_model(m);
                    eprintln!(
                        "serving {label} on http://{addr} (ready {:.0} ms after start)",
                        started.elapsed().as_secs_f64() * 1e3
                    );
                }
                Err(e) => {
                    let _ = failed_tx.send(e);
                }
            })
        };
        let failure = std::sync::Arc::new(std::sync::Mutex::new(None::<anyhow::Error>));
        let shutdown = {
            let failure = failure.clone();
            async move {
                tokio::select! {
                    _ = ml_serve::shutdown_signal() => {}
                    Ok(e) = failed_rx => {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                }
            }
        };
        ml_serve::serve(listener, state, shutdown).await?;
        monitoring.stop().await;
        loader.abort();
        if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e.context("cannot load the model"));
        }
        anyhow::Ok(())
    })
}
