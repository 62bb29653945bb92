"""OTLP protobuf (`ExportTraceServiceRequest`, the official generated classes) → tracetui lines.

Needs the `otel` extra (`opentelemetry-proto`).
"""

from __future__ import annotations

from typing import Any

from tracetui.otel._extra import require

require()

from google.protobuf.message import DecodeError  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan  # noqa: E402

from tracetui.otel.mapping import (  # noqa: E402
    NO_RESOURCE,
    Event,
    Link,
    Resource,
    bytes_value,
    id_problem,
    make_resource,
    span_lines,
)
from tracetui.otel.otlp_json import Conversion, OtlpError  # noqa: E402

__all__ = ["ExportTraceServiceRequest", "convert_protobuf", "parse_protobuf"]

_ZERO8 = bytes(8)
_ZERO16 = bytes(16)


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return v.bool_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "array_value":
        return [_value(item) for item in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return bytes_value(v.bytes_value)
    return None


def attributes(items: Any) -> dict[str, Any]:
    """Repeated `KeyValue` as a dict (a repeated key: the last one wins)."""
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in items:
        v = kv.value
        which = v.WhichOneof("value")
        out[kv.key] = v.string_value if which == "string_value" else _value(v)
    return out


def parse_protobuf(data: bytes) -> ExportTraceServiceRequest:
    """Parse a protobuf request body.

    Raises:
        OtlpError: the body is not a valid protobuf `ExportTraceServiceRequest`.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OtlpError(f"not a protobuf ExportTraceServiceRequest: {exc}") from None
    return request


def convert_protobuf(request: ExportTraceServiceRequest) -> Conversion:
    """The tracetui lines of a parsed request; spans with unusable ids are rejected and counted."""
    out = Conversion([])
    for r, rs in enumerate(request.resource_spans):
        resource: Resource = (
            make_resource(attributes(rs.resource.attributes))
            if rs.HasField("resource")
            else NO_RESOURCE
        )
        for s, ss in enumerate(rs.scope_spans):
            scope_name = ss.scope.name
            scope_version = ss.scope.version
            for n, span in enumerate(ss.spans):
                lines = _span(span, resource, scope_name, scope_version)
                if isinstance(lines, str):
                    out.reject(f"resource_spans[{r}].scope_spans[{s}].spans[{n}]", lines)
                    continue
                out.lines.extend(lines)
                out.spans += 1
    return out


def _span(span: PbSpan, resource: Resource, scope: str, version: str) -> list[bytes] | str:
    raw_trace, raw_span, raw_parent = span.trace_id, span.span_id, span.parent_span_id
    trace_id = raw_trace.hex()
    span_id = raw_span.hex()
    parent_id = raw_parent.hex()
    if not (
        len(raw_span) == 8
        and len(raw_trace) == 16
        and len(raw_parent) in (0, 8)
        and raw_span != _ZERO8
        and raw_trace != _ZERO16
    ):
        return id_problem(trace_id, span_id, parent_id) or "unusable ids"
    return span_lines(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=span.name,
        kind=span.kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=span.status.code,
        status_message=span.status.message,
        attributes=attributes(span.attributes),
        events=[Event(e.name, e.time_unix_nano, attributes(e.attributes)) for e in span.events],
        links=[
            Link(link.trace_id.hex(), link.span_id.hex(), attributes(link.attributes))
            for link in span.links
        ],
        resource=resource,
        scope=scope,
        scope_version=version,
        trace_state=span.trace_state,
    )
