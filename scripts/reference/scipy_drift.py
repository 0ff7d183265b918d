"""Records reference values for ml-drift's statistics with scipy.

Writes ml-drift/tests/reference/scipy_drift.json: inputs and scipy's outputs for the two-sample
KS test (method="exact" and "asymp"), kstwo.sf and smirnov on a grid, chisquare,
chi2_contingency, wasserstein_distance and jensenshannon. Run from the repository root:

    ./scripts/python-env.sh && .venv/bin/python scripts/reference/scipy_drift.py
"""

import json
import pathlib

import numpy as np
import scipy
from scipy import special, stats
from scipy.spatial import distance

OUT = pathlib.Path("ml-drift/tests/reference/scipy_drift.json")
rng = np.random.default_rng(20260101)


def sample(n, loc=0.0, scale=1.0, decimals=3):
    # Rounded so that the JSON stays small and ties occur, as they do in real data.
    return [float(x) for x in np.round(rng.normal(loc, scale, n), decimals)]


ks_cases = []
for (n1, n2, shift, method) in [
    (10, 10, 0.0, "exact"), (10, 10, 1.5, "exact"), (25, 40, 0.5, "exact"), (40, 25, 0.5, "exact"),
    (100, 100, 0.3, "exact"), (300, 500, 0.15, "exact"), (1000, 1200, 0.05, "exact"),
    (777, 333, 0.2, "exact"), (50, 3000, 0.1, "exact"),
    (30, 20, 0.5, "asymp"), (150, 130, 0.3, "asymp"), (200, 200, 0.0, "asymp"),
    (400, 300, 0.25, "asymp"), (2000, 1500, 0.05, "asymp"), (3000, 2500, 0.12, "asymp"),
    (5000, 4000, 0.02, "asymp"), (1000, 900, 1.0, "asymp"),
]:
    a, b = sample(n1), sample(n2, loc=shift)
    r = stats.ks_2samp(a, b, method=method)
    ks_cases.append({"a": a, "b": b, "method": method,
                     "statistic": float(r.statistic), "p_value": float(r.pvalue)})

kstwo = []
for n in [3, 10, 50, 140, 141, 500, 5000, 20000, 100000, 100001, 250000, 2000000]:
    for x in [0.3 / n, 0.8 / n, 1.5 / n, 0.5 / np.sqrt(n), 0.8 / np.sqrt(n), 1.0 / np.sqrt(n),
              1.3 / np.sqrt(n), 1.8 / np.sqrt(n), 2.5 / np.sqrt(n), 4.0 / np.sqrt(n), 0.55, 0.97]:
        if 0 < x < 1:
            kstwo.append({"n": n, "x": float(x), "sf": float(stats.kstwo.sf(x, n))})

smirnov = []
for n in [2, 7, 30, 200, 1013, 5000, 90000]:
    for x in [0.5 / n, 1.0 / n, 2.0 / n, 0.3, 0.6, 1.0 / np.sqrt(n), 1.5 / np.sqrt(n)]:
        if 0 < x < 1:
            smirnov.append({"n": n, "x": float(x), "sf": float(special.smirnov(n, x))})

chisq = []
for obs, exp in [([10, 20, 30], [20, 20, 20]), ([5, 9, 1, 40], [10, 10, 10, 25]),
                 ([100, 120], [0.5, 0.5]), ([3, 3, 3, 3, 3], [1, 2, 3, 4, 5])]:
    exp = np.asarray(exp, float)
    exp = exp / exp.sum() * sum(obs)
    r = stats.chisquare(obs, exp)
    chisq.append({"observed": [float(v) for v in obs], "expected": [float(v) for v in exp],
                  "statistic": float(r.statistic), "p_value": float(r.pvalue)})

contingency = []
for ref, cur in [([120, 80], [90, 110]), ([30, 50, 20, 10], [25, 40, 40, 5]), ([500, 5], [480, 25]),
                 ([7, 3, 9], [2, 11, 6])]:
    r = stats.chi2_contingency(np.array([ref, cur]))
    contingency.append({"reference": [float(v) for v in ref], "current": [float(v) for v in cur],
                        "statistic": float(r.statistic), "p_value": float(r.pvalue), "dof": int(r.dof)})

wasserstein = []
for n1, n2, shift in [(5, 7, 0.0), (100, 80, 0.5), (1000, 1500, 0.1), (50, 50, 3.0)]:
    u, v = sample(n1), sample(n2, loc=shift, scale=1.3)
    wasserstein.append({"u": u, "v": v, "distance": float(stats.wasserstein_distance(u, v))})

js = []
for p, q in [([0.1, 0.4, 0.5], [0.2, 0.3, 0.5]), ([1, 0, 0], [0, 1, 0]), ([3, 5, 7, 1], [3, 5, 7, 1]),
             ([0.25, 0.25, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]), ([10, 1], [1, 10])]:
    js.append({"p": [float(x) for x in p], "q": [float(x) for x in q],
               "distance": float(distance.jensenshannon(p, q))})

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({
    "generator": f"scripts/reference/scipy_drift.py with scipy {scipy.__version__}, numpy {np.__version__}",
    "ks_2samp": ks_cases, "kstwo_sf": kstwo, "smirnov": smirnov, "chisquare": chisq,
    "chi2_contingency": contingency, "wasserstein": wasserstein, "jensenshannon": js,
}, separators=(",", ":")))
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
