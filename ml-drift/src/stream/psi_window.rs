//! PSI over consecutive windows against a reference window.

use super::{Change, ChangeDetector};
use crate::profile::bin_index;
use crate::stats::psi;

/// Population stability index of each window of `window` values against the first
/// `reference_size` values (binned at the reference deciles). Reports a change when PSI ≥
/// `threshold`; the window after a change becomes the new reference.
#[derive(Clone, Debug)]
pub struct WindowedPsi {
    /// Values in the reference window. Default 1000.
    pub reference_size: usize,
    /// Values per compared window. Default 500.
    pub window: usize,
    /// Number of quantile bins. Default 10.
    pub bins: usize,
    /// PSI threshold. Default 0.2 (the usual "significant shift" level).
    pub threshold: f64,
    reference: Vec<f64>,
    edges: Vec<f64>,
    ref_counts: Vec<f64>,
    counts: Vec<f64>,
    in_window: usize,
    seen: u64,
    /// The last window's PSI.
    pub last_psi: f64,
}

impl Default for WindowedPsi {
    fn default() -> Self {
        WindowedPsi::new(1000, 500, 10, 0.2)
    }
}

impl WindowedPsi {
    /// A detector.
    pub fn new(reference_size: usize, window: usize, bins: usize, threshold: f64) -> Self {
        WindowedPsi {
            reference_size: reference_size.max(2),
            window: window.max(1),
            bins: bins.max(2),
            threshold,
            reference: Vec::new(),
            edges: Vec::new(),
            ref_counts: Vec::new(),
            counts: Vec::new(),
            in_window: 0,
            seen: 0,
            last_psi: 0.0,
        }
    }

    fn freeze_reference(&mut self) {
        let mut s = std::mem::take(&mut self.reference);
        s.sort_unstable_by(f64::total_cmp);
        let n = s.len();
        self.edges.clear();
        for i in 1..self.bins {
            let v = s[(i * (n - 1)) / self.bins];
            if self.edges.last().is_none_or(|&l| v > l) && v < s[n - 1] {
                self.edges.push(v);
            }
        }
        self.ref_counts = vec![0.0; self.edges.len() + 1];
        for &x in &s {
            self.ref_counts[bin_index(&self.edges, x)] += 1.0;
        }
        self.counts = vec![0.0; self.edges.len() + 1];
        self.in_window = 0;
    }
}

impl ChangeDetector for WindowedPsi {
    fn name(&self) -> &'static str {
        "windowed_psi"
    }

    fn update(&mut self, x: f64) -> Option<Change> {
        let index = self.seen;
        self.seen += 1;
        if !x.is_finite() {
            return None;
        }
        if self.ref_counts.is_empty() {
            self.reference.push(x);
            if self.reference.len() == self.reference_size {
                self.freeze_reference();
            }
            return None;
        }
        self.counts[bin_index(&self.edges, x)] += 1.0;
        self.in_window += 1;
        if self.in_window < self.window {
            return None;
        }
        self.last_psi = psi(&self.ref_counts, &self.counts);
        let drift = self.last_psi >= self.threshold;
        self.counts.iter_mut().for_each(|c| *c = 0.0);
        self.in_window = 0;
        if drift {
            // Start over: the next reference_size values become the reference.
            self.ref_counts.clear();
            self.reference.clear();
        }
        drift.then_some(Change { index })
    }
}
