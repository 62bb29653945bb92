"""Shared helpers for the core tests.

Tests build trace lines as dicts or raw bytes, write them to real files, load them through the real
loader (framing → decoding → store) and render them with the same functions `tracetui tree` uses.
The helpers live on a `TraceKit`, handed out by the `kit` fixture of `conftest.py`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from tracetui.decode import LineDecoder
from tracetui.formatting import json_forest, tree_lines
from tracetui.load import load_paths
from tracetui.model import DUPLICATE, Rejected, Span
from tracetui.query import Filter, Selection, select
from tracetui.store import TopEntry, TraceStore

Line = bytes | str | dict[str, Any]


class Loaded(msgspec.Struct):
    """A store loaded from files, with every bad line the loader reported (origin name, line)."""

    store: TraceStore
    rejected: list[tuple[str, Rejected]]

    def spans(self) -> list[Span]:
        """Resident spans in arrival order."""
        return list(self.store.events())

    def by_id(self) -> dict[str, Span]:
        """Resident spans by trace_id (first of duplicates)."""
        return {s.trace_id: s for s in reversed(self.spans())}


_VISIBLE = (
    "trace_id",
    "parent_id",
    "layer",
    "status",
    "operation",
    "component",
    "duration_ms",
    "ts",
    "agent",
    "run_id",
    "labels",
    "correlation_id",
    "parent_correlation_id",
    "flags",
    "issues",
)


def _visible(span: Span) -> str:
    """The attributes views read, as comparable text (NaN equals NaN)."""
    values = [getattr(span, name) for name in _VISIBLE]
    if span.trace_id.startswith("<no trace_id"):
        values[0] = "<no trace_id>"  # the placeholder names the line
    return repr(values)


@contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Raise the recursion limit for stdlib `json.loads` of deeply nested output."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


class TraceKit:
    """Builders, loaders and renderers used by the core tests."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    # ---- building lines ------------------------------------------------------------------------

    @staticmethod
    def event(trace_id: str, parent_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """A trace event dict with the given ids and extra fields."""
        return {"trace_id": trace_id, "parent_id": parent_id, **fields}

    @staticmethod
    def encode(line: Line) -> bytes:
        """A line as bytes (dicts as compact JSON with UTF-8 kept as is)."""
        if isinstance(line, bytes):
            return line
        if isinstance(line, str):
            return line.encode()
        return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()

    def write(self, name: str, lines: Iterable[Line], *, ending: bytes = b"\n") -> Path:
        """Write lines to a real file in tmp_path (each line followed by `ending`)."""
        path = self.tmp_path / name
        path.write_bytes(b"".join(self.encode(ln) + ending for ln in lines))
        return path

    # ---- loading -------------------------------------------------------------------------------

    @staticmethod
    def load(*paths: Path | str, max_events: int | None = None) -> Loaded:
        """Load files with the real loader, collecting reported bad lines."""
        store = TraceStore(max_events=max_events)
        seen: list[tuple[str, Rejected]] = []
        load_paths(store, [str(p) for p in paths], lambda origin, rej: seen.append((origin, rej)))
        return Loaded(store, seen)

    @staticmethod
    def decode(lines: Sequence[Line], first_line_no: int = 1) -> tuple[list[Span], list[Rejected]]:
        """Decode lines directly (no framing)."""
        return LineDecoder().decode([TraceKit.encode(ln) for ln in lines], first_line_no, 0)

    @staticmethod
    def decode_one(line: Line) -> Span:
        """Decode one line that must become a span.

        The line is also decoded three times in one batch (the path files take) and every
        indexed attribute must come out the same as when it is decoded alone (the path a live
        tail may take).
        """
        spans, rejected = TraceKit.decode([line])
        assert not rejected, rejected
        assert len(spans) == 1
        batch, rejected = TraceKit.decode([line] * 3)
        assert not rejected, rejected
        assert [_visible(s) for s in batch] == [_visible(spans[0])] * 3
        return spans[0]

    @staticmethod
    def store_of(events: Sequence[Line], batches: Sequence[int] | None = None) -> TraceStore:
        """A store fed `events` (decoded as lines 1..n) in batches of the given sizes."""
        spans, rejected = TraceKit.decode(events)
        assert not rejected, rejected
        store = TraceStore()
        sizes = list(batches) if batches else [len(spans)]
        pos = 0
        for size in sizes:
            store.ingest(spans[pos : pos + size])
            pos += size
        if pos < len(spans):
            store.ingest(spans[pos:])
        return store

    # ---- rendering -----------------------------------------------------------------------------

    @staticmethod
    def selection(
        store: TraceStore,
        flt: Filter | None = None,
        trace_id: str | None = None,
        last: int | None = None,
    ) -> Selection:
        """`query.select` with an empty filter by default."""
        return select(store, flt or Filter(), trace_id=trace_id, last=last)

    @staticmethod
    def text(
        store: TraceStore,
        flt: Filter | None = None,
        trace_id: str | None = None,
        last: int | None = None,
    ) -> list[str]:
        """The console lines `tracetui tree` prints."""
        sel = TraceKit.selection(store, flt, trace_id, last)
        return list(tree_lines(store, sel))

    @staticmethod
    def json_bytes(
        store: TraceStore,
        flt: Filter | None = None,
        trace_id: str | None = None,
        last: int | None = None,
    ) -> bytes:
        """The bytes `tracetui tree --format json` prints (without the final newline)."""
        sel = TraceKit.selection(store, flt, trace_id, last)
        return b"".join(json_forest(store, sel))

    @staticmethod
    def json(
        store: TraceStore,
        flt: Filter | None = None,
        trace_id: str | None = None,
        last: int | None = None,
    ) -> list[dict[str, Any]]:
        """`tracetui tree --format json` output, parsed with the stdlib."""
        data = TraceKit.json_bytes(store, flt, trace_id, last)
        with recursion_limit(60_000):
            value = json.loads(data)
        assert isinstance(value, list)
        return value

    # ---- shapes --------------------------------------------------------------------------------

    @staticmethod
    def forest_shape(store: TraceStore) -> tuple[Any, ...]:
        """A canonical nested structure of the forest, independent of arrival order.

        A span is `(trace_id, duplicate?, missing parent id or None, children)`, a placeholder is
        `("<missing>", parent id, children)`; children and top entries are sorted. Built
        iteratively (post-order) so deep chains work.
        """

        def label(node: TopEntry) -> tuple[Any, ...]:
            if isinstance(node, str):
                return ("<missing>", node)
            missing = node.parent_id if store.parent_missing(node) else None
            return (node.trace_id, bool(node.flags & DUPLICATE), missing)

        built: dict[int, tuple[Any, ...]] = {}
        results: list[tuple[Any, ...]] = []
        for entry in store.top():
            stack: list[tuple[TopEntry, bool]] = [(entry, False)]
            while stack:
                node, done = stack.pop()
                kids = store.children(node)
                if done:
                    shaped = tuple(sorted((built.pop(id(k)) for k in kids), key=repr))
                    built[id(node)] = (*label(node), shaped)
                    continue
                stack.append((node, True))
                stack.extend((k, False) for k in kids)
            results.append(built.pop(id(entry)))
        return tuple(sorted(results, key=repr))

    @staticmethod
    def json_ids(forest: list[dict[str, Any]]) -> list[str]:
        """Every trace_id in parsed JSON output, pre-order (iterative)."""
        out: list[str] = []
        stack = list(reversed(forest))
        while stack:
            node = stack.pop()
            out.append(node["trace_id"])
            stack.extend(reversed(node["children"]))
        return out
