//! Conversion of one input cell (CSV text, JSON value or Rust [`Value`]) into a typed column,
//! shared by every frame constructor so that all input forms obey the same rules.

use serde::{Deserialize, Serialize};

use crate::schema::{DataType, Field, UnseenPolicy};
use crate::validation::{Problem, ValidationError, ValidationErrors};

use super::spare::Spare;
use super::{Column, MISSING_CODE};

/// A single value given from Rust code (see [`super::Frame::from_rows`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Missing.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text (a category or a string field; numeric text is not parsed).
    Str(String),
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A borrowed input cell, before typing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CellRef<'a> {
    /// Absent key, JSON null, [`Value::Null`].
    Missing,
    /// Untyped text from CSV: parsed according to the field type; empty means missing.
    Text(&'a str),
    /// A typed string (JSON string, [`Value::Str`]): never parsed as a number.
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A JSON array or object, which no field type accepts.
    Nested(&'static str),
}

impl<'a> CellRef<'a> {
    pub(crate) fn from_json(v: &'a serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => CellRef::Missing,
            J::Bool(b) => CellRef::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => CellRef::Int(i),
                None => CellRef::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => CellRef::Str(s),
            J::Array(_) => CellRef::Nested("an array"),
            J::Object(_) => CellRef::Nested("an object"),
        }
    }

    pub(crate) fn from_value(v: &'a Value) -> Self {
        match v {
            Value::Null => CellRef::Missing,
            Value::Bool(b) => CellRef::Bool(*b),
            Value::Int(i) => CellRef::Int(*i),
            Value::Float(x) => CellRef::Float(*x),
            Value::Str(s) => CellRef::Str(s),
        }
    }

    /// How the value is shown in an error message.
    fn describe(&self) -> String {
        match self {
            CellRef::Missing => "a missing value".into(),
            CellRef::Text(s) => format!("{:?}", clip(s)),
            CellRef::Str(s) => format!("the string {:?}", clip(s)),
            CellRef::Int(i) => format!("the number {i}"),
            CellRef::Float(x) => format!("the number {x}"),
            CellRef::Bool(b) => format!("the boolean {b}"),
            CellRef::Nested(what) => (*what).into(),
        }
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Parses boolean words the way CSV writers spell them.
pub(crate) fn parse_bool_text(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Parses an integer, accepting `3.0` (pandas writes integer columns with NaN as floats).
pub(crate) fn parse_int_text(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(i);
    }
    s.parse::<f64>().ok().and_then(float_to_int)
}

pub(crate) fn float_to_int(x: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or above it overflows i64.
    if x.is_finite() && x.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x)
    {
        Some(x as i64)
    } else {
        None
    }
}

/// The canonical text of a number used as a category: integers without a decimal point.
pub(crate) fn canonical_number(x: f64) -> String {
    match float_to_int(x) {
        Some(i) => i.to_string(),
        None => x.to_string(),
    }
}

/// The decimal text of `i`, written into `buf` (no allocation: integer categories are matched
/// once per cell).
fn int_text(i: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    // Only ASCII digits and '-' were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// Accumulates one column while rows are read.
pub(crate) struct ColumnBuilder {
    data: Buffer,
    /// The null mask, allocated at the first missing value (then backfilled, and one entry
    /// per row from there on): empty while every value so far is present, as in almost every
    /// column of a scoring request.
    nulls: Vec<bool>,
    any_null: bool,
}

/// Where a cell sits, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Position {
    pub row: usize,
    pub line: Option<u64>,
}

impl ColumnBuilder {
    pub(crate) fn new(field: &Field, capacity: usize) -> Self {
        Self::from_spare(field, capacity, None)
    }

    /// A builder whose float buffer comes from `spare` when there is one.
    pub(crate) fn from_spare(field: &Field, capacity: usize, spare: Option<&mut Spare>) -> Self {
        let data = match field.dtype {
            DataType::Float => Buffer::Float(match spare {
                Some(spare) => spare.float(capacity),
                None => Vec::with_capacity(capacity),
            }),
            DataType::Int => Buffer::Int(Vec::with_capacity(capacity)),
            DataType::Bool => Buffer::Bool(Vec::with_capacity(capacity)),
            DataType::Categorical { .. } => Buffer::Categorical(Vec::with_capacity(capacity)),
            DataType::String => Buffer::String(Vec::with_capacity(capacity)),
        };
        ColumnBuilder {
            data,
            nulls: Vec::new(),
            any_null: false,
        }
    }

    pub(crate) fn finish(self) -> (Column, Option<Vec<bool>>) {
        let column = match self.data {
            Buffer::Float(v) => Column::Float(v.into()),
            Buffer::Int(v) => Column::Int(v.into()),
            Buffer::Bool(v) => Column::Bool(v.into()),
            Buffer::Categorical(v) => Column::Categorical(v.into()),
            Buffer::String(v) => Column::String(v),
        };
        // A row that set `any_null` may have been dropped since (`truncate`): look again.
        let any_null = self.any_null && self.nulls.contains(&true);
        (column, any_null.then_some(self.nulls))
    }

    /// Appends one cell. On a problem, records it in `errors` and appends a placeholder so
    /// columns stay aligned (the frame is discarded when `errors` is not empty).
    pub(crate) fn push(
        &mut self,
        field: &Field,
        cell: CellRef<'_>,
        at: Position,
        errors: &mut ValidationErrors,
    ) {
        // The usual cells first, without building a result: a number of the column's own
        // kind, an integer for a float column, an integer category. The same values as
        // `convert` gives them.
        let present = match (&mut self.data, cell) {
            (Buffer::Int(v), CellRef::Int(i)) => {
                v.push(i);
                true
            }
            (Buffer::Float(v), CellRef::Float(x)) if x.is_finite() => {
                v.push(x);
                true
            }
            (Buffer::Float(v), CellRef::Int(i)) => {
                v.push(i as f64);
                true
            }
            (Buffer::Categorical(v), CellRef::Int(i)) => match &field.dtype {
                DataType::Categorical { vocabulary, .. } => match vocabulary.code_of_int(i) {
                    Some(c) => {
                        v.push(c);
                        true
                    }
                    None => false,
                },
                _ => false,
            },
            _ => false,
        };
        if present {
            self.not_null();
            return;
        }
        match self.convert(field, cell) {
            Ok(Converted::Present) => self.not_null(),
            Ok(Converted::Null) => {
                if self.nulls.is_empty() {
                    // The first missing value: every row before it was present.
                    self.nulls.resize(self.data.len(), false);
                }
                self.push_placeholder();
                self.nulls.push(true);
                self.any_null = true;
            }
            Err(problem) => {
                self.push_placeholder();
                self.not_null();
                errors.push(ValidationError {
                    field: field.name.clone(),
                    row: Some(at.row),
                    line: at.line,
                    problem,
                });
            }
        }
    }

    /// Records that the value just pushed is present (only once the mask exists).
    fn not_null(&mut self) {
        if !self.nulls.is_empty() {
            self.nulls.push(false);
        }
    }

    /// Drops the values after the first `len` rows (a row that failed halfway).
    pub(crate) fn truncate(&mut self, len: usize) {
        match &mut self.data {
            Buffer::Float(v) => v.truncate(len),
            Buffer::Int(v) => v.truncate(len),
            Buffer::Bool(v) => v.truncate(len),
            Buffer::Categorical(v) => v.truncate(len),
            Buffer::String(v) => v.truncate(len),
        }
        self.nulls.truncate(len);
    }

    fn push_placeholder(&mut self) {
        match &mut self.data {
            Buffer::Float(v) => v.push(f64::NAN),
            Buffer::Int(v) => v.push(0),
            Buffer::Bool(v) => v.push(false),
            Buffer::Categorical(v) => v.push(MISSING_CODE),
            Buffer::String(v) => v.push(String::new()),
        }
    }

    fn null_or_missing(field: &Field) -> Result<Converted, Problem> {
        if field.nullable {
            Ok(Converted::Null)
        } else {
            Err(Problem::MissingValue)
        }
    }

    fn convert(&mut self, field: &Field, cell: CellRef<'_>) -> Result<Converted, Problem> {
        if matches!(cell, CellRef::Missing) || matches!(cell, CellRef::Text(s) if s.trim().is_empty()) {
            return Self::null_or_missing(field);
        }
        let wrong = |expected: &'static str| Problem::WrongType {
            expected,
            found: cell.describe(),
        };
        match (&mut self.data, &field.dtype) {
            (Buffer::Float(v), _) => {
                let x = match cell {
                    CellRef::Float(x) => x,
                    CellRef::Int(i) => i as f64,
                    CellRef::Text(s) => s.trim().parse::<f64>().map_err(|_| wrong("float"))?,
                    _ => return Err(wrong("float")),
                };
                if x.is_nan() && field.nullable {
                    return Ok(Converted::Null);
                }
                if !x.is_finite() {
                    return Err(Problem::NotFinite {
                        found: cell.describe(),
                    });
                }
                v.push(x);
            }
            (Buffer::Int(v), _) => {
                let i = match cell {
                    CellRef::Int(i) => i,
                    CellRef::Float(x) if x.is_nan() => return Self::null_or_missing(field),
                    CellRef::Float(x) => float_to_int(x).ok_or_else(|| wrong("int"))?,
                    CellRef::Text(s) => match parse_int_text(s) {
                        Some(i) => i,
                        None if s.trim().eq_ignore_ascii_case("nan") => return Self::null_or_missing(field),
                        None => return Err(wrong("int")),
                    },
                    _ => return Err(wrong("int")),
                };
                v.push(i);
            }
            (Buffer::Bool(v), _) => {
                let b = match cell {
                    CellRef::Bool(b) => b,
                    CellRef::Int(0) => false,
                    CellRef::Int(1) => true,
                    CellRef::Text(s) => parse_bool_text(s).ok_or_else(|| wrong("bool"))?,
                    _ => return Err(wrong("bool")),
                };
                v.push(b);
            }
            (Buffer::Categorical(v), DataType::Categorical { vocabulary, unseen }) => {
                let text;
                let mut digits = [0u8; 20];
                let (raw, numeric): (&str, Option<f64>) = match cell {
                    CellRef::Text(s) => {
                        let s = s.trim();
                        (s, s.parse::<f64>().ok())
                    }
                    CellRef::Str(s) => (s, None),
                    CellRef::Int(i) => {
                        if let Some(c) = vocabulary.code_of_int(i) {
                            v.push(c);
                            return Ok(Converted::Present);
                        }
                        (int_text(i, &mut digits), None)
                    }
                    CellRef::Float(x) => {
                        text = canonical_number(x);
                        (&text, None)
                    }
                    CellRef::Bool(b) => (if b { "true" } else { "false" }, None),
                    CellRef::Nested(_) | CellRef::Missing => return Err(wrong("categorical")),
                };
                // "1.0" in a CSV matches the category "1": numbers compare by canonical form.
                let code = vocabulary
                    .code(raw)
                    .or_else(|| numeric.and_then(|x| vocabulary.code(&canonical_number(x))));
                match (code, unseen) {
                    (Some(c), _) => v.push(c),
                    (None, UnseenPolicy::MapToUnknown) => v.push(vocabulary.unknown_code()),
                    (None, UnseenPolicy::Ignore) => return Ok(Converted::Null),
                    (None, UnseenPolicy::Error) => {
                        return Err(Problem::UnseenCategory {
                            found: clip(raw),
                            known: vocabulary.values().iter().take(8).cloned().collect(),
                            n_known: vocabulary.len(),
                        });
                    }
                }
            }
            (Buffer::String(v), _) => {
                let s = match cell {
                    CellRef::Text(s) | CellRef::Str(s) => s.to_string(),
                    CellRef::Int(i) => i.to_string(),
                    CellRef::Float(x) => x.to_string(),
                    CellRef::Bool(b) => b.to_string(),
                    CellRef::Nested(_) | CellRef::Missing => return Err(wrong("string")),
                };
                v.push(s);
            }
            (Buffer::Categorical(_), _) => {
                // ColumnBuilder::new derives the column kind from the same field.
                return Err(Problem::MalformedRow {
                    reason: "internal: column kind does not match the field type".into(),
                });
            }
        }
        Ok(Converted::Present)
    }
}

/// Growable storage behind [`ColumnBuilder`], one variant per [`Column`] kind.
enum Buffer {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    Categorical(Vec<u32>),
    String(Vec<String>),
}

impl Buffer {
    fn len(&self) -> usize {
        match self {
            Buffer::Float(v) => v.len(),
            Buffer::Int(v) => v.len(),
            Buffer::Bool(v) => v.len(),
            Buffer::Categorical(v) => v.len(),
            Buffer::String(v) => v.len(),
        }
    }
}

enum Converted {
    Present,
    Null,
}

#[cfg(test)]
mod int_text_tests {
    #[test]
    fn int_text_matches_to_string() {
        for i in [0, 7, -2, 10, -10, 123_456_789, i64::MAX, i64::MIN] {
            assert_eq!(super::int_text(i, &mut [0; 20]), i.to_string());
        }
    }
}
