"""The Python side of ./bench/compare: one measurement per command, as the streamscore side
(`streamscore/benches/compare.rs`), so that the driver can alternate them (A B A B). Prints one
JSON object on stdout. The driver runs the commands in `serve` workers (imports once per
group; the memory measurements each in a child forked for it, for its peak RSS).

    peers.py score sklearn|onnxruntime MODEL DATA.f64 COLS BATCHES SECONDS
    peers.py train DATA.f64 LABELS.u8 ROWS COLS N_JOBS TRAIN_ROWS
    peers.py drift scipy|evidently REF.f64 CUR.f64 COLS [OUT.json]
    peers.py adwin VALUES.f64 [OUT.json]
    peers.py stream MODEL.pkl EVENTS.jsonl OUT.jsonl BATCH
    peers.py pyproba streamscore|sklearn MODEL DATA.f64 COLS [OUT.f64 SAMPLE]
    peers.py pyadwin VALUES.f64 [OUT.json]
    peers.py serve      (the commands above, one JSON array per stdin line; see `serve`)

`pyproba` and `pyadwin` time the streamscore wheel installed in this venv (a release build,
installed by compare.py) against the same call of the peer, on the same DataFrame or array.
"""

from __future__ import annotations

import json
import pickle
import sys
import time

import numpy as np


def read_matrix(path: str, cols: int) -> np.ndarray:
    return np.fromfile(path, dtype="<f8").reshape(-1, cols)


def timed_batches(predict, x: np.ndarray, batch: int, seconds: float) -> dict:
    n_frames = max(1, min(64, len(x) // max(batch, 1)))
    frames = [np.ascontiguousarray(np.take(x, np.arange(k * batch, (k + 1) * batch) % len(x), axis=0)) for k in range(n_frames)]
    warm = time.perf_counter()
    while time.perf_counter() - warm < seconds / 4:
        predict(frames[0])
    calls, start = 0, time.perf_counter()
    while True:
        predict(frames[calls % n_frames])
        calls += 1
        # At least 3 calls, so that a slow batch is not one sample.
        if calls >= 3 and time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    rows = calls * batch
    return {"rows_per_s": rows / elapsed, "seconds_per_row": elapsed / rows, "calls": calls}


def score(kind: str, model: str, data: str, cols: int, batches: str, seconds: float) -> dict:
    x = read_matrix(data, cols)
    if kind == "sklearn":
        with open(model, "rb") as f:
            est = pickle.load(f)
        predict = est.predict_proba
    elif kind == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        x = x.astype(np.float32)

        def predict(rows):
            return session.run(None, {name: rows})

    else:
        raise SystemExit(f"unknown scorer {kind}")
    return {b: timed_batches(predict, x, int(b), seconds) for b in batches.split(",")}


def train(data: str, labels: str, rows: int, cols: int, n_jobs: int, train_rows: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier

    x = read_matrix(data, cols)
    y = np.fromfile(labels, dtype=np.uint8)
    assert len(x) == rows == len(y)
    est = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=n_jobs)
    start = time.perf_counter()
    est.fit(x[:train_rows], y[:train_rows])
    seconds = time.perf_counter() - start
    accuracy = float((est.predict(x[train_rows:]) == y[train_rows:]).mean())
    return {"seconds": seconds, "holdout_accuracy": accuracy}


def numpy_psi(ref_sorted: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    """PSI over reference quantile bins (edges at sorted[floor(i/bins·(n−1))], x ≤ edge)."""
    n = len(ref_sorted)
    edges = []
    for i in range(1, bins):
        v = ref_sorted[int(np.floor(i / bins * (n - 1)))]
        if (not edges or v > edges[-1]) and v < ref_sorted[-1]:
            edges.append(v)
    edges = np.asarray(edges)
    r = np.bincount(np.searchsorted(edges, ref_sorted, side="left"), minlength=len(edges) + 1) / n
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1) / len(cur)
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def drift(kind: str, ref: str, cur: str, cols: int, out: str | None) -> dict:
    r = read_matrix(ref, cols)
    c = read_matrix(cur, cols)
    names = [f"f{i}" for i in range(cols)]
    scores: dict = {}
    if kind == "scipy":
        from scipy.stats import ks_2samp, wasserstein_distance

        start = time.perf_counter()
        for i, name in enumerate(names):
            rc, cc = r[:, i], c[:, i]
            ks = ks_2samp(rc, cc).pvalue
            w = wasserstein_distance(rc, cc) / np.std(rc)
            psi = numpy_psi(np.sort(rc), cc)
            scores[name] = {"ks": float(ks), "wasserstein": float(w), "psi": psi}
        seconds = time.perf_counter() - start
    elif kind == "evidently":
        import pandas as pd
        from evidently import Report
        from evidently.presets import DataDriftPreset

        rdf = pd.DataFrame(r, columns=names)
        cdf = pd.DataFrame(c, columns=names)
        start = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=cdf, reference_data=rdf)
        result = snapshot.dict()
        seconds = time.perf_counter() - start
        for m in result["metrics"]:
            # ValueDrift(column=fN,...) metrics carry each column's drift score.
            cfg = m.get("config", {})
            col = cfg.get("column")
            if col in names and isinstance(m.get("value"), (int, float)):
                scores[col] = {"default": float(m["value"]), "method": cfg.get("method")}
    else:
        raise SystemExit(f"unknown drift peer {kind}")
    if out:
        with open(out, "w") as f:
            json.dump(scores, f)
    return {"seconds": seconds}


def adwin(values: str, out: str | None) -> dict:
    from river.drift import ADWIN

    xs = np.fromfile(values, dtype="<f8").tolist()
    detector = ADWIN()
    changes = []
    start = time.perf_counter()
    for i, v in enumerate(xs):
        detector.update(v)
        if detector.drift_detected:
            changes.append(i)
    seconds = time.perf_counter() - start
    if out:
        with open(out, "w") as f:
            json.dump(changes, f)
    return {"seconds": seconds, "updates_per_s": len(xs) / seconds, "changes": len(changes)}


def stream(model: str, events: str, out: str, batch: int) -> dict:
    """File → score → JSONL in plain Python: read lines, parse, score a batch, write lines."""
    with open(model, "rb") as f:
        est = pickle.load(f)
    start = time.perf_counter()
    n = 0
    with open(events) as src, open(out, "w") as dst:
        rows: list = []
        names = None

        def flush(rows):
            x = np.array([[r[k] for k in names] for r in rows], dtype=np.float64)
            p = est.predict_proba(x)[:, 1]
            dst.writelines(json.dumps({"offset": r["_offset"], "probability": float(q)}) + "\n" for r, q in zip(rows, p))

        for offset, line in enumerate(src):
            row = json.loads(line)
            if names is None:
                names = [k for k in row if k.startswith("f")]
            row["_offset"] = offset
            rows.append(row)
            n += 1
            if len(rows) == batch:
                flush(rows)
                rows = []
        if rows:
            flush(rows)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "events_per_s": n / seconds, "events": n}


def frame(data: str, cols: int):
    import pandas as pd

    return pd.DataFrame(read_matrix(data, cols), columns=[f"f{i}" for i in range(cols)])


def pyproba(kind: str, model: str, data: str, cols: int, out: str | None, sample: int) -> dict:
    """One `predict_proba` over the whole DataFrame, after one call on its first rows (so
    that first-call set-up is not timed). streamscore: the ONNX export of the scikit-learn
    forest through `Model.from_onnx` (its native engine), 1 thread; scikit-learn: the pickled
    estimator (`n_jobs=1`), with the DataFrame as given."""
    import warnings

    df = frame(data, cols)
    if kind == "streamscore":
        import streamscore

        m = streamscore.Model.from_onnx(model, columns=list(df.columns))

        def predict(x):
            return m.predict_proba(x, threads=1)

    elif kind == "sklearn":
        with open(model, "rb") as f:
            est = pickle.load(f)
        est.set_params(n_jobs=1)
        # Fitted on an array: scikit-learn warns that the DataFrame has column names.
        warnings.filterwarnings("ignore", message="X has feature names")

        def predict(x):
            return est.predict_proba(x)

    else:
        raise SystemExit(f"unknown predict_proba side {kind}")
    predict(df.head(64))
    start = time.perf_counter()
    p = predict(df)
    seconds = time.perf_counter() - start
    if out:
        np.ascontiguousarray(p[:sample, 1]).astype("<f8").tofile(out)
    return {"seconds": seconds, "rows_per_s": len(df) / seconds}


def pyadwin(values: str, out: str | None) -> dict:
    """`streamscore.ADWIN().update_many` over the whole array (river's defaults)."""
    import streamscore

    xs = np.fromfile(values, dtype="<f8")
    detector = streamscore.ADWIN()
    start = time.perf_counter()
    changes = detector.update_many(xs)
    seconds = time.perf_counter() - start
    if out:
        with open(out, "w") as f:
            json.dump([int(i) for i in changes], f)
    return {"seconds": seconds, "updates_per_s": len(xs) / seconds, "changes": len(changes)}


def serve() -> None:
    """`peers.py serve`: runs commands read from stdin, one JSON line each, answering each with
    one JSON line: the command's result, or {"error": ...}. A line is either the arguments of a
    command above (a JSON array), or an object:

    - {"preload": [MODULE, ...]}: imports those modules now (answers {});
    - {"args": [...], "memory": true}: runs the command in a child forked for it and adds the
      child's peak resident set as `peak_rss_mb` (as `/usr/bin/time -v` reports a process's: the
      child starts with what this worker holds, the interpreter and the preloaded modules, as a
      fresh process would after its imports; the worker itself never measures).

    The driver keeps one worker per group and side, so that the imports (seconds for Evidently,
    scikit-learn, onnxruntime) are paid once per group instead of once per run; every run still
    does the whole measured work."""
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            if isinstance(cmd, list):
                out = run(cmd)
            elif "preload" in cmd:
                import importlib

                for module in cmd["preload"]:
                    importlib.import_module(module)
                out = {}
            elif cmd.get("memory"):
                out = run_forked(cmd["args"])
            else:
                out = run(cmd["args"])
        except (Exception, SystemExit) as e:  # noqa: BLE001 - reported to the driver, which stops the group
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)


def run_forked(argv: list[str]) -> dict:
    """`run(argv)` in a forked child; its result with the child's peak RSS."""
    import os
    import resource

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = run(argv)
            out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except (Exception, SystemExit) as e:  # noqa: BLE001
            out = {"error": f"{type(e).__name__}: {e}"}
        with os.fdopen(w, "w") as f:
            f.write(json.dumps(out))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        return {"error": f"the measuring child exited with status {status} and no result"}
    return json.loads(text)


def run(argv: list[str]) -> dict:
    cmd, args = argv[0], argv[1:]
    if cmd == "score":
        out = score(args[0], args[1], args[2], int(args[3]), args[4], float(args[5]))
    elif cmd == "train":
        out = train(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]))
    elif cmd == "drift":
        out = drift(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None)
    elif cmd == "adwin":
        out = adwin(args[0], args[1] if len(args) > 1 else None)
    elif cmd == "stream":
        out = stream(args[0], args[1], args[2], int(args[3]))
    elif cmd == "pyproba":
        out = pyproba(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None, int(args[5]) if len(args) > 5 else 0)
    elif cmd == "pyadwin":
        out = pyadwin(args[0], args[1] if len(args) > 1 else None)
    else:
        raise SystemExit(f"unknown command {cmd}")
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        print(json.dumps(run(sys.argv[1:])))
