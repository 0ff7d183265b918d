#!/usr/bin/env python3
"""Train small scikit-learn, XGBoost and LightGBM models, export them to ONNX and record what
Python onnxruntime and the original estimators predict, for the Rust tests of ONNX models.

Every model is seeded, so the output is reproducible for the pinned package versions. Run it with
the project environment plus the exporters:

    ./scripts/python-env.sh
    .venv/bin/pip install -r scripts/reference/requirements-onnx-fixtures.txt
    .venv/bin/python scripts/reference/onnx_fixtures.py

It writes ml-core/tests/fixtures/onnx/<name>.onnx and <name>.json (or under --out). The format of
the JSON files is described in ml-core/tests/fixtures/onnx/README.md.
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "ml-core" / "tests" / "fixtures" / "onnx"
# Opsets every supported onnxruntime (>= 1.20) runs, and that keep the classical ONNX-ML
# operators (TreeEnsembleClassifier/Regressor, LinearClassifier, ZipMap, ...).
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}
N_TEST = 40


def cast_bool_attributes_to_int():
    """skl2onnx 1.20 gives HistGradientBoosting trees' `nodes_missing_value_tracks_true` as
    Python/numpy booleans, which onnx 1.23 refuses in an integer-list attribute: cast them to 0/1
    (the values the attribute means)."""
    original = onnx.helper.make_attribute

    def make_attribute(key, value, *args, **kwargs):
        if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
            value = [int(v) for v in value]
        return original(key, value, *args, **kwargs)

    onnx.helper.make_attribute = make_attribute


def f32(a):
    """Cast to float32 and back to float64: exact values the model sees."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def run_onnxruntime(model_bytes, feeds):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def probabilities_from_outputs(outputs, labels):
    """The probability matrix, whether the model outputs a tensor or ZipMap's list of maps."""
    for value in outputs.values():
        if isinstance(value, list):
            return np.array([[row[lab] for lab in labels] for row in value], dtype=np.float64)
    floats = [v for v in outputs.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    return np.asarray(floats[0], dtype=np.float64)


def label_output(outputs):
    for value in outputs.values():
        if isinstance(value, np.ndarray) and value.dtype.kind in "iOU":
            return [v.item() if hasattr(v, "item") else v for v in value.ravel()]
    return None


def write_fixture(out, name, onx, meta, rows, feeds, expected_estimator, labels, task):
    # onnxmltools names graphs with a random UUID: a fixed name keeps the files reproducible.
    onx.graph.name = name
    onnx.checker.check_model(onx)
    model_bytes = onx.SerializeToString()
    (out / f"{name}.onnx").write_bytes(model_bytes)
    outputs = run_onnxruntime(model_bytes, feeds)
    record = dict(meta)
    record.update(
        {
            "name": name,
            "task": task,
            "rows": rows,
            "versions": {
                "onnxruntime": ort.__version__,
                "onnx": onnx.__version__,
                "scikit-learn": sklearn.__version__,
                **meta.get("versions", {}),
            },
        }
    )
    if task == "regression":
        variable = next(v for v in outputs.values() if isinstance(v, np.ndarray))
        record["onnxruntime"] = {"values": [float(v) for v in np.asarray(variable).ravel()]}
        record["estimator"] = {"values": [float(v) for v in np.asarray(expected_estimator).ravel()]}
    else:
        record["labels"] = [str(lab) for lab in labels]
        proba = probabilities_from_outputs(outputs, labels)
        record["onnxruntime"] = {
            "label": [str(v) for v in label_output(outputs)],
            "probabilities": proba.tolist(),
        }
        record["estimator"] = {"probabilities": np.asarray(expected_estimator, dtype=np.float64).tolist()}
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    size = len(model_bytes)
    print(f"{name}: {size} bytes, outputs {list(outputs)}")


def matrix_fixture(out, name, estimator, X, y, X_test, task="classification", extra=None, zipmap=False):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    estimator.fit(X, y)
    X_test32 = X_test.astype(np.float32)
    options = None if task == "regression" else {id(estimator): {"zipmap": zipmap}}
    onx = to_onnx(
        estimator,
        initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
        target_opset=TARGET_OPSET,
        options=options,
    )
    feeds = {"input": X_test32}
    rows = f32(X_test32).tolist()
    meta = {"estimator_class": type(estimator).__name__, "input_layout": "matrix", "n_features": X.shape[1]}
    meta.update(extra or {})
    if task == "regression":
        write_fixture(out, name, onx, meta, rows, feeds, estimator.predict(X_test32), None, "regression")
    else:
        labels = list(estimator.classes_)
        kind = "binary" if len(labels) == 2 else "multiclass"
        write_fixture(out, name, onx, meta, rows, feeds, estimator.predict_proba(X_test32), labels, kind)


def classification_data(seed, n_features=6, n_classes=2, n=400):
    X, y = make_classification(
        n_samples=n + N_TEST,
        n_features=n_features,
        n_informative=min(n_features, 4),
        n_redundant=min(1, n_features - 4) if n_features > 4 else 0,
        n_classes=n_classes,
        n_clusters_per_class=1,
        random_state=seed,
    )
    X = X.astype(np.float32).astype(np.float64)
    return X[:n], y[:n], X[n:]


def pipeline_fixture(out):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    rng = np.random.default_rng(7)
    n = 400 + N_TEST
    df = pd.DataFrame(
        {
            "income": rng.normal(50.0, 15.0, n),
            "age": rng.integers(18, 80, n).astype(np.float64),
            "balance": rng.normal(0.0, 1.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    logit = 0.04 * (df.income - 50) - 0.03 * (df.age - 45) + 0.8 * df.balance + (df.plan == "pro") * 1.2
    y = np.where(logit + rng.normal(0, 0.5, n) > 0, "yes", "no")
    numeric = ["income", "age", "balance"]
    cats = ["plan", "region"]
    for c in numeric:
        df[c] = df[c].astype(np.float32).astype(np.float64)
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), numeric),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
                    ]
                ),
            ),
            ("lr", LogisticRegression(max_iter=1000)),
        ]
    )
    train, test = df.iloc[:400], df.iloc[400:].copy()
    pipe.fit(train, y[:400])
    initial_types = [(c, FloatTensorType([None, 1])) for c in numeric] + [
        (c, StringTensorType([None, 1])) for c in cats
    ]
    onx = to_onnx(pipe, initial_types=initial_types, target_opset=TARGET_OPSET)
    feeds = {c: test[c].to_numpy(np.float32).reshape(-1, 1) for c in numeric}
    feeds.update({c: test[c].to_numpy(object).reshape(-1, 1) for c in cats})
    test32 = test.copy()
    for c in numeric:
        test32[c] = test32[c].astype(np.float32)
    rows = [[float(np.float32(r[c])) for c in numeric] + [str(r[c]) for c in cats] for _, r in test.iterrows()]
    meta = {
        "estimator_class": "Pipeline(ColumnTransformer(StandardScaler, OneHotEncoder), LogisticRegression)",
        "input_layout": "columns",
        "columns": [{"name": c, "type": "float"} for c in numeric] + [{"name": c, "type": "string"} for c in cats],
        "zipmap": True,
    }
    labels = list(pipe.classes_)
    write_fixture(out, "pipeline_lr", onx, meta, rows, feeds, pipe.predict_proba(test32), labels, "binary")


def xgboost_fixture(out):
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y, X_test = classification_data(11, n_features=6, n_classes=3)
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, learning_rate=0.3, random_state=0, n_jobs=1)
    model.fit(X, y)
    onx = onnxmltools.convert_xgboost(
        model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))], target_opset=15
    )
    X_test32 = X_test.astype(np.float32)
    meta = {
        "estimator_class": "XGBClassifier",
        "input_layout": "matrix",
        "n_features": X.shape[1],
        "versions": {"xgboost": xgboost.__version__, "onnxmltools": onnxmltools.__version__},
    }
    labels = [int(c) for c in model.classes_]
    write_fixture(
        out, "xgb_classifier", onx, meta, f32(X_test32).tolist(), {"input": X_test32},
        model.predict_proba(X_test32), labels, "multiclass",
    )


def lightgbm_fixture(out):
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y, X_test = classification_data(13, n_features=6, n_classes=2)
    model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, random_state=0, n_jobs=1, verbose=-1)
    model.fit(X, y)
    onx = onnxmltools.convert_lightgbm(
        model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))], target_opset=15, zipmap=True
    )
    X_test32 = X_test.astype(np.float32)
    meta = {
        "estimator_class": "LGBMClassifier",
        "input_layout": "matrix",
        "n_features": X.shape[1],
        "zipmap": True,
        "versions": {"lightgbm": lightgbm.__version__, "onnxmltools": onnxmltools.__version__},
    }
    labels = [int(c) for c in model.classes_]
    write_fixture(
        out, "lgbm_classifier", onx, meta, f32(X_test32).tolist(), {"input": X_test32},
        model.predict_proba(X_test32), labels, "binary",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    cast_bool_attributes_to_int()

    X, y, X_test = classification_data(1)
    matrix_fixture(out, "logistic_regression", LogisticRegression(max_iter=1000), X, y, X_test,
                   extra={"zipmap": True}, zipmap=True)
    X, y, X_test = classification_data(2, n_classes=3)
    matrix_fixture(out, "random_forest_classifier",
                   RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0), X, y, X_test)
    X, y, X_test = classification_data(3)
    matrix_fixture(out, "gradient_boosting_classifier",
                   GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0), X, y, X_test)
    X, y, X_test = classification_data(4)
    matrix_fixture(out, "hist_gradient_boosting_classifier",
                   HistGradientBoostingClassifier(max_iter=20, max_depth=4, random_state=0), X, y, X_test)
    pipeline_fixture(out)
    Xr, yr = make_regression(n_samples=400 + N_TEST, n_features=5, noise=5.0, random_state=5)
    Xr = Xr.astype(np.float32).astype(np.float64)
    matrix_fixture(out, "random_forest_regressor",
                   RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0),
                   Xr[:400], yr[:400], Xr[400:], task="regression")
    xgboost_fixture(out)
    lightgbm_fixture(out)
    # The benchmark forest: 100 trees of depth 8 on 20 features.
    X, y, X_test = classification_data(20, n_features=20, n=5000)
    matrix_fixture(out, "bench_rf100_d8_f20",
                   RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
                   X, y, X_test[:N_TEST])
    # The benchmark logistic regression: 20 features, exported as the comparison benchmark does
    # (no ZipMap).
    X, y, X_test = classification_data(21, n_features=20, n=5000)
    matrix_fixture(out, "bench_lr_f20", LogisticRegression(max_iter=1000), X, y, X_test[:N_TEST])


if __name__ == "__main__":
    main()
