//! Preprocessing learned at fit time and stored with the model: imputation (mean, median or
//! most frequent value) and standard scaling of numeric fields, one-hot or ordinal encoding of
//! categorical fields.
//!
//! The learned values (fill values, centers, scales, category slots) are stored in the model, so
//! prediction applies exactly what training learned. Models saved before imputation and encoding
//! became choices load unchanged: the fields added since have serde defaults that reproduce the
//! earlier behaviour (mean imputation, one-hot, missing categories as all zeros).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::frame::{Column, Frame};
use crate::model::check_frame_schema;
use crate::schema::{DataType, Schema, UnseenPolicy};

/// How a missing value of a field is filled in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Imputation {
    /// The training mean of a numeric field (scikit-learn's `SimpleImputer(strategy="mean")`);
    /// a missing category encodes as "no category" (all zeros one-hot, -1 ordinal). The default.
    #[default]
    Mean,
    /// The training median of a numeric field (the mean of the two middle values for an even
    /// count, as numpy); categories as for `mean`.
    Median,
    /// The most frequent training value, numeric or categorical (the smallest value, or the
    /// first category, among ties, as scikit-learn's `strategy="most_frequent"`).
    MostFrequent,
}

impl Imputation {
    /// The name used on the command line and in serde.
    pub fn name(self) -> &'static str {
        match self {
            Imputation::Mean => "mean",
            Imputation::Median => "median",
            Imputation::MostFrequent => "most_frequent",
        }
    }
}

impl std::str::FromStr for Imputation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Imputation> {
        match s {
            "mean" => Ok(Imputation::Mean),
            "median" => Ok(Imputation::Median),
            "most_frequent" => Ok(Imputation::MostFrequent),
            other => Err(Error::invalid_parameter(
                "impute",
                format!("unknown imputation `{other}`; use mean, median or most_frequent"),
            )),
        }
    }
}

/// How a categorical field becomes numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoricalEncoding {
    /// One 0/1 column per category (plus an unknown slot when the schema maps unseen values to
    /// "unknown"). The default.
    #[default]
    #[serde(rename = "onehot", alias = "one_hot")]
    OneHot,
    /// One column holding the category's index in the vocabulary (the unknown slot, when the
    /// schema has one, is the index after the last category; a missing or ignored value is -1
    /// unless imputed). One column per field however many categories: what trees want for
    /// high-cardinality fields; linear models read the index as a magnitude.
    Ordinal,
}

impl CategoricalEncoding {
    /// The name used on the command line and in serde.
    pub fn name(self) -> &'static str {
        match self {
            CategoricalEncoding::OneHot => "onehot",
            CategoricalEncoding::Ordinal => "ordinal",
        }
    }
}

impl std::str::FromStr for CategoricalEncoding {
    type Err = Error;

    fn from_str(s: &str) -> Result<CategoricalEncoding> {
        match s {
            "onehot" | "one_hot" | "one-hot" => Ok(CategoricalEncoding::OneHot),
            "ordinal" => Ok(CategoricalEncoding::Ordinal),
            other => Err(Error::invalid_parameter(
                "encode",
                format!("unknown encoding `{other}`; use onehot or ordinal"),
            )),
        }
    }
}

/// The preprocessing a user chooses for a training run (the estimator decides scaling).
///
/// Serde form: `{"impute": "median", "encode": "ordinal"}`, both optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// How missing values are filled in. Default [`Imputation::Mean`].
    #[serde(default)]
    pub impute: Imputation,
    /// How categorical fields are encoded. Default [`CategoricalEncoding::OneHot`].
    #[serde(default)]
    pub encode: CategoricalEncoding,
}

/// How fields are prepared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreprocessOptions {
    /// Standardize numeric fields to zero mean and unit variance (what linear models need;
    /// trees do not). Default `false`. Ordinal codes are never scaled.
    pub standardize: bool,
    /// Imputation and categorical encoding.
    #[serde(default)]
    pub choice: Preprocessing,
}

/// One field's transformation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Step {
    /// `(x - center) / scale`; a missing value becomes `fill` before that.
    Numeric {
        field: String,
        fill: f64,
        center: f64,
        scale: f64,
    },
    /// One 0/1 column per category (plus one for "unknown" when the field maps unseen values to
    /// it); a missing or ignored value sets the slot `fill` (most-frequent imputation), or none.
    OneHot {
        field: String,
        categories: Vec<String>,
        unknown_slot: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<u32>,
    },
    /// The category's code as a number (the unknown slot is `categories.len()`); a missing or
    /// ignored value becomes `fill`.
    Ordinal {
        field: String,
        categories: Vec<String>,
        unknown_slot: bool,
        fill: f64,
    },
}

/// The fitted preprocessing of a model: a raw frame in, a dense `f64` design matrix out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    steps: Vec<Step>,
    /// The options it was fitted with (absent in models saved before they were recorded, which
    /// were all mean imputation and one-hot).
    #[serde(default)]
    options: Option<PreprocessOptions>,
}

impl Preprocessor {
    /// Learns the preprocessing of every field of `frame` from its values.
    ///
    /// Missing values are imputed as [`Imputation`] says, from the training rows' present
    /// values; standardization uses the population standard deviation and leaves constant
    /// fields unscaled, as scikit-learn's `StandardScaler` does (it is computed on the present
    /// values, before imputation). Categorical fields are encoded as [`CategoricalEncoding`]
    /// says. String fields cannot be features and are refused with the fix named.
    pub fn fit(frame: &Frame, options: PreprocessOptions) -> Result<Preprocessor> {
        let PreprocessOptions {
            choice: Preprocessing { impute, encode },
            ..
        } = options;
        let mut steps = Vec::with_capacity(frame.schema().len());
        for (i, field) in frame.schema().fields().iter().enumerate() {
            let mask = frame.null_mask(i);
            let present = |r: usize| !mask.is_some_and(|m| m[r]);
            let step = match (&field.dtype, &frame.columns()[i]) {
                (DataType::Categorical { vocabulary, unseen }, col) => {
                    let categories = vocabulary.values().to_vec();
                    let unknown_slot = *unseen == UnseenPolicy::MapToUnknown;
                    let width = categories.len() + usize::from(unknown_slot);
                    let most_frequent = match (impute, col) {
                        (Imputation::MostFrequent, Column::Categorical(codes)) => most_frequent_code(
                            codes
                                .iter()
                                .enumerate()
                                .filter(|&(r, _)| present(r))
                                .map(|(_, &c)| c),
                            width,
                        ),
                        _ => None,
                    };
                    match encode {
                        CategoricalEncoding::OneHot => Step::OneHot {
                            field: field.name.clone(),
                            categories,
                            unknown_slot,
                            fill: most_frequent,
                        },
                        CategoricalEncoding::Ordinal => Step::Ordinal {
                            field: field.name.clone(),
                            categories,
                            unknown_slot,
                            fill: most_frequent.map_or(-1.0, f64::from),
                        },
                    }
                }
                (DataType::String, _) => {
                    return Err(Error::Training {
                        reason: format!(
                            "field `{}` is free text (string) and cannot be a feature; declare it categorical or drop it",
                            field.name
                        ),
                    });
                }
                (_, col) => {
                    let values: Vec<f64> = (0..frame.n_rows())
                        .filter(|&r| present(r))
                        .map(|r| numeric_value(col, r))
                        .collect();
                    if values.is_empty() {
                        return Err(Error::Training {
                            reason: format!(
                                "field `{}` has no values in the training data; drop it",
                                field.name
                            ),
                        });
                    }
                    let n = values.len() as f64;
                    let mean = values.iter().sum::<f64>() / n;
                    let fill = match impute {
                        Imputation::Mean => mean,
                        Imputation::Median => median(values.clone()),
                        Imputation::MostFrequent => most_frequent_value(values.clone()),
                    };
                    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                    let std = var.sqrt();
                    let (center, scale) = if options.standardize {
                        (mean, if std > 0.0 && std.is_finite() { std } else { 1.0 })
                    } else {
                        (0.0, 1.0)
                    };
                    Step::Numeric {
                        field: field.name.clone(),
                        fill,
                        center,
                        scale,
                    }
                }
            };
            steps.push(step);
        }
        Ok(Preprocessor {
            steps,
            options: Some(options),
        })
    }

    /// The options it was fitted with; models saved before these were recorded report the
    /// defaults they were fitted with (mean imputation, one-hot), scaling unknown as `false`.
    pub fn options(&self) -> PreprocessOptions {
        self.options.unwrap_or_default()
    }

    /// Number of output columns.
    pub fn n_outputs(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Numeric { .. } | Step::Ordinal { .. } => 1,
                Step::OneHot {
                    categories,
                    unknown_slot,
                    ..
                } => categories.len() + usize::from(*unknown_slot),
            })
            .sum()
    }

    /// Names of the output columns: the field name for numeric and ordinal fields,
    /// `field=category` for one-hot columns (`field=__unknown__` for the unknown slot).
    pub fn output_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_outputs());
        for s in &self.steps {
            match s {
                Step::Numeric { field, .. } | Step::Ordinal { field, .. } => names.push(field.clone()),
                Step::OneHot {
                    field,
                    categories,
                    unknown_slot,
                    ..
                } => {
                    names.extend(categories.iter().map(|c| format!("{field}={c}")));
                    if *unknown_slot {
                        names.push(format!("{field}={}", crate::frame::UNKNOWN_CATEGORY));
                    }
                }
            }
        }
        names
    }

    /// Transforms `frame` (which must provide the fields of `schema`, the model's schema) into
    /// the `n_rows × n_outputs` design matrix.
    pub fn transform(&self, schema: &Schema, frame: &Frame) -> Result<Array2<f64>> {
        let index = check_frame_schema(schema, frame)?;
        if index.len() != self.steps.len() {
            return Err(Error::Internal(format!(
                "preprocessor has {} steps for a schema of {} fields",
                self.steps.len(),
                index.len()
            )));
        }
        let n = frame.n_rows();
        let d = self.n_outputs();
        let mut out = Array2::<f64>::zeros((n, d));
        let mut offset = 0;
        for (step, &ci) in self.steps.iter().zip(index.iter()) {
            let col = &frame.columns()[ci];
            let mask = frame.null_mask(ci);
            match step {
                Step::Numeric {
                    fill, center, scale, ..
                } => {
                    for r in 0..n {
                        let x = if mask.is_some_and(|m| m[r]) {
                            *fill
                        } else {
                            numeric_value(col, r)
                        };
                        out[[r, offset]] = (x - center) / scale;
                    }
                    offset += 1;
                }
                Step::OneHot {
                    field,
                    categories,
                    unknown_slot,
                    fill,
                } => {
                    let codes = category_codes(col, field)?;
                    let width = categories.len() + usize::from(*unknown_slot);
                    for (r, &code) in codes.iter().enumerate() {
                        // Missing/ignored values take the imputed slot if any; they (and codes
                        // past the slots) otherwise encode as all zeros.
                        let code = if mask.is_some_and(|m| m[r]) {
                            *fill
                        } else {
                            Some(code)
                        };
                        if let Some(code) = code
                            && (code as usize) < width
                        {
                            out[[r, offset + code as usize]] = 1.0;
                        }
                    }
                    offset += width;
                }
                Step::Ordinal {
                    field,
                    categories,
                    unknown_slot,
                    fill,
                } => {
                    let codes = category_codes(col, field)?;
                    let width = categories.len() + usize::from(*unknown_slot);
                    for (r, &code) in codes.iter().enumerate() {
                        out[[r, offset]] = ordinal_value(code, mask.is_some_and(|m| m[r]), width, *fill);
                    }
                    offset += 1;
                }
            }
        }
        Ok(out)
    }

    /// Transforms the rows `rows` of `frame` into `out`, feature-major: output column `j` of
    /// row `r` at `out[j * stride + (r - rows.start)]`, with exactly the values
    /// [`Preprocessor::transform`] gives. `index` maps each step to its frame column (from
    /// [`check_frame_schema`]); `out` holds `stride × n_outputs` values, `stride ≥
    /// rows.len()`. This is the batch prediction path ([`crate::kernel`]): a block at a time
    /// into a reused buffer.
    pub(crate) fn transform_block(
        &self,
        frame: &Frame,
        index: &[usize],
        rows: std::ops::Range<usize>,
        out: &mut [f64],
        stride: usize,
    ) -> Result<()> {
        let m = rows.len();
        if index.len() != self.steps.len()
            || stride < m
            || out.len() != stride * self.n_outputs()
            || rows.end > frame.n_rows()
        {
            return Err(Error::Internal(format!(
                "block transform of rows {rows:?} of {} into {} values with {} steps for {} fields",
                frame.n_rows(),
                out.len(),
                self.steps.len(),
                index.len()
            )));
        }
        let mut offset = 0;
        for (step, &ci) in self.steps.iter().zip(index) {
            let col = &frame.columns()[ci];
            if m == 1
                && let Step::Numeric {
                    fill, center, scale, ..
                } = step
            {
                // One row (a single-row request): the value alone, without a loop's set-up
                // per feature. The same value and arithmetic as below.
                let r = rows.start;
                let x = if frame.is_null(r, ci) {
                    *fill
                } else {
                    numeric_value(col, r)
                };
                out[offset * stride] = (x - center) / scale;
                offset += 1;
                continue;
            }
            let mask = frame.null_mask(ci).map(|m| &m[rows.clone()]);
            match step {
                Step::Numeric {
                    fill, center, scale, ..
                } => {
                    let dst = &mut out[offset * stride..offset * stride + m];
                    match col {
                        Column::Float(v) => {
                            let src = v.as_slice().map(|s| &s[rows.clone()]);
                            match (src, mask) {
                                (Some(src), None) => {
                                    for (o, x) in dst.iter_mut().zip(src) {
                                        *o = (x - center) / scale;
                                    }
                                }
                                _ => {
                                    for (i, o) in dst.iter_mut().enumerate() {
                                        let x = if mask.is_some_and(|mk| mk[i]) {
                                            *fill
                                        } else {
                                            v[rows.start + i]
                                        };
                                        *o = (x - center) / scale;
                                    }
                                }
                            }
                        }
                        _ => {
                            for (i, o) in dst.iter_mut().enumerate() {
                                let x = if mask.is_some_and(|mk| mk[i]) {
                                    *fill
                                } else {
                                    numeric_value(col, rows.start + i)
                                };
                                *o = (x - center) / scale;
                            }
                        }
                    }
                    offset += 1;
                }
                Step::OneHot {
                    field,
                    categories,
                    unknown_slot,
                    fill,
                } => {
                    let codes = category_codes(col, field)?;
                    let width = categories.len() + usize::from(*unknown_slot);
                    let dst = &mut out[offset * stride..(offset + width) * stride];
                    // Only the block's first `m` rows of each slot are read: clearing the whole
                    // `stride` was most of the time a one-row request spent here.
                    for slot in dst.chunks_mut(stride) {
                        slot[..m].fill(0.0);
                    }
                    for i in 0..m {
                        // As in `transform`: missing/ignored values take the imputed slot if
                        // any; they (and codes past the slots) otherwise encode as all zeros.
                        let code = if mask.is_some_and(|mk| mk[i]) {
                            *fill
                        } else {
                            Some(codes[rows.start + i])
                        };
                        if let Some(code) = code
                            && (code as usize) < width
                        {
                            dst[code as usize * stride + i] = 1.0;
                        }
                    }
                    offset += width;
                }
                Step::Ordinal {
                    field,
                    categories,
                    unknown_slot,
                    fill,
                } => {
                    let codes = category_codes(col, field)?;
                    let width = categories.len() + usize::from(*unknown_slot);
                    let dst = &mut out[offset * stride..offset * stride + m];
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = ordinal_value(codes[rows.start + i], mask.is_some_and(|mk| mk[i]), width, *fill);
                    }
                    offset += 1;
                }
            }
        }
        Ok(())
    }

    /// Adds to `z` the scores of a linear model over the preprocessed rows `rows` of `frame`
    /// without materializing them: `z[c * rows.len() + i] += Σ_j weights[j * k + c] · x_ij`,
    /// summed in feature order for every row. A numeric step contributes
    /// `(weights / scale) · (x − center)` (one multiplication instead of a division per value),
    /// a one-hot step the weight of the row's category only (the others multiply zero), so
    /// the scores agree with the design matrix's to rounding (about 1e-16 relative).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear_scores(
        &self,
        level: crate::kernel::simd::Level,
        frame: &Frame,
        index: &[usize],
        rows: std::ops::Range<usize>,
        weights: &[f64],
        k: usize,
        z: &mut [f64],
        stride: usize,
    ) -> Result<()> {
        let m = rows.len();
        if index.len() != self.steps.len()
            || weights.len() != k * self.n_outputs()
            || stride < m
            || z.len() < (k.max(1) - 1) * stride + m
            || rows.end > frame.n_rows()
        {
            return Err(Error::Internal(format!(
                "linear scores of rows {rows:?} of {} with {} weights × {k} scores into {} values",
                frame.n_rows(),
                weights.len(),
                z.len()
            )));
        }
        if k == 1 && self.linear_scores_columns(level, frame, index, rows.clone(), weights, &mut z[..m]) {
            return Ok(());
        }
        let mut offset = 0;
        for (step, &ci) in self.steps.iter().zip(index) {
            let col = &frame.columns()[ci];
            let mask = frame.null_mask(ci).map(|m| &m[rows.clone()]);
            match step {
                Step::Numeric {
                    fill, center, scale, ..
                } => {
                    for c in 0..k {
                        let w = weights[offset * k + c] / scale;
                        let zc = &mut z[c * stride..c * stride + m];
                        match (col, mask) {
                            (Column::Float(v), None) if v.as_slice().is_some() => {
                                let src = &v.as_slice().unwrap_or(&[])[rows.clone()];
                                crate::kernel::axpy_centered(level, zc, src, w, *center);
                            }
                            _ => {
                                // The same formula as the kernel's, row by row.
                                for (i, zr) in zc.iter_mut().enumerate() {
                                    let x = if mask.is_some_and(|mk| mk[i]) {
                                        *fill
                                    } else {
                                        numeric_value(col, rows.start + i)
                                    };
                                    *zr += w * (x - center);
                                }
                            }
                        }
                    }
                    offset += 1;
                }
                Step::OneHot {
                    field,
                    categories,
                    unknown_slot,
                    fill,
                } => {
                    let codes = category_codes(col, field)?;
                    let width = categories.len() + usize::from(*unknown_slot);
                    for i in 0..m {
                        let code = if mask.is_some_and(|mk| mk[i]) {
                            *fill
                        } else {
                            Some(codes[rows.start + i])
                        };
                        if let Some(code) = code
                            && (code as usize) < width
                        {
                            for c in 0..k {
                                z[c * stride + i] += weights[(offset + code as usize) * k + c];
                            }
                        }
                    }
                    offset += width;
                }
                Step::Ordinal {
                    field,
                    categories,
                    unknown_slot,
                    fill,
                } => {
                    let codes = category_codes(col, field)?;
                    let width = categories.len() + usize::from(*unknown_slot);
                    for i in 0..m {
                        let x =
                            ordinal_value(codes[rows.start + i], mask.is_some_and(|mk| mk[i]), width, *fill);
                        for c in 0..k {
                            z[c * stride + i] += weights[offset * k + c] * x;
                        }
                    }
                    offset += 1;
                }
            }
        }
        Ok(())
    }

    /// [`Preprocessor::linear_scores`] for one score when every step is numeric and reads a
    /// contiguous float column without missing values (the common case of a linear model on
    /// numeric features): all the columns in one pass over the rows, with the same operations
    /// in the same order per row. Returns false, having done nothing, for any other input.
    fn linear_scores_columns(
        &self,
        level: crate::kernel::simd::Level,
        frame: &Frame,
        index: &[usize],
        rows: std::ops::Range<usize>,
        weights: &[f64],
        z: &mut [f64],
    ) -> bool {
        let mut columns = Vec::with_capacity(self.steps.len());
        for ((step, &ci), &weight) in self.steps.iter().zip(index).zip(weights) {
            let Step::Numeric { center, scale, .. } = step else {
                return false;
            };
            if frame.null_mask(ci).is_some() {
                return false;
            }
            let Some(Column::Float(v)) = frame.columns().get(ci) else {
                return false;
            };
            let Some(src) = v.as_slice() else {
                return false;
            };
            columns.push((&src[rows.clone()], weight / scale, *center));
        }
        crate::kernel::axpy_centered_columns(level, z, &columns);
        true
    }
}

/// The codes of a categorical step's column; any other column is a schema mismatch.
fn category_codes<'a>(col: &'a Column, field: &str) -> Result<&'a ndarray::Array1<u32>> {
    match col {
        Column::Categorical(codes) => Ok(codes),
        _ => Err(Error::SchemaMismatch {
            reason: format!("field `{field}` must be categorical"),
        }),
    }
}

/// An ordinal step's value: the category code, or `fill` for a missing or ignored value and for
/// a code past the slots.
#[inline]
fn ordinal_value(code: u32, missing: bool, width: usize, fill: f64) -> f64 {
    if missing || code as usize >= width {
        fill
    } else {
        f64::from(code)
    }
}

/// The median of `values` (not empty): the middle value, or the mean of the two middle ones.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The most frequent of `values` (not empty); the smallest among ties.
fn most_frequent_value(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let (mut best, mut best_count) = (values[0], 0usize);
    let mut i = 0;
    while i < values.len() {
        let j = values[i..].iter().take_while(|&&v| v == values[i]).count().max(1);
        if j > best_count {
            (best, best_count) = (values[i], j);
        }
        i += j;
    }
    best
}

/// The most frequent code below `width` (the lowest among ties); `None` if there is none.
fn most_frequent_code(codes: impl Iterator<Item = u32>, width: usize) -> Option<u32> {
    let mut counts = vec![0usize; width];
    for c in codes {
        if let Some(n) = counts.get_mut(c as usize) {
            *n += 1;
        }
    }
    let (code, &n) = counts
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
    (n > 0).then_some(code as u32)
}

#[cfg(test)]
impl Preprocessor {
    fn without_options(mut self) -> Preprocessor {
        self.options = None;
        self
    }
}

/// Row `r` of a numeric column as a float (ints converted, bools 0 or 1); NaN for a
/// categorical or string column. The null mask is the caller's to check.
pub(crate) fn numeric_value(col: &Column, r: usize) -> f64 {
    match col {
        Column::Float(v) => v[r],
        Column::Int(v) => v[r] as f64,
        Column::Bool(v) => f64::from(u8::from(v[r])),
        // Only numeric columns reach here (categorical and string are handled by the caller).
        Column::Categorical(_) | Column::String(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Field, Value};

    #[test]
    fn scales_imputes_and_one_hot_encodes() {
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float).nullable(),
            Field::new("b", DataType::Bool),
            Field::new("c", DataType::categorical(["a", "b", "c"]).unwrap()).nullable(),
        ])
        .unwrap();
        let rows = vec![
            vec![Value::from(1.0), Value::from(true), Value::from("a")],
            vec![Value::from(3.0), Value::from(false), Value::from("c")],
            vec![Value::Null, Value::from(true), Value::Null],
        ];
        let frame = Frame::from_rows(schema.clone(), &rows).unwrap();
        let p = Preprocessor::fit(
            &frame,
            PreprocessOptions {
                standardize: true,
                ..PreprocessOptions::default()
            },
        )
        .unwrap();
        assert_eq!(p.output_names(), ["x", "b", "c=a", "c=b", "c=c"]);
        let m = p.transform(&schema, &frame).unwrap();
        // x: mean of present values 2, population sd 1 → (1-2)/1 = -1, (3-2)/1 = 1, missing → mean → 0.
        // b: values 1,0,1 → mean 2/3, sd sqrt(2/9) → (1-2/3)/0.4714 = 0.7071, (0-2/3)/0.4714 = -1.4142.
        let sd_b = (2.0f64 / 9.0).sqrt();
        let expected = [
            [-1.0, (1.0 - 2.0 / 3.0) / sd_b, 1.0, 0.0, 0.0],
            [1.0, (0.0 - 2.0 / 3.0) / sd_b, 0.0, 0.0, 1.0],
            [0.0, (1.0 - 2.0 / 3.0) / sd_b, 0.0, 0.0, 0.0],
        ];
        for r in 0..3 {
            for c in 0..5 {
                assert!(
                    (m[[r, c]] - expected[r][c]).abs() < 1e-12,
                    "({r},{c}) {} vs {}",
                    m[[r, c]],
                    expected[r][c]
                );
            }
        }
    }

    fn fit_with(frame: &Frame, impute: Imputation, encode: CategoricalEncoding) -> Preprocessor {
        let options = PreprocessOptions {
            standardize: false,
            choice: Preprocessing { impute, encode },
        };
        Preprocessor::fit(frame, options).unwrap()
    }

    /// x: 5, 1, 2, 2, missing, 10; c: b, a, b, missing, c, b (vocabulary a, b, c, d).
    fn imputation_frame(unseen: UnseenPolicy) -> (Schema, Frame) {
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float).nullable(),
            Field::new(
                "c",
                DataType::Categorical {
                    vocabulary: crate::Vocabulary::new(["a", "b", "c", "d"]).unwrap(),
                    unseen,
                },
            )
            .nullable(),
        ])
        .unwrap();
        let rows: Vec<Vec<Value>> = [
            (Some(5.0), Some("b")),
            (Some(1.0), Some("a")),
            (Some(2.0), Some("b")),
            (Some(2.0), None),
            (None, Some("c")),
            (Some(10.0), Some("b")),
        ]
        .into_iter()
        .map(|(x, c)| {
            vec![
                x.map_or(Value::Null, Value::from),
                c.map_or(Value::Null, Value::from),
            ]
        })
        .collect();
        let frame = Frame::from_rows(schema.clone(), &rows).unwrap();
        (schema, frame)
    }

    #[test]
    fn numeric_imputation_strategies_fill_with_mean_median_and_mode() {
        let (schema, frame) = imputation_frame(UnseenPolicy::Error);
        // Present x: 5, 1, 2, 2, 10 → mean 4, median 2 (sorted 1 2 2 5 10), mode 2.
        for (impute, expected) in [
            (Imputation::Mean, 4.0),
            (Imputation::Median, 2.0),
            (Imputation::MostFrequent, 2.0),
        ] {
            let p = fit_with(&frame, impute, CategoricalEncoding::OneHot);
            let m = p.transform(&schema, &frame).unwrap();
            assert_eq!(m[[4, 0]], expected, "{impute:?}");
            assert_eq!(m[[0, 0]], 5.0);
        }
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(
            most_frequent_value(vec![3.0, 1.0, 3.0, 1.0, 7.0]),
            1.0,
            "ties → smallest"
        );
    }

    #[test]
    fn most_frequent_imputes_categories_too() {
        let (schema, frame) = imputation_frame(UnseenPolicy::Error);
        // Row 3 has no category; b is the most frequent (3 of 5).
        let mean = fit_with(&frame, Imputation::Mean, CategoricalEncoding::OneHot);
        let m = mean.transform(&schema, &frame).unwrap();
        assert_eq!(m.row(3).to_vec()[1..], [0.0, 0.0, 0.0, 0.0]);
        let mode = fit_with(&frame, Imputation::MostFrequent, CategoricalEncoding::OneHot);
        let m = mode.transform(&schema, &frame).unwrap();
        assert_eq!(m.row(3).to_vec()[1..], [0.0, 1.0, 0.0, 0.0]);
        assert_eq!(m.row(1).to_vec()[1..], [1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn ordinal_encoding_uses_vocabulary_codes_and_the_unknown_slot() {
        let (schema, frame) = imputation_frame(UnseenPolicy::MapToUnknown);
        let p = fit_with(&frame, Imputation::Mean, CategoricalEncoding::Ordinal);
        assert_eq!(p.n_outputs(), 2);
        assert_eq!(p.output_names(), ["x", "c"]);
        let m = p.transform(&schema, &frame).unwrap();
        // b a b missing c b → 1 0 1 -1 2 1.
        assert_eq!(m.column(1).to_vec(), [1.0, 0.0, 1.0, -1.0, 2.0, 1.0]);
        let p = fit_with(&frame, Imputation::MostFrequent, CategoricalEncoding::Ordinal);
        assert_eq!(p.transform(&schema, &frame).unwrap()[[3, 1]], 1.0);
        // An unseen category maps to the unknown slot, code 4 (after a b c d).
        let new = Frame::from_rows(schema.clone(), &[vec![Value::from(1.0), Value::from("zzz")]]).unwrap();
        assert_eq!(p.transform(&schema, &new).unwrap()[[0, 1]], 4.0);
        // Under "ignore" an unseen category is missing: the imputed code.
        let (schema, frame) = imputation_frame(UnseenPolicy::Ignore);
        let p = fit_with(&frame, Imputation::MostFrequent, CategoricalEncoding::Ordinal);
        let new = Frame::from_rows(schema.clone(), &[vec![Value::from(1.0), Value::from("zzz")]]).unwrap();
        assert_eq!(p.transform(&schema, &new).unwrap()[[0, 1]], 1.0);
    }

    #[test]
    fn preprocessors_saved_before_the_options_existed_still_load() {
        // The stored form of a version-1 model's preprocessing, as written before imputation
        // and encoding were choices: no `options`, no `fill` on one-hot steps.
        let old = r#"{"steps":[{"kind":"numeric","field":"x","fill":4.0,"center":0.0,"scale":1.0},
            {"kind":"one_hot","field":"c","categories":["a","b","c","d"],"unknown_slot":false}]}"#;
        let p: Preprocessor = serde_json::from_str(old).unwrap();
        let (schema, frame) = imputation_frame(UnseenPolicy::Error);
        assert_eq!(
            p,
            fit_with(&frame, Imputation::Mean, CategoricalEncoding::OneHot).without_options()
        );
        assert_eq!(p.options(), PreprocessOptions::default());
        let m = p.transform(&schema, &frame).unwrap();
        assert_eq!(m.row(3).to_vec(), [2.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(m.row(4).to_vec(), [4.0, 0.0, 0.0, 1.0, 0.0]);
        // And the new form round-trips.
        let new = fit_with(&frame, Imputation::MostFrequent, CategoricalEncoding::Ordinal);
        let back: Preprocessor = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn preprocessing_choices_parse_from_text_and_serde() {
        assert_eq!("median".parse::<Imputation>().unwrap(), Imputation::Median);
        assert_eq!(
            "ordinal".parse::<CategoricalEncoding>().unwrap(),
            CategoricalEncoding::Ordinal
        );
        let err = "avg".parse::<Imputation>().unwrap_err().to_string();
        assert!(err.contains("mean, median or most_frequent"), "{err}");
        let p: Preprocessing =
            serde_json::from_str(r#"{"impute":"most_frequent","encode":"onehot"}"#).unwrap();
        assert_eq!(p.impute, Imputation::MostFrequent);
        assert!(serde_json::from_str::<Preprocessing>(r#"{"imput":"mean"}"#).is_err());
    }

    #[test]
    fn string_features_are_refused_with_the_fix() {
        let schema = Schema::new(vec![Field::new("id", DataType::String)]).unwrap();
        let frame = Frame::from_rows(schema, &[vec![Value::from("x")]]).unwrap();
        let err = Preprocessor::fit(&frame, PreprocessOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("declare it categorical or drop it"),
            "{err}"
        );
    }

    #[test]
    fn a_block_over_reused_scratch_holds_the_rows_transform_gives() {
        // The block's scratch is reused between predictions: the one-hot slots of the rows in
        // the block must be cleared even though the rest of the block is left as it was.
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float),
            Field::new("c", DataType::categorical(["a", "b", "c"]).unwrap()).nullable(),
        ])
        .unwrap();
        let rows = vec![
            vec![Value::from(1.0), Value::from("b")],
            vec![Value::from(2.0), Value::Null],
            vec![Value::from(4.0), Value::from("a")],
        ];
        let frame = Frame::from_rows(schema.clone(), &rows).unwrap();
        let p = Preprocessor::fit(&frame, PreprocessOptions::default()).unwrap();
        let expected = p.transform(&schema, &frame).unwrap();
        let index = check_frame_schema(&schema, &frame).unwrap();
        let stride = 8;
        let mut block = vec![7.0; stride * p.n_outputs()];
        p.transform_block(&frame, &index, 0..3, &mut block, stride)
            .unwrap();
        for r in 0..3 {
            for f in 0..p.n_outputs() {
                assert_eq!(block[f * stride + r], expected[[r, f]], "row {r}, output {f}");
            }
        }
        // Rows 1..3 alone land at the block's start.
        let mut block = vec![7.0; stride * p.n_outputs()];
        p.transform_block(&frame, &index, 1..3, &mut block, stride)
            .unwrap();
        for r in 0..2 {
            for f in 0..p.n_outputs() {
                assert_eq!(
                    block[f * stride + r],
                    expected[[r + 1, f]],
                    "row {}, output {f}",
                    r + 1
                );
            }
        }
    }
}
