"""Contract findings in the monitor: badges, violations-only, n/N, details (real Checker)."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import BatchFeed, event, status_line, tree_screen, wait_until

from tracetui.contracts import Checker, load_contracts
from tracetui.model import Span
from tracetui.store import TraceStore
from tracetui.tui.app import TraceApp
from tracetui.tui.details import DetailsPane
from tracetui.tui.span_tree import SpanTree

LEAK = {"baggage": {"session_id": "s1", "run_id": "r"}}


def leaking_trees(n: int) -> list[bytes]:
    """Tree n: a root and two children; the second child leaks session_id when n is odd."""
    root = f"top{n}"
    return [
        event(f"ok{n}", root, layer="focus", op="route", ts=10.0 + n),
        event(
            f"kid{n}",
            root,
            layer="memory",
            op="read",
            ts=10.5 + n,
            meta=LEAK if n % 2 else {"baggage": {"run_id": "r"}},
        ),
        event(root, None, ts=9.0 + n, meta=LEAK),
    ]


async def test_findings_badges_violations_only_next_finding_and_details(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    checker = Checker(load_contracts(["baggage"]))
    app = TraceApp(store, feed, checker=checker)
    async with app.run_test(size=(100, 30)) as pilot:
        for n in range(4):
            feed.push(leaking_trees(n))
        await pilot.pause(0.3)
        assert "⚠ 2" in status_line(app)
        rows = tree_screen(app)
        flagged = [r for r in rows if "⚠ 1" in r]
        assert len(flagged) == 2 and all("[mem] read" in r for r in flagged)

        await pilot.press("v")
        shown = [r for r in tree_screen(app) if r]
        assert len(shown) == 4  # two roots as context, two leaking children
        assert sum("⚠ 1" in r for r in shown) == 2

        await pilot.press("v", "home", "n")
        node = app.query_one(SpanTree).cursor_node
        assert isinstance(node, Span) and node.trace_id == "kid1"
        await pilot.press("n")
        node = app.query_one(SpanTree).cursor_node
        assert isinstance(node, Span) and node.trace_id == "kid3"
        await pilot.press("N")
        node = app.query_one(SpanTree).cursor_node
        assert isinstance(node, Span) and node.trace_id == "kid1"

        await pilot.press("enter")
        text = app.query_one(DetailsPane).plain()
        assert "Findings (1)" in text
        assert "error baggage.leaked" in text
        (finding,) = checker.findings_for(node.seq)
        assert "'top1'" in finding.message
        assert finding.message in text
        assert f"hint: {finding.hint}" in text
        assert "session_id    s1  (must not propagate)" in text
        await pilot.press("escape")

        await pilot.press("x")  # collapse all: roots show that findings lie below
        rows = [r for r in tree_screen(app) if r]
        assert len(rows) == 4
        assert ["⚠↓" in r for r in rows] == [False, True, False, True]


class BrokenChecker:
    """A checker whose rules blow up (a bug in a rule, a bad contract)."""

    counts: dict[str, int] = {"error": 0}  # noqa: RUF012

    def observe(self, store: TraceStore, change: object) -> None:
        raise ValueError("rule exploded")

    def findings_for(self, seq: int) -> list[object]:
        return []


async def test_a_failing_checker_is_reported_and_switched_off(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = TraceApp(store, feed, checker=BrokenChecker())
    async with app.run_test(size=(80, 24)) as pilot:
        feed.push(leaking_trees(0))
        await wait_until(pilot, lambda: app.checker is None)
        await wait_until(
            pilot, lambda: any("rule exploded" in n.message for n in app._notifications)
        )
        feed.push(leaking_trees(1))
        await wait_until(pilot, lambda: len(app.view) == 6)
