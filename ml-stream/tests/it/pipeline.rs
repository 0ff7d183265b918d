//! The pipeline end to end with in-process sources and sinks: completeness, dead letters,
//! backpressure, sink failures, the JSONL inference log, file sources.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{Affine, schema};
use ml_stream::datacollection::{self, MODEL_INPUTS, MODEL_OUTPUTS};
use ml_stream::sink::{JsonlSink, JsonlSinkOptions, MemorySink};
use ml_stream::source::{FileSource, FileSourceOptions, channel};
use ml_stream::{
    Checkpoint, DeadLetter, Event, InferenceRecord, InferenceSink, Pipeline, PipelineConfig, RetryPolicy,
    StreamSource,
};

fn event_json(i: u64) -> String {
    format!(r#"{{"id": {i}, "x": {}}}"#, i as f64 * 0.5)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every record carries its input and the right output, exactly once, in order.
fn check_complete(records: &[InferenceRecord], n: u64) {
    assert_eq!(records.len() as u64, n);
    for (i, r) in records.iter().enumerate() {
        let i = i as u64;
        assert_eq!(r.position.offset, i, "records in source order");
        assert_eq!(r.inputs["id"], i);
        let x = i as f64 * 0.5;
        assert_eq!(r.inputs["x"].as_f64().unwrap(), x);
        assert_eq!(r.outputs["prediction"].as_f64().unwrap(), 2.0 * x + 1.0);
    }
}

#[test]
fn every_event_reaches_the_sink_exactly_once_in_a_clean_run() {
    let n = 200_000u64;
    runtime().block_on(async {
        let (sink, handle) = MemorySink::new();
        let config = PipelineConfig {
            commit_every: Some(10_000),
            ..Default::default()
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let counters = pipeline.counters();
        let (tx, source) = channel(1024);
        let producer = tokio::spawn(async move {
            for i in 0..n {
                tx.send(event_json(i)).await.unwrap();
            }
        });
        let report = pipeline.run(Box::new(source)).await.unwrap();
        producer.await.unwrap();
        assert_eq!(
            (report.events_in, report.records_out, report.dead_letters),
            (n, n, 0)
        );
        assert_eq!(report.checkpoint.next_offsets[&0], n);
        assert!(report.commits >= n / 10_000, "{report:?}");
        assert_eq!(counters.records_out.load(Ordering::Relaxed), n);
        check_complete(&handle.records(), n);
        assert!(handle.flushes() >= report.commits);
    });
}

#[test]
fn malformed_events_go_to_the_dead_letters_with_reasons() {
    let n = 20_000u64;
    runtime().block_on(async {
        let (sink, good) = MemorySink::new();
        let (dlq, bad) = MemorySink::new();
        let pipeline = Pipeline::new(
            PipelineConfig::default(),
            schema(),
            Arc::new(Affine),
            vec![Box::new(sink)],
        )
        .unwrap()
        .with_dead_letter(Box::new(dlq));
        let (tx, source) = channel(256);
        let producer = tokio::spawn(async move {
            for i in 0..n {
                // 1 % poison, of four kinds.
                let payload = match i % 100 {
                    17 => "{not json".to_string(),
                    42 => format!(r#"{{"id": {i}, "x": "abc"}}"#),
                    63 => format!(r#"{{"id": {i}}}"#),
                    99 => "[1, 2, 3]".to_string(),
                    _ => event_json(i),
                };
                tx.send(payload).await.unwrap();
            }
        });
        let report = pipeline.run(Box::new(source)).await.unwrap();
        producer.await.unwrap();
        let poison = n / 25;
        assert_eq!(report.dead_letters, poison);
        assert_eq!(report.records_out, n - poison);
        let letters: Vec<DeadLetter> = bad.dead_letters();
        assert_eq!(letters.len() as u64, poison);
        for l in &letters {
            let expect = match l.position.offset % 100 {
                17 => "not valid JSON",
                42 => "field `x`: expected a float value",
                // "value is missing" — or "column is missing" when a batch holds only this record
                // (batches are cut by time, so either can happen).
                63 => "field `x`:",
                99 => "expected 2 values",
                other => panic!("good event {other} dead-lettered: {l:?}"),
            };
            assert!(l.reason.contains(expect), "{l:?}");
            if l.position.offset % 100 == 63 {
                assert!(l.reason.contains("is missing"), "{l:?}");
            }
        }
        let records = good.records();
        assert!(
            records
                .iter()
                .all(|r| ![17, 42, 63, 99].contains(&(r.position.offset % 100)))
        );
        for r in &records {
            let x = r.inputs["x"].as_f64().unwrap();
            assert_eq!(r.outputs["prediction"].as_f64().unwrap(), 2.0 * x + 1.0);
        }
        // Every position is committed: good and dead alike.
        assert_eq!(report.checkpoint.next_offsets[&0], n);
    });
}

/// A source that counts what it has handed out.
#[derive(Debug)]
struct CountingSource {
    next: u64,
    end: u64,
    read: Arc<AtomicU64>,
}

#[async_trait]
impl StreamSource for CountingSource {
    async fn next_batch(&mut self, max: usize, _deadline: Instant) -> ml_stream::Result<Vec<Event>> {
        let take = (max as u64).min(self.end - self.next);
        let events = (self.next..self.next + take)
            .map(|i| Event::new(event_json(i), 0, i))
            .collect();
        self.next += take;
        self.read.store(self.next, Ordering::SeqCst);
        Ok(events)
    }
    fn is_exhausted(&self) -> bool {
        self.next >= self.end
    }
}

/// A sink that takes its time and records how far ahead the source ran at each write.
#[derive(Debug)]
struct SlowSink {
    written: u64,
    read: Arc<AtomicU64>,
    max_ahead: Arc<AtomicU64>,
    delay: Duration,
}

#[async_trait]
impl InferenceSink for SlowSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> ml_stream::Result<()> {
        tokio::time::sleep(self.delay).await;
        self.written += records.len() as u64;
        let ahead = self.read.load(Ordering::SeqCst) - self.written;
        self.max_ahead.fetch_max(ahead, Ordering::SeqCst);
        Ok(())
    }
    async fn flush(&mut self) -> ml_stream::Result<()> {
        Ok(())
    }
}

#[test]
fn a_slow_sink_slows_the_source_and_memory_stays_bounded() {
    let n = 20_000u64;
    runtime().block_on(async {
        let read = Arc::new(AtomicU64::new(0));
        let max_ahead = Arc::new(AtomicU64::new(0));
        let config = PipelineConfig {
            batch_size: 100,
            queue_capacity: 4,
            in_flight: 2,
            ..Default::default()
        };
        // The source produces 100 events in microseconds; the sink takes 5 ms per 100: far
        // more than 100× slower.
        let sink = SlowSink {
            written: 0,
            read: read.clone(),
            max_ahead: max_ahead.clone(),
            delay: Duration::from_millis(5),
        };
        let source = CountingSource {
            next: 0,
            end: n,
            read: read.clone(),
        };
        let pipeline =
            Pipeline::new(config.clone(), schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let report = pipeline.run(Box::new(source)).await.unwrap();
        assert_eq!(report.records_out, n);
        // Read ahead of the sink: the queue, the batches being scored, the one in the writer's
        // hands, and the one the reader holds while waiting for room.
        let bound = (config.queue_capacity + config.in_flight + 2) as u64 * config.batch_size as u64;
        let seen = max_ahead.load(Ordering::SeqCst);
        assert!(
            seen <= bound,
            "source ran {seen} events ahead of the sink; bound {bound}"
        );
        assert!(
            seen >= config.batch_size as u64,
            "the test must actually queue: {seen}"
        );
    });
}

/// A sink that fails a given number of times, then works.
#[derive(Debug)]
struct FlakySink {
    failures_left: u32,
    inner: MemorySink,
}

#[async_trait]
impl InferenceSink for FlakySink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> ml_stream::Result<()> {
        if self.failures_left > 0 {
            self.failures_left -= 1;
            return Err(ml_stream::Error::Unsupported {
                what: "transient failure".into(),
            });
        }
        self.inner.write_batch(records).await
    }
    async fn flush(&mut self) -> ml_stream::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[test]
fn sink_errors_are_retried_then_stop_the_pipeline_loudly() {
    runtime().block_on(async {
        let fast_retry = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let config = PipelineConfig {
            retry: fast_retry,
            ..Default::default()
        };
        // Two failures then success: nothing lost.
        let (inner, handle) = MemorySink::new();
        let sink = FlakySink {
            failures_left: 2,
            inner,
        };
        let pipeline =
            Pipeline::new(config.clone(), schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let source = CountingSource {
            next: 0,
            end: 1000,
            read: Arc::default(),
        };
        let report = pipeline.run(Box::new(source)).await.unwrap();
        assert_eq!(report.records_out, 1000);
        check_complete(&handle.records(), 1000);

        // Always failing: the run fails with the sink named, and nothing is committed.
        let (inner, _) = MemorySink::new();
        let sink = FlakySink {
            failures_left: u32::MAX,
            inner,
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let source = CountingSource {
            next: 0,
            end: 1000,
            read: Arc::default(),
        };
        let err = pipeline.run(Box::new(source)).await.unwrap_err().to_string();
        assert!(err.contains("sink flaky failed after 3 attempts"), "{err}");
    });
}

#[test]
fn jsonl_sink_writes_the_azure_ml_data_collection_layout() {
    let tmp = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut options = JsonlSinkOptions::new(tmp.path());
        options.endpoint = "credit".into();
        options.deployment = "blue".into();
        options.instance = "i1".into();
        let sink = JsonlSink::new(options).unwrap();
        let config = PipelineConfig {
            batch_size: 64,
            model_name: "credit".into(),
            model_version: "3".into(),
            ..Default::default()
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let source = CountingSource {
            next: 0,
            end: 1000,
            read: Arc::default(),
        };
        pipeline.run(Box::new(source)).await.unwrap();
    });
    let inputs = datacollection::read_lines(&tmp.path().join("credit/blue").join(MODEL_INPUTS)).unwrap();
    let outputs = datacollection::read_lines(&tmp.path().join("credit/blue").join(MODEL_OUTPUTS)).unwrap();
    assert_eq!(inputs.iter().map(|l| l.data.len()).sum::<usize>(), 1000);
    assert_eq!(inputs.len(), outputs.len());
    for (i, o) in inputs.iter().zip(&outputs) {
        assert_eq!(
            i.correlationid, o.correlationid,
            "inputs and outputs join by correlationid"
        );
        assert_eq!(i.ty, "azureml.inference.model_inputs");
        assert_eq!(o.ty, "azureml.inference.model_outputs");
        assert_eq!(
            (i.specversion.as_str(), i.datacontenttype.as_str()),
            ("1.0", "application/json")
        );
        assert_eq!(i.modelversion, "credit:3");
        assert_eq!(i.positions.len(), i.data.len());
        for (row, out) in i.data.iter().zip(&o.data) {
            let x = row["x"].as_f64().unwrap();
            assert_eq!(out["prediction"].as_f64().unwrap(), 2.0 * x + 1.0);
        }
        // RFC 3339 UTC time.
        assert!(i.time.ends_with('Z') && i.time.len() == 24, "{}", i.time);
    }
    // The path is {root}/{endpoint}/{deployment}/{collection}/yyyy/MM/dd/HH/{instance}-{seq}.jsonl
    let mut files = Vec::new();
    for e in walk(tmp.path()) {
        files.push(e.strip_prefix(tmp.path()).unwrap().to_string_lossy().into_owned());
    }
    assert!(!files.is_empty());
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        assert_eq!(parts.len(), 8, "{f}");
        assert_eq!(&parts[..2], ["credit", "blue"]);
        assert!(parts[2] == MODEL_INPUTS || parts[2] == MODEL_OUTPUTS, "{f}");
        assert_eq!(
            (parts[3].len(), parts[4].len(), parts[5].len(), parts[6].len()),
            (4, 2, 2, 2),
            "{f}"
        );
        assert!(parts[7].starts_with("i1-") && parts[7].ends_with(".jsonl"), "{f}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn file_source_resumes_from_its_state_file_and_reads_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("events.jsonl");
    let lines: String = (0..100).map(|i| event_json(i) + "\n").collect();
    std::fs::write(&data, &lines).unwrap();
    let state = tmp.path().join("events.state");
    runtime().block_on(async {
        let options = FileSourceOptions {
            follow: false,
            state_file: Some(state.clone()),
        };
        let mut source = FileSource::open(&data, options.clone()).unwrap();
        let far = Instant::now() + Duration::from_secs(1);
        let first = source.next_batch(30, far).await.unwrap();
        assert_eq!(first.len(), 30);
        let mut cp = Checkpoint::default();
        cp.advance(0, first.last().unwrap().offset);
        source.commit(&cp).await.unwrap();
        // A new process resumes after event 29.
        let mut again = FileSource::open(&data, options).unwrap();
        let rest = again.next_batch(1000, far).await.unwrap();
        assert_eq!(rest.len(), 70);
        assert_eq!(
            String::from_utf8(rest[0].payload.clone()).unwrap(),
            event_json(30)
        );
        assert!(again.is_exhausted());

        let csv = tmp.path().join("events.csv");
        std::fs::write(&csv, "x,id\n0.5,1\n1.5,3\n").unwrap();
        let (sink, handle) = MemorySink::new();
        let pipeline = Pipeline::new(
            PipelineConfig::default(),
            schema(),
            Arc::new(Affine),
            vec![Box::new(sink)],
        )
        .unwrap();
        let report = pipeline
            .run(Box::new(
                FileSource::open(&csv, FileSourceOptions::default()).unwrap(),
            ))
            .await
            .unwrap();
        assert_eq!(report.records_out, 2);
        assert_eq!(handle.records()[1].outputs["prediction"].as_f64().unwrap(), 4.0);
    });
}

#[test]
fn follow_mode_sees_appended_lines_and_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("live.jsonl");
    std::fs::write(&data, event_json(0) + "\n").unwrap();
    runtime().block_on(async {
        let options = FileSourceOptions {
            follow: true,
            state_file: None,
        };
        let mut source = FileSource::open(&data, options).unwrap();
        let soon = || Instant::now() + Duration::from_millis(300);
        assert_eq!(source.next_batch(10, soon()).await.unwrap().len(), 1);
        // Nothing new: an empty batch at the deadline, not the end.
        assert!(source.next_batch(10, soon()).await.unwrap().is_empty());
        assert!(!source.is_exhausted());
        // Appended, including a line written in two pieces.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&data).unwrap();
        write!(f, "{}\n{{\"id\": 2,", event_json(1)).unwrap();
        f.flush().unwrap();
        let got = source.next_batch(10, soon()).await.unwrap();
        assert_eq!(got.len(), 1, "the half-written line waits");
        writeln!(f, " \"x\": 1.0}}").unwrap();
        f.flush().unwrap();
        let got = source.next_batch(10, soon()).await.unwrap();
        assert_eq!(
            String::from_utf8(got[0].payload.clone()).unwrap(),
            r#"{"id": 2, "x": 1.0}"#
        );
        // Rotation: the file is replaced by a new one.
        std::fs::rename(&data, tmp.path().join("live.jsonl.1")).unwrap();
        std::fs::write(&data, event_json(7) + "\n").unwrap();
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(source.next_batch(10, soon()).await.unwrap());
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(String::from_utf8(got[0].payload.clone()).unwrap(), event_json(7));
    });
}

/// A sink that goes down once `down_after` records are in, stays down until the pipeline holds
/// `stall_at` events (the outage has backed up to the source), then fails `then_fails` more
/// calls — writes and flushes alike — and recovers. Each failed call samples the pipeline's
/// pending gauge into `seen_max`.
#[derive(Debug)]
struct OutageSink {
    inner: MemorySink,
    written: u64,
    down_after: u64,
    stall_at: u64,
    then_fails: u32,
    failed: Arc<AtomicU64>,
    seen_max: Arc<AtomicU64>,
    /// The pipeline's counters, set once the pipeline (which takes the sink) exists.
    counters: Arc<std::sync::OnceLock<Arc<ml_stream::PipelineCounters>>>,
}

impl OutageSink {
    fn check(&mut self) -> ml_stream::Result<()> {
        if self.written < self.down_after || self.then_fails == 0 {
            return Ok(());
        }
        let pending = self
            .counters
            .get()
            .map_or(0, |c| c.pending_events.load(Ordering::SeqCst));
        self.seen_max.fetch_max(pending, Ordering::SeqCst);
        if pending >= self.stall_at {
            self.then_fails -= 1;
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        Err(ml_stream::Error::Unsupported {
            what: "the store is down".into(),
        })
    }
}

#[async_trait]
impl InferenceSink for OutageSink {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> ml_stream::Result<()> {
        self.check()?;
        self.written += records.len() as u64;
        self.inner.write_batch(records).await
    }
    async fn flush(&mut self) -> ml_stream::Result<()> {
        self.check()
    }
    fn describe(&self) -> String {
        "outage".into()
    }
}

/// A sink down for a long outage (dozens of failed writes and flushes, until the outage has
/// backed up to the source and beyond) under a pipeline whose retry policy outlasts it: the
/// pipeline resumes by itself when the sink comes back, writes every event exactly once, and
/// never holds more than its bound — the live gauge sampled at every failed call, and its
/// high-water mark.
#[test]
fn a_sink_down_for_a_while_resumes_by_itself_with_memory_bounded() {
    let n = 20_000u64;
    runtime().block_on(async {
        let config = PipelineConfig {
            batch_size: 100,
            queue_capacity: 4,
            in_flight: 2,
            commit_every: Some(1000),
            retry: RetryPolicy {
                max_attempts: 1000,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(4),
            },
            ..Default::default()
        };
        // Queue 4 + scoring 2 + the writer's + the reader's, 100 events each.
        let bound = config.max_pending_events();
        assert_eq!(bound, 800);
        let (inner, handle) = MemorySink::new();
        let (failed, seen_max) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = Arc::new(std::sync::OnceLock::new());
        let sink = OutageSink {
            inner,
            written: 0,
            down_after: 3000,
            // The queue is full: the outage holds the source back.
            stall_at: (config.queue_capacity * config.batch_size) as u64,
            then_fails: 30,
            failed: failed.clone(),
            seen_max: seen_max.clone(),
            counters: counters.clone(),
        };
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        counters.set(pipeline.counters()).unwrap();
        let source = CountingSource {
            next: 0,
            end: n,
            read: Arc::default(),
        };
        let report = pipeline.run(Box::new(source)).await.unwrap();
        assert_eq!(report.records_out, n);
        check_complete(&handle.records(), n);
        let counters = counters.get().unwrap();
        let max = counters.pending_events_max.load(Ordering::SeqCst);
        let during = seen_max.load(Ordering::SeqCst);
        assert!(failed.load(Ordering::SeqCst) >= 30, "the outage happened");
        assert!(max <= bound, "held {max} events; bound {bound}");
        assert!((400..=max).contains(&during), "held {during} during the outage");
        assert_eq!(counters.pending_events.load(Ordering::SeqCst), 0);
    });
}

/// An idle stream does not hold its last batch: a followed file gets 50 lines and then nothing
/// more, and within `commit_interval` the JSONL sink has flushed all 50 (its part file renamed
/// into place) and the state file names the last line — while the pipeline still runs, with
/// no later event or shutdown to trigger it.
#[test]
fn an_idle_streams_last_batch_is_flushed_and_committed_within_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("live.jsonl");
    let lines: Vec<String> = (0..50).map(|i| event_json(i) + "\n").collect();
    std::fs::write(&data, lines.concat()).unwrap();
    let last_line_start = lines[..49].iter().map(|l| l.len() as u64).sum::<u64>();
    let state = tmp.path().join("live.state");
    let log = tmp.path().join("log");
    runtime().block_on(async {
        let config = PipelineConfig {
            commit_interval: Duration::from_millis(500),
            ..Default::default()
        };
        let sink = JsonlSink::new(JsonlSinkOptions::new(&log)).unwrap();
        let pipeline = Pipeline::new(config, schema(), Arc::new(Affine), vec![Box::new(sink)]).unwrap();
        let (counters, stop) = (pipeline.counters(), pipeline.shutdown_handle());
        let options = FileSourceOptions {
            follow: true,
            state_file: Some(state.clone()),
        };
        let run = tokio::spawn(pipeline.run(Box::new(FileSource::open(&data, options).unwrap())));
        let committed_line = || {
            let text = std::fs::read_to_string(&state).ok()?;
            serde_json::from_str::<serde_json::Value>(&text).ok()?["last_committed_line"].as_u64()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while committed_line() != Some(last_line_start) {
            assert!(
                Instant::now() < deadline,
                "not committed while idle: state {:?}, {} records written, {} commits",
                committed_line(),
                counters.records_out.load(Ordering::SeqCst),
                counters.commits.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !run.is_finished(),
            "committed by the running pipeline, not at its end"
        );
        let flushed: usize = datacollection::read_lines(&log.join("local/default").join(MODEL_OUTPUTS))
            .unwrap()
            .iter()
            .map(|l| l.data.len())
            .sum();
        assert_eq!(flushed, 50, "every record flushed before the commit");
        stop.shutdown();
        run.await.unwrap().unwrap();
    });
}
