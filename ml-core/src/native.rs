//! Native models: fitted by ml-core, stored as versioned JSON, scored without any runtime.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimator::tree::TreeEnsemble;
use crate::estimator::{Estimator, GaussianNb, KNeighbors, LinearClassifier, LinearRegressor};
use crate::frame::Frame;
use crate::kernel::{FlatForest, Kernel, LinearKernel};
use crate::model::{Model, OutputSpec, PredictOptions, Predictions, check_frame_schema};
use crate::preprocess::Preprocessor;
use crate::schema::Schema;

/// The newest native model format this build writes and reads.
///
/// Bump it when the serialized form changes incompatibly; loading a newer version is refused
/// with [`Error::UnsupportedFormatVersion`] rather than misread.
pub const NATIVE_FORMAT_VERSION: u32 = 1;

/// The value of the `format` key of a native model file.
pub const NATIVE_FORMAT: &str = "streamscore.native";

/// The fitted parameters, by model family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fitted {
    /// A linear classifier (logistic regression).
    LogisticRegression(LinearClassifier),
    /// Decision trees and random forests (classifiers and regressors), in one flat layout.
    TreeEnsemble(TreeEnsemble),
    /// A linear regressor (least squares, ridge, lasso, elastic net).
    LinearRegression(LinearRegressor),
    /// k-nearest neighbours: the training rows and their targets.
    KNeighbors(KNeighbors),
    /// Gaussian naive Bayes.
    GaussianNb(GaussianNb),
}

/// A model trained by ml-core: schema, preprocessing, fitted parameters and provenance, in one
/// serializable value that implements [`Model`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NativeModel {
    format: String,
    format_version: u32,
    schema: Schema,
    output: OutputSpec,
    target: String,
    estimator: Estimator,
    preprocessor: Preprocessor,
    fitted: Fitted,
    #[serde(skip)]
    labels: Option<Arc<[String]>>,
    /// The fitted parameters compiled for batch prediction: derived from `fitted`, never
    /// stored, so the artifact format does not depend on the kernels.
    #[serde(skip)]
    kernel: KernelCell,
}

/// The compiled kernel of a model, built when the model is fitted or loaded (or, for a model
/// deserialized some other way, on its first prediction).
#[derive(Default)]
struct KernelCell(OnceLock<Option<Arc<Kernel>>>);

impl Clone for KernelCell {
    fn clone(&self) -> Self {
        let cell = OnceLock::new();
        if let Some(k) = self.0.get() {
            let _ = cell.set(k.clone());
        }
        KernelCell(cell)
    }
}

impl PartialEq for KernelCell {
    /// A cache derived from the fitted parameters: two models are equal when those are.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for KernelCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(Some(_)) => f.write_str("compiled"),
            Some(None) => f.write_str("none"),
            None => f.write_str("not yet compiled"),
        }
    }
}

fn compile(fitted: &Fitted) -> Option<Arc<Kernel>> {
    match fitted {
        Fitted::TreeEnsemble(t) => Some(Arc::new(Kernel::Forest(FlatForest::new(t)))),
        Fitted::LogisticRegression(m) => Some(Arc::new(Kernel::Linear(LinearKernel::classifier(m)))),
        Fitted::LinearRegression(m) => Some(Arc::new(Kernel::Linear(LinearKernel::regressor(m)))),
        Fitted::KNeighbors(_) | Fitted::GaussianNb(_) => None,
    }
}

impl NativeModel {
    pub(crate) fn new(
        schema: Schema,
        output: OutputSpec,
        target: String,
        estimator: Estimator,
        preprocessor: Preprocessor,
        fitted: Fitted,
    ) -> Result<NativeModel> {
        let labels = Some(Arc::from(output.labels().to_vec()));
        let model = NativeModel {
            format: NATIVE_FORMAT.into(),
            format_version: NATIVE_FORMAT_VERSION,
            schema,
            output,
            target,
            estimator,
            preprocessor,
            fitted,
            labels,
            kernel: KernelCell::default(),
        };
        model.kernel();
        Ok(model)
    }

    /// The fitted parameters compiled for batch prediction ([`crate::kernel`]), for the model
    /// families that have a kernel (trees, forests, linear and logistic regression).
    pub fn kernel(&self) -> Option<&Kernel> {
        self.kernel.0.get_or_init(|| compile(&self.fitted)).as_deref()
    }

    /// Predicts from rows that are already preprocessed: `x` is the `n × d` design matrix the
    /// model's [`Preprocessor`] would produce (the lean path for callers that keep feature
    /// vectors rather than frames). Models without a kernel use their fitted parameters
    /// directly.
    pub fn predict_features(
        &self,
        x: ndarray::ArrayView2<'_, f64>,
        options: &PredictOptions,
    ) -> Result<Predictions> {
        let out = match self.kernel() {
            Some(kernel) => kernel.predict_matrix_with(x, options)?,
            None => self.predict_fitted(x)?,
        };
        self.to_predictions(out)
    }

    /// The prediction path without kernels: the fitted parameters' own `predict` on the whole
    /// design matrix.
    fn predict_fitted(&self, x: ndarray::ArrayView2<'_, f64>) -> Result<ndarray::Array2<f64>> {
        match &self.fitted {
            Fitted::LogisticRegression(m) => m.predict_proba(x),
            Fitted::TreeEnsemble(m) => m.predict(x),
            Fitted::LinearRegression(m) => m.predict(x),
            Fitted::KNeighbors(m) => m.predict(x),
            Fitted::GaussianNb(m) => m.predict_proba(x),
        }
    }

    /// Predicts `frame` with the fitted parameters' own `predict` on a design matrix of the
    /// whole batch, as models did before kernels: the reference the kernels are tested and
    /// benchmarked against.
    pub fn predict_unoptimized(&self, frame: &Frame) -> Result<Predictions> {
        let x = self.preprocessor.transform(&self.schema, frame)?;
        let out = self.predict_fitted(x.view())?;
        self.to_predictions(out)
    }

    fn to_predictions(&self, out: ndarray::Array2<f64>) -> Result<Predictions> {
        match &self.output {
            OutputSpec::Regression if out.ncols() != 1 => Err(Error::Internal(format!(
                "a regressor produced {} columns",
                out.ncols()
            ))),
            OutputSpec::Regression => Ok(Predictions::Regression {
                values: out.column(0).to_owned(),
            }),
            _ => {
                let labels = self
                    .labels
                    .clone()
                    .unwrap_or_else(|| Arc::from(self.output.labels().to_vec()));
                let k = labels.len();
                match out.as_slice() {
                    Some(values) if k > 0 && out.ncols() == k => {
                        // Over contiguous rows, without ndarray's per-row views.
                        let predicted = crate::model::argmax_rows(values, k);
                        Ok(Predictions::Classification {
                            labels,
                            predicted,
                            probabilities: out,
                        })
                    }
                    _ => Predictions::from_probabilities(labels, out),
                }
            }
        }
    }

    /// The name of the column the model was trained to predict.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The estimator configuration it was trained with.
    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    /// The fitted preprocessing.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The fitted parameters.
    pub fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    /// Serializes to the native JSON format.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Internal(format!("serializing model: {e}")))
    }

    /// Reads the native JSON format, refusing other formats and newer versions.
    ///
    /// `origin` names the file in errors.
    pub fn from_json_bytes(bytes: &[u8], origin: &std::path::Path) -> Result<NativeModel> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let bad = |reason: String| Error::Artifact {
            path: origin.to_path_buf(),
            reason,
        };
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("model file is not valid JSON: {e}")))?;
        if header.format.as_deref() != Some(NATIVE_FORMAT) {
            return Err(bad(format!(
                "model file format is {:?}, expected {NATIVE_FORMAT:?}",
                header.format.unwrap_or_default()
            )));
        }
        let version = header
            .format_version
            .ok_or_else(|| bad("model file has no format_version".into()))?;
        if version > NATIVE_FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion {
                path: origin.to_path_buf(),
                found: version,
                supported: NATIVE_FORMAT_VERSION,
            });
        }
        let mut model: NativeModel = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("model file does not hold a valid model: {e}")))?;
        model.labels = Some(Arc::from(model.output.labels().to_vec()));
        if let Fitted::TreeEnsemble(t) = &model.fitted {
            t.validate().map_err(|e| bad(e.to_string()))?;
            let expected = match &model.output {
                OutputSpec::Regression => 1,
                other => other.labels().len(),
            };
            if t.n_outputs != expected {
                return Err(bad(format!(
                    "the trees predict {} values per row but the output needs {expected}",
                    t.n_outputs
                )));
            }
        }
        if let Fitted::KNeighbors(k) = &model.fitted {
            k.validate().map_err(bad)?;
        }
        if model.preprocessor.n_outputs() != model.n_features() {
            return Err(bad(format!(
                "preprocessing produces {} features but the model reads {}",
                model.preprocessor.n_outputs(),
                model.n_features()
            )));
        }
        model.kernel();
        Ok(model)
    }

    fn n_features(&self) -> usize {
        match &self.fitted {
            Fitted::LogisticRegression(m) => m.n_features(),
            Fitted::TreeEnsemble(m) => m.n_features,
            Fitted::LinearRegression(m) => m.n_features(),
            Fitted::KNeighbors(m) => m.n_features(),
            Fitted::GaussianNb(m) => m.n_features(),
        }
    }
}

impl Model for NativeModel {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn output(&self) -> &OutputSpec {
        &self.output
    }

    fn predict(&self, frame: &Frame) -> Result<Predictions> {
        self.predict_with(frame, &PredictOptions::default())
    }

    fn predict_with(&self, frame: &Frame, options: &PredictOptions) -> Result<Predictions> {
        let Some(kernel) = self.kernel() else {
            return self.predict_unoptimized(frame);
        };
        let index = check_frame_schema(&self.schema, frame)?;
        let mut out = ndarray::Array2::<f64>::zeros((frame.n_rows(), kernel.n_outputs()));
        let slice = out
            .as_slice_mut()
            .ok_or_else(|| Error::Internal("a new array is contiguous".into()))?;
        kernel.predict_frame_into(&self.preprocessor, frame, &index, slice, options)?;
        self.to_predictions(out)
    }

    fn rows_independent(&self) -> bool {
        self.kernel().is_some()
    }

    fn kind(&self) -> &str {
        self.estimator.name()
    }
}
