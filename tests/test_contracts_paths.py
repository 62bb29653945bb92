"""The checker's short cuts: keys it only notices, spans pending on a parent, the id screen.

Each case here goes through a path the checker takes to avoid work on clean spans; a mistake in
one would hide a finding or invent one, so each compares against what a user expects to see.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from test_contracts_helpers import T0, Feed, contract, ev

from tracetui.contracts import check_all, load_contracts
from tracetui.store import TraceStore

# ---- deprecated keys: noticed without being read ------------------------------------------------


def test_deprecated_key_noticed_in_every_spelling(tmp_path: Path) -> None:
    c = contract(tmp_path, "deprecated: {agent_context.correlationId: old, a.b.c: gone}\n")
    f = Feed(c)
    f.batch(
        ev("alt_1_1", None, **{"agent_context.correlationId": "flat"}),
        ev("alt_1_2", None, agent_context={"correlationId": "inner", "agent": "x"}),
        ev("alt_1_3", None, agent_context="just a name"),
        ev("alt_1_4", None, agent_context=["a", "list"]),
        ev("alt_1_5", None, agent_context={"agent": "x", "runId": "r"}),
        ev("alt_1_6", None, a={"b": {"c": 1}}),
        ev("alt_1_7", None, a={"b.c": None}),
        ev("alt_1_8", None, **{"a.b": {"c": False}}),
        ev("alt_1_9", None, a={"b": {"d": 1}}),  # noticed "b", but no "c" under it
        ev("alt_1_10", None, a={"b": "c"}),
        ev("alt_1_11", None, correlationId="top-level spelling is fine"),
    )
    got = {(x.trace_id, x.field) for x in f.findings("propagation.deprecated_field")}
    assert got == {
        ("alt_1_1", "metadata.agent_context.correlationId"),
        ("alt_1_2", "metadata.agent_context.correlationId"),
        ("alt_1_6", "metadata.a.b.c"),
        ("alt_1_7", "metadata.a.b.c"),
        ("alt_1_8", "metadata.a.b.c"),
    }


def test_deprecated_key_under_a_key_another_rule_reads(tmp_path: Path) -> None:
    c = contract(tmp_path, "propagate: [agent]\ndeprecated: {agent.source: use baggage.source}\n")
    f = Feed(c)
    agent = {"name": "a", "source": "cli"}
    f.batch(
        ev("alt_1_1", None, agent=agent),
        ev("foc_1_2", "alt_1_1", agent=agent),
        ev("foc_1_3", "alt_1_1", agent={"name": "a"}),
    )
    assert {(x.rule, x.trace_id) for x in f.findings()} == {
        ("propagation.deprecated_field", "alt_1_1"),
        ("propagation.deprecated_field", "foc_1_2"),
        ("propagation.value_changed", "foc_1_3"),
    }


def test_deprecated_key_on_a_line_whose_metadata_is_not_an_object() -> None:
    f = Feed(["correlation"])
    bad = ev("alt_1_1", None)
    bad["metadata"] = "not an object"
    f.batch(bad, ev("alt_1_2", None, agent={"name": "n", "run_id": "r", "source": "x"}))
    assert {(x.rule, x.trace_id) for x in f.findings()} == {
        ("propagation.deprecated_field", "alt_1_2")
    }


def test_agent_context_shape_with_a_flat_agent_name_only() -> None:
    f = Feed(["correlation"])
    f.batch(
        ev("alt_1_1", None, **{"agent.name": "planner"}),
        ev("alt_1_2", None),  # no agent context at all: nothing to judge
        ev("alt_1_3", None, **{"agent.name": "planner", "agent.run_id": "r"}),
    )
    assert {(x.rule, x.trace_id) for x in f.findings()} == {
        ("propagation.agent_context_shape", "alt_1_1")
    }


def test_required_keys_of_an_unqualified_operation_depend_on_the_layer() -> None:
    f = Feed(["dopejar"])
    f.batch(
        ev("alt_1705180800_0001", None, "transition"),  # altitude.transition: keys required
        ev("foc_1705180800_0002", None, "transition"),  # focus.transition: no rule
        ev("alt_1705180800_0003", None, "alt.transition", from_level=1, to_level=2, reason="r"),
        ev("alt_1705180800_0004", None, "alt.transition", from_level=1),
    )
    assert {(x.trace_id, x.field) for x in f.findings("data.missing_key")} == {
        ("alt_1705180800_0001", "metadata.from_level"),
        ("alt_1705180800_0001", "metadata.to_level"),
        ("alt_1705180800_0001", "metadata.reason"),
        ("alt_1705180800_0004", "metadata.to_level"),
        ("alt_1705180800_0004", "metadata.reason"),
    }


# ---- spans pending on a parent that has not arrived ---------------------------------------------

SESSION = {"session_id": "s"}
CHAIN = [
    ev("alt_1_1", None, correlation_id="c1", baggage={"session_id": "s", "run_id": "r"}),
    ev("foc_1_2", "alt_1_1", correlation_id="c2", parent_correlation_id="c1", baggage=SESSION),
    ev("rsn_1_3", "foc_1_2", correlation_id="c3", parent_correlation_id="c2", baggage=SESSION),
    ev("mem_1_4", "rsn_1_3", correlation_id="c4", parent_correlation_id="wrong", ts=T0 - 5),
    ev("mem_1_5", "rsn_1_3", correlation_id="c5", baggage={"session_id": "s", "run_id": "r"}),
]
"""A root whose session id leaks to its child and on down, plus two children of the deepest span
with their own faults: every finding but the first needs the whole chain above it."""

CHAIN_FINDINGS = {
    ("baggage.leaked", "foc_1_2"),
    ("baggage.leak_reached", "rsn_1_3"),
    ("baggage.leak_reached", "mem_1_5"),
    ("propagation.parent_correlation_mismatch", "mem_1_4"),
    ("schema.child_before_parent", "mem_1_4"),
    ("propagation.missing_parent_correlation", "mem_1_5"),
}


CHAIN_CONTRACTS = load_contracts(["baggage", "correlation", "dopejar"], Path("/nonexistent"))


def _judge(order: tuple[int, ...], cuts: tuple[int, ...], ticks: bool) -> set[tuple[str, str]]:
    f = Feed(CHAIN_CONTRACTS)
    events = [CHAIN[i] for i in order]
    start = 0
    for end in [*cuts, len(events)]:
        f.batch(*events[start:end])
        if ticks:  # judged half-way, as a live view would: partial findings, retracted later
            f.checker.tick(f.store, 0.0)
            f.checker.tick(f.store, 1e9)
        start = end
    f.finish()
    return {(x.rule, x.trace_id) for x in f.findings() if not x.rule.startswith("schema.trace")}


@pytest.mark.parametrize("cuts", [(1, 2, 3, 4), (2,), (3,), (1, 4)])
def test_a_chain_arriving_in_any_order_and_batches_gives_the_same_findings(
    cuts: tuple[int, ...],
) -> None:
    for order in itertools.permutations(range(len(CHAIN))):
        assert _judge(order, cuts, ticks=False) == CHAIN_FINDINGS, order


@pytest.mark.parametrize("order", [(4, 3, 2, 1, 0), (2, 4, 0, 3, 1), (1, 3, 4, 2, 0)])
def test_partial_judgements_of_a_pending_chain_are_replaced_once_it_completes(
    order: tuple[int, ...],
) -> None:
    assert _judge(order, (1, 2, 3, 4), ticks=True) == CHAIN_FINDINGS


def test_grandchild_and_missing_parent_in_one_batch_after_the_child() -> None:
    """The child waits; then its own child and its parent arrive together, child-first."""
    f = Feed(["baggage"])
    f.batch(CHAIN[2])  # rsn_1_3, waiting for foc_1_2 (and the root)
    f.batch(CHAIN[0])  # the root: rsn_1_3 still waits for foc_1_2
    delta = f.batch(CHAIN[4], CHAIN[1])  # mem_1_5 under the waiting span, then foc_1_2
    assert {(x.rule, x.trace_id) for x in delta.added} == {
        ("baggage.leaked", "foc_1_2"),
        ("baggage.leak_reached", "rsn_1_3"),
        ("baggage.leak_reached", "mem_1_5"),
    }
    f.finish()
    assert len(f.findings()) == 3


def test_static_check_of_a_store_with_a_missing_parent_then_live_arrival(tmp_path: Path) -> None:
    """check_all leaves the spans under a missing parent pending; its arrival completes them."""
    import orjson

    from tracetui.load import load_paths

    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in CHAIN[2:]))
    store = TraceStore()
    load_paths(store, [str(path)])
    checker = check_all(store, load_contracts(["baggage", "correlation"]))
    # Judged with the chain it has: the session id looks as if it leaked at mem_1_5.
    assert {(x.rule, x.trace_id) for x in checker.all()} == {
        ("propagation.parent_correlation_mismatch", "mem_1_4"),
        ("propagation.missing_parent_correlation", "mem_1_5"),
        ("baggage.leaked", "mem_1_5"),
    }
    from tracetui.decode import LineDecoder

    spans, _ = LineDecoder().decode([orjson.dumps(e) for e in CHAIN[:2]], 100)
    checker.observe(store, store.ingest(spans))
    checker.finish(store)
    assert {(x.rule, x.trace_id) for x in checker.all()} == CHAIN_FINDINGS - {
        ("schema.child_before_parent", "mem_1_4")
    }


def test_pending_spans_evicted_before_their_parent_arrives() -> None:
    f = Feed(["baggage", "correlation"], max_events=3)
    f.batch(CHAIN[3], CHAIN[4])  # waiting under rsn_1_3
    f.batch(ev("alt_2_1", None), ev("alt_2_2", None))  # evicts the oldest tree: the waiting one
    assert f.checker._pending == set()
    f.batch(CHAIN[2])  # its parent arrives after they are gone
    f.finish()
    assert f.findings() == []


# ---- the id screen ------------------------------------------------------------------------------


def test_trace_id_screen_finds_each_bad_id_in_a_large_batch() -> None:
    f = Feed(["dopejar"])
    events = [ev(f"alt_1705180800_{i:04x}", None) for i in range(500)]
    events[0]["trace_id"] = "alt-bad"
    events[17]["trace_id"] = "foc_1705180800_0011"  # prefix of another layer
    events[250]["trace_id"] = "alt_1705180800_xyz"
    events[499]["trace_id"] = "alt_1705180800_00ff\nx"
    events[300]["hrm_layer"] = "mystery"  # unknown layer: its id cannot match any prefix
    f.batch(*events)
    got = {(x.rule, x.trace_id) for x in f.findings() if x.rule.startswith("schema.trace_id")}
    assert got == {
        ("schema.trace_id_shape", "alt-bad"),
        ("schema.trace_id_layer", "foc_1705180800_0011"),
        ("schema.trace_id_shape", "alt_1705180800_xyz"),
        ("schema.trace_id_shape", "alt_1705180800_00ff\nx"),
    }


@pytest.mark.parametrize(
    ("bad_id", "layer", "rule"),
    [
        ("alt-bad", "altitude", "schema.trace_id_shape"),
        ("foc_1705180800_0011", "altitude", "schema.trace_id_layer"),
        ("alt_1705180800_xyz", "altitude", "schema.trace_id_shape"),
        ("alt_1705180800_00ff\nalt_1705180800_00fe", "altitude", "schema.trace_id_shape"),
        ("ALT_1705180800_00ff", "altitude", "schema.trace_id_layer"),
        ("alt_1705180800_00ff", "mystery", None),  # an unknown layer: any prefix will do
    ],
    ids=["dash", "other-layer", "not-hex", "newline", "upper-case", "unknown-layer"],
)
def test_one_bad_id_among_good_ones_is_found(bad_id: str, layer: str, rule: str | None) -> None:
    f = Feed(["dopejar"])
    events = [ev(f"alt_1705180800_{i:04x}", None) for i in range(200)]
    events[120]["trace_id"] = bad_id
    events[120]["hrm_layer"] = layer
    f.batch(*events)
    got = {(x.rule, x.trace_id) for x in f.findings() if x.rule.startswith("schema.trace_id")}
    assert got == ({(rule, bad_id)} if rule else set())


# ---- the strict decode: a batch with nothing to look at, and one with a needle in it -----------


def test_one_long_summary_or_deprecated_key_among_many_clean_lines() -> None:
    f = Feed(["dopejar", "correlation"])
    events = [ev(f"alt_1705180800_{i:04x}", None) for i in range(300)]
    events[0]["input_summary"] = "é" * 100  # at the limit (200 bytes): fine
    events[10]["output_summary"] = "€" * 101
    events[200]["metadata"] = {"agent_context": {"agent": "a", "runId": "r", "source": "x"}}
    events[201]["metadata"] = {"agent_context": "planner"}  # no deprecated key inside a string
    events[299]["input_summary"] = 42  # not text: not judged by length
    f.batch(*events)
    assert {(x.rule, x.trace_id) for x in f.findings()} == {
        ("schema.summary_too_long", "alt_1705180800_000a"),
        ("propagation.deprecated_field", "alt_1705180800_00c8"),
        ("propagation.agent_context_shape", "alt_1705180800_00c9"),  # a bare string
    }
    clean = Feed(["dopejar", "correlation"])
    clean.batch(*[ev(f"alt_1705180800_{i:04x}", None) for i in range(300)])
    assert clean.findings() == []


# ---- screening lines in chunks: a line that breaks a rule among many, and traces that mostly do --


def _child(i: int, **meta: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"namespace": "n", "key": "k", "tier": "hot", "baggage": {"run_id": "r"}}
    data.update(meta)
    return ev(f"mem_1705180800_{i:04x}", "alt_1705180800_0001", "memory.read", **data)


ROOT = ev("alt_1705180800_0001", None, baggage={"run_id": "r", "session_id": "s"})


def test_a_few_breaking_lines_among_many_are_each_found() -> None:
    f = Feed(["dopejar", "baggage", "correlation"])
    events = [_child(i) for i in range(2, 200)]
    events[35]["metadata"].pop("tier")
    events[90]["metadata"] = None  # no metadata at all (alone in its chunk of lines)
    events[50]["metadata"]["baggage"] = {"run_id": "r", "session_id": "s"}
    events[70]["metadata"]["baggage"] = {"run_id": "r", "user": "u"}
    events[71]["metadata"]["baggage"] = {"run_id": "r", "session_id": "other"}
    events.insert(100, ROOT)  # the root lands mid-batch; children before it wait for it
    f.batch(*events)
    f.finish()
    got = {(x.rule, x.trace_id, x.field) for x in f.findings()}
    assert got == {
        ("data.missing_key", "mem_1705180800_0025", "metadata.tier"),
        ("data.missing_key", "mem_1705180800_005c", "metadata.namespace"),
        ("data.missing_key", "mem_1705180800_005c", "metadata.key"),
        ("data.missing_key", "mem_1705180800_005c", "metadata.tier"),
        ("baggage.leaked", "mem_1705180800_0034", "metadata.baggage.session_id"),
    }
    # An unlisted key the parent does not carry, or a session id of its own, did not propagate.


def test_an_unlisted_baggage_key_inherited_from_the_parent_among_many_lines() -> None:
    f = Feed(["baggage"])
    root = ev("alt_1705180800_0001", None, baggage={"run_id": "r", "user": "u"})
    events = [_child(i) for i in range(2, 100)]
    events[40]["metadata"]["baggage"] = {"run_id": "r", "user": "u"}
    f.batch(root, *events)
    assert {(x.rule, x.trace_id) for x in f.findings()} == {
        ("baggage.not_allowed", "mem_1705180800_002a")
    }


def test_a_trace_breaking_a_rule_on_most_lines_then_a_clean_one() -> None:
    f = Feed(["dopejar", "baggage"])
    broken = [_child(i, namespace=None) for i in range(2, 300)]
    for e in broken:
        e["metadata"].pop("key")
    f.batch(ROOT, *broken)
    assert len(f.findings("data.missing_key")) == len(broken)
    for round_ in range(12):  # batches while that kind of line is not screened, and after
        clean = [_child(1000 + 300 * round_ + i) for i in range(300)]
        clean[7 + round_]["metadata"].pop("tier")
        delta = f.batch(*clean)
        assert [(x.rule, x.field) for x in delta.added] == [("data.missing_key", "metadata.tier")]
