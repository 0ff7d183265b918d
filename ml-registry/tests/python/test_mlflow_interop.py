"""MLflow's own client reads what `streamscore export` writes, and `streamscore import` reads what
MLflow writes. Run by scripts/test.sh after `cargo test` has built the `streamscore` binary."""

import json
import os
import subprocess
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is not installed: run ./scripts/python-env.sh")
from mlflow.models import Model  # noqa: E402
from mlflow.models.signature import ModelSignature  # noqa: E402
from mlflow.types import ColSpec, Schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))


def streamscore(*args, registry):
    env = dict(os.environ, STREAMSCORE_REGISTRY=str(registry))
    done = subprocess.run([str(BIN), *map(str, args)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def binary():
    if not BIN.is_file():
        pytest.fail(f"{BIN} not found: build it first (cargo build -p streamscore)")
    return BIN


def test_exported_version_loads_with_mlflow(binary, tmp_path):
    reg = tmp_path / "reg"
    data = tmp_path / "credit.csv"
    streamscore("generate", "--rows", 1500, "--seed", 2, "--out", data, registry=reg)
    streamscore("train", "--data", data, "--target", "default", "--register", "credit", registry=reg)
    streamscore("promote", "credit:1", "--alias", "prod", registry=reg)
    out = tmp_path / "exported"
    streamscore("export", "credit@prod", "--out", out, registry=reg)
    shown = json.loads(streamscore("show", "credit@prod", registry=reg))

    model = Model.load(str(out))
    assert "streamscore" in model.flavors
    assert model.flavors["streamscore"]["model_file"] == "model.json"
    assert model.run_id == shown["run_id"]
    assert model.model_uuid == shown["model_uuid"]
    header = data.read_text().splitlines()[0].split(",")
    assert model.signature.inputs.input_names() == [c for c in header if c != "default"]
    assert (out / model.flavors["streamscore"]["model_file"]).is_file()


def test_mlflow_written_onnx_model_imports(binary, tmp_path):
    reg = tmp_path / "reg"
    src = tmp_path / "onnx-model"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"\x08\x07not-a-real-graph")
    model = Model(run_id="0123456789abcdef0123456789abcdef")
    model.add_flavor("onnx", data="model.onnx", onnx_version="1.17.0", code=None)
    model.signature = ModelSignature(
        inputs=Schema([ColSpec("double", "income"), ColSpec("string", "plan")]),
        outputs=Schema([ColSpec("long")]),
    )
    model.save(str(src / "MLmodel"))

    assert streamscore("import", src, "--name", "from-mlflow", registry=reg).strip() == "from-mlflow:1"
    shown = json.loads(streamscore("show", "from-mlflow:1", registry=reg))
    assert shown["model_kind"] == "onnx"
    assert shown["run_id"] == "0123456789abcdef0123456789abcdef"
    out = tmp_path / "back"
    streamscore("export", "from-mlflow:1", "--out", out, registry=reg)
    again = Model.load(str(out))
    assert again.flavors["onnx"]["data"] == "model.onnx"
    assert again.signature.inputs.input_names() == ["income", "plan"]
    assert (out / "model.onnx").read_bytes() == b"\x08\x07not-a-real-graph"
