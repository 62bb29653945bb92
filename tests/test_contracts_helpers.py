"""Helpers for the contracts tests: build events, feed them in batches, look at findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tracetui.contracts import Checker, ContractSet, Finding, FindingDelta, load_contracts
from tracetui.decode import LineDecoder
from tracetui.store import TraceStore

LAYER_OF = {
    "alt": "altitude",
    "foc": "focus",
    "rsn": "reasoning",
    "lrn": "learning",
    "mem": "memory",
}
T0 = 1_705_180_800.0


def ev(
    tid: str,
    parent: str | None = None,
    op: str = "",
    *,
    ts: float | None = None,
    status: str = "success",
    layer: str | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """One trace event; the layer comes from the id prefix unless given."""
    prefix = tid.split("_", 1)[0]
    lay = layer if layer is not None else LAYER_OF.get(prefix, "system")
    return {
        "trace_id": tid,
        "parent_id": parent,
        "timestamp": T0 if ts is None else ts,
        "hrm_layer": lay,
        "operation": op or f"{lay}.work",
        "component": "test.py",
        "input_summary": "in",
        "output_summary": "out",
        "duration_ms": 1.0,
        "status": status,
        "metadata": meta,
    }


class Feed:
    """A store and a checker fed batch by batch, as a live view does."""

    def __init__(self, contracts: ContractSet | list[str], max_events: int | None = None) -> None:
        if isinstance(contracts, list):
            contracts = load_contracts(contracts, Path("/nonexistent-dir-for-tests"))
        self.store = TraceStore(max_events=max_events)
        self.checker = Checker(contracts)
        self.decoder = LineDecoder()
        self.line = 1

    def batch(self, *events: dict[str, Any] | bytes) -> FindingDelta:
        lines = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
        spans, rejected = self.decoder.decode(lines, self.line, 0)
        self.line += len(lines)
        change = self.store.ingest(spans, rejected)
        return self.checker.observe(self.store, change)

    def finish(self) -> FindingDelta:
        return self.checker.finish(self.store)

    def findings(self, rule: str | None = None) -> list[Finding]:
        return [f for f in self.checker.all() if rule is None or f.rule == rule]

    def rules(self) -> set[str]:
        return {f.rule for f in self.checker.all()}

    def about(self, tid: str) -> set[str]:
        """Rules of the findings attached to the span with this id."""
        return {f.rule for f in self.checker.all() if f.trace_id == tid}


def contract(tmp_path: Path, text: str, name: str = "c.yaml") -> ContractSet:
    """Write a contract file and load it (alone)."""
    path = tmp_path / name
    path.write_text(text)
    return load_contracts([str(path)], tmp_path)
