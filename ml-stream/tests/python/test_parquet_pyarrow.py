"""pyarrow reads the Parquet files that `streamscore stream --sink parquet:DIR` writes, with the
expected columns, types and row count. Run by scripts/test.sh after `cargo test` has built the
`streamscore` binary."""

import json
import os
import subprocess
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed: run ./scripts/python-env.sh")
import pyarrow as pa  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))


def streamscore(*args):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pyarrow_reads_the_parquet_export(tmp_path):
    if not BIN.is_file():
        pytest.fail(f"{BIN} not found: build it first (cargo build -p streamscore)")
    train = tmp_path / "credit.csv"
    events = tmp_path / "events.jsonl"
    model = tmp_path / "model"
    export = tmp_path / "export"
    streamscore("generate", "--rows", 2000, "--seed", 1, "--out", train)
    streamscore("train", "--data", train, "--target", "default", "--out", model)
    streamscore("generate", "--rows", 3000, "--seed", 2, "--out", events)
    streamscore("stream", "--model", model, "--source", f"file:{events}", "--sink", f"parquet:{export}",
                "--commit-every", 1000, "--quiet")

    files = sorted(export.glob("*.parquet"))
    assert files, "no part file written"
    assert not list(export.glob(".*")), "an in-progress part file was left behind"
    table = pq.read_table(files)  # every part file, one table
    assert table.num_rows == 3000

    sent = [json.loads(line) for line in events.read_text().splitlines()]
    features = [name for name in sent[0] if name != "default"]
    position = ["_partition", "_offset", "_event_time_ms", "_scored_time_ms", "_correlation_id", "_model"]
    assert table.column_names == features + ["label", "probability_0", "probability_1"] + position

    schema = table.schema
    assert schema.field("LIMIT_BAL").type == pa.int64()
    # Int fields are int64; categorical fields (by the model's schema) are written as their text.
    kinds = {name: schema.field(name).type for name in features}
    assert set(kinds.values()) <= {pa.int64(), pa.string()}, kinds
    assert schema.field("label").type == pa.string()
    assert schema.field("probability_1").type == pa.float64()
    assert schema.field("_offset").type == pa.uint64()

    # Rows are the events sent: join on the byte offset of each line.
    offsets, at = [], 0
    for line in events.read_bytes().splitlines(keepends=True):
        offsets.append(at)
        at += len(line)
    by_offset = dict(zip(offsets, sent))
    rows = table.to_pylist()
    assert sorted(r["_offset"] for r in rows) == offsets
    for r in rows:
        event = by_offset[r["_offset"]]
        for name in features:
            expected = event[name] if kinds[name] == pa.int64() else str(event[name])
            assert r[name] == expected, (name, r, event)
        assert r["label"] in ("0", "1")
        assert r["probability_0"] + r["probability_1"] == pytest.approx(1.0)
        assert r["label"] == ("1" if r["probability_1"] > r["probability_0"] else "0")
