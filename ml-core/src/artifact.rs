//! Model artifacts: the portable, checksummed directory that holds a model.
//!
//! Layout (one directory):
//! ```text
//! MLmodel            MLflow-style YAML: flavors, signature, model_uuid, run_id, utc_time_created
//! model.json         the model file (native format; other flavors name their own file)
//! metrics.json       evaluation metrics recorded at training time (a JSON object)
//! attachments/NAME   opaque named files (e.g. a drift reference profile)
//! checksums          sha256 of every other file, in `sha256sum` format
//! ```
//! An artifact is written to a temporary sibling directory and renamed into place, so a reader
//! never sees half of one. Loading verifies every checksum and refuses files that are missing,
//! changed, truncated, or not listed, and format versions newer than this build.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::native::NativeModel;

/// The newest artifact layout version this build writes and reads.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;

/// The name of the metadata file.
pub const MLMODEL_FILE: &str = "MLmodel";
/// The name of the checksum file.
pub const CHECKSUMS_FILE: &str = "checksums";
/// The name of the metrics file.
pub const METRICS_FILE: &str = "metrics.json";
/// The folder holding attachments.
pub const ATTACHMENTS_DIR: &str = "attachments";
/// The file name of a native model.
pub const NATIVE_MODEL_FILE: &str = "model.json";
/// The file name of an ONNX model.
pub const ONNX_MODEL_FILE: &str = "model.onnx";
/// The `model_kind` of an ONNX model in the `streamscore` flavor.
pub const ONNX_MODEL_KIND: &str = "onnx";
/// The attachment holding a model's full schema (JSON form), for model files that do not
/// carry it themselves.
pub const SCHEMA_ATTACHMENT: &str = "schema.json";

/// The `streamscore` flavor entry of `MLmodel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamscoreFlavor {
    /// Artifact layout version ([`ARTIFACT_FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The model file inside the artifact.
    pub model_file: String,
    /// The model kind (`logistic_regression`, ...), as [`Model::kind`].
    pub model_kind: String,
    /// The streamscore version that wrote it.
    pub streamscore_version: String,
}

/// MLflow's `signature` block: JSON strings of column specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Input columns (JSON string).
    pub inputs: String,
    /// Output columns (JSON string).
    pub outputs: String,
    /// Parameters (always `null` here).
    #[serde(default)]
    pub params: Option<String>,
}

/// The contents of the `MLmodel` file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlModel {
    /// MLflow's artifact path (`model`).
    pub artifact_path: String,
    /// Flavors; `streamscore` is always present in artifacts written here, others are kept as read.
    pub flavors: BTreeMap<String, serde_yaml::Value>,
    /// Unique id of this model (32 hex digits, as MLflow writes it).
    pub model_uuid: String,
    /// The training run that produced it.
    pub run_id: String,
    /// Creation time, UTC, `YYYY-MM-DD HH:MM:SS.ffffff` as MLflow writes it.
    pub utc_time_created: String,
    /// Input/output signature.
    pub signature: Signature,
    /// Free-form tags (MLflow's `metadata`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl MlModel {
    /// The parsed `streamscore` flavor.
    pub fn streamscore_flavor(&self) -> Option<StreamscoreFlavor> {
        self.flavors
            .get("streamscore")
            .and_then(|v| serde_yaml::from_value(v.clone()).ok())
    }
}

/// A model with its metadata, metrics and attachments, as saved in one directory.
#[derive(Clone, Debug)]
pub struct ModelArtifact {
    mlmodel: MlModel,
    model_bytes: Vec<u8>,
    metrics: serde_json::Map<String, serde_json::Value>,
    attachments: BTreeMap<String, Vec<u8>>,
    path: Option<PathBuf>,
}

impl ModelArtifact {
    /// An artifact holding a native model, with a fresh `model_uuid`, a fresh `run_id` and the
    /// current time.
    pub fn from_native(model: &NativeModel) -> Result<ModelArtifact> {
        let flavor = StreamscoreFlavor {
            format_version: ARTIFACT_FORMAT_VERSION,
            model_file: NATIVE_MODEL_FILE.into(),
            model_kind: model.kind().to_string(),
            streamscore_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut flavors = BTreeMap::new();
        flavors.insert(
            "streamscore".to_string(),
            serde_yaml::to_value(&flavor).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let mlmodel = MlModel {
            artifact_path: "model".into(),
            flavors,
            model_uuid: uuid::Uuid::new_v4().simple().to_string(),
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            utc_time_created: now_mlflow(),
            signature: Signature {
                inputs: model.schema().to_mlflow_signature_json(),
                outputs: model.output().to_mlflow_signature_json(),
                params: None,
            },
            metadata: BTreeMap::new(),
        };
        Ok(ModelArtifact {
            mlmodel,
            model_bytes: model.to_json_bytes()?,
            metrics: serde_json::Map::new(),
            attachments: BTreeMap::new(),
            path: None,
        })
    }

    /// Sets the run id (builder style).
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.mlmodel.run_id = run_id.into();
        self
    }

    /// Adds a tag (stored as MLflow `metadata`).
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.mlmodel.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the metrics; `metrics` must serialize to a JSON object.
    pub fn with_metrics(mut self, metrics: &impl Serialize) -> Result<Self> {
        match serde_json::to_value(metrics) {
            Ok(serde_json::Value::Object(map)) => {
                self.metrics = map;
                Ok(self)
            }
            Ok(other) => Err(Error::invalid_parameter(
                "metrics",
                format!("must be a JSON object, got {other}"),
            )),
            Err(e) => Err(Error::invalid_parameter("metrics", e.to_string())),
        }
    }

    /// Adds a named attachment. Names are one path component of letters, digits, `.`, `_`, `-`.
    pub fn with_attachment(mut self, name: &str, bytes: Vec<u8>) -> Result<Self> {
        check_attachment_name(name)?;
        self.attachments.insert(name.to_string(), bytes);
        Ok(self)
    }

    /// The `MLmodel` metadata.
    pub fn mlmodel(&self) -> &MlModel {
        &self.mlmodel
    }

    /// The metrics recorded with the model.
    pub fn metrics(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.metrics
    }

    /// The attachment called `name`.
    pub fn attachment(&self, name: &str) -> Option<&[u8]> {
        self.attachments.get(name).map(Vec::as_slice)
    }

    /// Names of all attachments.
    pub fn attachment_names(&self) -> impl Iterator<Item = &str> {
        self.attachments.keys().map(String::as_str)
    }

    /// The directory it was loaded from or saved to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The raw bytes of the model file.
    pub fn model_bytes(&self) -> &[u8] {
        &self.model_bytes
    }

    fn flavor(&self) -> Result<StreamscoreFlavor> {
        self.mlmodel.streamscore_flavor().ok_or_else(|| Error::Artifact {
            path: self.path.clone().unwrap_or_default(),
            reason: "MLmodel has no valid `streamscore` flavor".into(),
        })
    }

    /// The native model inside.
    pub fn native_model(&self) -> Result<NativeModel> {
        let flavor = self.flavor()?;
        let origin = self.path.clone().unwrap_or_default().join(&flavor.model_file);
        NativeModel::from_json_bytes(&self.model_bytes, &origin)
    }

    /// The model inside, ready to predict (ONNX models need the `onnx` feature).
    pub fn load_model(&self) -> Result<Arc<dyn Model>> {
        if self.flavor()?.model_kind == ONNX_MODEL_KIND {
            return self.load_onnx_model();
        }
        Ok(Arc::new(self.native_model()?))
    }

    #[cfg(feature = "onnx")]
    fn load_onnx_model(&self) -> Result<Arc<dyn Model>> {
        let options = crate::onnx::OnnxOptions::default();
        Ok(Arc::new(crate::onnx::OnnxModel::from_artifact(self, &options)?))
    }

    #[cfg(not(feature = "onnx"))]
    fn load_onnx_model(&self) -> Result<Arc<dyn Model>> {
        Err(Error::OnnxRuntimeUnavailable {
            reason: "this build of streamscore has no ONNX support; build it with the `onnx` feature".into(),
        })
    }

    /// An artifact holding a model file of another format than the native one (an ONNX graph,
    /// `model_kind` [`ONNX_MODEL_KIND`]), with its schema and outputs as the signature, the
    /// full schema (vocabularies included, which MLflow's signature cannot hold) as the
    /// attachment [`SCHEMA_ATTACHMENT`], and `extra_flavors` (e.g. MLflow's `onnx` flavor) next
    /// to the `streamscore` flavor.
    pub fn from_model_file(
        model_kind: &str,
        model_file: &str,
        model_bytes: Vec<u8>,
        schema: &crate::schema::Schema,
        output: &crate::model::OutputSpec,
        extra_flavors: BTreeMap<String, serde_yaml::Value>,
    ) -> Result<ModelArtifact> {
        if !safe_relative(model_file) || model_file.contains('/') || model_file == MLMODEL_FILE {
            return Err(Error::invalid_parameter(
                "model_file",
                format!("{model_file:?} must be a plain file name"),
            ));
        }
        let flavor = StreamscoreFlavor {
            format_version: ARTIFACT_FORMAT_VERSION,
            model_file: model_file.into(),
            model_kind: model_kind.into(),
            streamscore_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut flavors = extra_flavors;
        flavors.insert(
            "streamscore".to_string(),
            serde_yaml::to_value(&flavor).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let mlmodel = MlModel {
            artifact_path: "model".into(),
            flavors,
            model_uuid: uuid::Uuid::new_v4().simple().to_string(),
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            utc_time_created: now_mlflow(),
            signature: Signature {
                inputs: schema.to_mlflow_signature_json(),
                outputs: output.to_mlflow_signature_json(),
                params: None,
            },
            metadata: BTreeMap::new(),
        };
        ModelArtifact {
            mlmodel,
            model_bytes,
            metrics: serde_json::Map::new(),
            attachments: BTreeMap::new(),
            path: None,
        }
        .with_attachment(SCHEMA_ATTACHMENT, schema.to_json().into_bytes())
    }

    /// Writes the artifact to `dir`, which must not exist or be empty.
    ///
    /// Files are written into a temporary sibling directory, synced, and renamed into place.
    pub fn save(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if dir.exists() {
            let non_empty = fs::read_dir(dir)
                .map_err(|e| Error::io("read directory", dir, e))?
                .next()
                .is_some();
            if non_empty {
                return Err(Error::Artifact {
                    path: dir.to_path_buf(),
                    reason: "the directory already exists and is not empty; choose another path or remove it"
                        .into(),
                });
            }
        }
        let flavor = self.flavor()?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io("create directory", &parent, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let tmp = parent.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| -> Result<()> {
            fs::create_dir(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            let yaml = serde_yaml::to_string(&self.mlmodel).map_err(|e| Error::Internal(e.to_string()))?;
            files.push((MLMODEL_FILE.into(), yaml.into_bytes()));
            files.push((flavor.model_file.clone(), self.model_bytes.clone()));
            let metrics =
                serde_json::to_vec_pretty(&self.metrics).map_err(|e| Error::Internal(e.to_string()))?;
            files.push((METRICS_FILE.into(), metrics));
            for (n, bytes) in &self.attachments {
                files.push((format!("{ATTACHMENTS_DIR}/{n}"), bytes.clone()));
            }
            if !self.attachments.is_empty() {
                let d = tmp.join(ATTACHMENTS_DIR);
                fs::create_dir(&d).map_err(|e| Error::io("create directory", &d, e))?;
            }
            let mut sums = String::new();
            files.sort_by(|a, b| a.0.cmp(&b.0));
            for (rel, bytes) in &files {
                write_synced(&tmp.join(rel), bytes)?;
                sums.push_str(&format!("{}  {rel}\n", sha256_hex(bytes)));
            }
            write_synced(&tmp.join(CHECKSUMS_FILE), sums.as_bytes())?;
            if dir.exists() {
                fs::remove_dir(dir).map_err(|e| Error::io("replace empty directory", dir, e))?;
            }
            fs::rename(&tmp, dir).map_err(|e| Error::io("rename into place", dir, e))?;
            // Make the rename itself durable.
            if let Ok(d) = fs::File::open(&parent) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result?;
        self.path = Some(dir.to_path_buf());
        Ok(())
    }

    /// Loads and verifies an artifact directory.
    pub fn load(dir: impl AsRef<Path>) -> Result<ModelArtifact> {
        let dir = dir.as_ref();
        let bad = |reason: String| Error::Artifact {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(bad("no such directory".into()));
        }
        let sums_path = dir.join(CHECKSUMS_FILE);
        let sums = match fs::read_to_string(&sums_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(
                    "no `checksums` file: not a streamscore model artifact, or it was not completely written"
                        .into(),
                ));
            }
            Err(e) => return Err(Error::io("read", sums_path, e)),
        };
        let mut listed: BTreeMap<String, String> = BTreeMap::new();
        for (i, line) in sums.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let (hash, rel) = line
                .split_once("  ")
                .filter(|(h, r)| {
                    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) && safe_relative(r)
                })
                .ok_or_else(|| bad(format!("`checksums` line {} is malformed", i + 1)))?;
            listed.insert(rel.to_string(), hash.to_ascii_lowercase());
        }
        let mut present = Vec::new();
        list_files(dir, dir, &mut present)?;
        for rel in &present {
            if rel != CHECKSUMS_FILE && !listed.contains_key(rel) {
                return Err(bad(format!(
                    "file `{rel}` is not listed in `checksums`: the artifact was modified after it was written"
                )));
            }
        }
        let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (rel, want) in &listed {
            let p = dir.join(rel);
            let bytes = match fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(bad(format!("file `{rel}` listed in `checksums` is missing")));
                }
                Err(e) => return Err(Error::io("read", p, e)),
            };
            if &sha256_hex(&bytes) != want {
                return Err(bad(format!(
                    "checksum mismatch for `{rel}`: the file was changed or truncated after the artifact was written"
                )));
            }
            contents.insert(rel.clone(), bytes);
        }
        let yaml = contents
            .remove(MLMODEL_FILE)
            .ok_or_else(|| bad("no `MLmodel` file".into()))?;
        let mlmodel: MlModel =
            serde_yaml::from_slice(&yaml).map_err(|e| bad(format!("`MLmodel` is not valid: {e}")))?;
        let flavor_value = mlmodel
            .flavors
            .get("streamscore")
            .ok_or_else(|| bad("`MLmodel` has no `streamscore` flavor".into()))?;
        let version = flavor_value
            .get("format_version")
            .and_then(serde_yaml::Value::as_u64);
        match version {
            Some(v) if v > u64::from(ARTIFACT_FORMAT_VERSION) => {
                return Err(Error::UnsupportedFormatVersion {
                    path: dir.to_path_buf(),
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                    supported: ARTIFACT_FORMAT_VERSION,
                });
            }
            Some(_) => {}
            None => return Err(bad("the `streamscore` flavor has no format_version".into())),
        }
        let flavor: StreamscoreFlavor = serde_yaml::from_value(flavor_value.clone())
            .map_err(|e| bad(format!("the `streamscore` flavor is not valid: {e}")))?;
        let model_bytes = contents
            .remove(&flavor.model_file)
            .ok_or_else(|| bad(format!("model file `{}` is missing", flavor.model_file)))?;
        let metrics = match contents.remove(METRICS_FILE) {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| bad(format!("`metrics.json` is not a JSON object: {e}")))?,
            None => serde_json::Map::new(),
        };
        let prefix = format!("{ATTACHMENTS_DIR}/");
        let attachments = contents
            .into_iter()
            .filter_map(|(rel, b)| rel.strip_prefix(&prefix).map(|n| (n.to_string(), b)))
            .collect();
        Ok(ModelArtifact {
            mlmodel,
            model_bytes,
            metrics,
            attachments,
            path: Some(dir.to_path_buf()),
        })
    }
}

/// Loads the model of the artifact at `dir` (verifying it first).
pub fn load_model(dir: impl AsRef<Path>) -> Result<Arc<dyn Model>> {
    ModelArtifact::load(dir)?.load_model()
}

fn check_attachment_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_parameter(
            "attachment",
            format!("name {name:?} must be letters, digits, '.', '_' or '-' and not start with '.'"),
        ))
    }
}

fn safe_relative(rel: &str) -> bool {
    !rel.is_empty() && !rel.starts_with('/') && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io("stat", &path, e))?;
        if ty.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(rel.join("/"));
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))?;
    f.sync_all().map_err(|e| Error::io("sync", path, e))
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn now_mlflow() -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    );
    time::OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}
