"""Filters and selection: facet semantics, --trace-id, --last, context ancestors."""

from __future__ import annotations

from typing import Any

import pytest
from core_kit import TraceKit

from tracetui.query import Filter
from tracetui.store import TraceStore

ev = TraceKit.event


def agent(name: str, **labels: str) -> dict[str, Any]:
    return {"agent": {"name": name, "run_id": f"run-{name}", "labels": labels}}


# Operation = trace_id, so console lines name the span.
EVENTS = [
    ev(
        "m1",
        "g1",
        hrm_layer="mem",
        operation="m1",
        status="error",
        metadata=agent("planner", team="core", env="prod"),
    ),
    ev(
        "g1",
        "a1",
        hrm_layer="foc",
        operation="g1",
        status="blocked",
        metadata=agent("critic", team="ml", env="dev"),
    ),
    ev(
        "g2",
        "a1",
        hrm_layer="foc",
        operation="g2",
        status="success",
        metadata=agent("critic", team="ml", env="prod"),
    ),
    ev(
        "a1",
        None,
        hrm_layer="alt",
        operation="a1",
        status="success",
        component="alt/manager.py",
        metadata=agent("planner", team="core", env="dev"),
    ),
    ev(
        "r1",
        "b1",
        hrm_layer="rsn",
        operation="r1",
        status="success",
        input_summary="Think about Widgets",
        metadata=agent("critic"),
    ),
    ev(
        "b1",
        None,
        hrm_layer="alt",
        operation="b1",
        status="error",
        output_summary="gave up",
        metadata=agent("planner", team="core", env="dev"),
    ),
    ev("o1", "ghost", hrm_layer="sys", operation="o1", status="success"),
]


@pytest.fixture
def store(kit: TraceKit) -> TraceStore:
    return kit.load(kit.write("q.jsonl", EVENTS)).store


def matched_ids(store: TraceStore, flt: Filter, **kw: Any) -> set[str]:
    sel = TraceKit.selection(store, flt, **kw)
    assert sel.matched is not None
    return {s.trace_id for s in store.events() if s.seq in sel.matched}


def shown(store: TraceStore, flt: Filter | None = None, **kw: Any) -> list[str]:
    """Console lines reduced to `id` or `id (context)`, in display order."""
    out = []
    for line in TraceKit.text(store, flt, **kw):
        name = line.split("] ", 1)[1].split(" ", 1)[0].rstrip(":")
        out.append(name + (" (context)" if line.endswith("⟨context⟩") else ""))
    return out


def test_no_filter_shows_everything(store: TraceStore) -> None:
    assert shown(store) == ["a1", "g1", "m1", "g2", "b1", "r1", "o1"]
    assert TraceKit.selection(store).matched is None


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter.make(layers=["foc"]), {"g1", "g2"}),
        (Filter.make(layers=["foc", "MEM"]), {"g1", "g2", "m1"}),
        (Filter.make(layers=["Focus", "memory"]), {"g1", "g2", "m1"}),
        (Filter.make(statuses=["ERROR"]), {"m1", "b1"}),
        (Filter.make(statuses=["error", "Blocked"]), {"m1", "b1", "g1"}),
        (Filter.make(layers=["alt"], statuses=["error"]), {"b1"}),
        (Filter.make(layers=["alt", "mem"], statuses=["error"]), {"b1", "m1"}),
        (Filter.make(agents=["critic"]), {"g1", "g2", "r1"}),
        (Filter.make(agents=["critic", "planner"]), {"m1", "g1", "g2", "a1", "r1", "b1"}),
        (Filter.make(agents=["critic"], statuses=["success"]), {"g2", "r1"}),
        (Filter.make(labels=["team=core"]), {"m1", "a1", "b1"}),
        (Filter.make(labels=["team=core", "team=ml"]), {"m1", "g1", "g2", "a1", "b1"}),
        (Filter.make(labels=["team=core", "env=dev"]), {"a1", "b1"}),
        (Filter.make(labels=["team=core", "team=ml", "env=prod"]), {"m1", "g2"}),
        (Filter.make(labels=["team=nobody"]), set()),
        (Filter.make(labels=["env=dev"], layers=["foc"]), {"g1"}),
        (Filter.make(text="WIDGET"), {"r1"}),
        (Filter.make(text="gave up"), {"b1"}),
        (Filter.make(text="manager.py"), {"a1"}),
        (Filter.make(text="g2"), {"g2"}),
        (Filter.make(text=r"^(a|b)1$", regex=True), {"a1", "b1"}),
        (Filter.make(text=r"widg.ts", regex=True), {"r1"}),
        (Filter.make(text="widgets", statuses=["error"]), set()),
    ],
)
def test_filter_semantics(store: TraceStore, flt: Filter, expected: set[str]) -> None:
    assert matched_ids(store, flt) == expected


def test_non_matching_ancestors_are_shown_as_context(store: TraceStore) -> None:
    assert shown(store, Filter.make(layers=["mem"])) == ["a1 (context)", "g1 (context)", "m1"]
    sel = TraceKit.selection(store, Filter.make(layers=["mem"]))
    forest = TraceKit.json(store, Filter.make(layers=["mem"]))
    assert forest[0]["_tracetui"] == {"context": True}
    assert forest[0]["children"][0]["_tracetui"] == {"context": True}
    assert "_tracetui" not in forest[0]["children"][0]["children"][0]
    assert len(forest) == 1 and len(forest[0]["children"]) == 1
    assert {store.get(s).trace_id for s in sel.context} == {"a1", "g1"}  # type: ignore[union-attr]


def test_matching_parent_hides_non_matching_children(store: TraceStore) -> None:
    assert shown(store, Filter.make(statuses=["blocked"])) == ["a1 (context)", "g1"]


def test_matching_ancestor_is_not_context(store: TraceStore) -> None:
    assert shown(store, Filter.make(agents=["planner"])) == ["a1", "g1 (context)", "m1", "b1"]


def test_orphan_match_is_shown_under_its_missing_parent(store: TraceStore) -> None:
    lines = TraceKit.text(store, Filter.make(layers=["sys"]))
    assert lines == ["[sys] o1 ⟨parent ghost missing⟩"]


def test_trace_id_selects_ancestors_and_descendants(store: TraceStore) -> None:
    assert shown(store, trace_id="g1") == ["a1", "g1", "m1"]
    assert shown(store, trace_id="a1") == ["a1", "g1", "m1", "g2"]
    assert shown(store, trace_id="m1") == ["a1", "g1", "m1"]
    assert shown(store, trace_id="r1") == ["b1", "r1"]
    assert shown(store, trace_id="o1") == ["o1"]
    assert shown(store, trace_id="nope") == []


def test_trace_id_combines_with_filters(store: TraceStore) -> None:
    assert shown(store, Filter.make(statuses=["error"]), trace_id="g1") == [
        "a1 (context)",
        "g1 (context)",
        "m1",
    ]
    assert shown(store, Filter.make(statuses=["error"]), trace_id="g2") == []


def test_trace_id_of_a_duplicate_shows_both(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            ev("p", None, operation="p"),
            ev("d", "p", operation="d1"),
            ev("q", None, operation="q"),
            ev("d", "q", operation="d2"),
            ev("z", None, operation="z"),
        ]
    )
    assert shown(store, trace_id="d") == ["p", "d1", "q", "d2"]


def test_last_n_trees(store: TraceStore) -> None:
    assert shown(store, last=1) == ["o1"]
    assert shown(store, last=2) == ["b1", "r1", "o1"]
    assert shown(store, last=10) == shown(store)
    assert shown(store, last=0) == []


def test_last_combines_with_filters_and_trace_id(store: TraceStore) -> None:
    assert shown(store, Filter.make(statuses=["error"]), last=2) == shown(
        store, Filter.make(statuses=["error"])
    )
    # --last counts the trees the filter lets through, not the last trees of the store
    mem = Filter.make(layers=["mem"])
    assert shown(store, mem, last=1) == shown(store, mem) != []
    assert shown(store, Filter.make(statuses=["error"]), last=1) == ["b1"]
    assert shown(store, last=2, trace_id="r1") == ["b1", "r1"]
    assert shown(store, last=1, trace_id="r1") == []


def test_trees_are_the_last_to_appear_not_to_complete(kit: TraceKit) -> None:
    store = kit.store_of(
        [ev("x-kid", "x", operation="xkid"), ev("y", None, operation="y"), ev("x", operation="x")]
    )
    assert shown(store, last=1) == ["y"]


def test_filter_make_normalises_user_spellings() -> None:
    flt = Filter.make(layers=["ALT", "foc"], statuses=["ERROR"])
    assert flt.layers == {"altitude", "focus"}
    assert flt.statuses == {"error"}
    assert Filter.make().empty and not flt.empty


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"trace_id":"s","input_summary":"read src\\/app.py"}', "src/app.py"),
        (b'{"trace_id":"s","output_summary":"\\u0041BC done"}', "abc done"),
        (b'{"trace_id":"s","output_summary":"Caf\\u00e9 OK"}', "café ok"),
    ],
    ids=["escaped-slash", "unicode-escape", "non-ascii-escape"],
)
def test_grep_finds_summaries_written_with_json_escapes(
    kit: TraceKit, raw: bytes, needle: str
) -> None:
    store = kit.store_of([raw])
    assert matched_ids(store, Filter.make(text=needle)) == {"s"}


def test_grep_casefolds_summaries_like_operations(kit: TraceKit) -> None:
    store = kit.store_of(['{"trace_id":"s","input_summary":"Straße"}'.encode()])
    assert matched_ids(store, Filter.make(text="STRASSE")) == {"s"}


def test_grep_casefolds_operations(kit: TraceKit) -> None:
    store = kit.store_of([ev("s", operation="Straße")])
    assert matched_ids(store, Filter.make(text="STRASSE")) == {"s"}
