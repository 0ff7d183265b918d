//! The `Model` and `Scorer` traits, what a model predicts (`OutputSpec`) and its answers
//! (`Predictions`).

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::schema::{DataType, Schema};

/// What a model predicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputSpec {
    /// One real value per row.
    Regression,
    /// Two classes; `labels[1]` is the positive class (its probability is "the score").
    Binary {
        /// The two class labels, negative first.
        labels: [String; 2],
    },
    /// Three or more classes.
    Multiclass {
        /// The class labels, in probability-column order.
        labels: Vec<String>,
    },
}

impl OutputSpec {
    /// The class labels (empty for regression).
    pub fn labels(&self) -> &[String] {
        match self {
            OutputSpec::Regression => &[],
            OutputSpec::Binary { labels } => labels,
            OutputSpec::Multiclass { labels } => labels,
        }
    }

    /// A classification spec for these labels: binary for two, multiclass for more.
    pub fn classification(labels: Vec<String>) -> Result<OutputSpec> {
        match labels.len() {
            0 | 1 => Err(Error::Training {
                reason: format!(
                    "the target has {} distinct value(s); a classifier needs at least two classes",
                    labels.len()
                ),
            }),
            2 => {
                let mut it = labels.into_iter();
                let (a, b) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
                Ok(OutputSpec::Binary { labels: [a, b] })
            }
            _ => Ok(OutputSpec::Multiclass { labels }),
        }
    }

    /// The MLflow column signature of the outputs: `label` (or `prediction` for regression)
    /// followed by one `probability_<label>` per class.
    pub fn to_mlflow_signature_json(&self) -> String {
        let mut cols = Vec::new();
        match self {
            OutputSpec::Regression => {
                cols.push(serde_json::json!({"type": "double", "name": "prediction", "required": true}))
            }
            _ => {
                cols.push(serde_json::json!({"type": "string", "name": "label", "required": true}));
                for l in self.labels() {
                    cols.push(serde_json::json!({"type": "double", "name": format!("probability_{l}"), "required": true}));
                }
            }
        }
        serde_json::Value::Array(cols).to_string()
    }
}

/// What a model returns for a batch: one answer per input row, in input order.
#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    /// Class predictions.
    Classification {
        /// Class labels, in probability-column order.
        labels: Arc<[String]>,
        /// Index into `labels` of the predicted class, per row (the most probable class; ties go
        /// to the lower index).
        predicted: Vec<usize>,
        /// Class probabilities, `n_rows × n_classes`, each row summing to 1.
        probabilities: Array2<f64>,
    },
    /// Real-valued predictions.
    Regression {
        /// One value per row.
        values: Array1<f64>,
    },
}

impl Predictions {
    /// Builds class predictions from probabilities, predicting the most probable class.
    pub fn from_probabilities(labels: Arc<[String]>, probabilities: Array2<f64>) -> Result<Predictions> {
        if probabilities.ncols() != labels.len() {
            return Err(Error::Internal(format!(
                "{} probability columns for {} labels",
                probabilities.ncols(),
                labels.len()
            )));
        }
        let predicted = probabilities.rows().into_iter().map(argmax).collect();
        Ok(Predictions::Classification {
            labels,
            predicted,
            probabilities,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Predictions::Classification { predicted, .. } => predicted.len(),
            Predictions::Regression { values } => values.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The predicted label of `row` (classification only).
    pub fn label(&self, row: usize) -> Option<&str> {
        match self {
            Predictions::Classification {
                labels, predicted, ..
            } => predicted
                .get(row)
                .and_then(|&i| labels.get(i))
                .map(String::as_str),
            Predictions::Regression { .. } => None,
        }
    }

    /// The class probabilities (classification only).
    pub fn probabilities(&self) -> Option<ArrayView2<'_, f64>> {
        match self {
            Predictions::Classification { probabilities, .. } => Some(probabilities.view()),
            Predictions::Regression { .. } => None,
        }
    }

    /// The probability of the positive (second) class, for binary classification.
    pub fn positive_probabilities(&self) -> Option<ArrayView1<'_, f64>> {
        match self {
            Predictions::Classification { probabilities, .. } if probabilities.ncols() == 2 => {
                Some(probabilities.column(1))
            }
            _ => None,
        }
    }

    /// The predicted values (regression only).
    pub fn values(&self) -> Option<ArrayView1<'_, f64>> {
        match self {
            Predictions::Regression { values } => Some(values.view()),
            Predictions::Classification { .. } => None,
        }
    }
}

/// The most probable class of one row of probabilities: the first largest value (ties, and
/// NaN at the front, go to the lower index).
fn argmax<'a>(row: impl IntoIterator<Item = &'a f64>) -> usize {
    let mut row = row.into_iter().enumerate();
    let Some((_, &first)) = row.next() else {
        return 0;
    };
    let (mut best, mut best_p) = (0, first);
    for (i, &p) in row {
        if p > best_p {
            (best, best_p) = (i, p);
        }
    }
    best
}

/// [`Predictions::from_probabilities`]' rule over `k`-wide rows stored contiguously.
pub(crate) fn argmax_rows(values: &[f64], k: usize) -> Vec<usize> {
    if k == 2 {
        // The same rule without a branch per row.
        values
            .chunks_exact(2)
            .map(|row| usize::from(row[1] > row[0]))
            .collect()
    } else {
        values.chunks_exact(k.max(1)).map(argmax).collect()
    }
}

/// A fitted model: reads a [`Frame`] of raw records and predicts.
///
/// # Runtime contract
/// - `predict` is synchronous and CPU-bound: it never blocks on I/O, takes time proportional to
///   the batch, and may be called from many threads at once (`&self`, `Send + Sync`). In async
///   code, call it through [`LocalScorer`] (small batches) or `spawn_blocking` (large ones).
/// - It returns one prediction per input row, in order, or an error for the whole batch; it never
///   panics on input. Bad values were already refused when the frame was built; `predict` checks
///   only that the frame's schema provides the model's fields with the same types
///   ([`check_frame_schema`]).
/// - A model carries its own preprocessing: raw values in, predictions out.
pub trait Model: Send + Sync + Debug {
    /// The fields the model reads (a frame may hold more; they are ignored).
    fn schema(&self) -> &Schema;

    /// What the model predicts.
    fn output(&self) -> &OutputSpec;

    /// Predicts one answer per row of `frame`.
    fn predict(&self, frame: &Frame) -> Result<Predictions>;

    /// A short name of the model kind (`"logistic_regression"`, `"onnx"`, ...), for logs and
    /// metadata. Defaults to `"model"`.
    fn kind(&self) -> &str {
        "model"
    }

    /// [`Model::predict`] with options (how many threads a large batch may use). The result
    /// must not depend on the options. Defaults to [`Model::predict`], ignoring the options.
    fn predict_with(&self, frame: &Frame, options: &PredictOptions) -> Result<Predictions> {
        let _ = options;
        self.predict(frame)
    }

    /// Whether each row's prediction is the same, bit for bit, whatever the other rows of its
    /// batch, so that a caller may split a batch as it likes (compiled kernels and fused ONNX
    /// graphs promise it). Defaults to `false`.
    fn rows_independent(&self) -> bool {
        false
    }
}

/// How a prediction may run. The predictions themselves never depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PredictOptions {
    /// How many threads one batch may use (rayon tasks, for batches large enough to gain).
    /// Default 1, so that a server or a stream can run one scorer per core without them
    /// competing.
    pub threads: usize,
    /// Which instruction set the kernels may use (default: the best the CPU has). Every level
    /// gives the same bits; choosing one is for tests and measurements.
    pub simd: crate::kernel::Simd,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            threads: 1,
            simd: crate::kernel::Simd::Auto,
        }
    }
}

impl PredictOptions {
    /// Options letting a batch use up to `threads` threads (0 is taken as 1).
    pub fn with_threads(threads: usize) -> Self {
        PredictOptions {
            threads: threads.max(1),
            ..PredictOptions::default()
        }
    }

    /// These options with the kernels restricted to `simd`.
    pub fn with_simd(self, simd: crate::kernel::Simd) -> Self {
        PredictOptions { simd, ..self }
    }
}

/// Checks that `frame` provides every field of `schema` with the same type (and, for
/// categoricals, the same vocabulary, since codes are positions in it), returning the frame
/// column index for each schema field (borrowed, without allocating, when the frame's fields
/// are the model's: the common case).
pub fn check_frame_schema(schema: &Schema, frame: &Frame) -> Result<Cow<'static, [usize]>> {
    if frame.schema().as_ref() == schema {
        return Ok(match IDENTITY.get(..schema.len()) {
            Some(identity) => Cow::Borrowed(identity),
            None => Cow::Owned((0..schema.len()).collect()),
        });
    }
    schema
        .fields()
        .iter()
        .map(|f| {
            let i = frame.schema().index_of(&f.name).ok_or_else(|| Error::SchemaMismatch {
                reason: format!("the frame has no field `{}`, which the model reads", f.name),
            })?;
            let g = &frame.schema().fields()[i];
            let same = match (&f.dtype, &g.dtype) {
                (DataType::Categorical { vocabulary: a, .. }, DataType::Categorical { vocabulary: b, .. }) => a == b,
                (a, b) => a == b,
            };
            if !same {
                return Err(Error::SchemaMismatch {
                    reason: format!(
                        "field `{}` is {} in the frame but {} in the model (build the frame with the model's schema)",
                        f.name,
                        g.dtype.name(),
                        f.dtype.name()
                    ),
                });
            }
            Ok(i)
        })
        .collect::<Result<Vec<usize>>>()
        .map(Cow::Owned)
}

/// `IDENTITY[i] == i`: the column indices of a frame whose fields are the model's.
static IDENTITY: [usize; 512] = {
    let mut a = [0; 512];
    let mut i = 0;
    while i < a.len() {
        a[i] = i;
        i += 1;
    }
    a
};

/// Anything that scores a batch asynchronously: a local model, a remote endpoint, a pool.
///
/// # Runtime contract
/// - `score` returns one prediction per row, in order, or an error for the whole batch.
/// - It is cancel-safe: dropping the future abandons the batch with no side effect that a retry
///   would duplicate (remote scorers may still have sent the request).
/// - Implementations must not block the executor for long; CPU-heavy work belongs on a blocking
///   thread or must be bounded by the batch size the caller chooses.
#[async_trait]
pub trait Scorer: Send + Sync + Debug {
    /// Scores one batch.
    async fn score(&self, frame: &Frame) -> Result<Predictions>;

    /// The schema requests must follow, when the scorer knows it. Defaults to `None`.
    fn schema(&self) -> Option<&Schema> {
        None
    }
}

/// A [`Scorer`] that runs a [`Model`] in the calling task.
///
/// Scoring runs inline on the executor thread: native models score thousands of rows in
/// microseconds, which costs less than a hop to a blocking pool. Give it bounded batches.
#[derive(Debug, Clone)]
pub struct LocalScorer {
    model: Arc<dyn Model>,
    options: PredictOptions,
}

impl LocalScorer {
    /// Wraps a model; it predicts on one thread ([`PredictOptions::default`]).
    pub fn new(model: Arc<dyn Model>) -> Self {
        LocalScorer {
            model,
            options: PredictOptions::default(),
        }
    }

    /// Sets the prediction options, e.g. [`PredictOptions::with_threads`] to let large
    /// batches use several cores. Those threads are rayon's, and the calling task waits for
    /// them: use it where the caller owns the cores (a batch job), not in a server that runs
    /// one scorer per core.
    pub fn with_options(mut self, options: PredictOptions) -> Self {
        self.options = options;
        self
    }

    /// The prediction options.
    pub fn options(&self) -> &PredictOptions {
        &self.options
    }

    /// The wrapped model.
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }
}

#[async_trait]
impl Scorer for LocalScorer {
    async fn score(&self, frame: &Frame) -> Result<Predictions> {
        self.model.predict_with(frame, &self.options)
    }

    fn schema(&self) -> Option<&Schema> {
        Some(self.model.schema())
    }
}
