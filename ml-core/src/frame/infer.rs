//! Schema inference from untyped input, with per-column overrides.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use super::cell::{CellRef, canonical_number, parse_int_text};
use crate::error::{Error, Result};
use crate::schema::{DataType, Field, Schema, UnseenPolicy, Vocabulary};

/// A type named by the user to override inference for one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeHint {
    /// Force float.
    Float,
    /// Force int.
    Int,
    /// Force bool.
    Bool,
    /// Force categorical; the vocabulary is the set of distinct values seen.
    Categorical,
    /// Force free text.
    String,
}

impl FromStr for TypeHint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "float" | "double" => TypeHint::Float,
            "int" | "integer" | "long" => TypeHint::Int,
            "bool" | "boolean" => TypeHint::Bool,
            "categorical" | "category" => TypeHint::Categorical,
            "string" | "str" | "text" => TypeHint::String,
            other => {
                return Err(Error::invalid_parameter(
                    "type",
                    format!("unknown type `{other}`; use float, int, bool, categorical or string"),
                ));
            }
        })
    }
}

/// Rules for schema inference.
///
/// Per column, over its non-missing values: all `true`/`false` words → bool; all integers → int;
/// all numbers → float; otherwise text, which becomes categorical when it has at most
/// `max_categories` distinct values, else string. A column with any missing value is nullable.
/// Categorical vocabularies are sorted (numerically when every value is a number).
#[derive(Clone, Debug)]
pub struct InferOptions {
    /// Per-column types that replace inference (unknown column names are an error).
    pub overrides: BTreeMap<String, TypeHint>,
    /// Text columns with at most this many distinct values become categorical. Default 50.
    pub max_categories: usize,
    /// Unseen-category policy given to inferred categorical fields. Default [`UnseenPolicy::Error`].
    pub unseen: UnseenPolicy,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions {
            overrides: BTreeMap::new(),
            // Evidently and pandas-profiling use small cut-offs of the same order to tell codes
            // from free text; 50 keeps US-state-sized code lists categorical.
            max_categories: 50,
            unseen: UnseenPolicy::Error,
        }
    }
}

impl InferOptions {
    /// Adds an override (builder style).
    pub fn with_override(mut self, column: impl Into<String>, hint: TypeHint) -> Self {
        self.overrides.insert(column.into(), hint);
        self
    }
}

/// What one column's values look like.
#[derive(Default)]
struct Profile {
    any_missing: bool,
    n_present: usize,
    all_bool: bool,
    all_int: bool,
    all_number: bool,
    /// Distinct values in canonical text form; stops growing past the cap (unless forced).
    distinct: BTreeSet<String>,
    distinct_overflow: bool,
}

impl Profile {
    fn new() -> Self {
        Profile {
            all_bool: true,
            all_int: true,
            all_number: true,
            ..Default::default()
        }
    }

    fn add(&mut self, cell: CellRef<'_>, cap: usize) {
        let (canonical, is_bool, int, number) = match cell {
            CellRef::Missing => {
                self.any_missing = true;
                return;
            }
            CellRef::Text(s) if s.trim().is_empty() => {
                self.any_missing = true;
                return;
            }
            CellRef::Text(s) => {
                let s = s.trim();
                let lower = s.to_ascii_lowercase();
                let is_bool = lower == "true" || lower == "false";
                let number = s.parse::<f64>().ok().filter(|x| x.is_finite());
                let int = parse_int_text(s).is_some();
                match number {
                    Some(x) => (canonical_number(x), false, int, true),
                    None => (s.to_string(), is_bool, false, false),
                }
            }
            CellRef::Str(s) => (s.to_string(), false, false, false),
            CellRef::Int(i) => (i.to_string(), false, true, true),
            CellRef::Float(x) => (canonical_number(x), false, x.fract() == 0.0, true),
            CellRef::Bool(b) => (b.to_string(), true, false, false),
            CellRef::Nested(what) => (what.to_string(), false, false, false),
        };
        self.n_present += 1;
        self.all_bool &= is_bool;
        self.all_int &= int;
        self.all_number &= number;
        if !self.distinct_overflow {
            self.distinct.insert(canonical);
            if self.distinct.len() > cap {
                self.distinct_overflow = true;
            }
        }
    }
}

pub(crate) fn infer_columns<'a, I, C>(columns: I, options: &InferOptions) -> Result<Schema>
where
    I: IntoIterator<Item = (&'a str, C)>,
    C: Iterator<Item = CellRef<'a>>,
{
    let mut fields = Vec::new();
    let mut used_overrides = BTreeSet::new();
    for (name, cells) in columns {
        let hint = options.overrides.get(name).copied();
        if hint.is_some() {
            used_overrides.insert(name.to_string());
        }
        // A forced categorical keeps every distinct value, whatever the cap.
        let cap = if hint == Some(TypeHint::Categorical) {
            usize::MAX - 1
        } else {
            options.max_categories
        };
        let mut p = Profile::new();
        for cell in cells {
            p.add(cell, cap);
        }
        let dtype = match hint {
            Some(TypeHint::Float) => DataType::Float,
            Some(TypeHint::Int) => DataType::Int,
            Some(TypeHint::Bool) => DataType::Bool,
            Some(TypeHint::String) => DataType::String,
            Some(TypeHint::Categorical) => categorical(&p, name, options)?,
            None if p.n_present == 0 => DataType::String,
            None if p.all_bool => DataType::Bool,
            None if p.all_int => DataType::Int,
            None if p.all_number => DataType::Float,
            None if !p.distinct_overflow => categorical(&p, name, options)?,
            None => DataType::String,
        };
        fields.push(Field {
            name: name.to_string(),
            dtype,
            nullable: p.any_missing,
        });
    }
    if let Some(unknown) = options.overrides.keys().find(|k| !used_overrides.contains(*k)) {
        return Err(Error::invalid_parameter(
            "overrides",
            format!(
                "column `{unknown}` is not in the data; columns are: {}",
                fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Schema::new(fields)
}

fn categorical(p: &Profile, name: &str, options: &InferOptions) -> Result<DataType> {
    if p.distinct.is_empty() {
        return Err(Error::InvalidSchema {
            reason: format!("column `{name}` has no values to take categories from"),
        });
    }
    let mut values: Vec<String> = p.distinct.iter().cloned().collect();
    if p.all_number {
        // Numeric codes sort as numbers (-2, -1, 0, 1, 10), not as text.
        values.sort_by(|a, b| {
            let (x, y) = (a.parse::<f64>().unwrap_or(0.0), b.parse::<f64>().unwrap_or(0.0));
            x.total_cmp(&y)
        });
    }
    Ok(DataType::Categorical {
        vocabulary: Vocabulary::new(values)?,
        unseen: options.unseen,
    })
}
