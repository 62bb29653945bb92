"""What the span tree shows, as a flat list of rows, kept up to date incrementally.

The store holds the forest; this module decides which nodes are visible (filter, expansion) and
flattens them into rows the virtual tree widget can index by number. Rows are kept per top-level
tree ("blocks"), and a prefix-sum array of the trees' row counts maps a row number to its block.

Blocks are built lazily, only for trees that are drawn or searched: a tree's row count comes from
a per-tree count of the spans it shows (all spans, or those a filter keeps), maintained batch by
batch and computed in one pass when the filter changes. A tree whose row count is not such a count
(some node in it was expanded or collapsed by hand) is the exception: its block is built to count
it. So an ingest batch costs work in proportion to the batch, and a filter change in proportion to
what it keeps, never to every row of the forest.

Which tree a span belongs to and who its parent is come from the view's own `Links` (arrays
indexed by seq, see `links`), and what a filter keeps is a bytearray of marks indexed the same
way (match, context, hidden): a filter change over a million spans walks arrays, not dicts and
sets, and can be worked out from a snapshot of the links in a background pass (`Kept`).

The view lags the store by design while the monitor is paused: it shows the forest as of the last
batch it was given (`apply`). Spans beyond that watermark are left out of the links, blocks and
counts, so rows built late still match the counts taken earlier. Nothing here imports Textual, so
it is tested and benchmarked on its own.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import repeat
from typing import Any, Final, Protocol

from tracetui.model import Span
from tracetui.query import Filter, Selection, matching_seqs
from tracetui.store import Change, TopEntry, TraceStore
from tracetui.tui.links import CONTEXT, MATCH, Kept, Links, kept, marked

NodeKey = int | str | tuple[str, ...]
"""A span's `seq`, a placeholder's awaited parent id, or a group heading's key."""

Node = Any
"""A row's node: a `Span`, a placeholder id (`str`), or a `Group` heading."""

Row = tuple[int, Node]
"""(depth, node) — one line of the tree."""

SEVERITIES: Final = ("info", "warning", "error")
SEVERITY_RANK: Final = {name: i for i, name in enumerate(SEVERITIES)}


class Findings(Protocol):
    """What the view needs from the contract checker."""

    def findings_for(self, seq: int) -> list[Any]: ...


class Group:
    """A heading row of the grouped view: a layer, or an operation within a layer."""

    __slots__ = ("count", "key", "label", "layer")

    def __init__(self, key: tuple[str, ...], label: str, count: int, layer: str) -> None:
        self.key = key
        self.label = label
        self.count = count
        self.layer = layer


def key_of(node: Any) -> Any:
    """The stable key of a node (span seq, placeholder id, or group key)."""
    if isinstance(node, Span):
        return node.seq
    if isinstance(node, Group):
        return node.key
    return node


def worst_severity(findings: Iterable[Any]) -> str | None:
    """The highest severity among findings, or None."""
    best = -1
    for f in findings:
        best = max(best, SEVERITY_RANK.get(getattr(f, "severity", "info"), 0))
    return SEVERITIES[best] if best >= 0 else None


class TreeView:
    """Visible rows of the forest under a filter, with per-node expansion.

    Attributes:
        store: the store read.
        filter: the span filter from the filter panel.
        violations_only: show only spans with findings (and their ancestors).
        min_severity: with `violations_only`, the least severity that counts.
        default_open: whether nodes are expanded unless toggled.
        toggled: nodes whose expansion differs from `default_open`.
        findings: the checker, when contracts are loaded.
        links: parent links and tree membership as of the watermark.
    """

    def __init__(self, store: TraceStore, findings: Findings | None = None) -> None:
        self.store = store
        self.findings = findings
        self.filter = Filter()
        self.violations_only = False
        self.min_severity = "info"
        self.default_open = True
        self.toggled: set[NodeKey] = set()
        self._marks: bytearray | None = None
        """Under a filter, per seq from `_marks_base`: MATCH, CONTEXT (an ancestor kept for a
        match below it) or 0 (hidden); None without a filter. Kept as long as the links."""
        self._marks_base = 0
        self._pred: Callable[[Span], bool] | None = None
        self.links = Links()
        """Parent links and tree membership as of the watermark (arrays indexed by seq)."""
        self._evicted = store.evicted
        """The store's eviction count when the view last took retention into account."""
        self._seen = 0
        """The watermark: spans with a smaller seq are part of the view (see the module doc)."""
        self._all_counts: dict[NodeKey, int] = {}
        """Spans per top-level tree (all of them, as of the watermark)."""
        self._counts = self._all_counts
        """Spans per top-level tree that the filter keeps (`_all_counts` without a filter)."""
        self._recount = False
        self._tops: list[TopEntry | None] = []
        """Visible top-level entries; None marks a tree that joined another one (a hole)."""
        self._top_index: dict[NodeKey, int] = {}
        self._all_blocks: dict[NodeKey, list[Row]] = {}
        """Rows of the trees built so far without a filter; kept (and invalidated) while a filter
        is on, so that clearing the filter rebuilds nothing that did not change."""
        self._blocks = self._all_blocks
        self._special: set[NodeKey] | None = None
        """Trees holding a toggled node, whose row count needs their block (None: recompute)."""
        self._sizes: list[int] = []
        self._starts: list[int] = [0]
        self._holes = 0
        self._changed_from = 1 << 62
        self._dirty: set[NodeKey] = set()
        self._tops_dirty = True
        self._tops_cache: (
            tuple[tuple[int, int, int], list[TopEntry], list[NodeKey], list[bool]] | None
        ) = None
        self.version = 0
        """Bumped whenever the rows change."""
        self.findings_version = 0
        """Bumped whenever findings change (rows with badges and ⚠↓ marks re-render)."""
        self._count_all()

    # ---- counts --------------------------------------------------------------------------------

    def _behind(self) -> bool:
        """Whether the store holds spans the view has not been given yet (paused)."""
        return self.store.next_seq > self._seen

    def _count_all(self) -> None:
        """Link and count the spans of every tree in one pass (a store filled before the view,
        a catch-up after retention evicted while the view was behind)."""
        store = self.store
        links = self.links
        links.reset(store)
        self._seen = links.end
        self._evicted = store.evicted
        by_first = Counter(links.head)
        by_first.pop(-1, None)
        counts: dict[NodeKey, int] = {}
        key = links.key
        for first, n in by_first.items():
            k = key(first)
            if k is not None:
                counts[k] = counts.get(k, 0) + n
        self._all_counts.clear()
        self._all_counts.update(counts)
        self._recount = False
        self._sync_marks()

    def _entry(self, key: NodeKey) -> TopEntry | None:
        """The top-level entry with this key (a root span, or a placeholder id)."""
        if isinstance(key, str):
            return key
        if isinstance(key, int):
            return self.store.get(key)
        return None

    def _top_of(self, span: Span) -> TopEntry:
        """The top-level entry of a span's tree as of the watermark (cf. `store.top_of`).

        A parent beyond the watermark has not arrived as far as the view knows, so the span waits
        under its placeholder. (A span beyond the watermark gets the store's answer: it has no
        row yet, so whatever is asked of it finds nothing.)
        """
        if span.seq < self._seen:
            key = self.links.key(span.seq)
            if key is not None:
                top = self._entry(key)
                if top is not None:
                    return top
        return self.store.top_of(span)

    def _merge(self, old: NodeKey, new: NodeKey) -> None:
        """A tree joined another one (its awaited parent landed): move its counts over."""
        if old == new:
            return
        for counts in (self._all_counts, self._counts):
            moved = counts.pop(old, 0)
            if moved:
                counts[new] = counts.get(new, 0) + moved
            if counts is self._all_counts and self._counts is self._all_counts:
                break

    def _sweep(self) -> None:
        """Drop the counts of trees retention evicted."""
        live = self.store.top_positions
        for counts in (self._all_counts, self._counts):
            for key in [k for k in counts if k not in live]:
                del counts[key]

    def catch_up(self) -> None:
        """Show the store as it is now (what a filter change does first)."""
        if self._recount or self._behind():
            self._count_all()
            self._tops_dirty = True
            if self._pred is not None:
                self.set_filter()

    @property
    def watermark(self) -> int:
        """Spans with a smaller seq are part of the view; the next batch starts here or later."""
        return self._seen

    # ---- filter --------------------------------------------------------------------------------

    @property
    def filtering(self) -> bool:
        """Whether anything is filtered out."""
        return not self.filter.empty or self.violations_only

    def set_filter(
        self,
        flt: Filter | None = None,
        *,
        violations_only: bool | None = None,
        min_severity: str | None = None,
        matched: set[int] | None = None,
        prepared: Kept | None = None,
    ) -> None:
        """Change the filter and recompute what matches (one pass over the store).

        `matched` may carry the matching seqs already computed elsewhere (the search index);
        `prepared` what a background pass worked out over a snapshot of the links (`kept`): it
        is brought up to date with the batches the view took since. A filter change shows the
        store as it is: a view behind the store (paused) catches up, and batches given to
        `apply` later that it already holds change nothing.
        """
        if flt is not None:
            self.filter = flt
        if violations_only is not None:
            self.violations_only = violations_only
        if min_severity is not None:
            self.min_severity = min_severity
        if self._recount or self._behind():
            self._count_all()  # a filter shows the store as it is: catch the counts up
        self._pred = self._make_predicate()
        if self._pred is None:
            self._marks = None
            self._counts = self._all_counts
        elif prepared is not None and prepared.end <= self._seen:
            self._install(prepared)
        else:
            if matched is None:
                matched = self._match_all(self._pred)
            result = kept(self.links, matched)
            assert result is not None
            self._install(result)
        self._tops_dirty = True
        self._special = None
        self._blocks = self._all_blocks if self._pred is None else {}

    def _install(self, result: Kept) -> None:
        """Take what a filter keeps, computed as of `result.end`, and add the batches since."""
        self._marks = result.marks
        self._marks_base = result.base
        links = self.links
        self._sync_marks()
        if result.merges == links.merges:
            counts = result.counts
        else:  # trees joined (or went) since: count by head again
            live = self.store.top_positions
            counts = {}
            key = links.key
            for head, n in result.by_head.items():
                k = key(head)
                if k is not None and k in live:
                    counts[k] = counts.get(k, 0) + n
        self._counts = counts
        if result.end < self._seen:
            get = self.store.get
            fresh = [s for s in map(get, range(result.end, self._seen)) if s is not None]
            tops: dict[int, NodeKey] = {}
            for span in fresh:
                k = links.key(span.seq)
                if k is not None:
                    tops[span.seq] = k
            self._filter_fresh(fresh, tops)

    def _match_all(self, pred: Callable[[Span], bool]) -> set[int]:
        """Seqs of every resident span that matches (the common facet-only filters inline)."""
        events = self.store.events()
        if self.violations_only:
            return {span.seq for span in events if pred(span)}
        return matching_seqs(self.filter, events)

    def predicate_for(self, flt: Filter) -> Callable[[Span], bool] | None:
        """The predicate `flt` would get with the current contract options (background passes)."""
        saved = self.filter
        self.filter = flt
        try:
            return self._make_predicate()
        finally:
            self.filter = saved

    def _make_predicate(self) -> Callable[[Span], bool] | None:
        tests: list[Callable[[Span], bool]] = []
        if not self.filter.empty:
            tests.append(self.filter.predicate())
        if self.violations_only:
            checker = self.findings
            floor = SEVERITY_RANK.get(self.min_severity, 0)

            def violates(span: Span) -> bool:
                if checker is None:
                    return False
                return any(
                    SEVERITY_RANK.get(getattr(f, "severity", "info"), 0) >= floor
                    for f in checker.findings_for(span.seq)
                )

            tests.append(violates)
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        first, second = tests
        return lambda s: first(s) and second(s)

    def _sync_marks(self) -> None:
        """Keep the marks as long as the links (new spans unmarked, evicted ones dropped)."""
        marks = self._marks
        if marks is None:
            return
        links = self.links
        drop = links.base - self._marks_base
        if drop > 0:
            del marks[:drop]
            self._marks_base = links.base
        elif drop < 0:  # links rebuilt from an older base: realign
            marks[:0] = bytes(-drop)
            self._marks_base = links.base
        grow = len(links.head) - len(marks)
        if grow > 0:
            marks.extend(bytes(grow))
        elif grow < 0:
            del marks[grow:]

    def _mark_of(self, seq: int) -> int:
        """A span's mark: MATCH, CONTEXT, or 0 (hidden, or no filter)."""
        marks = self._marks
        if marks is None:
            return 0
        i = seq - self._marks_base
        return marks[i] if 0 <= i < len(marks) else 0

    @property
    def matched(self) -> set[int] | None:
        """Seqs of the spans that match the filter themselves (None without a filter)."""
        if self._marks is None:
            return None
        return marked(self._marks, self._marks_base, MATCH)

    @property
    def context(self) -> set[int]:
        """Seqs of the ancestors kept only for the matches below them."""
        if self._marks is None:
            return set()
        return marked(self._marks, self._marks_base, CONTEXT)

    def is_match(self, span: Span) -> bool:
        """Whether a span matches the filter itself (every span does without a filter)."""
        return self._marks is None or self._mark_of(span.seq) == MATCH

    def _add_context_above(self, span: Span) -> int:
        """Keep the span's ancestors as context up to the first one kept; how many were added."""
        marks = self._marks
        assert marks is not None
        links = self.links
        parent, base = links.parent, links.base
        added = 0
        p = links.parent_of(span.seq)
        while p >= base:  # each step marks one more: even a loop ends; below base was evicted
            j = p - base
            if marks[j]:
                break
            marks[j] = CONTEXT
            added += 1
            p = parent[j]
        return added

    def _kids(self, node: TopEntry) -> list[Span]:
        """The node's children as of the watermark."""
        kids = self.store.children(node)
        if kids and self._behind():
            seen = self._seen
            return [k for k in kids if k.seq < seen]
        return kids

    def shows(self, node: TopEntry) -> bool:
        """Whether a node passes the filter (itself or through a descendant)."""
        if self._marks is None:
            return True
        mark = self._mark_of
        if isinstance(node, str):
            return any(mark(k.seq) for k in self.store.children(node))
        return mark(node.seq) != 0

    def has_visible_children(self, node: TopEntry) -> bool:
        """Whether expanding the node would show anything."""
        if self._marks is None:
            return bool(self._kids(node)) if self._behind() else self.store.has_children(node)
        return any(self.shows(k) for k in self.store.children(node))

    def is_context(self, node: TopEntry) -> bool:
        """True for a span shown only because a descendant matches."""
        return not isinstance(node, str) and self._mark_of(node.seq) == CONTEXT

    def selection(self) -> Selection:
        """The current view as a `query.Selection` (for the text formatter and snapshots)."""
        return Selection(top=self.tops, matched=self.matched, context=self.context)

    # ---- incremental updates -------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        """Take in one ingest batch: link it, update counts and matches, mark the touched trees."""
        store = self.store
        links = self.links
        new = change.new
        before = self._seen
        fresh = [s for s in new if s.seq >= before and store.get(s.seq) is s]
        adopted: list[Span] = []
        if new and new[-1].seq >= before:
            adopted = links.add(store, fresh, new[-1].seq + 1)
            self._seen = links.end
        key = links.key
        for span in adopted:
            old = span.trace_id
            new_key = key(span.seq)
            if new_key is not None:
                self._merge(old, new_key)
            self._forget(old)
        evicted = bool(change.evicted) or store.evicted != self._evicted
        if evicted:
            if self._behind():
                self._recount = True  # batches are pending: recount once they are all in
            else:
                self._evicted = store.evicted
                links.evicted(store)
                self._sweep()
        self._sync_marks()
        all_counts = self._all_counts
        touched: dict[NodeKey, TopEntry] = {}
        tops: dict[int, NodeKey] = {}
        for span in fresh:
            k = key(span.seq)
            if k is None:
                continue
            tops[span.seq] = k
            all_counts[k] = all_counts.get(k, 0) + 1
            if k not in touched:
                top = self._entry(k)
                if top is not None:
                    touched[k] = top
        if self._pred is not None:
            self._filter_fresh(fresh, tops)
        if adopted or evicted:
            self._special = None
        for k in touched:
            self._forget(k)
        if self._tops_dirty or evicted:
            self._tops_dirty = True
            self._dirty.update(touched)
            return
        self._update_tops(adopted, touched)

    def _filter_fresh(self, fresh: list[Span], tops: Mapping[int, NodeKey]) -> None:
        """Match spans new to the view against the filter, with their context, and count them."""
        pred = self._pred
        marks = self._marks
        assert pred is not None and marks is not None
        base = self._marks_base
        counts = self._counts
        children = self.store.children
        seen = self._seen
        for span in fresh:
            seq = span.seq
            i = seq - base
            if i < 0 or i >= len(marks):
                continue
            was = marks[i]
            if was == MATCH:
                continue
            if pred(span):
                marks[i] = MATCH
                if was:  # a child in this batch kept it as context: counted, ancestors kept
                    continue
                gained = 1 + self._add_context_above(span)
            elif not was and any(
                marks[k.seq - base] for k in children(span) if base <= k.seq < seen
            ):
                marks[i] = CONTEXT
                gained = 1 + self._add_context_above(span)
            else:
                continue
            k = tops.get(seq)
            if k is not None:
                counts[k] = counts.get(k, 0) + gained

    def _update_tops(self, adopted: list[Span], touched: dict[NodeKey, TopEntry]) -> None:
        """Patch the visible top list in place for a batch (the live common case).

        Adopted placeholders are re-keyed where they stand (or dropped when their tree joined
        another one); trees that appear are appended in the store's order. Anything else (a
        hidden tree that became visible in the middle, a store without slot positions) falls back
        to a full recompute on `rebuild()`.
        """
        store = self.store
        positions: Mapping[Any, int] | None = getattr(store, "top_positions", None)
        if positions is None:
            self._tops_dirty = True
            self._dirty.update(touched)
            return
        index = self._top_index
        tops = self._tops
        for span in adopted:
            old = span.trace_id
            i = index.get(old)
            if i is None:
                continue
            top = self._top_of(span)
            new = key_of(top)
            del index[old]
            if new not in index and self.shows(top) and self._fits(i, positions.get(new, -1)):
                tops[i] = top
                index[new] = i
                self._dirty.add(new)
            else:
                tops[i] = None
                self._sizes[i] = 0
                self._holes += 1
                self._changed_from = min(self._changed_from, i)
                if new in index:
                    self._dirty.add(new)
        fresh: dict[NodeKey, TopEntry] = {}
        for key, top in touched.items():
            if key in index:
                self._dirty.add(key)
            elif self.shows(top):
                fresh[key] = top
        if not fresh:
            return
        tail = -1
        for j in range(len(tops) - 1, -1, -1):
            last = tops[j]
            if last is not None:
                tail = positions.get(key_of(last), -2)
                break
        placed = [(positions.get(k, -1), k, t) for k, t in fresh.items()]
        if tail < -1 or any(p <= tail for p, _, _ in placed):
            self._tops_dirty = True
            self._dirty.update(fresh)
            return
        placed.sort(key=lambda item: item[0])
        self._changed_from = min(self._changed_from, len(tops))
        for _, key, top in placed:
            index[key] = len(tops)
            tops.append(top)
            self._sizes.append(0)
            self._dirty.add(key)

    def refresh_findings(self, seqs: Iterable[int]) -> None:
        """Findings changed for these spans: re-match them under a violations filter."""
        seqs = list(seqs)
        if not seqs:
            return
        self.findings_version += 1
        if self.violations_only:
            self.set_filter()
            return
        seen = self._seen
        for seq in seqs:
            span = self.store.get(seq)
            if span is not None and seq < seen:
                self._dirty.add(key_of(self._top_of(span)))
        self.version += 1

    def invalidate(self) -> None:
        """Rebuild everything on the next `rebuild()` (expansion changed globally)."""
        self._tops_dirty = True
        self._special = None
        self._blocks.clear()
        self._all_blocks.clear()

    def _forget(self, key: NodeKey) -> None:
        """Drop the cached rows of one tree (under the filter and without it)."""
        self._blocks.pop(key, None)
        self._all_blocks.pop(key, None)

    def _fits(self, i: int, position: int) -> bool:
        """Whether a store slot position belongs at index i of the visible tops (order kept)."""
        positions: Mapping[Any, int] = self.store.top_positions
        tops = self._tops
        for j in range(i - 1, -1, -1):
            before = tops[j]
            if before is not None:
                if positions.get(key_of(before), -1) >= position:
                    return False
                break
        for j in range(i + 1, len(tops)):
            after = tops[j]
            if after is not None:
                return positions.get(key_of(after), -1) > position
        return position >= 0

    def _special_trees(self) -> set[NodeKey]:
        """Keys of the trees that hold a toggled node (their rows are not a plain count)."""
        special = self._special
        if special is None:
            special = set()
            get = self.store.get
            seen = self._seen
            for key in self.toggled:
                if isinstance(key, str):
                    special.add(key)
                elif isinstance(key, int):
                    span = get(key)
                    if span is not None and key < seen:
                        special.add(key_of(self._top_of(span)))
            self._special = special
        return special

    def _size(self, top: TopEntry) -> int:
        """How many rows a visible tree has (its block is built only when it must be)."""
        key = key_of(top)
        if key in self._special_trees():
            return len(self._block(top))
        if not self.default_open:
            return 1
        return self._counts.get(key, 0) + (1 if isinstance(top, str) else 0)

    def prepare_rebuild(self) -> None:
        """Read what a rebuild after a filter change needs from a quiet store ahead of time (a
        background filter change does it in one of its slices; it is read again if the store
        changed by then)."""
        self._store_tops()

    def _store_tops(self) -> tuple[list[TopEntry], list[NodeKey], list[bool]]:
        """The store's top-level entries, their keys, and which are placeholders (kept while the
        store does not change: successive filter changes over a quiet store read them once).
        Not to be mutated."""
        store = self.store
        sig = (store.next_seq, store.evicted, store.top_count())
        cached = self._tops_cache
        if cached is None or cached[0] != sig:
            tops = list(store.top())
            keys: list[NodeKey] = [t if t.__class__ is str else t.seq for t in tops]  # type: ignore[union-attr]
            waiting = [k.__class__ is str for k in keys]
            cached = self._tops_cache = (sig, tops, keys, waiting)
        return cached[1], cached[2], cached[3]

    def rebuild(self) -> bool:
        """Bring the rows up to date; True when anything changed."""
        if not self._tops_dirty and not self._dirty and self._changed_from > len(self._tops):
            return False
        if self._tops_dirty and (self._recount or self._behind()):
            self._count_all()  # the top list is read from the store as it is: catch up
            if self._pred is not None:
                self.set_filter()
        if self._tops_dirty or (self._holes > 1024 and self._holes * 2 > len(self._tops)):
            counts = self._counts
            all_tops, all_keys, all_waiting = self._store_tops()
            tops: list[TopEntry | None] = list(all_tops)
            keys: list[NodeKey] = all_keys
            waiting = all_waiting
            if self._pred is not None:  # the trees the filter keeps, in the store's order
                shown = list(map(counts.__contains__, keys))
                tops = list(itertools.compress(tops, shown))
                keys = list(itertools.compress(keys, shown))
                waiting = list(itertools.compress(waiting, shown))
            self._tops = tops
            self._top_index = dict(zip(keys, range(len(keys)), strict=True))
            self._holes = 0
            live = self._top_index
            for blocks in (self._blocks, self._all_blocks):
                for stale in [k for k in blocks if k not in live]:
                    del blocks[stale]
            for key in self._dirty:
                self._forget(key)
            special = self._special_trees()
            if special or not self.default_open:
                self._sizes = [self._size(t) for t in tops if t is not None]
            else:  # spans counted in the tree, plus the placeholder's own row
                self._sizes = list(map(operator.add, map(counts.get, keys, repeat(0)), waiting))
            first = 0
        else:
            first = self._changed_from
            sizes = self._sizes
            for key in self._dirty:
                self._forget(key)
                i = self._top_index.get(key)
                top = self._tops[i] if i is not None else None
                if i is not None and top is not None:
                    sizes[i] = self._size(top)
                    first = min(first, i)
        self._dirty.clear()
        self._tops_dirty = False
        self._changed_from = 1 << 62
        first = min(first, len(self._sizes))
        starts = self._starts
        del starts[first + 1 :]
        starts.extend(itertools.accumulate(self._sizes[first:], initial=starts[first]))
        del starts[first + 1]
        self.version += 1
        return True

    # ---- rows ----------------------------------------------------------------------------------

    def is_open(self, node: TopEntry) -> bool:
        """Whether the node's children are shown."""
        return (key_of(node) in self.toggled) != self.default_open

    def toggle(self, node: TopEntry) -> None:
        """Expand or collapse one node."""
        key = key_of(node)
        if key in self.toggled:
            self.toggled.discard(key)
        else:
            self.toggled.add(key)
        self._mark(node)

    def set_open(self, node: TopEntry, open_: bool) -> None:
        """Expand or collapse one node explicitly."""
        if self.is_open(node) != open_:
            self.toggle(node)

    def set_all(self, open_: bool) -> None:
        """Expand or collapse everything."""
        self.default_open = open_
        self.toggled.clear()
        self.invalidate()

    def _mark(self, node: TopEntry) -> None:
        top = node if isinstance(node, str) else self._top_of(node)
        self._dirty.add(key_of(top))
        self._special = None

    def _block(self, top: TopEntry | None) -> list[Row]:
        if top is None:
            return []
        key = key_of(top)
        block = self._blocks.get(key)
        if block is not None:
            return block
        children = self._kids if self._behind() else self.store.children
        marks = self._marks
        base = self._marks_base
        toggled = self.toggled
        default_open = self.default_open
        block = []
        add = block.append
        stack: list[Row] = [(0, top)]
        push = stack.append
        pop = stack.pop
        while stack:
            depth, node = row = pop()
            add(row)
            if ((node if isinstance(node, str) else node.seq) in toggled) == default_open:
                continue
            kids = children(node)
            if not kids:
                continue
            if marks is not None:
                size = len(marks)
                kids = [k for k in kids if 0 <= k.seq - base < size and marks[k.seq - base]]
            depth += 1
            for kid in reversed(kids):
                push((depth, kid))
        self._blocks[key] = block
        return block

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def tops(self) -> list[TopEntry]:
        """Visible top-level entries (a copy)."""
        return [t for t in self._tops if t is not None]

    @property
    def top_count(self) -> int:
        """How many top-level entries are visible."""
        return len(self._tops) - self._holes

    @property
    def last_top(self) -> TopEntry | None:
        """The last visible top-level entry."""
        for j in range(len(self._tops) - 1, -1, -1):
            top = self._tops[j]
            if top is not None:
                return top
        return None

    def row(self, index: int) -> Row | None:
        """The row at a flat index, or None past the end."""
        if index < 0 or index >= self._starts[-1]:
            return None
        b = bisect.bisect_right(self._starts, index) - 1
        return self._block(self._tops[b])[index - self._starts[b]]

    def rows(self, start: int, stop: int) -> Iterator[tuple[int, Row]]:
        """Rows in [start, stop) with their indices."""
        stop = min(stop, len(self))
        if start >= stop:
            return
        b = bisect.bisect_right(self._starts, max(start, 0)) - 1
        index = max(start, 0)
        while index < stop and b < len(self._tops):
            block = self._block(self._tops[b])
            offset = index - self._starts[b]
            while offset < len(block) and index < stop:
                yield index, block[offset]
                offset += 1
                index += 1
            b += 1

    def index_of(self, node: Node) -> int | None:
        """Where a node is in the flat rows (None when hidden or collapsed away)."""
        top = node if isinstance(node, str) else self._top_of(node)
        b = self._top_index.get(key_of(top))
        if b is None or b >= len(self._tops):
            return None
        found = self._tops[b]
        if found is None or key_of(found) != key_of(top):
            return None
        key = key_of(node)
        for offset, (_, n) in enumerate(self._block(self._tops[b])):
            if key_of(n) == key:
                return self._starts[b] + offset
        return None

    def reveal(self, span: Span) -> None:
        """Expand every ancestor of a span so it gets a row."""
        for anc in self.store.ancestors(span):
            self.set_open(anc, True)
        top = self._top_of(span)
        if isinstance(top, str):
            self.set_open(top, True)

    def parent_of(self, node: TopEntry) -> TopEntry | None:
        """The row a node hangs under: its parent span, or its placeholder."""
        if isinstance(node, str):
            return None
        parent = self.store.parent(node)
        if parent is None or parent.seq >= self._seen:
            top = self._top_of(node)
            return top if isinstance(top, str) else None
        return parent

    def children_count(self, node: TopEntry) -> int:
        """How many children a node has (for the `+N` of collapsed rows)."""
        return len(self._kids(node))

    def matching_spans(self) -> Iterator[Span]:
        """Spans that match the filter themselves (no context), in arrival order."""
        return self._spans_marked(MATCH)

    def visible_spans(self) -> Iterator[Span]:
        """Spans the filter lets through (matches and context), in arrival order."""
        return self._spans_marked(None)

    def _spans_marked(self, what: int | None) -> Iterator[Span]:
        """Resident spans up to the watermark (a paused view has not shown later ones)."""
        marks = self._marks
        seen = self._seen
        if marks is None:
            for span in self.store.events():
                if span.seq >= seen:
                    return
                yield span
            return
        base, size = self._marks_base, len(marks)
        for span in self.store.events():
            if span.seq >= seen:
                return
            i = span.seq - base
            if 0 <= i < size and marks[i] and (what is None or marks[i] == what):
                yield span
