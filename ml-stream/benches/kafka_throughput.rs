//! Kafka throughput: events from a Kafka topic (librdkafka's mock cluster, hosted by this
//! process) → RF100 scoring → a Kafka topic, with 1 and 2 scoring processes in one consumer
//! group, against the file-source pipeline (JSONL file → RF100 → JSONL log) on the same
//! machine; then every record of the sink topic is checked: each event exactly once, its input
//! as sent, its output as the model answers outside the pipeline.
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
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ml_core::datasets::{
    CREDIT_CATEGORICAL_COLUMNS, CREDIT_TARGET_COLUMN, CreditDefaultConfig, credit_default,
};
use ml_core::{DataType, Estimator, Field, Frame, Model, ReadOptions, Schema};
use ml_stream::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use ml_stream::kafka::rdkafka::mocking::MockCluster;
use ml_stream::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use ml_stream::kafka::rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use ml_stream::kafka::{KafkaConfig, KafkaSink, KafkaSource};
use ml_stream::sink::{JsonlSink, JsonlSinkOptions};
use ml_stream::source::{FileSource, FileSourceOptions};
use ml_stream::{Pipeline, PipelineConfig};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

const PARTITIONS: i32 = 6;

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
        rows: n.min(ml_core::datasets::CREDIT_MAX_ROWS),
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

fn produce(bootstrap: &str, lines: &[String]) -> AnyResult<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for (i, line) in lines.iter().enumerate() {
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

/// Scores every event with `processes` workers; returns (events/s first to last record, group
/// formation seconds, records read back).
fn kafka_run(
    bootstrap: &str,
    lines: &[String],
    processes: usize,
) -> AnyResult<(f64, f64, Vec<serde_json::Value>)> {
    let n = lines.len();
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    // What each worker owns, from the source's "owns partitions [..]" lines on its stderr
    // (passed on to ours): the events are produced only once every worker owns a share, so
    // the run measures the group at its full size rather than the first worker alone.
    let owned = Arc::new((Mutex::new(vec![Vec::<u32>::new(); processes]), Condvar::new()));
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
                    lock.lock().unwrap_or_else(|e| e.into_inner())[w] = parts;
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
    {
        let (lock, changed) = &*owned;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let all: std::collections::BTreeSet<u32> = guard.iter().flatten().copied().collect();
            if guard.iter().all(|o| !o.is_empty()) && all.len() == PARTITIONS as usize {
                break;
            }
            let (g, timeout) = changed
                .wait_timeout(guard, Duration::from_secs(120))
                .unwrap_or_else(|e| e.into_inner());
            if timeout.timed_out() {
                return Err(format!("the group did not spread over the workers: {:?}", *g).into());
            }
            guard = g;
        }
    }
    let formation = started.elapsed().as_secs_f64();
    let t = Instant::now();
    produce(bootstrap, lines)?;
    println!("  produced {n} events in {:.1} s", t.elapsed().as_secs_f64());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "checker")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("scores", p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut records = Vec::with_capacity(n);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while records.len() < n {
        if Instant::now() > deadline {
            return Err(format!("only {} of {n} records after 30 minutes", records.len()).into());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            first.get_or_insert_with(Instant::now);
            records.push(serde_json::from_slice(m.payload().ok_or("empty message")?)?);
        }
    }
    let last = Instant::now();
    for w in &mut workers {
        drop(w.stdin.take());
    }
    for mut w in workers {
        if !w.wait()?.success() {
            return Err("a worker failed".into());
        }
    }
    let first = first.ok_or("no record")?;
    let rate = n as f64 / (last - first).as_secs_f64();
    Ok((rate, formation, records))
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

/// Every event exactly once, with its input as sent and the model's answer.
fn check(
    records: &[serde_json::Value],
    lines: &[String],
    expected: &dyn Fn(usize) -> serde_json::Value,
) -> AnyResult<()> {
    let mut seen = vec![false; lines.len()];
    for r in records {
        let partition = r["position"]["partition"].as_u64().ok_or("partition")? as usize;
        let offset = r["position"]["offset"].as_u64().ok_or("offset")? as usize;
        let i = offset * PARTITIONS as usize + partition;
        if i >= lines.len() || seen[i] {
            return Err(
                format!("event {i} (partition {partition}, offset {offset}) twice or unknown").into(),
            );
        }
        seen[i] = true;
        let sent: serde_json::Value = serde_json::from_str(&lines[i])?;
        if r["inputs"] != sent {
            return Err(format!("event {i}: inputs {} != sent {sent}", r["inputs"]).into());
        }
        let want = expected(i);
        if r["outputs"] != want {
            return Err(format!("event {i}: outputs {} != {want}", r["outputs"]).into());
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    if missing > 0 {
        return Err(format!("{missing} events missing").into());
    }
    Ok(())
}

fn main() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let mut n = 1_000_000usize;
    let mut processes = vec![1usize, 2];
    let mut verify = true;
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
            "--no-check" => verify = false,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let n = n - n % PARTITIONS as usize;
    let lines = events(n)?;
    let model = rf100()?;
    let dir = tempfile::tempdir()?;
    println!(
        "kafka throughput: {n} events, {PARTITIONS} partitions, RF100, {} cores (broker, producer and checker share them)",
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    let file_rate = file_run(&lines, dir.path(), model.clone())?;
    println!("file source → RF100 → JSONL log: {file_rate:>9.0} events/s (baseline)");

    let schema = Arc::new(credit_schema(false)?);
    let distinct = n.min(ml_core::datasets::CREDIT_MAX_ROWS);
    let rows: Vec<serde_json::Value> = lines[..distinct]
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    let frame = Frame::from_json_records(&rows, schema, &ReadOptions::default())?;
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
        let (rate, formation, records) = kafka_run(&bootstrap, &lines, k)?;
        println!(
            "kafka → RF100 → kafka, {k} process(es): {rate:>9.0} events/s = {:.2} × the file pipeline (group formed in {formation:.1} s)",
            rate / file_rate
        );
        if verify {
            let t = Instant::now();
            check(&records, &lines, &expected)?;
            println!(
                "  checked: all {n} events in the sink topic exactly once, inputs and outputs exact ({:.1} s)",
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
