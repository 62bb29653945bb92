"""Benchmark: ingesting ~1M events with contracts on vs off, in the same run.

Target (issue 5): with the dopejar + baggage + correlation presets on, ingesting costs at most
1.3x the time without contracts. The checker is driven the way live views drive it: once per
ingest batch, from the store's `Change`, then `finish` at the end.

Big loads (`load_paths` with the checker's `start_screen()`) judge the local rules in a
helper process on the other core while this one ingests: that is the figure the target is
about. The same checker entirely in process is measured too, for comparison; both must give the
same findings.

The trace comes from `tests/perf/gen_trace.py` (trees in end order, agent context, correlation
ids), enriched so it looks like an instrumented app: each span records the trace data of its
trace point, carries `baggage` (`run_id`, `project`; roots also `session_id`), and about 1% of the
spans break a rule (a leaked session id, a missing parent_correlation_id, a missing key).
`--raw` benchmarks the generator's output as it is (no trace data: a finding on every span).

    .venv/bin/python tests/perf/bench_contracts.py [EVENTS] [--raw] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))

from gen_trace import generate  # type: ignore[import-not-found]

from tracetui.contracts import Checker, FindingDelta, load_contracts
from tracetui.load import load_paths
from tracetui.model import Rejected, Span
from tracetui.store import Change, TraceStore

DATA = Path(__file__).parent / "data"
PRESETS = ["dopejar", "baggage", "correlation"]

TRACE_DATA = {
    "altitude.transition": {"from_level": 3, "to_level": 2, "reason": "user asked"},
    "altitude.evaluate": {"altitude": 3, "verdict": "ok", "confidence": 0.8},
    "altitude.plan": {"altitude": 3, "intent": "refactor", "plan_summary": "three steps"},
    "altitude.execute": {"altitude": 2, "action_type": "edit"},
    "focus.stance_change": {"from_stance": "explore", "to_stance": "commit", "gate": "g1"},
    "focus.gate_check": {"gate_type": "WriteApproval", "decision": "allow", "reason": "ok"},
    "focus.lane_switch": {"from_lane": "a", "to_lane": "b", "reason": "budget"},
    "focus.consent_check": {"operation": "write", "allowed": True},
    "focus.route": {"signal_type": "task", "bundle": "core", "agents": ["coder"]},
    "reasoning.classify": {"input_type": "question", "confidence": 0.7},
    "reasoning.route": {"strategy": "direct", "reason": "simple"},
    "reasoning.escalate": {"from_level": 1, "to_level": 2, "trigger": "doubt"},
    "learning.pattern_match": {"pattern_code": "P12", "confidence": 0.9},
    "learning.pattern_add": {"pattern_code": "P13", "source": "session"},
    "learning.pattern_trim": {"pattern_code": "P2", "reason": "stale"},
    "learning.generalize": {"from_patterns": ["P1", "P2"], "to_pattern": "P9"},
    "memory.read": {"namespace": "altitude", "key": "session", "tier": "warm"},
    "memory.write": {"namespace": "altitude", "key": "session", "tier": "warm", "tokens_saved": 45},
    "memory.promote": {"key": "session", "from_tier": "warm", "to_tier": "hot"},
    "memory.demote": {"key": "session", "from_tier": "hot", "to_tier": "warm"},
}


def enrich(src: Path, dst: Path, seed: int = 11) -> int:
    """Add trace data, baggage and ~1% rule breaks to a generated trace."""
    rng = random.Random(seed)
    parents: dict[str, str | None] = {}
    lines = src.read_bytes().splitlines()
    events = [orjson.loads(line) for line in lines]
    for ev in events:
        parents[ev["trace_id"]] = ev["parent_id"]
    with open(dst, "wb") as out:
        buf: list[bytes] = []
        for ev in events:
            meta = ev["metadata"]
            meta.update(TRACE_DATA.get(ev["operation"], {}))
            run_id = meta["agent"]["run_id"]
            bag: dict[str, object] = {"run_id": run_id, "project": "dopejar"}
            if ev["parent_id"] is None:
                bag["session_id"] = f"s-{run_id}"
            meta["baggage"] = bag
            roll = rng.random()
            if roll < 0.004 and ev["parent_id"] is not None:
                bag["session_id"] = "leaked"  # only a leak when the parent carries it too
            elif roll < 0.007:
                meta.pop("parent_correlation_id", None)
            elif roll < 0.010 and TRACE_DATA.get(ev["operation"]):
                meta.pop(next(iter(TRACE_DATA[ev["operation"]])), None)
            buf.append(orjson.dumps(ev))
            if len(buf) >= 10_000:
                out.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            out.write(b"\n".join(buf) + b"\n")
    return len(events)


class CheckedStore(TraceStore):
    """A store that runs the checker on every ingest batch, as a live view would."""

    def __init__(self, checker: Checker) -> None:
        super().__init__()
        self.checker = checker
        self.delta = FindingDelta()
        self.batches = 0

    def ingest(self, spans: list[Span], rejected: list[Rejected] = ()) -> Change:  # type: ignore[override]
        change = super().ingest(spans, rejected)
        self.batches += 1
        self.checker.observe(self, change)
        return change


def run_plain(path: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, events) for a load without contracts."""
    store = TraceStore()
    t0, c0 = time.perf_counter(), time.process_time()
    load_paths(store, [str(path)])
    return time.perf_counter() - t0, time.process_time() - c0, len(store)


def run_checked(path: Path, screen: bool) -> tuple[float, float, int, dict[str, int], int]:
    """(wall seconds, CPU seconds of this process, events, findings per severity, batches) with
    contracts; `screen`: the local rules judged by the screen process, as big loads do."""
    checker = Checker(load_contracts(PRESETS))
    store = CheckedStore(checker)
    t0, c0 = time.perf_counter(), time.process_time()
    helper = checker.start_screen() if screen else None
    try:
        load_paths(store, [str(path)], screen=helper)
    finally:
        if helper is not None and helper.reason is not None:
            print(f"  (the screen process closed: {helper.reason})")
        checker.stop_screen()
    gc.disable()
    try:
        checker.finish(store)
    finally:
        gc.enable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, len(store), dict(checker.counts), store.batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("events", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--raw", action="store_true", help="the generator's output as it is")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    base = DATA / f"contracts-gen-{args.events}.jsonl"
    if not base.exists():
        generate(base, args.events)
    path = base
    if not args.raw:
        path = DATA / f"contracts-enriched-{args.events}.jsonl"
        if not path.exists():
            enrich(base, path)
    size = path.stat().st_size
    print(f"trace: {path} ({size / 1e6:.0f} MB)")
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "screen": [], "in-process": []}
    found: dict[str, dict[str, int]] = {}
    for i in range(args.rounds):
        wall, cpu, n = run_plain(path)
        runs["plain"].append((wall, cpu))
        gc.collect()
        print(f"round {i + 1}: without contracts {wall:6.2f}s wall {cpu:6.2f}s CPU ({n:,} events)")
        for mode in ("screen", "in-process"):
            wall, cpu, n, counts, batches = run_checked(path, mode == "screen")
            runs[mode].append((wall, cpu))
            found[mode] = counts
            gc.collect()
            print(
                f"round {i + 1}: with {'+'.join(PRESETS)}, {mode:10} {wall:6.2f}s wall "
                f"{cpu:6.2f}s CPU ({n:,} events, {batches} batches, findings {counts})",
                flush=True,
            )
    if found["screen"] != found["in-process"]:
        print("FINDINGS DIFFER between the screen process and the in-process checker")
    plain = runs["plain"]
    for mode in ("screen", "in-process"):
        walls = sorted(r[0] / p[0] for r, p in zip(runs[mode], plain, strict=True))
        best = min(r[0] for r in runs[mode]) / min(p[0] for p in plain)
        cpu = min(r[1] for r in runs[mode]) / min(p[1] for p in plain)
        print(
            f"{mode:10}: wall ratio best {best:.2f}x, median of rounds "
            f"{walls[len(walls) // 2]:.2f}x (target <= 1.30x); this process's CPU {cpu:.2f}x"
        )


if __name__ == "__main__":
    main()
