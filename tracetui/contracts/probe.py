"""Targeted decoding: only the parts of a line the active rules read, in one pass per batch.

A contract set needs a handful of metadata keys (trace data, baggage, propagated values …), maybe
the summaries, and a few keys it only has to notice (deprecated fields). `ProbeLayout` builds, once
per contract set, a msgspec Struct type holding exactly those keys, so a whole batch is parsed by
one typed `decode_lines` call that neither materialises the other keys nor the values it keeps:

- a key whose value a rule reads is kept as `msgspec.Raw` (absent: the empty `ABSENT`) and decoded
  only when a rule actually looks at it;
- a key a rule only has to notice inside an object (`agent_context.correlationId`) is read through
  a small Struct of the inner keys, whose empty instance is the default, so "nothing to notice" is
  one tuple comparison per line (`ProbeLayout.screen`). The rule then confirms on the decoded line.

Every Struct lists few fields on purpose: msgspec matches each key of an object against the
fields one by one, so a wide Struct costs time on every line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Annotated, Any, Final

import msgspec

UNSET: Final = msgspec.UNSET
ABSENT: Final = msgspec.Raw(b"")
"""What a kept key holds when the line does not have it: an empty (falsy) `Raw`, so presence is
truthiness (`all(values)`), and `bytes(value)` works on every span of a batch."""

Getter = Callable[[Any], Any]
"""Reads one metadata path from a probe's `metadata`; returns UNSET when absent."""

_decode = msgspec.json.decode
_OTHER: Final = str | int | float | bool | None | list[Any]
"""What a noticed object key may hold instead of an object (read as nothing to notice)."""
_NEVER: Final = Annotated[str, msgspec.Meta(min_length=1, max_length=0)]
"""A type no JSON value fits: a noticed key present anywhere makes the strict decode fail."""
_OTHER_SUMMARY: Final = None | int | float | bool | list[Any] | dict[str, Any]
_SUMMARIES: Final = ("input_summary", "output_summary")


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path in a metadata dict; a flat dotted key (`flujo.step.id`) wins.

    Returns UNSET when absent.
    """
    if not isinstance(obj, dict):
        return UNSET
    if path in obj:
        return obj[path]
    start = 0
    while True:
        dot = path.find(".", start)
        if dot < 0:
            return UNSET
        inner = obj.get(path[:dot])
        if isinstance(inner, dict):
            found = lookup(inner, path[dot + 1 :])
            if found is not UNSET:
                return found
        start = dot + 1


def value_of(raw: Any) -> Any:
    """A kept value decoded (`Raw` parsed; absent is UNSET)."""
    if not isinstance(raw, msgspec.Raw):
        return raw
    if not raw:
        return UNSET
    try:
        return _decode(raw)
    except msgspec.MsgspecError:  # pragma: no cover - the line was valid JSON as a whole
        return UNSET


def _nothing(meta: Any) -> tuple[Any, ...]:
    return ()


def _field_order(field: tuple[str, Any, Any]) -> int:
    return "hkn".index(field[0][0])


def _prefixes(path: str) -> list[tuple[str, str]]:
    """(head, rest) for every dot of a path: `a.b.c` → (`a`, `b.c`), (`a.b`, `c`)."""
    out: list[tuple[str, str]] = []
    dot = path.find(".")
    while dot >= 0:
        out.append((path[:dot], path[dot + 1 :]))
        dot = path.find(".", dot + 1)
    return out


class ProbeLayout:
    """A Struct type with the metadata keys (and top-level fields) some rules need.

    Attributes:
        probe_type: the decoded type: `metadata` (a Struct) plus top-level fields.
        meta_type: the Struct type of `metadata`.
        attr: metadata key read by value → attribute name on `meta_type`.
        noticed: whether there are noticed paths (see `notice_read`, `maybe_noticed`).
    """

    def __init__(
        self,
        paths: Iterable[str],
        top_fields: Iterable[str],
        noticed: Iterable[str] = (),
        summary_max: int | None = None,
    ) -> None:
        """Args:
        paths: metadata paths whose values rules read (dotted paths: flat key or nested).
        top_fields: top-level fields rules read (`input_summary` …).
        noticed: metadata paths a rule only has to notice (deprecated keys).
        summary_max: when given, `input_summary`/`output_summary` longer than this are what a
            rule looks for (among `top_fields`).
        """
        keys: list[str] = []
        for path in paths:
            for key in [path, *(head for head, _ in _prefixes(path))]:
                if key not in keys:
                    keys.append(key)
        self.attr = {key: f"k{i}" for i, key in enumerate(keys)}
        fields: list[tuple[str, Any, Any]] = [
            (name, msgspec.Raw, ABSENT) for name in self.attr.values()
        ]
        strict: list[tuple[str, Any, Any]] = list(fields)
        rename = {name: key for key, name in self.attr.items()}
        # Noticed paths: a flat key, or an inner key of an object.
        flat: list[str] = []
        inner: dict[str, set[str]] = {}
        for path in dict.fromkeys(noticed):
            flat.append(path)
            for head, rest in _prefixes(path):
                inner.setdefault(head, set()).update((rest, rest.split(".", 1)[0]))
        flat_attrs: list[str] = []
        own: dict[str, str] = {}
        whole = set(flat) | set(self.attr)  # noticed when present at all
        shared = bool(whole & set(self.attr) & (set(flat) | set(inner)))
        """A noticed key is also read by value: the strict type cannot refuse it."""
        for key in dict.fromkeys([*flat, *(h for h in inner if h in whole)]):
            name = self.attr.get(key) or own.get(key)
            if name is None:  # only noticed: a field of its own
                name = own[key] = f"n{len(rename)}"
                rename[name] = key
                fields.append((name, msgspec.Raw, ABSENT))
                strict.append((name, msgspec.Raw if shared else _NEVER, ABSENT))
            if name not in flat_attrs:
                flat_attrs.append(name)
        head_attrs: list[str] = []
        empties: list[msgspec.Struct] = []
        for i, (head, names) in enumerate(inner.items()):
            if head in whole:
                continue
            ordered = sorted(names)
            inner_rename = {f"i{j}": n for j, n in enumerate(ordered)}
            head_type = msgspec.defstruct(
                f"Noticed{i}",
                [(name, msgspec.Raw, ABSENT) for name in inner_rename],
                rename=inner_rename,
                frozen=True,
                gc=False,
            )
            refuse = msgspec.defstruct(
                f"Refused{i}",
                [(name, _NEVER, ABSENT) for name in inner_rename],
                rename=inner_rename,
                frozen=True,
                gc=False,
            )
            empty = head_type()
            name = f"h{len(rename)}"
            rename[name] = head
            fields.append((name, head_type | _OTHER, empty))
            strict.append(
                (name, head_type | _OTHER, empty) if shared else (name, refuse | _OTHER, refuse())
            )
            head_attrs.append(name)
            empties.append(empty)
        # msgspec looks a key up from the field after the last one it matched: agent context
        # heads (usually the first keys) first, flat dotted keys (hardly ever there) last.
        fields.sort(key=_field_order)
        strict.sort(key=_field_order)
        self.meta_type: type[msgspec.Struct] = msgspec.defstruct(
            "MetaProbe", fields, rename=rename, gc=False
        )
        strict_meta = msgspec.defstruct("StrictMetaProbe", strict, rename=rename, gc=False)
        top = list(dict.fromkeys(top_fields))
        self.probe_type: type[msgspec.Struct] = msgspec.defstruct(
            "Probe",
            [("metadata", self.meta_type | None, None), *((name, Any, None) for name in top)],
            gc=False,
        )
        self.decoder = msgspec.json.Decoder(self.probe_type)
        short: Any = Any
        if summary_max is not None:
            short = Annotated[str, msgspec.Meta(max_length=summary_max)] | _OTHER_SUMMARY
        refused = summary_max is not None or (bool(flat_attrs or head_attrs) and not shared)
        self.strict_notices = refused and not shared
        """A batch the strict type decodes has none of the noticed keys."""
        self.strict_summaries = summary_max is not None
        """A batch the strict type decodes has no summary longer than `summary_max`."""
        self._strict: msgspec.json.Decoder[Any] | None = None
        if refused:
            strict_probe = msgspec.defstruct(
                "StrictProbe",
                [
                    ("metadata", strict_meta | None, None),
                    *((name, short if name in _SUMMARIES else Any, None) for name in top),
                ],
                gc=False,
            )
            self._strict = msgspec.json.Decoder(strict_probe)
        self._rename = rename
        self._short = short
        self._top = top
        self._refused_notices = [field for field in strict if field[0][0] in "hn"]
        self._refusing: dict[tuple[Any, ...], msgspec.json.Decoder[Any]] = {}
        self._meta_decoder = msgspec.json.Decoder(self.meta_type)
        generic = [("metadata", Any, None), *((n, Any, None) for n in top)]
        self._generic = msgspec.json.Decoder(msgspec.defstruct("AnyProbe", generic, gc=False))
        self.empty_meta = self.meta_type()
        self.empty = self.probe_type(metadata=self.empty_meta)
        watched = flat_attrs + head_attrs
        self.noticed = bool(watched)
        if len(watched) == 1:
            watched *= 2
        self.notice_read: Callable[[Any], tuple[Any, ...]] = (
            attrgetter(*watched) if watched else _nothing
        )
        """Reads what the noticed keys hold from a probe's `metadata`, as a tuple."""
        self.notice_clean = ((ABSENT,) * len(flat_attrs) + tuple(empties)) * (
            2 if len(flat_attrs) + len(empties) == 1 else 1
        )
        """What `notice_read` gives when none of the noticed keys is there (most lines)."""
        self._n_flat = len(flat_attrs)
        self._empties = tuple(empties)

    def maybe_noticed(self, values: tuple[Any, ...]) -> bool:
        """Whether a `notice_read` result that is not `notice_clean` may hold a noticed key.

        False for a head holding something else than an object (`"agent": "name"`), or an
        object with none of the inner keys; True means "maybe": confirm on the decoded line.
        """
        n = self._n_flat
        if any(values[:n]):
            return True
        return any(
            v.__class__ is empty.__class__ and v != empty
            for v, empty in zip(values[n:], self._empties, strict=False)
        )

    def getter(self, path: str) -> Getter:
        """A function reading `path` (decoded) from a probe's `metadata` (flat key first)."""
        flat = self.attr[path]
        splits = [(self.attr[head], rest) for head, rest in _prefixes(path)]

        def get(meta: Any) -> Any:
            value = getattr(meta, flat)
            if value:
                return value_of(value)
            for head, rest in splits:
                inner = getattr(meta, head)
                if inner:
                    found = lookup(value_of(inner), rest)
                    if found is not UNSET:
                        return found
            return UNSET

        return get

    def refusing(
        self,
        required: tuple[str, ...],
        allow: frozenset[str] | None = None,
        deny: frozenset[str] | None = None,
    ) -> msgspec.json.Decoder[Any]:
        """A decoder that takes a line only when a rule would have nothing to say about it.

        It refuses (`msgspec.ValidationError`) a line with a noticed key or an over-long
        summary (as the strict type does), a line missing one of the `required` metadata keys
        (flat keys, at the top of `metadata`), and, when `deny` is given, a line whose
        `metadata.baggage` object has a denied key or, with an `allow` list, a key not on it.
        What it decodes is not meant to be kept.
        """
        key = (required, allow, deny)
        found = self._refusing.get(key)
        if found is not None:
            return found
        rename = {self.attr[k]: k for k in required}
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
            (self.attr[k], msgspec.Raw) for k in required
        ]
        if deny is not None:
            # Without an allow-list, denied keys are refused; with one, any key off it.
            listed = sorted(deny) if allow is None else sorted(allow - deny)
            kind: Any = _NEVER if allow is None else msgspec.Raw
            kept = [(f"b{i}", kind, ABSENT) for i in range(len(listed))]
            names = {f"b{i}": k for i, k in enumerate(listed)}
            bag = msgspec.defstruct(
                "RefusingBaggage",
                kept,
                rename=names,
                forbid_unknown_fields=allow is not None,
                frozen=True,
                gc=False,
            )
            name = self.attr["baggage"]
            rename[name] = "baggage"
            fields.append((name, bag | _OTHER, bag()))
        for field in self._refused_notices:
            rename[field[0]] = self._rename[field[0]]
            fields.append(field)
        meta = msgspec.defstruct("RefusingMeta", fields, rename=rename, gc=False)
        probe = msgspec.defstruct(
            "RefusingProbe",
            [
                ("metadata", meta) if required else ("metadata", meta | None, None),
                *((name, self._short if name in _SUMMARIES else Any, None) for name in self._top),
            ],
            gc=False,
        )
        found = self._refusing[key] = msgspec.json.Decoder(probe)
        return found

    def decode_batch(self, raws: list[bytes]) -> tuple[list[Any], bool]:
        """Decode a batch of lines in one call (line by line if one of them does not fit).

        Returns the probes and whether the strict type took the whole batch (then none of its
        lines has a noticed key or an over-long summary, see `strict_notices` and
        `strict_summaries`). Otherwise the batch is decoded again with the plain type, whose
        probes hold what those rules need to look at each line.
        """
        joined = b"\n".join(raws)
        strict = self._strict
        probes: list[Any] = []
        ok = False
        if strict is not None:
            try:
                probes = strict.decode_lines(joined)
                ok = True
            except msgspec.MsgspecError:
                pass
        if not ok:
            try:
                probes = self.decoder.decode_lines(joined)
            except msgspec.MsgspecError:
                return [self.decode(raw) for raw in raws], False
        if len(probes) != len(raws):  # pragma: no cover - a line held a raw newline
            return [self.decode(raw) for raw in raws], False
        empty = self.empty_meta
        for probe in probes:
            if probe.metadata is None:
                probe.metadata = empty
        return probes, ok

    def decode(self, raw: bytes) -> Any:
        """Decode one line; metadata that is not an object reads as empty."""
        try:
            probe: Any = self.decoder.decode(raw)
        except msgspec.ValidationError:
            return self._lenient(raw)
        except msgspec.DecodeError:
            return self.empty
        if probe.metadata is None:
            probe.metadata = self.empty_meta
        return probe

    def _lenient(self, raw: bytes) -> Any:
        try:
            loose: Any = self._generic.decode(raw)
        except msgspec.MsgspecError:
            return self.empty
        values = {f: getattr(loose, f) for f in loose.__struct_fields__ if f != "metadata"}
        meta = self.empty_meta
        if isinstance(loose.metadata, dict):
            try:
                meta = self._meta_decoder.decode(msgspec.json.encode(loose.metadata))
            except msgspec.MsgspecError:  # pragma: no cover - any object fits the type
                meta = self.empty_meta
        return self.probe_type(metadata=meta, **values)
