//! The synthetic credit-default data set as files: CSV plus its schema.

use ml_core::datasets::{CREDIT_CATEGORICAL_COLUMNS, CREDIT_TARGET_COLUMN, CreditDefaultData};
use ml_core::{DataType, Field, Result, Schema};

/// The schema of the generated data: the 9 categorical code columns as categorical (with the
/// codes of the UCI data set as vocabulary), the other columns as int, the target as int.
///
/// It is written next to the CSV (`x.csv` → `x.schema.json`) so that `streamscore train`
/// one-hot encodes the code columns instead of reading them as numbers.
pub fn credit_schema() -> Result<Schema> {
    let vocabulary = |name: &str| -> Vec<String> {
        let range = match name {
            "SEX" => 1..=2,
            "EDUCATION" => 0..=6,
            "MARRIAGE" => 0..=3,
            _ => -2..=8, // PAY_0, PAY_2..PAY_6: repayment status codes
        };
        range.map(|c: i64| c.to_string()).collect()
    };
    let fields = CreditDefaultData::COLUMN_NAMES
        .iter()
        .map(|&name| {
            let dtype = if CREDIT_CATEGORICAL_COLUMNS.contains(&name) {
                DataType::categorical(vocabulary(name))?
            } else {
                DataType::Int
            };
            Ok(Field::new(name, dtype))
        })
        .collect::<Result<Vec<_>>>()?;
    debug_assert!(fields.iter().any(|f| f.name == CREDIT_TARGET_COLUMN));
    Schema::new(fields)
}
