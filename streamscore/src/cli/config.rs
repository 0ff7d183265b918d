//! `streamscore config check`: validate a config (every overlay) and print the effective one.

use std::path::PathBuf;

use streamscore::config::Config;
use streamscore::run::LoopSettings;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validate a config file (every [env.*] overlay too) and print the effective config as JSON.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(long, default_value = "streamscore.toml")]
    pub config: PathBuf,
    /// The overlay to apply: [env.NAME] (dev, staging, prod, ...).
    #[arg(long)]
    pub env: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ConfigCommand::Check(a) = args.command;
    let config = Config::load_env(&a.config, a.env.as_deref())?;
    LoopSettings::from_config(&config).map_err(|e| anyhow::anyhow!("in {}: {e}", a.config.display()))?;
    println!("{}", config.to_json()?);
    eprintln!(
        "{} is valid{}",
        a.config.display(),
        a.env.map(|e| format!(" with [env.{e}]")).unwrap_or_default()
    );
    Ok(())
}
