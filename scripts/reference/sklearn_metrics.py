#!/usr/bin/env python3
"""Record scikit-learn reference values for the tests of ml-core/src/metrics.rs.

Every case is seeded, so the output is reproducible. Run from anywhere with the project
environment created by scripts/python-env.sh:

    .venv/bin/python scripts/reference/sklearn_metrics.py

It writes ml-core/tests/reference/sklearn_metrics.json (or the path given with --out). The Rust
tests compare against these values with a relative tolerance of 1e-12, so regenerate the file
only with the pinned scikit-learn version (see scripts/requirements-dev.txt).
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn import metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "ml-core" / "tests" / "reference" / "sklearn_metrics.json"
EXPECTED_SKLEARN = "1.9.1"


def classification_case(name, y_true, proba):
    """Inputs plus every classification metric ml-core implements, as sklearn computes them."""
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    labels = list(range(n_classes))
    # Same rule as ml-core: argmax of the row, ties to the lowest class index.
    y_pred = np.argmax(proba, axis=1)

    per_class = []
    for c in labels:
        p, r, f, _ = metrics.precision_recall_fscore_support(
            y_true, y_pred, labels=[c], average=None, zero_division=0
        )
        per_class.append([float(p[0]), float(r[0]), float(f[0])])

    f1_macro = metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)
    expected = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "precision_recall_f1": per_class,
        "f1_macro": f1_macro,
        "log_loss": metrics.log_loss(y_true, proba, labels=labels),
    }
    # sklearn refuses ROC AUC when a class never occurs in y_true; null tells the Rust test
    # to expect an error instead of a value.
    present = set(y_true.tolist())
    if n_classes == 2:
        expected["roc_auc"] = (
            metrics.roc_auc_score(y_true, proba[:, 1]) if len(present) == 2 else None
        )
        expected["brier"] = metrics.brier_score_loss(y_true, proba[:, 1], pos_label=1)
        expected["f1"] = metrics.f1_score(
            y_true, y_pred, pos_label=1, average="binary", zero_division=0
        )
    else:
        expected["roc_auc"] = (
            metrics.roc_auc_score(y_true, proba, multi_class="ovr", average="macro")
            if len(present) == n_classes
            else None
        )
        expected["brier"] = None
        expected["f1"] = f1_macro
    return {
        "name": name,
        "y_true": y_true.tolist(),
        "proba": proba.tolist(),
        "expected": to_builtin(expected),
    }


def regression_case(name, y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    expected = {
        "mse": metrics.mean_squared_error(y_true, y_pred),
        "rmse": metrics.root_mean_squared_error(y_true, y_pred),
        "mae": metrics.mean_absolute_error(y_true, y_pred),
        "r2": metrics.r2_score(y_true, y_pred),
    }
    return {
        "name": name,
        "y_true": y_true.tolist(),
        "y_pred": y_pred.tolist(),
        "expected": to_builtin(expected),
    }


def to_builtin(value):
    if isinstance(value, dict):
        return {k: to_builtin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_builtin(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value


def integer_weight_proba(rng, n_rows, n_classes, high):
    """Rows of small integer weights, normalised: many exact ties within and across rows."""
    weights = rng.integers(0, high, size=(n_rows, n_classes)).astype(np.float64)
    weights[weights.sum(axis=1) == 0, 0] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


def binary_proba(p1):
    p1 = np.asarray(p1, dtype=np.float64)
    return np.column_stack([1.0 - p1, p1])


def build_cases():
    classification = []

    # Binary, continuous scores: no ties.
    rng = np.random.default_rng(101)
    y = rng.integers(0, 2, size=60)
    p1 = np.clip(0.35 * y + 0.65 * rng.random(60), 0.0, 1.0)
    classification.append(classification_case("binary_continuous", y, binary_proba(p1)))

    # Binary, scores on a grid of quarters: heavy ties, rows at exactly 0.5 (argmax tie goes
    # to class 0), and exact 0 and 1 probabilities that log loss must clip to [eps, 1 - eps].
    rng = np.random.default_rng(202)
    y = rng.integers(0, 2, size=40)
    p1 = rng.integers(0, 5, size=40) / 4.0
    classification.append(classification_case("binary_ties_and_clipping", y, binary_proba(p1)))

    # Binary, confident and wrong: a positive scored 0 and a negative scored 1 dominate the
    # log loss through the clipping bound (-ln(eps) is about 36.04).
    y = [1, 0, 1, 0, 1, 0]
    p1 = [0.0, 1.0, 1.0, 0.0, 0.7, 0.2]
    classification.append(classification_case("binary_saturated", y, binary_proba(p1)))

    # Binary where every prediction is class 0: precision of class 1 is 0/0 -> 0.
    y = [0, 1, 0, 1, 1]
    p1 = [0.1, 0.4, 0.3, 0.2, 0.45]
    classification.append(classification_case("binary_no_positive_predictions", y, binary_proba(p1)))

    # Multiclass, Dirichlet probabilities: no ties.
    rng = np.random.default_rng(303)
    y = rng.integers(0, 4, size=50)
    proba = rng.dirichlet(np.ones(4), size=50)
    proba[np.arange(50), y] += 0.3  # make the model informative
    proba /= proba.sum(axis=1, keepdims=True)
    classification.append(classification_case("multiclass4_dirichlet", y, proba))

    # Multiclass, integer weights: ties in scores and in the argmax, exact zeros (clipping).
    rng = np.random.default_rng(404)
    y = rng.integers(0, 3, size=45)
    classification.append(
        classification_case("multiclass3_ties", y, integer_weight_proba(rng, 45, 3, 3))
    )

    # Five classes, some rows one-hot (exact 0 and 1).
    rng = np.random.default_rng(505)
    y = rng.integers(0, 5, size=40)
    proba = integer_weight_proba(rng, 40, 5, 4)
    proba[:5] = np.eye(5)[rng.integers(0, 5, size=5)]
    classification.append(classification_case("multiclass5_onehot_rows", y, proba))

    # Class 2 never occurs in y_true: log loss and F1 are defined, OvR AUC is not.
    rng = np.random.default_rng(606)
    y = rng.integers(0, 2, size=20)
    classification.append(
        classification_case("multiclass3_absent_class", y, integer_weight_proba(rng, 20, 3, 4))
    )

    regression = []
    rng = np.random.default_rng(707)
    y = rng.normal(10.0, 3.0, size=50)
    regression.append(regression_case("random", y, y + rng.normal(0.0, 1.0, size=50)))
    y = rng.normal(0.0, 1.0, size=30)
    regression.append(regression_case("worse_than_mean", y, -y + 0.5))
    # Constant y_true: sklearn returns 1.0 for a perfect fit and 0.0 otherwise.
    regression.append(regression_case("constant_true_perfect", [2.5] * 6, [2.5] * 6))
    regression.append(
        regression_case("constant_true_imperfect", [2.5] * 6, [2.5, 3.0, 2.0, 2.5, 4.0, 1.0])
    )
    regression.append(regression_case("perfect", [1.0, -2.0, 3.5, 7.25], [1.0, -2.0, 3.5, 7.25]))
    return classification, regression


def dump(doc):
    """JSON with one case per line: small, and a regenerated file diffs case by case."""
    compact = {"separators": (",", ":")}
    lines = ["{"]
    for key in ("generator", "sklearn_version", "numpy_version"):
        lines.append(f" {json.dumps(key)}:{json.dumps(doc[key])},")
    for key in ("classification", "regression"):
        cases = ",\n".join("  " + json.dumps(case, **compact) for case in doc[key])
        comma = "," if key == "classification" else ""
        lines.append(f" {json.dumps(key)}:[\n{cases}\n ]{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSON file")
    args = parser.parse_args()
    if sklearn.__version__ != EXPECTED_SKLEARN:
        raise SystemExit(
            f"scikit-learn {sklearn.__version__} found, but the references are pinned to "
            f"{EXPECTED_SKLEARN}; run scripts/python-env.sh and use .venv/bin/python"
        )
    # Undefined-metric warnings are expected for the zero-division cases; they are part of
    # what is being recorded.
    warnings.simplefilter("ignore")
    classification, regression = build_cases()
    doc = {
        "generator": "scripts/reference/sklearn_metrics.py",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "classification": classification,
        "regression": regression,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump(doc))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
