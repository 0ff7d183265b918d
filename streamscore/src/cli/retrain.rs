//! `streamscore retrain`: one retrain-gate-promote cycle by hand, on the labelled events of
//! the config's `[stream] source` and `[labels] source`.

use std::path::PathBuf;

use streamscore::config::Config;
use streamscore::run::{LoopSettings, Orchestrator, feed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, default_value = "streamscore.toml")]
    pub config: PathBuf,
    /// The overlay to apply: [env.NAME].
    #[arg(long)]
    pub env: Option<String>,
    /// The reason recorded with the new version.
    #[arg(long, default_value = "manual retrain")]
    pub reason: String,
    /// Read at most this many events (default: until the source ends).
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Stop reading when a source gave nothing for this many milliseconds.
    #[arg(long)]
    pub idle_ms: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load_env(&args.config, args.env.as_deref())?;
    let mut settings = LoopSettings::from_config(&config)?;
    // By hand: no rules fire while the labelled events are read back.
    settings.rules.clear();
    settings.retrain_every = None;
    if config.labels.as_ref().and_then(|l| l.source.as_ref()).is_none() {
        anyhow::bail!("{}: [labels] source is required", args.config.display());
    }
    let options = super::run::feed_options(&config, &settings, None, args.max_events, args.idle_ms);
    let state = ml_serve::AppState::new(ml_serve::ServeConfig::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The Blob registry's HTTP client runs on this runtime, also when the loop calls it.
    let _entered = runtime.enter();
    let registry = super::run::open_registry(&config)?;
    let mut orchestrator = Orchestrator::start(settings, registry, state)?;
    let mut io = runtime.block_on(async { super::run::loop_io(&config, &args.config) })?;
    // Reading the labelled events back is not scoring: nothing goes to the inference sinks.
    io.sinks.clear();
    let fed = runtime.block_on(feed(&mut orchestrator, &mut io, &options))?;
    println!("{}", super::run::describe_feed(&fed));
    let counters = orchestrator.retrain_now(&args.reason);
    for line in orchestrator.timeline().iter().filter_map(super::run::describe) {
        println!("{line}");
    }
    if counters.retrains == 0 {
        anyhow::bail!(
            "no retrain ran: {} labelled events joined, {} needed ([retrain] min_labelled)",
            counters.labels.matched,
            orchestrator_min(&config)
        );
    }
    Ok(())
}

fn orchestrator_min(config: &Config) -> usize {
    LoopSettings::from_config(config)
        .map(|s| s.min_labelled)
        .unwrap_or(0)
}
