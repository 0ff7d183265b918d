//! [`ScoredBatch`]: a scored batch as the pipeline hands it to sinks, with its inputs and
//! outputs already serialized once, so that sinks write bytes or columns instead of building a
//! record per row.

use std::sync::OnceLock;
use std::time::Instant;

use ml_core::{Frame, Predictions};

use crate::jsonwrite::{write_f64, write_str};
use crate::traits::{InferenceRecord, SourcePosition};

/// Who scored a batch, and when: the fields shared by every record of a [`ScoredBatch`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchInfo {
    /// Id shared by the input and output lines of the batch (Azure ML's `correlationid`); also
    /// the request id of its records.
    pub correlation_id: String,
    /// When the batch was scored (Unix milliseconds).
    pub timestamp_ms: i64,
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// Scoring time of the batch, in milliseconds.
    pub latency_ms: f64,
    /// When the pipeline read the batch's events from the source.
    pub read_at: Instant,
}

/// A scored batch: the frame that was scored, its predictions, where each row came from, and the
/// inputs and outputs of every row as JSON objects (`{"x":1.5}`), serialized once for all sinks.
///
/// [`ScoredBatch::records`] gives the same content as [`InferenceRecord`]s, built on first use,
/// for sinks that take records.
#[derive(Debug)]
pub struct ScoredBatch {
    info: BatchInfo,
    rows: Vec<(SourcePosition, Option<i64>)>,
    frame: Frame,
    predictions: Predictions,
    inputs_json: Vec<u8>,
    input_ends: Vec<usize>,
    outputs_json: Vec<u8>,
    output_ends: Vec<usize>,
    records: OnceLock<Vec<InferenceRecord>>,
}

/// Why a [`ScoredBatch`] could not be assembled (the scorer answered for a different number of
/// rows than it was given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCountMismatch {
    /// Rows scored.
    pub rows: usize,
    /// Predictions returned.
    pub predictions: usize,
}

impl std::fmt::Display for RowCountMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the scorer returned {} predictions for {} rows",
            self.predictions, self.rows
        )
    }
}

impl ScoredBatch {
    /// Assembles a batch. `inputs_json` holds one JSON object per row, back to back, and
    /// `input_ends[r]` is where row `r`'s object ends. The outputs are serialized here: `label`
    /// and `probability_<label>` for classifiers, `prediction` for regressors.
    pub fn new(
        info: BatchInfo,
        rows: Vec<(SourcePosition, Option<i64>)>,
        frame: Frame,
        predictions: Predictions,
        inputs_json: Vec<u8>,
        input_ends: Vec<usize>,
    ) -> Result<ScoredBatch, RowCountMismatch> {
        let n = rows.len();
        if predictions.len() != n || frame.n_rows() != n || input_ends.len() != n {
            return Err(RowCountMismatch {
                rows: n.max(frame.n_rows()),
                predictions: predictions.len(),
            });
        }
        Ok(ScoredBatch::assemble(
            info,
            rows,
            frame,
            predictions,
            inputs_json,
            input_ends,
        ))
    }

    /// [`ScoredBatch::new`] for callers that checked the lengths.
    pub(crate) fn assemble(
        info: BatchInfo,
        rows: Vec<(SourcePosition, Option<i64>)>,
        frame: Frame,
        predictions: Predictions,
        inputs_json: Vec<u8>,
        input_ends: Vec<usize>,
    ) -> ScoredBatch {
        let (outputs_json, output_ends) = serialize_outputs(&predictions);
        ScoredBatch {
            info,
            rows,
            frame,
            predictions,
            inputs_json,
            input_ends,
            outputs_json,
            output_ends,
            records: OnceLock::new(),
        }
    }

    /// The shared fields.
    pub fn info(&self) -> &BatchInfo {
        &self.info
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Per row: where it came from and the event's own timestamp.
    pub fn rows(&self) -> &[(SourcePosition, Option<i64>)] {
        &self.rows
    }

    /// The rows that were scored.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// What the model answered.
    pub fn predictions(&self) -> &Predictions {
        &self.predictions
    }

    /// Row `row`'s input, a JSON object.
    pub fn input_json(&self, row: usize) -> &[u8] {
        slice(&self.inputs_json, &self.input_ends, row)
    }

    /// Row `row`'s output, a JSON object.
    pub fn output_json(&self, row: usize) -> &[u8] {
        slice(&self.outputs_json, &self.output_ends, row)
    }

    /// Every input object, back to back with no separator (see [`ScoredBatch::input_json`]).
    pub fn inputs_json(&self) -> (&[u8], &[usize]) {
        (&self.inputs_json, &self.input_ends)
    }

    /// Every output object, back to back with no separator.
    pub fn outputs_json(&self) -> (&[u8], &[usize]) {
        (&self.outputs_json, &self.output_ends)
    }

    /// The batch as records (built on first call, then shared).
    pub fn records(&self) -> &[InferenceRecord] {
        self.records.get_or_init(|| {
            let object = |bytes: &[u8]| serde_json::from_slice(bytes).unwrap_or_default();
            self.rows
                .iter()
                .enumerate()
                .map(|(r, (position, event_ts))| InferenceRecord {
                    correlation_id: self.info.correlation_id.clone(),
                    request_id: self.info.correlation_id.clone(),
                    timestamp_ms: self.info.timestamp_ms,
                    event_timestamp_ms: *event_ts,
                    model_name: self.info.model_name.clone(),
                    model_version: self.info.model_version.clone(),
                    position: position.clone(),
                    inputs: object(self.input_json(r)),
                    outputs: object(self.output_json(r)),
                    latency_ms: self.info.latency_ms,
                })
                .collect()
        })
    }
}

fn slice<'a>(buf: &'a [u8], ends: &[usize], row: usize) -> &'a [u8] {
    let start = if row == 0 { 0 } else { ends[row - 1] };
    &buf[start..ends[row]]
}

fn serialize_outputs(predictions: &Predictions) -> (Vec<u8>, Vec<usize>) {
    let n = predictions.len();
    let mut ends = Vec::with_capacity(n);
    match predictions {
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => {
            // The per-label pieces are the same on every row: build them once.
            let mut label_values = Vec::with_capacity(labels.len());
            let mut prob_keys = Vec::with_capacity(labels.len());
            for l in labels.iter() {
                let mut v = b"{\"label\":".to_vec();
                write_str(&mut v, l);
                label_values.push(v);
                let mut k = b",".to_vec();
                write_str(&mut k, &format!("probability_{l}"));
                k.push(b':');
                prob_keys.push(k);
            }
            let mut buf = Vec::with_capacity(n * (24 + 28 * labels.len()));
            for (r, &p) in predicted.iter().enumerate() {
                buf.extend_from_slice(&label_values[p]);
                for (k, key) in prob_keys.iter().enumerate() {
                    buf.extend_from_slice(key);
                    write_f64(&mut buf, probabilities[[r, k]]);
                }
                buf.push(b'}');
                ends.push(buf.len());
            }
            (buf, ends)
        }
        Predictions::Regression { values } => {
            let mut buf = Vec::with_capacity(n * 36);
            for &v in values {
                buf.extend_from_slice(b"{\"prediction\":");
                write_f64(&mut buf, v);
                buf.push(b'}');
                ends.push(buf.len());
            }
            (buf, ends)
        }
    }
}
