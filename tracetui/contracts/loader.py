"""Contract sets: presets and files, `extends` resolved, merged and compiled for the checker.

Merging (an extending file is applied after what it extends; several `--contract`s in order):
lists are unions, mappings merge key by key (for the same operation glob, `required` and `produces`
are unions and `requires` entries are replaced per key), scalar options take the last value set.
Severity overrides apply first, then `ignore` removes rules entirely.
"""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path
from typing import Final

import msgspec

from tracetui.contracts.catalog import RULES
from tracetui.contracts.spec import (
    BaggageSpec,
    ContractError,
    ContractFile,
    OperationSpec,
    Requirement,
    SpanSpec,
    decode_contract,
)
from tracetui.model import LAYERS, STATUSES

PRESETS: Final = ("dopejar", "baggage", "correlation", "context", "flujo")
"""Built-in contracts shipped in `tracetui/contracts/presets/`."""

DEFAULT_PRESET: Final = "dopejar"
PROJECT_FILE: Final = ".tracetui.yaml"
DEFAULT_QUIET: Final = 5.0

_DEFAULT_FIELDS: Final = ("trace_id", "timestamp", "hrm_layer", "operation", "status")


class Schema(msgspec.Struct, frozen=True):
    """Schema options with every value decided."""

    required_fields: tuple[str, ...] = _DEFAULT_FIELDS
    layers: frozenset[str] = frozenset(LAYERS)
    statuses: frozenset[str] = frozenset(STATUSES)
    summary_max: int = 100
    trace_id_shape: bool = True
    structure: bool = True


class ContractSet(msgspec.Struct):
    """Everything the checker enforces, merged from presets and files.

    Attributes:
        sources: what was loaded, in order (`preset dopejar`, `file team.yaml`).
        project_file: the `.tracetui.yaml` picked up automatically, if any (say so to the user).
        severities: rule id → severity for every rule that is on (ignored rules are absent).
        schema: schema rules, or None when no contract asks for them.
        operations: (glob, merged spec) per operation glob, in order of appearance.
        propagate: metadata paths whose value must flow unchanged to children.
        correlation: check the correlation guarantee.
        agent_context: check the AgentContext shape.
        baggage: merged baggage lists, or None.
        deprecated: metadata path → what to use instead.
        outcome_events: report context outcome events.
        spans: span contracts.
        quiet_period: seconds of quiet after which a live trace is judged as a whole.
    """

    sources: list[str] = []
    project_file: Path | None = None
    severities: dict[str, str] = {}
    schema: Schema | None = None
    operations: list[tuple[str, OperationSpec]] = []
    propagate: list[str] = []
    correlation: bool = False
    agent_context: bool = False
    baggage: BaggageSpec | None = None
    deprecated: dict[str, str] = {}
    outcome_events: bool = False
    spans: list[SpanSpec] = []
    quiet_period: float = DEFAULT_QUIET

    def on(self, rule: str) -> bool:
        """Whether a rule is reported at all."""
        return rule in self.severities


def preset_text(name: str) -> str:
    """The YAML text of a built-in preset."""
    return resources.files("tracetui.contracts").joinpath(f"presets/{name}.yaml").read_text()


def _union(into: list[str], items: list[str]) -> None:
    for item in items:
        if item not in into:
            into.append(item)


class _Builder:
    """Accumulates contract files in order, then compiles them into a ContractSet."""

    def __init__(self) -> None:
        self.out = ContractSet(sources=[], severities={})
        self.overrides: list[tuple[str, str, str]] = []  # (pattern, severity, where)
        self.ignores: list[tuple[str, str]] = []
        self.schema: dict[str, object] = {}
        self.ops: dict[str, OperationSpec] = {}
        self.allow: list[str] | None = None
        self.deny: list[str] = []
        self.has_baggage = False
        self.seen: set[str] = set()

    def add_spec(self, spec_name: str, base: Path) -> None:
        """A preset name or a file path (relative to `base`)."""
        if spec_name in PRESETS and not (base / spec_name).is_file():
            self._add_preset(spec_name, [])
        else:
            self._add_file(base / spec_name, [])

    def _add_preset(self, name: str, chain: list[str]) -> None:
        key = f"preset:{name}"
        if key in chain:
            raise ContractError(f"preset {name}: extends itself ({' → '.join(chain)})")
        if key in self.seen:
            return
        self._apply(decode_contract(preset_text(name), f"preset {name}"), Path("."), [*chain, key])
        self.seen.add(key)
        self.out.sources.append(f"preset {name}")

    def _add_file(self, path: Path, chain: list[str]) -> None:
        key = f"file:{path.resolve()}"
        if key in chain:
            names = " → ".join(c.partition(":")[2] for c in [*chain, key])
            raise ContractError(f"{path}: extends itself ({names})")
        if key in self.seen:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            known = ", ".join(PRESETS)
            raise ContractError(
                f"{path}: no such contract file (and not a preset: {known})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ContractError(f"{path}: cannot read: {exc}") from None
        self._apply(decode_contract(text, str(path)), path.parent, [*chain, key])
        self.seen.add(key)
        self.out.sources.append(f"file {path}")

    def _apply(self, spec: ContractFile, base: Path, chain: list[str]) -> None:
        where = chain[-1].partition(":")[2]
        for i, parent in enumerate(spec.extends):
            if parent in PRESETS and not (base / parent).is_file():
                self._add_preset(parent, chain)
            elif "/" in parent or "." in parent or (base / parent).is_file():
                self._add_file(base / parent, chain)
            else:
                raise ContractError(
                    f"{where}: extends[{i}]: {parent!r} is neither a preset "
                    f"({', '.join(PRESETS)}) nor a file"
                )
        for i, (pattern, sev) in enumerate(spec.severity.items()):
            self._check_rule(pattern, f"{where}: severity", i)
            self.overrides.append((pattern, sev, where))
        for i, pattern in enumerate(spec.ignore):
            self._check_rule(pattern, f"{where}: ignore[{i}]", i)
            self.ignores.append((pattern, where))
        if spec.schema is not None:
            for name in spec.schema.__struct_fields__:
                value = getattr(spec.schema, name)
                if value is not None:
                    self.schema[name] = value
            for i, layer in enumerate(spec.schema.layers or ()):
                if not layer:
                    raise ContractError(f"{where}: schema.layers[{i}]: expected a layer name")
        for glob, op in spec.operations.items():
            have = self.ops.get(glob)
            if have is None:
                self.ops[glob] = OperationSpec(
                    required=list(op.required),
                    requires=dict(op.requires),
                    produces=list(op.produces),
                )
            else:
                _union(have.required, op.required)
                _union(have.produces, op.produces)
                have.requires.update(op.requires)
        _union(self.out.propagate, spec.propagate)
        if spec.correlation is not None:
            self.out.correlation = spec.correlation
        if spec.agent_context is not None:
            self.out.agent_context = spec.agent_context
        if spec.baggage is not None:
            self.has_baggage = True
            if spec.baggage.allow is not None:
                self.allow = self.allow or []
                _union(self.allow, spec.baggage.allow)
            _union(self.deny, spec.baggage.deny)
        self.out.deprecated.update(spec.deprecated)
        if spec.context is not None and spec.context.outcome_events is not None:
            self.out.outcome_events = spec.context.outcome_events
        self.out.spans.extend(spec.spans)
        if spec.quiet_period is not None:
            self.out.quiet_period = spec.quiet_period

    @staticmethod
    def _check_rule(pattern: str, where: str, _i: int) -> None:
        if not any(fnmatch.fnmatchcase(rule, pattern) for rule in RULES):
            raise ContractError(
                f"{where}: {pattern!r} matches no rule (rules: {', '.join(sorted(RULES))})"
            )

    def build(self) -> ContractSet:
        out = self.out
        for rule, info in RULES.items():
            sev = info.severity
            for pattern, override, _ in self.overrides:
                if fnmatch.fnmatchcase(rule, pattern):
                    sev = override
            if any(fnmatch.fnmatchcase(rule, pattern) for pattern, _ in self.ignores):
                continue
            out.severities[rule] = sev
        if self.schema:
            merged = {**msgspec.structs.asdict(Schema()), **self.schema}
            out.schema = Schema(
                required_fields=tuple(merged["required_fields"]),
                layers=frozenset(merged["layers"]),
                statuses=frozenset(merged["statuses"]),
                summary_max=merged["summary_max"],
                trace_id_shape=merged["trace_id_shape"],
                structure=merged["structure"],
            )
        out.operations = list(self.ops.items())
        if self.has_baggage:
            out.baggage = BaggageSpec(allow=self.allow, deny=list(self.deny))
        return out


def load_contracts(specs: list[str], cwd: Path | None = None) -> ContractSet:
    """Load presets and contract files into one ContractSet.

    Args:
        specs: preset names or file paths, applied in order. An empty list means the default
            preset (`dopejar`) plus `./.tracetui.yaml` when it exists (recorded in
            `project_file` so the caller can say so).
        cwd: the directory relative paths and the project file are looked up in.

    Raises:
        ContractError: naming the file, the key path and what was expected.
    """
    base = cwd if cwd is not None else Path(".")
    builder = _Builder()
    project: Path | None = None
    if not specs:
        builder.add_spec(DEFAULT_PRESET, base)
        candidate = base / PROJECT_FILE
        if candidate.is_file():
            project = candidate
            builder.add_spec(PROJECT_FILE, base)
    else:
        for spec in specs:
            if not spec:
                raise ContractError("--contract: expected a preset name or a file path, got ''")
            builder.add_spec(spec, base)
    result = builder.build()
    result.project_file = project
    return result


__all__ = [
    "PRESETS",
    "ContractError",
    "ContractSet",
    "Requirement",
    "load_contracts",
    "preset_text",
]
