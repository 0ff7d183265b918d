"""`serve` and `stream` from Python, and Python objects as sinks."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import streamscore


class CollectingSink:
    """Keeps every record; counts the calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.records: list[dict] = []
        self.calls = 0
        self.failures = 0
        self.fail_first = fail_first
        self.flushes = 0
        self.closed = False
        self.threads: set[str] = set()

    def write_batch(self, records: list[dict]) -> None:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.failures < self.fail_first:
            self.failures += 1
            raise ConnectionError(f"temporary failure {self.failures}")
        self.records.extend(records)

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def model() -> streamscore.Model:
    return streamscore.train(streamscore.generate(2_000, seed=4), estimator="logistic_regression")


def events_file(path: Path, rows: int, seed: int) -> pd.DataFrame:
    df = streamscore.generate(rows, seed=seed).drop(columns="default")
    df.to_json(path, orient="records", lines=True)
    return df


def line_offsets(path: Path) -> list[int]:
    """The byte offset of each line: a file source's event offsets."""
    newlines = np.flatnonzero(np.frombuffer(path.read_bytes(), dtype=np.uint8) == ord("\n")) + 1
    return [0] + newlines[:-1].tolist()


def test_a_python_sink_receives_every_record_of_100k_events_exactly_once(model, tmp_path: Path) -> None:
    n = 100_000
    df = events_file(tmp_path / "events.jsonl", n, seed=9)
    sink = CollectingSink()
    report = streamscore.stream(tmp_path / "events.jsonl", sinks=[sink], model=model, batch_size=2_000)
    assert report["events_in"] == n and report["records_out"] == n and report["dead_letters"] == 0
    offsets = Counter(r["offset"] for r in sink.records)
    assert len(sink.records) == n and len(offsets) == n and max(offsets.values()) == 1
    assert sorted(offsets) == line_offsets(tmp_path / "events.jsonl")
    assert sink.flushes >= 1 and sink.closed
    # The records are the model's answers on the file's rows.
    first = next(r for r in sink.records if r["offset"] == 0)
    proba = model.predict_proba(df.head(1))[0]
    assert first["outputs"]["probability_1"] == pytest.approx(proba[1], abs=1e-12)
    assert first["inputs"]["AGE"] == int(df["AGE"].iloc[0])
    assert first["model_name"] == "model"
    # Called on the pipeline's threads, not the caller's.
    assert threading.current_thread().name not in sink.threads


def test_a_sink_that_raises_twice_then_succeeds_loses_nothing(model, tmp_path: Path) -> None:
    n = 5_000
    events_file(tmp_path / "events.jsonl", n, seed=10)
    sink = CollectingSink(fail_first=2)
    report = streamscore.stream(
        str(tmp_path / "events.jsonl"), sinks=sink, model=model, batch_size=500, initial_backoff_ms=5
    )
    assert sink.failures == 2
    assert report["records_out"] == n
    assert sorted(r["offset"] for r in sink.records) == line_offsets(tmp_path / "events.jsonl")


def test_a_sink_that_keeps_failing_stops_the_stream_with_its_error(model, tmp_path: Path) -> None:
    events_file(tmp_path / "events.jsonl", 300, seed=11)
    sink = CollectingSink(fail_first=10**9)
    with pytest.raises(streamscore.StreamscoreError, match="temporary failure 3"):
        streamscore.stream(
            tmp_path / "events.jsonl", sinks=[sink], model=model, max_attempts=3, initial_backoff_ms=1
        )
    assert sink.calls == 3 and not sink.records
    with pytest.raises(TypeError, match="write_batch"):
        streamscore.stream(tmp_path / "events.jsonl", sinks=[object()], model=model)


def test_background_stream_with_counters_and_a_spec_sink(model, tmp_path: Path) -> None:
    n = 3_000
    events_file(tmp_path / "events.jsonl", n, seed=12)
    sink = CollectingSink()
    with streamscore.stream(
        tmp_path / "events.jsonl", sinks=[sink, f"jsonl:{tmp_path / 'logs'}"], model=model, background=True
    ) as handle:
        report = handle.wait(timeout=120)
        assert report is not None and report["records_out"] == n
        assert handle.counters["records_out"] == n and handle.counters["events_in"] == n
        assert not handle.running
    assert len(sink.records) == n
    logged = [json.loads(line) for p in sorted((tmp_path / "logs").rglob("*.jsonl")) for line in p.read_text().splitlines()]
    assert logged, "the jsonl sink wrote the inference log"


def test_serve_in_the_background_with_a_python_log_sink(model, tmp_path: Path) -> None:
    rows = streamscore.generate(5, seed=13).drop(columns="default")
    sink = CollectingSink()
    with streamscore.serve(model, log_sinks=[sink], name="credit", version="7") as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0 and server.running
        body = json.dumps({"data": json.loads(rows.to_json(orient="records"))}).encode()
        request = urllib.request.Request(server.url + "/score", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            assert answer.headers["x-streamscore-model-version"] == "credit:7"
            scores = json.load(answer)
    assert not server.running
    assert np.allclose(scores, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)
    # Stopping closed the payload log: every row of the request reached the Python sink.
    assert len(sink.records) == 5 and sink.closed
    assert {r["model_version"] for r in sink.records} == {"7"}
    assert server.payload_counters() == {"written": 5, "dropped": 0}
    server.stop()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "/", timeout=2)


def test_serve_a_registry_reference(model, tmp_path: Path) -> None:
    reg = streamscore.Registry(tmp_path / "registry")
    reg.register("credit", model)
    reg.promote("credit:1", "prod")
    with streamscore.serve("credit@prod", registry=reg) as server:
        with urllib.request.urlopen(server.url + "/v2/models/credit") as answer:
            meta = json.load(answer)
    assert meta["name"] == "credit" and server.version == "1"


def test_the_serving_docstring_example_runs() -> None:
    import doctest

    import streamscore._serving

    failures, tried = doctest.testmod(streamscore._serving)
    assert tried >= 3 and failures == 0
