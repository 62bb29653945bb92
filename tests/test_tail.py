"""`tracetui tail` as a real subprocess: output as events arrive, signals, summary, sources."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sources_support import event, events

DEADLINE = 15.0


class Tail:
    """A running `tracetui tail` whose stdout is read line by line with deadlines."""

    def __init__(self, *args: str, stdin: int | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracetui", "tail", *args],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
        )
        self._buf = b""
        self._err = b""

    def lines(self, n: int, timeout: float = DEADLINE) -> list[str]:
        """The next `n` stdout lines (fails when they do not come in time)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while self._buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            assert left > 0, f"only got {self._buf!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                assert data, f"stdout closed early after {self._buf!r}; {self.stderr_now()}"
                self._buf += data
        *out, self._buf = self._buf.split(b"\n", n)
        return [ln.decode() for ln in out] if n else []

    def stderr_until(self, text: str, timeout: float = DEADLINE) -> None:
        """Read stderr until `text` has appeared (kept for `finish`)."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while text.encode() not in self._err:
            left = deadline - time.monotonic()
            assert left > 0, f"stderr so far: {self._err!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                assert data, f"stderr closed: {self._err!r}"
                self._err += data

    def stderr_now(self) -> str:
        return "" if self.proc.poll() is None else self.proc.communicate()[1].decode()

    def finish(self, sig: int | None = None) -> tuple[int, str, str]:
        """Send `sig` (if any) and return (exit code, rest of stdout, stderr)."""
        if sig is not None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=DEADLINE)
        return self.proc.returncode, (self._buf + out).decode(), (self._err + err).decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    running: list[Tail] = []
    yield running
    for t in running:
        t.kill()


def start(tails: list[Tail], *args: str, **kw: object) -> Tail:
    t = Tail(*args, **kw)  # type: ignore[arg-type]
    tails.append(t)
    return t


def test_file_without_follow_prints_everything_then_exits(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        event("a", operation="altitude.transition")
        + b"this is not json\n"
        + event("b", status="error", operation="focus.gate_check", hrm_layer="foc")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tracetui", "tail", str(log)],
        capture_output=True,
        encoding="utf-8",
        timeout=DEADLINE,
    )
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "[alt] transition (1.5ms)",
        "[foc] gate_check ✗ error (1.5ms)",
    ]
    assert f"{log}:2: not valid JSON" in proc.stderr
    assert "tracetui: 2 events, 1 bad line, 0 dropped, 0 rotations" in proc.stderr


def test_follow_prints_as_events_arrive_and_sigint_exits_0_with_summary(
    tmp_path: Path, tails: list[Tail]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(events("old", 2))
    t = start(tails, "-f", "--format", "json", str(log))
    assert [json.loads(x)["trace_id"] for x in t.lines(2)] == ["old0", "old1"]
    with open(log, "ab") as fh:
        fh.write(events("new", 1))
    assert json.loads(t.lines(1)[0])["trace_id"] == "new0"  # flushed per batch, not at exit
    os.rename(log, f"{log}.1")
    log.write_bytes(events("rot", 1))
    assert json.loads(t.lines(1)[0])["trace_id"] == "rot0"
    code, rest, err = t.finish(signal.SIGINT)
    assert (code, rest) == (0, "")
    assert "rotated" in err
    assert "tracetui: 4 events, 0 bad lines, 0 dropped, 1 rotation" in err
    assert "Traceback" not in err


def test_sigterm_flushes_and_exits_0(tmp_path: Path, tails: list[Tail]) -> None:
    log = tmp_path / "app.log"
    t = start(tails, "--follow", "--poll", str(log))
    t.stderr_until(f"waiting for {log} to appear")
    log.write_bytes(events("e", 3))
    assert len(t.lines(3)) == 3
    code, rest, err = t.finish(signal.SIGTERM)
    assert (code, rest) == (0, "")
    assert "tracetui: 3 events" in err
    assert err.count(f"waiting for {log} to appear") == 1


def test_json_output_is_the_original_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    original = event("a") + b'{"trace_id": "b",   "status": "ERROR", "extra": {"k": [1, 2]}}\r\n'
    log.write_bytes(original)
    proc = subprocess.run(
        [sys.executable, "-m", "tracetui", "tail", "--format", "json", str(log)],
        capture_output=True,
        timeout=DEADLINE,
    )
    assert proc.stdout == original.replace(b"\r\n", b"\n")


def test_stdin_pipe(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tracetui", "tail", "-", "--status", "error"],
        input=events("ok", 3) + event("bad", status="error"),
        capture_output=True,
        timeout=DEADLINE,
    )
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert b"4 events (1 shown)" in proc.stderr


def test_socket_stream_recorded_to_a_file(tmp_path: Path) -> None:
    sock_path = tmp_path / "run" / "t.sock"
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracetui", "tail", "--format", "json", f"unix:{sock_path}"],
            stdout=fh,
            stderr=subprocess.PIPE,
        )
    try:
        deadline = time.monotonic() + DEADLINE
        while not sock_path.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        sent = b""
        for k in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(sock_path))
                data = events(f"p{k}-", 50)
                s.sendall(data)
                sent += data
        while out.read_bytes().count(b"\n") < 150:  # written as it arrives, before any signal
            assert time.monotonic() < deadline, out.read_bytes()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert sorted(out.read_bytes().splitlines()) == sorted(sent.splitlines())
    assert f"listening on {sock_path}" in err.decode()
    assert "150 events" in err.decode()
    assert not sock_path.exists()  # removed on exit


def test_last_n_and_from_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(events("e", 10))
    args = [sys.executable, "-m", "tracetui", "tail", "--format", "json"]
    last = subprocess.run([*args, "--last", "2", str(log)], capture_output=True, timeout=DEADLINE)
    assert [json.loads(x)["trace_id"] for x in last.stdout.splitlines()] == ["e8", "e9"]
    end = subprocess.run([*args, "--from-end", str(log)], capture_output=True, timeout=DEADLINE)
    assert end.stdout == b""


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        event("x", operation="altitude.\x1b]52;c;ZXZpbA==\x07steal", input_summary="\u202eabc")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tracetui", "tail", str(log)], capture_output=True, timeout=DEADLINE
    )
    assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
    assert b"\\x1b" in proc.stdout
    assert "\u202e".encode() not in proc.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["tcp:0.0.0.0:9000"], 2, "not a loopback address"),
        (["missing.log"], 1, "cannot open missing.log: no such file"),
        (["a.log", "./a.log"], 2, "given twice"),
    ],
)
def test_errors_are_clear(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tracetui", "tail", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=tmp_path,
    )
    assert proc.returncode == code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(events("e", 20_000))
    proc = subprocess.run(
        f"{sys.executable} -m tracetui tail {log} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_a_second_ctrl_c_stops_tail_even_while_its_output_is_blocked(tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    log.write_bytes(events("e", 20_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracetui", "tail", "-f", str(log)],
        stdout=subprocess.PIPE,  # never read: like a pager that is paused
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)  # long enough to fill the pipe and block in write
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_last_n_counts_events_not_blank_lines(tmp_path: Path) -> None:
    log = tmp_path / "b.jsonl"
    log.write_bytes(events("b", 5) + b"\n\n  \n")
    args = [sys.executable, "-m", "tracetui", "tail", "--format", "json", "--last", "2", str(log)]
    out = subprocess.run(args, capture_output=True, timeout=DEADLINE)
    assert [json.loads(x)["trace_id"] for x in out.stdout.splitlines()] == ["b3", "b4"]
