"""The trace store: the single source of truth every view reads.

Spans arrive in any order (an emitter writes a span when it *ends*, so children usually come first).
A child whose parent has not arrived waits under a placeholder at the top level, at the position
where its tree first appeared; when the parent lands it takes the placeholder's place. Duplicate ids
are kept and flagged; a parent link that would close a cycle (or a span that is its own parent) is
cut and flagged, so every traversal terminates. Nothing here recurses over depth.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from operator import attrgetter
from typing import Final

import msgspec

from tracetui.model import CYCLE, DUPLICATE, Rejected, Span
from tracetui.spool import shared_spool

FACETS: Final = ("layer", "status", "agent", "label", "component", "operation")

_FACET_GETTERS: Final = tuple(
    (name, attrgetter(name)) for name in ("layer", "status", "agent", "component", "operation")
)

TopEntry = Span | str
"""A top-level entry: a root span, or the id of a parent that has not arrived (a placeholder)."""


class Notice(msgspec.Struct, frozen=True, gc=False):
    """Something a source or framer reports that is not a lost line (rotation, a NUL run …)."""

    origin: int
    line_no: int
    text: str


class Change(msgspec.Struct, gc=False):
    """What one ingest batch changed, for views that update incrementally.

    Attributes:
        new: spans added, in arrival order.
        adopted: spans that landed while children were waiting for them (placeholders resolved).
        rejected: lines rejected in this batch.
        evicted: spans evicted by retention.
        top_changed: top-level entries were added, replaced or removed.
        facets: names of facets whose counts changed.
    """

    new: list[Span] = msgspec.field(default_factory=list)
    adopted: list[Span] = msgspec.field(default_factory=list)
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    evicted: int = 0
    top_changed: bool = False
    facets: set[str] = msgspec.field(default_factory=set)


def _sort_key(span: Span) -> tuple[float, int]:
    ts = span.ts
    return (ts if isinstance(ts, float) else math.inf, span.seq)


class TraceStore:
    """Spans by id, parent → children, facets and top level; append-only but for retention."""

    def __init__(self, max_events: int | None = None, spool: bool = False) -> None:
        """Args:
        max_events: keep at most this many spans, evicting the oldest whole trees.
        spool: move each span's raw line to the process's spool file (see `tracetui.spool`)
            one batch after it arrives, so a large one-shot load holds only the index in memory.
            The spool is not reclaimed on eviction: meant for loads, not endless live streams.
        """
        self.max_events = max_events
        self.spool = spool
        self._unspooled: list[Span] = []
        self.origins: list[str] = []
        self._origin_index: dict[str, int] = {}
        self._events: list[Span | None] = []
        self._first_seq = 0  # seq of _events[0]
        self._live = 0
        self.by_id: dict[str, Span] = {}
        self.duplicates: dict[str, list[Span]] = {}
        self._children: dict[str, list[Span]] = {}
        self._sorted: set[str] = set()
        self._cut: set[int] = set()
        self._top: list[TopEntry | None] = []
        self._top_pos: dict[int | str, int] = {}
        self._top_holes = 0
        self.rejected: list[Rejected] = []
        self.notices: list[Notice] = []
        self.evicted = 0
        self._facets: dict[str, Counter[str | None]] | None = None

    # ---- origins -------------------------------------------------------------------------------

    def origin(self, name: str) -> int:
        """The index of an origin (file path, `unix:/path peer pid 42`, `stdin` …), added if new."""
        idx = self._origin_index.get(name)
        if idx is None:
            idx = self._origin_index[name] = len(self.origins)
            self.origins.append(name)
        return idx

    def where(self, origin: int, line_no: int) -> str:
        """`origin:line` for messages."""
        name = self.origins[origin] if 0 <= origin < len(self.origins) else f"#{origin}"
        return f"{name}:{line_no}"

    # ---- ingest --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live

    def ingest(self, spans: Iterable[Span], rejected: Iterable[Rejected] = ()) -> Change:
        """Add a batch of spans (any order) and rejected lines; return what changed."""
        change = Change()
        if self._unspooled:
            self.spool_lines()
        change.rejected.extend(rejected)
        self.rejected.extend(change.rejected)
        new = change.new
        new.extend(spans)
        first = self._first_seq + len(self._events)
        self._events.extend(new)
        self._live += len(new)
        add = self._add
        by_id = self.by_id
        top_pos = self._top_pos
        children = self._children
        sorted_keys = self._sorted
        top = self._top
        adopted = change.adopted.append
        share_id = self._share_id
        claim = by_id.setdefault
        top_changed = False
        for seq, span in enumerate(new, first):
            span.seq = seq
            tid = span.trace_id
            pid = span.parent_id
            if pid == tid or claim(tid, span) is not span:
                add(span, change)  # its own parent, or a duplicate (then `by_id` is unchanged)
                continue
            # From here on `by_id[tid]` is this span.
            if pid is None:  # a root, inlined
                slot = top_pos.pop(tid, None)
                if slot is None:
                    top_pos[seq] = len(top)
                    top.append(span)
                else:
                    share_id(span)
                    adopted(span)
                    top[slot] = span
                    top_pos[seq] = slot
                top_changed = True
                continue
            slot = top_pos.get(tid)
            if slot is not None:
                if pid in by_id:
                    add(span, change)  # a waited-for span joins a present parent: check loops
                    continue
                # Inlined: a waited-for span lands while its own parent is still missing.
                del top_pos[tid]
                share_id(span)
                adopted(span)
                siblings = children.get(pid)
                if siblings is None:
                    children[pid] = [span]
                else:
                    siblings.append(span)
                    if sorted_keys:
                        sorted_keys.discard(pid)
                if pid in top_pos:
                    self._drop_slot(slot)
                else:
                    top[slot] = pid
                    top_pos[pid] = slot
                top_changed = True
                continue
            # The common case, inlined: a new id that nobody waits for, with a parent id.
            parent = by_id.get(pid)
            if parent is not None:
                span.parent_id = pid = parent.trace_id
                corr = parent.correlation_id
                if corr is not None and span.parent_correlation_id == corr:
                    span.parent_correlation_id = corr
            siblings = children.get(pid)
            if siblings is None:
                children[pid] = [span]
            else:
                siblings.append(span)
                if sorted_keys:
                    sorted_keys.discard(pid)
            if parent is None and pid not in top_pos:
                top_pos[pid] = len(top)
                top.append(pid)
                top_changed = True
        if top_changed:
            change.top_changed = True
        if self.spool:
            self._unspooled = new
        if new:
            if self._facets is not None:
                self._count(new, 1)
            change.facets.update(FACETS)
        if self.max_events is not None and self._live > self.max_events:
            change.evicted = self._evict(self._live - self.max_events)
            change.top_changed = change.top_changed or change.evicted > 0
        return change

    def _add(self, span: Span, change: Change) -> None:
        tid = span.trace_id
        pid = span.parent_id
        by_id = self.by_id
        first = by_id.get(tid)
        if first is None or first is span:  # (`ingest` may have claimed the id already)
            by_id[tid] = span
            slot = self._top_pos.pop(tid, None)
            if slot is not None:
                self._share_id(span)
        else:
            slot = None
            first.flags |= DUPLICATE
            span.flags |= DUPLICATE
            self.duplicates.setdefault(tid, [first]).append(span)
        if slot is not None:
            change.adopted.append(span)
        as_root = pid is None
        if pid is not None and pid == tid:
            span.flags |= CYCLE
            self._cut.add(span.seq)
            as_root = True
        elif pid is not None and slot is not None and pid in self.by_id:
            loop = self._loop_through(span)
            if loop:
                for member in loop:
                    member.flags |= CYCLE
                self._cut.add(span.seq)
                as_root = True
        if as_root:
            if slot is not None:
                self._top[slot] = span
                self._top_pos[span.seq] = slot
            else:
                self._append_top(span.seq, span)
            change.top_changed = True
            return
        assert pid is not None
        parent = by_id.get(pid)
        if parent is not None:
            span.parent_id = pid = parent.trace_id  # one string object per id, shared
            corr = parent.correlation_id
            if corr is not None and span.parent_correlation_id == corr:
                span.parent_correlation_id = corr
        siblings = self._children.get(pid)
        if siblings is None:
            self._children[pid] = [span]
        else:
            siblings.append(span)
            self._sorted.discard(pid)
        if parent is not None or pid in self._top_pos:
            if slot is not None:
                self._drop_slot(slot)
                change.top_changed = True
        else:
            if slot is not None:
                self._top[slot] = pid
                self._top_pos[pid] = slot
            else:
                self._append_top(pid, pid)
            change.top_changed = True

    def spool_lines(self) -> None:
        """Spool the raw lines of the last batch now (ingest does it one batch late, so that
        whoever reads a `Change` still finds the new lines in memory)."""
        batch = [s for s in self._unspooled if s.raw_bytes]
        self._unspooled = []
        if not batch:
            return
        refs = shared_spool().append([s.raw_bytes for s in batch])
        for span, ref in zip(batch, refs, strict=True):
            span.raw_ref = ref
            span.raw_bytes = b""

    def _share_id(self, span: Span) -> None:
        """Point waiting children (and the children index) at the parent's own id string, and
        their `parent_correlation_id` at the parent's `correlation_id` when they are equal.

        Ids are not interned (that costs time and an intern-table entry per id); instead every
        reference to an id resolves to the string object of the span that carries it.
        """
        tid = span.trace_id
        children = self._children
        kids = children.pop(tid, None)
        if kids is None:
            return
        children[tid] = kids
        corr = span.correlation_id
        for kid in kids:
            kid.parent_id = tid
            if corr is not None and kid.parent_correlation_id == corr:
                kid.parent_correlation_id = corr

    def _loop_through(self, span: Span) -> list[Span]:
        """If linking `span` under its parent closes a loop, the spans on it; else []."""
        path = [span]
        node = self.by_id.get(span.parent_id or "")
        budget = self._live + 1
        while node is not None and budget > 0:
            if node is span:
                return path
            path.append(node)
            if node.seq in self._cut or node.parent_id is None:
                return []
            node = self.by_id.get(node.parent_id)
            budget -= 1
        return []

    def _append_top(self, key: int | str, entry: TopEntry) -> None:
        self._top_pos[key] = len(self._top)
        self._top.append(entry)

    def _drop_slot(self, slot: int) -> None:
        self._top[slot] = None
        self._top_holes += 1
        if self._top_holes > 1024 and self._top_holes * 2 > len(self._top):
            self._compact_top()

    def _compact_top(self) -> None:
        # In place: ingest holds local references to both containers.
        live: list[TopEntry] = [e for e in self._top if e is not None]
        self._top[:] = live
        pos = self._top_pos
        pos.clear()
        pos.update(((e if isinstance(e, str) else e.seq), i) for i, e in enumerate(live))
        self._top_holes = 0

    def _count(self, spans: list[Span], sign: int) -> None:
        """Add (sign 1) or remove (sign -1) spans from the facet counts, a whole batch at once."""
        f = self.facets
        assert f is not None
        for name, getter in _FACET_GETTERS:
            if sign > 0:
                f[name].update(map(getter, spans))
            else:
                f[name].subtract(map(getter, spans))
        labels = chain.from_iterable(s.labels for s in spans)
        if sign > 0:
            f["label"].update(labels)
        else:
            f["label"].subtract(labels)
            for counter in f.values():
                for key in [k for k, v in counter.items() if v <= 0]:
                    del counter[key]

    @property
    def facets(self) -> dict[str, Counter[str | None]]:
        """Live counts per facet value: layer, status, agent, label (`k=v`), component, operation.

        Counted on first use (one pass over the resident spans), then kept up to date by every
        ingest and eviction; one-shot commands that never ask pay nothing for them.
        """
        if self._facets is None:
            self._facets = {name: Counter() for name in FACETS}
            self._count(list(self.events()), 1)
        return self._facets

    # ---- retention -----------------------------------------------------------------------------

    def _evict(self, excess: int) -> int:
        """Evict whole top-level trees, oldest first, until `excess` spans are gone."""
        removed: list[Span] = []
        for slot, entry in enumerate(self._top):
            if len(removed) >= excess:
                break
            if entry is None:
                continue
            members = [n for _, n in self.subtree(entry) if isinstance(n, Span)]
            for node in members:
                self._remove(node)
            removed.extend(members)
            if isinstance(entry, str):
                self._children.pop(entry, None)
                self._top_pos.pop(entry, None)
            else:
                self._top_pos.pop(entry.seq, None)
            self._top[slot] = None
            self._top_holes += 1
        gone = len(removed)
        if self._facets is not None:
            self._count(removed, -1)
        self.evicted += gone
        if self._top_holes * 2 > len(self._top):
            self._compact_top()
        self._trim_events()
        return gone

    def _remove(self, span: Span) -> None:
        tid = span.trace_id
        dups = self.duplicates.get(tid)
        if dups is not None:
            dups.remove(span)
            if len(dups) <= 1:
                del self.duplicates[tid]
        if self.by_id.get(tid) is span:
            del self.by_id[tid]
            self._children.pop(tid, None)
            if dups:
                self.by_id[tid] = dups[0]  # the next span with this id takes its place
        self._cut.discard(span.seq)
        self._events[span.seq - self._first_seq] = None
        self._live -= 1

    def _trim_events(self) -> None:
        events = self._events
        drop = 0
        while drop < len(events) and events[drop] is None:
            drop += 1
        if drop:
            del events[:drop]
            self._first_seq += drop

    # ---- reading -------------------------------------------------------------------------------

    def events(self) -> Iterator[Span]:
        """Resident spans in arrival order."""
        return filter(None, self._events)  # evicted slots are None; a span is always truthy

    @property
    def next_seq(self) -> int:
        """The seq the next ingested span will get (arrival numbers never repeat)."""
        return self._first_seq + len(self._events)

    @property
    def first_seq(self) -> int:
        """No resident span has a seq below this (eviction raises it)."""
        return self._first_seq

    def get(self, seq: int) -> Span | None:
        """The span with this arrival number, if resident."""
        idx = seq - self._first_seq
        return self._events[idx] if 0 <= idx < len(self._events) else None

    def top(self) -> Iterator[TopEntry]:
        """Top-level entries in the order their trees first appeared."""
        return (e for e in self._top if e is not None)

    @property
    def top_positions(self) -> Mapping[int | str, int]:
        """Top-level key (a root span's seq, or a placeholder's id) → its slot position.

        Positions follow the order of `top()`; compaction renumbers them but keeps the order.
        """
        return self._top_pos

    def top_count(self) -> int:
        """How many top-level entries there are."""
        return len(self._top) - self._top_holes

    def children(self, node: TopEntry) -> list[Span]:
        """Children of a span (or of a placeholder id), ordered by start time then arrival."""
        if isinstance(node, str):
            key = node
        else:
            key = node.trace_id
            if (node.flags & DUPLICATE or self.evicted) and self.by_id.get(key) is not node:
                return []  # a later duplicate (its id's children hang under the first) or evicted
        kids = self._children.get(key)
        if not kids:
            return []
        if len(kids) > 1 and key not in self._sorted:
            kids.sort(key=_sort_key)
            self._sorted.add(key)
        return kids

    def has_children(self, node: TopEntry) -> bool:
        """Whether `children(node)` is non-empty (without sorting)."""
        key = node if isinstance(node, str) else node.trace_id
        if not isinstance(node, str) and self.by_id.get(key) is not node:
            return False
        return bool(self._children.get(key))

    def parent(self, span: Span) -> Span | None:
        """The span's parent as linked in the tree (None for roots, orphans and cut cycles)."""
        if span.parent_id is None or span.seq in self._cut:
            return None
        return self.by_id.get(span.parent_id)

    def is_cut(self, span: Span) -> bool:
        """True when the span's parent link was cut to break a cycle (or it is its own parent)."""
        return span.seq in self._cut

    def parent_missing(self, span: Span) -> bool:
        """True when the span names a parent that has not arrived."""
        return span.parent_id is not None and span.parent_id not in self.by_id

    def ancestors(self, span: Span) -> list[Span]:
        """From the span's parent up to its root (nearest first)."""
        out: list[Span] = []
        node = self.parent(span)
        budget = self._live
        while node is not None and budget > 0:
            out.append(node)
            node = self.parent(node)
            budget -= 1
        return out

    def top_of(self, span: Span) -> TopEntry:
        """The top-level entry whose tree holds `span` (a span, or a placeholder id)."""
        chain = self.ancestors(span)
        root = chain[-1] if chain else span
        if root.parent_id is None or root.seq in self._cut or root.parent_id in self.by_id:
            return root
        return root.parent_id

    def subtree(self, node: TopEntry, depth: int = 0) -> Iterator[tuple[int, TopEntry]]:
        """Pre-order walk of `node` and its descendants as (depth, node); iterative."""
        stack: list[tuple[int, TopEntry]] = [(depth, node)]
        while stack:
            d, n = stack.pop()
            yield d, n
            kids = self.children(n)
            if kids:
                stack.extend((d + 1, k) for k in reversed(kids))

    def walk(self) -> Iterator[tuple[int, TopEntry]]:
        """The whole forest, pre-order, as (depth, node)."""
        for entry in self.top():
            yield from self.subtree(entry)
