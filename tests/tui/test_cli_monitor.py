"""`tracetui [SOURCE...]`, `-f`, no-argument default, and `tracetui snapshot` (CliRunner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tui_helpers import event, trace_tree

from tracetui.cli import main
from tracetui.cli import monitor as monitor_mod


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what the monitor would be started with, instead of taking over the terminal."""
    seen: list[dict[str, Any]] = []

    def record(specs: list[str], **kwargs: Any) -> None:
        seen.append({"specs": specs, **kwargs})

    monkeypatch.setattr(monitor_mod, "run_monitor", record)
    return seen


def test_sources_follow_option_and_group_options_reach_the_monitor(
    calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["app.jsonl", "tcp:9000"]).exit_code == 0
    assert runner.invoke(main, ["-f", "a.jsonl", "--theme", "light"]).exit_code == 0
    result = runner.invoke(
        main, ["--theme", "high-contrast", "--snapshot-dir", str(tmp_path), "b.jsonl", "--poll"]
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["--follow", "c.jsonl", "--contract", "baggage"]).exit_code == 0
    assert [c["specs"] for c in calls] == [
        ["app.jsonl", "tcp:9000"],
        ["a.jsonl"],
        ["b.jsonl"],
        ["c.jsonl"],
    ]
    assert calls[1]["theme"] == "light"
    assert calls[2]["theme"] == "high-contrast" and calls[2]["poll"] is True
    assert calls[2]["snapshot_dir"] == tmp_path
    assert calls[3]["contracts"] == ["baggage"]


def test_no_source_follows_the_tracer_default_and_explains_dopejar_trace(
    calls: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOPEJAR_TRACE_FILE", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, []).exit_code == 0
    assert calls[-1]["specs"] == ["trace.jsonl"]
    assert "DOPEJAR_TRACE=1" in calls[-1]["waiting_hint"]
    (tmp_path / "trace.jsonl").write_bytes(b"")
    assert runner.invoke(main, []).exit_code == 0
    assert calls[-1]["waiting_hint"] is None
    monkeypatch.setenv("DOPEJAR_TRACE_FILE", str(tmp_path / "elsewhere.jsonl"))
    assert runner.invoke(main, ["--theme", "light"]).exit_code == 0
    assert calls[-1]["specs"] == [str(tmp_path / "elsewhere.jsonl")]


def test_subcommands_still_work(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(trace_tree(0)) + b"\n")
    result = CliRunner().invoke(main, ["tree", str(path)])
    assert result.exit_code == 0
    assert result.output.startswith("[alt] transition: L3→L2 #0 → done (40ms)")


def test_bad_theme_and_bad_source_are_clear_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--theme", "nope", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "unknown theme 'nope'" in result.output and "light" in result.output
    result = runner.invoke(main, ["tcp:notaport"])
    assert result.exit_code == 2
    assert "tcp:notaport" in result.output


def test_snapshot_command_writes_the_filtered_view(tmp_path: Path) -> None:
    lines = [line for n in range(6) for line in trace_tree(n, start=1000.0 + n)]
    src = tmp_path / "t.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\nnot json\n")
    prefix = tmp_path / "snap"
    result = CliRunner().invoke(
        main, ["snapshot", str(src), "-o", str(prefix), "--status", "blocked"]
    )
    assert result.exit_code == 0, result.output
    assert "t.jsonl:25: not valid JSON" in result.output
    jsonl = (tmp_path / "snap.jsonl").read_bytes().splitlines()
    assert jsonl == [lines[4 * 2 + 2], lines[4 * 2 + 3], lines[4 * 5 + 2], lines[4 * 5 + 3]]
    txt = (tmp_path / "snap.txt").read_text().splitlines()
    assert txt[0].startswith("[alt] transition: L3→L2 #2") and txt[0].endswith("⟨context⟩")
    assert txt[1].startswith("  └─[foc] gate_check")
    svg = (tmp_path / "snap.svg").read_text()
    assert svg.startswith("<svg") and "gate_check" in svg


def test_snapshot_command_without_svg_and_hostile_text(tmp_path: Path) -> None:
    src = tmp_path / "t.jsonl"
    src.write_bytes(event("[@click=app.quit]", None, inp="\x1b]0;t\x07") + b"\n")
    result = CliRunner().invoke(main, ["snapshot", str(src), "-o", str(tmp_path / "s"), "--no-svg"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("s.*")) == ["s.jsonl", "s.txt"]
    txt = (tmp_path / "s.txt").read_text()
    assert "\\x1b]0;t\\x07" in txt and "\x1b" not in txt
