//! Native evaluation of ONNX-ML graphs (feature `onnx-native`, no ONNX Runtime) against the
//! outputs Python onnxruntime recorded for every fixture (scripts/reference/onnx_fixtures.py,
//! tests/fixtures/onnx/README.md), and per operator attribute against values worked out by hand.
#![cfg(feature = "onnx-native")]

use crate::onnx_fixtures;
use crate::onnx_graphs;

use ml_core::onnx_ml::proto::{AttributeProto, GraphProto};
use ml_core::onnx_ml::{Data, NativeGraph, NativeOnnxModel, Tensor, Value as OnnxValue};
use ml_core::{DataType, Error, Field, Frame, Model, OutputSpec, Schema, Value};
use onnx_fixtures::{ALL, Fixture, fixture, fixtures, pipeline_lr_schema};
use onnx_graphs::*;

/// The largest difference from onnxruntime's recorded output, for probabilities or values
/// (values relative to their magnitude when above 1: float32 keeps ~7 significant digits).
fn max_difference(model: &dyn Model, fx: &Fixture) -> f64 {
    let frame = Frame::from_rows(model.schema().clone(), &fx.rows).unwrap();
    let p = model.predict(&frame).unwrap();
    assert_eq!(p.len(), fx.rows.len(), "{}", fx.name);
    let mut worst = 0f64;
    if fx.task == "regression" {
        assert_eq!(model.output(), &OutputSpec::Regression);
        for (r, &v) in p.values().unwrap().iter().enumerate() {
            let ort = fx.onnxruntime.values[r];
            worst = worst.max((v - ort).abs() / ort.abs().max(1.0));
        }
        return worst;
    }
    assert_eq!(model.output().labels(), fx.labels.as_slice(), "{}", fx.name);
    let probs = p.probabilities().unwrap();
    for r in 0..fx.rows.len() {
        for c in 0..fx.labels.len() {
            worst = worst.max((probs[[r, c]] - fx.onnxruntime.probabilities[r][c]).abs());
        }
        let mut sorted = fx.onnxruntime.probabilities[r].clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 1e-5 {
            assert_eq!(
                p.label(r),
                Some(fx.onnxruntime.label[r].as_str()),
                "{} row {r}",
                fx.name
            );
        }
    }
    worst
}

#[test]
fn every_fixture_matches_the_recorded_onnxruntime_output_within_1e_6() {
    for name in ALL {
        let fx = fixture(name);
        let model = NativeOnnxModel::load(fixtures().join(format!("{name}.onnx")), None, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let worst = max_difference(&model, &fx);
        eprintln!(
            "{name}: max |native - onnxruntime| = {worst:.2e} ({})",
            model.graph().summary()
        );
        assert!(worst <= 1e-6, "{name}: max |native - onnxruntime| = {worst:e}");
    }
}

#[test]
fn categorical_fields_feed_the_pipelines_string_inputs() {
    let fx = fixture("pipeline_lr");
    let schema = pipeline_lr_schema();
    let model = NativeOnnxModel::load(fixtures().join("pipeline_lr.onnx"), Some(schema), None).unwrap();
    let worst = max_difference(&model, &fx);
    assert!(worst <= 1e-6, "{worst:e}");
}

// ---------------------------------------------------------------------------------------------
// Hand-built graphs: one per operator attribute combination, with expectations worked out by
// hand.

fn run1(g: &GraphProto, x: Tensor) -> Vec<OnnxValue> {
    let compiled = NativeGraph::compile(g).unwrap();
    compiled
        .run(vec![x])
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

fn floats(v: &OnnxValue) -> Vec<f32> {
    match v {
        OnnxValue::Tensor(Tensor {
            data: Data::F32(d), ..
        }) => d.clone(),
        other => panic!("not floats: {other:?}"),
    }
}

fn f32s(rows: &[&[f32]]) -> Tensor {
    let cols = rows[0].len();
    Tensor::new(
        Data::F32(rows.iter().flat_map(|r| r.iter().copied()).collect()),
        rows.len(),
        cols,
    )
}

#[test]
fn every_split_mode_and_missing_value_track_sends_rows_the_specified_way() {
    let below = 0.5f32.next_down();
    let above = 0.5f32.next_up();
    let x = f32s(&[&[below], &[0.5], &[above], &[f32::NAN]]);
    // (mode, tracks_true, expected per row: 10 = true branch, 20 = false branch)
    let cases: [(&str, Option<i64>, [f32; 4]); 8] = [
        ("BRANCH_LEQ", None, [10.0, 10.0, 20.0, 20.0]),
        ("BRANCH_LEQ", Some(1), [10.0, 10.0, 20.0, 10.0]),
        ("BRANCH_LT", None, [10.0, 20.0, 20.0, 20.0]),
        ("BRANCH_LT", Some(1), [10.0, 20.0, 20.0, 10.0]),
        ("BRANCH_GTE", None, [20.0, 10.0, 10.0, 20.0]),
        ("BRANCH_GTE", Some(1), [20.0, 10.0, 10.0, 10.0]),
        ("BRANCH_GT", None, [20.0, 20.0, 10.0, 20.0]),
        ("BRANCH_GT", Some(1), [20.0, 20.0, 10.0, 10.0]),
    ];
    for (mode, tracks, want) in cases {
        let y = run1(&one_split(mode, tracks, vec![]), x.clone());
        assert_eq!(floats(&y[0]), want, "{mode} tracks_true={tracks:?}");
    }
}

#[test]
fn regressor_aggregates_base_values_and_post_transforms() {
    let x = f32s(&[&[0.0], &[1.0]]);
    // Two identical trees: SUM doubles, AVERAGE keeps; base value added after.
    let two_trees = |agg: &str, base: f32| {
        let mut g = one_split("BRANCH_LEQ", None, vec![]);
        let n = &mut g.node[0];
        n.attribute
            .retain(|a| !a.name().starts_with("nodes_") && !a.name().starts_with("target_"));
        n.attribute.extend([
            attr_ints("nodes_treeids", &[0, 0, 0, 1, 1, 1]),
            attr_ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2]),
            attr_ints("nodes_featureids", &[0; 6]),
            attr_floats("nodes_values", &[0.5, 0.0, 0.0, 0.5, 0.0, 0.0]),
            attr_strings(
                "nodes_modes",
                &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
            ),
            attr_ints("nodes_truenodeids", &[1, 0, 0, 1, 0, 0]),
            attr_ints("nodes_falsenodeids", &[2, 0, 0, 2, 0, 0]),
            attr_ints("target_treeids", &[0, 0, 1, 1]),
            attr_ints("target_nodeids", &[1, 2, 1, 2]),
            attr_ints("target_ids", &[0; 4]),
            attr_floats("target_weights", &[10.0, 20.0, 1.0, 2.0]),
            attr_string("aggregate_function", agg),
            attr_floats("base_values", &[base]),
        ]);
        g
    };
    assert_eq!(floats(&run1(&two_trees("SUM", 0.0), x.clone())[0]), [11.0, 22.0]);
    assert_eq!(
        floats(&run1(&two_trees("SUM", 100.0), x.clone())[0]),
        [111.0, 122.0]
    );
    assert_eq!(
        floats(&run1(&two_trees("AVERAGE", 0.0), x.clone())[0]),
        [5.5, 11.0]
    );
    assert_eq!(
        floats(&run1(&two_trees("AVERAGE", 1.0), x.clone())[0]),
        [6.5, 12.0]
    );
    // MIN / MAX are refused (natively), naming the node and the attribute value.
    let e = NativeGraph::compile(&two_trees("MIN", 0.0)).unwrap_err();
    let text = format!("{e:?}");
    assert!(
        text.contains("TreeEnsembleRegressor") && text.contains("MIN"),
        "{text}"
    );
}

/// A classifier of one split on feature 0 at 0.5 whose leaves carry `weights` as (node, class,
/// weight) triples.
fn classifier(labels: &[i64], weights: &[(i64, i64, f32)], post: &str, base: &[f32]) -> GraphProto {
    let mut attrs = vec![
        attr_ints("nodes_treeids", &[0, 0, 0]),
        attr_ints("nodes_nodeids", &[0, 1, 2]),
        attr_ints("nodes_featureids", &[0, 0, 0]),
        attr_floats("nodes_values", &[0.5, 0.0, 0.0]),
        attr_strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
        attr_ints("nodes_truenodeids", &[1, 0, 0]),
        attr_ints("nodes_falsenodeids", &[2, 0, 0]),
        attr_ints("class_treeids", &vec![0; weights.len()]),
        attr_ints("class_nodeids", &weights.iter().map(|w| w.0).collect::<Vec<_>>()),
        attr_ints("class_ids", &weights.iter().map(|w| w.1).collect::<Vec<_>>()),
        attr_floats("class_weights", &weights.iter().map(|w| w.2).collect::<Vec<_>>()),
        attr_ints("classlabels_int64s", labels),
        attr_string("post_transform", post),
    ];
    if !base.is_empty() {
        attrs.push(attr_floats("base_values", base));
    }
    graph(
        vec![node(
            "TreeEnsembleClassifier",
            "ai.onnx.ml",
            &["x"],
            &["label", "p"],
            attrs,
        )],
        vec![tensor_info("x", 1, 1)],
        vec![
            tensor_info("label", 7, 1),
            tensor_info("p", 1, labels.len() as i64),
        ],
    )
}

fn ints(v: &OnnxValue) -> Vec<i64> {
    match v {
        OnnxValue::Tensor(Tensor {
            data: Data::I64(d), ..
        }) => d.clone(),
        other => panic!("not ints: {other:?}"),
    }
}

fn close(a: &[f32], b: &[f64]) -> bool {
    // Float results: within 1e-6, relative to the magnitude above 1.
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (f64::from(*x) - y).abs() < 1e-6 * y.abs().max(1.0))
}

#[test]
fn binary_classifiers_with_one_score_column_fill_the_second_as_onnx_runtime_does() {
    let x = f32s(&[&[0.0], &[1.0]]);
    // All weights positive (a probability for class 1): [1 - s, s].
    let g = classifier(&[0, 1], &[(1, 0, 0.25), (2, 0, 0.75)], "NONE", &[]);
    let out = run1(&g, x.clone());
    assert_eq!(ints(&out[0]), [0, 1]);
    assert!(close(&floats(&out[1]), &[0.75, 0.25, 0.25, 0.75]));
    // Mixed-sign margins with LOGISTIC and one base value (gradient boosting):
    // [σ(-(s + b)), σ(s + b)].
    let g = classifier(&[0, 1], &[(1, 0, -1.0), (2, 0, 2.0)], "LOGISTIC", &[0.5]);
    let out = run1(&g, x.clone());
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    assert_eq!(ints(&out[0]), [0, 1]);
    assert!(close(
        &floats(&out[1]),
        &[sig(0.5), sig(-0.5), sig(-2.5), sig(2.5)]
    ));
    // Mixed weights without a transform: [-s, s] when class 1 wins, [s, -s] when class 0 does.
    let g = classifier(&[0, 1], &[(1, 0, -1.0), (2, 0, 2.0)], "NONE", &[]);
    let out = run1(&g, x.clone());
    assert!(close(&floats(&out[1]), &[-1.0, 1.0, -2.0, 2.0]));
    // Two score columns and string labels: SOFTMAX over both, label = argmax.
    let mut g = classifier(
        &[0, 1],
        &[(1, 0, 1.0), (1, 1, 0.0), (2, 0, 0.0), (2, 1, 3.0)],
        "SOFTMAX",
        &[],
    );
    g.node[0].attribute.retain(|a| a.name() != "classlabels_int64s");
    g.node[0]
        .attribute
        .push(attr_strings("classlabels_strings", &["no", "yes"]));
    let out = run1(&g, x);
    match &out[0] {
        OnnxValue::Tensor(Tensor {
            data: Data::Str(s), ..
        }) => assert_eq!(s, &["no", "yes"]),
        other => panic!("{other:?}"),
    }
    let e1 = 1f64.exp();
    let e3 = 3f64.exp();
    assert!(close(
        &floats(&out[1]),
        &[
            e1 / (e1 + 1.0),
            1.0 / (e1 + 1.0),
            1.0 / (1.0 + e3),
            e3 / (1.0 + e3)
        ]
    ));
}

#[test]
fn multiclass_base_values_and_softmax_zero_and_probit() {
    let x = f32s(&[&[0.0]]);
    let w = [
        (1, 0, 1.0),
        (1, 1, 0.0),
        (1, 2, 2.0),
        (2, 0, 0.0),
        (2, 1, 0.0),
        (2, 2, 0.0),
    ];
    // Base values are added before the transform: scores [1.5, 0.5, 2.5] → NONE.
    let out = run1(&classifier(&[7, 8, 9], &w, "NONE", &[0.5, 0.5, 0.5]), x.clone());
    assert_eq!(ints(&out[0]), [9]);
    assert!(close(&floats(&out[1]), &[1.5, 0.5, 2.5]));
    // SOFTMAX_ZERO keeps zero scores at zero: [1, 0, 2] → [e/(e+e²), 0, e²/(e+e²)].
    let out = run1(&classifier(&[7, 8, 9], &w, "SOFTMAX_ZERO", &[]), x.clone());
    let (a, b) = (1f64.exp(), 2f64.exp());
    assert!(close(&floats(&out[1]), &[a / (a + b), 0.0, b / (a + b)]));
    // PROBIT uses ONNX Runtime's erfinv approximation; probit(0.5) = 0 exactly, and
    // probit(0.975) ≈ 1.96 to the approximation's accuracy.
    let w2 = [
        (1, 0, 0.5),
        (1, 1, 0.975),
        (1, 2, 0.025),
        (2, 0, 0.0),
        (2, 1, 0.0),
        (2, 2, 0.0),
    ];
    let out = run1(&classifier(&[7, 8, 9], &w2, "PROBIT", &[]), x);
    let p = floats(&out[1]);
    assert!(p[0].abs() < 1e-6, "{p:?}");
    assert!((p[1] - 1.96).abs() < 5e-3 && (p[2] + 1.96).abs() < 5e-3, "{p:?}");
}

#[test]
fn preprocessing_operators_compute_what_the_specification_says() {
    // Imputer (NaN → per-column values) → Scaler → Normalizer L2 → LinearRegressor.
    let nodes = vec![
        node(
            "Imputer",
            "ai.onnx.ml",
            &["x"],
            &["i"],
            vec![
                attr_floats("imputed_value_floats", &[1.0, 2.0]),
                AttributeProto {
                    name: Some("replaced_value_float".into()),
                    r#type: Some(1),
                    f: Some(f32::NAN),
                    ..Default::default()
                },
            ],
        ),
        node(
            "Scaler",
            "ai.onnx.ml",
            &["i"],
            &["s"],
            vec![
                attr_floats("offset", &[1.0, 0.0]),
                attr_floats("scale", &[3.0, 4.0]),
            ],
        ),
        node(
            "Normalizer",
            "ai.onnx.ml",
            &["s"],
            &["n"],
            vec![attr_string("norm", "L2")],
        ),
        node(
            "LinearRegressor",
            "ai.onnx.ml",
            &["n"],
            &["y"],
            vec![
                attr_floats("coefficients", &[10.0, 100.0]),
                attr_floats("intercepts", &[1.0]),
            ],
        ),
    ];
    let g = graph(nodes, vec![tensor_info("x", 1, 2)], vec![tensor_info("y", 1, 1)]);
    // Row [2, NaN] → [2, 2] → [3, 8] → [3, 8]/√73 → 1 + (30 + 800)/√73.
    // Row [NaN, 0.75] → [1, 0.75] → [0, 3] → [0, 1] → 101.
    let y = floats(&run1(&g, f32s(&[&[2.0, f32::NAN], &[f32::NAN, 0.75]]))[0]);
    assert!(close(&y, &[1.0 + 830.0 / 73f64.sqrt(), 101.0]), "{y:?}");

    // LabelEncoder string → int64 with a default, OneHotEncoder on ints, Cast, Concat, ArgMax.
    let nodes = vec![
        node(
            "LabelEncoder",
            "ai.onnx.ml",
            &["c"],
            &["code"],
            vec![
                attr_strings("keys_strings", &["a", "b", "c"]),
                attr_ints("values_int64s", &[2, 0, 1]),
                attr_int("default_int64", 3),
            ],
        ),
        node(
            "OneHotEncoder",
            "ai.onnx.ml",
            &["code"],
            &["oh"],
            vec![attr_ints("cats_int64s", &[0, 1, 2]), attr_int("zeros", 1)],
        ),
        node("Cast", "", &["code"], &["codef"], vec![attr_int("to", 1)]),
        node(
            "Concat",
            "",
            &["oh", "codef"],
            &["cat"],
            vec![attr_int("axis", 1)],
        ),
        node("ArgMax", "", &["cat"], &["am"], vec![attr_int("axis", 1)]),
    ];
    let g = graph(
        nodes,
        vec![tensor_info("c", 8, 1)],
        vec![tensor_info("cat", 1, 4), tensor_info("am", 7, 1)],
    );
    let x = Tensor::new(Data::Str(vec!["a".into(), "b".into(), "zzz".into()]), 3, 1);
    let out = run1(&g, x);
    // a → 2 → [0,0,1,2]; b → 0 → [1,0,0,0]; unknown → 3 → [0,0,0,3] (no category: zeros).
    assert_eq!(
        floats(&out[0]),
        [0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]
    );
    assert_eq!(ints(&out[1]), [3, 0, 3]);
}

#[test]
fn linear_classifier_binary_forms_and_zipmap() {
    // One coefficient row for two classes: [1 - σ(z), σ(z)] with LOGISTIC, label z > 0.
    let nodes = vec![
        node(
            "LinearClassifier",
            "ai.onnx.ml",
            &["x"],
            &["label", "p"],
            vec![
                attr_floats("coefficients", &[2.0]),
                attr_floats("intercepts", &[-1.0]),
                attr_strings("classlabels_strings", &["neg", "pos"]),
                attr_string("post_transform", "LOGISTIC"),
            ],
        ),
        node(
            "ZipMap",
            "ai.onnx.ml",
            &["p"],
            &["maps"],
            vec![attr_strings("classlabels_strings", &["neg", "pos"])],
        ),
    ];
    let g = graph(
        nodes,
        vec![tensor_info("x", 1, 1)],
        vec![tensor_info("label", 8, 1), tensor_info("maps", 1, 2)],
    );
    let out = run1(&g, f32s(&[&[0.0], &[1.0]]));
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    match &out[1] {
        OnnxValue::Maps {
            labels,
            probabilities,
            rows,
            int_keys,
        } => {
            assert_eq!(labels, &["neg", "pos"]);
            assert!(!int_keys);
            assert_eq!(*rows, 2);
            assert!(close(
                probabilities,
                &[1.0 - sig(-1.0), sig(-1.0), 1.0 - sig(1.0), sig(1.0)]
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unsupported_operator_is_refused_at_load_naming_every_operator_and_node() {
    let mut g = graph_with_unsupported_operator();
    g.node
        .push(node("TreeEnsemble", "ai.onnx.ml", &["x"], &["z"], vec![]));
    let e = NativeOnnxModel::from_bytes(model_bytes(g), "m.onnx", None, None, None).unwrap_err();
    match &e {
        Error::UnsupportedOnnxOperators { origin, operators } => {
            assert_eq!(origin, "m.onnx");
            assert_eq!(operators.len(), 2, "{operators:?}");
            assert!(operators[0].contains("`Mul` (node `Mul_0`)"), "{operators:?}");
            assert!(
                operators[1].contains("`TreeEnsemble` (node `TreeEnsemble_0`)"),
                "{operators:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("m.onnx cannot run natively") && text.contains("Mul"),
        "{text}"
    );
}

#[test]
fn a_hand_built_model_file_loads_and_predicts_through_the_model_interface() {
    let bytes = model_bytes(one_split("BRANCH_LT", Some(1), vec![]));
    let model = NativeOnnxModel::from_bytes(bytes.clone(), "m.onnx", None, None, None).unwrap();
    // One [N, 1] input is one field named after it.
    assert_eq!(model.schema().names().collect::<Vec<_>>(), ["x"]);
    // A nullable field feeds missing values as NaN.
    let schema = Schema::new(vec![Field::new("x", DataType::Float).nullable()]).unwrap();
    let model = NativeOnnxModel::from_bytes(bytes, "m.onnx", Some(schema), None, None).unwrap();
    assert_eq!(model.output(), &OutputSpec::Regression);
    let frame = Frame::from_rows(
        model.schema().clone(),
        &[
            vec![Value::Float(0.25)],
            vec![Value::Float(0.75)],
            vec![Value::Null],
        ],
    )
    .unwrap();
    let p = model.predict(&frame).unwrap();
    assert_eq!(p.values().unwrap().to_vec(), [10.0, 20.0, 10.0]);
}

// ---------------------------------------------------------------------------------------------
// The fused linear pass.

/// The largest difference between two models' outputs on `frame`, with the predicted labels
/// equal wherever the top two probabilities are apart.
fn largest_difference(a: &dyn Model, b: &dyn Model, frame: &Frame) -> f64 {
    let (p, q) = (a.predict(frame).unwrap(), b.predict(frame).unwrap());
    assert_eq!(p.len(), q.len());
    match (p.probabilities(), q.probabilities()) {
        (Some(x), Some(y)) => {
            for r in 0..p.len() {
                let mut row: Vec<f64> = y.row(r).to_vec();
                row.sort_by(|a, b| b.total_cmp(a));
                if row[0] - row[1] > 1e-6 {
                    assert_eq!(p.label(r), q.label(r), "row {r}");
                }
            }
            x.iter()
                .zip(y.iter())
                .map(|(u, v)| (u - v).abs())
                .fold(0.0, f64::max)
        }
        _ => {
            let (x, y) = (p.values().unwrap(), q.values().unwrap());
            x.iter()
                .zip(y.iter())
                .map(|(u, v)| (u - v).abs())
                .fold(0.0, f64::max)
        }
    }
}

/// `n` rows of `f` features, uniform in [-4, 4) with a few exact zeros, from a fixed seed.
fn random_rows(schema: &Schema, n: usize, seed: u64) -> Frame {
    let mut rng = ml_core::rng::Rng::new(seed);
    let rows: Vec<Vec<Value>> = (0..n)
        .map(|_| {
            (0..schema.len())
                .map(|_| {
                    let v = rng.uniform_range(-4.0, 4.0);
                    Value::Float(if v.abs() < 0.05 { 0.0 } else { v })
                })
                .collect()
        })
        .collect();
    Frame::from_rows(schema.clone(), &rows).unwrap()
}

/// One float ulp at 1: the fused pass rounds to float where the operators do, so the two paths
/// differ at most by a rounding of their last step.
const ONE_FLOAT_ULP: f64 = 1.2e-7;

#[test]
fn exported_logistic_regressions_run_fused_and_agree_with_the_operator_path_and_onnxruntime() {
    for name in ["logistic_regression", "bench_lr_f20"] {
        let fx = fixture(name);
        let fused = NativeOnnxModel::load(fixtures().join(format!("{name}.onnx")), None, None).unwrap();
        assert!(fused.is_fused(), "{name}: {}", fused.graph().summary());
        let general = fused.clone().unfused();
        assert!(!general.is_fused());
        // Both within the fixtures' tolerance of onnxruntime's recorded output.
        for model in [&fused, &general] {
            let worst = max_difference(model, &fx);
            assert!(worst <= 1e-6, "{name}: max |native - onnxruntime| = {worst:e}");
        }
        let frame = Frame::from_rows(fused.schema().clone(), &fx.rows).unwrap();
        let worst = largest_difference(&fused, &general, &frame);
        assert!(worst <= ONE_FLOAT_ULP, "{name}: fused vs operator path {worst:e}");
        let frame = random_rows(fused.schema(), 2000, 17);
        let worst = largest_difference(&fused, &general, &frame);
        assert!(
            worst <= ONE_FLOAT_ULP,
            "{name}: fused vs operator path on 2000 rows {worst:e}"
        );
    }
    // Other shapes keep the operator path: a pipeline of per-column inputs, a forest.
    let pipeline = NativeOnnxModel::load(
        fixtures().join("pipeline_lr.onnx"),
        Some(pipeline_lr_schema()),
        None,
    )
    .unwrap();
    assert!(!pipeline.is_fused());
}

// ---------------------------------------------------------------------------------------------
// The fused tree-ensemble pass.

/// The bits of a model's probabilities (classifiers) or values (regressors).
fn output_bits(p: &ml_core::Predictions) -> Vec<u64> {
    match p.probabilities() {
        Some(x) => x.iter().map(|v| v.to_bits()).collect(),
        None => p.values().unwrap().iter().map(|v| v.to_bits()).collect(),
    }
}

/// `model` and its operator-by-operator evaluation give the same bits on `frame`, with the same
/// labels.
fn assert_same_as_operator_path(model: &NativeOnnxModel, frame: &Frame, what: &str) {
    let general = model.clone().unfused();
    assert!(!general.is_fused());
    let (p, q) = (model.predict(frame).unwrap(), general.predict(frame).unwrap());
    assert_eq!(output_bits(&p), output_bits(&q), "{what}");
    for r in 0..p.len() {
        assert_eq!(p.label(r), q.label(r), "{what}, row {r}");
    }
}

#[test]
fn exported_tree_ensembles_run_fused_and_agree_with_the_operator_path_and_onnxruntime() {
    // Every exporter's tree fixture: scikit-learn's forests and boosting (skl2onnx, one with an
    // Identity after the classifier), XGBoost's and LightGBM's (onnxmltools, ZipMap after
    // Identity), a regressor.
    for name in [
        "random_forest_classifier",
        "random_forest_regressor",
        "gradient_boosting_classifier",
        "hist_gradient_boosting_classifier",
        "xgb_classifier",
        "lgbm_classifier",
        "bench_rf100_d8_f20",
    ] {
        let fx = fixture(name);
        let model = NativeOnnxModel::load(fixtures().join(format!("{name}.onnx")), None, None).unwrap();
        assert!(model.is_fused(), "{name}: {}", model.graph().summary());
        let worst = max_difference(&model, &fx);
        assert!(worst <= 1e-6, "{name}: max |native - onnxruntime| = {worst:e}");
        let frame = Frame::from_rows(model.schema().clone(), &fx.rows).unwrap();
        assert_same_as_operator_path(&model, &frame, name);
        // Rows that reach other leaves, and blocks of rows past the first.
        let frame = random_rows(model.schema(), 300, 23);
        assert_same_as_operator_path(&model, &frame, &format!("{name}, 300 random rows"));
    }
}

#[test]
fn hand_built_tree_ensembles_run_fused_with_every_binary_case_base_value_and_missing_track() {
    let rows = |values: &[f64]| -> Vec<Vec<Value>> {
        values
            .iter()
            .map(|&v| vec![if v.is_nan() { Value::Null } else { Value::Float(v) }])
            .collect()
    };
    let schema = Schema::new(vec![Field::new("x", DataType::Float).nullable()]).unwrap();
    let xs = [0.0, 0.25, 0.5, 0.5000001, 1.0, -3.0, f64::NAN];
    let frame = Frame::from_rows(schema.clone(), &rows(&xs)).unwrap();
    // The binary classifiers of ONNX Runtime's `write_scores` cases, base values, a multiclass
    // post-transform, and the regressor's split modes with and without a missing-value track.
    let mut graphs: Vec<(String, GraphProto)> = vec![
        (
            "one column, weights positive".into(),
            classifier(&[0, 1], &[(1, 0, 0.25), (2, 0, 0.75)], "NONE", &[]),
        ),
        (
            "one column, mixed weights, logistic".into(),
            classifier(&[0, 1], &[(1, 0, -0.5), (2, 0, 1.5)], "LOGISTIC", &[]),
        ),
        (
            "two columns, base values".into(),
            classifier(
                &[0, 1],
                &[(1, 0, 0.2), (1, 1, 0.8), (2, 0, 0.6), (2, 1, 0.4)],
                "NONE",
                &[0.1, -0.1],
            ),
        ),
        (
            "three classes, softmax, base values".into(),
            classifier(
                &[3, 5, 7],
                &[(1, 0, 1.0), (1, 2, 0.5), (2, 1, 2.0)],
                "SOFTMAX",
                &[0.5, 0.0, -0.5],
            ),
        ),
    ];
    for (mode, track) in [
        ("BRANCH_LEQ", None),
        ("BRANCH_LT", Some(1)),
        ("BRANCH_GTE", Some(0)),
        ("BRANCH_GT", Some(1)),
    ] {
        graphs.push((
            format!("regressor {mode} {track:?}"),
            one_split(mode, track, vec![]),
        ));
    }
    for (what, g) in graphs {
        let bytes = model_bytes(g);
        let model = NativeOnnxModel::from_bytes(bytes, "m.onnx", Some(schema.clone()), None, None).unwrap();
        assert!(model.is_fused(), "{what}");
        assert_same_as_operator_path(&model, &frame, &what);
    }
}

#[test]
fn the_fused_tree_pass_gives_the_same_bits_at_every_batch_size_and_position() {
    let model = NativeOnnxModel::load(fixtures().join("bench_rf100_d8_f20.onnx"), None, None).unwrap();
    assert!(model.is_fused());
    let n = 700;
    let all = random_rows(model.schema(), n, 9);
    let whole = output_bits(&model.predict(&all).unwrap());
    // Single rows, fewer rows than a walk's lanes, several blocks.
    for size in [1, 3, 16, 17, 129, 300] {
        for start in (0..n).step_by(size).take(40) {
            let end = (start + size).min(n);
            let part = all.select_rows(&(start..end).collect::<Vec<_>>()).unwrap();
            let got = output_bits(&model.predict(&part).unwrap());
            assert_eq!(got[..], whole[start * 2..end * 2], "rows {start}..{end}");
        }
    }
    let picks: Vec<usize> = (0..n).rev().step_by(7).collect();
    let part = all.select_rows(&picks).unwrap();
    let got = output_bits(&model.predict(&part).unwrap());
    for (i, &r) in picks.iter().enumerate() {
        assert_eq!(got[i * 2..i * 2 + 2], whole[r * 2..r * 2 + 2], "row {r} at {i}");
    }
}

#[test]
fn the_fused_pass_gives_the_same_bits_at_every_simd_level_batch_size_and_position() {
    use ml_core::PredictOptions;
    use ml_core::kernel::Simd;

    let model = NativeOnnxModel::load(fixtures().join("bench_lr_f20.onnx"), None, None).unwrap();
    assert!(model.is_fused());
    let n = 700;
    let all = random_rows(model.schema(), n, 5);
    let bits = |p: &ml_core::Predictions| -> Vec<u64> {
        p.probabilities().unwrap().iter().map(|v| v.to_bits()).collect()
    };
    let portable = PredictOptions::default().with_simd(Simd::Portable);
    let whole = bits(&model.predict_with(&all, &portable).unwrap());
    for simd in Simd::available() {
        let options = PredictOptions::default().with_simd(simd);
        assert_eq!(
            bits(&model.predict_with(&all, &options).unwrap()),
            whole,
            "{simd:?}"
        );
        // Batches of every length class: single rows, a partial SIMD group, several blocks.
        for size in [1, 3, 8, 13, 129, 300] {
            for start in (0..n).step_by(size).take(40) {
                let end = (start + size).min(n);
                let part = all.select_rows(&(start..end).collect::<Vec<_>>()).unwrap();
                let got = bits(&model.predict_with(&part, &options).unwrap());
                assert_eq!(
                    got[..],
                    whole[start * 2..end * 2],
                    "{simd:?}, rows {start}..{end}"
                );
            }
        }
        // A row moved to every position of a batch.
        let picks: Vec<usize> = (0..n).rev().step_by(7).collect();
        let part = all.select_rows(&picks).unwrap();
        let got = bits(&model.predict_with(&part, &options).unwrap());
        for (i, &r) in picks.iter().enumerate() {
            assert_eq!(
                got[i * 2..i * 2 + 2],
                whole[r * 2..r * 2 + 2],
                "{simd:?}, row {r} at {i}"
            );
        }
    }
}

/// A LinearClassifier on two features, with the graph's remaining nodes.
fn linear_model(
    coefficients: &[f32],
    intercepts: &[f32],
    labels: &[&str],
    post: &str,
    after: Vec<ml_core::onnx_ml::proto::NodeProto>,
    output: &str,
) -> NativeOnnxModel {
    let mut nodes = vec![node(
        "LinearClassifier",
        "ai.onnx.ml",
        &["x"],
        &["label", "scores"],
        vec![
            attr_floats("coefficients", coefficients),
            attr_floats("intercepts", intercepts),
            attr_strings("classlabels_strings", labels),
            attr_string("post_transform", post),
        ],
    )];
    nodes.extend(after);
    let g = graph(
        nodes,
        vec![tensor_info("x", 1, 2)],
        vec![
            tensor_info("label", 8, 1),
            tensor_info(output, 1, labels.len() as i64),
        ],
    );
    NativeOnnxModel::from_bytes(model_bytes(g), "linear.onnx", None, None, None).unwrap()
}

#[test]
fn linear_chains_with_normalizer_cast_zipmap_and_softmax_fuse_and_compute_what_the_operators_specify() {
    let frame = |model: &NativeOnnxModel| {
        Frame::from_rows(
            model.schema().clone(),
            &[
                vec![Value::Float(0.5), Value::Float(-1.25)],
                vec![Value::Float(-2.0), Value::Float(0.75)],
                vec![Value::Float(0.0), Value::Float(0.0)],
            ],
        )
        .unwrap()
    };
    let rows = [[0.5, -1.25], [-2.0, 0.75], [0.0, 0.0]];
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let check = |model: &NativeOnnxModel, want: &[Vec<f64>], what: &str| {
        let p = model.predict(&frame(model)).unwrap();
        let probs = p.probabilities().unwrap();
        for (r, w) in want.iter().enumerate() {
            for (c, v) in w.iter().enumerate() {
                assert!(
                    (probs[[r, c]] - v).abs() <= 2e-7,
                    "{what}: row {r} class {c}: {} vs {v}",
                    probs[[r, c]]
                );
            }
        }
        // The operator path agrees.
        let general = model.clone().unfused();
        assert!(
            largest_difference(model, &general, &frame(model)) <= ONE_FLOAT_ULP,
            "{what}"
        );
    };

    // skl2onnx's binary form (two opposite rows, LOGISTIC), then Normalizer (L1), Cast to
    // float and ZipMap whose labels come in the other order than the classifier's: the model's
    // columns follow ZipMap's labels.
    let (w, b) = ([1.5f32, -0.5], 0.25f32);
    let binary = linear_model(
        &[-w[0], -w[1], w[0], w[1]],
        &[-b, b],
        &["no", "yes"],
        "LOGISTIC",
        vec![
            node(
                "Normalizer",
                "ai.onnx.ml",
                &["scores"],
                &["normed"],
                vec![attr_string("norm", "L1")],
            ),
            node("Cast", "", &["normed"], &["cast"], vec![attr_int("to", 1)]),
            node(
                "ZipMap",
                "ai.onnx.ml",
                &["cast"],
                &["maps"],
                vec![attr_strings("classlabels_strings", &["no", "yes"])],
            ),
        ],
        "maps",
    );
    assert!(binary.is_fused());
    let want: Vec<Vec<f64>> = rows
        .iter()
        .map(|x| {
            let z = f64::from(w[0]) * x[0] + f64::from(w[1]) * x[1] + f64::from(b);
            vec![sig(-z), sig(z)]
        })
        .collect();
    check(&binary, &want, "binary");
    // Labels given in the other order: the columns follow them.
    let bytes = binary.onnx_bytes().to_vec();
    let swapped = NativeOnnxModel::from_bytes(
        bytes,
        "linear.onnx",
        None,
        None,
        Some(vec!["yes".into(), "no".into()]),
    )
    .unwrap();
    assert!(swapped.is_fused());
    let swapped_want: Vec<Vec<f64>> = want.iter().map(|r| vec![r[1], r[0]]).collect();
    check(&swapped, &swapped_want, "labels swapped");

    // Three classes with SOFTMAX.
    let coef = [1.0f32, 0.0, 0.0, 1.0, -1.0, -1.0];
    let icpt = [0.0f32, 0.5, -0.5];
    let multi = linear_model(&coef, &icpt, &["a", "b", "c"], "SOFTMAX", vec![], "scores");
    assert!(multi.is_fused());
    let want: Vec<Vec<f64>> = rows
        .iter()
        .map(|x| {
            let s: Vec<f64> = (0..3)
                .map(|c| {
                    f64::from(coef[2 * c]) * x[0] + f64::from(coef[2 * c + 1]) * x[1] + f64::from(icpt[c])
                })
                .collect();
            let sum: f64 = s.iter().map(|v| v.exp()).sum();
            s.iter().map(|v| v.exp() / sum).collect()
        })
        .collect();
    check(&multi, &want, "softmax");

    // Shapes outside the standard chain stay on the operator path and still compute it:
    // LOGISTIC on two rows that are not opposite (each score through σ independently) ...
    let two_rows = linear_model(
        &[1.0, 0.0, 0.0, 1.0],
        &[0.0, 0.0],
        &["p", "q"],
        "LOGISTIC",
        vec![],
        "scores",
    );
    assert!(!two_rows.is_fused());
    let want: Vec<Vec<f64>> = rows.iter().map(|x| vec![sig(x[0]), sig(x[1])]).collect();
    check(&two_rows, &want, "two independent rows");
    // ... and a Softmax node after the classifier.
    let softmax_node = linear_model(
        &coef,
        &icpt,
        &["a", "b", "c"],
        "NONE",
        vec![node(
            "Softmax",
            "",
            &["scores"],
            &["p"],
            vec![attr_int("axis", -1)],
        )],
        "p",
    );
    assert!(!softmax_node.is_fused());
}

#[test]
fn a_linear_regressor_runs_fused_with_float_inputs_and_outputs() {
    let g = graph(
        vec![node(
            "LinearRegressor",
            "ai.onnx.ml",
            &["x"],
            &["y"],
            vec![
                attr_floats("coefficients", &[0.5, -2.0]),
                attr_floats("intercepts", &[1.0]),
            ],
        )],
        vec![tensor_info("x", 1, 2)],
        vec![tensor_info("y", 1, 1)],
    );
    let model = NativeOnnxModel::from_bytes(model_bytes(g), "lin.onnx", None, None, None).unwrap();
    assert!(model.is_fused());
    // 0.1 is not a float: the input tensor holds 0.100000001490116..., and the output is a float.
    let frame = Frame::from_rows(
        model.schema().clone(),
        &[
            vec![Value::Float(0.1), Value::Float(1.0)],
            vec![Value::Float(4.0), Value::Float(-0.25)],
        ],
    )
    .unwrap();
    let got = model.predict(&frame).unwrap().values().unwrap().to_vec();
    let x = f64::from(0.1f32);
    assert_eq!(got, [f64::from((0.5 * x - 2.0 + 1.0) as f32), 3.5]);
    let general = model
        .unfused()
        .predict(&frame)
        .unwrap()
        .values()
        .unwrap()
        .to_vec();
    assert_eq!(got, general);
}

/// A regressor of two trees (ids `trees`), each a split on feature 0 at 0.5 with two leaves;
/// `ids` names the nodes (root, true leaf, false leaf) of each tree.
fn two_trees(trees: [i64; 2], ids: [[i64; 3]; 2]) -> GraphProto {
    let [a, b] = trees;
    let [ia, ib] = ids;
    // Nodes interleaved across the trees, leaves before the roots' children order.
    let attrs = vec![
        attr_ints("nodes_treeids", &[a, b, a, b, a, b]),
        attr_ints("nodes_nodeids", &[ia[0], ib[0], ia[2], ib[1], ia[1], ib[2]]),
        attr_ints("nodes_featureids", &[0; 6]),
        attr_floats("nodes_values", &[0.5, 0.25, 0.0, 0.0, 0.0, 0.0]),
        attr_strings(
            "nodes_modes",
            &["BRANCH_LEQ", "BRANCH_LT", "LEAF", "LEAF", "LEAF", "LEAF"],
        ),
        attr_ints("nodes_truenodeids", &[ia[1], ib[1], 0, 0, 0, 0]),
        attr_ints("nodes_falsenodeids", &[ia[2], ib[2], 0, 0, 0, 0]),
        attr_ints("target_treeids", &[a, a, b, b, b]),
        attr_ints("target_nodeids", &[ia[1], ia[2], ib[1], ib[2], ib[2]]),
        attr_ints("target_ids", &[0; 5]),
        attr_floats("target_weights", &[1.0, 2.0, 10.0, 20.0, 0.5]),
        attr_int("n_targets", 1),
    ];
    graph(
        vec![node("TreeEnsembleRegressor", "ai.onnx.ml", &["x"], &["y"], attrs)],
        vec![tensor_info("x", 1, 1)],
        vec![tensor_info("y", 1, 1)],
    )
}

#[test]
fn tree_and_node_ids_need_not_be_dense() {
    let x = f32s(&[&[0.0], &[0.3], &[0.7], &[f32::NAN]]);
    // Tree 0: x <= 0.5 → 1 else 2; tree 1: x < 0.25 → 10 else 20.5 (two weights add up).
    let want = [11.0, 21.5, 22.5, 22.5];
    let dense = two_trees([0, 1], [[0, 1, 2], [0, 1, 2]]);
    assert_eq!(floats(&run1(&dense, x.clone())[0]), want);
    let sparse = two_trees([-7, 1 << 40], [[i64::MAX, i64::MIN, 3], [5, -1, 1 << 50]]);
    assert_eq!(floats(&run1(&sparse, x.clone())[0]), want);
    let shifted = two_trees([9, 8], [[100, 101, 102], [7, 8, 9]]);
    assert_eq!(floats(&run1(&shifted, x)[0]), want);
}

#[test]
fn malformed_tree_ensembles_are_refused_with_the_node_named() {
    let err = |g: &GraphProto| match NativeGraph::compile(g) {
        Err(e) => format!("{e:?}"),
        Ok(_) => panic!("compiled"),
    };
    // Dense ids (looked up in tables), then sparse ones (in a hash map).
    for ids in [[[0, 1, 2], [0, 1, 2]], [[0, 1, 2], [0, 1, 1 << 40]]] {
        // Node 1 of tree 0 twice.
        let mut dup = ids;
        dup[0][2] = 1;
        assert!(err(&two_trees([0, 1], dup)).contains("node 1 of tree 0 appears twice"));
        // A child that does not exist: the root of tree 0 names node 9 as its false branch.
        let mut g = two_trees([0, 1], ids);
        let attrs = &mut g.node[0].attribute;
        let falses = attrs
            .iter_mut()
            .find(|a| a.name() == "nodes_falsenodeids")
            .unwrap();
        falses.ints[0] = 9;
        assert!(err(&g).contains("node 9 of tree 0 is named as a child but does not exist"));
        // A weight for a node that does not exist, and for a tree that does not exist.
        for (tree, node, what) in [(0, 9, "node 9 of tree 0"), (5, 0, "node 0 of tree 5")] {
            let mut g = two_trees([0, 1], ids);
            let attrs = &mut g.node[0].attribute;
            attrs
                .iter_mut()
                .find(|a| a.name() == "target_treeids")
                .unwrap()
                .ints[0] = tree;
            attrs
                .iter_mut()
                .find(|a| a.name() == "target_nodeids")
                .unwrap()
                .ints[0] = node;
            assert!(err(&g).contains(&format!("a weight names {what}, which does not exist")));
        }
        // Both branches of tree 1's root lead to the same leaf.
        let mut g = two_trees([0, 1], ids);
        let attrs = &mut g.node[0].attribute;
        let trues = attrs
            .iter_mut()
            .find(|a| a.name() == "nodes_truenodeids")
            .unwrap();
        trues.ints[1] = ids[1][2];
        assert!(err(&g).contains("tree 1 is not a tree"));
    }
}
