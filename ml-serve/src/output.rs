//! Predictions → response bodies of each protocol.
//!
//! The Azure ML `/score` answer is a JSON array with **one element per input row** (what
//! Stream Analytics requires; an object breaks its binding):
//! - binary classification: the probability of the positive class (`labels[1]`), a number;
//! - regression: the predicted value, a number;
//! - multiclass: an object `{"label": "<predicted>", "probabilities": {"<label>": p, ...}}`.

use ml_core::Predictions;
use serde_json::{Map, Number, Value as Json};

fn num(x: f64) -> Json {
    Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// One JSON value per row, as `/score` answers.
pub(crate) fn azure(p: &Predictions) -> Json {
    match p {
        Predictions::Regression { values } => values.iter().map(|&v| num(v)).collect(),
        Predictions::Classification { probabilities, .. } if probabilities.ncols() == 2 => {
            probabilities.column(1).iter().map(|&v| num(v)).collect()
        }
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => predicted
            .iter()
            .zip(probabilities.rows())
            .map(|(&k, row)| {
                let probs: Map<String, Json> = labels
                    .iter()
                    .zip(row)
                    .map(|(l, &p)| (l.clone(), num(p)))
                    .collect();
                serde_json::json!({ "label": labels[k], "probabilities": probs })
            })
            .collect(),
    }
}

/// The bytes of [`azure`]'s answer; numbers per row (regression, binary classification) are
/// written straight from the predictions, without a JSON value per row (the same text:
/// serde_json writes a float and a float `Number` alike, and both non-finite as `null`).
pub(crate) fn azure_bytes(p: &Predictions) -> Vec<u8> {
    match p {
        Predictions::Regression { values } => numbers(values.iter()),
        Predictions::Classification { probabilities, .. } if probabilities.ncols() == 2 => {
            numbers(probabilities.column(1).iter())
        }
        Predictions::Classification { .. } => serde_json::to_vec(&azure(p)).unwrap_or_default(),
    }
}

/// A JSON array of `values`, each written by serde_json (so `null` when not finite).
fn numbers<'a>(values: impl ExactSizeIterator<Item = &'a f64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 25 * values.len());
    out.push(b'[');
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing into a vector cannot fail.
        let _ = serde_json::to_writer(&mut out, v);
    }
    out.push(b']');
    out
}

/// MLflow's `{"predictions": [...]}`: the predicted values for regression; for
/// classification one record per row with the columns of the model's MLflow output signature
/// (`label`, `probability_<label>`...).
pub(crate) fn mlflow(p: &Predictions) -> Json {
    let rows: Vec<Json> = match p {
        Predictions::Regression { values } => values.iter().map(|&v| num(v)).collect(),
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => predicted
            .iter()
            .zip(probabilities.rows())
            .map(|(&k, row)| {
                let mut m = Map::with_capacity(labels.len() + 1);
                m.insert("label".into(), labels[k].clone().into());
                for (l, &p) in labels.iter().zip(row) {
                    m.insert(format!("probability_{l}"), num(p));
                }
                Json::Object(m)
            })
            .collect(),
    };
    serde_json::json!({ "predictions": rows })
}

/// The output tensors of the Open Inference Protocol: `label` (BYTES `[N]`) and
/// `probabilities` (FP64 `[N, K]`) for classification, `prediction` (FP64 `[N]`) for
/// regression.
pub(crate) fn oip_tensors(p: &Predictions) -> Vec<(&'static str, Json)> {
    match p {
        Predictions::Regression { values } => vec![(
            "prediction",
            serde_json::json!({
                "name": "prediction", "datatype": "FP64", "shape": [values.len()],
                "data": values.iter().map(|&v| num(v)).collect::<Vec<_>>(),
            }),
        )],
        Predictions::Classification {
            labels,
            predicted,
            probabilities,
        } => vec![
            (
                "label",
                serde_json::json!({
                    "name": "label", "datatype": "BYTES", "shape": [predicted.len()],
                    "data": predicted.iter().map(|&k| labels[k].as_str()).collect::<Vec<_>>(),
                }),
            ),
            (
                "probabilities",
                serde_json::json!({
                    "name": "probabilities", "datatype": "FP64", "shape": [probabilities.nrows(), probabilities.ncols()],
                    "data": probabilities.iter().map(|&v| num(v)).collect::<Vec<_>>(),
                }),
            ),
        ],
    }
}

/// The rows as JSON objects of field → value, for payload logs.
pub(crate) fn outputs_per_row(p: &Predictions) -> Vec<Map<String, Json>> {
    match mlflow(p) {
        Json::Object(mut m) => match m.remove("predictions") {
            Some(Json::Array(rows)) => rows
                .into_iter()
                .map(|r| match r {
                    Json::Object(o) => o,
                    v => Map::from_iter([("prediction".to_string(), v)]),
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
