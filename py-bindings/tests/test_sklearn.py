"""scikit-learn models through skl2onnx, and ONNX files, scored by ONNX Runtime inside streamscore."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import streamscore


@pytest.fixture(scope="module")
def fitted() -> tuple[RandomForestClassifier, np.ndarray]:
    X, y = make_classification(n_samples=2_000, n_features=8, n_informative=5, n_classes=3, random_state=0)
    forest = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, y)
    return forest, X


def test_from_sklearn_matches_onnxruntime_and_sklearn(fitted) -> None:
    forest, X = fitted
    model = streamscore.Model.from_sklearn(forest, X[:5])
    assert model.kind == "onnx"
    assert model.classes == ["0", "1", "2"]
    assert model.feature_names == [f"f{i}" for i in range(8)]
    ours = model.predict_proba(X)

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        forest, initial_types=[("input", FloatTensorType([None, 8]))], options={id(forest): {"zipmap": False}}
    )
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": X.astype(np.float32)})[1]
    assert np.abs(ours - theirs).max() <= 1e-5
    sk = forest.predict_proba(X.astype(np.float32))
    assert np.abs(ours - sk).max() <= 1e-4
    assert model.predict(X).tolist() == [str(c) for c in forest.predict(X.astype(np.float32))]


def test_from_sklearn_with_a_dataframe_names_features(tmp_path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(300, 3)), columns=["income", "debt", "age"])
    y = (df["income"] - df["debt"] > 0).astype(int)
    lr = LogisticRegression().fit(df, y)
    model = streamscore.Model.from_sklearn(lr, df.head())
    assert model.feature_names == ["income", "debt", "age"]
    p = model.predict_proba(df[["age", "income", "debt"]])  # matched by name
    assert np.abs(p - lr.predict_proba(df.astype(np.float32))).max() <= 1e-4
    # Saved as an artifact, loaded back, the same bits.
    model.save(tmp_path / "lr")
    again = streamscore.load_model(tmp_path / "lr")
    assert again.kind == "onnx"
    assert np.array_equal(again.predict_proba(df), p)


def test_from_onnx_reads_a_file_and_refuses_garbage(fitted, tmp_path) -> None:
    forest, X = fitted
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(forest, initial_types=[("input", FloatTensorType([None, 8]))])
    path = tmp_path / "forest.onnx"
    path.write_bytes(onx.SerializeToString())
    cols = [f"x{i}" for i in range(8)]
    model = streamscore.Model.from_onnx(path, columns=cols)
    assert model.feature_names == cols
    assert np.abs(model.predict_proba(X) - forest.predict_proba(X.astype(np.float32))).max() <= 1e-4
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(streamscore.ModelError, match="bad.onnx"):
        streamscore.Model.from_onnx(bad)
    with pytest.raises(streamscore.ModelError, match="cannot read"):
        streamscore.Model.from_onnx(tmp_path / "missing.onnx")
