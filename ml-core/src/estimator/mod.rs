//! Training: estimator configurations (parameters), checked and fitted into [`NativeModel`]s.
//!
//! Parameters, checked parameters and fitted models are different types: an [`Estimator`] is
//! plain configuration (serde, CLI `--param k=v`, TOML); [`Estimator::fit`] checks it, learns
//! the preprocessing and the model, and returns a [`NativeModel`] that carries both.

mod forest;
mod linear;
mod logistic;
mod naive_bayes;
mod neighbors;
pub mod tree;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::forest::{DecisionTreeParams, RandomForestParams};
pub use self::linear::{ElasticNetParams, LassoParams, LinearRegressionParams, LinearRegressor, RidgeParams};
pub use self::logistic::{LinearClassifier, LogisticRegressionParams};
pub use self::naive_bayes::{GaussianNb, GaussianNbParams};
pub use self::neighbors::{KNeighbors, KNeighborsParams, NeighborWeights};
use self::tree::{TreeEnsemble, TreeTarget};
use crate::error::{Error, Result};
use crate::frame::{Column, Frame};
use crate::model::OutputSpec;
use crate::native::{Fitted, NativeModel};
use crate::preprocess::{PreprocessOptions, Preprocessing, Preprocessor};
use crate::schema::{DataType, Field};

/// An estimator and its parameters.
///
/// The serde form is internally tagged: `{"estimator": "logistic_regression", "c": 1.0}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "estimator", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Estimator {
    /// L2-regularized logistic regression (binary and multinomial) on standardized numeric and
    /// one-hot categorical features.
    LogisticRegression(LogisticRegressionParams),
    /// A CART decision tree classifier; probabilities are the leaf's class distribution.
    DecisionTreeClassifier(DecisionTreeParams),
    /// A CART decision tree regressor.
    DecisionTreeRegressor(DecisionTreeParams),
    /// A random forest classifier; probabilities are the mean of the trees' leaf class
    /// distributions. Trees train in parallel.
    RandomForestClassifier(RandomForestParams),
    /// A random forest regressor (the mean of the trees).
    RandomForestRegressor(RandomForestParams),
    /// Ordinary least squares.
    LinearRegression(LinearRegressionParams),
    /// Least squares with an L2 penalty.
    Ridge(RidgeParams),
    /// Least squares with an L1 penalty (coordinate descent).
    Lasso(LassoParams),
    /// Least squares with L1 and L2 penalties (coordinate descent).
    ElasticNet(ElasticNetParams),
    /// k-nearest-neighbours classifier on standardized features; probabilities are the
    /// neighbours' vote shares.
    KNeighborsClassifier(KNeighborsParams),
    /// k-nearest-neighbours regressor on standardized features.
    KNeighborsRegressor(KNeighborsParams),
    /// Gaussian naive Bayes classifier.
    GaussianNb(GaussianNbParams),
}

impl Estimator {
    /// Names accepted by [`Estimator::from_name`].
    pub const NAMES: &'static [&'static str] = &[
        "logistic_regression",
        "decision_tree_classifier",
        "decision_tree_regressor",
        "random_forest_classifier",
        "random_forest_regressor",
        "linear_regression",
        "ridge",
        "lasso",
        "elastic_net",
        "k_neighbors_classifier",
        "k_neighbors_regressor",
        "gaussian_nb",
    ];

    /// The estimator's name.
    pub fn name(&self) -> &'static str {
        match self {
            Estimator::LogisticRegression(_) => "logistic_regression",
            Estimator::DecisionTreeClassifier(_) => "decision_tree_classifier",
            Estimator::DecisionTreeRegressor(_) => "decision_tree_regressor",
            Estimator::RandomForestClassifier(_) => "random_forest_classifier",
            Estimator::RandomForestRegressor(_) => "random_forest_regressor",
            Estimator::LinearRegression(_) => "linear_regression",
            Estimator::Ridge(_) => "ridge",
            Estimator::Lasso(_) => "lasso",
            Estimator::ElasticNet(_) => "elastic_net",
            Estimator::KNeighborsClassifier(_) => "k_neighbors_classifier",
            Estimator::KNeighborsRegressor(_) => "k_neighbors_regressor",
            Estimator::GaussianNb(_) => "gaussian_nb",
        }
    }

    /// True for estimators that predict a real value rather than a class.
    pub fn is_regressor(&self) -> bool {
        matches!(
            self,
            Estimator::DecisionTreeRegressor(_)
                | Estimator::RandomForestRegressor(_)
                | Estimator::LinearRegression(_)
                | Estimator::Ridge(_)
                | Estimator::Lasso(_)
                | Estimator::ElasticNet(_)
                | Estimator::KNeighborsRegressor(_)
        )
    }

    /// Number of progress steps a fit reports through [`Estimator::fit_with_progress`] (the
    /// number of trees for forests, else 1).
    pub fn n_steps(&self) -> usize {
        match self {
            Estimator::RandomForestClassifier(p) | Estimator::RandomForestRegressor(p) => p.n_estimators,
            _ => 1,
        }
    }

    /// An estimator from its name and `key=value` parameters (values are read as JSON where they
    /// parse — numbers, booleans — and as strings otherwise). Unknown names and parameters are
    /// errors that list what is accepted.
    pub fn from_name(name: &str, params: &[(String, String)]) -> Result<Estimator> {
        if !Self::NAMES.contains(&name) {
            return Err(Error::invalid_parameter(
                "estimator",
                format!(
                    "unknown estimator `{name}`; available: {}",
                    Self::NAMES.join(", ")
                ),
            ));
        }
        let mut map = serde_json::Map::new();
        map.insert("estimator".into(), serde_json::Value::String(name.into()));
        for (k, v) in params {
            let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
            map.insert(k.clone(), value);
        }
        let estimator: Estimator = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| Error::invalid_parameter("param", format!("{name}: {e}")))?;
        estimator.check()?;
        Ok(estimator)
    }

    /// Checks the parameters' ranges.
    pub fn check(&self) -> Result<()> {
        match self {
            Estimator::LogisticRegression(p) => p.check(),
            Estimator::DecisionTreeClassifier(p) => p.ensemble(true).map(drop),
            Estimator::DecisionTreeRegressor(p) => p.ensemble(false).map(drop),
            Estimator::RandomForestClassifier(p) => p.ensemble(true).map(drop),
            Estimator::RandomForestRegressor(p) => p.ensemble(false).map(drop),
            Estimator::LinearRegression(p) => p.check(),
            Estimator::Ridge(p) => p.check(),
            Estimator::Lasso(p) => p.elastic_net().check(),
            Estimator::ElasticNet(p) => p.check(),
            Estimator::KNeighborsClassifier(p) | Estimator::KNeighborsRegressor(p) => p.check(),
            Estimator::GaussianNb(p) => p.check(),
        }
    }

    /// Fits the estimator on `data`, predicting the column `target` from every other column.
    ///
    /// For classifiers the target's distinct values become the class labels (sorted
    /// numerically when they are numbers, else as text); regressors need a numeric target.
    /// Rows with a missing target are refused.
    pub fn fit(&self, data: &Frame, target: &str) -> Result<NativeModel> {
        self.fit_with_progress(data, target, &|| {})
    }

    /// [`Estimator::fit`], calling `step` after each of the [`Estimator::n_steps`] steps (from
    /// any thread) so that a caller can show progress.
    pub fn fit_with_progress(
        &self,
        data: &Frame,
        target: &str,
        step: &(dyn Fn() + Sync),
    ) -> Result<NativeModel> {
        self.fit_with_preprocessing(data, target, Preprocessing::default(), step)
    }

    /// [`Estimator::fit_with_progress`] with a chosen imputation and categorical encoding
    /// (learned from `data` and stored in the model, so prediction applies the same).
    pub fn fit_with_preprocessing(
        &self,
        data: &Frame,
        target: &str,
        preprocessing: Preprocessing,
        step: &(dyn Fn() + Sync),
    ) -> Result<NativeModel> {
        self.check()?;
        let (features, target_field, target_col, target_nulls) = data.split_off(target)?;
        if features.schema().is_empty() {
            return Err(Error::Training {
                reason: "no feature columns besides the target".into(),
            });
        }
        let (output, y) = if self.is_regressor() {
            let values = regression_target(&target_field, &target_col, target_nulls.as_deref())?;
            (OutputSpec::Regression, TargetData::Values(values))
        } else {
            let labels = ClassTarget::encode(&target_field, &target_col, target_nulls.as_deref())?;
            (
                OutputSpec::classification(labels.labels.clone())?,
                TargetData::Classes(labels),
            )
        };
        // Distances and the logistic penalty depend on feature scales; trees, naive Bayes and
        // the least-squares family (as in scikit-learn) read features unscaled.
        let standardize = matches!(
            self,
            Estimator::LogisticRegression(_)
                | Estimator::KNeighborsClassifier(_)
                | Estimator::KNeighborsRegressor(_)
        );
        let pre = Preprocessor::fit(
            &features,
            PreprocessOptions {
                standardize,
                choice: preprocessing,
            },
        )?;
        let x = pre.transform(features.schema(), &features)?;
        let fitted = match (self, &y) {
            (Estimator::LogisticRegression(params), TargetData::Classes(labels)) => {
                let fitted = params.fit(&x, &labels.codes, labels.labels.len())?;
                step();
                Fitted::LogisticRegression(fitted)
            }
            (Estimator::DecisionTreeClassifier(p), _) | (Estimator::DecisionTreeRegressor(p), _) => {
                let params = p.ensemble(!self.is_regressor())?;
                Fitted::TreeEnsemble(TreeEnsemble::fit(x.view(), y.tree_target(), &params, step)?)
            }
            (Estimator::RandomForestClassifier(p), _) | (Estimator::RandomForestRegressor(p), _) => {
                let params = p.ensemble(!self.is_regressor())?;
                Fitted::TreeEnsemble(TreeEnsemble::fit(x.view(), y.tree_target(), &params, step)?)
            }
            (Estimator::LinearRegression(p), TargetData::Values(v)) => {
                Fitted::LinearRegression(p.fit(&x, v)?)
            }
            (Estimator::Ridge(p), TargetData::Values(v)) => Fitted::LinearRegression(p.fit(&x, v)?),
            (Estimator::Lasso(p), TargetData::Values(v)) => {
                Fitted::LinearRegression(p.elastic_net().fit(&x, v)?)
            }
            (Estimator::ElasticNet(p), TargetData::Values(v)) => Fitted::LinearRegression(p.fit(&x, v)?),
            (Estimator::KNeighborsRegressor(p), TargetData::Values(v)) => {
                let targets = ndarray::Array2::from_shape_vec((v.len(), 1), v.clone())
                    .map_err(|e| Error::Internal(format!("target matrix: {e}")))?;
                Fitted::KNeighbors(p.fit(&x, targets)?)
            }
            (Estimator::KNeighborsClassifier(p), TargetData::Classes(c)) => {
                let mut targets = ndarray::Array2::<f64>::zeros((c.codes.len(), c.labels.len()));
                for (r, &k) in c.codes.iter().enumerate() {
                    targets[[r, k]] = 1.0;
                }
                Fitted::KNeighbors(p.fit(&x, targets)?)
            }
            (Estimator::GaussianNb(p), TargetData::Classes(c)) => {
                Fitted::GaussianNb(p.fit(&x, &c.codes, c.labels.len())?)
            }
            _ => {
                return Err(Error::Internal(format!(
                    "{} was given the wrong kind of target",
                    self.name()
                )));
            }
        };
        if !matches!(
            self,
            Estimator::DecisionTreeClassifier(_)
                | Estimator::DecisionTreeRegressor(_)
                | Estimator::RandomForestClassifier(_)
                | Estimator::RandomForestRegressor(_)
                | Estimator::LogisticRegression(_)
        ) {
            step();
        }
        NativeModel::new(
            features.schema().as_ref().clone(),
            output,
            target.to_string(),
            self.clone(),
            pre,
            fitted,
        )
    }
}

/// The target column, encoded for a classifier or a regressor.
enum TargetData {
    Classes(ClassTarget),
    Values(Vec<f64>),
}

impl TargetData {
    fn tree_target(&self) -> TreeTarget<'_> {
        match self {
            TargetData::Classes(c) => TreeTarget::Classes {
                codes: &c.codes,
                n_classes: c.labels.len(),
            },
            TargetData::Values(v) => TreeTarget::Values(v),
        }
    }
}

/// A regression target as numbers: float, int and bool columns are accepted.
pub fn regression_target(field: &Field, col: &Column, nulls: Option<&[bool]>) -> Result<Vec<f64>> {
    if let Some(r) = nulls.and_then(|m| m.iter().position(|&n| n)) {
        return Err(Error::Training {
            reason: format!(
                "target `{}` has missing values (first in row {r}); drop those rows or fill them",
                field.name
            ),
        });
    }
    match col {
        Column::Float(v) => Ok(v.to_vec()),
        Column::Int(v) => Ok(v.iter().map(|&x| x as f64).collect()),
        Column::Bool(v) => Ok(v.iter().map(|&b| f64::from(u8::from(b))).collect()),
        Column::Categorical(_) | Column::String(_) => Err(Error::Training {
            reason: format!(
                "target `{}` is {}, but a regressor needs a numeric target; use a classifier or declare it float",
                field.name,
                field.dtype.name()
            ),
        }),
    }
}

/// A classification target turned into class codes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassTarget {
    /// Class labels in code order.
    pub labels: Vec<String>,
    /// One class code per row.
    pub codes: Vec<usize>,
}

impl ClassTarget {
    /// Encodes a target column as classes.
    pub fn encode(field: &Field, col: &Column, nulls: Option<&[bool]>) -> Result<ClassTarget> {
        if let Some(r) = nulls.and_then(|m| m.iter().position(|&n| n)) {
            let n = nulls.map_or(0, |m| m.iter().filter(|&&x| x).count());
            return Err(Error::Training {
                reason: format!(
                    "target `{}` has {n} missing value(s) (first in row {r}); drop those rows or fill them",
                    field.name
                ),
            });
        }
        let texts: Vec<String> = match (col, &field.dtype) {
            (Column::Int(v), _) => v.iter().map(i64::to_string).collect(),
            (Column::Bool(v), _) => v.iter().map(bool::to_string).collect(),
            (Column::String(v), _) => v.clone(),
            (Column::Categorical(v), DataType::Categorical { vocabulary, .. }) => v
                .iter()
                .map(|&c| {
                    vocabulary
                        .value(c)
                        .unwrap_or(crate::frame::UNKNOWN_CATEGORY)
                        .to_string()
                })
                .collect(),
            (Column::Float(v), _) => {
                if let Some(x) = v.iter().find(|x| x.fract() != 0.0) {
                    return Err(Error::Training {
                        reason: format!(
                            "target `{}` holds the non-integer value {x}: it looks continuous, and this estimator is a classifier",
                            field.name
                        ),
                    });
                }
                v.iter().map(|x| (*x as i64).to_string()).collect()
            }
            (Column::Categorical(_), _) => {
                return Err(Error::Internal("categorical column without vocabulary".into()));
            }
        };
        let mut distinct: BTreeMap<&str, ()> = BTreeMap::new();
        for t in &texts {
            distinct.insert(t, ());
        }
        let mut labels: Vec<String> = distinct.into_keys().map(str::to_string).collect();
        if labels.iter().all(|l| l.parse::<f64>().is_ok()) {
            labels.sort_by(|a, b| {
                let (x, y) = (a.parse::<f64>().unwrap_or(0.0), b.parse::<f64>().unwrap_or(0.0));
                x.total_cmp(&y)
            });
        }
        let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
        let codes = texts.iter().map(|t| index[t.as_str()]).collect();
        Ok(ClassTarget { labels, codes })
    }
}
