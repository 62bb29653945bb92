"""A big backlog (a large file opened) loads in ticks of bounded size in quick succession, with
the UI answering keys between them and the status line saying it is loading."""

from __future__ import annotations

import re
import time
import types
from pathlib import Path
from typing import Any

import pytest
from textual.events import Key
from tui_helpers import BatchFeed, status_line, trace_tree, wait_until

import tracetui.tui.app as app_module
from tracetui.store import Change, TraceStore
from tracetui.tui.app import TraceApp
from tracetui.tui.span_tree import SpanTree

TREES = 500
"""Four spans each."""


class BacklogFeed(BatchFeed):
    """Decodes everything pushed, then hands it to the store `max_spans` at a time, the way
    `LiveIngest.drain` does with what its readers have produced."""

    def __init__(self, store: TraceStore, path: Path) -> None:
        super().__init__(store, str(path))
        self.backlog: list = []
        self.max_seen: int | None = None

    def drain(self, max_spans: int | None = None) -> Change:
        if self.queue:
            data, self.queue = b"".join(self.queue), []
            frame = self.framer.feed(data)
            spans, _ = self.decoder.decode(frame.lines, frame.first_line_no, self.origin)
            self.backlog.extend(spans)
        self.max_seen = max_spans
        take = len(self.backlog) if max_spans is None else max_spans
        batch, self.backlog = self.backlog[:take], self.backlog[take:]
        return self.store.ingest(batch) if batch else Change()

    def states(self) -> list[Any]:
        return [types.SimpleNamespace(origin=self.origin_name, kind="file", state=self.state)]


async def test_a_backlog_loads_in_bounded_ticks_and_keys_are_answered_meanwhile(
    store: TraceStore, no_user_themes: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(app_module, "DRAIN_MAX", 8)
    monkeypatch.setattr(app_module, "LOAD_YIELD_S", 0.005)
    monkeypatch.setattr(app_module, "INTERACTIVE_YIELD_S", 0.005)
    lines = [line for n in range(TREES) for line in trace_tree(n, start=1000.0 + n)]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    feed = BacklogFeed(store, path)
    app = TraceApp(store, feed)
    async with app.run_test(size=(100, 30)) as pilot:
        feed.push(lines)
        await wait_until(pilot, lambda: len(store) >= 40)
        assert app._loading
        assert feed.max_seen == 8
        tree = app.query_one(SpanTree)
        for key, row in (("home", 0), ("down", 1)):
            app.post_message(Key(key, None))  # as the terminal driver does (no waiting for idle)
            await wait_until(pilot, lambda row=row: tree.cursor == row)
        assert app._loading  # the keys were answered while the backlog was loading
        assert len(store) < 1000
        await wait_until(pilot, lambda: len(store) >= 1000)  # the estimate needs 1,000 lines
        progress = re.search(r"LOADING\s+~(\d+)%", status_line(app))
        assert progress is not None, status_line(app)
        assert abs(int(progress.group(1)) - 100 * len(store) / (4 * TREES)) <= 10
        # ticks follow each other as fast as the UI allows, not at the 15 Hz of a live stream
        await wait_until(pilot, lambda: len(store) == 4 * TREES and not app._loading, timeout=5)
        await pilot.pause(0.2)
        assert "LOADING" not in status_line(app)
        assert len(app.view) == 4 * TREES
        assert tree.cursor == 1  # the view stayed where the user put it


class SlowChecker:
    """A contract checker that takes 20 ms per batch, whatever its size."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def observe(self, store: TraceStore, change: Change) -> None:
        time.sleep(0.02)

    def tick(self, store: TraceStore, now: float) -> None:
        return None

    def finish(self, store: TraceStore) -> None:
        return None

    def findings_for(self, seq: int) -> list[Any]:
        return []

    def all(self) -> list[Any]:
        return []


async def test_ticks_drain_fewer_spans_when_each_costs_more(
    store: TraceStore, no_user_themes: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(app_module, "DRAIN_MAX", 400)
    monkeypatch.setattr(app_module, "DRAIN_MIN", 40)
    monkeypatch.setattr(app_module, "TICK_TARGET_S", 0.01)
    monkeypatch.setattr(app_module, "LOAD_YIELD_S", 0.001)
    feed = BacklogFeed(store, tmp_path / "big.jsonl")
    app = TraceApp(store, feed, checker=SlowChecker())
    async with app.run_test(size=(100, 30)) as pilot:
        feed.push([line for n in range(TREES) for line in trace_tree(n, start=1000.0 + n)])
        await wait_until(pilot, lambda: len(store) >= 1000)
        assert feed.max_seen is not None and feed.max_seen < 400  # paced down from DRAIN_MAX
        assert feed.max_seen >= 40
        await wait_until(pilot, lambda: len(store) == 4 * TREES, timeout=10)
