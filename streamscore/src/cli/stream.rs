//! `streamscore stream`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use ml_stream::{PipelineConfig, SpecRegistry};
use streamscore::config::{Config, StreamSection};
use streamscore::stream::{StreamRequest, build, build_with_artifact};

use super::thousands;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model artifact directory, or a registry reference such as credit@prod, credit:3 or
    /// credit@latest (read from --registry).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    registry: super::registry::RegistryArg,
    /// Source spec: file:PATH (JSONL or CSV), dir:PATH, stdin:, kafka://HOST:PORT/TOPIC?group=G,
    /// eventhubs://ENV_VAR?group=G, ... (see the README's spec grammar).
    #[arg(long)]
    source: Option<String>,
    /// Keep reading the source file as it grows (adds ?follow=true to a file: source).
    #[arg(long)]
    follow: bool,
    /// Sink spec (repeatable): jsonl:DIR, stdout:, ...
    #[arg(long = "sink")]
    sinks: Vec<String>,
    /// Dead-letter sink spec (default: dead letters are printed to standard error).
    #[arg(long)]
    dead_letter: Option<String>,
    /// Most events per batch [default: 512].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Longest wait to fill a batch, in milliseconds [default: 20].
    #[arg(long)]
    max_wait_ms: Option<u64>,
    /// Longest time between commits of the source position, in milliseconds [default: 5000].
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// Also commit after this many events.
    #[arg(long)]
    commit_every: Option<u64>,
    /// Batches queued between reading and scoring [default: 4].
    #[arg(long)]
    queue_capacity: Option<usize>,
    /// Batches scored at once [default: 2].
    #[arg(long)]
    in_flight: Option<usize>,
    /// A streamscore.toml whose [stream] section gives defaults for these flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    /// Score with a remote endpoint instead of a local model: its base URL (http://host:5001),
    /// called with the Azure ML contract ({"data": rows} to /score); schema from its swagger.
    #[arg(long, value_name = "URL", conflicts_with = "model")]
    remote: Option<String>,
    /// Key file for --remote: the key (or token) on its first line, sent as a Bearer token.
    #[arg(long, requires = "remote")]
    key_file: Option<PathBuf>,
    /// Rows per request to --remote, 1..10000 [default: 1000, as Stream Analytics].
    #[arg(long, requires = "remote")]
    remote_batch_size: Option<usize>,
    /// Requests in flight to --remote at once [default: 1].
    #[arg(long, requires = "remote")]
    parallel_requests: Option<usize>,
    /// Serve Prometheus metrics (GET /metrics) on this port while streaming; 0 picks a free
    /// port. The address is printed.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Address the --metrics-port server binds.
    #[arg(long, default_value = "127.0.0.1")]
    metrics_host: String,
    /// Send metrics, events and request spans to this OpenTelemetry collector over OTLP/HTTP
    /// (JSON), e.g. http://localhost:4318; instead of OTEL_EXPORTER_OTLP_ENDPOINT. The other
    /// OTEL_* variables (headers, service name, resource attributes) apply.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

/// The remote scorer settings from the flags, when --remote is given.
fn remote_config(args: &Args) -> anyhow::Result<Option<ml_stream::RemoteConfig>> {
    let Some(url) = &args.remote else {
        return Ok(None);
    };
    let mut config = ml_stream::RemoteConfig::new(url.clone());
    if let Some(path) = &args.key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?;
        let key = text.lines().map(str::trim).find(|l| !l.is_empty());
        config.key = Some(
            key.with_context(|| format!("the key file {} is empty", path.display()))?
                .to_string(),
        );
    }
    if let Some(b) = args.remote_batch_size {
        config.batch_size = b;
    }
    if let Some(p) = args.parallel_requests {
        config.parallel_requests = p;
    }
    config.check()?;
    Ok(Some(config))
}

fn merge(args: Args) -> anyhow::Result<(StreamRequest, bool, Option<ml_stream::RemoteConfig>)> {
    let remote = remote_config(&args)?;
    let section = match &args.config {
        Some(path) => Config::load(path)?.stream.unwrap_or_default(),
        None => StreamSection::default(),
    };
    let defaults = PipelineConfig::default();
    let model = match args.model.or(section.model.map(PathBuf::from)) {
        Some(m) => m,
        None if remote.is_some() => PathBuf::new(),
        None => anyhow::bail!(
            "no model: pass --model DIR or --remote URL (or set model in the [stream] section of --config)"
        ),
    };
    let mut source = args
        .source
        .or(section.source)
        .context("no source: pass --source SPEC, e.g. --source file:events.jsonl")?;
    if args.follow {
        if !source.starts_with("file:") {
            anyhow::bail!("--follow applies to file: sources only");
        }
        source.push_str(if source.contains('?') {
            "&follow=true"
        } else {
            "?follow=true"
        });
    }
    let sinks = if args.sinks.is_empty() {
        section.sinks
    } else {
        args.sinks
    };
    if sinks.is_empty() {
        anyhow::bail!("no sink: pass --sink SPEC at least once, e.g. --sink jsonl:logs/");
    }
    let ms = Duration::from_millis;
    let config = PipelineConfig {
        batch_size: args
            .batch_size
            .or(section.batch_size)
            .unwrap_or(defaults.batch_size),
        max_wait: args
            .max_wait_ms
            .or(section.max_wait_ms)
            .map_or(defaults.max_wait, ms),
        commit_interval: args
            .commit_interval_ms
            .or(section.commit_interval_ms)
            .map_or(defaults.commit_interval, ms),
        commit_every: args.commit_every.or(section.commit_every),
        queue_capacity: args
            .queue_capacity
            .or(section.queue_capacity)
            .unwrap_or(defaults.queue_capacity),
        in_flight: args.in_flight.or(section.in_flight).unwrap_or(defaults.in_flight),
        ..defaults
    };
    let request = StreamRequest {
        model,
        source,
        sinks,
        dead_letter: args.dead_letter.or(section.dead_letter),
        config,
    };
    Ok((request, args.quiet, remote))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let registry = args.registry.clone();
    let metrics_at = args.metrics_port.map(|port| (args.metrics_host.clone(), port));
    let otlp_endpoint = args.otlp_endpoint.clone();
    let (request, quiet, remote) = merge(args)?;
    // A registry reference is resolved (and its checksums verified) before streaming starts.
    let from_registry = match &remote {
        Some(_) => None,
        None => match super::predict::registry_reference(&request.model)? {
            Some(reference) => {
                let (version, artifact) = super::registry::load(&registry, &reference)?;
                Some((version.name.clone(), version.version.to_string(), artifact))
            }
            None => None,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let monitoring =
            super::monitoring::Monitoring::start_with(metrics_at, None, otlp_endpoint).await?;
        let specs = SpecRegistry::default();
        let scored_by = match (&remote, &from_registry) {
            (Some(r), _) => r.url.clone(),
            (None, Some((name, version, _))) => format!("{name}:{version}"),
            (None, None) => request.model.display().to_string(),
        };
        let (pipeline, source) = match (remote, &from_registry) {
            (Some(r), _) => streamscore::stream::build_remote(&request, r, &specs).await?,
            (None, Some((name, version, artifact))) => {
                build_with_artifact(&request, artifact, name, version, &specs)?
            }
            (None, None) => build(&request, &specs)?,
        };
        let counters = pipeline.counters();
        let shutdown = pipeline.shutdown_handle();
        eprintln!(
            "streaming {} → {} with model {} (batch {}, commit every {} ms)",
            request.source,
            request.sinks.join(", "),
            scored_by,
            request.config.batch_size,
            request.config.commit_interval.as_millis()
        );
        // SIGINT / SIGTERM: stop reading, finish in-flight batches, flush, commit.
        let signals = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
                }
                eprintln!("\nshutting down: finishing in-flight batches, flushing sinks, committing");
                shutdown.shutdown();
            }
        });
        let started = Instant::now();
        let progress = (!quiet).then(|| {
            let counters = counters.clone();
            // On a terminal the line updates in place every second; in a log, a line every 10 s.
            let tty = std::io::stderr().is_terminal();
            let (every, end) = if tty { (1, "\r") } else { (10, "\n") };
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(every));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let secs = started.elapsed().as_secs_f64();
                    let n = counters.records_out.load(Ordering::Relaxed);
                    eprint!(
                        "{end}{} events in, {} scored, {} dead letters, {:.0} events/s, {} commits, lag {}   ",
                        thousands(counters.events_in.load(Ordering::Relaxed) as usize),
                        thousands(n as usize),
                        thousands(counters.dead_letters.load(Ordering::Relaxed) as usize),
                        n as f64 / secs.max(1e-9),
                        counters.commits.load(Ordering::Relaxed),
                        thousands(counters.lag.load(Ordering::Relaxed) as usize)
                    );
                    let _ = std::io::stderr().flush();
                }
            })
        });
        let result = pipeline.run(source).await;
        signals.abort();
        if let Some(p) = progress {
            p.abort();
            if std::io::stderr().is_terminal() {
                eprintln!();
            }
        }
        monitoring.stop().await;
        let report = result?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "done: {} events in, {} scored, {} dead letters, {} commits in {:.2} s ({:.0} events/s)",
            thousands(report.events_in as usize),
            thousands(report.records_out as usize),
            thousands(report.dead_letters as usize),
            report.commits,
            secs,
            report.events_in as f64 / secs.max(1e-9)
        );
        anyhow::Ok(())
    })
}
