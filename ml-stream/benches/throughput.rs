//! Stream throughput: a JSONL file source → a local scorer → the JSONL inference log, on every
//! core, reporting events/s and batch latency; then the log is read back and checked record by
//! record (every source event exactly once, inputs as sent, outputs as the model answers).
//!
//! ```text
//! cargo bench -p ml-stream --bench throughput                 # 1,000,000 events, both scorers
//! cargo bench -p ml-stream --bench throughput -- --events 200000 --scorer rf100
//! cargo bench -p ml-stream --bench throughput -- --queue-capacity 2   # batches read ahead (default 4)
//! ```
//!
//! Two scorers: `constant` (answers 0.5/0.5 without looking at the rows: what the pipeline
//! itself costs) and `rf100` (a 100-tree random forest of depth 8 trained on the synthetic credit data,
//! the RF100 of the project's benchmarks).
//! Batch latency is measured per batch from the moment its events were read to the moment the
//! JSONL sink has written it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ml_core::datasets::{
    CREDIT_CATEGORICAL_COLUMNS, CREDIT_TARGET_COLUMN, CreditDefaultConfig, credit_default,
};
use ml_core::{DataType, Estimator, Field, Frame, Model, Predictions, ReadOptions, Schema, Scorer};
use ml_stream::datacollection::{self, MODEL_INPUTS, MODEL_OUTPUTS};
use ml_stream::sink::{JsonlSink, JsonlSinkOptions};
use ml_stream::source::{FileSource, FileSourceOptions};
use ml_stream::{InferenceRecord, InferenceSink, Pipeline, PipelineConfig, ScoredBatch};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Options {
    events: usize,
    scorers: Vec<String>,
    batch_size: usize,
    queue_capacity: Option<usize>,
    check: bool,
}

fn options() -> AnyResult<Options> {
    let mut o = Options {
        events: 1_000_000,
        scorers: vec!["constant".into(), "rf100".into()],
        batch_size: 512,
        queue_capacity: None,
        check: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => o.events = args.next().ok_or("--events N")?.parse()?,
            "--scorer" => o.scorers = vec![args.next().ok_or("--scorer constant|rf100")?],
            "--batch-size" => o.batch_size = args.next().ok_or("--batch-size N")?.parse()?,
            "--queue-capacity" => o.queue_capacity = Some(args.next().ok_or("--queue-capacity N")?.parse()?),
            "--no-check" => o.check = false,
            "--bench" => {} // passed by `cargo bench`
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(o)
}

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

/// Writes `n` credit events as JSON lines (the format of `streamscore generate --out x.jsonl`).
fn write_events(path: &Path, n: usize) -> AnyResult<()> {
    let data = credit_default(&CreditDefaultConfig {
        rows: n.min(ml_core::datasets::CREDIT_MAX_ROWS),
        seed: 7,
        drift: 0.0,
    })?;
    let names = data.column_names();
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        let row = i % data.n_rows();
        w.write_all(b"{")?;
        for (c, name) in names.iter().enumerate() {
            let v = data.column(name).ok_or("column")?[row];
            write!(w, "{}\"{name}\": {v}", if c > 0 { ", " } else { "" })?;
        }
        w.write_all(b"}\n")?;
    }
    w.flush()?;
    Ok(())
}

/// Answers 0.5 / 0.5 for every row: what streaming costs without a model.
#[derive(Debug)]
struct Constant {
    labels: Arc<[String]>,
}

#[async_trait]
impl Scorer for Constant {
    async fn score(&self, frame: &Frame) -> ml_core::Result<Predictions> {
        Predictions::from_probabilities(
            self.labels.clone(),
            ndarray::Array2::from_elem((frame.n_rows(), 2), 0.5),
        )
    }
}

/// The model as a scorer, plus the model itself for the check.
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
        &[
            ("n_estimators".into(), "100".into()),
            ("max_depth".into(), "8".into()),
            ("seed".into(), "3".into()),
        ],
    )?;
    Ok(Arc::new(estimator.fit(&frame, CREDIT_TARGET_COLUMN)?))
}

/// The JSONL sink, timing each batch from read to written.
#[derive(Debug)]
struct Timed {
    inner: JsonlSink,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

#[async_trait]
impl InferenceSink for Timed {
    async fn write_batch(&mut self, records: &[InferenceRecord]) -> ml_stream::Result<()> {
        self.inner.write_batch(records).await
    }
    async fn write_scored(&mut self, batch: &ScoredBatch) -> ml_stream::Result<()> {
        self.inner.write_scored(batch).await?;
        let took = batch.info().read_at.elapsed();
        self.latencies
            .lock()
            .map_err(|_| ml_stream::Error::Internal("lock".into()))?
            .push(took);
        Ok(())
    }
    async fn flush(&mut self) -> ml_stream::Result<()> {
        self.inner.flush().await
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// CPU time (user + system) this process has used so far, in seconds, where the system says
/// (Linux: `/proc/self/stat`, in USER_HZ ticks, 100 per second there).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, hence the last ')'): state is
    // field 3, utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The 1-minute load average, where the system says (the machine is shared: figures depend
/// on it).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Run {
    events_per_s: f64,
    /// CPU time of the whole process per event, in microseconds.
    cpu_us_per_event: Option<f64>,
    /// CPU time over wall time: how many cores the pipeline kept busy on average.
    cores_busy: Option<f64>,
    p50: Duration,
    p99: Duration,
    max: Duration,
    batches: usize,
}

fn run(
    events: &Path,
    out: &Path,
    schema: Arc<Schema>,
    scorer: Arc<dyn Scorer>,
    batch_size: usize,
    queue_capacity: Option<usize>,
) -> AnyResult<Run> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let sink = Timed {
            inner: JsonlSink::new(JsonlSinkOptions::new(out))?,
            latencies: latencies.clone(),
        };
        let mut config = PipelineConfig {
            batch_size,
            model_name: "bench".into(),
            ..Default::default()
        };
        if let Some(q) = queue_capacity {
            config.queue_capacity = q;
        }
        let pipeline = Pipeline::new(config, schema, scorer, vec![Box::new(sink)])?;
        let source = FileSource::open(events, FileSourceOptions::default())?;
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let report = pipeline.run(Box::new(source)).await?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        if report.dead_letters != 0 {
            return Err(format!("{} dead letters in a clean run", report.dead_letters).into());
        }
        let mut l = latencies.lock().map_err(|_| "lock")?.clone();
        l.sort();
        Ok(Run {
            events_per_s: report.records_out as f64 / secs,
            cpu_us_per_event: cpu.map(|c| c * 1e6 / report.records_out.max(1) as f64),
            cores_busy: cpu.map(|c| c / secs),
            p50: percentile(&l, 0.50),
            p99: percentile(&l, 0.99),
            max: l.last().copied().unwrap_or_default(),
            batches: l.len(),
        })
    })
}

/// The finished `.jsonl` files under `dir`, in path order.
fn log_files(dir: &Path) -> AnyResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Calls `each` with every data-collection line of a collection, one line in memory at a time.
fn for_each_line(
    dir: &Path,
    mut each: impl FnMut(datacollection::CollectedLine) -> AnyResult<()>,
) -> AnyResult<()> {
    use std::io::BufRead;
    for file in log_files(dir)? {
        for line in std::io::BufReader::new(std::fs::File::open(&file)?).lines() {
            each(serde_json::from_str(&line?)?)?;
        }
    }
    Ok(())
}

/// Reads the log back: every source line exactly once (by byte offset), inputs equal to the
/// line, outputs equal to `expected(row)`, inputs and outputs joined by correlation id.
fn check(events: &Path, out: &Path, expected: &dyn Fn(usize) -> serde_json::Value) -> AnyResult<()> {
    let text = std::fs::read_to_string(events)?;
    let mut by_offset = HashMap::new();
    let mut lines = Vec::new();
    let mut offset = 0u64;
    for (row, line) in text.split_inclusive('\n').enumerate() {
        by_offset.insert(offset, row);
        lines.push(line.trim_end());
        offset += line.len() as u64;
    }
    let root = out.join("local").join("default");
    // Outputs first, keyed by (correlation id, row within the batch).
    let mut answers: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for_each_line(&root.join(MODEL_OUTPUTS), |line| {
        let rows = line.data.into_iter().map(serde_json::Value::Object).collect();
        answers.insert(line.correlationid, rows);
        Ok(())
    })?;
    let mut seen = vec![false; lines.len()];
    for_each_line(&root.join(MODEL_INPUTS), |line| {
        let outputs = answers
            .remove(&line.correlationid)
            .ok_or("an inputs line without its outputs line")?;
        if line.data.len() != line.positions.len() || outputs.len() != line.data.len() {
            return Err("rows, positions and outputs of a batch disagree".into());
        }
        for ((input, position), output) in line.data.iter().zip(&line.positions).zip(&outputs) {
            let row = *by_offset
                .get(&position.offset)
                .ok_or("an offset that is no line start")?;
            if std::mem::replace(&mut seen[row], true) {
                return Err(format!("row {row} written twice").into());
            }
            let sent: serde_json::Map<String, serde_json::Value> = serde_json::from_str(lines[row])?;
            if &sent != input {
                return Err(format!("row {row}: input {input:?} is not the event sent").into());
            }
            let want = expected(row);
            if output != &want {
                return Err(format!("row {row}: output {output}, expected {want}").into());
            }
        }
        Ok(())
    })?;
    if !answers.is_empty() {
        return Err(format!("{} outputs lines without inputs", answers.len()).into());
    }
    let missing = seen.iter().filter(|s| !**s).count();
    if missing > 0 {
        return Err(format!("{missing} events missing from the log").into());
    }
    Ok(())
}

fn main() -> AnyResult<()> {
    let o = options()?;
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events.jsonl");
    write_events(&events, o.events)?;
    let schema = Arc::new(credit_schema(false)?);
    println!(
        "stream throughput: {} events, batch {}, {} cores",
        o.events,
        o.batch_size,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for name in &o.scorers {
        let out: PathBuf = dir.path().join(format!("log-{name}"));
        let labels: Arc<[String]> = vec!["0".to_string(), "1".to_string()].into();
        let (scorer, model): (Arc<dyn Scorer>, Option<Arc<dyn Model>>) = match name.as_str() {
            "constant" => (Arc::new(Constant { labels }), None),
            "rf100" => {
                let model = rf100()?;
                (Arc::new(ml_core::LocalScorer::new(model.clone())), Some(model))
            }
            other => return Err(format!("unknown scorer {other}").into()),
        };
        let load = load_average();
        let r = run(
            &events,
            &out,
            schema.clone(),
            scorer,
            o.batch_size,
            o.queue_capacity,
        )?;
        let or_dash = |x: Option<f64>, digits: usize| x.map_or("-".to_string(), |x| format!("{x:.digits$}"));
        println!(
            "{name:>9}: {:>9.0} events/s   batch latency p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} batches)",
            r.events_per_s,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3,
            r.batches
        );
        println!(
            "{name:>9}: CPU {} µs/event, {} cores busy on average, load average {} before the run",
            or_dash(r.cpu_us_per_event, 2),
            or_dash(r.cores_busy, 2),
            or_dash(load, 2),
        );
        if o.check {
            let started = Instant::now();
            match &model {
                None => check(
                    &events,
                    &out,
                    &|_| serde_json::json!({"label": "0", "probability_0": 0.5, "probability_1": 0.5}),
                )?,
                Some(model) => {
                    // The model's answers for every distinct row, computed in one batch
                    // outside the pipeline.
                    let text = std::fs::read_to_string(&events)?;
                    let distinct = o.events.min(ml_core::datasets::CREDIT_MAX_ROWS);
                    let rows: Vec<serde_json::Value> = text
                        .lines()
                        .take(distinct)
                        .map(serde_json::from_str)
                        .collect::<Result<_, _>>()?;
                    let frame = Frame::from_json_records(&rows, schema.clone(), &ReadOptions::default())?;
                    let p = model.predict(&frame)?;
                    let probs = p.probabilities().ok_or("no probabilities")?;
                    check(&events, &out, &|row| {
                        let r = row % distinct;
                        serde_json::json!({
                            "label": p.label(r),
                            "probability_0": probs[[r, 0]],
                            "probability_1": probs[[r, 1]],
                        })
                    })?
                }
            }
            println!(
                "{name:>9}: checked: all {} events in the log exactly once, inputs and outputs exact ({:.1} s)",
                o.events,
                started.elapsed().as_secs_f64()
            );
        }
        std::fs::remove_dir_all(&out)?;
    }
    Ok(())
}
