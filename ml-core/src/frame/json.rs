//! JSON input: an array of objects (records) or an array of arrays (rows in schema order).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value as Json;

use super::cell::{CellRef, Position};
use super::infer::{InferOptions, infer_columns};
use super::{ExtraColumns, Frame, ReadOptions, builders};
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::validation::{Problem, ValidationError, ValidationErrors};

impl Frame {
    /// Builds a frame from JSON text holding either an array of objects (`[{"age": 31}, ...]`)
    /// or an array of arrays in schema order (`[[31, "pro"], ...]`).
    pub fn from_json_str(text: &str, schema: impl Into<Arc<Schema>>, options: &ReadOptions) -> Result<Frame> {
        let value: Json = serde_json::from_str(text).map_err(|e| Error::Parse {
            source_name: options.source(),
            reason: e.to_string(),
        })?;
        let Json::Array(rows) = value else {
            return Err(Error::Parse {
                source_name: options.source(),
                reason: "expected a JSON array of rows (objects or arrays)".into(),
            });
        };
        if rows.first().is_some_and(Json::is_array) {
            Frame::from_json_arrays(&rows, schema, options)
        } else {
            Frame::from_json_records(&rows, schema, options)
        }
    }

    /// Builds a frame from JSON objects, matching keys to field names.
    ///
    /// A key absent from a record is a missing value (allowed in nullable fields); a field absent
    /// from every record is reported once as a missing column. Keys that are not fields are
    /// handled by [`ReadOptions::extra_columns`] and named once.
    ///
    /// ```
    /// use ml_core::{DataType, Field, Frame, ReadOptions, Schema};
    /// let schema = Schema::new(vec![Field::new("x", DataType::Float), Field::new("n", DataType::Int).nullable()])?;
    /// let rows: Vec<serde_json::Value> = serde_json::from_str(r#"[{"x": 1.5, "n": 2}, {"x": 3}]"#).unwrap();
    /// let frame = Frame::from_json_records(&rows, schema, &ReadOptions::default())?;
    /// assert!(frame.is_null(1, 1));
    /// # Ok::<(), ml_core::Error>(())
    /// ```
    pub fn from_json_records(
        rows: &[Json],
        schema: impl Into<Arc<Schema>>,
        options: &ReadOptions,
    ) -> Result<Frame> {
        let schema = schema.into();
        if rows.is_empty() {
            return Err(Error::EmptyInput {
                source_name: options.source(),
            });
        }
        let mut errors = ValidationErrors::default();
        // Fields that no record carries: one error per column, not one per row.
        let absent: Vec<bool> = schema
            .fields()
            .iter()
            .map(|f| !rows.iter().any(|r| r.get(&f.name).is_some()))
            .collect();
        for (f, _) in schema
            .fields()
            .iter()
            .zip(&absent)
            .filter(|(f, a)| **a && !f.nullable)
        {
            errors.push(ValidationError {
                field: f.name.clone(),
                row: None,
                line: None,
                problem: Problem::MissingColumn,
            });
        }
        let mut extra: Vec<String> = Vec::new();
        let mut extra_seen = HashSet::new();
        let mut builders = builders(&schema, rows.len());
        for (r, row) in rows.iter().enumerate() {
            let Json::Object(map) = row else {
                errors.push(malformed(
                    r,
                    "expected a JSON object (a record); mixing objects and arrays is not allowed",
                ));
                continue;
            };
            let at = Position { row: r, line: None };
            let mut matched = 0;
            for ((b, field), &gone) in builders.iter_mut().zip(schema.fields()).zip(&absent) {
                if gone && !field.nullable {
                    continue; // already reported as a missing column
                }
                let value = map.get(&field.name);
                matched += usize::from(value.is_some());
                let cell = value.map_or(CellRef::Missing, CellRef::from_json);
                b.push(field, cell, at, &mut errors);
            }
            // Only a record with more keys than matched fields has extra ones: skip the lookups
            // (a hash per key) on the common, exact record.
            if map.len() > matched {
                for key in map.keys() {
                    if schema.index_of(key).is_none() && extra_seen.insert(key.clone()) {
                        extra.push(key.clone());
                    }
                }
            }
            if errors.is_full() {
                break;
            }
        }
        if options.extra_columns == ExtraColumns::Error {
            for name in &extra {
                errors.push(ValidationError {
                    field: name.clone(),
                    row: None,
                    line: None,
                    problem: Problem::ExtraColumn,
                });
            }
        }
        errors.into_result()?;
        Ok(Frame::finish(schema, builders, rows.len(), extra))
    }

    /// Builds a frame from JSON arrays, each holding one value per schema field, in order.
    pub fn from_json_arrays(
        rows: &[Json],
        schema: impl Into<Arc<Schema>>,
        options: &ReadOptions,
    ) -> Result<Frame> {
        let schema = schema.into();
        if rows.is_empty() {
            return Err(Error::EmptyInput {
                source_name: options.source(),
            });
        }
        let mut errors = ValidationErrors::default();
        let mut builders = builders(&schema, rows.len());
        for (r, row) in rows.iter().enumerate() {
            let Json::Array(values) = row else {
                errors.push(malformed(
                    r,
                    "expected a JSON array of values; mixing arrays and objects is not allowed",
                ));
                continue;
            };
            if values.len() != schema.len() {
                errors.push(malformed(
                    r,
                    &format!(
                        "expected {} values (one per field: {}), found {}",
                        schema.len(),
                        schema.name_list(),
                        values.len()
                    ),
                ));
                continue;
            }
            let at = Position { row: r, line: None };
            for ((b, field), v) in builders.iter_mut().zip(schema.fields()).zip(values) {
                b.push(field, CellRef::from_json(v), at, &mut errors);
            }
            if errors.is_full() {
                break;
            }
        }
        errors.into_result()?;
        Ok(Frame::finish(schema, builders, rows.len(), Vec::new()))
    }
}

fn malformed(row: usize, reason: &str) -> ValidationError {
    ValidationError {
        field: "*".into(),
        row: Some(row),
        line: None,
        problem: Problem::MalformedRow {
            reason: reason.into(),
        },
    }
}

/// Infers a schema from JSON records (objects): fields in order of first appearance.
///
/// ```
/// use ml_core::{infer_schema_json_records, DataType, InferOptions};
/// let rows: Vec<serde_json::Value> = serde_json::from_str(r#"[{"x": 1.5, "c": "a"}, {"x": 2, "c": "b"}]"#).unwrap();
/// let schema = infer_schema_json_records(&rows, &InferOptions::default())?;
/// assert_eq!(schema.field("x").unwrap().dtype, DataType::Float);
/// assert_eq!(schema.field("c").unwrap().dtype.name(), "categorical");
/// # Ok::<(), ml_core::Error>(())
/// ```
pub fn infer_schema_json_records(rows: &[Json], options: &InferOptions) -> Result<Schema> {
    if rows.is_empty() {
        return Err(Error::EmptyInput {
            source_name: "input".into(),
        });
    }
    let mut names: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        let Json::Object(map) = row else {
            return Err(Error::Parse {
                source_name: "input".into(),
                reason: format!("row {r} is not a JSON object"),
            });
        };
        for k in map.keys() {
            if seen.insert(k.as_str()) {
                names.push(k);
            }
        }
    }
    let columns = names.into_iter().map(|name| {
        (
            name,
            rows.iter()
                .map(move |r| r.get(name).map_or(CellRef::Missing, CellRef::from_json)),
        )
    });
    infer_columns(columns, options)
}
