"""Real clients read our Azure exports: `streamscore stream --sink blob://...` writes inference
logs into Azurite and the official `azure-storage-blob` client lists and reads them in Azure ML's
data-collection layout; `streamscore export` turns logs (from Blob Storage or a local directory)
into a time-partitioned Parquet data set that pyarrow reads with the expected rows and columns.
Run by scripts/test.sh after `cargo test` built the binary with `--features azure`; the
`azurite` fixture is in the workspace conftest.py."""

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

blob = pytest.importorskip("azure.storage.blob", reason="azure-storage-blob is not installed: run ./scripts/python-env.sh")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed: run ./scripts/python-env.sh")
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))
LAYOUT = re.compile(r"modelDataCollector/credit/blue/(model_inputs|model_outputs)/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-z]+-\d{6}\.jsonl")


def streamscore(*args, env=None):
    done = subprocess.run([str(BIN), *map(str, args)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.fixture
def scored(tmp_path):
    """A model and 1,000 events to score with it."""
    train, events, model = tmp_path / "train.csv", tmp_path / "events.jsonl", tmp_path / "model"
    streamscore("generate", "--rows", 2000, "--seed", 1, "--out", train)
    streamscore("train", "--data", train, "--target", "default", "--out", model)
    streamscore("generate", "--rows", 1000, "--seed", 2, "--out", events)
    # The file source's offsets are the byte offsets of the lines.
    sent, at = [], 0
    for line in events.read_bytes().splitlines(keepends=True):
        sent.append((at, json.loads(line)))
        at += len(line)
    return model, events, sent


def check_dataset(table, sent_at):
    offsets = [at for at, _ in sent_at]
    sent = [event for _, event in sent_at]
    assert table.num_rows == len(sent)
    features = [name for name in sent[0] if name != "default"]
    names = table.column_names
    for column in features + ["label", "probability_0", "probability_1", "_partition", "_offset",
                              "_scored_time_ms", "_correlation_id", "_model"]:
        assert column in names, (column, names)
    assert {"date", "hour"} <= set(names), names  # the Hive partition columns
    assert table.schema.field("LIMIT_BAL").type == pa.int64()
    assert table.schema.field("probability_1").type == pa.float64()
    rows = sorted(table.select(["_offset", "LIMIT_BAL", "probability_0", "probability_1"]).to_pylist(),
                  key=lambda r: r["_offset"])
    assert [r["_offset"] for r in rows] == offsets, "every event once"
    for r, event in zip(rows, sent):
        assert r["LIMIT_BAL"] == event["LIMIT_BAL"]
        assert abs(r["probability_0"] + r["probability_1"] - 1) < 1e-9


def test_azure_sdk_reads_the_blob_log_and_pyarrow_reads_the_export(azurite, scored, tmp_path):
    model, events, sent = scored
    env = dict(os.environ, AZURE_STORAGE_CONNECTION_STRING=azurite)
    service = blob.BlobServiceClient.from_connection_string(azurite)
    service.create_container("logs")
    out = streamscore("stream", "--model", model, "--source", f"file:{events}",
                      "--sink", "blob://logs?endpoint=credit&deployment=blue", "--commit-every", 250, "--quiet", env=env)
    assert "AccountKey" not in out and "sig=" not in out

    container = service.get_container_client("logs")
    names = sorted(b.name for b in container.list_blobs(name_starts_with="modelDataCollector/"))
    assert names and all(LAYOUT.fullmatch(n) for n in names), names
    inputs, outputs = [], {}
    for name in names:
        for line in container.download_blob(name).readall().decode().splitlines():
            record = json.loads(line)
            assert record["specversion"] == "1.0" and record["datacontenttype"] == "application/json"
            assert record["time"].endswith("Z")
            if "/model_inputs/" in name:
                assert record["type"] == "azureml.inference.model_inputs"
                inputs.append(record)
            else:
                assert record["type"] == "azureml.inference.model_outputs"
                outputs[record["correlationid"]] = record
    events_sent = [event for _, event in sent]
    rows = [(row, out) for r in inputs for row, out in zip(r["data"], outputs[r["correlationid"]]["data"])]
    assert len(rows) == len(sent)
    for (row, out), event in zip(rows, events_sent):
        assert row["LIMIT_BAL"] == event["LIMIT_BAL"] and row["AGE"] == event["AGE"]
        assert out["label"] in ("0", "1")

    # Blob logs → local Parquet data set.
    dataset = tmp_path / "dataset"
    log = streamscore("export", "--from", "blob://logs", "--to", dataset, "--since", "2000-01-01", env=env)
    assert "export: wrote date=" in log and "1000 rows" in log, log
    check_dataset(ds.dataset(dataset, format="parquet", partitioning="hive").to_table(), sent)

    # Blob logs → Parquet in Blob Storage, read back by the Azure SDK and pyarrow.
    streamscore("export", "--from", "blob://logs", "--to", "blob://exports/weekly", env=env)
    parts = [b.name for b in service.get_container_client("exports").list_blobs()]
    assert parts and all(re.fullmatch(r"weekly/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/part-[0-9a-f]+\.parquet", p) for p in parts), parts
    tables = [pq.read_table(io.BytesIO(service.get_container_client("exports").download_blob(p).readall())) for p in parts]
    assert sum(t.num_rows for t in tables) == len(sent)

    # An empty time range writes nothing.
    log = streamscore("export", "--from", "blob://logs", "--to", tmp_path / "none", "--until", "2000-01-01", env=env)
    assert "nothing written" in log


def test_local_log_export_reads_in_pyarrow(scored, tmp_path):
    model, events, sent = scored
    logs, dataset = tmp_path / "logs", tmp_path / "dataset"
    streamscore("stream", "--model", model, "--source", f"file:{events}", "--sink", f"jsonl:{logs}",
                "--commit-every", 300, "--quiet")
    streamscore("export", "--from", logs, "--to", dataset)
    check_dataset(ds.dataset(dataset, format="parquet", partitioning="hive").to_table(), sent)
