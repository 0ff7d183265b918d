use super::*;
use crate::schema::{UnseenPolicy, Vocabulary};
use crate::validation::Problem;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("age", DataType::Int),
        Field::new("income", DataType::Float).nullable(),
        Field::new("sex", DataType::categorical(["1", "2"]).unwrap()),
        Field::new("member", DataType::Bool),
    ])
    .unwrap()
}

fn csv(text: &str) -> Result<Frame> {
    Frame::from_csv(text.as_bytes(), schema(), &ReadOptions::named("t.csv"))
}

fn validation(err: Error) -> Vec<ValidationError> {
    match err {
        Error::Validation(v) => v.errors,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn csv_builds_typed_columns_with_nulls() {
    let f = csv("age,income,sex,member\n31,1200.5,2,true\n40,,1,0\n").unwrap();
    assert_eq!(f.n_rows(), 2);
    assert_eq!(f.column("age"), Some(&Column::Int(ndarray::array![31, 40])));
    assert_eq!(f.column("sex"), Some(&Column::Categorical(ndarray::array![1, 0])));
    assert_eq!(
        f.column("member"),
        Some(&Column::Bool(ndarray::array![true, false]))
    );
    assert!(f.is_null(1, 1));
    assert!(!f.is_null(0, 1));
    assert_eq!(f.value(0, 1), Some(Value::Float(1200.5)));
    assert_eq!(f.value(0, 2), Some(Value::Str("2".into())));
}

#[test]
fn csv_wrong_type_names_field_row_and_line() {
    let errs = validation(csv("age,income,sex,member\n31,1,2,true\nold,2,1,false\n").unwrap_err());
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "age");
    assert_eq!(errs[0].row, Some(1));
    assert_eq!(errs[0].line, Some(3));
    assert_eq!(
        errs[0].problem,
        Problem::WrongType {
            expected: "int",
            found: "\"old\"".into()
        }
    );
    assert_eq!(
        errs[0].to_string(),
        "row 1 (line 3), field `age`: expected an int value, found \"old\""
    );
}

#[test]
fn csv_missing_column_is_reported_once() {
    let err = csv("age,sex,member\n31,2,true\n40,1,false\n").unwrap_err();
    let text = err.to_string();
    let errs = validation(err);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, "income");
    assert_eq!(errs[0].row, None);
    assert_eq!(errs[0].problem, Problem::MissingColumn);
    assert!(text.contains("field `income`: column is missing"), "{text}");
}

#[test]
fn nan_and_infinity_are_refused_where_not_allowed() {
    // income is nullable: NaN means missing; inf is never allowed.
    let f = csv("age,income,sex,member\n31,NaN,2,true\n").unwrap();
    assert!(f.is_null(0, 1));
    let errs = validation(csv("age,income,sex,member\n31,inf,2,true\n").unwrap_err());
    assert!(matches!(errs[0].problem, Problem::NotFinite { .. }), "{errs:?}");
    // A non-nullable float refuses NaN.
    let s = Schema::new(vec![Field::new("x", DataType::Float)]).unwrap();
    let err = Frame::from_csv("x\n1\nnan\n".as_bytes(), s.clone(), &ReadOptions::default()).unwrap_err();
    let errs = validation(err);
    assert_eq!(errs[0].row, Some(1));
    assert!(matches!(errs[0].problem, Problem::NotFinite { .. }));
    // The same through JSON arrays and Rust values.
    let err = Frame::from_rows(s, &[vec![Value::Float(f64::INFINITY)]]).unwrap_err();
    assert!(matches!(validation(err)[0].problem, Problem::NotFinite { .. }));
}

#[test]
fn missing_value_in_non_nullable_field() {
    let errs = validation(csv("age,income,sex,member\n,1,2,true\n").unwrap_err());
    assert_eq!(errs[0].field, "age");
    assert_eq!(errs[0].problem, Problem::MissingValue);
}

#[test]
fn unseen_category_follows_the_field_policy() {
    let err = csv("age,income,sex,member\n31,1,3,true\n").unwrap_err();
    let text = err.to_string();
    let errs = validation(err);
    assert!(
        matches!(&errs[0].problem, Problem::UnseenCategory { found, n_known: 2, .. } if found == "3"),
        "{errs:?}"
    );
    assert!(text.contains("map_to_unknown"), "{text}");

    let with_policy = |unseen| {
        Schema::new(vec![Field::new(
            "c",
            DataType::Categorical {
                vocabulary: Vocabulary::new(["a", "b"]).unwrap(),
                unseen,
            },
        )])
        .unwrap()
    };
    let f = Frame::from_csv(
        "c\nb\nz\n".as_bytes(),
        with_policy(UnseenPolicy::MapToUnknown),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(f.column("c"), Some(&Column::Categorical(ndarray::array![1, 2])));
    assert_eq!(f.value(1, 0), Some(Value::Str(UNKNOWN_CATEGORY.into())));
    let f = Frame::from_csv(
        "c\nb\nz\n".as_bytes(),
        with_policy(UnseenPolicy::Ignore),
        &ReadOptions::default(),
    )
    .unwrap();
    assert!(f.is_null(1, 0));
    assert!(!f.is_null(0, 0));
}

#[test]
fn numbers_match_categories_by_canonical_form() {
    let f = csv("age,income,sex,member\n31,1,2.0,true\n").unwrap();
    assert_eq!(f.column("sex"), Some(&Column::Categorical(ndarray::array![1])));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(r#"[{"age": 31, "sex": 2, "member": true}]"#).unwrap();
    let f = Frame::from_json_records(&rows, schema(), &ReadOptions::default()).unwrap();
    assert_eq!(f.column("sex"), Some(&Column::Categorical(ndarray::array![1])));
}

#[test]
fn empty_inputs_are_specific_errors() {
    for text in ["", "age,income,sex,member\n"] {
        let err = csv(text).unwrap_err();
        assert!(matches!(err, Error::EmptyInput { .. }), "{text:?}: {err:?}");
        assert!(err.to_string().starts_with("t.csv is empty"), "{err}");
    }
    let err = Frame::from_json_str("[]", schema(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyInput { .. }));
}

#[test]
fn ragged_rows_name_row_and_counts() {
    let err = csv("age,income,sex,member\n31,1,2,true\n40,2,1\n").unwrap_err();
    match &err {
        Error::RaggedRow {
            row, expected, found, ..
        } => assert_eq!((*row, *expected, *found), (1, 4, 3)),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("row 1 has 3 fields but the header has 4"),
        "{err}"
    );
}

#[test]
fn malformed_csv_and_duplicate_headers() {
    let err = csv("age,age,sex,member\n1,2,1,true\n").unwrap_err();
    assert!(err.to_string().contains("`age` appears twice"), "{err}");
    let err = Frame::from_json_str("{not json", schema(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
}

#[test]
fn extra_columns_are_ignored_once_or_refused() {
    let f = csv("id,age,income,sex,member,label\na,31,1,2,true,0\nb,32,1,2,true,1\n").unwrap();
    assert_eq!(f.ignored_columns(), ["id", "label"]);
    let opts = ReadOptions {
        extra_columns: ExtraColumns::Error,
        ..Default::default()
    };
    let err = Frame::from_csv(
        "id,age,income,sex,member\na,31,1,2,true\n".as_bytes(),
        schema(),
        &opts,
    )
    .unwrap_err();
    let errs = validation(err);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].field.as_str(), &errs[0].problem),
        ("id", &Problem::ExtraColumn)
    );
}

#[test]
fn json_records_report_absent_keys_and_types() {
    let rows: Vec<serde_json::Value> = serde_json::from_str(
        r#"[{"age": 31, "sex": "2", "member": true},
            {"age": 31.5, "sex": "1", "member": false, "income": "lots"},
            {"sex": "1", "member": false}]"#,
    )
    .unwrap();
    let errs = validation(Frame::from_json_records(&rows, schema(), &ReadOptions::default()).unwrap_err());
    let summary: Vec<(Option<usize>, &str)> = errs.iter().map(|e| (e.row, e.field.as_str())).collect();
    assert_eq!(summary, [(Some(1), "age"), (Some(1), "income"), (Some(2), "age")]);
    assert_eq!(errs[2].problem, Problem::MissingValue);
    assert!(
        errs[1].to_string().contains("found the string \"lots\""),
        "{}",
        errs[1]
    );

    // A field absent from every record is one missing-column error.
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(r#"[{"sex": "1", "member": false}, {"sex": "2", "member": true}]"#).unwrap();
    let errs = validation(Frame::from_json_records(&rows, schema(), &ReadOptions::default()).unwrap_err());
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].field.as_str(), errs[0].row), ("age", None));
}

#[test]
fn json_arrays_follow_schema_order() {
    let f = Frame::from_json_str(
        r#"[[31, 10.5, "2", true], [40, null, 1, false]]"#,
        schema(),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(f.n_rows(), 2);
    assert!(f.is_null(1, 1));
    let err = Frame::from_json_str(r#"[[31, 10.5, "2"]]"#, schema(), &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("expected 4 values"), "{err}");
    // Nested values are a type error, not a panic.
    let err =
        Frame::from_json_str(r#"[[[1], 1.0, "2", true]]"#, schema(), &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("found an array"), "{err}");
}

#[test]
fn rust_values_and_ready_columns() {
    let f = Frame::from_rows(
        schema(),
        &[vec![
            Value::from(31),
            Value::from(2.5),
            Value::from("1"),
            Value::from(false),
        ]],
    )
    .unwrap();
    assert_eq!(f.column("income"), Some(&Column::Float(ndarray::array![2.5])));
    let cols = vec![
        Column::Int(ndarray::array![1, 2]),
        Column::Float(ndarray::array![1.0, f64::NAN]),
        Column::Categorical(ndarray::array![0, 1]),
        Column::Bool(ndarray::array![true, false]),
    ];
    let f = Frame::from_columns(schema(), cols.clone(), None).unwrap();
    assert!(f.is_null(1, 1), "NaN in a nullable float column is missing");
    let mut bad = cols;
    bad[2] = Column::Categorical(ndarray::array![0, 7]);
    let errs = validation(Frame::from_columns(schema(), bad, None).unwrap_err());
    assert_eq!((errs[0].field.as_str(), errs[0].row), ("sex", Some(1)));
}

#[test]
fn inference_types_nullability_and_overrides() {
    let t = CsvTable::read(
        "a,b,c,d,e,f\n1,1.5,x,true,,7\n2,2,y,false,,-2\n3,,x,true,,1\n".as_bytes(),
        "t.csv",
    )
    .unwrap();
    let s = t.infer_schema(&InferOptions::default()).unwrap();
    let types: Vec<&str> = s.fields().iter().map(|f| f.dtype.name()).collect();
    assert_eq!(types, ["int", "float", "categorical", "bool", "string", "int"]);
    assert!(s.field("b").unwrap().nullable);
    assert!(!s.field("a").unwrap().nullable);
    assert_eq!(s.field("c").unwrap().vocabulary().unwrap().values(), ["x", "y"]);

    let s = t
        .infer_schema(&InferOptions::default().with_override("f", TypeHint::Categorical))
        .unwrap();
    // Numeric codes sort as numbers.
    assert_eq!(
        s.field("f").unwrap().vocabulary().unwrap().values(),
        ["-2", "1", "7"]
    );
    let err = t
        .infer_schema(&InferOptions::default().with_override("nope", TypeHint::Int))
        .unwrap_err();
    assert!(
        err.to_string().contains("column `nope` is not in the data"),
        "{err}"
    );
    // Too many distinct texts → string.
    let opts = InferOptions {
        max_categories: 1,
        ..Default::default()
    };
    assert_eq!(
        t.infer_schema(&opts).unwrap().field("c").unwrap().dtype,
        DataType::String
    );
}

#[test]
fn select_rows_and_split_off() {
    let f = csv("age,income,sex,member\n31,1,2,true\n40,,1,false\n50,3,1,true\n").unwrap();
    let g = f.select_rows(&[2, 1]).unwrap();
    assert_eq!(g.column("age"), Some(&Column::Int(ndarray::array![50, 40])));
    assert!(g.is_null(1, 1));
    assert!(f.select_rows(&[3]).is_err());
    let (features, field, col, _) = f.split_off("member").unwrap();
    assert_eq!(features.schema().len(), 3);
    assert_eq!(field.name, "member");
    assert_eq!(col.len(), 3);
    assert!(
        f.split_off("nope")
            .unwrap_err()
            .to_string()
            .contains("no column `nope`")
    );
}

#[test]
fn small_frames_reusing_storage_read_like_fresh_ones() {
    // Small frames take the storage of small frames dropped before them on the same thread
    // (and larger ones, or wider batches, do not): the values, masks and shapes never leak.
    let floats = Arc::new(
        Schema::new(
            (0..30)
                .map(|i| {
                    let f = Field::new(format!("f{i}"), DataType::Float);
                    if i % 3 == 0 { f.nullable() } else { f }
                })
                .collect(),
        )
        .unwrap(),
    );
    let mut kept = Vec::new();
    for round in 0..40_usize {
        let n_rows = 1 + round % 12;
        let rows: Vec<Vec<Value>> = (0..n_rows)
            .map(|r| {
                (0..30)
                    .map(|i| {
                        if i % 3 == 0 && (r + i + round) % 4 == 0 {
                            Value::Null
                        } else {
                            Value::Float((round * 1000 + r * 30 + i) as f64 + 0.5)
                        }
                    })
                    .collect()
            })
            .collect();
        let frame = Frame::from_rows(floats.clone(), &rows).unwrap();
        let mut builder = FrameBuilder::new(floats.clone(), 1);
        for row in &rows {
            let cells: Vec<Cell<'_>> = row
                .iter()
                .map(|v| match v {
                    Value::Float(x) => Cell::Float(*x),
                    _ => Cell::Missing,
                })
                .collect();
            builder.push_row(&cells).unwrap();
        }
        let built = builder.finish();
        assert_eq!(built.n_rows(), frame.n_rows());
        for i in 0..30 {
            // (Frames compare NaN placeholders unequal: compare the values and masks.)
            assert_eq!(built.null_mask(i), frame.null_mask(i));
            for r in 0..n_rows {
                assert_eq!(built.value(r, i), frame.value(r, i));
            }
        }
        assert_eq!(frame.n_rows(), n_rows);
        for (r, row) in rows.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                assert_eq!(
                    frame.value(r, i).as_ref(),
                    Some(v),
                    "round {round} row {r} field {i}"
                );
                assert_eq!(frame.is_null(r, i), *v == Value::Null);
            }
        }
        for i in 0..30 {
            assert_eq!(frame.columns()[i].len(), n_rows);
            if frame.null_mask(i).is_some() {
                assert_eq!(frame.null_mask(i).unwrap().len(), n_rows);
            }
        }
        // Some frames outlive the next ones, some are dropped at once, one is cloned.
        if round % 5 == 0 {
            kept.push(frame.clone());
        }
        if round % 2 == 0 {
            kept.push(frame);
        }
    }
    for f in &kept {
        assert_eq!(f.schema().len(), 30);
    }
}
