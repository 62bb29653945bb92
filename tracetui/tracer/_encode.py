"""One event dict → one JSON line, never raising and never longer than the readers accept.

The fast path is a single `orjson.dumps` whose `default` turns anything unknown into a clipped
`repr`. Anything orjson still refuses (cycles, integers beyond 64 bits, lone surrogates, non-string
keys, a dict mutated by another thread) and any line over `MAX_LINE` go through `tame`, which copies
the value into plain JSON types with bounded depth, width, string length and total size.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

MAX_LINE: Final = 512 * 1024
"""Longest line written; tracetui's readers skip lines over 1 MiB."""
SUMMARY_MAX: Final = 100
"""`input_summary`/`output_summary` are meant to be at most this many characters."""
MAX_STR: Final = 4096
MAX_REPR: Final = 1000
MAX_ITEMS: Final = 200
MAX_DEPTH: Final = 16
MAX_NODES: Final = 5000

OPTIONS: Final = orjson.OPT_APPEND_NEWLINE
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut marked with `…`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_repr(value: object, limit: int = MAX_REPR) -> str:
    """`repr(value)` clipped; a `repr` that raises gives a placeholder instead."""
    try:
        text = repr(value)
    except Exception:
        text = f"<unrepresentable {type(value).__qualname__}>"
    return _valid_utf8(clip(text, limit))


def summary(value: object) -> str:
    """A summary field: strings as they are, anything else as its `repr`, clipped to 100."""
    if isinstance(value, str):
        return _valid_utf8(clip(value, SUMMARY_MAX))
    if value is None:
        return ""
    return safe_repr(value, SUMMARY_MAX)


def _valid_utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def default_repr(value: object) -> str:
    return safe_repr(value)


def encode(record: dict[str, Any]) -> bytes:
    """The record as one JSON line ending in a newline, at most `MAX_LINE` bytes."""
    try:
        line = orjson.dumps(record, default=default_repr, option=OPTIONS)
    except Exception:
        line = b""
    if line and len(line) <= MAX_LINE:
        return line
    return encode_slow(record, len(line))


def encode_slow(record: dict[str, Any], first_size: int) -> bytes:
    """`record` made writable: metadata tamed, or replaced by a note when still too long."""
    meta = record.get("metadata")
    # Top-level strings (summaries, component …) may hold lone surrogates too: escape them, so
    # that one bad string does not cost the span its metadata.
    top = {k: _valid_utf8(v) if isinstance(v, str) else v for k, v in record.items()}
    try:
        tamed = tame(meta)
        line = orjson.dumps({**top, "metadata": tamed}, option=OPTIONS)
    except Exception as exc:
        line = b""
        reason = f"metadata could not be serialised: {safe_repr(exc, 200)}"
    else:
        reason = f"metadata of {first_size} bytes dropped: line over {MAX_LINE} bytes"
    if line and len(line) <= MAX_LINE:
        return line
    stub = {
        key: (summary(value) if isinstance(value, str) else value)
        for key, value in top.items()
        if key != "metadata"
    }
    stub["metadata"] = {"tracer_truncated": reason}
    try:
        return orjson.dumps(stub, default=default_repr, option=OPTIONS)
    except Exception:
        fallback = {"trace_id": summary(record.get("trace_id")), "metadata": stub["metadata"]}
        return orjson.dumps(fallback, option=OPTIONS)


def tame(value: object) -> Any:
    """A copy of `value` made of JSON types only, bounded in depth, width and size."""
    budget = [MAX_NODES]
    return _tame(value, 0, budget)


def _tame(value: object, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return int(value)
        return f"<int of {value.bit_length()} bits>"
    if isinstance(value, str):
        return _valid_utf8(clip(value, MAX_STR))
    if depth >= MAX_DEPTH or budget[0] <= 0:
        return safe_repr(value, 200)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        items = list(value.items())
        for key, item in items[:MAX_ITEMS]:
            name = _valid_utf8(clip(key, 200)) if isinstance(key, str) else safe_repr(key, 200)
            out[name] = _tame(item, depth + 1, budget)
            if budget[0] <= 0:
                break
        if len(out) < len(items):
            out["…"] = f"{len(items) - len(out)} more keys not shown"
        return out
    if isinstance(value, (list, tuple)):
        seq: list[Any] = []
        for item in list(value)[:MAX_ITEMS]:
            seq.append(_tame(item, depth + 1, budget))
            if budget[0] <= 0:
                break
        if len(seq) < len(value):
            seq.append(f"… {len(value) - len(seq)} more items not shown")
        return seq
    return safe_repr(value)
