"""Benchmark: `Model.predict_proba` on a 100,000-row DataFrame against scikit-learn.

Three scorers of one data set (the synthetic credit data, 23 features):

- streamscore's own random forest (trained by `streamscore.train` with scikit-learn's
  hyperparameters: 100 trees, depth 8) on the DataFrame;
- the scikit-learn RandomForestClassifier with the same hyperparameters, `predict_proba` on the
  same rows as a float array (n_jobs=1 and n_jobs=-1);
- that very scikit-learn forest converted by `Model.from_sklearn` (ONNX Runtime inside
  streamscore) on the same DataFrame.

Prints rows/s of each and the ratios. Build the wheel with `--release` for figures
(`maturin develop --release -m py-bindings/Cargo.toml`, or `pip install` a release wheel).

    python py-bindings/bench/predict_proba.py [--rows 100000] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import streamscore


def best_of(repeat: int, f) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--train-rows", type=int, default=50_000)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    train_df = streamscore.generate(args.train_rows, seed=1)
    score_df = streamscore.generate(args.rows, seed=2).drop(columns="default")
    params = {"n_estimators": args.trees, "max_depth": args.depth}
    ours = streamscore.train(train_df, estimator="random_forest", params=params)
    X_train = train_df.drop(columns="default").astype(np.float64).to_numpy()
    y_train = train_df["default"].to_numpy()
    sk = RandomForestClassifier(n_estimators=args.trees, max_depth=args.depth, random_state=0, n_jobs=1)
    sk.fit(X_train, y_train)
    X = score_df.astype(np.float64).to_numpy()
    onnx = streamscore.Model.from_sklearn(sk, score_df.astype(np.float64).head())

    results = {
        "streamscore forest, DataFrame": best_of(args.repeat, lambda: ours.predict_proba(score_df, threads=args.threads)),
        "streamscore forest, float64 array": best_of(args.repeat, lambda: ours.predict_proba(X, threads=args.threads)),
        "scikit-learn forest, n_jobs=1": best_of(args.repeat, lambda: sk.predict_proba(X)),
        "same sklearn forest via from_sklearn (ONNX)": best_of(
            args.repeat, lambda: onnx.predict_proba(score_df.astype(np.float64))
        ),
    }
    sk.set_params(n_jobs=-1)
    results["scikit-learn forest, n_jobs=-1"] = best_of(args.repeat, lambda: sk.predict_proba(X))
    base = results["scikit-learn forest, n_jobs=1"]
    print(f"{args.rows} rows, {args.trees} trees of depth {args.depth}, best of {args.repeat}, threads={args.threads}")
    for name, t in results.items():
        print(f"  {name:45s} {t * 1e3:9.1f} ms  {args.rows / t:12,.0f} rows/s  {base / t:6.2f}x sklearn(n_jobs=1)")


if __name__ == "__main__":
    main()
