"""An OpenTelemetry collector's view of our OTLP export: the JSON bodies `streamscore drift` and
`streamscore serve` post to a recording receiver are parsed by the official protobuf JSON
parser (`google.protobuf.json_format.Parse`, strict: an unknown or misspelled field fails) into
the `opentelemetry-proto` request messages, and their names, attributes and values are checked
against the drift report and the requests made. Run by scripts/test.sh after `cargo test`
built the binary."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

json_format = pytest.importorskip("google.protobuf.json_format", reason="protobuf is not installed: run ./scripts/python-env.sh")
metrics_service = pytest.importorskip(
    "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
    reason="opentelemetry-proto is not installed: run ./scripts/python-env.sh")
logs_service = pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("STREAMSCORE_BIN", ROOT / "target" / "debug" / "streamscore"))
KEY = "pytest-otlp-key-1a2b3c"


def streamscore(*args, env=None):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def collector():
    """A recording OTLP/HTTP receiver on 127.0.0.1 (free port) answering 200 `{}`; yields its
    URL and the calls (path, headers, body). Shut down in every exit path."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("otlp")
    streamscore("generate", "--rows", 300, "--seed", 5, "--out", d / "train.csv")
    streamscore("train", "--data", d / "train.csv", "--target", "default", "--out", d / "model")
    streamscore("generate", "--rows", 300, "--seed", 3, "--drift", 1.0, "--out", d / "drifted.csv")
    return d


def parse(calls, path, message):
    bodies = [b for p, h, b in calls if p == path]
    assert bodies, f"nothing posted to {path}"
    for p, headers, _ in calls:
        assert headers.get("api-key") == KEY
        assert headers.get("content-type") == "application/json"
    return [json_format.Parse(b.decode(), message()) for b in bodies]


def attributes(kvs):
    """Attribute list → {key: python value} through the typed AnyValue."""
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


def env_for(url):
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"api-key={KEY}",
        "OTEL_SERVICE_NAME": "credit-scorer",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,team=risk%20ml",
    }


def test_drift_report_parses_as_otlp_metrics_and_a_log_record(model, collector, tmp_path):
    url, calls = collector
    done = streamscore("drift", "--reference", model / "model", "--current", model / "drifted.csv",
                       "--json", tmp_path / "report.json", env=env_for(url))
    assert KEY not in done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    dataset = report  # the dataset metrics are top-level fields
    assert dataset["dataset_drift"] is True

    [request] = parse(calls, "/v1/metrics", metrics_service.ExportMetricsServiceRequest)
    [rm] = request.resource_metrics
    resource = attributes(rm.resource.attributes)
    assert resource["service.name"] == "credit-scorer"
    assert resource["deployment.environment"] == "ci"
    assert resource["team"] == "risk ml"
    assert rm.scope_metrics[0].scope.name == "streamscore"
    metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
    for name in ["n_features", "n_drifted_features", "share_drifted_features", "dataset_drift"]:
        assert metrics[name].WhichOneof("data") == "gauge"
        [point] = metrics[name].gauge.data_points
        assert point.time_unix_nano > 1_600_000_000 * 10**9
        assert attributes(point.attributes)["reference"] == str(model / "model")
        want = float(dataset[name]) if name != "dataset_drift" else 1.0
        assert point.as_double == pytest.approx(want, abs=0), name
    scores = {attributes(p.attributes)["feature_name"]: p.as_double
              for p in metrics["drift_score"].gauge.data_points}
    features = report["features"] + (report.get("prediction") or [])
    assert scores == {f["feature_name"]: f["drift_score"] for f in features}
    for p in metrics["drift_score"].gauge.data_points:
        a = attributes(p.attributes)
        f = next(f for f in features if f["feature_name"] == a["feature_name"])
        assert a["stattest_name"] == f["stattest_name"]
        assert a["drift_detected"] == str(f["drift_detected"]).lower()

    [logs] = parse(calls, "/v1/logs", logs_service.ExportLogsServiceRequest)
    [record] = logs.resource_logs[0].scope_logs[0].log_records
    assert record.event_name == "DriftDetected"
    assert record.severity_number == 9
    a = attributes(record.attributes)
    assert a["event.name"] == "DriftDetected"
    assert a["n_features"] == dataset["n_features"]
    assert a["n_drifted_features"] == dataset["n_drifted_features"]
    assert a["share_drifted_features"] == pytest.approx(dataset["share_drifted_features"], abs=0)
    assert a["dataset_drift"] is True
    assert a["n_current_rows"] == 300
    drifted = sorted(f["feature_name"] for f in features if f["drift_detected"])
    assert sorted(a["drifted_features"].split(",")) == drifted


def test_request_metrics_of_serve_parse_as_otlp_sums_and_histograms(model, collector):
    url, calls = collector
    proc = subprocess.Popen([str(BIN), "serve", "--port", "0", "--model", str(model / "model")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env_for(url)})
    try:
        base = proc.stdout.readline().strip()
        # The model loads after the address is printed: wait until the server says it is ready.
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)
        header, *rows = (model / "train.csv").read_text().splitlines()[:4]
        names = header.split(",")
        records = []
        for row in rows:
            record = {}
            for k, v in zip(names, row.split(",")):
                if k != "default":
                    try:
                        record[k] = json.loads(v)
                    except ValueError:
                        record[k] = v
            records.append(record)
        for _ in range(2):
            req = urllib.request.Request(f"{base}/score", data=json.dumps({"data": records}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        assert KEY not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    requests = parse(calls, "/v1/metrics", metrics_service.ExportMetricsServiceRequest)
    total, latency = 0, 0
    for request in requests:
        for m in request.resource_metrics[0].scope_metrics[0].metrics:
            if m.name == "streamscore_serve_requests_total":
                assert m.sum.is_monotonic and m.sum.aggregation_temporality == 1
                total += sum(p.as_int for p in m.sum.data_points
                             if attributes(p.attributes) == {"route": "/score", "status": "200"})
            if m.name == "streamscore_serve_request_duration_seconds":
                for p in m.histogram.data_points:
                    if attributes(p.attributes).get("route") == "/score":
                        assert p.count == sum(p.bucket_counts) and 0 < p.min <= p.max
                        assert p.min * p.count <= p.sum <= p.max * p.count
                        latency += p.count
    assert (total, latency) == (2, 2)
