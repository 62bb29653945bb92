"""The console format, durations, markers and the sanitizing of hostile strings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from core_kit import TraceKit

from tracetui.formatting import console_line, describe, format_duration
from tracetui.sanitize import preview_bytes, sanitize

ev = TraceKit.event

ISSUE_EXAMPLE = [
    ev(
        "mem_1705180800_0003",
        "foc_1705180800_0002",
        hrm_layer="memory",
        operation="memory.write",
        input_summary="altitude.session",
        output_summary="written",
        status="success",
        duration_ms=3,
        metadata={"tokens_saved": 45},
    ),
    ev(
        "foc_1705180800_0002",
        "alt_1705180800_0001",
        hrm_layer="FOC",
        operation="gate_check",
        input_summary="WriteApprovalGate",
        output_summary="allowed",
        status="Success",
        duration_ms=2,
    ),
    ev(
        "alt_1705180800_0001",
        None,
        hrm_layer="alt",
        operation="altitude.transition",
        input_summary="L3→L2",
        output_summary="success",
        status="success",
        duration_ms=5,
        timestamp="2024-01-14T10:00:00Z",
    ),
]


def test_issue_example_is_printed_exactly(kit: TraceKit) -> None:
    store = kit.load(kit.write("issue.jsonl", ISSUE_EXAMPLE)).store
    assert kit.text(store) == [
        "[alt] transition: L3→L2 → success (5ms)",
        "  └─[foc] gate_check: WriteApprovalGate → allowed (2ms)",
        "      └─[mem] write: altitude.session → written (3ms) [saved 45 tokens]",
    ]


def test_siblings_use_branch_and_guide_lines(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            ev("r", None, operation="root"),
            ev("a", "r", operation="a"),
            ev("a1", "a", operation="a1"),
            ev("a2", "a", operation="a2"),
            ev("b", "r", operation="b"),
            ev("b1", "b", operation="b1"),
        ]
    )
    assert kit.text(store) == [
        "[?] root",
        "  ├─[?] a",
        "  │   ├─[?] a1",
        "  │   └─[?] a2",
        "  └─[?] b",
        "      └─[?] b1",
    ]


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            ev("t", hrm_layer="foc", operation="gate", input_summary="G", status="BLOCKED"),
            "[foc] gate: G ⊘ blocked",
        ),
        (
            ev(
                "t",
                hrm_layer="mem",
                operation="memory.write",
                status="error",
                duration_ms=1250,
                metadata={"error": "disk full"},
            ),
            "[mem] write ✗ error (1.25s) [disk full]",
        ),
        (
            ev("t", hrm_layer="sys", operation="x", status="blocked", metadata={"gate": "G7"}),
            "[sys] x ⊘ blocked [G7]",
        ),
        (ev("t", hrm_layer="Quantum", operation="x", status="weird"), "[Quantum] x ? weird"),
        (
            ev("t", operation="op", duration_ms="7ms"),
            '[?] op (7ms) ⟨schema: duration_ms: expected a number, got string "7ms"⟩',
        ),
    ],
)
def test_console_line_parts(kit: TraceKit, event: dict[str, Any], line: str) -> None:
    assert console_line(kit.decode_one(event)) == line


def test_long_summaries_are_clipped(kit: TraceKit) -> None:
    label = describe(kit.decode_one(ev("t", input_summary="x" * 500)))
    assert len(label.input) == 120 and label.input.endswith("…")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, ""),
        (0, "0.00ms"),
        (0.42, "0.42ms"),
        (5, "5ms"),
        (9.5, "9.5ms"),
        (230, "230ms"),
        (999, "999ms"),
        (1250, "1.25s"),
        (61_000, "61.00s"),
        (1e308, "1e+305s"),
    ],
)
def test_format_duration(ms: float | None, text: str) -> None:
    assert format_duration(ms) == text


# ---- hostile strings ---------------------------------------------------------------------------

OSC_TITLE = "\x1b]0;title\x07"
RLO = "\u202e"
MARKUP = "[@click=app.quit]"
HOSTILE_TEXT = f"{OSC_TITLE}x{RLO}y{MARKUP}[/]"
ESCAPED_TEXT = "\\x1b]0;title\\x07x\\u202ey[@click=app.quit][/]"


def test_sanitize() -> None:
    assert sanitize(OSC_TITLE) == "\\x1b]0;title\\x07"
    assert sanitize(RLO) == "\\u202e"
    assert sanitize(MARKUP) == MARKUP
    assert sanitize("a\nb\tc\r") == "a\\nb\\tc\\r"
    assert sanitize("\U000e0001") == "\\U000e0001"
    assert sanitize("\x9b31m") == "\\x9b31m"
    assert sanitize("plain C:\\path é ü 漢字") == "plain C:\\path é ü 漢字"
    assert sanitize(HOSTILE_TEXT) == ESCAPED_TEXT
    assert sanitize("\x1b" * 5000) == "\\x1b" * 5000


def test_preview_bytes() -> None:
    assert preview_bytes(b"\x1b[2J ok") == "\\x1b[2J ok"
    long = preview_bytes(b"a" * 1000)
    assert long == "a" * 120 + "…"


def _hostile_event(trace_id: str, parent_id: str | None = None) -> dict[str, Any]:
    return ev(
        trace_id,
        parent_id,
        hrm_layer=HOSTILE_TEXT,
        operation=HOSTILE_TEXT,
        component=HOSTILE_TEXT,
        input_summary=HOSTILE_TEXT,
        output_summary=HOSTILE_TEXT,
        status=HOSTILE_TEXT,
        metadata={"error": HOSTILE_TEXT, "gate": HOSTILE_TEXT, "agent": HOSTILE_TEXT},
    )


def test_hostile_strings_are_escaped_in_text_output(kit: TraceKit) -> None:
    store = kit.load(
        kit.write(
            "evil.jsonl",
            [
                _hostile_event("root"),
                _hostile_event("kid", "root"),
                _hostile_event("orphan", HOSTILE_TEXT),
            ],
        )
    ).store
    lines = kit.text(store)
    assert len(lines) == 3
    for line in lines:
        assert "\x1b" not in line and "\x07" not in line and RLO not in line
        assert line.count(ESCAPED_TEXT) >= 3
    assert lines[0].startswith("[\\x1b]0;tit")
    assert f"⟨parent {ESCAPED_TEXT} missing⟩" in lines[2]


def test_hostile_strings_survive_json_output_exactly(kit: TraceKit) -> None:
    events = [_hostile_event("root"), _hostile_event("kid", "root")]
    store = kit.load(kit.write("evil.jsonl", events)).store
    data = kit.json_bytes(store)
    assert b"\x1b" not in data and b"\x07" not in data
    forest = json.loads(data)
    assert {k: v for k, v in forest[0].items() if k != "children"} == events[0]
    assert {k: v for k, v in forest[0]["children"][0].items() if k != "children"} == events[1]


def test_schema_issues_are_escaped(kit: TraceKit) -> None:
    line = console_line(kit.decode_one({"trace_id": "t", "duration_ms": OSC_TITLE}))
    assert "\x1b" not in line and "\x07" not in line
    assert "duration_ms" in line


# ---- JSON node shape ---------------------------------------------------------------------------


def test_json_nodes_always_carry_both_ids(kit: TraceKit) -> None:
    store = kit.store_of([b'{"trace_id":"a"}', b'{"trace_id":"b","parent_id":"a","x":1}'])
    [a] = kit.json(store)
    assert (a["trace_id"], a["parent_id"]) == ("a", None)
    [b] = a["children"]
    assert (b["trace_id"], b["parent_id"], b["x"]) == ("b", "a", 1)


def test_json_nodes_carry_both_ids_when_id_names_appear_as_values(kit: TraceKit) -> None:
    store = kit.store_of(
        [
            b'{"trace_id":"a","input_summary":"parent_id"}',
            b'{"parent_id":null,"input_summary":"trace_id"}',
        ]
    )
    forest = kit.json(store)
    assert [("trace_id" in n, "parent_id" in n) for n in forest] == [(True, True), (True, True)]
    assert forest[0]["parent_id"] is None


def test_json_roots_keep_their_own_parent_id_and_gain_one_when_absent(kit: TraceKit) -> None:
    lines = [
        b'{"trace_id":"r1","metadata":{"parent_id":"not-top-level"}}',
        b'{"trace_id":"r2","parent_id":null,"x":1}',
        b'{"trace_id":"r3","parent_id":""}',
        b'{"trace_id":"k","parent_id":"r1"}',
    ]
    data = kit.json_bytes(kit.store_of(lines))
    assert data.count(b'"parent_id"') == 5  # r1's nested one and its added one: no duplicate keys
    forest = json.loads(data)
    assert [n["trace_id"] for n in forest] == ["r1", "r2", "r3"]
    for node, line in zip(forest, lines, strict=False):
        original = json.loads(line)
        assert {k: v for k, v in node.items() if k not in ("children", "parent_id")} == {
            k: v for k, v in original.items() if k != "parent_id"
        }
        assert node["parent_id"] == original.get("parent_id")
    assert [c["trace_id"] for c in forest[0]["children"]] == ["k"]


def test_a_lines_own_tracetui_key_cannot_fake_annotations(kit: TraceKit) -> None:
    store = kit.store_of([b'{"trace_id":"a","parent_id":null,"_tracetui":{"duplicate":true}}'])
    [node] = kit.json(store)
    assert not node.get("_tracetui", {}).get("duplicate")


def test_a_span_without_operation_is_named_by_its_id(kit: TraceKit) -> None:
    store = kit.store_of([b'{"trace_id":"b3","status":"error"}'])
    assert kit.text(store) == ["[?] b3 ✗ error"]
