//! `streamscore run` and `streamscore retrain` on the config's sources, sinks and dead letter:
//! files, then the Kafka test broker (events through an Event Hubs connection string, labels
//! through `kafka://`); `[monitor]` windows by time with per-feature tests; `[model] sweep` in
//! the retrain.

use crate::common::{ok, p};

use std::path::{Path, PathBuf};

use ml_registry::{LocalRegistry, ModelRegistry};
#[cfg(feature = "kafka")]
use ml_stream::kafka::rdkafka::ClientConfig;
#[cfg(feature = "kafka")]
use ml_stream::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
#[cfg(feature = "kafka")]
use std::time::Duration;
use streamscore::datagen::{LoopStreamConfig, loop_stream};

/// Events (JSON objects with `correlationid` and `time`) and labels as JSON lines.
pub(crate) fn stream_lines(events: usize, drift_from: usize) -> (Vec<String>, Vec<String>) {
    let (events, labels) = loop_stream(&LoopStreamConfig {
        events,
        drift_from,
        rate_per_s: 1_000.0,
        label_delay_ms: (1_000, 3_000),
        ..LoopStreamConfig::default()
    })
    .unwrap();
    let events = events
        .iter()
        .map(|e| {
            let mut m = e.features.clone();
            m.insert("correlationid".into(), e.correlation_id.clone().into());
            m.insert("time".into(), e.time_ms.into());
            serde_json::Value::Object(m).to_string()
        })
        .collect();
    let labels = labels
        .iter()
        .map(|l| {
            serde_json::json!({"correlationid": l.correlation_id, "label": l.label, "time": l.time_ms})
                .to_string()
        })
        .collect();
    (events, labels)
}

/// Every non-empty line of every file under `dir` whose path contains `part`.
fn lines_under(dir: &Path, part: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().contains(part) {
                let text = std::fs::read_to_string(&path).unwrap();
                out.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
            }
        }
    }
    out
}

/// The loop events a `jsonl:DIR` monitor sink wrote.
fn loop_events(dir: &Path) -> Vec<serde_json::Value> {
    lines_under(dir, "")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Produces `lines` to partition 0 of `topic`, in order.
#[cfg(feature = "kafka")]
pub(crate) fn produce(bootstrap: &str, topic: &str, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for line in lines {
        let mut record = BaseRecord::<(), _>::to(topic).payload(line).partition(0);
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

#[test]
fn run_and_retrain_read_files_write_sinks_and_dead_letters_window_by_time_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    crate::loop_e2e::registry_with_prod(dir.path());
    let (events, labels) = stream_lines(4_000, 4_000);
    let first_time = serde_json::from_str::<serde_json::Value>(&events[0]).unwrap()["time"].clone();
    // Two events that cannot be scored, ahead of the good ones: not JSON, and a text limit.
    let mut bad = serde_json::from_str::<serde_json::Value>(&events[0]).unwrap();
    bad["LIMIT_BAL"] = "a lot".into();
    bad["correlationid"] = "bad-1".into();
    bad["time"] = first_time;
    let lines = [vec!["not json".to_string(), bad.to_string()], events].concat();
    std::fs::write(dir.path().join("events.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dir.path().join("labels.jsonl"), labels.join("\n")).unwrap();
    let d = |name: &str| p(&dir.path().join(name)).to_string();
    let config = dir.path().join("streamscore.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[model]
name = "credit"
estimator = "logistic_regression"
[model.sweep]
trials = 3
seed = 4
[model.sweep.space]
c = {{ log_uniform = [0.01, 10.0] }}
[registry]
path = "{registry}"
[stream]
source = "file:{events}"
sinks = ["jsonl:{logs}"]
dead_letter = "jsonl:{dead}"
batch_size = 400
[monitor]
window_s = 1.0
sinks = ["jsonl:{monitor}"]
[monitor.features.AGE]
test = "psi"
threshold = 0.15
[[alert]]
when = "share_drifted_features > 0.25"
action = "log"
[labels]
source = "file:{labels}"
[retrain]
min_labelled = 500
"#,
            registry = d("registry"),
            events = d("events.jsonl"),
            labels = d("labels.jsonl"),
            logs = d("logs"),
            dead = d("dead"),
            monitor = d("monitor"),
        ),
    )
    .unwrap();

    let (out, _) = ok(&["run", "--config", p(&config)]);
    assert!(
        out.contains("read 4002 events (2 to the dead letter), wrote 4000 records to the sinks, read 4000 labels (0 not valid)"),
        "{out}"
    );
    assert!(out.contains("scored 4000 events (1 refused)"), "{out}");
    assert!(out.contains("4000 labels joined"), "{out}");
    // Every scored event in the inference log once, with its inputs and outputs.
    let logged: Vec<serde_json::Value> = lines_under(&dir.path().join("logs"), "model_outputs")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: usize = logged.iter().map(|l| l["data"].as_array().unwrap().len()).sum();
    let positions: std::collections::BTreeSet<String> = logged
        .iter()
        .flat_map(|l| l["positions"].as_array().unwrap().iter().map(|p| p.to_string()))
        .collect();
    assert_eq!((rows, positions.len()), (4_000, 4_000));
    assert!(logged.iter().all(|l| l["correlationid"] != "bad-1"));
    // Both refused events in the dead letter, with their reasons.
    let dead = lines_under(&dir.path().join("dead"), "").join("\n");
    assert!(dead.contains("not JSON") && dead.contains("LIMIT_BAL"), "{dead}");
    // Windows of 1 s of event time (1000 events/s): the first event 1000 ms after a window's
    // first closes it, so 1001 rows each; 4000 events close three (the count alone, 5000 by
    // default, would close none). AGE is tested with PSI at 0.15, as configured.
    let reports: Vec<serde_json::Value> = loop_events(&dir.path().join("monitor"))
        .into_iter()
        .filter(|e| e["kind"] == "drift_report")
        .collect();
    assert_eq!(reports.len(), 3, "{reports:?}");
    for r in &reports {
        assert_eq!(r["fields"]["rows"], 1001, "{r}");
        let age = &r["fields"]["features"]["AGE"];
        assert_eq!(
            (age["test"].as_str(), age["threshold"].as_f64()),
            (Some("psi"), Some(0.15)),
            "{r}"
        );
        assert!(r["fields"]["features"]["LIMIT_BAL"]["test"].is_string(), "{r}");
    }

    // By hand: the same sources read back, one retrain with the configured sweep.
    let (out, _) = ok(&["retrain", "--config", p(&config), "--reason", "by hand"]);
    assert!(out.contains("registered v2 (parent v1) reason: by hand"), "{out}");
    let registry = LocalRegistry::open(dir.path().join("registry")).unwrap();
    let v2 = futures::executor::block_on(registry.get(&"credit:2".parse().unwrap())).unwrap();
    let sweep = &v2.artifact.metrics()["sweep"];
    assert_eq!(sweep["trials"].as_array().map(Vec::len), Some(3), "{sweep}");
    assert_eq!(sweep["metric"], "roc_auc", "{sweep}");
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;

    use crate::kafka_cli::Broker;

    /// Events from an Event Hubs connection string that points at the test broker (its Kafka
    /// endpoint, in plain text here), labels from a Kafka topic; the scored records in a JSONL
    /// sink and a bad event in the dead letter; then a retrain reading both topics again in a
    /// consumer group of its own.
    #[test]
    fn run_and_retrain_read_events_and_labels_from_kafka_and_event_hubs() {
        let broker = Broker::start(&["events:1", "labels:1"]);
        let dir = tempfile::tempdir().unwrap();
        crate::loop_e2e::registry_with_prod(dir.path());
        let (events, labels) = stream_lines(2_000, 2_000);
        let mut lines = vec!["{\"broken".to_string()];
        lines.extend(events);
        produce(&broker.bootstrap, "events", &lines);
        produce(&broker.bootstrap, "labels", &labels);
        let connection = format!(
            "Endpoint=sb://{}/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0",
            broker.bootstrap
        );
        let d = |name: &str| p(&dir.path().join(name)).to_string();
        let config = dir.path().join("streamscore.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[model]
name = "credit"
[registry]
path = "{registry}"
[stream]
source = "eventhubs://SS_LOOP_EH?topic=events&group=loop&rdkafka.security.protocol=plaintext"
sinks = ["jsonl:{logs}"]
dead_letter = "jsonl:{dead}"
[monitor]
window = 1000
[[alert]]
when = "share_drifted_features > 0.25"
action = "log"
[labels]
source = "kafka://{bootstrap}/labels?group=loop-labels"
[retrain]
min_labelled = 500
[env.again.stream]
source = "eventhubs://SS_LOOP_EH?topic=events&group=again&rdkafka.security.protocol=plaintext"
[env.again.labels]
source = "kafka://{bootstrap}/labels?group=again-labels"
"#,
                registry = d("registry"),
                logs = d("logs"),
                dead = d("dead"),
                bootstrap = broker.bootstrap,
            ),
        )
        .unwrap();
        let env = [("SS_LOOP_EH", connection.as_str())];
        let run = |args: &[&str]| {
            let out = crate::common::streamscore_env(args, &env);
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
            assert!(out.status.success(), "{args:?}:\n{stdout}\n{stderr}");
            assert!(!stdout.contains("c2VjcmV0") && !stderr.contains("c2VjcmV0"));
            stdout
        };
        let out = run(&[
            "run",
            "--config",
            p(&config),
            "--max-events",
            "2001",
            "--idle-ms",
            "10000",
        ]);
        assert!(
            out.contains(
                "read 2001 events (1 to the dead letter), wrote 2000 records to the sinks, read 2000 labels"
            ),
            "{out}"
        );
        assert!(out.contains("2000 labels joined"), "{out}");
        let rows: usize = lines_under(&dir.path().join("logs"), "model_outputs")
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(rows, 2_000);
        assert!(
            lines_under(&dir.path().join("dead"), "")
                .join("\n")
                .contains("not JSON")
        );

        let out = run(&[
            "retrain",
            "--config",
            p(&config),
            "--env",
            "again",
            "--max-events",
            "2001",
            "--idle-ms",
            "10000",
        ]);
        assert!(out.contains("registered v2 (parent v1)"), "{out}");
        drop(broker);
    }
}
