//! ONNX graphs built by hand from the generated onnx-ml.proto types, for the native and the
//! ONNX Runtime tests.
#![allow(dead_code)]

use ml_core::onnx_ml::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TypeProto, ValueInfoProto,
    tensor_shape_proto, type_proto,
};
use prost::Message;

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(7),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(6),
        floats: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(8),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(3),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(2),
        i: Some(v),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{op}_0")),
        op_type: Some(op.into()),
        domain: Some(domain.into()),
        attribute: attrs,
        ..Default::default()
    }
}

pub fn tensor_info(name: &str, elem: i32, cols: i64) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(ml_core::onnx_ml::proto::TensorShapeProto {
                    dim: [None, Some(cols)]
                        .into_iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: d.map(tensor_shape_proto::dimension::Value::DimValue),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn graph(nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>) -> GraphProto {
    GraphProto {
        node: nodes,
        input: inputs,
        output: outputs,
        name: Some("test".into()),
        ..Default::default()
    }
}

/// One tree: node 0 splits feature 0 at 0.5 with `mode` (true → node 1, false → node 2);
/// leaves 1 and 2 carry `yes` and `no` for target 0.
pub fn one_split(mode: &str, tracks_true: Option<i64>, extra: Vec<AttributeProto>) -> GraphProto {
    let mut attrs = vec![
        attr_ints("nodes_treeids", &[0, 0, 0]),
        attr_ints("nodes_nodeids", &[0, 1, 2]),
        attr_ints("nodes_featureids", &[0, 0, 0]),
        attr_floats("nodes_values", &[0.5, 0.0, 0.0]),
        attr_strings("nodes_modes", &[mode, "LEAF", "LEAF"]),
        attr_ints("nodes_truenodeids", &[1, 0, 0]),
        attr_ints("nodes_falsenodeids", &[2, 0, 0]),
        attr_ints("target_treeids", &[0, 0]),
        attr_ints("target_nodeids", &[1, 2]),
        attr_ints("target_ids", &[0, 0]),
        attr_floats("target_weights", &[10.0, 20.0]),
        attr_int("n_targets", 1),
    ];
    if let Some(t) = tracks_true {
        attrs.push(attr_ints("nodes_missing_value_tracks_true", &[t, 0, 0]));
    }
    attrs.extend(extra);
    graph(
        vec![node("TreeEnsembleRegressor", "ai.onnx.ml", &["x"], &["y"], attrs)],
        vec![tensor_info("x", 1, 1)],
        vec![tensor_info("y", 1, 1)],
    )
}

pub fn model_bytes(g: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("test".into()),
        graph: Some(g),
        opset_import: vec![
            OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            },
            OperatorSetIdProto {
                domain: Some("ai.onnx.ml".into()),
                version: Some(3),
            },
        ],
        ..Default::default()
    }
    .encode_to_vec()
}

/// A one-split regressor (leaves 10 and 20) whose output is squared by `Mul`, a neural-network
/// operator with no native implementation: ONNX Runtime runs it, the native engine refuses it.
pub fn graph_with_unsupported_operator() -> GraphProto {
    let mut g = one_split("BRANCH_LEQ", None, vec![]);
    g.node[0].output = vec!["t".into()];
    g.node.push(node("Mul", "", &["t", "t"], &["y"], vec![]));
    g
}
