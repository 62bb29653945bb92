"""Listen on a Unix domain socket or TCP loopback; every producer writes JSON lines.

Security of the Unix socket: it lives in a directory only the user can enter (created 0700 when
missing; an existing directory that others can enter or that belongs to someone else is refused),
it is bound with a umask that leaves it 0600, a leftover socket file is replaced only when a probe
connect proves nobody listens on it, a path that is not a socket is never unlinked, and the socket
file is removed on exit only if it is still ours. TCP listens on loopback addresses only.

One thread serves all producers of a listener with a selector. Each producer has its own framer
(1 MiB line cap: an oversized line is skipped and reported, other producers are unaffected) and
its own origin: the socket plus the peer's pid (SO_PEERCRED) or TCP address. When the consumer
falls behind, the channel fills and this thread blocks on it: producers are slowed by their
socket buffers (backpressure) instead of lines being dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import stat
import struct
import threading

from tracetui.sources.channel import Channel, Status
from tracetui.sources.sink import LineSink
from tracetui.sources.spec import SourceError, SourceSpec

MAX_PRODUCERS = 64
RECV = 256 << 10
PROBE_TIMEOUT = 1.0

log = logging.getLogger(__name__)


class _Producer:
    __slots__ = ("name", "sink", "sock")

    def __init__(self, sock: socket.socket, name: str, sink: LineSink) -> None:
        self.sock = sock
        self.name = name
        self.sink = sink


def _peer_pid(sock: socket.socket) -> int | None:
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, opt, 12))
    except OSError:
        return None
    return pid if pid > 0 else None


def _private_dir(spec: SourceSpec, directory: str) -> None:
    """Create `directory` 0700 when missing; refuse one that other users can enter."""
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        except OSError as exc:
            raise SourceError(
                f"{spec.text}: cannot create directory {directory}: {exc.strerror or exc}"
            ) from None
    st = os.stat(directory)
    if st.st_uid != os.geteuid():
        raise SourceError(
            f"{spec.text}: directory {directory} belongs to another user; put the socket in a "
            "directory of your own (e.g. under $XDG_RUNTIME_DIR)"
        )
    if st.st_mode & 0o077:
        raise SourceError(
            f"{spec.text}: other users can enter directory {directory} "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); put the socket in a private directory "
            f"(chmod 700 it, or use a path under $XDG_RUNTIME_DIR or a new directory, which "
            "tracetui creates with mode 0700)"
        )


def _clear_stale(spec: SourceSpec, path: str) -> bool:
    """Remove a leftover socket nobody listens on; True when one was removed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(st.st_mode):
        raise SourceError(
            f"{spec.text}: {path} exists and is not a socket; not touching it "
            "(remove it yourself or choose another path)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a socket file left by a server that died
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SourceError(
            f"{spec.text}: cannot tell whether {path} is in use ({exc}); not replacing it"
        ) from None
    finally:
        probe.close()
    raise SourceError(
        f"{spec.text}: another program is already listening on {path}; not taking it over "
        "(stop it, or choose another path)"
    )


class SocketServer(threading.Thread):
    """One listener (Unix or TCP) and its producers."""

    def __init__(
        self,
        spec: SourceSpec,
        channel: Channel,
        stop: threading.Event,
        *,
        max_producers: int = MAX_PRODUCERS,
    ) -> None:
        super().__init__(name=f"tracetui-listen:{spec.text}", daemon=True)
        self.spec = spec
        self.channel = channel
        self.stop = stop
        self.max_producers = max_producers
        self.status = Status(spec.text, spec.kind, "listening")
        self._listener: socket.socket | None = None
        self._socket_id: tuple[int, int] | None = None
        self._producers: dict[int, _Producer] = {}
        self._connections = 0
        self._refused = 0
        self._origin_prefix = spec.text  # TCP: the address actually bound (`tcp:0` picks a port)

    def wake(self) -> None:
        """Nothing to wake: the selector loop polls its stop flag."""

    # ---- setup (on the caller's thread, so errors reach the user at once) ----------------------

    def bind(self) -> None:
        """Create the listening socket.

        Raises:
            SourceError: the socket cannot be created safely (see the module docstring).
        """
        if self.spec.kind == "unix":
            self._bind_unix()
        else:
            self._bind_tcp()

    def _bind_unix(self) -> None:
        spec = self.spec
        path = os.path.abspath(spec.path)
        _private_dir(spec, os.path.dirname(path))
        replaced = _clear_stale(spec, path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise SourceError(f"{spec.text}: cannot listen: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        st = os.lstat(path)
        self._socket_id = (st.st_dev, st.st_ino)
        self._listen(sock)
        msg = "replaced a stale socket file left by a server that is gone" if replaced else ""
        self.status.set("listening", msg, address=path)

    def _bind_tcp(self) -> None:
        spec = self.spec
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((spec.host, spec.port))
        except OSError as exc:
            sock.close()
            raise SourceError(f"{spec.text}: cannot listen: {exc.strerror or exc}") from None
        host, port = sock.getsockname()[:2]
        self._listen(sock)
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        self._origin_prefix = f"tcp:{address}"
        self.status.set("listening", "", address=address)

    def _listen(self, sock: socket.socket) -> None:
        sock.listen(128)
        sock.setblocking(False)
        self._listener = sock

    # ---- serving -------------------------------------------------------------------------------

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            assert self._listener is not None
            sel.register(self._listener, selectors.EVENT_READ, None)
            while not self.stop.is_set():
                for key, _ in sel.select(0.1):
                    if key.data is None:
                        self._accept(sel)
                    else:
                        self._receive(sel, key.data)
        except Exception as exc:
            log.debug("serving %s failed", self.spec.text, exc_info=True)
            self.status.set("closed", f"listener failed: {exc}")
        finally:
            for producer in list(self._producers.values()):
                self._hang_up(sel, producer)
            sel.close()
            self.close()
            if self.status.state != "closed":
                self.status.set("closed", "stopped")
            self.channel.poke()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the producer gave up before we accepted it
            except OSError as exc:  # out of descriptors …: keep serving who we have
                self.status.set(None, f"cannot accept more connections: {exc.strerror or exc}")
                return
            if len(self._producers) >= self.max_producers:
                self._refused += 1
                self.status.set(
                    None,
                    f"refused {self._refused:,} connection(s): at most "
                    f"{self.max_producers} producers at once",
                    refused=self._refused,
                )
                sock.close()
                continue
            self._connections += 1
            if self.spec.kind == "unix":
                pid = _peer_pid(sock)
                who = f"pid {pid}" if pid is not None else "peer"
            else:
                host, port = addr[:2]
                who = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            name = f"{self._origin_prefix} [{who} #{self._connections}]"
            sock.setblocking(False)
            producer = _Producer(sock, name, LineSink(name, self.channel, self.status, self.stop))
            self._producers[sock.fileno()] = producer
            sel.register(sock, selectors.EVENT_READ, producer)
            self.status.add(producers=1)

    def _receive(self, sel: selectors.BaseSelector, producer: _Producer) -> None:
        try:
            data = producer.sock.recv(RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by a producer that died
        if data:
            producer.sink.feed(data)
        else:
            self._hang_up(sel, producer)

    def _hang_up(self, sel: selectors.BaseSelector, producer: _Producer) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(producer.sock)
        self._producers.pop(producer.sock.fileno(), None)
        producer.sock.close()
        self.status.add(producers=-1)
        lost = producer.sink.pending_bytes
        if lost:
            self.status.add(dropped=1)
            producer.sink.notice(
                f"producer went away mid-line: an unfinished line of {lost:,} bytes was dropped"
            )
        else:
            producer.sink.finish()

    def close(self) -> None:
        """Close the listener and remove our socket file (only if it is still ours)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._socket_id is not None:
            path = os.path.abspath(self.spec.path)
            try:
                st = os.lstat(path)
            except OSError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == self._socket_id:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            self._socket_id = None
