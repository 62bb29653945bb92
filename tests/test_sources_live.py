"""Source specs and the LiveIngest contract the TUI and `tail` build on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_sources_support import events, ids, names, pump_until

from tracetui.model import Rejected
from tracetui.sources.live import LiveIngest, SourceError, SourceSpec, parse_source
from tracetui.store import TraceStore


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("app.log", SourceSpec("file", "app.log", path="app.log")),
        ("-", SourceSpec("stdin", "-")),
        ("unix:/run/a.sock", SourceSpec("unix", "unix:/run/a.sock", path="/run/a.sock")),
        ("tcp:7000", SourceSpec("tcp", "tcp:7000", host="127.0.0.1", port=7000)),
        (
            "tcp:127.0.0.1:7000",
            SourceSpec("tcp", "tcp:127.0.0.1:7000", host="127.0.0.1", port=7000),
        ),
        ("tcp:[::1]:7000", SourceSpec("tcp", "tcp:[::1]:7000", host="::1", port=7000)),
        (
            "tcp:localhost:7000",
            SourceSpec("tcp", "tcp:localhost:7000", host="127.0.0.1", port=7000),
        ),
        ("tcp:127.5.0.1:1", SourceSpec("tcp", "tcp:127.5.0.1:1", host="127.5.0.1", port=1)),
    ],
)
def test_parse_source(text: str, spec: SourceSpec) -> None:
    assert parse_source(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tcp:0.0.0.0:7000", "not a loopback address"),
        ("tcp:192.168.1.5:7000", "not a loopback address"),
        ("tcp:[::]:7000", "not a loopback address"),
        ("tcp:example.com:80", "not an IP address"),
        ("tcp:http", "not a port number"),
        ("tcp:70000", "out of range"),
        ("tcp:[::1]7000", r"tcp:\[::1\]:PORT"),
        ("unix:", "missing socket path"),
        ("", "empty source"),
    ],
)
def test_parse_source_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as info:
        parse_source(text)
    assert info.value.message.startswith(text or "empty")


def test_same_source_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="twice"):
        LiveIngest([str(tmp_path / "a"), f"{tmp_path}/./a"], TraceStore())
    with pytest.raises(SourceError, match="no source"):
        LiveIngest([], TraceStore())


def test_drain_respects_max_spans_and_keeps_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(events("e", 250) + b"not json\n")
    store = TraceStore()
    with LiveIngest([str(log)], store, follow=False) as ingest:
        deadline = time.monotonic() + 10
        while ingest.states()[0].state != "eof" and time.monotonic() < deadline:
            ingest.wait(0.05)  # without draining
        sizes = []
        while not ingest.done:
            change = ingest.drain(max_spans=100)
            sizes.append(len(change.new))
    assert sizes[:3] == [100, 100, 50]
    assert ids(store) == names("e", 250)
    assert [r.line_no for r in store.rejected] == [251]


def test_rejects_reach_the_hook_with_origin_name_and_store_index(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(events("a", 1))
    b.write_bytes(events("b", 1) + b"{oops\n")
    seen: list[tuple[str, Rejected]] = []
    store = TraceStore()
    store.origin("something registered earlier")
    ingest = LiveIngest(
        [str(a), str(b)], store, follow=False, on_reject=lambda o, r: seen.append((o, r))
    )
    ingest.start()
    pump_until(ingest, lambda: ingest.done, what="done")
    ingest.stop()
    assert [(o, r.line_no) for o, r in seen] == [(str(b), 2)]
    assert store.origins[seen[0][1].origin] == str(b)
    assert {store.origins[s.origin] for s in store.events()} == {str(a), str(b)}


def test_wait_returns_when_data_is_ready(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    store = TraceStore()
    with LiveIngest([str(log)], store) as ingest:
        assert ingest.wait(0.2) is False
        with open(log, "ab") as fh:
            fh.write(events("e", 1))
        pump_until(ingest, lambda: len(store) == 1, what="event")
        assert not ingest.done  # a followed file never finishes on its own


def test_stdin_is_read_to_its_end(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, events("s", 3) + b'{"trace_id": "last"}')
    os.close(write_fd)
    store = TraceStore()
    with LiveIngest(["-"], store, stdin=read_fd) as ingest:
        pump_until(ingest, lambda: ingest.done, what="end of input")
        assert ingest.states()[0].state == "closed"
    os.close(read_fd)
    assert ids(store) == [*names("s", 3), "last"]
    assert store.origins == ["stdin"]


@pytest.mark.parametrize("follow", [False, True])
def test_a_pipe_given_as_path_is_read_as_a_stream(follow: bool) -> None:
    """`tracetui tail <(myapp)`: the path is a pipe; it is read to its end, never rotated."""
    read_fd, write_fd = os.pipe()
    store = TraceStore()
    try:
        with LiveIngest([f"/dev/fd/{read_fd}"], store, follow=follow) as ingest:
            os.write(write_fd, events("p", 2))
            pump_until(ingest, lambda: len(store) == 2, what="first events")
            os.write(write_fd, events("q", 1))
            os.close(write_fd)
            write_fd = -1
            pump_until(ingest, lambda: ingest.done, what="end of the pipe")
            assert ingest.states()[0].state == "eof"
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    assert ids(store) == [*names("p", 2), "q0"]
