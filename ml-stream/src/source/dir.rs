//! A directory of event files (JSONL or CSV by extension), read one file at a time in name order.
//!
//! Files are taken to be complete when they appear, as with Spark's and Flink's file sources: a
//! writer writes under a hidden or temporary name (`.name`, `_name`, `name.tmp`) and renames the
//! file into place when it is done. Those names are skipped. In follow mode the directory is
//! looked at again whenever it has nothing left to read, so files that arrive later are read too.
//!
//! Each file is its own partition: the first file read is partition 0, the next 1, and so on;
//! an event's offset is the byte position of its line in its file. The state file remembers the
//! partition of every file, the last committed line of each, and which files are done, so a
//! restart resumes inside the file it stopped in and never re-reads a finished one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::file::{FOLLOW_POLL, write_state};
use super::{FileSource, FileSourceOptions};
use crate::error::{Error, Result};
use crate::traits::{Checkpoint, Event, StreamSource};

/// Options of [`DirSource`].
#[derive(Clone, Debug, Default)]
pub struct DirSourceOptions {
    /// Keep looking for new files once every file present has been read. Default off: the
    /// source ends when it has read the files it found.
    pub follow: bool,
    /// Where to keep the per-file positions so a restart resumes there. Default: no state.
    pub state_file: Option<PathBuf>,
    /// Read files in subdirectories too (in the order of their relative paths).
    pub recursive: bool,
}

/// What the state file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DirState {
    /// The partition the next new file gets.
    next_partition: u32,
    /// Relative path (with `/` separators) → what is known of that file.
    files: BTreeMap<String, FileState>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FileState {
    partition: u32,
    /// Byte offset of the last committed line, if any line was committed.
    last_committed_line: Option<u64>,
    /// Every line of the file has been committed.
    done: bool,
    /// Not persisted: the file has been read to its end in this run.
    #[serde(skip)]
    read_to_end: bool,
    /// Not persisted: the offset of the last event read from the file in this run.
    #[serde(skip)]
    last_offset: Option<u64>,
}

/// Reads every event file of a directory, one file at a time, in name order.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    options: DirSourceOptions,
    state: DirState,
    /// The file being read: its relative name and its source.
    current: Option<(String, FileSource)>,
    exhausted: bool,
    /// Bytes of the files found but not yet opened (for [`StreamSource::lag`]).
    pending_bytes: u64,
}

impl DirSource {
    /// Opens the directory `dir`, resuming from the state file when there is one.
    pub fn open(dir: impl AsRef<Path>, options: DirSourceOptions) -> Result<DirSource> {
        let dir = dir.as_ref().to_path_buf();
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::SourceFailed {
                    source_name: format!("dir:{}", dir.display()),
                    reason: "not a directory; use file:PATH for a single file".into(),
                });
            }
            Err(e) => return Err(Error::io("open directory", &dir, e)),
        }
        let mut state = DirState::default();
        if let Some(state_path) = &options.state_file {
            match std::fs::read(state_path) {
                Ok(bytes) => {
                    state = serde_json::from_slice(&bytes).map_err(|e| Error::SourceFailed {
                        source_name: format!("dir:{}", dir.display()),
                        reason: format!(
                            "state file {} is corrupt ({e}); remove it to start over",
                            state_path.display()
                        ),
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read state", state_path, e)),
            }
        }
        Ok(DirSource {
            dir,
            options,
            state,
            current: None,
            exhausted: false,
            pending_bytes: 0,
        })
    }

    /// Looks at the directory: new files get the next partitions (in name order), finished
    /// files that are gone are forgotten, and the unread bytes are counted for the lag.
    fn scan(&mut self) -> Result<()> {
        let mut found = BTreeMap::new();
        let mut dirs = vec![(self.dir.clone(), String::new())];
        let state_file = self.options.state_file.as_deref().map(absolute);
        while let Some((dir, prefix)) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.starts_with('_') || name.ends_with(".tmp") {
                    continue;
                }
                let path = entry.path();
                if state_file.as_deref() == Some(absolute(&path).as_path()) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue; // removed while listing
                };
                let relative = format!("{prefix}{name}");
                if meta.is_dir() {
                    if self.options.recursive {
                        dirs.push((path, format!("{relative}/")));
                    }
                } else if meta.is_file() {
                    found.insert(relative, meta.len());
                }
            }
        }
        self.state
            .files
            .retain(|name, f| !f.done || found.contains_key(name));
        self.pending_bytes = 0;
        for (name, len) in found {
            let file = self.state.files.entry(name).or_insert_with(|| {
                let partition = self.state.next_partition;
                self.state.next_partition += 1;
                FileState {
                    partition,
                    last_committed_line: None,
                    done: false,
                    read_to_end: false,
                    last_offset: None,
                }
            });
            if !file.done && !file.read_to_end {
                self.pending_bytes += len;
            }
        }
        Ok(())
    }

    /// Opens the first file (by partition, i.e. by arrival and then name) not yet read.
    fn open_next(&mut self) -> Result<bool> {
        self.scan()?;
        let next = self
            .state
            .files
            .iter()
            .filter(|(_, f)| !f.done && !f.read_to_end)
            .min_by_key(|(_, f)| f.partition)
            .map(|(name, f)| (name.clone(), f.last_committed_line));
        let Some((name, after_line)) = next else {
            return Ok(false);
        };
        let path = self.dir.join(&name);
        let source = FileSource::open_after(path, FileSourceOptions::default(), after_line)?;
        self.current = Some((name, source));
        Ok(true)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[async_trait]
impl StreamSource for DirSource {
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while events.len() < max {
            let Some((name, source)) = &mut self.current else {
                if self.open_next()? {
                    continue;
                }
                if !self.options.follow {
                    self.exhausted = true;
                    break;
                }
                if !events.is_empty() || Instant::now() >= deadline {
                    break;
                }
                let wait = FOLLOW_POLL.min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(wait).await;
                continue;
            };
            let mut batch = source.next_batch(max - events.len(), deadline).await?;
            let file = self
                .state
                .files
                .get_mut(name.as_str())
                .ok_or_else(|| Error::Internal(format!("directory source lost track of {name}")))?;
            for event in &mut batch {
                event.partition = file.partition;
            }
            if let Some(last) = batch.last() {
                file.last_offset = Some(last.offset);
            }
            if source.is_exhausted() {
                file.read_to_end = true;
                self.current = None;
            }
            events.append(&mut batch);
        }
        Ok(events)
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        for file in self.state.files.values_mut() {
            if let Some(&next) = checkpoint.next_offsets.get(&file.partition) {
                file.last_committed_line = Some(next.saturating_sub(1));
            }
            // Done once read to the end and its last event is committed (or it had none).
            if file.read_to_end
                && file
                    .last_offset
                    .is_none_or(|last| file.last_committed_line.is_some_and(|c| c >= last))
            {
                file.done = true;
            }
        }
        match &self.options.state_file {
            Some(path) => write_state(path, &self.state).await,
            None => Ok(()),
        }
    }

    fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    fn lag(&self) -> Option<u64> {
        let current = self.current.as_ref().and_then(|(_, s)| s.lag()).unwrap_or(0);
        Some(self.pending_bytes + current)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn payloads(events: &[Event]) -> Vec<(u32, String)> {
        events
            .iter()
            .map(|e| (e.partition, String::from_utf8_lossy(&e.payload).into_owned()))
            .collect()
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[tokio::test]
    async fn reads_every_file_in_name_order_and_skips_files_in_progress() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "b.jsonl", "{\"x\":3}\n{\"x\":4}\n");
        write(tmp.path(), "a.jsonl", "{\"x\":1}\n\n{\"x\":2}\n");
        write(tmp.path(), "c.csv", "x,y\n5,6\n");
        write(tmp.path(), ".hidden.jsonl", "{\"x\":-1}\n");
        write(tmp.path(), "_writing.jsonl", "{\"x\":-2}\n");
        write(tmp.path(), "d.jsonl.tmp", "{\"x\":-3}\n");
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        write(&tmp.path().join("sub"), "e.jsonl", "{\"x\":-4}\n");

        let mut source = DirSource::open(tmp.path(), DirSourceOptions::default()).unwrap();
        let events = source.next_batch(100, soon()).await.unwrap();
        assert_eq!(
            payloads(&events),
            vec![
                (0, "{\"x\":1}".to_string()),
                (0, "{\"x\":2}".to_string()),
                (1, "{\"x\":3}".to_string()),
                (1, "{\"x\":4}".to_string()),
                (2, "5,6".to_string()),
            ]
        );
        // Offsets are byte positions within each file; the CSV line carries its header.
        let offsets: Vec<u64> = events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![0, 9, 0, 8, 4]);
        assert_eq!(events[4].header(super::super::CSV_HEADER), Some(&b"x,y"[..]));
        assert!(source.is_exhausted());
        assert_eq!(source.lag(), Some(0));

        let mut recursive = DirSource::open(
            tmp.path(),
            DirSourceOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .unwrap();
        let all = recursive.next_batch(100, soon()).await.unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(payloads(&all)[5], (3, "{\"x\":-4}".to_string()));
    }

    #[tokio::test]
    async fn a_restart_resumes_inside_the_file_it_stopped_in_and_skips_finished_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("in");
        std::fs::create_dir(&data).unwrap();
        write(&data, "1.jsonl", "{\"x\":1}\n{\"x\":2}\n");
        write(&data, "2.jsonl", "{\"x\":3}\n{\"x\":4}\n{\"x\":5}\n");
        let options = DirSourceOptions {
            state_file: Some(tmp.path().join("state.json")),
            ..Default::default()
        };

        let mut first = DirSource::open(&data, options.clone()).unwrap();
        let events = first.next_batch(3, soon()).await.unwrap();
        assert_eq!(events.len(), 3);
        let mut checkpoint = Checkpoint::default();
        for e in &events {
            checkpoint.advance(e.partition, e.offset);
        }
        first.commit(&checkpoint).await.unwrap();
        // Read on but crash before the next commit: those events come again.
        assert_eq!(first.next_batch(1, soon()).await.unwrap().len(), 1);
        drop(first);

        write(&data, "0-late.jsonl", "{\"x\":6}\n");
        let mut second = DirSource::open(&data, options.clone()).unwrap();
        let rest = second.next_batch(100, soon()).await.unwrap();
        // File 2 resumes after its first line; the late file gets a new partition even though
        // its name sorts first; file 1 is done and not read again.
        assert_eq!(
            payloads(&rest),
            vec![
                (1, "{\"x\":4}".to_string()),
                (1, "{\"x\":5}".to_string()),
                (2, "{\"x\":6}".to_string()),
            ]
        );
        let mut checkpoint = checkpoint.clone();
        for e in &rest {
            checkpoint.advance(e.partition, e.offset);
        }
        second.commit(&checkpoint).await.unwrap();
        drop(second);

        let mut third = DirSource::open(&data, options).unwrap();
        assert!(third.next_batch(100, soon()).await.unwrap().is_empty());
        assert!(third.is_exhausted());
    }

    #[tokio::test]
    async fn follow_mode_reads_files_that_arrive_later() {
        let tmp = tempfile::tempdir().unwrap();
        let options = DirSourceOptions {
            follow: true,
            state_file: Some(tmp.path().join("state.json")),
            ..Default::default()
        };
        let mut source = DirSource::open(tmp.path(), options).unwrap();
        let nothing = source
            .next_batch(10, Instant::now() + Duration::from_millis(50))
            .await
            .unwrap();
        assert!(nothing.is_empty());
        assert!(!source.is_exhausted());

        // Written under a temporary name, then renamed into place.
        write(tmp.path(), "late.jsonl.tmp", "{\"x\":7}\n");
        std::fs::rename(tmp.path().join("late.jsonl.tmp"), tmp.path().join("late.jsonl")).unwrap();
        let mut got = Vec::new();
        let give_up = soon();
        while got.is_empty() && Instant::now() < give_up {
            got = source.next_batch(10, give_up).await.unwrap();
        }
        // The state file in the same directory is not mistaken for events.
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance(0, 0);
        source.commit(&checkpoint).await.unwrap();
        assert_eq!(payloads(&got), vec![(0, "{\"x\":7}".to_string())]);
        let more = source
            .next_batch(10, Instant::now() + Duration::from_millis(50))
            .await
            .unwrap();
        assert!(more.is_empty(), "{:?}", payloads(&more));
    }

    #[test]
    fn a_file_is_refused_with_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a.jsonl", "{}\n");
        let err = DirSource::open(tmp.path().join("a.jsonl"), DirSourceOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory; use file:PATH"), "{err}");
    }
}
