"""Follow a file by name, like `tail -F`, in a background thread.

The file is read with `os.pread` at our own offset (never mmap: a truncation would SIGBUS). After
each read to the end, the follower looks at what happened, in this order:

- the open file is shorter than our offset → truncated (copytruncate): read again from 0;
- its first bytes differ from what we read there → truncated and regrown past our offset before
  we looked (or rewritten in place): read again from 0;
- the name now points to another file, or to nothing → rotated, replaced or deleted: the old file
  is read to its end first. A replacement that starts with exactly the bytes already read (an
  atomic rewrite that appended) is continued at our offset, so nothing is read twice; any other
  new file is read from its start. A deleted file is reported and waited for.

Events already in the store are never taken back. The follower wakes on directory events from
`DirWatcher` and on a slow timer (`recheck`), since inotify can coalesce or drop events.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from typing import TYPE_CHECKING

from tracetui.sources.channel import Channel, Status
from tracetui.sources.sink import LineSink
from tracetui.sources.spec import SourceSpec
from tracetui.sources.stream import pump
from tracetui.sources.watch import DirWatcher, polling_forced

if TYPE_CHECKING:
    from tracetui.contracts.remote import ScreenProcess

CHUNK = 1 << 20
HEAD = 4096
"""Bytes at the start of the file remembered to notice a truncate-and-regrow."""
GUARD = 256
"""Bytes just before our offset remembered for the same purpose (heads can repeat)."""
HOLD = 2.0
"""Seconds a `truncated`/`rotated` state stays visible before it reads `following` again."""
POLL_RECHECK = 0.05
"""Seconds between our own looks when polling (the watcher's mtime polling can miss appends)."""
MAX_CONTINUATION_CHECK = 256 << 20
"""Largest prefix compared to tell whether a replacement file continues the old one."""

REWRITTEN = "rewritten from the start (truncated and regrown); reading again from the start"

log = logging.getLogger(__name__)


class FileFollower(threading.Thread):
    """Reads one file (and, when following, whatever file later bears its name)."""

    def __init__(
        self,
        spec: SourceSpec,
        channel: Channel,
        stop: threading.Event,
        *,
        follow: bool,
        from_end: bool,
        last: int | None,
        poll: bool,
        recheck: float,
        screen: ScreenProcess | None = None,
    ) -> None:
        super().__init__(name=f"tracetui-follow:{spec.path}", daemon=True)
        self.screen = screen
        """A screen process for the first read of a big file (see `contracts.remote`)."""
        self._attached = False
        self.path = spec.path
        self.channel = channel
        self.stop = stop
        self.follow = follow
        self.from_end = from_end
        self.last = last
        self.poll = polling_forced(poll)
        self.recheck = min(recheck, POLL_RECHECK) if self.poll else recheck
        self.status = Status(spec.text, "file", "waiting")
        from tracetui.otel.files import OtlpAwareSink  # lazy: tracetui.otel imports sources

        self.sink: LineSink = OtlpAwareSink(spec.text, channel, self.status, stop)
        self.watcher: DirWatcher | None = None
        self._wake = threading.Event()
        self._halt = threading.Event()  # stops the watcher when this follower ends
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._followed_before = False
        self._first_open = True
        self._offset = 0
        self._head = b""
        self._guard = b""
        self._reason = ""
        self._orphaned = False  # the name is gone but we keep reading the file we have open

    def wake(self) -> None:
        """Look at the file now (used by the watcher and by `stop`)."""
        self._wake.set()

    # ---- thread --------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.follow and not _is_stream(self.path):
                directory = os.path.dirname(os.path.abspath(self.path))
                self.watcher = DirWatcher(directory, self._wake, self._halt, poll=self.poll)
                self.watcher.start()
            self._loop()
        except Exception as exc:
            log.debug("following %s failed", self.path, exc_info=True)
            self.status.set("closed", f"reader failed: {exc}")
        finally:
            self._close()
            self._halt.set()
            if self.watcher is not None:
                self.watcher.join(timeout=5)
            self.channel.poke()

    def _loop(self) -> None:
        while not self.stop.is_set():
            self._wake.clear()
            if self._fd is None:
                if not self._open():
                    if not self.follow:
                        return
                    self._wake.wait(self.recheck)
                    continue
                if self._stream:
                    self._read_stream()
                    return
            elif self.follow and self._look():
                continue  # truncated, rotated or gone: look again at the new situation
            if not self._read_to_end():
                continue
            if not self.follow:
                self.sink.finish()
                self.sink.unscreen()
                self.status.set("eof", "read to the end")
                return
            self.sink.unscreen()  # the first read is over; what is appended is judged live
            self._settle()
            self._wake.wait(self.recheck)

    # ---- opening -------------------------------------------------------------------------------

    _stream = False

    def _open(self) -> bool:
        """Open the file by name; False (with the state set) when it cannot be opened yet."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._first_open = False  # a file that appears later is all new: read it whole
            parent = os.path.dirname(os.path.abspath(self.path))
            if not self.follow:
                self.status.set("closed", f"cannot open {self.path}: no such file")
            elif self._followed_before and self.status.state == "waiting":
                pass  # keep saying that it was deleted or renamed
            elif os.path.isdir(parent):
                self._wait_state(f"waiting for {self.path} to appear")
            else:
                self._wait_state(f"waiting for directory {parent} to appear")
            return False
        except OSError as exc:
            why = exc.strerror or str(exc)
            if not self.follow:
                self.status.set("closed", f"cannot open {self.path}: {why}")
            else:
                self._wait_state(f"cannot open {self.path}: {why}; retrying")
            return False
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            if self.follow:
                self._wait_state(f"{self.path} is a directory; waiting for a file")
            else:
                self.status.set("closed", f"{self.path} is a directory")
            return False
        self._fd = fd
        if not stat.S_ISREG(st.st_mode):
            self._stream = True  # a pipe or a device: read it as a stream, no rotation
            self.status.set("following", "")
            return True
        self._attach(fd, st)
        return True

    def _attach(self, fd: int, st: os.stat_result) -> None:
        start = 0
        if self._first_open and st.st_size and (self.from_end or self.last is not None):
            start = self._start_offset(fd, st.st_size)
        self._first_open = False
        self._fd = fd
        self._ino = (st.st_dev, st.st_ino)
        self._offset = start
        self._head = b""
        self._guard = b""
        line_no = self._scan_prefix(fd, start) if start else 1
        screen = None
        if self.screen is not None and not self._followed_before:
            from tracetui.contracts.remote import screen_wanted

            if screen_wanted(st.st_size - start):
                screen = self.screen  # the first read of a big file
        self.sink.restart(first_line_no=line_no, stream_start=start == 0, screen=screen)
        self._attached = True
        if self._followed_before:
            reason = self._reason or f"{self.path} appeared again"
            self.status.add(rotations=1)
            self.status.set("rotated", f"{reason}; following the new file from its start")
            self.sink.notice(f"{reason}; following the new file from its start")
        else:
            self.status.set("following", "")
        self._followed_before = True
        self._reason = ""

    @property
    def first_read_over(self) -> bool:
        """Whether the first read of the file, which a screen process may share, is over (or
        will never ship anything to it)."""
        if self.screen is None or not self.is_alive():
            return True
        return self._attached and not self.sink.screening

    def _start_offset(self, fd: int, size: int) -> int:
        """Where `--last N` starts reading, or `--from-end`: after the last newline (a partial
        last line is read whole)."""
        if self.last:
            return _start_of_last_lines(fd, size, self.last)
        pos = size
        while pos > 0:
            block_start = max(0, pos - (1 << 16))
            block = os.pread(fd, pos - block_start, block_start)
            idx = block.rfind(b"\n")
            if idx >= 0:
                return block_start + idx + 1
            pos = block_start
        return 0

    def _scan_prefix(self, fd: int, end: int) -> int:
        """Count the lines `--from-end`/`--last` skip (noting head and guard); next line no."""
        newlines = 0
        pos = 0
        while pos < end:
            data = os.pread(fd, min(CHUNK, end - pos), pos)
            if not data:
                break
            if pos < HEAD:
                self._head += data[: HEAD - pos]
            self._remember_guard(data)
            newlines += data.count(b"\n")
            pos += len(data)
        return newlines + 1

    # ---- reading -------------------------------------------------------------------------------

    def _read_to_end(self) -> bool:
        """Read from our offset to the end; False when the file turned out to be rewritten.

        Each read starts `GUARD` bytes early and those must be the bytes we read there before:
        then the new bytes belong to the file we have been following, not to a new one grown
        past our offset (checked in the same read, after the fact, so no window is left).
        """
        fd = self._fd
        assert fd is not None
        while not self.stop.is_set():
            overlap = len(self._guard)
            data = os.pread(fd, CHUNK + overlap, self._offset - overlap)
            if data[:overlap] != self._guard:
                self._truncated(REWRITTEN)
                return False
            if len(data) == overlap:
                return True
            data = data[overlap:]
            if self._offset < HEAD:
                self._head += data[: HEAD - self._offset]
            self._remember_guard(data)
            self._offset += len(data)
            self.sink.feed(data)
        return True

    def _remember_guard(self, data: bytes) -> None:
        self._guard = data[-GUARD:] if len(data) >= GUARD else (self._guard + data)[-GUARD:]

    def _rewritten(self, fd: int) -> bool:
        """Whether the bytes we read at the start and just before our offset have changed."""
        head = self._head
        if head and os.pread(fd, len(head), 0) != head:
            return True
        guard = self._guard
        end = self._offset
        return (
            bool(guard) and end > len(head) and os.pread(fd, len(guard), end - len(guard)) != guard
        )

    def _read_stream(self) -> None:
        assert self._fd is not None
        if pump(self._fd, self.sink, self.stop):
            self.sink.finish()
            self.status.set("eof", "end of stream")

    # ---- looking -------------------------------------------------------------------------------

    def _look(self) -> bool:
        """Check for truncation and rotation; True when something changed (read again now)."""
        fd = self._fd
        assert fd is not None
        size = os.fstat(fd).st_size
        if size < self._offset:
            self._truncated(
                f"truncated to {size:,} bytes (was {self._offset:,}); reading again from the start"
            )
            return True
        if self._rewritten(fd):
            self._truncated(REWRITTEN)
            return True
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            named = None
        except OSError:
            return False  # cannot tell (e.g. directory permissions changed): keep reading the fd
        if named is not None and (named.st_dev, named.st_ino) == self._ino:
            return False
        if named is None:
            # Renamed (logrotate) or deleted: the app may still be writing to the file it has
            # open, so keep reading ours until a new file takes the name.
            if not self._orphaned:
                self._orphaned = True
                self._reason = f"{self.path} was recreated"
                msg = (
                    f"{self.path} was deleted or renamed; reading the old file until a new one "
                    "appears"
                )
                self.status.set("waiting", msg)
                self.sink.notice(msg)
            return False
        self._read_to_end()  # the old file first: whatever was written before the switch
        self._orphaned = False
        self._switch()
        return True

    def _switch(self) -> None:
        """The name points to a new file: continue it when it extends the old one, else restart."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self.sink.finish()
            self._close()
            self._reason = f"{self.path} was rotated or replaced"
            self.status.set("waiting", f"{self._reason}; cannot open the new file: {exc.strerror}")
            return  # `_open` keeps trying, on the usual timer
        st = os.fstat(fd)
        if self._continues(fd, st.st_size):
            self._close()
            self._fd = fd
            self._ino = (st.st_dev, st.st_ino)
            msg = (
                f"{self.path} was replaced by a file that starts with everything read so far; "
                f"continuing at byte {self._offset:,}"
            )
            self.status.add(rotations=1)
            self.status.set("rotated", msg)
            self.sink.notice(msg)
            return
        self.sink.finish()
        self._close()
        self._reason = f"{self.path} was rotated or replaced"
        self._attach(fd, st)

    def _continues(self, fd: int, size: int) -> bool:
        """Whether the new file starts with exactly the bytes read from the old one (still open)."""
        old, offset = self._fd, self._offset
        if old is None or not offset or size < offset or offset > MAX_CONTINUATION_CHECK:
            return False
        pos = 0
        while pos < offset:
            n = min(CHUNK, offset - pos)
            before = os.pread(old, n, pos)
            if len(before) != n or os.pread(fd, n, pos) != before:
                return False
            pos += n
        return True

    def _truncated(self, msg: str) -> None:
        lost = self.sink.restart()
        if lost:
            self.status.add(dropped=1)
            msg += f" (an unfinished line of {lost:,} bytes was cut off and is lost)"
        self._offset = 0
        self._head = b""
        self._guard = b""
        self.status.add(rotations=1)
        self.status.set("truncated", msg)
        self.sink.notice(msg)

    def _settle(self) -> None:
        """After a quiet while, a `truncated`/`rotated` state reads `following` again."""
        if self.status.state in ("truncated", "rotated") and (
            time.monotonic() - self.status.changed_at > HOLD
        ):
            self.status.set("following", "")

    def _wait_state(self, msg: str) -> None:
        snap = self.status.snapshot()
        if snap.state != "waiting" or snap.message != msg:
            self.status.set("waiting", msg)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _is_stream(path: str) -> bool:
    """A pipe or device given by path (`<(cmd)`): read as a stream, nothing to watch."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _start_of_last_lines(fd: int, size: int, want: int) -> int:
    """Where the last `want` non-blank lines of a file start (blank lines are not events)."""
    pos = size
    found = 0
    carry = False  # the line that continues into the block read before has content
    while pos > 0:
        block_start = max(0, pos - (1 << 16))
        block = os.pread(fd, pos - block_start, block_start)
        end = len(block)
        while True:
            nl = block.rfind(b"\n", 0, end)
            if nl < 0:
                carry = carry or bool(block[:end].strip())
                break
            if carry or block[nl + 1 : end].strip():
                found += 1
                if found == want:
                    return block_start + nl + 1
            carry = False
            end = nl
        pos = block_start
    return 0
