"""Lines → spans.

The fast path decodes each line straight into a `Span` with one reusable typed msgspec decoder. A
line that is JSON but does not fit the typed schema (a string duration, a numeric id, metadata that
is not an object …) goes through a lenient path that keeps what it can and records each problem in
`Span.issues`. A line that is not a JSON object becomes a `Rejected` with its line number and an
escaped preview. Nothing raises out of here.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime
from typing import Any

import msgspec

from tracetui.model import SCHEMA, Meta, Rejected, Span, normalize_layer, normalize_status
from tracetui.sanitize import preview_bytes

_intern = sys.intern
_FLAT_LABEL = b'"agent.label.'


def parse_timestamp(value: object) -> float | None:
    """ISO 8601 (naive = local time) or epoch seconds (or milliseconds) → epoch seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        ts = float(value)
        return ts / 1000.0 if ts > 1e11 else ts
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            try:
                return parse_timestamp(float(value))
            except ValueError:
                return None
    return None


def _label_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return msgspec.json.encode(value).decode()


def _labels_from(obj: object, into: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            into.setdefault(str(k), _label_value(v))


def _str_or_none(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return _intern(value if isinstance(value, str) else _label_value(value))


def apply_meta(span: Span, meta: Meta, raw: bytes) -> None:
    """Fill agent identity and correlation ids from the metadata conventions (first match wins)."""
    name: object = None
    run_id: object = None
    labels: dict[str, str] = {}
    agent = meta.agent
    ctx = meta.agent_context if meta.agent_context is not None else meta.agentContext
    if isinstance(agent, str):
        name = agent
    elif isinstance(agent, dict):
        name = agent.get("name", agent.get("agent"))
        run_id = agent.get("run_id", agent.get("runId"))
        _labels_from(agent.get("labels"), labels)
    elif isinstance(ctx, dict):
        name = ctx.get("agent", ctx.get("name"))
        if isinstance(name, dict):
            name = name.get("name", name.get("agent"))
        run_id = ctx.get("runId", ctx.get("run_id"))
        _labels_from(ctx.get("labels"), labels)
    elif meta.agent_name is not None:
        name = meta.agent_name
        run_id = meta.agent_run_id
    if run_id is None and meta.agent_run_id is not None:
        run_id = meta.agent_run_id
    if _FLAT_LABEL in raw:
        full = msgspec.json.decode(raw).get("metadata") or {}
        prefix = "agent.label."
        for key, value in full.items():
            if isinstance(key, str) and key.startswith(prefix):
                labels.setdefault(key[len(prefix) :], _label_value(value))
    _labels_from(meta.labels, labels)
    span.agent = _str_or_none(name)
    span.run_id = _str_or_none(run_id)
    if labels:
        span.labels = tuple(sorted(_intern(f"{k}={v}") for k, v in labels.items()))
    corr = meta.correlation_id if meta.correlation_id is not None else meta.correlationId
    pcorr = (
        meta.parent_correlation_id
        if meta.parent_correlation_id is not None
        else meta.parentCorrelationId
    )
    span.correlation_id = _str_or_none(corr)
    span.parent_correlation_id = _str_or_none(pcorr)
    span.meta = None


def _finish(span: Span, raw: bytes, origin: int, line_no: int) -> Span:
    """Normalise a freshly decoded span in place."""
    span.raw = raw
    span.origin = origin
    span.line_no = line_no
    span.trace_id = _intern(span.trace_id)
    if span.parent_id is not None:
        span.parent_id = _intern(span.parent_id) if span.parent_id else None
    if span.layer is not None:
        span.layer = normalize_layer(span.layer)
    if span.status is not None:
        span.status = normalize_status(span.status)
    span.operation = _intern(span.operation) if span.operation else ""
    span.component = _intern(span.component) if span.component else ""
    ts = span.ts
    if ts is not None:
        span.ts = parse_timestamp(ts)
        if span.ts is None:
            span.flags |= SCHEMA
            span.issues += (f"timestamp: cannot read {ts!r} as ISO 8601 or epoch seconds",)
    if span.meta is not None:
        apply_meta(span, span.meta, raw)
    return span


_EXPECT = {
    "trace_id": "a string",
    "parent_id": "a string or null",
    "hrm_layer": "a string",
    "status": "a string",
    "operation": "a string",
    "component": "a string",
    "duration_ms": "a number",
    "metadata": "an object",
}


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


class LineDecoder:
    """Decodes lines of one stream; reuse it (it holds the typed decoders)."""

    def __init__(self) -> None:
        self._typed = msgspec.json.Decoder(Span)
        self._meta = msgspec.convert
        self._any = msgspec.json.Decoder()
        self._missing = 0

    def decode(
        self, lines: list[bytes], first_line_no: int, origin: int = 0
    ) -> tuple[list[Span], list[Rejected]]:
        """Decode a batch; blank entries are skipped (they keep line numbering positional)."""
        spans: list[Span] = []
        rejected: list[Rejected] = []
        typed = self._typed.decode
        line_no = first_line_no - 1
        for raw in lines:
            line_no += 1
            if not raw:
                continue
            try:
                span = typed(raw)
            except msgspec.ValidationError as exc:
                result = self._lenient(raw, origin, line_no, str(exc))
                if isinstance(result, Rejected):
                    rejected.append(result)
                else:
                    spans.append(result)
                continue
            except msgspec.DecodeError as exc:
                rejected.append(self._reject(raw, origin, line_no, exc))
                continue
            spans.append(_finish(span, raw, origin, line_no))
        return spans, rejected

    def _reject(self, raw: bytes, origin: int, line_no: int, exc: Exception) -> Rejected:
        msg = str(exc)
        if raw.strip(b" \t") == b"":
            reason = "blank line with only whitespace"
        elif "utf-8" in msg.lower():
            reason = "not valid UTF-8"
        elif "recursion" in msg.lower() or "depth" in msg.lower():
            reason = "JSON nested too deeply"
        else:
            reason = f"not valid JSON ({msg})"
        return Rejected(origin, line_no, reason, preview_bytes(raw))

    def _lenient(self, raw: bytes, origin: int, line_no: int, why: str) -> Span | Rejected:
        try:
            value = self._any.decode(raw)
        except msgspec.DecodeError as exc:
            return self._reject(raw, origin, line_no, exc)
        if not isinstance(value, dict):
            return Rejected(
                origin,
                line_no,
                f"not a JSON object (a JSON {_type_name(value)})",
                preview_bytes(raw),
            )
        issues: list[str] = []
        kept: dict[str, Any] = {}
        for key, expected in _EXPECT.items():
            if key not in value:
                continue
            v = value[key]
            ok = {
                "a string": isinstance(v, str),
                "a string or null": v is None or isinstance(v, str),
                "a number": isinstance(v, (int, float)) and not isinstance(v, bool),
                "an object": v is None or isinstance(v, dict),
            }[expected]
            if ok:
                kept[key] = v
                continue
            if key in ("hrm_layer", "status", "operation", "component") and v is None:
                continue
            shown = msgspec.json.encode(v)[:60].decode("utf-8", "replace")
            issues.append(f"{key}: expected {expected}, got {_type_name(v)} {shown}")
            if key in ("trace_id", "parent_id") and isinstance(v, (int, float)):
                kept[key] = _label_value(v)
            elif key == "duration_ms" and isinstance(v, str):
                with contextlib.suppress(ValueError):
                    kept[key] = float(v.strip().removesuffix("ms"))
        if "trace_id" not in kept:
            if "trace_id" not in value:
                issues.append("trace_id: missing")
            kept["trace_id"] = f"<no trace_id {origin}:{line_no}>"
        meta = kept.pop("metadata", None)
        ts = value.get("timestamp")
        span = Span(
            trace_id=kept["trace_id"],
            parent_id=kept.get("parent_id"),
            layer=kept.get("hrm_layer"),
            status=kept.get("status"),
            operation=kept.get("operation", ""),
            component=kept.get("component", ""),
            duration_ms=float(kept["duration_ms"]) if "duration_ms" in kept else None,
            ts=ts if isinstance(ts, (str, float, int)) and not isinstance(ts, bool) else None,
            flags=SCHEMA,
            issues=tuple(issues) or (f"schema: {why}",),
        )
        if isinstance(meta, dict):
            try:
                span.meta = msgspec.convert(meta, Meta)
            except msgspec.ValidationError:
                span.meta = None
        return _finish(span, raw, origin, line_no)
