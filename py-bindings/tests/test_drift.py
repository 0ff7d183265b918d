"""Drift from Python equals `streamscore drift`; the streaming detectors equal river's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import streamscore

ROWS, SEED, CURRENT_ROWS, CURRENT_SEED, DRIFT = 3_000, 5, 2_000, 6, 1.0


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, run_cli) -> Path:
    """Training data, drifted current data, a model trained on the first and the command's
    drift reports against the model and against a profile file."""
    d = tmp_path_factory.mktemp("drift")
    run_cli("generate", "--rows", str(ROWS), "--seed", str(SEED), "--out", str(d / "train.csv"))
    run_cli(
        "generate", "--rows", str(CURRENT_ROWS), "--seed", str(CURRENT_SEED), "--drift", str(DRIFT),
        "--out", str(d / "current.csv"),
    )
    run_cli(
        "train", "--data", str(d / "train.csv"), "--target", "default", "--estimator", "logistic_regression",
        "--out", str(d / "model"),
    )
    run_cli("drift", "--reference", str(d / "model"), "--current", str(d / "current.csv"), "--json", str(d / "model.json"))
    run_cli("profile", "--data", str(d / "train.csv"), "--drop", "default", "--out", str(d / "profile.json"))
    run_cli(
        "drift", "--reference", str(d / "profile.json"), "--current", str(d / "current.csv"),
        "--correction", "bh", "--test", "AGE=psi", "--json", str(d / "profile-report.json"),
    )
    return d


def test_report_against_a_model_equals_the_cli(cli: Path) -> None:
    expected = json.loads((cli / "model.json").read_text())
    current = streamscore.generate(CURRENT_ROWS, seed=CURRENT_SEED, drift=DRIFT)
    model = streamscore.load_model(cli / "model")
    report = streamscore.detect_drift(model, current)
    # Field for field, and the very same JSON text.
    assert report.to_dict() == expected
    assert report.to_json() == (cli / "model.json").read_text()
    # Features did drift, and the model's outputs were compared too.
    assert report.dataset_drift == expected["dataset_drift"]
    assert 0 < report.n_drifted_features == expected["n_drifted_features"] <= report.n_features == len(expected["features"])
    assert expected["prediction"], "the model's profile holds its outputs: prediction drift"
    # The same reference named by its directory.
    assert streamscore.detect_drift(str(cli / "model"), current).to_dict() == expected
    # The target column may be present or not: it is not profiled.
    assert streamscore.detect_drift(model, current.drop(columns="default")).to_dict() == expected


def test_report_against_a_profile_equals_the_cli(cli: Path) -> None:
    expected = json.loads((cli / "profile-report.json").read_text())
    current = streamscore.generate(CURRENT_ROWS, seed=CURRENT_SEED, drift=DRIFT)
    options = dict(tests={"AGE": "psi"}, correction="bh")
    from_file = streamscore.detect_drift(streamscore.ReferenceProfile.load(cli / "profile.json"), current, **options)
    assert from_file.to_dict() == expected
    # A profile computed from the DataFrame is the command's profile of the CSV file.
    train = streamscore.generate(ROWS, seed=SEED)
    profile = streamscore.ReferenceProfile.from_frame(train, drop=["default"])
    assert profile.n_rows == ROWS and "default" not in profile.feature_names
    assert streamscore.detect_drift(profile, current, **options).to_dict() == expected
    age = next(f for f in expected["features"] if f["feature_name"] == "AGE")
    assert age["stattest_name"] == "psi"
    # Saved and read back: the same profile.
    profile.save(cli / "py-profile.json")
    assert streamscore.ReferenceProfile.load(cli / "py-profile.json").to_json() == profile.to_json()


def test_model_profile_and_errors(cli: Path) -> None:
    df = streamscore.generate(1_000, seed=2)
    model = streamscore.train(df, estimator="logistic_regression")
    profile = model.profile
    assert profile.feature_names == model.feature_names and profile.output_names
    same = streamscore.detect_drift(model, streamscore.generate(1_000, seed=3))
    assert not same.dataset_drift
    drifted = streamscore.detect_drift(model, streamscore.generate(1_000, seed=3, drift=1.0))
    assert drifted.n_drifted_features > same.n_drifted_features
    with pytest.raises(streamscore.SchemaError, match="AGE"):
        streamscore.detect_drift(model, df.drop(columns="AGE"))
    with pytest.raises(streamscore.StreamscoreError, match="correction"):
        streamscore.detect_drift(profile, df, correction="holm")
    with pytest.raises(streamscore.StreamscoreError):
        streamscore.ReferenceProfile.load(cli / "no-such-profile.json")


def test_html_report_has_one_inline_svg_per_feature(cli: Path, tmp_path: Path) -> None:
    current = streamscore.generate(CURRENT_ROWS, seed=CURRENT_SEED, drift=DRIFT)
    report = streamscore.detect_drift(streamscore.load_model(cli / "model"), current)
    d = report.to_dict()
    names = [f["feature_name"] for f in d["features"] + d["prediction"]]
    html = report._repr_html_()
    assert "<html" not in html and "<script" not in html and "<style>" in html
    sections = re.findall(r'<section id="f-([^"]+)">(.*?)</section>', html, flags=re.S)
    assert sorted(s for s, _ in sections) == sorted(re.sub(r"[^A-Za-z0-9]", "_", n) for n in names)
    assert all(body.count("<svg") == 1 for _, body in sections)
    table = report.to_pandas()
    assert list(table["feature_name"]) == names
    assert int(table["drift_detected"].sum()) == d["n_drifted_features"] + sum(p["drift_detected"] for p in d["prediction"])
    report.save_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == report.to_html()
    assert report.to_html().startswith("<!DOCTYPE html>")


def drifting_series(n: int, seed: int = 0) -> np.ndarray:
    """Normal noise whose mean steps every n/10 values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    step = n // 10
    for k in range(10):
        x[k * step : (k + 1) * step] += 0.5 * (k % 3)
    return x


def river_changes(detector, values) -> list[int]:
    out = []
    for i, v in enumerate(values):
        detector.update(v)
        if detector.drift_detected:
            out.append(i)
    return out


def test_adwin_update_many_equals_river_on_a_million_values() -> None:
    river_drift = pytest.importorskip("river.drift")
    x = drifting_series(1_000_000)
    expected = river_changes(river_drift.ADWIN(), x.tolist())
    ours = streamscore.ADWIN().update_many(x)
    assert ours.dtype == np.int64
    assert ours.tolist() == expected
    assert len(expected) >= 5  # the steps were found
    # Value by value, and in chunks (positions relative to each chunk), the same.
    one = streamscore.ADWIN()
    assert [i for i, v in enumerate(x[:200_000]) if one.update(float(v))] == [i for i in expected if i < 200_000]
    chunked = streamscore.ADWIN()
    found = []
    for start in range(0, len(x), 300_000):
        found += (chunked.update_many(x[start : start + 300_000]) + start).tolist()
    assert found == expected and chunked.n_seen == len(x)


def test_other_detectors_equal_river() -> None:
    river_drift = pytest.importorskip("river.drift")
    binary = pytest.importorskip("river.drift.binary")
    x = drifting_series(60_000, seed=1)
    # Page-Hinkley watches the mean; inputs of other dtypes and lists are converted.
    assert streamscore.PageHinkley().update_many(x.tolist()).tolist() == river_changes(river_drift.PageHinkley(), x.tolist())
    small = x[:6_000]
    assert streamscore.KSWIN(seed=42).update_many(small).tolist() == river_changes(river_drift.KSWIN(seed=42), small.tolist())
    rng = np.random.default_rng(2)
    errors = np.concatenate([rng.random(5_000) < 0.1, rng.random(5_000) < 0.4]).astype(np.int64)
    ddm = streamscore.DDM()
    assert ddm.update_many(errors).tolist() == river_changes(binary.DDM(), errors.tolist())
    with pytest.raises(ValueError, match="delta"):
        streamscore.ADWIN(delta=2.0)
    with pytest.raises(ValueError, match="mode"):
        streamscore.PageHinkley(mode="sideways")
    with pytest.raises(ValueError):
        streamscore.ADWIN().update_many(np.zeros((2, 2)))
