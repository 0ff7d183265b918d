//! Evaluation metrics for classifiers and regressors.
//!
//! Pure functions over slices and [`ndarray`] views. Each function documents its formula and
//! the scikit-learn function it reproduces; the tests compare against values recorded from
//! scikit-learn 1.9.1 by `scripts/reference/sklearn_metrics.py`.
//!
//! Conventions shared by every function here:
//!
//! - Class labels are indices `0..n_classes`. A probability matrix has one row per sample and
//!   one column per class, in label order (column `j` is the probability of class `j`).
//! - Inputs must be non-empty and paired inputs of equal length.
//! - A probability is a finite number in `[0, 1]`. Each row of a probability matrix must sum to
//!   1 within `|sum - 1| <= 1e-8 + 1e-5 * |sum|` (numpy's `allclose` defaults, the check
//!   scikit-learn's multiclass `roc_auc_score` applies). Rows are never renormalised.
//! - Every violation is reported as [`Error::InvalidParameter`] naming the offending argument,
//!   what is wrong with it and how to fix it. Where scikit-learn would return NaN with a
//!   warning (ROC AUC with one class, R² with one sample), these functions return an error.
//! - Sums are accumulated left to right, so results can differ from scikit-learn's (which
//!   uses numpy's pairwise summation) in the last few bits.

use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Lower clipping bound of [`log_loss`]: the machine epsilon of `f64`, as scikit-learn uses
/// `np.finfo(dtype).eps`. Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`, so
/// one confidently wrong row costs at most `-ln(f64::EPSILON)` = `52 ln 2` ≈ 36.04.
pub const LOG_LOSS_EPS: f64 = f64::EPSILON;

/// Absolute part of the tolerance on probability-row sums (numpy `allclose` default).
const ROW_SUM_ATOL: f64 = 1e-8;
/// Relative part of the tolerance on probability-row sums (numpy `allclose` default).
const ROW_SUM_RTOL: f64 = 1e-5;

/// Precision, recall and F1 score of one class against all others.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecallF1 {
    /// `tp / (tp + fp)`, or 0 when the class was never predicted.
    pub precision: f64,
    /// `tp / (tp + fn)`, or 0 when the class never occurs in `y_true`.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)`, or 0 when the class occurs in neither input.
    pub f1: f64,
}

/// Summary of a classifier's predicted probabilities, as returned by [`classification`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Fraction of rows whose predicted class (row argmax) equals the true class.
    pub accuracy: f64,
    /// Binary: F1 of the positive class (class 1). Multiclass: macro-averaged F1
    /// ([`f1_macro`]).
    pub f1: f64,
    /// Binary: ROC AUC of column 1 ([`roc_auc`]). Multiclass: one-vs-rest macro ROC AUC
    /// ([`roc_auc_ovr_macro`]).
    pub roc_auc: f64,
    /// Mean cross-entropy of the probabilities ([`log_loss`]).
    pub log_loss: f64,
    /// Number of rows evaluated.
    pub n_rows: usize,
}

/// Summary of a regressor's predictions, as returned by [`regression`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Root mean squared error ([`root_mean_squared_error`]).
    pub rmse: f64,
    /// Mean absolute error ([`mean_absolute_error`]).
    pub mae: f64,
    /// Coefficient of determination ([`r2_score`]).
    pub r2: f64,
    /// Number of rows evaluated.
    pub n_rows: usize,
}

/// Fraction of samples whose predicted label equals the true label:
/// `#{i : y_pred[i] == y_true[i]} / n`.
///
/// Matches scikit-learn's `accuracy_score(y_true, y_pred)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    check_paired(y_true.len(), "y_pred", y_pred.len())?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

/// Confusion matrix `m` with `m[t][p]` = number of samples of true class `t` predicted as
/// class `p` (rows are true classes, columns predicted classes), `n_classes × n_classes`.
///
/// Matches scikit-learn's `confusion_matrix(y_true, y_pred, labels=range(n_classes))`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, or a label is
/// not below `n_classes`.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<Vec<Vec<u64>>> {
    check_paired(y_true.len(), "y_pred", y_pred.len())?;
    check_labels("y_true", y_true, n_classes)?;
    check_labels("y_pred", y_pred, n_classes)?;
    Ok(confusion_unchecked(y_true, y_pred, n_classes))
}

/// Precision, recall and F1 of class `positive` against all other classes.
///
/// With `tp`, `fp`, `fn` counted for `positive`: precision = `tp / (tp + fp)`, recall =
/// `tp / (tp + fn)`, F1 = `2 tp / (2 tp + fp + fn)`. A 0/0 ratio is 0 (scikit-learn's
/// `zero_division=0`), so a class that is never predicted has precision 0 rather than NaN.
///
/// Matches scikit-learn's `precision_recall_fscore_support(y_true, y_pred,
/// labels=[positive], average=None, zero_division=0)`; for 0/1 labels this is
/// `average='binary', pos_label=positive`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length.
pub fn precision_recall_f1(y_true: &[usize], y_pred: &[usize], positive: usize) -> Result<PrecisionRecallF1> {
    check_paired(y_true.len(), "y_pred", y_pred.len())?;
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for (&t, &p) in y_true.iter().zip(y_pred) {
        match (t == positive, p == positive) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
    }
    Ok(prf_from_counts(tp, tp + fp, tp + fn_))
}

/// Macro-averaged F1: the unweighted mean of the per-class F1 `2 tp / (2 tp + fp + fn)` over
/// the classes that occur in `y_true` or `y_pred`.
///
/// A class that occurs in neither input is left out of the mean (its F1 would be 0/0), as
/// scikit-learn does when `labels` is not given. `n_classes` only bounds the labels.
///
/// Matches scikit-learn's `f1_score(y_true, y_pred, average='macro', zero_division=0)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, or a label is
/// not below `n_classes`.
pub fn f1_macro(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<f64> {
    check_paired(y_true.len(), "y_pred", y_pred.len())?;
    check_labels("y_true", y_true, n_classes)?;
    check_labels("y_pred", y_pred, n_classes)?;
    Ok(f1_macro_unchecked(y_true, y_pred, n_classes))
}

/// Area under the ROC curve of `scores` for the binary labels `y_true` (`true` = positive).
///
/// Exact, in `O(n log n)`: samples are sorted by descending score and the ROC curve is
/// integrated with the trapezoidal rule, one step per distinct score, so tied scores count as
/// half a correctly ordered pair. Equivalently, the Mann–Whitney statistic
/// `(#{s_pos > s_neg} + ½ #{s_pos == s_neg}) / (n_pos · n_neg)`. The sum is kept in integers
/// and divided once, so the result is the correctly rounded exact AUC.
///
/// Matches scikit-learn's `roc_auc_score(y_true, scores)`. Infinite scores are ranked like
/// any other (scikit-learn rejects them); `-0.0` and `0.0` are tied.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, a score is NaN,
/// or `y_true` holds only one class (AUC is undefined then).
pub fn roc_auc(y_true: &[bool], scores: &[f64]) -> Result<f64> {
    check_paired(y_true.len(), "scores", scores.len())?;
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::invalid_parameter(
            "scores",
            format!("scores[{i}] is NaN; every sample needs a score that can be ranked"),
        ));
    }
    let n_pos = y_true.iter().filter(|&&t| t).count();
    if n_pos == 0 || n_pos == y_true.len() {
        let only = if n_pos == 0 { "negative" } else { "positive" };
        return Err(Error::invalid_parameter(
            "y_true",
            format!(
                "all {} labels are {only}; ROC AUC needs at least one positive and one \
                 negative sample, so evaluate on data that contains both classes",
                y_true.len()
            ),
        ));
    }
    let pairs = scores.iter().copied().zip(y_true.iter().copied()).collect();
    Ok(auc_unchecked(pairs))
}

/// Area under the precision-recall curve as average precision:
/// `Σ_n (R_n − R_{n−1}) P_n` over the distinct score thresholds in decreasing order, where
/// `P_n` and `R_n` are the precision and recall of predicting positive at scores ≥ the n-th
/// threshold.
///
/// Matches scikit-learn's `average_precision_score(y_true, scores)` (no interpolation).
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, a score is NaN,
/// or `y_true` has no positive sample (recall is undefined then).
pub fn average_precision(y_true: &[bool], scores: &[f64]) -> Result<f64> {
    check_paired(y_true.len(), "scores", scores.len())?;
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::invalid_parameter(
            "scores",
            format!("scores[{i}] is NaN; every sample needs a score that can be ranked"),
        ));
    }
    let n_pos = y_true.iter().filter(|&&t| t).count();
    if n_pos == 0 {
        return Err(Error::invalid_parameter(
            "y_true",
            "has no positive sample; average precision needs at least one",
        ));
    }
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(y_true.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut ap, mut last_recall) = (0.0, 0.0);
    let mut i = 0;
    while i < pairs.len() {
        // Every sample tied at this score enters together.
        let score = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == score {
            if pairs[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    Ok(ap)
}

/// Precision, recall, area under the precision-recall curve and the confusion matrix of a
/// classifier's probabilities (what `metrics.json` adds to [`ClassificationMetrics`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Binary: precision of class 1. Multiclass: the unweighted mean over classes.
    pub precision: f64,
    /// Binary: recall of class 1. Multiclass: the unweighted mean over classes.
    pub recall: f64,
    /// Binary: [`average_precision`] of column 1. Multiclass: the unweighted mean of the
    /// one-vs-rest average precisions.
    pub pr_auc: f64,
    /// `confusion_matrix[i][j]`: rows of true class `i` predicted as class `j`.
    pub confusion_matrix: Vec<Vec<u64>>,
}

/// The [`ClassificationReport`] of probabilities `proba` for classes `y_true`; predictions are
/// the row argmax.
///
/// # Errors
///
/// [`Error::InvalidParameter`] as [`classification`].
pub fn classification_report(y_true: &[usize], proba: ArrayView2<'_, f64>) -> Result<ClassificationReport> {
    check_proba(y_true, proba)?;
    let k = proba.ncols();
    let y_pred: Vec<usize> = proba.rows().into_iter().map(argmax).collect();
    let confusion_matrix = confusion_matrix(y_true, &y_pred, k)?;
    let classes: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
    let (mut precision, mut recall, mut pr_auc) = (0.0, 0.0, 0.0);
    for &c in &classes {
        let prf = precision_recall_f1(y_true, &y_pred, c)?;
        precision += prf.precision;
        recall += prf.recall;
        let truth: Vec<bool> = y_true.iter().map(|&t| t == c).collect();
        pr_auc += average_precision(&truth, &proba.column(c).to_vec())?;
    }
    let m = classes.len() as f64;
    Ok(ClassificationReport {
        precision: precision / m,
        recall: recall / m,
        pr_auc: pr_auc / m,
        confusion_matrix,
    })
}

/// One-vs-rest ROC AUC averaged over classes without weights: for each class `c`,
/// [`roc_auc`] of `proba[:, c]` against `y_true == c`; the result is the mean of those `k`
/// values.
///
/// Matches scikit-learn's `roc_auc_score(y_true, proba, multi_class='ovr',
/// average='macro')`. With two columns the result is the binary AUC of column 1, which is
/// what scikit-learn's `roc_auc_score(y_true, proba[:, 1])` returns.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `proba` is not a valid probability matrix for `y_true`
/// (see the module documentation), or a class never occurs in `y_true` (its AUC is
/// undefined; scikit-learn rejects this case too).
pub fn roc_auc_ovr_macro(y_true: &[usize], proba: ArrayView2<'_, f64>) -> Result<f64> {
    check_proba(y_true, proba)?;
    let n_classes = proba.ncols();
    let mut support = vec![0usize; n_classes];
    for &t in y_true {
        support[t] += 1;
    }
    if let Some(absent) = support.iter().position(|&n| n == 0) {
        return Err(Error::invalid_parameter(
            "y_true",
            format!(
                "class {absent} never occurs in y_true, so its one-vs-rest ROC AUC is \
                 undefined; evaluate on data that contains all {n_classes} classes"
            ),
        ));
    }
    // Every class occurs and there are at least two, so each one-vs-rest split has both
    // positives and negatives.
    let class_auc = |c: usize| {
        let pairs = proba
            .column(c)
            .iter()
            .zip(y_true)
            .map(|(&s, &t)| (s, t == c))
            .collect();
        auc_unchecked(pairs)
    };
    if n_classes == 2 {
        return Ok(class_auc(1));
    }
    let total: f64 = (0..n_classes).map(class_auc).sum();
    Ok(total / n_classes as f64)
}

/// Mean cross-entropy: `-(1/n) Σ_i ln(clip(proba[i, y_true[i]]))`, where `clip` limits a
/// probability to `[ε, 1 - ε]` with `ε` = [`LOG_LOSS_EPS`] so that a probability of 0 for the
/// true class gives a large finite loss instead of infinity.
///
/// Matches scikit-learn 1.9's `log_loss(y_true, proba, labels=range(k))`, which clips with
/// the dtype's machine epsilon and does not renormalise rows. Where scikit-learn only warns
/// that rows do not sum to 1, this function returns an error.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `proba` is not a valid probability matrix for `y_true`
/// (see the module documentation).
pub fn log_loss(y_true: &[usize], proba: ArrayView2<'_, f64>) -> Result<f64> {
    check_proba(y_true, proba)?;
    Ok(log_loss_unchecked(y_true, proba))
}

/// Brier score of the positive-class probabilities: `(1/n) Σ_i (y_i - p_i)²` with `y_i` = 1
/// for `true` and 0 for `false`.
///
/// Matches scikit-learn's `brier_score_loss(y_true, p, pos_label=True)` (whose default
/// `scale_by_half='auto'` gives exactly this for a binary target).
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, or a
/// probability is NaN or outside `[0, 1]`.
pub fn brier_score(y_true: &[bool], p: &[f64]) -> Result<f64> {
    check_paired(y_true.len(), "p", p.len())?;
    if let Some((i, v)) = p.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
        return Err(Error::invalid_parameter(
            "p",
            format!(
                "p[{i}] = {v} is not a probability; each entry must be the positive-class \
                 probability in [0, 1] (apply a sigmoid to raw scores first)"
            ),
        ));
    }
    let total: f64 = y_true
        .iter()
        .zip(p)
        .map(|(&t, &v)| {
            let d = f64::from(u8::from(t)) - v;
            d * d
        })
        .sum();
    Ok(total / p.len() as f64)
}

/// Mean squared error: `(1/n) Σ_i (y_true[i] - y_pred[i])²`.
///
/// Matches scikit-learn's `mean_squared_error(y_true, y_pred)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, or a value is
/// NaN or infinite.
pub fn mean_squared_error(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check_regression(y_true, y_pred)?;
    Ok(sum_squared_error(y_true, y_pred) / y_true.len() as f64)
}

/// Root mean squared error: `sqrt((1/n) Σ_i (y_true[i] - y_pred[i])²)`.
///
/// Matches scikit-learn's `root_mean_squared_error(y_true, y_pred)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, or a value is
/// NaN or infinite.
pub fn root_mean_squared_error(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    mean_squared_error(y_true, y_pred).map(f64::sqrt)
}

/// Mean absolute error: `(1/n) Σ_i |y_true[i] - y_pred[i]|`.
///
/// Matches scikit-learn's `mean_absolute_error(y_true, y_pred)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs are empty or differ in length, or a value is
/// NaN or infinite.
pub fn mean_absolute_error(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check_regression(y_true, y_pred)?;
    Ok(mean_absolute_error_unchecked(y_true, y_pred))
}

/// Coefficient of determination: `R² = 1 - SS_res / SS_tot` with
/// `SS_res = Σ_i (y_true[i] - y_pred[i])²` and `SS_tot = Σ_i (y_true[i] - mean(y_true))²`.
///
/// When `y_true` is constant (`SS_tot = 0`) the ratio is undefined; like scikit-learn's
/// default `force_finite=True`, the result is then 1.0 for a perfect prediction and 0.0
/// otherwise. A perfect prediction always gives exactly 1.0. Constancy is decided by exact
/// equality of the values, so rounding in the mean cannot turn a constant target into a
/// huge negative score (scikit-learn 1.9.1 computes the mean and returns about -3.5e31 for
/// `r2_score([0.1] * 3, [0.2, 0.1, 0.0])`; this function returns 0).
///
/// Matches scikit-learn's `r2_score(y_true, y_pred)`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs differ in length, have fewer than 2 samples
/// (scikit-learn returns NaN then), or a value is NaN or infinite.
pub fn r2_score(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    check_regression(y_true, y_pred)?;
    check_r2_len(y_true.len())?;
    Ok(r2_unchecked(y_true, y_pred))
}

/// All of [`ClassificationMetrics`] for the class probabilities `proba` (one row per sample,
/// one column per class).
///
/// The predicted class of a row is its argmax, ties going to the lowest class index. With
/// two columns the problem is binary with class 1 as the positive class: a row predicts
/// class 1 only if `proba[i, 1] > proba[i, 0]`, which for rows `[1 - p, p]` is the threshold
/// `p > 0.5` with `p = 0.5` predicting class 0; `f1` is the F1 of class 1 and `roc_auc` the
/// AUC of column 1. With more columns `f1` is [`f1_macro`] and `roc_auc` is
/// [`roc_auc_ovr_macro`].
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `proba` is not a valid probability matrix for `y_true`
/// (see the module documentation), or a class never occurs in `y_true` (ROC AUC is
/// undefined).
pub fn classification(y_true: &[usize], proba: ArrayView2<'_, f64>) -> Result<ClassificationMetrics> {
    check_proba(y_true, proba)?;
    let n_classes = proba.ncols();
    let roc_auc = roc_auc_ovr_macro(y_true, proba)?;
    let y_pred: Vec<usize> = proba.rows().into_iter().map(argmax).collect();
    let correct = y_true.iter().zip(&y_pred).filter(|(t, p)| t == p).count();
    let f1 = if n_classes == 2 {
        precision_recall_f1(y_true, &y_pred, 1)?.f1
    } else {
        f1_macro_unchecked(y_true, &y_pred, n_classes)
    };
    Ok(ClassificationMetrics {
        accuracy: correct as f64 / y_true.len() as f64,
        f1,
        roc_auc,
        log_loss: log_loss_unchecked(y_true, proba),
        n_rows: y_true.len(),
    })
}

/// All of [`RegressionMetrics`] for predictions `y_pred` of targets `y_true`.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if the inputs differ in length, have fewer than 2 samples
/// (R² needs two), or a value is NaN or infinite.
pub fn regression(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionMetrics> {
    check_regression(y_true, y_pred)?;
    check_r2_len(y_true.len())?;
    let n = y_true.len() as f64;
    Ok(RegressionMetrics {
        rmse: (sum_squared_error(y_true, y_pred) / n).sqrt(),
        mae: mean_absolute_error_unchecked(y_true, y_pred),
        r2: r2_unchecked(y_true, y_pred),
        n_rows: y_true.len(),
    })
}

// ---- validation -------------------------------------------------------------------------

/// `y_true` has length `n_true`; `other` (named for the message) must have as many, and
/// there must be at least one.
fn check_paired(n_true: usize, other: &str, n_other: usize) -> Result<()> {
    if n_true != n_other {
        return Err(Error::invalid_parameter(
            other,
            format!(
                "has length {n_other} but y_true has length {n_true}; pass exactly one value \
                 per sample, in the same order as y_true"
            ),
        ));
    }
    if n_true == 0 {
        return Err(Error::invalid_parameter(
            "y_true",
            "is empty; a metric needs at least one sample",
        ));
    }
    Ok(())
}

fn check_labels(name: &str, labels: &[usize], n_classes: usize) -> Result<()> {
    match labels.iter().enumerate().find(|(_, l)| **l >= n_classes) {
        Some((i, l)) => Err(Error::invalid_parameter(
            name,
            format!(
                "{name}[{i}] is class {l}, but there are only {n_classes} classes; labels \
                 must be class indices in 0..{n_classes}"
            ),
        )),
        None => Ok(()),
    }
}

/// `proba` must have one row per label, at least two columns, a column for every label,
/// entries in `[0, 1]` and rows summing to 1 (see the module documentation).
fn check_proba(y_true: &[usize], proba: ArrayView2<'_, f64>) -> Result<()> {
    let (n_rows, n_cols) = proba.dim();
    if n_rows != y_true.len() {
        return Err(Error::invalid_parameter(
            "proba",
            format!(
                "has {n_rows} row(s) but y_true has length {}; pass one row of class \
                 probabilities per sample",
                y_true.len()
            ),
        ));
    }
    if n_rows == 0 {
        return Err(Error::invalid_parameter(
            "y_true",
            "is empty; a metric needs at least one sample",
        ));
    }
    if n_cols < 2 {
        return Err(Error::invalid_parameter(
            "proba",
            format!(
                "has {n_cols} column(s); it needs one column per class and at least 2 \
                 classes (for a binary model pass [1 - p, p])"
            ),
        ));
    }
    if let Some((i, l)) = y_true.iter().enumerate().find(|(_, l)| **l >= n_cols) {
        return Err(Error::invalid_parameter(
            "y_true",
            format!(
                "y_true[{i}] is class {l}, but proba has only {n_cols} columns; labels must \
                 be column indices of proba"
            ),
        ));
    }
    for (i, row) in proba.rows().into_iter().enumerate() {
        let mut sum = 0.0;
        for (j, &p) in row.iter().enumerate() {
            // The negated range test also rejects NaN.
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid_parameter(
                    "proba",
                    format!(
                        "proba[{i}, {j}] = {p} is not a probability; entries must be in \
                         [0, 1] (apply softmax or sigmoid to raw scores first)"
                    ),
                ));
            }
            sum += p;
        }
        if (sum - 1.0).abs() > ROW_SUM_ATOL + ROW_SUM_RTOL * sum.abs() {
            return Err(Error::invalid_parameter(
                "proba",
                format!(
                    "row {i} sums to {sum}, not 1; each row must be a probability \
                     distribution over the classes (divide the row by its sum)"
                ),
            ));
        }
    }
    Ok(())
}

fn check_regression(y_true: &[f64], y_pred: &[f64]) -> Result<()> {
    check_paired(y_true.len(), "y_pred", y_pred.len())?;
    for (name, values) in [("y_true", y_true), ("y_pred", y_pred)] {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid_parameter(
                name,
                format!("{name}[{i}] is {v}; regression metrics need finite values"),
            ));
        }
    }
    Ok(())
}

fn check_r2_len(n: usize) -> Result<()> {
    if n < 2 {
        return Err(Error::invalid_parameter(
            "y_true",
            format!(
                "has length {n}; R² compares against the variance of y_true and needs at \
                 least 2 samples"
            ),
        ));
    }
    Ok(())
}

// ---- computation on validated inputs ----------------------------------------------------

fn confusion_unchecked(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Vec<Vec<u64>> {
    let mut matrix = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        matrix[t][p] += 1;
    }
    matrix
}

/// `a / b`, or 0 when `b` is 0 (scikit-learn's `zero_division=0`).
fn ratio_or_zero(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn prf_from_counts(tp: u64, predicted: u64, actual: u64) -> PrecisionRecallF1 {
    PrecisionRecallF1 {
        precision: ratio_or_zero(tp, predicted),
        recall: ratio_or_zero(tp, actual),
        // Written as scikit-learn computes it, 2 tp / (actual + predicted), rather than from
        // precision and recall, so it is exact and defined even when precision is 0/0.
        f1: ratio_or_zero(2 * tp, actual + predicted),
    }
}

fn f1_macro_unchecked(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> f64 {
    let matrix = confusion_unchecked(y_true, y_pred, n_classes);
    let (mut total, mut present) = (0.0, 0usize);
    for (c, row) in matrix.iter().enumerate() {
        let actual: u64 = row.iter().sum();
        let predicted: u64 = matrix.iter().map(|r| r[c]).sum();
        if actual + predicted > 0 {
            total += prf_from_counts(row[c], predicted, actual).f1;
            present += 1;
        }
    }
    // Inputs are non-empty, so at least one class is present.
    total / present as f64
}

/// AUC of `(score, is_positive)` pairs that contain no NaN score and both classes.
fn auc_unchecked(mut pairs: Vec<(f64, bool)>) -> f64 {
    // NaN was rejected, so partial_cmp is total here (and treats -0.0 == 0.0 as a tie).
    pairs.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    // Walking from the highest score down, each group of tied scores moves the ROC curve
    // from (fp, tp) to (fp + neg, tp + pos), adding the trapezoid neg · (tp + pos / 2) in
    // units of 1 / (n_pos · n_neg). Doubled, every term is an integer, so the sum is exact.
    let (mut twice_area, mut tp, mut n_pos, mut n_neg) = (0u128, 0u128, 0u128, 0u128);
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        let pos = group.iter().filter(|(_, positive)| *positive).count() as u128;
        let neg = group.len() as u128 - pos;
        twice_area += neg * (2 * tp + pos);
        tp += pos;
        n_pos += pos;
        n_neg += neg;
    }
    twice_area as f64 / (2 * n_pos * n_neg) as f64
}

fn log_loss_unchecked(y_true: &[usize], proba: ArrayView2<'_, f64>) -> f64 {
    let total: f64 = y_true
        .iter()
        .zip(proba.rows())
        .map(|(&t, row)| -row[t].clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln())
        .sum();
    total / y_true.len() as f64
}

/// Index of the largest entry; the first one on ties. The row holds no NaN.
fn argmax(row: ArrayView1<'_, f64>) -> usize {
    let mut best = 0;
    for (j, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = j;
        }
    }
    best
}

fn sum_squared_error(y_true: &[f64], y_pred: &[f64]) -> f64 {
    y_true.iter().zip(y_pred).map(|(t, p)| (t - p) * (t - p)).sum()
}

fn mean_absolute_error_unchecked(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let total: f64 = y_true.iter().zip(y_pred).map(|(t, p)| (t - p).abs()).sum();
    total / y_true.len() as f64
}

fn r2_unchecked(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let ss_res = sum_squared_error(y_true, y_pred);
    if ss_res == 0.0 {
        return 1.0;
    }
    let constant = y_true.iter().all(|&t| t == y_true[0]);
    if constant {
        return 0.0;
    }
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let ss_tot: f64 = y_true.iter().map(|t| (t - mean) * (t - mean)).sum();
    if ss_tot == 0.0 {
        // Only reachable when the spread underflows; scikit-learn also returns 0 here.
        return 0.0;
    }
    1.0 - ss_res / ss_tot
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};
    use serde::Deserialize;

    use super::*;

    /// Relative tolerance against the recorded scikit-learn values: both sides compute the
    /// same formulas, differing only in summation order.
    const REL_TOL: f64 = 1e-12;

    fn assert_close(actual: f64, expected: f64, what: &str) {
        let ok = actual == expected || (actual - expected).abs() <= REL_TOL * expected.abs();
        assert!(ok, "{what}: got {actual:e}, expected {expected:e}");
    }

    /// Asserts an `InvalidParameter` error naming `name` whose reason mentions `needle`.
    fn assert_invalid<T: std::fmt::Debug>(result: Result<T>, name: &str, needle: &str) {
        match result {
            Err(Error::InvalidParameter { name: got, reason }) => {
                assert_eq!(got, name, "wrong parameter named in: {reason}");
                assert!(reason.contains(needle), "`{needle}` not in: {reason}");
            }
            other => panic!("expected invalid parameter `{name}`, got {other:?}"),
        }
    }

    // ---- (a) hand-computed values ------------------------------------------------------

    #[test]
    fn accuracy_counts_matches() {
        // Rows 0, 2 and 3 match: 3 / 4.
        assert_eq!(accuracy(&[0, 1, 2, 1], &[0, 2, 2, 1]).unwrap(), 0.75);
    }

    #[test]
    fn confusion_matrix_rows_are_true_classes() {
        // (true, pred) pairs: (0,0) (1,2) (2,2) (1,1); class 3 never occurs.
        let m = confusion_matrix(&[0, 1, 2, 1], &[0, 2, 2, 1], 4).unwrap();
        assert_eq!(
            m,
            vec![
                vec![1, 0, 0, 0],
                vec![0, 1, 1, 0],
                vec![0, 0, 1, 0],
                vec![0, 0, 0, 0],
            ]
        );
    }

    #[test]
    fn precision_recall_f1_binary() {
        // Positive 1: tp = rows 0 and 4, fp = row 2, fn = row 1.
        // precision = 2/3, recall = 2/3, f1 = 2·2 / (2·2 + 1 + 1) = 2/3.
        let prf = precision_recall_f1(&[1, 1, 0, 0, 1], &[1, 0, 1, 0, 1], 1).unwrap();
        assert_eq!(prf.precision, 2.0 / 3.0);
        assert_eq!(prf.recall, 2.0 / 3.0);
        assert_eq!(prf.f1, 4.0 / 6.0);
        // Positive 0: tp = row 3, fp = row 1, fn = row 2.
        // precision = 1/2, recall = 1/2, f1 = 2 / (2 + 1 + 1) = 1/2.
        let prf = precision_recall_f1(&[1, 1, 0, 0, 1], &[1, 0, 1, 0, 1], 0).unwrap();
        assert_eq!((prf.precision, prf.recall, prf.f1), (0.5, 0.5, 0.5));
    }

    #[test]
    fn precision_recall_f1_zero_division_is_zero() {
        // Class 1 is never predicted: precision 0/0 -> 0, recall 0/2 = 0, f1 0/2 = 0.
        let prf = precision_recall_f1(&[0, 1, 1], &[0, 0, 0], 1).unwrap();
        assert_eq!((prf.precision, prf.recall, prf.f1), (0.0, 0.0, 0.0));
        // Class 7 occurs nowhere: every ratio is 0/0 -> 0.
        let prf = precision_recall_f1(&[0, 1, 1], &[0, 0, 0], 7).unwrap();
        assert_eq!((prf.precision, prf.recall, prf.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn f1_macro_averages_present_classes() {
        // y_true [0,0,1,1,2], y_pred [0,1,1,1,0]:
        // class 0: tp 1, actual 2, predicted 2 -> 2/4 = 0.5
        // class 1: tp 2, actual 2, predicted 3 -> 4/5 = 0.8
        // class 2: tp 0, actual 1, predicted 0 -> 0/1 = 0
        // mean = 1.3 / 3; class 3 (n_classes = 4) occurs nowhere and is left out.
        let expected = (0.5 + 0.8 + 0.0) / 3.0;
        assert_eq!(f1_macro(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 3).unwrap(), expected);
        assert_eq!(f1_macro(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 4).unwrap(), expected);
    }

    #[test]
    fn roc_auc_without_ties() {
        // Positives score 0.35 and 0.8, negatives 0.1 and 0.4. Of the 4 (pos, neg) pairs,
        // (0.35, 0.1), (0.8, 0.1), (0.8, 0.4) are ordered correctly: 3/4.
        let auc = roc_auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert_eq!(auc, 0.75);
    }

    #[test]
    fn roc_auc_ties_count_half() {
        // Positives 0.5 and 0.9, negatives 0.5 and 0.2.
        // (0.5, 0.5) tie = 1/2, (0.5, 0.2) = 1, (0.9, 0.5) = 1, (0.9, 0.2) = 1: 3.5 / 4.
        let auc = roc_auc(&[false, true, false, true], &[0.5, 0.5, 0.2, 0.9]).unwrap();
        assert_eq!(auc, 0.875);
        // All scores tied: the ROC curve is the diagonal, AUC 1/2.
        assert_eq!(roc_auc(&[true, false, true], &[0.3; 3]).unwrap(), 0.5);
        // -0.0 and 0.0 are the same score.
        assert_eq!(roc_auc(&[false, true], &[0.0, -0.0]).unwrap(), 0.5);
    }

    #[test]
    fn roc_auc_ranks_infinite_scores() {
        // A perfect ranking (1.0) and its reverse (0.0).
        let scores = [f64::NEG_INFINITY, 1.0, f64::INFINITY];
        assert_eq!(roc_auc(&[false, true, true], &scores).unwrap(), 1.0);
        assert_eq!(roc_auc(&[true, false, false], &scores).unwrap(), 0.0);
    }

    #[test]
    fn roc_auc_ovr_macro_small() {
        let proba = array![[0.6, 0.2, 0.2], [0.3, 0.5, 0.2], [0.3, 0.2, 0.5], [0.2, 0.6, 0.2]];
        // y_true [0, 1, 2, 1]: every column ranks its own class above all the others.
        // Class 0: 0.6 vs 0.3, 0.3, 0.2 -> 3/3. Class 1: 0.5, 0.6 vs 0.2, 0.2 -> 4/4.
        // Class 2: 0.5 vs 0.2, 0.2, 0.2 -> 3/3. Mean 1.
        let auc = roc_auc_ovr_macro(&[0, 1, 2, 1], proba.view()).unwrap();
        assert_eq!(auc, 1.0);
        // y_true [0, 1, 2, 0]: column 0 positives 0.6, 0.2 vs negatives 0.3, 0.3:
        // (0.6: 2 wins) + (0.2: 0 wins) = 2/4. Column 1 positive 0.5 vs 0.2, 0.2, 0.6: 2/3.
        // Column 2 positive 0.5 vs 0.2, 0.2, 0.2: 1. Mean (1/2 + 2/3 + 1) / 3 = 13/18.
        let auc = roc_auc_ovr_macro(&[0, 1, 2, 0], proba.view()).unwrap();
        assert_close(auc, 13.0 / 18.0, "ovr macro");
    }

    #[test]
    fn roc_auc_ovr_macro_two_columns_is_binary_auc_of_column_1() {
        let proba = array![[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]];
        let binary = roc_auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert_eq!(roc_auc_ovr_macro(&[0, 0, 1, 1], proba.view()).unwrap(), binary);
    }

    #[test]
    fn log_loss_small() {
        // -(ln 0.5 + ln 0.8) / 2 = (ln 2 + ln 1.25) / 2 = ln 2.5 / 2.
        let proba = array![[0.5, 0.5], [0.2, 0.8]];
        assert_close(
            log_loss(&[0, 1], proba.view()).unwrap(),
            2.5f64.ln() / 2.0,
            "log loss",
        );
    }

    #[test]
    fn log_loss_clips_to_machine_epsilon() {
        // A true-class probability of 0 is clipped to eps = 2^-52: loss 52 ln 2 ≈ 36.04.
        let proba = array![[0.0, 1.0]];
        assert_close(
            log_loss(&[0], proba.view()).unwrap(),
            52.0 * std::f64::consts::LN_2,
            "clipped at 0",
        );
        // A true-class probability of 1 is clipped to 1 - 2^-52: loss -ln(1 - 2^-52),
        // which is 2^-52 to first order (not 0).
        let loss = log_loss(&[1], proba.view()).unwrap();
        assert_close(loss, f64::EPSILON, "clipped at 1");
    }

    #[test]
    fn brier_score_small() {
        // (0.1² + 0.1² + 0.2² + 0.3²) / 4 = (0.01 + 0.01 + 0.04 + 0.09) / 4 = 0.0375.
        let b = brier_score(&[false, true, true, false], &[0.1, 0.9, 0.8, 0.3]).unwrap();
        assert_close(b, 0.0375, "brier");
        // Well defined with a single class: (0.25² + 0²) / 2.
        assert_eq!(brier_score(&[true, true], &[0.75, 1.0]).unwrap(), 0.03125);
    }

    #[test]
    fn regression_small() {
        // Errors 0.5, -0.5, 0, -1.
        // MSE = (0.25 + 0.25 + 0 + 1) / 4 = 0.375, MAE = (0.5 + 0.5 + 0 + 1) / 4 = 0.5.
        // mean(y_true) = 11.5 / 4 = 2.875; deviations 0.125, -3.375, -0.875, 4.125;
        // SS_tot = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875;
        // R² = 1 - 1.5 / 29.1875.
        let (t, p) = ([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0]);
        assert_eq!(mean_squared_error(&t, &p).unwrap(), 0.375);
        assert_eq!(root_mean_squared_error(&t, &p).unwrap(), 0.375f64.sqrt());
        assert_eq!(mean_absolute_error(&t, &p).unwrap(), 0.5);
        assert_close(r2_score(&t, &p).unwrap(), 1.0 - 1.5 / 29.1875, "r2");
        let m = regression(&t, &p).unwrap();
        assert_eq!(m.rmse, 0.375f64.sqrt());
        assert_eq!(m.mae, 0.5);
        assert_close(m.r2, 1.0 - 1.5 / 29.1875, "regression r2");
        assert_eq!(m.n_rows, 4);
    }

    #[test]
    fn r2_constant_target() {
        // SS_tot = 0: perfect prediction -> 1, anything else -> 0 (scikit-learn's
        // force_finite). 0.1 is chosen because its float mean over 3 values is not 0.1, so
        // computing SS_tot from the mean would give a tiny non-zero value and a huge
        // negative score.
        assert_eq!(r2_score(&[0.1; 3], &[0.1; 3]).unwrap(), 1.0);
        assert_eq!(r2_score(&[0.1; 3], &[0.2, 0.1, 0.0]).unwrap(), 0.0);
    }

    #[test]
    fn classification_binary_tie_predicts_class_0() {
        // Predictions: row 0 tie -> 0, row 1 -> 1, row 2 -> 0, row 3 -> 1.
        // y_true [1, 1, 0, 0]: correct rows 1 and 2 -> accuracy 1/2.
        // Class 1: tp 1 (row 1), fp 1 (row 3), fn 1 (row 0) -> f1 = 2 / 4 = 1/2.
        // AUC of column 1: positives 0.5, 0.9 vs negatives 0.2, 0.6:
        // (0.5: beats 0.2) + (0.9: beats both) = 3/4.
        let proba = array![[0.5, 0.5], [0.1, 0.9], [0.8, 0.2], [0.4, 0.6]];
        let m = classification(&[1, 1, 0, 0], proba.view()).unwrap();
        assert_eq!(m.accuracy, 0.5);
        assert_eq!(m.f1, 0.5);
        assert_eq!(m.roc_auc, 0.75);
        let expected_loss = -(0.5f64.ln() + 0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln()) / 4.0;
        assert_close(m.log_loss, expected_loss, "log loss");
        assert_eq!(m.n_rows, 4);
    }

    #[test]
    fn classification_multiclass_argmax_tie_goes_to_lowest() {
        // Row 0 ties classes 1 and 2 -> 1; row 1 -> 0; row 2 -> 2.
        let proba = array![[0.2, 0.4, 0.4], [0.5, 0.25, 0.25], [0.0, 0.0, 1.0]];
        let m = classification(&[1, 0, 2], proba.view()).unwrap();
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.f1, 1.0);
        assert_eq!(m.roc_auc, 1.0);
    }

    #[test]
    fn metrics_serialize_with_stable_field_names() {
        let m = RegressionMetrics {
            rmse: 1.0,
            mae: 0.5,
            r2: 0.25,
            n_rows: 3,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"rmse":1.0,"mae":0.5,"r2":0.25,"n_rows":3}"#);
        let back: RegressionMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let c = ClassificationMetrics {
            accuracy: 1.0,
            f1: 1.0,
            roc_auc: 1.0,
            log_loss: 0.5,
            n_rows: 2,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"accuracy":1.0,"f1":1.0,"roc_auc":1.0,"log_loss":0.5,"n_rows":2}"#
        );
    }

    // ---- (b) values recorded from scikit-learn -----------------------------------------

    #[derive(Deserialize)]
    struct Reference {
        sklearn_version: String,
        classification: Vec<ClassificationCase>,
        regression: Vec<RegressionCase>,
    }

    #[derive(Deserialize)]
    struct ClassificationCase {
        name: String,
        y_true: Vec<usize>,
        proba: Vec<Vec<f64>>,
        expected: ClassificationExpected,
    }

    #[derive(Deserialize)]
    struct ClassificationExpected {
        accuracy: f64,
        confusion_matrix: Vec<Vec<u64>>,
        /// `[precision, recall, f1]` of each class against the rest.
        precision_recall_f1: Vec<[f64; 3]>,
        f1_macro: f64,
        log_loss: f64,
        /// `None` where scikit-learn rejects the input (a class absent from y_true).
        roc_auc: Option<f64>,
        /// Binary cases only.
        brier: Option<f64>,
        f1: f64,
    }

    #[derive(Deserialize)]
    struct RegressionCase {
        name: String,
        y_true: Vec<f64>,
        y_pred: Vec<f64>,
        expected: RegressionExpected,
    }

    #[derive(Deserialize)]
    struct RegressionExpected {
        mse: f64,
        rmse: f64,
        mae: f64,
        r2: f64,
    }

    fn reference() -> Reference {
        let text = include_str!("../tests/reference/sklearn_metrics.json");
        let reference: Reference = serde_json::from_str(text).expect("reference JSON parses");
        assert_eq!(reference.sklearn_version, "1.9.1");
        reference
    }

    fn proba_matrix(case: &ClassificationCase) -> Array2<f64> {
        let n_cols = case.proba[0].len();
        let flat: Vec<f64> = case.proba.iter().flatten().copied().collect();
        Array2::from_shape_vec((case.proba.len(), n_cols), flat).expect("rectangular proba")
    }

    #[test]
    fn classification_matches_sklearn() {
        let reference = reference();
        assert!(reference.classification.len() >= 8);
        for case in &reference.classification {
            let name = case.name.as_str();
            let e = &case.expected;
            let proba = proba_matrix(case);
            let n_classes = proba.ncols();
            let y_pred: Vec<usize> = proba.rows().into_iter().map(argmax).collect();
            let y = case.y_true.as_slice();

            assert_close(accuracy(y, &y_pred).unwrap(), e.accuracy, name);
            assert_eq!(
                confusion_matrix(y, &y_pred, n_classes).unwrap(),
                e.confusion_matrix,
                "{name}"
            );
            for (c, [p, r, f]) in e.precision_recall_f1.iter().enumerate() {
                let prf = precision_recall_f1(y, &y_pred, c).unwrap();
                assert_close(prf.precision, *p, &format!("{name} precision {c}"));
                assert_close(prf.recall, *r, &format!("{name} recall {c}"));
                assert_close(prf.f1, *f, &format!("{name} f1 {c}"));
            }
            assert_close(
                f1_macro(y, &y_pred, n_classes).unwrap(),
                e.f1_macro,
                &format!("{name} f1_macro"),
            );
            assert_close(
                log_loss(y, proba.view()).unwrap(),
                e.log_loss,
                &format!("{name} log_loss"),
            );
            if let Some(brier) = e.brier {
                let positive: Vec<bool> = y.iter().map(|&t| t == 1).collect();
                let p1: Vec<f64> = proba.column(1).to_vec();
                assert_close(
                    brier_score(&positive, &p1).unwrap(),
                    brier,
                    &format!("{name} brier"),
                );
            }
            match e.roc_auc {
                Some(auc) => {
                    assert_close(
                        roc_auc_ovr_macro(y, proba.view()).unwrap(),
                        auc,
                        &format!("{name} roc_auc"),
                    );
                    if n_classes == 2 {
                        let positive: Vec<bool> = y.iter().map(|&t| t == 1).collect();
                        let p1: Vec<f64> = proba.column(1).to_vec();
                        assert_close(
                            roc_auc(&positive, &p1).unwrap(),
                            auc,
                            &format!("{name} binary roc_auc"),
                        );
                    }
                    let m = classification(y, proba.view()).unwrap();
                    assert_close(m.accuracy, e.accuracy, &format!("{name} summary accuracy"));
                    assert_close(m.f1, e.f1, &format!("{name} summary f1"));
                    assert_close(m.roc_auc, auc, &format!("{name} summary roc_auc"));
                    assert_close(m.log_loss, e.log_loss, &format!("{name} summary log_loss"));
                    assert_eq!(m.n_rows, y.len(), "{name}");
                }
                None => {
                    assert_invalid(roc_auc_ovr_macro(y, proba.view()), "y_true", "never occurs");
                    assert_invalid(classification(y, proba.view()), "y_true", "never occurs");
                }
            }
        }
    }

    #[test]
    fn regression_matches_sklearn() {
        let reference = reference();
        assert!(reference.regression.len() >= 4);
        for case in &reference.regression {
            let name = case.name.as_str();
            let (t, p, e) = (&case.y_true, &case.y_pred, &case.expected);
            assert_close(mean_squared_error(t, p).unwrap(), e.mse, &format!("{name} mse"));
            assert_close(
                root_mean_squared_error(t, p).unwrap(),
                e.rmse,
                &format!("{name} rmse"),
            );
            assert_close(mean_absolute_error(t, p).unwrap(), e.mae, &format!("{name} mae"));
            assert_close(r2_score(t, p).unwrap(), e.r2, &format!("{name} r2"));
            let m = regression(t, p).unwrap();
            assert_close(m.rmse, e.rmse, &format!("{name} summary rmse"));
            assert_close(m.mae, e.mae, &format!("{name} summary mae"));
            assert_close(m.r2, e.r2, &format!("{name} summary r2"));
            assert_eq!(m.n_rows, t.len(), "{name}");
        }
    }

    // ---- (c) errors --------------------------------------------------------------------

    #[test]
    fn rejects_length_mismatch() {
        assert_invalid(
            accuracy(&[0, 1], &[0]),
            "y_pred",
            "has length 1 but y_true has length 2",
        );
        assert_invalid(
            confusion_matrix(&[0], &[0, 1], 2),
            "y_pred",
            "y_true has length 1",
        );
        assert_invalid(precision_recall_f1(&[0], &[], 0), "y_pred", "has length 0");
        assert_invalid(f1_macro(&[0, 1], &[1], 2), "y_pred", "y_true has length 2");
        assert_invalid(roc_auc(&[true, false], &[0.5]), "scores", "y_true has length 2");
        assert_invalid(brier_score(&[true], &[0.5, 0.5]), "p", "y_true has length 1");
        assert_invalid(mean_squared_error(&[1.0], &[]), "y_pred", "y_true has length 1");
        assert_invalid(regression(&[1.0, 2.0], &[1.0]), "y_pred", "y_true has length 2");
        let proba = array![[0.5, 0.5]];
        assert_invalid(log_loss(&[0, 1], proba.view()), "proba", "has 1 row(s)");
        assert_invalid(classification(&[0, 1], proba.view()), "proba", "has 1 row(s)");
    }

    #[test]
    fn rejects_empty_input() {
        assert_invalid(accuracy(&[], &[]), "y_true", "empty");
        assert_invalid(f1_macro(&[], &[], 2), "y_true", "empty");
        assert_invalid(roc_auc(&[], &[]), "y_true", "empty");
        assert_invalid(brier_score(&[], &[]), "y_true", "empty");
        assert_invalid(mean_absolute_error(&[], &[]), "y_true", "empty");
        let proba = Array2::<f64>::zeros((0, 2));
        assert_invalid(log_loss(&[], proba.view()), "y_true", "empty");
        assert_invalid(roc_auc_ovr_macro(&[], proba.view()), "y_true", "empty");
    }

    #[test]
    fn rejects_labels_outside_the_classes() {
        assert_invalid(
            confusion_matrix(&[0, 3], &[0, 1], 3),
            "y_true",
            "y_true[1] is class 3",
        );
        assert_invalid(f1_macro(&[0, 1], &[0, 2], 2), "y_pred", "y_pred[1] is class 2");
        let proba = array![[0.5, 0.5], [0.5, 0.5]];
        assert_invalid(log_loss(&[0, 2], proba.view()), "y_true", "only 2 columns");
    }

    #[test]
    fn rejects_invalid_probabilities() {
        let out_of_range = array![[1.25, -0.25], [0.5, 0.5]];
        assert_invalid(
            log_loss(&[0, 1], out_of_range.view()),
            "proba",
            "proba[0, 0] = 1.25",
        );
        let nan = array![[0.5, 0.5], [f64::NAN, 1.0]];
        assert_invalid(log_loss(&[0, 1], nan.view()), "proba", "proba[1, 0] = NaN");
        let unnormalised = array![[0.5, 0.5], [0.3, 0.3]];
        assert_invalid(
            classification(&[0, 1], unnormalised.view()),
            "proba",
            "row 1 sums to 0.6",
        );
        let one_column = array![[1.0], [1.0]];
        assert_invalid(log_loss(&[0, 0], one_column.view()), "proba", "1 column(s)");
        assert_invalid(brier_score(&[true], &[1.5]), "p", "p[0] = 1.5");
        assert_invalid(brier_score(&[true], &[f64::NAN]), "p", "p[0] = NaN");
    }

    #[test]
    fn accepts_row_sums_within_tolerance() {
        // Off by 1e-9: inside 1e-8 + 1e-5 · |sum|, e.g. float32 softmax output.
        let proba = array![[0.5, 0.5 + 1e-9], [0.25, 0.75]];
        assert!(log_loss(&[0, 1], proba.view()).is_ok());
    }

    #[test]
    fn roc_auc_rejects_one_class_and_nan() {
        assert_invalid(
            roc_auc(&[true, true], &[0.1, 0.2]),
            "y_true",
            "all 2 labels are positive",
        );
        assert_invalid(roc_auc(&[false], &[0.1]), "y_true", "all 1 labels are negative");
        assert_invalid(
            roc_auc(&[true, false], &[0.1, f64::NAN]),
            "scores",
            "scores[1] is NaN",
        );
        // Binary classification summary needs both classes for its AUC.
        let proba = array![[0.3, 0.7], [0.6, 0.4]];
        assert_invalid(
            classification(&[1, 1], proba.view()),
            "y_true",
            "class 0 never occurs",
        );
    }

    #[test]
    fn regression_rejects_non_finite_and_single_sample() {
        assert_invalid(
            mean_squared_error(&[1.0, f64::NAN], &[1.0, 2.0]),
            "y_true",
            "y_true[1] is NaN",
        );
        assert_invalid(
            mean_absolute_error(&[1.0], &[f64::INFINITY]),
            "y_pred",
            "y_pred[0] is inf",
        );
        assert_invalid(r2_score(&[1.0], &[1.0]), "y_true", "at least 2 samples");
        assert_invalid(regression(&[1.0], &[1.0]), "y_true", "at least 2 samples");
        // MSE and MAE are defined for one sample.
        assert_eq!(mean_squared_error(&[1.0], &[3.0]).unwrap(), 4.0);
    }

    #[test]
    fn errors_read_as_one_actionable_line() {
        let err = roc_auc(&[true, true], &[0.1, 0.2]).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid parameter `y_true`: all 2 labels are positive; ROC AUC needs at least one \
             positive and one negative sample, so evaluate on data that contains both classes"
        );
    }

    #[test]
    fn average_precision_matches_scikit_learn_documentation() {
        // scikit-learn's docstring example: average_precision_score([0, 0, 1, 1],
        // [0.1, 0.4, 0.35, 0.8]) = 0.8333333333333333 (1/2·1 + 1/2·2/3).
        let ap = average_precision(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!((ap - 0.8333333333333333).abs() < 1e-15, "{ap}");
        // Ties enter together: all tied → AP = share of positives.
        let ap = average_precision(&[true, false, false, false], &[0.5; 4]).unwrap();
        assert!((ap - 0.25).abs() < 1e-15);
        assert!(average_precision(&[false, false], &[0.1, 0.2]).is_err());
    }

    #[test]
    fn classification_report_counts_and_averages() {
        let y = [0, 0, 1, 1];
        let p = ndarray::array![[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]];
        let r = classification_report(&y, p.view()).unwrap();
        assert_eq!(r.confusion_matrix, vec![vec![2, 0], vec![1, 1]]);
        assert_eq!(r.precision, 1.0);
        assert_eq!(r.recall, 0.5);
        assert!((r.pr_auc - 0.8333333333333333).abs() < 1e-15);
    }
}
