//! A graph of classical ONNX-ML operators compiled for native evaluation.
//!
//! [`NativeGraph::compile`] checks every node once: an operator (or attribute value) with no
//! native implementation is collected with its node's name, so that the caller can list all of
//! them at once, fall back to ONNX Runtime, or refuse the model. Names are resolved to slots, so
//! running a batch is a walk over the nodes in order with no lookups by name.

use std::collections::HashMap;

use super::fused::{FusedLinear, FusedTrees};
use super::ops::{Attrs, Labels, Linear, NodeError, PostTransform, Trees, logistic, softmax, tensor_data};
use super::proto::{GraphProto, NodeProto};
use super::value::{Data, Tensor, Value};
use crate::kernel::{LinearKernel, Link};

/// The operators evaluated natively (all in the `ai.onnx.ml` domain but the last group, which
/// is in the default `ai.onnx` domain).
pub const NATIVE_OPERATORS: &[&str] = &[
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "LinearClassifier",
    "LinearRegressor",
    "Scaler",
    "Normalizer",
    "Imputer",
    "OneHotEncoder",
    "LabelEncoder",
    "ZipMap",
    "Cast",
    "Concat",
    "ArgMax",
    "Softmax",
    "Sigmoid",
    "Identity",
    "Reshape",
    "Flatten",
];

#[derive(Clone, Debug)]
enum Op {
    TreeClassifier(Box<Trees>),
    TreeRegressor(Box<Trees>),
    LinearClassifier(Linear),
    LinearRegressor(Linear),
    Scaler {
        offset: Vec<f64>,
        scale: Vec<f64>,
    },
    Normalizer(Norm),
    Imputer {
        floats: Vec<f64>,
        ints: Vec<i64>,
        replaced_float: f64,
        replaced_int: i64,
    },
    OneHot {
        cats: Cats,
        zeros: bool,
    },
    LabelEncoder(LabelMap),
    ZipMap {
        labels: Labels,
    },
    Cast {
        to: i32,
    },
    Concat,
    /// `keepdims` only changes `[N, 1]` into `[N]`, which rows × columns do not tell apart.
    ArgMax {
        last: bool,
    },
    Softmax,
    Sigmoid,
    Identity,
    /// Reshape and Flatten to `[N, -1]` (the only reshapes classical pipelines make).
    Rows,
}

#[derive(Clone, Copy, Debug)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Clone, Debug)]
enum Cats {
    Ints(HashMap<i64, usize>, usize),
    Strings(HashMap<String, usize>, usize),
}

#[derive(Clone, Debug)]
enum LabelKey {
    Str(HashMap<String, usize>),
    Int(HashMap<i64, usize>),
    /// Float keys by bit pattern (NaN keys match NaN).
    Float(HashMap<u32, usize>),
}

#[derive(Clone, Debug)]
enum LabelVals {
    Str(Vec<String>, String),
    Int(Vec<i64>, i64),
    Float(Vec<f32>, f32),
}

#[derive(Clone, Debug)]
struct LabelMap {
    keys: LabelKey,
    values: LabelVals,
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    name: String,
    op_type: String,
}

/// A graph whose every node runs natively.
#[derive(Clone, Debug)]
pub struct NativeGraph {
    steps: Vec<Step>,
    /// Graph inputs' slots, in the graph's input order (initializers excluded).
    inputs: Vec<(String, usize)>,
    outputs: Vec<(String, usize)>,
    constants: Vec<(usize, Value)>,
    n_slots: usize,
    /// Class labels of the graph's classifier (ZipMap's, else the first classifier's).
    labels: Option<Vec<String>>,
    /// Operator counts, for display.
    summary: Vec<(String, usize)>,
}

/// How a graph failed to compile natively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// Operators (or attribute values) with no native implementation: one entry per node,
    /// naming the operator and the node.
    Unsupported(Vec<String>),
    /// The graph is malformed.
    Invalid(String),
}

fn node_label(n: &NodeProto) -> String {
    if n.name().is_empty() {
        format!(
            "`{}` (node writing {})",
            n.op_type(),
            n.output.first().map_or("nothing", |s| s.as_str())
        )
    } else {
        format!("`{}` (node `{}`)", n.op_type(), n.name())
    }
}

impl NativeGraph {
    /// Compiles `graph`. `double_inputs`: names of graph inputs that are double tensors (tree
    /// thresholds then compare in double precision).
    pub fn compile(graph: &GraphProto) -> Result<NativeGraph, CompileError> {
        let mut slots: HashMap<String, usize> = HashMap::new();
        let slot_of = |name: &str, slots: &mut HashMap<String, usize>| -> usize {
            let next = slots.len();
            *slots.entry(name.to_string()).or_insert(next)
        };
        let mut constants = Vec::new();
        let mut double_names: std::collections::HashSet<String> = std::collections::HashSet::new();
        for init in &graph.initializer {
            let data = tensor_data(init).map_err(|e| match e {
                NodeError::Unsupported(m) | NodeError::Invalid(m) => {
                    CompileError::Invalid(format!("initializer: {m}"))
                }
            })?;
            let len = data.len();
            let s = slot_of(init.name(), &mut slots);
            constants.push((s, Value::Tensor(Tensor::new(data, 1, len))));
        }
        let init_names: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name()).collect();
        let mut inputs = Vec::new();
        for vi in &graph.input {
            if init_names.contains(vi.name()) {
                continue;
            }
            if super::elem_type(vi) == Some(11) {
                double_names.insert(vi.name().to_string());
            }
            let s = slot_of(vi.name(), &mut slots);
            inputs.push((vi.name().to_string(), s));
        }
        let mut unsupported = Vec::new();
        let mut steps = Vec::new();
        let mut summary: Vec<(String, usize)> = Vec::new();
        let mut labels: Option<Vec<String>> = None;
        let mut zipmap_labels: Option<Vec<String>> = None;
        for node in &graph.node {
            let domain = node.domain();
            let known_domain = matches!(domain, "" | "ai.onnx" | "ai.onnx.ml");
            let double_input = node.input.first().is_some_and(|i| double_names.contains(i));
            let op = if known_domain {
                compile_node(node, double_input, &constants, &slots)
            } else {
                Err(NodeError::Unsupported(format!("domain `{domain}`")))
            };
            match op {
                Ok(op) => {
                    match &op {
                        Op::TreeClassifier(t) if labels.is_none() => labels = t.labels().map(Labels::texts),
                        Op::LinearClassifier(l) if labels.is_none() => labels = l.labels().map(Labels::texts),
                        Op::ZipMap { labels: l } if zipmap_labels.is_none() => {
                            zipmap_labels = Some(l.texts())
                        }
                        _ => {}
                    }
                    // Cast propagates double-ness of its input only when it casts to double.
                    if let Op::Cast { to: 11 } = op {
                        node.output.iter().for_each(|o| {
                            double_names.insert(o.clone());
                        });
                    }
                    let step = Step {
                        op,
                        inputs: node.input.iter().map(|i| slot_of(i, &mut slots)).collect(),
                        outputs: node.output.iter().map(|o| slot_of(o, &mut slots)).collect(),
                        name: node.name().to_string(),
                        op_type: node.op_type().to_string(),
                    };
                    match summary.iter_mut().find(|(n, _)| *n == step.op_type) {
                        Some((_, c)) => *c += 1,
                        None => summary.push((step.op_type.clone(), 1)),
                    }
                    steps.push(step);
                }
                Err(NodeError::Unsupported(why)) => {
                    let label = node_label(node);
                    unsupported.push(if why.is_empty() {
                        label
                    } else {
                        format!("{label}: {why}")
                    });
                }
                Err(NodeError::Invalid(why)) => {
                    return Err(CompileError::Invalid(format!("{}: {why}", node_label(node))));
                }
            }
        }
        if !unsupported.is_empty() {
            return Err(CompileError::Unsupported(unsupported));
        }
        let outputs = graph
            .output
            .iter()
            .map(|o| (o.name().to_string(), slot_of(o.name(), &mut slots)))
            .collect();
        Ok(NativeGraph {
            steps,
            inputs,
            outputs,
            constants,
            n_slots: slots.len(),
            labels: zipmap_labels.or(labels),
            summary,
        })
    }

    /// The class labels of the graph's classifier, if any (ZipMap's, else the classifier's).
    pub fn labels(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }

    /// Operators and how many nodes use each, in graph order (`TreeEnsembleClassifier ×1, ...`).
    pub fn summary(&self) -> String {
        self.summary
            .iter()
            .map(|(op, n)| {
                if *n == 1 {
                    op.clone()
                } else {
                    format!("{op} ×{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs the graph on `feeds` (one tensor per graph input, in graph input order) and returns
    /// the graph outputs by name.
    pub fn run(&self, feeds: Vec<Tensor>) -> Result<Vec<(String, Value)>, String> {
        if feeds.len() != self.inputs.len() {
            return Err(format!(
                "{} inputs given for a graph of {}",
                feeds.len(),
                self.inputs.len()
            ));
        }
        let mut env: Vec<Option<Value>> = vec![None; self.n_slots];
        for (s, v) in &self.constants {
            env[*s] = Some(v.clone());
        }
        for ((_, s), t) in self.inputs.iter().zip(feeds) {
            env[*s] = Some(Value::Tensor(t));
        }
        for step in &self.steps {
            let args: Vec<&Value> = step
                .inputs
                .iter()
                .map(|&s| env[s].as_ref())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    format!(
                        "node `{}` ({}) reads a value no earlier node wrote",
                        step.name, step.op_type
                    )
                })?;
            let results =
                eval(&step.op, &args).map_err(|e| format!("node `{}` ({}): {e}", step.name, step.op_type))?;
            for (s, v) in step.outputs.iter().zip(results) {
                env[*s] = Some(v);
            }
        }
        self.outputs
            .iter()
            .map(|(name, s)| {
                env[*s]
                    .take()
                    .map(|v| (name.clone(), v))
                    .ok_or_else(|| format!("no node writes the graph output `{name}`"))
            })
            .collect()
    }
}

impl NativeGraph {
    /// The graph compiled into one linear pass, when the path from its one input to the graph
    /// output `output` is the standard chain of a linear model (see [`super::fused`]):
    /// `LinearClassifier` (LOGISTIC with one score row or two opposite ones, or SOFTMAX) or
    /// `LinearRegressor` (one target, no post-transform), then only `Identity`, `Cast` to
    /// float, reshapes to rows, at most one L1 `Normalizer` and, last, `ZipMap`. `labels`: the
    /// model's class labels, in its probability-column order. Nodes off that path (such as a
    /// cast of the label output) do not matter: predictions read only `output`.
    pub(crate) fn fused_linear(
        &self,
        output: &str,
        round_inputs: bool,
        labels: Option<&[String]>,
    ) -> Option<FusedLinear> {
        let [(_, input)] = self.inputs.as_slice() else {
            return None;
        };
        let mut slot = self.outputs.iter().find(|(n, _)| n == output)?.1;
        let mut normalize_l1 = false;
        let mut zipmap: Option<Vec<String>> = None;
        let mut first = true;
        // Each node at most once: a malformed graph with a cycle ends the walk.
        for _ in 0..=self.steps.len() {
            let writers: Vec<&Step> = self.steps.iter().filter(|s| s.outputs.contains(&slot)).collect();
            let [step] = writers.as_slice() else {
                return None;
            };
            let from = *step.inputs.first()?;
            match &step.op {
                Op::ZipMap { labels } if first => zipmap = Some(labels.texts()),
                Op::Normalizer(Norm::L1) if !normalize_l1 => normalize_l1 = true,
                Op::Identity | Op::Rows | Op::Cast { to: 1 } => {}
                Op::LinearClassifier(l) if from == *input && step.outputs.get(1) == Some(&slot) => {
                    let (coef, intercepts, post) = l.parts();
                    let k = intercepts.len();
                    let f = coef.len() / k.max(1);
                    let kernel = match (k, post) {
                        (1, PostTransform::Logistic) => {
                            LinearKernel::from_score_rows(coef, intercepts, Link::Logistic)
                        }
                        // skl2onnx's binary form: the negative class's row is the positive one's
                        // negation, so its score is exactly -z and the pair is [σ(-z), σ(z)].
                        (2, PostTransform::Logistic)
                            if coef[..f]
                                .iter()
                                .zip(&coef[f..])
                                .all(|(a, b)| (-a).to_bits() == b.to_bits())
                                && (-intercepts[0]).to_bits() == intercepts[1].to_bits() =>
                        {
                            LinearKernel::from_score_rows(&coef[f..], &intercepts[1..], Link::Logistic)
                        }
                        (k, PostTransform::Softmax) if k >= 2 => {
                            LinearKernel::from_score_rows(coef, intercepts, Link::Softmax)
                        }
                        _ => None,
                    }?;
                    let labels = labels?;
                    if labels.len() != kernel.n_outputs() {
                        return None;
                    }
                    let columns = zipmap_columns(labels, zipmap.as_deref())?;
                    return Some(FusedLinear::new(kernel, round_inputs, normalize_l1, columns));
                }
                Op::LinearRegressor(l)
                    if from == *input
                        && step.outputs.first() == Some(&slot)
                        && !normalize_l1
                        && zipmap.is_none() =>
                {
                    let (coef, intercepts, post) = l.parts();
                    if post != PostTransform::None || labels.is_some() {
                        return None;
                    }
                    let kernel = LinearKernel::from_score_rows(coef, intercepts, Link::Identity)?;
                    return Some(FusedLinear::new(kernel, round_inputs, false, None));
                }
                _ => return None,
            }
            first = false;
            slot = from;
        }
        None
    }
}

impl NativeGraph {
    /// The graph compiled into one tree-ensemble pass, when the path from its one input (of
    /// `n_inputs` columns) to the graph output `output` is the standard chain of an exported
    /// tree ensemble (see [`super::fused`]): `TreeEnsembleClassifier`'s probabilities or
    /// `TreeEnsembleRegressor`'s values, then only `Identity`, `Cast` to float, reshapes to
    /// rows and, last, `ZipMap` (classifiers). `labels`: the model's class labels, in its
    /// probability-column order.
    pub(crate) fn fused_trees(
        &self,
        output: &str,
        n_inputs: usize,
        round_inputs: bool,
        labels: Option<&[String]>,
    ) -> Option<FusedTrees> {
        let [(_, input)] = self.inputs.as_slice() else {
            return None;
        };
        let mut slot = self.outputs.iter().find(|(n, _)| n == output)?.1;
        let mut zipmap: Option<Vec<String>> = None;
        let mut first = true;
        // Each node at most once: a malformed graph with a cycle ends the walk.
        for _ in 0..=self.steps.len() {
            let writers: Vec<&Step> = self.steps.iter().filter(|s| s.outputs.contains(&slot)).collect();
            let [step] = writers.as_slice() else {
                return None;
            };
            let from = *step.inputs.first()?;
            match &step.op {
                Op::ZipMap { labels } if first => zipmap = Some(labels.texts()),
                Op::Identity | Op::Rows | Op::Cast { to: 1 } => {}
                Op::TreeClassifier(t) if from == *input && step.outputs.get(1) == Some(&slot) => {
                    let labels = labels?;
                    if labels.len() != t.n_scores() {
                        return None;
                    }
                    let columns = zipmap_columns(labels, zipmap.as_deref())?;
                    return FusedTrees::new((**t).clone(), n_inputs, round_inputs, columns);
                }
                Op::TreeRegressor(t)
                    if from == *input
                        && step.outputs.first() == Some(&slot)
                        && zipmap.is_none()
                        && labels.is_none() =>
                {
                    return FusedTrees::new((**t).clone(), n_inputs, round_inputs, None);
                }
                _ => return None,
            }
            first = false;
            slot = from;
        }
        None
    }
}

fn norm_of(a: &Attrs<'_>) -> Result<Norm, NodeError> {
    match a_string(a, "norm", "MAX").as_str() {
        "MAX" => Ok(Norm::Max),
        "L1" => Ok(Norm::L1),
        "L2" => Ok(Norm::L2),
        other => Err(NodeError::Invalid(format!("unknown norm `{other}`"))),
    }
}

fn a_string(a: &Attrs<'_>, name: &str, default: &str) -> String {
    a.get_string(name, default)
}

fn compile_node(
    node: &NodeProto,
    double_input: bool,
    constants: &[(usize, Value)],
    slots: &HashMap<String, usize>,
) -> Result<Op, NodeError> {
    let a = Attrs::of(node);
    let ml = node.domain() == "ai.onnx.ml";
    let op = node.op_type();
    Ok(match (ml, op) {
        (true, "TreeEnsembleClassifier") => {
            Op::TreeClassifier(Box::new(Trees::compile(node, true, double_input)?))
        }
        (true, "TreeEnsembleRegressor") => {
            Op::TreeRegressor(Box::new(Trees::compile(node, false, double_input)?))
        }
        (true, "LinearClassifier") => Op::LinearClassifier(Linear::compile(node, true)?),
        (true, "LinearRegressor") => Op::LinearRegressor(Linear::compile(node, false)?),
        (true, "Scaler") => Op::Scaler {
            offset: a.get_floats("offset").into_iter().map(f64::from).collect(),
            scale: a.get_floats("scale").into_iter().map(f64::from).collect(),
        },
        (true, "Normalizer") => Op::Normalizer(norm_of(&a)?),
        (true, "Imputer") => Op::Imputer {
            floats: a
                .get_floats("imputed_value_floats")
                .into_iter()
                .map(f64::from)
                .collect(),
            ints: a.get_ints("imputed_value_int64s"),
            replaced_float: f64::from(a.get_float("replaced_value_float", 0.0)),
            replaced_int: a.get_int("replaced_value_int64", 0),
        },
        (true, "OneHotEncoder") => {
            let strings = a.get_strings("cats_strings");
            let ints = a.get_ints("cats_int64s");
            let cats = if !strings.is_empty() {
                let n = strings.len();
                let mut m = HashMap::new();
                for (i, s) in strings.into_iter().enumerate() {
                    m.entry(s).or_insert(i);
                }
                Cats::Strings(m, n)
            } else if !ints.is_empty() {
                let n = ints.len();
                let mut m = HashMap::new();
                for (i, s) in ints.into_iter().enumerate() {
                    m.entry(s).or_insert(i);
                }
                Cats::Ints(m, n)
            } else {
                return Err(NodeError::Invalid(
                    "OneHotEncoder has neither cats_strings nor cats_int64s".into(),
                ));
            };
            Op::OneHot {
                cats,
                zeros: a.get_int("zeros", 1) != 0,
            }
        }
        (true, "LabelEncoder") => Op::LabelEncoder(label_map(&a)?),
        (true, "ZipMap") => Op::ZipMap {
            labels: Labels::of(&a)?,
        },
        (false, "Cast") => {
            let to = i32::try_from(a.get_int("to", 0)).unwrap_or(0);
            if !matches!(to, 1 | 6 | 7 | 8 | 9 | 11) {
                return Err(NodeError::Unsupported(format!("cast to element type {to}")));
            }
            Op::Cast { to }
        }
        (false, "Concat") => {
            let axis = a.get_int("axis", 1);
            if axis != 1 && axis != -1 {
                return Err(NodeError::Unsupported(format!(
                    "axis {axis} (only 1 runs natively)"
                )));
            }
            Op::Concat
        }
        (false, "ArgMax") => {
            let axis = a.get_int("axis", 0);
            if axis != 1 && axis != -1 {
                return Err(NodeError::Unsupported(format!(
                    "axis {axis} (only 1 runs natively)"
                )));
            }
            Op::ArgMax {
                last: a.get_int("select_last_index", 0) != 0,
            }
        }
        (false, "Softmax") => {
            let axis = a.get_int("axis", -1);
            if axis != 1 && axis != -1 {
                return Err(NodeError::Unsupported(format!(
                    "axis {axis} (only the last axis runs natively)"
                )));
            }
            Op::Softmax
        }
        (false, "Sigmoid") => Op::Sigmoid,
        (false, "Identity") => Op::Identity,
        (false, "Flatten") => {
            if a.get_int("axis", 1) != 1 {
                return Err(NodeError::Unsupported("axis other than 1".into()));
            }
            Op::Rows
        }
        (false, "Reshape") => {
            // Only reshapes of a batch into rows: shape [-1, K] or [N, -1] style constants
            // whose first dimension is -1 or 0 (keep) and which ask for two dimensions.
            let shape = node
                .input
                .get(1)
                .and_then(|n| slots.get(n))
                .and_then(|s| constants.iter().find(|(c, _)| c == s))
                .map(|(_, v)| v);
            match shape {
                Some(Value::Tensor(Tensor {
                    data: Data::I64(d), ..
                })) if d.len() == 2 && (d[0] == -1 || d[0] == 0) => Op::Rows,
                _ => {
                    return Err(NodeError::Unsupported(
                        "a shape other than a constant [-1, K]".into(),
                    ));
                }
            }
        }
        _ => return Err(NodeError::Unsupported(String::new())),
    })
}

fn label_map(a: &Attrs<'_>) -> Result<LabelMap, NodeError> {
    // Opset 1: classes_strings maps string ↔ index.
    let classes = a.get_strings("classes_strings");
    if !classes.is_empty() {
        let idx: Vec<i64> = (0..classes.len() as i64).collect();
        return Ok(if a.has_attr("default_string") && !a.has_attr("default_int64") {
            LabelMap {
                keys: LabelKey::Int(idx.iter().map(|&i| (i, i as usize)).collect()),
                values: LabelVals::Str(classes, a.get_string("default_string", "_Unused")),
            }
        } else {
            LabelMap {
                keys: LabelKey::Str(classes.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect()),
                values: LabelVals::Int(idx, a.get_int("default_int64", -1)),
            }
        });
    }
    let keys = {
        let s = a.get_strings("keys_strings");
        let i = a.get_ints("keys_int64s");
        let f = a.get_floats("keys_floats");
        if !s.is_empty() {
            LabelKey::Str(s.into_iter().enumerate().map(|(i, k)| (k, i)).rev().collect())
        } else if !i.is_empty() {
            LabelKey::Int(i.into_iter().enumerate().map(|(i, k)| (k, i)).rev().collect())
        } else if !f.is_empty() {
            LabelKey::Float(
                f.into_iter()
                    .enumerate()
                    .map(|(i, k)| (canonical_bits(k), i))
                    .rev()
                    .collect(),
            )
        } else {
            return Err(NodeError::Unsupported(
                "keys given only as a tensor (keys_tensor)".into(),
            ));
        }
    };
    let values = {
        let s = a.get_strings("values_strings");
        let i = a.get_ints("values_int64s");
        let f = a.get_floats("values_floats");
        if !s.is_empty() {
            LabelVals::Str(s, a.get_string("default_string", "_Unused"))
        } else if !i.is_empty() {
            LabelVals::Int(i, a.get_int("default_int64", -1))
        } else if !f.is_empty() {
            LabelVals::Float(f, a.get_float("default_float", -0.0))
        } else {
            return Err(NodeError::Unsupported(
                "values given only as a tensor (values_tensor)".into(),
            ));
        }
    };
    Ok(LabelMap { keys, values })
}

fn canonical_bits(f: f32) -> u32 {
    if f.is_nan() {
        f32::NAN.to_bits()
    } else {
        (f + 0.0).to_bits()
    }
}

fn tensor(v: &Value) -> Result<&Tensor, String> {
    match v {
        Value::Tensor(t) => Ok(t),
        Value::Maps { .. } => Err("expected a tensor, got ZipMap's maps".into()),
    }
}

fn arg<'a>(args: &[&'a Value], i: usize) -> Result<&'a Tensor, String> {
    args.get(i)
        .ok_or_else(|| format!("input {i} is missing"))
        .and_then(|v| tensor(v))
}

/// Numeric elements as float (`Scaler`, `Normalizer` and friends return float whatever they read).
fn as_float_result(rows: usize, cols: usize, v: Vec<f64>) -> Value {
    Value::Tensor(Tensor::new(
        Data::F32(v.into_iter().map(|x| x as f32).collect()),
        rows,
        cols,
    ))
}

fn numeric(t: &Tensor) -> Result<Vec<f64>, String> {
    if let Data::Str(_) = t.data {
        return Err("expected a numeric tensor, got strings".into());
    }
    Ok(t.to_f64())
}

fn eval(op: &Op, args: &[&Value]) -> Result<Vec<Value>, String> {
    match op {
        Op::TreeClassifier(t) => {
            let (l, p) = t.classify(arg(args, 0)?)?;
            Ok(vec![Value::Tensor(l), Value::Tensor(p)])
        }
        Op::TreeRegressor(t) => Ok(vec![Value::Tensor(t.regress(arg(args, 0)?)?)]),
        Op::LinearClassifier(m) => {
            let (l, p) = m.classify(arg(args, 0)?)?;
            Ok(vec![Value::Tensor(l), Value::Tensor(p)])
        }
        Op::LinearRegressor(m) => Ok(vec![Value::Tensor(m.regress(arg(args, 0)?)?)]),
        Op::Scaler { offset, scale } => {
            let x = arg(args, 0)?;
            let mut v = numeric(x)?;
            let pick = |p: &[f64], c: usize, d: f64| {
                if p.len() == 1 {
                    p[0]
                } else {
                    p.get(c).copied().unwrap_or(d)
                }
            };
            if (offset.len() > 1 && offset.len() != x.cols) || (scale.len() > 1 && scale.len() != x.cols) {
                return Err(format!(
                    "{} offsets and {} scales for {} columns",
                    offset.len(),
                    scale.len(),
                    x.cols
                ));
            }
            for (i, val) in v.iter_mut().enumerate() {
                let c = i % x.cols.max(1);
                // In float, as ONNX Runtime computes it.
                let o = pick(offset, c, 0.0) as f32;
                let s = pick(scale, c, 1.0) as f32;
                *val = f64::from((*val as f32 - o) * s);
            }
            Ok(vec![as_float_result(x.rows, x.cols, v)])
        }
        Op::Normalizer(norm) => {
            let x = arg(args, 0)?;
            let mut v = numeric(x)?;
            for row in v.chunks_mut(x.cols.max(1)) {
                let d = match norm {
                    Norm::Max => row.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Norm::L1 => row.iter().map(|x| x.abs()).sum(),
                    Norm::L2 => row.iter().map(|x| x * x).sum::<f64>().sqrt(),
                };
                if d != 0.0 {
                    row.iter_mut().for_each(|x| *x /= d);
                }
            }
            Ok(vec![as_float_result(x.rows, x.cols, v)])
        }
        Op::Imputer {
            floats,
            ints,
            replaced_float,
            replaced_int,
        } => {
            let x = arg(args, 0)?;
            let cols = x.cols.max(1);
            let pick = |c: usize| if floats.len() == 1 { floats[0] } else { floats[c] };
            let data = match &x.data {
                Data::F32(v) => {
                    check_len(floats.len(), cols)?;
                    Data::F32(
                        v.iter()
                            .enumerate()
                            .map(|(i, &e)| {
                                let hit = if replaced_float.is_nan() {
                                    e.is_nan()
                                } else {
                                    f64::from(e) == *replaced_float
                                };
                                if hit { pick(i % cols) as f32 } else { e }
                            })
                            .collect(),
                    )
                }
                Data::F64(v) => {
                    check_len(floats.len(), cols)?;
                    Data::F64(
                        v.iter()
                            .enumerate()
                            .map(|(i, &e)| {
                                let hit = if replaced_float.is_nan() {
                                    e.is_nan()
                                } else {
                                    e == *replaced_float
                                };
                                if hit { f64::from(pick(i % cols) as f32) } else { e }
                            })
                            .collect(),
                    )
                }
                Data::I64(v) => {
                    check_len(ints.len(), cols)?;
                    let pick = |c: usize| if ints.len() == 1 { ints[0] } else { ints[c] };
                    Data::I64(
                        v.iter()
                            .enumerate()
                            .map(|(i, &e)| if e == *replaced_int { pick(i % cols) } else { e })
                            .collect(),
                    )
                }
                Data::Str(_) => return Err("Imputer reads numbers, got strings".into()),
            };
            Ok(vec![Value::Tensor(Tensor::new(data, x.rows, x.cols))])
        }
        Op::OneHot { cats, zeros } => {
            let x = arg(args, 0)?;
            let (index, k): (Vec<Option<usize>>, usize) = match (cats, &x.data) {
                (Cats::Strings(m, k), Data::Str(v)) => (v.iter().map(|s| m.get(s).copied()).collect(), *k),
                (Cats::Ints(_, k), Data::Str(_)) => {
                    return Err(format!("OneHotEncoder with {k} int64 categories got strings"));
                }
                (Cats::Strings(..), _) => {
                    return Err("OneHotEncoder with string categories got numbers".into());
                }
                (Cats::Ints(m, k), _) => (
                    x.to_f64().iter().map(|&f| m.get(&(f as i64)).copied()).collect(),
                    *k,
                ),
            };
            let mut out = vec![0f32; index.len() * k];
            for (i, hit) in index.iter().enumerate() {
                match hit {
                    Some(c) => out[i * k + c] = 1.0,
                    None if !zeros => {
                        return Err("a value is not among the categories and `zeros` is 0".into());
                    }
                    None => {}
                }
            }
            Ok(vec![Value::Tensor(Tensor::new(
                Data::F32(out),
                x.rows,
                x.cols * k,
            ))])
        }
        Op::LabelEncoder(map) => {
            let x = arg(args, 0)?;
            let idx: Vec<Option<usize>> = match (&map.keys, &x.data) {
                (LabelKey::Str(m), Data::Str(v)) => v.iter().map(|s| m.get(s).copied()).collect(),
                (LabelKey::Int(m), Data::I64(v)) => v.iter().map(|i| m.get(i).copied()).collect(),
                (LabelKey::Float(m), Data::F32(v)) => {
                    v.iter().map(|f| m.get(&canonical_bits(*f)).copied()).collect()
                }
                (_, d) => {
                    return Err(format!(
                        "LabelEncoder's keys do not match its {} input",
                        d.type_name()
                    ));
                }
            };
            let data = match &map.values {
                LabelVals::Str(v, d) => Data::Str(
                    idx.iter()
                        .map(|i| i.and_then(|i| v.get(i)).unwrap_or(d).clone())
                        .collect(),
                ),
                LabelVals::Int(v, d) => Data::I64(
                    idx.iter()
                        .map(|i| *i.and_then(|i| v.get(i)).unwrap_or(d))
                        .collect(),
                ),
                LabelVals::Float(v, d) => Data::F32(
                    idx.iter()
                        .map(|i| *i.and_then(|i| v.get(i)).unwrap_or(d))
                        .collect(),
                ),
            };
            Ok(vec![Value::Tensor(Tensor::new(data, x.rows, x.cols))])
        }
        Op::ZipMap { labels } => {
            let x = arg(args, 0)?;
            if x.cols != labels.len() {
                return Err(format!(
                    "ZipMap has {} labels for {} columns",
                    labels.len(),
                    x.cols
                ));
            }
            let probabilities = match &x.data {
                Data::F32(v) => v.clone(),
                other => return Err(format!("ZipMap reads floats, got {}", other.type_name())),
            };
            Ok(vec![Value::Maps {
                labels: labels.texts(),
                int_keys: matches!(labels, Labels::Ints(_)),
                probabilities,
                rows: x.rows,
            }])
        }
        Op::Cast { to } => {
            let x = arg(args, 0)?;
            Ok(vec![Value::Tensor(Tensor::new(
                cast(&x.data, *to)?,
                x.rows,
                x.cols,
            ))])
        }
        Op::Concat => {
            let parts: Vec<&Tensor> = args.iter().map(|v| tensor(v)).collect::<Result<_, _>>()?;
            let rows = parts.first().map_or(0, |t| t.rows);
            if parts.iter().any(|t| t.rows != rows) {
                return Err("inputs have different numbers of rows".into());
            }
            let cols: usize = parts.iter().map(|t| t.cols).sum();
            // Every input must hold the first one's element type (`concat` checks).
            macro_rules! concat_as {
                ($variant:ident) => {
                    Data::$variant(concat(&parts, rows, |d| match d {
                        Data::$variant(v) => Some(v.as_slice()),
                        _ => None,
                    })?)
                };
            }
            let data = match parts.first().map(|t| &t.data) {
                Some(Data::F32(_)) => concat_as!(F32),
                Some(Data::F64(_)) => concat_as!(F64),
                Some(Data::I64(_)) => concat_as!(I64),
                Some(Data::Str(_)) => concat_as!(Str),
                None => return Err("no inputs".into()),
            };
            Ok(vec![Value::Tensor(Tensor::new(data, rows, cols))])
        }
        Op::ArgMax { last } => {
            let x = arg(args, 0)?;
            let v = numeric(x)?;
            let idx = v
                .chunks(x.cols.max(1))
                .map(|row| {
                    let mut best = 0;
                    for (i, &e) in row.iter().enumerate() {
                        if e > row[best] || (*last && e == row[best]) {
                            best = i;
                        }
                    }
                    best as i64
                })
                .collect();
            Ok(vec![Value::Tensor(Tensor::new(Data::I64(idx), x.rows, 1))])
        }
        Op::Softmax => {
            let x = arg(args, 0)?;
            let mut v = numeric(x)?;
            v.chunks_mut(x.cols.max(1)).for_each(softmax);
            Ok(vec![same_float_type(x, v)])
        }
        Op::Sigmoid => {
            let x = arg(args, 0)?;
            let v = numeric(x)?.into_iter().map(logistic).collect();
            Ok(vec![same_float_type(x, v)])
        }
        Op::Identity | Op::Rows => {
            let x = arg(args, 0)?;
            Ok(vec![Value::Tensor(x.clone())])
        }
    }
}

fn check_len(n: usize, cols: usize) -> Result<(), String> {
    if n == 1 || n == cols {
        Ok(())
    } else {
        Err(format!("{n} imputed values for {cols} columns"))
    }
}

fn same_float_type(x: &Tensor, v: Vec<f64>) -> Value {
    match x.data {
        Data::F64(_) => Value::Tensor(Tensor::new(Data::F64(v), x.rows, x.cols)),
        _ => as_float_result(x.rows, x.cols, v),
    }
}

fn concat<T: Clone>(
    parts: &[&Tensor],
    rows: usize,
    get: impl Fn(&Data) -> Option<&[T]>,
) -> Result<Vec<T>, String> {
    let slices: Vec<&[T]> = parts
        .iter()
        .map(|t| get(&t.data).ok_or_else(|| "inputs have different element types".to_string()))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(slices.iter().map(|s| s.len()).sum());
    for r in 0..rows {
        for (t, s) in parts.iter().zip(&slices) {
            out.extend_from_slice(&s[r * t.cols..(r + 1) * t.cols]);
        }
    }
    Ok(out)
}

fn cast(d: &Data, to: i32) -> Result<Data, String> {
    let floats = |d: &Data| -> Result<Vec<f64>, String> {
        Ok(match d {
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Str(v) => v
                .iter()
                .map(|s| s.trim().parse::<f64>().unwrap_or(f64::NAN))
                .collect(),
        })
    };
    Ok(match to {
        1 => match d {
            Data::F32(v) => Data::F32(v.clone()),
            _ => Data::F32(floats(d)?.into_iter().map(|x| x as f32).collect()),
        },
        11 => Data::F64(floats(d)?),
        6 | 7 | 9 => match d {
            Data::I64(v) if to == 9 => Data::I64(v.iter().map(|&x| i64::from(x != 0)).collect()),
            Data::I64(v) => Data::I64(v.clone()),
            Data::Str(v) => Data::I64(
                v.iter()
                    .map(|s| {
                        s.trim()
                            .parse::<i64>()
                            .map_err(|_| format!("cannot cast `{s}` to an integer"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ if to == 9 => Data::I64(floats(d)?.into_iter().map(|x| i64::from(x != 0.0)).collect()),
            // Truncation toward zero, as a C cast.
            _ => Data::I64(floats(d)?.into_iter().map(|x| x as i64).collect()),
        },
        8 => Data::Str(match d {
            Data::Str(v) => v.clone(),
            Data::I64(v) => v.iter().map(i64::to_string).collect(),
            Data::F32(v) => v.iter().map(|x| x.to_string()).collect(),
            Data::F64(v) => v.iter().map(|x| x.to_string()).collect(),
        }),
        other => return Err(format!("cast to element type {other}")),
    })
}

/// The fused passes' output order: for each of the model's `labels`, its column in the
/// `ZipMap`'s label order (`Some(None)`: no ZipMap, the model's order); `None` when the ZipMap
/// does not name exactly those labels (the graph then runs operator by operator).
fn zipmap_columns(labels: &[String], zipmap: Option<&[String]>) -> Option<Option<Vec<usize>>> {
    match zipmap {
        Some(z) if z.len() == labels.len() => Some(Some(
            labels
                .iter()
                .map(|l| z.iter().position(|m| m == l))
                .collect::<Option<Vec<_>>>()?,
        )),
        Some(_) => None,
        None => Some(None),
    }
}
