"""Helpers for the TUI tests: real stores and decoders, fed in batches like `LiveIngest` does."""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

import orjson

from tracetui.decode import LineDecoder
from tracetui.framing import LineFramer
from tracetui.store import Change, TraceStore

BASE_TS = 1_705_180_800.0


def event(
    tid: str,
    parent: str | None = None,
    *,
    layer: str = "altitude",
    op: str = "transition",
    status: str = "success",
    dur: float | None = 5.0,
    inp: str = "",
    out: str = "",
    agent: str | None = None,
    labels: dict[str, str] | None = None,
    ts: float = BASE_TS,
    meta: dict[str, Any] | None = None,
) -> bytes:
    """One trace line."""
    metadata: dict[str, Any] = dict(meta or {})
    if agent is not None:
        metadata["agent"] = {"name": agent, "run_id": "run-1", "labels": labels or {}}
    obj: dict[str, Any] = {
        "trace_id": tid,
        "parent_id": parent,
        "timestamp": ts,
        "hrm_layer": layer,
        "operation": f"{layer}.{op}",
        "component": f"{layer}.py",
        "status": status,
        "metadata": metadata,
    }
    if dur is not None:
        obj["duration_ms"] = dur
    if inp:
        obj["input_summary"] = inp
    if out:
        obj["output_summary"] = out
    return orjson.dumps(obj)


def trace_tree(n: int, *, start: float = BASE_TS, agent: str = "planner") -> list[bytes]:
    """A root altitude span with focus/reasoning/memory children, children first (end order)."""
    root = f"alt_{n}"
    lines = [
        event(
            f"mem_{n}",
            f"rsn_{n}",
            layer="memory",
            op="read",
            dur=1.5,
            inp="key=ctx",
            out="hit",
            agent=agent,
            labels={"env": "dev"},
            ts=start + 0.3,
        ),
        event(
            f"rsn_{n}",
            f"foc_{n}",
            layer="reasoning",
            op="classify",
            dur=12,
            inp="user asked",
            out="refactor",
            agent=agent,
            labels={"env": "dev"},
            ts=start + 0.2,
        ),
        event(
            f"foc_{n}",
            root,
            layer="focus",
            op="gate_check",
            status="blocked" if n % 3 == 2 else "success",
            dur=3,
            inp="lane tactical",
            out="denied" if n % 3 == 2 else "ok",
            agent=agent,
            labels={"env": "dev"},
            ts=start + 0.1,
            meta={"blocked_by": "consent"} if n % 3 == 2 else None,
        ),
        event(
            root,
            None,
            layer="altitude",
            op="transition",
            status="error" if n % 4 == 3 else "success",
            dur=1500 if n % 5 == 4 else 40,
            inp=f"L3→L2 #{n}",
            out="done",
            agent=agent,
            labels={"env": "dev"},
            ts=start,
            meta={"error": "timeout"} if n % 4 == 3 else None,
        ),
    ]
    return lines


class BatchFeed:
    """A feed with LiveIngest's interface over lines pushed by the test (real framer/decoder)."""

    def __init__(self, store: TraceStore, origin: str = "trace.jsonl") -> None:
        self.store = store
        self.origin_name = origin
        self.origin = store.origin(origin)
        self.framer = LineFramer()
        self.decoder = LineDecoder()
        self.queue: list[bytes] = []
        self.state = "following"
        self.done = False
        self.started = False
        self.stopped = False

    def push(self, lines: Iterable[bytes]) -> None:
        self.queue.extend(line + b"\n" for line in lines)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def states(self) -> list[Any]:
        return [types.SimpleNamespace(origin=self.origin_name, state=self.state, producers=0)]

    def drain(self, max_spans: int | None = None) -> Change:
        data, self.queue = b"".join(self.queue), []
        frame = self.framer.feed(data)
        spans, rejected = self.decoder.decode(frame.lines, frame.first_line_no, self.origin)
        if not spans and not rejected:
            return Change()
        return self.store.ingest(spans, rejected)


def tree_screen(app: Any) -> list[str]:
    """The span tree's rows exactly as drawn on screen (plain text)."""
    from tracetui.tui.span_tree import SpanTree

    tree = app.query_one(SpanTree)
    return [tree.render_line(y).text.rstrip() for y in range(tree.size.height)]


def status_line(app: Any) -> str:
    """The status line as drawn."""
    from textual.widgets import Static

    content = app.query_one("#status", Static).content
    return str(getattr(content, "plain", content))


async def wait_until(pilot: Any, condition: Any, timeout: float = 3.0) -> None:
    """Let the app run until `condition()` holds (ticks are on a timer)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)
