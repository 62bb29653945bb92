"""Unix socket and TCP loopback listeners, with real sockets and real producer processes."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sources_support import event, events, ids, names, pump_until, settle

from tracetui.sources.live import LiveIngest, SourceError
from tracetui.store import TraceStore

PRODUCER = r"""
import os, socket, sys, time
target, prefix, n, tail = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if target.startswith("unix:"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(target[5:])
else:
    host, _, port = target[4:].rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)))
line = '{"trace_id":"%s%d","hrm_layer":"alt","operation":"x","status":"success",'
line += '"input_summary":"%s"}\n'
pad = "p" * 150
buf = []
for i in range(n):
    buf.append(line % (prefix, i, pad))
    if len(buf) == 50 or i == n - 1:
        sock.sendall("".join(buf).encode())
        buf = []
if tail == "partial":
    sock.sendall(b'{"trace_id":"never-finished","hrm')
    print("sent", flush=True)
    time.sleep(60)
sock.close()
"""


def producer(target: str, prefix: str, n: int, tail: str = "close") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRODUCER, target, prefix, str(n), tail],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def started() -> Iterator[list[LiveIngest]]:
    ingests: list[LiveIngest] = []
    yield ingests
    for ingest in ingests:
        ingest.stop()


def listen(started: list[LiveIngest], *specs: str, **kw: object) -> tuple[LiveIngest, TraceStore]:
    store = TraceStore()
    ingest = LiveIngest(list(specs), store, **kw)  # type: ignore[arg-type]
    ingest.start()
    started.append(ingest)
    return ingest, store


def test_unix_socket_is_private_and_removed_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "t.sock"
    old = os.umask(0)  # whatever the user's umask, the socket must not be reachable by others
    try:
        ingest = LiveIngest([f"unix:{path}"], TraceStore())
        ingest.start()
    finally:
        os.umask(old)
    try:
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert ingest.states()[0].state == "listening"
    finally:
        ingest.stop()
    assert not path.exists()


def test_producers_are_merged_with_their_pid_as_origin(
    run_dir: Path, started: list[LiveIngest]
) -> None:
    spec = f"unix:{run_dir / 't.sock'}"
    ingest, store = listen(started, spec)
    procs = [producer(spec, f"p{k}-", 300) for k in range(5)]
    pump_until(ingest, lambda: len(store) == 1500, what="1500 events")
    for proc in procs:
        assert proc.wait(timeout=10) == 0
    by_origin: dict[str, list[str]] = {}
    for span in store.events():
        by_origin.setdefault(store.origins[span.origin], []).append(span.trace_id)
    expected = {
        next(o for o in by_origin if f"[pid {p.pid} " in o): names(f"p{k}-", 300)
        for k, p in enumerate(procs)
    }
    assert by_origin == expected  # each producer's lines, in its own order, nothing lost
    pump_until(ingest, lambda: ingest.states()[0].producers == 0, what="producers gone")
    st = ingest.states()[0]
    assert (st.lines, st.rejected, st.dropped) == (1500, 0, 0)


def test_stale_socket_is_replaced(run_dir: Path, started: list[LiveIngest]) -> None:
    path = run_dir / "t.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # a server that died without removing its socket file
    ingest, store = listen(started, f"unix:{path}")
    assert "stale" in ingest.states()[0].message
    proc = producer(f"unix:{path}", "s", 3)
    pump_until(ingest, lambda: len(store) == 3, what="events through the new socket")
    assert proc.wait(timeout=10) == 0


def test_live_socket_is_never_stolen(run_dir: Path) -> None:
    path = run_dir / "t.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        ingest = LiveIngest([f"unix:{path}"], TraceStore())
        with pytest.raises(SourceError, match="already listening"):
            ingest.start()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))  # still the other server's socket
        client.close()
    finally:
        live.close()


def test_path_that_is_not_a_socket_is_never_unlinked(run_dir: Path) -> None:
    path = run_dir / "t.sock"
    path.write_text("precious")
    with pytest.raises(SourceError, match="not a socket"):
        LiveIngest([f"unix:{path}"], TraceStore()).start()
    assert path.read_text() == "precious"


def test_socket_replaced_by_a_file_while_running_is_left_alone(run_dir: Path) -> None:
    path = run_dir / "t.sock"
    ingest = LiveIngest([f"unix:{path}"], TraceStore())
    ingest.start()
    path.unlink()
    path.write_text("someone else's")
    ingest.stop()
    assert path.read_text() == "someone else's"


def test_directory_others_can_enter_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(SourceError, match="other users can enter"):
        LiveIngest([f"unix:{shared / 't.sock'}"], TraceStore()).start()
    assert not (shared / "t.sock").exists()


def test_oversized_line_is_skipped_and_other_producers_are_unaffected(
    run_dir: Path, started: list[LiveIngest]
) -> None:
    path = run_dir / "t.sock"
    ingest, store = listen(started, f"unix:{path}")
    big = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    big.connect(str(path))
    others = [producer(f"unix:{path}", f"o{k}-", 400) for k in range(2)]
    chunk = b"x" * (64 << 10)
    big.sendall(b'{"trace_id": "huge", "input_summary": "')
    for _ in range(48):  # 3 MiB without a newline, interleaved with the others
        big.sendall(chunk)
    big.sendall(b'"}\n' + event("after-huge"))
    big.close()
    pump_until(ingest, lambda: len(store) == 801, what="all good lines")
    for proc in others:
        assert proc.wait(timeout=10) == 0
    assert sorted(ids(store)) == sorted([*names("o0-", 400), *names("o1-", 400), "after-huge"])
    assert [r.line_no for r in store.rejected] == [1]
    assert "longer than the cap" in store.rejected[0].reason


def test_producer_dying_mid_line_loses_only_that_line(
    run_dir: Path, started: list[LiveIngest]
) -> None:
    spec = f"unix:{run_dir / 't.sock'}"
    ingest, store = listen(started, spec)
    proc = producer(spec, "d", 3, tail="partial")
    assert proc.stdout is not None and proc.stdout.readline() == "sent\n"
    pump_until(ingest, lambda: len(store) == 3, what="3 complete lines")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    pump_until(ingest, lambda: ingest.states()[0].dropped == 1, what="the partial line counted")
    assert ids(store) == names("d", 3)
    assert store.rejected == []
    assert any("mid-line" in n.text for n in store.notices)


def test_at_most_64_producers_and_idle_ones_are_fine(
    run_dir: Path, started: list[LiveIngest]
) -> None:
    path = str(run_dir / "t.sock")
    ingest, store = listen(started, f"unix:{path}")
    idle = []
    for _ in range(64):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        idle.append(s)
    pump_until(ingest, lambda: ingest.states()[0].producers == 64, what="64 producers")
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    extra.connect(path)
    extra.settimeout(5)
    assert extra.recv(1) == b""  # closed by the server
    extra.close()
    assert ingest.states()[0].refused == 1
    idle[0].sendall(events("idle", 2))
    idle[0].close()
    pump_until(ingest, lambda: ingest.states()[0].producers == 63, what="one slot free")
    late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    late.connect(path)
    late.sendall(events("late", 1))
    late.close()
    pump_until(ingest, lambda: len(store) == 3, what="events from idle and late producers")
    for s in idle[1:]:
        s.close()


def test_flood_with_slow_consumer_keeps_memory_bounded(
    run_dir: Path, started: list[LiveIngest]
) -> None:
    spec = f"unix:{run_dir / 't.sock'}"
    budget = 1 << 20
    ingest, store = listen(started, spec, budget=budget)
    per = 20_000  # ≈ 4 MB per producer, 40 MB in all: far more than the budget
    procs = [producer(spec, f"f{k}-", per) for k in range(10)]
    peak = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # a consumer that does not drain at all for a second
        peak = max(peak, ingest.backlog)
        time.sleep(0.01)
    assert peak <= budget + (256 << 10)  # the budget plus at most one receive
    assert all(p.poll() is None for p in procs)  # producers are held back, not dropped
    pump_until(ingest, lambda: len(store) == 10 * per, timeout=60, what="every event")
    for proc in procs:
        assert proc.wait(timeout=10) == 0
    st = ingest.states()[0]
    assert (st.lines, st.rejected, st.dropped) == (10 * per, 0, 0)


def test_tcp_loopback_with_peer_addresses(started: list[LiveIngest]) -> None:
    ingest, store = listen(started, "tcp:0")
    address = ingest.states()[0].address
    assert address.startswith("127.0.0.1:")
    procs = [producer(f"tcp:{address}", f"t{k}-", 100) for k in range(3)]
    pump_until(ingest, lambda: len(store) == 300, what="300 events")
    for proc in procs:
        assert proc.wait(timeout=10) == 0
    assert all(o.startswith(f"tcp:{address} [127.0.0.1:") for o in store.origins)
    assert len(store.origins) == 3


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_tcp_ipv6_loopback(started: list[LiveIngest]) -> None:
    ingest, store = listen(started, "tcp:[::1]:0")
    address = ingest.states()[0].address
    assert address.startswith("[::1]:")
    proc = producer(f"tcp:{address}", "v6-", 5)
    pump_until(ingest, lambda: len(store) == 5, what="events over IPv6")
    assert proc.wait(timeout=10) == 0


def test_busy_port_is_a_clear_error(started: list[LiveIngest]) -> None:
    ingest, _ = listen(started, "tcp:0")
    port = ingest.states()[0].address.rpartition(":")[2]
    with pytest.raises(SourceError, match=f"tcp:{port}: cannot listen"):
        LiveIngest([f"tcp:{port}"], TraceStore()).start()


def test_file_and_socket_merge_into_one_store(
    run_dir: Path, tmp_path: Path, started: list[LiveIngest]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(events("file", 2))
    spec = f"unix:{run_dir / 't.sock'}"
    ingest, store = listen(started, str(log), spec)
    proc = producer(spec, "sock", 2)
    pump_until(ingest, lambda: len(store) == 4, what="both sources")
    assert proc.wait(timeout=10) == 0
    settle(ingest, 0.1)
    assert sorted(ids(store)) == sorted([*names("file", 2), *names("sock", 2)])
    assert store.origins[0] == str(log) or store.origins[1] == str(log)
