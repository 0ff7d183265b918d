//! `streamscore serve`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use ml_core::ModelArtifact;
use ml_serve::{AppState, BatchConfig, Deployment, PayloadLogger, ServeConfig, ServedModel};
use ml_stream::SpecRegistry;

#[derive(Debug, clap::Args)]
#[command(after_long_help = LIMITS_HELP)]
pub struct Args {
    /// The model: a registry reference (credit@prod, credit:3, credit@latest, read from
    /// --registry) or a model artifact directory. A reference to an alias (or latest) is
    /// followed: when it moves, the new version is loaded, checked and swapped in. Without
    /// --model and --deployment, the model is read from AZUREML_MODEL_DIR (Azure ML).
    #[arg(long, conflicts_with = "deployments")]
    model: Option<PathBuf>,
    /// A deployment, NAME=MODEL (repeatable): several models served at once, e.g.
    /// --deployment blue=credit:3 --deployment green=credit@staging. The request header
    /// `azureml-model-deployment: NAME` pins one; answers name the deployment that answered.
    #[arg(long = "deployment", value_name = "NAME=MODEL")]
    deployments: Vec<String>,
    /// Traffic weights summing to 100, e.g. blue=90,green=10 [default: all to the first
    /// deployment]. Changed at run time with PUT /admin/traffic.
    #[arg(long)]
    traffic: Option<String>,
    /// A deployment that gets a copy of the live traffic: its answers are logged to its own
    /// collection (a jsonl: log sink gets deployment=NAME), compared with the live answers in
    /// /metrics, and never returned.
    #[arg(long)]
    shadow: Option<String>,
    /// How often a followed alias is checked, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    watch_interval_ms: u64,
    /// Adaptive batching: concurrent single-row requests scored in one model call.
    #[arg(long)]
    batching: bool,
    /// Most rows in one batched model call (with --batching).
    #[arg(long, default_value_t = 32)]
    batch_max_size: usize,
    /// Longest wait for other rows, in microseconds (with --batching).
    #[arg(long, default_value_t = 300)]
    batch_max_wait_us: u64,
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
    /// Re-read when it changes: keys rotate without a restart.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// How often the key file is checked for a change, at most, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    key_reload_ms: u64,
    /// TLS certificate chain (PEM, leaf first): serve HTTPS. Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1). Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
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
    /// Longest time a client may take to send its request line and headers (and finish the TLS
    /// handshake), in milliseconds; slower connections are closed.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Requests scored at once; more get 429 with Retry-After.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Largest request body in bytes (413 beyond it).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Worker threads [default: one per core this process may use]; with one, everything runs
    /// on the main thread (a current-thread runtime).
    #[arg(long)]
    workers: Option<usize>,
    /// Send metrics, events and request spans to this OpenTelemetry collector over OTLP/HTTP
    /// (JSON), e.g. http://localhost:4318; instead of OTEL_EXPORTER_OTLP_ENDPOINT. The other
    /// OTEL_* variables (headers, service name, resource attributes) apply.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Log format on standard error: text or json. The level comes from RUST_LOG (default info).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// The limits, on by default (shown by `streamscore serve --help`).
const LIMITS_HELP: &str = "\
Limits (on by default; each answer names the limit):
  body larger than --max-body-bytes (100 MiB)            413
  body not received within --body-timeout-ms (10 s)      408
  request line and headers not received within
    --header-timeout-ms (10 s; also the TLS handshake)   connection closed
  more than 100 header fields, or headers over ~400 KB   431
  x-request-id longer than 100 characters                431
  more than --max-concurrent-requests (512) scoring      429 with Retry-After
  scoring longer than --request-timeout-ms (5 s)         503 Scoring timeout after N ms
Keys: --key-file holds the primary and (optionally) the secondary key; it is re-read when it
changes (checked at most every --key-reload-ms), so keys rotate without a restart: clients move
to the secondary key, the primary is replaced (write a new file and rename it over the old one),
and the old key is refused from then on. Keys are compared in constant time and never logged.
TLS: --tls-cert and --tls-key (PEM) serve HTTPS (rustls); the first line printed is then
https://HOST:PORT.";

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

/// Azure ML's environment: where the registered model is mounted.
const AZUREML_MODEL_DIR: &str = "AZUREML_MODEL_DIR";
/// Azure ML's environment: the application root; relative paths resolve against it.
const AML_APP_ROOT: &str = "AML_APP_ROOT";

/// `path` resolved against `AML_APP_ROOT` when it is relative and that variable is set.
fn app_path(path: &Path) -> PathBuf {
    match std::env::var_os(AML_APP_ROOT) {
        Some(root) if path.is_relative() => PathBuf::from(root).join(path),
        _ => path.to_path_buf(),
    }
}

/// The model directory under `AZUREML_MODEL_DIR`: the directory itself when it holds an
/// `MLmodel`, or its one subdirectory (up to two levels deep, as Azure ML mounts
/// `<model-name>/<version>/...`) that does.
fn azureml_model_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        if dir.join("MLmodel").is_file() {
            found.push(dir);
            continue;
        }
        if depth < 2
            && let Ok(entries) = std::fs::read_dir(&dir)
        {
            stack.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .map(|p| (p, depth + 1)),
            );
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => anyhow::bail!(
            "{AZUREML_MODEL_DIR}={}: no model artifact (a directory with an MLmodel file) in it or two levels below",
            root.display()
        ),
        _ => anyhow::bail!(
            "{AZUREML_MODEL_DIR}={}: several model artifacts; pass --model with the one to serve",
            root.display()
        ),
    }
}

/// The deployments to serve: `(name, model)` pairs from --deployment, or the one deployment
/// of --model (or AZUREML_MODEL_DIR).
fn deployment_specs(args: &Args) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if !args.deployments.is_empty() {
        return args
            .deployments
            .iter()
            .map(|d| match d.split_once('=') {
                Some((n, m)) if !n.trim().is_empty() && !m.trim().is_empty() => {
                    Ok((n.trim().to_string(), app_path(Path::new(m.trim()))))
                }
                _ => anyhow::bail!("--deployment {d}: expected NAME=MODEL, e.g. blue=credit:3"),
            })
            .collect();
    }
    let model = match (&args.model, std::env::var_os(AZUREML_MODEL_DIR)) {
        (Some(m), _) => app_path(m),
        (None, Some(dir)) => azureml_model_dir(Path::new(&dir))?,
        (None, None) => anyhow::bail!(
            "give the model with --model (or several with --deployment NAME=MODEL), or set {AZUREML_MODEL_DIR}"
        ),
    };
    Ok(vec![(
        ml_serve::deployment::DEFAULT_DEPLOYMENT.to_string(),
        model,
    )])
}

/// The weights of --traffic, one per deployment in order; all to the first without it.
fn traffic(spec: Option<&str>, names: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut weights = vec![0u32; names.len()];
    let Some(spec) = spec else {
        weights[0] = 100;
        return Ok(weights);
    };
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--traffic {spec}: expected NAME=WEIGHT,..., e.g. blue=90,green=10")
        })?;
        let i = names.iter().position(|n| n == name.trim()).ok_or_else(|| {
            anyhow::anyhow!(
                "--traffic {spec}: no deployment `{name}`; the deployments are {}",
                names.join(", ")
            )
        })?;
        weights[i] = w.trim().parse().map_err(|_| {
            anyhow::anyhow!("--traffic {spec}: the weight of `{name}` must be an integer from 0 to 100")
        })?;
    }
    Ok(weights)
}

/// The reference to follow, when `model` names a registry alias or latest.
fn followed(model: &Path) -> Option<ml_registry::Reference> {
    if model.is_dir() {
        return None;
    }
    let r = model.to_str()?.parse::<ml_registry::Reference>().ok()?;
    (!matches!(r.selector, ml_registry::Selector::Version(_))).then_some(r)
}

/// The log sink spec of the shadow deployment's own collection: a `jsonl:` spec gets
/// `deployment=NAME` (unless it names a deployment), so its files go to
/// `DIR/{endpoint}/NAME/model_outputs/...`; other specs are used as given.
fn shadow_spec(spec: &str, name: &str) -> String {
    if spec.starts_with("jsonl:") && !spec.contains("deployment=") {
        let sep = if spec.contains('?') { '&' } else { '?' };
        format!("{spec}{sep}deployment={name}")
    } else {
        spec.to_string()
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logs(&args.log_format);
    let key_file = args.key_file.as_deref().map(app_path);
    if let Some(p) = &key_file {
        // Checked here too, so a bad key file is the one-line error before anything starts.
        ml_serve::keys::read_key_file(p)?;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ml_serve::tls_config(&app_path(cert), &app_path(key))?),
        _ => None,
    };
    let specs = deployment_specs(&args)?;
    let names: Vec<String> = specs.iter().map(|(n, _)| n.clone()).collect();
    let weights = traffic(args.traffic.as_deref(), &names)?;
    let config = ServeConfig {
        max_body_bytes: args.max_body_bytes,
        max_concurrent_requests: args.max_concurrent_requests,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        key_file,
        key_reload_interval: Duration::from_millis(args.key_reload_ms),
        payload_sampling_rate: args.log_sampling_rate,
        payload_queue_capacity: args.log_queue,
        batching: args.batching.then(|| BatchConfig {
            max_batch: args.batch_max_size,
            max_wait: Duration::from_micros(args.batch_max_wait_us),
            ..BatchConfig::default()
        }),
        ..ServeConfig::default()
    };
    config.check()?;
    // One worker: a current-thread runtime, where accepting, reading, scoring and writing all
    // happen on the one thread, with no hand-over between threads (a server pinned to one core
    // answers more requests that way, see the README's serving section). The cores this
    // process may use count (taskset, cgroup limits), not the machine's.
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
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
        let monitoring =
            super::monitoring::Monitoring::start_with(None, None, args.otlp_endpoint.clone()).await?;
        // The first line on standard output: tests and scripts read the port from it.
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("{scheme}://{addr}");
        std::io::stdout().flush().ok();
        let sink_specs = SpecRegistry::default();
        let start_logger = |specs: Vec<String>| -> anyhow::Result<Option<PayloadLogger>> {
            if specs.is_empty() {
                return Ok(None);
            }
            let sinks = specs
                .iter()
                .map(|s| sink_specs.sink(s))
                .collect::<ml_stream::Result<Vec<_>>>()?;
            Ok(Some(PayloadLogger::start(
                sinks,
                config.payload_queue_capacity,
                config.payload_sampling_rate,
                Duration::from_secs(1),
            )?))
        };
        let logger = start_logger(args.log_sinks.clone())?;
        let mut deployments = Vec::new();
        for (name, weight) in names.iter().zip(&weights) {
            let mut d = Deployment::new(name.clone())?;
            if args.shadow.as_deref() == Some(name.as_str())
                && let Some(l) = start_logger(args.log_sinks.iter().map(|s| shadow_spec(s, name)).collect())?
            {
                d = d.with_payload_logger(l);
            }
            deployments.push((d, *weight));
        }
        // A seed per server, so replicas behind one load balancer do not draw in lockstep.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let state = AppState::with_deployments(config, logger, deployments, args.shadow.as_deref(), seed)?;
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        let loader = {
            let state = state.clone();
            let registry = args.registry.clone();
            let interval = Duration::from_millis(args.watch_interval_ms.max(1));
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let mut followers = Vec::new();
                for (name, model) in &specs {
                    let Some(d) = state.deployment(name) else { continue };
                    match load(model, &registry) {
                        Ok(m) => {
                            let label = format!("{}:{}", m.name, m.version);
                            d.set_model(m);
                            eprintln!(
                                "serving {label} as deployment {name} on {scheme}://{addr} (ready {:.0} ms after start)",
                                started.elapsed().as_secs_f64() * 1e3
                            );
                        }
                        Err(e) => {
                            let _ = failed_tx.send(e.context(format!("deployment {name}")));
                            return followers;
                        }
                    }
                    if let Some(reference) = followed(model) {
                        match registry.open() {
                            Ok(r) => {
                                let _guard = handle.enter();
                                followers.push(ml_serve::deployment::follow(d, r.into(), reference, interval));
                            }
                            Err(e) => eprintln!("warning: deployment {name}: cannot open the registry to follow {reference}: {e}"),
                        }
                    }
                }
                followers
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
        match tls {
            Some(tls) => ml_serve::serve_tls(listener, tls, state, shutdown).await?,
            None => ml_serve::serve(listener, state, shutdown).await?,
        }
        monitoring.stop().await;
        loader.abort();
        if let Ok(followers) = loader.await {
            followers.iter().for_each(tokio::task::JoinHandle::abort);
        }
        if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e.context("cannot load the model"));
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_weights_follow_the_deployment_order_and_name_mistakes() {
        let names = ["blue".to_string(), "green".to_string()];
        assert_eq!(traffic(Some("green=10, blue=90"), &names).unwrap(), vec![90, 10]);
        assert_eq!(traffic(None, &names).unwrap(), vec![100, 0]);
        let e = traffic(Some("purple=10"), &names).unwrap_err().to_string();
        assert!(
            e.contains("no deployment `purple`") && e.contains("blue, green"),
            "{e}"
        );
        assert!(traffic(Some("blue:90"), &names).is_err());
        assert!(traffic(Some("blue=ninety"), &names).is_err());
    }

    #[test]
    fn the_shadow_gets_its_own_deployment_path_in_jsonl_sinks() {
        assert_eq!(
            shadow_spec("jsonl:logs/", "green"),
            "jsonl:logs/?deployment=green"
        );
        assert_eq!(
            shadow_spec("jsonl:logs/?endpoint=credit", "green"),
            "jsonl:logs/?endpoint=credit&deployment=green"
        );
        assert_eq!(
            shadow_spec("jsonl:logs/?deployment=x", "green"),
            "jsonl:logs/?deployment=x"
        );
        assert_eq!(shadow_spec("stdout:", "green"), "stdout:");
    }

    #[test]
    fn the_model_is_found_under_azureml_model_dir() {
        let root = tempfile::tempdir().unwrap();
        let e = azureml_model_dir(root.path()).unwrap_err().to_string();
        assert!(e.contains("no model artifact"), "{e}");
        // Azure ML mounts <model-name>/<version>/...
        let dir = root.path().join("credit").join("3");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("MLmodel"), "artifact_path: model\n").unwrap();
        assert_eq!(azureml_model_dir(root.path()).unwrap(), dir);
        std::fs::create_dir_all(root.path().join("other")).unwrap();
        std::fs::write(root.path().join("other").join("MLmodel"), "").unwrap();
        assert!(
            azureml_model_dir(root.path())
                .unwrap_err()
                .to_string()
                .contains("several")
        );
    }
}
