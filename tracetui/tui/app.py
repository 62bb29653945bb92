"""The monitor app: status line, filter panel, live span tree, details pane.

Data comes from a feed (`LiveIngest` in production) drained on a 15 Hz timer on the app's own
thread: everything that arrived since the last tick becomes one batch of changes, applied to the
tree view at once — never one message per event. The store is only touched on this thread.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import os
import textwrap
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import msgspec
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.events import Event, Key, MouseEvent, Resize
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from tracetui.formatting import clip
from tracetui.model import LAYERS, Span
from tracetui.query import Filter, Selection, matching_seqs
from tracetui.sanitize import sanitize
from tracetui.stats import compute
from tracetui.store import Change, TopEntry, TraceStore
from tracetui.tui.details import DetailsPane
from tracetui.tui.filters import FacetList, FilterPanel, facet_items
from tracetui.tui.grouped import GroupedView
from tracetui.tui.keymap import load_keymap
from tracetui.tui.links import Kept, KeptBuilder, Snapshot
from tracetui.tui.screens import (
    BadLinesScreen,
    HelpScreen,
    StatsScreen,
    bad_line_lines,
    help_lines,
    stats_lines,
)
from tracetui.tui.search import SearchIndex, indexable, search_pattern
from tracetui.tui.snapshot import snapshot_paths, snapshot_prefix, text_lines, write_files
from tracetui.tui.span_tree import SpanTree
from tracetui.tui.themes import DEFAULT_THEME, SEMANTIC_DEFAULTS, ThemeFile, discover
from tracetui.tui.view import SEVERITIES, TreeView

TICK_HZ = 15
DRAIN_MAX = 4_000
"""Most spans ingested per tick. A backlog bigger than that (a big file opened) is loaded by
ticks in quick succession, with a turn of the UI between two, so the UI stays responsive."""
DRAIN_MIN = 500
TICK_TARGET_S = 0.03
"""While a backlog loads, each tick takes about this long: the number of spans drained per
tick (between DRAIN_MIN and DRAIN_MAX) follows how long the last one took (contract checks
make a span dearer)."""
LOAD_YIELD_S = 0.002
"""How long the UI runs between two ticks of a backlog being loaded."""
INTERACTIVE_YIELD_S = 0.03
"""The same, while the user is at the keyboard or mouse (input in the last INTERACTIVE_S)."""
INTERACTIVE_S = 1.5
FREEZE_GROWTH = 100_000
"""Rows added since the last `gc.freeze()` that justify another one."""
BACKGROUND_FILTER_MIN = 200_000
"""A filter change over at least this many resident spans is worked out in a background thread
(over snapshots of the links and the search index), so the UI stays live meanwhile."""
FILTER_SLICE_S = 0.035
"""Longest slice of a background filter change between two turns of the UI."""
FILTER_YIELD_S = 0.001
"""How long a background filter change lets the UI run between two slices."""
FILTER_PART = 4096
"""Spans (or matches) handled between two looks at the clock in a background filter change."""
INDEX_PER_TICK = 5_000
"""Most spans added to the search index per tick (it catches up after a big load)."""
SNAPSHOT_SLICE_S = 0.02
"""Longest slice of snapshot formatting between two turns of the event loop."""
NARROW = 100
"""Below this width the details pane goes under the tree."""


class Wanted(NamedTuple):
    """A filter the user asked for (shown in the panel while a background pass works it out)."""

    filter: Filter
    violations_only: bool
    min_severity: str


class Feed(Protocol):
    """What the app needs from a live source (`tracetui.sources.live.LiveIngest`), started."""

    def drain(self, max_spans: int | None = None) -> Change: ...
    def states(self) -> list[Any]: ...
    def stop(self) -> None: ...
    @property
    def done(self) -> bool: ...


class TraceApp(App[None]):
    """tracetui's live monitor."""

    TITLE = "tracetui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="help"),
        Binding("space", "pause", "Pause", id="pause"),
        Binding("f", "filters", "Filters", id="filters"),
        Binding("slash", "search", "Search", id="search"),
        Binding("e", "errors_only", "Errors", show=False, id="errors_only"),
        Binding("b", "blocked_only", "Blocked", show=False, id="blocked_only"),
        Binding("v", "violations_only", "Violations", show=False, id="violations_only"),
        *(
            Binding(str(i), f"layer({i})", f"Layer {name}", show=False, id=f"layer_{i}")
            for i, name in enumerate(LAYERS, start=1)
        ),
        Binding("a", "agent_filter", "Agent filter", show=False, id="agent_filter"),
        Binding("l", "label_filter", "Label filter", show=False, id="label_filter"),
        Binding("c", "clear_filters", "Clear filters", show=False, id="clear_filters"),
        Binding("n", "next_finding(1)", "Next finding", show=False, id="next_finding"),
        Binding("N", "next_finding(-1)", "Previous finding", show=False, id="prev_finding"),
        Binding("E", "next_error", "Next error", show=False, id="next_error"),
        Binding("x", "expand_all", "Expand/collapse all", show=False, id="expand_all"),
        Binding("g", "grouped", "Grouped view", show=False, id="grouped"),
        Binding("t", "stats", "Stats", show=False, id="stats"),
        Binding("B", "bad_lines", "Bad lines", show=False, id="bad_lines"),
        Binding("s", "snapshot", "Snapshot", id="snapshot"),
        Binding("ctrl+t", "next_theme", "Theme", show=False, id="next_theme"),
        Binding("escape", "close_panels", "Close", show=False, id="close"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    KEY_HELP: ClassVar[list[tuple[str, str]]] = [
        ("space", "pause / resume the view (ingest continues and is counted)"),
        ("↑ ↓ PgUp PgDn", "move (k/j too)"),
        ("home / end", "first row / last row (end resumes following)"),
        ("← →", "collapse or go to parent / expand"),
        ("enter", "details of the row (they follow the cursor while open)"),
        ("f", "show / hide the filter panel"),
        ("/", "search text (tick 'regular expression' in the panel for a regex)"),
        ("e", "errors only"),
        ("b", "blocked only"),
        ("v", "violations only (spans with contract findings)"),
        ("1 … 6", "toggle layers altitude, focus, reasoning, learning, memory, system"),
        ("a", "agent filter (panel)"),
        ("l", "agent-label filter (panel)"),
        ("c", "clear all filters"),
        ("n / N", "next / previous finding"),
        ("E", "next error"),
        ("x", "expand / collapse all"),
        ("g", "grouped view: layer → operation → spans, with counts"),
        ("t", "stats of the current view"),
        ("B", "bad lines"),
        ("s", "snapshot: .jsonl, .txt and .svg of the current view"),
        ("ctrl+t", "next theme"),
        ("ctrl+p", "command palette"),
        ("esc", "close the details pane, the panel, or a page"),
        ("?", "this help"),
        ("q", "quit"),
    ]

    def __init__(
        self,
        store: TraceStore,
        feed: Feed | None = None,
        *,
        checker: Any = None,
        theme: str | Theme | None = None,
        snapshot_dir: Path | None = None,
        sources: list[str] | None = None,
        waiting_hint: str | None = None,
        extra_theme_dirs: list[Path] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.feed = feed
        self.checker = checker
        self.view = TreeView(store, checker)
        self.search_index = SearchIndex()
        self.search_index.catch_up(store, store.next_seq)
        self.grouped_view = GroupedView(self.view)
        self.grouped = False
        self.snapshot_dir = snapshot_dir or Path.cwd()
        self.sources = sources or []
        self.waiting_hint = waiting_hint
        self.paused = False
        self.pending: list[Change] = []
        self.pending_spans = 0
        self._pending_findings: set[int] = set()
        self._holding = 0
        """Snapshots reading the store over several turns: ingest waits meanwhile."""
        self._snapshot_prefixes: set[Path] = set()
        """Snapshots not written yet (their names are taken)."""
        self._rate: deque[tuple[float, int]] = deque()
        self._loading = False
        self._drain = DRAIN_MAX
        """Spans drained per tick (see TICK_TARGET_S)."""
        self._last_input = 0.0
        self._mean_line: float | None = None
        self._finished = False
        self._last_checker_tick = 0.0
        self._last_facets = 0.0
        self._facets_dirty = True
        self._search_timer: Any = None
        self.details_node: TopEntry | None = None
        self._last_status: Text | None = None
        self._frozen_rows = 0
        self._filter_generation = 0
        self._filtering = False
        self._pending_filter: Wanted | None = None
        """The filter a background pass is working out (None: the view shows what was asked)."""
        self._frozen_at = 0.0
        self.status_bar = Static("", id="status", markup=False)
        self.filter_panel = FilterPanel(id="filters")
        self.span_tree = SpanTree(self.view, id="tree")
        self.details_pane = DetailsPane(id="details")
        self.themes, self.theme_problems = discover(extra_theme_dirs)
        for tf in self.themes:
            self.register_theme(tf.theme)
        if isinstance(theme, Theme):
            self.register_theme(theme)
            theme = theme.name
        self._initial_theme = theme

    # ---- setup ---------------------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(SEMANTIC_DEFAULTS)

    def compose(self) -> ComposeResult:
        yield self.status_bar
        with Container(id="main"):
            yield self.filter_panel
            yield self.span_tree
            yield self.details_pane
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self._initial_theme is not None:
            self.theme = self._initial_theme
        elif DEFAULT_THEME in self.available_themes:
            self.theme = DEFAULT_THEME
        for problem in self.theme_problems:
            self.notify(problem, title="Theme skipped", severity="warning", markup=False)
        keymap, problems = load_keymap()
        for problem in problems:
            self.notify(problem, title="Key file skipped", severity="warning", markup=False)
        if keymap:
            self.set_keymap(keymap)
        self.span_tree.focus()
        self._apply_narrow(self.size.width)
        self.view.rebuild()
        self.span_tree.rows_changed()
        self._refresh_facets()
        self._update_status()
        self.set_interval(1 / TICK_HZ, self._tick_while_loading, name="ingest-tick")

    def on_unmount(self) -> None:
        if self.feed is not None:
            self.feed.stop()

    def on_resize(self, event: Resize) -> None:
        self._apply_narrow(event.size.width)

    def _apply_narrow(self, width: int) -> None:
        self.screen.set_class(width < NARROW, "narrow")

    # ---- the tick ------------------------------------------------------------------------------

    async def _tick_while_loading(self) -> None:
        """A tick; while a backlog is loading, further ticks in quick succession, each after a
        turn of the UI (the timer's next tick waits for this one)."""
        self.tick()
        while self._loading and not self._holding and self.is_running:
            interactive = time.monotonic() - self._last_input < INTERACTIVE_S
            await asyncio.sleep(INTERACTIVE_YIELD_S if interactive else LOAD_YIELD_S)
            self.tick()

    async def on_event(self, event: Event) -> None:
        if isinstance(event, (Key, MouseEvent)):
            self._last_input = time.monotonic()  # a backlog loads slower while the user acts
        await super().on_event(event)

    def tick(self) -> None:
        """Drain the feed, run the checker, and update the view from everything that arrived."""
        now = time.monotonic()
        started = time.perf_counter()
        change: Change | None = None
        drain = self._drain
        if self.feed is not None and not self._holding:
            change = self.feed.drain(max_spans=drain)
            self._loading = len(change.new) >= drain
            if change.new:
                self._rate.append((now, len(change.new)))
        finding_seqs: set[int] = set()
        if self.checker is not None:
            try:
                finding_seqs = self._check(change, now)
            except Exception as exc:  # a broken rule must not take the monitor down
                self.notify(
                    f"{type(exc).__name__}: {sanitize(str(exc))}; contract checks are off now.",
                    title="Contract checker failed",
                    severity="error",
                    markup=False,
                )
                self.checker = None
                self.view.findings = None
                self.grouped_view.findings = None
        if change is not None and (change.new or change.rejected or change.evicted):
            self.ingested(change)
        if change is not None:
            self._index(change)
        if finding_seqs:
            self._facets_dirty = True
            if self.paused:
                self._pending_findings |= finding_seqs  # shown with the batches on resume
            else:
                self._refresh_findings(finding_seqs)
                self._rows_changed(force=True)
        if self._facets_dirty and now - self._last_facets > 0.5:
            self._refresh_facets()
        self._update_status()
        self._maybe_freeze()
        if change is not None and len(change.new) >= drain:  # a full tick: pace the next one
            took = max(time.perf_counter() - started, 1e-3)
            floor = min(DRAIN_MIN, DRAIN_MAX)
            self._drain = max(floor, min(DRAIN_MAX, int(drain * TICK_TARGET_S / took)))

    def _refresh_findings(self, seqs: set[int]) -> None:
        self.view.refresh_findings(seqs)
        self.grouped_view.refresh_findings()

    def _index(self, change: Change) -> None:
        """Bring the search index up to date (a bounded slice per tick)."""
        index = self.search_index
        if change.evicted:
            index.prune(self.store.first_seq)
        if index.next_seq < self._store_end:
            index.catch_up(self.store, self._store_end, INDEX_PER_TICK)

    @property
    def _store_end(self) -> int:
        """One past the last seq the store has given out."""
        return self.store.next_seq

    def _maybe_freeze(self) -> None:
        """Move long-lived objects (spans' rows, caches) out of the cyclic GC's way.

        With a million resident events every full collection would walk them all — the same
        reason bulk loading freezes what it loaded. Done after big growth, at most every 5 s.
        """
        now = time.monotonic()
        rows = len(self.rows)
        if rows - self._frozen_rows > FREEZE_GROWTH and now - self._frozen_at > 5.0:
            gc.freeze()
            self._frozen_rows = rows
            self._frozen_at = now

    def _check(self, change: Change | None, now: float) -> set[int]:
        """Run the checker on a batch (and its timers); the seqs whose findings changed."""
        checker = self.checker
        seqs: set[int] = set()
        if change is not None and (change.new or change.adopted or change.evicted):
            seqs |= self._finding_seqs(checker.observe(self.store, change))
        if now - self._last_checker_tick >= 1.0:
            self._last_checker_tick = now
            seqs |= self._finding_seqs(checker.tick(self.store, time.time()))
        if self.feed is not None and self.feed.done and not self._finished:
            self._finished = True
            seqs |= self._finding_seqs(checker.finish(self.store))
        return seqs

    @staticmethod
    def _finding_seqs(delta: Any) -> set[int]:
        if delta is None:
            return set()
        seqs = {f.seq for f in getattr(delta, "added", ())}
        seqs |= {f.seq for f in getattr(delta, "removed", ())}
        return seqs

    def ingested(self, change: Change) -> None:
        """Take in a batch that the store has already ingested (the feed calls the store)."""
        self._facets_dirty = self._facets_dirty or bool(change.facets) or bool(change.evicted)
        if self.paused:
            self.pending.append(change)
            self.pending_spans += len(change.new)
            return
        self._apply(change)

    def _apply(self, change: Change) -> None:
        tree = self.span_tree
        before = self.view.last_top
        tops_before = self.view.top_count
        self.view.apply(change)
        if self.grouped:
            self.grouped_view.apply(change)
        else:
            self.grouped_view.invalidate()
        if self._rows_changed() and not tree.following:
            grown = self.view.top_count - tops_before
            if grown > 0 or self.view.last_top is not before:
                tree.new_since_away += max(grown, 1)

    def _rows_changed(self, force: bool = False) -> bool:
        changed = self.rows.rebuild()
        if changed or force:
            tree = self.span_tree
            tree.rows_changed()
            self._refresh_details()
        return changed

    # ---- status line ---------------------------------------------------------------------------

    def _events_per_second(self) -> float:
        now = time.monotonic()
        while self._rate and now - self._rate[0][0] > 2.0:
            self._rate.popleft()
        if not self._rate:
            return 0.0
        span = max(now - self._rate[0][0], 1 / TICK_HZ)
        return sum(n for _, n in self._rate) / max(span, 1.0)

    def status_text(self) -> Text:
        """The status line: live/paused, counts, sources."""
        store = self.store
        tree = self.span_tree
        out = Text(no_wrap=True, overflow="ellipsis")
        if self.paused:
            out.append(" ❚❚ PAUSED ", "bold reverse")
            if self.pending_spans:
                out.append(f" +{self.pending_spans:,}")
        elif self._loading:
            out.append(" ⟳ LOADING ", "bold reverse")
            done = self._load_progress()
            if done is not None:
                out.append(f" ~{done:.0%}")
        elif self.feed is None or self.feed.done:
            out.append(" ■ DONE ", "bold")
        else:
            out.append(" ● LIVE ", "bold")
        out.append(f"  {len(store):,} ev")
        rate = self._events_per_second()
        if rate:
            out.append(f" {rate:,.0f}/s")
        statuses = store.facets["status"]
        errors, blocked = statuses.get("error", 0), statuses.get("blocked", 0)
        out.append("  ✗ ", "bold")
        out.append(f"{errors:,}")
        out.append("  ⊘ ", "bold")
        out.append(f"{blocked:,}")
        if self.checker is not None:
            total = sum(getattr(self.checker, "counts", {}).values())
            out.append("  ⚠ ", "bold")
            out.append(f"{total:,}")
        if store.rejected:
            out.append(f"  bad {len(store.rejected):,}", "bold")
        if self._snapshot_prefixes:
            out.append("  ⟳ snapshot…", "bold")
        if self._filtering:
            out.append("  ⟳ searching…", "bold")
        elif self.view.filtering:
            out.append("  [filtered]", "italic")
        if self.grouped:
            out.append("  [grouped]", "italic")
        if tree.new_since_away and not tree.following:
            out.append(f"  ↓ {tree.new_since_away:,} new (end)", "bold reverse")
        sources = self._source_summary()
        if sources:
            out.append("  │ " + sources)
        return out

    def _load_progress(self) -> float | None:
        """How much of the files being loaded is in, estimated from their sizes and the mean
        length of the lines read so far (None for other sources)."""
        try:
            states = self.feed.states() if self.feed is not None else []
            if not states or any(getattr(st, "kind", "") != "file" for st in states):
                return None
            size = sum(os.path.getsize(str(st.origin)) for st in states)
        except Exception:  # a source that went away, an odd state: no estimate
            return None
        if self._mean_line is None:
            sample = [len(span.raw) + 1 for span in itertools.islice(self.store.events(), 1000)]
            if len(sample) < 1000:
                return None
            self._mean_line = sum(sample) / len(sample)
        lines = self.store.next_seq + len(self.store.rejected)
        return min(0.99, lines * self._mean_line / max(size, 1))

    def _source_summary(self) -> str:
        if self.feed is None:
            return ", ".join(clip(s, 40) for s in self.sources)
        parts = []
        try:
            states = self.feed.states()
        except Exception:  # a feed's state report must never take the UI down
            states = []
        for st in states:
            origin = getattr(st, "origin", "?")
            name = clip(os.path.basename(str(origin)) or str(origin), 30)
            state = sanitize(str(getattr(st, "state", "")))
            producers = getattr(st, "producers", 0)
            extra = f" ({producers} producers)" if state == "listening" and producers else ""
            parts.append(f"{name} {state}{extra}")
        return ", ".join(parts)

    def _update_status(self) -> None:
        text = self.status_text()
        if text != self._last_status:
            self._last_status = text
            self.status_bar.update(text)
        tree = self.span_tree
        empty = self._empty_message()
        if empty != tree.empty_message:
            tree.empty_message = empty
            tree.refresh()

    def _empty_message(self) -> list[str]:
        if len(self.view):
            return []
        if len(self.store):
            return ["Nothing matches the filters.", "", "c: clear filters   f: filter panel"]
        waiting = [
            getattr(st, "origin", "")
            for st in (self.feed.states() if self.feed is not None else [])
            if getattr(st, "state", "") == "waiting"
        ]
        lines = ["No events yet."]
        if waiting:
            lines = [f"Waiting for {clip(str(w), 70)} to appear." for w in waiting]
        if self.waiting_hint:
            lines += ["", *textwrap.wrap(self.waiting_hint, 72)]
        return lines

    # ---- details -------------------------------------------------------------------------------

    @property
    def details_open(self) -> bool:
        return self.details_pane.has_class("open")

    def _refresh_details(self) -> None:
        if not self.details_open:
            return
        node = self.span_tree.cursor_node
        if node is self.details_node and node is not None:
            return
        self._show_details(node)

    def _show_details(self, node: TopEntry | None) -> None:
        self.details_node = node
        findings = None
        if isinstance(node, Span) and self.checker is not None:
            findings = self.checker.findings_for(node.seq)
        self.details_pane.show(node, self.store, findings)

    @on(SpanTree.Highlighted)
    def _on_highlight(self, event: SpanTree.Highlighted) -> None:
        if self.details_open:
            self._show_details(event.node)

    @on(SpanTree.Selected)
    def _on_selected(self, event: SpanTree.Selected) -> None:
        pane = self.details_pane
        if pane.has_class("open") and event.node is self.details_node:
            pane.remove_class("open")
            self.details_node = None
            return
        pane.add_class("open")
        self._show_details(event.node)

    # ---- filters -------------------------------------------------------------------------------

    def _refresh_facets(self) -> None:
        self._last_facets = time.monotonic()
        self._facets_dirty = False
        wanted = self.wanted
        items = facet_items(
            self.store,
            wanted.filter,
            violations_only=wanted.violations_only,
            min_severity=wanted.min_severity,
            has_checker=self.checker is not None,
        )
        for facets in self.filter_panel.query(FacetList):  # none while the app shuts down
            facets.set_items(items)

    @property
    def wanted(self) -> Wanted:
        """The filter last asked for: the one being worked out, else the one shown."""
        if self._pending_filter is not None:
            return self._pending_filter
        view = self.view
        return Wanted(view.filter, view.violations_only, view.min_severity)

    def set_filter(self, flt: Filter | None = None, **kwargs: Any) -> None:
        """Apply a new filter and show the result.

        Over a big store (and without the checker's findings, which live on this thread) the
        change is worked out in a background thread from snapshots — the view's parent links, the
        search index, the list of resident spans — while the UI stays live; it is brought up to
        date with what arrived meanwhile and installed in one step. A newer change supersedes it:
        its result is dropped. Otherwise it is applied at once; a plain-text search reads the
        search index (paying only per hit) and tests one by one just the spans the index has not
        reached yet.
        """
        self._filter_generation += 1
        self._filtering = False
        self._pending_filter = None
        want = self.wanted
        wanted = Wanted(
            flt if flt is not None else want.filter,
            kwargs.get("violations_only", want.violations_only),
            kwargs.get("min_severity", want.min_severity),
        )
        background = (
            len(self.store) >= BACKGROUND_FILTER_MIN
            and not wanted.violations_only
            and not wanted.filter.empty
        )
        if background:
            self._filter_in_background(wanted)
            return
        flt = wanted.filter
        kwargs = {"violations_only": wanted.violations_only, "min_severity": wanted.min_severity}
        if not flt.text or wanted.violations_only:
            self._install_filter(flt, **kwargs)
            return
        pred = flt.predicate()
        found: set[int] = set()
        start = 0
        if not flt.regex and indexable(flt.text):
            found = self._indexed_matches(flt)
            start = self.search_index.next_seq
        found.update(span.seq for span in self._spans_from(start) if pred(span))
        self._install_filter(flt, matched=found, **kwargs)

    def _indexed_matches(self, flt: Filter) -> set[int]:
        """Seqs of the indexed spans that match `flt` (its text through the index)."""
        rest = msgspec.structs.replace(flt, text="")
        hits = self.search_index.search(flt.text)
        get = self.store.get
        if rest.empty:
            if not self.store.evicted:
                return set(hits)
            return {seq for seq in hits if get(seq) is not None}
        pred = rest.predicate()
        return {seq for seq in hits if (span := get(seq)) is not None and pred(span)}

    def _spans_from(self, start: int) -> list[Span]:
        """Resident spans from seq `start` on, in arrival order."""
        store = self.store
        if start <= store.first_seq:
            return list(store.events())
        get = store.get
        return [s for s in map(get, range(start, store.next_seq)) if s is not None]

    def _filter_in_background(self, wanted: Wanted) -> None:
        """Work a filter out in slices between which the UI stays live (see `set_filter`).

        Everything the work reads is taken here, at once: a copy of the view's links, the search
        index's texts (immutable strings), and the spans to test (facet fields never change after
        ingest). Ticks may ingest between two slices; what they add is left to the install. The
        resident spans are read lazily, slice by slice, from a store without retention (it only
        ever appends), and copied here from one with retention (eviction shifts it). (Slices on
        the app's own loop rather than a thread: a thread holding the GIL would make every turn
        of the UI wait for it.)
        """
        self._catch_up()
        view = self.view
        view.catch_up()
        generation = self._filter_generation
        self._pending_filter = wanted
        self._filtering = True
        flt = wanted.filter
        links = view.links.snapshot()
        texts: list[str] | None = None
        spans: Iterable[Span] = ()
        tail: list[Span] = []
        store = self.store
        resident = store.events() if store.max_events is None else list(store.events())
        if flt.text and not flt.regex and indexable(flt.text):
            texts = self.search_index.snapshot()
            tail = self._spans_from(self.search_index.next_seq)
            if not msgspec.structs.replace(flt, text="").empty:
                spans = resident
        else:
            spans = resident
        self._update_status()
        self._refresh_facets()
        self.run_worker(
            self._work_filter(generation, wanted, links, texts, spans, tail),
            group="filter",
            exclusive=True,
            exit_on_error=False,
        )

    async def _work_filter(
        self,
        generation: int,
        wanted: Wanted,
        links: Snapshot,
        texts: list[str] | None,
        spans: Iterable[Span],
        tail: list[Span],
    ) -> None:
        flt = wanted.filter
        builder = KeptBuilder(links)
        self.view.prepare_rebuild()
        deadline = time.perf_counter() + FILTER_SLICE_S

        async def turn(now: bool = False) -> bool:
            """Let the UI run when this slice is over; whether the work was superseded."""
            nonlocal deadline
            if now or time.perf_counter() > deadline:
                await asyncio.sleep(FILTER_YIELD_S)
                deadline = time.perf_counter() + FILTER_SLICE_S
            return generation != self._filter_generation

        def parts(items: Iterable[Any]) -> Iterator[list[Any]]:
            it = iter(items)
            return iter(lambda: list(itertools.islice(it, FILTER_PART)), [])

        if texts is not None:
            allowed: set[int] | None = None
            rest = msgspec.structs.replace(flt, text="")
            if not rest.empty:
                allowed = set()
                for part in parts(spans):
                    allowed |= matching_seqs(rest, part)
                    if await turn():
                        return
            findall = search_pattern(flt.text).findall
            store = self.store
            for text in texts:
                hits = list(map(int, findall(text)))
                if allowed is not None:
                    hits = [seq for seq in hits if seq in allowed]
                elif store.evicted:  # the index keeps lines of evicted spans for a while
                    get = store.get
                    hits = [seq for seq in hits if get(seq) is not None]
                for part in parts(hits):
                    builder.add(part, ordered=True)  # lines are in arrival order
                    if await turn():
                        return
            spans = tail
        for part in parts(spans):
            builder.add(matching_seqs(flt, part))
            if await turn():
                return
        if await turn(now=True):
            return
        result = builder.result()
        if not await turn(now=True):
            self._filter_ready(generation, wanted, result)

    def _filter_ready(self, generation: int, wanted: Wanted, result: Kept) -> None:
        if generation != self._filter_generation:
            return  # superseded by a newer change: never shown
        self._filtering = False
        self._pending_filter = None
        self._install_filter(
            wanted.filter,
            violations_only=wanted.violations_only,
            min_severity=wanted.min_severity,
            prepared=result,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "filter" and event.state == WorkerState.ERROR:
            self._filtering = False
            self._pending_filter = None
            self._update_status()
            self._refresh_facets()
            self.notify(
                sanitize(str(event.worker.error)),
                title="Search failed",
                severity="error",
                markup=False,
            )

    def _install_filter(self, flt: Filter | None = None, **kwargs: Any) -> None:
        self._catch_up()
        self.view.set_filter(flt, **kwargs)
        self.grouped_view.invalidate()
        tree = self.span_tree
        self.rows.rebuild()
        self._frozen_at = 0.0
        self._maybe_freeze()
        tree.rows_changed()
        self._refresh_details()
        self._refresh_facets()
        self._update_status()

    def _toggle_value(self, facet: str, value: str) -> None:
        f = self.wanted.filter
        field = {"status": "statuses", "layer": "layers", "agent": "agents", "label": "labels"}
        if facet in field:
            current: frozenset[str] = getattr(f, field[facet])
            new = current - {value} if value in current else current | {value}
            self.set_filter(Filter(**{**_fields(f), field[facet]: new}))
        elif facet == "regex":
            self._set_text(f.text, not f.regex)
        elif facet == "violations":
            self.action_violations_only()
        elif facet == "severity":
            i = SEVERITIES.index(self.wanted.min_severity)
            self.set_filter(min_severity=SEVERITIES[(i + 1) % len(SEVERITIES)])

    @on(FacetList.Toggled)
    def _on_facet(self, event: FacetList.Toggled) -> None:
        self._toggle_value(event.facet, event.value)

    def _set_text(self, text: str, regex: bool) -> None:
        if regex and text:
            import re

            try:
                re.compile(text)
            except re.error as exc:
                self.notify(
                    f"{sanitize(text)}: {exc}", title="Bad regex", severity="error", markup=False
                )
                return
        self.set_filter(Filter(**{**_fields(self.wanted.filter), "text": text, "regex": regex}))

    @on(Input.Changed, "#search")
    def _on_search_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        value = event.value
        self._search_timer = self.set_timer(
            0.3, lambda: self._set_text(value, self.wanted.filter.regex), name="search-debounce"
        )

    @on(Input.Submitted, "#search")
    def _on_search_submitted(self, event: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._set_text(event.value, self.wanted.filter.regex)
        self.span_tree.focus()

    def _open_filters(self) -> FilterPanel:
        panel = self.filter_panel
        panel.add_class("open")
        self._refresh_facets()
        return panel

    # ---- actions -------------------------------------------------------------------------------

    def action_pause(self) -> None:
        """Pause or resume the view; ingest continues either way."""
        self.paused = not self.paused
        if not self.paused:
            self._catch_up()
            self._rows_changed(force=True)
        self._update_status()

    def _catch_up(self) -> None:
        """Give the view the batches held while paused (resume, or a change that shows the store
        as it is: a filter, expand/collapse all). The view stays paused for what comes next."""
        pending, self.pending = self.pending, []
        self.pending_spans = 0
        for change in pending:
            self.view.apply(change)
        if pending:
            self.grouped_view.invalidate()
        findings, self._pending_findings = self._pending_findings, set()
        if findings:
            self._refresh_findings(findings)

    def action_filters(self) -> None:
        panel = self.filter_panel
        if panel.has_class("open"):
            panel.remove_class("open")
            self.span_tree.focus()
        else:
            self._open_filters()
            self.filter_panel.query_one(FacetList).focus()

    def action_search(self) -> None:
        self._open_filters()
        self.filter_panel.query_one("#search", Input).focus()

    def action_errors_only(self) -> None:
        self._toggle_value("status", "error")

    def action_blocked_only(self) -> None:
        self._toggle_value("status", "blocked")

    def action_violations_only(self) -> None:
        violations = self.wanted.violations_only
        if self.checker is None and not violations:
            self.notify("No contracts are loaded, so there are no findings.", markup=False)
        self.set_filter(violations_only=not violations)

    def action_layer(self, number: int) -> None:
        if 1 <= number <= len(LAYERS):
            self._toggle_value("layer", LAYERS[number - 1])

    def action_agent_filter(self) -> None:
        self._open_filters()
        self.filter_panel.query_one(FacetList).focus_facet("agent")

    def action_label_filter(self) -> None:
        self._open_filters()
        self.filter_panel.query_one(FacetList).focus_facet("label")

    def action_clear_filters(self) -> None:
        search = self.filter_panel.query_one("#search", Input)
        if self._search_timer is not None:
            self._search_timer.stop()
        with search.prevent(Input.Changed):
            search.value = ""
        self.set_filter(Filter(), violations_only=False)

    def action_expand_all(self) -> None:
        self._catch_up()
        self.rows.set_all(not self.rows.default_open)
        tree = self.span_tree
        self.rows.rebuild()
        tree.rows_changed()

    def _goto_next(self, candidates: Iterable[Span], direction: int, what: str) -> None:
        tree = self.span_tree
        current = tree.cursor_node
        here = current.seq if isinstance(current, Span) else -1
        ordered = sorted((s for s in candidates if self.view.shows(s)), key=lambda s: s.seq)
        if not ordered:
            self.notify(f"No {what} in view.", markup=False)
            return
        if direction > 0:
            target = next((s for s in ordered if s.seq > here), ordered[0])
        else:
            target = next((s for s in reversed(ordered) if s.seq < here), ordered[-1])
        tree.go_to_node(target)

    def action_next_finding(self, direction: int) -> None:
        if self.checker is None:
            self.notify("No contracts are loaded, so there are no findings.", markup=False)
            return
        seqs = {f.seq for f in self.checker.all()}
        spans = [s for s in (self.store.get(q) for q in seqs) if s is not None]
        self._goto_next(spans, direction, "findings")

    def action_next_error(self) -> None:
        self._goto_next((s for s in self.store.events() if s.status == "error"), 1, "errors")

    @property
    def rows(self) -> TreeView | GroupedView:
        """What the span tree shows: the tree, or the grouped view."""
        return self.grouped_view if self.grouped else self.view

    def action_grouped(self) -> None:
        """Switch between the span tree and the grouped view (layer → operation → spans)."""
        self.grouped = not self.grouped
        tree = self.span_tree
        if self.grouped:
            self.grouped_view.invalidate()
        tree.view = self.rows
        tree.cursor = 0
        tree.cursor_node = None
        tree.following = not self.grouped
        self.rows.rebuild()
        tree.rows_changed()
        if self.grouped:
            tree.go_to(0)
        self._update_status()

    def action_stats(self) -> None:
        result = compute(self.view.visible_spans(), bad_lines=len(self.store.rejected))
        result.evicted = self.store.evicted
        title = "Stats" + (" (filtered view)" if self.view.filtering else "")
        self.push_screen(StatsScreen(title, stats_lines(result)))

    def action_bad_lines(self) -> None:
        n = len(self.store.rejected)
        self.push_screen(BadLinesScreen(f"Bad lines ({n:,})", bad_line_lines(self.store)))

    def action_help(self) -> None:
        ids: list[tuple[str, str]] = []
        for binding in [*self.BINDINGS, *SpanTree.BINDINGS]:
            if isinstance(binding, Binding) and binding.id:
                ids.append((binding.id, binding.key))
        self.push_screen(HelpScreen("Help", help_lines(self.KEY_HELP, ids)))

    def action_snapshot(self) -> None:
        self.take_snapshot()

    def take_snapshot(self) -> list[Path]:
        """Start writing the snapshot files of the current view; return the paths they will have.

        The view is captured at once (screenshot, selection, its spans). The `.txt` tree is
        formatted on this thread — it walks the store — in slices between which the UI stays
        live, with ingest held so the store does not change under the walk. A worker thread then
        writes the files (each atomically) from bytes and spans alone, and a notification names
        them when they are there (or says why not).
        """
        prefix = snapshot_prefix(self.snapshot_dir, taken=self._snapshot_prefixes)
        svg = self.export_screenshot(title="tracetui")
        shown = self.view.selection()
        spans = list(self.view.visible_spans())
        matched = None if shown.matched is None else set(shown.matched)
        context = set(shown.context)
        if self.view.watermark < self.store.next_seq or self.store.evicted:
            # Paused (later spans are not on screen) or with retention (some shown spans may be
            # gone): the tree holds exactly the spans the .jsonl does.
            keep = {span.seq for span in spans}
            matched = keep if matched is None else matched & keep
            context &= keep
        selection = Selection(top=shown.top, matched=matched, context=context)
        self._snapshot_prefixes.add(prefix)
        self._holding += 1
        self._update_status()
        self.run_worker(
            self._snapshot_text(prefix, selection, spans, svg),
            group="snapshot",
            exit_on_error=False,
        )
        return snapshot_paths(prefix)

    async def _snapshot_text(
        self, prefix: Path, selection: Selection, spans: list[Span], svg: str
    ) -> None:
        chunks: list[bytes] = []
        try:
            lines = text_lines(self.store, selection)
            while True:
                deadline = time.perf_counter() + SNAPSHOT_SLICE_S
                batch: list[bytes] = []
                for line in lines:
                    batch.append(line)
                    if len(batch) >= 256 and time.perf_counter() > deadline:
                        break
                if not batch:
                    break
                chunks.append(b"".join(batch))
                await asyncio.sleep(0)
        except Exception as exc:
            self._snapshot_done(prefix, [], exc)
            return
        finally:
            self._holding -= 1

        def write() -> None:
            try:
                paths = write_files(prefix, (span.raw + b"\n" for span in spans), chunks, svg)
            except Exception as exc:  # reported, never lost: the UI names the failure
                self.call_from_thread(self._snapshot_done, prefix, [], exc)
                return
            self.call_from_thread(self._snapshot_done, prefix, paths, None)

        self.run_worker(write, thread=True, group="snapshot-write", exit_on_error=False)

    def _snapshot_done(self, prefix: Path, paths: list[Path], error: Exception | None) -> None:
        self._snapshot_prefixes.discard(prefix)
        self._update_status()
        if error is not None:
            reason = error.strerror if isinstance(error, OSError) else None
            self.notify(
                f"{sanitize(str(self.snapshot_dir))}: {reason or sanitize(str(error))}",
                title="Snapshot failed",
                severity="error",
                markup=False,
            )
            return
        names = ", ".join(sanitize(p.name) for p in paths)
        self.notify(
            f"{names}\nin {sanitize(str(prefix.parent))}", title="Snapshot written", markup=False
        )

    def action_next_theme(self) -> None:
        names = [tf.theme.name for tf in self.themes] or ["textual-dark", "textual-light"]
        i = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(i + 1) % len(names)]
        self.notify(f"Theme: {sanitize(self.theme)}", markup=False, timeout=2)

    def action_close_panels(self) -> None:
        focused = self.focused
        if isinstance(focused, Input):
            self.span_tree.focus()
            return
        pane = self.details_pane
        if pane.has_class("open"):
            pane.remove_class("open")
            self.details_node = None
            return
        panel = self.filter_panel
        if panel.has_class("open"):
            panel.remove_class("open")
        self.span_tree.focus()

    # ---- command palette -----------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = [
            ("Pause / resume", "Freeze the view; ingest continues", self.action_pause),
            ("Filter panel", "Show or hide the filters", self.action_filters),
            ("Search", "Search operation, component and summaries", self.action_search),
            ("Errors only", "Toggle status=error", self.action_errors_only),
            ("Blocked only", "Toggle status=blocked", self.action_blocked_only),
            ("Violations only", "Only spans with contract findings", self.action_violations_only),
            ("Agent filter", "Choose agents in the panel", self.action_agent_filter),
            ("Label filter", "Choose agent labels in the panel", self.action_label_filter),
            ("Clear filters", "Show everything", self.action_clear_filters),
            (
                "Next finding",
                "Jump to the next span with findings",
                lambda: self.action_next_finding(1),
            ),
            (
                "Previous finding",
                "Jump to the previous span with findings",
                lambda: self.action_next_finding(-1),
            ),
            ("Next error", "Jump to the next error", self.action_next_error),
            ("Expand / collapse all", "Open or close every node", self.action_expand_all),
            ("Grouped view", "Layer → operation → spans, with counts", self.action_grouped),
            ("Stats", "Per-layer figures of the current view", self.action_stats),
            ("Bad lines", "Lines that could not be read", self.action_bad_lines),
            ("Snapshot", "Write .jsonl, .txt and .svg of the view", self.action_snapshot),
            ("Next theme", "Cycle through the themes", self.action_next_theme),
            ("Help", "Every key", self.action_help),
        ]
        for i, name in enumerate(LAYERS, start=1):
            commands.append(
                (
                    f"Layer {name}",
                    f"Toggle the {name} layer filter",
                    functools.partial(self.action_layer, i),
                )
            )
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)


def _fields(flt: Filter) -> dict[str, Any]:
    return {
        "layers": flt.layers,
        "statuses": flt.statuses,
        "agents": flt.agents,
        "labels": flt.labels,
        "text": flt.text,
        "regex": flt.regex,
    }


def theme_files() -> list[ThemeFile]:
    """Themes available to `--theme` (built-in and user)."""
    return discover()[0]
