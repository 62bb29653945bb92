"""What the checker reports: one `Finding` per broken rule per span, and deltas of them."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

Severity = Literal["error", "warning", "info"]
SEVERITIES: Final = ("error", "warning", "info")
RANK: Final = {"error": 3, "warning": 2, "info": 1}
"""Higher is worse; `--fail-on warning` fails on rank ≥ 2."""


class Finding(msgspec.Struct, frozen=True, gc=False):
    """One broken rule, attached to the span it is about.

    Attributes:
        rule: stable dotted id such as `propagation.missing_parent_correlation`.
        severity: `error`, `warning` or `info` (after the contract's overrides).
        trace_id: id of the span the finding is about.
        seq: that span's arrival number in the store (`Span.seq`).
        field: dotted path of the field concerned, when one applies.
        message: what is wrong, in plain words.
        hint: what to do about it.
    """

    rule: str
    severity: str
    trace_id: str
    seq: int
    field: str | None
    message: str
    hint: str


class FindingDelta(msgspec.Struct, gc=False):
    """Findings that appeared and disappeared in one step of the checker."""

    added: list[Finding] = msgspec.field(default_factory=list)
    removed: list[Finding] = msgspec.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def merge(self, other: FindingDelta) -> None:
        """Fold a later delta into this one."""
        self.added.extend(other.added)
        self.removed.extend(other.removed)
