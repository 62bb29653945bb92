"""OpenTelemetry in and out: OTLP/HTTP receiver, OTLP-JSON files, and an SDK span exporter.

- `mapping` (pure, base install): OTel spans → tracetui JSON lines; the table is in its docstring.
- `otlp_json` (base install): OTLP-JSON requests and file lines → lines (`otlp_json_line_to_lines`).
- `files`: a line sink for the file follower that expands OTLP-JSON lines as they are read.
- `OtlpReceiver` (extra `tracetui[otel]`): OTLP/HTTP `POST /v1/traces` in a background thread.
- `OtlpSource`: the receiver as a `LiveIngest` reader (`otlp`, `otlp:PORT`, `otlp:HOST:PORT`).
- `TraceTuiSpanExporter` (extra + opentelemetry-sdk): writes the same lines to a file or socket.

The names needing the extra are imported on first use, so `import tracetui.otel` always works and
a missing extra is an `ImportError` that says `pip install "tracetui[otel]"`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracetui.otel.otlp_json import OtlpError, convert_request, otlp_json_line_to_lines

if TYPE_CHECKING:
    from tracetui.otel.exporter import TraceTuiSpanExporter
    from tracetui.otel.receiver import OtlpReceiver
    from tracetui.otel.source import OtlpSource

__all__ = [
    "OtlpError",
    "OtlpReceiver",
    "OtlpSource",
    "TraceTuiSpanExporter",
    "convert_request",
    "otlp_json_line_to_lines",
]

_LAZY = {
    "OtlpReceiver": "tracetui.otel.receiver",
    "OtlpSource": "tracetui.otel.source",
    "TraceTuiSpanExporter": "tracetui.otel.exporter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracetui.otel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
