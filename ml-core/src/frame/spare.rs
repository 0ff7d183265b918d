//! Storage of small frames kept per thread for the next small frame.
//!
//! A one-row scoring request of 20 float fields built its frame from 23 allocations (one
//! buffer per column, the column list, the null-mask list, the builder list) and freed them all
//! when the frame was dropped: the allocator's work was the largest part of reading such a
//! request. A frame of at most [`SMALL_ROWS`] rows now hands its buffers, emptied, to a
//! per-thread stash when it is dropped, and the next small frame built on that thread takes
//! them back. Only empty vectors with a bounded capacity are kept, and only so many of them
//! ([`MAX_SPARE`] of each kind), so the stash never holds more than a few hundred KiB per
//! thread; anything else is freed as before. Nothing observable changes: a buffer taken from
//! the stash is empty, and its capacity is at least what was asked.

use std::cell::RefCell;

use super::Column;
use super::cell::ColumnBuilder;

/// Frames of up to this many rows give their storage back when dropped.
pub(crate) const SMALL_ROWS: usize = 8;

/// At most this many vectors of each kind are kept per thread.
const MAX_SPARE: usize = 512;

/// Column and list vectors of a larger capacity are not kept.
const MAX_LIST: usize = 256;

pub(crate) struct Spare {
    floats: Vec<Vec<f64>>,
    columns: Vec<Vec<Column>>,
    nulls: Vec<Vec<Option<Vec<bool>>>>,
    builders: Vec<Vec<ColumnBuilder>>,
}

thread_local! {
    static SPARE: RefCell<Spare> = const {
        RefCell::new(Spare {
            floats: Vec::new(),
            columns: Vec::new(),
            nulls: Vec::new(),
            builders: Vec::new(),
        })
    };
}

/// Runs `f` with this thread's stash (`None` while the thread is being torn down, or when the
/// stash is already in use further up the stack).
pub(crate) fn with<R>(f: impl FnOnce(Option<&mut Spare>) -> R) -> R {
    let mut f = Some(f);
    let done = SPARE.try_with(|s| {
        let mut s = s.try_borrow_mut().ok()?;
        f.take().map(|f| f(Some(&mut s)))
    });
    match (done, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(None),
        (_, None) => unreachable!("the closure ran and returned"),
    }
}

/// Pops an empty vector of at least `capacity` from `from`, or allocates one.
fn take<T>(from: &mut Vec<Vec<T>>, capacity: usize) -> Vec<T> {
    match from.pop() {
        Some(mut v) => {
            v.reserve_exact(capacity);
            v
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Keeps `v` (emptied) in `into` when it is small and there is room.
fn give<T>(into: &mut Vec<Vec<T>>, mut v: Vec<T>, max_capacity: usize) {
    if v.capacity() == 0 || v.capacity() > max_capacity || into.len() >= MAX_SPARE {
        return;
    }
    v.clear();
    into.push(v);
}

impl Spare {
    /// An empty float buffer for `capacity` values (at most [`SMALL_ROWS`]).
    pub(crate) fn float(&mut self, capacity: usize) -> Vec<f64> {
        take(&mut self.floats, capacity)
    }

    pub(crate) fn builders(&mut self, capacity: usize) -> Vec<ColumnBuilder> {
        if capacity > MAX_LIST {
            return Vec::with_capacity(capacity);
        }
        take(&mut self.builders, capacity)
    }

    pub(crate) fn give_builders(&mut self, v: Vec<ColumnBuilder>) {
        give(&mut self.builders, v, MAX_LIST);
    }

    /// Empty column and null-mask lists for `capacity` columns.
    pub(crate) fn lists(&mut self, capacity: usize) -> (Vec<Column>, Vec<Option<Vec<bool>>>) {
        if capacity > MAX_LIST {
            return (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
        }
        (take(&mut self.columns, capacity), take(&mut self.nulls, capacity))
    }

    /// Takes back the storage of a dropped small frame.
    pub(crate) fn give_frame(&mut self, columns: &mut Vec<Column>, nulls: Vec<Option<Vec<bool>>>) {
        for column in columns.drain(..) {
            if let Column::Float(values) = column {
                let (v, _) = values.into_raw_vec_and_offset();
                give(&mut self.floats, v, SMALL_ROWS);
            }
        }
        give(&mut self.columns, std::mem::take(columns), MAX_LIST);
        give(&mut self.nulls, nulls, MAX_LIST);
    }
}
