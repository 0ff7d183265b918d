//! DDM and EDDM: drift detectors for streams of errors (1) and successes (0), as river
//! implements them.

use super::{Change, ChangeDetector};

/// Drift Detection Method (Gama et al. 2004).
#[derive(Clone, Debug)]
pub struct Ddm {
    /// Values before a change can be reported. Default 30 (river).
    pub warm_start: u64,
    /// Warning level in standard deviations. Default 2 (river).
    pub warning_threshold: f64,
    /// Drift level in standard deviations. Default 3 (river).
    pub drift_threshold: f64,
    n: f64,
    p: f64,
    p_min: f64,
    s_min: f64,
    ps_min: f64,
    warning: bool,
    seen: u64,
    detected: bool,
}

impl Default for Ddm {
    fn default() -> Self {
        Ddm::new(30, 2.0, 3.0)
    }
}

impl Ddm {
    /// A detector with explicit parameters (river's argument order).
    pub fn new(warm_start: u64, warning_threshold: f64, drift_threshold: f64) -> Self {
        Ddm {
            warm_start,
            warning_threshold,
            drift_threshold,
            n: 0.0,
            p: 0.0,
            p_min: f64::NAN,
            s_min: f64::NAN,
            ps_min: f64::INFINITY,
            warning: false,
            seen: 0,
            detected: false,
        }
    }

    /// Whether the last update was in the warning zone.
    pub fn warning_detected(&self) -> bool {
        self.warning
    }

    fn reset(&mut self) {
        self.n = 0.0;
        self.p = 0.0;
        self.p_min = f64::NAN;
        self.s_min = f64::NAN;
        self.ps_min = f64::INFINITY;
        self.warning = false;
    }
}

impl ChangeDetector for Ddm {
    fn name(&self) -> &'static str {
        "ddm"
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
        self.p += (1.0 / self.n) * (x - self.p);
        let s = (self.p * (1.0 - self.p) / self.n).sqrt();
        if self.n > self.warm_start as f64 {
            if self.p + s <= self.ps_min {
                self.p_min = self.p;
                self.s_min = s;
                self.ps_min = self.p_min + self.s_min;
            }
            self.warning = self.p + s > self.p_min + self.warning_threshold * self.s_min;
            if self.p + s > self.p_min + self.drift_threshold * self.s_min {
                self.detected = true;
                self.warning = false;
            }
        }
        self.detected.then_some(Change { index })
    }
}

/// Early Drift Detection Method (Baena-García et al. 2006): watches the distance between errors.
#[derive(Clone, Debug)]
pub struct Eddm {
    /// Errors (and values) before a change can be reported. Default 30 (river).
    pub warm_start: u64,
    /// Warning level. Default 0.95 (river).
    pub alpha: f64,
    /// Drift level. Default 0.9 (river).
    pub beta: f64,
    n: u64,
    last_error: u64,
    n_errors: u64,
    d_n: f64,
    d_mean: f64,
    d_s: f64,
    p2s_max: f64,
    warning: bool,
    seen: u64,
    detected: bool,
}

impl Default for Eddm {
    fn default() -> Self {
        Eddm::new(30, 0.95, 0.9)
    }
}

impl Eddm {
    /// A detector with explicit parameters (river's argument order).
    pub fn new(warm_start: u64, alpha: f64, beta: f64) -> Self {
        Eddm {
            warm_start,
            alpha,
            beta,
            n: 0,
            last_error: 0,
            n_errors: 0,
            d_n: 0.0,
            d_mean: 0.0,
            d_s: 0.0,
            p2s_max: -1.0,
            warning: false,
            seen: 0,
            detected: false,
        }
    }

    /// Whether the last update was in the warning zone.
    pub fn warning_detected(&self) -> bool {
        self.warning
    }

    fn reset(&mut self) {
        let (w, a, b, seen) = (self.warm_start, self.alpha, self.beta, self.seen);
        *self = Eddm::new(w, a, b);
        self.seen = seen;
    }
}

impl ChangeDetector for Eddm {
    fn name(&self) -> &'static str {
        "eddm"
    }

    fn update(&mut self, x: f64) -> Option<Change> {
        let index = self.seen;
        self.seen += 1;
        if self.detected {
            self.reset();
            self.detected = false;
        }
        self.n += 1;
        if x == 1.0 {
            self.n_errors += 1;
            // Running mean and variance (ddof 1) of the distances between errors.
            let d = (self.n - self.last_error) as f64;
            let old = self.d_mean;
            self.d_n += 1.0;
            self.d_mean += (1.0 / self.d_n) * (d - self.d_mean);
            self.d_s += (d - old) * (d - self.d_mean);
            if self.n > self.warm_start {
                let var = if self.d_n > 1.0 {
                    self.d_s / (self.d_n - 1.0)
                } else {
                    0.0
                };
                let p2s = self.d_mean + 2.0 * var.powf(0.5);
                if p2s > self.p2s_max {
                    self.p2s_max = p2s;
                } else if self.n_errors > self.warm_start {
                    let level = p2s / self.p2s_max;
                    if level < self.beta {
                        self.detected = true;
                    } else {
                        self.warning = level < self.alpha;
                    }
                }
            }
            self.last_error = self.n;
        }
        self.detected.then_some(Change { index })
    }
}
