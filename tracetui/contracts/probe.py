"""Targeted decoding: only the parts of a line the active rules read, in one pass per batch.

A contract set needs a handful of metadata keys (trace data, baggage, propagated values …), maybe
the summaries, and a few keys it only has to notice (deprecated fields). `ProbeLayout` builds, once
per contract set, a msgspec Struct type holding exactly those keys, so a whole batch is parsed by
one typed `decode_lines` call that neither materialises the other keys nor the values it keeps:

- a key whose value a rule reads is kept as `msgspec.Raw` (absent: `UNSET`) and decoded only when
  a rule actually looks at it;
- a key a rule only has to notice inside an object (`agent_context.correlationId`) is read through
  a small Struct of the inner keys, whose empty instance is the default, so "nothing to notice" is
  one tuple comparison per line (`ProbeLayout.screen`). The rule then confirms on the decoded line.

Every Struct lists few fields on purpose: msgspec matches each key of an object against the
fields one by one, so a wide Struct costs time on every line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Final

import msgspec

UNSET: Final = msgspec.UNSET

Getter = Callable[[Any], Any]
"""Reads one metadata path from a probe's `metadata`; returns UNSET when absent."""

_decode = msgspec.json.decode
_OTHER: Final = str | int | float | bool | None | list[Any]
"""What a noticed object key may hold instead of an object (read as nothing to notice)."""


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
    """A kept value decoded (`Raw` parsed; UNSET stays UNSET)."""
    if not isinstance(raw, msgspec.Raw):
        return raw
    try:
        return _decode(raw)
    except msgspec.MsgspecError:  # pragma: no cover - the line was valid JSON as a whole
        return UNSET


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
        screen: given a probe's `metadata`, False when none of the noticed paths can be present
            (None when there are none); True means "maybe": confirm on the decoded line.
    """

    def __init__(
        self, paths: Iterable[str], top_fields: Iterable[str], noticed: Iterable[str] = ()
    ) -> None:
        keys: list[str] = []
        for path in paths:
            for key in [path, *(head for head, _ in _prefixes(path))]:
                if key not in keys:
                    keys.append(key)
        self.attr = {key: f"k{i}" for i, key in enumerate(keys)}
        fields: list[tuple[str, Any, Any]] = [
            (name, msgspec.Raw, UNSET) for name in self.attr.values()
        ]
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
        for key in dict.fromkeys([*flat, *(h for h in inner if h in whole)]):
            name = self.attr.get(key) or own.get(key)
            if name is None:  # only noticed: a field of its own
                name = own[key] = f"n{len(rename)}"
                rename[name] = key
                fields.append((name, msgspec.Raw, UNSET))
            if name not in flat_attrs:
                flat_attrs.append(name)
        head_attrs: list[str] = []
        empties: list[msgspec.Struct] = []
        for i, (head, names) in enumerate(inner.items()):
            if head in whole:
                continue
            ordered = sorted(names)
            head_type = msgspec.defstruct(
                f"Noticed{i}",
                [(f"i{j}", msgspec.Raw, UNSET) for j in range(len(ordered))],
                rename={f"i{j}": n for j, n in enumerate(ordered)},
                frozen=True,
                gc=False,
            )
            empty = head_type()
            name = f"h{len(rename)}"
            rename[name] = head
            fields.append((name, head_type | _OTHER, empty))
            head_attrs.append(name)
            empties.append(empty)
        self.meta_type: type[msgspec.Struct] = msgspec.defstruct(
            "MetaProbe", fields, rename=rename, gc=False
        )
        top = list(dict.fromkeys(top_fields))
        probe_fields: list[tuple[str, Any, Any]] = [("metadata", self.meta_type | None, None)]
        probe_fields.extend((name, Any, None) for name in top)
        self.probe_type: type[msgspec.Struct] = msgspec.defstruct("Probe", probe_fields, gc=False)
        self.decoder = msgspec.json.Decoder(self.probe_type)
        self._meta_decoder = msgspec.json.Decoder(self.meta_type)
        generic = [("metadata", Any, None), *((n, Any, None) for n in top)]
        self._generic = msgspec.json.Decoder(msgspec.defstruct("AnyProbe", generic, gc=False))
        self.empty_meta = self.meta_type()
        self.empty = self.probe_type(metadata=self.empty_meta)
        self.screen: Callable[[Any], bool] | None = None
        watched = flat_attrs + head_attrs
        if watched:
            self.screen = self._screen(watched, len(flat_attrs), tuple(empties))

    @staticmethod
    def _screen(
        watched: list[str], n_flat: int, empties: tuple[msgspec.Struct, ...]
    ) -> Callable[[Any], bool]:
        clean = (UNSET,) * n_flat + empties
        read = attrgetter(*watched) if len(watched) > 1 else attrgetter(watched[0], watched[0])
        if len(watched) == 1:
            clean = clean * 2
        kinds = tuple(type(e) for e in empties)

        def screen(meta: Any) -> bool:
            values = read(meta)
            if values == clean:
                return False
            if any(v is not UNSET for v in values[:n_flat]):
                return True
            return any(
                v.__class__ is kind and v != empty
                for v, kind, empty in zip(values[n_flat:], kinds, empties, strict=False)
            )

        return screen

    def getter(self, path: str) -> Getter:
        """A function reading `path` (decoded) from a probe's `metadata` (flat key first)."""
        flat = self.attr[path]
        splits = [(self.attr[head], rest) for head, rest in _prefixes(path)]

        def get(meta: Any) -> Any:
            value = getattr(meta, flat)
            if value is not UNSET:
                return value_of(value)
            for head, rest in splits:
                inner = getattr(meta, head)
                if inner is not UNSET:
                    found = lookup(value_of(inner), rest)
                    if found is not UNSET:
                        return found
            return UNSET

        return get

    def decode_batch(self, raws: list[bytes]) -> list[Any]:
        """Decode a batch of lines in one call (line by line if one of them does not fit)."""
        try:
            probes: list[Any] = self.decoder.decode_lines(b"\n".join(raws))
        except msgspec.MsgspecError:
            return [self.decode(raw) for raw in raws]
        if len(probes) != len(raws):  # pragma: no cover - a line held a raw newline
            return [self.decode(raw) for raw in raws]
        empty = self.empty_meta
        for probe in probes:
            if probe.metadata is None:
                probe.metadata = empty
        return probes

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
