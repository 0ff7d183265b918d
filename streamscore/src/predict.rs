//! Batch prediction over CSV files: what `streamscore predict` does, callable from Rust.

use std::io::Write;
use std::path::Path;

use ml_core::{CsvTable, Error, Frame, Model, Predictions, ReadOptions, Result};

/// A scored CSV file.
#[derive(Debug)]
pub struct ScoredCsv {
    /// The input as read.
    pub table: CsvTable,
    /// The frame the model scored.
    pub frame: Frame,
    /// One prediction per input row.
    pub predictions: Predictions,
}

/// Reads `data` with the model's schema and scores every row.
pub fn predict_csv(model: &dyn Model, data: &Path) -> Result<ScoredCsv> {
    let table = CsvTable::read_path(data)?;
    let frame = table.to_frame(
        model.schema().clone(),
        &ReadOptions::named(data.display().to_string()),
    )?;
    let predictions = model.predict(&frame)?;
    Ok(ScoredCsv {
        table,
        frame,
        predictions,
    })
}

/// The output header: `keep` columns, then `prediction` (the label or value), then
/// `probability_<label>` per class.
pub fn output_header(predictions: &Predictions, keep: &[String]) -> Vec<String> {
    let mut header: Vec<String> = keep.to_vec();
    header.push("prediction".into());
    if let Predictions::Classification { labels, .. } = predictions {
        header.extend(labels.iter().map(|l| format!("probability_{l}")));
    }
    header
}

/// Writes one CSV row per prediction, copying the `keep` columns of the input first.
pub fn write_predictions_csv(out: impl Write, scored: &ScoredCsv, keep: &[String]) -> Result<()> {
    let keep_index = keep
        .iter()
        .map(|k| {
            scored.table.header().iter().position(|h| h == k).ok_or_else(|| {
                Error::invalid_parameter(
                    "keep",
                    format!(
                        "no column `{k}` in the input; columns are: {}",
                        scored.table.header().join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| Error::io("write", "predictions", std::io::Error::other(e.to_string()));
    w.write_record(output_header(&scored.predictions, keep))
        .map_err(io)?;
    let mut record: Vec<String> = Vec::new();
    for row in 0..scored.predictions.len() {
        record.clear();
        for &k in &keep_index {
            record.push(scored.table.cell(row, k).unwrap_or_default().to_string());
        }
        match &scored.predictions {
            Predictions::Classification {
                labels,
                predicted,
                probabilities,
            } => {
                record.push(labels[predicted[row]].clone());
                record.extend(probabilities.row(row).iter().map(|p| p.to_string()));
            }
            Predictions::Regression { values } => record.push(values[row].to_string()),
        }
        w.write_record(&record).map_err(io)?;
    }
    w.flush().map_err(|e| Error::io("write", "predictions", e))
}
