//! A file of events, one per line: JSON lines, or CSV with a header row.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{CONTENT_TYPE, CSV_HEADER};
use crate::error::{Error, Result};
use crate::traits::{Checkpoint, Event, StreamSource};

/// How long follow mode waits between looks at a file that has no new data: short enough
/// for low latency, long enough not to spin (the same order as `tail -f`'s 1 s, divided by 10).
pub(crate) const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The line format of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object (or array) per line.
    JsonLines,
    /// CSV with a header row; each later line is one event.
    Csv,
}

/// Options of [`FileSource`].
#[derive(Clone, Debug, Default)]
pub struct FileSourceOptions {
    /// Keep reading as the file grows (like `tail -f`), reopening it when it is rotated
    /// (replaced or truncated). Default off: the source ends at end of file.
    pub follow: bool,
    /// Where to keep the committed byte offset so a restart resumes there. Default:
    /// no state (every run starts at the beginning).
    pub state_file: Option<PathBuf>,
}

/// What the state file holds: the byte offset of the last committed line. Resuming seeks there
/// and skips that one line (offsets are line starts, so `next_offset - 1` lies in that line).
#[derive(Serialize, Deserialize)]
struct State {
    path: String,
    last_committed_line: u64,
}

/// Reads events from a JSONL or CSV file. The partition is 0 and the offset of an event is the
/// byte position of its line, so a committed offset is a place to seek to on restart.
///
/// The file is read in chunks of 1 MiB on Tokio's blocking pool (one hand-off
/// per chunk, not per line); lines are cut out of the chunk where they lie, each copied once,
/// into its event.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    format: FileFormat,
    options: FileSourceOptions,
    /// The open file, positioned after the bytes read into `buf` (`None` only if a read task
    /// was lost).
    file: Option<std::fs::File>,
    /// The read buffer; `buf[start..end]` are bytes read and not yet cut into lines.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Byte offset of the next line to read (that of `buf[start]`).
    position: u64,
    csv_header: Option<Vec<u8>>,
    exhausted: bool,
    identity: Option<FileIdentity>,
    /// The file's length when last looked at, and when that was (for [`StreamSource::lag`]).
    known_len: u64,
    looked_at: Option<Instant>,
}

/// The read buffer: each refill is a hand-off to Tokio's blocking pool, so it is large enough
/// for a few thousand typical events. A line longer than it grows it.
const READ_BUFFER: usize = 1 << 20;

/// How often the file's length is looked up for the lag: a stat per batch would be wasted.
const LAG_REFRESH: Duration = Duration::from_millis(200);

/// The index of the first line feed in `bytes`, looked for sixteen bytes at a time (two words,
/// each tested for a line feed byte with the usual test for a zero byte in a word).
#[inline]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const FEEDS: u64 = ONES * b'\n' as u64;
    // Bit 7 of each byte that is a line feed (and possibly of bytes above the first one, which
    // the lowest set bit ignores).
    let feeds = |word: u64| {
        let v = word ^ FEEDS;
        v.wrapping_sub(ONES) & !v & HIGH
    };
    let (chunks, rest) = bytes.as_chunks::<16>();
    for (i, chunk) in chunks.iter().enumerate() {
        let (low, high) = chunk.split_at(8);
        let low = feeds(u64::from_le_bytes(low.try_into().unwrap_or([0; 8])));
        let high = feeds(u64::from_le_bytes(high.try_into().unwrap_or([0; 8])));
        if low | high != 0 {
            let within = if low != 0 {
                low.trailing_zeros() / 8
            } else {
                8 + high.trailing_zeros() / 8
            };
            return Some(i * 16 + within as usize);
        }
    }
    let at = chunks.len() * 16;
    rest.iter().position(|&b| b == b'\n').map(|i| at + i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
}

fn identity(meta: &std::fs::Metadata) -> Option<FileIdentity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// An open file positioned at a line start.
struct Opened {
    file: std::fs::File,
    header: Option<Vec<u8>>,
    position: u64,
    identity: Option<FileIdentity>,
}

/// Opens `path`, reads the CSV header when `format` is CSV, and positions the reader after the
/// line that starts at `after_line` (or at the first data line when `None` or past the end).
/// Blocking: called when a source is created and on the rare rotation.
fn open_at(path: &Path, format: FileFormat, after_line: Option<u64>) -> Result<Opened> {
    use std::io::{BufRead, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    let mut header = None;
    let mut header_end = 0;
    if format == FileFormat::Csv {
        let mut r = std::io::BufReader::new(&mut file);
        let mut line = Vec::new();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("read", path, e))?;
        trim_newline(&mut line);
        if !line.is_empty() {
            header = Some(line);
        }
        header_end = n as u64;
    }
    let mut position = header_end;
    if let Some(line_start) = after_line.filter(|&o| o >= header_end && o < meta.len()) {
        file.seek(SeekFrom::Start(line_start))
            .map_err(|e| Error::io("seek", path, e))?;
        let mut skipped = Vec::new();
        let n = std::io::BufReader::new(&mut file)
            .read_until(b'\n', &mut skipped)
            .map_err(|e| Error::io("read", path, e))?;
        position = line_start + n as u64;
    }
    file.seek(SeekFrom::Start(position))
        .map_err(|e| Error::io("seek", path, e))?;
    Ok(Opened {
        file,
        header,
        position,
        identity: identity(&meta),
    })
}

impl FileSource {
    /// Opens `path` (format by extension: `.csv` is CSV, anything else JSON lines), resuming
    /// from the state file when there is one. A state file whose offset lies past the end of
    /// the file (the file was truncated or replaced) is ignored: reading starts over.
    pub fn open(path: impl AsRef<Path>, options: FileSourceOptions) -> Result<FileSource> {
        let path = path.as_ref().to_path_buf();
        let mut start = None;
        if let Some(state_path) = &options.state_file {
            match std::fs::read(state_path) {
                Ok(bytes) => {
                    let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::SourceFailed {
                        source_name: path.display().to_string(),
                        reason: format!(
                            "state file {} is corrupt ({e}); remove it to start over",
                            state_path.display()
                        ),
                    })?;
                    start = Some(state.last_committed_line);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read state", state_path, e)),
            }
        }
        Self::open_after(path, options, start)
    }

    /// Opens `path` positioned after the line that starts at byte `after_line` (at the first
    /// line when `None`), ignoring `options.state_file`: the directory source keeps one state
    /// for all its files.
    pub(crate) fn open_after(
        path: PathBuf,
        options: FileSourceOptions,
        after_line: Option<u64>,
    ) -> Result<FileSource> {
        let format = format_of(&path);
        let opened = open_at(&path, format, after_line)?;
        Ok(FileSource {
            file: Some(opened.file),
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            path,
            format,
            options,
            position: opened.position,
            csv_header: opened.header,
            exhausted: false,
            identity: opened.identity,
            known_len: 0,
            looked_at: None,
        })
    }

    /// Whether the file at `path` is no longer the one we read (rotated or truncated).
    async fn rotated(&self) -> bool {
        match tokio::fs::metadata(&self.path).await {
            Ok(meta) => identity(&meta) != self.identity || meta.len() < self.position,
            Err(_) => false, // gone for now: keep waiting for a new file
        }
    }

    fn reopen(&mut self) -> Result<()> {
        let opened = open_at(&self.path, self.format, None)?;
        self.file = Some(opened.file);
        (self.start, self.end) = (0, 0);
        self.position = opened.position;
        self.csv_header = opened.header;
        self.identity = opened.identity;
        Ok(())
    }

    /// Reads more of the file after the bytes not yet cut into lines (moved to the front of
    /// the buffer, which grows when they fill it). Returns how many bytes came: 0 at the end of
    /// the data written so far.
    async fn fill(&mut self) -> Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.buf.len() {
            // One line longer than the buffer: make room for the rest of it.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::Internal(format!("{}: a read task was lost", self.path.display())))?;
        let mut buf = std::mem::take(&mut self.buf);
        let end = self.end;
        let (file, buf, read) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let read = loop {
                match file.read(&mut buf[end..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            (file, buf, read)
        })
        .await
        .map_err(|e| Error::Internal(format!("reading {} failed: {e}", self.path.display())))?;
        self.file = Some(file);
        self.buf = buf;
        let n = read.map_err(|e| Error::io("read", &self.path, e))?;
        self.end += n;
        Ok(n)
    }

    fn event(&self, line: &[u8], offset: u64) -> Event {
        let mut event = Event::new(line, 0, offset);
        if let Some(h) = &self.csv_header {
            event.headers.push((CONTENT_TYPE.into(), b"text/csv".to_vec()));
            event.headers.push((CSV_HEADER.into(), h.clone()));
        }
        event
    }
}

/// Writes a source's state file: to a temporary name, fsynced, then renamed over the old one, so
/// a crash never leaves a torn state file.
pub(crate) async fn write_state(state_path: &Path, state: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec(state).map_err(|e| Error::Internal(e.to_string()))?;
    let tmp = state_path.with_extension("tmp");
    tokio::fs::write(&tmp, &bytes)
        .await
        .map_err(|e| Error::io("write state", &tmp, e))?;
    let f = tokio::fs::File::open(&tmp)
        .await
        .map_err(|e| Error::io("open state", &tmp, e))?;
    f.sync_all().await.map_err(|e| Error::io("sync state", &tmp, e))?;
    tokio::fs::rename(&tmp, state_path)
        .await
        .map_err(|e| Error::io("rename state", state_path, e))
}

/// The line format a file's extension names: `.csv` is CSV, anything else JSON lines.
fn format_of(path: &Path) -> FileFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => FileFormat::Csv,
        _ => FileFormat::JsonLines,
    }
}

fn trim_newline(line: &mut Vec<u8>) {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
}

#[async_trait]
impl StreamSource for FileSource {
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>> {
        let mut events = Vec::with_capacity(max.min(4096));
        while events.len() < max {
            let rest = &self.buf[self.start..self.end];
            // The line's length with its line break, and without.
            let (n, mut len) = match find_newline(rest) {
                Some(i) => (i + 1, i),
                None => {
                    if self.fill().await? > 0 {
                        continue;
                    }
                    // End of the data written so far.
                    let rest = self.end - self.start;
                    if !self.options.follow {
                        // A last line without a line break is still a line.
                        if rest == 0 {
                            self.exhausted = true;
                            break;
                        }
                        (rest, rest)
                    } else {
                        // A partial last line stays in the buffer until the writer finishes it.
                        if self.rotated().await {
                            self.reopen()?;
                            continue;
                        }
                        if !events.is_empty() || Instant::now() >= deadline {
                            break;
                        }
                        let wait = FOLLOW_POLL.min(deadline.saturating_duration_since(Instant::now()));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            };
            let line_start = self.start;
            let offset = self.position;
            self.position += n as u64;
            self.start += n;
            while len > 0 && self.buf[line_start + len - 1] == b'\r' {
                len -= 1;
            }
            let line = &self.buf[line_start..line_start + len];
            if !line.iter().all(u8::is_ascii_whitespace) {
                events.push(self.event(line, offset));
            }
        }
        if self.looked_at.is_none_or(|t| t.elapsed() >= LAG_REFRESH) {
            // A stat is a few microseconds: cheap enough to do inline every LAG_REFRESH.
            if let Ok(meta) = std::fs::metadata(&self.path) {
                self.known_len = meta.len();
            }
            self.looked_at = Some(Instant::now());
        }
        Ok(events)
    }

    fn lag(&self) -> Option<u64> {
        Some(self.known_len.saturating_sub(self.position))
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let Some(state_path) = &self.options.state_file else {
            return Ok(());
        };
        let Some(&next_offset) = checkpoint.next_offsets.get(&0) else {
            return Ok(());
        };
        let state = State {
            path: self.path.display().to_string(),
            last_committed_line: next_offset.saturating_sub(1),
        };
        write_state(state_path, &state).await
    }

    fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_newline_finds_the_first_line_feed_at_any_position() {
        for len in 0..70 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b'\n';
                if at + 3 < len {
                    bytes[at + 3] = b'\n';
                }
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_newline(&vec![b'x'; len]), None);
        }
    }

    /// Every line, with its byte offset, as the source gives them.
    async fn read_all(path: &Path) -> Vec<(u64, Vec<u8>)> {
        let mut source = FileSource::open(path, FileSourceOptions::default()).unwrap();
        let mut out = Vec::new();
        while !source.is_exhausted() {
            let far = Instant::now() + Duration::from_secs(60);
            for e in source.next_batch(3, far).await.unwrap() {
                out.push((e.offset, e.payload));
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_keep_their_offsets_across_refills_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        // A line longer than the read buffer, CRLF endings, blank lines, and a last line
        // without a line break.
        let long = vec![b'a'; READ_BUFFER * 2 + 17];
        let mut text = Vec::new();
        let mut want = Vec::new();
        for i in 0..5000u64 {
            let line = format!("{{\"x\": {i}}}");
            want.push((text.len() as u64, line.clone().into_bytes()));
            text.extend_from_slice(line.as_bytes());
            text.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
            if i == 2500 {
                want.push((text.len() as u64, long.clone()));
                text.extend_from_slice(&long);
                text.extend_from_slice(b"\n  \n\n");
            }
        }
        want.push((text.len() as u64, b"last".to_vec()));
        text.extend_from_slice(b"last");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_all(&path).await, want);
    }
}
