"""The tree view model: rows from the store, kept up to date batch by batch."""

from __future__ import annotations

import random

import pytest
from tui_helpers import BatchFeed, event, trace_tree

from tracetui.model import Span
from tracetui.query import Filter
from tracetui.store import TraceStore
from tracetui.tui.view import TreeView, key_of


def labels(view: TreeView) -> list[str]:
    out = []
    for _, (depth, node) in view.rows(0, len(view)):
        name = node if isinstance(node, str) else node.trace_id
        out.append("  " * depth + ("?" if isinstance(node, str) else "") + name)
    return out


def test_children_first_wait_under_placeholder_then_parent_takes_its_place() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    feed.push([event("c1", "root"), event("c2", "root")])
    view.apply(feed.drain())
    view.rebuild()
    assert labels(view) == ["?root", "  c1", "  c2"]
    feed.push([event("root", None)])
    view.apply(feed.drain())
    view.rebuild()
    assert labels(view) == ["root", "  c1", "  c2"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("batch", [1, 7, 60])
@pytest.mark.parametrize("statuses", [(), ("error", "blocked")])
@pytest.mark.parametrize("max_events", [None, 60])
def test_incremental_batches_give_the_same_rows_as_one_full_build(
    seed: int, batch: int, statuses: tuple[str, ...], max_events: int | None
) -> None:
    rng = random.Random(seed)
    lines = [line for n in range(30) for line in trace_tree(n, start=1000.0 + n)]
    if seed % 2:
        rng.shuffle(lines)  # any arrival order, not only children first
    lines += [event("orphan", "never"), event("dup", None), event("dup", None)]
    store = TraceStore(max_events=max_events)
    feed = BatchFeed(store)
    live = TreeView(store)
    live.set_filter(Filter.make(statuses=statuses))
    for i in range(0, len(lines), batch):
        feed.push(lines[i : i + batch])
        live.apply(feed.drain())
        live.rebuild()
        if i % 9 == 0:  # clear the filter and set it again (cached unfiltered rows reused)
            live.set_filter(Filter())
            live.rebuild()
            live.set_filter(Filter.make(statuses=statuses))
            live.rebuild()
        if i % 5 == 0 and len(live):
            row = live.row(len(live) // 2)
            assert row is not None
            live.toggle(row[1])  # collapse or expand something along the way
            live.rebuild()
        fresh = TreeView(store)
        fresh.set_filter(Filter.make(statuses=statuses))
        fresh.toggled = set(live.toggled)
        fresh.rebuild()
        assert labels(live) == labels(fresh)
    assert len(live) > 0


def test_filter_keeps_ancestors_as_context_and_hides_other_trees() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    for n in range(4):
        feed.push(trace_tree(n, start=1000.0 + n))
    feed.drain()
    view = TreeView(store)
    view.set_filter(Filter.make(statuses=["blocked"]))
    view.rebuild()
    # Tree 2 is the only one with a blocked span (its focus gate); the root is context.
    assert labels(view) == ["alt_2", "  foc_2"]
    root = store.by_id["alt_2"]
    assert view.is_context(root)
    assert not view.is_context(store.by_id["foc_2"])


def test_collapse_one_node_and_expand_collapse_all() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    feed.push(trace_tree(0) + trace_tree(1, start=2000.0))
    feed.drain()
    view = TreeView(store)
    view.rebuild()
    assert len(view) == 8
    view.toggle(store.by_id["foc_0"])
    view.rebuild()
    assert labels(view)[:3] == ["alt_0", "  foc_0", "alt_1"]
    view.set_all(False)
    view.rebuild()
    assert labels(view) == ["alt_0", "alt_1"]
    mem = store.by_id["mem_1"]
    view.reveal(mem)
    view.rebuild()
    index = view.index_of(mem)
    assert index is not None
    row = view.row(index)
    assert row is not None and isinstance(row[1], Span) and key_of(row[1]) == mem.seq
