"""Driver of ./bench/compare: streamscore against its peers, side by side, ratios from one run.

Run through ./bench/compare (which sets up the peers first). Every pair runs alternating
A B A B (one process per measurement on each side), both sides on the same model and data with
their outputs checked on a sample before any timing; the table gives the median of the runs
with the min–max of each side. A row whose capability is not measured says "not yet" and why.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "scratch"
PY = str(HERE / ".venv" / "bin" / "python")
PEERS = str(HERE / "peers.py")
GROUPS = ["scoring", "training", "http", "streaming", "kafka", "python", "drift", "adwin"]
COLS = 20


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- configuration and machine


def sizes(quick: bool) -> dict:
    return {
        "score_seconds": 0.1 if quick else 1.5,
        "score_rows": 20_000 if quick else 100_000,
        "train_rows": 3_000 if quick else 100_000,
        "http_seconds": 2 if quick else 10,
        "stream_events": 50_000 if quick else 1_000_000,
        # The mock broker shares the cores with the producer and checker: 1M events (the issue's
        # acceptance size) runs in `cargo bench ... kafka_throughput` by hand.
        "kafka_events": 60_000 if quick else 240_000,
        "drift_ref": 50_000 if quick else 1_000_000,
        "drift_cur": 5_000 if quick else 100_000,
        "adwin_values": 1_000_000,
    }


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def pin(core: int) -> list[str]:
    """Pins a process to one core when the machine has two or more (taskset)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


# ---------------------------------------------------------------- processes


def run_json(cmd: list[str], env: dict | None = None, memory: bool = False) -> dict:
    """Runs one measurement process; its last stdout line is JSON. With `memory`, adds the
    process's peak resident set (`/usr/bin/time -v`) as `peak_rss_mb`."""
    full = (["/usr/bin/time", "-v"] if memory else []) + cmd
    p = subprocess.run(full, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({p.returncode}): {p.stderr.strip()[-600:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if memory:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        out["peak_rss_mb"] = int(m.group(1)) / 1024 if m else float("nan")
    return out


class Worker:
    """A `peers.py serve` process: the Python side's measurements without an interpreter start
    and the imports per run. One per group and side (`workers()`), closed with the group."""

    def __init__(self, prefix: list[str], env: dict) -> None:
        # stderr to a file: a pipe nobody reads would stall a worker that warns a lot.
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(prefix + [PY, PEERS, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, env=env)

    def call(self, args, memory: bool = False) -> dict:
        """Runs `args` (a command) in the worker; with `memory`, in a child forked for it, with
        its peak RSS. A dict is sent as it is (see `peers.py serve`)."""
        assert self.proc.stdin and self.proc.stdout
        msg = {"args": args, "memory": True} if memory else args
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.err.seek(0)
            err = self.err.read()
            raise RuntimeError(f"peers.py {str(args)[:80]}... : the worker exited ({self.proc.wait()}): {err.strip()[-600:]}")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"peers.py {str(args)[:80]}... failed: {out['error'][-600:]}")
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


class Workers:
    """The Python workers of one group, by name, started on first use and all closed on exit."""

    def __init__(self, env: dict) -> None:
        self.env, self.by_name = env, {}

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        for w in self.by_name.values():
            w.close()

    def get(self, name: str, prefix: list[str], preload: list[str] | None = None) -> Worker:
        if name not in self.by_name:
            w = Worker(prefix, self.env)
            if preload:
                w.call({"preload": preload})
            self.by_name[name] = w
        return self.by_name[name]


WORKERS: Workers | None = None


def peer_call(prefix: list[str], args: list[str], worker: str = "", memory: bool = False, preload: list[str] | None = None) -> dict:
    """One Python-side measurement (`peers.py ARGS`) in the current group's worker for
    `prefix` (a CPU pinning, or none) and `worker` (a name, to keep sides apart); with `memory`,
    in a child forked for it, adding its peak RSS as `peak_rss_mb`. `preload`: modules the
    worker imports when it starts."""
    assert WORKERS is not None, "peer_call outside a group"
    return WORKERS.get(" ".join(prefix) + "/" + worker, prefix, preload).call(args, memory)


def alternate(runs: int, sides: dict) -> dict:
    """Runs every side once per round, in order (A B C A B C ...); returns each side's results."""
    results: dict = {name: [] for name in sides}
    for r in range(runs):
        for name, f in sides.items():
            results[name].append(f())
        log(f"  round {r + 1}/{runs} done")
    return results


# ---------------------------------------------------------------- rows


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def pair(self, group, metric, workload, ss, peer_name, peer, unit, higher_better, check):
        med_s, med_p = statistics.median(ss), statistics.median(peer)
        ratio = (med_s / med_p) if higher_better else (med_p / med_s)
        self.rows.append(
            {
                "group": group,
                "metric": metric,
                "workload": workload,
                "unit": unit,
                "higher_is_better": higher_better,
                "streamscore": {"median": med_s, "min": min(ss), "max": max(ss), "runs": ss},
                "peer": peer_name,
                "peer_values": {"median": med_p, "min": min(peer), "max": max(peer), "runs": peer},
                "ratio": ratio,
                "check": check,
            }
        )

    def not_yet(self, group, metric, workload, peer_name, reason):
        self.rows.append(
            {"group": group, "metric": metric, "workload": workload, "peer": peer_name, "not_yet": reason}
        )

    def markdown(self) -> str:
        out = [
            "| metric | workload | streamscore | peer | ratio | range (streamscore; peer) |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            if "not_yet" in r:
                out.append(f"| {r['metric']} | {r['workload']} | not yet | {r['peer']} | — | {r['not_yet']} |")
                continue
            s, p, u = r["streamscore"], r["peer_values"], r["unit"]
            out.append(
                f"| {r['metric']} | {r['workload']} | {fmt(s['median'], u)} | {r['peer']}: {fmt(p['median'], u)} "
                f"| {r['ratio']:.2f}× | {fmt(s['min'], u)}–{fmt(s['max'], u)}; {fmt(p['min'], u)}–{fmt(p['max'], u)} |"
            )
        return "\n".join(out)


def fmt(v: float, unit: str) -> str:
    if unit in ("rows/s", "req/s", "events/s", "updates/s"):
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:.3g}{suffix} {unit}"
        return f"{v:.3g} {unit}"
    if unit == "s":
        if v < 1e-3:
            return f"{v * 1e6:.3g} µs"
        if v < 1:
            return f"{v * 1e3:.3g} ms"
        return f"{v:.3g} s"
    if unit == "MB":
        return f"{v:.0f} MB"
    return f"{v:.3g} {unit}"


# ---------------------------------------------------------------- build and data


def build(package: str, target: list[str]) -> str:
    """Release build of one binary; returns its path."""
    cmd = ["cargo", "build", "--release", "-p", package, *target]
    log(" ".join(cmd))
    p = subprocess.run(cmd + ["--message-format=json-render-diagnostics"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("bench: the release build failed (see above)")
    # A bench target also builds the package's binaries: take the artifact of the target asked
    # for (by name and kind), not the first executable cargo reports.
    kind, name = next((flag[2:], target[i + 1]) for i, flag in enumerate(target) if flag in ("--bench", "--bin"))
    for line in p.stdout.splitlines():
        msg = json.loads(line)
        t = msg.get("target", {})
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and t.get("name") == name and kind in t.get("kind", []):
            return msg["executable"]
    raise SystemExit(f"bench: no executable for the {kind} {name} from {' '.join(cmd)}")


def features(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows of 20 uniform features (exact in float32, so ONNX's float input equals the
    float64 rows) and a noisy linear-plus-interaction label."""
    x = rng.random((n, COLS)).astype(np.float32).astype(np.float64)
    w = np.array([(1 if c % 2 == 0 else -1) * (1 + c % 5) / 5 for c in range(COLS)])
    score = (x - 0.5) @ w + 3 * (x[:, 0] - 0.5) * (x[:, 1] - 0.5) + rng.random(n) - 0.5
    return x, (score > 0).astype(np.uint8)


def write(path: Path, a: np.ndarray) -> str:
    np.ascontiguousarray(a).astype("<f8").tofile(path)
    return str(path)


def models(work: Path, n_score: int) -> dict:
    """The scikit-learn RF100 depth 8 and LR every scoring row uses, their ONNX exports and
    scoring data. Built once per work directory (the same bytes on both sides)."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    x_train, y_train = features(rng, 20_000)
    x_score, _ = features(rng, n_score)
    out = {"data": write(work / "score.f64", x_score), "x": x_score}
    cached = all((work / f"{n}.{e}").exists() for n in ("rf", "lr") for e in ("pkl", "onnx"))
    for name, est in (
        ("rf", RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=-1)),
        ("lr", LogisticRegression(max_iter=1000)),
    ):
        pkl, path = work / f"{name}.pkl", work / f"{name}.onnx"
        if cached:
            # The same seeds give the same models: reuse those of an earlier run.
            with open(pkl, "rb") as f:
                est = pickle.load(f)
        else:
            est.fit(x_train, y_train)
            est.set_params(**({"n_jobs": 1} if name == "rf" else {}))
            with open(pkl, "wb") as f:
                pickle.dump(est, f)
            onx = to_onnx(est, x_train[:1].astype(np.float32), options={id(est): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
            path.write_bytes(onx.SerializeToString())
        out[name] = {"pkl": str(pkl), "onnx": str(path), "est": est}
    return out


# ---------------------------------------------------------------- sections


def scoring(t: Table, cfg: dict, exe: str, env: dict, m: dict, runs: int) -> None:
    import onnxruntime as ort

    batches = "1,64,4096"
    sample = 1000
    for name, label in (("rf", "RF100 depth 8"), ("lr", "logistic regression")):
        mm = m[name]
        # Outputs on a sample before timing: every scorer against scikit-learn's predict_proba.
        want = mm["est"].predict_proba(m["x"][:sample])[:, 1]
        session = ort.InferenceSession(mm["onnx"], providers=["CPUExecutionProvider"])
        got = {"onnxruntime (Python)": session.run(None, {session.get_inputs()[0].name: m["x"][:sample].astype(np.float32)})[1][:, 1]}
        for engine in ("native", "runtime"):
            dump = WORK / f"check_{name}_{engine}.f64"
            run_json([exe, "score", mm["onnx"], engine, m["data"], str(COLS), "1", "0.01", str(dump), str(sample)], env)
            got[f"streamscore {engine}"] = np.fromfile(dump, dtype="<f8")
        diffs = {k: float(np.max(np.abs(v - want))) for k, v in got.items()}
        tol = 1e-5
        ok = all(d <= tol for d in diffs.values())
        check = f"P(class 1) on {sample} rows vs sklearn, max |Δ| " + ", ".join(f"{k} {d:.1e}" for k, d in diffs.items()) + f" (tolerance {tol:g}: ONNX scores in float32)"
        if not ok:
            for peer in ("onnxruntime (Python)", "ort (Rust, ONNX Runtime)", "scikit-learn predict_proba"):
                t.not_yet("scoring", f"score {label}", "batches 1/64/4096", peer, "outputs differ: " + check)
            continue
        log(f"scoring {label}: {check}")
        core = pin(1)
        sec = str(cfg["score_seconds"])
        res = alternate(runs, {
            "native": lambda: run_json(core + [exe, "score", mm["onnx"], "native", m["data"], str(COLS), batches, sec], env),
            "ort": lambda: run_json(core + [exe, "score", mm["onnx"], "runtime", m["data"], str(COLS), batches, sec], env),
            "onnxruntime": lambda: peer_call(core, ["score", "onnxruntime", mm["onnx"], m["data"], str(COLS), batches, sec]),
            "sklearn": lambda: peer_call(core, ["score", "sklearn", mm["pkl"], m["data"], str(COLS), batches, sec]),
        })
        for b in batches.split(","):
            for key, peer in (("onnxruntime", "ONNX Runtime 1.31 from Python"), ("ort", "ONNX Runtime via ort (Rust)"), ("sklearn", "sklearn predict_proba")):
                wl = f"{label} (sklearn, ONNX export), 20 float features, batch {b}, 1 thread pinned, {sec} s per run"
                if b == "1":
                    t.pair("scoring", f"score {name.upper()} batch 1: time per row", wl,
                           [r[b]["seconds_per_row"] for r in res["native"]], peer, [r[b]["seconds_per_row"] for r in res[key]], "s", False, check)
                else:
                    t.pair("scoring", f"score {name.upper()} batch {b}: rows/s", wl,
                           [r[b]["rows_per_s"] for r in res["native"]], peer, [r[b]["rows_per_s"] for r in res[key]], "rows/s", True, check)


def training(t: Table, cfg: dict, exe: str, env: dict, runs: int) -> None:
    n_train = cfg["train_rows"]
    rows = n_train + n_train // 4
    x, y = features(np.random.default_rng(11), rows)
    data = write(WORK / "train.f64", x)
    labels = WORK / "train.u8"
    y.tofile(labels)
    args = [data, str(labels), str(rows), str(COLS)]
    res = alternate(runs, {
        "ss1": lambda: run_json(pin(1) + [exe, "train", *args, "1", str(n_train)], env),
        "sk1": lambda: peer_call(pin(1), ["train", *args, "1", str(n_train)]),
        "ss2": lambda: run_json([exe, "train", *args, "2", str(n_train)], env),
        "sk2": lambda: peer_call([], ["train", *args, "2", str(n_train)]),
    })
    for threads in ("1", "2"):
        acc_s = statistics.median(r["holdout_accuracy"] for r in res["ss" + threads])
        acc_p = statistics.median(r["holdout_accuracy"] for r in res["sk" + threads])
        check = f"holdout accuracy on {rows - n_train} rows: streamscore {acc_s:.4f}, sklearn {acc_p:.4f} (same rows, same hyperparameters; forests differ by their random streams)"
        if abs(acc_s - acc_p) > 0.02:
            t.not_yet("training", f"train RF100, {threads} thread(s)", f"{n_train} × 20", "sklearn", "accuracies differ by more than 0.02: " + check)
            continue
        wl = f"RandomForest 100 trees depth 8 (Gini, sqrt features, bootstrap) on {n_train:,} × 20, {threads} thread(s)" + (" pinned" if threads == "1" else "")
        t.pair("training", f"train RF100: seconds ({threads} thread{'s' if threads == '2' else ''})", wl,
               [r["seconds"] for r in res["ss" + threads]], f"sklearn n_jobs={threads}", [r["seconds"] for r in res["sk" + threads]], "s", False, check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}) before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def post(url: str, body: bytes) -> object:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def first_float(v) -> list[float]:
    """Every float in a JSON answer, in order (answers differ in shape between servers)."""
    if isinstance(v, float):
        return [v]
    if isinstance(v, dict):
        return [f for x in v.values() for f in first_float(x)]
    if isinstance(v, list):
        return [f for x in v for f in first_float(x)]
    return []


def wrk(url: str, lua: Path, seconds: int, conns: int) -> dict:
    p = subprocess.run(pin(1) + ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(lua), url], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed: {p.stderr}")
    text = p.stdout

    def dur(s: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s|m)", s)
        v, u = float(m.group(1)), m.group(2)
        return v * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[u]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = dur(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = dur(re.search(r"\s99%\s+(\S+)", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    if bad:
        raise RuntimeError(f"{bad.group(1)} non-2xx answers from {url}")
    return {"rps": rps, "p50": p50, "p99": p99, "socket_errors": errors.group(1) if errors else None}


def imported_rf(ss_bin: str, env: dict, m: dict) -> Path:
    """The RF model imported into a fresh streamscore artifact (the same ONNX file the peers load)."""
    model_dir = WORK / "rf_model"
    shutil.rmtree(model_dir, ignore_errors=True)
    subprocess.run([ss_bin, "import-onnx", m["rf"]["onnx"], "--engine", "native", "--out", str(model_dir)], check=True, env=env, capture_output=True)
    return model_dir


def http(t: Table, cfg: dict, ss_bin: str, env: dict, m: dict, runs: int) -> None:
    conns = 32
    wl = f"1-row POST /score, RF100 depth 8, {conns} connections, server pinned to core 0, wrk -t1 pinned to core 1, {cfg['http_seconds']} s per run"
    if not shutil.which("wrk"):
        for peer in ("azureml-inference-server-http", "MLServer"):
            t.not_yet("http", "HTTP /score", wl, peer, "wrk is not installed (apt-get install wrk)")
        return
    model_dir = imported_rf(ss_bin, env, m)
    row = m["x"][0].tolist()
    body = json.dumps({"data": [row]})
    lua = WORK / "post.lua"
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n')
    want = float(m["rf"]["est"].predict_proba(np.array([row]))[0, 1])
    procs = []
    try:
        port = free_port()
        ss = subprocess.Popen(pin(0) + [ss_bin, "serve", "--model", str(model_dir), "--port", str(port), "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ss)
        ss_url = f"http://127.0.0.1:{port}"
        wait_ready(ss_url + "/", ss)
        aport = free_port()
        aenv = dict(env, BENCH_MODEL=m["rf"]["pkl"])
        az = subprocess.Popen(pin(0) + [str(HERE / ".venv" / "bin" / "azmlinfsrv"), "--entry_script", str(HERE / "score.py"), "--port", str(aport)],
                              env=aenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=WORK)
        procs.append(az)
        az_url = f"http://127.0.0.1:{aport}"
        wait_ready(az_url + "/", az, timeout=120)
        got_ss = first_float(post(ss_url + "/score", body.encode()))
        got_az = first_float(post(az_url + "/score", body.encode()))
        ok = any(abs(v - want) <= 1e-5 for v in got_ss) and any(abs(v - want) <= 1e-12 for v in got_az)
        check = f"one row's P(class 1): sklearn {want:.6f}; streamscore answer {got_ss}; azureml {got_az} (tolerance 1e-5, ONNX float32)"
        sides = {"ss": lambda: wrk(ss_url + "/score", lua, cfg["http_seconds"], conns),
                 "az": lambda: wrk(az_url + "/score", lua, cfg["http_seconds"], conns)}
        mls = mlserver_start(m, env, procs)
        if isinstance(mls, dict):
            sides["mls"] = lambda: wrk(mls["url"], mls["lua"], cfg["http_seconds"], conns)
        if not ok:
            t.not_yet("http", "HTTP /score", wl, "azureml-inference-server-http", "answers differ: " + check)
            return
        log(f"http: {check}")
        res = alternate(runs, sides)
        peers = [("az", "azureml-inference-server-http 1.5.1 (score.py, same sklearn model)")]
        if "mls" in res:
            peers.append(("mls", "MLServer 1.7.1 (mlserver-sklearn, same model, V2 infer)"))
        for key, peer in peers:
            pcheck = check if key == "az" else mls["check"]
            t.pair("http", "HTTP /score req/s", wl, [r["rps"] for r in res["ss"]], peer, [r["rps"] for r in res[key]], "req/s", True, pcheck)
            t.pair("http", "HTTP /score p50 latency", wl, [r["p50"] for r in res["ss"]], peer, [r["p50"] for r in res[key]], "s", False, pcheck)
            t.pair("http", "HTTP /score p99 latency", wl, [r["p99"] for r in res["ss"]], peer, [r["p99"] for r in res[key]], "s", False, pcheck)
        if not isinstance(mls, dict):
            t.not_yet("http", "HTTP /score", wl, "MLServer", mls)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def mlserver_start(m: dict, env: dict, procs: list):
    """Starts MLServer on the same model (its own venv) or returns why it cannot."""
    failed = HERE / ".venv-mlserver.failed"
    exe = HERE / ".venv-mlserver" / "bin" / "mlserver"
    if failed.exists():
        return "MLServer did not install: " + failed.read_text().strip().replace("\n", " ")[-200:]
    if not exe.exists():
        return "MLServer is not installed (bench/.venv-mlserver)"
    d = WORK / "mlserver"
    shutil.rmtree(d, ignore_errors=True)
    (d / "rf").mkdir(parents=True)
    py = str(HERE / ".venv-mlserver" / "bin" / "python")
    # The same pickled estimator, saved with the joblib of MLServer's environment.
    subprocess.run([py, "-c", "import pickle,joblib,sys; joblib.dump(pickle.load(open(sys.argv[1],'rb')), sys.argv[2])", m["rf"]["pkl"], str(d / "rf" / "model.joblib")], check=True)
    port = free_port()
    (d / "settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": 0}))
    (d / "rf" / "model-settings.json").write_text(json.dumps({"name": "rf", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}))
    p = subprocess.Popen(pin(0) + [str(exe), "start", str(d)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/v2/models/rf/ready", p, timeout=120)
    except RuntimeError as e:
        return f"MLServer did not start: {e}"
    row = m["x"][0].tolist()
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, COLS], "datatype": "FP64", "data": row}], "outputs": [{"name": "predict_proba"}]})
    want = float(m["rf"]["est"].predict_proba(np.array([row]))[0, 1])
    got = first_float(post(base + "/v2/models/rf/infer", body.encode()))
    if not any(abs(v - want) <= 1e-12 for v in got):
        return f"MLServer answered {got}, sklearn {want}"
    lua = WORK / "post_v2.lua"
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n')
    return {"url": base + "/v2/models/rf/infer", "lua": lua, "check": f"one row's P(class 1) {want:.6f} from MLServer's V2 infer and streamscore's /score"}


def streaming(t: Table, cfg: dict, ss_bin: str, env: dict, m: dict, runs: int) -> None:
    n = cfg["stream_events"]
    events = WORK / f"events_{n}.jsonl"
    rng = np.random.default_rng(5)
    x, _ = features(rng, n)
    if not events.exists():
        with open(events, "w") as f:
            for r in x:
                f.write(json.dumps({f"f{c}": float(v) for c, v in enumerate(r)}) + "\n")
    model_dir = imported_rf(ss_bin, env, m)

    def ss_once() -> dict:
        out = Path(tempfile.mkdtemp(dir=WORK))
        start = time.perf_counter()
        subprocess.run([ss_bin, "stream", "--model", str(model_dir), "--source", f"file:{events}", "--sink", f"jsonl:{out}", "--batch-size", "512"],
                       check=True, env=env, capture_output=True)
        seconds = time.perf_counter() - start
        # The inference log: one model_outputs line per batch, its `data` one answer per event.
        lines = [line for f in sorted(out.rglob("*.jsonl")) if "model_outputs" in f.parts for line in f.read_text().splitlines()]
        shutil.rmtree(out)
        return {"seconds": seconds, "events_per_s": n / seconds, "lines": lines}

    def peer_once() -> dict:
        out = WORK / "peer_stream.jsonl"
        r = peer_call([], ["stream", m["rf"]["pkl"], str(events), str(out), "512"])
        r["lines"] = out.read_text().splitlines()
        return r

    first = ss_once()
    peer = peer_once()
    want = [json.loads(line)["probability"] for line in peer["lines"][:1000]]
    answers = [row for line in first["lines"] for row in json.loads(line).get("data", [])]

    def p1(row) -> float:
        if isinstance(row, dict):
            keys = sorted(k for k in row if k.startswith("probability"))
            if keys:
                return float(row[keys[-1]])
        return first_float(row)[-1]

    check = f"{len(answers)} answers in streamscore's model_outputs for {n} events"
    ok = len(answers) == n
    if ok:
        dmax = max(abs(p1(a) - w) for a, w in zip(answers, want))
        ok = dmax <= 1e-5
        check += f"; P(class 1) of the first 1000 events (in log order) vs the Python pipeline max |Δ| {dmax:.1e} (tolerance 1e-5)"
    else:
        check += f" (first line: {first['lines'][0][:300] if first['lines'] else 'none'})"
    wl = f"file (JSONL, {n:,} events of 20 floats) → RF100 depth 8 → JSONL, batch 512, both cores, process wall time"
    if not ok:
        t.not_yet("streaming", "stream events/s", wl, "Python json + sklearn loop", "outputs not checked equal: " + check)
        return
    log(f"streaming: {check}")
    res = alternate(runs, {"ss": lambda: {k: v for k, v in ss_once().items() if k != "lines"},
                           "py": lambda: {k: v for k, v in peer_once().items() if k != "lines"}})
    t.pair("streaming", "stream events/s", wl, [r["events_per_s"] for r in res["ss"]], "Python: json.loads + sklearn predict_proba per 512 + json.dumps",
           [r["events_per_s"] for r in res["py"]], "events/s", True, check)


def kafka(t: Table, cfg: dict, runs: int) -> None:
    """The Kafka rows: `ml-stream`'s `kafka_throughput` bench (release, feature `kafka`) runs
    the file pipeline and Kafka → RF100 → Kafka with 1 and 2 processes on librdkafka's mock
    broker in one process, and checks every record of the sink topic itself. Each run is one
    round (file, then 1 and 2 processes); the ratio is against the file pipeline of the same run."""
    n = cfg["kafka_events"]
    cmd = ["cargo", "bench", "-p", "ml-stream", "--features", "kafka", "--bench", "kafka_throughput", "--",
           "--events", str(n), "--processes", "1,2"]
    log(" ".join(cmd))
    rates: dict = {"file": [], 1: [], 2: []}
    checks: list[str] = []
    for r in range(runs):
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, RUST_LOG="error"))
        if p.returncode != 0:
            # The whole output (the workers' lines included) is kept: a tail rarely says why.
            kept = WORK / f"kafka-round-{r + 1}-failed.log"
            kept.write_text(p.stdout + "\n" + p.stderr)
            why = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
            raise RuntimeError(f"kafka_throughput failed in round {r + 1} ({p.returncode}): "
                               f"{why[-1] if why else (p.stdout + p.stderr).strip()[-300:]} (full output: {kept})")
        m = re.search(r"file source .*?:\s*([0-9.]+) events/s", p.stdout)
        ks = {int(k): float(v) for k, v in re.findall(r"kafka → RF100 → kafka, (\d+) process\(es\):\s*([0-9.]+) events/s", p.stdout)}
        checked = re.findall(r"checked: (all \d+ events in the sink topic, inputs and outputs exact; \d+ repeats[^;]*)", p.stdout)
        if not m or set(ks) != {1, 2} or len(checked) != 2:
            raise RuntimeError(f"kafka_throughput printed no complete result: {p.stdout.strip()[-600:]}")
        rates["file"].append(float(m.group(1)))
        rates[1].append(ks[1])
        rates[2].append(ks[2])
        checks = checked
        log(f"  round {r + 1}/{runs} done")
    check = "the bench reads the whole sink topic: " + " / ".join(checks)
    for k in (1, 2):
        wl = (f"{n:,} events of the credit schema, 6 partitions, RF100 → Kafka sink (acks=all, idempotent), {k} `stream` process(es) in one "
              "consumer group; librdkafka's mock broker, the producer and the checker share the 2 cores; rate from first to last sink record")
        t.pair("streaming", f"Kafka → score → Kafka, {k} process(es): events/s", wl, rates[k],
               "streamscore's own file → RF100 → JSONL pipeline, same run and events (the issue's baseline)", rates["file"], "events/s", True, check)


def drift(t: Table, cfg: dict, exe: str, env: dict, runs: int) -> None:
    nr, nc = cfg["drift_ref"], cfg["drift_cur"]
    rng = np.random.default_rng(3)
    scale = 1 + np.arange(COLS)
    shift = np.where(np.arange(COLS) % 2 == 0, 0.1 * scale, 0.0)
    ref = write(WORK / f"ref_{nr}.f64", rng.standard_normal((nr, COLS)) * scale + np.arange(COLS))
    cur = write(WORK / f"cur_{nc}.f64", rng.standard_normal((nc, COLS)) * scale + np.arange(COLS) + shift)
    core = pin(1)
    three = "ks,wasserstein,psi"

    def ss(mode: str, tests: str, out: str | None = None):
        return lambda: run_json(core + [exe, "drift", ref, cur, str(COLS), mode, tests] + ([out] if out else []), env, memory=True)

    def peer(kind: str, out: str | None = None):
        # Each kind in a worker of its own that imports what the kind uses; each run in a child
        # forked from it, for that run's peak memory.
        preload = {"scipy": ["numpy", "scipy.stats"], "evidently": ["numpy", "pandas", "evidently", "evidently.presets"]}[kind]
        return lambda: peer_call(core, ["drift", kind, ref, cur, str(COLS)] + ([out] if out else []), kind, memory=True, preload=preload)

    # Outputs first: every streamscore mode against scipy/numpy and against Evidently.
    outs = {k: str(WORK / f"drift_{k}.json") for k in ("exact", "profile", "scipy", "def_exact", "def_profile", "evidently")}
    ss("exact", three, outs["exact"])()
    ss("profile-prepared", three, outs["profile"])()
    peer("scipy", outs["scipy"])()
    ss("exact", "default", outs["def_exact"])()
    ss("profile-prepared", "default", outs["def_profile"])()
    ev_ok = True
    try:
        peer("evidently", outs["evidently"])()
    except RuntimeError as e:
        ev_ok, ev_err = False, str(e)[-200:]
    load = {k: json.loads(Path(v).read_text()) for k, v in outs.items() if Path(v).exists()}

    def maxdiff(a: dict, b: dict, keys) -> float:
        return max(abs(a[f][k] - b[f][k]) for f in a for k in keys)

    names = [f"f{i}" for i in range(COLS)]
    e_vs_s = {k: max(abs(load["exact"][f][k] - load["scipy"][f][k]) for f in names) for k in ("ks", "wasserstein", "psi")}
    p_vs_s = {k: max(abs(load["profile"][f][k] - load["scipy"][f][k]) for f in names) for k in ("ks", "wasserstein", "psi")}
    exact_ok = e_vs_s["ks"] <= 1e-9 and e_vs_s["wasserstein"] <= 1e-9 and e_vs_s["psi"] <= 1e-9
    check_s = ("per-feature KS p-value, normed Wasserstein, PSI vs scipy/numpy: exact max |Δ| "
               + ", ".join(f"{k} {v:.1e}" for k, v in e_vs_s.items()) + " (tolerance 1e-9); profile (approximate) max |Δ| "
               + ", ".join(f"{k} {v:.1e}" for k, v in p_vs_s.items()))
    wl = f"reference {nr:,} × 20 vs current {nc:,} × 20 (10 of 20 features shifted), KS + normed Wasserstein + PSI per feature, 1 thread pinned; time from the data in memory"
    sides = {}
    if exact_ok:
        sides.update({"exact": ss("exact", three), "exact_prepared": ss("exact-prepared", three), "profile_scratch": ss("profile", three),
                      "profile": ss("profile-prepared", three), "scipy": peer("scipy")})
        log(f"drift: {check_s}")
    else:
        t.not_yet("drift", "drift KS+W+PSI", wl, "scipy + numpy", "outputs differ: " + check_s)
    ev_wl = f"reference {nr:,} × 20 vs current {nc:,} × 20, default test per column (normed Wasserstein for > 1000 rows), 1 thread pinned"
    check_e = None
    if ev_ok and load.get("evidently"):
        de = max(abs(load["def_exact"][f]["default"] - load["evidently"][f]["default"]) for f in names)
        dp = max(abs(load["def_profile"][f]["default"] - load["evidently"][f]["default"]) for f in names)
        check_e = f"per-feature drift score vs Evidently DataDriftPreset: exact max |Δ| {de:.1e} (tolerance 1e-9), profile (approximate) {dp:.1e}"
        if de <= 1e-9:
            sides.update({"def_exact": ss("exact", "default"), "def_profile": ss("profile-prepared", "default"), "evidently": peer("evidently")})
            log(f"drift: {check_e}")
        else:
            t.not_yet("drift", "drift vs Evidently", ev_wl, "Evidently 0.7.23 DataDriftPreset", "outputs differ: " + check_e)
    else:
        t.not_yet("drift", "drift vs Evidently", ev_wl, "Evidently 0.7.23 DataDriftPreset",
                  "Evidently run failed: " + (ev_err if not ev_ok else "no per-column scores found in its snapshot"))
    if not sides:
        return
    res = alternate(runs, sides)
    for mode, label in (("exact", "exact, from the raw reference (sort included)"), ("exact_prepared", "exact, reference sorted beforehand"),
                        ("profile_scratch", "profile built from the raw reference"), ("profile", "profile precomputed")):
        if mode in res:
            t.pair("drift", f"drift KS+W+PSI time, {label}", wl, [r["seconds"] for r in res[mode]], "scipy ks_2samp + wasserstein_distance + numpy PSI",
                   [r["seconds"] for r in res["scipy"]], "s", False, check_s)
            t.pair("drift", f"drift KS+W+PSI peak RSS, {label}", wl + "; process peak RSS incl. the data", [r["peak_rss_mb"] for r in res[mode]],
                   "scipy + numpy", [r["peak_rss_mb"] for r in res["scipy"]], "MB", False, check_s)
    for mode, label in (("def_exact", "exact"), ("def_profile", "profile precomputed")):
        if mode in res:
            t.pair("drift", f"drift report time, {label}", ev_wl, [r["seconds"] for r in res[mode]], "Evidently 0.7.23 DataDriftPreset",
                   [r["seconds"] for r in res["evidently"]], "s", False, check_e)
            t.pair("drift", f"drift report peak RSS, {label}", ev_wl + "; process peak RSS incl. the data", [r["peak_rss_mb"] for r in res[mode]],
                   "Evidently 0.7.23", [r["peak_rss_mb"] for r in res["evidently"]], "MB", False, check_e)


def adwin_values(n: int) -> tuple[str, str]:
    """The ADWIN input (normal noise with a mean step every tenth) and its description."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, n)
    step = max(n // 10, 1)
    for k in range(10):
        x[k * step:(k + 1) * step] += 0.5 * (k % 3)
    return write(WORK / f"adwin_{n}.f64", x), f"{n:,} values (normal noise, mean steps every {step:,})"


def adwin(t: Table, cfg: dict, exe: str, env: dict, runs: int) -> None:
    values, what = adwin_values(cfg["adwin_values"])
    a, b = WORK / "adwin_ss.json", WORK / "adwin_river.json"
    run_json([exe, "adwin", values, str(a)], env)
    peer_call(pin(1), ["adwin", values, str(b)])
    got, want = json.loads(a.read_text()), json.loads(b.read_text())
    wl = f"ADWIN (river defaults), {what}, 1 thread pinned"
    if got != want:
        t.not_yet("adwin", "ADWIN updates/s", wl, "river 0.26.1", f"change points differ: {got[:5]} vs {want[:5]}")
        return
    check = f"the same {len(got)} change points as river"
    log(f"adwin: {check}")
    core = pin(1)
    res = alternate(runs, {"ss": lambda: run_json(core + [exe, "adwin", values], env),
                           "river": lambda: peer_call(core, ["adwin", values])})
    t.pair("adwin", "ADWIN updates/s (Rust)", wl, [r["updates_per_s"] for r in res["ss"]], "river 0.26.1 ADWIN, Python loop",
           [r["updates_per_s"] for r in res["river"]], "updates/s", True, check)


def python_wheel(env: dict) -> None:
    """Release build of the streamscore wheel (maturin), installed into bench/.venv over any
    earlier one: the Python rows measure what `pip install streamscore` gives."""
    out = WORK / "wheels"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [PY, "-m", "maturin", "build", "--release", "-m", str(ROOT / "py-bindings" / "Cargo.toml"), "--out", str(out)]
    log(" ".join(cmd[1:]))
    # maturin reports on stdout: keep stdout for the table.
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=sys.stderr)
    wheels = sorted(out.glob("streamscore-*.whl"))
    if not wheels:
        raise RuntimeError(f"maturin built no wheel into {out}")
    subprocess.run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--force-reinstall", "--no-deps", str(wheels[-1])],
                   env=env, check=True, stdout=sys.stderr)


def python(t: Table, cfg: dict, env: dict, m: dict, runs: int) -> None:
    # predict_proba: the scikit-learn forest itself on both sides (streamscore through its ONNX
    # export, as `Model.from_onnx` / `from_sklearn` load it), on one DataFrame.
    mm, sample, n = m["rf"], 1000, len(m["x"])
    a, b = WORK / "pyproba_ss.f64", WORK / "pyproba_sklearn.f64"
    peer_call(pin(1), ["pyproba", "streamscore", mm["onnx"], m["data"], str(COLS), str(a), str(sample)], "ss")
    peer_call(pin(1), ["pyproba", "sklearn", mm["pkl"], m["data"], str(COLS), str(b), str(sample)], "sk")
    d = float(np.max(np.abs(np.fromfile(a, dtype="<f8") - np.fromfile(b, dtype="<f8"))))
    wl = (f"RF100 depth 8 (the scikit-learn forest; streamscore: its ONNX export through Model.from_onnx), {n:,} rows × 20 float "
          "features in a pandas DataFrame, one predict_proba call, 1 thread pinned (threads=1, n_jobs=1)")
    check = f"P(class 1) on {sample} rows vs scikit-learn, max |Δ| {d:.1e} (tolerance 1e-5: ONNX scores in float32)"
    peer = "scikit-learn 1.9.1 predict_proba"
    if not d <= 1e-5:
        t.not_yet("python", "Python predict_proba on a DataFrame: rows/s", wl, peer, "outputs differ: " + check)
    else:
        log(f"python predict_proba: {check}")
        core = pin(1)
        res = alternate(runs, {
            "ss": lambda: peer_call(core, ["pyproba", "streamscore", mm["onnx"], m["data"], str(COLS)], "ss"),
            "sklearn": lambda: peer_call(core, ["pyproba", "sklearn", mm["pkl"], m["data"], str(COLS)], "sk"),
        })
        t.pair("python", "Python predict_proba on a DataFrame: rows/s", wl, [r["rows_per_s"] for r in res["ss"]], peer,
               [r["rows_per_s"] for r in res["sklearn"]], "rows/s", True, check)
    # ADWIN.update_many against river's loop on the same values.
    values, what = adwin_values(cfg["adwin_values"])
    a, b = WORK / "pyadwin_ss.json", WORK / "adwin_river.json"
    peer_call(pin(1), ["pyadwin", values, str(a)], "ss")
    peer_call(pin(1), ["adwin", values, str(b)], "river")
    got, want = json.loads(a.read_text()), json.loads(b.read_text())
    wl = f"ADWIN (river defaults), {what}: streamscore.ADWIN().update_many(array) vs river's update per value, 1 thread pinned"
    peer = "river 0.26.1 ADWIN, Python loop"
    if got != want:
        t.not_yet("python", "Python ADWIN.update_many: updates/s", wl, peer, f"change points differ: {got[:5]} vs {want[:5]}")
        return
    check = f"the same {len(got)} change points as river"
    log(f"python adwin: {check}")
    core = pin(1)
    res = alternate(runs, {"ss": lambda: peer_call(core, ["pyadwin", values], "ss"),
                           "river": lambda: peer_call(core, ["adwin", values], "river")})
    t.pair("python", "Python ADWIN.update_many: updates/s", wl, [r["updates_per_s"] for r in res["ss"]], peer,
           [r["updates_per_s"] for r in res["river"]], "updates/s", True, check)


# ---------------------------------------------------------------- main


def main() -> None:
    global WORKERS
    ap = argparse.ArgumentParser(description="streamscore against its peers, side by side")
    ap.add_argument("--quick", action="store_true", help="a reduced set in under 5 minutes after the build")
    ap.add_argument("--only", choices=GROUPS, action="append", help="run only this group (repeatable)")
    ap.add_argument("--runs", type=int, default=5, help="runs per side (at least 5 for a committed table)")
    args = ap.parse_args()
    # --quick leaves the Kafka rows out unless asked for by name: each round forms a consumer
    # group twice on the mock broker (about a minute), more than the whole quick budget allows.
    only = set(args.only or [g for g in GROUPS if not (args.quick and g == "kafka")])
    cfg = sizes(args.quick)
    info = machine()
    log(f"{info['cpu']}, {info['cores']} cores, load average {info['load_average_at_start']}")
    # One build of the streamscore package (the same dependency features for both binaries).
    exe = build("streamscore", ["--bench", "compare", "--features", "bench-compare"])
    ss_bin = build("streamscore", ["--bin", "streamscore", "--features", "bench-compare"]) if only & {"http", "streaming"} else None
    WORK.mkdir(exist_ok=True)
    env = dict(os.environ, VIRTUAL_ENV=str(HERE / ".venv"), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", RUST_LOG="error")
    if "python" in only:
        python_wheel(env)
    if "kafka" in only:
        # Built here so that the build is not part of the first round.
        kcmd = ["cargo", "bench", "--no-run", "-p", "ml-stream", "--features", "kafka", "--bench", "kafka_throughput"]
        log(" ".join(kcmd))
        subprocess.run(kcmd, cwd=ROOT, check=True, stdout=sys.stderr)
    t = Table()
    started = time.time()
    need_models = only & {"scoring", "http", "streaming", "python"}
    m = models(WORK, cfg["score_rows"]) if need_models else None
    sections = [
        ("scoring", lambda: scoring(t, cfg, exe, env, m, args.runs)),
        ("adwin", lambda: adwin(t, cfg, exe, env, args.runs)),
        ("drift", lambda: drift(t, cfg, exe, env, args.runs)),
        ("http", lambda: http(t, cfg, ss_bin, env, m, args.runs)),
        ("streaming", lambda: streaming(t, cfg, ss_bin, env, m, args.runs)),
        ("training", lambda: training(t, cfg, exe, env, args.runs)),
        ("python", lambda: python(t, cfg, env, m, args.runs)),
        ("kafka", lambda: kafka(t, cfg, args.runs)),
    ]
    results = HERE / "results"
    results.mkdir(exist_ok=True)

    def save(done: list[str]) -> str:
        """Writes latest.json (after every group, so that an interrupted run keeps what it measured)."""
        elapsed = time.time() - started
        info["load_average_at_end"] = list(os.getloadavg())
        info["seconds_after_build"] = round(elapsed, 1)
        table = t.markdown()
        (results / "latest.json").write_text(json.dumps({"mode": "quick" if args.quick else "full", "runs": args.runs, "machine": info,
                                                         "groups_done": done, "complete": len(done) == len([n for n, _ in sections if n in only]),
                                                         "rows": t.rows, "markdown": table}, indent=1) + "\n")
        return table

    done: list[str] = []
    for name, f in sections:
        if name in only:
            log(f"{name} ({time.time() - started:.0f} s so far)")
            try:
                with Workers(env) as WORKERS:
                    f()
            except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
                t.not_yet(name, name, "—", "—", f"the run failed: {str(e)[-300:]}")
            done.append(name)
            save(done)
    table = save(done)
    elapsed = time.time() - started
    header = (f"{'quick' if args.quick else 'full'} run, {args.runs} runs per side, medians; machine: {info['cpu']}, "
              f"{info['cores']} cores, load average at start {', '.join(f'{v:.2f}' for v in info['load_average_at_start'])}, "
              f"at end {', '.join(f'{v:.2f}' for v in info['load_average_at_end'])}; "
              f"{elapsed:.0f} s after the build. Ratio > 1: streamscore is better (faster, or less memory).")
    print(header)
    print()
    print(table)
    if args.quick and not args.only:
        print()
        print("Kafka rows are not in --quick (about a minute per round): ./bench/compare --quick --only kafka")
    log(f"wrote {results / 'latest.json'}")


if __name__ == "__main__":
    main()
