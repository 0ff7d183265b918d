//! `streamscore retrain`: one retrain-gate-promote cycle by hand, on the labelled events of
//! the config's `[stream] source` and `[labels] source`.

use std::path::PathBuf;

use streamscore::config::Config;
use streamscore::run::{LoopSettings, Orchestrator, simulate};

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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load_env(&args.config, args.env.as_deref())?;
    let mut settings = LoopSettings::from_config(&config)?;
    // By hand: no rules fire while the labelled events are read back.
    settings.rules.clear();
    settings.retrain_every = None;
    let registry = super::run::open_registry(&config)?;
    let source = super::run::stream_source(&config, &args.config)?;
    let label_source = config
        .labels
        .as_ref()
        .and_then(|l| l.source.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: [labels] source is required", args.config.display()))?;
    let events = super::run::read_events(&source)?;
    let labels = super::run::read_labels(&label_source)?;
    let state = ml_serve::AppState::new(ml_serve::ServeConfig::default())?;
    let mut orchestrator = Orchestrator::start(settings, registry, state)?;
    simulate(&mut orchestrator, &events, &[], 1_000)?;
    orchestrator.labels(&labels);
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
