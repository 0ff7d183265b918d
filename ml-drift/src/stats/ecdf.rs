//! One walk over the union of two sorted samples, computing the KS statistic and the area between
//! the two empirical CDFs (first Wasserstein distance).
//!
//! A plain merge touches every value of both samples with an unpredictable branch per value. Drift
//! compares a large reference (10⁶ values) with a smaller current window (10⁵), so the walk is
//! driven by the **smaller** sample instead: between two consecutive distinct values of it, the
//! larger sample's values form one contiguous run, found by a short linear scan or, for long
//! runs, galloping search.
//!
//! - KS: inside such a run one ECDF is constant and the other only rises, so the largest gap is
//!   at one of the run's ends. The walk evaluates exactly those ends — pairs of counts the full
//!   merge also evaluates, with the same floating-point expression — so the statistic is the same
//!   bit for bit as the merge's (a test keeps the merge as the reference).
//! - Wasserstein: the area over a run is a tight loop over the run's gaps with four independent
//!   accumulators (no per-value branch). The sum is grouped differently from scipy's cumulative
//!   sum, which moves the result only in the last bits.

/// What to compute.
#[derive(Clone, Copy)]
pub(crate) struct Want {
    pub ks: bool,
    pub area: bool,
}

/// ECDF value as numpy's linspace produces it: `i · (1/n)`, exactly 1 at the end.
#[inline]
fn cdf(i: usize, n: usize, step: f64) -> f64 {
    if i == n { 1.0 } else { i as f64 * step }
}

/// First index `≥ from` whose value is `≥ x` (`values` sorted). Runs are usually short (about
/// `len / other_len` values), so a few blocks of eight are skipped linearly (predictable
/// branches); a longer run switches to galloping, logarithmic in its length.
#[inline]
fn run_end(values: &[f64], from: usize, x: f64) -> usize {
    let n = values.len();
    let mut lo = from;
    for _ in 0..4 {
        if lo + 8 <= n && values[lo + 7] < x {
            lo += 8;
        } else {
            while lo < n && values[lo] < x {
                lo += 1;
            }
            return lo;
        }
    }
    // values[lo − 1] < x: gallop.
    let mut step = 8;
    loop {
        let hi = lo + step;
        if hi >= n {
            return lo + values[lo..].partition_point(|&v| v < x);
        }
        if values[hi] >= x {
            return lo + values[lo..hi].partition_point(|&v| v < x);
        }
        lo = hi + 1;
        step *= 2;
    }
}

/// Σ over `t` of `|(level + t) · step − c| · (points[t + 1] − points[t])`, for the gaps between
/// consecutive `points`: the area between a rising ECDF and a constant level over one run.
#[inline]
fn run_area(points: &[f64], level: usize, step: f64, c: f64) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let gaps = points.len() - 1;
    let mut acc = [0.0f64; 4];
    let base = level as f64;
    let chunks = gaps / 4;
    for q in 0..chunks {
        let t = q * 4;
        for (lane, a) in acc.iter_mut().enumerate() {
            let k = t + lane;
            *a += ((base + k as f64) * step - c).abs() * (points[k + 1] - points[k]);
        }
    }
    for k in chunks * 4..gaps {
        acc[0] += ((base + k as f64) * step - c).abs() * (points[k + 1] - points[k]);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// KS statistic and Wasserstein area of two sorted, NaN-free samples (0 for an empty one).
pub(crate) fn walk(u: &[f64], v: &[f64], want: Want) -> (f64, f64) {
    if u.is_empty() || v.is_empty() {
        return (0.0, 0.0);
    }
    // |F_u − F_v| is symmetric: let the smaller sample drive.
    let (s, g) = if u.len() <= v.len() { (u, v) } else { (v, u) };
    let (ns, ng) = (s.len(), g.len());
    let (ss, sg) = (1.0 / ns as f64, 1.0 / ng as f64);
    // ECDF levels used for the area: i / n as scipy divides (searchsorted / n).
    let (fs, fg) = (ns as f64, ng as f64);
    let mut d: f64 = 0.0;
    let mut area = 0.0;
    let mut gi = 0; // #g ≤ the last processed point
    let mut sj = 0; // #s ≤ the last processed point
    let mut prev = s[0].min(g[0]);
    let mut k = 0;
    while k < ns {
        let c = s[k];
        let mut k2 = k + 1;
        while k2 < ns && s[k2] <= c {
            k2 += 1;
        }
        let lt = run_end(g, gi, c);
        if want.ks {
            // The largest g value below c (or the previous point when the run is empty).
            d = d.max((cdf(lt, ng, sg) - cdf(sj, ns, ss)).abs());
        }
        if want.area {
            let level_s = sj as f64 / fs;
            if lt > gi {
                // [prev, g[gi]) at level gi, the run's gaps, then [g[lt−1], c) at level lt.
                area += ((gi as f64 / fg) - level_s).abs() * (g[gi] - prev);
                area += run_area(&g[gi..lt], gi + 1, 1.0 / fg, level_s);
                area += ((lt as f64 / fg) - level_s).abs() * (c - g[lt - 1]);
            } else {
                area += ((gi as f64 / fg) - level_s).abs() * (c - prev);
            }
        }
        let mut le = lt;
        while le < ng && g[le] <= c {
            le += 1;
        }
        sj = k2;
        if want.ks {
            d = d.max((cdf(le, ng, sg) - cdf(sj, ns, ss)).abs());
        }
        gi = le;
        prev = c;
        k = k2;
    }
    if want.area && gi < ng {
        // Past the smaller sample's last value its ECDF is 1; the rest of g rises to meet it.
        area += ((gi as f64 / fg) - 1.0).abs() * (g[gi] - prev);
        area += run_area(&g[gi..], gi + 1, 1.0 / fg, 1.0);
    }
    (d, area)
}

#[cfg(test)]
mod tests {
    use super::{Want, walk};

    /// The full merge over the union, as scipy defines both quantities (kept as the reference).
    fn merge(u: &[f64], v: &[f64]) -> (f64, f64) {
        let (nu, nv) = (u.len(), v.len());
        let (su, sv) = (1.0 / nu as f64, 1.0 / nv as f64);
        let cdf = |i: usize, n: usize, s: f64| if i == n { 1.0 } else { i as f64 * s };
        let (mut i, mut j) = (0usize, 0usize);
        let mut d: f64 = 0.0;
        while i < nu && j < nv {
            let x = u[i].min(v[j]);
            while i < nu && u[i] <= x {
                i += 1;
            }
            while j < nv && v[j] <= x {
                j += 1;
            }
            d = d.max((cdf(i, nu, su) - cdf(j, nv, sv)).abs());
        }
        let mut all: Vec<f64> = u.iter().chain(v).copied().collect();
        all.sort_by(f64::total_cmp);
        let mut w = 0.0;
        for p in all.windows(2) {
            let fu = u.partition_point(|&a| a <= p[0]) as f64 / nu as f64;
            let fv = v.partition_point(|&b| b <= p[0]) as f64 / nv as f64;
            w += (fu - fv).abs() * (p[1] - p[0]);
        }
        (d, w)
    }

    fn sample(rng: &mut ml_core::rng::Rng, n: usize, shift: f64, round: bool) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n)
            .map(|_| {
                let x = rng.normal() * 2.0 + shift;
                if round { (x * 4.0).round() / 4.0 } else { x }
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn equals_the_full_merge() {
        let mut rng = ml_core::rng::Rng::new(17);
        let sizes = [
            (1, 1),
            (1, 50),
            (50, 1),
            (7, 7),
            (40, 3000),
            (3000, 40),
            (500, 501),
            (2000, 20),
        ];
        for &(n1, n2) in &sizes {
            for round in [false, true] {
                for shift in [0.0, 0.3, 5.0, -9.0] {
                    let u = sample(&mut rng, n1, 0.0, round);
                    let v = sample(&mut rng, n2, shift, round);
                    let (d, w) = walk(&u, &v, Want { ks: true, area: true });
                    let (dm, wm) = merge(&u, &v);
                    assert_eq!(
                        d.to_bits(),
                        dm.to_bits(),
                        "KS {n1}×{n2} round={round} shift={shift}"
                    );
                    assert!(
                        (w - wm).abs() <= 1e-12 * wm.max(1e-300) + 1e-15,
                        "W {w} vs {wm} for {n1}×{n2} round={round} shift={shift}"
                    );
                }
            }
        }
    }

    #[test]
    fn by_hand() {
        // u = {1, 3}, v = {2, 4}: ECDF gap 1/2 on [1,2) and [3,4) → area 1, D = 1/2.
        let want = Want { ks: true, area: true };
        assert_eq!(walk(&[1.0, 3.0], &[2.0, 4.0], want), (0.5, 1.0));
        // Disjoint samples: D = 1, area = distance of the means.
        assert_eq!(walk(&[0.0, 1.0], &[10.0, 11.0], want), (1.0, 10.0));
        assert_eq!(walk(&[], &[1.0], want), (0.0, 0.0));
    }
}
