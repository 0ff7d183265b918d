//! Python input → [`Frame`]: numpy columns and matrices are read in place (no copy on the
//! Python side), object columns value by value; every value goes through ml-core's
//! [`FrameBuilder`], so the same conversion and validation rules apply as for JSON records.

use std::sync::Arc;

use ml_core::frame::{Cell, FrameBuilder};
use ml_core::validation::ValidationErrors;
use ml_core::{Frame, Schema};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString};

use crate::{Result, SchemaError};

/// One value of an object column, owned (read with the GIL held, used without it).
#[derive(Clone, Debug)]
pub(crate) enum Owned {
    Missing,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A numpy array borrowed for the duration of a call, or an object column read into values.
pub(crate) enum Holder<'py> {
    F64(PyReadonlyArray1<'py, f64>),
    I64(PyReadonlyArray1<'py, i64>),
    Bool(PyReadonlyArray1<'py, bool>),
    Objects(Vec<Owned>),
    /// A pandas categorical: codes (-1 for missing) into its categories.
    Codes(PyReadonlyArray1<'py, i64>, Vec<String>),
}

/// A column as the frame builder reads it: slices into numpy memory or owned values.
enum Source<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
    Bool(&'a [bool]),
    Objects(&'a [Owned]),
    Codes(&'a [i64], &'a [String]),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::F64(v) => v.len(),
            Source::I64(v) => v.len(),
            Source::Bool(v) => v.len(),
            Source::Objects(v) => v.len(),
            Source::Codes(v, _) => v.len(),
        }
    }

    fn cell(&self, row: usize) -> Cell<'_> {
        match self {
            // NaN is pandas' and numpy's missing value.
            Source::F64(v) if v[row].is_nan() => Cell::Missing,
            Source::F64(v) => Cell::Float(v[row]),
            Source::I64(v) => Cell::Int(v[row]),
            Source::Bool(v) => Cell::Bool(v[row]),
            Source::Objects(v) => match &v[row] {
                Owned::Missing => Cell::Missing,
                Owned::Str(s) => Cell::Str(s),
                Owned::Int(i) => Cell::Int(*i),
                Owned::Float(x) if x.is_nan() => Cell::Missing,
                Owned::Float(x) => Cell::Float(*x),
                Owned::Bool(b) => Cell::Bool(*b),
            },
            Source::Codes(codes, categories) => {
                match usize::try_from(codes[row]).ok().and_then(|c| categories.get(c)) {
                    Some(category) => Cell::Str(category),
                    None => Cell::Missing,
                }
            }
        }
    }
}

/// Reads one column: a 1-D numpy array of float64, int64 or bool (borrowed), a pair
/// `(codes: int64 array, categories: list[str])` (a pandas categorical, codes -1 for missing),
/// or a list of `None`, `str`, `int`, `float`, `bool`.
pub(crate) fn column<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Holder<'py>> {
    if let Ok((codes, categories)) = obj.extract::<(PyReadonlyArray1<'py, i64>, Vec<String>)>() {
        return contiguous(name, codes.is_contiguous()).map(|()| Holder::Codes(codes, categories));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f64>>() {
        return contiguous(name, a.is_contiguous()).map(|()| Holder::F64(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i64>>() {
        return contiguous(name, a.is_contiguous()).map(|()| Holder::I64(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, bool>>() {
        return contiguous(name, a.is_contiguous()).map(|()| Holder::Bool(a));
    }
    let list = obj.cast::<PyList>().map_err(|_| {
        SchemaError::new_err(format!(
            "column `{name}`: expected a 1-D numpy array of float64, int64 or bool, or a list of values"
        ))
    })?;
    let mut values = Vec::with_capacity(list.len());
    for item in list.iter() {
        values.push(value(name, &item)?);
    }
    Ok(Holder::Objects(values))
}

fn contiguous(name: &str, yes: bool) -> PyResult<()> {
    if yes {
        Ok(())
    } else {
        Err(SchemaError::new_err(format!(
            "column `{name}`: the array is not contiguous; pass numpy.ascontiguousarray(column)"
        )))
    }
}

fn value(name: &str, item: &Bound<'_, PyAny>) -> PyResult<Owned> {
    if item.is_none() {
        return Ok(Owned::Missing);
    }
    // bool before int: Python's bool is an int.
    if item.is_instance_of::<PyBool>() {
        return Ok(Owned::Bool(item.extract()?));
    }
    if item.is_instance_of::<PyString>() {
        return Ok(Owned::Str(item.extract()?));
    }
    if item.is_instance_of::<PyInt>() {
        return item.extract::<i64>().map(Owned::Int).map_err(|_| {
            SchemaError::new_err(format!(
                "column `{name}`: the integer {item} does not fit in 64 bits"
            ))
        });
    }
    if item.is_instance_of::<PyFloat>() {
        return Ok(Owned::Float(item.extract()?));
    }
    // numpy scalars (numpy.int64, numpy.float32, numpy.str_, ...) and other numbers.
    if let Ok(i) = item.extract::<i64>() {
        return Ok(Owned::Int(i));
    }
    if let Ok(x) = item.extract::<f64>() {
        return Ok(Owned::Float(x));
    }
    if let Ok(s) = item.extract::<String>() {
        return Ok(Owned::Str(s));
    }
    Err(SchemaError::new_err(format!(
        "column `{name}`: cannot read a value of type {} (expected None, str, int, float or bool)",
        item.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    )))
}

/// Builds a frame of `schema` from one column per field, in field order. Runs without the GIL.
pub(crate) fn frame_from_columns(
    py: Python<'_>,
    schema: &Arc<Schema>,
    holders: &[Holder<'_>],
) -> Result<Frame> {
    if holders.len() != schema.len() {
        return Err(ml_core::Error::SchemaMismatch {
            reason: format!("got {} columns for {} fields", holders.len(), schema.len()),
        }
        .into());
    }
    let sources = holders
        .iter()
        .map(|h| {
            Ok(match h {
                Holder::F64(a) => Source::F64(a.as_slice().map_err(|e| SchemaError::new_err(e.to_string()))?),
                Holder::I64(a) => Source::I64(a.as_slice().map_err(|e| SchemaError::new_err(e.to_string()))?),
                Holder::Bool(a) => {
                    Source::Bool(a.as_slice().map_err(|e| SchemaError::new_err(e.to_string()))?)
                }
                Holder::Objects(v) => Source::Objects(v),
                Holder::Codes(a, c) => {
                    Source::Codes(a.as_slice().map_err(|e| SchemaError::new_err(e.to_string()))?, c)
                }
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let n_rows = sources.first().map_or(0, Source::len);
    for (field, s) in schema.fields().iter().zip(&sources) {
        if s.len() != n_rows {
            return Err(ml_core::Error::SchemaMismatch {
                reason: format!(
                    "column `{}` has {} values, the first column {n_rows}",
                    field.name,
                    s.len()
                ),
            }
            .into());
        }
    }
    let schema = schema.clone();
    py.detach(move || {
        build(schema, n_rows, |r, cells| {
            cells.extend(sources.iter().map(|s| s.cell(r)))
        })
    })
}

/// Builds a frame of `schema` from a C-contiguous `n × fields` float64 matrix, columns in
/// field order. Runs without the GIL.
pub(crate) fn frame_from_matrix(
    py: Python<'_>,
    schema: &Arc<Schema>,
    x: &PyReadonlyArray2<'_, f64>,
) -> Result<Frame> {
    let shape = x.shape();
    let (n_rows, n_cols) = (shape[0], shape[1]);
    if n_cols != schema.len() {
        return Err(ml_core::Error::SchemaMismatch {
            reason: format!(
                "the array has {n_cols} columns but the model reads {} fields ({}); pass the columns in this order",
                schema.len(),
                schema.names().collect::<Vec<_>>().join(", ")
            ),
        }
        .into());
    }
    let data = x.as_slice().map_err(|_| {
        SchemaError::new_err("the array is not C-contiguous; pass numpy.ascontiguousarray(x)")
    })?;
    let schema = schema.clone();
    py.detach(move || {
        build(schema, n_rows, |r, cells| {
            cells.extend(
                data[r * n_cols..(r + 1) * n_cols]
                    .iter()
                    .map(|&v| if v.is_nan() { Cell::Missing } else { Cell::Float(v) }),
            )
        })
    })
}

/// Pushes `n_rows` rows (`fill` appends row `r`'s cells) and returns the frame, or every
/// problem found (with its row).
fn build<'a>(schema: Arc<Schema>, n_rows: usize, fill: impl Fn(usize, &mut Vec<Cell<'a>>)) -> Result<Frame> {
    let mut builder = FrameBuilder::new(schema.clone(), n_rows);
    let mut cells: Vec<Cell<'a>> = Vec::with_capacity(schema.len());
    let mut problems = ValidationErrors::default();
    for r in 0..n_rows {
        cells.clear();
        fill(r, &mut cells);
        if let Err(errors) = builder.push_row(&cells) {
            for mut e in errors {
                e.row = Some(r);
                problems.push(e);
            }
        }
    }
    if !problems.is_empty() {
        return Err(ml_core::Error::Validation(problems).into());
    }
    if n_rows == 0 {
        return Err(ml_core::Error::EmptyInput {
            source_name: "input".into(),
        }
        .into());
    }
    Ok(builder.finish())
}
