//! Decoding events into frames against a schema. A payload that cannot be decoded, or a row
//! that fails validation, becomes a dead letter with the reason; the other rows go on.

use std::collections::BTreeMap;
use std::sync::Arc;

use ml_core::{CsvTable, Error as CoreError, Frame, ReadOptions, Schema};
use serde_json::Value as Json;

use crate::source::{CONTENT_TYPE, CSV_HEADER};
use crate::traits::{DeadLetter, Event, SourcePosition};

/// The rows of one decoded group of events.
#[derive(Debug)]
pub struct Decoded {
    /// The valid rows, or `None` when every event of the group was set aside.
    pub frame: Option<Frame>,
    /// Per frame row: where it came from and the event's timestamp.
    pub rows: Vec<(SourcePosition, Option<i64>)>,
    /// Per frame row, the record as received (JSON events), to log as the model input without
    /// rebuilding it; `None` for CSV events (their inputs are rebuilt from the frame).
    pub inputs: Option<Vec<serde_json::Map<String, Json>>>,
    /// The events set aside.
    pub dead: Vec<DeadLetter>,
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
        let group: Vec<&Event> = events[start..start + len].iter().collect();
        out.push(if csv {
            decode_csv(&group, schema, now_ms)
        } else {
            decode_json(&group, schema, now_ms)
        });
        start += len;
    }
    out
}

fn decode_json(group: &[&Event], schema: &Arc<Schema>, now_ms: i64) -> Decoded {
    let mut rows: Vec<(Json, &Event)> = Vec::with_capacity(group.len());
    let mut dead_letters = Vec::new();
    for &e in group {
        match serde_json::from_slice::<Json>(&e.payload) {
            Ok(Json::Object(m)) => rows.push((Json::Object(m), e)),
            Ok(Json::Array(values)) if values.len() == schema.len() => {
                let map = schema.names().map(str::to_string).zip(values).collect();
                rows.push((Json::Object(map), e));
            }
            Ok(Json::Array(values)) => dead_letters.push(dead(
                e,
                format!(
                    "expected {} values (one per field, in schema order), found {}",
                    schema.len(),
                    values.len()
                ),
                now_ms,
            )),
            Ok(_) => dead_letters.push(dead(
                e,
                "expected a JSON object (one record) or a JSON array of field values".into(),
                now_ms,
            )),
            Err(err) => dead_letters.push(dead(e, format!("not valid JSON: {err}"), now_ms)),
        }
    }
    let built = build(rows, dead_letters, now_ms, |values: &[Json]| {
        Frame::from_json_records(values, schema.clone(), &ReadOptions::default())
    });
    let mut decoded = built.decoded;
    decoded.inputs = built.values.map(|values| {
        values
            .into_iter()
            .map(|v| match v {
                Json::Object(m) => m,
                _ => serde_json::Map::new(),
            })
            .collect()
    });
    decoded
}

fn decode_csv(group: &[&Event], schema: &Arc<Schema>, now_ms: i64) -> Decoded {
    let header = group
        .first()
        .and_then(|e| e.header(CSV_HEADER))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let rows: Vec<(Vec<u8>, &Event)> = group.iter().map(|&e| (e.payload.clone(), e)).collect();
    build(rows, Vec::new(), now_ms, |lines: &[Vec<u8>]| {
        let mut text = header.clone();
        for l in lines {
            text.push(b'\n');
            text.extend_from_slice(l);
        }
        text.push(b'\n');
        CsvTable::read(text.as_slice(), "event")?.to_frame(schema.clone(), &ReadOptions::default())
    })
    .decoded
}

/// What [`build`] returns: the decoded rows and the payload values that made the frame.
struct Built<T> {
    decoded: Decoded,
    values: Option<Vec<T>>,
}

/// Builds a frame from `rows`, moving each row that fails to the dead letters (with every
/// problem found in it) and trying again with the rest.
fn build<T>(
    rows: Vec<(T, &Event)>,
    mut dead_letters: Vec<DeadLetter>,
    now_ms: i64,
    make: impl Fn(&[T]) -> ml_core::Result<Frame>,
) -> Built<T> {
    let (mut values, mut events): (Vec<T>, Vec<&Event>) = rows.into_iter().unzip();
    loop {
        if values.is_empty() {
            dead_letters.sort_by_key(|d| (d.position.partition, d.position.offset));
            return Built {
                decoded: Decoded {
                    frame: None,
                    rows: Vec::new(),
                    inputs: None,
                    dead: dead_letters,
                },
                values: None,
            };
        }
        let bad: BTreeMap<usize, String> = match make(&values) {
            Ok(frame) => {
                let meta = events.iter().map(|e| (position(e), e.timestamp_ms)).collect();
                dead_letters.sort_by_key(|d| (d.position.partition, d.position.offset));
                return Built {
                    decoded: Decoded {
                        frame: Some(frame),
                        rows: meta,
                        inputs: None,
                        dead: dead_letters,
                    },
                    values: Some(values),
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
