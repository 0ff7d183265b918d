#!/usr/bin/env python3
"""scikit-learn baselines (logistic regression, random forest) for the synthetic credit-default data.

Reads a CSV written by `streamscore generate`, applies exactly the hash-based
train/validation split of `ml-core/src/split.rs`, fits

    StandardScaler(14 numeric columns) + OneHotEncoder(handle_unknown="ignore")(9 categorical
    columns) -> LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)

(or, with `--estimator random_forest`, the same preprocessing followed by
RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)) on the training rows and
prints validation metrics as one JSON object, including the SHA-256 of the CSV it read.
streamscore's own estimators are checked against these numbers
(`streamscore/tests/reference_auc.rs`).

Usage:
    sklearn_lr_auc.py DATA.csv [--estimator logistic_regression|random_forest]
        [--split-seed 42] [--validation-fraction 0.2] [--out FILE]

Re-recording the reference (needed whenever the generator's output changes; run from the
repository root, with the environment of `scripts/python-env.sh`):

    cargo run -p streamscore -- generate --rows 50000 --seed 1 --out data/credit.csv
    .venv/bin/python scripts/reference/sklearn_lr_auc.py data/credit.csv \
        --out streamscore/tests/reference/sklearn_lr_auc.json
    .venv/bin/python scripts/reference/sklearn_lr_auc.py data/credit.csv --estimator random_forest \
        --out streamscore/tests/reference/sklearn_rf_auc.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC_COLUMNS = [
    "LIMIT_BAL",
    "AGE",
    *(f"BILL_AMT{i}" for i in range(1, 7)),
    *(f"PAY_AMT{i}" for i in range(1, 7)),
]
CATEGORICAL_COLUMNS = [
    "SEX",
    "EDUCATION",
    "MARRIAGE",
    "PAY_0",
    *(f"PAY_{i}" for i in range(2, 7)),
]
TARGET_COLUMN = "default"

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def splitmix64(state: int) -> int:
    """One SplitMix64 step, identical to `splitmix64` in ml-core/src/rng.rs."""
    z = (state + GOLDEN_GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def is_validation_row(seed: int, row: int, fraction: float) -> bool:
    """Same rule as `is_validation_row` in ml-core/src/split.rs."""
    z = splitmix64((seed + row * GOLDEN_GAMMA) & MASK64)
    # (z >> 11) < 2^53 is exact in a float, and so is the power-of-two scaling.
    return (z >> 11) * 2.0**-53 < fraction


def validation_mask(n_rows: int, seed: int, fraction: float) -> np.ndarray:
    return np.fromiter(
        (is_validation_row(seed, i, fraction) for i in range(n_rows)), dtype=bool, count=n_rows
    )


ESTIMATORS = {
    "logistic_regression": lambda: LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000),
    # The parameters streamscore's random forest is compared with; n_jobs only changes speed.
    "random_forest": lambda: RandomForestClassifier(
        n_estimators=100, max_depth=8, random_state=0, n_jobs=-1
    ),
}


def build_pipeline(estimator: str = "logistic_regression") -> Pipeline:
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), NUMERIC_COLUMNS),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_COLUMNS),
        ]
    )
    return Pipeline(
        [
            ("preprocess", preprocess),
            ("model", ESTIMATORS[estimator]()),
        ]
    )


def evaluate(
    csv_path: Path,
    split_seed: int,
    fraction: float,
    dataset: str,
    estimator: str = "logistic_regression",
) -> dict:
    csv_sha256 = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    frame = pd.read_csv(csv_path)
    missing = [c for c in [*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, TARGET_COLUMN] if c not in frame]
    if missing:
        raise SystemExit(f"{csv_path}: missing columns {', '.join(missing)}")
    if not 0.0 < fraction < 1.0:
        raise SystemExit(f"--validation-fraction must be strictly between 0 and 1, got {fraction}")

    is_validation = validation_mask(len(frame), split_seed, fraction)
    train, validation = frame[~is_validation], frame[is_validation]
    if train.empty or validation.empty:
        raise SystemExit("one side of the split is empty; use more rows or another fraction")

    features = [*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS]
    pipeline = build_pipeline(estimator)
    pipeline.fit(train[features], train[TARGET_COLUMN])

    y_true = validation[TARGET_COLUMN].to_numpy()
    proba = pipeline.predict_proba(validation[features])[:, 1]
    predicted = (proba >= 0.5).astype(int)
    return {
        "dataset": dataset,
        **({} if estimator == "logistic_regression" else {"estimator": estimator}),
        "csv_sha256": csv_sha256,
        "rows": int(len(frame)),
        "validation_rows": int(len(validation)),
        "split_seed": split_seed,
        "validation_fraction": fraction,
        "sklearn_version": sklearn.__version__,
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="CSV written by the credit-default generator")
    parser.add_argument(
        "--estimator",
        choices=sorted(ESTIMATORS),
        default="logistic_regression",
        help="scikit-learn model to fit (default logistic_regression)",
    )
    parser.add_argument("--split-seed", type=int, default=42, help="split seed (default 42)")
    parser.add_argument(
        "--validation-fraction", type=float, default=0.2, help="validation fraction (default 0.2)"
    )
    parser.add_argument(
        "--dataset", default=None, help="name recorded in the JSON (default: the CSV file stem)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)

    if not 0 <= args.split_seed <= MASK64:
        parser.error("--split-seed must fit in an unsigned 64-bit integer")
    dataset = args.dataset if args.dataset is not None else args.csv.stem
    result = evaluate(args.csv, args.split_seed, args.validation_fraction, dataset, args.estimator)
    text = json.dumps(result, indent=2) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
