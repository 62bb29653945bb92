"""Per-layer statistics, slowest operations, counts per status and agent."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable

import msgspec

from tracetui.model import LAYERS, Span


class LayerStats(msgspec.Struct):
    """Durations and outcomes of one layer's spans (durations in milliseconds)."""

    layer: str
    ops: int
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    errors: int
    blocked: int


class Slow(msgspec.Struct):
    """One of the slowest spans."""

    trace_id: str
    layer: str | None
    operation: str
    duration_ms: float


class Stats(msgspec.Struct):
    """Everything `tracetui stats` reports."""

    events: int
    layers: list[LayerStats]
    slowest: list[Slow]
    statuses: dict[str, int]
    agents: dict[str, int]
    bad_lines: int
    evicted: int = 0


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def compute(spans: Iterable[Span], *, bad_lines: int = 0, slowest: int = 10) -> Stats:
    """Statistics over `spans`; layers appear in HRM order, unknown layers after them."""
    durations: dict[str, list[float]] = {}
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    agents: Counter[str] = Counter()
    timed: list[Span] = []
    total = 0
    for span in spans:
        total += 1
        layer = span.layer or "(none)"
        ops[layer] += 1
        status = span.status or "(none)"
        statuses[status] += 1
        if status == "error":
            errors[layer] += 1
        elif status == "blocked":
            blocked[layer] += 1
        agents[span.agent or "(none)"] += 1
        if span.duration_ms is not None:
            durations.setdefault(layer, []).append(span.duration_ms)
            timed.append(span)
    order = [name for name in LAYERS if name in ops] + sorted(n for n in ops if n not in LAYERS)
    layers: list[LayerStats] = []
    for name in order:
        values = sorted(durations.get(name, []))
        layers.append(
            LayerStats(
                layer=name,
                ops=ops[name],
                avg_ms=sum(values) / len(values) if values else None,
                p50_ms=percentile(values, 50),
                p95_ms=percentile(values, 95),
                max_ms=values[-1] if values else None,
                errors=errors[name],
                blocked=blocked[name],
            )
        )
    top = heapq.nlargest(slowest, timed, key=lambda s: s.duration_ms or 0.0)
    return Stats(
        events=total,
        layers=layers,
        slowest=[Slow(s.trace_id, s.layer, s.operation or "", s.duration_ms or 0.0) for s in top],
        statuses=dict(statuses.most_common()),
        agents=dict(agents.most_common()),
        bad_lines=bad_lines,
    )
