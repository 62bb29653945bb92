"""Helpers shared by the OpenTelemetry tests: OTLP-JSON builders and a store fed with lines."""

from __future__ import annotations

from typing import Any

import orjson

from tracetui.decode import LineDecoder
from tracetui.model import Span
from tracetui.store import TraceStore

TRACE = "5b8efff798038103d269b633813fc60c"


def kv(key: str, value: Any) -> dict[str, Any]:
    """An OTLP-JSON KeyValue for a plain Python value."""
    return {"key": key, "value": any_value(value)}


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [kv(k, v) for k, v in value.items()]}}
    return {"stringValue": value}


def json_span(
    span_id: str,
    parent: str = "",
    name: str = "op",
    *,
    trace_id: str = TRACE,
    start: int = 1_700_000_000_000_000_000,
    duration_ns: int = 5_000_000,
    attrs: dict[str, Any] | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One OTLP-JSON span."""
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + duration_ns),
        "attributes": [kv(k, v) for k, v in (attrs or {}).items()],
        "events": [
            {
                "timeUnixNano": str(start + 1000),
                "name": n,
                "attributes": [kv(k, v) for k, v in a.items()],
            }
            for n, a in (events or [])
        ],
    }
    if status is not None:
        span["status"] = status
    return span


def json_request(
    spans: list[dict[str, Any]],
    resource: dict[str, Any] | None = None,
    scope: str = "app.scope",
) -> bytes:
    """An OTLP-JSON ExportTraceServiceRequest with one resource and one scope."""
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [kv(k, v) for k, v in (resource or {}).items()]},
                "scopeSpans": [{"scope": {"name": scope, "version": "1.0"}, "spans": spans}],
            }
        ]
    }
    return orjson.dumps(body)


def store_of(lines: list[bytes], origin: str = "otlp") -> TraceStore:
    """A store holding `lines` (each ending with a newline), decoded by the real decoder."""
    store = TraceStore()
    idx = store.origin(origin)
    spans, rejected = LineDecoder().decode([line.rstrip(b"\n") for line in lines], 1, idx)
    assert not rejected, rejected
    store.ingest(spans, rejected)
    return store


def tree_shape(store: TraceStore) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(id, parent, sorted child ids) per span, sorted: a tree's shape independent of arrival."""
    out = []
    for span in store.events():
        kids = tuple(sorted(k.trace_id for k in store.children(span) if isinstance(k, Span)))
        out.append((span.trace_id, span.parent_id, kids))
    return sorted(out)
