"""Real clients against `streamscore serve --port 0`: Triton's `tritonclient[http]` (Open
Inference Protocol v2), the MLflow scoring payloads of MLflow's documentation, the exact body
Stream Analytics sends (1000 rows), and `openapi-spec-validator` on the generated swagger. Every
answer is compared with the local model's predictions (`streamscore predict`). Run by
scripts/test.sh after `cargo test` has built the `streamscore` binary."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed: run ./scripts/python-env.sh")
openapi_spec_validator = pytest.importorskip("openapi_spec_validator", reason="run ./scripts/python-env.sh")
from mlflow.models import convert_input_example_to_serving_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))
KEY = "test-primary-key"
CATEGORICAL = ["SEX", "EDUCATION", "MARRIAGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]


def run(*args, env=None):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A registered RF model (credit@prod), its local predictions on fresh data, and a server."""
    if not BIN.is_file():
        pytest.fail(f"{BIN} not found: build it first (cargo build -p streamscore)")
    tmp = tmp_path_factory.mktemp("serve")
    reg = tmp / "registry"
    env = dict(os.environ)
    env.pop("STREAMSCORE_REGISTRY", None)
    train, fresh, preds = tmp / "credit.csv", tmp / "fresh.csv", tmp / "preds.csv"
    run("generate", "--rows", 3000, "--seed", 5, "--out", train, env=env)
    run("generate", "--rows", 1000, "--seed", 9, "--out", fresh, env=env)
    run("train", "--data", train, "--target", "default", "--estimator", "random_forest_classifier",
        "--param", "n_estimators=30", "--param", "max_depth=6", "--register", "credit", "--registry", reg, env=env)
    run("promote", "credit:1", "--alias", "prod", "--registry", reg, env=env)
    run("predict", "--model", "credit@prod", "--registry", reg, "--data", fresh, "--out", preds, env=env)
    key_file = tmp / "keys"
    key_file.write_text(f"{KEY}\nsecondary-key\n")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [str(BIN), "serve", "--model", "credit@prod", "--registry", str(reg), "--port", "0",
         "--key-file", str(key_file), "--log-sink", f"jsonl:{tmp / 'payloads'}"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        deadline = time.monotonic() + 30
        while requests.get(url + "/v2/health/ready", timeout=5).status_code != 200:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.02)
        with open(fresh) as f:
            rows = [{k: int(v) for k, v in r.items() if k != "default"} for r in csv.DictReader(f)]
        with open(preds) as f:
            local = list(csv.DictReader(f))
        yield {"url": url, "rows": rows, "local": local, "tmp": tmp}
    finally:
        # SIGTERM: graceful shutdown, exit status 0, payload sinks flushed.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp / "server.log").read_text()
        log.close()
    logged = list((tmp / "payloads").rglob("*.jsonl"))
    assert logged, "payload logs were written"


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_stream_analytics_body_of_1000_rows(served):
    body = {"data": served["rows"]}  # what Stream Analytics sends: rows as objects
    r = requests.post(served["url"] + "/score", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-streamscore-model-version"] == "credit:1"
    answer = r.json()
    assert isinstance(answer, list) and len(answer) == 1000
    assert answer == [float(p["probability_1"]) for p in served["local"]]
    # Without the key: 401 with a message.
    r = requests.post(served["url"] + "/score", json=body, timeout=30)
    assert r.status_code == 401 and "Bearer" in r.json()["message"]


def test_mlflow_documentation_payloads(served):
    df = pd.DataFrame(served["rows"][:50])
    local = served["local"][:50]
    bodies = {
        "serving input example (dataframe_split)": convert_input_example_to_serving_input(df),
        "dataframe_split": json.dumps({"dataframe_split": df.to_dict(orient="split")}),
        "dataframe_records": json.dumps({"dataframe_records": df.to_dict(orient="records")}),
        "instances": json.dumps({"instances": df.to_dict(orient="records")}),
        "inputs": json.dumps({"inputs": df.to_dict(orient="list")}),
    }
    for what, body in bodies.items():
        r = requests.post(served["url"] + "/invocations", data=body,
                          headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 200, (what, r.text)
        predictions = r.json()["predictions"]
        assert [p["label"] for p in predictions] == [p["prediction"] for p in local], what
        assert [p["probability_1"] for p in predictions] == [float(p["probability_1"]) for p in local], what
    r = requests.post(served["url"] + "/invocations", data=df.to_csv(index=False),
                      headers={**AUTH, "Content-Type": "text/csv"}, timeout=30)
    assert r.status_code == 200, r.text
    assert [p["probability_0"] for p in r.json()["predictions"]] == [float(p["probability_0"]) for p in local]


def test_tritonclient_infer(served):
    host = served["url"].removeprefix("http://")
    client = httpclient.InferenceServerClient(url=host)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("credit", model_version="1", headers=AUTH)
    meta = client.get_model_metadata("credit", headers=AUTH)
    names = [i["name"] for i in meta["inputs"]]
    rows = served["rows"][:200]
    local = served["local"][:200]
    want = np.array([[float(p["probability_0"]), float(p["probability_1"])] for p in local])

    # One input per column: categoricals as BYTES, the rest as INT64.
    inputs = []
    for name in names:
        if name in CATEGORICAL:
            arr = np.array([str(r[name]) for r in rows], dtype=object).reshape(-1, 1)
            t = httpclient.InferInput(name, list(arr.shape), "BYTES")
        else:
            arr = np.array([r[name] for r in rows], dtype=np.int64).reshape(-1, 1)
            t = httpclient.InferInput(name, list(arr.shape), "INT64")
        t.set_data_from_numpy(arr, binary_data=False)
        inputs.append(t)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=False),
               httpclient.InferRequestedOutput("label", binary_data=False)]
    result = client.infer("credit", inputs, outputs=outputs, headers=AUTH, request_id="t-1")
    assert result.get_response()["id"] == "t-1"
    np.testing.assert_array_equal(result.as_numpy("probabilities"), want)
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    assert labels == [p["prediction"] for p in local]

    # One FP64 tensor [N, F] in schema order, on the versioned route.
    matrix = np.array([[r[n] for n in names] for r in rows], dtype=np.float64)
    t = httpclient.InferInput("input-0", list(matrix.shape), "FP64")
    t.set_data_from_numpy(matrix, binary_data=False)
    result = client.infer("credit", [t], model_version="1", headers=AUTH,
                          outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=False)])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), want)


@pytest.mark.parametrize("version", ["2", "3", "3.1"])
def test_swagger_is_valid_openapi(served, version):
    r = requests.get(served["url"] + f"/swagger.json?version={version}", timeout=30)
    assert r.status_code == 200
    spec = r.json()
    openapi_spec_validator.validate(spec)
    paths = spec["paths"]
    assert paths["/score"]["post"]["operationId"] == "RunMLService"
    defs = spec["definitions"] if version == "2" else spec["components"]["schemas"]
    assert set(defs) >= {"ServiceInput", "ServiceOutput", "ErrorResponse"}
    # The example input scores to the example output (what Stream Analytics binds from).
    r = requests.post(served["url"] + "/score", json=defs["ServiceInput"]["example"], headers=AUTH, timeout=30)
    assert r.json() == defs["ServiceOutput"]["example"]
