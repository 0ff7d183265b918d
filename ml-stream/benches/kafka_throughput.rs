//! Kafka throughput: events from a Kafka topic (librdkafka's mock cluster, hosted by this
//! process) → RF100 scoring → a Kafka topic, with 1 and 2 scoring processes in one consumer
//! group, against the file-source pipeline (JSONL file → RF100 → JSONL log) on the same
//! machine. Every record of the sink topic is checked as it arrives: each event exactly once
//! (repeats are allowed only if the group rebalanced during the run), its input as sent, its
//! output as the model answers outside the pipeline.
//!
//! librdkafka's mock broker keeps about 5 MB per partition and drops the oldest records beyond
//! that, so nothing can be read back from the beginning after a large run: the checker reads
//! the sink topic while the workers write it, and the producer never runs more than a window
//! (`--window`, default 18,000 events) ahead of the events the checker has seen.
//!
//! ```text
//! cargo bench -p ml-stream --features kafka --bench kafka_throughput                      # 1,000,000 events
//! cargo bench -p ml-stream --features kafka --bench kafka_throughput -- --events 200000 --processes 1
//! ```
//!
//! The broker, the producer of the events and the checking consumer live in this process; the
//! scoring processes are copies of this binary (`--worker`). Throughput is counted from the
//! first record in the sink topic to the last (group formation excluded, printed apart).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ml_core::datasets::{
    CREDIT_CATEGORICAL_COLUMNS, CREDIT_TARGET_COLUMN, CreditDefaultConfig, credit_default,
};
use ml_core::{DataType, Estimator, Field, Frame, Model, ReadOptions, Schema};
use ml_stream::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use ml_stream::kafka::rdkafka::error::RDKafkaErrorCode;
use ml_stream::kafka::rdkafka::mocking::MockCluster;
use ml_stream::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use ml_stream::kafka::rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use ml_stream::kafka::{KafkaConfig, KafkaSink, KafkaSource};
use ml_stream::sink::{JsonlSink, JsonlSinkOptions};
use ml_stream::source::{FileSource, FileSourceOptions};
use ml_stream::{Pipeline, PipelineConfig};

type AnyError = Box<dyn std::error::Error>;
type AnyResult<T> = Result<T, AnyError>;

const PARTITIONS: i32 = 6;

/// Distinct rows of synthetic data; event `i` is row `i % DISTINCT_ROWS` (the model's answers
/// for them are computed once, outside the pipeline, to check every record).
const DISTINCT_ROWS: usize = 50_000;

/// How many events the producer may run ahead of the checker, by default: 3,000 per
/// partition, about 2.2 MB of sink records, well under the mock broker's 5 MB per partition,
/// leaving room for the records a rebalance repeats (they count against the 5 MB but not
/// against the window). At 6,000 per partition a loaded run that rebalanced lost unread
/// records to the broker's limit.
const WINDOW: usize = 18_000;

fn credit_schema(with_target: bool) -> AnyResult<Schema> {
    let vocabulary = |name: &str| -> Vec<String> {
        let range = match name {
            "SEX" => 1..=2,
            "EDUCATION" => 0..=6,
            "MARRIAGE" => 0..=3,
            _ => -2..=8,
        };
        range.map(|c: i64| c.to_string()).collect()
    };
    let fields = ml_core::datasets::CREDIT_COLUMNS
        .iter()
        .filter(|&&n| with_target || n != CREDIT_TARGET_COLUMN)
        .map(|&name| {
            let dtype = if CREDIT_CATEGORICAL_COLUMNS.contains(&name) {
                DataType::categorical(vocabulary(name))?
            } else {
                DataType::Int
            };
            Ok(Field::new(name, dtype))
        })
        .collect::<AnyResult<Vec<_>>>()?;
    Ok(Schema::new(fields)?)
}

/// `n` credit events as JSON lines (row `i % CREDIT_MAX_ROWS` of the synthetic data).
fn events(n: usize) -> AnyResult<Vec<String>> {
    let data = credit_default(&CreditDefaultConfig {
        rows: n.min(DISTINCT_ROWS),
        seed: 7,
        drift: 0.0,
    })?;
    let names: Vec<String> = data
        .column_names()
        .iter()
        .filter(|n| **n != CREDIT_TARGET_COLUMN)
        .map(|n| n.to_string())
        .collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let row = i % data.n_rows();
        let mut line = String::from("{");
        for (c, name) in names.iter().enumerate() {
            let v = data.column(name).ok_or("column")?[row];
            line.push_str(&format!("{}\"{name}\": {v}", if c > 0 { ", " } else { "" }));
        }
        line.push('}');
        out.push(line);
    }
    Ok(out)
}

/// The 100-tree forest of the stream benchmark (deterministic: same seed, same trees).
fn rf100() -> AnyResult<Arc<dyn Model>> {
    let data = credit_default(&CreditDefaultConfig {
        rows: 20_000,
        seed: 1,
        drift: 0.0,
    })?;
    let mut csv = Vec::new();
    data.write_csv(&mut csv)?;
    let frame = Frame::from_csv(csv.as_slice(), credit_schema(true)?, &ReadOptions::default())?;
    let estimator = Estimator::from_name(
        "random_forest_classifier",
        &[("n_estimators".into(), "100".into()), ("seed".into(), "3".into())],
    )?;
    Ok(Arc::new(estimator.fit(&frame, CREDIT_TARGET_COLUMN)?))
}

/// A scoring process: joins group `bench` on `events`, writes to `scores`, says `ready`, and
/// stops gracefully when its standard input closes.
fn worker(bootstrap: &str) -> AnyResult<()> {
    let model = rf100()?;
    let schema = Arc::new(credit_schema(false)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut source = KafkaConfig::new(bootstrap, "events");
        source.group = Some("bench".into());
        source
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300");
        let source = KafkaSource::new(&source)?;
        let sink = KafkaSink::new(&KafkaConfig::new(bootstrap, "scores"))?;
        let config = PipelineConfig {
            model_name: "bench".into(),
            ..Default::default()
        };
        let pipeline = Pipeline::new(
            config,
            schema,
            Arc::new(ml_core::LocalScorer::new(model)),
            vec![Box::new(sink)],
        )?;
        let stop = pipeline.shutdown_handle();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            stop.shutdown();
        });
        println!("ready");
        std::io::stdout().flush()?;
        let report = pipeline.run(Box::new(source)).await?;
        eprintln!("worker: {} events scored", report.records_out);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// What the checker found in the sink topic.
struct Checked {
    /// Events seen at least once.
    distinct: usize,
    /// Records that repeat an event already seen (allowed only across a rebalance).
    repeats: usize,
    /// Bytes of the records read (their payloads).
    bytes: usize,
    /// When the first and the last record arrived.
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Reads the sink topic while the workers write it and checks every record at once (input as
/// sent, output as the model answers), counting distinct events in `seen_count` for the
/// producer's window. librdkafka's mock broker keeps about 5 MB per partition and drops the
/// oldest records beyond that, so the sink topic cannot be read from the beginning after the
/// run: the checker keeps up with the workers instead, and the producer never runs more than
/// the window ahead of it.
fn checker(
    consumer: &BaseConsumer,
    lines: &[String],
    expected: &(dyn Fn(usize) -> serde_json::Value + Sync),
    seen_count: &AtomicUsize,
    stop: &AtomicBool,
) -> AnyResult<Checked> {
    let n = lines.len();
    let mut seen = vec![false; n];
    let mut out = Checked {
        distinct: 0,
        repeats: 0,
        bytes: 0,
        first: None,
        last: None,
    };
    let mut idle_since = Instant::now();
    while out.distinct < n {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            if idle_since.elapsed() > Duration::from_secs(300) {
                return Err(format!("no record for 5 minutes: {} of {n} events seen", out.distinct).into());
            }
            continue;
        };
        idle_since = Instant::now();
        // The checker's consumer resets no offset (`auto.offset.reset=error`): records the
        // broker dropped before they were read show up here instead of as a silent skip.
        let m = m.map_err(|e| {
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
                format!(
                    "the mock broker dropped sink records before the checker read them ({e}): its 5 MB per \
                     partition was exceeded (repeats after a rebalance count too); run with a smaller --window"
                )
            } else {
                format!("reading the sink topic: {e}")
            }
        })?;
        let now = Instant::now();
        out.first.get_or_insert(now);
        out.last = Some(now);
        let payload = m.payload().ok_or("empty message")?;
        out.bytes += payload.len();
        let r: serde_json::Value = serde_json::from_slice(payload)?;
        let partition = r["position"]["partition"].as_u64().ok_or("partition")? as usize;
        let offset = r["position"]["offset"].as_u64().ok_or("offset")? as usize;
        let i = offset * PARTITIONS as usize + partition;
        if i >= n {
            return Err(format!("unknown event (partition {partition}, offset {offset})").into());
        }
        let sent: serde_json::Value = serde_json::from_str(&lines[i])?;
        if r["inputs"] != sent {
            return Err(format!("event {i}: inputs {} != sent {sent}", r["inputs"]).into());
        }
        let want = expected(i);
        if r["outputs"] != want {
            return Err(format!("event {i}: outputs {} != {want}", r["outputs"]).into());
        }
        if seen[i] {
            out.repeats += 1;
        } else {
            seen[i] = true;
            out.distinct += 1;
            seen_count.store(out.distinct, Ordering::SeqCst);
        }
    }
    Ok(out)
}

/// Produces the events round-robin over the partitions, never more than `window` ahead of the
/// events the checker has seen (so neither topic outgrows what the mock broker keeps).
fn produce(
    bootstrap: &str,
    lines: &[String],
    window: usize,
    seen: &AtomicUsize,
    stop: &AtomicBool,
) -> AnyResult<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for (i, line) in lines.iter().enumerate() {
        while i >= seen.load(Ordering::SeqCst) + window {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            producer.poll(Duration::from_millis(1));
        }
        let mut record = BaseRecord::<(), _>::to("events")
            .payload(line)
            .partition(i as i32 % PARTITIONS);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// What one Kafka run measured.
struct KafkaRun {
    /// Events per second, first record in the sink topic to the last.
    rate: f64,
    /// Seconds from the first worker started to every worker owning partitions.
    formation: f64,
    checked: Checked,
    /// A worker's assignment changed after the group formed (repeats are then allowed).
    rebalanced: bool,
}

/// Scores every event with `processes` workers while the checker reads the sink topic.
fn kafka_run(
    bootstrap: &str,
    lines: &[String],
    processes: usize,
    window: usize,
    expected: &(dyn Fn(usize) -> serde_json::Value + Sync),
) -> AnyResult<KafkaRun> {
    let n = lines.len();
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    // What each worker owns, from the source's "owns partitions [..]" lines on its stderr
    // (passed on to ours): the events are produced only once every worker owns a share, so
    // the run measures the group at its full size rather than the first worker alone. Changes
    // counted after that mean a rebalance during the run.
    let owned = Arc::new((
        Mutex::new((vec![Vec::<u32>::new(); processes], 0usize)),
        Condvar::new(),
    ));
    for w in 0..processes {
        let mut child = Command::new(&exe)
            .args(["--worker", bootstrap])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("stderr")?;
        let owned = owned.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[worker {w}] {line}");
                if let Some((_, list)) = line.split_once("owns partitions [") {
                    let parts = list
                        .trim_end_matches(']')
                        .split(", ")
                        .filter_map(|p| p.parse().ok())
                        .collect();
                    let (lock, changed) = &*owned;
                    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                    guard.0[w] = parts;
                    guard.1 += 1;
                    changed.notify_all();
                }
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("worker said {line:?}").into());
        }
        workers.push(child);
    }
    let started = Instant::now();
    let changes_at_formation = {
        let (lock, changed) = &*owned;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // Every worker owns a share, the shares cover every partition and none overlap (a
            // worker's line saying it gave some back may still be on its way).
            let all: std::collections::BTreeSet<u32> = guard.0.iter().flatten().copied().collect();
            let owned: usize = guard.0.iter().map(Vec::len).sum();
            if guard.0.iter().all(|o| !o.is_empty())
                && all.len() == PARTITIONS as usize
                && owned == PARTITIONS as usize
            {
                break guard.1;
            }
            let (g, timeout) = changed
                .wait_timeout(guard, Duration::from_secs(120))
                .unwrap_or_else(|e| e.into_inner());
            if timeout.timed_out() {
                return Err(format!("the group did not spread over the workers: {:?}", g.0).into());
            }
            guard = g;
        }
    };
    let formation = started.elapsed().as_secs_f64();
    // The checker is assigned to the (empty) sink topic before any event is produced.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "checker")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("scores", p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let seen = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let checked = std::thread::scope(|scope| {
        let checker = scope.spawn(|| {
            // (Errors cross the thread as text: the boxed error is not `Send`.)
            let result = checker(&consumer, lines, expected, &seen, &stop).map_err(|e| e.to_string());
            // A checker that fails releases the producer.
            stop.store(true, Ordering::SeqCst);
            result
        });
        let produced = produce(bootstrap, lines, window, &seen, &stop);
        if produced.is_ok() {
            println!("  produced {n} events in {:.1} s", t.elapsed().as_secs_f64());
        } else {
            stop.store(true, Ordering::SeqCst);
        }
        let checked = checker.join().map_err(|_| "the checker panicked")?;
        produced?;
        checked.map_err(AnyError::from)
    })?;
    let rebalanced = owned.0.lock().unwrap_or_else(|e| e.into_inner()).1 > changes_at_formation;
    for w in &mut workers {
        drop(w.stdin.take());
    }
    for mut w in workers {
        if !w.wait()?.success() {
            return Err("a worker failed".into());
        }
    }
    let (first, last) = checked.first.zip(checked.last).ok_or("no record")?;
    if checked.distinct < n {
        return Err(format!("only {} of {n} events in the sink topic", checked.distinct).into());
    }
    let rate = n as f64 / (last - first).as_secs_f64();
    Ok(KafkaRun {
        rate,
        formation,
        checked,
        rebalanced,
    })
}

/// File source → RF100 → JSONL log, in this process: the baseline.
fn file_run(lines: &[String], dir: &Path, model: Arc<dyn Model>) -> AnyResult<f64> {
    let events = dir.join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let sink = JsonlSink::new(JsonlSinkOptions::new(dir.join("log")))?;
        let pipeline = Pipeline::new(
            PipelineConfig::default(),
            Arc::new(credit_schema(false)?),
            Arc::new(ml_core::LocalScorer::new(model)),
            vec![Box::new(sink)],
        )?;
        let source = FileSource::open(&events, FileSourceOptions::default())?;
        let started = Instant::now();
        let report = pipeline.run(Box::new(source)).await?;
        Ok(report.records_out as f64 / started.elapsed().as_secs_f64())
    })
}

fn main() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let mut n = 1_000_000usize;
    let mut processes = vec![1usize, 2];
    let mut window = WINDOW;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--worker" => return worker(&args.next().ok_or("--worker BOOTSTRAP")?),
            "--events" => n = args.next().ok_or("--events N")?.parse()?,
            "--processes" => {
                processes = args
                    .next()
                    .ok_or("--processes 1,2")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--window" => window = args.next().ok_or("--window EVENTS")?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let n = n - n % PARTITIONS as usize;
    let lines = events(n)?;
    let model = rf100()?;
    let dir = tempfile::tempdir()?;
    println!(
        "kafka throughput: {n} events, {PARTITIONS} partitions, RF100, {} cores (broker, producer and checker share them), window {window} events",
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    let file_rate = file_run(&lines, dir.path(), model.clone())?;
    println!("file source → RF100 → JSONL log: {file_rate:>9.0} events/s (baseline)");
    drop(dir);

    // The model's answers, computed outside the pipeline, for the distinct rows.
    let schema = Arc::new(credit_schema(false)?);
    let distinct = n.min(DISTINCT_ROWS);
    let rows: Vec<serde_json::Value> = lines[..distinct]
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    let frame = Frame::from_json_records(&rows, schema, &ReadOptions::default())?;
    drop(rows);
    let p = model.predict(&frame)?;
    let probs = p.probabilities().ok_or("no probabilities")?;
    let expected = |i: usize| {
        let r = i % distinct;
        serde_json::json!({"label": p.label(r), "probability_0": probs[[r, 0]], "probability_1": probs[[r, 1]]})
    };

    for &k in &processes {
        // A fresh cluster per run: the topics start empty.
        let cluster = MockCluster::new(1)?;
        cluster.create_topic("events", PARTITIONS, 1)?;
        cluster.create_topic("scores", PARTITIONS, 1)?;
        let bootstrap = cluster.bootstrap_servers();
        let run = kafka_run(&bootstrap, &lines, k, window, &expected)?;
        println!(
            "kafka → RF100 → kafka, {k} process(es): {:>9.0} events/s = {:.2} × the file pipeline (group formed in {:.1} s)",
            run.rate,
            run.rate / file_rate,
            run.formation
        );
        let Checked {
            distinct: seen,
            repeats,
            bytes,
            ..
        } = run.checked;
        if repeats > 0 && !run.rebalanced {
            return Err(format!("{repeats} events scored twice in a run without a rebalance").into());
        }
        println!(
            "  checked: all {seen} events in the sink topic, inputs and outputs exact; {repeats} repeats{}; \
             {:.0} bytes per record, so about {:.1} MB of unread records per partition at most",
            if run.rebalanced {
                " (a rebalance happened during the run)"
            } else {
                ""
            },
            bytes as f64 / (seen + repeats) as f64,
            bytes as f64 / (seen + repeats) as f64 * window as f64 / PARTITIONS as f64 / 1e6
        );
    }
    Ok(())
}
