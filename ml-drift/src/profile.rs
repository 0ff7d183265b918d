//! Reference profiles: what drift tests need to know about the training data, computed once and
//! stored with the model.
//!
//! A [`ReferenceProfile`] holds, per feature (and per model output), the type, counts, missing
//! rate, min/max/mean/std, quantile bin edges with counts, and either exact value counts (columns
//! with few distinct values), or a bounded order-independent sample plus a DDSketch (everything
//! else); categorical features keep exact category counts. Every part is a pure function of the
//! multiset of values, so profiles are deterministic (same data → same JSON, byte for byte) and
//! mergeable: [`ReferenceProfile::merge`] of the profiles of two halves equals the profile of the
//! whole — exactly for counts, extremes, category counts, the sketch, the sample and the bins;
//! mean and std up to floating-point rounding.

use std::collections::BTreeMap;

use ml_core::frame::{Column, MISSING_CODE, UNKNOWN_CATEGORY};
use ml_core::{DataType, Frame, Predictions, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sample::HashSample;
use crate::sketch::DdSketch;

/// The profile format this build writes; it reads this version and older ones.
pub const PROFILE_FORMAT_VERSION: u32 = 1;

/// Name prefix of profiled model outputs (`prediction` for labels and regression values,
/// `prediction.proba_<label>` for class probabilities).
pub const PREDICTION_PREFIX: &str = "prediction";

/// How a profile is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileOptions {
    /// Number of quantile bins for numeric features. Default 10 (the usual PSI decile bins).
    pub bins: usize,
    /// Largest number of rows kept in the exact sample of a numeric feature. Default 10,000.
    pub sample_size: usize,
    /// Seed of the sample's hash. Default 0.
    pub seed: u64,
    /// Numeric features with at most this many distinct values keep exact value counts.
    /// Default 64.
    pub max_distinct: usize,
    /// Categories past this many (by reference frequency) are pooled into an "other" bucket
    /// when tests run. Default 100.
    pub max_categories: usize,
    /// Relative accuracy of the quantile sketch. Default 0.01.
    pub relative_accuracy: f64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            bins: 10,
            sample_size: 10_000,
            seed: 0,
            max_distinct: 64,
            max_categories: 100,
            relative_accuracy: 0.01,
        }
    }
}

impl ProfileOptions {
    /// Checks ranges.
    pub fn check(&self) -> Result<()> {
        if self.bins < 2 || self.bins > 1000 {
            return Err(Error::invalid_parameter("bins", "must be between 2 and 1000"));
        }
        if self.sample_size == 0 {
            return Err(Error::invalid_parameter("sample_size", "must be at least 1"));
        }
        if self.max_categories == 0 {
            return Err(Error::invalid_parameter("max_categories", "must be at least 1"));
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 0.5) {
            return Err(Error::invalid_parameter(
                "relative_accuracy",
                "must be in (0, 0.5), e.g. 0.01",
            ));
        }
        Ok(())
    }
}

/// Whether a feature is compared as numbers or as categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    /// Float and int features, probabilities, regression outputs.
    Numerical,
    /// Categorical and bool features, predicted labels.
    Categorical,
}

impl FeatureType {
    /// `"num"` or `"cat"`, as the reference pipeline reports `feature_type`.
    pub fn short_name(self) -> &'static str {
        match self {
            FeatureType::Numerical => "num",
            FeatureType::Categorical => "cat",
        }
    }
}

/// The profile of one numeric column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    /// Smallest value (NaN-free; 0 when the column has no values).
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean (std = sqrt(m2 / count)).
    pub m2: f64,
    /// Exact `(value, count)` pairs, sorted by value, while the column has at most
    /// `max_distinct` distinct values; `None` once it has more.
    pub distinct: Option<Vec<(f64, u64)>>,
    /// The quantile sketch.
    pub sketch: DdSketch,
    /// The bounded exact sample.
    pub sample: HashSample,
    /// Quantile bin edges (`bins − 1` inner edges at most, strictly increasing).
    pub bin_edges: Vec<f64>,
    /// Row counts per bin (`bin_edges.len() + 1` bins; bin `i` is `(edge[i−1], edge[i]]`).
    pub bin_counts: Vec<u64>,
}

impl NumericProfile {
    /// Population standard deviation (ddof = 0, as `numpy.std`).
    pub fn std(&self, count: u64) -> f64 {
        if count == 0 {
            0.0
        } else {
            (self.m2 / count as f64).max(0.0).sqrt()
        }
    }

    /// The reference values for distribution tests: every value (with repeats) when the column
    /// has few distinct values, else the sorted sample.
    pub fn reference_values(&self) -> Vec<f64> {
        match &self.distinct {
            Some(d) => d
                .iter()
                .flat_map(|&(v, c)| std::iter::repeat_n(v, c as usize))
                .collect(),
            None => self.sample.values(),
        }
    }

    /// Number of distinct values, if at most `max_distinct`.
    pub fn n_distinct(&self) -> Option<usize> {
        self.distinct.as_ref().map(Vec::len)
    }
}

/// The profile of one categorical column: exact counts per category.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// Category → count (non-missing rows only).
    pub counts: BTreeMap<String, u64>,
}

/// What a feature profile holds, by type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per feature: boxing would only add indirection
pub enum Distribution {
    /// A numeric column.
    Numeric(NumericProfile),
    /// A categorical column.
    Categorical(CategoricalProfile),
}

/// The profile of one feature or output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureProfile {
    /// Column name.
    pub name: String,
    /// The schema type it came from (`float`, `int`, `bool`, `categorical`, `output`).
    pub dtype: String,
    /// Numerical or categorical.
    pub feature_type: FeatureType,
    /// Rows with a value.
    pub count: u64,
    /// Rows without a value.
    pub missing: u64,
    /// The distribution.
    pub distribution: Distribution,
}

impl FeatureProfile {
    /// Share of rows without a value (0 for an empty column).
    pub fn missing_rate(&self) -> f64 {
        let total = self.count + self.missing;
        if total == 0 {
            0.0
        } else {
            self.missing as f64 / total as f64
        }
    }
}

/// The profile of a data set (and optionally of a model's outputs on it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceProfile {
    /// Format version ([`PROFILE_FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// How it was computed.
    pub options: ProfileOptions,
    /// Rows profiled.
    pub n_rows: u64,
    /// Input features, in schema order (string fields are not profiled).
    pub features: Vec<FeatureProfile>,
    /// Model outputs (prediction drift); empty when no predictions were given.
    pub outputs: Vec<FeatureProfile>,
    /// The schema of the profiled data, so current data can be read the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
}

/// A column's values, extracted from a frame, the way the profile and the tests read them.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValues {
    /// Non-missing numeric values and the missing count.
    Numeric {
        /// The values (finite).
        values: Vec<f64>,
        /// Missing rows.
        missing: u64,
    },
    /// Non-missing category texts and the missing count.
    Categorical {
        /// The categories, one per non-missing row.
        values: Vec<String>,
        /// Missing rows.
        missing: u64,
    },
}

/// Extracts column `index` of `frame`; `None` for string fields (not profiled).
pub fn column_values(frame: &Frame, index: usize) -> Option<(String, FeatureType, ColumnValues)> {
    let field = frame.schema().fields().get(index)?;
    let column = frame.columns().get(index)?;
    let mask = frame.null_mask(index);
    let is_null = |r: usize| mask.is_some_and(|m| m.get(r).copied().unwrap_or(false));
    let dtype = field.dtype.name().to_string();
    match (column, &field.dtype) {
        (Column::Float(v), _) => {
            let values: Vec<f64> = v
                .iter()
                .enumerate()
                .filter(|&(r, x)| !is_null(r) && x.is_finite())
                .map(|(_, &x)| x)
                .collect();
            let missing = (v.len() - values.len()) as u64;
            Some((
                dtype,
                FeatureType::Numerical,
                ColumnValues::Numeric { values, missing },
            ))
        }
        (Column::Int(v), _) => {
            let values: Vec<f64> = v
                .iter()
                .enumerate()
                .filter(|&(r, _)| !is_null(r))
                .map(|(_, &x)| x as f64)
                .collect();
            let missing = (v.len() - values.len()) as u64;
            Some((
                dtype,
                FeatureType::Numerical,
                ColumnValues::Numeric { values, missing },
            ))
        }
        (Column::Bool(v), _) => {
            let values: Vec<String> = v
                .iter()
                .enumerate()
                .filter(|&(r, _)| !is_null(r))
                .map(|(_, &x)| x.to_string())
                .collect();
            let missing = (v.len() - values.len()) as u64;
            Some((
                dtype,
                FeatureType::Categorical,
                ColumnValues::Categorical { values, missing },
            ))
        }
        (Column::Categorical(codes), DataType::Categorical { vocabulary, .. }) => {
            let values: Vec<String> = codes
                .iter()
                .enumerate()
                .filter(|&(r, &c)| !is_null(r) && c != MISSING_CODE)
                .map(|(_, &c)| vocabulary.value(c).unwrap_or(UNKNOWN_CATEGORY).to_string())
                .collect();
            let missing = (codes.len() - values.len()) as u64;
            Some((
                dtype,
                FeatureType::Categorical,
                ColumnValues::Categorical { values, missing },
            ))
        }
        _ => None,
    }
}

/// Output columns of a batch of predictions, named as in the profile.
pub fn prediction_values(predictions: &Predictions) -> Vec<(String, FeatureType, ColumnValues)> {
    match predictions {
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => {
            let mut out = vec![(
                PREDICTION_PREFIX.to_string(),
                FeatureType::Categorical,
                ColumnValues::Categorical {
                    values: predicted
                        .iter()
                        .map(|&i| labels.get(i).cloned().unwrap_or_default())
                        .collect(),
                    missing: 0,
                },
            )];
            // A binary classifier's second column is redundant (1 − p): profile the positive one.
            let skip = usize::from(labels.len() == 2);
            for (j, label) in labels.iter().enumerate().skip(skip) {
                out.push((
                    format!("{PREDICTION_PREFIX}.proba_{label}"),
                    FeatureType::Numerical,
                    ColumnValues::Numeric {
                        values: probabilities
                            .column(j)
                            .iter()
                            .copied()
                            .filter(|x| x.is_finite())
                            .collect(),
                        missing: 0,
                    },
                ));
            }
            out
        }
        Predictions::Regression { values } => vec![(
            PREDICTION_PREFIX.to_string(),
            FeatureType::Numerical,
            ColumnValues::Numeric {
                values: values.iter().copied().filter(|x| x.is_finite()).collect(),
                missing: 0,
            },
        )],
    }
}

/// An in-progress numeric profile.
fn numeric_profile(values: &[f64], options: &ProfileOptions) -> NumericProfile {
    let mut p = NumericProfile {
        min: 0.0,
        max: 0.0,
        mean: 0.0,
        m2: 0.0,
        distinct: Some(Vec::new()),
        sketch: DdSketch::new(options.relative_accuracy),
        sample: HashSample::new(options.sample_size, options.seed),
        bin_edges: Vec::new(),
        bin_counts: Vec::new(),
    };
    if values.is_empty() {
        p.bin_counts = vec![0];
        return p;
    }
    // Sorted once: min/max, distinct counts and a summation order that does not depend on row
    // order (so the same multiset gives the same bits).
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    p.min = sorted[0];
    p.max = sorted[sorted.len() - 1];
    let (mean, m2) = moments(&sorted);
    p.mean = mean;
    p.m2 = m2;
    let mut distinct: Vec<(f64, u64)> = Vec::new();
    for &x in &sorted {
        match distinct.last_mut() {
            Some((v, c)) if *v == x => *c += 1,
            _ => {
                if distinct.len() > options.max_distinct {
                    break;
                }
                distinct.push((x, 1));
            }
        }
    }
    p.distinct = (distinct.len() <= options.max_distinct).then_some(distinct);
    for &x in &sorted {
        p.sketch.add(x);
        p.sample.add(x);
    }
    p.sample.finish();
    derive_bins(&mut p, options.bins);
    p
}

/// Mean and sum of squared deviations, two-pass.
fn moments(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let m2 = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
    (mean, m2)
}

/// Bin edges at the reference quantiles and counts per bin: from the exact value counts when the
/// column has few distinct values, else from the sketch (values within its relative accuracy).
fn derive_bins(p: &mut NumericProfile, bins: usize) {
    let weighted: Vec<(f64, u64)> = match &p.distinct {
        Some(d) => d.clone(),
        None => p.sketch.buckets(),
    };
    let total: u64 = weighted.iter().map(|w| w.1).sum();
    let mut edges: Vec<f64> = Vec::new();
    if total > 0 {
        for i in 1..bins {
            let rank = ((i as f64 / bins as f64) * (total - 1) as f64).floor() as u64;
            let mut seen = 0;
            for &(v, c) in &weighted {
                seen += c;
                if seen > rank {
                    if edges.last().is_none_or(|&l| v > l) && v < p.max {
                        edges.push(v);
                    }
                    break;
                }
            }
        }
    }
    let mut counts = vec![0u64; edges.len() + 1];
    for &(v, c) in &weighted {
        counts[bin_index(&edges, v)] += c;
    }
    p.bin_edges = edges;
    p.bin_counts = counts;
}

/// Bin of `x` for inner `edges`: bin `i` is `(edges[i−1], edges[i]]`.
pub fn bin_index(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e < x)
}

fn profile_column(
    name: String,
    dtype: String,
    feature_type: FeatureType,
    values: &ColumnValues,
    options: &ProfileOptions,
) -> FeatureProfile {
    match values {
        ColumnValues::Numeric { values, missing } => FeatureProfile {
            name,
            dtype,
            feature_type,
            count: values.len() as u64,
            missing: *missing,
            distribution: Distribution::Numeric(numeric_profile(values, options)),
        },
        ColumnValues::Categorical { values, missing } => {
            let mut counts = BTreeMap::new();
            for v in values {
                *counts.entry(v.clone()).or_insert(0u64) += 1;
            }
            FeatureProfile {
                name,
                dtype,
                feature_type,
                count: values.len() as u64,
                missing: *missing,
                distribution: Distribution::Categorical(CategoricalProfile { counts }),
            }
        }
    }
}

impl ReferenceProfile {
    /// Profiles every non-string column of `frame`, and the model outputs when given.
    ///
    /// `predictions` must have one row per frame row.
    pub fn from_frame(
        frame: &Frame,
        predictions: Option<&Predictions>,
        options: &ProfileOptions,
    ) -> Result<Self> {
        options.check()?;
        let mut features = Vec::new();
        for index in 0..frame.schema().len() {
            if let Some((dtype, ft, values)) = column_values(frame, index) {
                let name = frame.schema().fields()[index].name.clone();
                features.push(profile_column(name, dtype, ft, &values, options));
            }
        }
        let mut outputs = Vec::new();
        if let Some(p) = predictions {
            if p.len() != frame.n_rows() {
                return Err(Error::invalid_parameter(
                    "predictions",
                    format!(
                        "{} predictions for {} rows; score the same frame",
                        p.len(),
                        frame.n_rows()
                    ),
                ));
            }
            for (name, ft, values) in prediction_values(p) {
                outputs.push(profile_column(name, "output".into(), ft, &values, options));
            }
        }
        Ok(ReferenceProfile {
            format_version: PROFILE_FORMAT_VERSION,
            options: options.clone(),
            n_rows: frame.n_rows() as u64,
            features,
            outputs,
            schema: Some(frame.schema().as_ref().clone()),
        })
    }

    /// The feature (or output) profile called `name`.
    pub fn feature(&self, name: &str) -> Option<&FeatureProfile> {
        self.features.iter().chain(&self.outputs).find(|f| f.name == name)
    }

    /// Pretty JSON (deterministic: same profile, same bytes).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Parse {
            what: "reference profile".into(),
            reason: e.to_string(),
        })
    }

    /// Reads a profile from JSON, refusing newer format versions.
    pub fn from_json(text: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version = serde_json::from_str(text).map_err(|e| Error::Parse {
            what: "reference profile".into(),
            reason: format!("{e}; expected a profile.json written by `streamscore profile`"),
        })?;
        if v.format_version > PROFILE_FORMAT_VERSION {
            return Err(Error::UnsupportedProfileVersion {
                found: v.format_version,
                supported: PROFILE_FORMAT_VERSION,
            });
        }
        serde_json::from_str(text).map_err(|e| Error::Parse {
            what: "reference profile".into(),
            reason: e.to_string(),
        })
    }

    /// Merges the profile of other rows of the same data set into this one: the result equals
    /// the profile of both row sets together (see the module docs for what is exact).
    pub fn merge(&mut self, other: &ReferenceProfile) -> Result<()> {
        if self.options != other.options {
            return Err(Error::ProfileMismatch {
                reason: "profiles were computed with different options".into(),
            });
        }
        if self.features.len() != other.features.len() || self.outputs.len() != other.outputs.len() {
            return Err(Error::ProfileMismatch {
                reason: "profiles have different features or outputs".into(),
            });
        }
        let options = self.options.clone();
        for (a, b) in self
            .features
            .iter_mut()
            .zip(&other.features)
            .chain(self.outputs.iter_mut().zip(&other.outputs))
        {
            merge_feature(a, b, &options)?;
        }
        self.n_rows += other.n_rows;
        Ok(())
    }
}

fn merge_feature(a: &mut FeatureProfile, b: &FeatureProfile, options: &ProfileOptions) -> Result<()> {
    if a.name != b.name || a.feature_type != b.feature_type {
        return Err(Error::ProfileMismatch {
            reason: format!(
                "feature `{}` vs `{}` ({:?} vs {:?})",
                a.name, b.name, a.feature_type, b.feature_type
            ),
        });
    }
    let (na, nb) = (a.count, b.count);
    match (&mut a.distribution, &b.distribution) {
        (Distribution::Categorical(x), Distribution::Categorical(y)) => {
            for (k, v) in &y.counts {
                *x.counts.entry(k.clone()).or_insert(0) += v;
            }
        }
        (Distribution::Numeric(x), Distribution::Numeric(y)) => {
            if nb > 0 {
                if na == 0 {
                    x.min = y.min;
                    x.max = y.max;
                    x.mean = y.mean;
                    x.m2 = y.m2;
                } else {
                    // Chan et al.'s pairwise update of mean and squared deviations.
                    let n = (na + nb) as f64;
                    let delta = y.mean - x.mean;
                    x.m2 = x.m2 + y.m2 + delta * delta * na as f64 * nb as f64 / n;
                    x.mean = (x.mean * na as f64 + y.mean * nb as f64) / n;
                    x.min = x.min.min(y.min);
                    x.max = x.max.max(y.max);
                }
            }
            x.distinct = match (x.distinct.take(), &y.distinct) {
                (Some(d1), Some(d2)) => {
                    let mut m: Vec<(f64, u64)> = Vec::with_capacity(d1.len() + d2.len());
                    let (mut i, mut j) = (0, 0);
                    while i < d1.len() || j < d2.len() {
                        let take_left = j >= d2.len() || (i < d1.len() && d1[i].0 < d2[j].0);
                        let take_both = i < d1.len() && j < d2.len() && d1[i].0 == d2[j].0;
                        if take_both {
                            m.push((d1[i].0, d1[i].1 + d2[j].1));
                            i += 1;
                            j += 1;
                        } else if take_left {
                            m.push(d1[i]);
                            i += 1;
                        } else {
                            m.push(d2[j]);
                            j += 1;
                        }
                    }
                    (m.len() <= options.max_distinct).then_some(m)
                }
                _ => None,
            };
            if !x.sketch.merge(&y.sketch) || !x.sample.merge(&y.sample) {
                return Err(Error::ProfileMismatch {
                    reason: format!("feature `{}` has sketches of different settings", a.name),
                });
            }
            derive_bins(x, options.bins);
        }
        _ => {
            return Err(Error::ProfileMismatch {
                reason: format!("feature `{}` has different kinds", a.name),
            });
        }
    }
    a.count += b.count;
    a.missing += b.missing;
    Ok(())
}
