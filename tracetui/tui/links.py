"""Parent links of the spans a tree view shows, as arrays indexed by arrival number (seq).

The store links spans through `by_id`, a dict of a million string keys at scale; walking up
through it for every match of a filter costs most of a filter change. The view keeps its own
copy of the links as two `array('q')` indexed by `seq - base`:

* `parent`: the parent's seq, or -1 (a root, a cut cycle, or a parent that has not arrived as
  far as the view knows);
* `head`: a union-find over trees: following `head` ends at the tree's head, a span whose entry
  points at itself. A tree rooted in a span has that span as head; a tree waiting under a
  placeholder has the first of the placeholder's children as head (`under` names the
  placeholder). When the awaited parent lands, the old head is pointed at the parent's head, so
  a whole tree joins another one in one write.

So an ancestor walk and a per-tree count are index arithmetic, and a snapshot of the links is
two memory copies that a worker thread can read while the app thread goes on ingesting.
Filled batch by batch, in the view's order, so they show the forest as of the view's watermark.
Nothing here imports Textual.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from itertools import compress, islice, repeat
from typing import Final

from tracetui.model import CYCLE, Span
from tracetui.store import TraceStore

NO_LINK: Final = -1
SLICE: Final = 50_000
"""Matches walked between two checks for cancellation in `kept`."""

TreeKey = int | str
"""A tree's key as the view and the store use it: a root span's seq, or a placeholder's id."""


def _find(head: array[int], base: int, seq: int) -> int:
    """The head of `seq`'s tree (-1 for a seq the links do not hold)."""
    i = seq - base
    if i < 0 or i >= len(head):
        return NO_LINK
    nxt = head[i]
    while nxt != seq:
        if nxt < 0:
            return NO_LINK
        seq = nxt
        i = seq - base
        if i < 0:
            return NO_LINK
        nxt = head[i]
    return seq


class Snapshot:
    """A frozen copy of the links, for a worker thread (nothing here changes after creation)."""

    __slots__ = ("base", "end", "head", "merges", "parent", "under")

    def __init__(self, links: Links) -> None:
        self.base = links.base
        self.end = links.end
        self.parent = links.parent[:]
        self.head = links.head[:]
        self.under = dict(links.under)
        self.merges = links.merges


MATCH: Final = 1
CONTEXT: Final = 2
_ONLY_MATCH: Final = bytes(1 if i == MATCH else 0 for i in range(256))
_ONLY_CONTEXT: Final = bytes(1 if i == CONTEXT else 0 for i in range(256))


def marked(marks: bytearray, base: int, what: int | None = None) -> set[int]:
    """The seqs whose mark is `what` (MATCH or CONTEXT), or any mark when None."""
    if what is not None:
        marks = marks.translate(_ONLY_MATCH if what == MATCH else _ONLY_CONTEXT)
    return set(compress(range(base, base + len(marks)), marks))


class Kept:
    """What a filter keeps, worked out from a snapshot of the links (see `KeptBuilder`).

    Attributes:
        marks: per seq from `base`: MATCH, CONTEXT (a non-matching ancestor of a match), or 0.
        base: seq of `marks[0]` (the snapshot's base).
        by_head: kept spans per tree head (seq).
        counts: kept spans per tree key, as of the snapshot.
        end: spans with a smaller seq were considered.
        merges: the snapshot's merge count (trees that joined since make `counts` stale).
    """

    __slots__ = ("base", "by_head", "counts", "end", "marks", "merges")

    def __init__(
        self,
        marks: bytearray,
        base: int,
        by_head: dict[int, int],
        counts: dict[TreeKey, int],
        end: int,
        merges: int,
    ) -> None:
        self.marks = marks
        self.base = base
        self.by_head = by_head
        self.counts = counts
        self.end = end
        self.merges = merges

    @property
    def matched(self) -> set[int]:
        return marked(self.marks, self.base, MATCH)

    @property
    def context(self) -> set[int]:
        return marked(self.marks, self.base, CONTEXT)

    @property
    def keep(self) -> set[int]:
        return marked(self.marks, self.base)


class KeptBuilder:
    """Works out what a filter keeps, matches given in any order and in as many pieces as the
    caller likes (so a long pass can pause between pieces): each match is walked up, marking
    context until the first ancestor already marked, and counted once, with the context it
    added, in its tree. A match that an earlier walk marked as context just changes sides.

    Marks are a bytearray indexed like the links, which a walk reads and writes far faster than
    a hash set of a few hundred thousand seqs (and which the view keeps as it is). Reads only
    the links it is given (a `Snapshot` in a background pass).
    """

    def __init__(self, snap: Snapshot | Links) -> None:
        self.snap = snap
        self._marks = bytearray(snap.end - snap.base)
        self._by_head: dict[int, int] = {}

    def add(self, seqs: Iterable[int], *, ordered: bool = False) -> None:
        """Take in matching seqs (`ordered`: ascending); seqs the links do not hold are
        dropped."""
        snap = self.snap
        base, end = snap.base, snap.end
        seqs = seqs if isinstance(seqs, list) else list(seqs)
        if not seqs:
            return
        low, high = (seqs[0], seqs[-1]) if ordered else (min(seqs), max(seqs))
        if low < base or high >= end:
            seqs = [seq for seq in seqs if base <= seq < end]
        parent, head, marks = snap.parent, snap.head, self._marks
        by_head = self._by_head
        count = by_head.get
        if not base:
            self._add_from_zero(seqs)
            return
        # Each step up marks the ancestor, so even a loop in the links ends the walk.
        for seq in seqs:
            i = seq - base
            was = marks[i]
            if was == 1:
                continue
            marks[i] = 1
            if was:
                continue  # context of an earlier match, already counted: now it matches
            gained = 1
            p = parent[i]
            while p >= base:  # an ancestor below the links' start was evicted: stop there
                j = p - base
                if marks[j]:
                    break
                marks[j] = 2
                gained += 1
                p = parent[j]
            h = head[i]
            by_head[h] = count(h, 0) + gained

    def _add_from_zero(self, seqs: list[int]) -> None:
        """`add` for links that start at seq 0 (no retention): seqs are indices."""
        parent, head, marks = self.snap.parent, self.snap.head, self._marks
        by_head = self._by_head
        count = by_head.get
        for seq in seqs:
            was = marks[seq]
            if was == 1:
                continue
            marks[seq] = 1
            if was:
                continue
            gained = 1
            p = parent[seq]
            while p >= 0:
                if marks[p]:
                    break
                marks[p] = 2
                gained += 1
                p = parent[p]
            h = head[seq]
            by_head[h] = count(h, 0) + gained

    def result(self) -> Kept:
        """The marks, with per-tree counts resolved through the union-find."""
        snap = self.snap
        base, head, under = snap.base, snap.head, snap.under
        by_head: dict[int, int] = {}
        counts: dict[TreeKey, int] = {}
        get = counts.get
        size = len(head)
        for first, n in self._by_head.items():
            if first < 0:
                continue
            i = first - base
            if 0 <= i < size and head[i] == first:
                h = first
            else:
                h = _find(head, base, first)
                if h < 0:
                    continue
            by_head[h] = by_head.get(h, 0) + n
            key: TreeKey = under.get(h, h)
            counts[key] = get(key, 0) + n
        return Kept(self._marks, base, by_head, counts, snap.end, snap.merges)


def kept(
    snap: Snapshot | Links,
    matched: Iterable[int],
    cancelled: Callable[[], bool] | None = None,
) -> Kept | None:
    """Add the context above every match and count what is kept per tree (`KeptBuilder` in one
    go, or in slices checking `cancelled()` between them: None when it says so)."""
    builder = KeptBuilder(snap)
    if cancelled is None:
        builder.add(matched)
    else:
        it = iter(matched)
        while part := list(islice(it, SLICE)):
            if cancelled():
                return None
            builder.add(part)
    return builder.result()


class Links:
    """Parent links and tree membership of the spans with seqs in [base, end).

    Attributes:
        base: seq of entry 0 (raised as retention evicts the oldest spans).
        end: one past the last seq linked (the view's watermark).
        parent: parent seq per span, or -1.
        head: union-find over trees (see the module doc); -1 for seqs not resident.
        waiting: placeholder id → head of the tree waiting under it.
        under: head → the placeholder id its tree waits under.
        merges: bumped whenever trees join or the links are rebuilt.
    """

    def __init__(self) -> None:
        self.base = 0
        self.end = 0
        self.parent: array[int] = array("q")
        self.head: array[int] = array("q")
        self.waiting: dict[str, int] = {}
        self.under: dict[int, str] = {}
        self.merges = 0

    def reset(self, store: TraceStore) -> None:
        """Link every resident span from scratch (the store as it is now)."""
        self.base = self.end = store.first_seq
        self.parent = array("q")
        self.head = array("q")
        self.waiting = {}
        self.under = {}
        self.merges += 1
        self.add(store, list(store.events()), store.next_seq)

    def snapshot(self) -> Snapshot:
        """A copy a worker thread may read while this one goes on linking."""
        return Snapshot(self)

    def find(self, seq: int) -> int:
        """The head of a span's tree (-1 when the seq is not linked)."""
        h = _find(self.head, self.base, seq)
        if h >= 0 and seq != h:
            self.head[seq - self.base] = h  # path compression, one hop
        return h

    def key(self, seq: int) -> TreeKey | None:
        """The key of a span's tree as of `end` (None when the seq is not linked)."""
        h = self.find(seq)
        if h < 0:
            return None
        return self.under.get(h, h)

    def parent_of(self, seq: int) -> int:
        """The parent's seq as of `end`, or -1."""
        i = seq - self.base
        return self.parent[i] if 0 <= i < len(self.parent) else NO_LINK

    def holds(self, seq: int) -> bool:
        """Whether a seq is linked (inside [base, end) and resident when it was linked)."""
        i = seq - self.base
        return 0 <= i < len(self.head) and self.head[i] >= 0

    def add(self, store: TraceStore, fresh: list[Span], end: int) -> list[Span]:
        """Link a batch: `fresh` are the resident spans with seqs in [self.end, end), in arrival
        order. Returns the spans that landed while the view had children waiting for them."""
        old_end = self.end
        if end <= old_end:
            return []
        grow = end - old_end
        self.parent.extend(repeat(NO_LINK, grow))
        self.head.extend(repeat(NO_LINK, grow))
        self.end = end
        base = self.base
        parent, head = self.parent, self.head
        by_id = store.by_id
        is_cut = store.is_cut
        waiting, under = self.waiting, self.under
        adopted: list[Span] = []
        for span in fresh:
            pid = span.parent_id
            if pid is not None and not (span.flags & CYCLE and is_cut(span)):
                up = by_id.get(pid)
                if up is not None and up.seq < end:
                    parent[span.seq - base] = up.seq
            if waiting:
                tid = span.trace_id
                if tid in waiting and by_id.get(tid) is span:
                    adopted.append(span)
        for span in adopted:
            s = span.seq
            for kid in store.children(span):
                k = kid.seq
                if base <= k < old_end:
                    parent[k - base] = s
        get = store.get
        budget = end - base + 1
        for span in reversed(fresh):
            i = span.seq - base
            if head[i] >= 0:
                continue
            path = [i]
            j = i
            while True:
                p = parent[j]
                if p < 0:
                    top = get(j + base)
                    h = j + base
                    pid = top.parent_id if top is not None else None
                    if (
                        top is not None
                        and pid is not None
                        and not (top.flags & CYCLE and is_cut(top))
                    ):
                        known = waiting.get(pid)
                        if known is None:
                            waiting[pid] = h
                            under[h] = pid
                        else:
                            h = _find(head, base, known)
                            if h < 0:  # its tree went (retention): this one takes its place
                                h = j + base
                                waiting[pid] = h
                                under[h] = pid
                    break
                jp = p - base
                hp = head[jp]
                if hp >= 0:
                    h = _find(head, base, hp)
                    break
                path.append(jp)
                j = jp
                if len(path) > budget:  # a loop the store did not cut: never hang on it
                    h = i + base
                    break
            for k in path:
                head[k] = h
        for span in adopted:
            old = waiting.pop(span.trace_id, None)
            if old is None:
                continue
            under.pop(old, None)
            new = _find(head, base, span.seq)
            if new >= 0 and new != old:
                head[old - base] = new
                self.merges += 1
        return adopted

    def evicted(self, store: TraceStore) -> None:
        """Retention evicted whole trees: forget what lies below the store's oldest span and the
        placeholders whose trees went."""
        live = store.top_positions
        for pid in [p for p in self.waiting if p not in live]:
            self.under.pop(self.waiting.pop(pid), None)
        self.merges += 1
        first = min(store.first_seq, self.end)
        drop = first - self.base
        if drop > 0 and (drop >= 65_536 or drop * 4 >= len(self.head)):
            del self.parent[:drop]
            del self.head[:drop]
            self.base = first
