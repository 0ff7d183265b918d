//! Validation errors: what is wrong with input rows, naming field, row and problem.

use std::fmt;

use serde::Serialize;

/// How many problems a batch collects before it stops looking: enough to show a pattern, bounded
/// so a wholly wrong million-row file does not build a million messages.
pub const MAX_VALIDATION_ERRORS: usize = 100;

/// What is wrong with one value or column.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The column is absent from the input altogether.
    MissingColumn,
    /// A value of a non-nullable field is missing (empty cell, `null`, absent key).
    MissingValue,
    /// The value has the wrong type.
    WrongType {
        /// The field's type name.
        expected: &'static str,
        /// The offending value, as text (truncated when long).
        found: String,
    },
    /// NaN or ±infinity where the field does not allow it.
    NotFinite {
        /// The offending value.
        found: String,
    },
    /// A categorical value outside the vocabulary, under [`crate::UnseenPolicy::Error`].
    UnseenCategory {
        /// The value.
        found: String,
        /// A few of the known categories, for the message.
        known: Vec<String>,
        /// How many categories the vocabulary has.
        n_known: usize,
    },
    /// A column that the schema does not have (reported once, when extra columns are refused).
    ExtraColumn,
    /// A row that is not an object / array / has the wrong number of values.
    MalformedRow {
        /// What was wrong with it.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingColumn => write!(f, "column is missing from the input"),
            Problem::MissingValue => {
                write!(f, "value is missing but the field is not nullable")
            }
            Problem::WrongType { expected, found } => {
                write!(f, "expected {} value, found {found}", article(expected))
            }
            Problem::NotFinite { found } => write!(
                f,
                "{found} is not allowed (only finite numbers; NaN counts as missing only in nullable float fields)"
            ),
            Problem::UnseenCategory {
                found,
                known,
                n_known,
            } => {
                write!(f, "category {found:?} is not in the vocabulary (")?;
                let shown: Vec<String> = known.iter().map(|k| format!("{k:?}")).collect();
                write!(f, "{}", shown.join(", "))?;
                if *n_known > known.len() {
                    write!(f, ", ... {} in all", n_known)?;
                }
                write!(
                    f,
                    "); set the field's `unseen` policy to `map_to_unknown` or `ignore` to accept it"
                )
            }
            Problem::ExtraColumn => write!(f, "column is not in the schema"),
            Problem::MalformedRow { reason } => write!(f, "{reason}"),
        }
    }
}

fn article(type_name: &str) -> String {
    match type_name.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// One problem with the input, located by field and row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidationError {
    /// The field (column) concerned.
    pub field: String,
    /// Zero-based row index within the batch; `None` when the problem concerns the whole column.
    pub row: Option<usize>,
    /// The line in the source text (1-based, CSV only), to help find the row in an editor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.row, self.line) {
            (Some(r), Some(l)) => write!(f, "row {r} (line {l}), ")?,
            (Some(r), None) => write!(f, "row {r}, ")?,
            _ => {}
        }
        write!(f, "field `{}`: {}", self.field, self.problem)
    }
}

/// The problems found in one batch (at most [`MAX_VALIDATION_ERRORS`], plus a count of the rest).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ValidationErrors {
    /// The problems, in input order.
    pub errors: Vec<ValidationError>,
    /// How many further problems were not recorded.
    pub omitted: usize,
}

impl ValidationErrors {
    /// Records a problem (or counts it once the list is full).
    pub fn push(&mut self, error: ValidationError) {
        if self.errors.len() < MAX_VALIDATION_ERRORS {
            self.errors.push(error);
        } else {
            self.omitted += 1;
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Total number of problems, recorded or not.
    pub fn count(&self) -> usize {
        self.errors.len() + self.omitted
    }

    /// True once [`MAX_VALIDATION_ERRORS`] problems have been recorded.
    pub fn is_full(&self) -> bool {
        self.errors.len() >= MAX_VALIDATION_ERRORS
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// How many problems `Display` spells out before summarising.
const SHOWN: usize = 5;

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.count();
        match n {
            0 => return write!(f, "no validation errors"),
            1 => write!(f, "invalid input: ")?,
            _ => write!(f, "invalid input ({n} problems): ")?,
        }
        for (i, e) in self.errors.iter().take(SHOWN).enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        if n > SHOWN {
            write!(f, "; and {} more", n - SHOWN)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_row_line_field_and_problem() {
        let e = ValidationError {
            field: "AGE".into(),
            row: Some(3),
            line: Some(5),
            problem: Problem::WrongType {
                expected: "int",
                found: "\"abc\"".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "row 3 (line 5), field `AGE`: expected an int value, found \"abc\""
        );
    }

    #[test]
    fn list_is_bounded_and_summarised() {
        let mut errs = ValidationErrors::default();
        for r in 0..(MAX_VALIDATION_ERRORS + 7) {
            errs.push(ValidationError {
                field: "x".into(),
                row: Some(r),
                line: None,
                problem: Problem::MissingValue,
            });
        }
        assert_eq!(errs.errors.len(), MAX_VALIDATION_ERRORS);
        assert_eq!(errs.count(), MAX_VALIDATION_ERRORS + 7);
        let text = errs.to_string();
        assert!(
            text.starts_with("invalid input (107 problems): row 0, field `x`"),
            "{text}"
        );
        assert!(text.ends_with("and 102 more"), "{text}");
    }
}
