"""Hostile strings stay literal everywhere; `s` writes reopenable snapshot files atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import BatchFeed, event, status_line, trace_tree, tree_screen, wait_until

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
        await wait_until(pilot, lambda: written(app) == 1)
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
        await wait_until(pilot, lambda: written(app) == 2)
    assert len({p.name for p in first + second}) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first + second)


def written(app: TraceApp) -> int:
    return sum(n.title == "Snapshot written" for n in app._notifications)


async def test_snapshot_files_are_written_by_a_worker_while_the_ui_stays_usable(
    store: TraceStore,
    feed: BatchFeed,
    no_user_themes: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker is held inside its first fsync: meanwhile keys work, ingest resumes, nothing
    half-written is visible; released, it finishes and the notification names the files."""
    import os
    import threading

    inside, release = threading.Event(), threading.Event()
    real_fsync = os.fsync
    writer: list[str] = []

    def gated_fsync(fd: int) -> None:
        writer.append(threading.current_thread().name)
        inside.set()
        assert release.wait(10)
        real_fsync(fd)

    lines = [line for n in range(30) for line in trace_tree(n, start=1000.0 + n)]
    feed.push(lines)
    app = TraceApp(store, feed, snapshot_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.view) == 120)
        monkeypatch.setattr(os, "fsync", gated_fsync)
        paths = app.take_snapshot()
        await wait_until(pilot, inside.is_set)
        assert "snapshot" in status_line(app)
        await pilot.press("home")
        assert app.span_tree.cursor == 0
        await pilot.press("down", "down")
        assert app.span_tree.cursor == 2
        feed.push(trace_tree(99, start=2000.0))  # ingest goes on while the files are written
        await wait_until(pilot, lambda: "alt_99" in store.by_id and not feed.queue)
        assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
        release.set()
        await wait_until(pilot, lambda: written(app) == 1)
        assert "snapshot" not in status_line(app)
    assert writer and all(name != threading.main_thread().name for name in writer)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    jsonl = paths[0].read_bytes().splitlines()
    assert sorted(jsonl) == sorted(lines)  # the view when `s` was pressed, not tree 99
    assert len(paths[1].read_text().splitlines()) == 120


async def test_snapshot_into_a_missing_folder_says_why(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, tmp_path: Path
) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    app = TraceApp(store, feed, snapshot_dir=target)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: "Snapshot failed" in [n.title for n in app._notifications])


@pytest.mark.parametrize("filtered", [False, True])
async def test_a_snapshot_while_paused_holds_what_the_paused_view_shows(
    store: TraceStore, feed: BatchFeed, no_user_themes: Path, tmp_path: Path, filtered: bool
) -> None:
    """Spans that arrived after `space` are not on screen, so not in any file either."""
    import orjson

    app = TraceApp(store, feed, snapshot_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        feed.push([event("a", None, inp="first"), event("b", None, inp="second")])
        await wait_until(pilot, lambda: not feed.queue)
        await pilot.pause(0.2)
        if filtered:
            app.set_filter(Filter.make(text="s"))  # "first" and "second"
            await pilot.pause(0.2)
        await pilot.press("space")
        feed.push([event("a1", "a", inp="late child"), event("z", None, inp="new roots")])
        await wait_until(pilot, lambda: not feed.queue)
        await pilot.pause(0.2)
        assert [r.split("]")[1].split(":")[0].strip() for r in tree_screen(app) if r.strip()] == [
            "transition",
            "transition",
        ]
        paths = app.take_snapshot()
        await wait_until(pilot, lambda: all(p.exists() for p in paths))
        ids = [orjson.loads(line)["trace_id"] for line in paths[0].read_bytes().splitlines()]
        assert ids == ["a", "b"]
        txt = paths[1].read_text().splitlines()
        assert len(txt) == 2 and "first" in txt[0] and "second" in txt[1]
