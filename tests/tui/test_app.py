"""Pilot tests: keys and filters of the live monitor, asserting on what a user would see."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import BatchFeed, event, status_line, trace_tree, tree_screen, wait_until

from tracetui.model import Span
from tracetui.store import TraceStore
from tracetui.tui.app import TraceApp
from tracetui.tui.details import DetailsPane
from tracetui.tui.filters import FacetList, FilterPanel
from tracetui.tui.lines import TextLines
from tracetui.tui.screens import BadLinesScreen, HelpScreen, StatsScreen
from tracetui.tui.span_tree import SpanTree

SIZE = (80, 24)


def make_app(store: TraceStore, feed: BatchFeed | None, **kwargs) -> TraceApp:
    return TraceApp(store, feed, **kwargs)


def push_trees(feed: BatchFeed, first: int, count: int) -> None:
    for n in range(first, first + count):
        feed.push(trace_tree(n, start=1000.0 + n))


async def settle(pilot, seconds: float = 0.15) -> None:
    """Let the app tick: wait until the feed is drained (the tick that drained it is done)."""
    await pilot.pause(seconds)
    feed = pilot.app.feed
    if feed is not None:
        await wait_until(pilot, lambda: not feed.queue)
    await pilot.pause(0.05)


async def test_events_appended_appear_and_the_view_follows_the_bottom(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "No events yet." in "\n".join(tree_screen(app))
        push_trees(feed, 0, 10)
        await settle(pilot)
        tree = app.query_one(SpanTree)
        screen = tree_screen(app)
        assert "L3→L2 #9" in "\n".join(screen)
        assert "L3→L2 #0 " not in "\n".join(screen)  # scrolled: the first tree is off screen
        assert tree.cursor == len(app.view) - 1
        assert "40 ev" in status_line(app)
        push_trees(feed, 10, 1)
        await settle(pilot)
        assert "L3→L2 #10" in "\n".join(tree_screen(app))
        assert tree.cursor == len(app.view) - 1


async def test_scrolled_up_view_stays_put_and_counts_new_trees_until_end(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 10)
        await settle(pilot)
        await pilot.press("home")
        before = tree_screen(app)
        assert before[0].lstrip().startswith("▾ ✓ [alt] transition: L3→L2 #0")
        push_trees(feed, 10, 3)
        await settle(pilot)
        assert tree_screen(app) == before
        assert "↓ 3 new" in status_line(app)
        await pilot.press("end")
        await settle(pilot)
        assert "L3→L2 #12" in "\n".join(tree_screen(app))
        assert "new" not in status_line(app)


async def test_space_pauses_the_view_while_ingest_continues(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 2)
        await settle(pilot)
        await pilot.press("space")
        frozen = tree_screen(app)
        push_trees(feed, 2, 2)
        await settle(pilot)
        assert tree_screen(app) == frozen
        assert "PAUSED" in status_line(app)
        assert "+8" in status_line(app)
        assert len(store) == 16
        await pilot.press("space")
        await settle(pilot)
        assert "L3→L2 #3" in "\n".join(tree_screen(app))
        assert "LIVE" in status_line(app)


async def test_error_blocked_layer_and_clear_filter_keys(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 8)
        await settle(pilot)
        await pilot.press("e")
        shown = "\n".join(tree_screen(app))
        # Trees 3 and 7 have an erroring root; nothing else is shown.
        assert "#3" in shown and "#7" in shown
        assert "#0" not in shown and "[foc]" not in shown
        assert "[filtered]" in status_line(app)
        await pilot.press("e", "b")
        shown = [row for row in tree_screen(app) if row]
        # Trees 2 and 5 have a blocked focus gate; their roots stay as context.
        assert len(shown) == 4
        assert all("[alt]" in r or "⊘ [foc]" in r for r in shown)
        await pilot.press("b", "4")  # learning: nothing in these traces
        assert "Nothing matches the filters." in "\n".join(tree_screen(app))
        await pilot.press("4", "5")  # memory only: every tree, down to its memory read
        shown = [row for row in tree_screen(app) if row]
        assert any("[mem] read" in r for r in shown)
        assert len(app.view) == 32
        await pilot.press("c")
        assert len(app.view) == 32
        assert not app.view.filtering
        assert "[filtered]" not in status_line(app)


async def test_search_box_filters_by_text_and_regex(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 12)
        await settle(pilot)
        await pilot.press("slash")
        assert app.query_one(FilterPanel).has_class("open")
        await pilot.press(*"#11", "enter")
        shown = [r for r in tree_screen(app) if r]
        assert len(shown) == 1 and "L3→L2 #11" in shown[0]
        assert isinstance(app.focused, SpanTree)
        # Switch to a regex via the panel's toggle, then search for two trees.
        app.action_clear_filters()
        facets = app.query_one(FacetList)
        facets.focus()
        facets.cursor = 1  # "regular expression"
        await pilot.press("space")
        await pilot.press("slash", *"#(4|5)$", "enter")
        await settle(pilot)
        shown = [r for r in tree_screen(app) if r]
        assert len(shown) == 2
        assert "#4" in shown[0] and "#5" in shown[1]


async def test_filter_panel_counts_update_live_and_agent_toggle_filters(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 3)
        await settle(pilot)
        await pilot.press("f")
        facets = app.query_one(FacetList)
        assert "planner 12" in " ".join(facets.plain().split())
        feed.push(trace_tree(3, start=1003.0, agent="reviewer"))
        await settle(pilot, 0.7)
        text = " ".join(facets.plain().split())
        assert "reviewer 4" in text
        assert "env=dev 16" in text
        await pilot.press("a")
        assert isinstance(app.focused, FacetList)
        item = facets.items[facets.cursor]
        assert item.facet == "agent" and item.value == "planner"
        await pilot.press("down", "space")  # reviewer
        shown = [r for r in tree_screen(app) if r]
        assert len(shown) == 4 and "#3" in shown[0]
        await pilot.press("l")
        item = facets.items[facets.cursor]
        assert (item.facet, item.value) == ("label", "env=dev")
        await pilot.press("f")
        assert not app.query_one(FilterPanel).has_class("open")


async def test_enter_opens_details_that_follow_the_cursor(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 2)
        await settle(pilot)
        await pilot.press("home", "enter")
        pane = app.query_one(DetailsPane)
        assert pane.has_class("open")
        text = pane.plain()
        assert "trace_id      alt_0" in text
        assert "origin        trace.jsonl:4" in text
        assert "agent         planner" in text
        assert "labels        env=dev" in text
        assert '"agent": {' in text  # metadata pretty-printed
        assert "Raw line" in text and '"trace_id":"alt_0"' in text
        await pilot.press("down")
        text = pane.plain()
        assert "trace_id      foc_0" in text
        assert "Path from root" in text and "[alt] transition\n    [foc] gate_check" in text
        await pilot.press("escape")
        assert not pane.has_class("open")


async def test_collapse_expand_keys_and_expand_all(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 2)
        await settle(pilot)
        await pilot.press("home", "left")
        screen = [r for r in tree_screen(app) if r]
        assert screen[0].startswith("▸ ✓ [alt] transition: L3→L2 #0")
        assert "+1" in screen[0]
        assert len(screen) == 5
        await pilot.press("right")
        assert len([r for r in tree_screen(app) if r]) == 8
        await pilot.press("x")
        assert [r[:9] for r in tree_screen(app) if r] == ["▸ ✓ [alt]", "▸ ✓ [alt]"]
        await pilot.press("x")
        assert len(app.view) == 8


async def test_next_error_jumps_to_it(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 8)
        await settle(pilot)
        await pilot.press("home", "E")
        node = app.query_one(SpanTree).cursor_node
        assert isinstance(node, Span) and node.trace_id == "alt_3"
        await pilot.press("E")
        node = app.query_one(SpanTree).cursor_node
        assert isinstance(node, Span) and node.trace_id == "alt_7"


async def test_stats_bad_lines_and_help_pages(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 4)
        feed.push([b"{oops", b"[1,2]"])
        await settle(pilot)
        assert "bad 2" in status_line(app)
        await pilot.press("t")
        assert isinstance(app.screen, StatsScreen)
        text = app.screen.query_one(TextLines).plain()
        assert "16 events" in text
        assert "altitude" in text and "memory" in text
        await pilot.press("escape")
        await pilot.press("B")
        assert isinstance(app.screen, BadLinesScreen)
        text = app.screen.query_one(TextLines).plain()
        assert "trace.jsonl:17  not valid JSON" in text
        assert "trace.jsonl:18  not a JSON object" in text
        await pilot.press("q")
        assert not isinstance(app.screen, BadLinesScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one(TextLines).plain()
        for key in ("space", "ctrl+t", "n / N", "1 … 6", "enter"):
            assert key in text
        await pilot.press("escape")
        assert app.is_running


async def test_theme_cycles_with_ctrl_t(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "tracetui-dark"
        seen = [app.theme]
        for _ in range(3):
            await pilot.press("ctrl+t")
            seen.append(app.theme)
        assert seen == [
            "tracetui-dark",
            "tracetui-high-contrast",
            "tracetui-light",
            "tracetui-dark",
        ]


async def test_user_theme_folder_adds_a_theme(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    folder = no_user_themes / "tracetui" / "themes"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text(
        'name = "mine"\nprimary = "#ff00ff"\n[variables]\nlayer-altitude = "#00ff00"\n'
    )
    (folder / "broken.toml").write_text("name = [\n")
    app = make_app(store, feed, theme="mine")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "mine"
        assert app.theme_variables["layer-altitude"].lower() == "#00ff00"
        assert any("broken.toml" in p for p in app.theme_problems)


async def test_q_quits(store: TraceStore, feed: BatchFeed, no_user_themes: Path) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await settle(pilot)
    assert feed.stopped
    assert app.return_code == 0


@pytest.mark.parametrize("width", [60, 80, 120])
async def test_rows_never_exceed_the_width(
    width: int, store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    feed.push([event("long", None, inp="x" * 300, out="y" * 300, dur=123456)])
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        row = tree_screen(app)[0]
        tree = app.query_one(SpanTree)
        assert len(row) <= tree.scrollable_content_region.width
        assert row.endswith("123.46s")
        assert "…" in row


async def test_g_groups_by_layer_then_operation_with_counts(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 3)
        await settle(pilot)
        await pilot.press("g")
        rows = [r for r in tree_screen(app) if r]
        assert rows[0].startswith("▾ [alt] altitude") and rows[0].endswith("3")
        assert rows[1].startswith("  ▸ transition") and rows[1].endswith("3")
        assert [r.split()[1] for r in rows if r.startswith("▾")] == [
            "[alt]",
            "[foc]",
            "[rsn]",
            "[mem]",
        ]
        await pilot.press("down", "right")  # open the transition group: its spans
        rows = [r for r in tree_screen(app) if r]
        assert sum("[alt] transition: L3→L2" in r for r in rows) == 3
        push_trees(feed, 3, 1)  # live: counts grow, new spans join their group
        await settle(pilot)
        rows = [r for r in tree_screen(app) if r]
        assert rows[0].endswith("4")
        assert sum("[alt] transition: L3→L2" in r for r in rows) == 4
        await pilot.press("e")  # the filter applies to groups too
        rows = [r for r in tree_screen(app) if r]
        assert rows[0].endswith("1") and len([r for r in rows if r.startswith("▾")]) == 1
        await pilot.press("c", "g")
        assert app.span_tree.view is app.view
        assert "L3→L2 #3" in "\n".join(tree_screen(app))


async def test_user_key_file_remaps_bindings(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    keys = no_user_themes / "tracetui" / "keys.toml"
    keys.parent.mkdir(parents=True)
    keys.write_text('[keys]\npause = "p"\n')
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 1)
        await settle(pilot)
        await pilot.press("p")
        assert app.paused
        await pilot.press("space")
        assert app.paused  # space no longer pauses
        await pilot.press("question_mark")
        text = app.screen.query_one(TextLines).plain()
        assert "pause             space" in text


async def test_regex_search_on_a_big_store_runs_in_the_background_and_catches_up(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracetui.tui.app as app_module

    monkeypatch.setattr(app_module, "BACKGROUND_FILTER_MIN", 1)
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 12)
        await settle(pilot)
        app.set_filter(app_module.Filter.make(text="#1[1]", regex=True))
        assert "searching" in status_line(app)
        push_trees(feed, 12, 100)  # arrives while the search runs
        await app.workers.wait_for_complete()
        await settle(pilot, 0.3)
        shown = [r for r in tree_screen(app) if r]
        assert [r.split("#")[1].split()[0] for r in shown] == ["11", "110", "111"]
        assert "[filtered]" in status_line(app)


async def test_plain_search_uses_the_index_and_tests_only_what_it_has_not_reached(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracetui.tui.app as app_module

    monkeypatch.setattr(app_module, "INDEX_PER_TICK", 7)  # the index lags behind the store
    app = make_app(store, feed)
    async with app.run_test(size=SIZE) as pilot:
        push_trees(feed, 0, 40)
        await settle(pilot)
        assert 0 < app.search_index.next_seq < app._store_end
        app.set_filter(app_module.Filter.make(text="#3"))
        await settle(pilot)
        assert "searching" not in status_line(app)
        assert app.view.matched == {
            s.seq for s in store.events() if app_module.Filter.make(text="#3").predicate()(s)
        }
        shown = [r for r in tree_screen(app) if r]
        assert [r.split("#")[1].split()[0] for r in shown] == ["3", *map(str, range(30, 40))]


async def test_waiting_for_the_default_file_explains_dopejar_trace(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path
) -> None:
    from tracetui.cli.monitor import WAITING_HINT

    feed.state = "waiting"
    app = make_app(store, feed, waiting_hint=WAITING_HINT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = "\n".join(tree_screen(app))
        assert "Waiting for trace.jsonl to appear." in shown
        assert "DOPEJAR_TRACE=1" in shown
        assert "trace.jsonl waiting" in status_line(app)
        feed.state = "following"
        push_trees(feed, 0, 1)
        await settle(pilot)
        assert "Waiting" not in "\n".join(tree_screen(app))
