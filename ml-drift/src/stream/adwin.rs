//! ADWIN (Bifet & Gavaldà 2007), the ADWIN2 exponential-histogram version, with river's
//! parameters and arithmetic order so change points agree with river's one for one.

use super::{Change, ChangeDetector};

/// One row of the exponential histogram: up to `max_buckets + 1` summaries of `2^row` values.
#[derive(Clone, Debug)]
struct Row {
    len: usize,
    totals: Vec<f64>,
    variances: Vec<f64>,
}

impl Row {
    fn new(max_buckets: usize) -> Self {
        Row {
            len: 0,
            totals: vec![0.0; max_buckets + 1],
            variances: vec![0.0; max_buckets + 1],
        }
    }
    fn push(&mut self, total: f64, variance: f64) {
        self.totals[self.len] = total;
        self.variances[self.len] = variance;
        self.len += 1;
    }
    /// Drops the `k` oldest summaries.
    fn drop_front(&mut self, k: usize) {
        self.totals.copy_within(k..self.len, 0);
        self.variances.copy_within(k..self.len, 0);
        self.len -= k;
    }
}

/// ADaptive WINdowing change detector.
#[derive(Clone, Debug)]
pub struct Adwin {
    /// Confidence `δ`. Default 0.002 (river).
    pub delta: f64,
    /// Check for a cut every `clock` values. Default 32 (river).
    pub clock: u64,
    /// Summaries per row before two are merged. Default 5 (river).
    pub max_buckets: usize,
    /// Smallest sub-window compared. Default 5 (river).
    pub min_window_length: f64,
    /// No check before this many values. Default 10 (river).
    pub grace_period: f64,
    rows: Vec<Row>,
    total: f64,
    variance: f64,
    width: f64,
    tick: u64,
    seen: u64,
    detected: bool,
}

impl Default for Adwin {
    fn default() -> Self {
        Adwin::new(0.002, 32, 5, 5, 10)
    }
}

impl Adwin {
    /// A detector with explicit parameters (river's argument order).
    pub fn new(
        delta: f64,
        clock: u64,
        max_buckets: usize,
        min_window_length: u32,
        grace_period: u32,
    ) -> Self {
        Adwin {
            delta,
            clock: clock.max(1),
            max_buckets: max_buckets.max(1),
            min_window_length: min_window_length as f64,
            grace_period: grace_period as f64,
            rows: vec![Row::new(max_buckets.max(1))],
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            seen: 0,
            detected: false,
        }
    }

    fn reset(&mut self) {
        self.rows = vec![Row::new(self.max_buckets)];
        self.total = 0.0;
        self.variance = 0.0;
        self.width = 0.0;
        self.tick = 0;
    }

    /// Values in the current window.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// Mean of the current window (0 when empty).
    pub fn estimation(&self) -> f64 {
        if self.width == 0.0 {
            0.0
        } else {
            self.total / self.width
        }
    }

    fn insert(&mut self, x: f64) {
        self.rows[0].push(x, 0.0);
        self.width += 1.0;
        if self.width > 1.0 {
            let d = x - self.total / (self.width - 1.0);
            self.variance += (self.width - 1.0) * d * d / self.width;
        }
        self.total += x;
        // Merge the two oldest summaries of a full row into the next row, cascading.
        let mut r = 0;
        while self.rows[r].len == self.max_buckets + 1 {
            let n = (1u64 << r) as f64;
            let (t0, t1) = (self.rows[r].totals[0], self.rows[r].totals[1]);
            let (v0, v1) = (self.rows[r].variances[0], self.rows[r].variances[1]);
            let (m0, m1) = (t0 / n, t1 / n);
            let merged_var = v0 + v1 + n * 0.5 * (m0 - m1) * (m0 - m1);
            if r + 1 == self.rows.len() {
                self.rows.push(Row::new(self.max_buckets));
            }
            self.rows[r + 1].push(t0 + t1, merged_var);
            self.rows[r].drop_front(2);
            if self.rows[r + 1].len <= self.max_buckets {
                break;
            }
            r += 1;
        }
    }

    /// Removes the oldest summary (from the last row).
    fn drop_oldest(&mut self) {
        let last = self.rows.len() - 1;
        let n = (1u64 << last) as f64;
        let (u, v) = (self.rows[last].totals[0], self.rows[last].variances[0]);
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_w = self.total / self.width;
        self.variance -= v + n * self.width * (mu - mu_w) * (mu - mu_w) / (n + self.width);
        self.rows[last].drop_front(1);
        if self.rows[last].len == 0 {
            self.rows.pop();
        }
    }

    /// `dp = ln(2·ln(width)/δ)` and `var = variance/width` only change when the window does, so
    /// the scan computes them once per pass (same values, same rounding as per cut).
    fn cut_found(&self, n0: f64, n1: f64, delta_mean: f64, dp: f64, var: f64) -> bool {
        let m = 1.0 / (n0 - self.min_window_length + 1.0) + 1.0 / (n1 - self.min_window_length + 1.0);
        let eps = (2.0 * m * var * dp).sqrt() + 2.0 / 3.0 * dp * m;
        delta_mean.abs() > eps
    }

    fn detect(&mut self) -> bool {
        self.tick += 1;
        if !(self.tick.is_multiple_of(self.clock) && self.width > self.grace_period) {
            return false;
        }
        let mut detected = false;
        let mut again = true;
        while again {
            again = false;
            let (mut n0, mut n1, mut u0, mut u1) = (0.0, self.width, 0.0, self.total);
            let dp = (2.0 * self.width.ln() / self.delta).ln();
            let var = self.variance / self.width;
            // Cuts from the oldest summary towards the newest.
            'rows: for r in (0..self.rows.len()).rev() {
                let size = (1u64 << r) as f64;
                let len = self.rows[r].len;
                for k in 0..len {
                    let t = self.rows[r].totals[k];
                    n0 += size;
                    n1 -= size;
                    u0 += t;
                    u1 -= t;
                    if r == 0 && k == len - 1 {
                        break 'rows;
                    }
                    if n1 >= self.min_window_length
                        && n0 >= self.min_window_length
                        && self.cut_found(n0, n1, u0 / n0 - u1 / n1, dp, var)
                    {
                        detected = true;
                        again = true;
                        if self.width > 0.0 {
                            self.drop_oldest();
                            break 'rows;
                        }
                    }
                }
            }
        }
        detected
    }
}

impl ChangeDetector for Adwin {
    fn name(&self) -> &'static str {
        "adwin"
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
        self.insert(x);
        self.detected = self.detect();
        self.detected.then_some(Change { index })
    }

    fn update_many(&mut self, xs: &[f64]) -> Vec<Change> {
        let mut out = Vec::new();
        for &x in xs {
            if let Some(c) = self.update(x) {
                out.push(c);
            }
        }
        out
    }
}
