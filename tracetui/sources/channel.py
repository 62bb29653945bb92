"""What readers hand to the consumer: batches through a bounded channel, and per-source status.

Readers run in background threads; the store is not thread-safe, so they never touch it. They
frame and decode on their own thread and put `Batch`es into a `Channel` whose capacity is counted
in bytes of line data. When it is full, `put` blocks: the reader stops reading, so a file simply
waits on disk and a socket producer is slowed by the kernel's socket buffers (backpressure). No
received line is ever dropped to make room.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import msgspec

from tracetui.model import Rejected, Span

DEFAULT_BUDGET = 32 << 20
"""Bytes of undrained line data readers may get ahead of the consumer."""


class Batch(msgspec.Struct, gc=False):
    """Decoded lines of one origin. Spans and rejects carry origin 0 until the consumer stamps them.

    Attributes:
        origin: origin name (file path, `unix:/p [pid 42, #3]` …).
        spans: decoded spans.
        rejected: lines that could not be decoded (and oversize lines).
        notices: (line number, text) of things worth reporting (rotation, NUL run …).
        size: bytes of line data, for the channel's budget.
        screened: (screen stream, frame number) when the spans are one frame also shipped to
            a screen process (see `contracts.remote`), else None.
        offset: how many of that frame's spans earlier batches took (`drain` splits batches).
        frame_spans: the spans of the whole frame.
    """

    origin: str
    spans: list[Span]
    rejected: list[Rejected]
    notices: list[tuple[int, str]]
    size: int
    screened: tuple[int, int] | None = None
    offset: int = 0
    frame_spans: int = 0


class Channel:
    """A bounded FIFO of batches, counted in bytes; `put` blocks while it is full (backpressure)."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._cond = threading.Condition()
        self._items: deque[Batch] = deque()
        self._bytes = 0
        self._pokes = 0

    def put(self, batch: Batch, stop: threading.Event) -> None:
        """Append a batch, waiting while the budget is used up (unless stopping)."""
        with self._cond:
            while self._items and self._bytes + batch.size > self.budget and not stop.is_set():
                self._cond.wait(0.1)
            self._items.append(batch)
            self._bytes += batch.size
            self._cond.notify_all()

    def take(self) -> list[Batch]:
        """Everything queued, oldest first."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()
            return items

    def poke(self) -> None:
        """Wake a waiting consumer without data (a source finished or changed state)."""
        with self._cond:
            self._pokes += 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait until a batch is queued or a poke arrives; True when batches are queued."""
        deadline = time.monotonic() + timeout
        with self._cond:
            pokes = self._pokes
            while not self._items and self._pokes == pokes:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return bool(self._items)

    @property
    def queued_bytes(self) -> int:
        """Bytes of line data waiting to be taken."""
        with self._cond:
            return self._bytes

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class SourceState(msgspec.Struct, frozen=True):
    """A snapshot of one source, for status lines and summaries.

    Attributes:
        origin: the source as given (`app.log`, `unix:/run/app.sock`, `-` …).
        kind: `file`, `stdin`, `unix` or `tcp`.
        state: `following`, `waiting`, `truncated`, `rotated`, `listening`, `closed` or `eof`.
        producers: connected producers (sockets).
        lines: lines received (decoded or rejected).
        rejected: lines that could not be decoded, oversize lines included.
        dropped: unfinished lines lost (cut off by a truncation, producer gone mid-line).
        rotations: rotations, replacements and truncations seen.
        message: what is going on, in plain words (empty when nothing to say).
        address: where a listener listens (`127.0.0.1:43117`, a socket path), else "".
        refused: connections refused over the producer limit.
    """

    origin: str
    kind: str
    state: str
    producers: int = 0
    lines: int = 0
    rejected: int = 0
    dropped: int = 0
    rotations: int = 0
    message: str = ""
    address: str = ""
    refused: int = 0


class Status:
    """The mutable, thread-safe counterpart of `SourceState` that a reader updates."""

    FINAL = frozenset({"closed", "eof"})

    def __init__(self, origin: str, kind: str, state: str) -> None:
        self._lock = threading.Lock()
        self._state = SourceState(origin, kind, state)
        self.changed_at = time.monotonic()

    def set(self, state: str | None = None, message: str | None = None, **fields: object) -> None:
        """Change the state and/or message (and any other field)."""
        with self._lock:
            if state is not None:
                fields["state"] = state
                self.changed_at = time.monotonic()
            if message is not None:
                fields["message"] = message
            self._state = msgspec.structs.replace(self._state, **fields)

    def add(
        self,
        *,
        lines: int = 0,
        rejected: int = 0,
        dropped: int = 0,
        rotations: int = 0,
        producers: int = 0,
    ) -> None:
        """Add to the counters."""
        with self._lock:
            s = self._state
            self._state = msgspec.structs.replace(
                s,
                lines=s.lines + lines,
                rejected=s.rejected + rejected,
                dropped=s.dropped + dropped,
                rotations=s.rotations + rotations,
                producers=s.producers + producers,
            )

    def snapshot(self) -> SourceState:
        """The current state (immutable)."""
        with self._lock:
            return self._state

    @property
    def state(self) -> str:
        """The current state name."""
        with self._lock:
            return self._state.state

    @property
    def final(self) -> bool:
        """Whether the source has ended."""
        return self.state in self.FINAL
