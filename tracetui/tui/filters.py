"""The filter panel: a search box and toggles with live counts (status, layer, agent, labels …)."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from tracetui.formatting import clip
from tracetui.model import LAYERS, STATUSES, layer_short
from tracetui.query import Filter
from tracetui.store import TraceStore
from tracetui.tui.span_tree import fg_only

MAX_VALUES = 200
"""Per facet, the most frequent values listed (selected values are always listed)."""


class Item(NamedTuple):
    """One line of the facet list: a heading (`facet == "header"`) or a toggle."""

    facet: str
    value: str
    label: str
    n: int | None
    on: bool


class FacetList(ScrollView, can_focus=True):
    """Toggles for every facet value, with counts; `space`/`enter`/click toggles."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("space,enter", "toggle_item", "Toggle", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "facet-list--header",
        "facet-list--cursor",
        "facet-list--on",
        "facet-list--count",
    }

    DEFAULT_CSS = """
    FacetList { background: $panel; overflow-x: hidden; scrollbar-size-vertical: 1; }
    FacetList > .facet-list--header { color: $text-muted; text-style: bold; }
    FacetList > .facet-list--cursor { background: $primary 25%; }
    FacetList:focus > .facet-list--cursor { background: $primary 50%; }
    FacetList > .facet-list--on { color: $accent; text-style: bold; }
    FacetList > .facet-list--count { color: $text-muted; }
    """

    class Toggled(Message):
        """The user toggled one value."""

        def __init__(self, facet: str, value: str) -> None:
            self.facet = facet
            self.value = value
            super().__init__()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items: list[Item] = []
        self.cursor = 1

    def set_items(self, items: list[Item]) -> None:
        """Replace the items, keeping the cursor on the same value when it is still there."""
        old = self.items[self.cursor] if 0 <= self.cursor < len(self.items) else None
        self.items = items
        if old is not None:
            for i, item in enumerate(items):
                if (item.facet, item.value) == (old.facet, old.value):
                    self.cursor = i
                    break
        self.cursor = max(0, min(self.cursor, len(items) - 1))
        self.virtual_size = Size(self.scrollable_content_region.width, len(items))
        self.refresh()

    def focus_facet(self, facet: str) -> None:
        """Put the cursor on the first value of a facet (or its heading) and focus the list."""
        for i, item in enumerate(self.items):
            if item.facet == facet:
                self.cursor = i
                break
        self._into_view()
        self.focus()
        self.refresh()

    def plain(self) -> str:
        """The list as plain text (for tests)."""
        return "\n".join(self._line(item, 40, False).plain for item in self.items)

    def action_move(self, delta: int) -> None:
        index = self.cursor + delta
        while 0 <= index < len(self.items) and self.items[index].facet == "header":
            index += delta
        if 0 <= index < len(self.items):
            self.cursor = index
            self._into_view()
            self.refresh()

    def action_toggle_item(self) -> None:
        if 0 <= self.cursor < len(self.items):
            item = self.items[self.cursor]
            if item.facet != "header":
                self.post_message(self.Toggled(item.facet, item.value))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        if 0 <= index < len(self.items) and self.items[index].facet != "header":
            self.cursor = index
            self.refresh()
            self.action_toggle_item()

    def _into_view(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True, force=True)
        elif self.cursor >= self.scroll_y + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True, force=True)

    def _line(self, item: Item, width: int, selected: bool) -> Text:
        def style(name: str) -> Style:
            full = self.get_component_rich_style(name)
            return full if name == "facet-list--cursor" else fg_only(full)

        if item.facet == "header":
            line = Text(item.label, style=style("facet-list--header"), no_wrap=True, end="")
        else:
            box = ("[x] " if item.on else "[ ] ") if item.facet != "severity" else "    "
            count = f" {item.n:,}" if item.n is not None else ""
            room = max(1, width - len(box) - len(count))
            name = item.label if len(item.label) <= room else item.label[: room - 1] + "…"
            line = Text(no_wrap=True, end="")
            line.append(box + name, style("facet-list--on") if item.on else Style())
            line.append(" " * max(0, width - len(box) - len(name) - len(count)))
            line.append(count, style("facet-list--count"))
        line.truncate(width, pad=True)
        if selected:
            line.stylize_before(style("facet-list--cursor"))
        line.stylize_before(self.rich_style)
        return line

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if index >= len(self.items):
            return Strip.blank(width, self.rich_style)
        text = self._line(self.items[index], width, index == self.cursor)
        return Strip(list(text.render(self.app.console)), width).apply_offsets(0, index)


def facet_items(
    store: TraceStore,
    flt: Filter,
    *,
    violations_only: bool,
    min_severity: str,
    has_checker: bool,
) -> list[Item]:
    """The facet list for the store's current counts and the current filter."""
    items: list[Item] = []
    facets = store.facets
    items.append(Item("header", "", "Search", None, False))
    items.append(Item("regex", "", "regular expression", None, flt.regex))
    items.append(Item("header", "", "Status  (e, b)", None, False))
    for status in STATUSES:
        count = facets["status"].get(status, 0)
        items.append(Item("status", status, status, count, status in flt.statuses))
    items.append(Item("header", "", "Layer  (1–6)", None, False))
    for i, layer in enumerate(LAYERS, start=1):
        count = facets["layer"].get(layer, 0)
        items.append(
            Item("layer", layer, f"{i} [{layer_short(layer)}] {layer}", count, layer in flt.layers)
        )
    items.append(Item("header", "", "Contracts  (v)", None, False))
    note = "" if has_checker else " (no contracts)"
    items.append(Item("violations", "", "violations only" + note, None, violations_only))
    items.append(Item("severity", "", f"min severity: {min_severity}", None, False))
    items.append(Item("header", "", "Agent  (a)", None, False))
    items.extend(_values(facets["agent"], "agent", flt.agents))
    items.append(Item("header", "", "Agent labels  (l)", None, False))
    items.extend(_values(facets["label"], "label", flt.labels))
    return items


def _values(counter: dict[str | None, int], facet: str, chosen: frozenset[str]) -> list[Item]:
    values = [(v, n) for v, n in counter.items() if v is not None and n > 0]
    values.sort(key=lambda vn: (-vn[1], vn[0]))
    shown = values[:MAX_VALUES]
    listed = {v for v, _ in shown}
    shown.extend((v, counter.get(v, 0) or 0) for v in sorted(chosen) if v not in listed)
    if not shown:
        return [Item("none", facet, "(none yet)", None, False)]
    return [Item(facet, v, clip(v, 60), n, v in chosen) for v, n in shown]


class FilterPanel(Vertical):
    """Search box above the facet list."""

    DEFAULT_CSS = """
    FilterPanel { background: $panel; }
    FilterPanel > Input { margin: 0; border: tall $primary 40%; height: 3; }
    FilterPanel > FacetList { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search (enter)", id="search")
        yield FacetList(id="facets")
