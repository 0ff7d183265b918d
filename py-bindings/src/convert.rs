//! Python input → [`Frame`]: numpy columns and matrices are read in place (no copy on the
//! Python side) and converted a whole column at a time by ml-core's
//! [`Frame::from_column_sources`], object columns value by value; the values mean what the same
//! cells mean to ml-core's [`ml_core::frame::FrameBuilder`], so the same conversion and
//! validation rules apply as for JSON records, with the same errors.

use std::ops::Range;
use std::sync::Arc;

use ml_core::frame::{Cell, ColumnSource};
use ml_core::{Frame, Schema};
use numpy::ndarray::{Axis, s};
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

impl Owned {
    /// The cell the frame builder reads (NaN is missing, as in numpy columns).
    fn cell(&self) -> Cell<'_> {
        match self {
            Owned::Missing => Cell::Missing,
            Owned::Str(s) => Cell::Str(s),
            Owned::Int(i) => Cell::Int(*i),
            Owned::Float(x) if x.is_nan() => Cell::Missing,
            Owned::Float(x) => Cell::Float(*x),
            Owned::Bool(b) => Cell::Bool(*b),
        }
    }
}

/// A numpy array borrowed for the duration of a call, or an object column read into values.
pub(crate) enum Holder<'py> {
    F64(PyReadonlyArray1<'py, f64>),
    F32(PyReadonlyArray1<'py, f32>),
    I64(PyReadonlyArray1<'py, i64>),
    I32(PyReadonlyArray1<'py, i32>),
    Bool(PyReadonlyArray1<'py, bool>),
    Objects(Vec<Owned>),
    /// A pandas categorical: codes (-1 for missing) into its categories.
    Codes(PyReadonlyArray1<'py, i64>, Vec<String>),
}

/// Reads one column: a 1-D numpy array of float64, float32, int64, int32 or bool (borrowed,
/// any strides), a pair `(codes: int64 array, categories: list[str])` (a pandas categorical,
/// codes -1 for missing), or a list of `None`, `str`, `int`, `float`, `bool`.
pub(crate) fn column<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Holder<'py>> {
    if let Ok((codes, categories)) = obj.extract::<(PyReadonlyArray1<'py, i64>, Vec<String>)>() {
        return Ok(Holder::Codes(codes, categories));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f64>>() {
        return Ok(Holder::F64(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i64>>() {
        return Ok(Holder::I64(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f32>>() {
        return Ok(Holder::F32(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i32>>() {
        return Ok(Holder::I32(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, bool>>() {
        return Ok(Holder::Bool(a));
    }
    let list = obj.cast::<PyList>().map_err(|_| {
        SchemaError::new_err(format!(
            "column `{name}`: expected a 1-D numpy array of float64, float32, int64, int32 or bool, or a list of values"
        ))
    })?;
    let mut values = Vec::with_capacity(list.len());
    for item in list.iter() {
        values.push(value(name, &item)?);
    }
    Ok(Holder::Objects(values))
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
    let cells = cells(holders);
    build(py, schema, &column_sources(holders, &cells))
}

/// The cells of the object columns among `holders` (an empty list for the others), which
/// [`column_sources`] borrows.
pub(crate) fn cells<'a>(holders: &'a [Holder<'_>]) -> Vec<Vec<Cell<'a>>> {
    holders
        .iter()
        .map(|h| match h {
            Holder::Objects(v) => v.iter().map(Owned::cell).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// One source per holder: numpy columns read in place, object columns as their `cells`.
pub(crate) fn column_sources<'a>(
    holders: &'a [Holder<'_>],
    cells: &'a [Vec<Cell<'a>>],
) -> Vec<ColumnSource<'a>> {
    holders
        .iter()
        .zip(cells)
        .map(|(h, cells)| match h {
            Holder::F64(a) => ColumnSource::Float64(a.as_array()),
            Holder::F32(a) => ColumnSource::Float32(a.as_array()),
            Holder::I64(a) => ColumnSource::Int64(a.as_array()),
            Holder::I32(a) => ColumnSource::Int32(a.as_array()),
            Holder::Bool(a) => ColumnSource::Bool(a.as_array()),
            Holder::Objects(_) => ColumnSource::Cells(cells),
            Holder::Codes(a, c) => ColumnSource::Codes {
                codes: a.as_array(),
                categories: c,
            },
        })
        .collect()
}

/// Rows `rows` of `source` (a view of the same values).
pub(crate) fn slice_rows<'a>(source: &ColumnSource<'a>, rows: Range<usize>) -> ColumnSource<'a> {
    let range = s![rows.clone()];
    match source {
        ColumnSource::Float64(v) => ColumnSource::Float64((*v).slice_move(range)),
        ColumnSource::Float32(v) => ColumnSource::Float32((*v).slice_move(range)),
        ColumnSource::Int64(v) => ColumnSource::Int64((*v).slice_move(range)),
        ColumnSource::Int32(v) => ColumnSource::Int32((*v).slice_move(range)),
        ColumnSource::Bool(v) => ColumnSource::Bool((*v).slice_move(range)),
        ColumnSource::Codes { codes, categories } => ColumnSource::Codes {
            codes: (*codes).slice_move(range),
            categories,
        },
        ColumnSource::Cells(v) => ColumnSource::Cells(&v[rows]),
    }
}

/// A 2-D numpy array of the types [`frame_from_matrix`] reads in place.
pub(crate) enum Matrix<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
    I64(PyReadonlyArray2<'py, i64>),
    I32(PyReadonlyArray2<'py, i32>),
}

impl<'py> Matrix<'py> {
    /// `obj` as a float64, float32, int64 or int32 matrix, if it is one.
    pub(crate) fn extract(obj: &Bound<'py, PyAny>) -> Option<Matrix<'py>> {
        if let Ok(x) = obj.extract() {
            return Some(Matrix::F64(x));
        }
        if let Ok(x) = obj.extract() {
            return Some(Matrix::F32(x));
        }
        if let Ok(x) = obj.extract() {
            return Some(Matrix::I64(x));
        }
        obj.extract().ok().map(Matrix::I32)
    }

    fn shape(&self) -> [usize; 2] {
        let s = match self {
            Matrix::F64(x) => x.shape(),
            Matrix::F32(x) => x.shape(),
            Matrix::I64(x) => x.shape(),
            Matrix::I32(x) => x.shape(),
        };
        [s[0], s[1]]
    }

    /// Column `j`, a view with the matrix's strides (C or Fortran order alike).
    fn column(&self, j: usize) -> ColumnSource<'_> {
        match self {
            Matrix::F64(x) => ColumnSource::Float64(x.as_array().index_axis_move(Axis(1), j)),
            Matrix::F32(x) => ColumnSource::Float32(x.as_array().index_axis_move(Axis(1), j)),
            Matrix::I64(x) => ColumnSource::Int64(x.as_array().index_axis_move(Axis(1), j)),
            Matrix::I32(x) => ColumnSource::Int32(x.as_array().index_axis_move(Axis(1), j)),
        }
    }
}

/// Builds a frame of `schema` from an `n × fields` numeric matrix (any memory order), columns
/// in field order. Runs without the GIL.
pub(crate) fn frame_from_matrix(py: Python<'_>, schema: &Arc<Schema>, x: &Matrix<'_>) -> Result<Frame> {
    build(py, schema, &matrix_sources(schema, x)?)
}

/// The columns of an `n × fields` numeric matrix (views with its strides), in field order; an
/// error when it does not have one column per field.
pub(crate) fn matrix_sources<'a>(schema: &Schema, x: &'a Matrix<'_>) -> Result<Vec<ColumnSource<'a>>> {
    let [_, n_cols] = x.shape();
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
    Ok((0..n_cols).map(|j| x.column(j)).collect())
}

/// The frame of `sources` (ml-core's whole-column conversion, which reports every problem with
/// its row, as row-by-row building does), without the GIL; no rows is an error.
pub(crate) fn build(py: Python<'_>, schema: &Arc<Schema>, sources: &[ColumnSource<'_>]) -> Result<Frame> {
    let schema = schema.clone();
    let frame = py.detach(move || Frame::from_column_sources(schema, sources))?;
    if frame.n_rows() == 0 {
        return Err(ml_core::Error::EmptyInput {
            source_name: "input".into(),
        }
        .into());
    }
    Ok(frame)
}
