"""Golden-trace comparison: two traces as structure, blind to what changes run to run.

Each span is reduced to its *shape*: its fields flattened to dotted paths (`metadata.reason`),
minus ignored ones (ids, timestamps, durations, correlation and run ids by default; more with
`ignore`). Trees are compared level by level, independent of sibling order: identical subtrees
pair up first (by a signature of shape + children), then the remaining siblings with the same
layer and operation pair up by fewest differing attributes (a *changed* span, whose children are
compared in turn); what is left is *removed* (only in the golden trace) or *added*.
Findings are compared through that pairing: by rule, field and paired span.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from tracetui.contracts.findings import Finding
from tracetui.model import Span
from tracetui.store import TraceStore

DEFAULT_IGNORES: Final = (
    "trace_id",
    "parent_id",
    "timestamp",
    "duration_ms",
    "metadata.*correlation_id",
    "metadata.*correlationId",
    "metadata.*CorrelationId",
    "metadata.*run_id",
    "metadata.*runId",
    "metadata.*session_id",
)
"""Field paths (globs; `*` also crosses dots) whose values change from run to run."""


class AttrChange(msgspec.Struct, frozen=True):
    """One attribute that differs between paired spans (`None` side = absent)."""

    path: str
    golden: str | None
    new: str | None


class SpanChange(msgspec.Struct):
    """A golden span and its counterpart in the new trace, with what differs."""

    golden: Span
    new: Span
    attrs: list[AttrChange]


class TraceDiff(msgspec.Struct):
    """Everything that differs; empty lists mean the traces match."""

    removed: list[Span] = msgspec.field(default_factory=list)
    added: list[Span] = msgspec.field(default_factory=list)
    changed: list[SpanChange] = msgspec.field(default_factory=list)
    findings_appeared: list[Finding] = msgspec.field(default_factory=list)
    findings_disappeared: list[Finding] = msgspec.field(default_factory=list)
    pairs: dict[int, int] = msgspec.field(default_factory=dict)
    """new seq → golden seq for every paired span."""
    golden_spans: int = 0
    new_spans: int = 0

    @property
    def equal(self) -> bool:
        """True when nothing differs."""
        return not (
            self.removed
            or self.added
            or self.changed
            or self.findings_appeared
            or self.findings_disappeared
        )


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8", "replace")


class _Shaper:
    """Flattens spans to shapes, dropping ignored paths."""

    def __init__(self, ignores: Iterable[str]) -> None:
        self.patterns = tuple(ignores)
        self._ignored: dict[str, bool] = {}

    def ignored(self, path: str) -> bool:
        hit = self._ignored.get(path)
        if hit is None:
            hit = self._ignored[path] = any(fnmatch.fnmatchcase(path, p) for p in self.patterns)
        return hit

    def shape(self, span: Span) -> dict[str, str]:
        out: dict[str, str] = {}
        stack: list[tuple[str, Any]] = [("", span.fields())]
        while stack:
            prefix, value = stack.pop()
            if isinstance(value, dict) and value:
                for key, inner in value.items():
                    path = f"{prefix}.{key}" if prefix else str(key)
                    if not self.ignored(path):
                        stack.append((path, inner))
            elif prefix:
                out[prefix] = _text(value)
        return out


def _roots(store: TraceStore) -> list[Span]:
    roots: list[Span] = []
    for entry in store.top():
        roots.extend(store.children(entry) if isinstance(entry, str) else [entry])
    return roots


class _Side:
    """One trace with per-span shapes and subtree signatures (computed without recursion)."""

    def __init__(self, store: TraceStore, shaper: _Shaper) -> None:
        self.store = store
        self.roots = _roots(store)
        self.shape: dict[int, dict[str, str]] = {}
        self.sig: dict[int, int] = {}
        order: list[Span] = []
        stack = list(self.roots)
        while stack:
            span = stack.pop()
            order.append(span)
            stack.extend(store.children(span))
        self.own: dict[int, int] = {}
        for span in reversed(order):
            shape = self.shape[span.seq] = shaper.shape(span)
            own = self.own[span.seq] = hash(tuple(sorted(shape.items())))
            kids = sorted(self.sig[k.seq] for k in store.children(span))
            self.sig[span.seq] = hash((own, tuple(kids)))
        self.count = len(order)

    def kids(self, span: Span | None) -> list[Span]:
        return self.roots if span is None else self.store.children(span)

    def key(self, span: Span) -> tuple[str | None, str]:
        return (span.layer, span.operation or "")


SIMILARITY_LIMIT: Final = 32
"""Above this many same-operation candidates left unpaired, pair them in order."""


def _closest(shape: dict[str, str], options: list[Span], side: _Side) -> Span:
    """The candidate with the fewest differing attributes (the first one past a large group)."""
    if len(options) > SIMILARITY_LIMIT:
        return options[0]
    return min(options, key=lambda o: len(_attr_changes(shape, side.shape[o.seq])))


def _attr_changes(a: dict[str, str], b: dict[str, str]) -> list[AttrChange]:
    out = [AttrChange(p, a.get(p), b.get(p)) for p in sorted(a.keys() | b.keys())]
    return [c for c in out if c.golden != c.new]


def compare(
    golden: TraceStore,
    new: TraceStore,
    ignores: Iterable[str] = (),
    golden_findings: Iterable[Finding] = (),
    new_findings: Iterable[Finding] = (),
) -> TraceDiff:
    """Compare two loaded traces; see the module docstring for the rules."""
    shaper = _Shaper([*DEFAULT_IGNORES, *ignores])
    g = _Side(golden, shaper)
    n = _Side(new, shaper)
    diff = TraceDiff(golden_spans=g.count, new_spans=n.count)
    stack: list[tuple[Span | None, Span | None]] = [(None, None)]
    while stack:
        gp, np_ = stack.pop()
        g_kids = list(g.kids(gp))
        n_kids = list(n.kids(np_))
        by_sig: dict[int, list[Span]] = defaultdict(list)
        for kid in n_kids:
            by_sig[n.sig[kid.seq]].append(kid)
        rest_g: list[Span] = []
        for kid in g_kids:
            same = by_sig.get(g.sig[kid.seq])
            if same:
                match = same.pop(0)
                stack.append((kid, match))  # identical below too; pairs their spans
                diff.pairs[match.seq] = kid.seq
            else:
                rest_g.append(kid)
        rest_n = [k for k in n_kids if k.seq not in diff.pairs]
        # Same own attributes (children differ) pair first, then the closest of the rest.
        by_own: dict[tuple[int, tuple[str | None, str]], list[Span]] = defaultdict(list)
        for kid in reversed(rest_n):  # popped from the end: earliest first
            by_own[(n.own[kid.seq], n.key(kid))].append(kid)
        unpaired: list[Span] = []
        for kid in rest_g:
            alike = by_own.get((g.own[kid.seq], g.key(kid)))
            if not alike:
                unpaired.append(kid)
                continue
            twin = alike.pop()
            diff.pairs[twin.seq] = kid.seq
            stack.append((kid, twin))
        by_key: dict[tuple[str | None, str], list[Span]] = defaultdict(list)
        for kid in rest_n:
            if kid.seq not in diff.pairs:
                by_key[n.key(kid)].append(kid)
        for kid in unpaired:
            options = by_key.get(g.key(kid))
            if not options:
                diff.removed.append(kid)
                continue
            shape = g.shape[kid.seq]
            best = _closest(shape, options, n)
            del options[next(i for i, o in enumerate(options) if o is best)]
            diff.pairs[best.seq] = kid.seq
            attrs = _attr_changes(shape, n.shape[best.seq])
            if attrs:
                diff.changed.append(SpanChange(kid, best, attrs))
            stack.append((kid, best))
        for options in by_key.values():
            diff.added.extend(options)
    diff.removed.sort(key=lambda s: s.seq)
    diff.added.sort(key=lambda s: s.seq)
    diff.changed.sort(key=lambda c: c.golden.seq)

    def key_of(f: Finding, paired: int | None) -> tuple[str, str, int | str]:
        return (f.rule, f.field or "", paired if paired is not None else f"new:{f.seq}")

    before = {key_of(f, f.seq): f for f in golden_findings}
    after = {key_of(f, diff.pairs.get(f.seq)): f for f in new_findings}
    diff.findings_appeared = [f for k, f in after.items() if k not in before]
    diff.findings_disappeared = [f for k, f in before.items() if k not in after]
    return diff
