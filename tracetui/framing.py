"""Bytes → complete lines, for every source.

One `LineFramer` per stream. It holds a partial last line until its newline arrives, strips a BOM
at the start of the stream and CR before LF, skips runs of NUL bytes (left by a writer that kept
writing at its old offset after the file was truncated) and skips oversized lines up to the next
newline without ever buffering them whole. Line numbers count every newline, blank lines included,
so they match what an editor shows.
"""

from __future__ import annotations

from typing import Final

import msgspec

from tracetui.model import Rejected
from tracetui.sanitize import preview_bytes

BOM: Final = b"\xef\xbb\xbf"
HEAD_BYTES: Final = 480
"""How much of a skipped line is kept for its preview."""
DEFAULT_LINE_CAP: Final = 1 << 20
"""1 MiB: longer lines are skipped and reported."""


class FrameIssue(msgspec.Struct, frozen=True, gc=False):
    """Something the framer skipped: `kind` is `oversize` or `nul`; `size` counts bytes skipped."""

    kind: str
    line_no: int
    size: int
    head: bytes = b""
    """The first bytes of a skipped line, for an escaped preview."""

    def as_rejected(self, origin: int) -> Rejected:
        """A skipped oversized line as a rejected line, with an escaped preview of its head."""
        return Rejected(origin, self.line_no, self.describe(), preview_bytes(self.head))

    def describe(self) -> str:
        """The issue in plain words."""
        if self.kind == "oversize":
            return f"line longer than the cap ({self.size:,} bytes or more); skipped to its end"
        return f"run of {self.size:,} NUL bytes skipped (file truncated under a writer?)"


class Frame(msgspec.Struct, gc=False):
    """Lines completed by one `feed`: `lines[i]` is line number `first_line_no + i`.

    Blank lines and skipped lines appear as `b""` so that numbering stays positional.
    """

    first_line_no: int
    lines: list[bytes]
    issues: list[FrameIssue]
    rest: tuple[bytes, int, int] | None = None
    """`(data, start, end)` when `data[start:end]` is exactly `b"\\n".join(lines[1:])` (no CR or
    NUL bytes removed, no line skipped), so a decoder can read those lines without joining them
    again. None otherwise."""


class LineFramer:
    """Incremental line splitter with a line cap; see the module docstring.

    Every line is treated the same way whatever the chunking: a BOM is removed from the first
    line of the stream, a run of NUL bytes at the start of a line is removed and reported (with
    that line's number), a line whose remaining bytes before its newline (a CR included) exceed
    the cap is skipped and reported, and a CR before the newline is removed.
    """

    def __init__(
        self, line_cap: int = DEFAULT_LINE_CAP, *, first_line_no: int = 1, stream_start: bool = True
    ) -> None:
        """`first_line_no` and `stream_start=False` serve a reader that starts mid-stream
        (`--from-end`, `--last N`): numbering continues from there and no BOM is expected."""
        self.line_cap = line_cap
        self._pending = bytearray()  # the unfinished current line (its NUL prefix removed)
        self._bom = b""  # the first bytes of the stream while they may still be a BOM
        self._next_line_no = first_line_no
        self._at_stream_start = stream_start
        self._skipping = 0  # bytes of an oversized current line skipped so far (0 = not skipping)
        self._nul_run = 0  # NUL bytes removed from the start of the current line
        self._skip_head = b""  # the first bytes of the oversized line being skipped

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an unfinished last line."""
        return len(self._pending) + len(self._bom)

    @property
    def next_line_no(self) -> int:
        """The number the next completed line will get."""
        return self._next_line_no

    def feed(self, chunk: bytes) -> Frame:
        """Add bytes; return the lines they complete."""
        issues: list[FrameIssue] = []
        first = self._next_line_no
        if self._at_stream_start and chunk:
            data = self._bom + chunk
            if len(data) < len(BOM) and BOM.startswith(data):
                self._bom = data
                return Frame(first, [], issues)
            self._bom = b""
            self._at_stream_start = False
            chunk = data[len(BOM) :] if data.startswith(BOM) else data
        nl = chunk.find(b"\n")
        if nl < 0:
            self._extend(chunk)
            return Frame(first, [], issues)
        middle = chunk.split(b"\n")  # not `chunk[nl + 1 :]`: no copy of the whole chunk
        self._extend(middle[0])
        lines = [self._end_line(issues)]
        tail = middle.pop()
        del middle[0]
        rest = None
        if middle:
            size = len(chunk) - nl - 1 - len(tail)
            nul, cr, before = b"\0" in chunk, b"\r" in chunk, len(issues)
            self._whole_lines(middle, size, nul, cr, issues)
            lines += middle
            if not (nul or cr or len(issues) > before):
                rest = (chunk, nl + 1, nl + size)  # (without the last line's newline)
        self._extend(tail)
        if len(issues) > 1:
            issues.sort(key=lambda i: (i.line_no, i.kind != "nul"))
        return Frame(first, lines, issues, rest)

    def _whole_lines(
        self, lines: list[bytes], size: int, nul: bool, cr: bool, issues: list[FrameIssue]
    ) -> None:
        """Lines that started and ended inside one chunk (the fast path: checks only if needed)."""
        base = self._next_line_no
        if nul:
            for i, ln in enumerate(lines):
                if ln[:1] == b"\0":
                    stripped = ln.lstrip(b"\0")
                    issues.append(FrameIssue("nul", base + i, len(ln) - len(stripped)))
                    lines[i] = stripped
        cap = self.line_cap
        if size > cap and max(map(len, lines)) > cap:
            for i, ln in enumerate(lines):
                if len(ln) > cap:
                    issues.append(FrameIssue("oversize", base + i, len(ln), ln[:HEAD_BYTES]))
                    lines[i] = b""
        if cr:
            for i, ln in enumerate(lines):
                if ln[-1:] == b"\r":
                    lines[i] = ln[:-1]
        self._next_line_no = base + len(lines)

    def _extend(self, piece: bytes) -> None:
        """Add bytes to the unfinished current line."""
        if not piece:
            return
        if self._skipping:
            self._skipping += len(piece)
            return
        if not self._pending and piece[:1] == b"\0":
            stripped = piece.lstrip(b"\0")
            self._nul_run += len(piece) - len(stripped)
            piece = stripped
            if not piece:
                return
        if len(self._pending) + len(piece) > self.line_cap:
            self._skipping = len(self._pending) + len(piece)
            self._skip_head = bytes(self._pending[:HEAD_BYTES]) + piece[:HEAD_BYTES]
            self._skip_head = self._skip_head[:HEAD_BYTES]
            self._pending.clear()
            return
        self._pending += piece

    def _end_line(self, issues: list[FrameIssue]) -> bytes:
        """The current line is complete: its bytes (b"" when skipped), issues reported."""
        line_no = self._next_line_no
        self._next_line_no += 1
        if self._nul_run:
            issues.append(FrameIssue("nul", line_no, self._nul_run))
            self._nul_run = 0
        if self._skipping:
            issues.append(FrameIssue("oversize", line_no, self._skipping, self._skip_head))
            self._skipping = 0
            self._skip_head = b""
            return b""
        line = bytes(self._pending)
        self._pending.clear()
        return line[:-1] if line[-1:] == b"\r" else line

    def finish(self) -> Frame:
        """End of stream: the unfinished last line (if any) counts as a line."""
        issues: list[FrameIssue] = []
        first = self._next_line_no
        lines: list[bytes] = []
        if self._bom:
            self._extend(self._bom)
            self._bom = b""
        if self._pending or self._skipping:
            lines.append(self._end_line(issues))
        elif self._nul_run:
            issues.append(FrameIssue("nul", first, self._nul_run))
            self._nul_run = 0
        return Frame(first, lines, issues)
