"""`tracetui demo` in a real terminal (tmux): the monitor shows the demo live; q stops both."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _pane(session: str) -> str:
    out = subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True, check=False
    )
    return out.stdout


def _wait(session: str, ok: Callable[[str], bool], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    text = _pane(session)
    while not ok(text) and time.monotonic() < deadline:
        time.sleep(0.2)
        text = _pane(session)
    return text


def test_demo_opens_the_monitor_and_q_stops_the_demo(tmp_path: Path) -> None:
    session = f"tracetui-run-{os.getpid()}"
    command = (
        f"cd {shlex.quote(str(tmp_path))} && unset DOPEJAR_TRACE DOPEJAR_TRACE_FILE && "
        f"{shlex.quote(sys.executable)} -m tracetui demo --rate 4 --seed 3; "
        "echo EXIT=$?; sleep 30"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "40", command],
        check=True,
    )
    try:
        screen = _wait(session, lambda t: "[sys] request" in t and "LIVE" in t, 20)
        assert "[sys] request" in screen, screen
        assert "[alt] evaluate" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        screen = _wait(session, lambda t: "EXIT=" in t, 20)
        assert "tracetui: the demo exited with status 0" in screen, screen
        assert "EXIT=0" in screen
        assert not list(tmp_path.iterdir())
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
