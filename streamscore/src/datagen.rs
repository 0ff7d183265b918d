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

/// Writes the data as JSON lines, one object per row with every column (the events that
/// `streamscore stream` reads).
pub fn write_jsonl(data: &CreditDefaultData, writer: impl std::io::Write) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(writer);
    let columns: Vec<(&str, &[i64])> = data
        .column_names()
        .iter()
        .filter_map(|&n| data.column(n).map(|c| (n, c)))
        .collect();
    let mut line = String::with_capacity(512);
    for row in 0..data.n_rows() {
        line.clear();
        line.push('{');
        for (i, (name, values)) in columns.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            // Column names are fixed identifiers and values integers: no escaping needed.
            line.push_str(&format!("\"{name}\": {}", values[row]));
        }
        line.push_str("}\n");
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}
