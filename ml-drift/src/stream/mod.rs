//! Streaming change detectors: one value at a time, O(1) or O(log n) memory, with the defaults
//! of river (0.26) so results can be compared one for one.
//!
//! Semantics follow river's: `update` returns `Some(Change)` at the value where a change is
//! detected, and the **next** update starts the detector afresh (river resets after a
//! detection). Detectors are deterministic (KSWIN takes a seed).

mod adwin;
mod ddm;
mod kswin;
mod page_hinkley;
mod psi_window;
mod pyrandom;

pub use self::adwin::Adwin;
pub use self::ddm::{Ddm, Eddm};
pub use self::kswin::Kswin;
pub use self::page_hinkley::{PageHinkley, PhMode};
pub use self::psi_window::WindowedPsi;

/// A detected change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Zero-based position, in everything this detector was given, of the value that triggered it.
    pub index: u64,
}

/// A detector of changes in a stream of numbers.
///
/// `update` is synchronous, never blocks and never fails: non-finite values are ignored (they
/// count as positions but do not enter the statistics). Not `Sync`: one detector per stream.
pub trait ChangeDetector: Send + std::fmt::Debug {
    /// The detector's name (`adwin`, `page_hinkley`, ...).
    fn name(&self) -> &'static str;
    /// Feeds one value; `Some` when a change is detected at it.
    fn update(&mut self, x: f64) -> Option<Change>;
    /// Feeds many values; returns the changes in order. The default calls
    /// [`ChangeDetector::update`] for each value; detectors may do it faster.
    fn update_many(&mut self, xs: &[f64]) -> Vec<Change> {
        xs.iter().filter_map(|&x| self.update(x)).collect()
    }
}
