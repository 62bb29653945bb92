"""A search index for the monitor's text search: case-folded search text of every span.

`query.text_matcher` decodes each line's summaries to test it, which costs seconds over a million
spans. The index keeps, per span, the case-folded operation, component and summaries — the exact
fields and folding the matcher uses — followed by `\x01` and the span's seq, one span per line,
joined into large strings (one per chunk of spans). A plain-text search is then one regular
expression `findall` per chunk — the needle, the rest of its line, the seq — that runs in C and
returns the seqs of the matching spans. Fields are separated by NUL (a newline or `\x01` inside a
field becomes NUL too), so a needle holding none of these can only match inside one field and
hits are exact. (A needle with such characters, and regular expressions, use the matcher.)

Built on the app's thread, incrementally: spans are added in arrival order as they are ingested.
The strings are immutable, so a search may run over a `snapshot()` while the index grows.
Nothing here imports Textual.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    if "\n" in key:
        key = key.replace("\n", "\x00")
    if "\x01" in key:
        key = key.replace("\x01", "\x00")
    return key


def indexable(text: str) -> bool:
    """Whether a plain search for `text` can use the index (needles with separators cannot)."""
    folded = text.casefold()
    return bool(text) and not any(c in folded for c in "\x00\x01\n")


class _Chunk:
    """Search lines of consecutive spans (`key \x01 seq`), and the range of seqs they cover."""

    __slots__ = ("count", "last", "text")

    def __init__(self) -> None:
        self.text = ""
        self.count = 0
        self.last = -1


class SearchIndex:
    """Case-folded search keys of spans in arrival order, searchable by substring.

    Attributes:
        next_seq: spans with a smaller seq are indexed (or were evicted before they could be).
    """

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = []
        self.next_seq = 0

    def __len__(self) -> int:
        return sum(c.count for c in self._chunks)

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
            if chunk is None or chunk.count >= CHUNK:
                chunk = _Chunk()
                self._chunks.append(chunk)
            take = spans[pos : pos + CHUNK - chunk.count]
            pos += len(take)
            chunk.text += "".join([f"{search_key(s)}\x01{s.seq}\n" for s in take])
            chunk.count += len(take)
            chunk.last = take[-1].seq

    def prune(self, first_resident: int) -> None:
        """Forget chunks whose spans are all older than the oldest resident span (retention)."""
        self._chunks = [c for c in self._chunks if c.count and c.last >= first_resident]

    def snapshot(self) -> list[str]:
        """The chunks' texts as they are now, to search later or elsewhere (`search_chunks`)."""
        return [c.text for c in self._chunks]

    def search(self, needle: str) -> list[int]:
        """Seqs of the indexed spans whose operation, component or a summary contains `needle`
        (case-insensitive, like `query.text_matcher`), in arrival order; `indexable(needle)`
        must hold."""
        found = search_chunks(self.snapshot(), needle)
        assert found is not None
        return found


def search_pattern(needle: str) -> re.Pattern[str]:
    """The expression that finds a needle in search lines and captures the line's seq."""
    return re.compile(re.escape(needle.casefold()) + r"[^\x01\n]*\x01(\d+)")


def search_chunks(
    texts: list[str], needle: str, cancelled: Callable[[], bool] | None = None
) -> list[int] | None:
    """`SearchIndex.search` over the texts of a snapshot; None when `cancelled()` says so
    between two chunks."""
    out: list[int] = []
    if not needle:
        return out
    findall = search_pattern(needle).findall
    for text in texts:
        if cancelled is not None and cancelled():
            return None
        out.extend(map(int, findall(text)))
    return out
