//! The JSONL inference log: Azure ML's data-collection layout on a local disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::batch::ScoredBatch;
use crate::datacollection::{MODEL_INPUTS, MODEL_OUTPUTS, hour_dir, serialized_lines, write_line};
use crate::error::{Error, Result};
use crate::traits::{DeadLetter, InferenceRecord, InferenceSink};

/// The collection dead letters are written to.
pub const DEAD_LETTERS: &str = "dead_letters";

/// Options of [`JsonlSink`].
#[derive(Clone, Debug)]
pub struct JsonlSinkOptions {
    /// The root directory.
    pub root: PathBuf,
    /// Endpoint name in the path. Default `local`.
    pub endpoint: String,
    /// Deployment name in the path. Default `default`.
    pub deployment: String,
    /// Instance id in file names: unique per writer so that several processes can share a
    /// root. Default: a fresh random id.
    pub instance: String,
    /// A part file is closed once it holds this many bytes. Default 64 MiB.
    pub max_bytes: u64,
}

impl JsonlSinkOptions {
    /// Defaults for `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        JsonlSinkOptions {
            root: root.into(),
            endpoint: "local".into(),
            deployment: "default".into(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            // Large enough to keep file counts low, small enough for a reader to load one.
            max_bytes: 64 << 20,
        }
    }
}

/// An open part file, written under a hidden name and renamed when finished.
#[derive(Debug)]
struct Part {
    dir: PathBuf,
    tmp: PathBuf,
    done: PathBuf,
    writer: BufWriter<tokio::fs::File>,
    bytes: u64,
}

/// Writes inference records as Azure ML data-collection lines:
/// `{root}/{endpoint}/{deployment}/{model_inputs|model_outputs}/{yyyy}/{MM}/{dd}/{HH}/{instance}-{seq}.jsonl`,
/// one inputs line and one outputs line per batch, joined by `correlationid`. Dead letters go to
/// the `dead_letters` collection in the same layout.
///
/// Delivery: a part file is written under a hidden name (`.…jsonl.inprogress`) and renamed to its
/// final name when it is finished — on `flush`, when it reaches `max_bytes`, or when the hour
/// changes — after an fsync of the file and of its directory. A reader therefore never sees a
/// half-written file, and everything before a `flush` survives a crash.
#[derive(Debug)]
pub struct JsonlSink {
    options: JsonlSinkOptions,
    parts: HashMap<&'static str, Part>,
    seq: u64,
    /// A line being assembled, reused from batch to batch.
    line: Vec<u8>,
}

impl JsonlSink {
    /// A sink writing under `options.root` (created if missing).
    pub fn new(options: JsonlSinkOptions) -> Result<JsonlSink> {
        std::fs::create_dir_all(&options.root)
            .map_err(|e| Error::io("create directory", &options.root, e))?;
        Ok(JsonlSink {
            options,
            parts: HashMap::new(),
            seq: 0,
            line: Vec::new(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    async fn append(&mut self, collection: &'static str, time_ms: i64, line: &[u8]) -> Result<()> {
        let dir = hour_dir(
            &self.options.root,
            &self.options.endpoint,
            &self.options.deployment,
            collection,
            time_ms,
        );
        let rotate = self
            .parts
            .get(collection)
            .is_some_and(|p| p.dir != dir || p.bytes >= self.options.max_bytes);
        if rotate && let Some(part) = self.parts.remove(collection) {
            finish(part).await?;
        }
        if !self.parts.contains_key(collection) {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| Error::io("create directory", &dir, e))?;
            self.seq += 1;
            let name = format!("{}-{:06}.jsonl", self.options.instance, self.seq);
            let tmp = dir.join(format!(".{name}.inprogress"));
            let file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Error::io("create", &tmp, e))?;
            self.parts.insert(
                collection,
                Part {
                    done: dir.join(&name),
                    dir,
                    tmp,
                    writer: BufWriter::with_capacity(1 << 16, file),
                    bytes: 0,
                },
            );
        }
        let part = self
            .parts
            .get_mut(collection)
            .ok_or_else(|| Error::Internal("part file vanished".into()))?;
        part.writer
            .write_all(line)
            .await
            .map_err(|e| Error::io("write", &part.tmp, e))?;
        part.writer
            .write_all(b"\n")
            .await
            .map_err(|e| Error::io("write", &part.tmp, e))?;
        part.bytes += line.len() as u64 + 1;
        Ok(())
    }
}

async fn finish(mut part: Part) -> Result<()> {
    part.writer
        .flush()
        .await
        .map_err(|e| Error::io("write", &part.tmp, e))?;
    part.writer
        .get_ref()
        .sync_all()
        .await
        .map_err(|e| Error::io("sync", &part.tmp, e))?;
    tokio::fs::rename(&part.tmp, &part.done)
        .await
        .map_err(|e| Error::io("rename", &part.done, e))?;
    // The rename is durable once the directory is synced.
    if let Ok(d) = tokio::fs::File::open(&part.dir).await {
        d.sync_all().await.map_err(|e| Error::io("sync", &part.dir, e))?;
    }
    Ok(())
}

#[async_trait]
impl InferenceSink for JsonlSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        let lines = serialized_lines(records, &self.options.endpoint, &self.options.deployment)?;
        for (time, inputs, outputs) in lines {
            self.append(MODEL_INPUTS, time, &inputs).await?;
            self.append(MODEL_OUTPUTS, time, &outputs).await?;
        }
        Ok(())
    }

    async fn write_scored(&mut self, batch: &ScoredBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let time = batch.info().timestamp_ms;
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
            let written = self.append(collection, time, &line).await;
            if written.is_err() {
                self.line = line;
                return written;
            }
        }
        self.line = line;
        Ok(())
    }

    async fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        for letter in letters {
            let line = serde_json::to_vec(letter).map_err(|e| Error::Internal(e.to_string()))?;
            self.append(DEAD_LETTERS, letter.timestamp_ms, &line).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        for (_, part) in self.parts.drain() {
            finish(part).await?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("jsonl:{}", self.options.root.display())
    }
}
