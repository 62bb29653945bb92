"""OTLP-JSON files followed like any trace file: a line sink that expands OTLP-JSON lines.

What the Collector's file exporter (and the SDK's OTLP-JSON file exporter) writes is one
`ExportTraceServiceRequest` per line. `OtlpAwareSink` is a drop-in `LineSink` for the file
follower: ordinary tracetui lines pass through untouched; a line that starts with
`{"resourceSpans"` becomes the tracetui lines of its spans, all numbered with the file line they
came from. A broken request is rejected at its line number; spans rejected inside a request are
reported as a notice there. Such lines may be up to `MAX_BODY` (20 MiB), as large as the receiver
accepts; other lines keep the usual cap.
"""

from __future__ import annotations

from typing import Final

from tracetui.framing import DEFAULT_LINE_CAP, Frame, LineFramer
from tracetui.model import Rejected, Span
from tracetui.otel.otlp_json import OtlpError, convert_request, looks_like_otlp_json
from tracetui.sanitize import preview_bytes
from tracetui.sources.channel import Batch
from tracetui.sources.sink import LineSink

__all__ = ["OTLP_LINE_CAP", "OtlpAwareSink"]

OTLP_LINE_CAP: Final = 20 << 20
"""Longest OTLP-JSON line read from a file (the receiver's request cap)."""


class OtlpAwareSink(LineSink):
    """A `LineSink` that also understands OTLP-JSON lines (see the module docstring)."""

    def _new_framer(self, first_line_no: int, stream_start: bool) -> LineFramer:
        return LineFramer(OTLP_LINE_CAP, first_line_no=first_line_no, stream_start=stream_start)

    def _ship(self, frame: Frame, size: int) -> None:
        lines = frame.lines
        if not any(len(line) > DEFAULT_LINE_CAP or looks_like_otlp_json(line) for line in lines):
            super()._ship(frame, size)
            return
        self.unscreen()  # a screen process reads tracetui lines only
        spans: list[Span] = []
        rejected: list[Rejected] = []
        notices = self._notices
        run: list[bytes] = []
        run_start = frame.first_line_no
        decode = self.decoder.decode
        for i, line in enumerate(lines):
            number = frame.first_line_no + i
            if looks_like_otlp_json(line):
                self._expand(line, number, spans, rejected, notices)
            elif len(line) > DEFAULT_LINE_CAP:
                reason = f"line longer than the cap ({DEFAULT_LINE_CAP:,} bytes or more); skipped"
                rejected.append(Rejected(0, number, reason, preview_bytes(line)))
            else:
                if not run:
                    run_start = number
                run.append(line)
                continue
            if run:
                s, r = decode(run, run_start, 0)
                spans.extend(s)
                rejected.extend(r)
                run = []
        if run:
            s, r = decode(run, run_start, 0)
            spans.extend(s)
            rejected.extend(r)
        for issue in frame.issues:
            if issue.kind == "oversize":
                preview = preview_bytes(issue.head)
                rejected.append(Rejected(0, issue.line_no, issue.describe(), preview))
            else:
                notices.append((issue.line_no, issue.describe()))
        if not (spans or rejected or notices):
            return
        rejected.sort(key=lambda r: r.line_no)
        self._notices = []
        self.status.add(lines=len(spans) + len(rejected), rejected=len(rejected))
        self.channel.put(Batch(self.origin, spans, rejected, notices, size), self.stop)

    def _expand(
        self,
        line: bytes,
        number: int,
        spans: list[Span],
        rejected: list[Rejected],
        notices: list[tuple[int, str]],
    ) -> None:
        try:
            result = convert_request(line)
        except OtlpError as exc:
            rejected.append(Rejected(0, number, str(exc), preview_bytes(line)))
            return
        if result.rejected:
            notices.append((number, result.message))
        if not result.lines:
            return
        s, r = self.decoder.decode([out[:-1] for out in result.lines], number, 0)
        for span in s:
            span.line_no = number
        spans.extend(s)
        rejected.extend(Rejected(0, number, x.reason, x.preview) for x in r)
