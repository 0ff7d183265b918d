//! MLflow interoperability: export a registered version as an MLflow model directory, import
//! an MLflow model directory whose `MLmodel` has an `onnx` or a `streamscore` flavor.
//!
//! A streamscore artifact already *is* an MLflow model directory: an `MLmodel` file with
//! flavors, a column-based `signature`, `model_uuid`, `run_id` and `utc_time_created`, and the
//! model file. [`export`] therefore writes the version's artifact unchanged (its `checksums`
//! file is one extra file that MLflow ignores), so an exported and re-imported model keeps its
//! digest. [`import`] reads an MLflow directory: one with a `streamscore` flavor and a
//! `checksums` file is loaded and verified as it is; one with only an `onnx` flavor (what
//! `mlflow.onnx.save_model` writes) gets a `streamscore` flavor pointing at the ONNX file, its
//! other top-level files (`conda.yaml`, `requirements.txt`, input examples) become attachments,
//! and checksums are computed. Loading an ONNX model for scoring is not done here.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ml_core::ModelArtifact;
use ml_core::artifact::{
    ARTIFACT_FORMAT_VERSION, ATTACHMENTS_DIR, CHECKSUMS_FILE, MLMODEL_FILE, MlModel, Signature,
    StreamscoreFlavor, sha256_hex,
};

use crate::error::{Error, Result};
use crate::{ModelRegistry, ModelVersion, Reference};

/// Writes the version `reference` selects as an MLflow model directory `dir` (which must not
/// exist or be empty). Returns the version exported.
pub async fn export(registry: &dyn ModelRegistry, reference: &Reference, dir: &Path) -> Result<ModelVersion> {
    let mut loaded = registry.get(reference).await?;
    loaded.artifact.save(dir)?;
    Ok(loaded.version)
}

/// Reads the MLflow model directory `dir` as an artifact (verified), ready to register.
pub fn import(dir: &Path) -> Result<ModelArtifact> {
    let bad = |reason: String| {
        Error::Core(ml_core::Error::Artifact {
            path: dir.to_path_buf(),
            reason,
        })
    };
    let mlmodel_path = dir.join(MLMODEL_FILE);
    let text = fs::read_to_string(&mlmodel_path).map_err(|e| Error::io("read", &mlmodel_path, e))?;
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| bad(format!("`MLmodel` is not valid YAML: {e}")))?;
    let flavors: BTreeMap<String, serde_yaml::Value> = yaml
        .get("flavors")
        .cloned()
        .map(serde_yaml::from_value)
        .transpose()
        .map_err(|e| bad(format!("`flavors` in MLmodel is not a mapping: {e}")))?
        .unwrap_or_default();
    if flavors.contains_key("streamscore") && dir.join(CHECKSUMS_FILE).is_file() {
        return Ok(ModelArtifact::load(dir)?);
    }
    let onnx = flavors.get("onnx").ok_or_else(|| {
        bad(format!(
            "MLmodel has flavors [{}]; streamscore imports models with an `onnx` flavor (mlflow.onnx.save_model) or its own `streamscore` flavor",
            flavors.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let model_file = onnx
        .get("data")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("model.onnx")
        .to_string();
    if model_file.contains('/') || model_file.starts_with('.') || !dir.join(&model_file).is_file() {
        return Err(bad(format!(
            "the onnx flavor names model file `{model_file}`, which is not a file in the directory"
        )));
    }
    let text_field = |key: &str| {
        yaml.get(key)
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_string)
    };
    let signature = yaml.get("signature").ok_or_else(|| {
        bad("MLmodel has no `signature`; log the model with a signature (infer_signature)".into())
    })?;
    let sig_field = |key: &str| {
        signature
            .get(key)
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_string)
    };
    let inputs = sig_field("inputs").ok_or_else(|| bad("the signature has no `inputs`".into()))?;
    ml_core::Schema::from_mlflow_signature_json(&inputs)?;
    let mut all_flavors = flavors.clone();
    let flavor = StreamscoreFlavor {
        format_version: ARTIFACT_FORMAT_VERSION,
        model_file: model_file.clone(),
        model_kind: "onnx".into(),
        streamscore_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    all_flavors.insert(
        "streamscore".into(),
        serde_yaml::to_value(&flavor).map_err(|e| Error::Internal(e.to_string()))?,
    );
    let metadata: BTreeMap<String, String> = yaml
        .get("metadata")
        .and_then(|m| serde_yaml::from_value(m.clone()).ok())
        .unwrap_or_default();
    let mlmodel = MlModel {
        artifact_path: text_field("artifact_path").unwrap_or_else(|| "model".into()),
        flavors: all_flavors,
        model_uuid: text_field("model_uuid").unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        run_id: text_field("run_id").unwrap_or_default(),
        utc_time_created: text_field("utc_time_created").unwrap_or_default(),
        signature: Signature {
            inputs,
            outputs: sig_field("outputs").unwrap_or_else(|| "[]".into()),
            params: sig_field("params"),
        },
        metadata,
    };

    // Build the converted directory beside nothing the user owns: a private temporary folder.
    let staging = tempdir_for_import()?;
    let out = staging.join("artifact");
    let result = (|| -> Result<ModelArtifact> {
        fs::create_dir_all(out.join(ATTACHMENTS_DIR)).map_err(|e| Error::io("create directory", &out, e))?;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let yaml = serde_yaml::to_string(&mlmodel).map_err(|e| Error::Internal(e.to_string()))?;
        files.push((MLMODEL_FILE.into(), yaml.into_bytes()));
        for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if file_name == MLMODEL_FILE {
                continue;
            }
            if path.is_dir() {
                return Err(bad(format!(
                    "sub-directory `{file_name}` is not supported: streamscore imports the model file and top-level files only"
                )));
            }
            let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let rel = if file_name == model_file {
                file_name
            } else {
                format!("{ATTACHMENTS_DIR}/{file_name}")
            };
            files.push((rel, bytes));
        }
        let mut sums = String::new();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (rel, bytes) in &files {
            let p = out.join(rel);
            fs::write(&p, bytes).map_err(|e| Error::io("write", &p, e))?;
            sums.push_str(&format!("{}  {rel}\n", sha256_hex(bytes)));
        }
        let p = out.join(CHECKSUMS_FILE);
        fs::write(&p, sums).map_err(|e| Error::io("write", &p, e))?;
        Ok(ModelArtifact::load(&out)?)
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

fn tempdir_for_import() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("streamscore-import-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    Ok(dir)
}
