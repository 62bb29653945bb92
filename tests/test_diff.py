"""`tracetui diff`: structure comparison blind to ids, timing and sibling order."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from test_contracts_helpers import T0, ev

from tracetui.cli import main
from tracetui.contracts.diff import compare
from tracetui.load import load_paths
from tracetui.store import TraceStore

GOLDEN = [
    ev(
        "mem_1705180802_c8d2",
        "foc_1705180801_b7c1",
        "memory.write",
        ts=T0 + 2,
        namespace="altitude",
        key="session",
        tier="warm",
        tokens_saved=45,
        correlation_id="c3",
    ),
    ev(
        "rsn_1705180801_0001",
        "alt_1705180800_a3f2",
        "reasoning.route",
        ts=T0 + 1.5,
        strategy="direct",
        reason="simple",
    ),
    ev(
        "foc_1705180801_b7c1",
        "alt_1705180800_a3f2",
        "focus.gate_check",
        ts=T0 + 1,
        gate_type="write",
        decision="allow",
        reason="consent",
        correlation_id="c2",
    ),
    ev(
        "alt_1705180800_a3f2",
        None,
        "altitude.transition",
        from_level=3,
        to_level=2,
        reason="tactical",
        correlation_id="c1",
        run_id="run-1",
    ),
]


def rerun(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same run again: new ids, timestamps, durations, correlation and run ids, other order."""
    out = copy.deepcopy(events)
    ids = {e["trace_id"]: e["trace_id"][:-4] + "beef" for e in out}
    for i, e in enumerate(out):
        e["trace_id"] = ids[e["trace_id"]]
        e["parent_id"] = ids.get(e["parent_id"]) if e["parent_id"] else None
        e["timestamp"] += 86400
        e["duration_ms"] = 7.5 * (i + 1)
        meta = e["metadata"]
        if "correlation_id" in meta:
            meta["correlation_id"] = "x" + meta["correlation_id"]
        if "run_id" in meta:
            meta["run_id"] = "run-2"
    return list(reversed(out))


def write(path: Path, events: list[dict[str, Any]]) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path.name


def load(path: Path) -> TraceStore:
    store = TraceStore()
    load_paths(store, [str(path)])
    return store


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_equal_under_reordering_new_ids_and_timing(runner: CliRunner, tmp_path: Path) -> None:
    g = write(tmp_path / "g.jsonl", GOLDEN)
    n = write(tmp_path / "n.jsonl", rerun(GOLDEN))
    result = runner.invoke(main, ["diff", g, n])
    assert result.exit_code == 0, result.output
    assert result.stdout == "no differences (4 spans)\n"
    assert compare(load(tmp_path / g), load(tmp_path / n)).equal


def test_siblings_with_the_same_operation_pair_by_content(tmp_path: Path) -> None:
    twins = [
        ev("alt_1_1", None, "altitude.plan"),
        ev("mem_1_2", "alt_1_1", "memory.read", key="a", tier="hot"),
        ev("mem_1_3", "alt_1_1", "memory.read", key="b", tier="hot"),
    ]
    changed = copy.deepcopy(twins)
    changed[1], changed[2] = changed[2], changed[1]
    changed[1]["metadata"]["tier"] = "cold"  # key b, now cold
    write(tmp_path / "g", twins)
    write(tmp_path / "n", changed)
    result = compare(load(tmp_path / "g"), load(tmp_path / "n"))
    [change] = result.changed
    assert change.golden.trace_id == "mem_1_3"
    assert [(a.path, a.golden, a.new) for a in change.attrs] == [
        ("metadata.tier", '"hot"', '"cold"')
    ]
    assert not result.added and not result.removed


def test_real_differences_are_reported(runner: CliRunner, tmp_path: Path) -> None:
    new = rerun(GOLDEN)
    by_op = {e["operation"]: e for e in new}
    del new[new.index(by_op["reasoning.route"])]  # removed
    by_op["focus.gate_check"]["status"] = "blocked"  # changed
    del by_op["memory.write"]["metadata"]["namespace"]  # changed, and a finding appears
    new.append(
        ev(
            "lrn_1705180803_0001",
            by_op["altitude.transition"]["trace_id"],
            "learning.pattern_add",
            ts=T0 + 86403,
            pattern_code="P1",
            source="s",
        )
    )  # added
    g = write(tmp_path / "g.jsonl", GOLDEN)
    n = write(tmp_path / "n.jsonl", new)
    result = runner.invoke(main, ["diff", g, n])
    assert result.exit_code == 1
    out = result.stdout
    assert "- removed  g.jsonl:2  [alt] transition › [rsn] route\n" in out
    assert "+ added    n.jsonl:4  [alt] transition › [lrn] pattern_add\n" in out
    assert "~ changed  g.jsonl:3 → n.jsonl:2  [alt] transition › [foc] gate_check\n" in out
    assert '           status: "success" → "blocked"\n' in out
    assert '           metadata.namespace: "altitude" → (absent)\n' in out
    assert "+ finding  warning data.missing_key metadata.namespace at n.jsonl:3" in out
    assert out.endswith(
        "1 added, 1 removed, 2 changed; findings: 1 appeared, 0 disappeared "
        "(4 golden spans, 4 new)\n"
    )


def test_findings_that_disappeared(tmp_path: Path, runner: CliRunner) -> None:
    broken = copy.deepcopy(GOLDEN)
    broken[0]["status"] = "weird"
    g = write(tmp_path / "g.jsonl", broken)
    n = write(tmp_path / "n.jsonl", rerun(GOLDEN))
    result = runner.invoke(main, ["diff", g, n, "--ignore", "status"])
    assert result.exit_code == 1
    assert "- finding  error schema.unknown_status status at g.jsonl:1" in result.stdout
    assert "changed" not in result.stdout.split("\n")[0]


def test_ignore_option(runner: CliRunner, tmp_path: Path) -> None:
    new = rerun(GOLDEN)
    for e in new:
        e["metadata"]["tokens"] = 123
        e["component"] = "moved.py"
    g = write(tmp_path / "g.jsonl", GOLDEN)
    n = write(tmp_path / "n.jsonl", new)
    assert runner.invoke(main, ["diff", g, n]).exit_code == 1
    result = runner.invoke(main, ["diff", g, n, "--ignore", "metadata.tokens", "--ignore", "comp*"])
    assert result.exit_code == 0, result.stdout


def test_usage_and_contract_errors_exit_two(runner: CliRunner, tmp_path: Path) -> None:
    g = write(tmp_path / "g.jsonl", GOLDEN)
    assert runner.invoke(main, ["diff", g, str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(main, ["diff", "-", "-"]).exit_code == 2
    assert runner.invoke(main, ["diff", g]).exit_code == 2
    result = runner.invoke(main, ["diff", g, g, "--contract", "nope"])
    assert result.exit_code == 2 and "contract error" in result.stderr


def test_diff_as_a_real_process(tmp_path: Path) -> None:
    g = write(tmp_path / "g.jsonl", GOLDEN)
    n = write(tmp_path / "n.jsonl", rerun(GOLDEN)[1:])
    proc = subprocess.run(
        [sys.executable, "-m", "tracetui", "diff", g, n],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert b"- removed" in proc.stdout


def test_many_siblings_with_one_change_pair_correctly(tmp_path: Path) -> None:
    kids = [
        ev(f"mem_1_{i:04x}", "alt_1_1", "memory.read", key=f"k{i}", tier="hot") for i in range(60)
    ]
    golden = [*kids, ev("alt_1_1", None, "altitude.plan")]
    new = copy.deepcopy(golden)
    new[17]["metadata"]["tier"] = "cold"
    random.Random(3).shuffle(new)
    write(tmp_path / "g", golden)
    write(tmp_path / "n", new)
    result = compare(load(tmp_path / "g"), load(tmp_path / "n"))
    assert [(c.golden.trace_id, c.new.trace_id) for c in result.changed] == [
        ("mem_1_0011", "mem_1_0011")
    ]
    assert not result.added and not result.removed
