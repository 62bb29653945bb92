"""The live span tree: a virtual `ScrollView` that renders only the rows on screen.

Rows come from `TreeView` (flat, incremental); each visible row is turned into a `Strip` once and
cached until the view's version, the width or the cursor changes. Every string from a trace is
already sanitized by `formatting.describe` and goes into `rich.text.Text` as plain text — never
markup.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tracetui.formatting import Label, clip, describe
from tracetui.model import LAYERS, Span, layer_short
from tracetui.store import TopEntry
from tracetui.tui.grouped import GroupedView
from tracetui.tui.view import SEVERITY_RANK, Group, Row, TreeView, key_of, worst_severity

SLOW_MS = 1000.0
"""Durations at or above this stand out."""
MAX_INDENT_LEVELS = 16
"""Deeper rows show their depth as a number instead of ever more indentation."""


class _Parts:
    """Pieces of a row (text, style) and their width in cells."""

    __slots__ = ("cells", "parts")

    def __init__(self) -> None:
        self.parts: list[tuple[str, Style | None]] = []
        self.cells = 0

    def append(self, text: str, style: Style | str | None = None) -> None:
        if not text:
            return
        self.parts.append((text, style if isinstance(style, Style) else None))
        self.cells += cell_len(text)

    def restyle(self, start: int, style: Style) -> None:
        """Give every part from `start` on the same style (context rows are dimmed whole)."""
        self.parts[start:] = [(text, style) for text, _ in self.parts[start:]]


def fg_only(style: Style) -> Style:
    """A component style without its background, so the cursor's background shows through."""
    return Style(
        color=style.color,
        bold=style.bold,
        dim=style.dim,
        italic=style.italic,
        underline=style.underline,
        reverse=style.reverse,
        strike=style.strike,
    )


class SpanTree(ScrollView, can_focus=True):
    """The span forest, one row per visible span (placeholders for parents not yet arrived)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="tree.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="tree.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="tree.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="tree.page_down"),
        Binding("home", "first", "Top", show=False, id="tree.home"),
        Binding("end", "last", "Bottom (follow)", show=False, id="tree.end"),
        Binding("left,h", "collapse", "Collapse / parent", show=False, id="tree.collapse"),
        Binding("right,l", "expand", "Expand", show=False, id="tree.expand"),
        Binding("enter", "select", "Details", id="tree.select"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "span-tree--cursor",
        "span-tree--summary",
        "span-tree--context",
        "span-tree--placeholder",
        "span-tree--marker",
        "span-tree--guide",
        "span-tree--slow",
        "span-tree--duration",
        *(f"span-tree--layer-{name}" for name in (*LAYERS, "unknown")),
        *(f"span-tree--status-{name}" for name in ("success", "error", "blocked")),
        *(f"span-tree--severity-{name}" for name in SEVERITY_RANK),
    }

    DEFAULT_CSS = """
    SpanTree { background: $surface; overflow-x: hidden; scrollbar-size-vertical: 1; }
    SpanTree > .span-tree--cursor { background: $primary 25%; }
    SpanTree:focus > .span-tree--cursor { background: $primary 45%; }
    SpanTree > .span-tree--summary { color: $text-muted; }
    SpanTree > .span-tree--context { color: $text-disabled; }
    SpanTree > .span-tree--placeholder { color: $text-muted; text-style: italic; }
    SpanTree > .span-tree--marker { color: $warning; text-style: bold; }
    SpanTree > .span-tree--guide { color: $text-muted; }
    SpanTree > .span-tree--duration { color: $text-muted; }
    SpanTree > .span-tree--slow { color: $duration-slow; text-style: bold; }
    SpanTree > .span-tree--layer-altitude { color: $layer-altitude; text-style: bold; }
    SpanTree > .span-tree--layer-focus { color: $layer-focus; text-style: bold; }
    SpanTree > .span-tree--layer-reasoning { color: $layer-reasoning; text-style: bold; }
    SpanTree > .span-tree--layer-learning { color: $layer-learning; text-style: bold; }
    SpanTree > .span-tree--layer-memory { color: $layer-memory; text-style: bold; }
    SpanTree > .span-tree--layer-system { color: $layer-system; text-style: bold; }
    SpanTree > .span-tree--layer-unknown { color: $layer-unknown; text-style: bold; }
    SpanTree > .span-tree--status-success { color: $status-success; }
    SpanTree > .span-tree--status-error { color: $status-error; text-style: bold; }
    SpanTree > .span-tree--status-blocked { color: $status-blocked; text-style: bold; }
    SpanTree > .span-tree--severity-error { color: $severity-error; text-style: bold reverse; }
    SpanTree > .span-tree--severity-warning { color: $severity-warning; text-style: bold reverse; }
    SpanTree > .span-tree--severity-info { color: $severity-info; text-style: bold; }
    """

    class Highlighted(Message):
        """The cursor moved to another node."""

        def __init__(self, node: TopEntry | None) -> None:
            self.node = node
            super().__init__()

    class Selected(Message):
        """`enter` (or a click on the selected row) on a node."""

        def __init__(self, node: TopEntry) -> None:
            self.node = node
            super().__init__()

    def __init__(self, view: TreeView | GroupedView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.cursor = 0
        self.cursor_node: TopEntry | None = None
        self.following = True
        """Whether the cursor sticks to the last row as rows arrive."""
        self.new_since_away = 0
        """Top-level trees that arrived while the user was scrolled away from the bottom."""
        self._strips: LRUCache[tuple[Any, ...], Strip] = LRUCache(2048)
        self._labels: LRUCache[tuple[int, int, bool], Label] = LRUCache(8192)
        self._styles: dict[str, Style] = {}
        self.empty_message: list[str] = []
        """Shown centred-left when there are no rows (waiting for a file, nothing matches)."""

    # ---- updates -------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def rows_changed(self) -> None:
        """The view rebuilt its rows: resize, keep the cursor on its node, follow if asked."""
        total = len(self.view)
        self.virtual_size = Size(self.scrollable_content_region.width, total)
        if total == 0:
            self.cursor = 0
            self._set_cursor_node(None)
        elif self.following:
            self._move_to(total - 1, post=True)
            self.scroll_to(
                y=max(0, total - self.scrollable_content_region.height),
                animate=False,
                immediate=True,
                force=True,
            )
        else:
            old_screen = self.cursor - int(self.scroll_y)
            index = self.view.index_of(self.cursor_node) if self.cursor_node is not None else None
            if index is None:
                index = min(self.cursor, total - 1)
                self._move_to(index, post=True)
            else:
                self.cursor = index
            self.scroll_to(
                y=max(0, self.cursor - old_screen), animate=False, immediate=True, force=True
            )
        self.refresh()

    def _set_cursor_node(self, node: TopEntry | None, post: bool = True) -> None:
        changed = (node is None) != (self.cursor_node is None) or (
            node is not None
            and self.cursor_node is not None
            and key_of(node) != key_of(self.cursor_node)
        )
        self.cursor_node = node
        if changed and post:
            self.post_message(self.Highlighted(node))

    def _move_to(self, index: int, post: bool = True) -> None:
        total = len(self.view)
        if total == 0:
            return
        index = max(0, min(index, total - 1))
        self.cursor = index
        row = self.view.row(index)
        self._set_cursor_node(row[1] if row else None, post)

    def go_to(self, index: int) -> None:
        """Move the cursor to a row and scroll it into view (stops following unless it is last)."""
        self._move_to(index)
        self.following = self.cursor >= len(self.view) - 1
        if self.following:
            self.new_since_away = 0
        self._scroll_cursor_into_view()
        self.refresh()

    def go_to_node(self, node: TopEntry) -> bool:
        """Reveal a node (expanding its ancestors) and put the cursor on it."""
        if isinstance(node, Span):
            self.view.reveal(node)
            self.view.rebuild()
            self.virtual_size = Size(self.scrollable_content_region.width, len(self.view))
        index = self.view.index_of(node)
        if index is None:
            return False
        self.go_to(index)
        return True

    def _scroll_cursor_into_view(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True, force=True)

    # ---- actions -------------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self.go_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        height = max(1, self.scrollable_content_region.height - 1)
        self.go_to(self.cursor + direction * height)

    def action_first(self) -> None:
        self.go_to(0)

    def action_last(self) -> None:
        self.go_to(len(self.view) - 1)
        self.following = True
        self.new_since_away = 0

    def action_collapse(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if self.view.is_open(node) and self._has_children(node):
            self._toggle(node)
            return
        parent = self.view.parent_of(node)
        if parent is not None:
            index = self.view.index_of(parent)
            if index is not None:
                self.go_to(index)

    def action_expand(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if not self.view.is_open(node) and self._has_children(node):
            self._toggle(node)
        elif self._has_children(node):
            self.go_to(self.cursor + 1)

    def action_select(self) -> None:
        if self.cursor_node is not None:
            self.post_message(self.Selected(self.cursor_node))

    def _has_children(self, node: TopEntry) -> bool:
        return self.view.has_visible_children(node)

    def _toggle(self, node: TopEntry) -> None:
        self.view.toggle(node)
        self.view.rebuild()
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.view))
        index = self.view.index_of(node)
        if index is not None:
            self.cursor = index
        self.following = False
        self._scroll_cursor_into_view()
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        row = self.view.row(index)
        if row is None:
            return
        depth, node = row
        marker_x = min(depth, MAX_INDENT_LEVELS) * 2
        if marker_x <= event.x <= marker_x + 1 and self._has_children(node):
            self._move_to(index)
            self._toggle(node)
        elif index == self.cursor and event.chain >= 2:
            self.post_message(self.Selected(node))
        else:
            self.go_to(index)

    def on_focus(self, event: events.Focus) -> None:
        self._styles.clear()
        self.refresh()

    def on_blur(self, event: events.Blur) -> None:
        self._styles.clear()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.view))
        if self.following and len(self.view):
            self.scroll_to(
                y=max(0, len(self.view) - self.scrollable_content_region.height),
                animate=False,
                immediate=True,
                force=True,
            )
        else:
            self._scroll_cursor_into_view()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.following = False

    # ---- rendering -----------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self.get_component_rich_style(f"span-tree--{name}")
            style = self._styles[name] = style if name == "cursor" else fg_only(style)
        return style

    def label_for(self, span: Span) -> Label:
        """The sanitized row parts of a span (cached)."""
        store = self.view.store
        key = (span.seq, span.flags, store.parent_missing(span))
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = describe(span, store)
        return label

    def _stamp(self, node: TopEntry) -> tuple[object, ...]:
        """Everything besides the node itself that changes how its row looks."""
        view = self.view
        store = view.store
        has_kids = view.has_visible_children(node)
        is_open = view.is_open(node)
        if isinstance(node, Group):
            return (has_kids, is_open, node.count)
        if isinstance(node, str):
            return (has_kids, is_open, len(store.children(node)))
        checker = view.findings
        found = len(checker.findings_for(node.seq)) if checker is not None else 0
        below = len(store.children(node)) if has_kids and not is_open else 0
        return (
            has_kids,
            is_open,
            below,
            node.flags,
            store.parent_missing(node),
            view.is_context(node),
            found,
            view.findings_version,
        )

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.scrollable_content_region.width
        row = self.view.row(index)
        if row is None:
            base = self._base_style()
            if not len(self.view) and 1 <= y <= len(self.empty_message):
                text = Text("  " + self.empty_message[y - 1], no_wrap=True, end="")
                text.truncate(width, pad=True)
                text.stylize_before(base)
                return Strip(list(text.render(self.app.console)), width)
            return Strip.blank(width, base)
        selected = index == self.cursor
        node = row[1]
        key = (key_of(node), row[0], width, selected, self._stamp(node))
        strip = self._strips.get(key)
        if strip is None:
            strip = Strip(self.row_segments(row, width, selected), width)
            self._strips[key] = strip
        return strip

    def _base_style(self) -> Style:
        style = self._styles.get("")
        if style is None:
            style = self._styles[""] = self.rich_style
        return style

    def row_segments(self, row: Row, width: int, selected: bool = False) -> list[Segment]:
        """One row as segments exactly `width` cells wide (plain text with styles, no markup)."""
        depth, node = row
        store = self.view.store
        level = min(depth, MAX_INDENT_LEVELS)
        left = _Parts()
        right = _Parts()
        left.append("  " * level)
        if depth > MAX_INDENT_LEVELS:
            left.append(f"┄{depth}┄", self._style("guide"))
        has_kids = self.view.has_visible_children(node)
        is_open = self.view.is_open(node)
        left.append(("▾ " if is_open else "▸ ") if has_kids else "  ", self._style("guide"))
        if isinstance(node, Group):
            self._group_parts(node, left, right)
        elif isinstance(node, str):
            kids = len(store.children(node))
            left.append(
                f"⋯ awaiting parent {clip(node, 60)} ({kids} waiting)", self._style("placeholder")
            )
        else:
            self._span_parts(node, left, right, has_kids and not is_open)
            if self.view.is_context(node):
                left.restyle(1, self._style("context"))
        room = width - right.cells - (1 if right.cells else 0)
        if room < 8:
            right = _Parts()
            room = width
        base = self._base_style()
        if selected:
            base = base + self._style("cursor")
        out: list[Segment] = []
        used = 0
        for text, style in left.parts:
            cells = cell_len(text)
            if used + cells > room:
                keep = room - used - 1
                text = (set_cell_size(text, keep) if keep > 0 else "") + "…"
                out.append(Segment(text, base + style if style else base))
                used = room
                break
            out.append(Segment(text, base + style if style else base))
            used += cells
        pad = width - used - right.cells
        if pad > 0:
            out.append(Segment(" " * pad, base))
        for text, style in right.parts:
            out.append(Segment(text, base + style if style else base))
        return out

    def row_text(self, row: Row, width: int, selected: bool = False) -> Text:
        """One row as `Text` (for tests and tools; rendering uses `row_segments`)."""
        text = Text(no_wrap=True, end="")
        for segment in self.row_segments(row, width, selected):
            text.append(segment.text, segment.style)
        return text

    def _span_parts(self, span: Span, left: _Parts, right: _Parts, collapsed: bool) -> None:
        label = self.label_for(span)
        status = span.status if span.status in ("success", "error", "blocked") else None
        status_style = self._style(f"status-{status}") if status else Style()
        left.append(label.glyph or "·", status_style)
        left.append(" ")
        layer = span.layer if span.layer in LAYERS else "unknown"
        left.append(f"[{label.tag}]", self._style(f"layer-{layer}"))
        left.append(" ")
        left.append(
            label.operation or "(no operation)", status_style if status != "success" else ""
        )
        summary = ""
        if label.input:
            summary += ": " + label.input
        if label.output:
            summary += " → " + label.output
        if summary:
            left.append(summary, self._style("summary"))
        if label.hint:
            left.append(f" [{label.hint}]", self._style("summary"))
        for marker in label.markers:
            left.append(f" ⟨{marker}⟩", self._style("marker"))
        checker = self.view.findings
        if checker is not None:
            found = checker.findings_for(span.seq)
            severity = worst_severity(found)
            if severity is not None:
                right.append(f"⚠ {len(found)}", self._style(f"severity-{severity}"))
                right.append(" ")
            if collapsed:
                below = self._worst_below(span)
                if below is not None:
                    right.append("⚠↓", self._style(f"severity-{below}"))
                    right.append(" ")
        if collapsed:
            right.append(f"+{self.view.children_count(span)} ", self._style("guide"))
        if label.status:
            right.append(label.status + " ", status_style)
        if label.duration:
            slow = (span.duration_ms or 0.0) >= SLOW_MS
            right.append(f"{label.duration:>6}", self._style("slow" if slow else "duration"))

    def _group_parts(self, group: Group, left: _Parts, right: _Parts) -> None:
        layer = group.layer if group.layer in LAYERS else "unknown"
        if group.key[0] == "layer":
            left.append(f"[{clip(layer_short(group.layer), 12)}] ", self._style(f"layer-{layer}"))
            left.append(clip(group.label, 60), self._style(f"layer-{layer}"))
        else:
            left.append(clip(group.label, 60))
        right.append(f"{group.count:,}", self._style("duration"))

    def _worst_below(self, span: Span) -> str | None:
        checker = self.view.findings
        if checker is None:
            return None
        worst: str | None = None
        for _, node in self.view.store.subtree(span):
            if isinstance(node, Span) and node is not span:
                sev = worst_severity(checker.findings_for(node.seq))
                if sev is not None and (worst is None or SEVERITY_RANK[sev] > SEVERITY_RANK[worst]):
                    worst = sev
                    if sev == "error":
                        break
        return worst
