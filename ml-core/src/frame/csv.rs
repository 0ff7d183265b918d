//! CSV input: a parsed table of text cells, from which a schema is inferred and frames are built.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::cell::{CellRef, Position};
use super::infer::{InferOptions, infer_columns};
use super::{ExtraColumns, Frame, ReadOptions, builders};
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::validation::{Problem, ValidationError, ValidationErrors};

/// A CSV file read into memory: header plus rows of text cells.
///
/// Reading is separate from typing so that one read serves both schema inference and frame
/// building (what `streamscore train` does with a file it has not seen before).
#[derive(Clone, Debug)]
pub struct CsvTable {
    source: String,
    header: Vec<String>,
    rows: Vec<::csv::StringRecord>,
    lines: Vec<u64>,
}

impl CsvTable {
    /// Reads CSV with a header row from `reader`. `source` names it in error messages.
    ///
    /// Fails with [`Error::EmptyInput`] when there is no header or no data row,
    /// [`Error::RaggedRow`] when a row's field count differs from the header's, and
    /// [`Error::Parse`] on malformed CSV or a duplicate header name.
    pub fn read(reader: impl Read, source: impl Into<String>) -> Result<CsvTable> {
        let source = source.into();
        let mut rdr = ::csv::ReaderBuilder::new()
            .has_headers(true)
            // We check row lengths ourselves to report them with our own error.
            .flexible(true)
            .trim(::csv::Trim::Headers)
            .from_reader(reader);
        let parse = |e: ::csv::Error| Error::Parse {
            source_name: source.clone(),
            reason: e.to_string(),
        };
        let header: Vec<String> = rdr.headers().map_err(parse)?.iter().map(str::to_string).collect();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(Error::EmptyInput { source_name: source });
        }
        let mut seen = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if h.is_empty() {
                return Err(Error::Parse {
                    source_name: source,
                    reason: format!("header column {} has no name", i + 1),
                });
            }
            if seen.insert(h.as_str(), i).is_some() {
                return Err(Error::Parse {
                    source_name: source,
                    reason: format!("column `{h}` appears twice in the header"),
                });
            }
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (r, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(parse)?;
            if rec.len() != header.len() {
                return Err(Error::RaggedRow {
                    source_name: source,
                    row: r,
                    expected: header.len(),
                    found: rec.len(),
                });
            }
            lines.push(rec.position().map_or(0, |p| p.line()));
            rows.push(rec);
        }
        if rows.is_empty() {
            return Err(Error::EmptyInput { source_name: source });
        }
        Ok(CsvTable {
            source,
            header,
            rows,
            lines,
        })
    }

    /// Reads a CSV file.
    pub fn read_path(path: impl AsRef<Path>) -> Result<CsvTable> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        CsvTable::read(std::io::BufReader::new(file), path.display().to_string())
    }

    /// The header names in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Number of data rows.
    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// The raw text of data row `row`, column `column`.
    pub fn cell(&self, row: usize, column: usize) -> Option<&str> {
        self.rows.get(row).and_then(|r| r.get(column))
    }

    /// Infers a schema from the cells (see [`InferOptions`] for the rules and overrides).
    pub fn infer_schema(&self, options: &InferOptions) -> Result<Schema> {
        let columns = self.header.iter().enumerate().map(|(c, name)| {
            (
                name.as_str(),
                self.rows
                    .iter()
                    .map(move |r| CellRef::Text(r.get(c).unwrap_or(""))),
            )
        });
        infer_columns(columns, options)
    }

    /// Builds a frame with `schema`, matching columns by header name.
    pub fn to_frame(&self, schema: impl Into<Arc<Schema>>, options: &ReadOptions) -> Result<Frame> {
        let schema = schema.into();
        let position: HashMap<&str, usize> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let mut errors = ValidationErrors::default();
        let mut source_columns = Vec::with_capacity(schema.len());
        for field in schema.fields() {
            match position.get(field.name.as_str()) {
                Some(&i) => source_columns.push(Some(i)),
                None => {
                    errors.push(ValidationError {
                        field: field.name.clone(),
                        row: None,
                        line: None,
                        problem: Problem::MissingColumn,
                    });
                    source_columns.push(None);
                }
            }
        }
        let ignored: Vec<String> = self
            .header
            .iter()
            .filter(|h| schema.index_of(h).is_none())
            .cloned()
            .collect();
        if options.extra_columns == ExtraColumns::Error {
            for h in &ignored {
                errors.push(ValidationError {
                    field: h.clone(),
                    row: None,
                    line: None,
                    problem: Problem::ExtraColumn,
                });
            }
        }
        // A missing column would repeat for every row: report it once and stop here.
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let mut builders = builders(&schema, self.rows.len());
        for (r, rec) in self.rows.iter().enumerate() {
            let at = Position {
                row: r,
                line: Some(self.lines[r]),
            };
            for ((b, field), src) in builders.iter_mut().zip(schema.fields()).zip(&source_columns) {
                let text = src.and_then(|i| rec.get(i)).unwrap_or("");
                b.push(field, CellRef::Text(text), at, &mut errors);
            }
            if errors.is_full() {
                break;
            }
        }
        errors.into_result()?;
        Ok(Frame::finish(schema, builders, self.rows.len(), ignored))
    }

    /// The name of the input used in messages.
    pub fn source_name(&self) -> &str {
        &self.source
    }
}

impl Frame {
    /// Reads CSV with a header row and builds a frame with `schema` (columns matched by name).
    ///
    /// ```
    /// use ml_core::{DataType, Field, Frame, ReadOptions, Schema};
    /// let schema = Schema::new(vec![Field::new("x", DataType::Float)])?;
    /// let frame = Frame::from_csv("x,id\n1.5,a\n2,b\n".as_bytes(), schema, &ReadOptions::default())?;
    /// assert_eq!(frame.n_rows(), 2);
    /// assert_eq!(frame.ignored_columns(), ["id"]);
    /// # Ok::<(), ml_core::Error>(())
    /// ```
    pub fn from_csv(
        reader: impl Read,
        schema: impl Into<Arc<Schema>>,
        options: &ReadOptions,
    ) -> Result<Frame> {
        CsvTable::read(reader, options.source())?.to_frame(schema, options)
    }

    /// Reads a CSV file (see [`Frame::from_csv`]).
    pub fn from_csv_path(
        path: impl AsRef<Path>,
        schema: impl Into<Arc<Schema>>,
        options: &ReadOptions,
    ) -> Result<Frame> {
        let table = CsvTable::read_path(path)?;
        table.to_frame(schema, options)
    }
}
