//! The loop's own pipeline: events from any source spec (`file:`, `dir:`, `kafka://`,
//! `eventhubs://`, `blob://`, a scheme of one's own), labels from another, scored records to
//! the `[stream]` sinks, events that cannot be scored to the dead letter, and the source's
//! position committed only after every sink has flushed the records before it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ml_stream::{
    Checkpoint, DeadLetter, Event, InferenceRecord, InferenceSink, SourcePosition, SpecRegistry, StreamSource,
};
use serde_json::{Value, json};

use super::labels::Label;
use super::orchestrator::{Orchestrator, ScoringEvent};
use crate::config::Config;

/// Sources and sinks of a loop run.
#[derive(Debug)]
pub struct LoopIo {
    /// The events to score.
    pub events: Box<dyn StreamSource>,
    /// Label records `{correlationid, label, time}`, if any.
    pub labels: Option<Box<dyn StreamSource>>,
    /// Where the scored records go (inference logs).
    pub sinks: Vec<Box<dyn InferenceSink>>,
    /// Where events that cannot be scored go, with the reason.
    pub dead_letter: Option<Box<dyn InferenceSink>>,
}

impl LoopIo {
    /// The config's `[stream] source`, `sinks`, `dead_letter` and `[labels] source`, built by
    /// `specs` (use [`SpecRegistry::default`] plus your own schemes).
    pub fn from_config(config: &Config, specs: &SpecRegistry) -> anyhow::Result<LoopIo> {
        let stream = config.stream.clone().unwrap_or_default();
        let source = stream
            .source
            .ok_or_else(|| anyhow::anyhow!("[stream] source is required"))?;
        let events = specs
            .source(&source)
            .map_err(|e| anyhow::anyhow!("[stream] source: {e}"))?;
        let labels = match config.labels.as_ref().and_then(|l| l.source.clone()) {
            Some(spec) => Some(
                specs
                    .source(&spec)
                    .map_err(|e| anyhow::anyhow!("[labels] source: {e}"))?,
            ),
            None => None,
        };
        let sinks = stream
            .sinks
            .iter()
            .map(|s| specs.sink(s).map_err(|e| anyhow::anyhow!("[stream] sinks: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dead_letter = match &stream.dead_letter {
            Some(s) => Some(
                specs
                    .sink(s)
                    .map_err(|e| anyhow::anyhow!("[stream] dead_letter: {e}"))?,
            ),
            None => None,
        };
        Ok(LoopIo {
            events,
            labels,
            sinks,
            dead_letter,
        })
    }
}

/// How long a feed runs and how it batches.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// Most events per scoring batch.
    pub batch: usize,
    /// Longest wait to fill a batch.
    pub max_wait: Duration,
    /// Stop after this many events read (`None`: until the source ends).
    pub max_events: Option<u64>,
    /// Stop when the event source gave nothing for this long (`None`: wait for ever on an
    /// unbounded source). After the events, labels are read until no prediction waits for
    /// one, their source ends, or it gives nothing for this long (2 s when `None`).
    pub idle: Option<Duration>,
    /// Model name written in the inference records.
    pub model_name: String,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            batch: 500,
            max_wait: Duration::from_millis(200),
            max_events: None,
            idle: None,
            model_name: "credit".into(),
        }
    }
}

/// What a feed did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FeedReport {
    /// Events read from the source.
    pub events_read: u64,
    /// Records written to the sinks (each sink got all of them).
    pub records_written: u64,
    /// Events sent to the dead letter (not JSON objects, or not fitting the schema).
    pub dead_letters: u64,
    /// Label records read.
    pub labels_read: u64,
    /// Label records that were not `{correlationid, label, time}`.
    pub bad_labels: u64,
}

/// Labels read but not yet due, in time order.
#[derive(Debug, Default)]
struct LabelBuffer {
    due: VecDeque<Label>,
}

impl LabelBuffer {
    fn push(&mut self, label: Label) {
        let at = self.due.partition_point(|l| l.time_ms <= label.time_ms);
        self.due.insert(at, label);
    }

    /// The labels with a time at or before `now_ms`.
    fn take_until(&mut self, now_ms: i64) -> Vec<Label> {
        let n = self.due.partition_point(|l| l.time_ms <= now_ms);
        self.due.drain(..n).collect()
    }
}

/// Runs the loop on `io` until the events end (or `options` stops it): for each batch, the
/// labels due by the batch's first event time are joined first, then the batch is scored by
/// `orchestrator`, written to every sink and flushed, and only then is the source committed.
/// Returns what it did; call [`Orchestrator::finish`] afterwards.
pub async fn feed(
    orchestrator: &mut Orchestrator,
    io: &mut LoopIo,
    options: &FeedOptions,
) -> anyhow::Result<FeedReport> {
    let mut report = FeedReport::default();
    let mut labels = LabelBuffer::default();
    let mut label_checkpoint = Checkpoint::default();
    let mut idle_since = Instant::now();
    let batch = options.batch.max(1);
    loop {
        if options.max_events.is_some_and(|m| report.events_read >= m) || io.events.is_exhausted() {
            break;
        }
        let want = options
            .max_events
            .map_or(batch, |m| batch.min((m - report.events_read) as usize));
        let read = io
            .events
            .next_batch(want, Instant::now() + options.max_wait)
            .await
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", io.events.describe()))?;
        if read.is_empty() {
            if options.idle.is_some_and(|idle| idle_since.elapsed() >= idle) {
                break;
            }
            read_labels(
                io,
                &mut labels,
                &mut label_checkpoint,
                &mut report,
                i64::MAX,
                false,
            )
            .await?;
            continue;
        }
        idle_since = Instant::now();
        report.events_read += read.len() as u64;
        let (events, mut dead) = decode(&read);
        let now_ms = events.first().map_or(i64::MIN, |(_, e)| e.time_ms);
        read_labels(io, &mut labels, &mut label_checkpoint, &mut report, now_ms, false).await?;
        orchestrator.labels(&labels.take_until(now_ms));
        let scoring: Vec<ScoringEvent> = events.iter().map(|(_, e)| e.clone()).collect();
        let mut records = Vec::with_capacity(scoring.len());
        match orchestrator.score_checked(&scoring) {
            Ok((scored, refused)) => {
                let labels_out = orchestrator
                    .state()
                    .model()
                    .map(|m| m.model.output().labels().to_vec())
                    .unwrap_or_default();
                let mut refused = refused.into_iter().peekable();
                let mut scores = scored.scores.iter();
                for (i, (event, e)) in events.iter().enumerate() {
                    if refused.peek().is_some_and(|(r, _)| *r == i) {
                        let (_, reason) = refused.next().unwrap_or_default();
                        dead.push(dead_letter(event, reason));
                        continue;
                    }
                    let Some(&score) = scores.next() else {
                        anyhow::bail!("the loop returned fewer scores than events accepted");
                    };
                    records.push(record(
                        event,
                        e,
                        score,
                        &labels_out,
                        scored.version,
                        &options.model_name,
                    ));
                }
            }
            Err(e) => {
                for (event, _) in &events {
                    dead.push(dead_letter(event, format!("scoring failed: {e}")));
                }
            }
        }
        for sink in io.sinks.iter_mut() {
            sink.write_batch(&records).await?;
            sink.flush().await?;
        }
        report.records_written += records.len() as u64;
        if !dead.is_empty() {
            report.dead_letters += dead.len() as u64;
            match io.dead_letter.as_mut() {
                Some(sink) => {
                    sink.write_dead_letters(&dead).await?;
                    sink.flush().await?;
                }
                None => {
                    for d in &dead {
                        tracing::warn!(
                            "event at {}:{} refused: {}",
                            d.position.partition,
                            d.position.offset,
                            d.reason
                        );
                    }
                }
            }
        }
        // Everything of this batch is in every sink: its positions may be committed.
        let mut checkpoint = Checkpoint::default();
        for e in &read {
            checkpoint.advance(e.partition, e.offset);
        }
        io.events.commit(&checkpoint).await?;
    }
    // The labels still to come for the last predictions: until none waits for one, the label
    // source ends, or it stays quiet for the idle time.
    read_labels(
        io,
        &mut labels,
        &mut label_checkpoint,
        &mut report,
        i64::MAX,
        true,
    )
    .await?;
    orchestrator.labels(&labels.take_until(i64::MAX));
    let drain_idle = options.idle.unwrap_or(Duration::from_secs(2));
    if let Some(source) = io.labels.as_mut() {
        let mut quiet_since = Instant::now();
        while orchestrator.awaiting_labels() > 0
            && !source.is_exhausted()
            && quiet_since.elapsed() < drain_idle
        {
            let got = source
                .next_batch(4_096, Instant::now() + Duration::from_millis(100))
                .await?;
            if !got.is_empty() {
                quiet_since = Instant::now();
            }
            take_labels(&got, &mut labels, &mut label_checkpoint, &mut report);
            orchestrator.labels(&labels.take_until(i64::MAX));
        }
    }
    if let Some(source) = io.labels.as_mut()
        && !label_checkpoint.next_offsets.is_empty()
    {
        source.commit(&label_checkpoint).await?;
    }
    for sink in io.sinks.iter_mut() {
        sink.close().await?;
    }
    if let Some(sink) = io.dead_letter.as_mut() {
        sink.close().await?;
    }
    Ok(report)
}

/// Reads the labels available now, until the ones read reach `now_ms` (labels are read ahead
/// of the events so a prediction does not wait past its delay window for a label already
/// sent). With `all`, reads until the source has nothing more right now.
async fn read_labels(
    io: &mut LoopIo,
    buffer: &mut LabelBuffer,
    checkpoint: &mut Checkpoint,
    report: &mut FeedReport,
    now_ms: i64,
    all: bool,
) -> anyhow::Result<()> {
    let Some(source) = io.labels.as_mut() else {
        return Ok(());
    };
    while !source.is_exhausted() && (all || buffer.due.back().is_none_or(|l| l.time_ms < now_ms)) {
        let got = source
            .next_batch(4_096, Instant::now())
            .await
            .map_err(|e| anyhow::anyhow!("reading labels from {}: {e}", source.describe()))?;
        if got.is_empty() {
            break;
        }
        take_labels(&got, buffer, checkpoint, report);
    }
    Ok(())
}

fn take_labels(
    got: &[Event],
    buffer: &mut LabelBuffer,
    checkpoint: &mut Checkpoint,
    report: &mut FeedReport,
) {
    for e in got {
        checkpoint.advance(e.partition, e.offset);
        report.labels_read += 1;
        match serde_json::from_slice::<Value>(&e.payload)
            .map_err(anyhow::Error::from)
            .and_then(|v| Label::from_json(&v))
        {
            Ok(l) => buffer.push(l),
            Err(err) => {
                report.bad_labels += 1;
                tracing::warn!("label at {}:{} skipped: {err}", e.partition, e.offset);
            }
        }
    }
}

/// Events as the loop scores them: a JSON object with the features, `correlationid` (else the
/// message key, else `PARTITION-OFFSET`) and `time` in ms (else the transport's timestamp,
/// else the offset). Anything else is a dead letter.
fn decode(read: &[Event]) -> (Vec<(&Event, ScoringEvent)>, Vec<DeadLetter>) {
    let mut events = Vec::with_capacity(read.len());
    let mut dead = Vec::new();
    for e in read {
        match serde_json::from_slice::<Value>(&e.payload) {
            Ok(Value::Object(mut features)) => {
                let correlation_id = match features.remove("correlationid") {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => e
                        .key
                        .as_deref()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .map_or_else(|| format!("{}-{}", e.partition, e.offset), str::to_string),
                };
                let time_ms = features
                    .remove("time")
                    .and_then(|t| t.as_i64())
                    .or(e.timestamp_ms)
                    .unwrap_or(e.offset as i64);
                events.push((
                    e,
                    ScoringEvent {
                        correlation_id,
                        time_ms,
                        features,
                    },
                ));
            }
            Ok(_) => dead.push(dead_letter(e, "expected a JSON object of features".into())),
            Err(err) => dead.push(dead_letter(e, format!("not JSON: {err}"))),
        }
    }
    (events, dead)
}

fn dead_letter(e: &Event, reason: String) -> DeadLetter {
    DeadLetter {
        position: SourcePosition {
            partition: e.partition,
            offset: e.offset,
        },
        payload: String::from_utf8_lossy(&e.payload).into_owned(),
        reason,
        timestamp_ms: now_ms(),
    }
}

fn record(
    event: &Event,
    e: &ScoringEvent,
    score: f64,
    labels: &[String],
    version: u32,
    model_name: &str,
) -> InferenceRecord {
    let mut outputs = serde_json::Map::new();
    if let [negative, positive] = labels {
        outputs.insert(
            "label".into(),
            json!(if score >= 0.5 { positive } else { negative }),
        );
        outputs.insert(format!("probability_{negative}"), json!(1.0 - score));
        outputs.insert(format!("probability_{positive}"), json!(score));
    } else {
        outputs.insert("prediction".into(), json!(score));
    }
    InferenceRecord {
        correlation_id: e.correlation_id.clone(),
        request_id: format!("{}-{}", event.partition, event.offset),
        timestamp_ms: now_ms(),
        event_timestamp_ms: Some(e.time_ms),
        model_name: model_name.to_string(),
        model_version: version.to_string(),
        position: SourcePosition {
            partition: event.partition,
            offset: event.offset,
        },
        inputs: e.features.clone(),
        outputs,
        latency_ms: 0.0,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_their_id_and_time_from_the_payload_then_the_transport() {
        let mut keyed = Event::new(r#"{"x": 1, "time": 5}"#, 2, 7);
        keyed.key = Some(b"k-1".to_vec());
        let mut stamped = Event::new(r#"{"x": 2, "correlationid": 42}"#, 0, 3);
        stamped.timestamp_ms = Some(1_000);
        let read = [
            keyed,
            stamped,
            Event::new(r#"{"x": 3}"#, 1, 9),
            Event::new("[1, 2]", 0, 10),
            Event::new("nope", 0, 11),
        ];
        let (events, dead) = decode(&read);
        let got: Vec<(&str, i64)> = events
            .iter()
            .map(|(_, e)| (e.correlation_id.as_str(), e.time_ms))
            .collect();
        assert_eq!(got, [("k-1", 5), ("42", 1_000), ("1-9", 9)]);
        assert!(events.iter().all(|(_, e)| e.features.len() == 1));
        assert_eq!(dead.len(), 2);
        assert_eq!((dead[0].position.offset, dead[1].position.offset), (10, 11));
        assert!(dead[1].reason.starts_with("not JSON"), "{}", dead[1].reason);
    }

    #[test]
    fn labels_are_released_in_time_order_once_due() {
        let mut b = LabelBuffer::default();
        for t in [30, 10, 20, 10] {
            b.push(Label {
                correlation_id: format!("c{t}"),
                label: 1.0,
                time_ms: t,
            });
        }
        assert!(b.take_until(5).is_empty());
        let first: Vec<i64> = b.take_until(20).iter().map(|l| l.time_ms).collect();
        assert_eq!(first, [10, 10, 20]);
        assert_eq!(b.take_until(i64::MAX).len(), 1);
    }
}
