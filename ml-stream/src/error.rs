//! The one error type of ml-stream.

use std::path::PathBuf;

/// Result alias of ml-stream.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from ml-core (validation, model, artifact).
    #[error(transparent)]
    Core(#[from] ml_core::Error),

    /// A source or sink spec could not be understood.
    #[error("invalid spec `{spec}`: {reason}")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong and what is accepted.
        reason: String,
    },

    /// A spec names a scheme that is known but not compiled into this build.
    #[error("`{scheme}:` needs the `{feature}` feature of streamscore, which this build does not have")]
    FeatureDisabled {
        /// The scheme.
        scheme: String,
        /// The cargo feature that provides it.
        feature: &'static str,
    },

    /// An I/O operation on a path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A sink kept failing after its retries; the pipeline stopped so no record is lost.
    #[error("sink {sink} failed after {attempts} attempts: {reason}")]
    SinkFailed {
        /// The sink.
        sink: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        reason: String,
    },

    /// A source failed.
    #[error("source {source_name} failed: {reason}")]
    SourceFailed {
        /// The source.
        source_name: String,
        /// What happened.
        reason: String,
    },

    /// An operation the component does not support.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What was asked.
        what: String,
    },

    /// A configuration value is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// Setting name.
        name: &'static str,
        /// What is allowed.
        reason: String,
    },

    /// A Parquet file could not be written or read.
    #[error("parquet file {}: {reason}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Kafka (or Event Hubs) refused or failed an operation.
    #[error("kafka: {reason}")]
    Kafka {
        /// What failed, and why.
        reason: String,
    },

    /// A bug in streamscore.
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
}
