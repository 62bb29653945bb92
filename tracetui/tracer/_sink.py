"""Where encoded lines go: a file (O_APPEND) or a socket, fed by a background flusher.

The host's threads only append finished lines to a deque (no lock, no syscall). One daemon thread,
started on the first event and woken through a self-pipe when the deque goes from empty to
non-empty, waits a few milliseconds to gather a batch and writes whole lines only: a write never
ends mid-line unless the device fails, and then the next write starts with a newline so the torn
fragment stays on a line of its own. Every failure is counted and the line dropped (files) or
kept, bounded, for the next connection (sockets); nothing is raised into the host.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import itertools
import os
import select
import socket
import threading
import time
from typing import Final

FLUSH_DELAY: Final = 0.01
"""How long the flusher gathers a batch after being woken (events are visible within ~this)."""
MAX_QUEUE: Final = 200_000
"""Lines waiting for the flusher; beyond this, new lines are dropped and counted."""
MAX_PENDING_BYTES: Final = 8 << 20
"""Lines kept while a socket is unreachable; the oldest are dropped (counted) beyond this."""
CHUNK: Final = 1 << 20
SEND_TIMEOUT: Final = 1.0
BACKOFF_MIN: Final = 0.05
BACKOFF_MAX: Final = 2.0
FILE_RETRY: Final = 1.0


class SinkError(ValueError):
    """A sink specification that cannot work (e.g. a non-loopback TCP address)."""


def _complete_lines(lines: list[bytes], nbytes: int) -> tuple[int, bool]:
    """How many of `lines` fit entirely in the first `nbytes`, and whether one was cut."""
    done = 0
    for line in lines:
        if nbytes < len(line):
            return done, nbytes > 0
        nbytes -= len(line)
        done += 1
    return done, False


def _chunk(lines: list[bytes], start: int) -> list[bytes]:
    """The lines from `start` that fit in `CHUNK` bytes (at least one)."""
    batch: list[bytes] = []
    size = 0
    for line in itertools.islice(lines, start, None):
        if batch and size + len(line) > CHUNK:
            break
        batch.append(line)
        size += len(line)
    return batch


class Output:
    """A destination for whole lines."""

    keeps_undelivered = False
    problem: str | None = None
    """The latest failure, in plain words (read by the writer to warn once)."""

    def deliver(self, lines: list[bytes]) -> tuple[int, int]:
        """Try to write `lines`; returns (delivered from the front, discarded after those)."""
        raise NotImplementedError

    def after_fork(self) -> None:
        """In a forked child: forget state that belongs to the parent."""

    def close(self) -> None:
        """Release the file or socket."""


class FileOutput(Output):
    """Appends to a file opened with O_APPEND (reopened when it is rotated or deleted)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.fd = -1
        self.identity: tuple[int, int] | None = None
        self.retry_at = 0.0
        self.torn = False

    def __repr__(self) -> str:
        return f"file {self.path}"

    def _open(self) -> bool:
        now = time.monotonic()
        if now < self.retry_at:
            return False
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o644)
            os.set_blocking(fd, True)
            st = os.fstat(fd)
        except OSError as exc:
            self.problem = f"cannot open {self.path}: {exc.strerror or exc}"
            self.retry_at = now + FILE_RETRY
            return False
        self.fd = fd
        self.identity = (st.st_dev, st.st_ino)
        return True

    def _still_there(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def deliver(self, lines: list[bytes]) -> tuple[int, int]:
        if self.fd >= 0 and not self._still_there():
            self.close()
            self.torn = False
        if self.fd < 0 and not self._open():
            return 0, len(lines)
        done = 0
        while done < len(lines):
            batch = lines if not done and sum(map(len, lines)) <= CHUNK else _chunk(lines, done)
            data = b"".join(batch)
            lead = b"\n" if self.torn else b""
            written = self._write(lead + data) - len(lead)
            if written == len(data):
                self.torn = False
                done += len(batch)
                continue
            if written >= 0:
                full, cut = _complete_lines(batch, written)
                done += full
                self.torn = cut
            self.retry_at = time.monotonic() + FILE_RETRY
            return done, len(lines) - done
        return done, 0

    def _write(self, data: bytes) -> int:
        view = memoryview(data)
        written = 0
        while written < len(data):
            try:
                n = os.write(self.fd, view[written:])
            except InterruptedError:
                continue
            except OSError as exc:
                self.problem = f"cannot write {self.path}: {exc.strerror or exc}"
                return written
            if n <= 0:
                return written
            written += n
        return written

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1


def parse_socket_spec(spec: str) -> tuple[int, str | tuple[str, int]]:
    """`unix:PATH`, `tcp:PORT`, `tcp:HOST:PORT`, `tcp:[::1]:PORT` → (family, address).

    Only loopback TCP addresses are accepted: trace events are not sent over a network.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SinkError(f"{spec!r}: expected unix:PATH or tcp:127.0.0.1:PORT")
    if kind == "unix":
        return socket.AF_UNIX, os.path.abspath(rest)
    if kind != "tcp":
        raise SinkError(f"{spec!r}: unknown socket kind {kind!r} (use unix: or tcp:)")
    host, _, port_text = rest.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise SinkError(f"{spec!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise SinkError(f"{spec!r}: port {port} is out of range")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise SinkError(f"{spec!r}: {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise SinkError(f"{spec!r}: only loopback addresses are allowed")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return family, (host, port)


class SocketOutput(Output):
    """Sends lines to a listening tracetui; reconnects with backoff; keeps what it cannot send."""

    keeps_undelivered = True

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.family, self.address = parse_socket_spec(spec)
        self.sock: socket.socket | None = None
        self.retry_at = 0.0
        self.backoff = BACKOFF_MIN
        self.connects = 0
        self.attempts = 0

    def __repr__(self) -> str:
        return f"socket {self.spec}"

    def _connect(self, force: bool) -> bool:
        now = time.monotonic()
        if not force and now < self.retry_at:
            return False
        self.attempts += 1
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(SEND_TIMEOUT)
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            self.problem = f"nobody listens on {self.spec} ({exc.strerror or exc})"
            self.retry_at = now + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            return False
        self.sock = sock
        self.backoff = BACKOFF_MIN
        self.connects += 1
        return True

    def deliver(self, lines: list[bytes], force: bool = False) -> tuple[int, int]:
        if self.sock is None and not self._connect(force):
            return 0, 0
        sock = self.sock
        assert sock is not None
        data = b"".join(lines)
        view = memoryview(data)
        sent = 0
        flags = getattr(socket, "MSG_NOSIGNAL", 0)
        try:
            while sent < len(data):
                sent += sock.send(view[sent : sent + CHUNK], flags)
        except OSError as exc:
            self.problem = f"connection to {self.spec} lost ({exc.strerror or exc})"
            self.close()
            self.retry_at = time.monotonic() + BACKOFF_MIN
            full, cut = _complete_lines(lines, sent)
            return full, 1 if cut else 0
        return len(lines), 0

    def after_fork(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.retry_at = 0.0

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None


class Writer:
    """Moves lines from the host's threads to an `Output` without blocking them.

    The hot path takes no lock: a deque append, and on the empty → non-empty transition one byte
    written to a non-blocking self-pipe the flusher polls. So an event emitted from a signal
    handler cannot deadlock against the thread it interrupted. The I/O lock is reentrant for the
    same reason (direct writes after fork or at exit).
    """

    def __init__(self, output: Output, warn: bool = True) -> None:
        self.output = output
        self.warn = warn
        self.queue: collections.deque[bytes] = collections.deque()
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.io_lock = threading.RLock()
        self.start_lock = threading.Lock()
        self.wake_fds: tuple[int, int] | None = None
        self.thread: threading.Thread | None = None
        self.direct = False
        self.closed = False
        self.written = 0
        self.dropped = 0
        self.warned: set[str] = set()

    def put(self, line: bytes) -> None:
        """Queue one complete line (the hot path: a length check and an append)."""
        queue = self.queue
        if len(queue) >= MAX_QUEUE:
            self.dropped += 1
            return
        queue.append(line)
        if len(queue) == 1:
            self._kick()

    def _count_drop(self, n: int) -> None:
        self.dropped += n

    def _kick(self) -> None:
        if self.direct or self.closed:
            self.flush(force=False)
            return
        fds = self.wake_fds
        if fds is None:
            fds = self._start()
            if fds is None:
                return
        with contextlib.suppress(OSError):  # a full pipe: wake-ups are pending already
            os.write(fds[1], b"\0")

    def _start(self) -> tuple[int, int] | None:
        """Start the flusher (once); None when no thread can be started (then write directly)."""
        with self.start_lock:
            if self.wake_fds is not None:
                return self.wake_fds
            try:
                fds = os.pipe()
                os.set_blocking(fds[0], False)
                os.set_blocking(fds[1], False)
                thread = threading.Thread(
                    target=self._run, args=(fds[0],), name="tracetui-tracer", daemon=True
                )
                thread.start()
            except (OSError, RuntimeError):
                self.direct = True
                self.flush()
                return None
            self.thread = thread
            self.wake_fds = fds
            return fds

    def _run(self, wake_fd: int) -> None:
        # The pipe is never closed: a late `_kick` must not write into a reused descriptor.
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        while not self.closed:
            try:
                ready = poller.poll(250 if self.pending else None)
                if ready:
                    os.read(wake_fd, 4096)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                time.sleep(FLUSH_DELAY)
            if self.closed:
                break
            time.sleep(FLUSH_DELAY)
            try:
                self.flush(force=False)
            except Exception as exc:
                self._warn("flush", f"unexpected error, events dropped: {exc!r}")

    def flush(self, force: bool = True) -> None:
        """Write everything queued so far (`force`: try a socket now, ignoring the backoff)."""
        with self.io_lock:
            queue = self.queue
            lines = self.pending
            self.pending = []
            self.pending_bytes = 0
            popleft = queue.popleft
            lines += [popleft() for _ in range(len(queue))]
            if not lines:
                return
            output = self.output
            try:
                if isinstance(output, SocketOutput):
                    done, lost = output.deliver(lines, force=force)
                else:
                    done, lost = output.deliver(lines)
            except Exception as exc:
                output.problem = f"unexpected error: {exc!r}"
                done, lost = 0, len(lines)
            self.written += done
            rest = lines[done + lost :]
            if rest and not output.keeps_undelivered:
                lost += len(rest)
                rest = []
            if rest:
                size = sum(map(len, rest))
                cut = 0
                while size > MAX_PENDING_BYTES:
                    size -= len(rest[cut])
                    cut += 1
                lost += cut
                self.pending = rest[cut:]
                self.pending_bytes = size
            if lost:
                self.dropped += lost
            if output.problem is not None:
                self._warn(output.problem.split(" (")[0], output.problem)
                output.problem = None

    def _warn(self, key: str, message: str) -> None:
        if not self.warn or key in self.warned:
            return
        self.warned.add(key)
        if self.output.keeps_undelivered:
            fate = "events are kept (up to 8 MiB) for when it listens, then dropped"
        else:
            fate = "events are dropped"
        with contextlib.suppress(OSError):
            os.write(2, f"tracetui.tracer: {message}; {fate} (see tracer.stats())\n".encode())

    def after_fork(self) -> None:
        """In a forked child: fresh locks and queues; write directly (children often `_exit`)."""
        self.queue = collections.deque()
        self.pending = []
        self.pending_bytes = 0
        self.io_lock = threading.RLock()
        self.start_lock = threading.Lock()
        self.wake_fds = None
        self.thread = None
        self.direct = True
        self.written = 0
        self.dropped = 0
        self.output.after_fork()

    def close(self) -> None:
        """Flush what is queued and release the output (at exit, or when reconfigured)."""
        if self.closed:
            return
        self.closed = True
        if self.wake_fds is not None:
            with contextlib.suppress(OSError):
                os.write(self.wake_fds[1], b"\0")
        try:
            self.flush()
        finally:
            with self.io_lock:
                self.output.close()
