//! The Page-Hinkley test with a fading mean, as river implements it.

use super::{Change, ChangeDetector};

/// Which direction of change is watched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PhMode {
    /// Increases of the mean.
    Up,
    /// Decreases of the mean.
    Down,
    /// Both (river's default).
    #[default]
    Both,
}

/// Page-Hinkley change detector.
#[derive(Clone, Debug)]
pub struct PageHinkley {
    /// Values before a change can be reported. Default 30 (river).
    pub min_instances: u64,
    /// Tolerated magnitude of change. Default 0.005 (river).
    pub delta: f64,
    /// Detection threshold λ. Default 50 (river).
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums. Default 1 − 0.0001 (river).
    pub alpha: f64,
    /// Direction. Default both (river).
    pub mode: PhMode,
    n: f64,
    mean: f64,
    sum_inc: f64,
    sum_dec: f64,
    min_inc: f64,
    max_dec: f64,
    seen: u64,
    detected: bool,
}

impl Default for PageHinkley {
    fn default() -> Self {
        PageHinkley::new(30, 0.005, 50.0, 1.0 - 0.0001, PhMode::Both)
    }
}

impl PageHinkley {
    /// A detector with explicit parameters (river's argument order).
    pub fn new(min_instances: u64, delta: f64, threshold: f64, alpha: f64, mode: PhMode) -> Self {
        let mut p = PageHinkley {
            min_instances,
            delta,
            threshold,
            alpha,
            mode,
            n: 0.0,
            mean: 0.0,
            sum_inc: 0.0,
            sum_dec: 0.0,
            min_inc: f64::INFINITY,
            max_dec: -1.0,
            seen: 0,
            detected: false,
        };
        p.reset();
        p
    }

    fn reset(&mut self) {
        self.n = 0.0;
        self.mean = 0.0;
        self.sum_inc = 0.0;
        self.sum_dec = 0.0;
        self.min_inc = f64::INFINITY;
        self.max_dec = -1.0;
    }
}

impl ChangeDetector for PageHinkley {
    fn name(&self) -> &'static str {
        "page_hinkley"
    }

    fn update(&mut self, x: f64) -> Option<Change> {
        let index = self.seen;
        self.seen += 1;
        if self.detected {
            self.reset();
            self.detected = false;
        }
        if !x.is_finite() {
            return None;
        }
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
        let dev = x - self.mean;
        self.sum_inc = self.alpha * self.sum_inc + dev - self.delta;
        self.sum_dec = self.alpha * self.sum_dec + dev + self.delta;
        if self.sum_inc < self.min_inc {
            self.min_inc = self.sum_inc;
        }
        if self.sum_dec > self.max_dec {
            self.max_dec = self.sum_dec;
        }
        if self.n >= self.min_instances as f64 {
            let inc = self.sum_inc - self.min_inc;
            let dec = self.max_dec - self.sum_dec;
            self.detected = match self.mode {
                PhMode::Up => inc > self.threshold,
                PhMode::Down => dec > self.threshold,
                PhMode::Both => inc > self.threshold || dec > self.threshold,
            };
        }
        self.detected.then_some(Change { index })
    }
}
