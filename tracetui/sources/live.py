"""Live ingest: several sources read in background threads, merged into one store.

Readers (a `FileFollower` per file, a `SocketServer` per listener, a `StreamReader` for stdin)
frame and decode on their own threads and hand batches over through a bounded `Channel`. The
consumer — the TUI's timer, or `tracetui tail`'s loop — calls `drain()` on its own thread, which
is the only thread that touches the store.

Flow control is backpressure, never dropping: when the consumer falls behind and the channel's
byte budget is used up, readers block; files wait on disk and socket producers are slowed by their
socket buffers. The only lines ever lost are unfinished ones whose writer cut them off (truncation,
a producer that disconnects mid-line), and those are counted as `dropped`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import msgspec

from tracetui.model import Rejected, Span
from tracetui.sources.channel import DEFAULT_BUDGET, Batch, Channel, SourceState
from tracetui.sources.follow import FileFollower
from tracetui.sources.sockets import MAX_PRODUCERS, SocketServer
from tracetui.sources.spec import SourceError, SourceSpec, parse_source
from tracetui.sources.stream import StreamReader
from tracetui.store import Change, Notice, TraceStore

__all__ = ["LiveIngest", "SourceError", "SourceSpec", "SourceState", "parse_source"]

if TYPE_CHECKING:
    from tracetui.contracts.remote import ScreenProcess, Segment
    from tracetui.otel.source import OtlpSource

    Reader = FileFollower | SocketServer | StreamReader | OtlpSource
else:
    Reader = FileFollower | SocketServer | StreamReader
RejectHook = Callable[[str, Rejected], None]


class LiveIngest:
    """Reads sources in the background and ingests what they produced when asked to.

    Args:
        specs: sources as the user spells them (see `parse_source`).
        store: the store to ingest into (touched only by `drain`, on the caller's thread).
        follow: keep following files after their end (like `tail -F`); without it, files and
            stdin are read to their end and the source finishes. Listeners always follow.
        from_end: start files at their end (after the last complete line).
        last: start files this many lines before their end.
        poll: watch directories by polling rather than inotify (also `WATCHFILES_FORCE_POLLING`).
        on_reject: called on the consumer's thread with (origin name, rejected line).
        recheck: seconds between the followers' own `stat` checks (inotify can miss events).
        max_producers: concurrent connections per listener; more are refused and counted.
        budget: bytes of line data readers may get ahead of `drain` before they block.
        stdin: the file descriptor `-` reads (standard input by default).
        screen: the checker's screen process (`Checker.start_screen`): the first read of a big
            file is also shipped to it, and each drained batch says which of its frames it
            holds. Closed once no file is being read that way.

    Raises:
        SourceError: a spec cannot be parsed, or a source is given twice.
    """

    def __init__(
        self,
        specs: list[str],
        store: TraceStore,
        *,
        follow: bool = True,
        from_end: bool = False,
        last: int | None = None,
        poll: bool = False,
        on_reject: RejectHook | None = None,
        recheck: float = 0.5,
        max_producers: int = MAX_PRODUCERS,
        budget: int = DEFAULT_BUDGET,
        stdin: int | None = None,
        screen: ScreenProcess | None = None,
    ) -> None:
        if not specs:
            raise SourceError("no source given: name a file, -, unix:PATH or tcp:PORT")
        self.store = store
        self.on_reject = on_reject
        self._stop = threading.Event()
        self._channel = Channel(budget)
        self._pending: deque[Batch] = deque()
        self._origins: dict[str, int] = {}
        self._started = False
        self._stopped = False
        self.screen = screen
        self.readers: list[Reader] = []
        seen: set[tuple[str, str]] = set()
        for text in specs:
            spec = parse_source(text)
            key = (spec.kind, os.path.abspath(spec.path) if spec.path else spec.text)
            if spec.kind in ("tcp", "otlp"):
                key = (spec.kind, f"{spec.host}:{spec.port}" if spec.port else f"{len(seen)}")
            if key in seen:
                raise SourceError(f"{text}: the same source is given twice")
            seen.add(key)
            self.readers.append(
                self._reader(spec, follow, from_end, last, poll, recheck, max_producers, stdin)
            )

    def _reader(
        self,
        spec: SourceSpec,
        follow: bool,
        from_end: bool,
        last: int | None,
        poll: bool,
        recheck: float,
        max_producers: int,
        stdin: int | None,
    ) -> Reader:
        if spec.kind == "file":
            return FileFollower(
                spec,
                self._channel,
                self._stop,
                follow=follow,
                from_end=from_end,
                last=last,
                poll=poll,
                recheck=recheck,
                screen=self.screen,
            )
        if spec.kind == "stdin":
            fd = sys.stdin.fileno() if stdin is None else stdin
            return StreamReader("stdin", fd, self._channel, self._stop, spec.text)
        if spec.kind == "otlp":
            from tracetui.otel.source import OtlpSource

            return OtlpSource(spec, self._channel, self._stop)
        return SocketServer(spec, self._channel, self._stop, max_producers=max_producers)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Set up listeners and start the readers; returns at once.

        Raises:
            SourceError: a listener cannot be set up (socket in use, unsafe directory, port busy).
        """
        if self._started:
            return
        self._started = True
        bound: list[SocketServer | OtlpSource] = []
        try:
            for reader in self.readers:
                if not isinstance(reader, (FileFollower, StreamReader)):
                    reader.bind()
                    bound.append(reader)
        except SourceError:
            for server in bound:
                server.close()
            self._stopped = True
            raise
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        """Stop the readers and remove socket files; idempotent. Queued batches stay drainable."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        for reader in self.readers:
            reader.wake()
        for reader in self.readers:
            if reader.is_alive():
                reader.join(timeout=5)
            elif not isinstance(reader, (FileFollower, StreamReader)):
                reader.close()
        self._channel.poke()

    def __enter__(self) -> LiveIngest:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- consuming -----------------------------------------------------------------------------

    def wait(self, timeout: float) -> bool:
        """Block until something is ready to drain (True) or `timeout` seconds pass (False).

        Also returns early (False) when a source changes state, e.g. finishes.
        """
        if self._pending:
            return True
        return self._channel.wait(timeout)

    def drain(self, max_spans: int | None = None) -> Change:
        """Ingest what the readers produced so far (at most `max_spans` spans); merged change."""
        self._stop_screen_when_done()
        self._pending.extend(self._channel.take())
        spans: list[Span] = []
        rejected: list[Rejected] = []
        reported: list[tuple[str, Rejected]] = []
        segments: list[Segment] = []
        mixed = False
        notices = self.store.notices
        pending = self._pending
        while pending:
            batch = pending[0]
            if max_spans is not None:
                room = max_spans - len(spans)
                if room <= 0:
                    break
                if len(batch.spans) > room:
                    head = msgspec.structs.replace(batch, spans=batch.spans[:room], size=0)
                    batch.spans = batch.spans[room:]
                    batch.rejected = []
                    batch.notices = []
                    batch.offset += room
                    batch = head
                else:
                    pending.popleft()
            else:
                pending.popleft()
            origin = self._origin(batch.origin)
            if origin:
                for span in batch.spans:
                    span.origin = origin
            if batch.spans:
                if batch.screened is None:
                    mixed = True
                else:
                    sid, k = batch.screened
                    segments.append((sid, k, batch.offset, len(batch.spans), batch.frame_spans))
            spans.extend(batch.spans)
            for rej in batch.rejected:
                stamped = Rejected(origin, rej.line_no, rej.reason, rej.preview)
                rejected.append(stamped)
                reported.append((batch.origin, stamped))
            for line_no, text in batch.notices:
                notices.append(Notice(origin, line_no, text))
        screen = self.screen
        if screen is not None and segments:
            if mixed:  # only a batch wholly of screened frames can be judged by the helper
                screen.close("a batch held lines the screen process had not seen")
            else:
                screen.expect(segments)
        change = self.store.ingest(spans, rejected) if spans or rejected else Change()
        if self.on_reject is not None:
            for name, rej in reported:
                self.on_reject(name, rej)
        return change

    def _stop_screen_when_done(self) -> None:
        """Close the screen process once every file's first read is over and the last batch
        it judged was taken (checked before a drain: the caller has judged the last one)."""
        screen = self.screen
        if (
            screen is not None
            and screen.working
            and not self._pending
            and not len(self._channel)
            and all(r.first_read_over for r in self.readers if isinstance(r, FileFollower))
        ):
            screen.close("every big read is over")

    def _origin(self, name: str) -> int:
        idx = self._origins.get(name)
        if idx is None:
            idx = self._origins[name] = self.store.origin(name)
        return idx

    # ---- status --------------------------------------------------------------------------------

    def states(self) -> list[SourceState]:
        """One snapshot per source, in the order given."""
        return [reader.status.snapshot() for reader in self.readers]

    @property
    def backlog(self) -> int:
        """Bytes of line data read but not yet drained (bounded by `budget` plus one batch)."""
        return self._channel.queued_bytes + sum(b.size for b in self._pending)

    @property
    def done(self) -> bool:
        """All sources have finished and everything they produced has been drained."""
        if not self._started:
            return False
        finished = self._stopped or all(r.status.final for r in self.readers)
        return finished and not self._pending and not len(self._channel)
