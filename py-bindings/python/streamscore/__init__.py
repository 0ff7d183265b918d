"""streamscore: train, score and register classical ML models on the streamscore Rust engine.

The same engine as the ``streamscore`` command: a model trained here is byte-for-byte the model
``streamscore train`` fits on the same data, and scores the same, bit for bit.

>>> import streamscore
>>> df = streamscore.generate(2_000, seed=1)
>>> model = streamscore.train(df, target="default", estimator="logistic_regression")
>>> model.classes
['0', '1']
>>> model.predict_proba(df.drop(columns="default")).shape
(2000, 2)
>>> model.metrics["roc_auc"] > 0.6
True

Inputs: a pandas DataFrame (columns matched by name; categoricals and object columns read as
categories), a 2-D numpy array (columns in the model's schema order; float64, float32, int64
and int32 arrays are read in place, C or Fortran order), a list of dicts, or a dict of columns.
Outputs are numpy arrays.

Drift: :func:`detect_drift` compares data with a :class:`ReferenceProfile` (or a model's
:attr:`Model.profile`) and returns a :class:`DriftReport` that a notebook shows as HTML; the
streaming detectors :class:`ADWIN`, :class:`PageHinkley`, :class:`KSWIN` and :class:`DDM`
take one value (``update``) or a numpy array (``update_many``). Serving and streaming:
:func:`serve` runs the HTTP endpoint and :func:`stream` a scoring pipeline on a background
thread; Python objects with ``write_batch(records)`` are sinks of both.

Errors: :class:`StreamscoreError` and its subclasses :class:`SchemaError` (input that does not
fit), :class:`ModelError` (training, loading, ONNX) and :class:`RegistryError`.
"""

from __future__ import annotations

import json
import os
from importlib import util as _importlib_util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import ModelError, RegistryError, Schema, SchemaError, StreamscoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "ADWIN",
    "DDM",
    "DriftReport",
    "KSWIN",
    "Model",
    "ModelError",
    "PageHinkley",
    "ReferenceProfile",
    "Registry",
    "RegistryError",
    "Schema",
    "SchemaError",
    "Server",
    "Stream",
    "StreamscoreError",
    "credit_schema",
    "detect_drift",
    "generate",
    "load_model",
    "serve",
    "stream",
    "train",
    "__version__",
]

__version__: str = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]


def _is_dataframe(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, "columns") and hasattr(x, "dtypes")


# numpy dtypes the native module reads in place (any strides), a column or a matrix at a time;
# other numeric dtypes are converted to float64 or int64 first. Bool matrices are read as
# float64, as before.
_NATIVE_DTYPES = tuple(np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_))
_MATRIX_DTYPES = tuple(np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32))


def _series_values(s: Any) -> Any:
    """One pandas column as the native module reads it: a numpy float64/int64/bool array
    (passed without copying when it already is one) or a list of Python values."""
    import pandas as pd

    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        # Codes and category names: no Python object per value.
        return (np.ascontiguousarray(s.cat.codes.to_numpy(), dtype=np.int64), [str(c) for c in dtype.categories])
    if dtype == object or pd.api.types.is_string_dtype(dtype):
        return s.astype(object).where(s.notna(), None).tolist()
    if isinstance(dtype, np.dtype):
        if dtype in _NATIVE_DTYPES:
            return s.to_numpy()
        if dtype.kind == "f":
            return s.to_numpy(dtype=np.float64)
        if dtype.kind in "iu":
            return s.to_numpy(dtype=np.int64)
    # Nullable extension types (Int64, Float64, boolean) and anything else: value by value.
    return s.astype(object).where(s.notna(), None).tolist()


def _array_values(a: np.ndarray) -> Any:
    if a.dtype in _NATIVE_DTYPES:
        return a
    if a.dtype.kind == "f":
        return a.astype(np.float64)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    return [None if v is None or (isinstance(v, float) and v != v) else v for v in a.tolist()]


def _columns(data: Any, names: Sequence[str]) -> Any:
    """`data` as the native module reads it for fields `names`: a 2-D float64 array, or one
    column per name, in order."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise SchemaError(f"expected a 2-D array (rows × {len(names)} fields), got {data.ndim}-D")
        if data.dtype in _MATRIX_DTYPES:
            return data
        if data.dtype.kind in "fiub":
            return np.asarray(data, dtype=np.float64)
        return [_array_values(data[:, i]) for i in range(data.shape[1])]
    if _is_dataframe(data):
        missing = [n for n in names if n not in data.columns]
        if missing:
            raise SchemaError(
                f"the DataFrame has no column {', '.join(map(repr, missing))}; the model reads: {', '.join(names)}"
            )
        return [_series_values(data[n]) for n in names]
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise SchemaError(f"no column {', '.join(map(repr, missing))}; the model reads: {', '.join(names)}")
        return [
            _array_values(np.asarray(data[n])) if isinstance(data[n], np.ndarray) else list(data[n]) for n in names
        ]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if rows and not all(isinstance(r, Mapping) for r in rows):
            raise SchemaError("a list input must hold one dict per row (field name → value)")
        return [[r.get(n) for r in rows] for n in names]
    raise SchemaError(
        f"cannot read input of type {type(data).__name__}: pass a pandas DataFrame, a 2-D numpy array, "
        "a list of dicts or a dict of columns"
    )


def _threads(threads: int) -> int:
    """The thread count of a scoring call: ``-1`` is every core this process may use (as
    scikit-learn's ``n_jobs=-1``)."""
    if threads == -1:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, or -1 for every core; got {threads}")
    return threads


class Model:
    """A fitted model: a native streamscore model or an ONNX graph run by ONNX Runtime.

    Get one from :func:`train`, :func:`load_model`, :meth:`Registry.get`,
    :meth:`Model.from_onnx` or :meth:`Model.from_sklearn`.

    >>> import streamscore
    >>> df = streamscore.generate(1_000, seed=3)
    >>> m = streamscore.train(df, estimator="decision_tree", params={"max_depth": 3})
    >>> m.kind
    'decision_tree_classifier'
    >>> m.predict(df.head(3)).tolist() in (["0", "0", "0"], ["0", "0", "1"], ["0", "1", "0"],
    ...     ["1", "0", "0"], ["0", "1", "1"], ["1", "0", "1"], ["1", "1", "0"], ["1", "1", "1"])
    True
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _native.Model) -> None:
        self._inner = inner

    @property
    def schema(self) -> Schema:
        """The fields the model reads (names, types, vocabularies)."""
        return self._inner.schema

    @property
    def feature_names(self) -> List[str]:
        """The names of the fields the model reads, in order (the column order of array input)."""
        return self._inner.schema.names

    @property
    def classes(self) -> Optional[List[str]]:
        """Class labels in the column order of :meth:`predict_proba`; ``None`` for a regressor."""
        return self._inner.classes

    @property
    def kind(self) -> str:
        """The model kind: ``random_forest``, ``logistic_regression``, ``onnx``, ..."""
        return self._inner.kind

    @property
    def metrics(self) -> Dict[str, Any]:
        """The metrics recorded at training (``validation``, ``n_train``, ``cv``, ...); empty
        for imported models."""
        return json.loads(self._inner.metrics_json)

    @property
    def tags(self) -> Dict[str, str]:
        """The artifact's tags (target, split, training data, ...)."""
        return json.loads(self._inner.tags_json)

    def predict_proba(self, X: Any, *, threads: int = 1) -> np.ndarray:
        """Class probabilities, a float64 array of shape ``(rows, len(classes))``.

        ``X``: a DataFrame, a 2-D array in :attr:`feature_names` order, a list of dicts or a
        dict of columns. ``threads``: threads one large batch (2,048 rows or more) may use,
        ``-1`` for every core (the result does not depend on it); the default, one, leaves the
        other cores to the caller. The GIL is released while scoring.
        """
        return self._inner.predict_proba(_columns(X, self.feature_names), threads=_threads(threads))

    def predict(self, X: Any, *, threads: int = 1) -> np.ndarray:
        """The predicted class label per row (an array of ``str``), or the predicted value
        (float64) for a regressor. ``threads`` as for :meth:`predict_proba`."""
        out = self._inner.predict(_columns(X, self.feature_names), threads=_threads(threads))
        classes = self._inner.classes
        if classes is None:
            return out
        return np.asarray(classes)[out]

    @property
    def profile(self) -> "ReferenceProfile":
        """The profile of the training data stored with the model (models trained by
        streamscore carry one), the reference of :func:`detect_drift`."""
        return ReferenceProfile(self._inner.profile)

    def save(self, path: PathLike) -> None:
        """Saves the model as an artifact directory (MLflow layout with checksums), readable
        by :func:`load_model` and ``streamscore predict --model PATH``."""
        self._inner.save(os.fspath(path))

    @classmethod
    def from_onnx(cls, path: PathLike, schema: Optional[Schema] = None, columns: Optional[Sequence[str]] = None) -> "Model":
        """Loads an ONNX model (scikit-learn via skl2onnx, XGBoost, LightGBM exports).

        ``schema``: the fields it reads (derived from the graph's inputs when omitted);
        ``columns``: names for the features of a single ``[N, F]`` input. The ONNX Runtime
        library is the one of the installed ``onnxruntime`` package (``pip install
        onnxruntime``), unless ``ORT_DYLIB_PATH`` or ``STREAMSCORE_ORT_LIB`` says otherwise.
        """
        p = Path(os.fspath(path))
        try:
            data = p.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read {p}: {e.strerror or e}") from None
        return cls._from_onnx_bytes(data, str(p), schema, columns)

    @classmethod
    def _from_onnx_bytes(
        cls, data: bytes, origin: str, schema: Optional[Schema], columns: Optional[Sequence[str]]
    ) -> "Model":
        return cls(
            _native.Model.from_onnx_bytes(
                data, origin, schema=schema, columns=list(columns) if columns is not None else None, library=_ort_library()
            )
        )

    @classmethod
    def from_sklearn(cls, estimator: Any, X_sample: Any) -> "Model":
        """Converts a fitted scikit-learn estimator through skl2onnx and loads it.

        ``X_sample``: a few rows of the training input (a DataFrame gives the feature names,
        an array ``f0, f1, ...``). The model reads one float tensor: scikit-learn's
        ``predict_proba`` on float32-cast input is what it reproduces.

        Needs ``pip install skl2onnx onnxruntime`` (``streamscore[sklearn]``).
        """
        try:
            from skl2onnx import convert_sklearn
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError as e:
            raise ImportError(
                "Model.from_sklearn needs skl2onnx: pip install skl2onnx onnxruntime "
                f"(or pip install 'streamscore[sklearn]'); {e}"
            ) from e
        if _is_dataframe(X_sample):
            columns = [str(c) for c in X_sample.columns]
        else:
            a = np.asarray(X_sample)
            if a.ndim != 2:
                raise SchemaError(f"X_sample must be 2-D (rows × features), got {a.ndim}-D")
            columns = [f"f{i}" for i in range(a.shape[1])]
        options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
        onx = convert_sklearn(
            estimator,
            initial_types=[("input", FloatTensorType([None, len(columns)]))],
            options=options,
            target_opset=None,
        )
        name = type(estimator).__name__
        return cls._from_onnx_bytes(onx.SerializeToString(), f"{name} (skl2onnx)", None, columns)

    def __repr__(self) -> str:
        return repr(self._inner)


def _ort_library() -> Optional[str]:
    """The ONNX Runtime library next to the installed ``onnxruntime`` package (found without
    importing it), unless a variable names one; ``None`` lets the engine search."""
    if os.environ.get("ORT_DYLIB_PATH") or os.environ.get("STREAMSCORE_ORT_LIB"):
        return None
    spec = _importlib_util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        capi = Path(root) / "capi"
        for lib in sorted(capi.glob("libonnxruntime.so*")) + sorted(capi.glob("libonnxruntime*.dylib")) + sorted(
            capi.glob("onnxruntime.dll")
        ):
            if lib.is_file():
                return str(lib)
    return None


def _schema_of(df: Any) -> Schema:
    """The schema of a DataFrame: float, int and bool columns as such, pandas categoricals as
    categorical with their categories in order, object and string columns as categorical with
    their sorted distinct values. A column with missing values is nullable."""
    import pandas as pd

    fields = []
    for name in df.columns:
        s = df[name]
        dtype = s.dtype
        nullable = bool(s.isna().any())
        if isinstance(dtype, pd.CategoricalDtype):
            vocab = [str(c) for c in dtype.categories]
            field: Dict[str, Any] = {"name": str(name), "type": "categorical", "vocabulary": vocab}
        elif pd.api.types.is_bool_dtype(dtype):
            field = {"name": str(name), "type": "bool"}
        elif pd.api.types.is_integer_dtype(dtype):
            field = {"name": str(name), "type": "int"}
        elif pd.api.types.is_float_dtype(dtype):
            field = {"name": str(name), "type": "float"}
        elif dtype == object or pd.api.types.is_string_dtype(dtype):
            vocab = sorted({str(v) for v in s.dropna().tolist()})
            if not vocab:
                raise SchemaError(f"column {name!r} has no values; drop it or give a schema")
            field = {"name": str(name), "type": "categorical", "vocabulary": vocab}
        else:
            raise SchemaError(
                f"column {name!r} has dtype {dtype}, which streamscore cannot read; "
                "convert it to a number, bool, category or str"
            )
        field["nullable"] = nullable
        fields.append(field)
    return Schema.from_json(json.dumps({"fields": fields}))


def train(
    df: "pd.DataFrame",
    target: str = "default",
    estimator: str = "random_forest",
    params: Optional[Mapping[str, Any]] = None,
    sweep: Optional[Mapping[str, Any]] = None,
    *,
    schema: Optional[Schema] = None,
    validation_fraction: float = 0.2,
    seed: int = 42,
    cv: Optional[int] = None,
) -> Model:
    """Trains a model on a DataFrame, exactly as ``streamscore train`` does on the same data.

    ``target``: the column to predict. ``estimator``: a name of ``streamscore train
    --estimator`` (``logistic_regression``, ``random_forest_classifier``,
    ``decision_tree_regressor``, ``ridge``, ``gaussian_nb``, ...; ``random_forest``,
    ``decision_tree`` and ``k_neighbors`` mean the classifiers), with ``params`` as for
    ``--param`` (e.g. ``{"n_estimators": 100, "max_depth": 8}``). ``sweep``: a random search,
    ``{"trials": 20, "metric": "roc_auc", "seed": 0, "space": {"max_depth": "2..12"}}``.
    ``schema``: the fields (default: from the DataFrame's dtypes, categoricals and object
    columns as categories). ``validation_fraction`` and ``seed``: the held-out split
    (stratified for classifiers); ``cv``: k-fold cross-validation on the training rows.

    The GIL is released while training; Ctrl-C interrupts the call.

    Example:

    >>> import streamscore
    >>> df = streamscore.generate(3_000, seed=7)
    >>> model = streamscore.train(df, target="default", estimator="random_forest",
    ...                           params={"n_estimators": 20, "max_depth": 6})
    >>> sorted(k for k in model.metrics if k in ("accuracy", "f1", "log_loss"))
    ['accuracy', 'f1', 'log_loss']
    >>> model.predict_proba(df.drop(columns="default")[:2]).shape
    (2, 2)
    """
    if not _is_dataframe(df):
        raise SchemaError(f"train needs a pandas DataFrame, got {type(df).__name__}")
    if schema is None:
        schema = _schema_of(df)
    estimator = _ESTIMATOR_ALIASES.get(estimator, estimator)
    native_params = [(str(k), _param_text(v)) for k, v in (params or {}).items()]
    native_sweep = None
    if sweep is not None:
        space = sweep.get("space") or {}
        if not space:
            raise ModelError("sweep needs a non-empty 'space' ({'name': 'lo..hi' or 'a,b,c'})")
        native_sweep = (
            int(sweep.get("trials", 20)),
            str(sweep.get("metric", "f1")),
            int(sweep.get("seed", 0)),
            [f"{k}={_param_text(v) if not isinstance(v, str) else v}" for k, v in space.items()],
        )
    return Model(
        _native.train(
            _columns(df, schema.names),
            schema,
            target,
            estimator,
            native_params,
            float(validation_fraction),
            int(seed),
            cv=cv,
            sweep=native_sweep,
        )
    )


_ESTIMATOR_ALIASES = {
    "random_forest": "random_forest_classifier",
    "decision_tree": "decision_tree_classifier",
    "k_neighbors": "k_neighbors_classifier",
}


def _param_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(_param_text(x) for x in v)
    return str(v)


def load_model(path_or_ref: PathLike, registry: Optional[Union["Registry", PathLike]] = None) -> Model:
    """Loads a model: an artifact directory (from :meth:`Model.save` or ``streamscore
    train --out``), or a registry reference such as ``"credit@prod"`` or ``"credit:3"`` read
    from ``registry`` (a :class:`Registry` or its location; default ``./.streamscore/registry``
    when no directory of that name exists).

    >>> import streamscore, tempfile, os
    >>> m = streamscore.train(streamscore.generate(500, seed=1), estimator="logistic_regression")
    >>> d = os.path.join(tempfile.mkdtemp(), "model")
    >>> m.save(d)
    >>> streamscore.load_model(d).classes
    ['0', '1']
    """
    if registry is None and os.path.exists(os.fspath(path_or_ref)):
        return Model(_native.load_model(os.fspath(path_or_ref)))
    if registry is None:
        text = os.fspath(path_or_ref)
        if ":" in text or "@" in text:
            registry = os.path.join(".streamscore", "registry")
        else:
            raise ModelError(f"no model directory {text!r}; pass a directory or a reference such as name@prod")
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    return reg.get(os.fspath(path_or_ref))


class Registry:
    """A model registry: named models, integer versions, aliases (``dev``, ``prod``, ...) and
    lineage; the same registry as ``streamscore registry``.

    ``location``: a directory (created if missing), or ``blob://CONTAINER[/PREFIX]`` for Azure
    Blob Storage (account from ``AZURE_STORAGE_ACCOUNT_URL`` or
    ``AZURE_STORAGE_CONNECTION_STRING``).

    >>> import streamscore, tempfile
    >>> reg = streamscore.Registry(tempfile.mkdtemp())
    >>> m = streamscore.train(streamscore.generate(500, seed=2), estimator="logistic_regression")
    >>> reg.register("credit", m)["version"]
    1
    >>> reg.promote("credit:1", "prod")["version"]
    1
    >>> reg.get("credit@prod").classes
    ['0', '1']
    >>> [v["version"] for v in reg.versions("credit")]
    [1]
    """

    __slots__ = ("_inner",)

    def __init__(self, location: PathLike) -> None:
        self._inner = _native.Registry(os.fspath(location))

    @property
    def location(self) -> str:
        """Where the registry lives."""
        return self._inner.location

    def register(
        self,
        name: str,
        model: Model,
        *,
        tags: Optional[Mapping[str, str]] = None,
        description: Optional[str] = None,
        training_data: Optional[str] = None,
        parent_version: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Stores ``model`` as the next version of ``name``; returns the version's metadata
        (``name``, ``version``, ``sha256``, ``metrics``, ``tags``, ...)."""
        return json.loads(
            self._inner.register(
                name,
                model._inner,
                tags=dict(tags) if tags is not None else None,
                description=description,
                training_data=training_data,
                parent_version=parent_version,
            )
        )

    def get(self, reference: str) -> Model:
        """Loads the version ``reference`` selects (``name:3``, ``name@prod``,
        ``name@latest``), every checksum verified."""
        return Model(self._inner.get(reference))

    def resolve(self, reference: str) -> Dict[str, Any]:
        """The metadata of the version ``reference`` selects, without loading it."""
        return json.loads(self._inner.resolve(reference))

    def versions(self, name: str) -> List[Dict[str, Any]]:
        """The versions of ``name``, oldest first."""
        return json.loads(self._inner.versions(name))

    def list(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every model (or only ``name``): ``{"name", "versions", "aliases"}`` each."""
        return json.loads(self._inner.list(name))

    def promote(self, reference: str, alias: str, to: Optional["Registry"] = None) -> Dict[str, Any]:
        """Points ``alias`` at the version ``reference`` selects, here or, with ``to``, in
        another registry after a verified copy; returns the target version's metadata."""
        return json.loads(self._inner.promote(reference, alias, to._inner if to is not None else None))

    def __repr__(self) -> str:
        return f"Registry({self.location!r})"


def credit_schema() -> Schema:
    """The schema of :func:`generate`'s data (what ``streamscore generate`` writes beside its
    CSV): the 9 code columns categorical, the others int."""
    return _native.credit_schema()


def generate(rows: int, seed: int = 0, drift: float = 0.0) -> "pd.DataFrame":
    """The synthetic credit-default data of ``streamscore generate --rows ROWS --seed SEED
    --drift DRIFT`` as a DataFrame: int64 columns, the code columns (``SEX``, ``EDUCATION``,
    ``MARRIAGE``, ``PAY_*``) as pandas categoricals with the schema's categories, and the
    target ``default`` (0/1).

    >>> import streamscore
    >>> df = streamscore.generate(5, seed=1)
    >>> df.shape
    (5, 24)
    >>> str(df["SEX"].dtype)
    'category'
    """
    import pandas as pd

    names, columns = _native.generate(int(rows), int(seed), float(drift))
    schema = json.loads(credit_schema().to_json())
    vocab = {f["name"]: f["vocabulary"] for f in schema["fields"] if f["type"] == "categorical"}
    data: Dict[str, Any] = {}
    for name, values in zip(names, columns):
        if name in vocab:
            categories = vocab[name]
            as_int = np.array([int(c) for c in categories])
            codes = np.searchsorted(as_int, values)
            codes = np.clip(codes, 0, len(categories) - 1)
            if not np.array_equal(as_int[codes], values):
                raise StreamscoreError(f"generated column {name} holds a value outside its vocabulary (a bug)")
            data[name] = pd.Categorical.from_codes(codes, categories=categories)
        else:
            data[name] = values
    return pd.DataFrame(data)


# Defined after everything above: these modules import from this one.
from ._drift import ADWIN, DDM, KSWIN, DriftReport, PageHinkley, ReferenceProfile, detect_drift  # noqa: E402
from ._serving import Server, Stream, serve, stream  # noqa: E402
