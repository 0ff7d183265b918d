//! Inference logs → a time-partitioned Parquet data set (feature `parquet`): the weekly export
//! of the reference pipeline, behind `streamscore export`.
//!
//! Input: data-collection lines (`model_inputs` and `model_outputs`, joined by
//! `correlationid`), from a local inference-log directory ([`read_local`]) or Blob Storage
//! (`azure_blob::BlobStore::read_lines`, feature `azure`). Output:
//! `{out}/date=YYYY-MM-DD/hour=HH/part-{instance}.parquet` (Hive partitioning, which pyarrow,
//! Spark and Azure Synapse read as columns `date` and `hour`), one row per scored row with
//! the input fields, the output fields, then `_partition`, `_offset`, `_scored_time_ms`,
//! `_correlation_id`, `_model`. Column types come from the JSON values: integers → `int64`,
//! other numbers → `double`, booleans → `boolean`, text → `utf8`; a field with mixed kinds is
//! written as text (its JSON); every column is nullable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::Compression;
use ::parquet::file::properties::WriterProperties;
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema};
use serde_json::{Map, Value};

use crate::datacollection::{CollectedLine, MODEL_INPUTS, MODEL_OUTPUTS};
use crate::error::{Error, Result};

/// One scored row, inputs joined with outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRow {
    /// When the batch was scored (Unix milliseconds).
    pub time_ms: i64,
    /// The batch's correlation id.
    pub correlation_id: String,
    /// `name:version`.
    pub model: String,
    /// Source partition.
    pub partition: u32,
    /// Source offset.
    pub offset: u64,
    /// Input fields.
    pub inputs: Map<String, Value>,
    /// Output fields.
    pub outputs: Map<String, Value>,
}

fn time_ms(line: &CollectedLine) -> Result<i64> {
    let t = time::OffsetDateTime::parse(&line.time, &time::format_description::well_known::Rfc3339).map_err(
        |e| Error::SourceFailed {
            source_name: "inference log".into(),
            reason: format!("line {} has a bad time `{}`: {e}", line.id, line.time),
        },
    )?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Keeps the lines whose `time` lies in `[since, until)` (Unix milliseconds; `None`: open).
pub fn in_range(
    lines: Vec<CollectedLine>,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<CollectedLine>> {
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let t = time_ms(&line)?;
        if since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u) {
            out.push(line);
        }
    }
    Ok(out)
}

/// Joins inputs lines with outputs lines by `correlationid`, row by row.
pub fn join(inputs: &[CollectedLine], outputs: &[CollectedLine]) -> Result<Vec<ExportRow>> {
    let mut by_id: HashMap<&str, VecDeque<&CollectedLine>> = HashMap::new();
    for o in outputs {
        by_id.entry(o.correlationid.as_str()).or_default().push_back(o);
    }
    let mut rows = Vec::new();
    for i in inputs {
        let o = by_id
            .get_mut(i.correlationid.as_str())
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| Error::SourceFailed {
                source_name: "inference log".into(),
                reason: format!(
                    "the model_inputs line with correlationid {} has no model_outputs line; export whole hours of a log",
                    i.correlationid
                ),
            })?;
        if o.data.len() != i.data.len() {
            return Err(Error::SourceFailed {
                source_name: "inference log".into(),
                reason: format!(
                    "correlationid {}: {} input rows but {} output rows",
                    i.correlationid,
                    i.data.len(),
                    o.data.len()
                ),
            });
        }
        let t = time_ms(i)?;
        for (k, (input, output)) in i.data.iter().zip(&o.data).enumerate() {
            let position = i.positions.get(k);
            rows.push(ExportRow {
                time_ms: t,
                correlation_id: i.correlationid.clone(),
                model: i.modelversion.clone(),
                partition: position.map_or(0, |p| p.partition),
                offset: position.map_or(k as u64, |p| p.offset),
                inputs: input.clone(),
                outputs: output.clone(),
            });
        }
    }
    Ok(rows)
}

/// The `model_inputs` and `model_outputs` lines under a local inference-log directory (the
/// JSONL sink's root, or any directory inside it), and how many files were read. Hidden
/// in-progress files and dead letters are skipped.
pub fn read_local(dir: &Path) -> Result<(Vec<CollectedLine>, Vec<CollectedLine>, usize)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "dead_letters" {
                continue;
            }
            if path.is_dir() {
                walk(&path, out)?;
            } else if name.ends_with(".jsonl") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io("read", f, e))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed: CollectedLine = serde_json::from_str(line).map_err(|e| Error::SourceFailed {
                source_name: f.display().to_string(),
                reason: format!("line {} is not a data-collection record: {e}", n + 1),
            })?;
            match parsed.ty.strip_prefix("azureml.inference.") {
                Some(MODEL_INPUTS) => inputs.push(parsed),
                Some(MODEL_OUTPUTS) => outputs.push(parsed),
                _ => {}
            }
        }
    }
    Ok((inputs, outputs, files.len()))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Text,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        _ => Kind::Text,
    }
}

fn merge(a: Kind, b: Kind) -> Kind {
    match (a, b) {
        (x, y) if x == y => x,
        (Kind::Null, y) => y,
        (x, Kind::Null) => x,
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
        _ => Kind::Text,
    }
}

/// The columns of the data set: input fields then output fields, each with the kind of its
/// values over every row.
fn columns(rows: &[ExportRow]) -> Result<Vec<(String, bool, Kind)>> {
    let mut order: Vec<(String, bool, Kind)> = Vec::new();
    let mut index: HashMap<(bool, String), usize> = HashMap::new();
    for row in rows {
        for (is_output, map) in [(false, &row.inputs), (true, &row.outputs)] {
            for (k, v) in map {
                match index.get(&(is_output, k.clone())) {
                    Some(&i) => order[i].2 = merge(order[i].2, kind_of(v)),
                    None => {
                        index.insert((is_output, k.clone()), order.len());
                        order.push((k.clone(), is_output, kind_of(v)));
                    }
                }
            }
        }
    }
    // Inputs first, then outputs, each in order of first appearance.
    order.sort_by_key(|(_, is_output, _)| *is_output);
    let mut seen = std::collections::HashSet::new();
    for (name, _, _) in &order {
        if !seen.insert(name.as_str()) || name.starts_with('_') && FIXED.contains(&name.as_str()) {
            return Err(Error::InvalidSetting {
                name: "export columns",
                reason: format!(
                    "the field `{name}` is both an input and an output (or a position column); rename it"
                ),
            });
        }
    }
    Ok(order)
}

const FIXED: [&str; 5] = [
    "_partition",
    "_offset",
    "_scored_time_ms",
    "_correlation_id",
    "_model",
];

fn record_batch(rows: &[&ExportRow], cols: &[(String, bool, Kind)]) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, is_output, kind) in cols {
        let get = |r: &&ExportRow| -> Option<Value> {
            let map = if *is_output { &r.outputs } else { &r.inputs };
            map.get(name).filter(|v| !v.is_null()).cloned()
        };
        let (ty, array): (ArrowType, ArrayRef) = match kind {
            Kind::Bool => (
                ArrowType::Boolean,
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|r| get(r).and_then(|v| v.as_bool())),
                )),
            ),
            Kind::Int => (
                ArrowType::Int64,
                Arc::new(Int64Array::from_iter(
                    rows.iter().map(|r| get(r).and_then(|v| v.as_i64())),
                )),
            ),
            Kind::Float => (
                ArrowType::Float64,
                Arc::new(Float64Array::from_iter(
                    rows.iter().map(|r| get(r).and_then(|v| v.as_f64())),
                )),
            ),
            Kind::Text | Kind::Null => (
                ArrowType::Utf8,
                Arc::new(StringArray::from_iter(rows.iter().map(|r| {
                    get(r).map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                }))),
            ),
        };
        fields.push(ArrowField::new(name.as_str(), ty, true));
        arrays.push(array);
    }
    fields.push(ArrowField::new("_partition", ArrowType::UInt32, false));
    arrays.push(Arc::new(UInt32Array::from_iter_values(
        rows.iter().map(|r| r.partition),
    )));
    fields.push(ArrowField::new("_offset", ArrowType::UInt64, false));
    arrays.push(Arc::new(UInt64Array::from_iter_values(
        rows.iter().map(|r| r.offset),
    )));
    fields.push(ArrowField::new("_scored_time_ms", ArrowType::Int64, false));
    arrays.push(Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.time_ms),
    )));
    fields.push(ArrowField::new("_correlation_id", ArrowType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.correlation_id.as_str()),
    )));
    fields.push(ArrowField::new("_model", ArrowType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.model.as_str()),
    )));
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays).map_err(|e| Error::Parquet {
        path: PathBuf::new(),
        reason: e.to_string(),
    })
}

/// The partition directory of a time: `date=YYYY-MM-DD/hour=HH`.
pub fn partition_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "date={:04}-{:02}-{:02}/hour={:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

/// Writes `rows` under `out` as `{partition}/part-{instance}.parquet`, one file per hour
/// (written under a hidden name, fsynced, then renamed), calling `progress` after each file
/// with its relative path and row count. Returns the files written (relative paths, rows).
pub fn write_partitioned(
    rows: &[ExportRow],
    out: &Path,
    instance: &str,
    mut progress: impl FnMut(&str, usize),
) -> Result<Vec<(String, usize)>> {
    let cols = columns(rows)?;
    let mut parts: BTreeMap<String, Vec<&ExportRow>> = BTreeMap::new();
    for r in rows {
        parts.entry(partition_of(r.time_ms)).or_default().push(r);
    }
    let mut written = Vec::new();
    for (partition, part_rows) in parts {
        let dir = out.join(&partition);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let name = format!("part-{instance}.parquet");
        let tmp = dir.join(format!(".{name}.inprogress"));
        let done = dir.join(&name);
        let batch = record_batch(&part_rows, &cols)?;
        let parquet_error = |e: ::parquet::errors::ParquetError| Error::Parquet {
            path: tmp.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet_error)?;
        writer.write(&batch).map_err(parquet_error)?;
        let file = writer.into_inner().map_err(parquet_error)?;
        file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &done).map_err(|e| Error::io("rename", &done, e))?;
        let rel = format!("{partition}/{name}");
        progress(&rel, part_rows.len());
        written.push((rel, part_rows.len()));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_merge_to_the_widest() {
        assert_eq!(merge(Kind::Int, Kind::Float), Kind::Float);
        assert_eq!(merge(Kind::Null, Kind::Int), Kind::Int);
        assert_eq!(merge(Kind::Bool, Kind::Int), Kind::Text);
        assert_eq!(kind_of(&serde_json::json!(3)), Kind::Int);
        assert_eq!(kind_of(&serde_json::json!(3.5)), Kind::Float);
        assert_eq!(kind_of(&serde_json::json!("a")), Kind::Text);
        assert_eq!(partition_of(0), "date=1970-01-01/hour=00");
        assert_eq!(partition_of(1_795_000_000_000), "date=2026-11-18/hour=11");
    }
}
