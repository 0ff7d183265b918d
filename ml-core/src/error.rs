//! The one error type of ml-core.

use std::path::PathBuf;

use crate::validation::ValidationErrors;

/// Result alias used throughout ml-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ml-core.
///
/// Variants are named after the fault and carry typed fields; their `Display` is one line a
/// user can act on. A variant that says "bug" is ours, never the caller's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rows do not match the schema. The inner list names field, row and problem.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),

    /// The input held no data rows at all (an empty file, `[]`, a CSV with only a header).
    #[error("{source_name} is empty: expected a header and at least one data row")]
    EmptyInput {
        /// What was read (a file name or "input").
        source_name: String,
    },

    /// A CSV row has a different number of fields than the header.
    #[error(
        "{source_name}: row {row} has {found} fields but the header has {expected}; fix the row or quote fields that contain commas"
    )]
    RaggedRow {
        /// What was read.
        source_name: String,
        /// Zero-based data row (the header is not counted).
        row: usize,
        /// Number of fields in the header.
        expected: usize,
        /// Number of fields found in the row.
        found: usize,
    },

    /// The input could not be parsed at all (malformed CSV or JSON).
    #[error("cannot parse {source_name}: {reason}")]
    Parse {
        /// What was read.
        source_name: String,
        /// What the parser said.
        reason: String,
    },

    /// A schema definition is itself wrong (duplicate field, empty vocabulary, ...).
    #[error("invalid schema: {reason}")]
    InvalidSchema {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A frame does not provide what a model reads.
    #[error("frame does not match the model: {reason}")]
    SchemaMismatch {
        /// Which field is missing or differs.
        reason: String,
    },

    /// A parameter given by the caller is out of range or of the wrong kind.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name as the user typed it.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// The work was cancelled by its caller ([`crate::cancel`]): an interrupted training.
    #[error("cancelled")]
    Cancelled,

    /// Training failed (the data cannot be fitted, the optimizer failed, ...).
    #[error("training failed: {reason}")]
    Training {
        /// What went wrong.
        reason: String,
    },

    /// A remote scoring endpoint refused a batch or could not be reached (after retries, for
    /// the retryable answers).
    #[error("remote scorer {endpoint}: {}{message}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
    Remote {
        /// The URL called.
        endpoint: String,
        /// The HTTP status, when an answer came.
        status: Option<u16>,
        /// The server's message (its `message` or `error` field), or what failed.
        message: String,
    },

    /// A model artifact on disk is unusable: missing file, checksum mismatch, bad metadata.
    #[error("model artifact {}: {reason}", path.display())]
    Artifact {
        /// The artifact directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The artifact was written by a newer streamscore than this one.
    #[error(
        "model artifact {} has format version {found}, but this build reads versions up to {supported}; upgrade streamscore to load it",
        path.display()
    )]
    UnsupportedFormatVersion {
        /// The artifact directory.
        path: PathBuf,
        /// The version found in the artifact.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },

    /// An I/O operation on a named path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing ("read", "write", "create directory", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The ONNX Runtime library is not installed, not found, or cannot be loaded.
    #[error("ONNX Runtime is not available: {reason}")]
    OnnxRuntimeUnavailable {
        /// Where it was looked for and how to install it.
        reason: String,
    },

    /// A file is not a usable ONNX model (corrupt, truncated, or with outputs streamscore cannot read).
    #[error("invalid ONNX model {origin}: {reason}")]
    InvalidOnnxModel {
        /// The file or artifact it came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An ONNX graph uses operators (or attribute values) that streamscore does not evaluate
    /// natively, and ONNX Runtime was not asked for or is not available.
    #[error("ONNX model {origin} cannot run natively: unsupported {}", operators.join("; "))]
    UnsupportedOnnxOperators {
        /// The file or artifact it came from.
        origin: String,
        /// Each unsupported operator with its node (and the attribute value at fault).
        operators: Vec<String>,
    },

    /// ONNX Runtime failed while scoring a batch.
    #[error("ONNX Runtime failed: {reason}")]
    OnnxRuntime {
        /// What the runtime said.
        reason: String,
    },

    /// Something that should be impossible happened: a bug in streamscore, not in the caller's input.
    #[error("internal error (this is a bug in streamscore, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid_parameter(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
