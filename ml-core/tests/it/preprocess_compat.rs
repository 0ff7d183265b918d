//! Native models saved before imputation and categorical encoding became choices still load and
//! predict as before; models with the new choices round-trip through the native format.

use std::path::Path;

use ml_core::preprocess::{CategoricalEncoding, Imputation, Preprocessing};
use ml_core::{CsvTable, Estimator, Frame, InferOptions, Model, NativeModel, ReadOptions};

/// `x` has gaps, `g` is categorical with gaps.
const DATA: &str = "x,g,y\n1,a,0\n,b,0\n3,a,1\n4,,1\n5,a,1\n0.5,b,0\n,a,0\n3.5,b,1\n2,c,1\n6,,0\n";

fn frame() -> Frame {
    let table = CsvTable::read(DATA.as_bytes(), "t.csv").unwrap();
    let schema = table.infer_schema(&InferOptions::default()).unwrap();
    table.to_frame(schema, &ReadOptions::default()).unwrap()
}

fn fit(name: &str, preprocessing: Preprocessing) -> NativeModel {
    Estimator::from_name(name, &[])
        .unwrap()
        .fit_with_preprocessing(&frame(), "y", preprocessing, &|| {})
        .unwrap()
}

fn probabilities(model: &NativeModel) -> Vec<f64> {
    let (features, ..) = frame().split_off("y").unwrap();
    let p = model.predict(&features).unwrap();
    p.probabilities().unwrap().iter().copied().collect()
}

#[test]
fn models_written_before_the_preprocessing_options_load_and_predict_the_same() {
    for name in ["logistic_regression", "decision_tree_classifier", "gaussian_nb"] {
        let model = fit(name, Preprocessing::default());
        // The earlier format is today's default output without the recorded options (one-hot
        // steps without a fill slot are written without the key already).
        let mut value: serde_json::Value = serde_json::from_slice(&model.to_json_bytes().unwrap()).unwrap();
        let pre = value["preprocessor"].as_object_mut().unwrap();
        assert!(pre.remove("options").is_some(), "{name}: options are recorded");
        assert!(
            pre["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s.get("fill").is_none() || s["kind"] == "numeric"),
            "{name}: {value}"
        );
        let old = serde_json::to_vec(&value).unwrap();
        let loaded = NativeModel::from_json_bytes(&old, Path::new("model.json")).unwrap();
        assert_eq!(probabilities(&loaded), probabilities(&model), "{name}");
        assert_eq!(loaded.preprocessor().options().choice, Preprocessing::default());
    }
}

#[test]
fn models_with_the_new_preprocessing_round_trip_through_the_native_format() {
    for (impute, encode) in [
        (Imputation::Median, CategoricalEncoding::Ordinal),
        (Imputation::MostFrequent, CategoricalEncoding::OneHot),
        (Imputation::MostFrequent, CategoricalEncoding::Ordinal),
    ] {
        let choice = Preprocessing { impute, encode };
        let model = fit("random_forest_classifier", choice);
        let loaded =
            NativeModel::from_json_bytes(&model.to_json_bytes().unwrap(), Path::new("model.json")).unwrap();
        assert_eq!(loaded, model);
        assert_eq!(loaded.preprocessor().options().choice, choice);
        assert_eq!(probabilities(&loaded), probabilities(&model));
        let width = loaded.preprocessor().n_outputs();
        // x plus g: one column ordinal, one per category (a, b, c) one-hot.
        assert_eq!(
            width,
            if encode == CategoricalEncoding::Ordinal {
                2
            } else {
                4
            },
            "{choice:?}"
        );
        for p in probabilities(&loaded).chunks(2) {
            assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
        }
    }
}
