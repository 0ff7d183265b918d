//! Synthetic data sets for examples, tests and benchmarks.
//!
//! Generators are deterministic: the same configuration always produces byte-identical data
//! (see [`crate::rng`] for why the random stream is owned by this crate).

pub mod credit;

pub use credit::{
    CREDIT_CATEGORICAL_COLUMNS, CREDIT_COLUMNS, CREDIT_MAX_ROWS, CREDIT_NUMERIC_COLUMNS,
    CREDIT_TARGET_COLUMN, CreditDefaultConfig, CreditDefaultData, credit_default,
};
