"""The registry from Python: register, get, versions, promote, list."""

from __future__ import annotations

import numpy as np
import pytest

import streamscore


def test_register_get_promote_list(tmp_path) -> None:
    df = streamscore.generate(1_500, seed=4)
    X = df.drop(columns="default")
    reg = streamscore.Registry(tmp_path / "registry")
    m1 = streamscore.train(df, estimator="logistic_regression")
    m2 = streamscore.train(df, estimator="decision_tree", params={"max_depth": 4})
    v1 = reg.register("credit", m1, tags={"team": "risk"}, description="first")
    v2 = reg.register("credit", m2, parent_version=1, training_data="generate 1500/4")
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["tags"]["team"] == "risk" and v2["parent_version"] == 1
    assert v1["metrics"]["roc_auc"] == m1.metrics["roc_auc"]

    assert np.array_equal(reg.get("credit:1").predict_proba(X), m1.predict_proba(X))
    assert np.array_equal(reg.get("credit@latest").predict_proba(X), m2.predict_proba(X))
    assert reg.promote("credit:1", "prod")["version"] == 1
    assert np.array_equal(reg.get("credit@prod").predict_proba(X), m1.predict_proba(X))
    assert np.array_equal(streamscore.load_model("credit@prod", registry=reg).predict_proba(X), m1.predict_proba(X))
    assert reg.resolve("credit@prod")["sha256"] == v1["sha256"]
    assert [v["version"] for v in reg.versions("credit")] == [1, 2]
    [entry] = reg.list()
    assert entry["name"] == "credit" and entry["aliases"] == {"prod": 1}

    # Promotion into another registry copies the version and records where it came from.
    prod = streamscore.Registry(tmp_path / "prod-registry")
    copied = reg.promote("credit:2", "prod", to=prod)
    assert copied["version"] == 1 and copied["copied_from"][0]["version"] == 2
    assert np.array_equal(prod.get("credit@prod").predict_proba(X), m2.predict_proba(X))


def test_registry_errors(tmp_path) -> None:
    reg = streamscore.Registry(tmp_path / "r")
    with pytest.raises(streamscore.RegistryError, match="credit"):
        reg.get("credit@prod")
    with pytest.raises(streamscore.RegistryError):
        reg.get("not a reference!")
    with pytest.raises(streamscore.RegistryError, match="scheme"):
        streamscore.Registry("s3://bucket/models")
