//! Request bodies → frames: every body shape of the three protocols, decoded through
//! ml-core's JSON and CSV readers so all of them obey the same validation rules.

use std::sync::Arc;

use ml_core::{Frame, ReadOptions, Schema};
use serde::Deserialize as _;
use serde_json::{Map, Value as Json};

use crate::error::ApiError;

/// The name given to the body in validation messages.
const SOURCE: &str = "request body";

fn options() -> ReadOptions {
    ReadOptions::named(SOURCE)
}

fn core(e: ml_core::Error) -> ApiError {
    ApiError::from_core(&e)
}

/// Parses a JSON body, answering 400 with the parser's position on malformed JSON, and with
/// a hint for the usual mistakes: an empty body, `NaN`/`Infinity` (not JSON: send `null`),
/// bytes that are not UTF-8, nesting deeper than the parser's 128 levels, and a key given twice
/// in one object (refused rather than letting the last one win silently: two parsers that
/// disagree on which value counts is how checks in front of a server get bypassed).
pub(crate) fn parse_json(body: &[u8]) -> Result<Json, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty: send JSON such as {\"data\": [{...}, ...]}",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = StrictValue::deserialize(&mut de).and_then(|v| de.end().map(|()| v.0));
    parsed.map_err(|e| ApiError::bad_request(json_error(body, &e)))
}

/// The message for a JSON syntax error, with a hint when one applies.
fn json_error(body: &[u8], e: &serde_json::Error) -> String {
    if let Err(u) = std::str::from_utf8(body) {
        return format!(
            "the request body is not valid JSON: it is not UTF-8 text (an invalid byte at offset {}); send UTF-8 encoded JSON",
            u.valid_up_to()
        );
    }
    let text = e.to_string();
    let hint = if text.contains("recursion limit") {
        " (values nested more than 128 levels deep)"
    } else if e.is_syntax() && non_json_number_at(body, e.line(), e.column()) {
        "; NaN and Infinity are not JSON: send null for a missing value"
    } else {
        ""
    };
    format!("the request body is not valid JSON: {text}{hint}")
}

/// True when the text at 1-based `line` and `column` (where the parser stopped) is `NaN`,
/// `Infinity` or `-Infinity`.
fn non_json_number_at(body: &[u8], line: usize, column: usize) -> bool {
    let start = body
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum::<usize>();
    let at = (start + column).saturating_sub(1);
    (at.saturating_sub(1)..=at).any(|i| {
        body.get(i..).is_some_and(|rest| {
            [&b"NaN"[..], b"Infinity", b"-Infinity", b"nan", b"inf"]
                .iter()
                .any(|w| rest.starts_with(w))
        })
    })
}

/// A JSON value whose objects have no key twice.
struct StrictValue(Json);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                let more = if shown.len() < key.len() { "..." } else { "" };
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{shown}{more}` in one object: give each key once"
                )));
            }
            out.insert(key, v);
        }
        Ok(Json::Object(out))
    }
}

/// A body that decoded to no rows (`{"data": []}`) is answered with no predictions.
pub(crate) type MaybeFrame = Option<Frame>;

/// The Azure ML `/score` shapes: `{"data": rows}`, `{"input_data": ...}` (MLflow deployments),
/// `{"Inputs": {"<name>": rows}}` (Azure ML designer and inference-schema's named inputs).
pub(crate) fn azure(body: &Json, schema: &Arc<Schema>) -> Result<MaybeFrame, ApiError> {
    let Json::Object(map) = body else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object such as {\"data\": [{...}, ...]}",
        ));
    };
    if let Some(data) = map.get("data") {
        return any_rows(data, schema, "data");
    }
    if let Some(input) = map.get("input_data") {
        return any_rows(input, schema, "input_data");
    }
    if let Some(inputs) = map.get("Inputs") {
        let Json::Object(named) = inputs else {
            return Err(ApiError::bad_request(
                "`Inputs` must be an object holding one named input, e.g. {\"Inputs\": {\"data\": [...]}}",
            ));
        };
        let mut values = named.iter();
        return match (values.next(), values.next()) {
            (Some((name, v)), None) => any_rows(v, schema, name),
            (None, _) => Err(ApiError::bad_request(
                "`Inputs` is empty: give one named input holding the rows",
            )),
            (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
                "`Inputs` has {} inputs, but this model takes one (the rows); give one, e.g. {{\"Inputs\": {{\"data\": [...]}}}}",
                named.len()
            ))),
        };
    }
    // The inference server's own wording for a missing run() argument.
    Err(ApiError::bad_request(
        "A value is not provided for the 'data' parameter.",
    ))
}

/// Rows in any of the forms the protocols use: a list of records or of lists in schema order,
/// a pandas `split` object `{columns, index?, data}`, or a columnar object `{"col": [...]}`
/// (named tensors); a single record is one row.
pub(crate) fn any_rows(value: &Json, schema: &Arc<Schema>, what: &str) -> Result<MaybeFrame, ApiError> {
    match value {
        Json::Array(rows) => rows_frame(rows, schema),
        Json::Object(map) if map.contains_key("data") && map.contains_key("columns") => {
            split(map, schema, what)
        }
        Json::Object(map) if !map.is_empty() && map.values().all(Json::is_array) => {
            columnar(map, schema, what)
        }
        Json::Object(_) => rows_frame(std::slice::from_ref(value), schema),
        _ => Err(ApiError::bad_request(format!(
            "`{what}` must be a list of rows (objects or lists in schema order: {})",
            crate::input::names(schema)
        ))),
    }
}

/// A list of records or of lists in schema order.
pub(crate) fn rows_frame(rows: &[Json], schema: &Arc<Schema>) -> Result<MaybeFrame, ApiError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let frame = if rows[0].is_array() {
        Frame::from_json_arrays(rows, schema.clone(), &options())
    } else {
        Frame::from_json_records(rows, schema.clone(), &options())
    };
    frame.map(Some).map_err(core)
}

/// pandas' `split` orientation: `{"columns": [...], "index": [...], "data": [[...], ...]}`.
pub(crate) fn split(
    map: &Map<String, Json>,
    schema: &Arc<Schema>,
    what: &str,
) -> Result<MaybeFrame, ApiError> {
    let columns: Vec<&str> = match map.get("columns") {
        Some(Json::Array(c)) => c
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    ApiError::bad_request(format!("`{what}.columns` must hold column names (strings)"))
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad_request(format!(
                "`{what}.columns` must be a list of column names"
            )));
        }
    };
    let Some(Json::Array(data)) = map.get("data") else {
        return Err(ApiError::bad_request(format!(
            "`{what}.data` must be a list of rows (lists of values)"
        )));
    };
    if let Some(index) = map.get("index")
        && index.as_array().is_none_or(|i| i.len() != data.len())
    {
        return Err(ApiError::bad_request(format!(
            "`{what}.index` must be a list with one entry per row of `{what}.data` ({} rows)",
            data.len()
        )));
    }
    if data.is_empty() {
        return Ok(None);
    }
    // Columns in schema order: the rows go straight to the array reader, no copy.
    if columns.iter().copied().eq(schema.names()) {
        return rows_frame(data, schema);
    }
    let mut records = Vec::with_capacity(data.len());
    for (r, row) in data.iter().enumerate() {
        let Json::Array(values) = row else {
            return Err(ApiError::bad_request(format!(
                "`{what}.data` row {r} is not a list of values"
            )));
        };
        if values.len() != columns.len() {
            return Err(ApiError::bad_request(format!(
                "`{what}.data` row {r} has {} values for {} columns",
                values.len(),
                columns.len()
            )));
        }
        let record: Map<String, Json> = columns
            .iter()
            .zip(values)
            .map(|(c, v)| ((*c).to_string(), v.clone()))
            .collect();
        records.push(Json::Object(record));
    }
    rows_frame(&records, schema)
}

/// Columns by name: `{"age": [31, 45], "plan": ["pro", "basic"]}`.
pub(crate) fn columnar(
    map: &Map<String, Json>,
    schema: &Arc<Schema>,
    what: &str,
) -> Result<MaybeFrame, ApiError> {
    let mut n = None;
    for (name, col) in map {
        let len = col.as_array().map_or(0, Vec::len);
        match n {
            None => n = Some(len),
            Some(m) if m != len => {
                return Err(ApiError::bad_request(format!(
                    "`{what}`: column `{name}` has {len} values but the columns before it have {m}"
                )));
            }
            _ => {}
        }
    }
    let n = n.unwrap_or(0);
    let records: Vec<Json> = (0..n)
        .map(|r| {
            Json::Object(
                map.iter()
                    .map(|(name, col)| (name.clone(), col.get(r).cloned().unwrap_or(Json::Null)))
                    .collect(),
            )
        })
        .collect();
    rows_frame(&records, schema)
}

/// MLflow's `/invocations` JSON: exactly one of `dataframe_split`, `dataframe_records`,
/// `instances`, `inputs` (plus optional `params`, which this model takes none of).
pub(crate) fn mlflow(body: &Json, schema: &Arc<Schema>) -> Result<MaybeFrame, ApiError> {
    const KEYS: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];
    let Json::Object(map) = body else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object with one of the fields dataframe_split, dataframe_records, instances, inputs",
        ));
    };
    let given: Vec<&str> = KEYS.iter().copied().filter(|k| map.contains_key(*k)).collect();
    if given.len() != 1 {
        let received: Vec<&str> = map.keys().map(String::as_str).collect();
        // MLflow's own wording, so clients that match on it keep working.
        return Err(ApiError::bad_request(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}}. Received dictionary with input fields: {received:?}."
        )));
    }
    let key = given[0];
    let value = &map[key];
    match key {
        "dataframe_split" => match value {
            Json::Object(m) => split(m, schema, key),
            _ => Err(ApiError::bad_request(
                "`dataframe_split` must be an object {columns, index, data}",
            )),
        },
        "dataframe_records" => match value {
            Json::Array(rows) if rows.iter().all(Json::is_object) => rows_frame(rows, schema),
            _ => Err(ApiError::bad_request(
                "`dataframe_records` must be a list of records (objects)",
            )),
        },
        _ => any_rows(value, schema, key),
    }
}

/// A CSV body with a header row.
pub(crate) fn csv(body: &[u8], schema: &Arc<Schema>) -> Result<MaybeFrame, ApiError> {
    Frame::from_csv(body, schema.clone(), &options())
        .map(Some)
        .map_err(core)
}

/// The field names of `schema`, comma-separated, for messages.
pub(crate) fn names(schema: &Schema) -> String {
    schema.names().collect::<Vec<_>>().join(", ")
}

/// Bodies up to this size may take the fast path of `azure_rows`; a larger body that
/// the fast path gives up on would be parsed twice.
const FAST_PATH_BYTES: usize = 64 * 1024;

/// The common `/score` body, `{"data": rows}` where the rows are all lists of one value per
/// field in schema order, or all records holding exactly the schema's fields once each (in any
/// order), decoded without a JSON value per row or per cell: each row's cells go straight into
/// ml-core's frame builder, which applies the same conversion to each cell as the general
/// path's readers (so the same cells, the same frame). `None` for anything else — other
/// keys, missing, extra or repeated fields, a row of the wrong length, rows of both kinds, no
/// rows, malformed JSON, a nested value, a value the builder refuses — and the caller takes the
/// general path, which gives the answer or the error message it always gave. A one-row
/// request spent a good share of its time building the general path's JSON values (a vector
/// per row, a map per body and per record).
pub(crate) fn azure_rows(body: &[u8], schema: &Arc<Schema>) -> Option<Frame> {
    if body.len() > FAST_PATH_BYTES {
        return None;
    }
    if let Some(frame) = lists::frame(body, schema) {
        return Some(frame);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut rows = fast::Rows::new(schema);
    serde::de::DeserializeSeed::deserialize(fast::Body(&mut rows), &mut de).ok()?;
    de.end().ok()?;
    rows.finish()
}

/// The commonest body of all, `{"data": [[v, ...], ...]}` with numbers, `null`, `true`,
/// `false` and strings without escapes, read by a scanner of its own: numbers are parsed by the
/// standard library (correctly rounded, as serde_json's `float_roundtrip` parser: the same
/// values) and taken as serde_json takes them — an integer that fits `i64` is an integer,
/// `-0` and any other number a float. Anything else is `None`, and `azure_rows` goes on with
/// its visitors.
mod lists {
    use std::sync::Arc;

    use ml_core::frame::{Cell, FrameBuilder};
    use ml_core::{Frame, Schema};

    struct Scan<'a> {
        /// The body, checked once as UTF-8 text.
        text: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Scan<'a> {
        fn ws(&mut self) {
            while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        /// Skips white space, then `c` if it comes next.
        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            let next = self.b.get(self.i) == Some(&c);
            self.i += usize::from(next);
            next
        }

        fn literal(&mut self, text: &[u8]) -> bool {
            let next = self.b[self.i..].starts_with(text);
            if next {
                self.i += text.len();
            }
            next
        }

        fn digits(&mut self) -> usize {
            let start = self.i;
            while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            self.i - start
        }

        fn value(&mut self) -> Option<Cell<'a>> {
            self.ws();
            match *self.b.get(self.i)? {
                b'n' => self.literal(b"null").then_some(Cell::Missing),
                b't' => self.literal(b"true").then_some(Cell::Bool(true)),
                b'f' => self.literal(b"false").then_some(Cell::Bool(false)),
                b'"' => {
                    let start = self.i + 1;
                    let len = self.b[start..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                    let end = start + len;
                    if self.b[end] != b'"' {
                        return None;
                    }
                    self.i = end + 1;
                    // Between two ASCII quotes: on character boundaries.
                    self.text.get(start..end).map(Cell::Str)
                }
                b'-' | b'0'..=b'9' => self.number(),
                _ => None,
            }
        }

        /// A number in JSON's grammar.
        fn number(&mut self) -> Option<Cell<'a>> {
            let start = self.i;
            let negative = self.b[self.i] == b'-';
            self.i += usize::from(negative);
            match self.b.get(self.i)? {
                b'0' => self.i += 1,
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            let mut float = false;
            if self.b.get(self.i) == Some(&b'.') {
                self.i += 1;
                if self.digits() == 0 {
                    return None;
                }
                float = true;
            }
            if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                if self.digits() == 0 {
                    return None;
                }
                float = true;
            }
            // Only ASCII was taken: on character boundaries.
            let text = self.text.get(start..self.i)?;
            if !float && let Ok(i) = text.parse::<i64>() {
                // serde_json reads `-0` as the float -0.0.
                return Some(if negative && i == 0 {
                    Cell::Float(-0.0)
                } else {
                    Cell::Int(i)
                });
            }
            // A float, or an integer beyond i64 (a float to serde_json too); out of range is
            // an error there.
            let x: f64 = text.parse().ok()?;
            x.is_finite().then_some(Cell::Float(x))
        }
    }

    /// Rows of up to this many values are read into a buffer on the stack.
    const STACK_CELLS: usize = 64;

    pub(super) fn frame(body: &[u8], schema: &Arc<Schema>) -> Option<Frame> {
        let text = std::str::from_utf8(body).ok()?;
        let mut s = Scan { text, b: body, i: 0 };
        if !s.eat(b'{') {
            return None;
        }
        s.ws();
        if !(s.literal(b"\"data\"") && s.eat(b':') && s.eat(b'[')) {
            return None;
        }
        let n = schema.len();
        let mut builder = FrameBuilder::new(schema.clone(), 1);
        // The cells of a row, on the stack for the usual widths (no allocation per request).
        let mut stack = [Cell::Missing; STACK_CELLS];
        let mut heap = Vec::new();
        let cells: &mut [Cell<'_>] = if n <= STACK_CELLS {
            &mut stack[..n]
        } else {
            heap.resize(n, Cell::Missing);
            &mut heap
        };
        loop {
            if !s.eat(b'[') {
                return None;
            }
            let mut len = 0;
            if !s.eat(b']') {
                loop {
                    let value = s.value()?;
                    *cells.get_mut(len)? = value;
                    len += 1;
                    if s.eat(b',') {
                        continue;
                    }
                    if s.eat(b']') {
                        break;
                    }
                    return None;
                }
            }
            if len != n {
                return None;
            }
            builder.push_row(cells).ok()?;
            if s.eat(b',') {
                continue;
            }
            if s.eat(b']') {
                break;
            }
            return None;
        }
        if !s.eat(b'}') {
            return None;
        }
        s.ws();
        (s.i == body.len()).then(|| builder.finish())
    }
}

/// The visitors of `azure_rows`. Every refusal is an error whose text is never shown: it
/// only sends the request down the general path.
mod fast {
    use std::borrow::Cow;
    use std::fmt;
    use std::sync::Arc;

    use ml_core::Schema;
    use ml_core::frame::{Cell, FrameBuilder};
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

    fn refuse<E: serde::de::Error>() -> E {
        E::custom("not the fast path")
    }

    /// One cell as read, borrowing its text from the body when it has no escapes.
    #[derive(Clone, Debug)]
    enum Read<'de> {
        Missing,
        Int(i64),
        Float(f64),
        Bool(bool),
        Str(Cow<'de, str>),
    }

    impl Read<'_> {
        fn cell(&self) -> Cell<'_> {
            match self {
                Read::Missing => Cell::Missing,
                Read::Int(i) => Cell::Int(*i),
                Read::Float(x) => Cell::Float(*x),
                Read::Bool(b) => Cell::Bool(*b),
                Read::Str(s) => Cell::Str(s),
            }
        }
    }

    /// Whether the rows seen so far are lists or records (they may not mix).
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Unknown,
        Lists,
        Records,
    }

    /// The frame being built, and the scratch of one row.
    pub(super) struct Rows<'s, 'de> {
        schema: &'s Arc<Schema>,
        builder: Option<FrameBuilder>,
        row: Vec<Read<'de>>,
        seen: Vec<bool>,
        kind: Kind,
    }

    impl<'s, 'de> Rows<'s, 'de> {
        pub(super) fn new(schema: &'s Arc<Schema>) -> Self {
            Rows {
                schema,
                builder: None,
                row: Vec::with_capacity(schema.len()),
                seen: Vec::new(),
                kind: Kind::Unknown,
            }
        }

        /// The frame, when at least one row was read.
        pub(super) fn finish(self) -> Option<ml_core::Frame> {
            self.builder.filter(|b| b.n_rows() > 0).map(FrameBuilder::finish)
        }

        /// Pushes `self.row` (complete, in schema order) into the frame; false when a cell
        /// does not fit its field.
        fn push(&mut self) -> bool {
            let schema = self.schema;
            let builder = self
                .builder
                .get_or_insert_with(|| FrameBuilder::new(schema.clone(), 1));
            let cells: Vec<Cell<'_>> = self.row.iter().map(Read::cell).collect();
            builder.push_row(&cells).is_ok()
        }
    }

    /// The top-level object: exactly one key, `data`.
    pub(super) struct Body<'r, 's, 'de>(pub(super) &'r mut Rows<'s, 'de>);

    impl<'de> DeserializeSeed<'de> for Body<'_, '_, 'de> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Body<'_, '_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("{\"data\": [rows]}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            if !map.next_key_seed(Key(Some("data")))?.unwrap_or(false) {
                return Err(refuse());
            }
            map.next_value_seed(List(&mut *self.0))?;
            if map.next_key_seed(Key(None))?.is_some() {
                return Err(refuse());
            }
            Ok(())
        }
    }

    /// A key, compared without copying it: true when it is the one wanted (any, for `None`).
    struct Key(Option<&'static str>);

    impl<'de> DeserializeSeed<'de> for Key {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
            Ok(self.0.is_none_or(|want| want == v))
        }
    }

    /// The list of rows.
    struct List<'r, 's, 'de>(&'r mut Rows<'s, 'de>);

    impl<'de> DeserializeSeed<'de> for List<'_, '_, 'de> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for List<'_, '_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Row(&mut *self.0))?.is_some() {
                if !self.0.push() {
                    return Err(refuse());
                }
            }
            Ok(())
        }
    }

    /// One row (a list or a record) → `Rows::row`, its cells in schema order.
    struct Row<'r, 's, 'de>(&'r mut Rows<'s, 'de>);

    impl<'de> DeserializeSeed<'de> for Row<'_, '_, 'de> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Row<'_, '_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let rows = self.0;
            if rows.kind == Kind::Records {
                return Err(refuse());
            }
            rows.kind = Kind::Lists;
            let n = rows.schema.len();
            rows.row.clear();
            while let Some(v) = seq.next_element_seed(Value)? {
                if rows.row.len() == n {
                    return Err(refuse());
                }
                rows.row.push(v);
            }
            if rows.row.len() != n {
                return Err(refuse());
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let rows = self.0;
            if rows.kind == Kind::Lists {
                return Err(refuse());
            }
            rows.kind = Kind::Records;
            let n = rows.schema.len();
            rows.row.clear();
            rows.row.resize(n, Read::Missing);
            rows.seen.clear();
            rows.seen.resize(n, false);
            let mut next = 0;
            while let Some(i) = map.next_key_seed(Field {
                schema: rows.schema,
                expected: next,
            })? {
                // Not a field, or a field given twice.
                let Some(i) = i.filter(|&i| !std::mem::replace(&mut rows.seen[i], true)) else {
                    return Err(refuse());
                };
                rows.row[i] = map.next_value_seed(Value)?;
                next = i + 1;
            }
            if rows.seen.contains(&false) {
                return Err(refuse());
            }
            Ok(())
        }
    }

    /// One cell: a scalar (a nested value is refused).
    struct Value;

    impl<'de> DeserializeSeed<'de> for Value {
        type Value = Read<'de>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Read<'de>, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// The same values the general path's JSON numbers give: an integer that fits `i64` is
    /// an integer, any other number a float.
    impl<'de> Visitor<'de> for Value {
        type Value = Read<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Read<'de>, E> {
            Ok(Read::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Read<'de>, E> {
            Ok(Read::Int(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Read<'de>, E> {
            Ok(i64::try_from(v).map_or(Read::Float(v as f64), Read::Int))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Read<'de>, E> {
            // A non-finite float is not JSON; the general path reads it as null.
            Ok(if v.is_finite() {
                Read::Float(v)
            } else {
                Read::Missing
            })
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Read<'de>, E> {
            Ok(Read::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Read<'de>, E> {
            Ok(Read::Str(Cow::Owned(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Read<'de>, E> {
            Ok(Read::Str(Cow::Owned(v)))
        }
        fn visit_unit<E>(self) -> Result<Read<'de>, E> {
            Ok(Read::Missing)
        }
        fn visit_none<E>(self) -> Result<Read<'de>, E> {
            Ok(Read::Missing)
        }
    }

    /// A record's key → the index of its field (`None`: not a field); the field expected next
    /// in schema order is compared first, so records in schema order need no hashing.
    struct Field<'s> {
        schema: &'s Schema,
        expected: usize,
    }

    impl<'de> DeserializeSeed<'de> for Field<'_> {
        type Value = Option<usize>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Field<'_> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a field name")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
            let fields = self.schema.fields();
            if fields.get(self.expected).is_some_and(|f| f.name == v) {
                return Ok(Some(self.expected));
            }
            Ok(self.schema.index_of(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use ml_core::{DataType, Field, Predictions};

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(
            Schema::new(vec![
                Field::new("x", DataType::Float),
                Field::new("n", DataType::Int).nullable(),
                Field::new("plan", DataType::categorical(["basic", "pro"]).unwrap()),
            ])
            .unwrap(),
        )
    }

    /// The frame of the general path, or its error message.
    fn general(body: &str, schema: &Arc<Schema>) -> Result<Option<Frame>, String> {
        parse_json(body.as_bytes())
            .and_then(|json| azure(&json, schema))
            .map_err(|e| e.message)
    }

    #[test]
    fn the_fast_path_gives_the_general_paths_frame() {
        let schema = schema();
        for body in [
            r#"{"data": [{"x": 1.5, "n": 2, "plan": "pro"}]}"#,
            // Any key order, nulls, escapes in keys, integers as floats, several rows.
            r#"{"data": [{"plan": "basic", "x": 1, "n": null}, {"n": 3, "pl\u0061n": "pro", "x": -2e3}]}"#,
            " {\"data\":[{\"x\":0,\"n\":1,\"plan\":\"pro\"}]}\n",
            // Rows as lists in schema order: numbers of every kind, nulls, escaped strings.
            r#"{"data": [[1.5, 2, "pro"]]}"#,
            r#"{"data": [[1, null, "b\u0061sic"], [-2e3, 9007199254740993, "pro"], [0.1, -7, "pro"]]}"#,
            r#"{"d\u0061ta": [[1e-300, 0, "basic"]]}"#,
        ] {
            let fast = azure_rows(body.as_bytes(), &schema).expect(body);
            assert_eq!(Some(fast), general(body, &schema).unwrap(), "{body}");
            if let Some(scanned) = lists::frame(body.as_bytes(), &schema) {
                assert_eq!(Some(scanned), general(body, &schema).unwrap(), "{body}");
            }
        }
    }

    #[test]
    fn the_list_scanner_reads_every_number_as_serde_json_does() {
        let numbers = [
            "1.2881847531554629",
            "-0.7645436509716318",
            "0.005005283626572444",
            "-0",
            "-0.0",
            "0",
            "1e22",
            "1E+2",
            "0.1e1",
            "5e-324",
            "2.2250738585072011e-308",
            "1.7976931348623157e308",
            "9007199254740993",
            "123456789012345678901234567890",
            "18446744073709551615",
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "1e-400",
            "3.14159265358979323846264338327950288",
        ];
        let schema = Arc::new(
            Schema::new(
                (0..numbers.len())
                    .map(|i| Field::new(format!("f{i}"), DataType::Float))
                    .collect(),
            )
            .unwrap(),
        );
        let body = format!("{{\"data\": [[{}]]}}", numbers.join(", "));
        let scanned = lists::frame(body.as_bytes(), &schema).expect("scanned");
        let general = general(&body, &schema).unwrap().expect("a frame");
        let bits = |f: &Frame| -> Vec<u64> {
            f.columns()
                .iter()
                .map(|c| match c {
                    ml_core::Column::Float(v) => v[0].to_bits(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(bits(&scanned), bits(&general), "{body}");
        // Out of range is the general path's error, not a value.
        assert!(lists::frame(br#"{"data": [[1e400]]}"#, &schema).is_none());
    }

    #[test]
    fn the_fast_path_leaves_everything_else_to_the_general_path() {
        let schema = schema();
        for body in [
            r#"{"data": [{"x": 1, "plan": "pro"}]}"#, // a nullable field absent
            r#"{"data": [{"x": 1, "n": 2, "plan": "pro", "extra": 1}]}"#, // an extra field
            r#"{"data": [{"x": 1, "n": 2, "plan": "pro", "x": 2}]}"#, // a field twice
            r#"{"data": [{"x": 1, "n": 2, "plan": "gold"}]}"#, // an unknown category
            r#"{"data": [{"x": "a", "n": 2, "plan": "pro"}]}"#, // a mistyped value
            r#"{"data": [[1, 2]]}"#,                  // a list too short
            r#"{"data": [[1, 2, "pro", 4]]}"#,        // a list too long
            r#"{"data": [[1, 2, "pro"], {"x": 1, "n": 2, "plan": "pro"}]}"#, // both kinds
            r#"{"data": [{"x": 1, "n": 2, "plan": "pro"}, [1, 2, "pro"]]}"#, // both kinds
            r#"{"data": [[[1], 2, "pro"]]}"#,         // a nested value
            r#"{"data": [[1, 18446744073709551615, "pro"]]}"#, // an integer beyond i64
            r#"{"data": [[1, 2.5, "pro"]]}"#,         // a float in an int field
            r#"{"data": [[1, 2, "gold"]]}"#,          // an unknown category
            r#"{"data": [1, 2, "pro"]}"#,             // not rows
            r#"{"data": []}"#,
            r#"{"data": [{"x": 1, "n": 2, "plan": "pro"}], "data": []}"#,
            r#"{"data": [{"x": 1, "n": 2, "plan": "pro"}], "other": 1}"#,
            r#"{"input_data": [{"x": 1, "n": 2, "plan": "pro"}]}"#,
            r#"{"data": [{"x": 1, "n": 2, "plan": "pro"}]} trailing"#,
            r#"{"data": [{"x": NaN, "n": 2, "plan": "pro"}]}"#,
            "",
        ] {
            assert!(azure_rows(body.as_bytes(), &schema).is_none(), "{body}");
            assert!(lists::frame(body.as_bytes(), &schema).is_none(), "{body}");
        }
        // The general path still answers those: a frame, or its message.
        assert!(
            general(r#"{"data": [{"x": 1, "plan": "pro"}]}"#, &schema)
                .unwrap()
                .is_some()
        );
        let e = general(r#"{"data": [{"x": 1, "n": 2, "plan": "pro", "x": 2}]}"#, &schema).unwrap_err();
        assert!(e.contains("duplicate key `x`"), "{e}");
    }

    #[test]
    fn azure_bytes_are_the_text_of_the_json_answer() {
        let binary = Predictions::Classification {
            labels: vec!["no".to_string(), "yes".to_string()].into(),
            predicted: vec![1, 0],
            probabilities: ndarray::array![[0.25, 0.75], [f64::NAN, 1.0 / 3.0]],
        };
        let regression = Predictions::Regression {
            values: ndarray::array![1.0, -2.5e-7, f64::INFINITY],
        };
        let multiclass = Predictions::Classification {
            labels: vec!["a".to_string(), "b".to_string(), "c".to_string()].into(),
            predicted: vec![2],
            probabilities: ndarray::array![[0.1, 0.2, 0.7]],
        };
        for p in [binary, regression, multiclass] {
            let expected = serde_json::to_vec(&crate::output::azure(&p)).unwrap();
            assert_eq!(crate::output::azure_bytes(&p), expected);
        }
        assert_eq!(
            crate::output::azure_bytes(&Predictions::Regression {
                values: ndarray::array![0.5, f64::NAN]
            }),
            b"[0.5,null]"
        );
    }
}
