"""`tracetui run` and `tracetui demo` as real processes (output not a terminal: streaming)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from tracetui.decode import LineDecoder

TRACETUI = [sys.executable, "-m", "tracetui"]

EMITTER = textwrap.dedent(
    """
    import os, stat, sys
    from tracetui.tracer import tracer
    sock = os.environ["DOPEJAR_TRACE_SOCKET"].removeprefix("unix:")
    d = os.path.dirname(sock)
    print("seen", os.environ["DOPEJAR_TRACE"], "DOPEJAR_TRACE_FILE" in os.environ,
          oct(stat.S_IMODE(os.stat(d).st_mode)), oct(stat.S_IMODE(os.stat(sock).st_mode)),
          stat.S_ISSOCK(os.stat(sock).st_mode), sock, file=sys.stderr)
    n = int(sys.argv[1])
    with tracer.agent("worker", run_id="r1"):
        for i in range(n):
            with tracer.span("mem", "write", "store.py", f"key{i}") as s:
                if i % 10 == 3:
                    s.block("quota")
                s.set_output("written", namespace="n", key=f"key{i}", tier="hot", tokens_saved=i)
    print("hello from stdout")
    sys.exit(int(sys.argv[2]))
    """
)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DOPEJAR_")}
    e["DOPEJAR_TRACE_FILE"] = "/nonexistent/should-not-be-used.jsonl"
    return e


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRACETUI, *args], env=env(), capture_output=True, text=True, timeout=timeout
    )


def test_run_streams_events_and_exits_with_cmd_status(tmp_path: Path) -> None:
    out = run(["run", "--", sys.executable, "-c", EMITTER, "2000", "3"])
    assert out.returncode == 3, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2000
    assert lines[0] == "[mem] write: key0 → written (" + lines[0].split("(")[1]
    assert "⊘ blocked" in lines[3] and "[saved 3 tokens]" in lines[3]
    seen = next(line for line in out.stderr.splitlines() if line.startswith("seen"))
    _, trace, has_file, dir_mode, sock_mode, is_sock, sock = seen.split()
    assert (trace, has_file, dir_mode, sock_mode, is_sock) == (
        "1",
        "False",
        "0o700",
        "0o600",
        "True",
    )
    assert not Path(sock).parent.exists()
    assert "hello from stdout" in out.stderr
    assert "2,000 events, 0 bad lines, 0 dropped" in out.stderr
    assert out.stderr.rstrip().endswith(f"{Path(sys.executable).name} exited with status 3")


def test_run_json_format_and_filters() -> None:
    out = run(
        [
            "run",
            "--format",
            "json",
            "--status",
            "blocked",
            "--",
            sys.executable,
            "-c",
            EMITTER,
            "100",
            "0",
        ]
    )
    assert out.returncode == 0, out.stderr
    spans, rejected = LineDecoder().decode(out.stdout.encode().splitlines(), 1)
    assert not rejected and len(spans) == 10
    assert {s.status for s in spans} == {"blocked"} and {s.agent for s in spans} == {"worker"}
    assert "100 events (10 shown)" in out.stderr


def test_command_not_found_and_not_executable(tmp_path: Path) -> None:
    out = run(["run", "--", "no-such-command-xyz"])
    assert out.returncode == 127 and "command not found" in out.stderr
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    out = run(["run", "--", str(script)])
    assert out.returncode == 126 and "not executable" in out.stderr


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TRACETUI, *args],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


FOREVER = textwrap.dedent(
    """
    import os, signal, sys, time
    from tracetui.tracer import tracer
    if sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("pid", os.getpid(), file=sys.stderr, flush=True)
    i = 0
    while True:
        tracer.event("sys", "tick", "loop.py", str(i))
        i += 1
        time.sleep(0.01)
    """
)


def _child_pid(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("pid"), line
    return int(line.split()[1])


def test_sigterm_stops_cmd_and_reports_its_status() -> None:
    proc = _start(["run", "--", sys.executable, "-c", FOREVER, "obey"])
    pid = _child_pid(proc)
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "was killed by SIGTERM" in err
    assert len(out.splitlines()) > 10
    assert not _pid_alive(pid)


def test_cmd_ignoring_sigterm_is_killed_after_grace() -> None:
    proc = _start(["run", "--grace", "0.5", "--", sys.executable, "-c", FOREVER, "ignore"])
    pid = _child_pid(proc)
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 128 + signal.SIGKILL, err
    assert "was killed by SIGKILL" in err
    assert not _pid_alive(pid)


def test_demo_streams_a_finite_run() -> None:
    out = run(["demo", "--rate", "200", "--requests", "6", "--seed", "5", "--format", "json"])
    assert out.returncode == 0, out.stderr
    spans, rejected = LineDecoder().decode(out.stdout.encode().splitlines(), 1)
    assert not rejected
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) == 6 and all(r.operation == "system.request" for r in roots)
    assert {s.agent for s in spans} >= {"planner", "librarian"}
    assert "the demo exited with status 0" in out.stderr
    first = orjson.loads(out.stdout.splitlines()[0])
    assert first["metadata"]["agent"]["run_id"].startswith("run-")


def test_demo_stops_cleanly_on_ctrl_c() -> None:
    proc = _start(["demo", "--rate", "20"])
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "the demo exited with status 0" in err
    requests = [line for line in out.splitlines() if line.startswith("[sys] request")]
    handled = int(err.split("tracetui demo: ")[2].split(" requests")[0])
    assert len(requests) == handled >= 5


@pytest.mark.parametrize("cmd", [["run"], ["run", "--"]])
def test_run_needs_a_command(cmd: list[str]) -> None:
    out = run(cmd)
    assert out.returncode == 2 and "Missing argument" in out.stderr
