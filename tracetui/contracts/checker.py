"""The checker: judges spans against a ContractSet as they land in the store.

Rules come in three reaches, evaluated at different moments so that arrival order never produces a
false finding:

- **local** rules need only the span itself (schema, required trace data, span contracts,
  deprecated fields, agent context shape): checked as the span lands.
- **relational** rules need the span's ancestors (correlation, propagated values, baggage leaks,
  context requires, outcome events, child-before-parent): checked once the span's whole parent
  chain up to a root is present. Emitters write a span when it *ends*, so children usually arrive
  first and are checked, parents before children, when their root lands.
- **whole-trace** rules (a parent that never arrived, produced keys nobody requires) run when a
  trace is complete: at `finish` (end of a static file) or in `tick` once the trace has been quiet
  for the contract's quiet period. Spans waiting under a parent that never arrived then get their
  relational checks with the chain they have (context requires are not judged there: the missing
  ancestor may have produced the key). If the parent turns up later they are checked again, and the
  delta says which findings went away.

Cost: almost every span of a real trace breaks no rule, so the work per clean span is what counts.
Each batch's lines are decoded again by typed decoders that read only the keys the active rules
need (see `probe.ProbeLayout`); where the rules allow it (`_chunked`), by *refusing* decoders that
take a line only when no local rule and no baggage screen could fire on it, so msgspec itself does
the screening and only refused lines are kept and judged. Span fields are screened in one pass;
the relational pass resolves each new span once, with a cheap screen before the full judgement.
For big loads the line rules move to a helper process on another core (`start_screen`, see
`contracts.remote`); the findings do not change.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from itertools import accumulate, compress, repeat
from operator import attrgetter, call, is_, itemgetter
from typing import Any, Final

import msgspec

from tracetui.contracts.catalog import RULES
from tracetui.contracts.findings import Finding, FindingDelta
from tracetui.contracts.loader import ContractSet
from tracetui.contracts.probe import UNSET, Getter, ProbeLayout, lookup, value_of
from tracetui.contracts.remote import ScreenProcess
from tracetui.contracts.spec import Requirement, SpanSpec
from tracetui.model import CYCLE, DUPLICATE, LAYER_SHORT, SCHEMA, Span, normalize_layer
from tracetui.store import Change, TraceStore

_ID_SHAPE: Final = re.compile(r"([A-Za-z]+)_(\d+)_([0-9a-fA-F]+)")
_OTEL_ID = re.compile(r"[0-9a-f]{16}(?:\.ctx\d+)?")
_ID_BY_LAYER: Final = {
    layer: re.compile(rf"{short}_\d+_[0-9a-fA-F]+") for layer, short in LAYER_SHORT.items()
}
_OUTCOMES: Final = ("context.defaulted", "context.failed")
_AGENT_KEYS: Final = ("agent", "agent_context", "agentContext", "agent.name")
_OUTCOME_KEYS: Final = ("field", "default", "reason", "error")
_EPSILON: Final = 1e-6
_DEFAULT_FIELDS: Final = ("trace_id", "timestamp", "hrm_layer", "operation", "status")
_BAG_CACHE: Final = 16384
"""Distinct baggage objects whose verdict is remembered (a trace repeats one on many spans)."""
_decode_any: Final = msgspec.json.Decoder().decode
_get_metadata: Final = attrgetter("metadata")
_get_raw_bytes: Final = attrgetter("raw_bytes")
_get_parent_id: Final = attrgetter("parent_id")
_REFUSED_LINE: Final = re.compile(r"at `\$\[(\d+)\]")
"""Where `decode_lines` says the line it refused is."""
_REST_BATCHES: Final = 8
"""Batches a kind of line goes straight to being judged after most of its lines were refused
(a trace that breaks a rule on most lines would otherwise be decoded twice, line by line)."""
_get_trace_id: Final = attrgetter("trace_id")
_get_agent: Final = attrgetter("agent")
_get_run_id: Final = attrgetter("run_id")
_get_layer: Final = attrgetter("layer")
_get_flags: Final = attrgetter("flags")
_get_input: Final = attrgetter("input_summary")
_get_output: Final = attrgetter("output_summary")
_get_operation: Final = attrgetter("operation")
_get_required: Final = attrgetter("required")
_get_present: Final = attrgetter("present")


Key = tuple[str, int | str]
"""Who owns a group of findings: (`local`|`flag`|`rel`, seq) or (`trace`, top-level key)."""


class _OpRules(msgspec.Struct, frozen=True):
    """Operation rules merged for one (operation, layer)."""

    name: str = ""
    required: tuple[str, ...] = ()
    present: Any = None
    """Reads the required keys, as written, from a probe's metadata: a tuple of `Raw`, empty when
    absent (a dotted key may still be nested: `_required_data` looks properly)."""
    requires: tuple[tuple[str, Requirement], ...] = ()
    produces: frozenset[str] = frozenset()


_BAD_ID_LINE: Final = re.compile(
    r"^(?!(?:"
    + "|".join(rf"{layer}\|{short}" for layer, short in LAYER_SHORT.items())
    + r")_\d+_[0-9a-fA-F]+$)",
    re.MULTILINE,
)
_GOOD_IDS: Final = re.compile(
    r"(?:(?:"
    + "|".join(rf"{layer}\|{short}" for layer, short in LAYER_SHORT.items())
    + r")_\d+_[0-9a-fA-F]+\n)*"
)
"""Matches as far as a batch's `layer|id` lines are well shaped (to the end in the usual case)."""
_SHAPED_IDS: Final = re.compile(r"(?:[A-Za-z]++_[0-9]++_[0-9a-fA-F]++\n)*+")
"""Matches to the end when every line of a batch's ids is shaped `{letters}_{digits}_{hex}`."""
_ID_PREFIX: Final = {layer: f"{short}_" for layer, short in LAYER_SHORT.items()}
_FIRST_4: Final = itemgetter(slice(0, 4))
assert {len(p) for p in _ID_PREFIX.values()} == {4}


def _good_id(span: Span) -> bool:
    rx = _ID_BY_LAYER.get(span.layer or "")
    return rx is not None and rx.fullmatch(span.trace_id) is not None


def _show(value: Any, limit: int = 60) -> str:
    """A value for a message: strings quoted, others as JSON, clipped."""
    text = repr(value) if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def qualified(span: Span) -> tuple[str, ...]:
    """Names an operation glob is matched against: `altitude.transition`, and as written."""
    op = span.operation or ""
    head, dot, tail = op.partition(".")
    if dot:
        layer = normalize_layer(head)
        full = f"{layer}.{tail}" if layer in LAYER_SHORT else op
    elif span.layer is not None:
        full = f"{span.layer}.{op}"
    else:
        full = op
    return (full,) if full == op else (full, op)


def _event_names(probe: Any, meta_events: Any) -> list[str]:
    names: list[str] = []
    for source in (getattr(probe, "events", None), meta_events):
        if not isinstance(source, list):
            continue
        for item in source:
            name = item.get("name") if isinstance(item, dict) else item
            names.append(name if isinstance(name, str) else _show(name))
    return names


class Checker:
    """Applies a ContractSet to a store, batch by batch, and keeps the findings by span.

    Attributes:
        contracts: what is enforced.
        counts: number of current findings per severity.
    """

    def __init__(self, contracts: ContractSet) -> None:
        self.contracts = contracts
        self.counts: dict[str, int] = {"error": 0, "warning": 0, "info": 0}
        self._sev = contracts.severities
        self._owned: dict[Key, list[Finding]] = {}
        self._by_seq: dict[int, list[Finding]] = {}
        self._batch: list[Any] = []
        self._batch_strict = False
        """The batch's lines fit the layout's strict type (no deprecated key, no long summary)."""
        self._batch_rules: list[_OpRules] = []
        self._failed: list[int] = []
        """In chunked mode: positions in the batch of the lines that were decoded to be judged."""
        self._resting: dict[tuple[tuple[str, ...], bool], int] = {}
        """Kinds of line (required keys, root) not screened for that many more batches."""
        self._batch_first = 0
        self._batch_flagged: bool | None = None
        self._cache: dict[int, Any] = {}
        self._ops_cache: dict[tuple[str | None, str | None], _OpRules] = {}
        self._ops_by_name: dict[str, _OpRules] = {}
        """Operation rules by operation name alone, for names that do not depend on the layer."""
        self._leaked: dict[int, dict[str, str]] = {}
        """seq → denied baggage key → id of the span where it first leaked."""
        self._produced: dict[int, frozenset[str]] = {}
        self._partial: set[int] = set()
        self._trace_owned: set[int | str] = set()
        """Top-level keys that own whole-trace findings."""
        self._pending: set[int] = set()
        """Spans whose parent chain does not reach a root yet (an ancestor has not arrived)."""
        self._waiting: set[str] = set()
        """Ids of missing parents that pending spans hang under."""
        self._touched: dict[int | str, float | None] = {}
        """Top-level key of each trace with activity → when `tick` first saw it quiet (None: not
        yet seen by a tick). Times are the caller's clock, whatever it is."""
        self._bag_cache: dict[bytes, tuple[dict[str, Any], bool]] = {}
        self._bag_seen: dict[int, tuple[dict[str, Any], bool] | None] = {}
        self._bag_flags: dict[bytes, bool] = {}
        self.screen: ScreenProcess | None = None
        """A helper process judging the local rules of loaded batches (see `start_screen`)."""
        self._compile()

    # ---- setup ---------------------------------------------------------------------------------

    def _compile(self) -> None:
        c = self.contracts
        on = self._sev.__contains__
        schema = self._schema = c.schema
        self._check_summary = schema is not None and on("schema.summary_too_long")
        self._summary_max = schema.summary_max if schema is not None else 0
        self._check_shape = schema is not None and schema.trace_id_shape
        self._structure = schema is not None and schema.structure
        self._ops = list(c.operations)
        self._any_required = on("data.missing_key") and any(s.required for _, s in self._ops)
        self._any_requires = any(s.requires for _, s in self._ops) and (
            on("context.dangling_read") or on("context.shadow_default")
        )
        self._any_produces = any(s.produces for _, s in self._ops)
        self._dead_writes = self._any_produces and on("context.dead_write")
        deprecated = c.deprecated if on("propagation.deprecated_field") else {}
        propagate = c.propagate if on("propagation.value_changed") else []
        self._correlation = c.correlation and (
            on("propagation.missing_parent_correlation")
            or on("propagation.parent_correlation_mismatch")
        )
        self._agent_shape = c.agent_context and on("propagation.agent_context_shape")
        bag = c.baggage
        self._deny = frozenset(bag.deny) if bag is not None else frozenset()
        self._allow = frozenset(bag.allow) if bag is not None and bag.allow is not None else None
        self._baggage = bag is not None and (
            bool(self._deny) or (self._allow is not None and on("baggage.not_allowed"))
        )
        self._outcomes = c.outcome_events and (on("context.defaulted") or on("context.failed"))
        self._spans: list[tuple[SpanSpec, bytes | None]] = []
        for spec in c.spans:
            has = spec.match.has
            prefix = re.split(r"[*?\[]", has, maxsplit=1)[0] if has else ""
            needle = b'"' + prefix.encode() if prefix and prefix.isascii() else None
            self._spans.append((spec, needle))
        # What the probe must read.
        paths: list[str] = []
        for _, op in self._ops:
            paths.extend(op.required)
            paths.extend(op.requires)
        for span_spec, _ in self._spans:
            paths.extend(span_spec.required)
        if any(spec.events is not None for spec, _ in self._spans):
            paths.append("events")
        paths.extend(propagate)
        if self._baggage:
            paths.append("baggage")
        if self._outcomes:
            paths.extend(_OUTCOME_KEYS)
        top: list[str] = []
        if self._check_summary:
            top.extend(("input_summary", "output_summary"))
        if any(spec.events is not None for spec, _ in self._spans):
            top.append("events")
        self._layout = ProbeLayout(
            paths,
            top,
            noticed=deprecated,
            summary_max=self._summary_max if self._check_summary else None,
        )
        get = self._get = functools.lru_cache(maxsize=None)(self._layout.getter)
        self._need_probe = bool(paths or top or deprecated)
        self._deprecated = list(deprecated.items())
        self._dep_noticed = bool(deprecated) and self._layout.noticed
        self._propagate: list[tuple[str, Getter]] = [(p, get(p)) for p in propagate]
        self._bag_attr = self._layout.attr["baggage"] if self._baggage else ""
        self._bag_read = attrgetter(f"metadata.{self._bag_attr}" if self._baggage else "metadata")
        self._general_relations = bool(
            self._propagate or self._any_requires or self._any_produces or self._outcomes
        )
        """Relational rules beyond what `_observe_relations` screens for (structure,
        correlation, baggage) are on: every span is judged in full."""
        required_keys = {key for _, spec in self._ops for key in spec.required}
        self._chunked = bool(
            (paths or top or deprecated)
            and not self._spans
            and not self._general_relations
            and not any("." in key or key == "baggage" for key in required_keys)
            and (not deprecated or self._layout.strict_notices)
        )
        """Lines are screened by `ProbeLayout.refusing` decoders, which take a line only when no
        local rule and no baggage screen would have anything to say about it: nothing they take
        is kept, and only the lines they refuse are decoded to be judged."""
        self._plain_fields = schema is not None and schema.required_fields == _DEFAULT_FIELDS
        self._relational = bool(
            self._structure
            or self._correlation
            or self._propagate
            or self._baggage
            or self._any_requires
            or self._any_produces
            or self._outcomes
        )

    # ---- public API ----------------------------------------------------------------------------

    def observe(self, store: TraceStore, change: Change) -> FindingDelta:
        """Check what one ingest batch added; returns findings added and removed."""
        delta = FindingDelta()
        if change.new:
            try:
                self._observe(store, change, delta)
            finally:
                self._end_batch()
        if change.evicted:  # after: spans of this very batch may be gone already
            self._prune(store, delta)
        return delta

    def finish(self, store: TraceStore) -> FindingDelta:
        """End of a static input: judge every trace as a whole."""
        delta = FindingDelta()
        try:
            for top in list(self._touched):
                self._whole_trace(store, top, delta)
            self._touched.clear()
        finally:
            self._end_batch()
        return delta

    def tick(self, store: TraceStore, now: float) -> FindingDelta:
        """Live input: judge traces that have had no new span for the quiet period.

        `now` is any clock in seconds (`time.monotonic()`, `time.time()`), as long as every call
        uses the same one: quiet time counts from the first tick after a trace's last activity.
        """
        delta = FindingDelta()
        quiet = self.contracts.quiet_period
        touched = self._touched
        due: list[int | str] = []
        for top, seen in touched.items():
            if seen is None:
                touched[top] = now
            elif now - seen >= quiet:
                due.append(top)
        try:
            for top in due:
                del self._touched[top]
                self._whole_trace(store, top, delta)
        finally:
            self._end_batch()
        return delta

    def _end_batch(self) -> None:
        """Drop what was decoded for this batch (decoded once per span per batch)."""
        self._batch = []
        self._batch_strict = False
        self._batch_rules = []
        self._failed = []
        self._batch_flagged = None
        self._cache.clear()
        self._bag_seen.clear()

    def judge_loaded(self, store: TraceStore, chunk: int = 8192) -> FindingDelta:
        """Check a store loaded without the checker (a static file), then `finish`."""
        delta = FindingDelta()
        events = list(store.events())
        for i in range(0, len(events), chunk):
            try:
                self._observe_local(store, events[i : i + chunk], delta)
            finally:
                self._end_batch()
        if self._relational:
            for top in list(store.top()):
                if isinstance(top, str):
                    self._touched[top] = None  # judged (partially) as a whole trace below
                    self._waiting.add(top)
                    self._pending.update(
                        node.seq for _, node in store.subtree(top) if isinstance(node, Span)
                    )
                    continue
                self._touched[top.seq] = None
                try:
                    self._relational_tree(store, top, False, delta)
                finally:
                    self._end_batch()
        delta.merge(self.finish(store))
        return delta

    def findings_for(self, seq: int) -> list[Finding]:
        """Current findings about one span."""
        return list(self._by_seq.get(seq, ()))

    def all(self) -> Iterator[Finding]:
        """Every current finding, in span arrival order."""
        for seq in sorted(self._by_seq):
            yield from self._by_seq[seq]

    def __len__(self) -> int:
        return sum(self.counts.values())

    # ---- bookkeeping ---------------------------------------------------------------------------

    def _finding(self, rule: str, span: Span, field: str | None, message: str) -> Finding:
        return Finding(
            rule=rule,
            severity=self._sev[rule],
            trace_id=span.trace_id,
            seq=span.seq,
            field=field,
            message=message,
            hint=RULES[rule].hint,
        )

    def _add(self, finding: Finding, delta: FindingDelta) -> None:
        lst = self._by_seq.get(finding.seq)
        if lst is None:
            self._by_seq[finding.seq] = [finding]
        else:
            lst.append(finding)
        self.counts[finding.severity] += 1
        delta.added.append(finding)

    def _drop(self, finding: Finding, delta: FindingDelta) -> None:
        lst = self._by_seq.get(finding.seq)
        if lst is None:
            return
        try:
            lst.remove(finding)
        except ValueError:
            return
        if not lst:
            del self._by_seq[finding.seq]
        self.counts[finding.severity] -= 1
        delta.removed.append(finding)

    def _replace(self, key: Key, new: list[Finding], delta: FindingDelta) -> None:
        old = self._owned.pop(key, None)
        if new:
            self._owned[key] = new
        if not old:
            for f in new:
                self._add(f, delta)
            return
        if old == new:
            return
        gone = Counter(old)
        gone.subtract(new)
        came = Counter(new)
        came.subtract(old)
        for f, n in gone.items():
            for _ in range(n):
                self._drop(f, delta)
        for f, n in came.items():
            for _ in range(n):
                self._add(f, delta)

    def _prune(self, store: TraceStore, delta: FindingDelta) -> None:
        """Forget findings and state of evicted spans."""

        def gone(seq: int) -> bool:
            return store.get(seq) is None

        for key in [k for k in self._owned if isinstance(k[1], int) and gone(k[1])]:
            for f in self._owned.pop(key):
                self._drop(f, delta)
        for seq in [s for s in self._by_seq if gone(s)]:
            for f in list(self._by_seq[seq]):
                self._drop(f, delta)
        for key in [k for k in self._owned if isinstance(k[1], str) and k[1] in store.by_id]:
            for f in self._owned.pop(key):
                self._drop(f, delta)
        self._trace_owned = {k[1] for k in self._owned if k[0] == "trace"}
        for state in (self._leaked, self._produced):
            for seq in [s for s in state if gone(s)]:
                del state[seq]
        self._partial = {s for s in self._partial if not gone(s)}
        self._pending = {s for s in self._pending if not gone(s)}
        self._waiting = {w for w in self._waiting if w not in store.by_id and store.has_children(w)}
        for top in [t for t in self._touched if isinstance(t, int) and gone(t)]:
            del self._touched[top]

    # ---- decoding ------------------------------------------------------------------------------

    def _decode_chunked(self, new: list[Span], raws: list[bytes]) -> None:
        """Screen a batch with refusing decoders (see `_chunked`); probes only for the lines of
        refused lines (`_failed`), None for the others."""
        n = len(new)
        rules = self._rules_of(new)
        layout = self._layout
        any_required = self._any_required
        bag = self._baggage
        groups: defaultdict[tuple[int, bool], list[int]] = defaultdict(list)
        roots = map(is_, map(_get_parent_id, new), repeat(None))
        for i, key in enumerate(zip(map(id, rules), roots, strict=True)):
            groups[key].append(i)
        failed: list[int] = []
        resting = self._resting
        for (_, root), idx in groups.items():
            required = rules[idx[0]].required if any_required else ()
            if resting.get((required, root)):  # most of these lines broke a rule lately
                resting[required, root] -= 1
                failed.extend(idx)
                continue
            # A root's baggage is its own (session ids belong there): only children are refused
            # for denied or unlisted keys.
            strict_bag = bag and not root
            decoder = layout.refusing(
                required, self._allow if strict_bag else None, self._deny if strict_bag else None
            )
            lines = list(map(raws.__getitem__, idx))
            buf = memoryview(b"\n".join(lines))
            ends: list[int] = []  # where each line ends in `buf` (worked out at a refusal)
            # Decode from `a` to the end; msgspec names the line it refuses: that one is judged,
            # and the screen goes on after it (what it took is not kept, so nothing is redone).
            a = 0
            refused = 0
            while a < len(lines):
                if refused >= 8 and refused * 4 > a:  # most lines refused: stop trying
                    failed.extend(idx[a:])
                    resting[required, root] = _REST_BATCHES
                    break
                try:
                    if (
                        len(decoder.decode_lines(buf[ends[a - 1] + a if a else 0 :]))
                        == len(lines) - a
                    ):
                        break
                    at = -1  # pragma: no cover - a line held a raw newline
                except msgspec.ValidationError as exc:
                    found = _REFUSED_LINE.search(str(exc))
                    at = int(found.group(1)) if found else -1
                except (msgspec.MsgspecError, RecursionError):
                    at = -1
                if at < 0:  # cannot tell which line: judge all the rest
                    failed.extend(idx[a:])
                    break
                refused += 1
                failed.append(idx[a + at])
                a += at + 1
                if not ends:
                    ends = list(accumulate(map(len, lines)))
        failed.sort()
        batch: list[Any] = [None] * n
        self._batch_strict = False
        if failed:
            probes, self._batch_strict = layout.decode_batch(list(map(raws.__getitem__, failed)))
            for i, probe in zip(failed, probes, strict=True):
                batch[i] = probe
        self._batch = batch
        self._batch_rules = rules
        self._failed = failed

    def _probe(self, span: Span) -> Any:
        idx = span.seq - self._batch_first
        batch = self._batch
        if 0 <= idx < len(batch):
            probe = batch[idx]
            if probe is not None:
                return probe
        probe = self._cache.get(span.seq)
        if probe is None:
            probe = self._cache[span.seq] = self._layout.decode(span.raw)
        return probe

    def _op_rules(self, span: Span) -> _OpRules:
        key = (span.operation, span.layer)
        rules = self._ops_cache.get(key)
        if rules is None:
            names = qualified(span)
            required: list[str] = []
            requires: dict[str, Requirement] = {}
            produces: set[str] = set()
            for glob, spec in self._ops:
                if any(fnmatch.fnmatchcase(n, glob) for n in names):
                    required.extend(k for k in spec.required if k not in required)
                    requires.update(spec.requires)
                    produces.update(spec.produces)
            flat = [self._layout.attr[k] for k in required]
            present = attrgetter(*(flat * 2 if len(flat) == 1 else flat)) if flat else None
            rules = _OpRules(
                names[0], tuple(required), present, tuple(requires.items()), frozenset(produces)
            )
            self._ops_cache[key] = rules
            if span.operation and "." in span.operation:  # the layer does not matter
                self._ops_by_name[span.operation] = rules
        return rules

    # ---- the batch -----------------------------------------------------------------------------

    def _observe(self, store: TraceStore, change: Change, delta: FindingDelta) -> None:
        new = change.new
        screened = self.screen.collect(new) if self.screen is not None else None
        if screened is not None and screened[2] != self._worked_around(new):
            screened = None  # the decoders disagree on which lines needed working around
        if screened is None:
            found, marks = self.local_pass(new)
        else:  # the screen process judged the batch's lines; identity is judged here
            mine = self.local_pass(new, lines=False)[0]
            redone = {span.seq for span in self._redone(new)}
            found = merge_local(mine, screened[0], redone)
            marks = screened[1]
        self._record_local(store, new, found, delta)
        if self._relational:
            self._observe_relations(store, change, delta, marks)

    def local_pass(
        self, new: list[Span], fields: bool = True, lines: bool = True
    ) -> tuple[dict[int, list[Finding]], list[int]]:
        """The local rules of a batch on their own: findings by seq, and the positions in the
        batch of spans whose own baggage holds a denied or unlisted key (their parent decides
        whether that is a leak). The batch's probes stay until `_end_batch`.

        `fields` and `lines`: the two parts of the local rules (see `_local_batch`).
        """
        self._batch_first = new[0].seq
        if not lines:
            return self._local_batch(new, fields, lines), []
        if self._need_probe:
            raws = list(map(_get_raw_bytes, new))
            if not all(raws):  # spooled already: read back
                raws = [s.raw for s in new]
            if self._chunked:
                self._decode_chunked(new, raws)
            else:
                self._batch, self._batch_strict = self._layout.decode_batch(raws)
        found = self._local_batch(new, fields, lines)
        marks: list[int] = []
        if self._bag_attr:
            if not self._chunked:
                marks = list(compress(range(len(new)), self._bag_suspects(self._batch)))
            elif self._failed:  # the others' baggage was refused if suspect
                batch = self._batch
                flags = self._bag_suspects(list(map(batch.__getitem__, self._failed)))
                marks = list(compress(self._failed, flags))
        return found, marks

    def start_screen(self) -> ScreenProcess | None:
        """Start a helper process for the local rules (when the rules allow it, and
        `TRACETUI_SCREEN` is not `0`; see `contracts.remote`); hand it to the loader. Stop it
        with `stop_screen`."""
        said = os.environ.get("TRACETUI_SCREEN")
        if self.screen is None and self._chunked and said != "0":
            self.screen = ScreenProcess(self.contracts)
            if said == "1":  # forced: judge every batch there, the first ones too
                self.screen.wait_ready()
        return self.screen

    def stop_screen(self) -> None:
        """Stop the helper process, if any; later batches are judged in this process."""
        if self.screen is not None:
            self.screen.close()
            self.screen = None

    def judge_lines(self, new: list[Span]) -> tuple[dict[int, list[Finding]], list[int], list[int]]:
        """`local_pass` of the rules that read the lines again, for a batch that goes no
        further (the helper process's side: its spans need no agent identity), and the
        positions of the spans its decoder had to work around."""
        try:
            found, marks = self.local_pass(new, fields=False)
            return found, marks, self._worked_around(new)
        finally:
            self._end_batch()

    def _observe_local(self, store: TraceStore, new: list[Span], delta: FindingDelta) -> None:
        """Local rules and duplicate/cycle flags for a batch (its probes stay for the batch)."""
        self._record_local(store, new, self.local_pass(new)[0], delta)

    def _record_local(
        self,
        store: TraceStore,
        new: list[Span],
        found: dict[int, list[Finding]],
        delta: FindingDelta,
    ) -> None:
        """Record a batch's local findings, then its duplicate and cycle findings."""
        if found:
            owned = self._owned
            add = self._add
            for seq in sorted(found):
                lst = owned[("local", seq)] = found[seq]
                for f in lst:
                    add(f, delta)
        if self._structure and self._flagged(new):  # (no flag at all: the usual batch)
            flagged = [s for s in new if s.flags & (DUPLICATE | CYCLE)]
            if flagged:
                self._flags(store, flagged, delta)

    def _observe_relations(
        self, store: TraceStore, change: Change, delta: FindingDelta, marks: list[int]
    ) -> None:
        """Relational rules for spans whose parent chain this batch completed.

        Each new span is resolved once, after its parent (the batch is walked from its end: an
        emitter writes parents after their children): complete (its chain reaches a root) or
        pending (an ancestor has not arrived). A complete span is judged at once, so parents are
        always judged before their children; spans that were pending under a parent that has just
        arrived are judged by a walk down from it. Nothing else is revisited.
        """
        new = change.new
        first = new[0].seq
        n = len(new)
        touched = self._touched
        adopted = set(map(_get_trace_id, change.adopted)) if change.adopted else set()
        for tid in adopted.intersection(self._trace_owned):
            self._retract_trace(tid, delta)
        for tid in adopted.intersection(touched):
            del touched[tid]
        by_id = store.by_id
        is_cut = store.is_cut
        pending = self._pending
        waiting = self._waiting
        dead = self._dead_writes
        state: list[int | str | None] = [None] * n
        """Per new span: its top-level key once resolved (int: complete, the root's seq or -1
        when no whole-trace rule needs it; str: pending under that missing parent id)."""
        tops: set[int | str] = set()
        memo: dict[int, int | str] = {}
        judge = self._judge
        general = self._general_relations
        structure = self._structure
        correlation = self._correlation
        inline = not (general or dead)
        bag_flags = [False] * n
        for j in marks:
            bag_flags[j] = True
        for i in range(n - 1, -1, -1):
            if state[i] is not None:
                continue
            node = new[i]
            pid = node.parent_id
            parent: Span | None = None
            chain: Sequence[Span] = (node,)
            top: int | str
            if pid is None or (node.flags & CYCLE and is_cut(node)):
                top = node.seq if dead else -1
            elif (parent := by_id.get(pid)) is None:
                top = pid
            elif 0 <= (j := parent.seq - first) < n:
                known = state[j]
                if known is None:  # the parent comes earlier in the batch and is unresolved
                    chain, parent, top = self._resolve_up(store, node, state, first, memo)
                elif (
                    known.__class__ is int and inline and not (waiting and node.trace_id in waiting)
                ):
                    # The usual span (its parent came after it, in this batch, and is complete),
                    # screened inline: the loop below does the same for a chain of one.
                    state[i] = known
                    if bag_flags[i] or (
                        correlation
                        and node.correlation_id is not None
                        and (pc := parent.correlation_id) is not None
                        and node.parent_correlation_id != pc
                    ):
                        judge(node, parent, delta)
                    elif structure:
                        try:
                            early = node.ts < parent.ts - _EPSILON  # type: ignore[operator]
                        except TypeError:
                            early = False
                        if early:
                            judge(node, parent, delta)
                    continue
                else:
                    top = known
            elif parent.seq in pending:
                top = self._placeholder_of(by_id, parent, memo)
            else:
                top = self._root_of(store, parent, memo) if dead else -1
            if top.__class__ is str:  # pending: an ancestor has not arrived
                for node in chain:
                    seq = node.seq
                    state[seq - first] = top
                    pending.add(seq)
                    if waiting:
                        waiting.discard(node.trace_id)
                waiting.add(top)
                tops.add(top)
                continue
            if dead:
                tops.add(top)
            for node in chain:
                seq = node.seq
                j = seq - first
                state[j] = top
                if general:  # (a new span was never judged before: none is partial)
                    judge(node, parent, delta)
                elif parent is not None:
                    # A screen for the common case, where nothing can be found.
                    if bag_flags[j] or (
                        correlation
                        and node.correlation_id is not None
                        and (pc := parent.correlation_id) is not None
                        and node.parent_correlation_id != pc
                    ):
                        judge(node, parent, delta)
                    elif structure:
                        try:  # timestamps are floats or None once decoded
                            early = node.ts < parent.ts - _EPSILON  # type: ignore[operator]
                        except TypeError:
                            early = False
                        if early:
                            judge(node, parent, delta)
                if waiting and (tid := node.trace_id) in waiting:
                    waiting.discard(tid)
                    if by_id.get(tid) is node:
                        self._judge_waiting(store, node, top, state, first, delta)  # type: ignore[arg-type]
                parent = node
        for top in tops:
            touched[top] = None
            self._retract_trace(top, delta)

    def _resolve_up(
        self,
        store: TraceStore,
        span: Span,
        state: list[int | str | None],
        first: int,
        memo: dict[int, int | str],
    ) -> tuple[list[Span], Span | None, int | str]:
        """Resolve `span` whose parent is new in the batch and not resolved yet.

        Returns the chain of unresolved new spans from the highest down to `span`, the parent of
        the highest, and the top-level key they all share.
        """
        n = len(state)
        by_id = store.by_id
        path: list[Span] = []
        node = span
        parent: Span | None
        top: int | str
        while True:
            path.append(node)
            pid = node.parent_id
            if pid is None or (node.flags & CYCLE and store.is_cut(node)):
                parent, top = None, node.seq
                break
            parent = by_id.get(pid)
            if parent is None:
                top = pid
                break
            j = parent.seq - first
            if 0 <= j < n:
                known = state[j]
                if known is None and len(path) <= n:
                    node = parent
                    continue
                top = known if known is not None else pid  # a loop the store did not cut
            elif parent.seq in self._pending:
                top = self._placeholder_of(by_id, parent, memo)
            else:
                top = self._root_of(store, parent, memo)
            break
        if isinstance(top, int) and not self._dead_writes:
            top = -1
        path.reverse()
        return path, parent, top

    def _placeholder_of(
        self, by_id: dict[str, Span], span: Span, memo: dict[int, int | str]
    ) -> str:
        """The missing parent id above a pending span."""
        hit = memo.get(span.seq)
        if isinstance(hit, str):
            return hit
        node = span
        budget = len(by_id) + 1
        while budget > 0:
            pid = node.parent_id
            if pid is None:
                break
            parent = by_id.get(pid)
            if parent is None:
                memo[span.seq] = pid
                return pid
            node = parent
            budget -= 1
        return str(node.parent_id)  # pragma: no cover - a pending span always has one

    def _root_of(self, store: TraceStore, span: Span, memo: dict[int, int | str]) -> int:
        """The root seq above a complete span (only needed for whole-trace rules)."""
        hit = memo.get(span.seq)
        if isinstance(hit, int):
            return hit
        chain = store.ancestors(span)
        root = (chain[-1] if chain else span).seq
        memo[span.seq] = root
        return root

    def _judge_waiting(
        self,
        store: TraceStore,
        span: Span,
        top: int,
        state: list[int | str | None],
        first: int,
        delta: FindingDelta,
    ) -> None:
        """`span` just completed the chain of spans pending under its id: judge them all."""
        pending = self._pending
        n = len(state)
        stack: list[tuple[Span, Span]] = [
            (kid, span) for kid in reversed(store.children(span)) if kid.seq in pending
        ]
        while stack:
            node, parent = stack.pop()
            seq = node.seq
            pending.discard(seq)
            if 0 <= seq - first < n:
                state[seq - first] = top
            self._judge(node, parent, delta)
            kids = store.children(node)
            if kids:
                stack.extend([(kid, node) for kid in reversed(kids)])

    def _judge(self, span: Span, parent: Span | None, delta: FindingDelta) -> None:
        """Relational rules for one span whose whole chain is present."""
        found = self._relations(span, parent, False)
        seq = span.seq
        was_partial = self._partial
        if seq in was_partial:
            self._replace(("rel", seq), found, delta)
            was_partial.discard(seq)
        elif found:
            self._owned[("rel", seq)] = found
            for f in found:
                self._add(f, delta)

    def _retract_trace(self, top: int | str, delta: FindingDelta) -> None:
        if top in self._trace_owned:
            self._set_trace(top, [], delta)

    def _set_trace(self, top: int | str, found: list[Finding], delta: FindingDelta) -> None:
        """Replace the whole-trace findings of one top-level entry."""
        self._replace(("trace", top), found, delta)
        if found:
            self._trace_owned.add(top)
        else:
            self._trace_owned.discard(top)

    def _relational_tree(
        self, store: TraceStore, root: Span, partial: bool, delta: FindingDelta
    ) -> None:
        """Relational rules for `root` and its descendants, each parent before its children."""
        relations = self._relations
        children = store.children
        owned = self._owned
        was_partial = self._partial
        stack: list[tuple[Span, Span | None]] = [(root, store.parent(root))]
        while stack:
            span, parent = stack.pop()
            found = relations(span, parent, partial)
            seq = span.seq
            if seq in was_partial:
                self._replace(("rel", seq), found, delta)
                if not partial:
                    was_partial.discard(seq)
            elif found:
                owned[("rel", seq)] = found
                for f in found:
                    self._add(f, delta)
            if partial:
                was_partial.add(seq)
            kids = children(span)
            if kids:
                stack.extend([(kid, span) for kid in kids])

    # ---- local rules ---------------------------------------------------------------------------

    def _local_batch(
        self, new: list[Span], fields: bool = True, lines: bool = True
    ) -> dict[int, list[Finding]]:
        """Local rules for a batch, one rule family at a time.

        Each family first screens the whole batch with column-wise C-level operations (`map`
        over attribute getters, set inclusion, `count`): on a clean batch that is all it costs.
        The exact check then runs only on the spans the screen let through, so each span's
        findings come out in the same order whatever the screens let through.

        A helper process can judge a batch on spans decoded without agent identity (see
        `contracts.remote`): it runs with `lines` only (everything but the agent context
        shape), and this process with `fields` only (the agent context shape, and the schema
        fields of the spans in `_redone`); `merge_local` puts the two back in this order.
        """
        found: dict[int, list[Finding]] = {}
        new_lines = new if lines else []

        def out(span: Span) -> list[Finding]:
            lst = found.get(span.seq)
            if lst is None:
                lst = found[span.seq] = []
            return lst

        probes = self._batch
        looked = new_lines  # the spans whose probes the rules below look at
        rules: list[_OpRules] | None = None
        strict = self._batch_strict
        if self._chunked and lines:  # only the lines of refused chunks
            failed = self._failed
            looked = list(map(new.__getitem__, failed))
            probes = list(map(probes.__getitem__, failed))
            rules = list(map(self._batch_rules.__getitem__, failed))
        metas = list(map(_get_metadata, probes)) if self._need_probe and looked else []
        if lines:
            schema_suspects, agentless = self._field_screen(new, agent_part=fields)
        else:
            schema_suspects, agentless = self._redone(new), self._agentless(new)
        for span in schema_suspects:
            self._schema_fields(span, out(span))
        layout = self._layout
        if looked and self._check_summary and not (strict and layout.strict_summaries):
            for span in self._summary_suspects(looked, probes):
                self._summaries(span, out(span))
        if looked and self._any_required:
            for span, rule in self._required_suspects(looked, metas, rules):
                self._required_data(span, rule, out(span))
        if self._spans:
            for span in new_lines:
                self._span_contracts(span, found)
        if looked and self._dep_noticed and not (strict and layout.strict_notices):
            for span in self._deprecated_suspects(looked, metas):
                self._deprecated_fields(span, found)
        for span in agentless:
            self._agent_context(span, found)
        if self._check_shape and lines:
            for span in self._bad_ids(new):
                self._id_shape(span, out(span))
        return {seq: lst for seq, lst in found.items() if lst}

    def _field_screen(
        self, new: list[Span], agent_part: bool = True
    ) -> tuple[list[Span], list[Span]]:
        """One pass over the spans' own fields: those that may break the schema, and those with
        an incomplete agent identity (for the agent context shape, with `agent_part`)."""
        schema = self._schema
        suspects: list[Span] = []
        agentless: list[Span] = []
        agent_shape = self._agent_shape and agent_part
        if schema is None and not agent_shape:
            return suspects, agentless
        if schema is not None and not self._plain_fields:
            suspects = list(new)  # other required fields: look at each
        plain = schema is not None and self._plain_fields
        layers = schema.layers if schema is not None else frozenset()
        statuses = schema.statuses if schema is not None else frozenset()
        for span in new:
            layer = span.layer
            if plain and (
                span.flags & SCHEMA
                or span.ts is None
                or layer not in layers
                or span.status not in statuses
                or not span.operation
                or ((d := span.duration_ms) is not None and d < 0)
            ):
                suspects.append(span)
            if agent_shape and (span.agent is None or span.run_id is None):
                agentless.append(span)
        return suspects, agentless

    def _redone(self, new: list[Span]) -> list[Span]:
        """Spans whose schema rules this process judges even though a helper judged the lines:
        those its decoder had to work around (`SCHEMA`). The helper decodes without agent
        identity, so it may not see what is wrong with their metadata; on every other span its
        decoder reads the same fields, and its schema findings stand."""
        if self._schema is None:
            return []
        return list(map(new.__getitem__, self._worked_around(new)))

    def _worked_around(self, new: list[Span]) -> list[int]:
        """Positions in the batch of the spans its decoder had to work around (`SCHEMA`)."""
        if not self._flagged(new):
            return []
        return [i for i, span in enumerate(new) if span.flags & SCHEMA]

    def _flagged(self, new: list[Span]) -> bool:
        """Whether any span of the batch has a flag (worked out once per batch)."""
        if self._batch_flagged is None:
            self._batch_flagged = any(map(_get_flags, new))
        return self._batch_flagged

    def _agentless(self, new: list[Span]) -> list[Span]:
        """Spans with an incomplete agent identity (screened column-wise)."""
        if not self._agent_shape or (all(map(_get_agent, new)) and all(map(_get_run_id, new))):
            return []
        return [span for span in new if span.agent is None or span.run_id is None]

    def _summary_suspects(self, new: list[Span], probes: list[Any]) -> list[Span]:
        """Spans with a summary longer than the limit (screened by the longest of the batch)."""
        limit = self._summary_max
        try:
            longest = max(
                max(map(len, map(_get_input, probes))), max(map(len, map(_get_output, probes)))
            )
        except TypeError:  # a summary that is null or a number: look at each
            longest = limit + 1
        if longest <= limit:
            return []
        return [
            span
            for span, probe in zip(new, probes, strict=True)
            if (probe.input_summary.__class__ is str and len(probe.input_summary) > limit)
            or (probe.output_summary.__class__ is str and len(probe.output_summary) > limit)
        ]

    def _rules_of(self, new: list[Span]) -> list[_OpRules]:
        """The operation rules of each span of a batch."""
        ops = list(map(_get_operation, new))
        by_name = self._ops_by_name
        if by_name.keys() >= set(ops):
            return list(map(by_name.__getitem__, ops))
        # Operation names the layer qualifies (`transition`): by (operation, layer).
        cache = self._ops_cache
        return [cache.get((span.operation, span.layer)) or self._op_rules(span) for span in new]

    def _required_suspects(
        self, new: list[Span], metas: list[Any], rules: list[_OpRules] | None = None
    ) -> list[tuple[Span, _OpRules]]:
        """Spans (with their operation rules) that may lack a required metadata key."""
        if rules is None:
            rules = self._rules_of(new)
        need = list(map(_get_required, rules))
        picked = list(compress(rules, need))
        fine = list(map(all, map(call, map(_get_present, picked), compress(metas, need))))
        if all(fine):
            return []
        spans = list(compress(new, need))
        out: list[tuple[Span, _OpRules]] = []
        i = -1
        with contextlib.suppress(ValueError):
            while True:
                i = fine.index(False, i + 1)
                out.append((spans[i], picked[i]))
        return out

    def _deprecated_suspects(self, new: list[Span], metas: list[Any]) -> list[Span]:
        """Spans that may carry a deprecated key (none, when no line has any noticed key)."""
        layout = self._layout
        read, clean = layout.notice_read, layout.notice_clean
        values = list(map(read, metas))
        if values.count(clean) == len(values):
            return []
        maybe = layout.maybe_noticed
        return [span for span, v in zip(new, values, strict=True) if v != clean and maybe(v)]

    def _bad_ids(self, new: list[Span]) -> list[Span]:
        """Spans whose id is not `{short layer}_{digits}_{hex}`.

        The usual batch, where every id is well shaped, is told by one possessive regex over the
        ids and one comparison of their first four characters with their layers' `alt_` …; the
        others are found by `_bad_ids_among`.
        """
        ids = list(map(_get_trace_id, new))
        joined = "\n".join(ids) + "\n"
        if (
            joined.count("\n") == len(new)
            and _SHAPED_IDS.match(joined).end() == len(joined)  # type: ignore[union-attr]
            and list(map(_FIRST_4, ids)) == list(map(_ID_PREFIX.get, map(_get_layer, new)))
        ):
            return []
        return self._bad_ids_among(new, "\n".join([f"{s.layer}|{s.trace_id}" for s in new]) + "\n")

    def _bad_ids_among(self, new: list[Span], joined: str) -> list[Span]:
        """`_bad_ids` the long way: one regex over the batch's `layer|id` lines."""
        if joined.count("\n") != len(new):  # an id holding a newline: go one by one
            return [s for s in new if not _good_id(s)]
        pos = _GOOD_IDS.match(joined).end()  # type: ignore[union-attr]  # `*` always matches
        if pos == len(joined):
            return []
        bad: list[Span] = []
        line = joined.count("\n", 0, pos)
        for m in _BAD_ID_LINE.finditer(joined, pos, len(joined) - 1):
            line += joined.count("\n", pos, m.start())
            pos = m.start()
            bad.append(new[line])
        return bad

    def _deprecated_fields(self, span: Span, found: dict[int, list[Finding]]) -> None:
        """Deprecated paths present in the span's metadata (rare: decodes the whole line)."""
        meta = span.metadata()
        for path, advice in self._deprecated:
            if lookup(meta, path) is not UNSET:
                found.setdefault(span.seq, []).append(
                    self._finding(
                        "propagation.deprecated_field",
                        span,
                        f"metadata.{path}",
                        f"metadata.{path} is deprecated: {advice}",
                    )
                )

    def _schema_fields(self, span: Span, out: list[Finding]) -> None:
        """Required fields, types, layer, status and duration of one span."""
        schema = self._schema
        assert schema is not None
        sev = self._sev
        typed = self._wrong_types(span, out) if span.flags & SCHEMA else set()
        if "schema.missing_field" in sev:
            for name in schema.required_fields:
                if name not in typed and not self._has_field(span, name):
                    out.append(
                        self._finding(
                            "schema.missing_field", span, name, f"required field {name} is missing"
                        )
                    )
        layer = span.layer
        if layer is not None and layer not in schema.layers and "schema.unknown_layer" in sev:
            out.append(
                self._finding(
                    "schema.unknown_layer", span, "hrm_layer", f"unknown layer {_show(layer)}"
                )
            )
        status = span.status
        if status is not None and status not in schema.statuses and "schema.unknown_status" in sev:
            out.append(
                self._finding(
                    "schema.unknown_status", span, "status", f"unknown status {_show(status)}"
                )
            )
        dur = span.duration_ms
        if dur is not None and dur < 0 and "schema.negative_duration" in sev:
            out.append(
                self._finding(
                    "schema.negative_duration", span, "duration_ms", f"duration_ms is {dur:g}"
                )
            )

    def _summaries(self, span: Span, out: list[Finding]) -> None:
        probe = self._probe(span)
        limit = self._summary_max
        for name in ("input_summary", "output_summary"):
            value = getattr(probe, name)
            if isinstance(value, str) and len(value) > limit:
                out.append(
                    self._finding(
                        "schema.summary_too_long",
                        span,
                        name,
                        f"{name} is {len(value)} characters long (at most {limit})",
                    )
                )

    def _wrong_types(self, span: Span, out: list[Finding]) -> set[str]:
        typed: set[str] = set()
        for issue in span.issues:
            name = issue.partition(": ")[0]
            if issue == "trace_id: missing":
                continue
            typed.add(name)
            if "schema.wrong_type" in self._sev:
                field = name if name != "schema" else None
                out.append(self._finding("schema.wrong_type", span, field, issue))
        return typed

    def _has_field(self, span: Span, name: str) -> bool:
        if name == "trace_id":
            return not span.trace_id.startswith("<no trace_id")
        if name == "timestamp":
            return span.ts is not None
        if name == "hrm_layer":
            return span.layer is not None
        if name == "operation":
            return bool(span.operation)
        if name == "status":
            return span.status is not None
        if name == "component":
            return bool(span.component)
        if name == "duration_ms":
            return span.duration_ms is not None
        if name.encode() not in span.raw and b"\\u" not in span.raw:
            return False
        return span.fields().get(name) is not None

    def _id_shape(self, span: Span, out: list[Finding]) -> None:
        tid = span.trace_id
        if tid.startswith("<no trace_id"):
            return
        m = _ID_SHAPE.fullmatch(tid)
        if m is None:
            if _OTEL_ID.fullmatch(tid) and b'"otel.trace_id"' in span.raw:
                return  # an OpenTelemetry span id (16 hex digits), not the emitter's shape
            if "schema.trace_id_shape" in self._sev:
                out.append(
                    self._finding(
                        "schema.trace_id_shape",
                        span,
                        "trace_id",
                        f"trace_id {_show(tid)} is not shaped {{hrm}}_{{epoch}}_{{hex}}",
                    )
                )
            return
        prefix = m.group(1)
        expected = LAYER_SHORT.get(span.layer or "")
        if expected is not None and prefix != expected and "schema.trace_id_layer" in self._sev:
            out.append(
                self._finding(
                    "schema.trace_id_layer",
                    span,
                    "trace_id",
                    f"trace_id prefix {prefix!r} does not match layer {span.layer} "
                    f"(expected {expected!r})",
                )
            )

    def _required_data(self, span: Span, rules: _OpRules, out: list[Finding]) -> None:
        meta = self._probe(span).metadata
        get = self._get
        for key in rules.required:
            if get(key)(meta) is UNSET:
                out.append(
                    self._finding(
                        "data.missing_key",
                        span,
                        f"metadata.{key}",
                        f"{rules.name} should record metadata.{key}",
                    )
                )

    def _span_contracts(self, span: Span, found: dict[int, list[Finding]]) -> None:
        out = found.setdefault(span.seq, [])
        names: tuple[str, ...] | None = None
        for spec, needle in self._spans:
            match = spec.match
            if match.operation is not None:
                if names is None:
                    names = qualified(span)
                if not any(fnmatch.fnmatchcase(n, match.operation) for n in names):
                    continue
            if match.has is not None:
                if needle is not None and needle not in span.raw and b"\\u" not in span.raw:
                    continue
                pattern = match.has
                if not any(fnmatch.fnmatchcase(k, pattern) for k in span.metadata()):
                    continue
            kind = spec.name or match.operation or match.has or "span"
            probe = self._probe(span)
            meta = probe.metadata
            if "span.missing_attribute" in self._sev:
                for key in spec.required:
                    if self._get(key)(meta) is UNSET:
                        out.append(
                            self._finding(
                                "span.missing_attribute",
                                span,
                                f"metadata.{key}",
                                f"{kind} span needs attribute {key}",
                            )
                        )
            if spec.events is not None and "span.unknown_event" in self._sev:
                allowed = spec.events
                for name in _event_names(probe, self._get("events")(meta)):
                    if name not in allowed:
                        out.append(
                            self._finding(
                                "span.unknown_event",
                                span,
                                "events",
                                f"event {_show(name)} is not allowed on a {kind} span "
                                f"(allowed: {', '.join(allowed)})",
                            )
                        )

    def _agent_context(self, span: Span, found: dict[int, list[Finding]]) -> None:
        meta = span.metadata()
        if not any(key in meta for key in _AGENT_KEYS):
            return
        if span.agent is None:
            message = "agent context has no agent name (agent/name)"
        else:
            message = f"agent context of {_show(span.agent)} has no run id (run_id/runId)"
        found.setdefault(span.seq, []).append(
            self._finding("propagation.agent_context_shape", span, "metadata.agent", message)
        )

    def _flags(self, store: TraceStore, flagged: list[Span], delta: FindingDelta) -> None:
        """Duplicate-id and cycle findings, also on older spans the new ones flagged."""
        targets: dict[int, Span] = {}
        for span in flagged:
            targets[span.seq] = span
            if span.flags & DUPLICATE:
                for other in store.duplicates.get(span.trace_id, ()):
                    targets[other.seq] = other
            if span.flags & CYCLE:
                node = store.by_id.get(span.parent_id or "")
                steps = len(store)
                while node is not None and node is not span and steps > 0:
                    if not node.flags & CYCLE or node.seq in targets:
                        break
                    targets[node.seq] = node
                    node = store.by_id.get(node.parent_id or "")
                    steps -= 1
        for span in targets.values():
            found: list[Finding] = []
            if span.flags & DUPLICATE and "schema.duplicate_id" in self._sev:
                n = len(store.duplicates.get(span.trace_id, ())) or 2
                found.append(
                    self._finding(
                        "schema.duplicate_id",
                        span,
                        "trace_id",
                        f"{n} spans share the id {_show(span.trace_id)}",
                    )
                )
            if span.flags & CYCLE and "schema.parent_cycle" in self._sev:
                found.append(
                    self._finding(
                        "schema.parent_cycle",
                        span,
                        "parent_id",
                        f"parent chain loops back to this span (parent_id "
                        f"{_show(span.parent_id)}); the link was cut",
                    )
                )
            self._replace(("flag", span.seq), found, delta)

    # ---- relational rules ----------------------------------------------------------------------

    def _relations(self, span: Span, parent: Span | None, partial: bool) -> list[Finding]:
        """Rules that need the span's ancestors (all present unless `partial`)."""
        out: list[Finding] = []
        sev = self._sev
        if parent is not None:
            if self._structure:
                cs, ps = span.ts, parent.ts
                if (
                    isinstance(cs, float)
                    and isinstance(ps, float)
                    and cs < ps - _EPSILON
                    and "schema.child_before_parent" in sev
                ):
                    out.append(
                        self._finding(
                            "schema.child_before_parent",
                            span,
                            "timestamp",
                            f"starts {ps - cs:.3f}s before its parent {_show(parent.trace_id)}",
                        )
                    )
            if self._correlation and span.correlation_id is not None:
                pc = parent.correlation_id
                mine = span.parent_correlation_id
                if pc is not None and mine != pc:
                    self._correlation_finding(span, pc, mine, out)
            if self._propagate:
                self._propagation(span, parent, out)
        if self._baggage:
            self._baggage_rules(span, parent, out)
        if self._any_requires or self._any_produces:
            self._context(span, parent, partial, out)
        if self._outcomes and span.operation in _OUTCOMES:
            self._outcome(span, parent, out)
        return out

    def _correlation_finding(
        self, span: Span, pc: str, mine: str | None, out: list[Finding]
    ) -> None:
        field = "metadata.parent_correlation_id"
        if mine is None:
            if "propagation.missing_parent_correlation" in self._sev:
                out.append(
                    self._finding(
                        "propagation.missing_parent_correlation",
                        span,
                        field,
                        f"has a correlation id but no parent_correlation_id; "
                        f"the parent's correlation id is {_show(pc)}",
                    )
                )
        elif "propagation.parent_correlation_mismatch" in self._sev:
            out.append(
                self._finding(
                    "propagation.parent_correlation_mismatch",
                    span,
                    field,
                    f"parent_correlation_id is {_show(mine)} but the parent's correlation id "
                    f"is {_show(pc)}",
                )
            )

    def _propagation(self, span: Span, parent: Span, out: list[Finding]) -> None:
        pmeta = self._probe(parent).metadata
        meta = None
        for path, get in self._propagate:
            want = get(pmeta)
            if want is UNSET:
                continue
            if meta is None:
                meta = self._probe(span).metadata
            have = get(meta)
            if have is UNSET:
                message = f"metadata.{path} is missing; the parent has {_show(want)}"
            elif have != want:
                message = f"metadata.{path} is {_show(have)}; the parent has {_show(want)}"
            else:
                continue
            out.append(
                self._finding("propagation.value_changed", span, f"metadata.{path}", message)
            )

    def _bag(self, span: Span) -> tuple[dict[str, Any], bool] | None:
        """`metadata.baggage` and whether it is clean by itself (no denied, no unlisted key)."""
        seen = self._bag_seen
        if span.seq in seen:
            return seen[span.seq]
        raw = getattr(self._probe(span).metadata, self._bag_attr)
        verdict = self._bag_of(bytes(raw)) if raw else None
        seen[span.seq] = verdict
        return verdict

    def _bag_of(self, piece: bytes) -> tuple[dict[str, Any], bool] | None:
        """A baggage object decoded and judged, cached by its bytes: a trace repeats the same
        baggage on many spans. None when it is not an object."""
        hit = self._bag_cache.get(piece)
        if hit is None:
            value = value_of(msgspec.Raw(piece))
            if not isinstance(value, dict):
                return None
            hit = self._bag_verdict(value)
            if len(self._bag_cache) >= _BAG_CACHE:
                self._bag_cache.clear()
            self._bag_cache[piece] = hit
        return hit

    def _bag_suspects(self, probes: list[Any]) -> list[bool]:
        """Per span of the batch: whether its baggage is a non-empty object with a denied or an
        unlisted key (only then can a child-parent pair break a baggage rule). Column-wise: the
        raw baggage bytes of the batch, looked up in a cache of verdicts by those bytes."""
        keys = list(map(bytes, map(self._bag_read, probes)))
        cache = self._bag_flags
        unseen = set(keys).difference(cache)
        if unseen:
            if len(cache) + len(unseen) > _BAG_CACHE:
                cache.clear()
                unseen = set(keys)
            deny, allow = self._deny, self._allow
            for piece in unseen:
                try:
                    bag = _decode_any(piece) if piece else None
                except msgspec.DecodeError:
                    bag = None
                cache[piece] = (
                    isinstance(bag, dict)
                    and bool(bag)
                    and not (deny.isdisjoint(bag) and (allow is None or allow.issuperset(bag)))
                )
        return list(map(cache.__getitem__, keys))

    def _bag_verdict(self, bag: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        allow = self._allow
        clean = self._deny.isdisjoint(bag) and (allow is None or allow.issuperset(bag))
        return bag, clean

    def _baggage_rules(self, span: Span, parent: Span | None, out: list[Finding]) -> None:
        leaked = self._leaked
        if leaked:
            leaked.pop(span.seq, None)
        if parent is None:
            return
        mine_v = self._bag(span)
        if mine_v is None or not mine_v[0]:
            return
        theirs_v = self._bag(parent)
        if theirs_v is None or not theirs_v[0]:
            return
        mine, clean = mine_v
        theirs = theirs_v[0]
        if clean and (mine is theirs or mine == theirs):
            return
        deny = self._deny
        allow = self._allow
        leaks: dict[str, str] = {}
        upstream = leaked.get(parent.seq, {})
        for key, value in mine.items():
            if key not in theirs or theirs[key] != value:
                continue
            field = f"metadata.baggage.{key}"
            if key in deny:
                first = upstream.get(key)
                if first is None:
                    leaks[key] = span.trace_id
                    if "baggage.leaked" in self._sev:
                        out.append(
                            self._finding(
                                "baggage.leaked",
                                span,
                                field,
                                f"baggage {key} leaked here from the parent "
                                f"{_show(parent.trace_id)} (instance-specific: must not "
                                f"propagate)",
                            )
                        )
                else:
                    leaks[key] = first
                    if "baggage.leak_reached" in self._sev:
                        out.append(
                            self._finding(
                                "baggage.leak_reached",
                                span,
                                field,
                                f"baggage {key} reached this span through the leak at "
                                f"{_show(first)}",
                            )
                        )
            elif allow is not None and key not in allow and "baggage.not_allowed" in self._sev:
                out.append(
                    self._finding(
                        "baggage.not_allowed",
                        span,
                        field,
                        f"baggage {key} propagated from the parent but is not on the allow-list",
                    )
                )
        if leaks:
            leaked[span.seq] = leaks

    def _context(self, span: Span, parent: Span | None, partial: bool, out: list[Finding]) -> None:
        rules = self._op_rules(span)
        upstream: frozenset[str] | None
        if partial:
            upstream = None  # unknown: an ancestor never arrived
        elif parent is None:
            upstream = frozenset()
        else:
            upstream = self._produced.get(parent.seq, frozenset())
        mine = (upstream or frozenset()) | rules.produces
        if mine:
            self._produced[span.seq] = mine
        else:
            self._produced.pop(span.seq, None)
        if not rules.requires or upstream is None or not self._any_requires:
            return
        meta = self._probe(span).metadata
        sev = self._sev
        for key, req in rules.requires:
            if key in upstream:
                continue
            value = self._get(key)(meta)
            has_default = req.default is not None
            field = f"metadata.{key}"
            if value is UNSET and not has_default:
                if "context.dangling_read" in sev:
                    crit = "critical " if req.critical else ""
                    out.append(
                        self._finding(
                            "context.dangling_read",
                            span,
                            field,
                            f"requires {crit}context key {key} but nothing upstream produces it",
                        )
                    )
            elif (
                req.critical
                and has_default
                and (value is UNSET or value == req.default)
                and "context.shadow_default" in sev
            ):
                out.append(
                    self._finding(
                        "context.shadow_default",
                        span,
                        field,
                        f"critical context key {key} fell back to its default "
                        f"{_show(req.default)}: nothing upstream produces it",
                    )
                )

    def _outcome(self, span: Span, parent: Span | None, out: list[Finding]) -> None:
        rule = span.operation or ""
        if rule not in self._sev:
            return
        meta = self._probe(span).metadata
        get = self._get
        key = get("field")(meta)
        key_text = key if isinstance(key, str) else "?"
        target = parent if parent is not None else span
        if rule == "context.defaulted":
            default = get("default")(meta)
            shown = f" to {_show(default)}" if default is not UNSET else ""
            message = f"context key {key_text} was defaulted{shown}"
        else:
            message = f"context key {key_text} could not be resolved"
        for name in ("reason", "error"):
            why = get(name)(meta)
            if isinstance(why, str) and why:
                message += f" ({_show(why)[1:-1]})"
                break
        message += f" — reported by {_show(span.trace_id)}"
        field = f"metadata.{key}" if isinstance(key, str) else None
        out.append(self._finding(rule, target, field, message))

    # ---- whole-trace rules ---------------------------------------------------------------------

    def _whole_trace(self, store: TraceStore, top: int | str, delta: FindingDelta) -> None:
        found: list[Finding] = []
        if isinstance(top, str):
            kids = store.children(top) if top not in store.by_id else []
            if not kids:
                return
            if self._structure and "schema.parent_missing" in self._sev:
                for kid in kids:
                    found.append(
                        self._finding(
                            "schema.parent_missing",
                            kid,
                            "parent_id",
                            f"parent {_show(top)} never arrived",
                        )
                    )
            for kid in kids:
                self._relational_tree(store, kid, True, delta)
        else:
            root = store.get(top)
            if root is None:
                return
            if self._dead_writes:
                found.extend(self._dead(store, root))
        self._set_trace(top, found, delta)

    def _dead(self, store: TraceStore, root: Span) -> list[Finding]:
        """Produced keys no descendant requires (post-order, iterative)."""
        order: list[tuple[Span, int]] = []
        index: dict[int, int] = {}
        for _, node in store.subtree(root):
            if isinstance(node, Span):
                parent = store.parent(node) if node is not root else None
                index[node.seq] = len(order)
                order.append((node, index[parent.seq] if parent is not None else -1))
        below: list[set[str] | None] = [None] * len(order)
        out: list[Finding] = []
        for i in range(len(order) - 1, -1, -1):
            node, up = order[i]
            rules = self._op_rules(node)
            needed = below[i] or set()
            for key in sorted(rules.produces - needed):
                out.append(
                    self._finding(
                        "context.dead_write",
                        node,
                        f"metadata.{key}",
                        f"produces context key {key} but no descendant requires it",
                    )
                )
            if up >= 0:
                mine = needed | {k for k, _ in rules.requires}
                if mine:
                    acc = below[up]
                    if acc is None:
                        below[up] = set(mine)
                    else:
                        acc |= mine
        return out


_FAMILY_RANK: Final = {
    "schema.summary_too_long": 1,
    "data.missing_key": 2,
    "span.missing_attribute": 3,
    "span.unknown_event": 3,
    "propagation.deprecated_field": 4,
    "propagation.agent_context_shape": 5,
    "schema.trace_id_shape": 6,
    "schema.trace_id_layer": 6,
}
"""Where each local family comes in `_local_batch` (the other schema rules come first)."""


def _family_rank(finding: Finding) -> int:
    return _FAMILY_RANK.get(finding.rule, 0)


def merge_local(
    fields: dict[int, list[Finding]], lines: dict[int, list[Finding]], redone: set[int]
) -> dict[int, list[Finding]]:
    """The two parts of `_local_batch` (by seq) as one, each span's findings in its order;
    `lines`' schema findings about the `redone` spans are replaced by `fields`' own."""
    for seq, more in lines.items():
        if seq in redone:
            more = [f for f in more if _family_rank(f)]
        had = fields.get(seq)
        fields[seq] = sorted(had + more, key=_family_rank) if had else more
    return {seq: lst for seq, lst in fields.items() if lst}


def check_all(store: TraceStore, contracts: ContractSet, chunk: int = 8192) -> Checker:
    """Judge a fully loaded store (static input) and `finish` it.

    Local rules run over the spans in chunks (bounded memory for the batch decode); relational
    rules then run once over every tree, parents before children, and whole-trace rules last.
    """
    checker = Checker(contracts)
    checker.judge_loaded(store, chunk)
    return checker
