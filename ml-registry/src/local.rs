//! [`LocalRegistry`]: the registry in a local directory.
//!
//! Layout:
//! ```text
//! <root>/<name>/.lock                      lock file: held (flock) by every writer of <name>
//! <root>/<name>/counter                    the last version number assigned (never reused)
//! <root>/<name>/aliases.json               {"prod": 3, "staging": 4}
//! <root>/<name>/versions/<N>/version.json  the ModelVersion metadata
//! <root>/<name>/versions/<N>/artifact/     the ModelArtifact (MLmodel, model file, metrics,
//!                                          attachments, checksums)
//! <root>/<name>/versions/.<anything>       work in progress or left by a crash; never read
//! ```
//! A registration, holding the model's lock, writes the whole version (artifact and
//! `version.json`, each file synced) into `versions/.tmp-<uuid>` and renames it to
//! `versions/<N>`: that rename is the moment the version exists. Aliases are rewritten into a
//! temporary file and renamed over `aliases.json`. A crashed writer leaves at most a dot-named
//! directory, which readers skip and the next writer (who holds the lock, so it cannot be
//! another live writer's) removes.
//!
//! Failpoints ([`ml_core::failpoint`]): `registry.register.before_publish` (every file of the
//! new version written and synced, not yet renamed into place),
//! `registry.register.after_publish` (visible, counter not yet updated),
//! `registry.alias.before_publish` (new alias file written, not yet renamed over the old one),
//! `registry.delete.after_unpublish` (a deleted version renamed away, its files not yet removed).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ml_core::artifact::{CHECKSUMS_FILE, sha256_hex};
use ml_core::{ModelArtifact, failpoint};

use crate::error::{Error, Result};
use crate::reference::{Reference, Selector, validate_alias, validate_model_name};
use crate::{ModelRegistry, ModelSummary, ModelVersion, RegisterOptions, RegisteredModel};

/// The default registry directory, relative to the working directory.
pub const DEFAULT_PATH: &str = ".streamscore/registry";

const VERSIONS_DIR: &str = "versions";
const ARTIFACT_DIR: &str = "artifact";
const VERSION_FILE: &str = "version.json";
const ALIASES_FILE: &str = "aliases.json";
const COUNTER_FILE: &str = "counter";
const LOCK_FILE: &str = ".lock";

/// A registry in a local directory; see the [module docs](self) for the layout.
///
/// Safe for concurrent use from many threads and processes on one machine: writers of one model
/// serialize on an advisory file lock (`flock`), readers take no lock. On network filesystems
/// the lock is only as good as the filesystem's `flock`.
#[derive(Clone, Debug)]
pub struct LocalRegistry {
    root: PathBuf,
    location: String,
}

impl LocalRegistry {
    /// Opens (creating it if needed) the registry in `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalRegistry> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(|e| Error::io("create registry directory", &root, e))?;
        let location = fs::canonicalize(&root)
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string();
        Ok(LocalRegistry { root, location })
    }

    /// The registry directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn model_dir(&self, name: &str) -> Result<PathBuf> {
        validate_model_name(name)?;
        Ok(self.root.join(name))
    }

    fn version_dir(&self, name: &str, version: u32) -> PathBuf {
        self.root.join(name).join(VERSIONS_DIR).join(version.to_string())
    }

    /// Takes the writer lock of model `name` (blocking until it is free).
    fn lock(&self, name: &str) -> Result<File> {
        let dir = self.model_dir(name)?;
        let versions = dir.join(VERSIONS_DIR);
        fs::create_dir_all(&versions).map_err(|e| Error::io("create directory", &versions, e))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(file)
    }

    fn model_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(Error::io("read registry directory", &self.root, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read registry directory", &self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_model_name(&name).is_ok()
                && entry.path().is_dir()
                && !self.version_numbers(&name)?.is_empty()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The published versions of `name` (ascending); empty when the model does not exist.
    fn version_numbers(&self, name: &str) -> Result<Vec<u32>> {
        let dir = self.root.join(name).join(VERSIONS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read directory", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            let file_name = entry.file_name();
            let s = file_name.to_string_lossy();
            // Only canonical numbers: "03" or "+3" are not versions.
            if let Ok(v) = s.parse::<u32>()
                && v > 0
                && v.to_string() == s
            {
                out.push(v);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn read_aliases(&self, name: &str) -> Result<BTreeMap<String, u32>> {
        let path = self.root.join(name).join(ALIASES_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path,
                reason: format!("the alias file is not valid JSON: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    fn write_aliases(&self, name: &str, aliases: &BTreeMap<String, u32>) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(aliases).map_err(|e| Error::Internal(e.to_string()))?;
        let dir = self.root.join(name);
        write_atomically(&dir, ALIASES_FILE, &bytes, Some("registry.alias.before_publish"))
    }

    fn read_version(&self, name: &str, version: u32) -> Result<ModelVersion> {
        let path = self.version_dir(name, version).join(VERSION_FILE);
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let v: ModelVersion = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: format!("version metadata is not valid: {e}"),
        })?;
        if v.name != name || v.version != version {
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "it describes `{}:{}`, not `{name}:{version}`: the directory was moved or edited",
                    v.name, v.version
                ),
            });
        }
        Ok(v)
    }

    fn not_found(&self, name: &str) -> Result<Error> {
        Ok(Error::ModelNotFound {
            registry: self.location.clone(),
            name: name.to_string(),
            known: self.model_names()?,
        })
    }

    fn resolve_version(&self, reference: &Reference) -> Result<u32> {
        let name = &reference.name;
        validate_model_name(name)?;
        let versions = self.version_numbers(name)?;
        if versions.is_empty() {
            return Err(self.not_found(name)?);
        }
        let aliases = match reference.selector {
            Selector::Alias(_) => Some(self.read_aliases(name)?),
            _ => None,
        };
        crate::select_version(&self.location, reference, versions, aliases.as_ref())
    }

    /// Removes what crashed writers left behind. Only called with the model's lock held, so no
    /// live writer owns any of it.
    fn remove_leftovers(model_dir: &Path) {
        Self::leftovers_in(model_dir, false);
    }

    /// Dot-named entries in `model_dir/versions` and temporary files in `model_dir`: what
    /// crashed writers leave, as (path, what it is, age). Removed unless `dry_run`; the caller
    /// holds the model's lock.
    fn leftovers_in(
        model_dir: &Path,
        dry_run: bool,
    ) -> Vec<(PathBuf, &'static str, Option<std::time::Duration>)> {
        let mut found = Vec::new();
        let age = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
        };
        if let Ok(entries) = fs::read_dir(model_dir.join(VERSIONS_DIR)) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    let path = entry.path();
                    found.push((
                        path.clone(),
                        "version directory of an interrupted registration or deletion",
                        age(&path),
                    ));
                    if !dry_run {
                        let _ = fs::remove_dir_all(&path);
                    }
                }
            }
        }
        if let Ok(entries) = fs::read_dir(model_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".tmp-") {
                    let path = entry.path();
                    found.push((path.clone(), "temporary file of an interrupted write", age(&path)));
                    if !dry_run {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort();
        found
    }
}

#[async_trait::async_trait]
impl ModelRegistry for LocalRegistry {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn register(
        &self,
        name: &str,
        artifact: &ModelArtifact,
        options: &RegisterOptions,
    ) -> Result<ModelVersion> {
        let _lock = self.lock(name)?;
        let model_dir = self.root.join(name);
        let versions_dir = model_dir.join(VERSIONS_DIR);
        Self::remove_leftovers(&model_dir);
        let counter_path = model_dir.join(COUNTER_FILE);
        let counter = match fs::read_to_string(&counter_path) {
            Ok(s) => s.trim().parse::<u32>().map_err(|_| Error::Corrupt {
                path: counter_path.clone(),
                reason: format!("expected a version number, found {:?}", s.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("read", &counter_path, e)),
        };
        // The counter can lag the directories by one if a writer died right after publishing.
        let highest = self.version_numbers(name)?.last().copied().unwrap_or(0);
        let version = counter
            .max(highest)
            .checked_add(1)
            .ok_or_else(|| Error::Internal("version counter overflow".into()))?;

        let tmp = versions_dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| -> Result<ModelVersion> {
            fs::create_dir(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
            let mut copy = artifact.clone();
            copy.save(tmp.join(ARTIFACT_DIR))?;
            let sums_path = tmp.join(ARTIFACT_DIR).join(CHECKSUMS_FILE);
            let sums = fs::read(&sums_path).map_err(|e| Error::io("read", &sums_path, e))?;
            let meta = ModelVersion::describe(name, version, artifact, options, &sums);
            let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Internal(e.to_string()))?;
            write_synced(&tmp.join(VERSION_FILE), &json)?;
            sync_dir(&tmp);
            failpoint::hit("registry.register.before_publish");
            let target = versions_dir.join(version.to_string());
            fs::rename(&tmp, &target).map_err(|e| Error::io("publish version", &target, e))?;
            sync_dir(&versions_dir);
            Ok(meta)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        let meta = result?;
        failpoint::hit("registry.register.after_publish");
        write_atomically(&model_dir, COUNTER_FILE, version.to_string().as_bytes(), None)?;
        Ok(meta)
    }

    async fn resolve(&self, reference: &Reference) -> Result<ModelVersion> {
        let version = self.resolve_version(reference)?;
        self.read_version(&reference.name, version)
    }

    async fn get(&self, reference: &Reference) -> Result<RegisteredModel> {
        let version = self.resolve(reference).await?;
        let dir = self
            .version_dir(&reference.name, version.version)
            .join(ARTIFACT_DIR);
        let artifact = ModelArtifact::load(&dir)?;
        let sums_path = dir.join(CHECKSUMS_FILE);
        let sums = fs::read(&sums_path).map_err(|e| Error::io("read", &sums_path, e))?;
        let digest = sha256_hex(&sums);
        if digest != version.sha256 {
            return Err(Error::Corrupt {
                path: sums_path,
                reason: format!(
                    "its sha256 is {digest} but version.json records {}: the artifact was replaced after registration",
                    version.sha256
                ),
            });
        }
        Ok(RegisteredModel { version, artifact })
    }

    async fn list(&self, name: Option<&str>) -> Result<Vec<ModelSummary>> {
        let names = match name {
            Some(n) => {
                validate_model_name(n)?;
                if self.version_numbers(n)?.is_empty() {
                    return Err(self.not_found(n)?);
                }
                vec![n.to_string()]
            }
            None => self.model_names()?,
        };
        names
            .into_iter()
            .map(|n| {
                let versions = self
                    .version_numbers(&n)?
                    .into_iter()
                    .map(|v| self.read_version(&n, v))
                    .collect::<Result<Vec<_>>>()?;
                let aliases = self.read_aliases(&n)?;
                Ok(ModelSummary {
                    name: n,
                    versions,
                    aliases,
                })
            })
            .collect()
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<Option<u32>> {
        validate_alias(alias)?;
        let _lock = self.lock(name)?;
        Self::remove_leftovers(&self.root.join(name));
        self.resolve_version(&Reference::version(name, version)?)?;
        let mut aliases = self.read_aliases(name)?;
        let previous = aliases.insert(alias.to_string(), version);
        if previous != Some(version) {
            self.write_aliases(name, &aliases)?;
        }
        Ok(previous)
    }

    async fn remove_alias(&self, name: &str, alias: &str) -> Result<u32> {
        validate_alias(alias)?;
        let _lock = self.lock(name)?;
        let mut aliases = self.read_aliases(name)?;
        let Some(version) = aliases.remove(alias) else {
            return Err(Error::AliasNotFound {
                registry: self.location.clone(),
                name: name.to_string(),
                alias: alias.to_string(),
                existing: aliases.keys().cloned().collect(),
            });
        };
        self.write_aliases(name, &aliases)?;
        Ok(version)
    }

    async fn collect_garbage(
        &self,
        _older_than: std::time::Duration,
        dry_run: bool,
    ) -> Result<Vec<crate::Leftover>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read registry directory", &self.root, e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| validate_model_name(n).is_ok())
            .collect();
        names.sort();
        for name in names {
            let _lock = self.lock(&name)?;
            for (path, what, age) in Self::leftovers_in(&self.root.join(&name), dry_run) {
                out.push(crate::Leftover {
                    name: name.clone(),
                    path: path.display().to_string(),
                    what: what.into(),
                    age,
                });
            }
        }
        Ok(out)
    }

    async fn delete_version(&self, name: &str, version: u32) -> Result<()> {
        let _lock = self.lock(name)?;
        self.resolve_version(&Reference::version(name, version)?)?;
        let aliases: Vec<String> = self
            .read_aliases(name)?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(a, _)| a)
            .collect();
        if !aliases.is_empty() {
            return Err(Error::VersionAliased {
                name: name.to_string(),
                version,
                aliases,
            });
        }
        // Make sure the counter covers this number before it disappears, so it is never reused.
        let model_dir = self.root.join(name);
        let counter_path = model_dir.join(COUNTER_FILE);
        let counter = fs::read_to_string(&counter_path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if counter < version {
            write_atomically(&model_dir, COUNTER_FILE, version.to_string().as_bytes(), None)?;
        }
        // Rename first: the version disappears in one step, then its files go.
        let dir = self.version_dir(name, version);
        let doomed = model_dir
            .join(VERSIONS_DIR)
            .join(format!(".deleted-{version}-{}", uuid::Uuid::new_v4().simple()));
        fs::rename(&dir, &doomed).map_err(|e| Error::io("delete version", &dir, e))?;
        failpoint::hit("registry.delete.after_unpublish");
        fs::remove_dir_all(&doomed).map_err(|e| Error::io("remove", &doomed, e))?;
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io("create", path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))?;
    f.sync_all().map_err(|e| Error::io("sync", path, e))
}

/// Best effort: makes renames inside `dir` durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `dir/name` by writing a temporary sibling and renaming it over the old file.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8], failpoint_name: Option<&str>) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    write_synced(&tmp, bytes)?;
    if let Some(f) = failpoint_name {
        failpoint::hit(f);
    }
    let target = dir.join(name);
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("rename into place", target, e));
    }
    sync_dir(dir);
    Ok(())
}
