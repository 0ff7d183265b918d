//! Writes the model seeds of fuzz/corpus/ (run by `fuzz/make-seeds` after a build): small
//! models of every kind with a kernel or without one, trained here on the fuzz crate's
//! training data and saved as real artifacts, then laid out as each target reads its input:
//!
//! - `native_model/<kind>`: `model.json ++ rows ++ [len]`
//! - `model_artifact/<kind>`: `MLmodel %% model.json %% metrics.json`, rows appended
//! - `forest_kernel/<kind>` (tree models): `[1][len / 16] ensemble JSON (padded) rows`

use std::path::Path;

use ml_core::{CsvTable, Estimator, InferOptions, ModelArtifact, ReadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: make_seeds CORPUS_DIR")?;
    let out = Path::new(&out);
    let table = CsvTable::read(streamscore_fuzz::TRAINING_CSV.as_bytes(), "train.csv")?;
    let schema = table.infer_schema(&InferOptions::default())?;
    let data = table.to_frame(schema, &ReadOptions::default())?;
    let rows: Vec<u8> = (0..64u32).map(|i| ((i * 37 + 11) % 256) as u8).collect();
    let tail = |mut v: Vec<u8>| {
        v.extend_from_slice(&rows);
        v.push(rows.len() as u8);
        v
    };
    let scratch = tempdir()?;
    let kinds: [(&str, &str, &[(&str, &str)]); 7] = [
        ("logistic_regression", "churn", &[]),
        ("decision_tree_classifier", "churn", &[("max_depth", "3")]),
        (
            "random_forest_classifier",
            "churn",
            &[("n_estimators", "3"), ("max_depth", "3")],
        ),
        (
            "random_forest_regressor",
            "income",
            &[("n_estimators", "9"), ("max_depth", "2")],
        ),
        ("linear_regression", "income", &[]),
        ("k_neighbors_classifier", "churn", &[("n_neighbors", "3")]),
        ("gaussian_nb", "churn", &[]),
    ];
    for (kind, target, params) in kinds {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let Ok(estimator) = Estimator::from_name(kind, &params) else {
            eprintln!("skipping {kind}: not an estimator of this build");
            continue;
        };
        let model = estimator.fit(&data, target)?;
        let dir = scratch.join(kind);
        ModelArtifact::from_native(&model)?.save(&dir)?;
        let mlmodel = std::fs::read(dir.join("MLmodel"))?;
        let json = std::fs::read(dir.join("model.json"))?;
        let metrics = std::fs::read(dir.join("metrics.json")).unwrap_or_default();
        write(&out.join("native_model").join(kind), &tail(json.clone()))?;
        let mut artifact = mlmodel;
        artifact.extend_from_slice(b"\n%%\n");
        artifact.extend_from_slice(&json);
        artifact.extend_from_slice(b"\n%%\n");
        artifact.extend_from_slice(&metrics);
        write(&out.join("model_artifact").join(kind), &tail(artifact))?;
        if let ml_core::native::Fitted::TreeEnsemble(e) = model.fitted() {
            let mut text = serde_json::to_vec(e)?;
            let blocks = text.len().div_ceil(16);
            if blocks < 256 {
                text.resize(blocks * 16, b' ');
                let mut seed = vec![1u8, blocks as u8];
                seed.extend_from_slice(&text);
                seed.extend_from_slice(&rows);
                write(&out.join("forest_kernel").join(kind), &seed)?;
            }
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("streamscore-make-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}
