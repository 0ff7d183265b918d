//! Decoding events into frames against a schema. A payload that cannot be decoded, or a row
//! that fails validation, becomes a dead letter with the reason; the other rows go on.
//!
//! JSON events are parsed straight into the frame's column builders: each key is matched to
//! its field (in schema order first, so the usual record costs no hash lookup) and each value
//! is typed as it is read, with no intermediate JSON value tree. The record as received is kept
//! as bytes, to be logged as the model input without re-serializing it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ml_core::frame::{Cell, FrameBuilder};
use ml_core::{Column, CsvTable, DataType, Error as CoreError, Frame, ReadOptions, Schema};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::jsonwrite::{write_f64, write_int, write_str};
use crate::source::{CONTENT_TYPE, CSV_HEADER};
use crate::traits::{DeadLetter, Event, SourcePosition};

/// The rows of one decoded group of events.
#[derive(Debug)]
pub struct Decoded {
    /// The valid rows, or `None` when every event of the group was set aside.
    pub frame: Option<Frame>,
    /// Per frame row: where it came from and the event's timestamp.
    pub rows: Vec<(SourcePosition, Option<i64>)>,
    /// The input rows as JSON objects, one after another with no separator: the records as
    /// received for JSON-object events, rebuilt from the values for JSON arrays and CSV lines.
    /// Sinks log them as the model inputs without re-serializing.
    pub inputs_json: Vec<u8>,
    /// Where the object of each frame row ends in `inputs_json` (it starts where the previous
    /// one ends).
    pub input_ends: Vec<usize>,
    /// The events set aside.
    pub dead: Vec<DeadLetter>,
}

impl Decoded {
    /// The input object of frame row `row`, as JSON text.
    pub fn input(&self, row: usize) -> &[u8] {
        let start = if row == 0 { 0 } else { self.input_ends[row - 1] };
        &self.inputs_json[start..self.input_ends[row]]
    }
}

fn position(e: &Event) -> SourcePosition {
    SourcePosition {
        partition: e.partition,
        offset: e.offset,
    }
}

fn is_csv(e: &Event) -> bool {
    e.header(CONTENT_TYPE)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"text/csv"))
}

fn dead(e: &Event, reason: String, now_ms: i64) -> DeadLetter {
    DeadLetter {
        position: position(e),
        payload: String::from_utf8_lossy(&e.payload).into_owned(),
        reason,
        timestamp_ms: now_ms,
    }
}

/// Decodes events, in order, into groups of one format each (JSON or CSV). Most sources produce
/// one format, hence one group.
pub fn decode(events: &[Event], schema: &Arc<Schema>, now_ms: i64) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let csv = is_csv(&events[start]);
        let len = events[start..].iter().take_while(|e| is_csv(e) == csv).count();
        let group = &events[start..start + len];
        out.push(if csv {
            let group: Vec<&Event> = group.iter().collect();
            decode_csv(&group, schema, now_ms)
        } else {
            decode_json(group, schema, now_ms)
        });
        start += len;
    }
    out
}

/// A value read from a JSON event, before it is typed against its field.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot<'de> {
    Missing,
    /// A string without escapes, borrowed from the payload.
    Borrowed(&'de str),
    /// A string with escapes, unescaped into the event's side buffer (index).
    Owned(usize),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nested(&'static str),
}

impl<'de> Slot<'de> {
    /// The cell of a value the fast scan read ([`scan_flat_object`] never makes an `Owned`
    /// slot, which needs the event's side buffer: it would read as missing).
    #[inline(always)]
    fn scanned_cell(self) -> Cell<'de> {
        match self {
            Slot::Missing | Slot::Owned(_) => Cell::Missing,
            Slot::Borrowed(s) => Cell::Str(s),
            Slot::Int(i) => Cell::Int(i),
            Slot::Float(x) => Cell::Float(x),
            Slot::Bool(b) => Cell::Bool(b),
            Slot::Nested(what) => Cell::Nested(what),
        }
    }
}

/// What the top level of a JSON event was.
enum Shape {
    Object,
    Array,
    WrongCount(usize),
    Other,
}

/// Matches record keys to field indices: keys usually come in schema order, so the field after
/// the previous key is tried first, and the schema's index only on a miss.
struct Keys<'a> {
    schema: &'a Schema,
    next: usize,
    /// Per field: whether its name is written in JSON as is, between quotes (no quote,
    /// backslash or control character), so the fast scan may compare a key with it byte for
    /// byte (see [`plain_names`]).
    plain: &'a [bool],
}

/// Per field of `schema`: whether its name needs no escaping in JSON.
fn plain_names(schema: &Schema) -> Vec<bool> {
    schema
        .fields()
        .iter()
        .map(|f| f.name.bytes().all(|b| b != b'"' && b != b'\\' && b >= 0x20))
        .collect()
}

/// Schemas this small are searched field by field for a key out of order (comparing lengths
/// first), which is faster than hashing the key.
const SCAN_FIELDS: usize = 32;

impl<'a> Keys<'a> {
    fn new(schema: &'a Schema, plain: &'a [bool]) -> Self {
        Keys {
            schema,
            next: 0,
            plain,
        }
    }

    fn find(&mut self, key: &str) -> Option<usize> {
        let fields = self.schema.fields();
        let i = match fields.get(self.next) {
            Some(f) if f.name == key => self.next,
            _ if fields.len() <= SCAN_FIELDS => fields
                .iter()
                .position(|f| same_bytes(f.name.as_bytes(), key.as_bytes()))?,
            _ => self.schema.index_of(key)?,
        };
        self.next = i + 1;
        Some(i)
    }

    /// When the string at `at` is the name of the expected field (the one after the previous
    /// key) with no escape: that field and the index after the closing quote.
    #[inline]
    fn expected_at(&self, bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        let name = self.schema.fields().get(self.next)?.name.as_bytes();
        let end = at + 1 + name.len();
        let matched = self.plain.get(self.next) == Some(&true)
            && bytes.get(at) == Some(&b'"')
            && bytes.get(end) == Some(&b'"')
            && same_bytes(&bytes[at + 1..end], name);
        matched.then_some((self.next, end + 1))
    }
}

/// `a == b`, compared eight bytes at a time inline: keys are short, and a call to `memcmp`
/// per key costs more than the comparison.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y) {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

struct EventSeed<'a, 'de> {
    keys: Keys<'a>,
    slots: &'a mut Vec<Slot<'de>>,
    owned: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_, 'de> {
    type Value = Shape;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_, 'de> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Shape, A::Error> {
        while let Some(index) = map.next_key_seed(KeySeed(&mut self.keys))? {
            match index {
                Some(i) => self.slots[i] = map.next_value_seed(SlotSeed(self.owned))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Shape::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let n = self.slots.len();
        let mut found = 0;
        while found < n {
            match seq.next_element_seed(SlotSeed(self.owned))? {
                Some(slot) => self.slots[found] = slot,
                None => break,
            }
            found += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            found += 1;
        }
        Ok(if found == n {
            Shape::Array
        } else {
            Shape::WrongCount(found)
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
}

/// Reads a key and returns its field index (`None` for a key that is not a field).
struct KeySeed<'k, 'a>(&'k mut Keys<'a>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.find(key))
    }
}

/// Reads one value into a [`Slot`].
struct SlotSeed<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for SlotSeed<'_> {
    type Value = Slot<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Slot<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed<'_> {
    type Value = Slot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Slot<'de>, E> {
        Ok(Slot::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Slot<'de>, E> {
        Ok(Slot::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Slot<'de>, E> {
        // As serde_json's own values: an integer when it fits i64, a float beyond.
        Ok(i64::try_from(u).map_or(Slot::Float(u as f64), Slot::Int))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Slot<'de>, E> {
        Ok(Slot::Float(x))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Slot<'de>, E> {
        Ok(Slot::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Slot<'de>, E> {
        self.0.push(s.to_string());
        Ok(Slot::Owned(self.0.len() - 1))
    }
    fn visit_unit<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Missing)
    }
    fn visit_none<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Missing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slot<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Slot::Nested("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slot<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Slot::Nested("an object"))
    }
}

/// Parses a JSON event with serde_json into `slots`.
fn parse_serde<'de>(
    payload: &'de [u8],
    schema: &Schema,
    slots: &mut Vec<Slot<'de>>,
    owned: &mut Vec<String>,
) -> Result<Shape, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let seed = EventSeed {
        keys: Keys::new(schema, &[]),
        slots,
        owned,
    };
    seed.deserialize(&mut de)
        .and_then(|shape| de.end().map(|()| shape))
}

/// The fast path for the usual event, a flat JSON object of numbers, plain strings, booleans
/// and nulls: one pass over the bytes, keys compared with the expected field name without
/// hashing. Returns `None` — and the caller parses with serde_json — on anything else: nested
/// values, escapes, control characters, numbers outside i64 or in a form JSON does not allow,
/// invalid UTF-8, malformed JSON. So it accepts only what serde_json accepts, with the same
/// values. On success, says whether the text holds a line break (only possible as whitespace
/// between tokens, as strings with control characters are left to serde_json).
fn scan_flat_object<'de>(bytes: &'de [u8], keys: &mut Keys<'_>, cells: &mut [Cell<'de>]) -> Option<bool> {
    let mut ws = Whitespace::default();
    let mut at = ws.skip(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = ws.skip(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return (ws.skip(bytes, at + 1) == bytes.len()).then_some(ws.line_break);
    }
    loop {
        let (index, next) = match keys.expected_at(bytes, at) {
            Some((i, next)) => {
                keys.next = i + 1;
                (Some(i), next)
            }
            None => {
                let (key, next) = scan_plain_string(bytes, at)?;
                (keys.find(std::str::from_utf8(key).ok()?), next)
            }
        };
        at = ws.skip(bytes, next);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = ws.skip(bytes, at + 1);
        let (slot, next) = scan_value(bytes, at)?;
        if let Some(i) = index {
            cells[i] = slot.scanned_cell();
        }
        at = ws.skip(bytes, next);
        match bytes.get(at) {
            Some(b',') => at = ws.skip(bytes, at + 1),
            Some(b'}') => return (ws.skip(bytes, at + 1) == bytes.len()).then_some(ws.line_break),
            _ => return None,
        }
    }
}

/// Skips JSON whitespace, noting whether it held a line break.
#[derive(Default)]
struct Whitespace {
    line_break: bool,
}

impl Whitespace {
    /// The index of the first byte at or after `at` that is not whitespace. Most gaps in an
    /// event are empty or one space: those are settled by a byte or two.
    #[inline(always)]
    fn skip(&mut self, bytes: &[u8], at: usize) -> usize {
        match bytes.get(at) {
            Some(&b) if b > b' ' => at,
            Some(&b' ') if bytes.get(at + 1).is_some_and(|&b| b > b' ') => at + 1,
            _ => self.skip_loop(bytes, at),
        }
    }

    fn skip_loop(&mut self, bytes: &[u8], mut at: usize) -> usize {
        while let Some(&b) = bytes.get(at) {
            match b {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.line_break = true,
                _ => break,
            }
            at += 1;
        }
        at
    }
}

/// A string at `at` with no escape and no control character: its content bytes and the index
/// after its closing quote.
fn scan_plain_string(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = bytes[start..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let end = start + len;
    (bytes[end] == b'"').then_some((&bytes[start..end], end + 1))
}

/// A scalar value at `at` and the index after it.
fn scan_value(bytes: &[u8], at: usize) -> Option<(Slot<'_>, usize)> {
    match *bytes.get(at)? {
        b'"' => {
            let (s, next) = scan_plain_string(bytes, at)?;
            Some((Slot::Borrowed(std::str::from_utf8(s).ok()?), next))
        }
        b't' if bytes[at..].starts_with(b"true") => Some((Slot::Bool(true), at + 4)),
        b'f' if bytes[at..].starts_with(b"false") => Some((Slot::Bool(false), at + 5)),
        b'n' if bytes[at..].starts_with(b"null") => Some((Slot::Missing, at + 4)),
        b'1'..=b'9' => scan_positive_int(bytes, at),
        b'-' | b'0' => scan_number(bytes, at),
        _ => None,
    }
}

/// The usual number of an event, a positive integer of at most 18 digits (below 10^18, so it
/// fits i64): read in one tight loop. Anything else — a fraction, an exponent, more digits — is
/// read again by [`scan_number`], which gives the same value for the integers taken here.
#[inline(always)]
fn scan_positive_int(bytes: &[u8], at: usize) -> Option<(Slot<'_>, usize)> {
    let mut v: u64 = 0;
    let mut end = at;
    while let Some(&b) = bytes.get(end) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v * 10 + u64::from(d);
        end += 1;
        if end - at > 18 {
            return scan_number(bytes, at);
        }
    }
    match bytes.get(end) {
        Some(b'.' | b'e' | b'E') => scan_number(bytes, at),
        _ => Some((Slot::Int(v as i64), end)),
    }
}

/// A number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Integers that
/// fit i64 become `Int`, the others with a fraction or exponent `Float` (correctly rounded, as
/// serde_json's `float_roundtrip`); `-0` and integers beyond i64 are left to serde_json.
#[inline]
fn scan_number(bytes: &[u8], at: usize) -> Option<(Slot<'_>, usize)> {
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let negative = bytes[at] == b'-';
    let start = at + usize::from(negative);
    // The integer part, accumulated as it is scanned (the usual number is a short integer).
    let mut end = start;
    let mut small: u64 = 0;
    while let Some(&b) = bytes.get(end) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        small = small.wrapping_mul(10).wrapping_add(u64::from(d));
        end += 1;
    }
    let int_digits = end - start;
    if int_digits == 0 || (int_digits > 1 && bytes[start] == b'0') {
        return None;
    }
    let mut float = false;
    // The decimal significand (integer and fraction digits) and its power of ten, while it
    // has at most 19 digits (no overflow of u64); `exact` turns false beyond.
    let mut significand = small;
    let mut exact = int_digits <= 19;
    let mut power: i64 = 0;
    if bytes.get(end) == Some(&b'.') {
        let from = end + 1;
        let mut n = 0;
        // Eight digits at a time while they last (a float's fraction is usually long).
        while let Some(eight) = eight_digits(bytes, from + n) {
            significand = significand.wrapping_mul(100_000_000).wrapping_add(eight);
            n += 8;
        }
        while let Some(&b) = bytes.get(from + n) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            significand = significand.wrapping_mul(10).wrapping_add(u64::from(d));
            n += 1;
        }
        if n == 0 {
            return None;
        }
        exact &= int_digits + n <= 19;
        power = -(n as i64);
        end = from + n;
        float = true;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        end += 1;
        let minus = bytes.get(end) == Some(&b'-');
        if matches!(bytes.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        let n = digits(end);
        if n == 0 {
            return None;
        }
        if n <= 4 {
            let e = bytes[end..end + n]
                .iter()
                .fold(0i64, |e, &b| e * 10 + i64::from(b - b'0'));
            power += if minus { -e } else { e };
        } else {
            exact = false;
        }
        end += n;
        float = true;
    }
    if float {
        if let Some(x) = exact.then(|| exact_float(significand, power)).flatten() {
            return Some((Slot::Float(if negative { -x } else { x }), end));
        }
        // Only ASCII was matched above.
        let x: f64 = std::str::from_utf8(&bytes[at..end]).ok()?.parse().ok()?;
        return x.is_finite().then_some((Slot::Float(x), end));
    }
    if negative && int_digits == 1 && small == 0 {
        return None; // `-0`: left to serde_json
    }
    if int_digits <= 18 {
        // Below 10^18: no overflow was possible, and the value fits i64 either way.
        let v = small as i64;
        return Some((Slot::Int(if negative { -v } else { v }), end));
    }
    // Accumulated on the negative side, which reaches i64::MIN; overflow falls back.
    let mut v: i64 = 0;
    for &b in &bytes[start..end] {
        v = v.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    let v = if negative { v } else { v.checked_neg()? };
    Some((Slot::Int(v), end))
}

/// The value of the eight ASCII digits at `at`, when there are eight digits there (the SWAR
/// method of fast_float: one load, a check of all eight bytes, three multiplications).
#[inline]
fn eight_digits(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    let v = u64::from_le_bytes(chunk);
    let low = v.wrapping_sub(0x3030_3030_3030_3030);
    let high = v.wrapping_add(0x4646_4646_4646_4646);
    if (low | high) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // Pairs, then quadruples, then the eight digits (the first byte is the leading digit).
    let v = low.wrapping_mul(10).wrapping_add(low >> 8);
    let v1 = (v & 0x0000_00ff_0000_00ff).wrapping_mul(0x000f_4240_0000_0064);
    let v2 = ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(0x0000_2710_0000_0001);
    Some(u64::from((v1.wrapping_add(v2) >> 32) as u32))
}

/// `significand × 10^power`, correctly rounded (the same double as a full parse), when the power
/// of ten is within ±22: for a significand below 2^53 both factors are exact doubles and one
/// multiplication or division, correctly rounded by IEEE arithmetic, gives it (Clinger's fast
/// path); a longer significand with a negative power is checked exactly. `None` otherwise.
#[inline]
fn exact_float(significand: u64, power: i64) -> Option<f64> {
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
        1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let scale = *POWERS.get(usize::try_from(power.unsigned_abs()).ok()?)?;
    let m = significand as f64;
    if significand <= 1 << 53 {
        return Some(if power < 0 { m / scale } else { m * scale });
    }
    if power >= 0 {
        return None;
    }
    // A significand of 17 to 19 digits (a double's shortest text often has 17): the division
    // of the rounded significand is within an ulp or so of the value; the correctly rounded
    // double is found by comparing the exact value with the midpoints around the candidate,
    // in 128-bit integers.
    checked_quotient(significand, power.unsigned_abs() as u32, m / scale)
}

/// The double nearest to `significand / 10^k` (ties to even), starting from a candidate `q`
/// close to it; `None` when the exact comparison does not fit 128 bits or the candidate is not
/// a normal positive double.
fn checked_quotient(significand: u64, k: u32, mut q: f64) -> Option<f64> {
    // 10^0 ..= 10^22, the powers exact_float divides by.
    const TEN_POWERS: [u128; 23] = {
        let mut t = [1u128; 23];
        let mut i = 1;
        while i < t.len() {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    let ten_k = *TEN_POWERS.get(usize::try_from(k).ok()?)?;
    for _ in 0..3 {
        if !q.is_normal() || q < 0.0 {
            return None;
        }
        let bits = q.to_bits();
        let mantissa = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
        let exponent = i64::try_from(bits >> 52).ok()? - 1075;
        // q = mantissa × 2^exponent. Compare significand / 10^k with (2·mantissa ± 1) ×
        // 2^(exponent - 1), both sides multiplied by 10^k × 2^(1 - exponent).
        let shift = u32::try_from(1 - exponent).ok()?;
        if mantissa == 1 << 52 || shift + (64 - significand.leading_zeros()) > 127 {
            return None; // the lower neighbour's ulp is smaller, or too wide: leave it
        }
        let value = u128::from(significand) << shift;
        // Below 2^54 × 10^22 < 2^128: no overflow.
        let above = (2 * mantissa + 1) * ten_k;
        let below = (2 * mantissa - 1) * ten_k;
        let even = mantissa % 2 == 0;
        if value > above || (value == above && !even) {
            q = f64::from_bits(bits + 1);
        } else if value < below || (value == below && !even) {
            q = f64::from_bits(bits - 1);
        } else {
            return Some(q);
        }
    }
    None
}

/// Reuses a vector's allocation for another lifetime of its (plain `Copy`) items.
fn recycle<'b>(mut v: Vec<Slot<'_>>) -> Vec<Slot<'b>> {
    v.clear();
    v.into_iter().map(|_| Slot::Missing).collect()
}

fn recycle_cells<'b>(mut v: Vec<Cell<'_>>) -> Vec<Cell<'b>> {
    v.clear();
    v.into_iter().map(|_| Cell::Missing).collect()
}

/// Appends a JSON payload to the logged inputs. Valid JSON holds a raw line break only as
/// whitespace between tokens, so replacing it keeps the meaning and keeps the log one line per
/// batch.
fn push_raw_json(buf: &mut Vec<u8>, payload: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(payload);
    for b in &mut buf[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
}

fn write_cell(buf: &mut Vec<u8>, cell: Cell<'_>) {
    match cell {
        Cell::Missing | Cell::Nested(_) => buf.extend_from_slice(b"null"),
        Cell::Text(s) | Cell::Str(s) => write_str(buf, s),
        Cell::Int(i) => write_int(buf, i),
        Cell::Float(x) => write_f64(buf, x),
        Cell::Bool(b) => buf.extend_from_slice(if b { b"true" } else { b"false" }),
    }
}

/// The columns of a batch whose fields are all floats or integers, filled straight from the
/// scanned cells while every row holds only numbers of its field's kind (an integer also for a
/// float field): what [`FrameBuilder::push_row`] would store for such a row, without its
/// per-cell conversion and validation (measured: about a sixth of the decoding instructions
/// of a 20-float event). The first row that holds anything else (a missing value, a string,
/// an integer given for a float... ) moves the rows so far into a [`FrameBuilder`], which
/// takes the rest of the batch with its full rules.
enum Numeric {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

impl Numeric {
    /// One column per field, or `None` when a field is neither a float nor an integer (or
    /// there is no field).
    fn columns(schema: &Schema, capacity: usize) -> Option<Vec<Numeric>> {
        if schema.is_empty() {
            return None;
        }
        schema
            .fields()
            .iter()
            .map(|f| match f.dtype {
                DataType::Float => Some(Numeric::Float(Vec::with_capacity(capacity))),
                DataType::Int => Some(Numeric::Int(Vec::with_capacity(capacity))),
                _ => None,
            })
            .collect()
    }

    /// Whether `cell` is stored in this column as it is (as the builder would store it).
    #[inline(always)]
    fn takes(&self, cell: Cell<'_>) -> bool {
        match (self, cell) {
            (Numeric::Float(_), Cell::Float(x)) => x.is_finite(),
            (Numeric::Float(_), Cell::Int(_)) | (Numeric::Int(_), Cell::Int(_)) => true,
            _ => false,
        }
    }

    /// Appends a cell [`Numeric::takes`] accepted.
    #[inline(always)]
    fn push(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Numeric::Float(v), Cell::Float(x)) => v.push(x),
            (Numeric::Float(v), Cell::Int(i)) => v.push(i as f64),
            (Numeric::Int(v), Cell::Int(i)) => v.push(i),
            _ => {}
        }
    }

    /// Rows the column has room for (the batch's events).
    fn capacity(&self) -> usize {
        match self {
            Numeric::Float(v) => v.capacity(),
            Numeric::Int(v) => v.capacity(),
        }
    }

    /// Row `row` as the builder's cells.
    fn cell(&self, row: usize) -> Cell<'static> {
        match self {
            Numeric::Float(v) => Cell::Float(v[row]),
            Numeric::Int(v) => Cell::Int(v[row]),
        }
    }

    fn into_column(self) -> Column {
        match self {
            Numeric::Float(v) => Column::Float(v.into()),
            Numeric::Int(v) => Column::Int(v.into()),
        }
    }
}

/// Where a batch's rows go: numeric columns while they last, then a [`FrameBuilder`].
enum Rows {
    Numeric { columns: Vec<Numeric>, n_rows: usize },
    Builder(FrameBuilder),
}

impl Rows {
    fn new(schema: &Arc<Schema>, capacity: usize) -> Rows {
        match Numeric::columns(schema, capacity) {
            Some(columns) => Rows::Numeric { columns, n_rows: 0 },
            None => Rows::Builder(FrameBuilder::new(schema.clone(), capacity)),
        }
    }

    /// Appends a row, as [`FrameBuilder::push_row`] does (`cells` has one cell per field).
    fn push(
        &mut self,
        schema: &Arc<Schema>,
        cells: &[Cell<'_>],
    ) -> Result<(), Vec<ml_core::validation::ValidationError>> {
        match self {
            Rows::Builder(b) => b.push_row(cells),
            Rows::Numeric { columns, n_rows } => {
                if columns.iter().zip(cells).all(|(c, &cell)| c.takes(cell)) {
                    for (c, &cell) in columns.iter_mut().zip(cells) {
                        c.push(cell);
                    }
                    *n_rows += 1;
                    return Ok(());
                }
                let mut b = builder_of(schema, columns, *n_rows);
                let result = b.push_row(cells);
                *self = Rows::Builder(b);
                result
            }
        }
    }

    fn n_rows(&self) -> usize {
        match self {
            Rows::Numeric { n_rows, .. } => *n_rows,
            Rows::Builder(b) => b.n_rows(),
        }
    }

    /// The frame of the rows, or `None` when there is none. An error only if the numeric
    /// columns were refused by [`Frame::from_columns`], which their checks as they were filled
    /// rule out: the caller sets the rows aside with the reason rather than lose them.
    fn finish(self, schema: &Arc<Schema>) -> Result<Option<Frame>, String> {
        if self.n_rows() == 0 {
            return Ok(None);
        }
        match self {
            Rows::Builder(b) => Ok(Some(b.finish())),
            Rows::Numeric { columns, .. } => {
                let columns = columns.into_iter().map(Numeric::into_column).collect();
                Frame::from_columns(schema.clone(), columns, None)
                    .map(Some)
                    .map_err(|e| format!("internal error (a bug in the stream decoder): {e}"))
            }
        }
    }
}

/// A builder holding the rows of numeric columns (each row is accepted there: it holds numbers
/// of its fields' kinds only, as [`Numeric::takes`] checked).
fn builder_of(schema: &Arc<Schema>, columns: &[Numeric], n_rows: usize) -> FrameBuilder {
    // Room for the whole batch: the builder takes the rows after these too.
    let capacity = columns.first().map_or(n_rows, Numeric::capacity);
    let mut b = FrameBuilder::new(schema.clone(), capacity.max(1));
    let mut row = Vec::with_capacity(columns.len());
    for r in 0..n_rows {
        row.clear();
        row.extend(columns.iter().map(|c| c.cell(r)));
        let _ = b.push_row(&row);
    }
    b
}

fn decode_json(group: &[Event], schema: &Arc<Schema>, now_ms: i64) -> Decoded {
    let n = schema.len();
    let mut builder = Rows::new(schema, group.len());
    let mut rows = Vec::with_capacity(group.len());
    let mut dead_letters = Vec::new();
    let mut inputs_json = Vec::with_capacity(group.iter().map(|e| e.payload.len()).sum());
    let mut input_ends = Vec::with_capacity(group.len());
    let mut slots_store: Vec<Slot<'static>> = Vec::with_capacity(n);
    let mut cells_store: Vec<Cell<'static>> = Vec::with_capacity(n);
    let mut owned = Vec::new();
    let plain = plain_names(schema);
    for e in group {
        let mut cells = recycle_cells(std::mem::take(&mut cells_store));
        cells.resize(n, Cell::Missing);
        // Whether the payload may hold a line break, to be replaced in the logged input.
        let mut line_break = true;
        let shape = match scan_flat_object(&e.payload, &mut Keys::new(schema, &plain), &mut cells) {
            Some(found) => {
                line_break = found;
                Shape::Object
            }
            None => {
                // Anything the fast scan does not handle (nested values, escapes, odd numbers,
                // errors) is parsed again by serde_json, which also words the errors.
                let mut slots = recycle(std::mem::take(&mut slots_store));
                slots.resize(n, Slot::Missing);
                owned.clear();
                let parsed = parse_serde(&e.payload, schema, &mut slots, &mut owned);
                let refused = match parsed {
                    Ok(Shape::Object | Shape::Array) => None,
                    Ok(Shape::WrongCount(found)) => Some(format!(
                        "expected {n} values (one per field, in schema order), found {found}"
                    )),
                    Ok(Shape::Other) => {
                        Some("expected a JSON object (one record) or a JSON array of field values".into())
                    }
                    Err(ref err) => Some(format!("not valid JSON: {err}")),
                };
                if let Some(reason) = refused {
                    dead_letters.push(dead(e, reason, now_ms));
                    slots_store = recycle(slots);
                    cells_store = recycle_cells(cells);
                    continue;
                }
                for (cell, slot) in cells.iter_mut().zip(&slots) {
                    *cell = match *slot {
                        Slot::Owned(i) => Cell::Str(&owned[i]),
                        other => other.scanned_cell(),
                    };
                }
                slots_store = recycle(slots);
                parsed.unwrap_or(Shape::Other)
            }
        };
        match builder.push(schema, &cells) {
            Ok(()) => {
                rows.push((position(e), e.timestamp_ms));
                if matches!(shape, Shape::Object) {
                    if line_break {
                        push_raw_json(&mut inputs_json, &e.payload);
                    } else {
                        inputs_json.extend_from_slice(&e.payload);
                    }
                } else {
                    inputs_json.push(b'{');
                    for (i, (field, cell)) in schema.fields().iter().zip(&cells).enumerate() {
                        if i > 0 {
                            inputs_json.push(b',');
                        }
                        write_str(&mut inputs_json, &field.name);
                        inputs_json.push(b':');
                        write_cell(&mut inputs_json, *cell);
                    }
                    inputs_json.push(b'}');
                }
                input_ends.push(inputs_json.len());
            }
            Err(problems) => {
                let reason = problems
                    .iter()
                    .map(|p| format!("field `{}`: {}", p.field, p.problem))
                    .collect::<Vec<_>>()
                    .join("; ");
                dead_letters.push(dead(e, reason, now_ms));
            }
        }
        cells_store = recycle_cells(cells);
    }
    let frame = match builder.finish(schema) {
        Ok(frame) => frame,
        Err(reason) => {
            let mut start = 0;
            for ((position, _), &end) in rows.iter().zip(&input_ends) {
                dead_letters.push(DeadLetter {
                    position: position.clone(),
                    payload: String::from_utf8_lossy(&inputs_json[start..end]).into_owned(),
                    reason: reason.clone(),
                    timestamp_ms: now_ms,
                });
                start = end;
            }
            dead_letters.sort_by_key(|d| (d.position.partition, d.position.offset));
            rows.clear();
            inputs_json.clear();
            input_ends.clear();
            None
        }
    };
    Decoded {
        frame,
        rows,
        inputs_json,
        input_ends,
        dead: dead_letters,
    }
}

/// Appends row `row` of `frame` as a JSON object of field → value.
pub(crate) fn write_frame_row(buf: &mut Vec<u8>, frame: &Frame, row: usize) {
    buf.push(b'{');
    for (i, field) in frame.schema().fields().iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(buf, &field.name);
        buf.push(b':');
        match frame.value(row, i) {
            Some(ml_core::Value::Float(x)) => write_f64(buf, x),
            Some(ml_core::Value::Int(x)) => write_int(buf, x),
            Some(ml_core::Value::Bool(x)) => buf.extend_from_slice(if x { b"true" } else { b"false" }),
            Some(ml_core::Value::Str(x)) => write_str(buf, &x),
            Some(ml_core::Value::Null) | None => buf.extend_from_slice(b"null"),
        }
    }
    buf.push(b'}');
}

fn decode_csv(group: &[&Event], schema: &Arc<Schema>, now_ms: i64) -> Decoded {
    let header = group
        .first()
        .and_then(|e| e.header(CSV_HEADER))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let rows: Vec<(Vec<u8>, &Event)> = group.iter().map(|&e| (e.payload.clone(), e)).collect();
    let mut decoded = build(rows, Vec::new(), now_ms, |lines: &[Vec<u8>]| {
        let mut text = header.clone();
        for l in lines {
            text.push(b'\n');
            text.extend_from_slice(l);
        }
        text.push(b'\n');
        CsvTable::read(text.as_slice(), "event")?.to_frame(schema.clone(), &ReadOptions::default())
    });
    if let Some(frame) = &decoded.frame {
        for r in 0..frame.n_rows() {
            write_frame_row(&mut decoded.inputs_json, frame, r);
            decoded.input_ends.push(decoded.inputs_json.len());
        }
    }
    decoded
}

/// Builds a frame from CSV `rows`, moving each row that fails to the dead letters (with every
/// problem found in it) and trying again with the rest.
fn build<T>(
    rows: Vec<(T, &Event)>,
    mut dead_letters: Vec<DeadLetter>,
    now_ms: i64,
    make: impl Fn(&[T]) -> ml_core::Result<Frame>,
) -> Decoded {
    let (mut values, mut events): (Vec<T>, Vec<&Event>) = rows.into_iter().unzip();
    loop {
        if values.is_empty() {
            dead_letters.sort_by_key(|d| (d.position.partition, d.position.offset));
            return Decoded {
                frame: None,
                rows: Vec::new(),
                inputs_json: Vec::new(),
                input_ends: Vec::new(),
                dead: dead_letters,
            };
        }
        let bad: BTreeMap<usize, String> = match make(&values) {
            Ok(frame) => {
                let meta = events.iter().map(|e| (position(e), e.timestamp_ms)).collect();
                dead_letters.sort_by_key(|d| (d.position.partition, d.position.offset));
                return Decoded {
                    frame: Some(frame),
                    rows: meta,
                    inputs_json: Vec::new(),
                    input_ends: Vec::new(),
                    dead: dead_letters,
                };
            }
            Err(CoreError::Validation(v)) => {
                let mut bad: BTreeMap<usize, String> = BTreeMap::new();
                let mut whole = Vec::new();
                for err in &v.errors {
                    match err.row {
                        Some(r) => {
                            let entry = bad.entry(r).or_default();
                            if !entry.is_empty() {
                                entry.push_str("; ");
                            }
                            entry.push_str(&format!("field `{}`: {}", err.field, err.problem));
                        }
                        None => whole.push(err.to_string()),
                    }
                }
                if !whole.is_empty() || bad.is_empty() {
                    // A problem with no row (a column missing from every record) concerns all.
                    let reason = if whole.is_empty() {
                        v.to_string()
                    } else {
                        whole.join("; ")
                    };
                    (0..values.len()).map(|r| (r, reason.clone())).collect()
                } else {
                    bad
                }
            }
            Err(CoreError::RaggedRow {
                row, expected, found, ..
            }) => BTreeMap::from([(
                row,
                format!("CSV line has {found} fields but the header has {expected}"),
            )]),
            Err(other) => (0..values.len()).map(|r| (r, other.to_string())).collect(),
        };
        let mut index = 0;
        events.retain(|e| {
            let keep = !bad.contains_key(&index);
            if let Some(reason) = bad.get(&index) {
                dead_letters.push(dead(e, reason.clone(), now_ms));
            }
            index += 1;
            keep
        });
        let mut index = 0;
        values.retain(|_| {
            let keep = !bad.contains_key(&index);
            index += 1;
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ml_core::{DataType, Field};

    fn schema() -> Arc<Schema> {
        Arc::new(
            Schema::new(vec![
                Field::new("x", DataType::Float),
                Field::new("c", DataType::categorical(["a", "b"]).unwrap()),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn bad_events_become_dead_letters_and_the_rest_decode() {
        let events: Vec<Event> = [
            r#"{"x": 1.5, "c": "a"}"#,
            r#"{"x": "oops", "c": "a"}"#,
            "not json",
            r#"[2.5, "b"]"#,
            r#"{"x": 3, "c": "z"}"#,
            r#"[1]"#,
            "42",
        ]
        .iter()
        .enumerate()
        .map(|(i, p)| Event::new(p.as_bytes().to_vec(), 0, i as u64 * 10))
        .collect();
        let out = decode(&events, &schema(), 0);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(d.frame.as_ref().unwrap().n_rows(), 2);
        let kept: Vec<u64> = d.rows.iter().map(|(p, _)| p.offset).collect();
        assert_eq!(kept, [0, 30]);
        let reasons: Vec<(u64, &str)> = d
            .dead
            .iter()
            .map(|l| (l.position.offset, l.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 5);
        assert!(
            reasons[0].1.contains("field `x`: expected a float value"),
            "{reasons:?}"
        );
        assert!(reasons[1].1.starts_with("not valid JSON"), "{reasons:?}");
        assert!(reasons[2].1.contains("category \"z\""), "{reasons:?}");
        assert!(reasons[3].1.contains("expected 2 values"), "{reasons:?}");
        assert!(reasons[4].1.contains("expected a JSON object"), "{reasons:?}");
        assert_eq!(d.dead[1].payload, "not json");
    }

    #[test]
    fn the_fast_scan_agrees_with_serde_json() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Float),
            Field::new("b", DataType::String),
            Field::new("c", DataType::Int),
        ])
        .unwrap();
        let payloads: &[&str] = &[
            r#"{"a": 1.5, "b": "x", "c": 3}"#,
            "\t{ \"c\" :3 ,\"a\":-2 , \"b\":\"\" }\r\n",
            r#"{}"#,
            r#"{"a": 1e3, "c": -9223372036854775808}"#,
            r#"{"a": -999999999999999999, "c": 999999999999999999}"#,
            r#"{"a": 1000000000000000000, "c": -1000000000000000000}"#,
            "{\"a\": 1,\n \"c\": 2}",
            r#"{"a": 1E+2, "c": 9223372036854775807}"#,
            r#"{"a": -1.25E-2, "c": 9223372036854775808}"#,
            r#"{"a": 123456789012345678901234567890}"#,
            r#"{"a": 0.1, "c": -0}"#,
            r#"{"a": -0.0, "c": 0}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": 1e}"#,
            r#"{"a": 1e400}"#,
            r#"{"a": -}"#,
            r#"{"b": "a\nb"}"#,
            r#"{"b": "é ✓"}"#,
            "{\"b\": \"raw\u{1}control\"}",
            r#"{"b": [1, 2]}"#,
            r#"{"zz": {"x": 1}, "a": 2}"#,
            r#"{"zz": 5, "a": 2, "yy": "s", "q": true, "r": null}"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1}{"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"b": true, "c": false, "a": null}"#,
            r#"{"b": nul}"#,
            r#"{"\u0061": 1}"#,
            r#"{"a": 1"#,
            r#"[1, "x", 2]"#,
            "42",
            "",
        ];
        let n = schema.len();
        let plain = plain_names(&schema);
        let mut fast_taken = 0;
        for p in payloads {
            let bytes = p.as_bytes();
            let mut fast = vec![Cell::Missing; n];
            let scanned = scan_flat_object(bytes, &mut Keys::new(&schema, &plain), &mut fast);
            let mut slow = vec![Slot::Missing; n];
            let mut owned = Vec::new();
            let parsed = parse_serde(bytes, &schema, &mut slow, &mut owned);
            if let Some(line_break) = scanned {
                let has = bytes.iter().any(|&b| b == b'\n' || b == b'\r');
                assert_eq!(line_break, has, "{p:?}: line break");
                fast_taken += 1;
                assert!(matches!(parsed, Ok(Shape::Object)), "{p}: serde_json refuses it");
                let slow: Vec<Cell<'_>> = slow.iter().map(|s| s.scanned_cell()).collect();
                assert_eq!(fast, slow, "{p}");
            }
        }
        // The plain cases take the fast path; the rest fall back.
        assert_eq!(fast_taken, 13, "the fast path was taken {fast_taken} times");
    }

    /// The frame and dead letters of `decode` for `payloads`, and the frame that
    /// [`FrameBuilder::push_row`] builds from the same cells, row by row.
    fn decoded_and_built(schema: &Arc<Schema>, payloads: &[&str]) -> (Decoded, Option<Frame>) {
        let events: Vec<Event> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Event::new(p.as_bytes().to_vec(), 0, i as u64))
            .collect();
        let mut out = decode(&events, schema, 0);
        assert_eq!(out.len(), 1);
        let mut b = FrameBuilder::new(schema.clone(), 1);
        for p in payloads {
            let mut slots = vec![Slot::Missing; schema.len()];
            let mut owned = Vec::new();
            if parse_serde(p.as_bytes(), schema, &mut slots, &mut owned).is_ok() {
                let cells: Vec<Cell<'_>> = slots
                    .iter()
                    .map(|s| match *s {
                        Slot::Owned(i) => Cell::Str(&owned[i]),
                        other => other.scanned_cell(),
                    })
                    .collect();
                let _ = b.push_row(&cells);
            }
        }
        let built = (b.n_rows() > 0).then(|| b.finish());
        (out.remove(0), built)
    }

    #[test]
    fn numeric_columns_give_the_frame_the_builder_gives() {
        let schema = Arc::new(
            Schema::new(vec![
                Field::new("x", DataType::Float),
                Field::new("n", DataType::Int),
                Field::new("y", DataType::Float).nullable(),
            ])
            .unwrap(),
        );
        let plain = [
            r#"{"x": 1.5, "n": 2, "y": 3}"#,
            r#"{"y": -0.25, "n": -7, "x": 4}"#,
        ];
        let batches: Vec<Vec<&str>> = vec![
            // Numbers of their fields' kinds only: numeric columns to the end.
            vec![plain[0], plain[1], plain[0]],
            // A missing nullable value after numeric rows: the builder takes over.
            vec![plain[0], plain[1], r#"{"x": 2.5, "n": 1}"#, plain[1]],
            // A refused row (a float for the integer, a string) in the middle.
            vec![
                plain[0],
                r#"{"x": 1, "n": 2.5, "y": 1}"#,
                r#"{"x": "a", "n": 1, "y": 1}"#,
                plain[1],
            ],
            // The first row already refused; a row serde_json reads (an array).
            vec![r#"{"x": 1}"#, "[1.5, 3, null]", plain[0]],
            // Nothing valid.
            vec![r#"{"x": true}"#, "nope"],
        ];
        for payloads in &batches {
            let (decoded, built) = decoded_and_built(&schema, payloads);
            // Compared as text: a missing float is NaN, which equals nothing.
            assert_eq!(
                format!("{:?}", decoded.frame),
                format!("{built:?}"),
                "{payloads:?}"
            );
            let n_rows = built.as_ref().map_or(0, Frame::n_rows);
            assert_eq!(decoded.rows.len(), n_rows, "{payloads:?}");
            assert_eq!(decoded.input_ends.len(), n_rows, "{payloads:?}");
            assert_eq!(decoded.dead.len(), payloads.len() - n_rows, "{payloads:?}");
        }
    }

    #[test]
    fn eight_digits_at_once() {
        assert_eq!(eight_digits(b"12345678", 0), Some(12_345_678));
        assert_eq!(eight_digits(b"x00000009", 1), Some(9));
        assert_eq!(eight_digits(b"99999999", 0), Some(99_999_999));
        assert_eq!(eight_digits(b"1234567", 0), None);
        for bad in [
            b"1234567/",
            b"1234567:",
            b"123 5678",
            b"12345e78",
            b"\x00345678\xb9",
        ] {
            assert_eq!(eight_digits(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn the_integer_path_reads_what_the_full_number_scan_reads() {
        let mut texts = Vec::new();
        let mut v: u64 = 1;
        for _ in 0..20 {
            for tail in ["", ",", "}", " ", ".5", "e3", "E-2", "x", ".", "e"] {
                texts.push(format!("{v}{tail}"));
                texts.push(format!("{}{tail}", v.saturating_mul(7).saturating_add(3)));
            }
            v = v.saturating_mul(10);
        }
        texts.extend(
            [
                "9223372036854775807",
                "9223372036854775808",
                "99999999999999999999",
            ]
            .map(String::from),
        );
        for t in &texts {
            assert_eq!(scan_value(t.as_bytes(), 0), scan_number(t.as_bytes(), 0), "{t}");
        }
    }

    #[test]
    fn floats_are_the_doubles_a_full_parse_gives() {
        // Shortest round-trip texts, texts cut to fewer digits, exponents: the fast path
        // (significand below 2^53, power of ten within ±22) and the fallback must both give
        // the correctly rounded double, as `str::parse` does.
        let mut state = 1u64;
        let mut texts = vec![
            "0.1".to_string(),
            "-0.0".into(),
            "9007199254740993.0".into(),
            "9007199254740992.5".into(),
            "0.000000000000000000001".into(),
            "1e22".into(),
            "1e23".into(),
            "1.5e-22".into(),
            "4.9e-324".into(),
            "1.7976931348623157e308".into(),
        ];
        for _ in 0..20_000 {
            state = ml_core::rng::splitmix64(state);
            let x = f64::from_bits(state >> 2) * if state & 1 == 0 { 1.0 } else { -1.0 };
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let small = f64::from(unit as f32);
            for t in [
                format!("{x:?}"),
                format!("{small:?}"),
                format!("{unit:?}"),
                format!("{:.6}", unit * 1000.0),
                format!("{small:e}"),
                format!("{:.3e}", unit * 1e-5),
            ] {
                texts.push(t);
            }
        }
        for t in &texts {
            let want: f64 = t.parse().unwrap();
            match scan_number(t.as_bytes(), 0) {
                Some((Slot::Float(x), end)) => {
                    assert_eq!(end, t.len(), "{t}");
                    assert_eq!(x.to_bits(), want.to_bits(), "{t}: {x} vs {want}");
                }
                Some((Slot::Int(i), _)) => assert_eq!(i as f64, want, "{t}"),
                other => assert!(!want.is_finite() || t.starts_with("-0"), "{t}: {other:?}"),
            }
        }
    }

    #[test]
    fn long_significands_round_as_a_full_parse_does() {
        // 15 to 20 significant digits with the decimal point anywhere and exponents around the
        // fast range: texts that are not shortest round-trip forms, many of them close to a
        // midpoint between two doubles (a 19-digit significand pins a value to 1e-19 relative,
        // finer than a double's spacing), which the 128-bit check must settle as the full parse.
        let mut state = 7u64;
        for _ in 0..300_000 {
            state = ml_core::rng::splitmix64(state);
            let digits = 15 + (state % 6) as usize;
            let mut text = String::new();
            let mut r = state;
            for i in 0..digits {
                r = ml_core::rng::splitmix64(r);
                let d = (r % 10) as u8;
                text.push(char::from(b'0' + if i == 0 { 1 + d % 9 } else { d }));
            }
            r = ml_core::rng::splitmix64(r);
            let point = (r % (digits as u64 + 1)) as usize;
            if point < digits {
                text.insert(point.max(1), '.');
            }
            r = ml_core::rng::splitmix64(r);
            let exp = (r % 61) as i64 - 30;
            if r & (1 << 40) != 0 {
                text.push_str(&format!("e{exp}"));
            }
            if r & (1 << 41) != 0 {
                text.insert(0, '-');
            }
            let want: f64 = text.parse().unwrap();
            match scan_number(text.as_bytes(), 0) {
                Some((Slot::Float(x), end)) => {
                    assert_eq!(end, text.len(), "{text}");
                    assert_eq!(x.to_bits(), want.to_bits(), "{text}: {x} vs {want}");
                }
                Some((Slot::Int(i), end)) => {
                    assert_eq!(end, text.len(), "{text}");
                    assert_eq!(i as f64, want, "{text}");
                }
                // Integers beyond i64 are left to serde_json.
                None if !text.contains(['.', 'e']) => assert!(want.abs() >= 9.2e18, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn csv_lines_decode_with_their_header() {
        let mk = |line: &str, off| {
            let mut e = Event::new(line.as_bytes().to_vec(), 0, off);
            e.headers.push((CONTENT_TYPE.into(), b"text/csv".to_vec()));
            e.headers.push((CSV_HEADER.into(), b"c,x".to_vec()));
            e
        };
        let events = vec![mk("a,1", 4), mk("b,2,9", 8), mk("b,x", 14), mk("a,3", 20)];
        let out = decode(&events, &schema(), 0);
        let d = &out[0];
        assert_eq!(d.frame.as_ref().unwrap().n_rows(), 2);
        assert_eq!(d.dead.len(), 2);
        assert!(
            d.dead[0].reason.contains("3 fields but the header has 2"),
            "{:?}",
            d.dead
        );
        assert!(d.dead[1].reason.contains("field `x`"), "{:?}", d.dead);
    }
}
