//! Frames: a batch of rows with its schema, column by column.
//!
//! Every constructor (CSV, JSON records, JSON arrays, Rust values, ready columns) validates the
//! whole batch against the schema once and reports every problem it finds (up to
//! [`crate::validation::MAX_VALIDATION_ERRORS`]) by field, row and problem, so a caller fixes a
//! file in one pass rather than one error at a time.

mod builder;
mod cell;
mod columnar;
mod csv;
mod infer;
mod json;
mod spare;

use std::sync::Arc;

use ndarray::Array1;

pub use self::builder::{Cell, FrameBuilder};
pub use self::cell::Value;
use self::cell::{CellRef, ColumnBuilder, Position};
pub use self::columnar::ColumnSource;
pub use self::csv::CsvTable;
pub use self::infer::{InferOptions, TypeHint};
pub use self::json::infer_schema_json_records;
use crate::error::{Error, Result};
use crate::schema::{DataType, Field, Schema};
use crate::validation::{Problem, ValidationError, ValidationErrors};

/// The code stored for a missing categorical value (also flagged in the null mask).
pub const MISSING_CODE: u32 = u32::MAX;

/// What to do with input columns that the schema does not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExtraColumns {
    /// Drop them and list them once in [`Frame::ignored_columns`] (the default: inputs often
    /// carry ids or the label next to the features).
    #[default]
    Ignore,
    /// Refuse the batch with one validation error per extra column.
    Error,
}

/// Options for building a frame from external input.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Handling of columns that are not in the schema.
    pub extra_columns: ExtraColumns,
    /// A name for the input used in error messages (a file name); `"input"` when empty.
    pub source_name: String,
}

impl ReadOptions {
    /// Options naming the input in error messages.
    pub fn named(source_name: impl Into<String>) -> Self {
        ReadOptions {
            source_name: source_name.into(),
            ..Default::default()
        }
    }

    pub(crate) fn source(&self) -> String {
        if self.source_name.is_empty() {
            "input".to_string()
        } else {
            self.source_name.clone()
        }
    }
}

/// The values of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// A float field; missing values are NaN (and flagged in the null mask).
    Float(Array1<f64>),
    /// An int field; missing values are 0 and flagged in the null mask.
    Int(Array1<i64>),
    /// A bool field; missing values are `false` and flagged in the null mask.
    Bool(Array1<bool>),
    /// Codes into the field's vocabulary; [`MISSING_CODE`] for missing, the vocabulary length for
    /// "unknown" under [`crate::UnseenPolicy::MapToUnknown`].
    Categorical(Array1<u32>),
    /// Free text; missing values are empty strings flagged in the null mask.
    String(Vec<String>),
}

impl Column {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Column::Float(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Categorical(v) => v.len(),
            Column::String(v) => v.len(),
        }
    }

    /// True when the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind(&self) -> &'static str {
        match self {
            Column::Float(_) => "float",
            Column::Int(_) => "int",
            Column::Bool(_) => "bool",
            Column::Categorical(_) => "categorical",
            Column::String(_) => "string",
        }
    }

    fn take(&self, rows: &[usize]) -> Column {
        match self {
            Column::Float(v) => Column::Float(rows.iter().map(|&r| v[r]).collect()),
            Column::Int(v) => Column::Int(rows.iter().map(|&r| v[r]).collect()),
            Column::Bool(v) => Column::Bool(rows.iter().map(|&r| v[r]).collect()),
            Column::Categorical(v) => Column::Categorical(rows.iter().map(|&r| v[r]).collect()),
            Column::String(v) => Column::String(rows.iter().map(|&r| v[r].clone()).collect()),
        }
    }
}

/// A batch of rows with its schema.
///
/// Columns follow the schema's field order. Each column may have a null mask (`true` where the
/// value is missing); a column without one has no missing values.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    schema: Arc<Schema>,
    columns: Vec<Column>,
    nulls: Vec<Option<Vec<bool>>>,
    n_rows: usize,
    ignored_columns: Vec<String>,
}

impl Frame {
    /// Builds a frame from ready columns, checking their count, kinds, lengths and values
    /// (finite floats, codes inside the vocabulary, nulls only in nullable fields).
    ///
    /// `nulls` gives an optional null mask per column (`None` for the whole argument means no
    /// missing values anywhere).
    pub fn from_columns(
        schema: impl Into<Arc<Schema>>,
        columns: Vec<Column>,
        nulls: Option<Vec<Option<Vec<bool>>>>,
    ) -> Result<Frame> {
        let schema = schema.into();
        if columns.len() != schema.len() {
            return Err(Error::invalid_parameter(
                "columns",
                format!(
                    "got {} columns for a schema of {} fields",
                    columns.len(),
                    schema.len()
                ),
            ));
        }
        let nulls = nulls.unwrap_or_else(|| vec![None; columns.len()]);
        if nulls.len() != columns.len() {
            return Err(Error::invalid_parameter(
                "nulls",
                format!("got {} null masks for {} columns", nulls.len(), columns.len()),
            ));
        }
        let n_rows = columns.first().map_or(0, Column::len);
        let mut errors = ValidationErrors::default();
        for ((field, col), mask) in schema.fields().iter().zip(&columns).zip(&nulls) {
            check_column(field, col, mask.as_deref(), n_rows, &mut errors)?;
        }
        errors.into_result()?;
        // NaN in a nullable float column means missing: flag it so `is_null` agrees.
        let nulls = nulls
            .into_iter()
            .zip(&columns)
            .zip(schema.fields())
            .map(|((mask, col), field)| match col {
                Column::Float(v) if field.nullable && v.iter().any(|x| x.is_nan()) => {
                    let mut m = mask.unwrap_or_else(|| vec![false; n_rows]);
                    for (flag, x) in m.iter_mut().zip(v) {
                        *flag |= x.is_nan();
                    }
                    Some(m)
                }
                _ => mask,
            })
            .collect();
        Ok(Frame {
            schema,
            columns,
            nulls,
            n_rows,
            ignored_columns: Vec::new(),
        })
    }

    /// Builds a frame from rows of Rust values, one value per schema field in order.
    ///
    /// ```
    /// use ml_core::{DataType, Field, Frame, Schema, Value};
    /// let schema = Schema::new(vec![
    ///     Field::new("age", DataType::Int),
    ///     Field::new("plan", DataType::categorical(["basic", "pro"])?),
    /// ])?;
    /// let frame = Frame::from_rows(schema, &[vec![Value::from(31), Value::from("pro")]])?;
    /// assert_eq!(frame.n_rows(), 1);
    /// # Ok::<(), ml_core::Error>(())
    /// ```
    pub fn from_rows(schema: impl Into<Arc<Schema>>, rows: &[Vec<Value>]) -> Result<Frame> {
        let schema = schema.into();
        let mut builders = builders(&schema, rows.len());
        let mut errors = ValidationErrors::default();
        for (r, row) in rows.iter().enumerate() {
            if row.len() != schema.len() {
                errors.push(ValidationError {
                    field: "*".into(),
                    row: Some(r),
                    line: None,
                    problem: Problem::MalformedRow {
                        reason: format!(
                            "expected {} values (one per field), found {}",
                            schema.len(),
                            row.len()
                        ),
                    },
                });
                continue;
            }
            let at = Position { row: r, line: None };
            for ((b, field), v) in builders.iter_mut().zip(schema.fields()).zip(row) {
                b.push(field, CellRef::from_value(v), at, &mut errors);
            }
        }
        errors.into_result()?;
        Ok(Frame::finish(schema, builders, rows.len(), Vec::new()))
    }

    pub(crate) fn finish(
        schema: Arc<Schema>,
        builders: Vec<ColumnBuilder>,
        n_rows: usize,
        ignored_columns: Vec<String>,
    ) -> Frame {
        let (columns, nulls) = spare::with(|spare| match spare {
            Some(spare) if n_rows <= spare::SMALL_ROWS => {
                let (mut columns, mut nulls) = spare.lists(builders.len());
                let mut builders = builders;
                for (column, mask) in builders.drain(..).map(ColumnBuilder::finish) {
                    columns.push(column);
                    nulls.push(mask);
                }
                spare.give_builders(builders);
                (columns, nulls)
            }
            _ => builders.into_iter().map(ColumnBuilder::finish).unzip(),
        });
        Frame {
            schema,
            columns,
            nulls,
            n_rows,
            ignored_columns,
        }
    }

    /// The schema of the frame.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The columns in schema order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column of the field called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.schema.index_of(name).map(|i| &self.columns[i])
    }

    /// The null mask of column `index` (`None`: no missing values).
    pub fn null_mask(&self, index: usize) -> Option<&[bool]> {
        self.nulls.get(index).and_then(|m| m.as_deref())
    }

    /// Whether the value at (`row`, column `index`) is missing.
    pub fn is_null(&self, row: usize, index: usize) -> bool {
        self.null_mask(index)
            .is_some_and(|m| m.get(row).copied().unwrap_or(false))
    }

    /// Input columns that were not in the schema and were dropped (each named once).
    pub fn ignored_columns(&self) -> &[String] {
        &self.ignored_columns
    }

    /// The value at (`row`, column `index`) as a [`Value`]; categorical codes become their
    /// category text (`"__unknown__"` for the unknown code).
    pub fn value(&self, row: usize, index: usize) -> Option<Value> {
        let col = self.columns.get(index)?;
        if row >= self.n_rows {
            return None;
        }
        if self.is_null(row, index) {
            return Some(Value::Null);
        }
        Some(match col {
            Column::Float(v) => Value::Float(v[row]),
            Column::Int(v) => Value::Int(v[row]),
            Column::Bool(v) => Value::Bool(v[row]),
            Column::Categorical(v) => {
                let vocab = self.schema.fields()[index].vocabulary()?;
                Value::Str(vocab.value(v[row]).unwrap_or(UNKNOWN_CATEGORY).to_string())
            }
            Column::String(v) => Value::Str(v[row].clone()),
        })
    }

    /// A frame of the given rows, in the given order (indices may repeat).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Frame> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(Error::invalid_parameter(
                "rows",
                format!("row {bad} is out of range for a frame of {} rows", self.n_rows),
            ));
        }
        Ok(Frame {
            schema: self.schema.clone(),
            columns: self.columns.iter().map(|c| c.take(rows)).collect(),
            nulls: self
                .nulls
                .iter()
                .map(|m| m.as_ref().map(|m| rows.iter().map(|&r| m[r]).collect()))
                .collect(),
            n_rows: rows.len(),
            ignored_columns: self.ignored_columns.clone(),
        })
    }

    /// Removes the column called `name` and returns it with its field and null mask — how a
    /// training set separates the label from the features.
    pub fn split_off(&self, name: &str) -> Result<(Frame, Field, Column, Option<Vec<bool>>)> {
        let i = self.schema.index_of(name).ok_or_else(|| {
            Error::invalid_parameter(
                "target",
                format!(
                    "no column `{name}` in the data; columns are: {}",
                    self.schema.name_list()
                ),
            )
        })?;
        let schema = self.schema.without(&[name])?;
        let mut columns = self.columns.clone();
        let mut nulls = self.nulls.clone();
        let col = columns.remove(i);
        let mask = nulls.remove(i);
        Ok((
            Frame {
                schema: Arc::new(schema),
                columns,
                nulls,
                n_rows: self.n_rows,
                ignored_columns: self.ignored_columns.clone(),
            },
            self.schema.fields()[i].clone(),
            col,
            mask,
        ))
    }
}

/// The text shown for the reserved "unknown" category code.
pub const UNKNOWN_CATEGORY: &str = "__unknown__";

pub(crate) fn builders(schema: &Schema, capacity: usize) -> Vec<ColumnBuilder> {
    if capacity <= spare::SMALL_ROWS {
        // A small batch (a scoring request): the storage of earlier small frames is reused.
        return spare::with(|spare| match spare {
            Some(spare) => {
                let mut builders = spare.builders(schema.len());
                builders.extend(
                    schema
                        .fields()
                        .iter()
                        .map(|f| ColumnBuilder::from_spare(f, capacity, Some(&mut *spare))),
                );
                builders
            }
            None => schema
                .fields()
                .iter()
                .map(|f| ColumnBuilder::new(f, capacity))
                .collect(),
        });
    }
    schema
        .fields()
        .iter()
        .map(|f| ColumnBuilder::new(f, capacity))
        .collect()
}

impl Drop for Frame {
    /// A small frame leaves its storage to the next small frame built on this thread.
    fn drop(&mut self) {
        if self.n_rows <= spare::SMALL_ROWS && !self.columns.is_empty() {
            let nulls = std::mem::take(&mut self.nulls);
            spare::with(|spare| {
                if let Some(spare) = spare {
                    spare.give_frame(&mut self.columns, nulls);
                }
            });
        }
    }
}

fn check_column(
    field: &Field,
    col: &Column,
    mask: Option<&[bool]>,
    n_rows: usize,
    errors: &mut ValidationErrors,
) -> Result<()> {
    let kind_ok = matches!(
        (&field.dtype, col),
        (DataType::Float, Column::Float(_))
            | (DataType::Int, Column::Int(_))
            | (DataType::Bool, Column::Bool(_))
            | (DataType::Categorical { .. }, Column::Categorical(_))
            | (DataType::String, Column::String(_))
    );
    if !kind_ok {
        return Err(Error::invalid_parameter(
            "columns",
            format!(
                "field `{}` is {} but its column holds {} values",
                field.name,
                field.dtype.name(),
                col.kind()
            ),
        ));
    }
    if col.len() != n_rows || mask.is_some_and(|m| m.len() != n_rows) {
        return Err(Error::invalid_parameter(
            "columns",
            format!(
                "column `{}` (or its null mask) does not have {n_rows} rows like the first column",
                field.name
            ),
        ));
    }
    let null = |r: usize| mask.is_some_and(|m| m[r]);
    let mut report = |r: usize, problem: Problem| {
        errors.push(ValidationError {
            field: field.name.clone(),
            row: Some(r),
            line: None,
            problem,
        })
    };
    if !field.nullable
        && let Some(m) = mask
    {
        for (r, _) in m.iter().enumerate().filter(|(_, n)| **n) {
            report(r, Problem::MissingValue);
        }
    }
    match col {
        Column::Float(v) => {
            for (r, x) in v.iter().enumerate() {
                let allowed = x.is_finite() || null(r) || (x.is_nan() && field.nullable);
                if !allowed {
                    report(r, Problem::NotFinite { found: x.to_string() });
                }
            }
        }
        Column::Categorical(v) => {
            if let Some(vocab) = field.vocabulary() {
                for (r, &c) in v.iter().enumerate() {
                    if c > vocab.unknown_code() && !null(r) {
                        report(
                            r,
                            Problem::WrongType {
                                expected: "categorical",
                                found: format!("the code {c}, outside a vocabulary of {}", vocab.len()),
                            },
                        );
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
