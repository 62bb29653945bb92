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
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice, repeat
from operator import sub
from typing import Final

from tracetui.model import CYCLE, Span
from tracetui.store import TraceStore

NO_LINK: Final = -1
SLICE: Final = 50_000
"""Most elements one C-level pass handles at once in `kept` (a worker holds the GIL meanwhile)."""

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


class Kept:
    """What a filter keeps, worked out from a snapshot of the links (see `kept`).

    Attributes:
        matched: seqs of spans that match.
        keep: matched plus context (non-matching ancestors of a match).
        context: the ancestors kept only for context.
        by_head: kept spans per tree head (seq).
        counts: kept spans per tree key, as of the snapshot.
        end: spans with a smaller seq were considered.
        merges: the snapshot's merge count (trees that joined since make `counts` stale).
    """

    __slots__ = ("by_head", "context", "counts", "end", "keep", "matched", "merges")

    def __init__(
        self,
        matched: set[int],
        keep: set[int],
        context: set[int],
        by_head: Counter[int],
        counts: dict[TreeKey, int],
        end: int,
        merges: int,
    ) -> None:
        self.matched = matched
        self.keep = keep
        self.context = context
        self.by_head = by_head
        self.counts = counts
        self.end = end
        self.merges = merges


def kept(
    snap: Snapshot | Links,
    matched: Iterable[int],
    cancelled: Callable[[], bool] | None = None,
) -> Kept | None:
    """Add the context above every match and count what is kept per tree.

    Safe in a worker thread over a `Snapshot`; None when `cancelled()` says so on the way.
    Seqs outside the links are dropped.
    """
    base, end = snap.base, snap.end
    parent, head = snap.parent, snap.head
    if not isinstance(matched, set):
        matched = set(matched)
    if matched and (min(matched) < base or max(matched) >= end):
        matched = {s for s in matched if base <= s < end}
    keep = set(matched)
    context: set[int] = set()
    add_keep, add_context = keep.add, context.add
    budget = end - base + 1
    for n, seq in enumerate(matched):
        if cancelled is not None and not n % 16384 and cancelled():
            return None
        p = parent[seq - base]
        steps = budget
        while p >= 0 and p not in keep and steps:
            add_keep(p)
            add_context(p)
            p = parent[p - base]
            steps -= 1
    by_first: Counter[int] = Counter()
    it = iter(keep)
    while True:
        part = list(islice(it, SLICE))
        if not part:
            break
        if base:
            by_first.update(map(head.__getitem__, map(sub, part, repeat(base))))
        else:
            by_first.update(map(head.__getitem__, part))
        if cancelled is not None and cancelled():
            return None
    by_head: Counter[int] = Counter()
    for first, n in by_first.items():
        h = _find(head, base, first) if first >= 0 else NO_LINK
        if h >= 0:
            by_head[h] += n
    under = snap.under
    counts: dict[TreeKey, int] = {}
    for h, n in by_head.items():
        key: TreeKey = under.get(h, h)
        counts[key] = counts.get(key, 0) + n
    return Kept(matched, keep, context, by_head, counts, end, snap.merges)


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
                p = by_id.get(pid)
                if p is not None and p.seq < end:
                    parent[span.seq - base] = p.seq
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
                    if pid is not None and not (top.flags & CYCLE and is_cut(top)):  # type: ignore[union-attr]
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
