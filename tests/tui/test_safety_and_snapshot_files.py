"""Hostile strings stay literal everywhere; `s` writes reopenable snapshot files atomically."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import BatchFeed, event, trace_tree, tree_screen, wait_until

from tracetui.formatting import tree_lines
from tracetui.load import load_paths
from tracetui.query import Filter, select
from tracetui.store import TraceStore
from tracetui.tui.app import TraceApp
from tracetui.tui.details import DetailsPane
from tracetui.tui.filters import FacetList

CLICK = "[@click=app.quit]"
CLOSE = "[/foo]"
CLIPBOARD = "\x1b]52;c;aGVsbG8=\x07"
TITLE = "\x1b]0;pwned\x07"


def hostile_line() -> bytes:
    return event(
        CLICK,
        None,
        op=CLOSE + TITLE,
        inp=CLIPBOARD,
        out="[bold]x[/bold]",
        agent=CLOSE,
        labels={"k": CLICK},
    )


async def test_hostile_strings_show_literally_in_rows_details_facets_notifications_and_files(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, tmp_path: Path
) -> None:
    snap_dir = tmp_path / CLICK
    snap_dir.mkdir()
    app = TraceApp(store, feed, snapshot_dir=snap_dir)
    feed.push([hostile_line()])
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.2)
        row = tree_screen(app)[0]
        assert "[/foo]\\x1b]0;pwned\\x07: \\x1b]52;c;aGVsbG8=\\x07 → [bold]x[/bold]" in row
        await pilot.press("enter")
        details = app.query_one(DetailsPane).plain()
        assert f"trace_id      {CLICK}" in details
        assert "\\x1b]52;c;aGVsbG8=\\x07" in details
        assert "\x1b" not in details and "\x07" not in details
        await pilot.press("escape", "f")
        facets = app.query_one(FacetList).plain()
        assert CLOSE in facets and f"k={CLICK}" in facets
        await pilot.press("s")
        await wait_until(
            pilot,
            lambda: any(CLICK in n.message and ".jsonl" in n.message for n in app._notifications),
        )
        assert app.is_running
    written = sorted(snap_dir.iterdir())
    assert [p.suffix for p in written] == [".jsonl", ".svg", ".txt"]
    txt = written[2].read_text()
    assert "\\x1b]52;c;" in txt and "\x1b" not in txt
    svg = written[1].read_text()
    assert "\x1b" not in svg and "\x07" not in svg
    assert "[@click=app.quit]" in svg.replace("&#160;", " ")
    assert written[0].read_bytes() == hostile_line() + b"\n"


async def test_snapshot_writes_the_filtered_view_as_reopenable_files(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, tmp_path: Path
) -> None:
    lines = [line for n in range(8) for line in trace_tree(n, start=1000.0 + n)]
    feed.push(lines)
    app = TraceApp(store, feed, snapshot_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("e")
        await pilot.press("s")
        await pilot.pause(0.1)
        shown = [r for r in tree_screen(app) if r]
    files = sorted(tmp_path.glob("tracetui-*"))
    names = [p.name for p in files]
    assert len(files) == 3, names
    stem = files[0].name.rsplit(".", 1)[0]
    assert stem.startswith("tracetui-") and len(stem) == len("tracetui-YYYYmmdd-HHMMSS")
    assert not list(tmp_path.glob(".*.tmp"))
    jsonl, svg, txt = files
    # Only the two erroring root spans (trees 3 and 7) are in the view: their exact lines.
    expected = [lines[4 * 3 + 3], lines[4 * 7 + 3]]
    assert jsonl.read_bytes().splitlines() == expected
    reopened = TraceStore()
    load_paths(reopened, [str(jsonl)])
    assert len(reopened) == 2 and not reopened.rejected
    flt = Filter.make(statuses=["error"])
    again = TraceStore()
    load_paths(again, [str(jsonl)])
    assert txt.read_text().splitlines() == list(tree_lines(again, select(again, flt)))
    assert len(shown) == 2
    assert svg.read_text().startswith("<svg")


async def test_two_snapshots_in_one_second_do_not_overwrite_each_other(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, tmp_path: Path
) -> None:
    feed.push(trace_tree(0))
    app = TraceApp(store, feed, snapshot_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        first = app.take_snapshot()
        second = app.take_snapshot()
    assert len({p.name for p in first + second}) == 6


async def test_snapshot_into_a_missing_folder_says_why(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, tmp_path: Path
) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    app = TraceApp(store, feed, snapshot_dir=target)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: "Snapshot failed" in [n.title for n in app._notifications])
