//! Kafka source and sink against librdkafka's mock cluster (a real Kafka-protocol broker on
//! loopback, in this process): contents end to end, key/headers/timestamp, commits only after
//! the sinks flushed, a graceful rebalance without duplicates, delivery errors surfaced.
#![cfg(feature = "kafka")]

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Affine, schema};
use ml_stream::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use ml_stream::kafka::rdkafka::message::{Header, Message, OwnedHeaders};
use ml_stream::kafka::rdkafka::mocking::MockCluster;
use ml_stream::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use ml_stream::kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use ml_stream::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use ml_stream::kafka::{KafkaConfig, KafkaSink, KafkaSource};
use ml_stream::{InferenceRecord, InferenceSink, Pipeline, PipelineConfig, SourcePosition, StreamSource};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Group timing that lets rebalances finish in about a second on the mock cluster.
fn group_config(bootstrap: &str, topic: &str, group: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(bootstrap, topic);
    c.group = Some(group.into());
    c.set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200");
    c
}

/// Produces events `ids` (payload `{"id": i, "x": i/2}`) spread over `partitions` by id, with
/// a key, a header and a timestamp each; waits until all are delivered.
fn produce(bootstrap: &str, topic: &str, partitions: i32, ids: std::ops::Range<u64>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in ids {
        let payload = format!(r#"{{"id": {i}, "x": {}}}"#, i as f64 * 0.5);
        let key = format!("k{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("test"),
        });
        let mut record = BaseRecord::to(topic)
            .payload(&payload)
            .key(&key)
            .partition((i % partitions as u64) as i32)
            .timestamp(1_700_000_000_000 + i as i64)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Reads every message of `topic` from the beginning until `n` arrived (or the deadline).
fn read_all(bootstrap: &str, topic: &str, partitions: i32, n: usize) -> Vec<InferenceRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
    }
    out
}

/// Every record is the right answer for its event, and every event is there exactly once.
fn check_exactly_once(records: &[InferenceRecord], n: u64, partitions: u64) {
    let mut seen = HashSet::new();
    for r in records {
        let id = r.inputs["id"].as_u64().unwrap();
        assert!(seen.insert(id), "event {id} scored twice");
        // Produced round-robin by id: the id says where the event was.
        assert_eq!(r.position.partition as u64, id % partitions);
        assert_eq!(r.position.offset, id / partitions);
        assert_eq!(r.event_timestamp_ms, Some(1_700_000_000_000 + id as i64));
        let x = id as f64 * 0.5;
        assert_eq!(r.inputs["x"].as_f64().unwrap(), x);
        assert_eq!(r.outputs["prediction"].as_f64().unwrap(), 2.0 * x + 1.0);
    }
    assert_eq!(seen.len() as u64, n, "every event scored");
}

async fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn committed(bootstrap: &str, topic: &str, group: &str, partitions: i32) -> BTreeMap<i32, i64> {
    committed_by(&offset_reader(bootstrap, group), topic, partitions)
}

/// A client that reads `group`'s committed offsets (it does not join the group).
fn offset_reader(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap()
}

fn committed_by(consumer: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                },
            )
        })
        .collect()
}

#[test]
fn events_go_from_a_topic_through_the_scorer_to_a_topic_exactly_and_commits_follow() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 3, 1).unwrap();
    cluster.create_topic("scores", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let n = 3000u64;
    produce(&bootstrap, "events", 3, 0..n);

    runtime().block_on(async {
        let source = KafkaSource::new(&group_config(&bootstrap, "events", "scorers")).unwrap();
        let sink = KafkaSink::new(&KafkaConfig::new(&bootstrap, "scores")).unwrap();
        let config = PipelineConfig {
            commit_every: Some(500),
            ..Default::default()
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let counters = pipeline.counters();
        let stop = pipeline.shutdown_handle();
        let run = tokio::spawn(pipeline.run(Box::new(source)));
        wait_for("every event scored", Duration::from_secs(60), || {
            counters.records_out.load(std::sync::atomic::Ordering::Relaxed) >= n
        })
        .await;
        stop.shutdown();
        let report = run.await.unwrap().unwrap();
        assert_eq!((report.events_in, report.records_out), (n, n));
    });
    let records = read_all(&bootstrap, "scores", 3, n as usize);
    assert_eq!(records.len() as u64, n);
    check_exactly_once(&records, n, 3);
    // Records of one source partition stay in order (keyed by source partition).
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &records {
        let SourcePosition { partition, offset } = r.position;
        if let Some(prev) = last.insert(partition, offset) {
            assert!(offset > prev, "partition {partition}: {offset} after {prev}");
        }
    }
    // The group committed everything, after the sink flushed.
    assert_eq!(
        committed(&bootstrap, "events", "scorers", 3),
        BTreeMap::from([(0, 1000), (1, 1000), (2, 1000)])
    );
}

/// An idle stream commits its last batch within `commit_interval`: once the group has formed
/// and committed a first event, 60 more arrive and then nothing; the group's committed offsets
/// reach the end of every partition, and the sink topic holds every record (flushed), while
/// the pipeline still runs. (The 60 arrive well within the interval after the first commit, so
/// only the idle timer can commit them.)
#[test]
fn an_idle_stream_commits_its_last_batch_within_the_interval() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 3, 1).unwrap();
    cluster.create_topic("scores", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "events", 3, 0..1);
    runtime().block_on(async {
        let source = KafkaSource::new(&group_config(&bootstrap, "events", "idle")).unwrap();
        let sink = KafkaSink::new(&KafkaConfig::new(&bootstrap, "scores")).unwrap();
        let config = PipelineConfig {
            commit_interval: Duration::from_secs(2),
            ..Default::default()
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let (counters, stop) = (pipeline.counters(), pipeline.shutdown_handle());
        let run = tokio::spawn(pipeline.run(Box::new(source)));
        let offsets = offset_reader(&bootstrap, "idle");
        let wait_committed = |want: BTreeMap<i32, i64>| {
            let offsets = &offsets;
            let counters = &counters;
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let got = committed_by(offsets, "events", 3);
                    if got == want {
                        return;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "committed {got:?}, want {want:?}; {} records written, {} commits",
                        counters.records_out.load(std::sync::atomic::Ordering::SeqCst),
                        counters.commits.load(std::sync::atomic::Ordering::SeqCst)
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        wait_committed(BTreeMap::from([(0, 1), (1, -1), (2, -1)])).await;
        produce(&bootstrap, "events", 3, 1..61);
        wait_committed(BTreeMap::from([(0, 21), (1, 20), (2, 20)])).await;
        assert!(
            !run.is_finished(),
            "committed by the running pipeline, not at its end"
        );
        assert_eq!(
            read_all(&bootstrap, "scores", 3, 61).len(),
            61,
            "every record flushed"
        );
        stop.shutdown();
        run.await.unwrap().unwrap();
    });
}

#[test]
fn the_source_exposes_key_headers_and_timestamp_and_resumes_after_its_commit() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "events", 1, 0..10);
    runtime().block_on(async {
        let config = group_config(&bootstrap, "events", "g");
        let mut source = KafkaSource::new(&config).unwrap();
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while events.len() < 10 && Instant::now() < deadline {
            let got = source
                .next_batch(100, Instant::now() + Duration::from_millis(100))
                .await
                .unwrap();
            events.extend(got);
        }
        assert_eq!(events.len(), 10);
        let e = &events[3];
        assert_eq!((e.partition, e.offset), (0, 3));
        assert_eq!(e.key.as_deref(), Some(&b"k3"[..]));
        assert_eq!(e.header("source"), Some(&b"test"[..]));
        assert_eq!(e.timestamp_ms, Some(1_700_000_000_003));
        assert_eq!(e.payload, br#"{"id": 3, "x": 1.5}"#);
        // Commit up to offset 6 (next = 7); a new member of the group starts there.
        let mut cp = ml_stream::Checkpoint::default();
        cp.advance(0, 6);
        source.commit(&cp).await.unwrap();
        drop(source);
        let mut again = KafkaSource::new(&config).unwrap();
        let mut first = None;
        while first.is_none() && Instant::now() < deadline {
            first = again
                .next_batch(100, Instant::now() + Duration::from_millis(100))
                .await
                .unwrap()
                .into_iter()
                .next();
        }
        assert_eq!(first.map(|e| e.offset), Some(7));
    });
}

/// A second member joins while the first has scored events it has not committed yet (its
/// commit interval is long): the first commits them before it lets its partitions go, so the
/// second starts after them and nothing is scored twice.
///
/// The second member is made the group leader (the mock cluster elects the smallest
/// `group.instance.id`). The mock ends a sync as soon as the leader's assignments arrive and
/// answers a member whose own SyncGroup comes after that with an error, and that member
/// rejoins. If the late member were the joining one while the first was committing for its
/// revocation, the rejoin would put the group back into "joining", where the mock refuses
/// commits: a real broker accepts a current member's commit while a rebalance is prepared and
/// keeps a late member's assignment. With the joining member as leader, a late first member
/// only rejoins before it revokes anything, so the handover this test is about is the same
/// as on a real broker.
#[test]
fn a_graceful_rebalance_hands_partitions_over_without_duplicates() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 6, 1).unwrap();
    cluster.create_topic("scores", 6, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "events", 6, 0..600);
    let started = Instant::now();
    runtime().block_on(async {
        let member = |instance: &str| {
            let mut source_config = group_config(&bootstrap, "events", "scorers");
            source_config.set("group.instance.id", instance);
            let source = KafkaSource::new(&source_config).unwrap();
            let sink = KafkaSink::new(&KafkaConfig::new(&bootstrap, "scores")).unwrap();
            let config = PipelineConfig {
                // Only the rebalance makes the first member commit.
                commit_interval: Duration::from_secs(600),
                ..Default::default()
            };
            let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
            let counters = pipeline.counters();
            let stop = pipeline.shutdown_handle();
            (tokio::spawn(pipeline.run(Box::new(source))), counters, stop)
        };
        let out = |c: &ml_stream::PipelineCounters| c.records_out.load(std::sync::atomic::Ordering::Relaxed);
        let (run_a, a, stop_a) = member("scorer-2");
        wait_for(
            "the first member scored the first 600",
            Duration::from_secs(60),
            || out(&a) >= 600,
        )
        .await;
        assert_eq!(
            a.commits.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "nothing committed yet"
        );
        let (run_b, b, stop_b) = member("scorer-1");
        wait_for(
            "the first member committed for the rebalance",
            Duration::from_secs(60),
            || a.commits.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        )
        .await;
        produce(&bootstrap, "events", 6, 600..1200);
        wait_for("all 1200 scored", Duration::from_secs(60), || {
            out(&a) + out(&b) >= 1200
        })
        .await;
        assert!(out(&b) > 0, "the second member got partitions");
        stop_a.shutdown();
        stop_b.shutdown();
        run_a.await.unwrap().unwrap();
        run_b.await.unwrap().unwrap();
    });
    let records = read_all(&bootstrap, "scores", 6, 1200);
    check_exactly_once(&records, 1200, 6);
    eprintln!("rebalance test: {:.2} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_failed_delivery_fails_the_sink_and_keeps_failing() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("scores", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    // The broker refuses every produce request: not retriable.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 20],
    );
    runtime().block_on(async {
        let mut config = KafkaConfig::new(&bootstrap, "scores");
        config.flush_timeout = Duration::from_secs(20);
        let mut sink = KafkaSink::new(&config).unwrap();
        let record: InferenceRecord = serde_json::from_str(
            r#"{"correlation_id":"c","request_id":"c","timestamp_ms":1,"event_timestamp_ms":null,
                "model_name":"m","model_version":"1","position":{"partition":0,"offset":0},
                "inputs":{"x":1.0},"outputs":{"prediction":3.0},"latency_ms":0.1}"#,
        )
        .unwrap();
        sink.write_batch(std::slice::from_ref(&record)).await.unwrap();
        let e = sink.flush().await.unwrap_err().to_string();
        assert!(e.contains("delivery to scores") && e.contains("uthoriz"), "{e}");
        // No second chance that would let a commit pass over the lost record.
        cluster.clear_request_errors(RDKafkaApiKey::Produce);
        assert!(sink.flush().await.is_err());
        assert!(sink.write_batch(&[record]).await.is_err());
    });
}

/// The broker goes down under a running pipeline writing to it (a steady producer feeds a
/// channel source; the sink is Kafka) and comes back: the producer client holds what it could
/// not deliver, the flushes wait, the outage backs up to the event producer within the
/// pipeline's memory bound, and the pipeline goes on by itself — every event ends up in the
/// topic (a repeat carries its position and the same answer).
#[test]
fn the_pipeline_resumes_by_itself_after_the_broker_restarts() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("scores", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let n = 3000u64;
    let written = runtime().block_on(async {
        let (tx, source) = ml_stream::source::channel(64);
        let sink = KafkaSink::new(&KafkaConfig::new(&bootstrap, "scores")).unwrap();
        let config = PipelineConfig {
            batch_size: 50,
            commit_every: Some(200),
            retry: ml_stream::RetryPolicy {
                max_attempts: 10_000,
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(500),
            },
            ..Default::default()
        };
        let (bound, queued) = (
            config.max_pending_events(),
            (config.queue_capacity * config.batch_size) as u64,
        );
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let counters = pipeline.counters();
        let run = tokio::spawn(pipeline.run(Box::new(source)));
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send(format!(r#"{{"id": {i}, "x": {}}}"#, i as f64 * 0.5))
                    .await
                    .unwrap();
            }
        });
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::SeqCst);
        wait_for("400 events scored", Duration::from_secs(60), || {
            load(&counters.records_out) >= 400
        })
        .await;
        cluster.broker_down(1).unwrap();
        wait_for(
            "the outage to back up to the producer",
            Duration::from_secs(60),
            || load(&counters.pending_events) >= queued,
        )
        .await;
        // The outage goes on a little longer (its length, not a synchronization).
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!producer.is_finished(), "the producer is held back");
        assert!(!run.is_finished(), "the pipeline waits for the broker");
        cluster.broker_up(1).unwrap();
        producer.await.unwrap();
        let report = run.await.unwrap().unwrap();
        let max = load(&counters.pending_events_max);
        assert!(max <= bound, "held {max} events; bound {bound}");
        report.records_out
    });
    assert!(written >= n);
    let records = read_all(&bootstrap, "scores", 3, written as usize);
    let mut seen: BTreeMap<u64, f64> = BTreeMap::new();
    for r in &records {
        let id = r.inputs["id"].as_u64().unwrap();
        assert_eq!(
            (r.position.partition, r.position.offset),
            (0, id),
            "position of event {id}"
        );
        let prediction = r.outputs["prediction"].as_f64().unwrap();
        assert_eq!(prediction, id as f64 + 1.0, "event {id}");
        seen.insert(id, prediction);
    }
    assert_eq!(seen.len() as u64, n, "every event in the topic");
    eprintln!(
        "broker restart: {} records for {n} events ({} repeated)",
        records.len(),
        records.len() as u64 - n
    );
}

/// The broker restarts under a consumer-group member in mid-stream (down for 3 s, back on the
/// same port: the mock cluster keeps its listener) while the member holds a scored event it
/// has not committed yet, so its commit falls in the outage (librdkafka answers "waiting for
/// coordinator"; that once failed the source, which stopped the pipeline and gave its
/// partitions up for good). The member goes on by itself — it keeps or gets back its
/// partitions — and scores the events produced during the outage too. Every event is scored; a
/// repeat carries the same (partition, offset) and the same input.
#[test]
fn a_consumer_resumes_by_itself_after_the_broker_restarts() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let n = 600u64;
    produce(&bootstrap, "events", 3, 0..n / 2);
    let records = runtime().block_on(async {
        let source = KafkaSource::new(&group_config(&bootstrap, "events", "restart")).unwrap();
        let (sink, handle) = ml_stream::sink::MemorySink::new();
        let config = PipelineConfig {
            commit_interval: Duration::from_secs(2),
            ..Default::default()
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let (counters, stop) = (pipeline.counters(), pipeline.shutdown_handle());
        let run = tokio::spawn(pipeline.run(Box::new(source)));
        let out = || counters.records_out.load(std::sync::atomic::Ordering::SeqCst);
        // The first half is scored and committed; one more event is scored just after that
        // commit, so the next commit is due within the outage.
        let offsets = offset_reader(&bootstrap, "restart");
        wait_for("the first half committed", Duration::from_secs(60), || {
            committed_by(&offsets, "events", 3) == BTreeMap::from([(0, 100), (1, 100), (2, 100)])
        })
        .await;
        produce(&bootstrap, "events", 3, n / 2..n / 2 + 1);
        wait_for("one more scored", Duration::from_secs(60), || out() > n / 2).await;
        cluster.broker_down(1).unwrap();
        // The rest is produced during the outage (held by the producer client).
        let producer = {
            let bootstrap = bootstrap.clone();
            std::thread::spawn(move || produce(&bootstrap, "events", 3, n / 2 + 1..n))
        };
        // The outage's length, not a synchronization.
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.broker_up(1).unwrap();
        let distinct = || {
            handle
                .records()
                .iter()
                .map(|r| r.inputs["id"].as_u64().unwrap())
                .collect::<HashSet<_>>()
                .len() as u64
        };
        wait_for(
            "every event scored after the restart",
            Duration::from_secs(60),
            || {
                assert!(!run.is_finished(), "the pipeline stopped");
                distinct() >= n
            },
        )
        .await;
        producer.join().unwrap();
        stop.shutdown();
        run.await.unwrap().unwrap();
        handle.records()
    });
    let mut by_position = BTreeMap::new();
    for r in &records {
        let id = r.inputs["id"].as_u64().unwrap();
        assert_eq!((r.position.partition as u64, r.position.offset), (id % 3, id / 3));
        assert_eq!(r.outputs["prediction"].as_f64().unwrap(), id as f64 + 1.0);
        by_position.insert((r.position.partition, r.position.offset), id);
    }
    assert_eq!(by_position.len() as u64, n, "every event scored");
    eprintln!(
        "consumer across a broker restart: {} records for {n} events",
        records.len()
    );
}
