"""The details of one span: every field, pulled-out conventions, findings, path, origin, raw line.

`details_text` builds a `rich.text.Text` from sanitized strings only; the pane shows it with a
`Static` that never parses markup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tracetui.formatting import describe, format_duration
from tracetui.model import CYCLE, DUPLICATE, Span, layer_short
from tracetui.sanitize import sanitize
from tracetui.store import TopEntry, TraceStore

_SHOWN = {
    "trace_id",
    "parent_id",
    "hrm_layer",
    "status",
    "operation",
    "component",
    "duration_ms",
    "timestamp",
    "metadata",
    "input_summary",
    "output_summary",
}
_BAGGAGE_SAFE = ("run_id", "dataset_id", "datapoint_id", "honeyhive_tracer_id", "project", "source")


def _pretty(value: Any) -> list[str]:
    """Pretty-printed JSON, one sanitized string per line."""
    try:
        body = msgspec.json.format(msgspec.json.encode(value), indent=2).decode("utf-8", "replace")
    except (TypeError, msgspec.EncodeError):
        body = repr(value)
    return [sanitize(line) for line in body.splitlines()]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return sanitize(value)
    return sanitize(msgspec.json.encode(value).decode("utf-8", "replace"))


class _Builder:
    def __init__(self) -> None:
        self.text = Text(end="")

    def heading(self, title: str) -> None:
        if self.text.plain:
            self.text.append("\n")
        self.text.append(title + "\n", "bold underline")

    def field(self, name: str, value: str, style: str = "") -> None:
        self.text.append(f"{name:<14}", "bold")
        self.text.append(value + "\n", style)

    def lines(self, lines: list[str], indent: str = "  ", style: str = "") -> None:
        for line in lines:
            self.text.append(indent + line + "\n", style)


def details_text(node: TopEntry, store: TraceStore, findings: list[Any] | None = None) -> Text:
    """Everything about one node, as plain styled text (no markup is ever parsed)."""
    b = _Builder()
    if isinstance(node, str):
        kids = store.children(node)
        b.heading("Awaiting parent")
        b.field("parent id", sanitize(node))
        b.field("waiting", f"{len(kids)} span(s) name this parent, which has not arrived yet")
        return b.text
    span = node
    fields = span.fields()
    label = describe(span, store)
    status = span.status or ""
    head = f"[{label.tag}] {label.operation}  {label.glyph} {sanitize(status)}"
    if label.duration:
        head += f"  {label.duration}"
    b.text.append(head + "\n", "bold")
    for marker in label.markers:
        b.text.append(f"⟨{marker}⟩\n", "bold yellow")

    b.heading("Span")
    b.field("trace_id", sanitize(span.trace_id))
    b.field("parent_id", sanitize(span.parent_id) if span.parent_id is not None else "(root)")
    b.field("layer", f"{sanitize(span.layer or '')} [{layer_short(span.layer)}]")
    b.field("status", sanitize(status))
    b.field("operation", sanitize(span.operation or ""))
    b.field("component", sanitize(span.component or ""))
    b.field("duration", format_duration(span.duration_ms) or "(none)")
    raw_ts = fields.get("timestamp")
    when = ""
    if span.start is not None:
        try:
            when = datetime.fromtimestamp(span.start).isoformat(sep=" ", timespec="milliseconds")
        except (OverflowError, OSError, ValueError):
            when = ""  # a time this platform cannot show: the raw value still is
    b.field("timestamp", (when + "  " if when else "") + _scalar(raw_ts))
    b.field("origin", sanitize(store.where(span.origin, span.line_no)))
    if span.flags & DUPLICATE:
        others = store.duplicates.get(span.trace_id, [])
        b.field(
            "duplicate",
            ", ".join(sanitize(store.where(o.origin, o.line_no)) for o in others),
            "bold yellow",
        )
    if span.flags & CYCLE:
        b.field("cycle", "its parent chain loops back to itself; the link is cut here")
    for issue in span.issues:
        b.field("schema", sanitize(issue), "yellow")

    for name in ("input_summary", "output_summary"):
        if name in fields:
            b.heading("input" if name == "input_summary" else "output")
            b.lines([_scalar(fields[name])])

    meta = fields.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    b.heading("Agent")
    b.field("agent", sanitize(span.agent) if span.agent else "(none)")
    b.field("run_id", sanitize(span.run_id) if span.run_id else "(none)")
    b.field("labels", ", ".join(sanitize(lbl) for lbl in span.labels) or "(none)")
    b.field("correlation", sanitize(span.correlation_id) if span.correlation_id else "(none)")
    b.field(
        "parent corr.",
        sanitize(span.parent_correlation_id) if span.parent_correlation_id else "(none)",
    )
    baggage = meta.get("baggage")
    if isinstance(baggage, dict) and baggage:
        b.heading("Baggage")
        for key, value in baggage.items():
            kind = "" if key in _BAGGAGE_SAFE else "  (instance-specific)"
            if key in ("session_id", "session_name"):
                kind = "  (must not propagate)"
            b.field(sanitize(str(key)), _scalar(value) + kind)

    if findings:
        b.heading(f"Findings ({len(findings)})")
        for f in findings:
            sev = str(getattr(f, "severity", "info"))
            style = {"error": "bold red", "warning": "bold yellow"}.get(sev, "bold cyan")
            b.text.append(f"  {sanitize(sev)} ", style)
            b.text.append(sanitize(str(getattr(f, "rule", ""))) + "\n", "bold")
            b.text.append("    " + sanitize(str(getattr(f, "message", ""))) + "\n")
            field = getattr(f, "field", None)
            if field:
                b.text.append("    field: " + sanitize(str(field)) + "\n")
            hint = getattr(f, "hint", "")
            if hint:
                b.text.append("    hint: " + sanitize(str(hint)) + "\n", "italic")

    path = list(reversed(store.ancestors(span)))
    b.heading("Path from root")
    top = store.top_of(span)
    if isinstance(top, str):
        b.lines([f"⋯ awaiting parent {sanitize(top)}"])
    for depth, anc in enumerate([*path, span]):
        lab = describe(anc, store)
        b.lines([f"{'  ' * depth}[{lab.tag}] {lab.operation}"])

    extra = {k: v for k, v in fields.items() if k not in _SHOWN}
    if extra:
        b.heading("Other fields")
        for key, value in extra.items():
            b.field(sanitize(str(key)), "")
            b.lines(_pretty(value), indent="    ")
    b.heading("metadata")
    b.lines(_pretty(meta) if meta else ["(none)"])
    b.heading("Raw line")
    b.lines([sanitize(span.raw.decode("utf-8", "backslashreplace"))], indent="")
    return b.text


class DetailsPane(VerticalScroll):
    """The details pane; follows the tree's cursor while open."""

    DEFAULT_CSS = """
    DetailsPane { background: $panel; padding: 0 1; }
    DetailsPane > Static { width: 100%; }
    """

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("", markup=False, id="details-body")

    def show(self, node: TopEntry | None, store: TraceStore, findings: list[Any] | None) -> None:
        """Show a node (or a hint when there is none)."""
        body = self.query_one("#details-body", Static)
        if node is None:
            body.update(Text("No span selected."))
        else:
            body.update(details_text(node, store, findings))
        self.scroll_home(animate=False)

    def plain(self) -> str:
        """What the pane shows, as plain text (for tests)."""
        body = self.query_one("#details-body", Static)
        content = body.content
        return content.plain if isinstance(content, Text) else str(content)


def span_of(node: TopEntry | None) -> Span | None:
    """The span of a node (None for placeholders)."""
    return node if isinstance(node, Span) else None
