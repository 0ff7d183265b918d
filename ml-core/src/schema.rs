//! Schemas: the typed, ordered fields a model reads, with their MLflow signature form.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// What to do with a categorical value that is not in the field's vocabulary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnseenPolicy {
    /// Reject the row with a validation error naming the value (the default: a model should not
    /// silently score a category it has never seen).
    #[default]
    Error,
    /// Encode the value as the reserved "unknown" code ([`Vocabulary::unknown_code`]); encoders
    /// give it a slot of its own.
    MapToUnknown,
    /// Treat the value as missing (encoders give it all zeros, like scikit-learn's
    /// `OneHotEncoder(handle_unknown="ignore")`), even in a non-nullable field.
    Ignore,
}

/// The ordered set of categories of a categorical field, with a fast value → code index.
///
/// Codes are positions in the list. Serializes as a plain JSON list of strings.
#[derive(Clone, Default)]
pub struct Vocabulary {
    values: Arc<[String]>,
    index: Arc<HashMap<String, u32>>,
    /// The codes of the categories written as integers, for integer cells.
    ints: Arc<IntCodes>,
}

/// The codes of a vocabulary's categories that are the canonical text of an integer (`"0"`,
/// `"-2"`; not `"01"` or `"+1"`), in a table over their range when the range is small: an
/// integer cell finds its code without being written out as text.
#[derive(Clone, Debug, Default)]
struct IntCodes {
    /// The lowest such category.
    min: i64,
    /// Per integer from `min` on: its code, or [`IntCodes::NONE`]. Empty when the vocabulary
    /// has no integer categories or their range is too wide for a table.
    codes: Vec<u32>,
}

impl IntCodes {
    const NONE: u32 = u32::MAX;
    /// The widest range given a table (4 KiB of codes).
    const MAX_RANGE: i64 = 1024;

    fn new(values: &[String]) -> IntCodes {
        let ints: Vec<(i64, u32)> = values
            .iter()
            .enumerate()
            .filter_map(|(code, v)| {
                let i = v.parse::<i64>().ok()?;
                (i.to_string() == *v).then_some((i, code as u32))
            })
            .collect();
        let (Some(min), Some(max)) = (
            ints.iter().map(|&(i, _)| i).min(),
            ints.iter().map(|&(i, _)| i).max(),
        ) else {
            return IntCodes::default();
        };
        if max
            .checked_sub(min)
            .is_none_or(|range| range >= IntCodes::MAX_RANGE)
        {
            return IntCodes::default();
        }
        let mut codes = vec![IntCodes::NONE; (max - min) as usize + 1];
        for (i, code) in ints {
            codes[(i - min) as usize] = code;
        }
        IntCodes { min, codes }
    }
}

impl Vocabulary {
    /// Builds a vocabulary; fails on duplicate values or more than `u32::MAX - 1` values.
    pub fn new<I, S>(values: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        if values.len() >= (u32::MAX - 1) as usize {
            return Err(Error::InvalidSchema {
                reason: format!(
                    "vocabulary has {} values; at most 2^32-2 are supported",
                    values.len()
                ),
            });
        }
        let mut index = HashMap::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            if index.insert(v.clone(), i as u32).is_some() {
                return Err(Error::InvalidSchema {
                    reason: format!("vocabulary lists the value {v:?} twice"),
                });
            }
        }
        Ok(Vocabulary {
            ints: Arc::new(IntCodes::new(&values)),
            values: values.into(),
            index: Arc::new(index),
        })
    }

    /// The categories in code order.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The code of `value`, if it is a known category.
    pub fn code(&self, value: &str) -> Option<u32> {
        // A short list is scanned faster than a string is hashed (codes, flags, small enums are
        // the usual categoricals, and this runs once per cell when frames are built).
        if self.values.len() <= 16 {
            return self.values.iter().position(|v| v == value).map(|i| i as u32);
        }
        self.index.get(value).copied()
    }

    /// The code of the integer `value` when its text (`value.to_string()`) is a category and
    /// the vocabulary's integer categories span a range small enough for a table; `None`
    /// otherwise, and then [`Vocabulary::code`] of the text decides. Found without writing the
    /// text: integer cells of categorical fields are common (codes, flags, months).
    pub(crate) fn code_of_int(&self, value: i64) -> Option<u32> {
        let ints = &self.ints;
        let at = usize::try_from(value.checked_sub(ints.min)?).ok()?;
        ints.codes.get(at).copied().filter(|&c| c != IntCodes::NONE)
    }

    /// The category for `code`, if in range.
    pub fn value(&self, code: u32) -> Option<&str> {
        self.values.get(code as usize).map(String::as_str)
    }

    /// The code given to unseen values under [`UnseenPolicy::MapToUnknown`]: one past the last
    /// category, so encoders can reserve a slot for it.
    pub fn unknown_code(&self) -> u32 {
        self.values.len() as u32
    }
}

impl PartialEq for Vocabulary {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.values, &other.values) || self.values == other.values
    }
}

impl fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values.iter()).finish()
    }
}

impl Serialize for Vocabulary {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.values.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Vocabulary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let values = Vec::<String>::deserialize(deserializer)?;
        Vocabulary::new(values).map_err(serde::de::Error::custom)
    }
}

/// The type of a field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DataType {
    /// 64-bit floating point. NaN counts as missing in a nullable field; infinities are rejected.
    Float,
    /// 64-bit signed integer.
    Int,
    /// Boolean (`true`/`false`, `1`/`0`, `yes`/`no` in text input).
    Bool,
    /// A value from a fixed vocabulary, stored as a code. Numbers are matched by their canonical
    /// text (`1.0` and `1` both match the category `"1"`).
    Categorical {
        /// The known categories.
        vocabulary: Vocabulary,
        /// What to do with values outside the vocabulary.
        #[serde(default)]
        unseen: UnseenPolicy,
    },
    /// Free text, kept as is (identifiers, comments). Models do not read it as a feature.
    String,
}

impl DataType {
    /// A categorical type with the default [`UnseenPolicy::Error`].
    pub fn categorical<I, S>(values: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(DataType::Categorical {
            vocabulary: Vocabulary::new(values)?,
            unseen: UnseenPolicy::Error,
        })
    }

    /// The short name used in messages and in the JSON form: `float`, `int`, `bool`,
    /// `categorical`, `string`.
    pub fn name(&self) -> &'static str {
        match self {
            DataType::Float => "float",
            DataType::Int => "int",
            DataType::Bool => "bool",
            DataType::Categorical { .. } => "categorical",
            DataType::String => "string",
        }
    }

    /// The MLflow column type this maps to.
    pub fn mlflow_type(&self) -> &'static str {
        match self {
            DataType::Float => "double",
            DataType::Int => "long",
            DataType::Bool => "boolean",
            DataType::Categorical { .. } | DataType::String => "string",
        }
    }

    /// True for the types a model reads as numbers (float, int, bool).
    pub fn is_numeric(&self) -> bool {
        matches!(self, DataType::Float | DataType::Int | DataType::Bool)
    }
}

/// One named, typed column of a [`Schema`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Column name, unique within the schema.
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub dtype: DataType,
    /// Whether missing values (empty CSV cell, JSON `null`, absent key, NaN) are allowed.
    #[serde(default)]
    pub nullable: bool,
}

impl Field {
    /// A non-nullable field.
    pub fn new(name: impl Into<String>, dtype: DataType) -> Self {
        Field {
            name: name.into(),
            dtype,
            nullable: false,
        }
    }

    /// The same field, nullable.
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// The vocabulary when the field is categorical.
    pub fn vocabulary(&self) -> Option<&Vocabulary> {
        match &self.dtype {
            DataType::Categorical { vocabulary, .. } => Some(vocabulary),
            _ => None,
        }
    }
}

/// An ordered list of uniquely named fields: what a model reads, what a frame holds.
///
/// The JSON form is `{"fields": [{"name": "AGE", "type": "int", "nullable": false}, ...]}`, with
/// `"vocabulary": [...]` and `"unseen": "error" | "map_to_unknown" | "ignore"` on categorical
/// fields. [`Schema::to_mlflow_signature`] gives MLflow's column-based signature form.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "SchemaRepr", into = "SchemaRepr")]
pub struct Schema {
    /// Shared by clones: a frame built with a model's schema holds the model's fields, and
    /// the check that a frame fits a model is then one pointer comparison.
    inner: Arc<SchemaInner>,
}

struct SchemaInner {
    fields: Vec<Field>,
    index: HashMap<String, usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaRepr {
    fields: Vec<Field>,
}

impl TryFrom<SchemaRepr> for Schema {
    type Error = Error;
    fn try_from(repr: SchemaRepr) -> Result<Self> {
        Schema::new(repr.fields)
    }
}

impl From<Schema> for SchemaRepr {
    fn from(schema: Schema) -> Self {
        SchemaRepr {
            fields: Arc::try_unwrap(schema.inner)
                .map_or_else(|shared| shared.fields.clone(), |inner| inner.fields),
        }
    }
}

impl PartialEq for Schema {
    /// Equal fields in the same order. The name index is derived from the fields, so it is not
    /// compared (comparing two hash maps hashes every name again, which is most of the cost of
    /// checking a one-row frame's schema against a model's). Clones of one schema are equal
    /// without comparing their fields.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner.fields == other.inner.fields
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("fields", &self.inner.fields)
            .finish()
    }
}

/// One column of MLflow's column-based signature (`{"type": "double", "name": "age", "required": true}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlflowColumn {
    /// MLflow type: boolean, integer, long, float, double, string, binary, datetime.
    #[serde(rename = "type")]
    pub ty: String,
    /// Column name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the column must be present and non-null.
    #[serde(default = "default_true")]
    pub required: bool,
}

fn default_true() -> bool {
    true
}

impl Schema {
    /// Builds a schema; fails on an empty field name, duplicate names or an empty vocabulary.
    pub fn new(fields: Vec<Field>) -> Result<Self> {
        let mut index = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            if f.name.is_empty() {
                return Err(Error::InvalidSchema {
                    reason: format!("field {i} has an empty name"),
                });
            }
            if index.insert(f.name.clone(), i).is_some() {
                return Err(Error::InvalidSchema {
                    reason: format!("field `{}` appears twice; names must be unique", f.name),
                });
            }
            if let DataType::Categorical { vocabulary, .. } = &f.dtype
                && vocabulary.is_empty()
            {
                return Err(Error::InvalidSchema {
                    reason: format!(
                        "categorical field `{}` has an empty vocabulary; list its categories",
                        f.name
                    ),
                });
            }
        }
        Ok(Schema {
            inner: Arc::new(SchemaInner { fields, index }),
        })
    }

    /// Parses the JSON form (`{"fields": [...]}`).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::InvalidSchema {
            reason: e.to_string(),
        })
    }

    /// The JSON form, pretty-printed.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, bools and lists cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The fields in order.
    pub fn fields(&self) -> &[Field] {
        &self.inner.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.inner.fields.len()
    }

    /// True when the schema has no fields.
    pub fn is_empty(&self) -> bool {
        self.inner.fields.is_empty()
    }

    /// Position of the field called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.inner.index.get(name).copied()
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.index_of(name).map(|i| &self.inner.fields[i])
    }

    /// Field names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.fields.iter().map(|f| f.name.as_str())
    }

    /// A schema without the named fields (unknown names are an error, so typos surface).
    pub fn without(&self, names: &[&str]) -> Result<Schema> {
        for n in names {
            if self.index_of(n).is_none() {
                return Err(Error::InvalidSchema {
                    reason: format!("no field `{n}` to remove; fields are: {}", self.name_list()),
                });
            }
        }
        Schema::new(
            self.inner
                .fields
                .iter()
                .filter(|f| !names.contains(&f.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// Comma-separated field names, for messages.
    pub(crate) fn name_list(&self) -> String {
        self.names().collect::<Vec<_>>().join(", ")
    }

    /// MLflow's column-based signature of these fields (`signature.inputs` in an `MLmodel` file).
    pub fn to_mlflow_signature(&self) -> Vec<MlflowColumn> {
        self.inner
            .fields
            .iter()
            .map(|f| MlflowColumn {
                ty: f.dtype.mlflow_type().to_string(),
                name: Some(f.name.clone()),
                required: !f.nullable,
            })
            .collect()
    }

    /// The signature as the JSON string MLflow stores in `MLmodel`.
    pub fn to_mlflow_signature_json(&self) -> String {
        serde_json::to_string(&self.to_mlflow_signature()).unwrap_or_default()
    }

    /// Reads an MLflow column-based signature (the JSON string of `signature.inputs`).
    ///
    /// MLflow has no categorical type, so `string` columns become [`DataType::String`];
    /// `integer`/`long` become int, `float`/`double` float, `boolean` bool. Other types
    /// (binary, datetime, tensor specs) are refused with the column named.
    pub fn from_mlflow_signature_json(text: &str) -> Result<Schema> {
        let cols: Vec<MlflowColumn> = serde_json::from_str(text).map_err(|e| Error::InvalidSchema {
            reason: format!("not an MLflow column-based signature: {e}"),
        })?;
        let fields = cols
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let name = c.name.ok_or_else(|| Error::InvalidSchema {
                    reason: format!("signature column {i} has no name"),
                })?;
                let dtype = match c.ty.as_str() {
                    "double" | "float" => DataType::Float,
                    "long" | "integer" => DataType::Int,
                    "boolean" => DataType::Bool,
                    "string" => DataType::String,
                    other => {
                        return Err(Error::InvalidSchema {
                            reason: format!(
                                "signature column `{name}` has MLflow type `{other}`, which streamscore cannot read; supported: double, float, long, integer, boolean, string"
                            ),
                        });
                    }
                };
                Ok(Field {
                    name,
                    dtype,
                    nullable: !c.required,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Schema::new(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_codes_agree_with_the_text_lookup() {
        let cases: [&[&str]; 5] = [
            &["-2", "-1", "0", "1", "2", "3", "8"],
            &["01", "+1", "1", "a", "1.0", " 2", "-0"],
            &["1", "5000"],
            &["a", "b"],
            &["9223372036854775807", "-9223372036854775808"],
        ];
        for values in cases {
            let v = Vocabulary::new(values.iter().copied()).unwrap();
            for i in (-20..20).chain([5000, 1023, i64::MAX, i64::MIN]) {
                if let Some(code) = v.code_of_int(i) {
                    assert_eq!(v.code(&i.to_string()), Some(code), "{values:?}: {i}");
                }
            }
            // Every integer category is found through the table when it has one.
            let found = (-20..20).filter(|&i| v.code_of_int(i).is_some()).count();
            let expected = if values.len() == 7 && values[0] == "-2" {
                7
            } else if values[0] == "01" {
                1
            } else {
                0
            };
            assert_eq!(found, expected, "{values:?}");
        }
    }

    fn sample() -> Schema {
        Schema::new(vec![
            Field::new("age", DataType::Int),
            Field::new("income", DataType::Float).nullable(),
            Field::new("sex", DataType::categorical(["1", "2"]).unwrap()),
            Field::new("member", DataType::Bool),
            Field::new("note", DataType::String).nullable(),
        ])
        .unwrap()
    }

    #[test]
    fn json_round_trip_keeps_types_and_vocabulary() {
        let s = sample();
        let text = s.to_json();
        assert!(text.contains("\"vocabulary\""), "{text}");
        let back = Schema::from_json(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.field("sex").unwrap().vocabulary().unwrap().code("2"),
            Some(1)
        );
    }

    #[test]
    fn json_form_is_the_documented_one() {
        let s = Schema::from_json(
            r#"{"fields": [{"name": "x", "type": "float"},
                {"name": "c", "type": "categorical", "vocabulary": ["a", "b"], "unseen": "ignore", "nullable": true}]}"#,
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert!(!s.fields()[0].nullable);
        match &s.fields()[1].dtype {
            DataType::Categorical { unseen, vocabulary } => {
                assert_eq!(*unseen, UnseenPolicy::Ignore);
                assert_eq!(vocabulary.values(), ["a", "b"]);
            }
            other => panic!("wrong type {other:?}"),
        }
    }

    #[test]
    fn duplicate_and_empty_definitions_are_refused() {
        let dup = Schema::new(vec![
            Field::new("a", DataType::Int),
            Field::new("a", DataType::Float),
        ]);
        assert!(dup.unwrap_err().to_string().contains("`a` appears twice"));
        let err =
            Schema::from_json(r#"{"fields": [{"name": "c", "type": "categorical", "vocabulary": []}]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("empty vocabulary"), "{err}");
        let err = Schema::from_json(
            r#"{"fields": [{"name": "c", "type": "categorical", "vocabulary": ["a", "a"]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn mlflow_signature_matches_mlflow_form() {
        let json = sample().to_mlflow_signature_json();
        assert_eq!(
            json,
            r#"[{"type":"long","name":"age","required":true},{"type":"double","name":"income","required":false},{"type":"string","name":"sex","required":true},{"type":"boolean","name":"member","required":true},{"type":"string","name":"note","required":false}]"#
        );
        let back = Schema::from_mlflow_signature_json(&json).unwrap();
        assert_eq!(back.field("income").unwrap().dtype, DataType::Float);
        assert!(back.field("income").unwrap().nullable);
        assert_eq!(back.field("sex").unwrap().dtype, DataType::String);
        let err = Schema::from_mlflow_signature_json(r#"[{"type": "binary", "name": "img"}]"#).unwrap_err();
        assert!(err.to_string().contains("`img`"), "{err}");
    }

    #[test]
    fn without_removes_fields_and_rejects_typos() {
        let s = sample();
        let t = s.without(&["age", "note"]).unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["income", "sex", "member"]);
        assert!(
            s.without(&["agee"])
                .unwrap_err()
                .to_string()
                .contains("no field `agee`")
        );
    }
}
