//! Drift detection for streamscore: reference profiles, two-sample drift tests with automatic
//! selection, streaming change detectors, and drift reports (JSON and self-contained HTML).
//!
//! - [`ReferenceProfile`] — what the tests need to know about the training data, computed once,
//!   stored with the model (`profile.json`), mergeable and deterministic.
//! - [`DriftDetector`] — a two-sample test (KS, PSI, chi-square, Jensen–Shannon, normed
//!   Wasserstein, Hellinger, Z); [`drift_from_profile`] and [`compare`] choose one per feature
//!   (Evidently's rules, overridable), correct p-values across features and build a
//!   [`DriftReport`].
//! - [`ChangeDetector`] — streaming detectors (ADWIN, Page-Hinkley, KSWIN, DDM, EDDM,
//!   windowed PSI) with
//!   river's defaults.
//!
//! One design decision: the statistics are free functions on sorted slices and bucket counts
//! ([`stats`]), checked one by one against scipy; a reference is either a profile (bounded size:
//! a sample and sketch bins) or the full sorted data ("exact" mode), and both go through the same
//! tests.
//!
//! # Example
//! ```
//! use ml_drift::{DriftOptions, ProfileOptions, ReferenceProfile, drift_from_profile};
//! use ml_core::{DataType, Field, Frame, Schema, Value};
//!
//! let schema = Schema::new(vec![Field::new("x", DataType::Float)])?;
//! let rows = |shift: f64| (0..500).map(|i| vec![Value::Float((i % 100) as f64 + shift)]).collect::<Vec<_>>();
//! let train = Frame::from_rows(schema.clone(), &rows(0.0))?;
//! let profile = ReferenceProfile::from_frame(&train, None, &ProfileOptions::default())?;
//!
//! let same = drift_from_profile(&profile, &Frame::from_rows(schema.clone(), &rows(0.0))?, None, &DriftOptions::default())?;
//! assert!(!same.dataset.dataset_drift);
//! let shifted = drift_from_profile(&profile, &Frame::from_rows(schema, &rows(30.0))?, None, &DriftOptions::default())?;
//! assert!(shifted.dataset.dataset_drift);
//! assert_eq!(shifted.features[0].stattest_name, "ks");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod detect;
pub mod error;
pub mod profile;
pub mod report;
pub mod sample;
pub mod sketch;
pub mod stats;
pub mod stream;

pub use detect::{
    DriftDetector, DriftOptions, PreparedReference, compare, drift_from_profile, register_test, test_names,
};
pub use error::{Error, Result};
pub use profile::{FeatureType, ProfileOptions, ReferenceProfile};
pub use report::{DatasetDrift, DriftReport, FeatureDrift};
pub use stats::Correction;
pub use stream::{Change, ChangeDetector};
