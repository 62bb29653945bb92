"""Lines → spans.

The fast path decodes each line straight into a `Span` with one reusable typed msgspec decoder. A
line that is JSON but does not fit the typed schema (a string duration, a numeric id, metadata that
is not an object …) goes through a lenient path that keeps what it can and records each problem in
`Span.issues`. A line that is not a JSON object becomes a `Rejected` with its line number and an
escaped preview. Nothing raises out of here.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from tracetui.model import (
    SCHEMA,
    Meta,
    Rejected,
    Span,
    SpanWithoutMeta,
    normalize_layer,
    normalize_status,
)
from tracetui.sanitize import preview_bytes

_intern = sys.intern
_FLAT_LABEL = b'"agent.label.'


_EARLIEST = -62_135_596_800.0 + 2 * 86_400  # 0001-01-03: in every time zone, after year 1
_LATEST = 253_402_300_799.0 - 2 * 86_400  # 9999-12-29: what datetime (every view) can show


def parse_timestamp(value: object) -> float | None:
    """ISO 8601 (naive = local time) or epoch seconds (or milliseconds) → epoch seconds.

    None for values no calendar can show (NaN, infinities, beyond the years 1–9999).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        ts = float(value)
        if not math.isfinite(ts):
            return None
        if ts > 1e11:
            ts /= 1000.0
        return ts if _EARLIEST <= ts <= _LATEST else None
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


Identity = tuple[str | None, str | None, dict[str, str], tuple[str, ...]]

_decode_any = msgspec.json.Decoder().decode
_identity_cache: dict[tuple[int, bytes], Identity] = {}
_EMPTY: dict[str, str] = {}


def _identity(kind: int, raw: msgspec.Raw) -> Identity:
    """(name, run_id, labels) from an `agent` object (kind 0) or an agent context (kind 1)."""
    key = (kind, bytes(raw))
    hit = _identity_cache.get(key)
    if hit is not None:
        return hit
    try:
        obj = _decode_any(raw)
    except msgspec.DecodeError:
        obj = None
    name: object = None
    run_id: object = None
    labels: dict[str, str] = {}
    if isinstance(obj, str) and kind == 0:
        name = obj
    elif isinstance(obj, dict):
        if kind == 0:
            name = obj.get("name", obj.get("agent"))
            run_id = obj.get("run_id", obj.get("runId"))
        else:
            name = obj.get("agent", obj.get("name"))
            if isinstance(name, dict):
                name = name.get("name", name.get("agent"))
            run_id = obj.get("runId", obj.get("run_id"))
        _labels_from(obj.get("labels"), labels)
    result = (
        _str_or_none(name),
        _str_or_none(run_id),
        labels or _EMPTY,
        _label_tuple(labels) if labels else (),
    )
    if len(_identity_cache) > 50_000:
        _identity_cache.clear()
    _identity_cache[key] = result
    return result


_label_cache: dict[bytes, dict[str, str]] = {}


def _extra_labels(raw: msgspec.Raw) -> dict[str, str]:
    key = bytes(raw)
    hit = _label_cache.get(key)
    if hit is None:
        hit = {}
        with contextlib.suppress(msgspec.DecodeError):
            _labels_from(_decode_any(raw), hit)
        if len(_label_cache) > 50_000:
            _label_cache.clear()
        _label_cache[key] = hit
    return hit


def _is_object_or_text(raw: msgspec.Raw, objects_only: bool = False) -> bool:
    """Whether an encoded value can name an agent: an object (or a string, unless objects_only).

    `null`, numbers and booleans do not count, so the next convention gets its turn.
    """
    if not raw:
        return False
    head = bytes(raw)[:1]
    return head == b"{" or (head == b'"' and not objects_only)


def apply_meta(span: Span, meta: Meta, raw: bytes) -> None:
    """Fill agent identity and correlation ids from the metadata conventions (first match wins)."""
    name: str | None = None
    run_id: str | None = None
    labels = _EMPTY
    label_tuple: tuple[str, ...] = ()
    if _is_object_or_text(meta.agent):
        name, run_id, labels, label_tuple = _identity(0, meta.agent)
    elif _is_object_or_text(meta.agent_context, objects_only=True):
        name, run_id, labels, label_tuple = _identity(1, meta.agent_context)
    elif _is_object_or_text(meta.agentContext, objects_only=True):
        name, run_id, labels, label_tuple = _identity(1, meta.agentContext)
    elif meta.agent_name is not None:
        name = _str_or_none(meta.agent_name)
    if run_id is None and meta.agent_run_id is not None:
        run_id = _str_or_none(meta.agent_run_id)
    if _FLAT_LABEL in raw or meta.labels:
        labels = dict(labels)
        if _FLAT_LABEL in raw:
            full = _decode_any(raw).get("metadata") or {}
            prefix = "agent.label."
            for key, value in full.items():
                if isinstance(key, str) and key.startswith(prefix):
                    labels.setdefault(key[len(prefix) :], _label_value(value))
        if meta.labels:
            for k, v in _extra_labels(meta.labels).items():
                labels.setdefault(k, v)
        label_tuple = _label_tuple(labels) if labels else ()
    span.agent = name
    span.run_id = run_id
    span.labels = label_tuple
    corr = meta.correlation_id
    if corr is None:
        corr = meta.correlationId
    pcorr = meta.parent_correlation_id
    if pcorr is None:
        pcorr = meta.parentCorrelationId
    span.correlation_id = corr if isinstance(corr, str) else _str_or_none(corr)
    span.parent_correlation_id = pcorr if isinstance(pcorr, str) else _str_or_none(pcorr)
    span.meta = None


_tuple_cache: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}


def _label_tuple(labels: dict[str, str]) -> tuple[str, ...]:
    """Sorted `key=value` strings, shared between spans with the same labels."""
    key = tuple(labels.items())
    hit = _tuple_cache.get(key)
    if hit is None:
        hit = tuple(sorted(_intern(f"{k}={v}") for k, v in labels.items()))
        if len(_tuple_cache) > 50_000:
            _tuple_cache.clear()
        _tuple_cache[key] = hit
    return hit


_layer_cache: dict[str, str] = {}
_status_cache: dict[str, str] = {}


def _finish(span: Span, raw: bytes, origin: int, line_no: int) -> Span:
    """Normalise a freshly decoded span in place."""
    span.raw_bytes = raw
    span.origin = origin
    span.line_no = line_no
    if span.parent_id == "":
        span.parent_id = None
    if span.layer is not None:
        span.layer = _layer_cache.get(span.layer) or _norm_layer(span.layer)
    if span.status is not None:
        span.status = _status_cache.get(span.status) or _norm_status(span.status)
    op = span.operation
    span.operation = _intern(op) if op else ""
    comp = span.component
    span.component = _intern(comp) if comp else ""
    _fix_ts(span)
    if span.meta is not None:
        apply_meta(span, span.meta, raw)
    return span


def _finish_batch(spans: list[Span], raws: list[bytes], origin: int, first_line_no: int) -> None:
    """`_finish` for a clean batch, inlined for the common case (this is the hot loop of a load)."""
    layer_cache = _layer_cache
    status_cache = _status_cache
    intern = _intern
    identity_cache = _identity_cache
    flat_label = _FLAT_LABEL
    line_no = first_line_no
    for span, raw in zip(spans, raws, strict=True):
        span.raw_bytes = raw
        span.origin = origin
        span.line_no = line_no
        line_no += 1
        if span.parent_id == "":
            span.parent_id = None
        layer = span.layer
        if layer is not None:
            norm = layer_cache.get(layer)
            span.layer = norm if norm is not None else _norm_layer(layer)
        status = span.status
        if status is not None:
            norm = status_cache.get(status)
            span.status = norm if norm is not None else _norm_status(status)
        op = span.operation
        span.operation = intern(op) if op else ""
        comp = span.component
        span.component = intern(comp) if comp else ""
        ts = span.ts
        if ts.__class__ is not float or not 0.0 <= ts <= 1e11:
            _fix_ts(span)
        meta = span.meta
        if meta is None:
            continue
        agent = meta.agent
        key = bytes(agent)
        if key[:1] == b"{" and not meta.labels and flat_label not in raw:
            ident = identity_cache.get((0, key)) or _identity(0, agent)
            span.agent = ident[0]
            run_id = ident[1]
            if run_id is None and meta.agent_run_id is not None:
                run_id = _str_or_none(meta.agent_run_id)
            span.run_id = run_id
            span.labels = ident[3]
            corr = meta.correlation_id
            pcorr = meta.parent_correlation_id
            plain = corr is None or corr.__class__ is str
            if plain and (pcorr is None or pcorr.__class__ is str):
                if corr is None and meta.correlationId is not None:
                    corr = _str_or_none(meta.correlationId)
                if pcorr is None and meta.parentCorrelationId is not None:
                    pcorr = _str_or_none(meta.parentCorrelationId)
                span.correlation_id = corr
                span.parent_correlation_id = pcorr
                span.meta = None
                continue
        apply_meta(span, meta, raw)


def _norm_layer(layer: str) -> str:
    return _layer_cache.setdefault(layer, _intern(normalize_layer(layer)))


def _norm_status(status: str) -> str:
    return _status_cache.setdefault(status, _intern(normalize_status(status)))


def _fix_ts(span: Span) -> None:
    ts = span.ts
    if ts is None:
        return
    span.ts = parse_timestamp(ts)
    if span.ts is None:
        span.flags |= SCHEMA
        span.issues += (f"timestamp: cannot read {ts!r} as ISO 8601 or epoch seconds",)


_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
"""How msgspec says where the text after a line's first value starts (1-based)."""
_INTERNAL_KEY = b'"@tracetui:'


def _internal_fields(cls: type[Span]) -> tuple[Callable[[Span], tuple[Any, ...]], tuple[Any, ...]]:
    """A getter of the fields of `cls` that only tracetui sets (encoded as `@tracetui:*`), and
    their defaults: derived from the model, so a field added there is checked here too."""
    fields = [f for f in msgspec.structs.fields(cls) if f.encode_name.startswith("@tracetui:")]
    getter = attrgetter(*(f.name for f in fields))
    return getter, tuple(f.default for f in fields)


_INTERNAL = {cls: _internal_fields(cls) for cls in (Span, SpanWithoutMeta)}


def _forged(span: Span, raw: bytes) -> bool:
    """Whether the typed decoder filled a field that only tracetui sets, from a key that spells an
    internal name with JSON escapes (`"\\u0040tracetui:flags"`), which no byte search catches."""
    if b"\\" not in raw:
        return False
    getter, defaults = _INTERNAL[span.__class__]
    return getter(span) != defaults


def _has_internal_key(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether `data[start:end]` holds `"@tracetui:` (a key spelled like our internal fields).

    A substring search costs ~0.5 ns a byte; most traces have no `@` at all, which one `find`
    tells at memchr speed (`count` is ten times slower), and the few `@` of a typical batch are
    checked one by one.
    """
    if end is None:
        end = len(data)
    at = data.find(b"@", start, end)
    seen = 0
    while at >= 0:
        if data.startswith(b"tracetui:", at + 1, end) and at > start and data[at - 1] == 34:
            return True  # (34 is `"`)
        seen += 1
        if seen > 64:  # many: one substring search from here
            return data.find(_INTERNAL_KEY, max(at - 1, start), end) >= 0
        at = data.find(b"@", at + 1, end)
    return False


_FIRST_BYTE = itemgetter(0)
_LAST_BYTE = itemgetter(-1)


def _one_object_each(lines: list[bytes]) -> bool:
    """Whether every line starts with `{` and ends with `}`.

    A batch decode reads whitespace-separated values, newlines included: a line holding two
    objects and one holding none (or an object broken over two lines) would add up to as many
    values as lines, each paired with the wrong line. When every line starts with `{` and ends
    with `}`, no value can run from one line into the next (the parser would meet `{` where a
    `,` or `}` must come), so as many values as lines means one from each.
    """
    n = len(lines)  # (first and last bytes gathered at C speed: ~50 ns a line)
    return bytes(map(_FIRST_BYTE, lines)) == b"{" * n and bytes(map(_LAST_BYTE, lines)) == b"}" * n


def _valid_utf8(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """JSON text is UTF-8; msgspec does not check strings it skips, so check the whole line."""
    if data.isascii():
        return True
    try:
        str(memoryview(data)[start:end], "utf-8")
    except UnicodeDecodeError:
        return False
    return True


_EXPECT = {
    "trace_id": "a string",
    "parent_id": "a string or null",
    "hrm_layer": "a string",
    "status": "a string",
    "operation": "a string",
    "component": "a string",
    "duration_ms": "a number",
    "metadata": "an object",
    "timestamp": "ISO 8601 text or epoch seconds",
}


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


class LineDecoder:
    """Decodes lines of one stream; reuse it (it holds the typed decoders)."""

    def __init__(self, identity: bool = True) -> None:
        """Args:
        identity: extract agent identity, labels and correlation ids from `metadata`; without
            it spans are `SpanWithoutMeta` and those attributes stay empty.
        """
        self.identity = identity
        self._typed = msgspec.json.Decoder(Span if identity else SpanWithoutMeta)
        self._any = msgspec.json.Decoder()

    def decode(
        self,
        lines: list[bytes],
        first_line_no: int,
        origin: int = 0,
        rest: tuple[bytes, int, int] | None = None,
    ) -> tuple[list[Span], list[Rejected]]:
        """Decode a batch; blank entries are skipped (they keep line numbering positional).

        `rest`: `lines[1:]` as they stand in a buffer (see `Frame.rest`), which spares joining
        them for the batch decode.
        """
        if len(lines) > 1 and all(lines):
            fast = self._whole_batch(lines, rest)
            if fast is not None:
                _finish_batch(fast, lines, origin, first_line_no)
                return fast, []
        spans: list[Span] = []
        rejected: list[Rejected] = []
        line_no = first_line_no - 1
        for raw in lines:
            line_no += 1
            if not raw or raw.isspace():
                continue
            result = self._one(raw, origin, line_no)
            if isinstance(result, Rejected):
                rejected.append(result)
            else:
                spans.append(result)
        return spans, rejected

    def _whole_batch(
        self, lines: list[bytes], rest: tuple[bytes, int, int] | None
    ) -> list[Span] | None:
        """Every line decoded by one typed call, or None when a line needs a closer look."""
        head = b""
        if rest is None:
            data = b"\n".join(lines)
            start, end = 0, len(data)
        else:
            head = lines[0]
            data, start, end = rest
        if not _one_object_each(lines):
            return None
        if _has_internal_key(head) or _has_internal_key(data, start, end):
            return None
        if not (_valid_utf8(head) and _valid_utf8(data, start, end)):
            return None
        try:
            if rest is None:
                fast = self._typed.decode_lines(data)
            else:
                fast = self._typed.decode_lines(memoryview(data)[start:end])
                fast.insert(0, self._typed.decode(head))
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
        if len(fast) != len(lines):  # (with one object a line, equal counts pair them right)
            return None
        escaped = b"\\" in head or data.find(b"\\", start, end) >= 0
        if escaped and any(map(_forged, fast, lines)):
            return None
        return fast

    def _one(self, raw: bytes, origin: int, line_no: int) -> Span | Rejected:
        """Decode one line: typed, else lenient, else rejected."""
        if not _valid_utf8(raw):
            return Rejected(origin, line_no, "not valid UTF-8", preview_bytes(raw))
        try:
            span = self._typed.decode(raw)
        except msgspec.ValidationError as exc:
            return self._lenient(raw, origin, line_no, str(exc))
        except RecursionError:
            return Rejected(origin, line_no, "JSON nested too deeply", preview_bytes(raw))
        except msgspec.DecodeError as exc:
            return self._reject(raw, origin, line_no, exc)
        if _INTERNAL_KEY in raw or _forged(span, raw):
            # A key spelled like one of our internal fields must not set it: rebuild leniently.
            return self._lenient(raw, origin, line_no, "")
        return _finish(span, raw, origin, line_no)

    def _reject(self, raw: bytes, origin: int, line_no: int, exc: Exception) -> Rejected:
        msg = str(exc)
        trailing = _TRAILING.search(msg)
        after = int(trailing.group(1)) if trailing else 0  # 1-based, 0: no trailing text
        if "utf-8" in msg.lower():
            reason = "not valid UTF-8"
        elif "recursion" in msg.lower() or "depth" in msg.lower():
            reason = "JSON nested too deeply"
        elif after and raw[after - 1 : after] in (b"{", b"["):
            reason = f"not valid JSON (a second value at byte {after}: one object per line)"
        elif "truncated" in msg and raw.lstrip()[:1] in (b"{", b"[", b'"'):
            reason = "not valid JSON (the line ends inside a value)"
        else:
            reason = f"not valid JSON ({msg})"
        return Rejected(origin, line_no, reason, preview_bytes(raw))

    def _lenient(self, raw: bytes, origin: int, line_no: int, why: str) -> Span | Rejected:
        try:
            value = self._any.decode(raw)
        except RecursionError:
            return Rejected(origin, line_no, "JSON nested too deeply", preview_bytes(raw))
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
                "ISO 8601 text or epoch seconds": v is None
                or (isinstance(v, (str, int, float)) and not isinstance(v, bool)),
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
        )
        found = tuple(issues) or ((f"schema: {why}",) if why else ())
        if found:
            span.flags = SCHEMA
            span.issues = found
        if isinstance(meta, dict) and self.identity:
            try:
                span.meta = msgspec.json.decode(msgspec.json.encode(meta), type=Meta)
            except msgspec.ValidationError:
                span.meta = None
        return _finish(span, raw, origin, line_no)
