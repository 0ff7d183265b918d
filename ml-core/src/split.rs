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

/// How the rows of a training run are divided into training and validation rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitStrategy {
    /// Stratified for classifiers, hash-based for regressors (the default).
    #[default]
    Auto,
    /// The stateless per-row hash rule of [`train_validation_split`]: reproducible row by row
    /// and stable when rows are appended (what streaming retraining relies on), but class shares
    /// in validation vary by chance.
    Hash,
    /// [`stratified_split`]: every class keeps its share of rows on both sides.
    Stratified,
}

impl SplitStrategy {
    /// The name used on the command line and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            SplitStrategy::Auto => "auto",
            SplitStrategy::Hash => "hash",
            SplitStrategy::Stratified => "stratified",
        }
    }

    /// Whether a split for a classifier (`classifier == true`) or a regressor is stratified.
    pub fn is_stratified(self, classifier: bool) -> bool {
        match self {
            SplitStrategy::Auto => classifier,
            SplitStrategy::Hash => false,
            SplitStrategy::Stratified => true,
        }
    }
}

impl std::str::FromStr for SplitStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<SplitStrategy> {
        match s {
            "auto" => Ok(SplitStrategy::Auto),
            "hash" => Ok(SplitStrategy::Hash),
            "stratified" => Ok(SplitStrategy::Stratified),
            other => Err(Error::invalid_parameter(
                "split",
                format!("unknown split `{other}`; use auto, hash or stratified"),
            )),
        }
    }
}

/// The hash key of a row: the same `unit_f64(splitmix64(seed + row * stride))` as
/// [`is_validation_row`] compares with the fraction.
fn row_key(seed: u64, row: usize) -> f64 {
    unit_f64(splitmix64(
        seed.wrapping_add((row as u64).wrapping_mul(ROW_STRIDE)),
    ))
}

/// Rows `0..classes.len()` grouped by class, each group ordered by its hash key (ties, which
/// need equal 53-bit keys, by row index).
fn classes_in_key_order(classes: &[usize], seed: u64) -> Vec<Vec<usize>> {
    let n_classes = classes.iter().copied().max().map_or(0, |m| m + 1);
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (row, &c) in classes.iter().enumerate() {
        groups[c].push(row);
    }
    for g in &mut groups {
        g.sort_by(|&a, &b| row_key(seed, a).total_cmp(&row_key(seed, b)).then(a.cmp(&b)));
    }
    groups
}

/// Stratified split of rows `0..classes.len()` (class code per row) into `(train, validation)`,
/// both ascending.
///
/// Within each class the rows are ordered by the same per-row hash key as
/// [`is_validation_row`] uses, and the first `round(n_c * fraction)` go to validation — clamped
/// so that a class with at least two rows has at least one row on each side, and a class with
/// one row stays in training (a class the model never saw could not be scored). The rule is
/// deterministic and portable like the hash split, but a row's side depends on the other rows
/// of its class, so appending rows can move existing ones; use [`train_validation_split`]
/// where that matters.
///
/// # Errors
///
/// [`Error::InvalidParameter`] (`validation_fraction`) unless `0 < fraction < 1`, or if the
/// validation side comes out empty.
pub fn stratified_split(classes: &[usize], fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::invalid_parameter(
            "validation_fraction",
            format!("must be strictly between 0 and 1, got {fraction}"),
        ));
    }
    let mut train = Vec::with_capacity(classes.len());
    let mut validation = Vec::new();
    for group in classes_in_key_order(classes, seed) {
        let n = group.len();
        let k = if n < 2 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        validation.extend_from_slice(&group[..k]);
        train.extend_from_slice(&group[k..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    if validation.is_empty() {
        return Err(Error::invalid_parameter(
            "validation_fraction",
            format!(
                "with {} rows and fraction {fraction} the stratified validation set is empty (every \
                 class has a single row); use more rows",
                classes.len()
            ),
        ));
    }
    Ok((train, validation))
}

/// Assigns rows `0..n_rows` to `k` folds of sizes differing by at most one: rows are ordered by
/// their hash key (as [`is_validation_row`] computes it) and dealt out round-robin. Returns the
/// rows of each fold, ascending.
///
/// # Errors
///
/// [`Error::InvalidParameter`] (`cv`) unless `2 <= k <= n_rows`.
pub fn k_fold(n_rows: usize, k: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    check_folds(n_rows, k, None)?;
    let mut rows: Vec<usize> = (0..n_rows).collect();
    rows.sort_by(|&a, &b| row_key(seed, a).total_cmp(&row_key(seed, b)).then(a.cmp(&b)));
    Ok(deal(std::iter::once(rows), k))
}

/// Stratified k folds (as scikit-learn's `StratifiedKFold`): each class's rows, ordered by their
/// hash key, are dealt out round-robin, continuing from fold to fold across classes, so every
/// fold holds each class's share of rows (±1) and fold sizes differ by at most one. Returns the
/// rows of each fold, ascending.
///
/// # Errors
///
/// [`Error::InvalidParameter`] (`cv`) unless `2 <= k <= n_rows` and the largest class has at
/// least `k` rows.
pub fn stratified_k_fold(classes: &[usize], k: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    let groups = classes_in_key_order(classes, seed);
    let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
    check_folds(classes.len(), k, Some(largest))?;
    Ok(deal(groups.into_iter(), k))
}

fn check_folds(n_rows: usize, k: usize, largest_class: Option<usize>) -> Result<()> {
    if k < 2 {
        return Err(Error::invalid_parameter(
            "cv",
            format!("needs at least 2 folds, got {k}"),
        ));
    }
    if k > n_rows {
        return Err(Error::invalid_parameter(
            "cv",
            format!("{k} folds need at least {k} rows, got {n_rows}; use fewer folds"),
        ));
    }
    if let Some(largest) = largest_class
        && largest < k
    {
        return Err(Error::invalid_parameter(
            "cv",
            format!(
                "{k} stratified folds need a class with at least {k} rows, the largest has {largest}; use fewer folds"
            ),
        ));
    }
    Ok(())
}

/// Deals the rows of `groups`, in order, round-robin into `k` folds (one running counter across
/// groups, so fold sizes stay balanced).
fn deal(groups: impl Iterator<Item = Vec<usize>>, k: usize) -> Vec<Vec<usize>> {
    let mut folds: Vec<Vec<usize>> = vec![Vec::new(); k];
    let mut next = 0;
    for group in groups {
        for row in group {
            folds[next].push(row);
            next = (next + 1) % k;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

/// The training rows of fold `i` of `folds`: every row of the other folds, ascending.
pub fn fold_complement(folds: &[Vec<usize>], i: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = folds
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    rows.sort_unstable();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_every_class_share() {
        // 1000 rows: class 0 on 700 rows, class 1 on 250, class 2 on 50, interleaved.
        let classes: Vec<usize> = (0..1000)
            .map(|i| {
                if i % 20 == 0 {
                    2
                } else if i % 4 == 1 {
                    1
                } else {
                    0
                }
            })
            .collect();
        let counts = |rows: &[usize]| {
            let mut c = [0usize; 3];
            for &r in rows {
                c[classes[r]] += 1;
            }
            c
        };
        let total = counts(&(0..1000).collect::<Vec<_>>());
        let (train, validation) = stratified_split(&classes, 0.2, 7).expect("valid split");
        let v = counts(&validation);
        for c in 0..3 {
            assert_eq!(
                v[c],
                (total[c] as f64 * 0.2).round() as usize,
                "class {c}: {v:?} of {total:?}"
            );
        }
        assert_eq!(train.len() + validation.len(), 1000);
        assert!(train.windows(2).all(|w| w[0] < w[1]) && validation.windows(2).all(|w| w[0] < w[1]));
        // Within a class the rows with the smallest hash keys are the ones held out.
        let max_held = validation
            .iter()
            .filter(|&&r| classes[r] == 2)
            .map(|&r| row_key(7, r))
            .fold(0.0, f64::max);
        let min_kept = train
            .iter()
            .filter(|&&r| classes[r] == 2)
            .map(|&r| row_key(7, r))
            .fold(1.0, f64::min);
        assert!(max_held < min_kept);
        assert_eq!(
            stratified_split(&classes, 0.2, 7).unwrap(),
            (train, validation.clone())
        );
        assert_ne!(stratified_split(&classes, 0.2, 8).unwrap().1, validation);
    }

    #[test]
    fn stratified_split_keeps_rare_classes_on_both_sides() {
        // Class 1 has 2 rows: one each side. Class 2 has one row: it stays in training.
        let classes = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2];
        let (train, validation) = stratified_split(&classes, 0.1, 0).expect("valid split");
        assert_eq!(validation.iter().filter(|&&r| classes[r] == 1).count(), 1);
        assert!(train.contains(&10) && !validation.contains(&10));
        assert_eq!(validation.iter().filter(|&&r| classes[r] == 0).count(), 1);
        let err = stratified_split(&[0, 1, 2], 0.5, 0).expect_err("single rows");
        assert!(err.to_string().contains("use more rows"), "{err}");
        assert!(stratified_split(&classes, 1.0, 0).is_err());
    }

    #[test]
    fn k_fold_partitions_rows_into_balanced_folds() {
        let folds = k_fold(103, 5, 3).expect("valid folds");
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert_eq!(sizes, [21, 21, 21, 20, 20]);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        let rest = fold_complement(&folds, 2);
        assert_eq!(rest.len(), 103 - 21);
        assert!(rest.iter().all(|r| !folds[2].contains(r)));
        assert_eq!(folds, k_fold(103, 5, 3).unwrap());
        assert_ne!(folds, k_fold(103, 5, 4).unwrap());
        for (n, k) in [(10, 1), (3, 4)] {
            let err = k_fold(n, k, 0).expect_err("bad k");
            assert!(
                matches!(&err, Error::InvalidParameter { name, .. } if name == "cv"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn stratified_folds_hold_each_class_share() {
        // 90 rows of class 0, 10 of class 1: each of 5 folds gets 18 and 2.
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 3)).collect();
        let folds = stratified_k_fold(&classes, 5, 11).expect("valid folds");
        for f in &folds {
            assert_eq!(f.len(), 20);
            assert_eq!(f.iter().filter(|&&r| classes[r] == 1).count(), 2, "{f:?}");
        }
        let err = stratified_k_fold(&[0, 0, 1, 1], 3, 0).expect_err("classes too small");
        assert!(err.to_string().contains("use fewer folds"), "{err}");
    }

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
