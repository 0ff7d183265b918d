//! KSWIN (Raab et al. 2020): a KS test between the newest values of a sliding window and a random
//! sample of the older ones, with river's defaults and river's random draws: the sample comes from
//! Python's `random.Random(seed).sample`, reimplemented bit for bit, so a seeded detector reports
//! river's change points.

use std::collections::VecDeque;

use super::pyrandom::PyRandom;
use super::{Change, ChangeDetector};
use crate::stats::{KsMethod, ks_2samp_sorted};

/// Kolmogorov–Smirnov windowing change detector.
#[derive(Clone, Debug)]
pub struct Kswin {
    /// Significance. Default 0.005 (river).
    pub alpha: f64,
    /// Sliding window length. Default 100 (river).
    pub window_size: usize,
    /// Newest values tested against as many sampled older ones. Default 30 (river).
    pub stat_size: usize,
    seed: u64,
    rng: PyRandom,
    window: VecDeque<f64>,
    /// The last p-value.
    pub p_value: f64,
    seen: u64,
    detected: bool,
}

impl Kswin {
    /// A detector (river's defaults: `Kswin::new(0.005, 100, 30, seed)`); `stat_size` is clamped
    /// below `window_size`.
    pub fn new(alpha: f64, window_size: usize, stat_size: usize, seed: u64) -> Self {
        let window_size = window_size.max(2);
        Kswin {
            alpha,
            window_size,
            stat_size: stat_size.clamp(1, window_size / 2),
            seed,
            rng: PyRandom::new(seed),
            window: VecDeque::with_capacity(window_size),
            p_value: 1.0,
            seen: 0,
            detected: false,
        }
    }

    /// River's defaults with a seed.
    pub fn with_seed(seed: u64) -> Self {
        Kswin::new(0.005, 100, 30, seed)
    }
}

impl ChangeDetector for Kswin {
    fn name(&self) -> &'static str {
        "kswin"
    }

    fn update(&mut self, x: f64) -> Option<Change> {
        let index = self.seen;
        self.seen += 1;
        if self.detected {
            // As river: the update after a detection starts afresh — empty window, the random
            // stream from its seed again.
            self.rng = PyRandom::new(self.seed);
            self.window.clear();
            self.p_value = 1.0;
            self.detected = false;
        }
        if !x.is_finite() {
            return None;
        }
        if self.window.len() == self.window_size {
            self.window.pop_front();
        }
        self.window.push_back(x);
        if self.window.len() < self.window_size {
            return None;
        }
        // stat_size distinct positions among the older part, drawn as river draws them.
        let older = self.window_size - self.stat_size;
        let mut sample: Vec<f64> = self
            .rng
            .sample_range(older, self.stat_size)
            .into_iter()
            .map(|i| self.window[i])
            .collect();
        let mut recent: Vec<f64> = self.window.iter().skip(older).copied().collect();
        sample.sort_unstable_by(f64::total_cmp);
        recent.sort_unstable_by(f64::total_cmp);
        let r = ks_2samp_sorted(&sample, &recent, KsMethod::Auto);
        self.p_value = r.p_value;
        self.detected = r.p_value <= self.alpha && r.statistic > 0.1;
        self.detected.then_some(Change { index })
    }
}
