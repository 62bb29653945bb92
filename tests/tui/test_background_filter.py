"""Filter changes over a big store run in slices on the app's loop: the UI answers keys while
they run, a newer change supersedes an older one (whose result is never shown), and what
arrived meanwhile is in the result. The threshold and slice sizes are lowered so that a small
store takes the same path in several slices."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_view_lazy import oracle, shown
from tui_helpers import BatchFeed, event, status_line, trace_tree, tree_screen, wait_until

import tracetui.tui.app as app_module
from tracetui.query import Filter
from tracetui.store import TraceStore
from tracetui.tui.app import TraceApp
from tracetui.tui.span_tree import SpanTree

SIZE = (100, 30)


@pytest.fixture
def sliced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every filter change goes to the background and yields to the UI after each span."""
    monkeypatch.setattr(app_module, "BACKGROUND_FILTER_MIN", 1)
    monkeypatch.setattr(app_module, "FILTER_PART", 1)
    monkeypatch.setattr(app_module, "FILTER_SLICE_S", 0.0)
    monkeypatch.setattr(app_module, "FILTER_YIELD_S", 0.005)


def push_trees(feed: BatchFeed, first: int, count: int) -> None:
    for n in range(first, first + count):
        feed.push(trace_tree(n, start=1000.0 + n))


def expected(store: TraceStore, flt: Filter) -> set[int]:
    pred = flt.predicate()
    return {s.seq for s in store.events() if pred(s)}


async def settle(pilot, app: TraceApp) -> None:
    await pilot.pause(0.15)
    await wait_until(pilot, lambda: not app.feed.queue and not app._filtering)
    await pilot.pause(0.05)


async def test_a_key_pressed_while_a_search_runs_is_handled_before_it_ends(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, sliced: None
) -> None:
    app = TraceApp(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 400)  # 400 matches, a turn of the UI after each: 2 s at least
        await settle(pilot, app)
        tree = app.query_one(SpanTree)
        await pilot.press("home")
        assert tree.cursor == 0
        app.set_filter(Filter.make(text="L3→L2"))
        assert app._filtering
        assert "searching" in status_line(app)
        await pilot.press("down", "down")
        assert tree.cursor == 2
        assert app._filtering  # the keys were handled while the search was still running
        await settle(pilot, app)
        assert app.view.matched == expected(store, Filter.make(text="L3→L2"))
        assert "[filtered]" in status_line(app)


async def test_a_newer_search_supersedes_an_older_one_whose_result_never_shows(
    store: TraceStore,
    feed: BatchFeed,
    no_user_themes: Path,
    sliced: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = TraceApp(store, feed)
    installed: list[Filter | None] = []
    original = app._install_filter

    def spy(flt: Filter | None = None, **kwargs: object) -> None:
        installed.append(flt)
        original(flt, **kwargs)

    monkeypatch.setattr(app, "_install_filter", spy)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 60)
        await settle(pilot, app)
        app.set_filter(Filter.make(text="#1"))
        await pilot.pause(0.02)
        assert app._filtering
        app.set_filter(Filter.make(text="#2"))
        await settle(pilot, app)
        assert [f.text for f in installed if f is not None] == ["#2"]
        assert app.view.filter.text == "#2"
        assert app.view.matched == expected(store, Filter.make(text="#2"))
        shown = [r for r in tree_screen(app) if r]
        assert shown and all("#2" in row for row in shown if "L3→L2" in row)


async def test_filter_keys_pressed_during_a_change_add_up(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, sliced: None
) -> None:
    """`e` then `b` while `e` is still being worked out: both statuses are in the filter, and the
    panel shows what was asked for meanwhile."""
    app = TraceApp(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 40)
        await settle(pilot, app)
        await pilot.press("e")
        assert app._filtering
        await pilot.press("b")
        assert app.wanted.filter.statuses == {"error", "blocked"}
        await settle(pilot, app)
        flt = app.view.filter
        assert flt.statuses == {"error", "blocked"}
        assert app.view.matched == expected(store, flt)


async def test_spans_arriving_during_a_search_are_in_its_result(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, sliced: None
) -> None:
    app = TraceApp(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 40)
        await settle(pilot, app)
        flt = Filter.make(text="#4")
        app.set_filter(flt)
        assert app._filtering
        push_trees(feed, 40, 10)  # trees #40 … #49 arrive while it runs
        await wait_until(pilot, lambda: not feed.queue)
        await settle(pilot, app)
        assert app.view.matched == expected(store, flt)
        rows = [r for r in tree_screen(app) if "L3→L2" in r]
        assert [r.split("#")[1].split()[0] for r in rows] == ["4", *map(str, range(40, 50))]


async def test_a_paused_view_catches_up_when_a_background_filter_lands(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, sliced: None
) -> None:
    app = TraceApp(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 10)
        await settle(pilot, app)
        await pilot.press("space")
        push_trees(feed, 10, 5)
        await wait_until(pilot, lambda: not feed.queue)
        await pilot.pause(0.1)
        assert "L3→L2 #14" not in "\n".join(tree_screen(app))  # paused: not shown yet
        app.set_filter(Filter.make(statuses=["error"]))
        await settle(pilot, app)
        flt = app.view.filter
        assert app.view.matched == expected(store, flt)  # the filter shows the store as it is
        assert "#11" in "\n".join(tree_screen(app))  # tree 11 has an error root
        assert app.paused


async def test_a_background_filter_under_retention_counts_only_what_is_resident(
    no_user_themes: Path, sliced: None
) -> None:
    """Trees evicted while the filter is worked out leave no rows, counts or matches behind."""
    store = TraceStore(max_events=200)
    feed = BatchFeed(store)
    app = TraceApp(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 50)
        await settle(pilot, app)
        flt = Filter.make(statuses=["error", "blocked"])
        app.set_filter(flt)
        assert app._filtering
        push_trees(feed, 50, 30)  # evicts the oldest 30 trees while it runs
        await wait_until(pilot, lambda: not feed.queue)
        await settle(pilot, app)
        assert store.evicted > 0
        resident = expected(store, flt)
        assert app.view.matched is not None
        assert app.view.matched & {s.seq for s in store.events()} == resident
        shown = {row.split("#")[1].split()[0] for row in tree_screen(app) if "L3→L2 #" in row}
        roots = {s.trace_id.split("_")[1] for s in store.events() if s.trace_id.startswith("alt_")}
        assert shown <= roots  # no row of an evicted tree
        kept_rows = len(app.view)
        view_rows = sum(1 for _ in app.view.rows(0, kept_rows))
        assert kept_rows == view_rows


def parents_first_interleaved(n: int, lag: int) -> list[bytes]:
    """Roots written before their children, which arrive `lag` roots later (overlapping
    traces, as many concurrent agents write them); only the children say "needle"."""
    out = []
    for k in range(n):
        out.append(event(f"r{k}", None, op="root", inp=f"job {k}", ts=1000.0 + k))
        if k >= lag:
            j = k - lag
            out.append(event(f"c{j}", f"r{j}", op="step", inp=f"needle {j}", ts=1000.0 + k))
    return out


@pytest.mark.parametrize("tail", [0, 1])
@pytest.mark.parametrize("lag", [3, 20])
async def test_a_search_under_retention_keeps_every_resident_match(
    no_user_themes: Path, sliced: None, lag: int, tail: int
) -> None:
    """The search index still holds lines of evicted spans: they must neither count nor send a
    walk up the links below their start (which once marked the newest spans instead)."""
    store = TraceStore(max_events=100)
    feed = BatchFeed(store)
    app = TraceApp(store, feed)
    async with app.run_test(size=(100, 40)) as pilot:
        lines = parents_first_interleaved(400, lag) + [event("tail", None, op="other")] * tail
        for i in range(0, len(lines), 50):
            feed.push(lines[i : i + 50])
            await pilot.pause(0.05)
        await wait_until(pilot, lambda: not feed.queue)
        await pilot.pause(0.2)
        flt = Filter.make(text="needle")
        app.set_filter(flt)
        await wait_until(pilot, lambda: not app._filtering)
        await pilot.pause(0.1)
        view = app.view
        assert shown(view) == oracle(store, flt, view.toggled, view.default_open)
