//! The statistics behind the drift tests, as free functions on plain slices so they can be
//! checked one by one against scipy.

mod ecdf;
mod index;
pub mod ks;

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

pub use self::index::{Comparison, SortedIndex};
pub use self::ks::{KsMethod, KsResult, kolmogn_sf, ks_2samp_sorted, ks_pvalue, ks_statistic_sorted};

/// Proportions below this are raised to it before PSI takes logarithms (Evidently's smoothing
/// of empty bins, `0.0001`).
pub const PSI_EPSILON: f64 = 1e-4;

/// First Wasserstein distance between two **sorted** samples (scipy's `wasserstein_distance`):
/// the area between the two empirical CDFs.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    ecdf::walk(
        u,
        v,
        ecdf::Want {
            ks: false,
            area: true,
        },
    )
    .1
}

fn normalize(p: &[f64]) -> Vec<f64> {
    let s: f64 = p.iter().sum();
    if s > 0.0 {
        p.iter().map(|x| x / s).collect()
    } else {
        vec![0.0; p.len()]
    }
}

/// Jensen–Shannon distance (natural log, inputs normalized to sum 1), as
/// `scipy.spatial.distance.jensenshannon(p, q)`.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (p, q) = (normalize(p), normalize(q));
    let rel = |a: f64, b: f64| -> f64 {
        if a > 0.0 && b > 0.0 {
            a * (a / b).ln()
        } else {
            0.0 // a = 0 contributes 0; b = 0 with a > 0 cannot happen against the mixture
        }
    };
    let mut js = 0.0;
    for (&a, &b) in p.iter().zip(&q) {
        let m = (a + b) / 2.0;
        js += rel(a, m) + rel(b, m);
    }
    (js / 2.0).max(0.0).sqrt()
}

/// Hellinger distance between two distributions (normalized first):
/// `sqrt(Σ (√p − √q)²) / √2`, in [0, 1].
pub fn hellinger(p: &[f64], q: &[f64]) -> f64 {
    let (p, q) = (normalize(p), normalize(q));
    let s: f64 = p.iter().zip(&q).map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2)).sum();
    (s.sqrt() / std::f64::consts::SQRT_2).min(1.0)
}

/// Population stability index `Σ (c − r)·ln(c / r)` over proportions (each normalized; a
/// proportion of 0 is replaced by [`PSI_EPSILON`] so empty bins give a large but finite value).
pub fn psi(reference: &[f64], current: &[f64]) -> f64 {
    let (r, c) = (normalize(reference), normalize(current));
    r.iter()
        .zip(&c)
        .map(|(&r, &c)| {
            let (r, c) = (r.max(PSI_EPSILON), c.max(PSI_EPSILON));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Chi-square survival function with `dof` degrees of freedom (1 for `dof < 1`).
pub fn chi2_sf(stat: f64, dof: f64) -> f64 {
    if !stat.is_finite() || stat <= 0.0 {
        return if stat.is_nan() || stat <= 0.0 { 1.0 } else { 0.0 };
    }
    ChiSquared::new(dof.max(1.0)).map_or(1.0, |d| d.sf(stat))
}

/// Pearson's goodness-of-fit test, as `scipy.stats.chisquare(f_obs, f_exp)`: expected counts are
/// rescaled to the observed total. Returns `(statistic, p_value)` with `k − 1` degrees of freedom.
/// Categories with an expected count of 0 must be smoothed by the caller.
pub fn chisquare(observed: &[f64], expected: &[f64]) -> (f64, f64) {
    let total_o: f64 = observed.iter().sum();
    let total_e: f64 = expected.iter().sum();
    if observed.len() < 2 || total_o <= 0.0 || total_e <= 0.0 {
        return (0.0, 1.0);
    }
    let scale = total_o / total_e;
    let stat: f64 = observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| {
            let e = e * scale;
            if e > 0.0 { (o - e) * (o - e) / e } else { 0.0 }
        })
        .sum();
    (stat, chi2_sf(stat, (observed.len() - 1) as f64))
}

/// Chi-square test of independence on a 2 × k table (reference counts, current counts), as
/// `scipy.stats.chi2_contingency` (Yates' correction when there is one degree of freedom).
/// Columns empty in both rows are dropped. Returns `(statistic, p_value, dof)`.
pub fn chi2_contingency(reference: &[f64], current: &[f64]) -> (f64, f64, usize) {
    let cols: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .map(|(&a, &b)| (a, b))
        .filter(|&(a, b)| a + b > 0.0)
        .collect();
    let (ra, rb): (f64, f64) = (cols.iter().map(|c| c.0).sum(), cols.iter().map(|c| c.1).sum());
    let total = ra + rb;
    if cols.len() < 2 || ra <= 0.0 || rb <= 0.0 {
        return (0.0, 1.0, 0);
    }
    let dof = cols.len() - 1;
    let mut stat = 0.0;
    for &(a, b) in &cols {
        let col = a + b;
        for (o, row) in [(a, ra), (b, rb)] {
            let e = row * col / total;
            let mut diff = o - e;
            if dof == 1 {
                // Yates: move each observation 0.5 towards its expectation, never past it.
                let corr = diff.abs().min(0.5);
                diff = diff.signum() * (diff.abs() - corr);
            }
            stat += diff * diff / e;
        }
    }
    (stat, chi2_sf(stat, dof as f64), dof)
}

/// Two-proportion Z-test (pooled variance, two-sided): `successes/n` in reference vs current.
/// Returns `(z, p_value)`; `(0, 1)` when the pooled proportion is 0 or 1.
pub fn z_test_proportions(x1: f64, n1: f64, x2: f64, n2: f64) -> (f64, f64) {
    if n1 <= 0.0 || n2 <= 0.0 {
        return (0.0, 1.0);
    }
    let p = (x1 + x2) / (n1 + n2);
    let var = p * (1.0 - p) * (1.0 / n1 + 1.0 / n2);
    if var <= 0.0 {
        return (0.0, 1.0);
    }
    let z = (x1 / n1 - x2 / n2) / var.sqrt();
    let sf = Normal::standard().sf(z.abs());
    (z, (2.0 * sf).min(1.0))
}

/// How p-values of many features are adjusted for multiple testing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// No adjustment (Evidently's behaviour).
    #[default]
    None,
    /// Bonferroni: `min(1, p · m)` (controls the family-wise error rate).
    Bonferroni,
    /// Benjamini–Hochberg step-up adjusted p-values (controls the false discovery rate).
    BenjaminiHochberg,
}

/// Adjusted p-values in input order.
pub fn adjust_p_values(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len() as f64;
    match correction {
        Correction::None => p.to_vec(),
        Correction::Bonferroni => p.iter().map(|&x| (x * m).min(1.0)).collect(),
        Correction::BenjaminiHochberg => {
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
            let mut out = vec![0.0; p.len()];
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min(p[i] * m / (rank + 1) as f64);
                out[i] = running.min(1.0);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_by_hand() {
        // r = (.25,.25,.5), c = (.5,.25,.25):
        // (.5−.25)·ln 2 + 0 + (.25−.5)·ln .5 = .25 ln2 + .25 ln2 = .5 ln 2
        let v = psi(&[1.0, 1.0, 2.0], &[2.0, 1.0, 1.0]);
        assert!((v - 0.5 * 2f64.ln()).abs() < 1e-15, "{v}");
        // An empty current bin is smoothed to 1e-4: (1e-4 − .5)·ln(1e-4/.5) + (1 − 1e-4... )
        let v = psi(&[1.0, 1.0], &[0.0, 1.0]);
        let hand = (1e-4 - 0.5) * (1e-4f64 / 0.5).ln() + (1.0 - 0.5) * (1.0f64 / 0.5).ln();
        assert!((v - hand).abs() < 1e-12 && v.is_finite());
    }

    #[test]
    fn hellinger_by_hand() {
        assert!((hellinger(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-15);
        assert_eq!(hellinger(&[3.0, 1.0], &[6.0, 2.0]), 0.0);
        // p = (.5,.5), q = (1,0): sqrt((√.5−1)² + .5)/√2
        let hand = (((0.5f64).sqrt() - 1.0).powi(2) + 0.5).sqrt() / 2f64.sqrt();
        assert!((hellinger(&[1.0, 1.0], &[1.0, 0.0]) - hand).abs() < 1e-15);
    }

    #[test]
    fn corrections_by_hand() {
        let p = [0.01, 0.04, 0.03, 0.5];
        assert_eq!(
            adjust_p_values(&p, Correction::Bonferroni),
            vec![0.04, 0.16, 0.12, 1.0]
        );
        // BH: sorted .01,.03,.04,.5 → p·m/rank = .04,.06,.0533,.5; running minimum from the
        // top: .5, .0533, .0533, .04 → in input order .04, .0533, .0533, .5
        let bh = adjust_p_values(&p, Correction::BenjaminiHochberg);
        let want = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5];
        for (a, b) in bh.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{bh:?}");
        }
    }

    #[test]
    fn z_test_by_hand() {
        // 50/100 vs 30/100: p = .4, se = sqrt(.24 · .02) = .069282, z = 2.88675
        let (z, p) = z_test_proportions(50.0, 100.0, 30.0, 100.0);
        assert!((z - 0.2 / (0.24f64 * 0.02).sqrt()).abs() < 1e-12);
        assert!((p - 0.003892).abs() < 1e-5, "{p}");
        assert_eq!(z_test_proportions(0.0, 10.0, 0.0, 10.0), (0.0, 1.0));
    }
}

/// Sorts finite floats ascending: an LSD radix sort on the order-preserving bit pattern, on its
/// top 31 bits only (three passes of 11 bits, all histograms taken in one read, passes where
/// every key shares the digit skipped — as a column's values often share sign and most of the
/// exponent), then each run of keys that share those bits (values within a few millionths of
/// each other, mostly single values or pairs) is sorted on the whole key. Several times faster
/// than a comparison sort on the 10⁵–10⁶ values drift compares; the three low passes that a
/// full radix sort adds measured 30–40 % slower on 10⁵ values, eight passes of 8 bits slower
/// still. Short slices use the standard sort.
pub fn sort_floats(v: &mut [f64]) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    const PASSES: usize = 3;
    /// The passes sort on bits `LOW..64`.
    const LOW: u32 = 64 - PASSES as u32 * BITS + 2;
    if v.len() < 2048 {
        v.sort_unstable_by(f64::total_cmp);
        return;
    }
    // Order-preserving map: flip all bits of negatives, only the sign bit of positives.
    let key = |x: f64| -> u64 {
        let b = x.to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    };
    // Pass p sorts on bits `LOW + 11p ..` (the last pass's digit has 9 bits).
    let digit = |k: u64, pass: usize| ((k >> (LOW + pass as u32 * BITS)) as usize) & (BUCKETS - 1);
    let mut counts = vec![[0usize; BUCKETS]; PASSES];
    let mut a: Vec<u64> = v
        .iter()
        .map(|&x| {
            let k = key(x);
            for (pass, c) in counts.iter_mut().enumerate() {
                c[digit(k, pass)] += 1;
            }
            k
        })
        .collect();
    let mut b = vec![0u64; a.len()];
    for (pass, c) in counts.iter().enumerate() {
        // A pass where every key has the same digit changes nothing.
        if c.contains(&a.len()) {
            continue;
        }
        let mut offsets = [0usize; BUCKETS];
        let mut sum = 0;
        for (o, &n) in offsets.iter_mut().zip(c) {
            *o = sum;
            sum += n;
        }
        for &k in &a {
            let d = digit(k, pass);
            b[offsets[d]] = k;
            offsets[d] += 1;
        }
        std::mem::swap(&mut a, &mut b);
    }
    // Runs of keys equal on the sorted bits: sorted on the whole key.
    let mut i = 0;
    while i < a.len() {
        let top = a[i] >> LOW;
        let mut end = i + 1;
        while end < a.len() && a[end] >> LOW == top {
            end += 1;
        }
        if end - i > 1 {
            a[i..end].sort_unstable();
        }
        i = end;
    }
    for (x, k) in v.iter_mut().zip(a) {
        let bits = if k >> 63 == 1 { k & !(1 << 63) } else { !k };
        *x = f64::from_bits(bits);
    }
}

#[cfg(test)]
mod sort_tests {
    #[test]
    fn radix_sort_equals_comparison_sort() {
        let mut rng = ml_core::rng::Rng::new(3);
        let mut v: Vec<f64> = (0..10_000)
            .map(|i| {
                if i % 7 == 0 {
                    -rng.normal() * 1e5
                } else {
                    rng.normal()
                }
            })
            .collect();
        v.extend([0.0, -0.0, 1e300, -1e300, 5e-324]);
        // Values that differ only in the low bits the radix passes leave to the runs' sorts:
        // long runs (around 1e6), pairs, and ties.
        v.extend((0..3000).map(|_| 1e6 + rng.normal() * 1e-6));
        v.extend((0..3000).map(|_| -2.5 - rng.normal() * 1e-12));
        v.extend((0..500).map(|_| (rng.normal() * 8.0).round()));
        let mut w = v.clone();
        super::sort_floats(&mut v);
        w.sort_unstable_by(f64::total_cmp);
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            w.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // A slice whose values all share the sorted bits: one run.
        let mut v: Vec<f64> = (0..5000).map(|_| 3.0 + rng.normal() * 1e-9).collect();
        let mut w = v.clone();
        super::sort_floats(&mut v);
        w.sort_unstable_by(f64::total_cmp);
        assert_eq!(v, w);
    }
}

/// The KS statistic and the Wasserstein distance of two **sorted** samples in one walk (the same
/// values as [`ks_statistic_sorted`] and [`wasserstein_sorted`]): half the work when both tests
/// run on a large reference.
pub fn ks_and_wasserstein_sorted(u: &[f64], v: &[f64]) -> (f64, f64) {
    ecdf::walk(u, v, ecdf::Want { ks: true, area: true })
}
