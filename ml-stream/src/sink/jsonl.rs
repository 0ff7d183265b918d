//! The JSONL inference log: Azure ML's data-collection layout on a local disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

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
///
/// Lines are serialized straight into `buf`; a full buffer is handed whole to Tokio's blocking
/// pool, which writes it to the file while the next lines fill the spare buffer (no copy into
/// a second buffer, at most one write in flight per part).
#[derive(Debug)]
struct Part {
    dir: PathBuf,
    tmp: PathBuf,
    done: PathBuf,
    /// The file, while no write is in flight (`None` also when a write task was lost).
    file: Option<std::fs::File>,
    /// Lines not yet handed to a write, in order (after the bytes of a failed write).
    buf: Vec<u8>,
    /// The buffer of the last finished write, kept for reuse.
    spare: Vec<u8>,
    /// The write in flight: it gives back the file, and its buffer (empty after a success,
    /// the bytes it did not write after a failure).
    writing: Option<Writing>,
    bytes: u64,
    /// How far [`finish`] got, so that a finish that failed is resumed where it stopped.
    stage: Stage,
}

type Writing = tokio::task::JoinHandle<(std::fs::File, Vec<u8>, std::io::Result<()>)>;

impl Part {
    /// Waits for the write in flight. After a failure, the bytes it did not write go back in
    /// front of `buf`, to be written again by the next write (nothing is skipped).
    async fn settle(&mut self) -> Result<()> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let (file, mut rest, result) = writing
            .await
            .map_err(|e| Error::Internal(format!("writing {} failed: {e}", self.tmp.display())))?;
        self.file = Some(file);
        match result {
            Ok(()) => {
                rest.clear();
                self.spare = rest;
                Ok(())
            }
            Err(e) => {
                rest.extend_from_slice(&self.buf);
                self.buf = rest;
                Err(Error::io("write", &self.tmp, e))
            }
        }
    }

    /// Hands the buffered lines to a write in the blocking pool, after the previous write.
    async fn write_out(&mut self) -> Result<()> {
        self.settle().await?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut file = self.take_file()?;
        let next = std::mem::take(&mut self.spare);
        let mut buf = std::mem::replace(&mut self.buf, next);
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let result = write_all(&mut file, &mut buf);
            (file, buf, result)
        }));
        Ok(())
    }

    fn take_file(&mut self) -> Result<std::fs::File> {
        self.file.take().ok_or_else(|| {
            Error::io(
                "write",
                &self.tmp,
                std::io::Error::other("the part file was lost by a failed write task"),
            )
        })
    }
}

/// Writes `buf` to `file`; on a failure, `buf` keeps the bytes not written.
fn write_all(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Write;
    let mut written = 0;
    while written < buf.len() {
        match file.write(&buf[written..]) {
            Ok(0) => {
                buf.drain(..written);
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.drain(..written);
                return Err(e);
            }
        }
    }
    buf.clear();
    Ok(())
}

/// The steps of finishing a part file, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Being written.
    Open,
    /// Flushed and fsynced under its hidden name.
    Synced,
    /// Renamed to its final name (its directory not yet fsynced).
    Renamed,
}

/// A part file being finished by a background task (a rotated part): the task gives the part
/// back when its finish failed, so that the next `flush` finishes it again.
type Closing = tokio::task::JoinHandle<std::result::Result<(), (Part, Error)>>;

/// The write buffer of a part file: each write of the file is a hand-off to Tokio's blocking
/// pool, so several batches' lines are gathered first (a batch of 512 typical events makes an
/// inputs line of about 128 KiB). Two per part: one filled while the other is written.
const WRITE_BUFFER: usize = 1 << 20;

/// Rotated parts finished in the background at once, at most: a rotation waits for the oldest
/// beyond this (only when the disk cannot keep up with the fsyncs).
const MAX_CLOSING: usize = 4;

/// Writes inference records as Azure ML data-collection lines:
/// `{root}/{endpoint}/{deployment}/{model_inputs|model_outputs}/{yyyy}/{MM}/{dd}/{HH}/{instance}-{seq}.jsonl`,
/// one inputs line and one outputs line per batch, joined by `correlationid`. Dead letters go to
/// the `dead_letters` collection in the same layout.
///
/// Delivery: a part file is written under a hidden name (`.…jsonl.inprogress`) and renamed to its
/// final name when it is finished — on `flush`, when it reaches `max_bytes`, or when the hour
/// changes — after an fsync of the file and of its directory. A reader therefore never sees a
/// half-written file, and everything before a `flush` survives a crash. A part that reaches
/// `max_bytes` or an hour boundary is finished by a background task while writing goes on in a
/// new part (an fsync of a large file would otherwise stall the stream); `flush` waits for those
/// tasks, and a part whose finish failed is finished again by the next `flush`, which fails
/// until it succeeds.
#[derive(Debug)]
pub struct JsonlSink {
    options: JsonlSinkOptions,
    parts: HashMap<&'static str, Part>,
    seq: u64,
    /// Rotated parts being finished in the background, oldest first.
    closing: std::collections::VecDeque<Closing>,
    /// Parts whose finish failed, to be finished by the next `flush`.
    unfinished: Vec<Part>,
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
            closing: std::collections::VecDeque::new(),
            unfinished: Vec::new(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    /// The open part of `collection` for a line of `time_ms`: a part whose hour is over or
    /// that reached `max_bytes` is rotated (finished in the background) and a new one opened.
    async fn part(&mut self, collection: &'static str, time_ms: i64) -> Result<&mut Part> {
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
        if rotate && let Some(mut part) = self.parts.remove(collection) {
            self.closing.push_back(tokio::spawn(async move {
                match finish(&mut part).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err((part, e)),
                }
            }));
            if self.closing.len() > MAX_CLOSING
                && let Some(oldest) = self.closing.pop_front()
            {
                self.settle(oldest).await?;
            }
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
                .map_err(|e| Error::io("create", &tmp, e))?
                .into_std()
                .await;
            self.parts.insert(
                collection,
                Part {
                    done: dir.join(&name),
                    dir,
                    tmp,
                    file: Some(file),
                    buf: Vec::with_capacity(WRITE_BUFFER + WRITE_BUFFER / 4),
                    spare: Vec::new(),
                    writing: None,
                    bytes: 0,
                    stage: Stage::Open,
                },
            );
        }
        self.parts
            .get_mut(collection)
            .ok_or_else(|| Error::Internal("part file vanished".into()))
    }

    /// Appends `line` and a line break to the part of `collection`.
    async fn append(&mut self, collection: &'static str, time_ms: i64, line: &[u8]) -> Result<()> {
        let part = self.part(collection, time_ms).await?;
        part.buf.extend_from_slice(line);
        part.buf.push(b'\n');
        part.bytes += line.len() as u64 + 1;
        if part.buf.len() >= WRITE_BUFFER {
            part.write_out().await?;
        }
        Ok(())
    }

    /// Waits for a background finish; a part whose finish failed is kept for the next flush.
    async fn settle(&mut self, closing: Closing) -> Result<()> {
        match closing.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((part, e))) => {
                self.unfinished.push(part);
                Err(e)
            }
            Err(e) => Err(Error::Internal(format!("finishing a part file failed: {e}"))),
        }
    }
}

/// Flushes, fsyncs and renames a part file, then fsyncs its directory, resuming after the
/// steps an earlier call completed.
async fn finish(part: &mut Part) -> Result<()> {
    if part.stage < Stage::Synced {
        part.write_out().await?;
        part.settle().await?;
        let file = part.take_file()?;
        let (file, synced) = tokio::task::spawn_blocking(move || {
            let synced = file.sync_all();
            (file, synced)
        })
        .await
        .map_err(|e| Error::Internal(format!("syncing {} failed: {e}", part.tmp.display())))?;
        part.file = Some(file);
        synced.map_err(|e| Error::io("sync", &part.tmp, e))?;
        part.stage = Stage::Synced;
    }
    if part.stage < Stage::Renamed {
        tokio::fs::rename(&part.tmp, &part.done)
            .await
            .map_err(|e| Error::io("rename", &part.done, e))?;
        part.stage = Stage::Renamed;
    }
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
        for collection in [MODEL_INPUTS, MODEL_OUTPUTS] {
            self.part(collection, time).await?;
            let part = self
                .parts
                .get_mut(collection)
                .ok_or_else(|| Error::Internal("part file vanished".into()))?;
            // Serialized straight into the part's buffer: no intermediate line.
            let start = part.buf.len();
            write_line(
                &mut part.buf,
                batch,
                collection,
                &self.options.endpoint,
                &self.options.deployment,
            );
            part.buf.push(b'\n');
            part.bytes += (part.buf.len() - start) as u64;
            if part.buf.len() >= WRITE_BUFFER {
                part.write_out().await?;
            }
        }
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
        // Every part must be finished before the flush reports success; a part that fails
        // stays in `unfinished`, so a retried flush finishes it instead of forgetting it.
        let mut failure = None;
        while let Some(closing) = self.closing.pop_front() {
            if let Err(e) = self.settle(closing).await {
                failure.get_or_insert(e);
            }
        }
        self.unfinished.extend(self.parts.drain().map(|(_, part)| part));
        let mut parts = std::mem::take(&mut self.unfinished);
        for mut part in parts.drain(..) {
            if failure.is_some() {
                self.unfinished.push(part);
                continue;
            }
            if let Err(e) = finish(&mut part).await {
                self.unfinished.push(part);
                failure = Some(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("jsonl:{}", self.options.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::SourcePosition;

    fn record(offset: u64) -> InferenceRecord {
        let mut inputs = serde_json::Map::new();
        inputs.insert("x".into(), serde_json::json!(offset));
        let mut outputs = serde_json::Map::new();
        outputs.insert("prediction".into(), serde_json::json!(0.5));
        InferenceRecord {
            correlation_id: format!("batch-{offset}"),
            request_id: format!("batch-{offset}"),
            timestamp_ms: 1_700_000_000_000,
            event_timestamp_ms: None,
            model_name: "m".into(),
            model_version: "1".into(),
            position: SourcePosition { partition: 0, offset },
            inputs,
            outputs,
            latency_ms: 1.0,
        }
    }

    /// Every file under `dir`, recursively.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[tokio::test]
    async fn rotated_parts_are_finished_in_the_background_and_all_complete_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = JsonlSinkOptions::new(dir.path());
        // Each batch's line is longer than this: every batch rotates the part before it.
        options.max_bytes = 100;
        let mut sink = JsonlSink::new(options).unwrap();
        for offset in 0..20 {
            sink.write_batch(&[record(offset)]).await.unwrap();
        }
        sink.flush().await.unwrap();
        let files = files(dir.path());
        assert!(
            files.iter().all(|f| f.extension().is_some_and(|e| e == "jsonl")),
            "a part left unfinished: {files:?}"
        );
        // One part per batch and collection, each holding its batch's line.
        assert_eq!(files.len(), 40);
        let mut offsets = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert_eq!(text.lines().count(), 1, "{}", f.display());
            let line: crate::datacollection::CollectedLine = serde_json::from_str(text.trim()).unwrap();
            if line.ty.ends_with(MODEL_INPUTS) {
                offsets.extend(line.positions.iter().map(|p| p.offset));
            }
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    }
}
