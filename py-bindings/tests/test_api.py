"""Inputs, outputs, errors and documentation of the Python package."""

from __future__ import annotations

import doctest
import pydoc
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import streamscore
from streamscore import ModelError, RegistryError, SchemaError, StreamscoreError


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return streamscore.generate(2_000, seed=11)


@pytest.fixture(scope="module")
def forest(data: pd.DataFrame) -> streamscore.Model:
    return streamscore.train(data, estimator="random_forest", params={"n_estimators": 10, "max_depth": 5})


def numeric_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(scale=0.3, size=n) > 0).astype(np.int64)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def test_numpy_matrix_list_of_dicts_and_dataframe_agree() -> None:
    df = numeric_frame()
    model = streamscore.train(df, target="y", estimator="logistic_regression")
    X = df[["a", "b", "c"]]
    expected = model.predict_proba(X)
    # float64 C-contiguous: read in place; float32 and int inputs are converted.
    assert np.array_equal(model.predict_proba(X.to_numpy()), expected)
    assert np.array_equal(model.predict_proba(X.to_dict("records")), expected)
    assert np.array_equal(model.predict_proba({k: X[k].to_numpy() for k in X}), expected)
    # Fortran order and a non-contiguous slice give the same answer as the contiguous copy.
    assert np.array_equal(model.predict_proba(np.asfortranarray(X.to_numpy())), expected)
    wide = np.hstack([X.to_numpy(), X.to_numpy()])
    assert np.array_equal(model.predict_proba(wide[:, :3]), expected)
    x32 = X.to_numpy().astype(np.float32)
    assert np.array_equal(model.predict_proba(x32), model.predict_proba(x32.astype(np.float64)))
    # Reordered DataFrame columns are matched by name.
    assert np.array_equal(model.predict_proba(X[["c", "a", "b"]]), expected)
    assert model.feature_names == ["a", "b", "c"]
    # Probabilities of a logistic regression: a sigmoid, so rows sum to 1 and follow the labels.
    assert np.allclose(expected.sum(axis=1), 1.0)
    labels = model.predict(X)
    assert labels.tolist() == [model.classes[i] for i in expected.argmax(axis=1)]
    assert (labels == df["y"].astype(str).to_numpy()).mean() > 0.85


def test_object_and_categorical_columns_are_categories() -> None:
    df = numeric_frame(600, seed=1)
    df["plan"] = np.where(df["a"] > 0, "pro", "basic")
    df["region"] = pd.Categorical(np.where(df["b"] > 0, "north", "south"), categories=["south", "north"])
    df = df[["plan", "region", "c", "y"]]
    model = streamscore.train(df, target="y", estimator="logistic_regression")
    fields = {f["name"]: f for f in __import__("json").loads(model.schema.to_json())["fields"]}
    assert fields["plan"]["type"] == "categorical" and fields["plan"]["vocabulary"] == ["basic", "pro"]
    assert fields["region"]["vocabulary"] == ["south", "north"]
    X = df.drop(columns="y")
    p = model.predict_proba(X)
    # The same rows as plain objects: identical answers.
    rows = [{"plan": r.plan, "region": str(r.region), "c": r.c} for r in X.itertuples()]
    assert np.array_equal(model.predict_proba(rows), p)
    # plan=pro (a > 0) and region=north (b > 0) both push towards class 1.
    pro = X["plan"] == "pro"
    assert p[pro.to_numpy(), 1].mean() > p[(~pro).to_numpy(), 1].mean()


def test_whole_columns_score_as_value_by_value_input(forest: streamscore.Model, data: pd.DataFrame) -> None:
    """numpy columns and pandas categoricals are converted a whole column at a time; plain
    Python values one by one. Both must give the same probabilities, and the same errors."""
    X = data.drop(columns="default").head(300).reset_index(drop=True)
    codes = [n for n in X.columns if isinstance(X[n].dtype, pd.CategoricalDtype)]
    plain = X.copy()
    for n in codes:
        plain[n] = X[n].astype(str).astype(np.int64)
    rows = plain.to_dict("records")
    expected = forest.predict_proba(rows)
    assert np.array_equal(forest.predict_proba(X), expected)
    # Other dtypes and layouts: float32/int32/float64 columns, categories as numbers or text,
    # C and Fortran matrices of every dtype read in place.
    mixed = plain.copy()
    for i, n in enumerate(plain.columns):
        mixed[n] = plain[n].astype([np.float32, np.int32, np.float64, object][i % 4])
        if i % 4 == 3 and n in codes:
            mixed[n] = plain[n].astype(str)
    assert np.array_equal(forest.predict_proba(mixed), expected)
    for dtype in (np.float64, np.float32, np.int64, np.int32):
        m = plain.to_numpy().astype(dtype)
        assert np.array_equal(forest.predict_proba(m), expected), dtype
        assert np.array_equal(forest.predict_proba(np.asfortranarray(m)), expected), dtype

    def error(x) -> str:
        with pytest.raises(SchemaError) as e:
            forest.predict_proba(x)
        return str(e.value)

    # A missing value in a field that allows none, a fraction for an int field, and an unseen
    # category: the same errors (rows, fields, texts) as from the same values one by one.
    bad = plain.astype(np.float64)
    bad.loc[4, "LIMIT_BAL"] = np.nan
    bad.loc[7, "AGE"] = 30.5
    bad.loc[9, "PAY_0"] = 9.0
    bad_rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in bad.to_dict("records")
    ]
    want = error(bad_rows)
    assert "row 4" in want and "row 7" in want and "row 9" in want, want
    assert error(bad) == want
    assert error(bad.to_numpy()) == want
    unseen = X.copy()
    unseen["PAY_0"] = unseen["PAY_0"].cat.add_categories(["9"])
    unseen.loc[9, "PAY_0"] = "9"
    assert error(unseen) == error([dict(r, PAY_0="9") if i == 9 else r for i, r in enumerate(rows)])


def test_large_batches_score_as_smaller_ones(forest: streamscore.Model) -> None:
    """A large batch on one thread is scored a chunk of rows at a time (a chunk holds 256 KiB
    of input: 1,424 rows of these 23 fields): the same bits as small batches and as the
    whole-batch path of several threads, and the same errors, rows counted from the start."""
    X = streamscore.generate(5_000, seed=12).drop(columns="default")
    plain = X.astype(np.float64)
    small = np.concatenate([forest.predict_proba(plain.iloc[i : i + 700]) for i in range(0, len(plain), 700)])
    for x in (X, plain, plain.to_numpy(), np.asfortranarray(plain.to_numpy()), plain.astype(np.float32)):
        assert np.array_equal(forest.predict_proba(x), small)
        assert np.array_equal(forest.predict_proba(x, threads=2), small)
    assert np.array_equal(forest.predict(plain), forest.predict(plain, threads=2))
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40_000, 2))
    df = pd.DataFrame({"u": x[:, 0], "v": x[:, 1], "t": 3.0 * x[:, 0] - 2.0 * x[:, 1]})
    model = streamscore.train(df, target="t", estimator="linear_regression")
    assert np.array_equal(model.predict(df[["u", "v"]]), model.predict(df[["u", "v"]], threads=2))

    def error(x, threads: int) -> str:
        with pytest.raises(SchemaError) as e:
            forest.predict_proba(x, threads=threads)
        return str(e.value)

    bad = plain.copy()
    bad.loc[10, "LIMIT_BAL"] = np.nan
    bad.loc[4_321, "AGE"] = 30.5
    want = error(bad, 2)
    assert "row 10" in want and "row 4321" in want, want
    assert error(bad, 1) == want
    assert error(bad.to_numpy(), 1) == want


def test_regressor_predicts_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    df = pd.DataFrame({"u": x[:, 0], "v": x[:, 1], "t": 3.0 * x[:, 0] - 2.0 * x[:, 1] + 1.0})
    model = streamscore.train(df, target="t", estimator="linear_regression")
    assert model.classes is None
    pred = model.predict(pd.DataFrame({"u": [1.0, 0.0], "v": [0.0, 1.0]}))
    assert pred.dtype == np.float64
    assert np.allclose(pred, [4.0, -1.0], atol=1e-9)
    with pytest.raises(ModelError, match="regressor"):
        model.predict_proba(df[["u", "v"]])


def test_bad_input_raises_typed_errors(forest: streamscore.Model, data: pd.DataFrame) -> None:
    X = data.drop(columns="default")
    with pytest.raises(SchemaError, match="PAY_0"):
        forest.predict_proba(X.drop(columns="PAY_0"))
    bad = X.head(3).astype(object)
    bad.loc[1, "EDUCATION"] = "university"
    with pytest.raises(SchemaError, match="EDUCATION") as e:
        forest.predict_proba(bad)
    assert "row 1" in str(e.value)
    with pytest.raises(SchemaError, match="columns"):
        forest.predict_proba(np.zeros((2, 3)))
    with pytest.raises(SchemaError):
        forest.predict_proba("not data")
    with pytest.raises(ModelError, match="n_estimators"):
        streamscore.train(data, estimator="random_forest", params={"n_estimators": 0})
    with pytest.raises(ModelError, match="estimator"):
        streamscore.train(data, estimator="no_such_model")
    with pytest.raises(StreamscoreError, match="target"):
        streamscore.train(data, target="nope", estimator="logistic_regression")
    with pytest.raises(ModelError):
        streamscore.load_model("/nonexistent/model/dir")
    for cls in (SchemaError, ModelError, RegistryError):
        assert issubclass(cls, StreamscoreError) and issubclass(cls, Exception)


def test_save_load_round_trip_and_metrics(forest: streamscore.Model, data: pd.DataFrame, tmp_path) -> None:
    forest.save(tmp_path / "m")
    loaded = streamscore.load_model(tmp_path / "m")
    X = data.drop(columns="default")
    assert np.array_equal(loaded.predict_proba(X), forest.predict_proba(X))
    assert loaded.schema == forest.schema
    m = forest.metrics
    assert m["n_train"] + m["n_validation"] == len(data)
    assert 0.5 < m["roc_auc"] <= 1.0
    assert forest.tags["target"] == "default"
    with pytest.raises(ModelError):
        forest.save(tmp_path / "m")  # not empty: refused, never overwritten
    # Threads change no bit; -1 is every core (scikit-learn's n_jobs=-1), other values below 1
    # are refused.
    assert np.array_equal(forest.predict_proba(X, threads=2), forest.predict_proba(X))
    big = pd.concat([X] * (4096 // len(X) + 1), ignore_index=True)
    assert np.array_equal(forest.predict_proba(big, threads=-1), forest.predict_proba(big))
    assert np.array_equal(forest.predict(big, threads=-1), forest.predict(big))
    for bad in (0, -2):
        with pytest.raises(ValueError, match="threads must be at least 1, or -1"):
            forest.predict_proba(X, threads=bad)


def test_sweep_and_cv(data: pd.DataFrame) -> None:
    model = streamscore.train(
        data,
        estimator="decision_tree",
        sweep={"trials": 3, "metric": "roc_auc", "seed": 1, "space": {"max_depth": "2..6"}},
        cv=3,
    )
    sweep = model.metrics["sweep"]
    assert len(sweep["trials"]) == 3 and sweep["metric"] == "roc_auc"
    assert model.metrics["cv"]["k"] == 3


def test_docstrings_and_doctests() -> None:
    text = pydoc.render_doc(streamscore.train, renderer=pydoc.plaintext)
    assert "Example" in text and ">>> model = streamscore.train(" in text
    failures, tried = doctest.testmod(streamscore, optionflags=doctest.ELLIPSIS)
    assert tried >= 10 and failures == 0


def test_stubs_match_the_native_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "streamscore._native", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_gil_is_released_while_scoring(forest: streamscore.Model, data: pd.DataFrame) -> None:
    import threading
    import time

    def timed_call(X: np.ndarray) -> tuple[float, float, list[float]]:
        """Scores X while another thread stamps the clock every millisecond it gets the GIL."""
        stamps: list[float] = []
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                stamps.append(time.perf_counter())
                time.sleep(0.001)

        t = threading.Thread(target=tick)
        t.start()
        while not stamps:  # the ticking thread is running
            time.sleep(0.001)
        start = time.perf_counter()
        forest.predict_proba(X)
        end = time.perf_counter()
        stop.set()
        t.join()
        return start, end, stamps

    # float64 matrix input goes straight to Rust: the whole call is native code. The input grows
    # until one call lasts long enough to tell (a faster kernel or machine needs more rows).
    base = np.ascontiguousarray(data.drop(columns="default").astype(np.float64).to_numpy())
    tiles = 40
    while True:
        X = np.ascontiguousarray(np.tile(base, (tiles, 1)))
        start, end, stamps = timed_call(X)
        if end - start > 0.1 or tiles >= 40 * 64:
            break
        tiles *= 4
    inside = [s for s in stamps if start < s < end]
    # With the GIL held for the whole call, the other thread could run only at its two ends.
    assert end - start > 0.1, f"the call was too short to tell even with {len(X)} rows"
    assert inside and max(inside) - min(inside) > 0.5 * (end - start)


def test_ctrl_c_interrupts_training() -> None:
    import _thread
    import signal
    import threading
    import time

    # A process started in the background by a shell ignores SIGINT, and then interrupt_main does
    # nothing: Python's own Ctrl-C handler is installed for the test, as in an interactive session.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    df = streamscore.generate(20_000, seed=2)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # Minutes of training if nothing stopped it.
            streamscore.train(df, estimator="random_forest", params={"n_estimators": 100_000, "max_depth": 4})
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - start < 1.5

    # The interrupted fit is cancelled, not left running in the background: the process soon
    # stops using CPU (uncancelled, the fit would keep at least one core busy for minutes).
    deadline = time.monotonic() + 30
    while True:
        before = time.process_time()
        time.sleep(0.5)
        busy = time.process_time() - before
        if busy < 0.1 or time.monotonic() > deadline:
            break
    assert busy < 0.1, f"the interrupted training is still running ({busy:.2f} s of CPU in 0.5 s)"


def test_the_installed_wheel_is_under_test() -> None:
    import os
    import sysconfig

    if os.environ.get("STREAMSCORE_EXPECT_INSTALLED"):
        assert streamscore.__file__.startswith(sysconfig.get_paths()["platlib"]), streamscore.__file__
    assert streamscore._native.__file__.endswith(".abi3.so")
