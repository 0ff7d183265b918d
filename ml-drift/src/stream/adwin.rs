//! ADWIN (Bifet & Gavaldà 2007), the ADWIN2 exponential-histogram version, with river's
//! parameters and arithmetic order so change points agree with river's one for one.
//!
//! Speed without changing a single decision:
//! - the histogram's rows lie side by side in two flat arrays, each row a plain slice that takes
//!   arrivals at its back and gives pairs to merge from its front (it moves back to the start of
//!   its space only when its back reaches the end), so an insert and the merges it cascades
//!   allocate nothing once a row exists and need no index arithmetic; a reset keeps the arrays;
//! - the cut scan (every `clock` values) first asks [`CutBounds::surely_no_cut`], a test free of
//!   divisions and square roots whose rounding errors are bounded far inside its margin: it only
//!   answers "no cut" when river's expression (evaluated in floating point, exactly as river
//!   does) would also say no. Every other boundary is decided by river's expression itself, so a
//!   change point can only move if the bound were wrong — the unit tests compare the detector with
//!   a literal transcription of river's loop on many series and parameters;
//! - a scan first computes river's running sums `n0`, `u0` at every boundary, then the pre-check
//!   at all of them at once (branch-free, so it runs as vector instructions; four lanes where the
//!   CPU has AVX), with `u1` taken as `total − u0` and its distance to river's `u1` bounded and
//!   added to the margin; river's loop, with river's `u1` and expression, runs only when the
//!   pre-check leaves some boundary open (rarely). The running sums of the oldest rows, which a
//!   block of values leaves unchanged, are kept from one scan to the next (the same additions
//!   of the same summaries: the same bits), and a row's sums walk fixed slots without a branch
//!   per summary. The pre-check may take `dp` from a smaller width (`dp` only grows with the
//!   width), so its two logarithms are computed once per doubling of the width rather than per
//!   scan;
//! - `update_many` inserts up to a check at a time: a row takes all its arrivals, then its pairs
//!   merge straight into the next row; it runs compiled for AVX where the CPU has it (the same
//!   IEEE operations, no fused multiply-add, so the same bits);
//! - the check schedule is a countdown instead of a modulo per value.

use super::{Change, ChangeDetector};

/// Relative safety margin of the pre-check. Its floating-point errors are a few units of 2^-53
/// (~1e-15) each; 1e-12 covers them hundreds of times over while letting through (to the exact
/// expression) only boundaries within a millionth of a millionth of river's threshold.
const MARGIN: f64 = 1e-12;

/// Values inserted together by [`ChangeDetector::update_many`] (fewer when a check is due
/// sooner).
const BLOCK: usize = 64;

/// Most summaries per row for which [`Adwin::running_sums`] walks rows without branches.
const FIXED_SLOTS: usize = 8;

/// `COUNTS[k] = k + 1`, as floats.
const COUNTS: [f64; BLOCK] = {
    let mut c = [0.0; BLOCK];
    let mut k = 0;
    while k < BLOCK {
        c[k] = (k + 1) as f64;
        k += 1;
    }
    c
};

/// The constants of one scan pass for the division-free pre-check of a boundary.
///
/// river cuts when `|u0/n0 - u1/n1| > sqrt(2·m·var·dp) + 2/3·dp·m` with
/// `m = 1/(n0-c) + 1/(n1-c)`, `c = min_window_length - 1`. With `P = n0·n1`,
/// `Q = (n0-c)(n1-c)`, `S = n0 + n1 - 2c` (so `m = S/Q`) and `D = |u0·n1 - u1·n0|` (so
/// `|Δmean| = D/P`), no cut means `D·Q ≤ 2/3·dp·S·P + P·sqrt(2·var·dp·S·Q)`, which needs no
/// division, and no square root once both sides are squared.
#[derive(Clone, Copy, Debug)]
struct CutBounds {
    /// False when the pass's constants are outside the range the error analysis covers
    /// (non-finite, negative variance from rounding, tiny variance): every boundary then goes to
    /// river's expression.
    enabled: bool,
    /// `min_window_length - 1`.
    c: f64,
    /// `2/3·dp·S`, lowered by the margin.
    linear: f64,
    /// `2·var·dp·S`, lowered by the margin.
    quadratic: f64,
}

impl CutBounds {
    fn new(width: f64, dp: f64, var: f64, min_window_length: f64) -> Self {
        let c = min_window_length - 1.0;
        let s = width - 2.0 * c;
        let enabled = dp.is_finite()
            && dp > 0.0
            && var.is_finite()
            && (var == 0.0 || var >= 1e-200)
            && width < (1u64 << 52) as f64
            && s > 0.0;
        CutBounds {
            enabled,
            c,
            linear: 2.0 / 3.0 * dp * s * (1.0 - MARGIN),
            quadratic: 2.0 * var * dp * s * (1.0 - MARGIN),
        }
    }

    /// True only when river's cut test is certainly false at this boundary (`n0`, `n1` at least
    /// `min_window_length`). Upper bounds are raised and lower bounds lowered by [`MARGIN`]; the
    /// term `MARGIN·(|u0·n1| + |u1·n0|)` covers the cancellation in `u0·n1 - u1·n0` (and in
    /// river's `u0/n0 - u1/n1`). `u1` may differ from river's by up to `slack` (the term
    /// `2·n0·slack` covers it). NaN or an overflow anywhere makes the answer false, so the
    /// boundary goes to river's expression.
    ///
    /// Free of branches (both sides are always evaluated), so that a loop over boundaries runs
    /// as vector instructions.
    #[inline(always)]
    fn surely_no_cut(&self, n0: f64, n1: f64, u0: f64, u1: f64, slack: f64) -> bool {
        let (t0, t1) = (u0 * n1, u1 * n0);
        let d = (t0 - t1).abs() + MARGIN * (t0.abs() + t1.abs()) + 2.0 * n0 * slack;
        let p = n0 * n1;
        let q = (n0 - self.c) * (n1 - self.c);
        let lhs = d * q * (1.0 + MARGIN);
        let linear = self.linear * p;
        // With zero variance river's bound is the linear term alone. Otherwise the right side
        // is at least ~1e-201 (variance ≥ 1e-200), so a square that underflows is truly below
        // it; a right side that overflowed proves nothing.
        let x = lhs - linear;
        let rhs = self.quadratic * p * p * q;
        self.enabled & ((lhs <= linear) | ((self.quadratic > 0.0) & (x * x <= rhs) & (rhs < f64::INFINITY)))
    }
}

/// The pre-check of one scan pass at every boundary, from river's running `n0` and `u0` alone:
/// `u1` is taken as `total − u0` (one subtraction, no chain), within `slack` of river's `u1`
/// (see [`Adwin::u1_slack`]).
#[derive(Clone, Copy, Debug)]
struct Pass {
    bounds: CutBounds,
    width: f64,
    total: f64,
    mwl: f64,
    slack: f64,
}

impl Pass {
    /// Whether river's expression must decide the boundary with `n0` values (totalling `u0`)
    /// before it: both sides hold at least `min_window_length` values and the pre-check leaves
    /// it undecided.
    #[inline(always)]
    fn open(&self, n0: f64, u0: f64) -> bool {
        let n1 = self.width - n0;
        let u1 = self.total - u0;
        (n1 >= self.mwl) & (n0 >= self.mwl) & !self.bounds.surely_no_cut(n0, n1, u0, u1, self.slack)
    }

    /// Whether [`Pass::open`] holds at any of the boundaries (running sums in `n0s`, `u0s`).
    /// With `avx`, the same loop compiled for AVX (four lanes instead of two): the same IEEE
    /// operations on every boundary (no fused multiply-add), so the same answer.
    #[inline(always)]
    fn any_open(&self, avx: bool, n0s: &[f64], u0s: &[f64]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if avx {
            // SAFETY: `avx` is only true when `is_x86_feature_detected!("avx")` returned true
            // (see `Adwin::new`), so the CPU runs AVX instructions.
            return unsafe { any_open_avx(self, n0s, u0s) };
        }
        let _ = avx;
        any_open_body(self, n0s, u0s)
    }
}

/// The pre-check at every boundary of a scan, free of branches (both sides of every test are
/// evaluated), so that it runs as vector instructions.
#[inline(always)]
fn any_open_body(pass: &Pass, n0s: &[f64], u0s: &[f64]) -> bool {
    let mut any = false;
    for (&n0, &u0) in n0s.iter().zip(u0s) {
        any |= pass.open(n0, u0);
    }
    any
}

/// [`any_open_body`] compiled for AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn any_open_avx(pass: &Pass, n0s: &[f64], u0s: &[f64]) -> bool {
    any_open_body(pass, n0s, u0s)
}

/// Whether the CPU runs AVX instructions (detected once per process by the standard library).
fn avx_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ADaptive WINdowing change detector.
#[derive(Clone, Debug)]
pub struct Adwin {
    delta: f64,
    clock: u64,
    max_buckets: usize,
    min_window_length: f64,
    grace_period: f64,
    /// Row `r`'s summaries (totals and variances of `2^r` values each) lie side by side in
    /// `[r·cap, (r+1)·cap)` of these arrays, oldest at `r·cap + heads[r]`: merges take pairs
    /// from the front, arrivals go at the back, and the row moves back to the start of its
    /// space only when the back reaches its end (see [`Adwin::room`]), so every access is a
    /// plain slice. The arrays end with [`FIXED_SLOTS`] more (see `running_sums_fixed`).
    /// Row 0's variances are all 0 (single values): a block's values leave them unwritten.
    totals: Vec<f64>,
    variances: Vec<f64>,
    heads: Vec<usize>,
    lens: Vec<usize>,
    /// Rows in use (≥ 1).
    rows: usize,
    /// A row's space: twice the most it holds at once (`max_buckets + 1` before a merge, or
    /// `max_buckets` and a block's arrivals, at most [`BLOCK`]), so that it moves back at most
    /// once per `cap / 2` arrivals.
    cap: usize,
    total: f64,
    variance: f64,
    width: f64,
    /// Values until the next cut check (river checks when its tick is a multiple of `clock`).
    countdown: u64,
    seen: u64,
    detected: bool,
    /// Reused buffers of [`Adwin::scan`]: river's running sums at every boundary.
    sums: Sums,
    /// A width of 2 or more and river's `dp` at it (see [`Adwin::dp_lower_bound`]).
    dp_at: (f64, f64),
    /// Whether the CPU runs AVX (the pre-check's four-lane version).
    avx: bool,
    /// `1 +` the highest row changed since `sums` were last computed (rows from this one up
    /// still have their running sums there); `usize::MAX` when none are valid.
    touched: usize,
    /// An upper bound of the sum of `|x|` over the window's values (the values since the last
    /// reset, never lowered: removing values only lowers the true sum), for
    /// [`Adwin::u1_slack`].
    abs_total: f64,
}

/// river's running sums at the boundaries of a scan: values and totals up to each (`n0`, `u0`)
/// and the total after it (`u1`, computed only when river's expression must run), one array
/// each so that the pre-check loads them as vectors.
/// The values after a boundary, river's `n1` (the width less the sizes before it, one at a
/// time), are whole numbers below 2^53 all along, so every subtraction is exact and `n1` is
/// `width − n0` to the bit.
#[derive(Clone, Debug, Default)]
struct Sums {
    n0: Vec<f64>,
    u0: Vec<f64>,
    u1: Vec<f64>,
}

impl Default for Adwin {
    fn default() -> Self {
        Adwin::new(0.002, 32, 5, 5, 10)
    }
}

impl Adwin {
    /// A detector with explicit parameters (river's argument order and defaults: `delta` 0.002,
    /// `clock` 32, `max_buckets` 5, `min_window_length` 5, `grace_period` 10). `clock` and
    /// `max_buckets` below 1 are taken as 1.
    pub fn new(
        delta: f64,
        clock: u64,
        max_buckets: usize,
        min_window_length: u32,
        grace_period: u32,
    ) -> Self {
        let max_buckets = max_buckets.max(1);
        let cap = 2 * (max_buckets + BLOCK + 1);
        let clock = clock.max(1);
        Adwin {
            delta,
            clock,
            max_buckets,
            min_window_length: min_window_length as f64,
            grace_period: grace_period as f64,
            totals: vec![0.0; cap + FIXED_SLOTS],
            variances: vec![0.0; cap + FIXED_SLOTS],
            heads: vec![0],
            lens: vec![0],
            rows: 1,
            cap,
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            countdown: clock,
            seen: 0,
            detected: false,
            sums: Sums::default(),
            dp_at: (0.0, 0.0),
            avx: avx_detected(),
            touched: usize::MAX,
            abs_total: 0.0,
        }
    }

    /// Confidence `δ`.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// A cut is looked for every `clock` values.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Summaries per row before the two oldest are merged.
    pub fn max_buckets(&self) -> usize {
        self.max_buckets
    }

    /// Smallest sub-window compared.
    pub fn min_window_length(&self) -> u32 {
        self.min_window_length as u32
    }

    /// No check before the window holds more than this many values.
    pub fn grace_period(&self) -> u32 {
        self.grace_period as u32
    }

    /// Empties the window; the arrays keep their size, so no allocation follows.
    fn reset(&mut self) {
        self.rows = 1;
        self.heads[0] = 0;
        self.lens[0] = 0;
        self.total = 0.0;
        self.variance = 0.0;
        self.width = 0.0;
        self.countdown = self.clock;
        self.touched = usize::MAX;
        self.abs_total = 0.0;
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

    /// Index in `totals`/`variances` of row `r`'s `k`-th oldest summary.
    #[inline(always)]
    fn slot(&self, r: usize, k: usize) -> usize {
        r * self.cap + self.heads[r] + k
    }

    /// Makes room for `a` more summaries at the back of row `r` (holding at most `cap / 2 − a`),
    /// moving its summaries to the start of its space when they would pass its end.
    #[inline(always)]
    fn room(&mut self, r: usize, a: usize) {
        let (head, len) = (self.heads[r], self.lens[r]);
        if head + len + a > self.cap {
            let base = r * self.cap;
            self.totals.copy_within(base + head..base + head + len, base);
            self.variances.copy_within(base + head..base + head + len, base);
            self.heads[r] = 0;
        }
    }

    #[inline(always)]
    fn push(&mut self, r: usize, total: f64, variance: f64) {
        self.room(r, 1);
        let i = self.slot(r, self.lens[r]);
        self.totals[i] = total;
        self.variances[i] = variance;
        self.lens[r] += 1;
        self.touched = self.touched.max(r + 1);
    }

    /// Drops the `k` oldest summaries of row `r`.
    #[inline(always)]
    fn drop_front(&mut self, r: usize, k: usize) {
        self.heads[r] += k;
        self.lens[r] -= k;
        self.touched = self.touched.max(r + 1);
    }

    fn add_row(&mut self) {
        let r = self.rows;
        if self.heads.len() == r {
            self.heads.push(0);
            self.lens.push(0);
            self.totals.resize((r + 1) * self.cap + FIXED_SLOTS, 0.0);
            self.variances.resize((r + 1) * self.cap + FIXED_SLOTS, 0.0);
        }
        self.heads[r] = 0;
        self.lens[r] = 0;
        self.rows += 1;
        self.touched = self.touched.max(r + 1);
    }

    #[inline(always)]
    fn insert(&mut self, x: f64) {
        self.push(0, x, 0.0);
        self.width += 1.0;
        if self.width > 1.0 {
            let d = x - self.total / (self.width - 1.0);
            self.variance += (self.width - 1.0) * d * d / self.width;
        }
        self.total += x;
        self.abs_total += x.abs();
        if self.lens[0] > self.max_buckets {
            self.merge_from(0);
        }
    }

    /// Inserts `xs` (finite, at most [`BLOCK`] values) as `xs.len()` calls of
    /// [`Adwin::insert`] would, with the same values to the bit, in three passes instead of
    /// one loop: the running totals (a chain of additions, in order), then the two divisions
    /// of each value's variance term (independent of one another, so they overlap or run as
    /// vector instructions; IEEE division rounds alike either way), then the variance terms
    /// added in order. The summaries follow with [`Adwin::push_summaries`].
    #[inline(always)]
    fn insert_block(&mut self, xs: &[f64]) {
        let n = xs.len();
        if n == 0 {
            return;
        }
        debug_assert!(n <= BLOCK);
        // Each value's total before it, then (in place) its variance term.
        let mut terms = [0.0; BLOCK];
        let mut total = self.total;
        for (b, &x) in terms.iter_mut().zip(xs) {
            *b = total;
            total += x;
        }
        // Value k makes the width `w0 + k + 1` (whole numbers far below 2^53: exact), and adds
        // `(w - 1)·d·d / w` with `d = x - total_before / (w - 1)`, as `insert` does.
        let w0 = self.width;
        for ((t, &x), &k1) in terms.iter_mut().zip(xs).zip(&COUNTS) {
            let w = w0 + k1;
            let d = x - *t / (w - 1.0);
            *t = (w - 1.0) * d * d / w;
        }
        // The first value of an empty window adds no variance (`insert`'s `width > 1`).
        let first = usize::from(w0 == 0.0);
        let mut variance = self.variance;
        for &t in &terms[first..n] {
            variance += t;
        }
        // A bound only (see `abs_total`): any order of additions will do.
        let mut lanes = [0.0; 4];
        let fours = xs.chunks_exact(4);
        let rest: f64 = fours.remainder().iter().map(|x| x.abs()).sum();
        for four in fours {
            for (l, x) in lanes.iter_mut().zip(four) {
                *l += x.abs();
            }
        }
        self.abs_total += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + rest;
        self.total = total;
        self.variance = variance;
        self.width = w0 + COUNTS[n - 1];
        self.push_summaries(xs);
    }

    /// Appends one summary per value of `xs` to row 0 and merges as [`Adwin::merge_from`] does
    /// after each insert, a row at a time. Each row is a queue whose two oldest summaries merge
    /// into one for the next row whenever it reaches `max_buckets + 1`, so the summaries a row
    /// passes up are its queue (held, then arrived) taken in consecutive pairs, in order, and
    /// what a row ends with depends only on the summaries it received: the same rows,
    /// summaries and bits as value by value.
    ///
    /// A row takes all its arrivals at its back first, then its pairs merge from its front
    /// straight to the next row's back. A row holds at most `max_buckets` summaries before and
    /// receives `a ≤ BLOCK` (row 0: the block's values); it passes up
    /// `1 + (len − max_buckets − 1)/2 ≤ 1 + (a − 1)/2 ≤ a` merged pairs, so every row receives
    /// at most `BLOCK` too.
    #[inline(always)]
    fn push_summaries(&mut self, xs: &[f64]) {
        let full = self.max_buckets + 1;
        let cap = self.cap;
        self.touched = self.touched.max(1);
        self.room(0, xs.len());
        let (head, held) = (self.heads[0], self.lens[0]);
        self.totals[head + held..head + held + xs.len()].copy_from_slice(xs);
        let mut len = held + xs.len();
        let mut r = 0;
        while len >= full {
            let merges = 1 + (len - full) / 2;
            if r + 1 == self.rows {
                self.add_row();
            }
            self.room(r + 1, merges);
            self.touched = self.touched.max(r + 2);
            let head = self.heads[r];
            let (next_head, next_len) = (self.heads[r + 1], self.lens[r + 1]);
            // This row's pairs, oldest first, and the next row's back.
            let (this_t, next_t) = self.totals.split_at_mut((r + 1) * cap);
            let (this_v, next_v) = self.variances.split_at_mut((r + 1) * cap);
            let pairs_t = &this_t[r * cap + head..][..2 * merges];
            let to_t = &mut next_t[next_head + next_len..][..merges];
            let to_v = &mut next_v[next_head + next_len..][..merges];
            if r == 0 {
                // Row 0 holds single values (n = 1) whose variances are all 0, so a merged
                // pair's variance `0 + 0 + 1·0.5·(t0/1 − t1/1)²` is `0.5·(t0 − t1)·(t0 − t1)` to
                // the bit (adding +0 changes no finite value, and the square is never −0).
                for ((pair, t), v) in pairs_t.chunks_exact(2).zip(to_t).zip(to_v) {
                    let d = pair[0] - pair[1];
                    *t = pair[0] + pair[1];
                    *v = 0.5 * d * d;
                }
            } else {
                // As `merge_from` computes each.
                let pairs_v = &this_v[r * cap + head..][..2 * merges];
                let n = (1u64 << r) as f64;
                let inv_n = 1.0 / n;
                let half = n * 0.5;
                let pairs = pairs_t.chunks_exact(2).zip(pairs_v.chunks_exact(2));
                for ((pt, pv), (t, v)) in pairs.zip(to_t.iter_mut().zip(to_v)) {
                    let (m0, m1) = (pt[0] * inv_n, pt[1] * inv_n);
                    *t = pt[0] + pt[1];
                    *v = pv[0] + pv[1] + half * (m0 - m1) * (m0 - m1);
                }
            }
            self.heads[r] = head + 2 * merges;
            self.lens[r] = len - 2 * merges;
            len = next_len + merges;
            r += 1;
        }
        self.lens[r] = len;
    }

    /// Merges the two oldest summaries of a full row into the next row, cascading.
    fn merge_from(&mut self, mut r: usize) {
        while self.lens[r] == self.max_buckets + 1 {
            let n = (1u64 << r) as f64;
            // Dividing by a power of two and multiplying by its (exact) inverse round alike.
            let inv_n = 1.0 / n;
            let (i0, i1) = (self.slot(r, 0), self.slot(r, 1));
            let (t0, t1) = (self.totals[i0], self.totals[i1]);
            let (v0, v1) = (self.variances[i0], self.variances[i1]);
            let (m0, m1) = (t0 * inv_n, t1 * inv_n);
            let merged_var = v0 + v1 + n * 0.5 * (m0 - m1) * (m0 - m1);
            if r + 1 == self.rows {
                self.add_row();
            }
            self.push(r + 1, t0 + t1, merged_var);
            self.drop_front(r, 2);
            if self.lens[r + 1] <= self.max_buckets {
                break;
            }
            r += 1;
        }
    }

    /// Removes the oldest summary (from the last row).
    fn drop_oldest(&mut self) {
        let last = self.rows - 1;
        let n = (1u64 << last) as f64;
        let i = self.slot(last, 0);
        let (u, v) = (self.totals[i], self.variances[i]);
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_w = self.total / self.width;
        self.variance -= v + n * self.width * (mu - mu_w) * (mu - mu_w) / (n + self.width);
        self.drop_front(last, 1);
        // Every boundary's running sums change.
        self.touched = usize::MAX;
        // With `max_buckets` ≥ 2 only the last row can be empty, and only now; with 1 a merge
        // empties its row, and the rows below may be empty too (river, whose rows are never
        // empty but at the top, then reads a removed summary: this takes the oldest one left).
        // A cut needs a summary on either side of it, so some row still holds one.
        while self.rows > 1 && self.lens[self.rows - 1] == 0 {
            self.rows -= 1;
        }
    }

    /// river's cut test, term for term. `dp = ln(2·ln(width)/δ)` and `var = variance/width`
    /// only change when the window does, so the scan computes them once per pass (same values,
    /// same rounding as per cut).
    fn cut_found(&self, n0: f64, n1: f64, delta_mean: f64, dp: f64, var: f64) -> bool {
        let m = 1.0 / (n0 - self.min_window_length + 1.0) + 1.0 / (n1 - self.min_window_length + 1.0);
        let eps = (2.0 * m * var * dp).sqrt() + 2.0 / 3.0 * dp * m;
        delta_mean.abs() > eps
    }

    /// Counts the value towards the check schedule; scans when a check is due.
    #[inline(always)]
    fn detect(&mut self) -> bool {
        self.countdown -= 1;
        if self.countdown > 0 {
            return false;
        }
        self.countdown = self.clock;
        self.width > self.grace_period && self.scan()
    }

    /// A lower bound of river's `dp = ln(2·ln(width)/δ)` for the pre-check, whose thresholds
    /// only grow with `dp`: `dp` grows with the width (above 1), so its value at a smaller width
    /// is one. It is computed again (two logarithms) once the width has doubled since, which
    /// lowers the pre-check's thresholds by under 1% (`dp` is about 10), or fallen below it.
    /// river's expression gets the exact `dp`.
    fn dp_lower_bound(&mut self) -> f64 {
        let (w, dp) = self.dp_at;
        if w >= 2.0 && w <= self.width && self.width <= 2.0 * w {
            return dp;
        }
        let dp = (2.0 * self.width.ln() / self.delta).ln();
        self.dp_at = (self.width, dp);
        dp
    }

    /// river's running `n0` and `u0` at every boundary, oldest summary first, into `sums`;
    /// returns the number of summaries. Rows unchanged since the last call (the oldest ones:
    /// a block of values changes only the rows its merges reach) keep their sums, which are
    /// the same additions of the same summaries from the same start, so the same bits; the
    /// chain resumes from the last of them.
    fn running_sums(&mut self, sums: &mut Sums) -> usize {
        let summaries: usize = self.lens[..self.rows].iter().sum();
        // Room for a row's slots past the last summary (see `running_sums_fixed`).
        for v in [&mut sums.n0, &mut sums.u0] {
            v.resize(summaries + FIXED_SLOTS, 0.0);
        }
        let changed = self.touched.min(self.rows);
        let kept: usize = self.lens[changed..self.rows].iter().sum();
        let start = match kept.checked_sub(1) {
            Some(last) => (sums.n0[last], sums.u0[last]),
            None => (0.0, 0.0),
        };
        match self.max_buckets {
            0..=5 => self.running_sums_fixed::<5>(sums, changed, kept, start),
            6..=FIXED_SLOTS => self.running_sums_fixed::<FIXED_SLOTS>(sums, changed, kept, start),
            _ => self.running_sums_any(sums, changed, kept, start),
        }
        self.touched = 0;
        summaries
    }

    /// [`Adwin::running_sums`] of rows `changed − 1` down to 0 from boundary `b` on, starting
    /// from `(n0, u0)`, for rows of at most `N` summaries (`max_buckets ≤ N`: a row holds no
    /// more between updates), free of branches inside a row: every row walks `N` slots, a slot
    /// past the row's length adds `+0` (which leaves the running sums as they are: `u0` starts
    /// at `+0` and a sum is `−0` only when both terms are, so `u0` is never `−0`, and `n0 ≥ 0`)
    /// and is overwritten by the next summary's sums. A row's loop otherwise ends after 0 to 5
    /// steps, a branch the processor mispredicts about once per row.
    #[inline(always)]
    fn running_sums_fixed<const N: usize>(
        &self,
        sums: &mut Sums,
        changed: usize,
        mut b: usize,
        (mut n0, mut u0): (f64, f64),
    ) {
        for r in (0..changed).rev() {
            let size = (1u64 << r) as f64;
            let len = self.lens[r];
            // `N` slots from the row's oldest: within the arrays, which end with `N` more.
            let row = &self.totals[self.slot(r, 0)..][..N];
            let (out_n0, out_u0) = (&mut sums.n0[b..b + N], &mut sums.u0[b..b + N]);
            for k in 0..N {
                // All ones for a summary, zero past the row's end.
                let keep = 0u64.wrapping_sub(u64::from(k < len));
                n0 += f64::from_bits(size.to_bits() & keep);
                u0 += f64::from_bits(row[k].to_bits() & keep);
                out_n0[k] = n0;
                out_u0[k] = u0;
            }
            b += len;
        }
    }

    /// [`Adwin::running_sums_fixed`] for rows of any length.
    fn running_sums_any(&self, sums: &mut Sums, changed: usize, mut b: usize, (mut n0, mut u0): (f64, f64)) {
        for r in (0..changed).rev() {
            let size = (1u64 << r) as f64;
            for t in self.row(r) {
                n0 += size;
                u0 += t;
                sums.n0[b] = n0;
                sums.u0[b] = u0;
                b += 1;
            }
        }
    }

    /// Row `r`'s totals, oldest first.
    fn row(&self, r: usize) -> impl Iterator<Item = f64> + '_ {
        self.totals[self.slot(r, 0)..][..self.lens[r]].iter().copied()
    }

    /// river's `u1` at every boundary (the total less each summary, one at a time, oldest
    /// first), for river's expression.
    fn river_u1(&self, u1s: &mut Vec<f64>) {
        u1s.clear();
        let mut u1 = self.total;
        for r in (0..self.rows).rev() {
            for t in self.row(r) {
                u1 -= t;
                u1s.push(u1);
            }
        }
    }

    /// How far `total − u0` (rounded) may lie from river's `u1` at any of the `summaries`
    /// boundaries. Each of river's `b ≤ summaries` subtractions rounds by at most `2⁻⁵³` of a
    /// partial result, itself at most `|total| + Σ|t|` (up to rounding) where `Σ|t|` over the
    /// summaries is at most the sum of `|x|` over the window's values; the same holds for
    /// `u0`'s additions and the final subtraction. `4·(summaries + 2)·2⁻⁵³·(|total| + 2·abs_total)`
    /// covers all of them with room to spare (also for `abs_total`'s own rounding, a relative
    /// `2⁻⁵³` per value added). Infinite when the sums overflow: no boundary is then settled.
    fn u1_slack(&self, summaries: usize) -> f64 {
        const U: f64 = 1.0 / (1u64 << 53) as f64;
        4.0 * (summaries as f64 + 2.0) * U * (self.total.abs() + 2.0 * self.abs_total)
    }

    /// Looks for a cut from the oldest summary towards the newest; after a cut drops the oldest
    /// summary and looks again (river's loop), so the window is left as river leaves it.
    ///
    /// First river's running sums at every boundary (the same additions in the same order),
    /// then the pre-check at all of them at once (free of branches: vector instructions). Only
    /// when it leaves some boundary open does river's loop run, with river's expression at the
    /// open boundaries, in order, up to the first cut: the same boundaries river's loop tests,
    /// and the same answer at each.
    #[inline(never)]
    fn scan(&mut self) -> bool {
        let mwl = self.min_window_length;
        let mut sums = std::mem::take(&mut self.sums);
        let mut detected = false;
        loop {
            let var = self.variance / self.width;
            let bounds = CutBounds::new(self.width, self.dp_lower_bound(), var, mwl);
            let summaries = self.running_sums(&mut sums);
            // river's loop stops at the newest summary (the last of row 0) before testing it; an
            // empty row 0 (possible with one summary per row) lets it test every boundary.
            let tested = if self.lens[0] > 0 {
                summaries - 1
            } else {
                summaries
            };
            let pass = Pass {
                bounds,
                width: self.width,
                total: self.total,
                mwl,
                slack: self.u1_slack(summaries),
            };
            let any_open = pass.any_open(self.avx, &sums.n0[..tested], &sums.u0[..tested]);
            // river's expression, with the exact `dp` and river's `u1`, at the open boundaries.
            let cut = any_open && {
                self.river_u1(&mut sums.u1);
                let dp = (2.0 * self.width.ln() / self.delta).ln();
                (0..tested).any(|i| {
                    let (n0, u0, u1) = (sums.n0[i], sums.u0[i], sums.u1[i]);
                    let n1 = self.width - n0;
                    pass.open(n0, u0) && self.cut_found(n0, n1, u0 / n0 - u1 / n1, dp, var)
                })
            };
            if !cut {
                break;
            }
            detected = true;
            // A cut lies between two summaries, so the window is never empty here.
            if self.width <= 0.0 {
                break;
            }
            self.drop_oldest();
        }
        self.sums = sums;
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

    /// The same as [`ChangeDetector::update`] value by value: the values up to the next
    /// check (at most 64 at a time) are inserted together, then the check runs where it would
    /// have.
    fn update_many(&mut self, xs: &[f64]) -> Vec<Change> {
        #[cfg(target_arch = "x86_64")]
        if self.avx {
            // SAFETY: `avx` is only true when `is_x86_feature_detected!("avx")` returned true
            // (see `Adwin::new`), so the CPU runs AVX instructions.
            return unsafe { self.update_many_avx(xs) };
        }
        self.update_many_body(xs)
    }
}

impl Adwin {
    /// [`Adwin::update_many_body`] compiled for AVX: the insertion's divisions and merges run
    /// four lanes at a time instead of two, with the same IEEE operations on every value (no
    /// fused multiply-add), so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    fn update_many_avx(&mut self, xs: &[f64]) -> Vec<Change> {
        self.update_many_body(xs)
    }

    /// [`ChangeDetector::update_many`]'s loop.
    #[inline(always)]
    fn update_many_body(&mut self, xs: &[f64]) -> Vec<Change> {
        let mut out = Vec::new();
        let mut block = [0.0; BLOCK];
        let mut i = 0;
        while i < xs.len() {
            if self.detected {
                self.reset();
                self.detected = false;
            }
            // The finite values until the check is due (non-finite values are skipped and do
            // not count towards it).
            let want = self.countdown.min(BLOCK as u64) as usize;
            let taken = match xs.get(i..i + want) {
                Some(run) if run.iter().all(|x| x.is_finite()) => {
                    i += want;
                    self.insert_block(run);
                    want
                }
                _ => {
                    let mut n = 0;
                    while i < xs.len() && n < want {
                        if xs[i].is_finite() {
                            block[n] = xs[i];
                            n += 1;
                        }
                        i += 1;
                    }
                    self.insert_block(&block[..n]);
                    n
                }
            };
            self.countdown -= taken as u64;
            if taken > 0 && self.countdown == 0 {
                self.countdown = self.clock;
                if self.width > self.grace_period && self.scan() {
                    self.detected = true;
                    // The check ran at the last value taken.
                    out.push(Change {
                        index: self.seen + (i - 1) as u64,
                    });
                }
            }
        }
        self.seen += xs.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ml_core::rng::Rng;

    /// river's ADWIN loop transcribed as plainly as possible (rows as vectors shifted on every
    /// merge, river's cut expression at every boundary): what [`Adwin`] must equal bit for bit.
    #[derive(Debug)]
    struct Literal {
        delta: f64,
        clock: u64,
        max_buckets: usize,
        min_window_length: f64,
        grace_period: f64,
        rows: Vec<(Vec<f64>, Vec<f64>)>,
        total: f64,
        variance: f64,
        width: f64,
        tick: u64,
        detected: bool,
    }

    impl Literal {
        fn new(delta: f64, clock: u64, max_buckets: usize, mwl: u32, grace: u32) -> Self {
            Literal {
                delta,
                clock: clock.max(1),
                max_buckets: max_buckets.max(1),
                min_window_length: mwl as f64,
                grace_period: grace as f64,
                rows: vec![(Vec::new(), Vec::new())],
                total: 0.0,
                variance: 0.0,
                width: 0.0,
                tick: 0,
                detected: false,
            }
        }

        fn update(&mut self, x: f64) -> bool {
            if self.detected {
                *self = Literal::new(
                    self.delta,
                    self.clock,
                    self.max_buckets,
                    self.min_window_length as u32,
                    self.grace_period as u32,
                );
            }
            if !x.is_finite() {
                return false;
            }
            self.rows[0].0.push(x);
            self.rows[0].1.push(0.0);
            self.width += 1.0;
            if self.width > 1.0 {
                let d = x - self.total / (self.width - 1.0);
                self.variance += (self.width - 1.0) * d * d / self.width;
            }
            self.total += x;
            let mut r = 0;
            while self.rows[r].0.len() == self.max_buckets + 1 {
                let n = (1u64 << r) as f64;
                let (t0, t1) = (self.rows[r].0[0], self.rows[r].0[1]);
                let (v0, v1) = (self.rows[r].1[0], self.rows[r].1[1]);
                let (m0, m1) = (t0 / n, t1 / n);
                let merged = v0 + v1 + n * 0.5 * (m0 - m1) * (m0 - m1);
                if r + 1 == self.rows.len() {
                    self.rows.push((Vec::new(), Vec::new()));
                }
                self.rows[r + 1].0.push(t0 + t1);
                self.rows[r + 1].1.push(merged);
                self.rows[r].0.drain(..2);
                self.rows[r].1.drain(..2);
                if self.rows[r + 1].0.len() <= self.max_buckets {
                    break;
                }
                r += 1;
            }
            self.detected = self.detect();
            self.detected
        }

        fn detect(&mut self) -> bool {
            self.tick += 1;
            if !(self.tick.is_multiple_of(self.clock) && self.width > self.grace_period) {
                return false;
            }
            let mwl = self.min_window_length;
            let mut detected = false;
            let mut again = true;
            while again {
                again = false;
                let (mut n0, mut n1, mut u0, mut u1) = (0.0, self.width, 0.0, self.total);
                'rows: for r in (0..self.rows.len()).rev() {
                    let size = (1u64 << r) as f64;
                    let len = self.rows[r].0.len();
                    for k in 0..len {
                        let t = self.rows[r].0[k];
                        n0 += size;
                        n1 -= size;
                        u0 += t;
                        u1 -= t;
                        if r == 0 && k == len - 1 {
                            break 'rows;
                        }
                        let delta_mean = u0 / n0 - u1 / n1;
                        let dp = (2.0 * self.width.ln() / self.delta).ln();
                        let m = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0);
                        let eps = (2.0 * m * (self.variance / self.width) * dp).sqrt() + 2.0 / 3.0 * dp * m;
                        if n1 >= mwl && n0 >= mwl && delta_mean.abs() > eps {
                            detected = true;
                            again = true;
                            // Remove the oldest summary.
                            let last = self.rows.len() - 1;
                            let n = (1u64 << last) as f64;
                            let (u, v) = (self.rows[last].0[0], self.rows[last].1[0]);
                            let mu = u / n;
                            self.width -= n;
                            self.total -= u;
                            let mu_w = self.total / self.width;
                            self.variance -=
                                v + n * self.width * (mu - mu_w) * (mu - mu_w) / (n + self.width);
                            self.rows[last].0.remove(0);
                            self.rows[last].1.remove(0);
                            if self.rows[last].0.is_empty() {
                                self.rows.pop();
                            }
                            break 'rows;
                        }
                    }
                }
            }
            detected
        }
    }

    /// Streams whose cut tests land everywhere: steps in mean and variance, slow drifts, 0/1
    /// error indicators, constants (zero variance), large offsets (cancellation in the mean
    /// difference), tiny and huge scales, heavy tails, non-finite values.
    fn series(kind: usize, seed: u64, n: usize) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| {
                let phase = (i * 5 / n) as f64;
                let z = rng.normal();
                match kind {
                    0 => z + 0.5 * (phase as u64 % 3) as f64,
                    1 => z * (1.0 + 2.0 * (phase as u64 % 2) as f64),
                    2 => z + 1.5 * i as f64 / n as f64,
                    3 => f64::from(rng.bernoulli(if phase < 2.0 { 0.1 } else { 0.3 })),
                    4 => {
                        if phase < 3.0 {
                            2.5
                        } else {
                            2.5 + 0.25 * (phase - 2.0)
                        }
                    }
                    5 => 1e8 + z * 1e-3 + if phase >= 3.0 { 2e-3 } else { 0.0 },
                    6 => (z + phase) * 1e-150,
                    7 => (z + phase) * 1e150,
                    8 => z / rng.uniform().max(1e-3) + phase,
                    9 => match i % 997 {
                        3 => f64::NAN,
                        500 => f64::INFINITY,
                        _ => z + if phase >= 2.0 { 0.3 } else { 0.0 },
                    },
                    _ => (z * 4.0).round() * 0.25 + 0.25 * phase,
                }
            })
            .collect()
    }

    #[test]
    fn equals_rivers_loop_bit_for_bit_on_many_series_and_parameters() {
        // (delta, clock, max_buckets, min_window_length, grace_period)
        let params = [
            (0.002, 32, 5, 5, 10),
            (0.02, 8, 5, 5, 10),
            (0.3, 1, 2, 1, 0),
            (0.1, 3, 2, 2, 4),
            (0.9, 1, 3, 0, 1),
            (1e-5, 64, 9, 20, 50),
            (0.05, 100, 4, 5, 10),
            // More summaries per row than a block holds values.
            (0.01, 32, 150, 5, 10),
            // Rows of 6 to 8 summaries (the running sums' eight-slot rows).
            (0.05, 16, 7, 5, 10),
        ];
        let mut compared = 0;
        let mut changes = 0;
        for kind in 0..11 {
            for (p, &(delta, clock, max_buckets, mwl, grace)) in params.iter().enumerate() {
                let xs = series(kind, 100 + p as u64, 12_000);
                let mut fast = Adwin::new(delta, clock, max_buckets, mwl, grace);
                let mut literal = Literal::new(delta, clock, max_buckets, mwl, grace);
                let mut batch = Adwin::new(delta, clock, max_buckets, mwl, grace);
                let mut from_batches = Vec::new();
                for chunk in xs.chunks(1 + 37 * p) {
                    from_batches.extend(batch.update_many(chunk).into_iter().map(|c| c.index));
                }
                // Without AVX (where the CPU has it, the other runs use it): the same.
                let mut portable = Adwin::new(delta, clock, max_buckets, mwl, grace);
                portable.avx = false;
                let from_portable: Vec<u64> = xs
                    .chunks(1 + 37 * p)
                    .flat_map(|chunk| portable.update_many(chunk))
                    .map(|c| c.index)
                    .collect();
                let mut one_by_one = Vec::new();
                for (i, &x) in xs.iter().enumerate() {
                    let got = fast.update(x);
                    let want = literal.update(x);
                    assert_eq!(got.is_some(), want, "kind {kind}, params {p}, value {i}");
                    if let Some(c) = got {
                        assert_eq!(c.index, i as u64);
                        one_by_one.push(c.index);
                    }
                    let what = format!("kind {kind}, params {p}, after value {i}");
                    assert_eq!(fast.width.to_bits(), literal.width.to_bits(), "width, {what}");
                    assert_eq!(fast.total.to_bits(), literal.total.to_bits(), "total, {what}");
                    assert_eq!(
                        fast.variance.to_bits(),
                        literal.variance.to_bits(),
                        "variance, {what}"
                    );
                    compared += 1;
                }
                assert_eq!(from_batches, one_by_one, "update_many, kind {kind}, params {p}");
                assert_eq!(from_portable, one_by_one, "without AVX, kind {kind}, params {p}");
                // Batches leave the window as single updates do, to the bit.
                let state = |d: &Adwin| (d.width.to_bits(), d.total.to_bits(), d.variance.to_bits());
                assert_eq!(
                    state(&batch),
                    state(&fast),
                    "update_many, kind {kind}, params {p}"
                );
                let rows = |d: &Adwin| {
                    (0..d.rows)
                        .map(|r| {
                            (0..d.lens[r])
                                .map(|k| {
                                    (
                                        d.totals[d.slot(r, k)].to_bits(),
                                        d.variances[d.slot(r, k)].to_bits(),
                                    )
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                };
                assert_eq!(rows(&batch), rows(&fast), "summaries, kind {kind}, params {p}");
                changes += one_by_one.len();
            }
        }
        assert_eq!(compared, 11 * params.len() * 12_000);
        // The comparison means something only if the series do trigger cuts.
        assert!(changes > 200, "only {changes} changes");
    }

    /// river's cut test on random boundaries placed within tiny distances of its threshold,
    /// around means far from zero too: the pre-check may only say "no cut" where river's test
    /// says no, and must say it for boundaries clearly inside the threshold.
    #[test]
    fn the_pre_check_never_hides_a_cut_and_settles_clear_cases() {
        let mut rng = Rng::new(11);
        let mut pick = |options: &[f64]| options[rng.below(options.len() as u64) as usize];
        let (mut settled, mut clear) = (0, 0);
        for case in 0..200_000 {
            let mwl = pick(&[0.0, 1.0, 5.0, 20.0]);
            let det = Adwin::new(0.002, 32, 5, mwl as u32, 10);
            let (n0, n1) = (
                mwl + 1.0 + (pick(&[1.0, 2.0, 30.0, 1e3, 1e5, 1e7]) * pick(&[0.3, 0.77, 1.0])).round(),
                mwl + 1.0 + (pick(&[1.0, 3.0, 50.0, 1e4, 1e6]) * pick(&[0.5, 0.91, 1.0])).round(),
            );
            let width = n0 + n1;
            let dp = (2.0 * width.ln() / pick(&[0.002, 0.3, 1e-6])).ln();
            let var = pick(&[0.0, 1e-9, 0.01, 1.0, 1e4, 1e290]) * pick(&[0.37, 1.0]);
            let m = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0);
            let eps = (2.0 * m * var * dp).sqrt() + 2.0 / 3.0 * dp * m;
            let rel = pick(&[0.0, 1e-16, -1e-16, 1e-13, -1e-13, 1e-9, -1e-9, -0.5, 0.5]);
            let mean = pick(&[0.0, 1.0, -3.0, 1e6, 1e9, 1e150]);
            let dm = eps * (1.0 + rel) * pick(&[1.0, -1.0]);
            let (u0, u1) = ((mean + dm) * n0, mean * n1);
            let cut = det.cut_found(n0, n1, u0 / n0 - u1 / n1, dp, var);
            let no = CutBounds::new(width, dp, var, mwl).surely_no_cut(n0, n1, u0, u1, 0.0);
            assert!(
                !(cut && no),
                "case {case}: n0 {n0} n1 {n1} u0 {u0} u1 {u1} var {var} dp {dp}"
            );
            settled += usize::from(no);
            if rel == -0.5 && mean.abs() <= 1.0 && var < 1e100 {
                clear += 1;
                assert!(
                    no,
                    "case {case}: a boundary at half the threshold was not settled"
                );
            }
        }
        assert!(
            clear > 4_000 && settled > 20_000,
            "clear {clear}, settled {settled}"
        );
    }

    /// The pre-check takes `u1` as `total − u0`: at every boundary of many windows (large
    /// offsets, mixed signs, huge and tiny scales) that lies within `u1_slack` of river's `u1`.
    #[test]
    fn u1_from_the_total_stays_within_its_slack() {
        let mut checked = 0;
        for kind in 0..11 {
            for max_buckets in [2, 5, 7, 40] {
                let mut d = Adwin::new(0.002, 32, max_buckets, 5, 10);
                for (i, &x) in series(kind, 9, 6_000).iter().enumerate() {
                    d.update(x);
                    if i % 97 != 0 || d.width < 2.0 {
                        continue;
                    }
                    let mut sums = std::mem::take(&mut d.sums);
                    let summaries = d.running_sums(&mut sums);
                    d.river_u1(&mut sums.u1);
                    let slack = d.u1_slack(summaries);
                    for b in 0..summaries {
                        let (u0, u1) = (sums.u0[b], sums.u1[b]);
                        let err = (d.total - u0 - u1).abs();
                        assert!(
                            err <= slack || !slack.is_finite(),
                            "kind {kind}, max_buckets {max_buckets}, value {i}, boundary {b}: {err} > {slack}"
                        );
                        checked += 1;
                    }
                    d.sums = sums;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    /// The pre-check may use `dp` at a smaller width: river's `dp` never decreases as the width
    /// grows (checked here in floating point, on consecutive and on far apart widths).
    #[test]
    fn dp_never_decreases_with_the_width() {
        let dp = |w: f64, delta: f64| (2.0 * f64::ln(w) / delta).ln();
        let mut rng = Rng::new(3);
        for delta in [0.002, 0.3, 1e-6, 0.9] {
            for w in (2..20_000u64).chain((0..20_000).map(|_| 2 + rng.below(1 << 40))) {
                let w = w as f64;
                for bigger in [w + 1.0, w + 32.0, 2.0 * w] {
                    assert!(
                        dp(w, delta) <= dp(bigger, delta),
                        "delta {delta}, widths {w} {bigger}"
                    );
                }
            }
        }
    }

    /// One summary per row (river's own loop misreads a removed summary there): no panic, the
    /// window stays consistent, and batches agree with single updates.
    #[test]
    fn one_bucket_per_row_runs_and_batches_agree() {
        for kind in [0, 3, 5, 9] {
            let xs = series(kind, 5, 20_000);
            let mut one = Adwin::new(0.3, 1, 1, 1, 0);
            let mut many = one.clone();
            let singles: Vec<u64> = xs
                .iter()
                .filter_map(|&x| one.update(x))
                .map(|c| c.index)
                .collect();
            let batched: Vec<u64> = xs
                .chunks(333)
                .flat_map(|c| many.update_many(c))
                .map(|c| c.index)
                .collect();
            assert_eq!(singles, batched, "kind {kind}");
            assert!(!singles.is_empty(), "kind {kind}");
            let held: f64 = (0..one.rows).map(|r| (one.lens[r] << r) as f64).sum();
            assert_eq!(held, one.width, "kind {kind}");
        }
    }
}
