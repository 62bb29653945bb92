"""The README tracer example runs, decodes cleanly and breaks no rule of the default contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracetui.decode import LineDecoder

EXAMPLE = """
import asyncio

from tracetui.tracer import tracer


@tracer.span("rsn", "classify", "classifier.py", "user query")
def classify(text: str) -> str:
    span = tracer.current()
    kind = "question" if text.endswith("?") else "command"
    if span is not None:
        span.set_output(kind, input_type=kind, confidence=0.92)
    return kind


async def recall(key: str) -> str:
    async with tracer.span("mem", "read", "memory.py", key) as span:
        await asyncio.sleep(0.01)
        span.set_output("hit", namespace="notes", key=key, tier="hot")
        return "cached answer"


def handle(request_id: str, text: str) -> None:
    with tracer.agent("planner", run_id="run-42", labels={"env": "dev", "team": "core"}):
        with tracer.span(
            "alt", "transition", "altitude.py", "L3→L2",
            correlation_id=request_id,
            baggage={"run_id": "run-42", "session_id": "s-7"},  # session_id stays here
        ) as span:
            kind = classify(text)
            tracer.event(
                "foc", "gate_check", "gates.py",
                input_data="WriteApprovalGate", output_data="allowed",
                metadata={"gate_type": "write", "decision": "allowed", "reason": "read-only"},
            )
            with tracer.span("foc", "consent_check", "consent.py", "delete backups") as gate:
                gate.set_metadata(operation="delete", allowed=False)
                gate.block("no user consent")  # status "blocked"
            with tracer.span(
                "rsn", "route", "router.py", kind,
                correlation_id=f"{request_id}.1",             # parent_correlation_id = request_id
                metadata={"strategy": "memory_first", "reason": "known topic"},
            ):
                asyncio.run(recall("cache-ttl"))  # the task inherits the current span
            span.set_output("success", from_level="L3", to_level="L2", reason=f"{kind} request")


if __name__ == "__main__":
    handle("req-001", "what did we decide about the cache TTL?")
    try:
        with tracer.span("rsn", "escalate", "reasoning.py", "hard question") as span:
            span.set_metadata(from_level="fast", to_level="deep", trigger="low confidence")
            raise TimeoutError("model timed out")  # the span is marked error, then re-raised
    except TimeoutError:
        pass
"""


def test_readme_example(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(EXAMPLE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPEJAR_")}
    env["DOPEJAR_TRACE"] = "1"
    out = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    spans, rejected = LineDecoder().decode((tmp_path / "trace.jsonl").read_bytes().splitlines(), 1)
    assert not rejected
    ops = {s.operation: s for s in spans}
    assert len(spans) == 7
    root = ops["altitude.transition"]
    assert root.agent == "planner" and root.labels == ("env=dev", "team=core")
    assert root.metadata()["baggage"] == {"run_id": "run-42", "session_id": "s-7"}
    route = ops["reasoning.route"]
    assert route.parent_correlation_id == "req-001"
    assert route.metadata()["baggage"] == {"run_id": "run-42"}
    assert ops["memory.read"].parent_id == route.trace_id
    assert ops["focus.consent_check"].status == "blocked"
    assert ops["reasoning.escalate"].status == "error"
    contracts = pytest.importorskip("tracetui.contracts")
    from tracetui.store import TraceStore

    store = TraceStore()
    store.ingest(spans, [])
    checker = contracts.check_all(store, contracts.load_contracts(["dopejar"]))
    assert list(checker.all()) == []
