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
        self.framer = self._new_framer(first_line_no, stream_start)
        self._notices: list[tuple[int, str]] = []
        self.screen: ScreenProcess | None = None
        self._sid = -1
        self._frames = 0
        self._frame: tuple[int, int] | None = None

    def _new_framer(self, first_line_no: int, stream_start: bool) -> LineFramer:
        return LineFramer(first_line_no=first_line_no, stream_start=stream_start)

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
        if self.screen is not None:
            self.screen.feed(self._sid, data)
        self._ship_framed(self.framer.feed(data), len(data))

    def finish(self) -> None:
        """End of stream: an unfinished last line counts as a line."""
        if self.screen is not None:
            self.screen.finish(self._sid)
        self._ship_framed(self.framer.finish(), 0)

    def _ship_framed(self, frame: Frame, size: int) -> None:
        """Ship what one framer call made, numbered as the screen process numbers it."""
        if self.screen is not None:
            self._frame = (self._sid, self._frames)
            self._frames += 1
        try:
            self._ship(frame, size)
        finally:
            self._frame = None

    def restart(
        self,
        first_line_no: int = 1,
        stream_start: bool = True,
        screen: ScreenProcess | None = None,
    ) -> int:
        """Start a new stream (file truncated or replaced); returns unfinished bytes discarded.

        With a `screen`, what the new stream frames is shipped to that screen process too (a
        big read), from its very start, so that its framer starts where this one does.
        """
        self.unscreen()
        lost = self.framer.pending_bytes
        self.framer = self._new_framer(first_line_no, stream_start)
        if screen is not None and screen.working:
            self.screen = screen
            self._sid = screen.open(0, first_line_no, stream_start, self.framer.line_cap)
            self._frames = 0
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
