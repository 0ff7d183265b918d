//! Row-by-row frame building, for decoders that parse their own input (a streaming JSON
//! decoder, a Parquet reader): each row is validated as it is pushed, and a row with a problem
//! is left out with its problems, so one bad record does not spoil the batch.

use std::sync::Arc;

use super::cell::{CellRef, ColumnBuilder, Position};
use super::{Frame, builders};
use crate::schema::Schema;
use crate::validation::{ValidationError, ValidationErrors};

/// One input value handed to [`FrameBuilder::push_row`], typed by the decoder that read it.
///
/// The same conversion rules apply as for JSON records: a string is never parsed as a number,
/// an integer fits a float field, a number names a category by its canonical text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Absent or null.
    Missing,
    /// Untyped text (a CSV cell): parsed according to the field type; empty means missing.
    Text(&'a str),
    /// A typed string.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A nested value (`"an array"`, `"an object"`), which no field type accepts.
    Nested(&'static str),
}

impl<'a> Cell<'a> {
    pub(super) fn as_ref(self) -> CellRef<'a> {
        match self {
            Cell::Missing => CellRef::Missing,
            Cell::Text(s) => CellRef::Text(s),
            Cell::Str(s) => CellRef::Str(s),
            Cell::Int(i) => CellRef::Int(i),
            Cell::Float(x) => CellRef::Float(x),
            Cell::Bool(b) => CellRef::Bool(b),
            Cell::Nested(what) => CellRef::Nested(what),
        }
    }
}

/// Builds a [`Frame`] one row at a time against a schema.
///
/// ```
/// use ml_core::{DataType, Field, Schema};
/// use ml_core::frame::{Cell, FrameBuilder};
/// let schema = Schema::new(vec![Field::new("x", DataType::Float), Field::new("n", DataType::Int)])?;
/// let mut b = FrameBuilder::new(schema.into(), 2);
/// b.push_row(&[Cell::Float(1.5), Cell::Int(2)]).unwrap();
/// let problems = b.push_row(&[Cell::Str("oops"), Cell::Int(3)]).unwrap_err();
/// assert_eq!(problems[0].field, "x");
/// let frame = b.finish();
/// assert_eq!(frame.n_rows(), 1); // the bad row was left out
/// # Ok::<(), ml_core::Error>(())
/// ```
pub struct FrameBuilder {
    schema: Arc<Schema>,
    builders: Vec<ColumnBuilder>,
    n_rows: usize,
}

impl std::fmt::Debug for FrameBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuilder")
            .field("fields", &self.schema.len())
            .field("n_rows", &self.n_rows)
            .finish()
    }
}

impl FrameBuilder {
    /// An empty builder with room for `capacity` rows.
    pub fn new(schema: Arc<Schema>, capacity: usize) -> Self {
        FrameBuilder {
            builders: builders(&schema, capacity),
            schema,
            n_rows: 0,
        }
    }

    /// The schema rows are checked against.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Rows pushed so far.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Appends a row: `cells[i]` is the value of field `i` (missing fields may be left out at
    /// the end of `cells`). When a value does not fit its field, the row is left out and every
    /// problem found in it is returned (their `row` is `None`: the caller knows the row).
    pub fn push_row(&mut self, cells: &[Cell<'_>]) -> Result<(), Vec<ValidationError>> {
        let mut errors = ValidationErrors::default();
        let at = Position {
            row: self.n_rows,
            line: None,
        };
        for (i, (b, field)) in self.builders.iter_mut().zip(self.schema.fields()).enumerate() {
            let cell = cells.get(i).copied().unwrap_or(Cell::Missing);
            b.push(field, cell.as_ref(), at, &mut errors);
        }
        if errors.is_empty() {
            self.n_rows += 1;
            return Ok(());
        }
        for b in &mut self.builders {
            b.truncate(self.n_rows);
        }
        Err(errors
            .errors
            .into_iter()
            .map(|mut e| {
                e.row = None;
                e
            })
            .collect())
    }

    /// The frame of the rows pushed (possibly empty).
    pub fn finish(self) -> Frame {
        Frame::finish(self.schema, self.builders, self.n_rows, Vec::new())
    }
}
