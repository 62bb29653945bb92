"""Bulk loading of whole files (or stdin) into a store: framing → decoding → ingest, in big chunks.

Python's cyclic GC would otherwise dominate a large load (every collection walks every tracked
object), so collection is paused while loading and what was loaded is frozen out of later
collections afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from tracetui.decode import LineDecoder
from tracetui.framing import Frame, LineFramer
from tracetui.model import Rejected
from tracetui.store import Change, Notice, TraceStore

if TYPE_CHECKING:
    from tracetui.contracts.remote import ScreenProcess

CHUNK = 4 << 20

RejectHook = Callable[[str, Rejected], None]
"""Called with (origin name, rejected line) as bad lines are found."""
ChangeHook = Callable[[Change], None]
"""Called with what each ingest batch changed, right after it (e.g. to run a checker)."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause cyclic GC for a bulk load and freeze what survived it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class StreamLoader:
    """Feeds one byte stream into a store: one framer and one decoder per stream."""

    def __init__(
        self,
        store: TraceStore,
        origin: str,
        on_reject: RejectHook | None = None,
        identity: bool = True,
        screen: ScreenProcess | None = None,
        on_change: ChangeHook | None = None,
        file: tuple[str, int, int] | None = None,
        file_offset: int = 0,
    ) -> None:
        self.store = store
        self.on_change = on_change
        self.origin_name = origin
        self.origin = store.origin(origin)
        self.framer = LineFramer()
        self.decoder = LineDecoder(identity)
        self.on_reject = on_reject
        self.screen = screen if screen is not None and screen.working else None
        self._frames = 0
        self._sid = -1
        self._at = -1
        """Where the next chunk starts in the file the screen process reads itself, or -1."""
        if self.screen is not None:
            self._sid = self.screen.open(self.origin, file=file)
            self._at = file_offset if file is not None else -1

    def ship(self, chunk: bytes) -> None:
        """Hand bytes to the screen process ahead of `feed(chunk, shipped=True)` (a read-ahead
        thread does, so that the helper works ahead of this thread)."""
        if self.screen is None:
            return
        if self._at < 0:
            self.screen.feed(self._sid, chunk)
        else:
            self.screen.feed_at(self._sid, self._at, chunk)
            self._at += len(chunk)

    def feed(self, chunk: bytes, shipped: bool = False) -> None:
        """Add bytes; complete lines are decoded and ingested."""
        if not shipped:
            self.ship(chunk)
        self._ingest(self.framer.feed(chunk))

    def finish(self) -> None:
        """End of stream: an unfinished last line counts."""
        if self.screen is not None:
            self.screen.finish(self._sid)
        self._ingest(self.framer.finish())
        if self.screen is not None:
            self.screen.close_stream(self._sid)

    def _ingest(self, frame: Frame) -> None:
        k = self._frames  # the screen process numbers frames the same way
        self._frames += 1
        spans, rejected = self.decoder.decode(
            frame.lines, frame.first_line_no, self.origin, frame.rest
        )
        for issue in frame.issues:
            if issue.kind == "oversize":
                rejected.append(issue.as_rejected(self.origin))
            else:
                self.store.notices.append(Notice(self.origin, issue.line_no, issue.describe()))
        if rejected:
            rejected.sort(key=lambda r: r.line_no)
            if self.on_reject is not None:
                for rej in rejected:
                    self.on_reject(self.origin_name, rej)
        if spans or rejected:
            if self.screen is not None and spans:
                self.screen.expect([(self._sid, k, 0, len(spans), len(spans))])
            change = self.store.ingest(spans, rejected)
            if self.on_change is not None:
                self.on_change(change)


def input_bytes(paths: list[str]) -> int:
    """Bytes the files hold in all (`-`, stdin, counts when it is a file; a pipe counts 0)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            if path == "-":
                st = os.fstat(sys.stdin.fileno())
                total += st.st_size if stat.S_ISREG(st.st_mode) else 0
            else:
                total += os.path.getsize(path)
    return total


def load_stream(
    store: TraceStore,
    stream: BinaryIO,
    origin: str,
    on_reject: RejectHook | None = None,
    identity: bool = True,
    screen: ScreenProcess | None = None,
    on_change: ChangeHook | None = None,
    path: str | None = None,
) -> None:
    """Read a stream to its end into the store (`screen`, `on_change`: see `load_paths`).
    `path`: the file the stream reads, which a screen process may then read itself."""
    file = None
    offset = 0
    if screen is not None and path is not None:
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            st = os.fstat(stream.fileno())
            if stat.S_ISREG(st.st_mode):
                file, offset = (os.path.abspath(path), st.st_dev, st.st_ino), stream.tell()
    loader = StreamLoader(store, origin, on_reject, identity, screen, on_change, file, offset)
    for chunk in read_ahead(stream, tee=loader.ship):
        loader.feed(chunk, shipped=True)
    loader.finish()


def read_ahead(
    stream: BinaryIO,
    size: int = CHUNK,
    depth: int = 2,
    tee: Callable[[bytes], None] | None = None,
) -> Iterator[bytes]:
    """The stream's chunks, read by a helper thread up to `depth` chunks ahead.

    A read releases the GIL, so reading the next chunk overlaps decoding this one. A read error
    is raised here, in the caller's thread, after the chunks read before it. `tee` is called
    with each chunk on the reading thread, as soon as it is read.
    """
    ahead: queue.Queue[bytes | BaseException] = queue.Queue(depth)
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                chunk = stream.read(size)
                if tee is not None and chunk:
                    tee(chunk)
                ahead.put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            ahead.put(exc)

    thread = threading.Thread(target=reader, name="tracetui-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            ahead.get_nowait()  # unblock a reader waiting to put, so that it sees `stop`


def load_paths(
    store: TraceStore,
    paths: list[str],
    on_reject: RejectHook | None = None,
    identity: bool = True,
    screen: ScreenProcess | None = None,
    on_change: ChangeHook | None = None,
) -> None:
    """Load files (`-` = stdin) into the store, with GC paused.

    `identity=False` skips agent identity and correlation ids (see `LineDecoder`).
    `on_change` is called after each ingest batch. With a `screen` (see
    `Checker.start_screen`), the bytes read are also shipped to its helper process, which
    judges the local rules while this process ingests.

    Raises:
        OSError: when a file cannot be opened or read.
    """
    with gc_paused():
        for path in paths:
            if path == "-":
                stream: BinaryIO = sys.stdin.buffer
                load_stream(store, stream, "stdin", on_reject, identity, screen, on_change)
                continue
            with open(path, "rb") as fh:
                load_stream(store, fh, path, on_reject, identity, screen, on_change, path)
