//! Tree ensembles compiled for batch prediction.
//!
//! [`FlatForest`] is built from a fitted [`TreeEnsemble`] (at fit or load time; the stored
//! artifact does not change) and predicts exactly what it predicts: the same comparisons on the
//! same `f64` thresholds, and per row the same sum of leaf values in tree order, scaled by the
//! same `1 / n_trees`. Only the memory layout and the order in which (row, tree) pairs are
//! visited differ, and neither can change a bit of the result.
//!
//! # Layout
//! Nodes are stored as two parallel arrays, thresholds (`f64`) and feature offsets (`u32`, the
//! feature's index times [`BLOCK_ROWS`], where its values start in a feature-major block), so
//! that a node's two fields are found by scaling its index, with no multiplication. Each tree
//! is stored either
//! - **perfect**: padded to a complete binary tree of its depth `D` (a leaf above the bottom is
//!   copied down, so every path has exactly `D` splits), nodes in heap order from 1, so the
//!   children of node `i` are `2i` and `2i + 1`: a step is `i = 2i + went_right`, and no child
//!   index is stored or loaded; or
//! - **linked** (trees deeper than [`MAX_PERFECT_DEPTH`], where padding would blow up): nodes in
//!   depth-first order with the left child next to its parent, explicit child indices, and
//!   leaves that point to themselves, so a walk of the tree's depth in steps needs no
//!   "is this a leaf" branch.
//!
//! # Traversal
//! The input is a feature-major block of at most [`BLOCK_ROWS`] rows (feature `f` of row `r` at
//! `f * BLOCK_ROWS + r`): rows of a design matrix are transposed into one first. Walking one
//! tree for one row is a chain of dependent loads (node → feature value → next node). A chain
//! keeps the core waiting on each load, so the kernels walk independent chains at once:
//! [`LANES`] consecutive rows through the same tree for batches (the tree stays in L1 while the
//! block goes through it, and the rows' values for a feature are adjacent, so a lane's read is
//! the node's offset plus a constant), or one row through [`TREE_LANES`] trees for single rows
//! and a block's last rows. Every walk takes a fixed number of steps, so no branch depends on
//! the data. The block is bounds-checked once per call (the highest offset any split reads);
//! the walks then read it unchecked.
//!
//! # `f32` inputs
//! Where every input is an `f32` value (an ONNX graph's float input tensor), a forest compiled
//! with [`FlatForest::with_f32_inputs`] also keeps, per node, the largest `f32` not above its
//! threshold, which splits every `f32` value as the `f64` threshold does, and walks blocks of
//! `f32` values: the same leaves and the same `f64` leaf values added in the same order, so the
//! same bits, with half the bytes per value and node, eight rows per AVX2 compare (four levels
//! decided with vector compares instead of three), and a written-out step for the deeper levels.

use super::simd::Level;
use super::{BLOCK_ROWS, FeatureMajor};
use crate::error::{Error, Result};
use crate::estimator::tree::{LEAF, TreeEnsemble};

/// Rows walked through one tree at once in a batch. A step is a chain of two dependent L1
/// loads and a compare (about 15 cycles of latency) but only about 6 instructions, so many
/// chains in flight keep the core busy (see the benchmark notes for the figures per width).
pub const LANES: usize = 16;

/// Trees walked at once for a single row (and a block's last rows that do not fill
/// [`LANES`]). Consecutive trees are grouped by this many, and the perfect trees of a group
/// are padded to the group's deepest, so that a group walks in lockstep.
pub const TREE_LANES: usize = 8;

/// Levels at the top of a perfect tree that the AVX2 batch walk decides with vector compares
/// (the 7 nodes of levels 0 to 2) before walking the rest row by row.
pub const SIMD_LEVELS: usize = 3;

/// [`SIMD_LEVELS`] for blocks of `f32` values, eight rows to a vector compare: the 15 nodes of
/// levels 0 to 3.
pub const SIMD_LEVELS_F32: usize = 4;

/// Trees at most this deep are padded to perfect trees; a depth-12 tree pads to 4096 node
/// slots (48 KiB) plus its leaf values.
pub const MAX_PERFECT_DEPTH: usize = 12;

/// One tree's place in the flat arrays.
#[derive(Clone, Debug, PartialEq)]
struct TreeRef {
    /// First node slot in `thresholds` / `offsets` (and `children` / `leaf_value` for linked
    /// trees). A perfect tree's slot 0 is unused: its root is slot 1.
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
    /// Per group of [`TREE_LANES`] consecutive trees (the last one may hold fewer): the common
    /// depth when every tree in it is perfect (padded to that depth and stored one after the
    /// other), for the lockstep walk.
    group_depth: Vec<Option<usize>>,
    /// The largest feature offset any node reads (0 for a forest of leaves): the kernels check
    /// once per call that it is inside the block for the block's last row.
    max_offset: usize,
    /// `x <= threshold` goes left, anything else (NaN too) right. Padding and leaf slots: 0.
    thresholds: Vec<f64>,
    /// [`FlatForest::with_f32_inputs`]: per node, the largest `f32` not above its threshold,
    /// for the walks over blocks of `f32` values.
    thresholds_f32: Option<Vec<f32>>,
    /// Per node, `feature * BLOCK_ROWS` (padding and leaf slots: 0).
    offsets: Vec<u32>,
    /// Linked nodes only: `[left, right]` per node, global indices; a leaf points to itself.
    children: Vec<[u32; 2]>,
    /// Linked nodes only: offset of a leaf's values in `values`.
    leaf_value: Vec<u32>,
    /// Leaf values, `n_outputs` per leaf.
    values: Vec<f64>,
    /// `1 / n_trees`, as [`TreeEnsemble::predict_row_into`] computes it.
    scale: f64,
}

/// Calls `$body` with `$slots` bound to the const `1 << $depth` for depths 0 to
/// [`MAX_PERFECT_DEPTH`]; `$other` otherwise.
macro_rules! with_slots {
    ($depth:expr, $slots:ident => $body:expr, _ => $other:expr) => {
        match $depth {
            0 => {
                const $slots: usize = 1 << 0;
                $body
            }
            1 => {
                const $slots: usize = 1 << 1;
                $body
            }
            2 => {
                const $slots: usize = 1 << 2;
                $body
            }
            3 => {
                const $slots: usize = 1 << 3;
                $body
            }
            4 => {
                const $slots: usize = 1 << 4;
                $body
            }
            5 => {
                const $slots: usize = 1 << 5;
                $body
            }
            6 => {
                const $slots: usize = 1 << 6;
                $body
            }
            7 => {
                const $slots: usize = 1 << 7;
                $body
            }
            8 => {
                const $slots: usize = 1 << 8;
                $body
            }
            9 => {
                const $slots: usize = 1 << 9;
                $body
            }
            10 => {
                const $slots: usize = 1 << 10;
                $body
            }
            11 => {
                const $slots: usize = 1 << 11;
                $body
            }
            12 => {
                const $slots: usize = 1 << 12;
                $body
            }
            _ => $other,
        }
    };
}

/// A feature's offset in a feature-major block.
fn feature_offset(feature: u32) -> u32 {
    // Feature indices are u32 and models have far fewer than 2^32 / BLOCK_ROWS features; a
    // forest reading feature 2^25 would need a frame of 2^25 columns.
    feature.saturating_mul(BLOCK_ROWS as u32)
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
            group_depth: Vec::new(),
            max_offset: 0,
            thresholds: Vec::new(),
            thresholds_f32: None,
            offsets: Vec::new(),
            children: Vec::new(),
            leaf_value: Vec::new(),
            values: Vec::new(),
            scale: 1.0 / ensemble.n_trees() as f64,
        };
        let depths: Vec<usize> = ensemble
            .roots
            .iter()
            .map(|&root| subtree_depth(ensemble, root as usize))
            .collect();
        for (roots, depths) in ensemble.roots.chunks(TREE_LANES).zip(depths.chunks(TREE_LANES)) {
            let deepest = depths.iter().copied().max().unwrap_or(0);
            // A group of trees that all fit the perfect layout is padded to one depth and
            // walked in lockstep; padding only repeats leaves, so no prediction changes.
            let lockstep = deepest <= max_perfect_depth;
            flat.group_depth.push(lockstep.then_some(deepest));
            for (&root, &depth) in roots.iter().zip(depths) {
                if lockstep {
                    flat.push_perfect(ensemble, root as usize, deepest);
                } else if depth <= max_perfect_depth {
                    flat.push_perfect(ensemble, root as usize, depth);
                } else {
                    flat.push_linked(ensemble, root as usize, depth);
                }
            }
            if lockstep {
                // A last, shorter group gets empty slots for its missing trees, so that its
                // walk reads TREE_LANES trees' slots like any other; those lanes' leaves are
                // never used.
                flat.push_slots((TREE_LANES - roots.len()) << deepest);
            }
        }
        flat.max_offset = flat.offsets.iter().copied().max().unwrap_or(0) as usize;
        flat
    }

    /// The same forest with its summed leaf values multiplied by `scale` instead of
    /// `1 / n_trees` (1 for ensembles that add their trees, as gradient boosting and ONNX's
    /// `SUM` aggregate do).
    pub fn with_scale(mut self, scale: f64) -> FlatForest {
        self.scale = scale;
        self
    }

    /// The same forest, also compiled for inputs that are `f32` values (an ONNX graph's float
    /// input tensor, say): each threshold `t` gets its `f32` counterpart, the largest `f32` not
    /// above `t`, so that for every `f32` value `x` (and NaN), `x <= t` exactly when
    /// `x <= floor_f32(t)`. Walks over `f32` blocks (`FlatForest::predict_f32_into`) then
    /// reach the same leaves as the `f64` walks over the same values, and add the same `f64`
    /// leaf values in the same order: the predictions are bit-identical, from half the memory
    /// per value and node and twice the rows per AVX2 compare.
    pub fn with_f32_inputs(mut self) -> FlatForest {
        self.thresholds_f32 = Some(self.thresholds.iter().map(|&t| floor_f32(t)).collect());
        self
    }

    /// Whether [`FlatForest::with_f32_inputs`] compiled the forest for `f32` inputs.
    pub fn has_f32_inputs(&self) -> bool {
        self.thresholds_f32.is_some()
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

    /// Appends `slots` empty node slots, returning the first.
    fn push_slots(&mut self, slots: usize) -> usize {
        let first = self.thresholds.len();
        self.thresholds.resize(first + slots, 0.0);
        self.offsets.resize(first + slots, 0);
        // `children` and `leaf_value` are read for linked nodes only but share the node
        // numbering, so they grow with the other arrays.
        self.children.resize(first + slots, [0, 0]);
        self.leaf_value.resize(first + slots, 0);
        first
    }

    /// Appends the tree under `root` padded to a complete tree of `depth` (at least its own).
    fn push_perfect(&mut self, e: &TreeEnsemble, root: usize, depth: usize) {
        let k = e.n_outputs;
        // Heap positions 1..2^depth hold the splits; slot 0 is unused, which also makes the
        // tree's slice a power of two long.
        let first_node = self.push_slots(1usize << depth);
        let first_value = self.values.len();
        self.values.resize(first_value + (k << depth), 0.0);
        // (original node, heap position, level)
        let mut stack = vec![(root, 1usize, 0usize)];
        while let Some((node, pos, level)) = stack.pop() {
            if e.left[node] == LEAF {
                // Copy the leaf into every bottom slot under `pos`. Padding splits above them
                // keep feature 0 and threshold 0: both sides lead to the same values.
                let below = depth - level;
                let first_leaf = (pos << below) - (1usize << depth);
                let off = e.value_offset[node] as usize;
                for leaf in first_leaf..first_leaf + (1usize << below) {
                    let dst = first_value + leaf * k;
                    self.values[dst..dst + k].copy_from_slice(&e.values[off..off + k]);
                }
            } else {
                self.thresholds[first_node + pos] = e.threshold[node];
                self.offsets[first_node + pos] = feature_offset(e.feature[node]);
                stack.push((e.left[node] as usize, 2 * pos, level + 1));
                stack.push((e.right[node] as usize, 2 * pos + 1, level + 1));
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
        let first_node = self.push_slots(order.len());
        let mut new_index = std::collections::HashMap::with_capacity(order.len());
        for (i, &node) in order.iter().enumerate() {
            new_index.insert(node, (first_node + i) as u32);
        }
        for (i, &node) in order.iter().enumerate() {
            let slot = first_node + i;
            let me = slot as u32;
            if e.left[node] == LEAF {
                let off = e.value_offset[node] as usize;
                self.children[slot] = [me, me];
                self.leaf_value[slot] = self.values.len() as u32;
                self.values.extend_from_slice(&e.values[off..off + k]);
            } else {
                self.thresholds[slot] = e.threshold[node];
                self.offsets[slot] = feature_offset(e.feature[node]);
                let child = |c: u32| new_index.get(&(c as usize)).copied().unwrap_or(me);
                self.children[slot] = [child(e.left[node]), child(e.right[node])];
            }
        }
        self.trees.push(TreeRef {
            first_node,
            first_value: 0,
            depth,
            perfect: false,
        });
    }

    /// Adds the sum of the trees' leaf values for each row of the block `x` to `out`
    /// (`x.n × n_outputs`, row-major) and scales it by the forest's scale; `out` must hold
    /// zeros on entry. The caller checked that `x` has `n_features` features.
    /// `level` says whether the AVX2 walk of [`FlatForest::perfect_rows_avx2`] may run; both walks
    /// reach the same leaves, so the result does not depend on it.
    pub(crate) fn predict_into(&self, level: Level, x: &FeatureMajor<'_>, out: &mut [f64]) {
        self.predict_block(level, &self.thresholds, x.data, x.n, out);
    }

    /// [`FlatForest::predict_into`] for a block of `f32` values, compared with the `f32`
    /// thresholds of [`FlatForest::with_f32_inputs`] (an internal error without them): the
    /// same leaves, so the same bits as `predict_into` on the same values widened to `f64`.
    /// The AVX2 walk is [`FlatForest::perfect_rows_avx2_f32`].
    #[cfg_attr(not(feature = "onnx-native"), allow(dead_code))]
    pub(crate) fn predict_f32_into(
        &self,
        level: Level,
        x: &FeatureMajor<'_, f32>,
        out: &mut [f64],
    ) -> Result<()> {
        let thresholds = self
            .thresholds_f32
            .as_deref()
            .ok_or_else(|| Error::Internal("an f32 block for a forest without f32 thresholds".into()))?;
        self.predict_block(level, thresholds, x.data, x.n, out);
        Ok(())
    }

    /// [`FlatForest::predict_into`] with the thresholds `thr` (one per node) of the block's type.
    fn predict_block<T: Split>(&self, level: Level, thr: &[T], x: &[T], n: usize, out: &mut [f64]) {
        if n == 0 {
            return;
        }
        // The one bounds check the walks rely on: every value a node can ask for, of every
        // row, lies inside the block (the largest index is the last row's at `max_offset`),
        // and rows stay inside their feature's run of BLOCK_ROWS values.
        assert!(
            n <= BLOCK_ROWS
                && self.max_offset + n <= x.len()
                && out.len() >= n * self.n_outputs
                && thr.len() == self.thresholds.len(),
            "forest block of {} values for {n} rows of {} features, output of {}",
            x.len(),
            self.n_features,
            out.len()
        );
        match self.n_outputs {
            1 => self.predict_k::<T, 1>(level, thr, x, n, out),
            2 => self.predict_k::<T, 2>(level, thr, x, n, out),
            _ => self.predict_k::<T, 0>(level, thr, x, n, out),
        }
        out[..n * self.n_outputs]
            .iter_mut()
            .for_each(|o| *o *= self.scale);
    }

    /// `K` is the number of outputs known at compile time (0: `self.n_outputs` at run time).
    /// Requires the check in [`FlatForest::predict_block`].
    #[inline(always)]
    fn predict_k<T: Split, const K: usize>(
        &self,
        level: Level,
        thr: &[T],
        x: &[T],
        n: usize,
        out: &mut [f64],
    ) {
        let full = n - n % LANES;
        if full > 0 {
            // Blocks of LANES rows go through one tree after another, so each tree is read
            // from L1 for the whole block... and per row, leaf values are added in tree order.
            for tree in &self.trees {
                #[cfg(target_arch = "x86_64")]
                if tree.perfect && tree.depth >= T::SIMD_LEVELS && level.avx2() {
                    // SAFETY: a Level allowing AVX2 is only made after the CPU reported AVX2;
                    // the tree is perfect and at least T::SIMD_LEVELS deep, and predict_block
                    // made the check the walk relies on.
                    unsafe {
                        with_slots!(tree.depth, SLOTS => T::perfect_rows_avx2::<K, SLOTS>(self, thr, tree, x, full, out),
                            _ => unreachable!("perfect trees are at most MAX_PERFECT_DEPTH deep"))
                    };
                    continue;
                }
                let _ = level;
                if tree.perfect {
                    with_slots!(tree.depth, SLOTS => self.perfect_rows::<T, K, SLOTS>(thr, tree, x, full, out),
                        _ => unreachable!("perfect trees are at most MAX_PERFECT_DEPTH deep"))
                } else {
                    self.linked_rows::<T, K>(thr, tree, x, full, out);
                }
            }
        }
        // The remaining rows (all of them for a block under LANES rows) go through
        // TREE_LANES trees at a time; leaf values are still added in tree order.
        for r in full..n {
            let at = r * self.n_outputs;
            if K > 0 {
                // The row's sums stay in registers while the trees are walked (the same
                // additions in the same order as into `out`, whose row holds zeros).
                let mut sum = [0.0f64; K];
                self.row_leaves(thr, x, r, |tree, leaf| {
                    // SAFETY: `leaf` is a leaf the walk of `tree` returned.
                    let v = unsafe { self.leaf_values::<K>(tree, leaf) };
                    for c in 0..K {
                        sum[c] += v[c];
                    }
                });
                for (c, s) in sum.iter().enumerate() {
                    out[at + c] += s;
                }
            } else {
                // SAFETY: r < n, and `out` holds n rows (checked in predict_block).
                self.row_leaves(thr, x, r, |tree, leaf| unsafe {
                    self.add_leaf::<K>(tree, leaf, out, at)
                });
            }
        }
    }

    /// Calls `f` with each tree and the leaf row `r` of the block `x` reaches in it, in tree
    /// order. Requires the check in [`FlatForest::predict_block`] and `r < n`.
    #[inline(always)]
    fn row_leaves<T: Split>(&self, thr: &[T], x: &[T], r: usize, mut f: impl FnMut(&TreeRef, usize)) {
        for (group, depth) in self.trees.chunks(TREE_LANES).zip(&self.group_depth) {
            let leaves = self.walk_group(thr, group, *depth, x, r);
            for (tree, &leaf) in group.iter().zip(&leaves) {
                f(tree, leaf);
            }
        }
    }

    /// The leaves row `r` of the block `x` reaches in the trees of `group` (lockstep when the
    /// group has a common perfect depth). Requires the check in [`FlatForest::predict_block`].
    #[inline(always)]
    fn walk_group<T: Split>(
        &self,
        thr: &[T],
        group: &[TreeRef],
        depth: Option<usize>,
        x: &[T],
        r: usize,
    ) -> [usize; TREE_LANES] {
        match depth {
            Some(d) => with_slots!(d, SLOTS => self.walk_perfect_trees::<T, SLOTS>(thr, group, x, r),
                _ => self.walk_trees(thr, group, x, r)),
            None => self.walk_trees(thr, group, x, r),
        }
    }

    /// The `K` values of `leaf` (as in [`FlatForest::add_leaf`]).
    ///
    /// # Safety
    /// `leaf` is a leaf a walk of `tree` returned, and `K == self.n_outputs`.
    #[inline(always)]
    unsafe fn leaf_values<const K: usize>(&self, tree: &TreeRef, leaf: usize) -> [f64; K] {
        let off = if tree.perfect {
            tree.first_value + leaf * K
        } else {
            self.leaf_value[leaf] as usize
        };
        // SAFETY: as in add_leaf.
        std::array::from_fn(|c| unsafe { *self.values.get_unchecked(off + c) })
    }

    /// Adds the values of `leaf` (perfect trees: bottom slot index; linked trees: node index)
    /// to `out[at..at + n_outputs]`.
    ///
    /// # Safety
    /// `at + n_outputs <= out.len()`, and `leaf` is a leaf a walk of `tree` returned.
    #[inline(always)]
    unsafe fn add_leaf<const K: usize>(&self, tree: &TreeRef, leaf: usize, out: &mut [f64], at: usize) {
        let k = if K == 0 { self.n_outputs } else { K };
        let off = if tree.perfect {
            tree.first_value + leaf * k
        } else {
            self.leaf_value[leaf] as usize
        };
        for c in 0..k {
            // SAFETY: `at + k <= out.len()` (the caller's promise); a perfect tree's leaves
            // are its `2^depth` bottom slots with `k` values each from `first_value`, and a
            // linked leaf's `leaf_value` points at `k` values, all stored by the constructor.
            unsafe { *out.get_unchecked_mut(at + c) += *self.values.get_unchecked(off + c) };
        }
    }

    /// The outputs per leaf (`K`, or `n_outputs` when `K` is 0), and the thresholds (from
    /// `thr`, one per node), feature offsets and leaf values of the perfect tree `tree` with
    /// `SLOTS` node slots.
    #[inline(always)]
    fn perfect_tree<'a, T, const K: usize, const SLOTS: usize>(
        &'a self,
        thr: &'a [T],
        tree: &TreeRef,
    ) -> (usize, &'a [T], &'a [u32], &'a [f64]) {
        let k = if K == 0 { self.n_outputs } else { K };
        (
            k,
            &thr[tree.first_node..tree.first_node + SLOTS],
            &self.offsets[tree.first_node..tree.first_node + SLOTS],
            &self.values[tree.first_value..tree.first_value + SLOTS * k],
        )
    }

    /// Walks the rows `0..full` (a multiple of LANES) of the block `x` through the perfect
    /// tree `tree` of depth `log2(SLOTS)`, LANES rows at a time, adding each row's leaf values
    /// to its row of `out`. Requires the check in [`FlatForest::predict_block`].
    #[inline(always)]
    fn perfect_rows<T: Split, const K: usize, const SLOTS: usize>(
        &self,
        thr: &[T],
        tree: &TreeRef,
        x: &[T],
        full: usize,
        out: &mut [f64],
    ) {
        let (k, thr, off, values) = self.perfect_tree::<T, K, SLOTS>(thr, tree);
        for r0 in (0..full).step_by(LANES) {
            let mut pos = [1usize; LANES];
            walk_rows(thr, off, &x[r0..], &mut pos, SLOTS.trailing_zeros() as usize);
            add_row_leaves::<SLOTS, LANES>(values, k, &pos, out, r0);
        }
    }

    /// [`FlatForest::perfect_rows`] with the first [`SIMD_LEVELS`] levels decided four rows at
    /// a time in AVX2 registers. Those levels hold few nodes (1 + 2 + 4), so instead of a
    /// chain of dependent loads per row, every one of those nodes is compared for four rows at
    /// once (the rows' values for a feature are adjacent in the block, so one load reads them)
    /// and each row's path is selected from the comparisons with blends. The same `x <= t`
    /// comparisons decide (`_CMP_NLE_UQ` is `!(x <= t)`, true for NaN, as [`goes_right`]), so
    /// every row reaches the same leaf; the deeper levels are walked as in `perfect_rows`.
    ///
    /// # Safety
    /// The CPU supports AVX2, the tree is perfect with `SLOTS = 2^depth` and depth ≥
    /// [`SIMD_LEVELS`], and the check of [`FlatForest::predict_block`] was made.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn perfect_rows_avx2<const K: usize, const SLOTS: usize>(
        &self,
        thr: &[f64],
        tree: &TreeRef,
        x: &[f64],
        full: usize,
        out: &mut [f64],
    ) {
        use std::arch::x86_64::*;
        let (k, thr, off, values) = self.perfect_tree::<f64, K, SLOTS>(thr, tree);
        for r0 in (0..full).step_by(LANES) {
            let xs = &x[r0..];
            let mut pos = [0usize; LANES];
            for (g, quad) in pos.chunks_exact_mut(4).enumerate() {
                // Whether each of the four rows r0 + 4g.. goes right at node `i` (all ones) or
                // left (zero).
                let right = |i: usize| -> __m256d {
                    // SAFETY: i < 8 <= SLOTS; offsets are at most max_offset and the rows
                    // r0 + 4g + 0..4 < full <= n, and predict_block checked that max_offset + n
                    // <= x.len(), so the four values are inside the block.
                    unsafe {
                        let o = *off.get_unchecked(i) as usize + 4 * g;
                        let v = _mm256_loadu_pd(xs.as_ptr().add(o));
                        _mm256_cmp_pd::<_CMP_NLE_UQ>(v, _mm256_set1_pd(*thr.get_unchecked(i)))
                    }
                };
                let r0m = right(1);
                let r1m = _mm256_blendv_pd(right(2), right(3), r0m);
                let r2m = _mm256_blendv_pd(
                    _mm256_blendv_pd(right(4), right(5), r1m),
                    _mm256_blendv_pd(right(6), right(7), r1m),
                    r0m,
                );
                // Heap position after three levels: 8 + 4 b0 + 2 b1 + b2, where a mask of all
                // ones is -1 as an integer.
                let (b0, b1, b2) = (
                    _mm256_castpd_si256(r0m),
                    _mm256_castpd_si256(r1m),
                    _mm256_castpd_si256(r2m),
                );
                let p = _mm256_sub_epi64(
                    _mm256_sub_epi64(
                        _mm256_sub_epi64(_mm256_set1_epi64x(8), _mm256_slli_epi64::<2>(b0)),
                        _mm256_slli_epi64::<1>(b1),
                    ),
                    b2,
                );
                // SAFETY: `quad` is 4 usize (64-bit on x86_64), 32 bytes.
                unsafe { _mm256_storeu_si256(quad.as_mut_ptr().cast::<__m256i>(), p) };
            }
            walk_rows(
                thr,
                off,
                xs,
                &mut pos,
                SLOTS.trailing_zeros() as usize - SIMD_LEVELS,
            );
            add_row_leaves::<SLOTS, LANES>(values, k, &pos, out, r0);
        }
    }

    /// [`FlatForest::perfect_rows_avx2`] for a block of `f32` values: a vector compare decides
    /// eight rows, so the first [`SIMD_LEVELS_F32`] levels (the 15 nodes of levels 0 to 3) are
    /// decided with vector compares and blends for the same cost per row as three levels of
    /// `f64`. `_CMP_NGE_UQ` with the threshold first is `!(t >= x)`, which is `!(x <= t)`: true
    /// for NaN, as [`goes_right`]. The deeper levels are walked as in `perfect_rows`.
    ///
    /// # Safety
    /// The CPU supports AVX2, the tree is perfect with `SLOTS = 2^depth` and depth ≥
    /// [`SIMD_LEVELS_F32`], and the check of [`FlatForest::predict_block`] was made.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn perfect_rows_avx2_f32<const K: usize, const SLOTS: usize>(
        &self,
        thr: &[f32],
        tree: &TreeRef,
        x: &[f32],
        full: usize,
        out: &mut [f64],
    ) {
        use std::arch::x86_64::*;
        let (k, thr, off, values) = self.perfect_tree::<f32, K, SLOTS>(thr, tree);
        for r0 in (0..full).step_by(LANES) {
            let xs = &x[r0..];
            let mut heap = [0u32; LANES];
            for (g, oct) in heap.chunks_exact_mut(8).enumerate() {
                // Whether each of the eight rows r0 + 8g.. goes right at node `i` (all ones)
                // or left (zero).
                let right = |i: usize| -> __m256 {
                    // SAFETY: i < 16 <= SLOTS; offsets are at most max_offset and the rows
                    // r0 + 8g + 0..8 < full <= n, and predict_block checked that max_offset + n
                    // <= x.len(), so the eight values are inside the block.
                    unsafe {
                        let o = *off.get_unchecked(i) as usize + 8 * g;
                        let v = _mm256_loadu_ps(xs.as_ptr().add(o));
                        _mm256_cmp_ps::<_CMP_NGE_UQ>(_mm256_set1_ps(*thr.get_unchecked(i)), v)
                    }
                };
                let b0 = right(1);
                let b1 = _mm256_blendv_ps(right(2), right(3), b0);
                let b2 = _mm256_blendv_ps(
                    _mm256_blendv_ps(right(4), right(5), b1),
                    _mm256_blendv_ps(right(6), right(7), b1),
                    b0,
                );
                let left3 = _mm256_blendv_ps(
                    _mm256_blendv_ps(right(8), right(9), b2),
                    _mm256_blendv_ps(right(10), right(11), b2),
                    b1,
                );
                let right3 = _mm256_blendv_ps(
                    _mm256_blendv_ps(right(12), right(13), b2),
                    _mm256_blendv_ps(right(14), right(15), b2),
                    b1,
                );
                let b3 = _mm256_blendv_ps(left3, right3, b0);
                // Heap position after four levels: 16 + 8 b0 + 4 b1 + 2 b2 + b3, where a mask
                // of all ones is -1 as an integer.
                let (b0, b1, b2, b3) = (
                    _mm256_castps_si256(b0),
                    _mm256_castps_si256(b1),
                    _mm256_castps_si256(b2),
                    _mm256_castps_si256(b3),
                );
                let p = _mm256_sub_epi32(
                    _mm256_sub_epi32(
                        _mm256_sub_epi32(
                            _mm256_sub_epi32(_mm256_set1_epi32(16), _mm256_slli_epi32::<3>(b0)),
                            _mm256_slli_epi32::<2>(b1),
                        ),
                        _mm256_slli_epi32::<1>(b2),
                    ),
                    b3,
                );
                // SAFETY: `oct` is 8 u32, 32 bytes.
                unsafe { _mm256_storeu_si256(oct.as_mut_ptr().cast::<__m256i>(), p) };
            }
            let mut pos = [0usize; LANES];
            for (p, &h) in pos.iter_mut().zip(&heap) {
                *p = h as usize;
            }
            // The levels left, two at a time (then one), each group of eight rows in turn so
            // that both groups' chains of loads are in flight.
            let levels = SLOTS.trailing_zeros() as usize - SIMD_LEVELS_F32;
            for step in (0..levels).step_by(2) {
                let two = step + 1 < levels;
                for (g, eight) in pos.chunks_exact_mut(8).enumerate() {
                    // SAFETY: `eight` holds heap positions below SLOTS for the levels left (as
                    // in walk_rows), and rows r0 + 8g + 0..8 < full <= n: the reads are those
                    // of walk_rows.
                    unsafe { step8_f32(thr.as_ptr(), off.as_ptr(), xs.as_ptr().add(8 * g), eight, two) };
                }
            }
            add_row_leaves::<SLOTS, LANES>(values, k, &pos, out, r0);
        }
    }

    /// [`FlatForest::perfect_rows`] for a linked tree.
    #[inline(never)]
    fn linked_rows<T: Split, const K: usize>(
        &self,
        thr: &[T],
        tree: &TreeRef,
        x: &[T],
        full: usize,
        out: &mut [f64],
    ) {
        for r0 in (0..full).step_by(LANES) {
            let xs = &x[r0..];
            let mut node = [tree.first_node; LANES];
            for _ in 0..tree.depth {
                for (j, i) in node.iter_mut().enumerate() {
                    let (t, o) = (thr[*i], self.offsets[*i] as usize);
                    // SAFETY: as in perfect_rows.
                    let v = unsafe { *xs.get_unchecked(o + j) };
                    *i = self.children[*i][goes_right(v, t)] as usize;
                }
            }
            for (j, &leaf) in node.iter().enumerate() {
                // SAFETY: r0 + j < n, and `out` holds n rows (checked in predict_block).
                unsafe { self.add_leaf::<K>(tree, leaf, out, (r0 + j) * self.n_outputs) };
            }
        }
    }

    /// The leaf that row `r` of the block `x` reaches in each tree of `group` (its first
    /// entries): perfect trees of depth `log2(SLOTS)`, stored one after the other and padded to
    /// TREE_LANES trees' slots, walked in lockstep.
    /// Requires the check in [`FlatForest::predict_block`] and `r < n`.
    #[inline(always)]
    fn walk_perfect_trees<T: Split, const SLOTS: usize>(
        &self,
        thr: &[T],
        group: &[TreeRef],
        x: &[T],
        r: usize,
    ) -> [usize; TREE_LANES] {
        let first = group.first().map_or(0, |t| t.first_node);
        let thr = &thr[first..first + TREE_LANES * SLOTS];
        let off = &self.offsets[first..first + TREE_LANES * SLOTS];
        let xs = &x[r..];
        let mut pos = [1usize; TREE_LANES];
        for _ in 0..SLOTS.trailing_zeros() {
            for (t, p) in pos.iter_mut().enumerate() {
                let i = t * SLOTS + *p;
                // SAFETY: `*p < SLOTS` during the walk (as in perfect_rows), so `i` lies in
                // tree t's slots of the group's TREE_LANES * SLOTS (a shorter group's missing
                // trees have empty slots).
                let (th, o) = unsafe { (*thr.get_unchecked(i), *off.get_unchecked(i) as usize) };
                // SAFETY: o <= max_offset and r < n (as in perfect_rows).
                let v = unsafe { *xs.get_unchecked(o) };
                *p = 2 * *p + goes_right(v, th);
            }
        }
        pos.map(|p| p - SLOTS)
    }

    /// The leaf that row `r` of the block `x` reaches in each tree of `group` (at most
    /// TREE_LANES trees of any layouts and depths).
    #[inline(never)]
    fn walk_trees<T: Split>(&self, thr: &[T], group: &[TreeRef], x: &[T], r: usize) -> [usize; TREE_LANES] {
        let mut pos = [0usize; TREE_LANES];
        let steps = group.iter().map(|t| t.depth).max().unwrap_or(0);
        let xs = &x[r..];
        let value = |i: usize| {
            // SAFETY: as in walk_perfect_trees.
            unsafe { *xs.get_unchecked(self.offsets[i] as usize) }
        };
        for (t, p) in group.iter().zip(pos.iter_mut()) {
            *p = if t.perfect { 1 } else { t.first_node };
        }
        for step in 0..steps {
            for (t, p) in group.iter().zip(pos.iter_mut()) {
                if t.perfect {
                    if step < t.depth {
                        let i = t.first_node + *p;
                        *p = 2 * *p + goes_right(value(i), thr[i]);
                    }
                } else {
                    let i = *p;
                    *p = self.children[i][goes_right(value(i), thr[i])] as usize;
                }
            }
        }
        for (t, p) in group.iter().zip(pos.iter_mut()) {
            if t.perfect {
                *p -= 1usize << t.depth;
            }
        }
        pos
    }
}

/// The types a forest compares in: `f64` (every forest) and `f32` (forests compiled with
/// [`FlatForest::with_f32_inputs`], over blocks of `f32` values).
trait Split: Copy + PartialOrd {
    /// Levels at the top of a perfect tree that the AVX2 batch walk decides with vector
    /// compares; shallower trees take the portable walk.
    const SIMD_LEVELS: usize;

    /// The AVX2 batch walk of a perfect tree for this type.
    ///
    /// # Safety
    /// As [`FlatForest::perfect_rows_avx2`], with depth ≥ `Self::SIMD_LEVELS`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn perfect_rows_avx2<const K: usize, const SLOTS: usize>(
        forest: &FlatForest,
        thr: &[Self],
        tree: &TreeRef,
        x: &[Self],
        full: usize,
        out: &mut [f64],
    );
}

impl Split for f64 {
    const SIMD_LEVELS: usize = SIMD_LEVELS;

    #[cfg(target_arch = "x86_64")]
    unsafe fn perfect_rows_avx2<const K: usize, const SLOTS: usize>(
        forest: &FlatForest,
        thr: &[f64],
        tree: &TreeRef,
        x: &[f64],
        full: usize,
        out: &mut [f64],
    ) {
        // SAFETY: the caller's promise.
        unsafe { forest.perfect_rows_avx2::<K, SLOTS>(thr, tree, x, full, out) }
    }
}

impl Split for f32 {
    const SIMD_LEVELS: usize = SIMD_LEVELS_F32;

    #[cfg(target_arch = "x86_64")]
    unsafe fn perfect_rows_avx2<const K: usize, const SLOTS: usize>(
        forest: &FlatForest,
        thr: &[f32],
        tree: &TreeRef,
        x: &[f32],
        full: usize,
        out: &mut [f64],
    ) {
        // SAFETY: the caller's promise.
        unsafe { forest.perfect_rows_avx2_f32::<K, SLOTS>(thr, tree, x, full, out) }
    }
}

/// The largest `f32` not above `t` (NaN for NaN): for every `f32` value `x`, `x <= t` exactly
/// when `x <= floor_f32(t)`, since no `f32` lies between them.
fn floor_f32(t: f64) -> f32 {
    // `as` rounds to nearest (to an infinity past the largest f32); one step down when that
    // went up.
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

/// Walks the LANES rows of `xs` (the block from a batch's row `r0` on) `levels` levels further
/// down a perfect tree (`thr`, `off`: its `SLOTS` node slots) from the heap positions `pos`.
/// Requires the check in [`FlatForest::predict_block`], `r0 + LANES <= n`, and positions that
/// stay below `SLOTS` for the levels walked.
#[inline(always)]
fn walk_rows<T: Split>(thr: &[T], off: &[u32], xs: &[T], pos: &mut [usize; LANES], levels: usize) {
    for _ in 0..levels {
        for (j, p) in pos.iter_mut().enumerate() {
            // SAFETY: after l < depth steps `p` lies in 2^l..2^(l+1), below SLOTS.
            let (t, o) = unsafe { (*thr.get_unchecked(*p), *off.get_unchecked(*p) as usize) };
            // SAFETY: o <= max_offset and r0 + j < n, and predict_block checked that
            // max_offset + n <= x.len().
            let v = unsafe { *xs.get_unchecked(o + j) };
            *p = 2 * *p + goes_right(v, t);
        }
    }
}

/// One level (two when `two`) of [`walk_rows`] for eight consecutive rows of a block of `f32`
/// values (the block from the first row on, `x`): per row, two loads (the node's feature
/// offset and threshold) and a compare with the row's value in memory whose carry (`t < v` or
/// unordered, that is `!(v <= t)`, true for NaN, as [`goes_right`]) goes into the next
/// position with one `adc` (`p = 2p + right`). Written out because the compiler, given the
/// same steps, spills the positions and half-vectorizes the compares, at twice the
/// instructions.
///
/// # Safety
/// `pos` holds eight positions in a perfect tree whose `thr` and `off` have a slot for each
/// position the levels walked reach, and for each node's offset `o` and row `j`, `x.add(o + j)`
/// is inside the block (the check of [`FlatForest::predict_block`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn step8_f32(thr: *const f32, off: *const u32, x: *const f32, pos: &mut [usize], two: bool) {
    let [p0, p1, p2, p3, p4, p5, p6, p7] = pos else {
        return;
    };
    macro_rules! level {
        () => {
            concat!(
                "mov {o:e}, dword ptr [{off} + {p0}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p0}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 0]\n",
                "adc {p0}, {p0}\n",
                "mov {o:e}, dword ptr [{off} + {p1}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p1}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 4]\n",
                "adc {p1}, {p1}\n",
                "mov {o:e}, dword ptr [{off} + {p2}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p2}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 8]\n",
                "adc {p2}, {p2}\n",
                "mov {o:e}, dword ptr [{off} + {p3}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p3}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 12]\n",
                "adc {p3}, {p3}\n",
                "mov {o:e}, dword ptr [{off} + {p4}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p4}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 16]\n",
                "adc {p4}, {p4}\n",
                "mov {o:e}, dword ptr [{off} + {p5}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p5}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 20]\n",
                "adc {p5}, {p5}\n",
                "mov {o:e}, dword ptr [{off} + {p6}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p6}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 24]\n",
                "adc {p6}, {p6}\n",
                "mov {o:e}, dword ptr [{off} + {p7}*4]\n",
                "vmovss {t}, dword ptr [{thr} + {p7}*4]\n",
                "vucomiss {t}, dword ptr [{x} + {o}*4 + 28]\n",
                "adc {p7}, {p7}\n",
            )
        };
    }
    macro_rules! walk {
        ($($template:expr),+) => {
            std::arch::asm!(
                $($template),+,
                off = in(reg) off,
                thr = in(reg) thr,
                x = in(reg) x,
                p0 = inout(reg) *p0,
                p1 = inout(reg) *p1,
                p2 = inout(reg) *p2,
                p3 = inout(reg) *p3,
                p4 = inout(reg) *p4,
                p5 = inout(reg) *p5,
                p6 = inout(reg) *p6,
                p7 = inout(reg) *p7,
                o = out(reg) _,
                t = out(xmm_reg) _,
                options(pure, readonly, nostack),
            )
        };
    }
    // SAFETY: the caller's promise; the block only reads memory and leaves the stack alone.
    unsafe {
        if two {
            walk!(level!(), level!());
        } else {
            walk!(level!());
        }
    }
}

/// Adds to the rows `r0..r0 + R` of `out` (`k` values per row) the `k` values of the leaf
/// each row reached (`pos`, bottom positions `SLOTS..2 * SLOTS` of a perfect tree whose leaf
/// values are `values`). Requires `out` to hold those rows.
#[inline(always)]
fn add_row_leaves<const SLOTS: usize, const R: usize>(
    values: &[f64],
    k: usize,
    pos: &[usize; R],
    out: &mut [f64],
    r0: usize,
) {
    for (j, &p) in pos.iter().enumerate() {
        let leaf = p - SLOTS;
        for c in 0..k {
            // SAFETY: `leaf < SLOTS` (the walk ends in SLOTS..2 * SLOTS), so the value is
            // inside `values`; row r0 + j < n and `out` holds n rows.
            unsafe { *out.get_unchecked_mut((r0 + j) * k + c) += *values.get_unchecked(leaf * k + c) };
        }
    }
}

/// 1 when a row with value `v` goes right at a split on `threshold`, else 0. NaN goes right,
/// as in [`TreeEnsemble`]: `!(v <= t)` is true for NaN where `v > t` is not.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn goes_right<T: PartialOrd>(v: T, threshold: T) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{BLOCK_ROWS, FeatureMajor, Kernel, Simd};
    use crate::rng::Rng;
    use ndarray::Array2;

    /// Values that probe every corner of `x <= t`: NaN, infinities, the extremes, signed
    /// zeros, subnormals, and ordinary numbers.
    const SPECIAL: [f64; 12] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        0.0,
        -0.0,
        1.0,
        -1.0,
    ];

    fn value(rng: &mut Rng) -> f64 {
        if rng.bernoulli(0.3) {
            SPECIAL[rng.below(SPECIAL.len() as u64) as usize]
        } else {
            // A few distinct values, so that inputs often equal thresholds exactly.
            rng.below(9) as f64 * 0.25 - 1.0
        }
    }

    /// Appends a random tree of at most `depth` splits below (nodes after their parent, as
    /// fitted ensembles store them) and returns its root.
    fn grow(e: &mut TreeEnsemble, depth: usize, rng: &mut Rng) -> u32 {
        let me = e.feature.len();
        e.feature.push(0);
        e.threshold.push(0.0);
        e.left.push(LEAF);
        e.right.push(LEAF);
        e.value_offset.push(0);
        if depth == 0 || rng.bernoulli(0.15) {
            e.value_offset[me] = e.values.len() as u32;
            for _ in 0..e.n_outputs {
                e.values.push(rng.uniform_range(-2.0, 2.0));
            }
        } else {
            e.feature[me] = rng.below(e.n_features as u64) as u32;
            e.threshold[me] = value(rng);
            let l = grow(e, depth - 1, rng);
            let r = grow(e, depth - 1, rng);
            e.left[me] = l;
            e.right[me] = r;
        }
        me as u32
    }

    fn random_forest(seed: u64) -> TreeEnsemble {
        let mut rng = Rng::new(seed);
        let n_features = 1 + rng.below(6) as usize;
        let mut e = TreeEnsemble {
            n_features,
            n_outputs: 1 + rng.below(3) as usize,
            roots: vec![],
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            value_offset: vec![],
            values: vec![],
            feature_importances: vec![0.0; n_features],
        };
        // Tree counts that fill lockstep groups, leave a partial one, and mix depths (0, and
        // past MAX_PERFECT_DEPTH for the linked layout) within a group.
        let n_trees = [1, 7, 8, 16, 19][rng.below(5) as usize];
        let depths = [0, 1, 3, 5, 8, 8, 13];
        let uniform = rng.bernoulli(0.5).then(|| depths[rng.below(6) as usize]);
        for _ in 0..n_trees {
            let depth = uniform.unwrap_or_else(|| depths[rng.below(depths.len() as u64) as usize]);
            let root = grow(&mut e, depth, &mut rng);
            e.roots.push(root);
        }
        e.validate().expect("a valid random ensemble");
        e
    }

    /// The straightforward walk: per row, per tree in order, follow `x <= t` to a leaf, add
    /// its values, then scale by `1 / n_trees`.
    fn reference(e: &TreeEnsemble, x: &Array2<f64>) -> Vec<f64> {
        let k = e.n_outputs;
        let mut out = vec![0.0; x.nrows() * k];
        for (r, row) in x.rows().into_iter().enumerate() {
            for &root in &e.roots {
                let mut i = root as usize;
                while e.left[i] != LEAF {
                    i = if row[e.feature[i] as usize] <= e.threshold[i] {
                        e.left[i]
                    } else {
                        e.right[i]
                    } as usize;
                }
                let off = e.value_offset[i] as usize;
                for c in 0..k {
                    out[r * k + c] += e.values[off + c];
                }
            }
            let scale = 1.0 / e.roots.len() as f64;
            out[r * k..(r + 1) * k].iter_mut().for_each(|o| *o *= scale);
        }
        out
    }

    fn assert_bits(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{what}, value {i}: {g} vs {w}");
        }
    }

    #[test]
    fn every_layout_and_batch_size_matches_a_plain_walk_on_special_values() {
        for seed in 0..24 {
            let e = random_forest(seed);
            let mut rng = Rng::new(1000 + seed);
            let x = Array2::from_shape_fn((67, e.n_features), |_| value(&mut rng));
            let k = e.n_outputs;
            for max_perfect in [0, 5, MAX_PERFECT_DEPTH] {
                let flat = FlatForest::with_max_perfect_depth(&e, max_perfect);
                let flat32 = flat.clone().with_f32_inputs();
                let kernel = Kernel::Forest(flat.clone());
                for n in 1..=67 {
                    let rows = x.slice(ndarray::s![67 - n.., ..]).to_owned();
                    let want = reference(&e, &rows);
                    let what = format!("seed {seed}, max perfect depth {max_perfect}, {n} rows");
                    // Row-major input (the feature-matrix path).
                    let mut out = vec![0.0; n * k];
                    kernel.predict_matrix_into(rows.view(), &mut out, 1).unwrap();
                    assert_bits(&out, &want, &format!("{what}, row-major"));
                    // Feature-major blocks (the frame path), the unused rows holding NaN, with
                    // every instruction set this CPU has.
                    let mut block = vec![f64::NAN; e.n_features * BLOCK_ROWS];
                    for ((r, f), v) in rows.indexed_iter() {
                        block[f * BLOCK_ROWS + r] = *v;
                    }
                    for simd in Simd::available() {
                        let mut out = vec![0.0; n * k];
                        flat.predict_into(simd.level(), &FeatureMajor { data: &block, n }, &mut out);
                        assert_bits(&out, &want, &format!("{what}, feature-major, {simd:?}"));
                    }
                    // The same rows rounded to f32, as f32 blocks through the forest compiled
                    // for them: the f64 walk's bits on the rounded values.
                    let rounded = rows.mapv(|v| f64::from(v as f32));
                    let want = reference(&e, &rounded);
                    let mut block = vec![f32::NAN; e.n_features * BLOCK_ROWS];
                    for ((r, f), v) in rounded.indexed_iter() {
                        block[f * BLOCK_ROWS + r] = *v as f32;
                    }
                    for simd in Simd::available() {
                        let mut out = vec![0.0; n * k];
                        flat32
                            .predict_f32_into(simd.level(), &FeatureMajor { data: &block, n }, &mut out)
                            .unwrap();
                        assert_bits(&out, &want, &format!("{what}, f32 feature-major, {simd:?}"));
                    }
                }
            }
        }
    }

    #[test]
    fn f32_thresholds_split_every_f32_value_as_the_f64_threshold_does() {
        let mut rng = Rng::new(7);
        let mut thresholds: Vec<f64> = SPECIAL.to_vec();
        thresholds.extend([
            1e-310,
            -1e-310,
            3.4e38,
            -3.4e38,
            3.5e38,
            -3.5e38,
            0.1,
            -0.1,
            1.0 / 3.0,
        ]);
        for _ in 0..2000 {
            // Random doubles of every magnitude f32 has, and then some.
            let t = (rng.uniform_range(-1.0, 1.0)) * 2f64.powi(rng.below(300) as i32 - 150);
            thresholds.push(t);
        }
        for &t in &thresholds {
            let f = floor_f32(t);
            let near = t as f32;
            let xs = [
                near,
                near.next_up(),
                near.next_down(),
                f,
                f.next_up(),
                f.next_down(),
                0.0,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MAX,
                f32::MIN,
                f32::NAN,
            ];
            for x in xs {
                assert_eq!(
                    goes_right(f64::from(x), t),
                    goes_right(x, f),
                    "x = {x:e}, t = {t:e}, floor_f32(t) = {f:e}"
                );
            }
        }
    }

    #[test]
    fn an_f32_block_for_a_forest_without_f32_thresholds_is_an_internal_error() {
        let flat = FlatForest::new(&random_forest(3));
        let block = vec![0.0f32; flat.n_features() * BLOCK_ROWS];
        let mut out = vec![0.0; flat.n_outputs()];
        let got = flat.predict_f32_into(
            Simd::Portable.level(),
            &FeatureMajor { data: &block, n: 1 },
            &mut out,
        );
        assert!(matches!(got, Err(Error::Internal(_))), "{got:?}");
    }
}
