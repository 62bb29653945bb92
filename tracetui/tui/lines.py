"""A virtual list of ready-made `Text` lines (help, stats, bad lines): renders only what is seen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


class TextLines(ScrollView, can_focus=True):
    """Scrollable lines of plain styled text (never markup)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    TextLines { background: $surface; overflow-x: auto; }
    """

    def __init__(self, lines: list[Text] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Text] = []
        if lines:
            self.set_lines(lines)

    def set_lines(self, lines: list[Text]) -> None:
        """Replace the content."""
        self.lines = lines
        width = max((line.cell_len for line in lines), default=0)
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def plain(self) -> str:
        """All lines as plain text (for tests and snapshots)."""
        return "\n".join(line.plain for line in self.lines)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        text = self.lines[index].copy()
        text.no_wrap = True
        text.end = ""
        text.stylize_before(self.rich_style)
        strip = Strip(list(text.render(self.app.console)), text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style).apply_offsets(
            scroll_x, index
        )
