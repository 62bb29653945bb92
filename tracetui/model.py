"""The event model: one `Span` per trace line, plus the vocabulary of layers and statuses.

A `Span` keeps the line it came from (`raw`, exact bytes) and a compact index of the fields every
view needs (ids, layer, status, operation, component, duration, agent identity, correlation ids).
Everything else — summaries, metadata, unknown fields — is decoded from `raw` on demand, which keeps
a million resident events well under a kilobyte each and never alters what the app wrote.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import msgspec

from tracetui.spool import shared_spool

LAYERS: Final = ("altitude", "focus", "reasoning", "learning", "memory", "system")
"""The six HRM layers, in the order the UI numbers them (1–6)."""

LAYER_SHORT: Final = {
    "altitude": "alt",
    "focus": "foc",
    "reasoning": "rsn",
    "learning": "lrn",
    "memory": "mem",
    "system": "sys",
}
_LAYER_ALIASES: Final = {**{v: k for k, v in LAYER_SHORT.items()}, **{k: k for k in LAYERS}}

STATUSES: Final = ("success", "error", "blocked")

# Span.flags bits.
DUPLICATE: Final = 1
"""Another span carries the same trace_id."""
CYCLE: Final = 2
"""The span's parent chain loops back to itself (self-parent included); the loop is cut here."""
SCHEMA: Final = 4
"""The line did not fit the typed schema; see `Span.issues`."""


@functools.lru_cache(maxsize=1024)
def normalize_layer(value: str) -> str:
    """Map a layer name or alias in any case to its canonical name; unknown names are kept as-is."""
    return _LAYER_ALIASES.get(value.strip().lower(), value)


@functools.lru_cache(maxsize=1024)
def normalize_status(value: str) -> str:
    """Lower-case the three known statuses; unknown statuses are kept as-is."""
    low = value.strip().lower()
    return low if low in STATUSES else value


def layer_short(layer: str | None) -> str:
    """The bracketed tag: `alt`, `foc`, …; an unknown layer as written, `?` when absent."""
    if layer is None:
        return "?"
    return LAYER_SHORT.get(layer, layer)


_NO_RAW: Final = msgspec.Raw()


class Meta(msgspec.Struct, gc=False):
    """The parts of `metadata` the store indexes; everything else stays in `Span.raw`.

    Agent objects and labels stay encoded (`Raw`, empty when absent): the same agent object repeats
    on every span of a run, so the decoder reads each distinct one once and caches the result.
    """

    agent: msgspec.Raw = _NO_RAW
    agent_context: msgspec.Raw = _NO_RAW
    agentContext: msgspec.Raw = _NO_RAW
    agent_name: Any = msgspec.field(default=None, name="agent.name")
    agent_run_id: Any = msgspec.field(default=None, name="agent.run_id")
    labels: msgspec.Raw = _NO_RAW
    correlation_id: Any = None
    correlationId: Any = None
    parent_correlation_id: Any = None
    parentCorrelationId: Any = None


def _internal(name: str) -> Any:
    # Fields filled in by the decoder; a line carrying such a key takes the lenient path.
    return msgspec.field(default=None, name="@tracetui:" + name)


class Span(msgspec.Struct, gc=False):
    """One trace event as held by the store (also the typed schema the fast decoder reads).

    Attributes:
        raw_bytes: the line exactly as received (without its newline, CR or BOM), or empty once
            the store has spooled it (read it through the `raw` property either way).
        raw_ref: where the spool keeps the line, or -1.
        trace_id: the span's id (a placeholder such as `<no trace_id 0:7>` when the line had none).
        parent_id: the enclosing span's id, or None for a root.
        layer: canonical layer name (`altitude` …), an unknown layer as written, or None.
        status: `success`/`error`/`blocked`, an unknown status as written, or None.
        operation: the operation as written (e.g. `altitude.transition` or `transition`).
        component: file/class that emitted it.
        duration_ms: duration, or None when absent.
        ts: start time as epoch seconds once decoded (None when absent or unparseable).
        meta: the indexed metadata while decoding; cleared once its values are extracted.
        agent: agent name from the metadata conventions, or None.
        run_id: agent run id, or None.
        labels: agent labels as sorted `key=value` strings.
        correlation_id: `correlation_id`/`correlationId` from metadata.
        parent_correlation_id: `parent_correlation_id`/`parentCorrelationId` from metadata.
        origin: index into the store's origin table (file path, socket peer …).
        line_no: line number within that origin (1-based).
        seq: arrival order in the store (assigned on ingest).
        flags: DUPLICATE | CYCLE | SCHEMA bits.
        issues: what the lenient decoder had to work around, in plain words.
    """

    trace_id: str
    parent_id: str | None = None
    layer: str | None = msgspec.field(default=None, name="hrm_layer")
    status: str | None = None
    operation: str | None = ""
    component: str | None = ""
    duration_ms: float | None = None
    ts: float | str | None = msgspec.field(default=None, name="timestamp")
    meta: Meta | None = msgspec.field(default=None, name="metadata")
    raw_bytes: bytes = msgspec.field(default=b"", name="@tracetui:raw")
    raw_ref: int = msgspec.field(default=-1, name="@tracetui:raw_ref")
    agent: str | None = _internal("agent")
    run_id: str | None = _internal("run_id")
    labels: tuple[str, ...] = msgspec.field(default=(), name="@tracetui:labels")
    correlation_id: str | None = _internal("correlation_id")
    parent_correlation_id: str | None = _internal("parent_correlation_id")
    origin: int = msgspec.field(default=0, name="@tracetui:origin")
    line_no: int = msgspec.field(default=0, name="@tracetui:line_no")
    seq: int = msgspec.field(default=-1, name="@tracetui:seq")
    flags: int = msgspec.field(default=0, name="@tracetui:flags")
    issues: tuple[str, ...] = msgspec.field(default=(), name="@tracetui:issues")

    @property
    def raw(self) -> bytes:
        """The line exactly as received (read back from the spool when the store spooled it)."""
        data = self.raw_bytes
        if data or self.raw_ref < 0:
            return data
        return shared_spool().read(self.raw_ref)

    @property
    def start(self) -> float | None:
        """Start time in epoch seconds, or None."""
        ts = self.ts
        return ts if isinstance(ts, float) else None

    def fields(self) -> dict[str, Any]:
        """All top-level fields of the original line, decoded (unknown fields included)."""
        value = msgspec.json.decode(self.raw)
        return value if isinstance(value, dict) else {}

    def metadata(self) -> dict[str, Any]:
        """The line's `metadata` object, decoded; empty when absent or not an object."""
        meta = self.fields().get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def short_operation(self) -> str:
        """The operation without its `<layer>.` prefix: `altitude.transition` → `transition`."""
        op = self.operation or ""
        head, dot, tail = op.partition(".")
        if dot and self.layer is not None and normalize_layer(head) == self.layer:
            return tail
        return op


class SpanWithoutMeta(Span, gc=False):
    """A `Span` decoded with `metadata` skipped: no agent identity, labels or correlation ids.

    For one-shot commands that never look at them (`tree` without agent or label filters); the
    parser skips the metadata object instead of building it, which makes bulk loads much cheaper.
    """

    meta: Meta | None = msgspec.field(default=None, name="@tracetui:meta")


class Rejected(msgspec.Struct, gc=False, frozen=True):
    """A line that could not become a span: counted, kept, and shown escaped with its line number.

    Attributes:
        origin: index into the store's origin table.
        line_no: line number within that origin (1-based).
        reason: what was wrong, in plain words.
        preview: the start of the line, escaped for display.
    """

    origin: int
    line_no: int
    reason: str
    preview: str
