"""A real terminal: `tracetui --follow FILE` in tmux, fed by another process, driven by keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tui_helpers import event, trace_tree

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

TRACETUI = Path(sys.executable).with_name("tracetui")

APPEND = """
import sys
with open(sys.argv[1], "ab") as fh:
    fh.write(sys.stdin.buffer.read())
"""


class Pane:
    """One tmux server of our own (its own socket) running one command in an 80×24 pane."""

    def __init__(self) -> None:
        self.socket = f"tracetui-test-{os.getpid()}-{id(self)}"

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout

    def start(self, cwd: Path, command: str) -> None:
        self.tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "80",
            "-y",
            "24",
            "-c",
            str(cwd),
            command,
        )

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "t")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "t", key)
            time.sleep(0.15)

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_title}").strip()

    def wait_for(self, test: Callable[[str], bool], timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        text = self.screen()
        while time.monotonic() < deadline:
            text = self.screen()
            if test(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out; the screen was:\n{text}")

    def alive(self) -> bool:
        return "t" in self.tmux("list-sessions", "-F", "#{session_name}").split()

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def pane() -> Iterator[Pane]:
    p = Pane()
    yield p
    p.kill()


def append(path: Path, lines: list[bytes]) -> None:
    """Append from another process, as the traced app would."""
    subprocess.run(
        [sys.executable, "-c", APPEND, str(path)],
        input=b"".join(line + b"\n" for line in lines),
        check=True,
        timeout=20,
    )


def test_follow_in_tmux_appends_keys_snapshot_and_no_escapes(pane: Pane, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"\n".join(trace_tree(0, start=1000.0)) + b"\n")
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    env = f"env XDG_CONFIG_HOME={tmp_path / 'cfg'} TERM=xterm-256color"
    pane.start(
        tmp_path,
        f"{env} {TRACETUI} --follow trace.jsonl --no-contracts --snapshot-dir snaps",
    )
    pane.wait_for(lambda s: "L3→L2 #0" in s and "following" in s)
    title_before = pane.title()

    append(trace, trace_tree(1, start=1001.0) + trace_tree(3, start=1003.0))
    pane.wait_for(lambda s: "L3→L2 #3" in s)
    append(
        trace,
        [
            event(
                "[@click=app.quit]",
                None,
                op="\x1b]0;pwned\x07",
                inp="\x1b]52;c;aGVsbG8=\x07",
                out="[/foo]",
            )
        ],
    )
    screen = pane.wait_for(lambda s: "[@click=app.quit]" in s or "\\x1b]0;pwned" in s)
    assert "\\x1b]52;c;aGVsbG8=\\x07" in screen
    assert "[/foo]" in screen
    raw = pane.screen(escapes=True)
    assert "\x1b]" not in raw and "\x07" not in raw
    assert pane.title() == title_before
    assert "pwned" not in pane.title()

    pane.keys("e")
    screen = pane.wait_for(lambda s: "[filtered]" in s)
    assert "L3→L2 #3" in screen and "L3→L2 #1" not in screen
    pane.keys("c", "space")
    pane.wait_for(lambda s: "PAUSED" in s)
    append(trace, trace_tree(4, start=1004.0))
    pane.wait_for(lambda s: "+4" in s)
    assert "L3→L2 #4" not in pane.screen()
    pane.keys("space")
    pane.wait_for(lambda s: "L3→L2 #4" in s and "LIVE" in s)

    pane.keys("s")
    pane.wait_for(lambda s: "Snapshot written" in s)
    files = sorted(p.suffix for p in snaps.iterdir())
    assert files == [".jsonl", ".svg", ".txt"]
    jsonl = next(snaps.glob("*.jsonl")).read_bytes()
    assert jsonl == trace.read_bytes()

    pane.keys("?")
    pane.wait_for(lambda s: "pause / resume the view" in s)
    pane.keys("Escape", "q")
    deadline = time.monotonic() + 10
    while pane.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pane.alive()


def test_piped_stdin_still_leaves_the_keyboard_to_the_app(pane: Pane, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(b"\n".join(trace_tree(0) + trace_tree(3, start=1003.0)) + b"\n")
    env = f"env XDG_CONFIG_HOME={tmp_path / 'cfg'} TERM=xterm-256color"
    pane.start(tmp_path, f"cat t.jsonl | {env} {TRACETUI} --no-contracts -")
    pane.wait_for(lambda s: "L3→L2 #3" in s and "closed" in s)
    pane.keys("e")
    screen = pane.wait_for(lambda s: "[filtered]" in s)
    assert "L3→L2 #0" not in screen
    pane.keys("q")
    deadline = time.monotonic() + 10
    while pane.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pane.alive()
