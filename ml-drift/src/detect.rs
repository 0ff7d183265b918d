//! Drift tests between a reference and current data, their automatic selection, and the driver
//! that turns a reference (a profile or full data) and a current frame into a [`DriftReport`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use ml_core::{Frame, Predictions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::profile::{
    ColumnValues, Distribution, FeatureProfile, FeatureType, ProfileOptions, ReferenceProfile, bin_index,
    column_values, prediction_values,
};
use crate::report::{DatasetDrift, DriftReport, FeatureDrift, Histogram};
use crate::stats::{self, Comparison, Correction, KsMethod, SortedIndex};

/// Name of the bucket that pools reference categories past `max_categories`.
pub const OTHER_CATEGORY: &str = "__other__";
/// Name of the bucket that pools current categories never seen in the reference.
pub const UNSEEN_CATEGORY: &str = "__unseen__";
/// Pseudo-count added to every bucket of a side that has an empty bucket, so that unseen
/// categories and empty bins give finite statistics (add-one-half smoothing).
pub const SMOOTHING: f64 = 0.5;

/// One side of a comparison for one feature, in the forms the tests read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureInput<'a> {
    /// Numeric: the values, sorted ascending (for the reference: all of them, or the profile's
    /// sample). Empty for categorical features.
    pub sorted: &'a [f64],
    /// Bucket counts aligned between both sides: numeric bins (at the reference's quantile edges)
    /// or categories (see [`FeatureInput::labels`]).
    pub buckets: Vec<f64>,
    /// Bucket labels (bin ranges or category names), shared by both sides.
    pub labels: Vec<String>,
    /// Rows with a value (for the reference: the whole reference, even when `sorted` is a sample).
    pub count: u64,
    /// Population standard deviation (the reference's normalizes Wasserstein).
    pub std: f64,
}

/// Whether a test's score is a p-value (drift when below the threshold) or a distance (drift
/// when at or above it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// Drift when `p < threshold`.
    PValue,
    /// Drift when `score ≥ threshold`.
    Distance,
}

/// What a test returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestScore {
    /// The p-value for p-value tests, the distance otherwise.
    pub score: f64,
    /// The p-value, for p-value tests.
    pub p_value: Option<f64>,
}

/// A two-sample drift test for one feature.
///
/// Implementations are pure functions of the two inputs: no I/O, no state, deterministic. The
/// inputs are aligned by the caller (same buckets, reference edges), so a test only computes.
/// A test must return finite numbers for any input, including empty sides and constant columns.
pub trait DriftDetector: Send + Sync + Debug {
    /// The name reported as `stattest_name` and accepted in per-feature overrides.
    fn name(&self) -> &'static str;
    /// P-value or distance.
    fn kind(&self) -> ScoreKind;
    /// The threshold used when none is configured: Evidently's, 0.05 for a p-value and 0.1 for
    /// a distance.
    fn default_threshold(&self) -> f64 {
        match self.kind() {
            ScoreKind::PValue => 0.05,
            ScoreKind::Distance => 0.1,
        }
    }
    /// Whether it applies to this feature type. Default: every type.
    fn applies_to(&self, _feature_type: FeatureType) -> bool {
        true
    }
    /// Compares current with reference.
    fn test(&self, reference: &FeatureInput<'_>, current: &FeatureInput<'_>) -> TestScore;
}

/// Two-sample Kolmogorov–Smirnov (scipy's exact / asymptotic p-values).
#[derive(Clone, Copy, Debug, Default)]
pub struct KsTest {
    /// How the p-value is computed.
    pub method: KsMethod,
}

impl DriftDetector for KsTest {
    fn name(&self) -> &'static str {
        "ks"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::PValue
    }
    fn applies_to(&self, t: FeatureType) -> bool {
        t == FeatureType::Numerical
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        let res = stats::ks_2samp_sorted(r.sorted, c.sorted, self.method);
        TestScore {
            score: res.p_value,
            p_value: Some(res.p_value),
        }
    }
}

/// Wasserstein distance divided by the reference's standard deviation (Evidently's
/// `wasserstein`); a constant reference is not normalized (divided by 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct WassersteinTest;

impl DriftDetector for WassersteinTest {
    fn name(&self) -> &'static str {
        "wasserstein"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::Distance
    }
    fn applies_to(&self, t: FeatureType) -> bool {
        t == FeatureType::Numerical
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        TestScore {
            score: normed_wasserstein(stats::wasserstein_sorted(r.sorted, c.sorted), r.std),
            p_value: None,
        }
    }
}

/// A Wasserstein distance divided by the reference's standard deviation (by 1 when that is 0 or
/// not finite).
fn normed_wasserstein(distance: f64, std: f64) -> f64 {
    let norm = if std > 0.0 && std.is_finite() { std } else { 1.0 };
    distance / norm
}

/// Population stability index over the aligned buckets.
#[derive(Clone, Copy, Debug, Default)]
pub struct PsiTest;

impl DriftDetector for PsiTest {
    fn name(&self) -> &'static str {
        "psi"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::Distance
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        TestScore {
            score: stats::psi(&r.buckets, &c.buckets),
            p_value: None,
        }
    }
}

/// Jensen–Shannon distance over the aligned buckets.
#[derive(Clone, Copy, Debug, Default)]
pub struct JensenShannonTest;

impl DriftDetector for JensenShannonTest {
    fn name(&self) -> &'static str {
        "jensenshannon"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::Distance
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        TestScore {
            score: stats::jensen_shannon(&r.buckets, &c.buckets),
            p_value: None,
        }
    }
}

/// Hellinger distance over the aligned buckets.
#[derive(Clone, Copy, Debug, Default)]
pub struct HellingerTest;

impl DriftDetector for HellingerTest {
    fn name(&self) -> &'static str {
        "hellinger"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::Distance
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        TestScore {
            score: stats::hellinger(&r.buckets, &c.buckets),
            p_value: None,
        }
    }
}

/// Pearson chi-square goodness of fit of the current counts to the reference proportions.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChiSquareTest;

impl DriftDetector for ChiSquareTest {
    fn name(&self) -> &'static str {
        "chisquare"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::PValue
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        let expected = smoothed(&r.buckets);
        let (_, p) = stats::chisquare(&c.buckets, &expected);
        TestScore {
            score: p,
            p_value: Some(p),
        }
    }
}

/// Two-proportion Z-test for binary features (share of the first bucket).
#[derive(Clone, Copy, Debug, Default)]
pub struct ZTest;

impl DriftDetector for ZTest {
    fn name(&self) -> &'static str {
        "z"
    }
    fn kind(&self) -> ScoreKind {
        ScoreKind::PValue
    }
    fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
        let first = |b: &[f64]| b.first().copied().unwrap_or(0.0);
        let (n1, n2) = (r.buckets.iter().sum::<f64>(), c.buckets.iter().sum::<f64>());
        let (_, p) = stats::z_test_proportions(first(&r.buckets), n1, first(&c.buckets), n2);
        TestScore {
            score: p,
            p_value: Some(p),
        }
    }
}

fn smoothed(b: &[f64]) -> Vec<f64> {
    if b.iter().any(|&x| x <= 0.0) {
        b.iter().map(|x| x + SMOOTHING).collect()
    } else {
        b.to_vec()
    }
}

/// The names accepted in overrides.
pub const TEST_NAMES: [&str; 7] = [
    "ks",
    "wasserstein",
    "psi",
    "jensenshannon",
    "hellinger",
    "chisquare",
    "z",
];

/// Builds a registered drift test.
pub type TestFactory = Arc<dyn Fn() -> Box<dyn DriftDetector> + Send + Sync>;

/// Tests registered with [`register_test`], by name.
static CUSTOM_TESTS: RwLock<BTreeMap<String, TestFactory>> = RwLock::new(BTreeMap::new());

/// Registers a drift test of one's own under `name`, so that per-feature overrides
/// ([`DriftOptions::tests`], `[monitor.features.X] test = "NAME"` in `streamscore.toml`) can
/// name it. Registering a name again replaces the earlier factory; the built-in names
/// ([`TEST_NAMES`]) cannot be replaced.
///
/// The test's [`DriftDetector::name`] should be `name` (it is what reports show).
pub fn register_test(
    name: &str,
    factory: impl Fn() -> Box<dyn DriftDetector> + Send + Sync + 'static,
) -> Result<()> {
    if TEST_NAMES.contains(&name) {
        return Err(Error::invalid_parameter(
            "name",
            format!("`{name}` is a built-in test; register yours under another name"),
        ));
    }
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(Error::invalid_parameter(
            "name",
            format!("`{name}`: a test name must be non-empty and without spaces"),
        ));
    }
    CUSTOM_TESTS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), Arc::new(factory));
    Ok(())
}

/// Every test name accepted in overrides: the built-ins, then the registered ones.
pub fn test_names() -> Vec<String> {
    let custom = CUSTOM_TESTS.read().unwrap_or_else(|e| e.into_inner());
    TEST_NAMES
        .iter()
        .map(|s| s.to_string())
        .chain(custom.keys().cloned())
        .collect()
}

/// A test by name: a built-in one, else one registered with [`register_test`].
pub fn test_by_name(name: &str, ks_method: KsMethod) -> Option<Box<dyn DriftDetector>> {
    if let Some(t) = builtin_test(name, ks_method) {
        return Some(t);
    }
    let custom = CUSTOM_TESTS.read().unwrap_or_else(|e| e.into_inner());
    custom.get(name).map(|f| f())
}

fn builtin_test(name: &str, ks_method: KsMethod) -> Option<Box<dyn DriftDetector>> {
    Some(match name {
        "ks" => Box::new(KsTest { method: ks_method }),
        "wasserstein" => Box::new(WassersteinTest),
        "psi" => Box::new(PsiTest),
        "jensenshannon" => Box::new(JensenShannonTest),
        "hellinger" => Box::new(HellingerTest),
        "chisquare" => Box::new(ChiSquareTest),
        "z" => Box::new(ZTest),
        _ => return None,
    })
}

/// Evidently's default choice: with at most `large_reference` reference rows, KS for numeric
/// features, chi-square for categorical ones, Z for binary ones (p < 0.05); with more, normed
/// Wasserstein for numeric and Jensen–Shannon for categorical ones (≥ 0.1). Numeric features
/// with at most 5 distinct values are compared as categories.
pub fn default_test_name(
    feature_type: FeatureType,
    n_reference: u64,
    n_values: usize,
    large_reference: u64,
) -> &'static str {
    let few = n_values <= 5;
    if n_reference <= large_reference {
        match (feature_type, few) {
            (FeatureType::Numerical, false) => "ks",
            _ if n_values > 2 => "chisquare",
            _ => "z",
        }
    } else {
        match (feature_type, few) {
            (FeatureType::Numerical, false) => "wasserstein",
            _ => "jensenshannon",
        }
    }
}

/// How drift is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftOptions {
    /// Per-feature test overrides (feature → test name, one of [`TEST_NAMES`]).
    pub tests: BTreeMap<String, String>,
    /// Per-feature threshold overrides.
    pub thresholds: BTreeMap<String, f64>,
    /// Multiple-testing correction of p-values across features. Default none (as Evidently).
    pub correction: Correction,
    /// Dataset drift when at least this share of features drifted. Default 0.5.
    pub drift_share: f64,
    /// KS p-value method. Default auto (scipy's).
    pub ks_method: KsMethod,
    /// Reference size above which the distance tests are chosen. Default 1000 (Evidently).
    pub large_reference: u64,
    /// Bins for numeric features in exact mode (profile mode uses the profile's). Default 10.
    pub bins: usize,
    /// Categories past this many are pooled into [`OTHER_CATEGORY`]. Default 100.
    pub max_categories: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            tests: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            correction: Correction::None,
            drift_share: 0.5,
            ks_method: KsMethod::Auto,
            large_reference: 1000,
            bins: 10,
            max_categories: 100,
        }
    }
}

/// A prepared reference for one feature.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceFeature {
    /// Feature name.
    pub name: String,
    /// Numerical or categorical.
    pub feature_type: FeatureType,
    /// Sorted values (numeric; all of them or a sample).
    pub sorted: Vec<f64>,
    /// `sorted` indexed for comparisons with unsorted current values (profile mode: a sample is
    /// small enough to index; exact mode sorts the current values instead).
    pub index: Option<SortedIndex>,
    /// Inner bin edges (numeric).
    pub bin_edges: Vec<f64>,
    /// Counts per bin (numeric).
    pub bin_counts: Vec<f64>,
    /// Category counts (categorical), or value counts of a numeric feature with few values.
    pub categories: Option<BTreeMap<String, f64>>,
    /// Rows with a value.
    pub count: u64,
    /// Population standard deviation.
    pub std: f64,
    /// Whether this is a model output.
    pub is_output: bool,
}

/// A reference prepared for comparisons: from a profile ([`PreparedReference::from_profile`],
/// "profile mode": sample and sketch bins) or from full data ([`PreparedReference::exact`],
/// "exact mode": every value, sorted once).
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedReference {
    /// The features (and outputs).
    pub features: Vec<ReferenceFeature>,
    /// Rows in the reference.
    pub n_rows: u64,
    /// `"exact"` or `"profile"`.
    pub mode: &'static str,
}

fn numeric_label(v: f64) -> String {
    format!("{v}")
}

fn few_values_map(d: &[(f64, u64)]) -> BTreeMap<String, f64> {
    d.iter().map(|&(v, c)| (numeric_label(v), c as f64)).collect()
}

impl PreparedReference {
    /// Profile mode.
    pub fn from_profile(profile: &ReferenceProfile) -> Self {
        let conv = |f: &FeatureProfile, is_output: bool| -> ReferenceFeature {
            match &f.distribution {
                Distribution::Numeric(n) => {
                    let sorted = n.reference_values();
                    ReferenceFeature {
                        name: f.name.clone(),
                        feature_type: f.feature_type,
                        index: Some(SortedIndex::new(&sorted)),
                        sorted,
                        bin_edges: n.bin_edges.clone(),
                        bin_counts: n.bin_counts.iter().map(|&c| c as f64).collect(),
                        categories: n.distinct.as_deref().filter(|d| d.len() <= 5).map(few_values_map),
                        count: f.count,
                        std: n.std(f.count),
                        is_output,
                    }
                }
                Distribution::Categorical(c) => ReferenceFeature {
                    name: f.name.clone(),
                    feature_type: f.feature_type,
                    sorted: Vec::new(),
                    index: None,
                    bin_edges: Vec::new(),
                    bin_counts: Vec::new(),
                    categories: Some(c.counts.iter().map(|(k, &v)| (k.clone(), v as f64)).collect()),
                    count: f.count,
                    std: 0.0,
                    is_output,
                },
            }
        };
        PreparedReference {
            features: profile
                .features
                .iter()
                .map(|f| conv(f, false))
                .chain(profile.outputs.iter().map(|f| conv(f, true)))
                .collect(),
            n_rows: profile.n_rows,
            mode: "profile",
        }
    }

    /// Exact mode: every reference value kept and sorted once, bins at exact quantiles.
    pub fn exact(frame: &Frame, predictions: Option<&Predictions>, bins: usize) -> Result<Self> {
        let mut features = Vec::new();
        let mut add = |name: String, ft: FeatureType, values: ColumnValues, is_output: bool| match values {
            ColumnValues::Numeric { mut values, .. } => {
                stats::sort_floats(&mut values);
                features.push(exact_numeric(name, ft, values, bins, is_output));
            }
            ColumnValues::Categorical { values, .. } => {
                let mut counts = BTreeMap::new();
                for v in values {
                    *counts.entry(v).or_insert(0.0) += 1.0;
                }
                let count = counts.values().sum::<f64>() as u64;
                features.push(ReferenceFeature {
                    name,
                    feature_type: ft,
                    sorted: Vec::new(),
                    index: None,
                    bin_edges: Vec::new(),
                    bin_counts: Vec::new(),
                    categories: Some(counts),
                    count,
                    std: 0.0,
                    is_output,
                });
            }
        };
        for index in 0..frame.schema().len() {
            if let Some((_, ft, values)) = column_values(frame, index) {
                add(frame.schema().fields()[index].name.clone(), ft, values, false);
            }
        }
        if let Some(p) = predictions {
            for (name, ft, values) in prediction_values(p) {
                add(name, ft, values, true);
            }
        }
        Ok(PreparedReference {
            features,
            n_rows: frame.n_rows() as u64,
            mode: "exact",
        })
    }
}

/// An exact numeric reference from sorted values.
pub fn exact_numeric(
    name: String,
    ft: FeatureType,
    sorted: Vec<f64>,
    bins: usize,
    is_output: bool,
) -> ReferenceFeature {
    let n = sorted.len();
    let mut edges: Vec<f64> = Vec::new();
    if n > 0 {
        let max = sorted[n - 1];
        for i in 1..bins.max(2) {
            let v = sorted[((i as f64 / bins as f64) * (n - 1) as f64).floor() as usize];
            if edges.last().is_none_or(|&l| v > l) && v < max {
                edges.push(v);
            }
        }
    }
    let counts = sorted_bin_counts(&sorted, &edges);
    let (mean, std) = if n == 0 {
        (0.0, 0.0)
    } else {
        let mean = sorted.iter().sum::<f64>() / n as f64;
        (
            mean,
            (sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt(),
        )
    };
    let _ = mean;
    let mut distinct: Vec<(f64, u64)> = Vec::new();
    for &x in &sorted {
        if let Some((v, c)) = distinct.last_mut()
            && *v == x
        {
            *c += 1;
            continue;
        }
        if distinct.len() > 5 {
            break;
        }
        distinct.push((x, 1));
    }
    ReferenceFeature {
        name,
        feature_type: ft,
        bin_edges: edges,
        bin_counts: counts,
        categories: (distinct.len() <= 5 && n > 0).then(|| few_values_map(&distinct)),
        count: n as u64,
        std,
        sorted,
        index: None,
        is_output,
    }
}

impl ReferenceFeature {
    /// The KS statistic, the Wasserstein distance (not normed) and the current counts per
    /// reference bin, for **unsorted**, NaN-free current values: through the index when there is
    /// one (no sorting), else by sorting them and walking both samples. Both ways give the same
    /// statistic bit for bit, the same counts, and the distance up to rounding.
    pub fn compare_numeric(&self, current: &[f64]) -> Comparison {
        if let Some(index) = &self.index {
            return index.compare(current, &self.bin_edges);
        }
        let mut sorted = current.to_vec();
        stats::sort_floats(&mut sorted);
        let (ks_statistic, wasserstein) = stats::ks_and_wasserstein_sorted(&self.sorted, &sorted);
        Comparison {
            ks_statistic,
            wasserstein,
            bin_counts: sorted_bin_counts(&sorted, &self.bin_edges),
        }
    }
}

/// Counts per bin (`(edges[i−1], edges[i]]`) of sorted values: each bin is a contiguous run.
fn sorted_bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    let mut start = 0;
    for (b, c) in counts.iter_mut().enumerate() {
        let end = if b < edges.len() {
            sorted.partition_point(|&x| x <= edges[b])
        } else {
            sorted.len()
        };
        *c = (end - start) as f64;
        start = end;
    }
    counts
}

/// Computes a drift report of `current` (and the model's predictions on it) against a profile.
pub fn drift_from_profile(
    reference: &ReferenceProfile,
    current: &Frame,
    current_predictions: Option<&Predictions>,
    options: &DriftOptions,
) -> Result<DriftReport> {
    compare(
        &PreparedReference::from_profile(reference),
        current,
        current_predictions,
        options,
    )
}

fn range_label(edges: &[f64], b: usize) -> String {
    // Four significant digits (whole numbers from 1,000 on): labels stay short enough to read
    // under a chart's bars.
    let fmt = |v: f64| {
        let magnitude = if v == 0.0 {
            0
        } else {
            v.abs().log10().floor() as i32
        };
        let decimals = (3 - magnitude).clamp(0, 12) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    match (b.checked_sub(1).and_then(|i| edges.get(i)), edges.get(b)) {
        (None, Some(&hi)) => format!("≤ {}", fmt(hi)),
        (Some(&lo), Some(&hi)) => format!("({}, {}]", fmt(lo), fmt(hi)),
        (Some(&lo), None) => format!("> {}", fmt(lo)),
        (None, None) => "all".into(),
    }
}

/// Aligns reference and current category counts: reference categories past `max_categories`
/// (by frequency, ties by name) go to [`OTHER_CATEGORY`], current categories not in the
/// reference to [`UNSEEN_CATEGORY`].
fn align_categories(
    reference: &BTreeMap<String, f64>,
    current: &BTreeMap<String, f64>,
    max_categories: usize,
) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let mut ranked: Vec<(&String, f64)> = reference.iter().map(|(k, &v)| (k, v)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let kept: Vec<&String> = ranked.iter().take(max_categories).map(|r| r.0).collect();
    let kept_set: BTreeSet<&String> = kept.iter().copied().collect();
    let mut labels: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
    let mut r: Vec<f64> = kept.iter().map(|k| reference[*k]).collect();
    let mut c: Vec<f64> = kept
        .iter()
        .map(|k| current.get(*k).copied().unwrap_or(0.0))
        .collect();
    let other_r: f64 = reference
        .iter()
        .filter(|(k, _)| !kept_set.contains(k))
        .map(|(_, v)| v)
        .sum();
    if other_r > 0.0 {
        labels.push(OTHER_CATEGORY.into());
        r.push(other_r);
        c.push(
            current
                .iter()
                .filter(|(k, _)| !kept_set.contains(k) && reference.contains_key(*k))
                .map(|(_, v)| v)
                .sum(),
        );
    }
    let unseen: f64 = current
        .iter()
        .filter(|(k, _)| !reference.contains_key(*k))
        .map(|(_, v)| v)
        .sum();
    if unseen > 0.0 {
        labels.push(UNSEEN_CATEGORY.into());
        r.push(0.0);
        c.push(unseen);
    }
    (labels, r, c)
}

/// Compares `current` with a prepared reference.
pub fn compare(
    reference: &PreparedReference,
    current: &Frame,
    current_predictions: Option<&Predictions>,
    options: &DriftOptions,
) -> Result<DriftReport> {
    if !(options.drift_share > 0.0 && options.drift_share <= 1.0) {
        return Err(Error::invalid_parameter(
            "drift_share",
            "must be in (0, 1], e.g. 0.5",
        ));
    }
    for name in options.tests.keys().chain(options.thresholds.keys()) {
        if !reference.features.iter().any(|f| &f.name == name) {
            return Err(Error::invalid_parameter(
                "tests",
                format!("no feature `{name}` in the reference"),
            ));
        }
    }
    // Current columns by name.
    let mut current_cols: BTreeMap<String, (FeatureType, ColumnValues)> = BTreeMap::new();
    for index in 0..current.schema().len() {
        if let Some((_, ft, values)) = column_values(current, index) {
            current_cols.insert(current.schema().fields()[index].name.clone(), (ft, values));
        }
    }
    if let Some(p) = current_predictions {
        for (name, ft, values) in prediction_values(p) {
            current_cols.insert(name, (ft, values));
        }
    }
    let mut rows: Vec<FeatureDrift> = Vec::new();
    for rf in &reference.features {
        let Some((cft, cvalues)) = current_cols.get(&rf.name) else {
            if rf.is_output {
                continue; // no predictions given: no prediction drift
            }
            return Err(Error::MissingFeature {
                feature: rf.name.clone(),
                available: current_cols.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        if *cft != rf.feature_type {
            return Err(Error::FeatureTypeMismatch {
                feature: rf.name.clone(),
                reference: rf.feature_type.short_name().into(),
                current: cft.short_name().into(),
            });
        }
        rows.push(compare_feature(rf, cvalues, options)?);
    }
    // Multiple-testing correction over the p-value tests of the input features.
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].p_value.is_some() && !rows[i].is_output)
        .collect();
    let ps: Vec<f64> = idx.iter().filter_map(|&i| rows[i].p_value).collect();
    let adjusted = stats::adjust_p_values(&ps, options.correction);
    for (&i, &a) in idx.iter().zip(&adjusted) {
        if options.correction != Correction::None {
            rows[i].adjusted_p_value = Some(a);
        }
        rows[i].drift_detected = a < rows[i].threshold;
    }
    let (outputs, features): (Vec<FeatureDrift>, Vec<FeatureDrift>) =
        rows.into_iter().partition(|r| r.is_output);
    let n_features = features.len();
    let n_drifted = features.iter().filter(|f| f.drift_detected).count();
    let share = if n_features == 0 {
        0.0
    } else {
        n_drifted as f64 / n_features as f64
    };
    Ok(DriftReport {
        dataset: DatasetDrift {
            n_features,
            n_drifted_features: n_drifted,
            share_drifted_features: share,
            dataset_drift: n_features > 0 && share >= options.drift_share,
        },
        drift_share_threshold: options.drift_share,
        correction: options.correction,
        reference_mode: reference.mode.into(),
        n_reference_rows: reference.n_rows,
        n_current_rows: current.n_rows() as u64,
        features,
        prediction: outputs,
    })
}

fn compare_feature(
    rf: &ReferenceFeature,
    current: &ColumnValues,
    options: &DriftOptions,
) -> Result<FeatureDrift> {
    // Build both inputs.
    let mut r = FeatureInput {
        count: rf.count,
        std: rf.std,
        sorted: &rf.sorted,
        ..Default::default()
    };
    let mut c = FeatureInput::default();
    let mut cur_categories: Option<BTreeMap<String, f64>> = None;
    let mut n_values: usize;
    let mut cur_sorted: Vec<f64> = Vec::new();
    // KS, Wasserstein and bins without sorting the current values, when one of those tests runs
    // on a numeric feature compared as numbers (through the reference's index, if any).
    let mut numeric: Option<Comparison> = None;
    match current {
        ColumnValues::Numeric { values, .. } => {
            c.count = values.len() as u64;
            r.buckets = rf.bin_counts.clone();
            r.labels = (0..r.buckets.len())
                .map(|b| range_label(&rf.bin_edges, b))
                .collect();
            let chosen = match options.tests.get(&rf.name) {
                Some(n) => n.as_str(),
                None => default_test_name(rf.feature_type, rf.count, usize::MAX, options.large_reference),
            };
            if rf.categories.is_none() && matches!(chosen, "ks" | "wasserstein" | "psi") {
                let cmp = rf.compare_numeric(values);
                c.buckets = cmp.bin_counts.clone();
                numeric = Some(cmp);
            } else {
                let mut sorted = values.clone();
                stats::sort_floats(&mut sorted);
                c.buckets = sorted_bin_counts(&sorted, &rf.bin_edges);
                debug_assert_eq!(bin_index(&rf.bin_edges, f64::NEG_INFINITY), 0);
                cur_sorted = sorted;
            }
            if rf.categories.is_some() {
                let sorted = &cur_sorted;
                let mut m: BTreeMap<String, f64> = BTreeMap::new();
                let mut distinct = 0;
                for (i, &x) in sorted.iter().enumerate() {
                    if i == 0 || sorted[i - 1] != x {
                        distinct += 1;
                        if distinct > 64 {
                            break;
                        }
                    }
                    *m.entry(numeric_label(x)).or_insert(0.0) += 1.0;
                }
                if distinct <= 64 {
                    cur_categories = Some(m);
                }
            }
            n_values = match (&rf.categories, &cur_categories) {
                (Some(a), Some(b)) => a.keys().chain(b.keys()).collect::<BTreeSet<_>>().len(),
                _ => usize::MAX,
            };
        }
        ColumnValues::Categorical { values, .. } => {
            let mut m: BTreeMap<String, f64> = BTreeMap::new();
            for v in values {
                *m.entry(v.clone()).or_insert(0.0) += 1.0;
            }
            c.count = values.len() as u64;
            cur_categories = Some(m);
            n_values = 0;
        }
    }
    if let (Some(rc), Some(cc)) = (&rf.categories, &cur_categories)
        && rf.feature_type == FeatureType::Categorical
    {
        n_values = rc.keys().chain(cc.keys()).collect::<BTreeSet<_>>().len();
    }
    let name = match options.tests.get(&rf.name) {
        Some(n) => n.clone(),
        None => default_test_name(rf.feature_type, rf.count, n_values, options.large_reference).to_string(),
    };
    let test = test_by_name(&name, options.ks_method).ok_or_else(|| {
        Error::invalid_parameter(
            "tests",
            format!(
                "unknown test `{name}` for `{}`; use one of: {}",
                rf.name,
                test_names().join(", ")
            ),
        )
    })?;
    if !test.applies_to(rf.feature_type) {
        return Err(Error::TestNotApplicable {
            test: name,
            feature: rf.name.clone(),
            feature_type: rf.feature_type.short_name().into(),
            allowed: test_names()
                .into_iter()
                .filter(|t| test_by_name(t, KsMethod::Auto).is_some_and(|t| t.applies_to(rf.feature_type)))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // Category-based comparison for categorical features, and numeric ones with few values
    // when a bucket test was chosen.
    let categorical_buckets = rf.feature_type == FeatureType::Categorical
        || (n_values <= 5
            && matches!(
                name.as_str(),
                "chisquare" | "z" | "jensenshannon" | "hellinger" | "psi"
            ));
    if categorical_buckets && let (Some(rc), Some(cc)) = (&rf.categories, &cur_categories) {
        let (labels, rb, cb) = align_categories(rc, cc, options.max_categories);
        r.buckets = rb;
        c.buckets = cb;
        r.labels = labels;
    }
    c.labels = r.labels.clone();
    c.sorted = &cur_sorted;
    let score = match (&numeric, name.as_str()) {
        // The same computations as `KsTest` and `WassersteinTest`, from the one comparison.
        (Some(cmp), "ks") => {
            let p = stats::ks_pvalue(
                cmp.ks_statistic,
                r.sorted.len(),
                c.count as usize,
                options.ks_method,
            );
            TestScore {
                score: p,
                p_value: Some(p),
            }
        }
        (Some(cmp), "wasserstein") => TestScore {
            score: normed_wasserstein(cmp.wasserstein, r.std),
            p_value: None,
        },
        _ => test.test(&r, &c),
    };
    let threshold = options
        .thresholds
        .get(&rf.name)
        .copied()
        .unwrap_or_else(|| test.default_threshold());
    let clean = |x: f64| if x.is_finite() { x } else { 0.0 };
    let drift_score = clean(score.score);
    let drift_detected = match test.kind() {
        ScoreKind::PValue => drift_score < threshold,
        ScoreKind::Distance => drift_score >= threshold,
    };
    Ok(FeatureDrift {
        feature_name: rf.name.clone(),
        feature_type: rf.feature_type.short_name().into(),
        stattest_name: name,
        drift_score,
        p_value: score.p_value.map(clean),
        adjusted_p_value: None,
        threshold,
        drift_detected,
        score_kind: test.kind(),
        is_output: rf.is_output,
        histogram: Histogram {
            labels: r.labels.clone(),
            reference: proportions(&r.buckets),
            current: proportions(&c.buckets),
        },
    })
}

fn proportions(b: &[f64]) -> Vec<f64> {
    let s: f64 = b.iter().sum();
    b.iter().map(|x| if s > 0.0 { x / s } else { 0.0 }).collect()
}

/// Profile options matching drift options (bins) — for callers that profile and compare.
pub fn profile_options(options: &DriftOptions) -> ProfileOptions {
    ProfileOptions {
        bins: options.bins,
        max_categories: options.max_categories,
        ..ProfileOptions::default()
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    /// Distance = the absolute difference of the means (a test of one's own).
    #[derive(Debug)]
    struct MeanShift;

    impl DriftDetector for MeanShift {
        fn name(&self) -> &'static str {
            "mean_shift_unit"
        }
        fn kind(&self) -> ScoreKind {
            ScoreKind::Distance
        }
        fn test(&self, r: &FeatureInput<'_>, c: &FeatureInput<'_>) -> TestScore {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            TestScore {
                score: (mean(c.sorted) - mean(r.sorted)).abs(),
                p_value: None,
            }
        }
    }

    #[test]
    fn a_registered_test_is_found_by_name_and_built_ins_cannot_be_replaced() {
        assert!(test_by_name("mean_shift_unit", KsMethod::Auto).is_none());
        register_test("mean_shift_unit", || Box::new(MeanShift)).unwrap();
        let t = test_by_name("mean_shift_unit", KsMethod::Auto).unwrap();
        let r = FeatureInput {
            sorted: &[1.0, 2.0, 3.0],
            ..Default::default()
        };
        let c = FeatureInput {
            sorted: &[3.0, 4.0, 5.0],
            ..Default::default()
        };
        assert_eq!(t.test(&r, &c).score, 2.0);
        assert!(test_names().iter().any(|n| n == "mean_shift_unit"));
        assert!(register_test("ks", || Box::new(MeanShift)).is_err());
        assert!(register_test("two words", || Box::new(MeanShift)).is_err());
    }
}
