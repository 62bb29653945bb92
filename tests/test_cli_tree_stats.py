"""`tracetui tree` and `tracetui stats`: through click's CliRunner and as real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from core_kit import TraceKit

from tracetui import __version__
from tracetui.cli import main
from tracetui.stats import compute

ev = TraceKit.event
VENV_BIN = Path(sys.executable).parent
TRACETUI = VENV_BIN / "tracetui"
ROOT = Path(__file__).resolve().parent.parent


def agent(name: str, **labels: str) -> dict[str, Any]:
    return {"agent": {"name": name, "labels": labels}}


# Operation = trace_id where it helps to read the console lines.
SPANS: list[dict[str, Any]] = [
    ev(
        "mem_1",
        "foc_1",
        hrm_layer="memory",
        operation="memory.write",
        input_summary="altitude.session",
        output_summary="written",
        status="success",
        duration_ms=3,
        metadata={"tokens_saved": 45, **agent("planner", team="core", env="prod")},
    ),
    ev(
        "foc_1",
        "alt_1",
        hrm_layer="FOC",
        operation="gate_check",
        input_summary="WriteApprovalGate",
        output_summary="allowed",
        status="Success",
        duration_ms=2,
        metadata=agent("critic", team="ml", env="dev"),
    ),
    ev(
        "alt_1",
        None,
        hrm_layer="alt",
        operation="altitude.transition",
        input_summary="L3→L2",
        output_summary="success",
        status="success",
        duration_ms=5,
        metadata=agent("planner", team="core", env="dev"),
    ),
    ev(
        "rsn_2",
        "alt_2",
        hrm_layer="rsn",
        operation="think",
        input_summary="Widgets",
        status="error",
        duration_ms=40,
        metadata={"error": "boom", **agent("critic", team="ml", env="prod")},
    ),
    ev(
        "alt_2",
        None,
        hrm_layer="altitude",
        operation="transition",
        input_summary="L2→L1",
        status="blocked",
        duration_ms=7,
        metadata={"gate": "G7", **agent("planner", team="core", env="prod")},
    ),
]
ISSUE_TREE = [
    "[alt] transition: L3→L2 → success (5ms)",
    "  └─[foc] gate_check: WriteApprovalGate → allowed (2ms)",
    "      └─[mem] write: altitude.session → written (3ms) [saved 45 tokens]",
]
TREE_2 = [
    "[alt] transition: L2→L1 ⊘ blocked (7ms) [G7]",
    "  └─[rsn] think: Widgets ✗ error (40ms) [boom]",
]


@pytest.fixture
def trace(kit: TraceKit) -> Path:
    """The spans with two bad lines (3 and 6) among them."""
    lines: list[Any] = [*SPANS[:2], "not json", *SPANS[2:4], "\x1b[31mred", SPANS[4]]
    return kit.write("trace.jsonl", lines)


def invoke(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run a command for real, with this venv's python and scripts."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        list(args), input=stdin, capture_output=True, timeout=timeout, cwd=ROOT, env=env
    )


def bad_json(where: str, preview: str) -> str:
    """A pattern for `WHERE: not valid JSON (<parser detail>): PREVIEW`."""
    return re.escape(f"{where}: not valid JSON (") + r"[^\n]+" + re.escape(f"): {preview}")


def bad_line_report(origin: Path | str) -> list[str]:
    """Patterns for the stderr report of the `trace` fixture's two bad lines and the total."""
    return [
        bad_json(f"{origin}:3", "not json"),
        bad_json(f"{origin}:6", "\\x1b[31mred"),
        re.escape("tracetui: 2 bad lines skipped"),
    ]


def assert_lines_match(text: str, patterns: list[str]) -> None:
    lines = text.splitlines()
    assert len(lines) == len(patterns), lines
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


# ---- tree through CliRunner --------------------------------------------------------------------


def test_tree_prints_the_forest_and_reports_bad_lines(trace: Path) -> None:
    result = invoke("tree", str(trace))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ISSUE_TREE + TREE_2
    assert_lines_match(result.stderr, bad_line_report(trace))
    assert "\x1b" not in result.stderr


def test_strict_exits_1_on_bad_lines_but_still_prints(trace: Path, kit: TraceKit) -> None:
    result = invoke("tree", "--strict", str(trace))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ISSUE_TREE + TREE_2
    assert_lines_match(result.stderr, bad_line_report(trace))
    clean = kit.write("clean.jsonl", SPANS)
    result = invoke("tree", "--strict", str(clean))
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--layer", "mem"],
            [
                "[alt] transition: L3→L2 → success (5ms) ⟨context⟩",
                "  └─[foc] gate_check: WriteApprovalGate → allowed (2ms) ⟨context⟩",
                ISSUE_TREE[2],
            ],
        ),
        (
            ["--hrm", "RSN", "--layer", "memory"],
            [
                "[alt] transition: L3→L2 → success (5ms) ⟨context⟩",
                "  └─[foc] gate_check: WriteApprovalGate → allowed (2ms) ⟨context⟩",
                ISSUE_TREE[2],
                "[alt] transition: L2→L1 ⊘ blocked (7ms) [G7] ⟨context⟩",
                TREE_2[1],
            ],
        ),
        (["--status", "ERROR"], [TREE_2[0] + " ⟨context⟩", TREE_2[1]]),
        (["--status", "error", "--status", "blocked"], TREE_2),
        (["--status", "error", "--layer", "alt"], []),
        (
            ["--agent", "critic"],
            [ISSUE_TREE[0] + " ⟨context⟩", ISSUE_TREE[1], TREE_2[0] + " ⟨context⟩", TREE_2[1]],
        ),
        (["--label", "env=dev"], ISSUE_TREE[:2]),
        (
            ["--label", "team=core", "--label", "team=ml", "--label", "env=prod"],
            [ISSUE_TREE[0] + " ⟨context⟩", ISSUE_TREE[1] + " ⟨context⟩", ISSUE_TREE[2], *TREE_2],
        ),
        (["--grep", "widgets"], [TREE_2[0] + " ⟨context⟩", TREE_2[1]]),
        (["--grep", "^gate_", "--regex"], [ISSUE_TREE[0] + " ⟨context⟩", ISSUE_TREE[1]]),
        (["--trace-id", "foc_1"], ISSUE_TREE),
        (["--trace-id", "rsn_2"], TREE_2),
        (["--last", "1"], TREE_2),
        (["--last", "1", "--status", "success"], ISSUE_TREE),  # the last tree that matches
        (["--max-events", "3"], TREE_2),
    ],
)
def test_tree_filters(kit: TraceKit, args: list[str], expected: list[str]) -> None:
    path = kit.write("t.jsonl", SPANS)
    result = invoke("tree", str(path), *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == expected


def test_tree_json(kit: TraceKit) -> None:
    path = kit.write("t.jsonl", SPANS)
    result = invoke("tree", "--format", "json", str(path))
    assert result.exit_code == 0
    forest = json.loads(result.stdout)
    assert [n["trace_id"] for n in forest] == ["alt_1", "alt_2"]
    alt = forest[0]
    assert {k: v for k, v in alt.items() if k != "children"} == SPANS[2]
    [foc] = alt["children"]
    assert {k: v for k, v in foc.items() if k != "children"} == SPANS[1]
    [mem] = foc["children"]
    assert mem["trace_id"] == "mem_1" and mem["children"] == []
    assert mem["metadata"]["tokens_saved"] == 45


def test_tree_json_with_filter_marks_context(kit: TraceKit) -> None:
    path = kit.write("t.jsonl", SPANS)
    result = invoke("tree", "--format", "json", "--status", "error", str(path))
    forest = json.loads(result.stdout)
    assert len(forest) == 1
    assert forest[0]["trace_id"] == "alt_2" and forest[0]["_tracetui"] == {"context": True}
    assert [k["trace_id"] for k in forest[0]["children"]] == ["rsn_2"]


def test_tree_reads_stdin(kit: TraceKit) -> None:
    data = b"".join(kit.encode(s) + b"\n" for s in SPANS) + b"oops\n"
    result = invoke("tree", "-", stdin=data)
    assert result.stdout.splitlines() == ISSUE_TREE + TREE_2
    assert result.stderr.splitlines()[0].startswith("stdin:6: not valid JSON")


def test_tree_several_files(kit: TraceKit) -> None:
    a = kit.write("a.jsonl", SPANS[:3])
    b = kit.write("b.jsonl", ["junk", *SPANS[3:]])
    result = invoke("tree", str(a), str(b))
    assert result.stdout.splitlines() == ISSUE_TREE + TREE_2
    assert_lines_match(
        result.stderr, [bad_json(f"{b}:1", "junk"), re.escape("tracetui: 1 bad line skipped")]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "team"], "'team' is not KEY=VALUE"),
        (["--grep", "(", "--regex"], "--grep"),
        (["--format", "xml"], "xml"),
        (["--last", "-1"], "--last"),
    ],
)
def test_tree_usage_errors(kit: TraceKit, args: list[str], message: str) -> None:
    path = kit.write("t.jsonl", SPANS)
    result = invoke("tree", str(path), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["tree", "stats"])
def test_missing_file_is_a_clear_error(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.jsonl"
    result = invoke(command, str(missing))
    assert result.exit_code != 0
    assert str(missing) in result.stderr and "No such file" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["tree", "stats"])
def test_missing_file_exits_2(tmp_path: Path, command: str) -> None:
    assert invoke(command, str(tmp_path / "nope.jsonl")).exit_code == 2


def test_version_and_help() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.stdout
    result = invoke("--help")
    assert result.exit_code == 0
    assert "tree" in result.stdout and "stats" in result.stdout
    result = invoke("tree", "--help")
    for option in ["--layer", "--hrm", "--status", "--agent", "--label", "--grep", "--trace-id"]:
        assert option in result.stdout
    for option in ["--last", "--format", "--strict", "--max-events"]:
        assert option in result.stdout
    assert "--format" in invoke("stats", "--help").stdout


# ---- stats -------------------------------------------------------------------------------------


def test_stats_text(trace: Path) -> None:
    result = invoke("stats", str(trace))
    assert result.exit_code == 0
    out = result.stdout.splitlines()
    assert out[0] == "5 events"
    rows = {line.split()[0]: line.split() for line in out[3:7]}
    assert rows["altitude"] == ["altitude", "2", "6ms", "5ms", "7ms", "7ms", "0", "1"]
    assert rows["focus"] == ["focus", "1", "2ms", "2ms", "2ms", "2ms", "0", "0"]
    assert rows["reasoning"] == ["reasoning", "1", "40ms", "40ms", "40ms", "40ms", "1", "0"]
    assert rows["memory"] == ["memory", "1", "3ms", "3ms", "3ms", "3ms", "0", "0"]
    assert [line.split()[0] for line in out[3:7]] == ["altitude", "focus", "reasoning", "memory"]
    assert "slowest:" in out
    slow = out[out.index("slowest:") + 1]
    assert slow.split() == ["40ms", "[rsn]", "think", "rsn_2"]
    assert "status: success 3, error 1, blocked 1" in out
    assert "agents: planner 3, critic 2" in out
    assert "bad lines: 2" in out
    assert_lines_match(result.stderr, bad_line_report(trace))


def test_stats_json(trace: Path) -> None:
    result = invoke("stats", "--format", "json", "--slowest", "2", str(trace))
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["events"] == 5
    assert stats["bad_lines"] == 2
    layers = {row["layer"]: row for row in stats["layers"]}
    assert layers["altitude"] == {
        "layer": "altitude",
        "ops": 2,
        "avg_ms": 6.0,
        "p50_ms": 5.0,
        "p95_ms": 7.0,
        "max_ms": 7.0,
        "errors": 0,
        "blocked": 1,
    }
    assert layers["reasoning"]["errors"] == 1
    assert [s["trace_id"] for s in stats["slowest"]] == ["rsn_2", "alt_2"]
    assert stats["statuses"] == {"success": 3, "error": 1, "blocked": 1}
    assert stats["agents"] == {"planner": 3, "critic": 2}
    assert stats["evicted"] == 0


def test_stats_strict_and_max_events(trace: Path) -> None:
    assert invoke("stats", "--strict", str(trace)).exit_code == 1
    result = invoke("stats", "--format", "json", "--max-events", "2", str(trace))
    stats = json.loads(result.stdout)
    assert stats["events"] == 2 and stats["evicted"] == 3
    text = invoke("stats", "--max-events", "2", str(trace)).stdout.splitlines()
    assert "evicted: 3" in text


def test_stats_percentiles(kit: TraceKit) -> None:
    spans, _ = kit.decode([ev(f"s{i}", hrm_layer="alt", duration_ms=i) for i in range(1, 21)])
    [row] = compute(spans).layers
    assert (row.ops, row.avg_ms, row.p50_ms, row.p95_ms, row.max_ms) == (20, 10.5, 10, 19, 20)


# ---- real subprocesses -------------------------------------------------------------------------


def test_python_m_tracetui_tree(trace: Path) -> None:
    proc = run(sys.executable, "-m", "tracetui", "tree", str(trace))
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == ISSUE_TREE + TREE_2
    assert_lines_match(proc.stderr.decode(), bad_line_report(trace))


def test_console_script_tree_json_and_strict(trace: Path) -> None:
    proc = run(str(TRACETUI), "tree", "--format", "json", "--strict", str(trace))
    assert proc.returncode == 1
    assert [n["trace_id"] for n in json.loads(proc.stdout)] == ["alt_1", "alt_2"]
    assert_lines_match(proc.stderr.decode(), bad_line_report(trace))
    assert b"\x1b" not in proc.stderr


def test_console_script_stats_and_stdin(trace: Path) -> None:
    proc = run(str(TRACETUI), "stats", "--format", "json", "-", stdin=trace.read_bytes())
    assert proc.returncode == 0
    stats = json.loads(proc.stdout)
    assert stats["events"] == 5 and stats["bad_lines"] == 2
    assert_lines_match(proc.stderr.decode(), bad_line_report("stdin"))


def test_console_script_version_and_help() -> None:
    proc = run(str(TRACETUI), "--version")
    assert proc.returncode == 0 and __version__ in proc.stdout.decode()
    proc = run(sys.executable, "-m", "tracetui", "--help")
    assert proc.returncode == 0 and "tree" in proc.stdout.decode()


def test_console_script_missing_file(tmp_path: Path) -> None:
    proc = run(str(TRACETUI), "tree", str(tmp_path / "nope.jsonl"))
    assert proc.returncode != 0
    assert "No such file" in proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


def test_closed_pipe_ends_quietly(kit: TraceKit) -> None:
    path = kit.write("many.jsonl", [ev(f"s{i}", operation="x" * 80) for i in range(20_000)])
    with subprocess.Popen(
        [str(TRACETUI), "tree", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert first.startswith(b"[?] xxxx")
    assert code == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_hostile_strings_never_reach_the_terminal(kit: TraceKit) -> None:
    evil = "\x1b]0;title\x07\u202e[@click=app.quit]"
    path = kit.write(
        "evil.jsonl",
        [
            ev(
                evil,
                None,
                hrm_layer=evil,
                operation=evil,
                input_summary=evil,
                status=evil,
                duration_ms=1,
                metadata={"agent": evil},
            ),
            ev("kid", evil, operation=evil, status="error", metadata={"error": evil}),
            "\x1b]0;bad line\x07",
        ],
    )
    escaped = "\\x1b]0;title\\x07\\u202e[@click=app.quit]"
    for command in (
        ["tree"],
        ["stats"],
        ["tree", "--format", "json"],
        ["stats", "--format", "json"],
    ):
        proc = run(str(TRACETUI), *command, str(path))
        assert proc.returncode == 0, proc.stderr
        assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
        assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr
        assert "\\x1b]0;bad line\\x07" in proc.stderr.decode()
        if "json" not in command:
            assert "\u202e" not in proc.stdout.decode()
            assert escaped in proc.stdout.decode()


def test_unknown_trace_id_says_so(trace: Path) -> None:
    result = invoke("tree", str(trace), "--trace-id", "no\x1b]0;t\x07pe")
    assert result.exit_code == 1 and result.stdout == ""
    assert "no span has trace_id 'no\\x1b]0;t\\x07pe'" in result.stderr


def test_stats_of_an_empty_file(kit: TraceKit) -> None:
    result = invoke("stats", str(kit.write("empty.jsonl", [])))
    assert result.exit_code == 0
    assert "status: (no events)" in result.stdout and "0 events" in result.stdout
