//! Decision trees and random forests, written here rather than taken from smartcore.
//!
//! smartcore 0.7's `RandomForestClassifier` has no class probabilities, keeps its trees in
//! private types (reachable only through its serde form) and trains on one thread. This
//! learner gives what the rest of streamscore needs:
//!
//! - **Histogram split finding** (as LightGBM and scikit-learn's `HistGradientBoosting*`):
//!   every feature is binned once per fit into at most `max_bins` (≤ 256) bins, so finding a
//!   node's best split costs one pass over its rows per candidate feature plus a scan of the
//!   bins, with no sorting. Features with at most `max_bins` distinct values are binned exactly
//!   (one bin per value, thresholds at midpoints, the thresholds an exact tree would use).
//! - **Independent, seeded trees trained in parallel** (rayon): tree `t` draws from its own
//!   generator seeded from `(seed, t)`, so the forest is the same for any number of threads.
//! - **Probabilities**: a classification leaf stores its weighted class distribution; a forest
//!   predicts the mean of its trees' leaf distributions (scikit-learn's `predict_proba`).
//! - **A flat structure-of-arrays layout** ([`TreeEnsemble`]): every node of every tree in
//!   parallel vectors (split feature, threshold, left and right child, leaf value offset), so
//!   prediction walks arrays and writes into a caller-provided buffer with no allocation.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{Rng, splitmix64};

/// Marks a leaf in [`TreeEnsemble::left`] / [`TreeEnsemble::right`].
pub const LEAF: u32 = u32::MAX;

/// Split quality measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Gini impurity `1 - Σ p_k²` (classification; scikit-learn's default).
    Gini,
    /// Shannon entropy `-Σ p_k ln p_k` (classification).
    Entropy,
    /// Mean squared error, i.e. variance reduction (regression; scikit-learn's default).
    SquaredError,
}

impl Criterion {
    fn is_classification(self) -> bool {
        matches!(self, Criterion::Gini | Criterion::Entropy)
    }
}

/// How many features each split considers, drawn at random without replacement per node.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxFeatures {
    /// An absolute number of features (≥ 1; capped at the number of features).
    Count(u64),
    /// A share of the features in `(0, 1]`, rounded down, at least 1.
    Fraction(f64),
    /// A rule.
    Rule(MaxFeaturesRule),
}

/// A named rule for [`MaxFeatures`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeaturesRule {
    /// `floor(sqrt(d))` (scikit-learn's `"sqrt"`, the default of its forest classifier).
    Sqrt,
    /// `floor(log2(d))`, at least 1.
    Log2,
    /// Every feature (scikit-learn's `None`).
    All,
}

impl MaxFeatures {
    fn check(&self) -> Result<()> {
        match *self {
            MaxFeatures::Count(0) => Err(Error::invalid_parameter(
                "max_features",
                "must be at least 1 (or a fraction in (0, 1], or sqrt, log2, all)",
            )),
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => Err(Error::invalid_parameter(
                "max_features",
                format!("a fraction must be in (0, 1], got {f}"),
            )),
            _ => Ok(()),
        }
    }

    /// The number of features to consider out of `d`.
    pub fn resolve(&self, d: usize) -> usize {
        let k = match *self {
            MaxFeatures::Count(k) => usize::try_from(k).unwrap_or(usize::MAX),
            MaxFeatures::Fraction(f) => (f * d as f64).floor() as usize,
            MaxFeatures::Rule(MaxFeaturesRule::Sqrt) => (d as f64).sqrt().floor() as usize,
            MaxFeatures::Rule(MaxFeaturesRule::Log2) => (d as f64).log2().floor() as usize,
            MaxFeatures::Rule(MaxFeaturesRule::All) => d,
        };
        k.clamp(1, d.max(1))
    }
}

/// Growth parameters of one tree (shared by trees and forests).
#[derive(Clone, Debug, PartialEq)]
pub struct GrowthParams {
    /// Split criterion.
    pub criterion: Criterion,
    /// Maximum depth (root = depth 0); `None` grows until leaves are pure or too small.
    pub max_depth: Option<usize>,
    /// A node with fewer (distinct) training rows is not split.
    pub min_samples_split: usize,
    /// Each child of a split keeps at least this many (distinct) training rows.
    pub min_samples_leaf: usize,
    /// Features considered per split.
    pub max_features: MaxFeatures,
    /// Histogram bins per feature, 2..=256.
    pub max_bins: usize,
}

impl GrowthParams {
    /// Checks ranges (before any work starts).
    pub fn check(&self) -> Result<()> {
        if self.max_depth == Some(0) {
            return Err(Error::invalid_parameter(
                "max_depth",
                "must be at least 1 (omit it to grow until leaves are pure)",
            ));
        }
        if self.min_samples_split < 2 {
            return Err(Error::invalid_parameter(
                "min_samples_split",
                format!("must be at least 2, got {}", self.min_samples_split),
            ));
        }
        if self.min_samples_leaf < 1 {
            return Err(Error::invalid_parameter("min_samples_leaf", "must be at least 1"));
        }
        if !(2..=256).contains(&self.max_bins) {
            return Err(Error::invalid_parameter(
                "max_bins",
                format!("must be between 2 and 256, got {}", self.max_bins),
            ));
        }
        self.max_features.check()
    }
}

/// What the trees learn to predict.
#[derive(Clone, Copy, Debug)]
pub enum TreeTarget<'a> {
    /// Class codes in `0..n_classes`.
    Classes {
        /// One code per row.
        codes: &'a [usize],
        /// Number of classes.
        n_classes: usize,
    },
    /// Real values.
    Values(&'a [f64]),
}

impl TreeTarget<'_> {
    fn len(&self) -> usize {
        match self {
            TreeTarget::Classes { codes, .. } => codes.len(),
            TreeTarget::Values(v) => v.len(),
        }
    }

    fn n_outputs(&self) -> usize {
        match self {
            TreeTarget::Classes { n_classes, .. } => *n_classes,
            TreeTarget::Values(_) => 1,
        }
    }
}

/// How an ensemble is grown.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleParams {
    /// Parameters of each tree.
    pub growth: GrowthParams,
    /// Number of trees.
    pub n_trees: usize,
    /// Train each tree on a bootstrap sample (n draws with replacement).
    pub bootstrap: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// Threads; `None` = all cores.
    pub n_jobs: Option<usize>,
}

/// Trees in one flat structure-of-arrays layout.
///
/// Node `i` of any tree is split on feature `feature[i]`: rows with
/// `x[feature] <= threshold[i]` go to node `left[i]`, the others (and NaN) to `right[i]`.
/// A leaf has `left[i] == right[i] == LEAF`; its prediction is
/// `values[value_offset[i] .. value_offset[i] + n_outputs]` (a class distribution, or one
/// value). Tree `t` starts at node `roots[t]`; node indices are global. The ensemble predicts
/// the mean of its trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    /// Number of input features.
    pub n_features: usize,
    /// Values per leaf: the number of classes, or 1 for regression.
    pub n_outputs: usize,
    /// First node of each tree.
    pub roots: Vec<u32>,
    /// Split feature per node (0 for leaves).
    pub feature: Vec<u32>,
    /// Split threshold per node (0 for leaves).
    pub threshold: Vec<f64>,
    /// Left child per node, [`LEAF`] for leaves.
    pub left: Vec<u32>,
    /// Right child per node, [`LEAF`] for leaves.
    pub right: Vec<u32>,
    /// Offset of a leaf's values in `values` (0 for internal nodes).
    pub value_offset: Vec<u32>,
    /// Leaf values, `n_outputs` per leaf.
    pub values: Vec<f64>,
    /// Mean decrease in impurity per feature, normalized to sum to 1 (all zeros when no tree
    /// split).
    pub feature_importances: Vec<f64>,
}

impl TreeEnsemble {
    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Number of nodes of all trees.
    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    /// Depth of the deepest tree (a lone leaf has depth 0).
    pub fn max_depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = Vec::new();
        for &root in &self.roots {
            stack.push((root, 0usize));
            while let Some((node, depth)) = stack.pop() {
                let i = node as usize;
                if self.left[i] == LEAF {
                    deepest = deepest.max(depth);
                } else {
                    stack.push((self.left[i], depth + 1));
                    stack.push((self.right[i], depth + 1));
                }
            }
        }
        deepest
    }

    /// Checks the structure's invariants (after loading from a file).
    pub fn validate(&self) -> Result<()> {
        let n = self.feature.len();
        let bad = |what: String| Err(Error::Internal(format!("invalid tree ensemble: {what}")));
        if [
            self.threshold.len(),
            self.left.len(),
            self.right.len(),
            self.value_offset.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return bad("node arrays differ in length".into());
        }
        if self.roots.is_empty() || self.n_outputs == 0 {
            return bad("no trees or no outputs".into());
        }
        if self.feature_importances.len() != self.n_features {
            return bad("importances do not match the features".into());
        }
        for &r in &self.roots {
            if r as usize >= n {
                return bad(format!("root {r} out of range"));
            }
        }
        for i in 0..n {
            let (l, r) = (self.left[i], self.right[i]);
            if l == LEAF || r == LEAF {
                if l != r {
                    return bad(format!("node {i} has one child"));
                }
                if (self.value_offset[i] as usize)
                    .checked_add(self.n_outputs)
                    .is_none_or(|end| end > self.values.len())
                {
                    return bad(format!("leaf {i} values out of range"));
                }
            } else if (l as usize) <= i || (r as usize) <= i || l as usize >= n || r as usize >= n {
                // Children always follow their parent, which also rules out cycles.
                return bad(format!("node {i} has children out of order"));
            } else if self.feature[i] as usize >= self.n_features {
                return bad(format!("node {i} splits on a missing feature"));
            }
        }
        // Each node hangs below one parent (or is one tree's root): the ordering check above
        // rules out cycles but not a node shared by two parents, and every walk over such a
        // structure (depth, kernel layout) doubles with each shared level.
        let mut parents = vec![0u8; n];
        let children = (0..n)
            .filter(|&i| self.left[i] != LEAF)
            .flat_map(|i| [self.left[i], self.right[i]]);
        for node in self.roots.iter().copied().chain(children) {
            let p = &mut parents[node as usize];
            *p = p.saturating_add(1);
            if *p > 1 {
                return bad(format!(
                    "node {node} is reached twice (shared by two parents or roots): the nodes do not form trees"
                ));
            }
        }
        Ok(())
    }

    /// The leaf node that tree `t` sends `row` to.
    #[inline]
    fn leaf(&self, t: usize, row: &[f64]) -> usize {
        let mut i = self.roots[t] as usize;
        while self.left[i] != LEAF {
            // NaN compares false and goes right.
            i = if row[self.feature[i] as usize] <= self.threshold[i] {
                self.left[i] as usize
            } else {
                self.right[i] as usize
            };
        }
        i
    }

    /// Writes the ensemble's prediction for one row (`n_features` values) into `out`
    /// (`n_outputs` values). No allocation.
    #[inline]
    pub fn predict_row_into(&self, row: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        let k = self.n_outputs;
        for t in 0..self.roots.len() {
            let leaf = self.leaf(t, row);
            let off = self.value_offset[leaf] as usize;
            for (o, v) in out.iter_mut().zip(&self.values[off..off + k]) {
                *o += v;
            }
        }
        let scale = 1.0 / self.roots.len() as f64;
        out.iter_mut().for_each(|o| *o *= scale);
    }

    /// Predictions for every row of `x` (`n × n_features`) → `n × n_outputs`.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        if x.ncols() != self.n_features {
            return Err(Error::Internal(format!(
                "design matrix has {} columns, model has {} features",
                x.ncols(),
                self.n_features
            )));
        }
        let mut out = Array2::<f64>::zeros((x.nrows(), self.n_outputs));
        let mut scratch = vec![0.0; self.n_features];
        for (r, mut o) in out.rows_mut().into_iter().enumerate() {
            let xr = x.row(r);
            let row: &[f64] = match xr.as_slice() {
                Some(s) => s,
                None => {
                    scratch.iter_mut().zip(xr.iter()).for_each(|(s, v)| *s = *v);
                    &scratch
                }
            };
            match o.as_slice_mut() {
                Some(slice) => self.predict_row_into(row, slice),
                None => return Err(Error::Internal("output rows are contiguous".into())),
            }
        }
        Ok(out)
    }

    /// Fits `params.n_trees` trees on `x` and `target`. `progress` is called once per finished
    /// tree (from any thread).
    pub fn fit(
        x: ArrayView2<'_, f64>,
        target: TreeTarget<'_>,
        params: &EnsembleParams,
        progress: &(dyn Fn() + Sync),
    ) -> Result<TreeEnsemble> {
        params.growth.check()?;
        if params.n_trees == 0 {
            return Err(Error::invalid_parameter("n_estimators", "must be at least 1"));
        }
        if params.n_jobs == Some(0) {
            return Err(Error::invalid_parameter(
                "n_jobs",
                "must be at least 1 (omit it to use every core)",
            ));
        }
        if params.growth.criterion.is_classification() != matches!(target, TreeTarget::Classes { .. }) {
            return Err(Error::invalid_parameter(
                "criterion",
                format!(
                    "{:?} does not fit this target (gini/entropy classify, squared_error regresses)",
                    params.growth.criterion
                ),
            ));
        }
        let (n, d) = x.dim();
        if n == 0 || d == 0 || target.len() != n {
            return Err(Error::Training {
                reason: format!(
                    "cannot grow trees on {n} rows × {d} features with {} targets",
                    target.len()
                ),
            });
        }
        if let TreeTarget::Values(v) = target
            && let Some(bad) = v.iter().position(|y| !y.is_finite())
        {
            return Err(Error::Training {
                reason: format!("target value in row {bad} is not a finite number"),
            });
        }
        let binned = Binned::new(x, params.growth.max_bins)?;
        // The caller's cancellation token goes with the trees to rayon's threads: once it is
        // cancelled, the trees not started yet are skipped and the fit fails.
        let token = crate::cancel::current();
        let grow = |t: usize| {
            if let Some(token) = &token {
                token.check()?;
            }
            let mut rng = Rng::new(splitmix64(params.seed.wrapping_add(t as u64)));
            let tree = grow_tree(&binned, target, &params.growth, params.bootstrap, &mut rng);
            progress();
            Ok(tree)
        };
        let trees: Vec<LocalTree> = match params.n_jobs {
            Some(1) => (0..params.n_trees).map(grow).collect::<Result<_>>()?,
            Some(k) => rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .map_err(|e| Error::Training {
                    reason: format!("cannot start {k} threads: {e}"),
                })?
                .install(|| {
                    (0..params.n_trees)
                        .into_par_iter()
                        .map(grow)
                        .collect::<Result<_>>()
                })?,
            None => (0..params.n_trees)
                .into_par_iter()
                .map(grow)
                .collect::<Result<_>>()?,
        };
        Ok(Self::assemble(trees, d, target.n_outputs(), &binned))
    }

    fn assemble(trees: Vec<LocalTree>, d: usize, k: usize, binned: &Binned) -> TreeEnsemble {
        let total_nodes: usize = trees.iter().map(|t| t.feature.len()).sum();
        let mut e = TreeEnsemble {
            n_features: d,
            n_outputs: k,
            roots: Vec::with_capacity(trees.len()),
            feature: Vec::with_capacity(total_nodes),
            threshold: Vec::with_capacity(total_nodes),
            left: Vec::with_capacity(total_nodes),
            right: Vec::with_capacity(total_nodes),
            value_offset: Vec::with_capacity(total_nodes),
            values: Vec::new(),
            feature_importances: vec![0.0; d],
        };
        let mut contributing = 0usize;
        for tree in trees {
            let base = e.feature.len() as u32;
            let value_base = e.values.len() as u32;
            e.roots.push(base);
            for i in 0..tree.feature.len() {
                let leaf = tree.left[i] == LEAF;
                e.feature.push(if leaf { 0 } else { tree.feature[i] });
                e.threshold.push(if leaf {
                    0.0
                } else {
                    binned.edges[tree.feature[i] as usize][tree.bin[i] as usize]
                });
                e.left.push(if leaf { LEAF } else { tree.left[i] + base });
                e.right.push(if leaf { LEAF } else { tree.right[i] + base });
                e.value_offset.push(if leaf {
                    tree.value_offset[i] + value_base
                } else {
                    0
                });
            }
            e.values.extend_from_slice(&tree.values);
            // scikit-learn: each tree's importances normalized to sum 1, then averaged over the
            // trees that split at all, then normalized again.
            let sum: f64 = tree.importance.iter().sum();
            if sum > 0.0 {
                contributing += 1;
                for (acc, v) in e.feature_importances.iter_mut().zip(&tree.importance) {
                    *acc += v / sum;
                }
            }
        }
        if contributing > 0 {
            let sum: f64 = e.feature_importances.iter().sum();
            e.feature_importances.iter_mut().for_each(|v| *v /= sum);
        }
        e
    }
}

/// Every feature as bin codes (feature-major), with each feature's thresholds.
struct Binned {
    n_rows: usize,
    /// `codes[f * n_rows + r]` is the bin of row `r` in feature `f`.
    codes: Vec<u8>,
    /// `edges[f][b]` is the threshold between bins `b` and `b + 1`: `x <= edges[f][b]` ⇔
    /// `bin(x) <= b`.
    edges: Vec<Vec<f64>>,
}

impl Binned {
    fn new(x: ArrayView2<'_, f64>, max_bins: usize) -> Result<Binned> {
        let (n, d) = x.dim();
        let mut codes = vec![0u8; n * d];
        let mut edges = Vec::with_capacity(d);
        let mut sorted = Vec::with_capacity(n);
        for f in 0..d {
            let col = x.column(f);
            sorted.clear();
            sorted.extend(col.iter().copied());
            if let Some(r) = sorted.iter().position(|v| !v.is_finite()) {
                return Err(Error::Training {
                    reason: format!("feature {f} has a non-finite value in row {r} after preprocessing"),
                });
            }
            sorted.sort_unstable_by(f64::total_cmp);
            let mut distinct: Vec<f64> = Vec::new();
            for &v in &sorted {
                if distinct.last() != Some(&v) {
                    distinct.push(v);
                }
            }
            let e: Vec<f64> = if distinct.len() <= max_bins {
                distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect()
            } else {
                // Quantile cut points, each placed between two distinct observed values so that
                // a threshold never sits on a value (as an exact tree's midpoints do).
                let mut cuts = Vec::with_capacity(max_bins - 1);
                for q in 1..max_bins {
                    let v = sorted[(q * n) / max_bins];
                    let at = distinct.partition_point(|&u| u < v);
                    if at + 1 < distinct.len() {
                        let cut = midpoint(distinct[at], distinct[at + 1]);
                        if cuts.last().is_none_or(|&c| cut > c) {
                            cuts.push(cut);
                        }
                    }
                }
                cuts
            };
            let out = &mut codes[f * n..(f + 1) * n];
            for (c, &v) in out.iter_mut().zip(col.iter()) {
                // Number of edges below v; at most 255, so it fits a byte.
                *c = e.partition_point(|&edge| edge < v) as u8;
            }
            edges.push(e);
        }
        Ok(Binned {
            n_rows: n,
            codes,
            edges,
        })
    }

    fn n_bins(&self, f: usize) -> usize {
        self.edges[f].len() + 1
    }

    fn column(&self, f: usize) -> &[u8] {
        &self.codes[f * self.n_rows..(f + 1) * self.n_rows]
    }
}

fn midpoint(a: f64, b: f64) -> f64 {
    let m = a + (b - a) / 2.0;
    // Rounding can land on b when a and b are adjacent floats; keep `a <= m < b`.
    if m >= b { a } else { m }
}

/// One tree in local node numbering, thresholds as bin indices.
struct LocalTree {
    feature: Vec<u32>,
    bin: Vec<u8>,
    left: Vec<u32>,
    right: Vec<u32>,
    value_offset: Vec<u32>,
    values: Vec<f64>,
    importance: Vec<f64>,
}

/// Weighted statistics of a set of rows: per-class weights (classification) or `[Σw, Σwy,
/// Σwy²]` (regression), plus the number of distinct rows.
#[derive(Clone, Debug)]
struct Stats {
    sums: Vec<f64>,
    count: usize,
}

struct Task {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
}

fn grow_tree(
    binned: &Binned,
    target: TreeTarget<'_>,
    params: &GrowthParams,
    bootstrap: bool,
    rng: &mut Rng,
) -> LocalTree {
    let n = binned.n_rows;
    let d = binned.edges.len();
    // Row weights: bootstrap counts (scikit-learn passes them as sample weights) or all ones.
    let mut weight = vec![0.0f64; n];
    if bootstrap {
        for _ in 0..n {
            weight[rng.below(n as u64) as usize] += 1.0;
        }
    } else {
        weight.iter_mut().for_each(|w| *w = 1.0);
    }
    let mut rows: Vec<u32> = (0..n as u32).filter(|&r| weight[r as usize] > 0.0).collect();
    let classification = matches!(target, TreeTarget::Classes { .. });
    let width = match target {
        TreeTarget::Classes { n_classes, .. } => n_classes,
        TreeTarget::Values(_) => 3,
    };
    let k = target.n_outputs();
    let max_features = params.max_features.resolve(d);
    let mut features: Vec<usize> = (0..d).collect();
    // One histogram buffer reused for every node: per bin `width` sums and a row count.
    let stride = width + 1;
    let mut hist = vec![0.0f64; 256 * stride];
    let mut left_sums = vec![0.0f64; width];
    let mut right_sums = vec![0.0f64; width];
    let mut scratch: Vec<u32> = Vec::with_capacity(rows.len());

    let mut tree = LocalTree {
        feature: vec![0],
        bin: vec![0],
        left: vec![LEAF],
        right: vec![LEAF],
        value_offset: vec![0],
        values: Vec::new(),
        importance: vec![0.0; d],
    };
    let mut stack = vec![Task {
        node: 0,
        start: 0,
        end: rows.len(),
        depth: 0,
    }];
    let total_weight: f64 = weight.iter().sum();
    while let Some(task) = stack.pop() {
        let idx = &mut rows[task.start..task.end];
        let stats = node_stats(idx, &weight, target, width);
        let node_impurity = weighted_impurity(params.criterion, &stats.sums);
        let can_split = stats.count >= params.min_samples_split
            && stats.count >= 2 * params.min_samples_leaf
            && params.max_depth.is_none_or(|m| task.depth < m)
            && node_impurity > 1e-12 * stat_weight(classification, &stats.sums).max(1.0);
        let mut best: Option<(f64, usize, usize)> = None; // (children impurity, feature, bin)
        if can_split {
            // Draw features without replacement until `max_features` non-constant ones were
            // examined (constant ones do not count, as in scikit-learn).
            let mut examined = 0;
            let mut drawn = 0;
            while drawn < d && examined < max_features {
                let j = drawn + rng.below((d - drawn) as u64) as usize;
                features.swap(drawn, j);
                let f = features[drawn];
                drawn += 1;
                let nb = binned.n_bins(f);
                if nb < 2 {
                    continue;
                }
                let h = &mut hist[..nb * stride];
                h.fill(0.0);
                let col = binned.column(f);
                match target {
                    TreeTarget::Classes { codes, .. } => {
                        for &r in idx.iter() {
                            let r = r as usize;
                            let base = col[r] as usize * stride;
                            h[base + codes[r]] += weight[r];
                            h[base + width] += 1.0;
                        }
                    }
                    TreeTarget::Values(y) => {
                        for &r in idx.iter() {
                            let r = r as usize;
                            let (w, v) = (weight[r], y[r]);
                            let base = col[r] as usize * stride;
                            h[base] += w;
                            h[base + 1] += w * v;
                            h[base + 2] += w * v * v;
                            h[base + 3] += 1.0;
                        }
                    }
                }
                let nonempty = (0..nb).filter(|&b| h[b * stride + width] > 0.0).count();
                if nonempty < 2 {
                    continue;
                }
                examined += 1;
                left_sums.fill(0.0);
                let mut left_count = 0usize;
                for b in 0..nb - 1 {
                    let base = b * stride;
                    if h[base + width] == 0.0 {
                        continue;
                    }
                    for (l, v) in left_sums.iter_mut().zip(&h[base..base + width]) {
                        *l += v;
                    }
                    left_count += h[base + width] as usize;
                    let right_count = stats.count - left_count;
                    if right_count == 0 {
                        break;
                    }
                    if left_count < params.min_samples_leaf || right_count < params.min_samples_leaf {
                        continue;
                    }
                    for ((r, t), l) in right_sums.iter_mut().zip(&stats.sums).zip(&left_sums) {
                        *r = t - l;
                    }
                    let children = weighted_impurity(params.criterion, &left_sums)
                        + weighted_impurity(params.criterion, &right_sums);
                    if best.is_none_or(|(c, _, _)| children < c) {
                        best = Some((children, f, b));
                    }
                }
            }
        }
        match best {
            Some((children, f, b)) => {
                tree.importance[f] += (node_impurity - children).max(0.0) / total_weight;
                // Stable partition (bin <= b to the left): rows stay in ascending order within
                // every node, so histogram passes read the columns front to back, which the
                // hardware prefetches (an unstable swap partition scrambles the order and made
                // the histogram loop wait on memory).
                let col = binned.column(f);
                scratch.clear();
                let mut i = 0usize;
                for k in 0..idx.len() {
                    let r = idx[k];
                    if col[r as usize] as usize <= b {
                        idx[i] = r;
                        i += 1;
                    } else {
                        scratch.push(r);
                    }
                }
                idx[i..].copy_from_slice(&scratch);
                let (l, r) = (tree.feature.len(), tree.feature.len() + 1);
                for _ in 0..2 {
                    tree.feature.push(0);
                    tree.bin.push(0);
                    tree.left.push(LEAF);
                    tree.right.push(LEAF);
                    tree.value_offset.push(0);
                }
                tree.feature[task.node] = f as u32;
                tree.bin[task.node] = b as u8;
                tree.left[task.node] = l as u32;
                tree.right[task.node] = r as u32;
                let mid = task.start + i;
                stack.push(Task {
                    node: r,
                    start: mid,
                    end: task.end,
                    depth: task.depth + 1,
                });
                stack.push(Task {
                    node: l,
                    start: task.start,
                    end: mid,
                    depth: task.depth + 1,
                });
            }
            None => {
                tree.value_offset[task.node] = tree.values.len() as u32;
                if classification {
                    let w: f64 = stats.sums.iter().sum();
                    tree.values.extend(stats.sums.iter().map(|c| c / w));
                } else {
                    tree.values.push(stats.sums[1] / stats.sums[0]);
                }
                debug_assert_eq!(tree.values.len() % k, 0);
            }
        }
    }
    tree
}

fn node_stats(idx: &[u32], weight: &[f64], target: TreeTarget<'_>, width: usize) -> Stats {
    let mut sums = vec![0.0; width];
    match target {
        TreeTarget::Classes { codes, .. } => {
            for &r in idx {
                sums[codes[r as usize]] += weight[r as usize];
            }
        }
        TreeTarget::Values(y) => {
            for &r in idx {
                let (w, v) = (weight[r as usize], y[r as usize]);
                sums[0] += w;
                sums[1] += w * v;
                sums[2] += w * v * v;
            }
        }
    }
    Stats {
        sums,
        count: idx.len(),
    }
}

fn stat_weight(classification: bool, sums: &[f64]) -> f64 {
    if classification {
        sums.iter().sum()
    } else {
        sums[0]
    }
}

/// `weight × impurity` of a node from its sums (so children's values add up).
fn weighted_impurity(criterion: Criterion, sums: &[f64]) -> f64 {
    match criterion {
        Criterion::Gini => {
            let w: f64 = sums.iter().sum();
            if w <= 0.0 {
                return 0.0;
            }
            w - sums.iter().map(|c| c * c).sum::<f64>() / w
        }
        Criterion::Entropy => {
            let w: f64 = sums.iter().sum();
            if w <= 0.0 {
                return 0.0;
            }
            // w·H = -Σ c ln(c / w).
            -sums
                .iter()
                .filter(|&&c| c > 0.0)
                .map(|&c| c * (c / w).ln())
                .sum::<f64>()
        }
        Criterion::SquaredError => {
            let (w, s, ss) = (sums[0], sums[1], sums[2]);
            if w <= 0.0 {
                return 0.0;
            }
            (ss - s * s / w).max(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn params(criterion: Criterion) -> EnsembleParams {
        EnsembleParams {
            growth: GrowthParams {
                criterion,
                max_depth: None,
                min_samples_split: 2,
                min_samples_leaf: 1,
                max_features: MaxFeatures::Rule(MaxFeaturesRule::All),
                max_bins: 256,
            },
            n_trees: 1,
            bootstrap: false,
            seed: 0,
            n_jobs: Some(1),
        }
    }

    #[test]
    fn a_single_split_is_found_at_the_midpoint() {
        // Feature 0 separates the classes between 2 and 10; feature 1 is noise.
        let x = array![[1.0, 5.0], [2.0, 1.0], [10.0, 4.0], [11.0, 2.0]];
        let y = [0, 0, 1, 1];
        let t = TreeEnsemble::fit(
            x.view(),
            TreeTarget::Classes {
                codes: &y,
                n_classes: 2,
            },
            &params(Criterion::Gini),
            &|| {},
        )
        .unwrap();
        assert_eq!(t.n_nodes(), 3);
        assert_eq!(t.feature[0], 0);
        assert_eq!(t.threshold[0], 6.0);
        assert_eq!(t.feature_importances, [1.0, 0.0]);
        let p = t.predict(array![[6.0, 0.0], [6.5, 0.0]].view()).unwrap();
        assert_eq!(p, array![[1.0, 0.0], [0.0, 1.0]]);
        t.validate().unwrap();
    }

    #[test]
    fn a_cancelled_fit_stops_between_trees() {
        use crate::cancel::CancelToken;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let x = array![[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]];
        let y = [1.0, 2.0, 3.0, 19.0, 20.0, 21.0];
        for n_jobs in [Some(1), Some(2)] {
            let mut p = params(Criterion::SquaredError);
            p.n_trees = 500;
            p.n_jobs = n_jobs;
            // The first finished tree cancels the fit: the trees not started yet are skipped.
            let token = CancelToken::new();
            let grown = AtomicUsize::new(0);
            let progress = || {
                grown.fetch_add(1, Ordering::Relaxed);
                token.cancel();
            };
            let fit = token.scope(|| TreeEnsemble::fit(x.view(), TreeTarget::Values(&y), &p, &progress));
            assert!(matches!(fit, Err(Error::Cancelled)), "{n_jobs:?}: {fit:?}");
            // At most the trees already started on each thread finish.
            let grown = grown.load(Ordering::Relaxed);
            assert!((1..=2).contains(&grown), "{n_jobs:?}: {grown} trees grown");
        }
        // Outside a scope, or with a token never cancelled, the fit completes.
        let mut p = params(Criterion::SquaredError);
        p.n_trees = 5;
        let token = CancelToken::new();
        let t = token.scope(|| TreeEnsemble::fit(x.view(), TreeTarget::Values(&y), &p, &|| {}));
        assert_eq!(t.unwrap().n_trees(), 5);
    }

    #[test]
    fn regression_leaves_hold_means() {
        // Two groups, means 2 and 20; the best split separates them, depth 1 stops there.
        let x = array![[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]];
        let y = [1.0, 2.0, 3.0, 19.0, 20.0, 21.0];
        let mut p = params(Criterion::SquaredError);
        p.growth.max_depth = Some(1);
        let t = TreeEnsemble::fit(x.view(), TreeTarget::Values(&y), &p, &|| {}).unwrap();
        assert_eq!(t.threshold[0], 6.0);
        let out = t.predict(array![[-5.0], [100.0]].view()).unwrap();
        assert_eq!(out, array![[2.0], [20.0]]);
    }

    #[test]
    fn quantile_bins_put_thresholds_between_values() {
        let col: Vec<f64> = (0..1000).map(f64::from).collect();
        let x = Array2::from_shape_vec((1000, 1), col).unwrap();
        let b = Binned::new(x.view(), 4).unwrap();
        // Cuts at sorted[250], [500], [750] → midpoints to the next value.
        assert_eq!(b.edges[0], [250.5, 500.5, 750.5]);
        assert_eq!(b.column(0)[250], 0);
        assert_eq!(b.column(0)[251], 1);
        assert_eq!(b.column(0)[999], 3);
    }

    #[test]
    fn gini_and_entropy_weighted_impurities() {
        // Counts (3, 1): Gini 1 - (9+1)/16 = 0.375, times 4 = 1.5.
        assert!((weighted_impurity(Criterion::Gini, &[3.0, 1.0]) - 1.5).abs() < 1e-12);
        // Entropy -(.75 ln .75 + .25 ln .25) = 0.5623351446188083, times 4.
        assert!(
            (weighted_impurity(Criterion::Entropy, &[3.0, 1.0]) - 4.0 * 0.5623351446188083).abs() < 1e-12
        );
        // Values 1, 3 with weights 1: Σ(y - 2)² = 2.
        assert!((weighted_impurity(Criterion::SquaredError, &[2.0, 4.0, 10.0]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn max_features_rules() {
        assert_eq!(MaxFeatures::Rule(MaxFeaturesRule::Sqrt).resolve(20), 4);
        assert_eq!(MaxFeatures::Rule(MaxFeaturesRule::Log2).resolve(20), 4);
        assert_eq!(MaxFeatures::Fraction(0.5).resolve(20), 10);
        assert_eq!(MaxFeatures::Count(50).resolve(20), 20);
        assert_eq!(MaxFeatures::Fraction(0.01).resolve(20), 1);
        let parsed: MaxFeatures = serde_json::from_str("\"sqrt\"").unwrap();
        assert_eq!(parsed, MaxFeatures::Rule(MaxFeaturesRule::Sqrt));
        let parsed: MaxFeatures = serde_json::from_str("3").unwrap();
        assert_eq!(parsed, MaxFeatures::Count(3));
        let parsed: MaxFeatures = serde_json::from_str("0.3").unwrap();
        assert_eq!(parsed, MaxFeatures::Fraction(0.3));
        assert!(MaxFeatures::Fraction(1.5).check().is_err());
        assert!(MaxFeatures::Count(0).check().is_err());
    }
}
