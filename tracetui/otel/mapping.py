"""OpenTelemetry spans → tracetui JSON lines: one mapping shared by receiver, files and exporter.

Every OTLP form (protobuf request, OTLP-JSON request, SDK `ReadableSpan`) is reduced by its adapter
to plain Python values and handed to `span_lines`, so the three paths cannot drift apart.

| OpenTelemetry | tracetui |
|---|---|
| span id | `trace_id` (16 lowercase hex digits) |
| parent span id | `parent_id` (16 lowercase hex digits, null for a root) |
| trace id | `metadata["otel.trace_id"]` (32 lowercase hex digits) |
| span name | `operation` |
| `code.function.name`, else `code.namespace` + `code.function`, else scope name | `component` |
| start time, end − start | `timestamp` (epoch seconds), `duration_ms` |
| `tracetui.status` attribute; a true `blocked`/`*.blocked` attribute; status ERROR | `status` |
| `hrm.layer`/`hrm_layer` (span, then resource), else `service.name`, else `system` | `hrm_layer` |
| span attributes | `metadata` keys as they are (`agent.name`, `flujo.step.id`, …) |
| resource attributes | `metadata["resource.<key>"]` |
| `flujo.*` span events | `metadata["events"]` (what span contracts check) |
| other span events | `metadata["otel.events"]` |
| `context.*` outcome events | child events `<span id>.ctx<n>` (metadata: their attributes) |

Pure: stdlib, msgspec-free, orjson through the tracer's encoder (one line, never over its cap).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

from tracetui.tracer._encode import SUMMARY_MAX, clip, encode

STATUS_ERROR: Final = 2
"""`Status.code` of a failed span (OTLP `STATUS_CODE_ERROR`)."""

SPAN_KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
CONTEXT_OUTCOMES: Final = frozenset({"context.propagated", "context.defaulted", "context.failed"})
_STATUSES: Final = frozenset({"success", "error", "blocked"})
_AGENT_PREFIXES: Final = ("agent.name", "agent.run_id", "agent.label.")
_INPUT_KEYS: Final = ("tracetui.input_summary", "input_summary", "input.value")
_OUTPUT_KEYS: Final = ("tracetui.output_summary", "output_summary", "output.value")
_BLOCKED_SUFFIXES: Final = (".blocked", "_blocked")
_SPECIAL: Final = frozenset(
    {
        "hrm.layer",
        "hrm_layer",
        "code.function.name",
        "code.function",
        "tracetui.status",
        "blocked",
        *_INPUT_KEYS,
        *_OUTPUT_KEYS,
    }
)
"""Attribute keys that change the layer, component, status or summaries (blocked suffixes too)."""
_ZERO_SPAN: Final = "0" * 16
_ZERO_TRACE: Final = "0" * 32
_HEX: Final = frozenset("0123456789abcdef")


class Resource(NamedTuple):
    """What a resource contributes to each of its spans, computed once per resource.

    Attributes:
        metadata: resource attributes under `resource.<key>`.
        layer: `hrm.layer`/`hrm_layer` of the resource, else its `service.name` (None when unset
            or the SDK's `unknown_service…` placeholder).
    """

    metadata: dict[str, Any]
    layer: str | None


class Event(NamedTuple):
    """A span event: name, time (ns since the epoch) and attributes."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


class Link(NamedTuple):
    """A link to another span (hex ids) with its attributes."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any]


NO_RESOURCE: Final = Resource({}, None)


def make_resource(attributes: Mapping[str, Any]) -> Resource:
    """The `Resource` of a set of resource attributes."""
    layer = _text(attributes.get("hrm.layer")) or _text(attributes.get("hrm_layer"))
    if not layer:
        service = _text(attributes.get("service.name"))
        if service and not service.startswith("unknown_service"):
            layer = service
    return Resource({f"resource.{k}": v for k, v in attributes.items()}, layer or None)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def id_problem(trace_id: str, span_id: str, parent_id: str) -> str | None:
    """Why these hex ids cannot make a span (None when they can)."""
    if len(span_id) != 16 or not _HEX.issuperset(span_id) or span_id == _ZERO_SPAN:
        return f"span id {span_id[:40]!r} is not 16 hex digits (or is all zeros)"
    if len(trace_id) != 32 or not _HEX.issuperset(trace_id) or trace_id == _ZERO_TRACE:
        return f"trace id {trace_id[:40]!r} is not 32 hex digits (or is all zeros)"
    if parent_id and (len(parent_id) != 16 or not _HEX.issuperset(parent_id)):
        return f"parent span id {parent_id[:40]!r} is not 16 hex digits"
    return None


def bytes_value(data: bytes) -> str:
    """How a bytes attribute value is kept: base64, as OTLP-JSON writes it."""
    return base64.b64encode(data).decode("ascii")


def _is_blocked(attributes: Mapping[str, Any]) -> bool:
    for key, value in attributes.items():
        if (key == "blocked" or key.endswith(_BLOCKED_SUFFIXES)) and (
            value is True or (isinstance(value, str) and value.strip().lower() == "true")
        ):
            return True
    return False


def span_status(attributes: Mapping[str, Any], code: int) -> str:
    """`tracetui.status` when it names a status; blocked when marked so; error on ERROR."""
    explicit = attributes.get("tracetui.status")
    if isinstance(explicit, str) and explicit.strip().lower() in _STATUSES:
        return explicit.strip().lower()
    if _is_blocked(attributes):
        return "blocked"
    return "error" if code == STATUS_ERROR else "success"


def span_component(attributes: Mapping[str, Any], scope: str) -> str:
    """`code.function.name`, else `code.namespace.code.function`, else the scope name."""
    full = _text(attributes.get("code.function.name"))
    if full:
        return full
    function = _text(attributes.get("code.function"))
    if function:
        namespace = _text(attributes.get("code.namespace"))
        return f"{namespace}.{function}" if namespace else function
    return scope


def _first_text(attributes: Mapping[str, Any], keys: Iterable[str]) -> str:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return clip(value, SUMMARY_MAX)
    return ""


def _event_record(event: Event) -> dict[str, Any]:
    record: dict[str, Any] = {"name": event.name, "timestamp": event.time_ns / 1e9}
    if event.attributes:
        record["attributes"] = event.attributes
    return record


def span_lines(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    status_code: int,
    status_message: str,
    attributes: dict[str, Any],
    events: list[Event],
    links: list[Link],
    resource: Resource,
    scope: str,
    scope_version: str,
    trace_state: str = "",
) -> list[bytes]:
    """One span as tracetui lines: the span itself, then one line per context-outcome event.

    Ids are lowercase hex (`parent_id` empty for a root); checked beforehand with `id_problem`.
    """
    special = False
    for key in attributes:
        if key in _SPECIAL or key.endswith(_BLOCKED_SUFFIXES):
            special = True
            break
    if special:
        layer = (
            _text(attributes.get("hrm.layer"))
            or _text(attributes.get("hrm_layer"))
            or resource.layer
            or "system"
        )
        component = span_component(attributes, scope)
        status = span_status(attributes, status_code)
        input_summary = _first_text(attributes, _INPUT_KEYS)
        output = _first_text(attributes, _OUTPUT_KEYS)
    else:
        layer = resource.layer or "system"
        component = scope
        status = "error" if status_code == STATUS_ERROR else "success"
        input_summary = output = ""
    meta: dict[str, Any] = {"otel.trace_id": trace_id}
    meta.update(attributes)
    meta.update(resource.metadata)
    if 1 < kind < len(SPAN_KINDS):
        meta["otel.span_kind"] = SPAN_KINDS[kind]
    if scope:
        meta["otel.scope"] = scope
        if scope_version:
            meta["otel.scope_version"] = scope_version
    if status_message:
        meta["otel.status_message"] = status_message
    if trace_state:
        meta["otel.trace_state"] = trace_state
    if links:
        meta["otel.links"] = [
            {"trace_id": link.trace_id, "span_id": link.span_id, "attributes": link.attributes}
            if link.attributes
            else {"trace_id": link.trace_id, "span_id": link.span_id}
            for link in links
        ]
    outcomes: list[Event] = []
    flujo: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for event in events:
        if event.name in CONTEXT_OUTCOMES:
            outcomes.append(event)
        elif event.name.startswith("flujo."):
            flujo.append(_event_record(event))
        else:
            other.append(_event_record(event))
    if flujo:
        meta["events"] = flujo
    if other:
        meta["otel.events"] = other
    if not output and status == "error" and status_message:
        output = clip(status_message, SUMMARY_MAX)
    lines = [
        encode(
            {
                "trace_id": span_id,
                "parent_id": parent_id or None,
                "timestamp": start_ns / 1e9 if start_ns > 0 else None,
                "hrm_layer": layer,
                "operation": name,
                "component": component,
                "input_summary": input_summary,
                "output_summary": output,
                "duration_ms": (end_ns - start_ns) / 1e6 if end_ns >= start_ns > 0 else None,
                "status": status,
                "metadata": meta,
            }
        )
    ]
    if outcomes:
        agent = {k: v for k, v in attributes.items() if k.startswith(_AGENT_PREFIXES)}
        for number, event in enumerate(outcomes):
            lines.append(_outcome_line(event, number, span_id, trace_id, layer, component, agent))
    return lines


def _outcome_line(
    event: Event,
    number: int,
    span_id: str,
    trace_id: str,
    layer: str,
    component: str,
    agent: dict[str, Any],
) -> bytes:
    meta: dict[str, Any] = {"otel.trace_id": trace_id, "otel.event": True}
    meta.update(agent)
    meta.update(event.attributes)
    return encode(
        {
            "trace_id": f"{span_id}.ctx{number}",
            "parent_id": span_id,
            "timestamp": event.time_ns / 1e9 if event.time_ns > 0 else None,
            "hrm_layer": layer,
            "operation": event.name,
            "component": component,
            "input_summary": "",
            "output_summary": "",
            "duration_ms": 0.0,
            "status": "error" if event.name == "context.failed" else "success",
            "metadata": meta,
        }
    )
