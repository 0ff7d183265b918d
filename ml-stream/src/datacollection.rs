//! The Azure ML model data collection format: one JSON line per batch and collection
//! (`model_inputs`, `model_outputs`), joined by `correlationid`, in the path layout
//! `{root}/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/{instance}.jsonl`.
//!
//! Tools that read Azure ML collected data read ours. One extension attribute is added:
//! `positions`, the source position (partition, offset) of each row in `data`, so a reader can
//! drop the duplicates that at-least-once delivery may produce.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::batch::ScoredBatch;
use crate::error::{Error, Result};
use crate::jsonwrite::{write_int, write_str};
use crate::traits::{InferenceRecord, SourcePosition};

/// The collection of model inputs.
pub const MODEL_INPUTS: &str = "model_inputs";
/// The collection of model outputs.
pub const MODEL_OUTPUTS: &str = "model_outputs";

/// One line of a data-collection file (a CloudEvents 1.0 envelope).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectedLine {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique id of this line.
    pub id: String,
    /// Who produced it (`streamscore/{endpoint}/{deployment}`).
    pub source: String,
    /// `azureml.inference.model_inputs` or `azureml.inference.model_outputs`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The rows: input objects, or output objects.
    pub data: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The request path (`/score`), or `stream` for stream scoring.
    #[serde(default)]
    pub path: String,
    /// The HTTP method, or `STREAM`.
    #[serde(default)]
    pub method: String,
    /// `bytes 0-{len-1}/{len}` of `data`, as Azure ML writes it.
    #[serde(default)]
    pub contentrange: String,
    /// Joins an inputs line with its outputs line.
    pub correlationid: String,
    /// The request id.
    #[serde(default)]
    pub xrequestid: String,
    /// The model version (`name:version`).
    #[serde(default)]
    pub modelversion: String,
    /// How the data was collected.
    #[serde(default)]
    pub collectdatatype: String,
    /// The collecting agent (`streamscore/0.1.0`).
    #[serde(default)]
    pub agent: String,
    /// Extension: the source position of each row of `data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<SourcePosition>,
}

/// Builds the inputs and outputs lines for a batch of records that share a correlation id.
pub fn lines_for(
    records: &[InferenceRecord],
    endpoint: &str,
    deployment: &str,
) -> (CollectedLine, CollectedLine) {
    let first = records.first();
    let time = first.map_or(0, |r| r.timestamp_ms);
    let make = |collection: &str, data: Vec<serde_json::Map<String, serde_json::Value>>| {
        let len = serde_json::to_vec(&data).map_or(0, |b| b.len());
        CollectedLine {
            specversion: "1.0".into(),
            id: uuid::Uuid::new_v4().to_string(),
            source: format!("streamscore/{endpoint}/{deployment}"),
            ty: format!("azureml.inference.{collection}"),
            datacontenttype: "application/json".into(),
            time: rfc3339(time),
            data,
            path: "stream".into(),
            method: "STREAM".into(),
            contentrange: format!("bytes 0-{}/{len}", len.saturating_sub(1)),
            correlationid: first.map(|r| r.correlation_id.clone()).unwrap_or_default(),
            xrequestid: first.map(|r| r.request_id.clone()).unwrap_or_default(),
            modelversion: first
                .map(|r| format!("{}:{}", r.model_name, r.model_version))
                .unwrap_or_default(),
            collectdatatype: "pandas.core.frame.DataFrame".into(),
            agent: concat!("streamscore/", env!("CARGO_PKG_VERSION")).into(),
            positions: records.iter().map(|r| r.position.clone()).collect(),
        }
    };
    (
        make(MODEL_INPUTS, records.iter().map(|r| r.inputs.clone()).collect()),
        make(MODEL_OUTPUTS, records.iter().map(|r| r.outputs.clone()).collect()),
    )
}

/// One batch's time (Unix milliseconds) and its serialized `model_inputs` and `model_outputs`
/// lines.
pub type BatchLines = (i64, Vec<u8>, Vec<u8>);

/// The serialized `model_inputs` and `model_outputs` lines of `records`, one pair per batch
/// (a run of records sharing a correlation id), each with the batch's time: what a sink of the
/// data-collection layout appends for [`InferenceSink::write_batch`](crate::InferenceSink::write_batch).
pub fn serialized_lines(
    records: &[InferenceRecord],
    endpoint: &str,
    deployment: &str,
) -> crate::error::Result<Vec<BatchLines>> {
    let to_bytes = |line: &CollectedLine| {
        serde_json::to_vec(line).map_err(|e| crate::error::Error::Internal(e.to_string()))
    };
    records
        .chunk_by(|a, b| a.correlation_id == b.correlation_id)
        .map(|batch| {
            let (inputs, outputs) = lines_for(batch, endpoint, deployment);
            Ok((batch[0].timestamp_ms, to_bytes(&inputs)?, to_bytes(&outputs)?))
        })
        .collect()
}

/// Appends the line of `collection` (`model_inputs` or `model_outputs`) for a scored batch to
/// `buf`, with the same fields as [`lines_for`] but written straight from the batch's serialized
/// rows (no record or value tree is built). No line break is appended.
pub fn write_line(
    buf: &mut Vec<u8>,
    batch: &ScoredBatch,
    collection: &str,
    endpoint: &str,
    deployment: &str,
) {
    let info = batch.info();
    let (rows, ends) = if collection == MODEL_INPUTS {
        batch.inputs_json()
    } else {
        batch.outputs_json()
    };
    buf.extend_from_slice(b"{\"specversion\":\"1.0\",\"id\":");
    write_str(buf, &uuid::Uuid::new_v4().to_string());
    buf.extend_from_slice(b",\"source\":");
    write_str(buf, &format!("streamscore/{endpoint}/{deployment}"));
    buf.extend_from_slice(b",\"type\":");
    write_str(buf, &format!("azureml.inference.{collection}"));
    buf.extend_from_slice(b",\"datacontenttype\":\"application/json\",\"time\":");
    write_str(buf, &rfc3339(info.timestamp_ms));
    buf.extend_from_slice(b",\"data\":[");
    let data_start = buf.len() - 1;
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(&rows[start..end]);
        start = end;
    }
    buf.push(b']');
    let len = buf.len() - data_start;
    buf.extend_from_slice(b",\"path\":\"stream\",\"method\":\"STREAM\",\"contentrange\":\"bytes 0-");
    write_int(buf, len.saturating_sub(1));
    buf.push(b'/');
    write_int(buf, len);
    buf.extend_from_slice(b"\",\"correlationid\":");
    write_str(buf, &info.correlation_id);
    buf.extend_from_slice(b",\"xrequestid\":");
    write_str(buf, &info.correlation_id);
    buf.extend_from_slice(b",\"modelversion\":");
    write_str(buf, &format!("{}:{}", info.model_name, info.model_version));
    buf.extend_from_slice(b",\"collectdatatype\":\"pandas.core.frame.DataFrame\",\"agent\":");
    write_str(buf, concat!("streamscore/", env!("CARGO_PKG_VERSION")));
    if !batch.is_empty() {
        buf.extend_from_slice(b",\"positions\":[");
        for (i, (p, _)) in batch.rows().iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"partition\":");
            write_int(buf, p.partition);
            buf.extend_from_slice(b",\"offset\":");
            write_int(buf, p.offset);
            buf.push(b'}');
        }
        buf.push(b']');
    }
    buf.push(b'}');
}

/// RFC 3339 UTC with milliseconds for Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Parses an RFC 3339 time to Unix milliseconds.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Parses a `since`/`until` value: RFC 3339 (`2026-11-27T15:00:00Z`) or a date (`2026-11-27`,
/// midnight UTC), to Unix milliseconds.
pub fn parse_time_bound(name: &str, text: &str) -> Result<i64> {
    if let Some(ms) = parse_time_ms(text) {
        return Ok(ms);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(text, &date_format) {
        Ok(d) => Ok((d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64),
        Err(_) => Err(Error::InvalidSetting {
            name: if name == "since" { "since" } else { "until" },
            reason: format!(
                "`{text}` is not a time; use RFC 3339 (2026-11-27T15:00:00Z) or a date (2026-11-27)"
            ),
        }),
    }
}

/// The hour directory of `collection` for a time: `{root}/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}`.
pub fn hour_dir(root: &Path, endpoint: &str, deployment: &str, collection: &str, ms: i64) -> PathBuf {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    root.join(endpoint)
        .join(deployment)
        .join(collection)
        .join(format!("{:04}", t.year()))
        .join(format!("{:02}", u8::from(t.month())))
        .join(format!("{:02}", t.day()))
        .join(format!("{:02}", t.hour()))
}

/// Reads every finished line of the `.jsonl` files under `dir` (recursively, in path order),
/// skipping hidden in-progress files.
pub fn read_lines(dir: &Path) -> Result<Vec<CollectedLine>> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| Error::io("read", &f, e))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed: CollectedLine = serde_json::from_str(line).map_err(|e| Error::SourceFailed {
                source_name: f.display().to_string(),
                reason: format!("line {} is not a data-collection record: {e}", i + 1),
            })?;
            out.push(parsed);
        }
    }
    Ok(out)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if !hidden && path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}
