"""The view's parent links (`tracetui.tui.links`): arrays indexed by seq must say what the store
says — parent and tree of every span — under any arrival order, placeholders adopted late,
duplicates, cycles and retention; and a view behind the store (paused) must say what a store
holding only the batches it was given would say."""

from __future__ import annotations

import random

import pytest
from tui_helpers import BatchFeed, event, trace_tree

from tracetui.query import Filter, select
from tracetui.store import Change, TraceStore
from tracetui.tui.links import Links, kept
from tracetui.tui.view import TreeView, key_of


def lines(seed: int, trees: int = 30) -> list[bytes]:
    rng = random.Random(seed)
    out = [line for n in range(trees) for line in trace_tree(n, start=1000.0 + n)]
    out += [
        event("orphan", "never"),
        event("dup", None),
        event("dup", None, status="error"),
        event("dupkid", "dup", layer="memory"),
        event("cy1", "cy2"),
        event("cy2", "cy1", status="error"),
        event("self", "self"),
        event("deep3", "deep2"),
        event("deep2", "deep1"),
        event("late_kid", "late_root", inp="refactor", status="error"),
    ]
    if seed % 3:
        rng.shuffle(out)
    out += [event("deep1", "deep0"), event("late_root", None), event("deep0", None)]
    return out


def check_against_store(view: TreeView, store: TraceStore) -> None:
    """Every resident span: the links give the store's parent and the store's tree."""
    links = view.links
    for span in store.events():
        parent = store.parent(span)
        assert links.parent_of(span.seq) == (parent.seq if parent is not None else -1), span
        assert links.key(span.seq) == key_of(store.top_of(span)), span


def batches(data: list[bytes], rng: random.Random) -> list[list[bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 2, 5, 13, 40])
        out.append(data[pos : pos + size])
        pos += size
    return out


@pytest.mark.parametrize("seed", range(8))
def test_links_follow_the_store_through_any_arrival_order(seed: int) -> None:
    rng = random.Random(seed)
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    adopted = 0
    for batch in batches(lines(seed), rng):
        feed.push(batch)
        change = feed.drain()
        adopted += len(change.adopted)
        view.apply(change)
        check_against_store(view, store)
    assert adopted > 0  # the data did make placeholders get adopted
    assert not view.links.waiting.keys() - {"never"}  # only the real orphan still waits


@pytest.mark.parametrize("seed", range(4))
def test_links_built_at_once_equal_links_built_batch_by_batch(seed: int) -> None:
    rng = random.Random(seed)
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    for batch in batches(lines(seed), rng):
        feed.push(batch)
        view.apply(feed.drain())
    fresh = Links()
    fresh.reset(store)
    for span in store.events():
        assert fresh.parent_of(span.seq) == view.links.parent_of(span.seq)
        assert fresh.key(span.seq) == view.links.key(span.seq)


@pytest.mark.parametrize("seed", range(4))
def test_links_stay_right_while_retention_evicts_whole_trees(seed: int) -> None:
    rng = random.Random(seed)
    data = [line for n in range(120) for line in trace_tree(n, start=1000.0 + n)]
    data += lines(seed, trees=0)
    store = TraceStore(max_events=60)
    feed = BatchFeed(store)
    view = TreeView(store)
    for batch in batches(data, rng):
        feed.push(batch)
        view.apply(feed.drain())
        check_against_store(view, store)
        assert sum(view._all_counts.values()) == len(store)
    assert store.evicted > 0
    assert view.links.base > 0  # the arrays let go of what retention dropped
    assert len(view.links.head) < store.next_seq


@pytest.mark.parametrize("seed", range(4))
def test_a_view_behind_the_store_links_as_a_store_of_its_batches_would(seed: int) -> None:
    rng = random.Random(seed)
    store = TraceStore()
    feed = BatchFeed(store)
    view = TreeView(store)
    mirror = TraceStore()  # gets only the batches the view was given
    mirror_feed = BatchFeed(mirror)
    held: list[tuple[list[bytes], Change]] = []
    for batch in batches(lines(seed), rng):
        feed.push(batch)
        held.append((batch, feed.drain()))
        if rng.random() < 0.5:
            continue  # paused: the store moves on, the view does not
        # resumed, and the view takes the held batches one by one, the store ahead all along
        for pending, change in held[: rng.randint(1, len(held))]:
            view.apply(change)
            mirror_feed.push(pending)
            mirror_feed.drain()
            held.pop(0)
        for span in mirror.events():
            parent = mirror.parent(span)
            assert view.links.parent_of(span.seq) == (parent.seq if parent else -1)
            assert view.links.key(span.seq) == key_of(mirror.top_of(span))


@pytest.mark.parametrize("text", ["refactor", "#1", "hit"])
def test_kept_adds_the_context_and_counts_of_query_select(text: str) -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    feed.push(lines(1))
    feed.drain()
    links = Links()
    links.reset(store)
    flt = Filter.make(text=text)
    pred = flt.predicate()
    matched = {s.seq for s in store.events() if pred(s)}
    result = kept(links.snapshot(), matched)
    assert result is not None
    sel = select(store, flt)
    assert result.context == sel.context
    assert result.keep == matched | sel.context
    per_tree: dict[object, int] = {}
    for seq in result.keep:
        span = store.get(seq)
        assert span is not None
        k = key_of(store.top_of(span))
        per_tree[k] = per_tree.get(k, 0) + 1
    assert result.counts == per_tree


def test_kept_stops_when_cancelled() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    feed.push(lines(2))
    feed.drain()
    links = Links()
    links.reset(store)
    assert kept(links.snapshot(), {s.seq for s in store.events()}, lambda: True) is None


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "flt", [Filter.make(statuses=["error", "blocked"]), Filter.make(text="refactor")]
)
def test_matches_and_context_kept_batch_by_batch_are_those_of_query_select(
    seed: int, flt: Filter
) -> None:
    """A span that matches is a match even when a child in the same batch (children come
    first) already kept it as context; every ancestor of a match is context."""
    rng = random.Random(seed)
    store = TraceStore(max_events=None if seed % 2 else 90)
    feed = BatchFeed(store)
    view = TreeView(store)
    view.set_filter(flt)
    for batch in batches(lines(seed), rng):
        feed.push(batch)
        view.apply(feed.drain())
        view.rebuild()
        resident = {s.seq for s in store.events()}
        sel = select(store, flt)
        assert view.matched is not None
        assert view.matched & resident == sel.matched
        assert view.context & resident == sel.context
        assert sum(view._counts.values()) == len(sel.matched | sel.context)
