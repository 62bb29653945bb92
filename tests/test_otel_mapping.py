"""The OTel → tracetui mapping (via OTLP-JSON, no extra needed), contracts, OTLP-JSON files."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_otel_support import TRACE, json_request, json_span, store_of, tree_shape

from tracetui.contracts import Checker, load_contracts
from tracetui.otel.files import OtlpAwareSink
from tracetui.otel.otlp_json import OtlpError, convert_request, otlp_json_line_to_lines
from tracetui.sources.channel import Channel
from tracetui.sources.follow import FileFollower
from tracetui.sources.spec import parse_source
from tracetui.store import TraceStore

ROOT = "00f067aa0ba902b7"
CHILD = "53995c3f42cd8ad8"
LEAF = "a1b2c3d4e5f60718"


def _lines(body: bytes) -> list[bytes]:
    result = convert_request(body)
    assert result.rejected == 0, result.message
    return result.lines


def test_ids_parents_times_and_fields() -> None:
    body = json_request(
        [
            json_span(
                CHILD.upper(),
                ROOT,
                "plan",
                attrs={"code.function": "plan", "code.namespace": "app.agent"},
            ),
            json_span(ROOT, "", "run", duration_ns=12_500_000),
        ],
        resource={"service.name": "checkout", "host.name": "h1"},
    )
    store = store_of(_lines(body))
    child = store.by_id[CHILD]
    root = store.by_id[ROOT]
    assert store.parent(child) is root
    assert child.parent_id == ROOT and root.parent_id is None
    assert root.start == pytest.approx(1_700_000_000.0)
    assert root.duration_ms == pytest.approx(12.5)
    assert root.operation == "run"
    assert root.layer == "checkout"  # service name when no hrm.layer
    assert child.component == "app.agent.plan"  # code.function wins over the scope
    assert root.component == "app.scope"
    meta = root.metadata()
    assert meta["otel.trace_id"] == TRACE
    assert meta["resource.service.name"] == "checkout"
    assert meta["resource.host.name"] == "h1"
    assert meta["otel.scope"] == "app.scope"


@pytest.mark.parametrize(
    ("attrs", "resource", "layer"),
    [
        ({"hrm.layer": "alt"}, {"service.name": "svc"}, "altitude"),
        ({"hrm_layer": "MEM"}, {}, "memory"),
        ({}, {"hrm.layer": "focus", "service.name": "svc"}, "focus"),
        ({}, {"service.name": "unknown_service:python"}, "system"),
        ({}, {}, "system"),
    ],
)
def test_layer_rules(attrs: dict[str, object], resource: dict[str, object], layer: str) -> None:
    store = store_of(_lines(json_request([json_span(ROOT, attrs=attrs)], resource=resource)))
    assert store.by_id[ROOT].layer == layer


@pytest.mark.parametrize(
    ("attrs", "status", "expected"),
    [
        ({}, None, "success"),
        ({}, {"code": 2, "message": "db down"}, "error"),
        ({}, {"code": "STATUS_CODE_ERROR"}, "error"),
        ({"tracetui.status": "blocked"}, None, "blocked"),
        ({"guardrail.blocked": True}, {"code": 2}, "blocked"),
        ({"blocked": "true"}, None, "blocked"),
        ({"blocked": False}, {"code": 1}, "success"),
    ],
)
def test_status_rules(
    attrs: dict[str, object], status: dict[str, object] | None, expected: str
) -> None:
    store = store_of(_lines(json_request([json_span(ROOT, attrs=attrs, status=status)])))
    assert store.by_id[ROOT].status == expected


def test_error_message_becomes_the_output_summary() -> None:
    store = store_of(
        _lines(json_request([json_span(ROOT, status={"code": 2, "message": "db down"})]))
    )
    span = store.by_id[ROOT]
    assert span.fields()["output_summary"] == "db down"
    assert span.metadata()["otel.status_message"] == "db down"


def test_agent_correlation_and_flujo_attributes_reach_the_store_unchanged() -> None:
    attrs = {
        "agent.name": "planner",
        "agent.run_id": "r1",
        "agent.label.env": "dev",
        "correlation_id": "c2",
        "parent_correlation_id": "c1",
        "flujo.step.id": "s1",
        "flujo.attempt_number": 2,
        "baggage.run_id": "r1",
        "weights": [0.5, 1.5],
        "nested": {"a": [1, True]},
    }
    store = store_of(_lines(json_request([json_span(ROOT, attrs=attrs)])))
    span = store.by_id[ROOT]
    assert (span.agent, span.run_id, span.labels) == ("planner", "r1", ("env=dev",))
    assert (span.correlation_id, span.parent_correlation_id) == ("c2", "c1")
    meta = span.metadata()
    for key, value in attrs.items():
        assert meta[key] == value
    assert store.facets["agent"]["planner"] == 1


def test_events_are_kept_and_context_events_become_outcomes() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("exception", {"exception.type": "ValueError"}),
        ("flujo.retry", {"attempt": 2}),
        ("context.defaulted", {"field": "user_id", "default": "anon"}),
        ("context.failed", {"field": "tenant", "reason": "no header"}),
    ]
    lines = _lines(json_request([json_span(ROOT, attrs={"agent.name": "planner"}, events=events)]))
    assert len(lines) == 3
    store = store_of(lines)
    span = store.by_id[ROOT]
    meta = span.metadata()
    assert [e["name"] for e in meta["events"]] == ["flujo.retry"]
    assert meta["events"][0]["attributes"] == {"attempt": 2}
    assert [e["name"] for e in meta["otel.events"]] == ["exception"]
    kids = store.children(span)
    assert sorted(k.operation or "" for k in kids) == ["context.defaulted", "context.failed"]
    assert {k.trace_id for k in kids} == {f"{ROOT}.ctx0", f"{ROOT}.ctx1"}
    assert all(k.agent == "planner" for k in kids)
    failed = next(k for k in kids if k.operation == "context.failed")
    assert failed.status == "error"


def test_contracts_see_context_outcomes_and_flujo_events() -> None:
    events = [
        ("context.defaulted", {"field": "user_id", "default": "anon"}),
        ("flujo.not_a_known_event", {}),
    ]
    attrs = {"flujo.step.id": "s1", "flujo.step.type": "agent", "flujo.attempt_number": 1}
    lines = _lines(json_request([json_span(ROOT, "", "step", attrs=attrs, events=events)]))
    store = TraceStore()
    checker = Checker(load_contracts(["context", "flujo"]))
    from tracetui.decode import LineDecoder

    spans, rejected = LineDecoder().decode([x.rstrip(b"\n") for x in lines], 1, store.origin("o"))
    change = store.ingest(spans, rejected)
    checker.observe(store, change)
    checker.finish(store)
    found = {(f.rule, f.trace_id) for f in checker.all()}
    assert ("context.defaulted", ROOT) in found
    assert ("span.unknown_event", ROOT) in found


def test_default_contract_accepts_otel_span_ids_but_not_other_odd_ids() -> None:
    from tracetui.decode import LineDecoder

    events = [("context.failed", {"field": "tenant"})]
    lines = _lines(json_request([json_span(ROOT, events=events), json_span(CHILD, parent=ROOT)]))
    lines.append(b'{"trace_id":"0123456789abcdef","hrm_layer":"system","operation":"x"}\n')
    store = TraceStore()
    checker = Checker(load_contracts(["dopejar"]))
    spans, rejected = LineDecoder().decode([x.rstrip(b"\n") for x in lines], 1, store.origin("o"))
    checker.observe(store, store.ingest(spans, rejected))
    checker.finish(store)
    shape = {f.trace_id for f in checker.all() if f.rule == "schema.trace_id_shape"}
    assert shape == {"0123456789abcdef"}  # no otel.trace_id: judged like any other line


def test_bad_ids_are_rejected_with_reasons_and_the_rest_kept() -> None:
    body = json_request(
        [
            json_span(ROOT),
            json_span("0000000000000000"),
            json_span("xyz"),
            json_span(CHILD, parent="123"),
            json_span(LEAF, trace_id="0" * 32),
        ]
    )
    result = convert_request(body)
    assert result.spans == 1 and result.rejected == 4
    assert "span id" in result.message and "parent span id" in result.message
    assert "trace id" in result.message


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b'{"resourceSpans": 5}', "resourceSpans"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}', "name"),
    ],
)
def test_broken_requests_say_what_is_wrong(body: bytes, needle: str) -> None:
    with pytest.raises(OtlpError, match=needle):
        convert_request(body)


def test_file_line_helper_tells_otlp_lines_apart() -> None:
    assert otlp_json_line_to_lines(b'{"trace_id": "x"}') is None
    assert otlp_json_line_to_lines(b"garbage") is None
    lines = otlp_json_line_to_lines(json_request([json_span(ROOT)]))
    assert lines is not None and len(lines) == 1
    with pytest.raises(OtlpError):
        otlp_json_line_to_lines(b'{"resourceSpans": [1]}')


# ---- any order, any batching ---------------------------------------------------------------------

_IDS = [f"{i + 1:016x}" for i in range(12)]


@st.composite
def _forest(draw: st.DrawFn) -> list[tuple[str, str]]:
    n = draw(st.integers(2, len(_IDS)))
    pairs = []
    for i in range(n):
        parent = draw(st.sampled_from(["", *_IDS[:i]])) if i else ""
        pairs.append((_IDS[i], parent))
    return pairs


@settings(max_examples=60, deadline=None)
@given(forest=_forest(), data=st.data())
def test_any_order_and_batching_build_the_same_tree(
    forest: list[tuple[str, str]], data: st.DataObject
) -> None:
    spans = [
        json_span(
            sid,
            parent,
            f"op{i}",
            events=[("context.propagated", {"field": "k"})] if i % 3 == 0 else None,
        )
        for i, (sid, parent) in enumerate(forest)
    ]
    reference = store_of(_lines(json_request(spans)))
    order = data.draw(st.permutations(spans))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=4)))
    batches = [
        order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True) if order[a:b]
    ]
    store = TraceStore()
    from tracetui.decode import LineDecoder

    decoder = LineDecoder()
    origin = store.origin("otlp")
    for batch in batches:
        lines = [x.rstrip(b"\n") for x in _lines(json_request(batch))]
        store.ingest(*decoder.decode(lines, 1, origin))
    assert tree_shape(store) == tree_shape(reference)
    assert [s for s in store.top() if isinstance(s, str)] == []


# ---- OTLP-JSON files followed live ---------------------------------------------------------------


def test_otlp_json_file_written_line_by_line_is_followed_live(tmp_path: Path) -> None:
    path = tmp_path / "otel.jsonl"
    path.write_bytes(b"")
    channel = Channel()
    stop = threading.Event()
    follower = FileFollower(
        parse_source(str(path)),
        channel,
        stop,
        follow=True,
        from_end=False,
        last=None,
        poll=True,
        recheck=0.05,
    )
    follower.sink = OtlpAwareSink(follower.sink.origin, channel, follower.status, stop)
    store = TraceStore()
    origin = store.origin(str(path))
    follower.start()
    try:
        with path.open("ab") as out:
            out.write(json_request([json_span(CHILD, ROOT, "child")]) + b"\n")
            out.flush()
            _wait_for(lambda: _drain(channel, store, origin) or CHILD in store.by_id)
            out.write(b'{"trace_id": "plain_1_ab", "parent_id": "' + ROOT.encode() + b'"}\n')
            out.write(json_request([json_span(ROOT, "", "root"), json_span("bad")]) + b"\n")
            out.write(b'{"resourceSpans": [{"scopeSpans": 3}]}\n')
            out.flush()
            _wait_for(lambda: _drain(channel, store, origin) or ROOT in store.by_id)
    finally:
        stop.set()
        follower.wake()
        follower.join(5)
    _drain(channel, store, origin)
    root = store.by_id[ROOT]
    assert {k.trace_id for k in store.children(root)} == {CHILD, "plain_1_ab"}
    assert store.by_id[CHILD].line_no == 1
    assert store.by_id["plain_1_ab"].line_no == 2
    assert root.line_no == 3
    assert [(r.line_no, "not an OTLP-JSON" in r.reason) for r in store.rejected] == [(4, True)]
    assert any(n.line_no == 3 and "1 span(s) rejected" in n.text for n in store.notices)


def _drain(channel: Channel, store: TraceStore, origin: int) -> bool:
    from tracetui.model import Rejected

    for batch in channel.take():
        for span in batch.spans:
            span.origin = origin
        rejected = [Rejected(origin, r.line_no, r.reason, r.preview) for r in batch.rejected]
        from tracetui.store import Notice

        store.notices.extend(Notice(origin, n, t) for n, t in batch.notices)
        store.ingest(batch.spans, rejected)
    return False


def _wait_for(check: object, timeout: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_resource_attributes_keep_json_types() -> None:
    body = json_request([json_span(ROOT)], resource={"k8s.pod.count": 3, "flag": True})
    meta = orjson.loads(_lines(body)[0])["metadata"]
    assert meta["resource.k8s.pod.count"] == 3 and meta["resource.flag"] is True
