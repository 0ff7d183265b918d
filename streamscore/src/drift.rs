//! Drift workflows: profile training data, store the profile with the model, and compare current
//! data (a CSV file or an inference-log directory) with it — what `streamscore profile` and
//! `streamscore drift` do, callable from Rust.
//!
//! References are a `profile.json` file or a model artifact directory (its `profile.json`
//! attachment). Registry references (`name@alias`) need the registry and are refused with a
//! message saying so. Parquet input waits for the stream crate's Parquet reader.

use std::path::{Path, PathBuf};

use ml_core::{
    CsvTable, Error, Frame, InferOptions, Model, ModelArtifact, NativeModel, ReadOptions, Result, Schema,
};
use ml_drift::{DriftOptions, DriftReport, ProfileOptions, ReferenceProfile, drift_from_profile};

/// Name of the artifact attachment that holds the training profile.
pub const PROFILE_ATTACHMENT: &str = "profile.json";

/// Collection of the inference-log layout that drift reads.
pub const MODEL_INPUTS: &str = "model_inputs";

fn drift_error(e: ml_drift::Error) -> Error {
    match e {
        ml_drift::Error::Core(e) => e,
        other => Error::invalid_parameter("drift", other.to_string()),
    }
}

/// Profiles a frame (and the model's predictions on it when a model is given).
pub fn profile_frame(
    frame: &Frame,
    model: Option<&dyn Model>,
    options: &ProfileOptions,
) -> Result<ReferenceProfile> {
    let predictions = model.map(|m| m.predict(frame)).transpose()?;
    ReferenceProfile::from_frame(frame, predictions.as_ref(), options).map_err(drift_error)
}

/// Reads a CSV file with its schema: `schema` if given, else `<data>.schema.json` beside it,
/// else inferred; columns in `drop` are left out.
pub fn read_csv(data: &Path, schema: Option<&Path>, drop: &[String]) -> Result<Frame> {
    let table = CsvTable::read_path(data)?;
    let sidecar = crate::train::sidecar_schema_path(data);
    let schema = match schema
        .map(Path::to_path_buf)
        .or_else(|| sidecar.is_file().then_some(sidecar))
    {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read schema", &path, e))?;
            Schema::from_json(&text)?
        }
        None => table.infer_schema(&InferOptions::default())?,
    };
    let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
    let schema = schema.without(&drop)?;
    table.to_frame(schema, &ReadOptions::named(data.display().to_string()))
}

/// Attaches the profile of the training data (features read with the model's schema, plus the
/// model's predictions on them) to an artifact as [`PROFILE_ATTACHMENT`].
pub fn attach_training_profile(
    artifact: ModelArtifact,
    model: &NativeModel,
    data: &Path,
) -> Result<ModelArtifact> {
    let table = CsvTable::read_path(data)?;
    let frame = table.to_frame(
        model.schema().clone(),
        &ReadOptions::named(data.display().to_string()),
    )?;
    let profile = profile_frame(&frame, Some(model), &ProfileOptions::default())?;
    artifact.with_attachment(
        PROFILE_ATTACHMENT,
        profile.to_json().map_err(drift_error)?.into_bytes(),
    )
}

/// Loads a reference: a `profile.json` file or a model artifact directory.
pub fn load_reference(spec: &str) -> Result<ReferenceProfile> {
    let path = PathBuf::from(spec);
    if path.is_dir() {
        return artifact_profile(&ModelArtifact::load(&path)?, &path.display().to_string());
    }
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        return ReferenceProfile::from_json(&text).map_err(drift_error);
    }
    if spec.contains('@') {
        return Err(Error::invalid_parameter(
            "reference",
            format!(
                "`{spec}` looks like a registry reference: resolve it through a registry (the CLI's --registry), or pass a profile.json or a model artifact directory"
            ),
        ));
    }
    Err(Error::invalid_parameter(
        "reference",
        format!("`{spec}` is neither a profile.json file nor a model artifact directory"),
    ))
}

/// The reference profile stored in a model artifact (its [`PROFILE_ATTACHMENT`]); `origin` names
/// the artifact in the error (a directory or a registry reference).
pub fn artifact_profile(artifact: &ModelArtifact, origin: &str) -> Result<ReferenceProfile> {
    let bytes = artifact.attachment(PROFILE_ATTACHMENT).ok_or_else(|| Error::Artifact {
        path: PathBuf::from(origin),
        reason: format!(
            "no {PROFILE_ATTACHMENT} attachment; retrain with this streamscore or run `streamscore profile` on the training data"
        ),
    })?;
    ReferenceProfile::from_json(&String::from_utf8_lossy(bytes)).map_err(drift_error)
}

/// The `.jsonl` files of the `model_inputs` collection under `root`, sorted by path (the
/// layout's date folders make that time order).
pub fn inference_log_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "jsonl") {
                let under_inputs = p
                    .strip_prefix(root)
                    .map(|rel| rel.components().any(|c| c.as_os_str() == MODEL_INPUTS))
                    .unwrap_or(false)
                    || root.components().any(|c| c.as_os_str() == MODEL_INPUTS);
                if under_inputs {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the rows of an inference-log directory (`model_inputs` collection, one JSON object per
/// line with the rows in `data`) into a frame with `schema`.
pub fn read_inference_logs(root: &Path, schema: &Schema) -> Result<Frame> {
    let files = inference_log_files(root)?;
    if files.is_empty() {
        return Err(Error::invalid_parameter(
            "current",
            format!(
                "no .jsonl files of the `{MODEL_INPUTS}` collection under {}; expected {{root}}/{{endpoint}}/{{deployment}}/{MODEL_INPUTS}/yyyy/MM/dd/HH/*.jsonl",
                root.display()
            ),
        ));
    }
    let mut rows = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io("read", file, e))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let event: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Parse {
                source_name: format!("{}:{}", file.display(), i + 1),
                reason: e.to_string(),
            })?;
            match event.get("data") {
                Some(serde_json::Value::Array(batch)) => rows.extend(batch.iter().cloned()),
                _ => {
                    return Err(Error::Parse {
                        source_name: format!("{}:{}", file.display(), i + 1),
                        reason: "expected a data-collection event with a `data` array of rows".into(),
                    });
                }
            }
        }
    }
    Frame::from_json_records(
        &rows,
        schema.clone(),
        &ReadOptions::named(root.display().to_string()),
    )
}

/// Reads a Parquet file, or every Parquet file of a directory, with `schema`.
fn read_parquet(path: &Path, schema: Schema) -> Result<Frame> {
    ml_stream::parquet::read_frame(path, std::sync::Arc::new(schema)).map_err(|e| match e {
        ml_stream::Error::Core(core) => core,
        other => Error::Parse {
            source_name: path.display().to_string(),
            reason: other.to_string(),
        },
    })
}

/// Reads current data: a CSV file, a Parquet file or export directory, or an inference-log
/// directory. Read with the reference's
/// schema (the profile carries it).
pub fn read_current(path: &Path, reference: &ReferenceProfile) -> Result<Frame> {
    let schema = reference.schema.clone().ok_or_else(|| {
        Error::invalid_parameter(
            "reference",
            "the profile has no schema; recompute it with `streamscore profile`",
        )
    })?;
    let parquet_dir =
        path.is_dir() && ml_stream::parquet::parquet_files(path).is_ok_and(|files| !files.is_empty());
    if path.is_dir() && !parquet_dir {
        return read_inference_logs(path, &schema);
    }
    match path.extension().and_then(|e| e.to_str()) {
        // A Parquet export (`--sink parquet:DIR`) or any Parquet file with the features.
        _ if parquet_dir => read_parquet(path, schema),
        Some("parquet") => read_parquet(path, schema),
        _ => {
            // Only the columns the reference profiled and the current file has: a target
            // column in the training file is not expected in production data.
            let table = CsvTable::read_path(path)?;
            let missing: Vec<&str> = schema
                .names()
                .filter(|n| !table.header().iter().any(|h| h == n) && reference.feature(n).is_none())
                .collect();
            let schema = schema.without(&missing)?;
            table.to_frame(schema, &ReadOptions::named(path.display().to_string()))
        }
    }
}

/// Compares current data with a reference; with the model, its predictions on the current data
/// are compared with the profiled training predictions too (prediction drift).
pub fn drift(
    reference: &ReferenceProfile,
    current: &Frame,
    model: Option<&dyn Model>,
    options: &DriftOptions,
) -> Result<DriftReport> {
    let predictions = match model {
        Some(m) if !reference.outputs.is_empty() => Some(m.predict(current)?),
        _ => None,
    };
    drift_from_profile(reference, current, predictions.as_ref(), options).map_err(drift_error)
}

/// The reference named by `spec` (as [`load_reference`] reads it) and, when `spec` is a model
/// artifact directory, its model too (for prediction drift); the artifact is loaded and its
/// checksums verified once.
pub fn load_reference_with_model(
    spec: &str,
) -> Result<(ReferenceProfile, Option<std::sync::Arc<dyn Model>>)> {
    let path = Path::new(spec);
    if path.is_dir() {
        let artifact = ModelArtifact::load(path)?;
        let profile = artifact_profile(&artifact, &path.display().to_string())?;
        return Ok((profile, Some(artifact.load_model()?)));
    }
    Ok((load_reference(spec)?, None))
}
