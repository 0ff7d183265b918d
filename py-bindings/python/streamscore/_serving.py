"""Serving and streaming from Python: the endpoint of ``streamscore serve`` and the pipeline of
``streamscore stream``, each on a background thread of the Rust engine.

Sinks are spec strings (``"jsonl:logs/"``, ``"stdout:"``, ``"parquet:out/"``, ...) or any
Python object with ``write_batch(self, records: list[dict])`` and, optionally, ``flush()`` and
``close()``. Each record is a dict with ``correlation_id``, ``request_id``, ``timestamp_ms``,
``event_timestamp_ms``, ``model_name``, ``model_version``, ``partition``, ``offset``,
``inputs`` (field → value), ``outputs`` (``label`` and ``probability_<label>``, or
``prediction``) and ``latency_ms``. The GIL is taken only for the call. In a stream, an
exception from ``write_batch`` or ``flush`` is retried with backoff (the pipeline's retry
policy: ``max_attempts``, ``initial_backoff_ms``), then stops the stream with the error, so no
record is dropped silently; delivery is at-least-once, records carry ``(partition, offset)``
to recognise repeats. On an endpoint (``log_sinks``) a failing sink drops that request's
records and counts them (:meth:`Server.payload_counters`): the endpoint keeps answering.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _native

if TYPE_CHECKING:  # pragma: no cover
    from . import Model, Registry

__all__ = ["Server", "Stream", "serve", "stream"]

PathLike = Union[str, "os.PathLike[str]"]


def _resolve_model(
    model_or_ref: Union["Model", PathLike],
    registry: Optional[Union["Registry", PathLike]],
    name: Optional[str],
    version: Optional[str],
) -> Tuple["Model", str, str]:
    """The model, and the name and version its records and headers carry."""
    from . import Model, Registry, load_model

    if isinstance(model_or_ref, Model):
        return model_or_ref, name or "model", version or "1"
    text = os.fspath(model_or_ref)
    if os.path.isdir(text):
        return load_model(text), name or os.path.basename(os.path.abspath(text)), version or "1"
    reg = registry if isinstance(registry, Registry) else Registry(registry or os.path.join(".streamscore", "registry"))
    meta = reg.resolve(text)
    return reg.get(text), name or str(meta["name"]), version or str(meta["version"])


def _sink_list(sinks: Any) -> List[Any]:
    if sinks is None:
        return []
    if isinstance(sinks, (str, bytes)) or hasattr(sinks, "write_batch"):
        return [sinks]
    return list(sinks)


class Server:
    """A running endpoint (from :func:`serve`): the routes of ``streamscore serve``
    (``/score``, ``/v2/models/{name}/infer``, ``/invocations``, ``/swagger.json``, health and
    ``/metrics``) on a background thread. Use it as a context manager, or call :meth:`stop`."""

    __slots__ = ("_inner", "name", "version")

    def __init__(self, inner: _native.Server, name: str, version: str) -> None:
        self._inner = inner
        self.name = name
        self.version = version

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return self._inner.url

    @property
    def port(self) -> int:
        """The bound port."""
        return self._inner.port

    @property
    def running(self) -> bool:
        """Whether the server thread is running."""
        return self._inner.running

    def payload_counters(self) -> Dict[str, int]:
        """Payload-log records ``written`` to the log sinks and ``dropped``."""
        written, dropped = self._inner.payload_counters()
        return {"written": written, "dropped": dropped}

    def stop(self) -> None:
        """Stops accepting, finishes the requests in flight, closes the log sinks. Idempotent."""
        self._inner.stop()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server({self.url!r}, model={self.name}:{self.version}, running={self.running})"


def serve(
    model_or_ref: Union["Model", PathLike],
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    registry: Optional[Union["Registry", PathLike]] = None,
    name: Optional[str] = None,
    version: Optional[str] = None,
    log_sinks: Optional[Sequence[Any]] = None,
    keys: Optional[Sequence[str]] = None,
    workers: Optional[int] = None,
    log_sampling_rate: float = 1.0,
    request_timeout_ms: int = 5000,
    max_concurrent_requests: int = 512,
) -> Server:
    """Serves a model over HTTP in a background thread, as ``streamscore serve``; returns once
    it is listening and ready.

    ``model_or_ref``: a :class:`Model`, a model directory, or a registry reference
    (``credit@prod``, read from ``registry``). ``port=0`` picks a free port (see
    :attr:`Server.url`). ``log_sinks``: payload-log sinks (specs or objects with
    ``write_batch``); ``keys``: accepted bearer keys (none: no authentication).

    >>> import streamscore, json, urllib.request
    >>> m = streamscore.train(streamscore.generate(500, seed=1), estimator="logistic_regression")
    >>> with streamscore.serve(m) as server:
    ...     rows = streamscore.generate(2, seed=2).drop(columns="default")
    ...     body = json.dumps({"data": json.loads(rows.to_json(orient="records"))}).encode()
    ...     req = urllib.request.Request(server.url + "/score", body, {"Content-Type": "application/json"})
    ...     len(json.load(urllib.request.urlopen(req)))
    2
    """
    model, name, version = _resolve_model(model_or_ref, registry, name, version)
    inner = _native.start_server(
        model._inner,
        name,
        version,
        host=host,
        port=int(port),
        log_sinks=_sink_list(log_sinks) or None,
        keys=list(keys) if keys else None,
        workers=workers,
        log_sampling_rate=float(log_sampling_rate),
        request_timeout_ms=int(request_timeout_ms),
        max_concurrent_requests=int(max_concurrent_requests),
    )
    return Server(inner, name, version)


class Stream:
    """A pipeline running in the background (from ``stream(..., background=True)``)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _native.Stream) -> None:
        self._inner = inner

    @property
    def counters(self) -> Dict[str, float]:
        """Progress: ``events_in``, ``records_out``, ``dead_letters``, ``batches``,
        ``commits``, ``lag``, ``elapsed_s``."""
        return self._inner.counters()

    @property
    def running(self) -> bool:
        """Whether the pipeline is still running."""
        return self._inner.running

    def wait(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """Waits for the end (a finite source read to its end, or :meth:`stop`); returns the
        report (``events_in``, ``records_out``, ``dead_letters``, ``commits``,
        ``checkpoint``), or ``None`` when ``timeout`` seconds passed first. Raises
        :class:`StreamscoreError` when the pipeline failed (a sink that kept failing)."""
        return self._inner.wait(timeout)

    def stop(self) -> Optional[Dict[str, Any]]:
        """Stops reading, finishes the batches in flight, flushes and commits; the report."""
        return self._inner.stop()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        c = self.counters
        return f"Stream(running={self.running}, events_in={c['events_in']}, records_out={c['records_out']})"


def stream(
    source: PathLike,
    sinks: Any,
    model: Union["Model", PathLike],
    *,
    background: bool = False,
    registry: Optional[Union["Registry", PathLike]] = None,
    name: Optional[str] = None,
    version: Optional[str] = None,
    dead_letter: Any = None,
    batch_size: int = 512,
    max_wait_ms: int = 20,
    commit_interval_ms: int = 5000,
    commit_every: Optional[int] = None,
    in_flight: int = 2,
    queue_capacity: int = 4,
    max_attempts: int = 5,
    initial_backoff_ms: int = 100,
    workers: Optional[int] = None,
) -> Union[Dict[str, Any], Stream]:
    """Scores a stream of events with a model, as ``streamscore stream``.

    ``source``: a spec (``file:events.jsonl``, ``dir:incoming/``, ``kafka://...``) or the path
    of a JSONL or CSV file. ``sinks``: one sink or a list (specs such as ``"jsonl:logs/"`` or
    objects with ``write_batch``). ``model``: a :class:`Model`, a model directory or a registry
    reference. Blocking by default (Ctrl-C stops it gracefully), returning the report
    (``events_in``, ``records_out``, ``dead_letters``, ``commits``, ``checkpoint``); with
    ``background=True`` returns a :class:`Stream` whose ``counters`` show progress.
    """
    from . import StreamscoreError

    m, name, version = _resolve_model(model, registry, name, version)
    spec = os.fspath(source)
    if not isinstance(source, str) or (os.path.exists(spec) and "://" not in spec):
        spec = "file:" + spec
    sink_list = _sink_list(sinks)
    if not sink_list:
        raise StreamscoreError('stream needs at least one sink: a spec such as "jsonl:logs/" or an object with write_batch')
    inner = _native.start_stream(
        m._inner,
        name,
        version,
        spec,
        sink_list,
        dead_letter=dead_letter,
        batch_size=int(batch_size),
        max_wait_ms=int(max_wait_ms),
        commit_interval_ms=int(commit_interval_ms),
        commit_every=commit_every,
        in_flight=int(in_flight),
        queue_capacity=int(queue_capacity),
        max_attempts=int(max_attempts),
        initial_backoff_ms=int(initial_backoff_ms),
        workers=workers,
    )
    handle = Stream(inner)
    if background:
        return handle
    try:
        report = handle.wait()
    except KeyboardInterrupt:
        handle.stop()
        raise
    assert report is not None
    return report
