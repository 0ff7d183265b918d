//! ONNX models scored natively or through ONNX Runtime (feature `onnx`).
//!
//! [`OnnxModel`] loads a `model.onnx` (scikit-learn exports from skl2onnx, XGBoost and LightGBM
//! exports from onnxmltools, or any graph with the same input/output conventions) and implements
//! [`Model`]:
//!
//! - **Inputs.** Either one numeric tensor `[N, F]` that takes every schema field in order (the
//!   schema's fields must all be numeric), or one input per schema field named after it, as
//!   skl2onnx writes for pipelines with categorical columns (`[N, 1]` float, double, int64 or
//!   string tensors; categorical fields go in as their category text).
//! - **Outputs.** Classifiers: a probability tensor `[N, K]`, or ZipMap's sequence of maps, in
//!   the order of the class labels found in the graph (ZipMap's or the classifier operator's
//!   `classlabels_*` attribute, or labels given in [`OnnxOptions::labels`]). Regressors: one
//!   float tensor (`variable`) and no label output.
//! - **Engine.** [`Engine::Auto`] (the default) evaluates the graph natively
//!   ([`crate::onnx_ml`]) when every node is a supported classical ONNX-ML operator, and falls
//!   back to ONNX Runtime otherwise; [`Engine::Native`] and [`Engine::Runtime`] force one. A
//!   graph that cannot run natively, with no runtime library available, is an error that lists
//!   the unsupported operators.
//! - **Runtime.** The ONNX Runtime library is loaded at run time (never downloaded): see
//!   [`locate_runtime_library`] for where it is looked for. Sessions use graph optimisation
//!   level `All` and, by default, one intra-op and one inter-op thread, so that several scorers
//!   side by side do not oversubscribe the cores.
//!
//! A session is used by one batch at a time (ONNX Runtime's `Run` takes the session mutably in
//! `ort`), so concurrent `predict` calls on one model queue; load one model per worker to score
//! in parallel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ndarray::Array2;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynMapValueType, Tensor, TensorElementType, ValueType};

use crate::artifact::{ModelArtifact, ONNX_MODEL_FILE, ONNX_MODEL_KIND, SCHEMA_ATTACHMENT};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::model::{Model, OutputSpec, Predictions, check_frame_schema};
use crate::onnx_ml::{
    Elem, InputInfo, InputLayout, NativeOnnxModel, derive_schema, graph_labels, int_column, map_inputs,
    numeric_column, parse_model, signature_labels, string_column,
};
use crate::schema::Schema;

/// The environment variable `ort` itself reads: the path of the ONNX Runtime library.
pub const ORT_DYLIB_PATH_VAR: &str = "ORT_DYLIB_PATH";
/// streamscore's own environment variable for the ONNX Runtime library: a library file, or a
/// directory holding one (an `onnxruntime` Python package or its `capi` folder).
pub const STREAMSCORE_ORT_LIB_VAR: &str = "STREAMSCORE_ORT_LIB";
/// The ONNX Runtime versions this build is tested with (the PyPI `onnxruntime` wheels).
pub const SUPPORTED_RUNTIME_VERSIONS: &str = ">= 1.20, < 2 (tested with 1.20.1 and 1.31.1)";

const INSTALL_HINT: &str = "install the library with `pip install 'onnxruntime>=1.20'` (or run ./scripts/python-env.sh for the project's .venv), or set STREAMSCORE_ORT_LIB or ORT_DYLIB_PATH to the libonnxruntime shared library";

/// Which engine scores an ONNX model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// Native when every operator of the graph is supported, else ONNX Runtime.
    #[default]
    Auto,
    /// Native evaluation only (an unsupported operator is an error).
    Native,
    /// ONNX Runtime only.
    Runtime,
}

impl Engine {
    /// `auto`, `native` or `runtime`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Native => "native",
            Engine::Runtime => "runtime",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = Error;

    fn from_str(s: &str) -> Result<Engine> {
        match s {
            "auto" => Ok(Engine::Auto),
            "native" => Ok(Engine::Native),
            "runtime" => Ok(Engine::Runtime),
            other => Err(Error::invalid_parameter(
                "engine",
                format!("`{other}` is not an engine; use auto, native or runtime"),
            )),
        }
    }
}

/// The artifact tag that records the engine a model was imported with.
pub const ENGINE_TAG: &str = "onnx_engine";

/// Options for loading an ONNX model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxOptions {
    /// Threads ONNX Runtime uses inside one operator (default 1).
    pub intra_threads: usize,
    /// Threads ONNX Runtime uses across independent operators (default 1).
    pub inter_threads: usize,
    /// Class labels in probability-column order, overriding those found in the graph (needed
    /// only when the graph names none).
    pub labels: Option<Vec<String>>,
    /// The ONNX Runtime library to use instead of [`locate_runtime_library`]'s search. The
    /// library is loaded once per process: a later, different path is ignored.
    pub library: Option<PathBuf>,
    /// Which engine to use (default [`Engine::Auto`]).
    pub engine: Engine,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions {
            intra_threads: 1,
            inter_threads: 1,
            labels: None,
            library: None,
            engine: Engine::Auto,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Locating and loading the runtime library.

/// Finds the ONNX Runtime shared library, in this order:
///
/// 1. `ORT_DYLIB_PATH` (a library file; a relative path is taken next to the executable first,
///    as `ort` does);
/// 2. `STREAMSCORE_ORT_LIB` (a library file, or a directory holding one);
/// 3. the active virtual environment (`VIRTUAL_ENV`), then a `.venv` in the current directory
///    or one of its parents (the project's own environment from `scripts/python-env.sh`);
/// 4. the `onnxruntime` package of the active Python (`$PYTHON`, else `python3`).
///
/// A variable that is set but names no library is an error (it is never skipped silently).
/// When nothing is found, the error says how to install the library.
pub fn locate_runtime_library() -> Result<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cwd = std::env::current_dir().ok();
    locate_with(&env, cwd.as_deref(), true).map_err(|reason| Error::OnnxRuntimeUnavailable { reason })
}

fn locate_with(
    env: &dyn Fn(&str) -> Option<PathBuf>,
    cwd: Option<&Path>,
    ask_python: bool,
) -> std::result::Result<PathBuf, String> {
    if let Some(p) = env(ORT_DYLIB_PATH_VAR) {
        let next_to_exe = (!p.is_absolute())
            .then(|| std::env::current_exe().ok())
            .flatten()
            .and_then(|exe| exe.parent().map(|d| d.join(&p)))
            .filter(|q| q.is_file());
        if let Some(q) = next_to_exe {
            return Ok(q);
        }
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{ORT_DYLIB_PATH_VAR} is set to `{}`, which is not a file; point it at the libonnxruntime shared library, or unset it and {INSTALL_HINT}",
                p.display()
            ))
        };
    }
    if let Some(p) = env(STREAMSCORE_ORT_LIB_VAR) {
        if p.is_file() {
            return Ok(p);
        }
        if p.is_dir()
            && let Some(lib) = library_in_dir(&p).or_else(|| library_in_dir(&p.join("capi")))
        {
            return Ok(lib);
        }
        return Err(format!(
            "{STREAMSCORE_ORT_LIB_VAR} is set to `{}`, which is neither the libonnxruntime shared library nor a directory holding it; {INSTALL_HINT}",
            p.display()
        ));
    }
    let mut venvs: Vec<PathBuf> = env("VIRTUAL_ENV").into_iter().collect();
    if let Some(dir) = cwd {
        venvs.extend(dir.ancestors().map(|d| d.join(".venv")).filter(|v| v.is_dir()));
    }
    for venv in &venvs {
        if let Some(lib) = library_in_venv(venv) {
            return Ok(lib);
        }
    }
    if ask_python {
        let python = env("PYTHON").unwrap_or_else(|| PathBuf::from("python3"));
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
            ])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if let Some(lib) = library_in_dir(&dir.join("capi")) {
                return Ok(lib);
            }
        }
    }
    Err(format!(
        "no ONNX Runtime library found (looked at {ORT_DYLIB_PATH_VAR}, {STREAMSCORE_ORT_LIB_VAR}, the active and the project's .venv, and the `onnxruntime` package of the active Python); {INSTALL_HINT}"
    ))
}

fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let windows = venv
        .join("Lib")
        .join("site-packages")
        .join("onnxruntime")
        .join("capi");
    let mut candidates = vec![windows];
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python"))
            })
            .collect();
        pythons.sort();
        candidates.extend(
            pythons
                .into_iter()
                .map(|p| p.join("site-packages").join("onnxruntime").join("capi")),
        );
    }
    candidates.iter().find_map(|d| library_in_dir(d))
}

/// The ONNX Runtime library in `dir` (`libonnxruntime.so.1.x.y`, `libonnxruntime.1.x.y.dylib`,
/// `onnxruntime.dll`), ignoring the provider libraries beside it.
fn library_in_dir(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.is_file()
                && (name.starts_with("libonnxruntime.so")
                    || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))
                    || name == "onnxruntime.dll")
        })
        .collect();
    found.sort();
    found.pop()
}

struct Runtime {
    env: ort::environment::Environment,
    library: PathBuf,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// Loads the library once per process; a failed attempt is retried on the next call (the user
/// may install the library meanwhile).
fn runtime(library: Option<&Path>) -> Result<Arc<Runtime>> {
    // A named library that is not there is an error even when another one is loaded already.
    if let Some(p) = library
        && !p.is_file()
    {
        return Err(Error::OnnxRuntimeUnavailable {
            reason: format!(
                "the ONNX Runtime library `{}` does not exist; {INSTALL_HINT}",
                p.display()
            ),
        });
    }
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.clone());
    }
    let path = match library {
        Some(p) => p.to_path_buf(),
        None => locate_runtime_library()?,
    };
    let unavailable = |e: String| Error::OnnxRuntimeUnavailable {
        reason: format!("cannot load `{}`: {e}; {INSTALL_HINT}", path.display()),
    };
    let env = ort::init_from(&path)
        .map_err(|e| unavailable(e.to_string()))?
        .with_name("streamscore")
        .with_telemetry(false)
        .build()
        .map_err(|e| unavailable(e.to_string()))?;
    let rt = Arc::new(Runtime { env, library: path });
    *slot = Some(rt.clone());
    Ok(rt)
}

/// The version string of the loaded ONNX Runtime library and its path, loading it if needed.
pub fn runtime_info() -> Result<(String, PathBuf)> {
    let rt = runtime(None)?;
    let build = ort::info().to_string();
    Ok((build, rt.library.clone()))
}

// ---------------------------------------------------------------------------------------------
// Input and output layouts.

fn elem_of(ty: TensorElementType) -> Option<Elem> {
    match ty {
        TensorElementType::Float32 => Some(Elem::F32),
        TensorElementType::Float64 => Some(Elem::F64),
        TensorElementType::Int64 => Some(Elem::I64),
        TensorElementType::String => Some(Elem::Str),
        _ => None,
    }
}

#[derive(Clone, Debug)]
enum OutputLayout {
    Regression { name: String, elem: Elem },
    Tensor { name: String, elem: Elem },
    ZipMap { name: String, string_keys: bool },
}

fn describe_inputs(session: &Session) -> Vec<InputInfo> {
    session
        .inputs()
        .iter()
        .map(|o| {
            let (elem, type_name, shape) = match o.dtype() {
                ValueType::Tensor { ty, shape, .. } => (elem_of(*ty), format!("{ty:?}"), shape.to_vec()),
                other => (None, format!("{other:?}"), Vec::new()),
            };
            InputInfo {
                name: o.name().to_string(),
                elem,
                type_name,
                shape,
            }
        })
        .collect()
}

fn map_outputs(session: &Session) -> std::result::Result<(OutputLayout, Option<usize>), String> {
    let mut has_label = false;
    let mut zipmap = None;
    let mut floats = Vec::new();
    for o in session.outputs() {
        match o.dtype() {
            ValueType::Sequence(inner) => {
                if let ValueType::Map { key, .. } = inner.as_ref() {
                    zipmap.get_or_insert(OutputLayout::ZipMap {
                        name: o.name().to_string(),
                        string_keys: *key == TensorElementType::String,
                    });
                }
            }
            ValueType::Tensor { ty, shape, .. } => match elem_of(*ty) {
                Some(Elem::I64 | Elem::Str) => has_label = true,
                Some(e @ (Elem::F32 | Elem::F64)) => floats.push((o.name().to_string(), e, shape.to_vec())),
                None => {}
            },
            _ => {}
        }
    }
    if let Some(z) = zipmap {
        return Ok((z, None));
    }
    if has_label {
        // Prefer the conventional names, else the first float output.
        let pick = floats
            .iter()
            .position(|(n, ..)| n == "probabilities" || n == "output_probability")
            .unwrap_or(0);
        let (name, elem, shape) = floats.get(pick).cloned().ok_or_else(|| {
            "the model has a label output but no probability output (export classifiers with probabilities)".to_string()
        })?;
        let width = (shape.len() == 2 && shape[1] > 0).then_some(shape[1] as usize);
        return Ok((OutputLayout::Tensor { name, elem }, width));
    }
    match floats.as_slice() {
        [(name, elem, _)] => Ok((
            OutputLayout::Regression {
                name: name.clone(),
                elem: *elem,
            },
            None,
        )),
        _ => Err(format!(
            "cannot tell what the model predicts from its outputs ({}); expected a label and probabilities (classifier) or one float output (regressor)",
            session
                .outputs()
                .iter()
                .map(|o| o.name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// An ONNX model scored through ONNX Runtime; see the [module docs](self).
pub struct OnnxModel {
    schema: Schema,
    output: OutputSpec,
    labels: Arc<[String]>,
    bytes: Arc<[u8]>,
    producer: String,
    backend: Backend,
}

enum Backend {
    Native(Box<NativeOnnxModel>),
    Runtime {
        inputs: InputLayout,
        outputs: OutputLayout,
        session: Mutex<Session>,
        library: PathBuf,
    },
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("schema", &self.schema)
            .field("output", &self.output)
            .field("engine", &self.engine())
            .field("producer", &self.producer)
            .field("library", &self.runtime_library())
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Loads `path` with `schema` (derived from the model's inputs when `None`).
    pub fn load(path: impl AsRef<Path>, schema: Option<Schema>, options: &OnnxOptions) -> Result<OnnxModel> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        OnnxModel::from_bytes(bytes, &path.display().to_string(), schema, None, options)
    }

    /// Builds a model from the bytes of an `.onnx` file; `origin` names it in errors.
    ///
    /// `schema`: the fields the model reads (derived from the model's inputs when `None`);
    /// `columns`: names for the features of a single `[N, F]` input when deriving the schema.
    pub fn from_bytes(
        bytes: impl Into<Arc<[u8]>>,
        origin: &str,
        schema: Option<Schema>,
        columns: Option<&[String]>,
        options: &OnnxOptions,
    ) -> Result<OnnxModel> {
        let bytes: Arc<[u8]> = bytes.into();
        let proto = parse_model(&bytes, origin)?;
        let native = || {
            NativeOnnxModel::from_proto(
                &proto,
                bytes.clone(),
                origin,
                schema.clone(),
                columns,
                options.labels.clone(),
            )
            .map(OnnxModel::from_native)
        };
        match options.engine {
            Engine::Native => native(),
            Engine::Runtime => {
                OnnxModel::runtime_model(&proto, bytes.clone(), origin, schema, columns, options)
            }
            Engine::Auto => match native() {
                Err(Error::UnsupportedOnnxOperators { operators, .. }) => {
                    OnnxModel::runtime_model(&proto, bytes.clone(), origin, schema, columns, options).map_err(
                        |e| match e {
                            Error::OnnxRuntimeUnavailable { reason } => Error::OnnxRuntimeUnavailable {
                                reason: format!(
                                    "{origin} needs it: these operators do not run natively: {}. {reason}",
                                    operators.join("; ")
                                ),
                            },
                            other => other,
                        },
                    )
                }
                other => other,
            },
        }
    }

    fn from_native(model: NativeOnnxModel) -> OnnxModel {
        OnnxModel {
            schema: model.schema().clone(),
            output: model.output().clone(),
            labels: model.output().labels().to_vec().into(),
            bytes: model.shared_bytes(),
            producer: model.producer().to_string(),
            backend: Backend::Native(Box::new(model)),
        }
    }

    fn runtime_model(
        proto: &crate::onnx_ml::proto::ModelProto,
        bytes: Arc<[u8]>,
        origin: &str,
        schema: Option<Schema>,
        columns: Option<&[String]>,
        options: &OnnxOptions,
    ) -> Result<OnnxModel> {
        let rt = runtime(options.library.as_deref())?;
        let bad = |reason: String| Error::InvalidOnnxModel {
            origin: origin.to_string(),
            reason,
        };
        let rt_err = |what: &str, e: ort::Error<ort::session::builder::SessionBuilder>| Error::OnnxRuntime {
            reason: format!("{what}: {e}"),
        };
        let session = Session::builder(&rt.env)
            .map_err(|e| Error::OnnxRuntime {
                reason: format!("creating a session: {e}"),
            })?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| rt_err("setting the optimisation level", e))?
            .with_intra_threads(options.intra_threads.max(1))
            .map_err(|e| rt_err("setting intra-op threads", e))?
            .with_inter_threads(options.inter_threads.max(1))
            .map_err(|e| rt_err("setting inter-op threads", e))?
            .with_parallel_execution(options.inter_threads > 1)
            .map_err(|e| rt_err("setting parallel execution", e))?
            .commit_from_memory(&bytes)
            .map_err(|e| bad(format!("ONNX Runtime cannot load the graph: {e}")))?;

        let inputs = describe_inputs(&session);
        let schema = match schema {
            Some(s) => {
                if columns.is_some() {
                    return Err(Error::invalid_parameter(
                        "columns",
                        "give either a schema or column names, not both",
                    ));
                }
                s
            }
            None => derive_schema(&inputs, columns)?,
        };
        let input_layout = map_inputs(&inputs, &schema)?;
        let (outputs, width) = map_outputs(&session).map_err(bad)?;
        let (output, labels) = match &outputs {
            OutputLayout::Regression { .. } => (OutputSpec::Regression, Vec::new()),
            _ => {
                let graph = proto.graph.as_ref();
                let labels = options
                    .labels
                    .clone()
                    .or_else(|| graph.and_then(graph_labels))
                    .ok_or_else(|| {
                        bad("the graph names no class labels (no ZipMap or classifier operator with classlabels); pass the labels in probability-column order (--labels)".into())
                    })?;
                if let Some(w) = width
                    && w != labels.len()
                {
                    return Err(bad(format!(
                        "the probability output has {w} columns but there are {} class labels ({})",
                        labels.len(),
                        labels.join(", ")
                    )));
                }
                (OutputSpec::classification(labels.clone())?, labels)
            }
        };
        let producer = format!("{} {}", proto.producer_name(), proto.producer_version())
            .trim()
            .to_string();
        Ok(OnnxModel {
            schema,
            output,
            labels: labels.into(),
            bytes,
            producer,
            backend: Backend::Runtime {
                inputs: input_layout,
                outputs,
                session: Mutex::new(session),
                library: rt.library.clone(),
            },
        })
    }

    /// The engine that scores the model: [`Engine::Native`] or [`Engine::Runtime`].
    pub fn engine(&self) -> Engine {
        match self.backend {
            Backend::Native(_) => Engine::Native,
            Backend::Runtime { .. } => Engine::Runtime,
        }
    }

    /// The model as an artifact directory's contents: `model.onnx`, the `streamscore` flavor
    /// (`model_kind: onnx`), MLflow's `onnx` and `python_function` flavors, the signature, and
    /// the full schema as the `schema.json` attachment.
    pub fn to_artifact(&self) -> Result<ModelArtifact> {
        let mut flavors = std::collections::BTreeMap::new();
        let yaml = |pairs: &[(&str, &str)]| {
            let mut m = serde_yaml::Mapping::new();
            for (k, v) in pairs {
                m.insert((*k).into(), (*v).into());
            }
            serde_yaml::Value::Mapping(m)
        };
        flavors.insert(
            "onnx".to_string(),
            yaml(&[("data", ONNX_MODEL_FILE), ("providers", "CPUExecutionProvider")]),
        );
        flavors.insert(
            "python_function".to_string(),
            yaml(&[("loader_module", "mlflow.onnx"), ("data", ONNX_MODEL_FILE)]),
        );
        let artifact = ModelArtifact::from_model_file(
            ONNX_MODEL_KIND,
            ONNX_MODEL_FILE,
            self.bytes.to_vec(),
            &self.schema,
            &self.output,
            flavors,
        )?;
        let artifact = artifact.with_tag(ENGINE_TAG, self.engine().name());
        Ok(if self.producer.is_empty() {
            artifact
        } else {
            artifact.with_tag("onnx_producer", self.producer.clone())
        })
    }

    /// Loads the ONNX model of an artifact (one written by [`OnnxModel::to_artifact`], or an
    /// MLflow ONNX model imported by the registry).
    ///
    /// The schema comes from the `schema.json` attachment, else from the MLflow signature, else
    /// from the model's inputs; class labels from the signature's `probability_<label>` outputs
    /// when present (so labels given at import time stick), else from the graph. With
    /// [`Engine::Auto`], the engine recorded at import time ([`ENGINE_TAG`]) is used.
    pub fn from_artifact(artifact: &ModelArtifact, options: &OnnxOptions) -> Result<OnnxModel> {
        let origin = artifact
            .path()
            .map(|p| p.join(ONNX_MODEL_FILE).display().to_string())
            .unwrap_or_else(|| ONNX_MODEL_FILE.to_string());
        let schema = match artifact.attachment(SCHEMA_ATTACHMENT) {
            Some(bytes) => Some(Schema::from_json(&String::from_utf8_lossy(bytes))?),
            None => Schema::from_mlflow_signature_json(&artifact.mlmodel().signature.inputs).ok(),
        };
        let mut options = options.clone();
        if options.labels.is_none() {
            options.labels = signature_labels(&artifact.mlmodel().signature.outputs);
        }
        if options.engine == Engine::Auto
            && let Some(tag) = artifact.mlmodel().metadata.get(ENGINE_TAG)
        {
            options.engine = tag.parse()?;
        }
        OnnxModel::from_bytes(
            Arc::<[u8]>::from(artifact.model_bytes()),
            &origin,
            schema,
            None,
            &options,
        )
    }

    /// The bytes of the `.onnx` file.
    pub fn onnx_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The program that wrote the model (`skl2onnx 1.20.0`, ...), from its metadata.
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// The ONNX Runtime library the model runs on (`None` when it runs natively).
    pub fn runtime_library(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Native(_) => None,
            Backend::Runtime { library, .. } => Some(library),
        }
    }

    /// The natively compiled model, when the model runs natively.
    pub fn native(&self) -> Option<&NativeOnnxModel> {
        match &self.backend {
            Backend::Native(m) => Some(m),
            Backend::Runtime { .. } => None,
        }
    }

    /// The names of the model's graph inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        match &self.backend {
            Backend::Native(m) => m.input_names(),
            Backend::Runtime { inputs, .. } => match inputs {
                InputLayout::Matrix { name, .. } => vec![name.clone()],
                InputLayout::Columns(c) => c.iter().map(|(n, ..)| n.clone()).collect(),
            },
        }
    }

    fn feeds<'a>(
        &self,
        inputs: &InputLayout,
        frame: &'a Frame,
        idx: &[usize],
    ) -> Result<Vec<(String, SessionInputValue<'a>)>> {
        let n = frame.n_rows();
        let tensor_err = |e: ort::Error| Error::OnnxRuntime {
            reason: format!("building an input tensor: {e}"),
        };
        match inputs {
            InputLayout::Matrix { name, elem } => {
                let f = self.schema.len();
                let value: SessionInputValue = if *elem == Elem::F32 {
                    let mut data = vec![0f32; n * f];
                    for (j, &c) in idx.iter().enumerate() {
                        numeric_column(frame, c, |r, v| data[r * f + j] = v as f32);
                    }
                    Tensor::from_array(([n, f], data)).map_err(tensor_err)?.into()
                } else {
                    let mut data = vec![0f64; n * f];
                    for (j, &c) in idx.iter().enumerate() {
                        numeric_column(frame, c, |r, v| data[r * f + j] = v);
                    }
                    Tensor::from_array(([n, f], data)).map_err(tensor_err)?.into()
                };
                Ok(vec![(name.clone(), value)])
            }
            InputLayout::Columns(cols) => {
                let mut feeds = Vec::with_capacity(cols.len());
                for (name, elem, rank, j) in cols {
                    let c = idx[*j];
                    let shape: Vec<usize> = if *rank == 2 { vec![n, 1] } else { vec![n] };
                    let value: SessionInputValue = match elem {
                        Elem::F32 => {
                            let mut data = vec![0f32; n];
                            numeric_column(frame, c, |r, v| data[r] = v as f32);
                            Tensor::from_array((shape, data)).map_err(tensor_err)?.into()
                        }
                        Elem::F64 => {
                            let mut data = vec![0f64; n];
                            numeric_column(frame, c, |r, v| data[r] = v);
                            Tensor::from_array((shape, data)).map_err(tensor_err)?.into()
                        }
                        Elem::I64 => {
                            let data = int_column(frame, c, name)?;
                            Tensor::from_array((shape, data)).map_err(tensor_err)?.into()
                        }
                        Elem::Str => {
                            let data = string_column(frame, c, &self.schema.fields()[*j]);
                            let arr = ndarray::Array::from_shape_vec(ndarray::IxDyn(&shape), data)
                                .map_err(|e| Error::Internal(e.to_string()))?;
                            Tensor::from_string_array(&arr).map_err(tensor_err)?.into()
                        }
                    };
                    feeds.push((name.clone(), value));
                }
                Ok(feeds)
            }
        }
    }

    fn probabilities(
        &self,
        layout: &OutputLayout,
        outputs: &ort::session::SessionOutputs<'_>,
        n: usize,
    ) -> Result<Array2<f64>> {
        let k = self.labels.len();
        let run_err = |e: ort::Error| Error::OnnxRuntime {
            reason: format!("reading the model's output: {e}"),
        };
        let missing = |name: &str| Error::OnnxRuntime {
            reason: format!("the model returned no output `{name}`"),
        };
        match layout {
            OutputLayout::Tensor { name, elem } => {
                let v = outputs.get(name).ok_or_else(|| missing(name))?;
                let flat: Vec<f64> = if *elem == Elem::F32 {
                    let (_, d) = v.try_extract_tensor::<f32>().map_err(run_err)?;
                    d.iter().map(|&x| f64::from(x)).collect()
                } else {
                    let (_, d) = v.try_extract_tensor::<f64>().map_err(run_err)?;
                    d.to_vec()
                };
                if flat.len() != n * k {
                    return Err(Error::OnnxRuntime {
                        reason: format!(
                            "output `{name}` has {} values for {n} rows and {k} classes",
                            flat.len()
                        ),
                    });
                }
                Array2::from_shape_vec((n, k), flat).map_err(|e| Error::Internal(e.to_string()))
            }
            OutputLayout::ZipMap { name, string_keys } => {
                let v = outputs.get(name).ok_or_else(|| missing(name))?;
                let maps = v.try_extract_sequence::<DynMapValueType>().map_err(run_err)?;
                if maps.len() != n {
                    return Err(Error::OnnxRuntime {
                        reason: format!("output `{name}` has {} rows for {n} input rows", maps.len()),
                    });
                }
                let mut out = Array2::zeros((n, k));
                let absent = |label: &str| Error::OnnxRuntime {
                    reason: format!("output `{name}` has no probability for class `{label}`"),
                };
                for (r, m) in maps.iter().enumerate() {
                    if *string_keys {
                        let map: HashMap<String, f32> = m.try_extract_map().map_err(run_err)?;
                        for (c, label) in self.labels.iter().enumerate() {
                            out[[r, c]] = f64::from(*map.get(label).ok_or_else(|| absent(label))?);
                        }
                    } else {
                        let map: HashMap<i64, f32> = m.try_extract_map().map_err(run_err)?;
                        for (c, label) in self.labels.iter().enumerate() {
                            let key: i64 = label.parse().map_err(|_| absent(label))?;
                            out[[r, c]] = f64::from(*map.get(&key).ok_or_else(|| absent(label))?);
                        }
                    }
                }
                Ok(out)
            }
            OutputLayout::Regression { .. } => Err(Error::Internal("probabilities of a regressor".into())),
        }
    }
}

impl Model for OnnxModel {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn output(&self) -> &OutputSpec {
        &self.output
    }

    fn predict_with(&self, frame: &Frame, options: &crate::PredictOptions) -> Result<Predictions> {
        match &self.backend {
            Backend::Native(m) => m.predict_with(frame, options),
            Backend::Runtime { .. } => self.predict(frame),
        }
    }

    fn rows_independent(&self) -> bool {
        self.native().is_some_and(NativeOnnxModel::is_fused)
    }

    fn predict(&self, frame: &Frame) -> Result<Predictions> {
        let (inputs, layout, session) = match &self.backend {
            Backend::Native(m) => return m.predict(frame),
            Backend::Runtime {
                inputs,
                outputs,
                session,
                ..
            } => (inputs, outputs, session),
        };
        let idx = check_frame_schema(&self.schema, frame)?;
        let n = frame.n_rows();
        if n == 0 {
            return Ok(match self.output {
                OutputSpec::Regression => Predictions::Regression {
                    values: ndarray::Array1::zeros(0),
                },
                _ => Predictions::from_probabilities(
                    self.labels.clone(),
                    Array2::zeros((0, self.labels.len())),
                )?,
            });
        }
        let feeds = self.feeds(inputs, frame, &idx)?;
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(feeds).map_err(|e| Error::OnnxRuntime {
            reason: format!("running the model: {e}"),
        })?;
        match layout {
            OutputLayout::Regression { name, elem } => {
                let v = outputs.get(name).ok_or_else(|| Error::OnnxRuntime {
                    reason: format!("the model returned no output `{name}`"),
                })?;
                let err = |e: ort::Error| Error::OnnxRuntime {
                    reason: format!("reading the model's output: {e}"),
                };
                let values: Vec<f64> = if *elem == Elem::F32 {
                    let (_, d) = v.try_extract_tensor::<f32>().map_err(err)?;
                    d.iter().map(|&x| f64::from(x)).collect()
                } else {
                    v.try_extract_tensor::<f64>().map_err(err)?.1.to_vec()
                };
                if values.len() != n {
                    return Err(Error::OnnxRuntime {
                        reason: format!("output `{name}` has {} values for {n} rows", values.len()),
                    });
                }
                Ok(Predictions::Regression {
                    values: values.into(),
                })
            }
            _ => {
                let p = self.probabilities(layout, &outputs, n)?;
                Predictions::from_probabilities(self.labels.clone(), p)
            }
        }
    }

    fn kind(&self) -> &str {
        "onnx"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_variable_that_names_nothing_is_an_error_not_skipped() {
        let env =
            |k: &str| (k == ORT_DYLIB_PATH_VAR).then(|| PathBuf::from("/nonexistent/libonnxruntime.so"));
        let e = locate_with(&env, None, false).unwrap_err();
        assert!(
            e.contains("ORT_DYLIB_PATH is set to `/nonexistent/libonnxruntime.so`"),
            "{e}"
        );
        let env = |k: &str| (k == STREAMSCORE_ORT_LIB_VAR).then(|| PathBuf::from("/nonexistent/dir"));
        let e = locate_with(&env, None, false).unwrap_err();
        assert!(
            e.contains("STREAMSCORE_ORT_LIB") && e.contains("pip install"),
            "{e}"
        );
    }

    #[test]
    fn nothing_found_says_how_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let env = |_: &str| None;
        let e = locate_with(&env, Some(dir.path()), false).unwrap_err();
        assert!(
            e.contains("no ONNX Runtime library found") && e.contains("pip install"),
            "{e}"
        );
    }

    #[test]
    fn the_library_is_found_in_a_project_venv_and_in_a_package_directory() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir
            .path()
            .join(".venv/lib/python3.12/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let env = |_: &str| None;
        let found = locate_with(&env, Some(&sub), false).unwrap();
        assert_eq!(found, capi.join("libonnxruntime.so.1.31.1"));
        let pkg = capi.parent().unwrap().to_path_buf();
        let env = move |k: &str| (k == STREAMSCORE_ORT_LIB_VAR).then(|| pkg.clone());
        assert_eq!(
            locate_with(&env, None, false).unwrap(),
            capi.join("libonnxruntime.so.1.31.1")
        );
    }

    #[test]
    fn corrupt_bytes_are_refused_before_the_runtime_is_touched() {
        let e = parse_model(b"", "m.onnx").unwrap_err().to_string();
        assert!(e.contains("m.onnx") && e.contains("empty"), "{e}");
        let e = parse_model(b"\xff\xff\xff\xff garbage", "m.onnx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid ONNX protobuf"), "{e}");
    }
}
