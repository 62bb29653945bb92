"""The contract file format, as msgspec Structs, and decoding with errors in the user's words.

A contract file is YAML (`.yaml`/`.yml`), TOML (`.toml`) or JSON (`.json`). A mistake is reported
as a `ContractError` naming the file, the key path and what was expected, e.g.

    team.yaml: operations."altitude.transition".required: expected a list, got a string
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

Severity = Literal["error", "warning", "info"]


class ContractError(Exception):
    """A contract file (or preset name) that cannot be used; the message says where and why."""


class Requirement(msgspec.Struct, forbid_unknown_fields=True):
    """One key a span needs in its context.

    Attributes:
        critical: a critical key falling back to its default is reported (shadow default).
        default: the value used when nobody provides the key (`None` = no default).
    """

    critical: bool = False
    default: Any = None


class OperationSpec(msgspec.Struct, forbid_unknown_fields=True):
    """Rules for the operations matching one glob (e.g. `altitude.transition`, `memory.*`).

    Attributes:
        required: metadata keys that must be present (required trace data).
        requires: context keys the span needs: in its own metadata or produced by an ancestor.
        produces: context keys this operation provides to its descendants.
    """

    required: list[str] = []
    requires: dict[str, Requirement] = {}
    produces: list[str] = []


class SchemaSpec(msgspec.Struct, forbid_unknown_fields=True):
    """Schema rules; unset options (null) inherit from extended contracts.

    Attributes:
        required_fields: top-level fields every event must have.
        layers: allowed `hrm_layer` values (canonical names; aliases are accepted in traces).
        statuses: allowed `status` values.
        summary_max: longest allowed input/output summary, in characters.
        trace_id_shape: ids must look like `{hrm}_{epoch}_{hex}` with the span's layer prefix.
        structure: duplicate ids, parent cycles, missing parents, child starting before parent.
    """

    required_fields: list[str] | None = None
    layers: list[str] | None = None
    statuses: list[str] | None = None
    summary_max: int | None = None
    trace_id_shape: bool | None = None
    structure: bool | None = None


class BaggageSpec(msgspec.Struct, forbid_unknown_fields=True):
    """Which `metadata.baggage` keys may flow from a span to its children.

    Attributes:
        allow: keys that may propagate (others that do are reported); null = any.
        deny: keys that must never reach a child (reported where they first leaked and at every
            span they reached).
    """

    allow: list[str] | None = None
    deny: list[str] = []


class ContextSpec(msgspec.Struct, forbid_unknown_fields=True):
    """Context-contract switches.

    Attributes:
        outcome_events: report `context.defaulted` / `context.failed` events on their parent.
    """

    outcome_events: bool | None = None


class SpanMatch(msgspec.Struct, forbid_unknown_fields=True):
    """Selects a kind of span; all given conditions must hold.

    Attributes:
        operation: glob on the operation (`pipeline_run`, `flujo.step.*`).
        has: glob on metadata keys; the span needs at least one matching key.
    """

    operation: str | None = None
    has: str | None = None


class SpanSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A span contract: what a kind of span must carry and which events it may have.

    Attributes:
        name: how findings name this kind of span.
        match: which spans it applies to.
        required: metadata attributes that must be present.
        events: allowed event names (in `events` or `metadata.events`); null = any.
    """

    match: SpanMatch
    name: str = ""
    required: list[str] = []
    events: list[str] | None = None


class ContractFile(msgspec.Struct, forbid_unknown_fields=True):
    """One contract file (or preset).

    Attributes:
        version: format version; must be 1.
        extends: presets or other contract files (paths relative to this file) applied first.
        severity: rule id (or glob) → severity, overriding the defaults.
        ignore: rule ids (or globs) not to report.
        schema: schema rules.
        operations: operation glob → required data, requires and produces.
        propagate: metadata keys (dotted paths) whose value must flow unchanged to children.
        correlation: check the correlation-id propagation guarantee.
        agent_context: check the AgentContext shape (name and run id present).
        baggage: baggage allow- and deny-lists.
        deprecated: metadata path → what to use instead.
        context: context-contract switches.
        spans: span contracts.
        quiet_period: seconds without new events after which a live trace counts as complete.
    """

    version: int = 1
    extends: list[str] = []
    severity: dict[str, Severity] = {}
    ignore: list[str] = []
    schema: SchemaSpec | None = None
    operations: dict[str, OperationSpec] = {}
    propagate: list[str] = []
    correlation: bool | None = None
    agent_context: bool | None = None
    baggage: BaggageSpec | None = None
    deprecated: dict[str, str] = {}
    context: ContextSpec | None = None
    spans: list[SpanSpec] = []
    quiet_period: float | None = None


_TYPE_WORDS = {
    "array": "a list",
    "object": "a mapping",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "nothing (null)",
}


def _words(kind: str) -> str:
    return " or ".join(_TYPE_WORDS.get(k.strip(), k.strip()) for k in kind.split("|"))


def _key_path(where: str) -> str:
    """`$.operations['a.b'].required[0]` → `operations."a.b".required[0]`."""
    path = where.removeprefix("$").removeprefix(".")

    def quote(m: re.Match[str]) -> str:
        key = m.group(1)
        return "." + (f'"{key}"' if "." in key or " " in key else key)

    path = re.sub(r"\['((?:[^'\\]|\\.)*)'\]", quote, path)
    return path.lstrip(".") or "(top level)"


_CHILD: dict[str, type[msgspec.Struct]] = {
    "schema": SchemaSpec,
    "baggage": BaggageSpec,
    "context": ContextSpec,
    "match": SpanMatch,
    "spans": SpanSpec,
}
_MAPPED: dict[str, type[msgspec.Struct]] = {"operations": OperationSpec, "requires": Requirement}


def _fields_of(path: str) -> list[str]:
    """Known keys of the Struct at a key path, for 'unknown key' messages."""
    node: type[msgspec.Struct] = ContractFile
    pending: type[msgspec.Struct] | None = None
    for part in re.findall(r'"[^"]*"|[^.\[\]]+', path):
        if pending is not None:
            node, pending = pending, None
        elif part in _MAPPED:
            pending = _MAPPED[part]
        elif part in _CHILD:
            node = _CHILD[part]
    return list(node.__struct_fields__)


def _quote(key: object) -> str:
    text = str(key)
    return f'"{text}"' if "." in text or " " in text or not text else text


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if path == "(top level)":
        return prefix
    return prefix + ("" if path.startswith("[") else ".") + path


def explain(exc: msgspec.ValidationError, prefix: str = "") -> str:
    """A msgspec validation error as `key.path: expected …` in plain words."""
    text = str(exc)
    msg, _, where = text.partition(" - at `")
    path = _join(prefix, _key_path(where.rstrip("`")) if where else "(top level)")
    if not where and prefix:
        where = "$"
    m = re.match(r"Expected `([^`]*)`, got `([^`]*)`", msg)
    if m:
        return f"{path}: expected {_words(m.group(1))}, got {_words(m.group(2))}"
    m = re.match(r"Object contains unknown field `([^`]*)`", msg)
    if m:
        parent = path if where else ""
        known = _fields_of(parent)
        place = f"{parent}: " if parent and parent != "(top level)" else ""
        return f"{place}unknown key {m.group(1)!r} (expected one of: {', '.join(known)})"
    m = re.match(r"Object missing required field `([^`]*)`", msg)
    if m:
        return f"{path}: missing required key {m.group(1)!r}"
    m = re.match(r"Invalid enum value (.*)", msg)
    if m:
        return f"{path}: {m.group(1)} is not one of error, warning, info"
    return f"{path}: {msg}"


def parse_text(text: str, name: str) -> Any:
    """Parse a contract file's text by its extension (YAML when unknown)."""
    suffix = Path(name).suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{name}: not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError(f"{name}{where}: not valid YAML: {problem}") from None


def _convert_entries(
    mapping: object, kind: type[Any], prefix: str, name: str, inner: str | None = None
) -> None:
    """Validate a mapping's values one by one, so errors can name the key (msgspec says [...])."""
    if not isinstance(mapping, dict):
        return
    for key, value in mapping.items():
        where = f"{prefix}.{_quote(key)}"
        if inner is not None and isinstance(value, dict):
            _convert_entries(value.get(inner), Requirement, f"{where}.{inner}", name)
        try:
            msgspec.convert(value, kind, strict=True)
        except msgspec.ValidationError as exc:
            raise ContractError(f"{name}: {explain(exc, where)}") from None


def _check_mappings(data: dict[str, Any], name: str) -> None:
    _convert_entries(data.get("operations"), OperationSpec, "operations", name, inner="requires")
    severity = data.get("severity")
    if isinstance(severity, dict):
        for key, value in severity.items():
            if value not in ("error", "warning", "info"):
                raise ContractError(
                    f"{name}: severity.{_quote(key)}: {_show_value(value)} is not one of "
                    "error, warning, info"
                )


def _show_value(value: object) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


def decode_contract(text: str, name: str) -> ContractFile:
    """Parse and validate one contract file.

    Raises:
        ContractError: with the file name, the key path and what was expected.
    """
    data = parse_text(text, name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ContractError(f"{name}: expected a mapping of contract keys at the top level")
    _check_mappings(data, name)
    try:
        spec = msgspec.convert(data, ContractFile, strict=True)
    except msgspec.ValidationError as exc:
        raise ContractError(f"{name}: {explain(exc)}") from None
    if spec.version != 1:
        raise ContractError(f"{name}: version: expected 1, got {spec.version}")
    if (
        spec.schema is not None
        and spec.schema.summary_max is not None
        and (spec.schema.summary_max < 1)
    ):
        raise ContractError(f"{name}: schema.summary_max: expected a positive integer")
    if spec.quiet_period is not None and spec.quiet_period <= 0:
        raise ContractError(f"{name}: quiet_period: expected a positive number of seconds")
    for i, span in enumerate(spec.spans):
        if span.match.operation is None and span.match.has is None:
            raise ContractError(
                f"{name}: spans[{i}].match: expected at least one of 'operation' or 'has'"
            )
    return spec
