//! The Parquet sink and reader (feature `parquet`): what the pipeline writes reads back exactly.
#![cfg(feature = "parquet")]

use crate::common;

use std::sync::Arc;

use common::Affine;
use ml_core::{Column, DataType, Field, Schema};
use ml_stream::parquet::{ParquetSink, ParquetSinkOptions, parquet_files, read_frame};
use ml_stream::source::channel;
use ml_stream::{Pipeline, PipelineConfig};

#[test]
fn parquet_part_files_hold_every_record_and_read_back_as_a_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("export");
    let n = 5_000u64;
    let schema = Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Int),
            Field::new("x", DataType::Float).nullable(),
            Field::new("c", DataType::categorical(["a", "b"]).unwrap()),
        ])
        .unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let sink = ParquetSink::new(ParquetSinkOptions::new(&dir)).unwrap();
        let config = PipelineConfig {
            batch_size: 300,
            commit_every: Some(1_000),
            ..Default::default()
        };
        let pipeline = Pipeline::new(config, schema.clone(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let (tx, source) = channel(64);
        let producer = tokio::spawn(async move {
            for i in 0..n {
                // Every 7th x is null: a nullable column with missing values.
                let x = if i % 7 == 0 {
                    "null".to_string()
                } else {
                    format!("{}", i as f64 * 0.25)
                };
                let c = if i % 3 == 0 { "b" } else { "a" };
                tx.send(format!(r#"{{"id": {i}, "x": {x}, "c": "{c}"}}"#))
                    .await
                    .unwrap();
            }
        });
        let report = pipeline.run(Box::new(source)).await.unwrap();
        producer.await.unwrap();
        report
    });
    assert_eq!(report.records_out, n);
    // A part file per commit (at least one per 1,000 events), none left in progress.
    let files = parquet_files(&dir).unwrap();
    assert!(files.len() >= 5, "{files:?}");
    let hidden = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(hidden, 0);

    // Read back the inputs, the prediction and the position columns by name.
    let read_schema = Arc::new(
        Schema::new(vec![
            Field::new("_offset", DataType::Int),
            Field::new("id", DataType::Int),
            Field::new("x", DataType::Float).nullable(),
            Field::new("c", DataType::String),
            Field::new("prediction", DataType::Float).nullable(),
        ])
        .unwrap(),
    );
    let frame = read_frame(&dir, read_schema).unwrap();
    assert_eq!(frame.n_rows() as u64, n);
    let (Some(Column::Int(offset)), Some(Column::Int(id)), Some(Column::Float(x))) =
        (frame.column("_offset"), frame.column("id"), frame.column("x"))
    else {
        panic!("column kinds");
    };
    let Some(Column::String(c)) = frame.column("c") else {
        panic!("c")
    };
    let Some(Column::Float(pred)) = frame.column("prediction") else {
        panic!("prediction")
    };
    let mut seen = vec![false; n as usize];
    for r in 0..frame.n_rows() {
        let i = id[r];
        assert_eq!(offset[r], i, "the channel numbers events from 0");
        assert!(!std::mem::replace(&mut seen[i as usize], true), "row {i} twice");
        assert_eq!(c[r], if i % 3 == 0 { "b" } else { "a" });
        if i % 7 == 0 {
            assert!(
                frame.is_null(r, 2) && frame.is_null(r, 4),
                "row {i}: null x, null prediction"
            );
        } else {
            assert_eq!(x[r], i as f64 * 0.25);
            assert_eq!(pred[r], 2.0 * x[r] + 1.0);
        }
    }
    assert!(seen.iter().all(|s| *s));

    // A field the files do not have is an error unless nullable; a wrong type names row and field.
    let missing = Arc::new(Schema::new(vec![Field::new("nope", DataType::Float)]).unwrap());
    let err = read_frame(&dir, missing).unwrap_err().to_string();
    assert!(err.contains("field `nope`") && err.contains("missing"), "{err}");
    let wrong = Arc::new(Schema::new(vec![Field::new("c", DataType::Float)]).unwrap());
    let err = read_frame(&files[0], wrong).unwrap_err().to_string();
    assert!(err.contains("row 0: field `c`: expected a float"), "{err}");
}
