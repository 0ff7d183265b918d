//! The broker starts, prints its bootstrap address first, serves the topics it was asked for,
//! and stops when its standard input closes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

#[test]
fn prints_the_bootstrap_address_and_serves_the_topics() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-test-broker"))
        .args([
            "--until-stdin-closes",
            "--brokers",
            "2",
            "--topic",
            "events:4",
            "--topic",
            "scores:2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let bootstrap = line.trim();
    assert_eq!(bootstrap.split(',').count(), 2, "{bootstrap}");
    assert!(
        bootstrap.split(',').all(|b| b.starts_with("127.0.0.1:")),
        "{bootstrap}"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let mut topics: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    topics.sort();
    assert_eq!(topics, [("events".to_string(), 4), ("scores".to_string(), 2)]);
    assert_eq!(metadata.brokers().len(), 2);

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-test-broker"))
        .args(["--topic", "events"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "error: --topic events: expected NAME:PARTITIONS");
}
