//! Inference logs in Azure Blob Storage (feature `azure`), through the official
//! `azure_storage_blob` crate: [`BlobSink`] writes them, [`BlobSource`] replays them, and
//! [`BlobStore::read_lines`] reads them for exports.
//!
//! Layout: Azure ML's data-collection path under the spec's prefix (default
//! `modelDataCollector`), the same tree the JSONL sink writes on disk:
//! ```text
//! blob://CONTAINER/PREFIX/{endpoint}/{deployment}/{model_inputs|model_outputs}/{yyyy}/{MM}/{dd}/{HH}/{instance}-{seq}.jsonl
//! ```
//! Each blob is a block blob that grows: lines are cut into blocks that are staged as they
//! fill, and `flush` stages the rest and commits the block list (every block so far). A blob
//! only ever shows committed, whole lines, and what was flushed is durable before the pipeline
//! commits the source position (at-least-once).
//!
//! With `format=parquet` ([`BlobFormat::Parquet`]) the sink writes Parquet parts instead, one
//! blob per flush and hour under `{endpoint}/{deployment}/scored/{yyyy}/{MM}/{dd}/{HH}/`, and the
//! source replays the rows of every `.parquet` blob under the prefix.
//!
//! Failures: writes never fail on the network — what cannot be staged stays in memory and is
//! staged again by the next flush. A flush retries with backoff (10 attempts over ~26 s by
//! default, longer than a service restart) and then returns the error, so the pipeline stops
//! instead of dropping records. Retried stages reuse the same block ids and a retried commit
//! the same list, so an outage produces neither a duplicate line nor a duplicate blob.
//!
//! Credentials: `AZURE_STORAGE_CONNECTION_STRING` (turned into a short-lived SAS signed locally),
//! `AZURE_STORAGE_SAS_URL`, or Entra ID for `AZURE_STORAGE_ACCOUNT_URL` / `AZURE_STORAGE_ACCOUNT`
//! (a service principal, workload identity, managed identity or the Azure CLI): the same rules
//! and order as the Blob registry ([`ml_registry::azure::account_access`]). URLs carry the SAS,
//! so every message leaving this module goes through [`redact`] and `Debug` shows only
//! `blob://CONTAINER/PREFIX`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::http::{ClientOptions, RequestContent, RetryOptions, StatusCode, Url};
use azure_storage_blob::models::{BlobContainerClientListBlobsOptions, BlockLookupList};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::batch::ScoredBatch;
use crate::datacollection::{
    CollectedLine, MODEL_INPUTS, MODEL_OUTPUTS, parse_time_bound, parse_time_ms, serialized_lines, write_line,
};
use crate::error::{Error, Result};
use crate::pipeline::RetryPolicy;
use crate::spec::{Spec, SpecRegistry};
use crate::traits::{Checkpoint, Event, InferenceRecord, InferenceSink, StreamSource};

/// The prefix used when a `blob://CONTAINER` spec has none: Azure ML's data-collection root.
pub const DEFAULT_PREFIX: &str = "modelDataCollector";

/// Blocks per blob before it is rolled over (Azure allows 50,000 committed blocks).
const MAX_BLOCKS: usize = 49_000;

/// Removes SAS signatures (`sig=...`) from a message that may contain a URL.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("sig=") {
        out.push_str(&rest[..i + 4]);
        out.push_str("REDACTED");
        let after = &rest[i + 4..];
        let end = after
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c == ')' || c.is_whitespace())
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The retry policy of Blob operations: 10 attempts, 200 ms doubling to 5 s (about 26 s in
/// all, so a storage account or emulator that restarts is waited for).
pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
    }
}

/// Counts attempts of one operation and waits between them (doubling up to the policy's
/// longest wait).
struct Backoff<'a> {
    what: String,
    policy: &'a RetryPolicy,
    attempt: u32,
    wait: Duration,
}

impl<'a> Backoff<'a> {
    fn new(what: String, policy: &'a RetryPolicy) -> Self {
        Backoff {
            what,
            policy,
            attempt: 1,
            wait: policy.initial_backoff,
        }
    }

    /// After a failure: waits and returns `Ok` when another attempt is due, or the final
    /// error (operation, attempts, last cause, redacted).
    async fn failed(&mut self, cause: &str) -> std::result::Result<(), String> {
        if self.attempt >= self.policy.max_attempts {
            return Err(format!(
                "{} failed after {} attempts: {}",
                self.what,
                self.attempt,
                redact(cause)
            ));
        }
        eprintln!(
            "warning: {} failed (attempt {} of {}): {}; retrying in {} ms",
            self.what,
            self.attempt,
            self.policy.max_attempts,
            redact(cause),
            self.wait.as_millis()
        );
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(self.policy.max_backoff);
        self.attempt += 1;
        Ok(())
    }
}

/// A container and prefix of a storage account, with the client that reaches them.
pub struct BlobStore {
    container: BlobContainerClient,
    /// The prefix with a trailing `/`.
    prefix: String,
    location: String,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The container URL holds the SAS: only the location is shown.
        f.debug_struct("BlobStore")
            .field("location", &self.location)
            .finish()
    }
}

impl BlobStore {
    /// Opens `blob://CONTAINER[/PREFIX]` with the credentials from the environment.
    pub fn open(location: &str) -> Result<BlobStore> {
        let spec = Spec::parse(location)?;
        BlobStore::from_spec(&spec)
    }

    /// Opens a parsed `blob://CONTAINER[/PREFIX]` spec with the credentials from the environment.
    pub fn from_spec(spec: &Spec) -> Result<BlobStore> {
        BlobStore::from_spec_with(spec, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`BlobStore::from_spec`] with the environment read through `var`.
    pub fn from_spec_with(spec: &Spec, var: &dyn Fn(&str) -> Option<String>) -> Result<BlobStore> {
        let bad = |reason: String| Error::InvalidSpec {
            spec: spec.raw.clone(),
            reason,
        };
        let container = spec
            .authority
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("expected blob://CONTAINER[/PREFIX]".into()))?;
        let access = ml_registry::azure::account_access(var).map_err(bad)?;
        BlobStore::with_credential(&access.url, access.credential, container, &spec.path)
    }

    /// The store for `container` under `prefix` (empty: [`DEFAULT_PREFIX`]) of the account at
    /// `account_url` (with a SAS query, or none for public containers).
    pub fn new(account_url: &str, container: &str, prefix: &str) -> Result<BlobStore> {
        BlobStore::with_credential(account_url, None, container, prefix)
    }

    /// [`BlobStore::new`] with requests signed by an Entra ID token credential (the account URL
    /// must then be https and carry no SAS).
    pub fn with_credential(
        account_url: &str,
        credential: Option<std::sync::Arc<dyn azure_core::credentials::TokenCredential>>,
        container: &str,
        prefix: &str,
    ) -> Result<BlobStore> {
        let prefix = match prefix.trim_matches('/') {
            "" => DEFAULT_PREFIX,
            p => p,
        };
        let location = format!("blob://{container}/{prefix}");
        let bad = |reason: String| Error::InvalidSpec {
            spec: location.clone(),
            reason: redact(&reason),
        };
        let mut url = Url::parse(account_url).map_err(|e| bad(format!("invalid account URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| bad("the account URL cannot take a path".into()))?
            .pop_if_empty()
            .push(container);
        // Retries are ours (Backoff), so that their count and timing are known and logged.
        let options = BlobContainerClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                ..Default::default()
            },
            ..Default::default()
        };
        let container =
            BlobContainerClient::new(url, credential, Some(options)).map_err(|e| bad(e.to_string()))?;
        Ok(BlobStore {
            container,
            prefix: format!("{prefix}/"),
            location,
        })
    }

    /// `blob://CONTAINER/PREFIX`, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Creates the container if it does not exist yet.
    pub async fn create_container_if_missing(&self) -> Result<()> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(self.failed("create container", e)),
        }
    }

    fn failed(&self, op: &str, e: impl fmt::Display) -> Error {
        Error::SourceFailed {
            source_name: self.location.clone(),
            reason: redact(&format!("{op}: {e}")),
        }
    }

    /// The full blob name of `rel` (relative to the prefix).
    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// Blobs under the prefix whose relative name starts with `under`, as (relative name,
    /// size), sorted by name.
    pub async fn list(&self, under: &str) -> Result<Vec<(String, u64)>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(self.key(under)),
            ..Default::default()
        };
        let mut pager = self
            .container
            .list_blobs(Some(options))
            .map_err(|e| self.failed("list blobs", e))?;
        let mut out = Vec::new();
        loop {
            match pager.try_next().await {
                Ok(Some(item)) => {
                    let size = item
                        .properties
                        .as_ref()
                        .and_then(|p| p.content_length)
                        .unwrap_or(0);
                    if let Some(rel) = item.name.as_deref().and_then(|n| n.strip_prefix(&self.prefix)) {
                        out.push((rel.to_string(), size));
                    }
                }
                Ok(None) => break,
                Err(e) if e.http_status() == Some(StatusCode::NotFound) => break,
                Err(e) => return Err(self.failed("list blobs", e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// The bytes of blob `rel`.
    pub async fn download(&self, rel: &str) -> Result<Vec<u8>> {
        let client = self.container.blob_client(&self.key(rel));
        let response = client
            .download(None)
            .await
            .map_err(|e| self.failed(&format!("download {rel}"), e))?;
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| self.failed(&format!("download {rel}"), e))?;
        Ok(body.to_vec())
    }

    /// Uploads `bytes` as blob `rel` (replacing it), with retries.
    pub async fn upload(&self, rel: &str, bytes: Vec<u8>, retry: &RetryPolicy) -> Result<()> {
        let client = self.container.blob_client(&self.key(rel));
        let mut backoff = Backoff::new(format!("upload {}/{rel}", self.location), retry);
        loop {
            match client.upload(RequestContent::from(bytes.clone()), None).await {
                Ok(_) => return Ok(()),
                Err(e) => backoff
                    .failed(&e.to_string())
                    .await
                    .map_err(|reason| Error::SinkFailed {
                        sink: self.location.clone(),
                        attempts: retry.max_attempts,
                        reason,
                    })?,
            }
        }
    }

    /// Every data-collection line of `collection` whose hour directory overlaps
    /// `[since, until)` and whose `time` lies in it (Unix milliseconds; `None`: unbounded), in
    /// blob-name order, with the blob each came from.
    pub async fn read_lines(
        &self,
        collection: &str,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<(String, CollectedLine)>> {
        let mut out = Vec::new();
        for (rel, _) in self.list("").await? {
            if !in_collection(&rel, collection) || !hour_overlaps(&rel, since, until) {
                continue;
            }
            let bytes = self.download(&rel).await?;
            for line in parse_lines(&self.location, &rel, &bytes)? {
                if time_in_range(&line.time, since, until) {
                    out.push((rel.clone(), line));
                }
            }
        }
        Ok(out)
    }
}

/// True when `rel` is a `.jsonl` blob of `collection` in the data-collection layout
/// (`{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/{file}`).
fn in_collection(rel: &str, collection: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    parts.len() >= 6 && rel.ends_with(".jsonl") && parts[parts.len() - 6] == collection
}

/// The start of the hour a layout path names (Unix milliseconds): the data-collection layout
/// (`.../{yyyy}/{MM}/{dd}/{HH}/blob`) or an export's (`.../date=YYYY-MM-DD/hour=HH/blob`).
fn hour_of(rel: &str) -> Option<i64> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() >= 3
        && let (Some(date), Some(hour)) = (
            parts[parts.len() - 3].strip_prefix("date="),
            parts[parts.len() - 2].strip_prefix("hour="),
        )
    {
        let mut ymd = date.splitn(3, '-').map(str::parse::<i32>);
        let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), Ok(h)) =
            (ymd.next(), ymd.next(), ymd.next(), hour.parse::<u8>())
        else {
            return None;
        };
        let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
        let date = time::Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
        let t = date.with_hms(h, 0, 0).ok()?.assume_utc();
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if parts.len() < 5 {
        return None;
    }
    let n = parts.len();
    let year: i32 = parts[n - 5].parse().ok()?;
    let month: u8 = parts[n - 4].parse().ok()?;
    let day: u8 = parts[n - 3].parse().ok()?;
    let hour: u8 = parts[n - 2].parse().ok()?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let t = date.with_hms(hour, 0, 0).ok()?.assume_utc();
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn hour_overlaps(rel: &str, since: Option<i64>, until: Option<i64>) -> bool {
    match hour_of(rel) {
        None => true,
        Some(start) => since.is_none_or(|s| start + 3_600_000 > s) && until.is_none_or(|u| start < u),
    }
}

fn time_in_range(time: &str, since: Option<i64>, until: Option<i64>) -> bool {
    ms_in_range(parse_time_ms(time), since, until)
}

/// Whether a row at `time_ms` is inside `[since, until)`; a row without a time only when there
/// are no bounds.
fn ms_in_range(time_ms: Option<i64>, since: Option<i64>, until: Option<i64>) -> bool {
    match time_ms {
        None => since.is_none() && until.is_none(),
        Some(t) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u),
    }
}

fn parse_lines(location: &str, rel: &str, bytes: &[u8]) -> Result<Vec<CollectedLine>> {
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: CollectedLine = serde_json::from_slice(line).map_err(|e| Error::SourceFailed {
            source_name: format!("{location}/{rel}"),
            reason: format!("line {} is not a data-collection record: {e}", i + 1),
        })?;
        out.push(parsed);
    }
    Ok(out)
}

/// Options of [`BlobSink`].
#[derive(Clone, Debug)]
pub struct BlobSinkOptions {
    /// Endpoint name in the path. Default `local`.
    pub endpoint: String,
    /// Deployment name in the path. Default `default`.
    pub deployment: String,
    /// Instance id in blob names, unique per writer. Default: a fresh random id.
    pub instance: String,
    /// A blob is rolled over once it holds this many bytes. Default 64 MiB.
    pub max_bytes: u64,
    /// Lines are cut into blocks of about this many bytes, staged as they fill. Default 4 MiB.
    pub block_bytes: usize,
    /// Retries of a flush (staging and committing). Default [`default_retry`].
    pub retry: RetryPolicy,
    /// What is written. Default [`BlobFormat::Jsonl`].
    pub format: BlobFormat,
}

/// What a [`BlobSink`] writes, and what a [`BlobSource`] replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BlobFormat {
    /// Azure ML data-collection JSON lines, in collections `model_inputs` and `model_outputs`
    /// (the format Azure ML's own data collector writes).
    #[default]
    Jsonl,
    /// Parquet parts: one blob per flush and hour,
    /// `{endpoint}/{deployment}/scored/{yyyy}/{MM}/{dd}/{HH}/{instance}-{seq}.parquet`, each row
    /// a scored row with the model's fields, its predictions and the position columns of the
    /// Parquet sink (`_partition`, `_offset`, `_event_time_ms`, ...). For a source: every
    /// `.parquet` blob under the prefix (these parts, or a `streamscore export` data set).
    Parquet,
}

impl BlobFormat {
    /// `jsonl` or `parquet`.
    pub fn parse(text: &str) -> Result<BlobFormat> {
        match text {
            "jsonl" => Ok(BlobFormat::Jsonl),
            "parquet" => Ok(BlobFormat::Parquet),
            other => Err(Error::InvalidSetting {
                name: "format",
                reason: format!("unknown format {other:?}; use jsonl or parquet"),
            }),
        }
    }
}

/// The collection directory of Parquet parts.
pub const SCORED: &str = "scored";

impl Default for BlobSinkOptions {
    fn default() -> Self {
        BlobSinkOptions {
            endpoint: "local".into(),
            deployment: "default".into(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            max_bytes: 64 << 20,
            block_bytes: 4 << 20,
            retry: default_retry(),
            format: BlobFormat::Jsonl,
        }
    }
}

/// A blob being written: committed block ids, and blocks not yet committed (kept in memory
/// until their commit succeeds, so they can be staged again).
#[derive(Debug)]
struct OpenBlob {
    rel: String,
    dir: String,
    committed: Vec<Vec<u8>>,
    pending: Vec<PendingBlock>,
    buffer: Vec<u8>,
    bytes: u64,
}

#[derive(Debug)]
struct PendingBlock {
    id: Vec<u8>,
    data: Vec<u8>,
    staged: bool,
}

impl OpenBlob {
    fn block_count(&self) -> usize {
        self.committed.len() + self.pending.len()
    }

    /// Moves the buffered lines into a new pending block.
    fn cut(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        // Same length for every id of a blob, as the service requires.
        let id = format!("{:010}", self.block_count()).into_bytes();
        let data = std::mem::take(&mut self.buffer);
        self.pending.push(PendingBlock {
            id,
            data,
            staged: false,
        });
    }
}

/// Writes inference records to Blob Storage in Azure ML's data-collection layout (see the
/// module documentation for blocks, commits and retries). Dead letters are not stored here.
pub struct BlobSink {
    store: BlobStore,
    options: BlobSinkOptions,
    open: HashMap<&'static str, OpenBlob>,
    /// Blobs rolled over whose last blocks are not committed yet.
    closing: Vec<OpenBlob>,
    seq: u64,
    line: Vec<u8>,
    /// Parquet format: batches since the last flush, by hour directory.
    parquet_batches: BTreeMap<String, Vec<arrow_array::RecordBatch>>,
    /// Parquet format: encoded parts not uploaded yet (relative name, bytes), in order. A part
    /// keeps its name until its upload succeeds, so a retried flush overwrites instead of
    /// duplicating.
    parquet_parts: VecDeque<(String, Vec<u8>)>,
}

impl fmt::Debug for BlobSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSink")
            .field("location", &self.store.location)
            .field("instance", &self.options.instance)
            .finish()
    }
}

impl BlobSink {
    /// A sink writing to `store`.
    pub fn new(store: BlobStore, options: BlobSinkOptions) -> BlobSink {
        BlobSink {
            store,
            options,
            open: HashMap::new(),
            closing: Vec::new(),
            seq: 0,
            line: Vec::new(),
            parquet_batches: BTreeMap::new(),
            parquet_parts: VecDeque::new(),
        }
    }

    /// `{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}` of `time_ms`.
    fn hour_dir(&self, collection: &str, time_ms: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        format!(
            "{}/{}/{collection}/{:04}/{:02}/{:02}/{:02}",
            self.options.endpoint,
            self.options.deployment,
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour()
        )
    }

    /// Parquet format: encodes the batches buffered since the last flush into parts (one per
    /// hour directory and column set) and uploads every part not uploaded yet, in order.
    async fn flush_parquet(&mut self) -> Result<()> {
        let what = std::path::PathBuf::from(&self.store.location);
        for (dir, batches) in std::mem::take(&mut self.parquet_batches) {
            let mut start = 0;
            while start < batches.len() {
                let schema = batches[start].schema();
                let end = start
                    + batches[start..]
                        .iter()
                        .take_while(|b| b.schema() == schema)
                        .count();
                let bytes = crate::parquet::encode(&batches[start..end], &what)?;
                self.seq += 1;
                let rel = format!("{dir}/{}-{:06}.parquet", self.options.instance, self.seq);
                self.parquet_parts.push_back((rel, bytes));
                start = end;
            }
        }
        while let Some((rel, bytes)) = self.parquet_parts.front() {
            self.store.upload(rel, bytes.clone(), &self.options.retry).await?;
            self.parquet_parts.pop_front();
        }
        Ok(())
    }

    /// The store written to.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    fn append(&mut self, collection: &'static str, time_ms: i64, line: &[u8]) {
        let dir = self.hour_dir(collection, time_ms);
        let roll = self.open.get(collection).is_some_and(|b| {
            b.dir != dir || b.bytes >= self.options.max_bytes || b.block_count() >= MAX_BLOCKS
        });
        if roll && let Some(mut blob) = self.open.remove(collection) {
            blob.cut();
            self.closing.push(blob);
        }
        let blob = self.open.entry(collection).or_insert_with(|| {
            self.seq += 1;
            OpenBlob {
                rel: format!("{dir}/{}-{:06}.jsonl", self.options.instance, self.seq),
                dir,
                committed: Vec::new(),
                pending: Vec::new(),
                buffer: Vec::new(),
                bytes: 0,
            }
        });
        blob.buffer.extend_from_slice(line);
        blob.buffer.push(b'\n');
        blob.bytes += line.len() as u64 + 1;
        if blob.buffer.len() >= self.options.block_bytes {
            blob.cut();
        }
    }

    /// Stages the full blocks cut since the last call, once each: a failure is not an error
    /// here (the block stays pending and the flush stages it with retries), so a write never
    /// has to be repeated — repeating it would duplicate lines.
    async fn stage_ready(&mut self) {
        let store = &self.store;
        for blob in self.open.values_mut() {
            let client = store
                .container
                .blob_client(&store.key(&blob.rel))
                .block_blob_client();
            for block in blob.pending.iter_mut().filter(|b| !b.staged) {
                let len = block.data.len() as u64;
                let staged = client
                    .stage_block(&block.id, len, RequestContent::from(block.data.clone()), None)
                    .await;
                match staged {
                    Ok(_) => block.staged = true,
                    Err(_) => return,
                }
            }
        }
    }

    /// One attempt: stages the blocks not staged yet, then commits `all`.
    async fn try_commit(
        client: &azure_storage_blob::BlockBlobClient,
        pending: &mut [PendingBlock],
        all: &[Vec<u8>],
    ) -> std::result::Result<(), String> {
        for block in pending.iter_mut().filter(|b| !b.staged) {
            let len = block.data.len() as u64;
            client
                .stage_block(&block.id, len, RequestContent::from(block.data.clone()), None)
                .await
                .map_err(|e| format!("stage block: {e}"))?;
            block.staged = true;
        }
        let list = BlockLookupList {
            latest: Some(all.to_vec()),
            ..Default::default()
        };
        let body = RequestContent::try_from(list).map_err(|e| e.to_string())?;
        client
            .commit_block_list(body, None)
            .await
            .map(|_| ())
            .map_err(|e| format!("commit block list: {e}"))
    }

    /// Stages what is pending of `blob` and commits its block list, with retries. On a failed
    /// commit every pending block is staged again: a service that lost uncommitted blocks
    /// (restarted) gets them back, and staging the same id twice is harmless.
    async fn commit(store: &BlobStore, blob: &mut OpenBlob, retry: &RetryPolicy) -> Result<()> {
        blob.cut();
        if blob.pending.is_empty() {
            return Ok(());
        }
        let client = store
            .container
            .blob_client(&store.key(&blob.rel))
            .block_blob_client();
        let what = format!("commit {}/{}", store.location, blob.rel);
        let mut all: Vec<Vec<u8>> = blob.committed.clone();
        all.extend(blob.pending.iter().map(|b| b.id.clone()));
        let mut backoff = Backoff::new(what, retry);
        loop {
            match BlobSink::try_commit(&client, &mut blob.pending, &all).await {
                Ok(()) => break,
                Err(cause) => {
                    backoff.failed(&cause).await.map_err(|reason| Error::SinkFailed {
                        sink: store.location.clone(),
                        attempts: retry.max_attempts,
                        reason,
                    })?;
                    blob.pending.iter_mut().for_each(|b| b.staged = false);
                }
            }
        }
        blob.committed = all;
        blob.pending.clear();
        Ok(())
    }
}

#[async_trait]
impl InferenceSink for BlobSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        if self.options.format == BlobFormat::Parquet {
            let what = std::path::PathBuf::from(&self.store.location);
            let mut by_dir: BTreeMap<String, Vec<&InferenceRecord>> = BTreeMap::new();
            for r in records {
                by_dir
                    .entry(self.hour_dir(SCORED, r.timestamp_ms))
                    .or_default()
                    .push(r);
            }
            for (dir, rows) in by_dir {
                let batch = crate::parquet::records_batch(&rows, &what)?;
                self.parquet_batches.entry(dir).or_default().push(batch);
            }
            return Ok(());
        }
        let lines = serialized_lines(records, &self.options.endpoint, &self.options.deployment)?;
        for (time, inputs, outputs) in lines {
            self.append(MODEL_INPUTS, time, &inputs);
            self.append(MODEL_OUTPUTS, time, &outputs);
        }
        self.stage_ready().await;
        Ok(())
    }

    async fn write_scored(&mut self, batch: &ScoredBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let time = batch.info().timestamp_ms;
        if self.options.format == BlobFormat::Parquet {
            let record_batch =
                crate::parquet::scored_batch(batch, std::path::Path::new(&self.store.location))?;
            let dir = self.hour_dir(SCORED, time);
            self.parquet_batches.entry(dir).or_default().push(record_batch);
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.line);
        for collection in [MODEL_INPUTS, MODEL_OUTPUTS] {
            line.clear();
            write_line(
                &mut line,
                batch,
                collection,
                &self.options.endpoint,
                &self.options.deployment,
            );
            self.append(collection, time, &line);
        }
        self.line = line;
        self.stage_ready().await;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        while let Some(mut blob) = self.closing.pop() {
            let done = BlobSink::commit(&self.store, &mut blob, &self.options.retry).await;
            if let Err(e) = done {
                self.closing.push(blob);
                return Err(e);
            }
        }
        for blob in self.open.values_mut() {
            BlobSink::commit(&self.store, blob, &self.options.retry).await?;
        }
        self.flush_parquet().await?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.store.location.clone()
    }
}

/// Options of [`BlobSource`].
#[derive(Clone, Debug)]
pub struct BlobSourceOptions {
    /// The collection replayed. Default `model_inputs` (the rows as they were scored).
    pub collection: String,
    /// Lines from this time on (Unix milliseconds). Default: all.
    pub since_ms: Option<i64>,
    /// Lines before this time. Default: all.
    pub until_ms: Option<i64>,
    /// Where to remember which blobs (and how many of their bytes) are done; none: every run
    /// replays everything.
    pub state_file: Option<PathBuf>,
    /// What is replayed: data-collection lines of `collection` (the default), or the rows of
    /// every `.parquet` blob under the prefix ([`BlobFormat::Parquet`]; `collection` unused).
    pub format: BlobFormat,
}

impl Default for BlobSourceOptions {
    fn default() -> Self {
        BlobSourceOptions {
            collection: MODEL_INPUTS.into(),
            since_ms: None,
            until_ms: None,
            state_file: None,
            format: BlobFormat::Jsonl,
        }
    }
}

/// What a [`BlobSource`]'s state file holds: blob → bytes replayed and committed. A blob that
/// grew since is read again from there.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SourceState {
    done: BTreeMap<String, u64>,
}

/// Replays the rows of data-collection blobs as events (one event per row of `data`, in blob
/// and line order; partition 0, offsets counted from 0 in each run; the event time is the
/// line's `time`). Meant for backfills, drift on history and retraining data.
///
/// Checkpointing: when the pipeline commits past the last row of a blob, the blob's size is
/// recorded in the state file (write, fsync, rename); a restart skips what was recorded and
/// reads blobs that grew from where they were left. Rows of a blob not finished at a crash
/// are replayed (at-least-once).
#[derive(Debug)]
pub struct BlobSource {
    store: BlobStore,
    options: BlobSourceOptions,
    state: SourceState,
    listed: Option<VecDeque<(String, u64)>>,
    queue: VecDeque<Event>,
    /// Blobs read but not committed: (name, last offset + 1, size).
    reading: VecDeque<(String, u64, u64)>,
    next_offset: u64,
}

impl BlobSource {
    /// A source over `store`, resuming from the state file when there is one.
    pub fn new(store: BlobStore, options: BlobSourceOptions) -> Result<BlobSource> {
        let state = match &options.state_file {
            None => SourceState::default(),
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::SourceFailed {
                    source_name: store.location.clone(),
                    reason: format!(
                        "state file {} is corrupt ({e}); remove it to start over",
                        path.display()
                    ),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => SourceState::default(),
                Err(e) => return Err(Error::io("read state", path, e)),
            },
        };
        Ok(BlobSource {
            store,
            options,
            state,
            listed: None,
            queue: VecDeque::new(),
            reading: VecDeque::new(),
            next_offset: 0,
        })
    }

    async fn read_next_blob(&mut self) -> Result<bool> {
        if self.listed.is_none() {
            let (collection, since, until, format) = (
                &self.options.collection,
                self.options.since_ms,
                self.options.until_ms,
                self.options.format,
            );
            let blobs = self
                .store
                .list("")
                .await?
                .into_iter()
                .filter(|(rel, size)| {
                    let wanted = match format {
                        BlobFormat::Jsonl => in_collection(rel, collection),
                        BlobFormat::Parquet => rel.ends_with(".parquet"),
                    };
                    wanted
                        && hour_overlaps(rel, since, until)
                        && self.state.done.get(rel).is_none_or(|done| done < size)
                })
                .collect();
            self.listed = Some(blobs);
        }
        let Some((rel, _)) = self.listed.as_mut().and_then(VecDeque::pop_front) else {
            return Ok(false);
        };
        let bytes = self.store.download(&rel).await?;
        if self.options.format == BlobFormat::Parquet {
            let what = PathBuf::from(format!("{}/{rel}", self.store.location));
            let size = bytes.len() as u64;
            let (since, until) = (self.options.since_ms, self.options.until_ms);
            for (row, time) in crate::parquet::json_rows(bytes.into(), &what)? {
                if !ms_in_range(time, since, until) {
                    continue;
                }
                let payload = serde_json::to_vec(&row).map_err(|e| Error::Internal(e.to_string()))?;
                let mut event = Event::new(payload, 0, self.next_offset);
                event.timestamp_ms = time;
                self.next_offset += 1;
                self.queue.push_back(event);
            }
            self.reading.push_back((rel, self.next_offset, size));
            return Ok(true);
        }
        // Only whole lines count; a reader never sees half a committed line, but be strict.
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let skip = self.state.done.get(&rel).copied().unwrap_or(0) as usize;
        let body = bytes.get(skip.min(whole)..whole).unwrap_or_default();
        for line in parse_lines(&self.store.location, &rel, body)? {
            if !time_in_range(&line.time, self.options.since_ms, self.options.until_ms) {
                continue;
            }
            let time = parse_time_ms(&line.time);
            for row in &line.data {
                let payload = serde_json::to_vec(row).map_err(|e| Error::Internal(e.to_string()))?;
                let mut event = Event::new(payload, 0, self.next_offset);
                event.timestamp_ms = time;
                self.next_offset += 1;
                self.queue.push_back(event);
            }
        }
        self.reading.push_back((rel, self.next_offset, whole as u64));
        Ok(true)
    }

    async fn save_state(&self) -> Result<()> {
        let Some(path) = &self.options.state_file else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&self.state).map_err(|e| Error::Internal(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, &bytes)
            .await
            .map_err(|e| Error::io("write state", &tmp, e))?;
        let f = tokio::fs::File::open(&tmp)
            .await
            .map_err(|e| Error::io("open state", &tmp, e))?;
        f.sync_all().await.map_err(|e| Error::io("sync state", &tmp, e))?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| Error::io("rename state", path, e))
    }
}

#[async_trait]
impl StreamSource for BlobSource {
    async fn next_batch(&mut self, max: usize, _deadline: Instant) -> Result<Vec<Event>> {
        while self.queue.len() < max && self.read_next_blob().await? {}
        let n = self.queue.len().min(max);
        Ok(self.queue.drain(..n).collect())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let next = checkpoint.next_offsets.get(&0).copied().unwrap_or(0);
        let mut changed = false;
        while self.reading.front().is_some_and(|(_, end, _)| *end <= next) {
            if let Some((rel, _, size)) = self.reading.pop_front() {
                self.state.done.insert(rel, size);
                changed = true;
            }
        }
        if changed {
            self.save_state().await?;
        }
        Ok(())
    }

    fn is_exhausted(&self) -> bool {
        self.queue.is_empty() && self.listed.as_ref().is_some_and(VecDeque::is_empty)
    }

    fn describe(&self) -> String {
        self.store.location.clone()
    }
}

pub(crate) fn register(registry: &mut SpecRegistry) {
    registry.register_sink("blob", |spec| {
        spec.only_params(&[
            "endpoint",
            "deployment",
            "instance",
            "max_bytes",
            "block_bytes",
            "format",
        ])?;
        let mut options = BlobSinkOptions::default();
        if let Some(f) = spec.params.get("format") {
            options.format = BlobFormat::parse(f)?;
        }
        if let Some(e) = spec.params.get("endpoint") {
            options.endpoint = e.clone();
        }
        if let Some(d) = spec.params.get("deployment") {
            options.deployment = d.clone();
        }
        if let Some(i) = spec.params.get("instance") {
            options.instance = i.clone();
        }
        options.max_bytes = spec.u64_param("max_bytes", options.max_bytes)?;
        options.block_bytes = spec.u64_param("block_bytes", options.block_bytes as u64)?.max(1) as usize;
        Ok(Box::new(BlobSink::new(BlobStore::from_spec(spec)?, options)))
    });
    registry.register_source("blob", |spec| {
        spec.only_params(&["collection", "since", "until", "state", "format"])?;
        let mut options = BlobSourceOptions::default();
        if let Some(f) = spec.params.get("format") {
            options.format = BlobFormat::parse(f)?;
        }
        if let Some(c) = spec.params.get("collection") {
            options.collection = c.clone();
        }
        options.since_ms = spec
            .params
            .get("since")
            .map(|t| parse_time_bound("since", t))
            .transpose()?;
        options.until_ms = spec
            .params
            .get("until")
            .map(|t| parse_time_bound("until", t))
            .transpose()?;
        options.state_file = spec.params.get("state").map(Into::into);
        Ok(Box::new(BlobSource::new(BlobStore::from_spec(spec)?, options)?))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_redacted() {
        let m = "error sending request for url (http://h/c/b?sv=2019&sig=abc%2Bdef&se=x): refused";
        assert_eq!(
            redact(m),
            "error sending request for url (http://h/c/b?sv=2019&sig=REDACTED&se=x): refused"
        );
        assert_eq!(redact("sig=zzz"), "sig=REDACTED");
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn layout_paths_are_recognised() {
        let rel = "credit/blue/model_inputs/2026/11/27/15/abc-000001.jsonl";
        assert!(in_collection(rel, MODEL_INPUTS));
        assert!(!in_collection(rel, MODEL_OUTPUTS));
        assert!(!in_collection("credit/blue/model_inputs/x.jsonl", MODEL_INPUTS));
        let hour = parse_time_ms("2026-11-27T15:00:00Z").unwrap();
        assert_eq!(hour_of(rel), Some(hour));
        assert_eq!(
            hour_of("exports/date=2026-11-27/hour=15/part-x.parquet"),
            Some(hour)
        );
        assert_eq!(hour_of("exports/date=2026-13-27/hour=15/part-x.parquet"), None);
        assert!(hour_overlaps(rel, Some(hour + 3_599_999), None));
        assert!(!hour_overlaps(rel, Some(hour + 3_600_000), None));
        assert!(hour_overlaps(rel, None, Some(hour + 1)));
        assert!(!hour_overlaps(rel, None, Some(hour)));
        assert_eq!(
            parse_time_bound("since", "2026-11-27").unwrap(),
            hour - 15 * 3_600_000
        );
        let e = parse_time_bound("until", "yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
