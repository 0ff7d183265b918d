"""Records river's change points for ml-drift's streaming detectors.

Streams are generated from a counter-based SplitMix64 generator with only additions and
multiplications, so the Rust test regenerates them bit for bit from the parameters stored here
(the values themselves are not stored). Writes ml-drift/tests/reference/river_detectors.json.

    ./scripts/python-env.sh && .venv/bin/python scripts/reference/river_detectors.py
"""

import json
import pathlib

import river
from river import drift

OUT = pathlib.Path("ml-drift/tests/reference/river_detectors.json")
M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
N = 1_000_000


def uniform(seed, j):
    z = ((seed << 32) + j + GOLDEN) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    z ^= z >> 31
    return (z >> 11) * (1.0 / (1 << 53))


def base(seed, i):
    return uniform(seed, 4 * i) + uniform(seed, 4 * i + 1) + uniform(seed, 4 * i + 2) + uniform(seed, 4 * i + 3) - 2.0


def stream(kind, seed, n):
    half = n // 2
    for i in range(n):
        x = base(seed, i)
        if kind == "mean_shift":
            x = x + (0.5 if i >= half else 0.0)
        elif kind == "variance_shift":
            x = x * (3.0 if i >= half else 1.0)
        elif kind == "gradual":
            start, width = (2 * n) // 5, n // 5
            w = min(max((i - start) / width, 0.0), 1.0)
            x = x + (0.5 if uniform(seed + 1, i) < w else 0.0)
        elif kind == "errors":
            x = 1.0 if uniform(seed + 2, i) < (0.1 if i < half else 0.3) else 0.0
        yield x


def changes(detector, kind, seed, n):
    out = []
    for i, x in enumerate(stream(kind, seed, n)):
        detector.update(x)
        if detector.drift_detected:
            out.append(i)
    return out


cases = []
for kind in ["stationary", "mean_shift", "variance_shift", "gradual"]:
    for name, make, params in [
        ("adwin", lambda: drift.ADWIN(), {}),
        ("adwin", lambda: drift.ADWIN(delta=0.02, clock=8), {"delta": 0.02, "clock": 8}),
        ("page_hinkley", lambda: drift.PageHinkley(), {}),
    ]:
        c = changes(make(), kind, 7, N)
        cases.append({"detector": name, "params": params, "stream": kind, "seed": 7, "n": N, "changes": c})
        print(name, params, kind, len(c), c[:5])
# KSWIN runs a scipy KS test per value: shorter streams. Seeded, its random draws come from
# Python's random.Random(seed), which ml-drift reimplements.
N_KSWIN = 20_000
for kind in ["stationary", "mean_shift", "variance_shift", "gradual"]:
    for params in [{"seed": 42}, {"seed": 7, "alpha": 0.001, "window_size": 200, "stat_size": 50}]:
        c = changes(drift.KSWIN(**params), kind, 7, N_KSWIN)
        cases.append({"detector": "kswin", "params": params, "stream": kind, "seed": 7, "n": N_KSWIN, "changes": c})
        print("kswin", params, kind, len(c), c[:5])
for name, make in [("ddm", drift.binary.DDM), ("eddm", drift.binary.EDDM)]:
    c = changes(make(), "errors", 7, N)
    cases.append({"detector": name, "params": {}, "stream": "errors", "seed": 7, "n": N, "changes": c})
    print(name, len(c), c[:5])

OUT.write_text(json.dumps({"generator": f"scripts/reference/river_detectors.py with river {river.__version__}",
                           "cases": cases}, separators=(",", ":")))
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
