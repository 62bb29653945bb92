"""Generate realistic trace files for benchmarks.

Trees of 6–14 spans (altitude at the root; focus, reasoning, memory, learning below, up to four
levels), written in end order (children before parents, as the emitter does), about 440 bytes per
line, about 5% errors and 1% blocked, agent context with labels on most spans, correlation ids.

    python tests/perf/gen_trace.py OUT.jsonl [EVENTS]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import orjson

LAYERS = {
    "altitude": ("alt", ["transition", "evaluate", "plan", "execute"], "altitude.py"),
    "focus": (
        "foc",
        ["stance_change", "gate_check", "lane_switch", "consent_check", "route"],
        "gates.py",
    ),
    "reasoning": ("rsn", ["classify", "route", "escalate"], "router.py"),
    "learning": (
        "lrn",
        ["pattern_match", "pattern_add", "pattern_trim", "generalize"],
        "patterns.py",
    ),
    "memory": ("mem", ["read", "write", "promote", "demote"], "memory.py"),
    "system": ("sys", ["heartbeat", "gc", "io"], "runtime.py"),
}
AGENTS = [
    ("planner", "dev", "core"),
    ("coder", "dev", "tools"),
    ("reviewer", "prod", "core"),
    ("researcher", "staging", "search"),
]
WORDS = [
    *[
        "user",
        "asked",
        "to",
        "refactor",
        "the",
        "parser",
        "module",
        "and",
        "keep",
        "tests",
        "green",
        "while",
        "renaming",
        "fields",
    ],
    *[
        "budget",
        "tokens",
        "context",
        "window",
        "lane",
        "tactical",
        "strategic",
        "approval",
        "consent",
        "pattern",
    ],
]


def _summary(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


class _Tree:
    """Builds one root trace in end order (children before parents)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        agent, env, team = rng.choice(AGENTS)
        self.agent = {
            "name": agent,
            "run_id": f"run_{rng.getrandbits(32):08x}",
            "labels": {"env": env, "team": team},
        }
        self.spans: list[dict[str, object]] = []

    def make(
        self, layer: str, parent: str | None, depth: int, start: float, corr: str | None
    ) -> str:
        rng = self.rng
        short, ops, comp = LAYERS[layer]
        sid = f"{short}_{int(start)}_{rng.getrandbits(32):08x}"
        roll = rng.random()
        status = "error" if roll < 0.05 else "blocked" if roll < 0.06 else "success"
        my_corr = f"corr-{rng.getrandbits(48):012x}"
        meta: dict[str, object] = {"agent": self.agent, "correlation_id": my_corr}
        if corr:
            meta["parent_correlation_id"] = corr
        if status == "error":
            meta["error"] = "upstream timeout after retries"
        count = rng.randint(0, 3) if depth else rng.randint(2, 4)
        kids = [rng.choice(["focus", "reasoning", "memory", "learning"]) for _ in range(count)]
        child_start = start + 0.001
        for kid in kids if depth < 3 else []:
            self.make(kid, sid, depth + 1, child_start, my_corr)
            child_start += 0.002
        self.spans.append(
            {
                "trace_id": sid,
                "parent_id": parent,
                "timestamp": start,
                "hrm_layer": layer,
                "operation": f"{layer}.{rng.choice(ops)}",
                "component": comp,
                "input_summary": _summary(rng, 3),
                "output_summary": _summary(rng, 1),
                "duration_ms": round(rng.expovariate(1 / 40), 3),
                "status": status,
                "metadata": meta,
            }
        )
        return sid


def generate(path: Path, events: int, seed: int = 7) -> int:
    """Write about `events` lines to `path`; returns the number written."""
    rng = random.Random(seed)
    t0 = 1_705_180_800.0
    written = 0
    with open(path, "wb") as out:
        buf: list[bytes] = []
        while written < events:
            tree = _Tree(rng)
            tree.make("altitude", None, 0, t0, None)
            t0 += 0.05
            buf.extend(orjson.dumps(span) for span in tree.spans)
            written += len(tree.spans)
            if len(buf) > 10_000:
                out.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            out.write(b"\n".join(buf) + b"\n")
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    n = generate(target, count)
    size = target.stat().st_size
    print(f"wrote {n:,} events, {size / n:.0f} bytes/line, to {target}")
