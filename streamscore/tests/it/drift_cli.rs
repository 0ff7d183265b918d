//! `streamscore profile`, `streamscore drift` and the profile stored by `train`, as a user runs
//! them: CSV and inference-log input, JSON and HTML output, exit status 3 on dataset drift.

use crate::common;
use common::{ok, p, streamscore};

use std::fs;

#[test]
fn train_profiles_and_drift_detects() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, fresh, drifted) = (
        tmp.path().join("train.csv"),
        tmp.path().join("fresh.csv"),
        tmp.path().join("drifted.csv"),
    );
    ok(&["generate", "--rows", "3000", "--seed", "1", "--out", p(&train)]);
    ok(&["generate", "--rows", "1000", "--seed", "2", "--out", p(&fresh)]);
    ok(&[
        "generate",
        "--rows",
        "1000",
        "--seed",
        "3",
        "--drift",
        "1.0",
        "--out",
        p(&drifted),
    ]);
    let model = tmp.path().join("model");
    ok(&[
        "train",
        "--data",
        p(&train),
        "--target",
        "default",
        "--out",
        p(&model),
    ]);
    // train stores the profile as an artifact attachment, with the model's outputs.
    let artifact = ml_core::ModelArtifact::load(&model).unwrap();
    let profile = ml_drift::ReferenceProfile::from_json(&String::from_utf8_lossy(
        artifact.attachment("profile.json").unwrap(),
    ))
    .unwrap();
    assert_eq!(profile.features.len(), 23);
    assert!(profile.outputs.iter().any(|o| o.name == "prediction.proba_1"));

    // Fresh data: no dataset drift, exit 0 even with --fail-on-drift.
    let json = tmp.path().join("r.json");
    ok(&[
        "drift",
        "--reference",
        p(&model),
        "--current",
        p(&fresh),
        "--json",
        p(&json),
        "--fail-on-drift",
    ]);
    let report: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["dataset_drift"], false);
    assert_eq!(report["n_features"], 23);
    assert!(!report["prediction"].as_array().unwrap().is_empty());

    // Drifted data: dataset drift, exit status 3, HTML written.
    let html = tmp.path().join("out/r.html");
    let out = streamscore(&[
        "drift",
        "--reference",
        p(&model),
        "--current",
        p(&drifted),
        "--html",
        p(&html),
        "--fail-on-drift",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::read_to_string(&html)
            .unwrap()
            .contains("Dataset drift detected")
    );

    // `profile` on a CSV, then the inference-log layout (model_inputs collection) as current data.
    let prof = tmp.path().join("profile.json");
    ok(&[
        "profile",
        "--data",
        p(&train),
        "--drop",
        "default",
        "--out",
        p(&prof),
    ]);
    let logs = tmp.path().join("logs/credit/blue/model_inputs/2026/01/02/03");
    fs::create_dir_all(&logs).unwrap();
    let table = ml_core::CsvTable::read_path(&drifted).unwrap();
    let mut lines = String::new();
    for chunk in (0..table.n_rows()).collect::<Vec<_>>().chunks(100) {
        let rows: Vec<serde_json::Value> = chunk
            .iter()
            .map(|&r| {
                let obj: serde_json::Map<String, serde_json::Value> = table
                    .header()
                    .iter()
                    .enumerate()
                    .map(|(c, h)| {
                        (
                            h.clone(),
                            serde_json::Value::from(table.cell(r, c).unwrap().parse::<i64>().unwrap()),
                        )
                    })
                    .collect();
                serde_json::Value::Object(obj)
            })
            .collect();
        let event = serde_json::json!({"specversion": "1.0", "type": "azureml.inference.model_inputs", "data": rows, "correlationid": "x"});
        lines.push_str(&event.to_string());
        lines.push('\n');
    }
    fs::write(logs.join("instance-1.jsonl"), lines).unwrap();
    // An outputs collection next to it is not read as inputs.
    let outputs = tmp.path().join("logs/credit/blue/model_outputs/2026/01/02/03");
    fs::create_dir_all(&outputs).unwrap();
    fs::write(
        outputs.join("instance-1.jsonl"),
        "{\"data\": [{\"prediction\": 1}]}\n",
    )
    .unwrap();
    let json2 = tmp.path().join("r2.json");
    let out = streamscore(&[
        "drift",
        "--reference",
        p(&prof),
        "--current",
        p(&tmp.path().join("logs")),
        "--json",
        p(&json2),
        "--fail-on-drift",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json2).unwrap()).unwrap();
    assert_eq!(report["n_current_rows"], 1000);

    // A registry reference: the profile and the model of the version it resolves to.
    let registry = tmp.path().join("registry");
    ok(&[
        "register",
        "--name",
        "credit",
        "--registry",
        p(&registry),
        p(&model),
    ]);
    let json3 = tmp.path().join("r3.json");
    let out = streamscore(&[
        "drift",
        "--reference",
        "credit@latest",
        "--registry",
        p(&registry),
        "--current",
        p(&drifted),
        "--json",
        p(&json3),
        "--fail-on-drift",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json3).unwrap()).unwrap();
    assert_eq!(report["n_features"], 23);
    // Prediction drift needs the model: it came from the registry too.
    assert!(!report["prediction"].as_array().unwrap().is_empty());

    // An alias that does not exist is one clear line naming the aliases there are.
    let out = streamscore(&[
        "drift",
        "--reference",
        "credit@prod",
        "--registry",
        p(&registry),
        "--current",
        p(&fresh),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no alias `prod`"), "{err}");
}
