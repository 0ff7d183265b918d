//! The Blob inference-log sink and source against Azurite: the data-collection layout and line
//! format, replay of exactly what was written, an outage (Azurite stopped for 10 s and
//! restarted on the same port and storage) with no loss and no duplicate, and failures that
//! surface without a secret in them.

#![cfg(feature = "azure")]

#[path = "../../../test-support/azurite.rs"]
mod azurite;

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use azurite::Azurite;
use common::{Affine, schema};
use ml_stream::azure_blob::{BlobSink, BlobSinkOptions, BlobSource, BlobSourceOptions, BlobStore};
use ml_stream::datacollection::{MODEL_INPUTS, MODEL_OUTPUTS};
use ml_stream::source::channel;
use ml_stream::{
    Checkpoint, InferenceRecord, InferenceSink, Pipeline, PipelineConfig, RetryPolicy, SourcePosition,
    StreamSource,
};

fn account_url(azurite: &Azurite) -> String {
    ml_registry::azure::sas_account_url(&azurite.connection_string()).unwrap()
}

async fn store(azurite: &Azurite, container: &str, prefix: &str) -> BlobStore {
    let store = BlobStore::new(&account_url(azurite), container, prefix).unwrap();
    store.create_container_if_missing().await.unwrap();
    store
}

/// A record of row `i` scored at `time_ms`, as a pipeline makes them.
fn record(i: u64, time_ms: i64) -> InferenceRecord {
    let inputs = serde_json::json!({"id": i, "x": i as f64 * 0.5});
    let outputs = serde_json::json!({"prediction": i as f64 + 1.0});
    InferenceRecord {
        correlation_id: format!("batch-{}", i / 10),
        request_id: format!("batch-{}", i / 10),
        timestamp_ms: time_ms,
        event_timestamp_ms: None,
        model_name: "affine".into(),
        model_version: "1".into(),
        position: SourcePosition {
            partition: 0,
            offset: i,
        },
        inputs: inputs.as_object().unwrap().clone(),
        outputs: outputs.as_object().unwrap().clone(),
        latency_ms: 0.1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_writes_the_data_collection_layout_and_the_source_replays_exactly_that() {
    let azurite = Azurite::start();
    let store = store(&azurite, "logs", "").await;
    let n = 300u64;

    // A pipeline writes through the Blob sink, in small blocks and several commits.
    let options = BlobSinkOptions {
        endpoint: "credit".into(),
        deployment: "blue".into(),
        instance: "writer1".into(),
        block_bytes: 512,
        ..BlobSinkOptions::default()
    };
    let sink = BlobSink::new(
        BlobStore::new(&account_url(&azurite), "logs", "").unwrap(),
        options,
    );
    let config = PipelineConfig {
        batch_size: 25,
        commit_every: Some(100),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
    let (tx, source) = channel(64);
    let sender = tokio::spawn(async move {
        for i in 0..n {
            tx.send(format!(r#"{{"id": {i}, "x": {}}}"#, i as f64 * 0.5))
                .await
                .unwrap();
        }
    });
    let report = pipeline.run(Box::new(source)).await.unwrap();
    sender.await.unwrap();
    assert_eq!(report.records_out, n);

    // The layout: modelDataCollector/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/{instance}-{seq}.jsonl
    let blobs = store.list("").await.unwrap();
    assert!(blobs.len() >= 2, "{blobs:?}");
    for (rel, _) in &blobs {
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 8, "{rel}");
        assert_eq!(&parts[..2], ["credit", "blue"], "{rel}");
        assert!([MODEL_INPUTS, MODEL_OUTPUTS].contains(&parts[2]), "{rel}");
        assert!(parts[3].len() == 4 && parts[4].len() == 2 && parts[5].len() == 2 && parts[6].len() == 2);
        assert!(
            parts[7].starts_with("writer1-") && parts[7].ends_with(".jsonl"),
            "{rel}"
        );
    }
    assert_eq!(store.location(), "blob://logs/modelDataCollector");

    // The line format, and inputs joined to outputs by correlationid.
    let inputs = store.read_lines(MODEL_INPUTS, None, None).await.unwrap();
    let outputs = store.read_lines(MODEL_OUTPUTS, None, None).await.unwrap();
    assert_eq!(inputs.len(), outputs.len());
    let mut ids = Vec::new();
    for ((_, i), (_, o)) in inputs.iter().zip(&outputs) {
        assert_eq!(i.specversion, "1.0");
        assert_eq!(i.ty, "azureml.inference.model_inputs");
        assert_eq!(o.ty, "azureml.inference.model_outputs");
        assert_eq!(i.datacontenttype, "application/json");
        assert!(i.time.ends_with('Z') && i.time.contains('T'), "{}", i.time);
        assert_eq!(i.correlationid, o.correlationid);
        assert_eq!(i.source, "streamscore/credit/blue");
        assert_eq!(i.data.len(), o.data.len());
        assert_eq!(i.positions.len(), i.data.len());
        for (row, out) in i.data.iter().zip(&o.data) {
            let x = row["x"].as_f64().unwrap();
            assert_eq!(out["prediction"].as_f64().unwrap(), 2.0 * x + 1.0);
            ids.push(row["id"].as_u64().unwrap());
        }
    }
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "every record once, in order");

    // The source replays exactly the rows written, then (with its state) nothing.
    let state = tempfile::tempdir().unwrap();
    let source_options = BlobSourceOptions {
        state_file: Some(state.path().join("blob-source.json")),
        ..BlobSourceOptions::default()
    };
    let mut source = BlobSource::new(
        BlobStore::new(&account_url(&azurite), "logs", "").unwrap(),
        source_options.clone(),
    )
    .unwrap();
    let mut replayed = Vec::new();
    let mut checkpoint = Checkpoint::default();
    while !source.is_exhausted() {
        let deadline = Instant::now() + Duration::from_millis(10);
        for event in source.next_batch(64, deadline).await.unwrap() {
            let row: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
            replayed.push((row["id"].as_u64().unwrap(), row["x"].as_f64().unwrap()));
            assert!(event.timestamp_ms.is_some());
            checkpoint.advance(event.partition, event.offset);
        }
    }
    let expected: Vec<(u64, f64)> = (0..n).map(|i| (i, i as f64 * 0.5)).collect();
    assert_eq!(replayed, expected);
    source.commit(&checkpoint).await.unwrap();
    let mut again = BlobSource::new(
        BlobStore::new(&account_url(&azurite), "logs", "").unwrap(),
        source_options,
    )
    .unwrap();
    let batch = again.next_batch(64, Instant::now()).await.unwrap();
    assert!(
        batch.is_empty() && again.is_exhausted(),
        "committed blobs are not replayed"
    );

    // A time range outside the data selects nothing.
    let future = ml_stream::datacollection::parse_time_bound("since", "2999-01-01").unwrap();
    assert!(
        store
            .read_lines(MODEL_INPUTS, Some(future), None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_with_no_loss_and_no_duplicate_blob() {
    let mut azurite = Azurite::start_persistent();
    let store = store(&azurite, "logs", "outage").await;
    let options = BlobSinkOptions {
        instance: "w".into(),
        block_bytes: 1024,
        ..BlobSinkOptions::default()
    };
    let mut sink = BlobSink::new(
        BlobStore::new(&account_url(&azurite), "logs", "outage").unwrap(),
        options,
    );
    // One fixed hour, so everything belongs in one blob per collection.
    let time = ml_stream::datacollection::parse_time_bound("since", "2026-11-27T10:15:00Z").unwrap();
    let mut next = 0u64;
    let mut write = async |sink: &mut BlobSink, count: u64| {
        let records: Vec<InferenceRecord> = (next..next + count).map(|i| record(i, time)).collect();
        next += count;
        sink.write_batch(&records).await.unwrap();
    };
    write(&mut sink, 100).await;
    sink.flush().await.unwrap();

    // Azurite goes away; writes go on (buffered), and the flush waits until it is back.
    azurite.stop();
    write(&mut sink, 100).await;
    let outage = Duration::from_secs(10);
    let stopped = Instant::now();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(outage); // the length of the outage, not a synchronization
        azurite.restart();
        azurite
    });
    sink.flush().await.unwrap();
    assert!(
        stopped.elapsed() >= outage,
        "the flush cannot succeed while Azurite is down"
    );
    let azurite = restarter.join().unwrap();
    write(&mut sink, 100).await;
    sink.flush().await.unwrap();

    let blobs = store.list("").await.unwrap();
    let names: Vec<&str> = blobs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "local/default/model_inputs/2026/11/27/10/w-000001.jsonl",
            "local/default/model_outputs/2026/11/27/10/w-000002.jsonl",
        ],
        "one blob per collection, none duplicated"
    );
    let lines = store.read_lines(MODEL_INPUTS, None, None).await.unwrap();
    let offsets: Vec<u64> = lines
        .iter()
        .flat_map(|(_, l)| l.positions.iter().map(|p| p.offset))
        .collect();
    assert_eq!(offsets, (0..300).collect::<Vec<_>>(), "no loss, no duplicate");
    let outputs = store.read_lines(MODEL_OUTPUTS, None, None).await.unwrap();
    assert_eq!(outputs.iter().map(|(_, l)| l.data.len()).sum::<usize>(), 300);
    drop(azurite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_that_keeps_failing_surfaces_without_the_secret() {
    let mut azurite = Azurite::start();
    let url = account_url(&azurite);
    let signature = url
        .split("sig=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let store = BlobStore::new(&url, "logs", "").unwrap();
    store.create_container_if_missing().await.unwrap();
    let options = BlobSinkOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
        ..BlobSinkOptions::default()
    };
    let mut sink = BlobSink::new(store, options);
    azurite.stop();
    sink.write_batch(&[record(0, 0)]).await.unwrap();
    let e = sink.flush().await.unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(e, ml_stream::Error::SinkFailed { .. }) && message.contains("after 3 attempts"),
        "{message}"
    );
    assert!(message.contains("blob://logs/modelDataCollector"), "{message}");
    assert!(
        !message.contains(&signature),
        "the SAS signature leaked: {message}"
    );
    assert!(!format!("{sink:?}").contains(&signature));
    // The records are still pending: nothing was dropped.
    azurite.restart();
    let store = BlobStore::new(&url, "logs", "").unwrap();
    store.create_container_if_missing().await.unwrap();
    sink.flush().await.unwrap();
    let lines = store.read_lines(MODEL_INPUTS, None, None).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].1.data[0]["id"], 0);
}

/// Azurite stopped under a running pipeline (a steady producer feeding a channel source, a Blob
/// sink) and started again once the outage has backed up to the producer: the pipeline resumes
/// by itself, every event is in the store (a repeated one carries its position and the same
/// content), and the pipeline never held more events than its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_resumes_by_itself_when_azurite_comes_back() {
    let mut azurite = Azurite::start_persistent();
    let store = store(&azurite, "logs", "pipe").await;
    let quick = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    };
    let options = BlobSinkOptions {
        instance: "w".into(),
        block_bytes: 4096,
        retry: quick,
        ..BlobSinkOptions::default()
    };
    let sink = BlobSink::new(
        BlobStore::new(&account_url(&azurite), "logs", "pipe").unwrap(),
        options,
    );
    let config = PipelineConfig {
        batch_size: 50,
        queue_capacity: 4,
        in_flight: 2,
        commit_every: Some(200),
        // Outlasts any outage of the test: the pipeline waits for the store, it does not stop.
        retry: RetryPolicy {
            max_attempts: 100_000,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        ..PipelineConfig::default()
    };
    let (bound, queued) = (
        config.max_pending_events(),
        (config.queue_capacity * config.batch_size) as u64,
    );
    let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
    let counters = pipeline.counters();
    let (tx, source) = channel(64);
    let run = tokio::spawn(pipeline.run(Box::new(source)));
    let n = 3000u64;
    let producer = tokio::spawn(async move {
        for i in 0..n {
            tx.send(format!(r#"{{"id": {i}, "x": {}}}"#, i as f64 * 0.5))
                .await
                .unwrap();
        }
    });
    let wait = async |what: &str, ready: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::SeqCst);
    wait("500 records written", &|| load(&counters.records_out) >= 500).await;
    azurite.stop();
    let out_at_stop = load(&counters.records_out);
    wait("the outage to back up to the producer", &|| {
        load(&counters.pending_events) >= queued
    })
    .await;
    assert!(!producer.is_finished(), "the producer is held back");
    tokio::task::block_in_place(|| azurite.restart());
    producer.await.unwrap();
    let report = run.await.unwrap().unwrap();
    assert!(report.records_out >= n);
    assert!(out_at_stop < n, "the outage happened mid-stream");
    let max = load(&counters.pending_events_max);
    assert!(max <= bound, "held {max} events; bound {bound}");

    let inputs = store.read_lines(MODEL_INPUTS, None, None).await.unwrap();
    let mut seen: std::collections::BTreeMap<u64, String> = std::collections::BTreeMap::new();
    for (_, line) in &inputs {
        for (pos, row) in line.positions.iter().zip(&line.data) {
            let row = serde_json::to_string(row).unwrap();
            if let Some(previous) = seen.insert(pos.offset, row.clone()) {
                assert_eq!(previous, row, "a repeat of offset {} differs", pos.offset);
            }
        }
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "every event in the store"
    );
    for (offset, row) in &seen {
        let row: serde_json::Value = serde_json::from_str(row).unwrap();
        assert_eq!(row["id"], *offset);
    }
    let outputs = store.read_lines(MODEL_OUTPUTS, None, None).await.unwrap();
    let rows: usize = outputs.iter().map(|(_, l)| l.data.len()).sum();
    assert!(rows as u64 >= n);
}
