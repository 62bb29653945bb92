"""Local rules judged in a second process, beside a big load.

A `Checker` spends most of its time on rules that need only the line itself: schema, required
trace data, deprecated keys, id shape, and above all decoding every line a second time to screen
it. None of that needs the store, so a `ScreenProcess` hands the raw bytes of each stream, as they
are read (by the read-ahead thread, so that the helper works ahead of the loader), to a helper
process (`python -c … tracetui.contracts.remote`) that frames and decodes them exactly as the
loader does and runs the checker's line rules there (`Checker.judge_lines`), on the machine's
other core. It decodes without agent identity, which those rules do not need and which is the
costliest part of a decode.

The loader numbers its frames (one per framer call, `feed` or `finish`) as the helper does, and
tells the screen which frames, or parts of frames, each ingest batch holds (`expect`). The checker
then takes the helper's verdicts for the batch (`collect`) instead of judging its lines itself:
the findings of the few spans that break a line rule, and which spans carry suspect baggage for
the relational pass. It still judges the agent context shape, the schema fields of spans its own
decoder had to work around (where a decoder without identity may see less; see
`Checker._redone`), and every relational and whole-trace rule.

Nothing is trusted blindly: a batch is taken from the helper only when its frames are the
loader's (as many spans in each frame, the same id at every verdict). Anything else (the helper
cannot start, dies, answers out of step or not at all) closes the screen for good, and the
checker judges that batch and every later one itself: the findings are the same either way.

Wire format. To the helper (its stdin): messages of a header `<BII` (kind, stream, length) and a
payload; the first carries the pickled `ContractSet`. Bytes come whole (`FEED`), or, for a regular
file that `load_paths` reads, as an offset and length the helper reads from the file itself
(`FEED_AT`, with both ends of the chunk to compare). From the helper (its stdout): `<I` length,
then one msgpack `Verdicts`: first one with stream -1 once it is up (until then the checker judges
batches itself rather than wait), then one per frame. The end of its input tells it to exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import itertools
import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, TYPE_CHECKING, Final

import msgspec

from tracetui.contracts.findings import Finding
from tracetui.contracts.loader import ContractSet
from tracetui.framing import DEFAULT_LINE_CAP
from tracetui.model import Span

if TYPE_CHECKING:
    from tracetui.contracts.checker import Checker

SCREEN_ABOVE: Final = 64 << 20
"""Reads of at least this many bytes (about 100,000 events) are worth a screen process; for
smaller ones the helper would take longer to start than it saves."""


def screen_wanted(size: int) -> bool:
    """Whether a read of `size` bytes should get a screen process: when it is `SCREEN_ABOVE`
    or more, unless the environment says otherwise (`TRACETUI_SCREEN=0`: never, `1`: always)."""
    said = os.environ.get("TRACETUI_SCREEN")
    if said in ("0", "1"):
        return said == "1"
    return size >= SCREEN_ABOVE


_HEADER: Final = struct.Struct("<BII")
_LENGTH: Final = struct.Struct("<I")
_PIPE_SIZE: Final = 1 << 20
_EDGE: Final = 64
"""Bytes at each end of a chunk the helper compares when it reads the file itself."""
_PATIENCE: Final = 60.0
"""Seconds the checker waits for the helper's answer about one frame before judging alone."""
CONTRACTS, OPEN, FEED, FINISH, CLOSE, FEED_AT = range(6)


class Verdict(msgspec.Struct, array_like=True, gc=False):
    """What the helper found about one span of a frame.

    Attributes:
        index: the span's position among the frame's decoded spans.
        trace_id: its id (checked against the loader's span at that position).
        findings: its local findings (seq 0: the loader's seq is filled in).
        bag: its own baggage holds a denied or unlisted key.
    """

    index: int
    trace_id: str
    findings: list[Finding]
    bag: bool


class Verdicts(msgspec.Struct, array_like=True, gc=False):
    """The helper's answer for one frame of one stream (frames are numbered from 0, one per
    framer call: `feed` or `finish`). Every frame gets one, even one without spans."""

    stream: int
    frame: int
    spans: int
    verdicts: list[Verdict]
    schema: list[int]
    """Positions of the spans its decoder had to work around (`SCHEMA`)."""


Segment = tuple[int, int, int, int, int]
"""Part of an ingest batch: (stream, frame, first span of the frame, spans, spans in the frame)."""

_ROOT: Final = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT: Final = (
    "import sys; sys.path.append(sys.argv[1]); from tracetui.contracts.remote import main; main()"
)
"""How the helper starts: with this process's Python (`-P`: not from the working directory) and
this copy of tracetui importable."""
_encode = msgspec.msgpack.Encoder().encode
_decode_verdicts = msgspec.msgpack.Decoder(Verdicts).decode


class ScreenProcess:
    """The main process's side: ships stream bytes to the helper and collects its verdicts.

    Thread-safe for feeding (each stream fed from one thread at a time); `expect` and `collect`
    are called by the thread that ingests.

    Attributes:
        reason: why the screen closed (None while it is working).
    """

    def __init__(self, contracts: ContractSet, depth: int = 4) -> None:
        self.reason: str | None = None
        self._sids = itertools.count()
        self._closing = threading.RLock()
        self._cond = threading.Condition()
        self._results: dict[tuple[int, int], Verdicts] = {}
        self._answered = False
        """The helper said it is up: from now on its answers are waited for (batches that come
        before are judged in process rather than wait for it to start)."""
        self.judged = 0
        """Batches taken from the helper."""
        self._next: list[Segment] = []
        self._outbox: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue(depth)
        # The helper's stderr, read back to say why it stopped; lives as long as the helper.
        self._errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOT, _ROOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                bufsize=0,
            )
        except OSError as exc:
            self.reason = f"the screen process could not start: {exc}"
            return
        for pipe in (self._proc.stdin, self._proc.stdout):  # fewer, bigger transfers
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # type: ignore[union-attr]
        self._writer = threading.Thread(target=self._write, name="tracetui-screen-out", daemon=True)
        self._reader = threading.Thread(target=self._read, name="tracetui-screen-in", daemon=True)
        self._writer.start()
        self._reader.start()
        self._send(CONTRACTS, 0, pickle.dumps(contracts))

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until the helper is up (or the screen closed); whether it is up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._answered and self.reason is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            return self._answered and self.reason is None

    @property
    def working(self) -> bool:
        """Not closed: nothing has gone wrong (the helper may still be starting)."""
        return self.reason is None

    # ---- feeding (reader threads) ---------------------------------------------------------------

    def open(
        self,
        origin: int,
        first_line_no: int = 1,
        stream_start: bool = True,
        line_cap: int = DEFAULT_LINE_CAP,
        file: tuple[str, int, int] | None = None,
    ) -> int:
        """Start a stream framed as `LineFramer(line_cap, …)` whose spans carry this origin;
        its number. `file`: (path, st_dev, st_ino) of a regular file the helper may read
        itself (see `feed_at`)."""
        sid = next(self._sids)  # (atomic: streams open on several reader threads)
        self._send(OPEN, sid, _encode((origin, first_line_no, stream_start, line_cap, file)))
        return sid

    def feed(self, sid: int, chunk: bytes) -> None:
        """Ship bytes the loader frames next (as soon as they are read: the helper then works
        ahead of the loader)."""
        self._send(FEED, sid, chunk)

    def feed_at(self, sid: int, offset: int, chunk: bytes) -> None:
        """Like `feed`, for bytes the loader read at `offset` of the stream's file: the helper
        reads them there itself, which spares this process copying them through the pipe. It
        checks their length and both ends against the loader's; a file that changed in between
        stops it (and the checker judges alone)."""
        edges = (offset, len(chunk), chunk[:_EDGE], chunk[-_EDGE:])
        self._send(FEED_AT, sid, _encode(edges))

    def finish(self, sid: int) -> None:
        """The loader finishes the stream's framer."""
        self._send(FINISH, sid, b"")

    def close_stream(self, sid: int) -> None:
        """The stream is done: the helper forgets it."""
        self._send(CLOSE, sid, b"")

    def _send(self, kind: int, sid: int, payload: bytes) -> None:
        if self.reason is not None:
            return
        item = (_HEADER.pack(kind, sid, len(payload)), payload)
        while self.reason is None:
            try:
                self._outbox.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # ---- collecting (the ingesting thread) ------------------------------------------------------

    def expect(self, segments: list[Segment]) -> None:
        """The next ingest batch holds these frames' spans, in this order."""
        self._next = segments

    def collect(
        self, new: list[Span]
    ) -> tuple[dict[int, list[Finding]], list[int], list[int]] | None:
        """The helper's verdicts on an ingested batch: local findings by seq, the positions of
        spans with suspect baggage, and the positions of spans its decoder had to work around
        (`SCHEMA`). None when the batch is not wholly the expected frames or the screen is
        closed: the caller judges the batch itself."""
        segments, self._next = self._next, []
        if self.reason is not None or not segments:
            return None
        if sum(seg[3] for seg in segments) != len(new):
            self.close("a batch did not hold the frames it was said to")
            return None
        if not self._answered:  # the helper is still starting: judging the batch here is quicker
            for sid, k, start, count, total in segments:
                if start + count >= total:
                    self._done(sid, k)
            return None
        found: dict[int, list[Finding]] = {}
        marks: list[int] = []
        schema: list[int] = []
        pos = 0
        replace = msgspec.structs.replace
        for sid, k, start, count, total in segments:
            got = self._wait(sid, k)
            if got is None:
                return None
            if got.spans != total:
                self.close(f"frame {k} decoded to {got.spans} spans there, {total} here")
                return None
            end = start + count
            for v in got.verdicts:
                if not start <= v.index < end:
                    continue
                j = pos + v.index - start
                span = new[j]
                if span.trace_id != v.trace_id:
                    self.close(f"frame {k} disagrees on span {v.index}'s id")
                    return None
                if v.findings:
                    found[span.seq] = [
                        replace(f, seq=span.seq, trace_id=span.trace_id) for f in v.findings
                    ]
                if v.bag:
                    marks.append(j)
            schema.extend(pos + i - start for i in got.schema if start <= i < end)
            if end >= total:
                self._done(sid, k)
            pos += count
        marks.sort()
        self.judged += 1
        return found, marks, schema

    def _done(self, sid: int, k: int) -> None:
        """Forget a frame taken whole, and earlier frames of its stream that nobody will ask
        for (those that decoded to no span here either)."""
        with self._cond:
            results = self._results
            results.pop((sid, k), None)
            for key in [key for key in results if key[0] == sid and key[1] < k]:
                del results[key]

    def _wait(self, sid: int, k: int) -> Verdicts | None:
        give_up = time.monotonic() + _PATIENCE
        while True:
            with self._cond:
                if self.reason is not None:
                    return None
                got = self._results.get((sid, k))
                if got is not None:
                    return got
                self._cond.wait(0.5)
            if self._proc is not None and self._proc.poll() is not None:
                self._closed_by_helper()  # (not holding the condition: it closes)
            elif time.monotonic() > give_up:
                self.close(f"the screen process gave no answer for {_PATIENCE:.0f} s")

    # ---- the helper's pipes ---------------------------------------------------------------------

    def _write(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        out = self._proc.stdin
        try:
            while True:
                item = self._outbox.get()
                if item is None:
                    break
                for part in item:
                    view = memoryview(part)
                    while view:
                        view = view[out.write(view) or 0 :]
        except (OSError, ValueError):
            self._closed_by_helper()
        with contextlib.suppress(OSError):
            out.close()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        inp = self._proc.stdout
        try:
            while True:
                head = _read_exactly(inp, _LENGTH.size)
                if head is None:
                    break
                body = _read_exactly(inp, _LENGTH.unpack(head)[0])
                if body is None:
                    break
                got = _decode_verdicts(body)
                with self._cond:
                    if got.stream < 0:  # it is up
                        self._answered = True
                    else:
                        self._results[got.stream, got.frame] = got
                    self._cond.notify_all()
        except (OSError, ValueError, msgspec.DecodeError):
            pass
        self._closed_by_helper()

    def _closed_by_helper(self) -> None:
        with self._closing:  # both pipe threads may get here at once
            if self.reason is not None or self._proc is None:
                return
            status = self._proc.poll()
            if status is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    status = self._proc.wait(timeout=1.0)
            said = ""
            with contextlib.suppress(OSError, ValueError):
                self._errors.seek(0)
                lines = self._errors.read().decode(errors="replace").strip().splitlines()
                said = f": {lines[-1]}" if lines else ""
            self.close(f"the screen process stopped (exit status {status}){said}")

    def close(self, reason: str = "closed") -> None:
        """Stop the helper; later batches are judged in process. Idempotent."""
        with self._closing, self._cond:
            if self.reason is not None:
                return
            self.reason = reason
            self._results.clear()
            self._cond.notify_all()
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(queue.Full):  # lets the writer thread end
            self._outbox.put_nowait(None)
        if proc.poll() is None:  # whatever it was doing is not needed any more
            proc.terminate()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                proc.wait(timeout=2.0)
        with contextlib.suppress(OSError):
            self._errors.close()


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    parts: list[bytes] = []
    while n:
        part = stream.read(n)
        if not part:
            return None
        parts.append(part)
        n -= len(part)
    return b"".join(parts) if len(parts) != 1 else parts[0]


# ---- the helper process -------------------------------------------------------------------------


class _Stream:
    def __init__(
        self,
        origin: int,
        first_line_no: int,
        start: bool,
        cap: int,
        file: tuple[str, int, int] | None,
    ) -> None:
        from tracetui.decode import LineDecoder
        from tracetui.framing import LineFramer

        self.origin = origin
        self.decoder = LineDecoder(False)  # the rules that read the lines need no identity
        self.framer = LineFramer(cap, first_line_no=first_line_no, stream_start=start)
        self.frames = 0
        self.fd = -1
        if file is not None:
            path, dev, ino = file
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(self.fd)
            if (st.st_dev, st.st_ino) != (dev, ino):
                raise SystemExit(f"{path} is no longer the file the loader reads")

    def read_at(self, offset: int, length: int, head: bytes, tail: bytes) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length or data[:_EDGE] != head or data[-_EDGE:] != tail:
            raise SystemExit("the file changed while it was read")
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The helper's loop: read messages until end of input, answer each frame with spans."""
    from tracetui.contracts.checker import Checker

    gc.disable()  # short-lived objects only; collected every so often below
    checker: Checker | None = None
    streams: dict[int, _Stream] = {}
    while True:
        head = _read_exactly(inp, _HEADER.size)
        if head is None:
            return
        kind, sid, length = _HEADER.unpack(head)
        payload = _read_exactly(inp, length) if length else b""
        if payload is None:
            return
        if kind == CONTRACTS:
            checker = Checker(pickle.loads(payload))  # from our own parent process
            _answer(out, Verdicts(-1, -1, 0, [], []))  # up
        elif kind == OPEN:
            origin, first_line_no, start, cap, file = msgspec.msgpack.decode(payload)
            streams[sid] = _Stream(origin, first_line_no, start, cap, file)
        elif kind == CLOSE:
            gone = streams.pop(sid, None)
            if gone is not None:
                gone.close()
        elif kind in (FEED, FEED_AT, FINISH):
            assert checker is not None, "contracts come first"
            stream = streams[sid]
            if kind == FEED_AT:
                payload = stream.read_at(*msgspec.msgpack.decode(payload))
            frame = stream.framer.finish() if kind == FINISH else stream.framer.feed(payload)
            k = stream.frames
            stream.frames += 1
            spans, _ = stream.decoder.decode(
                frame.lines, frame.first_line_no, stream.origin, frame.rest
            )
            _answer(out, _judge(checker, k, sid, spans) if spans else Verdicts(sid, k, 0, [], []))
            if k % 64 == 63:
                gc.collect()


def _answer(out: IO[bytes], verdicts: Verdicts) -> None:
    body = _encode(verdicts)
    out.write(_LENGTH.pack(len(body)))
    out.write(body)
    out.flush()


def _judge(checker: Checker, k: int, sid: int, spans: list[Span]) -> Verdicts:
    for i, span in enumerate(spans):
        span.seq = i
    found, marks, schema = checker.judge_lines(spans)
    bags = set(marks)
    verdicts = [
        Verdict(i, spans[i].trace_id, found.get(i, []), i in bags)
        for i in sorted(bags.union(found))
    ]
    return Verdicts(sid, k, len(spans), verdicts, schema)


def main() -> None:
    """Entry point of the helper process."""
    inp = os.fdopen(sys.stdin.fileno(), "rb", buffering=1 << 20, closefd=False)
    out = os.fdopen(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(inp, out)
