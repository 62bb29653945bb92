"""The one label formatter: text output, TUI rows and snapshots all describe a span with it.

`describe(span)` returns the parts of a row (tag, operation, summaries, status, duration, hint,
markers), each already sanitized; `console_line` joins them the way `tracetui tree` prints:

    [alt] transition: L3→L2 → success (5ms)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import msgspec

from tracetui.model import CYCLE, DUPLICATE, SCHEMA, Span, layer_short
from tracetui.query import Selection
from tracetui.sanitize import sanitize
from tracetui.store import TraceStore

SUMMARY_LIMIT: Final = 120
STATUS_GLYPH: Final = {"success": "✓", "error": "✗", "blocked": "⊘"}
MAX_INDENT: Final = 40
"""Deeper levels are drawn with a depth marker instead of ever-wider indentation."""


class Label(msgspec.Struct):
    """The parts of a span's row, sanitized; empty strings for parts that do not apply."""

    tag: str
    operation: str
    input: str
    output: str
    status: str
    glyph: str
    duration: str
    hint: str
    markers: list[str]


def clip(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Sanitize and shorten to `limit` characters (with an ellipsis)."""
    text = sanitize(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(ms: float | None) -> str:
    """`5ms`, `0.42ms`, `12.5ms`, `230ms`, `1.25s`."""
    if ms is None:
        return ""
    if ms < 1:
        return f"{ms:.2f}ms"
    if ms < 10:
        return f"{ms:.1f}".removesuffix(".0") + "ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 1e8:
        return f"{ms / 1000:.2f}s"
    return f"{ms / 1000:.3g}s"  # absurd values stay short: 1e+305s


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode("utf-8", "replace")


def metadata_hint(meta: dict[str, Any], status: str | None) -> str:
    """A short hint for the few metadata keys worth seeing at a glance."""
    for key in ("tokens_saved", "saved_tokens"):
        value = meta.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"saved {value:g} tokens"
    if status == "error":
        for key in ("error", "error_message", "exception"):
            if meta.get(key):
                return clip(_text(meta[key]), 60)
    if status == "blocked":
        for key in ("blocked_by", "gate", "reason"):
            if meta.get(key):
                return clip(_text(meta[key]), 60)
    return ""


def describe(span: Span, store: TraceStore | None = None) -> Label:
    """The row parts for one span."""
    fields = span.fields()
    meta = fields.get("metadata")
    markers: list[str] = []
    if span.flags & DUPLICATE:
        markers.append("duplicate id")
    if span.flags & CYCLE:
        markers.append("parent cycle")
    if span.flags & SCHEMA:
        markers.append("schema: " + "; ".join(clip(i, 80) for i in span.issues))
    if store is not None and store.parent_missing(span) and not store.is_cut(span):
        markers.append(f"parent {clip(span.parent_id or '', 60)} missing")
    status = span.status or ""
    output = clip(_text(fields.get("output_summary")))
    hint = metadata_hint(meta, span.status) if isinstance(meta, dict) else ""
    if hint and (hint == output or (hint.endswith("…") and output.startswith(hint[:-1]))):
        hint = ""  # an error text already shown as the output
    return Label(
        tag=clip(layer_short(span.layer), 12),
        operation=clip(span.short_operation, 60),
        input=clip(_text(fields.get("input_summary"))),
        output=output,
        status=clip(status, 20) if status != "success" else "",
        glyph=STATUS_GLYPH.get(status, "?" if status else ""),
        duration=format_duration(span.duration_ms),
        hint=hint,
        markers=markers,
    )


def console_line(span: Span, store: TraceStore | None = None, *, context: bool = False) -> str:
    """`[alt] transition: L3→L2 → success (5ms) [saved 45 tokens]` for one span."""
    label = describe(span, store)
    # A span without an operation is named by its id, so the line still says which span it is.
    out = [f"[{label.tag}] {label.operation or clip(span.trace_id, 60)}"]
    if label.input:
        out.append(f": {label.input}")
    if label.output:
        out.append(f" → {label.output}")
    if label.status:
        out.append(f" {label.glyph} {label.status}")
    if label.duration:
        out.append(f" ({label.duration})")
    if label.hint:
        out.append(f" [{label.hint}]")
    for marker in label.markers:
        out.append(f" ⟨{marker}⟩")
    if context:
        out.append(" ⟨context⟩")
    return "".join(out)


def _prefix(guides: list[bool], last: bool, depth: int) -> str:
    """Indentation for a node at `depth` (root = 0); `guides` says, per ancestor level shown,
    whether it was a last child."""
    shown = guides[: MAX_INDENT - 1]
    parts = ["  "]
    parts.extend("    " if g else "│   " for g in shown)
    if depth > MAX_INDENT:
        parts.append(f"┄[{depth}]┄")
    parts.append("└─" if last else "├─")
    return "".join(parts)


def tree_lines(store: TraceStore, selection: Selection) -> Iterator[str]:
    """The forest as console text: one line per span, children indented under their parent.

    A placeholder (a parent that never arrived) is not printed; its children are printed as roots,
    each marked with the missing parent's id.
    """
    for entry in selection.top:
        roots = store.children(entry) if isinstance(entry, str) else [entry]
        for root in roots:
            if not selection.shows(root):
                continue
            yield console_line(root, store, context=selection.is_context(root))
            stack: list[tuple[list[bool], Span, bool, int]] = []
            kids = [k for k in store.children(root) if selection.shows(k)]
            for i in range(len(kids) - 1, -1, -1):
                stack.append(([], kids[i], i == len(kids) - 1, 1))
            while stack:
                guides, node, last, depth = stack.pop()
                yield _prefix(guides, last, depth) + console_line(
                    node, store, context=selection.is_context(node)
                )
                kids = [k for k in store.children(node) if selection.shows(k)]
                if kids:
                    child_guides = [*guides, last] if len(guides) < MAX_INDENT else guides
                    for i in range(len(kids) - 1, -1, -1):
                        stack.append((child_guides, kids[i], i == len(kids) - 1, depth + 1))


def _annotations(span: Span, store: TraceStore, selection: Selection) -> dict[str, Any]:
    notes: dict[str, Any] = {}
    if selection.is_context(span):
        notes["context"] = True
    if span.flags & DUPLICATE:
        notes["duplicate"] = True
    if span.flags & CYCLE:
        notes["cycle"] = True
    if store.parent_missing(span) and not store.is_cut(span):
        notes["parent_missing"] = span.parent_id
    if span.issues:
        notes["schema_issues"] = list(span.issues)
    return notes


def json_forest(store: TraceStore, selection: Selection) -> Iterator[bytes]:
    """The forest as one nested JSON array, streamed in pieces (no recursion, any depth).

    Each node is the original event's fields plus `children`; anything tracetui has to say about a
    span (context-only, duplicate, cycle, parent missing, schema issues) sits under `_tracetui`.
    A line that can be copied keeps its original bytes; only the others are decoded and re-encoded.
    """
    encode = msgspec.json.encode
    shown = None if selection.matched is None else selection.matched | selection.context
    context = selection.context
    by_id = store.by_id
    children = store.children
    out: list[bytes] = [b"["]
    append = out.append
    sep = b""
    for entry in selection.top:
        roots = children(entry) if isinstance(entry, str) else [entry]
        for root in roots:
            if shown is not None and root.seq not in shown:
                continue
            append(sep)
            sep = b","
            # Stack items: a span to open, or the bytes that close one or separate siblings.
            stack: list[Span | bytes] = [root]
            pop = stack.pop
            push = stack.append
            while stack:
                item = pop()
                if isinstance(item, bytes):
                    append(item)
                    continue
                pid = item.parent_id
                raw = item.raw
                if raw[-1:] != b"}":
                    raw = raw.rstrip()
                flags = item.flags
                if flags or (pid is not None and pid not in by_id):
                    notes = _annotations(item, store, selection)
                    opening = b',"_tracetui":' + encode(notes) + _CHILDREN if notes else _CHILDREN
                elif item.seq in context:
                    notes, opening = _CONTEXT, _CONTEXT_CHILDREN
                else:
                    notes, opening = _NO_NOTES, _CHILDREN
                if (  # not copyable as is: a typed-decoded line ending in } without our keys
                    flags & SCHEMA
                    or raw[-1:] != b"}"
                    or b'"children"' in raw
                    or b'"_tracetui"' in raw
                ):
                    append(_node_json(item, notes))
                elif pid is not None or _has_parent_key(raw):
                    # The original bytes untouched (a typed-decoded line with a parent has both
                    # ids as top-level keys), then our notes and children.
                    append(raw[:-1])
                    append(opening)
                else:
                    append(b'{"parent_id":null,')
                    append(raw[1:-1])
                    append(opening)
                kids = children(item)
                if shown is not None and kids:
                    kids = [k for k in kids if k.seq in shown]
                push(b"]}")
                if kids:
                    push(kids[-1])
                    for i in range(len(kids) - 2, -1, -1):
                        push(b",")
                        push(kids[i])
                if len(out) > 4096:
                    yield b"".join(out)
                    out.clear()
    append(b"]")
    yield b"".join(out)


_CHILDREN: Final = b',"children":['
_CONTEXT: Final = {"context": True}
_NO_NOTES: Final[dict[str, Any]] = {}
_CONTEXT_CHILDREN: Final = b',"_tracetui":{"context":true},"children":['


class _ParentKey(msgspec.Struct):
    parent_id: Any = msgspec.UNSET


_parent_key = msgspec.json.Decoder(_ParentKey)


def _has_parent_key(raw: bytes) -> bool:
    """Whether a root's line has a top-level `parent_id` (null, "" …) or lacks the key."""
    return _parent_key.decode(raw).parent_id is not msgspec.UNSET


def _node_json(span: Span, notes: dict[str, Any]) -> bytes:
    """A node's opening bytes from its decoded fields (ids ensured, annotations attached)."""
    fields = span.fields()
    fields.pop("children", None)
    own = fields.pop("_tracetui", None)
    if own is not None:
        fields["_tracetui.original"] = own  # the line's own key must not pass for our notes
    fields["trace_id"] = fields.get("trace_id", span.trace_id)
    fields.setdefault("parent_id", None)
    if notes:
        fields["_tracetui"] = notes
    body = msgspec.json.encode(fields)
    return body[:-1] + (b',"children":[' if len(body) > 2 else b'"children":[')
