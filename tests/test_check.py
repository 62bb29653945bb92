"""`tracetui check`: text, JSON and JUnit output, exit statuses, contract errors, a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from test_contracts_helpers import T0, ev

from tracetui.cli import main

CLEAN = [
    ev("alt_1705180800_a3f2", None, "altitude.transition", from_level=3, to_level=2, reason="r"),
    ev(
        "foc_1705180801_b7c1",
        "alt_1705180800_a3f2",
        "focus.lane_switch",
        ts=T0 + 1,
        from_lane="a",
        to_lane="b",
        reason="r",
    ),
]
WARNED = [ev("alt_1705180800_a3f2", None, "altitude.transition", reason="r")]
BROKEN = [
    ev(
        "alt_1705180800_a3f2",
        None,
        "altitude.transition",
        from_level=3,
        to_level=2,
        reason="r",
        correlation_id="c1",
    ),
    ev(
        "foc_1705180801_b7c1",
        "alt_1705180800_a3f2",
        "focus.lane_switch",
        ts=T0 + 1,
        from_lane="a",
        to_lane="b",
        reason="r",
        correlation_id="c2",
    ),
    ev(
        "foc_1705180801_00e1",
        "alt_1705180800_a3f2",
        "focus.lane_switch",
        ts=T0 + 2,
        from_lane="a",
        to_lane="b",
        reason="r",
        correlation_id="c3",
        parent_correlation_id="c1",
    ),
]


def write(path: Path, events: list[dict[str, Any]]) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_clean_trace_exits_zero(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["check", write(tmp_path / "t.jsonl", CLEAN)])
    assert result.exit_code == 0, result.output
    assert "no findings in 2 spans (contracts: preset dopejar)" in result.stdout


def test_warnings_pass_by_default_and_fail_with_fail_on_warning(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = write(tmp_path / "t.jsonl", WARNED)
    assert runner.invoke(main, ["check", path]).exit_code == 0
    assert runner.invoke(main, ["check", path, "--fail-on", "warning"]).exit_code == 1


def test_text_groups_by_trace_with_the_span_line_and_findings_under_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = write(tmp_path / "t.jsonl", BROKEN + WARNED[:0])
    result = runner.invoke(
        main, ["check", path, "--contract", "dopejar", "--contract", "correlation"]
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "trace alt_1705180800_a3f2 — 1 finding"
    assert lines[1].startswith(f"  {path}:2  [foc] lane_switch: in → out")
    assert "propagation.missing_parent_correlation metadata.parent_correlation_id:" in lines[2]
    assert lines[3].startswith("      hint: Set parent_correlation_id")
    assert "1 error(s), 0 warning(s), 0 info in 3 spans" in result.stdout


def test_hostile_text_is_escaped(runner: CliRunner, tmp_path: Path) -> None:
    evil = ev("alt_1705180800_a3f2", None, "altitude.transition", status="\x1b[31mred")
    result = runner.invoke(main, ["check", write(tmp_path / "t.jsonl", [evil])])
    assert "\x1b" not in result.stdout
    assert "\\x1b" in result.stdout


def test_json_lines_one_object_per_finding(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", BROKEN)
    result = runner.invoke(main, ["check", path, "--format", "json", "--contract", "correlation"])
    assert result.exit_code == 1
    [obj] = [json.loads(line) for line in result.stdout.splitlines()]
    assert obj == {
        "rule": "propagation.missing_parent_correlation",
        "severity": "error",
        "trace_id": "foc_1705180801_b7c1",
        "field": "metadata.parent_correlation_id",
        "message": obj["message"],
        "hint": obj["hint"],
        "file": path,
        "line": 2,
    }
    assert "'c1'" in obj["message"]


def test_junit_xml(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [*BROKEN, ev("alt_1705180900_0001", None, "altitude.x")])
    result = runner.invoke(main, ["check", path, "--format", "junit", "--contract", "correlation"])
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout_bytes)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["alt_1705180800_a3f2", "alt_1705180900_0001"]
    [failure] = cases[0].findall("failure")
    assert failure.get("type") == "propagation.missing_parent_correlation"
    assert cases[1].find("failure") is None


def test_bad_contract_exits_two_with_a_clear_message(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("baggage: {deny: session_id}\n")
    path = write(tmp_path / "t.jsonl", CLEAN)
    result = runner.invoke(main, ["check", path, "--contract", "c.yaml"])
    assert result.exit_code == 2
    assert "contract error:" in result.stderr
    assert "c.yaml: baggage.deny: expected a list, got a string" in result.stderr
    result = runner.invoke(main, ["check", path, "--contract", "nosuchpreset"])
    assert result.exit_code == 2 and "not a preset" in result.stderr


def test_usage_errors_exit_two(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(main, ["check", str(tmp_path / "missing.jsonl")]).exit_code == 2
    path = write(tmp_path / "t.jsonl", CLEAN)
    assert runner.invoke(main, ["check", path, "--format", "xml"]).exit_code == 2
    assert runner.invoke(main, ["check"]).exit_code == 2


def test_project_contract_is_used_and_announced(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / ".tracetui.yaml").write_text("severity: {data.missing_key: error}\n")
    result = runner.invoke(main, ["check", write(tmp_path / "t.jsonl", WARNED)])
    assert result.exit_code == 1
    assert "using project contract" in result.stderr and ".tracetui.yaml" in result.stderr


def test_check_as_a_real_process_reading_stdin(tmp_path: Path) -> None:
    data = b"".join(orjson.dumps(e) + b"\n" for e in BROKEN) + b"not json\n"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracetui",
            "check",
            "-",
            "--contract",
            "correlation",
            "--format",
            "json",
        ],
        input=data,
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["rule"] == "propagation.missing_parent_correlation"
    assert b"stdin:4: not valid JSON" in proc.stderr


def test_unreadable_lines_fail_the_check(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write(path, CLEAN)
    with open(path, "ab") as fh:
        fh.write(b"{not json\n")
    result = runner.invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3: not valid JSON" in result.stderr
    assert "no findings in 2 spans" in result.stdout
