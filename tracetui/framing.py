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

BOM: Final = b"\xef\xbb\xbf"
DEFAULT_LINE_CAP: Final = 1 << 20
"""1 MiB: longer lines are skipped and reported."""


class FrameIssue(msgspec.Struct, frozen=True, gc=False):
    """Something the framer skipped: `kind` is `oversize` or `nul`; `size` counts bytes skipped."""

    kind: str
    line_no: int
    size: int

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


class LineFramer:
    """Incremental line splitter with a line cap; see the module docstring."""

    def __init__(
        self, line_cap: int = DEFAULT_LINE_CAP, *, first_line_no: int = 1, stream_start: bool = True
    ) -> None:
        """`first_line_no` and `stream_start=False` serve a reader that starts mid-stream
        (`--from-end`, `--last N`): numbering continues from there and no BOM is expected."""
        self.line_cap = line_cap
        self._pending = b""
        self._next_line_no = first_line_no
        self._at_stream_start = stream_start
        self._skipping = 0  # bytes of an oversized line skipped so far (0 = not skipping)
        self._nul_run = 0  # NUL bytes skipped at the start of the current line

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an unfinished last line."""
        return len(self._pending)

    @property
    def next_line_no(self) -> int:
        """The number the next completed line will get."""
        return self._next_line_no

    def feed(self, chunk: bytes) -> Frame:
        """Add bytes; return the lines they complete."""
        issues: list[FrameIssue] = []
        first = self._next_line_no
        if self._at_stream_start and chunk:
            data = self._pending + chunk
            if len(data) < len(BOM) and BOM.startswith(data):
                self._pending = data
                return Frame(first, [], issues)
            if data.startswith(BOM):
                data = data[len(BOM) :]
            self._pending = b""
            self._at_stream_start = False
            chunk = data
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                self._skipping += len(chunk)
                return Frame(first, [], issues)
            issues.append(FrameIssue("oversize", self._next_line_no, self._skipping + nl))
            self._skipping = 0
            self._next_line_no += 1
            chunk = chunk[nl + 1 :]
            lines_prefix: list[bytes] = [b""]
        else:
            lines_prefix = []
        if not self._pending and chunk[:1] == b"\0":
            stripped = chunk.lstrip(b"\0")
            self._nul_run += len(chunk) - len(stripped)
            chunk = stripped
            if not chunk:
                return Frame(first, lines_prefix, issues)
        buf = self._pending + chunk if self._pending else chunk
        lines = buf.split(b"\n")
        tail = lines.pop()
        if self._nul_run and (lines or tail):
            issues.append(FrameIssue("nul", self._next_line_no, self._nul_run))
            self._nul_run = 0
        if b"\0" in buf:
            self._strip_nul_runs(lines, issues)
        if b"\r" in buf:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        if len(buf) > self.line_cap:
            for i, ln in enumerate(lines):
                if len(ln) > self.line_cap:
                    issues.append(FrameIssue("oversize", self._next_line_no + i, len(ln)))
                    lines[i] = b""
        if tail[:1] == b"\0" and not tail.strip(b"\0"):
            self._nul_run += len(tail)
            tail = b""
        elif len(tail) > self.line_cap:
            self._skipping = len(tail)
            tail = b""
        self._pending = tail
        self._next_line_no += len(lines)
        if lines_prefix:
            lines = lines_prefix + lines
        return Frame(first, lines, issues)

    def _strip_nul_runs(self, lines: list[bytes], issues: list[FrameIssue]) -> None:
        """Strip NUL runs at the start of lines (the mark of a truncated-under-writer file)."""
        for i, ln in enumerate(lines):
            if ln[:1] == b"\0":
                stripped = ln.lstrip(b"\0")
                issues.append(FrameIssue("nul", self._next_line_no + i, len(ln) - len(stripped)))
                lines[i] = stripped

    def finish(self) -> Frame:
        """End of stream: the unfinished last line (if any) counts as a line."""
        issues: list[FrameIssue] = []
        first = self._next_line_no
        lines: list[bytes] = []
        if self._skipping:
            issues.append(FrameIssue("oversize", first, self._skipping))
            self._skipping = 0
            lines.append(b"")
        elif self._pending:
            tail = self._pending
            if tail[:1] == b"\0":
                stripped = tail.lstrip(b"\0")
                issues.append(FrameIssue("nul", first, len(tail) - len(stripped)))
                tail = stripped
            lines.append(tail[:-1] if tail.endswith(b"\r") else tail)
        elif self._nul_run:
            issues.append(FrameIssue("nul", first, self._nul_run))
        self._nul_run = 0
        self._pending = b""
        self._next_line_no += len(lines)
        return Frame(first, lines, issues)
