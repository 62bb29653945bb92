"""OTLP-JSON (`ExportTraceServiceRequest` in the OTLP/JSON encoding) → tracetui lines.

Decoded with typed msgspec Structs, so it needs no protobuf and works in the base install (OTLP-JSON
files are followed like any trace file). As OTLP/JSON prescribes, ids are hex strings, 64-bit
integers may be strings or numbers, enums are numbers (their names are accepted too), keys are
lowerCamelCase and unknown keys are ignored.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from tracetui.otel.mapping import (
    NO_RESOURCE,
    SPAN_KINDS,
    Event,
    Link,
    Resource,
    id_problem,
    make_resource,
    span_lines,
)


class OtlpError(ValueError):
    """A request that is not a valid OTLP trace export, in plain words."""


class Conversion(msgspec.Struct):
    """The outcome of converting one request.

    Attributes:
        lines: tracetui JSON lines (each ends with a newline).
        spans: spans accepted.
        rejected: spans rejected (bad ids).
        problems: why spans were rejected (the first few, in plain words).
    """

    lines: list[bytes]
    spans: int = 0
    rejected: int = 0
    problems: list[str] = msgspec.field(default_factory=list)

    def reject(self, where: str, problem: str) -> None:
        """Count one rejected span and keep the first few reasons."""
        self.rejected += 1
        if len(self.problems) < 5:
            self.problems.append(f"{where}: {problem}")

    @property
    def message(self) -> str:
        """The rejection reasons as one sentence (empty when none were rejected)."""
        if not self.rejected:
            return ""
        more = self.rejected - len(self.problems)
        tail = f" (and {more} more)" if more > 0 else ""
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.problems) + tail


class ArrayValue(msgspec.Struct):
    values: list[AnyValue] = []


class KeyValueList(msgspec.Struct):
    values: list[KeyValue] = []


class AnyValue(msgspec.Struct):
    stringValue: str | None = None
    boolValue: bool | None = None
    intValue: int | str | None = None
    doubleValue: float | str | None = None
    arrayValue: ArrayValue | None = None
    kvlistValue: KeyValueList | None = None
    bytesValue: str | None = None


class KeyValue(msgspec.Struct):
    key: str = ""
    value: AnyValue | None = None


class JsonResource(msgspec.Struct):
    attributes: list[KeyValue] = []


class Scope(msgspec.Struct):
    name: str = ""
    version: str = ""


class JsonEvent(msgspec.Struct):
    timeUnixNano: int | str = 0
    name: str = ""
    attributes: list[KeyValue] = []


class JsonLink(msgspec.Struct):
    traceId: str = ""
    spanId: str = ""
    attributes: list[KeyValue] = []


class Status(msgspec.Struct):
    message: str = ""
    code: int | str = 0


class JsonSpan(msgspec.Struct):
    traceId: str = ""
    spanId: str = ""
    parentSpanId: str = ""
    traceState: str = ""
    name: str = ""
    kind: int | str = 0
    startTimeUnixNano: int | str = 0
    endTimeUnixNano: int | str = 0
    attributes: list[KeyValue] = []
    events: list[JsonEvent] = []
    links: list[JsonLink] = []
    status: Status | None = None


class ScopeSpans(msgspec.Struct):
    scope: Scope | None = None
    spans: list[JsonSpan] = []


class ResourceSpans(msgspec.Struct):
    resource: JsonResource | None = None
    scopeSpans: list[ScopeSpans] = []


class Request(msgspec.Struct):
    resourceSpans: list[ResourceSpans] = []


_decoder: Final = msgspec.json.Decoder(Request)
_LOOKS_OTLP: Final = re.compile(rb'\A[\s\xef\xbb\xbf]*\{\s*"resourceSpans"\s*:')
_STATUS_NAMES: Final = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_KIND_NAMES: Final = {f"SPAN_KIND_{name.upper()}": i for i, name in enumerate(SPAN_KINDS)}


def looks_like_otlp_json(line: bytes) -> bool:
    """Whether a line starts as an OTLP-JSON trace request (`{"resourceSpans": …`)."""
    return _LOOKS_OTLP.match(line) is not None


def _int(value: int | str, names: dict[str, int] | None = None) -> int:
    if isinstance(value, int):
        return value
    if names is not None and value in names:
        return names[value]
    try:
        return int(value)
    except ValueError:
        raise OtlpError(f"{value[:40]!r} is not an integer") from None


def _value(v: AnyValue | None) -> Any:
    if v is None:
        return None
    if v.stringValue is not None:
        return v.stringValue
    if v.boolValue is not None:
        return v.boolValue
    if v.intValue is not None:
        return _int(v.intValue)
    if v.doubleValue is not None:
        return v.doubleValue if isinstance(v.doubleValue, float) else _double(v.doubleValue)
    if v.arrayValue is not None:
        return [_value(item) for item in v.arrayValue.values]
    if v.kvlistValue is not None:
        return attributes(v.kvlistValue.values)
    if v.bytesValue is not None:
        return v.bytesValue
    return None


def _double(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise OtlpError(f"{text[:40]!r} is not a number") from None


def attributes(items: list[KeyValue]) -> dict[str, Any]:
    """OTLP key-value pairs as a dict (a repeated key: the last one wins)."""
    return {kv.key: _value(kv.value) for kv in items}


def convert_request(data: bytes) -> Conversion:
    """One OTLP-JSON `ExportTraceServiceRequest` → lines.

    Raises:
        OtlpError: the body is not JSON or not shaped like the request (says where).
    """
    try:
        request = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise OtlpError(f"not an OTLP-JSON trace request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise OtlpError(f"not valid JSON: {exc}") from None
    return convert_decoded(request)


def convert_decoded(request: Request) -> Conversion:
    """The lines of a decoded request (see `convert_request`)."""
    out = Conversion([])
    for r, rs in enumerate(request.resourceSpans):
        resource = make_resource(attributes(rs.resource.attributes)) if rs.resource else NO_RESOURCE
        for s, ss in enumerate(rs.scopeSpans):
            scope = ss.scope or Scope()
            for n, span in enumerate(ss.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                try:
                    lines = _span(span, resource, scope)
                except OtlpError as exc:
                    out.reject(where, str(exc))
                    continue
                out.lines.extend(lines)
                out.spans += 1
    return out


def _span(span: JsonSpan, resource: Resource, scope: Scope) -> list[bytes]:
    trace_id = span.traceId.lower()
    span_id = span.spanId.lower()
    parent_id = span.parentSpanId.lower()
    problem = id_problem(trace_id, span_id, parent_id)
    if problem is not None:
        raise OtlpError(problem)
    status = span.status or Status()
    return span_lines(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=span.name,
        kind=_int(span.kind, _KIND_NAMES),
        start_ns=_int(span.startTimeUnixNano),
        end_ns=_int(span.endTimeUnixNano),
        status_code=_int(status.code, _STATUS_NAMES),
        status_message=status.message,
        attributes=attributes(span.attributes),
        events=[Event(e.name, _int(e.timeUnixNano), attributes(e.attributes)) for e in span.events],
        links=[
            Link(link.traceId.lower(), link.spanId.lower(), attributes(link.attributes))
            for link in span.links
        ],
        resource=resource,
        scope=scope.name,
        scope_version=scope.version,
        trace_state=span.traceState,
    )


def otlp_json_line_to_lines(line: bytes) -> list[bytes] | None:
    """The tracetui lines of one OTLP-JSON file line, or None when the line is not OTLP-JSON.

    A line that starts like an OTLP request but is broken, or whose spans are rejected, raises
    `OtlpError` with the reason (so a file reader can report it at its line number).
    """
    if not looks_like_otlp_json(line):
        return None
    result = convert_request(line)
    if result.rejected:
        raise OtlpError(result.message)
    return result.lines
