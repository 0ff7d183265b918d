//! The classical ONNX-ML operators, compiled from their node attributes once at load time and
//! evaluated on whole batches.
//!
//! Each operator follows what ONNX Runtime's CPU kernels compute (the reference the fixtures
//! were recorded with), including the corners the ONNX specification leaves open: how a binary
//! tree classifier with one score column fills the second, how base values combine in the binary
//! case, the Winitzki approximation ONNX Runtime uses for PROBIT. Arithmetic runs in `f64` and
//! results are rounded to `float` where ONNX Runtime returns `float`, so a native result differs
//! from the runtime's only by the rounding of its `float` intermediate sums.

use std::collections::HashMap;

use ndarray::ArrayView2;

use super::proto::{AttributeProto, NodeProto, TensorProto};
use super::value::{Data, Tensor};
use crate::estimator::tree::{LEAF, TreeEnsemble};
use crate::kernel::{FlatForest, Kernel};

/// A load-time problem with one node: the operator (or one of its attribute values) has no
/// native implementation, or the node is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeError {
    /// Not supported natively (the graph may still run on ONNX Runtime).
    Unsupported(String),
    /// Invalid whatever the engine.
    Invalid(String),
}

type NodeResult<T> = std::result::Result<T, NodeError>;

fn invalid<T>(msg: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Invalid(msg.into()))
}

fn unsupported<T>(msg: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Unsupported(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Attributes.

/// A node's attributes by name.
pub(crate) struct Attrs<'a> {
    map: HashMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn of(node: &'a NodeProto) -> Attrs<'a> {
        Attrs {
            map: node.attribute.iter().map(|a| (a.name(), a)).collect(),
        }
    }

    pub(crate) fn has_attr(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub(crate) fn get_int(&self, name: &str, default: i64) -> i64 {
        self.map.get(name).map_or(default, |a| a.i())
    }

    pub(crate) fn get_float(&self, name: &str, default: f32) -> f32 {
        self.map.get(name).map_or(default, |a| a.f())
    }

    pub(crate) fn get_string(&self, name: &str, default: &str) -> String {
        self.map.get(name).map_or_else(
            || default.to_string(),
            |a| String::from_utf8_lossy(a.s()).into_owned(),
        )
    }

    /// The `ints` of `name`, borrowed (empty when absent).
    pub(crate) fn ints(&self, name: &str) -> &'a [i64] {
        self.map.get(name).map_or(&[], |a| a.ints.as_slice())
    }

    /// The raw `strings` of `name`, borrowed (empty when absent).
    pub(crate) fn raw_strings(&self, name: &str) -> &'a [Vec<u8>] {
        self.map.get(name).map_or(&[], |a| a.strings.as_slice())
    }

    pub(crate) fn get_ints(&self, name: &str) -> Vec<i64> {
        self.map.get(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    pub(crate) fn get_floats(&self, name: &str) -> Vec<f32> {
        self.map.get(name).map(|a| a.floats.clone()).unwrap_or_default()
    }

    pub(crate) fn get_strings(&self, name: &str) -> Vec<String> {
        self.map
            .get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `name` as doubles: the `float` list, else the `<name>_as_tensor` double tensor.
    fn reals(&self, name: &str) -> NodeResult<Vec<f64>> {
        if let Some(a) = self.map.get(name) {
            return Ok(a.floats.iter().map(|&x| f64::from(x)).collect());
        }
        match self
            .map
            .get(format!("{name}_as_tensor").as_str())
            .and_then(|a| a.t.as_ref())
        {
            Some(t) => match tensor_data(t)? {
                Data::F64(v) => Ok(v),
                Data::F32(v) => Ok(v.into_iter().map(f64::from).collect()),
                other => invalid(format!(
                    "`{name}_as_tensor` holds {} values, not reals",
                    other.type_name()
                )),
            },
            None => Ok(Vec::new()),
        }
    }
}

/// The values of a constant tensor (an initializer or a tensor attribute).
pub(crate) fn tensor_data(t: &TensorProto) -> NodeResult<Data> {
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let chunks = |n: usize| -> NodeResult<std::slice::ChunksExact<'_, u8>> {
        let r = raw.unwrap_or_default();
        if !r.len().is_multiple_of(n) {
            return invalid(format!(
                "tensor `{}` has {} raw bytes, not a multiple of {n}",
                t.name(),
                r.len()
            ));
        }
        Ok(r.chunks_exact(n))
    };
    // Element types of onnx.proto's TensorProto.DataType.
    Ok(match t.data_type() {
        1 => Data::F32(match raw {
            Some(_) => chunks(4)?
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None => t.float_data.clone(),
        }),
        11 => Data::F64(match raw {
            Some(_) => chunks(8)?
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            None => t.double_data.clone(),
        }),
        7 => Data::I64(match raw {
            Some(_) => chunks(8)?
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            None => t.int64_data.clone(),
        }),
        6 => Data::I64(match raw {
            Some(_) => chunks(4)?
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            None => t.int32_data.iter().map(|&x| i64::from(x)).collect(),
        }),
        8 => Data::Str(
            t.string_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        other => return unsupported(format!("tensor `{}` has element type {other}", t.name())),
    })
}

// ---------------------------------------------------------------------------------------------
// Post transforms shared by the tree and linear operators.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    fn parse(s: &str) -> NodeResult<PostTransform> {
        Ok(match s {
            "NONE" | "" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => return invalid(format!("unknown post_transform `{other}`")),
        })
    }

    /// Applies the transform to one row of two or more scores.
    fn apply(self, s: &mut [f64]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => s.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Probit => s.iter_mut().for_each(|v| *v = probit(*v)),
            PostTransform::Softmax => softmax(s),
            PostTransform::SoftmaxZero => softmax_zero(s),
        }
    }

    /// Applies a regressor's transform to one row of targets: a single target takes only PROBIT
    /// (as in ONNX Runtime), two or more take it as scores do.
    fn apply_to_targets(self, row: &mut [f64]) {
        match row {
            [v] if self == PostTransform::Probit => *v = probit(*v),
            [_] => {}
            _ => self.apply(row),
        }
    }
}

/// `rows × cols` float outputs from the f64 values they were computed in.
fn f32_tensor(values: &[f64], rows: usize, cols: usize) -> Tensor {
    Tensor::new(Data::F32(values.iter().map(|&v| v as f32).collect()), rows, cols)
}

/// ONNX Runtime's logistic: symmetric around 0 so that large negative scores keep precision.
pub(crate) fn logistic(v: f64) -> f64 {
    let p = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - p } else { p }
}

/// `sqrt(2) · erfinv(2v - 1)` with the closed-form erfinv approximation (Winitzki, a = 0.147)
/// that ONNX Runtime uses, so PROBIT outputs agree with it (the approximation itself is only
/// good to about 2e-3), evaluated in `float` as there.
pub(crate) fn probit(v: f64) -> f64 {
    let x = (v as f32) * 2.0 - 1.0;
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let y = (1.0 - x) * (1.0 + x);
    let ln = y.ln();
    let a = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let b = 1.0 / 0.147 * ln;
    let erfinv = sgn * (-a + (a * a - b).sqrt()).sqrt();
    f64::from(std::f32::consts::SQRT_2 * erfinv)
}

pub(crate) fn softmax(s: &mut [f64]) {
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in s.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    s.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax over the non-zero scores; zeros stay zero (ONNX Runtime treats |v| ≤ 1e-7 as zero).
fn softmax_zero(s: &mut [f64]) {
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in s.iter_mut() {
        if v.abs() > 1e-7 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v = 0.0;
        }
    }
    if sum > 0.0 {
        s.iter_mut().for_each(|v| *v /= sum);
    }
}

/// How a binary classifier with one score column fills its two outputs (ONNX Runtime's
/// `write_scores` cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecondClass {
    /// `[1 - s, s]` (all weights positive: the score is a probability).
    Complement,
    /// `[-s, s]`, or logistic of both with LOGISTIC (mixed weights, positive class wins).
    NegatePositive,
    /// `[s, -s]`, or logistic of both with LOGISTIC (mixed weights, negative class wins).
    NegateNegative,
}

/// Writes one score as two columns.
fn write_binary(s: f64, post: PostTransform, how: SecondClass, out: &mut [f64]) {
    match (how, post) {
        (SecondClass::Complement, PostTransform::Logistic) => {
            let p = logistic(s);
            out[0] = 1.0 - p;
            out[1] = p;
        }
        (SecondClass::Complement, _) => {
            out[0] = 1.0 - s;
            out[1] = s;
        }
        (_, PostTransform::Logistic) => {
            out[0] = logistic(-s);
            out[1] = logistic(s);
        }
        (SecondClass::NegatePositive, _) => {
            out[0] = -s;
            out[1] = s;
        }
        (SecondClass::NegateNegative, _) => {
            out[0] = s;
            out[1] = -s;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Class labels.

/// Class labels of a classifier: int64 or string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub(crate) fn of(a: &Attrs<'_>) -> NodeResult<Labels> {
        let strings = a.get_strings("classlabels_strings");
        let ints = {
            let i = a.get_ints("classlabels_int64s");
            if i.is_empty() {
                a.get_ints("classlabels_ints")
            } else {
                i
            }
        };
        match (strings.is_empty(), ints.is_empty()) {
            (false, true) => Ok(Labels::Strings(strings)),
            (true, false) => Ok(Labels::Ints(ints)),
            (true, true) => {
                invalid("the classifier names no class labels (classlabels_strings or classlabels_int64s)")
            }
            (false, false) => invalid("the classifier has both classlabels_strings and classlabels_int64s"),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    /// The labels as text.
    pub(crate) fn texts(&self) -> Vec<String> {
        match self {
            Labels::Ints(v) => v.iter().map(i64::to_string).collect(),
            Labels::Strings(v) => v.clone(),
        }
    }

    /// The label output for class indices `idx`.
    fn pick(&self, idx: &[usize]) -> Data {
        match self {
            Labels::Ints(v) => Data::I64(
                idx.iter()
                    .map(|&i| v.get(i).copied().unwrap_or_default())
                    .collect(),
            ),
            Labels::Strings(v) => Data::Str(
                idx.iter()
                    .map(|&i| v.get(i).cloned().unwrap_or_default())
                    .collect(),
            ),
        }
    }
}

/// Index of the first maximum among the entries flagged in `has` (ONNX Runtime's
/// `get_max_weight`); 0 when none is.
fn first_max(s: &[f64], has: &[bool]) -> usize {
    let mut best: Option<usize> = None;
    for (i, (&v, &h)) in s.iter().zip(has).enumerate() {
        if h && best.is_none_or(|b| v > s[b]) {
            best = Some(i);
        }
    }
    best.unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Tree ensembles.

/// TreeEnsembleClassifier / TreeEnsembleRegressor compiled into a [`FlatForest`].
#[derive(Clone, Debug)]
pub(crate) struct Trees {
    kernel: Kernel,
    n_features: usize,
    /// Features whose NaN must take the `<=` (left) branch: a copy of them with NaN replaced by
    /// -inf is appended to the input as feature `n_features + i`.
    nan_left: Vec<usize>,
    /// Scores per row: classes or targets.
    k: usize,
    /// Whether some leaf carries a weight for each class (ONNX Runtime's `has_score`).
    has_score: Vec<bool>,
    base: Vec<f64>,
    post: PostTransform,
    /// Classifier only.
    classifier: Option<ClassifierInfo>,
}

#[derive(Clone, Debug)]
struct ClassifierInfo {
    labels: Labels,
    /// Two classes and every weight for class 0 (one score column).
    binary_case: bool,
    weights_all_positive: bool,
}

/// The next representable value below `t` in the precision the comparison runs in.
fn next_down(t: f64, double: bool) -> f64 {
    if double {
        if t.is_nan() || t == f64::NEG_INFINITY {
            return t;
        }
        if t == 0.0 {
            return -f64::from_bits(1);
        }
        f64::from_bits(if t > 0.0 { t.to_bits() - 1 } else { t.to_bits() + 1 })
    } else {
        let f = t as f32;
        if f.is_nan() || f == f32::NEG_INFINITY {
            return f64::from(f);
        }
        let d = if f == 0.0 {
            -f32::from_bits(1)
        } else {
            f32::from_bits(if f > 0.0 { f.to_bits() - 1 } else { f.to_bits() + 1 })
        };
        f64::from(d)
    }
}

/// The attribute position of each node of a tree ensemble by (tree id, node id), with the
/// trees in order of first appearance (a tree's root is its first node).
///
/// Node ids are looked up in a table per tree when they are dense (as every exporter writes
/// them: 0, 1, 2, ... within each tree), else in one hash map.
struct NodeIndex {
    /// Tree ids in order of first appearance.
    tree_ids: Vec<i64>,
    /// The root (first node) of each tree.
    roots: Vec<usize>,
    /// Each node's tree (index into `tree_ids`).
    tree_of: Vec<u32>,
    /// Tree id → index into `tree_ids`.
    trees: HashMap<i64, u32>,
    nodes: NodeSlots,
}

enum NodeSlots {
    /// Per tree: its lowest node id and where its ids start in `slots`, and how many there are;
    /// `slots[start + (id - lowest)]` is the node's position, or `u32::MAX`.
    Dense {
        ranges: Vec<(i64, usize, u64)>,
        slots: Vec<u32>,
    },
    Map(HashMap<(i64, i64), usize>),
}

impl NodeIndex {
    fn build(tree_ids: &[i64], node_ids: &[i64]) -> NodeResult<NodeIndex> {
        let n = tree_ids.len();
        let mut trees: HashMap<i64, u32> = HashMap::new();
        let mut ids: Vec<i64> = Vec::new();
        let mut roots: Vec<usize> = Vec::new();
        let mut tree_of: Vec<u32> = Vec::with_capacity(n);
        let mut bounds: Vec<(i64, i64)> = Vec::new();
        let mut last: Option<(i64, u32)> = None;
        for (i, (&t, &id)) in tree_ids.iter().zip(node_ids).enumerate() {
            let ti = match last {
                Some((lt, li)) if lt == t => li,
                _ => {
                    let ti = *trees.entry(t).or_insert_with(|| {
                        ids.push(t);
                        roots.push(i);
                        bounds.push((id, id));
                        (ids.len() - 1) as u32
                    });
                    last = Some((t, ti));
                    ti
                }
            };
            tree_of.push(ti);
            let b = &mut bounds[ti as usize];
            b.0 = b.0.min(id);
            b.1 = b.1.max(id);
        }
        let spans: Vec<u64> = bounds
            .iter()
            .map(|&(lo, hi)| {
                (i128::from(hi) - i128::from(lo) + 1)
                    .try_into()
                    .unwrap_or(u64::MAX)
            })
            .collect();
        let total = spans.iter().fold(0u64, |acc, &s| acc.saturating_add(s));
        let dense = total <= 2 * n as u64 + 64;
        let nodes = if dense {
            let mut ranges = Vec::with_capacity(bounds.len());
            let mut start = 0usize;
            for (&(lo, _), &span) in bounds.iter().zip(&spans) {
                ranges.push((lo, start, span));
                start += span as usize;
            }
            let mut slots = vec![u32::MAX; start];
            for i in 0..n {
                let (lo, start, _) = ranges[tree_of[i] as usize];
                let s = &mut slots[start + (node_ids[i] - lo) as usize];
                if *s != u32::MAX {
                    return invalid(format!(
                        "node {} of tree {} appears twice",
                        node_ids[i], tree_ids[i]
                    ));
                }
                *s = i as u32;
            }
            NodeSlots::Dense { ranges, slots }
        } else {
            let mut map: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
            for i in 0..n {
                if map.insert((tree_ids[i], node_ids[i]), i).is_some() {
                    return invalid(format!(
                        "node {} of tree {} appears twice",
                        node_ids[i], tree_ids[i]
                    ));
                }
            }
            NodeSlots::Map(map)
        };
        Ok(NodeIndex {
            tree_ids: ids,
            roots,
            tree_of,
            trees,
            nodes,
        })
    }

    /// Node `id` of the tree numbered `ti`.
    fn lookup(&self, ti: u32, id: i64) -> Option<usize> {
        match &self.nodes {
            NodeSlots::Dense { ranges, slots } => {
                let (lo, start, span) = ranges[ti as usize];
                let d = u64::try_from(i128::from(id) - i128::from(lo))
                    .ok()
                    .filter(|&d| d < span)?;
                let s = slots[start + d as usize];
                (s != u32::MAX).then_some(s as usize)
            }
            NodeSlots::Map(map) => map.get(&(self.tree_ids[ti as usize], id)).copied(),
        }
    }

    /// Node `id` of tree `tree`; `cache` remembers the last tree looked up.
    fn find(&self, tree: i64, id: i64, cache: &mut Option<(i64, u32)>) -> Option<usize> {
        let ti = match *cache {
            Some((t, ti)) if t == tree => ti,
            _ => {
                let ti = *self.trees.get(&tree)?;
                *cache = Some((tree, ti));
                ti
            }
        };
        self.lookup(ti, id)
    }

    /// Node `id` of the tree that node `i` belongs to.
    fn find_in_tree_of(&self, i: usize, id: i64) -> Option<usize> {
        self.lookup(self.tree_of[i], id)
    }
}

impl Trees {
    pub(crate) fn compile(node: &NodeProto, classifier: bool, double_input: bool) -> NodeResult<Trees> {
        let a = Attrs::of(node);
        let tree_ids = a.ints("nodes_treeids");
        let node_ids = a.ints("nodes_nodeids");
        let features = a.ints("nodes_featureids");
        let values = a.reals("nodes_values")?;
        let modes = a.raw_strings("nodes_modes");
        let true_ids = a.ints("nodes_truenodeids");
        let false_ids = a.ints("nodes_falsenodeids");
        let tracks = a.ints("nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        if [
            node_ids.len(),
            features.len(),
            values.len(),
            modes.len(),
            true_ids.len(),
            false_ids.len(),
        ]
        .iter()
        .any(|&l| l != n)
            || (!tracks.is_empty() && tracks.len() != n)
        {
            return invalid("the nodes_* attributes have different lengths");
        }
        let prefix = if classifier { "class" } else { "target" };
        let w_tree = a.ints(&format!("{prefix}_treeids"));
        let w_node = a.ints(&format!("{prefix}_nodeids"));
        let w_id = a.ints(&format!("{prefix}_ids"));
        let w_val = a.reals(&format!("{prefix}_weights"))?;
        if [w_node.len(), w_id.len(), w_val.len()]
            .iter()
            .any(|&l| l != w_tree.len())
        {
            return invalid(format!("the {prefix}_* attributes have different lengths"));
        }
        let post = PostTransform::parse(&a.get_string("post_transform", "NONE"))?;
        let base = a.reals("base_values")?;
        let labels = if classifier { Some(Labels::of(&a)?) } else { None };
        let k = match &labels {
            Some(l) => l.len(),
            None => usize::try_from(a.get_int("n_targets", 1)).unwrap_or(0),
        };
        if k == 0 {
            return invalid("the ensemble has no classes or targets");
        }
        let aggregate = a.get_string("aggregate_function", "SUM");
        let average = match aggregate.as_str() {
            "SUM" => false,
            "AVERAGE" => true,
            "MIN" | "MAX" => {
                return unsupported(format!(
                    "aggregate_function {aggregate} (only SUM and AVERAGE run natively)"
                ));
            }
            other => return invalid(format!("unknown aggregate_function `{other}`")),
        };

        // Nodes by (tree, node id); trees in order of first appearance, root = first node.
        let index = NodeIndex::build(tree_ids, node_ids)?;
        let mut n_features = 0usize;
        let mut nan_left_set: Vec<usize> = Vec::new();
        for i in 0..n {
            if modes[i] != b"LEAF" {
                let f = usize::try_from(features[i])
                    .map_err(|_| NodeError::Invalid(format!("negative feature id {}", features[i])))?;
                n_features = n_features.max(f + 1);
            }
        }
        let n_features = n_features.max(usize::try_from(a.get_int("n_features_hint", 0)).unwrap_or(0));

        // Leaf weights: node i's sums are `leaf_w[leaf_slot[i] * k..][..k]`.
        const NO_SLOT: u32 = u32::MAX;
        let mut leaf_slot: Vec<u32> = vec![NO_SLOT; n];
        let mut leaf_w: Vec<f64> = Vec::new();
        let mut has_score = vec![false; k];
        let mut all_positive = true;
        let mut class_ids_seen = vec![false; k];
        let mut tree_cache = None;
        for j in 0..w_tree.len() {
            let Some(i) = index.find(w_tree[j], w_node[j], &mut tree_cache) else {
                return invalid(format!(
                    "a weight names node {} of tree {}, which does not exist",
                    w_node[j], w_tree[j]
                ));
            };
            let c = usize::try_from(w_id[j]).ok().filter(|&c| c < k).ok_or_else(|| {
                NodeError::Invalid(format!(
                    "a weight is for class/target {}, outside 0..{k}",
                    w_id[j]
                ))
            })?;
            if leaf_slot[i] == NO_SLOT {
                leaf_slot[i] = (leaf_w.len() / k) as u32;
                leaf_w.resize(leaf_w.len() + k, 0.0);
            }
            leaf_w[leaf_slot[i] as usize * k + c] += w_val[j];
            has_score[c] = true;
            all_positive &= w_val[j] >= 0.0;
            class_ids_seen[c] = true;
        }

        // Build a TreeEnsemble: node i of the attributes → its own index.
        let mut e = TreeEnsemble {
            n_features: 0,
            n_outputs: k,
            roots: Vec::with_capacity(index.roots.len()),
            feature: vec![0; n],
            threshold: vec![0.0; n],
            left: vec![LEAF; n],
            right: vec![LEAF; n],
            value_offset: vec![0; n],
            values: Vec::new(),
            feature_importances: Vec::new(),
        };
        let child = |i: usize, id: i64| -> NodeResult<u32> {
            index.find_in_tree_of(i, id).map(|c| c as u32).ok_or_else(|| {
                NodeError::Invalid(format!(
                    "node {id} of tree {} is named as a child but does not exist",
                    tree_ids[i]
                ))
            })
        };
        for i in 0..n {
            let mode = modes[i].as_slice();
            if mode == b"LEAF" {
                e.value_offset[i] = e.values.len() as u32;
                match leaf_slot[i] {
                    NO_SLOT => e.values.extend(std::iter::repeat_n(0.0, k)),
                    s => e
                        .values
                        .extend_from_slice(&leaf_w[s as usize * k..(s as usize + 1) * k]),
                }
                continue;
            }
            let f = features[i] as usize;
            let t = values[i];
            let (yes, no) = (child(i, true_ids[i])?, child(i, false_ids[i])?);
            let nan_true = tracks.get(i).copied().unwrap_or(0) != 0;
            // The kernel's split: `x <= threshold` goes left, anything else (NaN too) right.
            // Each mode becomes such a split; where NaN must go left, the split reads a copy of
            // the feature with NaN replaced by -inf.
            let (threshold, left, right, nan_goes_left) = match mode {
                b"BRANCH_LEQ" => (t, yes, no, nan_true),
                b"BRANCH_LT" => (next_down(t, double_input), yes, no, nan_true),
                b"BRANCH_GTE" => (next_down(t, double_input), no, yes, !nan_true),
                b"BRANCH_GT" => (t, no, yes, !nan_true),
                b"BRANCH_EQ" | b"BRANCH_NEQ" => {
                    return unsupported(format!(
                        "nodes_modes {} (only LEQ, LT, GTE, GT and LEAF run natively)",
                        String::from_utf8_lossy(mode)
                    ));
                }
                other => {
                    return invalid(format!(
                        "unknown nodes_modes `{}`",
                        String::from_utf8_lossy(other)
                    ));
                }
            };
            let feature = if nan_goes_left {
                let slot = match nan_left_set.iter().position(|&g| g == f) {
                    Some(p) => p,
                    None => {
                        nan_left_set.push(f);
                        nan_left_set.len() - 1
                    }
                };
                n_features + slot
            } else {
                f
            };
            e.feature[i] = feature as u32;
            e.threshold[i] = threshold;
            e.left[i] = left;
            e.right[i] = right;
        }
        // A tree must be a tree: walking from the root may not revisit a node.
        let mut seen = vec![false; n];
        let mut stack = Vec::new();
        for (t, &root) in index.tree_ids.iter().zip(&index.roots) {
            stack.push(root);
            while let Some(i) = stack.pop() {
                if seen[i] {
                    return invalid(format!(
                        "tree {t} is not a tree (node {} is reached twice)",
                        node_ids[i]
                    ));
                }
                seen[i] = true;
                if e.left[i] != LEAF {
                    stack.push(e.left[i] as usize);
                    stack.push(e.right[i] as usize);
                }
            }
            e.roots.push(root as u32);
        }
        e.n_features = n_features + nan_left_set.len();
        let n_trees = e.roots.len().max(1);
        let scale = if average { 1.0 / n_trees as f64 } else { 1.0 };
        let flat = FlatForest::new(&e).with_scale(scale);
        let classifier_info = labels.map(|labels| ClassifierInfo {
            binary_case: k == 2 && class_ids_seen.iter().filter(|&&c| c).count() == 1,
            weights_all_positive: all_positive,
            labels,
        });
        Ok(Trees {
            kernel: Kernel::Forest(flat),
            n_features,
            nan_left: nan_left_set,
            k,
            has_score,
            base,
            post,
            classifier: classifier_info,
        })
    }

    pub(crate) fn labels(&self) -> Option<&Labels> {
        self.classifier.as_ref().map(|c| &c.labels)
    }

    /// Raw aggregated scores, `rows × k`.
    fn scores(&self, x: &Tensor) -> Result<Vec<f64>, String> {
        if x.cols < self.n_features {
            return Err(format!(
                "the tree ensemble reads feature {} but its input has {} columns",
                self.n_features - 1,
                x.cols
            ));
        }
        let d = self.n_features + self.nan_left.len();
        let src = x.to_f64();
        let mut m = vec![0.0; x.rows * d];
        for r in 0..x.rows {
            let row = &src[r * x.cols..r * x.cols + self.n_features];
            let dst = &mut m[r * d..(r + 1) * d];
            dst[..self.n_features].copy_from_slice(row);
            for (s, &f) in self.nan_left.iter().enumerate() {
                let v = row[f];
                dst[self.n_features + s] = if v.is_nan() { f64::NEG_INFINITY } else { v };
            }
        }
        let view = ArrayView2::from_shape((x.rows, d), &m).map_err(|e| e.to_string())?;
        let mut out = vec![0.0; x.rows * self.k];
        self.kernel
            .predict_matrix_into(view, &mut out, 1)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// The same operator with its forest also compiled for `f32` inputs
    /// ([`FlatForest::with_f32_inputs`]), for an input tensor of floats.
    pub(crate) fn with_f32_inputs(mut self) -> Trees {
        if let Kernel::Forest(f) = self.kernel {
            self.kernel = Kernel::Forest(f.with_f32_inputs());
        }
        self
    }

    /// The compiled forest: raw aggregated scores, before base values and post-transform.
    /// It reads the operator's input features, then one copy per [`Trees::nan_left`] feature.
    pub(crate) fn forest(&self) -> Option<&FlatForest> {
        match &self.kernel {
            Kernel::Forest(f) => Some(f),
            _ => None,
        }
    }

    /// Input features the nodes read (the input may have more columns).
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Features whose NaN takes the left branch: the forest reads a copy of each, with NaN
    /// replaced by -inf, after the input features.
    pub(crate) fn nan_left(&self) -> &[usize] {
        &self.nan_left
    }

    /// Scores per row: classes or targets.
    pub(crate) fn n_scores(&self) -> usize {
        self.k
    }

    /// Regressor: one row of raw scores into the operator's values (base values, then the
    /// post-transform), in place, before the rounding to float.
    pub(crate) fn finish_targets(&self, row: &mut [f64]) {
        let k = self.k;
        if self.base.len() == k {
            row.iter_mut().zip(&self.base).for_each(|(v, b)| *v += b);
        } else if self.base.len() == 1 && k == 1 {
            row[0] += self.base[0];
        }
        self.post.apply_to_targets(row);
    }

    /// Scratch for [`Trees::finish_class_row`].
    pub(crate) fn class_scratch(&self) -> ClassScratch {
        let w = self.k.max(2);
        ClassScratch {
            sc: Slots::new(w, 0.0),
            has: Slots::new(w, false),
            row_out: Slots::new(w, 0.0),
        }
    }

    /// Classifier: one row of raw scores (`k`) into the operator's probabilities (`out`, `k`
    /// values, before the rounding to float); returns the label's index. `None` for a
    /// regressor.
    pub(crate) fn finish_class_row(
        &self,
        raw: &[f64],
        z: &mut ClassScratch,
        out: &mut [f64],
    ) -> Option<usize> {
        let info = self.classifier.as_ref()?;
        let k = self.k;
        let ClassScratch { sc, has, row_out } = z;
        // A one-class classifier reads a second score and flag as zero and false.
        sc.fill(0.0);
        has.fill(false);
        sc[..k].copy_from_slice(raw);
        has[..k].copy_from_slice(&self.has_score);
        let label;
        if k > 2 {
            for (c, b) in self.base.iter().enumerate().take(k) {
                sc[c] += b;
                has[c] = true;
            }
            label = first_max(&sc[..k], &has[..k]);
            self.post.apply(&mut sc[..k]);
            row_out[..k].copy_from_slice(&sc[..k]);
        } else {
            // Two classes (ONNX Runtime's binary case).
            let mut two = true;
            match self.base.len() {
                2 => {
                    if has[1] {
                        sc[1] = self.base[1] + sc[0];
                        sc[0] = -sc[1];
                    } else {
                        sc[1] += self.base[1];
                        sc[0] += self.base[0];
                    }
                }
                1 => {
                    sc[0] += self.base[0];
                    two = has[1];
                }
                _ => two = has[1],
            }
            let pos = if two && has[1] {
                sc[1]
            } else if has[0] {
                sc[0]
            } else {
                0.0
            };
            let how;
            (label, how) = if info.binary_case {
                if info.weights_all_positive {
                    if pos > 0.5 {
                        (1, SecondClass::Complement)
                    } else {
                        (0, SecondClass::Complement)
                    }
                } else if pos > 0.0 {
                    (1, SecondClass::NegatePositive)
                } else {
                    (0, SecondClass::NegateNegative)
                }
            } else {
                (usize::from(pos > 0.0), SecondClass::NegateNegative)
            };
            if two {
                self.post.apply(&mut sc[..2]);
                row_out[..2].copy_from_slice(&sc[..2]);
            } else if self.post == PostTransform::Probit {
                row_out[0] = probit(sc[0]);
                row_out[1] = 0.0;
            } else {
                write_binary(sc[0], self.post, how, row_out);
            }
        }
        out.copy_from_slice(&row_out[..k]);
        Some(label)
    }

    /// Regressor: `rows × k` float values.
    pub(crate) fn regress(&self, x: &Tensor) -> Result<Tensor, String> {
        let mut s = self.scores(x)?;
        for row in s.chunks_mut(self.k) {
            self.finish_targets(row);
        }
        Ok(f32_tensor(&s, x.rows, self.k))
    }

    /// Classifier: the label tensor and the `rows × classes` float scores.
    pub(crate) fn classify(&self, x: &Tensor) -> Result<(Tensor, Tensor), String> {
        let info = self
            .classifier
            .as_ref()
            .ok_or_else(|| "a regressor used as a classifier".to_string())?;
        let s = self.scores(x)?;
        let k = self.k;
        let mut labels = Vec::with_capacity(x.rows);
        let mut out = vec![0f32; x.rows * k];
        let mut z = self.class_scratch();
        let mut row = vec![0.0; k];
        for (raw, o) in s.chunks(k).zip(out.chunks_mut(k)) {
            labels.extend(self.finish_class_row(raw, &mut z, &mut row));
            for (o, v) in o.iter_mut().zip(&row) {
                *o = *v as f32;
            }
        }
        Ok((
            Tensor::new(info.labels.pick(&labels), x.rows, 1),
            Tensor::new(Data::F32(out), x.rows, k),
        ))
    }
}

/// Per-row scratch of [`Trees::finish_class_row`], allocated once per batch.
#[derive(Debug)]
pub(crate) struct ClassScratch {
    sc: Slots<f64>,
    has: Slots<bool>,
    row_out: Slots<f64>,
}

/// `len` values, held inline up to [`Slots::INLINE`] (most classifiers have a few classes, and
/// a one-row prediction then allocates nothing for its scratch).
#[derive(Debug)]
enum Slots<T> {
    Inline([T; Slots::<()>::INLINE], usize),
    Heap(Vec<T>),
}

impl<T: Copy> Slots<T> {
    const INLINE: usize = 8;

    fn new(len: usize, value: T) -> Slots<T> {
        if len <= Self::INLINE {
            Slots::Inline([value; Slots::<()>::INLINE], len)
        } else {
            Slots::Heap(vec![value; len])
        }
    }
}

impl<T> std::ops::Deref for Slots<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Slots::Inline(a, len) => &a[..*len],
            Slots::Heap(v) => v,
        }
    }
}

impl<T> std::ops::DerefMut for Slots<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Slots::Inline(a, len) => &mut a[..*len],
            Slots::Heap(v) => v,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Linear models.

/// LinearClassifier / LinearRegressor: `scores = x · coefficientsᵀ + intercepts`.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    /// `k × f`, row-major.
    coef: Vec<f64>,
    intercepts: Vec<f64>,
    k: usize,
    f: usize,
    post: PostTransform,
    labels: Option<Labels>,
}

impl Linear {
    pub(crate) fn compile(node: &NodeProto, classifier: bool) -> NodeResult<Linear> {
        let a = Attrs::of(node);
        let coef: Vec<f64> = a.get_floats("coefficients").into_iter().map(f64::from).collect();
        let intercepts: Vec<f64> = a.get_floats("intercepts").into_iter().map(f64::from).collect();
        let post = PostTransform::parse(&a.get_string("post_transform", "NONE"))?;
        let (k, labels) = if classifier {
            let labels = Labels::of(&a)?;
            // One score row for two classes (one intercept) is the binary form.
            let k = if intercepts.is_empty() {
                labels.len()
            } else {
                intercepts.len()
            };
            (k, Some(labels))
        } else {
            (usize::try_from(a.get_int("targets", 1)).unwrap_or(0), None)
        };
        if k == 0 || coef.is_empty() || !coef.len().is_multiple_of(k) {
            return invalid(format!("{} coefficients do not make {k} rows", coef.len()));
        }
        if !intercepts.is_empty() && intercepts.len() != k {
            return invalid(format!("{} intercepts for {k} score rows", intercepts.len()));
        }
        let f = coef.len() / k;
        Ok(Linear {
            intercepts: if intercepts.is_empty() {
                vec![0.0; k]
            } else {
                intercepts
            },
            coef,
            k,
            f,
            post,
            labels,
        })
    }

    pub(crate) fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }

    /// Coefficients (`k × f`, row-major), intercepts (`k`) and post-transform, for a fused
    /// pass.
    pub(crate) fn parts(&self) -> (&[f64], &[f64], PostTransform) {
        (&self.coef, &self.intercepts, self.post)
    }

    fn raw(&self, x: &Tensor) -> Result<Vec<f64>, String> {
        if x.cols != self.f {
            return Err(format!(
                "the linear model has {} coefficients per row but its input has {} columns",
                self.f, x.cols
            ));
        }
        let src = x.to_f64();
        let mut s = vec![0.0; x.rows * self.k];
        for r in 0..x.rows {
            let row = &src[r * self.f..(r + 1) * self.f];
            for c in 0..self.k {
                let w = &self.coef[c * self.f..(c + 1) * self.f];
                s[r * self.k + c] = self.intercepts[c] + row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
            }
        }
        Ok(s)
    }

    pub(crate) fn regress(&self, x: &Tensor) -> Result<Tensor, String> {
        let mut s = self.raw(x)?;
        for row in s.chunks_mut(self.k) {
            self.post.apply_to_targets(row);
        }
        Ok(f32_tensor(&s, x.rows, self.k))
    }

    pub(crate) fn classify(&self, x: &Tensor) -> Result<(Tensor, Tensor), String> {
        let labels = self
            .labels
            .as_ref()
            .ok_or_else(|| "a regressor used as a classifier".to_string())?;
        let s = self.raw(x)?;
        let width = if self.k == 1 { 2 } else { self.k };
        let mut out = vec![0f32; x.rows * width];
        let mut picked = Vec::with_capacity(x.rows);
        let mut row_out = vec![0.0; width];
        for (r, row) in s.chunks(self.k).enumerate() {
            if self.k == 1 {
                let z = row[0];
                picked.push(usize::from(z > 0.0));
                if self.post == PostTransform::Probit {
                    row_out[0] = probit(z);
                    row_out[1] = 0.0;
                } else {
                    write_binary(z, self.post, SecondClass::Complement, &mut row_out);
                }
            } else {
                let has = vec![true; self.k];
                picked.push(first_max(row, &has));
                row_out.copy_from_slice(row);
                self.post.apply(&mut row_out);
            }
            for (o, v) in out[r * width..(r + 1) * width].iter_mut().zip(&row_out) {
                *o = *v as f32;
            }
        }
        Ok((
            Tensor::new(labels.pick(&picked), x.rows, 1),
            Tensor::new(Data::F32(out), x.rows, width),
        ))
    }
}
