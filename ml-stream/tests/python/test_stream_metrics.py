"""Prometheus reads the metrics of `streamscore stream --metrics-port 0`: the official
`prometheus_client` parser takes the text of `/metrics`, and the stream's counters say how many
events were read and scored. Run by scripts/test.sh after `cargo test` built the binary."""

import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is not installed: run ./scripts/python-env.sh")

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))
EVENTS = 300


def streamscore(*args):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.fixture
def stream(tmp_path):
    """`streamscore stream --follow --metrics-port 0` over 300 events; yields the metrics URL.
    The process is stopped (SIGTERM, then killed) in every exit path."""
    train, events, model = tmp_path / "train.csv", tmp_path / "events.jsonl", tmp_path / "model"
    streamscore("generate", "--rows", 1000, "--seed", 1, "--out", train)
    streamscore("train", "--data", train, "--target", "default", "--out", model)
    streamscore("generate", "--rows", EVENTS, "--seed", 2, "--out", events)
    proc = subprocess.Popen(
        [str(BIN), "stream", "--model", str(model), "--source", f"file:{events}", "--follow",
         "--sink", f"jsonl:{tmp_path / 'logs'}", "--metrics-port", "0", "--quiet"],
        stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stderr], daemon=True).start()
    try:
        url, seen = None, []
        while url is None:
            line = lines.get(timeout=60)
            seen.append(line)
            match = re.search(r"metrics on (http://\S+/metrics)", line)
            url = match and match.group(1)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_parses_the_stream_metrics(stream):
    url, proc = stream
    # The stream scores the file and then waits for more lines: poll until every event counts.
    deadline = time.monotonic() + 60
    while True:
        values = samples(scrape(url))
        if values.get(("streamscore_stream_records_out_total", ())) == EVENTS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert values.get(("streamscore_stream_events_in_total", ())) == EVENTS, values
    assert values.get(("streamscore_stream_records_out_total", ())) == EVENTS, values
    assert values.get(("streamscore_stream_dead_letters_total", ()), 0) == 0
    families = {f.name: f for f in parser.text_string_to_metric_families(scrape(url))}
    assert families["streamscore_stream_records_out"].type == "counter"
    score = families["streamscore_stream_score_seconds"]
    count = next(s.value for s in score.samples if s.name == "streamscore_stream_score_seconds_count")
    batches = values[("streamscore_stream_batches_total", ())]
    assert count == batches >= 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
