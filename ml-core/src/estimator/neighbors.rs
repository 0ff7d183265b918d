//! k-nearest neighbours (brute force, Euclidean distance on standardized features).

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn default_k() -> usize {
    5
}

/// How neighbours' votes are weighted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighborWeights {
    /// Every neighbour counts the same (scikit-learn's default).
    #[default]
    Uniform,
    /// By inverse distance; an exact match takes all the weight.
    Distance,
}

/// Parameters of k-nearest neighbours (classifier and regressor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KNeighborsParams {
    /// Neighbours consulted. Default 5 (scikit-learn's).
    #[serde(default = "default_k")]
    pub n_neighbors: usize,
    /// Vote weighting. Default `uniform`.
    #[serde(default)]
    pub weights: NeighborWeights,
}

impl Default for KNeighborsParams {
    fn default() -> Self {
        KNeighborsParams {
            n_neighbors: default_k(),
            weights: NeighborWeights::Uniform,
        }
    }
}

impl KNeighborsParams {
    /// Checks that `n_neighbors` ≥ 1.
    pub fn check(&self) -> Result<()> {
        if self.n_neighbors == 0 {
            return Err(Error::invalid_parameter("n_neighbors", "must be at least 1"));
        }
        Ok(())
    }

    /// Stores the training rows; `targets` holds one row of `n_outputs` values per training
    /// row (a one-hot class indicator for classifiers, the value for regressors).
    pub fn fit(&self, x: &Array2<f64>, targets: Array2<f64>) -> Result<KNeighbors> {
        self.check()?;
        if x.nrows() < self.n_neighbors {
            return Err(Error::Training {
                reason: format!(
                    "n_neighbors is {} but there are only {} training rows; lower n_neighbors",
                    self.n_neighbors,
                    x.nrows()
                ),
            });
        }
        Ok(KNeighbors {
            n_neighbors: self.n_neighbors,
            weights: self.weights,
            x: x.clone(),
            targets,
        })
    }
}

/// A fitted k-nearest-neighbours model: the training rows and their targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KNeighbors {
    n_neighbors: usize,
    weights: NeighborWeights,
    x: Array2<f64>,
    targets: Array2<f64>,
}

impl KNeighbors {
    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// Number of outputs (classes, or 1).
    pub fn n_outputs(&self) -> usize {
        self.targets.ncols()
    }

    /// Checks what a model read from a file must hold before it predicts: at least one
    /// neighbour, no more neighbours than training rows, one target row per training row.
    /// Fitting guarantees all three; a hand-edited or corrupted file may not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n_neighbors == 0 {
            return Err("k-nearest-neighbours model with n_neighbors 0; it needs at least 1".into());
        }
        if self.x.nrows() < self.n_neighbors {
            return Err(format!(
                "k-nearest-neighbours model with n_neighbors {} but only {} training rows",
                self.n_neighbors,
                self.x.nrows()
            ));
        }
        if self.targets.nrows() != self.x.nrows() {
            return Err(format!(
                "k-nearest-neighbours model with {} training rows but {} target rows",
                self.x.nrows(),
                self.targets.nrows()
            ));
        }
        Ok(())
    }

    /// The weighted mean of the nearest neighbours' target rows: class vote shares (which sum
    /// to one) for classifiers, the mean value for regressors. Ties in distance go to the
    /// earlier training row.
    pub fn predict(&self, q: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        if q.ncols() != self.n_features() {
            return Err(Error::Internal(format!(
                "design matrix has {} columns, model has {} features",
                q.ncols(),
                self.n_features()
            )));
        }
        self.validate().map_err(Error::Internal)?;
        let k = self.n_neighbors;
        let mut out = Array2::<f64>::zeros((q.nrows(), self.n_outputs()));
        let mut dist: Vec<(f64, usize)> = Vec::with_capacity(self.x.nrows());
        for (r, row) in q.rows().into_iter().enumerate() {
            dist.clear();
            for (i, t) in self.x.rows().into_iter().enumerate() {
                let d2: f64 = row.iter().zip(t.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
                dist.push((d2, i));
            }
            let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if k < dist.len() {
                dist.select_nth_unstable_by(k - 1, cmp);
            }
            let nearest = &mut dist[..k];
            nearest.sort_unstable_by(cmp);
            let exact = nearest[0].0 == 0.0;
            let mut total = 0.0;
            for &(d2, i) in nearest.iter() {
                let w = match self.weights {
                    NeighborWeights::Uniform => 1.0,
                    NeighborWeights::Distance if exact => f64::from(u8::from(d2 == 0.0)),
                    NeighborWeights::Distance => 1.0 / d2.sqrt(),
                };
                total += w;
                out.row_mut(r).scaled_add(w, &self.targets.row(i));
            }
            out.row_mut(r).mapv_inplace(|v| v / total);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn votes_and_means_of_the_nearest_rows() {
        let x = array![[0.0], [1.0], [2.0], [10.0], [11.0]];
        // Classes 0,0,1,1,1 one-hot.
        let y = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]];
        let m = KNeighborsParams {
            n_neighbors: 3,
            weights: NeighborWeights::Uniform,
        }
        .fit(&x, y)
        .unwrap();
        // Neighbours of 0.4: rows 0, 1, 2 → 2/3 class 0.
        let p = m.predict(array![[0.4], [10.6]].view()).unwrap();
        assert!((p[[0, 0]] - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(p.row(1).to_vec(), [0.0, 1.0]);
        // Regression: neighbours of 10.6 are 10, 11, 2 → mean of 7, 8, 3 = 6.
        let r = KNeighborsParams {
            n_neighbors: 3,
            weights: NeighborWeights::Uniform,
        }
        .fit(&x, array![[1.0], [2.0], [3.0], [7.0], [8.0]])
        .unwrap();
        assert!((r.predict(array![[10.6]].view()).unwrap()[[0, 0]] - 6.0).abs() < 1e-12);
    }

    #[test]
    fn distance_weights_favour_close_rows_and_exact_matches() {
        let x = array![[0.0], [1.0], [3.0]];
        let m = KNeighborsParams {
            n_neighbors: 2,
            weights: NeighborWeights::Distance,
        }
        .fit(&x, array![[0.0], [10.0], [30.0]])
        .unwrap();
        // 0.25: distances .25 and .75 → weights 4 and 4/3 → (0·4 + 10·4/3) / (16/3) = 2.5.
        let p = m.predict(array![[0.25], [1.0]].view()).unwrap();
        assert!((p[[0, 0]] - 2.5).abs() < 1e-12, "{p}");
        assert_eq!(p[[1, 0]], 10.0);
    }
}
