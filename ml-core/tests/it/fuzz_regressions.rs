//! Inputs the fuzz targets (fuzz/) found or exercise that once crashed, hung or overflowed,
//! each a test named after what it was.

use std::path::Path;

use ml_core::estimator::tree::{LEAF, TreeEnsemble};
use ml_core::{CsvTable, Estimator, InferOptions, NativeModel, ReadOptions};
use serde_json::Value as Json;

fn tree_model_json() -> Json {
    let csv = "x,y\n1,0\n2,0\n3,0\n4,1\n5,1\n6,1\n";
    let table = CsvTable::read(csv.as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let data = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let model = Estimator::from_name("decision_tree_classifier", &[])
        .unwrap()
        .fit(&data, "y")
        .unwrap();
    serde_json::from_slice(&model.to_json_bytes().unwrap()).unwrap()
}

/// The tree ensemble object inside a native model file.
fn ensemble_of(model: &mut Json) -> &mut serde_json::Map<String, Json> {
    fn find(v: &mut Json) -> Option<&mut serde_json::Map<String, Json>> {
        if matches!(v, Json::Object(m) if m.contains_key("roots") && m.contains_key("value_offset")) {
            return v.as_object_mut();
        }
        match v {
            Json::Object(m) => m.values_mut().find_map(find),
            Json::Array(a) => a.iter_mut().find_map(find),
            _ => None,
        }
    }
    find(model).expect("a tree model holds an ensemble")
}

/// A "tree" of `depth` levels where both children of each node are the same next node: it
/// passes the ordering check (children after their parent) but has 2^depth root-to-leaf paths.
fn shared_chain(depth: usize, n_outputs: usize) -> TreeEnsemble {
    let n = depth + 1;
    let mut left: Vec<u32> = (1..=depth as u32).collect();
    left.push(LEAF);
    TreeEnsemble {
        n_features: 1,
        n_outputs,
        roots: vec![0],
        feature: vec![0; n],
        threshold: vec![0.5; n],
        right: left.clone(),
        left,
        value_offset: vec![0; n],
        values: vec![1.0; n_outputs],
        feature_importances: vec![1.0],
    }
}

#[test]
fn a_tree_node_shared_by_two_parents_is_refused_not_walked_exponentially() {
    let e = shared_chain(64, 2);
    let err = e.validate().unwrap_err().to_string();
    assert!(err.contains("node 1 is reached twice"), "{err}");

    // The same structure in a model file: refused at load, before the kernel is compiled (the
    // compilation walked all 2^64 paths).
    let mut model = tree_model_json();
    let ensemble = ensemble_of(&mut model);
    let bad = serde_json::to_value(&e).unwrap();
    for (k, v) in bad.as_object().unwrap() {
        if k != "n_features" && k != "feature_importances" {
            ensemble.insert(k.clone(), v.clone());
        }
    }
    let bytes = serde_json::to_vec(&model).unwrap();
    let err = NativeModel::from_json_bytes(&bytes, Path::new("model.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("reached twice"), "{err}");
}

#[test]
fn two_trees_sharing_a_root_are_refused() {
    let mut e = shared_chain(0, 1);
    e.roots = vec![0, 0];
    assert!(
        e.validate()
            .unwrap_err()
            .to_string()
            .contains("node 0 is reached twice")
    );
}

#[test]
fn a_leaf_offset_plus_a_huge_output_count_is_refused_not_overflowed() {
    let mut e = shared_chain(0, 1);
    e.n_outputs = usize::MAX;
    e.value_offset = vec![1];
    let err = e.validate().unwrap_err().to_string();
    assert!(err.contains("leaf 0 values out of range"), "{err}");
}

/// The `native_model` fuzz target's crash: a k-nearest-neighbours model file with
/// `"n_neighbors": 0` loaded, then panicked scoring its first row (`k - 1` overflowed).
#[test]
fn a_k_neighbors_model_file_with_zero_neighbours_is_refused_not_a_subtraction_overflow() {
    let csv = "x,y\n1,0\n2,0\n3,0\n4,1\n5,1\n6,1\n";
    let table = CsvTable::read(csv.as_bytes(), "train.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    let data = table.to_frame(schema, &ReadOptions::default()).unwrap();
    let model = Estimator::from_name(
        "k_neighbors_classifier",
        &[("n_neighbors".to_string(), "3".to_string())],
    )
    .unwrap()
    .fit(&data, "y")
    .unwrap();
    let mut json: Json = serde_json::from_slice(&model.to_json_bytes().unwrap()).unwrap();
    // The file as fitted loads and scores.
    let bytes = serde_json::to_vec(&json).unwrap();
    assert!(NativeModel::from_json_bytes(&bytes, Path::new("model.json")).is_ok());
    for (k, want) in [
        (0, "n_neighbors 0"),
        (7, "n_neighbors 7 but only 6 training rows"),
    ] {
        json["fitted"]["n_neighbors"] = Json::from(k);
        let bytes = serde_json::to_vec(&json).unwrap();
        let err = NativeModel::from_json_bytes(&bytes, Path::new("model.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(err.contains("model.json"), "{err}");
    }
}
