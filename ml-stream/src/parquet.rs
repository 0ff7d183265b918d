//! Parquet export (feature `parquet`): [`ParquetSink`] writes scored batches as Parquet part
//! files, and [`read_frame`] reads Parquet files (ours or anyone's) back into a [`Frame`], which
//! is how drift checks and retraining read exports.
//!
//! Columns of the files we write: every field of the model schema (float → `double`, int →
//! `int64`, bool → `boolean`, categorical and string → `utf8`, nullable where the field is), then
//! the predictions (`label` and `probability_<label>` for classifiers, `prediction` for
//! regressors), then where each row came from: `_partition`, `_offset` (for dropping the
//! duplicates at-least-once delivery may produce), `_event_time_ms`, `_scored_time_ms`,
//! `_correlation_id`, `_model`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ::parquet::basic::Compression;
use ::parquet::file::properties::WriterProperties;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema, SchemaRef};
use async_trait::async_trait;
use ml_core::frame::UNKNOWN_CATEGORY;
use ml_core::frame::{Cell, FrameBuilder};
use ml_core::{Column, Frame, Predictions, Schema};

use crate::batch::ScoredBatch;
use crate::error::{Error, Result};
use crate::traits::{InferenceRecord, InferenceSink};

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Options of [`ParquetSink`].
#[derive(Clone, Debug)]
pub struct ParquetSinkOptions {
    /// The directory part files go to (created if missing).
    pub root: PathBuf,
    /// Instance id in file names, unique per writer so several processes can share a
    /// directory. Default: a fresh random id.
    pub instance: String,
    /// Rows per row group. Default 65 536: large enough for good compression, small enough
    /// that a row group is written to disk while the part file is still open.
    pub row_group_rows: usize,
}

impl ParquetSinkOptions {
    /// Defaults for `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ParquetSinkOptions {
            root: root.into(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            row_group_rows: 1 << 16,
        }
    }
}

/// An open part file.
struct Part {
    writer: ArrowWriter<std::fs::File>,
    schema: SchemaRef,
    tmp: PathBuf,
    done: PathBuf,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("tmp", &self.tmp).finish()
    }
}

/// Writes scored batches as Parquet files `{root}/{instance}-{seq}.parquet` (Snappy).
///
/// Delivery: rows are buffered in the open part file, which is written under a hidden name
/// (`.…parquet.inprogress`) and, on `flush` (every commit of the pipeline), closed — its footer
/// written — fsynced and renamed to its final name, then the directory is fsynced. A reader
/// never sees a half-written file, and every row before a commit survives a crash: at-least-once,
/// with duplicates recognisable by (`_partition`, `_offset`). Rows after the last flush are lost
/// with the in-progress file on a crash and delivered again by the source.
///
/// Batches that come as [`InferenceRecord`]s (not from a pipeline) are written with their inputs
/// and outputs as JSON text columns `inputs` and `outputs`, in part files of their own.
#[derive(Debug)]
pub struct ParquetSink {
    options: ParquetSinkOptions,
    part: Option<Part>,
    seq: u64,
}

impl ParquetSink {
    /// A sink writing under `options.root` (created if missing).
    pub fn new(options: ParquetSinkOptions) -> Result<ParquetSink> {
        std::fs::create_dir_all(&options.root)
            .map_err(|e| Error::io("create directory", &options.root, e))?;
        Ok(ParquetSink {
            options,
            part: None,
            seq: 0,
        })
    }

    /// Writes `batch` to the open part file, first closing it if its columns differ.
    async fn append(&mut self, batch: RecordBatch) -> Result<()> {
        if self.part.as_ref().is_some_and(|p| p.schema != batch.schema()) {
            self.finish_part().await?;
        }
        if self.part.is_none() {
            self.seq += 1;
            let name = format!("{}-{:06}.parquet", self.options.instance, self.seq);
            let tmp = self.options.root.join(format!(".{name}.inprogress"));
            let file = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(self.options.row_group_rows.max(1)))
                .build();
            let writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
                .map_err(|e| parquet_error(&tmp, e))?;
            self.part = Some(Part {
                writer,
                schema: batch.schema(),
                done: self.options.root.join(name),
                tmp,
            });
        }
        let part = self
            .part
            .as_mut()
            .ok_or_else(|| Error::Internal("parquet part vanished".into()))?;
        part.writer.write(&batch).map_err(|e| parquet_error(&part.tmp, e))
    }

    /// Closes the open part file (footer, fsync, rename, directory fsync), off the async
    /// threads.
    async fn finish_part(&mut self) -> Result<()> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        let root = self.options.root.clone();
        tokio::task::spawn_blocking(move || {
            let Part {
                writer, tmp, done, ..
            } = part;
            let file = writer.into_inner().map_err(|e| parquet_error(&tmp, e))?;
            file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
            drop(file);
            std::fs::rename(&tmp, &done).map_err(|e| Error::io("rename", &done, e))?;
            if let Ok(d) = std::fs::File::open(&root) {
                d.sync_all().map_err(|e| Error::io("sync", &root, e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("parquet close task failed: {e}")))?
    }
}

#[async_trait]
impl InferenceSink for ParquetSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows: Vec<&InferenceRecord> = records.iter().collect();
        let batch = records_batch(&rows, &self.options.root)?;
        self.append(batch).await
    }

    async fn write_scored(&mut self, batch: &ScoredBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = scored_batch(batch, &self.options.root)?;
        self.append(batch).await
    }

    async fn flush(&mut self) -> Result<()> {
        self.finish_part().await
    }

    fn describe(&self) -> String {
        format!("parquet:{}", self.options.root.display())
    }
}

/// The record batch of inference records that come without a pipeline: inputs and outputs as
/// JSON text columns, then the position columns. `what` names the destination in errors.
pub(crate) fn records_batch(records: &[&InferenceRecord], what: &Path) -> Result<RecordBatch> {
    let json = |m: &serde_json::Map<String, serde_json::Value>| serde_json::to_string(m).unwrap_or_default();
    let columns: Vec<(String, ArrayRef, bool)> = vec![
        (
            "inputs".into(),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| json(&r.inputs)),
            )),
            false,
        ),
        (
            "outputs".into(),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| json(&r.outputs)),
            )),
            false,
        ),
        (
            "_partition".into(),
            Arc::new(UInt32Array::from_iter_values(
                records.iter().map(|r| r.position.partition),
            )),
            false,
        ),
        (
            "_offset".into(),
            Arc::new(UInt64Array::from_iter_values(
                records.iter().map(|r| r.position.offset),
            )),
            false,
        ),
        (
            "_event_time_ms".into(),
            Arc::new(Int64Array::from_iter(
                records.iter().map(|r| r.event_timestamp_ms),
            )),
            true,
        ),
        (
            "_scored_time_ms".into(),
            Arc::new(Int64Array::from_iter_values(
                records.iter().map(|r| r.timestamp_ms),
            )),
            false,
        ),
        (
            "_correlation_id".into(),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.correlation_id.as_str()),
            )),
            false,
        ),
        (
            "_model".into(),
            Arc::new(StringArray::from_iter_values(
                records
                    .iter()
                    .map(|r| format!("{}:{}", r.model_name, r.model_version)),
            )),
            false,
        ),
    ];
    record_batch(columns, what)
}

/// The record batch of a scored batch: schema fields, predictions, positions.
pub(crate) fn scored_batch(batch: &ScoredBatch, what: &Path) -> Result<RecordBatch> {
    record_batch(scored_columns(batch)?, what)
}

/// `batches` (one schema) as one Parquet file in memory, Snappy-compressed (the Blob sink's
/// Parquet parts).
#[cfg(feature = "azure")]
pub(crate) fn encode(batches: &[RecordBatch], what: &Path) -> Result<Vec<u8>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), first.schema(), Some(props)).map_err(|e| parquet_error(what, e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| parquet_error(what, e))?;
    }
    writer.into_inner().map_err(|e| parquet_error(what, e))
}

/// A row read back from Parquet: its fields, and its time (Unix milliseconds) when known.
pub type JsonRow = (serde_json::Map<String, serde_json::Value>, Option<i64>);

/// The rows of a Parquet file (held in memory) as JSON objects, column name → value (nulls
/// left out), with the time of each row: `_event_time_ms` where set, else `_scored_time_ms`, when the
/// file has them. Columns whose names start with `_` (positions, times, model) are not part of
/// the rows; a text column `inputs` (parts of records written without a pipeline) holds the
/// row's fields as a JSON object, and `outputs` beside it is left out. Numbers, booleans and text are read; another column type is an error naming it.
pub fn json_rows(bytes: bytes::Bytes, what: &Path) -> Result<Vec<JsonRow>> {
    use serde_json::Value;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| parquet_error(what, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(what, e))?;
        let schema = batch.schema();
        let time_columns: Vec<usize> = ["_event_time_ms", "_scored_time_ms"]
            .iter()
            .filter_map(|n| schema.index_of(n).ok())
            .collect();
        let start = out.len();
        out.extend((0..batch.num_rows()).map(|_| (serde_json::Map::new(), None)));
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name();
            if name.starts_with('_') || name == "outputs" && is_text(field.data_type()) {
                continue;
            }
            // Parts of a records-only sink: the inputs are one JSON text column.
            if name == "inputs" && is_text(field.data_type()) {
                for r in 0..batch.num_rows() {
                    let text = match array.data_type() {
                        ArrowType::LargeUtf8 => array.as_string::<i64>().value(r),
                        _ => array.as_string::<i32>().value(r),
                    };
                    if array.is_null(r) {
                        continue;
                    }
                    let serde_json::Value::Object(fields) = serde_json::from_str(text).map_err(|e| {
                        parquet_error(
                            what,
                            format!("row {}: column `inputs` is not a JSON object: {e}", start + r),
                        )
                    })?
                    else {
                        return Err(parquet_error(
                            what,
                            format!("row {}: column `inputs` is not a JSON object", start + r),
                        ));
                    };
                    out[start + r].0.extend(fields);
                }
                continue;
            }
            let value = |r: usize| -> Result<Option<Value>> {
                if array.is_null(r) {
                    return Ok(None);
                }
                Ok(Some(match array.data_type() {
                    ArrowType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(r)),
                    ArrowType::Float32 => {
                        Value::from(f64::from(array.as_primitive::<Float32Type>().value(r)))
                    }
                    ArrowType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(r)),
                    ArrowType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(r)),
                    ArrowType::UInt32 => {
                        Value::from(array.as_primitive::<arrow_array::types::UInt32Type>().value(r))
                    }
                    ArrowType::UInt64 => {
                        Value::from(array.as_primitive::<arrow_array::types::UInt64Type>().value(r))
                    }
                    ArrowType::Boolean => Value::from(array.as_boolean().value(r)),
                    ArrowType::Utf8 => Value::from(array.as_string::<i32>().value(r)),
                    ArrowType::LargeUtf8 => Value::from(array.as_string::<i64>().value(r)),
                    other => {
                        return Err(parquet_error(
                            what,
                            format!(
                                "column `{name}` has type {other}, which cannot be replayed as an event field (numbers, booleans and text can)"
                            ),
                        ));
                    }
                }))
            };
            for r in 0..batch.num_rows() {
                if let Some(v) = value(r)? {
                    out[start + r].0.insert(name.clone(), v);
                }
            }
        }
        // The event time where there is one, else the scoring time.
        for &i in time_columns.iter().rev() {
            if let Some(t) = batch.column(i).as_primitive_opt::<Int64Type>() {
                for r in 0..batch.num_rows() {
                    if !t.is_null(r) {
                        out[start + r].1 = Some(t.value(r));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn is_text(t: &ArrowType) -> bool {
    matches!(t, ArrowType::Utf8 | ArrowType::LargeUtf8)
}

/// A record batch of named columns; nullability is declared, not read from the data, so that
/// every batch of a part file has the same schema.
fn record_batch(columns: Vec<(String, ArrayRef, bool)>, root: &Path) -> Result<RecordBatch> {
    let fields: Vec<ArrowField> = columns
        .iter()
        .map(|(name, a, nullable)| ArrowField::new(name.as_str(), a.data_type().clone(), *nullable))
        .collect();
    let schema = Arc::new(ArrowSchema::new(fields));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a, _)| a).collect())
        .map_err(|e| parquet_error(root, e))
}

/// The columns of a scored batch: schema fields, predictions, positions.
fn scored_columns(batch: &ScoredBatch) -> Result<Vec<(String, ArrayRef, bool)>> {
    let frame = batch.frame();
    let schema = frame.schema();
    let mut columns: Vec<(String, ArrayRef, bool)> = Vec::with_capacity(schema.len() + 8);
    for (i, (field, column)) in schema.fields().iter().zip(frame.columns()).enumerate() {
        let mask = frame.null_mask(i);
        let valid = |r: usize| !mask.is_some_and(|m| m[r]);
        let array: ArrayRef = match column {
            Column::Float(v) => Arc::new(Float64Array::from_iter(
                v.iter().enumerate().map(|(r, &x)| valid(r).then_some(x)),
            )),
            Column::Int(v) => Arc::new(Int64Array::from_iter(
                v.iter().enumerate().map(|(r, &x)| valid(r).then_some(x)),
            )),
            Column::Bool(v) => Arc::new(BooleanArray::from_iter(
                v.iter().enumerate().map(|(r, &x)| valid(r).then_some(x)),
            )),
            Column::Categorical(codes) => {
                let vocab = field.vocabulary();
                Arc::new(StringArray::from_iter(codes.iter().enumerate().map(|(r, &c)| {
                    valid(r).then(|| vocab.and_then(|v| v.value(c)).unwrap_or(UNKNOWN_CATEGORY))
                })))
            }
            Column::String(v) => Arc::new(StringArray::from_iter(
                v.iter().enumerate().map(|(r, s)| valid(r).then_some(s.as_str())),
            )),
        };
        columns.push((field.name.clone(), array, field.nullable));
    }
    match batch.predictions() {
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => {
            columns.push((
                "label".into(),
                Arc::new(StringArray::from_iter_values(
                    predicted.iter().map(|&p| labels[p].as_str()),
                )),
                false,
            ));
            for (k, l) in labels.iter().enumerate() {
                columns.push((
                    format!("probability_{l}"),
                    Arc::new(Float64Array::from_iter_values(
                        probabilities.column(k).iter().copied(),
                    )),
                    false,
                ));
            }
        }
        Predictions::Regression { values } => {
            columns.push((
                "prediction".into(),
                Arc::new(Float64Array::from_iter_values(values.iter().copied())),
                false,
            ));
        }
    }
    let rows = batch.rows();
    let info = batch.info();
    columns.push((
        "_partition".into(),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|(p, _)| p.partition),
        )),
        false,
    ));
    columns.push((
        "_offset".into(),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(p, _)| p.offset))),
        false,
    ));
    columns.push((
        "_event_time_ms".into(),
        Arc::new(Int64Array::from_iter(rows.iter().map(|(_, t)| *t))),
        true,
    ));
    columns.push((
        "_scored_time_ms".into(),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|_| info.timestamp_ms),
        )),
        false,
    ));
    columns.push((
        "_correlation_id".into(),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|_| info.correlation_id.as_str()),
        )),
        false,
    ));
    let model = format!("{}:{}", info.model_name, info.model_version);
    columns.push((
        "_model".into(),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| model.as_str()))),
        false,
    ));
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, _, _)) = columns.iter().find(|(n, _, _)| !seen.insert(n.as_str())) {
        return Err(Error::InvalidSetting {
            name: "parquet columns",
            reason: format!(
                "the model has a field named `{dup}`, which is also a prediction or position column; rename the field"
            ),
        });
    }
    Ok(columns)
}

/// The finished Parquet files under `dir` (recursively, in path order), skipping hidden
/// in-progress files.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if path.is_dir() {
                walk(&path, out)?;
            } else if !hidden && path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// Reads Parquet files (a file, or every finished `.parquet` file under a directory) into one
/// frame against `schema`.
///
/// Columns are matched to fields by name; other columns (our prediction and position columns,
/// anything else) are ignored. Values are converted with the rules of JSON input: integers fit
/// float fields, strings name categories, nulls are missing values. A column absent from a file
/// is missing in every row of it, which only a nullable field accepts. A value that does not
/// fit its field is an error naming the file, the row and the field.
pub fn read_frame(path: &Path, schema: Arc<Schema>) -> Result<Frame> {
    let files = if path.is_dir() {
        parquet_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        return Err(Error::Parquet {
            path: path.to_path_buf(),
            reason: "no .parquet file in this directory".into(),
        });
    }
    let mut builder = FrameBuilder::new(schema.clone(), 0);
    for file in &files {
        let f = std::fs::File::open(file).map_err(|e| Error::io("open", file, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| parquet_error(file, e))?;
        let mut row_in_file = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(file, e))?;
            let columns: Vec<Option<&ArrayRef>> = schema
                .fields()
                .iter()
                .map(|f| batch.column_by_name(&f.name))
                .collect();
            let mut cells: Vec<Cell<'_>> = Vec::with_capacity(schema.len());
            for r in 0..batch.num_rows() {
                cells.clear();
                cells.extend(
                    columns
                        .iter()
                        .map(|c| c.map_or(Cell::Missing, |a| cell(a.as_ref(), r))),
                );
                if let Err(problems) = builder.push_row(&cells) {
                    let what = problems
                        .iter()
                        .map(|p| format!("field `{}`: {}", p.field, p.problem))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(parquet_error(file, format!("row {}: {what}", row_in_file + r)));
                }
            }
            row_in_file += batch.num_rows();
        }
    }
    Ok(builder.finish())
}

/// The value at `row` of an Arrow array, typed for [`FrameBuilder`].
fn cell(array: &dyn Array, row: usize) -> Cell<'_> {
    if array.is_null(row) {
        return Cell::Missing;
    }
    match array.data_type() {
        ArrowType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Float32 => Cell::Float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        ArrowType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::Int32 => Cell::Int(i64::from(array.as_primitive::<Int32Type>().value(row))),
        ArrowType::Int16 => Cell::Int(i64::from(
            array.as_primitive::<arrow_array::types::Int16Type>().value(row),
        )),
        ArrowType::Int8 => Cell::Int(i64::from(
            array.as_primitive::<arrow_array::types::Int8Type>().value(row),
        )),
        ArrowType::UInt32 => Cell::Int(i64::from(
            array.as_primitive::<arrow_array::types::UInt32Type>().value(row),
        )),
        ArrowType::UInt64 => {
            let v = array.as_primitive::<arrow_array::types::UInt64Type>().value(row);
            i64::try_from(v).map_or(Cell::Float(v as f64), Cell::Int)
        }
        ArrowType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        ArrowType::Utf8 => Cell::Str(array.as_string::<i32>().value(row)),
        ArrowType::LargeUtf8 => Cell::Str(array.as_string::<i64>().value(row)),
        ArrowType::Utf8View => Cell::Str(array.as_string_view().value(row)),
        _ => Cell::Nested("a value of an unsupported Parquet type"),
    }
}
