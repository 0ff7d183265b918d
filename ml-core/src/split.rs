//! Deterministic train/validation split.
//!
//! Whether a row goes to validation depends only on `(seed, row index, fraction)` through a
//! stateless hash, not on a shuffled permutation. Any language with 64-bit unsigned arithmetic
//! can therefore reproduce the split exactly, row by row, without porting a random number
//! generator; the Python reference script (`scripts/reference/sklearn_lr_auc.py`) does so to
//! fit its scikit-learn baseline on the same rows as streamscore.
//!
//! The rule, with all arithmetic wrapping modulo 2^64:
//!
//! ```text
//! z = splitmix64(seed + row * 0x9E3779B97F4A7C15)
//! validation  iff  (z >> 11) * 2^-53 < fraction
//! ```
//!
//! where [`splitmix64`] is the single SplitMix64 step from [`crate::rng`]. Each row lands in
//! validation independently with probability `fraction`, so the validation share is
//! `fraction` only on average: it is not forced to `round(n * fraction)`.

use crate::rng::{splitmix64, unit_f64};
use crate::{Error, Result};

/// Multiplier that spreads consecutive row indices over the hash input space (2^64 / phi).
const ROW_STRIDE: u64 = 0x9E37_79B9_7F4A_7C15;

/// Returns `true` if row `row` belongs to the validation side of the split with this `seed` and
/// `fraction`.
///
/// Computes `z = splitmix64(seed + row * 0x9E3779B97F4A7C15)` (wrapping) and compares the top
/// 53 bits of `z`, scaled to `[0, 1)`, with `fraction`. A `fraction` of 0 or less (or NaN) puts
/// no row in validation, 1 or more puts every row there; [`train_validation_split`] rejects
/// those values.
pub fn is_validation_row(seed: u64, row: u64, fraction: f64) -> bool {
    let z = splitmix64(seed.wrapping_add(row.wrapping_mul(ROW_STRIDE)));
    unit_f64(z) < fraction
}

/// Splits row indices `0..n_rows` into `(train, validation)`, both in ascending order.
///
/// Row `i` goes to validation iff [`is_validation_row`]`(seed, i, fraction)`; see the module
/// docs for why the split is hash-based.
///
/// # Errors
///
/// [`Error::InvalidParameter`] (`validation_fraction`) unless `0 < fraction < 1`, or if either
/// side of the split comes out empty (too few rows for this fraction and seed).
pub fn train_validation_split(n_rows: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    // Written so that NaN fails too.
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::invalid_parameter(
            "validation_fraction",
            format!("must be strictly between 0 and 1, got {fraction}"),
        ));
    }
    let mut train = Vec::with_capacity(n_rows);
    let mut validation = Vec::new();
    for i in 0..n_rows {
        // usize is at most 64 bits on every supported target, so this never truncates.
        if is_validation_row(seed, i as u64, fraction) {
            validation.push(i);
        } else {
            train.push(i);
        }
    }
    if train.is_empty() || validation.is_empty() {
        let (empty, other) = if train.is_empty() {
            ("training", "validation")
        } else {
            ("validation", "training")
        };
        return Err(Error::invalid_parameter(
            "validation_fraction",
            format!(
                "with {n_rows} rows, fraction {fraction} and split seed {seed} the {empty} set is \
                 empty (all rows went to {other}); use more rows or a different validation fraction"
            ),
        ));
    }
    Ok((train, validation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_values_match_the_python_reference() {
        // Validation rows among 0..32 for seed 42, fraction 0.2, as printed by the hash rule
        // reimplemented in Python (scripts/reference/sklearn_lr_auc.py).
        let got: Vec<u64> = (0..32).filter(|&r| is_validation_row(42, r, 0.2)).collect();
        assert_eq!(got, PY_SEED42_FRAC02.to_vec());
        let got: Vec<u64> = (0..32).filter(|&r| is_validation_row(0, r, 0.5)).collect();
        assert_eq!(got, PY_SEED0_FRAC05.to_vec());
    }

    const PY_SEED42_FRAC02: [u64; 6] = [1, 4, 16, 18, 21, 24];
    const PY_SEED0_FRAC05: [u64; 13] = [1, 2, 4, 5, 6, 8, 10, 16, 18, 23, 26, 27, 31];

    #[test]
    fn row_zero_seed_zero_uses_splitmix_of_zero() {
        // splitmix64(0) = 0xE220A8397B1DCDAF; its top 53 bits scaled to [0,1) are ~0.8833.
        assert!(!is_validation_row(0, 0, 0.88));
        assert!(is_validation_row(0, 0, 0.89));
    }

    #[test]
    fn split_partitions_rows_in_ascending_order() {
        let n = 1_000;
        let (train, validation) = train_validation_split(n, 0.25, 9).expect("valid split");
        assert_eq!(train.len() + validation.len(), n);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(validation.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<usize> = train.iter().chain(&validation).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        for &i in &validation {
            assert!(is_validation_row(9, i as u64, 0.25));
        }
    }

    #[test]
    fn validation_share_is_close_to_fraction() {
        for fraction in [0.1, 0.2, 0.5, 0.9] {
            let n = 50_000;
            let (_, validation) = train_validation_split(n, fraction, 42).expect("valid split");
            let share = validation.len() as f64 / n as f64;
            // Binomial sd is at most sqrt(0.25 / 50_000) ~ 0.0022.
            assert!((share - fraction).abs() < 0.01, "{fraction}: {share}");
        }
    }

    #[test]
    fn split_is_deterministic_and_seed_dependent() {
        let a = train_validation_split(500, 0.2, 1).expect("valid split");
        let b = train_validation_split(500, 0.2, 1).expect("valid split");
        let c = train_validation_split(500, 0.2, 2).expect("valid split");
        assert_eq!(a, b);
        assert_ne!(a.1, c.1);
    }

    #[test]
    fn split_is_stable_under_more_rows() {
        // Hash-based: adding rows never moves an existing row to the other side.
        let (_, small) = train_validation_split(100, 0.3, 5).expect("valid split");
        let (_, large) = train_validation_split(1_000, 0.3, 5).expect("valid split");
        let prefix: Vec<usize> = large.into_iter().filter(|&i| i < 100).collect();
        assert_eq!(small, prefix);
    }

    #[test]
    fn larger_fraction_is_a_superset() {
        let (_, v1) = train_validation_split(2_000, 0.1, 3).expect("valid split");
        let (_, v2) = train_validation_split(2_000, 0.3, 3).expect("valid split");
        assert!(v1.iter().all(|i| v2.binary_search(i).is_ok()));
    }

    #[test]
    fn fraction_out_of_range_is_rejected() {
        for fraction in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = train_validation_split(100, fraction, 0).expect_err("must fail");
            assert!(
                matches!(&err, Error::InvalidParameter { name, .. } if name == "validation_fraction"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn empty_side_is_an_error_that_says_what_to_do() {
        let err = train_validation_split(0, 0.2, 0).expect_err("no rows");
        assert!(err.to_string().contains("use more rows"), "{err}");
        // One row goes to exactly one side, so the other side is empty.
        let err = train_validation_split(1, 0.5, 0).expect_err("one row");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
