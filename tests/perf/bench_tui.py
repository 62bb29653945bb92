"""Benchmark of the monitor's view work with many events resident (Textual headless).

Measures, with N events resident:
  * mount: the app taking over a store filled before it (counts per tree, search index) and
    showing its first screen;
  * frame work: one 15 Hz tick while 50,000 events/s arrive (≈3,300 spans per tick: store ingest,
    view update, row rebuild, status line) plus rendering every visible row of the tree;
  * filter change: status=error, text search, clear (three rounds: median and worst) — from
    the call to the new rows rendered (a change over a big store is worked out in slices on the
    app's loop); meanwhile the worst stall of the app's event loop (the longest the UI could not
    react), and, when the change is still running 50 ms in, how long a key pressed then (up or
    down) takes to move the cursor;
  * page scroll: PgDn + rendering the page.
The same figures for a 10,000-event store are measured first in the same run as the baseline, and
the ratios printed. Memory: resident size added by the view on top of the store's own.

    python tests/perf/bench_tui.py [--events 1000000] [--data tests/perf/data/1m.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tracetui.decode import LineDecoder
from tracetui.framing import LineFramer
from tracetui.load import StreamLoader, gc_paused
from tracetui.model import Span
from tracetui.query import Filter
from tracetui.store import Change, TraceStore

HERE = Path(__file__).resolve().parent
RATE = 50_000
TICK_HZ = 15
PER_TICK = RATE // TICK_HZ
TICKS = 45
ROUNDS = 3
"""Each filter change is measured this many times (median and worst printed)."""
SIZE = (120, 40)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class ReplayFeed:
    """Hands pre-decoded spans to the app, PER_TICK at a time, only when armed (decoding is the
    readers' job, on their own threads, so it is not part of the frame)."""

    def __init__(self, store: TraceStore, spans: list[Span]) -> None:
        self.store = store
        self.spans = spans
        self.pos = 0
        self.armed = False
        self.done = False

    def drain(self, max_spans: int | None = None) -> Change:
        if not self.armed or self.pos >= len(self.spans):
            return Change()
        batch = self.spans[self.pos : self.pos + PER_TICK]
        self.pos += len(batch)
        return self.store.ingest(batch)

    def states(self) -> list[object]:
        return []

    def stop(self) -> None:
        pass


def read_lines(path: Path, count: int) -> bytes:
    with path.open("rb") as fh:
        return b"".join(itertools.islice(fh, count))


def decode(data: bytes, origin: int) -> list[Span]:
    frame = LineFramer().feed(data)
    spans, _ = LineDecoder().decode(frame.lines, frame.first_line_no, origin)
    return spans


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def measure(path: Path, events: int) -> dict[str, float]:
    from tracetui.tui.app import TraceApp

    live_lines = PER_TICK * TICKS
    base_rss = rss_mb()
    store = TraceStore()
    with gc_paused():
        loader = StreamLoader(store, str(path))
        loader.feed(read_lines(path, events))
        loader.finish()
    gc.collect()
    store_rss = rss_mb()
    with gc_paused():
        with path.open("rb") as fh:
            tail = b"".join(itertools.islice(fh, events, events + live_lines))
        live = decode(tail, store.origin("live"))
    gc.collect()
    before_view = rss_mb()
    feed = ReplayFeed(store, live)
    t_mount = time.perf_counter()
    app = TraceApp(store, feed)  # type: ignore[arg-type]
    out: dict[str, float] = {"resident": len(store)}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        out["mount s"] = time.perf_counter() - t_mount
        tree = app.span_tree
        height = tree.scrollable_content_region.height

        def render() -> None:
            for y in range(height):
                tree.render_line(y)

        t0 = time.perf_counter()
        app.view.invalidate()
        app.view.rebuild()
        tree.rows_changed()
        render()
        out["first build s"] = time.perf_counter() - t0
        view_rss = rss_mb()
        out["memory view/store %"] = 100 * (view_rss - before_view) / max(store_rss - base_rss, 1)
        out["store MB"] = store_rss - base_rss

        rounds: list[dict[str, float]] = []
        for _ in range(ROUNDS):
            for name, flt in (
                ("filter error", Filter.make(statuses=["error"])),
                ("filter text", Filter.make(text="refactor")),
                ("filter clear", Filter()),
            ):
                rounds.append(await change_filter(app, name, flt, render))
                await pilot.pause()
        for name in ("filter error", "filter text", "filter clear"):
            each = ", ".join(f"{r[name + ' ms']:.0f}" for r in rounds if name + " ms" in r)
            print(f"  {events:,} events, {name} ms per round: {each}", flush=True)
        for key in dict.fromkeys(k for r in rounds for k in r):
            values = [r[key] for r in rounds if key in r]
            if key.endswith(" ms") and "stall" not in key and "key" not in key:
                out[key.replace(" ms", " median ms")] = statistics.median(values)
            out[key.replace(" ms", " worst ms")] = max(values)

        tree.action_first()
        pages: list[float] = []
        for _ in range(50):
            t = time.perf_counter()
            tree.action_page(1)
            render()
            pages.append(time.perf_counter() - t)
        out["page p95 ms"] = pct(pages, 95) * 1000
        tree.action_last()

        frames: list[float] = []
        for _ in range(TICKS):
            feed.armed = True
            t = time.perf_counter()
            app.tick()
            render()
            frames.append(time.perf_counter() - t)
            feed.armed = False
            await pilot.pause()
        out["frame p50 ms"] = statistics.median(frames) * 1000
        out["frame p95 ms"] = pct(frames, 95) * 1000
        out["frame max ms"] = max(frames) * 1000

    return out


async def change_filter(app: Any, name: str, flt: Filter, render: Any) -> dict[str, float]:
    """One filter change, timed from the call to the new rows rendered, with the UI's stalls."""
    tree = app.span_tree
    worst = [0.0]
    running = True

    async def monitor() -> None:
        while running:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst[0] = max(worst[0], time.perf_counter() - t - 0.001)

    watcher = asyncio.create_task(monitor())
    await asyncio.sleep(0.01)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    app.set_filter(flt)
    out[f"{name} call ms"] = (time.perf_counter() - t0) * 1000
    while app._filtering and time.perf_counter() - t0 < 0.05:
        await asyncio.sleep(0.001)
    if app._filtering:
        before = tree.cursor
        press = asyncio.create_task(app._press_keys(["up" if before else "down"]))
        tk = time.perf_counter()
        while tree.cursor == before and time.perf_counter() - tk < 5:
            await asyncio.sleep(0.0005)
        out[f"{name} key mid-way ms"] = (time.perf_counter() - tk) * 1000
        if not app._filtering:
            print(f"  note: {name} was installed before the key was handled", flush=True)
    else:
        press = None
    while app._filtering:
        await asyncio.sleep(0.001)
    render()
    out[f"{name} ms"] = (time.perf_counter() - t0) * 1000
    running = False
    await watcher
    if press is not None:  # the pilot's key task waits for the app to go idle: not timed
        await press
    out[f"{name} UI stall ms"] = worst[0] * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=HERE / "data" / "1m.jsonl")
    args = parser.parse_args()
    data: Path = args.data
    need = args.events + PER_TICK * TICKS
    if not data.exists() or sum(1 for _ in data.open("rb")) < need:
        sys.path.insert(0, str(HERE))
        from gen_trace import generate

        data = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_tui_{need}.jsonl"
        if not data.exists():
            print(f"generating {need:,} events into {data} …", flush=True)
            generate(data, need)
    print(f"baseline: 10,000 events resident; target run: {args.events:,} (data {data})")
    base = asyncio.run(measure(data, 10_000))
    gc.collect()
    big = asyncio.run(measure(data, args.events))
    targets = {
        "frame p95 ms": 50.0,
        "filter error median ms": 300.0,
        "filter text median ms": 300.0,
        "filter clear median ms": 300.0,
        "filter error worst ms": 300.0,
        "filter text worst ms": 300.0,
        "filter clear worst ms": 300.0,
        "page p95 ms": 16.0,
        "memory view/store %": 20.0,
    }
    print(f"{'measure':<28}{'10k':>12}{'N':>12}{'ratio':>9}{'target':>10}  ok")
    for key, value in big.items():
        b = base.get(key, 0.0)
        ratio = f"{value / b:8.1f}x" if b else "       -"
        target = targets.get(key)
        verdict = "" if target is None else ("yes" if value <= target else "NO")
        shown_target = f"{target:10.0f}" if target is not None else " " * 10
        print(f"{key:<28}{b:12.2f}{value:12.2f}{ratio:>9}{shown_target}  {verdict}")


if __name__ == "__main__":
    main()
