"""The contracts engine: each rule family violated and clean, arrival order, live use, presets."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_contracts_helpers import T0, Feed, contract, ev

from tracetui.contracts import PRESETS, load_contracts
from tracetui.store import TraceStore

# ---- 1. schema ---------------------------------------------------------------------------------


def test_schema_clean_trace_has_no_findings() -> None:
    f = Feed(["dopejar"])
    f.batch(
        ev(
            "mem_1705180802_c8d2",
            "alt_1705180800_a3f2",
            "memory.read",
            ts=T0 + 1,
            namespace="n",
            key="k",
            tier="warm",
        ),
        ev(
            "alt_1705180800_a3f2",
            None,
            "altitude.transition",
            from_level=3,
            to_level=2,
            reason="asked",
        ),
    )
    f.finish()
    assert f.findings() == []


def test_schema_violations_each_reported_on_their_span() -> None:
    f = Feed(["dopejar"])
    long = ev("alt_1705180800_0001", None, "altitude.x")
    long["input_summary"] = "x" * 101
    no_status = ev("alt_1705180800_0002")
    del no_status["status"]
    bad_layer = ev("alt_1705180800_0003", layer="stratosphere")
    bad_status = ev("alt_1705180800_0004", status="meh")
    bad_shape = ev("span-42", layer="altitude")
    wrong_prefix = ev("mem_1705180800_0005", layer="focus")
    negative = ev("alt_1705180800_0006")
    negative["duration_ms"] = -3
    wrong_type = ev("alt_1705180800_0007")
    wrong_type["duration_ms"] = "slow"
    f.batch(long, no_status, bad_layer, bad_status, bad_shape, wrong_prefix, negative, wrong_type)
    assert f.about("alt_1705180800_0001") == {"schema.summary_too_long"}
    assert f.about("alt_1705180800_0002") == {"schema.missing_field"}
    assert f.findings("schema.missing_field")[0].field == "status"
    assert f.about("alt_1705180800_0003") == {"schema.unknown_layer"}
    assert f.about("alt_1705180800_0004") == {"schema.unknown_status"}
    assert f.about("span-42") == {"schema.trace_id_shape"}
    assert f.about("mem_1705180800_0005") == {"schema.trace_id_layer"}
    assert f.about("alt_1705180800_0006") == {"schema.negative_duration"}
    assert f.about("alt_1705180800_0007") == {"schema.wrong_type"}
    assert f.findings("schema.wrong_type")[0].field == "duration_ms"


def test_summary_of_exactly_the_limit_is_fine_and_counts_characters_not_bytes() -> None:
    f = Feed(["dopejar"])
    ok = ev("alt_1705180800_0001")
    ok["input_summary"] = "é" * 100  # 200 bytes, 100 characters
    f.batch(ok)
    assert f.findings() == []


def test_duplicate_ids_flag_both_spans() -> None:
    f = Feed(["dopejar"])
    f.batch(ev("alt_1705180800_0001"))
    delta = f.batch(ev("alt_1705180800_0001", ts=T0 + 5))
    dups = f.findings("schema.duplicate_id")
    assert sorted(d.seq for d in dups) == [0, 1]
    assert {d.seq for d in delta.added} == {0, 1}


def test_parent_cycle_is_reported() -> None:
    f = Feed(["dopejar"])
    f.batch(ev("alt_1705180800_000a", "alt_1705180800_000b"))
    f.batch(ev("alt_1705180800_000b", "alt_1705180800_000a"))
    assert {x.trace_id for x in f.findings("schema.parent_cycle")} == {
        "alt_1705180800_000a",
        "alt_1705180800_000b",
    }


def test_missing_parent_reported_only_when_the_trace_is_complete() -> None:
    f = Feed(["dopejar"])
    f.batch(ev("foc_1705180800_0001", "alt_1705180800_dead"))
    assert f.findings("schema.parent_missing") == []
    delta = f.finish()
    [found] = f.findings("schema.parent_missing")
    assert found.trace_id == "foc_1705180800_0001"
    assert "alt_1705180800_dead" in found.message
    assert found in delta.added


def test_child_starting_before_parent() -> None:
    f = Feed(["dopejar"])
    f.batch(
        ev("foc_1705180800_0002", "alt_1705180800_0001", ts=T0 - 2),
        ev("foc_1705180800_0003", "alt_1705180800_0001", ts=T0 + 1),
        ev("alt_1705180800_0001", ts=T0),
    )
    assert [x.trace_id for x in f.findings("schema.child_before_parent")] == ["foc_1705180800_0002"]


# ---- 2. required trace data --------------------------------------------------------------------


@pytest.mark.parametrize("op", ["altitude.transition", "transition", "alt.transition"])
def test_required_trace_data_missing_keys(op: str) -> None:
    f = Feed(["dopejar"])
    f.batch(ev("alt_1705180800_0001", None, op, reason="asked"))
    assert {x.field for x in f.findings("data.missing_key")} == {
        "metadata.from_level",
        "metadata.to_level",
    }
    assert all(x.severity == "warning" for x in f.findings())


def test_required_trace_data_present_even_when_null_or_false() -> None:
    f = Feed(["dopejar"])
    f.batch(ev("foc_1705180800_0001", None, "focus.consent_check", operation=None, allowed=False))
    assert f.findings() == []


def test_operation_globs_and_nested_keys(tmp_path: Path) -> None:
    c = contract(tmp_path, "operations:\n  'memory.*': {required: [tier, cache.hit]}\n")
    f = Feed(c)
    f.batch(
        ev("mem_1705180800_0001", None, "memory.read", tier="hot", cache={"hit": True}),
        ev("mem_1705180800_0002", None, "memory.write", tier="hot", **{"cache.hit": False}),
        ev("mem_1705180800_0003", None, "memory.demote", cache={"miss": 1}),
        ev("alt_1705180800_0004", None, "altitude.plan"),
    )
    assert {(x.trace_id, x.field) for x in f.findings()} == {
        ("mem_1705180800_0003", "metadata.tier"),
        ("mem_1705180800_0003", "metadata.cache.hit"),
    }


# ---- 3. context contracts ----------------------------------------------------------------------

CONTEXT = """
version: 1
extends: [context]
operations:
  design.plan: {produces: [domain, design_results]}
  design.review:
    requires:
      domain: {critical: true, default: unknown}
      domain_constraints: {critical: false}
  design.build:
    requires: {design_results: {}}
"""


def test_context_clean_when_produced_upstream(tmp_path: Path) -> None:
    f = Feed(contract(tmp_path, CONTEXT))
    f.batch(
        ev("sys_1_1", None, "design.plan"),
        ev("sys_1_2", "sys_1_1", "design.review", domain_constraints="none"),
        ev("sys_1_3", "sys_1_2", "design.build"),
    )
    f.finish()
    assert f.findings() == []


def test_context_dangling_read_shadow_default_and_dead_write(tmp_path: Path) -> None:
    f = Feed(contract(tmp_path, CONTEXT))
    f.batch(
        ev("sys_1_1", None, "design.plan"),
        ev("sys_1_9", None, "design.review", domain="unknown"),  # no producer above it
        ev("sys_1_8", "sys_1_9", "design.build"),
    )
    assert f.about("sys_1_9") == {"context.shadow_default", "context.dangling_read"}
    [dangling] = [x for x in f.findings("context.dangling_read") if x.trace_id == "sys_1_9"]
    assert dangling.field == "metadata.domain_constraints"
    assert f.about("sys_1_8") == {"context.dangling_read"}
    assert f.findings("context.dead_write") == []  # whole-trace: only once complete
    f.finish()
    dead = f.findings("context.dead_write")
    assert {(x.trace_id, x.field, x.severity) for x in dead} == {
        ("sys_1_1", "metadata.domain", "info"),
        ("sys_1_1", "metadata.design_results", "info"),
    }


def test_outcome_events_attach_to_the_parent_span(tmp_path: Path) -> None:
    f = Feed(["context"])
    f.batch(
        ev("sys_1_2", "sys_1_1", "context.defaulted", field="domain", default="unknown"),
        ev("sys_1_3", "sys_1_1", "context.failed", field="user_id", reason="no session"),
        ev("sys_1_4", "sys_1_1", "context.propagated", field="run_id"),
    )
    assert f.findings() == []  # the parent has not landed yet
    f.batch(ev("sys_1_1", None, "design.review"))
    found = {x.rule: x for x in f.findings()}
    assert set(found) == {"context.defaulted", "context.failed"}
    assert {x.trace_id for x in found.values()} == {"sys_1_1"}
    assert found["context.defaulted"].severity == "warning"
    assert found["context.failed"].severity == "error"
    assert found["context.defaulted"].field == "metadata.domain"
    assert "'unknown'" in found["context.defaulted"].message
    assert "no session" in found["context.failed"].message


# ---- 4. propagation ----------------------------------------------------------------------------


def test_correlation_guarantee() -> None:
    f = Feed(["correlation"])
    f.batch(
        ev("alt_1_1", None, correlation_id="c-root"),
        ev("foc_1_2", "alt_1_1", correlation_id="c-2", parent_correlation_id="c-root"),
        ev("foc_1_3", "alt_1_1", correlationId="c-3"),
        ev("foc_1_4", "alt_1_1", correlation_id="c-4", parentCorrelationId="c-other"),
        ev("foc_1_5", "alt_1_1"),  # no correlation id at all: nothing to propagate
    )
    assert f.about("foc_1_2") == set()
    assert f.about("foc_1_3") == {"propagation.missing_parent_correlation"}
    assert f.about("foc_1_4") == {"propagation.parent_correlation_mismatch"}
    assert f.about("foc_1_5") == set()


def test_propagated_keys_must_flow_unchanged(tmp_path: Path) -> None:
    f = Feed(contract(tmp_path, "propagate: [run_id, agent.run_id]\n"))
    f.batch(
        ev("alt_1_1", None, run_id="r1", agent={"name": "a", "run_id": "x"}),
        ev("foc_1_2", "alt_1_1", run_id="r1", agent={"name": "a", "run_id": "x"}),
        ev("foc_1_3", "alt_1_1", run_id="r2", agent={"name": "a", "run_id": "x"}),
        ev("foc_1_4", "alt_1_1", agent={"name": "a", "run_id": "y"}),
    )
    assert f.about("foc_1_2") == set()
    assert [x.field for x in f.findings() if x.trace_id == "foc_1_3"] == ["metadata.run_id"]
    assert {x.field for x in f.findings() if x.trace_id == "foc_1_4"} == {
        "metadata.run_id",
        "metadata.agent.run_id",
    }


def test_deprecated_agent_context_fields_and_shape() -> None:
    f = Feed(["correlation"])
    f.batch(
        ev("alt_1_1", None, agent_context={"agent": "planner", "runId": "r", "correlationId": "c"}),
        ev("alt_1_2", None, agentContext={"agent": "planner", "runId": "r", "source": "cli"}),
        ev("alt_1_3", None, agent_context={"runId": "r"}),
        ev("alt_1_4", None, agent={"name": "coder"}),
        ev("alt_1_5", None, agent={"name": "coder", "run_id": "r"}, source="fine at top level"),
    )
    dep = {(x.trace_id, x.field) for x in f.findings("propagation.deprecated_field")}
    assert dep == {
        ("alt_1_1", "metadata.agent_context.correlationId"),
        ("alt_1_2", "metadata.agentContext.source"),
    }
    shape = {x.trace_id for x in f.findings("propagation.agent_context_shape")}
    assert shape == {"alt_1_3", "alt_1_4"}
    assert f.about("alt_1_5") == set()


def test_leaked_baggage_first_leak_and_every_span_it_reached() -> None:
    f = Feed(["baggage"])
    bag = {"run_id": "r", "session_id": "s-1"}
    f.batch(
        ev("alt_1_1", None, baggage=bag),  # where the session id belongs
        ev("foc_1_2", "alt_1_1", baggage=bag),  # first leak
        ev("rsn_1_3", "foc_1_2", baggage=bag),  # reached
        ev("mem_1_4", "rsn_1_3", baggage=bag),  # reached
        ev("mem_1_5", "rsn_1_3", baggage={"run_id": "r"}),  # stripped: clean
        ev("foc_1_6", "alt_1_1", baggage={"run_id": "r", "session_id": "s-own"}),  # own value
    )
    [leak] = f.findings("baggage.leaked")
    assert (leak.trace_id, leak.field, leak.severity) == (
        "foc_1_2",
        "metadata.baggage.session_id",
        "error",
    )
    reached = f.findings("baggage.leak_reached")
    assert {x.trace_id for x in reached} == {"rsn_1_3", "mem_1_4"}
    assert all("'foc_1_2'" in x.message for x in reached)
    assert f.about("alt_1_1") == f.about("mem_1_5") == f.about("foc_1_6") == set()


def test_baggage_allow_list() -> None:
    f = Feed(["baggage"])
    f.batch(
        ev("alt_1_1", None, baggage={"run_id": "r", "user_email": "a@b", "project": "p"}),
        ev("foc_1_2", "alt_1_1", baggage={"run_id": "r", "user_email": "a@b", "project": "p"}),
        ev("foc_1_3", "alt_1_1", baggage={"run_id": "r", "project": "p"}),
    )
    [bad] = f.findings()
    assert (bad.rule, bad.trace_id, bad.field) == (
        "baggage.not_allowed",
        "foc_1_2",
        "metadata.baggage.user_email",
    )


def test_baggage_leak_found_whatever_the_arrival_order() -> None:
    bag = {"session_name": "mine"}
    events = [
        ev("alt_1_1", None, baggage=bag),
        ev("foc_1_2", "alt_1_1", baggage=bag),
        ev("rsn_1_3", "foc_1_2", baggage=bag),
    ]
    for order in ([2, 1, 0], [0, 1, 2], [1, 2, 0]):
        f = Feed(["baggage"])
        for i in order:
            f.batch(events[i])
        f.finish()
        assert {(x.rule, x.trace_id) for x in f.findings()} == {
            ("baggage.leaked", "foc_1_2"),
            ("baggage.leak_reached", "rsn_1_3"),
        }, order


# ---- 5. span contracts -------------------------------------------------------------------------


def test_flujo_span_contracts() -> None:
    f = Feed(["flujo"])
    f.batch(
        ev(
            "sys_1_1",
            None,
            "pipeline_run",
            **{"flujo.run_id": "r", "flujo.pipeline.name": "p"},
            events=[{"name": "flujo.retry"}, {"name": "flujo.paused"}],
        ),
        ev(
            "sys_1_2",
            "sys_1_1",
            "step",
            **{"flujo.step.id": "s1", "flujo.step.type": "agent", "flujo.attempt_number": 1},
        ),
    )
    assert f.findings() == []
    f.batch(
        ev(
            "sys_2_1",
            None,
            "pipeline_run",
            **{"flujo.run_id": "r"},
            events=["flujo.retry", "flujo.exploded"],
        ),
        ev("sys_2_2", "sys_2_1", "step", **{"flujo.step.id": "s1"}),
    )
    assert {(x.rule, x.trace_id, x.field) for x in f.findings()} == {
        ("span.missing_attribute", "sys_2_1", "metadata.flujo.pipeline.name"),
        ("span.unknown_event", "sys_2_1", "events"),
        ("span.missing_attribute", "sys_2_2", "metadata.flujo.step.type"),
        ("span.missing_attribute", "sys_2_2", "metadata.flujo.attempt_number"),
    }
    [unknown] = f.findings("span.unknown_event")
    assert "flujo.exploded" in unknown.message


# ---- arrival order and live operation ----------------------------------------------------------


def test_no_false_missing_upstream_when_the_parent_arrives_later() -> None:
    f = Feed(["dopejar", "correlation"])
    child = ev(
        "foc_1705180801_0002",
        "alt_1705180800_0001",
        "focus.route",
        ts=T0 + 1,
        signal_type="t",
        bundle="b",
        agents=[],
        correlation_id="c2",
        parent_correlation_id="c1",
    )
    delta = f.batch(child)
    assert not delta.added
    f.checker.tick(f.store, now=0.0)
    f.checker.tick(f.store, now=1e6)  # quiet for ages: judged with what is there
    assert f.rules() == {"schema.parent_missing"}
    parent = ev(
        "alt_1705180800_0001",
        None,
        "altitude.plan",
        altitude=3,
        intent="i",
        plan_summary="p",
        correlation_id="c1",
    )
    delta = f.batch(parent)
    assert [x.rule for x in delta.removed] == ["schema.parent_missing"]
    assert not delta.added
    f.finish()
    assert f.findings() == []


def test_parent_arriving_later_can_reveal_a_violation() -> None:
    f = Feed(["correlation"])
    f.batch(ev("foc_1_2", "alt_1_1", correlation_id="c2", parent_correlation_id="wrong"))
    assert f.findings() == []
    delta = f.batch(ev("alt_1_1", None, correlation_id="c1"))
    assert [x.rule for x in delta.added] == ["propagation.parent_correlation_mismatch"]


def test_tick_waits_for_the_quiet_period(tmp_path: Path) -> None:
    f = Feed(contract(tmp_path, "extends: [dopejar]\nquiet_period: 30\n"))
    f.batch(ev("foc_1705180800_0001", "alt_1705180800_dead"))
    now = 1_700_000_000.0  # any clock: quiet time counts from the first tick that saw the trace
    assert not f.checker.tick(f.store, now)
    assert not f.checker.tick(f.store, now + 29)
    assert f.findings() == []
    delta = f.checker.tick(f.store, now + 31)
    assert [x.rule for x in delta.added] == ["schema.parent_missing"]
    # New activity in the trace withdraws whole-trace findings until it is quiet again.
    delta = f.batch(ev("foc_1705180800_0002", "alt_1705180800_dead"))
    assert [x.rule for x in delta.removed] == ["schema.parent_missing"]


def test_findings_of_evicted_spans_are_removed() -> None:
    f = Feed(["dopejar"], max_events=2)
    f.batch(ev("alt_1705180800_0001", status="weird"))
    assert len(f.findings()) == 1
    delta = f.batch(ev("alt_1705180800_0002"), ev("alt_1705180800_0003"))
    assert [x.trace_id for x in delta.removed] == ["alt_1705180800_0001"]
    assert f.findings() == [] and f.checker.counts["error"] == 0


BROKEN = [
    ev(
        "alt_1_1",
        None,
        "altitude.plan",
        correlation_id="c1",
        baggage={"session_id": "s", "run_id": "r"},
    ),
    ev(
        "foc_1_2",
        "alt_1_1",
        "focus.route",
        ts=T0 - 1,
        correlation_id="c2",
        baggage={"session_id": "s"},
    ),
    ev(
        "rsn_1_3",
        "foc_1_2",
        "reasoning.route",
        correlation_id="c3",
        parent_correlation_id="c1",
        baggage={"session_id": "s"},
        strategy="x",
        reason="y",
    ),
    ev("mem_1_4", "rsn_1_3", "context.failed", field="k"),
    ev("mem_1_5", "mem_1_9", "memory.read"),
    ev("mem_1_6", "mem_1_5", "memory.write", status="odd"),
]
"""A trace breaking many rules (no duplicate ids: which duplicate is "the" parent depends on
arrival order by design)."""


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), cuts=st.lists(st.integers(1, 5), max_size=4))
def test_findings_do_not_depend_on_arrival_order_or_batching(seed: int, cuts: list[int]) -> None:
    presets = ["dopejar", "baggage", "correlation", "context"]

    def judge(events: list[dict[str, object]], bounds: list[int]) -> set[tuple[str, str, str]]:
        f = Feed(presets)
        start = 0
        for end in [*sorted(set(bounds)), len(events)]:
            if end > start:
                f.batch(*events[start:end])
                start = end
        f.finish()
        return {(x.rule, x.trace_id, x.field or "") for x in f.findings()}

    expected = judge(BROKEN, [])
    shuffled = BROKEN[:]
    random.Random(seed).shuffle(shuffled)
    assert judge(shuffled, cuts) == expected
    assert len({r for r, _, _ in expected}) >= 8


# ---- presets, each on a trace built to break it -------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "events", "rules"),
    [
        (
            "dopejar",
            [ev("alt_1705180800_00ff", None, "altitude.transition", status="done")],
            {"data.missing_key", "schema.unknown_status"},
        ),
        (
            "baggage",
            [
                ev("alt_1_1", None, baggage={"session_id": "s"}),
                ev("foc_1_2", "alt_1_1", baggage={"session_id": "s"}),
            ],
            {"baggage.leaked"},
        ),
        (
            "correlation",
            [
                ev("alt_1_1", None, correlation_id="a"),
                ev("foc_1_2", "alt_1_1", correlation_id="b"),
                ev("foc_1_3", None, agent_context={"agent": "x", "runId": "r", "attributes": {}}),
            ],
            {"propagation.missing_parent_correlation", "propagation.deprecated_field"},
        ),
        (
            "context",
            [ev("alt_1_1", None), ev("sys_1_2", "alt_1_1", "context.defaulted", field="d")],
            {"context.defaulted"},
        ),
        ("flujo", [ev("sys_1_1", None, "pipeline_run")], {"span.missing_attribute"}),
    ],
)
def test_every_preset_catches_its_breakage(
    preset: str, events: list[dict[str, object]], rules: set[str]
) -> None:
    f = Feed([preset])
    f.batch(*events)
    f.finish()
    assert f.rules() == rules


def test_presets_all_load() -> None:
    for name in PRESETS:
        assert load_contracts([name]).sources == [f"preset {name}"]


def test_static_check_agrees_with_live_batches(tmp_path: Path) -> None:
    from tracetui.contracts import check_all
    from tracetui.load import load_paths

    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in BROKEN))
    presets = ["dopejar", "baggage", "correlation", "context"]
    live = Feed(presets)
    for e in BROKEN:
        live.batch(e)
    live.finish()
    store = TraceStore()
    load_paths(store, [str(path)])
    static = check_all(store, load_contracts(presets), chunk=2)
    assert sorted(map(repr, static.all())) == sorted(map(repr, live.findings()))
    assert static.counts == live.checker.counts


def test_no_dangling_read_judged_under_a_parent_that_never_arrived(tmp_path: Path) -> None:
    c = contract(tmp_path, CONTEXT.replace("extends: [context]", "extends: [context, dopejar]"))
    f = Feed(c)
    f.batch(ev("sys_1_2", "sys_1_1", "design.build"))  # sys_1_1 (the producer) never comes
    f.finish()
    assert f.rules() == {"schema.parent_missing"}


def test_tick_with_wall_clock_right_after_a_batch_reports_nothing() -> None:
    import time

    f = Feed(["dopejar"])
    f.batch(ev("foc_1705180800_0001", "alt_1705180800_1a7e"))
    for _ in range(3):  # as the TUI does, 10-20 times a second, with time.time()
        assert not f.checker.tick(f.store, time.time())
    f.batch(ev("alt_1705180800_1a7e"))
    assert not f.checker.tick(f.store, time.time() + 3600)
    assert f.findings() == []
