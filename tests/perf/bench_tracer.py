"""Benchmark of `tracetui.tracer` against the original design's tracer, measured in the same run.

Run on demand:  .venv/bin/python tests/perf/bench_tracer.py [--events N]

1. Enabled, writing to a file: µs per event for the original design's tracer (a singleton with a
   list as parent stack, `logging.FileHandler`, `json.dumps(asdict(event))`) and for ours, on the
   same workload (a span with trace data and an output, inside an agent), and the ratio (target
   ≥ 10×, stretch 20×). Ours includes the final flush to the file.
2. Visibility: events emitted at a steady rate while a reader thread follows the file; every event
   must be readable within 100 ms of being written (max and p99 delay reported).
3. Disabled: cost of `with tracer.span(...): pass` (target ≤ 0.3 µs), with an empty call for scale.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson

from tracetui.decode import LineDecoder
from tracetui.tracer import Tracer


@dataclass
class _TraceEvent:
    trace_id: str
    parent_id: str | None
    timestamp: str
    hrm_layer: str
    operation: str
    component: str
    input_summary: str
    output_summary: str
    duration_ms: float
    status: str
    metadata: dict[str, Any] = field(default_factory=dict)


class _Handle:
    def __init__(self) -> None:
        self.output = ""
        self.metadata: dict[str, Any] = {}

    def set_output(self, output: str, **metadata: Any) -> None:
        self.output = output
        self.metadata.update(metadata)


class OriginalTracer:
    """The original design's tracer, reimplemented as the baseline (bugs included)."""

    def __init__(self, path: str) -> None:
        self.stack: list[str] = []
        self.logger = logging.getLogger(f"baseline-{uuid.uuid4().hex}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.addHandler(self.handler)

    @contextlib.contextmanager
    def span(self, hrm: str, operation: str, component: str, input_data: str) -> Iterator[_Handle]:
        trace_id = f"{hrm}_{int(time.time())}_{uuid.uuid4().hex[:4]}"
        parent = self.stack[-1] if self.stack else None
        self.stack.append(trace_id)
        start = time.perf_counter()
        handle = _Handle()
        status = "success"
        try:
            yield handle
        except Exception:
            status = "error"
            raise
        finally:
            self.stack.pop()
            event = _TraceEvent(
                trace_id,
                parent,
                datetime.now().isoformat(),
                hrm,
                operation,
                component,
                input_data[:100],
                handle.output[:100],
                (time.perf_counter() - start) * 1000,
                status,
                handle.metadata,
            )
            self.logger.info(json.dumps(asdict(event)))

    def close(self) -> None:
        self.handler.close()
        self.logger.removeHandler(self.handler)


AGENT = {"name": "planner", "run_id": "r1", "labels": {"env": "dev"}}


def run_original(path: str, n: int) -> float:
    tr = OriginalTracer(path)
    start = time.perf_counter()
    for i in range(n):
        with tr.span("alt", "transition", "altitude.py", "L3→L2") as span:
            span.set_output("success", from_level="L3", to_level="L2", reason="tactical", i=i)
            span.metadata["agent"] = AGENT
    elapsed = time.perf_counter() - start
    tr.close()
    return elapsed


def run_ours(path: str, n: int) -> float:
    tr = Tracer(environ={})
    tr.configure(enabled=True, file=path)
    start = time.perf_counter()
    with tr.agent("planner", run_id="r1", labels={"env": "dev"}):
        for i in range(n):
            with tr.span("alt", "transition", "altitude.py", "L3→L2") as span:
                span.set_output("success", from_level="L3", to_level="L2", reason="tactical", i=i)
    tr.flush()
    elapsed = time.perf_counter() - start
    stats = tr.stats()
    tr.close()
    assert stats.written == n and stats.dropped == 0, stats
    return elapsed


def count_decoded(path: str) -> int:
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    spans, rejected = LineDecoder().decode(lines, 1)
    assert not rejected, rejected[:3]
    return len(spans)


def visibility(path: str, rate: int, seconds: float) -> list[float]:
    """Emit at `rate`/s; a reader thread follows the file; returns each event's delay (s)."""
    tr = Tracer(environ={})
    tr.configure(enabled=True, file=path)
    total = int(rate * seconds)
    delays: list[float] = []
    done = threading.Event()

    def reader() -> None:
        buf = b""
        with open(path, "ab"):
            pass
        with open(path, "rb") as f:
            while len(delays) < total and not done.is_set():
                chunk = f.read()
                now = time.time()
                if not chunk:
                    time.sleep(0.001)
                    continue
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    meta = orjson.loads(line)["metadata"]
                    delays.append(now - meta["sent"])

    thread = threading.Thread(target=reader)
    thread.start()
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(total):
        with tr.span("foc", "gate_check", "gates.py", "WriteApprovalGate") as span:
            span.set_output("allowed", i=i, sent=time.time())
        next_at += interval
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    thread.join(timeout=5)
    done.set()
    tr.close()
    assert len(delays) == total, f"reader saw {len(delays)} of {total} events"
    return delays


def disabled_cost(n: int) -> tuple[float, float]:
    tr = Tracer(environ={})

    def traced() -> None:
        with tr.span("alt", "transition", "altitude.py", "L3→L2"):
            pass

    def empty() -> None:
        pass

    t_span = min(timeit.repeat(traced, number=n, repeat=5)) / n
    t_empty = min(timeit.repeat(empty, number=n, repeat=5)) / n
    return t_span * 1e6, t_empty * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.events
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        base_us: list[float] = []
        ours_us: list[float] = []
        for r in range(args.rounds):
            bpath = os.path.join(tmp, f"base{r}.jsonl")
            opath = os.path.join(tmp, f"ours{r}.jsonl")
            base_us.append(run_original(bpath, n) / n * 1e6)
            ours_us.append(run_ours(opath, n) / n * 1e6)
            assert count_decoded(opath) == n
        b, o = min(base_us), min(ours_us)
        mb, mo = statistics.median(base_us), statistics.median(ours_us)
        print(f"enabled, to file, {n} events x {args.rounds} rounds (alternating):")
        print(f"  original design tracer : best {b:7.2f} µs/event, median {mb:7.2f}")
        print(f"      rounds: {_fmt(base_us)}")
        print(f"  tracetui.tracer        : best {o:7.2f} µs/event, median {mo:7.2f}")
        print(f"      rounds: {_fmt(ours_us)}")
        print(
            f"  ratio                  : best/best {b / o:5.1f}x, median/median {mb / mo:5.1f}x"
            "  (target >= 10x, stretch 20x)"
        )
        delays = visibility(os.path.join(tmp, "vis.jsonl"), rate=2000, seconds=2.0)
        delays.sort()
        p99 = delays[int(len(delays) * 0.99)]
        worst = delays[-1]
        print(
            f"visibility at 2000 events/s: {len(delays)} events, median "
            f"{statistics.median(delays) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
            f"max {worst * 1e3:.1f} ms (target: every event <= 100 ms) "
            f"{'OK' if worst <= 0.1 else 'MISSED'}"
        )
    span_us, empty_us = disabled_cost(1_000_000)
    print(
        f"disabled: with tracer.span(...): pass = {span_us:.3f} µs "
        f"(an empty function call: {empty_us:.3f} µs; target <= 0.3 µs)"
    )
    return 0


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
