"""Lazy rows: a tree's block is built only when it is drawn, its row count comes from counts.

Every check compares the row at each index (which goes through the per-tree row counts) with an
oracle built independently from the store with `query.select` and a plain walk, so a wrong count
anywhere shows up as rows shifted from that tree on.
"""

from __future__ import annotations

import random

import pytest
from tui_helpers import BatchFeed, event, trace_tree

from tracetui.query import Filter, Selection, select
from tracetui.store import Change, TopEntry, TraceStore
from tracetui.tui.view import TreeView, key_of

Shown = list[tuple[int, str]]

FILTERS = [
    Filter(),
    Filter.make(statuses=["error"]),
    Filter.make(statuses=["blocked", "error"]),
    Filter.make(layers=["memory"]),
    Filter.make(text="refactor"),
]


def name(node: TopEntry) -> str:
    return "?" + node if isinstance(node, str) else node.trace_id


def oracle(store: TraceStore, flt: Filter, toggled: set[object], default_open: bool) -> Shown:
    """The rows a view should show, walked from scratch."""
    if flt.empty:
        sel = Selection(top=list(store.top()), matched=None, context=set())
    else:
        sel = select(store, flt)
    out: Shown = []
    for top in sel.top:
        stack: list[tuple[int, TopEntry]] = [(0, top)]
        while stack:
            depth, node = stack.pop()
            out.append((depth, name(node)))
            if (key_of(node) in toggled) == default_open:
                continue
            kids = [k for k in store.children(node) if sel.shows(k)]
            stack.extend((depth + 1, k) for k in reversed(kids))
    return out


def shown(view: TreeView) -> Shown:
    """Rows by index (each lookup goes through the row counts), checked against `rows()`."""
    by_index = []
    for i in range(len(view)):
        row = view.row(i)
        assert row is not None, f"row {i} of {len(view)} missing"
        by_index.append((row[0], name(row[1])))
    assert view.row(len(view)) is None
    by_walk = [(d, name(n)) for _, (d, n) in view.rows(0, len(view))]
    assert by_walk == by_index
    return by_index


def lines(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = [line for n in range(24) for line in trace_tree(n, start=1000.0 + n)]
    out += [
        event("orphan", "never"),
        event("orphan2", "never", status="error"),
        event("dup", None),
        event("dup", None, status="error"),
        event("dupkid", "dup", layer="memory"),
        event("cy1", "cy2"),
        event("cy2", "cy1", status="error"),
        event("self", "self"),
        event("late_kid", "late_root", inp="refactor", status="error"),
    ]
    if seed % 2:
        rng.shuffle(out)
    out.append(event("late_root", None))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_rows_by_index_match_a_fresh_walk_through_batches_filters_and_toggles(seed: int) -> None:
    rng = random.Random(seed)
    data = lines(seed)
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    flt = Filter()
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 3, 9, 25])
        feed.push(data[pos : pos + size])
        pos += size
        view.apply(feed.drain())
        move = rng.random()
        if move < 0.2:
            flt = rng.choice(FILTERS)
            view.set_filter(flt)
        elif move < 0.45 and len(view):
            view.rebuild()
            row = view.row(rng.randrange(len(view)))
            assert row is not None
            view.toggle(row[1])
        elif move < 0.5:
            view.set_all(not view.default_open)
        view.rebuild()
        assert shown(view) == oracle(store, flt, view.toggled, view.default_open)


@pytest.mark.parametrize("seed", range(4))
def test_a_view_behind_the_store_shows_the_store_as_of_its_last_batch(seed: int) -> None:
    """Paused: batches reach the store but not the view; rows built meanwhile (a tree scrolled
    into view, a node toggled) still show the store as it was, and resuming catches up."""
    rng = random.Random(seed)
    data = lines(seed)
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    then = TraceStore()  # the store as the view knows it
    then_feed = BatchFeed(then)
    flt = rng.choice(FILTERS[:3])
    view.set_filter(flt)
    pending: list[tuple[list[bytes], Change]] = []
    pos = 0
    while pos < len(data):
        size = rng.choice([2, 5, 11])
        batch = data[pos : pos + size]
        pos += size
        feed.push(batch)
        pending.append((batch, feed.drain()))
        if rng.random() < 0.6:
            continue  # paused: the view lags
        view.invalidate() if rng.random() < 0.1 else None
        for old, change in pending:
            then_feed.push(old)
            then_feed.drain()
            view.apply(change)
        pending = []
        view.rebuild()
        assert shown(view) == oracle(then, flt, view.toggled, view.default_open)
    for old, change in pending:
        then_feed.push(old)
        then_feed.drain()
        view.apply(change)
    view.rebuild()
    assert shown(view) == oracle(store, flt, view.toggled, view.default_open)


@pytest.mark.parametrize("seed", range(4))
def test_toggles_while_behind_keep_rows_and_counts_in_step(seed: int) -> None:
    rng = random.Random(seed)
    store = TraceStore()
    feed = BatchFeed(store)
    then = TraceStore()
    then_feed = BatchFeed(then)
    first = [line for n in range(8) for line in trace_tree(n, start=1000.0 + n)]
    first += [event("w1", "wp"), event("w2", "wp"), event("w3", "w1")]  # waiting for "wp"
    feed.push(first)
    then_feed.push(first)
    then_feed.drain()
    view = TreeView(store)
    view.apply(feed.drain())
    view.rebuild()
    later: list[bytes] = []
    for n in range(8):  # more children for the same trees, and trees adopted by new parents
        later.append(event(f"extra_{n}", f"foc_{n}", layer="memory", ts=1000.5 + n))
    later += [event("kid_of_new", "new_root"), event("new_root", None)]
    later.append(event("wp", "alt_0"))  # the placeholder's tree joins another one
    feed.push(later)
    change = feed.drain()  # paused: the view does not get it yet
    for step in range(14):
        where = [i for i, (_, n) in enumerate(shown(view)) if n == "w1"]  # hidden when collapsed
        row = view.row(where[0] if where and step % 3 == 0 else rng.randrange(len(view)))
        assert row is not None
        view.toggle(row[1])
        view.rebuild()
        assert shown(view) == oracle(then, Filter(), view.toggled, view.default_open)
    view.apply(change)
    view.rebuild()
    assert shown(view) == oracle(store, Filter(), view.toggled, view.default_open)


@pytest.mark.parametrize("max_events", [40, 90])
def test_retention_keeps_counts_right(max_events: int) -> None:
    store = TraceStore(max_events=max_events)
    feed = BatchFeed(store)
    view = TreeView(store)
    data = lines(3) * 3
    for i in range(0, len(data), 7):
        feed.push(data[i : i + 7])
        view.apply(feed.drain())
        view.rebuild()
        assert shown(view) == oracle(store, Filter(), view.toggled, True)
    flt = Filter.make(statuses=["error"])
    view.set_filter(flt)
    for i in range(0, len(data), 5):
        feed.push(data[i : i + 5])
        view.apply(feed.drain())
        view.rebuild()
        assert shown(view) == oracle(store, flt, view.toggled, True)


def test_a_tree_hidden_by_the_filter_that_grows_shows_its_new_spans_when_cleared() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    feed.push([event("a", None), event("b", None, status="error")])
    view.apply(feed.drain())
    view.rebuild()
    assert shown(view) == [(0, "a"), (0, "b")]
    view.set_filter(Filter.make(statuses=["error"]))
    view.rebuild()
    assert shown(view) == [(0, "b")]
    feed.push([event("a1", "a")])
    view.apply(feed.drain())
    view.rebuild()
    view.set_filter(Filter())
    view.rebuild()
    assert shown(view) == [(0, "a"), (1, "a1"), (0, "b")]


def test_only_the_trees_drawn_get_their_rows_built() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    for n in range(200):
        feed.push(trace_tree(n, start=1000.0 + n))
    view.apply(feed.drain())
    view.rebuild()
    assert len(view) == 200 * 4
    assert list(view.rows(len(view) - 8, len(view)))  # the screen at the bottom
    assert len(view._all_blocks) <= 3
    view.set_filter(Filter.make(statuses=["blocked"]))
    view.rebuild()
    assert len(view) == (200 // 3 + (200 % 3 > 2)) * 2
    assert len(view._blocks) == 0
