"""Drift detection from Python: reference profiles, drift reports (JSON, pandas, HTML) and the
streaming change detectors. The same engine as ``streamscore profile`` and ``streamscore
drift``: a report computed here equals the command's ``--json`` output on the same data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _native
from ._native import ADWIN, DDM, KSWIN, PageHinkley, Schema, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from . import Model, Registry

__all__ = ["ADWIN", "DDM", "KSWIN", "PageHinkley", "DriftReport", "ReferenceProfile", "detect_drift"]

PathLike = Union[str, "os.PathLike[str]"]


class ReferenceProfile:
    """What the training data looked like, for drift detection: per feature a sample and
    quantile bins (numeric) or category counts (categorical); the ``profile.json`` of
    ``streamscore profile``.

    Get one from :meth:`from_frame`, :meth:`load` (a ``profile.json`` or a model directory) or
    :attr:`Model.profile` (the profile stored with a trained model).
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _native.ReferenceProfile) -> None:
        self._inner = inner

    @classmethod
    def from_frame(
        cls,
        df: "pd.DataFrame",
        *,
        schema: Optional[Schema] = None,
        drop: Optional[Sequence[str]] = None,
        bins: int = 10,
        sample_size: int = 10_000,
    ) -> "ReferenceProfile":
        """Profiles a DataFrame (``drop``: columns to leave out, e.g. the target), as
        ``streamscore profile --bins BINS --sample-size SAMPLE_SIZE`` profiles a CSV file."""
        from . import _columns, _is_dataframe, _schema_of

        if not _is_dataframe(df):
            raise SchemaError(f"from_frame needs a pandas DataFrame, got {type(df).__name__}")
        if drop:
            df = df.drop(columns=list(drop))
        if schema is None:
            schema = _schema_of(df)
        return cls(
            _native.ReferenceProfile.from_columns(
                _columns(df, schema.names), schema, bins=int(bins), sample_size=int(sample_size)
            )
        )

    @classmethod
    def load(cls, path: PathLike) -> "ReferenceProfile":
        """Reads a ``profile.json`` file, or the profile stored in a model artifact directory."""
        return cls(_native.ReferenceProfile.load(os.fspath(path)))

    @classmethod
    def from_json(cls, text: str) -> "ReferenceProfile":
        """A profile from its JSON text."""
        return cls(_native.ReferenceProfile.from_json(text))

    def to_json(self) -> str:
        """The JSON text (deterministic: the same profile gives the same bytes)."""
        return self._inner.to_json()

    def save(self, path: PathLike) -> None:
        """Writes the profile as JSON (readable by :meth:`load` and ``streamscore drift
        --reference``)."""
        Path(os.fspath(path)).write_text(self.to_json(), encoding="utf-8")

    @property
    def n_rows(self) -> int:
        """Rows profiled."""
        return self._inner.n_rows

    @property
    def feature_names(self) -> List[str]:
        """The profiled features, in schema order."""
        return self._inner.feature_names

    @property
    def output_names(self) -> List[str]:
        """The profiled model outputs (prediction drift); empty without a model."""
        return self._inner.output_names

    @property
    def schema(self) -> Optional[Schema]:
        """The schema current data is read with."""
        return self._inner.schema

    def __repr__(self) -> str:
        return repr(self._inner)


_SUMMARY_COLUMNS = [
    "feature_name",
    "feature_type",
    "stattest_name",
    "drift_score",
    "p_value",
    "adjusted_p_value",
    "threshold",
    "drift_detected",
    "is_output",
]


class DriftReport:
    """The result of :func:`detect_drift`: per feature (and model output) the test, its score,
    the threshold and the verdict, and the dataset verdict. In a notebook it shows as the HTML
    report (a summary table and one inline SVG histogram per feature)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _native.DriftReport) -> None:
        self._inner = inner

    @property
    def dataset_drift(self) -> bool:
        """Whether the share of drifted features reached the threshold."""
        return self._inner.dataset_drift

    @property
    def n_drifted_features(self) -> int:
        """Features that drifted."""
        return self._inner.n_drifted_features

    @property
    def n_features(self) -> int:
        """Features tested."""
        return self._inner.n_features

    def to_json(self) -> str:
        """Pretty JSON: the text ``streamscore drift --json`` writes."""
        return self._inner.to_json()

    def to_dict(self) -> Dict[str, Any]:
        """The report as a dict (the JSON form): dataset fields at the top level, ``features``
        and ``prediction`` lists with each test's histogram."""
        return json.loads(self._inner.to_json())

    def to_pandas(self) -> "pd.DataFrame":
        """One row per feature and model output (histograms left out), in report order."""
        import pandas as pd

        d = self.to_dict()
        rows = [{k: f.get(k) for k in _SUMMARY_COLUMNS} for f in d["features"] + d["prediction"]]
        return pd.DataFrame(rows, columns=_SUMMARY_COLUMNS)

    def to_html(self) -> str:
        """One self-contained HTML page (``streamscore drift --html``): no script, no external
        asset."""
        return self._inner.to_html()

    def save_html(self, path: PathLike) -> None:
        """Writes :meth:`to_html` to ``path``."""
        Path(os.fspath(path)).write_text(self.to_html(), encoding="utf-8")

    def _repr_html_(self) -> str:
        # The page's style and body, without the document wrapper a notebook cell cannot hold.
        page = self.to_html()
        style = page[page.index("<style>") : page.index("</style>") + len("</style>")]
        body = page[page.index("<body>") + len("<body>") : page.rindex("</body>")]
        return style + body

    def __repr__(self) -> str:
        return (
            f"DriftReport(dataset_drift={self.dataset_drift}, drifted={self.n_drifted_features}"
            f"/{self.n_features})"
        )


def _present(current: Any, names: Sequence[str]) -> List[str]:
    """The fields of ``names`` that ``current`` has, in order."""
    from . import _is_dataframe

    if _is_dataframe(current):
        have = set(map(str, current.columns))
    elif isinstance(current, Mapping):
        have = set(current)
    elif isinstance(current, Sequence) and not isinstance(current, (str, bytes)) and current:
        first = current[0]
        if not isinstance(first, Mapping):
            raise SchemaError("a list input must hold one dict per row (field name → value)")
        have = set(first)
    else:
        raise SchemaError(
            f"cannot read current data of type {type(current).__name__}: pass a pandas DataFrame, "
            "a list of dicts or a dict of columns"
        )
    return [n for n in names if n in have]


def detect_drift(
    reference: Union["Model", ReferenceProfile, PathLike],
    current: Any,
    tests: Optional[Mapping[str, str]] = None,
    *,
    thresholds: Optional[Mapping[str, float]] = None,
    correction: str = "none",
    drift_share: float = 0.5,
    registry: Optional[Union["Registry", PathLike]] = None,
) -> DriftReport:
    """Compares ``current`` data with a reference, as ``streamscore drift`` does.

    ``reference``: a :class:`Model` (its stored training profile; the model's predictions on
    ``current`` are compared too: prediction drift), a :class:`ReferenceProfile`, or a path or
    registry reference as ``streamscore drift --reference`` takes (a ``profile.json``, a model
    directory, ``credit@prod`` read from ``registry``). ``current``: a DataFrame, a list of
    dicts or a dict of columns; columns the reference did not profile (a target) may be absent.
    ``tests``: per-feature test overrides (``{"AGE": "psi"}``; ks, wasserstein, psi,
    jensenshannon, hellinger, chisquare, z), ``thresholds`` per-feature thresholds,
    ``correction`` ``none``, ``bonferroni`` or ``bh``, ``drift_share`` the share of drifted
    features that makes dataset drift.
    """
    from . import Model, _columns, load_model

    model: Optional[Model] = None
    if isinstance(reference, Model):
        model = reference
        profile = reference.profile
    elif isinstance(reference, ReferenceProfile):
        profile = reference
    else:
        text = os.fspath(reference)
        if os.path.isdir(text) or (registry is not None or "@" in text) and not os.path.exists(text):
            model = load_model(text, registry=registry)
            profile = model.profile
        else:
            profile = ReferenceProfile.load(text)
    schema = profile.schema
    if schema is None:
        raise SchemaError("the reference profile has no schema; recompute it with ReferenceProfile.from_frame")
    names = _present(current, schema.names)
    columns = _columns(current, names) if names else []
    if not isinstance(columns, list):
        raise SchemaError("pass the current data as a DataFrame, a list of dicts or a dict of columns")
    return DriftReport(
        _native.detect_drift(
            profile._inner,
            names,
            columns,
            model=model._inner if model is not None and profile.output_names else None,
            tests=dict(tests) if tests else None,
            thresholds={k: float(v) for k, v in thresholds.items()} if thresholds else None,
            correction=correction,
            drift_share=float(drift_share),
        )
    )
