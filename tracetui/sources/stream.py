"""Read a byte stream (stdin, a pipe) to its end in a background thread."""

from __future__ import annotations

import logging
import os
import select
import threading

from tracetui.sources.channel import Channel, Status
from tracetui.sources.sink import LineSink

CHUNK = 1 << 20

log = logging.getLogger(__name__)


def pump(fd: int, sink: LineSink, stop: threading.Event) -> bool:
    """Feed `fd` into `sink` until end of stream (True) or until stopped (False)."""
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            continue
        if not data:
            return True
        sink.feed(data)
    return False


class StreamReader(threading.Thread):
    """Reads stdin (or any readable fd) into the channel; an unfinished last line counts."""

    def __init__(
        self, origin: str, fd: int, channel: Channel, stop: threading.Event, text: str
    ) -> None:
        super().__init__(name=f"tracetui-stream:{origin}", daemon=True)
        self.fd = fd
        self.channel = channel
        self.stop = stop
        self.status = Status(text, "stdin", "following")
        self.sink = LineSink(origin, channel, self.status, stop)

    def wake(self) -> None:
        """Nothing to wake: the reader polls its stop flag."""

    def run(self) -> None:
        try:
            if pump(self.fd, self.sink, self.stop):
                self.sink.finish()
                self.status.set("closed", "end of input")
            else:
                self.status.set("closed", "stopped")
        except Exception as exc:
            log.debug("reading %s failed", self.status.snapshot().origin, exc_info=True)
            self.status.set("closed", f"read failed: {exc}")
        finally:
            self.channel.poke()
