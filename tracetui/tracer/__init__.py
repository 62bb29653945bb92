"""The emitter apps import to write the trace events tracetui shows.

```python
from tracetui.tracer import tracer

with tracer.agent("planner", run_id="r1", labels={"env": "dev"}):
    with tracer.span("alt", "transition", "altitude.py", "L3→L2") as span:
        span.set_output("success", from_level="L3", to_level="L2", reason="user asked")
```

Off unless `DOPEJAR_TRACE` is `1`/`true`/`yes`/`on` (read at import; `tracer.configure()` re-reads
it): then `tracer.span(...)` returns one shared no-op object and nothing is opened. On, events go to
`DOPEJAR_TRACE_SOCKET` (`unix:PATH`, `tcp:127.0.0.1:PORT`) when set, else to `DOPEJAR_TRACE_FILE`
(default `trace.jsonl`). A span is written when it ends, so children come before their parents.

The enclosing span, agent and baggage live in `contextvars`: each thread and asyncio task nests its
own spans, and a task inherits what was current when it was created (for a thread pool, submit
`tracer.bind(fn)`). Nothing here raises into, blocks or crashes the host: bad metadata is coerced
with `repr` and clipped, and a sink that fails drops events and counts them (`tracer.stats()`).
Stdlib and orjson only.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import inspect
import itertools
import os
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar, cast

import orjson

from tracetui.tracer._encode import (
    MAX_LINE,
    OPTIONS,
    SUMMARY_MAX,
    clip,
    default_repr,
    encode_slow,
    safe_repr,
    summary,
)
from tracetui.tracer._sink import MAX_QUEUE, FileOutput, Output, SinkError, SocketOutput, Writer

__all__ = [
    "INSTANCE_BAGGAGE_KEYS",
    "SAFE_BAGGAGE_KEYS",
    "AgentScope",
    "Span",
    "Tracer",
    "TracerStats",
    "enabled_in",
    "generate_id",
    "tracer",
]

P = ParamSpec("P")
R = TypeVar("R")

SAFE_BAGGAGE_KEYS: Final = frozenset(
    {"run_id", "dataset_id", "datapoint_id", "honeyhive_tracer_id", "project", "source"}
)
"""Baggage keys that propagate from a span to its descendants."""
INSTANCE_BAGGAGE_KEYS: Final = frozenset({"session_id", "session_name"})
"""Baggage keys that belong to one span and must never reach a child (like any key not safe)."""

_TRUTHY: Final = frozenset({"1", "true", "yes", "on"})
_LAYERS: Final = {
    "altitude": "alt",
    "focus": "foc",
    "reasoning": "rsn",
    "learning": "lrn",
    "memory": "mem",
    "system": "sys",
}
_ALIASES: Final = {**{short: long for long, short in _LAYERS.items()}, **{k: k for k in _LAYERS}}
_STATUSES: Final = ("success", "error", "blocked")

_now = time.time
_dumps = orjson.dumps
_clock = time.perf_counter_ns


def generate_id(hrm: str) -> str:
    """A span id `{hrm}_{epoch seconds}_{16 hex digits}`: 64 random bits, fresh after fork."""
    return _new_id(hrm + "_", _now())


def enabled_in(environ: Mapping[str, str]) -> bool:
    """Whether `DOPEJAR_TRACE` in `environ` switches tracing on."""
    return environ.get("DOPEJAR_TRACE", "").strip().lower() in _TRUTHY


def _layer(hrm: str) -> tuple[str, str]:
    """(canonical layer for `hrm_layer`, short prefix for ids) for a layer name or alias."""
    key = hrm.strip().lower()
    long = _ALIASES.get(key)
    if long is None:
        return hrm, key or "x"
    return long, _LAYERS[long]


_OPS: dict[tuple[str, str], tuple[str, str, str]] = {}


def _operation(hrm: str, operation: str) -> tuple[str, str, str]:
    """(layer, id prefix, operation as written) — `transition` on alt → `altitude.transition`."""
    info = _OPS.get((hrm, operation))
    if info is None:
        layer, prefix = _layer(hrm)
        written = operation if "." in operation else f"{layer}.{operation}"
        info = (layer, prefix + "_", written)
        if len(_OPS) < 10_000:
            _OPS[(hrm, operation)] = info
    return info


_hex_ids: Iterator[str] = iter(())


_rng = random.Random()
"""Seeded from the OS random source at import and again in a forked child. Drawing from it never
releases the GIL, unlike `os.urandom`: a hot loop that releases and retakes the GIL every few
hundred events starves the flusher thread (CPython only forces a switch when no thread has taken
the GIL for a whole switch interval), and events then pile up unwritten."""


def _random_hex() -> str:
    """16 hex digits (64 random bits), taken from a pre-drawn batch."""
    global _hex_ids
    try:
        return next(_hex_ids)
    except StopIteration:
        raw = _rng.getrandbits(16384).to_bytes(2048, "little").hex()
        batch = [raw[i : i + 16] for i in range(0, len(raw), 16)]
        first = batch.pop()
        _hex_ids = iter(batch)
        return first


def _new_id(prefix: str, now: float) -> str:
    return f"{prefix}{int(now)}_{_random_hex()}"


_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "tracetui_span", default=None
)
_agent: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tracetui_agent", default=None
)


class TracerStats(NamedTuple):
    """Counters of this process since the sink was configured."""

    emitted: int
    """Events handed to the sink: written + dropped + pending."""
    written: int
    """Events the sink accepted (file written, socket sent)."""
    dropped: int
    """Events lost: sink failing, queue full, nobody listening for too long."""
    pending: int
    """Events still waiting (queued, or kept for a socket that will reconnect)."""


class Span:
    """One operation being traced; written as one event when it ends.

    Use it as `with`, `async with`, or as a decorator of a sync or async function (each call is
    then its own span). An exception leaving it marks it `error` with the exception text and is
    re-raised. Attributes set while it runs (`output_summary`, `status`, `metadata`) are what is
    written; `trace_id` and `parent_id` are known once it has been entered.
    """

    output_summary: str = ""
    status: str = "success"
    trace_id: str = ""
    parent_id: str | None = None
    correlation_id: str | None = None
    parent_correlation_id: str | None = None
    start: float = 0.0
    _corr_scope: str | None = None
    _metadata: dict[str, Any] | None = None
    _baggage: dict[str, Any] | None = None
    _parent: Span | None = None
    _agent: dict[str, Any] | None = None
    _token: contextvars.Token[Span | None] | None = None
    _start_ns: int = 0

    def __init__(
        self,
        owner: Tracer | None,
        hrm: str,
        operation: str,
        component: str = "",
        input_data: object = "",
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        baggage: Mapping[str, Any] | None = None,
    ) -> None:
        self._tracer = owner
        try:
            self._op = _OPS.get((hrm, operation)) or _operation(hrm, operation)
            self.component = component
            self.input_summary = (
                input_data
                if type(input_data) is str and len(input_data) <= SUMMARY_MAX
                else summary(input_data)
            )
            if metadata:
                self._metadata = dict(metadata)
            if correlation_id is not None:
                self.correlation_id = correlation_id
            if baggage:
                self._baggage = dict(baggage)
        except Exception:
            self._coerce(hrm, operation, component, input_data, metadata, correlation_id, baggage)

    def _coerce(
        self,
        hrm: object,
        operation: object,
        component: object,
        input_data: object,
        metadata: object,
        correlation_id: object,
        baggage: object,
    ) -> None:
        """Arguments of the wrong type are written as text rather than raised about."""
        self._op = _operation(_text(hrm), _text(operation))
        self.component = _text(component)
        self.input_summary = summary(input_data)
        self._metadata = _as_dict(metadata, "metadata")
        self._baggage = _as_dict(baggage, "baggage")
        self.correlation_id = None if correlation_id is None else _text(correlation_id)

    @property
    def layer(self) -> str:
        """The canonical layer (`altitude` …) written as `hrm_layer`."""
        return self._op[0]

    @property
    def operation(self) -> str:
        """The operation as written: `altitude.transition` (dotted names kept as given)."""
        return self._op[2]

    @property
    def metadata(self) -> dict[str, Any]:
        """The span's metadata (trace data); changes before the span ends are written."""
        meta = self._metadata
        if meta is None:
            meta = self._metadata = {}
        return meta

    @property
    def baggage(self) -> dict[str, Any]:
        """Baggage recorded on this span: inherited safe keys plus its own."""
        bag = self._baggage
        if bag is None:
            bag = self._baggage = {}
        return bag

    # -- what the traced code sets -----------------------------------------------------------
    def set_output(self, output: object, **metadata: Any) -> None:
        """The result: `output` becomes `output_summary`, keyword arguments go to metadata."""
        self.output_summary = (
            output if type(output) is str and len(output) <= SUMMARY_MAX else summary(output)
        )
        if metadata:
            meta = self._metadata
            if meta is None:
                self._metadata = metadata
            else:
                meta.update(metadata)

    def set_metadata(self, **metadata: Any) -> None:
        """Add trace data (e.g. `from_level=`, `to_level=`, `reason=`) to the span's metadata."""
        self.metadata.update(metadata)

    def set_status(self, status: str) -> None:
        """`success`, `error` or `blocked` (any other text is written as given)."""
        self.status = status

    def block(self, reason: str = "") -> None:
        """Mark the span `blocked` (a gate said no); `reason` goes to output and metadata."""
        self.status = "blocked"
        if reason:
            self.metadata["blocked_reason"] = reason
            if not self.output_summary:
                self.output_summary = summary(reason)

    def add_baggage(self, **items: Any) -> None:
        """Baggage on this span: all keys are recorded here, only safe keys reach descendants."""
        self.baggage.update(items)

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Span:
        parent = _current.get()
        self._agent = _agent.get()
        now = self.start = _now()
        try:
            hex_id = next(_hex_ids)
        except StopIteration:
            hex_id = _random_hex()
        self.trace_id = f"{self._op[1]}{int(now)}_{hex_id}"
        if parent is not None:
            self._parent = parent
            self.parent_id = parent.trace_id
            scope = parent._corr_scope
            bag = parent._baggage
            if bag:
                inherited = {k: v for k, v in bag.items() if k in SAFE_BAGGAGE_KEYS}
                if inherited:
                    if self._baggage:
                        inherited.update(self._baggage)
                    self._baggage = inherited
            if self.correlation_id is not None:
                if scope is not None:
                    self.parent_correlation_id = scope
                scope = self.correlation_id
            self._corr_scope = scope
        elif self.correlation_id is not None:
            self._corr_scope = self.correlation_id
        self._token = _current.set(self)
        self._start_ns = _clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ns = _clock() - self._start_ns
        token = self._token
        if token is not None:
            self._token = None
            try:
                _current.reset(token)
            except ValueError:
                _current.set(self._parent)
        self._parent = None
        if exc is not None:
            self._record_error(exc)
        owner = self._tracer
        if owner is not None:
            owner._write(self, (duration_ns // 1000) / 1000)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _record_error(self, exc: BaseException) -> None:
        self.status = "error"
        text = f"{type(exc).__name__}: {str(exc) if _str_ok(exc) else safe_repr(exc)}"
        meta = self.metadata
        meta.setdefault("error", clip(text, 1000))
        meta.setdefault("error_type", type(exc).__qualname__)
        if not self.output_summary:
            self.output_summary = clip(text, SUMMARY_MAX)

    def _fresh(self) -> Span:
        span = Span.__new__(Span)
        span._tracer = self._tracer
        span._op = self._op
        span.component = self.component
        span.input_summary = self.input_summary
        if self._metadata:
            span._metadata = dict(self._metadata)
        if self.correlation_id is not None:
            span.correlation_id = self.correlation_id
        if self._baggage:
            span._baggage = dict(self._baggage)
        return span

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate `fn` (sync or async): each call runs in a new span with these arguments."""
        template = self
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def traced_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with template._fresh():
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], traced_async)

        @functools.wraps(fn)
        def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            with template._fresh():
                return fn(*args, **kwargs)

        return traced

    def __repr__(self) -> str:
        return f"<Span {self.operation} {self.trace_id or '(not started)'}>"


def _text(value: object) -> str:
    return value if isinstance(value, str) else safe_repr(value, 200)


def _as_dict(value: object, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        return dict(value)  # type: ignore[call-overload, no-any-return]
    except Exception:
        return {name: safe_repr(value)}


def _str_ok(exc: BaseException) -> bool:
    try:
        str(exc)
    except Exception:
        return False
    return True


class _NoopSpan(Span):
    """What a disabled tracer hands out: every method does nothing, decorators return `fn`."""

    def __init__(self) -> None:
        super().__init__(None, "system", "noop")

    @property
    def metadata(self) -> dict[str, Any]:
        """A throwaway dict: writes to it go nowhere (the no-op span is shared)."""
        return {}

    @property
    def baggage(self) -> dict[str, Any]:
        """A throwaway dict, like `metadata`."""
        return {}

    def set_output(self, output: object, **metadata: Any) -> None:
        pass

    def set_metadata(self, **metadata: Any) -> None:
        pass

    def set_status(self, status: str) -> None:
        pass

    def block(self, reason: str = "") -> None:
        pass

    def add_baggage(self, **items: Any) -> None:
        pass

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return fn


_NOOP: Final = _NoopSpan()
# `with` looks special methods up on the type and does not bind builtins: these C callables make a
# disabled `with tracer.span(...)` cost two C calls (enter returns the no-op span, exit returns "",
# which is falsy, so exceptions propagate).
_NoopSpan.__enter__ = itertools.repeat(_NOOP).__next__  # type: ignore[assignment,method-assign]
_NoopSpan.__exit__ = "".format  # type: ignore[assignment,method-assign]


class AgentScope:
    """`with tracer.agent(...)`: every event inside records `metadata.agent`."""

    __slots__ = ("_token", "value")

    def __init__(self, value: dict[str, Any] | None) -> None:
        self.value = value
        self._token: contextvars.Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> AgentScope:
        if self.value is not None:
            self._token = _agent.set(self.value)
        return self

    def __exit__(self, *exc: object) -> None:
        token = self._token
        if token is not None:
            self._token = None
            try:
                _agent.reset(token)
            except ValueError:
                _agent.set(None)

    async def __aenter__(self) -> AgentScope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


_NO_AGENT: Final = AgentScope(None)


class Tracer:
    """Creates spans and events and owns the sink. Use the module's `tracer` instance."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._enabled = False
        self._writer: Writer | None = None
        self.configure(environ=environ)
        _TRACERS.add(self)

    # -- configuration -----------------------------------------------------------------------
    def configure(
        self,
        *,
        enabled: bool | None = None,
        file: str | None = None,
        socket: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """(Re)read the settings: arguments win over `environ` (default `os.environ`).

        The previous sink is flushed and closed. A bad socket specification disables the tracer
        and says why once on stderr (the host keeps running).
        """
        env = os.environ if environ is None else environ
        on = enabled_in(env) if enabled is None else enabled
        old = self._writer
        self._writer = None
        self._enabled = False
        if old is not None:
            old.close()
        if not on:
            return
        sock_spec = socket if socket is not None else env.get("DOPEJAR_TRACE_SOCKET", "")
        path = file if file is not None else env.get("DOPEJAR_TRACE_FILE", "") or "trace.jsonl"
        output: Output
        try:
            output = SocketOutput(sock_spec) if sock_spec else FileOutput(path)
        except SinkError as exc:
            with contextlib.suppress(OSError):
                os.write(2, f"tracetui.tracer: DOPEJAR_TRACE_SOCKET={exc}; tracing off\n".encode())
            return
        self._writer = Writer(output)
        self._enabled = True

    @property
    def enabled(self) -> bool:
        """Whether events are being written."""
        return self._enabled

    @property
    def sink(self) -> str:
        """Where events go, e.g. `file /abs/trace.jsonl` or `socket unix:/tmp/x.sock`."""
        return repr(self._writer.output) if self._writer is not None else "off"

    # -- spans and events --------------------------------------------------------------------
    def span(
        self,
        hrm: str,
        operation: str,
        component: str = "",
        input_data: object = "",
        *,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        baggage: Mapping[str, Any] | None = None,
    ) -> Span:
        """A span on layer `hrm` (`alt`/`altitude`, `foc`, `rsn`, `lrn`, `mem`, `sys`).

        `correlation_id` gives the span its own correlation id; when an enclosing span has one,
        it is recorded as `parent_correlation_id`. `baggage` is recorded here and its safe keys
        propagate to descendants.
        """
        if not self._enabled:
            return _NOOP
        return Span(self, hrm, operation, component, input_data, metadata, correlation_id, baggage)

    def event(
        self,
        hrm: str,
        operation: str,
        component: str = "",
        input_data: object = "",
        output_data: object = "",
        *,
        metadata: Mapping[str, Any] | None = None,
        status: str = "success",
        duration_ms: float = 0.0,
        correlation_id: str | None = None,
        baggage: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Write one finished event now, as a child of the current span; returns its id."""
        if not self._enabled:
            return None
        span = Span(self, hrm, operation, component, input_data, metadata, correlation_id, baggage)
        span.output_summary = (
            output_data
            if type(output_data) is str and len(output_data) <= SUMMARY_MAX
            else summary(output_data)
        )
        span.status = status
        span.__enter__()
        token = span._token
        span._token = None
        if token is not None:
            _current.reset(token)
        span._parent = None
        try:
            duration = float(duration_ms)
        except (TypeError, ValueError):
            duration = 0.0
        self._write(span, duration)
        return span.trace_id

    def agent(
        self,
        name: str,
        run_id: str | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> AgentScope:
        """`with tracer.agent("planner", run_id="r1", labels={"env": "dev"}):` (also `async with`).

        Recorded on every event inside as `metadata.agent = {name, run_id, labels}`.
        """
        if not self._enabled:
            return _NO_AGENT
        value: dict[str, Any] = {"name": _text(name)}
        if run_id is not None:
            value["run_id"] = _text(run_id)
        if labels:
            try:
                value["labels"] = {_text(k): _text(v) for k, v in labels.items()}
            except Exception:
                value["labels"] = {"labels": safe_repr(labels)}
        return AgentScope(value)

    def baggage(self, **items: Any) -> None:
        """Add baggage to the current span (no-op outside a span; use `span(baggage=)` there).

        Every key is recorded on the current span; only `SAFE_BAGGAGE_KEYS` reach its children.
        """
        current = _current.get()
        if current is not None and self._enabled:
            current.add_baggage(**items)

    def current(self) -> Span | None:
        """The innermost open span in this thread or task."""
        return _current.get()

    def bind(self, fn: Callable[P, R]) -> Callable[P, R]:
        """`fn` running in a copy of the current context: for threads, whose spans start fresh."""
        ctx = contextvars.copy_context()

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            return ctx.copy().run(fn, *args, **kwargs)

        return bound

    # -- output ------------------------------------------------------------------------------
    def _write(self, span: Span, duration_ms: float) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            meta = span._metadata
            if meta is None:
                meta = {}
            agent = span._agent
            if agent is not None and "agent" not in meta:
                meta["agent"] = agent
            if span.correlation_id is not None:
                meta.setdefault("correlation_id", span.correlation_id)
                if span.parent_correlation_id is not None:
                    meta.setdefault("parent_correlation_id", span.parent_correlation_id)
            if span._baggage:
                meta.setdefault("baggage", span._baggage)
            op = span._op
            status = span.status
            record = {
                "trace_id": span.trace_id,
                "parent_id": span.parent_id,
                "timestamp": span.start,
                "hrm_layer": op[0],
                "operation": op[2],
                "component": span.component,
                "input_summary": span.input_summary,
                "output_summary": span.output_summary,
                "duration_ms": duration_ms,
                "status": status if type(status) is str else summary(status),
                "metadata": meta,
            }
            try:
                line = _dumps(record, default=default_repr, option=OPTIONS)
            except Exception:
                line = b""
            if not line or len(line) > MAX_LINE:
                line = encode_slow(record, len(line))
            queue = writer.queue
            if len(queue) >= MAX_QUEUE:
                writer.dropped += 1
                return
            queue.append(line)
            if len(queue) == 1:
                writer._kick()
        except Exception:
            writer.dropped += 1

    def flush(self) -> None:
        """Write everything queued so far, now (a socket sink tries to reconnect at once)."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.flush()

    def stats(self) -> TracerStats:
        """Counters since the sink was configured (per process; reset in a forked child)."""
        writer = self._writer
        if writer is None:
            return TracerStats(0, 0, 0, 0)
        with writer.io_lock:
            pending = len(writer.queue) + len(writer.pending)
            written, dropped = writer.written, writer.dropped
            return TracerStats(written + dropped + pending, written, dropped, pending)

    def close(self) -> None:
        """Flush and release the sink; later events reopen it (called at exit)."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()

    def _after_fork(self) -> None:
        if self._writer is not None:
            self._writer.after_fork()


_TRACERS: weakref.WeakSet[Tracer] = weakref.WeakSet()


def _close_all() -> None:
    for owner in list(_TRACERS):
        owner.close()


def _after_fork_child() -> None:
    global _hex_ids
    _hex_ids = iter(())
    _rng.seed()
    for owner in list(_TRACERS):
        owner._after_fork()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)

tracer: Final = Tracer()
"""The process-wide tracer, configured from the environment at import."""
