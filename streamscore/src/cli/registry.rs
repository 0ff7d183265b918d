//! `streamscore register | models | promote | show | export | import`, and the `--registry`
//! option they share with `train` and `predict`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use ml_core::ModelArtifact;
use ml_registry::{LocalRegistry, ModelRegistry, ModelVersion, Reference, RegisterOptions, mlflow, promote};

use super::parse_key_value;

/// The registry environment variable.
pub const REGISTRY_ENV: &str = "STREAMSCORE_REGISTRY";

/// `--registry`, shared by every command that touches a registry.
#[derive(Clone, Debug, clap::Args)]
pub struct RegistryArg {
    /// Model registry: a directory, or blob://CONTAINER[/PREFIX] (Azure Blob Storage, with the
    /// connection from AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_URL, or
    /// AZURE_STORAGE_ACCOUNT_URL with Entra ID credentials).
    #[arg(long = "registry", env = REGISTRY_ENV, default_value = ml_registry::local::DEFAULT_PATH, value_name = "PATH|blob://..")]
    pub location: String,
}

impl RegistryArg {
    /// The default location (for `demo`).
    pub fn new(location: impl Into<String>) -> Self {
        RegistryArg {
            location: location.into(),
        }
    }

    /// Opens the registry.
    pub fn open(&self) -> anyhow::Result<Box<dyn ModelRegistry>> {
        open(&self.location)
    }
}

/// Opens the registry at `location` (a directory or `blob://...`).
pub fn open(location: &str) -> anyhow::Result<Box<dyn ModelRegistry>> {
    if location.starts_with("blob://") {
        #[cfg(feature = "azure")]
        {
            let r = ml_registry::azure::BlobRegistry::from_location(location)?;
            block_on(r.create_container_if_missing())?;
            return Ok(Box::new(r));
        }
        #[cfg(not(feature = "azure"))]
        return Err(ml_registry::Error::Location {
            location: location.to_string(),
            reason: "this streamscore was built without Azure Blob Storage support; rebuild with `--features azure` or use a directory".into(),
        }
        .into());
    }
    if location.contains("://") {
        anyhow::bail!(
            "registry {location}: unknown scheme; use a directory path or blob://CONTAINER[/PREFIX]"
        );
    }
    Ok(Box::new(LocalRegistry::open(location)?))
}

pub(super) fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    // The Azure SDK's HTTP client needs a tokio reactor.
    #[cfg(feature = "azure")]
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
        return rt.block_on(f);
    }
    // The local registry does its I/O inside the future; no async runtime is needed.
    futures::executor::block_on(f)
}

fn parse_reference(s: &str) -> Result<Reference, String> {
    s.parse::<Reference>().map_err(|e| e.to_string())
}

/// Loads a model reference (`credit@prod`) from the registry, verified.
pub fn load(registry: &RegistryArg, reference: &Reference) -> anyhow::Result<(ModelVersion, ModelArtifact)> {
    let r = registry.open()?;
    let loaded = block_on(r.get(reference))?;
    eprintln!(
        "loaded {} (version {}) from registry {}; checksums verified",
        reference,
        loaded.version.version,
        r.location()
    );
    Ok((loaded.version, loaded.artifact))
}

/// Registers `artifact` as the next version of `name` and prints what was done.
pub fn register_artifact(
    registry: &RegistryArg,
    name: &str,
    artifact: &ModelArtifact,
    options: &RegisterOptions,
) -> anyhow::Result<ModelVersion> {
    let r = registry.open()?;
    let v = block_on(r.register(name, artifact, options))?;
    eprintln!(
        "registered {}:{} in {} (sha256 {})",
        v.name,
        v.version,
        r.location(),
        &v.sha256[..12]
    );
    Ok(v)
}

#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// Model name ([A-Za-z0-9][A-Za-z0-9._-]{0,63}).
    #[arg(long)]
    name: String,
    /// The model artifact directory (as written by `train --out`).
    dir: PathBuf,
    /// Tag as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    tags: Vec<(String, String)>,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
    /// Lineage: the version this model was retrained from.
    #[arg(long, value_name = "VERSION")]
    parent: Option<u32>,
    /// Lineage: the data it was trained on.
    #[arg(long, value_name = "DATA")]
    training_data: Option<String>,
    #[command(flatten)]
    registry: RegistryArg,
}

pub fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let artifact = ModelArtifact::load(&args.dir)?;
    let options = RegisterOptions {
        tags: args.tags.into_iter().collect::<BTreeMap<_, _>>(),
        description: args.description,
        parent_version: args.parent,
        training_data: args.training_data,
        copied_from: Vec::new(),
    };
    let v = register_artifact(&args.registry, &args.name, &artifact, &options)?;
    println!("{}:{}", v.name, v.version);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Show the versions of this model (default: every model).
    #[arg(conflicts_with = "gc")]
    name: Option<String>,
    /// Instead of listing models, delete what interrupted registrations and deletions left
    /// behind (invisible, never reused files); blob registries only touch leftovers older than
    /// --older-than, so that a registration still uploading is safe.
    #[arg(long)]
    gc: bool,
    /// With --gc: the age a blob leftover must have (e.g. 90s, 30m, 2h).
    #[arg(long, value_name = "DURATION", requires = "gc", default_value = "1h", value_parser = parse_age)]
    older_than: std::time::Duration,
    /// With --gc: only list what would be deleted.
    #[arg(long, requires = "gc")]
    dry_run: bool,
    #[command(flatten)]
    registry: RegistryArg,
}

/// `90s`, `30m`, `2h` or plain seconds.
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match s.trim().char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.trim().split_at(i),
        None => (s.trim(), "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 90s, 30m or 2h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m or h")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

/// `models --gc`: reports each leftover found, and what was done with it.
fn collect_garbage(args: &ModelsArgs) -> anyhow::Result<()> {
    let r = args.registry.open()?;
    let found = block_on(r.collect_garbage(args.older_than, args.dry_run))?;
    for l in &found {
        let age = l
            .age
            .map_or(String::new(), |a| format!(", {} s old", a.as_secs()));
        let done = if args.dry_run { "would remove" } else { "removed" };
        println!("{done} {} ({}: {}{age})", l.path, l.name, l.what);
    }
    println!(
        "{} leftover(s) {} in {}",
        found.len(),
        if args.dry_run { "found" } else { "removed" },
        r.location()
    );
    Ok(())
}

/// The metric shown in listings: ROC AUC for classifiers, else the first numeric metric.
fn key_metric(v: &ModelVersion) -> String {
    let pick = v
        .metrics
        .get_key_value("roc_auc")
        .or_else(|| v.metrics.iter().find(|(_, x)| x.is_number()));
    match pick {
        Some((k, x)) => match x.as_f64() {
            Some(f) => format!("{k} {f:.4}"),
            None => format!("{k} {x}"),
        },
        None => "-".into(),
    }
}

pub fn models(args: ModelsArgs) -> anyhow::Result<()> {
    if args.gc {
        return collect_garbage(&args);
    }
    let r = args.registry.open()?;
    let list = block_on(r.list(args.name.as_deref()))?;
    if list.is_empty() {
        println!("no models in {}", r.location());
        return Ok(());
    }
    match args.name {
        Some(_) => {
            let m = &list[0];
            println!(
                "{:<8} {:<20} {:<21} {:<18} description",
                "version", "aliases", "created", "key metric"
            );
            for v in &m.versions {
                let aliases = m.aliases_of(v.version).join(",");
                println!(
                    "{:<8} {:<20} {:<21} {:<18} {}",
                    v.version,
                    if aliases.is_empty() { "-".into() } else { aliases },
                    v.created.get(..19).unwrap_or(&v.created).replace('T', " "),
                    key_metric(v),
                    v.description.as_deref().unwrap_or("")
                );
            }
        }
        None => {
            println!(
                "{:<24} {:<9} {:<7} {:<18} aliases",
                "name", "versions", "latest", "key metric"
            );
            for m in &list {
                let latest = m.versions.last();
                let aliases: Vec<String> = m.aliases.iter().map(|(a, v)| format!("{a}→{v}")).collect();
                println!(
                    "{:<24} {:<9} {:<7} {:<18} {}",
                    m.name,
                    m.versions.len(),
                    latest.map_or("-".into(), |v| v.version.to_string()),
                    latest.map_or("-".into(), key_metric),
                    aliases.join(" ")
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The version to promote: NAME:VERSION, NAME@ALIAS or NAME@latest.
    #[arg(value_parser = parse_reference)]
    reference: Reference,
    /// Point this alias at the version (in the target registry).
    #[arg(long)]
    alias: Option<String>,
    /// Source registry (default: --registry).
    #[arg(long, value_name = "PATH|blob://..")]
    from: Option<String>,
    /// Target registry (default: --registry). A different registry gets a verified copy that
    /// records where it came from.
    #[arg(long, value_name = "PATH|blob://..")]
    to: Option<String>,
    #[command(flatten)]
    registry: RegistryArg,
}

pub fn promote_cmd(args: PromoteArgs) -> anyhow::Result<()> {
    if args.alias.is_none() && args.from.is_none() && args.to.is_none() {
        anyhow::bail!("nothing to do: give --alias ALIAS, or --from/--to to copy between registries");
    }
    let from = open(args.from.as_deref().unwrap_or(&args.registry.location))?;
    let to = open(args.to.as_deref().unwrap_or(&args.registry.location))?;
    let p = block_on(promote(
        from.as_ref(),
        &args.reference,
        to.as_ref(),
        args.alias.as_deref(),
    ))?;
    if from.location() != to.location() {
        if p.already_present {
            eprintln!(
                "{}:{} is already in {} as version {} (same sha256)",
                p.source.name,
                p.source.version,
                to.location(),
                p.target.version
            );
        } else {
            eprintln!(
                "copied {}:{} from {} to {} as version {} (sha256 {} verified)",
                p.source.name,
                p.source.version,
                from.location(),
                to.location(),
                p.target.version,
                &p.target.sha256[..12]
            );
        }
    }
    if let Some((alias, previous)) = &p.alias {
        let was = previous.map_or("new alias".to_string(), |v| format!("was {v}"));
        eprintln!("{}@{alias} → version {} ({was})", p.target.name, p.target.version);
    }
    println!("{}:{}", p.target.name, p.target.version);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// NAME:VERSION, NAME@ALIAS or NAME@latest.
    #[arg(value_parser = parse_reference)]
    reference: Reference,
    #[command(flatten)]
    registry: RegistryArg,
}

pub fn show(args: ShowArgs) -> anyhow::Result<()> {
    let (v, artifact) = load(&args.registry, &args.reference)?;
    let mut out = serde_json::to_value(&v)?;
    if let Some(map) = out.as_object_mut() {
        let flavor = artifact.mlmodel().streamscore_flavor();
        map.insert(
            "model_kind".into(),
            flavor.map(|f| f.model_kind).unwrap_or_default().into(),
        );
        map.insert("model_uuid".into(), artifact.mlmodel().model_uuid.clone().into());
        if let Some(engine) = artifact.mlmodel().metadata.get("onnx_engine") {
            map.insert("onnx_engine".into(), engine.clone().into());
        }
        map.insert(
            "attachments".into(),
            artifact.attachment_names().collect::<Vec<_>>().into(),
        );
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// NAME:VERSION, NAME@ALIAS or NAME@latest.
    #[arg(value_parser = parse_reference)]
    reference: Reference,
    /// Output directory (an MLflow model directory; must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    registry: RegistryArg,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let r = args.registry.open()?;
    let v = block_on(mlflow::export(r.as_ref(), &args.reference, &args.out))?;
    eprintln!(
        "exported {}:{} as an MLflow model directory to {}",
        v.name,
        v.version,
        args.out.display()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An MLflow model directory whose MLmodel has an `onnx` or `streamscore` flavor.
    dir: PathBuf,
    /// Register it under this name.
    #[arg(long)]
    name: String,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    registry: RegistryArg,
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let artifact =
        mlflow::import(&args.dir).with_context(|| format!("cannot import {}", args.dir.display()))?;
    let options = RegisterOptions {
        description: args.description,
        ..RegisterOptions::default()
    };
    let v = register_artifact(&args.registry, &args.name, &artifact, &options)?;
    println!("{}:{}", v.name, v.version);
    Ok(())
}
