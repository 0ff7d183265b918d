//! Comparing an **unsorted** sample with a sorted one that was indexed once: the KS statistic, the
//! Wasserstein area and the counts per quantile bin in one pass over the unsorted values, without
//! sorting them.
//!
//! Profile mode compares a 10⁴-value reference sample with 10⁵-value current windows. Sorting
//! each window dominated that comparison, yet the three tests only need, per gap between two
//! consecutive distinct reference values, how many current values fall in it (and on its right
//! end), and the sum of their distances to that end:
//!
//! - KS: between two reference values the reference ECDF is constant and the current one only
//!   rises, so the largest gap is at the interval's ends — pairs of counts the full merge also
//!   evaluates, with the same floating-point expression, so D is the same bit for bit.
//! - Wasserstein: where the current ECDF stays on one side of the reference's level over a whole
//!   interval, the area is `|G₀ − L|·(b − a) ± Σ(b − x)/n`. Only intervals where it crosses the
//!   level (rare) need their values in order; they are collected in a second, cheap pass and
//!   sorted.
//! - PSI: an interval holds values of one bin unless a bin edge lies strictly inside it (at most
//!   `bins − 1` intervals, handled like the crossing ones).
//!
//! Each value's interval is found in O(1): a table over equal-width cells of the reference's
//! range gives the first reference value of the value's cell; the cell function is monotone, so
//! every earlier reference value is smaller, and a short scan finishes (a binary search when a
//! cell holds many values, as in heavy tails): the three values from the cell's first compared
//! at once, or four by one vector comparison where the CPU has AVX (pass 1 then runs compiled
//! for AVX; the same results to the bit).

use std::cell::RefCell;

/// Cells per distinct reference value in the lookup table (rounded up to a power of two). One
/// keeps the table small enough to stay in cache; where bell-shaped data is densest a cell then
/// holds about two values, which `locate` steps over without branches. (Two and four cells
/// per value measured no faster; half a cell per value, with the four-value comparison, slower.)
const CELLS_PER_VALUE: usize = 1;
/// Most cells in the table (8 MiB of `u32`).
const MAX_CELLS: usize = 1 << 21;
/// Values whose intervals are found before their accumulators are updated.
const CHUNK: usize = 256;
/// Most interval indexes (4 bytes each) a thread keeps between comparisons.
const KEEP_INTERVALS: usize = 1 << 20;
/// Cells holding more reference values than this are searched by bisection.
const SCAN_LIMIT: usize = 8;

/// A sorted, NaN-free sample indexed once for [`SortedIndex::compare`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SortedIndex {
    /// The distinct values ascending, then `+∞` four times (sentinels).
    values: Vec<f64>,
    /// `le[k]`: how many sample values are `≤ values[k]`.
    le: Vec<u64>,
    /// `table[c]`: how many distinct values lie in cells before `c` (`cells + 1` entries).
    table: Vec<u32>,
    /// Cell of `x`: `⌊(x/2 − lo/2) · scale⌋`, clamped (halves, so that no range overflows).
    lo_half: f64,
    scale: f64,
}

/// KS statistic, Wasserstein area and bin counts of one comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// The largest distance between the two empirical CDFs (as [`super::ks_statistic_sorted`]).
    pub ks_statistic: f64,
    /// The area between them (as [`super::wasserstein_sorted`], up to rounding).
    pub wasserstein: f64,
    /// Current values per bin: bin `i` is `(edges[i−1], edges[i]]`.
    pub bin_counts: Vec<f64>,
}

/// What pass 1 gathers per interval `j` (between distinct values `j − 1` and `j`): one record,
/// so that each value touches one cache line.
#[derive(Clone, Copy, Default)]
struct Acc {
    /// Current values strictly inside the interval.
    inside: u32,
    /// Current values equal to distinct value `j`.
    at: u32,
    /// Sum of the inside values' distances to the interval's right end (to the maximum, past it).
    gap: f64,
}

/// Buffers reused from one comparison to the next on the same thread.
#[derive(Default)]
struct Scratch {
    acc: Vec<Acc>,
    /// Every current value's interval, from pass 1 (so that the second pass need not find it
    /// again).
    intervals: Vec<u32>,
    /// One byte per interval: whether its values are needed one by one (1) or not (0).
    marked: Vec<u8>,
    group: Vec<u32>,
    starts: Vec<usize>,
    grouped: Vec<f64>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
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

#[inline]
fn cdf(i: u64, n: u64, step: f64) -> f64 {
    if i == n { 1.0 } else { i as f64 * step }
}

impl SortedIndex {
    /// Indexes a sorted, NaN-free sample.
    pub fn new(sorted: &[f64]) -> Self {
        let mut values: Vec<f64> = Vec::new();
        let mut le: Vec<u64> = Vec::new();
        for (i, &x) in sorted.iter().enumerate() {
            if values.last() == Some(&x) {
                *le.last_mut().expect("a value was pushed") = i as u64 + 1;
            } else {
                values.push(x);
                le.push(i as u64 + 1);
            }
        }
        let m = values.len();
        let mut index = SortedIndex {
            values,
            le,
            table: Vec::new(),
            lo_half: 0.0,
            scale: 0.0,
        };
        // The `+∞` sentinel, and three more so that `locate` may read four values from any cell's
        // first.
        index.values.extend([f64::INFINITY; 4]);
        if m == 0 {
            return index;
        }
        let cells = (m * CELLS_PER_VALUE).next_power_of_two().clamp(16, MAX_CELLS);
        let lo_half = index.values[0] * 0.5;
        let range = index.values[m - 1] * 0.5 - lo_half;
        index.lo_half = lo_half;
        index.scale = if range > 0.0 { cells as f64 / range } else { 0.0 };
        let mut table = vec![0u32; cells + 1];
        for &v in &index.values[..m] {
            table[index.cell(v, cells) + 1] += 1;
        }
        for c in 1..=cells {
            table[c] += table[c - 1];
        }
        index.table = table;
        index
    }

    /// Values indexed (with repeats).
    pub fn len(&self) -> u64 {
        self.le.last().copied().unwrap_or(0)
    }

    /// Heap bytes held by the index.
    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() * 8 + self.le.capacity() * 8 + self.table.capacity() * 4
    }

    /// Whether no value was indexed.
    pub fn is_empty(&self) -> bool {
        self.le.is_empty()
    }

    /// The equal-width cell of `x` (monotone in `x`): `(x/2 − lo/2)·scale` clamped to
    /// `[0, cells − 1]` (NaN, from an infinite `x` with a zero scale, to 0) and rounded to the
    /// nearest whole number by adding `1.5·2⁵²`, which leaves it in the low bits of the sum —
    /// cheaper than a saturating conversion, and as monotone.
    #[inline(always)]
    fn cell(&self, x: f64, cells: usize) -> usize {
        const ROUND: f64 = (3u64 << 51) as f64;
        let t = ((x * 0.5 - self.lo_half) * self.scale)
            .max(0.0)
            .min((cells - 1) as f64);
        ((t + ROUND).to_bits() as u32) as usize
    }

    /// Index of the first distinct value `≥ x`, with `x`'s cell `c`.
    #[inline(always)]
    fn locate_in(&self, x: f64, c: usize) -> usize {
        // Most cells hold at most two values: the three values from the cell's first on are
        // loaded at once (independent loads, not a chain of steps) and the ones below `x`
        // counted without branches (they come first: the values are sorted). Every value
        // before the cell's first is below `x` (the cell function is monotone), so fewer than
        // three below it give the answer whatever the cell's size.
        let j = self.table[c] as usize;
        let three = &self.values[j..j + 3];
        let below = usize::from(three[0] < x) + usize::from(three[1] < x) + usize::from(three[2] < x);
        if below < 3 {
            return j + below;
        }
        self.locate_past(x, c, j + 3)
    }

    /// The rest of [`SortedIndex::locate_in`] when the values from `x`'s cell's first up to
    /// `j` (excluded) are all below `x` (rare): a walk, or a binary search when the cell holds
    /// many values (as in heavy tails).
    #[inline(never)]
    fn locate_past(&self, x: f64, c: usize, mut j: usize) -> usize {
        let v = &self.values;
        // values[end] lies in a later cell, so it is > x: the answer is in [j, end].
        let end = self.table[c + 1] as usize;
        if end - j > SCAN_LIMIT {
            return j + v[j..end].partition_point(|&v| v < x);
        }
        while v[j] < x {
            j += 1;
        }
        j
    }

    /// [`SortedIndex::locate_in`] with AVX: the four values from the cell's first on compared
    /// with `x` by one vector comparison (the ones below `x` come first, so the count is the
    /// number of trailing ones of its mask).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    fn locate_in_avx(&self, x: f64, c: usize) -> usize {
        use std::arch::x86_64::{
            _CMP_LT_OQ, _mm256_cmp_pd, _mm256_movemask_pd, _mm256_set_pd, _mm256_set1_pd,
        };
        let j = self.table[c] as usize;
        let four = &self.values[j..j + 4];
        let below = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(
            _mm256_set_pd(four[3], four[2], four[1], four[0]),
            _mm256_set1_pd(x),
        ));
        let below = (below as u32 + 1).trailing_zeros() as usize;
        if below < 4 {
            return j + below;
        }
        self.locate_past(x, c, j + 4)
    }

    /// Pass 1 of [`SortedIndex::compare`]: per interval `j` (between distinct values `j − 1`
    /// and `j`) the count of current values strictly inside and the sum of their distances to
    /// its right end (to the maximum, past it), per distinct value the count of values equal to
    /// it; every value's interval appended to `intervals`. Its own function so that the slices
    /// stay in registers (the accumulators cannot alias the index).
    /// With `avx` (only true when the CPU has AVX), its AVX version: the same results.
    fn accumulate(&self, current: &[f64], acc: &mut [Acc], intervals: &mut Vec<u32>, avx: bool) {
        #[cfg(target_arch = "x86_64")]
        if avx {
            // SAFETY: `avx` is only true when `avx_detected()` is (see `compare` and the
            // tests), so the CPU runs AVX instructions.
            return unsafe { self.accumulate_avx(current, acc, intervals) };
        }
        let _ = avx;
        self.accumulate_body(current, acc, intervals, |x, c| self.locate_in(x, c))
    }

    /// [`SortedIndex::accumulate_body`] compiled for AVX: the cells of four values at once.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    fn accumulate_avx(&self, current: &[f64], acc: &mut [Acc], intervals: &mut Vec<u32>) {
        self.accumulate_body(current, acc, intervals, |x, c| self.locate_in_avx(x, c))
    }

    #[inline(always)]
    fn accumulate_body(
        &self,
        current: &[f64],
        acc: &mut [Acc],
        intervals: &mut Vec<u32>,
        locate: impl Fn(f64, usize) -> usize,
    ) {
        let v = &self.values[..];
        let cells = self.table.len() - 1;
        let m = self.le.len();
        let max = v[m - 1];
        // In chunks: first every value's interval (independent searches, which the processor
        // overlaps), then the accumulators.
        let mut js = [0u32; CHUNK];
        for chunk in current.chunks(CHUNK) {
            for (j, &x) in js.iter_mut().zip(chunk) {
                *j = self.cell(x, cells) as u32;
            }
            for (j, &x) in js.iter_mut().zip(chunk) {
                *j = locate(x, *j as usize) as u32;
            }
            intervals.extend_from_slice(&js[..chunk.len()]);
            for (&j, &x) in js.iter().zip(chunk) {
                let j = j as usize;
                let (a, vj) = (&mut acc[j], v[j]);
                if vj == x {
                    a.at += 1;
                } else {
                    a.inside += 1;
                    let right = if j < m { vj } else { max };
                    a.gap += (right - x).abs();
                }
            }
        }
    }

    /// Compares the **unsorted**, NaN-free `current` values with the indexed sample: the KS
    /// statistic (bit for bit as [`super::ks_statistic_sorted`] on both sorted), the Wasserstein
    /// area (as [`super::wasserstein_sorted`] up to rounding) and the current counts per bin of
    /// the sorted inner `edges`.
    pub fn compare(&self, current: &[f64], edges: &[f64]) -> Comparison {
        self.compare_at(current, edges, avx_detected())
    }

    /// [`SortedIndex::compare`], with AVX or without (the same results to the bit).
    fn compare_at(&self, current: &[f64], edges: &[f64], avx: bool) -> Comparison {
        let mut bins = vec![0.0; edges.len() + 1];
        let (ns, nx) = (self.len(), current.len() as u64);
        if ns == 0 || nx == 0 {
            for &x in current {
                bins[edges.partition_point(|&e| e < x)] += 1.0;
            }
            return Comparison {
                ks_statistic: 0.0,
                wasserstein: 0.0,
                bin_counts: bins,
            };
        }
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let (d, area) = self.compare_with(current, edges, &mut bins, &mut s, avx);
            // The thread keeps its buffers for the next comparison, but not one value's interval
            // each past a few MiB (a single huge window should not pin its size).
            if s.intervals.capacity() > KEEP_INTERVALS {
                s.intervals = Vec::new();
            }
            Comparison {
                ks_statistic: d,
                wasserstein: area,
                bin_counts: bins,
            }
        })
    }

    fn compare_with(
        &self,
        current: &[f64],
        edges: &[f64],
        bins: &mut [f64],
        s: &mut Scratch,
        avx: bool,
    ) -> (f64, f64) {
        let m = self.le.len();
        let v = &self.values;
        let (ns, nx) = (self.len(), current.len() as u64);
        let nxf = nx as f64;
        // Pass 1: per interval j (between v[j−1] and v[j]; slot 2j) and per point v[j] (slot
        // 2j + 1), the count of current values; per interval, the sum of their distances to its
        // right end (to the maximum, past it).
        s.acc.clear();
        s.acc.resize(m + 1, Acc::default());
        s.intervals.clear();
        s.intervals.reserve(current.len());
        self.accumulate(current, &mut s.acc, &mut s.intervals, avx);
        // Walk the intervals: KS at their ends, areas where the current ECDF stays on one side
        // of the reference's level, bins where no edge splits them.
        let mut special: Vec<Special> = Vec::new();
        let (sx, ss) = (1.0 / nxf, 1.0 / ns as f64);
        let (mut d, mut area) = (0.0f64, 0.0f64);
        let (mut cx, mut cs) = (0u64, 0u64);
        let mut e_le = 0; // edges ≤ v[j − 1]
        for j in 0..=m {
            let inside = u64::from(s.acc[j].inside);
            d = d.max((cdf(cx + inside, nx, sx) - cdf(cs, ns, ss)).abs());
            let mut flags = 0;
            if j == 0 || j == m {
                // Below the sample the reference ECDF is 0, past it 1: the current one stays on
                // one side.
                area += s.acc[j].gap / nxf;
            } else {
                let level = (cs as u128) * (nx as u128);
                let width = v[j] - v[j - 1];
                let gap = (cx as f64 / nxf) - (cs as f64 / ns as f64);
                if (cx as u128) * (ns as u128) >= level {
                    area += gap * width + s.acc[j].gap / nxf;
                } else if ((cx + inside) as u128) * (ns as u128) <= level {
                    area += -gap * width - s.acc[j].gap / nxf;
                } else {
                    flags |= CROSSES;
                }
            }
            // Bins: edges < v[j] (every edge past the sample).
            let mut e_lt = e_le;
            while e_lt < edges.len() && edges[e_lt] < v[j] {
                e_lt += 1;
            }
            if e_lt > e_le {
                flags |= SPLIT;
            } else {
                bins[e_le] += inside as f64;
            }
            if flags != 0 && inside > 0 {
                special.push(Special { j, flags, cx, cs });
            }
            if j < m {
                let at = u64::from(s.acc[j].at);
                bins[e_lt] += at as f64;
                e_le = e_lt;
                while e_le < edges.len() && edges[e_le] <= v[j] {
                    e_le += 1;
                }
                cx += inside + at;
                cs = self.le[j];
                d = d.max((cdf(cx, nx, sx) - cdf(cs, ns, ss)).abs());
            }
        }
        if !special.is_empty() {
            self.resolve(current, edges, bins, s, &special, &mut area);
        }
        (d, area)
    }
}

/// Pass 2's gathering: the values inside the marked intervals, grouped (`fill[g]`: where the
/// next value of group `g` goes). Its own function so that the slices stay in registers.
fn gather(
    current: &[f64],
    intervals: &[u32],
    marked: &[u8],
    group: &[u32],
    v: &[f64],
    fill: &mut [usize],
    grouped: &mut [f64],
) {
    // Only the intervals are read through, eight at a time (their marks or-ed: one branch,
    // rarely taken); a value only when its interval is marked.
    for (eight, xs) in intervals.chunks(8).zip(current.chunks(8)) {
        if eight.iter().fold(0, |any, &j| any | marked[j as usize]) == 0 {
            continue;
        }
        for (&j, &x) in eight.iter().zip(xs) {
            let j = j as usize;
            if marked[j] != 0 && v[j] != x {
                let f = &mut fill[group[j] as usize - 1];
                grouped[*f] = x;
                *f += 1;
            }
        }
    }
}

const CROSSES: u8 = 1;
const SPLIT: u8 = 2;

/// An interval whose values are needed one by one: the current ECDF crosses the reference's
/// level inside it, or a bin edge splits it. `cx`, `cs`: current and sample values up to its
/// left end.
struct Special {
    j: usize,
    flags: u8,
    cx: u64,
    cs: u64,
}

impl SortedIndex {
    /// Second pass: gathers the values of the special intervals (usually a few hundred), then
    /// integrates the crossing intervals in order and bins the split ones value by value.
    fn resolve(
        &self,
        current: &[f64],
        edges: &[f64],
        bins: &mut [f64],
        s: &mut Scratch,
        special: &[Special],
        area: &mut f64,
    ) {
        let Scratch {
            acc,
            intervals,
            marked,
            group,
            starts,
            grouped,
        } = s;
        let v = &self.values;
        let m = self.le.len();
        let (ns, nxf) = (self.len() as f64, current.len() as f64);
        group.clear();
        group.resize(m + 1, 0);
        marked.clear();
        marked.resize(m + 1, 0);
        starts.clear();
        let mut total = 0;
        for (g, sp) in special.iter().enumerate() {
            group[sp.j] = g as u32 + 1;
            starts.push(total);
            total += acc[sp.j].inside as usize;
            marked[sp.j] = 1;
        }
        starts.push(total);
        grouped.clear();
        grouped.resize(total, 0.0);
        let mut fill: Vec<usize> = starts[..special.len()].to_vec();
        gather(current, intervals, marked, group, v, &mut fill, grouped);
        for (g, sp) in special.iter().enumerate() {
            let xs = &mut grouped[starts[g]..starts[g + 1]];
            if sp.flags & SPLIT != 0 {
                for &x in xs.iter() {
                    bins[edges.partition_point(|&e| e < x)] += 1.0;
                }
            }
            if sp.flags & CROSSES != 0 {
                super::sort_floats(xs);
                let level = sp.cs as f64 / ns;
                let (mut prev, mut k) = (v[sp.j - 1], sp.cx);
                for &x in xs.iter() {
                    *area += (k as f64 / nxf - level).abs() * (x - prev);
                    prev = x;
                    k += 1;
                }
                *area += (k as f64 / nxf - level).abs() * (v[sp.j] - prev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SortedIndex;
    use crate::stats::{ks_statistic_sorted, sort_floats, wasserstein_sorted};
    use ml_core::rng::Rng;

    /// The same three results the slow way: both samples sorted, the walk, bins by bisection.
    fn sorted_way(reference: &[f64], current: &[f64], edges: &[f64]) -> (f64, f64, Vec<f64>) {
        let mut c = current.to_vec();
        sort_floats(&mut c);
        let mut bins = vec![0.0; edges.len() + 1];
        for &x in current {
            bins[edges.partition_point(|&e| e < x)] += 1.0;
        }
        if reference.is_empty() || c.is_empty() {
            return (0.0, 0.0, bins);
        }
        (
            ks_statistic_sorted(reference, &c),
            wasserstein_sorted(reference, &c),
            bins,
        )
    }

    fn check(reference: &[f64], current: &[f64], edges: &[f64], what: &str) {
        let mut r = reference.to_vec();
        sort_floats(&mut r);
        let index = SortedIndex::new(&r);
        let got = index.compare(current, edges);
        // Without AVX (and with it, where the CPU has it) the same bits.
        for avx in [false, super::avx_detected()] {
            assert_eq!(index.compare_at(current, edges, avx), got, "avx {avx}: {what}");
        }
        let (d, w, bins) = sorted_way(&r, current, edges);
        assert_eq!(got.ks_statistic.to_bits(), d.to_bits(), "KS {what}");
        assert!(
            (got.wasserstein - w).abs() <= 1e-12 * w + 1e-300,
            "W {} vs {w}: {what}",
            got.wasserstein
        );
        assert_eq!(got.bin_counts, bins, "bins {what}");
    }

    #[test]
    fn equals_sorting_and_walking_on_every_shape() {
        let mut rng = Rng::new(5);
        let mut draw = |n: usize, kind: usize, shift: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let z = rng.normal();
                    match kind {
                        0 => z * 2.0 + shift,
                        // Ties: values on a grid of quarters.
                        1 => ((z * 2.0 + shift) * 4.0).round() / 4.0,
                        // Heavy tail: most values in a few cells of the equal-width table.
                        2 => (z * 3.0).exp() + shift,
                        // Far from zero: the table's cells are narrow relative to the values.
                        _ => 1e6 + z * 1e-3 + shift * 1e-3,
                    }
                })
                .collect()
        };
        for kind in 0..4 {
            for &(nr, nc) in &[
                (1, 1),
                (1, 40),
                (40, 1),
                (7, 7),
                (300, 3000),
                (3000, 300),
                (2000, 20_000),
            ] {
                for shift in [0.0, 0.3, 8.0, -8.0] {
                    let reference = draw(nr, kind, 0.0);
                    let current = draw(nc, kind, shift);
                    // Edges inside the data, between values, on values and outside the sample.
                    let mut edges: Vec<f64> = vec![-20.0, -0.5, 0.25, 1.0 / 3.0, 2.0, 1e6, 1e6 + 1e-3, 50.0];
                    edges.extend(reference.iter().step_by(nr.div_ceil(3)).copied());
                    edges.sort_by(f64::total_cmp);
                    edges.dedup();
                    check(
                        &reference,
                        &current,
                        &edges,
                        &format!("kind {kind} {nr}×{nc} shift {shift}"),
                    );
                    check(
                        &reference,
                        &current,
                        &[],
                        &format!("no edges, kind {kind} {nr}×{nc} shift {shift}"),
                    );
                }
            }
        }
    }

    #[test]
    fn constant_empty_and_extreme_samples() {
        check(&[2.0; 50], &[1.0, 2.0, 2.0, 3.0], &[2.0], "constant reference");
        check(&[1.0, 2.0, 3.0], &[2.0; 9], &[1.5, 2.5], "constant current");
        check(&[], &[1.0, 2.0], &[1.5], "empty reference");
        check(&[1.0, 2.0], &[], &[1.5], "empty current");
        check(
            &[-1e300, -1.0, 0.0, -0.0, 5e-324, 1.0, 1e300],
            &[-1e299, -0.0, 0.0, 1e-310, 3.0, 1e300, 2e300],
            &[0.0, 1.0],
            "extremes",
        );
        // By hand: u = {1, 3}, current {2, 4}: D = 1/2, area 1.
        let got = SortedIndex::new(&[1.0, 3.0]).compare(&[4.0, 2.0], &[2.5]);
        assert_eq!((got.ks_statistic, got.wasserstein), (0.5, 1.0));
        assert_eq!(got.bin_counts, vec![1.0, 1.0]);
    }
}
