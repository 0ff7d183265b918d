//! Tree ensembles compiled for batch prediction.
//!
//! [`FlatForest`] is built from a fitted [`TreeEnsemble`] (at fit or load time; the stored
//! artifact does not change) and predicts exactly what it predicts: the same comparisons on the
//! same `f64` thresholds, and per row the same sum of leaf values in tree order, scaled by the
//! same `1 / n_trees`. Only the memory layout and the order in which (row, tree) pairs are
//! visited differ, and neither can change a bit of the result.
//!
//! # Layout
//! Each tree is stored either
//! - **perfect**: padded to a complete binary tree of its depth `D` (a leaf above the bottom is
//!   copied down, so every path has exactly `D` splits), nodes in heap order, so the children of
//!   node `i` are `2i + 1` and `2i + 2` and no child index is stored or loaded; or
//! - **linked** (trees deeper than [`MAX_PERFECT_DEPTH`], where padding would blow up): nodes in
//!   depth-first order with the left child next to its parent, explicit child indices, and
//!   leaves that point to themselves, so a walk of the tree's depth in steps needs no
//!   "is this a leaf" branch.
//!
//! # Traversal
//! Walking one tree for one row is a chain of dependent loads (node → feature value → next
//! node). A chain keeps the core waiting on each load, so the kernels walk [`LANES`]
//! independent chains at once: [`LANES`] rows through the same tree for batches (the tree stays
//! in L1 while a block of rows goes through it), or one row through [`LANES`] trees for single
//! rows and a batch's remainder. Every walk takes a fixed number of steps, so no branch depends
//! on the data.

use super::Rows;
use crate::estimator::tree::{LEAF, TreeEnsemble};

/// Independent walks interleaved per step. A step is a chain of two dependent L1 loads and a
/// compare (about 12 cycles of latency) but only about 8 instructions, so 8 chains in flight
/// keep the core busy; more only add register pressure.
pub const LANES: usize = 8;

/// Trees at most this deep are padded to perfect trees; a depth-12 tree pads to at most 4095
/// split nodes and 4096 leaves (about 48 KiB plus the leaf values).
pub const MAX_PERFECT_DEPTH: usize = 12;

/// One tree's place in the flat arrays.
#[derive(Clone, Debug, PartialEq)]
struct TreeRef {
    /// First node in `feature` / `threshold` (and `children` for linked trees).
    first_node: usize,
    /// First leaf value in `values` (perfect trees).
    first_value: usize,
    /// Steps from the root to a leaf (the maximum for linked trees).
    depth: usize,
    /// Heap-ordered complete tree, or linked nodes.
    perfect: bool,
}

/// A tree ensemble laid out for fast, exact batch prediction (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct FlatForest {
    n_features: usize,
    n_outputs: usize,
    trees: Vec<TreeRef>,
    /// Split feature per node.
    feature: Vec<u32>,
    /// Split threshold per node: `x <= threshold` goes left, anything else (NaN too) right.
    threshold: Vec<f64>,
    /// Linked nodes only: `[left, right]` per node, global indices; a leaf points to itself.
    children: Vec<[u32; 2]>,
    /// Linked nodes only: offset of a leaf's values in `values`.
    leaf_value: Vec<u32>,
    /// Leaf values, `n_outputs` per leaf.
    values: Vec<f64>,
    /// `1 / n_trees`, as [`TreeEnsemble::predict_row_into`] computes it.
    scale: f64,
}

impl FlatForest {
    /// Compiles `ensemble` (which must have passed [`TreeEnsemble::validate`], as every fitted
    /// or loaded ensemble has).
    pub fn new(ensemble: &TreeEnsemble) -> FlatForest {
        Self::with_max_perfect_depth(ensemble, MAX_PERFECT_DEPTH)
    }

    /// [`FlatForest::new`] with a lower depth limit for perfect trees (0: every tree linked;
    /// limits above [`MAX_PERFECT_DEPTH`] are taken as it). For benchmarks and tests of both
    /// layouts.
    pub fn with_max_perfect_depth(ensemble: &TreeEnsemble, max_perfect_depth: usize) -> FlatForest {
        let max_perfect_depth = max_perfect_depth.min(MAX_PERFECT_DEPTH);
        let k = ensemble.n_outputs;
        let mut flat = FlatForest {
            n_features: ensemble.n_features,
            n_outputs: k,
            trees: Vec::with_capacity(ensemble.n_trees()),
            feature: Vec::new(),
            threshold: Vec::new(),
            children: Vec::new(),
            leaf_value: Vec::new(),
            values: Vec::new(),
            scale: 1.0 / ensemble.n_trees() as f64,
        };
        for &root in &ensemble.roots {
            let depth = subtree_depth(ensemble, root as usize);
            if depth <= max_perfect_depth {
                flat.push_perfect(ensemble, root as usize, depth);
            } else {
                flat.push_linked(ensemble, root as usize, depth);
            }
        }
        flat
    }

    /// The same forest with its summed leaf values multiplied by `scale` instead of
    /// `1 / n_trees` (1 for ensembles that add their trees, as gradient boosting and ONNX's
    /// `SUM` aggregate do).
    pub fn with_scale(mut self, scale: f64) -> FlatForest {
        self.scale = scale;
        self
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Values per row: the number of classes, or 1 for regression.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Number of trees stored in the perfect (heap-ordered) layout.
    pub fn n_perfect_trees(&self) -> usize {
        self.trees.iter().filter(|t| t.perfect).count()
    }

    fn push_perfect(&mut self, e: &TreeEnsemble, root: usize, depth: usize) {
        let k = e.n_outputs;
        let first_node = self.feature.len();
        let first_value = self.values.len();
        let n_split = (1usize << depth) - 1;
        // One unused slot after the splits makes the tree's slice a power of two long, so
        // the walk can index it with a mask the compiler sees is in bounds.
        let slots = 1usize << depth;
        self.feature.resize(first_node + slots, 0);
        self.threshold.resize(first_node + slots, 0.0);
        // `children` and `leaf_value` are read for linked nodes only but share the node
        // numbering, so they grow with the other arrays.
        self.children.resize(first_node + slots, [0, 0]);
        self.leaf_value.resize(first_node + slots, 0);
        self.values.resize(first_value + (k << depth), 0.0);
        // (original node, heap position, level)
        let mut stack = vec![(root, 0usize, 0usize)];
        while let Some((node, pos, level)) = stack.pop() {
            if e.left[node] == LEAF {
                // Copy the leaf into every bottom slot under `pos`. Padding splits above them
                // keep feature 0 and threshold 0: both sides lead to the same values.
                let span = 1usize << (depth - level);
                let first_leaf = (pos + 1) * span - 1 - n_split;
                let off = e.value_offset[node] as usize;
                for leaf in first_leaf..first_leaf + span {
                    let dst = first_value + leaf * k;
                    self.values[dst..dst + k].copy_from_slice(&e.values[off..off + k]);
                }
            } else {
                self.feature[first_node + pos] = e.feature[node];
                self.threshold[first_node + pos] = e.threshold[node];
                stack.push((e.left[node] as usize, 2 * pos + 1, level + 1));
                stack.push((e.right[node] as usize, 2 * pos + 2, level + 1));
            }
        }
        self.trees.push(TreeRef {
            first_node,
            first_value,
            depth,
            perfect: true,
        });
    }

    fn push_linked(&mut self, e: &TreeEnsemble, root: usize, depth: usize) {
        let k = e.n_outputs;
        let first_node = self.feature.len();
        // Depth-first, left first: a parent's left child is the next node, so the likelier
        // half of each path is already in the cache line being read.
        let mut order = Vec::new();
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            order.push(node);
            if e.left[node] != LEAF {
                stack.push(e.right[node] as usize);
                stack.push(e.left[node] as usize);
            }
        }
        let mut new_index = std::collections::HashMap::with_capacity(order.len());
        for (i, &node) in order.iter().enumerate() {
            new_index.insert(node, (first_node + i) as u32);
        }
        for (i, &node) in order.iter().enumerate() {
            let me = (first_node + i) as u32;
            if e.left[node] == LEAF {
                let off = e.value_offset[node] as usize;
                self.feature.push(0);
                self.threshold.push(0.0);
                self.children.push([me, me]);
                self.leaf_value.push(self.values.len() as u32);
                self.values.extend_from_slice(&e.values[off..off + k]);
            } else {
                self.feature.push(e.feature[node]);
                self.threshold.push(e.threshold[node]);
                let child = |c: u32| new_index.get(&(c as usize)).copied().unwrap_or(me);
                self.children.push([child(e.left[node]), child(e.right[node])]);
                self.leaf_value.push(0);
            }
        }
        self.trees.push(TreeRef {
            first_node,
            first_value: 0,
            depth,
            perfect: false,
        });
    }

    /// Adds the sum of the trees' leaf values for each row of `x` to `out` (`x.n_rows() ×
    /// n_outputs`, row-major) and scales it by `1 / n_trees`; `out` must hold zeros on entry.
    /// The caller checked that `x` has `n_features` columns and `out` the right length.
    pub(crate) fn predict_into<X: Rows>(&self, x: &X, out: &mut [f64]) {
        match self.n_outputs {
            1 => self.predict_k::<X, 1>(x, out),
            2 => self.predict_k::<X, 2>(x, out),
            _ => self.predict_k::<X, 0>(x, out),
        }
        out.iter_mut().for_each(|o| *o *= self.scale);
    }

    /// `K` is the number of outputs known at compile time (0: `self.n_outputs` at run time).
    #[inline(always)]
    fn predict_k<X: Rows, const K: usize>(&self, x: &X, out: &mut [f64]) {
        let n = x.n_rows();
        let full = n - n % LANES;
        // Blocks of LANES rows go through one tree after another, so each tree is read from
        // L1 for a whole block... and per row, leaf values are added in tree order.
        for tree in &self.trees {
            for r0 in (0..full).step_by(LANES) {
                let leaves = self.walk_rows(tree, x, r0);
                for (j, &leaf) in leaves.iter().enumerate() {
                    self.add_leaf::<K>(tree, leaf, &mut out[(r0 + j) * self.n_outputs..]);
                }
            }
        }
        // The remaining rows (all of them for a batch under LANES rows) go through LANES trees
        // at a time; leaf values are still added in tree order.
        for r in full..n {
            let row_out = &mut out[r * self.n_outputs..(r + 1) * self.n_outputs];
            for group in self.trees.chunks(LANES) {
                let leaves = self.walk_trees(group, x, r);
                for (tree, &leaf) in group.iter().zip(&leaves) {
                    self.add_leaf::<K>(tree, leaf, row_out);
                }
            }
        }
    }

    #[inline(always)]
    fn add_leaf<const K: usize>(&self, tree: &TreeRef, leaf: usize, out: &mut [f64]) {
        let k = if K == 0 { self.n_outputs } else { K };
        let off = if tree.perfect {
            tree.first_value + leaf * k
        } else {
            self.leaf_value[leaf] as usize
        };
        for (o, v) in out[..k].iter_mut().zip(&self.values[off..off + k]) {
            *o += v;
        }
    }

    /// The leaf (perfect trees: bottom slot index; linked trees: node index) that each of the
    /// rows `r0..r0 + LANES` reaches in `tree`.
    #[inline(always)]
    fn walk_rows<X: Rows>(&self, tree: &TreeRef, x: &X, r0: usize) -> [usize; LANES] {
        if tree.perfect {
            match tree.depth {
                1 => self.walk_perfect_rows::<X, 2>(tree, x, r0),
                2 => self.walk_perfect_rows::<X, 4>(tree, x, r0),
                3 => self.walk_perfect_rows::<X, 8>(tree, x, r0),
                4 => self.walk_perfect_rows::<X, 16>(tree, x, r0),
                5 => self.walk_perfect_rows::<X, 32>(tree, x, r0),
                6 => self.walk_perfect_rows::<X, 64>(tree, x, r0),
                7 => self.walk_perfect_rows::<X, 128>(tree, x, r0),
                8 => self.walk_perfect_rows::<X, 256>(tree, x, r0),
                9 => self.walk_perfect_rows::<X, 512>(tree, x, r0),
                10 => self.walk_perfect_rows::<X, 1024>(tree, x, r0),
                11 => self.walk_perfect_rows::<X, 2048>(tree, x, r0),
                12 => self.walk_perfect_rows::<X, 4096>(tree, x, r0),
                _ => [0; LANES],
            }
        } else {
            let mut node = [tree.first_node; LANES];
            for _ in 0..tree.depth {
                for (j, i) in node.iter_mut().enumerate() {
                    let v = x.get(r0 + j, self.feature[*i] as usize);
                    *i = self.children[*i][goes_right(v, self.threshold[*i])] as usize;
                }
            }
            node
        }
    }

    /// The tree's node arrays as fixed-size arrays of `SLOTS` (= 2^depth) entries.
    #[inline(always)]
    fn perfect_arrays<const SLOTS: usize>(&self, tree: &TreeRef) -> (&[u32; SLOTS], &[f64; SLOTS]) {
        let range = tree.first_node..tree.first_node + SLOTS;
        match (
            <&[u32; SLOTS]>::try_from(&self.feature[range.clone()]),
            <&[f64; SLOTS]>::try_from(&self.threshold[range]),
        ) {
            (Ok(f), Ok(t)) => (f, t),
            // Unreachable: the slices are SLOTS long.
            _ => (&[0; SLOTS], &[0.0; SLOTS]),
        }
    }

    /// [`FlatForest::walk_rows`] for a perfect tree of depth `log2(SLOTS)`: indexing a
    /// fixed-size array with `p & (SLOTS - 1)` lets the compiler drop the bounds checks, and
    /// the known depth unrolls the walk.
    #[inline(always)]
    fn walk_perfect_rows<X: Rows, const SLOTS: usize>(
        &self,
        tree: &TreeRef,
        x: &X,
        r0: usize,
    ) -> [usize; LANES] {
        let (feature, threshold) = self.perfect_arrays::<SLOTS>(tree);
        let mut pos = [0usize; LANES];
        for _ in 0..SLOTS.trailing_zeros() {
            for (j, p) in pos.iter_mut().enumerate() {
                // `p` is a split node here (p < SLOTS - 1): the mask changes nothing.
                let i = *p & (SLOTS - 1);
                let v = x.get(r0 + j, feature[i] as usize);
                *p = 2 * *p + 1 + goes_right(v, threshold[i]);
            }
        }
        pos.map(|p| p - (SLOTS - 1))
    }

    /// [`FlatForest::walk_trees`] for a group of LANES perfect trees of depth `log2(SLOTS)`.
    #[inline(always)]
    fn walk_perfect_trees<X: Rows, const SLOTS: usize>(
        &self,
        group: &[TreeRef],
        x: &X,
        r: usize,
    ) -> [usize; LANES] {
        let arrays: [(&[u32; SLOTS], &[f64; SLOTS]); LANES] =
            std::array::from_fn(|j| self.perfect_arrays::<SLOTS>(&group[j]));
        let mut pos = [0usize; LANES];
        for _ in 0..SLOTS.trailing_zeros() {
            for (p, (feature, threshold)) in pos.iter_mut().zip(&arrays) {
                let i = *p & (SLOTS - 1);
                let v = x.get(r, feature[i] as usize);
                *p = 2 * *p + 1 + goes_right(v, threshold[i]);
            }
        }
        pos.map(|p| p - (SLOTS - 1))
    }

    /// The leaf that row `r` reaches in each tree of `group` (at most LANES trees).
    #[inline(always)]
    fn walk_trees<X: Rows>(&self, group: &[TreeRef], x: &X, r: usize) -> [usize; LANES] {
        // The common case (a full group of perfect trees of one depth, as a forest grown to a
        // fixed max_depth on enough rows has) gets the unrolled walk.
        let depth = group[0].depth;
        if group.len() == LANES && group.iter().all(|t| t.perfect && t.depth == depth) {
            match depth {
                6 => return self.walk_perfect_trees::<X, 64>(group, x, r),
                7 => return self.walk_perfect_trees::<X, 128>(group, x, r),
                8 => return self.walk_perfect_trees::<X, 256>(group, x, r),
                9 => return self.walk_perfect_trees::<X, 512>(group, x, r),
                10 => return self.walk_perfect_trees::<X, 1024>(group, x, r),
                _ => {}
            }
        }
        let mut pos = [0usize; LANES];
        let steps = group.iter().map(|t| t.depth).max().unwrap_or(0);
        for step in 0..steps {
            for (t, p) in group.iter().zip(pos.iter_mut()) {
                if t.perfect {
                    if step < t.depth {
                        let i = t.first_node + *p;
                        let v = x.get(r, self.feature[i] as usize);
                        *p = 2 * *p + 1 + goes_right(v, self.threshold[i]);
                    }
                } else {
                    let i = if step == 0 { t.first_node } else { *p };
                    let v = x.get(r, self.feature[i] as usize);
                    *p = self.children[i][goes_right(v, self.threshold[i])] as usize;
                }
            }
        }
        for (t, p) in group.iter().zip(pos.iter_mut()) {
            if t.perfect {
                *p -= (1usize << t.depth) - 1;
            } else if t.depth == 0 {
                *p = t.first_node;
            }
        }
        pos
    }
}

/// 1 when a row with value `v` goes right at a split on `threshold`, else 0. NaN goes right,
/// as in [`TreeEnsemble`]: `!(v <= t)` is true for NaN where `v > t` is not.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn goes_right(v: f64, threshold: f64) -> usize {
    usize::from(!(v <= threshold))
}

/// Splits on the longest path from `node` down.
fn subtree_depth(e: &TreeEnsemble, node: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(node, 0usize)];
    while let Some((i, d)) = stack.pop() {
        if e.left[i] == LEAF {
            deepest = deepest.max(d);
        } else {
            stack.push((e.left[i] as usize, d + 1));
            stack.push((e.right[i] as usize, d + 1));
        }
    }
    deepest
}
