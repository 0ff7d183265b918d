"""A Python confluent-kafka producer writes events that `streamscore stream` scores from Kafka, and
a Python confluent-kafka consumer reads our Kafka sink and checks every record. The broker is
`kafka-test-broker` (librdkafka's mock cluster in its own process). Run by scripts/test.sh after
`cargo test` has built `streamscore` (with the `kafka` feature) and `kafka-test-broker`."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is not installed: run ./scripts/python-env.sh")

ROOT = Path(__file__).resolve().parents[3]
TARGET = ROOT / "target" / "debug"
BIN = Path(os.environ.get("STREAMSCORE_BIN", TARGET / "streamscore"))
BROKER = Path(os.environ.get("STREAMSCORE_KAFKA_TEST_BROKER", TARGET / "kafka-test-broker"))
GROUP_TIMING = "rdkafka.session.timeout.ms=3000&rdkafka.heartbeat.interval.ms=300"


def streamscore(*args):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def broker():
    if not BROKER.is_file():
        pytest.fail(f"{BROKER} not found: build it first (cargo build -p kafka-test-broker)")
    proc = subprocess.Popen([str(BROKER), "--until-stdin-closes", "--topic", "events:3", "--topic", "scores:3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        bootstrap = proc.stdout.readline().strip()
        assert bootstrap.startswith("127.0.0.1:"), bootstrap
        yield bootstrap
    finally:
        proc.kill()
        proc.wait()


def test_python_clients_feed_and_read_our_kafka_source_and_sink(broker, tmp_path):
    if not BIN.is_file():
        pytest.fail(f"{BIN} not found: build it first (cargo build -p streamscore --features kafka)")
    train, events, model = tmp_path / "credit.csv", tmp_path / "events.jsonl", tmp_path / "model"
    streamscore("generate", "--rows", 1000, "--seed", 1, "--out", train)
    streamscore("train", "--data", train, "--target", "default", "--out", model)
    streamscore("generate", "--rows", 1500, "--seed", 3, "--out", events)
    lines = events.read_text().splitlines()

    # The reference answers: the same model over the same events from the file source.
    reference = [json.loads(l) for l in streamscore("stream", "--model", model, "--source", f"file:{events}",
                                                     "--sink", "stdout:", "--quiet").splitlines()]
    assert len(reference) == len(lines)
    reference.sort(key=lambda r: r["position"]["offset"])  # byte offsets: file order

    # A Python producer writes the events, with keys and a header; delivery reports say where.
    producer = kafka.Producer({"bootstrap.servers": broker, "enable.idempotence": True})
    where = {}

    def delivered(err, msg):
        assert err is None, err
        where[(msg.partition(), msg.offset())] = int(msg.key().decode())

    for i, line in enumerate(lines):
        producer.produce("events", value=line.encode(), key=str(i).encode(), partition=i % 3,
                         headers={"content-type": "application/json"}, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert len(where) == len(lines)

    proc = subprocess.Popen([str(BIN), "stream", "--model", str(model), "--quiet",
                             "--source", f"kafka://{broker}/events?group=py&{GROUP_TIMING}",
                             "--sink", f"kafka://{broker}/scores"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # A Python consumer reads our sink until every event has its record.
        consumer = kafka.Consumer({"bootstrap.servers": broker, "group.id": "checker",
                                   "enable.auto.commit": False})
        consumer.assign([kafka.TopicPartition("scores", p, kafka.OFFSET_BEGINNING) for p in range(3)])
        records = {}
        deadline = time.monotonic() + 60
        while len(records) < len(lines) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            r = json.loads(msg.value())
            pos = (r["position"]["partition"], r["position"]["offset"])
            # Keyed by the source partition: one source partition's records stay together.
            assert msg.key() == str(pos[0]).encode()
            records.setdefault(pos, r)
        consumer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert len(records) == len(lines), f"{len(records)} of {len(lines)} records\n{stderr}"

    for pos, r in records.items():
        i = where[pos]
        sent = json.loads(lines[i])
        expected = reference[i]
        for name, value in r["inputs"].items():
            assert sent[name] == value, (pos, name)
        assert r["inputs"] == expected["inputs"], pos
        assert r["outputs"] == expected["outputs"], pos
        assert r["outputs"]["label"] in ("0", "1")
        assert abs(r["outputs"]["probability_0"] + r["outputs"]["probability_1"] - 1) < 1e-9
        assert r["event_timestamp_ms"] is not None and r["model_name"] == expected["model_name"]
