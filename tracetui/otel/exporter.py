"""`TraceTuiSpanExporter`: an OpenTelemetry SDK exporter that writes tracetui JSON lines.

For apps traced with OpenTelemetry that want a file (or a tracetui socket) rather than a network hop
to a receiver. Lines are the same as the OTLP receiver makes of the same spans (one mapping,
`tracetui.otel.mapping`), and they go through the same sink as `tracetui.tracer`: `export` only
appends to an in-memory queue; a background thread writes whole lines (a file opened with
O_APPEND and reopened when rotated, or a Unix/TCP-loopback socket that reconnects and keeps up to
8 MiB while nobody listens). Failures are counted (`stats()`), never raised into the app.

```python
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tracetui.otel import TraceTuiSpanExporter

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(TraceTuiSpanExporter("trace.jsonl")))
```
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from tracetui.otel._extra import require

require("opentelemetry.sdk")

from opentelemetry.sdk.resources import Resource as SdkResource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

from tracetui.otel.mapping import Event, Link, Resource, bytes_value, make_resource  # noqa: E402
from tracetui.otel.mapping import span_lines as _span_lines  # noqa: E402
from tracetui.tracer import TracerStats  # noqa: E402
from tracetui.tracer._sink import FileOutput, Output, SocketOutput, Writer  # noqa: E402

__all__ = ["TraceTuiSpanExporter", "readable_span_lines"]


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return bytes_value(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _attributes(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attrs:
        return {}
    return {key: _plain(value) for key, value in attrs.items()}


def readable_span_lines(span: ReadableSpan, resource: Resource | None = None) -> list[bytes]:
    """The tracetui lines of one finished SDK span (as the OTLP receiver would make them)."""
    ctx = span.context
    if ctx is None:
        return []
    if resource is None:
        resource = _resource(span.resource)
    parent = span.parent
    scope = span.instrumentation_scope
    status = span.status
    return _span_lines(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else "",
        name=span.name,
        kind=span.kind.value + 1,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        status_code=status.status_code.value,
        status_message=status.description or "",
        attributes=_attributes(span.attributes),
        events=[Event(e.name, e.timestamp, _attributes(e.attributes)) for e in span.events],
        links=[
            Link(
                f"{link.context.trace_id:032x}",
                f"{link.context.span_id:016x}",
                _attributes(link.attributes),
            )
            for link in span.links
        ],
        resource=resource,
        scope=scope.name if scope is not None else "",
        scope_version=(scope.version or "") if scope is not None else "",
        trace_state=ctx.trace_state.to_header() if ctx.trace_state else "",
    )


def _resource(resource: SdkResource | None) -> Resource:
    return make_resource(_attributes(resource.attributes if resource is not None else None))


class TraceTuiSpanExporter(SpanExporter):
    """Writes finished spans as tracetui JSON lines to a file or a tracetui socket.

    Args:
        path: file to append to. When neither `path` nor `socket` is given, the tracer's settings
            apply: `DOPEJAR_TRACE_SOCKET` when set, else `DOPEJAR_TRACE_FILE`, else `trace.jsonl`.
        socket: `unix:PATH`, `tcp:PORT` or `tcp:127.0.0.1:PORT` of a listening tracetui.
        warn: say once on stderr when the sink fails (as the tracer does).

    Raises:
        ValueError: the socket spec is malformed or not a loopback address.
    """

    def __init__(
        self, path: str | None = None, *, socket: str | None = None, warn: bool = True
    ) -> None:
        if path is None and socket is None:
            socket = os.environ.get("DOPEJAR_TRACE_SOCKET") or None
            if socket is None:
                path = os.environ.get("DOPEJAR_TRACE_FILE") or "trace.jsonl"
        output: Output = SocketOutput(socket) if socket is not None else FileOutput(path or "")
        self._writer = Writer(output, warn=warn)
        self._resources: dict[int, tuple[SdkResource, Resource]] = {}
        self._closed = False
        _EXPORTERS.add(self)

    @property
    def sink(self) -> str:
        """Where lines go, e.g. `file /abs/trace.jsonl` or `socket unix:/tmp/x.sock`."""
        return repr(self._writer.output)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the spans' lines for the background writer (never blocks on I/O)."""
        if self._closed:
            return SpanExportResult.FAILURE
        put = self._writer.put
        for span in spans:
            try:
                lines = readable_span_lines(span, self._cached(span.resource))
            except Exception:
                self._writer.dropped += 1
                continue
            for line in lines:
                put(line)
        return SpanExportResult.SUCCESS

    def _cached(self, resource: SdkResource) -> Resource:
        hit = self._resources.get(id(resource))
        if hit is not None and hit[0] is resource:
            return hit[1]
        mapped = _resource(resource)
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, mapped)
        return mapped

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write everything queued now; False when lines are still waiting (socket down)."""
        self._writer.flush()
        with self._writer.io_lock:
            return not self._writer.queue and not self._writer.pending

    def shutdown(self) -> None:
        """Flush and release the file or socket."""
        self._closed = True
        self._writer.close()

    def stats(self) -> TracerStats:
        """Lines handed to the sink: written, dropped, pending (as `tracer.stats()`)."""
        writer = self._writer
        with writer.io_lock:
            pending = len(writer.queue) + len(writer.pending)
            written, dropped = writer.written, writer.dropped
        return TracerStats(written + dropped + pending, written, dropped, pending)

    def _after_fork(self) -> None:
        self._writer.after_fork()


_EXPORTERS: weakref.WeakSet[TraceTuiSpanExporter] = weakref.WeakSet()


def _after_fork_child() -> None:
    for exporter in list(_EXPORTERS):
        exporter._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
