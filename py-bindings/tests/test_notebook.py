"""The example notebook (examples/notebook.ipynb) runs end to end against the installed package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_example_notebook_executes_and_shows_the_drift_report(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO / "examples" / "notebook.ipynb", as_version=4)
    # The "python3" kernel is this interpreter (ipykernel's native kernel): the installed wheel.
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code)
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    html = code[-1]["outputs"][0]["data"]["text/html"]
    sections = re.findall(r'<section id="f-[^"]+">(.*?)</section>', html, flags=re.S)
    # 23 features of the credit data, plus the model's outputs (prediction drift).
    assert len(sections) >= 23
    assert all(s.count("<svg") == 1 for s in sections)
    assert "<b>yes</b>" in html  # some features drifted
