//! Parameters of decision trees and random forests (the learner is in [`super::tree`]).

use serde::{Deserialize, Serialize};

use super::tree::{Criterion, EnsembleParams, GrowthParams, MaxFeatures, MaxFeaturesRule};
use crate::error::{Error, Result};

fn default_min_samples_split() -> usize {
    2
}
fn default_min_samples_leaf() -> usize {
    1
}
fn default_max_bins() -> usize {
    255
}
fn default_n_estimators() -> usize {
    100
}
fn default_true() -> bool {
    true
}

/// Parameters of a decision tree (classifier or regressor).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionTreeParams {
    /// Split criterion: `gini` (classifier default) or `entropy` for classifiers,
    /// `squared_error` (the only one) for regressors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<Criterion>,
    /// Maximum depth; default none (grow until leaves are pure or too small), as scikit-learn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
    /// A node needs at least this many training rows to be split. Default 2 (scikit-learn's).
    #[serde(default = "default_min_samples_split")]
    pub min_samples_split: usize,
    /// Each leaf keeps at least this many training rows. Default 1 (scikit-learn's).
    #[serde(default = "default_min_samples_leaf")]
    pub min_samples_leaf: usize,
    /// Features considered per split: a count, a fraction, `sqrt`, `log2` or `all`.
    /// Default `all` (scikit-learn's trees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_features: Option<MaxFeatures>,
    /// Histogram bins per feature (2–256); features with fewer distinct values are split
    /// exactly. Default 255, scikit-learn's `HistGradientBoosting` default. More bins cost
    /// more time per node.
    #[serde(default = "default_max_bins")]
    pub max_bins: usize,
    /// Seed of the feature sampling. Default 0.
    #[serde(default)]
    pub seed: u64,
}

/// Parameters of a random forest (classifier or regressor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomForestParams {
    /// Number of trees. Default 100 (scikit-learn's). Time grows linearly with it.
    #[serde(default = "default_n_estimators")]
    pub n_estimators: usize,
    /// Split criterion, as for [`DecisionTreeParams::criterion`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criterion: Option<Criterion>,
    /// Maximum depth of each tree; default none (scikit-learn's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
    /// A node needs at least this many distinct training rows to be split. Default 2.
    #[serde(default = "default_min_samples_split")]
    pub min_samples_split: usize,
    /// Each leaf keeps at least this many distinct training rows. Default 1.
    #[serde(default = "default_min_samples_leaf")]
    pub min_samples_leaf: usize,
    /// Features considered per split; default `sqrt` for classifiers and `all` (1.0) for
    /// regressors, as scikit-learn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_features: Option<MaxFeatures>,
    /// Train each tree on a bootstrap sample of the rows. Default true.
    #[serde(default = "default_true")]
    pub bootstrap: bool,
    /// Histogram bins per feature (2–256). Default 255.
    #[serde(default = "default_max_bins")]
    pub max_bins: usize,
    /// Seed of the bootstrap samples and feature sampling; the forest is the same for any
    /// number of threads. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Threads to train on; default every core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_jobs: Option<usize>,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        RandomForestParams {
            n_estimators: default_n_estimators(),
            criterion: None,
            max_depth: None,
            min_samples_split: default_min_samples_split(),
            min_samples_leaf: default_min_samples_leaf(),
            max_features: None,
            bootstrap: true,
            max_bins: default_max_bins(),
            seed: 0,
            n_jobs: None,
        }
    }
}

fn criterion(given: Option<Criterion>, classification: bool) -> Result<Criterion> {
    match (given, classification) {
        (None, true) => Ok(Criterion::Gini),
        (None, false) => Ok(Criterion::SquaredError),
        (Some(c @ (Criterion::Gini | Criterion::Entropy)), true) => Ok(c),
        (Some(Criterion::SquaredError), false) => Ok(Criterion::SquaredError),
        (Some(c), true) => Err(Error::invalid_parameter(
            "criterion",
            format!("{c:?} is for regressors; classifiers take gini or entropy"),
        )),
        (Some(c), false) => Err(Error::invalid_parameter(
            "criterion",
            format!("{c:?} is for classifiers; regressors take squared_error"),
        )),
    }
}

impl DecisionTreeParams {
    /// The checked learner parameters.
    pub fn ensemble(&self, classification: bool) -> Result<EnsembleParams> {
        let p = EnsembleParams {
            growth: GrowthParams {
                criterion: criterion(self.criterion, classification)?,
                max_depth: self.max_depth,
                min_samples_split: self.min_samples_split,
                min_samples_leaf: self.min_samples_leaf,
                max_features: self
                    .max_features
                    .unwrap_or(MaxFeatures::Rule(MaxFeaturesRule::All)),
                max_bins: self.max_bins,
            },
            n_trees: 1,
            bootstrap: false,
            seed: self.seed,
            n_jobs: Some(1),
        };
        p.growth.check()?;
        Ok(p)
    }
}

impl RandomForestParams {
    /// The checked learner parameters.
    pub fn ensemble(&self, classification: bool) -> Result<EnsembleParams> {
        if self.n_estimators == 0 {
            return Err(Error::invalid_parameter("n_estimators", "must be at least 1"));
        }
        if self.n_jobs == Some(0) {
            return Err(Error::invalid_parameter(
                "n_jobs",
                "must be at least 1 (omit it to use every core)",
            ));
        }
        let default_features = if classification {
            MaxFeatures::Rule(MaxFeaturesRule::Sqrt)
        } else {
            MaxFeatures::Rule(MaxFeaturesRule::All)
        };
        let p = EnsembleParams {
            growth: GrowthParams {
                criterion: criterion(self.criterion, classification)?,
                max_depth: self.max_depth,
                min_samples_split: self.min_samples_split,
                min_samples_leaf: self.min_samples_leaf,
                max_features: self.max_features.unwrap_or(default_features),
                max_bins: self.max_bins,
            },
            n_trees: self.n_estimators,
            bootstrap: self.bootstrap,
            seed: self.seed,
            n_jobs: self.n_jobs,
        };
        p.growth.check()?;
        Ok(p)
    }
}
