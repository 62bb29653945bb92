"""Following files like `tail -F`, with a real writer process doing real renames and truncations.

Every scenario runs twice: with inotify (the follower's own stat re-check is set to 30 s, so the
directory watch must do the work) and with polling.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_sources_support import (
    Writer,
    close,
    create,
    event,
    events,
    ids,
    makedirs,
    names,
    open_,
    pump_until,
    rename,
    replace,
    settle,
    truncate,
    unlink,
    write,
)

from tracetui.sources import follow as follow_mod
from tracetui.sources.live import LiveIngest
from tracetui.store import TraceStore

MakeIngest = Callable[..., tuple[LiveIngest, TraceStore]]


@pytest.fixture(params=["inotify", "poll"])
def make(request: pytest.FixtureRequest) -> Iterator[MakeIngest]:
    poll = request.param == "poll"
    started: list[LiveIngest] = []

    def factory(*paths: Path | str, **kw: object) -> tuple[LiveIngest, TraceStore]:
        store = TraceStore(max_events=kw.pop("max_events", None))  # type: ignore[arg-type]
        kw.setdefault("recheck", 30.0)
        ingest = LiveIngest([str(p) for p in paths], store, poll=poll, **kw)  # type: ignore[arg-type]
        ingest.start()
        started.append(ingest)
        return ingest, store

    yield factory
    for ingest in started:
        ingest.stop()


@pytest.fixture
def writer() -> Iterator[Writer]:
    w = Writer()
    yield w
    w.close()


def state_of(ingest: LiveIngest) -> str:
    return ingest.states()[0].state


def notices(store: TraceStore) -> list[str]:
    return [n.text for n in store.notices]


def test_file_missing_at_start_is_waited_for(make: MakeIngest, writer: Writer, tmp_path: Path):
    log = tmp_path / "app.log"
    ingest, store = make(log)
    pump_until(ingest, lambda: "waiting for" in ingest.states()[0].message, what="waiting state")
    assert state_of(ingest) == "waiting"
    writer.do(open_("a", log), write("a", events("e", 3)))
    pump_until(ingest, lambda: len(store) == 3, what="3 events")
    assert ids(store) == names("e", 3)
    assert state_of(ingest) == "following"
    assert store.origins == [str(log)]


def test_parent_directory_missing_at_start(make: MakeIngest, writer: Writer, tmp_path: Path):
    log = tmp_path / "not" / "yet" / "app.log"
    ingest, store = make(log)
    pump_until(ingest, lambda: "directory" in ingest.states()[0].message, what="dir message")
    writer.do(makedirs(log.parent))
    settle(ingest, 0.2)
    writer.do(open_("a", log), write("a", events("e", 2)))
    pump_until(ingest, lambda: len(store) == 2, what="2 events")
    assert ids(store) == names("e", 2)


def test_directory_removed_and_recreated(make: MakeIngest, writer: Writer, tmp_path: Path):
    log = tmp_path / "logs" / "app.log"
    writer.do(makedirs(log.parent), open_("a", log), write("a", events("a", 2)), close("a"))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 2, what="first events")
    writer.do(unlink(log), {"op": "rmdir", "path": str(log.parent)})
    pump_until(ingest, lambda: state_of(ingest) == "waiting", what="waiting")
    writer.do(makedirs(log.parent), open_("b", log), write("b", events("b", 2)))
    pump_until(ingest, lambda: len(store) == 4, what="events in the new directory")
    assert ids(store) == names("a", 2) + names("b", 2)


def test_partial_last_line_is_held_until_its_newline(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    line = event("half")
    writer.do(open_("a", log), write("a", event("e0") + line[:25]))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 1, what="first event")
    settle(ingest, 0.4)
    assert (len(store), len(store.rejected)) == (1, 0)  # not parsed half-written
    writer.do(write("a", line[25:]))
    pump_until(ingest, lambda: len(store) == 2, what="completed line")
    assert ids(store) == ["e0", "half"]
    assert store.rejected == []


def test_copytruncate_restarts_at_zero_and_keeps_earlier_events(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("old", 3)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 3, what="3 old events")
    writer.do(truncate(log))
    pump_until(ingest, lambda: ingest.states()[0].rotations == 1, what="truncation seen")
    assert state_of(ingest) == "truncated"
    writer.do(write("a", events("new", 2)))
    pump_until(ingest, lambda: len(store) == 5, what="2 new events")
    assert ids(store) == names("old", 3) + names("new", 2)
    assert store.rejected == []
    assert any("truncated" in t for t in notices(store))
    assert [s.line_no for s in store.events()] == [1, 2, 3, 1, 2]


def test_truncate_and_regrow_past_offset_before_next_look(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("old", 4)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 4, what="4 old events")
    # Both in one go, long before the watcher's 50 ms debounce lets the follower look.
    writer.do(truncate(log), write("a", events("new", 12, pad=30)))
    pump_until(ingest, lambda: len(store) == 16, what="12 new events")
    assert ids(store) == names("old", 4) + names("new", 12)
    assert store.rejected == []
    assert_one_restart_noticed(ingest, store)


def test_regrow_with_the_same_first_kilobytes_is_still_noticed(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    same = events("same", 40, pad=100)  # well past the 4 KiB head
    writer.do(open_("a", log), write("a", same + events("old", 3)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 43, what="first version")
    writer.do(truncate(log), write("a", same + events("new", 6, pad=60)))
    pump_until(ingest, lambda: len(store) == 43 + 46, what="rewritten file read again")
    assert ids(store)[43:] == names("same", 40) + names("new", 6)
    assert store.rejected == []
    assert_one_restart_noticed(ingest, store)


def assert_one_restart_noticed(ingest: LiveIngest, store: TraceStore) -> None:
    """The follower said once that it reads the file again from the start. Which words depends
    on when it looked: between the writer's truncate and its write ("truncated to 0 bytes"), or
    after both ("rewritten"); a loaded machine gives either."""
    said = [t for t in notices(store) if "reading again from the start" in t]
    assert len(said) == 1, notices(store)
    assert "rewritten" in said[0] or "truncated to 0 bytes" in said[0], said
    assert ingest.states()[0].rotations == 1


def test_from_end_reads_a_file_that_appears_later_whole(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    ingest, store = make(log, from_end=True)
    pump_until(ingest, lambda: state_of(ingest) == "waiting", what="waiting")
    writer.do(create(log, events("e", 3)))
    pump_until(ingest, lambda: len(store) == 3, what="the whole new file")


def test_rename_and_recreate_drains_old_file_then_follows_new(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("first", 2)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 2, what="first events")
    writer.do(
        write("a", events("old", 3)),  # not read yet when the rename happens
        rename(log, tmp_path / "app.log.1"),
        close("a"),
        open_("b", log),
        write("b", events("new", 2)),
    )
    pump_until(ingest, lambda: len(store) == 7, what="all events")
    assert ids(store) == names("first", 2) + names("old", 3) + names("new", 2)
    st = ingest.states()[0]
    assert (st.rotations, st.dropped, store.rejected) == (1, 0, [])
    assert any("rotated" in t for t in notices(store))
    writer.do(write("b", events("more", 2)))
    pump_until(ingest, lambda: len(store) == 9, what="events after rotation")


def test_writes_to_the_renamed_file_before_a_new_one_appears_are_kept(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    """logrotate without copytruncate: the app keeps writing to its open (renamed) file for a
    while, and only later reopens the name."""
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("first", 2)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 2, what="first events")
    writer.do(rename(log, tmp_path / "app.log.1"))
    pump_until(ingest, lambda: state_of(ingest) == "waiting", what="waiting after the rename")
    writer.do(write("a", events("late", 3)))
    settle(ingest, 0.3)
    writer.do(close("a"), open_("b", log), write("b", events("new", 2)))
    pump_until(ingest, lambda: len(store) == 7, what="all events")
    assert ids(store) == names("first", 2) + names("late", 3) + names("new", 2)
    assert ingest.states()[0].dropped == 0


def test_delete_without_recreate_keeps_events_and_waits(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("e", 2)), close("a"))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 2, what="events")
    writer.do(unlink(log))
    pump_until(ingest, lambda: state_of(ingest) == "waiting", what="waiting after delete")
    assert "deleted" in ingest.states()[0].message
    assert len(store) == 2
    assert any("deleted" in t for t in notices(store))
    writer.do(open_("b", log), write("b", events("back", 1)))
    pump_until(ingest, lambda: len(store) == 3, what="event in the recreated file")
    assert ids(store)[-1] == "back0"


def test_atomic_replace_with_new_content_is_read_from_start(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(create(log, events("v1-", 3)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 3, what="v1")
    tmp = tmp_path / "app.log.tmp"
    writer.do(create(tmp, events("v2-", 2)), replace(tmp, log))
    pump_until(ingest, lambda: len(store) == 5, what="v2")
    assert ids(store) == names("v1-", 3) + names("v2-", 2)
    assert ingest.states()[0].rotations == 1


def test_atomic_replace_that_appends_reads_only_the_new_lines(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(create(log, events("e", 3)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 3, what="first version")
    tmp = tmp_path / "app.log.tmp"
    writer.do(create(tmp, events("e", 5)), replace(tmp, log))
    pump_until(ingest, lambda: len(store) >= 5, what="appended lines")
    settle(ingest, 0.3)
    assert ids(store) == names("e", 5)  # nothing read twice
    assert any("continuing at byte" in t for t in notices(store))


def test_nul_run_from_writer_without_o_append_is_skipped_and_reported_once(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    log = tmp_path / "app.log"
    writer.do(open_("a", log, append=False), write("a", events("old", 3)))
    ingest, store = make(log)
    pump_until(ingest, lambda: len(store) == 3, what="old events")
    # logrotate's copytruncate under a writer that keeps its own offset: a hole of NULs.
    writer.do(truncate(log), write("a", events("new", 2)))
    pump_until(ingest, lambda: len(store) == 5, what="new events")
    settle(ingest, 0.3)
    assert ids(store) == names("old", 3) + names("new", 2)
    assert store.rejected == []
    nul = [t for t in notices(store) if "NUL" in t]
    assert len(nul) == 1
    assert f"{len(events('old', 3)):,} NUL bytes" in nul[0]


def test_many_small_appends_faster_than_we_read(make: MakeIngest, writer: Writer, tmp_path: Path):
    log = tmp_path / "app.log"
    ingest, store = make(log)
    data = events("e", 20_000)
    writer.do(open_("a", log), write("a", data, each=37))  # lines torn across tiny writes
    pump_until(ingest, lambda: len(store) == 20_000, what="20,000 events")
    assert ids(store) == names("e", 20_000)
    assert store.rejected == []


def test_single_100_mb_burst(make: MakeIngest, writer: Writer, tmp_path: Path):
    log = tmp_path / "app.log"
    n = 100_000
    data = events("e", n, pad=860)
    assert len(data) >= 100_000_000
    ingest, store = make(log, max_events=5_000)
    writer.do(open_("a", log), write("a", data))
    pump_until(ingest, lambda: len(store) + store.evicted == n, timeout=60, what="all events")
    assert ids(store)[-1] == f"e{n - 1}"
    assert (len(store.rejected), ingest.states()[0].lines) == (0, n)


def test_from_end_and_last_n_start_near_the_end(make: MakeIngest, writer: Writer, tmp_path: Path):
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("e", 10) + event("partial")[:20]))
    end, end_store = make(log, from_end=True)
    last, last_store = make(log, last=3)
    pump_until(last, lambda: len(last_store) == 2, what="e8, e9")
    pump_until(end, lambda: state_of(end) == "following", what="following from the end")
    writer.do(write("a", event("partial")[20:] + events("n", 1)))
    pump_until(end, lambda: len(end_store) == 2, what="from-end events")
    pump_until(last, lambda: len(last_store) == 4, what="last-3 events")
    assert ids(end_store) == ["partial", "n0"]
    assert ids(last_store) == ["e8", "e9", "partial", "n0"]  # an unfinished line counts as one
    assert [s.line_no for s in last_store.events()] == [9, 10, 11, 12]
    assert [s.line_no for s in end_store.events()] == [11, 12]


def test_without_follow_reads_to_the_end_and_finishes(make: MakeIngest, tmp_path: Path):
    log = tmp_path / "app.log"
    log.write_bytes(events("e", 3) + b'{"trace_id": "tail"}')  # no final newline
    ingest, store = make(log, follow=False)
    pump_until(ingest, lambda: ingest.done, what="done")
    assert ids(store) == [*names("e", 3), "tail"]
    assert state_of(ingest) == "eof"


def test_stat_recheck_alone_survives_without_watch_events(
    monkeypatch: pytest.MonkeyPatch, writer: Writer, tmp_path: Path
):
    """inotify can coalesce or drop events: the slow stat re-check must suffice on its own."""

    class Deaf(follow_mod.DirWatcher):
        def run(self) -> None:
            self.stop.wait()

    monkeypatch.setattr(follow_mod, "DirWatcher", Deaf)
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("a", 2)))
    store = TraceStore()
    with LiveIngest([str(log)], store, recheck=0.1) as ingest:
        pump_until(ingest, lambda: len(store) == 2, what="first events")
        writer.do(rename(log, f"{log}.1"), open_("b", log), write("b", events("b", 2)))
        pump_until(ingest, lambda: len(store) == 4, what="events after rotation")
        writer.do(truncate(log), write("b", events("c", 1)))
        pump_until(ingest, lambda: len(store) == 5, what="event after truncation")
    assert ids(store) == [*names("a", 2), *names("b", 2), "c0"]


def test_two_files_merge_into_one_store_with_origins(
    make: MakeIngest, writer: Writer, tmp_path: Path
):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    ingest, store = make(a, b)
    writer.do(open_("a", a), open_("b", b), write("a", events("a", 3)), write("b", events("b", 2)))
    pump_until(ingest, lambda: len(store) == 5, what="both files")
    by_origin = {store.origins[s.origin]: [] for s in store.events()}
    for s in store.events():
        by_origin[store.origins[s.origin]].append(s.trace_id)
    assert by_origin == {str(a): names("a", 3), str(b): names("b", 2)}


def test_stop_releases_every_descriptor_and_thread(
    make: MakeIngest, writer: Writer, tmp_path: Path
) -> None:
    before = open_descriptors()
    log = tmp_path / "app.log"
    ingest, store = make(log)
    writer.do(open_("a", log), write("a", events("a", 1)))
    pump_until(ingest, lambda: len(store) == 1, what="event")
    writer.do(rename(log, f"{log}.1"), open_("b", log), write("b", events("b", 1)))
    pump_until(ingest, lambda: len(store) == 2, what="event after rotation")
    ingest.stop()
    assert not any(r.is_alive() for r in ingest.readers)
    assert all(r.watcher is None or not r.watcher.is_alive() for r in ingest.readers)  # type: ignore[union-attr]
    deadline = time.monotonic() + 2  # notify's event-loop thread closes its epoll as it exits
    while open_descriptors() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert open_descriptors() - before == set()


def open_descriptors() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone
            out.add(f"{fd} {os.readlink(f'/proc/self/fd/{fd}')}")
    return out


def test_watchfiles_force_polling_env_means_polling(
    monkeypatch: pytest.MonkeyPatch, writer: Writer, tmp_path: Path
) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    log = tmp_path / "app.log"
    writer.do(open_("a", log), write("a", events("old", 2)))
    store = TraceStore()
    with LiveIngest([str(log)], store, recheck=30) as ingest:
        follower = ingest.readers[0]
        assert isinstance(follower, follow_mod.FileFollower)
        pump_until(ingest, lambda: len(store) == 2, what="old events")
        assert follower.watcher is not None and follower.watcher.poll
        writer.do(truncate(log), write("a", events("new", 1)))
        pump_until(ingest, lambda: len(store) == 3, timeout=3, what="event after truncation")
