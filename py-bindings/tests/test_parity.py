"""The Python package equals the Rust API (through the `streamscore` command) bit for bit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import streamscore

ROWS, SEED = 3_000, 5


def read_probabilities(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """Labels, probabilities and predicted labels of a `streamscore predict` CSV (floats in
    shortest round-trip form, so `float()` gives the exact value)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    cols = [i for i, h in enumerate(header) if h.startswith("probability_")]
    labels = [header[i][len("probability_"):] for i in cols]
    proba = np.array([[float(r[i]) for i in cols] for r in body])
    return labels, proba, [r[header.index("prediction")] for r in body]


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory: pytest.TempPathFactory, run_cli) -> Path:
    d = tmp_path_factory.mktemp("cli")
    run_cli("generate", "--rows", str(ROWS), "--seed", str(SEED), "--out", str(d / "credit.csv"))
    return d


def test_generate_equals_the_cli_generator(cli_data: Path) -> None:
    df = streamscore.generate(ROWS, seed=SEED)
    cli = pd.read_csv(cli_data / "credit.csv")
    assert list(df.columns) == list(cli.columns)
    for name in cli.columns:
        ours = df[name].astype(str).astype(np.int64) if isinstance(df[name].dtype, pd.CategoricalDtype) else df[name]
        assert np.array_equal(ours.to_numpy(), cli[name].to_numpy()), name
    schema = json.loads((cli_data / "credit.schema.json").read_text())
    assert streamscore.Schema.from_json(json.dumps(schema)) == streamscore.credit_schema()


@pytest.mark.parametrize(
    "estimator,params",
    [
        ("random_forest_classifier", {"n_estimators": 15, "max_depth": 6}),
        ("logistic_regression", {}),
    ],
)
def test_predict_proba_equals_the_rust_api_exactly(cli_data: Path, run_cli, estimator: str, params: dict) -> None:
    out = cli_data / estimator
    args = ["train", "--data", str(cli_data / "credit.csv"), "--target", "default", "--estimator", estimator]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    run_cli(*args, "--out", str(out / "model"))
    run_cli("predict", "--model", str(out / "model"), "--data", str(cli_data / "credit.csv"), "--out", str(out / "p.csv"))
    labels, rust_proba, rust_pred = read_probabilities(out / "p.csv")

    df = streamscore.generate(ROWS, seed=SEED)
    model = streamscore.train(df, target="default", estimator=estimator, params=params)
    assert model.classes == labels
    X = df.drop(columns="default")
    proba = model.predict_proba(X)
    assert proba.dtype == np.float64 and proba.shape == (ROWS, 2)
    assert np.array_equal(proba, rust_proba), f"max diff {np.abs(proba - rust_proba).max()}"
    assert model.predict(X).tolist() == rust_pred
    # The same training run: the same validation metrics as the CLI's artifact.
    cli_model = streamscore.load_model(out / "model")
    assert all(model.metrics[k] == cli_model.metrics[k] for k in ("roc_auc", "log_loss", "accuracy", "f1"))
    assert np.array_equal(cli_model.predict_proba(X), rust_proba)
    # And the Python artifact scores the same through the command.
    model.save(out / "py-model")
    run_cli("predict", "--model", str(out / "py-model"), "--data", str(cli_data / "credit.csv"), "--out", str(out / "q.csv"))
    assert np.array_equal(read_probabilities(out / "q.csv")[1], rust_proba)
