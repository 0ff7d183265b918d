//! Preprocessing learned at fit time and stored with the model: mean imputation and standard
//! scaling of numeric fields, one-hot encoding of categorical fields.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::frame::{Column, Frame};
use crate::model::check_frame_schema;
use crate::schema::{DataType, Schema, UnseenPolicy};

/// How numeric fields are prepared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreprocessOptions {
    /// Standardize numeric fields to zero mean and unit variance (what linear models need;
    /// trees do not). Default `false`.
    pub standardize: bool,
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
    /// it); a missing or ignored value gives all zeros.
    OneHot {
        field: String,
        categories: Vec<String>,
        unknown_slot: bool,
    },
}

/// The fitted preprocessing of a model: a raw frame in, a dense `f64` design matrix out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    steps: Vec<Step>,
}

impl Preprocessor {
    /// Learns the preprocessing of every field of `frame` from its values.
    ///
    /// Missing numeric values are imputed with the training mean (scikit-learn's
    /// `SimpleImputer(strategy="mean")`); standardization uses the population standard deviation
    /// and leaves constant fields unscaled, as scikit-learn's `StandardScaler` does. String
    /// fields cannot be features and are refused with the fix named.
    pub fn fit(frame: &Frame, options: PreprocessOptions) -> Result<Preprocessor> {
        let mut steps = Vec::with_capacity(frame.schema().len());
        for (i, field) in frame.schema().fields().iter().enumerate() {
            let mask = frame.null_mask(i);
            let present = |r: usize| !mask.is_some_and(|m| m[r]);
            let step = match (&field.dtype, &frame.columns()[i]) {
                (DataType::Categorical { vocabulary, unseen }, _) => Step::OneHot {
                    field: field.name.clone(),
                    categories: vocabulary.values().to_vec(),
                    unknown_slot: *unseen == UnseenPolicy::MapToUnknown,
                },
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
                    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                    let std = var.sqrt();
                    let (center, scale) = if options.standardize {
                        (mean, if std > 0.0 && std.is_finite() { std } else { 1.0 })
                    } else {
                        (0.0, 1.0)
                    };
                    Step::Numeric {
                        field: field.name.clone(),
                        fill: mean,
                        center,
                        scale,
                    }
                }
            };
            steps.push(step);
        }
        Ok(Preprocessor { steps })
    }

    /// Number of output columns.
    pub fn n_outputs(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Numeric { .. } => 1,
                Step::OneHot {
                    categories,
                    unknown_slot,
                    ..
                } => categories.len() + usize::from(*unknown_slot),
            })
            .sum()
    }

    /// Names of the output columns: the field name for numeric fields, `field=category` for
    /// one-hot columns (`field=__unknown__` for the unknown slot).
    pub fn output_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_outputs());
        for s in &self.steps {
            match s {
                Step::Numeric { field, .. } => names.push(field.clone()),
                Step::OneHot {
                    field,
                    categories,
                    unknown_slot,
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
        for (step, &ci) in self.steps.iter().zip(&index) {
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
                } => {
                    let Column::Categorical(codes) = col else {
                        return Err(Error::SchemaMismatch {
                            reason: format!("field `{field}` must be categorical"),
                        });
                    };
                    let width = categories.len() + usize::from(*unknown_slot);
                    for (r, &code) in codes.iter().enumerate() {
                        // Missing/ignored values (and codes past the slots) encode as all zeros.
                        if !mask.is_some_and(|m| m[r]) && (code as usize) < width {
                            out[[r, offset + code as usize]] = 1.0;
                        }
                    }
                    offset += width;
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
                } => {
                    let Column::Categorical(codes) = col else {
                        return Err(Error::SchemaMismatch {
                            reason: format!("field `{field}` must be categorical"),
                        });
                    };
                    let width = categories.len() + usize::from(*unknown_slot);
                    let dst = &mut out[offset * stride..(offset + width) * stride];
                    dst.fill(0.0);
                    for i in 0..m {
                        let code = codes[rows.start + i] as usize;
                        // As in `transform`: missing/ignored values and codes past the slots
                        // encode as all zeros.
                        if !mask.is_some_and(|mk| mk[i]) && code < width {
                            dst[code * stride + i] = 1.0;
                        }
                    }
                    offset += width;
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
    pub(crate) fn linear_scores(
        &self,
        frame: &Frame,
        index: &[usize],
        rows: std::ops::Range<usize>,
        weights: &[f64],
        k: usize,
        z: &mut [f64],
    ) -> Result<()> {
        let m = rows.len();
        if index.len() != self.steps.len()
            || weights.len() != k * self.n_outputs()
            || z.len() != k * m
            || rows.end > frame.n_rows()
        {
            return Err(Error::Internal(format!(
                "linear scores of rows {rows:?} of {} with {} weights × {k} scores into {} values",
                frame.n_rows(),
                weights.len(),
                z.len()
            )));
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
                        let zc = &mut z[c * m..(c + 1) * m];
                        match (col, mask) {
                            (Column::Float(v), None) if v.as_slice().is_some() => {
                                let src = &v.as_slice().unwrap_or(&[])[rows.clone()];
                                for (zr, x) in zc.iter_mut().zip(src) {
                                    *zr += w * (x - center);
                                }
                            }
                            _ => {
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
                } => {
                    let Column::Categorical(codes) = col else {
                        return Err(Error::SchemaMismatch {
                            reason: format!("field `{field}` must be categorical"),
                        });
                    };
                    let width = categories.len() + usize::from(*unknown_slot);
                    for i in 0..m {
                        let code = codes[rows.start + i] as usize;
                        if !mask.is_some_and(|mk| mk[i]) && code < width {
                            for c in 0..k {
                                z[c * m + i] += weights[(offset + code) * k + c];
                            }
                        }
                    }
                    offset += width;
                }
            }
        }
        Ok(())
    }
}

fn numeric_value(col: &Column, r: usize) -> f64 {
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
        let p = Preprocessor::fit(&frame, PreprocessOptions { standardize: true }).unwrap();
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
}
