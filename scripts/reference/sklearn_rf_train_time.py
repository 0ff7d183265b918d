#!/usr/bin/env python3
"""scikit-learn random-forest training time on the forest benchmark's data.

Builds the benchmark data set of `ml-core/benches/forest_train.rs` — 100 000 rows × 20 uniform
numeric features and a binary label — from the same stateless SplitMix64 hash the Rust side uses
(see `bench_data` below and `data` in the benchmark), checks it through a SHA-256 of its bytes,
and times

    RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=J)

for J = 1 and 2 (best of `--repeats` fits each). Writes one JSON object that the benchmark
prints its own times against.

Re-recording (on the machine the benchmark runs on; from the repository root, with the
environment of `scripts/python-env.sh`):

    .venv/bin/python scripts/reference/sklearn_rf_train_time.py \
        --out ml-core/benches/reference/sklearn_rf_train_time.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sklearn_lr_auc import GOLDEN_GAMMA  # noqa: E402  (one definition of the hash constants)

ROWS = 100_000
FEATURES = 20


def splitmix64(state: np.ndarray) -> np.ndarray:
    """Vectorized SplitMix64 step (uint64, wrapping), as `splitmix64` in ml-core/src/rng.rs."""
    with np.errstate(over="ignore"):
        z = state + np.uint64(GOLDEN_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def bench_data(rows: int = ROWS, features: int = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """Cell (r, c) of the (rows × features+1) grid is u(r·(features+1)+c), where
    u(i) = top 53 bits of splitmix64(i · 0x9E3779B97F4A7C15) / 2^53; the last column is noise.
    label = [Σ_c s_c (x_c − ½) + 3 (x_0 − ½)(x_1 − ½) + (noise − ½) > 0], s_c = ±(1 + c mod 5)/5
    (+ for even c), summed in that order."""
    width = features + 1
    with np.errstate(over="ignore"):
        index = np.arange(rows * width, dtype=np.uint64) * np.uint64(GOLDEN_GAMMA)
    u = (splitmix64(index) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    grid = u.reshape(rows, width)
    x = np.ascontiguousarray(grid[:, :features])
    score = np.zeros(rows)
    for c in range(features):
        sign = 1 if c % 2 == 0 else -1
        score = score + (sign * (1 + c % 5) / 5) * (x[:, c] - 0.5)
    score = score + 3.0 * (x[:, 0] - 0.5) * (x[:, 1] - 0.5)
    score = score + (grid[:, features] - 0.5)
    y = (score > 0.0).astype(np.uint8)
    return x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="fits per n_jobs (best is kept)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)

    x, y = bench_data()
    digest = hashlib.sha256(x.astype("<f8").tobytes() + y.tobytes()).hexdigest()
    result = {
        "rows": ROWS,
        "features": FEATURES,
        "data_sha256": digest,
        "positive_share": float(y.mean()),
        "estimator": "RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)",
        "sklearn_version": sklearn.__version__,
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
    }
    for n_jobs in (1, 2):
        best = float("inf")
        for _ in range(args.repeats):
            model = RandomForestClassifier(
                n_estimators=100, max_depth=8, random_state=0, n_jobs=n_jobs
            )
            start = time.perf_counter()
            model.fit(x, y)
            best = min(best, time.perf_counter() - start)
        result[f"fit_seconds_n_jobs_{n_jobs}"] = best
    text = json.dumps(result, indent=2) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
