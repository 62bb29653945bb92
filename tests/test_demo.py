"""The demo app: realistic trace points with their trace data, and each promised violation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from tracetui.decode import LineDecoder
from tracetui.model import SCHEMA, Span

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "demo" / "assistant.py"
sys.path.insert(0, str(ROOT / "demo"))
from assistant import REQUESTS, TRACE_DATA, VIOLATIONS  # type: ignore[import-not-found]  # noqa: E402

sys.path.pop(0)

DENY = ("session_id", "session_name")


def env_for(path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPEJAR_")}
    env.update(DOPEJAR_TRACE="1", DOPEJAR_TRACE_FILE=str(path), **extra)
    return env


def decode(path: Path) -> list[Span]:
    spans, rejected = LineDecoder().decode(path.read_bytes().splitlines(), 1)
    assert not rejected, rejected[:3]
    assert not [s for s in spans if s.flags & SCHEMA]
    return spans


@pytest.fixture(scope="module")
def block(tmp_path_factory: pytest.TempPathFactory) -> list[Span]:
    """One block of 50 requests (each violation exactly once), from the checkout's script."""
    tmp = tmp_path_factory.mktemp("demo")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--rate", "2000", "--requests", "50", "--seed", "11"],
        env=env_for(tmp / "t.jsonl"),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "50 requests" in out.stderr
    return decode(tmp / "t.jsonl")


def parent_of(spans: list[Span]) -> dict[str, Span]:
    return {s.trace_id: s for s in spans}


def test_every_trace_point_of_the_design_appears_with_its_data(block: list[Span]) -> None:
    ops = Counter(s.operation for s in block)
    assert set(TRACE_DATA) <= set(ops), set(TRACE_DATA) - set(ops)
    incomplete = []
    for span in block:
        keys = TRACE_DATA.get(span.operation or "")
        if keys and any(k not in span.metadata() for k in keys):
            incomplete.append((span.operation, sorted(set(keys) - set(span.metadata()))))
    assert incomplete == [("altitude.transition", ["reason"])]
    transition = next(s for s in block if s.operation == "altitude.transition")
    assert transition.metadata()["from_level"] in ("L1", "L2", "L3", "L4")


def test_agents_labels_errors_blocked_and_a_tree_per_request(block: list[Span]) -> None:
    agents = {s.agent for s in block}
    assert {"planner", "coder", "reviewer", "librarian"} <= agents
    assert all(s.run_id for s in block)
    assert next(s.labels for s in block if s.agent == "planner") == ("env=demo", "team=core")
    statuses = Counter(s.status for s in block)
    assert statuses["error"] > 0 and statuses["blocked"] > 0 and statuses["success"] > 0
    roots = [s for s in block if s.parent_id is None]
    assert len(roots) == 50 and all(r.operation == "system.request" for r in roots)
    by_id = parent_of(block)
    assert all(s.parent_id in by_id for s in block if s.parent_id is not None)
    assert len(by_id) == len(block)
    inputs = {r.fields()["input_summary"] for r in roots}
    assert inputs == {text for text, _, _ in REQUESTS}
    failed = [s for s in block if s.status == "error" and s.operation == "reasoning.escalate"]
    assert failed and "TimeoutError" in failed[0].fields()["output_summary"]


def test_leaked_session_id_once(block: list[Span]) -> None:
    by_id = parent_of(block)
    leaks = []
    for span in block:
        parent = by_id.get(span.parent_id or "")
        if parent is None:
            continue
        mine = span.metadata().get("baggage", {})
        theirs = parent.metadata().get("baggage", {})
        for key in DENY:
            if key in mine and mine[key] == theirs.get(key):
                leaks.append((span.operation, key))
    assert leaks == [("altitude.evaluate", "session_id"), ("altitude.evaluate", "session_name")]
    roots = [s for s in block if s.parent_id is None]
    assert all("session_id" in r.metadata()["baggage"] for r in roots)
    safe = [s for s in block if s.parent_id and "run_id" in s.metadata().get("baggage", {})]
    assert len(safe) > len(block) / 2


def test_missing_parent_correlation_id_once(block: list[Span]) -> None:
    by_id = parent_of(block)
    missing = []
    checked = 0
    for span in block:
        parent = by_id.get(span.parent_id or "")
        if span.correlation_id is None or parent is None or parent.correlation_id is None:
            continue
        checked += 1
        if span.parent_correlation_id != parent.correlation_id:
            missing.append((span.operation, span.component, span.parent_correlation_id))
    assert missing == [("memory.read", "legacy/cache.py", None)]
    assert checked > 20


def test_context_outcomes_once_each(block: list[Span]) -> None:
    defaulted = [s for s in block if s.operation == "context.defaulted"]
    failed = [s for s in block if s.operation == "context.failed"]
    assert len(defaulted) == 1 and len(failed) == 1
    assert defaulted[0].metadata()["field"] == "domain"
    assert defaulted[0].metadata()["default"] == "general"
    assert failed[0].metadata()["field"] == "user_preferences" and failed[0].status == "error"
    by_id = parent_of(block)
    assert by_id[defaulted[0].parent_id or ""].operation == "altitude.plan"
    assert sum(s.operation == "context.propagated" for s in block) > 10


def test_violations_are_scheduled_in_each_block() -> None:
    assert sorted(VIOLATIONS.values()) == [
        "context_defaulted",
        "context_failed",
        "leaked_session_id",
        "missing_parent_correlation_id",
        "missing_trace_data",
    ]


def test_contract_engine_finds_exactly_the_promised_violations(block: list[Span]) -> None:
    contracts = pytest.importorskip("tracetui.contracts")
    from tracetui.store import TraceStore

    store = TraceStore()
    store.ingest(list(block), [])
    checker = contracts.check_all(
        store, contracts.load_contracts(["dopejar", "baggage", "correlation", "context"])
    )
    rules = Counter(f.rule for f in checker.all())
    assert rules == {
        "baggage.leaked": 2,
        "propagation.missing_parent_correlation": 1,
        "context.defaulted": 1,
        "context.failed": 1,
        "data.missing_key": 1,
    }


@pytest.mark.parametrize("how", ["module", "directory"])
def test_runs_as_python_m_demo_and_python_demo(tmp_path: Path, how: str) -> None:
    args = ["-m", "demo"] if how == "module" else [str(ROOT / "demo")]
    out = subprocess.run(
        [sys.executable, *args, "--rate", "500", "--requests", "7"],
        env=env_for(tmp_path / "t.jsonl"),
        cwd=ROOT if how == "module" else tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert sum(s.parent_id is None for s in decode(tmp_path / "t.jsonl")) == 7


def test_switches_tracing_on_by_itself_but_honours_an_explicit_off(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPEJAR_")}
    cmd = [sys.executable, str(SCRIPT), "--rate", "500", "--requests", "3"]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "trace.jsonl").exists()
    (tmp_path / "trace.jsonl").unlink()
    env["DOPEJAR_TRACE"] = "0"
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not list(tmp_path.iterdir())


def test_runs_until_stopped_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    target = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--rate", "20"],
        env=env_for(target),
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    spans = decode(target)
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) >= 10
    by_id = parent_of(spans)
    assert all(s.parent_id in by_id for s in spans if s.parent_id)


def test_duration_option(tmp_path: Path) -> None:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--rate", "50", "--duration", "1"],
        env=env_for(tmp_path / "t.jsonl"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 10
    roots = [s for s in decode(tmp_path / "t.jsonl") if s.parent_id is None]
    assert 20 <= len(roots) <= 51


def test_bad_rate_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--rate", "0"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "--rate must be > 0" in out.stderr


def test_works_from_a_built_wheel(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    from hatchling.builders.wheel import WheelBuilder

    (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    assert "tracetui/demo/assistant.py" in names and "tracetui/demo/__main__.py" in names
    env = env_for(tmp_path / "t.jsonl", PYTHONPATH=str(site))
    probe = subprocess.run(
        [sys.executable, "-c", "import tracetui.demo as d; print(d.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.startswith(str(site)), probe
    out = subprocess.run(
        [sys.executable, "-m", "tracetui.demo", "--rate", "500", "--requests", "4"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert sum(s.parent_id is None for s in decode(tmp_path / "t.jsonl")) == 4
    cli = subprocess.run(
        [sys.executable, "-m", "tracetui", "demo", "--requests", "3", "--rate", "500"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert sum(line.startswith("[sys] request") for line in cli.stdout.splitlines()) == 3
    assert "the demo exited with status 0" in cli.stderr
