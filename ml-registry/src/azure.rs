//! The registry in Azure Blob Storage (feature `azure`), through the official
//! `azure_storage_blob` crate.
//!
//! Layout under `<container>/<prefix>/` (the same tree as [`crate::LocalRegistry`]):
//! ```text
//! <name>/counter                          the last version number assigned
//! <name>/aliases.json                     {"prod": 3}
//! <name>/versions/<N>/artifact/<file>     the artifact's files (MLmodel, model, checksums, ...)
//! <name>/versions/<N>/version.json        written last: its existence publishes version N
//! ```
//! There is no lock on a blob store; instead every shared blob is updated with an ETag
//! condition. A registration reserves its number by rewriting `counter` with `If-Match` (or
//! `If-None-Match: *` for the first), retrying when another registrar won the race, so no two
//! registrars get the same number. It then uploads the artifact files and finally
//! `version.json` with `If-None-Match: *`. Readers only see versions whose `version.json`
//! exists, so a registrar that dies half way leaves unreferenced blobs and a skipped number,
//! never a partial version. Aliases are rewritten with `If-Match` on `aliases.json`'s ETag, in
//! one upload: a writer that dies before it leaves the old table whole.
//!
//! **Deleting a version against a concurrent alias move.** An alias move checks that the
//! version exists *after* reading the alias table and writes the table with `If-Match` on the
//! ETag it read. A deletion takes a 30-second lease on `aliases.json` (writers without the lease
//! are refused while it is held), checks under the lease that no alias points at the version,
//! deletes `version.json`, and only then rewrites the alias table (same content, new ETag) and
//! releases the lease. An alias move that read the table before that rewrite fails its
//! `If-Match` and starts again; one that read it after finds the version gone. So no alias can
//! end up pointing at a deleted version. A deleter that dies holding the lease delays alias
//! moves until the lease expires.
//!
//! **Leftovers of a crash.** A registration or deletion that dies leaves blobs under
//! `versions/<N>/` without `version.json`: invisible to every reader, and never reused (the
//! counter has moved on). [`BlobRegistry::leftovers`] lists them and
//! [`ModelRegistry::collect_garbage`] (`streamscore models --gc`) deletes those older than a
//! grace period, so that a registration still uploading is never touched.
//!
//! Failpoints ([`ml_core::failpoint`]): `registry.register.before_publish` (every artifact blob
//! uploaded, `version.json` not yet), `registry.register.after_publish`,
//! `registry.alias.before_publish` (new alias table ready, not yet uploaded),
//! `registry.delete.after_unpublish` (`version.json` of a deleted version removed, under the
//! lease; the alias table not yet rewritten, the files not yet removed).
//!
//! Credentials, in this order: `AZURE_STORAGE_CONNECTION_STRING` (`AccountName=..;AccountKey=..`
//! with an optional `BlobEndpoint=..`, as Azurite's is) is turned into a short-lived account SAS
//! signed locally (the key never leaves the process and is never logged);
//! `AZURE_STORAGE_SAS_URL` gives a ready SAS URL of the account; otherwise
//! `AZURE_STORAGE_ACCOUNT_URL` (or `AZURE_STORAGE_ACCOUNT`, a name) with an Entra ID credential
//! from [`credential`] (service principal, workload identity, managed identity, Azure CLI).

pub mod credential;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use azure_core::http::{RequestContent, StatusCode, Url};
use azure_storage_blob::BlobContainerClient;
use azure_storage_blob::models::{BlobClientUploadOptions, BlobContainerClientListBlobsOptions};
use futures::TryStreamExt;
use ml_core::artifact::{CHECKSUMS_FILE, sha256_hex};
use ml_core::{ModelArtifact, failpoint};

use crate::error::{Error, Result};
use crate::reference::{Reference, Selector, validate_alias, validate_model_name};
use crate::{ModelRegistry, ModelSummary, ModelVersion, RegisterOptions, RegisteredModel};

/// How long a SAS derived from a connection string stays valid. A CLI command or a test
/// finishes well within it; long-running servers should use Entra ID instead.
const SAS_LIFETIME: time::Duration = time::Duration::hours(8);

/// SAS service version used when signing; its string to sign has no encryption-scope line
/// (added in 2020-12-06). Accepted by Azure and by Azurite 3.35.
const SAS_VERSION: &str = "2019-12-12";

/// A model registry in an Azure Blob Storage container.
pub struct BlobRegistry {
    container: BlobContainerClient,
    prefix: String,
    location: String,
}

impl fmt::Debug for BlobRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The container URL holds the SAS: never print it.
        f.debug_struct("BlobRegistry")
            .field("location", &self.location)
            .finish()
    }
}

enum Condition {
    None,
    IfNoneMatch,
    IfMatch(String),
    /// `If-Match` on a blob this registrar holds the lease of.
    Leased {
        etag: String,
        lease_id: String,
    },
}

/// How long a deletion leases the alias table. The shortest lease Azure grants is 15 s; a
/// deletion needs a few requests under it, and a deleter that dies holds alias moves up at most
/// this long.
const DELETE_LEASE_SECONDS: i32 = 30;

/// How long a writer retries a refused conditional write of the alias table (a concurrent
/// writer, or a deletion holding the lease) before giving up: longer than one lease.
const ALIAS_RETRY_LIMIT: std::time::Duration = std::time::Duration::from_secs(45);

/// Default grace period of [`ModelRegistry::collect_garbage`] for blob leftovers: a
/// registration still uploading its files is younger than this.
pub const DEFAULT_GARBAGE_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

impl BlobRegistry {
    /// Opens `blob://CONTAINER[/PREFIX]` with the credentials from the environment (see the
    /// [module docs](self) for the variables and their order).
    pub fn from_location(location: &str) -> Result<BlobRegistry> {
        BlobRegistry::from_location_with(location, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`BlobRegistry::from_location`] with the environment read through `var`.
    pub fn from_location_with(location: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<BlobRegistry> {
        let bad = |reason: String| Error::Location {
            location: location.to_string(),
            reason,
        };
        let rest = location
            .strip_prefix("blob://")
            .ok_or_else(|| bad("expected blob://CONTAINER[/PREFIX]".into()))?;
        let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if container.is_empty() {
            return Err(bad("no container name".into()));
        }
        let access = account_access(var).map_err(bad)?;
        BlobRegistry::with_credential(&access.url, access.credential, container, prefix, location)
    }

    /// A registry in `container` under `prefix` of the account a connection string names
    /// (`AccountName=..;AccountKey=..[;BlobEndpoint=..]`); requests carry an account SAS
    /// signed here with the key.
    pub fn from_connection_string(
        connection_string: &str,
        container: &str,
        prefix: &str,
        location: &str,
    ) -> Result<BlobRegistry> {
        let url = sas_account_url(connection_string).map_err(|reason| Error::Location {
            location: location.to_string(),
            reason,
        })?;
        BlobRegistry::new(&url, container, prefix, location)
    }

    /// A registry in `container` under `prefix`, for the account at `account_url` (with a SAS
    /// query). `location` is how it is named in messages and lineage.
    pub fn new(account_url: &str, container: &str, prefix: &str, location: &str) -> Result<BlobRegistry> {
        BlobRegistry::with_credential(account_url, None, container, prefix, location)
    }

    /// [`BlobRegistry::new`] with an Entra ID token credential (the account URL must be https).
    pub fn with_credential(
        account_url: &str,
        credential: Option<std::sync::Arc<dyn azure_core::credentials::TokenCredential>>,
        container: &str,
        prefix: &str,
        location: &str,
    ) -> Result<BlobRegistry> {
        let bad = |reason: String| Error::Location {
            location: location.to_string(),
            reason,
        };
        let mut url = Url::parse(account_url).map_err(|e| bad(format!("invalid account URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| bad("the account URL cannot take a path".into()))?
            .pop_if_empty()
            .push(container);
        let container = BlobContainerClient::new(url, credential, None).map_err(|e| bad(e.to_string()))?;
        let prefix = prefix.trim_matches('/');
        Ok(BlobRegistry {
            container,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            location: location.to_string(),
        })
    }

    /// Creates the container if it does not exist yet.
    pub async fn create_container_if_missing(&self) -> Result<()> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            // An identity allowed to read and write blobs but not to create containers (an
            // Entra ID role or a SAS scoped to one container): the container has to exist, and
            // the first real operation says so if it does not.
            Err(e) if e.http_status() == Some(StatusCode::Forbidden) => Ok(()),
            Err(e) => Err(self.backend("create container", e)),
        }
    }

    /// A backend error for `op`, with the whole chain of causes: the SDK wraps the reason
    /// (a refused token, a closed port) in a generic outer error.
    fn backend(&self, op: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        let e = e.into();
        let mut reason = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            source = cause.source();
        }
        Error::Backend {
            registry: self.location.clone(),
            reason: format!("{op}: {reason}"),
        }
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    async fn get_blob(&self, rel: &str) -> Result<Option<(Vec<u8>, String)>> {
        let client = self.container.blob_client(&self.key(rel));
        match client.download(None).await {
            Ok(r) => {
                let etag = r
                    .properties
                    .etag
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let body = r.body.collect().await.map_err(|e| self.backend(rel, e))?;
                Ok(Some((body.to_vec(), etag)))
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(self.backend(&format!("download {rel}"), e)),
        }
    }

    /// Uploads; `Ok(false)` when the condition failed (someone else wrote first).
    async fn put_blob(&self, rel: &str, bytes: Vec<u8>, condition: Condition) -> Result<bool> {
        let client = self.container.blob_client(&self.key(rel));
        let mut options = BlobClientUploadOptions::default();
        match condition {
            Condition::None => {}
            Condition::IfNoneMatch => options = options.if_not_exists(),
            Condition::IfMatch(etag) => options.if_match = Some(etag.into()),
            Condition::Leased { etag, lease_id } => {
                options.if_match = Some(etag.into());
                options.lease_id = Some(lease_id);
            }
        }
        match client.upload(RequestContent::from(bytes), Some(options)).await {
            Ok(_) => Ok(true),
            Err(e)
                if e.http_status() == Some(StatusCode::PreconditionFailed)
                    || e.http_status() == Some(StatusCode::Conflict) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.backend(&format!("upload {rel}"), e)),
        }
    }

    async fn delete_blob(&self, rel: &str) -> Result<()> {
        match self.container.blob_client(&self.key(rel)).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Err(e) => Err(self.backend(&format!("delete {rel}"), e)),
        }
    }

    /// Blob names (relative to the prefix) under `rel`.
    async fn list_blobs(&self, rel: &str) -> Result<Vec<String>> {
        Ok(self
            .list_blob_items(rel)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// Blob names (relative to the prefix) under `rel`, with their last-modified times.
    async fn list_blob_items(&self, rel: &str) -> Result<Vec<(String, Option<time::OffsetDateTime>)>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(self.key(rel)),
            ..Default::default()
        };
        let mut pager = self
            .container
            .list_blobs(Some(options))
            .map_err(|e| self.backend("list blobs", e))?;
        let mut out = Vec::new();
        loop {
            match pager.try_next().await {
                Ok(Some(item)) => {
                    let modified = item.properties.as_ref().and_then(|p| p.last_modified);
                    if let Some(name) = item.name
                        && let Some(r) = name.strip_prefix(&self.prefix)
                    {
                        out.push((r.to_string(), modified));
                    }
                }
                Ok(None) => break,
                Err(e) if e.http_status() == Some(StatusCode::NotFound) => break,
                Err(e) => return Err(self.backend("list blobs", e)),
            }
        }
        Ok(out)
    }

    async fn version_numbers(&self, name: &str) -> Result<Vec<u32>> {
        let mut out: Vec<u32> = self
            .list_blobs(&format!("{name}/versions/"))
            .await?
            .iter()
            .filter_map(|b| {
                let rest = b.strip_prefix(&format!("{name}/versions/"))?;
                let v = rest.strip_suffix("/version.json")?;
                v.parse::<u32>().ok().filter(|n| n.to_string() == v && *n > 0)
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn model_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .list_blobs("")
            .await?
            .iter()
            .filter(|b| b.ends_with("/version.json"))
            .filter_map(|b| b.split('/').next().map(str::to_string))
            .filter(|n| validate_model_name(n).is_ok())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn read_aliases(&self, name: &str) -> Result<(BTreeMap<String, u32>, Option<String>)> {
        let rel = format!("{name}/aliases.json");
        match self.get_blob(&rel).await? {
            Some((bytes, etag)) => {
                let map = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                    path: self.key(&rel).into(),
                    reason: format!("the alias blob is not valid JSON: {e}"),
                })?;
                Ok((map, Some(etag)))
            }
            None => Ok((BTreeMap::new(), None)),
        }
    }

    /// Applies `change` to the aliases of `name` with an ETag condition, retrying on races.
    /// With `verify`, that version must exist: checked after each read of the table, so a
    /// deletion that rewrote the table in between is seen (see the [module docs](self)).
    async fn update_aliases<T>(
        &self,
        name: &str,
        verify: Option<u32>,
        change: impl Fn(&mut BTreeMap<String, u32>) -> Result<T>,
    ) -> Result<T> {
        let rel = format!("{name}/aliases.json");
        let started = std::time::Instant::now();
        let mut backoff = std::time::Duration::from_millis(10);
        loop {
            let (mut aliases, etag) = self.read_aliases(name).await?;
            if let Some(version) = verify {
                self.resolve_version(&Reference::version(name, version)?).await?;
            }
            let out = change(&mut aliases)?;
            let bytes = serde_json::to_vec_pretty(&aliases).map_err(|e| Error::Internal(e.to_string()))?;
            failpoint::hit("registry.alias.before_publish");
            let condition = match etag {
                Some(e) => Condition::IfMatch(e),
                None => Condition::IfNoneMatch,
            };
            if self.put_blob(&rel, bytes, condition).await? {
                return Ok(out);
            }
            // Another writer won, or a deletion holds the table's lease: read again.
            if started.elapsed() > ALIAS_RETRY_LIMIT {
                return Err(self.backend(
                    &format!("update {rel}"),
                    format!(
                        "still refused after {} s: other writers keep changing it or a deletion holds its lease; try again",
                        ALIAS_RETRY_LIMIT.as_secs()
                    ),
                ));
            }
            crate::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_millis(500));
        }
    }

    /// Takes the lease of `name`'s alias table (creating an empty table if there is none),
    /// waiting while another deletion holds it.
    async fn lease_aliases(&self, name: &str) -> Result<String> {
        use azure_storage_blob::models::BlobClientAcquireLeaseResultHeaders;
        let rel = format!("{name}/aliases.json");
        if self.get_blob(&rel).await?.is_none() {
            // Lost race: someone created it meanwhile, which is as good.
            self.put_blob(&rel, b"{}".to_vec(), Condition::IfNoneMatch)
                .await?;
        }
        let client = self.container.blob_client(&self.key(&rel));
        let started = std::time::Instant::now();
        let mut backoff = std::time::Duration::from_millis(10);
        loop {
            match client.acquire_lease(DELETE_LEASE_SECONDS, None).await {
                Ok(r) => {
                    return r
                        .lease_id()
                        .ok()
                        .flatten()
                        .ok_or_else(|| self.backend(&format!("lease {rel}"), "no lease id in the answer"));
                }
                Err(e)
                    if e.http_status() == Some(StatusCode::Conflict)
                        && started.elapsed() < ALIAS_RETRY_LIMIT =>
                {
                    crate::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_millis(500));
                }
                Err(e) => return Err(self.backend(&format!("lease {rel}"), e)),
            }
        }
    }

    /// What crashed registrations or deletions left under `name` (every model when `None`):
    /// version folders without `version.json`, with the age of their newest blob.
    pub async fn leftovers(&self, name: Option<&str>) -> Result<Vec<crate::Leftover>> {
        let now = time::OffsetDateTime::now_utc();
        let mut by_version: BTreeMap<(String, u32), (usize, bool, Option<time::OffsetDateTime>)> =
            BTreeMap::new();
        let scope = match name {
            Some(n) => {
                validate_model_name(n)?;
                format!("{n}/")
            }
            None => String::new(),
        };
        for (blob, modified) in self.list_blob_items(&scope).await? {
            let mut parts = blob.splitn(4, '/');
            let (Some(model), Some("versions"), Some(v), Some(rest)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(v) = v.parse::<u32>() else { continue };
            let entry = by_version
                .entry((model.to_string(), v))
                .or_insert((0, false, None));
            entry.0 += 1;
            entry.1 |= rest == "version.json";
            entry.2 = entry.2.max(modified);
        }
        Ok(by_version
            .into_iter()
            .filter(|(_, (_, published, _))| !published)
            .map(|((model, version), (blobs, _, newest))| crate::Leftover {
                path: self.key(&format!("{model}/versions/{version}/")),
                what: format!("{blobs} blob(s) of version {version} without version.json"),
                age: newest.map(|t| std::time::Duration::try_from(now - t).unwrap_or_default()),
                name: model,
            })
            .collect())
    }

    async fn read_version(&self, name: &str, version: u32) -> Result<ModelVersion> {
        let rel = format!("{name}/versions/{version}/version.json");
        let (bytes, _) = self.get_blob(&rel).await?.ok_or_else(|| Error::VersionNotFound {
            registry: self.location.clone(),
            name: name.to_string(),
            version,
            available: Vec::new(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: self.key(&rel).into(),
            reason: format!("version metadata is not valid: {e}"),
        })
    }

    async fn resolve_version(&self, reference: &Reference) -> Result<u32> {
        let name = &reference.name;
        validate_model_name(name)?;
        let versions = self.version_numbers(name).await?;
        if versions.is_empty() {
            return Err(Error::ModelNotFound {
                registry: self.location.clone(),
                name: name.clone(),
                known: self.model_names().await?,
            });
        }
        let aliases = match reference.selector {
            Selector::Alias(_) => Some(self.read_aliases(name).await?.0),
            _ => None,
        };
        crate::select_version(&self.location, reference, versions, aliases.as_ref())
    }
}

#[async_trait::async_trait]
impl ModelRegistry for BlobRegistry {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn register(
        &self,
        name: &str,
        artifact: &ModelArtifact,
        options: &RegisterOptions,
    ) -> Result<ModelVersion> {
        validate_model_name(name)?;
        // Serialize the artifact exactly as on disk, so its checksums and digest are the same.
        let staging = tempdir()?;
        let dir = staging.join("artifact");
        let mut copy = artifact.clone();
        let saved = copy.save(&dir);
        let files = saved.map_err(Error::from).and_then(|()| read_tree(&dir));
        let _ = std::fs::remove_dir_all(&staging);
        let files = files?;
        let sums = files
            .iter()
            .find(|(rel, _)| rel == CHECKSUMS_FILE)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| Error::Internal("saved artifact has no checksums file".into()))?;

        // Reserve a number: conditional rewrite of the counter.
        let counter_rel = format!("{name}/counter");
        let version = loop {
            let current = self.get_blob(&counter_rel).await?;
            let counter = match &current {
                Some((b, _)) => {
                    String::from_utf8_lossy(b)
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| Error::Corrupt {
                            path: self.key(&counter_rel).into(),
                            reason: "expected a version number".into(),
                        })?
                }
                None => 0,
            };
            let highest = self.version_numbers(name).await?.last().copied().unwrap_or(0);
            let next = counter.max(highest) + 1;
            let condition = match current {
                Some((_, etag)) => Condition::IfMatch(etag),
                None => Condition::IfNoneMatch,
            };
            if self
                .put_blob(&counter_rel, next.to_string().into_bytes(), condition)
                .await?
            {
                break next;
            }
        };
        let base = format!("{name}/versions/{version}");
        for (rel, bytes) in files {
            self.put_blob(&format!("{base}/artifact/{rel}"), bytes, Condition::None)
                .await?;
        }
        let meta = ModelVersion::describe(name, version, artifact, options, &sums);
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Internal(e.to_string()))?;
        failpoint::hit("registry.register.before_publish");
        if !self
            .put_blob(&format!("{base}/version.json"), json, Condition::IfNoneMatch)
            .await?
        {
            return Err(Error::Internal(format!(
                "version {version} of `{name}` was published by someone else after this registrar reserved it"
            )));
        }
        failpoint::hit("registry.register.after_publish");
        Ok(meta)
    }

    async fn resolve(&self, reference: &Reference) -> Result<ModelVersion> {
        let v = self.resolve_version(reference).await?;
        self.read_version(&reference.name, v).await
    }

    async fn get(&self, reference: &Reference) -> Result<RegisteredModel> {
        let version = self.resolve(reference).await?;
        let base = format!("{}/versions/{}/artifact/", reference.name, version.version);
        let staging = tempdir()?;
        let result = async {
            let dir = staging.join("artifact");
            for blob in self.list_blobs(&base).await? {
                let rel = &blob[base.len()..];
                if rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
                    return Err(Error::Corrupt {
                        path: self.key(&blob).into(),
                        reason: "unsafe blob name".into(),
                    });
                }
                let (bytes, _) = self.get_blob(&blob).await?.ok_or_else(|| Error::Corrupt {
                    path: self.key(&blob).into(),
                    reason: "listed but not found".into(),
                })?;
                let path = dir.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
                }
                std::fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
            }
            let artifact = ModelArtifact::load(&dir)?;
            let sums = std::fs::read(dir.join(CHECKSUMS_FILE)).map_err(|e| Error::io("read", &dir, e))?;
            if sha256_hex(&sums) != version.sha256 {
                return Err(Error::Corrupt {
                    path: self.key(&format!("{base}{CHECKSUMS_FILE}")).into(),
                    reason: format!(
                        "its sha256 is {} but version.json records {}",
                        sha256_hex(&sums),
                        version.sha256
                    ),
                });
            }
            Ok(artifact)
        }
        .await;
        let _ = std::fs::remove_dir_all(&staging);
        Ok(RegisteredModel {
            version,
            artifact: result?,
        })
    }

    async fn list(&self, name: Option<&str>) -> Result<Vec<ModelSummary>> {
        let names = match name {
            Some(n) => {
                validate_model_name(n)?;
                if self.version_numbers(n).await?.is_empty() {
                    return Err(Error::ModelNotFound {
                        registry: self.location.clone(),
                        name: n.to_string(),
                        known: self.model_names().await?,
                    });
                }
                vec![n.to_string()]
            }
            None => self.model_names().await?,
        };
        let mut out = Vec::new();
        for n in names {
            let mut versions = Vec::new();
            for v in self.version_numbers(&n).await? {
                versions.push(self.read_version(&n, v).await?);
            }
            let (aliases, _) = self.read_aliases(&n).await?;
            out.push(ModelSummary {
                name: n,
                versions,
                aliases,
            });
        }
        Ok(out)
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<Option<u32>> {
        validate_alias(alias)?;
        validate_model_name(name)?;
        self.update_aliases(name, Some(version), |aliases| {
            Ok(aliases.insert(alias.to_string(), version))
        })
        .await
    }

    async fn remove_alias(&self, name: &str, alias: &str) -> Result<u32> {
        validate_alias(alias)?;
        validate_model_name(name)?;
        let location = self.location.clone();
        self.update_aliases(name, None, |aliases| {
            aliases.remove(alias).ok_or_else(|| Error::AliasNotFound {
                registry: location.clone(),
                name: name.to_string(),
                alias: alias.to_string(),
                existing: aliases.keys().cloned().collect(),
            })
        })
        .await
    }

    async fn delete_version(&self, name: &str, version: u32) -> Result<()> {
        self.resolve_version(&Reference::version(name, version)?).await?;
        // Under the alias table's lease: check, unpublish, then rewrite the table so that every
        // alias move that read it before sees its ETag change (see the module docs).
        let lease_id = self.lease_aliases(name).await?;
        let rel = format!("{name}/aliases.json");
        let base = format!("{name}/versions/{version}/");
        let unpublished = async {
            self.resolve_version(&Reference::version(name, version)?).await?;
            let (aliases, etag) = self.read_aliases(name).await?;
            let pointing: Vec<String> = aliases
                .iter()
                .filter(|(_, v)| **v == version)
                .map(|(a, _)| a.clone())
                .collect();
            if !pointing.is_empty() {
                return Err(Error::VersionAliased {
                    name: name.to_string(),
                    version,
                    aliases: pointing,
                });
            }
            self.delete_blob(&format!("{base}version.json")).await?;
            failpoint::hit("registry.delete.after_unpublish");
            let bytes = serde_json::to_vec_pretty(&aliases).map_err(|e| Error::Internal(e.to_string()))?;
            let condition = Condition::Leased {
                etag: etag.unwrap_or_default(),
                lease_id: lease_id.clone(),
            };
            if !self.put_blob(&rel, bytes, condition).await? {
                return Err(self.backend(
                    &format!("rewrite {rel}"),
                    format!("the lease expired during the deletion of version {version}: check its aliases"),
                ));
            }
            Ok(())
        }
        .await;
        let client = self.container.blob_client(&self.key(&rel));
        // Best effort: an unreleased lease expires by itself.
        let _ = client.release_lease(lease_id, None).await;
        unpublished?;
        // Invisible now; the files go after. A crash here leaves blobs that `leftovers` finds.
        for blob in self.list_blobs(&base).await? {
            self.delete_blob(&blob).await?;
        }
        Ok(())
    }

    async fn collect_garbage(
        &self,
        older_than: std::time::Duration,
        dry_run: bool,
    ) -> Result<Vec<crate::Leftover>> {
        let mut out = Vec::new();
        for leftover in self.leftovers(None).await? {
            // Without a time, the blob store did not say: keep it (it may be in progress).
            if leftover.age.is_none_or(|age| age < older_than) {
                continue;
            }
            if !dry_run {
                let rel = leftover
                    .path
                    .strip_prefix(&self.prefix)
                    .unwrap_or(&leftover.path)
                    .to_string();
                let blobs = self.list_blobs(&rel).await?;
                if blobs.iter().any(|b| b.ends_with("/version.json")) {
                    continue; // published meanwhile: a version, not a leftover
                }
                for blob in blobs {
                    self.delete_blob(&blob).await?;
                }
            }
            out.push(leftover);
        }
        Ok(out)
    }
}

/// How to reach a storage account: its URL, with a SAS query or with an Entra ID credential.
#[derive(Clone)]
pub struct AccountAccess {
    /// The account URL (`https://ACCOUNT.blob.core.windows.net`, or an emulator's), with a SAS
    /// query when `credential` is `None`.
    pub url: String,
    /// The Entra ID credential requests are signed with, if any.
    pub credential: Option<std::sync::Arc<dyn azure_core::credentials::TokenCredential>>,
}

impl std::fmt::Debug for AccountAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a SAS: only the account part is shown.
        let account = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("AccountAccess")
            .field("account", &account)
            .field("entra_id", &self.credential.is_some())
            .finish()
    }
}

/// The storage account and credentials the environment (read through `var`) names, in this
/// order: `AZURE_STORAGE_CONNECTION_STRING` (`AccountName=..;AccountKey=..[;BlobEndpoint=..]`,
/// turned into a short-lived account SAS signed here), `AZURE_STORAGE_SAS_URL`, then Entra ID
/// for `AZURE_STORAGE_ACCOUNT_URL` or `AZURE_STORAGE_ACCOUNT` (https only; the credential
/// chain of [`credential`]). Shared by every Blob client of streamscore (the registry, the
/// inference-log sink and source, exports). Errors name the variables to set; neither they nor
/// anything else here print a secret.
pub fn account_access(var: &dyn Fn(&str) -> Option<String>) -> std::result::Result<AccountAccess, String> {
    if let Some(cs) = var("AZURE_STORAGE_CONNECTION_STRING") {
        return Ok(AccountAccess {
            url: sas_account_url(&cs)?,
            credential: None,
        });
    }
    if let Some(url) = var("AZURE_STORAGE_SAS_URL") {
        return Ok(AccountAccess {
            url,
            credential: None,
        });
    }
    let url = match (var("AZURE_STORAGE_ACCOUNT_URL"), var("AZURE_STORAGE_ACCOUNT")) {
        (Some(url), _) => url,
        (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
        (None, None) => {
            return Err(format!(
                "no Azure Storage credentials: set AZURE_STORAGE_CONNECTION_STRING (AccountName=..;AccountKey=..[;BlobEndpoint=..]) or AZURE_STORAGE_SAS_URL; {}",
                credential::ENTRA_HELP
            ));
        }
    };
    if !url.starts_with("https://") {
        return Err(format!(
            "Entra ID credentials are only sent over https, but the account URL is {url:?}; use https://ACCOUNT.blob.core.windows.net, or a connection string or SAS URL for a local emulator"
        ));
    }
    let chain = credential::credential_chain(var).map_err(|e| format!("{e}; {}", credential::ENTRA_HELP))?;
    let token = credential::build(&chain, var)?;
    Ok(AccountAccess {
        url,
        credential: Some(token),
    })
}

/// [`account_access`] for the process environment (empty variables count as unset).
pub fn account_access_from_env() -> std::result::Result<AccountAccess, String> {
    account_access(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// `http(s)://<account url>?<account SAS>` from a connection string with an account key.
pub fn sas_account_url(connection_string: &str) -> std::result::Result<String, String> {
    let mut parts = BTreeMap::new();
    for kv in connection_string.split(';').filter(|s| !s.trim().is_empty()) {
        if let Some((k, v)) = kv.split_once('=') {
            parts.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let account = parts
        .get("AccountName")
        .ok_or("the connection string has no AccountName")?;
    let key = parts.get("AccountKey").ok_or(
        "the connection string has no AccountKey (SAS-only connection strings: use AZURE_STORAGE_SAS_URL)",
    )?;
    let endpoint = match parts.get("BlobEndpoint") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => {
            let protocol = parts
                .get("DefaultEndpointsProtocol")
                .map_or("https", String::as_str);
            let suffix = parts
                .get("EndpointSuffix")
                .map_or("core.windows.net", String::as_str);
            format!("{protocol}://{account}.blob.{suffix}")
        }
    };
    let expiry = (time::OffsetDateTime::now_utc() + SAS_LIFETIME)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .map_err(|e| e.to_string())?;
    let (permissions, services, resource_types, protocols) = ("rwdlac", "b", "sco", "https,http");
    // Account SAS string-to-sign (service versions before 2020-12-06): account, permissions,
    // services, resource types, start (none), expiry, IP range (none), protocols, version.
    let string_to_sign = format!(
        "{account}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n{protocols}\n{SAS_VERSION}\n"
    );
    let secret = azure_core::credentials::Secret::new(key.clone());
    let signature = azure_core::hmac::hmac_sha256(&string_to_sign, &secret)
        .map_err(|_| "the AccountKey is not valid base64".to_string())?;
    let mut url = Url::parse(&endpoint).map_err(|e| format!("invalid BlobEndpoint: {e}"))?;
    url.query_pairs_mut()
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", services)
        .append_pair("srt", resource_types)
        .append_pair("sp", permissions)
        .append_pair("se", &expiry)
        .append_pair("spr", protocols)
        .append_pair("sig", &signature);
    Ok(url.to_string())
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("streamscore-blob-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    Ok(dir)
}

/// Every file under `root`, as (`a/b` relative name, bytes), sorted.
fn read_tree(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path
                    .strip_prefix(root)
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
                out.push((rel, bytes));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}
