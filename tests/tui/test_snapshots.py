"""Screenshots of the key screens (pytest-textual-snapshot), at the 80×24 of a narrow split."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_helpers import BatchFeed, event, trace_tree

from tracetui.contracts import Finding
from tracetui.store import TraceStore
from tracetui.tui.app import TraceApp

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def fixed_environment(no_user_themes: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC so timestamps in the details pane do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def loaded_app(theme: str | None = None, checker: bool = False) -> TraceApp:
    store = TraceStore()
    feed = BatchFeed(store)
    for n in range(5):
        feed.push(trace_tree(n, start=1_705_180_800.0 + n))
    feed.push(
        [
            event("wait_1", "gone", layer="learning", op="pattern_match", inp="p-17", out="miss"),
            event("dup", None, layer="system", op="heartbeat"),
            event("dup", None, layer="system", op="heartbeat"),
            b"{not json",
        ]
    )
    feed.drain()
    found = FixedFindings(store) if checker else None
    return TraceApp(store, None, theme=theme, checker=found)


class FixedFindings:
    """Findings fixed by the test (real `Finding` records), so the picture does not change when
    the contract presets evolve."""

    def __init__(self, store: TraceStore) -> None:
        self.by_seq: dict[int, list[Finding]] = {}
        for tid, severity, rule in (
            ("foc_2", "error", "baggage.leaked"),
            ("mem_3", "warning", "data.missing_key"),
            ("mem_3", "warning", "data.missing_key"),
            ("rsn_4", "info", "schema.trace_id_shape"),
        ):
            span = store.by_id[tid]
            self.by_seq.setdefault(span.seq, []).append(
                Finding(rule, severity, tid, span.seq, None, f"{rule} on {tid}", "fix it")
            )
        self.counts = {"error": 1, "warning": 2, "info": 1}

    def findings_for(self, seq: int) -> list[Finding]:
        return self.by_seq.get(seq, [])

    def observe(self, store: TraceStore, change: object) -> None:
        return None

    def tick(self, store: TraceStore, now: float) -> None:
        return None

    def finish(self, store: TraceStore) -> None:
        return None

    def all(self) -> list[Finding]:
        return [f for found in self.by_seq.values() for f in found]


def test_main_screen_dark(snap_compare) -> None:
    assert snap_compare(loaded_app(), terminal_size=SIZE)


def test_main_screen_light(snap_compare) -> None:
    assert snap_compare(loaded_app(theme="tracetui-light"), terminal_size=SIZE)


def test_main_screen_high_contrast_with_findings(snap_compare) -> None:
    assert snap_compare(
        loaded_app(theme="tracetui-high-contrast", checker=True), terminal_size=(100, 24)
    )


def test_details_pane(snap_compare) -> None:
    assert snap_compare(loaded_app(), terminal_size=SIZE, press=["home", "down", "enter"])


def test_help_screen(snap_compare) -> None:
    assert snap_compare(loaded_app(), terminal_size=SIZE, press=["question_mark"])


def test_stats_screen(snap_compare) -> None:
    assert snap_compare(loaded_app(), terminal_size=SIZE, press=["t"])


def test_filtered_view_with_panel(snap_compare) -> None:
    assert snap_compare(loaded_app(), terminal_size=SIZE, press=["b", "f"])


def test_grouped_view(snap_compare) -> None:
    assert snap_compare(loaded_app(), terminal_size=SIZE, press=["g", "down", "right"])
