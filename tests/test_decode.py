"""Decoder: every field variant of the trace format, and hostile lines through a real file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from core_kit import TraceKit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracetui.decode import LineDecoder
from tracetui.framing import LineFramer
from tracetui.load import StreamLoader
from tracetui.model import DUPLICATE, SCHEMA, Rejected, Span
from tracetui.store import TraceStore

# ---- timestamps --------------------------------------------------------------------------------


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with local time = America/New_York (UTC-5 in January)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-14T10:00:00+00:00", 1705226400.0),
        ("2024-01-14T10:00:00Z", 1705226400.0),
        ("2024-01-14T12:00:00+02:00", 1705226400.0),
        ("2024-01-14T10:00:00.250+00:00", 1705226400.25),
        (1705226400, 1705226400.0),
        (1705226400.5, 1705226400.5),
        ("1705226400", 1705226400.0),
    ],
)
def test_timestamp_aware_iso_and_epoch(kit: TraceKit, value: Any, expected: float) -> None:
    span = kit.decode_one(kit.event("t", timestamp=value))
    assert span.start == pytest.approx(expected)
    assert not span.flags & SCHEMA


def test_timestamp_epoch_milliseconds(kit: TraceKit) -> None:
    span = kit.decode_one(kit.event("t", timestamp=1705226400250))
    assert span.start == pytest.approx(1705226400.25)


def test_naive_iso_timestamp_is_local_time(kit: TraceKit, new_york: None) -> None:
    span = kit.decode_one(kit.event("t", timestamp="2024-01-14T10:00:00"))
    assert span.start == pytest.approx(1705226400.0 + 5 * 3600)
    assert span.start == pytest.approx(datetime(2024, 1, 14, 10).timestamp())


def test_unreadable_timestamp_is_a_schema_issue_not_a_rejection(kit: TraceKit) -> None:
    span = kit.decode_one(kit.event("t", timestamp="yesterday", operation="op"))
    assert span.start is None
    assert span.flags & SCHEMA
    assert any("timestamp" in issue and "yesterday" in issue for issue in span.issues)
    assert span.operation == "op"


def test_absent_timestamp(kit: TraceKit) -> None:
    span = kit.decode_one({"trace_id": "t"})
    assert span.start is None
    assert span.flags == 0


# ---- layer, operation, status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("altitude", "altitude"),
        ("ALTITUDE", "altitude"),
        ("alt", "altitude"),
        ("Alt", "altitude"),
        ("foc", "focus"),
        ("FOCUS", "focus"),
        ("rsn", "reasoning"),
        ("Reasoning", "reasoning"),
        ("LRN", "learning"),
        ("learning", "learning"),
        ("mem", "memory"),
        ("Memory", "memory"),
        ("sys", "system"),
        ("SYSTEM", "system"),
    ],
)
def test_layer_aliases_in_any_case(kit: TraceKit, written: str, canonical: str) -> None:
    assert kit.decode_one(kit.event("t", hrm_layer=written)).layer == canonical


def test_unknown_layer_is_kept_as_written(kit: TraceKit) -> None:
    assert kit.decode_one(kit.event("t", hrm_layer="Quantum")).layer == "Quantum"


@pytest.mark.parametrize(
    ("layer", "operation", "short"),
    [
        ("altitude", "altitude.transition", "transition"),
        ("alt", "altitude.transition", "transition"),
        ("altitude", "transition", "transition"),
        ("memory", "memory.write", "write"),
        ("memory", "mem.write", "write"),
        ("altitude", "memory.write", "memory.write"),
        (None, "altitude.transition", "altitude.transition"),
    ],
)
def test_operation_with_and_without_layer_prefix(
    kit: TraceKit, layer: str | None, operation: str, short: str
) -> None:
    span = kit.decode_one(kit.event("t", hrm_layer=layer, operation=operation))
    assert span.operation == operation
    assert span.short_operation == short


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("success", "success"),
        ("SUCCESS", "success"),
        ("Error", "error"),
        ("ERROR", "error"),
        ("bLoCkEd", "blocked"),
        ("Timeout", "Timeout"),
    ],
)
def test_status_in_any_case(kit: TraceKit, written: str, canonical: str) -> None:
    assert kit.decode_one(kit.event("t", status=written)).status == canonical


def test_all_known_fields_and_unknown_fields_are_kept(kit: TraceKit) -> None:
    event = kit.event(
        "alt_1705180800_a3f2",
        "sys_1705180799_0001",
        timestamp="2024-01-14T10:00:00Z",
        hrm_layer="alt",
        operation="altitude.transition",
        component="altitude/manager.py",
        input_summary="L3→L2",
        output_summary="ok",
        duration_ms=5,
        status="success",
        metadata={"k": [1, 2]},
        custom_field={"nested": True},
        another=7,
    )
    span = kit.decode_one(event)
    assert span.trace_id == "alt_1705180800_a3f2"
    assert span.parent_id == "sys_1705180799_0001"
    assert span.component == "altitude/manager.py"
    assert span.duration_ms == 5.0
    assert span.fields() == event
    assert span.metadata() == {"k": [1, 2]}
    assert span.raw == kit.encode(event)


def test_empty_parent_id_means_root(kit: TraceKit) -> None:
    assert kit.decode_one(kit.event("t", "")).parent_id is None


# ---- agent identity ----------------------------------------------------------------------------

AGENT_CASES: list[tuple[str, dict[str, Any], tuple[str | None, str | None, tuple[str, ...]]]] = [
    ("agent string", {"agent": "planner"}, ("planner", None, ())),
    (
        "agent object name/run_id/labels",
        {
            "agent": {
                "name": "planner",
                "run_id": "r1",
                "labels": {"team": "core", "tier": "1"},
                "metadata": {"ignored": True},
            }
        },
        ("planner", "r1", ("team=core", "tier=1")),
    ),
    (
        "agent object agent/runId",
        {"agent": {"agent": "planner", "runId": "r2"}},
        ("planner", "r2", ()),
    ),
    (
        "agent_context runId",
        {"agent_context": {"agent": "critic", "runId": "r3", "labels": {"env": "dev"}}},
        ("critic", "r3", ("env=dev",)),
    ),
    (
        "agent_context run_id",
        {"agent_context": {"agent": "critic", "run_id": "r4"}},
        ("critic", "r4", ()),
    ),
    (
        "agentContext runId",
        {"agentContext": {"agent": "critic", "runId": "r5", "labels": {"env": "prod"}}},
        ("critic", "r5", ("env=prod",)),
    ),
    (
        "agentContext run_id",
        {"agentContext": {"agent": "critic", "run_id": "r6", "metadata": {"x": 1}}},
        ("critic", "r6", ()),
    ),
    (
        "flattened attributes",
        {
            "agent.name": "flat",
            "agent.run_id": "r7",
            "agent.label.team": "core",
            "agent.label.tier": 2,
            "agent.label.beta": True,
        },
        ("flat", "r7", ("beta=true", "team=core", "tier=2")),
    ),
    (
        "extra labels beside an agent string",
        {"agent": "planner", "labels": {"extra": "yes"}},
        ("planner", None, ("extra=yes",)),
    ),
    (
        "agent labels win over extra labels of the same key",
        {
            "agent": {"name": "planner", "labels": {"team": "core"}},
            "labels": {"team": "x", "e": "1"},
        },
        ("planner", None, ("e=1", "team=core")),
    ),
    (
        "first convention wins: agent before agent_context",
        {"agent": "first", "agent_context": {"agent": "second", "runId": "rx"}},
        ("first", None, ()),
    ),
    (
        "first convention wins: agent_context before flattened",
        {"agent_context": {"agent": "ctx"}, "agent.name": "flat"},
        ("ctx", None, ()),
    ),
    ("no agent", {"other": 1}, (None, None, ())),
]


@pytest.mark.parametrize(
    ("meta", "expected"), [c[1:] for c in AGENT_CASES], ids=[c[0] for c in AGENT_CASES]
)
def test_agent_identity_spellings(
    kit: TraceKit,
    meta: dict[str, Any],
    expected: tuple[str | None, str | None, tuple[str, ...]],
) -> None:
    span = kit.decode_one(kit.event("t", metadata=meta))
    assert (span.agent, span.run_id, span.labels) == expected
    assert span.metadata() == meta


@pytest.mark.parametrize(
    ("meta", "expected"), [c[1:] for c in AGENT_CASES], ids=[c[0] for c in AGENT_CASES]
)
def test_agent_identity_survives_the_lenient_path(
    kit: TraceKit,
    meta: dict[str, Any],
    expected: tuple[str | None, str | None, tuple[str, ...]],
) -> None:
    span = kit.decode_one(kit.event("t", metadata=meta, duration_ms="12ms"))
    assert span.flags & SCHEMA
    assert span.duration_ms == 12.0
    assert (span.agent, span.run_id, span.labels) == expected


def test_agent_identity_in_one_batch(kit: TraceKit) -> None:
    """A file is decoded in batches (a faster path than single lines): same conventions."""
    lines = [kit.event(f"t{i}", metadata=case[1]) for i, case in enumerate(AGENT_CASES)]
    loaded = kit.load(kit.write("agents.jsonl", lines * 3))
    got = [(s.agent, s.run_id, s.labels) for s in loaded.spans()]
    assert got == [case[2] for case in AGENT_CASES] * 3


def test_run_id_precedence_is_the_same_in_batches_and_single_lines(kit: TraceKit) -> None:
    line = kit.event("t", metadata={"agent": {"name": "a", "run_id": "r1"}, "agent.run_id": "r2"})
    assert kit.decode_one(line).run_id == "r1"
    spans, _ = kit.decode([line, line, line])
    assert [s.run_id for s in spans] == ["r1", "r1", "r1"]


@pytest.mark.parametrize("agent", [None, 5, True])
def test_an_agent_that_is_not_a_name_or_object_falls_through(kit: TraceKit, agent: Any) -> None:
    meta = {"agent": agent, "agentContext": {"agent": "ctx", "runId": "r"}}
    assert (kit.decode_one(kit.event("t", metadata=meta)).agent) == "ctx"
    spans, _ = kit.decode([kit.event("t", metadata=meta)] * 2)
    assert [s.agent for s in spans] == ["ctx", "ctx"]


@pytest.mark.parametrize(
    ("meta", "corr", "parent_corr"),
    [
        ({"correlation_id": "c1", "parent_correlation_id": "c0"}, "c1", "c0"),
        ({"correlationId": "c1", "parentCorrelationId": "c0"}, "c1", "c0"),
        ({"correlation_id": "c1", "parentCorrelationId": "c0"}, "c1", "c0"),
        ({"correlationId": "c1"}, "c1", None),
        ({"correlation_id": 42}, "42", None),
        ({}, None, None),
    ],
)
def test_correlation_id_spellings(
    kit: TraceKit, meta: dict[str, Any], corr: str | None, parent_corr: str | None
) -> None:
    span = kit.decode_one(kit.event("t", metadata=meta))
    assert (span.correlation_id, span.parent_correlation_id) == (corr, parent_corr)


# ---- wrong types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "check"),
    [
        ({"trace_id": 42, "operation": "op"}, lambda s: s.trace_id == "42"),
        ({"trace_id": "t", "parent_id": 7}, lambda s: s.parent_id == "7"),
        ({"trace_id": "t", "duration_ms": "12.5"}, lambda s: s.duration_ms == 12.5),
        ({"trace_id": "t", "duration_ms": "slow"}, lambda s: s.duration_ms is None),
        ({"trace_id": "t", "duration_ms": True}, lambda s: s.duration_ms is None),
        ({"trace_id": "t", "metadata": [1, 2]}, lambda s: s.agent is None),
        ({"trace_id": "t", "metadata": "agent=x"}, lambda s: s.agent is None),
        ({"trace_id": "t", "status": 500, "hrm_layer": "alt"}, lambda s: s.layer == "altitude"),
        ({"trace_id": "t", "hrm_layer": ["alt"], "status": "ERROR"}, lambda s: s.status == "error"),
        ({"trace_id": "t", "timestamp": True}, lambda s: s.start is None),
        ({"trace_id": "t", "timestamp": {"s": 1}}, lambda s: s.start is None),
        ({"parent_id": "p", "operation": "op"}, lambda s: s.trace_id.startswith("<no trace_id")),
    ],
)
def test_wrong_types_keep_what_they_can(kit: TraceKit, event: dict[str, Any], check: Any) -> None:
    span = kit.decode_one(event)
    assert span.flags & SCHEMA
    assert span.issues
    assert check(span)
    assert span.fields() == event


def test_wrong_type_issue_names_field_and_what_was_expected(kit: TraceKit) -> None:
    span = kit.decode_one({"trace_id": "t", "duration_ms": "slow", "metadata": [1]})
    text = "; ".join(span.issues)
    assert "duration_ms" in text and "number" in text
    assert "metadata" in text and "object" in text


def test_missing_trace_id_is_reported(kit: TraceKit) -> None:
    span = kit.decode_one({"operation": "op"})
    assert "trace_id: missing" in span.issues


def test_internal_field_names_in_a_line_are_not_interpreted(kit: TraceKit) -> None:
    line = {
        "trace_id": "t",
        "@tracetui:flags": DUPLICATE,
        "@tracetui:agent": "evil",
        "@tracetui:labels": ["team=evil"],
        "@tracetui:issues": ["fake"],
    }
    span = kit.decode_one(line)
    assert span.fields() == line
    assert not span.flags & DUPLICATE
    assert span.agent is None
    assert span.labels == ()
    assert "fake" not in span.issues


@pytest.mark.parametrize("identity", [True, False], ids=["identity", "no-identity"])
@pytest.mark.parametrize("batch", [True, False], ids=["batch", "single-line"])
def test_internal_field_names_spelled_with_escapes_are_not_interpreted(
    identity: bool, batch: bool
) -> None:
    forged = (
        b'{"trace_id":"t","\\u0040tracetui:flags":1,"@\\u0074racetui:agent":"evil",'
        b'"\\u0040tracetui:issues":["fake"],"\\u0040tracetui:seq":7,"\\u0040tracetui:meta":{}}'
    )
    plain = b'{"trace_id":"p","operation":"x\\u2192y"}'
    lines = [forged, plain] if batch else [forged]
    spans, rejected = LineDecoder(identity).decode(lines, 1)
    assert rejected == []
    span = spans[0]
    assert (span.trace_id, span.flags, span.issues, span.agent) == ("t", 0, (), None)
    assert span.raw == forged
    if batch:
        assert (spans[1].operation, spans[1].flags) == ("x\u2192y", 0)


@pytest.mark.parametrize("ats_before", [0, 3, 100], ids=["first-at", "few-ats", "many-ats"])
def test_an_internal_field_name_after_many_at_signs_is_still_caught(ats_before: int) -> None:
    mails = [b'{"trace_id":"m%d","input_summary":"a@b.c"}' % i for i in range(ats_before)]
    forged = b'{"@tracetui:flags":1,"trace_id":"t","@tracetui:agent":"evil"}'
    spans, rejected = LineDecoder().decode([*mails, forged, b'{"trace_id":"z"}'], 1)
    assert rejected == []
    span = spans[ats_before]
    assert (span.trace_id, span.flags, span.agent) == ("t", 0, None)
    assert span.raw == forged
    assert [s.trace_id for s in spans[:ats_before]] == [f"m{i}" for i in range(ats_before)]


REGION_CASES = {
    "plain": b'{"trace_id":"r1"}',
    "internal-key": b'{"trace_id":"r2","@tracetui:flags":1}',
    "escaped-internal-key": b'{"trace_id":"r3","\\u0040tracetui:agent":"evil"}',
    "non-ascii": '{"trace_id":"r4","operation":"é→ü"}'.encode(),
    "invalid-utf8": b'{"trace_id":"r5","operation":"\xff"}',
    "not-an-object": b"[1,2]",
}


@pytest.mark.parametrize("where", ["head", "region"])
@pytest.mark.parametrize("case", list(REGION_CASES))
def test_lines_read_from_the_chunk_decode_as_joined_lines_do(case: str, where: str) -> None:
    """Whole lines handed over as they stand in the chunk (`Frame.rest`) decode exactly as the
    same lines joined, whatever a line holds and wherever it sits in the batch."""
    odd = REGION_CASES[case]
    lines = [b'{"trace_id":"a","parent_id":null}', b'{"trace_id":"b","parent_id":"a"}'] * 3
    lines.insert(0 if where == "head" else 3, odd)
    framer = LineFramer()
    framer.feed(lines[0][:5])
    frame = framer.feed(lines[0][5:] + b"\n" + b"\n".join(lines[1:]) + b"\n")
    assert frame.lines == lines and frame.rest is not None

    def seen(result: tuple[list[Span], list[Rejected]]) -> list[tuple[object, ...]]:
        spans, rejected = result
        return [(s.trace_id, s.flags, s.issues, s.agent, s.operation, s.raw) for s in spans] + [
            (r.line_no, r.reason) for r in rejected
        ]

    with_rest = seen(LineDecoder().decode(frame.lines, 1, 0, frame.rest))
    assert with_rest == seen(LineDecoder().decode(frame.lines, 1, 0))
    assert len(with_rest) == len(lines)
    assert all(seen[1:4] == (0, (), None) for seen in with_rest if len(seen) > 2)  # none forged


MISPAIRED = {
    # A line with two objects and a line with none add up to as many values as lines.
    "two-values-and-a-blank": (
        b'{"trace_id":"a"}\n{"trace_id":"b"} {"trace_id":"c"}\n   \n{"trace_id":"d"}\n',
        [2],
    ),
    # An object broken over two lines, the second also holding a whole object.
    "split-object": (
        b'{"trace_id":"a"}\n{"trace_id":"p",\n"q":1} {"trace_id":"r"}\n{"trace_id":"d"}\n',
        [2, 3],
    ),
    # The same, with escaped internal keys on the continuation line.
    "split-forged": (
        b'{"trace_id":"a"}\n{"trace_id":"p",\n"\\u0040tracetui:agent":"evil",'
        b'"\\u0040tracetui:flags":2} {"trace_id":"r"}\n{"trace_id":"d"}\n',
        [2, 3],
    ),
}


@pytest.mark.parametrize("case", list(MISPAIRED))
@pytest.mark.parametrize("cut", [0, 10], ids=["whole-file", "cut-in-first-line"])
def test_lines_that_hold_two_values_or_half_of_one_are_reported_not_mispaired(
    tmp_path: Path, case: str, cut: int
) -> None:
    """A batch decode reads values across newlines: each span must still come from its own line,
    and the lines that are not one JSON object each are reported with their numbers."""
    data, bad = MISPAIRED[case]
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    store = TraceStore()
    loader = StreamLoader(store, str(path))
    if cut:
        loader.feed(data[:cut])
    loader.feed(data[cut:])
    loader.finish()
    spans = list(store.events())
    assert [(s.trace_id, s.line_no, s.raw) for s in spans] == [
        ("a", 1, b'{"trace_id":"a"}'),
        ("d", 4, b'{"trace_id":"d"}'),
    ]
    assert all(s.agent is None and s.flags == 0 for s in spans)
    assert [r.line_no for r in store.rejected] == bad
    assert all(r.reason.startswith("not valid JSON (") for r in store.rejected)
    if case == "two-values-and-a-blank":
        assert store.rejected[0].reason == (
            "not valid JSON (a second value at byte 18: one object per line)"
        )


LINE_PIECES = st.sampled_from(
    [
        b'{"trace_id":"x1"}',
        b'{"trace_id":"x2","parent_id":"x1","status":"ERROR"}',
        b'{"trace_id":"x3"} {"trace_id":"x4"}',
        b'{"trace_id":"x5",',
        b'"q":1}',
        b'"q":1} {"trace_id":"x6"}',
        b"   ",
        b'{"trace_id":"x7","\\u0040tracetui:flags":1}',
        b'{"trace_id":"x8","metadata":{"agent":{"name":"n"}}}',
        b"[1]",
        b'{"trace_id":"\xff"}',
        b' {"trace_id":"x9"} ',
        b'{"trace_id":"y1","m":',  # a line that is right at one end only ...
        b'{"k":1}} {"trace_id":"y2"}',
        b'{"trace_id":"y3"} {"trace_id":"y4","m":{}',
        b"}",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE_PIECES, min_size=2, max_size=12))
def test_a_batch_decodes_exactly_as_its_lines_one_by_one(lines: list[bytes]) -> None:
    def seen(spans: list[Span], rejected: list[Rejected]) -> list[tuple[object, ...]]:
        return sorted(
            [(s.line_no, s.trace_id, s.raw, s.flags, s.agent, s.issues) for s in spans]
            + [(r.line_no, r.reason) for r in rejected],
            key=lambda t: t[0],  # type: ignore[arg-type, return-value]
        )

    decoder = LineDecoder()
    one_by_one: list[tuple[object, ...]] = []
    for i, line in enumerate(lines, 1):
        one_by_one += seen(*decoder.decode([line], i))
    assert seen(*decoder.decode(lines, 1)) == one_by_one


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"trace_id":"b"} {"trace_id":"c"}', "a second value at byte 18: one object per line"),
        (b'{"a":1}[2]', "a second value at byte 8: one object per line"),
        (b'{"trace_id":"p",', "the line ends inside a value"),
        (b'"abc', "the line ends inside a value"),
        (b"404 Not Found", "JSON is malformed: trailing characters (byte 5)"),
        (b'{"trace_id":"a"},', "JSON is malformed: trailing characters (byte 17)"),
        (b"no", "Input data was truncated"),
    ],
)
def test_a_line_that_is_not_one_value_says_what_is_wrong_with_it(line: bytes, reason: str) -> None:
    spans, rejected = LineDecoder().decode([line], 7)
    assert spans == []
    assert [(r.line_no, r.reason) for r in rejected] == [(7, f"not valid JSON ({reason})")]


# ---- hostile lines through a real file ---------------------------------------------------------

BIG = b'{"trace_id":"big","input_summary":"' + b"a" * (3 * 1024 * 1024) + b'"}'
DEEP = b"[" * 100_000
DEEP_IN_FIELD = b'{"trace_id":"deep","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

HOSTILE: list[Any] = [
    pytest.param(b"this is not json", "not valid JSON", id="not-json"),
    pytest.param(b'{"trace_id": "cut', "not valid JSON", id="truncated-json"),
    pytest.param(b"[1, 2, 3]", "not a JSON object", id="json-array"),
    pytest.param(b'"a string"', "not a JSON object", id="json-string"),
    pytest.param(b"42", "not a JSON object", id="json-number"),
    pytest.param(b"null", "not a JSON object", id="json-null"),
    pytest.param(b"\xff\xfe{garbage", "not valid", id="invalid-utf8-outside-json"),
    pytest.param(
        b'{"trace_id":"\xff\xfe","operation":"x"}', "not valid UTF-8", id="invalid-utf8-in-trace-id"
    ),
    pytest.param(
        b'{"trace_id":"u","parent_id":"g1","x":"\xc3"}',
        "not valid UTF-8",
        id="invalid-utf8-in-unknown-field",
    ),
    pytest.param(b'{"trace_id":"a\x00b"}', "not valid JSON", id="nul-inside-string"),
    pytest.param(b"\x1b]0;title\x07\x1b[2J", "not valid JSON", id="terminal-escapes"),
    pytest.param(BIG, "longer than the cap", id="3MB-line"),
    pytest.param(DEEP, "JSON nested too deeply", id="deep-nesting"),
    pytest.param(DEEP_IN_FIELD, "JSON nested too deeply", id="deep-nesting-in-a-field"),
]


def _surrounded(kit: TraceKit, bad: bytes) -> Any:
    """A file: BOM + good line 1, good line 2 (CRLF), the bad line 3, good 4, good 5 (no EOL)."""
    path = kit.tmp_path / "hostile.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + kit.encode(kit.event("g1", operation="one"))
        + b"\n"
        + kit.encode(kit.event("g2", "g1", operation="two"))
        + b"\r\n"
        + bad
        + b"\n"
        + kit.encode(kit.event("g4", "g1", operation="four"))
        + b"\r\n"
        + kit.encode(kit.event("g5", operation="five"))
    )
    return path


@pytest.mark.parametrize(("bad", "reason"), HOSTILE)
def test_hostile_line_is_counted_and_neighbours_arrive(
    kit: TraceKit, bad: bytes, reason: str
) -> None:
    path = _surrounded(kit, bad)
    loaded = kit.load(path)
    spans = loaded.spans()
    assert [(s.trace_id, s.line_no) for s in spans] == [("g1", 1), ("g2", 2), ("g4", 4), ("g5", 5)]
    assert [s.raw for s in spans] == [
        kit.encode(kit.event(t, p, operation=o))
        for t, p, o in [("g1", None, "one"), ("g2", "g1", "two"), ("g4", "g1", "four")]
    ] + [kit.encode(kit.event("g5", operation="five"))]
    assert [(origin, rej.line_no) for origin, rej in loaded.rejected] == [(str(path), 3)]
    rej = loaded.rejected[0][1]
    assert reason in rej.reason
    assert "\x1b" not in rej.preview and "\x00" not in rej.preview and "\x07" not in rej.preview
    assert len(rej.preview) <= 121
    assert loaded.store.rejected == [rej]
    assert [c.operation for c in loaded.store.children(spans[0])] == ["two", "four"]


def test_hostile_preview_shows_escapes(kit: TraceKit) -> None:
    loaded = kit.load(_surrounded(kit, "\x1b]0;title\x07 \u202e".encode()))
    assert loaded.rejected[0][1].preview == "\\x1b]0;title\\x07 \\u202e"


def test_hostile_preview_shows_invalid_utf8_bytes(kit: TraceKit) -> None:
    loaded = kit.load(_surrounded(kit, b"bad \xff"))
    assert loaded.rejected[0][1].preview == "bad \\xff"


def test_preview_of_invalid_utf8_next_to_control_characters(kit: TraceKit) -> None:
    loaded = kit.load(_surrounded(kit, b"\x1b \xff"))
    assert loaded.rejected[0][1].preview == "\\x1b \\xff"


def test_invalid_utf8_anywhere_never_reaches_the_output(kit: TraceKit) -> None:
    loaded = kit.load(_surrounded(kit, b'{"trace_id":"u","parent_id":"g1","x":"\xc3"}'))
    assert [r.line_no for _, r in loaded.rejected] == [3]
    assert len(kit.text(loaded.store)) == 4
    assert sorted(kit.json_ids(kit.json(loaded.store))) == ["g1", "g2", "g4", "g5"]


def test_whitespace_only_lines_count_as_blank(kit: TraceKit) -> None:
    loaded = kit.load(_surrounded(kit, b" \t  "))
    assert loaded.rejected == []
    assert [(s.trace_id, s.line_no) for s in loaded.spans()] == [
        ("g1", 1),
        ("g2", 2),
        ("g4", 4),
        ("g5", 5),
    ]


def test_nul_runs_are_skipped_and_noticed_without_shifting_line_numbers(kit: TraceKit) -> None:
    path = kit.tmp_path / "nul.jsonl"
    path.write_bytes(
        kit.encode(kit.event("a")) + b"\n"
        b"\x00\x00\x00\x00\n"
        + b"\x00\x00"
        + kit.encode(kit.event("c"))
        + b"\n"
        + kit.encode(kit.event("d"))
        + b"\n"
    )
    loaded = kit.load(path)
    assert [(s.trace_id, s.line_no) for s in loaded.spans()] == [("a", 1), ("c", 3), ("d", 4)]
    assert loaded.rejected == []
    assert sorted(n.line_no for n in loaded.store.notices) == [2, 3]
    assert all("NUL" in n.text for n in loaded.store.notices)


def test_all_hostile_lines_in_one_file(kit: TraceKit) -> None:
    good = [kit.encode(kit.event(f"g{i}", operation=f"op{i}")) for i in range(8)]
    bad = [
        b"not json",
        b"[1]",
        b"\xff\xfe\xfd",
        b'{"trace_id":"a\x00"}',
        BIG,
        b'{"trace_id":',
        b"true",
    ]
    lines: list[bytes] = []
    for i, b in enumerate(bad):
        lines += [good[i], b]
    lines.append(good[7])
    path = kit.tmp_path / "all.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    loaded = kit.load(path)
    assert [(s.trace_id, s.line_no) for s in loaded.spans()] == [
        (f"g{i}", 2 * i + 1) for i in range(8)
    ]
    assert [r.line_no for _, r in loaded.rejected] == [2, 4, 6, 8, 10, 12, 14]
    assert len(loaded.store.rejected) == 7


def test_wrong_types_line_in_a_file_is_a_span_with_its_line_number(kit: TraceKit) -> None:
    path = kit.write(
        "w.jsonl",
        [
            kit.event("a"),
            {"trace_id": "w", "parent_id": "a", "duration_ms": "slow"},
            kit.event("c"),
        ],
    )
    loaded = kit.load(path)
    w = loaded.by_id()["w"]
    assert w.line_no == 2
    assert w.flags & SCHEMA
    assert loaded.rejected == []


def test_line_numbers_across_several_files(kit: TraceKit) -> None:
    a = kit.write("a.jsonl", [kit.event("a1"), "bad", kit.event("a3")])
    b = kit.write("b.jsonl", ["bad", kit.event("b2")])
    loaded = kit.load(a, b)
    store = loaded.store
    assert [(store.origins[s.origin], s.line_no) for s in loaded.spans()] == [
        (str(a), 1),
        (str(a), 3),
        (str(b), 2),
    ]
    assert [(o, r.line_no) for o, r in loaded.rejected] == [(str(a), 2), (str(b), 1)]


# ---- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "trace_id",
        "parent_id",
        "hrm_layer",
        "status",
        "operation",
        "component",
        "duration_ms",
        "timestamp",
        "metadata",
        "input_summary",
        "other",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=60), max_size=8))
def test_decoder_never_raises_on_bytes(lines: list[bytes]) -> None:
    lines = [ln.replace(b"\n", b"") for ln in lines]
    spans, rejected = TraceKit.decode(lines)
    counted = [i + 1 for i, ln in enumerate(lines) if ln and not ln.isspace()]
    assert sorted([s.line_no for s in spans] + [r.line_no for r in rejected]) == counted


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values) | json_values)
def test_any_json_object_becomes_a_span_and_anything_else_is_rejected(value: Any) -> None:
    line = json.dumps(value).encode()
    spans, rejected = TraceKit.decode([line])
    if isinstance(value, dict):
        assert len(spans) == 1 and not rejected
        span = spans[0]
        assert span.fields() == json.loads(line)
        assert isinstance(span.trace_id, str)
        assert span.parent_id is None or isinstance(span.parent_id, str)
        assert span.duration_ms is None or isinstance(span.duration_ms, float)
    else:
        assert not spans and len(rejected) == 1
        assert "not a JSON object" in rejected[0].reason


def test_oversized_lines_across_read_chunks(kit: TraceKit) -> None:
    """Lines of 5 and 9 MB cross the loader's 4 MiB read chunks; neighbours keep their numbers."""
    path = kit.tmp_path / "huge.jsonl"
    with path.open("wb") as fh:
        fh.write(kit.encode(kit.event("a")) + b"\n")
        fh.write(b'{"trace_id":"big","x":"' + b"y" * (5 << 20) + b'"}\n')
        fh.write(kit.encode(kit.event("b")) + b"\n")
        fh.write(b'{"trace_id":"big2","x":"' + b"y" * (9 << 20) + b'"}\n')
        fh.write(kit.encode(kit.event("c")))
    loaded = kit.load(path)
    assert [(s.trace_id, s.line_no) for s in loaded.spans()] == [("a", 1), ("b", 3), ("c", 5)]
    assert [(r.line_no, "longer than the cap" in r.reason) for _, r in loaded.rejected] == [
        (2, True),
        (4, True),
    ]


def test_oversized_line_report_has_a_preview(kit: TraceKit) -> None:
    loaded = kit.load(_surrounded(kit, BIG))
    assert loaded.rejected[0][1].preview.startswith('{"trace_id":"big"')


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity", 1e300, -1e300, "1e300"])
def test_non_finite_timestamp_strings_are_schema_issues(kit: TraceKit, value: str) -> None:
    span = kit.decode_one(kit.event("t", timestamp=value))
    assert span.start is None
    assert span.flags & SCHEMA


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(field_names, json_values)
        | json_values
        | st.sampled_from(
            [
                b'{"trace_id":"\xff"}',
                b'{"trace_id":"x","@tracetui:flags":1}',
                b"[" * 5000,
                b"not json",
            ]
        ),
        min_size=1,
        max_size=12,
    )
)
def test_batches_keep_every_line_in_its_place(values: list[Any]) -> None:
    """Decoding many lines at once (the batch fast path and its fallbacks) keeps line numbers."""
    lines: list[bytes] = []
    for i, value in enumerate(values):
        if isinstance(value, dict):
            value = {**value, "_n": i}
        lines.append(value if isinstance(value, bytes) else json.dumps(value).encode())
    spans, rejected = TraceKit.decode(lines, first_line_no=10)
    by_line = {s.line_no: s for s in spans}
    bad = {r.line_no: r for r in rejected}
    assert len(by_line) == len(spans) and len(bad) == len(rejected)
    for i, value in enumerate(values):
        line_no = 10 + i
        if isinstance(value, dict):
            span = by_line[line_no]
            assert span.fields()["_n"] == i
            assert span.raw == lines[i]
            assert not span.flags & DUPLICATE
        elif value == b'{"trace_id":"x","@tracetui:flags":1}':
            assert by_line[line_no].flags == 0
        else:
            assert line_no in bad
