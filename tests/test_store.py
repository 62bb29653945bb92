"""The trace store: arrival order, orphans, duplicates, cycles, deep chains, eviction."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from typing import Any

import pytest
from core_kit import TraceKit, recursion_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracetui.model import CYCLE, DUPLICATE
from tracetui.query import Filter
from tracetui.stats import compute
from tracetui.store import TraceStore

ev = TraceKit.event


def ops(lines: list[str]) -> list[str]:
    """The operation word of each console line (`[?] opname ...` → `opname`)."""
    return [line.split("] ", 1)[1].split(" ", 1)[0] for line in lines]


# ---- out-of-order arrival ----------------------------------------------------------------------

CHAIN = [
    ev("m1", "g1", hrm_layer="mem", operation="write"),
    ev("g1", "a1", hrm_layer="foc", operation="gate"),
    ev("a1", None, hrm_layer="alt", operation="transition"),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_arrival_order_gives_the_same_tree(kit: TraceKit, order: tuple[int, ...]) -> None:
    store = kit.store_of([CHAIN[i] for i in order], batches=[1, 1, 1])
    assert kit.text(store) == [
        "[alt] transition",
        "  └─[foc] gate",
        "      └─[mem] write",
    ]
    [root] = list(store.top())
    assert not isinstance(root, str) and root.trace_id == "a1"
    assert [(d, n.trace_id) for d, n in store.walk() if not isinstance(n, str)] == [
        (0, "a1"),
        (1, "g1"),
        (2, "m1"),
    ]


def test_children_wait_under_a_placeholder_and_are_adopted(kit: TraceKit) -> None:
    spans, _ = kit.decode(CHAIN)
    store = TraceStore()
    change = store.ingest([spans[0]])
    assert change.top_changed and change.new == [spans[0]] and change.adopted == []
    assert list(store.top()) == ["g1"]
    assert store.parent_missing(spans[0])
    change = store.ingest([spans[1]])
    assert change.adopted == [spans[1]]
    assert list(store.top()) == ["a1"]
    assert store.parent(spans[0]) is spans[1]
    assert not store.parent_missing(spans[0])
    change = store.ingest([spans[2]])
    assert change.adopted == [spans[2]]
    assert list(store.top()) == [spans[2]]
    assert store.ancestors(spans[0]) == [spans[1], spans[2]]
    assert store.top_of(spans[0]) is spans[2]


def test_a_tree_keeps_the_position_where_it_first_appeared(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            ev("x-child", "x", operation="xchild"),
            ev("y", None, operation="yroot"),
            ev("x", None, operation="xroot"),
        ],
        batches=[1, 1, 1],
    )
    assert ops(kit.text(store)) == ["xroot", "xchild", "yroot"]


def test_children_are_ordered_by_start_time(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            ev("c3", "p", operation="third", timestamp="2024-01-14T10:00:03Z"),
            ev("c1", "p", operation="first", timestamp="2024-01-14T10:00:01Z"),
            ev("c2", "p", operation="second", timestamp=1705226402),
            ev("p", None, operation="parent", timestamp="2024-01-14T10:00:00Z"),
        ]
    )
    assert ops(kit.text(store)) == ["parent", "first", "second", "third"]


# ---- orphans -----------------------------------------------------------------------------------


def test_orphans_become_roots_marked_parent_missing(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            ev("o1", "ghost", operation="orphan1"),
            ev("root", None, operation="root"),
            ev("o2", "ghost", operation="orphan2"),
            ev("o2-child", "o2", operation="grandchild"),
        ]
    )
    assert next(iter(store.top())) == "ghost"
    assert [s.trace_id for s in store.children("ghost")] == ["o1", "o2"]
    assert kit.text(store) == [
        "[?] orphan1 ⟨parent ghost missing⟩",
        "[?] orphan2 ⟨parent ghost missing⟩",
        "  └─[?] grandchild",
        "[?] root",
    ]
    forest = kit.json(store)
    assert [n["trace_id"] for n in forest] == ["o1", "o2", "root"]
    assert forest[0]["_tracetui"] == {"parent_missing": "ghost"}
    assert forest[1]["_tracetui"] == {"parent_missing": "ghost"}
    assert forest[1]["children"][0]["trace_id"] == "o2-child"
    assert "_tracetui" not in forest[1]["children"][0]
    assert "_tracetui" not in forest[2]


def test_orphan_marker_is_sanitized(kit: TraceKit) -> None:
    store = kit.store_of([ev("o", "\x1b[31mghost\u202e", operation="op")])
    [line] = kit.text(store)
    assert "\x1b" not in line and "\u202e" not in line
    assert "⟨parent \\x1b[31mghost\\u202e missing⟩" in line
    assert kit.json(store)[0]["_tracetui"]["parent_missing"] == "\x1b[31mghost\u202e"


# ---- duplicates --------------------------------------------------------------------------------


def test_duplicates_are_both_kept_and_flagged(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            ev("p", None, operation="parent"),
            ev("d", "p", operation="first"),
            ev("d", "p", operation="second"),
            ev("k", "d", operation="kid"),
        ]
    )
    first, second = store.duplicates["d"]
    assert (first.operation, second.operation) == ("first", "second")
    assert first.flags & DUPLICATE and second.flags & DUPLICATE
    assert store.by_id["d"] is first
    assert len(store) == 4
    assert kit.text(store) == [
        "[?] parent",
        "  ├─[?] first ⟨duplicate id⟩",
        "  │   └─[?] kid",
        "  └─[?] second ⟨duplicate id⟩",
    ]
    forest = kit.json(store)
    kids = forest[0]["children"]
    assert [(k["operation"], k["_tracetui"]) for k in kids] == [
        ("first", {"duplicate": True}),
        ("second", {"duplicate": True}),
    ]
    assert store.facets["operation"]["first"] == 1 and store.facets["operation"]["second"] == 1


def test_identical_duplicate_lines_are_both_shown(kit: TraceKit) -> None:
    line = ev("same", None, operation="again")
    store = kit.store_of([line, line])
    assert kit.text(store) == ["[?] again ⟨duplicate id⟩", "[?] again ⟨duplicate id⟩"]
    assert kit.json_ids(kit.json(store)) == ["same", "same"]


# ---- cycles ------------------------------------------------------------------------------------

CYCLES = {
    "self-parent": [ev("a", "a", operation="opa")],
    "2-cycle": [ev("a", "b", operation="opa"), ev("b", "a", operation="opb")],
    "3-cycle": [
        ev("a", "c", operation="opa"),
        ev("b", "a", operation="opb"),
        ev("c", "b", operation="opc"),
    ],
    "2-cycle with a tail and a duplicate": [
        ev("a", "b", operation="opa"),
        ev("b", "a", operation="opb"),
        ev("t", "a", operation="opt"),
        ev("a", None, operation="opa2"),
    ],
}


def _cycle_cases() -> list[Any]:
    cases = []
    for name, events in CYCLES.items():
        for perm in itertools.permutations(range(len(events))):
            cases.append(pytest.param([events[i] for i in perm], id=f"{name}-{perm}"))
    return cases


@pytest.mark.timeout(20)
@pytest.mark.parametrize("events", _cycle_cases())
@pytest.mark.parametrize("batched", [False, True], ids=["one-batch", "line-by-line"])
def test_cycles_never_hang_and_every_span_stays_visible(
    kit: TraceKit, events: list[dict[str, Any]], batched: bool
) -> None:
    store = kit.store_of(events, batches=[1] * len(events) if batched else None)
    expected_ops = sorted(e["operation"] for e in events)
    assert (
        sorted(n.operation or "" for _, n in store.walk() if not isinstance(n, str)) == expected_ops
    )
    text = kit.text(store)
    assert sorted(ops(text)) == expected_ops
    forest = kit.json(store)
    seen: list[str] = []
    stack = list(forest)
    while stack:
        node = stack.pop()
        seen.append(node["operation"])
        stack.extend(node["children"])
    assert sorted(seen) == expected_ops
    if not store.duplicates:
        in_cycle = [s for s in store.events() if s.operation != "opt"]
        assert all(s.flags & CYCLE for s in in_cycle)
        assert sum(1 for s in store.events() if store.is_cut(s)) == 1
        assert sum("parent cycle" in line for line in text) == len(in_cycle)
    for span in store.events():
        assert len(store.ancestors(span)) < len(events)
        store.top_of(span)


def test_self_parent_with_waiting_children(kit: TraceKit) -> None:
    store = kit.store_of(
        [ev("kid", "s", operation="kid"), ev("s", "s", operation="self")], batches=[1, 1]
    )
    assert kit.text(store) == ["[?] self ⟨parent cycle⟩", "  └─[?] kid"]
    forest = kit.json(store)
    assert forest[0]["_tracetui"] == {"cycle": True}
    assert forest[0]["children"][0]["trace_id"] == "kid"


# ---- a 10,000-deep chain -----------------------------------------------------------------------

DEPTH = 10_000


def _chain(reverse: bool) -> list[dict[str, Any]]:
    events = [
        ev(f"s{i}", f"s{i - 1}" if i else None, operation=f"op{i}", duration_ms=1)
        for i in range(DEPTH)
    ]
    return events[::-1] if reverse else events


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reverse", [False, True], ids=["parents-first", "children-first"])
def test_ten_thousand_deep_chain(kit: TraceKit, reverse: bool) -> None:
    path = kit.write("deep.jsonl", _chain(reverse))
    store = kit.load(path).store
    walk = list(store.walk())
    assert [d for d, _ in walk] == list(range(DEPTH))
    deepest = store.by_id[f"s{DEPTH - 1}"]
    assert len(store.ancestors(deepest)) == DEPTH - 1
    assert store.top_of(deepest) is store.by_id["s0"]

    text = kit.text(store)
    assert ops(text) == [f"op{i}" for i in range(DEPTH)]
    assert max(len(line) for line in text) < 300

    data = kit.json_bytes(store)
    with recursion_limit(60_000):
        forest = json.loads(data)
    depth = 0
    node = forest[0]
    while True:
        assert node["trace_id"] == f"s{depth}"
        depth += 1
        if not node["children"]:
            break
        [node] = node["children"]
    assert depth == DEPTH

    sel = kit.selection(store, trace_id=f"s{DEPTH // 2}")
    assert sel.matched is not None and len(sel.matched) == DEPTH


def test_deep_lines_show_their_real_depth(kit: TraceKit) -> None:
    store = kit.store_of(_chain(False)[:100])
    text = kit.text(store)
    assert "[99]" in text[99]
    assert "[50]" in text[50]


# ---- eviction ----------------------------------------------------------------------------------


def _three_trees() -> list[dict[str, Any]]:
    out = []
    for t in range(3):
        out += [
            ev(f"t{t}-kid", f"t{t}", hrm_layer="mem", operation=f"kid{t}"),
            ev(f"t{t}-kid2", f"t{t}", hrm_layer="mem", operation=f"kidb{t}"),
            ev(f"t{t}", None, hrm_layer="alt", operation=f"root{t}"),
        ]
    return out


def test_eviction_drops_whole_oldest_trees(kit: TraceKit) -> None:
    loaded = kit.load(kit.write("three.jsonl", _three_trees()), max_events=5)
    store = loaded.store
    assert store.evicted == 6
    assert len(store) == 3
    assert ops(kit.text(store)) == ["root2", "kid2", "kidb2"]
    assert sorted(s.trace_id for s in store.events()) == ["t2", "t2-kid", "t2-kid2"]
    assert store.facets["layer"]["memory"] == 2 and store.facets["layer"]["altitude"] == 1
    assert "t0" not in store.by_id
    assert compute(store.events()).events == 3


def test_eviction_batch_by_batch_reports_counts(kit: TraceKit) -> None:
    spans, _ = kit.decode(_three_trees())
    store = TraceStore(max_events=4)
    assert store.ingest(spans[:3]).evicted == 0
    change = store.ingest(spans[3:6])
    assert change.evicted == 3 and change.top_changed
    assert store.evicted == 3
    assert [n.trace_id for n in store.top() if not isinstance(n, str)] == ["t1"]
    change = store.ingest(spans[6:7])
    assert change.evicted == 0
    assert list(store.top())[-1] == "t2"
    change = store.ingest(spans[7:])
    assert change.evicted == 3
    assert store.evicted == 6
    assert [s.trace_id for s in store.events()] == ["t2-kid", "t2-kid2", "t2"]
    assert [store.get(s.seq) for s in store.events()] == list(store.events())


def test_eviction_of_waiting_orphans(kit: TraceKit) -> None:
    spans, _ = kit.decode([ev("o", "ghost"), ev("r1"), ev("r2")])
    store = TraceStore(max_events=2)
    store.ingest(spans)
    assert list(store.top()) == [spans[1], spans[2]]
    assert store.children("ghost") == []
    late = kit.decode([ev("ghost", None, operation="late")])[0]
    store.ingest(late)
    assert [n.trace_id for n in store.top() if not isinstance(n, str)] == ["r2", "ghost"]


def test_evicting_one_of_two_duplicates_keeps_the_other_findable(kit: TraceKit) -> None:
    store = TraceStore(max_events=3)
    store.ingest(kit.decode([ev("x", None, operation="x1"), ev("k", "x")])[0])
    store.ingest(kit.decode([ev("r"), ev("x", "r", operation="x2")])[0])
    assert store.evicted == 2
    assert [s.operation for s in store.events()] == ["", "x2"]
    assert store.by_id.get("x") is not None
    assert ops(kit.text(store, trace_id="x")) == ["r", "x2"]  # no operation: named by its id


# ---- properties: order and batching do not matter ----------------------------------------------


@st.composite
def forests(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events of a forest (no cycles): parents are earlier ids or ids that never arrive.

    Some events are written twice (same id and parent): duplicates.
    """
    n = draw(st.integers(1, 14))
    events: list[dict[str, Any]] = []
    for i in range(n):
        choice = draw(st.integers(0, 3))
        if choice == 0 or i == 0:
            parent = draw(st.sampled_from([None, "ghost-a", "ghost-b"]))
        else:
            parent = f"n{draw(st.integers(0, i - 1))}"
        events.append(ev(f"n{i}", parent, operation=f"op{i}"))
        if draw(st.integers(0, 5)) == 0:
            events.append(ev(f"n{i}", parent, operation=f"op{i}-dup"))
    return events


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=forests(), data=st.data())
def test_any_permutation_and_batching_gives_the_same_forest(
    kit: TraceKit, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    reference = kit.store_of(events)
    shuffled = data.draw(st.permutations(events))
    sizes = data.draw(st.lists(st.integers(1, 5), max_size=len(events)))
    store = kit.store_of(shuffled, batches=sizes)
    assert kit.forest_shape(store) == kit.forest_shape(reference)
    assert sorted(kit.json_ids(kit.json(store))) == sorted(e["trace_id"] for e in events)
    assert sorted(ops(kit.text(store))) == sorted(e["operation"] for e in events)
    assert store.facets == reference.facets
    dup_ids = {k for k, v in Counter(e["trace_id"] for e in events).items() if v > 1}
    assert set(store.duplicates) == dup_ids


@st.composite
def tangles(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events with arbitrary parent links: cycles, self-parents, duplicates, missing parents."""
    n = draw(st.integers(1, 10))
    ids = [f"n{i}" for i in range(n)]
    return [
        ev(
            draw(st.sampled_from(ids)),
            draw(st.sampled_from([None, "ghost", *ids])),
            operation=f"op{k}",
        )
        for k in range(draw(st.integers(1, 14)))
    ]


@pytest.mark.timeout(120)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=tangles(), data=st.data())
def test_every_span_is_shown_exactly_once_whatever_the_links(
    kit: TraceKit, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    sizes = data.draw(st.lists(st.integers(1, 4), max_size=len(events)))
    store = kit.store_of(events, batches=sizes)
    expected = sorted(e["operation"] for e in events)
    assert sorted(n.operation or "" for _, n in store.walk() if not isinstance(n, str)) == expected
    assert sorted(ops(kit.text(store))) == expected
    forest = kit.json(store)
    seen: list[str] = []
    stack = list(forest)
    while stack:
        node = stack.pop()
        seen.append(node["operation"])
        stack.extend(node["children"])
    assert sorted(seen) == expected
    assert sum(store.facets["operation"].values()) == len(events)
    everything = kit.selection(store, Filter.make(text="op"))
    assert everything.matched is not None and len(everything.matched) == len(events)
    target = data.draw(st.sampled_from(events))["trace_id"]
    wanted = {e["operation"] for e in events if e["trace_id"] == target}
    assert wanted <= set(ops(kit.text(store, trace_id=target)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("batching", ["one-batch", "line-by-line", "shuffled-batches"])
def test_many_resolved_placeholders_in_one_batch(kit: TraceKit, batching: str) -> None:
    """Thousands of kids arrive before their parents: the top level fills with placeholders that
    are resolved again (holes that trigger compaction mid-batch); nothing may be lost or doubled.
    """
    events: list[dict[str, Any]] = []
    for i in range(2000):
        events.append(ev(f"k{i}", f"c{i}", operation=f"k{i}"))
        events.append(ev(f"c{i}", f"R{i % 3}", operation=f"c{i}"))
    events.append(ev("R0", None, operation="R0"))
    reference = kit.store_of(events, batches=[1] * len(events))
    if batching == "one-batch":
        store = kit.store_of(events)
    elif batching == "line-by-line":
        store = reference
    else:
        shuffled = random.Random(7).sample(events, len(events))
        store = kit.store_of(shuffled, batches=[37] * (len(events) // 37 + 1))
    assert sorted(n if isinstance(n, str) else n.trace_id for n in store.top()) == [
        "R0",
        "R1",
        "R2",
    ]
    assert sum(1 for _, n in store.walk() if not isinstance(n, str)) == len(events)
    assert sorted(ops(kit.text(store))) == sorted(e["operation"] for e in events)
    assert kit.forest_shape(store) == kit.forest_shape(reference)


def test_next_and_first_seq_follow_ingest_and_eviction(kit: TraceKit) -> None:
    store = TraceStore(max_events=3)
    assert (store.first_seq, store.next_seq) == (0, 0)
    spans = [kit.decode_one({"trace_id": f"r{i}"}) for i in range(5)]
    store.ingest(spans[:2])
    assert (store.first_seq, store.next_seq) == (0, 2)
    store.ingest(spans[2:])
    assert store.next_seq == 5
    assert store.get(store.first_seq) is not None
    assert all(store.get(seq) is None for seq in range(store.first_seq))
    assert [s.seq for s in store.events()] == [2, 3, 4]
