//! The one error type of ml-registry.

use std::path::PathBuf;

/// Result alias used throughout ml-registry.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a registry.
///
/// Each variant's `Display` is one line that names what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from ml-core (artifact checksums, I/O on an artifact, ...).
    #[error(transparent)]
    Core(#[from] ml_core::Error),

    /// A model or alias name breaks the naming rule.
    #[error(
        "invalid {what} name {name:?}: {reason}; names are 1 to 64 characters, letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    InvalidName {
        /// `model` or `alias`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A model reference could not be parsed.
    #[error(
        "invalid model reference {reference:?}: {reason}; expected NAME:VERSION, NAME@ALIAS or NAME@latest"
    )]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No model of that name is registered.
    #[error("no model named `{name}` in registry {registry}{}", known_list(known))]
    ModelNotFound {
        /// The registry's location.
        registry: String,
        /// The name looked up.
        name: String,
        /// The names that do exist.
        known: Vec<String>,
    },

    /// The model exists but not that version.
    #[error(
        "model `{name}` has no version {version} in registry {registry}; versions: {}",
        versions_list(available)
    )]
    VersionNotFound {
        /// The registry's location.
        registry: String,
        /// The model name.
        name: String,
        /// The version looked up.
        version: u32,
        /// The versions that do exist.
        available: Vec<u32>,
    },

    /// The model exists but has no such alias.
    #[error(
        "model `{name}` has no alias `{alias}` in registry {registry}; {}",
        aliases_list(existing)
    )]
    AliasNotFound {
        /// The registry's location.
        registry: String,
        /// The model name.
        name: String,
        /// The alias looked up.
        alias: String,
        /// The aliases that do exist.
        existing: Vec<String>,
    },

    /// A version cannot be deleted while aliases point at it.
    #[error(
        "version {version} of `{name}` is in use by alias(es) {}: move or remove them first (`promote` / remove-alias)",
        aliases.join(", ")
    )]
    VersionAliased {
        /// The model name.
        name: String,
        /// The version.
        version: u32,
        /// The aliases pointing at it.
        aliases: Vec<String>,
    },

    /// A stored version does not match its recorded digest, or its metadata is unreadable.
    #[error("registry entry {}: {reason}", path.display())]
    Corrupt {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The target registry already holds a copy of the same source version with other content.
    #[error("{0}")]
    LineageConflict(Box<LineageConflict>),

    /// An I/O operation on a named path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A registry location (`--registry`) could not be understood or opened.
    #[error("registry {location}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A remote store answered with an error.
    #[error("storage backend {registry}: {reason}")]
    Backend {
        /// The registry's location.
        registry: String,
        /// What failed.
        reason: String,
    },

    /// Something that should be impossible happened: a bug in streamscore.
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

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "; the registry holds no models yet (register one with `streamscore register`)".into()
    } else {
        format!("; models: {}", known.join(", "))
    }
}

fn versions_list(v: &[u32]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    }
}

fn aliases_list(a: &[String]) -> String {
    if a.is_empty() {
        "it has no aliases (set one with `streamscore promote NAME:VERSION --alias ALIAS`)".into()
    } else {
        format!("existing aliases: {}", a.join(", "))
    }
}

/// The details of [`Error::LineageConflict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageConflict {
    /// The target registry.
    pub target: String,
    /// The model name.
    pub name: String,
    /// The version in the target.
    pub existing: u32,
    /// The source registry.
    pub source_registry: String,
    /// The version in the source.
    pub source_version: u32,
    /// Digest of the target's copy.
    pub existing_sha256: String,
    /// Digest of the source.
    pub sha256: String,
}

impl std::fmt::Display for LineageConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lineage conflict: {} already has `{}` version {} copied from {} `{}:{}` with different content (sha256 {} vs {}); refusing to register a second, different copy",
            self.target,
            self.name,
            self.existing,
            self.source_registry,
            self.name,
            self.source_version,
            self.existing_sha256,
            self.sha256
        )
    }
}
