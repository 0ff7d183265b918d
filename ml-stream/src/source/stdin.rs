//! Events from standard input, one JSON value per line.

use std::time::Instant;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader, Stdin};

use crate::error::{Error, Result};
use crate::traits::{Event, StreamSource};

/// Reads JSON lines from standard input until it closes. Offsets count lines; nothing is
/// persisted, so it cannot resume after a restart.
#[derive(Debug)]
pub struct StdinSource {
    reader: BufReader<Stdin>,
    next_offset: u64,
    closed: bool,
    line: Vec<u8>,
}

impl StdinSource {
    /// A source on this process's standard input.
    pub fn new() -> Self {
        StdinSource {
            reader: BufReader::new(tokio::io::stdin()),
            next_offset: 0,
            closed: false,
            line: Vec::new(),
        }
    }
}

impl Default for StdinSource {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl StreamSource for StdinSource {
    async fn next_batch(&mut self, max: usize, deadline: Instant) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        while events.len() < max && !self.closed {
            // `self.line` may hold the start of a line whose read timed out: reading appends
            // to it, so nothing is lost (tokio keeps partially read bytes in the buffer).
            // Wait for the first line until the deadline; then take what is already buffered.
            let read = if events.is_empty() || !self.reader.buffer().is_empty() {
                match tokio::time::timeout_at(deadline.into(), self.reader.read_until(b'\n', &mut self.line))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => break,
                }
            } else {
                break;
            };
            let n = read.map_err(|e| Error::io("read", "standard input", e))?;
            if n == 0 {
                self.closed = true;
                if !self.line.is_empty() {
                    // A last line without a newline.
                    events.push(Event::new(std::mem::take(&mut self.line), 0, self.next_offset));
                    self.next_offset += 1;
                }
                break;
            }
            if self.line.last() != Some(&b'\n') {
                continue;
            }
            while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                self.line.pop();
            }
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                events.push(Event::new(self.line.clone(), 0, self.next_offset));
            }
            self.line.clear();
            self.next_offset += 1;
        }
        Ok(events)
    }

    fn is_exhausted(&self) -> bool {
        self.closed
    }

    fn describe(&self) -> String {
        "stdin:".into()
    }
}
