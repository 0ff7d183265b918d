//! The one error type of ml-drift.

/// Result alias used throughout ml-drift.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ml-drift.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from ml-core (frames, schemas, artifacts).
    #[error(transparent)]
    Core(#[from] ml_core::Error),

    /// A parameter given by the caller is out of range or of the wrong kind.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name as the user typed it.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// Two profiles cannot be merged or compared because they differ in shape.
    #[error("profiles do not match: {reason}")]
    ProfileMismatch {
        /// Which feature or option differs.
        reason: String,
    },

    /// The current data lacks a feature that the reference profile has.
    #[error(
        "feature `{feature}` of the reference is missing from the current data; columns are: {available}"
    )]
    MissingFeature {
        /// The missing feature.
        feature: String,
        /// The columns the current data has.
        available: String,
    },

    /// A feature's type differs between reference and current data.
    #[error("feature `{feature}` is {reference} in the reference but {current} in the current data")]
    FeatureTypeMismatch {
        /// The feature.
        feature: String,
        /// The reference type.
        reference: String,
        /// The current type.
        current: String,
    },

    /// A statistical test cannot be applied to this feature type.
    #[error("test `{test}` does not apply to {feature_type} feature `{feature}`; pick one of: {allowed}")]
    TestNotApplicable {
        /// The test name.
        test: String,
        /// The feature.
        feature: String,
        /// The feature's type.
        feature_type: String,
        /// The tests that apply.
        allowed: String,
    },

    /// A profile was written by a newer ml-drift than this one.
    #[error(
        "reference profile has format version {found}, but this build reads versions up to {supported}; upgrade streamscore"
    )]
    UnsupportedProfileVersion {
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A profile or report could not be (de)serialized.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was read.
        what: String,
        /// What the parser said.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid_parameter(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
