"""One byte stream → decoded batches on the channel: the framer and decoder every reader shares."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tracetui.decode import LineDecoder
from tracetui.framing import Frame, LineFramer
from tracetui.sources.channel import Batch, Channel, Status

if TYPE_CHECKING:
    from tracetui.contracts.remote import ScreenProcess


class LineSink:
    """Frames and decodes one stream on the reader's thread and puts batches on the channel.

    Decoded spans and rejects carry origin 0; the consumer stamps the store's origin index, since
    only the consumer's thread may touch the store.
    """

    def __init__(
        self,
        origin: str,
        channel: Channel,
        status: Status,
        stop: threading.Event,
        *,
        first_line_no: int = 1,
        stream_start: bool = True,
    ) -> None:
        self.origin = origin
        self.channel = channel
        self.status = status
        self.stop = stop
        self.decoder = LineDecoder()
        self.framer = LineFramer(first_line_no=first_line_no, stream_start=stream_start)
        self._stream_start = stream_start
        self._fresh = True
        self._notices: list[tuple[int, str]] = []
        self.screen: ScreenProcess | None = None
        self._sid = -1
        self._frames = 0
        self._frame: tuple[int, int] | None = None

    def screen_with(self, screen: ScreenProcess) -> None:
        """Ship what this sink frames from now on to a screen process as well (a big read),
        right after `restart` (the helper's framer starts where this one does)."""
        if screen.working and self._fresh:
            self.screen = screen
            self._sid = screen.open(
                0, self.framer.next_line_no, self._stream_start, self.framer.line_cap
            )
            self._frames = 0

    def unscreen(self) -> None:
        """Stop shipping to the screen process (the big read is over)."""
        if self.screen is not None:
            self.screen.close_stream(self._sid)
            self.screen = None

    @property
    def screening(self) -> bool:
        """Whether this sink ships to a screen process."""
        return self.screen is not None

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished last line held by the framer."""
        return self.framer.pending_bytes

    @property
    def next_line_no(self) -> int:
        """The number the next line will get."""
        return self.framer.next_line_no

    def feed(self, data: bytes) -> None:
        """Add bytes; completed lines are decoded and shipped (blocks while the channel is full)."""
        self._fresh = False
        if self.screen is not None:
            self.screen.feed(self._sid, data)
            self._frame = (self._sid, self._frames)
            self._frames += 1
        try:
            self._ship(self.framer.feed(data), len(data))
        finally:
            self._frame = None

    def finish(self) -> None:
        """End of stream: an unfinished last line counts as a line."""
        self._fresh = False
        if self.screen is not None:
            self.screen.finish(self._sid)
            self._frame = (self._sid, self._frames)
            self._frames += 1
        try:
            self._ship(self.framer.finish(), 0)
        finally:
            self._frame = None

    def restart(self, first_line_no: int = 1, stream_start: bool = True) -> int:
        """Start a new stream (file truncated or replaced); returns unfinished bytes discarded."""
        self.unscreen()
        lost = self.framer.pending_bytes
        self.framer = LineFramer(first_line_no=first_line_no, stream_start=stream_start)
        self._stream_start = stream_start
        self._fresh = True
        return lost

    def notice(self, text: str, *, flush: bool = True) -> None:
        """Report something at the current line number (shipped with the next batch, or now)."""
        self._notices.append((self.framer.next_line_no, text))
        if flush:
            self._ship(Frame(self.framer.next_line_no, [], []), 0)

    def _ship(self, frame: Frame, size: int) -> None:
        spans, rejected = self.decoder.decode(frame.lines, frame.first_line_no, 0, frame.rest)
        notices = self._notices
        for issue in frame.issues:
            if issue.kind == "oversize":
                rejected.append(issue.as_rejected(0))
            else:
                notices.append((issue.line_no, issue.describe()))
        if not (spans or rejected or notices):
            return
        if rejected:
            rejected.sort(key=lambda r: r.line_no)
        self._notices = []
        self.status.add(lines=len(spans) + len(rejected), rejected=len(rejected))
        screened = self._frame if spans else None
        batch = Batch(self.origin, spans, rejected, notices, size, screened, 0, len(spans))
        self.channel.put(batch, self.stop)
