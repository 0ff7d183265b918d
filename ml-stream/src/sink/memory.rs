//! An in-memory sink, for tests and for embedding.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::Result;
use crate::traits::{DeadLetter, InferenceRecord, InferenceSink};

#[derive(Debug, Default)]
struct Store {
    records: Vec<InferenceRecord>,
    dead_letters: Vec<DeadLetter>,
    flushes: u64,
}

/// Keeps every record and dead letter in memory. Delivery: in memory only — lost with the
/// process; `flush` only counts.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    store: Arc<Mutex<Store>>,
}

/// Reads what a [`MemorySink`] holds, from any thread.
#[derive(Debug, Clone)]
pub struct MemoryHandle {
    store: Arc<Mutex<Store>>,
}

impl MemorySink {
    /// A sink and the handle to read it.
    pub fn new() -> (MemorySink, MemoryHandle) {
        let sink = MemorySink::default();
        let handle = MemoryHandle {
            store: sink.store.clone(),
        };
        (sink, handle)
    }
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave the vectors half-updated (push is atomic
    // with respect to unwinding), so a poisoned lock is still usable.
    store.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryHandle {
    /// A copy of the records received so far.
    pub fn records(&self) -> Vec<InferenceRecord> {
        lock(&self.store).records.clone()
    }

    /// A copy of the dead letters received so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.store).dead_letters.clone()
    }

    /// Number of records received.
    pub fn len(&self) -> usize {
        lock(&self.store).records.len()
    }

    /// True when no record was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times `flush` was called.
    pub fn flushes(&self) -> u64 {
        lock(&self.store).flushes
    }
}

#[async_trait]
impl InferenceSink for MemorySink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        lock(&self.store).records.extend_from_slice(records);
        Ok(())
    }

    async fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        lock(&self.store).dead_letters.extend_from_slice(letters);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        lock(&self.store).flushes += 1;
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
