//! Test support for streamscore's Kafka and Event Hubs tests: hosts librdkafka's mock Kafka
//! cluster (real Kafka protocol on loopback TCP, consumer groups included) so that other
//! processes — `streamscore stream`, Rust tests, Python `confluent-kafka` — can use it.
//!
//! ```text
//! kafka-test-broker [--brokers N] [--topic NAME:PARTITIONS]... [--initial-rebalance-delay-ms MS]
//!                   [--until-stdin-closes]
//! ```
//!
//! Prints the bootstrap address (`127.0.0.1:PORT,...`) as its first line of standard output,
//! then runs until killed — or, with `--until-stdin-closes`, until its standard input is closed
//! (so a test that dies takes its broker with it). Not part of streamscore's API.

use std::io::{Read, Write};
use std::process::ExitCode;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

struct Args {
    brokers: u32,
    topics: Vec<(String, i32)>,
    initial_rebalance_delay_ms: i32,
    until_stdin_closes: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args {
        brokers: 1,
        topics: Vec::new(),
        // A fresh group forms at once (brokers wait 3 s by default, for more members to join).
        initial_rebalance_delay_ms: 0,
        until_stdin_closes: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => {
                out.brokers = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=16).contains(n))
                    .ok_or("--brokers must be 1 to 16")?;
            }
            "--topic" => {
                let v = value()?;
                let (name, partitions) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--topic {v}: expected NAME:PARTITIONS"))?;
                let partitions = partitions
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--topic {v}: PARTITIONS must be a whole number ≥ 1"))?;
                out.topics.push((name.to_string(), partitions));
            }
            "--initial-rebalance-delay-ms" => {
                out.initial_rebalance_delay_ms = value()?
                    .parse()
                    .map_err(|_| "--initial-rebalance-delay-ms must be a whole number".to_string())?;
            }
            "--until-stdin-closes" => out.until_stdin_closes = true,
            "-h" | "--help" => {
                return Err(
                    "usage: kafka-test-broker [--brokers N] [--topic NAME:PARTITIONS]... \
                     [--initial-rebalance-delay-ms MS] [--until-stdin-closes]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // librdkafka creates a mock cluster for a client configured with `test.mock.num.brokers`;
    // the client owns it, so this producer lives as long as the process.
    let client: BaseProducer = match ClientConfig::new()
        .set("test.mock.num.brokers", args.brokers.to_string())
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: could not start the mock cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(cluster) = client.client().mock_cluster() else {
        eprintln!("error: librdkafka did not create a mock cluster");
        return ExitCode::FAILURE;
    };
    // SAFETY: the handle comes from a live client that owns the mock cluster and outlives
    // this call; the function only sets an integer on the cluster.
    unsafe {
        let handle = rdkafka::bindings::rd_kafka_handle_mock_cluster(client.client().native_ptr());
        if !handle.is_null() {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(
                handle,
                args.initial_rebalance_delay_ms,
            );
        }
    }
    for (name, partitions) in &args.topics {
        if let Err(e) = cluster.create_topic(name, *partitions, 1) {
            eprintln!("error: could not create topic {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut out = std::io::stdout();
    if writeln!(out, "{}", cluster.bootstrap_servers())
        .and_then(|_| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    if args.until_stdin_closes {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        return ExitCode::SUCCESS;
    }
    loop {
        std::thread::park();
    }
}
