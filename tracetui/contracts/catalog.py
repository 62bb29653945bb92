"""Every rule the checker knows: its stable id, default severity and the hint shown with it.

Contract files refer to these ids in `severity` and `ignore` (globs such as `schema.*` allowed);
an id that matches nothing here is a mistake in the contract file and is reported as such.
"""

from __future__ import annotations

from typing import Final

import msgspec


class RuleInfo(msgspec.Struct, frozen=True):
    """A rule's default severity and its hint (what to do)."""

    severity: str
    hint: str


RULES: Final[dict[str, RuleInfo]] = {
    # 1. schema
    "schema.missing_field": RuleInfo("error", "Emit every required top-level field."),
    "schema.wrong_type": RuleInfo("error", "Emit fields with the types of the trace format."),
    "schema.unknown_layer": RuleInfo(
        "error", "Use one of the HRM layers (or their short aliases) in hrm_layer."
    ),
    "schema.unknown_status": RuleInfo("error", "Use success, error or blocked as status."),
    "schema.summary_too_long": RuleInfo(
        "warning", "Truncate input_summary/output_summary before emitting them."
    ),
    "schema.trace_id_shape": RuleInfo(
        "warning", "Generate ids as {hrm}_{epoch}_{hex}, e.g. alt_1705180800_a3f2."
    ),
    "schema.trace_id_layer": RuleInfo(
        "warning", "Generate the id with the prefix of the span's own layer."
    ),
    "schema.negative_duration": RuleInfo(
        "error", "Measure durations with a monotonic clock; they cannot be negative."
    ),
    "schema.duplicate_id": RuleInfo(
        "error", "Ids must be unique: add more random bits to the id generator."
    ),
    "schema.parent_cycle": RuleInfo(
        "error", "A span cannot be its own ancestor: check how parent_id is chosen."
    ),
    "schema.parent_missing": RuleInfo(
        "warning", "The parent was never written: it crashed, was filtered, or the trace is cut."
    ),
    "schema.child_before_parent": RuleInfo(
        "warning", "A child cannot start before its parent: check clocks and parent_id."
    ),
    # 2. required trace data
    "data.missing_key": RuleInfo(
        "warning", "Add the trace data this operation is expected to record to metadata."
    ),
    # 3. context contracts
    "context.dangling_read": RuleInfo(
        "error", "Produce the key upstream (an ancestor's `produces`) or put it in metadata."
    ),
    "context.shadow_default": RuleInfo(
        "warning", "A critical key silently fell back to its default: produce it upstream."
    ),
    "context.defaulted": RuleInfo(
        "warning", "The context key was defaulted: make sure an upstream step provides it."
    ),
    "context.failed": RuleInfo(
        "error", "The context key could not be resolved: fix the upstream step providing it."
    ),
    "context.dead_write": RuleInfo(
        "info", "Nothing downstream reads this key: drop it or declare who requires it."
    ),
    # 4. propagation
    "propagation.value_changed": RuleInfo("error", "Pass this key from parent to child unchanged."),
    "propagation.missing_parent_correlation": RuleInfo(
        "error", "Set parent_correlation_id to the parent's correlation_id when creating a child."
    ),
    "propagation.parent_correlation_mismatch": RuleInfo(
        "error", "parent_correlation_id must equal the parent's correlation_id."
    ),
    "propagation.agent_context_shape": RuleInfo(
        "warning", "Give the agent context a name and a run id (agent/name, run_id/runId)."
    ),
    "propagation.deprecated_field": RuleInfo(
        "warning", "Move to the current field name (see the message)."
    ),
    "baggage.leaked": RuleInfo(
        "error", "Instance-specific baggage must not be copied to children: strip it here."
    ),
    "baggage.leak_reached": RuleInfo(
        "error", "Fix the first leak (named in the message); this span only inherited it."
    ),
    "baggage.not_allowed": RuleInfo(
        "warning", "Only allow-listed baggage keys may propagate: add it to the list or stop it."
    ),
    # 5. span contracts
    "span.missing_attribute": RuleInfo(
        "error", "Set the attribute this kind of span requires (see the message)."
    ),
    "span.unknown_event": RuleInfo(
        "warning", "Use one of the allowed event names for this kind of span."
    ),
}
