"""Entry script of azureml-inference-server-http for ./bench/compare: the scikit-learn model the
other rows use (pickled by the driver, path in BENCH_MODEL), P(class) per row of {"data": [[...]]}."""

import json
import os
import pickle

import numpy as np

model = None


def init():
    global model
    with open(os.environ["BENCH_MODEL"], "rb") as f:
        model = pickle.load(f)


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=np.float64)
    return model.predict_proba(rows).tolist()
