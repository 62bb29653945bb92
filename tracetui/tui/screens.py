"""Full-screen views over the tree: help, stats and bad lines."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tracetui.formatting import clip, format_duration
from tracetui.model import layer_short
from tracetui.sanitize import sanitize
from tracetui.stats import Stats
from tracetui.store import TraceStore
from tracetui.tui.lines import TextLines


class LinesScreen(ModalScreen[None]):
    """A titled, scrollable page of text; `escape` or `q` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="page.close"),
    ]

    DEFAULT_CSS = """
    LinesScreen { align: center middle; }
    LinesScreen > Vertical {
        width: 100%; max-width: 110; height: 100%; max-height: 40;
        border: round $primary; background: $surface;
    }
    LinesScreen .page-title { background: $primary 30%; text-style: bold; padding: 0 1; }
    LinesScreen TextLines { height: 1fr; padding: 0 1; }
    LinesScreen .page-foot { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, title: str, lines: list[Text], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.page_title = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.page_title), classes="page-title", markup=False)
            yield TextLines(self.lines, id="page-lines")
            yield Static(Text("esc / q: close   ↑↓ PgUp PgDn: scroll"), classes="page-foot")

    def on_mount(self) -> None:
        self.query_one(TextLines).focus()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class HelpScreen(LinesScreen):
    """Every key, grouped."""


class StatsScreen(LinesScreen):
    """Per-layer figures, slowest operations, statuses and agents."""


class BadLinesScreen(LinesScreen):
    """Every rejected line: origin, line number, reason, escaped preview."""


def help_lines(keys: list[tuple[str, str]], ids: list[tuple[str, str]] | None = None) -> list[Text]:
    """The help page: one line per key, then the binding ids users can remap."""
    out = [
        Text("Keys (all remappable; every action is also in the command palette, ctrl+p)"),
        Text(),
    ]
    width = max((len(k) for k, _ in keys), default=0) + 2
    for key, what in keys:
        line = Text(no_wrap=True)
        line.append(f"  {key:<{width}}", "bold")
        line.append(what)
        out.append(line)
    out.append(Text())
    out.append(Text("Mouse: click a row to select it, click ▸/▾ to expand, wheel to scroll."))
    out.append(Text("Rows: ▸/▾ expand · ✓ ✗ ⊘ status · [alt] layer · ⚠ N findings · ⚠↓ below"))
    if ids:
        out.append(Text())
        out.append(Text("Remap keys in ~/.config/tracetui/keys.toml, e.g.", "bold"))
        out.append(Text("  [keys]"))
        out.append(Text('  pause = "p"'))
        out.append(Text('  snapshot = "ctrl+s,s"'))
        out.append(Text("Binding ids (default keys):", "bold"))
        for binding_id, key in ids:
            out.append(Text(f"  {binding_id:<18}{key}"))
    return out


def stats_lines(stats: Stats) -> list[Text]:
    """The stats page."""
    out: list[Text] = [Text(f"{stats.events:,} events   bad lines: {stats.bad_lines:,}"), Text()]
    head = f"{'layer':<12}{'ops':>9}{'avg':>9}{'p95':>9}{'max':>9}{'errors':>8}{'blocked':>9}"
    out.append(Text(head, "bold"))
    for row in stats.layers:
        out.append(
            Text(
                f"{clip(row.layer, 12):<12}{row.ops:>9,}{format_duration(row.avg_ms):>9}"
                f"{format_duration(row.p95_ms):>9}{format_duration(row.max_ms):>9}"
                f"{row.errors:>8,}{row.blocked:>9,}"
            )
        )
    if stats.slowest:
        out.append(Text())
        out.append(Text("Slowest", "bold"))
        for slow in stats.slowest:
            tag = clip(layer_short(slow.layer), 12)
            out.append(
                Text(
                    f"  {format_duration(slow.duration_ms):>8}  [{tag}]"
                    f" {clip(slow.operation, 50)}  {clip(slow.trace_id, 40)}"
                )
            )
    out.append(Text())
    out.append(Text("Statuses", "bold"))
    for status, n in stats.statuses.items():
        out.append(Text(f"  {clip(status, 30):<30}{n:>9,}"))
    out.append(Text())
    out.append(Text("Agents", "bold"))
    for agent, n in stats.agents.items():
        out.append(Text(f"  {clip(agent, 30):<30}{n:>9,}"))
    return out


def bad_line_lines(store: TraceStore, limit: int = 10_000) -> list[Text]:
    """The bad-lines page (the most recent `limit` lines)."""
    rejected = store.rejected
    out: list[Text] = []
    if not rejected:
        return [Text("No bad lines.")]
    if len(rejected) > limit:
        out.append(Text(f"(showing the last {limit:,} of {len(rejected):,})", "italic"))
    for rej in rejected[-limit:]:
        line = Text(no_wrap=True)
        line.append(sanitize(store.where(rej.origin, rej.line_no)), "bold")
        line.append("  " + sanitize(rej.reason), "yellow")
        if rej.preview:
            line.append("  " + sanitize(rej.preview))
        out.append(line)
    return out
