//! The model registry of streamscore: named models with integer versions, aliases (`dev`,
//! `staging`, `prod`, or any), lineage, and promotion between registries.
//!
//! - [`ModelRegistry`] — the async, object-safe trait: register a [`ModelArtifact`] and get
//!   the next version, get by [`Reference`] (`name:3`, `name@prod`, `name@latest`), list,
//!   move aliases, delete versions, watch an alias.
//! - [`LocalRegistry`] — the embedded default: a directory tree (default
//!   `./.streamscore/registry`), safe for several processes at once.
//! - [`promote()`] — copies a version from one registry to another (dev → staging → prod),
//!   keeping its checksums, metrics and lineage.
//! - [`mlflow`] — export a version as an MLflow model directory, import one.
//!
//! One design decision shapes the rest: **a version becomes visible by one atomic step**
//! (a directory rename on a filesystem, a conditional write on a blob store), taken while the
//! writer holds the model's lock, after every file of the version is durable. A reader therefore
//! sees a version whole or not at all, and a writer that dies at any point leaves nothing that a
//! reader or the next writer can trip over.
//!
//! # Example
//! ```
//! use ml_core::{CsvTable, Estimator, InferOptions, ModelArtifact, ReadOptions};
//! use ml_registry::{LocalRegistry, ModelRegistry, RegisterOptions};
//!
//! let csv = "income,churn\n20,1\n80,0\n25,1\n70,0\n30,1\n90,0\n";
//! let table = CsvTable::read(csv.as_bytes(), "customers.csv")?;
//! let data = table.to_frame(table.infer_schema(&InferOptions::default())?, &ReadOptions::default())?;
//! let model = Estimator::from_name("logistic_regression", &[])?.fit(&data, "churn")?;
//! let artifact = ModelArtifact::from_native(&model)?;
//!
//! let dir = tempfile::tempdir()?;
//! let registry = LocalRegistry::open(dir.path())?;
//! futures::executor::block_on(async {
//!     let v1 = registry.register("churn", &artifact, &RegisterOptions::default()).await?;
//!     assert_eq!(v1.version, 1);
//!     registry.set_alias("churn", "prod", 1).await?;
//!     let prod = registry.get(&"churn@prod".parse()?).await?; // checksums verified
//!     assert_eq!(prod.version.sha256, v1.sha256);
//!     Ok::<_, ml_registry::Error>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

#[cfg(feature = "azure")]
pub mod azure;
pub mod error;
pub mod local;
pub mod mlflow;
pub mod promote;
pub mod reference;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use ml_core::ModelArtifact;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use local::LocalRegistry;
pub use promote::{Promotion, promote};
pub use reference::{Reference, Selector, validate_alias, validate_model_name};

/// The version `reference` selects among a model's `versions` (ascending, not empty), for
/// every registry alike; `aliases` is the model's alias table, read by the caller only when the
/// selector is an alias.
pub(crate) fn select_version(
    registry: &str,
    reference: &Reference,
    versions: Vec<u32>,
    aliases: Option<&BTreeMap<String, u32>>,
) -> Result<u32> {
    let name = &reference.name;
    match &reference.selector {
        Selector::Version(v) if versions.contains(v) => Ok(*v),
        Selector::Version(v) => Err(Error::VersionNotFound {
            registry: registry.to_string(),
            name: name.clone(),
            version: *v,
            available: versions,
        }),
        Selector::Latest => versions
            .last()
            .copied()
            .ok_or_else(|| Error::Internal("empty version list".into())),
        Selector::Alias(alias) => {
            let empty = BTreeMap::new();
            let aliases = aliases.unwrap_or(&empty);
            aliases.get(alias).copied().ok_or_else(|| Error::AliasNotFound {
                registry: registry.to_string(),
                name: name.clone(),
                alias: alias.clone(),
                existing: aliases.keys().cloned().collect(),
            })
        }
    }
}

/// How often [`ModelRegistry::watch`] looks for a moved alias by default. Alias moves are rare,
/// human-paced events (a promotion); one cheap metadata read a second keeps a server at most a
/// second behind without measurable load.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Where a version was copied from by [`promote()`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceVersion {
    /// The source registry's location (a directory or `blob://container/prefix`).
    pub registry: String,
    /// The model name there.
    pub name: String,
    /// The version there.
    pub version: u32,
}

/// Metadata of one registered version (`version.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model name.
    pub name: String,
    /// The version number, 1 for the first; never reused, also after a deletion.
    pub version: u32,
    /// When it was registered, RFC 3339 UTC.
    pub created: String,
    /// Tags: the artifact's own tags, overridden by those given at registration.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The metrics recorded with the artifact.
    #[serde(default)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
    /// The training run that produced the model (the artifact's `run_id`).
    pub run_id: String,
    /// Lineage: the version this one was retrained from, in the same registry.
    #[serde(default)]
    pub parent_version: Option<u32>,
    /// Lineage: what data it was trained on (a path, a query, a data set version).
    #[serde(default)]
    pub training_data: Option<String>,
    /// Lineage across registries: where this version was copied from, nearest first
    /// (prod ← staging ← dev). Empty for a version registered directly.
    #[serde(default)]
    pub copied_from: Vec<SourceVersion>,
    /// sha256 of the artifact's `checksums` file, which lists the sha256 of every file of the
    /// artifact: one digest for the whole content.
    pub sha256: String,
}

impl ModelVersion {
    /// `name:version`.
    pub fn reference(&self) -> Reference {
        Reference {
            name: self.name.clone(),
            selector: Selector::Version(self.version),
        }
    }
}

/// What to record with a registration besides the artifact.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegisterOptions {
    /// Tags (override the artifact's tags of the same key).
    pub tags: BTreeMap<String, String>,
    /// Free text.
    pub description: Option<String>,
    /// The version this one was retrained from.
    pub parent_version: Option<u32>,
    /// What data it was trained on.
    pub training_data: Option<String>,
    /// Where it was copied from (set by [`promote()`]).
    pub copied_from: Vec<SourceVersion>,
}

/// A loaded version: its metadata and its verified artifact.
#[derive(Clone, Debug)]
pub struct RegisteredModel {
    /// The version's metadata.
    pub version: ModelVersion,
    /// The artifact, every checksum verified.
    pub artifact: ModelArtifact,
}

/// One model in a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSummary {
    /// The model name.
    pub name: String,
    /// Its versions, oldest first.
    pub versions: Vec<ModelVersion>,
    /// Its aliases (`alias → version`).
    pub aliases: BTreeMap<String, u32>,
}

impl ModelSummary {
    /// The aliases pointing at `version`.
    pub fn aliases_of(&self, version: u32) -> Vec<&str> {
        self.aliases
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

/// Something a crashed writer left behind, found by [`ModelRegistry::collect_garbage`]:
/// invisible to readers, never reused, only taking space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// The model it belongs to.
    pub name: String,
    /// Where it is: a path, or a blob name prefix.
    pub path: String,
    /// What it is.
    pub what: String,
    /// How long ago it was last written, where the store says.
    pub age: Option<Duration>,
}

/// A stream of alias moves, as returned by [`ModelRegistry::watch`].
pub type WatchStream<'a> = Pin<Box<dyn Stream<Item = Result<ModelVersion>> + Send + 'a>>;

/// A model registry: named models, integer versions, aliases and lineage.
///
/// **Runtime contract.** The methods are `async` and runtime-agnostic (no executor is assumed).
/// [`LocalRegistry`] does blocking file I/O inside its futures (short: a few small files, and
/// the artifact itself on `register`/`get`); a latency-sensitive server should call it from a
/// blocking-friendly task. Futures are not cancel-safe in the sense of "nothing happened":
/// dropping a `register` future may or may not have created the version, but never leaves a
/// partial one visible. Every write that assigns a version number or moves an alias is atomic
/// and safe against concurrent writers in other processes.
///
/// Errors name the registry, the model and what exists ([`Error::AliasNotFound`] lists the
/// aliases that do exist).
#[async_trait::async_trait]
pub trait ModelRegistry: Send + Sync + Debug {
    /// Where the registry lives, as a user would write it for `--registry` (a directory path or
    /// `blob://container/prefix`). Recorded in [`SourceVersion::registry`] by promotions.
    fn location(&self) -> String;

    /// Stores `artifact` as the next version of `name` (1 for a new name) and returns its
    /// metadata. Concurrent registrations of one name get distinct, consecutive versions.
    async fn register(
        &self,
        name: &str,
        artifact: &ModelArtifact,
        options: &RegisterOptions,
    ) -> Result<ModelVersion>;

    /// The metadata of the version `reference` selects, without loading the artifact.
    async fn resolve(&self, reference: &Reference) -> Result<ModelVersion>;

    /// Loads the version `reference` selects, verifying every checksum.
    async fn get(&self, reference: &Reference) -> Result<RegisteredModel>;

    /// Every model (or only `name`), with its versions and aliases, sorted by name.
    async fn list(&self, name: Option<&str>) -> Result<Vec<ModelSummary>>;

    /// The versions of `name`, oldest first.
    async fn versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        let mut list = self.list(Some(name)).await?;
        Ok(list.pop().map(|m| m.versions).unwrap_or_default())
    }

    /// Points `alias` of `name` at `version`; returns the version it pointed at before.
    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<Option<u32>>;

    /// Removes `alias` of `name`; returns the version it pointed at.
    async fn remove_alias(&self, name: &str, alias: &str) -> Result<u32>;

    /// Deletes one version. Refused with [`Error::VersionAliased`] while an alias points at it.
    /// Its number is never given to another version.
    async fn delete_version(&self, name: &str, version: u32) -> Result<()>;

    /// Finds what crashed registrations and deletions left behind and, unless `dry_run`,
    /// removes it; returns what was found. A blob store cannot tell a crashed registration's
    /// files from one still uploading, so only leftovers last written more than `older_than`
    /// ago are listed there (`azure::DEFAULT_GARBAGE_AGE`, one hour, is a safe choice); the local registry
    /// removes its leftovers under the model's lock, where no live writer can own them, so it
    /// ignores `older_than` (its writers also clean up on their own).
    async fn collect_garbage(&self, older_than: Duration, dry_run: bool) -> Result<Vec<Leftover>>;

    /// Watches what `reference` resolves to: the stream yields the current version at once,
    /// then again each time the reference resolves to another version (an alias moved, a new
    /// latest). It checks every `interval` (see [`DEFAULT_WATCH_INTERVAL`]); a failed check is
    /// yielded as an error and watching goes on. The stream never ends by itself; drop it to stop.
    ///
    /// The default polls [`ModelRegistry::resolve`] and needs no async runtime: the waits run on
    /// a short-lived helper thread.
    fn watch<'a>(&'a self, reference: &Reference, interval: Duration) -> WatchStream<'a> {
        let reference = reference.clone();
        Box::pin(futures::stream::unfold(
            (None::<u32>, true),
            move |(last, first)| {
                let reference = reference.clone();
                async move {
                    let mut first = first;
                    loop {
                        if !first {
                            sleep(interval).await;
                        }
                        first = false;
                        match self.resolve(&reference).await {
                            Ok(v) if Some(v.version) != last => {
                                let seen = Some(v.version);
                                return Some((Ok(v), (seen, false)));
                            }
                            Ok(_) => {}
                            Err(e) => return Some((Err(e), (last, false))),
                        }
                    }
                }
            },
        ))
    }
}

/// A runtime-agnostic sleep: a helper thread completes a oneshot channel.
async fn sleep(duration: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// The current time, RFC 3339 UTC.
impl ModelVersion {
    /// The metadata of version `version` of `name` for `artifact`: its tags plus the options'
    /// tags, metrics, run id, lineage, and the sha256 of its `checksums` file (`sums`). Shared by
    /// every registry so they record the same fields.
    pub(crate) fn describe(
        name: &str,
        version: u32,
        artifact: &ml_core::ModelArtifact,
        options: &RegisterOptions,
        sums: &[u8],
    ) -> ModelVersion {
        let mut tags = artifact.mlmodel().metadata.clone();
        tags.extend(options.tags.clone());
        ModelVersion {
            name: name.to_string(),
            version,
            created: now_rfc3339(),
            tags,
            description: options.description.clone(),
            metrics: artifact.metrics().clone(),
            run_id: artifact.mlmodel().run_id.clone(),
            parent_version: options.parent_version,
            training_data: options.training_data.clone(),
            copied_from: options.copied_from.clone(),
            sha256: ml_core::artifact::sha256_hex(sums),
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
