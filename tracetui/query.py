"""Filter state → predicate → what the tree shows.

Within one facet the chosen values are alternatives (layer alt OR foc); different facets must all
hold (layer AND status AND agent …). Labels follow selector rules: values of the same key are
alternatives, different keys must all hold. A span is shown when it matches or a descendant matches;
ancestors shown only for a matching descendant are marked as context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from tracetui.model import Span, normalize_layer, normalize_status
from tracetui.store import TopEntry, TraceStore

TEXT_FIELDS: Final = ("operation", "component", "input_summary", "output_summary")


class Filter(msgspec.Struct, frozen=True):
    """What the user asked to see. Empty sets mean "any".

    Attributes:
        layers: canonical layer names (aliases are normalised by `make`).
        statuses: statuses.
        agents: agent names.
        labels: `key=value` strings.
        text: text searched in operation, component and summaries (case-insensitive).
        regex: treat `text` as a regular expression.
    """

    layers: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    text: str = ""
    regex: bool = False

    @classmethod
    def make(
        cls,
        layers: Iterable[str] = (),
        statuses: Iterable[str] = (),
        agents: Iterable[str] = (),
        labels: Iterable[str] = (),
        text: str = "",
        regex: bool = False,
    ) -> Filter:
        """Build a filter from user spellings (layer aliases, any case)."""
        return cls(
            layers=frozenset(normalize_layer(v) for v in layers),
            statuses=frozenset(normalize_status(v) for v in statuses),
            agents=frozenset(agents),
            labels=frozenset(labels),
            text=text,
            regex=regex,
        )

    @property
    def empty(self) -> bool:
        """True when the filter lets everything through."""
        return not (self.layers or self.statuses or self.agents or self.labels or self.text)

    def predicate(self) -> Callable[[Span], bool]:
        """A function telling whether one span matches (ignoring its relatives)."""
        tests: list[Callable[[Span], bool]] = []
        if self.layers:
            layers = self.layers
            tests.append(lambda s: s.layer in layers)
        if self.statuses:
            statuses = self.statuses
            tests.append(lambda s: s.status in statuses)
        if self.agents:
            agents = self.agents
            tests.append(lambda s: s.agent in agents)
        if self.labels:
            by_key: dict[str, set[str]] = {}
            for label in self.labels:
                by_key.setdefault(label.partition("=")[0], set()).add(label)
            groups = list(by_key.values())
            tests.append(lambda s: all(not g.isdisjoint(s.labels) for g in groups))
        if self.text:
            tests.append(text_matcher(self.text, self.regex))
        if not tests:
            return lambda s: True
        if len(tests) == 1:
            return tests[0]
        return lambda s: all(t(s) for t in tests)


class _Summaries(msgspec.Struct):
    """Only the summaries of a line (the decoder skips everything else)."""

    i: Any = msgspec.field(default=None, name="input_summary")
    o: Any = msgspec.field(default=None, name="output_summary")


_decode_summaries = msgspec.json.Decoder(_Summaries).decode


def text_matcher(text: str, regex: bool = False) -> Callable[[Span], bool]:
    """Case-insensitive search in operation, component and summaries.

    Raises:
        re.error: when `regex` is set and `text` is not a valid pattern.
    """
    if regex:
        pattern = re.compile(text, re.IGNORECASE)

        def found(value: str) -> bool:
            return pattern.search(value) is not None

        prefilter = None
    else:
        needle = text.casefold()

        def found(value: str) -> bool:
            return needle in value.casefold()

        plain = text.isascii() and text.isprintable() and '"' not in text and "\\" not in text
        prefilter = text.lower().encode() if plain else None

    def match(span: Span) -> bool:
        if found(span.operation or "") or found(span.component or ""):
            return True
        raw = span.raw
        if (
            prefilter is not None
            and raw.isascii()  # casefold can match non-ASCII text ("ß" ~ "ss")
            and b"\\" not in raw  # nor JSON escapes
            and prefilter not in raw.lower()
        ):
            return False
        try:
            summaries = _decode_summaries(raw)
        except msgspec.DecodeError:
            return False
        return any(isinstance(v, str) and found(v) for v in (summaries.i, summaries.o))

    return match


def matching_seqs(flt: Filter, spans: Iterable[Span]) -> set[int]:
    """Seqs of the spans that match `flt` (facet-only filters without a call per span)."""
    st, ly, ag = flt.statuses, flt.layers, flt.agents
    if flt.labels or flt.text:
        pred = flt.predicate()
        return {span.seq for span in spans if pred(span)}
    if st and not ly and not ag:
        return {span.seq for span in spans if span.status in st}
    if ly and not st and not ag:
        return {span.seq for span in spans if span.layer in ly}
    return {
        span.seq
        for span in spans
        if (not st or span.status in st)
        and (not ly or span.layer in ly)
        and (not ag or span.agent in ag)
    }


class Selection(msgspec.Struct):
    """What a view shows: top entries in order, and which spans match (None = all)."""

    top: list[TopEntry]
    matched: set[int] | None
    context: set[int]

    def shows(self, node: TopEntry) -> bool:
        """Whether a node is shown (placeholders are shown when any of their children is)."""
        if self.matched is None:
            return True
        if isinstance(node, str):
            return True
        return node.seq in self.matched or node.seq in self.context

    def is_context(self, node: TopEntry) -> bool:
        """True for an ancestor shown only because a descendant matched."""
        return not isinstance(node, str) and node.seq in self.context


def select(
    store: TraceStore,
    flt: Filter,
    *,
    trace_id: str | None = None,
    last: int | None = None,
) -> Selection:
    """Apply a filter to the store.

    Args:
        store: the store to read.
        flt: the filter.
        trace_id: limit to the tree of this span: its ancestors and descendants.
        last: limit to the last N top-level trees (of those the filter lets through).
    """
    tops = list(store.top())
    if last is not None and flt.empty:
        tops = tops[-last:] if last > 0 else []
    scoped: list[Span] | None = None
    if trace_id is not None:
        targets = store.duplicates.get(trace_id) or (
            [store.by_id[trace_id]] if trace_id in store.by_id else []
        )
        scope: dict[int, Span] = {}
        for target in targets:
            for anc in store.ancestors(target):
                scope[anc.seq] = anc
            for _, node in store.subtree(target):
                if isinstance(node, Span):
                    scope[node.seq] = node
        wanted = {_top_key(store.top_of(t)) for t in targets}
        tops = [t for t in tops if _top_key(t) in wanted]
        scoped = list(scope.values())
    elif last is not None and flt.empty:
        scoped = [n for t in tops for _, n in store.subtree(t) if isinstance(n, Span)]
    if flt.empty and scoped is None:
        return Selection(top=tops, matched=None, context=set())
    candidates: Iterable[Span] = scoped if scoped is not None else store.events()
    matched = matching_seqs(flt, candidates)
    context: set[int] = set()
    keys: set[int | str] = set()
    for seq in matched:
        span = store.get(seq)
        assert span is not None
        cur: Span = span
        while True:
            parent = store.parent(cur)
            if parent is None:
                keys.add(_top_key(store.top_of(cur)))
                break
            if parent.seq in matched or parent.seq in context:
                break
            context.add(parent.seq)
            cur = parent
    top = [t for t in tops if _top_key(t) in keys]
    if last is not None and not flt.empty:
        top = top[-last:] if last > 0 else []  # the last N trees that match, not the last N trees
    return Selection(top=top, matched=matched, context=context)


def _top_key(entry: TopEntry) -> int | str:
    return entry if isinstance(entry, str) else entry.seq
