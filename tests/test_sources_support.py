"""Helpers for the source tests: a real writer process, event lines, and waiting with deadlines.

(No tests here; the module is named so that it belongs to the sources test area.)
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tracetui.sources.live import LiveIngest
from tracetui.store import TraceStore

DEADLINE = 15.0

WRITER = r"""
import base64, json, os, sys
handles = {}
for raw in sys.stdin:
    cmd = json.loads(raw)
    op = cmd["op"]
    for step in (cmd["steps"] if op == "batch" else [cmd]):
        op = step["op"]
        if op == "open":
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if step.get("append", True) else 0)
            handles[step["name"]] = os.open(step["path"], flags, 0o644)
        elif op == "write":
            data = base64.b64decode(step["data"])
            fd = handles[step["name"]]
            each = step.get("each") or len(data) or 1
            for i in range(0, len(data), each):
                os.write(fd, data[i : i + each])
        elif op == "close":
            os.close(handles.pop(step["name"]))
        elif op == "rename":
            os.rename(step["src"], step["dst"])
        elif op == "replace":
            os.replace(step["src"], step["dst"])
        elif op == "truncate":
            os.truncate(step["path"], step.get("size", 0))
        elif op == "unlink":
            os.unlink(step["path"])
        elif op == "rmdir":
            os.rmdir(step["path"])
        elif op == "makedirs":
            os.makedirs(step["path"])
        elif op == "create":
            with open(step["path"], "wb") as fh:
                fh.write(base64.b64decode(step["data"]))
    sys.stdout.write("ok\n")
    sys.stdout.flush()
"""


class Writer:
    """A separate process that performs file operations on request, one command at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n", "writer process failed"

    def do(self, *steps: dict[str, Any]) -> None:
        """Perform steps back to back in the writer (one round trip)."""
        self._send({"op": "batch", "steps": list(steps)})

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- steps ---------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def open_(name: str, path: object, append: bool = True) -> dict[str, Any]:
    return {"op": "open", "name": name, "path": str(path), "append": append}


def write(name: str, data: bytes, each: int | None = None) -> dict[str, Any]:
    return {"op": "write", "name": name, "data": b64(data), "each": each}


def close(name: str) -> dict[str, Any]:
    return {"op": "close", "name": name}


def rename(src: object, dst: object) -> dict[str, Any]:
    return {"op": "rename", "src": str(src), "dst": str(dst)}


def replace(src: object, dst: object) -> dict[str, Any]:
    return {"op": "replace", "src": str(src), "dst": str(dst)}


def truncate(path: object, size: int = 0) -> dict[str, Any]:
    return {"op": "truncate", "path": str(path), "size": size}


def unlink(path: object) -> dict[str, Any]:
    return {"op": "unlink", "path": str(path)}


def makedirs(path: object) -> dict[str, Any]:
    return {"op": "makedirs", "path": str(path)}


def create(path: object, data: bytes) -> dict[str, Any]:
    return {"op": "create", "path": str(path), "data": b64(data)}


# ---- events --------------------------------------------------------------------------------------


def event(name: str, pad: int = 0, **extra: Any) -> bytes:
    """One trace line (with its newline) whose trace_id is `name`."""
    obj: dict[str, Any] = {
        "trace_id": name,
        "parent_id": None,
        "hrm_layer": "alt",
        "operation": "altitude.transition",
        "status": "success",
        "duration_ms": 1.5,
        "input_summary": "x" * pad,
        **extra,
    }
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def events(prefix: str, n: int, start: int = 0, pad: int = 0) -> bytes:
    return b"".join(event(f"{prefix}{i}", pad) for i in range(start, start + n))


def ids(store: TraceStore) -> list[str]:
    """Trace ids in arrival order."""
    return [s.trace_id for s in store.events()]


def names(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


# ---- waiting -------------------------------------------------------------------------------------


def pump_until(
    ingest: LiveIngest, cond: Callable[[], bool], timeout: float = DEADLINE, what: str = ""
) -> None:
    """Drain the ingest until `cond()` holds; fail with the sources' states after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        ingest.drain()
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}: {ingest.states()}")
        ingest.wait(0.05)


def settle(ingest: LiveIngest, seconds: float) -> None:
    """Keep draining for a while (to show that nothing more arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ingest.wait(0.05)
        ingest.drain()
