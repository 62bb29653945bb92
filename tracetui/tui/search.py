"""A search index for the monitor's text search: case-folded search text of every span.

`query.text_matcher` decodes each line's summaries to test it, which costs seconds over a million
spans. The index keeps, per span, the case-folded operation, component and summaries — the exact
fields and folding the matcher uses — joined into large strings (one per chunk of spans), so a
plain-text search is a `str.find` loop in C that only pays per hit. Fields are separated by NUL
(a newline inside a field becomes NUL too) and spans by newline; a needle holding neither can only
match inside one field, so hits are exact. (A needle with such characters, and regular
expressions, use the matcher instead.)

Built on the app's thread, incrementally: spans are added in arrival order as they are ingested.
Nothing here imports Textual.
"""

from __future__ import annotations

from array import array
from typing import Any, Final

import msgspec

from tracetui.model import Span
from tracetui.store import TraceStore

CHUNK: Final = 32_768
"""Spans per chunk: big enough that a search is a few long `find` runs, small enough that adding
a batch re-joins little."""


class _Summaries(msgspec.Struct):
    """Only the summaries of a line (the decoder skips everything else)."""

    i: Any = msgspec.field(default=None, name="input_summary")
    o: Any = msgspec.field(default=None, name="output_summary")


_decode_summaries = msgspec.json.Decoder(_Summaries).decode


def search_key(span: Span) -> str:
    """The text a plain search looks in, case-folded: operation, component, summaries."""
    try:
        summaries = _decode_summaries(span.raw)
        inp = summaries.i if isinstance(summaries.i, str) else ""
        out = summaries.o if isinstance(summaries.o, str) else ""
    except msgspec.DecodeError:
        inp = out = ""
    key = "\x00".join((span.operation or "", span.component or "", inp, out)).casefold()
    return key.replace("\n", "\x00") if "\n" in key else key


def indexable(text: str) -> bool:
    """Whether a plain search for `text` can use the index (needles with separators cannot)."""
    return bool(text) and "\x00" not in text and "\n" not in text


class _Chunk:
    """Search keys of consecutive spans, one per line, and the spans' seqs."""

    __slots__ = ("seqs", "text")

    def __init__(self) -> None:
        self.text = ""
        self.seqs = array("q")


class SearchIndex:
    """Case-folded search keys of spans in arrival order, searchable by substring.

    Attributes:
        next_seq: spans with a smaller seq are indexed (or were evicted before they could be).
    """

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = []
        self.next_seq = 0

    def __len__(self) -> int:
        return sum(len(c.seqs) for c in self._chunks)

    def catch_up(self, store: TraceStore, end: int, limit: int | None = None) -> int:
        """Index the resident spans with seqs in [next_seq, end), at most `limit`; how many."""
        seq = self.next_seq
        stop = end if limit is None else min(end, seq + limit)
        get = store.get
        spans = [s for s in map(get, range(seq, stop)) if s is not None]
        self._add(spans)
        self.next_seq = max(self.next_seq, stop)
        return len(spans)

    def _add(self, spans: list[Span]) -> None:
        pos = 0
        while pos < len(spans):
            chunk = self._chunks[-1] if self._chunks else None
            if chunk is None or len(chunk.seqs) >= CHUNK:
                chunk = _Chunk()
                self._chunks.append(chunk)
            take = spans[pos : pos + CHUNK - len(chunk.seqs)]
            pos += len(take)
            chunk.seqs.extend(s.seq for s in take)
            chunk.text += "\n".join([search_key(s) for s in take]) + "\n"

    def prune(self, first_resident: int) -> None:
        """Forget chunks whose spans are all older than the oldest resident span (retention)."""
        self._chunks = [c for c in self._chunks if c.seqs and c.seqs[-1] >= first_resident]

    def search(self, needle: str) -> list[int]:
        """Seqs of the indexed spans whose operation, component or a summary contains `needle`
        (case-insensitive, like `query.text_matcher`); `indexable(needle)` must hold."""
        folded = needle.casefold()
        out: list[int] = []
        if not folded:
            return out
        add = out.append
        for chunk in self._chunks:
            text, seqs = chunk.text, chunk.seqs
            find, count = text.find, text.count
            k = 0  # the span that `done` starts
            done = 0
            at = find(folded)
            while at >= 0:
                k += count("\n", done, at)
                add(seqs[k])
                done = find("\n", at) + 1
                k += 1
                at = find(folded, done)
        return out
