//! The Blob inference-log sink and source against Azurite: the data-collection layout and line
//! format, replay of exactly what was written, an outage (Azurite stopped for 10 s and
//! restarted on the same port and storage) with no loss and no duplicate, and failures that
//! surface without a secret in them.

#![cfg(feature = "azure")]

#[path = "../../../test-support/entra.rs"]
mod entra;

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

/// Without a connection string or SAS URL the sink and source take Entra ID, with the same
/// variables, order and messages as the Blob registry; complete configurations open without a
/// request, and nothing secret shows in `Debug`.
#[test]
fn without_a_connection_string_the_store_takes_entra_id_and_errors_say_what_to_set() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let spec = ml_stream::spec::Spec::parse("blob://logs/collector").unwrap();
    let open =
        |pairs: &'static [(&'static str, &'static str)]| BlobStore::from_spec_with(&spec, &vars(pairs));

    let e = open(&[]).unwrap_err().to_string();
    assert!(
        e.contains("no Azure Storage credentials: set AZURE_STORAGE_CONNECTION_STRING"),
        "{e}"
    );
    assert!(
        e.contains("AZURE_STORAGE_ACCOUNT_URL") && e.contains("`az login`"),
        "{e}"
    );
    let e = open(&[(
        "AZURE_STORAGE_ACCOUNT_URL",
        "http://127.0.0.1:10000/devstoreaccount1",
    )])
    .unwrap_err()
    .to_string();
    assert!(e.contains("Entra ID credentials are only sent over https"), "{e}");
    let e = open(&[
        ("AZURE_STORAGE_ACCOUNT", "acct"),
        ("AZURE_CLIENT_SECRET", "s3cr3t"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("the environment credential needs AZURE_TENANT_ID, AZURE_CLIENT_ID (not set)"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");

    let store = open(&[
        ("AZURE_STORAGE_ACCOUNT", "acct"),
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", "s3cr3t"),
    ])
    .unwrap();
    assert_eq!(store.location(), "blob://logs/collector");
    assert!(!format!("{store:?}").contains("s3cr3t"));
    // The connection string wins over Entra ID variables.
    open(&[
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1",
        ),
        ("AZURE_STORAGE_ACCOUNT_URL", "http://ignored"),
    ])
    .unwrap();
}

/// The Entra ID credential signs the sink's requests: when no credential of the chain gives a
/// token, the flush fails with the chain's message (asking for the storage scope) and keeps
/// the records, instead of sending anything unauthenticated.
#[tokio::test]
async fn a_failing_entra_id_chain_fails_the_flush_with_what_to_set() {
    use entra::SignedOut;
    use ml_registry::azure::credential::{ChainCredential, CredentialSource};

    let chain = ChainCredential::new(vec![(CredentialSource::AzureCli, Arc::new(SignedOut))]);
    let store = BlobStore::with_credential("https://127.0.0.1:1", Some(Arc::new(chain)), "logs", "").unwrap();
    let options = BlobSinkOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        },
        ..Default::default()
    };
    let mut sink = BlobSink::new(store, options);
    sink.write_batch(&[record(1, 1_764_000_000_000)]).await.unwrap();
    let e = sink.flush().await.unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains(
            "no Entra ID credential gave a token (azure_cli: Please run 'az login' to set up an account)"
        ),
        "{e}"
    );
}

/// `format=parquet`: a pipeline's scored batches and bare inference records land as Parquet
/// parts under `{endpoint}/{deployment}/scored/{yyyy}/{MM}/{dd}/{HH}/`, one per flush and hour,
/// and the source in Parquet mode replays every row once: the model's fields (and, for scored
/// batches, the predictions), with the row times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_parts_are_written_per_flush_and_replayed_row_for_row() {
    use ml_stream::azure_blob::BlobFormat;

    let azurite = Azurite::start();
    let store = store(&azurite, "parquet", "").await;
    let n = 120u64;
    let options = BlobSinkOptions {
        endpoint: "credit".into(),
        deployment: "blue".into(),
        instance: "writer1".into(),
        format: BlobFormat::Parquet,
        ..BlobSinkOptions::default()
    };
    let sink = BlobSink::new(
        BlobStore::new(&account_url(&azurite), "parquet", "").unwrap(),
        options.clone(),
    );
    let config = PipelineConfig {
        batch_size: 20,
        commit_every: Some(60),
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
    assert_eq!(pipeline.run(Box::new(source)).await.unwrap().records_out, n);
    sender.await.unwrap();

    // Bare records in two hours: one part per hour.
    let hour = 1_764_255_600_000; // 2025-11-27T15:00:00Z
    let mut sink = BlobSink::new(
        BlobStore::new(&account_url(&azurite), "parquet", "").unwrap(),
        BlobSinkOptions {
            instance: "writer2".into(),
            ..options
        },
    );
    let records: Vec<InferenceRecord> = (1000..1010)
        .map(|i| record(i, hour + (i as i64 - 1000) * 720_000))
        .collect();
    sink.write_batch(&records).await.unwrap();
    sink.flush().await.unwrap();
    sink.flush().await.unwrap(); // nothing new: no new part

    let blobs = store.list("").await.unwrap();
    let bare: Vec<&String> = blobs
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.contains("writer2-"))
        .collect();
    assert_eq!(
        bare,
        [
            "credit/blue/scored/2025/11/27/15/writer2-000001.parquet",
            "credit/blue/scored/2025/11/27/16/writer2-000002.parquet"
        ]
    );
    for (rel, _) in &blobs {
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 8, "{rel}");
        assert_eq!(&parts[..3], ["credit", "blue", "scored"], "{rel}");
        assert!(rel.ends_with(".parquet"), "{rel}");
    }
    let pipeline_parts = blobs.len() - bare.len();
    assert!(
        (2..=4).contains(&pipeline_parts),
        "one part per commit: {blobs:?}"
    );

    let mut source = BlobSource::new(
        BlobStore::new(&account_url(&azurite), "parquet", "").unwrap(),
        BlobSourceOptions {
            format: BlobFormat::Parquet,
            ..BlobSourceOptions::default()
        },
    )
    .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let events = source.next_batch(50, Instant::now()).await.unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            let row: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            let id = row["id"].as_u64().unwrap();
            assert_eq!(row["x"].as_f64().unwrap(), id as f64 * 0.5, "{row}");
            if id < n {
                assert_eq!(row["prediction"].as_f64().unwrap(), id as f64 + 1.0, "{row}");
            } else {
                assert!(
                    row.get("prediction").is_none(),
                    "bare records replay their inputs: {row}"
                );
                assert_eq!(e.timestamp_ms, Some(hour + (id as i64 - 1000) * 720_000));
            }
            assert!(
                row.as_object().unwrap().keys().all(|k| !k.starts_with('_')),
                "{row}"
            );
            assert!(seen.insert(id, ()).is_none(), "row {id} twice");
        }
    }
    let expected: Vec<u64> = (0..n).chain(1000..1010).collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), expected);

    // A time range replays only the rows inside it (the second hour of the bare records).
    let mut source = BlobSource::new(
        BlobStore::new(&account_url(&azurite), "parquet", "").unwrap(),
        BlobSourceOptions {
            format: BlobFormat::Parquet,
            since_ms: Some(hour + 3_600_000),
            until_ms: Some(hour + 7_200_000),
            ..BlobSourceOptions::default()
        },
    )
    .unwrap();
    let events = source.next_batch(100, Instant::now()).await.unwrap();
    let ids: Vec<u64> = events
        .iter()
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(&e.payload).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (1005..1010).collect::<Vec<_>>());
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
