//! Whole columns at once ([`Frame::from_column_sources`]): numpy arrays and pandas categoricals
//! handed over by a binding, without a conversion step per cell.
//!
//! The values are converted exactly as [`FrameBuilder`] converts the same cells ([`ColumnSource::cell`]
//! says which cell each value is), but a column at a time: numbers are copied into the column
//! buffer, and a category is looked up once per distinct value (each category of a pandas
//! categorical, each distinct number given for a categorical field) rather than once per cell.
//! Any combination of field type and column kind without such a loop goes through the per-cell
//! conversion of that column alone. When a value does not fit its field, the frame is built
//! again row by row through [`FrameBuilder`], so that the problems reported (and their order)
//! are exactly the row-by-row path's.

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::{Array1, ArrayView1};

use super::builder::{Cell, FrameBuilder};
use super::cell::{ColumnBuilder, Position, float_to_int};
use super::{Column, Frame, MISSING_CODE};
use crate::error::{Error, Result};
use crate::schema::{DataType, Field, Schema};
use crate::validation::ValidationErrors;

/// One input column handed over whole, in its own element type (views may be strided: a
/// column of a row-major matrix).
#[derive(Clone, Debug)]
pub enum ColumnSource<'a> {
    /// Floats; NaN is missing (numpy's and pandas' missing value).
    Float64(ArrayView1<'a, f64>),
    /// Floats, read as their (exact) float64 values; NaN is missing.
    Float32(ArrayView1<'a, f32>),
    /// Integers.
    Int64(ArrayView1<'a, i64>),
    /// Integers, read as int64.
    Int32(ArrayView1<'a, i32>),
    /// Booleans.
    Bool(ArrayView1<'a, bool>),
    /// Codes into `categories` (a pandas categorical): a code names its category's text; a
    /// negative or out-of-range code is missing.
    Codes {
        /// One code per row.
        codes: ArrayView1<'a, i64>,
        /// The category texts the codes index.
        categories: &'a [String],
    },
    /// Typed values, one per row.
    Cells(&'a [Cell<'a>]),
}

impl ColumnSource<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnSource::Float64(v) => v.len(),
            ColumnSource::Float32(v) => v.len(),
            ColumnSource::Int64(v) => v.len(),
            ColumnSource::Int32(v) => v.len(),
            ColumnSource::Bool(v) => v.len(),
            ColumnSource::Codes { codes, .. } => codes.len(),
            ColumnSource::Cells(v) => v.len(),
        }
    }

    /// True when the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `row` as the cell [`FrameBuilder::push_row`] would be given (`row` must be
    /// below [`ColumnSource::len`]): the definition of what each value means.
    pub fn cell(&self, row: usize) -> Cell<'_> {
        let float = |x: f64| if x.is_nan() { Cell::Missing } else { Cell::Float(x) };
        match self {
            ColumnSource::Float64(v) => float(v[row]),
            ColumnSource::Float32(v) => float(f64::from(v[row])),
            ColumnSource::Int64(v) => Cell::Int(v[row]),
            ColumnSource::Int32(v) => Cell::Int(i64::from(v[row])),
            ColumnSource::Bool(v) => Cell::Bool(v[row]),
            ColumnSource::Codes { codes, categories } => {
                match usize::try_from(codes[row]).ok().and_then(|c| categories.get(c)) {
                    Some(category) => Cell::Str(category),
                    None => Cell::Missing,
                }
            }
            ColumnSource::Cells(v) => v[row],
        }
    }
}

impl Frame {
    /// Builds a frame from one whole column per schema field, in field order, with the values
    /// and problems of pushing [`ColumnSource::cell`] row by row into a [`FrameBuilder`]: the
    /// same frame when every value fits, otherwise [`Error::Validation`] with every problem
    /// (each with its row). Columns of different lengths, or a column count other than the
    /// schema's, are [`Error::SchemaMismatch`].
    ///
    /// ```
    /// use ml_core::frame::ColumnSource;
    /// use ml_core::{DataType, Field, Frame, Schema, Value};
    /// let schema = Schema::new(vec![
    ///     Field::new("x", DataType::Float).nullable(),
    ///     Field::new("plan", DataType::categorical(["basic", "pro"])?),
    /// ])?;
    /// let x = [1.5, f64::NAN];
    /// let (codes, categories) = ([1_i64, 0], ["basic".to_string(), "pro".to_string()]);
    /// let frame = Frame::from_column_sources(
    ///     schema,
    ///     &[
    ///         ColumnSource::Float64((&x[..]).into()),
    ///         ColumnSource::Codes { codes: (&codes[..]).into(), categories: &categories },
    ///     ],
    /// )?;
    /// assert_eq!(frame.value(1, 0), Some(Value::Null));
    /// assert_eq!(frame.value(0, 1), Some(Value::Str("pro".into())));
    /// # Ok::<(), ml_core::Error>(())
    /// ```
    pub fn from_column_sources(
        schema: impl Into<Arc<Schema>>,
        sources: &[ColumnSource<'_>],
    ) -> Result<Frame> {
        let schema = schema.into();
        if sources.len() != schema.len() {
            return Err(Error::SchemaMismatch {
                reason: format!("got {} columns for {} fields", sources.len(), schema.len()),
            });
        }
        let n_rows = sources.first().map_or(0, ColumnSource::len);
        for (field, s) in schema.fields().iter().zip(sources) {
            if s.len() != n_rows {
                return Err(Error::SchemaMismatch {
                    reason: format!(
                        "column `{}` has {} values, the first column {n_rows}",
                        field.name,
                        s.len()
                    ),
                });
            }
        }
        let mut columns = Vec::with_capacity(sources.len());
        let mut nulls = Vec::with_capacity(sources.len());
        for (field, source) in schema.fields().iter().zip(sources) {
            match whole_column(field, source, n_rows) {
                Some((column, mask)) => {
                    columns.push(column);
                    nulls.push(mask);
                }
                None => return by_rows(schema, sources, n_rows),
            }
        }
        Ok(Frame {
            schema,
            columns,
            nulls,
            n_rows,
            ignored_columns: Vec::new(),
        })
    }
}

/// The row-by-row path: every problem, with its row, or the frame.
fn by_rows(schema: Arc<Schema>, sources: &[ColumnSource<'_>], n_rows: usize) -> Result<Frame> {
    let mut builder = FrameBuilder::new(schema.clone(), n_rows);
    let mut cells = Vec::with_capacity(schema.len());
    let mut problems = ValidationErrors::default();
    for r in 0..n_rows {
        cells.clear();
        cells.extend(sources.iter().map(|s| s.cell(r)));
        if let Err(errors) = builder.push_row(&cells) {
            for mut e in errors {
                e.row = Some(r);
                problems.push(e);
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Validation(problems));
    }
    Ok(builder.finish())
}

type Converted = (Column, Option<Vec<bool>>);

/// One field's column and null mask (`None` when it has no missing value, as
/// [`ColumnBuilder`] leaves it), or `None` when a value does not fit the field.
fn whole_column(field: &Field, source: &ColumnSource<'_>, n: usize) -> Option<Converted> {
    use ColumnSource as S;
    match (&field.dtype, source) {
        (DataType::Float, S::Float64(v)) => floats(field, v.to_vec()),
        (DataType::Float, S::Float32(v)) => floats(field, v.iter().map(|&x| f64::from(x)).collect()),
        (DataType::Float, S::Int64(v)) => Some((Column::Float(v.iter().map(|&i| i as f64).collect()), None)),
        (DataType::Float, S::Int32(v)) => {
            Some((Column::Float(v.iter().map(|&i| f64::from(i)).collect()), None))
        }
        (DataType::Int, S::Int64(v)) => Some((Column::Int(Array1::from(v.to_vec())), None)),
        (DataType::Int, S::Int32(v)) => Some((Column::Int(v.iter().map(|&i| i64::from(i)).collect()), None)),
        (DataType::Int, S::Float64(v)) => ints(field, v.iter().copied(), n),
        (DataType::Int, S::Float32(v)) => ints(field, v.iter().map(|&x| f64::from(x)), n),
        (DataType::Bool, S::Bool(v)) => Some((Column::Bool(Array1::from(v.to_vec())), None)),
        (DataType::Bool, S::Int64(v)) => bools(v.iter().copied()),
        (DataType::Bool, S::Int32(v)) => bools(v.iter().map(|&i| i64::from(i))),
        (DataType::Categorical { .. }, S::Codes { codes, categories }) => {
            // Each category (and "missing") is looked up once, when first met.
            let mut table: Vec<Option<Outcome>> = vec![None; categories.len()];
            let mut missing = None;
            categorical(
                n,
                codes.iter().map(
                    |&c| match usize::try_from(c).ok().filter(|&c| c < categories.len()) {
                        Some(c) => *table[c].get_or_insert_with(|| resolve(field, Cell::Str(&categories[c]))),
                        None => *missing.get_or_insert_with(|| resolve(field, Cell::Missing)),
                    },
                ),
            )
        }
        (DataType::Categorical { .. }, S::Int64(v)) => {
            let mut memo = IntMemo::default();
            categorical(n, v.iter().map(|&i| memo.get(field, i)))
        }
        (DataType::Categorical { .. }, S::Int32(v)) => {
            let mut memo = IntMemo::default();
            categorical(n, v.iter().map(|&i| memo.get(field, i64::from(i))))
        }
        (DataType::Categorical { .. }, S::Float64(v)) => {
            let mut memo = FloatMemo::default();
            categorical(n, v.iter().map(|&x| memo.get(field, x)))
        }
        (DataType::Categorical { .. }, S::Float32(v)) => {
            let mut memo = FloatMemo::default();
            categorical(n, v.iter().map(|&x| memo.get(field, f64::from(x))))
        }
        (DataType::Categorical { .. }, S::Bool(v)) => {
            let outcomes = [
                resolve(field, Cell::Bool(false)),
                resolve(field, Cell::Bool(true)),
            ];
            categorical(n, v.iter().map(|&b| outcomes[usize::from(b)]))
        }
        _ => by_cells(field, source, n),
    }
}

/// Any column, cell by cell through the same conversion as [`FrameBuilder`].
fn by_cells(field: &Field, source: &ColumnSource<'_>, n: usize) -> Option<Converted> {
    let mut builder = ColumnBuilder::new(field, n);
    let mut errors = ValidationErrors::default();
    for r in 0..n {
        builder.push(
            field,
            source.cell(r).as_ref(),
            Position { row: r, line: None },
            &mut errors,
        );
        if !errors.is_empty() {
            return None;
        }
    }
    Some(builder.finish())
}

/// A float field's values: NaN is missing (allowed in a nullable field, stored as
/// [`f64::NAN`] like the builder's placeholder), infinities do not fit.
fn floats(field: &Field, mut values: Vec<f64>) -> Option<Converted> {
    if values.iter().all(|x| x.is_finite()) {
        return Some((Column::Float(values.into()), None));
    }
    let mut mask = vec![false; values.len()];
    for (x, null) in values.iter_mut().zip(&mut mask) {
        if x.is_nan() && field.nullable {
            *x = f64::NAN;
            *null = true;
        } else if !x.is_finite() {
            return None;
        }
    }
    Some((Column::Float(values.into()), Some(mask)))
}

/// An int field's values from floats: NaN is missing (stored as 0), other values must be
/// whole numbers within int64.
fn ints(field: &Field, values: impl Iterator<Item = f64>, n: usize) -> Option<Converted> {
    let mut out = Vec::with_capacity(n);
    let mut mask: Option<Vec<bool>> = None;
    for (r, x) in values.enumerate() {
        if x.is_nan() {
            if !field.nullable {
                return None;
            }
            mask.get_or_insert_with(|| vec![false; n])[r] = true;
            out.push(0);
        } else {
            out.push(float_to_int(x)?);
        }
    }
    Some((Column::Int(out.into()), mask))
}

/// A bool field's values from integers: 0 and 1 only.
fn bools(values: impl Iterator<Item = i64>) -> Option<Converted> {
    let out = values
        .map(|i| match i {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        })
        .collect::<Option<Vec<bool>>>()?;
    Some((Column::Bool(out.into()), None))
}

/// What one value becomes in a categorical field.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Code(u32),
    /// Missing, or an unseen category under [`crate::UnseenPolicy::Ignore`].
    Null,
    /// The value does not fit the field.
    Problem,
}

/// What `cell` becomes in `field`: the per-cell conversion itself, run on that one cell.
fn resolve(field: &Field, cell: Cell<'_>) -> Outcome {
    let mut builder = ColumnBuilder::new(field, 1);
    let mut errors = ValidationErrors::default();
    builder.push(field, cell.as_ref(), Position { row: 0, line: None }, &mut errors);
    if !errors.is_empty() {
        return Outcome::Problem;
    }
    match builder.finish() {
        (_, Some(_)) => Outcome::Null,
        (Column::Categorical(codes), None) if codes.len() == 1 => Outcome::Code(codes[0]),
        _ => Outcome::Problem,
    }
}

/// A categorical column from each row's outcome (`None` at the first problem).
fn categorical(n: usize, outcomes: impl Iterator<Item = Outcome>) -> Option<Converted> {
    let mut codes = Vec::with_capacity(n);
    let mut mask: Option<Vec<bool>> = None;
    for (r, outcome) in outcomes.enumerate() {
        match outcome {
            Outcome::Code(c) => codes.push(c),
            Outcome::Null => {
                mask.get_or_insert_with(|| vec![false; n])[r] = true;
                codes.push(MISSING_CODE);
            }
            Outcome::Problem => return None,
        }
    }
    Some((Column::Categorical(codes.into()), mask))
}

/// Outcomes of integers given for a categorical field. An integer the vocabulary knows takes
/// its code from the vocabulary's own integer table (as the per-cell conversion does); the
/// others (unseen values, errors) are resolved once each and remembered.
#[derive(Default)]
struct IntMemo {
    other: HashMap<i64, Outcome>,
}

impl IntMemo {
    fn get(&mut self, field: &Field, i: i64) -> Outcome {
        if let DataType::Categorical { vocabulary, .. } = &field.dtype
            && let Some(c) = vocabulary.code_of_int(i)
        {
            return Outcome::Code(c);
        }
        *self
            .other
            .entry(i)
            .or_insert_with(|| resolve(field, Cell::Int(i)))
    }
}

/// Outcomes of floats given for a categorical field. A whole number names the category of its
/// integer text, exactly as the integer does, so it shares the integers' memo.
#[derive(Default)]
struct FloatMemo {
    ints: IntMemo,
    missing: Option<Outcome>,
    other: HashMap<u64, Outcome>,
}

impl FloatMemo {
    fn get(&mut self, field: &Field, x: f64) -> Outcome {
        if x.is_nan() {
            return *self.missing.get_or_insert_with(|| resolve(field, Cell::Missing));
        }
        match float_to_int(x) {
            Some(i) => self.ints.get(field, i),
            None => *self
                .other
                .entry(x.to_bits())
                .or_insert_with(|| resolve(field, Cell::Float(x))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::schema::{UnseenPolicy, Vocabulary};
    use crate::validation::Problem;

    fn categorical(values: &[&str], unseen: UnseenPolicy) -> DataType {
        DataType::Categorical {
            vocabulary: Vocabulary::new(values.iter().copied()).unwrap(),
            unseen,
        }
    }

    /// The reference: the cells pushed row by row into a [`FrameBuilder`], every problem with
    /// its row (how the Python binding built frames before whole columns).
    fn row_by_row(schema: &Arc<Schema>, sources: &[ColumnSource<'_>]) -> Result<Frame> {
        let n = sources.first().map_or(0, ColumnSource::len);
        let mut builder = FrameBuilder::new(schema.clone(), n);
        let mut problems = ValidationErrors::default();
        for r in 0..n {
            let cells: Vec<Cell<'_>> = sources.iter().map(|s| s.cell(r)).collect();
            if let Err(errors) = builder.push_row(&cells) {
                for mut e in errors {
                    e.row = Some(r);
                    problems.push(e);
                }
            }
        }
        if problems.is_empty() {
            Ok(builder.finish())
        } else {
            Err(Error::Validation(problems))
        }
    }

    /// Frames equal to the bit (NaN placeholders included).
    fn assert_same(got: &Result<Frame>, want: &Result<Frame>, what: &str) {
        match (got, want) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.n_rows(), b.n_rows(), "{what}");
                for (i, (x, y)) in a.columns().iter().zip(b.columns()).enumerate() {
                    match (x, y) {
                        (Column::Float(x), Column::Float(y)) => {
                            let bits = |v: &Array1<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(x), bits(y), "{what}: column {i}");
                        }
                        _ => assert_eq!(x, y, "{what}: column {i}"),
                    }
                    assert_eq!(a.null_mask(i), b.null_mask(i), "{what}: null mask {i}");
                }
            }
            (Err(Error::Validation(a)), Err(Error::Validation(b))) => assert_eq!(a, b, "{what}"),
            _ => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn hand_built_columns_read_as_expected() {
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float).nullable(),
            Field::new("n", DataType::Int).nullable(),
            Field::new("c", categorical(&["1", "2", "x"], UnseenPolicy::Error)).nullable(),
            Field::new("k", categorical(&["a", "b"], UnseenPolicy::MapToUnknown)),
            Field::new("f", DataType::Bool),
        ])
        .unwrap();
        let x = [1.5_f32, f32::NAN, -2.0];
        let n = [3.0, f64::NAN, -0.0];
        let c = [2.0, 1.0, f64::NAN];
        let k_codes = [1_i64, -1, 2];
        let k_categories = ["b".to_string(), "a".to_string(), "zzz".to_string()];
        let f = [1_i32, 0, 1];
        let sources = [
            ColumnSource::Float32((&x[..]).into()),
            ColumnSource::Float64((&n[..]).into()),
            ColumnSource::Float64((&c[..]).into()),
            ColumnSource::Codes {
                codes: (&k_codes[..]).into(),
                categories: &k_categories,
            },
            ColumnSource::Int32((&f[..]).into()),
        ];
        // The missing `k` in row 1 is refused (not nullable); without it the frame builds.
        let err = Frame::from_column_sources(schema.clone(), &sources).unwrap_err();
        let Error::Validation(problems) = err else {
            panic!("{err:?}")
        };
        assert_eq!(problems.errors.len(), 1, "{problems}");
        assert_eq!(
            (problems.errors[0].field.as_str(), problems.errors[0].row),
            ("k", Some(1))
        );
        assert_eq!(problems.errors[0].problem, Problem::MissingValue);
        let k_codes = [1_i64, 0, 2];
        let sources = [
            sources[0].clone(),
            sources[1].clone(),
            sources[2].clone(),
            ColumnSource::Codes {
                codes: (&k_codes[..]).into(),
                categories: &k_categories,
            },
            sources[4].clone(),
        ];
        let frame = Frame::from_column_sources(schema, &sources).unwrap();
        assert!(
            matches!(&frame.columns()[0], Column::Float(v) if v[0] == 1.5 && v[1].is_nan() && v[2] == -2.0)
        );
        assert_eq!(frame.null_mask(0), Some(&[false, true, false][..]));
        assert_eq!(frame.columns()[1], Column::Int(ndarray::array![3, 0, 0]));
        assert_eq!(frame.null_mask(1), Some(&[false, true, false][..]));
        // 2.0 names the category "2" (code 1), 1.0 the category "1" (code 0).
        assert_eq!(
            frame.columns()[2],
            Column::Categorical(ndarray::array![1, 0, MISSING_CODE])
        );
        // Codes 1, 0, 2 name "a" (code 0 of the field), "b" (1) and "zzz" (unseen: the unknown
        // code, 2).
        assert_eq!(frame.columns()[3], Column::Categorical(ndarray::array![0, 1, 2]));
        assert_eq!(frame.null_mask(3), None);
        assert_eq!(
            frame.columns()[4],
            Column::Bool(ndarray::array![true, false, true])
        );
    }

    /// One random column of the kind `kind` with values that fit most fields some of the time:
    /// NaN, infinities, whole and fractional numbers, codes in and out of range, known and
    /// unseen categories, ints beyond a bool's 0/1.
    struct Input {
        f64s: Vec<f64>,
        f32s: Vec<f32>,
        i64s: Vec<i64>,
        i32s: Vec<i32>,
        bools: Vec<bool>,
        categories: Vec<String>,
        texts: Vec<String>,
        kind: usize,
    }

    impl Input {
        fn random(rng: &mut Rng, n: usize, rare_problems: bool) -> Input {
            let kind = rng.below(7) as usize;
            let number = |rng: &mut Rng| -> f64 {
                match rng.below(if rare_problems { 1000 } else { 10 }) {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => 2.5,
                    3 => 1e300,
                    _ => rng.below(5) as f64 - 1.0,
                }
            };
            let f64s: Vec<f64> = (0..n).map(|_| number(rng)).collect();
            let i64s: Vec<i64> = (0..n)
                .map(|_| {
                    if rare_problems {
                        rng.below(2) as i64
                    } else {
                        rng.below(6) as i64 - 2
                    }
                })
                .collect();
            let categories = ["a", "b", "1", "2", "zzz", "0"][..2 + rng.below(5) as usize]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let texts = ["a", "b", "1", "zzz", "", "2"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            Input {
                f32s: f64s.iter().map(|&x| x as f32).collect(),
                i32s: i64s.iter().map(|&i| i as i32).collect(),
                bools: i64s.iter().map(|&i| i % 2 == 0).collect(),
                f64s,
                i64s,
                categories,
                texts,
                kind,
            }
        }

        fn cells(&self) -> Vec<Cell<'_>> {
            (0..self.f64s.len())
                .map(|r| match (self.i64s[r] + 2) % 5 {
                    0 => Cell::Missing,
                    1 => Cell::Str(&self.texts[r % self.texts.len()]),
                    2 => Cell::Int(self.i64s[r]),
                    3 => Cell::Float(self.f64s[r]),
                    _ => Cell::Bool(self.bools[r]),
                })
                .collect()
        }

        fn source<'a>(&'a self, cells: &'a [Cell<'a>]) -> ColumnSource<'a> {
            match self.kind {
                0 => ColumnSource::Float64((&self.f64s[..]).into()),
                1 => ColumnSource::Float32((&self.f32s[..]).into()),
                2 => ColumnSource::Int64((&self.i64s[..]).into()),
                3 => ColumnSource::Int32((&self.i32s[..]).into()),
                4 => ColumnSource::Bool((&self.bools[..]).into()),
                5 => ColumnSource::Codes {
                    codes: (&self.i64s[..]).into(),
                    categories: &self.categories,
                },
                _ => ColumnSource::Cells(cells),
            }
        }
    }

    fn random_schema(rng: &mut Rng, fields: usize) -> Arc<Schema> {
        let pick = |rng: &mut Rng| match rng.below(7) {
            0 => DataType::Float,
            1 => DataType::Int,
            2 => DataType::Bool,
            3 => DataType::String,
            4 => categorical(&["a", "b", "-1", "0", "1", "2", "2.5"], UnseenPolicy::Error),
            5 => categorical(&["b", "1", "0"], UnseenPolicy::MapToUnknown),
            _ => categorical(&["a", "1", "2"], UnseenPolicy::Ignore),
        };
        let fields = (0..fields)
            .map(|i| {
                let f = Field::new(format!("f{i}"), pick(rng));
                if rng.below(2) == 0 { f.nullable() } else { f }
            })
            .collect();
        Arc::new(Schema::new(fields).unwrap())
    }

    #[test]
    fn whole_columns_equal_the_row_by_row_builder_on_mixed_inputs() {
        let mut rng = Rng::new(7);
        let (mut built, mut refused) = (0, 0);
        for case in 0..3_000 {
            let n = 1 + rng.below(40) as usize;
            let fields = 1 + rng.below(4) as usize;
            let schema = random_schema(&mut rng, fields);
            let rare = rng.below(2) == 0;
            let inputs: Vec<Input> = (0..fields).map(|_| Input::random(&mut rng, n, rare)).collect();
            let cells: Vec<Vec<Cell<'_>>> = inputs.iter().map(Input::cells).collect();
            let sources: Vec<ColumnSource<'_>> =
                inputs.iter().zip(&cells).map(|(i, c)| i.source(c)).collect();
            let got = Frame::from_column_sources(schema.clone(), &sources);
            let want = row_by_row(&schema, &sources);
            assert_same(
                &got,
                &want,
                &format!("case {case}, schema {:?}", schema.to_json()),
            );
            if got.is_ok() {
                built += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes must be common for the comparison to mean something.
        assert!(built > 300 && refused > 300, "built {built}, refused {refused}");
    }

    #[test]
    fn strided_columns_of_a_row_major_matrix_read_like_their_copies() {
        let schema = Arc::new(
            Schema::new(vec![
                Field::new("x", DataType::Float).nullable(),
                Field::new("n", DataType::Int),
                Field::new("c", categorical(&["0", "1", "2"], UnseenPolicy::Error)),
            ])
            .unwrap(),
        );
        let rows = [[0.5, 1.0, 2.0], [f64::NAN, -3.0, 0.0], [7.25, 4.0, 1.0]];
        let matrix = ndarray::arr2(&rows);
        let strided: Vec<ColumnSource<'_>> =
            (0..3).map(|j| ColumnSource::Float64(matrix.column(j))).collect();
        let copies: Vec<Vec<f64>> = (0..3).map(|j| rows.iter().map(|r| r[j]).collect()).collect();
        let contiguous: Vec<ColumnSource<'_>> = copies
            .iter()
            .map(|c| ColumnSource::Float64((&c[..]).into()))
            .collect();
        let got = Frame::from_column_sources(schema.clone(), &strided);
        assert_same(&got, &row_by_row(&schema, &contiguous), "strided");
        assert_eq!(
            got.unwrap().columns()[2],
            Column::Categorical(ndarray::array![2, 0, 1])
        );
    }

    #[test]
    fn column_count_and_lengths_are_checked() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Float),
            Field::new("b", DataType::Float),
        ])
        .unwrap();
        let (a, b) = ([1.0, 2.0], [1.0]);
        let err = Frame::from_column_sources(schema.clone(), &[ColumnSource::Float64((&a[..]).into())])
            .unwrap_err();
        assert!(err.to_string().contains("got 1 columns for 2 fields"), "{err}");
        let err = Frame::from_column_sources(
            schema,
            &[
                ColumnSource::Float64((&a[..]).into()),
                ColumnSource::Float64((&b[..]).into()),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("column `b` has 1 values, the first column 2"),
            "{err}"
        );
    }
}
